"""Issue 8, promises 2 and 3: caps are hard even when the price is not known; one yes buys one spend.

Everything goes through the real MCP client (both protocol eras, unless a promise only exists in one) and the
simulator's HTTP interface; nothing of ours is mocked.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client import ClientRequestContext, advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.server.elicitation import render_elicitation_schema
from mcp.types import INVALID_PARAMS, ElicitRequestParams, ElicitResult, ErrorData
from PIL import Image

from kie_mcp.apps import CARD_KEY
from kie_mcp.config import Settings
from kie_mcp.journal import journal_path
from kie_mcp.sandbox import SANDBOX_API_KEY
from kie_mcp.server import create_server
from kie_mcp.spend.gate import FORM_DESCRIPTION, ConfirmSpend
from kie_mcp.spend.quotes import DECLINED

from .conftest import answering, confirmed_and_replayed, text_of, twice_at_once
from .test_live_wiring import feed_row, sync

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits
UNPRICED = {  # KIE bills reference videos by their length: no price is known before the task runs
    "prompt": "a paper boat",
    "model": "bytedance/seedance-2",
    "options": {"reference_video_urls": ["https://example.com/ref.mp4"]},
}
# ... and at most 500: 25 credits a second of the references (15 s at most, KIE's docs) and of the 5 s output.
UNPRICED_MOST = 500
NO_PRICE = {  # KIE lists no price for it, and the catalogue has no most: the whole per-call cap is reserved
    "prompt": "a dancer",
    "model": "wan/2-6-flash-image-to-video",
    "images": ["https://example.com/dancer.png"],
}


async def spent_today(client) -> float:
    return (await client.call_tool("check_credits", {})).structured_content["spent_today"]


# -- 2. caps hold whether or not the price is known ----------------------------------------------------------


async def test_unknown_price_reserves_the_per_call_cap_against_the_daily_cap(connect, controls):
    await controls.post("clock/speed", {"speed": 0})  # the first task keeps running: KIE has not said what it charged
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), max_credits_per_call=600, max_credits_per_day=1000) as client:
        first = await client.call_tool("generate_video", NO_PRICE)
        assert first.structured_content["status"] == "submitted", text_of(first)
        assert "(600 reserved against today's cap, about $3.00; the price is not known" in seen[0]
        assert await spent_today(client) == 600  # reserved while KIE has not said what it charged
        second = await client.call_tool("generate_video", {**NO_PRICE, "prompt": "a second dancer"})
    assert second.is_error
    assert "600 credits are reserved" in text_of(second) and "400" in text_of(second)
    assert len(seen) == 1  # refused before anyone was asked
    assert len(await controls.creates()) == 1


async def test_variations_of_an_unbounded_unknown_price_each_count_the_per_call_cap(connect, controls):
    """The audit: ten variations of a model with no price and no catalogue most shared one reservation of the
    per-call cap (600), and KIE charged 200 a clip: 2000 spent against a 600 cap. Each variation now counts the cap,
    so several are over it: refused, nothing sent, and the refusal says to ask for one variation per call."""
    await controls.post("balance", {"credits": 100000})
    await controls.post("prices", {"wan/2-6-flash-image-to-video": 200})  # what KIE charges a clip, unknown here
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), max_credits_per_call=600, max_credits_per_day=3000) as client:
        estimate = (await client.call_tool("estimate_cost", {**NO_PRICE, "variations": 10})).structured_content
        many = await client.call_tool("generate_video", {**NO_PRICE, "variations": 10})
        assert await spent_today(client) == 0
        one = await client.call_tool("generate_video", {**NO_PRICE, "wait_seconds": 0})
        assert await spent_today(client) == 600  # one variation: the whole per-call cap, as before
    assert estimate["within_caps"] is False and "6000" in estimate["cap_problem"], estimate
    assert many.is_error, text_of(many)
    refusal = text_of(many)
    assert "10 variations" in refusal and "6000" in refusal and "one variation per call" in refusal, refusal
    assert "Nothing was spent" in refusal
    assert one.structured_content["status"] == "submitted", text_of(one)
    assert len(seen) == 1  # the refused call asked nobody
    assert len(await controls.creates()) == 1


async def test_unbounded_unknown_variations_sent_at_once_never_pass_the_caps(connect, controls):
    """The audit: five calls at once, each approved by its own quote, ten variations each: KIE charged 10000 while
    the ledger counted 3000 (the daily cap). Each call is now refused on its own, and nothing reaches KIE."""
    await controls.post("balance", {"credits": 100000})
    await controls.post("prices", {"wan/2-6-flash-image-to-video": 200})
    answers: list[Any] = []
    async with connect(max_credits_per_call=600, max_credits_per_day=3000) as client:

        async def one(n: int) -> None:
            args = {**NO_PRICE, "variations": 10, "prompt": f"a dancer, take {n}"}
            quote = (await client.call_tool("estimate_cost", args)).structured_content["quote"]["quote_id"]
            answers.append(await client.call_tool("generate_video", {**args, "quote_id": quote, "wait_seconds": 0}))

        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(one, n)
        assert await spent_today(client) == 0
    assert len(answers) == 5 and all(a.is_error and "one variation per call" in text_of(a) for a in answers)
    assert await controls.creates() == []
    assert (await controls.get("state"))["balances"]["default"] == 100000


async def test_an_unknown_price_reserves_the_most_its_catalogue_rates_can_cost(connect, controls):
    """Seedance 2 bills its reference videos' seconds and the output's; KIE takes 15 s of references at most, so a
    request whose reference is not measured costs at most 25 x (15 + 5) = 500: that is reserved, not the per-call cap
    (a price the catalogue bounds fits under a daily cap the whole per-call cap would not)."""
    await controls.post("clock/speed", {"speed": 0})
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), max_credits_per_call=600, max_credits_per_day=500) as client:
        estimate = await client.call_tool("estimate_cost", UNPRICED)
        made = await client.call_tool("generate_video", UNPRICED)
        spent = await spent_today(client)
    assert estimate.structured_content["quote"]["credits_ceiling"] == UNPRICED_MOST
    assert made.structured_content["status"] == "submitted", text_of(made)
    assert f"({UNPRICED_MOST} reserved against today's cap, about $2.50: the most it can cost" in seen[0]
    assert spent == UNPRICED_MOST


async def test_max_credits_never_lowers_what_an_unknown_price_counts_against_the_caps(connect, controls):
    """A max_credits the agent chose used to be what an unknown price reserved: max_credits=0.01 counted 0.01 a call
    against a daily cap of 1000 while KIE charged its rate for each. KIE charges what it charges whatever the caller
    said, so the reservation is the per-call cap here (no catalogue figure), and max_credits only refuses."""
    await controls.post("config", {"report_credits_consumed": False})  # nothing KIE reports corrects the count
    await controls.post("clock/speed", {"speed": 0})  # the tasks keep running while the agent asks for more
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), max_credits_per_call=600, max_credits_per_day=1000) as client:
        estimate = await client.call_tool("estimate_cost", {**NO_PRICE, "max_credits": 0.01})
        results = [
            await client.call_tool("generate_video", {**NO_PRICE, "prompt": f"a dancer, take {n}", "max_credits": 0.01})
            for n in range(3)
        ]
        spent = await spent_today(client)
    assert estimate.structured_content["quote"]["credits_ceiling"] == 600
    assert "(600 reserved against today's cap, about $3.00" in seen[0]
    assert results[0].structured_content["status"] == "submitted", text_of(results[0])
    assert all(r.is_error and "600 credits are reserved" in text_of(r) for r in results[1:])
    assert spent == 600
    assert len(await controls.creates()) == 1


async def test_an_unknown_price_never_reserves_less_than_it_surely_costs(connect, controls):
    """Seedance 2 bills its reference videos' seconds plus the output's: with the reference unmeasured the price is
    unknown, but the 5 s output alone costs 125 credits a task. Ten variations, or a tiny max_credits, reserved a
    single ceiling (600, or 0.01) and let KIE charge 1250 past both caps in one approved call."""
    await controls.post("prices", {"bytedance/seedance-2": 125})
    async with connect(max_credits_per_call=600, max_credits_per_day=700) as client:
        many = await client.call_tool("estimate_cost", {**UNPRICED, "variations": 10})
        sent_many = await client.call_tool("generate_video", {**UNPRICED, "variations": 10})
        tiny = await client.call_tool("generate_video", {**UNPRICED, "max_credits": 0.01})
        one = await client.call_tool("estimate_cost", UNPRICED)
        spent = await spent_today(client)
    assert many.structured_content["within_caps"] is False
    assert "at least 1250 credits" in many.structured_content["cap_problem"]
    assert sent_many.is_error and "at least 1250 credits" in text_of(sent_many) and "per-call cap" in text_of(sent_many)
    assert tiny.is_error and "at least 125 credits" in text_of(tiny) and "max_credits" in text_of(tiny)
    assert one.structured_content["within_caps"] is True and one.structured_content["quote"]["credits_total"] is None
    assert await controls.creates() == [] and spent == 0


async def test_imagen_fast_asked_for_several_images_is_never_a_known_price_of_one(connect, controls):
    """KIE's list prices Imagen 4 Fast per request (4 credits) and says nothing of num_images above 1: four images
    were quoted as a known 4, auto-approved under 5, and the answer said "Submitted 1 image". Now the price is unknown
    and the caps count 4 an image; the form and the answer both say 4 images; one image stays a known 4."""
    await controls.post("clock/speed", {"speed": 0})
    four = {"prompt": "a lighthouse", "model": "google/imagen4-fast", "options": {"num_images": "4"}}
    one = {**four, "options": {"num_images": "1"}}
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=5) as client:
        estimate = (await client.call_tool("estimate_cost", four)).structured_content
        made = await client.call_tool("generate_image", {**four, "wait_seconds": 0})
        spent = await spent_today(client)
        single = await client.call_tool("generate_image", {**one, "wait_seconds": 0})
    assert estimate["quote"]["price_known"] is False and estimate["quote"]["credits_ceiling"] == 16
    assert estimate["auto_approved"] is False
    assert len(seen) == 1 and "UNKNOWN" in seen[0] and "(16 reserved against today's cap" in seen[0]
    assert "to make 4 images" in seen[0]
    assert text_of(made).startswith("Submitted 4 images to Imagen 4 Fast"), text_of(made)
    assert spent == 16
    assert single.structured_content["status"] == "submitted" and len(seen) == 1  # a known 4: auto-approved


async def test_known_price_over_max_credits_is_refused_before_anything(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        result = await client.call_tool("generate_image", {**IMAGE, "variations": 3, "max_credits": 20})
    assert result.is_error
    assert "24 credits" in text_of(result) and "max_credits" in text_of(result)
    assert seen == [] and await controls.creates() == []


async def test_unknown_price_is_refused_when_what_it_reserves_does_not_fit_today(connect, controls):
    async with connect(elicitation=answering(), max_credits_per_call=600, max_credits_per_day=500) as client:
        refused = await client.call_tool("generate_video", NO_PRICE)
        still = await client.call_tool("generate_video", {**NO_PRICE, "max_credits": 400})  # used to reserve 400
    assert refused.is_error and "600 credits are reserved" in text_of(refused)
    assert still.is_error and "600 credits are reserved" in text_of(still)
    assert await controls.creates() == []


async def test_what_kie_really_charged_replaces_the_reservation(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", UNPRICED)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        assert await spent_today(client) == UNPRICED_MOST
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
        assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
        charged = done.structured_content["task"]["credits_charged"]
        assert charged and charged < UNPRICED_MOST
        assert await spent_today(client) == charged


async def test_caps_of_a_million_or_more_are_written_in_full_wherever_a_figure_is_said(connect, controls):
    """The journey: with caps of a million, check_credits said "Caps: 1e+06 per call, 2.5e+06 per day" and the
    estimate "1e+06 left of the 1e+06 per day", where the auto-approve amount beside them read 1000000000 (Python's
    ``:g``). Every cap, spend, reservation and setting figure is written as the credits are: whole."""
    million = 1_000_000
    caps = {"max_credits_per_call": million, "max_credits_per_day": 2_500_000}
    async with connect(elicitation=answering(), auto_approve_credits=1_000_000_000, **caps) as client:
        made = await client.call_tool("generate_image", IMAGE)  # 8 credits, auto-approved
        credits = await client.call_tool("check_credits", {})
        estimate = await client.call_tool("estimate_cost", IMAGE)
        unpriced = await client.call_tool("estimate_cost", NO_PRICE)  # reserves the whole per-call cap
        several = await client.call_tool("generate_video", {**NO_PRICE, "variations": 2})  # 2 x the cap: refused
    said = [text_of(answer) for answer in (made, credits, estimate, unpriced, several)]
    assert "auto-approved: at or under KIE_AUTO_APPROVE_CREDITS=1000000000" in said[0], said[0]
    assert "Spent today through kie-mcp: 8 credits. Caps: 1000000 credits per call, 2500000 per day." in said[1], said[
        1
    ]
    assert "8 credits; 2499992 left of the 2500000 per day (per call at most 1000000)." in said[2], said[2]
    assert "1000000 reserved against today's cap" in said[3], said[3]
    assert several.is_error and "each counts the whole per-call cap of 1000000 " in said[4], said[4]
    assert [text for text in said if "e+0" in text] == []
    assert len(await controls.creates()) == 1


async def test_caps_beyond_any_spend_and_fractions_of_a_credit_are_written_without_e_notation_or_noise(
    connect, controls
):
    """The review: a cap of 1e300 (a setting takes any finite number, "no cap" meant) read in check_credits as 301
    digits of a float's noise ("Caps: 1000000000000000052504760255..."), and KIE_MAX_CREDITS_PER_CALL=0.00001, or a
    max_credits of as little, as "1e-05". A figure of 10**15 credits or more reads 1,000,000,000,000,000+; a fraction
    of a credit is written in fixed decimals, one under a millionth as "less than 0.000001"."""
    async with connect(max_credits_per_call=1e300, max_credits_per_day=1e300) as client:
        huge = [text_of(await client.call_tool("check_credits", {}))]
        huge.append(text_of(await client.call_tool("estimate_cost", IMAGE)))
    async with connect(max_credits_per_call=0.00001) as client:
        tiny = [text_of(await client.call_tool("check_credits", {}))]
        for extra in ({}, {"max_credits": 0.00001}, {"max_credits": 1e-9}):
            tiny.append(text_of(await client.call_tool("estimate_cost", {**IMAGE, **extra})))
    beyond = "1,000,000,000,000,000+"
    assert f"Caps: {beyond} credits per call, {beyond} per day." in huge[0], huge[0]
    assert f"{beyond} left of the {beyond} per day (per call at most {beyond})." in huge[1], huge[1]
    assert "Caps: 0.00001 credits per call, 3000 per day." in tiny[0], tiny[0]
    assert "(per call at most 0.00001)" in tiny[1], tiny[1]
    assert "over the max_credits of 0.00001 given with it" in tiny[2], tiny[2]
    assert "over the max_credits of less than 0.000001 given with it" in tiny[3], tiny[3]
    assert [text for text in huge + tiny if re.search(r"\d{16}|\de[+-]\d", text)] == []
    assert await controls.creates() == []


# -- 3. one yes, one spend ----------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["true", "yes", 1, "1"])
async def test_only_the_boolean_true_is_a_yes(connect, controls, answer):
    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept", content={"confirm": answer})

    async with connect(elicitation=callback) as client:
        result = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    assert result.structured_content["status"] == "declined", text_of(result)
    assert "not the boolean true" in text_of(result)
    assert await controls.creates() == []
    assert spent == 0


@pytest.mark.parametrize("content", [None, {}], ids=["accepted-with-no-content", "accepted-with-empty-content"])
async def test_a_confirmation_answer_that_cannot_be_read_hands_back_a_quote_and_is_never_declined(
    connect, controls, content
):
    """The audit: an answer nothing could be read from was "declined ... no quote was issued" in the 2025-11-25 era,
    which an agent relays as the user's no, and a bare tool error in the 2026-07-28 era. In both it approves nothing
    and says it could not be read, with a quote to approve in the chat (as a form nested too deep to read already
    was); that quote then approves the request."""

    async def unreadable(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept", content=content)

    async with connect(elicitation=unreadable) as client:
        result = await client.call_tool("generate_image", IMAGE)
        assert await controls.creates() == []
        quote = (result.structured_content or {}).get("quote") or {}
        approved = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote.get("quote_id")})
    assert not result.is_error, text_of(result)
    assert "Resolver" not in text_of(result) and "kie_mcp" not in text_of(result), text_of(result)
    assert result.structured_content["status"] == "confirmation_required", text_of(result)
    assert "could not be read" in text_of(result) and "declined" not in text_of(result), text_of(result)
    assert approved.structured_content["status"] == "completed", text_of(approved)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize(
    ("content", "named"), [({"confirm": True, "x": 1}, "(x)"), ({"confirm": True, "b": "", "a": None}, "(a, b)")]
)
async def test_a_yes_with_fields_the_form_did_not_ask_is_no_yes_and_says_which(connect, controls, content, named):
    """The audit: ``{"confirm": true, "x": 1}`` was a yes (pydantic ignored the field), while the answer to an
    unreadable form said answers with fields the form did not ask are refused. They are, in both eras, by name."""

    async def padded(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept", content=content)

    async with connect(elicitation=padded) as client:
        result = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    assert result.structured_content["status"] == "declined", text_of(result)
    assert f"had fields the form did not ask {named}, so it is not a yes" in text_of(result), text_of(result)
    assert await controls.creates() == []
    assert spent == 0


async def test_a_client_that_refuses_its_own_form_gets_the_quote_and_nothing_is_spent(connect, controls, mode):
    """A client that declares forms and then answers elicitation/create with an error (handshake era) is treated as
    a client without forms: confirmation_required with the quote, which approves the call once repeated."""

    async def refusing(context: ClientRequestContext, params: ElicitRequestParams) -> ErrorData:
        return ErrorData(code=-32601, message="Method not found")

    if mode != "legacy":
        pytest.skip("in the 2026-07-28 era the form travels with the answer; the client fails its own call")
    async with connect(elicitation=refusing) as client:
        asked = await client.call_tool("generate_image", IMAGE)
        assert asked.structured_content["status"] == "confirmation_required", text_of(asked)
        assert "could not show the confirmation form" in text_of(asked) and "Method not found" in text_of(asked)
        assert await controls.creates() == []
        quote_id = asked.structured_content["quote"]["quote_id"]
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote_id})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1


async def test_an_unanswered_confirmation_ends_as_cancelled_with_a_quote(connect, controls):
    async def slow_user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        await anyio.sleep(0.6)
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(elicitation=slow_user, confirm_timeout_seconds=0.3) as client:
        result = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    assert result.structured_content["status"] == "cancelled", text_of(result)
    assert "no answer within" in text_of(result) and text_of(result).count("Nothing was spent") == 1
    assert result.structured_content["quote"]["quote_id"].startswith("q_")
    assert await controls.creates() == []
    assert spent == 0


async def test_a_replayed_confirmation_never_creates_a_second_task(connect, controls, mode):
    if mode != "auto":
        pytest.skip("only the 2026-07-28 era carries the confirmation inside a retried request")
    async with connect(elicitation=answering()) as client:
        done, again = await confirmed_and_replayed(client, "generate_image", IMAGE)
        spent = await spent_today(client)
    assert done.structured_content["status"] == "completed", text_of(done)
    assert len(await controls.creates()) == 1  # the replay created nothing
    assert "already used" in text_of(again)
    task_id = done.structured_content["tasks"][0]["task_id"]
    assert [t["task_id"] for t in again.structured_content["tasks"]] == [task_id]  # the earlier result
    assert spent == 8


async def test_the_question_s_quote_cannot_be_passed_as_quote_id(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        await client.call_tool("generate_image", IMAGE)
    asked = seen[0].rsplit("(confirmation ", 1)[1].split(")", 1)[0]
    async with connect() as client:  # a client without forms: a quote_id is the only way to approve
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": asked})
    assert result.structured_content["status"] == "confirmation_required"
    assert "only the user's answer" in text_of(result)
    assert await controls.creates() == []


def answering_once_both_asked(seen: list[str]) -> Callable[..., Any]:
    """A form answerer that says yes to each question only once two have been asked: the person meets both forms
    open at once, as two identical calls at once show them, whatever order a loaded machine runs the calls in."""
    both = anyio.Event()

    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params.message)
        if len(seen) == 2:
            both.set()
        with anyio.fail_after(30):  # a second question that never comes fails the test, never hangs it
            await both.wait()
        return ElicitResult(action="accept", content={"confirm": True})

    return callback


async def test_one_confirmation_approves_one_call_even_when_two_race(connect, controls):
    """Two identical calls at once, both forms open before either is answered: both questions are bound to the same
    single-use quote, so the two yeses buy one create, and the other call says it spent nothing and why."""
    seen: list[str] = []
    async with connect(elicitation=answering_once_both_asked(seen)) as client:
        results = await twice_at_once(client, "generate_image", IMAGE)
    assert len(seen) == 2 and seen[0] == seen[1], seen  # one question, one confirmation id, asked twice
    assert len(await controls.creates()) == 1
    assert [r.structured_content["status"] for r in results] == ["completed", "completed"], [*map(text_of, results)]
    confirmation = seen[0].rsplit("(confirmation ", 1)[1].split(")", 1)[0]
    used = f"This approval ({confirmation}) was already used, so this call created and charged nothing new."
    assert sum(used in text_of(r) for r in results) == 1, [*map(text_of, results)]
    made = [[task["task_id"] for task in r.structured_content["tasks"]] for r in results]
    assert made[0] == made[1] and len(made[0]) == 1, made  # the one task made, shown to both


@pytest.mark.parametrize("forms", [True, False], ids=["form", "no-form"])
async def test_a_call_held_while_its_twin_is_sent_warns_before_it_is_approved(connect, controls, forms):
    """Two identical calls at once, the second planned before the first spends and held while KIE reads its balance
    (the ``hold`` fault) until the first's create is made. Its question, or the quote a client without forms is
    handed, is then a new one, no longer bound to the quote the first used: it leads with the warning that approving
    pays a second time (it said nothing of it, and a yes paid twice unawares), and a person who reads it says no."""
    await controls.fault("credit", kind="hold", seconds=60)  # the first balance read: the second call's
    seen: list[str] = []

    async def reading(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params.message)
        if params.message.startswith("WARNING:"):
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"confirm": True})

    answers: dict[str, Any] = {}
    async with connect(elicitation=reading if forms else None) as client, anyio.create_task_group() as group:

        async def second() -> None:
            answers["second"] = await client.call_tool("generate_video", {**UNPRICED, "wait_seconds": 0})

        group.start_soon(second)
        try:
            with anyio.fail_after(20):
                while (await controls.get("faults"))["held"] == 0:  # noqa: ASYNC110 - the simulator is asked
                    await anyio.sleep(0.02)
            first = {**UNPRICED, "wait_seconds": 0}
            if not forms:  # the user approved the estimate's cost in the chat
                quote = (await client.call_tool("estimate_cost", UNPRICED)).structured_content["quote"]
                first["quote_id"] = quote["quote_id"]
            answers["first"] = await client.call_tool("generate_video", first)
            assert len(await controls.creates()) == 1
        finally:
            await controls.post("faults/release")
    assert answers["first"].structured_content["status"] == "submitted", text_of(answers["first"])
    warning = "approving it again makes it, and pays for it, a second time"
    said = text_of(answers["second"])
    if forms:
        assert len(seen) == 2 and warning not in seen[0], seen
        assert seen[1].startswith("WARNING: this exact request was already made at") and warning in seen[1], seen[1]
        assert answers["second"].structured_content["status"] == "declined", said
    else:
        assert answers["second"].structured_content["status"] == "confirmation_required", said
        assert said.startswith("WARNING: this exact request was already made at") and warning in said, said
        assert "Nothing was spent" in said
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("approval", ["any", "form"])
async def test_a_client_that_declines_forms_on_its_own_is_told_how_to_approve_in_the_chat(connect, controls, approval):
    """Codex with approval_policy "never" declines every form without showing it: the answer says the dialog was
    declined and, as the user may have seen nothing, how to approve in the chat (estimate_cost's quote_id), which
    then spends once; under KIE_APPROVAL=form, that only the client's dialog approves there."""
    async with connect(elicitation=answering(action="decline"), approval=approval) as client:
        declined = await client.call_tool("generate_image", IMAGE)
        assert declined.structured_content["status"] == "declined", text_of(declined)
        assert "confirmation dialog was declined" in text_of(declined) and "Codex" in text_of(declined)
        assert "estimate_cost" in text_of(declined) and "quote_id" in text_of(declined)
        assert ("KIE_APPROVAL=form" in text_of(declined)) == (approval == "form")
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        followed = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
    expected = "completed" if approval == "any" else "declined"
    assert followed.structured_content["status"] == expected, text_of(followed)
    assert len(await controls.creates()) == (approval == "any")


# -- KIE_APPROVAL=form: on a client with forms, only the person's answer spends ---------------------------------


@pytest.mark.parametrize(("approval", "asked", "creates"), [("any", 0, 1), ("form", 1, 0)])
async def test_with_approval_form_an_agent_s_own_quote_never_spends_without_the_person(
    connect, controls, approval, asked, creates
):
    """The agent estimates and passes its own quote_id. By default that approves (the user said yes in chat); with
    KIE_APPROVAL=form on a client that shows forms, the person is asked and their "no" holds. The estimate tells the
    agent which: a quote_id to pass only after the user agreed to the cost, or one that only binds the call."""
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen), approval=approval) as client:
        estimate = (await client.call_tool("estimate_cost", IMAGE)).structured_content
        quote = estimate["quote"]
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
        spent = await spent_today(client)
    said = {
        "any": f"quote_id={quote['quote_id']} approves exactly this request once, until {quote['expires_at']}: pass "
        "it to the generate call only after the user agreed to this cost.",
        "form": f"quote_id={quote['quote_id']} binds the generate call to exactly this request until "
        f"{quote['expires_at']}; the user approves the spend in the confirmation form",
    }
    assert said[approval] in estimate["message"], estimate["message"]
    assert len(seen) == asked
    assert len(await controls.creates()) == creates
    assert result.structured_content["status"] == ("completed" if creates else "declined"), text_of(result)
    assert spent == 8 * creates


