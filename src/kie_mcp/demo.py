"""The offline tour: start ``kie-mcp --sandbox`` as a subprocess and drive it with the SDK's stdio client."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

IMAGE = {"model": "nano-banana-2", "prompt": "A glass bottle of cold brew on a sunlit marble counter, soft shadows"}
VIDEO = {
    "model": "veo3_fast",
    "prompt": (
        "Slow dolly push-in on a barista sliding the cold brew bottle across the counter toward camera. "
        'She smiles and says: "Cold brew, made slow." Ambient: quiet cafe murmur. (no subtitles)'
    ),
    "aspect_ratio": "9:16",
}


def server_command() -> tuple[str, list[str]]:
    """The installed console script when it is beside this Python, else ``python -m kie_mcp``."""
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    if script:
        return script, ["--sandbox"]
    return sys.executable, ["-m", "kie_mcp", "--sandbox"]


def run_demo() -> int:
    try:
        return anyio.run(_tour)
    except KeyboardInterrupt:
        return 130


async def _tour() -> int:
    started = time.monotonic()
    workspace = Path(tempfile.mkdtemp(prefix="kie-mcp-demo-"))
    command, args = server_command()
    env = {"KIE_WORKSPACE": str(workspace), "KIE_LOG_LEVEL": "WARNING", "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(command=command, args=args, env=env)
    say = _Printer()
    say.title("kie-mcp demo: a sandboxed server (built-in KIE simulator, no key, no credits) over real stdio")

    async def confirm(context: ClientRequestContext, request: ElicitRequestParams) -> ElicitResult:
        say.line(f"  [confirmation form] {request.message}")
        say.line("  [user] confirm = true")
        return ElicitResult(action="accept", content={"confirm": True})

    async with Client(params, mode="legacy", elicitation_callback=confirm, read_timeout_seconds=120) as client:
        info = client.server_info
        say.step(f"Connected to {info.name} {info.version} ({info.title})")

        tools = await client.list_tools()
        say.step("Tools: " + ", ".join(t.name for t in tools.tools))

        credits = await _call(client, "check_credits", {})
        say.step(credits["message"])

        estimate = await _call(client, "estimate_cost", IMAGE)
        say.step("estimate_cost for an image -> " + estimate["message"])

        say.step("generate_image (the server asks the user through an elicitation form):")
        image = await _call(client, "generate_image", IMAGE)
        say.line(f"  status={image['status']}")
        say.line("  " + image["message"].replace("\n", "\n  "))

        quote = (await _call(client, "estimate_cost", VIDEO))["quote"]
        say.step(
            f"estimate_cost for a Veo 3.1 Fast clip -> {quote['credits_total']:g} credits "
            f"(about ${quote['usd_total']:.2f}); quote_id={quote['quote_id']}"
        )
        say.line("  [user] approves the quote in chat")
        video = await _call(client, "generate_video", {**VIDEO, "quote_id": quote["quote_id"]})
        say.step(f"generate_video with the approved quote -> status={video['status']}")
        task_id = video["tasks"][0]["task_id"]
        say.line(f"  task {task_id}, about {video['tasks'][0].get('eta_seconds') or '?'} s (simulated)")

        say.step(f"check_task({task_id}, wait_seconds=50) with progress:")
        bar = _Bar(say)
        done = await _call(client, "check_task", {"task_id": task_id, "wait_seconds": 50}, progress=bar.update)
        bar.finish()
        say.line("  " + done["message"])

        credits = await _call(client, "check_credits", {})
        say.step(credits["message"])

    files = (workspace / "outputs").rglob("*")
    saved = sorted(p.relative_to(workspace).as_posix() for p in files if p.is_file() and not p.name.startswith("."))
    say.title(f"Result files saved in the demo workspace {workspace}:")
    for path in saved:
        say.line(f"  {path}")
    say.line(f"  logs/kie-api.jsonl ({len((workspace / 'logs' / 'kie-api.jsonl').read_text().splitlines())} KIE calls)")
    say.title(f"Finished in {time.monotonic() - started:.1f}s.")
    ok = image["status"] == "completed" and done["task"]["state"] == "succeeded"
    return 0 if ok else 1


async def _call(client: Client, name: str, arguments: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    result = await client.call_tool(name, arguments, progress_callback=progress)
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        raise SystemExit(f"demo: {name} failed: {text}")
    assert result.structured_content is not None
    return result.structured_content


class _Printer:
    def __init__(self) -> None:
        self.count = 0

    def title(self, text: str) -> None:
        print(f"\n== {text}", flush=True)

    def step(self, text: str) -> None:
        self.count += 1
        print(f"\n{self.count}. {text}", flush=True)

    def line(self, text: str) -> None:
        print(text, flush=True)


class _Bar:
    """A one-line progress bar fed by MCP progress notifications."""

    def __init__(self, out: _Printer) -> None:
        self.out = out
        self.shown = False

    async def update(self, progress: float, total: float | None, message: str | None) -> None:
        fraction = progress / total if total else 0.0
        filled = int(fraction * 30)
        sys.stdout.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {message or ''}   ")
        sys.stdout.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stdout.write("\n")
