"""A frame's own shape is kept, and a ratio KIE does not make with references is refused before any spend
(docs.kie.ai, read 2026-12-05), through the real MCP SDK client in both eras against the simulator.

- Kling 3.0: with a first or last frame, ``aspect_ratio`` is optional and KIE follows the frame's shape. kie-mcp
  filled in its 16:9 default anyway, so a portrait product shot became a landscape clip, paid in full.
- Veo 3.1's REFERENCE_2_VIDEO makes 16:9 or 9:16 only: ``Auto`` was priced, approved and sent.
"""

from __future__ import annotations

from PIL import Image

from .conftest import answering, text_of

KLING = {"model": "kling-3.0/video", "prompt": "the bottle turns slowly on the table", "duration": 5}


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
