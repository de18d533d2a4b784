"""KIE's limits are per key: kie-mcp servers on one key on one machine (two projects open side by side, Claude Desktop
and Cursor) share its windows, so together they stay within 10 status calls a second and 20 creates in 10 s.

The audit: two servers on one key, each following 120 unfinished tasks of its own workspace, sent 240 status calls in
30 s, 20 in one second, and KIE refused 120 of them (429); each server paced itself alone. They now share one small
file per key in the user's cache folder (``pacing.SharedBudget``); a file that cannot be used makes a process pace
alone, as before, with one log line and never an error.

The servers here are real processes (the console script over stdio, through the MCP SDK client) against one
simulator served over TCP from the test's process, which counts status calls as they arrive.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from kie_mcp.journal import Journal
from kie_mcp.kie import FAMILIES, KieClient
from kie_mcp.kie.pacing import SharedBudget, SlidingWindow
from kie_mcp.sandbox import SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server
from kie_mcp.spend import grant
from kie_mcp.tasks.records import TaskBook, TaskRecord

from .conftest import API, UPLOADS, answering, eras_in_turn, served_over_tcp, text_of
from .test_pacing import max_in_window
from .test_promise_start import client_env, console_script

KEY = "kie-shared-pacing-7d1f0c9a4b2e8f63a5c1"  # a key of the simulator's account, as a real one would be
MODEL = "kling-2.6/text-to-video"  # minutes long at the simulator's real-time speed: unfinished throughout
BODY = {"model": MODEL, "input": {"prompt": "a fox", "duration": "5", "sound": False, "aspect_ratio": "16:9"}}
STATUS_PATHS = {family.status_path for family in FAMILIES.values()}
ALONE = "paced by this process alone"


def simulator() -> Simulator:
    """KIE at real time (a simulated second is a real one) with ``KEY``: 10 status calls per second per key,
    refused over it with 429 as KIE does, counted on arrival."""
    config = SimConfig(speed=1.0, create_limit=0, max_running_tasks=10_000, starting_balance=1e9)
    return Simulator(config, keys={KEY: "default"})


async def unfinished_tasks(sim: Simulator, count: int) -> list[str]:
    """``count`` tasks made on the simulator with ``KEY`` (a client of the test's own, its creates unpaced)."""
    kie = KieClient(
        api_key=KEY,
        base_url=API,
        upload_base_url=UPLOADS,
        transport=SandboxTransport(sim),
        create_window=SlidingWindow(10_000, 1.0),
    )
    approval = grant(MODEL, count, "quote", None)
    try:
        return [await kie.create(FAMILIES["market"], MODEL, BODY, approval) for _ in range(count)]
    finally:
        await kie.aclose()


def workspace_following(folder: Path, task_ids: list[str]) -> Path:
    """A workspace whose journal holds ``task_ids`` as unfinished tasks made 100 s ago: due for a look at once."""
    folder.mkdir()
    journal = Journal.for_workspace(folder)
    book = TaskBook(journal)
    made = time.time() - 100
    for task_id in task_ids:
        book.add(
            TaskRecord(task_id=task_id, model=MODEL, family="market", kind="video", state="queued", created_at=made)
        )
    journal.close()
    return folder


def status_arrivals(sim: Simulator) -> list[float]:
    return [request.at for request in sim.requests if request.path in STATUS_PATHS]


def both_at_work(sim: Simulator, tasks: list[str]) -> bool:
    """20 status calls or more have arrived, and each server (its own 20 tasks) sent some."""
    asked = [request.query.get("taskId") for request in sim.requests if request.path in STATUS_PATHS]
    return len(asked) >= 20 and bool(set(asked) & set(tasks[:20])) and bool(set(asked) & set(tasks[20:]))


def refused(sim: Simulator) -> int:
    """Status calls the simulator refused (429): every one that arrived, less those it counted (each counted read
    is a look at a task)."""
    return len(status_arrivals(sim)) - sum(task.polls for task in sim.tasks.values())


# -- two servers on one key -----------------------------------------------------------------------------------------


@pytest.mark.stdio
async def test_two_servers_on_one_key_send_at_most_10_status_calls_a_second_together_and_meet_no_429(tmp_path):
    """Two real server processes on one key, each following 20 unfinished tasks of its own workspace (all due at
    once): together never more than 10 status calls in any second as the simulator counts them on arrival, and not
    one 429. Before, each sent its own 10 a second: 20 together, and KIE refused half."""
    sim = simulator()
    tasks = await unfinished_tasks(sim, 40)
    spaces = [workspace_following(tmp_path / f"project-{n}", tasks[n * 20 : (n + 1) * 20]) for n in range(2)]
    errors = [(tmp_path / f"server-{n}.err").open("w+") for n in range(2)]
    async with served_over_tcp(sim) as base:

        async def serve(n: int, mode: str, done: anyio.Event) -> None:
            env = client_env(
                tmp_path / "home",  # one user: one cache folder, where the key's file is
                KIE_API_KEY=KEY,
                KIE_BASE_URL=base,
                KIE_UPLOAD_BASE_URL=base,
                KIE_WORKSPACE=str(spaces[n]),
                KIE_CATALOG_SYNC="off",
            )
            params = StdioServerParameters(command=console_script(), args=[], env=env)
            async with Client(stdio_client(params, errlog=errors[n]), mode=mode, read_timeout_seconds=20) as client:
                listed = await client.call_tool("list_tasks", {})  # opens its runtime: its follower starts
                assert not listed.is_error, text_of(listed)
                await done.wait()

        done = anyio.Event()
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(serve, 0, "auto", done)  # one client in each protocol era
                group.start_soon(serve, 1, "legacy", done)
                while not both_at_work(sim, tasks):  # noqa: ASYNC110 - the simulator's log: 2 s at 10 a second
                    await anyio.sleep(0.05)
                done.set()
    arrivals = status_arrivals(sim)
    logged = []
    for handle in errors:
        handle.seek(0)
        logged.append(handle.read())
        handle.close()
    assert max_in_window(arrivals, 1.0) <= 10, sorted(arrivals)
    assert refused(sim) == 0
    assert not [text for text in logged if ALONE in text], logged


@pytest.mark.parametrize("mode", ["auto"])  # the pacing, not the protocol era: once
async def test_the_sandbox_paces_itself_and_never_shares_a_window_with_a_key(settings, tmp_path, monkeypatch, mode):
    """``--sandbox``'s simulator runs in the server's own process: its windows are that server's alone, and nothing
    is written where the windows of real keys are shared."""
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path / "cache"))
    async with Client(create_server(settings.for_sandbox()), mode=mode, elicitation_callback=answering()) as client:
        made = await client.call_tool("generate_image", {"prompt": "an apple", "model": "nano-banana-2"})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert not (tmp_path / "cache" / "pacing").exists()


