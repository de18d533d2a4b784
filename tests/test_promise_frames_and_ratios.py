"""A frame's own shape is kept, and a ratio KIE does not make with references is refused before any spend
(docs.kie.ai, read 2026-12-05), through the real MCP SDK client in both eras against the simulator.

- Kling 3.0: with a first or last frame, ``aspect_ratio`` is optional and KIE follows the frame's shape. kie-mcp
  filled in its 16:9 default anyway, so a portrait product shot became a landscape clip, paid in full.
- Veo 3.1's REFERENCE_2_VIDEO makes 16:9 or 9:16 only: ``Auto`` was priced, approved and sent.
"""

from __future__ import annotations

from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from PIL import Image

from kie_mcp.apps import CARD_KEY
from kie_mcp.catalog import load_catalog

from .conftest import answering, eras_in_turn, text_of

KLING = {"model": "kling-3.0/video", "prompt": "the bottle turns slowly on the table", "duration": 5}
# The models KIE sells whose generationType the images decide when none is given: those that take references, and not.
TYPED = [spec for spec in load_catalog().offered() if "generationType" in spec.fields and spec.images is not None]
REFERENCES = [spec.id for spec in TYPED if "REFERENCE_2_VIDEO" in (spec.fields["generationType"].values or ())]
FRAMES_ONLY = [spec.id for spec in TYPED if spec.id not in REFERENCES]


def _portrait(tmp_path) -> str:
    picture = tmp_path / "refs" / "bottle.png"
    picture.parent.mkdir(exist_ok=True)
    Image.new("RGB", (72, 128), (200, 30, 30)).save(picture)
    return "refs/bottle.png"


async def test_a_kling_3_clip_from_a_first_frame_keeps_the_frames_shape(connect, controls, tmp_path):
    frame = _portrait(tmp_path)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**KLING, "images": [frame], "wait_seconds": 0})
        assert not made.is_error, text_of(made)
        chosen = await client.call_tool(
            "generate_video", {**KLING, "images": [frame], "aspect_ratio": "9:16", "wait_seconds": 0}
        )
        assert not chosen.is_error, text_of(chosen)
        from_words = await client.call_tool("generate_video", {**KLING, "wait_seconds": 0})
        assert not from_words.is_error, text_of(from_words)
    sent = [create["body"]["input"] for create in await controls.creates()]
    assert len(sent) == 3, sent
    assert "aspect_ratio" not in sent[0], sent[0]  # KIE follows the frame
    assert sent[1]["aspect_ratio"] == "9:16"  # a ratio asked for is still sent
    assert sent[2]["aspect_ratio"] == "16:9"  # no frame: the documented default


async def test_veo_references_in_auto_ratio_are_refused_before_any_spend(connect, controls, tmp_path):
    reference = _portrait(tmp_path)
    asked = {
        "model": "veo3_fast",
        "prompt": "the bottle on a beach at sunset",
        "images": [reference],
        "aspect_ratio": "Auto",
        "options": {"generationType": "REFERENCE_2_VIDEO"},
    }
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        estimate = await client.call_tool("estimate_cost", asked)
        made = await client.call_tool("generate_video", {**asked, "wait_seconds": 0})
    for refused in (estimate, made):
        assert refused.is_error, text_of(refused)
        assert "aspect_ratio" in text_of(refused) and "16:9, 9:16" in text_of(refused), text_of(refused)
    assert seen == []  # nobody was asked to approve it
    assert await controls.creates() == []


SCRIPT = "I've been using this glow serum for two weeks and honestly my skin has never looked better."
CROPPED = "is cropped or padded to the clip's, which can cut off heads and products"


def _still(tmp_path, name: str, size: tuple[int, int], turned: bool = False) -> str:
    """A product shot in references/ of ``size`` pixels as stored; ``turned``: its EXIF turns it a quarter (a phone
    photo held upright), so it is shown ``size`` the other way round."""
    picture = tmp_path / "references" / name
    picture.parent.mkdir(exist_ok=True)
    exif = Image.Exif()
    if turned:
        exif[0x0112] = 6
    Image.new("RGB", size, (210, 180, 150)).save(picture, exif=exif)
    return f"references/{name}"


