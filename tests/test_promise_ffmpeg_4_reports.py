"""stitch_videos and the per-second quote read an ffmpeg 4's report as they read a newer one's, and its metadata is
still no stream, length or turn.

ffmpeg before 5.0 (Debian 11's 4.3, Ubuntu 20.04's 4.2 and 22.04's 4.4, the system ffmpeg README offers where the
``video`` extra is not installed) prints an input's ``Stream #`` lines four spaces in, not two; every clip was refused
"is not a video (no video stream ...)". Four spaces in is also where ffmpeg prints the file's own metadata keys, so a
key named "Stream #0:0(und)" reads as a stream line: a stream is taken only after the input's own ``  Duration: ``
line, outside any ``Metadata:`` section. The reports are real ones (``tests/data/ffmpeg-reports``, how each clip was
made in its README): Debian 11's ffmpeg 4.3.7, tagged as ``probe`` asks and untagged as an ffmpeg before 4.0 is read,
beside the bundled ffmpeg's. Through the MCP client, an ffmpeg that prints ffmpeg 4's layout joins clips, metadata
that claims a minute included, at their own length.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kie_mcp.media.stitch import Probe, StitchError, parse_probe, report_duration, report_lines

from .conftest import text_of

REPORTS = Path(__file__).parent / "data" / "ffmpeg-reports"
SPOOF_STREAM = "    Stream #0:0(und): Video: hevc (Main), yuv420p, 1920x1080 [SAR 1:1 DAR 16:9], 60 fps"
SPOKEN = "Duration: 00:01:00.00, start"


def _report(name: str) -> tuple[str, bool]:
    """The captured report ``name`` and whether it was asked for with level tags."""
    return (REPORTS / f"{name}.txt").read_text(encoding="utf-8"), "-tagged-" in name


def _probed(name: str) -> Probe:
    report, tagged = _report(name)
    clip = report.split(" from '", 1)[1].split("'", 1)[0]
    return parse_probe(Path(clip), report, tagged=tagged)


def _length(name: str) -> float | None:
    """The length ``duration.ffmpeg_length`` reads from this report (its header, before the packets are counted)."""
    report, tagged = _report(name)
    return report_duration(report_lines(report, tagged=tagged))


@pytest.mark.parametrize("name", ["ffmpeg-4.3-tagged-plain", "ffmpeg-4.3-untagged-plain", "ffmpeg-9.0-tagged-plain"])
def test_an_ffmpeg_4_report_of_a_clip_reads_as_the_clip_it_is(name: str):
    report, tagged = _report(name)
    four = any(line.startswith("    Stream #0:0(und): Video: h264") for line in report_lines(report, tagged=tagged))
    assert four is name.startswith("ffmpeg-4.3")  # the layout this test is about, as captured
    probed = _probed(name)
    assert probed.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert (probed.codec, probed.pix_fmt, probed.sar) == ("h264", "yuv420p", "1:1")
    assert (probed.width, probed.height, probed.fps, probed.rotation) == (640, 360, "24", 0)
    assert probed.duration == _length(name) == 2.0
    assert probed.audio is not None
    assert (probed.audio.codec, probed.audio.sample_rate, probed.audio.channels) == ("aac", 44100, "mono")


@pytest.mark.parametrize(
    ("name", "rotation"),
    [("ffmpeg-4.3-tagged-turned", 90), ("ffmpeg-4.3-untagged-turned", 270), ("ffmpeg-9.0-tagged-turned", 90)],
)
def test_a_clip_turned_by_its_display_matrix_is_turned_in_an_ffmpeg_4_report(name: str, rotation: int):
    """ffmpeg 4.3 prints the display matrix in the stream's side data, six spaces in (and the ``rotate`` tag it
    derives, which only an ffmpeg before 4.0, read untagged, turned by: 270, the same quarter turn)."""
    probed = _probed(name)
    assert (probed.rotation, probed.display_size, probed.duration) == (rotation, (360, 640), 2.0)


@pytest.mark.parametrize(
    "name", ["ffmpeg-4.3-tagged-spoofed", "ffmpeg-9.0-tagged-spoofed", "ffmpeg-4.3-untagged-titled"]
)
def test_a_metadata_key_four_spaces_in_is_no_stream_and_a_title_no_length(name: str):
    """The file's key "Stream #0:0(und)" prints as an ffmpeg 4 stream line, an HEVC 1920x1080 at 60 fps, before the
    input's own streams; its title and a comment of two lines say a minute (and, tagged, a key of two lines prints
    ``  Duration: 00:01:00.00`` as a line of its own). The clip is its own 2 s of H.264 640x360 at 24 fps."""
    report, tagged = _report(name)
    lines = report_lines(report, tagged=tagged)
    assert SPOOF_STREAM in lines and f"    title           : {SPOKEN}" in lines  # the spoofs, as ffmpeg printed them
    assert (f"\n  {SPOKEN}: v\n" in report) is tagged  # the key of two lines (no defence untagged: not in that clip)
    probed = _probed(name)
    assert (probed.codec, probed.width, probed.height, probed.fps) == ("h264", 640, 360, "24")
    assert probed.duration == _length(name) == 2.0
    assert probed.audio is not None and probed.audio.codec == "aac"


@pytest.mark.parametrize("name", ["ffmpeg-4.3-tagged-named", "ffmpeg-4.3-untagged-named", "ffmpeg-9.0-tagged-named"])
def test_a_stream_named_for_a_rotation_is_not_turned_in_an_ffmpeg_4_report(name: str):
    """A Matroska video stream titled and named "... rotation of 90 degrees ...", in a file whose title of two lines
    says a minute: landscape, 2 s, and no sound."""
    report, _ = _report(name)
    assert "rotation of 90 degrees" in report and f"  {SPOKEN}: 0.000000" in report
    probed = _probed(name)
    assert (probed.container, probed.rotation, probed.display_size) == ("matroska,webm", 0, (640, 360))
    assert probed.duration == _length(name) == 2.0
    assert probed.audio is None


def test_a_report_whose_metadata_alone_names_a_stream_is_no_video():
    """A report cut after the file's metadata (no ``  Duration:`` line, nor streams after it) has no video stream,
    though a key four spaces in reads as one."""
    report, tagged = _report("ffmpeg-4.3-tagged-spoofed")
    head = report.split("[info]   Duration: ", 1)[0]
    assert SPOOF_STREAM in report_lines(head, tagged=tagged)
    with pytest.raises(StitchError, match="no video stream"):
        parse_probe(Path("spoofed.mp4"), head, tagged=tagged)


# ------------------------------------------------------------------------------------------------ through MCP


def _four_spaces_in(ffmpeg: str, folder: Path) -> Path:
    """An ffmpeg that prints its stream lines four spaces in, as ffmpeg 4 did (its exit code and output kept)."""
    script = folder / "ffmpeg-4-layout"
    script.write_text(
        "#!/bin/sh\n"
        "err=$(mktemp) || exit 1\n"
        f'"{ffmpeg}" "$@" 2>"$err"\n'
        "code=$?\n"
        "sed -E 's/^((\\[[a-z]+\\] )?)  Stream #/\\1    Stream #/' \"$err\" >&2\n"
        'rm -f "$err"\n'
        'exit "$code"\n'
    )
    script.chmod(0o755)
    return script


def _reported(ffmpeg: Path, path: Path) -> str:
    """``ffmpeg``'s report of ``path``, untagged."""
    command = [str(ffmpeg), "-hide_banner", "-i", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False).stderr


