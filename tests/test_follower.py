"""Issue 10, item 2: one follower per server process polls every task, waiters only wait on it.

Behaviour, never speed: KIE is the simulator (``sim`` at 1000x), status calls are counted from its request log,
and the tests shorten ``poll_min_interval`` (conftest), which runs the follower's whole schedule faster.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    INVALID_PARAMS,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
    ResourceUpdatedNotification,
)

from kie_mcp.catalog import load_catalog
from kie_mcp.kie import FAMILIES, KieClient
from kie_mcp.sandbox import SANDBOX_API_KEY
from kie_mcp.spend import grant
from kie_mcp.tasks.follower import FINE, RETENTION_SECONDS, SAVE_AGAIN, first_look, next_gap
from kie_mcp.tasks.polling import Look, refresh
from kie_mcp.tasks.records import TaskRecord

from .conftest import API, UPLOADS, answering, text_of

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
VIDEO = {"prompt": "waves rolling onto a beach at dusk", "model": "veo3_fast"}
STATUS_PATHS = {family.status_path for family in FAMILIES.values()}


@asynccontextmanager
async def hearing(settings, transport) -> AsyncIterator[tuple[Client, list[str]]]:
    """A handshake-era client of a fresh server on the workspace, and the log messages it is sent."""
    from kie_mcp.server import create_server

    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    async with Client(create_server(settings, transport=transport), mode="legacy", logging_callback=on_log) as client:
        yield client, lines


async def status_calls(controls, task_id: str) -> list[dict[str, Any]]:
    """The status calls KIE received about ``task_id``, in order (``at`` in the simulator's virtual seconds)."""
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return [r for r in items if r["path"] in STATUS_PATHS and r["query"].get("taskId") == task_id]


def saved(workspace: Path, task_id: str) -> list[Path]:
    outputs = workspace / "outputs"
    if not outputs.is_dir():
        return []
    found = outputs.rglob(f"*{task_id}*")  # hidden files (thumbnails, posters, temporary files) are not results
    return [p for p in found if p.is_file() and p.suffix != ".json" and not p.name.startswith(".")]


async def until_saved(workspace: Path, task_id: str, seconds: float = 20) -> list[Path]:
    with anyio.fail_after(seconds):
        while not (found := saved(workspace, task_id)):  # noqa: ASYNC110 - files on disk: nothing to await
            await anyio.sleep(0.02)
    return found


async def listed_with_files(client, seconds: float = 10) -> list[dict]:
    """list_tasks once its newest task lists its saved files: the file is in place a moment before the journal says."""
    with anyio.fail_after(seconds):
        while True:
            listed = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
            if listed and listed[0]["files"]:
                return listed
            await anyio.sleep(0.05)


async def video_nobody_waits_for(client) -> str:
    result = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
    assert result.structured_content["status"] == "submitted", text_of(result)
    return result.structured_content["tasks"][0]["task_id"]


# -- the schedule -----------------------------------------------------------------------------------------


def looks_for(duration: float, typical: tuple[float, float]) -> tuple[int, float]:
    """Looks at a task that ends after ``duration`` seconds, and how late the last one sees the end."""
    age, looks = first_look(typical), 1
    while age < duration:
        age += next_gap(age)
        looks += 1
    return looks, age - duration


def test_the_schedule_of_a_five_minute_video_and_a_two_minute_image():
    catalog = load_catalog()
    for model, duration, most in (
        ("veo3_fast", 300, 12),
        ("kling-3.0/video", 300, 16),  # a wider typical window (60-300 s): four more looks keep the 10%
        ("gpt-image-2-text-to-image", 120, 22),
    ):
        typical = catalog.get(model).typical_seconds
        looks, late = looks_for(duration, typical)
        assert looks <= most, (model, looks)
        assert late <= max(2.0, 0.1 * duration), (model, late)
    # A task of any model that ends after 1.1x its typical low is seen within max(2 s, 10%) of its duration
    # (up to ten minutes; past that the gap stays at a minute), and one ending right at the low within 20%.
    for spec in catalog:
        low, high = spec.typical_seconds
        for duration in [1.1 * low + step * (2 * high - 1.1 * low) / 40 for step in range(41)]:
            if duration <= 600:
                assert looks_for(duration, (low, high))[1] <= max(2.0, FINE * duration) + 1e-9, (spec.id, duration)
        assert looks_for(low, (low, high))[1] <= max(2.0, 0.2 * low) + 1e-9, spec.id


# -- following without anyone asking ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_result_nobody_asked_for_is_saved_and_then_nobody_polls_it(connect, controls, tmp_path):
    async with connect(elicitation=answering()) as client:
        task_id = await video_nobody_waits_for(client)
        files = await until_saved(tmp_path, task_id)  # no check_task: the follower did it
        polls = len(await status_calls(controls, task_id))
        await anyio.sleep(1.0)  # several of the longest gaps of the (shortened) schedule
        later = len(await status_calls(controls, task_id))
        listed = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
    assert files[0].suffix == ".mp4" and files[0].read_bytes()[4:8] == b"ftyp"
    assert polls >= 1
    assert later == polls  # the task has ended: no more status calls for it
    assert listed[0]["state"] == "succeeded" and listed[0]["files"]  # in the journal, with its files


async def test_a_task_left_by_an_earlier_server_is_followed_and_saved_on_start(connect, controls, tmp_path):
    await controls.post("clock/speed", {"speed": 0})  # the first server cannot see it end
    async with connect(elicitation=answering()) as first:
        task_id = await video_nobody_waits_for(first)
    assert saved(tmp_path, task_id) == []
    await controls.post("clock/speed", {"speed": 1000})
    async with connect() as second:
        await second.list_tools()  # nothing about the task is asked
        files = await until_saved(tmp_path, task_id)
        spent = (await second.call_tool("check_credits", {})).structured_content["spent_today"]
    assert files[0].suffix == ".mp4"
    assert spent == 60  # settled once, by whichever process saw it end


def created_at(workspace: Path, task_id: str, created: float) -> None:
    """Make the journal say ``task_id`` was created at ``created`` (epoch seconds), as if it were that old."""
    from kie_mcp.journal import Journal

    journal = Journal.for_workspace(workspace)
    with journal.transaction() as db:
        (record,) = db.execute("SELECT record FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        moved = json.dumps({**json.loads(record), "created_at": created})
        db.execute("UPDATE tasks SET record = ?, created = ? WHERE task_id = ?", (moved, created, task_id))
    journal.close()


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_kie_calls_unfinished_for_longer_than_it_keeps_results_is_not_followed_for_ever(
    connect, controls, tmp_path
):
    """A restart does not adopt a task older than 14 days; a server that stays up used to look at one KIE kept
    calling unfinished for as long as it ran (a status call a minute, for ever)."""
    await controls.post("clock/speed", {"speed": 0})  # KIE never finishes it
    async with connect(elicitation=answering()) as first:
        task_id = await video_nobody_waits_for(first)
    created = time.time() - RETENTION_SECONDS + 1.0  # adopted on start, 14 days old a second later
    created_at(tmp_path, task_id, created)
    async with connect() as second:
        await second.list_tools()
        with anyio.fail_after(10):
            while not await status_calls(controls, task_id):  # noqa: ASYNC110 - the simulator's log
                await anyio.sleep(0.02)
        await anyio.sleep(3.0)  # past 14 days, and several of the longest gaps of the (shortened) schedule
        looked = len(await status_calls(controls, task_id))
        await anyio.sleep(1.5)
        later = len(await status_calls(controls, task_id))
        checked = await second.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    assert later == looked  # no longer followed
    assert checked.structured_content["task"]["state"] in ("queued", "running")  # check_task still asks KIE
    assert len(await status_calls(controls, task_id)) == later + 1


def file_gets(requests: Any) -> list[str]:
    """The downloads of result files the simulator received, in order."""
    items = requests if isinstance(requests, list) else requests["requests"]
    return [r["path"] for r in items if r["path"].startswith("/files/")]


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_result_whose_download_failed_is_saved_again_without_anyone_asking(connect, controls, tmp_path):
    await controls.fault("files", kind="code", code=503, times=1)  # the CDN fails once, as CDNs do
    async with connect(elicitation=answering()) as client:
        task_id = await video_nobody_waits_for(client)
        files = await until_saved(tmp_path, task_id)  # no check_task: the follower tried again
        listed = await listed_with_files(client)
        gets = file_gets(await controls.get("requests"))
        await anyio.sleep(1.0)  # past several retry gaps of the (shortened) schedule
        again = file_gets(await controls.get("requests"))
    assert files[0].suffix == ".mp4" and files[0].read_bytes()[4:8] == b"ftyp"
    assert len(gets) == 2 and gets[0] == gets[1]  # the failed download (503), then the one that saved it
    assert again == gets  # once saved, nothing more is fetched
    assert listed[0]["files"]


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_check_task_during_the_background_save_of_its_results_does_not_download_them_again(
    connect, controls, tmp_path
):
    """The follower's background try and a check_task used to fetch the same file at the same time (a video of
    hundreds of megabytes, twice); the check now waits for the save in flight and names what it saved."""
    await controls.fault("files", kind="code", code=503, times=1)  # the first download fails
    await controls.fault("files", kind="stall", seconds=2.0, after_bytes=1000)  # the background try is slow
    async with connect(elicitation=answering()) as client:
        task_id = await video_nobody_waits_for(client)
        with anyio.fail_after(20):
            while len(file_gets(await controls.get("requests"))) < 2:  # noqa: ASYNC110 - the simulator's log
                await anyio.sleep(0.02)
        checked = await client.call_tool("check_task", {"task_id": task_id})  # while the background try runs
        gets = file_gets(await controls.get("requests"))
    assert len(gets) == 2  # the failed download and the background try: check_task fetched nothing itself
    assert checked.structured_content["task"]["files"], text_of(checked)  # it names the file the try saved
    assert saved(tmp_path, task_id)[0].read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_results_a_stopped_server_was_saving_are_saved_on_the_next_start(connect, controls, tmp_path):
    await controls.fault("files", kind="stall", seconds=3.0, after_bytes=1000)
    async with connect(elicitation=answering()) as first:
        task_id = await video_nobody_waits_for(first)
        with anyio.fail_after(20):
            while not file_gets(await controls.get("requests")):  # noqa: ASYNC110 - the simulator's log: nothing to await
                await anyio.sleep(0.02)
    # The host closed the server mid-download: the journal says succeeded, nothing is on disk.
    assert saved(tmp_path, task_id) == []
    async with connect() as second:
        await second.list_tools()  # nothing about the task is asked
        files = await until_saved(tmp_path, task_id)
    assert files[0].suffix == ".mp4" and files[0].read_bytes()[4:8] == b"ftyp"
    assert not list((tmp_path / "outputs").rglob(".*part*"))  # no temporary file of the cut download is left


def journal_of_many(tmp_path: Path, count: int, fields: Any) -> tuple[Any, Any]:
    """A workspace journal holding ``count`` tasks (``fields(n)`` for the n-th), and a follower reading it."""
    from types import SimpleNamespace

    from kie_mcp.journal import Journal
    from kie_mcp.tasks.follower import Follower
    from kie_mcp.tasks.records import TaskBook

    journal = Journal.for_workspace(tmp_path)
    book = TaskBook(journal)
    with journal.transaction():
        for n in range(count):
            book.add(TaskRecord(task_id=f"task-{n:04d}", model="nano-banana-2", family="market", **fields(n)))
    follower = Follower()
    follower._rt = SimpleNamespace(journal=journal, settings=SimpleNamespace(download=True))
    return journal, follower


def test_tasks_the_follower_already_has_never_hide_newer_unfinished_ones_behind_a_page(tmp_path):
    """1,200 unfinished tasks (many made in the same second): the scan reads them all, each once, page by page; the
    first 500 alone (followed already, or given up on) used to be all a scan saw, so newer tasks waited for a
    restart."""
    from kie_mcp.tasks.follower import ADOPT_PAGE

    now = time.time()
    queued = {"state": "queued"}
    journal, follower = journal_of_many(tmp_path, 1200, lambda n: {**queued, "created_at": now - 3600 + n // 7})
    seen = [row["task_id"] for row in follower._unfinished_rows(since=now - 86400, quiet_since=None)]
    first_page = journal.unfinished_tasks(since=now - 86400, limit=ADOPT_PAGE)
    journal.close()
    assert len(first_page) == ADOPT_PAGE
    assert sorted(seen) == [f"task-{n:04d}" for n in range(1200)] and len(set(seen)) == 1200


class _WithoutJson:
    """A connection as an SQLite built without its JSON functions answers (some system builds)."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def execute(self, sql: str, *args: Any) -> Any:
        import sqlite3

        if "json_" in sql:
            raise sqlite3.OperationalError("no such function: json_array_length")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@pytest.mark.parametrize("json_functions", [True, False])
def test_the_journal_names_finished_tasks_with_results_not_all_saved(tmp_path, json_functions):
    from kie_mcp.journal import Journal
    from kie_mcp.tasks.records import TaskBook

    journal = Journal.for_workspace(tmp_path)
    book = TaskBook(journal)
    urls = ["https://cdn.example/a.png", "https://cdn.example/b.png"]

    def task(task_id: str, state: str, files: int, age_days: float = 0.0) -> None:
        book.add(TaskRecord(task_id=task_id, model="nano-banana-2", family="market", state=state,
                            result_urls=urls, created_at=time.time() - age_days * 86400))  # fmt: skip
        for index in range(1, files + 1):
            journal.add_file(task_id, index, f"outputs/{task_id}_{index}.png", "0" * 64, 1, "image/png", urls[0])

    task("none-saved", "succeeded", 0)
    task("one-of-two", "succeeded", 1)
    task("all-saved", "succeeded", 2)  # a file the user deleted later keeps its row: not fetched again
    task("still-running", "running", 0)
    task("too-old", "succeeded", 0, age_days=20)
    if not json_functions:
        journal._db = _WithoutJson(journal._db)
    found = [row["task_id"] for row in journal.unsaved_tasks(since=time.time() - 14 * 86400)]
    journal.close()
    # Without JSON functions the result links cannot be counted: the tasks with no file saved at all.
    assert found == (["none-saved", "one-of-two"] if json_functions else ["none-saved"])


async def test_every_unsaved_result_of_the_last_14_days_is_tried_again_after_a_restart(tmp_path):
    """150 finished tasks with nothing saved (their links failed, or refused): the start-up search took the 100
    oldest, so results that could still be saved waited behind ones that never could, restart after restart."""
    now = time.time()
    journal, follower = journal_of_many(
        tmp_path, 150, lambda n: {"state": "succeeded", "result_urls": [f"https://cdn.example/{n}.png"],
                                  "created_at": now - 3600 + n}
    )  # fmt: skip
    await follower._adopt_unsaved()
    journal.close()
    assert sorted(follower._unsaved) == [f"task-{n:04d}" for n in range(150)]


async def test_a_result_check_task_could_not_save_is_saved_again_in_the_background(connect, controls, sim, tmp_path):
    """A task made elsewhere (KIE's site, another tool) and finished before anyone here asked: check_task saves it
    itself, and when that download fails, the follower tries again without being asked."""
    from .test_downloads import AUTH

    body = {"model": "nano-banana-2", "input": {"prompt": "a red fox"}}
    task_id = (await controls.http.post("/api/v1/jobs/createTask", json=body, headers=AUTH)).json()["data"]["taskId"]
    sim.advance(1800)  # finished at KIE before kie-mcp hears of it
    await controls.fault("files", kind="code", code=503, times=1)
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id})
        assert checked.structured_content["task"]["files"] == [], text_of(checked)  # its own try failed
        files = await until_saved(tmp_path, task_id)  # no second check_task
    assert files[0].suffix == ".jpg"  # nano-banana-2 answers JPEG by default


async def test_a_task_whose_call_was_cancelled_is_still_followed_and_saved(connect, controls, tmp_path):
    await controls.fault("create", kind="slow", seconds=2.0)
    async with connect(elicitation=answering()) as client:
        with anyio.move_on_after(1.0) as scope:
            await client.call_tool("generate_image", IMAGE)
        assert scope.cancelled_caught  # the host gave up while the create was on its way; KIE still made it
        with anyio.fail_after(10):
            while not (tasks := (await controls.get("tasks"))["tasks"]):  # noqa: ASYNC110 - another party's state
                await anyio.sleep(0.05)
        task_id = tasks[0]["taskId"]
        files = await until_saved(tmp_path, task_id)  # the journal had it, nobody followed it: the follower does
    assert files[0].suffix == ".jpg"


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_results_an_outage_kept_from_saving_past_the_quick_tries_are_tried_every_hour(
    connect, controls, tmp_path
):
    """The audit: a CDN outage (or a network down, or outputs/ on an unplugged disk) longer than SAVE_AGAIN's quick
    tries (about 48 minutes) left the results unsaved for the life of the process, though KIE keeps them 14 days and
    a server runs for days. After the quick tries, the follower tries once an hour."""
    quick = len(SAVE_AGAIN) + 1  # the finishing's download and the background's quick tries
    await controls.fault("files", kind="code", code=503, times=quick)  # the outage ends right after them
    async with connect(elicitation=answering(), poll_min_interval=0.001) as client:  # an hour is 1.8 s here
        task_id = await video_nobody_waits_for(client)
        files = await until_saved(tmp_path, task_id, seconds=30)
        listed = await listed_with_files(client)
    gets = file_gets(await controls.get("requests"))
    assert files[0].suffix == ".mp4" and files[0].read_bytes()[4:8] == b"ftyp"
    assert len(gets) == quick + 1  # the quick tries, then the first hourly one, which saved it
    assert listed[0]["files"]


async def test_a_handshake_client_is_told_when_the_quick_tries_at_saving_are_over_and_what_to_do(
    settings, transport, controls, tmp_path
):
    """The audit: when the quick tries ended, only stderr heard of it. The client is sent a line saying the results
    are not saved, that they are tried every hour until KIE deletes them, and that check_task saves them now."""
    from dataclasses import replace

    await controls.fault("files", kind="code", code=503, times=len(SAVE_AGAIN) + 1)
    fast = replace(settings, poll_min_interval=0.001, auto_approve_credits=100)  # an hour is 1.8 s here
    async with hearing(fast, transport) as (client, lines):
        task_id = await video_nobody_waits_for(client)
        await until_saved(tmp_path, task_id, seconds=30)
        with anyio.fail_after(10):
            while not any(task_id in line and "not saved" not in line for line in lines):  # noqa: ASYNC110 - callback
                await anyio.sleep(0.02)
    told = [line for line in lines if task_id in line]
    hourly = next(line for line in told if "every hour" in line)
    assert "not saved yet" in hourly and "check_task saves them now" in hourly, hourly
    assert "48 minutes of tries" in hourly and "until KIE deletes them" in hourly, hourly
    assert "outputs/" in told[-1] and "not saved" not in told[-1], told  # then saved on the hour


async def test_results_kie_deletes_before_the_next_try_are_no_longer_tried_and_the_client_is_told(
    settings, transport, controls, tmp_path
):
    """The hourly tries end with KIE's 14 days: a try after it deleted the results would only fail (a request an
    hour for nothing). The client is told so."""
    from dataclasses import replace

    from kie_mcp.server import create_server

    await controls.post("clock/speed", {"speed": 0})  # the first server cannot see it end
    async with Client(create_server(settings, transport=transport), elicitation_callback=answering()) as first:
        task_id = await video_nobody_waits_for(first)
    created = time.time() - RETENTION_SECONDS + 6.0  # KIE deletes its results 6 s from now: about 3 hours here
    created_at(tmp_path, task_id, created)
    await controls.fault("files", kind="code", code=503, times=-1)
    await controls.post("clock/speed", {"speed": 1000})
    async with hearing(replace(settings, poll_min_interval=0.001), transport) as (client, lines):
        await client.call_tool("list_tasks", {})  # this client hears of the task from now on
        with anyio.fail_after(20):
            while not any(task_id in line and "no longer tries" in line for line in lines):  # noqa: ASYNC110
                await anyio.sleep(0.02)
        tried = len(file_gets(await controls.get("requests")))
        await controls.http.delete("/__sim/faults")  # the file server is back: KIE would have deleted them by now
        await anyio.sleep(4.0)  # two hours here
        later = len(file_gets(await controls.get("requests")))
    assert tried >= 2 and later == tried
    [given_up] = [line for line in lines if "no longer tries" in line]
    assert "14 days" in given_up and "not saved yet" in given_up, given_up


# -- waiting on the follower ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_two_waits_on_one_task_do_not_double_its_status_calls(connect, controls):
    await controls.post("clock/speed", {"speed": 0})  # the three tasks keep running while we wait
    # A slower schedule than the other tests': Veo 3.1 Fast's first look 2.7 s after the create, then every ~0.3 s.
    # The waits last 4 s, so at least two looks fall inside them with a second to spare (with 3 s the second look
    # came ~30 ms before the waits ended, and a busy machine's jitter dropped it: calls[once] was 1).
    async with connect(elicitation=answering(), poll_min_interval=0.05, poll_max_interval=0.25) as client:
        result = await client.call_tool("generate_video", {**VIDEO, "variations": 3, "wait_seconds": 0})
        twice, once, alone = (task["task_id"] for task in result.structured_content["tasks"])  # created together

        async def wait_on(task_id: str) -> None:
            result = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 4})
            assert result.structured_content["task"]["state"] in ("queued", "running"), text_of(result)

        async with anyio.create_task_group() as group:
            group.start_soon(wait_on, twice)
            group.start_soon(wait_on, twice)
            group.start_soon(wait_on, once)
    calls = {task_id: len(await status_calls(controls, task_id)) for task_id in (twice, once, alone)}
    assert calls[once] >= 2  # it was followed while they waited
    assert calls[twice] <= calls[once] + 1  # two waiters, one schedule
    assert abs(calls[once] - calls[alone]) <= 1  # waiting does not change the schedule either


async def test_generate_image_waits_with_progress_and_returns_the_files(connect, controls, tmp_path):
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20}, progress_callback=on_progress)
        await anyio.sleep(0.05)
    data = result.structured_content
    assert data["status"] == "completed", text_of(result)
    task = data["tasks"][0]
    assert task["state"] == "succeeded" and task["files"]
    assert (tmp_path / task["files"][0]).is_file()
    assert progress and progress == sorted(progress) and len(set(progress)) == len(progress)
    assert len(await status_calls(controls, task["task_id"])) >= 1


async def test_check_task_without_waiting_looks_once(connect, controls, sim):
    async with connect(elicitation=answering()) as client:
        task_id = await video_nobody_waits_for(client)
        sim.advance(4000)  # it has ended on KIE; the follower has not looked yet
        done = await client.call_tool("check_task", {"task_id": task_id})
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    assert done.structured_content["task"]["files"]


# -- KIE says slow down ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_429_on_status_backs_off(connect, controls, tmp_path):
    async with connect(elicitation=answering(), rate_limit_backoff=0.5) as client:
        task_id = await video_nobody_waits_for(client)
        await controls.fault("status", kind="code", code=429, times=2)
        await until_saved(tmp_path, task_id)
    calls = await status_calls(controls, task_id)
    assert len(calls) >= 3
    speed = 1000.0  # virtual seconds per real second
    assert calls[1]["at"] - calls[0]["at"] >= 0.45 * speed  # after the first 429: rate_limit_backoff
    assert calls[2]["at"] - calls[1]["at"] >= 0.9 * speed  # after the second: twice as long


async def test_a_storm_of_429s_on_status_checks_is_said_on_the_task_and_check_task_never_adds_to_it(
    connect, controls, mode
):
    """The audit: KIE answering every status check with 429 went unsaid (check_task: "queued ... about 279 s left"),
    and check_task(wait_seconds=0) asked KIE each time, paused looks or not: six calls in no time, six 429s. While
    the looks are paused, check_task answers from the record; a storm (429s in a row) is noted on every task followed,
    and said by check_task, but one 429 alone is pacing, not a storm (the review: it was said as one)."""
    if mode != "auto":
        pytest.skip("the follower is the same in both eras")
    async with connect(elicitation=answering(), rate_limit_backoff=1.0) as client:
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        await controls.fault("status", kind="code", code=429, times=-1)
        answers = [await client.call_tool("check_task", {"task_id": task_id}) for _ in range(6)]
        asked = len(await status_calls(controls, task_id))
        waited = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 2.5})
    assert asked == 1, asked  # the first check_task's look; the five after it answered from the record
    for answer in answers[1:]:  # one 429 so far
        assert answer.structured_content["task"]["error"] is None, text_of(answer)
    said = text_of(waited)  # the follower's own looks met 429s in a row meanwhile
    assert "refusing status checks for now (rate limit): kie-mcp asks again in" in said, said
    assert "Another app or server using this API key" in said
    assert waited.structured_content["task"]["error"].startswith("KIE is refusing status checks")


@pytest.mark.parametrize("mode", ["auto"])  # the follower and the answer's words, not the era: once
async def test_a_status_check_refused_with_429_is_said_to_be_refused_from_the_first_429(connect, controls):
    """The chaos audit: the first status check KIE answered with 429 was worded "KIE did not show it yet when asked (a
    new task can take a moment to appear)", as if KIE had answered that it has no such task; only the second said KIE
    is refusing status checks (rate limit). The answer about a task whose own check was refused says so from the
    first 429 (one 429 is still pacing: no storm is noted on the task)."""
    async with connect(elicitation=answering(), rate_limit_backoff=5.0) as client:
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        await controls.fault("status", kind="code", code=429, times=1)
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 1})
    said = text_of(checked)
    assert len(await status_calls(controls, task_id)) == 1, said  # that one check, refused
    assert "refused the status check for now (429, rate limit" in said, said
    assert "did not show it yet" not in said, said
    assert checked.structured_content["task"]["error"] is None, said  # one 429: pacing, not a storm


# -- telling the client ----------------------------------------------------------------------------------


async def test_subscribers_hear_that_the_task_changed(connect, controls, mode):
    if mode != "auto":
        pytest.skip("subscriptions/listen is the 2026-07-28 way to subscribe to a resource")
    async with connect(elicitation=answering()) as client:
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        uri = f"kie://tasks/{task_id}"
        await client.read_resource(uri)
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            await controls.post("clock/speed", {"speed": 1000})
            with anyio.fail_after(20):
                event = await anext(aiter(subscription))
        read = await client.read_resource(uri)
    assert getattr(event, "uri", None) == uri
    assert '"task_id"' in read.contents[0].text


async def test_subscribers_hear_of_a_task_an_earlier_server_made_and_of_the_task_list(connect, controls, mode):
    """After a restart, a client that subscribes before asking anything hears when a task left by the earlier server
    ends; a subscriber to the task list hears it too (its content changed)."""
    if mode != "auto":
        pytest.skip("subscriptions/listen is the 2026-07-28 way to subscribe to a resource")
    await controls.post("clock/speed", {"speed": 0})
    async with connect(elicitation=answering()) as client:
        task_id = await video_nobody_waits_for(client)
    async with connect(elicitation=answering()) as client:
        uris = [f"kie://tasks/{task_id}", "kie://tasks"]
        async with client.listen(resource_subscriptions=uris) as subscription:
            await controls.post("clock/speed", {"speed": 1000})
            heard: set[str] = set()
            with anyio.fail_after(20):
                async for event in subscription:  # the task also changes state on its way (running: told too)
                    heard.add(str(getattr(event, "uri", "")))
                    read = json.loads((await client.read_resource(f"kie://tasks/{task_id}")).contents[0].text)
                    if heard >= set(uris) and read["state"] == "succeeded":
                        break
    assert read["state"] == "succeeded"


async def test_subscribers_to_the_task_list_hear_when_a_create_ends_with_its_outcome_unknown(connect, controls, mode):
    """The audit: a create whose answer never came changes ``kie://tasks`` (its unknown creates), but only task
    records were announced, so a subscriber to the list was never told."""
    if mode != "auto":
        pytest.skip("subscriptions/listen is the 2026-07-28 way to subscribe to a resource")
    await controls.fault("create", kind="drop_after_create")
    async with connect(elicitation=answering()) as client:
        async with client.listen(resource_subscriptions=["kie://tasks"]) as subscription:
            made = await client.call_tool("generate_image", IMAGE)
            with anyio.fail_after(5):
                event = await anext(aiter(subscription))
        listed = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    assert made.structured_content["status"] == "unknown", text_of(made)
    assert getattr(event, "uri", None) == "kie://tasks"
    assert listed["unknown_creates"] == 1


async def test_subscribers_to_the_task_list_hear_when_a_create_a_stopped_server_was_sending_becomes_unknown(
    connect, mode, tmp_path
):
    """Another server on the workspace stopped while it sent a create: this server's rescan makes it unknown, which
    changes ``kie://tasks``; its subscribers hear it."""
    from kie_mcp.journal import SEND_LIMIT, Journal

    if mode != "auto":
        pytest.skip("subscriptions/listen is the 2026-07-28 way to subscribe to a resource")
    async with connect() as client:
        await client.read_resource("kie://tasks")  # the server is up, its follower running
        async with client.listen(resource_subscriptions=["kie://tasks"]) as subscription:
            journal = Journal.for_workspace(tmp_path)
            attempt = dict(model="nano-banana-2", family="market", approved_by="quote", quote_id=None, prompt="p")
            begun = journal.begin_attempt(**attempt, params={}, credits_quoted=8, session=None)
            journal.execute("UPDATE attempts SET created = ? WHERE attempt_id = ?", time.time() - SEND_LIMIT - 1, begun)
            journal.close()
            with anyio.fail_after(10):
                event = await anext(aiter(subscription))
        listed = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    assert getattr(event, "uri", None) == "kie://tasks"
    assert listed["unknown_creates"] == 1


async def test_subscribers_to_the_task_list_hear_of_creates_a_stopped_server_left_being_sent_when_this_one_starts(
    connect, mode, tmp_path
):
    """A create an earlier server was sending when it stopped becomes unknown as this server starts (its start-up
    rescan, not the follower's minute); a client that subscribes to ``kie://tasks`` before asking anything hears
    of it."""
    import os

    from kie_mcp.journal import Journal
    from kie_mcp.processes import HOST

    if mode != "auto":
        pytest.skip("subscriptions/listen is the 2026-07-28 way to subscribe to a resource")
    journal = Journal.for_workspace(tmp_path)
    attempt = dict(model="nano-banana-2", family="market", approved_by="quote", quote_id=None, prompt="p")
    begun = journal.begin_attempt(**attempt, params={}, credits_quoted=8, session=None)
    earlier_run = f"{HOST}-{os.getpid()}-earlier"  # this process id, another run: a process that is gone
    journal.execute("UPDATE attempts SET owner = ? WHERE attempt_id = ?", earlier_run, begun)
    journal.close()
    async with connect() as client:
        async with client.listen(resource_subscriptions=["kie://tasks"]) as subscription:
            with anyio.fail_after(10):
                event = await anext(aiter(subscription))
        listed = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    assert getattr(event, "uri", None) == "kie://tasks"
    assert listed["unknown_creates"] == 1


async def test_a_handshake_client_gets_a_log_message_when_a_task_ends(settings, transport, controls, tmp_path):
    from kie_mcp.server import create_server

    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    server = create_server(settings, transport=transport)
    async with Client(server, mode="legacy", elicitation_callback=answering(), logging_callback=on_log) as client:
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        await client.call_tool("check_task", {"task_id": task_id})  # the server now knows how to reach us
        await controls.post("clock/speed", {"speed": 1000})
        await until_saved(tmp_path, task_id)
        with anyio.fail_after(10):  # told it ended (its results being saved), then where they were saved
            while not any(task_id in line and "outputs/" in line for line in lines):  # noqa: ASYNC110 - the callback's
                await anyio.sleep(0.02)
    told = [line for line in lines if task_id in line]
    assert "succeeded" in told[0] and "kie-mcp is saving them now" in told[0], told  # its end at once
    assert "succeeded" in told[-1] and "outputs/" in told[-1], told


async def test_a_handshake_client_hears_of_a_task_an_earlier_server_left_whatever_tool_it_calls(
    settings, transport, controls, tmp_path
):
    """The audit: after a restart, a client that only called list_tasks was never told that a task the earlier
    server left had ended; only check_task of that very task told the server how to reach the client."""
    from kie_mcp.server import create_server

    await controls.post("clock/speed", {"speed": 0})
    async with Client(create_server(settings, transport=transport), elicitation_callback=answering()) as client:
        task_id = await video_nobody_waits_for(client)
    async with hearing(settings, transport) as (client, lines):
        await client.call_tool("list_tasks", {})
        await controls.post("clock/speed", {"speed": 1000})
        await until_saved(tmp_path, task_id)
        with anyio.fail_after(10):
            while not any(task_id in line for line in lines):  # noqa: ASYNC110 - filled by the client's callback
                await anyio.sleep(0.02)
    assert any("succeeded" in line for line in lines if task_id in line)


async def test_a_handshake_client_that_sets_a_higher_log_level_is_not_sent_task_messages(
    settings, transport, controls, tmp_path
):
    """A server that sends log messages declares logging and honours logging/setLevel (the spec's MUST): a client
    that asked for errors only is not sent "task ended" (info)."""
    from kie_mcp.server import create_server

    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    server = create_server(settings, transport=transport)
    async with Client(server, mode="legacy", elicitation_callback=answering(), logging_callback=on_log) as client:
        assert client.server_capabilities.logging is not None
        with pytest.warns(MCPDeprecationWarning):  # logging is deprecated in 2026-07-28, still a handshake-era call
            await client.set_logging_level("error")
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        await client.call_tool("check_task", {"task_id": task_id})  # the server now knows how to reach us
        await controls.post("clock/speed", {"speed": 1000})
        await until_saved(tmp_path, task_id)
        await anyio.sleep(0.5)  # the test above hears the same message within this time at the default level
        await client.call_tool("list_tasks", {})  # and anything sent before this answer has arrived by now
    assert not [line for line in lines if task_id in line]


@asynccontextmanager
async def subscribed(settings, transport) -> AsyncIterator[tuple[Client, list[str]]]:
    """A handshake-era client of a fresh server on the workspace, and what it is sent, in order: the URI of each
    resource update, and each log message as ``log: <line>``."""
    from kie_mcp.server import create_server

    heard: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            heard.append(str(message.params.uri))
        elif isinstance(message, LoggingMessageNotification):
            heard.append(f"log: {message.params.data}")

    server = create_server(settings, transport=transport)
    async with Client(server, mode="legacy", elicitation_callback=answering(), message_handler=on_message) as client:
        yield client, heard


async def until_told_it_ended(heard: list[str], task_id: str) -> list[str]:
    """What the client was sent before the log message saying ``task_id`` ended (the resource updates of that same
    announcement come before it)."""
    with anyio.fail_after(20):
        while not (ended := [n for n, line in enumerate(heard) if line.startswith("log: ") and task_id in line]):  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return heard[: ended[0]]


async def legacy(client: Client, method: str, uri: str) -> None:
    """``client.subscribe_resource(uri)`` or ``unsubscribe_resource``, of the handshake era (the SDK's client warns:
    2026-07-28 has ``subscriptions/listen`` instead)."""
    with pytest.warns(MCPDeprecationWarning):
        await getattr(client, f"{method}_resource")(uri)


async def test_a_handshake_client_subscribed_to_a_task_hears_when_it_ends(settings, transport, controls):
    """The audit: handshake-era clients (most hosts) were told ``subscribe: false`` and resources/subscribe was
    "Method not found", so no resource update ever reached them. They subscribe now, and hear of the task and of
    the task list."""
    async with subscribed(settings, transport) as (client, heard):
        assert client.server_capabilities.resources.subscribe is True
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        uri = f"kie://tasks/{task_id}"
        await legacy(client, "subscribe", uri)
        await legacy(client, "subscribe", "kie://tasks")
        await controls.post("clock/speed", {"speed": 1000})
        before_the_end = await until_told_it_ended(heard, task_id)
    assert uri in before_the_end and "kie://tasks" in before_the_end, heard


async def test_a_handshake_client_that_unsubscribed_from_a_task_hears_no_more_of_it(settings, transport, controls):
    async with subscribed(settings, transport) as (client, heard):
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        uri = f"kie://tasks/{task_id}"
        await legacy(client, "subscribe", uri)
        await legacy(client, "subscribe", "kie://tasks")
        await legacy(client, "unsubscribe", uri)
        await controls.post("clock/speed", {"speed": 1000})
        before_the_end = await until_told_it_ended(heard, task_id)
    assert "kie://tasks" in before_the_end and uri not in heard, heard


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("kie://outputs/index.html", "cannot be subscribed to: kie-mcp sends updates of kie://tasks"),
        ("kie://models", "kie://tasks/{task_id} (a task's state and saved results) only"),
        ("kie://tasks/", "is not a task id"),
        ("kie://tasks/a b", "is not a task id"),
    ],
)
async def test_a_handshake_client_subscribing_to_what_is_never_updated_is_told_what_can_be(
    settings, transport, uri, said
):
    """Only the task resources are updated while the server runs: a subscription to anything else is refused in
    words, not accepted to wait for an update that never comes."""
    async with subscribed(settings, transport) as (client, _):
        with pytest.raises(MCPError) as refused:
            await legacy(client, "subscribe", uri)
    assert refused.value.error.code == INVALID_PARAMS
    assert said in refused.value.error.message, refused.value.error.message


# -- what a task's error says ----------------------------------------------------------------------------------


async def test_a_refused_status_check_is_forgotten_once_kie_answers_again(connect, controls):
    """A refusal noted on a task described it only until KIE answered about it again; it used to stay on the
    task, finished or not, for good."""
    await controls.fault("status", kind="code", code=422, msg="The record is being synchronized", times=2)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    assert len(await status_calls(controls, task_id)) >= 3  # two refusals, then answers
    for result in (made, checked):
        task = result.structured_content.get("task") or result.structured_content["tasks"][0]
        assert task["state"] == "succeeded" and task["error"] is None, text_of(result)


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_one_refusal_after_a_run_of_server_errors_never_abandons_a_paid_task(connect, controls, tmp_path):
    """The audit: GIVE_UP counted every failure as a refusal, so seven server errors (maintenance) and then one
    refusal left a paid task alone: never saved, and still saying "kie-mcp keeps asking"."""
    await controls.fault("status", kind="code", code=500, times=7)
    await controls.fault("status", kind="code", code=422, msg="The record is being synchronized")
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 30})
    task = made.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["files"], text_of(made)
    assert len(await status_calls(controls, task["task_id"])) >= 9


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_left_alone_says_so_and_what_to_do(connect, controls):
    """After GIVE_UP refusals in a row the follower stops asking: the task says that (in the journal too, for
    list_tasks), instead of "kie-mcp keeps asking"; check_task asks again, and follows it from then on."""
    await controls.fault("status", kind="code", code=422, msg="The record is being synchronized", times=8)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        task_id = made.structured_content["tasks"][0]["task_id"]
        listed = await client.call_tool("list_tasks", {})
        [row] = [t for t in listed.structured_content["tasks"] if t["task_id"] == task_id]
        checked = await client.call_tool("check_task", {"task_id": task_id})
    assert row["state"] == "queued" and row["error"].startswith("kie-mcp stopped following this task: KIE refused 8")
    assert "check_task asks KIE again" in row["error"] and "keeps asking" not in row["error"]
    assert "The task itself is unaffected" in row["error"]
    assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
    assert checked.structured_content["task"]["error"] is None


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_left_alone_for_refusals_is_taken_up_again_within_the_hour(connect, controls, tmp_path):
    """A key fixed or KIE recovered: a task left alone after GIVE_UP refusals is looked at again an hour later
    (RETRY_DROPPED), and saved without anyone asking."""
    await controls.fault("status", kind="code", code=422, msg="The record is being synchronized", times=8)
    async with connect(elicitation=answering(), poll_min_interval=0.001) as client:  # the hour is 1.8 s here
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        assert await until_saved(tmp_path, task_id, seconds=30)
        listed = await client.call_tool("list_tasks", {})
    [row] = [t for t in listed.structured_content["tasks"] if t["task_id"] == task_id]
    assert row["state"] == "succeeded" and row["error"] is None


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_kie_keeps_refusing_costs_one_status_call_an_hour_once_left_alone(connect, controls):
    """The review: each hourly retry of a task left alone made 8 more status calls (for up to 14 days, on the
    account's poll budget), and a second server took the task up minutes after the first left it. A retry is one
    look, and the task stays claimed by the server that left it alone."""
    await controls.fault("status", kind="code", code=401, msg="You do not have access permissions", times=-1)
    async with connect(elicitation=answering(), poll_min_interval=0.001) as client:  # an hour is 1.8 s here
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        # A second server on the workspace. Its schedule runs 4 x slower, so that a claim counts as unrenewed
        # (QUIET) only after 0.36 s: at the first server's scale (90 ms), a busy machine's pause was enough for the
        # second to take the task up as if the first had stopped, and that is not what this test is about.
        async with connect(poll_min_interval=0.004) as other:
            await other.call_tool("check_credits", {})
            await anyio.sleep(4.5)  # two and a half hours
    calls = len(await status_calls(controls, task_id))
    assert 8 <= calls <= 8 + 3, calls  # 8 refusals, then one look an hour, whichever server


