"""A live price is trusted only as far as kie-mcp's own catalogue bounds it, through the MCP client.

The spend-gate audit: one row of KIE's public price feed (read without the key), or one edit of the workspace's
``.kie-mcp/catalog-live.json`` by an agent that can write files, made a 250-credit Veo clip quote at 1 credit. Under
``KIE_APPROVAL=form`` with ``KIE_AUTO_APPROVE_CREDITS=10`` two calls of ten clips each were auto-approved with no form
and passed caps of 600 a call and 3000 a day; KIE charged 5000, and kie-mcp counted 20 (Veo reports no charge).

A live price below the bundled one is shown, but the bundled figure is what the caps, the auto-approve limit and
today's spend count, and the answer says so: one just over half (126 for a 250-credit clip) once let four clips past a
per-call cap of 600 that KIE charged 1000 for. A price only the live catalogue gives (a model the bundled catalogue
lacks) is never auto-approved, and the caps count the whole per-call cap for each of its tasks: a price text of 0.5
credits once let ten tasks through that KIE charged 200 each.
"""

from __future__ import annotations

import json
from pathlib import Path

from kie_mcp.catalog.live import cache_path

from .conftest import answering, text_of
from .test_live_wiring import offer_counted, sync

QUALITY_ROW = "Google veo 3.1, text-to-video, Quality-720p"  # veo3's default request: 250 credits in the catalogue
VEO = {"prompt": "a lighthouse at dusk, waves", "model": "veo3"}
GATE = {"approval": "form", "auto_approve_credits": 10, "max_credits_per_call": 600, "max_credits_per_day": 3000}
SAID = "KIE's live price list shows 1 each, lower than the 250 each in kie-mcp's catalogue"


async def a_feed_row_at_one_credit(controls, transport, workspace: Path) -> None:
    """KIE's public price feed lists Veo 3.1 Quality at 1 credit, and the workspace syncs it."""
    await controls.post("catalog/feed", {"description": QUALITY_ROW, "credits": 1})
    await sync(transport, controls, workspace)


def a_cache_edited_to_one_credit(workspace: Path, credits: float = 1) -> None:
    """An agent that can write files rewrites the live catalogue's cache: one feed row, 1 credit."""
    path = cache_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"description": QUALITY_ROW, "credits": credits, "unit": "per video"}
    path.write_text(json.dumps({"version": 2, "feed_at": "2026-12-06T00:00:00Z", "feed": [row]}))


async def test_a_live_price_far_below_the_catalogue_is_neither_auto_approved_nor_let_past_the_caps(
    connect, controls, transport, tmp_path
):
    await controls.post("balance", {"credits": 100000})
    await a_feed_row_at_one_credit(controls, transport, tmp_path)
    seen: list[str] = []
    async with connect(answering(action="decline", seen=seen), **GATE) as client:
        estimate = (await client.call_tool("estimate_cost", {**VEO, "variations": 2})).structured_content
        asked = await client.call_tool("generate_video", {**VEO, "variations": 2})
        capped = await client.call_tool("generate_video", {**VEO, "variations": 10})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    quote = estimate["quote"]
    assert (quote["credits_total"], quote["credits_counted"], estimate["auto_approved"]) == (2, 500, False)
    message = estimate["message"]
    assert SAID in message and "up to 500 against your caps and the auto-approve limit" in message
    assert asked.structured_content["status"] == "declined", text_of(asked)
    assert len(seen) == 1 and SAID in seen[0]  # the person was asked, and told why 500 counts
    assert capped.is_error and "2500 counted" in text_of(capped) and "per-call cap of 600" in text_of(capped)
    assert "lower than kie-mcp's catalogue" in text_of(capped)
    assert await controls.creates() == [] and spent == 0


