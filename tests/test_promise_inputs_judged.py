"""What is shown, priced and sent of a local input is the file that was judged, and nothing else.

A file is judged (inside the allowed folders, not private, media by its bytes, within the size limit) and hashed once;
everything read of it later (the approval card's picture, the length a per-second price bills, the upload) is read from
that very file through the judged opener, never by opening its name again. A file swapped for a link to a picture
outside the allowed folders, a FIFO, or another length after the checks is refused (or shown by name only), and a file
grown past the limit after its size check is too large. Refusals name the argument, say that nothing was sent or
spent, and never show where a path outside the allowed folders leads.

Swaps are placed at an exact moment by wrapping the step before it, as a concurrent process would make them.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import os
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from PIL import Image

from kie_mcp.apps import CARD_KEY

from .conftest import CREATE_PATHS, answering, text_of

EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit"}  # images -> image_urls, up to 10 MB
TALK = {"prompt": "a woman speaking", "model": "infinitalk/from-audio"}  # per second of audio_url
UPLOAD_PATHS = {"/api/file-stream-upload", "/api/file-base64-upload", "/api/file-url-upload"}
HAS_PROC = Path("/proc/self/environ").exists()
GREEN = (0, 255, 0)  # the colour of the picture outside the allowed folders


def png(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (300, 200)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "PNG")
    return path


def wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return path


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as sound:
        return sound.getnframes() / sound.getframerate()


async def uploads_and_creates(controls) -> list[str]:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return [r["path"] for r in items if r["path"] in UPLOAD_PATHS | CREATE_PATHS]


def refused(result: Any, *words: str) -> str:
    text = text_of(result)
    assert result.is_error, text
    for word in words:
        assert word in text, (word, text)
    assert "Traceback" not in text, text
    return text


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("elsewhere")


@pytest.fixture
def connect_app(connect: Callable[..., Any]) -> Callable[..., Any]:
    """A client that declares the MCP Apps extension: it gets the approval card."""
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    return lambda elicitation=None, **overrides: connect(elicitation, extensions=[apps], **overrides)


def after(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, then: Callable[[], None]) -> None:
    """Run ``then`` (a swap) right after ``module.name`` returns, once."""
    real = getattr(module, name)
    pending = [then]

    def swapped(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        while pending:
            pending.pop()()
        return out

    async def swapped_async(*args: Any, **kwargs: Any) -> Any:
        out = await real(*args, **kwargs)
        while pending:
            pending.pop()()
        return out

    monkeypatch.setattr(module, name, swapped_async if inspect.iscoroutinefunction(real) else swapped)


async def release_fifo_readers_after(fifo: Path, seconds: float, released: list[bool]) -> None:
    """After ``seconds``, open ``fifo`` for writing and close it: a reader blocked in open() gets an empty file and
    goes on. A regression that opens the FIFO by name then fails the test instead of hanging the suite (a worker
    thread blocked in open() cannot be cancelled)."""
    await anyio.sleep(seconds)
    released.append(True)
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


# -- A: the approval card shows only the file that was checked ---------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks and FIFOs")
@pytest.mark.parametrize("swap", ["link to a picture outside", "fifo"])
async def test_the_card_never_shows_or_waits_on_a_file_swapped_after_the_checks(
    connect_app, controls, tmp_path, outside, monkeypatch, swap
):
    """The card's picture is made from the file that was checked and hashed, opened as judged: a link swapped in
    after the checks (to a picture outside every allowed folder) or a FIFO (which blocks a reader for good) is named
    on the card, never drawn, and estimate_cost still answers."""
    from kie_mcp import generation

    face = png(tmp_path / "face.png")
    png(outside / "passport-scan.png", GREEN)

    def replace_face() -> None:
        face.unlink()
        if swap == "fifo":
            os.mkfifo(face)
        else:
            face.symlink_to(outside / "passport-scan.png")

    after(monkeypatch, generation, "plan", replace_face)
    released: list[bool] = []
    with anyio.fail_after(60):
        async with connect_app() as client, anyio.create_task_group() as watchdog:
            watchdog.start_soon(release_fifo_readers_after, face, 20, released)
            estimate = await client.call_tool("estimate_cost", {**EDIT, "images": ["face.png"]})
            watchdog.cancel_scope.cancel()
    assert not released, "estimate_cost waited on the FIFO until a writer came: the card opened it by name"
    card = (estimate.meta or {})[CARD_KEY]
    assert card["inputs"] == [{"name": "face.png", "caption": '"face.png"'}], card["inputs"]  # named, no picture
    assert await uploads_and_creates(controls) == []


async def test_the_card_draws_the_checked_picture(connect_app, tmp_path):
    png(tmp_path / "face.png", (200, 30, 30))
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", {**EDIT, "images": ["face.png"]})
    [shown] = estimate.meta[CARD_KEY]["inputs"]
    picture = Image.open(io.BytesIO(base64.b64decode(shown["src"].split(",", 1)[1]))).convert("RGB")
    assert shown["name"] == "face.png" and max(picture.size) <= 256
    red, green, _ = picture.getpixel((5, 5))
    assert red > 150 and green < 80


# -- B: a per-second price is the price of the bytes that are uploaded ------------------------------------------


@pytest.mark.parametrize("how", ["swapped, then swapped back", "rewritten in place, then back"])
async def test_a_per_second_price_is_never_measured_from_another_file_than_the_one_hashed(
    connect, controls, sim, tmp_path, monkeypatch, how
):
    """A 60 s voice hashed, then (between the hash and the measuring) a 1 s one put in its place, and the 60 s one put
    back once measured: it used to be quoted at 1 s and uploaded, and billed, at 60 s. Now the request is refused,
    naming the argument; nothing is asked, uploaded or spent."""
    from kie_mcp import generation
    from kie_mcp.media import duration

    png(tmp_path / "face.png", size=(1200, 800))
    voice = wav(tmp_path / "voice.wav", 60.0)
    short, long = wav(tmp_path.parent / f"{tmp_path.name}-short.wav", 1.0), voice.read_bytes()

    def short_in() -> None:
        if how.startswith("swapped"):
            short.replace(voice)
        else:
            voice.write_bytes(short.read_bytes())

    def long_back() -> None:
        if how.startswith("swapped"):
            (tmp_path.parent / f"{tmp_path.name}-long.wav").write_bytes(long)
            (tmp_path.parent / f"{tmp_path.name}-long.wav").replace(voice)
        else:
            voice.write_bytes(long)

    after(monkeypatch, generation, "find_local_files", short_in)
    after(monkeypatch, duration, "measure_inputs", long_back)
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        result = await client.call_tool(
            "generate_video", {**TALK, "images": ["face.png"], "options": {"audio_url": "voice.wav"}}
        )
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    refused(result, "audio_url", "voice.wav changed while it was being read", "Nothing was sent or spent", "again")
    assert asked == [] and spent == 0
    assert [wav_seconds(item.data) for item in sim.uploads.values() if item.mime == "audio/wav"] == []
    assert await uploads_and_creates(controls) == []


async def test_an_unchanged_voice_is_priced_and_uploaded_at_its_measured_length(connect, sim, tmp_path):
    png(tmp_path / "face.png", size=(1200, 800))
    wav(tmp_path / "voice.wav", 3.0)
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        result = await client.call_tool(
            "generate_video", {**TALK, "images": ["face.png"], "options": {"audio_url": "voice.wav"}}
        )
    assert not result.is_error, text_of(result)
    assert len(asked) == 1 and asked[0].startswith("Spend 9 credits"), asked  # 3 credits per second x 3 s
    assert [wav_seconds(item.data) for item in sim.uploads.values() if item.mime == "audio/wav"] == [3.0]


# -- C: the size limit holds for the bytes that are hashed and sent ---------------------------------------------


async def test_a_file_grown_past_the_limit_after_its_size_check_is_too_large_and_never_sent(
    connect, controls, sim, tmp_path, monkeypatch
):
    """The limit (10 MB here) is checked, then the file grows by 40 MB before it is hashed: it used to be priced,
    approved and uploaded whole. The hash reads no further than the limit, and the file is refused as too large."""
    from kie_mcp.media import inputs

    face = png(tmp_path / "face.png", size=(1200, 800))

    def grow() -> None:
        os.truncate(face, face.stat().st_size + 40 * 1024 * 1024)  # sparse: no disk used

    after(monkeypatch, inputs, "inspect_local", grow)
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        result = await client.call_tool("generate_image", {**EDIT, "images": ["face.png"]})
    refused(result, "images[0]", "face.png is 40.", "up to 10 MB", "Nothing was uploaded", "nothing was sent")
    assert asked == [] and not sim.uploads
    assert await uploads_and_creates(controls) == []


# -- D, E: what a refused path is said to be ------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["upload_file", "estimate_cost"])
async def test_a_path_in_an_unknown_users_home_is_said_to_be_one_not_a_symlink_loop(connect, controls, tool):
    given = "~nosuchuser_kie_mcp/a.png"
    arguments = {"path": given} if tool == "upload_file" else {**EDIT, "images": [given]}
    async with connect() as client:
        result = await client.call_tool(tool, arguments)
    text = refused(result, "home folder of user 'nosuchuser_kie_mcp'", "does not know", "Nothing was read or uploaded")
    assert "loop" not in text
    assert ("images[0]" in text) == (tool == "estimate_cost")
    assert await uploads_and_creates(controls) == []


DATA_URI = (  # a 1x1 PNG, inline
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def test_a_link_or_a_data_uri_where_a_file_is_read_is_said_to_be_one(connect, controls):
    """The audit: a link given to upload_file was told "No file at /ws/https:/example.com/cat.png", a data: URI the
    same (a long one: "rename or move the file if its name is that long"), an ftp: link "neither an http(s) URL nor a
    readable file". Each is now said to be what it is, with what to do instead, and nothing is read or sent."""
    long_data = "data:image/png;base64," + "A" * 5000
    async with connect() as client:
        uploads = {
            given: await client.call_tool("upload_file", {"path": given})
            for given in ("https://example.com/cat.png", " HTTPS://example.com/cat.png", DATA_URI, long_data, "")
        }
        fields = {
            given: await client.call_tool("estimate_cost", {**EDIT, "images": [given]})
            for given in (DATA_URI, long_data, "ftp://example.com/cat.png")
        }
    for given, result in uploads.items():
        text = refused(
            result, "upload_file takes local files only", *(["Nothing was read or uploaded"] if given else [])
        )
        assert "No file at" not in text and "/https:" not in text, text
        if "://" in given:
            assert "is a link, not a file on this computer" in text, text
            assert "Pass the link to the generate tool as it is" in text, text
        elif given.startswith("data:"):
            assert "is a data: URI" in text and "Save it as a file in the workspace" in text, text
            assert "pass an http(s) link to it to the generate tool" in text, text
        else:
            assert "No file was named (the path is empty)" in text, text
    for given, result in fields.items():
        text = refused(result, "images[0]", "takes an http(s) link or a local file", "Nothing was read or uploaded")
        assert "neither an http(s) URL" not in text and "rename or move" not in text, text
        said = "which KIE does not fetch" if given.startswith("ftp") else "is a data: URI"
        assert said in text, text
    assert await uploads_and_creates(controls) == []


