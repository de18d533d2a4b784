"""Issue 11, part 6: a sandbox that looks real. Its images are labelled, its videos are playable MP4 clips in the
requested aspect (with sound when the request has sound), and ``stitch_videos`` works on them end to end.

Results are made through the real MCP client against the simulator and read back from the workspace; ffmpeg (from
``imageio-ffmpeg``, a dev dependency) checks that what the sandbox serves really decodes.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kie_mcp.media.duration import mp4_seconds
from kie_mcp.media.stitch import find_ffmpeg, probe
from kie_mcp.sandbox import SANDBOX_API_KEY, media
from kie_mcp.sandbox.looping import Unloopable, loop_clip

from .conftest import UPLOADS, answering, eras_in_turn, text_of

ROOT = Path(__file__).resolve().parent.parent
CLIPS = sorted(f"{aspect}{sound}.mp4" for aspect in media.CLIP_ASPECTS for sound in ("", "-sound"))
LABEL_YELLOW = (250, 204, 21)
AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    return find_ffmpeg()


def top_boxes(data: bytes) -> list[bytes]:
    """The kinds of an MP4's top-level boxes, in order."""
    kinds, offset = [], 0
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        if length == 1:
            length = int.from_bytes(data[offset + 8 : offset + 16], "big")
        kinds.append(data[offset + 4 : offset + 8])
        if length < 8:
            break
        offset += length
    return kinds


def decode_errors(ffmpeg: str, path: Path) -> str:
    """Everything ffmpeg complains about while decoding every frame and sample of ``path`` (empty: it plays)."""
    done = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stderr.strip() or ("" if done.returncode == 0 else f"exit {done.returncode}")


def decoded_frames(ffmpeg: str, path: Path) -> int:
    """How many video frames ffmpeg decodes from ``path`` (its edit list honoured)."""
    done = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(re.findall(r"frame=\s*(\d+)", done.stderr)[-1])


async def saved_video(client: Any, request: dict[str, Any], workspace: Path) -> tuple[str, Path]:
    """Generate one sandbox video, wait for it, return its task id and the saved file."""
    submitted = await client.call_tool("generate_video", request)
    assert not submitted.is_error, text_of(submitted)
    task_id = submitted.structured_content["tasks"][0]["task_id"]
    done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
    task = done.structured_content["task"]
    assert task["state"] == "succeeded", text_of(done)
    return task_id, workspace / task["files"][0]


# -- videos ----------------------------------------------------------------------------------