# -- what another process holds --------------------------------------------------------------------------------------

HOLDER = """
import sys, anyio
from kie_mcp.kie.pacing import SharedBudget, SlidingWindow

async def main():
    window = SlidingWindow(2, 0.5, shared=SharedBudget(sys.argv[1], sys.argv[2], held_at_most=600), name="create")
    slots = [await window.hold(), await window.hold()]
    print("held", flush=True)
    if sys.stdin.readline().strip() == "answer":
        for slot in slots:
            slot.answered()
        print("answered", flush=True)
    sys.stdin.readline()

anyio.run(main)
"""


def holding_both_slots(cache: Path) -> subprocess.Popen[str]:
    """Another process that takes both slots of a shared window (2 per 0.5 s) and holds them, its requests sent
    and unanswered; ``answer`` on its stdin answers them."""
    env = {**os.environ, "KIE_CACHE_DIR": str(cache)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, KEY, API], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def this_process_window() -> SlidingWindow:
    return SlidingWindow(2, 0.5, shared=SharedBudget(KEY, API, held_at_most=600), name="create")


async def test_a_slot_another_process_holds_is_this_process_s_a_window_after_its_answer_and_not_before(
    tmp_path, monkeypatch
):
    """A create's slot is held in the key's file from before it is sent until its answer, and leaves the window a
    window (and margin) after the answer: no sooner, whatever process asks, and no later than that either."""
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path))
    holder = holding_both_slots(tmp_path)
    try:
        window = this_process_window()
        with anyio.move_on_after(0.8) as waiting:
            await window.hold()
        assert waiting.cancelled_caught, "granted while another process held every slot, unanswered"
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write("answer\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "answered"
        started = time.monotonic()
        (await window.hold()).answered()
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.communicate()
    assert 0.4 <= waited < 3.0, waited  # 0.55 s after the answer (a window and its margin), not its 600 s deadline


async def test_the_slots_of_a_killed_process_leave_the_window_instead_of_holding_it_until_their_deadline(
    tmp_path, monkeypatch
):
    """A process killed with its requests in flight: they may have been counted up to its end, so its slots leave
    the window a window (and margin) after it is found gone, not at their deadline ten minutes on."""
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path))
    holder = holding_both_slots(tmp_path)
    holder.kill()
    holder.communicate()
    window = this_process_window()
    started = time.monotonic()
    with anyio.fail_after(5):
        (await window.hold()).answered()
    assert time.monotonic() - started >= 0.4


