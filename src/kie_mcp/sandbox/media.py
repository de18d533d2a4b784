"""Fake media: small real images and MP4-looking videos, deterministic per seed.

Images are real files (Pillow) so clients can open and check them. Videos are streamed in
chunks and never held in memory whole, so a benchmark can pull hundreds of MB through the sim.
"""

from __future__ import annotations

import functools
import hashlib
import io
import mimetypes
import struct
from collections.abc import AsyncIterator, Iterator

from PIL import Image, ImageDraw

CHUNK_BYTES = 64 * 1024
_LONG_SIDE = 256

IMAGE_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


def image_size(aspect_ratio: object) -> tuple[int, int]:
    """Pixel size for an aspect ratio like "16:9"; anything unparsable is square."""
    try:
        w_text, h_text = str(aspect_ratio).split(":")
        w, h = float(w_text), float(h_text)
    except ValueError:
        return _LONG_SIDE, _LONG_SIDE
    if w <= 0 or h <= 0:
        return _LONG_SIDE, _LONG_SIDE
    if w >= h:
        return _LONG_SIDE, max(8, round(_LONG_SIDE * h / w))
    return max(8, round(_LONG_SIDE * w / h)), _LONG_SIDE


@functools.lru_cache(maxsize=256)
def image_bytes(seed: str, fmt: str = "png", size: tuple[int, int] = (_LONG_SIDE, _LONG_SIDE)) -> bytes:
    """A small, valid PNG or JPEG whose colours depend only on ``seed``."""
    d = _digest(seed)
    image = Image.new("RGB", size, (d[0], d[1], d[2]))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((w // 8, h // 8, w // 2, h // 2), fill=(d[3], d[4], d[5]))
    draw.ellipse((w // 3, h // 3, w - w // 8, h - h // 8), fill=(d[6], d[7], d[8]))
    out = io.BytesIO()
    if fmt in ("jpg", "jpeg"):
        image.save(out, format="JPEG", quality=85)
    elif fmt == "webp":
        image.save(out, format="WEBP")
    else:
        image.save(out, format="PNG")
    return out.getvalue()


def placeholder_png() -> bytes:
    """What a URL upload of a foreign URL stores: the sim makes no outbound calls."""
    return image_bytes("kie-sim-placeholder", "png", (64, 64))


def _mp4_header(total: int) -> bytes:
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"isom", 0x200) + b"isom" + b"mp41"
    remaining = total - len(ftyp)
    return ftyp + struct.pack(">I4s", remaining, b"mdat")


def video_chunks(seed: str, total: int, chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
    """``total`` bytes: an ``ftyp`` box, then one ``mdat`` box of seeded filler, in ``chunk``-sized pieces."""
    header = _mp4_header(total)
    pattern = (_digest(seed) * (chunk // 32 + 1))[:chunk]
    first = header + pattern[: max(0, min(chunk, total) - len(header))]
    yield first[:total]
    sent = len(first)
    while sent < total:
        piece = pattern[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


async def video_stream(seed: str, total: int) -> AsyncIterator[bytes]:
    """Async form of ``video_chunks`` for ``StreamingResponse``."""
    for piece in video_chunks(seed, total):
        yield piece


def video_bytes(seed: str, total: int) -> bytes:
    return b"".join(video_chunks(seed, total))


def sniff_mime(data: bytes, file_name: str = "") -> str:
    """Content type from magic bytes, then from the name; octet-stream when unsure."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    guessed, _ = mimetypes.guess_type(file_name)
    return guessed or "application/octet-stream"


def extension_for(mime: str) -> str:
    return {"image/jpeg": "jpg", "image/png": "png", "video/mp4": "mp4"}.get(mime) or (
        (mimetypes.guess_extension(mime) or ".bin").lstrip(".")
    )
