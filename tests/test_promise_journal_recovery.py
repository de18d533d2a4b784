"""A paid task is never lost with the journal that held it: the call log keeps every task id KIE answered a create
with (each line naming its create's attempt), and a start that finds the journal lost (corrupt, deleted, emptied) or a
create unrecorded (a full disk, a crash between KIE's answer and the journal's write) takes the task up from there:
followed, saved, counted against today's cap as the log counted it. Nothing is ever sent again. The writes of money and
task ids are on the disk before the call goes on, and a host's SIGTERM writes what a full disk held back first.

Through the real MCP client against the simulator, in both protocol eras; a restart after a full disk or a crash runs
the installed console script over real stdio (the server that sent the create must be a process that has ended).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from kie_mcp.journal import Journal
from kie_mcp.kie.calllog import CallLog
from kie_mcp.processes import HOST

from . import test_promise_durability as durability
from .conftest import answering, eras_in_turn, simulator_running, text_of
from .test_promise_saved_by_one import a_gone_process
from .test_promise_stop import Server, creates_sent, environment
from .test_terminal import console_script

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits
VIDEO = {"prompt": "waves at night", "model": "veo3_fast", "wait_seconds": 0}  # 60 credits, followed unwaited
small_disk = durability.small_disk  # a fixture: a 4 MiB tmpfs, so the disk really fills (root only)


def lose_journal(workspace: Path, how: str) -> None:
    """The journal as a crash, a bad disk or a hand left it: unreadable, gone, or an empty file."""
    journal = workspace / ".kie-mcp" / "journal.sqlite3"
    for part in journal.parent.glob("journal.sqlite3*"):
        part.unlink()
    if how == "corrupt":
        journal.write_bytes(b"this is not a database" * 100)
    elif how == "emptied":
        journal.write_bytes(b"")


async def a_video_left_running(connect, controls) -> tuple[str, str]:
    """An image made and saved (8 credits), then a video (60 credits) KIE is still making when the server stops:
    their task ids."""
    await controls.post("clock/speed", {"speed": 0})  # KIE makes nothing more until the test says so
    async with connect(elicitation=answering(), auto_approve_credits=100, max_credits_per_day=100) as client:
        await controls.post("clock/speed", {"speed": 1000})
        image = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        assert image.structured_content["status"] == "completed", text_of(image)
        await controls.post("clock/speed", {"speed": 0})
        video = await client.call_tool("generate_video", VIDEO)
        assert video.structured_content["status"] == "submitted", text_of(video)
    return image.structured_content["tasks"][0]["task_id"], video.structured_content["tasks"][0]["task_id"]


@eras_in_turn("how", ["corrupt", "deleted", "emptied"])
async def test_a_task_still_running_when_the_journal_was_lost_is_followed_and_saved_from_the_call_log(
    connect, controls, tmp_path, how
):
    """The audit: a Veo clip (60 credits) still running when the journal was moved aside as corrupt, or found empty,
    was never followed or saved: list_tasks said 0 tasks, and the notice only said the tasks "are in that file",
    though the call log held the clip's task id. A start on a lost journal takes up every task the call log shows
    KIE created in the last 14 days whose results are not saved, and names them."""
    image_id, video_id = await a_video_left_running(connect, controls)
    lose_journal(tmp_path, how)
    async with connect(elicitation=answering(), auto_approve_credits=100, max_credits_per_day=100) as client:
        listed = await client.call_tool("list_tasks", {})
        await controls.post("clock/speed", {"speed": 1000})  # KIE finishes the clip; nobody asks about it
        with anyio.fail_after(20):
            while not list((tmp_path / "outputs").rglob(f"*{video_id}*.mp4")):  # noqa: ASYNC110 - a file on disk
                await anyio.sleep(0.05)
        checked = await client.call_tool("check_task", {"task_id": video_id})
    assert [task["task_id"] for task in listed.structured_content["tasks"]] == [video_id], text_of(listed)
    assert video_id in text_of(listed) and "call log" in text_of(listed)  # the start's notice names it
    assert image_id not in text_of(listed)  # saved already: left as it is, never downloaded twice
    assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
    assert checked.structured_content["task"]["files"], text_of(checked)
    assert len(await controls.creates()) == 2  # taken up, never sent again


@pytest.mark.parametrize("how", ["deleted", "emptied"])
async def test_a_journal_deleted_or_emptied_keeps_todays_spend_so_the_daily_cap_holds(connect, controls, tmp_path, how):
    """The audit: a deleted or emptied journal started afresh without a word: check_credits said "Spent today: 0"
    though the call log showed 68 credits spent, and with a cap of 100 a 60-credit video was accepted (128 spent).
    A new journal beside a call log is a lost one: today's spend is carried over from the log, and said."""
    await a_video_left_running(connect, controls)
    lose_journal(tmp_path, how)
    async with connect(elicitation=answering(), auto_approve_credits=100, max_credits_per_day=100) as client:
        credits = await client.call_tool("check_credits", {})
        over = await client.call_tool("generate_video", {**VIDEO, "prompt": "a rocket launch"})
    assert credits.structured_content["spent_today"] == 68, text_of(credits)
    assert "was missing or empty" in text_of(credits) and "68 credits by the call log" in text_of(credits)
    assert over.is_error and "68 spent today" in text_of(over), text_of(over)
    assert len(await controls.creates()) == 2


