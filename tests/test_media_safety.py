"""Secrets never leave the machine: only real media is uploaded, judged by its bytes and its real path.

Every refusal is a readable tool error naming the file and the reason, and nothing reaches KIE's upload or
create endpoints. Resources follow the same rule: nothing outside the workspace, symlinks included.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import wave
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.types import ListRootsResult, Root
from PIL import Image

from kie_mcp.catalog import load_catalog
from kie_mcp.media.inputs import field_kinds
from kie_mcp.media.sniff import describe, sniff
from kie_mcp.server import create_server

from .conftest import CREATE_PATHS, answering, eras_in_turn, every_resource, not_found_code, text_of

EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit"}  # images -> image_urls, up to 10 MB
TALK = {"prompt": "a woman speaking", "model": "infinitalk/from-audio"}  # images -> image_url; options audio_url
MOVE = {"prompt": "", "model": "wan/2-2-animate-move"}  # images -> image_url; options video_url (10 MB)
IMAGE_REQUEST = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}  # no inputs: saved as a JPEG
UPLOAD_PATHS = {"/api/file-stream-upload", "/api/file-base64-upload", "/api/file-url-upload"}
SECRET = "KIE_API_KEY=sk-live-NEVER-UPLOADED-0123456789"


def png(path: Path, size: tuple[int, int] = (1200, 800)) -> Path:
    """A real PNG; at least 1024 px so it is uploaded as it is (not upscaled to JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (20, 120, 200)).save(path, "PNG")
    return path


def wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(rate * seconds))
    return path


def mp4(path: Path) -> Path:
    """A real MP4 clip (the simulator's, made by ffmpeg): a movie box with a video track, as a player needs."""
    from kie_mcp.sandbox import media

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(media.clip_bytes("1x1.mp4"))
    return path


def grow(path: Path, megabytes: float) -> Path:
    """Make a real media file this large (sparse: trailing zeros every reader ignores, no disk used)."""
    with path.open("r+b") as handle:
        handle.truncate(int(megabytes * 1024 * 1024))
    return path


async def kie_traffic(controls) -> list[str]:
    """Every request that reached KIE's upload or create endpoints."""
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return [r["path"] for r in items if r["path"] in UPLOAD_PATHS | CREATE_PATHS]


def refused(result, *words: str) -> str:
    text = text_of(result)
    assert result.is_error, text
    for word in words:
        assert word in text, (word, text)
    assert "Traceback" not in text, text
    # generate_* refusals come from the SDK's resolver path, which prefixes "Error executing tool <name>: ";
    # never that prefix alone: the reason follows it.
    assert text.split(": ", 1)[-1].strip() if text.startswith("Error executing tool") else text, text
    return text


@pytest.fixture
def outside(tmp_path_factory):
    return tmp_path_factory.mktemp("elsewhere")


# -- the sniffer ---------------------------------------------------------------------------------


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body


def _pillow(kind: str) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, kind)
    return buffer.getvalue()


def _wav() -> bytes:
    import io

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 80)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("head", "kind", "mime"),
    [
        (_pillow("JPEG"), "image", "image/jpeg"),
        (_pillow("PNG"), "image", "image/png"),
        (_pillow("WEBP"), "image", "image/webp"),
        (_pillow("GIF"), "image", "image/gif"),
        (_pillow("BMP"), "image", "image/bmp"),
        (_pillow("TIFF"), "image", "image/tiff"),
        (_ftyp(b"heic", b"mif1", b"heic"), "image", "image/heic"),
        (_ftyp(b"mif1", b"mif1", b"miaf"), "image", "image/heif"),
        (_ftyp(b"avif", b"avif", b"mif1", b"miaf"), "image", "image/avif"),
        (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video", "video/mp4"),
        (_ftyp(b"mp42", b"mp42", b"isom"), "video", "video/mp4"),
        (_ftyp(b"qt  ", b"qt  "), "video", "video/quicktime"),
        (_ftyp(b"M4V ", b"M4V ", b"mp42"), "video", "video/x-m4v"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video", "video/webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video", "video/x-matroska"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "video", "video/x-msvideo"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 20, "audio", "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + b"\x00" * 20, "audio", "audio/mpeg"),
        (_wav(), "audio", "audio/wav"),
        (_ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio", "audio/mp4"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "audio", "audio/aac"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x01\x1evorbis", "audio", "audio/ogg"),
        (b"fLaC\x00\x00\x00\x22", "audio", "audio/flac"),
    ],
)
def test_the_sniffer_knows_media_by_its_bytes(head, kind, mime):
    found = sniff(head)
    assert found is not None and (found.kind, found.mime) == (kind, mime)


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"", "empty"),
        (SECRET.encode() + b"\n", "plain text"),
        (b"BMW service notes\n", "plain text"),
        (b"GIF89a is a picture format\n", "plain text"),
        (b"ID3 tags hold the artist\n", "plain text"),
        (b"abc ftyp notes about mp4\n", "plain text"),
        (b"\xff\xfe h\x00i\x00", "binary data"),
        (b"SQLite format 3\x00" + b"\x00" * 80, "SQLite database"),
        (b"%PDF-1.7\n", "PDF"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\n", "PEM key"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"PK\x03\x04" + b"\x00" * 30, "ZIP"),
    ],
)
def test_the_sniffer_refuses_everything_else_and_says_what_it_is(head, words):
    assert sniff(head) is None
    assert words in describe(head)


