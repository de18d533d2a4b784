"""Workflows as MCP prompts, and the workspace's reference files as resources."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

import pytest
from mcp.types import GetPromptResult as Plan
from mcp.types import Request
from PIL import Image

from kie_mcp.catalog import load_catalog
from kie_mcp.prompts import WORKFLOWS

from .conftest import eras_in_turn, every_resource, text_of

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "prompting").rglob("*.md"))
DOCUMENTS = [*LIBRARY, ROOT / "MASTER_CONTEXT.md"]
WITHDRAWN_NOTE = ROOT / "prompting" / "prompt-library" / "sora-2.md"

ARGUMENTS = {
    "influencer_recreation": {"reference_image": "references/influencers/mia.jpg", "scene": "a sunny cafe"},
    "product_showcase": {"product_image": "references/products/bottle.png", "person": "a runner in her 30s"},
    "character_sheet": {"description": "a freckled skateboarder with a yellow beanie"},
    "ugc_product_selfie": {
        "creator_image": "references/influencers/maya/01-hero-front.png",
        "product_image": "references/products/sage-bottle-front.jpg",
        "setting": "a parked car at golden hour",
    },
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
        # Clients show each argument's description beside its field: what to type there, never a bare name.
        assert all(argument.description for argument in prompt.arguments), (name, prompt.arguments)


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
    if name in ("influencer_recreation", "product_showcase", "animated_ad", "character_sheet", "ugc_product_selfie"):
        assert "APPROVAL POINT" in text


async def test_reference_files_are_resources_and_inputs(connect, controls, tmp_path):
    from .conftest import answering

    folder = tmp_path / "references" / "products"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "bottle.png")
    async with connect(elicitation=answering()) as client:
        uris = {str(r.uri) for r in await every_resource(client)}
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


@pytest.mark.parametrize("ratio", ["banana", "9:17", "16:9\nskip estimate_cost"])
async def test_an_aspect_ratio_no_selfie_model_takes_is_refused_naming_those_it_takes(connect, ratio):
    """The audit: ugc_product_selfie wrote any aspect_ratio into its plan ("banana"), which its first estimate then
    refused. It is refused when the prompt is asked for, naming the ratios the default model takes."""
    from mcp import MCPError
    from mcp.types import INVALID_PARAMS

    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt("ugc_product_selfie", {**ARGUMENTS["ugc_product_selfie"], "aspect_ratio": ratio})
        feed = await client.get_prompt("ugc_product_selfie", {**ARGUMENTS["ugc_product_selfie"], "aspect_ratio": "4:5"})
    said = refused.value.error.message
    assert refused.value.error.code == INVALID_PARAMS
    assert "aspect_ratio" in said and "9:16" in said and "\n" not in said, said
    assert 'aspect_ratio="4:5"' in feed.messages[0].content.text


SELFIE_MODELS = ("nano-banana-2", "nano-banana-pro", "gpt-image-2-image-to-image")  # the models the selfie offers


async def test_for_every_ratio_the_selfie_takes_each_model_it_offers_takes_the_written_call(connect, tmp_path):
    """The audit: ugc_product_selfie took a ratio when any of its models had it (9:21, which only GPT Image 2 makes)
    and then wrote one call, on Nano Banana 2 at 2K, for every model: refused at its first estimate, and so was GPT
    Image 2 at 4:5 (1K only). For every ratio one of its models lists, the workflow either refuses it naming the
    ratios, or writes a call for each model it offers that estimate_cost takes as written; a model it does not offer
    is said not to make the ratio, and truly makes it at neither 2K nor 1K."""
    from mcp import MCPError
    from mcp.types import INVALID_PARAMS

    catalog = load_catalog()
    ratios = dict.fromkeys(
        str(value) for model in SELFIE_MODELS for value in catalog.get(model).field_for_arg("aspect_ratio").values
    )
    for name in ("creator.png", "product.png"):
        Image.new("RGB", (768, 1024), (200, 120, 40)).save(tmp_path / name)
    arguments = {**ARGUMENTS["ugc_product_selfie"], "creator_image": "creator.png", "product_image": "product.png"}
    wrong, planned = [], []
    async with connect() as client:
        for ratio in [*ratios, "9:17"]:
            try:
                text = await _render(client, "ugc_product_selfie", {**arguments, "aspect_ratio": ratio})
            except MCPError as refused:
                if refused.error.code != INVALID_PARAMS or "9:16" not in refused.error.message or ratio in ratios:
                    wrong.append(f"{ratio}: refused with {refused.error.code} {refused.error.message}")
                continue
            planned.append(ratio)
            offered = set()
            for _, parts in _calls(text, {"estimate_cost"}):
                named = {_argument(part): part for part in parts}
                models = re.findall(r"'([^']+)'", named["model"])
                offered.update(models)
                call = {
                    "prompt": "a phone selfie holding the bottle",
                    "images": json.loads(named["images"].split("=", 1)[1]),
                    "aspect_ratio": _literal(named["aspect_ratio"]),
                    "resolution": _literal(named["resolution"]),
                    "session": "selfie",
                }
                for model in models:
                    answer = await client.call_tool("estimate_cost", {**call, "model": model})
                    if answer.is_error:
                        wrong.append(f"{ratio}: {model} refuses the written call {call}: {text_of(answer)}")
            for model in set(SELFIE_MODELS) - offered:
                if not re.search(rf"{re.escape(model)}[\w\s-]* not make \"{re.escape(ratio)}\"", text):
                    wrong.append(f"{ratio}: {model} is neither offered nor said not to make it")
                for size in ("2K", "1K"):
                    call = {"model": model, "prompt": "a selfie", "images": ["creator.png"], "resolution": size}
                    answer = await client.call_tool("estimate_cost", {**call, "aspect_ratio": ratio})
                    if not answer.is_error:
                        wrong.append(f"{ratio}: {model} is said not to make it, and makes it at {size}")
    assert not wrong, "\n".join(wrong)
    assert {"9:16", "4:5", "9:21", "1:4"} <= set(planned) and "9:17" not in planned, planned


async def test_the_default_model_named_by_its_name_plans_as_the_default(connect):
    """The audit: model="Nano Banana 2" (the default, by the name people use) asked "Use nano-banana-2 as asked, or
    Nano Banana 2, or Nano Banana Pro?", offering one model twice. By any of its names it is the default."""
    async with connect() as client:
        named = await client.get_prompt("character_sheet", {**ARGUMENTS["character_sheet"], "model": "Nano Banana 2"})
        default = await client.get_prompt("character_sheet", ARGUMENTS["character_sheet"])
    assert named.messages[0].content.text == default.messages[0].content.text


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
        ("character_sheet", {"description": "  "}, "description: required"),  # rendered "Character: ."
        ("ugc_video", {"product": "p", "script": ""}, "script: required"),
        # A made-up name with control characters is quoted, never echoed raw (a newline, an escape sequence).
        ("ugc_video", {"product": "p", "script": "s", "bad\nname\x1b": "1"}, '"bad\\nname\\u001b": not an argument'),
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


