"""Shared fixtures: a simulator per test, a server wired to it, and an MCP client in either protocol era."""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client import ClientRequestContext
from mcp.types import INVALID_PARAMS, ElicitRequestParams, ElicitResult, ErrorData, Resource
from pydantic import SecretStr

from kie_mcp.config import Settings
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .browser import SKIP_REASON, Browser, find_chromium
from .childsite.sitecustomize import PRICE_DAY

# What kie-mcp keeps per user (the tool listing, toolcache) goes to a folder of this test run, for every server
# the tests start (in process or as a child process), never to the user's real cache; removed when the run ends
# (each run, and each xdist worker, left one in the temporary folder for good).
os.environ["KIE_CACHE_DIR"] = tempfile.mkdtemp(prefix="kie-mcp-test-cache-")
atexit.register(shutil.rmtree, os.environ["KIE_CACHE_DIR"], ignore_errors=True)

# The day the bundled prices' ages are counted on (``generation.price_day``), pinned in every test: in process by
# ``pinned_price_day``, and in every kie-mcp the tests start as a child process by ``childsite/sitecustomize.py``,
# the folder put on PYTHONPATH here, after the code under test a test may put first.
os.environ["PYTHONPATH"] = os.pathsep.join(
    part for part in (os.environ.get("PYTHONPATH"), str(Path(__file__).parent / "childsite")) if part
)


@pytest.fixture(autouse=True)
def pinned_price_day(monkeypatch: pytest.MonkeyPatch) -> date:
    from kie_mcp import generation

    monkeypatch.setattr(generation, "price_day", lambda: PRICE_DAY)
    return PRICE_DAY


def _share_output_validators() -> None:
    """The SDK client compiles a tool's output-schema validator once per session, checking the schema against the
    JSON Schema metaschema first: about 30 ms a session, and the tests open thousands of sessions on the same
    schemas. Here a validator compiled (and so checked) once in this process serves every later session given the
    same schema; a schema that fails to compile still fails in every session, as the SDK does it."""
    from mcp.client.session import ClientSession

    compile_once = ClientSession._output_schema_validator
    compiled: dict[str, Any] = {}

    def shared(session: ClientSession, name: str, output_schema: dict[str, Any]) -> Any:
        if (validator := session._tool_output_validators.get(name)) is not None:
            return validator
        key = json.dumps(output_schema, sort_keys=True)
        if key not in compiled:
            compiled[key] = compile_once(session, name, output_schema)
        session._tool_output_validators[name] = compiled[key]
        return compiled[key]

    ClientSession._output_schema_validator = shared  # type: ignore[method-assign]


_share_output_validators()

API = "http://api.kie.test"
# Every endpoint that creates (and charges for) a task, across all families.
CREATE_PATHS = {
    "/api/v1/jobs/createTask",
    "/api/v1/veo/generate",
    "/api/v1/veo/extend",
    "/api/v1/veo/get-4k-video",
    "/api/v1/runway/generate",
    "/api/v1/runway/extend",
    "/api/v1/aleph/generate",
    "/api/v1/gpt4o-image/generate",
    "/api/v1/flux/kontext/generate",
}
UPLOADS = "http://upload.kie.test"


ERAS = {"auto": "2026-07-28", "legacy": "2025-11-25"}  # the ``mode`` fixture's values, by the protocol they speak


def not_found_code(mode: str) -> int:
    """The code of a ``resources/read`` of a resource that does not exist, in the era ``mode`` speaks: MCP's "Resource
    not found" (-32002) up to 2025-11-25, invalid params in 2026-07-28 (SEP-2164)."""
    return INVALID_PARAMS if ERAS[mode] >= "2026-07-28" else -32002


@pytest.fixture(params=list(ERAS), ids=list(ERAS.values()))
def mode(request: pytest.FixtureRequest) -> str:
    """Every protocol test runs in the stateless 2026 era and the handshake era."""
    return request.param


