"""The catalogue as data: every model loads with sources, validates, and prices exactly."""

import math
import re

import pytest

from kie_mcp.catalog import (
    AmbiguousModelError,
    InvalidRequest,
    UnknownModelError,
    build_input,
    check_input,
    load_catalog,
    price_input,
    validate,
)
from kie_mcp.catalog.spec import DEFAULT_PROMPT_MAX_LENGTH
from kie_mcp.catalog.tables import model_table_markdown, price_summary

CATALOG = load_catalog()
ISSUE_2_MODELS = {
    "nano-banana-2",
    "nano-banana-pro",
    "google/nano-banana-edit",
    "veo3",
    "veo3_fast",
    "kling-3.0/video",
    "sora-2-text-to-video",
    "sora-2-image-to-video",
    "bytedance/seedance-2",
}
MINIMAL = {
    "nano-banana-2": {"prompt": "a red apple"},
    "nano-banana-pro": {"prompt": "a red apple"},
    "google/nano-banana-edit": {"prompt": "make it blue", "images": ["https://example.com/a.png"]},
    "veo3": {"prompt": "waves at dusk"},
    "veo3_fast": {"prompt": "waves at dusk"},
    "kling-3.0/video": {"prompt": "a slow pan over a city"},
    "sora-2-text-to-video": {"prompt": "a cat on a skateboard"},
    "sora-2-image-to-video": {"prompt": "she waves", "images": ["https://example.com/a.png"]},
    "bytedance/seedance-2": {"prompt": "a paper boat drifting"},
}


def test_every_required_model_is_in_the_catalogue():
    assert {spec.id for spec in CATALOG} >= ISSUE_2_MODELS


@pytest.mark.parametrize("model_id", sorted(ISSUE_2_MODELS))
def test_minimal_request_is_valid_and_priced(model_id):
    spec = CATALOG.get(model_id)
    wire = build_input(spec, **MINIMAL[model_id])
    assert check_input(spec, wire) == []
    price = price_input(spec, wire)
    assert price.known and price.credits and price.credits > 0
    assert price.source and price.source_date


@pytest.mark.parametrize("model_id", sorted(ISSUE_2_MODELS))
def test_every_fact_names_a_defined_source(model_id):
    spec = CATALOG.get(model_id)
    for field in spec.fields.values():
        assert spec.source_of(field.source).kind in {"documented", "observed", "inferred"}
    assert spec.source_of(spec.price.source).date


@pytest.mark.parametrize(
    ("model_id", "kwargs", "credits"),
    [
        ("nano-banana-2", {"resolution": "1K"}, 8),
        ("nano-banana-2", {"resolution": "2K"}, 12),
        ("nano-banana-2", {"resolution": "4k"}, 18),
        ("nano-banana-pro", {"resolution": "2K"}, 18),
        ("nano-banana-pro", {"resolution": "4K"}, 24),
        ("veo3_fast", {}, 60),
        ("veo3_fast", {"resolution": "1080p"}, 65),
        ("veo3", {"resolution": "4K"}, 370),  # text to video: KIE 2026-10-06 ($1.85); the 2026-09 feed said 380
        ("veo3", {"resolution": "4K", "images": ["https://e/a.png"]}, 370),
        ("kling-3.0/video", {"duration": 10}, 180),  # pro, silent: 18/s
        ("kling-3.0/video", {"duration": 5, "audio": True, "resolution": "720p"}, 100),  # std + sound: 20/s
        ("kling-3.0/video", {"duration": 3, "resolution": "4k"}, 201),  # 67/s
        ("sora-2-text-to-video", {"duration": 15}, 25),
        ("bytedance/seedance-2", {"duration": 6, "resolution": "1080p"}, 612),
        ("bytedance/seedance-2", {"duration": 5, "resolution": "4k"}, 1040),  # 208/s
        ("bytedance/seedance-2-fast", {"duration": 10, "resolution": "720p"}, 330),  # 33/s: its 24.8/s offer ended
        ("grok-imagine/text-to-video", {"duration": 10, "resolution": "480p"}, 24),  # 2.4/s since 2026-09
        ("grok-imagine/text-to-video", {"duration": 10, "resolution": "1080p"}, 80),  # 8/s
        ("grok-imagine-video-1-5-preview", {"duration": 8, "resolution": "720p"}, 36),  # 4.5/s
    ],
)
def test_prices_follow_the_table(model_id, kwargs, credits):
    spec = CATALOG.get(model_id)
    wire = build_input(spec, prompt="x", **kwargs)
    assert price_input(spec, wire).credits == credits