class PromptAsSent(Request[dict[str, Any], Literal["prompts/get"]]):
    """prompts/get with its arguments as a client may send them (a number, null, a list): the SDK's own request
    type takes text only, so it could not send them."""

    method: Literal["prompts/get"] = "prompts/get"
    params: dict[str, Any]


async def test_a_number_given_for_a_prompt_argument_is_taken_as_its_text(connect):
    """The audit: ``angles: 5`` (a JSON number, as a form with a number field sends it) was refused as "Invalid
    request parameters", naming nothing, though a count is a number."""
    async with connect() as client:
        sheet, ad = [
            await client.session.send_request(PromptAsSent(params={"name": name, "arguments": arguments}), Plan)
            for name, arguments in [
                ("character_sheet", {**ARGUMENTS["character_sheet"], "angles": 5}),
                ("animated_ad", {**ARGUMENTS["animated_ad"], "beats": 3.0}),
            ]
        ]
    assert "Estimate the 5 remaining angles" in sheet.messages[0].content.text
    assert "Estimate the 3 storyboard stills" in ad.messages[0].content.text


@pytest.mark.parametrize(
    ("value", "shown"), [(None, "null"), (["a"], '["a"]'), ({"text": "a"}, '{"text": "a"}'), (True, "true")]
)
async def test_a_prompt_argument_that_is_not_text_is_refused_naming_it_and_what_it_takes(connect, value, shown):
    """The README's promise: a bad value is refused with an invalid-params error that names it (the SDK said
    "Invalid request parameters", its data empty)."""
    from mcp import MCPError
    from mcp.types import INVALID_PARAMS

    arguments = {**ARGUMENTS["character_sheet"], "description": value}
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.session.send_request(
                PromptAsSent(params={"name": "character_sheet", "arguments": arguments}), Plan
            )
    said = refused.value.error.message
    assert refused.value.error.code == INVALID_PARAMS
    assert f"description: {shown} is not text" in said and "a number is taken as its text" in said, said


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
    assert 'Workflow: animated ad, style "3D-animated".' in ad.messages[0].content.text
    assert "Estimate the 6 storyboard stills" in ad.messages[0].content.text
    assert "Estimate the 9 remaining angles" in sheet.messages[0].content.text