def test_every_catalogue_media_field_takes_a_definite_kind():
    """The kind each media field takes comes from the data: images fields, else the field's name."""
    unclear = [
        (spec.id, name)
        for spec in load_catalog()
        for name, field in spec.fields.items()
        if field.is_media and len(field_kinds(spec, name)) != 1
    ]
    # Wan 3.0 (and Prime) also take a document or a web page by URL: not media, so a local file there is never uploaded.
    assert unclear == [
        ("wan/3-0-video", "reference_file_urls"),
        ("wan/3-0-video", "reference_link_urls"),
        ("wan/3-0-video-prime", "reference_file_urls"),
        ("wan/3-0-video-prime", "reference_link_urls"),
    ]
    talk, move = load_catalog().get("infinitalk/from-audio"), load_catalog().get("kling-2.6/motion-control")
    assert field_kinds(talk, "audio_url") == {"audio"} and field_kinds(talk, "image_url") == {"image"}
    assert field_kinds(move, "video_urls") == {"video"} and field_kinds(move, "input_urls") == {"image"}


# -- type by content -----------------------------------------------------------------------------


async def test_a_text_file_named_png_is_refused_before_upload(connect, controls, tmp_path):
    (tmp_path / "notes.png").write_text("meeting notes: the launch is on Tuesday\n")
    async with connect(elicitation=answering()) as client:
        generated = await client.call_tool("generate_image", {**EDIT, "images": ["notes.png"]})
        estimated = await client.call_tool("estimate_cost", {**EDIT, "images": ["notes.png"]})
        uploaded = await client.call_tool("upload_file", {"path": "notes.png"})
    for result in (generated, estimated):
        refused(result, "images[0]", "notes.png is not an image", "plain text")
    refused(uploaded, "path", "notes.png is not an image, video or audio file", "plain text")
    assert await kie_traffic(controls) == []


async def test_audio_given_to_an_image_field_is_refused(connect, controls, tmp_path):
    wav(tmp_path / "voice.png")
    png(tmp_path / "face.png")
    async with connect(elicitation=answering()) as client:
        as_image = await client.call_tool("generate_image", {**EDIT, "images": ["voice.png"]})
        picture_as_audio = await client.call_tool(
            "generate_video", {**TALK, "images": ["face.png"], "options": {"audio_url": "face.png"}}
        )
    refused(as_image, "images[0]", "voice.png is not an image", "WAV audio")
    refused(picture_as_audio, "audio_url", "face.png is not an audio file", "PNG image")
    assert await kie_traffic(controls) == []


async def test_a_text_file_given_as_a_video_option_is_refused(connect, controls, tmp_path):
    (tmp_path / "moves.mp4").write_text("step left, step right\n")
    png(tmp_path / "face.png")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool(
            "generate_video", {**MOVE, "images": ["face.png"], "options": {"video_url": "moves.mp4"}}
        )
    refused(result, "video_url", "moves.mp4 is not a video", "plain text")
    assert await kie_traffic(controls) == []


async def test_a_real_png_named_jpg_is_accepted_and_sent_as_png(connect, controls, sim, tmp_path):
    png(tmp_path / "photo.jpg")
    async with connect(elicitation=answering()) as client:
        generated = await client.call_tool("generate_image", {**EDIT, "images": ["photo.jpg"]})
        uploaded = await client.call_tool("upload_file", {"path": "photo.jpg"})
    assert generated.structured_content["status"] == "completed", text_of(generated)
    assert not uploaded.is_error, text_of(uploaded)
    assert uploaded.structured_content["mime_type"] == "image/png"
    stored = list(sim.uploads.values())
    assert len(stored) == 2
    assert {item.mime for item in stored} == {"image/png"}
    assert all(item.path.endswith(".png") for item in stored)  # the name follows the bytes too


async def test_real_audio_and_video_options_are_uploaded_with_their_sniffed_types(connect, controls, sim, tmp_path):
    png(tmp_path / "face.png")
    wav(tmp_path / "voice.bin")
    mp4(tmp_path / "moves.dat")
    async with connect(elicitation=answering()) as client:
        talk = await client.call_tool(
            "generate_video", {**TALK, "images": ["face.png"], "options": {"audio_url": "voice.bin"}}
        )
        move = await client.call_tool(
            "generate_video", {**MOVE, "images": ["face.png"], "options": {"video_url": "moves.dat"}}
        )
    assert talk.structured_content["status"] == "submitted", text_of(talk)
    assert move.structured_content["status"] == "submitted", text_of(move)
    mimes = {item.path.rsplit(".", 1)[-1]: item.mime for item in sim.uploads.values()}
    assert mimes == {"png": "image/png", "wav": "audio/wav", "mp4": "video/mp4"}