@pytest.mark.parametrize(("model_id", "rate"), [("bytedance/seedance-2", 25), ("bytedance/seedance-2-fast", 20)])
def test_seedance_with_reference_video_is_unknown_with_its_lower_rate(model_id, rate):
    spec = CATALOG.get(model_id)
    with_video = build_input(spec, prompt="x", options={"reference_video_urls": ["https://example.com/v.mp4"]})
    price = price_input(spec, with_video)
    assert not price.known and price.credits is None  # KIE also bills the reference videos' seconds
    assert price.breakdown.startswith(f"{rate} credits per second of the reference videos plus the output")
    assert price_input(spec, build_input(spec, prompt="x")).known  # without reference videos: rate x duration


def test_errors_name_field_value_allowed_and_nearest():
    with pytest.raises(InvalidRequest) as caught:
        build_input(CATALOG.get("veo3"), prompt="x", duration=5)
    text = str(caught.value)
    assert "duration" in text and "5" in text and "4, 6, 8" in text and "Nearest" in text
    assert "nothing was sent" in text


def test_unknown_option_suggests_the_right_name():
    with pytest.raises(InvalidRequest, match='Did you mean "output_format"'):
        build_input(CATALOG.get("nano-banana-2"), prompt="x", options={"outptu_format": "png"})


def test_reference_mode_only_exists_on_veo3_fast():
    build_input(
        CATALOG.get("veo3_fast"),
        prompt="x",
        images=["https://e/a.png"],
        options={"generationType": "REFERENCE_2_VIDEO"},
    )
    with pytest.raises(InvalidRequest, match="REFERENCE_2_VIDEO works only with veo3_fast"):
        build_input(
            CATALOG.get("veo3"), prompt="x", images=["https://e/a.png"], options={"generationType": "REFERENCE_2_VIDEO"}
        )


def test_veo_infers_generation_type_from_images():
    spec = CATALOG.get("veo3_fast")
    assert build_input(spec, prompt="x")["generationType"] == "TEXT_2_VIDEO"
    assert (
        build_input(spec, prompt="x", images=["https://e/a.png"])["generationType"] == "FIRST_AND_LAST_FRAMES_2_VIDEO"
    )


def test_kling_multi_shot_always_has_sound_and_refuses_audio_false():
    """Multi-shot Kling 3.0 always has sound, and is billed with it: audio=false used to be sent as sound=true."""
    kling = CATALOG.get("kling-3.0/video")
    shots = {"multi_shots": True, "multi_prompt": [{"prompt": "a", "duration": 3}, {"prompt": "b", "duration": 2}]}
    assert build_input(kling, options=shots)["sound"] is True  # left out: the forced value
    assert build_input(kling, audio=True, options=shots)["sound"] is True
    with pytest.raises(InvalidRequest, match="audio: cannot be false here: it is always true"):
        build_input(kling, audio=False, options=shots)
    assert build_input(kling, prompt="x", audio=False)["sound"] is False  # a single shot may be silent


def test_sora_accepts_ratio_spelling_and_numeric_duration():
    wire = build_input(CATALOG.get("sora-2-text-to-video"), prompt="x", aspect_ratio="9:16", duration=15)
    assert wire["aspect_ratio"] == "portrait"
    assert wire["n_frames"] == "15"