# -- a file that cannot be shared ------------------------------------------------------------------------------------


def damaged(path: Path) -> None:
    path.write_bytes(b"\x00\x17not what kie-mcp writes\n")


def a_folder(path: Path) -> None:
    path.mkdir()


def writable_by_others(path: Path) -> None:
    """The key's file made writable by every user (as another user's file put in its place would be)."""
    path.write_bytes(b"")
    path.chmod(0o666)


def in_a_folder_open_to_others(path: Path) -> None:
    """The pacing folder writable by every user (as one another user made first in a shared ``KIE_CACHE_DIR`` is):
    they could put a file of theirs in place of the key's."""
    path.parent.chmod(0o777)


@pytest.mark.parametrize(
    "spoil",
    [damaged, a_folder, writable_by_others, in_a_folder_open_to_others, None],
    ids=["damaged", "a-folder-in-its-place", "writable-by-others", "folder-open-to-others", "no-cache-folder"],
)
async def test_a_state_file_that_cannot_be_used_makes_the_process_pace_alone_with_one_log_line(
    spoil, tmp_path, monkeypatch, caplog
):
    """A damaged state file, a folder where it should be, a file or a pacing folder other users may write (trusted,
    another user could hold this one's requests back), or a cache folder that cannot be made (a file in its place,
    as a read-only or full disk would refuse it): every status read is answered, still at most 10 a second and
    without a 429 (this process paces alone, as before), and one log line says why."""
    caplog.set_level(logging.INFO, logger="kie_mcp.kie.pacing")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path / "cache"))
    state = SharedBudget(KEY, API, held_at_most=600).path
    assert state is not None
    if spoil is None:
        (tmp_path / "cache").rename(tmp_path / "elsewhere")
        (tmp_path / "cache").write_text("a file where the cache folder would be")
    else:
        spoil(state)
    sim = simulator()
    tasks = await unfinished_tasks(sim, 12)
    kie = KieClient(
        api_key=KEY, base_url=API, upload_base_url=UPLOADS, transport=SandboxTransport(sim), share_pacing=True
    )
    try:
        with anyio.fail_after(10):
            statuses = await _all_at_once([lambda t=t: kie.status(FAMILIES["market"], t) for t in tasks])
    finally:
        await kie.aclose()
    assert [status.task_id for status in statuses] == tasks
    assert max_in_window(status_arrivals(sim), 1.0) <= 10
    assert refused(sim) == 0
    said = [record.getMessage() for record in caplog.records if ALONE in record.getMessage()]
    assert len(said) == 1, said
    if spoil is damaged:
        assert state.read_bytes() == b"\x00\x17not what kie-mcp writes\n"  # left as it was found
    if spoil is writable_by_others:
        assert "can be written by other users (mode 666)" in said[0] and state.read_bytes() == b""
    if spoil is in_a_folder_open_to_others:
        assert "can be written by other users (mode 777)" in said[0]


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX; on Windows each process paces alone")
@pytest.mark.parametrize("whose", ["folder", "file"])
async def test_a_pacing_folder_or_file_of_another_user_is_never_trusted(whose, tmp_path, monkeypatch, caplog):
    """The folder or the key's file owned by another user (here: this process taken for another user once they are
    made): never used, as they could hold back this user's requests; this process paces alone and says so once."""
    caplog.set_level(logging.INFO, logger="kie_mcp.kie.pacing")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path))
    budget = SharedBudget(KEY, API, held_at_most=600)
    if whose == "file":
        assert budget.path is not None  # folder and secret checked as this user's
        budget.path.write_bytes(b"")
        budget.path.chmod(0o600)
    monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 1)
    window = SlidingWindow(2, 0.5, shared=budget, name="create")
    with anyio.fail_after(2):
        (await window.hold()).answered()
    assert budget.alone and budget.path is None
    said = [record.getMessage() for record in caplog.records if ALONE in record.getMessage()]
    assert len(said) == 1 and f"belongs to another user (uid {os.geteuid()})" in said[0], said


