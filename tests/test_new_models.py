"""Model-specific checks for the issue 9 additions (the generic ones live in test_every_model.py)."""

import pytest

from kie_mcp.catalog import InvalidRequest, apply_defaults, build_input, check_input, load_catalog, price_input

from .conftest import answering, text_of

CATALOG = load_catalog()
IMG = "https://example.com/a.png"
VID = "https://example.com/v.mp4"


@pytest.mark.parametrize(
    ("model_id", "kwargs", "credits"),
    [
        ("kling-3.0-omni/text-to-video", {"duration": 5}, 70),  # 720p silent: 14/s
        ("kling-3.0-omni/text-to-video", {"duration": 10, "resolution": "1080p", "audio": True}, 230),  # 23/s
        ("kling-3.0-omni/image-to-video", {"images": [IMG], "duration": 3, "resolution": "4K"}, 201),
        ("bytedance/seedance-2-5", {"duration": 10}, 630),  # 720p 63/s
        ("bytedance/seedance-2-5", {"duration": 4, "resolution": "1080p"}, 632),
        ("bytedance/seedance-2-mini", {"duration": 5, "resolution": "480p"}, 47.5),  # 9.5/s: its 3.8/s offer ended
        ("happyhorse-1-1/text-to-video", {"duration": 4, "resolution": "720p"}, 90),
        ("wan/3-0-video", {"duration": 21}, 672),  # matches a reconciled 1080P receipt
        ("wan/3-0-video", {"duration": 5, "resolution": "480p"}, 40),  # 8/s (2026-09 feed)
        ("wan/3-0-video-prime", {"duration": 5, "resolution": "720p"}, 126),  # 25.2/s
        ("google/gemini-omni-flash-1-1", {"duration": 8, "resolution": "360p"}, 105),  # 360p priced as 720p
        ("pixverse-v6/text-to-video", {"duration": 5}, 36),  # 720p silent: 7.2/s
        ("pixverse-v6/text-to-video", {"duration": 10, "resolution": "1080p", "audio": True}, 184),  # 18.4/s
        ("pixverse-v6/image-to-video", {"images": [IMG], "duration": 4, "resolution": "360p"}, 16),
        ("happyhorse/reference-to-video", {"images": [IMG], "duration": 5, "resolution": "720p"}, 140),
        ("qwen2-1/text-to-image", {"resolution": "2K"}, 8),
        ("qwen2-1/image-to-image", {"images": [IMG, IMG]}, 4),
        ("grok-imagine-image-2-0/image-edit", {"images": [IMG]}, 4),
        ("gemini-omni-video", {"duration": 10, "resolution": "4k"}, 210),
        ("gemini-omni-video", {}, 63),  # 4 s 720p by default
        ("minimax-h3/text-to-video", {"resolution": "2K"}, 78),  # 6 s default x 13
        ("qwen/image-edit", {"images": [IMG]}, 3.93),  # 5 credits/MP x 0.79 MP (landscape_4_3, the default)
        ("seedream/5-pro-text-to-image", {"resolution": "2K"}, 14),
        ("seedream/5-pro-image-to-image", {"images": [IMG, IMG, IMG]}, 8),  # 7 + 2 x 0.5
        ("seedream/5-flash-text-to-image", {"resolution": "2K"}, 3.24),
        ("qwen3/image-to-image", {"images": [IMG, IMG]}, 5.8),
        ("qwen3/pro-text-to-image", {"resolution": "2K"}, 12),
        ("gpt-image-2-5-sunburst-text-to-image", {"aspect_ratio": "16:9", "resolution": "4K"}, 16),
        ("nano-banana-2-lite", {}, 4),
    ],
)
def test_prices_follow_the_table(model_id, kwargs, credits):
    spec = CATALOG.get(model_id)
    wire = build_input(spec, prompt="a calm test scene", **kwargs)
    price = price_input(spec, wire)
    assert price.known and price.credits == credits, price.breakdown


