"""A host that stops reading the server's stdout never stops the follower: finished tasks are saved all the same.

The audit, over real stdio with a 2025-11-25 host: the follower sent each "task ended" log message and each resource
update itself, waiting with no time limit while it held its look and finish slots. Once the host stopped reading (the
pipe full), 8 finished tasks blocked every finish slot and no further task was saved; with a resources/subscribe to
kie://tasks, the first state change blocked its look and nothing was saved at all. The follower now queues what it
tells a client (``tasks/outbox.py``), sent by one task per connection, and goes on.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.server.connection import Connection

IMAGES = 10  # more than the follower's finish slots (ENDS_AT_ONCE: 8), so the ended lines alone blocked it
SMALL_PIPE = 4096  # the host's end of stdout, made as small as Linux allows: a few answers fill it
WAIT = 30.0  # seconds for what should take milliseconds, on a loaded machine


class Host:
    """``kie-mcp --sandbox`` over real pipes, as a host that can stop reading its stdout: what it sends waits in a
    small pipe until ``read`` is called."""

    def __init__(self, workspace: Path) -> None:
        script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
        assert script
        env = {**os.environ, "KIE_WORKSPACE": str(workspace), "KIE_AUTO_APPROVE_CREDITS": "1000"}
        self.out, write_end = os.pipe()
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux; elsewhere the default pipe (64 KiB) fills all the same
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, SMALL_PIPE)
        self.err = open(workspace / "stderr.log", "wb")  # noqa: SIM115 - closed in ``close``
        self.server = subprocess.Popen(
            [script, "--sandbox"], stdin=subprocess.PIPE, stdout=write_end, stderr=self.err, env=env
        )
        os.close(write_end)
        self.buffer = b""
        self.heard: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        assert self.server.stdin is not None
        self.server.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        self.server.stdin.flush()

    def read(self, until: Any, seconds: float = 30) -> None:
        """Read what the server sends until ``until(heard)`` holds."""
        deadline = time.monotonic() + seconds
        while not until(self.heard):
            left = deadline - time.monotonic()
            assert left > 0, f"not heard in {seconds} s; heard: {[m.get('method', m.get('id')) for m in self.heard]}"
            ready, _, _ = select.select([self.out], [], [], left)
            chunk = os.read(self.out, 1 << 20) if ready else b""
            assert chunk or not ready, "the server closed its stdout"
            self.buffer += chunk
            *lines, self.buffer = self.buffer.split(b"\n")
            self.heard += [json.loads(line) for line in lines if line.strip()]

    def answer(self, request_id: int) -> dict[str, Any]:
        self.read(lambda heard: any(m.get("id") == request_id and "method" not in m for m in heard))
        return next(m for m in self.heard if m.get("id") == request_id and "method" not in m)

    def stop_reading(self, requests: int = 20) -> None:
        """Ask for answers (the model tables, ~46 kB each) this host does not read until the pipe is full and stays
        full: from then on every message the server sends waits."""
        for n in range(requests):
            self.send({"id": 100 + n, "method": "resources/read", "params": {"uri": "kie://models"}})
        full = fcntl.fcntl(self.out, fcntl.F_GETPIPE_SZ) if hasattr(fcntl, "F_GETPIPE_SZ") else None
        unread, steady_since, deadline = -1, time.monotonic(), time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _unread(self.out)
            if now != unread:
                unread, steady_since = now, time.monotonic()
            if (full is not None and now >= full) or (full is None and now and time.monotonic() - steady_since > 1):
                return
            time.sleep(0.02)
        raise AssertionError(f"the pipe never filled ({unread} bytes unread)")

    def close(self) -> int | None:
        """Close stdin (the host goes away), reading what is left meanwhile; the exit status (None: killed)."""
        assert self.server.stdin is not None
        self.server.stdin.close()
        deadline = time.monotonic() + 30
        while self.server.poll() is None and time.monotonic() < deadline:
            if select.select([self.out], [], [], 0.1)[0] and not os.read(self.out, 1 << 20):
                break
        try:
            exited: int | None = self.server.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
            exited = None
        os.close(self.out)
        self.err.close()
        return exited


def _unread(fd: int) -> int:
    import array
    import termios

    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def saved_images(workspace: Path) -> list[Path]:
    outputs = workspace / "sandbox" / "outputs"  # --sandbox works in the workspace's sandbox area
    found = outputs.rglob("*") if outputs.is_dir() else []
    return [p for p in found if p.is_file() and p.suffix in (".png", ".jpg", ".jpeg", ".webp") and p.name[0] != "."]


@pytest.mark.stdio
@pytest.mark.parametrize("subscribed", [True, False], ids=["subscribed-to-the-task-list", "task-ended-lines-only"])
def test_a_host_that_stops_reading_never_stops_finished_tasks_being_saved(tmp_path, subscribed):
    """The host fills the pipe and reads nothing more; then it asks for 10 images (it reads no answer): every one is
    saved within seconds. Once it reads again it is sent everything in turn: the answers, a "task ended" line per
    task, and the task list's update."""
    host = Host(tmp_path)
    try:
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        host.send({"id": 1, "method": "initialize", "params": hello})
        host.answer(1)
        host.send({"method": "notifications/initialized"})
        if subscribed:  # each state change of a task is sent from the follower's look
            host.send({"id": 2, "method": "resources/subscribe", "params": {"uri": "kie://tasks"}})
            assert host.answer(2)["result"] == {}
        host.stop_reading()
        arguments = {"prompt": "a red apple", "model": "nano-banana-2", "variations": IMAGES, "wait_seconds": 0}
        host.send({"id": 3, "method": "tools/call", "params": {"name": "generate_image", "arguments": arguments}})
        deadline = time.monotonic() + 20  # a few seconds with the sandbox's clock; the old follower saved 8 at most
        while len(saved_images(tmp_path)) < IMAGES and time.monotonic() < deadline:
            time.sleep(0.1)
        saved = saved_images(tmp_path)

        made = host.answer(3)  # reading again: everything held back arrives
        tasks = [task["task_id"] for task in made["result"]["structuredContent"]["tasks"]]

        def told(heard: list[dict[str, Any]]) -> bool:
            lines = [str(m["params"]["data"]) for m in heard if m.get("method") == "notifications/message"]
            ended = all(any(line.startswith(f"Task {task} ") for line in lines) for task in tasks)
            updated = any(m.get("method") == "notifications/resources/updated" for m in heard)
            answered = {m.get("id") for m in heard if "method" not in m} >= set(range(100, 120))
            return ended and answered and (updated or not subscribed)

        host.read(told)
    finally:
        exited = host.close()
    assert len(saved) == IMAGES, f"{len(saved)} of {IMAGES} images saved while the host did not read"
    assert len(tasks) == IMAGES
    updates = [m["params"]["uri"] for m in host.heard if m.get("method") == "notifications/resources/updated"]
    assert set(updates) <= {"kie://tasks"} and bool(updates) == subscribed
    assert exited == 0
    assert b"Traceback" not in (tmp_path / "stderr.log").read_bytes()


