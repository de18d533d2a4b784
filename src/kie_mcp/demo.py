"""The offline tour: start ``kie-mcp --sandbox`` as a subprocess and drive it with the SDK's stdio client."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import anyio
from mcp import Client, StdioServerParameters
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from kie_mcp.config import sandbox_area

SESSION = "demo reel"  # one session for the whole tour: every result in one folder, outputs/<date>-demo-reel/
IMAGE = {
    "model": "nano-banana-2",
    "prompt": "A glass bottle of cold brew on a sunlit marble counter, soft shadows",
    "session": SESSION,
}
# The spoken lines go in ``script``, never inside the prompt: kie-mcp speaks them as dialogue, fits the clip to them
# and sends Veo enableTranslation=false (a line written into the prompt is sent with translation on, which can change
# the words spoken).
VIDEO = {
    "model": "veo3_fast",
    "prompt": (
        "Slow dolly push-in on a barista sliding the cold brew bottle across the counter toward camera. She smiles. "
        "Ambient: quiet cafe murmur."
    ),
    "script": "Cold brew, made slow.",
    "aspect_ratio": "9:16",
    "session": SESSION,
}
SECOND_VIDEO = {
    "model": "veo3_fast",
    "prompt": "Close-up: the cold brew bottle on the marble counter, condensation running down the glass.",
    "script": "Try it cold.",
    "aspect_ratio": "9:16",
    "session": SESSION,
}


def server_command() -> tuple[str, list[str]]:
    """The installed console script when it is beside this Python, else ``python -m kie_mcp``."""
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    if script:
        return script, ["--sandbox"]
    return sys.executable, ["-m", "kie_mcp", "--sandbox"]


def run_demo(keep: bool = False) -> int:
    """The tour in a temporary workspace, removed at the end unless ``keep``: also when the terminal is closed
    (SIGHUP) or the tour is stopped (SIGTERM), which end it as Ctrl-C does. A server that stops half-way ends the
    tour with one line, never a traceback. The tour's own output failing (``kie-mcp demo | head`` closing the pipe,
    a full disk behind it) is no fault of the server: a closed pipe ends it quietly, anything else in one line."""
    try:
        workspace = Path(tempfile.mkdtemp(prefix="kie-mcp-demo-")).resolve()
    except OSError as err:  # no usable temporary folder: /tmp read-only or full
        print(
            f"demo: cannot create a temporary workspace ({err.strerror or err}); free space in /tmp or set TMPDIR to "
            "a folder you can write in.",
            file=sys.stderr,
        )
        return 1
    stops = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    before = {signum: signal.signal(signum, _interrupt) for signum in stops}
    try:
        return anyio.run(_tour, workspace, keep)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the sandboxed server died, could not start, or stopped answering
        failed = _output_failure(err)
        if failed is not None:
            return _output_lost(failed)
        step = _found(err, StepFailed)
        if step is not None:  # the server answered a step with an error (a full disk): its words, in one line
            print(step, file=sys.stderr)
            return 1
        reason = _reason(err)
        print(
            f"demo: the sandboxed server stopped unexpectedly ({reason}). Run `kie-mcp demo` again; if it keeps "
            "happening, report it at https://github.com/kie-mcp/kie-mcp/issues.",
            file=sys.stderr,
        )
        return 1
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        if not keep:
            shutil.rmtree(workspace, ignore_errors=True)


OUTPUT_CLOSED = 141  # the shell's code for a program ended by a closed pipe (128 + SIGPIPE), as `yes | head` ends


class OutputFailed(Exception):
    """Writing the tour to its own stdout failed (``error``): the reader closed the pipe, or the disk is full."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


Found = TypeVar("Found", bound=BaseException)


class StepFailed(Exception):
    """A step of the tour the server answered with an error: a plain ``Exception`` (a ``SystemExit`` raised inside
    the client's task group came out as an exception group no ``except Exception`` catches, printed as a traceback)."""