async def test_a_corrupt_journal_s_notice_says_once_and_truly_what_became_of_today_s_spend(connect, controls, tmp_path):
    """The audit: after a corrupt journal the notice said today's spend was "in that file, not in the new journal",
    and the next sentence that 8 credits of it were counted against the daily cap. One notice, that does not
    contradict itself: the quotes and tasks are in the old file, today's spend is carried from the call log (or the
    log shows none)."""
    async with connect(auto_approve_credits=20) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        assert made.structured_content["status"] == "completed", text_of(made)
    lose_journal(tmp_path, "corrupt")
    async with connect() as client:
        carried = text_of(await client.call_tool("check_credits", {}))
    (tmp_path / "logs" / "kie-api.jsonl").unlink()
    lose_journal(tmp_path, "corrupt")
    async with connect() as client:
        none = text_of(await client.call_tool("check_credits", {}))
    for said in (carried, none):
        assert "moved aside to" in said and "Quotes and tasks recorded before are in that file" in said, said
        assert "today's spend recorded before are in that file" not in said.lower(), said
    assert "Today's spend before that, 8 credits by the call log (logs/kie-api.jsonl), is counted" in carried, carried
    assert "https://kie.ai/logs shows what KIE really charged" in carried, carried
    assert "shows no spend today before that, so none is carried over" in none, none


async def test_a_call_log_line_of_a_time_no_local_calendar_has_never_fails_the_start_of_a_lost_journal(
    connect, controls, tmp_path
):
    """A review: with the journal lost, one call-log line timed ``0001-01-01T00:00:00-14:00`` (a hand edit, a damaged
    file) failed the start ("year 0 is out of range"), and the fresh journal it had made hid today's spend from every
    later start. The line is skipped as unreadable; the rest of the log still counts."""
    _, video_id = await a_video_left_running(connect, controls)
    lose_journal(tmp_path, "deleted")
    log = tmp_path / "logs" / "kie-api.jsonl"
    bad = '{"time": "0001-01-01T00:00:00-14:00", "outcome": "created", "task_id": "t-old", "credits_quoted": 5}'
    with log.open("a") as handle:
        handle.write(bad + "\n")
    async with connect(elicitation=answering(), auto_approve_credits=100, max_credits_per_day=100) as client:
        credits = await client.call_tool("check_credits", {})
        listed = await client.call_tool("list_tasks", {})
    assert not credits.is_error and credits.structured_content["spent_today"] == 68, text_of(credits)
    assert [task["task_id"] for task in listed.structured_content["tasks"]] == [video_id], text_of(listed)


async def test_a_start_cut_off_while_it_took_the_call_log_into_a_fresh_journal_is_finished_by_the_next(
    connect, controls, tmp_path
):
    """A review: a start that made a fresh journal and died before today's spend and the tasks were taken from the
    call log (a SIGKILL, a host closing it) lost them for good: the next start saw a journal neither new nor reset.
    The fresh journal is marked until both are written; the next start takes them."""
    _, video_id = await a_video_left_running(connect, controls)
    lose_journal(tmp_path, "deleted")
    Journal.for_workspace(tmp_path).close()  # made by the start that was cut off, its marker still beside it
    (tmp_path / ".kie-mcp" / "journal.sqlite3.renewing").touch()
    async with connect(elicitation=answering(), auto_approve_credits=100, max_credits_per_day=100) as client:
        credits = await client.call_tool("check_credits", {})
        listed = await client.call_tool("list_tasks", {})
    assert credits.structured_content["spent_today"] == 68, text_of(credits)
    assert [task["task_id"] for task in listed.structured_content["tasks"]] == [video_id], text_of(listed)
    assert not (tmp_path / ".kie-mcp" / "journal.sqlite3.renewing").exists()  # done: the next start takes nothing
    async with connect(elicitation=answering(), auto_approve_credits=100, max_credits_per_day=100) as client:
        again = await client.call_tool("check_credits", {})
    assert again.structured_content["spent_today"] == 68, text_of(again)  # never counted twice