async def test_a_task_long_past_its_models_usual_time_promises_no_time_left(connect, controls, tmp_path):
    """The audit: a task KIE never ended said "about 1s left. Check again later" for 14 days. Past twice its
    model's longest usual time it shows no time left and says it is taking longer than usual, with where to look."""
    from kie_mcp.journal import Journal

    await controls.post("clock/speed", {"speed": 0})  # KIE never ends it
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
    task_id = made.structured_content["tasks"][0]["task_id"]
    hour_ago = time.time() - 3600  # nano-banana-2 usually takes 5-60 s
    journal = Journal.for_workspace(tmp_path)
    journal.execute(
        "UPDATE tasks SET created = ?, record = json_set(record, '$.created_at', ?) WHERE task_id = ?",
        hour_ago, hour_ago, task_id,
    )  # fmt: skip
    journal.close()
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id})
    task = checked.structured_content["task"]
    assert task["state"] in ("queued", "running") and task["eta_seconds"] is None, text_of(checked)
    assert "longer than this model usually takes (5-60 s)" in text_of(checked) and "for 1 h" in text_of(checked)
    assert "kie.ai/logs" in text_of(checked) and "s left" not in text_of(checked)


async def test_a_young_task_kie_answers_task_not_found_is_not_refused(transport, controls, sim):
    """KIE's docs now answer an unknown task with 404 "Task not found": for a task created seconds ago that means
    "not visible yet", as "recordInfo is null" does, not "KIE does not know this task"."""
    kie = KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport)
    body = {"model": "nano-banana-2", "input": {"prompt": "a fox"}}
    task_id = await kie.create(FAMILIES["market"], "nano-banana-2", body, grant("nano-banana-2", 1, "quote", None))
    record = TaskRecord(task_id=task_id, model="nano-banana-2", family="market", state="queued")
    await controls.fault("status", kind="code", code=404, msg="Task not found")
    look, _ = await refresh(kie, lambda model: (5, 60), record)
    assert look is Look.NOT_VISIBLE and record.error is None and record.state == "queued"
    record.created_at -= 3600  # an hour old: "Task not found" now means what it says
    await controls.fault("status", kind="code", code=404, msg="Task not found")
    look, _ = await refresh(kie, lambda model: (5, 60), record)
    assert look is Look.REFUSED and "404" in (record.error or "")
    await kie.aclose()


