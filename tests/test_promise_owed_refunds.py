"""A refund kie-mcp owes when it stops is booked by the next start: what a create KIE refused, or a task that
failed, gives back never counts against the daily cap for the rest of the day because the server ended before
the journal took the refund.

The audit: a journal write that could not be made when due (another program held the journal's write lock, a full
disk) was kept in memory only ("owed"). The server ending before the lock went (a host's stop, a kill, a crash)
lost it: the create KIE refused stayed "being sent", became a create of unknown outcome at the next start, and its
reservation counted against KIE_MAX_CREDITS_PER_DAY until midnight; a failed task whose end the journal took after
its refund was given up kept its reservation counted for good. Nothing after a restart mended either, and a clean
stop did not wait a moment for the lock.

The installed console script over real stdio, against the simulator in its own process (``kie-mcp sim``), where the
server that owed the refund must be a process that has ended; in process otherwise. KIE refuses the create's first
send with 429 (not counted, not charged; kie-mcp sends it again at the window's edge, 10 s later over stdio), which
is when the test takes the journal's lock, as another program would; the resend's answer comes while it is held.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from kie_mcp import journal as journal_module
from kie_mcp import runtime

from .conftest import answering, simulator_running, text_of
from .test_promise_journal_recovery import JOURNAL, until
from .test_promise_many_servers import LockHolder
from .test_promise_stop import Server, creates_sent

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2", "wait_seconds": 20}  # 8 credits


@pytest.fixture
def simulator() -> Iterator[str]:
    """``kie-mcp sim`` in its own process, 1000 simulated seconds a real second: it outlives the servers."""
    yield from simulator_running("1000", kill=True)


def create_answers(base: str, *codes: int, held: bool = False) -> None:
    """KIE answers the next creates' sends with these codes, one each, in turn (nothing created, nothing charged
    for a 4xx; a 500 leaves open whether the task was made). ``held``: each answer waits for the test's release."""
    for code in codes:
        fault = {"endpoint": "create", "fault": {"kind": "code", "code": code, **({"held": 60} if held else {})}}
        httpx2.post(f"{base}/__sim/faults", json={**fault, "times": 1}, timeout=10).raise_for_status()


def logged(workspace: Path) -> list[dict[str, Any]]:
    """The call log's lines of creates (those naming their attempt)."""
    log = workspace / "logs" / "kie-api.jsonl"
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [line for line in lines if line.get("attempt")]


def rows(workspace: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(workspace / JOURNAL, timeout=10)) as db:
        return db.execute(query).fetchall()


def being_sent(workspace: Path, states: tuple[str, ...] = ("sending", "waiting")) -> int:
    """The creates on their way to KIE: being sent, or waiting to be sent again after a 429 (``states``)."""
    marks = ", ".join(f"'{state}'" for state in states)
    try:
        return rows(workspace, f"SELECT COUNT(*) FROM attempts WHERE state IN ({marks})")[0][0]
    except sqlite3.OperationalError:  # the journal is being made
        return 0


class LockTaken:
    """Another program's write lock on the journal (a database tool with an edit not saved), taken when the test
    says (``take``): the journal waits for it. Let go of as the block ends."""

    def __init__(self, workspace: Path) -> None:
        self.path, self.db = workspace / JOURNAL, None

    def take(self) -> None:
        self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")

    def __enter__(self) -> LockTaken:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.db is not None:
            self.db.execute("ROLLBACK")
            self.db.close()


def ended_while_locked(base: str, workspace: Path, answers: tuple[int, ...], how: str) -> None:
    """Generate calls at once, one per code of ``answers``, each of whose create KIE refuses with 429 and then answers
    with one of those codes (in turn) while another program holds the journal's lock, so the journal takes neither
    the answer nor, after a refusal, its refund; the server then ends (``how``: killed, or stopped as a host stops
    it: stdin closed, then SIGTERM), and the lock goes after it."""
    calls = len(answers)
    create_answers(base, *[429] * calls)
    create_answers(base, *answers, held=True)  # the resends' answers wait for the test
    server = Server(base, workspace)
    try:
        for number in range(calls):
            server.generate(number + 1, f"{IMAGE['prompt']}, take {number + 1}")
        until(lambda: being_sent(workspace) == calls and len(logged(workspace)) == calls, "KIE never refused with 429")
        # sent again (marked so in the journal first), their answers held at KIE
        until(lambda: creates_sent(base) == 2 * calls, "the creates were never sent again", within=30)
        lock = sqlite3.connect(workspace / JOURNAL, timeout=10, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another program's write: the journal waits for it
        try:
            assert being_sent(workspace, ("sending",)) == calls  # on their way again, as the journal shows
            httpx2.post(f"{base}/__sim/faults/release", timeout=10).raise_for_status()
            until(lambda: len(logged(workspace)) == 2 * calls, "KIE's answers were never logged", within=30)
            if how == "killed":
                server.process.kill()
            else:
                assert server.process.stdin is not None
                server.process.stdin.close()
                time.sleep(2)  # what the MCP SDK's client waits before its SIGTERM
                if server.process.poll() is None:
                    server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=30)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
    finally:
        server.kill()


