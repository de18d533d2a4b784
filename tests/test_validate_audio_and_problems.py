"""``audio`` on models with no sound setting, and one answer naming every problem (the 2026-12 client audit).

An agent asked ``estimate_cost(model="veo3_fast", audio=true, duration=10)`` was told "veo3_fast has no audio
setting" (read: no sound; Veo always has sound), then, after dropping audio, that 10 s is not allowed: three calls
for one request. Now a model that always has sound takes ``audio=true`` as what it does anyway, a silent one takes
``audio=false``, each refuses the other in words that say why, and a refusal while placing the arguments still
comes with what the checks of the rest of the request find.
"""

from __future__ import annotations

from typing import Any

import pytest

from kie_mcp.catalog import InvalidRequest, ModelSpec, build_input, load_catalog, price_input

from .conftest import answering, text_of
from .test_every_model import invalid_arguments, minimal_arguments

CATALOG = load_catalog()
OFFERED = [s for s in CATALOG.offered() if s.followup is None or s.followup.standalone]
ALWAYS_SOUND = sorted(
    s.id for s in OFFERED if s.kind == "video" and "audio" in s.capabilities and s.field_for_arg("audio") is None
)
SILENT = sorted(
    s.id for s in OFFERED if s.kind == "video" and "audio" not in s.capabilities and s.field_for_arg("audio") is None
)
SILENT_VIDEO = "bytedance/v1-pro-text-to-video"
IMAGE_MODELS = ["nano-banana-2", "google/imagen4", "gpt-image-2-text-to-image"]
IMG = "https://example.com/a.png"
ARGS = ("prompt", "images", "aspect_ratio", "resolution", "duration", "audio", "options")


