"""A subscription to a task resource is taken as the resource read takes its URI, in both eras (``resources/subscribe``
of the handshake era, ``subscriptions/listen`` of 2026-07-28): one whose read is refused (a quote id, a query or
fragment after the id, an id KIE does not know) is refused with the read's reason, and so is a resource kie-mcp never
updates, rather than accepted to wait for an update that never comes; one written otherwise that reads the same task
hears its updates under the URI as the client wrote it. Refusing costs nothing: no create, and no status call but the
one the read itself makes of an id the journal does not know.

Through the real MCP client, in process, against the simulator.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import INVALID_PARAMS, ResourceUpdatedNotification

from kie_mcp.server import create_server

from .conftest import answering
from .test_follower import STATUS_PATHS, video_nobody_waits_for


async def subscribe(client: Client, mode: str, uri: str) -> None:
    """Subscribe ``client`` to ``uri`` the way its era does (a listen: opened, acknowledged, and closed again)."""
    if mode == "legacy":
        with pytest.warns(MCPDeprecationWarning):
            await client.subscribe_resource(uri)
        return
    async with client.listen(resource_subscriptions=[uri]):
        pass


async def other_status_calls(controls: Any, task_id: str) -> int:
    """The status calls KIE received about any task but ``task_id``."""
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return sum(1 for r in items if r["path"] in STATUS_PATHS and r["query"].get("taskId") != task_id)


@pytest.mark.parametrize(
    ("written", "said", "asks_kie"),
    [
        ("kie://tasks/q_0123456789abcdef", "is a quote id", False),
        ("kie://tasks/{id}?x=1", "Unknown resource", False),
        ("kie://tasks/{id}#frag", "Unknown resource", False),
        ("kie://tasks/{ID}", "KIE knows no task", True),  # task ids are case-sensitive: the read asks KIE
    ],
    ids=["quote-id", "query", "fragment", "upper-cased-id"],
)
async def test_a_subscription_to_a_task_uri_whose_read_is_refused_is_refused_with_the_reads_reason(
    settings, transport, controls, mode, written, said, asks_kie
):
    """The audit: these were accepted (and listen acknowledged them), though their read is refused: the client waited
    for updates that could never come."""
    async with Client(create_server(settings, transport=transport), mode=mode, elicitation_callback=answering()) as c:
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(c)
        creates = len(await controls.creates())
        uri = written.replace("{id}", task_id).replace("{ID}", task_id.upper())
        with pytest.raises(MCPError):
            await c.read_resource(uri)
        read_asked = await other_status_calls(controls, task_id)  # the follower's own looks at the task aside
        with pytest.raises(MCPError) as refused:
            await subscribe(c, mode, uri)
        asked = await other_status_calls(controls, task_id) - read_asked
    message = refused.value.error.message
    assert refused.value.error.code == INVALID_PARAMS, message
    assert said in message and "nothing was subscribed to" in message, message
    assert len(await controls.creates()) == creates
    # what its read asked (an unknown id: each family's), and no more: KIE said it has no such task a moment ago
    assert asked == 0 and (read_asked > 0) == asks_kie


async def test_made_up_task_ids_are_looked_up_one_at_a_time_and_each_once_a_minute(settings, transport, controls, mode):
    """An agent reading or subscribing to made-up ids (hundreds at once, each asked of every family) filled KIE's
    10-a-second status window, and the workspace's own tasks were followed late behind them: such lookups go one at
    a time, and an id KIE just said it has no task of is not asked again."""
    made_up = [f"nosuchtask{n:04d}" for n in range(6)]
    async with Client(create_server(settings, transport=transport), mode=mode, elicitation_callback=answering()) as c:
        async with anyio.create_task_group() as group:
            for task_id in made_up:
                group.start_soon(refused_read, c, f"kie://tasks/{task_id}")
        asked_once = await status_calls_in_order(controls)
        for task_id in made_up[:3]:
            await refused_read(c, f"kie://tasks/{task_id}")
            with pytest.raises(MCPError):
                await subscribe(c, mode, f"kie://tasks/{task_id}")
        asked_again = await status_calls_in_order(controls)
    assert set(asked_once) == set(made_up)
    runs = [task_id for n, task_id in enumerate(asked_once) if n == 0 or asked_once[n - 1] != task_id]
    assert sorted(runs) == sorted(made_up), runs  # each id's calls together: never two lookups at once
    assert asked_again == asked_once  # asked of KIE once each, however often read or subscribed to


async def refused_read(client: Client, uri: str) -> None:
    with pytest.raises(MCPError):
        await client.read_resource(uri)


async def status_calls_in_order(controls: Any) -> list[str]:
    """The task ids of the status calls KIE received, in the order it received them."""
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return [r["query"].get("taskId") for r in items if r["path"] in STATUS_PATHS]


@pytest.mark.parametrize("uri", ["kie://models", "garbage", "kie://outputs/index.html"])
async def test_a_listen_to_a_resource_kie_mcp_never_updates_is_refused_saying_which_are_updated(
    settings, transport, uri
):
    """The audit: in the 2026-07-28 era subscriptions/listen acknowledged any URI (the SDK's own handler honours
    every one), though kie-mcp only ever updates the task resources; resources/subscribe already refused them."""
    async with Client(create_server(settings, transport=transport), mode="auto") as client:
        with pytest.raises(MCPError) as refused:
            async with client.listen(resource_subscriptions=["kie://tasks", uri]):
                pass
    message = refused.value.error.message
    assert refused.value.error.code == INVALID_PARAMS, message
    assert "cannot be subscribed to: kie-mcp sends updates of kie://tasks" in message, message


async def test_a_task_uri_written_otherwise_that_reads_the_same_task_hears_its_updates_under_that_uri(
    settings, transport, controls, mode
):
    """The audit: ``kie://tasks/%20<id>`` was accepted and its read shows the task, but its updates went to the plain
    URI, which the client had not subscribed to: it heard nothing. They go to the URI as the client subscribed to it."""
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            heard.append(str(message.params.uri))

    server = create_server(settings, transport=transport)
    async with Client(server, mode=mode, elicitation_callback=answering(), message_handler=on_message) as client:
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        written = f"kie://tasks/%20{task_id}"
        if mode == "legacy":
            await subscribe(client, mode, written)
            await controls.post("clock/speed", {"speed": 1000})
            with anyio.fail_after(10):
                while not heard:  # noqa: ASYNC110 - filled by the client's message handler
                    await anyio.sleep(0.02)
        else:
            async with client.listen(resource_subscriptions=[written]) as subscription:
                await controls.post("clock/speed", {"speed": 1000})
                with anyio.fail_after(10):
                    event = await anext(aiter(subscription))
            heard.append(str(getattr(event, "uri", "")))
    assert heard[0] == written, heard
