"""A check_task that waits on a task another kie-mcp on the workspace follows answers what that server recorded, as
soon as it recorded it: the task's end within a second (not the state the wait began with, at its end), read once
more as the wait ends, its results once that server saved them (waiting for them as for results it saves itself),
with progress all the while, and never a status call or a download of its own (but for results that server let
go unsaved, which it then saves itself).

Two real kie-mcp processes over stdio (the handshake era) against ``kie-mcp sim``, with the default timings; the rest
in process, in both eras. The server that waits reads every ``poll_min_interval`` (a second at most) and follows
nothing, so its ``poll_max_interval`` (the journal relay) is set to its default of 15 s here, as it is for a user:
the audit's wait read the journal first at that interval.
"""

from __future__ import annotations

import itertools
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from kie_mcp.server import create_server

from .conftest import answer_from, answering, simulator_running, text_of
from .test_follower import CountedTransport, video_nobody_waits_for
from .test_promise_stop import Server

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


def waiting_apart(settings: Any) -> Any:
    """The settings of the server that waits on the other's task: reads every second, its relay at the default."""
    return replace(settings, poll_min_interval=2.0, poll_max_interval=15.0)


@asynccontextmanager
async def a_follows_b_waits(settings: Any, transport: Any, controls: Any, mode: str) -> AsyncIterator[Any]:
    """Server A (that made and follows an unfinished video, the simulator's clock stopped) and server B (that waits
    on it, ``waiting_apart``) on one workspace: A's and B's clients, the transport counting B's requests, the task."""
    second = CountedTransport(transport)
    await controls.post("clock/speed", {"speed": 0})
    async with (
        Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a,
        Client(create_server(waiting_apart(settings), transport=second), mode=mode) as b,
    ):
        yield a, b, second, await video_nobody_waits_for(a)


async def checked_while(
    client: Client, task_id: str, seconds: float, meanwhile: Callable[[], Awaitable[object]], times: list[float]
) -> Any:
    """The answer of ``check_task(task_id, wait_seconds=seconds)`` on ``client``; ``meanwhile`` runs once its wait has
    begun (its first progress notification). ``times`` gets the moment of each progress notification."""
    begun, answers = anyio.Event(), []

    async def progressed(progress: float, total: float | None, message: str | None) -> None:
        times.append(time.monotonic())
        begun.set()

    async def check() -> None:
        arguments = {"task_id": task_id, "wait_seconds": seconds}
        answers.append(await client.call_tool("check_task", arguments, progress_callback=progressed))

    async with anyio.create_task_group() as group:
        group.start_soon(check)
        await begun.wait()
        await meanwhile()
    return answers[0]


async def test_check_task_waiting_on_a_task_another_server_follows_answers_its_end_within_a_second_not_at_the_wait_end(
    settings, transport, controls, mode
):
    """The audit: B waited its whole wait and answered "queued", though A had recorded the task succeeded, its file
    saved, early in it: B read the journal first 15 s into a wait. It reads it every second now, with progress
    notifications all the while, asking KIE nothing."""
    started, times = [], []

    async def ends_later() -> None:
        started.append(time.monotonic())
        await anyio.sleep(2.2)  # two of B's reads find it unfinished, with progress each time
        await controls.post(f"tasks/{task_id}", {"state": "success"})  # A's next look sees it, and saves it

    async with a_follows_b_waits(settings, transport, controls, mode) as (_, b, second, task_id):
        answer = await checked_while(b, task_id, 6, ends_later, times)
        answered = time.monotonic()
    said = text_of(answer)
    assert answer.structured_content["task"]["state"] == "succeeded", said
    assert answer.structured_content["task"]["files"] and answer.structured_content["saving"] is False, said
    assert answered - started[0] < 6, said  # answered as recorded, before the wait ran out
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= 3 and max(gaps) < 2.0, times  # a notification at every read: a second apart
    assert second.status_calls(task_id) == 0 and second.file_gets() == 0  # A asks KIE and saves; B read the journal


async def test_check_task_waiting_on_a_task_another_server_follows_reads_it_once_more_as_the_wait_ends(
    settings, transport, controls, mode
):
    """The audit: the wait broke at its deadline without a last read of the journal, so an end recorded since its
    last read (or, in a short wait, since it began) was not answered. A wait shorter than a read's interval reads the
    journal as it ends."""

    async def ends() -> None:
        await controls.post(f"tasks/{task_id}", {"state": "success"})  # A records it in a few tens of ms

    async with a_follows_b_waits(settings, transport, controls, mode) as (_, b, second, task_id):
        answer = await checked_while(b, task_id, 0.8, ends, [])  # B's first read would be 1 s in
    assert answer.structured_content["task"]["state"] == "succeeded", text_of(answer)
    assert second.status_calls(task_id) == 0