def one_era_each(request: pytest.FixtureRequest) -> str:
    """The protocol era of a test in a module whose tests differ in what they do with the tools (follow-ups, settings),
    not in how the protocol carries them: each test runs once, in the era its name picks, and the module's tests
    speak both. A module overrides ``mode`` with it; the protocol tests keep running every case in both eras."""
    return list(ERAS)[zlib.crc32(request.node.originalname.encode()) % 2]


def eras_in_turn(names: str | tuple[str, ...], cases: Sequence[Any], ids: Sequence[str] | None = None) -> Any:
    """``pytest.mark.parametrize`` of ``names`` over ``cases``, the protocol era taking turns case by case.

    For a sweep whose cases differ only in data (each model, each documented figure, each setting): every case
    runs once and the sweep still speaks both eras, at half the time of every case in both. What differs between
    the eras is the protocol tests' concern, which run each case in both."""
    names = (names,) if isinstance(names, str) else tuple(names)
    params = []
    for n, case in enumerate(cases):
        era = list(ERAS)[n % 2]
        values = (case,) if len(names) == 1 else tuple(case)
        case_id = f"{ids[n] if ids is not None else '-'.join(map(str, values))}-{ERAS[era]}"
        params.append(pytest.param(*values, era, id=case_id))
    return pytest.mark.parametrize((*names, "mode"), params)


@pytest.fixture
def sim() -> Simulator:
    # 1000 simulated seconds per real second: a 60 s image takes 60 ms, a 5 min video 0.3 s.
    return Simulator(SimConfig(speed=1000.0))


@pytest.fixture
def transport(sim: Simulator) -> SandboxTransport:
    return SandboxTransport(sim)


class HandClock:
    """A clock that moves only when told: a stand-in for the real seconds the simulator counts KIE's rate limits on
    (``Simulator.rate_clock``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def move(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def served_over_tcp(sim: Simulator) -> AsyncIterator[str]:
    """``sim`` served by uvicorn on a free loopback port, as ``kie-mcp sim`` serves it; yields its base URL."""
    import asyncio

    import uvicorn

    from kie_mcp.sandbox import create_app

    # A trickled answer still being sent (the ``trickle`` fault) is cut at the end, not waited out for minutes.
    config = uvicorn.Config(
        create_app(sim), host="127.0.0.1", port=0, log_level="critical", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        api_key=SecretStr(SANDBOX_API_KEY),
        base_url=API,
        upload_base_url=UPLOADS,
        workspace=tmp_path,
        poll_min_interval=0.01,
        poll_max_interval=0.05,
        rate_limit_backoff=0.01,
        catalog_sync=False,  # tests that want the daily background sync of KIE's live catalogue turn it on
    )


class Controls:
    """The simulator's /__sim/* endpoints, spoken over the same HTTP interface the server uses."""

    def __init__(self, transport: httpx2.AsyncBaseTransport) -> None:
        self.http = httpx2.AsyncClient(transport=transport, base_url=API, headers={"User-Agent": "tests"})

    async def get(self, path: str) -> Any:
        response = await self.http.get(f"/__sim/{path}")
        response.raise_for_status()
        return response.json()

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.http.post(f"/__sim/{path}", json=body or {})
        response.raise_for_status()
        return response.json()

    async def fault(self, endpoint: str, times: int = 1, **fault: Any) -> None:
        await self.post("faults", {"endpoint": endpoint, "fault": fault, "times": times})

    async def creates(self) -> list[dict[str, Any]]:
        requests = await self.get("requests")
        items = requests if isinstance(requests, list) else requests["requests"]
        return [r for r in items if r["path"] in CREATE_PATHS]


