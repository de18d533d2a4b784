"""Issue 8, promises 4 and 5: a task KIE charged is never forgotten, and a broken disk or journal costs nothing
and says what to do.

Faults are real: the client cancels, the server is SIGKILLed, the disk fills up (a small tmpfs), the journal is
garbage, the workspace cannot be created, KIE answers 5xx or success without results. KIE is the simulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from .conftest import answering, eras_in_turn, text_of
from .test_durability import server

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits


def bare_error(text: str) -> bool:
    """A traceback, or the SDK's "Error executing tool X" with nothing that says what went wrong."""
    return "Traceback" in text or re.fullmatch(r"(Error executing tool \w+:?\s*)+", text.strip()) is not None


# -- the create and its record are one unit ---------------------------------------------------------


async def test_a_cancelled_call_still_records_the_task_kie_created(connect, controls):
    await controls.fault("create", kind="slow", seconds=0.6)
    async with connect(elicitation=answering()) as client:
        async with anyio.create_task_group() as group:

            async def call() -> None:
                await client.call_tool("generate_image", IMAGE)
                raise AssertionError("the call finished although the host gave up on it")

            group.start_soon(call)
            with anyio.fail_after(10):
                while not await controls.creates():  # noqa: ASYNC110 - the create reached KIE (answer 0.6 s away)
                    await anyio.sleep(0.02)
            group.cancel_scope.cancel()  # the host gives up while the create is on its way
        await anyio.sleep(1.0)
        listed = (await client.call_tool("list_tasks", {})).structured_content
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    creates = await controls.creates()
    assert len(creates) == 1
    assert len(listed["tasks"]) == 1 and listed["tasks"][0]["task_id"]
    assert spent == 8


async def test_a_server_error_to_a_create_is_unknown_never_refunded_or_retried(connect, controls):
    await controls.post("config", {"strict_http": True})
    await controls.fault("create", kind="code", code=500, msg="internal error")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    data = result.structured_content
    assert data["status"] == "unknown", text_of(result)
    assert "kie.ai/logs" in data["message"] and "NOT resubmitted" in data["message"]
    assert "try again" not in data["tasks"][0]["error"].lower().split("check")[0]
    assert len(await controls.creates()) == 1
    assert credits["spent_today"] == 8 and credits["unknown_creates"] == 1


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
async def test_a_create_cut_off_by_a_crash_is_reported_unknown_on_start(simulator_process, tmp_path):
    base = simulator_process
    import httpx2

    async with httpx2.AsyncClient(base_url=base, timeout=5) as controls:
        fault = {"endpoint": "create", "fault": {"kind": "slow", "seconds": 5}, "times": 1}
        (await controls.post("/__sim/faults", json=fault)).raise_for_status()
    pidfile = tmp_path / "server.pid"
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"

    def sending() -> bool:
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
                return bool(db.execute("SELECT 1 FROM attempts WHERE state = 'sending'").fetchall())
        except sqlite3.Error:
            return False

    async def kill_while_sending() -> None:
        with anyio.fail_after(20):
            while not sending():  # noqa: ASYNC110 - another process: nothing to await but its journal
                await anyio.sleep(0.05)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)

    try:
        async with (
            Client(server(base, tmp_path, pidfile), elicitation_callback=answering(), mode="legacy") as doomed,
            anyio.create_task_group() as group,
        ):
            group.start_soon(kill_while_sending)
            await doomed.call_tool("generate_image", {"prompt": "an apple"})
    except (Exception, BaseExceptionGroup):
        pass
    async with Client(server(base, tmp_path)) as survivor:
        listed = await survivor.call_tool("list_tasks", {})
        credits = await survivor.call_tool("check_credits", {})
        resource = await survivor.read_resource("kie://tasks")
    assert listed.structured_content["unknown_creates"] == 1
    assert "kie.ai/logs" in text_of(listed)
    assert credits.structured_content["unknown_creates"] == 1
    assert credits.structured_content["spent_today"] == 8  # still counted against the daily cap
    assert "kie.ai/logs" in text_of(credits)
    assert '"unknown_creates_note"' in resource.contents[0].text