def _output_failure(err: BaseException) -> OSError | None:
    """The error writing the tour's output, when that is what ended it (inside the groups a task group wraps it in)."""
    found = _found(err, OutputFailed)
    return found.error if found is not None else None


def _found(err: BaseException, kind: type[Found]) -> Found | None:
    """``err`` when it is a ``kind``, else the first ``kind`` inside the exception groups a task group wraps it in."""
    if isinstance(err, kind):
        return err
    if isinstance(err, BaseExceptionGroup):
        return next((found for inner in err.exceptions if (found := _found(inner, kind)) is not None), None)
    return None


def _output_lost(error: OSError) -> int:
    """End the tour whose output cannot be written: quietly when the reader closed the pipe, else in one line on
    stderr. Nothing more goes to stdout (Python's own flush at exit would complain of the pipe)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if isinstance(error, BrokenPipeError):
        return OUTPUT_CLOSED
    with contextlib.suppress(OSError, ValueError):
        print(f"demo: cannot write the tour's output ({error.strerror or error}); stopped.", file=sys.stderr)
    return 1


def _reason(err: BaseException) -> str:
    """The first line of what went wrong, from inside the exception groups a task group wraps it in."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP during the tour: stop it as Ctrl-C does, so its temporary workspace is removed."""
    raise KeyboardInterrupt


def _ffmpeg_missing() -> str | None:
    """Why ``stitch_videos`` cannot run here (the server runs with this same Python), or None when it can."""
    from kie_mcp.media.stitch import VIDEO_EXTRA, StitchError, find_ffmpeg

    try:
        find_ffmpeg()
    except StitchError:
        return f"no ffmpeg here: {VIDEO_EXTRA} adds it"
    return None


CACHE_SETTINGS = ("KIE_CACHE_DIR", "XDG_CACHE_HOME", "LOCALAPPDATA")  # where the server keeps its tool listing


def server_env(workspace: Path) -> dict[str, str]:
    """The demo server's environment: its own workspace, quiet logs, no catalogue sync, and the user's cache folder
    settings (the kept tool listing goes where the user said, not to the default folder). A sync from the simulator
    would race the tour's first estimate, so its price source changed from run to run; without one it is the bundled
    KIE price list every time."""
    env = {
        "KIE_WORKSPACE": str(workspace),
        "KIE_LOG_LEVEL": "WARNING",
        "KIE_CATALOG_SYNC": "off",
        "PATH": os.environ.get("PATH", ""),
    }
    env.update({name: os.environ[name] for name in CACHE_SETTINGS if os.environ.get(name)})
    return env