async def test_an_edited_live_cache_cannot_lower_what_a_spend_counts(connect, controls, tmp_path):
    a_cache_edited_to_one_credit(tmp_path)
    seen: list[str] = []
    async with connect(answering(seen=seen), **GATE) as client:
        estimate = (await client.call_tool("estimate_cost", VEO)).structured_content
        made = await client.call_tool("generate_video", {**VEO, "wait_seconds": 0})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert (estimate["quote"]["credits_counted"], estimate["auto_approved"]) == (250, False)
    assert len(seen) == 1 and "KIE's live price list shows 1," in seen[0]  # asked, never auto-approved
    assert not made.is_error, text_of(made)
    assert len(await controls.creates()) == 1
    assert spent == 250  # today's spend counts the catalogue's price, not the cache's 1


async def test_a_live_price_lower_than_the_catalogue_is_quoted_but_the_catalogue_s_counts(
    connect, controls, transport, tmp_path
):
    await controls.post("catalog/feed", {"description": QUALITY_ROW, "credits": 125})  # half: KIE cut its price?
    await sync(transport, controls, tmp_path)
    async with connect(**GATE) as client:
        estimate = (await client.call_tool("estimate_cost", VEO)).structured_content
    assert (estimate["quote"]["credits_total"], estimate["quote"]["credits_counted"]) == (125, 250)
    assert "KIE's live price list shows 125, lower than the 250 in kie-mcp's catalogue" in estimate["message"]


async def test_a_cache_just_over_half_the_catalogue_cannot_undercount_a_spend(connect, controls, tmp_path):
    """126 for a 250-credit clip: four clips once counted 504 under a per-call cap of 600, and KIE charged 1000."""
    await controls.post("balance", {"credits": 100000})
    a_cache_edited_to_one_credit(tmp_path, 126)
    async with connect(max_credits_per_call=600, max_credits_per_day=3000, auto_approve_credits=130) as client:
        one = (await client.call_tool("estimate_cost", VEO)).structured_content
        four = await client.call_tool("generate_video", {**VEO, "variations": 4, "wait_seconds": 0})
        made = await client.call_tool("generate_video", {**VEO, "wait_seconds": 0})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert (one["quote"]["credits_total"], one["quote"]["credits_counted"], one["auto_approved"]) == (126, 250, False)
    assert four.is_error and "1000 counted" in text_of(four) and "per-call cap of 600" in text_of(four)
    assert made.structured_content["status"] == "confirmation_required", text_of(made)  # 250 > 130: never auto
    assert await controls.creates() == [] and spent == 0


