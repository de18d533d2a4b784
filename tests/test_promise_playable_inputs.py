"""Sound and footage are uploaded only when they play, judged from their structure, not their first bytes alone.

An image must decode; an MP3, WAV, MP4, MOV or M4A must have what a player needs: MPEG audio frames after an MP3's
ID3 tag (or at its start), a WAV's ``fmt`` and ``data`` chunks, a movie box whose tracks can be read. The audit
uploaded "ID3" with seven bytes more and then arbitrary text as MP3 audio. A file that does not play is refused
before anything is priced, asked, uploaded or created; the real files an encoder writes (ffmpeg's, Python's wave
module's) all go up, each with its type.
"""

from __future__ import annotations

import struct
import subprocess
import wave
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .conftest import answering, text_of
from .test_promise_inputs_judged import refused as refused_in_words
from .test_promise_inputs_judged import uploads_and_creates

TALK = {"prompt": "a woman speaking", "model": "infinitalk/from-audio"}  # images -> image_url; options audio_url
MOVE = {"prompt": "", "model": "wan/2-2-animate-move"}  # images -> image_url; options video_url
WAV_FORMAT = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)  # 8 kHz, 16-bit mono: no data after
TEXT = b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nDB_PASSWORD=hunter2\n" * 10


def face(path: Path) -> None:
    Image.new("RGB", (1200, 1200), (200, 160, 140)).save(path, "PNG")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


# Files whose first bytes name a format and whose rest plays nothing: (name, bytes, what the refusal says).
UNPLAYABLE = [
    ("id3.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x10" + TEXT, "no MPEG audio frames follow its ID3 tag"),
    ("frame.mp3", b"\xff\xfb\x90\x00" + TEXT, "no run of MPEG audio frames"),
    ("format-only.wav", b"RIFF\x24\x00\x00\x00WAVE" + WAV_FORMAT, "no sound data chunk (data)"),
    ("text.wav", b"RIFF\x10\x00\x00\x00WAVE" + TEXT, "no format chunk (fmt)"),
    ("no-movie.mp4", _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2") + _box(b"free", b""), "no movie box (moov)"),
    ("text.mov", _box(b"ftyp", b"qt  \x00\x00\x00\x00qt  ") + TEXT, "no movie box (moov)"),
    ("voice.m4a", _box(b"ftyp", b"M4A \x00\x00\x00\x00M4A isom") + _box(b"mdat", TEXT), "no movie box (moov)"),
]


def _run(ffmpeg: str, *arguments: str) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments], check=True)


