"""Credits held while a request's input files upload never hold the daily cap once nobody uploads them.

An approved request with local files reserves its credits before the files go up (a request the caps refuse then has
published nothing), held under a ref naming its process until the files are up. The review found a server stopped
mid-upload kept today's cap for an hour with nothing made: the hold was released at once only when its process could
be seen gone, which a server in a container of its own (``docker run -i --rm``: a PID namespace per session), before
a reboot, or on another machine cannot be. Now:

- a host's SIGTERM (``docker stop``) gives this process's holds back before it exits;
- a hold is a lease, renewed while its files go up: one a killed server left lapses minutes later, whoever looks;
- a request refused meanwhile says the credits are held for uploads under way, not spent.

The servers that stop run over real stdio, the installed console script, in a PID namespace of their own where this
machine allows one (``unshare``), against the simulator in its own process; the next server is spoken to through the
MCP SDK's client, in both protocol eras.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from PIL import Image

from kie_mcp.journal import journal_path
from kie_mcp.spend import ledger
from kie_mcp.spend.ledger import HELD

from .conftest import simulator_running, text_of
from .test_promise_stop import Server, environment
from .test_terminal import console_script

pytestmark = [pytest.mark.stdio, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

WAIT = 30.0
IMAGE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table"}  # 8 credits
WITH_FILE = {**IMAGE, "images": ["references/face.png"]}
LAPSED = 240.0  # four minutes unrenewed: past the lease (``ledger.HOLD_LEASE``, three), far short of an hour
ERAS = pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])


@pytest.fixture
def simulator() -> Iterator[str]:
    yield from simulator_running("1000", kill=True)  # an upload held by a slow fault would hold a graceful stop


def own_namespace() -> list[str]:
    """The command that starts a process in a PID namespace of its own, as a container does; [] where this machine
    does not allow it (not root, no ``unshare``)."""
    try:
        command = ["unshare", "-p", "-f", "--mount-proc", "true"]
        probe = subprocess.run(command, check=False, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return ["unshare", "-p", "-f", "--mount-proc"] if probe.returncode == 0 else []


def workspace_with_a_picture(tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    (workspace / "references").mkdir(parents=True)
    Image.new("RGB", (1200, 900), (30, 90, 160)).save(workspace / "references" / "face.png")
    return workspace


def slow_uploads(base: str) -> None:
    """KIE's file host takes the next upload's bytes only after 30 s."""
    fault = {"endpoint": "upload", "fault": {"kind": "slow", "seconds": 30}, "times": 1}
    httpx2.post(f"{base}/__sim/faults", json=fault, timeout=10).raise_for_status()


def wait_for_upload(base: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        items = httpx2.get(f"{base}/__sim/requests", timeout=10).json()
        if any("upload" in r["path"] for r in (items if isinstance(items, list) else items["requests"])):
            return
        assert time.monotonic() < deadline, "the upload never reached the simulator"
        time.sleep(0.05)


def creates_made(base: str) -> int:
    tasks = httpx2.get(f"{base}/__sim/tasks", timeout=10).json()
    return len(tasks if isinstance(tasks, list) else tasks["tasks"])


def held(workspace: Path) -> list[tuple[float, float]]:
    """The held reservations in the journal: (credits, when last renewed)."""
    with sqlite3.connect(journal_path(workspace)) as db:
        return db.execute("SELECT delta, at FROM spend WHERE reason = ?", (HELD,)).fetchall()


class Uploading(Server):
    """The installed kie-mcp over real stdio (in a PID namespace of its own where ``prefix`` says so), sending an
    approved request whose input file is uploading."""

    def __init__(self, base: str, workspace: Path, prefix: list[str]) -> None:
        super().__init__(base, workspace, prefix=prefix, KIE_MAX_CREDITS_PER_DAY="8")
        call = {"name": "generate_image", "arguments": WITH_FILE}
        self.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
        wait_for_upload(base)

    def server_pid(self) -> int:
        """The server's process id as this machine sees it: ``unshare``'s child in a namespace of its own."""
        deadline = time.monotonic() + WAIT
        while True:
            for entry in os.listdir("/proc"):
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    command = Path(f"/proc/{entry}/cmdline").read_bytes()
                except (OSError, ValueError):
                    continue
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                if parent == self.process.pid and b"kie-mcp" in command:
                    return int(entry)
            if b"kie-mcp" in Path(f"/proc/{self.process.pid}/cmdline").read_bytes().split(b"\0")[0]:
                return self.process.pid  # no namespace of its own: the server itself
            assert time.monotonic() < deadline, "the server's process was not found"
            time.sleep(0.05)

    def stop(self, signum: int) -> str:
        """Send ``signum`` to the server and wait for it to end; what it wrote on stderr."""
        os.kill(self.server_pid(), signum)
        return self.stopped()[1]


def next_server(base: str, workspace: Path) -> StdioServerParameters:
    """Another server on the workspace, as the next session's container starts it (or the same host again)."""
    env = {**environment(base, workspace), "KIE_MAX_CREDITS_PER_DAY": "8"}
    return StdioServerParameters(command=console_script(), env=env)