async def test_a_price_only_the_live_list_gives_counts_the_whole_per_call_cap_per_task(
    connect, controls, transport, tmp_path, sim
):
    """KIE's price text says 0.5 credits an image, KIE charges 200 a task: ten variations once passed a per-call cap
    of 600 (counted 5) and KIE charged 2000, approved with the agent's own quote under the default KIE_APPROVAL."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("balance", {"credits": 100000})
    await offer_counted(controls, transport, tmp_path, "num_images", "0.5 credits per image.", charged=200)
    args = {"model": "brand/new-image", "prompt": "a red fox", "wait_seconds": 20}
    async with connect(max_credits_per_call=600, max_credits_per_day=3000) as client:
        ten = (await client.call_tool("estimate_cost", {**args, "variations": 10})).structured_content
        refused = await client.call_tool(
            "generate_image", {**args, "variations": 10, "quote_id": ten["quote"]["quote_id"]}
        )
        one = (await client.call_tool("estimate_cost", args)).structured_content
        made = await client.call_tool("generate_image", {**args, "quote_id": one["quote"]["quote_id"]})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert (ten["quote"]["credits_total"], ten["quote"]["credits_counted"], ten["within_caps"]) == (5, 6000, False)
    assert refused.is_error and "6000 counted" in text_of(refused) and "per-call cap of 600" in text_of(refused)
    assert "Ask for one variation per call" in text_of(refused), text_of(refused)  # a higher cap cannot help
    assert (one["quote"]["credits_total"], one["quote"]["credits_counted"]) == (0.5, 600)
    assert "the caps count the whole per-call cap for each task" in one["message"]
    assert one["message"].count("per-call cap") == 1, one["message"]  # said once, not by two notes
    assert not made.is_error, text_of(made)
    assert len(await controls.creates()) == 1 and spent == 200  # KIE's reported charge replaces the 600 counted


async def test_a_max_credits_is_weighed_against_a_live_only_price_never_against_the_cap_it_counts(
    connect, controls, transport, tmp_path
):
    """A review: a live-only price is counted at the whole per-call cap as a stand-in, and a caller's max_credits of
    20 for a 4-credit image was weighed against that 600: always refused, with "Raise max_credits". As for an
    unknown price, max_credits is weighed against what is known of the price; the caps still count the cap."""
    await controls.post("balance", {"credits": 100000})
    await offer_counted(controls, transport, tmp_path, "num_images", "4 credits per image.", charged=4)
    args = {"model": "brand/new-image", "prompt": "a red fox", "wait_seconds": 20, "max_credits": 20}
    async with connect(max_credits_per_call=600, max_credits_per_day=3000) as client:
        estimate = (await client.call_tool("estimate_cost", args)).structured_content
        made = await client.call_tool("generate_image", {**args, "quote_id": estimate["quote"]["quote_id"]})
        over = (await client.call_tool("estimate_cost", {**args, "variations": 6})).structured_content
    assert (estimate["quote"]["credits_total"], estimate["quote"]["credits_counted"]) == (4, 600), estimate
    assert estimate["within_caps"], estimate["message"]
    assert not made.is_error and "over the max_credits" not in text_of(made), text_of(made)
    assert not over["within_caps"] and "over the max_credits of 20" in over["message"], over["message"]  # 24 > 20
    assert len(await controls.creates()) == 1


async def test_a_price_only_the_live_list_gives_is_never_auto_approved(connect, controls, transport, tmp_path):
    """A live-only model (the bundled catalogue lacks it) at 4 credits, under an auto-approve limit of 5."""
    await offer_counted(controls, transport, tmp_path, "num_images", "4 credits per image.", charged=4)
    args = {"model": "brand/new-image", "prompt": "a red fox", "wait_seconds": 20}
    seen: list[str] = []
    async with connect(answering(action="decline", seen=seen), auto_approve_credits=5) as client:
        estimate = (await client.call_tool("estimate_cost", args)).structured_content
        asked = await client.call_tool("generate_image", args)
    async with connect(auto_approve_credits=5) as client:  # a client without forms: the person approves the quote
        unasked = await client.call_tool("generate_image", args)
    assert (estimate["quote"]["credits_total"], estimate["auto_approved"]) == (4, False)
    assert "never auto-approved" in estimate["message"]
    assert asked.structured_content["status"] == "declined" and len(seen) == 1
    assert "never auto-approved" in seen[0]
    assert unasked.structured_content["status"] == "confirmation_required", text_of(unasked)
    assert "never auto-approved" in text_of(unasked)
    assert await controls.creates() == []


async def test_a_price_kie_charged_here_under_the_catalogue_is_said_to_be_that_charge_not_the_live_list(
    connect, controls, transport, tmp_path, sim
):
    """A review: KIE's live list says 5 for Nano Banana 2 (the catalogue 8) and KIE then charged 7 here; the quote
    is 7 (the charge), counted 8 (the catalogue), and it said "KIE's live price list shows 7", which it does not."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    nano = {"model": "nano-banana-2", "prompt": "a fox"}
    await controls.post("balance", {"credits": 100000})
    await controls.post("catalog/feed", {"description": "Google nano banana 2, 1K", "credits": 5})
    await sync(transport, controls, tmp_path)
    await controls.post("prices", {"nano-banana-2": 7})
    async with connect(answering(), auto_approve_credits=8) as client:
        made = await client.call_tool("generate_image", {**nano, "wait_seconds": 30})
        estimate = (await client.call_tool("estimate_cost", nano)).structured_content
    assert not made.is_error, text_of(made)
    assert (estimate["quote"]["credits_total"], estimate["quote"]["credits_counted"]) == (7, 8), estimate["quote"]
    said = estimate["message"]
    assert "KIE charged 7 here before, lower than the 8 in kie-mcp's catalogue" in said, said
    assert "live price list shows 7" not in said, said
