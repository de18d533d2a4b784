"""What is sent for a local image: checked to decode, and upscaled first when it is too small for the models.

An image is refused before anything is priced or sent when Pillow cannot decode it as the format its first bytes
name (``undecodable``): a PNG signature followed by text, a file cut short, a header declaring more pixels than
Pillow decodes at all (which no model takes either). What every viewer opens is taken: a JPEG lacking only its end
marker, a PNG whose only damaged chunks are ancillary ones. A format this Pillow has no decoder for (HEIC/HEIF
without the pillow-heif plugin) cannot be checked, and is sent as it is. A picture of more than
``DECODE_MAX_PIXELS`` pixels (a baseline JPEG's after its reduced decode; a progressive JPEG's at full size) is never
decoded, whatever its format: a few bytes can declare a 13000 x 13000 WebP whose decode took 2.7 GB and seconds, at
every estimate and upload. Only what Pillow reads to open it (its header) is checked, and its structure where that
can be read without decoding: a PNG's chunks and checksums, and whether a TIFF or BMP holds all the picture data its
header places (one cut short is refused, as a decode would refuse it).

Many models reject or degrade small inputs. An image whose longest side is under 1024 px is turned upright as its
EXIF says (as viewers and the approval card show it), resized with Lanczos so its longest side is 1080 px, and
sent as a JPEG (quality 92) when every pixel is opaque, as a PNG when some are not: transparency is kept, never
turned black (Pillow resizes with premultiplied alpha, so the hidden colour of a transparent pixel never bleeds).
A 16-bit grey image is scaled to 8 bits, never clipped to white; a picture with no faithful 8-bit form (floating
point pixels, 32-bit values past 16 bits, 16-bit grey with a transparent value) is sent as it is, and is judged
before pricing by that size, not by an upscaled one it never gets (``media.inputs.pixel_problem``): too small for a
field, it is refused, saying why it is not upscaled. Only the EXIF orientation is read (``upright``), never the EXIF
written again (a photo with one malformed tag broke that); an EXIF block that cannot be read leaves the picture as
stored. Any other failure of Pillow's to turn, convert or encode a picture sends it as it is, never fails the tool.
Everything else is sent as it is.

A picture made here (upscaled, flattened) is one still: of an animated WebP, PNG, GIF or AVIF, its first frame, and
the note says so ("It is animated (12 frames): only its first frame is sent"). KIE documents nothing of animated
inputs, so one that needs nothing done is sent as it is, frames and all.

A field whose data says it takes no transparency (``MediaLimits.opaque``: KIE's "PNG (no transparency)") gets a
picture with transparent pixels, of any size up to ``DECODE_MAX_PIXELS``, turned upright, flattened onto white and
sent as a JPEG (upscaled first when small), the note saying so; a picture whose alpha channel is all opaque is sent
as it is. A picture with an alpha channel past ``DECODE_MAX_PIXELS`` is never decoded whole (Pillow decodes all of a
PNG to read its alpha: 80 MB for a 20-megapixel one, more with each megapixel). A PNG is read exactly a strip at a
time instead (``alpha``: its alpha plane unfiltered by Pillow's own decoder, in bounded memory): all opaque (a large
export with an opaque alpha channel is common), it is sent as it is, nothing said; with transparent pixels, which
cannot be flattened without decoding it whole, it is refused before it is priced, saying how to flatten it. Another
format (WebP, TIFF, AVIF), or a PNG whose transparency that read does not tell, is sent as it is, the quote saying
that its transparency was not checked and KIE may refuse it if some pixel is transparent. 16-bit grey with a
transparent value, which cannot be flattened without losing greys, is refused before it is priced too
(``opacity_problem``, ``media.inputs.opacity_refusal``).

What is sent is named and remembered by its own hash (``media.inputs``): the upscaled form of a photo and the photo
itself are two uploads, never one name that the second overwrites.
"""

from __future__ import annotations

import io
import logging
import zlib
from dataclasses import dataclass
from typing import IO, Any

from kie_mcp.redact import redact_secrets
from kie_mcp.words import unseen_escaped