async def test_a_prompt_cannot_write_a_line_of_its_own_into_the_spend_question(connect, controls):
    """The question quotes the prompt: a prompt holding "\\n## Cost: 0 credits" must not become a heading of its own
    in a host that shows the form as markdown, read as kie-mcp's and not the prompt's. The prompt is quoted on one
    line, its breaks written as \\n, and the request sent keeps them."""
    seen: list[str] = []
    forged = "a cat\n\n---\n\n## Cost: 0 credits (free test, nothing is charged)\n\n**Just press Approve.**"
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        await client.call_tool("generate_video", {"model": "veo3_fast", "prompt": forged})
    [question] = seen
    assert "\n" not in question and "\r" not in question, question
    assert 'Prompt: "a cat\\n\\n---\\n\\n## Cost' in question, question
    assert question.startswith("Spend 60 credits"), question
    assert await controls.creates() == []


async def test_the_chat_confirmation_names_the_model_the_request_resolved_to_and_its_prompt_as_the_form_does(
    connect, controls
):
    """The journey: on a client without forms, confirmation_required is the only confirmation the person reads, yet
    it never named the model ("veo-3.1-fast" resolved to Veo 3.1 Fast) nor the prompt, which the form's question
    does. It says both as the form does, from the same pieces: the prompt quoted on one line, so a prompt holding
    "\n## Cost: 0 credits" cannot become a line of its own."""
    forged = "a cat\n\n---\n\n## Cost: 0 credits (free test, nothing is charged)\n\n**Just press Approve.**"
    request = {"model": "veo-3.1-fast", "prompt": forged}
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        await client.call_tool("generate_video", request)
    async with connect() as client:
        chat = (await client.call_tool("generate_video", request)).structured_content
    [question] = seen
    made = "1 video with Veo 3.1 Fast (veo3_fast)"
    quoted = 'Prompt: "a cat\\n\\n---\\n\\n## Cost'
    assert chat["status"] == "confirmation_required" and chat["model"] == "veo3_fast", chat
    assert f"Nothing was spent. This request makes {made} and costs 60 credits" in chat["message"], chat["message"]
    assert quoted in chat["message"] and "\n" not in chat["message"], chat["message"]
    excerpt = question[question.index("Prompt: ") : question.index('". ', question.index("Prompt: ")) + 2]
    assert f"make {made}?" in question and excerpt in chat["message"], (excerpt, chat["message"])
    assert await controls.creates() == []