# -- a create the journal could not take -------------------------------------------------------------------------


def attempts(workspace: Path) -> list[tuple[str, str | None, int]]:
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        return db.execute("SELECT state, task_id, answered FROM attempts ORDER BY created").fetchall()


def saved(workspace: Path, task_id: str) -> list[str]:
    """The results of ``task_id`` saved on disk, by the journal."""
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        paths = [row[0] for row in db.execute("SELECT path FROM files WHERE task_id = ?", (task_id,))]
    return [path for path in paths if (workspace / path).is_file()]


def room_in_the_call_logs_last_page(workspace: Path) -> None:
    """A line a full disk still takes, as in the audit: the log's last page (a tmpfs page, 4 KiB) has room for it.
    Padded with line ends (blank lines, which no reader takes for a call) when it has little left."""
    log = workspace / "logs" / "kie-api.jsonl"
    size = log.stat().st_size
    if size % 4096 > 2048:
        with log.open("ab") as handle:
            handle.write(b"\n" * (4096 - size % 4096 + 1))


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_create_a_full_disk_kept_out_of_the_journal_is_recorded_once_space_returns(
    connect, controls, small_disk
):
    """The audit: the disk filled between a create and its answer: the answer carried the task id, and the task was
    saved once space came back, but the create stayed "being sent" in the journal for good, to become a create of
    unknown outcome (counted, and reported) at the next start. It is recorded as soon as the journal takes it."""
    workspace = small_disk / "ws"
    await controls.fault("create", kind="slow", seconds=3)
    async with connect(elicitation=answering(), workspace=workspace) as client:
        await client.call_tool("check_credits", {})
        answers = []

        async def generate() -> None:
            answers.append(await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5}))

        async with anyio.create_task_group() as group:
            group.start_soon(generate)
            with anyio.fail_after(10):
                while not await controls.creates():  # noqa: ASYNC110 - the simulator's log
                    await anyio.sleep(0.02)
            room_in_the_call_logs_last_page(workspace)
            filler = durability.fill(small_disk)
        [answer] = answers
        task_id = answer.structured_content["tasks"][0]["task_id"]
        stuck = attempts(workspace)
        filler.unlink()  # nobody calls anything
        with anyio.fail_after(15):  # within a few seconds (one try every RELEASE_OWED_EVERY)
            while attempts(workspace)[0][0] != "created":  # noqa: ASYNC110 - the journal, written in the background
                await anyio.sleep(0.1)
        listed = await client.call_tool("list_tasks", {})
    assert stuck == [("sending", None, 0)]  # the disk really refused it
    assert "could not record it" in text_of(answer) and "recorded as soon as the journal takes it" in text_of(answer)
    assert "a restart finds it there too" in text_of(answer), text_of(answer)
    assert attempts(workspace) == [("created", task_id, 1)]  # its answer reached the client, noted too
    assert [task["task_id"] for task in listed.structured_content["tasks"]] == [task_id]
    assert listed.structured_content["tasks"][0]["prompt"] == IMAGE["prompt"]
    assert listed.structured_content["unknown_creates"] == 0
    assert len(await controls.creates()) == 1


@pytest.fixture
def simulator() -> Iterator[str]:
    """``kie-mcp sim`` in its own process, 1000 simulated seconds a real second: it outlives the servers."""
    yield from simulator_running("1000", kill=True)


