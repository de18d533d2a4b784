"""Workflows as MCP prompts, and the workspace's reference files as resources."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.prompts import WORKFLOWS

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "prompting").rglob("*.md"))
DOCUMENTS = [*LIBRARY, ROOT / "MASTER_CONTEXT.md"]
WITHDRAWN_NOTE = ROOT / "prompting" / "prompt-library" / "sora-2.md"

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


@pytest.mark.parametrize("name", sorted(ARGUMENTS))
def test_workflows_point_to_no_withdrawn_model(name):
    catalog = load_catalog()
    withdrawn = {s.id for s in catalog if s.withdrawn is not None}
    text = WORKFLOWS[name][1](**ARGUMENTS[name])
    assert "sora" not in text.lower()
    assert not [model for model in withdrawn if model in text]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_documents_name_only_current_models(path):
    """Model ids in backticks exist and are on sale; withdrawn ones appear only in the note that says so."""
    catalog = load_catalog()
    live = {s.id for s in catalog if s.withdrawn is None}
    withdrawn = {s.id for s in catalog if s.withdrawn is not None}
    text = path.read_text(encoding="utf-8")
    for token in set(re.findall(r"`([^`\s]+)`", text)):
        if token in withdrawn:
            assert path == WITHDRAWN_NOTE, (path.name, token)
        elif "*" in token and not token.startswith("sora"):
            assert any(fnmatch(model, token) for model in live), (path.name, token)
    if path != WITHDRAWN_NOTE:  # Sora is named only to say it is gone
        for match in re.finditer(r"sora", text, flags=re.IGNORECASE):
            nearby = text[max(match.start() - 200, 0) : match.end() + 200].lower()
            assert "withdrawn" in nearby, (path.name, nearby)


def test_the_sora_note_says_withdrawn_and_names_current_models():
    text = WITHDRAWN_NOTE.read_text(encoding="utf-8")
    assert "withdrawn" in text.lower() and "2026-09-24" in text
    live = {s.id for s in load_catalog() if s.withdrawn is None}
    named = set(re.findall(r"`([^`\s]+)`", text)) & live
    assert {"kling-3.0/video", "bytedance/seedance-2", "grok-imagine/text-to-video"} <= named


def test_gpt_4o_image_is_documented_as_one_image_per_task():
    text = (ROOT / "prompting" / "prompt-library" / "gpt-image-2.md").read_text(encoding="utf-8")
    spec = load_catalog().get("gpt-4o-image")
    assert "nVariants" not in spec.fields
    assert "one image" in text and "`nVariants` 1, 2 or 4" not in text


@pytest.mark.parametrize(
    ("name", "argument", "value", "allowed"),
    [
        ("character_sheet", "angles", "-3", "from 1 to 24"),
        ("character_sheet", "angles", "0", "from 1 to 24"),
        ("character_sheet", "angles", "abc", "from 1 to 24"),
        ("character_sheet", "angles", "9" * 5000, "from 1 to 24"),
        ("animated_ad", "beats", "1e3", "from 1 to 20"),
        ("animated_ad", "beats", "21", "from 1 to 20"),
    ],
)
async def test_a_bad_count_in_a_prompt_is_refused_naming_the_argument_and_its_range(
    connect, name, argument, value, allowed
):
    """Not "Error rendering prompt" (or, in the 2026 era, "Internal server error"): what to change."""
    from mcp import MCPError
    from mcp.types import INVALID_PARAMS

    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt(name, {**ARGUMENTS[name], argument: value})
    said = refused.value.error.message
    assert refused.value.error.code == INVALID_PARAMS
    assert argument in said and allowed in said, said
    assert len(said) < 200, said  # a pasted blob is not echoed back whole


async def test_a_count_in_a_prompt_is_taken_as_text_and_used(connect):
    async with connect() as client:
        sheet = await client.get_prompt("character_sheet", {**ARGUMENTS["character_sheet"], "angles": " 4 "})
        ad = await client.get_prompt("animated_ad", {**ARGUMENTS["animated_ad"], "beats": "3"})
    assert "Estimate the 4 remaining angles" in sheet.messages[0].content.text
    assert "Estimate the 3 storyboard stills" in ad.messages[0].content.text


@pytest.mark.parametrize(
    ("name", "arguments", "said"),
    [
        ("no_such_workflow", {}, 'no prompt named "no_such_workflow"'),
        ("ugc_video", {"product": "p"}, "script: required"),
        ("ugc_video", {"product": "p", "script": "s", "bogus": "1"}, "bogus: not an argument"),
    ],
)
async def test_a_wrong_prompt_request_is_refused_saying_what_is_wrong(connect, name, arguments, said):
    from mcp import MCPError
    from mcp.types import INVALID_PARAMS

    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt(name, arguments)
    assert refused.value.error.code == INVALID_PARAMS
    assert said in refused.value.error.message, refused.value.error.message


async def test_the_listing_says_each_counts_range(connect):
    async with connect() as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    described = {(name, a.name): a.description or "" for name, p in prompts.items() for a in p.arguments}
    assert "from 1 to 24" in described["character_sheet", "angles"]
    assert "from 1 to 20" in described["animated_ad", "beats"]


async def test_optional_prompt_arguments_left_blank_take_their_defaults(connect):
    """A client's form sends "" for an optional field left empty: it failed ("beats must be a whole number") or
    read "Workflow: animated ad, . Product ..."."""
    async with connect() as client:
        ad = await client.get_prompt("animated_ad", {**ARGUMENTS["animated_ad"], "beats": "", "style": " "})
        sheet = await client.get_prompt("character_sheet", {**ARGUMENTS["character_sheet"], "angles": ""})
    assert "Workflow: animated ad, 3D-animated." in ad.messages[0].content.text
    assert "Estimate the 6 storyboard stills" in ad.messages[0].content.text
    assert "Estimate the 9 remaining angles" in sheet.messages[0].content.text