@pytest.fixture
async def controls(transport: SandboxTransport) -> AsyncIterator[Controls]:
    handle = Controls(transport)
    yield handle
    await handle.http.aclose()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread of each image decode made for a thumbnail."""
    import threading

    from kie_mcp.media import downloads

    threads: list[str] = []
    original = downloads._make_thumbnail

    def counted(source: Any, max_side: int) -> Any:  # the open image, as it was judged
        threads.append(threading.current_thread().name)
        return original(source, max_side)

    monkeypatch.setattr(downloads, "_make_thumbnail", counted)
    return threads


def answering(action: str = "accept", confirm: bool = True, seen: list[str] | None = None) -> Callable[..., Any]:
    """An elicitation callback (declaring the capability) that records each question and answers it."""

    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        if seen is not None:
            seen.append(params.message)
        if action == "accept":
            return ElicitResult(action="accept", content={"confirm": confirm})
        return ElicitResult(action=action)

    return callback


async def refusing_forms(context: ClientRequestContext, params: ElicitRequestParams) -> ErrorData:
    """An elicitation callback of a client that declares forms and then refuses every one (handshake era)."""
    return ErrorData(code=-32601, message="Method not found")


@pytest.fixture
def connect(settings: Settings, transport: SandboxTransport, mode: str) -> Callable[..., Any]:
    """``async with connect(**overrides) as client``: a fresh server and client for this test's simulator."""

    @asynccontextmanager
    async def opener(
        elicitation: Callable[..., Any] | None = None, *, extensions: list[Any] | None = None, **overrides: Any
    ) -> AsyncIterator[Client]:
        server = create_server(replace(settings, **overrides), transport=transport)
        async with Client(server, mode=mode, elicitation_callback=elicitation, extensions=extensions) as client:
            yield client

    return opener


async def twice_at_once(client: Client, tool: str, arguments: dict[str, Any]) -> list[Any]:
    """The answers of two calls of ``tool`` with the same ``arguments`` sent at once, in the order they came."""
    results: list[Any] = []

    async def call() -> None:
        results.append(await client.call_tool(tool, arguments))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        group.start_soon(call)
    return results


async def looked_then_cleared(
    client: Client, controls: Controls, tool: str, arguments: dict[str, Any], wait: float
) -> tuple[Any, Any]:
    """Make one task with ``tool`` while the simulator's faults stand, look at it at once (check_task,
    wait_seconds=0), clear the faults and look again, waiting up to ``wait`` s: the two answers."""
    made = await client.call_tool(tool, {**arguments, "wait_seconds": 0})
    task_id = made.structured_content["tasks"][0]["task_id"]
    looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    await controls.http.delete("/__sim/faults")
    return looked, await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": wait})


async def every_resource(client: Client) -> list[Resource]:
    """Every resource the server lists, its pages followed (``resources/list`` answers a page at a time)."""
    page = await client.list_resources()
    resources = list(page.resources)
    while page.next_cursor is not None:
        page = await client.list_resources(cursor=page.next_cursor)
        resources += page.resources
    return resources


# Python's audit events (``sys.addaudithook``), for a test that watches what the server does (a folder listed, a file
# opened) without replacing anything of kie-mcp's. A hook stays for the process: it calls watchers only while a test
# is inside ``audits``.
_AUDIT_WATCHERS: list[Callable[[str, tuple[Any, ...]], None]] = []
_AUDIT_HOOKED: list[bool] = []


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    for watcher in list(_AUDIT_WATCHERS):
        watcher(event, args)


@contextmanager
def audits(watcher: Callable[[str, tuple[Any, ...]], None]) -> Iterator[None]:
    """Call ``watcher(event, args)`` with every audit event of this process (any thread's) inside the block. The
    code that raised it is ``sys._getframe(2)`` in the watcher."""
    if not _AUDIT_HOOKED:
        sys.addaudithook(_on_audit)
        _AUDIT_HOOKED.append(True)
    _AUDIT_WATCHERS.append(watcher)
    try:
        yield
    finally:
        _AUDIT_WATCHERS.remove(watcher)


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


# Results are saved under the local day their task was created (outputs/YYYY-MM-DD-<slug>). A run may cross
# midnight, so tests compare folder dates with every day the run has spanned, never with a date taken once.
RUN_STARTED = date.today()
DATED = re.compile(r"(?<![^/])(\d{4}-\d{2}-\d{2})-")