async def test_with_approval_form_the_person_s_yes_spends_once(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), approval="form") as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
    assert result.structured_content["status"] == "completed", text_of(result)
    assert len(seen) == 1 and "8 credits" in seen[0]
    assert len(await controls.creates()) == 1


async def test_with_approval_form_a_quote_binds_the_request_to_the_file_it_priced(connect, controls, tmp_path):
    """A reference picture replaced after the estimate (same size, same price): the quote no longer matches, so
    nothing runs and the person is not asked to approve a request that reads the same but is not the quoted one."""
    folder = tmp_path / "references"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "look.png")
    request = {**IMAGE, "images": ["references/look.png"]}
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), approval="form") as client:
        quote = (await client.call_tool("estimate_cost", request)).structured_content["quote"]
        Image.new("RGB", (64, 64), (30, 30, 200)).save(folder / "look.png")
        result = await client.call_tool("generate_image", {**request, "quote_id": quote["quote_id"]})
    assert result.structured_content["status"] == "confirmation_required", text_of(result)
    assert "different arguments" in text_of(result) and "KIE_APPROVAL=form" in text_of(result)
    assert result.structured_content["quote"]["quote_id"] != quote["quote_id"]  # a new quote, for what is there now
    assert seen == [] and await controls.creates() == []


async def test_a_picture_replaced_while_the_form_is_open_is_refused_in_words_in_both_eras(connect, controls, tmp_path):
    """The audit: in the 2026-07-28 era the answer comes back on a new request, which priced the replaced picture
    again (same size, same price) and asked about it in a question that reads the same, so a second yes sent bytes
    the person had never seen (the handshake era refused them at the upload). Both eras refuse the yes in words,
    with nothing uploaded, reserved or created; asked again, the new picture is approved on its own."""
    folder = tmp_path / "references"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "look.png")
    request = {**IMAGE, "images": ["references/look.png"]}
    seen: list[str] = []

    async def replaced_while_reading(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params.message)
        if len(seen) == 1:  # someone saves another picture over it while the person reads the form
            Image.new("RGB", (64, 64), (30, 30, 200)).save(folder / "look.png")
        return ElicitResult(action="accept", content={"confirm": True})

    async def uploads() -> int:
        return sum("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"])

    async with connect(elicitation=replaced_while_reading) as client:
        refused = await client.call_tool("generate_image", request)
        asked_then, uploaded_then = len(seen), await uploads()
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
        created_then = await controls.creates()
        again = await client.call_tool("generate_image", request)
    assert refused.is_error, text_of(refused)
    assert "look.png changed since it was priced" in text_of(refused) and "Ask again" in text_of(refused)
    assert asked_then == 1 and uploaded_then == 0 and spent == 0 and created_then == []
    assert again.structured_content["status"] == "completed", text_of(again)  # the new picture, asked about
    assert len(seen) == 2 and len(await controls.creates()) == 1


