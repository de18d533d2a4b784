"""Promise: when KIE moves (a live schema narrows a field, adds one, or a model is withdrawn), a request the user
could make before still works where kie-mcp can price it, and is refused in words that say what changed otherwise.

The audit "KIE moved" (2026-12-07) found: a plain generate_image with nano-banana-2 refused because kie-mcp's own
bundled default (resolution 1K) was no longer in KIE's live enum, though the user never set it; a value only the live
schema offers (8K) refused as if KIE had no such value; a field the live schema newly requires answered "Set it."
where no argument can carry it; and, with the default image model withdrawn, generate_image without a model, and the
alias "nano banana", refused, while kie://models still listed the alias beside the withdrawn model.
"""

from __future__ import annotations

from .conftest import answering, text_of
from .test_live_wiring import sync

NB2 = "nano-banana-2"
APPLE = {"prompt": "a red apple", "model": NB2, "wait_seconds": 5}


async def narrow_resolution(controls, transport, workspace, **extra):
    """KIE's live schema of nano-banana-2 now offers 2K, 4K and 8K, no 1K (kie-mcp's bundled default)."""
    keys = {"enum": ["2K", "4K", "8K"], **extra}
    await controls.post("catalog/schema", {"model": NB2, "input": {"properties": {"resolution": keys}}})
    await sync(transport, controls, workspace, models=(NB2,))


async def test_a_bundled_default_kie_no_longer_takes_is_replaced_by_its_live_default_and_priced_as_sent(
    connect, controls, transport, tmp_path
):
    await narrow_resolution(controls, transport, tmp_path, default="2K")
    async with connect(elicitation=answering()) as client:
        quote = await client.call_tool("estimate_cost", {"prompt": "a red apple", "model": NB2})
        made = await client.call_tool("generate_image", APPLE)
    assert not quote.is_error, text_of(quote)
    assert quote.structured_content["quote"]["credits_total"] == 12  # 2K's price, what is sent; 1K costs 8
    assert 'resolution="2K" is sent' in text_of(quote) and 'no longer allows kie-mcp\'s default "1K"' in text_of(quote)
    assert not made.is_error, text_of(made)
    [create] = await controls.creates()
    assert create["body"]["input"]["resolution"] == "2K"


async def test_a_bundled_default_kie_refuses_with_no_live_default_is_refused_saying_kie_changed_it(
    connect, controls, transport, tmp_path
):
    await narrow_resolution(controls, transport, tmp_path)  # no default, and the price depends on it
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool("generate_image", APPLE)
    assert refused.is_error
    said = text_of(refused)
    assert "KIE changed this field" in said and "Set resolution to one of 2K, 4K" in said
    assert "8K too, which kie-mcp cannot price yet" in said
    assert await controls.creates() == []


async def test_a_value_only_kie_live_schema_offers_is_refused_saying_kie_offers_it(
    connect, controls, transport, tmp_path
):
    await narrow_resolution(controls, transport, tmp_path, default="2K")
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool("generate_image", {**APPLE, "resolution": "8K"})
        asked = await client.call_tool("generate_image", {**APPLE, "resolution": "1K"})
    assert refused.is_error and asked.is_error
    assert "also offers 8K, which kie-mcp cannot price yet" in text_of(refused)
    assert '"1K" is not allowed by KIE\'s live schema' in text_of(asked)  # the user's own value: refused as set
    assert await controls.creates() == []


async def test_a_field_kie_newly_requires_that_kie_mcp_cannot_send_is_said_so(connect, controls, transport, tmp_path):
    style = {"type": "string", "enum": ["a", "b"]}
    change = {"properties": {"style": style}, "required": ["style"]}
    await controls.post("catalog/schema", {"model": NB2, "input": change})
    await sync(transport, controls, tmp_path, models=(NB2,))
    async with connect(elicitation=answering()) as client:
        plain = await client.call_tool("generate_image", APPLE)
        optioned = await client.call_tool("generate_image", {**APPLE, "options": {"style": "a"}})
    assert plain.is_error and optioned.is_error
    assert "Set it." not in text_of(plain)
    assert "kie-mcp cannot send it yet" in text_of(plain) and "Use another model" in text_of(plain)
    assert "KIE's live schema of" in text_of(optioned) and "cannot send a field its data lacks" in text_of(optioned)
    assert await controls.creates() == []