def test_image_count_limits():
    with pytest.raises(InvalidRequest, match="takes 1 image\\(s\\); got 2"):
        build_input(CATALOG.get("sora-2-image-to-video"), prompt="x", images=["https://e/a.png", "https://e/b.png"])
    with pytest.raises(InvalidRequest, match="does not take input images"):
        build_input(CATALOG.get("sora-2-text-to-video"), prompt="x", images=["https://e/a.png"])


def test_prompt_length_limit():
    with pytest.raises(InvalidRequest, match="the limit is 5000"):
        build_input(CATALOG.get("veo3"), prompt="x" * 5001)


def test_friendly_names():
    assert CATALOG.resolve("veo 3.1 fast").id == "veo3_fast"
    assert CATALOG.resolve("nano banana").id == "nano-banana-2"
    assert CATALOG.resolve("Kling 3.0").id == "kling-3.0/video"
    with pytest.raises(UnknownModelError, match="nano-banana"):
        CATALOG.resolve("nano bananna")


def test_ambiguous_name_lists_candidates():
    from kie_mcp.catalog import Catalog

    specs = {s.id: s for s in CATALOG}
    clash = Catalog({**specs, "x": specs["veo3"].model_copy(update={"id": "x", "aliases": ["veo"]})})
    with pytest.raises(AmbiguousModelError) as caught:
        clash.resolve("veo")
    assert caught.value.candidates == ["veo3_fast", "x"]


def test_model_table_is_generated_from_data():
    table = model_table_markdown()
    rows, _, withdrawn = table.partition("Withdrawn by KIE")
    for spec in CATALOG.offered():
        assert f"| `{spec.id}` |" in rows
        assert price_summary(spec) in rows
    for spec in CATALOG:
        if spec.withdrawn:  # not in the table, only in the short note under it, with what to use instead
            assert f"`{spec.id}`" not in rows
            assert f"- `{spec.id}` ({spec.withdrawn.date})" in withdrawn
            assert all(f"`{alternative}`" in withdrawn for alternative in spec.withdrawn.alternatives)


def test_readme_model_table_is_generated_from_the_data():
    from pathlib import Path

    from kie_mcp.catalog.tables import with_model_table

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert readme == with_model_table(readme), "run: uv run python -m kie_mcp.catalog.tables README.md"


@pytest.mark.parametrize(
    ("model_id", "options", "credits"),
    [
        ("ideogram/v3-remix", {"num_images": "3", "rendering_speed": "TURBO"}, 10.5),  # 3.5 x 3
        ("ideogram/character", {"num_images": "2", "rendering_speed": "QUALITY"}, 48),  # 24 x 2
    ],
)
def test_per_output_multiplier(model_id, options, credits):
    spec = CATALOG.get(model_id)
    images = ["https://e/a.png"] if spec.images and spec.images.min else []
    wire = build_input(spec, prompt="x", images=images, options=options)
    price = price_input(spec, wire)
    assert price.credits == credits
    assert "outputs" in price.breakdown


def test_input_length_billing_is_unknown_with_its_rate():
    spec = CATALOG.get("infinitalk/from-audio")
    required = {
        f.name: "https://e/a.mp3" if "audio" in f.name else "https://e/a.png"
        for f in spec.fields.values()
        if f.required and f.type == "url"
    }
    wire = build_input(spec, prompt="she talks", options=required)
    price = price_input(spec, wire)
    assert price.known is False
    assert "credits per second of" in price.breakdown


# -- issue 8: bounded prompts, finite numbers ---------------------------------------------------------------

PROMPTED = sorted(spec.id for spec in CATALOG if spec.field_for_arg("prompt"))


