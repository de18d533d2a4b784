"""A clip's length and turn are what ffmpeg finds in it, never what its metadata says.

The audit's cases, through the MCP client: a silent clip whose title read "Duration: 00:01:00.00" made a 4 s join a
62 s video, 58 s of it one frozen frame (its silence was made as long as the title said); the same title made a copy
join say a clip was "probably damaged"; a landscape clip whose video stream was named "... rotation of 90 degrees ..."
made the whole join portrait, every landscape clip letterboxed in it; and a WebM or MKV input to a model billed per
second of it was quoted for the title's length. ffmpeg's report of a file (``ffmpeg -i``) prints the file's metadata
among its own lines, so only lines ffmpeg writes itself are read: tagged by ffmpeg's log level, in ffmpeg's own
layout. A metadata value or key holding a line break (which ffmpeg prints as lines of their own) is no line of
ffmpeg's either; a clip turned by its display matrix is still turned.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import answering, text_of

SPOKEN = "Duration: 00:01:00.00, start"  # what ffmpeg's own line for the file begins with, at another length
# A value and a key of several lines: ffmpeg prints a value's next line indented after a colon, a key's as it is
BROKEN_VALUE = f"a note\n  {SPOKEN}: 0.000000, bitrate: 1 kb/s"
BROKEN_KEY = f"k\n  {SPOKEN}"
UPSCALE = {"model": "topaz/video-upscale", "options": {"upscale_factor": "2"}}  # 8 credits per second of the video


def _clip(ffmpeg: str, path: Path, *extra: str, audio: bool = False, size: str = "640x360", seconds: int = 2) -> str:
    """A ``seconds`` long H.264 clip (with AAC sound where ``audio``), with ``extra`` output options."""
    source = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=24:duration={seconds}"]
    if audio:
        source += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra]
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", *source, *encode, str(path)], check=True)
    return path.name


def _spoofed(ffmpeg: str, path: Path, *, audio: bool = False) -> str:
    """A 2 s clip whose title, a comment of several lines and a key of several lines all claim a minute."""
    tags = ["-movflags", "use_metadata_tags", "-metadata", f"title={SPOKEN}", "-metadata", f"comment={BROKEN_VALUE}"]
    return _clip(ffmpeg, path, *tags, "-metadata", f"{BROKEN_KEY}=v", audio=audio)


def _turned(ffmpeg: str, clip: Path, turned: Path) -> None:
    """``clip``'s picture in ``turned``, shown turned a quarter by its display matrix (as a phone's portrait video)."""
    command = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-display_rotation", "90", "-i", str(clip)]
    subprocess.run([*command, "-c", "copy", str(turned)], check=True)


def _shown(ffmpeg: str, path: Path) -> tuple[float, str]:
    """How long ``path`` plays (its packets, as ffmpeg counts them) and its picture's size as shown."""
    count = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-c", "copy", "-f", "null"]
    progress = subprocess.run([*count, "-progress", "pipe:1", "-"], capture_output=True, text=True, check=True)
    played = int(progress.stdout.split("out_time_us=")[-1].split()[0]) / 1e6
    grab = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe", "-c:v", "ppm"]
    frame = subprocess.run([*grab, "-"], capture_output=True, check=True).stdout
    width, height = frame.split(b"\n")[1].split()
    return played, f"{int(width)}x{int(height)}"


def _reported(ffmpeg: str, path: Path) -> str:
    """ffmpeg's report of ``path``, to show that it does print the metadata's claim where a reader could take it."""
    command = [ffmpeg, "-hide_banner", "-i", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False).stderr


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_clip_whose_metadata_claims_a_minute_is_joined_at_its_own_length(connect, ffmpeg, tmp_path):
    """The silent clip's silence is as long as its footage: 2 s + 2 s is a 4 s join, no frozen frame after it."""
    _clip(ffmpeg, tmp_path / "sound.mp4", audio=True)
    _spoofed(ffmpeg, tmp_path / "titled.mp4")
    assert f"\n  {SPOKEN}: v" in _reported(ffmpeg, tmp_path / "titled.mp4")  # the key's line, as ffmpeg's own look
    async with connect() as client:
        result = await client.call_tool(
            "stitch_videos", {"clips": ["sound.mp4", "titled.mp4"], "output_name": "t", "session": "meta"}
        )
    data = result.structured_content
    assert not result.is_error and data["reencoded"] is True, text_of(result)  # silence made for the silent clip
    played, size = _shown(ffmpeg, tmp_path / data["path"])
    assert played == pytest.approx(4.0, abs=0.2) and size == "640x360"
    assert data["duration"] == pytest.approx(4.0, abs=0.2), text_of(result)
    assert "damaged" not in text_of(result)


