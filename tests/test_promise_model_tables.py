"""Promise: the model resources (``kie://models``, ``kie://models.json``, ``kie://models/{id}``) and list_models say
what the tools do once KIE's live catalogue is synced: the models the tools take (a live model the bundle lacks too,
none KIE withdrew), each price as estimate_cost quotes it, with its source and date (``catalog/tables.py``).

The audit: after a sync in which KIE added a model, withdrew one and raised Nano Banana 2 from 8 to 15 credits,
kie://models still said "1 image $0.04 (8 cr)" while estimate_cost quoted 15, listed the withdrawn model the tools
refuse, and left out the one list_models offered; list_models itself said "8-18 credits per task" beside a typical 15.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio

from .conftest import text_of
from .test_live_catalog import EXTRA
from .test_live_price_floor import QUALITY_ROW
from .test_live_wiring import sync

NANO_1K = "Google nano banana 2, 1K"


async def kie_changed_its_catalogue(controls, transport, workspace) -> str:
    """KIE adds brand/new-image, withdraws kling/v2-1-pro, raises Nano Banana 2 at 1K to 15 credits and lists Veo 3.1
    Quality at 1 credit (below kie-mcp's 250: the catalogue's figure counts); the workspace syncs. Its date."""
    await controls.post("catalog/extra", EXTRA)
    await controls.post("catalog/withdraw", {"model": "kling/v2-1-pro"})
    await controls.post("catalog/feed", {"description": NANO_1K, "credits": 15})
    await controls.post("catalog/feed", {"description": QUALITY_ROW, "credits": 1})
    live = await sync(transport, controls, workspace)
    return (live.feed_at or "")[:10]


def row(table: str, model_id: str) -> list[str]:
    """The cells of ``model_id``'s row of the markdown table."""
    line = next(line for line in table.splitlines() if line.startswith(f"| `{model_id}` |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


async def test_the_model_tables_offer_and_price_what_the_tools_do_after_kie_s_catalogue_changed(
    connect, controls, transport, tmp_path
):
    day = await kie_changed_its_catalogue(controls, transport, tmp_path)
    async with connect() as client:
        listed = (await client.call_tool("list_models", {})).structured_content["models"]
        nano = (
            await client.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "a pear"})
        ).structured_content
        veo = (await client.call_tool("estimate_cost", {"model": "veo3", "prompt": "waves"})).structured_content
        withdrawn = await client.call_tool("estimate_cost", {"model": "kling/v2-1-pro", "prompt": "waves"})
        table = (await client.read_resource("kie://models")).contents[0].text
        document = json.loads((await client.read_resource("kie://models.json")).contents[0].text)
        one = json.loads((await client.read_resource("kie://models/nano-banana-2")).contents[0].text)
    assert withdrawn.is_error  # the tools refuse it ...
    rows, _, gone = table.partition("Withdrawn by KIE")
    assert "`kling/v2-1-pro`" not in rows and f"- `kling/v2-1-pro` (gone from KIE's live model list of {day})" in gone
    assert "kling/v2-1-pro" not in {m["id"] for m in document["models"]}  # ... and so do the tables
    assert "kling/v2-1-pro" in {w["id"] for w in document["withdrawn"]}
    offered = {m["id"] for m in listed}
    assert "brand/new-image" in offered and "`brand/new-image`" in rows  # the live model the tools take
    assert {m["id"] for m in document["models"]} == offered

    assert nano["quote"]["credits_total"] == 15
    cells = row(table, "nano-banana-2")
    assert cells[4:7] == [
        "12-18 credits per task",
        f"KIE live price list of {day}",
        "1 image 15 cr ($0.07) at resolution=1K",
    ]
    [listed_nano] = [m for m in listed if m["id"] == "nano-banana-2"]
    assert listed_nano["price"] == "12-18 credits per task" and listed_nano["typical"][0]["credits"] == 15
    assert one["typical_prices"] == [{"output": "1 image", "credits": 15.0, "usd": 0.075, "settings": "resolution=1K"}]
    assert one["price_source"] == f"KIE live price list of {day}"
    rates = {rate["when"]["resolution"]: rate for rate in one["price"]["rates"]}
    assert (rates["1K"]["credits"], rates["1K"]["catalogue_credits"]) == (15, 8) and "catalogue_credits" not in rates[
        "2K"
    ]

    # A live price under the catalogue's is quoted, and the catalogue's is what counts: the tables say both.
    assert (veo["quote"]["credits_total"], veo["quote"]["credits_counted"]) == (1, 250)
    veo_cells = row(table, "veo3")
    assert "the catalogue's price is what counts against the caps" in veo_cells[4]
    assert veo_cells[6] == "8 s up to 250 cr ($1.25; KIE lists 1) at generationType=TEXT_2_VIDEO, resolution=720p"
    [listed_veo] = [m for m in listed if m["id"] == "veo3"]
    assert (listed_veo["typical"][0]["credits"], listed_veo["typical"][0]["counted"]) == (1, 250)