async def test_a_file_swapped_for_a_secret_after_the_check_is_not_uploaded(connect, controls, tmp_path):
    picture = png(tmp_path / "face.png")
    (tmp_path / ".env").write_text(SECRET + "\n")

    async def swap_then_accept(context, params):  # the user approves while the file is replaced by a link to .env
        picture.unlink()
        picture.symlink_to(tmp_path / ".env")
        return await answering()(context, params)

    async with connect(elicitation=swap_then_accept) as client:
        result = await client.call_tool("generate_image", {**EDIT, "images": ["face.png"]})
        credits = (await client.call_tool("check_credits", {})).structured_content
    text = refused(result, "face.png")
    # The handshake era uploads right after the answer and finds the swap there; the stateless era runs the
    # checks again when the call is repeated with the answer, and refuses the link to .env there.
    assert "changed since it was checked" in text or ("(a link to" in text and "is private" in text), text
    assert "sk-live" not in text
    assert credits["spent_today"] == 0
    assert await kie_traffic(controls) == []


# An attacker (another process, or the agent's own file tool) swaps a checked file just before the upload: for a
# link to a secret outside the allowed folders, a parent folder for a link to another folder, or a FIFO that would
# block a reader forever. What is sent is only ever the bytes that were checked (and, for a spend, approved).


def _swap(kind: str, target: Path, outside: Path) -> None:
    """Replace ``target`` (a WAV in references/) as an attacker would, leaving its path in place."""
    if kind == "link to a secret":
        (outside / "id_rsa").write_bytes(b"RIFF" + b"-----BEGIN OPENSSH PRIVATE KEY-----" * 40)
        target.unlink()
        target.symlink_to(outside / "id_rsa")
    elif kind == "folder for a link":
        wav(outside / "private" / target.name, seconds=3.0)  # the same name, other (private) bytes
        (outside / "private" / target.name).write_bytes((outside / "private" / target.name).read_bytes() + b"SECRET")
        target.parent.rename(target.parent.with_name("references-moved"))
        target.parent.symlink_to(outside / "private", target_is_directory=True)
    else:  # a FIFO nobody writes to
        target.unlink()
        os.mkfifo(target)


SWAPS = ["link to a secret", "folder for a link", "fifo"]


@pytest.mark.parametrize("kind", SWAPS)
async def test_upload_file_sends_only_the_bytes_it_checked_when_the_file_is_swapped_after_the_check(
    connect, controls, sim, tmp_path, outside, monkeypatch, kind
):
    import kie_mcp.surface

    voice = wav(tmp_path / "references" / "voice.wav")
    real_check = kie_mcp.surface.inspect_local

    def check_then_swap(*args, **kwargs):
        found = real_check(*args, **kwargs)
        _swap(kind, voice, outside)
        return found

    monkeypatch.setattr(kie_mcp.surface, "inspect_local", check_then_swap)
    async with connect() as client:
        with anyio.fail_after(20):  # a FIFO opened for reading without a writer would block forever
            result = await client.call_tool("upload_file", {"path": "references/voice.wav"})
    refused(result, "voice.wav changed while it was being read", "Nothing was uploaded")
    assert "PRIVATE KEY" not in text_of(result)
    assert all(b"PRIVATE KEY" not in item.data and b"SECRET" not in item.data for item in sim.uploads.values())
    assert await kie_traffic(controls) == []


@pytest.mark.parametrize("tool", ["upload_file", "generate_video"])
async def test_a_file_swapped_just_before_its_upload_is_never_read_again_by_name(
    connect, controls, sim, tmp_path, outside, monkeypatch, tool
):
    """The last moment: the file is checked, hashed and (for a spend) approved, then swapped right before the upload
    starts. The bytes sent are the ones checked, never the file opened again by name."""
    from kie_mcp.kie.client import KieClient

    face, voice = png(tmp_path / "face.png"), wav(tmp_path / "references" / "voice.wav")
    checked = voice.read_bytes()
    real_upload = KieClient.upload_file

    async def swap_then_upload(*args, **kwargs):
        if voice.is_file() and not voice.is_symlink():
            _swap("link to a secret", voice, outside)
        return await real_upload(*args, **kwargs)

    monkeypatch.setattr(KieClient, "upload_file", swap_then_upload)
    async with connect(elicitation=answering()) as client:
        if tool == "upload_file":
            result = await client.call_tool("upload_file", {"path": "references/voice.wav"})
        else:
            asked = {**TALK, "images": ["face.png"], "options": {"audio_url": "references/voice.wav"}}
            result = await client.call_tool("generate_video", asked)
    assert not result.is_error, text_of(result)
    sent = [item.data for item in sim.uploads.values() if item.mime == "audio/wav"]
    assert sent == [checked]  # the checked bytes, not the secret now behind the path
    assert all(b"PRIVATE KEY" not in item.data for item in sim.uploads.values())
    assert face.exists()


