"""Fake media that looks real: labelled images and small, playable MP4 clips.

Images are drawn with Pillow (seeded colours, deterministic per seed) and labelled "SANDBOX" with the prompt's
first words, so nobody mistakes a simulated result for a real one. Videos are tiny H.264 clips (AAC sound where the
request has sound) shipped in ``clips/``, made once by ``clips/make_clips.py``; the simulator needs no ffmpeg. A
clip plays as long as its request asked, a follow-up's as its source does (``state.video_shape``: an extension's
whole video is its source's and the new part, an upscale keeps its source's length and sound), made by
``looping.py`` (its samples repeated, then trimmed), and is served padded to ``SimConfig.video_bytes`` with a
trailing ``free`` box, which MP4 players skip, and streamed in chunks that are never held in memory whole, so a
benchmark can pull hundreds of MB through the sim.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import mimetypes
import re
import struct
from collections.abc import AsyncIterator, Iterator
from importlib import resources

from PIL import Image, ImageDraw, ImageFont

from kie_mcp.media.prepare import MIN_LONG_SIDE

from .looping import Unloopable, loop_clip

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
# KIE's stills are 1K to 4K. The sandbox's are the smallest kie-mcp sends on as they are (not upscaled first, as a
# smaller input is: media/prepare.py), so a sandbox still used as the next step's input goes as a real one would,
# with no upscaling note that live use never shows. Flat colours keep each file some tens of KB.
_LONG_SIDE = MIN_LONG_SIDE
_LABEL = "SANDBOX"
_LABEL_WORDS = 6
_LABEL_CHARS = 48

IMAGE_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}

# The shipped clips by aspect (width / height); each exists silent ("16x9.mp4") and with sound ("16x9-sound.mp4").
CLIP_ASPECTS = {"16x9": 16 / 9, "9x16": 9 / 16, "1x1": 1.0}
DEFAULT_CLIP_ASPECT = "16x9"  # "auto", "adaptive" or no aspect at all: most video models default to 16:9
SHIPPED_SECONDS = 2.0  # how long each shipped clip plays: what a video of no stated length is served as
_FREE_HEADER = 8


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


# -- aspect ratios ---------------------------------------------------------------------------


def aspect_value(aspect: object) -> float | None:
    """Width / height of an aspect as KIE's models spell it, or None when it names none ("auto", "adaptive").

    Takes "16:9", "landscape_16_9", "portrait_4_3" (fal-style image sizes: 3:4), "1024x768", "square_hd",
    and Sora's bare "portrait" / "landscape".
    """
    text = str(aspect).strip().lower() if aspect is not None else ""
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    if len(numbers) == 2 and numbers[0] > 0 and numbers[1] > 0:
        ratio = numbers[0] / numbers[1]
        if ("portrait" in text and ratio > 1) or ("landscape" in text and ratio < 1):
            ratio = 1 / ratio
        return ratio
    if text.startswith("square"):
        return 1.0
    if text.startswith("portrait"):
        return 9 / 16
    if text.startswith("landscape"):
        return 16 / 9
    return None


def image_size(aspect_ratio: object) -> tuple[int, int]:
    """Pixel size for an aspect like "16:9" (long side ``_LONG_SIDE`` px); anything that names no aspect is
    square."""
    ratio = aspect_value(aspect_ratio)
    if ratio is None:
        return _LONG_SIDE, _LONG_SIDE
    if ratio >= 1:
        return _LONG_SIDE, max(8, round(_LONG_SIDE / ratio))
    return max(8, round(_LONG_SIDE * ratio)), _LONG_SIDE


# -- images ----------------------------------------------------------------------------------


def prompt_label(prompt: object) -> str:
    """The prompt's first few words, short enough to draw on a small image."""
    words = str(prompt or "").split()[:_LABEL_WORDS]
    text = " ".join(words)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 3].rstrip() + "..."


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(
    draw: ImageDraw.ImageDraw, words: list[str], width: float, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> list[str]:
    """Up to two lines of ``words`` that fit ``width``; what does not fit ends in "..."."""
    lines: list[str] = []
    rest = list(words)
    while rest and len(lines) < 2:
        line = rest.pop(0)
        while rest and draw.textlength(f"{line} {rest[0]}", font=font) <= width:
            line = f"{line} {rest.pop(0)}"
        lines.append(line)
    if lines and (rest or draw.textlength(lines[-1], font=font) > width):
        last = lines[-1]
        while last and draw.textlength(last + "...", font=font) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "..."
    return lines


def _draw_label(image: Image.Image, caption: str) -> None:
    """A dark band across the middle with "SANDBOX" and ``caption`` in it: a simulated result says so."""
    w, h = image.size
    draw = ImageDraw.Draw(image)
    title_size = max(8, min(h // 5, int(100 * 0.8 * w / max(1.0, draw.textlength(_LABEL, font=_font(100))))))
    small_size = max(8, min(title_size * 2 // 5, h // 10))
    lines = _fit(draw, caption.split(), 0.9 * w, _font(small_size)) if caption else []
    band = title_size + len(lines) * (small_size + 3) + 12
    top = max(0, (h - band) // 2)
    draw.rectangle((0, top, w, min(h, top + band)), fill=(17, 24, 39))
    draw.text((w / 2, top + 6), _LABEL, font=_font(title_size), fill=(250, 204, 21), anchor="mt")
    y = top + 6 + title_size + 3
    for line in lines:
        draw.text((w / 2, y), line, font=_font(small_size), fill=(243, 244, 246), anchor="mt")
        y += small_size + 3


@functools.lru_cache(maxsize=256)
def image_bytes(
    seed: str, fmt: str = "png", size: tuple[int, int] = (_LONG_SIDE, _LONG_SIDE), caption: str = ""
) -> bytes:
    """A small, valid PNG, JPEG or WebP: colours from ``seed``, labelled "SANDBOX" and ``caption``."""
    d = _digest(seed)
    image = Image.new("RGB", size, (d[0], d[1], d[2]))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((w // 8, h // 8, w // 2, h // 2), fill=(d[3], d[4], d[5]))
    draw.ellipse((w // 3, h // 3, w - w // 8, h - h // 8), fill=(d[6], d[7], d[8]))
    _draw_label(image, caption)
    out = io.BytesIO()
    if fmt in ("jpg", "jpeg"):
        image.save(out, format="JPEG", quality=85)
    elif fmt == "webp":
        image.save(out, format="WEBP")
    else:
        image.save(out, format="PNG")
    return out.getvalue()


def placeholder_png(name: str = "") -> bytes:
    """What a URL upload of a foreign URL stores (the sim makes no outbound calls), labelled as such."""
    caption = f"placeholder for {name}" if name else "placeholder"
    return image_bytes("kie-sim-placeholder", "png", (128, 128), prompt_label(caption))


# -- videos ----------------------------------------------------------------------------------


def _orientation(log_ratio: float) -> int:
    """1 landscape, -1 portrait, 0 square."""
    return (log_ratio > 1e-9) - (log_ratio < -1e-9)


def clip_for(aspect: object, sound: bool) -> str:
    """The shipped clip closest to ``aspect`` (16:9, 9:16 or 1:1; a tie keeps the orientation), with or without
    sound."""
    ratio = aspect_value(aspect)
    if ratio is None:
        name = DEFAULT_CLIP_ASPECT
    else:
        wanted = math.log(ratio)

        def distance(candidate: str) -> tuple[float, bool]:
            have = math.log(CLIP_ASPECTS[candidate])
            return round(abs(have - wanted), 9), _orientation(have) != _orientation(wanted)

        name = min(CLIP_ASPECTS, key=distance)
    return f"{name}-sound.mp4" if sound else f"{name}.mp4"


@functools.cache
def _shipped(name: str) -> bytes:
    return (resources.files(__package__) / "clips" / name).read_bytes()


@functools.lru_cache(maxsize=32)
def clip_bytes(name: str, seconds: float | None = None) -> bytes:
    """A shipped clip (a few KB, 2 s), read once; with ``seconds``, one that plays that long (the shipped clip
    when it cannot be: a length past what looping.py makes)."""
    shipped = _shipped(name)
    if seconds is None:
        return shipped
    try:
        return loop_clip(shipped, seconds)
    except Unloopable as err:
        log.debug("serving %s as shipped: %s", name, err)
        return shipped


def video_size(name: str, requested: int, seconds: float | None = None) -> int:
    """What a video URL serves: ``requested`` bytes (``SimConfig.video_bytes``), never less than the clip."""
    return max(requested, len(clip_bytes(name, seconds)))


def _grown_last_box(clip: bytes, extra: int) -> bytes:
    """``clip`` with its last top-level box ``extra`` bytes longer (for a gap too small for a ``free`` box)."""
    offset, last = 0, 0
    while offset + 8 <= len(clip):
        (length,) = struct.unpack_from(">I", clip, offset)
        if length == 1:
            (length,) = struct.unpack_from(">Q", clip, offset + 8)
        if length < 8:
            break
        last, offset = offset, offset + length
    (length,) = struct.unpack_from(">I", clip, last)
    if length == 1:
        (big,) = struct.unpack_from(">Q", clip, last + 8)
        return clip[: last + 8] + struct.pack(">Q", big + extra) + clip[last + 16 :]
    return clip[:last] + struct.pack(">I", length + extra) + clip[last + 4 :]


def _head(name: str, total: int, seconds: float | None) -> bytes:
    """The clip and the header of the padding after it; the rest of the ``total`` bytes are zeros."""
    clip = clip_bytes(name, seconds)
    gap = total - len(clip)
    if gap <= 0:
        return clip
    if gap < _FREE_HEADER:
        return _grown_last_box(clip, gap)
    if gap <= 0xFFFFFFFF:
        return clip + struct.pack(">I4s", gap, b"free")
    return clip + struct.pack(">I4sQ", 1, b"free", gap)  # over 4 GiB: a 64-bit box size


def video_chunks(name: str, total: int, chunk: int = CHUNK_BYTES, seconds: float | None = None) -> Iterator[bytes]:
    """Clip ``name`` (``seconds`` long) padded to ``total`` bytes (at least the clip), in ``chunk``-sized pieces."""
    total = video_size(name, total, seconds)
    head = _head(name, total, seconds)
    for start in range(0, len(head), chunk):
        yield head[start : start + chunk]
    zeros = bytes(chunk)
    sent = len(head)
    while sent < total:
        piece = zeros[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


async def video_stream(name: str, total: int, seconds: float | None = None) -> AsyncIterator[bytes]:
    """Async form of ``video_chunks`` for ``StreamingResponse``."""
    for piece in video_chunks(name, total, seconds=seconds):
        yield piece


def video_bytes(name: str, total: int, seconds: float | None = None) -> bytes:
    return b"".join(video_chunks(name, total, seconds=seconds))


# -- types -----------------------------------------------------------------------------------


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