async def test_a_state_file_damaged_long_ago_is_started_over_and_shared(tmp_path, monkeypatch, caplog):
    """A file nobody has written for minutes holds no slot still in a window (the machine stopped while it was being
    written): it is started over, and the key's windows are shared again, with nothing logged."""
    caplog.set_level(logging.INFO, logger="kie_mcp.kie.pacing")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path))
    state = SharedBudget(KEY, API, held_at_most=600).path
    assert state is not None
    damaged(state)
    os.utime(state, (time.time() - 600, time.time() - 600))
    sim = simulator()
    tasks = await unfinished_tasks(sim, 1)
    kie = KieClient(
        api_key=KEY, base_url=API, upload_base_url=UPLOADS, transport=SandboxTransport(sim), share_pacing=True
    )
    try:
        await kie.status(FAMILIES["market"], tasks[0])
    finally:
        await kie.aclose()
    assert not [record for record in caplog.records if ALONE in record.getMessage()]
    assert state.read_bytes().startswith(b'{"v":1,"windows":{"status":{"left":[')


async def test_a_cache_folder_deleted_while_a_server_runs_is_made_again_and_the_key_s_windows_still_shared(
    tmp_path, monkeypatch, caplog
):
    """The cache folder is safe to delete: a process whose key's file went with it makes the folder again (the next
    process to start finds the same file) and goes on sharing, with nothing logged."""
    caplog.set_level(logging.INFO, logger="kie_mcp.kie.pacing")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path / "cache"))
    sim = simulator()
    tasks = await unfinished_tasks(sim, 2)
    kie = sharing_client(sim)
    try:
        await kie.status(FAMILIES["market"], tasks[0])
        shutil.rmtree(tmp_path / "cache")
        await kie.status(FAMILIES["market"], tasks[1])
    finally:
        await kie.aclose()
    assert not [record for record in caplog.records if ALONE in record.getMessage()]
    state = SharedBudget(KEY, API, held_at_most=600).path  # where a server starting now looks
    assert state is not None and state.read_bytes().startswith(b'{"v":1,"windows":{"status":{"left":[')


