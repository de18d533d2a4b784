"""Several kie-mcp servers on one workspace (Claude Desktop and Cursor side by side): each server's clients hear of
every task of the workspace, whichever server made and follows it, without a second server asking KIE about it; a
task whose server was killed is taken up at once by one still running.

Through the real MCP client, against the simulator; two servers on one workspace are two in-process servers (the
follower tells a killed server by its process id: one that has ended). The follower's schedule runs 200 times
faster (``poll_min_interval`` 10 ms, conftest) unless a test says otherwise.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import warnings
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import LoggingMessageNotificationParams

from kie_mcp import journal as journal_module
from kie_mcp import processes
from kie_mcp.journal import Journal, journal_path
from kie_mcp.server import create_server
from kie_mcp.tasks.follower import QUIET, RESCAN, time_unit

from .conftest import answering, text_of, twice_at_once
from .test_follower import CountedTransport, until_saved, video_nobody_waits_for
from .test_pacing import max_in_window
from .test_promise_saved_by_one import a_gone_process

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


async def heard_all(subscription, uris: set[str], seconds: float) -> set[str]:
    heard: set[str] = set()
    with anyio.fail_after(seconds):
        async for event in subscription:
            heard.add(str(getattr(event, "uri", "")))
            if heard >= uris:
                break
    return heard


async def test_a_subscriber_hears_when_a_task_another_server_made_ends_without_asking_about_it_first(
    settings, transport, controls, mode
):
    """The audit: B's 2026-07-28 client subscribed to kie://tasks/{id} of A's task (and to kie://tasks) heard
    nothing in 100 s, though the task ended in a second: B left the task to A and never looked again unless its
    client had read the task first. B reads the journal's changes and tells its subscribers, never asking KIE."""
    if mode != "auto":
        pytest.skip("subscriptions/listen is the 2026-07-28 way to subscribe to a resource")
    second = CountedTransport(transport)
    await controls.post("clock/speed", {"speed": 0})
    async with (
        Client(create_server(settings, transport=second), mode=mode) as b,
        Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a,
    ):
        await b.call_tool("list_tasks", {})
        task_id = await video_nobody_waits_for(a)  # made after B started
        uris = {f"kie://tasks/{task_id}", "kie://tasks"}
        async with b.listen(resource_subscriptions=sorted(uris)) as subscription:
            await controls.post("clock/speed", {"speed": 1000})
            assert await heard_all(subscription, uris, 10) == uris
    assert second.status_calls(task_id) == 0  # A asks KIE; B only read the journal


async def test_a_server_started_after_another_made_a_task_tells_its_subscribers_when_that_task_ends(
    settings, transport, controls, mode
):
    """The audit: a task another live server follows was skipped at start, never observed: its end reached nobody
    on the server started later (the README promises updates of a task "nobody asked about since, too")."""
    if mode != "auto":
        pytest.skip("subscriptions/listen is the 2026-07-28 way to subscribe to a resource")
    second = CountedTransport(transport)
    await controls.post("clock/speed", {"speed": 0})
    async with Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a:
        task_id = await video_nobody_waits_for(a)
        async with Client(create_server(settings, transport=second), mode=mode) as b:
            await b.call_tool("check_credits", {})  # B's follower runs from now on (the task unfinished yet)
            uri = f"kie://tasks/{task_id}"
            async with b.listen(resource_subscriptions=[uri]) as subscription:
                await controls.post("clock/speed", {"speed": 1000})
                # bounded by the relay's 15 s read of the journal and a loaded machine's delays, not by a speed
                assert await heard_all(subscription, {uri}, 40) == {uri}
    assert second.status_calls(task_id) == 0


async def test_a_handshake_client_of_another_server_gets_a_log_message_when_any_task_of_the_workspace_ends(
    settings, transport, controls
):
    """The audit: a handshake-era client of B, after its first tool call (any tool), got no "task ended" log
    message for a task A made, though the README promises one "from their first tool call on, whatever the tool"."""
    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    await controls.post("clock/speed", {"speed": 0})
    async with (
        Client(create_server(settings, transport=transport), mode="legacy", logging_callback=on_log) as b,
        Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a,
    ):
        await b.call_tool("list_models", {})
        task_id = await video_nobody_waits_for(a)
        await controls.post("clock/speed", {"speed": 1000})
        with anyio.fail_after(10):
            while not any(task_id in line for line in lines):  # noqa: ASYNC110 - filled by the client's callback
                await anyio.sleep(0.02)
        await anyio.sleep(0.5)  # a second telling would come within a few relay reads
    told = [line for line in lines if task_id in line]
    assert len(told) == 1 and "succeeded" in told[0], told


async def test_a_task_whose_following_server_was_killed_is_taken_up_at_the_next_rescan_not_after_quiet(
    settings, transport, controls, tmp_path
):
    """The audit: a server SIGKILLed while following a task left it for ~240 s (QUIET after the task's last change,
    then a rescan) before the surviving server took it up, though the survivor could tell at once that its follower
    was gone. The next rescan takes it up (QUIET still holds for a follower of unknown liveness)."""
    slower = replace(settings, poll_min_interval=0.1)  # QUIET 9 s, RESCAN 3 s: the two told apart
    unit = time_unit(slower)
    await controls.post("clock/speed", {"speed": 0})
    async with Client(create_server(slower, transport=transport)) as b:
        await b.call_tool("list_tasks", {})  # B's follower runs (its start-time adoption is over)
        async with Client(create_server(slower, transport=transport), elicitation_callback=answering()) as a:
            task_id = await video_nobody_waits_for(a)
        # What a killed server leaves: its claim, fresh, under a process that has ended (A stopped cleanly and
        # released its claim; the journal is made to show the kill), and the task's row just written.
        killed = f"{processes.HOST}-{await a_gone_process()}-{'0' * 8}/1"
        journal = Journal.for_workspace(tmp_path)
        journal.execute(
            "INSERT INTO follows (task_id, owner, seen) VALUES (?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET"
            " owner = excluded.owner, seen = excluded.seen",
            task_id,
            killed,
            time.time(),
        )
        journal.execute("UPDATE tasks SET updated = ? WHERE task_id = ?", time.time(), task_id)
        began = time.monotonic()
        with anyio.fail_after((QUIET - RESCAN) * unit):  # within a rescan or two, well before QUIET
            while journal.query("SELECT owner FROM follows WHERE task_id = ?", task_id)[0]["owner"] == killed:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        taken_after = time.monotonic() - began
        await controls.post("clock/speed", {"speed": 1000})
        checked = await b.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
        journal.close()
    assert taken_after < QUIET * unit
    assert checked.structured_content["task"]["state"] == "succeeded"


# -- check_task(wait_seconds=0) on a second server: the one explicit "look now" ------------------------------------


async def test_check_task_of_0_s_on_a_second_server_asks_kie_once_and_leaves_the_results_to_the_first_to_save(
    settings, transport, controls, tmp_path, mode
):
    """The audit: with two clients on one workspace, check_task(wait_seconds=0) on the server that does not follow the
    task answered "queued. Check again later" for a video KIE had finished: it only read the journal, and the
    following server's next look was up to a minute away (the README calls 0 s "the one explicit 'look now'"). It
    asks KIE once, answers that the task succeeded and that the other server saves its results; that server,
    reading the journal, looks at once and saves them, and the second server downloads nothing. It waits a while for
    them, as for results it saves itself (``save_grace``: 0.5 s here, the first server's download taking 3 s), and says
    who saves them once that runs out."""
    slow = replace(settings, poll_min_interval=2.0)  # the first server's own first look at the video: 72 s away
    first, second = CountedTransport(transport), CountedTransport(transport)
    await controls.post("clock/speed", {"speed": 0})
    async with (
        Client(create_server(slow, transport=first), elicitation_callback=answering()) as a,
        Client(create_server(replace(slow, save_grace=0.5), transport=second), mode=mode) as b,
    ):
        task_id = await video_nobody_waits_for(a)
        await controls.post(f"tasks/{task_id}", {"state": "success"})
        await controls.fault("files", kind="slow", seconds=3)
        checked = await b.call_tool("check_task", {"task_id": task_id})
        # well before the first server's own look (72 s away), with room for a CI machine loaded by other work
        assert await until_saved(tmp_path, task_id, seconds=30)
        later = await listing_files(b, task_id)  # ... and recorded: this server's check_task shows them
    said = text_of(checked)
    assert checked.structured_content["task"]["state"] == "succeeded", said
    assert checked.structured_content["saving"] is True, said
    assert "being saved by another kie-mcp on this workspace" in said and "Check again later" not in said, said
    assert second.status_calls(task_id) == 1 and second.file_gets() == 0  # asked once; saving is the first's
    assert first.file_gets() >= 1
    assert "being saved" not in text_of(later), text_of(later)


@pytest.mark.parametrize("mode", ["auto"])  # the follower and the ledger, not the era: once
async def test_a_failure_a_second_servers_look_finds_is_recorded_and_refunded_once(
    settings, transport, controls, tmp_path, mode
):
    """What the second server's look finds is the journal's too: a failed task is recorded failed and refunded at
    once (the following server may stop before its next look), and the following server's own end of it refunds
    nothing more."""
    slow = replace(settings, poll_min_interval=2.0)
    await controls.post("clock/speed", {"speed": 0})
    async with (
        Client(create_server(slow, transport=transport), elicitation_callback=answering()) as a,
        Client(create_server(slow, transport=transport), mode=mode) as b,
    ):
        task_id = await video_nobody_waits_for(a)
        await controls.post(f"tasks/{task_id}", {"state": "fail", "fail_msg": "upstream timeout"})
        checked = await b.call_tool("check_task", {"task_id": task_id})
        recorded = journal_rows(tmp_path, "SELECT state FROM tasks WHERE task_id = ?", task_id)
        refunds = _refunds(tmp_path)
        with anyio.fail_after(10):  # the first server looks at once, reading the journal, and ends it too
            while journal_rows(tmp_path, "SELECT 1 FROM follows WHERE task_id = ?", task_id):  # noqa: ASYNC110
                await anyio.sleep(0.05)
    assert checked.structured_content["task"]["state"] == "failed", text_of(checked)
    assert recorded == [("failed",)]
    assert len(refunds) == 1 and refunds[0] < 0
    assert _refunds(tmp_path) == refunds


async def listing_files(client: Client, task_id: str, seconds: float = 10) -> Any:
    """check_task's answer once it lists the task's saved files (another server saves and records them)."""
    with anyio.fail_after(seconds):
        while True:
            answer = await client.call_tool("check_task", {"task_id": task_id})
            if answer.structured_content["task"]["files"]:
                return answer
            await anyio.sleep(0.05)


class TimedTransport(CountedTransport):
    """``CountedTransport`` that also notes when each status call was sent."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.status_sent: list[float] = []

    async def handle_async_request(self, request: Any) -> Any:
        if request.url.params.get("taskId"):
            self.status_sent.append(time.monotonic())
        return await super().handle_async_request(request)


@pytest.mark.parametrize("mode", ["auto"])  # the pacing, not the protocol era: once
async def test_check_task_of_0_s_in_a_loop_on_a_second_server_stays_within_kies_status_pacing(
    settings, transport, controls, sim, mode
):
    """A host calling check_task(wait_seconds=0) again and again (five loops at once) on the server that does not
    follow the task: each call asks KIE once, and never more than 10 status calls a second are sent (KIE's limit,
    the pacing every status call goes through), so KIE refuses none."""
    slow = replace(settings, poll_min_interval=2.0)  # the first server asks nothing meanwhile
    second = TimedTransport(transport)
    await controls.post("clock/speed", {"speed": 0})  # unfinished throughout
    async with (
        Client(create_server(slow, transport=transport), elicitation_callback=answering()) as a,
        Client(create_server(slow, transport=second), mode=mode) as b,
    ):
        task_id = await video_nobody_waits_for(a)
        answers: list[Any] = []

        async def loop() -> None:
            for _ in range(5):
                answers.append(await b.call_tool("check_task", {"task_id": task_id}))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(loop)
    assert {answer.structured_content["task"]["state"] for answer in answers} <= {"queued", "running"}
    assert second.status_calls(task_id) == 25  # each call asked KIE once
    assert max_in_window(second.status_sent, 1.0) <= 10, second.status_sent
    assert len(second.status_sent) - sim.tasks[task_id].polls == 0  # none refused (429)


# -- a journal another program holds ----------------------------------------------------------------------------


def lock_journal(workspace: Path) -> sqlite3.Connection:
    """Another writer holding the workspace journal's write lock (a process stopped mid-transaction, a database
    browser) until its ``ROLLBACK``."""
    holder = sqlite3.connect(str(journal_path(workspace)), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_a_journal_another_program_holds_never_stalls_the_server_and_a_call_that_writes_waits_for_it(
    connect, tmp_path, mode
):
    """The audit: while another writer held the journal, the whole server froze for up to 30 s (even list_models and
    ping: SQLite waited for the lock on the event loop). A call that writes waits for the lock in a worker thread,
    and goes through once it is free; everything else goes on meanwhile."""
    async with connect(elicitation=answering()) as client:
        await client.call_tool("list_tasks", {})  # the runtime (and its journal) is open
        answers: dict[str, Any] = {}

        async def estimate() -> None:
            answers["estimate"] = await client.call_tool("estimate_cost", IMAGE)

        holder = lock_journal(tmp_path)
        try:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(estimate)
                    await anyio.sleep(0.3)  # the estimate meets the lock
                    began = time.monotonic()
                    if mode == "legacy":  # ping is the handshake era's (deprecated since)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", MCPDeprecationWarning)
                            await client.send_ping()
                    models = await client.call_tool("list_models", {"kind": "image"})
                    answered_in = time.monotonic() - began
                    waiting = "estimate" not in answers
                    holder.execute("ROLLBACK")  # the other program lets go: the estimate goes through
        finally:
            holder.close()
    assert answered_in < 10 and not models.is_error  # 30 s before: the lock's whole wait
    assert waiting
    assert not answers["estimate"].is_error, text_of(answers["estimate"])
    assert answers["estimate"].structured_content["quote"]["quote_id"].startswith("q_")


async def test_a_call_that_meets_a_journal_locked_too_long_says_it_is_locked_and_that_nothing_was_spent(
    connect, controls, tmp_path, monkeypatch
):
    """The audit: after 30 s the answer said kie-mcp "could not write to its workspace ... Check the workspace folder
    (free space, permissions)": the wrong advice for a lock another program holds. It says the journal is locked,
    by another program or kie-mcp process, that nothing was spent, and the approval is still good afterwards."""
    monkeypatch.setattr(journal_module, "BUSY_SECONDS", 0.5, raising=False)  # the wait for the lock, 30 s in use
    async with connect(elicitation=answering()) as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        holder = lock_journal(tmp_path)
        try:
            with anyio.fail_after(10):
                refused = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert refused.is_error
        said = text_of(refused)
        assert "locked by another program or kie-mcp process" in said and "Nothing was spent" in said, said
        assert "permissions" not in said, said
        assert await controls.creates() == []
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"], "wait_seconds": 0})
    assert made.structured_content["status"] in ("submitted", "completed"), text_of(made)
    assert len(await controls.creates()) == 1


# -- one quote, two calls at once in one server -------------------------------------------------------------------


async def test_the_same_quote_used_twice_at_once_in_one_server_answers_the_loser_with_the_task_the_winner_made(
    connect, controls
):
    """The audit: two identical calls at once with one quote made one create (good), but the other answered "Unclear
    ... The create this approval sent is still being sent: KIE may have created and charged it ... Check
    https://kie.ai/logs", though its sibling had the task id milliseconds later. It waits for that create to land
    and names its task, as the loser in another server does ("already used ... It made task X")."""
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        results = await twice_at_once(client, "generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
    assert len(await controls.creates()) == 1
    made = {task["task_id"] for result in results for task in result.structured_content["tasks"]}
    assert len(made) == 1 and None not in made, [text_of(result) for result in results]
    loser = next((result for result in results if "already used" in text_of(result)), None)
    assert loser is not None, [text_of(result) for result in results]
    assert "still being sent" not in text_of(loser) and "kie.ai/logs" not in text_of(loser), text_of(loser)


async def test_the_same_quote_used_at_once_on_two_servers_answers_the_loser_with_the_task_the_winner_made(
    settings, transport, controls
):
    """The audit's two-process variant: the server that lost the race for one quote answered "still being sent ...
    check https://kie.ai/logs" while the other's create was on its way; it waits for that create (its process runs)
    and names its task."""
    async with (
        Client(create_server(settings, transport=transport)) as a,
        Client(create_server(settings, transport=transport)) as b,
    ):
        quote = (await a.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        arguments = {**IMAGE, "quote_id": quote["quote_id"], "wait_seconds": 0}
        results: list[Any] = []

        async def call(client: Client) -> None:
            results.append(await client.call_tool("generate_image", arguments))

        async with anyio.create_task_group() as group:
            group.start_soon(call, a)
            group.start_soon(call, b)
    assert len(await controls.creates()) == 1
    made = {task["task_id"] for result in results for task in result.structured_content["tasks"]}
    assert len(made) == 1 and None not in made, [text_of(result) for result in results]


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_failing_while_another_program_holds_the_journal_still_gets_its_refund(
    connect, controls, tmp_path, monkeypatch
):
    """The review: a followed task that failed while another program held the journal had its refund given up
    after a quarter second's wait on the event loop, so its reservation counted against the daily cap until someone
    called check_task. The refund is written in a worker thread once the lock is free, by nobody's asking."""
    # The lock's holder is this test, on the server's own event loop: a write waiting there holds up its release
    monkeypatch.setattr(journal_module, "BUSY_SECONDS", 2.0, raising=False)
    await controls.post("clock/speed", {"speed": 0})  # the task ends when the test says
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        holder = lock_journal(tmp_path)
        try:
            await controls.post(f"tasks/{task_id}", {"state": "fail", "fail_msg": "upstream timeout"})
            await anyio.sleep(1.0)  # the follower sees it end while the lock is held
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        with anyio.fail_after(10):
            while not _refunds(tmp_path):  # noqa: ASYNC110 - the follower writes it, in the background
                await anyio.sleep(0.1)
    assert _refunds(tmp_path) == [-8.0]


