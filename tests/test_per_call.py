"""Per-call work: the balance is read at most every few seconds, every journal lookup of a tool call is an index
search, and thumbnails are made once per file, in a worker thread. Behaviour only; bench/bench_calls.py has the
figures."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from kie_mcp.journal import Journal, journal_path
from kie_mcp.kie import KieClient
from kie_mcp.media import inputs
from kie_mcp.media.downloads import make_thumbnails, thumbnail, thumbnail_path
from kie_mcp.sandbox import SANDBOX_API_KEY
from kie_mcp.spend.balance import BalanceCache
from kie_mcp.tasks import TaskRecord

from .conftest import API, UPLOADS, answering, audits, text_of

IMAGE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits
CREDIT = "/api/v1/chat/credit"


async def credit_reads(controls) -> int:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return sum(1 for r in items if r["path"] == CREDIT)


# -- the balance cache -----------------------------------------------------------------------------------------


async def test_two_estimates_within_the_cache_window_read_the_balance_once(connect, controls):
    async with connect() as client:
        first = await client.call_tool("estimate_cost", IMAGE)
        second = await client.call_tool("estimate_cost", {**IMAGE, "prompt": "A green pear"})
    assert first.structured_content["balance_credits"] == 5000
    assert second.structured_content["balance_credits"] == 5000
    assert await credit_reads(controls) == 1


async def test_a_spend_far_under_the_cached_balance_does_not_read_it_again(connect, controls):
    # KIE reports its charge: no balance read after the call measures it (``measure_unreported_charges``)
    await controls.post("config", {"report_credits_consumed": True})
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
    assert result.structured_content["status"] == "completed", text_of(result)
    assert await credit_reads(controls) == 1  # 5000 credits kept cover 2 x 8


async def test_parallel_spends_without_a_kept_balance_share_one_read(connect, controls):
    """The audit: twenty generates at once with no balance kept (the first calls, or after its few seconds) each
    read the balance: twenty reads of /chat/credit, one per create. They share one read now."""
    async with connect(auto_approve_credits=10) as client, anyio.create_task_group() as group:
        for n in range(10):
            group.start_soon(client.call_tool, "generate_image", {**IMAGE, "prompt": f"shot {n}", "wait_seconds": 0})
    assert len(await controls.creates()) == 10
    assert await credit_reads(controls) == 1


async def test_a_spend_close_to_the_cached_balance_reads_it_again_and_is_refused_when_too_low(connect, controls):
    await controls.post("balance", {"credits": 12})  # under 2 x 8: close
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content
        assert quote["balance_credits"] == 12
        await controls.post("balance", {"credits": 5})  # spent elsewhere since
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote"]["quote_id"]})
    assert result.is_error
    assert "has 5 credits" in text_of(result) and "needs 8" in text_of(result)
    assert await credit_reads(controls) == 2
    assert await controls.creates() == []


async def test_an_unknown_price_always_reads_the_balance(connect, controls):
    request = {
        "prompt": "a paper boat",
        "model": "bytedance/seedance-2",
        "options": {"reference_video_urls": ["https://example.com/ref.mp4"]},
        "max_credits": 500,  # the most it can cost: 25 x (15 s of references + the 5 s output)
    }
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", request)
        assert estimate.structured_content["quote"]["credits_total"] is None, text_of(estimate)
        before = await credit_reads(controls)
        result = await client.call_tool("generate_video", request)  # asks for confirmation: nothing is spent
    assert result.structured_content["status"] == "confirmation_required", text_of(result)
    assert await credit_reads(controls) == before + 1


async def test_a_reservation_lowers_the_cached_balance(connect, controls):
    # KIE reports its charge: no balance read after the call measures it (that read drops the kept balance)
    await controls.post("config", {"report_credits_consumed": True})
    async with connect(auto_approve_credits=10) as client:
        await client.call_tool("estimate_cost", IMAGE)
        made = await client.call_tool("generate_image", IMAGE)
        assert made.structured_content["status"] == "completed", text_of(made)
        after = await client.call_tool("estimate_cost", IMAGE)
    assert after.structured_content["balance_credits"] == 4992  # 5000 read once, less the 8 reserved since
    assert await credit_reads(controls) == 1


async def test_check_credits_always_reads_and_refreshes_the_cache(connect, controls):
    async with connect() as client:
        await client.call_tool("estimate_cost", IMAGE)
        await controls.post("balance", {"credits": 1000})
        first = await client.call_tool("check_credits", {})
        second = await client.call_tool("check_credits", {})
        estimate = await client.call_tool("estimate_cost", IMAGE)
    assert first.structured_content["balance_credits"] == 1000
    assert second.structured_content["balance_credits"] == 1000
    assert estimate.structured_content["balance_credits"] == 1000  # the read check_credits made
    assert await credit_reads(controls) == 3


async def test_a_402_from_kie_drops_the_cached_balance(connect, controls):
    async with connect(auto_approve_credits=10) as client:
        await client.call_tool("estimate_cost", IMAGE)
        await controls.post("balance", {"credits": 1})
        refused = await client.call_tool("generate_image", IMAGE)  # the kept 5000 let it through; KIE said 402
        assert refused.structured_content["status"] == "failed", text_of(refused)
        assert "credits" in text_of(refused).lower()
        estimate = await client.call_tool("estimate_cost", IMAGE)
    assert estimate.structured_content["balance_credits"] == 1
    assert await credit_reads(controls) == 2


async def test_a_balance_that_is_not_a_number_is_never_kept(connect, controls):
    async with connect() as client:
        await client.call_tool("estimate_cost", IMAGE)
        await controls.fault("credit", kind="code", code=200, msg="success")  # data: null
        broken = await client.call_tool("check_credits", {})
        estimate = await client.call_tool("estimate_cost", IMAGE)
    assert broken.is_error and "not a number" in text_of(broken)
    assert estimate.structured_content["balance_credits"] == 5000
    assert await credit_reads(controls) == 3  # the failed read dropped the kept balance


async def test_the_kept_balance_is_read_again_after_a_few_seconds(transport, controls, tmp_path):
    now = [100.0]
    kie = KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport)
    journal = Journal.for_workspace(tmp_path)
    try:
        cache = BalanceCache(kie, journal, fresh_seconds=5.0, clock=lambda: now[0])
        assert await cache.current() == 5000
        now[0] += 4.9
        assert await cache.current() == 5000
        assert cache.reads == 1
        with journal.transaction() as db:  # another call reserves 30 credits
            Journal.add_spend(db, date.today(), 30, "reserved", "q_x")
            Journal.add_spend(db, date.today(), -30, "refunded: task failed", "t_x")
        assert await cache.current() == 4970  # refunds are not added back until the next read
        assert await cache.for_spend(2485) == 4970  # covered twice over: no read
        assert cache.reads == 1
        assert await cache.for_spend(2486) == 5000  # closer: read now
        assert await cache.for_spend(None) == 5000  # an unknown price: read now
        assert cache.reads == 3
        now[0] += 5.1
        assert await cache.current() == 5000
        assert cache.reads == 4
    finally:
        await kie.aclose()
        journal.close()
    assert await credit_reads(controls) == 4


# -- query plans ------------------------------------------------------------------------------------------------

TABLES = ("tasks", "attempts", "spend", "quotes", "files", "answers", "uploads")
# The one ordered walk allowed: the newest tasks first, stopped by the LIMIT of list_tasks.
NEWEST_FIRST = "SCAN tasks USING INDEX tasks_created_id"
# The total of an unfiltered listing cut by its limit: every task counted, from the smallest index (about 0.1 ms at
# 50,000 tasks), never from the table.
WHOLE_COUNT = "SELECT COUNT(*) FROM tasks "


def plan_problems(db: sqlite3.Connection, sql: str) -> list[str]:
    lines = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
    bad = []
    for line in lines:
        if line == NEWEST_FIRST and "LIMIT" in sql.upper():
            continue
        if sql.startswith(WHOLE_COUNT) and line.startswith("SCAN tasks USING COVERING INDEX"):
            continue
        if re.match(rf"SCAN ({'|'.join(TABLES)})\b", line):  # a full scan (sorting what an index found is fine)
            bad.append(line)
    return bad


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """Every SQL statement every journal of this test runs, with its values (sqlite3 trace callback)."""
    seen: list[str] = []
    original = Journal.__init__

    def traced(self: Journal, path: Any, **options: Any) -> None:
        original(self, path, **options)
        self._db.set_trace_callback(seen.append)

    monkeypatch.setattr(Journal, "__init__", traced)
    return seen


async def test_every_journal_lookup_of_a_tool_call_uses_an_index(connect, controls, statements, tmp_path):
    async with connect(elicitation=answering()) as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
        task_id = made.structured_content["tasks"][0]["task_id"]
        asked = await client.call_tool("generate_image", {**IMAGE, "prompt": "A pear"})  # the question's quote
        assert asked.structured_content["status"] == "completed", text_of(asked)
        await client.call_tool("generate_video", {"prompt": "Waves at dusk", "model": "veo3_fast"})
        await client.call_tool("check_task", {"task_id": task_id})
        await client.call_tool("check_task", {"task_id": task_id})
        await client.call_tool("list_tasks", {})
        await client.call_tool("list_tasks", {"state": "succeeded"})
        await client.call_tool("list_tasks", {"model": "nano-banana-2", "since": "2020-01-01"})
        page = await client.call_tool("list_tasks", {"limit": 1})  # a page, and the next one from its cursor
        await client.call_tool("list_tasks", {"limit": 1, "cursor": page.structured_content["next_cursor"]})
        await client.call_tool("check_credits", {})
        await client.call_tool("stitch_videos", {"clips": [task_id]})  # refused: an image; looks up files
        await client.read_resource("kie://tasks")
    async with connect(auto_approve_credits=10) as auto:  # an auto approval holds its request (``QuoteBook.hold``)
        held = await auto.call_tool("generate_image", {**IMAGE, "prompt": "A plum"})
        assert "auto-approved" in text_of(held), text_of(held)
    journal = Journal.for_workspace(tmp_path)  # the lookups these flows did not reach: a replay, odd answers
    journal.attempts_for_quote(quote["quote_id"])
    journal.answers_for(task_id)
    journal.live_upload("0" * 64, 3600)
    journal.file_at("outputs/day/clip.mp4")  # a join's clip given by its saved path
    journal.key_held_in("outputs/day/")  # a completion of kie://outputs/: the folder's files that held the key
    journal.unsettled_attempts("nano-banana-2", 0, time.time())  # a task found at KIE: the creates it may be of
    journal.close()
    queries = sorted({s for s in statements if re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", s, re.IGNORECASE)})
    exercised = (
        "options_key = ",  # charged_before
        "FROM spend WHERE counted_at",
        "FROM spend WHERE ref",
        "FROM attempts WHERE state",
        "FROM attempts WHERE task_id",
        "FROM attempts WHERE quote_id",
        "FROM tasks WHERE model",
        "FROM tasks WHERE state",
        "(created, task_id) < (",  # list_tasks' next page
        "FROM tasks WHERE task_id IN",  # where that page starts
        "FROM files WHERE task_id",
        "FROM files WHERE path",
        "FROM files WHERE holds_key",
        "FROM quotes WHERE digest",
        "kind = 'auto'",  # an auto approval's hold: written, renewed, let go of
        "FROM answers",
        "FROM uploads",
    )
    for ran in exercised:
        assert any(ran in q for q in queries), ran  # each request-path lookup ran
    with sqlite3.connect(journal_path(tmp_path)) as db:
        problems = {q: plan_problems(db, q) for q in queries}
    assert {q: p for q, p in problems.items() if p} == {}


def test_an_older_journal_gets_the_indexes_and_keeps_its_history(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the schema before these indexes, with a charge on record
        db.executescript(
            """
            CREATE TABLE spend (id INTEGER PRIMARY KEY AUTOINCREMENT, day TEXT NOT NULL, delta REAL NOT NULL,
                reason TEXT NOT NULL, ref TEXT, at REAL NOT NULL);
            CREATE INDEX spend_day ON spend(day);
            CREATE TABLE attempts (attempt_id TEXT PRIMARY KEY, model TEXT NOT NULL, family TEXT NOT NULL,
                approved_by TEXT, quote_id TEXT, prompt TEXT, params TEXT, options_key TEXT, credits_quoted REAL,
                state TEXT NOT NULL, task_id TEXT, error TEXT, session TEXT, created REAL NOT NULL,
                updated REAL NOT NULL);
            CREATE INDEX attempts_state ON attempts(state);
            CREATE TABLE tasks (task_id TEXT PRIMARY KEY, attempt_id TEXT, model TEXT NOT NULL, state TEXT NOT NULL,
                prompt TEXT, session TEXT, record TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
            INSERT INTO attempts VALUES ('a_1', 'm', 'market', 'quote', 'q_1', 'p', '{}', 'k', 8, 'created', 't_1',
                NULL, NULL, 1, 1);
            INSERT INTO tasks VALUES ('t_1', 'a_1', 'm', 'succeeded', 'p', NULL, '{"credits_charged": 9}', 1, 2);
            INSERT INTO spend (day, delta, reason, ref, at) VALUES ('2026-01-01', 8, 'reserved', 'q_1', 1);
            INSERT INTO spend (day, delta, reason, ref, at) VALUES ('2026-01-01', 1, 'charged by KIE', 't_1', 2);
            """
        )
    journal = Journal(path)
    try:
        assert journal.charged_before("m", "k") == [(9.0, 2.0, False)]
        assert journal.total_spent() == 9
        with journal.transaction() as db:
            Journal.add_spend(db, date(2026, 1, 2), -3, "refunded: task failed", "t_1")
        assert journal.total_spent() == 6
        names = {row["name"] for row in journal.query("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "tasks_charged" in names and "spend_day" not in names and "attempts_state" not in names
    finally:
        journal.close()
    again = Journal(path)
    try:
        assert again._up_to_date()  # opening it again writes nothing (a read-only copy still opens)
        assert again.charged_before("m", "k") == [(9.0, 2.0, False)]
    finally:
        again.close()


# -- thumbnails -------------------------------------------------------------------------------------------------


def big_image(path: Path, mode: str = "RGB") -> Path:
    Image.new(mode, (2000, 1200), (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)).save(path, format="PNG")
    return path


def test_a_thumbnail_is_made_once_and_kept_beside_the_image(tmp_path, decodes):
    image = big_image(tmp_path / "shot.png")
    first = thumbnail(image)
    kept = thumbnail_path(image, "image/jpeg")
    assert first is not None and first[1] == "image/jpeg"
    assert kept == tmp_path / ".shot.png.thumb-256.jpg" and kept.read_bytes() == first[0]
    made = kept.stat().st_mtime_ns
    assert thumbnail(image) == first
    assert len(decodes) == 1 and kept.stat().st_mtime_ns == made
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []  # written atomically
    with Image.open(kept) as small:
        assert max(small.size) == 256


def test_a_newer_image_gets_a_new_thumbnail(tmp_path, decodes):
    image = big_image(tmp_path / "shot.png")
    thumbnail(image)
    big_image(image, "RGBA")  # replaced by an image with transparency
    later = image.stat().st_mtime + 10  # newer, whatever the clock's resolution
    os.utime(image, (later, later))
    again = thumbnail(image)
    assert again is not None and again[1] == "image/png"
    assert len(decodes) == 2
    assert thumbnail_path(image, "image/png").is_file() and not thumbnail_path(image, "image/jpeg").exists()
    assert thumbnail(image) == again and len(decodes) == 2


async def test_thumbnails_are_made_in_a_worker_thread_and_the_result_does_not_decode(tmp_path, decodes):
    from kie_mcp.config import Settings
    from kie_mcp.runtime import open_runtime
    from kie_mcp.surface import _tasks_result, _thumbnails_ready

    (tmp_path / "outputs" / "day").mkdir(parents=True)
    image = big_image(tmp_path / "outputs" / "day" / "shot.png")
    task = TaskRecord(task_id="t", model="m", family="market", kind="image", state="succeeded")
    task.files = ["outputs/day/shot.png"]
    settings = Settings(api_key=None, workspace=tmp_path, catalog_sync=False)
    await _thumbnails_ready([task], tmp_path, settings.preview_px)
    assert len(decodes) == 1 and decodes[0] != threading.main_thread().name
    async with open_runtime(settings) as rt:
        result = await _tasks_result(task, "done", rt, [task])
    assert [block.type for block in result.content] == ["text", "resource_link", "image"]
    assert len(decodes) == 1  # read back from where it is kept, not decoded on the event loop
    await make_thumbnails([image], settings.preview_px)
    assert len(decodes) == 1


@pytest.fixture
def opens():
    """The files opened (``open``, ``os.open``) while the test runs, each with the thread that opened it, seen through
    Python's audit events (``audits``): nothing of kie-mcp's is replaced to see them."""
    opened: list[tuple[str, int]] = []

    def watch(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], str | os.PathLike):
            opened.append((os.fspath(args[0]), threading.get_ident()))

    with audits(watch):
        yield opened


async def test_a_list_or_a_look_naming_saved_videos_reads_their_lengths_off_the_event_loop(connect, opens):
    """The audit: list_tasks and check_task read each saved video's header (for its length) on the event loop, so a
    list of many videos on a slow disk held up every other request. Each answer reads them in a worker thread, and
    says the same lengths."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {"prompt": "waves", "model": "veo3_fast", "wait_seconds": 30})
        [video] = made.structured_content["saved_files"]
        loop = threading.get_ident()  # the event loop's thread: the server runs in this process, on this loop
        opens.clear()
        listed = await client.call_tool("list_tasks", {})
        checked = await client.call_tool("check_task", {"task_id": video["task_id"]})
        read = [thread for path, thread in opens if path.endswith(video["path"])]
    seconds = video["duration_seconds"]
    assert seconds and read and loop not in read, read
    assert checked.structured_content["saved_files"][0]["duration_seconds"] == seconds
    assert listed.structured_content["saved_files"][0]["duration_seconds"] == seconds
    assert f", {seconds:g} s" in text_of(listed) and f", {seconds:g} s" in text_of(checked)


async def test_a_result_image_is_decoded_once_across_calls(connect, decodes, tmp_path, settings):
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task = made.structured_content["tasks"][0]
        for _ in range(2):
            checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
            assert any(block.type == "image" for block in checked.content)
        hidden = thumbnail_path(tmp_path / task["files"][0], "image/jpeg", settings.preview_px)
        served = await client.call_tool("list_tasks", {})
        assert hidden.name not in text_of(served)
    assert any(block.type == "image" for block in made.content)
    assert len(decodes) == 1
    assert hidden.is_file()


# -- local inputs -------------------------------------------------------------------------------------------


async def test_local_inputs_are_read_and_hashed_in_a_worker_thread(connect, controls, tmp_path, monkeypatch):
    """A local input (up to 100 MB of video) is hashed for the quote; on the event loop that stalled every other
    request and the follower. A request naming no local file does not hop to a thread at all."""
    threads: list[str] = []
    original = inputs._read_judged

    def counted(*args: Any, **kwargs: Any) -> tuple[str, int, bytes | None]:
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(inputs, "_read_judged", counted)
    big_image(tmp_path / "product.png")
    edit = {"prompt": "make it blue", "model": "google/nano-banana-edit"}
    async with connect() as client:
        local = await client.call_tool("estimate_cost", {**edit, "images": ["product.png"]})
        remote = await client.call_tool("estimate_cost", {**edit, "images": ["https://example.com/a.png"]})
    assert not local.is_error and not remote.is_error, text_of(local)
    assert len(threads) == 1 and threads[0] != threading.main_thread().name


# -- the follower's start ---------------------------------------------------------------------------------------


async def test_the_startup_search_for_unsaved_results_runs_in_a_worker_thread(connect, monkeypatch):
    """It reads every finished task of the last 14 days (about 50 ms at 50,000 tasks): on the event loop it would
    hold up the first requests of every start."""
    threads: list[str] = []
    original = Journal.unsaved_tasks

    def counted(self: Journal, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, **kwargs)

    monkeypatch.setattr(Journal, "unsaved_tasks", counted)
    async with connect() as client:
        await client.call_tool("list_tasks", {})  # opens the runtime, which starts the follower
        with anyio.fail_after(5):
            while not threads:  # noqa: ASYNC110 - the follower's own start, seen from outside
                await anyio.sleep(0.02)
    assert threads and threads[0] != threading.main_thread().name
