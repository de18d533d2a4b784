"""A person's "No" in the confirmation form holds against the agent's own quote.

The audit: on a client that shows forms, under the default KIE_APPROVAL=any, the person answered the spend form with
No; the (possibly prompt-injected) agent then called estimate_cost and the generate tool with its new quote_id, and
the request was created and charged, the person who had just said No never asked again. Now, for a quote's life after
a No (in the form, or the approval card's Decline), a quote_id of that same request does not approve it on its own on
a client that can show forms: the person is asked again in the form, told they declined it, and a yes there spends
once. Another request is not affected, the request is not auto-approved meanwhile, and once that time is over a quote
approves it again. A client that declines forms on its own without showing them (Codex) is not taken for a person's
No (``test_promise_spend``'s test of it).

Everything through the real MCP client in both protocol eras against the simulator; nothing of ours is mocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import anyio
import pytest
from mcp.client import ClientRequestContext, advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import ElicitRequestParams, ElicitResult

from kie_mcp.apps import CARD_KEY

from .conftest import answering, text_of
from .test_promise_host_retries import EDIT, picture

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits
VIDEO = {"model": "veo3", "prompt": "a fox in snow", "resolution": "1080p"}  # the audit's: 255 credits with its 1080p
ASKED_AGAIN = "You declined this same request"


def answers(said: Iterable[bool], seen: list[str]) -> Callable[..., Any]:
    """A form the person answers in turn with each of ``said`` (True: yes, False: an explicit No)."""
    turns = iter(said)

    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params.message)
        return ElicitResult(action="accept", content={"confirm": next(turns)})

    return callback


async def quote_of(client: Any, arguments: dict[str, Any]) -> str:
    return (await client.call_tool("estimate_cost", arguments)).structured_content["quote"]["quote_id"]


async def test_a_no_in_the_form_is_asked_again_when_the_agent_passes_its_own_quote(connect, controls):
    """The audit's run: No in the form, then estimate_cost and the generate call with its quote_id (in another
    session folder, which is the same spend). The person is asked again, told they declined it, and their second No
    holds: nothing is created. The first answer told the agent plainly not to retry on its own."""
    seen: list[str] = []
    async with connect(elicitation=answers([False, False], seen)) as client:
        first = await client.call_tool("generate_video", VIDEO)
        estimate = (await client.call_tool("estimate_cost", VIDEO)).structured_content
        quote = estimate["quote"]["quote_id"]
        again = await client.call_tool("generate_video", {**VIDEO, "quote_id": quote, "session": "retry"})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert await controls.creates() == [] and spent == 0, text_of(again)
    said = text_of(first)
    assert first.structured_content["status"] == "declined", said
    assert "The user said no in the confirmation form" in said, said
    assert "Do not retry on your own" in said and "asks them again in the form" in said, said
    assert "Codex" not in said  # a person's No, not a form declined unseen
    assert "The user declined this very request in the confirmation form at" in estimate["message"], estimate
    assert "does not approve it on its own" in estimate["message"] and estimate["auto_approved"] is False
    assert len(seen) == 2, seen  # asked again, never spent on the agent's own quote
    assert ASKED_AGAIN in seen[1] and ASKED_AGAIN not in seen[0], seen
    assert again.structured_content["status"] == "declined", text_of(again)


async def test_after_a_no_a_yes_in_the_form_asked_again_spends_once(connect, controls):
    """The person changes their mind: the agent's quote_id brings the form back, and the yes there creates once. The
    same quote sent again after that approves nothing more."""
    seen: list[str] = []
    async with connect(elicitation=answers([False, True, False], seen)) as client:
        await client.call_tool("generate_image", IMAGE)
        quote = await quote_of(client, IMAGE)
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        twice = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert len(await controls.creates()) == 1 and spent == 8, text_of(twice)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert ASKED_AGAIN in seen[1], seen
    assert twice.structured_content["status"] != "completed", text_of(twice)


async def test_a_no_in_the_form_holds_only_for_its_own_request_and_keeps_auto_approval_off(connect, controls):
    """A second server on the workspace, auto-approving up to 100 credits: the request the person said No to is asked
    again there (never auto-approved, nor approved by a quote), while another request is auto-approved as before."""
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen, confirm=False)) as client:  # auto-approval off here
        await client.call_tool("generate_image", IMAGE)
    async with connect(elicitation=answering(seen=seen, confirm=False), auto_approve_credits=100) as client:
        unquoted = await client.call_tool("generate_image", IMAGE)
        other = await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear"})
        other_quoted = await client.call_tool(
            "generate_image",
            {**IMAGE, "prompt": "a pear", "quote_id": await quote_of(client, {**IMAGE, "prompt": "a pear"})},
        )
    assert len(seen) == 2 and ASKED_AGAIN in seen[1], seen
    assert unquoted.structured_content["status"] == "declined", text_of(unquoted)
    assert other.structured_content["status"] == "completed", text_of(other)
    assert other_quoted.structured_content["status"] == "completed", text_of(other_quoted)
    assert len(await controls.creates()) == 2


async def test_a_no_in_the_form_holds_for_a_quote_s_life_then_a_quote_approves_again(connect, controls):
    """Asked again while the No is within a quote's life; once that is over, the agent's quote approves the request
    as any quote does (the person is not asked)."""
    seen: list[str] = []
    async with connect(elicitation=answers([False, False], seen), quote_ttl_seconds=1.5) as client:
        await client.call_tool("generate_image", IMAGE)
        within = await client.call_tool("generate_image", {**IMAGE, "quote_id": await quote_of(client, IMAGE)})
        await anyio.sleep(1.6)
        after = await client.call_tool("generate_image", {**IMAGE, "quote_id": await quote_of(client, IMAGE)})
    assert within.structured_content["status"] == "declined", text_of(within)
    assert len(seen) == 2, seen
    assert after.structured_content["status"] == "completed", text_of(after)
    assert len(await controls.creates()) == 1


async def test_a_decline_on_the_card_in_a_host_with_forms_asks_again_for_the_agent_s_quote(connect, controls):
    """An MCP Apps host that shows forms: the person declined the card; the agent's new estimate's quote_id brings
    the form back, saying so, and their No there holds."""
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    seen: list[str] = []
    async with connect(answering(seen=seen, confirm=False), extensions=[apps]) as client:
        card = (await client.call_tool("estimate_cost", IMAGE)).meta[CARD_KEY]["quote_id"]
        await client.call_tool("decline_quote", {"quote_id": card})
        again = await client.call_tool("generate_image", {**IMAGE, "quote_id": await quote_of(client, IMAGE)})
    assert len(seen) == 1 and ASKED_AGAIN in seen[0] and "approval card" in seen[0], seen
    assert again.structured_content["status"] == "declined", text_of(again)
    assert await controls.creates() == []


async def test_a_no_in_the_form_stops_a_call_the_agent_started_while_the_form_was_open(connect, controls, tmp_path):
    """The race: while the form is open, the agent sends the same request with its own quote_id; that call is still
    uploading its input when the person answers No. It sends no create: the No holds for the same spend."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    request = {**EDIT, "wait_seconds": 20}
    calls: dict[str, Any] = {}
    raced = anyio.Event()

    async def no_once_the_race_uploads(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        raced.set()
        with anyio.fail_after(20):
            while not any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"]):  # noqa: ASYNC110
                await anyio.sleep(0.02)
        return ElicitResult(action="accept", content={"confirm": False})

    async with connect(elicitation=no_once_the_race_uploads) as client:
        quote = await quote_of(client, request)

        async def asked() -> None:
            calls["asked"] = await client.call_tool("generate_image", request)

        async def race() -> None:
            await raced.wait()
            calls["race"] = await client.call_tool("generate_image", {**request, "quote_id": quote})

        async with anyio.create_task_group() as group:
            group.start_soon(asked)
            group.start_soon(race)
    assert calls["asked"].structured_content["status"] == "declined", text_of(calls["asked"])
    assert calls["race"].structured_content["status"] == "failed", text_of(calls["race"])
    assert "declined this spend in the confirmation form before its create was sent" in text_of(calls["race"])
    assert await controls.creates() == []


@pytest.mark.parametrize("mode", ["auto"])  # an answer carried by a retried request: the 2026-07-28 era's
async def test_the_person_s_answer_decides_the_request_that_carries_it_even_once_the_no_has_lapsed(connect, controls):
    """Asked again after a No, the person answers No once more, and the request carrying that answer comes back after
    the first No's time is over, when auto-approval would take the request: their answer decides it, and it is still
    No. The same answered request sent again is answered the same way, never as a used approval."""
    async with connect(elicitation=answering(confirm=False)) as client:  # auto-approval off here
        await client.call_tool("generate_image", IMAGE)
    async with connect(elicitation=answering(confirm=False), auto_approve_credits=100, quote_ttl_seconds=1.0) as client:
        first = await client.session.call_tool("generate_image", IMAGE, allow_input_required=True)
        assert getattr(first, "input_requests", None), first  # asked again, not auto-approved
        await anyio.sleep(1.1)  # the first No is a quote's life old
        no = {key: ElicitResult(action="accept", content={"confirm": False}) for key in first.input_requests}
        answered = await client.call_tool(
            "generate_image", IMAGE, input_responses=no, request_state=first.request_state
        )
        again = await client.call_tool("generate_image", IMAGE, input_responses=no, request_state=first.request_state)
    assert await controls.creates() == [], text_of(answered)
    assert answered.structured_content["status"] == "declined", text_of(answered)
    assert again.structured_content["status"] == "declined", text_of(again)
    assert "said no in the confirmation form" in text_of(again), text_of(again)