def started_at_once(base: str, workspace: Path) -> list[float]:
    """Two servers started at once on ``workspace``: today's spend, as each one's check_credits says it."""
    spent: list[float] = []
    starts = [threading.Thread(target=lambda: spent.append(started_afresh(base, workspace)[0])) for _ in range(2)]
    for start in starts:
        start.start()
    for start in starts:
        start.join(60)
    return spent


def started_afresh(base: str, workspace: Path) -> tuple[float, str]:
    """check_credits of a server started afresh on ``workspace``: today's spend, and the answer's text."""
    server = Server(base, workspace)
    try:
        server.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "check_credits"}})
        answer = server.answer(1)["result"]
        return answer["structuredContent"]["spent_today"], " ".join(
            block.get("text", "") for block in answer["content"]
        )
    finally:
        server.kill()


@pytest.mark.parametrize("how", ["killed", "stopped"])
@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_refund_owed_when_the_server_ended_is_booked_on_the_next_start(simulator, tmp_path, how):
    """The refund of a create KIE refused, which the journal could not take before the server ended (killed, or
    stopped by its host), is booked by the next start, once, on the day its reservation was booked: today's spend
    no longer counts it."""
    workspace = tmp_path / "ws"
    ended_while_locked(simulator, workspace, (422,), how)
    left = rows(workspace, "SELECT state FROM attempts")
    spent, said = started_afresh(simulator, workspace)
    [(attempt,)] = rows(workspace, "SELECT attempt_id FROM attempts")
    assert left == [("sending",)]  # the journal really took nothing of KIE's answer
    assert spent == 0
    assert "KIE refused them" in said and "1 refund(s) of 8 credits" in said, said  # the first answer says so
    assert rows(workspace, "SELECT state FROM attempts") == [("refused",)]
    refunds = rows(workspace, "SELECT delta, reason, ref FROM spend WHERE delta < 0")
    assert refunds == [(-8.0, "refused by KIE", attempt)]


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_start_never_refunds_a_create_of_unknown_outcome_and_two_starts_at_once_refund_once(simulator, tmp_path):
    """Two servers ended with what KIE answered kept out of the journal: one create KIE refused (nothing charged),
    one KIE answered with a server error (it may have made and charged the task). Two servers then start on the
    workspace at once: the refusal's refund is booked once, and the create of unknown outcome keeps its reservation
    counted (KIE may have charged it): today's spend is its 8 credits, never 16, never 0, never -8."""
    workspace = tmp_path / "ws"
    ended_while_locked(simulator, workspace, (422, 500), "killed")
    left = rows(workspace, "SELECT state FROM attempts")
    spent = started_at_once(simulator, workspace)
    answered = {line["attempt"]: line["outcome"] for line in logged(workspace)}  # each create's last line
    states = dict(rows(workspace, "SELECT attempt_id, state FROM attempts"))
    refunds = rows(workspace, "SELECT delta, reason, ref FROM spend WHERE delta < 0")
    assert left == [("sending",), ("sending",)]  # the journal really took nothing of KIE's answers
    assert sorted(answered.values()) == ["refused", "unknown"]
    assert spent == [8.0, 8.0]
    assert states == answered  # refused as KIE answered, and the other of unknown outcome still
    [refused] = [attempt for attempt, outcome in answered.items() if outcome == "refused"]
    assert refunds == [(-8.0, "refused by KIE", refused)]


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_create_refused_with_429_and_killed_while_it_waited_to_be_sent_again_is_not_sent_nor_counted(
    simulator, tmp_path
):
    """The chaos audit: KIE refused a create with 429 (not counted, not charged) and the server was killed (SIGKILL)
    while it waited for the window's edge to send it again. The journal had it "being sent", so the next start called
    it a create that "may have been created and charged", counted its 8 credits for the day, pointed at kie.ai/logs,
    and answered the host's retry of the call with that unknown create, sending nothing. Nothing reached KIE after
    the 429: the start records it as not sent, gives its reservation back, counts nothing unknown, and says so."""
    workspace = tmp_path / "ws"
    create_answers(simulator, 429)
    server = Server(simulator, workspace)
    try:
        server.generate(1, IMAGE["prompt"])
        until(lambda: len(logged(workspace)) == 1, "KIE never refused with 429")  # the 10 s wait before the resend
        time.sleep(0.5)  # a moment into it
        server.process.kill()
        server.process.wait(timeout=30)
    finally:
        server.kill()
    spent, said = started_afresh(simulator, workspace)
    [(attempt, state)] = rows(workspace, "SELECT attempt_id, state FROM attempts")
    assert creates_sent(simulator) == 1  # the 429 alone: nothing was sent after it
    assert spent == 0, said
    assert state == "refused"
    assert "were waiting to be sent again when kie-mcp last stopped: they were not sent again" in said, said
    assert "may have been created and charged" not in said, said
    refunds = rows(workspace, "SELECT delta, reason, ref FROM spend WHERE delta < 0")
    assert refunds == [(-8.0, "refused by KIE", attempt)]


