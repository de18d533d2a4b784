"""Scripted fault injection (kie-api.md S10): a queue of faults, each aimed at one endpoint kind.

Faults are consumed strictly in order per endpoint kind, one fault per request. Kinds that only
make sense on a create (``task_fail``, ``drop_after_create``) stay queued until a create actually
succeeds, so a create rejected for bad input does not eat them.

``code``, ``drop``, ``malformed`` and ``html`` answer before the endpoint runs: nothing is created
or charged. ``slow`` sleeps (real seconds), then the request runs normally. ``hold`` waits until the test lets it go
(``/__sim/faults/release``, ``FaultQueue.release``: every request held then goes on), ``seconds`` at most (default
600), then the request runs normally: a test orders what happens while KIE has not answered, never by a guess at how
long that takes on a loaded machine. ``drop_after_create`` and ``task_fail`` create and charge the task first.

``truncate`` and ``stall`` only apply to result files (``/files/``, ``/dl/``) and only to a file
that is really served (a 403/404 answer goes out unchanged, and still uses the fault up): the
response starts normally with its full ``Content-Length``. ``truncate`` ends the body cleanly after
``after_bytes`` (default: half the file), so a client that trusts the stream gets a short file;
over real HTTP the server then closes the connection. ``stall`` pauses ``seconds`` (real seconds)
after ``after_bytes`` (default 65536), then sends the rest. ``padded`` plays a broken or hostile file server: the
file, then zeros up to ``bytes`` bytes in all (default 128 MiB, at most 4 GiB), streamed without a
``Content-Length``, so its start still reads as the file it names. ``damaged`` plays a file KIE stored cut short:
its first ``after_bytes`` (default: half the file), served whole, with a ``Content-Length`` that matches, so only
decoding it tells.

``tagged`` plays a file host (or KIE) that writes ``text`` into a result's metadata, as a hostile or buggy one may
echo the API key there: a JPEG gets it as a comment (a COM segment), a PNG as a ``tEXt`` chunk named ``Comment``;
other files are served as they are.

``no_results`` (status endpoints only) waits for a status answer that reports success and takes its result
links away, as KIE has been seen to do, in each family's own shape (``strip_results``): ``shape`` "missing" (no
link at all, the default: Market without ``resultJson``, Veo, GPT-4o Image, Flux Kontext and Aleph without
``response``, Runway with ``videoInfo`` null), "not_json" (text that is not JSON where the links go) or "empty"
(every link there empty: ``[]`` for a list, ``""`` for one link). Status answers that are not a success, or a
success with no link to take away, leave it queued.

``huge`` (any endpoint but result files) answers before the endpoint runs with a well-formed success envelope
``bytes`` long (default 64 MiB, at most 4 GiB), streamed as it is made, so the simulator never holds it; with
``gzip: true`` it is sent gzip-compressed (a compression bomb: a few hundred kilobytes on the wire).

``trickle`` plays an upstream that answers too slowly to finish but never slowly enough for a read timeout: the
endpoint runs (a create creates and charges), then its answer goes out with its full ``Content-Length``, ``bytes``
bytes (default 1) every ``every`` real seconds (default 0.5). Over real HTTP each read then waits only ``every``;
through the in-process transport an API answer is one slow read. On result files (``files``) it plays a file server
that keeps a download going for as long as it likes: a file that is really served (a 403/404 answer goes out
unchanged, and still uses the fault up) goes out so, piece by piece through either transport.

``link`` (upload endpoints only) plays a broken or hostile upload host: the upload is stored as usual, and its
answer's file link (``downloadUrl``, and ``fileUrl`` in the older shape) is ``url`` instead, whatever that is
(``http://10.0.0.7/x.png``, ``file:///etc/passwd``, ...).

A ``code`` fault answers ``{code, msg, data}`` with its ``code``, its ``msg`` (default: the code's usual message)
and its ``data`` (default null), whatever JSON that is: KIE's error answers may carry data (a 422 naming a task).
With ``held`` (real seconds, at most 600) it first waits for ``/__sim/faults/release`` as a ``hold`` fault does, then
answers its code: a test orders what happens while that answer is on its way.

``credits_consumed`` on a ``task_fail`` fault plays a KIE that reports a garbage charge for a task it failed (and
refunded): the failed Market record carries it as ``creditsConsumed`` (its callback as ``consumeCredits``), whatever
JSON value it is (``1e308``, ``"1e308"``, ``5000`` for an 8-credit image), whether or not ``report_credits_consumed``
is on. ``POST /__sim/tasks/<id>`` with ``"state": "fail"`` takes it too.

``echo_auth: true`` on a ``code`` or ``task_fail`` fault plays a hostile or buggy upstream: the error's
``msg`` (for ``task_fail``, the task's ``failMsg``/``errorMessage``) gets `` Authorization: <the request's
Authorization header>`` appended, the real key included. The simulator's own request log still keeps no key.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

Endpoint = Literal["create", "status", "credit", "upload", "download-url", "files", "any"]
ENDPOINTS: tuple[str, ...] = ("create", "status", "credit", "upload", "download-url", "files", "any")
KINDS: tuple[str, ...] = (
    "code",
    "drop",
    "drop_after_create",
    "slow",
    "hold",
    "malformed",
    "html",
    "task_fail",
    "truncate",
    "stall",
    "no_results",
    "huge",
    "link",
    "padded",
    "trickle",
    "damaged",
    "tagged",
)
CREATE_ONLY: frozenset[str] = frozenset({"drop_after_create", "task_fail"})
# Faults in a served file's body
FILES_ONLY: frozenset[str] = frozenset({"truncate", "stall", "padded", "damaged", "tagged"})
STATUS_ONLY: frozenset[str] = frozenset({"no_results"})  # faults in a successful status answer
UPLOAD_ONLY: frozenset[str] = frozenset({"link"})  # faults in a successful upload answer
API_BODY: frozenset[str] = frozenset({"trickle"})  # faults in the body of any answer (a result file's too)
NO_RESULT_SHAPES: tuple[str, ...] = ("missing", "not_json", "empty")
ECHO_KINDS: tuple[str, ...] = ("code", "task_fail")  # faults that can echo the Authorization header
HOLD_DEFAULT_SECONDS = 600.0  # how long a hold fault waits for its release at most (real seconds)
HUGE_DEFAULT_BYTES = 64 * 1024**2
HUGE_MAX_BYTES = 4 * 1024**3
PADDED_DEFAULT_BYTES = 128 * 1024**2


class FaultSpecError(ValueError):
    """A fault description the simulator cannot use; the message says what to fix."""


@dataclass
class Fault:
    endpoint: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    times: int = 1  # -1 = until cleared

    def matches(self, category: str) -> bool:
        if self.kind in CREATE_ONLY and category != "create":
            return False
        if self.kind in FILES_ONLY and category != "files":
            return False
        if self.kind in STATUS_ONLY and category != "status":
            return False
        if self.kind in UPLOAD_ONLY and category != "upload":
            return False
        return self.endpoint in (category, "any")

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "fault": {"kind": self.kind, **self.params}, "times": self.times}


def parse_fault(endpoint: Any, fault: Any, times: Any = 1) -> Fault:
    """Validate a ``/__sim/faults`` body into a ``Fault``."""
    if endpoint not in ENDPOINTS:
        raise FaultSpecError(f"endpoint must be one of {', '.join(ENDPOINTS)}; got {endpoint!r}")
    if not isinstance(fault, dict) or fault.get("kind") not in KINDS:
        raise FaultSpecError(f"fault must be an object whose kind is one of {', '.join(KINDS)}")
    if not isinstance(times, int) or isinstance(times, bool) or (times < 1 and times != -1):
        raise FaultSpecError("times must be a positive integer, or -1 for until cleared")
    kind = fault["kind"]
    if kind in CREATE_ONLY and endpoint not in ("create", "any"):
        raise FaultSpecError(f"{kind} only applies to create endpoints")
    if kind in FILES_ONLY and endpoint not in ("files", "any"):
        raise FaultSpecError(f"{kind} only applies to result files (endpoint files)")
    if kind in STATUS_ONLY and endpoint not in ("status", "any"):
        raise FaultSpecError(f"{kind} only applies to status answers (endpoint status)")
    if kind in UPLOAD_ONLY and endpoint not in ("upload", "any"):
        raise FaultSpecError(f"{kind} only applies to upload answers (endpoint upload)")
    if kind in UPLOAD_ONLY and not isinstance(fault.get("url"), str):
        raise FaultSpecError("a link fault needs the url to answer with (text)")
    if kind in STATUS_ONLY and fault.get("shape", "missing") not in NO_RESULT_SHAPES:
        raise FaultSpecError(f"shape must be one of {', '.join(NO_RESULT_SHAPES)}")
    params = {k: v for k, v in fault.items() if k != "kind"}
    if "echo_auth" in params:
        if kind not in ECHO_KINDS:
            raise FaultSpecError(f"echo_auth only applies to {' and '.join(ECHO_KINDS)} faults")
        if not isinstance(params["echo_auth"], bool):
            raise FaultSpecError("echo_auth must be true or false")
    if kind == "code":
        code = params.get("code")
        if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 999:
            raise FaultSpecError("a code fault needs an integer code, e.g. 402")
        if "msg" in params and not isinstance(params["msg"], str):
            raise FaultSpecError("msg must be text")
        held = params.get("held", 0)
        if not isinstance(held, int | float) or isinstance(held, bool) or not 0 <= held <= HOLD_DEFAULT_SECONDS:
            raise FaultSpecError(
                f"a code fault's held (seconds it waits for its release at most) must be 0 to {HOLD_DEFAULT_SECONDS:g}"
            )
    elif kind == "slow":
        seconds = params.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise FaultSpecError("a slow fault needs seconds >= 0 (real seconds)")
    elif kind == "hold":
        seconds = params.setdefault("seconds", HOLD_DEFAULT_SECONDS)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise FaultSpecError("a hold fault's seconds (how long it waits for its release at most) must be >= 0")
    elif kind == "html":
        status = params.setdefault("status", 502)
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise FaultSpecError("html status must be an HTTP status such as 502")
    elif kind == "padded":
        size = params.setdefault("bytes", PADDED_DEFAULT_BYTES)
        if not isinstance(size, int) or isinstance(size, bool) or not 64 <= size <= HUGE_MAX_BYTES:
            raise FaultSpecError(f"padded bytes must be an integer from 64 to {HUGE_MAX_BYTES}")
    elif kind == "tagged":
        if not isinstance(params.get("text"), str) or not params["text"]:
            raise FaultSpecError("a tagged fault needs the text to write into the file's metadata")
    elif kind in FILES_ONLY:
        after = params.get("after_bytes", None if kind in ("truncate", "damaged") else 65536)
        if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
            raise FaultSpecError(f"{kind} after_bytes must be an integer >= 0")
        params["after_bytes"] = after
        if kind == "stall":
            seconds = params.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise FaultSpecError("a stall fault needs seconds >= 0 (real seconds)")
    elif kind == "trickle":
        every = params.setdefault("every", 0.5)
        if not isinstance(every, int | float) or isinstance(every, bool) or every < 0:
            raise FaultSpecError("a trickle fault needs every >= 0 (real seconds between steps)")
        step = params.setdefault("bytes", 1)
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise FaultSpecError("trickle bytes must be an integer >= 1 (bytes sent at each step)")
    elif kind == "huge":
        if endpoint == "files":
            raise FaultSpecError("huge applies to API answers, not result files (use truncate or stall there)")
        size = params.setdefault("bytes", HUGE_DEFAULT_BYTES)
        if not isinstance(size, int) or isinstance(size, bool) or not 64 <= size <= HUGE_MAX_BYTES:
            raise FaultSpecError(f"huge bytes must be an integer from 64 to {HUGE_MAX_BYTES}")
        if not isinstance(params.setdefault("gzip", False), bool):
            raise FaultSpecError("gzip must be true or false")
    elif kind == "task_fail":
        params["fail_code"] = str(params.get("fail_code", "500"))
        params["fail_msg"] = str(params.get("fail_msg", "Internal server error"))
        params["upstream"] = bool(params.get("upstream", False))
    return Fault(endpoint=str(endpoint), kind=kind, params=params, times=times)


NOT_JSON = "<html>result pending</html>"  # a ``no_results`` fault's "not_json": text where the links go


def strip_results(data: Any, shape: str) -> bool:
    """Take the result links out of a successful status answer, where its family keeps them: Market's ``resultJson``
    (JSON text), Runway's ``videoInfo`` (one object), the ``response`` object of Veo, GPT-4o Image, Flux Kontext and
    Aleph. Returns False, changing nothing, when the answer is not a success or has no link to take away: the fault
    then waits for one that has."""
    if not isinstance(data, dict):
        return False
    if data.get("successFlag") == 1:
        key = "response"
    elif data.get("state") == "success" and isinstance(data.get("videoInfo"), dict):
        key = "videoInfo"  # Runway (record-detail): its links in one object, null until success
    elif data.get("state") == "success" and "resultJson" in data:
        key = "resultJson"
    else:
        return False
    links = _parsed(data.get(key)) if key == "resultJson" else data.get(key)
    if not _links_in(links):
        return False
    if shape == "not_json":
        data[key] = NOT_JSON
    elif shape == "empty":
        data[key] = json.dumps(_emptied(links)) if key == "resultJson" else _emptied(links)
    elif key == "videoInfo":
        data[key] = None  # Runway's answer before success: the field is there, null
    else:
        data.pop(key, None)
    return True


def _parsed(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _is_link(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def _links_in(value: Any) -> bool:
    """Whether ``value`` (a family's result object) holds a result link."""
    if isinstance(value, dict):
        return any(_links_in(item) for item in value.values())
    if isinstance(value, list):
        return any(_is_link(item) for item in value)
    return _is_link(value)


def _emptied(value: Any) -> Any:
    """``value`` with every link in it empty: a list of links ``[]``, a link ``""``; its other fields kept."""
    if isinstance(value, dict):
        return {name: _emptied(item) for name, item in value.items()}
    if isinstance(value, list):
        return [] if any(map(_is_link, value)) else value
    return "" if _is_link(value) else value


async def huge_body(fault: Fault) -> AsyncIterator[bytes]:
    """A ``huge`` fault's body: a valid success envelope of ``bytes`` bytes, made 1 MiB at a time (gzip-compressed
    on the fly with ``gzip``)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31) if fault.params.get("gzip") else None
    for part in _huge_parts(int(fault.params["bytes"])):
        out = packer.compress(part) if packer is not None else part
        if out:
            yield out
    if packer is not None:
        yield packer.flush()


def _huge_parts(size: int) -> Iterator[bytes]:
    head, tail = b'{"code":200,"msg":"success","data":{"padding":"', b'"}}'
    yield head
    left = max(size - len(head) - len(tail), 0)
    while left > 0:
        step = min(left, _PADDING_CHUNK)
        yield b"x" * step
        left -= step
    yield tail


_PADDING_CHUNK = 1024 * 1024


def tagged(content: bytes, text: str) -> bytes:
    """``content`` with ``text`` written into its metadata (a ``tagged`` fault): a JPEG's comment, a PNG's text."""
    data = text.encode("utf-8")
    if content[:2] == b"\xff\xd8" and len(data) < 0xFFFD:
        return content[:2] + b"\xff\xfe" + (len(data) + 2).to_bytes(2, "big") + data + content[2:]
    if content[:8] == b"\x89PNG\r\n\x1a\n":
        body = b"tEXt" + b"Comment\x00" + data
        chunk = len(body[4:]).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        return content[:33] + chunk + content[33:]  # after the signature and IHDR, which come first
    return content


def auth_echo(header: str | None) -> str:
    """What an ``echo_auth`` fault appends to its message: the Authorization header as received."""
    return f" Authorization: {header}" if header else " Authorization: (none sent)"


class FaultQueue:
    """Faults waiting to fire, oldest first; the requests a hold fault holds."""

    def __init__(self) -> None:
        self.items: list[Fault] = []
        self._held: list[anyio.Event] = []

    @property
    def held(self) -> int:
        """How many requests a hold fault holds now."""
        return len(self._held)

    async def hold(self, seconds: float) -> None:
        """Wait until ``release``, ``seconds`` at most."""
        released = anyio.Event()
        self._held.append(released)
        try:
            with anyio.move_on_after(seconds):
                await released.wait()
        finally:
            if released in self._held:
                self._held.remove(released)

    def release(self) -> int:
        """Let every held request go on; how many there were."""
        held, self._held = self._held, []
        for released in held:
            released.set()
        return len(held)

    def add(self, fault: Fault) -> None:
        self.items.append(fault)

    def clear(self) -> None:
        self.items.clear()

    def peek(self, category: str) -> Fault | None:
        return next((f for f in self.items if f.matches(category)), None)

    def consume(self, fault: Fault) -> None:
        if fault.times == -1:
            return
        fault.times -= 1
        if fault.times <= 0 and fault in self.items:
            self.items.remove(fault)


HTML_PAGES: dict[int, str] = {
    502: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>cloudflare</center></body></html>",
    503: "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
    "<h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>",
    520: "<!DOCTYPE html><html><head><title>api.kie.ai | 520: Web server is returning an unknown error</title>"
    "</head><body><h1>Web server is returning an unknown error</h1><p>Error code 520</p></body></html>",
}


def html_page(status: int) -> str:
    return HTML_PAGES.get(
        status, f"<html><head><title>{status}</title></head><body><h1>Error {status}</h1></body></html>"
    )