def _clip(ffmpeg: str, path: Path, *extra: str) -> str:
    """A 2 s H.264 640x360 clip with AAC sound, with ``extra`` output options."""
    source = ["-f", "lavfi", "-i", "testsrc=size=640x360:rate=24:duration=2"]
    source += ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac"]
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra]
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", *source, *encode, str(path)], check=True)
    return path.name


async def test_clips_are_joined_with_an_ffmpeg_that_prints_streams_four_spaces_in(
    connect, ffmpeg, tmp_path, tmp_path_factory, monkeypatch
):
    """Both clips are read (the second's metadata naming an HEVC 1920x1080 stream and a minute), joined by stream
    copy, and the join is probed as written: 4 s."""
    _clip(ffmpeg, tmp_path / "one.mp4")
    spoof = ["-movflags", "use_metadata_tags", "-metadata", f"title={SPOKEN}"]
    spoof += ["-metadata", f"{SPOOF_STREAM.strip().split(': ', 1)[0]}={SPOOF_STREAM.split(': ', 1)[1]}"]
    _clip(ffmpeg, tmp_path / "two.mp4", *spoof)
    old = _four_spaces_in(ffmpeg, tmp_path_factory.mktemp("ffmpeg-4"))
    told = _reported(old, tmp_path / "two.mp4")
    assert "\n    Stream #0:0[0x1](und): Video: h264" in told and SPOOF_STREAM in told
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(old))
    async with connect() as client:
        joined = await client.call_tool("stitch_videos", {"clips": ["one.mp4", "two.mp4"], "session": "old"})
    assert not joined.is_error, text_of(joined)
    data = joined.structured_content
    assert data["reencoded"] is False and data["duration"] == pytest.approx(4.0, abs=0.2), text_of(joined)
    assert "h264 640x360 24 fps" in text_of(joined) and "damaged" not in text_of(joined)
