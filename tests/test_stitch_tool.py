"""The stitch_videos tool: clips by path or task id, joined into the session folder, errors that explain."""

from __future__ import annotations

import shutil

from kie_mcp.media.stitch import find_ffmpeg

from .conftest import answering, dated, text_of
from .test_stitch import _make


async def test_joins_workspace_clips_into_the_session_folder(connect, tmp_path):
    ffmpeg = find_ffmpeg()
    _make(ffmpeg, tmp_path / "one.mp4", size="320x240", rate=24, audio=True)
    _make(ffmpeg, tmp_path / "two.mp4", size="256x256", rate=30, audio=False, source="testsrc2")
    async with connect() as client:
        result = await client.call_tool(
            "stitch_videos",
            {
                "clips": ["one.mp4", "two.mp4"],
                "session": "Launch Reel",
                "output_name": "final",
                "captions": [{"start": 0.2, "end": 0.8, "text": "Cold brew, made slow."}],
            },
        )
    data = result.structured_content
    assert not result.is_error, text_of(result)
    assert dated(data["path"]) == "outputs/TODAY-launch-reel/final.mp4"
    assert (tmp_path / data["path"]).stat().st_size > 0
    assert data["reencoded"] is True
    assert any(block.type == "resource_link" for block in result.content)


async def test_task_ids_and_bad_clips_are_explained(connect, controls, tmp_path, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("other") / "clip.mp4"
    shutil.copyfile(__file__, elsewhere)
    async with connect(elicitation=answering()) as client:
        await controls.post("clock/speed", {"speed": 0})  # the clip is still being made when the join is asked
        submitted = await client.call_tool("generate_video", {"prompt": "waves", "model": "veo3_fast"})
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        not_yet = await client.call_tool("stitch_videos", {"clips": [task_id, task_id]})
        await controls.post("clock/speed", {"speed": 1000})
        await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
        joined = await client.call_tool("stitch_videos", {"clips": [task_id, task_id]})  # sandbox clips are real MP4s
        outside = await client.call_tool("stitch_videos", {"clips": [str(elsewhere), str(elsewhere)]})
        missing = await client.call_tool("stitch_videos", {"clips": ["nope.mp4", "nope.mp4"]})
    assert not_yet.is_error and "no saved video yet" in text_of(not_yet)
    assert not joined.is_error, text_of(joined)
    assert outside.is_error and "outside the folders" in text_of(outside)
    assert missing.is_error and "neither a task id" in text_of(missing)


async def test_a_caption_style_is_refused_never_silently_dropped(connect, tmp_path):
    """Captions take start, end and text. A style, font or position would be ignored by the join: the call is
    refused naming the field, and nothing is written."""
    _make(find_ffmpeg(), tmp_path / "one.mp4", size="320x240", rate=24, audio=False)
    caption = {"start": 0.1, "end": 0.9, "text": "Cold brew", "style": "Montserrat, yellow"}
    async with connect() as client:
        result = await client.call_tool("stitch_videos", {"clips": ["one.mp4"], "captions": [caption]})
    assert result.is_error
    assert "captions" in text_of(result) and "style" in text_of(result), text_of(result)
    assert "Traceback" not in text_of(result)
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.mp4"))
