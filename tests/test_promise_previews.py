"""Previews are best effort, and nothing kie-mcp writes holds the API key.

The promises: a result that was paid for and saved is always reported (its task id, its file), whatever its bytes
do to the image decoder, and the gallery page is still written; a preview is never decoded on the event loop, and a
file that could not be previewed is not decoded again; an image declaring more pixels than a preview may decode gets
none, refused from its header; the API key, typed into a prompt, never reaches a sidecar, a gallery page or a name.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from PIL import Image, ImageFile
from pydantic import SecretStr

from kie_mcp.media.downloads import PREVIEW_MAX_PIXELS, make_previews, preview, scaled_copy, thumbnail
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .conftest import answering, text_of

# A 2.5 KB TIFF found by fuzzing: Pillow raises TypeError ("'IFDRational' object cannot be interpreted as an
# integer") inside exif_transpose, an error no decoder "except" clause lists.
CRASHING_TIFF = zlib.decompress(
    base64.b64decode(
        "eNrz9NRi4GBgYOBkYGBkYWAEsjSAmBHKlgNiJkZmMFsAiJmhbBBmQ2ILMrKC6SogFkPSKw5lJwCNl0FSPwpGwcgA14au0zVHbKQdHU23o2AUjI"
        "KhDACSLwSF"
    )
)
IMAGE = {"prompt": "A red apple", "model": "nano-banana-2"}
KEY = "3f9c2a7be41d4c8e9a0b6d5f1e2c3a4b"  # shaped like a KIE key: nothing but the registry can tell it is one


class Served(httpx2.AsyncByteStream):
    """A response body streamed as a CDN sends it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> Any:
        yield self.data


class CraftedFiles(SandboxTransport):
    """The simulator, with its result files served as ``body`` (a CDN serving crafted bytes)."""

    body: bytes | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if self.body is not None and request.method == "GET" and path.startswith("/files/") and "/uploads/" not in path:
            headers = {"content-type": "application/octet-stream", "content-length": str(len(self.body))}
            return httpx2.Response(200, headers=headers, stream=Served(self.body))
        return await super().handle_async_request(request)


@pytest.fixture
def transport(sim: Simulator) -> CraftedFiles:
    return CraftedFiles(sim)