class _Unread:
    """The SDK connection's outbound channel of a client that reads nothing until ``reading`` is set."""

    def __init__(self) -> None:
        self.reading = anyio.Event()
        self.offered = anyio.Event()  # a message waits on the client
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def notify(self, method: str, params: Any, opts: Any = None) -> None:
        self.offered.set()
        await self.reading.wait()
        self.sent.append((method, dict(params or {})))

    def said(self) -> list[Any]:
        return [params.get("uri") or params.get("data") for _, params in self.sent]

    async def send_raw_request(self, method: str, params: Any, opts: Any = None) -> Any:
        raise NotImplementedError


async def test_a_client_that_does_not_read_is_sent_the_newest_once_it_reads_and_told_how_many_were_dropped():
    """What waits for one client is bounded: an update of a resource already waiting is not queued again (unless a
    task ended line came between), the oldest task ended lines go first when it is full, and once the client reads
    again it is told how many were dropped. Nothing is sent after its connection closed."""
    from kie_mcp.tasks.outbox import QUEUED, Outboxes

    channel = _Unread()
    connection = Connection(channel, protocol_version="2025-11-25")
    outboxes = Outboxes(lambda level: True)
    box = outboxes.of(connection)
    async with anyio.create_task_group() as group:
        group.start_soon(outboxes.run)
        box.updated("kie://tasks/first")  # taken by the sender at once: it waits on the client with it
        with anyio.move_on_after(WAIT):
            await channel.offered.wait()
        assert channel.offered.is_set(), "the sender never offered the client the first update"
        box.updated("kie://tasks/a")
        box.updated("kie://tasks")
        box.updated("kie://tasks/a")  # merged into the one waiting
        box.log("info", "Task a ended", about="kie://tasks/a")
        box.updated("kie://tasks/a")  # after its ended line: sent after it
        for n in range(QUEUED):
            box.log("info", f"line {n}")
        channel.reading.set()
        with anyio.move_on_after(WAIT):  # until the last one put is sent (they go in order)
            while f"line {QUEUED - 1}" not in channel.said():  # noqa: ASYNC110 - sent one by one, nothing to await
                await anyio.sleep(0.01)
        await connection.exit_stack.aclose()  # the connection closes: what is put now is never sent
        box.updated("kie://tasks")
        box.log("info", "too late")
        await anyio.wait_all_tasks_blocked()  # the sender had every chance to send them
        group.cancel_scope.cancel()
    said = channel.said()
    # The first message through tells the client what it missed; the oldest log lines went, the updates stayed.
    assert said[0] == "kie://tasks/first" and said[1].startswith("kie-mcp dropped 4 of its messages"), said[:6]
    assert said[2:5] == ["kie://tasks/a", "kie://tasks", "kie://tasks/a"]
    assert said[5:] == [f"line {n}" for n in range(3, QUEUED)]  # "Task a ended", lines 0-2 dropped; not "too late"