async def test_a_temporary_file_named_with_no_real_process_id_does_not_stop_the_server(connect, tmp_path):
    """A cloned workspace may hold any name: a process id too large for the system once failed every start."""
    folder = tmp_path / "outputs" / "x"
    folder.mkdir(parents=True)
    (folder / ".a.png.part-99999999999999999999-0123456789ab").write_bytes(b"x")
    async with connect() as client:
        credits = await client.call_tool("check_credits", {})
    assert not credits.is_error, text_of(credits)


def test_a_create_being_sent_by_a_live_process_is_left_to_it_until_no_create_could_take_that_long(tmp_path):
    """Another server on the workspace may be sending a create right now: left alone. One "being sent" for longer
    than any create takes (its process id reused after a restart, another machine's, an older kie-mcp's) was
    interrupted: unknown, counted as spent."""
    from kie_mcp.journal import SEND_LIMIT, Journal

    journal = Journal.for_workspace(tmp_path)
    attempt = dict(model="m", family="market", approved_by="quote", quote_id=None, prompt="p", params={})
    live = journal.begin_attempt(**attempt, credits_quoted=8, session=None)  # owned by this (live) process
    stale = journal.begin_attempt(**attempt, credits_quoted=8, session=None)
    journal.execute("UPDATE attempts SET created = ? WHERE attempt_id = ?", time.time() - SEND_LIMIT - 1, stale)
    assert journal.recover_interrupted() == 1
    states = {row["attempt_id"]: row["state"] for row in journal.attempts()}
    assert states == {live: "sending", stale: "unknown"}


RUNWAY = {"model": "runway-video", "prompt": "waves at dusk", "duration": 5, "aspect_ratio": "16:9"}
ALEPH = {"model": "runway-aleph", "prompt": "make it rain", "options": {"videoUrl": "https://example.com/in.mp4"}}
VEO = {"model": "veo3_fast", "prompt": "waves at dusk"}
GPT4O = {"model": "gpt-4o-image", "prompt": "a fox", "aspect_ratio": "1:1"}
FLUX = {"model": "flux-kontext-pro", "prompt": "a fox", "aspect_ratio": "1:1"}


@eras_in_turn(
    ("tool", "arguments", "shape"),
    [
        *(("generate_image", IMAGE, shape) for shape in ("missing", "not_json", "empty")),
        *(("generate_video", RUNWAY, shape) for shape in ("missing", "not_json", "empty")),  # links in videoInfo
        ("generate_video", VEO, "empty"),
        ("generate_video", ALEPH, "empty"),
        ("generate_image", GPT4O, "empty"),
        ("generate_image", FLUX, "empty"),
    ],
    ids=[
        *(f"market-{shape}" for shape in ("missing", "not_json", "empty")),
        *(f"runway-{shape}" for shape in ("missing", "not_json", "empty")),
        "veo-empty",
        "aleph-empty",
        "gpt4o-empty",
        "flux-empty",
    ],
)
async def test_success_without_a_result_link_is_not_done_and_is_looked_at_again(
    connect, controls, tmp_path, tool, arguments, shape
):
    """KIE's success with no result link, in each family's own shape (the simulator's ``no_results`` fault: the audit
    found it did nothing on Runway, whose links are in ``videoInfo``, and the task was saved as usual)."""
    await controls.fault("status", kind="no_results", shape=shape, times=2)  # two looks: seen by the loop below
    async with connect(elicitation=answering(), max_credits_per_call=10_000) as client:
        first = await client.call_tool(tool, {**arguments, "wait_seconds": 0})
        task_id = first.structured_content["tasks"][0]["task_id"]
        # A wait on the follower, until it saw the empty success (a check_task of 0 s would ask KIE again at once).
        with anyio.fail_after(10):
            while True:
                empty = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0.1})
                if empty.structured_content["task"]["state"] not in ("queued", "running"):
                    break
        later = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
    assert empty.structured_content["task"]["state"] == "succeeded_without_results", text_of(empty)
    said = "a result that could not be read" if shape == "not_json" else "no result link"  # text, not JSON
    assert said in text_of(empty), text_of(empty)
    assert "Done" not in text_of(empty)
    assert later.structured_content["task"]["state"] == "succeeded", text_of(later)
    assert later.structured_content["task"]["files"]
    with sqlite3.connect(tmp_path / ".kie-mcp" / "journal.sqlite3") as db:
        kept = db.execute("SELECT body FROM answers WHERE task_id = ?", (task_id,)).fetchall()
    assert kept  # KIE's raw answer is kept for later study


