"""A task's saved result stands for the task only while it is the file kie-mcp saved, each promise kept against the
simulator through the real MCP client in both protocol eras:

- a clip changed after saving (another video exported over it, a copy cut short, bytes edited in place) is never
  priced, uploaded or recorded as the task's clip by continue_video or estimate_cost: refused for free, saying how
  to get the original back (delete or rename it, then check_task) and how to use the changed copy instead;
- stitch_videos never joins it for the task id, saying the same;
- check_task marks it changed since it was saved (by its size: a list never reads a video's bytes).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import answering, eras_in_turn, text_of
from .test_followups import KLING, MARKET, finished, follow, requests_to, spent_today

UPSCALE = {"operation": "upscale", "resolution": "4", "wait_seconds": 40}


def _other_video(ffmpeg: str, path: Path) -> None:
    """Write another 1 s video over ``path`` (an editor's export saved over the result)."""
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
    command += ["testsrc=size=64x64:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast"]
    subprocess.run([*command, "-pix_fmt", "yuv420p", "-f", "mp4", str(path)], check=True, capture_output=True)


def _change(how: str, path: Path, ffmpeg: str) -> None:
    if how == "replaced":
        _other_video(ffmpeg, path)
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:  # the same size, other bytes: only its sha256 tells
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@eras_in_turn("how", ["replaced", "truncated", "edited in place"])
async def test_a_saved_clip_changed_since_it_was_saved_is_never_continued_as_the_tasks_clip(
    connect, controls, tmp_path, ffmpeg, how
):
    """The audit: another 1 s video saved over a Kling clip was priced at 14 credits (not 70), uploaded and recorded
    as the clip's upscale. Now estimate_cost and continue_video refuse it before anything is sent or charged, saying
    how to get the original back and how to send the changed copy; once it is deleted, check_task saves the
    original again and the upscale goes ahead at the original's price."""
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, KLING)
        [saved] = (await follow(client, source))["files"]
        _change(how, tmp_path / saved, ffmpeg)
        estimate = await client.call_tool("estimate_cost", {"task_id": source, **UPSCALE})
        refused = await client.call_tool("continue_video", {"task_id": source, **UPSCALE})
        spent = await spent_today(client)
        (tmp_path / saved).unlink()  # the advice: delete it, then check_task saves the original again
        await client.call_tool("check_task", {"task_id": source})
        upscaled = await client.call_tool("continue_video", {"task_id": source, **UPSCALE})
    for result in (estimate, refused):
        text = text_of(result)
        assert result.is_error and "- task_id: " in text and "changed since it was saved" in text, text
        assert f"delete or rename the changed file, then call check_task(task_id='{source}')" in text, text
        assert "generate_video(model='topaz/video-upscale', options={'video_url': '<its path>'})" in text, text
    assert spent == 90  # the clip only
    assert upscaled.structured_content["tasks"][0]["state"] == "succeeded", text_of(upscaled)
    assert "Spend 70 credits" in seen[-1], seen[-1]  # the original's 5 s, measured again
    assert len([r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "topaz/video-upscale"]) == 1


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_task_clip_changed_since_it_was_saved_is_not_joined_for_its_task_id(connect, tmp_path, ffmpeg):
    """The audit: a clip replaced after saving was joined for its task id, and one cut short failed with ffmpeg's
    raw text and no next step. It is refused, saying how to get the original back or join the changed copy by
    path, which then works."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, KLING)
        [saved] = (await follow(client, source))["files"]
        _other_video(ffmpeg, tmp_path / saved)
        refused = await client.call_tool("stitch_videos", {"clips": [source, source]})
        chained = await client.call_tool("stitch_videos", {"clips": [source], "chain": True})
        by_path = await client.call_tool("stitch_videos", {"clips": [saved, saved]})
    for result in (refused, chained):
        text = text_of(result)
        assert result.is_error and f"Task {source}'s saved file {saved} has changed since it was saved" in text, text
        assert f"call check_task(task_id='{source}')" in text and "give its path in clips" in text, text
    assert not by_path.is_error, text_of(by_path)
    assert [p.name for p in (tmp_path / "outputs").rglob("stitched-*.mp4")] == ["stitched-2-clips.mp4"]


async def test_check_task_marks_a_saved_file_changed_since_it_was_saved(connect, tmp_path):
    """check_task listed a replaced or truncated result as the task's file with no word of it. It says the file
    changed since it was saved (text and saved_files), and what to do; an untouched file carries no such mark."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, KLING)
        before = await client.call_tool("check_task", {"task_id": source})
        [saved] = before.structured_content["task"]["files"]
        _change("truncated", tmp_path / saved, "")
        after = await client.call_tool("check_task", {"task_id": source})
    assert "changed since it was saved" not in text_of(before)
    assert [f["changed"] for f in before.structured_content["saved_files"]] == [False]
    text = text_of(after)
    assert "changed since it was saved: continue_video and stitch_videos do not use it" in text, text
    assert "delete or rename it and call check_task" in text, text
    assert [f["changed"] for f in after.structured_content["saved_files"]] == [True]