async def _tour(workspace: Path, keep: bool) -> int:
    started = time.monotonic()
    command, args = server_command()
    params = StdioServerParameters(command=command, args=args, env=server_env(workspace))
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

        say.step(
            f'generate_image in the session "{SESSION}" (the server asks the user through an elicitation form; every '
            "result of the tour goes to that session's folder):"
        )
        image = await _call(client, "generate_image", IMAGE)
        say.line(f"  status={image['status']}")
        say.line("  " + image["message"].replace("\n", "\n  "))

        quote = (await _call(client, "estimate_cost", VIDEO))["quote"]
        say.step(
            f"estimate_cost for a Veo 3.1 Fast clip, its spoken line passed as script ({VIDEO['script']!r}) -> "
            f"{quote['credits_total']:g} credits (about ${quote['usd_total']:.2f}); quote_id={quote['quote_id']}"
        )
        say.line("  [user] approves the quote in chat")
        video = await _call(client, "generate_video", {**VIDEO, "quote_id": quote["quote_id"]})
        say.step(f"generate_video with the approved quote -> status={video['status']}")
        task_id = video["tasks"][0]["task_id"]
        say.line(f"  task {task_id}, about {video['tasks'][0].get('eta_seconds') or '?'} s (simulated)")

        say.step("generate_video for a second shot (the form asks again):")
        second = await _call(client, "generate_video", SECOND_VIDEO)
        second_id = second["tasks"][0]["task_id"]
        say.line(f"  status={second['status']}, task {second_id}")

        say.step(f"check_task({task_id}, wait_seconds=50) with progress:")
        bar = _Bar(say)
        done = await _call(client, "check_task", {"task_id": task_id, "wait_seconds": 50}, progress=bar.update)
        bar.finish()
        say.line("  " + done["message"])
        second_done = await _call(client, "check_task", {"task_id": second_id, "wait_seconds": 50})
        say.step(f"check_task({second_id}) -> {second_done['task']['state']}")

        stitched = True
        missing = _ffmpeg_missing()
        if missing:
            say.step(f"stitch_videos skipped: {missing}")
        else:
            joined = await client.call_tool("stitch_videos", {"clips": [task_id, second_id], "session": SESSION})
            stitched = not joined.is_error and joined.structured_content is not None
            if stitched:
                data = joined.structured_content
                length = f"{data['duration']:.1f} s, " if data.get("duration") else ""
                how = "re-encoded" if data["reencoded"] else "joined losslessly by stream copy"
                say.step(f"stitch_videos joins the two clips into one -> {data['path']} ({length}{how})")
            else:
                say.step("stitch_videos failed: " + " ".join(getattr(b, "text", "") for b in joined.content))

        credits = await _call(client, "check_credits", {})
        say.step(credits["message"])

    area = _files_area(workspace)
    files = (area / "outputs").rglob("*")
    saved = sorted(p.relative_to(area).as_posix() for p in files if p.is_file() and not p.name.startswith("."))
    say.title(f"Result files saved in {area}:")
    for path in saved:
        say.line(f"  {path}")
    call_log = area / "logs" / "kie-api.jsonl"
    calls = len(call_log.read_text().splitlines()) if call_log.is_file() else 0
    say.line(f"  logs/kie-api.jsonl ({calls} KIE calls)")
    say.title(f"Finished in {time.monotonic() - started:.1f}s.")
    _next_steps(say, workspace, area, keep)
    videos = (done["task"]["state"], second_done["task"]["state"])
    ok = image["status"] == "completed" and videos == ("succeeded", "succeeded") and stitched
    return 0 if ok else 1


def _files_area(workspace: Path) -> Path:
    """Where the sandboxed server saved its outputs/ and logs/: the workspace's sandbox area."""
    return sandbox_area(workspace)


def _client_command() -> str:
    """The command a client can start this kie-mcp with today (the one the tour just ran, by absolute path: clients
    do not search the shell's PATH; ``uvx kie-mcp`` works only once kie-mcp is on PyPI). Run by ``uvx --from``,
    the tour ran in a throwaway environment in uv's cache (gone at the next ``uv cache prune``, and still the old
    code after a ``git pull``): then the same ``uvx --from`` command, which builds anew when the source changes."""
    command, arguments = server_command()
    if _in_uv_cache(Path(sys.prefix)):
        source = _installed_from()
        return shlex.join([shutil.which("uvx") or "uvx", *(["--from", source] if source else []), "kie-mcp"])
    return shlex.join([command, *arguments[:-1]])  # without the tour's --sandbox, which the caller adds


_UV_CACHE_FOLDER = re.compile(r"(?:archive|builds|environments)-v\d+")  # uv's cache: archive-v0/<hash>/...


def _in_uv_cache(prefix: Path) -> bool:
    return any(_UV_CACHE_FOLDER.fullmatch(part) for part in prefix.parts)


def _installed_from() -> str | None:
    """Where this kie-mcp was installed from, as ``uvx --from`` takes it (a checkout's or a wheel's path, a git
    URL), read from the install's record (PEP 610's direct_url.json); None for an index install."""
    try:
        record = json.loads(importlib.metadata.distribution("kie-mcp").read_text("direct_url.json") or "null")
        url = str(record["url"])
    except (importlib.metadata.PackageNotFoundError, ValueError, KeyError, TypeError):
        return None
    if url.startswith("file://"):
        return unquote(urlparse(url).path)
    return f"git+{url}" if "vcs_info" in record else url


