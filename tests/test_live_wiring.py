"""Issue 9: the server follows KIE's live catalogue (synced into the workspace cache), through the MCP client.

The cache is written by the same sync `kie-mcp catalog sync` runs, against the simulator, whose controls withdraw
a model, change or remove a price-feed row, lower a model's success rate or add a model the bundle lacks.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import anyio
import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.catalog.live import LiveCatalog, cache_path, is_gone
from kie_mcp.kie import KieClient
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.sandbox import SANDBOX_API_KEY

from .conftest import API, UPLOADS, answering, eras_in_turn, text_of
from .test_live_catalog import EXTRA, EXTRA_DOC

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


def feed_row(model_id: str) -> str:
    spec = load_catalog().get(model_id)
    return next(rate.feed for rate in spec.price.rates if rate.feed)


async def sync(
    transport, controls, workspace: Path, models: tuple[str, ...] = (), *, from_cache: bool = False
) -> LiveCatalog:
    """What `kie-mcp catalog sync` does, quickly: the simulator's one-lookup-a-second limit is lifted.
    ``from_cache``: from the workspace's cache, as the server and `kie-mcp catalog sync` do (else from nothing)."""
    await controls.post("config", {"catalog_limit_per_second": 0})
    async with KieClient(
        api_key=SANDBOX_API_KEY,
        base_url=API,
        upload_base_url=UPLOADS,
        transport=transport,
        catalog_window=SlidingWindow(1000, 1.0),
    ) as kie:
        previous = LiveCatalog.load(cache_path(workspace)) if from_cache else LiveCatalog()
        live = await previous.sync(kie, models_in_use=list(models))
    live.save(cache_path(workspace))
    return live


async def test_a_model_kie_withdrew_is_refused_before_anything_with_live_alternatives(
    connect, controls, transport, tmp_path
):
    await controls.post("catalog/withdraw", {"model": "nano-banana-2"})
    await sync(transport, controls, tmp_path)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        listed = (await client.call_tool("list_models", {"kind": "image"})).structured_content["models"]
    assert result.is_error
    assert "no longer offered by KIE" in text_of(result) and "Use instead" in text_of(result)
    assert "nano-banana-2" not in {m["id"] for m in listed}
    assert await controls.creates() == []


async def test_a_price_that_changed_since_the_bundled_data_is_quoted_live(connect, controls, transport, tmp_path):
    await controls.post("catalog/feed", {"description": feed_row("nano-banana-2"), "credits": 10})
    await sync(transport, controls, tmp_path)
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        listed = (await client.call_tool("list_models", {"query": "nano-banana-2"})).structured_content["models"]
    assert quote["credits_total"] == 10
    assert quote["price_source"].startswith("KIE live price list of 20")
    [model] = [m for m in listed if m["id"] == "nano-banana-2"]
    assert [(t["output"], t["credits"], t["usd"]) for t in model["typical"]] == [("1 image", 10, 0.05)]  # as quoted


async def test_a_price_row_gone_from_the_feed_makes_the_price_unknown_and_capped(
    connect, controls, transport, tmp_path
):
    await controls.post("catalog/feed", {"description": feed_row("nano-banana-2"), "credits": None})
    await sync(transport, controls, tmp_path)
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        await client.call_tool("generate_image", IMAGE)
    assert quote["credits_total"] is None  # the row is gone from the feed: never auto-approved, capped as unknown
    assert quote["credits_ceiling"] == 600 and "(600 reserved against today's cap" in seen[0]


async def test_a_failing_model_is_flagged_before_anyone_spends_on_it(connect, controls, transport, tmp_path):
    await controls.post("catalog/success-rate", {"model": "nano-banana-2", "successRate": 42})
    await sync(transport, controls, tmp_path, models=("nano-banana-2",))
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        listed = (await client.call_tool("list_models", {"query": "nano banana 2"})).structured_content["models"]
        await client.call_tool("generate_image", IMAGE)
    flagged = next(m for m in listed if m["id"] == "nano-banana-2")
    assert flagged["recent_success_rate"] == 0.42
    assert "success rate of 42%" in seen[0]