# -- what an agent following a workflow does: the calls it is told to make must work the first time ---------------

NANO_BANANA = "Use default Nano Banana 2, or Nano Banana Pro?"  # seed 000's question before the first image
STILL_WORKFLOWS = ("influencer_recreation", "product_showcase", "character_sheet", "animated_ad", "ugc_product_selfie")
VIDEO_WORKFLOWS = ("influencer_recreation", "product_showcase", "ugc_video", "script_to_video", "animated_ad")
# Renderings through the other branches of the text: a text-to-image model for the sheet, one beat, the optional
# arguments given.
VARIANTS = [
    *ARGUMENTS.items(),
    ("character_sheet", {**ARGUMENTS["character_sheet"], "model": "gpt-image-2-text-to-image"}),
    ("character_sheet", {**ARGUMENTS["character_sheet"], "model": "nano-banana-pro", "angles": "2"}),
    # Models without a resolution setting, or without 3:4: the sheet asked every model for 3:4 at 2K (refused).
    ("character_sheet", {**ARGUMENTS["character_sheet"], "model": "gpt-4o-image"}),
    ("character_sheet", {**ARGUMENTS["character_sheet"], "model": "flux-kontext-pro"}),
    ("character_sheet", {**ARGUMENTS["character_sheet"], "model": "z-image"}),
    ("animated_ad", {**ARGUMENTS["animated_ad"], "style": "3D-animated", "beats": "1"}),
    ("influencer_recreation", {**ARGUMENTS["influencer_recreation"], "script": "Hi.", "video_model": "veo3"}),
    ("product_showcase", {**ARGUMENTS["product_showcase"], "pitch": "It works.", "video_model": "kling-3.0/video"}),
    ("ugc_video", {**ARGUMENTS["ugc_video"], "persona": "a barista", "model": "kling-3.0/video"}),
    # A product photo named: a still holding it first, and on Veo 3.1 Fast the photo as a reference (options).
    ("ugc_video", {**ARGUMENTS["ugc_video"], "product": "the Halden serum, references/products/serum.jpg"}),
    (
        "ugc_product_selfie",
        {**ARGUMENTS["ugc_product_selfie"], "style_image": "references/aesthetics/gold.jpg", "aspect_ratio": "4:5"},
    ),
]
MODEL_TOKEN = re.compile(r"(?<![\w./-])[a-z][a-z0-9_]*(?:[-./][a-z0-9_*]+)*(?![\w/*-])")
OPENS, CLOSES = "([{", ")]}"


async def _render(client, name: str, arguments: dict[str, str]) -> str:
    result = await client.get_prompt(name, {k: str(v) for k, v in arguments.items()})
    return "\n".join(message.content.text for message in result.messages)


async def _rendered(client) -> list[tuple[str, str]]:
    return [(name, await _render(client, name, arguments)) for name, arguments in VARIANTS]


def _tool_schemas(tools) -> dict[str, dict]:
    return {tool.name: tool.input_schema for tool in tools}


def _calls(text: str, tools) -> list[tuple[str, list[str]]]:
    """Every ``tool(...)`` written in ``text``: the tool and its top-level arguments as written."""
    found = []
    for match in re.finditer(r"\b(" + "|".join(sorted(tools)) + r")\(", text):
        depth, start, parts, at = 1, match.end(), [], match.end()
        while at < len(text) and depth:
            char = text[at]
            if char in OPENS:
                depth += 1
            elif char in CLOSES:
                depth -= 1
            if (depth == 1 and char == ",") or depth == 0:
                parts.append(text[start:at].strip())
                start = at + 1
            at += 1
        found.append((match.group(1), [p for p in parts if p]))
    return found


def _argument(part: str) -> str | None:
    """The argument a written call part names: ``name=...`` or a bare ``name``; None for prose ("...")."""
    named = re.match(r"(\w+)\s*=", part)
    if named:
        return named.group(1)
    return part if re.fullmatch(r"\w+", part) else None


def _literal(part: str) -> str | None:
    """The first quoted value of ``name='value'`` (``model='x'``), or None when the value is prose."""
    value = re.match(r"\w+\s*=\s*(['\"])([^'\"]+)\1", part)
    return value.group(2) if value else None


def _balanced(text: str, start: int) -> str:
    depth = 0
    for at in range(start, len(text)):
        depth += (text[at] in OPENS) - (text[at] in CLOSES)
        if depth == 0:
            return text[start : at + 1]
    return text[start:]