async def test_a_link_pointed_at_another_picture_while_the_form_is_open_never_sends_it_unasked(
    connect, controls, sim, tmp_path, mode
):
    """The review: in the 2026-07-28 era a question was found by the real path its files led to, so an input named
    through a symbolic link that was pointed at another picture while the form was open matched no question, and
    the yes to the first picture was followed by a second question (a person reads as the same). The answer is
    refused in words, as for a picture overwritten; the handshake era sends the very bytes approved."""
    folder = tmp_path / "references"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "red.png")
    Image.new("RGB", (64, 64), (30, 30, 200)).save(folder / "blue.png")
    (folder / "look.png").symlink_to("red.png")
    request = {**IMAGE, "images": ["references/look.png"]}
    seen: list[str] = []

    async def pointed_elsewhere_while_reading(
        context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        seen.append(params.message)
        if len(seen) == 1:
            (folder / "look.png").unlink()
            (folder / "look.png").symlink_to("blue.png")
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(elicitation=pointed_elsewhere_while_reading) as client:
        result = await client.call_tool("generate_image", request)
    uploaded = [Image.open(io.BytesIO(u.data)).convert("RGB").getpixel((8, 8)) for u in sim.uploads.values()]
    if mode == "auto":  # the 2026-07-28 era: the answer comes back on a request that now sends the blue picture
        assert result.is_error and "look.png changed since it was priced" in text_of(result), text_of(result)
        assert len(seen) == 1 and uploaded == [] and await controls.creates() == []
    else:  # the handshake era: the upload reads the very file that was priced (the red picture)
        assert result.structured_content["status"] == "completed", text_of(result)
        assert len(seen) == 1 and len(uploaded) == 1 and uploaded[0][0] > 150 > uploaded[0][2], uploaded  # red


async def test_with_approval_form_a_replayed_answer_still_creates_once(connect, controls, mode):
    if mode != "auto":
        pytest.skip("only the 2026-07-28 era carries the confirmation inside a retried request")
    async with connect(elicitation=answering(), approval="form") as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        done, again = await confirmed_and_replayed(client, "generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
    assert done.structured_content["status"] == "completed", text_of(done)
    assert "already used" in text_of(again)
    assert len(await controls.creates()) == 1


async def test_with_approval_form_a_client_without_forms_still_approves_with_the_quote(connect, controls):
    """There is no form to ask: the quote the user approved in chat is the only way, as without the setting."""
    async with connect(approval="form") as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
    assert result.structured_content["status"] == "completed", text_of(result)
    assert len(await controls.creates()) == 1


async def test_a_second_confirmation_names_the_earlier_quote_by_where_it_came_from(connect, controls):
    """The audit: a client without forms called the same request twice, and the second answer offered the first
    answer's quote as "estimate_cost's quote", though estimate_cost was never called. The earlier quote is named as
    issued earlier for this very request, whoever issued it; either one still approves the request."""
    async with connect() as client:  # no forms: each call answers confirmation_required with a quote
        first = await client.call_tool("generate_image", IMAGE)
        second = await client.call_tool("generate_image", IMAGE)
        estimated = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        third = await client.call_tool("generate_image", IMAGE)
        made = await client.call_tool(
            "generate_image", {**IMAGE, "quote_id": first.structured_content["quote"]["quote_id"]}
        )
    earlier = first.structured_content["quote"]["quote_id"]
    assert second.structured_content["status"] == "confirmation_required", text_of(second)
    assert "estimate_cost's quote" not in text_of(second), text_of(second)
    assert f"the quote {earlier} issued earlier for this very request" in text_of(second), text_of(second)
    assert f"the quote {estimated} issued earlier for this very request" in text_of(third), text_of(third)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1


# -- 2. what KIE really charged -----------------------------------------------------------------------------


async def estimate(client, request: dict[str, Any]) -> dict[str, Any]:
    return (await client.call_tool("estimate_cost", request)).structured_content


async def test_a_real_charge_over_the_daily_cap_refuses_spends_until_tomorrow(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("prices", {"nano-banana-2": 40})  # KIE charges 40 where the table says 8
    async with connect(elicitation=answering(), max_credits_per_day=30) as client:
        first = await client.call_tool("generate_image", IMAGE)
        second = await client.call_tool("generate_image", {**IMAGE, "prompt": "a green apple"})
        credits = (await client.call_tool("check_credits", {})).structured_content
    assert first.structured_content["status"] == "completed"
    assert "over the daily cap" in text_of(first)
    assert second.is_error and "over the daily cap" in text_of(second)
    assert "because KIE charged more than was quoted" in text_of(second)
    assert credits["spent_today"] == 40
    assert "refused until midnight" in credits["spending_refused"]
    assert "refused until midnight" in credits["message"]
    assert len(await controls.creates()) == 1


async def test_a_daily_cap_lowered_below_today_s_spend_is_never_blamed_on_kie(
    connect, controls, settings, transport, mode, tmp_path, sim
):
    """Two images spent 16 credits, each charged as quoted; then the daily cap was lowered to 10 in the workspace's
    .env (or a second server with that cap started on the workspace). Every spend was refused "because KIE charged
    more than was quoted", and check_credits said the same: KIE charged exactly what was quoted. Now the refusal
    names the cap in force and where it was set."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    async with connect(auto_approve_credits=10) as client:
        for n in range(2):
            made = await client.call_tool("generate_image", {**IMAGE, "prompt": f"apple {n}", "wait_seconds": 20})
            assert made.structured_content["tasks"][0]["credits_charged"] == 8, text_of(made)
    (tmp_path / ".env").write_text("KIE_AUTO_APPROVE_CREDITS=10\nKIE_MAX_CREDITS_PER_DAY=10\n")
    lowered = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY}, cwd=tmp_path)
    started = replace(lowered, base_url=settings.base_url, upload_base_url=settings.upload_base_url, catalog_sync=False)
    async with Client(create_server(started, transport=transport), mode=mode) as client:
        refused = await client.call_tool("generate_image", {**IMAGE, "prompt": "a pear"})
        credits = (await client.call_tool("check_credits", {})).structured_content
    said, why = (
        text_of(refused),
        f"over the daily cap of 10 in force (KIE_MAX_CREDITS_PER_DAY, set in {tmp_path / '.env'})",
    )
    assert refused.is_error and f"Today's spend through kie-mcp (16 credits) is already {why}" in said, said
    assert f"raise KIE_MAX_CREDITS_PER_DAY in {tmp_path / '.env'}" in said, said
    assert why in credits["spending_refused"] and why in credits["message"], credits["message"]
    assert all("KIE charged more" not in text for text in (said, credits["message"]))
    assert credits["spent_today"] == 16 and len(await controls.creates()) == 2


@pytest.mark.parametrize("name", ["KIE_MAX_CREDITS_PER_CALL", "KIE_MAX_CREDITS_PER_DAY"])
async def test_a_cap_refusal_sends_the_user_to_where_the_cap_in_force_is_set(
    controls, settings, transport, mode, tmp_path, name
):
    """The audit: a cap of 5 in the workspace's .env and the Claude Desktop bundle's 600 and 3000 in the client's
    env block. The lowest value written holds, yet the refusal said "have the user raise KIE_MAX_CREDITS_PER_CALL in
    the server's configuration": the user raised it there, and the .env's 5 still held. The refusal names the .env
    where the cap in force is set, and check_credits shows where each cap comes from."""
    (tmp_path / ".env").write_text(f"{name}=5\n")
    given = {"KIE_MAX_CREDITS_PER_CALL": "600", "KIE_MAX_CREDITS_PER_DAY": "3000"}  # the bundle's, always passed
    loaded = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY, **given}, cwd=tmp_path)
    started = replace(loaded, base_url=settings.base_url, upload_base_url=settings.upload_base_url, catalog_sync=False)
    async with Client(create_server(started, transport=transport), mode=mode) as client:
        refused = await client.call_tool("generate_image", IMAGE)  # 8 credits
        credits = text_of(await client.call_tool("check_credits", {}))
    said, dotenv = text_of(refused), tmp_path / ".env"
    assert refused.is_error and f"raise {name} in {dotenv}, where the cap in force is set" in said, said
    assert "server's configuration" not in said, said
    block = "(set in the client's env block)"
    caps = (
        f"Caps: 5 credits per call (set in {dotenv}), 3000 per day {block}."
        if name == "KIE_MAX_CREDITS_PER_CALL"
        else f"Caps: 600 credits per call {block}, 5 per day (set in {dotenv})."
    )
    assert caps in credits, credits
    assert await controls.creates() == []


async def test_a_past_charge_raises_a_quote_but_never_lowers_it(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    async with connect(elicitation=answering()) as client:
        await controls.post("prices", {"nano-banana-2": 12})
        await client.call_tool("generate_image", IMAGE)
        raised = await estimate(client, IMAGE)
        await controls.post("prices", {"nano-banana-2": 6})
        await client.call_tool("generate_image", {**IMAGE, "quote_id": raised["quote"]["quote_id"]})
        after_cheaper = await estimate(client, IMAGE)
    assert raised["quote"]["credits_total"] == 12
    assert "what KIE charged in this workspace" in raised["quote"]["price_source"]
    assert after_cheaper["quote"]["credits_total"] == 8  # the table, never below it


@pytest.mark.parametrize("charged", [40, 3])  # a charge of 0 is no charge at all: see the section at the end
async def test_a_zero_or_far_off_charge_is_a_warning_not_a_price(connect, controls, charged, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("prices", {"nano-banana-2": charged})
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", IMAGE)
        quoted = await estimate(client, IMAGE)
    assert quoted["quote"]["credits_total"] == 8
    assert f"Warning: KIE charged {charged} credits" in quoted["message"]


async def test_a_past_charge_never_prices_a_request_that_depends_on_its_inputs(connect, controls):
    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", UNPRICED)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
        quoted = await estimate(client, UNPRICED)
    assert quoted["quote"]["credits_total"] is None  # KIE charged 50 before: not this request's price
    assert "charged" not in quoted["quote"]["price_source"]


async def test_auto_approval_is_decided_on_the_quote_the_user_would_see(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    seen: list[str] = []
    await controls.post("prices", {"nano-banana-2": 12})
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=10) as client:
        await client.call_tool("generate_image", IMAGE)  # 8 on the table: auto-approved, KIE charges 12
        assert seen == []
        await client.call_tool("generate_image", IMAGE)  # now quoted 12: over the limit, so the user is asked
    assert len(seen) == 1 and "12 credits" in seen[0]


async def test_a_charge_kie_does_not_report_is_measured_from_the_balance(connect, controls):
    await controls.post("config", {"report_credits_consumed": False})
    await controls.post("prices", {"bytedance/seedance-2": 300})  # between the least (125) and the most (500)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_video", {**UNPRICED, "wait_seconds": 20})
        spent = await spent_today(client)
    assert result.structured_content["status"] == "completed", text_of(result)
    assert result.structured_content["tasks"][0]["credits_charged"] == 300
    assert spent == 300


async def unpriced_while_the_balance_moves(client, controls, moved: float) -> Any:
    """generate_video of ``UNPRICED``, which KIE charges 300 and reports nothing of, the balance moved by ``moved``
    after KIE charged it and before it ends (a top-up, a refund of another task, another spend on the key)."""
    await controls.post("config", {"report_credits_consumed": False})
    await controls.post("prices", {"bytedance/seedance-2": 300})
    await controls.post("clock/speed", {"speed": 0})
    made: dict[str, Any] = {}

    async def generate() -> None:
        made["result"] = await client.call_tool("generate_video", {**UNPRICED, "wait_seconds": 30})

    async with anyio.create_task_group() as group:
        group.start_soon(generate)
        with anyio.fail_after(20):
            while (state := await controls.get("state"))["tasks"]["total"] < 1:  # noqa: ASYNC110 - KIE made, charged it
                await anyio.sleep(0.02)
        await controls.post("balance", {"credits": state["balances"]["default"] + moved})
        await controls.post("clock/speed", {"speed": 1000})
    return made["result"]


@pytest.mark.parametrize("moved", [250, -400])
async def test_a_balance_moved_by_something_else_while_an_unknown_price_runs_is_never_booked_as_its_charge(
    connect, controls, moved
):
    """The audit: Seedance 2 (at least 125, at most 500 by the catalogue) charged 300, KIE reporting nothing; the
    user topped up 250 meanwhile, and the answer said "Cost: 50 credits charged by KIE" and today's spend fell from
    the 500 reserved to 50, the daily cap 250 short. A measured 50 is under the least it costs, and 700 (another
    spend of 400 on the key) over what was reserved: neither is its charge, so the reservation stays counted and the
    answer says the charge could not be measured, and where to see it."""
    async with connect(elicitation=answering()) as client:
        result = await unpriced_while_the_balance_moves(client, controls, moved)
        spent = await spent_today(client)
        listed = text_of(await client.call_tool("list_tasks", {}))
    [task] = result.structured_content["tasks"]
    said = text_of(result)
    assert result.structured_content["status"] == "completed" and task["state"] == "succeeded", said
    assert task["credits_charged"] is None and task["charge_measured"] is False, said
    assert spent == UNPRICED_MOST
    assert "its charge could not be measured from the balance" in said and "https://kie.ai/logs" in said, said
    assert f"{UNPRICED_MOST} credits reserved stay counted" in said, said
    assert "charged by KIE" not in said and "charged)" not in listed, listed


async def test_a_charge_above_the_per_call_cap_of_a_model_with_no_upper_price_is_booked_as_measured(connect, controls):
    """The review: a model with no known price and no upper figure in the catalogue reserves the per-call cap (50);
    KIE charged 80 and nothing else moved the balance. The measured 80 was refused as "another spend on this API key",
    and today's spend stayed 30 under what KIE took. Above the cap is no bound where the catalogue names none."""
    no_price = {"prompt": "a dancer", "model": "wan/2-6-flash-image-to-video", "images": ["https://example.com/a.png"]}
    await controls.post("config", {"report_credits_consumed": False})
    await controls.post("prices", {"wan/2-6-flash-image-to-video": 80})
    before = (await controls.get("state"))["balances"]["default"]
    async with connect(elicitation=answering(), max_credits_per_call=50) as client:
        result = await client.call_tool("generate_video", {**no_price, "wait_seconds": 30})
        spent = await spent_today(client)
    after = (await controls.get("state"))["balances"]["default"]
    [task] = result.structured_content["tasks"]
    assert before - after == 80 and spent == 80, text_of(result)
    assert task["credits_charged"] == 80 and task["charge_measured"] is True, text_of(result)
    assert "another spend on this API key" not in text_of(result)


async def test_a_charge_measured_from_the_balance_is_never_said_to_be_kie_s(connect, controls):
    """A charge KIE does not report, measured from the balance, was told as "Cost: 300 credits charged by KIE", and
    listed as "(300 credits charged)": a figure KIE never gave. Every place that shows it says it was measured."""
    async with connect(elicitation=answering()) as client:
        result = await unpriced_while_the_balance_moves(client, controls, 0)
        [task] = result.structured_content["tasks"]
        checked = text_of(await client.call_tool("check_task", {"task_id": task["task_id"]}))
        listed = text_of(await client.call_tool("list_tasks", {}))
        resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
        one = json.loads((await client.read_resource(f"kie://tasks/{task['task_id']}")).contents[0].text)
        spent = await spent_today(client)
    said = text_of(result)
    assert all("charged by KIE" not in text and "credits charged" not in text for text in (said, checked, listed))
    measured = "300 credits, measured from the KIE balance before and after, as KIE does not report it"
    assert f"Cost: {measured} (" in said and f"Cost: {measured}." in checked, (said, checked)
    assert "(300 credits measured from the balance)" in listed, listed
    assert spent == 300 and [(t["credits_charged"], t.get("charge_measured")) for t in resource["tasks"]] == [
        (300, True)
    ]
    assert (
        (task["credits_charged"], task["charge_measured"])
        == (one["credits_charged"], one["charge_measured"])
        == (
            300,
            True,
        )
    )


async def test_a_charge_above_the_list_price_kie_does_not_report_is_measured_and_holds_the_daily_cap(connect, controls):
    """The chaos audit: KIE charged 20 for an image its list prices at 8 and reported nothing on the task (live Market
    records report no charge): three approved images each said "8 credits quoted and counted", and a daily cap of 30
    let 60 through. The balance read before and after measures it: today's spend counts 20, the next estimate is
    counted at up to 20, and the next request is refused over the cap before anything is sent."""
    await controls.post("config", {"report_credits_consumed": False})
    await controls.post("prices", {"nano-banana-2": 20})
    async with connect(elicitation=answering(), max_credits_per_day=30) as client:
        first = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        spent = await spent_today(client)
        quoted = await estimate(client, IMAGE)
        second = await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear", "wait_seconds": 20})
    [task] = first.structured_content["tasks"]
    assert (task["credits_charged"], task["charge_measured"]) == (20, True), text_of(first)
    assert "Cost: 20 credits, measured from the KIE balance before and after" in text_of(first), text_of(first)
    assert spent == 20
    assert "up to 20 credits" in quoted["message"], quoted["message"]
    assert second.is_error and "20 spent today" in text_of(second), text_of(second)
    assert len(await controls.creates()) == 1


async def test_a_quote_does_not_approve_a_price_a_charge_kie_did_not_report_raised(connect, controls):
    """The chaos audit: KIE charged 12 for an 8-credit image and reported nothing; a quote of 8 issued before then
    approved the same request again with no question, and counted 8. The charge measured from the balance raises the
    price as a reported one does: the old quote is asked about again, and nothing is spent on it."""
    await controls.post("config", {"report_credits_consumed": False})
    await controls.post("prices", {"nano-banana-2": 12})
    async with connect() as client:
        old = (await estimate(client, IMAGE))["quote"]
        other = {**IMAGE, "prompt": "a green pear"}
        learn = (await estimate(client, other))["quote"]
        learned = await client.call_tool("generate_image", {**other, "quote_id": learn["quote_id"], "wait_seconds": 20})
        before = await spent_today(client)
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"], "wait_seconds": 0})
        after = await spent_today(client)
    assert learned.structured_content["tasks"][0]["credits_charged"] == 12, text_of(learned)
    assert old["credits_total"] == 8 and before == 12
    assert result.structured_content["status"] == "confirmation_required", text_of(result)
    assert "now costs 12 credits" in text_of(result)
    assert after == before and len(await controls.creates()) == 1


async def credit_reads(controls) -> int:
    """The balance reads (GET /chat/credit) the simulator answered since its request log was last cleared."""
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return sum(1 for r in items if r["path"].endswith("/chat/credit"))


async def test_another_spend_on_the_key_is_never_booked_as_a_listed_price(connect, controls):
    """The attacker review: while an 8-credit image ran, another tool on the same API key spent 300; the call booked
    308 "measured from the balance", blew a daily cap of 200, and the next estimate said "up to 308" for 24 h. A fall
    beyond what the call's tasks can account for books nothing new: the quote stays counted, the answer says the
    balance fell by more and where to look, and the next estimate and call are the list's."""
    async with connect(elicitation=answering(), max_credits_per_day=200) as client:
        await controls.fault("status", kind="hold", seconds=30)
        out: dict[str, Any] = {}

        async def call() -> None:
            out["first"] = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            with anyio.fail_after(20):
                while not (await controls.get("faults")).get("held"):  # noqa: ASYNC110 (the first status check, held)
                    await anyio.sleep(0.02)
            balance = (await controls.get("state"))["balances"]["default"]
            await controls.post("balance", {"credits": balance - 300})  # another spender on the key
            await controls.post("faults/release")
        spent = await spent_today(client)
        quoted = await estimate(client, {**IMAGE, "prompt": "a pear"})
        second = await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear", "wait_seconds": 20})
    first = out["first"]
    [task] = first.structured_content["tasks"]
    assert task["credits_charged"] is None and not task["charge_measured"], text_of(first)
    assert "more than its task can account for" in text_of(first), text_of(first)
    assert "another spend on this API key" in text_of(first) and "https://kie.ai/logs" in text_of(first)
    assert "over the daily cap" not in text_of(first), text_of(first)
    assert spent == 8
    assert "308" not in quoted["message"] and quoted["quote"]["credits_total"] == 8, quoted["message"]
    assert not second.is_error and second.structured_content["status"] == "completed", text_of(second)
    assert len(await controls.creates()) == 2


async def test_a_failed_sibling_s_late_refund_is_never_booked_as_the_succeeded_task_s_charge(connect, controls, sim):
    """The attacker review: of two 8-credit images one failed, and KIE's refund of it had not landed when the call
    read the balance again; the call booked "16 credits, measured" for the one that succeeded, and the next estimate
    quoted a flat 16. A call measures only when every task of it succeeded: the quote stays counted."""
    sim.config.refund_on_fail = False  # the failed task's refund lands after the call's second read
    async with connect(elicitation=answering(), max_credits_per_day=200) as client:
        await controls.fault("create", kind="task_fail")
        result = await client.call_tool("generate_image", {**IMAGE, "variations": 2, "wait_seconds": 20})
        spent = await spent_today(client)
        quoted = await estimate(client, {**IMAGE, "prompt": "a pear"})
    states = sorted(t["state"] for t in result.structured_content["tasks"])
    assert states == ["failed", "succeeded"], text_of(result)
    assert all(not t["charge_measured"] for t in result.structured_content["tasks"]), text_of(result)
    assert "16 credits" not in text_of(result), text_of(result)
    assert spent == 8
    assert quoted["quote"]["credits_total"] == 8 and "16" not in quoted["message"], quoted["message"]


async def test_a_burst_of_calls_sends_no_balance_read_that_cannot_measure(connect, controls):
    """The attacker review: ten image calls at once sent ten more GET /chat/credit reads, and none could measure (each
    saw the others' tasks in its window). Other tasks of the workspace moving the balance are asked about before the
    read, which is skipped when they did: the burst sends at most one more read than before measuring listed prices
    (none), and a lone call still reads and measures a charge above the list."""
    async with connect(auto_approve_credits=10) as client:
        await client.call_tool("check_credits", {})
        await controls.http.delete("/__sim/requests")
        async with anyio.create_task_group() as group:
            for i in range(10):
                args = {**IMAGE, "prompt": f"apple {i}", "wait_seconds": 20}
                group.start_soon(client.call_tool, "generate_image", args)
        reads = await credit_reads(controls)
        assert await spent_today(client) == 80
    assert reads <= 1
    await controls.post("prices", {"nano-banana-2": 20})
    async with connect(elicitation=answering()) as client:  # a fresh server: its window starts after the burst
        lone = await client.call_tool("generate_image", {**IMAGE, "prompt": "a lone apple", "wait_seconds": 20})
    [task] = lone.structured_content["tasks"]
    assert (task["credits_charged"], task["charge_measured"]) == (20, True), text_of(lone)


# -- a price of 0 is no price; a quote approves the price it showed; a cap of 0 holds for unknown prices -------


async def test_a_price_of_zero_in_kie_s_live_list_is_never_auto_approved_and_reserves_its_ceiling(
    connect, controls, transport, tmp_path
):
    await controls.post("catalog/feed", {"description": feed_row("nano-banana-2"), "credits": 0})
    await sync(transport, controls, tmp_path)
    async with connect(auto_approve_credits=10) as client:  # no forms: only a quote_id could approve it
        estimate = (await client.call_tool("estimate_cost", IMAGE)).structured_content
        unasked = await client.call_tool("generate_image", IMAGE)
        listed = await client.call_tool("list_models", {"query": "nano banana 2"})
    async with connect(elicitation=answering(), auto_approve_credits=10, max_credits_per_day=20) as client:
        racing: list[Any] = []

        async def call(n: int) -> None:
            racing.append(await client.call_tool("generate_image", {**IMAGE, "prompt": f"apple {n}"}))

        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(call, n)
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=10, max_credits_per_day=1000) as client:
        asked = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
    assert estimate["quote"]["price_known"] is False and estimate["quote"]["credits_total"] is None
    assert estimate["auto_approved"] is False and estimate["quote"]["credits_ceiling"] == 600
    assert "not a real price" in estimate["quote"]["breakdown"]
    assert unasked.structured_content["status"] == "confirmation_required", text_of(unasked)
    assert asked.structured_content["status"] == "submitted" and "(600 reserved against today's cap" in seen[0]
    assert asked.structured_content["tasks"][0]["credits_reserved"] == 600  # like any unknown price, never 0
    assert all(r.is_error and "600 credits are reserved" in text_of(r) for r in racing)  # daily cap: 20
    assert len(await controls.creates()) == 1
    [line] = [line for line in text_of(listed).splitlines() if line.startswith("- nano-banana-2 ")]
    assert " 0 credits" not in line and "$0.00" not in line  # never shown as a price either


async def test_a_quote_does_not_approve_a_price_that_went_up_and_stays_unused(connect, controls, transport, tmp_path):
    row = feed_row("nano-banana-2")
    async with connect() as client:  # no forms: the quote_id is the approval
        old = (await estimate(client, IMAGE))["quote"]
    await controls.post("catalog/feed", {"description": row, "credits": 12})
    await sync(transport, controls, tmp_path)
    seen: list[str] = []
    async with connect() as client:
        raised = await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"]})
        spent = await spent_today(client)
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"]})
    assert old["credits_total"] == 8
    assert raised.structured_content["status"] == "confirmation_required", text_of(raised)
    assert "The price changed since quote" in text_of(raised) and "now costs 12 credits" in text_of(raised)
    assert raised.structured_content["quote"]["credits_total"] == 12  # the new price, to approve again
    assert raised.structured_content["quote"]["quote_id"] != old["quote_id"]
    assert seen[0].startswith("The price changed since quote") and "Spend 12 credits" in seen[0]  # a form asks again
    assert spent == 0 and await controls.creates() == []
    # Refused, the old quote was not used up: back at its price, it approves its request once.
    await controls.post("catalog/feed", {"description": row, "credits": 8})
    await sync(transport, controls, tmp_path)
    async with connect() as client:
        used = await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"]})
        spent = await spent_today(client)
    assert used.structured_content["status"] == "completed", text_of(used)
    assert spent == 8


async def test_the_question_about_a_changed_price_reads_the_same_once_the_old_quote_expired(
    connect, controls, transport, tmp_path
):
    """The 2026-07-28 protocol asks a question again when its answer comes back and compares the two: the price
    change that leads it must still be said when the old quote expired in between, or the user is asked again."""
    import sqlite3

    row = feed_row("nano-banana-2")
    async with connect() as client:
        old = (await estimate(client, IMAGE))["quote"]
    await controls.post("catalog/feed", {"description": row, "credits": 12})
    await sync(transport, controls, tmp_path)
    asked: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=asked)) as client:
        await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"]})
        with sqlite3.connect(tmp_path / ".kie-mcp" / "journal.sqlite3") as db:  # ten minutes later
            db.execute("UPDATE quotes SET expires = 0 WHERE quote_id = ?", (old["quote_id"],))
        await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"]})
    assert len(asked) == 2 and asked[0] == asked[1], asked
    assert asked[0].startswith("The price changed since quote")
    assert await controls.creates() == []