@pytest.mark.parametrize("mode", ["legacy"])  # the handshake era uploads right after the answer, in one call
async def test_a_file_that_cannot_be_read_at_upload_time_costs_nothing_and_says_so(
    connect, controls, tmp_path, monkeypatch
):
    """The disk fails (or another program locks the file, as on Windows) once the user has approved: a clear
    error, no create, and the reservation returned (it used to escape as an unexpected error, credits reserved)."""
    import errno

    from kie_mcp.media import inputs

    png(tmp_path / "face.png")
    wav(tmp_path / "references" / "voice.wav")
    real_open = inputs.open_judged
    disk = {"failing": False}

    class FailingDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def fileno(self):
            return self.handle.fileno()

        def seek(self, *where):
            return self.handle.seek(*where)

        def tell(self):
            return self.handle.tell()

        def read(self, size=-1):
            if disk["failing"]:
                raise OSError(errno.EIO, "Input/output error")
            return self.handle.read(size)

    async def approve_then_fail(context, params):
        disk["failing"] = True
        return await answering()(context, params)

    monkeypatch.setattr(inputs, "open_judged", lambda path, **how: FailingDisk(real_open(path, **how)))
    asked = {**TALK, "images": ["face.png"], "options": {"audio_url": "references/voice.wav"}}
    async with connect(elicitation=approve_then_fail) as client:
        result = await client.call_tool("generate_video", asked)
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    text = refused(result, "could not be read", "Input/output error")
    assert "unexpected error" not in text
    assert spent == 0 and await controls.creates() == []


# -- never uploaded, whatever the caller says ----------------------------------------------------


@pytest.mark.parametrize("how", ["as-is", "symlink", "renamed", "dot-named-png"])
async def test_env_file_is_never_uploaded_even_named_as_png(connect, controls, tmp_path, how):
    env = tmp_path / ".env"
    env.write_text(SECRET + "\n")
    if how == "as-is":
        given, words = ".env", [".env is private", "dotfile"]
    elif how == "symlink":
        (tmp_path / "ok.png").symlink_to(env)
        given, words = "ok.png", ["ok.png (a link to", ".env", "is private"]
    elif how == "renamed":
        (tmp_path / "secrets.png").write_text(env.read_text())
        given, words = "secrets.png", ["secrets.png is not an image", "plain text"]
    else:  # a dotfile holding a real picture is still never uploaded: the path rule does not look at bytes
        png(tmp_path / ".env.png")
        given, words = ".env.png", [".env.png is private", "dotfile"]
    async with connect(elicitation=answering()) as client:
        generated = await client.call_tool("generate_image", {**EDIT, "images": [given]})
        uploaded = await client.call_tool("upload_file", {"path": given})
    for result in (generated, uploaded):
        text = refused(result, *words)
        assert "sk-live" not in text
    assert await kie_traffic(controls) == []


async def test_journal_and_call_log_are_never_uploaded(connect, controls, tmp_path):
    png(tmp_path / ".kie-mcp" / "cover.png")  # real media in a dot-folder: still private
    async with connect(elicitation=answering()) as client:
        await client.call_tool("check_credits", {})  # writes the call log; the journal exists from the start
        journal, log = tmp_path / ".kie-mcp" / "journal.sqlite3", tmp_path / "logs" / "kie-api.jsonl"
        assert journal.is_file() and log.is_file()
        (tmp_path / "calls.png").symlink_to(log)
        results = {
            given: (
                await client.call_tool("generate_image", {**EDIT, "images": [given]}),
                await client.call_tool("upload_file", {"path": given}),
            )
            for given in (".kie-mcp/journal.sqlite3", ".kie-mcp/cover.png", "logs/kie-api.jsonl", "calls.png")
        }
    for given, pair in results.items():
        for result in pair:
            text = refused(result, Path(given).name, "is private")
            assert ("logs/ folder" in text) == ("log" in given or "calls" in given), text
    assert await kie_traffic(controls) == []


async def test_files_over_the_size_limit_are_refused(connect, controls, tmp_path):
    grow(png(tmp_path / "huge.png"), 11)  # nano-banana-edit takes images up to 10 MB
    grow(wav(tmp_path / "long.wav"), 11)  # infinitalk's audio_url: "up to 10 MB"
    grow(mp4(tmp_path / "big.mp4"), 11)  # wan animate-move's video_url: "up to 10 MB"
    grow(mp4(tmp_path / "giant.mp4"), 101)  # upload_file: any media up to 100 MB
    png(tmp_path / "face.png")
    async with connect(elicitation=answering()) as client:
        image = await client.call_tool("generate_image", {**EDIT, "images": ["huge.png"]})
        audio = await client.call_tool(
            "generate_video", {**TALK, "images": ["face.png"], "options": {"audio_url": "long.wav"}}
        )
        video = await client.call_tool(
            "generate_video", {**MOVE, "images": ["face.png"], "options": {"video_url": "big.mp4"}}
        )
        upload = await client.call_tool("upload_file", {"path": "giant.mp4"})
    refused(image, "huge.png is 11.0 MB", "up to 10 MB")
    refused(audio, "audio_url", "long.wav is 11.0 MB", "audio up to 10 MB")
    refused(video, "video_url", "big.mp4 is 11.0 MB", "videos up to 10 MB")
    refused(upload, "giant.mp4 is 101.0 MB", "up to 100 MB")
    assert await kie_traffic(controls) == []