# -- slow downloads ----------------------------------------------------------------------------------------


async def file_requests(controls) -> int:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return sum(1 for r in items if r["path"].startswith(("/files/", "/dl/")))


async def until_file_requests(controls, count: int) -> None:
    with anyio.fail_after(20):
        while await file_requests(controls) < count:  # noqa: ASYNC110 - the simulator is asked, nothing to await
            await anyio.sleep(0.02)


HELD = 60  # seconds a held download waits for its release at most (a test that fails still ends)


async def held_downloads(controls) -> int:
    """How many downloads the simulator holds unanswered now (a ``hold`` fault on ``files``)."""
    return (await controls.get("faults"))["held"]


@asynccontextmanager
async def downloads_held(controls, count: int = 1) -> AsyncIterator[None]:
    """The next ``count`` result files are not answered until the block ends (the ``hold`` fault): a download that
    stalls for as long as the test needs, never for a guess at how long its steps take on a loaded machine."""
    await controls.fault("files", times=count, kind="hold", seconds=HELD)
    try:
        yield
    finally:
        await controls.post("faults/release")


async def test_stalled_downloads_never_hold_up_the_looks_at_other_tasks(connect, controls, mode):
    """The audit: a download ran inside its task's look, and eight looks run at once, so eight results on a slow
    file server stopped every other task from being looked at: a task KIE had finished still said "queued" after
    its generate call waited, with no status call made."""
    if mode != "auto":
        pytest.skip("the follower is the same in both eras")
    await controls.fault("files", times=8, kind="stall", after_bytes=0, seconds=30)
    async with connect(elicitation=answering()) as client:
        for n in range(8):
            made = await client.call_tool("generate_image", {**IMAGE, "prompt": f"slow {n}", "wait_seconds": 0})
            assert made.structured_content["status"] == "submitted", text_of(made)
        await until_file_requests(controls, 8)  # eight downloads stalled
        ninth = await client.call_tool("generate_image", {**IMAGE, "prompt": "quick", "wait_seconds": 3})
        task_id = ninth.structured_content["tasks"][0]["task_id"]
        looked = await status_calls(controls, task_id)
    assert looked, "the ninth task was never looked at"
    assert ninth.structured_content["tasks"][0]["state"] == "succeeded", text_of(ninth)


