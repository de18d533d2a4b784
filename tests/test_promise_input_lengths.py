"""A price per second of an input is the length the input plays, never only what its own headers claim: a file's
maker writes its movie header (MP4/MOV/M4A ``mvhd``) and its MP3 frame count, so a 100 s clip whose header says 1 s
must not be quoted, auto-approved and sent at 1 s, past the caps that no approval overrides (an audit found it was)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from .conftest import answering, eras_in_turn, text_of

UPSCALE = "topaz/video-upscale"  # 8 credits per second of the input video at resolution 2 (the default)
AVATAR = "omnihuman-1-5"  # 27 credits per second of the input audio, audio under 60 s
MOTION = "kling-2.6/motion-control"  # video_urls of 3-30 s


def _run(ffmpeg: str, *arguments: str) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments], check=True)


def claiming(source: Path, target: Path, seconds: float) -> Path:
    """``source`` (an MP4/M4A) with only its movie header's duration rewritten to ``seconds``."""
    data = bytearray(source.read_bytes())
    at = data.find(b"mvhd")
    assert data[at + 4] == 0  # version 0: 32-bit times
    scale = struct.unpack_from(">I", data, at + 16)[0]
    struct.pack_into(">I", data, at + 20, round(seconds * scale))
    target.write_bytes(bytes(data))
    return target


@pytest.fixture(scope="module")
def made(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real media: a 100 s clip, a 40 s clip and a 55 s voice (AAC in M4A, and MP3 with a Xing frame count)."""
    folder = tmp_path_factory.mktemp("lengths")
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    for seconds in (100, 40):
        source = ["-f", "lavfi", "-i", f"testsrc=size=64x48:rate=2:duration={seconds}"]
        _run(ffmpeg, *source, *x264, str(folder / f"clip{seconds}.mp4"))
    voice = ["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=22050:duration=55"]
    _run(ffmpeg, *voice, "-c:a", "aac", "-b:a", "32k", str(folder / "voice.m4a"))
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], check=False, capture_output=True, text=True)
    if "libmp3lame" in encoders.stdout:
        _run(ffmpeg, *voice, "-c:a", "libmp3lame", "-b:a", "32k", str(folder / "voice.mp3"))
    return {path.name: path for path in folder.iterdir()}


def _xing_claiming(source: Path, target: Path, frames: int) -> Path:
    data = bytearray(source.read_bytes())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    assert at > 0
    struct.pack_into(">I", data, at + 8, frames)
    target.write_bytes(bytes(data))
    return target


async def test_a_clip_whose_header_claims_a_second_is_priced_at_what_it_plays_and_held_to_the_caps(
    connect, controls, tmp_path, made
):
    """The audit's case: 100 s of video whose movie header says 1 s. Quoted at 8 credits (under an auto-approve
    limit of 10) it was sent; it costs 800, over the per-call cap of 600. It is quoted at 800 with a note naming the
    header's claim, and with nobody asked, the cap refuses it: nothing uploaded, nothing created."""
    claiming(made["clip100.mp4"], tmp_path / "clip.mp4", 1.0)
    request = {"model": UPSCALE, "prompt": "", "options": {"video_url": "clip.mp4"}}
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked), auto_approve_credits=10) as client:
        estimate = await client.call_tool("estimate_cost", request)
        result = await client.call_tool("generate_video", {**request, "wait_seconds": 0})
    quote = estimate.structured_content["quote"]
    assert quote["credits_total"] == pytest.approx(800), text_of(estimate)
    assert "8 credits/s x 100 s" in quote["breakdown"], quote["breakdown"]
    told = text_of(estimate)
    assert "clip.mp4's headers say it is 1 s long, but its tracks play 100 s" in told, told
    assert result.is_error and "over the per-call cap of 600" in text_of(result), text_of(result)
    assert asked == [] and await controls.creates() == []


async def test_a_linked_clip_whose_header_claims_a_second_is_priced_at_what_it_plays(connect, tmp_path, made):
    """The same clip behind a link (here the simulator's file host, where upload_file put it): its movie box is
    read over Range requests, tracks and all, and priced at the 100 s it plays."""
    claiming(made["clip100.mp4"], tmp_path / "clip.mp4", 1.0)
    async with connect() as client:
        hosted = (await client.call_tool("upload_file", {"path": "clip.mp4"})).structured_content["url"]
        request = {"model": UPSCALE, "prompt": "", "options": {"video_url": hosted}}
        estimate = await client.call_tool("estimate_cost", request)
    assert estimate.structured_content["quote"]["credits_total"] == pytest.approx(800), text_of(estimate)
    assert "headers say it is 1 s long, but its tracks play 100 s" in text_of(estimate)


