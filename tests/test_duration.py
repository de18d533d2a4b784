"""Prices per second of an input are measured, not guessed: real media made here (stdlib ``wave``, the real ffmpeg
from imageio-ffmpeg), served over an in-process HTTP transport with and without Range support."""

from __future__ import annotations

import io
import random
import re
import struct
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from kie_mcp.catalog import ModelSpec, load_catalog, price_input
from kie_mcp.catalog.pricing import billed_input, input_to_measure
from kie_mcp.kie import KieClient
from kie_mcp.media import duration as duration_mod
from kie_mcp.media.duration import (
    MAX_SECONDS,
    cut_short,
    flac_seconds,
    input_field,
    measure_inputs,
    measure_judged,
    measure_local,
    measure_url,
    mp3_seconds,
    mp4_seconds,
    tracks,
    wav_seconds,
)
from kie_mcp.media.inputs import ChangedFile, FileStamp, LocalFile, Tracks
from kie_mcp.media.sniff import HEAD_BYTES, sniff
from kie_mcp.media.stitch import StitchError

CATALOG = load_catalog()
BASE = "https://cdn.example.test"


# -- media made here -----------------------------------------------------------------------------------------------


def _run(ffmpeg: str, *arguments: str) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments], check=True)


def _reported(ffmpeg: str, path: Path) -> float:
    """The duration ffmpeg prints (to 10 ms), read independently of the module under test."""
    report = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)], check=False, capture_output=True, text=True
    )
    match = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", report.stderr)
    assert match, report.stderr
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _wav(path: Path, *, rate: int = 8000, channels: int = 1, width: int = 2, frames: int = 20000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(bytes(frames * channels * width))
    return path


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def _wav_extensible(rate: int = 16000, channels: int = 2, bits: int = 24, frames: int = 20000, *, size=None) -> bytes:
    """WAVE_FORMAT_EXTENSIBLE with PCM as its SubFormat, an odd-sized chunk before ``data`` (padded)."""
    block = channels * bits // 8
    pcm_guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 3) + pcm_guid
    data = bytes(frames * block)
    body = _chunk(b"fmt ", fmt) + _chunk(b"junk", b"odd") + b"data" + struct.pack("<I", size or len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _mp4_64bit(timescale: int, duration: int) -> bytes:
    """ftyp, a 64-bit ``mdat`` (largesize), then ``moov`` with a version-1 ``mvhd`` (64-bit times) at the end, and a
    track as long: a version-1 ``mdhd`` and samples of 1/4 s in ``stts``."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    media = bytes(5000)
    mdat = struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 16 + len(media)) + media
    mvhd = _box(b"mvhd", b"\x01\x00\x00\x00" + struct.pack(">QQIQ", 0, 0, timescale, duration) + bytes(80))
    scale = timescale or 1000
    mdhd = _box(b"mdhd", b"\x01\x00\x00\x00" + struct.pack(">QQIQ", 0, 0, scale, duration) + bytes(4))
    samples, delta = min(duration * 4 // scale, 2**32 - 1), max(scale // 4, 1)
    stts = _box(b"stts", bytes(4) + struct.pack(">III", 1, samples, delta))
    track = _box(b"trak", _box(b"mdia", mdhd + _box(b"minf", _box(b"stbl", stts))))
    return ftyp + mdat + _box(b"moov", mvhd + track + _box(b"udta", b""))


def _id3v2(size: int) -> bytes:
    """An ID3v2.3 tag of ``size`` bytes of padding (album art makes tags this big)."""
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + bytes(size)


@pytest.fixture(scope="module")
def media(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    made: dict[str, Path] = {}
    video = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=2.5"]
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3.2"]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    made["end.mp4"] = folder / "end.mp4"  # no +faststart: moov after mdat
    _run(ffmpeg, *video, *sound, *x264, "-c:a", "aac", "-shortest", str(made["end.mp4"]))
    made["fast.mp4"] = folder / "fast.mp4"
    _run(ffmpeg, *video, *x264, "-movflags", "+faststart", str(made["fast.mp4"]))
    made["clip.mov"] = folder / "clip.mov"
    _run(ffmpeg, *video, *x264, "-f", "mov", str(made["clip.mov"]))
    made["frag.mp4"] = folder / "frag.mp4"
    _run(ffmpeg, *video, *x264, "-movflags", "frag_keyframe+empty_moov", str(made["frag.mp4"]))
    made["big-end.mp4"] = folder / "big-end.mp4"  # ~1 MB, moov at the end: far past the first 64 KiB
    big = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4"]
    _run(ffmpeg, *big, *x264, "-b:v", "2M", str(made["big-end.mp4"]))
    made["voice.m4a"] = folder / "voice.m4a"
    _run(ffmpeg, *sound, "-c:a", "aac", str(made["voice.m4a"]))
    made["voice.flac"] = folder / "voice.flac"
    _run(ffmpeg, *sound, "-c:a", "flac", str(made["voice.flac"]))
    made["voice.ogg"] = folder / "voice.ogg"
    _run(ffmpeg, *sound, "-c:a", "libvorbis", str(made["voice.ogg"]))
    made["clip.webm"] = folder / "clip.webm"
    _run(ffmpeg, *video, "-c:v", "libvpx", "-b:v", "100k", str(made["clip.webm"]))
    made["streamed.webm"] = folder / "streamed.webm"  # written to a pipe: no duration in the header
    streamed = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *video, "-c:v", "libvpx", "-f", "webm", "-"],
        capture_output=True,
        check=True,
    )
    made["streamed.webm"].write_bytes(streamed.stdout)
    made["piped.wav"] = folder / "piped.wav"  # written to a pipe: placeholder chunk sizes
    piped = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *sound, "-f", "wav", "-"],
        capture_output=True,
        check=True,
    )
    made["piped.wav"].write_bytes(piped.stdout)
    made["voice.wav"] = _wav(folder / "voice.wav", rate=8000, frames=20000)  # 2.5 s exactly
    made["wide.wav"] = folder / "wide.wav"
    made["wide.wav"].write_bytes(_wav_extensible(frames=20000))  # 1.25 s exactly
    made["long.mp4"] = folder / "long.mp4"
    made["long.mp4"].write_bytes(_mp4_64bit(1_000_000_000, 7_250_000_000))  # 7.25 s, over 2**32 ticks
    return made


@pytest.fixture(scope="module")
def mp3s(ffmpeg: str, media: dict[str, Path]) -> dict[str, Path]:
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], check=False, capture_output=True, text=True).stdout
    if "libmp3lame" not in encoders:
        pytest.skip("this ffmpeg build has no MP3 encoder (libmp3lame)")
    folder = media["voice.wav"].parent
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3.2", "-c:a", "libmp3lame"]
    made = {name: folder / name for name in ("cbr.mp3", "vbr.mp3", "plain.mp3")}
    _run(ffmpeg, *sound, "-b:a", "128k", str(made["cbr.mp3"]))
    _run(ffmpeg, *sound, "-q:a", "4", str(made["vbr.mp3"]))
    _run(ffmpeg, *sound, "-b:a", "128k", "-write_xing", "0", str(made["plain.mp3"]))  # no Info frame at all
    made["tagged.mp3"] = folder / "tagged.mp3"  # a 100 KB ID3v2 tag before, an ID3v1 tag after
    made["tagged.mp3"].write_bytes(_id3v2(100_000) + made["plain.mp3"].read_bytes() + b"TAG" + bytes(125))
    made["tagged-vbr.mp3"] = folder / "tagged-vbr.mp3"
    made["tagged-vbr.mp3"].write_bytes(_id3v2(100_000) + made["vbr.mp3"].read_bytes())
    return made


def hashed(path: Path) -> LocalFile:
    """``path`` as the request path hands it to measuring: judged, hashed and stamped (here: stamped now)."""
    real = path.resolve()
    media = sniff(real.read_bytes()[:HEAD_BYTES]) or sniff(bytes(_wav_extensible(frames=1)))
    assert media is not None
    return LocalFile(real, "0" * 64, media, real.stat().st_size, FileStamp.of(real.stat()))


# -- local files ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "channels", "width", "frames"),
    [(8000, 1, 2, 20000), (44100, 2, 2, 44100 * 3 + 7), (48000, 6, 3, 12345), (22050, 1, 1, 1)],
)
def test_a_wav_is_measured_from_its_chunks(tmp_path, rate, channels, width, frames):
    path = _wav(tmp_path / "a.wav", rate=rate, channels=channels, width=width, frames=frames)
    assert wav_seconds(path) == pytest.approx(frames / rate)
    assert measure_local(path) == pytest.approx(frames / rate)


def test_an_extensible_or_piped_wav_is_measured(media, ffmpeg):
    assert measure_local(media["wide.wav"]) == pytest.approx(1.25)
    piped = media["piped.wav"].read_bytes()
    data_size = struct.unpack_from("<I", piped, piped.find(b"data") + 4)[0]
    assert data_size in (0, 0xFFFFFFFF)  # a placeholder: the length comes from the file size
    assert measure_local(media["piped.wav"]) == pytest.approx(3.2, abs=0.001)


@pytest.mark.parametrize("name", ["end.mp4", "fast.mp4", "clip.mov", "voice.m4a", "big-end.mp4"])
def test_an_mp4_is_measured_from_its_movie_header_wherever_moov_is(media, ffmpeg, name):
    path = media[name]
    data = path.read_bytes()
    if name in ("end.mp4", "big-end.mp4"):
        assert data.find(b"moov") > data.find(b"mdat")
    if name == "fast.mp4":
        assert data.find(b"moov") < data.find(b"mdat")
    assert mp4_seconds(path) == pytest.approx(_reported(ffmpeg, path), abs=0.011)
    assert measure_local(path) == mp4_seconds(path)


def test_a_64_bit_movie_header_and_a_64_bit_box_are_read(media):
    assert mp4_seconds(media["long.mp4"]) == pytest.approx(7.25)


def test_a_fragmented_mp4_without_a_movie_length_is_left_to_ffmpeg(media, ffmpeg, monkeypatch):
    path = media["frag.mp4"]
    assert mp4_seconds(path) is None  # no mvhd duration, no mehd: the pure reader does not guess
    assert measure_local(path) == pytest.approx(_reported(ffmpeg, path), abs=0.011)
    monkeypatch.setattr(duration_mod, "find_ffmpeg", _no_ffmpeg)
    assert measure_local(path) is None


def _claiming(data: bytes, seconds: float, *, every_header: bool = False) -> bytes:
    """``data`` (an MP4) with its movie header's duration, and with ``every_header`` each track's ``tkhd`` and
    ``mdhd`` too, rewritten to ``seconds``: its sample tables and edit lists still say how long it plays."""
    out = bytearray(data)
    at = out.find(b"mvhd")
    scale = struct.unpack_from(">I", out, at + 16)[0]
    struct.pack_into(">I", out, at + 20, round(seconds * scale))
    if every_header:
        for kind, scale_at in ((b"tkhd", None), (b"mdhd", 16)):
            at = out.find(kind)
            while at > 0:
                own = scale if scale_at is None else struct.unpack_from(">I", out, at + scale_at)[0]
                struct.pack_into(">I", out, at + (24 if scale_at is None else 20), round(seconds * own))
                at = out.find(kind, at + 1)
    return bytes(out)


@pytest.mark.parametrize("every_header", [False, True], ids=["movie header", "every header"])
async def test_an_mp4_whose_headers_claim_less_than_its_tracks_play_is_measured_at_what_they_play(
    media, tmp_path, monkeypatch, every_header
):
    """A movie header is written by whoever made the file: one saying 0.5 s over tracks of 2.5 s (and every track
    and media header saying so too, the edit lists and sample tables not) measures 2.5 s, with the claim kept for the
    quote, from a file and over Range requests, with and without ffmpeg."""
    liar = tmp_path / "liar.mp4"
    liar.write_bytes(_claiming(media["end.mp4"].read_bytes(), 0.5, every_header=every_header))
    truth = mp4_seconds(media["end.mp4"])
    assert truth == pytest.approx(2.5, abs=0.05)
    found = duration_mod.judged_length(hashed(liar))
    assert found is not None and found.seconds == pytest.approx(truth) and found.claimed == pytest.approx(0.5)
    assert found.by == "tracks"
    async with _client(Server({"/liar.mp4": liar.read_bytes()})) as client:
        assert await measure_url(client, f"{BASE}/liar.mp4") == pytest.approx(truth)
    monkeypatch.setattr(duration_mod, "find_ffmpeg", _no_ffmpeg)
    assert mp4_seconds(liar) == measure_local(liar) == pytest.approx(truth)


def test_a_clip_cut_by_an_edit_list_is_measured_as_it_plays(media, ffmpeg, tmp_path):
    """A clip cut without re-encoding keeps samples past its cut, and its edit list says where it ends: it is as
    long as it plays (as ffmpeg reports it), not as its samples, so it is neither priced nor refused past its cut."""
    cut = tmp_path / "cut.mp4"
    _run(ffmpeg, "-i", str(media["big-end.mp4"]), "-t", "1.3", "-c", "copy", str(cut))
    data = cut.read_bytes()
    assert b"elst" in data
    assert mp4_seconds(cut) == measure_local(cut) == pytest.approx(_reported(ffmpeg, cut), abs=0.011)


def test_an_mp4_whose_tracks_cannot_be_read_is_not_measured_from_its_movie_header(media, tmp_path):
    """A movie header with no track to hold it to (here: none at all) is nobody's word but the file's maker's:
    not measured, so its price stays unknown and is reserved, never the header's length (with ffmpeg too, which
    counts no packet in it)."""
    alone = tmp_path / "alone.mp4"
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    mvhd = _box(b"mvhd", bytes(12) + struct.pack(">II", 1000, 5000) + bytes(80))
    alone.write_bytes(ftyp + _box(b"moov", mvhd) + _box(b"mdat", bytes(4000)))
    assert mp4_seconds(alone) is None
    assert measure_local(alone) is None


def test_ffmpeg_counts_packets_past_what_a_header_says(media, ffmpeg, tmp_path):
    """Where ffmpeg measures, its ``Duration:`` (which follows the container's headers) is held to where a stream
    copy of every packet ends."""
    liar = tmp_path / "liar.mp4"
    liar.write_bytes(_claiming(media["end.mp4"].read_bytes(), 0.5, every_header=True))
    found = duration_mod.ffmpeg_length(liar)
    assert found is not None and found.seconds == pytest.approx(2.5, abs=0.15) and found.by == "packets"
    assert found.claimed is not None and found.claimed < 1


def _claiming_frames(data: bytes, frames: int) -> bytes:
    """``data`` (an MP3 with a Xing/Info frame count) with that count rewritten to ``frames``."""
    out = bytearray(data)
    at = max(out.find(b"Xing"), out.find(b"Info"))
    struct.pack_into(">I", out, at + 8, frames)
    return bytes(out)


async def test_an_mp3_whose_frame_count_claims_less_than_its_frames_play_is_measured_at_what_they_play(mp3s, tmp_path):
    """An MP3's Xing/Info frame count is a header too: one saying 10 frames (a quarter of a second) over 3.2 s of
    frames measures 3.2 s, its frames counted one by one, from a file and over Range requests."""
    liar = tmp_path / "liar.mp3"
    liar.write_bytes(_claiming_frames(mp3s["vbr.mp3"].read_bytes(), 10))
    found = duration_mod.judged_length(hashed(liar))
    assert found is not None and found.seconds == pytest.approx(3.2, abs=0.06) and found.by == "frames"
    assert found.claimed is not None and found.claimed < 0.3
    assert mp3_seconds(liar) == measure_local(liar) == found.seconds
    async with _client(Server({"/liar.mp3": liar.read_bytes()})) as client:
        assert await measure_url(client, f"{BASE}/liar.mp3") == pytest.approx(found.seconds)


@pytest.mark.parametrize("name", ["cbr.mp3", "vbr.mp3", "plain.mp3", "tagged.mp3", "tagged-vbr.mp3"])
def test_an_mp3_is_measured_like_ffprobe_measures_it(mp3s, ffmpeg, name):
    path = mp3s[name]
    seconds = mp3_seconds(path)
    assert seconds is not None
    assert measure_local(path) == seconds
    if name in ("cbr.mp3", "vbr.mp3", "tagged-vbr.mp3"):  # an Info/Xing frame count, encoder padding left out
        assert seconds == pytest.approx(3.2, abs=0.001)
    else:  # no frame count: the first frame's bitrate over the audio bytes, ID3 tags at either end left out
        assert seconds == pytest.approx(mp3_seconds(mp3s["plain.mp3"]))
        assert seconds == pytest.approx(_reported(ffmpeg, mp3s["plain.mp3"]), abs=0.011)


def test_other_containers_are_measured_by_ffmpeg(media, ffmpeg):
    assert flac_seconds(media["voice.flac"]) == pytest.approx(3.2)
    for name in ("clip.webm", "voice.ogg", "voice.flac"):
        assert measure_local(media[name]) == pytest.approx(_reported(ffmpeg, media[name]), abs=0.011)
    # A WebM written to a pipe has no duration in its header: a stream-copy pass finds where it ends.
    report = subprocess.run(
        [ffmpeg, "-hide_banner", "-i", str(media["streamed.webm"])], check=False, capture_output=True, text=True
    )
    assert "Duration: N/A" in report.stderr
    assert measure_local(media["streamed.webm"]) == pytest.approx(2.5, abs=0.11)


def _no_ffmpeg() -> str:
    raise StitchError("no ffmpeg here")


def test_without_ffmpeg_only_other_containers_stay_unmeasured(media, monkeypatch):
    monkeypatch.setattr(duration_mod, "find_ffmpeg", _no_ffmpeg)
    assert measure_local(media["clip.webm"]) is None
    assert measure_local(media["voice.ogg"]) is None
    assert measure_local(media["voice.wav"]) == pytest.approx(2.5)
    assert measure_local(media["end.mp4"]) == pytest.approx(2.5, abs=0.05)


# -- a request's input: measured from the file that was hashed ----------------------------------------------------


@pytest.mark.parametrize("name", ["voice.wav", "end.mp4", "clip.webm", "voice.ogg", "streamed.webm"])
def test_a_hashed_input_is_measured_from_that_file_with_or_without_ffmpeg(media, ffmpeg, tmp_path, name):
    """The pure readers read the judged open file; ffmpeg reads it too (as /dev/fd/N), WebM and Ogg included."""
    copy = tmp_path / name
    copy.write_bytes(media[name].read_bytes())
    assert measure_judged(hashed(copy)) == pytest.approx(measure_local(media[name]), abs=0.011)
    assert measure_judged(hashed(copy)) is not None


@pytest.mark.parametrize("how", ["replaced", "rewritten in place", "replaced while ffmpeg reads it"])
def test_a_hashed_input_changed_before_its_measuring_ends_is_refused(media, ffmpeg, tmp_path, monkeypatch, how):
    """The length priced is the hashed file's: one swapped (another inode) or rewritten (same inode: its size, mtime
    and ctime change) between the hash and the end of the measuring is ``ChangedFile``, never another length."""
    name = "clip.webm" if how.endswith("ffmpeg reads it") else "voice.wav"
    voice = tmp_path / name
    voice.write_bytes(media[name].read_bytes())
    local = hashed(voice)
    short = _wav(tmp_path / "short.wav", frames=800)  # 0.1 s
    if how == "replaced":
        short.replace(voice)
    elif how == "rewritten in place":
        voice.write_bytes(short.read_bytes())
    else:
        real_ffmpeg = duration_mod.ffmpeg_length

        def swap_then_measure(*args: Any, **kwargs: Any) -> float | None:
            short.replace(voice)
            return real_ffmpeg(*args, **kwargs)

        monkeypatch.setattr(duration_mod, "ffmpeg_length", swap_then_measure)
    with pytest.raises(ChangedFile, match=name):
        measure_judged(local)


def _damaged(media: dict[str, Path]) -> dict[str, bytes]:
    wav = media["voice.wav"].read_bytes()
    end = media["end.mp4"].read_bytes()
    fast = media["fast.mp4"].read_bytes()
    return {
        "empty": b"",
        "text": b"duration: 12 seconds\n" * 400,
        "random": random.Random(7).randbytes(50_000),
        "png": b"\x89PNG\r\n\x1a\n" + bytes(2000),
        "wav header cut": wav[:30],
        "wav data cut": wav[: len(wav) // 2],
        "wav without data": wav[:36],
        "wav no sound": _wav_extensible(frames=0),
        "wav lying size": _wav_extensible(frames=100, size=10**6),
        "mp4 header cut": end[:20],
        "mp4 moov cut off": end[: len(end) // 2],
        "mp4 mdat cut": fast[: len(fast) - 100],
        "mp4 zero timescale": _mp4_64bit(0, 1000),
        "mp4 absurd length": _mp4_64bit(1, 10**12),
        "mp3 tag only": _id3v2(500),
        "mp3 tag then junk": _id3v2(500) + bytes(range(256)) * 40,
        "flac header only": b"fLaC\x80\x00\x00\x22" + bytes(10),
    }


def test_garbage_truncated_and_empty_files_are_not_measured(media, tmp_path):
    for name, data in _damaged(media).items():
        path = tmp_path / name.replace(" ", "-")
        path.write_bytes(data)
        assert measure_local(path) is None, name
        for reader in (wav_seconds, mp3_seconds, mp4_seconds, flac_seconds):
            assert reader(path) is None, (name, reader.__name__)
    assert measure_local(tmp_path) is None  # a folder
    assert measure_local(tmp_path / "missing.wav") is None


def test_mangled_media_never_raises(media, mp3s, tmp_path, monkeypatch):
    """Random cuts and overwrites of every real file: a length in range or None, never an exception."""
    monkeypatch.setattr(duration_mod, "find_ffmpeg", _no_ffmpeg)  # the pure readers, fast
    rng = random.Random(2024)
    sources = [media[n] for n in ("voice.wav", "wide.wav", "end.mp4", "fast.mp4", "voice.m4a", "long.mp4")]
    sources += [media["voice.flac"], mp3s["cbr.mp3"], mp3s["vbr.mp3"], mp3s["tagged.mp3"]]
    path = tmp_path / "mangled"
    for source in sources:
        original = source.read_bytes()
        for _ in range(40):
            data = bytearray(original)
            what = rng.randrange(3)
            if what == 0:
                del data[rng.randrange(len(data)) :]
            else:
                for _ in range(rng.randrange(1, 12)):
                    at = rng.randrange(min(len(data), 4096)) if what == 1 else rng.randrange(len(data))
                    data[at : at + 4] = rng.randbytes(4)
            path.write_bytes(bytes(data))
            seconds = measure_local(path)
            assert seconds is None or 0 < seconds <= MAX_SECONDS


def _track(handler: bytes, *, hdlr: bool = True) -> bytes:
    """A ``trak`` whose ``mdia/hdlr`` names ``handler`` (QuickTime's layout: component type, then subtype)."""
    handled = _box(b"hdlr", bytes(4) + b"mhlr" + handler + bytes(12) + b"\x00") if hdlr else b""
    return _box(b"trak", _box(b"tkhd", bytes(84)) + _box(b"mdia", _box(b"mdhd", bytes(24)) + handled))


def _movie(*tracks: bytes, after: bytes = b"") -> bytes:
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    moov = _box(b"moov", _box(b"mvhd", bytes(100)) + b"".join(tracks) + after)
    return ftyp + moov + _box(b"mdat", bytes(500))


def _tracks_of(data: bytes, tmp_path: Path) -> Tracks | None:
    path = tmp_path / "tracks"
    path.write_bytes(data)
    with path.open("rb") as handle:
        return tracks(handle, len(data))


def test_an_mp4s_tracks_say_whether_it_holds_sound_and_video(media, tmp_path):
    """Whether an MP4/MOV/M4A holds sound and whether it holds picture, each told from its tracks' handlers (a field
    of audio refuses a clip without sound, a field of video a recording without picture); None whenever a track could
    be missed (no movie box, no track, a track without its handler, a damaged movie box), which leaves it to KIE."""
    fast = media["fast.mp4"].read_bytes()
    read = {
        "both": (media["end.mp4"].read_bytes(), Tracks(sound=True, video=True)),
        "video, moov first": (fast, Tracks(sound=False, video=True)),
        "video, cut off after moov": (fast[: len(fast) - 100], Tracks(sound=False, video=True)),
        "mov": (media["clip.mov"].read_bytes(), Tracks(sound=False, video=True)),
        "fragmented": (media["frag.mp4"].read_bytes(), Tracks(sound=False, video=True)),
        "sound": (media["voice.m4a"].read_bytes(), Tracks(sound=True, video=False)),
        "sound, built": (_movie(_track(b"soun")), Tracks(sound=True, video=False)),
        "video and text, built": (_movie(_track(b"vide"), _track(b"text")), Tracks(sound=False, video=True)),
        "timecode only, built": (_movie(_track(b"tmcd")), Tracks(sound=False, video=False)),
    }
    for name, (data, held) in read.items():
        assert _tracks_of(data, tmp_path) == held, name
    unread = {
        "no track": _movie(),
        "a track without its handler": _movie(_track(b"soun"), _track(b"vide", hdlr=False)),
        "a damaged box after the tracks": _movie(_track(b"soun"), after=struct.pack(">I", 4000) + b"trak"),
        "two movie boxes": _movie(_track(b"soun")) + _box(b"moov", _track(b"vide")),
        "moov cut off": media["end.mp4"].read_bytes()[: len(media["end.mp4"].read_bytes()) // 2],
        "mvhd only": media["long.mp4"].read_bytes(),
        **{name: data for name, data in _damaged(media).items() if not name.startswith("mp4")},
    }
    for name, data in unread.items():
        assert _tracks_of(data, tmp_path) is None, name
    rng = random.Random(11)
    original = media["end.mp4"].read_bytes()
    for _ in range(60):  # mangled: something or None, never an exception
        data = bytearray(original)
        for _ in range(rng.randrange(1, 12)):
            at = rng.randrange(len(data))
            data[at : at + 4] = rng.randbytes(4)
        assert _tracks_of(bytes(data), tmp_path) in (
            None,
            *(Tracks(a, b) for a in (True, False) for b in (True, False)),
        )


# -- a saved result: whole, or cut short ---------------------------------------------------------------------------


class _CountedReads(io.RawIOBase):
    """A file read through a count of the bytes it gave (the walk must read box headers, never the file)."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("rb", buffering=0)
        self.given = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        done = self.file.readinto(buffer)
        self.given += done or 0
        return done

    def close(self) -> None:
        self.file.close()
        super().close()


def _cut_short_of(data: bytes, tmp_path: Path) -> str | None:
    path = tmp_path / "result.mp4"
    path.write_bytes(data)
    with path.open("rb") as handle:
        return cut_short(handle, len(data))


@pytest.mark.parametrize(
    "name", ["end.mp4", "fast.mp4", "clip.mov", "frag.mp4", "voice.m4a", "big-end.mp4", "long.mp4"]
)
def test_a_whole_mp4_mov_or_m4a_is_never_called_cut_short(media, name):
    """moov at either end, QuickTime, fragments (a box a fragment), sound alone, a 64-bit mdat: all whole."""
    with media[name].open("rb") as handle:
        assert cut_short(handle, media[name].stat().st_size) is None


@pytest.mark.parametrize("name", ["end.mp4", "fast.mp4", "long.mp4"])
def test_an_mp4_cut_short_anywhere_but_a_box_boundary_is_said_so(media, name, tmp_path):
    """A file KIE stored cut short, its length agreeing: its last box runs past the end, or its movie box is
    missing (cut before it), or a header is cut in two. 64-bit box sizes are read as such."""
    data = media[name].read_bytes()
    for cut in (4, 12, 100, 1000, len(data) // 2, len(data) - 1):
        why = _cut_short_of(data[:cut], tmp_path)
        assert why is not None and ("cut short" in why or "no movie box" in why), (cut, why)
    assert "past the file's end" in _cut_short_of(data[: len(data) - 1], tmp_path)


def test_a_last_box_sized_to_the_end_of_the_file_is_whole_and_a_file_without_a_movie_is_not(media, tmp_path):
    """Size 0: "to the end of the file", as a writer that could not go back leaves its last box. A file with no
    movie box (moov) opens in no player."""
    data = media["end.mp4"].read_bytes()
    last = data.rfind(b"moov") - 4  # moov comes last here
    assert _cut_short_of(data[:last] + bytes(4) + data[last + 4 :], tmp_path) is None
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isom")
    assert "no movie box" in _cut_short_of(ftyp + _box(b"mdat", bytes(100)), tmp_path)
    assert "less than its own header" in _cut_short_of(ftyp + struct.pack(">I", 3) + b"free", tmp_path)


@pytest.mark.parametrize("name", ["end.mp4", "fast.mp4", "frag.mp4", "voice.m4a", "long.mp4"])
@pytest.mark.parametrize(
    "tail", [b"\n", bytes(4), bytes(8), bytes(100), b"TAG" + b"x" * 125, b"\0\0\0\x20junk" + bytes(8)]
)
def test_a_whole_mp4_with_bytes_after_its_last_box_is_never_called_cut_short(media, name, tail, tmp_path):
    """A stray newline, zero padding, a tag some tool appended: after a whole movie and its media, bytes that are no
    top-level box are trailing data a player never reads, not a file cut short."""
    assert _cut_short_of(media[name].read_bytes() + tail, tmp_path) is None


def test_a_box_of_a_top_level_type_past_the_end_after_a_whole_movie_is_still_cut_short(media, tmp_path):
    """A fragment, a free box or a second mdat that runs past the end is a file cut short, wherever it starts; so is
    a file whose movie or media is not whole before its tail."""
    data = media["fast.mp4"].read_bytes()
    for kind in (b"moof", b"free", b"mdat", b"mfra"):
        why = _cut_short_of(data + struct.pack(">I", 1000) + kind + bytes(20), tmp_path)
        assert why is not None and "past the file's end" in why, (kind, why)
    assert "inside a box header" in (_cut_short_of(data + struct.pack(">I", 1) + b"mdat" + bytes(4), tmp_path) or "")
    frag = media["frag.mp4"].read_bytes()
    last = frag.rfind(b"moof") - 4  # the last fragment cut inside its movie fragment box
    assert "past the file's end" in (_cut_short_of(frag[: last + 40], tmp_path) or "")
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isom")
    assert "cut short" in (_cut_short_of(ftyp + _box(b"mdat", bytes(100)) + b"\n", tmp_path) or "")  # no moov
    moov = data[data.find(b"moov") - 4 :][: struct.unpack(">I", data[data.find(b"moov") - 4 : data.find(b"moov")])[0]]
    assert "cut short" in (_cut_short_of(ftyp + moov + b"\n", tmp_path) or "")  # no mdat yet


def test_a_large_whole_file_is_judged_from_its_box_headers_without_being_read(media, tmp_path):
    """A 6 GB video (sparse here) is judged whole from a few hundred bytes: a seek and a header a box."""
    moov = media["fast.mp4"].read_bytes()
    moov = moov[moov.find(b"moov") - 4 :][: struct.unpack(">I", moov[moov.find(b"moov") - 4 : moov.find(b"moov")])[0]]
    size = 6 * 1024**3
    head = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isom") + moov
    path = tmp_path / "large.mp4"
    with path.open("wb") as out:
        out.write(head + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", size - len(head)))
        out.truncate(size)
    counted = _CountedReads(path)
    with io.BufferedReader(counted) as handle:
        assert cut_short(handle, size) is None
    assert counted.given < 64 * 1024, counted.given
    with path.open("rb") as handle:
        assert "past the file's end" in (cut_short(handle, size - 1) or "")


# -- URLs ----------------------------------------------------------------------------------------------------------


class Server:
    """Serves files by path, honouring Range or not; records every request and the bytes sent."""

    def __init__(self, files: dict[str, bytes], *, ranges: bool = True, length: bool = True) -> None:
        self.files = files
        self.ranges = ranges
        self.length = length
        self.requests: list[httpx2.Request] = []
        self.sent = 0
        self.redirects: dict[str, str] = {}
        self.delay = 0.0

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.delay:
            await anyio.sleep(self.delay)
        path = request.url.path
        if path in self.redirects:
            return httpx2.Response(302, headers={"Location": self.redirects[path]})
        if path not in self.files:
            return httpx2.Response(404, content=b"not found")
        data = self.files[path]
        wanted = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("range", ""))
        if self.ranges and wanted:
            first, last = int(wanted.group(1)), min(int(wanted.group(2)), len(data) - 1)
            if first >= len(data):
                return httpx2.Response(416, headers={"Content-Range": f"bytes */{len(data)}"})
            self.sent += last - first + 1
            headers = {"Content-Range": f"bytes {first}-{last}/{len(data)}"}
            return httpx2.Response(206, headers=headers, content=data[first : last + 1])
        self.sent += len(data)
        if not self.length:
            return httpx2.Response(200, content=_chunks(data))  # chunked: no Content-Length
        return httpx2.Response(200, content=data)


async def _chunks(data: bytes, size: int = 8192, pause: float = 0.0) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        if pause:
            await anyio.sleep(pause)
        yield data[at : at + size]


def _client(server: Callable[..., Any]) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(server))


@pytest.fixture
def served(media: dict[str, Path]) -> dict[str, bytes]:
    return {f"/{name}": path.read_bytes() for name, path in media.items()}


@pytest.mark.parametrize("ranges", [True, False], ids=["range", "no-range"])
async def test_a_url_is_measured_the_same_as_the_file(media, served, ranges):
    server = Server(served, ranges=ranges)
    async with _client(server) as client:
        for name in ("voice.wav", "wide.wav", "end.mp4", "fast.mp4", "voice.m4a", "long.mp4", "voice.flac"):
            assert await measure_url(client, f"{BASE}/{name}") == measure_local(media[name]), name


async def test_an_mp4_with_moov_at_the_end_is_measured_from_a_few_ranges(media, served):
    server = Server(served)
    size = len(served["/big-end.mp4"])
    assert size > 600_000
    async with _client(server) as client:
        seconds = await measure_url(client, f"{BASE}/big-end.mp4")
    assert seconds == measure_local(media["big-end.mp4"]) == pytest.approx(4.0, abs=0.05)
    assert len(server.requests) <= 3  # the head, then the moov header at the end (with mvhd in it)
    assert server.sent <= 3 * 64 * 1024
    assert all(r.headers.get("range", "").startswith("bytes=") for r in server.requests)


async def test_an_mp3_behind_a_big_tag_is_measured_over_ranges(mp3s):
    server = Server({f"/{name}": path.read_bytes() for name, path in mp3s.items()})
    async with _client(server) as client:
        for name in ("tagged.mp3", "tagged-vbr.mp3", "cbr.mp3"):
            assert await measure_url(client, f"{BASE}/{name}") == pytest.approx(mp3_seconds(mp3s[name])), name
    assert server.sent < 400_000  # the ID3 tag's 100 KB are skipped over, not fetched


async def test_a_long_mp3_behind_a_server_taking_ranges_is_measured_when_its_ranges_run_out(ffmpeg, mp3s, tmp_path):
    """The review: an MP3's frames are read to its end a range at a time, and a 16 MiB voice used every range request
    before its end: never measured (its price unknown), while a server without ranges had it measured at once. When
    the ranges run out the whole file is streamed, within the cap, as from a server without ranges."""
    path = tmp_path / "long.mp3"
    _run(ffmpeg, "-f", "lavfi", "-i", "sine=f=440:r=44100:d=420", "-c:a", "libmp3lame", "-b:a", "320k", str(path))
    assert path.stat().st_size > 16_000_000
    server = Server({"/long.mp3": path.read_bytes()})
    async with _client(server) as client:
        assert await measure_url(client, f"{BASE}/long.mp3") == pytest.approx(420, abs=0.5)


async def test_a_server_without_range_support_is_streamed_up_to_the_cap(media, served):
    server = Server(served, ranges=False)
    size = len(served["/big-end.mp4"])
    async with _client(server) as client:
        assert await measure_url(client, f"{BASE}/big-end.mp4", max_bytes=size) == pytest.approx(4.0, abs=0.05)
        assert await measure_url(client, f"{BASE}/big-end.mp4", max_bytes=size - 1) is None  # Content-Length says
    chunked = Server(served, ranges=False, length=False)
    async with _client(chunked) as client:  # no Content-Length: counted as it arrives
        assert await measure_url(client, f"{BASE}/big-end.mp4", max_bytes=size) == pytest.approx(4.0, abs=0.05)
        assert await measure_url(client, f"{BASE}/big-end.mp4", max_bytes=200_000) is None
        assert await measure_url(client, f"{BASE}/voice.wav") == pytest.approx(2.5)


async def test_with_ranges_the_byte_bound_counts_what_is_fetched(served):
    """A big file is measured from a few ranges within the bound; when the headers lie past it, it is not."""
    for bound, expected in ((100_000, 4.0), (40_000, None)):
        server = Server(served)
        async with _client(server) as client:
            seconds = await measure_url(client, f"{BASE}/big-end.mp4", max_bytes=bound)
        assert seconds == (None if expected is None else pytest.approx(expected, abs=0.05))
        assert server.sent <= bound


async def test_other_containers_at_a_url_are_downloaded_within_the_cap_and_measured_by_ffmpeg(media, served, ffmpeg):
    server = Server(served)
    async with _client(server) as client:
        assert await measure_url(client, f"{BASE}/clip.webm") == pytest.approx(2.5, abs=0.011)
        assert await measure_url(client, f"{BASE}/streamed.webm") == pytest.approx(2.5, abs=0.11)
        assert await measure_url(client, f"{BASE}/clip.webm", max_bytes=1000) is None


async def test_a_slow_server_gives_none_within_the_timeout(served):
    server = Server(served)
    server.delay = 30.0
    started = time.monotonic()
    async with _client(server) as client:
        assert await measure_url(client, f"{BASE}/voice.wav", timeout=0.3) is None
    assert time.monotonic() - started < 3

    async def trickle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=_chunks(served["/end.mp4"], size=1000, pause=0.2))

    started = time.monotonic()
    async with _client(trickle) as client:
        assert await measure_url(client, f"{BASE}/end.mp4", timeout=0.5) is None
    assert time.monotonic() - started < 3


async def test_redirects_are_followed_to_http_urls_only(served):
    server = Server(served)
    server.redirects = {"/moved.wav": f"{BASE}/voice.wav", "/sneaky.wav": "file:///etc/passwd"}
    async with _client(server) as client:
        assert await measure_url(client, f"{BASE}/moved.wav") == pytest.approx(2.5)
        assert await measure_url(client, f"{BASE}/sneaky.wav") is None
    assert all(r.url.scheme == "https" for r in server.requests)


async def test_bad_urls_and_bad_answers_are_not_measured(served):
    server = Server({**served, "/empty.wav": b"", "/garbage.mp4": random.Random(1).randbytes(70_000)})
    async with _client(server) as client:
        for url in (f"{BASE}/missing.wav", f"{BASE}/empty.wav", f"{BASE}/garbage.mp4", "file:///etc/passwd"):
            assert await measure_url(client, url) is None, url
        assert await measure_url(client, "ftp://example.test/a.wav") is None
        assert await measure_url(client, "not a url at all") is None

    async def wrong_range(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(206, headers={"Content-Range": "bytes 100-200/5000"}, content=bytes(101))

    async def broken(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    for handler in (wrong_range, broken):
        async with _client(handler) as client:
            assert await measure_url(client, f"{BASE}/voice.wav") is None


async def test_the_kie_key_is_never_sent_when_measuring(served):
    server = Server(served)
    transport = httpx2.MockTransport(server)
    async with KieClient(
        api_key="kie-secret-key",
        base_url="https://api.kie.test",
        upload_base_url="https://up.kie.test",
        transport=transport,
    ) as kie:
        assert await measure_url(kie.files, f"{BASE}/end.mp4") == pytest.approx(2.5, abs=0.05)
        assert await measure_url(kie._api, f"{BASE}/end.mp4") is None  # a client with the key is refused
    assert server.requests
    for request in server.requests:
        assert "authorization" not in request.headers
        assert "kie-secret-key" not in str(request.headers)


# -- measuring a request's input and pricing it -------------------------------------------------------------------


def _spec(fields: dict[str, dict[str, Any]], price: dict[str, Any]) -> ModelSpec:
    data = {
        "title": "test model",
        "family": "market",
        "kind": "video",
        "capabilities": ["lip-sync"],
        "good_for": "tests",
        "typical_seconds": [60, 600],
        "fields": {name: {"source": "doc", **field} for name, field in fields.items()},
        "price": {"source": "price", **price},
        "source": "doc",
        "sources": {
            "doc": {"kind": "documented", "ref": "test", "date": "2026-01-01"},
            "price": {"kind": "documented", "ref": "test prices", "date": "2026-01-01"},
        },
    }
    return ModelSpec.model_validate({"id": "test/lip-sync", **data})


LIP_SYNC = _spec(
    {"image_url": {"type": "url"}, "audio_url": {"type": "url", "required": True}, "prompt": {"type": "string"}},
    {"unit": "second", "rates": [{"credits": 12, "input_seconds": "the input audio"}]},
)


async def test_a_lip_sync_price_is_exact_once_the_audio_is_measured(media):
    wire = {"image_url": "https://e/a.png", "audio_url": "voice.wav", "prompt": "hello"}
    async with httpx2.AsyncClient() as client:
        measured = await measure_inputs(LIP_SYNC, wire, local={"voice.wav": hashed(media["voice.wav"])}, client=client)
    assert measured == {"the input audio": pytest.approx(2.5)}
    price = price_input(LIP_SYNC, wire, measured)
    assert price.known is True
    assert price.credits == 30.0  # 12 credits/s x 2.5 s
    assert "x 2.5 s (measured length of the input audio" in price.breakdown
    assert "not rounded" in price.breakdown


def test_without_a_measurement_the_price_is_unchanged_and_unknown():
    wire = {"audio_url": "https://e/a.wav"}
    for measured in (None, {"something else": 3.0}, {"the input audio": float("nan")}, {"the input audio": 0}):
        price = price_input(LIP_SYNC, wire, measured)
        assert price.known is False and price.credits is None
        assert "12 credits per second of the input audio" in price.breakdown
    assert "not known before the task runs" in price_input(LIP_SYNC, wire).breakdown
    assert "could not be measured" in price_input(LIP_SYNC, wire, {}).breakdown


@pytest.mark.parametrize("model_id", sorted(spec.id for spec in CATALOG))
def test_every_existing_price_is_the_same_without_a_measurement(model_id):
    from .test_every_model import _build, minimal_arguments

    spec = CATALOG.get(model_id)
    wire = _build(spec, minimal_arguments(spec))
    assert price_input(spec, wire, None) == price_input(spec, wire)
    label = input_to_measure(spec, wire)
    if label is None:  # the request states every billed length: a measurement changes nothing
        assert price_input(spec, wire, {"the input audio": 5.0, "the input video": 5.0}) == price_input(spec, wire)


@pytest.mark.parametrize(
    "model_id",
    sorted(spec.id for spec in CATALOG if spec.price and any(billed_input(spec, r) for r in spec.price.rates)),
)
async def test_every_model_billed_by_an_input_is_priced_exactly_once_it_is_measured(model_id, media, served):
    """Avatar, lip-sync, motion-control, video-edit and upscale models: the input is found and measured, and the
    price becomes the per-second rate times its length (plus the output's seconds where KIE bills both)."""
    from .test_every_model import _build, minimal_arguments

    spec = CATALOG.get(model_id)
    wire = _build(spec, minimal_arguments(spec))
    rate = next(r for r in spec.price.rates if billed_input(spec, r))
    label = billed_input(spec, rate)
    name = input_field(spec, label)
    assert name is not None, f"{model_id}: no field holds {label}"
    media_file = "voice.wav" if "audio" in label else "big-end.mp4"  # 4 s: within every field's documented lengths
    url = f"{BASE}/{media_file}"
    wire[name] = [url] if spec.fields[name].type == "urls" else url
    for key, value in rate.when.items():  # the settings this rate is for
        if not key.endswith("#count"):
            wire[key] = value[0] if isinstance(value, list) else value
    assert input_to_measure(spec, wire) == label
    async with _client(Server(served)) as client:
        measured = await measure_inputs(spec, wire, local={}, client=client)
    seconds = measure_local(media[media_file])
    assert measured == {label: seconds}
    price = price_input(spec, wire, measured)
    assert price.known, price.breakdown
    billed = round(seconds, 3)
    if label.endswith(" plus the output"):
        billed += float(wire[spec.price.seconds_field or "duration"])
    assert price.credits == pytest.approx(rate.credits * billed * _count(spec, wire))
    assert "measured length of" in price.breakdown


def _count(spec: ModelSpec, wire: dict[str, Any]) -> float:
    field = spec.price.count_field if spec.price else None
    return float(wire[field]) if field and field in wire else 1.0


async def test_a_video_edit_measures_only_when_the_input_sets_the_length(served):
    spec = CATALOG.get("wan/2-7-videoedit")
    base = {"video_url": f"{BASE}/end.mp4", "prompt": "x", "resolution": "720p"}
    async with _client(Server(served)) as client:
        assert await measure_inputs(spec, {**base, "duration": 5}, local={}, client=client) == {}
        measured = await measure_inputs(spec, {**base, "duration": 0}, local={}, client=client)
    assert list(measured.values()) == [pytest.approx(2.5, abs=0.05)]
    assert price_input(spec, {**base, "duration": 5}, measured).breakdown.startswith("16 credits/s x 5 s")
    assert price_input(spec, {**base, "duration": 0}, measured).known


async def test_several_files_in_one_field_are_billed_as_their_sum(media, served):
    spec = _spec(
        {"video_urls": {"type": "urls", "required": True}, "audio_url": {"type": "url"}},
        {"unit": "second", "rates": [{"credits": 10, "input_seconds": "the input videos"}]},
    )
    wire = {"video_urls": [f"{BASE}/end.mp4", "clip.mp4"], "audio_url": f"{BASE}/voice.wav"}
    async with _client(Server(served)) as client:
        measured = await measure_inputs(spec, wire, local={"clip.mp4": hashed(media["fast.mp4"])}, client=client)
        assert measured == {"the input videos": pytest.approx(5.0, abs=0.1)}
        unreadable = {**wire, "video_urls": [f"{BASE}/end.mp4", f"{BASE}/missing.mp4"]}
        assert await measure_inputs(spec, unreadable, local={}, client=client) == {}  # one unknown: all unknown


async def test_an_input_that_cannot_be_measured_leaves_the_price_unknown(tmp_path):
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(b"RIFF" + bytes(100))
    wires = [
        {"audio_url": "noise.wav"},
        {"audio_url": "not-resolved.wav"},  # a path the request path did not resolve: never read here
        {"audio_url": 42},
        {"audio_url": ["a", None]},
        {},
    ]
    for wire in wires:
        measured = await measure_inputs(LIP_SYNC, wire, local={"noise.wav": hashed(garbage)}, client=None)
        assert measured == {}
        assert price_input(LIP_SYNC, wire, measured).known is False
    async with _client(Server({})) as client:  # a URL that answers 404
        assert await measure_inputs(LIP_SYNC, {"audio_url": f"{BASE}/gone.wav"}, local={}, client=client) == {}


def test_a_reference_video_price_counts_the_videos_and_the_output():
    """Seedance 2 with reference videos: KIE bills the reference videos' seconds plus the output's."""
    spec = _spec(
        {"reference_video_urls": {"type": "urls"}, "duration": {"type": "integer", "default": 5}},
        {
            "unit": "second",
            "seconds_field": "duration",
            "rates": [
                {"when": {"reference_video_urls#count": 0}, "credits": 19},
                {"credits": 11.5, "input_seconds": "the reference videos plus the output"},
            ],
        },
    )
    wire = {"reference_video_urls": ["https://e/a.mp4", "https://e/b.mp4"], "duration": 5}
    assert input_to_measure(spec, wire) == "the reference videos plus the output"
    assert input_field(spec, "the reference videos plus the output") == "reference_video_urls"
    price = price_input(spec, wire, {"the reference videos plus the output": 7.4})
    assert price.known and price.credits == pytest.approx(11.5 * 12.4)
    assert "x 12.4 s (7.4 s measured length of the reference videos + 5 s of output" in price.breakdown
    assert price_input(spec, {"reference_video_urls": [], "duration": 5}).credits == 95  # no videos: 19 x 5 s
    assert not price_input(spec, {"reference_video_urls": ["https://e/a.mp4"]}, {"x": 1}).known


def _cbr_frame() -> bytes:
    """One MPEG-1 Layer III frame, 128 kbit/s at 44.1 kHz, of silence."""
    return bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(144 * 128000 // 44100 - 4)


def _ape_tag(payload: bytes) -> bytes:
    """An APEv2 tag (header, items, footer), as MP3Tag or foobar2000 write cover art."""
    header = b"APETAGEX" + struct.pack("<IIII", 2000, len(payload) + 32, 1, 0xA0000000) + bytes(8)
    footer = b"APETAGEX" + struct.pack("<IIII", 2000, len(payload) + 32, 1, 0x80000000) + bytes(8)
    return header + payload + footer


@pytest.mark.parametrize("with_info", [True, False], ids=["info-header", "no-header"])
@pytest.mark.parametrize("tail", ["ape-cover", "raw-bytes"])
def test_an_honest_mp3_with_cover_art_after_its_frames_is_as_long_as_its_frames(tmp_path, with_info, tail):
    """The review: counting frames of any rate took stray 0xFF bytes in a trailing APEv2 tag's cover art for
    frames, so an honest 10 s voice with a 2 MB cover measured 14.7 s (and 29.5 s with 8 MB): over-priced per
    second, or refused over a length limit. The tag is cut off as ID3v1 is, and after bytes that are no frame a
    frame counts only when the next one follows it."""
    import random

    frames = 383  # 10.0 s
    info = bytearray(_cbr_frame())
    info[36:48] = b"Info" + struct.pack(">II", 1, frames)
    audio = (bytes(info) if with_info else b"") + _cbr_frame() * frames
    noise = random.Random(7).randbytes(2 << 20)
    path = tmp_path / "voice.mp3"
    path.write_bytes(audio + (_ape_tag(b"Cover Art (Front)\0cover.png\0" + noise) if tail == "ape-cover" else noise))
    assert measure_local(path) == pytest.approx(frames * 1152 / 44100, abs=0.05)