async def test_servers_whose_cache_folder_was_deleted_while_they_ran_meet_again_in_one_file(
    tmp_path, monkeypatch, caplog
):
    """Two servers on one key, their cache folder deleted while both run: the first to notice makes it again, with a
    new secret and so a new name for the key's file; the other does not make its old name there (each sharing a
    file of its own, their limits no longer together) but finds the file the first made."""
    caplog.set_level(logging.INFO, logger="kie_mcp.kie.pacing")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path / "cache"))
    sim = simulator()
    tasks = await unfinished_tasks(sim, 4)
    first, second = sharing_client(sim), sharing_client(sim)
    try:
        await first.status(FAMILIES["market"], tasks[0])
        await second.status(FAMILIES["market"], tasks[1])
        shutil.rmtree(tmp_path / "cache")
        await first.status(FAMILIES["market"], tasks[2])
        await second.status(FAMILIES["market"], tasks[3])
    finally:
        await first.aclose()
        await second.aclose()
    assert not [record for record in caplog.records if ALONE in record.getMessage()]
    files = sorted(path.name for path in (tmp_path / "cache" / "pacing").glob("*.json"))
    assert len(files) == 1, files
    [state] = (tmp_path / "cache" / "pacing").glob("*.json")
    stamps = json.loads(state.read_bytes().splitlines()[0])["windows"]["status"]
    assert len(stamps["left"]) == 2, stamps  # both servers' status calls since, in one window


# A file in JSON kie-mcp would read, holding a stamp of 401 digits: a number no float holds.
TOO_LARGE = ('{"v":1,"windows":{"x":{"left":[1' + "0" * 400 + '],"held":{}}}}\n').encode()


@eras_in_turn("when", ["before the create", "while the create is in flight"])
async def test_a_pacing_file_holding_what_no_float_holds_never_fails_a_create_nor_loses_its_task_id(
    when, settings, tmp_path, monkeypatch, caplog, mode
):
    """The key's file holding a number too large for a float, found there before a create or written while KIE is
    answering it: the create's task id is returned and recorded (and the task followed), and the server paces
    alone, saying so once. Before, the first failed every create and status read ("unexpected error"), and the
    second replaced the answer of a create KIE had made and charged: "(no task id)", the task never followed."""
    caplog.set_level(logging.INFO, logger="kie_mcp.kie.pacing")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path / "cache"))
    sim = Simulator(SimConfig(speed=1000.0))
    async with served_over_tcp(sim) as base:
        state = SharedBudget(settings.api_key.get_secret_value(), base, held_at_most=600).path
        assert state is not None
        if when == "before the create":
            state.write_bytes(TOO_LARGE)
        else:  # KIE takes 0.5 s to answer the create; the file goes bad while its slot is held there
            fault = {"endpoint": "create", "fault": {"kind": "slow", "seconds": 0.5}, "times": 1}
            async with httpx2.AsyncClient() as http:
                (await http.post(f"{base}/__sim/faults", json=fault)).raise_for_status()

        async def spoil_once_the_create_is_sent() -> None:
            held = b'"create":{"left":[],"held":{"'  # its slot taken in the file, before it is sent
            while not (state.exists() and held in state.read_bytes()):  # noqa: ASYNC110 - another process's file
                await anyio.sleep(0.005)
            state.write_bytes(TOO_LARGE)

        pointed = replace(settings, base_url=base, upload_base_url=base)  # no transport: KIE's windows shared
        async with Client(create_server(pointed), mode=mode, elicitation_callback=answering()) as client:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    if when != "before the create":
                        group.start_soon(spoil_once_the_create_is_sent)
                    made = await client.call_tool("generate_image", {"prompt": "a fox", "model": "nano-banana-2"})
                listed = await client.call_tool("list_tasks", {})
    assert not made.is_error, text_of(made)
    task = made.structured_content["tasks"][0]
    assert list(sim.tasks) == [task["task_id"]], text_of(made)
    assert task["state"] == "succeeded", text_of(made)  # followed to its end
    assert [row["task_id"] for row in listed.structured_content["tasks"]] == [task["task_id"]]
    said = [record.getMessage() for record in caplog.records if ALONE in record.getMessage()]
    assert len(said) == 1 and f"{state} holds what kie-mcp" in said[0], said
    assert state.read_bytes() == TOO_LARGE  # left as it was found


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX; on Windows each process paces alone")
async def test_a_wait_given_up_while_the_file_was_locked_never_makes_a_later_brief_lock_pace_alone(
    tmp_path, monkeypatch, caplog
):
    """A wait for a slot given up (its call cut off) while another process held the key's file's lock: a later
    wait that meets the lock busy for a moment, long after, is granted its slot and the key's windows stay shared.
    Before, the first busy moment stayed counted: the later one made this process pace alone for good at once,
    saying the file "stayed locked by another process for over 1 s"."""
    import fcntl

    caplog.set_level(logging.INFO, logger="kie_mcp.kie.pacing")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path))
    budget = SharedBudget(KEY, API, held_at_most=600)
    window = SlidingWindow(20, 10.0, shared=budget, name="create")
    (await window.hold()).answered()  # the file is there
    assert budget.path is not None
    other = os.open(budget.path, os.O_RDWR)  # an open file of its own: as another process's lock
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        given_up = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(_set_after, 0.01, given_up)
            assert await window.hold_unless(given_up) is None  # given up while the lock was busy
        fcntl.flock(other, fcntl.LOCK_UN)
        await anyio.sleep(1.2)  # longer than LOCK_PATIENCE since that busy moment
        fcntl.flock(other, fcntl.LOCK_EX)  # another process's read and write: a few milliseconds

        async def unlock_soon() -> None:
            await anyio.sleep(0.005)
            fcntl.flock(other, fcntl.LOCK_UN)

        async with anyio.create_task_group() as group:
            group.start_soon(unlock_soon)
            with anyio.fail_after(2):
                (await window.hold()).answered()
    finally:
        os.close(other)
    assert not budget.alone
    assert not [record for record in caplog.records if ALONE in record.getMessage()]