@pytest.mark.parametrize(
    ("model_id", "kwargs"),
    [
        ("bytedance/seedance-2-5", {"resolution": "1080p", "options": {"reference_video_urls": [VID]}}),
        ("wan/3-0-video", {"resolution": "480p", "options": {"reference_video_urls": [VID]}}),
        ("wan/3-0-video-prime", {"options": {"reference_video_urls": [VID]}}),
        ("minimax-h3/reference-to-video", {"images": [IMG] * 6}),
        ("minimax-h3/reference-to-video", {"images": [IMG], "options": {"reference_video_urls": [VID]}}),
    ],
)
def test_prices_not_on_file_stay_unknown(model_id, kwargs):
    spec = CATALOG.get(model_id)
    price = price_input(spec, build_input(spec, prompt="a calm test scene", **kwargs))
    assert not price.known and price.credits is None


def test_omnihuman_is_billed_by_audio_length():
    spec = CATALOG.get("omnihuman-1-5")
    wire = build_input(spec, images=[IMG], options={"audio_url": "https://example.com/a.mp3"}, resolution="720p")
    assert wire["output_resolution"] == "720"
    price = price_input(spec, wire)
    assert not price.known and "27 credits per second of the input audio" in price.breakdown


def test_kling_omni_defaults_to_one_shot_and_checks_multi_shot():
    spec = CATALOG.get("kling-3.0-omni/text-to-video")
    assert build_input(spec, prompt="x")["customize_multi_shots"] is False
    with pytest.raises(InvalidRequest, match="multi_prompt"):
        build_input(spec, prompt="x", options={"customize_multi_shots": True})
    both = {"customize_multi_shots": True, "prefer_multi_shots": True, "multi_prompt": [{"prompt": "a", "duration": 5}]}
    with pytest.raises(InvalidRequest, match="prefer_multi_shots"):
        build_input(spec, prompt="x", options=both)


def test_kling_omni_image_to_video_goes_from_a_first_to_a_last_frame():
    """KIE's page: image_urls takes exactly 1 (the first frame) or 2 (first and last); the catalogue took 1, so a
    transition between two product shots was refused before anything was asked."""
    spec = CATALOG.get("kling-3.0-omni/image-to-video")
    last = "https://example.com/b.png"
    wire = build_input(spec, prompt="the bottle turns to face us", images=[IMG, last])
    assert wire["image_urls"] == [IMG, last]  # in order: first, then last
    assert price_input(spec, wire).credits == price_input(spec, build_input(spec, prompt="x", images=[IMG])).credits
    with pytest.raises(InvalidRequest, match="takes 1-2 image"):
        build_input(spec, prompt="x", images=[IMG, last, "https://example.com/c.png"])


def test_kling_omni_reference_video_turns_sound_off():
    spec = CATALOG.get("kling-3.0-omni/reference-to-video")
    with pytest.raises(InvalidRequest, match="audio"):
        build_input(spec, prompt="x", images=[IMG], audio=True, options={"video_urls": [VID]})
    wire = build_input(spec, prompt="x", images=[IMG], resolution="1080p", duration=5, options={"video_urls": [VID]})
    assert price_input(spec, wire).credits == 135


def test_seedance_25_frames_and_references_are_separate_modes():
    spec = CATALOG.get("bytedance/seedance-2-5")
    with pytest.raises(InvalidRequest, match="separate modes"):
        build_input(spec, prompt="x", images=[IMG], options={"reference_image_urls": [IMG]})


def test_new_feed_rows_are_named():
    spec = CATALOG.get("happyhorse-1-1/image-to-video")
    assert {rate.feed for rate in spec.price.rates} == {
        "HappyHorse-1.1, image-to-video, 720p",
        "HappyHorse-1.1, image-to-video, 1080p",
    }