async def test_check_task_never_waits_out_a_stalled_download(connect, controls, tmp_path, mode):
    """The audit: check_task (wait_seconds 0) of a task whose results were downloading waited for the download (44
    s on a stalled file server). It now answers at once that they are being saved, and they are."""
    if mode != "auto":
        pytest.skip("the follower is the same in both eras")
    async with connect(elicitation=answering(), save_grace=0.2) as client:  # the 15 s it gives a save, shortened
        async with downloads_held(controls):
            made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
            task_id = made.structured_content["tasks"][0]["task_id"]
            await until_file_requests(controls, 1)
            with anyio.fail_after(HELD / 2):  # a check_task that waited for the download would wait for ever
                checked = await client.call_tool("check_task", {"task_id": task_id})
            still_held = await held_downloads(controls)
        assert still_held == 1, "check_task answered only once the download was let go"
        assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
        assert "being saved now" in text_of(checked)
        assert await until_saved(tmp_path, task_id)


async def test_a_download_past_its_deadline_leaves_its_slot_to_other_results_and_is_saved_later(
    connect, controls, tmp_path, mode
):
    """The audit: eight results on a file server that trickled just above the too-slow line (64 KiB a minute) held
    every finishing slot for as long as they trickled, with no overall deadline: a ninth task's result, on a fast
    server, was not saved meanwhile. Each download now gets ``download_deadline`` in all (more for a large file),
    then is handed to the background's tries, and the ninth is saved at once."""
    if mode != "auto":
        pytest.skip("the follower is the same in both eras")
    # Far past the deadline; a background try meeting one of them (a task ended after the first tries were cut)
    # waits it out, as it gets six times as long
    await controls.fault("files", times=8, kind="stall", after_bytes=0, seconds=1.5)
    async with connect(elicitation=answering(), download_deadline=0.3) as client:
        slow = []
        for n in range(8):
            made = await client.call_tool("generate_image", {**IMAGE, "prompt": f"slow {n}", "wait_seconds": 0})
            slow.append(made.structured_content["tasks"][0]["task_id"])
        await until_file_requests(controls, 8)  # every finishing slot holds a stalled download
        ninth = await client.call_tool("generate_image", {**IMAGE, "prompt": "quick", "wait_seconds": 0})
        assert await until_saved(tmp_path, ninth.structured_content["tasks"][0]["task_id"], seconds=3)
        for task_id in slow:  # the slow ones: tried again in the background, and saved
            assert await until_saved(tmp_path, task_id, seconds=3)


