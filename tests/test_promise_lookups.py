"""Promise: a lookup that finds nothing says what to try next, and a name written the way people write it finds what
it names: list_models' filters, the tools' ``model`` and a session's gallery page.

The audit: list_models(query="ugc"), (query="talking ugc video") and (capability="lipsync") answered only "No model
matches those filters." (the capability is "lip-sync"); model="veo3.1" was an unknown model though "veo 3.1" and
"veo-3.1" are Veo 3.1 Fast; kie://outputs/<session>/index.html for a session's name (its folder is
<date>-<session>) was "No gallery page..." without saying so.
"""

from __future__ import annotations

import pytest
from mcp import MCPError

from .conftest import answering, session_folder, text_of


async def test_a_query_no_model_matches_names_the_capabilities_and_the_words_that_matched_nothing(connect):
    async with connect() as client:
        ugc = text_of(await client.call_tool("list_models", {"query": "ugc"}))
        talking = text_of(await client.call_tool("list_models", {"query": "talking ugc video"}))
        together = text_of(await client.call_tool("list_models", {"query": "talking veo kling"}))
    for said in (ugc, talking, together):
        assert said.startswith("No model matches those filters.")
        assert "capability takes one of: " in said and "lip-sync" in said and "text-to-video" in said
        assert "every word is in its id, name, description" in said
    assert 'no model has "ugc"' in ugc and 'no model has "ugc":' in talking  # "talking" and "video" match models
    assert "no one model has them all" in together


async def test_a_capability_is_found_whatever_its_case_hyphens_underscores_or_spaces(connect):
    async with connect() as client:
        canonical = (await client.call_tool("list_models", {"capability": "lip-sync"})).structured_content["models"]
        written = {
            name: (await client.call_tool("list_models", {"capability": name})).structured_content["models"]
            for name in ("lipsync", "lip_sync", "Lip Sync", "LIP-SYNC")
        }
        image = await client.call_tool("list_models", {"capability": "lipsync", "kind": "image"})
    assert canonical and all(found == canonical for found in written.values())
    said = text_of(image)
    assert 'No image model has the capability "lipsync".' in said
    assert "capability takes one of: " in said and "text-to-image" in said and "text-to-video" not in said


@pytest.mark.parametrize("name", ["veo3.1", "veo 3.1", "veo-3.1", "VEO3.1"])
async def test_veo3_1_written_any_common_way_is_veo_3_1_fast(connect, name):
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", {"model": name, "prompt": "waves"})).structured_content
    assert quote["quote"]["model"] == "veo3_fast"


async def test_a_session_s_gallery_read_by_its_name_names_its_dated_folder(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {"prompt": "a serum bottle", "session": "Serum Showcase"})
        assert not made.is_error, text_of(made)
        folder = session_folder(tmp_path, "serum-showcase").name
        with pytest.raises(MCPError) as by_name:
            await client.read_resource("kie://outputs/serum-showcase/index.html")
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("kie://outputs/nothing-like-it/index.html")
        found = await client.read_resource(f"kie://outputs/{folder}/index.html")
    assert f"kie://outputs/{folder}/index.html" in by_name.value.error.message
    assert "session folders are named <date>-<session>" in by_name.value.error.message
    said = unknown.value.error.message
    assert "session folders are named <date>-<session>" in said and "-nothing-like-it" in said
    assert "kie://outputs/index.html" in said
    assert "a serum bottle" in found.contents[0].text


@pytest.mark.parametrize(
    ("model", "count"),
    [("pixverse-v6/text-to-video", 1), ("pixverse-v6/text-to-video", 2), ("kling-2.6/text-to-video", 1)],
)
async def test_a_model_without_input_images_suggests_only_models_that_take_as_many_as_were_given(
    connect, controls, model, count
):
    """The review: one image given to a text-to-video model was told to choose "pixverse-v6/transition" first, which
    takes exactly two (a first and a last frame): the advice led to a second refusal. Every model named takes as many
    images as were given."""
    from kie_mcp.catalog import load_catalog

    images = [f"https://example.com/frame-{n}.png" for n in range(count)]
    async with connect() as client:
        result = await client.call_tool("estimate_cost", {"model": model, "prompt": "a cat walks", "images": images})
    said = text_of(result)
    assert result.is_error and "does not take input images" in said, said
    named = said.split("such as ", 1)[1].split(" (list_models", 1)[0].split(", ")
    assert named, said
    for other in named:
        bounds = load_catalog().get(other).images
        assert bounds is not None and bounds.min <= count <= bounds.max, (other, count, said)
    assert ("pixverse-v6/transition" in named) == (count == 2 and model.startswith("pixverse")), said
    assert await controls.creates() == []


@pytest.mark.parametrize(
    ("model", "kind"), [("google/imagen4-fast", "image edit"), ("kling-2.6/text-to-video", "image-to-video")]
)
async def test_more_images_than_any_model_takes_are_told_the_most_any_takes(connect, controls, model, kind):
    """The review: 20 images given to imagen4-fast were told to "choose an image edit model", though none takes 20:
    the advice led to a second refusal. Now it says no model of that kind takes that many, the most any takes, and
    models that take that many."""
    from kie_mcp.catalog import load_catalog

    catalog = load_catalog()
    spec = catalog.get(model)
    capability = "edit" if spec.kind == "image" else "image-to-video"
    takers = [s for s in catalog.offered() if s.kind == spec.kind and s.images and capability in s.capabilities]
    most = max(s.images.max for s in takers)
    images = [f"https://example.com/frame-{n}.png" for n in range(most + 4)]
    async with connect() as client:
        result = await client.call_tool("estimate_cost", {"model": model, "prompt": "a cat walks", "images": images})
    said = text_of(result)
    assert result.is_error and f"no {kind} model takes {most + 4} images" in said, said
    assert f"the most any takes is {most} (such as " in said and f"Give at most {most} images" in said, said
    named = said.split("(such as ", 1)[1].split(")", 1)[0].split(", ")
    assert named and all(catalog.get(other).images.max == most for other in named), said
    assert await controls.creates() == []