async def test_the_same_rules_hold_under_allowed_dirs(connect, controls, outside):
    (outside / ".env").write_text(SECRET + "\n")
    (outside / "link.png").symlink_to(outside / ".env")
    png(outside / ".git" / "hidden.png")
    (outside / "notes.png").write_text("not a picture\n")
    picture = png(outside / "picture.png")
    async with connect(elicitation=answering(), allowed_dirs=(outside.resolve(),)) as client:
        results = {
            name: await client.call_tool("upload_file", {"path": str(outside / name)})
            for name in (".env", "link.png", ".git/hidden.png", "notes.png")
        }
        generated = await client.call_tool("generate_image", {**EDIT, "images": [str(outside / "link.png")]})
        traffic = await kie_traffic(controls)
        accepted = await client.call_tool("generate_image", {**EDIT, "images": [str(picture)]})
    for name in (".env", "link.png", ".git/hidden.png"):
        refused(results[name], Path(name).name, "is private")
    refused(results["notes.png"], "notes.png is not an image", "plain text")
    refused(generated, "link.png (a link to", "is private")
    assert traffic == []
    assert accepted.structured_content["status"] == "completed", text_of(accepted)


async def test_the_same_rules_hold_under_mcp_roots(settings, transport, controls, mode, outside):
    (outside / ".env").write_text(SECRET + "\n")
    (outside / "notes.png").write_text("not a picture\n")

    async def shared_folders(context):
        return ListRootsResult(roots=[Root(uri=outside.resolve().as_uri(), name="shared")])

    server = create_server(settings, transport=transport)
    async with Client(
        server, mode=mode, elicitation_callback=answering(), list_roots_callback=shared_folders
    ) as client:
        env = await client.call_tool("upload_file", {"path": str(outside / ".env")})
        notes = await client.call_tool("generate_image", {**EDIT, "images": [str(outside / "notes.png")]})
    refused(env, ".env is private")
    refused(notes, "notes.png is not an image", "plain text")
    assert await kie_traffic(controls) == []


# -- unusable paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("bad\x00name.png", "NUL byte"),
        ("x" * 5000 + ".png", "longer than this system allows"),
        ("deep/" * 1000 + "a.png", "longer than this system allows"),
    ],
    ids=["nul-byte", "5000-char-name", "5000-char-path"],
)
async def test_unusable_paths_are_refused_cleanly(connect, controls, tmp_path, given, reason):
    png(tmp_path / "face.png")
    async with connect(elicitation=answering()) as client:
        image = await client.call_tool("generate_image", {**EDIT, "images": [given]})
        option = await client.call_tool(
            "generate_video", {**TALK, "images": ["face.png"], "options": {"audio_url": given}}
        )
        upload = await client.call_tool("upload_file", {"path": given})
    for result, argument in ((image, "images[0]"), (option, "audio_url"), (upload, "path")):
        text = refused(result, argument, reason, "Nothing was read or uploaded")
        assert len(text) < 2000  # the path is shortened, not echoed whole
    assert await kie_traffic(controls) == []


# -- resources -----------------------------------------------------------------------------------


async def test_reference_symlinks_leading_outside_are_not_listed_or_served(connect, tmp_path, outside):
    (outside / "secret.png").write_text("outside the workspace\n")
    (tmp_path / ".env").write_text(SECRET + "\n")
    references = tmp_path / "references"
    png(references / "ok.png")
    (references / "escape.png").symlink_to(outside / "secret.png")
    (references / "env.png").symlink_to(tmp_path / ".env")
    (references / "outside-folder").symlink_to(outside, target_is_directory=True)
    png(references / ".hidden.png")
    png(references / ".drafts" / "draft.png")
    async with connect() as client:
        uris = {str(r.uri) for r in await every_resource(client)}
        served = await client.read_resource("kie://workspace/references/ok.png")
        failures = []
        for name in ("escape.png", "env.png", "outside-folder/secret.png", ".hidden.png", ".drafts/draft.png"):
            with pytest.raises(MCPError):
                await client.read_resource(f"kie://workspace/references/{name}")
            failures.append(name)
    listed = {uri for uri in uris if uri.startswith("kie://workspace/references/")}
    # ok.png, and kie-mcp's own guide to the folder (the workspace has no references/README.md of its own)
    assert listed == {"kie://workspace/references/ok.png", "kie://workspace/references/README.md"}
    assert served.contents[0].blob
    assert len(failures) == 5