async def test_a_live_model_the_bundle_lacks_is_offered_and_validated_by_its_live_schema(
    connect, controls, transport, tmp_path
):
    schema = {
        "openapi": "3.1.0",
        "paths": {
            "/api/v1/jobs/createTask": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "model": {"type": "string"},
                                        "input": {
                                            "type": "object",
                                            "properties": {
                                                "prompt": {"type": "string", "maxLength": 1000},
                                                "aspect_ratio": {"type": "string", "enum": ["1:1", "16:9"]},
                                            },
                                            "required": ["prompt"],
                                        },
                                    },
                                }
                            }
                        }
                    }
                }
            }
        },
    }
    await controls.post(
        "catalog/extra",
        {
            "model": "brand/new-image",
            "title": "Brand New Image",
            "provider": "brand",
            "taskType": ["Text to Image"],
            "pricingDesc": "4 credits per image",
            "openapi": schema,
        },
    )
    await sync(transport, controls, tmp_path)
    async with connect(elicitation=answering()) as client:
        listed = (await client.call_tool("list_models", {"query": "brand"})).structured_content["models"]
        good = await client.call_tool("estimate_cost", {"model": "brand/new-image", "prompt": "a cat"})
        bad = await client.call_tool(
            "estimate_cost", {"model": "brand/new-image", "prompt": "a cat", "aspect_ratio": "4:3"}
        )
        made = await client.call_tool("generate_image", {"model": "brand/new-image", "prompt": "a cat"})
    assert "brand/new-image" in {m["id"] for m in listed}
    assert not good.is_error, text_of(good)
    assert bad.is_error and "aspect_ratio" in text_of(bad)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert made.structured_content["tasks"][0]["files"]
    assert len(await controls.creates()) == 1  # the invalid request never reached KIE


def counted(field: str, price: str) -> dict[str, Any]:
    """The live-only image model ``brand/new-image`` (``EXTRA``), its output count named ``field`` (1-4, default 1)
    and its price text ``price``."""
    document = copy.deepcopy(EXTRA_DOC)
    fields = document["components"]["schemas"]["Input"]["properties"]
    fields[field] = fields.pop("num_images")
    return {**EXTRA, "pricingDesc": price, "openapi": document}


async def offer_counted(controls, transport, workspace: Path, field: str, price: str, charged: float) -> None:
    await controls.post("catalog/extra", counted(field, price))
    await sync(transport, controls, workspace)
    await controls.post("prices", {"brand/new-image": charged})  # what KIE charges per task, whatever the count


# A count KIE's price text cannot be applied to: a count field of another name than the documented ones (camelCase,
# "outputs"), or a price per request.
UNRECOGNISED = [("numImages", "4 credits per image."), ("num_outputs", "4 credits per image.")]
UNRECOGNISED += [("num_images", "4 credits per request")]


@pytest.mark.parametrize(("field", "price"), UNRECOGNISED)
async def test_a_live_only_model_s_unrecognised_count_field_makes_its_price_unknown_not_one_output(
    connect, controls, transport, tmp_path, field, price
):
    """It was quoted as one output's known 4 credits and auto-approved; KIE charged 16 for 4 images, past the cap."""
    await offer_counted(controls, transport, tmp_path, field, price, charged=16)
    args = {"model": "brand/new-image", "prompt": "a red fox", "options": {field: 4}, "wait_seconds": 20}
    async with connect(auto_approve_credits=5, max_credits_per_day=10) as client:
        estimate = (await client.call_tool("estimate_cost", args)).structured_content
        capped = await client.call_tool("generate_image", args)
    seen: list[str] = []
    async with connect(answering(action="decline", seen=seen), auto_approve_credits=5) as client:
        asked = await client.call_tool("generate_image", args)
    quote = estimate["quote"]
    assert (quote["price_known"], quote["credits_total"], estimate["auto_approved"]) == (False, None, False)
    assert f"does not say what {field}=4 costs" in quote["breakdown"]
    assert quote["credits_ceiling"] == 600 and not estimate["within_caps"]  # a ceiling is reserved: over the cap
    assert capped.is_error and "no price known before it runs" in text_of(capped)
    assert seen and "UNKNOWN" in seen[0] and "(600 reserved against today's cap" in seen[0]  # asked, not approved
    assert asked.structured_content["status"] == "declined", text_of(asked)
    assert await controls.creates() == []


@eras_in_turn(("field", "price"), UNRECOGNISED)
@pytest.mark.parametrize("count", [1, None])
async def test_a_live_only_model_s_unrecognised_count_field_at_one_keeps_its_known_price(
    connect, controls, transport, tmp_path, field, price, count
):
    await offer_counted(controls, transport, tmp_path, field, price, charged=4)
    options = {} if count is None else {field: count}  # None: left at its default of 1
    args = {"model": "brand/new-image", "prompt": "a red fox", "options": options, "wait_seconds": 20}
    # The caps count a live-only price's whole per-call cap per task (test_live_price_floor): 10 of today's 10
    async with connect(auto_approve_credits=5, max_credits_per_call=10, max_credits_per_day=10) as client:
        estimate = (await client.call_tool("estimate_cost", args)).structured_content
        quote = estimate["quote"]
        made = await client.call_tool("generate_image", {**args, "quote_id": quote["quote_id"]})  # the user's yes
    # Known, but only KIE's live list prices it: never auto-approved, even under the limit (test_live_price_floor)
    assert (quote["price_known"], quote["credits_total"], estimate["auto_approved"]) == (True, 4, False)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("price", ["4 credits per image.", "4 credits for each image generated", "4 credits/output"])