async def test_a_copy_join_of_a_clip_whose_metadata_claims_a_minute_is_not_called_damaged(connect, ffmpeg, tmp_path):
    """Two clips alike but for their metadata are joined losslessly; nothing is said of a clip cut short."""
    _clip(ffmpeg, tmp_path / "one.mp4", audio=True)
    _spoofed(ffmpeg, tmp_path / "two.mp4", audio=True)
    async with connect() as client:
        result = await client.call_tool("stitch_videos", {"clips": ["one.mp4", "two.mp4"], "session": "meta"})
    data = result.structured_content
    assert not result.is_error and data["reencoded"] is False, text_of(result)
    assert "damaged" not in text_of(result) and "cut short" not in text_of(result), text_of(result)
    assert data["duration"] == pytest.approx(4.0, abs=0.2)


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_landscape_clip_named_for_a_rotation_keeps_the_join_landscape(connect, ffmpeg, tmp_path):
    """A stream's name is words: the join takes the first clip's shape as shown, 640x360. A clip turned by its
    display matrix (a phone's portrait video) is still turned: first in a join, the join is portrait."""
    named = "Shot on tripod, rotation of 90 degrees corrected"
    _clip(ffmpeg, tmp_path / "named.mp4", "-metadata:s:v", f"title={named}", "-metadata:s:v", f"name={named}")
    _clip(ffmpeg, tmp_path / "other.mp4", size="320x240")
    _clip(ffmpeg, tmp_path / "upright.mp4")
    _turned(ffmpeg, tmp_path / "upright.mp4", tmp_path / "turned.mp4")
    assert "rotation of 90 degrees" in _reported(ffmpeg, tmp_path / "named.mp4")
    async with connect() as client:
        landscape = await client.call_tool(
            "stitch_videos", {"clips": ["named.mp4", "other.mp4"], "output_name": "wide", "session": "meta"}
        )
        portrait = await client.call_tool(
            "stitch_videos", {"clips": ["turned.mp4", "other.mp4"], "output_name": "tall", "session": "meta"}
        )
    assert not landscape.is_error and not portrait.is_error, text_of(landscape) + text_of(portrait)
    assert _shown(ffmpeg, tmp_path / landscape.structured_content["path"])[1] == "640x360", text_of(landscape)
    assert _shown(ffmpeg, tmp_path / portrait.structured_content["path"])[1] == "360x640", text_of(portrait)


async def test_an_input_whose_metadata_claims_a_minute_is_priced_at_its_own_length(connect, ffmpeg, tmp_path):
    """Topaz bills 8 credits per second of the video: a 2 s MKV (measured by ffmpeg, as WebM and AVI are) whose
    title says a minute, on a line of its own too, is quoted 16 credits, never 480."""
    title = f"title={SPOKEN}\n  {SPOKEN}: 0.000000, bitrate: 1 kb/s"
    name = _clip(ffmpeg, tmp_path / "clip.mkv", "-metadata", title, "-f", "matroska")
    assert SPOKEN in _reported(ffmpeg, tmp_path / name)
    async with connect(elicitation=answering()) as client:
        estimate = await client.call_tool(
            "estimate_cost", {**UPSCALE, "options": {**UPSCALE["options"], "video_url": name}}
        )
    assert not estimate.is_error, text_of(estimate)
    assert estimate.structured_content["quote"]["credits_total"] == pytest.approx(16, abs=1), text_of(estimate)


def _before_4(ffmpeg: str, folder: Path) -> Path:
    """An ffmpeg as those before 4.0 were: no log level tags (``-loglevel level+...`` refused, as they refused it)."""
    script = folder / "ffmpeg-3"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in *level+*)\n'
        '  echo "Invalid loglevel \\"$a\\". Possible levels are numbers or:" >&2; exit 1;;\n'
        "esac; done\n"
        f'exec "{ffmpeg}" "$@"\n'
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_an_ffmpeg_before_4_is_read_untagged_and_a_title_is_still_no_length(
    connect, ffmpeg, tmp_path, tmp_path_factory, monkeypatch
):
    """An ffmpeg that refuses level tags gets the report without them, held to ffmpeg's layout alone: the title that
    says a minute is still no length, for the join as for the quote."""
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(_before_4(ffmpeg, tmp_path_factory.mktemp("old-ffmpeg"))))
    _clip(ffmpeg, tmp_path / "sound.mp4", audio=True)
    _clip(ffmpeg, tmp_path / "titled.mp4", "-metadata", f"title={SPOKEN}", "-metadata", f"comment={BROKEN_VALUE}")
    name = _clip(ffmpeg, tmp_path / "clip.mkv", "-metadata", f"title={SPOKEN}", "-f", "matroska")
    async with connect(elicitation=answering()) as client:
        joined = await client.call_tool("stitch_videos", {"clips": ["sound.mp4", "titled.mp4"], "session": "old"})
        estimate = await client.call_tool(
            "estimate_cost", {**UPSCALE, "options": {**UPSCALE["options"], "video_url": name}}
        )
    assert not joined.is_error, text_of(joined)
    assert joined.structured_content["duration"] == pytest.approx(4.0, abs=0.2), text_of(joined)
    assert _shown(ffmpeg, tmp_path / joined.structured_content["path"])[0] == pytest.approx(4.0, abs=0.2)
    assert estimate.structured_content["quote"]["credits_total"] == pytest.approx(16, abs=1), text_of(estimate)