def run_days() -> set[str]:
    """Every local date from the start of this test run until now, as folder names write them."""
    span = (date.today() - RUN_STARTED).days
    return {(RUN_STARTED + timedelta(days=n)).isoformat() for n in range(span + 1)}


def dated(path: str) -> str:
    """``path`` with its dated folder's date written ``TODAY``, once that date is checked to be a day of this run:
    ``outputs/2026-12-04-teaser/a.mp4`` -> ``outputs/TODAY-teaser/a.mp4``."""
    found = DATED.search(path)
    assert found, f"no dated folder in {path!r}"
    assert found[1] in run_days(), f"{path!r} is dated {found[1]}, not a day of this run ({sorted(run_days())})"
    return path[: found.start(1)] + "TODAY" + path[found.end(1) :]


def session_folder(workspace: Path, slug: str) -> Path:
    """The one folder a session's results went to during this run: ``workspace/outputs/YYYY-MM-DD-<slug>``."""
    named = re.compile(rf"\d{{4}}-\d{{2}}-\d{{2}}-{re.escape(slug)}")
    found = [p for p in (Path(workspace) / "outputs").iterdir() if named.fullmatch(p.name)]
    assert len(found) == 1, f"expected one folder for session {slug!r}, found {found}"
    dated(found[0].name)  # ... and dated on a day of this run
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    """The ffmpeg kie-mcp would use, or the test is skipped (a machine without it)."""
    from kie_mcp.media.stitch import StitchError, find_ffmpeg

    try:
        return find_ffmpeg()
    except StitchError as err:
        pytest.skip(f"no ffmpeg: {err}")


def simulator_running(speed: str = "1", *, kill: bool = False) -> Iterator[str]:
    """``kie-mcp sim`` in its own process at ``speed``, once it answers; yields its base URL. ``kill``: ended at
    once (a create held by a slow fault would hold a graceful stop as long), else terminated."""
    port = free_port()
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    process = subprocess.Popen(
        [script, "sim", "--port", str(port), "--speed", speed], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"{base}/__sim/state", timeout=1).raise_for_status()
            break
        except httpx2.HTTPError:
            time.sleep(0.1)
    yield base
    process.kill() if kill else process.terminate()
    process.wait(timeout=10)


def answer_from(
    stdout: Any, pending: bytearray, request_id: Any, within: float, seen: list[tuple[float, Any]] | None = None
) -> dict[str, Any]:
    """The answer to ``request_id`` read from a server's ``stdout`` (messages before it skipped; ``pending`` holds
    what was read past it), or an AssertionError when none comes ``within`` seconds. ``seen`` gets every message
    read, the answer too, each with the moment it was read."""
    deadline = time.monotonic() + within
    while True:
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            message = json.loads(line)
            if seen is not None:
                seen.append((time.monotonic(), message))
            if message.get("id") == request_id and "method" not in message:
                return message
        ready, _, _ = select.select([stdout], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(stdout.fileno(), 65536) if ready else b""
        assert chunk, f"no answer to request {request_id!r}: the line was dropped"
        pending += chunk


@pytest.fixture
def simulator_process() -> Iterator[str]:
    yield from simulator_running()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium per test module; the module's browser tests skip, saying why, without one."""
    executable = find_chromium()
    if executable is None:
        pytest.skip(SKIP_REASON)
    chromium = Browser(executable, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


async def confirmed_and_replayed(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[Any, Any]:
    """In the 2026-07-28 era: call ``tool``, answer its confirmation with yes, then send that same answered request
    again, as a host that retries would. Returns (the answered call, the replay)."""
    first = await client.session.call_tool(tool, arguments, allow_input_required=True)
    assert first.input_requests, first
    responses: dict[str, Any] = {
        key: ElicitResult(action="accept", content={"confirm": True}) for key in first.input_requests
    }
    done = await client.call_tool(tool, arguments, input_responses=responses, request_state=first.request_state)
    again = await client.call_tool(tool, arguments, input_responses=responses, request_state=first.request_state)
    return done, again
