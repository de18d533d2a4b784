"""Issue 11, item 8: words for people.

Errors and confirmations name the tool's arguments (``resolution``, not Kling's ``mode``) and show JSON values
(``true``, not ``True``); a price source reads "KIE price list of <date>"; every timestamp anyone sees is ISO 8601
UTC with a ``Z``; a short model name behaves as the README says. Everything through the real MCP client, in both
protocol eras, against the simulator.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from kie_mcp.catalog import AmbiguousModelError, UnknownModelError, WithdrawnModelError, load_catalog
from kie_mcp.words import plain, shortened, unseen_escaped

from .conftest import answering, eras_in_turn, text_of
from .test_every_model import minimal_arguments

README = Path(__file__).resolve().parents[1] / "README.md"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
PYTHON_WORDS = re.compile(r"\b(True|False|None)\b")
KLING = {"model": "kling-3.0/video", "prompt": "a slow dolly shot of a lighthouse at dusk"}
IMAGE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table"}


async def error_text(client: Any, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, text_of(result)
    return text_of(result)


# -- argument names, not KIE's field names ------------------------------------------------------------


async def test_an_error_names_the_argument_the_user_gave_not_kies_field(connect, controls):
    async with connect() as client:
        mode = await error_text(client, "estimate_cost", {**KLING, "resolution": "hd"})
        sound = await error_text(client, "estimate_cost", {**KLING, "options": {"sound": "yes"}})
        size = await error_text(
            client, "estimate_cost", {"model": "gpt-4o-image", "prompt": "x", "aspect_ratio": "16:9"}
        )
        refs = await error_text(
            client,
            "generate_video",
            {"model": "veo3_fast", "prompt": "x", "options": {"generationType": "REFERENCE_2_VIDEO"}},
        )
    assert '- resolution: "hd" is not allowed' in mode and "mode:" not in mode  # Kling calls it mode
    assert '- options.sound: expected true or false, got "yes"' in sound  # what the user put in options
    assert '- aspect_ratio: "16:9" is not allowed' in size and "- size:" not in size  # gpt-4o-image calls it size
    assert "- images: has 0 item(s); allowed 1-3" in refs and "imageUrls" not in refs  # Veo calls it imageUrls
    assert await controls.creates() == []


async def test_a_local_file_problem_names_the_image_the_user_gave(connect, controls):
    async with connect() as client:
        text = await error_text(client, "estimate_cost", {**KLING, "images": ["https://example.com/a.png", "nope.png"]})
    assert "- images[1]:" in text and "image_urls" not in text  # Kling's field is image_urls
    assert await controls.creates() == []


# -- JSON values, not Python ones -------------------------------------------------------------------------


async def test_errors_quotes_and_confirmations_show_json_values_not_python_ones(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        twice = await error_text(client, "estimate_cost", {**KLING, "audio": True, "options": {"sound": False}})
        estimate = await client.call_tool("estimate_cost", {**KLING, "audio": True, "resolution": "1080p"})
        await client.call_tool("generate_video", {**KLING, "audio": True, "resolution": "1080p"})
    message, quote = estimate.structured_content["message"], estimate.structured_content["quote"]
    assert "given twice: audio=true and options.sound=false." in twice
    assert quote["breakdown"] == "27 credits/s x 5 s (resolution=pro, audio=true)"  # Kling's mode and sound
    settings = set(message.split("Settings: ", 1)[1].split(". ", 1)[0].split(", "))
    assert settings == {"resolution=pro", "duration=5", "audio=true", "aspect_ratio=16:9", "multi_shots=false"}
    assert "audio=true" in seen[0] and "multi_shots=false" in seen[0]  # the confirmation question
    for text in (twice, message, seen[0]):
        assert not PYTHON_WORDS.search(text), text
    for text in (message, seen[0]):
        assert "sound=" not in text and "mode=" not in text, text  # named as the user sets them
    assert await controls.creates() == []


async def test_the_confirmation_quotes_the_prompt_as_written_and_closes_the_quote_when_it_is_cut(connect, controls):
    """The audit (the demo's steps 8 and 9): the confirmation form showed the prompt as JSON, cut without its closing
    quote (``Prompt: "Close-up: ... the glass. ... (134 characters).``) and with its own quotes escaped (``says:
    \\"``). It is now quoted as written, the closing quote there when it is cut, its own quotes typographic (a
    straight one would close the quote: see the next test), with what shows nothing or turns the text around still
    escaped, its line breaks too."""
    cut = (
        "Close-up: the cold brew bottle on the marble counter, condensation running down the glass. "
        'A voice says: "Try it cold." (no subtitles)'
    )
    short = 'A barista says: "Try it cold."\u202e (no subtitles)\n## Cost: 0'
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        for prompt in (cut, short):
            await client.call_tool("generate_video", {"model": "veo3_fast", "prompt": prompt})
    excerpt = 'Prompt: "Close-up: the cold brew bottle on the marble counter, condensation running down the glass..." '
    assert excerpt in seen[0], seen[0]
    assert seen[0].count('"') == 2 and f"({len(cut)} characters)." in seen[0], seen[0]
    assert 'Prompt: "A barista says: \u201cTry it cold.\u201d\\u202e (no subtitles)\\n## Cost: 0". ' in seen[1], seen[1]
    assert seen[1].count('"') == 2 and '\\"' not in seen[1], seen[1]
    assert "\u202e" not in seen[1] and "\n" not in seen[1], seen[1]
    assert await controls.creates() == []


# A prompt written to close the quote around it and go on in kie-mcp's voice with a lower price: with a straight
# double quote, and with every character drawn as one (in its own font or a host's fallback font).
SPOOF = "a cat{q}. Cost correction: 2 credits (the figure above is a refundable hold). Prompt: {q}a cat"
QUOTE_LOOK_ALIKES = {
    "modifier-double-prime": "\u02ba",
    "double-acute-accent": "\u02dd",
    "modifier-double-apostrophe": "\u02ee",
    "hebrew-gershayim": "\u05f4",
    "double-high-reversed-9": "\u201f",
    "double-prime": "\u2033",
    "reversed-double-prime": "\u2036",
    "ditto-mark": "\u3003",
    "fullwidth-quotation-mark": "\uff02",
}


def outside_quotes(message: str) -> str:
    """``message`` without what it shows between straight double quotes: the words a reader takes as kie-mcp's."""
    return "".join(message.split('"')[::2])


@pytest.mark.parametrize(
    ("quote", "shown"),
    [('"', "\u201d"), *((char, f"\\u{ord(char):04x}") for char in QUOTE_LOOK_ALIKES.values())],
    ids=["straight", *QUOTE_LOOK_ALIKES],
)
async def test_a_prompt_cannot_close_its_quote_so_the_person_reads_the_true_price(connect, controls, quote, shown):
    """The review: the prompt's own ``"`` was shown as it was, so a prompt could end the quote around it and write
    "Cost correction: 2 credits" after it, read in the confirmation form as kie-mcp's own words beside the true
    price. Its straight quotes are now typographic, and a character drawn as one is escaped: the quote the form
    opens is closed by kie-mcp only, and all the prompt wrote stays inside it; the answer to approve in chat
    (``confirmation_required``) does not repeat it."""
    arguments = {"model": "nano-banana-2", "prompt": SPOOF.format(q=quote), "resolution": "4K"}
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        await client.call_tool("generate_image", arguments)
    async with connect() as client:  # no confirmation forms: the question comes back to approve in chat
        result = await client.call_tool("generate_image", arguments)
    data = result.structured_content
    assert data["status"] == "confirmation_required", text_of(result)
    form = seen[0]
    assert form.startswith("Spend 18 credits (about $0.09) to make 1 image"), form
    # The quote kie-mcp opens, closed by kie-mcp alone.
    assert form.count('"') == 2 and not set(QUOTE_LOOK_ALIKES.values()) & set(form), form
    assert f'Prompt: "a cat{shown}. Cost correction: 2 credits (the figure above is a refundable hold).' in form
    for message in (form, data["message"], text_of(result)):
        assert "18 credits" in outside_quotes(message), message
        assert "Cost correction" not in outside_quotes(message) and "2 credits" not in outside_quotes(message), message
    assert await controls.creates() == []


async def test_a_confirmation_to_approve_in_chat_reads_as_a_sentence(connect):
    async with connect() as client:  # no confirmation forms: the quote comes back to approve in chat
        result = await client.call_tool(
            "generate_video",
            {"model": "wan/2-6-flash-image-to-video", "prompt": "hi", "images": ["https://example.com/face.png"]},
        )
    data = result.structured_content
    assert data["status"] == "confirmation_required", text_of(result)
    assert (
        "costs an UNKNOWN number of credits (600 reserved against today's cap, about $3.00; the price"
        in (data["message"])
    )


async def test_a_confirmation_names_the_input_files_it_sends_not_only_how_many(connect, controls, tmp_path):
    """The audit: the person asked to approve read only "1 input file(s)", never which picture would be sent. The
    question (and the estimate) now names them as the call wrote them, the first four, and counts the rest."""
    from PIL import Image

    (tmp_path / "references").mkdir()
    Image.new("RGB", (320, 240), (30, 90, 160)).save(tmp_path / "references" / "serum-bottle.png")
    links = [f"https://example.com/look-{n}.png" for n in range(1, 6)]
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        one = {**IMAGE, "images": ["references/serum-bottle.png"]}
        estimate = await client.call_tool("estimate_cost", one)
        await client.call_tool("generate_image", one)
        await client.call_tool("generate_image", {**IMAGE, "images": ["references/serum-bottle.png", *links]})
    assert '1 input file: "references/serum-bottle.png".' in estimate.structured_content["message"]
    assert '1 input file: "references/serum-bottle.png".' in seen[0], seen[0]
    named = '6 input files: "references/serum-bottle.png"; "https://example.com/look-1.png"; '
    assert named in seen[1] and '"https://example.com/look-3.png"; and 2 more.' in seen[1], seen[1]
    assert "look-4" not in seen[1]
    assert await controls.creates() == []


# -- price sources in words a user trusts -------------------------------------------------------------------


async def test_a_quote_names_kie_s_price_list_and_links_kie_and_the_provenance_stays_in_the_model(connect):
    async with connect() as client:
        result = (await client.call_tool("estimate_cost", KLING)).structured_content
        document = json.loads((await client.read_resource("kie://models/kling-3.0/video")).contents[0].text)
    quote = result["quote"]
    assert quote["price_source"] == f"KIE price list of {quote['price_date']}"
    assert quote["price_reference"] == "https://kie.ai/pricing"
    assert f"Price source: KIE price list of {quote['price_date']}." in result["message"]
    assert "github" not in json.dumps(result).lower() and "capture" not in json.dumps(result)
    price_source = document["sources"][document["price"]["source"]]
    assert price_source["date"] == quote["price_date"] and len(price_source["ref"]) > 40  # the full provenance


# -- timestamps ----------------------------------------------------------------------------------------------


def timestamps_and_epochs(value: Any, where: str = "") -> tuple[list[tuple[str, str]], list[str]]:
    """Every value under a key that names a time, and every number that looks like epoch seconds, anywhere."""
    stamps: list[tuple[str, str]] = []
    epochs: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, str | int | float) and (key.endswith("_at") or key in ("created", "saved")):
                stamps.append((f"{where}.{key}", inner))
            found, old = timestamps_and_epochs(inner, f"{where}.{key}")
            stamps += found
            epochs += old
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found, old = timestamps_and_epochs(inner, f"{where}[{index}]")
            stamps += found
            epochs += old
    elif isinstance(value, int | float) and not isinstance(value, bool) and 1e9 < value < 1e10:
        epochs.append(where)
    return stamps, epochs