async def test_a_result_slower_than_its_finishing_slot_allows_is_saved_in_the_background_at_the_servers_pace(
    connect, controls, tmp_path, mode
):
    """The review: a result its file server sends slower than a finishing slot allows (a large video on a slow link)
    was cut at the download deadline on every try, the background's too: downloaded and thrown away, hourly, for the
    14 days KIE keeps it, and never saved; the answer said "try again", which would cut it at the same point. The
    background gives it six times as long (more for a large file), which a slow but working file server meets, and
    the answer says so (a link slower still: test_promise_save_deadline)."""
    if mode != "auto":
        pytest.skip("the follower is the same in both eras")
    await controls.fault("files", times=-1, kind="stall", after_bytes=0, seconds=1.0)  # every try: slower than 0.3 s
    async with connect(elicitation=answering(), download_deadline=0.3) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        task_id = made.structured_content["tasks"][0]["task_id"]
        assert await until_saved(tmp_path, task_id, seconds=4)
        tries = await file_requests(controls)
    said = text_of(made)
    assert "slower than the" in said and "goes on saving it in the background" in said, said
    assert "try again" not in said, said
    assert tries == 2, tries  # the finishing slot's try, stopped; the background's, waited out and saved


async def test_results_queued_behind_slow_downloads_are_announced_at_once_and_said_queued(
    settings, transport, controls, tmp_path
):
    """The audit: a task that ended while eight slow downloads held every finishing slot was announced (resource
    update, "Task ... succeeded") only once its own download was over, and check_task said its results were being
    saved "in a moment" while they could not even start. Its end is told at once, and the answer says what its
    results wait for."""
    from kie_mcp.server import create_server

    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    grace = HELD / 2  # the 15 s check_task gives a save (as long as the downloads ahead are held, and more)
    server = create_server(replace(settings, save_grace=grace), transport=transport)
    async with Client(server, mode="legacy", elicitation_callback=answering(), logging_callback=on_log) as client:
        await client.call_tool("check_credits", {})  # the server now knows how to reach this client
        async with downloads_held(controls, 8):
            for n in range(8):
                await client.call_tool("generate_image", {**IMAGE, "prompt": f"slow {n}", "wait_seconds": 0})
            await until_file_requests(controls, 8)
            ninth = await client.call_tool("generate_image", {**IMAGE, "prompt": "quick", "wait_seconds": 1})
            task_id = ninth.structured_content["tasks"][0]["task_id"]
            with anyio.fail_after(grace / 2):  # no grace waited for results that cannot start
                checked = await client.call_tool("check_task", {"task_id": task_id})
            told = [line for line in lines if task_id in line]
            files = saved(tmp_path, task_id)
            still_held = await held_downloads(controls)
    assert still_held == 8, still_held  # the eight ahead were still downloading throughout
    assert ninth.structured_content["tasks"][0]["state"] == "succeeded", text_of(ninth)
    assert "queued to be saved" in text_of(ninth) and "in a moment" not in text_of(ninth), text_of(ninth)
    assert checked.structured_content["saving"] and not files
    said = text_of(checked)
    assert "queued to be saved: the downloads of 8 other tasks are ahead" in said and "in a moment" not in said, said
    assert told and "succeeded" in told[0] and "after the downloads of 8 other tasks" in told[0], told


