"""The stitch_videos tool: clips by path or task id, joined into the session folder, errors that explain."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kie_mcp.media.stitch import ffmpeg_capabilities, find_ffmpeg

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


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
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


# -- captions burn only what was asked, where it can be seen ----------------------------------------------------


def _rows(ffmpeg: str, path: Path, at: float, size: tuple[int, int], rows: tuple[float, float]) -> bytes:
    """Grey pixels of the frame shown at ``at`` seconds, from ``rows[0]`` to ``rows[1]`` of its height (fractions)."""
    width, height = size
    grab = ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}", "-"]
    command = [ffmpeg, "-v", "error", "-ss", str(at), "-i", str(path), *grab]
    frame = subprocess.run(command, capture_output=True, check=True).stdout
    assert len(frame) == width * height
    return frame[width * int(height * rows[0]) : width * int(height * rows[1])]


def _difference(one: bytes, other: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(one, other, strict=True)) / len(one)


async def test_a_caption_holding_an_srt_timing_line_shows_only_at_its_own_times(connect, tmp_path):
    """Caption text is text: a timing line inside it (a prompt-injected agent's way to put words over the whole
    video) never becomes a caption of its own at times the caller never gave."""
    ffmpeg = find_ffmpeg()
    clip = _make(ffmpeg, tmp_path / "one.mp4", size="320x240", rate=24, audio=False, seconds=3)
    text = "Buy now\n00:00:00,000 --> 00:00:02,400\nSHOWN FROM THE START"
    async with connect() as client:
        result = await client.call_tool(
            "stitch_videos", {"clips": ["one.mp4"], "captions": [{"start": 2.5, "end": 2.9, "text": text}]}
        )
    assert not result.is_error, text_of(result)
    joined = tmp_path / result.structured_content["path"]
    band = (0.75, 1.0)  # where captions go
    assert _difference(_rows(ffmpeg, joined, 0.5, (320, 240), band), _rows(ffmpeg, clip, 0.5, (320, 240), band)) < 2
    assert _difference(_rows(ffmpeg, joined, 2.7, (320, 240), band), _rows(ffmpeg, clip, 2.7, (320, 240), band)) > 3
    if "libass" in text_of(result):
        assert "'-->' in caption(s) 1 is shown as '→'" in text_of(result)


async def test_caption_text_inside_braces_that_libass_hides_is_named_in_the_answer(connect, tmp_path):
    """libass reads what is between braces as style tags and shows none of it, without a word: the answer says which
    text of which caption will not be seen."""
    ffmpeg = find_ffmpeg()
    if not (await ffmpeg_capabilities(ffmpeg)).subtitles:
        pytest.skip("this ffmpeg has no libass subtitles filter")
    _make(ffmpeg, tmp_path / "one.mp4", size="320x240", rate=24, audio=False)
    captions = [{"start": 0.1, "end": 0.4, "text": "Plain"}, {"start": 0.5, "end": 0.9, "text": "Save {50%} today"}]
    async with connect() as client:
        result = await client.call_tool("stitch_videos", {"clips": ["one.mp4"], "captions": captions})
    assert not result.is_error, text_of(result)
    assert 'text inside {...} is not shown (libass reads it as style tags) (caption 2: "{50%}")' in text_of(result)
    assert "caption 1:" not in text_of(result)


async def test_a_caption_starting_after_the_video_ends_is_named_first_and_never_counted_as_burned_in(connect, tmp_path):
    """The journey: a caption starting after the joined video ends was counted in "burned in 2 caption(s)", with
    the caveat last. The answer names the skipped caption first and counts only the captions shown."""
    _make(find_ffmpeg(), tmp_path / "one.mp4", size="320x240", rate=24, audio=False)  # 1 s
    captions = [{"start": 0.1, "end": 0.9, "text": "Two weeks in"}, {"start": 5, "end": 6, "text": "never seen"}]
    async with connect() as client:
        result = await client.call_tool("stitch_videos", {"clips": ["one.mp4"], "captions": captions})
    assert not result.is_error, text_of(result)
    text = text_of(result)
    skipped = 'into stitched-1-clips.mp4: caption 2 ("never seen" at 5 s) starts after the video ends (1.00 s)'
    assert skipped in text and "so it is not shown; re-encoded to " in text, text
    assert "burned in 1 caption(s)" in text and "burned in 2 caption(s)" not in text, text


async def test_captions_in_a_portrait_video_sit_clear_of_the_feeds_buttons(connect, tmp_path):
    """In a 9:16 video the bottom fifth is under a feed's buttons: captions are burned in above it (and the answer
    says where), never in it."""
    ffmpeg = find_ffmpeg()
    size = (180, 320)
    clip = _make(ffmpeg, tmp_path / "tall.mp4", size="180x320", rate=24, audio=False)
    caption = {"start": 0.0, "end": 1.0, "text": "Okay so I finally found it."}
    async with connect() as client:
        result = await client.call_tool("stitch_videos", {"clips": ["tall.mp4"], "captions": [caption]})
    assert not result.is_error, text_of(result)
    joined = tmp_path / result.structured_content["path"]
    buttons, above = (0.85, 1.0), (0.5, 0.85)
    assert _difference(_rows(ffmpeg, joined, 0.5, size, buttons), _rows(ffmpeg, clip, 0.5, size, buttons)) < 2
    assert _difference(_rows(ffmpeg, joined, 0.5, size, above), _rows(ffmpeg, clip, 0.5, size, above)) > 3
    assert "the video is portrait, so the captions sit 18% of its height up from the bottom" in text_of(result)


# -- the file a join writes, and its sidecar ----------------------------------------------------------------------


async def test_an_output_name_with_another_video_extension_is_written_as_mp4_and_the_answer_says_so(connect, tmp_path):
    _make(find_ffmpeg(), tmp_path / "one.mp4", size="320x240", rate=24, audio=False)
    async with connect() as client:
        result = await client.call_tool(
            "stitch_videos", {"clips": ["one.mp4", "one.mp4"], "session": "cut", "output_name": "final.mov"}
        )
    assert not result.is_error, text_of(result)
    assert dated(result.structured_content["path"]) == "outputs/TODAY-cut/final.mp4"
    said = 'output_name "final.mov" is saved as final.mp4: joins are always written as MP4 files (.mp4).'
    assert said in text_of(result)


async def test_a_join_reusing_a_name_gets_a_sidecar_of_its_own_never_an_earlier_joins(connect, tmp_path):
    """A join's name whose sidecar name is taken (the earlier join's, its video deleted) is not free: the new join
    takes the next name, whose sidecar says what it joined, and the earlier sidecar is left as it was."""
    ffmpeg = find_ffmpeg()
    for name in "abcd":
        _make(ffmpeg, tmp_path / f"{name}.mp4", size="320x240", rate=24, audio=False)
    async with connect() as client:
        first = await client.call_tool(
            "stitch_videos", {"clips": ["a.mp4", "b.mp4"], "session": "s", "output_name": "final"}
        )
        earlier = tmp_path / first.structured_content["path"]
        earlier_sidecar = earlier.with_suffix(".json").read_text()
        earlier.unlink()  # the video deleted, its sidecar left behind
        second = await client.call_tool(
            "stitch_videos", {"clips": ["c.mp4", "d.mp4", "c.mp4"], "session": "s", "output_name": "final"}
        )
    assert not second.is_error, text_of(second)
    joined = tmp_path / second.structured_content["path"]
    assert joined.name == "final-2.mp4"
    assert json.loads(joined.with_suffix(".json").read_text())["joined_from"] == ["c.mp4", "d.mp4", "c.mp4"]
    assert earlier.with_suffix(".json").read_text() == earlier_sidecar
    assert "final.json already exists and was kept as it was, so this join is final-2.mp4" in text_of(second)


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_join_named_like_a_tasks_sidecar_never_takes_that_sidecar(connect, tmp_path):
    """output_name = a task's ``<model>_<task>``: the join's sidecar would be the task's sidecar (prompt, cost). The
    join takes the next free name, with a sidecar of its own; the task's is left as it was."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {"prompt": "waves", "model": "veo3_fast", "session": "reel"})
        task_id = made.structured_content["tasks"][0]["task_id"]
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
        video = tmp_path / done.structured_content["task"]["files"][0]
        task_sidecar = next(video.parent.glob(f"*{task_id}*.json"))
        before = task_sidecar.read_text()
        joined = await client.call_tool(
            "stitch_videos", {"clips": [task_id, task_id], "session": "reel", "output_name": task_sidecar.stem}
        )
    assert not joined.is_error, text_of(joined)
    path = tmp_path / joined.structured_content["path"]
    assert path.name == f"{task_sidecar.stem}-2.mp4"
    assert task_sidecar.read_text() == before
    assert json.loads(path.with_suffix(".json").read_text())["joined_from"] == [task_id, task_id]