@eras_in_turn("name", ["voice.m4a", "voice.mp3"])
async def test_a_voice_whose_header_claims_a_second_is_priced_at_what_it_plays(connect, controls, tmp_path, made, name):
    """OmniHuman bills 27 credits per second of its audio: 55 s of voice whose M4A movie header (or MP3 Xing frame
    count) says about 1 s was quoted 27 credits; it is quoted at its 55 s, about 1485 credits, which the per-call
    cap refuses whatever is approved."""
    if name not in made:
        pytest.skip("this ffmpeg build has no MP3 encoder (libmp3lame)")
    if name.endswith(".m4a"):
        claiming(made[name], tmp_path / name, 1.0)
    else:
        _xing_claiming(made[name], tmp_path / name, 40)
    Image.new("RGB", (1080, 1080), "tan").save(tmp_path / "face.png")
    request = {"model": AVATAR, "prompt": "", "images": ["face.png"], "options": {"audio_url": name}}
    async with connect(elicitation=answering()) as client:
        estimate = await client.call_tool("estimate_cost", request)
        result = await client.call_tool("generate_video", {**request, "wait_seconds": 0})
    quote = estimate.structured_content["quote"]
    assert quote["credits_total"] == pytest.approx(27 * 55, abs=27 * 0.1), text_of(estimate)
    assert f"{name}'s headers say it is" in text_of(estimate), text_of(estimate)
    assert result.is_error and "over the per-call cap" in text_of(result), text_of(result)
    assert await controls.creates() == []


async def test_a_field_length_limit_holds_for_what_a_clip_plays_not_what_its_header_claims(
    connect, controls, tmp_path, made
):
    """Kling motion control takes reference videos of 3-30 s: a 40 s clip whose header says 10 s is refused as
    40 s long before anything is priced, uploaded or sent."""
    claiming(made["clip40.mp4"], tmp_path / "dance.mp4", 10.0)
    Image.new("RGB", (1080, 1080), "tan").save(tmp_path / "face.png")
    request = {"model": MOTION, "prompt": "dance", "images": ["face.png"], "options": {"video_urls": ["dance.mp4"]}}
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        result = await client.call_tool("generate_video", request)
    text = text_of(result)
    assert result.is_error and "dance.mp4 is 40.0 s long" in text and "takes videos of 3-30 s" in text, text
    assert asked == [] and await controls.creates() == []


def _mp3_encoder(ffmpeg: str) -> None:
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], check=False, capture_output=True, text=True)
    if "libmp3lame" not in encoders.stdout:
        pytest.skip("this ffmpeg build has no MP3 encoder (libmp3lame)")


async def test_a_voice_whose_frames_change_sample_rate_is_priced_at_every_frame_it_plays(
    connect, controls, tmp_path, ffmpeg
):
    """The review: 0.5 s of 48 kHz frames (with their Xing header) then 55 s of 8 kHz frames, which a decoder plays
    as 55.5 s, were counted as 0.5 s (only frames like the first were counted): quoted 13.5 credits and
    auto-approved. Every frame is counted at its own rate: about 1500 credits, refused over the per-call cap."""
    _mp3_encoder(ffmpeg)
    _run(
        ffmpeg,
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=48000:d=0.5",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "320k",
        str(tmp_path / "a.mp3"),
    )
    _run(
        ffmpeg, "-f", "lavfi", "-i", "sine=f=300:r=8000:d=55", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "8k",
        "-write_xing", "0", "-id3v2_version", "0", str(tmp_path / "b.mp3"),
    )  # fmt: skip
    (tmp_path / "voice.mp3").write_bytes((tmp_path / "a.mp3").read_bytes() + (tmp_path / "b.mp3").read_bytes())
    Image.new("RGB", (1080, 1080), "tan").save(tmp_path / "face.png")
    request = {"model": AVATAR, "prompt": "", "images": ["face.png"], "options": {"audio_url": "voice.mp3"}}
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked), auto_approve_credits=20) as client:
        estimate = await client.call_tool("estimate_cost", request)
        result = await client.call_tool("generate_video", {**request, "wait_seconds": 0})
    assert estimate.structured_content["quote"]["credits_total"] > 27 * 54, text_of(estimate)
    assert result.is_error and "over the per-call cap" in text_of(result), text_of(result)
    assert await controls.creates() == []


async def test_a_vbr_voice_with_no_frame_count_that_starts_quietly_is_priced_at_what_it_plays(
    connect, tmp_path, ffmpeg
):
    """The review: a VBR MP3 with no Xing header starting with 3 s of silence (a low first bitrate) was measured at
    its first frame's bitrate over its bytes, 37.5 s for 10 s of sound: quoted 1013 credits instead of about 270,
    and a 20 s voice would be refused by a 60 s limit. With no header claiming a length, the frames are the length."""
    _mp3_encoder(ffmpeg)
    _run(
        ffmpeg, "-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo:d=3", "-f", "lavfi", "-i",
        "anoisesrc=r=44100:d=7:a=0.5", "-filter_complex", "[0][1]concat=n=2:v=0:a=1", "-c:a", "libmp3lame",
        "-q:a", "0", "-write_xing", "0", str(tmp_path / "voice.mp3"),
    )  # fmt: skip
    Image.new("RGB", (1080, 1080), "tan").save(tmp_path / "face.png")
    request = {"model": AVATAR, "prompt": "", "images": ["face.png"], "options": {"audio_url": "voice.mp3"}}
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", request)
    assert estimate.structured_content["quote"]["credits_total"] == pytest.approx(27 * 10, abs=27 * 0.2), text_of(
        estimate
    )