def test_gpt_image_2_5_ratios_are_its_own_and_only_four_are_capped_at_1k():
    spec = CATALOG.get("gpt-image-2-5-flare-text-to-image")
    assert price_input(spec, build_input(spec, prompt="x", aspect_ratio="auto", resolution="4K")).credits == 16
    build_input(spec, prompt="x", aspect_ratio="27:16")
    with pytest.raises(InvalidRequest, match="1K only"):
        build_input(spec, prompt="x", aspect_ratio="9:8", resolution="2K")
    with pytest.raises(InvalidRequest, match="aspect_ratio"):
        build_input(spec, prompt="x", aspect_ratio="2:1")  # a GPT Image 2 ratio


def test_kie_schema_fixes_of_the_2026_12_audit():
    lite = CATALOG.get("nano-banana-2-lite")
    assert build_input(lite, prompt="x" * 20000)["aspect_ratio"] == "auto"  # required, KIE's default sent
    with pytest.raises(InvalidRequest, match="aspect_ratio"):
        build_input(CATALOG.get("minimax-h3/text-to-video"), prompt="x", aspect_ratio="adaptive")
    upscale = CATALOG.get("grok-imagine/upscale")
    assert build_input(upscale, options={"task_id": "t"})["resolution"] == "1080p"  # KIE's default would be 720p
    wan = CATALOG.get("wan/2-6-text-to-video")
    assert build_input(wan, prompt="x")["multi_shots"] is False


def test_kling_omni_reference_takes_a_video_alone_with_auto_shape():
    spec = CATALOG.get("kling-3.0-omni/reference-to-video")
    alone = apply_defaults(spec, {"prompt": "x", "video_urls": [VID]})
    assert check_input(spec, alone) == [] and alone["aspect_ratio"] == "auto" and alone["audio"] is False
    assert check_input(spec, apply_defaults(spec, {"prompt": "x"}))  # neither images nor a video
    with pytest.raises(InvalidRequest, match="aspect_ratio"):
        build_input(spec, prompt="x", images=[IMG], aspect_ratio="auto")
    # ... and so do the tools: the video in options, no images argument
    wire = build_input(spec, prompt="x", duration=5, options={"video_urls": [VID]})
    assert "image_urls" not in wire and wire["aspect_ratio"] == "auto"
    assert price_input(spec, wire).credits == 100  # 20 credits/s at 720p with a reference video
    with pytest.raises(InvalidRequest, match=r"at least 1 input image\(s\), or options.video_urls"):
        build_input(spec, prompt="x")


async def test_kling_omni_reference_to_video_from_a_reference_video_alone_through_the_tools(connect, controls):
    """generate_video with only options.video_urls: created as KIE's video-only form (no image_urls, aspect_ratio
    auto, sound off) at the reference-video price, and it completes."""
    arguments = {
        "model": "kling-3.0-omni/reference-to-video",
        "prompt": "the dancer from @Video1 on a rooftop at dusk",
        "options": {"video_urls": [VID]},
        "duration": 5,
        "wait_seconds": 30,
    }
    async with connect(elicitation=answering()) as client:
        quote = await client.call_tool("estimate_cost", arguments)
        made = await client.call_tool("generate_video", arguments)
    assert not quote.is_error and quote.structured_content["quote"]["credits_total"] == 100, text_of(quote)
    assert made.structured_content["status"] == "completed", text_of(made)
    [create] = await controls.creates()
    sent = create["body"]["input"]
    assert "image_urls" not in sent and sent["video_urls"] == [VID]
    assert sent["aspect_ratio"] == "auto" and sent["audio"] is False


def test_happyhorse_video_edit_is_billed_for_its_input_and_equal_output():
    spec = CATALOG.get("happyhorse/video-edit")
    wire = build_input(spec, prompt="make it night", options={"video_url": VID}, resolution="720p")
    price = price_input(spec, wire)
    assert not price.known and "56 credits per second of the input video" in price.breakdown
    assert price_input(spec, wire, {"the input video": 10.0}).credits == 560