@eras_in_turn(
    ("request_fields", "width_over_height", "sound", "seconds"),
    [
        ({"model": "veo3_fast", "aspect_ratio": "9:16"}, 9 / 16, True, 8),  # Veo always makes sound; 8 s by default
        ({"model": "veo3_fast", "aspect_ratio": "16:9", "duration": 4}, 16 / 9, True, 4),
        ({"model": "kling-3.0/video", "aspect_ratio": "1:1", "audio": False, "duration": 3}, 1.0, False, 3),
        ({"model": "kling-3.0/video", "aspect_ratio": "1:1", "audio": True, "duration": 13}, 1.0, True, 13),
        ({"model": "runway-video", "aspect_ratio": "4:3"}, 16 / 9, False, 5),  # no sound; 4:3 -> closest landscape
        ({"model": "runway-video", "aspect_ratio": "3:4", "duration": 10}, 9 / 16, False, 10),
    ],
    ids=["veo-9:16", "veo-16:9", "kling-1:1-silent", "kling-1:1-sound", "runway-4:3", "runway-3:4"],
)
async def test_a_sandbox_video_is_a_playable_clip_in_the_requested_aspect_and_length_with_sound_as_asked(
    connect, tmp_path, ffmpeg, request_fields, width_over_height, sound, seconds
):
    """The shipped clips are 2 s; what is served plays as long as the request asked (or its model's default)."""
    async with connect(elicitation=answering()) as client:
        _, path = await saved_video(client, {"prompt": "waves at dusk", **request_fields}, tmp_path)
    data = path.read_bytes()
    assert top_boxes(data)[:3] == [b"ftyp", b"moov", b"free"]  # moov first: a browser plays it before the end
    assert b"mdat" in top_boxes(data)
    assert decode_errors(ffmpeg, path) == ""
    info = await probe(ffmpeg, path)
    assert info.codec == "h264"
    assert info.width / info.height == pytest.approx(width_over_height, rel=0.02)
    assert (info.audio is not None) == sound
    assert mp4_seconds(path) == seconds
    assert decoded_frames(ffmpeg, path) == seconds * 24  # every frame of every play decodes, none past the trim


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_two_sandbox_videos_stitch_end_to_end(connect, tmp_path, ffmpeg):
    shots = [
        {"model": "veo3_fast", "prompt": "a barista slides the bottle", "aspect_ratio": "9:16", "duration": 4},
        {"model": "veo3_fast", "prompt": "a close-up of the bottle", "aspect_ratio": "9:16", "duration": 4},
        {"model": "kling-3.0/video", "prompt": "the bottle on a shelf", "aspect_ratio": "1:1", "audio": False},
    ]
    async with connect(elicitation=answering()) as client:
        saved = [await saved_video(client, shot, tmp_path) for shot in shots]
        paths = [path.relative_to(tmp_path).as_posix() for _, path in saved]
        same = await client.call_tool("stitch_videos", {"clips": paths[:2], "output_name": "same"})
        mixed = await client.call_tool("stitch_videos", {"clips": [saved[0][0], saved[2][0]], "output_name": "mixed"})
    assert not same.is_error, text_of(same)
    assert not mixed.is_error, text_of(mixed)
    assert same.structured_content["reencoded"] is False  # identical formats: joined by stream copy
    assert mixed.structured_content["reencoded"] is True  # 9:16 with sound + 1:1 silent
    for result, seconds in ((same, 4 + 4), (mixed, 4 + 5)):  # Kling 3.0's default: 5 s
        output = tmp_path / result.structured_content["path"]
        assert b"moov" in top_boxes(output.read_bytes())
        assert mp4_seconds(output) == pytest.approx(seconds, abs=0.25)
        assert decode_errors(ffmpeg, output) == ""
        info = await probe(ffmpeg, output)
        assert (info.width, info.height) == (180, 320) and info.audio is not None


async def continued(client: Any, task_id: str, operation: str, workspace: Path) -> tuple[str, list[Path]]:
    """Continue a sandbox video (``continue_video``), wait for it, return its task id and saved files."""
    made = await client.call_tool("continue_video", {"task_id": task_id, "operation": operation, "wait_seconds": 40})
    assert not made.is_error, text_of(made)
    done = await client.call_tool("check_task", {"task_id": made.structured_content["tasks"][0]["task_id"]})
    task = done.structured_content["task"]
    assert task["state"] == "succeeded", text_of(done)
    return task["task_id"], [workspace / name for name in task["files"]]


@pytest.mark.parametrize("mode", ["auto"])  # ffmpeg's local work: once (the era is test_protocol's)
async def test_a_sandbox_veo_extension_s_whole_video_is_its_source_then_the_new_part(connect, tmp_path, ffmpeg, mode):
    """KIE's extended Veo task links the whole video (fullResultUrls, saved first) beside the new part; Veo 3.1 adds
    7 s. A rehearsal that checks a saved extension's length, or what a join of it will last, must see 8 + 7 s, and
    an extension of that extension 8 + 7 + 7 s, each with Veo's sound."""
    async with connect(elicitation=answering(), auto_approve_credits=1000) as client:
        source, _ = await saved_video(client, {"prompt": "waves at dusk", "model": "veo3_fast"}, tmp_path)
        extension, (whole, part) = await continued(client, source, "extend", tmp_path)
        _, (again, again_part) = await continued(client, extension, "extend", tmp_path)
    for path, seconds in ((whole, 8 + 7), (part, 7), (again, 8 + 7 + 7), (again_part, 7)):
        assert mp4_seconds(path) == seconds, path.name
        assert decode_errors(ffmpeg, path) == ""
        assert (await probe(ffmpeg, path)).audio is not None


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_sandbox_grok_upscale_keeps_its_source_s_length_and_sound(connect, tmp_path, ffmpeg):
    """An upscale is the same clip at a higher resolution: Grok Imagine makes sound, so its 1080p version has it too
    (the sandbox served a silent 2 s clip), and it lasts as long as the clip it upscales."""
    request = {"prompt": "a cat jumps onto a sunny windowsill", "model": "grok-imagine/text-to-video", "duration": 10}
    async with connect(elicitation=answering(), auto_approve_credits=1000) as client:
        source, clip = await saved_video(client, {**request, "resolution": "720p"}, tmp_path)
        _, [upscaled] = await continued(client, source, "hd", tmp_path)
    assert (await probe(ffmpeg, clip)).audio is not None
    assert (await probe(ffmpeg, upscaled)).audio is not None
    assert mp4_seconds(upscaled) == mp4_seconds(clip) == 10
    assert decode_errors(ffmpeg, upscaled) == ""


