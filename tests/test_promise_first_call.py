"""What an agent reads gets its first call right, through the real MCP SDK client in both eras against the simulator.

The audit of what an agent reads (2026-12-08) found calls it could not get right the first time:

- Seedance 2, 2.5, Fast and Mini, Wan 3.0 and its Prime advertise many reference images, but ``images`` fills their
  first and last frame: three images were refused with "takes 0-2 image(s); got 3" and no word of
  ``options.reference_image_urls``, which only ``kie://models/{id}`` named. The refusal now says where the other
  images go, from the catalogue, for every model with another image field alike.
- estimate_cost's description did not say ``model`` is required (the generate tools have a default).
- A Veo extension refused a duration without saying how long an extension is.
- Each workflow said its ~390-character approval rule up to four times.
- list_tasks at its default of 50 wrote every file twice in its text and every null field of every task.
"""

from __future__ import annotations

import json
import re

import jsonschema
from PIL import Image

from kie_mcp.catalog import load_catalog
from kie_mcp.prompts import APPROVAL, WORKFLOWS

from .conftest import answering, eras_in_turn, text_of
from .test_followups import VEO, finished
from .test_prompts import ARGUMENTS

CATALOG = load_catalog()


def _other_images(spec) -> list[str]:
    """The model's image fields that ``images`` does not fill: where its reference images go."""
    target = spec.images
    return [
        name
        for name, field in spec.fields.items()
        if field.is_media and "image" in name and name not in target.to and name not in target.unless
    ]


ELSEWHERE = [spec for spec in CATALOG.offered() if spec.images is not None and _other_images(spec)]
AUDITED = {
    "bytedance/seedance-2",
    "bytedance/seedance-2-5",
    "bytedance/seedance-2-fast",
    "bytedance/seedance-2-mini",
    "wan/3-0-video",
    "wan/3-0-video-prime",
    "ideogram/character-remix",
}


@eras_in_turn("model", sorted(AUDITED | {spec.id for spec in ELSEWHERE}))
async def test_too_many_images_are_refused_saying_where_the_others_go(connect, controls, model):
    spec = CATALOG.get(model)
    assert spec.images is not None and _other_images(spec), model  # the audited models keep their reference fields
    links = [f"https://e.example/{n}.jpg" for n in range(spec.images.max + 1)]
    async with connect() as client:
        refused = await client.call_tool("estimate_cost", {"model": model, "prompt": "a hero shot", "images": links})
    said = text_of(refused)
    assert refused.is_error and f"takes {spec.images.min}" in said, said
    for name in _other_images(spec):
        assert f"options.{name}" in said, said
    assert f"kie://models/{model}" in said and "local paths" in said, said
    if "first-last-frame" in spec.capabilities:
        assert "first and last frame" in said and "not together with the frames" in said, said
    assert await controls.creates() == []


async def test_seedance_reference_images_priced_where_the_refusal_sends_them(connect, controls, tmp_path):
    """The advice followed: the cast sheet and two links in options.reference_image_urls, a local path among them."""
    Image.new("RGB", (640, 640), (40, 90, 200)).save(tmp_path / "cast.png")
    video = {"model": "bytedance/seedance-2", "prompt": "beat 1: the bee finds the jar", "duration": 5}
    links = ["cast.png", "https://e.example/1.jpg", "https://e.example/2.jpg"]
    async with connect() as client:
        refused = await client.call_tool("estimate_cost", {**video, "images": links})
        assert "options.reference_image_urls (up to 9; not together with the frames)" in text_of(refused)
        quoted = await client.call_tool("estimate_cost", {**video, "options": {"reference_image_urls": links}})
    assert not quoted.is_error and quoted.structured_content["quote"]["quote_id"], text_of(quoted)
    assert await controls.creates() == []


async def test_the_tool_descriptions_say_what_a_first_call_needs(connect):
    async with connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    images = tools["generate_video"].input_schema["properties"]["images"]["description"]
    assert "first and last frame" in images and "kie://models/{id}" in images, images
    assert "model required" in tools["estimate_cost"].description, tools["estimate_cost"].description