async def test_every_model_s_price_in_the_tables_is_list_models_price(connect, controls, transport, tmp_path):
    """Model by model, after the same sync: kie://models.json's price and typical prices are list_models' own."""
    await kie_changed_its_catalogue(controls, transport, tmp_path)
    async with connect() as client:
        listed = (await client.call_tool("list_models", {})).structured_content["models"]
        document = json.loads((await client.read_resource("kie://models.json")).contents[0].text)

    def typical(prices: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{key: value for key, value in price.items() if value is not None} for price in prices]

    tools = {m["id"]: (m["price"], typical(m["typical"])) for m in listed}
    tables = {m["id"]: (m["price_summary"], m["typical_prices"]) for m in document["models"]}
    assert tables == tools


async def test_list_models_text_says_the_credits_and_what_the_caps_count_as_the_model_table_does(
    connect, controls, transport, tmp_path
):
    """An agent reading only list_models' text compares what the caps and auto-approval count: each model's line
    says its typical outputs as kie://models' cell does, what the caps count first ("up to") with KIE's list after it,
    never a list price alone. The audit: "veo3_lite 8 s clip $0.15" while the caps counted 60 credits ($0.30), and
    segment-map "$0.00" where 4 are counted."""
    await kie_changed_its_catalogue(controls, transport, tmp_path)
    async with connect() as client:
        listing = text_of(await client.call_tool("list_models", {}))
        table = (await client.read_resource("kie://models")).contents[0].text
    lines = {line.split(" ", 2)[1]: line for line in listing.splitlines() if line.startswith("- ")}
    cells = {model_id: row(table, model_id)[6] for model_id in lines}
    assert [model_id for model_id, cell in cells.items() if cell and f"; {cell}): " not in lines[model_id]] == []
    assert sum("up to" in cell for cell in cells.values()) >= 3  # the figures this guards are there to compare
    lite = "; 8 s up to 60 cr ($0.30; KIE lists 30) at generationType=TEXT_2_VIDEO, resolution=720p): "
    assert lite in lines["veo3_lite"]
    assert "; 8 s up to 250 cr ($1.25; KIE lists 1) at generationType=TEXT_2_VIDEO" in lines["veo3"]
    assert "; 1 image up to 4 cr ($0.02; KIE lists 0)): " in lines["grok-imagine-image-2-0/segment-map"]


async def test_one_credit_is_said_in_the_singular_by_list_models_the_model_table_and_estimate_cost(connect, tmp_path):
    """The audit: "1 credits per task" for recraft/remove-background in the README's model table, list_models and
    estimate_cost (its figure and its breakdown). One credit reads "1 credit", wherever a model's price is said."""
    from PIL import Image

    photo = tmp_path / "mug.png"
    Image.new("RGB", (320, 320), (40, 140, 60)).save(photo)  # background removal takes 256-4096 px a side
    async with connect() as client:
        listing = text_of(await client.call_tool("list_models", {}))
        table = (await client.read_resource("kie://models")).contents[0].text
        estimate = text_of(
            await client.call_tool("estimate_cost", {"model": "recraft/remove-background", "images": [str(photo)]})
        )
    said = {"list_models": listing, "kie://models": table, "estimate_cost": estimate}
    assert {where: text for where, text in said.items() if re.search(r"(?<![\d.])1 credits\b", text)} == {}
    assert "- recraft/remove-background (image, 1 credit per task; " in listing
    assert row(table, "recraft/remove-background")[4] == "1 credit per task"
    assert "x1: 1 credit (about $0.005)." in estimate and "Breakdown: 1 credit per task" in estimate, estimate