async def test_a_live_only_model_priced_per_image_costs_its_count_of_images_and_the_cap_holds(
    connect, controls, transport, tmp_path, price
):
    """Only the words "per image" used to be read as per image: "for each image generated" was one image's price."""
    await offer_counted(controls, transport, tmp_path, "num_images", price, charged=16)
    args = {"model": "brand/new-image", "prompt": "a red fox", "options": {"num_images": 4}, "wait_seconds": 20}
    async with connect(auto_approve_credits=5, max_credits_per_call=20, max_credits_per_day=10) as client:
        estimate = (await client.call_tool("estimate_cost", args)).structured_content
        capped = await client.call_tool("generate_image", args)
    quote = estimate["quote"]
    assert (quote["price_known"], quote["credits_total"], estimate["auto_approved"]) == (True, 16, False)
    assert "x 4 outputs (num_images)" in quote["breakdown"]
    said = text_of(capped)  # counted at the per-call cap of 20 (a live-only price), and 16 is what KIE's list says
    assert (
        capped.is_error and "costs 16 credits by KIE's list (20 counted" in said and "10 of today's cap of 10" in said
    )
    assert await controls.creates() == []


@pytest.mark.parametrize("mode", ["auto"])  # the kept catalogue, not the protocol era: once
async def test_a_server_that_stays_up_syncs_again_when_its_cache_is_a_day_old(connect, controls, tmp_path, monkeypatch):
    """The audit: the live catalogue was synced only at start-up; a host keeps the server up for weeks, so its prices
    and withdrawn models stayed as they were that day. The server looks every hour (here every 0.1 s)."""
    from kie_mcp import runtime

    monkeypatch.setattr(runtime, "CATALOG_CHECK_EVERY", 0.1)
    await controls.post("config", {"catalog_limit_per_second": 0})

    async def model_lists() -> int:
        return sum(r["path"] == "/api/v1/models" for r in (await controls.get("requests"))["requests"])

    async with connect(catalog_sync=True) as client:
        await client.list_tools()
        with anyio.fail_after(30):
            while not cache_path(tmp_path).is_file():  # noqa: ASYNC110 - the server's background task writes it
                await anyio.sleep(0.1)
        await anyio.sleep(0.5)
        assert await model_lists() == 1  # a fresh cache is not synced again
        aged = LiveCatalog.load(cache_path(tmp_path))
        aged.fetched_at = aged.attempted_at = "2026-01-01T00:00:00Z"
        aged.save(cache_path(tmp_path))
        with anyio.fail_after(30):
            while await model_lists() < 2:  # noqa: ASYNC110 - the server's background task asks KIE
                await anyio.sleep(0.1)
        while LiveCatalog.load(cache_path(tmp_path)).fetched_at == "2026-01-01T00:00:00Z":  # noqa: ASYNC110
            await anyio.sleep(0.1)
    assert LiveCatalog.load(cache_path(tmp_path)).fetched_at > "2026-12"