async def test_a_padded_video_is_served_at_the_configured_size_and_still_plays(controls, sim, tmp_path, ffmpeg):
    """``video_bytes`` (benchmarks pull big files) pads the clip without breaking it, whatever the gap."""
    clip = len(media.clip_bytes("16x9-sound.mp4", 8.0))  # Veo's default length
    for size, expected in [(3_000_000, 3_000_000), (clip + 3, clip + 3), (clip + 8, clip + 8), (64, clip)]:
        await controls.post("config", {"video_bytes": size})
        body = {"prompt": "waves", "model": "veo3_fast", "aspectRatio": "16:9"}
        created = (await controls.http.post("/api/v1/veo/generate", json=body, headers=AUTH)).json()
        task_id = created["data"]["taskId"]
        sim.advance(3600)
        response = await controls.http.get(f"/files/{task_id}/0.mp4")
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content) == expected
        path = tmp_path / f"{size}.mp4"
        path.write_bytes(response.content)
        moov_and_all_before = media.clip_bytes("16x9-sound.mp4", 8.0).split(b"mdat")[0][:-4]
        assert response.content.startswith(moov_and_all_before)
        assert mp4_seconds(path) == 8.0
        assert decode_errors(ffmpeg, path) == ""


@pytest.mark.parametrize("total", [4 * 1024**3, 5 * 1024**3])
def test_padding_of_any_size_is_one_valid_free_box(total):
    """Up to 4 GiB (the control's maximum) a 32-bit box size; past it (SimConfig has no cap) a 64-bit one. Only the
    head is built, never the whole body."""
    clip = media.clip_bytes("1x1.mp4")
    head = next(media.video_chunks("1x1.mp4", total))
    assert head[: len(clip)] == clip
    box = head[len(clip) : len(clip) + 16]
    if total - len(clip) <= 0xFFFFFFFF:
        assert box[4:8] == b"free" and int.from_bytes(box[:4], "big") == total - len(clip)
    else:
        assert box[:8] == b"\x00\x00\x00\x01free" and int.from_bytes(box[8:], "big") == total - len(clip)


@pytest.mark.parametrize(
    ("aspect", "clip"),
    [
        ("16:9", "16x9"),
        ("9:16", "9x16"),
        ("1:1", "1x1"),
        ("21:9", "16x9"),
        ("4:3", "16x9"),  # as far from 1:1 as from 16:9: the orientation decides
        ("3:4", "9x16"),
        ("4:5", "1x1"),
        ("portrait", "9x16"),  # Sora
        ("landscape", "16x9"),
        ("portrait_4_3", "9x16"),
        ("Auto", "16x9"),
        ("adaptive", "16x9"),
        (None, "16x9"),
    ],
)
def test_each_aspect_gets_the_closest_clip(aspect, clip):
    assert media.clip_for(aspect, sound=False) == f"{clip}.mp4"
    assert media.clip_for(aspect, sound=True) == f"{clip}-sound.mp4"