async def test_a_quote_does_not_approve_a_price_that_became_unknown(connect, controls, transport, tmp_path):
    async with connect() as client:
        old = (await estimate(client, IMAGE))["quote"]
    await controls.post("catalog/feed", {"description": feed_row("nano-banana-2"), "credits": None})
    await sync(transport, controls, tmp_path)
    async with connect() as client:
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"], "wait_seconds": 0})
        spent = await spent_today(client)
    assert result.structured_content["status"] == "confirmation_required", text_of(result)
    assert "no price known before it runs" in text_of(result) and "up to 600" in text_of(result)
    assert result.structured_content["quote"]["price_known"] is False
    assert spent == 0 and await controls.creates() == []


async def test_a_quote_does_not_approve_a_price_a_past_charge_raised(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("prices", {"nano-banana-2": 12})  # KIE charges 12 where the table says 8
    async with connect() as client:
        old = (await estimate(client, IMAGE))["quote"]
        other = {**IMAGE, "prompt": "a green pear"}
        learn = (await estimate(client, other))["quote"]
        await client.call_tool("generate_image", {**other, "quote_id": learn["quote_id"]})  # charged 12: learned
        before = await spent_today(client)
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"], "wait_seconds": 0})
        after = await spent_today(client)
    assert old["credits_total"] == 8
    assert result.structured_content["status"] == "confirmation_required", text_of(result)
    assert "now costs 12 credits" in text_of(result)
    assert after == before and len(await controls.creates()) == 1


async def test_a_quote_approves_a_price_that_went_down_and_counts_the_catalogue_s_until_kie_charges(
    connect, controls, transport, tmp_path, sim
):
    """A live price lower than the catalogue's is quoted, but the catalogue's is reserved (a cache edit or a typo on
    KIE's price page must not undercount a spend); KIE's reported charge then replaces it."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    async with connect() as client:
        old = (await estimate(client, IMAGE))["quote"]
    await controls.post("catalog/feed", {"description": feed_row("nano-banana-2"), "credits": 6})
    await controls.post("prices", {"nano-banana-2": 6})  # and KIE charges it
    await sync(transport, controls, tmp_path)
    async with connect() as client:
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": old["quote_id"], "wait_seconds": 20})
        spent = await spent_today(client)
    assert old["credits_total"] == 8
    assert result.structured_content["status"] == "completed", text_of(result)
    assert result.structured_content["tasks"][0]["credits_quoted"] == 6
    assert result.structured_content["tasks"][0]["credits_reserved"] == 8
    assert spent == 6


async def test_an_unknown_price_is_refused_under_a_per_call_cap_of_zero(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), max_credits_per_call=0, max_credits_per_day=1000) as client:
        known = await client.call_tool("generate_image", IMAGE)
        unknown = await client.call_tool("generate_video", UNPRICED)
        spent = await spent_today(client)
    assert known.is_error and "per-call cap of 0" in text_of(known)
    assert unknown.is_error, text_of(unknown)
    assert "no price known before it runs" in text_of(unknown) and "KIE_MAX_CREDITS_PER_CALL" in text_of(unknown)
    assert seen == [] and spent == 0  # refused before anyone was asked, costing nothing
    assert await controls.creates() == []


# -- estimate_cost prices what the generate call would send, also from the client's MCP roots ------------------


async def test_a_file_in_a_shared_mcp_root_is_priced_and_its_quote_approves_the_generate_call(
    settings, transport, controls, mode, tmp_path_factory
):
    """A picture in a folder the client shared as an MCP root: generate_image reads it, so estimate_cost prices it
    (it answered "outside the folders kie-mcp may read ... share its folder as an MCP root", though it was one),
    and its quote approves exactly that call, once."""
    import io

    from mcp import Client
    from mcp.types import ListRootsResult, Root
    from PIL import Image

    from kie_mcp.server import create_server

    shared = tmp_path_factory.mktemp("shared")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, "PNG")
    (shared / "face.png").write_bytes(buffer.getvalue())
    edit = {"prompt": "make it blue", "model": "google/nano-banana-edit", "images": [str(shared / "face.png")]}

    async def shared_folders(_: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=shared.resolve().as_uri(), name="shared")])

    server = create_server(settings, transport=transport)
    async with Client(server, mode=mode, list_roots_callback=shared_folders) as client:  # no forms: quote approves
        estimate = await client.call_tool("estimate_cost", edit)
        assert not estimate.is_error, text_of(estimate)
        quote_id = estimate.structured_content["quote"]["quote_id"]
        made = await client.call_tool("generate_image", {**edit, "quote_id": quote_id})
        again = await client.call_tool("generate_image", {**edit, "quote_id": quote_id})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert again.structured_content["status"] == "confirmation_required"
    assert len(await controls.creates()) == 1


# -- the spend gate against a buggy upstream, a retrying host and a slow answer -------------------------------

MARKET_CREATE, MARKET_STATUS = "/api/v1/jobs/createTask", "/api/v1/jobs/recordInfo"
Hook = Callable[[dict[str, Any]], None]


class Upstream(httpx2.AsyncBaseTransport):
    """The simulator behind a buggy upstream (a proxy, or KIE on a bad day): ``hooks`` may change the JSON answers of
    a path; with ``held``, a Market create waits there (``arrived`` is set) until ``held`` is set: still being sent."""

    def __init__(
        self, inner: httpx2.AsyncBaseTransport, hooks: dict[str, Hook] | None = None, held: anyio.Event | None = None
    ) -> None:
        self.inner, self.hooks, self.held, self.arrived = inner, hooks or {}, held, anyio.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.held is not None and request.url.path == MARKET_CREATE:
            self.arrived.set()
            await self.held.wait()
        response = await self.inner.handle_async_request(request)
        hook = self.hooks.get(request.url.path)
        if hook is None:
            return response
        body = json.loads(await response.aread())
        hook(body)
        return httpx2.Response(
            response.status_code, headers={"content-type": "application/json"}, content=json.dumps(body).encode()
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def served(
    settings: Any, upstream: httpx2.AsyncBaseTransport, mode: str, elicitation: Any = None, **overrides: Any
) -> AsyncIterator[Client]:
    """A server whose KIE is ``upstream``, and a real MCP client on it."""
    server = create_server(replace(settings, **overrides), transport=upstream)
    async with Client(server, mode=mode, elicitation_callback=elicitation) as client:
        yield client


class ReportedCharge:
    """Hooks that make KIE report ``charge`` as what its ``nth`` created task cost (0: the first; the simulator
    charged the real price), once that task has ended in ``state``."""

    def __init__(self, charge: float, state: str = "success", nth: int = 1) -> None:
        self.charge, self.state, self.nth, self.created = charge, state, nth, []

    def hooks(self) -> dict[str, Hook]:
        return {MARKET_CREATE: self.on_create, MARKET_STATUS: self.on_status}

    def on_create(self, body: dict[str, Any]) -> None:
        self.created.append((body.get("data") or {}).get("taskId"))

    def on_status(self, body: dict[str, Any]) -> None:
        data = body.get("data") or {}
        if self.created[self.nth : self.nth + 1] == [data.get("taskId")] and data.get("state") == self.state:
            data["creditsConsumed"] = self.charge


@pytest.mark.parametrize("charge", [0, -1000])
async def test_a_charge_of_zero_or_less_kie_reports_never_reopens_the_daily_cap(
    settings, transport, controls, mode, charge, sim
):
    """KIE charged 8 for each image, and reports 0 (or -1000) for the second: that is no charge, so its reservation
    stays counted, the record says why, and the first task's real charge is not erased. A cap of 16 holds two."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    upstream = Upstream(transport, (charges := ReportedCharge(charge)).hooks())
    async with served(settings, upstream, mode, auto_approve_credits=10, max_credits_per_day=16) as client:
        made = [
            await client.call_tool("generate_image", {**IMAGE, "prompt": f"apple {n}", "wait_seconds": 20})
            for n in range(3)
        ]
        spent = await spent_today(client)
    first, second = (result.structured_content["tasks"][0] for result in made[:2])
    assert [r.structured_content["status"] for r in made[:2]] == ["completed"] * 2, text_of(made[1])
    assert first["credits_charged"] == 8
    assert second["credits_charged"] is None and "charge for this task could not be read" in second["error"]
    assert made[2].is_error and "today's cap" in text_of(made[2])
    assert spent == 16 and len(await controls.creates()) == 2 == len(charges.created)


async def test_a_failed_task_s_refund_never_takes_back_more_than_it_reserved(settings, transport, controls, mode):
    """The second task fails and KIE reports a charge of -1000 for it: its own 8 credits come back, never the 8 the
    first task really cost."""
    upstream = Upstream(transport, ReportedCharge(-1000, state="fail").hooks())
    async with served(settings, upstream, mode, auto_approve_credits=10) as client:
        done = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        await controls.fault("create", kind="task_fail")
        failed = await client.call_tool("generate_image", {**IMAGE, "prompt": "a pear", "wait_seconds": 20})
        spent = await spent_today(client)
    assert done.structured_content["status"] == "completed", text_of(done)
    assert failed.structured_content["status"] == "failed", text_of(failed)
    assert spent == 8


async def test_a_charge_of_zero_for_an_unknown_price_keeps_its_reservation(settings, transport, controls, mode):
    """KIE reports 0 for a task whose price was not known: no charge, and not one to measure from the balance
    either; the reservation (the most it can cost) stays counted."""
    upstream = Upstream(transport, ReportedCharge(0, nth=0).hooks())
    async with served(settings, upstream, mode, elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**UNPRICED, "wait_seconds": 20})
        spent = await spent_today(client)
    [task] = made.structured_content["tasks"]
    assert task["state"] == "succeeded" and task["credits_charged"] is None, text_of(made)
    assert task["credits_reserved"] == UNPRICED_MOST and spent == UNPRICED_MOST


