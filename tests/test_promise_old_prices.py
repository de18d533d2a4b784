"""A price whose newest evidence is more than half a year old is quoted, never auto-approved.

The catalogue audit of 2026-12-06: Seedance 1.0 Lite was priced from KIE's list of 2025-12-21 and is not in KIE's
price feed, so the daily sync never replaced it; with KIE_AUTO_APPROVE_CREDITS=50 a Lite clip was approved and sent
without anyone asked. Such a price is now asked (the estimate and the question say why), while a price KIE's live
list gave, a charge here bore out, or the sandbox's simulated KIE charges is auto-approved as before. (Lite is priced
from KIE's model list of 2026-10-06 since the audit of 2026-12-07; Seedance 1.0 Pro, priced from that 2025-12-21 list
alone, is the example here.)

Everything goes through the real MCP client in both protocol eras and the simulator's HTTP interface.
"""

from __future__ import annotations

import pytest

from kie_mcp import generation

from .conftest import answering, text_of
from .test_live_wiring import sync

OLD = {
    "model": "bytedance/v1-pro-text-to-video",
    "prompt": "A red fox runs through snow.",
    "resolution": "480p",
    "duration": 5,
}  # 14 credits, by KIE's list of 2025-12-21 alone
WHY = "This price is over 180 days old and no live KIE price or charge here has confirmed it since"


async def test_an_old_price_no_live_price_confirmed_is_quoted_but_never_auto_approved(connect, controls):
    async with connect(auto_approve_credits=50) as client:  # a client without forms: handed a quote
        estimate = await client.call_tool("estimate_cost", OLD)
        asked = await client.call_tool("generate_video", OLD)
    assert estimate.structured_content["quote"]["credits_total"] == 14
    assert estimate.structured_content["auto_approved"] is False
    assert WHY in text_of(estimate)
    assert asked.structured_content["status"] == "confirmation_required", text_of(asked)
    assert WHY in text_of(asked)
    assert await controls.creates() == []


async def test_the_person_asked_about_an_old_price_is_told_why_in_the_question(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=50) as client:
        made = await client.call_tool("generate_video", {**OLD, "wait_seconds": 20})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(seen) == 1 and WHY in seen[0], seen
    assert len(await controls.creates()) == 1


async def test_an_old_price_a_charge_here_bore_out_is_auto_approved_again(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=50) as client:
        first = await client.call_tool("generate_video", {**OLD, "wait_seconds": 20})  # asked: KIE charges 14
        assert first.structured_content["status"] == "completed", text_of(first)
        estimate = await client.call_tool("estimate_cost", {**OLD, "prompt": "A second fox."})
        second = await client.call_tool("generate_video", {**OLD, "prompt": "A second fox.", "wait_seconds": 20})
    assert len(seen) == 1  # the first, whose price nothing had confirmed; the second not
    assert estimate.structured_content["auto_approved"] is True and WHY not in text_of(estimate)
    assert second.structured_content["status"] == "completed", text_of(second)
    assert len(await controls.creates()) == 2


async def test_an_old_price_kies_live_price_list_confirms_is_auto_approved(
    connect, controls, transport, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    """No bundled price tied to a live row is half a year old yet: here every price older than a day counts as old."""
    monkeypatch.setattr(generation, "UNCONFIRMED_PRICE_MAX_DAYS", 1)
    image = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table"}
    async with connect(auto_approve_credits=50) as client:
        bundled = await client.call_tool("estimate_cost", image)
    await sync(transport, controls, tmp_path)  # KIE's live list has nano-banana-2's row at today's date
    async with connect(auto_approve_credits=50) as client:
        live = await client.call_tool("estimate_cost", image)
        made = await client.call_tool("generate_image", {**image, "wait_seconds": 20})
    assert bundled.structured_content["auto_approved"] is False
    assert live.structured_content["quote"]["price_source"].startswith("KIE live price list of")
    assert live.structured_content["auto_approved"] is True
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1


async def test_the_sandbox_auto_approves_its_simulated_prices_whatever_their_age(connect, controls):
    """The simulator charges the bundled prices themselves: their age says nothing there. Outside the sandbox the
    same request is asked."""
    async with connect(auto_approve_credits=50) as client:
        asked = await client.call_tool("generate_video", {**OLD, "wait_seconds": 20})
    async with connect(sandbox=True, auto_approve_credits=50) as client:
        made = await client.call_tool("generate_video", {**OLD, "wait_seconds": 20})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert WHY not in text_of(made)
    assert asked.structured_content["status"] == "confirmation_required", text_of(asked)
    assert len(await controls.creates()) == 1
