"""A host stopping its server mid-create loses no task, kept over real stdio with the installed console script.

A create on its way to KIE may already be created and charged there, and only its answer names the task. SIGTERM
ended the server at once, between the create and its answer: the attempt stayed "being sent", became unknown at the
next start (the user was sent to kie.ai/logs) and the result was never saved. The MCP SDK's own client stops its
server exactly so: it closes stdin, waits 2 s, then sends SIGTERM. Now the first SIGTERM (or SIGHUP) lets no create
start, waits up to ``stopping.LANDING_SECONDS`` for those in flight to be answered and recorded, then exits 143; a
second signal exits at once.

The simulator runs in its own process (``kie-mcp sim``), so what reached KIE is read from its request log. KIE's
answer to a create is held (the ``hold`` fault) until the server said it is stopping, then let go: what happens while
KIE has not answered is ordered by events, never by a guess at how long a step takes on a loaded machine.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kie_mcp.stopping import LANDING_SECONDS

from .conftest import CREATE_PATHS, answer_from, simulator_running
from .test_terminal import console_script

pytestmark = [
    pytest.mark.stdio,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

WAIT = 30.0  # a generous bound for a slow machine
STOPPED = "kie-mcp: stopped (SIGTERM)."
IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


@pytest.fixture
def simulator() -> Iterator[str]:
    """``kie-mcp sim`` in its own process, 1000 simulated seconds a real second: an image is made at once."""
    yield from simulator_running("1000", kill=True)  # a create held by a slow fault would hold a graceful stop


def slow_creates(base: str, seconds: float) -> None:
    """KIE answers the next create only after ``seconds`` (it creates the task then)."""
    fault = {"endpoint": "create", "fault": {"kind": "slow", "seconds": seconds}, "times": 1}
    httpx2.post(f"{base}/__sim/faults", json=fault, timeout=10).raise_for_status()


def hold_creates(base: str, count: int = 1) -> None:
    """KIE answers the next ``count`` creates only once ``release`` lets them (it creates each task then)."""
    fault = {"endpoint": "create", "fault": {"kind": "hold", "seconds": 4 * WAIT}, "times": count}
    httpx2.post(f"{base}/__sim/faults", json=fault, timeout=10).raise_for_status()


def release(base: str) -> int:
    """Let the creates a hold fault holds go on: how many there were."""
    return httpx2.post(f"{base}/__sim/faults/release", timeout=10).raise_for_status().json()["released"]


def creates_sent(base: str) -> int:
    items = httpx2.get(f"{base}/__sim/requests", timeout=10).json()
    return sum(r["path"] in CREATE_PATHS for r in (items if isinstance(items, list) else items["requests"]))


def environment(base: str, workspace: Path) -> dict[str, str]:
    workspace.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workspace.parent),
        "KIE_CACHE_DIR": os.environ["KIE_CACHE_DIR"],
        "KIE_API_KEY": "sandbox-key",
        "KIE_BASE_URL": base,
        "KIE_UPLOAD_BASE_URL": base,
        "KIE_WORKSPACE": str(workspace),
        "KIE_AUTO_APPROVE_CREDITS": "10",
        "KIE_CATALOG_SYNC": "off",
        "KIE_LOG_LEVEL": "WARNING",
        **{name: os.environ[name] for name in ("PYTHONPATH",) if name in os.environ},  # the code under test
    }


class Server:
    """The installed kie-mcp over real stdio, started as a host starts it, spoken to line by line."""

    def __init__(self, base: str, workspace: Path, *, prefix: Sequence[str] = (), **env: str) -> None:
        """``prefix``: the command that starts it (``unshare``: in a PID namespace of its own); ``env``: settings."""
        env = {**environment(base, workspace), **env}
        self.errors = workspace.parent / f"{workspace.name}-{time.monotonic_ns()}.stderr"
        with self.errors.open("wb") as errors:
            self.process = subprocess.Popen(
                [*prefix, console_script()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env
            )
        self.buffer = bytearray()
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": _hello()})
        assert "result" in self.answer(0)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def generate(self, request_id: int, prompt: str) -> None:
        call = {"name": "generate_image", "arguments": {**IMAGE, "prompt": prompt}}
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": call})

    def answer(self, request_id: int) -> dict[str, Any]:
        """The answer to ``request_id`` (the messages before it skipped), or an AssertionError after WAIT."""
        assert self.process.stdout is not None
        return answer_from(self.process.stdout, self.buffer, request_id, WAIT)

    def stopped(self) -> tuple[int, str]:
        """The exit code once the process ends (within WAIT) and what it wrote on stderr."""
        try:
            code = self.process.wait(timeout=WAIT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
        return code, self.errors.read_text()

    def stopped_by(self, signum: int) -> tuple[int, str, float]:
        """Send ``signum``; the exit code, stderr and the seconds from the signal to the exit."""
        signalled = time.monotonic()
        self.process.send_signal(signum)
        code, errors = self.stopped()
        return code, errors, time.monotonic() - signalled

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.stopped()


def _hello() -> dict[str, Any]:
    return {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "host", "version": "1"}}


def said_then_release(base: str, server: Server, said: str) -> bool:
    """Let the held creates go on once ``server`` wrote ``said`` on stderr (or once it exited, or WAIT passed):
    whether it had said it."""
    deadline = time.monotonic() + WAIT
    try:
        while said not in server.errors.read_text() and server.process.poll() is None:
            assert time.monotonic() < deadline, f"the server never said {said!r}"
            time.sleep(0.05)
        return said in server.errors.read_text()
    finally:
        release(base)  # never left holding the server's stop


def wait_for_create(base: str, count: int = 1) -> None:
    deadline = time.monotonic() + WAIT
    while creates_sent(base) < count:
        assert time.monotonic() < deadline, "the create never reached the simulator"
        time.sleep(0.05)


def attempts(workspace: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        return db.execute("SELECT state, task_id FROM attempts ORDER BY created").fetchall()


def saved_files(workspace: Path, task_id: str) -> list[str]:
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT path FROM files WHERE task_id = ?", (task_id,))]


def stopped_mid_create(base: str, workspace: Path, stop: Callable[[Server], object]) -> tuple[int, str]:
    """A server started on ``workspace`` and stopped by ``stop`` while its create waits for KIE's answer, which comes
    once the server said it is stopping: its exit code and what it wrote on stderr."""
    hold_creates(base)
    server = Server(base, workspace)
    try:
        server.generate(1, IMAGE["prompt"])
        wait_for_create(base)
        stop(server)
        said_then_release(base, server, "kie-mcp: stopping (")
        return server.stopped()
    finally:
        server.kill()


def lines(errors: str) -> list[str]:
    return [line for line in errors.splitlines() if line.strip()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_host_stopping_the_server_mid_create_keeps_the_task_and_its_result_is_saved_after_a_restart(
    simulator, tmp_path, signum
):
    """SIGINT too: a Ctrl-C in the terminal of a host (an Inspector, ``claude -p``, a script) reaches its whole
    process group, and stopped the server at once, the create left "being sent" without its task."""
    workspace = tmp_path / "workspace"
    code, errors = stopped_mid_create(simulator, workspace, lambda server: server.process.send_signal(signum))
    [(state, task_id)] = attempts(workspace)
    assert state == "created" and task_id, ("the create KIE answered was not recorded", errors)
    assert code == (130 if signum == signal.SIGINT else 128 + signum), errors
    assert f"waiting up to {LANDING_SECONDS:g} s for a create on its way to KIE" in errors
    assert lines(errors)[-1] == (STOPPED if signum == signal.SIGTERM else "kie-mcp: stopped (Ctrl-C).")
    assert "Traceback" not in errors

    restarted = Server(simulator, workspace)  # nobody asks about the task: the follower takes it up at start
    try:
        deadline = time.monotonic() + WAIT
        while not saved_files(workspace, task_id) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        restarted.kill()
    [path] = saved_files(workspace, task_id)
    assert (workspace / path).is_file()
    assert creates_sent(simulator) == 1


def test_a_host_closing_stdin_mid_create_is_told_the_server_waits_for_it_and_the_task_is_kept(simulator, tmp_path):
    """Stdin closed (a host quitting: the MCP SDK's client does so before its SIGTERM) while a create is on its way:
    the server waited for KIE's answer, up to the create's own deadline, saying nothing. It says so, as a signal's
    stop does, and the task KIE made is recorded."""
    workspace = tmp_path / "workspace"
    code, errors = stopped_mid_create(simulator, workspace, lambda server: server.process.stdin.close())
    said = "kie-mcp: stopping (stdin closed): waiting for a create on its way to KIE, so that the task it made is "
    assert said in errors, errors
    assert f"A SIGTERM stops it within {LANDING_SECONDS:g} s." in errors, errors
    assert code == 0, errors
    [(state, task_id)] = attempts(workspace)
    assert state == "created" and task_id, ("the create KIE answered was not recorded", errors)
    assert "Traceback" not in errors


def test_no_create_starts_after_a_host_asked_the_server_to_stop(simulator, tmp_path):
    """A call that reaches its create once SIGTERM came is answered that nothing was sent, and sends nothing. The
    first create is held until that answer came: the server is still stopping when the call arrives, however slow
    the machine."""
    workspace = tmp_path / "workspace"
    hold_creates(simulator)
    server = Server(simulator, workspace)
    try:
        server.generate(1, IMAGE["prompt"])
        wait_for_create(simulator)
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WAIT
        while "kie-mcp: stopping (SIGTERM)" not in server.errors.read_text():  # the signal came before the call
            assert time.monotonic() < deadline and server.process.poll() is None, server.errors.read_text()
            time.sleep(0.05)
        try:
            server.generate(2, "a green pear on a wooden table")
            late = server.answer(2)["result"]
        finally:
            released = release(simulator)  # KIE answers the first create: the server can stop
        code, errors = server.stopped()
    finally:
        server.kill()
    assert released == 1  # the first create was still held when the call was answered: the server was stopping
    assert code == 128 + signal.SIGTERM, errors
    assert "Not sent: kie-mcp was stopping" in json.dumps(late), late
    assert "nothing charged" in json.dumps(late), late
    assert creates_sent(simulator) == 1
    assert [state for state, _ in attempts(workspace)] == ["created"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_stops_the_server_at_once(simulator, tmp_path, signum):
    """SIGINT too: started by a host, a first SIGINT (a Ctrl-C in the host's terminal) waits as SIGTERM does. The
    second ends the process before the first one's wait for the create would have (``LANDING_SECONDS`` after it),
    however long the steps between take on a loaded machine."""
    workspace = tmp_path / "workspace"
    slow_creates(simulator, 60.0)
    server = Server(simulator, workspace)
    name = signal.Signals(signum).name
    try:
        server.generate(1, IMAGE["prompt"])
        wait_for_create(simulator)
        first = time.monotonic()
        server.process.send_signal(signum)
        deadline = time.monotonic() + WAIT
        while f"stopping ({name})" not in server.errors.read_text() and server.process.poll() is None:
            assert time.monotonic() < deadline, f"the first {name} said nothing"
            time.sleep(0.05)
        assert server.process.poll() is None, f"the first {name} did not wait for the create on its way"
        server.process.send_signal(signum)
        code, errors = server.stopped()
        took = time.monotonic() - first
    finally:
        server.kill()
    assert code == (130 if signum == signal.SIGINT else 128 + signum), errors
    # Not the first signal's wait for the create (KIE answers it in 60 s): that ends LANDING_SECONDS after the first
    # signal, saying the create got no answer; the second ended it before, without a word of that
    assert "got no answer from KIE" not in errors, errors
    assert took < LANDING_SECONDS, took
    assert lines(errors)[-1] == (STOPPED if signum == signal.SIGTERM else "kie-mcp: stopped (Ctrl-C).")
    assert [state for state, _ in attempts(workspace)] == ["sending"]  # never answered: stopped mid-create


def test_a_create_that_gets_no_answer_holds_a_stop_for_a_bounded_time(simulator, tmp_path):
    """KIE does not answer the create: the stop waits ``LANDING_SECONDS``, says so, and exits; the next start
    counts the create as unknown, as after any stop mid-create."""
    workspace = tmp_path / "workspace"
    slow_creates(simulator, 60.0)
    server = Server(simulator, workspace)
    try:
        server.generate(1, IMAGE["prompt"])
        wait_for_create(simulator)
        code, errors, took = server.stopped_by(signal.SIGTERM)
    finally:
        server.kill()
    assert code == 128 + signal.SIGTERM, errors
    assert LANDING_SECONDS - 0.5 <= took < WAIT, took  # the wait, then the exit: never KIE's 60 s answer
    assert f"1 create(s) got no answer from KIE in {LANDING_SECONDS:g} s" in errors
    assert lines(errors)[-1] == STOPPED
    assert [state for state, _ in attempts(workspace)] == ["sending"]


async def release_once_said(base: str, errors: Path, said: str) -> bool:
    """Let the held create go on once the server wrote ``said`` on stderr (WAIT at most); whether it did."""
    import anyio

    written = anyio.Path(errors)
    try:
        with anyio.move_on_after(WAIT):
            while said not in await written.read_text():  # noqa: ASYNC110 - another process writes it: nothing to await
                await anyio.sleep(0.05)
        return said in await written.read_text()
    finally:
        await anyio.to_thread.run_sync(release, base)  # never left holding the server's stop


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_quitting_a_host_while_a_create_is_on_its_way_keeps_the_task(simulator, tmp_path, mode, monkeypatch):
    """The MCP SDK's client stops its server so: stdin closed, 2 s, SIGTERM, 2 s, SIGKILL. A create KIE answered
    after the SIGTERM was lost at it; it lands before the SIGKILL, and is recorded, and the server then exits.

    Ordered by events, not by guesses at how long each step takes on a loaded machine: KIE's answer is held until the
    server said it stops for the SIGTERM, and the SDK's 2 s from SIGTERM to SIGKILL are made WAIT (a server left
    waiting is still killed then), so that a slow machine's answer is never mistaken for a lost one."""
    import anyio
    from mcp import Client, StdioServerParameters
    from mcp.client import stdio

    monkeypatch.setattr(stdio, "FORCE_KILL_TIMEOUT", WAIT)
    workspace = tmp_path / "workspace"
    hold_creates(simulator)
    params = StdioServerParameters(command=console_script(), env=environment(simulator, workspace))
    errors = tmp_path / "server.stderr"
    with errors.open("w") as errlog:
        async with anyio.create_task_group() as outer:
            terminated = "kie-mcp: stopping (SIGTERM): waiting up to"
            heard: list[bool] = []

            async def release_at_the_sigterm() -> None:
                heard.append(await release_once_said(simulator, errors, terminated))

            client = Client(stdio.stdio_client(params, errlog=errlog), mode=mode)
            async with client, anyio.create_task_group() as group:
                group.start_soon(client.call_tool, "generate_image", IMAGE)
                with anyio.fail_after(WAIT):
                    while not creates_sent(simulator):  # noqa: ASYNC110 - the simulator's log: nothing to await
                        await anyio.sleep(0.05)
                outer.start_soon(release_at_the_sigterm)
                group.cancel_scope.cancel()  # the user quits the host: it closes the connection
    said = errors.read_text()
    assert heard == [True], ("the SIGTERM did not find the create on its way", said)
    [(state, task_id)] = attempts(workspace)
    assert state == "created" and task_id, ("the create KIE answered was not recorded", said)
    assert lines(said)[-1] == STOPPED, said  # it exited by itself once the create was recorded, before any SIGKILL
    assert creates_sent(simulator) == 1