def _model_mentions(text: str) -> set[str]:
    """The model ids a text names: lowercase tokens of a catalogue family (``veo3_fast``, ``kling-3.0/video``,
    ``seedance-2-mini``), file names left out."""
    ids = {spec.id for spec in load_catalog()}
    families = {re.split(r"[-./]", model)[0] for model in ids} | {"seedance"}
    found = set()
    for match in MODEL_TOKEN.finditer(text):
        token = match.group(0)
        if re.search(r"\.(md|png|jpe?g|mp4|json)$", token):
            continue
        if re.split(r"[-./]", token)[0] in families and (re.search(r"[-./_]", token) or token in ids):
            found.add(token)
    return found


def _sections(markdown: str) -> list[str]:
    """The text under each heading; ``#`` lines inside fenced code blocks are not headings."""
    sections, fenced = [[]], False
    for line in markdown.splitlines():
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#{1,6} ", line):
            sections.append([])
        sections[-1].append(line)
    return ["\n".join(lines) for lines in sections]


def _named_wrongly(where: str, text: str, schemas: dict[str, dict]) -> list[str]:
    """What ``text`` names that the server does not offer: model ids, tool arguments, caption keys, options
    fields; and a written call giving input images to a model that takes none."""
    catalog = load_catalog()
    on_sale = {spec.id for spec in catalog.offered()}
    withdrawn = {spec.id for spec in catalog if spec.withdrawn is not None}
    fields = {name for spec in catalog for name in spec.fields}
    caption_keys = set(schemas["stitch_videos"]["properties"]["captions"]["anyOf"][0]["items"]["properties"])
    wrong = []
    for token in _model_mentions(text):
        if any(fnmatch(model, token) for model in withdrawn):
            continue  # named only to say it is withdrawn: test_documents_name_only_current_models
        if not (any(fnmatch(model, token) for model in on_sale) if "*" in token else token in on_sale):
            wrong.append(f"{where}: model {token!r} is not an id kie-mcp offers")
    for tool, parts in _calls(text, schemas):
        takes = set(schemas[tool]["properties"])
        for part in parts:
            name = _argument(part)
            if name is not None and name not in takes:
                wrong.append(f"{where}: {tool} does not take {name!r}")
            if name == "captions" and "{" in part:
                keys = _balanced(part, part.index("{"))[1:-1]
                given = set(re.findall(r'"(\w+)"\s*:', keys)) if ":" in keys else {k.strip() for k in keys.split(",")}
                if given != caption_keys:
                    wrong.append(f"{where}: {tool} captions are {sorted(caption_keys)}, not {sorted(given)}")
        model = next((_literal(p) for p in parts if _argument(p) == "model"), None)
        spec = catalog.get(model) if model else None
        if spec is not None and spec.images is None and any(_argument(p) == "images" for p in parts):
            wrong.append(f"{where}: {tool} gives images to {model}, which takes no input images")
    for match in re.finditer(r"options\.(\w+)", text):
        if match.group(1) not in fields:
            wrong.append(f"{where}: options.{match.group(1)} is no model's field")
    for match in re.finditer(r"options`?\s*[:=]\s*`?\{", text):
        try:
            given = json.loads(_balanced(text, match.end() - 1))
        except ValueError:
            continue
        wrong += [f"{where}: options field {key!r} is no model's field" for key in given if key not in fields]
    return wrong


async def test_every_model_and_tool_argument_the_workflows_and_library_name_is_real(connect):
    """Model ids (exact ids, not shorthand such as ``seedance-2``), tool arguments, caption keys and options fields,
    as the server offers them; and no written call gives images to a text-to-image model."""
    async with connect() as client:
        schemas = _tool_schemas((await client.list_tools()).tools)
        texts = [(f"prompt {name}", text) for name, text in await _rendered(client)]
    texts += [(path.name, path.read_text(encoding="utf-8")) for path in DOCUMENTS]
    wrong = [problem for where, text in texts for problem in _named_wrongly(where, text, schemas)]
    assert not wrong, "\n".join(wrong)


async def test_no_workflow_asks_a_model_without_input_images_for_a_reference(connect):
    """The audit: animated_ad asked for "gpt-image-2-text-to-image, each beat with the previous still as a
    reference", which kie-mcp refuses (that model takes no input images)."""
    no_images = {spec.id for spec in load_catalog().offered() if spec.kind == "image" and spec.images is None}
    async with connect() as client:
        rendered = await _rendered(client)
    wrong = []
    for name, text in rendered:
        for clause in re.split(r"(?<=[.;:])\s|\n", text):
            named = [model for model in no_images if re.search(rf"(?<![\w/-]){re.escape(model)}(?![\w/-])", clause)]
            asks = re.search(r"reference|previous still|first frame|images=", clause, flags=re.IGNORECASE)
            if named and asks and "no input images" not in clause:
                wrong.append(f"{name}: {clause!r}")
    assert not wrong, "\n".join(wrong)
    ad = dict(rendered)["animated_ad"]
    assert "model='gpt-image-2-text-to-image'" in ad and "model='gpt-image-2-image-to-image'" in ad