@pytest.mark.parametrize("model_id", PROMPTED)
def test_every_prompt_has_a_length_bound_and_one_character_over_is_refused(model_id):
    from .test_every_model import _build, minimal_arguments

    spec = CATALOG.get(model_id)
    field = spec.field_for_arg("prompt")
    limit = field.max_length
    assert limit is not None and 0 < limit <= 390_000  # documented, or kie-mcp's default
    assert not field.max_length_default or limit == DEFAULT_PROMPT_MAX_LENGTH
    arguments = minimal_arguments(spec)
    assert _build(spec, {**arguments, "prompt": "x" * limit})[field.name] == "x" * limit  # at the limit: accepted
    with pytest.raises(InvalidRequest) as caught:
        _build(spec, {**arguments, "prompt": "x" * (limit + 1)})
    problems = {p.field: p.message for p in caught.value.problems}
    assert problems[field.name].startswith(f"is {limit + 1} characters long; the limit is {limit}")
    assert ("kie-mcp's default" in problems[field.name]) == field.max_length_default


def test_default_prompt_bound_applies_only_where_kie_documents_none():
    defaulted = sorted(
        s.id for s in CATALOG if s.field_for_arg("prompt") and s.field_for_arg("prompt").max_length_default
    )
    assert defaulted == [
        "flux-kontext-max",
        "flux-kontext-pro",
        "gpt-4o-image",
        "gpt-image/1.5-image-to-image",
        "gpt-image/1.5-text-to-image",
        "grok-imagine-image-2-0/text-to-image",
        "runway-aleph",
    ]
    assert CATALOG.get("nano-banana-2").field_for_arg("prompt").max_length == 20000  # documented wins
    documented = [s.field_for_arg("prompt").max_length for s in CATALOG if s.id in PROMPTED and s.id not in defaulted]
    assert max(set(documented), key=documented.count) == DEFAULT_PROMPT_MAX_LENGTH  # the most common documented limit


def test_validation_refuses_non_finite_numbers_anywhere():
    qwen, kling = CATALOG.get("qwen/text-to-image"), CATALOG.get("kling-3.0/video")
    for value in (math.nan, math.inf, -math.inf):
        for option in ("guidance_scale", "seed", "num_inference_steps", "output_format", "enable_safety_checker"):
            with pytest.raises(InvalidRequest, match=f"{option}: .* is not a number KIE can take"):
                build_input(qwen, prompt="x", options={option: value})
            assert [p.field for p in check_input(qwen, {"prompt": "x", option: value})] == [option]
        with pytest.raises(InvalidRequest, match=r"multi_prompt\[0\]\.duration: .* Give a finite number"):
            build_input(kling, prompt="x", options={"multi_shots": True, "multi_prompt": [{"duration": value}]})
    with pytest.raises(InvalidRequest, match=r"guidance_scale: NaN .* Give a number in 0-20\."):
        build_input(qwen, prompt="x", options={"guidance_scale": math.nan})
    deep: object = math.nan
    for _ in range(10_000):  # no nesting depth crashes the check
        deep = [deep]
    with pytest.raises(InvalidRequest, match=r"multi_prompt\[0\]\[0\]"):
        build_input(kling, prompt="x", options={"multi_shots": True, "multi_prompt": deep})


def test_errors_never_echo_a_huge_value():
    spec = CATALOG.get("nano-banana-2")
    with pytest.raises(InvalidRequest) as caught:
        build_input(spec, prompt="x", options={"output_format": "y" * 1_000_000})
    assert len(str(caught.value)) < 1000 and "1000000 characters" in str(caught.value)


# -- issue 9: the data as KIE sells it now (withdrawn models, current fields and prices) ------------------------

WITHDRAWN = sorted(spec.id for spec in CATALOG if spec.withdrawn)


def test_the_sora_models_kie_withdrew_are_withdrawn():
    assert set(WITHDRAWN) >= {
        "sora-2-text-to-video",
        "sora-2-image-to-video",
        "sora-2-pro-text-to-video",
        "sora-2-pro-image-to-video",
        "sora-2-pro-storyboard",
        "sora-watermark-remover",
    }


