"""KIE moved: what kie-mcp does when KIE's prices, model list or price feed change under it.

A charge far above the price table is what the caps and auto-approval count from then on; a model list cut short or a
price feed in a shape kie-mcp cannot read never replaces the last good one; a price text that names only a floor
("Starting from 4 credits") is not quoted as exact. Through the real MCP client (both protocol eras) and the
simulator; nothing of ours is mocked.
"""

from __future__ import annotations

import sqlite3

import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.catalog.live import LiveCatalog, cache_path, sync_summary
from kie_mcp.journal import journal_path

from .conftest import answering, text_of
from .test_live_catalog import EXTRA
from .test_live_wiring import sync

NEW = EXTRA["model"]  # a Market model only KIE's live list has
IMAGE = {"prompt": "a red apple", "model": "nano-banana-2"}  # 8 credits in the bundled table (resolution 1K)


async def kie_charges(controls, credits):
    await controls.post("prices", {"nano-banana-2": credits})
    await controls.post("config", {"report_credits_consumed": True})


async def test_a_charge_far_above_the_table_is_what_auto_approval_counts_next(connect, controls):
    """The audit: KIE charged 30 for an 8-credit image; every later call was still "auto-approved: at or under
    KIE_AUTO_APPROVE_CREDITS=10" and charged 30, because a charge over 2x the table was ignored entirely."""
    await kie_charges(controls, 30)
    seen: list[str] = []
    async with connect(answering(seen=seen), auto_approve_credits=10, max_credits_per_call=100) as client:
        await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})  # the first: 8 by the table
        estimate = (await client.call_tool("estimate_cost", {**IMAGE, "prompt": "a green pear"})).structured_content
        again = await client.call_tool("generate_image", {**IMAGE, "prompt": "a blue plum", "wait_seconds": 5})
    quote = estimate["quote"]
    assert (quote["credits_total"], quote["credits_counted"]) == (8, 30), quote
    assert not estimate.get("auto_approved"), estimate
    assert "far above the price table's 8" in estimate["message"], estimate["message"]
    assert "count the 30 credits KIE charged" in estimate["message"], estimate["message"]
    assert len(seen) == 1 and "30" in seen[0], seen  # the user was asked this time, with the figure counted
    assert "auto-approved" not in text_of(again), text_of(again)


async def test_a_charge_far_above_the_table_is_refused_by_the_per_call_cap_before_anything_is_sent(connect, controls):
    await kie_charges(controls, 30)
    async with connect(answering(), auto_approve_credits=10, max_credits_per_call=12) as client:
        await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        refused = await client.call_tool("generate_image", {**IMAGE, "prompt": "a blue plum", "wait_seconds": 5})
    assert refused.is_error and "per-call cap of 12" in text_of(refused), text_of(refused)
    assert "30 counted" in text_of(refused), text_of(refused)
    assert len(await controls.creates()) == 1


async def test_a_charge_far_above_the_table_counts_for_a_day_then_the_table_counts_again(connect, controls, tmp_path):
    """The review: one 30-credit charge for an 8-credit image, with a per-call cap of 12, refused every later call
    before sending, for good: no newer charge could replace it, even once KIE's price was back to 8."""
    await kie_charges(controls, 30)
    async with connect(answering(), auto_approve_credits=10, max_credits_per_call=12) as client:
        await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        await controls.post("prices", {"nano-banana-2": None})  # KIE is back to its listed 8
        refused = await client.call_tool("generate_image", {**IMAGE, "prompt": "a blue plum", "wait_seconds": 5})
        with sqlite3.connect(journal_path(tmp_path)) as db:  # that charge's task ended 25 hours ago
            db.execute("UPDATE tasks SET updated = updated - ?", (25 * 3600,))
        estimate = (await client.call_tool("estimate_cost", {**IMAGE, "prompt": "a green pear"})).structured_content
        again = await client.call_tool("generate_image", {**IMAGE, "prompt": "a blue plum", "wait_seconds": 5})
    assert refused.is_error and "counted until" in text_of(refused), text_of(refused)
    assert "other settings of this model" in text_of(refused), text_of(refused)
    quote = estimate["quote"]
    assert quote["credits_total"] == 8 and quote["credits_counted"] in (None, 8), quote
    assert estimate.get("auto_approved"), estimate
    assert "more than 24 hours ago" in estimate["message"], estimate["message"]
    assert not again.is_error, text_of(again)
    assert len(await controls.creates()) == 2