async def test_a_charge_of_zero_is_said_on_the_answer_and_never_becomes_a_price(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("prices", {"nano-banana-2": 0})  # KIE charges, and reports, 0
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        quoted = await estimate(client, IMAGE)
        spent = await spent_today(client)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert "could not be read: KIE reported 0 credits" in text_of(made)
    assert quoted["quote"]["credits_total"] == 8 and "charged" not in quoted["quote"]["price_source"]
    assert spent == 8  # the reservation stays counted: https://kie.ai/logs has the real charge


def repeat_first_create_answer() -> Hook:
    """A hook under which the second Market create is answered with the first one's task id (KIE made a second)."""
    first: list[Any] = []

    def hook(body: dict[str, Any]) -> None:
        data = body.get("data") or {}
        if first:
            data["taskId"] = first[0]
        else:
            first.append(data.get("taskId"))

    return hook


async def test_a_create_answered_with_a_task_already_in_the_journal_stays_counted_and_is_reported_unknown(
    settings, transport, controls, mode, sim
):
    """Only a Veo 1080p ask may name a task an earlier request started. A new image create answered with the first
    image's task id may have made (and been charged for) a second one: unknown, counted, never sent again, and the
    first task's record stands."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    upstream = Upstream(transport, {MARKET_CREATE: repeat_first_create_answer()})
    async with served(settings, upstream, mode, auto_approve_credits=10, max_credits_per_day=16) as client:
        first = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        second = await client.call_tool("generate_image", {**IMAGE, "prompt": "a pear", "wait_seconds": 20})
        third = await client.call_tool("generate_image", {**IMAGE, "prompt": "a plum", "wait_seconds": 20})
        credits = (await client.call_tool("check_credits", {})).structured_content
        listed = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
    task_id = first.structured_content["tasks"][0]["task_id"]
    assert first.structured_content["status"] == "completed", text_of(first)
    assert second.structured_content["status"] == "unknown", text_of(second)
    [unknown] = second.structured_content["tasks"]
    assert unknown["task_id"] is None and task_id in unknown["error"] and "https://kie.ai/logs" in text_of(second)
    assert "already had" not in text_of(second)
    assert third.is_error and "today's cap" in text_of(third)  # the second create stays counted: 16 of 16
    assert credits["spent_today"] == 16 and credits["unknown_creates"] == 1
    assert [(t["task_id"], t["state"], t["credits_charged"]) for t in listed] == [(task_id, "succeeded", 8)]
    assert len(await controls.creates()) == 2  # never sent again


async def test_a_used_quote_whose_create_may_have_reached_kie_gets_that_answer_not_a_new_quote(connect, controls):
    """The connection dropped after the quote's create was sent; the host sends the same call again. The answer is
    that create's unknown outcome (counted, see https://kie.ai/logs), never a fresh quote to pay for it twice."""
    await controls.fault("create", kind="drop_after_create")
    async with connect() as client:
        quote = (await estimate(client, IMAGE))["quote"]["quote_id"]
        first = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        again = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        spent = await spent_today(client)
    assert first.structured_content["status"] == "unknown", text_of(first)
    assert again.structured_content["status"] == "unknown", text_of(again)
    assert again.structured_content["quote"] is None and "quote_id=" not in text_of(again)
    assert "already used" in text_of(again) and "https://kie.ai/logs" in text_of(again)
    assert spent == 8 and len(await controls.creates()) == 1


async def test_the_same_request_after_an_unknown_create_is_never_auto_approved_and_says_it_may_pay_twice(
    connect, controls
):
    """A create whose outcome is unknown may have reached KIE and been charged. The same request sent again (its
    call answered, so no host retry) is a new spend: it must be asked, never auto-approved, and every answer about
    it (estimate, question, confirmation_required) leads with that warning."""
    await controls.fault("create", kind="drop_after_create")
    seen: list[str] = []
    async with connect(auto_approve_credits=10) as client:
        first = await client.call_tool("generate_image", IMAGE)  # auto-approved (8 credits): sent, outcome unknown
        priced = await estimate(client, IMAGE)
        again = await client.call_tool("generate_image", IMAGE)
        other = await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear"})  # not the same one
    async with connect(auto_approve_credits=10, elicitation=answering(seen=seen)) as asking:
        await asking.call_tool("generate_image", IMAGE)
    assert first.structured_content["status"] == "unknown", text_of(first)
    assert priced["auto_approved"] is False and "may have been created and charged" in priced["message"]
    assert again.structured_content["status"] == "confirmation_required", text_of(again)
    assert text_of(again).count("https://kie.ai/logs") >= 1 and "paid twice" in text_of(again)
    assert other.structured_content["status"] == "completed", text_of(other)
    assert seen and seen[0].startswith("WARNING: this exact request was already sent to KIE"), seen
    assert len(await controls.creates()) == 3  # the first, the pear, and the one the user said yes to after the warning


async def test_a_replayed_answer_whose_create_may_have_reached_kie_gets_that_answer_not_a_new_quote(
    connect, controls, mode
):
    if mode != "auto":
        pytest.skip("only the 2026-07-28 era carries the confirmation inside a retried request")
    await controls.fault("create", kind="drop_after_create")
    async with connect(elicitation=answering()) as client:
        done, again = await confirmed_and_replayed(client, "generate_image", IMAGE)
        spent = await spent_today(client)
    assert done.structured_content["status"] == "unknown", text_of(done)
    assert again.structured_content["status"] == "unknown", text_of(again)
    assert again.structured_content["quote"] is None and "https://kie.ai/logs" in text_of(again)
    assert spent == 8 and len(await controls.creates()) == 1


async def test_a_used_quote_back_while_its_create_is_still_being_sent_gets_no_new_quote(
    settings, transport, controls, mode
):
    held = anyio.Event()
    upstream = Upstream(transport, held=held)
    results: list[Any] = []
    async with served(settings, upstream, mode) as client:
        quote = (await estimate(client, IMAGE))["quote"]["quote_id"]

        async def first() -> None:
            results.append(await client.call_tool("generate_image", {**IMAGE, "quote_id": quote, "wait_seconds": 20}))

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await upstream.arrived.wait()  # the create is on its way to KIE, its answer not back
            again = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
            held.set()
        spent = await spent_today(client)
    assert again.structured_content["status"] == "unknown", text_of(again)
    assert again.structured_content["quote"] is None
    assert "still being sent" in text_of(again) and "https://kie.ai/logs" in text_of(again)
    assert results[0].structured_content["status"] == "completed", text_of(results[0])
    assert spent == 8 and len(await controls.creates()) == 1


@pytest.mark.parametrize("forms", [True, False], ids=["forms", "no-forms"])
async def test_a_quote_issued_before_the_same_request_was_sent_again_approves_nothing(
    connect, controls, tmp_path, forms
):
    """The spend audit: the agent held two quotes for one request; the first one's create got KIE's 500 (unknown:
    it may have been created and charged), and the second quote sent it again and paid twice, the warning arriving
    with the result. A quote issued before the same request was sent approves nothing: it is left unused, and the
    person is asked (or handed a fresh quote) with the warning first; that fresh quote, issued with the warning,
    approves it."""
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked, confirm=False) if forms else None) as client:
        first_quote = (await estimate(client, IMAGE))["quote"]["quote_id"]
        second_quote = (await estimate(client, IMAGE))["quote"]["quote_id"]
        await controls.fault("create", kind="code", code=500, msg="internal error")
        first = await client.call_tool("generate_image", {**IMAGE, "quote_id": first_quote})
        second = await client.call_tool("generate_image", {**IMAGE, "quote_id": second_quote})
        with sqlite3.connect(journal_path(tmp_path)) as db:
            [(used,)] = db.execute("SELECT used FROM quotes WHERE quote_id = ?", (second_quote,)).fetchall()
        if not forms:
            fresh = second.structured_content["quote"]["quote_id"]
            approved = await client.call_tool("generate_image", {**IMAGE, "quote_id": fresh})
        spent = await spent_today(client)
    warning = "WARNING: this exact request was already sent to KIE"
    assert first.structured_content["status"] == "unknown", text_of(first)
    assert used == (DECLINED if forms else 0)  # left unused, until the person's No in the form declined it
    if forms:
        assert len(asked) == 1 and asked[0].startswith(warning), asked
        assert second.structured_content["status"] == "declined", text_of(second)
        assert len(await controls.creates()) == 1 and spent == 8
    else:
        said = text_of(second)
        assert second.structured_content["status"] == "confirmation_required", said
        assert said.startswith(f"Quote {second_quote} was issued before this same request was sent to KIE"), said
        assert warning in said and fresh != second_quote
        assert approved.structured_content["status"] == "completed", text_of(approved)
        assert len(await controls.creates()) == 2 and spent == 16


