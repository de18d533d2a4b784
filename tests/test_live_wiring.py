"""Issue 9: the server follows KIE's live catalogue (synced into the workspace cache), through the MCP client.

The cache is written by the same sync `kie-mcp catalog sync` runs, against the simulator, whose controls withdraw
a model, change or remove a price-feed row, lower a model's success rate or add a model the bundle lacks.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from kie_mcp.catalog import load_catalog
from kie_mcp.catalog.live import LiveCatalog, cache_path
from kie_mcp.kie import KieClient
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.sandbox import SANDBOX_API_KEY

from .conftest import API, UPLOADS, answering, text_of

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


def feed_row(model_id: str) -> str:
    spec = load_catalog().get(model_id)
    return next(rate.feed for rate in spec.price.rates if rate.feed)


async def sync(transport, controls, workspace: Path, models: tuple[str, ...] = ()) -> LiveCatalog:
    """What `kie-mcp catalog sync` does, quickly: the simulator's one-lookup-a-second limit is lifted."""
    await controls.post("config", {"catalog_limit_per_second": 0})
    async with KieClient(
        api_key=SANDBOX_API_KEY,
        base_url=API,
        upload_base_url=UPLOADS,
        transport=transport,
        catalog_window=SlidingWindow(1000, 1.0),
    ) as kie:
        live = await LiveCatalog().sync(kie, models_in_use=list(models))
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


async def test_the_server_syncs_in_the_background_once_a_day(connect, controls, tmp_path):
    await controls.post("config", {"catalog_limit_per_second": 0})
    async with connect(catalog_sync=True) as client:
        await client.list_tools()  # start-up is not delayed by the sync
        with anyio.fail_after(30):
            while not cache_path(tmp_path).is_file():  # noqa: ASYNC110 - the server's background task writes it
                await anyio.sleep(0.2)
    live = LiveCatalog.load(cache_path(tmp_path))
    assert live.has_list and live.has_feed