CLIPS = Path(__file__).resolve().parents[1] / "src" / "kie_mcp" / "sandbox" / "clips"


async def test_a_clip_in_a_folder_the_client_shares_as_an_mcp_root_is_joined(
    settings, transport, mode, tmp_path_factory
):
    """The audit: upload_file and the generate tools read a clip in a folder the client shares as an MCP root, and
    stitch_videos refused it, advising to share its folder as an MCP root: the user who had was sent round in a
    circle. stitch_videos reads the client's roots too; a join of task ids alone never asks for them."""
    from mcp import Client
    from mcp.types import ListRootsResult, Root

    from kie_mcp.server import create_server

    shared = tmp_path_factory.mktemp("shared")
    for name in ("16x9.mp4", "9x16.mp4"):
        shutil.copyfile(CLIPS / name, shared / name)
    asked: list[str] = []

    async def shared_folders(context):
        asked.append("roots/list")
        return ListRootsResult(roots=[Root(uri=shared.resolve().as_uri(), name="Clips")])

    server = create_server(settings, transport=transport)
    async with Client(
        server, mode=mode, elicitation_callback=answering(), list_roots_callback=shared_folders
    ) as client:
        by_ids = await client.call_tool("stitch_videos", {"clips": ["veo_task_unknown", "veo_task_unknown"]})
        unasked = len(asked)
        joined = await client.call_tool(
            "stitch_videos", {"clips": [str(shared / "16x9.mp4"), str(shared / "9x16.mp4")], "output_name": "pair"}
        )
    assert by_ids.is_error and unasked == 0, (text_of(by_ids), asked)
    assert not joined.is_error, text_of(joined)
    assert dated(joined.structured_content["path"]) == "outputs/TODAY-pair/pair.mp4"
    assert (settings.workspace / joined.structured_content["path"]).stat().st_size > 0