async def test_a_first_frame_of_another_shape_than_the_clip_is_said_before_anything_is_spent(
    connect, controls, tmp_path
):
    """The audit: a 4:5 product shot (1638x2048) as the first frame of a 9:16 clip was quoted, confirmed and sent
    without a word on Veo 3.1 Fast, Kling 3.0 and Grok Imagine, though Veo crops or pads such a still (cutting off
    heads and products) and Kling 3.0 and Grok Imagine (one image) make the clip 4:5, following the frame. The
    estimate, the confirmation question and the approval card say which; a frame of the clip's shape, reference
    images, a link (whose pixels are not known) and a photo whose two shapes (stored, and turned upright by its
    EXIF) would be said differently get nothing."""
    shot = _still(tmp_path, "serum-4x5.jpg", (1638, 2048))
    upright = _still(tmp_path, "serum-upright.jpg", (2048, 1638), turned=True)  # shown 1638x2048, as a phone keeps it
    tall = _still(tmp_path, "serum-9x16.jpg", (1080, 1920))
    small = _still(tmp_path, "serum-small.png", (320, 400))  # upscaled to 864x1080 before it is sent
    phone = _still(tmp_path, "phone.jpg", (1920, 1080), turned=True)  # 16:9 stored, 9:16 shown: which one KIE reads
    ask = {"prompt": "She lifts the bottle and talks to camera", "script": SCRIPT, "aspect_ratio": "9:16"}
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), extensions=[apps]) as client:

        async def said(model: str, images: list[str], **more: object) -> str:
            estimate = await client.call_tool("estimate_cost", {**ask, "model": model, "images": images, **more})
            assert not estimate.is_error, text_of(estimate)
            return estimate.structured_content["message"]

        veo = await client.call_tool("estimate_cost", {**ask, "model": "veo3_fast", "images": [shot]})
        made = await client.call_tool("generate_video", {**ask, "model": "veo3_fast", "images": [shot]})
        kling = await said("kling-3.0/video", [shot])
        kling_unset = await said("kling-3.0/video", [shot], aspect_ratio=None)
        grok = await said("grok-imagine/image-to-video", [shot])
        turned = await said("veo3_fast", [upright])
        upscaled = await said("veo3_fast", [small])
        quiet = {
            "a 9:16 frame": await said("veo3_fast", [tall]),
            "a 9:16 frame, Grok": await said("grok-imagine/image-to-video", [tall]),
            "reference images": await said("veo3_fast", [shot], options={"generationType": "REFERENCE_2_VIDEO"}),
            "a link": await said("veo3_fast", ["https://example.com/serum-4x5.jpg"]),
            "several images, Grok": await said("grok-imagine/image-to-video", [shot, tall]),
            "Auto": await said("veo3_fast", [shot], aspect_ratio="Auto"),
            "a photo 16:9 stored, 9:16 shown": await said("veo3_fast", [phone]),  # not known: no guess
        }
    on_veo = f"The first frame ({shot}) is 4:5 (1638x2048 px) and the clip 9:16: a frame of another shape {CROPPED}"
    assert on_veo in veo.structured_content["message"], veo.structured_content["message"]
    assert any(on_veo in note for note in veo.meta[CARD_KEY]["notes"]), veo.meta[CARD_KEY]["notes"]
    assert not made.is_error and len(seen) == 1 and on_veo in seen[0], seen
    assert (
        f"Kling 3.0 makes this clip in its first frame's shape, 4:5 (1638x2048 px; {shot}), not aspect_ratio 9:16 "
        "(asked for, or the default), which it does not use with a frame. For a 9:16 clip, start from a 9:16 still."
        in kling
    ), kling
    assert (
        f"Kling 3.0 makes this clip in its first frame's shape, 4:5 (1638x2048 px; {shot}): with a frame and no "
        "aspect_ratio, it follows the frame." in kling_unset
    ), kling_unset
    assert f"in its first frame's shape, 4:5 (1638x2048 px; {shot}), not aspect_ratio 9:16" in grok, grok
    assert f"The first frame ({upright}) is 4:5 (1638x2048 px) and the clip 9:16" in turned, turned
    assert f"The first frame ({small}) is 4:5 (864x1080 px) and the clip 9:16" in upscaled, upscaled
    assert {why: text for why, text in quiet.items() if "frame's shape" in text or CROPPED in text} == {}