@pytest.mark.parametrize("swap", ["link to .env", "link outside", "fifo", "folder for a link"])
async def test_a_reference_swapped_after_it_was_listed_is_judged_again_when_read(connect, tmp_path, outside, swap):
    """The listing is made at start-up; a reference replaced since is read only if it still passes the rules (a FIFO
    nobody writes to would block the read for good)."""
    (tmp_path / ".env").write_text(SECRET + "\n")
    (outside / "logo.png").write_bytes(b"outside the workspace: PRIVATE")
    logo = png(tmp_path / "references" / "logo.png")
    async with connect() as client:
        first = await client.read_resource("kie://workspace/references/logo.png")
        if swap == "folder for a link":
            logo.parent.rename(tmp_path / "moved")
            logo.parent.symlink_to(outside, target_is_directory=True)
        else:
            logo.unlink()
            if swap == "fifo":
                os.mkfifo(logo)
            else:
                logo.symlink_to(tmp_path / ".env" if swap == "link to .env" else outside / "logo.png")
        with anyio.fail_after(20), pytest.raises(MCPError) as caught:
            await client.read_resource("kie://workspace/references/logo.png")
    assert first.contents[0].blob
    message = str(caught.value)
    assert "logo.png" in message and "Nothing was read" in message, message
    assert "sk-live" not in message and "PRIVATE" not in message


@pytest.mark.parametrize("target", ["key outside", ".env"])
async def test_master_context_linked_to_a_file_it_may_not_serve_is_refused(connect, tmp_path, outside, target):
    (outside / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nOUTSIDE-SECRET\n")
    (tmp_path / ".env").write_text(SECRET + "\n")
    (tmp_path / "MASTER_CONTEXT.md").symlink_to(outside / "id_rsa" if target == "key outside" else tmp_path / ".env")
    async with connect() as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource("kie://workspace/MASTER_CONTEXT.md")
    message = str(caught.value)
    assert "MASTER_CONTEXT.md" in message and "plain file in the workspace" in message, message
    assert "OUTSIDE-SECRET" not in message and "sk-live" not in message


async def test_a_resource_that_is_not_there_is_not_found_not_a_server_fault(connect, mode):
    """A model or saved result that does not exist is the reader's mistake ("not found", as an unknown resource is
    answered), never "internal error", which clients show as the server failing."""
    async with connect() as client:
        for uri in ("kie://models/no-such-model", "kie://outputs/missing.jpg", "kie://outputs/2026-01-01-x/a.png"):
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            assert caught.value.code == not_found_code(mode), (uri, caught.value)


async def test_outputs_resource_refuses_symlink_escapes_and_dotfiles(connect, tmp_path, outside):
    (outside / "secret.png").write_text("outside the workspace\n")
    (tmp_path / ".env").write_text(SECRET + "\n")
    outputs = tmp_path / "outputs" / "2026-01-01-demo"
    png(outputs / "result.png")
    (outputs / "escape.png").symlink_to(outside / "secret.png")
    (outputs / "env.png").symlink_to(tmp_path / ".env")
    png(outputs / ".partial.png")
    async with connect() as client:
        served = await client.read_resource("kie://outputs/2026-01-01-demo/result.png")
        for name in ("escape.png", "env.png", ".partial.png"):
            with pytest.raises(MCPError, match="No saved result"):
                await client.read_resource(f"kie://outputs/2026-01-01-demo/{name}")
        for uri in ("kie://outputs/../.env", "kie://outputs/%2e%2e/.env", "kie://outputs/2026-01-01-demo/../../.env"):
            with pytest.raises(MCPError):
                await client.read_resource(uri)
    assert served.contents[0].blob


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
async def test_a_session_folder_linked_outside_never_receives_a_result_and_the_result_is_kept(
    connect, tmp_path, outside
):
    """outputs/<day>-<session> a symlink to a folder outside the workspace (a cloned repository can carry one, named
    for a session an agent is told to use): the paid result, its sidecar and its thumbnail are never written there.
    They are saved in a real folder of outputs/ with another name (outputs/<day>-<session>_2), named in the answer and
    journaled, so nothing is lost; check_task finds them there."""
    (tmp_path / "outputs").mkdir()
    for day in {date.today(), date.today() + timedelta(days=1)}:  # the run may cross midnight
        (tmp_path / "outputs" / f"{day.isoformat()}-demo").symlink_to(outside, target_is_directory=True)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {**IMAGE_REQUEST, "session": "demo"})
        task = result.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    assert sorted(outside.iterdir()) == []
    [saved] = task["files"]
    folder = (tmp_path / saved).parent
    assert folder.name.endswith("-demo_2") and folder.parent == tmp_path / "outputs", saved
    assert folder.is_dir() and not folder.is_symlink()
    assert (tmp_path / saved).read_bytes()[:3] == b"\xff\xd8\xff"
    sidecar = json.loads((folder / f"nano-banana-2_{task['task_id']}.json").read_text())
    assert sidecar["files"][0]["path"] == saved
    assert saved in text_of(result)  # the answer says where the result is
    assert checked.structured_content["task"]["files"] == [saved]


