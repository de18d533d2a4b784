"""Several kie-mcp servers on one workspace (Claude Desktop and Cursor side by side): each server's clients hear of
every task of the workspace, whichever server made and follows it, without a second server asking KIE about it; a
task whose server was killed is taken up at once by one still running.

Through the real MCP client, against the simulator; two servers on one workspace are two in-process servers (the
follower tells a killed server by its process id: one that has ended). The follower's schedule runs 200 times
faster (``poll_min_interval`` 10 ms, conftest) unless a test says otherwise.
"""

from __future__ import annotations

import time
from dataclasses import replace

import anyio
import pytest
from mcp import Client
from mcp.types import LoggingMessageNotificationParams

from kie_mcp import processes
from kie_mcp.journal import Journal
from kie_mcp.server import create_server
from kie_mcp.tasks.follower import QUIET, RESCAN, time_unit

from .conftest import answering
from .test_follower import CountedTransport, video_nobody_waits_for
from .test_promise_saved_by_one import a_gone_process


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
                assert await heard_all(subscription, {uri}, 10) == {uri}
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
