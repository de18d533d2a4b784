"""Workflows as MCP prompts, and the workspace's reference files as resources."""

from __future__ import annotations

import re

import pytest

from kie_mcp.prompts import WORKFLOWS

ARGUMENTS = {
    "influencer_recreation": {"reference_image": "references/influencers/mia.jpg", "scene": "a sunny cafe"},
    "product_showcase": {"product_image": "references/products/bottle.png", "person": "a runner in her 30s"},
    "character_sheet": {"description": "a freckled skateboarder with a yellow beanie"},
    "ugc_video": {"product": "cold brew bottle", "script": "I stopped buying coffee on the way to work."},
    "script_to_video": {"script": "One. Two. Three.", "visual_style": "warm documentary"},
    "animated_ad": {"product": "oat milk", "story": "a carton saves breakfast", "style": "claymation"},
}


async def test_every_workflow_is_listed_with_its_arguments(connect):
    async with connect() as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(prompts) == set(WORKFLOWS) == set(ARGUMENTS)
    for name, prompt in prompts.items():
        assert prompt.title
        required = {a.name for a in prompt.arguments if a.required}
        assert required <= set(ARGUMENTS[name]), name


@pytest.mark.parametrize("name", sorted(ARGUMENTS))
async def test_workflow_text_has_the_approval_points_and_real_guides(connect, name):
    async with connect() as client:
        result = await client.get_prompt(name, {k: str(v) for k, v in ARGUMENTS[name].items()})
        text = result.messages[0].content.text
        guides = re.findall(r"kie://prompting/[\w./-]+\.md", text)
        readable = [(await client.read_resource(uri)).contents[0].text for uri in guides]
    assert "estimate_cost" in text and "only generate after they say yes" in text
    assert guides and all(readable)
    for value in ARGUMENTS[name].values():
        assert str(value) in text
    if name in ("influencer_recreation", "product_showcase", "animated_ad", "character_sheet"):
        assert "APPROVAL POINT" in text


async def test_reference_files_are_resources_and_inputs(connect, controls, tmp_path):
    from .conftest import answering

    folder = tmp_path / "references" / "products"
    folder.mkdir(parents=True)
    (folder / "bottle.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    async with connect(elicitation=answering()) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        content = await client.read_resource("kie://workspace/references/products/bottle.png")
        result = await client.call_tool(
            "generate_image",
            {
                "prompt": "same bottle on ice",
                "model": "google/nano-banana-edit",
                "images": ["references/products/bottle.png"],
            },
        )
    assert "kie://workspace/references/products/bottle.png" in uris
    assert content.contents[0].blob
    assert result.structured_content["status"] == "completed"