def _refunds(workspace: Path) -> list[float]:
    with sqlite3.connect(journal_path(workspace)) as db:
        return [row[0] for row in db.execute("SELECT delta FROM spend WHERE reason LIKE 'refunded%'")]


async def test_tools_that_only_read_answer_at_once_while_another_program_holds_the_journal(
    connect, tmp_path, monkeypatch
):
    """The review: list_tasks and check_credits, which only read (WAL readers never wait for a writer), waited for
    the lock like a spend and then failed with "could not write to its journal ... nothing was spent"."""
    busy = 10.0  # how long a write waits for the lock (30 s by default)
    monkeypatch.setattr(journal_module, "BUSY_SECONDS", busy, raising=False)
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 30})
        holder = lock_journal(tmp_path)
        try:
            for tool in ("list_tasks", "check_credits"):
                began = time.monotonic()
                answer = await client.call_tool(tool, {})
                answered_in = time.monotonic() - began
                assert not answer.is_error and answered_in < busy / 2, (tool, answered_in, text_of(answer))
        finally:
            holder.execute("ROLLBACK")
            holder.close()


class LockHolder:
    """Another program holding the journal's write lock from a thread of its own (a database browser with an edit
    not saved), until told to let go or for ``most`` seconds: it lets go whatever the event loop does meanwhile (a
    holder on the loop could not, while a server waits for the lock there)."""

    def __init__(self, workspace: Path, most: float) -> None:
        self.held, self.released, self._go = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(journal_path(workspace), most), daemon=True)

    def _hold(self, path: Path, most: float) -> None:
        db = sqlite3.connect(str(path), isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            self.held.set()
            self._go.wait(most)
            db.execute("ROLLBACK")
        finally:
            db.close()
            self.released.set()

    def __enter__(self) -> LockHolder:
        self._thread.start()
        assert self.held.wait(10)
        return self

    def let_go(self) -> None:
        self._go.set()
        self.released.wait(10)

    def __exit__(self, *exc: object) -> None:
        self.let_go()


async def answered_while_held(client: Client, mode: str, holder: LockHolder) -> bool:
    """A ping (handshake era) and two read-only tool calls: whether all were answered while the lock was held."""
    if mode == "legacy":  # ping is the handshake era's (deprecated since)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.send_ping()
    for tool in ("list_models", "list_tasks"):
        assert not (await client.call_tool(tool, {})).is_error
    return not holder.released.is_set()


async def seen_state(client: Client, task_id: str) -> str:
    read = await client.read_resource(f"kie://tasks/{task_id}")
    return json.loads(read.contents[0].text)["state"]


def journal_rows(workspace: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(journal_path(workspace))) as db:  # a read: never waits for the lock (WAL)
        return db.execute(sql, args).fetchall()


async def test_the_follower_never_freezes_the_server_while_another_program_holds_the_journal_and_records_every_end(
    connect, controls, tmp_path, mode, sim
):
    """The audit: with three images followed and a database browser holding the journal's write lock for 40 s, the
    worst ping took 36 s: each look wrote the task's state on the event loop, waiting up to 30 s for the lock there,
    and no ping, call or cancellation was served meanwhile. The follower goes on looking, and pings and other calls
    are answered, while the lock is held; the tasks that ended meanwhile are settled, saved and recorded once it
    goes."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("clock/speed", {"speed": 0})  # the tasks end when the test says
    async with connect(elicitation=answering()) as client:
        task_ids = []
        for prompt in ("one cup", "two cups", "three cups"):
            made = await client.call_tool("generate_image", {**IMAGE, "prompt": prompt, "wait_seconds": 0})
            task_ids.append(made.structured_content["tasks"][0]["task_id"])
        with LockHolder(tmp_path, most=15) as holder:
            for task_id in task_ids:
                await controls.post(f"tasks/{task_id}", {"state": "success"})
            await controls.post("clock/speed", {"speed": 1000})  # KIE's poll budget (per virtual second) refills
            answers: list[bool] = []
            with anyio.fail_after(30):  # until the follower has seen each task end (kie://tasks/{id}: what it knows)
                while len(answers) < 5 or {await seen_state(client, task_id) for task_id in task_ids} != {"succeeded"}:
                    answers.append(await answered_while_held(client, mode, holder))
                    await anyio.sleep(0.05)
                answers.append(not holder.released.is_set())  # the reads of kie://tasks/{id} too
            unrecorded = journal_rows(tmp_path, "SELECT task_id FROM tasks WHERE state != 'succeeded'")
        assert all(answers), answers  # every call made while the lock was held was answered while it was held
        assert len(unrecorded) == 3  # the follower saw the ends while the lock was held; nothing could be written
        with anyio.fail_after(30):
            while len(journal_rows(tmp_path, "SELECT DISTINCT task_id FROM files")) < 3:  # noqa: ASYNC110
                await anyio.sleep(0.05)
            while journal_rows(tmp_path, "SELECT 1 FROM follows"):  # noqa: ASYNC110 - claims released at each end
                await anyio.sleep(0.05)
        checked = [
            (await client.call_tool("check_task", {"task_id": task_id})).structured_content["task"]
            for task_id in task_ids
        ]
    states = dict(journal_rows(tmp_path, "SELECT task_id, state FROM tasks"))
    assert states == dict.fromkeys(task_ids, "succeeded")
    for task in checked:
        assert task["state"] == "succeeded" and task["files"], task
        assert all((tmp_path / path).is_file() for path in task["files"])
    assert {row[0] for row in journal_rows(tmp_path, "SELECT ref FROM spend WHERE reason = 'charged by KIE'")} == set(
        task_ids
    )


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_taken_up_while_another_program_holds_the_journal_is_claimed_once_the_lock_goes(
    connect, settings, transport, controls, tmp_path
):
    """A read of ``kie://tasks/{id}`` of an unfinished task nobody follows makes this server its follower: its claim
    in the journal waited for another program's lock on the event loop, the read and every ping with it. The task is
    followed at once, and claimed once the lock goes (no other server takes it up meanwhile: it reads the claims)."""
    slower = replace(settings, poll_min_interval=0.1)  # QUIET 9 s: the rescan would not take the task up first
    await controls.post("clock/speed", {"speed": 0})
    async with connect(poll_min_interval=0.1) as b:
        await b.call_tool("list_tasks", {})  # B's follower runs (its start-time adoption is over)
        async with Client(create_server(slower, transport=transport), elicitation_callback=answering()) as a:
            task_id = await video_nobody_waits_for(a)
        assert journal_rows(tmp_path, "SELECT 1 FROM follows") == []  # A stopped: nobody follows it
        with LockHolder(tmp_path, most=15) as holder:
            read = await b.read_resource(f"kie://tasks/{task_id}")
            read_while_held = not holder.released.is_set()
        assert read_while_held
        assert json.loads(read.contents[0].text)["state"] in ("queued", "running")
        with anyio.fail_after(10):
            while not journal_rows(tmp_path, "SELECT owner FROM follows WHERE task_id = ?", task_id):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        await controls.post(f"tasks/{task_id}", {"state": "success"})
        await controls.post("clock/speed", {"speed": 1000})  # KIE's poll budget (per virtual second) refills
        with anyio.fail_after(20):
            while not journal_rows(tmp_path, "SELECT 1 FROM files WHERE task_id = ?", task_id):  # noqa: ASYNC110
                await anyio.sleep(0.05)
            while journal_rows(tmp_path, "SELECT 1 FROM follows WHERE task_id = ?", task_id):  # noqa: ASYNC110
                await anyio.sleep(0.05)
    assert journal_rows(tmp_path, "SELECT state FROM tasks WHERE task_id = ?", task_id) == [("succeeded",)]