def _build(spec: ModelSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    return build_input(spec, **{k: v for k, v in arguments.items() if k in ARGS})


def _problems(spec: ModelSpec, **arguments: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as caught:
        build_input(spec, **arguments)
    return [(p.field, p.message) for p in caught.value.problems]


# -- audio on a model with no sound setting --------------------------------------------------------------------


@pytest.mark.parametrize("model_id", ALWAYS_SOUND)
def test_audio_true_on_a_model_that_always_has_sound_changes_nothing(model_id):
    """Asking for the sound the model always makes sends and costs exactly what leaving audio out does."""
    spec = CATALOG.get(model_id)
    arguments = minimal_arguments(spec)
    without = _build(spec, arguments)
    with_sound = _build(spec, {**arguments, "audio": True})
    assert with_sound == without
    assert price_input(spec, with_sound) == price_input(spec, without)


def test_veo_audio_true_is_quoted_as_without_it():
    assert "veo3_fast" in ALWAYS_SOUND and len(ALWAYS_SOUND) >= 10 and SILENT_VIDEO in SILENT  # no vacuous lists
    spec = CATALOG.get("veo3_fast")
    plain = build_input(spec, prompt="a talking dog", duration=8)
    with_sound = build_input(spec, prompt="a talking dog", duration=8, audio=True)
    assert with_sound == plain and "audio" not in with_sound
    assert price_input(spec, with_sound).credits == price_input(spec, plain).credits == 60


@pytest.mark.parametrize("model_id", ALWAYS_SOUND)
def test_audio_false_on_a_model_that_always_has_sound_is_refused_saying_it_always_has_sound(model_id):
    spec = CATALOG.get(model_id)
    with pytest.raises(InvalidRequest) as caught:
        _build(spec, {**minimal_arguments(spec), "audio": False})
    (problem,) = caught.value.problems
    assert problem.field == "audio"
    assert problem.message.startswith(f"cannot be false: {model_id} always makes sound. Leave audio out, or pick ")
    assert "no audio setting" not in problem.message


def test_the_models_named_instead_of_veo_can_turn_their_sound_off():
    (problem,) = _problems(CATALOG.get("veo3_fast"), prompt="a quiet lake", audio=False)
    assert problem[1].startswith("cannot be false: veo3_fast always makes sound. Leave audio out, or pick a model ")
    named = problem[1].split("such as ", 1)[1].rstrip(".").split(", ")
    assert named
    for other in named:
        spec = CATALOG.get(other)
        assert spec.kind == "video" and spec.field_for_arg("audio") is not None and not spec.withdrawn, other


@pytest.mark.parametrize("model_id", SILENT)
def test_a_silent_video_model_takes_audio_false_and_refuses_audio_true(model_id):
    spec = CATALOG.get(model_id)
    arguments = minimal_arguments(spec)
    assert _build(spec, {**arguments, "audio": False}) == _build(spec, arguments)
    with pytest.raises(InvalidRequest) as caught:
        _build(spec, {**arguments, "audio": True})
    (problem,) = caught.value.problems
    assert problem.field == "audio"
    assert problem.message.startswith(f"cannot be true: {model_id} makes silent videos. Leave audio out, or pick ")
    assert "audio capability, which makes sound" in problem.message and "list_models" in problem.message
    for other in problem.message.split("such as ", 1)[1].split(" (", 1)[0].split(", "):
        assert "audio" in CATALOG.get(other).capabilities, other


@pytest.mark.parametrize("audio", [True, False])
@pytest.mark.parametrize("model_id", IMAGE_MODELS)
def test_an_image_model_refuses_any_audio_value_saying_images_have_no_sound(model_id, audio):
    (problem,) = _problems(CATALOG.get(model_id), prompt="a red apple", audio=audio)
    assert problem == (
        "audio",
        f"{model_id} makes images, which have no sound; leave audio out (it is for video models).",
    )


# -- one answer names every problem -------------------------------------------------------------------------------


def test_one_answer_names_the_refused_audio_and_the_refused_duration():
    """The audit's request: both problems at once, the placing one first."""
    problems = _problems(CATALOG.get("veo3_fast"), prompt="a dog barks", audio=False, duration=10)
    assert [field for field, _ in problems] == ["audio", "duration"]
    assert problems[0][1].startswith("cannot be false: veo3_fast always makes sound.")
    assert problems[1][1].startswith("10 is not allowed; allowed: 4, 6, 8")


@pytest.mark.parametrize("model_id", sorted(s.id for s in OFFERED))
def test_an_unknown_option_comes_with_every_other_problem_of_the_request(model_id):
    """Across the catalogue: an option the model does not have (nothing like any field) no longer hides the
    checks of the rest; their problems follow it, exactly as the request without it gets them."""
    spec = CATALOG.get(model_id)
    arguments, _ = invalid_arguments(spec)
    if "no_such_field" in (arguments.get("options") or {}):
        pytest.skip("no checkable setting: its invalid request is an unknown option already")
    with pytest.raises(InvalidRequest) as alone:
        _build(spec, arguments)
    options = {**(arguments.get("options") or {}), "zzzz_qqqq": 1}
    with pytest.raises(InvalidRequest) as both:
        _build(spec, {**arguments, "options": options})
    first, *rest = both.value.problems
    assert first.field == "options.zzzz_qqqq"
    assert rest == alone.value.problems


def test_missing_images_are_not_echoed_as_a_missing_field_and_the_ratio_is_still_checked():
    """grok-imagine/image-to-video needs an image: the answer says so once (not also "image_urls is required" or
    "has 0 items"), and names the aspect ratio it does not take; audio=true (it always has sound) is no problem."""
    spec = CATALOG.get("grok-imagine/image-to-video")
    problems = _problems(spec, prompt="x", aspect_ratio="4:3", resolution="1080p", audio=True)
    assert [field for field, _ in problems] == ["images", "aspect_ratio"]
    assert "needs at least 1 input image" in problems[0][1]
    assert problems[1][1].startswith('"4:3" is not allowed')


def test_a_value_given_twice_is_named_once_and_the_rest_is_still_checked():
    """duration given twice is one problem (its options value is not judged again as options.duration); the bad
    resolution beside it is named in the same answer."""
    problems = _problems(CATALOG.get("veo3_fast"), prompt="x", duration=10, resolution="8k", options={"duration": 5})
    assert [field for field, _ in problems] == ["duration", "resolution"]
    assert problems[0][1] == "given twice: duration=10 and options.duration=5."


def test_a_misspelt_required_option_is_not_also_reported_missing():
    """options.promt for Veo's required prompt: "Did you mean prompt?" once, not also "prompt is required"; the bad
    duration is named with it."""
    problems = _problems(CATALOG.get("veo3_fast"), options={"promt": "a dog"}, duration=10)
    assert [field for field, _ in problems] == ["options.promt", "duration"]
    assert 'Did you mean "prompt"?' in problems[0][1]


def test_refused_images_do_not_bring_problems_of_the_rules_that_read_them():
    """Four images on Veo (it takes 0-3): no "images: has 4 items" from the rules counting imageUrls too; a rule
    that does not read the images (REFERENCE_2_VIDEO makes 8 s clips) still judges the duration."""
    problems = _problems(
        CATALOG.get("veo3_fast"),
        prompt="x",
        images=[IMG] * 4,
        duration=4,
        options={"generationType": "REFERENCE_2_VIDEO"},
    )
    assert [field for field, _ in problems] == ["images", "duration"]
    assert problems[0][1] == "veo3_fast takes 0-3 image(s); got 4."
    assert "8 s clips only" in problems[1][1]


# -- through the MCP client ---------------------------------------------------------------------------------------


async def test_veo_with_sound_is_quoted_as_without_and_a_silent_veo_is_refused_with_every_problem(connect, controls):
    """Through the real client, in both protocol eras: audio=true on veo3_fast quotes the same price as no audio;
    audio=false is refused saying Veo always makes sound, with the duration it does not take in the same answer,
    and nothing is created or asked."""
    seen: list[str] = []
    request = {"model": "veo3_fast", "prompt": "a dog barks at the mailman"}
    async with connect(elicitation=answering(seen=seen)) as client:
        without = await client.call_tool("estimate_cost", request)
        with_sound = await client.call_tool("estimate_cost", {**request, "audio": True})
        refused = await client.call_tool("estimate_cost", {**request, "audio": False, "duration": 10})
        generated = await client.call_tool("generate_video", {**request, "audio": False})
        silent = await client.call_tool("estimate_cost", {"model": SILENT_VIDEO, "prompt": "x", "audio": True})
        quiet = await client.call_tool("estimate_cost", {"model": SILENT_VIDEO, "prompt": "x", "audio": False})
    assert not without.is_error and not with_sound.is_error, text_of(with_sound)
    quoted, plain = with_sound.structured_content["quote"], without.structured_content["quote"]
    assert quoted["credits_total"] == plain["credits_total"] == 60
    assert quoted["breakdown"] == plain["breakdown"]
    text = text_of(refused)
    assert refused.is_error, text
    assert "- audio: cannot be false: veo3_fast always makes sound. Leave audio out" in text
    assert "- duration: 10 is not allowed; allowed: 4, 6, 8" in text
    assert text.index("- audio:") < text.index("- duration:")
    assert "no audio setting" not in text
    assert generated.is_error and "always makes sound" in text_of(generated)
    assert silent.is_error and f"- audio: cannot be true: {SILENT_VIDEO} makes silent videos" in text_of(silent)
    assert not quiet.is_error, text_of(quiet)
    assert seen == []  # no confirmation was asked
    assert await controls.creates() == []


def _named_models(message: str) -> list[str]:
    """The models a refusal names after "such as", up to its bracket."""
    return message.split("such as ", 1)[1].split(" (", 1)[0].split(", ")


async def test_a_script_a_model_cannot_speak_is_refused_beside_every_other_problem_naming_the_audio_refusals_models(
    connect, controls
):
    """The audit: a script on a silent model hid the rest of the request: runway-video with a script, audio=true,
    duration=7 and aspect_ratio=2:1 was told only of the script (three more calls to learn the rest), and the script
    refusal named other models with sound than the audio refusal did. A script too long for a speaking model hid a
    ratio it does not take the same way. Now one answer names them all, the script's and audio's with the same
    models, and nothing is created or asked."""
    seen: list[str] = []
    silent = {"model": "runway-video", "prompt": "a paper boat", "script": "Hello there.", "audio": True}
    silent |= {"duration": 7, "aspect_ratio": "2:1"}
    long_script = " ".join(["Our new bottle keeps water cold all day long."] * 6)  # 54 words: about 22 s spoken
    speaking = {"model": "kling-2.6/text-to-video", "prompt": "a hiker", "script": long_script, "aspect_ratio": "2:1"}
    async with connect(elicitation=answering(seen=seen)) as client:
        estimated = await client.call_tool("estimate_cost", silent)
        generated = await client.call_tool("generate_video", silent)
        too_long = await client.call_tool("estimate_cost", speaking)
    text = text_of(estimated)
    assert estimated.is_error and generated.is_error, text_of(generated)
    assert text_of(generated).split("\n", 1)[1] == text.split("\n", 1)[1]  # the same problems, each tool
    problems = dict(line[2:].split(": ", 1) for line in text.splitlines() if line.startswith("- "))
    assert set(problems) == {"script", "audio", "duration", "aspect_ratio"}, text
    assert problems["script"].startswith("runway-video makes silent video, so the script would not be spoken.")
    assert _named_models(problems["script"]) == _named_models(problems["audio"])
    for other in _named_models(problems["script"]):
        assert "audio" in CATALOG.get(other).capabilities, other
    assert too_long.is_error, text_of(too_long)
    assert "- script: the script has 54 words" in text_of(too_long) and "- aspect_ratio: " in text_of(too_long)
    assert seen == [] and await controls.creates() == []


async def test_a_script_refused_with_no_prompt_is_the_requests_only_problem_never_a_missing_prompt(connect, controls):
    """The review: a script stands for the prompt (its words are what the clip says), so a request with a script and
    no prompt is whole. When the script was refused (too long for one clip, or a silent model), the rest of the
    request was judged without it and the answer added "prompt: is required", a problem the request does not have:
    115 of the review's requests showed it. Now a refused script is the only problem of such a request, and a real
    second problem is still named beside it."""
    long_script = " ".join(["This is a sentence that takes some time to say out loud."] * 40)  # 480 words
    requests = [
        {"model": "grok-imagine/text-to-video", "script": long_script},
        {"model": "gemini-omni-video", "script": long_script},
        {"model": "grok-imagine/text-to-video", "script": long_script, "duration": 6},
        {"model": SILENT_VIDEO, "script": "Hello there."},
    ]
    async with connect() as client:
        answers = [await client.call_tool("estimate_cost", request) for request in requests]
        with_ratio = await client.call_tool("estimate_cost", requests[0] | {"aspect_ratio": "21:9"})
    for request, answer in zip(requests, answers, strict=True):
        listed = [line[2:].split(": ", 1)[0] for line in text_of(answer).splitlines() if line.startswith("- ")]
        assert answer.is_error and listed == ["script"], (request["model"], text_of(answer))
    listed = [line[2:].split(": ", 1)[0] for line in text_of(with_ratio).splitlines() if line.startswith("- ")]
    assert listed == ["script", "aspect_ratio"], text_of(with_ratio)
    assert await controls.creates() == []


# -- whole numbers KIE could not take ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "options"),
    [
        ("grok-imagine-image-2-0/segment-edit", {"task_id": "t1", "mask_indexs": ["¹"]}),
        ("grok-imagine-image-2-0/segment-edit", {"task_id": "t1", "mask_indexs": [10**30]}),
        ("grok-imagine-image-2-0/segment-edit", {"task_id": "t1", "mask_indexs": [1e300]}),
        ("grok-imagine-image-2-0/segment-edit", {"task_id": "t1", "mask_indexs": [2**63]}),
        (SILENT_VIDEO, {"seed": "²"}),
        (SILENT_VIDEO, {"seed": 10**30}),
        (SILENT_VIDEO, {"seed": 1e300}),
    ],
)
def test_a_whole_number_in_other_digits_or_too_large_for_kie_is_refused_naming_its_field(model_id, options):
    """ "²" is a digit to ``str.isdigit`` but no number to ``int`` (it crashed the check), and 10**30 or 1e300 went
    to KIE as a setting no model has (a charge, or a refusal, nobody knows): each is refused, naming the field."""
    spec = CATALOG.get(model_id)
    prompt = "make the hat red" if "segment" in model_id else "a fox at dawn"
    problems = _problems(spec, prompt=prompt, options=options)
    assert [field for field, _ in problems] == [f"options.{next(k for k in options if k != 'task_id')}"], problems
