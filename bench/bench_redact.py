"""Cost of redaction, which every log record, call-log line, journal write and gallery page pays
(run: uv run python bench/bench_redact.py [--rounds 20000]).

For a few texts of the kinds redacted all day (a prompt, a log line, a KIE status answer, a call-log entry), the
time of ``redact`` / ``redact_value`` next to the baseline: every credential pattern run over every text, as
``redact`` did before it ran each only on a text holding one of its words (reimplemented here from the module's
own patterns; the registered key's passes are the same in both). Asserts nothing; prints microseconds per text.

And the cost of searching bytes served as they are (an upload, a saved result) for the key, ``bytes_hold_secret``,
next to searching them for its whole forms only (as it did before runs of 16 of its characters were looked for).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from typing import Any

from kie_mcp import redact as redaction
from kie_mcp.redact import REDACTED, redact, redact_value, register_secret

KEY = "3f9a0c1e5b7d2f4a6c8e0b1d3f5a7c9e"
PROMPT = (
    "Close-up: the cold brew bottle on the marble counter, condensation running down the glass, golden hour, "
    'shallow depth of field. A voice says: "Try it cold."'
)
LOG_LINE = (
    'HTTP Request: GET http://api.kie.ai/api/v1/jobs/recordInfo?taskId=c704a3ce969044e2a4e7373ff3d69f2e "HTTP/1.1 '
    '200 OK"'
)
STATUS = json.dumps(
    {
        "code": 200,
        "msg": "success",
        "data": {
            "taskId": "c704a3ce969044e2a4e7373ff3d69f2e",
            "model": "nano-banana-2",
            "state": "success",
            "param": json.dumps({"model": "nano-banana-2", "input": {"prompt": PROMPT, "aspect_ratio": "9:16"}}),
            "resultJson": json.dumps({"resultUrls": ["https://tempfile.aiquickdraw.com/h/c704a3ce_1.jpg"]}),
            "failCode": "",
            "failMsg": "",
            "costTime": 14,
            "completeTime": 1764870000000,
            "createTime": 1764869986000,
        },
    }
)
CALL_LOG_ENTRY = {
    "endpoint": "/api/v1/jobs/createTask",
    "model": "nano-banana-2",
    "task_id": "c704a3ce969044e2a4e7373ff3d69f2e",
    "outcome": "created",
    "credits_quoted": 8,
    "latency_ms": 412.5,
    "error": None,
}


def every_pattern(text: str) -> str:
    """The baseline: the key's passes, then every credential pattern over the whole text."""
    if not text:
        return text
    text = redaction.redact_secrets(text)
    for regex, replacement, _ in redaction._PATTERNS:
        text = regex.sub(replacement, text)
    text = redaction._BEARER.sub(redaction._bearer, text)
    return redaction._TOKEN_SHAPES.sub(REDACTED, text)


def every_pattern_value(value: Any) -> Any:
    if isinstance(value, str):
        return every_pattern(value)
    if isinstance(value, dict):
        return {key: every_pattern_value(item) for key, item in value.items()}
    return value


def whole_forms_only(content: bytes) -> bool:
    """The bytes baseline: the key's whole forms, as single bytes and UTF-16 either way round, a chunk at a time."""
    found = redaction._bytes_pattern(redaction._registry.pattern)
    for view in (content, content[0::2], content[1::2]):
        for start in range(0, max(len(view), 1), redaction.SCAN_CHUNK):
            if found.search(view, max(start - 4096, 0), start + redaction.SCAN_CHUNK) is not None:
                return True
            time.sleep(0)
    return False


def pictures() -> list[tuple[str, bytes]]:
    """A photo-like JPEG (noise: its bytes are as varied as a photo's) and a PNG with a text chunk of hex ids."""
    from PIL import Image, PngImagePlugin

    photo, drawing, info = io.BytesIO(), io.BytesIO(), PngImagePlugin.PngInfo()
    Image.effect_noise((2400, 1600), 60).convert("RGB").save(photo, "JPEG", quality=95)
    info.add_text("XML:com.adobe.xmp", " ".join(f"xmp.iid:{n:032x}" for n in range(20_000)))
    Image.effect_noise((1200, 1200), 30).convert("RGB").save(drawing, "PNG", pnginfo=info)
    return [("a JPEG photo", photo.getvalue()), ("a PNG with 20,000 hex ids", drawing.getvalue())]


def per_call(function: Callable[[Any], Any], value: Any, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        function(value)
    return (time.perf_counter() - started) / rounds * 1e6


def main(rounds: int) -> None:
    register_secret(KEY)
    cases: list[tuple[str, Any, Callable[[Any], Any], Callable[[Any], Any]]] = [
        (f"a prompt ({len(PROMPT)} characters)", PROMPT, redact, every_pattern),
        (f"a log line ({len(LOG_LINE)})", LOG_LINE, redact, every_pattern),
        (f"a KIE status answer ({len(STATUS)})", STATUS, redact, every_pattern),
        ("a call-log entry (redact_value)", CALL_LOG_ENTRY, redact_value, every_pattern_value),
    ]
    print(f"redaction, microseconds per text (best of 3 runs of {rounds:,}):")
    print(f"  {'text':42} {'every pattern':>14} {'kie-mcp':>10} {'ratio':>7}")
    for label, value, ours, baseline in cases:
        assert ours(value) == baseline(value)  # the same result
        before = min(per_call(baseline, value, rounds) for _ in range(3))
        now = min(per_call(ours, value, rounds) for _ in range(3))
        print(f"  {label:42} {before:14.1f} {now:10.1f} {now / before:6.2f}x")
    print("bytes searched for the key, milliseconds per MiB (best of 5):")
    print(f"  {'bytes':42} {'whole forms':>14} {'kie-mcp':>10} {'ratio':>7}")
    for label, content in pictures():
        assert redaction.bytes_hold_secret(content) == whole_forms_only(content)  # neither holds the key
        mib = len(content) / 2**20
        before = min(per_call(whole_forms_only, content, 1) for _ in range(5)) / 1e3 / mib
        now = min(per_call(redaction.bytes_hold_secret, content, 1) for _ in range(5)) / 1e3 / mib
        print(f"  {label + f' ({mib:.1f} MiB)':42} {before:14.1f} {now:10.1f} {now / before:6.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    main(parser.parse_args().rounds)