async def test_a_link_with_an_upper_case_scheme_or_a_space_before_it_is_a_link(connect, controls):
    """The audit: "HTTPS://..." and " https://..." were taken for file paths ("is neither an http(s) URL nor a
    readable file (looked in /ws/HTTPS:/example.com/cat.png...)"). A scheme is read in any case, after the spaces
    around the link: both are priced as the link they are."""
    async with connect() as client:
        for given in ("HTTPS://example.com/cat.png", " https://example.com/cat.png", "Http://example.com/cat.png"):
            result = await client.call_tool("estimate_cost", {**EDIT, "images": [given]})
            assert not result.is_error, text_of(result)
            assert result.structured_content["quote"]["credits_total"] is not None, text_of(result)
    assert await uploads_and_creates(controls) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
async def test_a_fifo_is_said_to_be_no_regular_file_not_missing(connect, controls, tmp_path):
    """The audit: a FIFO given to upload_file was "No file at .../fifo.png (not a regular file)": it is there. It is
    said to be no regular file, which kie-mcp never reads (a read could block for good), and nothing is read."""
    os.mkfifo(tmp_path / "fifo.png")
    async with connect() as client:
        upload = await client.call_tool("upload_file", {"path": "fifo.png"})
        estimate = await client.call_tool("estimate_cost", {**EDIT, "images": ["fifo.png"]})
    for result in (upload, estimate):
        text = refused(result, "'fifo.png' is not a regular file", "a FIFO, a device or a socket", "never reads")
        assert "No file at" not in text and "neither an http(s) URL" not in text, text
    assert await uploads_and_creates(controls) == []