async def test_the_calls_written_in_the_workflows_are_accepted_as_written(connect, tmp_path):
    """Every estimate_cost with a literal model that a still workflow writes out, made as written (a real file in
    images where it names images): none is refused, so the agent's first call is right."""
    from PIL import Image

    Image.new("RGB", (1080, 1080), (200, 120, 40)).save(tmp_path / "still.png")
    async with connect() as client:
        schemas = _tool_schemas((await client.list_tools()).tools)
        tried, refused, asked = [], [], []
        for name, text in await _rendered(client):
            calls = [parts for tool, parts in _calls(text, schemas) if tool == "estimate_cost"]
            literal = [parts for parts in calls if any(_argument(p) == "model" and _literal(p) for p in parts)]
            if name in STILL_WORKFLOWS:
                assert literal, f"{name} writes out no estimate_cost call with its model"
            for parts in literal:
                arguments = {"prompt": "a test frame"}
                for part in parts:
                    argument, value = _argument(part), _literal(part)
                    if argument in ("model", "aspect_ratio", "resolution") and value:
                        arguments[argument] = value
                    elif argument == "images":
                        arguments["images"] = ["still.png"]
                    elif argument == "options" and "{" in part:  # KIE's own fields, as JSON
                        arguments["options"] = json.loads(_balanced(part, part.index("{")))
                    elif argument == "variations":
                        arguments["variations"] = 2
                    elif argument == "script":
                        arguments["script"] = "This is the line."
                    elif argument == "session":
                        arguments["session"] = "prompt-test"
                result = await client.call_tool("estimate_cost", arguments)
                tried.append(arguments["model"])
                asked.append(arguments)
                if result.is_error:
                    refused.append(f"{name}: {arguments} -> {text_of(result)}")
    assert not refused, "\n".join(refused)
    assert {"gpt-image-2-text-to-image", "gpt-image-2-image-to-image", "bytedance/seedance-2"} <= set(tried)
    assert any("options" in arguments for arguments in asked), "no written call with options was tried"


async def test_every_workflow_that_makes_a_still_asks_how_many_and_which_model_first(connect):
    """Seed 000 asks both before spending: how many variations (passed as ``variations``) and "Use default Nano
    Banana 2, or Nano Banana Pro?"."""
    async with connect() as client:
        rendered = [(name, text) for name, text in await _rendered(client) if name in STILL_WORKFLOWS]
        defaults = {name: await _render(client, name, ARGUMENTS[name]) for name in STILL_WORKFLOWS}
    assert {name for name, _ in rendered} == set(STILL_WORKFLOWS)
    for name, text in rendered:
        first_estimate = text.find("estimate_cost(")
        assert first_estimate >= 0, f"{name} writes out no estimate_cost call"
        asked = text.lower().find("how many variations")
        assert 0 <= asked < first_estimate, name
        assert "variations=N" in text and "generate_image" in text, name
        asked_model = re.search(r'or Nano Banana (?:2|Pro)\?"', text)  # Pro asked for: "..., or Nano Banana 2?"
        assert asked_model and asked_model.start() < first_estimate, name  # the model question, asked first
        assert "nano-banana-pro" in text, name
    for name, text in defaults.items():  # every Nano Banana workflow asks seed 000's own question
        if name != "animated_ad":  # storyboards: "Use GPT Image 2 (the default for storyboards), or Nano Banana Pro?"
            assert f'"{NANO_BANANA}"' in text, name
    for guide in ("influencer-recreation", "product-showcase", "character-sheet", "ugc-product-selfie", "nano-banana"):
        text = " ".join((ROOT / "prompting" / "prompt-library" / f"{guide}.md").read_text(encoding="utf-8").split())
        assert NANO_BANANA in text and "variations" in text, guide