def not_sent(workspace: Path) -> int:
    """The call log's lines of creates that gave up their turn in KIE's window, never sent (they name no attempt)."""
    log = workspace / "logs" / "kie-api.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return sum(line.get("outcome") == "not sent" and not line.get("attempt") for line in lines)


def reserved(workspace: Path) -> int:
    try:
        return rows(workspace, "SELECT COUNT(*) FROM spend WHERE reason = 'reserved'")[0][0]
    except sqlite3.OperationalError:  # the journal is being made
        return 0


def ended_while_waiting_for_its_turn(base: str, workspace: Path, how: str) -> None:
    """Two generate calls at once: KIE refuses the first one's create with 429, so it is sent again at the window's
    edge (10 s later), and every other create waits for its turn until then: the second's, its credits reserved.
    ``how``: "owed": another program takes the journal's lock and the host cancels the second call, whose create
    gives up its turn, never sent, and whose refund the journal cannot take (owed in memory); "waiting": nothing more.
    The server is then killed (SIGKILL), and the lock goes after it."""
    create_answers(base, 429)
    server = Server(base, workspace)
    try:
        with LockTaken(workspace) as lock:
            server.generate(1, f"{IMAGE['prompt']}, take 1")
            until(lambda: being_sent(workspace) == 1 and len(logged(workspace)) == 1, "KIE never refused with 429")
            server.generate(2, f"{IMAGE['prompt']}, take 2")
            until(lambda: reserved(workspace) == 2, "the second call never reserved its credits")
            assert not_sent(workspace) == 0 and len(logged(workspace)) == 1  # still waiting for its turn
            if how == "owed":
                lock.take()
                server.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}})
                until(lambda: not_sent(workspace) == 1, "the cancelled create never gave up its turn")
                time.sleep(0.5)  # its refund tried, and owed: the lock is held
            server.process.kill()
            server.process.wait(timeout=30)
    finally:
        server.kill()


@pytest.mark.parametrize("how", ["owed", "waiting"])
@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_create_never_sent_gives_its_credits_back_at_the_next_start_once(simulator, tmp_path, how):
    """A create that never left (its call cancelled while it waited for its turn in KIE's create window, its refund
    then owed in memory as another program held the journal's lock; or its server killed while it waited) gives its
    share of the reservation back at the next start, once, though two servers start at once; so does the other
    call's, which KIE refused with 429 and which was killed while it waited to be sent again (nothing reached KIE
    after the 429): today's spend is 0, each refund booked once, never twice (-8)."""
    workspace = tmp_path / "ws"
    ended_while_waiting_for_its_turn(simulator, workspace, how)
    unbooked = rows(workspace, "SELECT COUNT(*) FROM spend WHERE delta < 0")
    spent = started_at_once(simulator, workspace)
    assert unbooked == [(0,)]  # the journal really took no refund before the server ended
    assert spent == [0.0, 0.0]
    refunds = rows(workspace, "SELECT delta, reason FROM spend WHERE delta < 0 ORDER BY reason")
    assert refunds == [(-8.0, "refunded: not sent, its server stopped first"), (-8.0, "refused by KIE")]
    assert rows(workspace, "SELECT state FROM attempts") == [("refused",)]  # the other call's: not sent again


# -- in process: a clean stop, and a failed task ------------------------------------------------------------------


async def spent_now(client: Any) -> float:
    return (await client.call_tool("check_credits", {})).structured_content["spent_today"]


