"""A journal the start cannot simply open never leaves the server stuck, and what it says is what to do.

- Another program holds the journal locked when the server starts (a database tool in exclusive mode): the open
  waits in a worker thread, so pings and the handshake are answered at once; every call says the journal is locked
  by another program (close it), and once the lock is gone the next call works and the follower takes up the tasks
  the journal holds, without a restart.
- A damaged page (a bad sector, a torn write) in a journal in use: every answer that meets it names the damaged file
  and says a restart moves it aside; the restart does (its check of every page finds it), and spending works again
  with today's spend carried over from the call log.
- A damaged journal another server on the workspace still has open is never moved aside under it (that server's
  tasks and spend would go on into the moved file, nobody reading them): the new server says so and spends nothing,
  and moves it aside by itself once the other server stops. Two servers starting at once on a damaged journal move
  it aside once, to a name no other file has, and share the fresh one. ``kie://tasks`` names a damaged journal as
  the tools do.
- A folder or a named pipe where the journal file goes is named, with what to do (not "make it writable").
- A file size limit (``ulimit -f``) the journal's writes meet is named as that.

Through the real MCP client against the simulator, in both protocol eras; over real stdio where the start matters.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import textwrap
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.shared.exceptions import MCPDeprecationWarning

from kie_mcp.journal import journal_path

from .conftest import answering, text_of
from .test_follower import video_nobody_waits_for
from .test_promise_start import client_env, console_script

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits


async def ping(client: Client, mode: str) -> float:
    """Seconds a ping takes (the handshake era's; in the 2026-07-28 era, list_tools: answered without the
    runtime)."""
    began = time.monotonic()
    if mode == "legacy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.send_ping()
    else:
        await client.list_tools()
    return time.monotonic() - began


def hold(workspace: Path, how: str) -> sqlite3.Connection:
    """Another program holding the journal until its ``ROLLBACK`` and close. ``exclusive``: in exclusive locking
    mode, mid-write (a database tool): nobody else may even read it. ``migration``: an ordinary write left open (a
    database browser with unsaved edits) on a journal an older kie-mcp wrote, which the open must bring up to date:
    readers go on, but the open's writes wait."""
    path = journal_path(workspace)
    holder = sqlite3.connect(str(path), isolation_level=None)
    if how == "exclusive":
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
    else:
        holder.execute("DROP INDEX tasks_updated")  # an index an older kie-mcp did not make
        holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO uploads (sha256, url, uploaded) VALUES ('held', 'held', 0)")
    return holder


def says_locked_by_another_program(text: str) -> None:
    assert "locked by another program" in text and "close it" in text, text
    assert "without a restart" in text and "Nothing was spent" in text, text
    assert "writable" not in text and "restart the server" not in text, text