async def test_a_withdrawn_default_or_alias_target_gives_way_to_the_first_live_alternative(
    connect, controls, transport, tmp_path
):
    await controls.post("catalog/withdraw", {"model": NB2})
    await sync(transport, controls, tmp_path)
    async with connect(elicitation=answering()) as client:
        models = (await client.read_resource("kie://models")).contents[0].text
        by_default = await client.call_tool("generate_image", {"prompt": "a red apple", "wait_seconds": 5})
        by_alias = await client.call_tool("estimate_cost", {"prompt": "a red apple", "model": "nano banana"})
        by_id = await client.call_tool("generate_image", APPLE)
    assert "→ `nano-banana-2`" not in models  # no short name points at a withdrawn model
    assert not by_default.is_error, text_of(by_default)
    assert by_default.structured_content["model"] == "nano-banana-2-1" and "nano-banana-2-1 is used" in text_of(
        by_default
    )
    assert not by_alias.is_error, text_of(by_alias)
    assert "nano-banana-2-1 is used" in text_of(by_alias) and "no longer offered by KIE" in text_of(by_alias)
    assert by_id.is_error and "no longer offered by KIE" in text_of(by_id)  # named by its id: refused, as before
    assert [c["body"]["model"] for c in await controls.creates()] == ["nano-banana-2-1"]


async def test_a_stand_in_is_never_auto_approved_nor_taken_by_another_tool_or_a_resource(
    connect, controls, transport, tmp_path
):
    """The review of the stand-in: generate_video with "nano banana" made and charged an image (auto-approved) once
    nano-banana-2 was withdrawn; kie://models/Nano Banana 2 answered nano-banana-2-1's document as if it were the
    model asked for; a stand-in was auto-approved though the person never chose it and it may cost more. A stand-in
    is only ever of the tool's kind, never answers a resource, and is always asked about."""
    await controls.post("catalog/withdraw", {"model": NB2})
    await sync(transport, controls, tmp_path)
    async with connect(auto_approve_credits=30) as client:  # no form: anything not auto-approved is asked back
        video = await client.call_tool("generate_video", {"prompt": "a red apple", "model": "nano banana"})
        image = await client.call_tool("generate_image", {"prompt": "a red apple", "wait_seconds": 5})
        try:
            document = (await client.read_resource("kie://models/Nano%20Banana%202")).contents[0].text
        except Exception as refused:  # the SDK raises the server's error
            document = str(refused)
    assert video.is_error and "no longer offered by KIE" in text_of(video), text_of(video)  # refused, as before
    assert not image.is_error and image.structured_content["status"] == "confirmation_required", text_of(image)
    assert "nano-banana-2-1 is used" in text_of(image) and "Never auto-approved" in text_of(image)
    assert '"id": "nano-banana-2-1"' not in document and "no longer offered by KIE" in document, document[:300]
    assert await controls.creates() == []


async def test_estimate_cost_without_a_model_names_what_the_generate_call_would_use_now(
    connect, controls, transport, tmp_path
):
    """The review: with the default image model withdrawn, estimate_cost without a model told the agent to pass
    model='nano-banana-2', which is then refused as withdrawn, while generate_image without a model uses what stands
    in for it. It names the model the generate call would use now."""
    await controls.post("catalog/withdraw", {"model": NB2})
    await sync(transport, controls, tmp_path)
    async with connect() as client:
        refused = await client.call_tool("estimate_cost", {"prompt": "a red apple"})
    assert refused.is_error and "model='nano-banana-2-1' (generate_image)" in text_of(refused), text_of(refused)
    assert "model='veo3_fast' (generate_video)" in text_of(refused) and await controls.creates() == []