async def test_every_timestamp_anyone_sees_is_iso_8601_utc(connect, controls, tmp_path):
    await controls.fault("create", kind="drop_after_create")  # an unknown create: kie://tasks lists it with a time
    async with connect(elicitation=answering()) as client:
        unknown = await client.call_tool("generate_image", IMAGE)
        made = await client.call_tool("generate_image", IMAGE)
        task_id = made.structured_content["tasks"][0]["task_id"]
        seen: dict[str, Any] = {
            "unknown": unknown.structured_content,
            "made": made.structured_content,
            "estimate": (await client.call_tool("estimate_cost", IMAGE)).structured_content,
            "check_task": (await client.call_tool("check_task", {"task_id": task_id})).structured_content,
            "list_tasks": (await client.call_tool("list_tasks", {})).structured_content,
            "tasks": json.loads((await client.read_resource("kie://tasks")).contents[0].text),
            "task": json.loads((await client.read_resource(f"kie://tasks/{task_id}")).contents[0].text),
        }
    seen["sidecars"] = [json.loads(path.read_text()) for path in sorted((tmp_path / "outputs").rglob("*.json"))]
    stamps, epochs = timestamps_and_epochs(seen)
    assert seen["sidecars"] and seen["tasks"]["unknown_creates"], seen
    names = {where.rsplit(".", 1)[-1] for where, _ in stamps}
    assert {"created_at", "expires_at", "saved_at", "created"} <= names, names
    assert [(where, v) for where, v in stamps if not (isinstance(v, str) and STAMP.fullmatch(v))] == []
    assert epochs == []


