"""A call its host cancels as the person confirms it in the form sends nothing.

The protocol audit (4 runs of 4): a host whose own timeout on a generate call fires as the person clicks Accept sends
``notifications/cancelled`` with the form's yes, or a few milliseconds after it. The call was never answered (it was
cancelled), yet its task was created and charged: from the answer to the create nothing was awaited that the cancel
could stop (the create is shielded), so a cancel read a moment after the yes was seen only once the create was sent.
The host said the call timed out while credits were spent. Now a yes waits a moment (``CANCEL_WITH_THE_YES``) for
the host's cancel before its approval is used: cancelled then, nothing is created or charged, and the question stays
unused, so the same request sent again puts it to the person again, word for word, as after any call cut off before
its create; one yes there makes it once.

The form is asked within the call only in the handshake era (2025-11-25); in the 2026-07-28 era the answer comes back
in a retried request of its own, whose cancel a moment after it was sent likewise created and charged, unanswered: its
yes waits the same moment. The yes keeps the moment it came: the wait once ran to the form's deadline, past the
question's own expiry, and a yes in the last 0.1 s before it was lost ("got no answer"). In process through the real
MCP client, and over real stdio as the audit sent it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import pytest
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from .conftest import CREATE_PATHS, text_of
from .test_deep_json import _kie_requests
from .test_promise_host_retries import spent_today
from .test_promise_unreadable_lines import Wire

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits
YES = {"action": "accept", "content": {"confirm": True}}


async def cancelled_as_confirmed(connect: Any, controls: Any, after: float) -> None:
    """A call whose host cancels it ``after`` seconds after the person's yes: nothing is created or counted, it is
    never answered, and the same request sent again puts the same question again; one yes there makes it once."""
    asked: list[str] = []
    call = anyio.CancelScope()  # the host's call, which its own timeout gives up on

    async with anyio.create_task_group() as host:

        async def times_out() -> None:
            await anyio.sleep(after)
            call.cancel()  # the SDK's client sends notifications/cancelled for it

        async def form(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
            asked.append(params.message)
            if len(asked) == 1:
                host.start_soon(times_out)  # as the person clicks Accept
            return ElicitResult(**YES)

        async with connect(elicitation=form) as client:
            with call:
                answered = await client.call_tool("generate_image", IMAGE)
            await anyio.sleep(0.3)  # time enough for a create sent after the cancel to reach the simulator
            creates = len(await controls.creates())
            spent = await spent_today(client)
            again = await client.call_tool("generate_image", IMAGE)
            tasks = (await client.call_tool("list_tasks", {})).structured_content["tasks"]

    assert call.cancelled_caught, text_of(answered)  # cancelled, never answered
    assert creates == 0 and spent == 0  # nothing was sent, nothing is counted
    assert len(asked) == 2 and asked[1] == asked[0]  # the same question put again, not approved unasked
    assert again.structured_content["status"] == "completed", text_of(again)
    assert "cut off" not in text_of(again)  # nothing was made to be replayed
    assert len(await controls.creates()) == 1 and len(tasks) == 1  # one yes, one create


@pytest.mark.parametrize("mode", ["legacy"])  # the form asked within the call: the handshake era's back-channel
@pytest.mark.parametrize("after", [0.001, 0.02], ids=["a-millisecond-after-the-yes", "20-ms-after-the-yes"])
async def test_a_call_cancelled_as_the_person_confirms_creates_nothing_and_its_retry_asks_again(
    connect, controls, after
):
    await cancelled_as_confirmed(connect, controls, after)


@pytest.mark.parametrize("mode", ["auto"])  # the yes comes back in a retried request of its own (2026-07-28)
@pytest.mark.parametrize(
    "after", [0.001, 0.02, 0.03], ids=["a-millisecond-after-the-yes", "20-ms-after-the-yes", "30-ms-after-the-yes"]
)
async def test_a_retried_request_cancelled_as_it_carries_the_yes_creates_nothing_and_is_asked_again(
    connect, controls, after
):
    """The host's cancel of the request that carries the person's yes, sent as it goes (its timeout firing as they
    click Accept): created and charged, never answered, before the yes waited for it as the form's does."""
    await cancelled_as_confirmed(connect, controls, after)


@pytest.mark.parametrize("mode", ["legacy"])
@pytest.mark.parametrize("left", [0.07, 0.04], ids=["70-ms-before-the-deadline", "40-ms-before-the-deadline"])
async def test_a_yes_in_the_last_moment_before_the_forms_deadline_still_creates_once(connect, controls, left):
    """The wait for a cancel after a yes ran to the form's deadline, past the question's own expiry (its quote opened
    a moment before the form was shown): a yes given less than 0.1 s before the deadline was answered "The
    confirmation got no answer within 1.5 seconds", nothing made. The yes keeps the moment it came."""
    deadline = 1.5
    asked: list[str] = []

    async def form(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        await anyio.sleep(deadline - left)  # the person takes their time, and answers in time
        return ElicitResult(**YES)

    async with connect(elicitation=form, confirm_timeout_seconds=deadline) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        spent = await spent_today(client)
    assert made.structured_content["status"] in ("submitted", "completed"), text_of(made)
    assert "no answer" not in text_of(made)
    assert len(asked) == 1 and len(await controls.creates()) == 1 and spent == 8  # one yes, one create


@pytest.mark.stdio
def test_a_call_cancelled_moments_after_its_yes_creates_nothing_over_stdio(simulator_process, tmp_path):
    """The audit's run over real stdio: the form's yes, and the host's cancel of the call 10 ms later. The same
    request sent again is asked again (before, it was answered with the task the cancelled call had made)."""
    wire = Wire(simulator_process, tmp_path)
    try:
        wire.handshake({"elicitation": {"form": {}}})
        call = {"name": "generate_image", "arguments": {**IMAGE, "wait_seconds": 0}}
        wire.send(json.dumps({"jsonrpc": "2.0", "id": 100, "method": "tools/call", "params": call}))
        form = wire.request("elicitation/create")
        yes = json.dumps({"jsonrpc": "2.0", "id": form["id"], "result": YES})
        cancel = json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 100}})
        wire.send(yes)
        time.sleep(0.01)  # the host's timeout fires as the person clicks Accept
        wire.send(cancel)
        time.sleep(0.5)  # the host shows "timed out"; a create sent all the same would have reached KIE by now
        assert not CREATE_PATHS & set(_kie_requests(simulator_process))  # nothing was sent to KIE
        wire.send(json.dumps({"jsonrpc": "2.0", "id": 101, "method": "tools/call", "params": call}))  # sent again
        again = wire.request("elicitation/create")
        wire.send(json.dumps({"jsonrpc": "2.0", "id": again["id"], "result": {"action": "decline"}}))
        declined = wire.answer(101)["result"]
    finally:
        assert wire.close() == 0
    assert again["params"]["message"] == form["params"]["message"]  # the same question, word for word
    assert declined["structuredContent"]["status"] != "completed", declined
    assert not CREATE_PATHS & set(_kie_requests(simulator_process))