async def test_a_first_frame_of_a_shape_the_model_makes_points_first_to_that_free_aspect_ratio(
    connect, controls, tmp_path
):
    """The journey: a 9:16 still as Veo 3.1 Fast's first frame, with no aspect_ratio given, was told to "Start from a
    16:9 still" (a paid new image, for a 16:9 clip nobody asked for), while aspect_ratio="9:16" is free and allowed.
    The estimate and the confirmation question lead with that fix and say 16:9 was the default; a frame of a shape
    the model does not make (4:5) says the default only, and a request following the advice says nothing."""
    tall = _still(tmp_path, "serum-9x16.jpg", (1080, 1920))
    shot = _still(tmp_path, "serum-4x5.jpg", (1638, 2048))
    veo = {"model": "veo3_fast", "prompt": "She lifts the bottle"}
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        unset = (await client.call_tool("estimate_cost", {**veo, "images": [tall]})).structured_content
        made = await client.call_tool("generate_video", {**veo, "images": [tall], "wait_seconds": 0})
        followed = (
            await client.call_tool("estimate_cost", {**veo, "images": [tall], "aspect_ratio": "9:16"})
        ).structured_content
        other = (await client.call_tool("estimate_cost", {**veo, "images": [shot]})).structured_content
    fix = f'The first frame ({tall}) is 9:16 (1080x1920 px): pass aspect_ratio="9:16" for a 9:16 clip (no extra cost).'
    default = "No aspect_ratio was given, so the clip is 16:9, the default"
    for text in (unset["message"], *seen):
        assert fix in text and default in text and CROPPED in text, text
        assert text.index(fix) < text.index("or start from a 16:9 still to keep all of it."), text
    assert not made.is_error and len(seen) == 1, text_of(made)
    assert followed["quote"]["credits_total"] == unset["quote"]["credits_total"] == 60
    assert CROPPED not in followed["message"] and "pass aspect_ratio" not in followed["message"], followed["message"]
    assert (
        f"The first frame ({shot}) is 4:5 (1638x2048 px) and the clip 16:9 (16:9 is the default: no aspect_ratio was "
        "given)" in other["message"]
    ), other["message"]
    assert "pass aspect_ratio" not in other["message"], other["message"]


def test_a_frame_of_no_common_shape_reads_as_people_write_ratios():
    """The review: a 3000x100 frame was said to make a "30.00:1" clip; a tall one read "0.40:1"."""
    from kie_mcp.media.frames import _shape_name

    assert [_shape_name(3000 / 100), _shape_name(100 / 250), _shape_name(1.85), _shape_name(1638 / 2048)] == [
        "30:1",
        "1:2.5",
        "1.85:1",
        "4:5",
    ]


@eras_in_turn("model", REFERENCES)
async def test_one_photo_as_a_first_frame_says_how_to_get_a_new_shot_of_who_is_in_it_instead(
    connect, controls, tmp_path, model
):
    """Seed 000: "a single reference photo of a person -> REFERENCE_2_VIDEO with veo3_fast". kie-mcp keeps KIE's
    documented default, the one image as the clip's first frame, and the quote said nothing of the other reading: a
    portrait of a person became the first frame of a 16:9 clip, cropped. Where the model takes references, the
    estimate, the confirmation and the approval card say in one line how to get a new shot of the person instead,
    and that advice, followed as written, is quoted; nothing is said where the caller chose the type or gave two
    frames, nor on a model without references (Veo 3.1 Quality). The default is still what is sent."""
    photo = _portrait(tmp_path)
    hint = "For a new shot of the person or product in it instead, set options.generationType=REFERENCE_2_VIDEO"
    ask = {"model": model, "prompt": "she smiles at the camera in her kitchen"}
    seen: list[str] = []
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with connect(elicitation=answering(seen=seen), extensions=[apps]) as client:
        one = await client.call_tool("estimate_cost", {**ask, "images": [photo]})
        chosen = await client.call_tool(
            "estimate_cost", {**ask, "images": [photo], "options": {"generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO"}}
        )
        two = await client.call_tool("estimate_cost", {**ask, "images": [photo, photo]})
        others = [await client.call_tool("estimate_cost", {**ask, "model": m, "images": [photo]}) for m in FRAMES_ONLY]
        followed = await client.call_tool(
            "estimate_cost", {**ask, "images": [photo], "options": {"generationType": "REFERENCE_2_VIDEO"}}
        )
        made = await client.call_tool("generate_video", {**ask, "images": [photo], "wait_seconds": 0})
    assert not made.is_error and len(seen) == 1, text_of(made)
    for text in (one.structured_content["message"], seen[0]):
        assert hint in text, text
    assert any(hint in note for note in one.meta[CARD_KEY]["notes"]), one.meta[CARD_KEY]["notes"]  # the card
    assert not followed.is_error and hint not in followed.structured_content["message"], text_of(followed)
    for quiet in (chosen, two, *others):
        assert not quiet.is_error and "REFERENCE_2_VIDEO" not in quiet.structured_content["message"], text_of(quiet)
    [create] = await controls.creates()
    assert create["body"]["generationType"] == "FIRST_AND_LAST_FRAMES_2_VIDEO"  # KIE's default, kept