def over_stdio(base: str, workspace: Path) -> StdioServerParameters:
    """The installed kie-mcp, as a host starts it, on ``workspace`` (the code under test: PYTHONPATH passed on)."""
    return StdioServerParameters(command=console_script(), args=[], env=environment(base, workspace))


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="tmpfs")
async def test_a_create_a_full_disk_kept_out_of_the_journal_is_found_in_the_call_log_after_a_restart(
    simulator, small_disk
):
    """The audit: the disk filled between a create and its answer, and the server restarted (space freed) before
    the journal took the task: the create became "unknown", list_tasks showed no task, its result was never saved,
    and the same call again answered "(no task id): unknown ... may or may not have been created" and "its call was
    cut off before its answer reached you" (both false). The call log held the task id: the restart finds it there,
    records the create with its task, follows and saves it, and the same call answers with it."""
    workspace = small_disk / "ws"
    workspace.mkdir()
    call = {**IMAGE, "wait_seconds": 5}
    fault = {"endpoint": "create", "fault": {"kind": "slow", "seconds": 3}, "times": 1}
    httpx2.post(f"{simulator}/__sim/faults", json=fault, timeout=10).raise_for_status()
    async with Client(over_stdio(simulator, workspace), mode="legacy") as first:
        await first.call_tool("check_credits", {})
        answers = []

        async def generate() -> None:
            answers.append(await first.call_tool("generate_image", call))

        async with anyio.create_task_group() as group:
            group.start_soon(generate)
            with anyio.fail_after(20):
                while not creates_sent(simulator):  # noqa: ASYNC110 - the simulator's log
                    await anyio.sleep(0.02)
            room_in_the_call_logs_last_page(workspace)
            filler = durability.fill(small_disk)
    [answer] = answers  # the server stopped with the disk still full
    task_id = answer.structured_content["tasks"][0]["task_id"]
    stopped_with = attempts(workspace)
    filler.unlink()
    async with Client(over_stdio(simulator, workspace), mode="legacy") as second:
        listed = await second.call_tool("list_tasks", {})
        with anyio.fail_after(20):  # saved in the background, nobody asking
            while not saved(workspace, task_id):  # noqa: ASYNC110 - the journal, written by another process
                await anyio.sleep(0.1)
        again = await second.call_tool("generate_image", call)
    assert stopped_with == [("sending", None, 0)]  # the disk really refused it
    assert [task["task_id"] for task in listed.structured_content["tasks"]] == [task_id], text_of(listed)
    assert listed.structured_content["unknown_creates"] == 0 and task_id in text_of(listed)  # the notice names it
    assert attempts(workspace)[0][:2] == ("created", task_id)
    assert again.structured_content["status"] == "completed", text_of(again)
    assert [task["task_id"] for task in again.structured_content["tasks"]] == [task_id]
    assert "created and charged nothing new" in text_of(again) and "cut off" not in text_of(again)
    assert creates_sent(simulator) == 1  # never sent again


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="tmpfs, POSIX signals")
def test_a_host_stopping_the_server_records_the_create_a_full_disk_kept_out_of_the_journal(simulator, small_disk):
    """A review: the host's SIGTERM ended the server at once (``os._exit``), skipping the shutdown that writes what a
    full disk kept out of the journal: a create's task stayed unrecorded, "being sent", to become a create of unknown
    outcome unless the call log had it. The stop writes it first, waiting a moment for the journal (here another
    program's lock, let go just after the signal, so the background's own retry cannot have written it first)."""
    workspace = small_disk / "ws"
    fault = {"endpoint": "create", "fault": {"kind": "slow", "seconds": 2}, "times": 1}
    httpx2.post(f"{simulator}/__sim/faults", json=fault, timeout=10).raise_for_status()
    server = Server(simulator, workspace)
    try:
        server.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "check_credits"}})
        server.answer(1)  # the journal and the call log are there
        server.generate(2, IMAGE["prompt"])
        until(lambda: creates_sent(simulator) == 1, "the create never reached KIE")
        room_in_the_call_logs_last_page(workspace)
        filler = durability.fill(small_disk)
        answer = json.dumps(server.answer(2))
        stuck = attempts(workspace)
        lock = sqlite3.connect(workspace / JOURNAL, timeout=5, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the background's retry waits for no lock: it skips its turns
        filler.unlink()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        lock.execute("ROLLBACK")
        lock.close()
        code, errors = server.stopped()
    finally:
        server.kill()
    [line] = created_lines(workspace)
    assert stuck == [("sending", None, 0)] and "could not record it" in answer, answer  # the disk really refused it
    assert code == 128 + signal.SIGTERM, errors
    assert attempts(workspace)[0][:2] == ("created", line["task_id"]), errors


def can_trace() -> bool:
    """Whether ``strace`` is there and may trace a process here (a container may forbid ptrace)."""
    if sys.platform != "linux" or shutil.which("strace") is None:
        return False
    return subprocess.run(["strace", "-o", os.devnull, "true"], capture_output=True, check=False).returncode == 0


def syncs(trace: Path) -> list[tuple[float, str]]:
    """The fsync/fdatasync calls ``strace -ttt -y`` traced: when (epoch seconds), and of which file."""
    found = re.findall(r"^\d+ +([\d.]+) f(?:data)?sync\(\d+<([^>]*)>\) = 0", trace.read_text(), re.MULTILINE)
    return [(float(when), path) for when, path in found]


@pytest.mark.stdio
@pytest.mark.skipif(not can_trace(), reason="needs strace, allowed to trace")
def test_the_writes_of_money_and_task_ids_are_on_the_disk_before_the_call_goes_on(simulator, tmp_path):
    """The audit: neither the journal nor the call log was synced to the disk (the journal's write-ahead log only at
    checkpoints, the log never): an OS crash or a power loss in the seconds after "Submitted" could lose the create
    attempt, its task and the call log's line together. Traced over real stdio: the attempt is synced before the
    create is sent, the call log's ``created`` line and the task id after KIE's answer; an estimate, whose latency
    is measured against the floor, syncs nothing."""
    trace, workspace = tmp_path / "trace", tmp_path / "ws"
    strace = ["strace", "-f", "-ttt", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace)]
    fault = {"endpoint": "create", "fault": {"kind": "slow", "seconds": 1}, "times": 1}
    httpx2.post(f"{simulator}/__sim/faults", json=fault, timeout=10).raise_for_status()
    server = Server(simulator, workspace, prefix=strace)
    estimate = {"name": "estimate_cost", "arguments": IMAGE}
    try:
        for number in (1, 2):
            server.send({"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": estimate})
            assert "result" in server.answer(number)
            if number == 1:  # the journal made and checked, its first quote written
                before = syncs(trace)
        estimated = syncs(trace)
        server.generate(3, IMAGE["prompt"])
        until(lambda: creates_sent(simulator) == 1, "the create never reached KIE")
        while_sent = syncs(trace)[len(estimated) :]  # KIE holds its answer a second
        assert "result" in server.answer(3)
        answered = syncs(trace)[len(estimated) + len(while_sent) :]
    finally:
        server.kill()

    def of(found: list[tuple[float, str]], name: str) -> list[float]:
        return [when for when, path in found if path.endswith(name)]

    assert estimated == before  # an estimate's quote is not synced on its own
    assert of(while_sent, "journal.sqlite3-wal"), while_sent  # the attempt, before the create left
    assert not of(while_sent, "kie-api.jsonl"), while_sent
    [logged] = of(answered, "kie-api.jsonl")  # the created line, once KIE answered
    assert any(when > logged for when in of(answered, "journal.sqlite3-wal")), answered  # the task id