async def test_unfinished_downloads_of_a_dead_process_are_swept_on_start(connect, tmp_path):
    folder = tmp_path / "outputs" / "2026-12-01-apple"
    folder.mkdir(parents=True)
    dead = await anyio.run_process(["sh", "-c", "echo $$"])
    leftover = folder / f".nano_t1_1.png.part-{int(dead.stdout)}-0123456789ab"
    live = folder / f".nano_t2_1.png.part-{os.getppid()}-0123456789ab"  # a live process: not ours to remove
    from kie_mcp.media.downloads import _HOST  # this machine's tag in a temporary file's name

    ours = folder / f".nano_t3_1.png.part-{_HOST}-{int(dead.stdout)}-0123456789ab"
    # A workspace on shared storage: another machine's download, whose process id means nothing here.
    elsewhere = folder / f".nano_t4_1.png.part-0badc0de-{int(dead.stdout)}-0123456789ab"
    abandoned = folder / f".nano_t5_1.png.part-0badc0de-{int(dead.stdout)}-0123456789ab"
    for path in (leftover, ours, elsewhere, abandoned):
        path.write_bytes(b"half a picture")
    live.write_bytes(b"still downloading")
    two_hours_ago = time.time() - 7200
    for path in (abandoned, leftover):  # an older kie-mcp's name tells no machine: one an hour unwritten goes
        os.utime(path, (two_hours_ago, two_hours_ago))
    async with connect() as client:
        await client.list_tools()  # no request needs the runtime: it opens by itself right after start-up
        with anyio.fail_after(5):
            while leftover.exists() or ours.exists() or abandoned.exists():  # noqa: ASYNC110 - seen on disk
                await anyio.sleep(0.05)
    assert live.exists() and elsewhere.exists()


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_check_task_asks_kie_again_about_a_success_that_came_without_its_links(connect, controls, tmp_path):
    """The audit: the answer promised "check_task looks again", but check_task never asked in this state, and the
    follower looks every 3 minutes: a person asking for 50 s got the empty success, and KIE was never asked."""
    await controls.fault("status", kind="no_results")
    async with connect(elicitation=answering(), poll_min_interval=0.2) as client:  # a 3-minute look is 18 s here
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 2})
        assert made.structured_content["tasks"][0]["state"] == "succeeded_without_results", text_of(made)
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id})
    assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
    assert checked.structured_content["task"]["files"]


async def test_a_success_without_result_links_ends_a_generations_wait_and_says_so(connect, controls):
    """The audit: KIE answering success with no result link made generate_image wait out all of wait_seconds, then
    answer "Submitted 1 image ...; still generating". Nothing is generating: the wait ends when KIE says so, and
    the answer says KIE owes the links (looked for in the background)."""
    await controls.fault("status", kind="no_results", shape="empty", times=-1)
    async with connect(elicitation=answering()) as client:
        started = time.monotonic()
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 30})
        took = time.monotonic() - started
    said = text_of(made)
    assert made.structured_content["tasks"][0]["state"] == "succeeded_without_results", said
    assert took < 15, took  # well before the 30 s it may wait: ended when KIE said it succeeded
    assert said.startswith("KIE reports 1 image from") and "sent no result link for 1 of 1 task yet" in said, said
    assert "still generating" not in said


