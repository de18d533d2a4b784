"""A yes approves the figure the person was asked, "up to" the one the caps count when the question said so: when
what is counted rose while the question was open (or since a quote was given), nothing is sent and they are asked
again, and the approval card asked again says what the new quote says. A task made elsewhere, looked at here, is not
said to have a charge that "could not be read"."""

from __future__ import annotations

import pytest
from mcp.client import ClientRequestContext, advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import ElicitRequestParams, ElicitResult

from kie_mcp.apps import CARD_KEY

from .conftest import answering, text_of
from .test_live_wiring import offer_counted

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits by the price table
LIVE_ONLY = {"model": "brand/new-image", "prompt": "a red fox", "wait_seconds": 20}  # priced by KIE's live list alone
APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


async def charged_here(connect, prompt: str, credits: float) -> None:
    """KIE charges ``credits`` for one image made here, auto-approved: the caps count it from then on."""
    async with connect(auto_approve_credits=100, max_credits_per_call=100) as other:
        made = await other.call_tool("generate_image", {**IMAGE, "prompt": prompt, "wait_seconds": 20})
    assert made.structured_content["tasks"][0]["credits_charged"] == credits, text_of(made)


async def test_a_yes_to_up_to_30_never_spends_the_40_kie_charged_meanwhile(connect, controls, sim, mode):
    """The review: the form asked "Spend up to 30 credits" (KIE charged 30 for an 8-credit image); while it was open
    another call was charged 40; the yes went out and KIE's 40 was said "approved in the confirmation form". Asked
    inside the call (handshake era), the yes sends nothing and the answer asks again, saying what was asked and what
    is counted now; carried by a retried request (2026-07-28, priced afresh), the person is asked "up to 40" first."""
    sim.config.report_credits_consumed = True
    await controls.post("prices", {"nano-banana-2": 30})
    await charged_here(connect, "first apple", 30)
    asked: list[str] = []

    async def meanwhile(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:
            await controls.post("prices", {"nano-banana-2": 40})
            await charged_here(connect, "another apple", 40)
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(elicitation=meanwhile, auto_approve_credits=10, max_credits_per_call=100) as client:
        answered = await client.call_tool("generate_image", {**IMAGE, "prompt": "a fig", "wait_seconds": 20})
    said = text_of(answered)
    assert asked[0].startswith("Spend up to 30 credits"), asked
    if mode == "legacy":
        assert len(asked) == 1, asked
        assert answered.structured_content["status"] == "confirmation_required", said
        assert "The price changed while the confirmation was open: it said up to 30 credits" in said, said
        assert "up to 40 credits" in said, said
        assert answered.structured_content["quote"]["credits_counted"] == 40  # the new question: the new figure
        assert len(await controls.creates()) == 2  # the two other calls' only
    else:  # the retried request's question is another one, at the new figure, saying why, and its yes spends
        assert len(asked) == 2, asked
        assert asked[1].startswith("The price changed while the confirmation was open: it said up to 30 credits"), asked
        assert "Spend up to 40 credits" in asked[1], asked
        assert answered.structured_content["status"] == "completed", said


async def test_a_quote_of_up_to_30_does_not_approve_once_kie_charged_40(connect, controls, sim):
    """The quote_id path: a quote that asked "up to 30" is refused, unused, once the caps count 40, and a new quote
    is given; it said "it said 8 credits", the list price, not what was asked."""
    sim.config.report_credits_consumed = True
    await controls.post("prices", {"nano-banana-2": 30})
    await charged_here(connect, "first apple", 30)
    request = {**IMAGE, "prompt": "a fig"}
    async with connect(max_credits_per_call=100) as client:  # no forms: the quote_id is the approval
        old = (await client.call_tool("estimate_cost", request)).structured_content["quote"]
    await controls.post("prices", {"nano-banana-2": 40})
    await charged_here(connect, "another apple", 40)
    async with connect(max_credits_per_call=100) as client:
        raised = await client.call_tool("generate_image", {**request, "quote_id": old["quote_id"], "wait_seconds": 20})
    said = text_of(raised)
    assert (old["credits_total"], old["credits_counted"]) == (8, 30)
    assert raised.structured_content["status"] == "confirmation_required", said
    assert f"The price changed since quote {old['quote_id']} was given: it said up to 30 credits" in said, said
    assert raised.structured_content["quote"]["credits_counted"] == 40
    assert raised.structured_content["quote"]["quote_id"] != old["quote_id"]
    assert len(await controls.creates()) == 2  # the two other calls' only


@pytest.mark.parametrize("mode", ["legacy"])  # the form is asked inside the call
async def test_the_card_asked_again_after_the_price_rose_shows_the_new_quote_s_figures(connect, controls, sim):
    """The review: after "the price changed while the confirmation was open", the card was drawn from the plan the
    call began with (8 credits, 8 reserved) beside a quote of 16: card, text and quote disagreed."""
    sim.config.report_credits_consumed = True
    await controls.post("prices", {"nano-banana-2": 16})  # KIE now charges 16 where the price table says 8

    async def meanwhile(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        await charged_here(connect, "another apple", 16)
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(meanwhile, extensions=[APPS], auto_approve_credits=0, max_credits_per_call=100) as client:
        answered = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
    assert answered.structured_content["status"] == "confirmation_required", text_of(answered)
    quote = answered.structured_content["quote"]
    card = answered.meta[CARD_KEY]
    assert card["quote_id"] == quote["quote_id"]
    assert (card["credits"], card["asked"], card["counted"], card["reserved"]) == (16, 16, 16, 16), card
    assert len(await controls.creates()) == 1  # the other call's only


async def test_a_task_made_elsewhere_reporting_0_is_listed_without_an_unread_charge(connect, controls, sim, tmp_path):
    """The review: list_tasks said "KIE's charge for this task could not be read" of a task made in another
    workspace (nothing reserved or quoted here) reporting 0, where check_task says nothing of its cost."""
    sim.config.report_credits_consumed = True
    await controls.post("prices", {"nano-banana-2": 0})
    async with connect(workspace=tmp_path / "elsewhere", auto_approve_credits=100) as other:
        made = await other.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
    task_id = made.structured_content["tasks"][0]["task_id"]
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        listed = await client.call_tool("list_tasks", {})
    [line] = [line for line in text_of(listed).splitlines() if line.startswith(f"- {task_id} ")]
    assert "could not be read" not in text_of(checked), text_of(checked)
    assert "could not be read" not in line and "reserved" not in line, line


async def test_a_task_kie_reports_0_for_is_said_unread_by_generate_as_by_check_task(connect, controls, sim):
    """The review: generate's answer said "KIE does not report its charge" of a succeeded task KIE reported 0 for,
    while check_task then said "KIE reported 0 credits ... could not be read": the two answers disagreed."""
    sim.config.report_credits_consumed = True
    await controls.post("prices", {"nano-banana-2": 0})
    async with connect(auto_approve_credits=100) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    [cost] = [line for line in text_of(made).splitlines() if line.startswith("Cost:")]
    assert "KIE's charge for this task could not be read" in cost, cost
    assert "does not report" not in cost, cost
    assert "KIE's charge for this task could not be read" in text_of(checked), text_of(checked)


async def a_live_only_price_quoted_at_4_then_raised_to_500(connect, controls, transport, workspace) -> dict:
    """A model only KIE's live list prices (4 credits an image) quoted by a server whose per-call cap is 600 (the
    caps count that whole cap as a stand-in); KIE's live list then says 500. Returns the quote."""
    await controls.post("balance", {"credits": 100000})
    await offer_counted(controls, transport, workspace, "num_images", "4 credits per image.", charged=4)
    async with connect(max_credits_per_call=600, max_credits_per_day=5000) as client:
        quote = (await client.call_tool("estimate_cost", LIVE_ONLY)).structured_content["quote"]
    assert (quote["credits_total"], quote["credits_counted"]) == (4, 600), quote
    await offer_counted(controls, transport, workspace, "num_images", "500 credits per image.", charged=500)
    return quote


async def test_a_quote_of_a_live_only_price_never_approves_its_rise_once_the_per_call_cap_changed(
    connect, controls, transport, tmp_path
):
    """The person approved 4 credits; a server with another per-call cap (the .env edited and the server started
    again, or a second server on the workspace) took the old quote's stand-in of 600 for an "up to 600" that was
    asked, and spent the 500 KIE's live list says now, unasked."""
    quote = await a_live_only_price_quoted_at_4_then_raised_to_500(connect, controls, transport, tmp_path)
    async with connect(max_credits_per_call=1000, max_credits_per_day=5000) as client:
        used = await client.call_tool("generate_image", {**LIVE_ONLY, "quote_id": quote["quote_id"]})
    said = text_of(used)
    assert used.structured_content["status"] == "confirmation_required", said
    assert f"The price changed since quote {quote['quote_id']} was given: it said 4 credits" in said, said
    assert "now costs 500 credits" in said, said
    assert await controls.creates() == []


async def test_a_live_only_price_s_rise_past_its_quote_is_asked_of_the_person_after_the_per_call_cap_changed(
    connect, controls, transport, tmp_path
):
    """As above on a client that shows forms: the agent's quote of 4 credits does not approve the 500 KIE's live
    list says now; the person is asked, the question saying why, and their yes to it spends the 500 they read."""
    quote = await a_live_only_price_quoted_at_4_then_raised_to_500(connect, controls, transport, tmp_path)
    seen: list[str] = []
    async with connect(answering(seen=seen), max_credits_per_call=1000, max_credits_per_day=5000) as client:
        made = await client.call_tool("generate_image", {**LIVE_ONLY, "quote_id": quote["quote_id"]})
    assert len(seen) == 1, seen
    assert seen[0].startswith(f"The price changed since quote {quote['quote_id']} was given: it said 4 credits"), seen
    assert "Spend 500 credits" in seen[0], seen  # the price, never the stand-in of 1000 the caps count
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1
