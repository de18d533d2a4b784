"""A paid task is never lost with the journal that held it: the call log keeps every task id KIE answered a create
with, and a start that finds the journal lost (corrupt, deleted, emptied) or a create unrecorded (a full disk) takes
the task up from there: followed, saved, counted against today's cap as the log counted it. Nothing is ever sent again.

Through the real MCP client against the simulator, in both protocol eras; a restart after a full disk runs the
installed console script over real stdio (the server that sent the create must be a process that has ended).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from kie_mcp.journal import Journal
from kie_mcp.kie.calllog import CallLog
from kie_mcp.processes import HOST

from . import test_promise_durability as durability
from .conftest import answering, simulator_running, text_of
from .test_promise_saved_by_one import a_gone_process
from .test_promise_stop import creates_sent, environment
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


@pytest.mark.parametrize("how", ["corrupt", "deleted", "emptied"])
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


class Sent:
    """A workspace's journal and call log, with creates being sent by a server that is gone (or by this process)."""

    def __init__(self, workspace: Path, gone: str) -> None:
        self.journal = Journal.for_workspace(workspace)
        self.log = CallLog(workspace / "logs" / "kie-api.jsonl")
        self.gone = gone

    def create(self, digest: str, model: str = "nano-banana-2", *, live: bool = False) -> str:
        attempt = self.journal.begin_attempt(
            model=model, family="market", approved_by="quote", quote_id=None, prompt=f"a {digest}", params={},
            credits_quoted=8, session=None, digest=digest,
        )  # fmt: skip
        if not live:
            self.journal.execute("UPDATE attempts SET owner = ? WHERE attempt_id = ?", self.gone, attempt)
        return attempt

    def answered(self, task_id: str, model: str = "nano-banana-2") -> None:
        self.log.write(endpoint="/api/v1/jobs/createTask", model=model, outcome="created", task_id=task_id)

    def recovered(self) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
        found: list[str] = []
        self.journal.recover_interrupted(found)
        states = {row["attempt_id"]: (row["state"], row["task_id"]) for row in self.journal.attempts()}
        return states, found


async def test_a_create_being_sent_takes_a_call_log_line_only_when_no_other_create_could_own_it(tmp_path):
    """Strict, as a wrong match would give one request another's task: a line of the create's model and endpoint,
    in time, whose task no other create recorded, that no other create could be the answer of (another request's,
    or one a live server is still sending). Anything else stays unknown; a request's variations share its lines."""
    gone = f"{HOST}-{await a_gone_process()}"

    alone = Sent(tmp_path / "alone", gone)
    mine = alone.create("d-mine")
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
    assert two_requests.recovered() == ({attempt: ("unknown", None) for attempt in both}, [])

    beside_a_live_one = Sent(tmp_path / "live", gone)
    mine, live = beside_a_live_one.create("d-mine"), beside_a_live_one.create("d-mine", live=True)
    beside_a_live_one.answered("t-maybe-the-live-ones")
    assert beside_a_live_one.recovered() == ({mine: ("unknown", None), live: ("sending", None)}, [])

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
