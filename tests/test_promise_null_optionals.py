"""Null for an optional argument means its default: LLM hosts fill every unused optional with null.

generate_image refused ``model``, ``images``, ``variations`` and ``wait_seconds`` given as null ("must be text (got
null)", ...), estimate_cost ``images`` and ``variations``, list_tasks ``limit``, check_task ``wait_seconds``. The
published schemas stay as lean as before (no ``null`` added where null is not a value of its own).

Some hosts fill them with "" instead (Cursor is reported to): a blank string ("", or only whitespace and invisible
format characters such as a zero width space) for an optional text argument that has a default, or whose absence means
the model's default, is left out too. ``model: ""`` was refused as an unknown model, ``aspect_ratio: ""`` and
``resolution: ""`` as values the model does not allow, and estimate_cost's ``task_id: ""`` and ``operation: ""`` turned
a generation's estimate into a follow-up's, refused. A prompt or a required argument given blank is never taken for
left out: it is refused, naming it.
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


BLANKS = {  # as a host that fills unused optionals with "" sends them; whitespace alone is as blank
    "model": "",
    "aspect_ratio": "",
    "resolution": "  ",
    "session": "",
    "quote_id": " ",
    "bind_quote_id": "",
}


async def test_blank_optionals_take_their_defaults_in_every_tool_that_spends_or_prices(connect, controls):
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool(
            "estimate_cost", {**BLANKS, "model": "nano-banana-2", "prompt": "a cat", "task_id": "", "operation": ""}
        )
        image = await client.call_tool("generate_image", {**BLANKS, "prompt": "a cat"})
        video = await client.call_tool("generate_video", {**BLANKS, "prompt": "waves", "wait_seconds": 20})
        clip = video.structured_content["tasks"][0]["task_id"]
        follow = {"task_id": clip, "model": " ", "resolution": "", "session": "", "quote_id": "", "bind_quote_id": " "}
        priced = await client.call_tool("estimate_cost", {**follow, "operation": "extend", "aspect_ratio": ""})
        extended = await client.call_tool("continue_video", {**follow, "operation": "extend"})
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for result in (quoted, image, video, priced, extended):
        assert not result.is_error, text_of(result)
    assert quoted.structured_content["quote"]["model"] == "nano-banana-2", text_of(quoted)  # a generation's estimate
    assert image.structured_content["status"] == "completed", text_of(image)
    assert "unknown to this workspace" not in text_of(image)  # quote_id " " is no quote to look up
    assert video.structured_content["status"] == "completed", text_of(video)
    assert priced.structured_content["quote"]["model"] == "veo/extend", text_of(priced)  # the clip's own follow-up
    assert extended.structured_content["tasks"][0]["model"] == "veo/extend", text_of(extended)
    creates = await controls.creates()
    assert [create["body"].get("model") for create in creates[:2]] == [DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL]
    assert [create["path"] for create in creates[2:]] == ["/api/v1/veo/extend"]
    # The published schema says it where its list of values would refuse "".
    operation = tools["estimate_cost"].input_schema["properties"]["operation"]
    assert '""' in operation["description"], operation


async def test_a_blank_prompt_or_required_argument_is_refused_naming_it_never_taken_for_left_out(connect, controls):
    async with connect(elicitation=answering()) as client:
        prompt = await client.call_tool("generate_image", {**BLANKS, "prompt": "   "})
        # a zero width space and a byte order mark, a variation selector, Hangul fillers, braille blanks: all unseen
        invisible = [
            await client.call_tool("generate_image", {**BLANKS, "prompt": nothing})
            for nothing in ("\u200b\ufeff ", "\ufe0f", "\u3164", "\u115f\u1160", "\u2800\u2800")
        ]
        required = await client.call_tool("continue_video", {"task_id": "", "operation": " "})
        fine = await client.call_tool("generate_image", {**BLANKS, "prompt": "a cat"})
    assert prompt.is_error and "prompt: is required by nano-banana-2" in text_of(prompt), text_of(prompt)
    # a prompt of characters drawn as nothing says as little: it was sent to KIE and charged
    for said in invisible:
        assert said.is_error and "prompt: is required by nano-banana-2" in text_of(said), text_of(said)
    assert required.is_error, text_of(required)
    assert "task_id: must be at least 1" in text_of(required) and "operation: must be one of" in text_of(required)
    assert fine.structured_content["status"] == "completed", text_of(fine)  # the blanks alone are no problem
    assert len(await controls.creates()) == 1


INVISIBLE = {  # blank to whoever reads them: a zero width space, a byte order mark, a word joiner, joiners with a space
    "model": "\u200b",
    "aspect_ratio": "\ufeff",
    "resolution": "\u2060",
    "session": "\u200b \u200d",
    "quote_id": "\ufeff",
    "bind_quote_id": "\u200b\u200c",
}


async def test_invisible_format_characters_alone_are_blank_as_whitespace_is(connect, controls):
    """A zero width space or a byte order mark alone was refused as 'Unknown model "\\u200b"' while a no-break space
    took the default: ``str.strip`` keeps format characters (Unicode Cf)."""
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool(
            "estimate_cost",
            {**INVISIBLE, "model": "nano-banana-2", "prompt": "a cat", "task_id": "\u200b", "operation": "\ufeff"},
        )
        image = await client.call_tool("generate_image", {**INVISIBLE, "prompt": "a cat"})
        named = await client.call_tool(
            "generate_image", {**INVISIBLE, "model": "nano\u200b-banana-2", "prompt": "a cat"}
        )
    assert quoted.structured_content["quote"]["model"] == "nano-banana-2", text_of(quoted)  # a generation's estimate
    assert image.structured_content["status"] == "completed", text_of(image)
    assert "unknown to this workspace" not in text_of(image)  # quote_id "\ufeff" is no quote to look up
    assert named.is_error and "Unknown model" in text_of(named), text_of(named)  # only an all-invisible one is blank
    assert [create["body"].get("model") for create in await controls.creates()] == [DEFAULT_IMAGE_MODEL]