async def test_a_veo_extension_given_a_duration_says_how_long_one_is(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, {**VEO, "wait_seconds": 0})
        refused = await client.call_tool("estimate_cost", {"task_id": source, "operation": "extend", "duration": 8})
    said = text_of(refused)
    seconds = CATALOG.get("veo/extend").followup.adds_seconds
    assert refused.is_error and f"adds about {seconds} s" in said and "kie://models/veo/extend" in said, said
    assert [create["path"] for create in await controls.creates()] == ["/api/v1/veo/generate"]


async def test_each_workflow_says_the_approval_rule_once(connect):
    async with connect() as client:
        prompts = {name: await client.get_prompt(name, ARGUMENTS[name]) for name in WORKFLOWS}
    for name, prompt in prompts.items():
        said = "\n".join(message.content.text for message in prompt.messages)
        assert said.count(APPROVAL) == 1, (name, said)
        assert said.count("estimate_cost") >= 2 and "quote_id" in said, (name, said)


async def test_list_tasks_lists_twenty_by_default_and_names_each_file_once(connect):
    made = {"model": "z-image", "prompt": "a red apple", "variations": 10, "session": "bulk", "wait_seconds": 40}
    async with connect(elicitation=answering()) as client:
        for take in range(3):
            done = await client.call_tool("generate_image", {**made, "prompt": f"a red apple, take {take}"})
            assert not done.is_error, text_of(done)
        listed = await client.call_tool("list_tasks", {})
        rest = await client.call_tool("list_tasks", {"cursor": listed.structured_content["next_cursor"]})
        schema = next(t for t in (await client.list_tools()).tools if t.name == "list_tasks").output_schema
    page = listed.structured_content
    assert len(page["tasks"]) == 20 and page["total"] == 30 and len(rest.structured_content["tasks"]) == 10
    jsonschema.validate(page, schema)
    for task in page["tasks"]:
        assert task["files"] and task["credits_quoted"] == 0.8
        assert "error" in task and task["error"] is None, task  # every field there for code that reads it by name
    said = text_of(listed)
    for file in page["saved_files"]:
        assert said.count(file["path"]) == 1 and file["file_uri"] in said, said
    assert len(json.dumps(page)) < 40_000 and len(said) < 8_000
    assert re.search(r"next_cursor|cursor", said), said


@eras_in_turn(
    ("model", "other"),
    [("google/gemini-omni-flash-1-1", "first_frame_url"), ("wan/2-7-r2v", "first_frame")],
)
async def test_too_many_images_name_every_field_that_takes_pictures_whatever_its_name(connect, controls, model, other):
    """The review: fields were picked by "image" in their name, so Gemini Omni's first_frame_url and Wan 2.7 R2V's
    first_frame went unsaid. A field that takes pictures is one by the kind of media it takes; a rule barring
    images once it is set is said too (apart both ways)."""
    spec = CATALOG.get(model)
    links = [f"https://e.example/{n}.jpg" for n in range(spec.images.max + 1)]
    async with connect() as client:
        refused = await client.call_tool("estimate_cost", {"model": model, "prompt": "a hero shot", "images": links})
    said = text_of(refused)
    assert refused.is_error and f"options.{other} (one" in said, said
    if model.startswith("google/"):  # first_frame_url set, image_urls takes none
        assert "options.first_frame_url (one; not together with images)" in said, said
    assert await controls.creates() == []


async def test_too_many_images_say_which_other_field_is_required(connect):
    """The review: ideogram/character-remix's refusal offered "options.image_url (one) or options.image_urls
    (several)", and image_urls alone then failed "options.image_url: is required". A required field says so."""
    links = [f"https://e.example/{n}.jpg" for n in range(3)]
    async with connect() as client:
        refused = await client.call_tool(
            "estimate_cost", {"model": "ideogram/character-remix", "prompt": "a hero", "images": links}
        )
    said = text_of(refused)
    assert "options.image_url (one, required)" in said and "options.image_urls (several)" in said, said
