"""A person's "No" in the confirmation form holds against the agent's own quote.

The audit: on a client that shows forms, under the default KIE_APPROVAL=any, the person answered the spend form with
No; the (possibly prompt-injected) agent then called estimate_cost and the generate tool with its new quote_id, and
the request was created and charged, the person who had just said No never asked again. Now, for a quote's life after
a No (in the form, or the approval card's Decline), a quote_id of that same request does not approve it on its own on
a client that can show forms: the person is asked again in the form, told they declined it, and a yes there spends
once. Another request is not affected, the request is not auto-approved meanwhile, and once that time is over a quote
approves it again. A client that declines forms on its own without showing them (Codex) is not taken for a person's
No (``test_promise_spend``'s test of it).

At its edges (a review of the first version): a No carried by a 2026-07-28 request after its question expired is
still a No (never an auto approval, nor the agent's quote in its place; only a late yes is too late); a question shown
again keeps the moment it was first shown, so the No stops every call approved after the person first saw it; a host
that declares forms but refuses kie-mcp's approves with the quote it is handed; and the words say what holds on the
client asking (the estimate's quote, a dialog declined, a create already sent, a yes and a No to one question).

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

from .conftest import answering, refusing_forms, text_of
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


# -- at its edges: a late answer, a question shown twice, a host that refuses the form, the words ------------------


async def asked_first(client: Any, arguments: dict[str, Any]) -> Any:
    """The first round of a 2026-07-28 call that asks: its questions, not yet answered."""
    first = await client.session.call_tool("generate_image", arguments, allow_input_required=True)
    assert getattr(first, "input_requests", None), first
    return first


def said(first: Any, confirm: bool) -> dict[str, ElicitResult]:
    return {key: ElicitResult(action="accept", content={"confirm": confirm}) for key in first.input_requests}


@pytest.mark.parametrize("mode", ["auto"])  # an answer carried by a retried request: the 2026-07-28 era's
async def test_a_no_carried_after_its_question_expired_is_a_no_never_an_auto_approval(connect, controls):
    """The review's money case: asked again after a lapsed No, under auto-approval, the person answers No once the
    question's time is over. The request carrying that No was auto-approved and created; it is the person's No."""
    async with connect(elicitation=answering(confirm=False)) as client:  # auto-approval off here
        await client.call_tool("generate_image", IMAGE)
    limits = {"auto_approve_credits": 100, "quote_ttl_seconds": 1.0, "confirm_timeout_seconds": 1.0}
    async with connect(elicitation=answering(), **limits) as client:  # answers only as this test says
        first = await asked_first(client, IMAGE)  # the first No is still within its second: asked, not auto-approved
        await anyio.sleep(1.2)  # the person thinks; the question (and the first No) expire meanwhile
        answered = await client.call_tool(
            "generate_image", IMAGE, input_responses=said(first, False), request_state=first.request_state
        )
    assert await controls.creates() == [], text_of(answered)
    assert answered.structured_content["status"] == "declined", text_of(answered)
    assert "The user said no in the confirmation form" in text_of(answered), text_of(answered)
    assert "for the next 1 second " in text_of(answered), text_of(answered)  # the setting, never "0.0166667 minutes"


@pytest.mark.parametrize("mode", ["auto"])  # an answer carried by a retried request: the 2026-07-28 era's
async def test_a_no_carried_after_its_question_expired_holds_against_the_agent_s_own_quote(connect, controls):
    """The review's second money case: no auto-approval; the late No was answered "got no answer ... call again with
    quote_id" and never recorded, and the agent's own estimate then spent. It is recorded as the No it is: the
    estimate says so and the agent's quote brings the form back."""
    async with connect(elicitation=answering(), confirm_timeout_seconds=1.0) as client:
        first = await asked_first(client, IMAGE)
        await anyio.sleep(1.2)
        answered = await client.call_tool(
            "generate_image", IMAGE, input_responses=said(first, False), request_state=first.request_state
        )
        estimate = (await client.call_tool("estimate_cost", IMAGE)).structured_content
        agent = await client.session.call_tool(
            "generate_image", {**IMAGE, "quote_id": estimate["quote"]["quote_id"]}, allow_input_required=True
        )
    assert answered.structured_content["status"] == "declined", text_of(answered)
    assert "no answer within" not in text_of(answered), text_of(answered)
    assert "The user declined this very request in the confirmation form" in estimate["message"], estimate
    assert getattr(agent, "input_requests", None), agent  # asked again: the quote is no yes of the person's
    assert await controls.creates() == []