@pytest.mark.parametrize("reported", [5000, 10**7])
async def test_a_charge_beyond_any_sane_price_is_unreadable_and_fills_nothing(connect, controls, mode, reported):
    """The review: a creditsConsumed of 5000 (or 1e308) for an 8-credit image filled today's ledger and locked the
    model out; it cannot be what KIE charged, so it is handled like NaN: the 8 reserved stay counted as spent."""
    await controls.post("balance", {"credits": 2 * 10**7})
    await kie_charges(controls, reported)
    async with connect(answering(), auto_approve_credits=10, max_credits_per_call=100) as client:
        first = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        await controls.post("prices", {"nano-banana-2": None})
        credits = (await client.call_tool("check_credits", {})).structured_content
        estimate = (await client.call_tool("estimate_cost", {**IMAGE, "prompt": "a green pear"})).structured_content
        again = await client.call_tool("generate_image", {**IMAGE, "prompt": "a blue plum", "wait_seconds": 5})
    assert "could not be read" in text_of(first), text_of(first)
    assert credits["spent_today"] == 8, credits
    quote = estimate["quote"]
    assert quote["credits_total"] == 8 and quote["credits_counted"] in (None, 8), quote
    assert estimate.get("auto_approved"), estimate
    assert not again.is_error and "auto-approved" in text_of(again), text_of(again)


@pytest.mark.parametrize(
    "text",
    [
        "Starting from 4 credits per image; 2K and 4K outputs cost more.",
        "From 4 credits per image",
        "4 credits per image, up to 16 credits for 4K",
        "4 credits per image or more, depending on the resolution",
        "Price varies: 4+ credits per image",
        "4 credits per image; 4K: 16",
        "4-8 credits per image",
        "between 4 and 8 credits per image",
        "4 or 8 credits per image",
    ],
)
async def test_a_live_price_text_that_names_no_exact_price_is_unknown_and_says_why(
    connect, controls, transport, tmp_path, text
):
    """The audit: "Starting from 4 credits per image; 2K and 4K outputs cost more" was quoted as exactly 4 and
    auto-approved at 4."""
    await controls.post("catalog/extra", {**EXTRA, "pricingDesc": text})
    await sync(transport, controls, tmp_path)
    async with connect(answering(), auto_approve_credits=600, max_credits_per_call=600) as client:
        estimate = (await client.call_tool("estimate_cost", {"prompt": "a red apple", "model": NEW})).structured_content
    quote = estimate["quote"]
    assert not quote["price_known"] and quote["credits_total"] is None, quote
    assert "not an exact price" in quote["breakdown"] and text.split()[0] in quote["breakdown"], quote
    assert not estimate.get("auto_approved"), estimate


@pytest.mark.parametrize(
    ("text", "credits"),
    [
        ("from the 2026 list: 4 credits per image", 4),
        ("4 credits per image, no additional fees", 4),
        ("Higher quality: 10 credits per image", 10),
    ],
)
async def test_a_live_price_text_with_one_exact_figure_is_that_price(
    connect, controls, transport, tmp_path, text, credits
):
    """The review: "from", "additional" or "higher" anywhere in the text made an exact price unknown."""
    await controls.post("catalog/extra", {**EXTRA, "pricingDesc": text})
    await sync(transport, controls, tmp_path)
    async with connect(answering(), auto_approve_credits=600, max_credits_per_call=600) as client:
        estimate = (await client.call_tool("estimate_cost", {"prompt": "a red apple", "model": NEW})).structured_content
    quote = estimate["quote"]
    assert quote["price_known"] and quote["credits_total"] == credits, quote
    assert "not an exact price" not in quote["breakdown"], quote


async def resync(transport, controls, workspace):
    """A sync as the server's and `kie-mcp catalog sync` run it: from the cache the workspace holds."""
    return await sync(transport, controls, workspace, from_cache=True)


