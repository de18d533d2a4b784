"""Promise: what an agent reads of list_models (and the model tables) leads it to the price it will be asked, at a
size it can afford to read, and its filters and suggestions find what was meant.

The audit of what an agent reads: list_models said "veo3_lite (... 8 s $0.15 (30 cr; 60 counted) ...): The cheapest
Veo 3.1" beside "veo3_fast (... 8 s $0.30 (60 cr) ...)" while estimate_cost asked "up to 60 credits (about $0.30)",
so an agent told the user $0.15; the unfiltered answer was 33.8 KB of text with the same text again in
structuredContent's message (108.7 KB structured, nulls and all); kie://models.json (1.34 MB) gave no hint of its
size; "nonexistent-model" was answered "Did you mean: wan/2-2-animate-move, veo/extend, flux-kontext-pro?"; and
``query="seedance 2"`` listed Seedance 1.0's image-to-video models first (the 2 of "i2v").
"""

from __future__ import annotations

import json
import re

from jsonschema.validators import validator_for

from kie_mcp.catalog.registry import load_catalog

from .conftest import text_of
from .test_promise_model_tables import row


def _lines(listing: str) -> dict[str, str]:
    return {line.split(" ", 2)[1]: line for line in listing.splitlines() if line.startswith("- ")}


async def test_list_models_leads_with_the_price_kie_was_seen_charging_as_estimate_cost_does(connect):
    async with connect() as client:
        listing = text_of(await client.call_tool("list_models", {"kind": "video", "query": "veo"}))
        images = text_of(await client.call_tool("list_models", {"capability": "upscale"}))
        layers = text_of(await client.call_tool("list_models", {"capability": "layer-decomposition"}))
        quote = text_of(await client.call_tool("estimate_cost", {"model": "veo3_lite", "prompt": "a pier"}))
        table = (await client.read_resource("kie://models")).contents[0].text
        one = json.loads((await client.read_resource("kie://models/veo3_lite")).contents[0].text)
    lite, fast = _lines(listing)["veo3_lite"], _lines(listing)["veo3_fast"]
    assert "; 8 s up to 60 cr ($0.30; KIE lists 30) at generationType=TEXT_2_VIDEO" in lite, lite
    assert "$0.15" not in lite and "cheapest" not in lite.lower(), lite  # no figure nor word that undersells it
    assert "; 8 s 60 cr ($0.30) at generationType=TEXT_2_VIDEO" in fast, fast  # credits first, as the quote says them
    assert "up to 60 credits (about $0.30)" in quote  # ... and what estimate_cost asks is the figure listed first
    assert '"up to N cr": the most kie-mcp counts for it' in listing  # what "up to" means, said once in the answer
    assert "counted" not in "".join(_lines(listing).values())  # the unexplained "60 counted" is gone
    assert "1 image up to 40 cr ($0.20; KIE lists 20)" in _lines(images)["topaz/image-upscale"]
    assert "1 image up to 119 cr ($0.59; KIE lists 7)" in _lines(layers)["seedream/5-pro-layer-decomposition"]
    assert (
        row(table, "veo3_lite")[6]
        == "8 s up to 60 cr ($0.30; KIE lists 30) at generationType=TEXT_2_VIDEO, resolution=720p"
    )
    assert '"up to N cr"' in table.split("| Model id |")[0]  # the table says what it means too
    assert one["typical_prices"][0] | {"settings": ""} == {
        "output": "8 s clip",
        "credits": 30,
        "usd": 0.15,
        "counted": 60,
        "counted_usd": 0.3,
        "settings": "",
    }


async def test_list_models_structured_answer_holds_the_models_once_and_matches_its_schema(connect):
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("list_models", {})
    listing, structured = text_of(result), result.structured_content
    assert len(_lines(listing)) == len(structured["models"]) > 100  # the text keeps the whole listing
    assert len(structured["message"]) < 200 and "veo3_fast" not in structured["message"], structured["message"]
    dumped = json.dumps(structured)
    assert all("recent_success_rate" in model for model in structured["models"])  # every field, for code reading it
    assert len(dumped) < 2.6 * len(listing)  # was 108.7 KB for a 33.8 KB listing
    schema = tools["list_models"].output_schema
    validator_for(schema)(schema).validate(structured)  # as a TypeScript client validates it
    described = tools["list_models"].description or ""
    assert "large" in described and all(word in described for word in ("kind", "capability", "query"))
    said = tools["list_models"].input_schema["properties"]["capability"]["description"]
    capabilities = {name for spec in load_catalog().offered() for name in spec.capabilities}
    assert capabilities == set(re.findall(r"[a-z][a-z-]+[a-z]", said.split("One of: ", 1)[1].split(" (")[0]))


async def test_the_json_model_table_says_its_size_and_where_one_model_is(connect):
    async with connect() as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        size = len((await client.read_resource("kie://models.json")).contents[0].text.encode())
    described = listed["kie://models.json"].description or ""
    megabytes = float(re.search(r"about ([\d.]+) MB", described).group(1))
    assert 0.8 < size / (megabytes * 1e6) < 1.25, (size, described)  # the size it says is the size it is
    assert "kie://models/{id}" in described


async def test_an_unknown_model_far_from_every_name_gets_no_suggestion_while_a_typo_still_does(connect):
    async with connect() as client:
        far = await client.call_tool("estimate_cost", {"model": "nonexistent-model", "prompt": "x"})
        typo = await client.call_tool("estimate_cost", {"model": "veo3_fsat", "prompt": "x"})
    assert far.is_error and "Unknown model" in text_of(far) and "Did you mean" not in text_of(far), text_of(far)
    assert typo.is_error and "Did you mean: veo3_fast" in text_of(typo), text_of(typo)


async def test_a_number_in_a_query_matches_a_whole_number_never_a_digit_inside_a_word(connect):
    async with connect() as client:
        seedance = (await client.call_tool("list_models", {"query": "seedance 2"})).structured_content["models"]
        kling = (await client.call_tool("list_models", {"query": "kling 3"})).structured_content["models"]
        wan = (await client.call_tool("list_models", {"query": "wan 2.6"})).structured_content["models"]
    found = [m["id"] for m in seedance]
    assert found and all(model_id.startswith("bytedance/seedance-2") for model_id in found), found
    assert "kling-3.0/video" in {m["id"] for m in kling}  # a version's first part still finds it
    assert wan and all("2-6" in m["id"] or "2.6" in m["title"] for m in wan), [m["id"] for m in wan]