@ERAS
async def test_a_server_stopped_while_its_input_file_uploads_gives_its_credits_back_before_it_exits(
    simulator, tmp_path, mode
):
    """The review: ``docker stop`` (SIGTERM) of a server uploading an input file left its held reservation, and the
    next container's server refused the request that fills the day's cap ("only 0 of today's cap of 8 are left") for
    an hour, with nothing made. The stop gives it back, and lets go of the request its auto approval held; the next
    server's day is whole, and the request is auto-approved there."""
    workspace = workspace_with_a_picture(tmp_path)
    slow_uploads(simulator)
    uploading = Uploading(simulator, workspace, own_namespace())
    try:
        assert [credits for credits, _ in held(workspace)] == [8.0]  # held while the file goes up
        errors = uploading.stop(signal.SIGTERM)
    finally:
        uploading.kill()
    assert errors.strip().splitlines()[-1] == "kie-mcp: stopped (SIGTERM).", errors
    assert held(workspace) == []
    with sqlite3.connect(journal_path(workspace)) as db:  # nor does it hold the request (its auto approval) any more
        assert db.execute("SELECT quote_id FROM quotes WHERE kind = 'auto'").fetchall() == []
    async with Client(next_server(simulator, workspace), mode=mode) as client:
        credits = (await client.call_tool("check_credits", {})).structured_content
        made = await client.call_tool("generate_image", {**WITH_FILE, "wait_seconds": 0})
    assert credits["spent_today"] == 0, credits
    assert not made.is_error and made.structured_content["tasks"][0]["task_id"], text_of(made)
    assert creates_made(simulator) == 1


@ERAS
async def test_a_hold_a_killed_server_elsewhere_left_lapses_within_minutes_and_is_said_held_meanwhile(
    simulator, tmp_path, mode
):
    """The review: a server in a PID namespace of its own, killed while its input file uploaded, left a hold this
    machine cannot tell is abandoned (that process may live on, for all it can see), and it counted as spent for an
    hour. Its upload, were it still running, would renew it: unrenewed for ``ledger.HOLD_LEASE`` (three minutes), it
    is released by whoever looks. Until then a request the hold crowds out says the credits are held for uploads
    under way."""
    prefix = own_namespace()
    if not prefix:
        pytest.skip("no PID namespace of its own for a process here (unshare needs root)")
    workspace = workspace_with_a_picture(tmp_path)
    slow_uploads(simulator)
    uploading = Uploading(simulator, workspace, prefix)
    try:
        uploading.stop(signal.SIGKILL)
    finally:
        uploading.kill()
    assert [credits for credits, _ in held(workspace)] == [8.0]  # nothing could run to give it back
    async with Client(next_server(simulator, workspace), mode=mode) as client:
        crowded = await client.call_tool("generate_image", WITH_FILE)
        with sqlite3.connect(journal_path(workspace)) as db:  # minutes pass: nobody renews it, nor its request's hold
            db.execute("UPDATE spend SET at = at - ? WHERE reason = ?", (LAPSED, HELD))
            db.execute("UPDATE quotes SET expires = expires - ? WHERE kind = 'auto'", (LAPSED,))
        credits = (await client.call_tool("check_credits", {})).structured_content
        made = await client.call_tool("generate_image", {**WITH_FILE, "wait_seconds": 0})
    said = text_of(crowded)
    assert crowded.is_error and "only 0 of today's cap of 8" in said, said
    assert "(0 spent today, 8 held for uploads under way" in said, said
    assert credits["spent_today"] == 0, credits
    assert not made.is_error and made.structured_content["tasks"][0]["task_id"], text_of(made)
    assert held(workspace) == [] and creates_made(simulator) == 1
    assert ledger.HOLD_LEASE < LAPSED


async def test_a_hold_is_renewed_while_its_file_uploads_so_it_never_lapses_under_a_live_upload(
    connect, controls, sim, tmp_path, monkeypatch
):
    """The lease, shortened here (renewed every 0.05 s, lapsing after 0.5 s unrenewed) so that an upload outlives
    it: the hold is renewed while the file goes up, so another request meanwhile still finds the cap held (and is
    told so), and the upload's own request is made with it once its file is up."""
    monkeypatch.setattr(ledger, "HOLD_RENEW", 0.05, raising=False)
    monkeypatch.setattr(ledger, "HOLD_LEASE", 0.5, raising=False)
    workspace_pictures = tmp_path / "references"
    workspace_pictures.mkdir()
    Image.new("RGB", (1200, 900), (30, 90, 160)).save(workspace_pictures / "face.png")
    await controls.fault("upload", kind="slow", seconds=2.0)
    answers: list[Any] = []
    async with connect(max_credits_per_day=10, auto_approve_credits=10) as client:

        async def with_file() -> None:
            answers.append(await client.call_tool("generate_image", {**WITH_FILE, "wait_seconds": 30}))

        async with anyio.create_task_group() as group:
            group.start_soon(with_file)
            with anyio.fail_after(10):
                while not any("upload" in r.path for r in sim.requests):  # noqa: ASYNC110 - the simulator's log
                    await anyio.sleep(0.02)
            [(_, first)] = held(tmp_path)
            await anyio.sleep(1.0)  # twice the lease
            [(_, renewed)] = held(tmp_path)
            meanwhile = await client.call_tool("generate_image", {**IMAGE, "prompt": "a pear", "wait_seconds": 0})
            credits = await client.call_tool("check_credits", {})
    assert renewed - first >= 0.5, (first, renewed)
    said = text_of(meanwhile)
    assert meanwhile.is_error and "8 held for uploads under way" in said, said
    # check_credits says the same, not only "spent" (the held credits are given back if the request fails)
    assert "Spent today through kie-mcp: 8 credits, 8 of it held for uploads under way" in text_of(credits), text_of(
        credits
    )
    [made] = answers
    assert made.structured_content["status"] == "completed", text_of(made)
    assert held(tmp_path) == [] and len(await controls.creates()) == 1