class Sent:
    """A workspace's journal and call log, with creates being sent by a server that is gone (or by this process)."""

    def __init__(self, workspace: Path, gone: str) -> None:
        self.journal = Journal.for_workspace(workspace)
        self.log = CallLog(workspace / "logs" / "kie-api.jsonl")
        self.gone = gone

    def create(self, digest: str, model: str = "nano-banana-2", *, live: bool = False, sent_ago: float = 0) -> str:
        attempt = self.journal.begin_attempt(
            model=model, family="market", approved_by="quote", quote_id=None, prompt=f"a {digest}", params={},
            credits_quoted=8, session=None, digest=digest, kind="image", sandbox=True,
        )  # fmt: skip
        if not live:
            self.journal.execute("UPDATE attempts SET owner = ? WHERE attempt_id = ?", self.gone, attempt)
        self.journal.execute("UPDATE attempts SET created = created - ? WHERE attempt_id = ?", sent_ago, attempt)
        return attempt

    def answered(self, task_id: str, model: str = "nano-banana-2", attempt: str | None = None) -> None:
        """KIE's answer in the call log; naming no ``attempt``: a line an older kie-mcp wrote."""
        self.log.write(
            endpoint="/api/v1/jobs/createTask", model=model, outcome="created", task_id=task_id, attempt=attempt
        )

    def recovered(self, taken_up: list[str] | None = None) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
        found: list[str] = []
        self.journal.recover_interrupted(found, taken_up)
        states = {row["attempt_id"]: (row["state"], row["task_id"]) for row in self.journal.attempts()}
        return states, found