@pytest.mark.parametrize("mode", ["auto"])  # the journal and the spend, not the era: once
async def test_a_refund_owed_as_the_server_stops_is_written_when_the_lock_lets_go_during_the_stop(
    connect, controls, tmp_path, monkeypatch
):
    """A create KIE refused while another program held the journal's lock longer than kie-mcp waits for it: its
    outcome, its refund and the mark that its answer went out are owed. The server is stopped (its host closes it)
    while the lock is still held, and the lock goes half a second later: the stop waits that moment and writes them
    all before it closes the journal. It wrote them only if the lock was free at that instant."""
    monkeypatch.setattr(journal_module, "BUSY_SECONDS", 0.5, raising=False)  # the wait for the lock, 30 s in use
    monkeypatch.setattr(runtime, "RELEASE_OWED_EVERY", 600.0)  # the background's retries: none before the stop
    await controls.fault("create", kind="code", code=429)
    await controls.fault("create", kind="code", code=422)
    answers: dict[str, Any] = {}
    async with connect(elicitation=answering(), rate_limit_backoff=1.0) as client:

        async def generate() -> None:
            answers["made"] = await client.call_tool("generate_image", IMAGE)

        async with anyio.create_task_group() as group:
            group.start_soon(generate)
            with anyio.fail_after(10):  # the first send refused with 429: the resend comes a second later
                while not (logged(tmp_path) and rows(tmp_path, "SELECT 1 FROM attempts")):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            holder = LockHolder(tmp_path, most=30).__enter__()
        threading.Timer(0.5, holder.let_go).start()  # half a second into the stop
    holder.let_go()
    said = text_of(answers["made"])
    [(attempt, state, answered)] = rows(tmp_path, "SELECT attempt_id, state, answered FROM attempts")
    assert "could not be recorded" in said or "could not record" in said, said  # the lock really kept them out
    assert state == "refused" and answered == journal_module.CALL_ANSWERED
    refunds = rows(tmp_path, "SELECT delta, reason, ref FROM spend WHERE delta < 0")
    assert refunds == [(-8.0, "refused by KIE", attempt)]


async def failed_while_the_journal_is_locked(
    connect: Any, controls: Any, workspace: Path, monkeypatch: Any, request: dict[str, Any], **failure: Any
) -> str:
    """Make ``request`` (auto-approved or answered yes), then have its task fail (``failure``: more of the control's
    fields, such as the ``credits_consumed`` its record reports) while another program holds the journal's lock: its
    settling is given up after kie-mcp's waits for the lock, and its end, owed, is written once the lock goes. The
    server ends then; returns the task's id."""
    monkeypatch.setattr(journal_module, "BUSY_SECONDS", 0.5, raising=False)
    monkeypatch.setattr(runtime, "RELEASE_OWED_EVERY", 0.05)  # owed writes tried every 5 s: sooner here
    await controls.post("clock/speed", {"speed": 0})  # the task ends when the test says
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**request, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        with LockHolder(workspace, most=30):
            await controls.post(f"tasks/{task_id}", {"state": "fail", "fail_msg": "upstream timeout", **failure})
            await anyio.sleep(3)  # its two settles and its end wait 0.5 s each for the lock, and give up
        with anyio.fail_after(10):  # the lock went: its end is written by the owed writes
            while rows(workspace, "SELECT state FROM tasks") != [("failed",)]:  # noqa: ASYNC110
                await anyio.sleep(0.05)
    return task_id


@pytest.mark.parametrize("mode", ["auto"])
async def test_a_failed_tasks_refund_the_journal_never_took_is_booked_on_the_next_start(
    connect, controls, tmp_path, monkeypatch
):
    """A task fails while another program holds the journal's lock: its refund is given up after kie-mcp's waits
    for the lock, and its end, owed, is written once the lock goes, with no refund. The next start books the refund
    (once, on its reservation's day) from the journal: a failed task whose reservation is not given back."""
    task_id = await failed_while_the_journal_is_locked(connect, controls, tmp_path, monkeypatch, IMAGE)
    unbooked = rows(tmp_path, "SELECT COUNT(*) FROM spend WHERE delta < 0")
    async with connect(elicitation=answering()) as client:
        spent = await spent_now(client)
    assert unbooked == [(0,)]  # the lock really kept the refund out
    assert spent == 0
    refunds = rows(tmp_path, "SELECT delta, reason, ref FROM spend WHERE delta < 0")
    assert refunds == [(-8.0, "refunded: task failed", task_id)]