@pytest.mark.parametrize("given", ["link", "proc"])
async def test_a_refusal_never_shows_where_a_path_outside_the_allowed_folders_leads(
    connect, controls, tmp_path, outside, given
):
    png(outside / "secret-photo.png")
    if given == "link":
        (tmp_path / "link.png").symlink_to(outside / "secret-photo.png")
        value = "link.png"
    else:
        if not HAS_PROC:
            pytest.skip("no /proc here")
        value = "/proc/self/environ"
    async with connect() as client:
        upload = await client.call_tool("upload_file", {"path": value})
        estimate = await client.call_tool("estimate_cost", {**EDIT, "images": [value]})
    for result in (upload, estimate):
        text = refused(result, repr(value), "leads outside the folders kie-mcp may read", "KIE_ALLOWED_DIRS")
        assert "secret-photo" not in text and str(outside) not in text, text
        assert f"/proc/{os.getpid()}" not in text and "resolves to" not in text, text
    assert await uploads_and_creates(controls) == []


async def test_a_refusal_still_names_where_a_link_inside_the_workspace_leads(connect, tmp_path):
    """Inside the allowed folders the target is useful and harmless to name: a link to a private file there."""
    png(tmp_path / ".drafts" / "draft.png")
    (tmp_path / "cover.png").symlink_to(tmp_path / ".drafts" / "draft.png")
    async with connect() as client:
        result = await client.call_tool("upload_file", {"path": "cover.png"})
    refused(result, "cover.png (a link to", ".drafts/draft.png", "is private")