async def test_an_earlier_quote_is_named_as_an_approval_only_when_the_request_was_not_sent_after_it(connect, controls):
    """The spend audit: confirmation_required offered a quote issued before the same request was made as one that
    "approves it too", and it did: passed, it paid a second time. Such a quote is no longer named, and approves
    nothing; the answer says what was made and when."""
    async with connect() as client:  # no forms: each call answers with a quote
        older = (await estimate(client, IMAGE))["quote"]["quote_id"]
        used = (await estimate(client, IMAGE))["quote"]["quote_id"]
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": used})
        again = await client.call_tool("generate_image", IMAGE)
        with_older = await client.call_tool("generate_image", {**IMAGE, "quote_id": older})
    task_id = made.structured_content["tasks"][0]["task_id"]
    assert made.structured_content["status"] == "completed", text_of(made)
    assert again.structured_content["status"] == "confirmation_required", text_of(again)
    assert older not in text_of(again) and "issued earlier for this very request" not in text_of(again)
    assert text_of(again).startswith("WARNING: this exact request was already made at") and task_id in text_of(again)
    assert with_older.structured_content["status"] == "confirmation_required", text_of(with_older)
    assert f"Quote {older} was issued before this same request was made at" in text_of(with_older)
    assert len(await controls.creates()) == 1


def expire_questions(settings: Any, at: float) -> None:
    """Move every confirmation question's expiry to ``at`` (epoch seconds), as time passing would."""
    with sqlite3.connect(journal_path(settings.workspace)) as db:
        db.execute("UPDATE quotes SET expires = ? WHERE kind = 'ask'", (at,))


def answering_after(seconds: float, before: Callable[[], None] = lambda: None) -> Callable[..., Any]:
    """A user who takes ``seconds`` to say yes (``before`` runs as they answer)."""

    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        await anyio.sleep(seconds)
        before()
        return ElicitResult(action="accept", content={"confirm": True})

    return callback


async def test_a_question_asked_again_gets_its_full_time_to_be_answered(connect, controls, settings):
    """An earlier call's question about the same request, declined, is asked again (the same confirmation) with
    little of its time left: the new question has the full time, so a yes within it runs the request once."""
    async with connect(elicitation=answering(action="decline")) as client:
        declined = await client.call_tool("generate_image", IMAGE)
    expire_questions(settings, time.time() + 1.0)  # the old question ends in a second
    async with connect(elicitation=answering_after(2.0), confirm_timeout_seconds=60) as client:
        result = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    assert declined.structured_content["status"] == "declined"
    assert result.structured_content["status"] == "completed", text_of(result)
    assert spent == 8 and len(await controls.creates()) == 1


async def test_a_yes_after_its_question_expired_is_cancelled_not_called_already_used(connect, controls, settings):
    async with connect(elicitation=answering_after(0, lambda: expire_questions(settings, 0))) as client:
        result = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    assert result.structured_content["status"] == "cancelled", text_of(result)
    assert "no answer within" in text_of(result) and "already used" not in text_of(result)
    assert spent == 0 and await controls.creates() == []


# -- the Cost line says what was spent, also when a create got no clear answer -------------------------------------


async def balance_spent(controls) -> float:
    return 5000.0 - (await controls.get("state"))["balances"]["default"]


@pytest.mark.parametrize("other", ["task_fail", "succeeds"])
async def test_a_create_with_no_clear_answer_is_never_reported_as_nothing_charged(connect, controls, other, sim):
    """The audit: two variations, one create dropped after KIE created (and charged) it, the other failed: the
    answer said "Cost: nothing charged" and "Partly done" while KIE had charged 8; with the other succeeding it said
    8 charged for the 16 KIE took. The line names the create with no clear answer, and what it may have cost."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.fault("create", kind="drop_after_create")
    if other == "task_fail":
        await controls.fault("create", kind="task_fail")
    async with connect(auto_approve_credits=100) as client:
        result = await client.call_tool("generate_image", {**IMAGE, "variations": 2, "wait_seconds": 10})
        spent = await spent_today(client)
    text = text_of(result)
    assert "nothing charged (the tasks failed" not in text, text
    assert "1 create got no clear answer and may have been charged (up to 8 credits" in text, text
    assert await balance_spent(controls) == spent == (8 if other == "task_fail" else 16)
    if other == "task_fail":
        assert result.structured_content["status"] == "unknown" and "Unclear" in text  # nothing made, 8 maybe paid
        assert "nothing counted for the other task (failed" in text
    else:
        assert "8 credits charged by KIE for the other task" in text


@pytest.mark.parametrize("code", [402, 422, 455])
async def test_a_create_kie_refused_costs_nothing_and_says_so(connect, controls, code):
    """The audit: a refused create (nothing created, the reservation released) read "Cost: 8 credits quoted and
    reserved; KIE's charge is recorded as each task ends", with 8 credits reserved on the task."""
    await controls.fault("create", kind="code", code=code)
    async with connect(auto_approve_credits=100) as client:
        result = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    text = text_of(result)
    assert "Cost: nothing charged (KIE created nothing; the reservation was released)" in text, text
    assert "quoted and reserved" not in text and spent == 0
    assert result.structured_content["tasks"][0]["credits_reserved"] == 0


async def test_a_quote_whose_every_create_kie_refused_is_still_good(connect, controls):
    """KIE refused the create (maintenance, 455: "try again in a few minutes"): the quote bought nothing, so the
    same request with the same quote_id goes through when tried again; it was "already used" before."""
    await controls.fault("create", kind="code", code=455)
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        refused = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        again = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        once_more = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
    assert refused.structured_content["status"] == "failed", text_of(refused)
    assert again.structured_content["status"] == "completed", text_of(again)
    assert once_more.structured_content["status"] == "confirmation_required"  # then used: one quote, one spend
    assert len(await controls.creates()) == 2  # the refused one and the one that went through


async def test_a_task_waiting_on_a_refused_status_check_says_why_in_the_text(connect, controls):
    """The audit: while KIE refused every status check (maintenance), generate_image's text said only "queued,
    about 58s left"; the reason was in the structured content alone, where agents rarely look."""
    async with connect(auto_approve_credits=100) as client:
        await controls.fault("status", times=-1, kind="code", code=455)
        result = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 1})
    task = result.structured_content["tasks"][0]
    assert task["state"] in ("queued", "running") and task["error"], task
    assert task["error"] in text_of(result), text_of(result)


@pytest.mark.parametrize("mode", ["legacy"])  # the 2026-07-28 era answers in a retried request, priced afresh
async def test_a_yes_to_a_form_whose_price_rose_while_it_was_open_spends_nothing(connect, controls, sim):
    """The audit: the form asked "Spend 8 credits?"; while the user read it, another call on the workspace was
    charged 16 for the same model and settings, so later quotes said 16. The yes was spent at 8 with no new
    question. The yes approves the price it showed: a higher one now is a new quote, with nothing sent."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("prices", {"nano-banana-2": 16})  # KIE now charges 16 where the price table says 8
    asked: list[str] = []
    async with connect(auto_approve_credits=20) as other:

        async def meanwhile(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
            asked.append(params.message)
            made = await other.call_tool("generate_image", {**IMAGE, "prompt": "another apple", "wait_seconds": 20})
            assert made.structured_content["tasks"][0]["credits_charged"] == 16, text_of(made)
            return ElicitResult(action="accept", content={"confirm": True})

        async with connect(elicitation=meanwhile) as client:
            answered = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
    assert len(asked) == 1 and "Spend 8 credits" in asked[0]
    assert answered.structured_content["status"] == "confirmation_required", text_of(answered)
    assert "The price changed while the confirmation was open: it said 8 credits" in text_of(answered)
    assert answered.structured_content["quote"]["credits_total"] == 16  # the new quote is for the new price
    assert len(await controls.creates()) == 1  # the other call's only


@pytest.mark.parametrize("mode", ["legacy"])  # the form asked inside the call
async def test_a_form_asked_again_after_the_price_rose_approves_the_price_it_shows(connect, controls, sim):
    """The review: a form declined at 8 left its question's quote open; asked again once the price was 16, the form
    said 16 but stayed bound to the old quote at 8, so every yes was refused as "the price changed". A question at
    another price gets a quote of its own: the yes to "Spend 16" spends 16."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    asked: list[str] = []

    async def user(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(elicitation=user) as client:
        declined = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        await controls.post("prices", {"nano-banana-2": 16})  # KIE now charges 16 ...
        async with connect(auto_approve_credits=20) as other:  # ... and kie-mcp learns it from another call
            await other.call_tool("generate_image", {**IMAGE, "prompt": "another apple", "wait_seconds": 20})
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
    assert declined.structured_content["status"] == "declined"
    assert "Spend 8 credits" in asked[0] and "Spend 16 credits" in asked[1]
    assert made.structured_content["status"] == "completed", text_of(made)
    assert made.structured_content["tasks"][0]["credits_quoted"] == 16
    assert len(await controls.creates()) == 2  # the other call's and this one


@pytest.mark.parametrize("mode", ["auto"])  # the answer comes back sealed in a retried request
async def test_a_confirmation_answered_late_gets_kie_mcps_own_answer_not_an_expired_state_error(
    connect, controls, monkeypatch
):
    """The audit: the SDK's seal on a question's state lived exactly as long as the question (600 s), so an answer
    near or after the deadline was a bare JSON-RPC error ("Invalid or expired requestState") instead of kie-mcp's
    own answer. The seal outlives the question: the answer is read, and kie-mcp decides."""
    import time

    async with connect(elicitation=answering()) as client:
        first = await client.session.call_tool("generate_image", IMAGE, allow_input_required=True)
        assert first.input_requests, first
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 601)  # the seal's clock: 10 minutes and a second later
        yes = {key: ElicitResult(action="accept", content={"confirm": True}) for key in first.input_requests}
        answered = await client.call_tool(
            "generate_image", IMAGE, input_responses=yes, request_state=first.request_state
        )
    assert not answered.is_error, text_of(answered)
    assert answered.structured_content["status"] in ("completed", "cancelled"), text_of(answered)