@pytest.mark.parametrize("model_id", WITHDRAWN)
def test_withdrawn_models_are_refused_with_offered_alternatives(model_id):
    from kie_mcp.catalog import WithdrawnModelError

    spec = CATALOG.get(model_id)
    assert spec.withdrawn.date and spec.source_of(spec.withdrawn.source).kind in {"documented", "observed", "inferred"}
    with pytest.raises(WithdrawnModelError) as caught:
        CATALOG.resolve(model_id)
    assert caught.value.alternatives == spec.withdrawn.alternatives
    for alternative in spec.withdrawn.alternatives:
        assert alternative in CATALOG and CATALOG.get(alternative).withdrawn is None, alternative
        assert CATALOG.get(alternative).kind == spec.kind
        assert alternative in str(caught.value)
    assert model_id not in {s.id for s in CATALOG.offered()}


# sora2/text-to-video, seed 004's id, is now a name of sora-2-text-to-video: refused as withdrawn (test_words.py)
@pytest.mark.parametrize("name", ["sora2/text-to-vid", "sora-2-text-to-vid", "sora2 pro storyboard"])
def test_a_misspelt_withdrawn_model_suggests_what_kie_offers_instead_never_the_withdrawn_one(name):
    with pytest.raises(UnknownModelError) as caught:
        CATALOG.resolve(name)
    suggested = caught.value.candidates
    assert suggested and all(CATALOG.get(s).withdrawn is None for s in suggested), suggested
    assert "sora" not in str(caught.value).replace(name, "")


def test_friendly_names_skip_withdrawn_models():
    from kie_mcp.catalog import WithdrawnModelError

    with pytest.raises(WithdrawnModelError, match="veo3_fast"):
        CATALOG.resolve("sora 2")


def test_withdrawn_models_are_left_out_of_the_json_table():
    import json

    from kie_mcp.catalog.tables import model_table_json

    data = json.loads(model_table_json())
    assert not {m["id"] for m in data["models"]} & set(WITHDRAWN)
    assert {w["id"] for w in data["withdrawn"]} == set(WITHDRAWN)


def test_rates_name_their_price_feed_row():
    for spec in CATALOG:
        for rate in spec.price.rates if spec.price else []:
            assert rate.feed is None or (rate.feed.strip() == rate.feed and rate.feed), (spec.id, rate.feed)
    grok = CATALOG.get("grok-imagine/text-to-video").price.rates
    assert [r.feed for r in grok] == [f"grok-imagine, text-to-video, {p}" for p in ("480p", "720p", "1080p")]


def test_gpt_4o_image_no_longer_takes_n_variants_or_a_mask():
    spec = CATALOG.get("gpt-4o-image")
    for option in ({"nVariants": 2}, {"maskUrl": "https://e/m.png"}):
        with pytest.raises(InvalidRequest, match=f'gpt-4o-image has no field "{next(iter(option))}"'):
            build_input(spec, prompt="x", options=option)
    assert price_input(spec, build_input(spec, prompt="x")).credits == 6


def test_flux_2_flex_text_to_image_has_no_auto_aspect_ratio():
    with pytest.raises(InvalidRequest, match="aspect_ratio"):
        build_input(CATALOG.get("flux-2/flex-text-to-image"), prompt="x", aspect_ratio="auto")
    build_input(CATALOG.get("flux-2/flex-image-to-image"), prompt="x", images=["https://e/a.png"], aspect_ratio="auto")


def test_topaz_image_upscale_has_no_8x_and_is_priced_by_output_tier():
    spec = CATALOG.get("topaz/image-upscale")
    with pytest.raises(InvalidRequest, match="upscale_factor"):
        build_input(spec, images=["https://e/a.png"], options={"upscale_factor": "8"})
    for factor, credits in (("1", 10), ("2", 20), ("4", 40)):
        wire = build_input(spec, images=["https://e/a.png"], options={"upscale_factor": factor})
        assert price_input(spec, wire).credits == credits