@pytest.mark.parametrize("mode", ["auto"])  # the kept catalogue, not the protocol era: once
async def test_a_running_server_takes_a_newer_cache_another_server_wrote(
    connect, controls, transport, tmp_path, monkeypatch
):
    """Another server (or `kie-mcp catalog sync`) on the workspace read KIE's prices after this one started: within
    the hour this one quotes them too, not the prices it read at its own start."""
    from kie_mcp import runtime

    monkeypatch.setattr(runtime, "CATALOG_CHECK_EVERY", 0.1)
    await sync(transport, controls, tmp_path)
    async with connect(catalog_sync=True) as client:
        before = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["credits_total"]
        await controls.post("catalog/feed", {"description": feed_row("nano-banana-2"), "credits": 10})
        await anyio.sleep(1.1)  # the cache's time stamps are to the second
        await sync(transport, controls, tmp_path)  # the other writer
        with anyio.fail_after(10):
            while (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["credits_total"] != 10:  # noqa: ASYNC110
                await anyio.sleep(0.1)
    assert before == 8


async def test_the_server_syncs_in_the_background_once_a_day(connect, controls, tmp_path):
    await controls.post("config", {"catalog_limit_per_second": 0})
    async with connect(catalog_sync=True) as client:
        await client.list_tools()  # start-up is not delayed by the sync
        with anyio.fail_after(30):
            while not cache_path(tmp_path).is_file():  # noqa: ASYNC110 - the server's background task writes it
                await anyio.sleep(0.2)
    live = LiveCatalog.load(cache_path(tmp_path))
    assert live.has_list and live.has_feed


async def test_a_running_server_takes_a_model_another_server_saw_kie_refuse_as_not_published(
    connect, controls, transport, tmp_path, monkeypatch
):
    """The review: a create KIE refused as not published marked the model withdrawn in the workspace's cache, but a
    server already running on the workspace took the cache again only when its model list was newer: it went on
    quoting and sending the model. Within the hour (here 0.1 s) it refuses it too, nothing sent."""
    from kie_mcp import runtime

    monkeypatch.setattr(runtime, "CATALOG_CHECK_EVERY", 0.1)
    await sync(transport, controls, tmp_path)  # a fresh cache: no sync is due
    await controls.post("catalog/withdraw", {"model": "nano-banana-pro"})  # KIE answers its creates: not published
    pro = {**IMAGE, "model": "nano-banana-pro"}
    async with connect(catalog_sync=True) as running, connect(elicitation=answering()) as other:
        before = await running.call_tool("estimate_cost", pro)
        refused = await other.call_tool("generate_image", pro)
        with anyio.fail_after(10):
            while not (await running.call_tool("estimate_cost", pro)).is_error:  # noqa: ASYNC110 - its hourly look
                await anyio.sleep(0.1)
        again = await running.call_tool("generate_image", pro)
    assert not before.is_error and "KIE does not offer nano-banana-pro now" in text_of(refused)
    assert again.is_error and "no longer offered by KIE" in text_of(again), text_of(again)
    assert len(await controls.creates()) == 1  # the other server's, which KIE refused


async def test_a_sync_keeps_the_refusal_another_server_noted_while_it_ran(connect, controls, transport, tmp_path):
    """The review: a sync loaded the cache, read KIE's lists (a minute of paced lookups), then saved what it had
    loaded and read over the cache: a model another server noted meanwhile as refused by KIE (not published) was
    offered again. The sync's save keeps that note, as no list it read came after it."""
    await controls.post("config", {"catalog_limit_per_second": 0})
    await sync(transport, controls, tmp_path)
    async with connect() as client:  # models this workspace uses: their schemas make the sync take a few seconds
        for model in ("nano-banana-2", "nano-banana-pro", "gpt-image-2-text-to-image"):
            await client.call_tool("estimate_cost", {**IMAGE, "model": model})
    aged = LiveCatalog.load(cache_path(tmp_path))
    aged.fetched_at = aged.attempted_at = "2026-01-01T00:00:00Z"  # a day old: the next start syncs
    aged.save(cache_path(tmp_path))
    await anyio.sleep(1.1)  # the list is read a second after the first sync's (time stamps: seconds)

    async def model_lists() -> int:
        return sum(r["path"] == "/api/v1/models" for r in (await controls.get("requests"))["requests"])

    pro = {**IMAGE, "model": "nano-banana-pro"}
    listed = await model_lists()
    async with connect(catalog_sync=True) as syncing, connect(elicitation=answering()) as other:
        await syncing.list_tools()
        with anyio.fail_after(10):
            while await model_lists() == listed:  # noqa: ASYNC110 - the syncing server has read KIE's model list
                await anyio.sleep(0.02)
        await controls.post("catalog/withdraw", {"model": "nano-banana-pro"})  # after that read, before its save
        refused = await other.call_tool("generate_image", pro)
        assert "KIE does not offer nano-banana-pro now" in text_of(refused), text_of(refused)
        with anyio.fail_after(30):
            while LiveCatalog.load(cache_path(tmp_path)).fetched_at == aged.fetched_at:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        mine = await syncing.call_tool("estimate_cost", pro)
    async with connect() as client:  # a server started after the sync
        later = await client.call_tool("estimate_cost", pro)
    saved = LiveCatalog.load(cache_path(tmp_path))
    assert saved.has_list and "nano-banana-pro" in (saved.models or {})  # KIE listed it when the sync read the list
    assert is_gone(saved, "nano-banana-pro"), saved.unpublished
    for answer in (mine, later):
        assert answer.is_error and "no longer offered by KIE" in text_of(answer), text_of(answer)