def test_what_an_earlier_process_with_this_process_id_left_is_its_own_not_ours(tmp_path):
    """The audit: a container restarted in place runs kie-mcp as process 1 again, and what the killed process 1 left
    (a half-downloaded video, a create being sent) was taken for this process's own work: the partial file stayed
    for ever. The run of the process, in its tags and temporary names, tells the two apart."""
    from kie_mcp import processes
    from kie_mcp.media.downloads import _HOST, sweep_interrupted_downloads

    me, earlier = os.getpid(), "0badc0de" if processes.RUN != "0badc0de" else "feedface"
    assert processes.owner_gone(processes.this_process()) is False
    assert processes.owner_gone(f"{_HOST}-{me}-{earlier}") is True
    assert processes.owner_gone(f"{_HOST}-{me}") is True  # an older kie-mcp's tag: not this process's
    folder = tmp_path / "outputs" / "2026-12-01-apple"
    folder.mkdir(parents=True)
    left = folder / f".veo_t1_1.mp4.part-{_HOST}-{me}-{earlier}0123"
    mine = folder / f".veo_t2_1.mp4.part-{_HOST}-{me}-{processes.RUN}0123"  # being written right now
    for path in (left, mine):
        path.write_bytes(b"half a video")
    assert sweep_interrupted_downloads(tmp_path / "outputs") == 1
    assert not left.exists() and mine.exists()


async def test_requests_are_answered_while_the_start_sweeps_a_large_outputs_folder(connect, monkeypatch):
    """The sweep walks every result ever saved (0.5 s at 81,000 files): on the event loop it held up every request
    of the start, pings included. It runs in a worker thread: a call is answered while it is still walking."""
    from kie_mcp import runtime

    walking, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_sweep(outputs):
        walking.set()
        release.wait(5)
        finished.set()
        return 0

    monkeypatch.setattr(runtime, "sweep_interrupted_downloads", slow_sweep)
    async with connect() as client:
        credits = await client.call_tool("check_credits", {})
        answered_first = not finished.is_set()
        release.set()
    assert not credits.is_error, text_of(credits)
    assert walking.is_set() and answered_first


# -- a broken disk or journal -----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs, so a test can really fill the disk (needs root; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]
    done = subprocess.run(command, check=False, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip() or 'not root'}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte, unbuffered: a buffered file would keep a remainder that its close then fails
    to write (ENOSPC again, out of the test)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for block in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * block) == block:
                    pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_full_disk_after_the_create_still_returns_the_task_id(connect, controls, small_disk):
    workspace = small_disk / "ws"
    await controls.fault("create", kind="slow", seconds=3)
    async with connect(elicitation=answering(), workspace=workspace) as client:
        async with anyio.create_task_group() as group:
            results = []

            async def call() -> None:
                results.append(await client.call_tool("generate_image", IMAGE))

            group.start_soon(call)
            with anyio.fail_after(10):  # the create has reached KIE, which answers 3 s later: the disk fills first
                while not await controls.creates():  # noqa: ASYNC110 - the simulator's log
                    await anyio.sleep(0.02)
            filler = fill(small_disk)
        result = results[0]
        creates = await controls.creates()
        task_id = result.structured_content["tasks"][0]["task_id"] if result.structured_content else None
        assert task_id, text_of(result)
        assert "could not record" in text_of(result) and task_id in text_of(result)
        assert not bare_error(text_of(result))
        filler.unlink()
        later = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
    assert len(creates) == 1
    assert later.structured_content["task"]["state"] == "succeeded"


async def test_a_full_disk_before_the_create_spends_nothing_and_says_so(connect, controls, small_disk):
    workspace = small_disk / "ws"
    async with connect(elicitation=answering(), workspace=workspace) as client:
        await client.list_tools()
        fill(small_disk)
        result = await client.call_tool("generate_image", IMAGE)
    assert result.is_error or result.structured_content["status"] in ("failed",)
    assert "full" in text_of(result).lower()
    assert not bare_error(text_of(result))
    assert await controls.creates() == []