def test_wan_2_7_image_to_video_needs_a_prompt():
    with pytest.raises(InvalidRequest, match="prompt"):
        build_input(CATALOG.get("wan/2-7-image-to-video"), images=["https://e/a.png"])


def test_grok_image_to_video_takes_one_image_at_1080p():
    spec = CATALOG.get("grok-imagine/image-to-video")
    build_input(spec, images=["https://e/a.png"], resolution="1080p")
    with pytest.raises(InvalidRequest, match="one image at 1080p"):
        build_input(spec, images=["https://e/a.png", "https://e/b.png"], resolution="1080p")


def test_seedream_5_lite_offers_2k_3k_and_4k_as_basic_high_and_ultra():
    """KIE's pages (2026-07-31 and later): basic is 2K, high 3K and ultra 4K on text-to-image and image-to-image alike.
    The older pages gave high as 3K on one and 4K on the other; the sizes now ask for the tier that makes them."""
    photo = ["https://e/a.png"]
    for model_id, images in (("seedream/5-lite-text-to-image", []), ("seedream/5-lite-image-to-image", photo)):
        spec = CATALOG.get(model_id)
        for size, quality in (("2K", "basic"), ("3K", "high"), ("4K", "ultra")):
            wire = build_input(spec, prompt="a red apple", images=images, resolution=size)
            assert wire["quality"] == quality, (model_id, size)
            assert price_input(spec, wire).credits == 5.5  # one price for every tier
        with pytest.raises(InvalidRequest, match="resolution"):
            build_input(spec, prompt="a red apple", images=images, resolution="8K")


# -- from the 2026-12 UX audit: errors that point the right way ----------------------------------------------------


@pytest.mark.parametrize("model_id", ["veo3_fast", "veo3_lite"])
def test_three_images_on_veo_name_the_reference_mode(model_id):
    """Three images default to FIRST_AND_LAST_FRAMES_2_VIDEO (1-2 frames); the error names REFERENCE_2_VIDEO, which
    takes 1-3, and where to set it."""
    three = ["https://e/a.png", "https://e/b.png", "https://e/c.png"]
    with pytest.raises(InvalidRequest) as caught:
        build_input(CATALOG.get(model_id), prompt="x", images=three)
    (problem,) = caught.value.problems
    assert problem.field == "images"
    assert "REFERENCE_2_VIDEO" in problem.message and "options.generationType" in problem.message
    build_input(CATALOG.get(model_id), prompt="x", images=three, options={"generationType": "REFERENCE_2_VIDEO"})


@pytest.mark.parametrize(
    ("model_id", "capability", "kind"),
    [
        ("google/imagen4", "edit", "image"),
        ("z-image", "edit", "image"),
        ("kling-2.6/text-to-video", "image-to-video", "video"),
    ],
)
def test_a_model_without_input_images_points_to_models_of_its_kind_that_take_them(model_id, capability, kind):
    """An image model names image edit models (not image-to-video ones); a video model names image-to-video models."""
    import re

    with pytest.raises(InvalidRequest) as caught:
        build_input(CATALOG.get(model_id), prompt="x", images=["https://e/a.png"])
    (problem,) = caught.value.problems
    named = re.search(r"such as (.*) \(list_models", problem.message).group(1).split(", ")
    assert named
    for other in named:
        spec = CATALOG.get(other)
        assert spec.kind == kind and capability in spec.capabilities and spec.images and not spec.withdrawn, other
    assert ("image-to-video" in problem.message) == (kind == "video")


def test_google_imagen_with_images_names_the_nano_banana_edit_models():
    with pytest.raises(InvalidRequest) as caught:
        build_input(CATALOG.get("google/imagen4"), prompt="x", images=["https://e/a.png"])
    assert "nano-banana-2" in str(caught.value) and "google/nano-banana-edit" in str(caught.value)