async def test_one_credit_is_said_in_the_singular_when_it_is_quoted_spent_and_listed(connect, tmp_path):
    """The review: the no-forms quote ("This request costs 1 credits"), the Cost line of generate_image and
    check_task ("1 credits quoted and counted") and list_tasks ("(1 credits quoted)") still said it in the plural."""
    from PIL import Image

    photo = tmp_path / "mug.png"
    Image.new("RGB", (320, 320), (40, 140, 60)).save(photo)
    request = {"model": "recraft/remove-background", "images": [str(photo)]}
    async with connect() as client:
        asked = await client.call_tool("generate_image", request)
        assert asked.structured_content["status"] == "confirmation_required", text_of(asked)
        quote = asked.structured_content["quote"]["quote_id"]
        made = await client.call_tool("generate_image", {**request, "quote_id": quote})
        assert made.structured_content["status"] == "completed", text_of(made)
        task = made.structured_content["tasks"][0]["task_id"]
        checked = text_of(await client.call_tool("check_task", {"task_id": task}))
        listed = text_of(await client.call_tool("list_tasks", {}))
    said = {"the quote": text_of(asked), "generate_image": text_of(made), "check_task": checked, "list_tasks": listed}
    assert {where: text for where, text in said.items() if re.search(r"(?<![\d.])1 credits\b", text)} == {}
    assert all(re.search(r"(?<![\d.])1 credit\b", text) for text in said.values()), said


async def test_a_model_that_sets_its_own_length_is_listed_at_one_clip_never_a_bare_number(connect):
    """The journey: list_models and the model tables said "hailuo/02-text-to-video-pro (video, 57 credits per clip;
    1 $0.28 (57 cr))", and the same for veo/extend and Veo's 1080p and 4K versions: the typical output "1 clip" lost
    its word, as "5 s clip" is written "5 s". It reads "1 clip 57 cr ($0.28)" in list_models and kie://models."""
    async with connect() as client:
        listing = text_of(await client.call_tool("list_models", {}))
        table = (await client.read_resource("kie://models")).contents[0].text
    lines = {line.split(" ", 2)[1]: line for line in listing.splitlines() if line.startswith("- ")}
    assert "(video, 57 credits per clip; 1 clip 57 cr ($0.28)): " in lines["hailuo/02-text-to-video-pro"]
    assert row(table, "veo/get-4k-video")[6] == "1 clip 120 cr ($0.60)"
    bare = re.compile(
        r"(?:; |\| )\d+ (?:up to )?[\d.]+ cr"
    )  # a count with nothing counted after it, at a typical output's start
    assert [line for line in lines.values() if bare.search(line)] == [], listing
    assert [line for line in table.splitlines() if bare.search(line)] == []


async def test_a_read_of_the_model_tables_after_kie_changed_a_price_shows_the_new_price(
    connect, controls, transport, tmp_path, monkeypatch
):
    """kie://models is rendered once and kept while the catalogue and KIE's prices stay as they are (a read rendered
    it anew, 135-160 ms each). A price change a running server takes (here another server's sync, taken within its
    hourly look, here 0.1 s) is in its next read of either table, as estimate_cost quotes it."""
    from kie_mcp import runtime

    monkeypatch.setattr(runtime, "CATALOG_CHECK_EVERY", 0.1)
    await sync(transport, controls, tmp_path)
    quoted = {"model": "nano-banana-2", "prompt": "a pear"}
    async with connect(catalog_sync=True) as client:
        before = (await client.read_resource("kie://models")).contents[0].text
        again = (await client.read_resource("kie://models")).contents[0].text
        await client.read_resource("kie://models.json")
        await controls.post("catalog/feed", {"description": NANO_1K, "credits": 15})
        await anyio.sleep(1.1)  # the cache's time stamps are to the second
        await sync(transport, controls, tmp_path)  # the other writer
        with anyio.fail_after(10):
            while (await client.call_tool("estimate_cost", quoted)).structured_content["quote"]["credits_total"] != 15:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        after = (await client.read_resource("kie://models")).contents[0].text
        document = json.loads((await client.read_resource("kie://models.json")).contents[0].text)
    assert again == before and "1 image 8 cr ($0.04) at resolution=1K" in row(before, "nano-banana-2")[6]
    assert row(after, "nano-banana-2")[6] == "1 image 15 cr ($0.07) at resolution=1K", row(after, "nano-banana-2")
    [nano] = [model for model in document["models"] if model["id"] == "nano-banana-2"]
    assert nano["typical_prices"][0]["credits"] == 15


def test_a_model_table_is_rendered_once_for_the_same_catalogue_and_prices():
    """The text kept for an offer is served again, never rendered again; another live list (a sync's, which replaces
    it) is rendered anew."""
    from kie_mcp.catalog.live import LiveCatalog
    from kie_mcp.catalog.tables import Offer, model_table_json, model_table_markdown

    offer = Offer(live=LiveCatalog())
    later = Offer(offer.catalog, offer.live.model_copy())
    for table in (model_table_markdown, model_table_json):
        first = table(offer)
        assert table(offer) is first and table(Offer(offer.catalog, offer.live)) is first
        assert table(later) == first and table(later) is not first