@pytest.mark.parametrize("mode", ["auto"])  # an answer carried by a retried request: the 2026-07-28 era's
async def test_a_yes_carried_after_its_question_expired_is_too_late_in_the_setting_s_own_words(connect, controls):
    """Only a late yes is too late: nothing is created, and a timeout set under a minute reads in seconds."""
    async with connect(elicitation=answering(), confirm_timeout_seconds=1.0) as client:
        first = await asked_first(client, IMAGE)
        await anyio.sleep(1.2)
        answered = await client.call_tool(
            "generate_image", IMAGE, input_responses=said(first, True), request_state=first.request_state
        )
    assert answered.structured_content["status"] == "cancelled", text_of(answered)
    assert "got no answer within 1 second," in text_of(answered), text_of(answered)
    assert await controls.creates() == []


async def test_a_no_stops_a_call_approved_after_the_question_was_first_shown_though_it_was_shown_again(
    connect, controls, tmp_path
):
    """The review's t7: the person's form is open; the agent sends the same request with its own quote (uploading),
    then once more without one, which puts the same question again. The No to the first form stopped that quote's
    call only when nobody showed the question again: it is the first showing that counts."""
    picture(tmp_path)
    request = {**EDIT, "wait_seconds": 20}
    calls: dict[str, Any] = {}
    shown: list[str] = []
    first_shown, again_shown, say_no, quoted_done = anyio.Event(), anyio.Event(), anyio.Event(), anyio.Event()

    async def person(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        shown.append(params.message)
        if len(shown) == 1:  # the first form: answered No once the same question was shown again
            first_shown.set()
            await say_no.wait()
        elif len(shown) == 2:  # the second showing: left open until the quote's call has ended, then dismissed
            again_shown.set()
            await quoted_done.wait()
            return ElicitResult(action="cancel")
        # (2026-07-28: the first form's answer comes back to a question since shown with other words, the quote's
        # call on its way, so it is put again; the person says No again)
        return ElicitResult(action="accept", content={"confirm": False})

    async with connect(elicitation=person) as client:
        quote = await quote_of(client, request)
        await controls.fault("upload", kind="slow", seconds=3.0)

        async def call(name: str, arguments: dict[str, Any]) -> None:
            calls[name] = await client.call_tool("generate_image", arguments)
            if name == "quoted":
                quoted_done.set()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(call, "asked", request)
                await first_shown.wait()
                group.start_soon(call, "quoted", {**request, "quote_id": quote})
                while not any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"]):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
                group.start_soon(call, "shown_again", request)
                await again_shown.wait()
                say_no.set()
    assert len(shown) >= 2, shown
    assert calls["asked"].structured_content["status"] == "declined", text_of(calls["asked"])
    assert calls["quoted"].structured_content["status"] == "failed", text_of(calls["quoted"])
    assert "declined this spend in the confirmation form before its create was sent" in text_of(calls["quoted"])
    assert await controls.creates() == []


@pytest.mark.parametrize(
    "mode", ["legacy"]
)  # a form refused mid-call: the handshake era's (2026's client fails its call)
async def test_a_host_that_refuses_the_form_can_approve_with_the_card_s_quote_after_a_decline(connect, controls):
    """The review's t3: an MCP Apps host that declares forms and refuses kie-mcp's. After a Decline on the card,
    every Approve asked again in the form, was refused again, and came back saying to pass the quote_id, which could
    not work for ten minutes. The refused form is now decided as on a client without forms: the card's quote, issued
    after the Decline, approves once, and the words say that is how this client approves."""
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with connect(refusing_forms, extensions=[apps]) as client:
        card = (await client.call_tool("estimate_cost", IMAGE)).meta[CARD_KEY]
        await client.call_tool("decline_quote", {"quote_id": card["quote_id"]})
        card = (await client.call_tool("estimate_cost", IMAGE)).meta[CARD_KEY]
        assert card["binds"], card  # a host that declares forms: the card's Approve binds and the gate asks
        refused = await client.call_tool("generate_image", {**IMAGE, "bind_quote_id": card["quote_id"]})
        back = refused.meta[CARD_KEY]
        assert back["confirm"] == "quote", back  # the card comes back with Approve passing its quote
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": back["quote_id"]})
        again = await client.call_tool("generate_image", {**IMAGE, "quote_id": back["quote_id"]})
    words = text_of(refused)
    assert refused.structured_content["status"] == "confirmation_required", words
    assert "The user declined this very request on the approval card" in words, words
    assert "This client does not show the form that would ask them" in words, words
    assert made.structured_content["status"] == "completed", text_of(made)
    assert again.structured_content["status"] != "completed", text_of(again)  # the quote buys it once
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("mode", ["legacy"])  # a form refused mid-call: the handshake era's
async def test_a_form_dismissed_while_a_no_holds_says_its_quote_brings_the_form_back_and_approves_nothing(
    connect, controls
):
    """The review's t6: asked again after a No, the form dismissed (or cancelled by a client on its own) came back
    "once they approve, call again with quote_id", though on this client that quote only brings the form back while
    the No holds. It says so; and only a refused form (above) is taken for a client without forms, never a dismissed
    one: the quote still approves nothing on its own."""
    seen: list[str] = []
    turns = iter([ElicitResult(action="accept", content={"confirm": False}), ElicitResult(action="cancel")])

    async def person(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params.message)
        return next(turns)

    async with connect(elicitation=person) as client:
        await client.call_tool("generate_image", IMAGE)
        dismissed = await client.call_tool("generate_image", {**IMAGE, "quote_id": await quote_of(client, IMAGE)})
    assert len(seen) == 2 and dismissed.structured_content["status"] == "confirmation_required", text_of(dismissed)
    assert "brings the form back here instead of approving it" in text_of(dismissed), text_of(dismissed)
    assert await controls.creates() == []


async def test_an_estimate_after_a_no_says_only_what_its_quote_does_on_the_client_asking(connect, controls):
    """The review's t6: after a No, an estimate on a client that shows forms said both "quote_id approves exactly this
    request once" and "on a client that shows forms this quote_id does not approve it on its own". Each client is
    told what its quote does: here it brings the form back; on a client without forms (another server on the
    workspace) it approves once, after the user's yes."""
    async with connect(elicitation=answering(confirm=False)) as client:
        await client.call_tool("generate_image", IMAGE)
        shows = (await client.call_tool("estimate_cost", IMAGE)).structured_content["message"]
    async with connect() as client:  # no forms
        plain = (await client.call_tool("estimate_cost", IMAGE)).structured_content["message"]
    assert "does not approve it on its own" in shows and "approves exactly this request once" not in shows, shows
    assert "asks the user again in the form" in shows, shows
    assert "approves exactly this request once" in plain and "does not approve it on its own" not in plain, plain
    assert "The user declined this very request in the confirmation form" in plain, plain
    assert await controls.creates() == []


async def test_a_dialog_declined_while_a_no_holds_says_what_works_on_this_client(connect, controls):
    """The review's t6: asked again after a No, the dialog declined (as a client that declines forms unseen does)
    advised "call estimate_cost and pass its quote_id", which on this client only brings the form back while the No
    holds. It says so, and when a quote approves again."""
    turns = iter([ElicitResult(action="accept", content={"confirm": False}), ElicitResult(action="decline")])

    async def person(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return next(turns)

    async with connect(elicitation=person) as client:
        await client.call_tool("generate_image", IMAGE)
        declined = await client.call_tool("generate_image", {**IMAGE, "quote_id": await quote_of(client, IMAGE)})
    words = text_of(declined)
    assert declined.structured_content["status"] == "declined", words
    assert "brings the form back here instead of approving it" in words, words
    assert "call estimate_cost after then and pass its quote_id" in words, words
    assert await controls.creates() == []


async def test_a_no_while_a_create_was_already_sent_says_first_it_may_have_been_charged(connect, controls):
    """The review's t9: the agent's own quote created while the person's form was open; their No then answered
    "Nothing was spent ..." and only after that "may have been charged". The charge leads, and "Nothing was spent" is
    not said."""
    shown, go = anyio.Event(), anyio.Event()

    async def person(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        shown.set()
        await go.wait()
        return ElicitResult(action="accept", content={"confirm": False})

    calls: dict[str, Any] = {}
    async with connect(elicitation=person) as client:
        quote = await quote_of(client, IMAGE)

        async def asked() -> None:
            calls["no"] = await client.call_tool("generate_image", IMAGE)

        async with anyio.create_task_group() as group:
            group.start_soon(asked)
            await shown.wait()
            calls["quoted"] = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote, "wait_seconds": 0})
            go.set()
    words = text_of(calls["no"])
    assert len(await controls.creates()) == 1, text_of(calls["quoted"])
    assert calls["no"].structured_content["status"] == "declined", words
    assert "Nothing was spent" not in words, words
    assert words.index("may have been charged") < words.index("Do not retry on your own"), words


async def test_a_yes_and_a_no_to_one_question_both_say_the_later_no_stopped_the_yes(connect, controls, tmp_path):
    """The review's t5: a host sent the same call twice at once; both forms show the one question; the person says
    yes in one and, while that call uploads, No in the other. The No stops the yes'd call before its create (nothing
    spent), and both answers say so: the yes'd one that the later No stopped it, the No's that it stopped the yes."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    both = anyio.Event()
    shown: list[str] = []
    order = iter([True, False])

    async def person(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        shown.append(params.message)
        if len(shown) == 2:
            both.set()
        await both.wait()
        confirm = next(order)
        if not confirm:
            await anyio.sleep(0.5)  # the yes'd call is uploading when the No comes
        return ElicitResult(action="accept", content={"confirm": confirm})

    results: list[Any] = []
    async with connect(elicitation=person) as client:

        async def call() -> None:
            results.append(await client.call_tool("generate_image", {**EDIT, "wait_seconds": 20}))

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            group.start_soon(call)
    by_status = {result.structured_content["status"]: text_of(result) for result in results}
    assert sorted(by_status) == ["declined", "failed"], by_status
    assert "also stopped the call of this request they had said yes to" in by_status["declined"], by_status
    assert "their later No stopped it" in by_status["failed"], by_status
    assert await controls.creates() == []


@pytest.mark.parametrize("mode", ["legacy"])  # a form refused mid-call: the handshake era's
async def test_a_refused_form_after_a_no_says_the_no_once_and_why_the_quote_did_not_approve(connect, controls):
    """A host that refuses the form after a Decline, handed a quote of another request while auto-approval would
    cover this one: the answer says the No once (the gate is told the caller says it) and why the quote approved
    nothing, and nothing is created."""
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with connect(refusing_forms, extensions=[apps], auto_approve_credits=100) as client:
        card = (await client.call_tool("estimate_cost", IMAGE)).meta[CARD_KEY]
        await client.call_tool("decline_quote", {"quote_id": card["quote_id"]})
        other = await quote_of(client, {**IMAGE, "prompt": "a green pear on a plate"})
        refused = await client.call_tool("generate_image", {**IMAGE, "quote_id": other})
    words = text_of(refused)
    assert refused.structured_content["status"] == "confirmation_required", words
    assert words.count("declined this very request") == 1, words
    assert "This client does not show the form that would ask them" in words, words
    assert f"quote {other} was for different arguments" in words, words
    assert await controls.creates() == []