@pytest.mark.parametrize("model_id", ["veo3_fast", "veo3_lite", "veo3"])
def test_veo_errors_carry_no_provenance_remarks(model_id):
    """ "KIE's docs disagree on aspect_ratio vs aspectRatio" is where the fact comes from, not advice: it lives in
    the source entry, and the error says only what is allowed."""
    spec = CATALOG.get(model_id)
    with pytest.raises(InvalidRequest) as caught:
        build_input(spec, prompt="x", aspect_ratio="1:1")
    text = str(caught.value)
    assert "16:9, 9:16, Auto" in text
    assert "docs" not in text and "aspectRatio" not in text
    field = spec.field_for_arg("aspect_ratio")
    assert field.note is None or "docs" not in field.note
    if model_id != "veo3":
        assert "aspectRatio" in spec.source_of(field.source).ref  # the remark kept as provenance


PROVENANCE = re.compile(r"\b20\d\d-\d\d\b|schema|English|Chinese|kie-api\.md|\bpage\b|\bdocs\b|field note", re.I)


@pytest.mark.parametrize("model_id", [spec.id for spec in CATALOG])
def test_option_notes_shown_in_errors_are_advice_not_provenance(model_id):
    """An option's note ends the error for a refused value ("... allowed: 1K, 2K. For 4K use ..."): it tells the
    user what to do. Where a fact comes from (which capture, which page said what) lives in its source entry and in
    comments of the data file, never in what the user reads."""
    for name, field in CATALOG.get(model_id).fields.items():
        if field.type == "enum" and field.note:
            assert not PROVENANCE.search(field.note), f"{model_id}.{name}: {field.note}"


@pytest.mark.parametrize(
    ("model_id", "asked", "nearest"),
    [
        ("gpt-4o-image", "9:16", "2:3"),  # no 9:16 on this endpoint: the tall one, never the square
        ("gpt-image/1.5-text-to-image", "4:3", "3:2"),
        ("z-image", "4:5", "3:4"),
        ("z-image", "2:3", "3:4"),
    ],
)
def test_the_nearest_aspect_ratio_offered_is_nearest_in_shape_not_in_spelling(model_id, asked, nearest):
    spec = CATALOG.get(model_id)
    with pytest.raises(InvalidRequest) as caught:
        build_input(spec, prompt="x", aspect_ratio=asked)
    assert f"Nearest: {nearest}." in str(caught.value)


RATIOS = ["9:16", "4:5", "2:3", "3:4", "1:1", "4:3", "3:2", "16:9", "21:9", "9:21", "5:4"]


@pytest.mark.parametrize("model_id", [spec.id for spec in CATALOG.offered() if spec.field_for_arg("aspect_ratio")])
def test_a_refused_aspect_ratio_never_suggests_the_other_orientation(model_id):
    """A tall request (9:16 for a reel) refused by a model is never pointed at a wide frame when the model offers a
    tall or square one, and the other way round."""
    field = CATALOG.get(model_id).field_for_arg("aspect_ratio")
    if field.type != "enum":
        return
    shapes = {value: validate.shape_ratio(value) for value in field.values}
    for asked in RATIOS:
        if asked in field.values or asked == "1:1":
            continue
        tall = validate.shape_ratio(asked) < 1
        nearest = validate._nearest(asked, field.values)
        flipped = [v for v, shape in shapes.items() if shape and shape != 1 and (shape < 1) != tall]
        if set(shapes.values()) - {None, *(shapes[v] for v in flipped)}:  # its own orientation, or square, exists
            assert nearest not in flipped, (asked, nearest, field.values)


@pytest.mark.parametrize("asked", ["1:" + "9" * 400, "9" * 400 + ":1", "0:1", "1:0"])
def test_an_aspect_ratio_no_shape_can_have_is_refused_plainly(asked):
    """A ratio of digits too long for a float (zero or infinite) once crashed the nearest-shape suggestion."""
    with pytest.raises(InvalidRequest, match=r"aspect_ratio|size"):
        build_input(CATALOG.get("gpt-4o-image"), prompt="x", aspect_ratio=asked)
