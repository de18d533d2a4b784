"""Null for an optional argument means its default: LLM hosts fill every unused optional with null.

generate_image refused ``model``, ``images``, ``variations`` and ``wait_seconds`` given as null ("must be text (got
null)", ...), estimate_cost ``images`` and ``variations``, list_tasks ``limit``, check_task ``wait_seconds``. The
published schemas stay as lean as before (no ``null`` added where null is not a value of its own).
"""

from __future__ import annotations

from kie_mcp.surface import DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL

from .conftest import answering, text_of

NULLS = {
    "model": None,
    "images": None,
    "aspect_ratio": None,
    "resolution": None,
    "options": None,
    "variations": None,
    "session": None,
    "quote_id": None,
    "bind_quote_id": None,
    "max_credits": None,
    "wait_seconds": None,
}


async def test_null_optionals_take_their_defaults_in_every_tool(connect, controls):
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool("estimate_cost", {**NULLS, "model": "nano-banana-2", "prompt": "a cat"})
        image = await client.call_tool("generate_image", {**NULLS, "prompt": "a cat"})
        video = await client.call_tool("generate_video", {**NULLS, "prompt": "waves", "duration": None})
        task_id = image.structured_content["tasks"][0]["task_id"]
        listed = await client.call_tool("list_tasks", {"limit": None, "state": None})
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": None})
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for result in (quoted, image, video, listed, checked):
        assert not result.is_error, text_of(result)
    assert image.structured_content["status"] == "completed", text_of(image)  # waited its default 45 s at most
    models = [create["body"]["model"] for create in await controls.creates()]
    assert models == [DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL]
    assert len(image.structured_content["tasks"]) == 1  # variations: 1
    assert tools["generate_image"].input_schema["properties"]["variations"]["type"] == "integer"  # still lean


async def test_a_fraction_for_a_whole_number_is_refused_in_plain_words(connect, controls):
    """pydantic's own words leaked: "Input should be a valid integer, got a number with a fractional part"."""
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_video", {"prompt": "waves", "model": "veo3_fast", "duration": 7.5})
    assert result.is_error and "duration: must be a whole number (got 7.5)" in text_of(result), text_of(result)
    assert "Input should" not in text_of(result) and await controls.creates() == []