def _open_command(target: Path) -> str:
    """The command that opens ``target`` here, ready to paste: a path with spaces (``Mon Projet``) quoted."""
    if sys.platform == "win32":  # cmd's start takes a first quoted argument as the window's title
        return f'start "" "{target}"'
    return f"{'open' if sys.platform == 'darwin' else 'xdg-open'} {shlex.quote(str(target))}"


def _next_steps(say: _Printer, workspace: Path, area: Path, keep: bool) -> None:
    """What to do after the tour: look at the files, add kie-mcp to a client, switch to a real key."""
    say.title("Next steps")
    command = _client_command()  # by absolute path: after `uv run kie-mcp demo`, kie-mcp is on no shell's PATH
    if keep:
        gallery = area / "outputs" / "index.html"
        target = gallery if gallery.is_file() else area / "outputs"
        say.line(f"- The files are kept in {workspace}")
        if gallery.is_file():
            say.line(f"  Gallery page (every result, with prompts and credits): {gallery}")
        say.line(f"  Open them: {_open_command(target)}")
        say.line("  (images open in any viewer, the MP4s play in any browser or video player). Delete the folder")
        say.line("  when you are done.")
    else:
        say.line("- This demo's workspace is deleted as the demo ends. To look at the files (labelled SANDBOX")
        say.line(f"  images, playable MP4 clips), run `{command} demo --keep`: it keeps them and prints")
        say.line("  the folder.")
    say.line("- Add kie-mcp to your MCP client (Claude Desktop, Claude Code, Cursor, VS Code, Codex): the")
    say.line('  README\'s "Use it from your MCP client" section has each snippet. In Claude Code, for example,')
    say.line("  run in your project's folder (KIE_WORKSPACE makes it the workspace: results go to its outputs/,")
    say.line("  and image paths such as product.jpg are read from it):")
    say.line(
        f'    claude mcp add kie -e KIE_WORKSPACE="$PWD" -- {command} --sandbox   (the simulator: no key, no credits)'
    )
    say.line("- Switch to a real key: create one at https://kie.ai (API Key page), then drop `--sandbox` and")
    say.line("  pass it in the client's env, e.g.")
    say.line(f'    claude mcp add kie -e KIE_API_KEY=your-key -e KIE_WORKSPACE="$PWD" -- {command}')
    say.line("  Every spend is then real and is asked for first; caps per call and per day always apply.")


async def _call(client: Client, name: str, arguments: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    result = await client.call_tool(name, arguments, progress_callback=progress)
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        raise StepFailed(f"demo: {name} failed: {' '.join(text.split())}")  # one line
    assert result.structured_content is not None
    return result.structured_content


def _write(text: str) -> None:
    """``text`` on the tour's stdout, at once; its failing is ``OutputFailed`` (never taken for the server's)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as err:
        raise OutputFailed(err) from err


class _Printer:
    def __init__(self) -> None:
        self.count = 0

    def title(self, text: str) -> None:
        _write(f"\n== {text}\n")

    def step(self, text: str) -> None:
        self.count += 1
        _write(f"\n{self.count}. {text}\n")

    def line(self, text: str) -> None:
        _write(f"{text}\n")


class _Bar:
    """A one-line progress bar fed by MCP progress notifications: redrawn in place (a carriage return) on a terminal;
    into a pipe or a file, where a carriage return is garbage, only its last state is written, once, at the end."""

    def __init__(self, out: _Printer) -> None:
        self.out = out
        self.live = _is_terminal()
        self.last: str | None = None

    async def update(self, progress: float, total: float | None, message: str | None) -> None:
        fraction = progress / total if total else 0.0
        filled = int(fraction * 30)
        self.last = f"  [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%} {message or ''}"
        if self.live:
            _write(f"\r{self.last}   ")

    def finish(self) -> None:
        if self.last is not None:
            _write("\n" if self.live else f"{self.last}\n")


def _is_terminal() -> bool:
    """Whether the tour's stdout is a terminal (a closed or odd stdout is not)."""
    try:
        return sys.stdout.isatty()
    except (OSError, ValueError):
        return False