async def test_a_create_being_sent_takes_the_call_log_line_that_names_it_whatever_else_was_sent(tmp_path):
    """A create's line names its attempt: the create takes it, however late it came (a 429's resend answered slowly)
    and whatever other creates of that model were sent with it (another request's), and the task keeps what the
    attempt kept of it (prompt, kind, sandbox). A line naming another create (a live server's) is not taken."""
    gone = f"{HOST}-{await a_gone_process()}"
    sent = Sent(tmp_path, gone)
    late = sent.create("d-late", sent_ago=300)
    one, two = sent.create("d-one"), sent.create("d-two")
    live = sent.create("d-live", live=True)
    sent.answered("t-two", attempt=two)
    sent.answered("t-late", attempt=late)
    sent.answered("t-one", attempt=one)
    sent.answered("t-live", attempt=live)
    states, found = sent.recovered()
    assert states == {
        late: ("created", "t-late"),
        one: ("created", "t-one"),
        two: ("created", "t-two"),
        live: ("sending", None),
    }
    assert sorted(found) == ["t-late", "t-one", "t-two"]
    row = sent.journal.task_row("t-late")
    record = json.loads(row["record"])
    assert (row["attempt_id"], row["prompt"], record["kind"], record["sandbox"]) == (late, "a d-late", "image", True)
    assert sent.journal.task_row("t-live") is None  # its own server records it
    sent.journal.close()


async def test_a_create_being_sent_takes_a_call_log_line_only_when_no_other_create_could_own_it(tmp_path):
    """A line an older kie-mcp wrote names no attempt. Strict, as a wrong match would give one request another's task:
    a line of the create's model and endpoint, in time (a create can take minutes: four sends and the waits between
    them), whose task no other create recorded, that no other create could be the answer of (another request's, or
    one a live server is still sending). A request's variations share its lines. A line several stopped creates could
    own is still taken up, its task followed and saved without a prompt, the creates left unknown; one a live server
    may own is left to it."""
    gone = f"{HOST}-{await a_gone_process()}"

    alone = Sent(tmp_path / "alone", gone)
    mine = alone.create("d-mine", sent_ago=100)  # the audit: answered 92.8 s after it was begun, past 90 s
    alone.answered("t-mine")
    states, found = alone.recovered()
    assert states[mine] == ("created", "t-mine") and found == ["t-mine"]
    row = alone.journal.task_row("t-mine")
    assert (row["state"], row["attempt_id"], row["prompt"]) == ("queued", mine, "a d-mine")

    other_model = Sent(tmp_path / "other-model", gone)
    mine = other_model.create("d-mine")
    other_model.answered("t-someone-elses", model="flux-2/pro-text-to-image")
    assert other_model.recovered() == ({mine: ("unknown", None)}, [])

    two_requests = Sent(tmp_path / "two-requests", gone)
    both = [two_requests.create("d-one"), two_requests.create("d-two")]
    two_requests.answered("t-of-one-of-them")
    taken_up: list[str] = []
    assert two_requests.recovered(taken_up) == ({attempt: ("unknown", None) for attempt in both}, [])
    row = two_requests.journal.task_row("t-of-one-of-them")
    record = json.loads(row["record"])
    assert taken_up == ["t-of-one-of-them"]
    assert (row["state"], row["attempt_id"], row["prompt"]) == ("queued", None, None)  # no prompt guessed
    assert (record["kind"], record["sandbox"]) == ("image", True)  # what both creates kept
    for attempt in two_requests.journal.attempts():
        assert "t-of-one-of-them" in attempt["error"] and "is unknown" in attempt["error"]

    beside_a_live_one = Sent(tmp_path / "live", gone)
    mine, live = beside_a_live_one.create("d-mine"), beside_a_live_one.create("d-mine", live=True)
    beside_a_live_one.answered("t-maybe-the-live-ones")
    assert beside_a_live_one.recovered() == ({mine: ("unknown", None), live: ("sending", None)}, [])
    assert beside_a_live_one.journal.task_row("t-maybe-the-live-ones") is None

    taken = Sent(tmp_path / "taken", gone)
    earlier = taken.create("d-earlier")
    taken.journal.finish_attempt(earlier, "created", task_id="t-taken")
    mine = taken.create("d-mine")
    taken.answered("t-taken")
    assert taken.recovered()[0][mine] == ("unknown", None)

    variations = Sent(tmp_path / "variations", gone)
    first, second = variations.create("d-mine"), variations.create("d-mine")
    variations.answered("t-first")
    variations.answered("t-second")
    states, found = variations.recovered()
    assert states == {first: ("created", "t-first"), second: ("created", "t-second")} and found == [
        "t-first",
        "t-second",
    ]
    for sent in (alone, other_model, two_requests, beside_a_live_one, taken, variations):
        sent.journal.close()