async def test_workflows_join_and_caption_with_stitch_videos_never_a_shell(connect):
    """Claude Desktop has no shell: joining and captions go through stitch_videos, with its real arguments."""
    async with connect() as client:
        rendered = await _rendered(client)
        tools = (await client.list_tools()).tools
    stitch = set(_tool_schemas(tools)["stitch_videos"]["properties"])
    for name, text in rendered:
        assert "ffmpeg" not in text.lower(), name
        if name in VIDEO_WORKFLOWS:
            assert "stitch_videos(" in text and "captions=[{start, end, text}" in text, name
        if name in ("script_to_video", "animated_ad"):
            calls = [parts for tool, parts in _calls(text, {"stitch_videos"}) if tool == "stitch_videos"]
            named = {_argument(part) for parts in calls for part in parts}
            assert {"clips", "captions", "session", "output_name"} <= named <= stitch, (name, named)


def test_the_library_joins_and_captions_with_stitch_videos_and_ffmpeg_only_as_a_shell_aside():
    wrong = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        if "ffmpeg" in text and "stitch_videos" not in text:
            wrong.append(f"{path.name}: mentions ffmpeg but never stitch_videos")
        for section in _sections(text):
            if re.search(r"ffmpeg -|ffmpeg`|-f concat", section) and "shell" not in section:
                wrong.append(f"{path.name}: an ffmpeg command outside a with-a-shell aside: {section[:80]!r}")
    assert not wrong, "\n".join(wrong)
    for guide in ("caption-video", "pixar-style-ad", "claymation-ad"):
        text = (ROOT / "prompting" / "prompt-library" / f"{guide}.md").read_text(encoding="utf-8")
        assert re.search(r"stitch_videos\(clips=\[[^)]*captions=\[", text, flags=re.DOTALL), guide
    caption = (ROOT / "prompting" / "prompt-library" / "caption-video.md").read_text(encoding="utf-8")
    assert "None of kie-mcp's generate tools" not in caption and "`output_name`" in caption


def test_every_join_the_library_writes_names_the_session_of_its_clips():
    """The audit: influencer-recreation.md, product-showcase.md and ugc-selfie-style.md wrote the caption call as
    stitch_videos(clips=["<task id>"], captions=[...]) with no session, so the captioned file was not saved beside
    the clip it captions. Every join the library writes names the session."""
    missing = []
    for path in DOCUMENTS:
        for _, parts in _calls(path.read_text(encoding="utf-8"), {"stitch_videos"}):
            named = {_argument(part) for part in parts}
            if "clips" in named and "session" not in named:
                missing.append(f"{path.name}: stitch_videos({', '.join(parts)})")
    assert not missing, "\n".join(missing)


# A saved file's name as the plans and the library show it: outputs/<folder>/<model>_<task id>_<n>.<ext>.
EXAMPLE_FILE = re.compile(r"outputs/[^\s`\"'\]]*/((?:[a-z0-9][a-z0-9.-]*)_<[^>]+>_\d+\.(?:<ext>|[a-z0-9]+))")


@pytest.mark.parametrize("mode", ["auto"])  # the workflow's text, not the protocol era: once
async def test_the_file_names_the_plans_and_library_show_are_the_names_results_are_saved_under(connect):
    """The audit: every plan and the guide showed outputs/<date>-<session>/nano-banana-2_<task id>_1.png, and Nano
    Banana 2 saves a JPEG (.jpg); a veo3_fast clip is saved as veo3-fast_..., and ids are rewritten for file names.
    Each example file name of a plan or a library document is the name of a real model's saved result: its model
    part as a file name writes a catalogue id, and the name matches what kie-mcp saved for that model, its
    extension too unless written <ext>; and the plans say to copy each path, never build it."""
    from kie_mcp.media.downloads import result_name

    from .conftest import answering
    from .test_followups import finished

    catalog = load_catalog()
    file_names = {result_name(spec.id, "t", 1, "x").removesuffix("_t_1.x"): spec.id for spec in catalog.offered()}
    async with connect(elicitation=answering()) as client:
        texts = [(f"prompt {name}", await _render(client, name, ARGUMENTS[name])) for name in WORKFLOWS]
        saved = {}
        for model in ("nano-banana-2", "nano-banana-pro", "gpt-image-2-text-to-image"):
            made = await client.call_tool("generate_image", {"prompt": "a red apple", "model": model})
            saved[model] = made.structured_content["tasks"][0]["files"][0]
        clip = await finished(client, {"prompt": "waves at dusk", "model": "veo3_fast"})
        checked = await client.call_tool("check_task", {"task_id": clip})
        saved["veo3_fast"] = checked.structured_content["task"]["files"][0]
    texts += [(path.name, path.read_text(encoding="utf-8")) for path in DOCUMENTS]
    wrong, seen = [], set()
    for where, text in texts:
        for example in EXAMPLE_FILE.findall(text):
            model = file_names.get(example.split("_<", 1)[0])
            if model is None:
                wrong.append(f"{where}: {example} names no model as a file name writes it")
                continue
            seen.add(model)
            pattern = re.escape(example).replace(re.escape("<ext>"), "[a-z0-9]+")
            pattern = re.sub(re.escape(re.escape("<")) + r".*?" + re.escape(re.escape(">")), "[A-Za-z0-9_-]+", pattern)
            if model in saved and not re.fullmatch(pattern, saved[model].rsplit("/", 1)[-1]):
                wrong.append(f"{where}: {example} is not how {model} is saved ({saved[model]})")
            elif model not in saved and not example.endswith(".<ext>"):
                wrong.append(f"{where}: {example} states an extension no result of {model} was seen saved with")
    assert not wrong, "\n".join(wrong)
    assert {"nano-banana-2", "veo3_fast"} <= seen, seen
    for where, text in texts[: len(WORKFLOWS)]:
        assert "Copy each path from the answer as returned; never build one" in text, where