@pytest.fixture(scope="module")
def recordings(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real files as encoders write them, by name: MP3s (ID3-tagged, bare, VBR, behind a 100 KB tag), WAVs (Python's
    wave module; ffmpeg's to a pipe, with placeholder sizes), MP4s (movie box at either end, fragmented, sound only),
    a MOV, an M4A, and AAC frames behind an ID3 tag."""
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], check=False, capture_output=True, text=True)
    folder = tmp_path_factory.mktemp("recordings")
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=2"]
    video = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=2"]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    made = {
        "end.mp4": [*video, *sound, *x264, "-c:a", "aac", "-shortest"],
        "fast.mp4": [*video, *x264, "-movflags", "+faststart"],
        "fragmented.mp4": [*video, *x264, "-movflags", "frag_keyframe+empty_moov"],
        "sound.mp4": [*sound, "-c:a", "aac"],
        "clip.mov": [*video, *x264, "-f", "mov"],
        "voice.m4a": [*sound, "-c:a", "aac"],
        "id3_adts.aac": [*sound, "-c:a", "aac", "-f", "adts", "-write_id3v2", "1"],
        "ffmpeg.wav": [*sound, "-f", "wav"],
    }
    if "libmp3lame" in encoders.stdout:
        made |= {
            "tagged.mp3": [*sound, "-c:a", "libmp3lame", "-b:a", "128k"],
            "bare.mp3": [*sound, "-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "0", "-write_xing", "0"],
            "vbr.mp3": [*sound, "-c:a", "libmp3lame", "-q:a", "4"],
        }
    files = {}
    for name, arguments in made.items():
        _run(ffmpeg, *arguments, str(folder / name))
        files[name] = (folder / name).read_bytes()
    quiet = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    piped = subprocess.run([*quiet, *sound, "-f", "wav", "-"], check=True, capture_output=True)
    files["piped.wav"] = piped.stdout  # written to a pipe: 0xFFFFFFFF where the sizes go
    with wave.open(str(folder / "python.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x01" * 16000)
    files["python.wav"] = (folder / "python.wav").read_bytes()
    if "bare.mp3" in files:  # an ID3v2 tag of 100 KB of padding (album art makes tags this big) before the frames
        files["big-tag.mp3"] = b"ID3\x03\x00\x00" + bytes([0, 6, 13, 32]) + bytes(100_000) + files["bare.mp3"]
    return files


def refused(result: Any, *words: str) -> str:
    """Refused in words (``test_promise_inputs_judged.refused``), never showing back what the file holds."""
    text = refused_in_words(result, *words)
    assert "hunter2" not in text and "wJalr" not in text, text
    return text


@pytest.mark.parametrize(("name", "content", "why"), UNPLAYABLE, ids=[name for name, _, _ in UNPLAYABLE])
async def test_sound_or_footage_that_does_not_play_is_refused_before_anything_is_priced_or_uploaded(
    connect, controls, sim, tmp_path, name, content, why
):
    """The audit: upload_file sent "ID3" + 7 bytes + text as MP3 audio. Each file here starts like its format and
    plays nothing: upload_file, estimate_cost and generate_video refuse it, naming it, saying it is no playable file
    and why, before anything is priced, asked, uploaded or created."""
    (tmp_path / name).write_bytes(content)
    face(tmp_path / "face.png")
    field = "video_url" if name.endswith((".mp4", ".mov")) else "audio_url"
    request = {**(MOVE if field == "video_url" else TALK), "images": ["face.png"], "options": {field: name}}
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        uploaded = await client.call_tool("upload_file", {"path": name})
        estimate = await client.call_tool("estimate_cost", request)
        generated = await client.call_tool("generate_video", request)
    said = f"{name} starts like "
    refused(uploaded, "upload_file refused path", said, "is not a playable", why, "Nothing was uploaded")
    for result in (estimate, generated):
        refused(result, field, said, "is not a playable", why, "nothing was sent or charged")
    assert asked == [] and await uploads_and_creates(controls) == [] and sim.uploads == {}


async def test_real_recordings_go_up_with_their_types(connect, sim, tmp_path, recordings):
    """Every file an encoder writes plays, and is uploaded as it is: by upload_file, and by a generation that
    takes sound (an ID3-tagged MP3 when this ffmpeg has an MP3 encoder, else a WAV)."""
    for name, content in recordings.items():
        (tmp_path / name).write_bytes(content)
    face(tmp_path / "face.png")
    voice = "tagged.mp3" if "tagged.mp3" in recordings else "python.wav"
    async with connect(elicitation=answering()) as client:
        for name in recordings:
            uploaded = await client.call_tool("upload_file", {"path": name})
            assert not uploaded.is_error, f"{name}: {text_of(uploaded)}"
        talk = await client.call_tool(
            "generate_video", {**TALK, "images": ["face.png"], "options": {"audio_url": voice}}
        )
    assert talk.structured_content["status"] == "submitted", text_of(talk)
    sent = [upload.data for upload in sim.uploads.values()]
    assert all(content in sent for content in recordings.values())  # each sent as it is
    types = {path.rsplit("/", 1)[-1].split("-")[0]: upload.mime for path, upload in sim.uploads.items()}
    assert types["end"] == types["fast"] == types["fragmented"] == "video/mp4", types
    assert types["sound"] == types["voice"] == "audio/mp4" and types["clip"] == "video/quicktime", types
    assert types["python"] == types["piped"] == types["ffmpeg"] == "audio/wav", types
    assert types["id3_adts.aac"[:-4]] == "audio/mpeg", types  # AAC behind an ID3 tag is sniffed as MP3, as before
    if "tagged.mp3" in recordings:
        assert types["tagged"] == types["bare"] == types["vbr"] == types["big"] == "audio/mpeg", types