# -- a create a crash left unrecorded: found in the call log by its attempt ----------------------------------------

JOURNAL = Path(".kie-mcp") / "journal.sqlite3"


def until(condition: Callable[[], object], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def being_sent(workspace: Path) -> int:
    if not (workspace / JOURNAL).exists():
        return 0
    with contextlib.closing(sqlite3.connect(workspace / JOURNAL, timeout=5)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM attempts WHERE state = 'sending'").fetchone()[0]
        except sqlite3.OperationalError:  # the journal is being made
            return 0


def created_lines(workspace: Path) -> list[dict[str, Any]]:
    log = workspace / "logs" / "kie-api.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return [line for line in lines if line.get("outcome") == "created"]


def killed_once_kie_answered(base: str, workspace: Path, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """``calls`` sent at once to the installed kie-mcp over real stdio; KIE answers their creates (a second late) and
    the call log gets their task ids while another program holds the journal's lock, so the journal does not yet:
    the server is killed (SIGKILL) then, as a crash (or an OOM kill) in that moment leaves them."""
    fault = {"endpoint": "create", "fault": {"kind": "slow", "seconds": 1}, "times": len(calls)}
    httpx2.post(f"{base}/__sim/faults", json=fault, timeout=10).raise_for_status()
    answered = len(created_lines(workspace)) + len(calls)
    server = Server(base, workspace, KIE_AUTO_APPROVE_CREDITS="200")
    try:
        for number, (tool, arguments) in enumerate(calls, 1):
            server.send(
                {
                    "jsonrpc": "2.0",
                    "id": number,
                    "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments},
                }
            )
        until(lambda: being_sent(workspace) == len(calls), "the creates were never journaled as being sent")
        lock = sqlite3.connect(workspace / JOURNAL, timeout=5, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another program's write: the journal waits for it
        try:
            until(lambda: len(created_lines(workspace)) == answered, "KIE's answers never reached the call log")
            server.process.kill()
            server.process.wait()
        finally:
            lock.execute("ROLLBACK")
            lock.close()
    finally:
        server.kill()


async def test_two_creates_a_crash_left_unrecorded_are_both_found_in_the_call_log_with_their_prompts(
    simulator, tmp_path
):
    """The audit: two images of one model asked at once, the server killed after KIE answered both (the call log had
    both task ids, both were charged) and before the journal took them: the restart said "0 task(s)" and two creates
    of unknown outcome, as two requests' lines could not be told apart by time and model. Each create's line names
    its attempt: both are recorded with their own task and prompt, followed and saved, never sent again."""
    workspace = tmp_path / "ws"
    prompts = ["a red apple on a wooden table", "a green pear on a wooden table"]
    killed_once_kie_answered(
        simulator,
        workspace,
        [("generate_image", {**IMAGE, "prompt": prompt, "wait_seconds": 20}) for prompt in prompts],
    )
    answered = {line["task_id"] for line in created_lines(workspace)}
    async with Client(over_stdio(simulator, workspace), mode="legacy") as client:
        listed = await client.call_tool("list_tasks", {})
        tasks = {task["task_id"]: task for task in listed.structured_content["tasks"]}
        assert set(tasks) == answered, text_of(listed)
        with anyio.fail_after(20):  # saved in the background, nobody asking
            while not all(saved(workspace, task) for task in answered):  # noqa: ASYNC110 - the journal
                await anyio.sleep(0.1)
    assert {task["prompt"] for task in tasks.values()} == set(prompts)
    assert listed.structured_content["unknown_creates"] == 0, text_of(listed)
    with contextlib.closing(sqlite3.connect(workspace / JOURNAL)) as db:
        rows = db.execute("SELECT attempt_id, state, task_id FROM attempts").fetchall()
    assert sorted((state, task) for _, state, task in rows) == sorted(("created", task) for task in answered)
    assert {line["attempt"] for line in created_lines(workspace)} == {attempt for attempt, _, _ in rows}
    assert creates_sent(simulator) == 2


async def test_a_create_kie_answered_long_after_it_was_sent_is_found_in_the_call_log(simulator, tmp_path):
    """The audit: KIE refused a create with 429, kie-mcp sent it again 10 s later and KIE answered within kie-mcp's
    own 90 s deadline; the server was killed before the journal took the answer, logged 92.8 s after the create was
    begun, and the restart only looked 90 s ahead: the paid task stayed "unknown", never followed or saved. A create
    can take minutes (four sends, each up to its answer's deadline, and the waits for KIE's window between them); its
    line names its attempt, so it is found however late it came. The test moves the create's start 100 s back in the
    journal instead of waiting that long."""
    workspace = tmp_path / "ws"
    killed_once_kie_answered(simulator, workspace, [("generate_image", {**IMAGE, "wait_seconds": 20})])
    [line] = created_lines(workspace)
    with contextlib.closing(sqlite3.connect(workspace / JOURNAL)) as db, db:
        db.execute("UPDATE attempts SET created = created - 100")
    async with Client(over_stdio(simulator, workspace), mode="auto") as client:
        listed = await client.call_tool("list_tasks", {})
    assert [task["task_id"] for task in listed.structured_content["tasks"]] == [line["task_id"]], text_of(listed)
    assert listed.structured_content["tasks"][0]["prompt"] == IMAGE["prompt"]
    assert listed.structured_content["unknown_creates"] == 0, text_of(listed)
    assert line["attempt"].startswith("a_") and "[redacted]" not in json.dumps(line)  # no secret: written as it is


async def state_of(client: Client, task_id: str) -> str:
    checked = await client.call_tool("check_task", {"task_id": task_id})
    return checked.structured_content["task"]["state"]


async def test_a_follow_up_a_crash_left_unrecorded_keeps_its_kind_and_its_place_in_the_clip_s_chain(
    simulator, tmp_path
):
    """A review: a task found in the call log after a crash was recorded without its kind (its saved results were
    checked against no type), its sandbox flag, or the clip it continues (a continue_video extension dropped out of
    its chain). The create attempt keeps them, and the task found takes them."""
    workspace = tmp_path / "ws"
    environment(simulator, workspace)
    params = over_stdio(simulator, workspace)
    params.env = {**(params.env or {}), "KIE_AUTO_APPROVE_CREDITS": "200"}
    async with Client(params, mode="auto") as client:
        clip = await client.call_tool("generate_video", VIDEO)
        source = clip.structured_content["tasks"][0]["task_id"]
        with anyio.fail_after(20):  # KIE (at 1000x) makes it in a moment; check_task asks at once
            while await state_of(client, source) != "succeeded":  # noqa: ASYNC110 - KIE's word, asked each time
                await anyio.sleep(0.1)
    extend = {"task_id": source, "operation": "extend", "prompt": "the waves grow", "wait_seconds": 0}
    killed_once_kie_answered(simulator, workspace, [("continue_video", extend)])
    [line] = created_lines(workspace)[1:]
    async with Client(over_stdio(simulator, workspace), mode="legacy") as client:
        found = await client.call_tool("check_task", {"task_id": line["task_id"]})
    task = found.structured_content["task"]
    assert (task["kind"], task["parent_task_id"], task["operation"], task["sandbox"]) == (
        "video",
        source,
        "extend",
        False,
    ), text_of(found)
    with contextlib.closing(sqlite3.connect(workspace / JOURNAL)) as db:  # the column a clip's follow-ups are found by
        [(parent,)] = db.execute("SELECT parent_task_id FROM tasks WHERE task_id = ?", (line["task_id"],)).fetchall()
    assert parent == source


def test_a_create_still_being_sent_is_never_called_interrupted_before_it_could_have_been_answered():
    """A create "being sent" longer than ``SEND_LIMIT`` is made unknown, whoever sends it; the longest a live create
    can take (its waits for KIE's window, three resends after a 429, each answer's deadline) must be shorter, or a
    second server would report a create still on its way as interrupted."""
    from kie_mcp.journal import SEND_LIMIT
    from kie_mcp.kie.client import LONGEST_CREATE, longest_create

    assert longest_create() == LONGEST_CREATE < SEND_LIMIT