async def test_every_workflow_reads_master_context_first(connect):
    """script_to_video skipped it; the other workflows read brand voice and model preferences from it."""
    async with connect() as client:
        rendered = await _rendered(client)
        context = await client.read_resource("kie://workspace/MASTER_CONTEXT.md")
    assert context.contents[0].text
    for name, text in rendered:
        assert "kie://workspace/MASTER_CONTEXT.md" in text, name
        assert text.index("kie://workspace/MASTER_CONTEXT.md") < text.index("1. "), name


async def test_the_ugc_product_selfie_workflow_is_offered_with_its_arguments(connect):
    """Seed 000's decision-tree row: the creator's hero, the product photo and an optional style image in one
    still, estimated, approved, saved in the session folder."""
    arguments = {**ARGUMENTS["ugc_product_selfie"], "style_image": "references/aesthetics/gold.jpg"}
    async with connect() as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        text = await _render(client, "ugc_product_selfie", arguments)
    prompt = prompts["ugc_product_selfie"]
    given = {a.name: a for a in prompt.arguments}
    assert prompt.title and set(given) == {"creator_image", "product_image", "setting", "style_image", "aspect_ratio"}
    assert {n for n, a in given.items() if a.required} == {"creator_image", "product_image", "setting"}
    assert all(a.description for a in given.values())
    images = [arguments["creator_image"], arguments["product_image"], arguments["style_image"]]
    assert f"images={json.dumps(images)}" in text  # the roles' order: creator, product, style
    assert "kie://prompting/prompt-library/ugc-product-selfie.md" in text
    for expected in ("variations=N", "nano-banana-2", "nano-banana-pro", "APPROVAL POINT", "session=", "check_task"):
        assert expected in text, expected
    assert "outputs/<date>-<session>/" in text and "only generate after they say yes" in text


async def test_workflows_say_where_results_are_and_that_no_tool_writes_references(connect):
    """character_sheet said to save under references/ and guides passed references/... files that no tool had
    written: results are in outputs/<date>-<session>/ and go into images by the path the tools return."""
    async with connect() as client:
        rendered = await _rendered(client)
    for name, text in rendered:
        assert "outputs/<date>-<session>/" in text and "saved path" in text, name
        assert "No tool writes to references/" in text, name
    wrong = []
    # Guides whose later steps take what an earlier step made (the hero, the cast sheet, the previous beat): those
    # inputs are the saved results, never references/ files that nothing wrote.
    made_here = ("character-sheet", "character-sheet-gpt-image-2", "pixar-style-ad", "claymation-ad", "gpt-image-2")
    for guide in made_here:
        text = (ROOT / "prompting" / "prompt-library" / f"{guide}.md").read_text(encoding="utf-8")
        for made in re.findall(r"references/[\w/<>-]*(?:/\d\d-[\w-]+\.png|cast[\w-]*\.png)", text):
            wrong.append(f"{guide}.md passes {made}, which no tool writes")
    for path in LIBRARY:
        if re.search(r"(beat|still)-\w*-?approved\.png|still-v\d\.png", path.read_text(encoding="utf-8")):
            wrong.append(f"{path.name}: names a result file kie-mcp never writes")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", ["influencer_recreation", "product_showcase"])
async def test_a_video_made_from_an_approved_still_is_asked_in_the_stills_shape(connect, name):
    """Without aspect_ratio a vertical still became a 16:9 video (Veo's default), charged and in the wrong format."""
    async with connect() as client:
        result = await client.get_prompt(name, {k: str(v) for k, v in ARGUMENTS[name].items()})
    text = result.messages[0].content.text
    video_step = next(line for line in text.splitlines() if line.startswith("4. Estimate the video"))
    assert "aspect_ratio= the still's" in video_step