async def test_check_task_waiting_on_a_task_another_server_saves_answers_with_the_files_once_saved_there(
    settings, transport, controls, mode, tmp_path
):
    """The audit: with a slow file server, B answered "succeeded ... being saved by another kie-mcp" as soon as the
    journal said succeeded, though the file landed a few seconds later and B had most of its wait left. An ended
    task whose results another server is saving is waited on until they are saved (within the wait, or the same
    grace as for results B saves itself): the answer names the files."""
    second = CountedTransport(transport)
    await controls.fault("files", kind="slow", seconds=2)  # A's download of the result: 2 s
    async with (
        Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a,
        Client(create_server(settings, transport=second), mode=mode) as b,
    ):
        made = await a.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        answer = await b.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    said = text_of(answer)
    assert answer.structured_content["task"]["state"] == "succeeded", said
    assert answer.structured_content["task"]["files"], said
    assert answer.structured_content["saving"] is False and "being saved by another kie-mcp" not in said, said
    assert second.status_calls(task_id) == 0 and second.file_gets() == 0


async def test_results_the_following_server_let_go_unsaved_while_check_task_waited_are_saved_by_that_check_task(
    settings, transport, controls, mode, tmp_path
):
    """A server stopped while it downloaded a result B's check_task was waiting for: nobody saves it now, so B's
    answer is not "being saved by another kie-mcp" (never true again) but the results, which B saves itself."""
    first, second = CountedTransport(transport), CountedTransport(transport)
    await controls.fault("files", kind="stall", seconds=30, after_bytes=0)  # A's download: held until A stops
    made: list[str] = []
    downloading, stop = anyio.Event(), anyio.Event()

    async def serve_a() -> None:
        async with Client(create_server(settings, transport=first), elicitation_callback=answering()) as a:
            result = await a.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
            made.append(result.structured_content["tasks"][0]["task_id"])
            while not first.file_gets():  # noqa: ASYNC110 - A's request in the simulator: nothing to await
                await anyio.sleep(0.02)
            downloading.set()
            await stop.wait()  # A stops mid-download: its claim goes

    async def stop_a() -> None:
        stop.set()

    async with Client(create_server(settings, transport=second), mode=mode) as b:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(serve_a)
                await downloading.wait()
                answer = await checked_while(b, made[0], 20, stop_a, [])
    task_id = made[0]
    said = text_of(answer)
    assert answer.structured_content["task"]["files"], said
    assert "being saved by another kie-mcp" not in said, said
    assert second.file_gets() == 1 and second.status_calls(task_id) == 0


# -- two real servers over stdio ------------------------------------------------------------------------------


@pytest.fixture
def simulator() -> Iterator[str]:
    yield from simulator_running("1000", kill=True)


def until_answered(server: Server, request_id: int, within: float) -> list[tuple[float, dict[str, Any]]]:
    """Every message ``server`` sends until its answer to ``request_id`` (included), each with when it came."""
    seen: list[tuple[float, dict[str, Any]]] = []
    answer_from(server.process.stdout, server.buffer, request_id, within, seen)
    return seen


def status_calls(base: str, task_id: str) -> int:
    items = httpx2.get(f"{base}/__sim/requests", timeout=10).json()
    items = items if isinstance(items, list) else items["requests"]
    return sum(1 for r in items if "recordInfo" in r["path"] and r["query"].get("taskId") == task_id)


def saved_files(workspace: Path, task_id: str) -> list[str]:
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT path FROM files WHERE task_id = ?", (task_id,))]


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="PYTHONPATH hooks of a child process, as the other stdio tests")
def test_two_servers_over_stdio_check_task_on_the_one_that_does_not_follow_answers_the_end_the_other_recorded(
    simulator, tmp_path
):
    """The audit's repro, two kie-mcp processes on one workspace with their default timings: A makes an image and
    follows it (its first look about 6 s in, which finds it ended); B's check_task(wait_seconds=12) waited the whole
    12 s and answered "queued", the journal holding the task succeeded and its file saved for half of them. B answers
    within a second of A's record, with the file, and progress every second meanwhile; KIE hears A's one look."""
    workspace = tmp_path / "workspace"
    a = Server(simulator, workspace)
    b = Server(simulator, workspace)
    try:
        call = {"name": "generate_image", "arguments": {**IMAGE, "wait_seconds": 0}}
        a.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
        made = a.answer(1)["result"]["structuredContent"]
        task_id = made["tasks"][0]["task_id"]
        asked = time.monotonic()
        check = {"name": "check_task", "arguments": {"task_id": task_id, "wait_seconds": 12}}
        b.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {**check, "_meta": {"progressToken": 7}}})
        seen = until_answered(b, 1, 30)
        on_disk = saved_files(workspace, task_id)
    finally:
        a.kill()
        b.kill()
    answered, answer = seen[-1]
    checked = answer["result"]["structuredContent"]
    said = answer["result"]["content"][0]["text"]
    assert checked["task"]["state"] == "succeeded", said
    assert checked["task"]["files"] and checked["task"]["files"] == on_disk, said
    assert answered - asked < 12, said  # as recorded, not when the wait ran out
    times = [asked] + [at for at, m in seen if m.get("method") == "notifications/progress"] + [answered]
    # progress all the while: gaps of a read a second, far under the 15 s between the reads of old (or the 12 s wait)
    assert max(later - earlier for earlier, later in itertools.pairwise(times)) < 5, times
    assert status_calls(simulator, task_id) == 1  # A's look; B read the journal