async def test_a_joined_video_is_never_written_into_a_session_folder_linked_outside(connect, tmp_path, outside):
    """stitch_videos with session "reel" while outputs/<day>-reel is a symlink leading outside: the joined video goes
    to a real folder beside it (outputs/<day>-reel_2), never through the link."""
    from kie_mcp.sandbox import media

    pytest.importorskip("imageio_ffmpeg")  # the video extra: stitching needs ffmpeg
    (tmp_path / "clips").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / "clips" / name).write_bytes(media.clip_bytes("1x1.mp4"))
    (tmp_path / "outputs").mkdir()
    for day in {date.today(), date.today() + timedelta(days=1)}:  # the run may cross midnight
        (tmp_path / "outputs" / f"{day.isoformat()}-reel").symlink_to(outside, target_is_directory=True)
    async with connect() as client:
        joined = await client.call_tool("stitch_videos", {"clips": ["clips/a.mp4", "clips/b.mp4"], "session": "reel"})
    assert not joined.is_error, text_of(joined)
    assert sorted(outside.iterdir()) == []
    made = tmp_path / joined.structured_content["path"]
    assert made.parent.name.endswith("-reel_2") and not made.parent.is_symlink() and made.stat().st_size > 0


def replacer(target: Path, swap: str, secret: Path) -> Callable[[], None]:
    """What ``swap_once_checked`` runs: ``target`` replaced by a FIFO (``swap`` "fifo") or by a link to ``secret``."""

    def replace() -> None:
        target.unlink()
        if swap == "fifo":
            os.mkfifo(target)
        else:
            target.symlink_to(secret)

    return replace


def swap_once_checked(monkeypatch: pytest.MonkeyPatch, target: Path, swap: Callable[[], None]) -> threading.Event:
    """Run ``swap`` right after the server first finds ``target`` to be a regular file (``Path.is_file``, the check
    before its read): the file is replaced between the check and the read every time, not by a race that may lose.
    Returns an event set once it ran."""
    checked = Path.is_file
    wanted = os.path.realpath(target)
    swapped = threading.Event()  # set in the server's worker thread, waited for by the test

    def is_file(self: Path) -> bool:
        found = checked(self)
        if found and not swapped.is_set() and os.path.realpath(self) == wanted:
            swap()
            swapped.set()
        return found

    monkeypatch.setattr(Path, "is_file", is_file)
    return swapped


async def release_readers_after(fifo: Path, seconds: float, released: list[bool]) -> None:
    """After ``seconds``, open ``fifo`` for writing and close it, so a reader blocked on it (a regression) gets an
    empty file and the test fails instead of hanging the suite (a blocked worker thread cannot be cancelled)."""
    await anyio.sleep(seconds)
    released.append(True)
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


async def read_while_swapped(client: Client, uri: str, swapped: threading.Event, fifo: Path) -> tuple[str, bool]:
    """Read ``uri`` (whose file is swapped during the read) and, once the swap is done, another resource meanwhile:
    what the first read gave (``served: `` its content, or ``error: `` its error) and whether a reader blocked on
    the FIFO had to be released."""
    outcome: list[str] = []
    released: list[bool] = []

    async def read_swapped() -> None:
        try:
            read = await client.read_resource(uri)
        except MCPError as err:
            outcome.append(f"error: {err}")
        else:
            outcome.append(
                "served: " + "".join(getattr(c, "text", "") or getattr(c, "blob", "") for c in read.contents)
            )

    with anyio.fail_after(60):
        async with anyio.create_task_group() as watchdog:
            watchdog.start_soon(release_readers_after, fifo, 20, released)
            async with anyio.create_task_group() as requests:
                requests.start_soon(read_swapped)
                assert await anyio.to_thread.run_sync(swapped.wait, 20), "the swap never ran: move the hook"
                other = await client.read_resource("kie://models")  # the server answers others meanwhile
            watchdog.cancel_scope.cancel()
    assert other.contents[0].text
    return outcome[0], bool(released)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks and FIFOs")
@pytest.mark.parametrize("swap", ["link to .env", "fifo"])
async def test_a_saved_result_swapped_between_check_and_read_is_never_served_or_waited_on(
    connect, tmp_path, monkeypatch, swap
):
    """kie://outputs/... checks the file, then reads it: swapped in between for a link to .env, the key is never
    served; for a FIFO nobody writes to, the read fails at once and never holds up the server (another request is
    answered meanwhile). What is read is the very file that was judged, opened once."""
    (tmp_path / ".env").write_text(SECRET + "\n")
    result = png(tmp_path / "outputs" / "2026-01-01-demo" / "result.png")

    replace = replacer(result, swap, tmp_path / ".env")
    async with connect() as client:
        served = await client.read_resource("kie://outputs/2026-01-01-demo/result.png")  # served before the swap
        swapped = swap_once_checked(monkeypatch, result, replace)
        outcome, released = await read_while_swapped(
            client, "kie://outputs/2026-01-01-demo/result.png", swapped, result
        )
    assert served.contents[0].blob
    assert not released, "the read waited on the FIFO until a writer came: it opened it by name"
    assert outcome.startswith("error: ") and "outputs/2026-01-01-demo/result.png" in outcome, outcome
    assert "sk-live" not in outcome