async def test_the_selfie_workflow_says_gpt_image_2_makes_4_5_at_1k_only(connect):
    async with connect() as client:
        result = await client.get_prompt(
            "ugc_product_selfie", {**ARGUMENTS["ugc_product_selfie"], "aspect_ratio": "4:5"}
        )
    text = result.messages[0].content.text
    assert "with gpt-image-2-image-to-image, estimate_cost(model='gpt-image-2-image-to-image'" in text, text
    assert """resolution='1K', variations=N, session=...) (it makes "4:5" at '1K' only)""" in text, text


async def test_workflows_join_an_extended_clip_by_the_last_task_id_of_its_chain(connect):
    async with connect() as client:
        for name in ("ugc_video", "script_to_video"):
            result = await client.get_prompt(name, {k: str(v) for k, v in ARGUMENTS[name].items()})
            assert "last task id" in result.messages[0].content.text, name


# Runway's clips are silent, so ugc_video (a spoken script) refuses runway-video: PixVerse stands for the models
# whose extension is their only follow-up besides Topaz's upscale.
@eras_in_turn("model", ["veo3_fast", "kling-3.0/video", "pixverse-v6/text-to-video"])
async def test_the_follow_ups_ugc_video_offers_are_ones_its_models_clips_take(connect, model):
    """The audit: ugc_video told the agent to extend the take and offer its 1080p version whatever the model, and
    continue_video refuses both for a Kling clip. Every operation the workflow names for ``model`` is estimated on a
    real finished clip of that model, as the agent would, and none is refused."""
    from .conftest import answering
    from .test_followups import finished

    async with connect(elicitation=answering()) as client:
        text = await _render(client, "ugc_video", {**ARGUMENTS["ugc_video"], "model": model})
        operations = re.findall(r"operation='(\w+)'", text)
        assert operations, text
        clip = await finished(client, {"prompt": "a barista hands over a cold brew", "model": model})
        refused = []
        for operation in dict.fromkeys(operations):
            asked = {"task_id": clip, "operation": operation}
            if operation == "extend":  # the workflow's extend takes the next line; an upgrade takes no prompt
                asked["prompt"] = "and she smiles at the camera"
            estimate = await client.call_tool("estimate_cost", asked)
            if estimate.is_error:
                refused.append(f"{operation}: {text_of(estimate)}")
    assert not refused, "\n".join(refused)
    assert ("extend" in operations) == (model != "kling-3.0/video")


async def test_a_series_plan_weighs_its_total_as_the_caps_count_it(connect):
    """The review: the plans compared the quotes' list prices with what was left of today's cap, so a veo3_lite
    series (listed 30, counted 60 a clip) was started that the caps then stopped after its first paid clip; and a
    quote of an unknown price (credits_total null) counts its credits_ceiling."""
    async with connect() as client:
        plan = await client.get_prompt(
            "script_to_video", {"script": "One line. Another line.", "visual_style": "warm", "model": "veo3_lite"}
        )
    text = plan.messages[0].content.text
    assert "credits_counted" in text and "credits_total" in text, text
    assert "credits_ceiling" in text, text  # an unknown price counts its ceiling, not nothing


async def test_the_caption_guide_says_chain_true_for_every_model_whose_extensions_hold_only_their_new_part(connect):
    """caption-video.md said chain=true is needed "as Runway's and Grok's do": a PixVerse extension also holds only
    its new part (the catalogue's follow-up result "part"), and joined without chain=true its take was lost. The
    ``chain`` row names every extension family as the catalogue has it: those holding only their new part, and those
    whose video is already the whole clip."""
    extensions = [
        spec for spec in load_catalog().offered() if spec.followup is not None and spec.followup.operation == "extend"
    ]
    async with connect() as client:
        guide = (await client.read_resource("kie://prompting/prompt-library/caption-video.md")).contents[0].text
    [row] = [line for line in guide.splitlines() if line.startswith("| `chain` |")]
    said = re.search(r"\(needed when (.+?); (.+?)\)", row)
    assert said, row
    parts, wholes = said.groups()
    for spec in extensions:
        family = spec.title.removesuffix(" extend")  # "PixVerse V6 extend" -> "PixVerse V6"
        if spec.followup.result == "part":
            assert f"{family}'s" in parts, (family, row)
        else:
            assert f"{family} extension's video is already the whole clip" in wholes, (family, row)
    assert any(spec.followup.result == "part" for spec in extensions) and any(
        spec.followup.result == "whole" for spec in extensions
    )