async def test_check_task_of_a_task_saved_in_the_background_does_not_wait_for_it(
    settings, transport, controls, tmp_path, mode
):
    """A finished task whose results a restarted server saves in the background (its download stalled): check_task
    answers that they are being saved, instead of waiting on that download for its whole length."""
    from dataclasses import replace

    from kie_mcp.server import create_server

    if mode != "auto":
        pytest.skip("the follower is the same in both eras")
    server = create_server(replace(settings, download=False), transport=transport)  # KIE_DOWNLOAD=never
    async with Client(server, elicitation_callback=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
    task_id = made.structured_content["tasks"][0]["task_id"]
    assert made.structured_content["tasks"][0]["state"] == "succeeded" and not saved(tmp_path, task_id)
    async with Client(create_server(replace(settings, save_grace=0.2), transport=transport)) as client:
        async with downloads_held(controls):
            await client.call_tool("check_credits", {})  # the runtime opens; the follower saves what was left
            await until_file_requests(controls, 1)
            with anyio.fail_after(HELD / 2):  # a check_task that waited for the download would wait for ever
                checked = await client.call_tool("check_task", {"task_id": task_id})
            still_held = await held_downloads(controls)
        assert still_held == 1, "check_task answered only once the download was let go"
        assert "being saved now" in text_of(checked)
        assert await until_saved(tmp_path, task_id)


# -- two servers on one workspace --------------------------------------------------------------------------


class CountedTransport(httpx2.AsyncBaseTransport):
    """The simulator, reached through this transport: the requests one server sent, by path and task id."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append((request.url.path, request.url.params.get("taskId", "")))
        return await self.inner.handle_async_request(request)

    def status_calls(self, task_id: str) -> int:
        return sum(1 for path, asked in self.sent if path in STATUS_PATHS and asked == task_id)

    def file_gets(self) -> int:
        return sum(1 for path, _ in self.sent if path.startswith(("/files/", "/dl/")))


async def test_a_second_server_leaves_a_task_a_live_server_follows_to_it_even_when_asked(
    settings, transport, controls, tmp_path
):
    """The audit: one check_task (or a read of kie://tasks/{id}) on a second server on the workspace made it a
    second follower for the rest of the task's life: KIE polled twice, the video downloaded twice. The follower
    that claimed the task in the journal asks and saves; the other answers from the journal."""
    from kie_mcp.server import create_server

    first, second = CountedTransport(transport), CountedTransport(transport)
    await controls.post("clock/speed", {"speed": 0})
    async with (
        Client(create_server(settings, transport=first), elicitation_callback=answering()) as a,
        Client(create_server(settings, transport=second)) as b,
    ):
        task_id = await video_nobody_waits_for(a)
        waiting = await b.call_tool("check_task", {"task_id": task_id, "wait_seconds": 1})
        await b.read_resource(f"kie://tasks/{task_id}")
        await controls.post("clock/speed", {"speed": 1000})
        done = await b.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
        assert await until_saved(tmp_path, task_id)
    assert waiting.structured_content["task"]["state"] in ("queued", "running"), text_of(waiting)
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    assert second.status_calls(task_id) == 0 and second.file_gets() == 0  # the second server asked KIE nothing
    assert first.status_calls(task_id) >= 1 and first.file_gets() == 1


async def test_a_stopped_servers_tasks_are_taken_up_by_the_next_at_once(settings, transport, controls, tmp_path):
    """A server that stops gives up its claims: the next one on the workspace follows its tasks right away."""
    from kie_mcp.server import create_server

    await controls.post("clock/speed", {"speed": 0})
    async with Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a:
        task_id = await video_nobody_waits_for(a)
    later = CountedTransport(transport)
    async with Client(create_server(settings, transport=later)) as b:
        await controls.post("clock/speed", {"speed": 1000})
        checked = await b.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
    assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
    assert later.status_calls(task_id) >= 1 and saved(tmp_path, task_id)


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_that_failed_is_refunded_and_answered_at_once_while_downloads_stall(connect, controls):
    """The review: a failed task's finishing waited for a download slot behind eight stalled results: its refund
    came late (a user near the daily cap refused meanwhile) and check_task said its results were being saved."""
    await controls.fault("files", times=8, kind="stall", after_bytes=0, seconds=30)
    async with connect(elicitation=answering()) as client:
        for n in range(8):
            await client.call_tool("generate_image", {**IMAGE, "prompt": f"slow {n}", "wait_seconds": 0})
        await until_file_requests(controls, 8)
        await controls.fault("create", kind="task_fail")
        failed = await client.call_tool("generate_image", {**IMAGE, "prompt": "fails", "wait_seconds": 3})
        task_id = failed.structured_content["tasks"][0]["task_id"]
        with anyio.fail_after(15):  # well before the 30 s the eight downloads stall: never waited for a slot
            checked = await client.call_tool("check_task", {"task_id": task_id})
        credits = await client.call_tool("check_credits", {})
    assert checked.structured_content["task"]["state"] == "failed", text_of(checked)
    assert "being saved" not in text_of(checked)
    assert credits.structured_content["spent_today"] == 8 * 8  # the eight stalled ones; the failed one refunded


async def test_check_task_saving_a_finished_tasks_results_itself_waits_at_most_the_grace(
    settings, transport, controls, tmp_path
):
    """The review: a finished task whose results nobody was saving at that moment (the background's next try not
    due yet) was downloaded by check_task itself, for as long as the stalled file server took (40 s)."""
    from dataclasses import replace

    from kie_mcp.server import create_server

    server = create_server(replace(settings, download=False), transport=transport)  # KIE_DOWNLOAD=never
    async with Client(server, elicitation_callback=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
    task_id = made.structured_content["tasks"][0]["task_id"]
    await controls.fault("files", times=5, kind="stall", after_bytes=0, seconds=30)
    async with Client(create_server(replace(settings, save_grace=0.3), transport=transport)) as client:
        for _ in range(2):  # the follower's own try may hold the file too: either way the answer comes in time
            with anyio.fail_after(5):
                checked = await client.call_tool("check_task", {"task_id": task_id})
            assert "being saved now" in text_of(checked), text_of(checked)


async def test_a_second_servers_client_hears_when_a_task_the_first_follows_ends(
    settings, transport, controls, tmp_path, mode
):
    """The review: once the second server left a task to the first, its own clients were never told it ended (no
    resource update, no log message), though the README promises both. It reads the journal and tells them."""
    from kie_mcp.server import create_server

    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    await controls.post("clock/speed", {"speed": 0})
    async with (
        Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a,
        Client(create_server(settings, transport=transport), mode=mode, logging_callback=on_log) as b,
    ):
        task_id = await video_nobody_waits_for(a)
        uri = f"kie://tasks/{task_id}"
        await b.read_resource(uri)
        if mode == "auto":
            async with b.listen(resource_subscriptions=[uri]) as subscription:
                await controls.post("clock/speed", {"speed": 1000})
                with anyio.fail_after(20):
                    event = await anext(aiter(subscription))
            assert getattr(event, "uri", None) == uri
        else:
            await controls.post("clock/speed", {"speed": 1000})
            with anyio.fail_after(20):
                while not any(task_id in line for line in lines):  # noqa: ASYNC110 - filled by the client's callback
                    await anyio.sleep(0.02)
            assert any("succeeded" in line for line in lines if task_id in line)


async def test_a_task_one_server_left_alone_is_asked_about_again_by_a_check_task_on_another(
    settings, transport, controls
):
    """The review: a task server A left alone (8 refusals) said "check_task asks KIE again", but server B's
    check_task only read the journal while A held the claim: stuck at "queued" though KIE had finished it."""
    from kie_mcp.server import create_server

    await controls.fault("status", kind="code", code=401, msg="You do not have access permissions", times=8)
    second = CountedTransport(transport)
    async with (
        Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a,
        Client(create_server(settings, transport=second)) as b,
    ):
        made = await a.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})  # ends when A leaves it alone
        task_id = made.structured_content["tasks"][0]["task_id"]
        assert made.structured_content["tasks"][0]["error"].startswith("kie-mcp stopped following"), text_of(made)
        checked = await b.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
    assert second.status_calls(task_id) >= 1


async def test_a_finished_task_first_seen_through_its_resource_is_announced_once(
    settings, transport, controls, sim, tmp_path
):
    """The review: a task made elsewhere and read through kie://tasks/{id} once finished was announced twice
    ("Task ... succeeded" logged twice): once by the background save, once more by the journal relay."""

    kie = KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport)
    body = {"model": "nano-banana-2", "input": {"prompt": "a fox"}}
    task_id = await kie.create(FAMILIES["market"], "nano-banana-2", body, grant("nano-banana-2", 1, "quote", None))
    await kie.aclose()
    await controls.post("clock/advance", {"seconds": 600})
    async with hearing(settings, transport) as (client, lines):
        await client.call_tool("check_credits", {})
        await client.read_resource(f"kie://tasks/{task_id}")
        assert await until_saved(tmp_path, task_id)
        await anyio.sleep(0.5)  # the relay would have spoken by now (poll_max_interval is 0.05 s here)
    assert len([line for line in lines if task_id in line]) == 1, lines


def test_a_task_kie_refused_every_look_at_is_never_said_to_be_unasked():
    """The audit: a task the follower had left alone after KIE refused 8 status checks in a row (no longer followed,
    so no look of this process counted) read "KIE has not been asked about it yet" beside "KIE refused 8 status
    checks in a row". A task with a status check's note was asked about: KIE has not answered."""
    from kie_mcp.surface import _task_message
    from kie_mcp.tasks.records import NOT_FOLLOWED, TaskRecord

    why = "KIE refused 8 status checks in a row. The task itself is unaffected."
    record = TaskRecord(task_id="t1", model="nano-banana-2", family="market", state="queued", error=NOT_FOLLOWED + why)
    said = _task_message(record, (10, 30))
    assert "has not been asked" not in said and "KIE has not answered about it yet" in said, said
    fresh = TaskRecord(task_id="t2", model="nano-banana-2", family="market", state="queued")
    assert "KIE has not been asked about it yet" in _task_message(fresh, (10, 30))  # a new task, never looked at