@pytest.mark.parametrize("mode", ["auto"])  # the answer comes back sealed in a retried request
async def test_a_confirmation_answered_after_the_server_restarted_says_nothing_was_spent_and_to_call_again(
    connect, controls
):
    """The audit: a host restarts a crashed or updated server while the person reads the form; the answer comes
    back sealed with the old process's key, which the SDK refused with a bare "Invalid or expired requestState",
    saying neither whether anything was spent nor what to do."""
    async with connect(elicitation=answering()) as before:
        first = await before.session.call_tool("generate_image", IMAGE, allow_input_required=True)
    assert first.input_requests, first
    yes = {key: ElicitResult(action="accept", content={"confirm": True}) for key in first.input_requests}
    async with connect(elicitation=answering()) as after:
        with pytest.raises(MCPError) as refused:
            await after.call_tool("generate_image", IMAGE, input_responses=yes, request_state=first.request_state)
    assert refused.value.error.code == INVALID_PARAMS
    assert "earlier run of kie-mcp" in refused.value.error.message
    assert "Nothing was run, sent or spent" in refused.value.error.message
    assert "Call the tool again" in refused.value.error.message
    assert await controls.creates() == []


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        ({"tool": "generate_image", "arguments": {**IMAGE, "variations": 4}}, "other arguments than the call that"),
        ({"tool": "generate_image", "arguments": {**IMAGE, "wait_seconds": 5}}, "other arguments than the call that"),
        ({"tool": "generate_video", "arguments": IMAGE}, "on a call of another tool than the one that asked it"),
        # A tool that asks nothing (check_credits) is no tool to call "to be asked about it": the one that asked is
        ({"tool": "check_credits", "arguments": {}}, "call generate_image without requestState to be asked about it"),
        ({"tool": "generate_image", "arguments": IMAGE, "late": 901}, "came too late"),
    ],
    ids=["other-variations", "other-wait", "another-tool", "a-tool-that-asks-nothing", "too-late"],
)
@pytest.mark.parametrize("mode", ["auto"])  # the answer comes back sealed in a retried request
async def test_an_answer_the_seal_refuses_says_why_it_was_refused(connect, controls, monkeypatch, sent, said):
    """The audit: an answer sent back with other arguments than the question was asked for was rightly refused, but
    in words blaming a restart, its age or tampering. The refusal says what it was (other arguments, another tool,
    too late), and nothing is spent; the answer with the asked call's arguments still spends, once."""
    async with connect(elicitation=answering()) as client:
        first = await client.session.call_tool("generate_image", IMAGE, allow_input_required=True)
        assert first.input_requests, first
        yes = {key: ElicitResult(action="accept", content={"confirm": True}) for key in first.input_requests}
        real = time.time
        if "late" in sent:
            monkeypatch.setattr(time, "time", lambda: real() + sent["late"])  # past the seal's 15 minutes
        with pytest.raises(MCPError) as refused:
            await client.call_tool(
                sent["tool"], sent["arguments"], input_responses=yes, request_state=first.request_state
            )
        assert await controls.creates() == []
        monkeypatch.setattr(time, "time", real)
        state = first.request_state
        answered = await client.call_tool("generate_image", IMAGE, input_responses=yes, request_state=state)
    message = refused.value.error.message
    assert refused.value.error.code == INVALID_PARAMS
    assert said in message and "Nothing was run, sent or spent" in message, message
    assert "restarted" not in message and "changed on its way" not in message, message
    assert answered.structured_content["status"] == "completed", text_of(answered)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("mode", ["auto"])  # the binding quote is checked again when the answer comes back
async def test_with_form_approval_a_yes_in_time_spends_though_the_binding_quote_expired_meanwhile(connect, controls):
    """The audit: with KIE_APPROVAL=form the estimate's quote only binds the form; the 2026-07-28 answer comes back
    in a retried request, which checked the binding again, so a yes given in time was refused when the quote had
    expired while the form was open. The binding held when the form was asked; the yes spends."""
    shown: list[str] = []

    async def person(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        shown.append(params.message)
        await anyio.sleep(1.5)  # the estimate's quote (1 s) expires while the person reads the form
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(elicitation=person, approval="form", quote_ttl_seconds=1.0) as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote, "wait_seconds": 20})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(shown) == 1
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("mode", ["auto"])
@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_an_expired_quote_id_is_asked_about_and_the_answer_decides(connect, controls, answer):
    """Without KIE_APPROVAL=form, an expired quote_id approves nothing: the person is asked, and their answer (which
    comes back with the retried request) decides: a yes spends once, a no is declined with no quote. The expired
    quote is never taken as the approval (a review found the answer ignored for it)."""
    shown: list[str] = []

    async with connect(elicitation=answering(action=answer, seen=shown), quote_ttl_seconds=0.5) as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        await anyio.sleep(0.8)
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote, "wait_seconds": 20})
    assert len(shown) == 1
    if answer == "accept":
        assert made.structured_content["status"] == "completed", text_of(made)
        assert "approved in the confirmation form" in text_of(made)
        assert len(await controls.creates()) == 1
    else:
        assert made.structured_content["status"] == "declined", text_of(made)
        assert made.structured_content["quote"] is None and await controls.creates() == []


async def test_a_quote_whose_call_died_before_any_create_approves_its_request_once_more(connect, controls, tmp_path):
    """The review: a server that used a quote and died before sending any create (its input still uploading, or a
    full disk it never recovered from) left the quote used for good: "already used" after the restart, though the
    approval bought nothing. A quote used by a process that is gone, with no create attempt, approves its request
    once more; one with an attempt that may have reached KIE stays used."""
    import sys

    from kie_mcp.processes import HOST

    async with await anyio.open_process([sys.executable, "-c", "pass"]) as child:  # a process id gone once it ended
        await child.wait()
    dead = f"{HOST}-{child.pid}-crashed"
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        journal = sqlite3.connect(journal_path(tmp_path))
        with journal:  # as the crashed server left it: used, no create attempt
            journal.execute(
                "UPDATE quotes SET used = 1, used_by = ?, used_at = ? WHERE quote_id = ?", (dead, time.time(), quote)
            )
        again = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        with journal:  # now it made a task: a later "crash" of its user leaves it used
            journal.execute("UPDATE quotes SET used_by = ? WHERE quote_id = ?", (dead, quote))
        journal.close()
        twice = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
    assert again.structured_content["status"] in ("completed", "submitted"), text_of(again)
    assert twice.structured_content["status"] == "confirmation_required" and "already used" in text_of(twice)
    assert len(await controls.creates()) == 1


async def test_a_max_credits_below_the_most_an_unknown_price_may_cost_is_refused_before_anything(connect, controls):
    """The review: Imagen 4 Fast's four images (unknown, at most 16) went ahead with max_credits=5, and Seedance 2
    (at most 500) with max_credits=200, so KIE could charge past the threshold the call set. Now the most is weighed
    too, and the refusal names it and the max_credits that would do; one at the most goes ahead."""
    await controls.post("clock/speed", {"speed": 0})
    four = {"prompt": "a lighthouse", "model": "google/imagen4-fast", "options": {"num_images": "4"}, "wait_seconds": 0}
    async with connect(elicitation=answering(), max_credits_per_call=600, max_credits_per_day=3000) as client:
        estimate = (await client.call_tool("estimate_cost", {**four, "max_credits": 5})).structured_content
        images = await client.call_tool("generate_image", {**four, "max_credits": 5})
        seedance = await client.call_tool("generate_video", {**UNPRICED, "max_credits": 200})
        assert await controls.creates() == []
        enough = await client.call_tool("generate_image", {**four, "max_credits": 16})
    assert estimate["within_caps"] is False and "up to 16 credits" in estimate["cap_problem"]
    assert images.is_error and "over the max_credits of 5" in text_of(images)
    assert "Pass a max_credits of at least 16" in text_of(images)
    assert seedance.is_error and f"up to {UNPRICED_MOST} credits" in text_of(seedance)
    assert "max_credits of 200" in text_of(seedance)
    assert enough.structured_content["status"] == "submitted", text_of(enough)


async def test_an_estimate_refused_over_a_cap_says_what_it_would_count_not_what_it_reserved(connect):
    """An estimate of a request a cap refuses said "16 reserved against today's cap": nothing is reserved for a
    request that cannot run, so it says what it would count."""
    four = {"prompt": "a lighthouse", "model": "google/imagen4-fast", "options": {"num_images": "4"}}
    async with connect(max_credits_per_call=10) as client:
        over = (await client.call_tool("estimate_cost", four)).structured_content
    async with connect(max_credits_per_call=600) as client:
        within = (await client.call_tool("estimate_cost", four)).structured_content
    assert over["within_caps"] is False and "per-call cap of 10" in over["cap_problem"]
    assert "16 would be counted against today's cap" in over["message"]
    assert "reserved against today's cap" not in over["message"]
    assert within["within_caps"] is True and "16 reserved against today's cap" in within["message"]


async def test_an_estimate_over_a_cap_never_says_its_quote_approves_the_request(connect):
    """Three Kling takes at 648 credits under a 600 per-call cap: the estimate said "quote_id=... approves exactly
    this request once" and then "Over a cap ... Nothing was spent", and generating with that quote is refused. Over a
    cap the quote approves nothing, and the answer says what would let the request through; nothing is
    auto-approved either (a price under KIE_AUTO_APPROVE_CREDITS over the daily cap was "auto_approved": true), and
    the approval card gets the cap's refusal (its Approve stays off)."""
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    three = {"model": "veo3_fast", "prompt": "a paper boat on a pond", "variations": 3}  # 180 credits
    async with connect(extensions=[apps], max_credits_per_call=100, auto_approve_credits=500) as client:
        over = await client.call_tool("estimate_cost", three)
        quote_id = over.structured_content["quote"]["quote_id"]
        used = await client.call_tool("generate_video", {**three, "quote_id": quote_id, "wait_seconds": 0})
        within = (await client.call_tool("estimate_cost", {**three, "variations": 1})).structured_content
    async with connect(max_credits_per_day=5, auto_approve_credits=10) as client:
        today = (await client.call_tool("estimate_cost", IMAGE)).structured_content  # 8 credits, over the day's 5
    answer = over.structured_content
    assert answer["within_caps"] is False and answer["auto_approved"] is False
    assert "approves exactly this request" not in answer["message"], answer["message"]
    assert f"quote_id={quote_id} (until " in answer["message"]
    assert "approves nothing while the request is over a cap: This request costs 180 credits" in answer["message"]
    assert "raise KIE_MAX_CREDITS_PER_CALL" in answer["message"]
    assert over.meta[CARD_KEY]["cap_problem"] == answer["cap_problem"] and answer["cap_problem"]
    assert used.is_error and "per-call cap of 100" in text_of(used)
    assert within["within_caps"] is True and "approves exactly this request once" in within["message"]
    assert today["within_caps"] is False and today["auto_approved"] is False
    assert "approves exactly this request" not in today["message"], today["message"]


async def test_the_confirmation_form_speaks_to_the_person_not_to_developers(connect, controls, mode):
    """What a client may show above the form (the requested schema's title and description) is written for the
    person approving the spend, never the model's developer docstring with its field names and markup."""
    forms: list[dict[str, Any]] = []

    async def shown(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        forms.append(params.requested_schema)
        return ElicitResult(action="decline")

    async with connect(elicitation=shown) as client:
        declined = await client.call_tool("generate_image", IMAGE)
    assert not declined.structured_content or declined.structured_content.get("status") != "completed"
    assert len(forms) == 1 and await controls.creates() == []
    form, ours = forms[0], {"title": "Approve the spend", "description": FORM_DESCRIPTION}
    assert render_elicitation_schema(ConfirmSpend).items() >= ours.items()  # what the server offers, in both eras
    said = {key: form[key] for key in ("title", "description") if key in form}
    # The 2025-11-25 form carries both as offered; the 2026-07-28 wire type carries neither.
    assert said == (ours if mode == "legacy" else {}), form
    assert FORM_DESCRIPTION.startswith("kie-mcp asks before it spends KIE credits.")
    assert "``" not in json.dumps(form) and "not_boolean" not in json.dumps(form)
    assert list(form["properties"]) == ["confirm"] and form["required"] == ["confirm"]


@pytest.mark.parametrize("mode", ["legacy"])  # the form asked in the call, and answered unreadably
async def test_with_form_approval_an_unreadable_answer_says_its_quote_only_asks_the_form_again(connect, controls):
    """The review: under KIE_APPROVAL=form an answer to the form that could not be read came back with a quote and
    "once they do, call ... with quote_id", as if that quote approved the spend in the chat; here it only binds the
    call, and repeating it asks the form again. The answer says so, and nothing is sent."""

    async def unreadable(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content=None)

    async with connect(elicitation=unreadable, approval="form") as client:
        answer = await client.call_tool("generate_image", IMAGE)
    assert answer.structured_content["status"] == "confirmation_required", text_of(answer)
    assert "could not be read" in text_of(answer)
    assert "only binds the call" in text_of(answer) and "asks the form again" in text_of(answer), text_of(answer)
    assert await controls.creates() == []