def task_state(workspace: Path, task_id: str) -> str | None:
    with contextlib.closing(sqlite3.connect(f"file:{journal_path(workspace)}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return row[0] if row else None


# -- a journal another program holds locked at start ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["exclusive", "migration"])
async def test_a_journal_held_at_start_is_said_to_be_locked_and_opens_once_free_without_a_restart(
    connect, controls, tmp_path, mode, how
):
    """The audit: with a database tool holding the journal in exclusive mode as the server started, ping took 30 s
    (the open waited for the lock on the event loop), then every tool said "Make the workspace a writable folder,
    then restart", and after the lock was released calls kept failing and the tasks the journal held were never
    followed, until a restart. An ordinary write lock did the same when the open had an older journal to bring up
    to date."""
    await controls.post("clock/speed", {"speed": 0})  # a video left running by the last server
    async with connect(elicitation=answering()) as client:
        task_id = await video_nobody_waits_for(client)
    holder = hold(tmp_path, how)
    try:
        async with connect(elicitation=answering()) as client:
            opening = anyio.Event()

            async def first_call() -> None:  # it opens the runtime, and waits for the journal's open
                opening.set()
                answers["first"] = await client.call_tool("list_tasks", {})

            answers: dict[str, object] = {}
            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    group.start_soon(first_call)
                    await opening.wait()
                    await anyio.sleep(0.1)
                    pinged_in = await ping(client, mode)
            listed = answers["first"]
            began = time.monotonic()
            estimate = await client.call_tool("estimate_cost", IMAGE)
            answered_in = time.monotonic() - began
            models = await client.call_tool("list_models", {"kind": "image"})
            holder.execute("ROLLBACK")
            holder.close()  # the other program lets go
            await controls.post("clock/speed", {"speed": 1000})
            again = await client.call_tool("list_tasks", {})
            with anyio.fail_after(10):  # the follower takes up the video nobody asks about
                while task_state(tmp_path, task_id) != "succeeded":  # noqa: ASYNC110 - the journal, on disk
                    await anyio.sleep(0.05)
            made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
    finally:
        holder.close()
    assert pinged_in < 5.0  # 30 s before (the journal's busy wait); under 0.3 s on an idle machine, 0.5 under load
    for answer in (listed, estimate):
        assert answer.is_error
        says_locked_by_another_program(text_of(answer))
    assert answered_in < 2.0  # each call waits for one more try to open it, at most
    assert not models.is_error, text_of(models)  # what needs no journal still works
    assert not again.is_error and task_id in text_of(again), text_of(again)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 2


def server_env(simulator: str, tmp_path: Path) -> dict[str, str]:
    """The console script's environment: the simulator in its own process, the workspace ``tmp_path / "ws"``."""
    return client_env(
        tmp_path / "home",
        KIE_BASE_URL=simulator,
        KIE_UPLOAD_BASE_URL=simulator,
        KIE_API_KEY="sandbox-key",
        KIE_WORKSPACE=str(tmp_path / "ws"),
        KIE_CATALOG_SYNC="off",
        KIE_AUTO_APPROVE_CREDITS="10",
    )


HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    holder = sqlite3.connect(sys.argv[1], isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO uploads (sha256, url, uploaded) VALUES ('held', 'held', 0)")
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
    holder.execute("ROLLBACK")
    holder.close()
    """
)


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX console script")
async def test_over_stdio_a_journal_another_process_holds_at_start_leaves_pings_answered_and_opens_once_free(
    simulator_process, tmp_path
):
    """The same over real stdio, the lock held by another process: the console script answers the handshake and
    pings at once, says the journal is locked, and works once the other process lets go."""
    env = server_env(simulator_process, tmp_path)
    params = StdioServerParameters(command=console_script(), args=[], env=env)
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        assert made.structured_content["status"] == "submitted", text_of(made)
    held = journal_path(tmp_path / "ws")
    async with await anyio.open_process([sys.executable, "-c", HOLDER, str(held)]) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        assert (await holder.stdout.receive()).strip() == b"held"
        began = time.monotonic()
        async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
            await anyio.sleep(1.0)  # the runtime opens 0.5 s after the start: its open meets the lock
            pinged_in = await ping(client, "legacy")
            locked = await client.call_tool("list_tasks", {})
            locked_at = time.monotonic() - began
            await holder.stdin.aclose()  # the other process lets go
            with anyio.fail_after(10):
                await holder.wait()
            listed = await client.call_tool("list_tasks", {})
    assert pinged_in < 0.5  # 30 s before
    assert locked.is_error and locked_at < 10, (locked_at, text_of(locked))
    says_locked_by_another_program(text_of(locked))
    assert not listed.is_error and made.structured_content["tasks"][0]["task_id"] in text_of(listed), text_of(listed)


# -- a damaged journal --------------------------------------------------------------------------------------------


def damage_the_spend_table(workspace: Path) -> None:
    """Pages of the journal in use overwritten (a bad sector, a torn write): those that hold the spend entries (the
    table and its indexes), once every write is in the main file. A write by another program then has the server
    read its pages from the file again."""
    path = journal_path(workspace)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = [
            row[0] for row in db.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'spend' AND rootpage > 0")
        ]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as file:
        for page in pages:
            file.seek((page - 1) * page_size)
            file.write(os.urandom(page_size))
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("INSERT INTO answers (task_id, body, at) VALUES ('another program', '{}', 0)")


async def test_a_damaged_journal_is_named_and_a_restart_moves_it_aside_keeping_todays_spend(
    connect, controls, tmp_path
):
    """The audit: with one page of the journal overwritten, check_credits and every generation answered "could not
    write to its workspace (database disk image is malformed). Check the workspace folder (free space,
    permissions)", and a restart did not help: the open succeeded, so the file was never moved aside."""
    caps = {"auto_approve_credits": 10, "max_credits_per_day": 20}
    async with connect(**caps) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        assert made.structured_content["status"] == "completed", text_of(made)
        damage_the_spend_table(tmp_path)
        credits = await client.call_tool("check_credits", {})
        refused = await client.call_tool("generate_image", {**IMAGE, "prompt": "a pear", "wait_seconds": 20})
    for answer in (credits, refused):
        said = text_of(answer)
        assert answer.is_error, said
        assert ".kie-mcp/journal.sqlite3" in said and "damaged" in said and "Restart the server" in said, said
        assert "moves the damaged file aside" in said, said
        assert "permissions" not in said and "free space" not in said, said
    assert len(await controls.creates()) == 1
    async with connect(**caps) as client:  # the restart
        first = await client.call_tool("check_credits", {})
        again = await client.call_tool("generate_image", {**IMAGE, "prompt": "a plum", "wait_seconds": 20})
        over = await client.call_tool("generate_image", {**IMAGE, "prompt": "a fig", "wait_seconds": 20})
    folder = journal_path(tmp_path).parent
    [kept] = [p for p in folder.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert str(kept) in text_of(first), text_of(first)
    assert first.structured_content["spent_today"] == 8, text_of(first)  # carried over from the call log
    assert again.structured_content["status"] == "completed", text_of(again)
    assert over.is_error and "16 spent today" in text_of(over), text_of(over)  # 8 + 8 + 8 > 20: the cap holds
    assert len(await controls.creates()) == 2


async def test_a_journal_damaged_while_no_server_ran_is_moved_aside_at_the_start_keeping_todays_spend(
    connect, controls, tmp_path
):
    """The audit's case: the page went bad between two runs. The start's open read only the pages it needed, so
    the damaged journal stayed in use (reads working, every spend failing) however often the server restarted."""
    caps = {"auto_approve_credits": 10, "max_credits_per_day": 20}
    async with connect(**caps) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        assert made.structured_content["status"] == "completed", text_of(made)
    damage_the_spend_table(tmp_path)
    async with connect(**caps) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "prompt": "a plum", "wait_seconds": 20})
        credits = await client.call_tool("check_credits", {})
    folder = journal_path(tmp_path).parent
    [kept] = [p for p in folder.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert made.structured_content["status"] == "completed", text_of(made)
    assert str(kept) in text_of(made)  # the first answer says so, whatever the tool
    assert credits.structured_content["spent_today"] == 16, text_of(credits)  # 8 carried over, 8 spent now
    assert len(await controls.creates()) == 2


def damage_a_page_no_server_reads(workspace: Path) -> None:
    """A page of the journal that no running server reads overwritten (a bad sector under an old task's answer): a
    server using the journal goes on, and only a start's check of every page finds it."""
    path = journal_path(workspace)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("INSERT INTO answers (task_id, body, at) VALUES ('an old task', ?, 0)", ("x" * 40_000,))
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = path.stat().st_size // page_size
    with open(path, "r+b") as file:
        file.seek((pages - 2) * page_size)  # the answer's overflow pages are the file's last
        file.write(b"\xff" * page_size)


def kept_journals(workspace: Path) -> list[Path]:
    folder = journal_path(workspace).parent
    return [p for p in folder.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]


@asynccontextmanager
async def server_of_its_own(opener: Any) -> AsyncIterator[tuple[Client, Callable[[], Awaitable[None]]]]:
    """A server and its client run in a task of their own, and the means to stop them while the caller's go on."""
    ready, stop, stopped = anyio.Event(), anyio.Event(), anyio.Event()
    clients: list[Client] = []

    async def serve() -> None:
        async with opener as client:
            clients.append(client)
            ready.set()
            await stop.wait()
        stopped.set()

    async def close() -> None:
        stop.set()
        await stopped.wait()

    async with anyio.create_task_group() as group:
        group.start_soon(serve)
        await ready.wait()
        yield clients[0], close
        stop.set()


def says_in_use_by_another_server(text: str) -> None:
    assert "is damaged" in text and "another kie-mcp process" in text and "not moved aside" in text, text
    assert "Close every other client of this workspace" in text and "without a restart" in text, text
    assert "Nothing was spent" in text and "writable" not in text, text


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_damaged_journal_another_server_still_uses_is_left_in_place_until_it_stops_then_moved_aside(
    connect, controls, tmp_path
):
    """The audit: a page server A never reads went bad; server B, started on the workspace by a second client,
    failed the check, moved journal.sqlite3 aside and started afresh while A kept writing into the moved file. A's
    60-credit Veo clip made then was in no journal after a restart, never followed or saved, and today's spend was
    split across two ledgers. B now leaves the journal where it is, says why and spends nothing; once A stops, B
    moves it aside by itself and takes A's clip and today's spend from the call log."""
    await controls.post("clock/speed", {"speed": 1000})
    async with server_of_its_own(connect(elicitation=answering(), auto_approve_credits=100)) as (first, stop_first):
        made = await first.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        assert made.structured_content["status"] == "completed", text_of(made)
        damage_a_page_no_server_reads(tmp_path)
        damaged = journal_path(tmp_path).stat().st_ino
        async with connect(elicitation=answering(), auto_approve_credits=100) as second:
            listed = await second.call_tool("list_tasks", {})
            refused = await second.call_tool("generate_image", {**IMAGE, "prompt": "a pear", "wait_seconds": 20})
            kept_meanwhile = kept_journals(tmp_path)
            await controls.post("clock/speed", {"speed": 0})
            video_id = await video_nobody_waits_for(first)  # A spends on after B started
            await stop_first()
            await controls.post("clock/speed", {"speed": 1000})
            again = await second.call_tool("list_tasks", {})
            with anyio.fail_after(20):  # B follows and saves the clip nobody waits for
                while not list((tmp_path / "outputs").rglob(f"*{video_id}*.mp4")):  # noqa: ASYNC110 - a file
                    await anyio.sleep(0.05)
            credits = await second.call_tool("check_credits", {})
    for answer in (listed, refused):
        assert answer.is_error
        says_in_use_by_another_server(text_of(answer))
    assert kept_meanwhile == [] and len(await controls.creates()) == 2  # B sent nothing
    [kept] = kept_journals(tmp_path)
    assert kept.stat().st_ino == damaged and str(kept) in text_of(again), text_of(again)  # the file A had open
    with contextlib.closing(sqlite3.connect(f"file:{kept}?mode=ro", uri=True)) as db:  # A's clip is in it: not lost
        assert db.execute("SELECT 1 FROM tasks WHERE task_id = ?", (video_id,)).fetchone()
    assert video_id in [task["task_id"] for task in again.structured_content["tasks"]], text_of(again)
    assert credits.structured_content["spent_today"] == 68, text_of(credits)  # one ledger: 8 + 60


async def test_two_servers_starting_at_once_on_a_damaged_journal_move_it_aside_once_and_share_the_fresh_one(
    connect, controls, tmp_path
):
    """The audit: two servers starting at once on a damaged journal each moved "it" aside under a name made of the
    second: the second rename replaced the user's damaged journal (all its history) with the other server's fresh
    one, both said it was kept there, and one server then ran on the moved file. Now one moves the damaged file
    (the very one that failed the check) to a name no file has, and both use the fresh journal."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        assert made.structured_content["status"] == "completed", text_of(made)
    damage_a_page_no_server_reads(tmp_path)
    path = journal_path(tmp_path)
    original = path.read_bytes()
    now = datetime.now()  # journals kept from an earlier damage under names of the minute to come: never replaced
    earlier = [path.with_name(f"{path.name}.corrupt-{now + timedelta(seconds=s):%Y%m%d-%H%M%S}") for s in range(60)]
    for name in earlier:
        name.write_bytes(b"kept before")
    answers: dict[str, Any] = {}
    async with connect(elicitation=answering()) as first, connect(elicitation=answering()) as second:
        async with anyio.create_task_group() as group:  # both open the journal at once
            for name, client in (("first", first), ("second", second)):
                group.start_soon(listing, answers, name, client)
        made = await first.call_tool("generate_image", {**IMAGE, "prompt": "a pear", "wait_seconds": 20})
        seen = await second.call_tool("list_tasks", {})
    assert all(name.read_bytes() == b"kept before" for name in earlier)
    [kept] = [p for p in kept_journals(tmp_path) if p not in earlier]
    assert kept.read_bytes() == original  # the damaged journal itself, whole
    told = [name for name, answer in answers.items() if str(kept) in text_of(answer)]
    assert len(told) == 1, answers  # one server moved it aside, and said so
    assert all(not answer.is_error for answer in answers.values()), answers
    assert made.structured_content["tasks"][0]["task_id"] in text_of(seen), text_of(seen)  # one journal for both


async def listing(answers: dict[str, Any], name: str, client: Client) -> None:
    answers[name] = await client.call_tool("list_tasks", {})


async def test_kie_tasks_names_a_damaged_journal_as_the_tools_do(connect, controls, tmp_path):
    """The audit: with the journal cut short while the server ran, the tools said it was damaged and to restart the
    server, but reading kie://tasks said to make the workspace a writable folder, which it was."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        assert made.structured_content["status"] == "completed", text_of(made)
        path = journal_path(tmp_path)
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.truncate(path, 16384)
        with pytest.raises(MCPError) as refused:
            await client.read_resource("kie://tasks")
    said = refused.value.error.message
    assert "journal (.kie-mcp/journal.sqlite3) is damaged" in said and "Restart the server" in said, said
    assert "writable" not in said, said


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX console script; Windows refuses to move an open file")
async def test_over_stdio_a_damaged_journal_another_server_process_uses_is_moved_aside_only_once_it_ends(
    simulator_process, tmp_path
):
    """The same over real stdio, two console scripts on one workspace: the second leaves the damaged journal the
    first has open where it is, and moves it aside by itself once the first process has ended."""
    env = server_env(simulator_process, tmp_path)
    params = StdioServerParameters(command=console_script(), args=[], env=env)
    async with server_of_its_own(Client(params, mode="legacy", read_timeout_seconds=60)) as (first, stop_first):
        made = await first.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        assert made.structured_content["status"] == "submitted", text_of(made)
        damage_a_page_no_server_reads(tmp_path / "ws")
        async with Client(params, mode="legacy", read_timeout_seconds=60) as second:
            refused = await second.call_tool("list_tasks", {})
            kept_meanwhile = kept_journals(tmp_path / "ws")
            await stop_first()
            listed = await second.call_tool("list_tasks", {})
    says_in_use_by_another_server(text_of(refused))
    assert kept_meanwhile == []
    [kept] = kept_journals(tmp_path / "ws")
    assert not listed.is_error and str(kept) in text_of(listed), text_of(listed)
    with contextlib.closing(sqlite3.connect(f"file:{kept}?mode=ro", uri=True)) as db:  # the file the first had open
        task_id = made.structured_content["tasks"][0]["task_id"]
        assert db.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone()


# -- not a file where the journal goes ------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["folder", "fifo"])
async def test_a_folder_or_pipe_where_the_journal_goes_is_named_with_what_to_do(connect, controls, tmp_path, what):
    """The audit: a folder in place of journal.sqlite3 was answered "Make the workspace a writable folder", which it
    already was."""
    if what == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("named pipes are POSIX")
    path = journal_path(tmp_path)
    path.parent.mkdir()
    if what == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)
    async with connect(elicitation=answering()) as client:
        credits = await client.call_tool("check_credits", {})
        made = await client.call_tool("generate_image", IMAGE)
    shown = {"folder": "a folder", "fifo": "a named pipe (FIFO)"}[what]
    for answer in (credits, made):
        said = text_of(answer)
        assert answer.is_error, said
        assert f"{path} is {shown}, not a file" in said and "out of the way" in said, said
        assert "writable" not in said, said
    assert await controls.creates() == []


# -- a file size limit -------------------------------------------------------------------------------------------


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="ulimit and /bin/sh")
async def test_a_file_size_limit_the_journal_meets_is_named(simulator_process, tmp_path):
    """The audit: started under ``ulimit -f`` the journal's open failed with "disk I/O error" and the advice to make
    the workspace writable, which it was."""
    # No bytecode written under the limit: CPython writes a .pyc cut short there without a word (a module changed
    # since it was last compiled), and every later import of it fails ("marshal data too short").
    env = {**server_env(simulator_process, tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    params = StdioServerParameters(command="/bin/sh", args=["-c", f'ulimit -f 100; exec "{console_script()}"'], env=env)
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        credits = await client.call_tool("check_credits", {})
    said = text_of(credits)
    assert credits.is_error and "file size limit" in said and "ulimit -f" in said, said
    assert "writable" not in said, said
    async with httpx2.AsyncClient(base_url=simulator_process) as sim:
        requests = (await sim.get("/__sim/requests")).json()
    assert not [r for r in (requests if isinstance(requests, list) else requests["requests"]) if "create" in r["path"]]