def truncated_png(path: Path) -> Path:
    """A PNG cut short: its header opens, its pixels fail to decode."""
    out = io.BytesIO()
    Image.new("RGB", (600, 400), (200, 30, 30)).save(out, format="PNG", compress_level=0)
    path.write_bytes(out.getvalue()[: len(out.getvalue()) // 2])
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid grey PNG of ``width`` x ``height`` pixels, a few kilobytes on disk (every row is zeros)."""
    squeeze = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + one byte per pixel
    idat = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


# -- 1. a crafted image never fails a paid result ---------------------------------------------------------------


async def test_a_crafted_result_image_never_fails_the_paid_generation_check_task_or_gallery(
    connect, transport: CraftedFiles, tmp_path: Path
) -> None:
    transport.body = CRASHING_TIFF
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        assert not made.is_error, text_of(made)
        task = made.structured_content["tasks"][0]
        assert task["state"] == "succeeded" and task["files"], text_of(made)
        assert task["files"][0].endswith(".tif")
        assert task["task_id"] in text_of(made)
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
        assert not checked.is_error, text_of(checked)
        assert task["files"][0] in text_of(checked)
    assert (tmp_path / task["files"][0]).read_bytes() == CRASHING_TIFF  # the paid result is kept as served
    page = tmp_path / "outputs" / "index.html"
    assert page.is_file() and Path(task["files"][0]).name in page.read_text()  # shown without a preview


def test_a_crafted_image_gets_no_preview_instead_of_an_error(tmp_path: Path) -> None:
    assert scaled_copy(io.BytesIO(CRASHING_TIFF), 256) is None
    crafted = tmp_path / "crafted.tif"
    crafted.write_bytes(CRASHING_TIFF)
    assert thumbnail(crafted) is None


# -- 2. no decode on the event loop, and a failure is remembered --------------------------------------------------


async def test_a_failed_thumbnail_is_never_decoded_again_and_never_on_the_event_loop(
    tmp_path: Path, decodes: list[str]
) -> None:
    image = truncated_png(tmp_path / "cut.png")
    await make_previews([(image, "image")], 256)
    assert len(decodes) == 1 and decodes[0] != threading.current_thread().name  # tried once, in a worker thread
    assert preview(image, "image", 256) is None  # what a tool result calls, on the event loop: reads only
    await make_previews([(image, "image")], 256)
    assert len(decodes) == 1  # the failure is remembered while the file is unchanged


async def test_a_preview_on_the_event_loop_only_reads_what_a_worker_made(tmp_path: Path, decodes: list[str]) -> None:
    image = tmp_path / "shot.png"
    Image.new("RGB", (600, 400), (200, 30, 30)).save(image, format="PNG")
    assert preview(image, "image", 256) is None and decodes == []  # nothing made yet: nothing shown, nothing decoded
    await make_previews([(image, "image")], 256)
    shown = preview(image, "image", 256)
    assert shown is not None and shown[1] == "image/jpeg" and len(decodes) == 1


def test_the_files_that_could_not_be_previewed_are_remembered_up_to_a_bound(
    tmp_path: Path, decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server up for weeks remembered every failed preview for good; now the most recent ones, up to a bound."""
    from kie_mcp.media import downloads

    monkeypatch.setattr(downloads, "_failed_thumbnails", downloads._Failures())
    monkeypatch.setattr(downloads, "FAILURES_REMEMBERED", 3)
    images = [truncated_png(tmp_path / f"cut-{n}.png") for n in range(5)]
    for image in images:
        assert thumbnail(image) is None
    assert len(decodes) == 5 and len(downloads._failed_thumbnails) == 3
    assert thumbnail(images[-1]) is None and len(decodes) == 5  # a recent failure: still not decoded again
    assert thumbnail(images[0]) is None and len(decodes) == 6  # the oldest was forgotten: tried once more


# -- 3. an image over the pixel cap is refused from its header ----------------------------------------------------


def test_an_image_over_the_pixel_cap_gets_no_preview_and_is_never_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = huge_png(tmp_path / "huge.png", 9000, 8000)  # 72 million pixels: over the cap, under Pillow's own limit
    assert PREVIEW_MAX_PIXELS < 9000 * 8000 and image.stat().st_size < 200_000
    loads: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def counted(self: Any) -> Any:
        loads.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    assert thumbnail(image) is None
    with image.open("rb") as handle:
        assert scaled_copy(handle, 256) is None
    assert loads == []  # refused from the header: no pixel was decoded


def test_an_image_over_pillows_own_limit_leaves_no_warning_on_stderr(tmp_path: Path) -> None:
    """Pillow warns (DecompressionBombWarning) on opening an image of over 89 million pixels; kie-mcp refuses it
    from its header anyway, so the warning only alarmed whoever read the server's log."""
    import subprocess
    import sys

    image = huge_png(tmp_path / "huge.png", 10_000, 9_500)  # 95 million pixels
    script = (
        "import io, sys; from pathlib import Path; from kie_mcp.media.downloads import scaled_copy, thumbnail; "
        "from kie_mcp.media.prepare import prepare_image, undecodable; from kie_mcp.media.sniff import PNG; "
        "path = Path(sys.argv[1]); "
        "assert thumbnail(path) is None; assert scaled_copy(io.BytesIO(path.read_bytes()), 256) is None; "
        "assert prepare_image(io.BytesIO(path.read_bytes()), 'huge.png').content is None; "
        "assert undecodable(io.BytesIO(path.read_bytes()), PNG) is None"
    )
    command = [sys.executable, "-c", script, str(image)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_turned_photo_is_scaled_first_then_shown_upright(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned by 90 degrees
    Image.new("RGB", (1600, 800), (30, 120, 200)).save(photo, format="JPEG", exif=exif.tobytes())
    made = thumbnail(photo, 256)
    assert made is not None
    with Image.open(io.BytesIO(made[0])) as small:
        assert small.size == (128, 256)


# -- 4. the API key is never written to a file --------------------------------------------------------------------


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


async def test_the_api_key_in_a_prompt_never_reaches_a_sidecar_a_gallery_page_or_a_name(
    settings, mode: str, tmp_path: Path
) -> None:
    sim = Simulator(SimConfig(speed=1000.0), keys={KEY: "default", SANDBOX_API_KEY: "default"})
    server = create_server(replace(settings, api_key=SecretStr(KEY)), transport=SandboxTransport(sim))
    async with Client(server, mode=mode, elicitation_callback=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "prompt": f"{KEY} written on a poster"})
        assert not made.is_error, text_of(made)
    outputs = tmp_path / "outputs"
    written = [p for p in outputs.rglob("*") if p.is_file()]
    assert {p.suffix for p in written} >= {".json", ".html", ".jpg"}
    everything = files_under(tmp_path)  # the journal and the call log too
    assert any(p.name == "journal.sqlite3" for p in everything)
    for path in everything:
        assert KEY not in str(path.relative_to(tmp_path)).lower()
        assert KEY.encode() not in path.read_bytes(), path
    sidecar = next(p for p in written if p.suffix == ".json").read_text()
    assert "[redacted] written on a poster" in sidecar  # the rest of the prompt is kept


def test_a_sidecar_written_before_redaction_never_puts_the_key_on_a_gallery_page(tmp_path: Path) -> None:
    from kie_mcp.media import gallery
    from kie_mcp.redact import register_secret

    register_secret(KEY)  # as start-up does with the configured key
    folder = tmp_path / "outputs" / "2026-01-02-poster"
    folder.mkdir(parents=True)
    (folder / "m_t_1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    old = {"task_id": "t", "model": "m", "prompt": f"{KEY} on a poster", "files": [{"path": "m_t_1.png"}]}
    (folder / "m_t.json").write_text(json.dumps(old))
    assert gallery.build(tmp_path / "outputs") == []
    pages = [folder / "index.html", tmp_path / "outputs" / "index.html"]
    assert all(KEY not in page.read_text() and "on a poster" in page.read_text() for page in pages)