# -- a saved result swapped between its check and its preview ------------------------------------------------------

PICTURE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}
CLIP = {"prompt": "Waves rolling in at dusk, slow dolly forward", "model": "veo3_fast", "wait_seconds": 20}


def previews_beside(result: Path) -> dict[str, bytes]:
    """The previews kept beside ``result`` (its hidden siblings), by name."""
    return {kept.name: kept.read_bytes() for kept in result.parent.glob(f".{result.name}.*")}


async def assert_swapped_result_is_never_previewed(
    connect: Callable[..., Any],
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    made_by: tuple[str, dict[str, Any]],
    private: Path,
    swap: str,
    kept: bool,
) -> None:
    """Save a result through ``made_by`` (a tool and its arguments), then read its kie://previews/ resource with the
    result swapped right after its check (for a link to ``private``, a file outside the workspace, or a FIFO nobody
    writes to), both dated like the result: nothing is previewed and nothing waited on, the kept preview (``kept``:
    the one made when it was saved, else none) is neither served nor replaced, and once the result is back its
    preview is served again."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool(*made_by)
        assert not made.is_error, text_of(made)
        relative = made.structured_content["tasks"][0]["files"][0]
        result = workspace / relative
        original, stamp = result.read_bytes(), result.stat().st_mtime_ns
        if not kept:
            for name in previews_beside(result):
                (result.parent / name).unlink()
        before = previews_beside(result)
        assert bool(before) == kept, before
        os.utime(private, ns=(stamp, stamp))  # the link leads to a file dated like the result: no change by date

        def replace() -> None:
            result.unlink()
            if swap == "fifo":
                os.mkfifo(result)
                os.utime(result, ns=(stamp, stamp))
            else:
                result.symlink_to(private)

        uri = "kie://previews/" + relative.removeprefix("outputs/")
        swapped = swap_once_checked(monkeypatch, result, replace)
        outcome, released = await read_while_swapped(client, uri, swapped, result)
        assert not released, "the preview waited on the FIFO until a writer came: it opened the result by name"
        assert outcome.startswith("error: ") and relative in outcome, outcome[:300]
        assert previews_beside(result) == before  # nothing made from the swapped file, nothing kept for it

        result.unlink()  # the result is back: the server answers the next read, with its preview
        result.write_bytes(original)
        os.utime(result, ns=(stamp, stamp))
        again = await client.read_resource(uri)
    assert again.contents[0].blob and again.contents[0].mime_type == "image/jpeg"


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks and FIFOs")
@pytest.mark.parametrize("kept", [True, False], ids=["kept preview", "no kept preview"])
@eras_in_turn("swap", ["link to a picture outside", "fifo"])
async def test_a_saved_picture_swapped_after_its_check_is_never_previewed_or_waited_on(
    connect, tmp_path, tmp_path_factory, monkeypatch, swap, kept
):
    """kie://previews/ of a saved image, swapped right after its check: a link to a picture outside the workspace
    is never scaled and served (nor is the preview kept for the file that was there), a FIFO is refused at once and
    never holds a worker thread; the preview is made from one open file judged as it is opened."""
    private = tmp_path_factory.mktemp("private") / "private.png"
    Image.new("RGB", (900, 900), (0, 0, 255)).save(private, "PNG")
    made_by = ("generate_image", PICTURE)
    await assert_swapped_result_is_never_previewed(connect, tmp_path, monkeypatch, made_by, private, swap, kept)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks and FIFOs")
@pytest.mark.parametrize("kept", [True, False], ids=["kept poster", "no kept poster"])
@eras_in_turn("swap", ["link to a video outside", "fifo"])
async def test_a_saved_video_swapped_after_its_check_never_gets_a_poster_or_is_waited_on(
    connect, tmp_path, tmp_path_factory, monkeypatch, ffmpeg, swap, kept
):
    """As for a picture, for a video's poster frame: ffmpeg is handed the very file that was judged (by descriptor),
    never a link swapped in since (to a clip outside the workspace), and a FIFO is never opened to be waited on."""
    from importlib import resources

    private = tmp_path_factory.mktemp("private") / "private.mp4"
    private.write_bytes(resources.files("kie_mcp.sandbox").joinpath("clips", "9x16.mp4").read_bytes())
    made_by = ("generate_video", CLIP)
    await assert_swapped_result_is_never_previewed(connect, tmp_path, monkeypatch, made_by, private, swap, kept)