@pytest.mark.parametrize("seconds", [0.5, 2, 3, 7.5, 30])
@pytest.mark.parametrize("name", CLIPS)
def test_a_clip_plays_for_the_length_asked_and_every_frame_decodes(ffmpeg, tmp_path, name, seconds):
    """A shipped 2 s clip repeated and trimmed (looping.py): exactly that long, 24 frames a second, no decode error
    in the video or the sound."""
    path = tmp_path / name
    path.write_bytes(media.clip_bytes(name, seconds))
    assert mp4_seconds(path) == seconds
    assert decode_errors(ffmpeg, path) == ""
    assert decoded_frames(ffmpeg, path) == round(seconds * 24)


def test_a_clip_that_cannot_be_played_that_long_is_served_as_shipped():
    shipped = media.clip_bytes("1x1-sound.mp4")
    assert media.clip_bytes("1x1-sound.mp4", 3600.0) == shipped  # more plays than any KIE model makes
    for length in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(Unloopable):
            loop_clip(shipped, length)
    boxes, offset = [], 0
    while offset < len(shipped):
        size = int.from_bytes(shipped[offset : offset + 4], "big")
        boxes.append(shipped[offset : offset + size])
        offset += size
    media_first = b"".join(box for box in boxes if box[4:8] != b"moov") + next(b for b in boxes if b[4:8] == b"moov")
    with pytest.raises(Unloopable, match="moov must come before"):
        loop_clip(media_first, 4.0)


# -- images ----------------------------------------------------------------------------------


def labelled(image: Image.Image) -> bool:
    """Whether the "SANDBOX" label's yellow is drawn (exactly, in a lossless image)."""
    return any(colour == LABEL_YELLOW for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 20))


@pytest.mark.parametrize(("aspect", "fmt", "width_over_height"), [("9:16", "png", 9 / 16), ("16:9", "jpg", 16 / 9)])
async def test_a_sandbox_image_is_labelled_and_in_the_requested_aspect(
    connect, tmp_path, aspect, fmt, width_over_height
):
    request = {
        "prompt": "A glass bottle of cold brew on a sunlit marble counter",
        "model": "nano-banana-2",
        "aspect_ratio": aspect,
        "options": {"output_format": fmt},
    }
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", request)
    assert result.structured_content["status"] == "completed", text_of(result)
    path = tmp_path / result.structured_content["tasks"][0]["files"][0]
    with Image.open(path) as image:
        image.load()
        assert image.width / image.height == pytest.approx(width_over_height, rel=0.02)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 16  # not flat: antialiased text
        if fmt == "png":
            assert labelled(image)


def test_the_label_carries_the_prompt_s_first_words():
    words = media.prompt_label("A glass bottle of cold brew on a sunlit marble counter, soft shadows")
    assert words == "A glass bottle of cold brew"
    plain = Image.open(io.BytesIO(media.image_bytes("seed", "png", (256, 144), "")))
    first = Image.open(io.BytesIO(media.image_bytes("seed", "png", (256, 144), words)))
    other = Image.open(io.BytesIO(media.image_bytes("seed", "png", (256, 144), "A red fox")))
    assert labelled(plain) and labelled(first)
    assert plain.tobytes() != first.tobytes() != other.tobytes()  # the words are drawn, and differ by prompt


async def test_a_url_upload_placeholder_is_labelled(controls):
    body = {"fileUrl": "https://example.com/cat.jpg", "uploadPath": "refs"}
    answer = (await controls.http.post(f"{UPLOADS}/api/file-url-upload", json=body, headers=AUTH)).json()
    stored = await controls.http.get(answer["data"]["downloadUrl"])
    with Image.open(io.BytesIO(stored.content)) as image:
        assert image.format == "PNG" and image.size == (128, 128)
        assert labelled(image)


# -- packaging -------------------------------------------------------------------------------


def test_the_clips_ship_in_the_wheel(tmp_path):
    """The simulator reads its clips as package data: a wheel without them would serve nothing playable."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not available to build the wheel")
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    with zipfile.ZipFile(next(tmp_path.glob("kie_mcp-*.whl"))) as wheel:
        shipped = {Path(name).name: wheel.read(name) for name in wheel.namelist() if "/sandbox/clips/" in name}
    for name in CLIPS:
        assert shipped.get(name) == media.clip_bytes(name), f"{name} is missing from the wheel or differs"