async def test_a_model_list_kie_serves_in_pages_is_read_whole(connect, controls, transport, tmp_path):
    """The audit: a list answered as {"total": 143, "pageNum": 1, "pageSize": 20, "models": [20 rows]} was taken as
    the whole catalogue, and most bundled Market models became "no longer offered by KIE"."""
    await controls.post("catalog/moved", {"modelsPageSize": 20})
    live = await resync(transport, controls, tmp_path)
    assert live.errors == [] and "nano-banana-2" in live.models and len(live.models) > 40, live.errors
    async with connect(answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
    assert not made.is_error and "no longer offered" not in text_of(made), text_of(made)


@pytest.mark.parametrize("shape", ["text", "float", "negative", "missing"])
async def test_a_paged_model_list_is_read_whole_whatever_its_total_is_written_as(
    connect, controls, transport, tmp_path, shape
):
    """The review: a paged list whose ``total`` came as "143", 143.0 or -1 was taken as complete after its first
    page (the total ignored), so most bundled Market models were about to be called withdrawn."""
    before = await resync(transport, controls, tmp_path)
    await controls.post("catalog/moved", {"modelsPageSize": 20, "modelsTotal": shape})
    live = await resync(transport, controls, tmp_path)
    assert live.errors == [] and set(live.models) == set(before.models), live.errors
    async with connect(answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
    assert not made.is_error and "no longer offered" not in text_of(made), text_of(made)


async def test_a_model_list_cut_short_keeps_the_previous_list_and_says_so(connect, controls, transport, tmp_path):
    before = await resync(transport, controls, tmp_path)
    await controls.post("catalog/moved", {"modelsPageSize": 20, "modelsServed": 20})
    live = await resync(transport, controls, tmp_path)
    assert live.models == before.models and live.fetched_at == before.fetched_at
    assert any("KIE's list looks incomplete" in e.message for e in live.errors), live.errors
    async with connect(answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
    assert not made.is_error and "no longer offered" not in text_of(made), text_of(made)


async def test_a_model_list_that_drops_most_market_models_at_once_is_taken_for_one_cut_short(
    controls, transport, tmp_path
):
    before = await resync(transport, controls, tmp_path)
    market = [spec.id for spec in load_catalog().offered() if spec.family == "market"]
    for model in market[: len(market) // 2]:  # a list with no total to tell: half of them missing at once
        await controls.post("catalog/withdraw", {"model": model})
    live = await resync(transport, controls, tmp_path)
    assert live.models == before.models, "the previous list is kept"
    assert any("KIE's list looks incomplete" in e.message for e in live.errors), live.errors


async def test_a_smaller_model_list_seen_twice_an_hour_apart_is_taken_as_kie_withdrawing_models(
    connect, controls, transport, tmp_path
):
    """The review: a real cull was never accepted (each sync compared with the list it kept, refused again for ever),
    and a model KIE added in the same list was never seen either."""
    await resync(transport, controls, tmp_path)
    market = [spec.id for spec in load_catalog().offered() if spec.family == "market"]
    culled = market[: len(market) // 2]
    for model in culled:
        await controls.post("catalog/withdraw", {"model": model})
    await controls.post("catalog/extra", EXTRA)  # KIE also added a model
    first = await resync(transport, controls, tmp_path)
    assert culled[0] in first.models and NEW in first.models, "refused, but the new model is taken in"
    assert any("the same list again an hour or more after" in e.message for e in first.errors), first.errors
    again = await resync(transport, controls, tmp_path)  # the same list, minutes later: still refused
    assert culled[0] in again.models and again.errors, again.errors
    cache = LiveCatalog.load(cache_path(tmp_path))
    assert cache.smaller_list is not None and cache.smaller_feed is not None  # their prices went with them
    cache.smaller_list.at = cache.smaller_feed.at = "2020-01-01T00:00:00Z"  # both were first seen long ago
    cache.save(cache_path(tmp_path))
    taken = await resync(transport, controls, tmp_path)
    assert culled[0] not in taken.models and NEW in taken.models and not taken.errors, taken.errors
    assert len(taken.feed) < len(first.feed), "the feed without their prices is taken too"
    summary = sync_summary(taken, load_catalog())
    assert any("taken as KIE's list" in line for line in summary), summary
    assert any("taken as KIE's feed" in line for line in summary), summary
    async with connect(answering()) as client:
        listed_new = (await client.call_tool("list_models", {"query": NEW})).structured_content
    assert NEW in [m["id"] for m in listed_new["models"]], listed_new


async def test_a_price_feed_cut_short_keeps_the_last_good_one_and_says_so(connect, controls, transport, tmp_path, mode):
    """The review: a feed of one record replaced a feed of hundreds (only an empty feed was refused), and every
    other feed-priced model lost its price."""
    before = await resync(transport, controls, tmp_path)
    await controls.post("catalog/moved", {"feedServed": 1})
    live = await resync(transport, controls, tmp_path)
    assert live.feed == before.feed and live.feed_at == before.feed_at and len(before.feed) > 3
    assert any(
        f"came with 1 rows, more than a third fewer than the previous {len(before.feed)}" in e.message
        for e in live.errors
    ), live.errors
    async with connect(answering(), auto_approve_credits=20) as client:
        estimate = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    assert estimate["quote"]["price_known"] and estimate["quote"]["credits_total"] == 8, estimate["quote"]
    assert "no longer has" not in estimate["message"], estimate["message"]
    await controls.post("catalog/moved", {"feedServed": len(before.feed) - 2})  # KIE dropped two prices: taken
    shorter = await resync(transport, controls, tmp_path)
    assert len(shorter.feed) == len(before.feed) - 2 and not shorter.errors, shorter.errors


async def test_a_price_feed_in_a_shape_kie_mcp_cannot_read_keeps_the_last_good_one(
    connect, controls, transport, tmp_path
):
    """The audit: the same feed under other field names was read as [] and replaced the last good feed silently:
    every feed-priced model became unknown, said to be gone from KIE's price list, and reserved 600."""
    before = await resync(transport, controls, tmp_path)
    await controls.post("catalog/moved", {"feedRenamed": True})
    live = await resync(transport, controls, tmp_path)
    assert live.feed == before.feed and live.feed_at == before.feed_at and before.feed
    assert any("shape kie-mcp cannot read" in e.message for e in live.errors), live.errors
    async with connect(answering(), auto_approve_credits=20) as client:
        estimate = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    assert estimate["quote"]["price_known"] and estimate["quote"]["credits_total"] == 8, estimate["quote"]
    assert "no longer has" not in estimate["message"], estimate["message"]