async def _set_after(seconds: float, event: anyio.Event) -> None:
    await anyio.sleep(seconds)
    event.set()


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX; on Windows each process paces alone")
async def test_a_state_file_a_stuck_process_keeps_locked_never_blocks_the_server_and_it_then_paces_alone(
    tmp_path, monkeypatch, caplog
):
    """Another process stopped while it held the file's lock (a debugger, SIGSTOP): the lock is never waited for on
    the event loop (tried again after short sleeps, the loop running meanwhile), and after a second this process
    paces alone, says so once, and its status call is answered."""
    import fcntl

    caplog.set_level(logging.INFO, logger="kie_mcp.kie.pacing")
    monkeypatch.setenv("KIE_CACHE_DIR", str(tmp_path))
    state = SharedBudget(KEY, API, held_at_most=600).path
    assert state is not None
    stuck = os.open(state, os.O_RDWR | os.O_CREAT, 0o600)  # an open file of its own: as another process's lock
    fcntl.flock(stuck, fcntl.LOCK_EX)
    sim = simulator()
    tasks = await unfinished_tasks(sim, 1)
    kie = sharing_client(sim)
    gaps: list[float] = []

    async def ticking() -> None:
        last = time.monotonic()
        while True:
            await anyio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(ticking)
            started = time.monotonic()
            status = await kie.status(FAMILIES["market"], tasks[0])
            took = time.monotonic() - started
            group.cancel_scope.cancel()
    finally:
        os.close(stuck)
        await kie.aclose()
    assert status.task_id == tasks[0]
    assert 1.0 <= took < 3.0, took
    assert max(gaps) < 0.25, max(gaps)
    said = [record.getMessage() for record in caplog.records if ALONE in record.getMessage()]
    assert len(said) == 1 and "stayed locked" in said[0], said


def sharing_client(sim: Simulator) -> KieClient:
    """A client of ``sim`` whose windows are the key's, shared through its file (the test's transport aside, as a
    server talking to KIE makes it)."""
    transport = SandboxTransport(sim)
    return KieClient(api_key=KEY, base_url=API, upload_base_url=UPLOADS, transport=transport, share_pacing=True)


async def _all_at_once(calls: list) -> list:
    results: list = [None] * len(calls)

    async def one(n: int) -> None:
        results[n] = await calls[n]()

    async with anyio.create_task_group() as group:
        for n in range(len(calls)):
            group.start_soon(one, n)
    return results