async def test_an_unwritable_workspace_does_not_stop_the_server(connect, controls, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the workspace should be")
    async with connect(elicitation=answering(), workspace=blocker / "ws") as client:
        models = await client.call_tool("list_models", {"kind": "image"})
        result = await client.call_tool("generate_image", IMAGE)
        credits = await client.call_tool("check_credits", {})
    assert not models.is_error
    for answer in (result, credits):
        assert answer.is_error
        assert "writable folder" in text_of(answer) and "KIE_WORKSPACE" in text_of(answer)
        assert not bare_error(text_of(answer))
    assert await controls.creates() == []


async def test_a_corrupt_journal_is_kept_aside_and_the_server_starts_fresh(connect, controls, tmp_path):
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
    journal.parent.mkdir()
    journal.write_bytes(b"this is not a database" * 100)
    async with connect(elicitation=answering()) as client:
        credits = await client.call_tool("check_credits", {})
        result = await client.call_tool("generate_image", IMAGE)
    kept = [p for p in journal.parent.iterdir() if ".corrupt-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not a database")
    assert str(kept[0]) in text_of(credits)
    assert result.structured_content["status"] == "completed"


async def test_the_first_answer_after_a_journal_reset_says_so_whatever_tool_it_is(connect, controls, tmp_path):
    """Only list_tasks and check_credits named the corrupt journal set aside (and the tasks list starting empty): an
    agent whose first call was a generation never told the user. The first answer of any tool says it, once."""
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
    journal.parent.mkdir()
    journal.write_bytes(b"this is not a database" * 100)
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", IMAGE)
        second = await client.call_tool("generate_image", {**IMAGE, "prompt": "a pear"})
        credits = await client.call_tool("check_credits", {})
    [kept] = [p for p in journal.parent.iterdir() if ".corrupt-" in p.name]
    assert first.structured_content["status"] == "completed" and str(kept) in text_of(first), text_of(first)
    assert str(kept) not in text_of(second)  # said once ...
    assert str(kept) in text_of(credits)  # ... and still there where the account's state is asked for


async def test_todays_spend_outlives_a_corrupt_journal_so_the_daily_cap_holds(connect, controls, tmp_path):
    """A fresh journal started today's spend at 0: after a corruption the whole daily cap could be spent again.
    What the call log says today's creates cost is counted against it."""
    async with connect(auto_approve_credits=10, max_credits_per_day=20) as client:
        for prompt in ("an apple", "a pear"):
            made = await client.call_tool("generate_image", {**IMAGE, "prompt": prompt})
            assert made.structured_content["status"] == "completed", text_of(made)
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
    for part in journal.parent.glob("journal.sqlite3*"):
        part.unlink()
    journal.write_bytes(b"this is not a database" * 100)
    async with connect(auto_approve_credits=10, max_credits_per_day=20) as client:
        credits = await client.call_tool("check_credits", {})
        over = await client.call_tool("generate_image", {**IMAGE, "prompt": "a plum"})
    assert credits.structured_content["spent_today"] == 16, text_of(credits)
    assert "Today's spend before that, 16 credits by the call log" in text_of(credits)
    assert over.is_error and "16 spent today" in text_of(over), text_of(over)  # 16 + 8 > 20: refused, as before
    assert len(await controls.creates()) == 2


async def test_a_running_task_of_unknown_price_still_counts_its_reservation_after_a_corrupt_journal(
    connect, controls, tmp_path
):
    """The audit: a create whose price is not known before it runs reserves its ceiling (here the most it can cost), but
    the call log kept only quoted prices, so after a journal reset the running task counted 0 and the daily cap
    could be spent again (1,200 reserved against 1,000). The log keeps what each create reserved."""
    unpriced = {
        "prompt": "a paper boat",
        "model": "bytedance/seedance-2",
        "options": {"reference_video_urls": ["https://example.com/ref.mp4"]},
    }
    caps = {"max_credits_per_call": 600, "max_credits_per_day": 900}  # 500 reserved each: one fits, not two
    await controls.post("clock/speed", {"speed": 0})  # KIE has not finished it yet ...
    # ... nor said what it charged: a status check before the first server stops (a busy machine) read 50 charged
    await controls.post("config", {"report_credits_consumed": False})
    async with connect(elicitation=answering(), **caps) as client:
        first = await client.call_tool("generate_video", unpriced)
        assert first.structured_content["status"] == "submitted", text_of(first)
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
    for part in journal.parent.glob("journal.sqlite3*"):
        part.unlink()
    journal.write_bytes(b"this is not a database" * 100)
    async with connect(elicitation=answering(), **caps) as client:
        credits = await client.call_tool("check_credits", {})
        second = await client.call_tool("generate_video", {**unpriced, "prompt": "a second boat"})
    assert credits.structured_content["spent_today"] == 500, text_of(credits)
    assert second.is_error and "500 spent today" in text_of(second), text_of(second)
    assert len(await controls.creates()) == 1


def test_the_call_log_counts_only_todays_creates_that_may_have_been_charged(tmp_path):
    from datetime import UTC, datetime, timedelta

    from kie_mcp.kie.calllog import spent_on

    now, log = datetime.now(UTC), tmp_path / "kie-api.jsonl"
    lines = [
        {"time": now.isoformat(), "endpoint": "/c", "outcome": "created", "task_id": "a", "credits_quoted": 8},
        {"time": now.isoformat(), "endpoint": "/s", "outcome": "ok", "task_id": "a", "credits_charged": 12},
        {"time": now.isoformat(), "endpoint": "/c", "outcome": "unknown", "credits_quoted": 30},
        {"time": now.isoformat(), "endpoint": "/c", "outcome": "refused", "credits_quoted": 50},
        {"time": now.isoformat(), "endpoint": "/c", "outcome": "created", "task_id": "b", "credits_reserved": 600},
        {"time": now.isoformat(), "endpoint": "/c", "outcome": "created", "task_id": "d", "credits_reserved": 600},
        {"time": now.isoformat(), "endpoint": "/s", "outcome": "ok", "task_id": "d", "credits_charged": 50},
        {"time": now.isoformat(), "endpoint": "/c", "outcome": "created", "task_id": "c"},  # written before: nothing
        {"time": (now - timedelta(days=2)).isoformat(), "endpoint": "/c", "outcome": "created", "credits_quoted": 99},
    ]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n", encoding="utf-8")
    # an unknown price counts what it reserved while no charge is known (b), then what KIE charged (d)
    assert spent_on(log, datetime.now().date()) == 12 + 30 + 600 + 50
    assert spent_on(tmp_path / "missing.jsonl", datetime.now().date()) == 0


async def test_a_read_only_journal_does_not_stop_the_server(connect, controls, small_disk):
    workspace = small_disk / "ws"
    async with connect(elicitation=answering(), workspace=workspace) as client:
        await client.call_tool("generate_image", IMAGE)  # the journal exists and holds a task
    remount = await anyio.run_process(["mount", "-o", "remount,ro", str(small_disk)], check=False)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
    async with connect(elicitation=answering(), workspace=workspace) as client:
        models = await client.call_tool("list_models", {"kind": "image"})
        result = await client.call_tool("generate_image", {**IMAGE, "prompt": "a pear"})
        listed = await client.call_tool("list_tasks", {})
    assert not models.is_error
    for answer in (result, listed):
        assert answer.is_error, text_of(answer)
        assert "writable" in text_of(answer) and not bare_error(text_of(answer))
    assert len(await controls.creates()) == 1  # only the one made before the journal became read-only


async def test_a_workspace_on_a_read_only_disk_is_said_to_be_read_only_in_plain_words(connect, controls, small_disk):
    """The journey: a workspace on a read-only disk got "kie-mcp cannot use its journal in <ws>/.kie-mcp (OSError:
    [Errno 30] Read-only file system: '<ws>/.kie-mcp')" from every tool. It says the folder is read-only, naming it,
    with no errno; nothing is sent."""
    remount = await anyio.run_process(["mount", "-o", "remount,ro", str(small_disk)], check=False)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
    async with connect(elicitation=answering(), workspace=small_disk) as client:
        answers = [await client.call_tool("check_credits", {}), await client.call_tool("generate_image", IMAGE)]
    folder = small_disk / ".kie-mcp"
    for answer in answers:
        said = text_of(answer)
        assert answer.is_error and f"{folder} is read-only: it is on a read-only disk" in said, said
        assert "Errno" not in said and "OSError" not in said, said
    assert await controls.creates() == []


async def test_a_create_another_server_was_sending_when_it_died_is_unknown_to_a_running_server(connect, tmp_path):
    """The audit: server B kept running while server A died mid-create on the same workspace; B never reported the
    unknown create (only a new start looked), and the same request sent through B after the retry window was
    auto-approved without a word. B's follower now looks every minute."""
    from kie_mcp.journal import Journal
    from kie_mcp.processes import HOST

    ran = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    gone = int(ran.stdout)  # a process id that is gone
    async with connect(elicitation=answering()) as client:
        before = (await client.call_tool("check_credits", {})).structured_content
        journal = Journal.for_workspace(tmp_path)
        attempt = journal.begin_attempt(
            model="nano-banana-2", family="market", approved_by="quote", quote_id=None, prompt="p", params={},
            credits_quoted=8, session=None,
        )  # fmt: skip
        journal.execute("UPDATE attempts SET owner = ? WHERE attempt_id = ?", f"{HOST}-{gone}", attempt)
        with anyio.fail_after(10):
            while (await client.call_tool("check_credits", {})).structured_content["unknown_creates"] == 0:  # noqa: ASYNC110 - the follower's minute, shortened in tests
                await anyio.sleep(0.1)
        after = (await client.call_tool("check_credits", {})).structured_content
    assert before["unknown_creates"] == 0 and after["unknown_creates"] == 1


def test_a_finished_task_never_reads_unfinished_again_in_the_journal(tmp_path):
    """The audit: two servers on one workspace: one wrote "succeeded", the other then wrote the "queued" it had seen
    before, and the clip could no longer be extended or upscaled. A finished task's state is kept; its record may
    still change (what was saved, what was charged)."""
    from kie_mcp.journal import Journal

    journal = Journal.for_workspace(tmp_path)
    journal.save_task('{"state": "queued"}', task_id="t1", model="m", state="queued")
    journal.save_task('{"state": "succeeded"}', task_id="t1", model="m", state="succeeded")
    journal.save_task('{"state": "queued", "stale": true}', task_id="t1", model="m", state="queued")
    assert (journal.task_row("t1")["state"], journal.task_row("t1")["record"]) == (
        "succeeded",
        '{"state": "succeeded"}',
    )
    journal.save_task('{"state": "succeeded", "files": 1}', task_id="t1", model="m", state="succeeded")
    assert journal.task_row("t1")["record"] == '{"state": "succeeded", "files": 1}'
    journal.save_task('{"state": "failed"}', task_id="t2", model="m", state="failed")
    journal.save_task('{"state": "running"}', task_id="t2", model="m", state="running")
    assert journal.task_row("t2")["state"] == "failed"
    journal.save_task('{"state": "unknown"}', task_id="t3", model="m", state="unknown")
    journal.save_task('{"state": "running"}', task_id="t3", model="m", state="running")  # found after all
    assert journal.task_row("t3")["state"] == "running"


async def test_a_call_log_grown_past_its_size_moves_aside_keeping_every_line_and_todays_spend(
    connect, controls, tmp_path, monkeypatch
):
    """The call log was never rotated: it grew by a line per KIE call for good. Past its size it moves to
    kie-api.1.jsonl (the line that crossed it goes there too), a new one starts with the next line, no line is lost,
    and today's spend after a corrupt journal is read from both."""
    from kie_mcp.kie import calllog

    logs = tmp_path / "logs"
    current, moved = logs / "kie-api.jsonl", logs / "kie-api.1.jsonl"
    async with connect(auto_approve_credits=10) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        assert made.structured_content["status"] == "completed", text_of(made)
        before = current.read_text()
        monkeypatch.setattr(calllog, "ROTATE_BYTES", len(before.encode()) + 1)  # the next line crosses it
        await client.call_tool("check_credits", {})  # a balance call: the line that moves the log
        await client.call_tool("check_credits", {})  # the first line of the new log
    task_id = made.structured_content["tasks"][0]["task_id"]
    assert moved.read_text().startswith(before) and len(moved.read_text().splitlines()) > len(before.splitlines())
    assert current.is_file() and current.read_text().splitlines()  # a new log, begun with the next line
    assert any(json.loads(line).get("task_id") == task_id for line in moved.read_text().splitlines())
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
    for part in journal.parent.glob("journal.sqlite3*"):
        part.unlink()
    journal.write_bytes(b"this is not a database" * 100)
    async with connect() as client:
        credits = await client.call_tool("check_credits", {})
    assert credits.structured_content["spent_today"] == 8, text_of(credits)  # from the moved log