from . import alpha
from .sniff import JPEG, PNG, Sniffed, pillow

log = logging.getLogger(__name__)

MIN_LONG_SIDE = 1024
TARGET_LONG_SIDE = 1080
JPEG_QUALITY = 92
# Past this many pixels (a 4K x 4K picture) an input is never decoded to check it, in any format: decoding a
# 60-megapixel PNG took 2 s and 300 MB at every estimate, and a 38-byte lossless WebP declaring 13000 x 13000 pixels
# took 2.7 GB (three at once, 7.8 GB). Only its header is read, and a PNG's structure checked. A baseline JPEG is
# decoded at an eighth of its size, so this bounds it only past a billion pixels; a progressive one at its full size
# (``_decoded_pixels``). The verdict is remembered by content (``media.inputs``).
DECODE_MAX_PIXELS = 16_000_000
STRUCTURE_CHECKED = ("png", "tiff", "bmp")  # formats whose structure is checked past it (``_structure_problem``)

# Pillow's decoder for each image format ``sniff`` knows. A format whose decoder this Pillow lacks (HEIF without
# the pillow-heif plugin) cannot be checked: it is sent as it is, as KIE takes it.
_DECODERS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
    "heic": "HEIF",
    "heif": "HEIF",
    "avif": "AVIF",
}
_SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Formats whose files may hold an animation (Pillow's ``n_frames``): a picture made here from one (upscaled,
# flattened) is its first frame only, a still, and the note says so. A multi-picture JPEG (MPO: a phone's photo with
# its depth map or preview) or a multi-page TIFF is not an animation: its first picture is the photo.
_ANIMATED_FORMATS = ("GIF", "PNG", "WEBP", "AVIF")


@dataclass(frozen=True)
class Prepared:
    content: bytes | None  # None: upload the file unchanged
    media: Sniffed | None  # what ``content`` is (JPEG or PNG)
    note: str | None  # what was done (or why a small image was not upscaled), for the quote and the answer
    size: tuple[int, int] | None = None  # the upscaled picture's width and height; None: sent at its own size
    kept: str | None = None  # why a small picture is sent at its own size (its pixels have no faithful 8-bit form)


def undecodable(source: IO[bytes], media: Sniffed) -> str | None:
    """Why the image in ``source`` (``media`` by its first bytes) does not decode as that format, or None when it
    does, or cannot be judged here (a format this Pillow lacks). What every viewer opens is taken: a JPEG lacking
    only its end marker, a PNG whose damaged chunks are only ancillary ones (text, time: viewers skip them). Reads it
    all: call it in a worker thread."""
    Image = pillow()
    Image.init()
    decoder = _DECODERS.get(media.format)
    if decoder is None or decoder not in Image.OPEN:
        return None
    why = _decode_problem(source, decoder, media)
    if why is None or media.format not in ("jpeg", "png"):
        return why
    source.seek(0)
    mended = _mended(source.read())
    if mended is not None and _decode_problem(io.BytesIO(mended), decoder, media) is None:
        return None  # what viewers show: the file is sent as it is
    return why


def _mended(data: bytes) -> bytes | None:
    """The picture of a file viewers open though it is not by the book, as Pillow can read it: a JPEG lacking only
    its end marker with the marker added, a PNG without its damaged ancillary chunks; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return data + b"\xff\xd9" if _lacks_only_its_end(data) else None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _without_damaged_ancillary_chunks(data)
    return None


def _lacks_only_its_end(data: bytes) -> bool:
    """Whether a JPEG that stops early holds its whole picture and lacks only its end marker (some cameras and tools
    write none): decoded with the marker added, its last row is real picture. A file cut short ends in rows the
    decoder fills with flat mid-grey (128 in every band), which no photo's last eight rows are."""
    Image = pillow()
    try:
        with Image.open(io.BytesIO(data + b"\xff\xd9"), formats=("JPEG",)) as image:
            if _decoded_pixels(image) > DECODE_MAX_PIXELS:  # a row here is eight of the picture
                return False  # never decoded (``DECODE_MAX_PIXELS``)
            image.load()
            last = image.crop((0, image.size[1] - 1, image.size[0], image.size[1]))
            bands = last.getextrema()
    except Exception:
        return False
    bands = bands if isinstance(bands[0], tuple) else (bands,)
    return any(band != (128, 128) for band in bands)


def _decode_problem(source: IO[bytes], decoder: str, media: Sniffed) -> str | None:
    from PIL import UnidentifiedImageError

    Image = pillow()
    try:
        with Image.open(source, formats=(decoder,)) as image:
            if _decoded_pixels(image) <= DECODE_MAX_PIXELS:  # JPEG: every byte read, 1/8 decoded
                image.load()
            else:  # too large to decode: its header (read to open it) and what of its structure can be read
                return _structure_problem(image, source, media)
    except Image.DecompressionBombError:  # before the header's size could be used: no model takes that many
        bound = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        return (
            f"its header declares more than {bound / 1e6:.0f} million pixels, more than Pillow decodes (a damaged "
            "header, or a picture far larger than any model takes)"
        )
    except UnidentifiedImageError:
        return f"what follows its first bytes is damaged, or is no {media.label} at all"
    except Exception as err:  # any decoder failure: a damaged file, a crafted one
        if "truncated" in str(err).lower() or isinstance(err, EOFError):
            return f"its data ends before the picture does (the file is cut short, or is no real {media.label})"
        return f"its {media.label} data is damaged ({type(err).__name__})"
    return None


def _decoded_pixels(image: Any) -> int:
    """The pixels an opened image's decode holds in memory, once asked to decode at an eighth a side (``draft``: a
    JPEG's reduced decode; other formats have none). A progressive JPEG counts at full size: libjpeg keeps every
    coefficient of the whole picture (3 to 6 bytes a pixel) whatever the scale it outputs, so a 2 MB progressive
    13000 x 13000 photo decoded at an eighth took 1 GB."""
    width, height = image.size
    image.draft(image.mode, (max(width // 8, 1), max(height // 8, 1)))
    return width * height if progressive(image) else image.size[0] * image.size[1]


def progressive(image: Any) -> bool:
    """Whether an opened JPEG is progressive: its reduced decode (``draft``) saves none of its coefficients' memory."""
    return bool(image.info.get("progressive") or image.info.get("progression"))


def _structure_problem(image: Any, source: IO[bytes], media: Sniffed) -> str | None:
    """What is wrong with the structure of a picture too large to decode, as far as it can be told without decoding:
    a PNG's chunks and checksums (Pillow's ``verify``), and whether a TIFF or BMP holds all the picture data its
    header places (strips or tiles, rows). Other formats: nothing past their header."""
    if media.format == "png":
        image.verify()  # raises on a damaged chunk, decompresses nothing
        return None
    end = _declared_end(image) if media.format in ("tiff", "bmp") else None
    if end is not None and end > source.seek(0, io.SEEK_END):
        return f"its data ends before the picture does (the file is cut short, or is no real {media.label})"
    return None


def _declared_end(image: Any) -> int | None:
    """Where the picture data of an opened TIFF (its first page's strips or tiles) or uncompressed BMP ends, by its
    header; None when it does not say."""
    if image.format == "TIFF":
        tags = image.tag_v2
        offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)  # strips, else tiles
        offsets = offsets if isinstance(offsets, tuple) else (offsets,) if isinstance(offsets, int) else ()
        counts = counts if isinstance(counts, tuple) else (counts,) if isinstance(counts, int) else ()
        ends = [offset + count for offset, count in zip(offsets, counts, strict=False)]
        return max(ends) if ends and len(offsets) == len(counts) else None
    tiles = list(getattr(image, "tile", None) or ())
    if image.format == "BMP" and len(tiles) == 1 and tiles[0][0] == "raw":  # uncompressed rows (RLE: not told)
        _, extents, offset, args = tiles[0]
        stride = args[1] if len(args) > 1 and isinstance(args[1], int) else 0
        return offset + stride * (extents[3] - extents[1]) if stride > 0 else None
    return None


def _without_damaged_ancillary_chunks(data: bytes) -> bytes | None:
    """A PNG's bytes without its ancillary chunks (text, time, ...: a lower-case first letter) whose checksum is
    wrong, which viewers skip; None when it has none (or its chunks cannot be walked)."""
    position, kept, dropped = 8, [data[:8]], False
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 12 + length
        if end > len(data):
            return None
        kind, body = data[position + 4 : position + 8], data[position + 8 : end - 4]
        if kind[:1].islower() and zlib.crc32(kind + body) != int.from_bytes(data[end - 4 : end], "big"):
            dropped = True
        else:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            break
    return b"".join(kept) if dropped else None


def as_8_bit(image: Any) -> Any:
    """``image`` with 16-bit grey pixels (PNG, TIFF) scaled to 8-bit grey, never clipped to white; other modes as
    they are. ``ValueError`` for pixels with no faithful 8-bit form: floating point, values past 16 bits, or a
    16-bit grey with a transparent value (scaling would merge it with its neighbours)."""
    if image.mode == "F":
        raise ValueError("floating-point pixels")
    if image.mode not in _SIXTEEN_BIT_GREY:
        return image
    if "transparency" in image.info:
        raise ValueError("16-bit grey with a transparent value")
    wide = image.convert("I")
    low, high = wide.getextrema()
    if low < 0 or high > 0xFFFF:
        raise ValueError("pixel values past 16 bits")
    return wide.point(lambda value: value * (0xFF / 0xFFFF)).convert("L")


def upscaled_size(width: int, height: int) -> tuple[int, int]:
    """The size a picture of ``width`` x ``height`` is sent at: its longest side made ``TARGET_LONG_SIDE`` when it is
    under ``MIN_LONG_SIDE``, else as it is."""
    if max(width, height) >= MIN_LONG_SIDE:
        return width, height
    scale = TARGET_LONG_SIDE / max(width, height)
    return max(round(width * scale), 1), max(round(height * scale), 1)


def prepare_image(
    source: IO[bytes], name: str, *, note_only: bool = False, upscale: bool = True, opaque: str | None = None
) -> Prepared:
    """The upscaled form of a small image (``source``, the checked bytes of the file called ``name``); large images
    and what Pillow cannot decode are left as they are (``Prepared.content`` None). A file viewers open though it is
    not by the book (``undecodable`` takes it) is upscaled from its picture as they show it: judged by its upscaled
    size, it is sent upscaled. A small picture this cannot upscale (floating-point pixels) is sent at its own size,
    and judged by it (``Prepared.size`` None). ``upscale`` False: never upscaled (an upscaler's input, a mask).
    ``opaque``: the field it goes to takes no transparency (named so, for the note: "wan/3-0-video's
    first_frame_url"), so a picture some of whose pixels are transparent, of any size, is flattened onto white and
    sent as a JPEG, the note saying so; one fully opaque is left as it is. What cannot be flattened here was refused
    before it was priced (``opacity_problem``). ``note_only``: what would be done (the quote says it, and the checks
    before pricing judge the size it gives), without resizing or encoding anything. Call it in a worker thread.
    The note names the file with the API key redacted: a success's answer is not redacted as a whole, and a file
    may be named after the key; and with what would turn the note around escaped (a right-to-left override in the
    name: ``unseen_escaped``), as the confirmation's settings name it."""
    name = unseen_escaped(redact_secrets(name))
    prepared = _prepare(source, name, note_only, upscale, opaque)
    if prepared is None:
        source.seek(0)
        mended = _mended(source.read())
        prepared = _prepare(io.BytesIO(mended), name, note_only, upscale, opaque) if mended is not None else None
    return prepared or Prepared(None, None, None)


def _prepare(source: IO[bytes], name: str, note_only: bool, upscale: bool, opaque: str | None) -> Prepared | None:
    """``prepare_image`` of ``source`` as it is; None when Pillow cannot decode, turn, convert or encode it: any
    failure of Pillow's on a crafted or damaged file (a malformed EXIF tag raised ``struct.error``) means the file is
    sent as it is, never a failed tool."""
    Image = pillow()  # Pillow, loaded with the first image, not at start-up
    try:
        with Image.open(source) as image:
            grow = upscale and max(image.size) < MIN_LONG_SIDE
            flatten = opaque is not None and image.has_transparency_data
            if flatten and not grow and image.size[0] * image.size[1] > DECODE_MAX_PIXELS:  # never decoded whole
                # exactly, a strip at a time, of the picture Pillow reads (a header other than its own: not told)
                found = alpha.transparent(source, image.size) if image.format == "PNG" else None
                said = None if found is False else _unflattened(name, image.size, str(opaque), found)  # opaque: none
                return Prepared(None, None, said)
            if not grow and not flatten:
                return Prepared(None, None, None)
            frames = _frames(image)  # before the first frame is decoded (``upright``)
            turned = upright(image)  # as viewers and the approval card show it
            width, height = turned.size
            try:
                picture = as_8_bit(turned)
            except ValueError as err:
                if not grow:  # a field without transparency refused it before (``opacity_problem``)
                    return Prepared(None, None, None)
                why = f"it has {err}, which an upscaled copy would lose"
                note = f"{name} ({width}x{height} px) is sent as it is, not upscaled: {why}."
                return Prepared(None, None, note, kept=why)
            size = upscaled_size(width, height) if grow else None
            rgba = picture.convert("RGBA") if picture.has_transparency_data else None
            transparent = rgba is not None and rgba.getchannel("A").getextrema()[0] < 0xFF
            if transparent and opaque is not None:
                kept, media, how = _on_white(rgba), JPEG, "JPEG"
            elif transparent:
                kept, media, how = rgba, PNG, "PNG, keeping its transparency"
            elif grow:
                kept, media, how = picture.convert("RGB"), JPEG, "JPEG"
            else:  # a field without transparency, given a picture whose alpha channel is opaque: sent as it is
                return Prepared(None, None, None)
            note = _note(name, (width, height), size, how, opaque if transparent else None, frames)
            if note_only:
                return Prepared(None, media, note, size)
            buffer = io.BytesIO()
            resized = kept.resize(size, Image.Resampling.LANCZOS) if size is not None else kept
            if media is PNG:
                resized.save(buffer, "PNG")
            else:
                resized.save(buffer, "JPEG", quality=JPEG_QUALITY)
    except Exception as err:  # whatever Pillow raises on a file it cannot prepare: sent as it is
        # Pillow cannot decode it (a format it lacks, such as HEIC, or a huge picture: an image that should decode
        # and does not was refused before, ``undecodable``), its mode has no RGB form, or a step failed on what the
        # file holds: sent as it is.
        log.debug("%s is not upscaled, sent as it is: %s: %s", ascii(name), type(err).__name__, err)
        return None
    return Prepared(buffer.getvalue(), media, note, size)


def _frames(image: Any) -> int:
    """How many frames an opened picture holds when it may be an animation (``_ANIMATED_FORMATS``); 1 for a still,
    for any other format, and when its frames cannot be counted (a GIF's are, frame header by frame header)."""
    if image.format not in _ANIMATED_FORMATS:
        return 1
    try:
        return max(int(getattr(image, "n_frames", 1)), 1)
    except Exception:  # a damaged frame past the first: the first is what is sent, and it decoded
        return 1


def _note(
    name: str,
    own: tuple[int, int],
    size: tuple[int, int] | None,
    how: str,
    flattened_for: str | None,
    frames: int = 1,
) -> str:
    """What the quote and the answer say was done to a picture: upscaled (``size``), flattened onto white because
    ``flattened_for`` takes no transparency, or both; and of an animation (``frames``), that only its first frame is
    sent: what is made here is a still."""
    flat = f"its transparent pixels are flattened onto white, because {flattened_for} takes no transparency"
    still = ""
    if frames > 1:
        still = f" It is animated ({frames} frames): only its first frame is sent, as a still picture."
    if size is None:
        return f"{name} ({own[0]}x{own[1]} px) is sent as {how} without transparency: {flat}.{still}"
    also = f"; {flat}" if flattened_for is not None else ""
    return (
        f"{name} ({own[0]}x{own[1]} px) is upscaled (Lanczos) to {size[0]}x{size[1]} px before upload and sent as "
        f"{how}, because small inputs are often rejected or blurry{also}.{still}"
    )


def _unflattened(name: str, own: tuple[int, int], opaque: str, transparent: bool | None) -> str:
    """What the quote says of a picture with an alpha channel too large to decode for a field that takes no
    transparency, sent as it is: its transparency unchecked (``transparent`` None: a format or a kind of PNG that
    ``alpha`` does not read), or found (True; ``opacity_problem`` refuses it before, so said only should that
    change). One found opaque gets no note: it is what the field takes."""
    if transparent:
        why = f"some of its pixels are transparent, and at more than {DECODE_MAX_PIXELS / 1e6:g} megapixels kie-mcp"
        return (
            f"{name} ({own[0]}x{own[1]} px) is sent as it is: {why} does not decode it whole to flatten them. "
            f"{opaque} takes no transparency, so KIE may refuse it."
        )
    return (
        f"{name} ({own[0]}x{own[1]} px) is sent as it is: it has an alpha channel, and at more than "
        f"{DECODE_MAX_PIXELS / 1e6:g} megapixels kie-mcp does not decode it to see whether any pixel is transparent. "
        f"{opaque} takes no transparency, so KIE may refuse it if some pixel is (flattened onto a background and "
        "saved as JPEG, it is sure to be taken)."
    )


def _on_white(rgba: Any) -> Any:
    """An RGBA picture laid on white, as an RGB one: each pixel's colour in its proportion to its opacity, white for
    the rest (a transparent pixel's hidden colour never shows)."""
    white = pillow().new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return white


def opacity_problem(source: IO[bytes]) -> str | None:
    """Why the picture in ``source`` cannot be flattened here for a field that takes no transparency, said after its
    name ("photo.png has transparent pixels, ..."): it may have transparent pixels and is 16-bit grey with a
    transparent value (no faithful 8-bit form, ``as_8_bit``); or it is a PNG past ``DECODE_MAX_PIXELS``, never
    decoded whole, whose transparent pixels an exact read in strips finds (``alpha.transparent``). None when it has
    no transparency data, can be flattened as it is sent (``prepare_image``), is too large to decode and is found
    opaque or cannot be read so (sent as it is; the quote says its transparency was not checked), or Pillow cannot
    read it (left to KIE). Reads its header, and all of a PNG too large to decode (a strip at a time): call it in a
    worker thread."""
    try:
        with pillow().open(source) as image:
            if not image.has_transparency_data:
                return None
            if image.mode in _SIXTEEN_BIT_GREY:
                return (
                    "may have transparent pixels (it is 16-bit grey with a transparent value, which kie-mcp cannot "
                    "flatten without losing greys)"
                )
            width, height = image.size
            large = image.format == "PNG" and width * height > DECODE_MAX_PIXELS
    except Exception:  # a header Pillow cannot read: left to KIE, as its pixels are
        return None
    if large and alpha.transparent(source, (width, height)):
        return (
            f"has transparent pixels, and at {width}x{height} px, more than {DECODE_MAX_PIXELS / 1e6:g} megapixels, "
            "kie-mcp does not decode it whole to flatten them onto white (a smaller picture it flattens itself)"
        )
    return None


# How each EXIF orientation (2 to 8) is undone: the picture as viewers show it (``ImageOps.exif_transpose``'s table).
_UPRIGHT = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


def upright(image: Any) -> Any:
    """An opened image decoded and turned as its EXIF orientation says (as viewers show it), or as it is when it has
    none or the tag cannot be read. Only the orientation is read, never the EXIF block written again:
    ``ImageOps.exif_transpose`` rewrites it, and a photo with one tag not of its declared type (text where a number
    belongs) failed there (``struct.error``). What is sent is encoded again without metadata: nothing else of the
    EXIF is needed."""
    image.load()
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # an EXIF block Pillow cannot read: nothing turned is known
        return image
    method = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(pillow().Transpose[method])