async def test_a_task_keeps_its_exact_creation_time_across_a_restart(connect):
    async with connect(elicitation=answering()) as client:
        made = (await client.call_tool("generate_image", IMAGE)).structured_content["tasks"][0]
    async with connect() as again:  # read back from the journal by a new server
        listed = (await again.call_tool("list_tasks", {})).structured_content["tasks"][0]
    assert listed["created_at"] == made["created_at"] and STAMP.fullmatch(made["created_at"])


# -- short model names behave as the README says -----------------------------------------------------------


def readme_names() -> tuple[dict[str, str], dict[str, list[str]]]:
    """The short names (name -> model id) and the shared names (name -> candidates) the README documents."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    short_part = text.split("A family's short name picks one model of that family: ", 1)[1].split(". ", 1)[0]
    short: dict[str, str] = {}
    for entry in short_part.split("; "):
        names, model_id = entry.split(" → ")
        for name in re.findall(r"`([^`]+)`", names):
            short[name] = model_id.strip("`")
    shared_part = text.split("is refused with the candidates, and nothing is sent: ", 1)[1].split(" | Model id")[0]
    shared = {name: re.findall(r"`([^`]+)`", ids) for name, ids in re.findall(r"`([^`]+)` \(([^)]*)\)", shared_part)}
    return short, shared


def test_the_readme_documents_the_short_names_kling_veo_seedance_and_nano_banana():
    short, shared = readme_names()
    assert short["kling"] == "kling-3.0/video" and short["veo"] == "veo3_fast"
    assert short["seedance"] == "bytedance/seedance-2" and short["nano banana"] == "nano-banana-2"
    assert shared["flux 2"] == ["flux-2/flex-text-to-image", "flux-2/pro-text-to-image"]


async def test_a_short_name_picks_the_model_the_readme_names(connect, controls):
    short, _ = readme_names()
    catalog = load_catalog()
    async with connect() as client:
        for name, model_id in short.items():
            arguments = {**minimal_arguments(catalog.get(model_id)), "model": name}
            result = await client.call_tool("estimate_cost", arguments)
            assert not result.is_error, (name, text_of(result))
            assert result.structured_content["quote"]["model"] == model_id, name
            assert f"({model_id})" in result.structured_content["message"]  # the answer says which model it is
    assert await controls.creates() == []


async def test_a_name_several_models_share_is_refused_with_the_candidates(connect, controls):
    _, shared = readme_names()
    assert shared
    async with connect(elicitation=answering()) as client:
        for name, candidates in shared.items():
            kind = load_catalog().get(candidates[0]).kind
            text = await error_text(client, f"generate_{kind}", {"model": name, "prompt": "a lighthouse"})
            assert "means several models; nothing was sent" in text, text
            assert all(candidate in text for candidate in candidates), text
    assert await controls.creates() == []


# -- an id's last part, and the names the seeds write ---------------------------------------------------------


def id_tail(model_id: str) -> str:
    return model_id.rsplit("/", 1)[-1]


def test_every_model_s_id_and_the_last_part_of_its_id_pick_that_model_unless_others_share_it():
    """The audit: `nano-banana`, the last part of google/nano-banana's id (seed 000 writes it for the original Nano
    Banana, 4 credits), was read as the name "nano banana" and picked Nano Banana 2 (8 credits). Over the whole
    catalogue: every model's id picks it, and so does its id's last part as written when it reads as an id (a `-`,
    `_`, `.` or digit in it), unless another model's id ends in it too or another model is named exactly so: then it
    is refused, naming all of them. A last part that is a word (``video``, ``seedream``) stays a name, as it was."""
    catalog = load_catalog()
    owners: dict[str, set[str]] = {}
    for spec in catalog:
        owners.setdefault(id_tail(spec.id), set()).add(spec.id)
    for spec in catalog:
        for name in (spec.title, *spec.aliases):
            owners.get(name.lower(), set()).add(spec.id)
    wrong = []
    for spec in catalog:
        id_like = re.search(r"[-_.0-9]", id_tail(spec.id)) is not None
        tails = (id_tail(spec.id), id_tail(spec.id).upper()) if id_like else ()
        for name in dict.fromkeys((spec.id, *tails)):
            sold = {i for i in owners[id_tail(spec.id)] if catalog.get(i).withdrawn is None}
            meant = {spec.id} if name == spec.id else sold or owners[id_tail(spec.id)]
            try:
                got: object = catalog.resolve(name).id
            except WithdrawnModelError as gone:
                got = gone.model_id
            except AmbiguousModelError as shared:
                got = set(shared.candidates)
            except UnknownModelError:
                got = "unknown"
            if got != (next(iter(meant)) if len(meant) == 1 else meant):
                wrong.append(f"{name!r}: {got} (meant {sorted(meant)})")
    assert not wrong, "\n".join(wrong)
    assert catalog.resolve("nano-banana").id == "google/nano-banana"
    assert catalog.resolve("nano banana").id == "nano-banana-2"  # a name, as the README says
    assert catalog.resolve("seedream").id == "seedream/4.5-text-to-image"  # a word: Seedream 4.5's short name
    for word in ("video", "upscale", "character"):  # each the last part of one id, and no model's name
        with pytest.raises(UnknownModelError):
            catalog.resolve(word)


async def test_nano_banana_written_as_its_id_is_quoted_and_made_as_the_original_at_its_own_price(connect, controls):
    """`model: "nano-banana"` (seed 000's id for the original, legacy Nano Banana) was quoted as Nano Banana 2 at 8
    credits, and approved, made as Nano Banana 2. It is google/nano-banana, quoted at 4 credits, and the create that
    the approval lets through is that model's."""
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool("estimate_cost", {"model": "nano-banana", "prompt": "a red apple"})
        made = await client.call_tool("generate_image", {"model": "nano-banana", "prompt": "a red apple"})
    quote = quoted.structured_content["quote"]
    assert quote["model"] == "google/nano-banana" and quote["credits_total"] == 4, quote
    assert "(google/nano-banana) x1: 4 credits" in quoted.structured_content["message"]
    assert made.structured_content["model"] == "google/nano-banana", text_of(made)
    assert [create["body"]["model"] for create in await controls.creates()] == ["google/nano-banana"]


SEED_NAMES = [  # a name a seed writes, and the model it means (the catalogue's aliases say where each is from)
    ("chatgpt image 2", "gpt-image-2-text-to-image"),  # seed 000
    ("kling-3.0-i2v", "kling-3.0/video"),  # seed 001
    ("kling/text-to-video-2-1", "kling/v2-1-master-text-to-video"),  # seed 004
    ("bytedance/v1-pro", "bytedance/v1-pro-text-to-video"),  # seeds 002 and 003
]


@eras_in_turn(("name", "model_id"), SEED_NAMES)
async def test_a_name_a_seed_writes_is_quoted_as_the_model_it_means(connect, controls, name, model_id):
    """The audit: each was refused as an unknown model, though each means one model kie-mcp sells."""
    async with connect() as client:
        arguments = {**minimal_arguments(load_catalog().get(model_id)), "model": name}
        result = await client.call_tool("estimate_cost", arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content["quote"]["model"] == model_id
    assert f"({model_id})" in result.structured_content["message"]
    assert await controls.creates() == []


async def test_a_sora_id_a_seed_writes_is_refused_as_withdrawn_with_what_to_use_instead(connect, controls):
    """`sora2/text-to-video` (seed 004) was refused as an unknown model; KIE withdrew Sora 2, and the refusal says so
    and names what to use instead, as for Sora's own ids."""
    async with connect(elicitation=answering()) as client:
        text = await error_text(client, "generate_video", {"model": "sora2/text-to-video", "prompt": "a lighthouse"})
    assert "sora-2-text-to-video is no longer offered by KIE" in text and "Use instead: veo3_fast" in text, text
    assert await controls.creates() == []


# -- arguments that do not fit a tool's schema --------------------------------------------------------------------


async def test_arguments_that_do_not_fit_the_schema_are_explained_in_the_tools_words(connect, controls):
    """Not pydantic's text: the argument's name as the agent wrote it, JSON values, what is allowed, and that
    nothing was sent; every problem of the call at once."""
    async with connect(elicitation=answering()) as client:
        image = await client.call_tool(
            "generate_image", {"model": "nano-banana-2", "variations": 99, "options": "bad", "wait_seconds": "soon"}
        )
        captions = await client.call_tool(
            "stitch_videos", {"clips": ["a", "b"], "captions": [{"start": "x", "end": -1, "text": 5}]}
        )
        kind = await client.call_tool("list_models", {"kind": "audio"})
        operation = await client.call_tool("continue_video", {"task_id": "t", "operation": "8k"})
        unnamed = await client.call_tool("check_task", {})
    text = text_of(image)
    assert image.is_error and text.startswith("generate_image: some arguments do not fit; nothing was sent or spent.")
    assert "prompt" not in text  # optional (a model may take none): the model's own check asks for it
    assert "- task_id: required" in text_of(unnamed)
    assert "- variations: must be at most 10 (got 99)" in text
    assert '- options: must be an object (got "bad")' in text
    assert '- wait_seconds: must be a number (got "soon")' in text
    assert '- captions[0].start: must be a number (got "x")' in text_of(captions)
    assert "- captions[0].end: must be more than 0 (got -1)" in text_of(captions)
    assert "- captions[0].text: must be text (got 5)" in text_of(captions)
    assert '- kind: must be one of "image" or "video" (got "audio")' in text_of(kind)
    assert '- operation: must be one of "extend", "hd", "4k" or "upscale" (got "8k")' in text_of(operation)
    for result in (image, captions, kind, operation):
        shown = text_of(result)
        assert "pydantic" not in shown and "input_type" not in shown and "Arguments" not in shown
        assert "None" not in shown and "True" not in shown and "'" not in shown  # JSON values, not Python's
    assert await controls.creates() == []


def test_argument_problems_name_nested_places_and_read_values_as_json():
    from kie_mcp.words import argument_problems

    errors = [
        {"type": "missing", "loc": ("prompt",), "msg": "Field required", "input": {}},
        {"type": "bool_type", "loc": ("audio",), "msg": "Input should be a valid boolean", "input": None},
        {
            "type": "finite_number",
            "loc": ("duration", "float"),
            "msg": "Input should be a finite number",
            "input": float("nan"),
        },
        {
            "type": "string_too_long",
            "loc": ("task_id",),
            "msg": "String should have at most 200 characters",
            "ctx": {"max_length": 200},
            "input": "x" * 300,
        },
        {
            "type": "too_long",
            "loc": ("clips",),
            "msg": "List should have at most 20 items",
            "ctx": {"max_length": 20},
            "input": [],
        },
        {"type": "some_new_type", "loc": ("captions", 2, "end"), "msg": "Something else.", "input": True},
        {"type": "missing", "loc": ("prompt",), "msg": "Field required", "input": {}},
    ]
    assert argument_problems(errors) == [
        "prompt: required",
        "audio: must be true or false (got null)",
        "duration: must be a finite number (not NaN or Infinity) (got NaN)",
        "task_id: must be at most 200 characters long",
        "clips: must have at most 20 items",
        "captions[2].end: Something else (got true)",
    ]


async def test_a_tools_own_error_caused_by_a_validation_error_keeps_its_words(settings, transport):
    """Only the SDK's refusal of the arguments is reworded; a tool's own error (here one caused by a pydantic
    ValidationError inside the tool, as when KIE answers garbage) reaches the agent as the tool wrote it."""
    from mcp import Client
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import BaseModel, ValidationError

    from kie_mcp.server import create_server

    class Answer(BaseModel):
        credits: float

    server = create_server(settings, transport=transport)

    @server.tool()
    def broken(count: int) -> str:
        try:
            Answer.model_validate({"credits": "lots"})
        except ValidationError as err:
            raise ToolError("KIE answered something unreadable; nothing was spent.") from err
        return "unreachable"

    async with Client(server) as client:
        own = await client.call_tool("broken", {"count": 1})
        refused = await client.call_tool("broken", {"count": "one"})
    assert own.is_error and text_of(own) == "KIE answered something unreadable; nothing was spent."  # no SDK prefix
    assert refused.is_error and '- count: must be a whole number (got "one")' in text_of(refused)


@pytest.mark.parametrize(
    ("tail", "kept"),
    [
        ("कॉफ़ी का स्वाद", "कॉ"),  # the vowel sign ॉ stays with क (cut before it, क alone is another syllable)
        ("क्षत्रिय वंश", ""),  # क् joins ष (virama): the conjunct goes whole
        ("e\u0301tait la", "e\u0301"),  # an accent typed on a Mac (NFD) stays on its letter
        ("👩\u200d💻 at work", ""),  # the woman technologist, never a lone woman
        ("👍🏽 great", "👍🏽"),  # a thumb with its skin tone
        ("🇯🇵🇫🇷🇩🇪 flags", "🇯🇵"),  # flags whole, never a lone regional letter (a boxed J)
        ("قَهْوَة باردة", "قَ"),  # Arabic harakat stay on their letter
    ],
)
def test_a_shortened_text_never_cuts_inside_a_character_as_a_reader_sees_it(tail, kept):
    """list_tasks shows a prompt in 120 characters and the confirmation form quotes 90: cut by code point, "कॉफ़ी"
    showed "क" (another syllable), 🇯🇵 a boxed J and 👩‍💻 a lone 👩."""
    text = "x" * 115 + tail  # the cut falls after the tail's second character
    cut = shortened(text, 120)
    assert cut == "x" * 115 + kept + "...", repr(cut)
    assert len(cut) <= 120
    assert shortened("short", 120) == "short"
    echoed = plain("y" * 55 + "👩\u200d💻 and more words", limit=60)  # an error repeating a value back
    assert echoed.startswith('"' + "y" * 55 + "... (") and "👩" not in echoed, echoed


def test_text_that_is_one_long_cluster_is_still_shown_not_cut_to_nothing():
    """Stepping back to a character boundary over a letter under 300 marks (or a chain of viramas) reached the
    start: list_tasks and the confirmation showed only "..."."""
    for text in ("Z" + "\u0336" * 300 + " rest", "क्" * 100 + "ष"):
        cut = shortened(text, 120)
        assert len(cut) == 120 and cut.endswith("...") and text.startswith(cut[:-3]), repr(cut[:20])


# -- characters that show nothing, or turn the text around them ---------------------------------------------------

# Format characters text is written with, shown as they are: the zero width joiner and non-joiner, the signs
# Arabic, Syriac and Kaithi write before a number (which show), and the soft hyphen and the direction marks (which
# move no letter).
WRITTEN = set("\u200c\u200d\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd")
WRITTEN |= set("\xad\u061c\u200e\u200f")


@pytest.mark.parametrize(
    ("value", "quoted", "unquoted"),
    [
        ("invoice\u202egnp.exe", '"invoice\\u202egnp.exe"', "invoice\\u202egnp.exe"),  # shows "invoiceexe.png"
        ("a\u2067b\u2069\u200f\u061c", '"a\\u2067b\\u2069\u200f\u061c"', "a\\u2067b\\u2069\u200f\u061c"),
        ("hid\U000e0041\U000e0042den", '"hid\\udb40\\udc41\\udb40\\udc42den"', "hid\\udb40\\udc41\\udb40\\udc42den"),
        ("x\u2028y\x9b2J\x1b", '"x\\u2028y\\u009b2J\\u001b"', "x\\u2028y\\u009b2J\\u001b"),
        ("قهوة باردة", '"قهوة باردة"', "قهوة باردة"),  # right-to-left letters are letters
        ("שלום עולם", '"שלום עולם"', "שלום עולם"),
        ("می\u200cخواهم 👩\u200d💻", '"می\u200cخواهم 👩\u200d💻"', "می\u200cخواهم 👩\u200d💻"),
        ("🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", None, None),  # England's flag
        ("line\nbreak\ttab", '"line\\nbreak\\ttab"', "line\nbreak\ttab"),
    ],
    ids=[
        "override",
        "isolates-and-marks",
        "tag-letters",
        "separators-and-controls",
        "arabic",
        "hebrew",
        "joiners",
        "flag",
        "breaks",
    ],
)
def test_a_value_shown_back_escapes_what_would_show_nothing_or_turn_the_text_around(value, quoted, unquoted):
    """The audit: a file name holding a right-to-left override was shown with the override itself in the question
    that approves a spend, which turns the rest of the line around as it is displayed: a name reads as another."""
    assert plain(value, limit=200) == (quoted if quoted is not None else f'"{value}"')
    assert plain(value, quoted=False, limit=200) == (unquoted if unquoted is not None else value)
    assert unseen_escaped(shortened(value, 200)) == (unquoted if unquoted is not None else value)
    assert shortened(value, 200) == value  # data (a record's prompt) is kept as written: escaped where it is shown


def test_every_control_and_format_character_but_those_text_is_written_with_is_escaped():
    """Held to the running Python's Unicode tables: a newer Unicode that adds a format character fails here."""
    from kie_mcp import words

    assigned = [*range(0x40000), *range(0xE0000, 0xE1000)]  # planes 0 to 3 and 14 (the rest: none, or private)
    kinds = {chr(code): unicodedata.category(chr(code)) for code in assigned}
    unseen = {ch for ch, kind in kinds.items() if kind in ("Cc", "Cf", "Zl", "Zp") and ch not in WRITTEN}
    assert [ch for ch in unseen if words._unseen_escaped(ch) == ch] == []
    rest = "".join(ch for ch, kind in kinds.items() if kind != "Cs" and ch not in unseen)
    assert words._unseen_escaped(rest) == rest


@pytest.mark.parametrize("field", ["callBackUrl", "progressCallBackUrl", "webhook"])
async def test_a_callback_asked_for_in_options_is_refused_saying_why_none_is_needed(connect, controls, field):
    """Seed documents and KIE's examples pass `callBackUrl`: it was refused as "veo3_fast has no field callBackUrl"
    with no word on why, so an agent tried other spellings. The refusal says kie-mcp follows every task itself, and
    nothing is sent."""
    async with connect(elicitation=answering()) as client:
        arguments = {"model": "veo3_fast", "prompt": "a lighthouse", "options": {field: "https://example.com/hook"}}
        text = await error_text(client, "generate_video", arguments)
    assert f'has no field "{field}"' in text and "kie-mcp takes no callback" in text, text
    assert "follows every task itself" in text and await controls.creates() == []


def test_a_list_of_allowed_values_names_forty_and_says_how_many_more():
    """The review: a live schema's enum of 20,000 values made one refusal of about 300 KB, twice over."""
    from kie_mcp.words import listed

    many = listed(f"{n}K" for n in range(2, 20_000))
    assert many.startswith("2K, 3K") and many.endswith("41K and 19958 more") and len(many) < 400
    assert listed(str(n) for n in range(6, 31)) == ", ".join(str(n) for n in range(6, 31))  # Grok's 25: all named
