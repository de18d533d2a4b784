"""Whether a PNG has a transparent pixel, told exactly without decoding it whole.

A field that takes no transparency (``MediaLimits.opaque``) gets a picture with transparent pixels flattened onto
white (``prepare``), which decodes it; past ``prepare.DECODE_MAX_PIXELS`` a picture is never decoded (Pillow decodes
all of a PNG to read its alpha: 80 MB for a 20-megapixel one, more with each megapixel), so such a picture was sent
unchecked. A PNG can still be read exactly in bounded memory:

* **One byte plane.** A PNG row is filtered byte by byte, each byte against the same byte of the pixel to its left
  and of the row above (PNG's filters: None, Sub, Up, Average, Paeth). So each byte of a pixel, such as its alpha,
  forms a plane of its own: a greyscale 8-bit picture with the very same filters. A 16-bit alpha is read by its high
  byte, as Pillow reads it (``RGBA;16B``), so the verdict is the one a whole decode would give. A palette's indices
  below 8 bits are their packed bytes, one plane, unpacked once decoded.
* **Pillow decodes it, in strips.** Each strip of rows of a plane is handed to Pillow's own PNG decoder as a small
  greyscale PNG (stored, not compressed again), its first row the previous strip's last as decoded, unfiltered, so
  the next row's filter finds the row above it. Nothing is unfiltered in Python, and at most ``STRIP_BYTES`` of rows
  (one row when it is longer, never past ``MAX_ROW_BYTES``) and their planes are held at once; the image data is
  inflated only as far as each strip needs (``zlib.decompressobj`` with a bound), so a compression bomb inflates no
  further than its rows, and its IDAT chunks are walked one at a time as their data is taken.
* **Read as Pillow reads it.** Its header is its first chunk, its ``tRNS`` one before its image data, its image data
  the first run of IDAT chunks (what follows is not looked at: a header spliced in after the image data, which
  Pillow ignores, is never believed), and ``prepare`` passes the size Pillow read: a header other than that is not
  told.
* **What is transparent**, as Pillow reads it: an alpha (grey or colour with alpha, 8 or 16 bits) under 255, a used
  palette entry whose ``tRNS`` alpha is under 255, an 8-bit grey or RGB pixel of the ``tRNS`` colour. Adam7-interlaced
  pictures are read pass by pass. Past ``MAX_PIXELS``, a colour key on 16-bit RGB or on grey under 8 bits, data
  that does not inflate to its rows within its first run of IDAT chunks, or an odd file (a first chunk other than
  its header, a second header or ``tRNS`` before its image data, a row longer than ``MAX_ROW_BYTES``), is not told
  (None): the picture stays unchecked, as before.

A 20-megapixel RGBA export of noise takes about 2 s on a busy 2-core machine, most of it inflating its 80 MB of
rows (as any decode does; a flat picture inflates faster), and some 15 MB; the verdict is remembered by content, as
a request's checks, its quote and its upload each ask.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .sniff import pillow

log = logging.getLogger(__name__)

STRIP_BYTES = 4 << 20  # the filtered rows of a strip at most (one row when a row alone is longer)
MAX_ROW_BYTES = 4 << 20  # a longer row is not read (None): a strip holds one row at least
# Past this a picture is left unchecked (seconds of inflating): the most any field without transparency takes (Wan's
# frames: 8000 px a side), a picture past its field's pixels being refused first.
MAX_PIXELS = 64_000_000
_READ = 1 << 20  # compressed data read at a time
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type: grey, RGB, palette, grey and alpha, RGBA
# Adam7's passes: first column, column step, first row, row step
_ADAM7 = ((0, 8, 0, 8), (4, 8, 0, 8), (0, 4, 4, 8), (2, 4, 0, 4), (0, 2, 2, 4), (1, 2, 0, 2), (0, 1, 1, 2))

_VERDICTS: dict[tuple[str, tuple[int, int] | None], bool | None] = {}  # by the file's SHA-256 and the size asked
_VERDICTS_KEPT = 256
_UNREAD: Any = object()


@dataclass(frozen=True)
class _Layout:
    """What of a PNG its rows are read by: its header, its ``tRNS`` chunk and where its image data begins."""

    width: int
    height: int
    depth: int
    colour: int
    interlaced: bool
    trns: bytes | None
    idat: int  # where its first IDAT chunk begins (its length): the image data is the run of IDAT chunks from there


def transparent(source: IO[bytes], size: tuple[int, int] | None = None) -> bool | None:
    """Whether the PNG in ``source`` has a transparent pixel, as Pillow would decode it: True or False, told exactly;
    None when it cannot be told here (not a PNG, a header other than ``size``, Pillow's reading of it, a kind of
    transparency not read here, data that does not inflate to its rows, a row longer than ``MAX_ROW_BYTES``, more
    than ``MAX_PIXELS``). Never raises on a damaged or crafted file. Reads all of it, holding at most a strip of it:
    call it in a worker thread."""
    try:
        key = (_digest(source), size)
        known = _VERDICTS.get(key, _UNREAD)  # one read: another thread may clear the dict meanwhile
        if known is not _UNREAD:
            return known
        layout = _layout(source)
        if layout is not None and size is not None and (layout.width, layout.height) != size:
            layout = None  # not the picture Pillow reads (a crafted file): not told
        verdict = None if layout is None else _scan(source, layout)
    except Exception as err:  # a damaged or crafted file: not told, never an error of the tool
        log.debug("transparency not told: %s: %s", type(err).__name__, err)
        return None
    if len(_VERDICTS) >= _VERDICTS_KEPT:
        _VERDICTS.clear()
    _VERDICTS[key] = verdict
    return verdict


def _digest(source: IO[bytes]) -> str:
    source.seek(0)
    digest = hashlib.sha256()
    while piece := source.read(_READ):
        digest.update(piece)
    return digest.hexdigest()


def _layout(source: IO[bytes]) -> _Layout | None:
    """The header, ``tRNS`` and first image data chunk of the PNG in ``source``, read as a decoder does: its header
    the first chunk, a ``tRNS`` before its image data; chunk headers read up to its first IDAT, their data skipped.
    None when it is not a PNG this reads, or an odd one (a second header or ``tRNS``, as a crafted file has: which
    one a decoder believes is its own choice)."""
    source.seek(0)
    if source.read(8) != _SIGNATURE:
        return None
    head = source.read(8)
    if len(head) != 8 or struct.unpack(">I4s", head) != (13, b"IHDR"):
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", source.read(13))
    source.seek(4, io.SEEK_CUR)
    trns = None
    while len(head := source.read(8)) == 8:
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IDAT":
            break
        if kind in (b"IHDR", b"IEND") or (kind == b"tRNS" and (trns is not None or length > 1024)):
            return None  # a second header, no image data, a second colour key: not told
        if kind == b"tRNS":
            trns = source.read(length)
            source.seek(4, io.SEEK_CUR)
        else:
            source.seek(length + 4, io.SEEK_CUR)
    else:
        return None  # no image data
    if colour not in _CHANNELS or width * height > MAX_PIXELS or not width or not height:
        return None
    return _Layout(width, height, depth, colour, interlace == 1, trns, source.tell() - 8)


def _scan(source: IO[bytes], layout: _Layout) -> bool | None:
    """``transparent`` of a PNG laid out as ``layout``: its planes read strip by strip, pass by pass."""
    judged = _judge(layout)
    if judged is None:
        return None
    planes, judge = judged
    bits = _CHANNELS[layout.colour] * layout.depth
    step = max(bits // 8, 1)  # bytes a pixel's filter looks back (one below 8 bits)
    rows = _Inflated(source, layout.idat)
    for width, height in _passes(layout):
        stride = (width * bits + 7) // 8
        size = 1 + stride  # a filter byte, then the row
        if size > MAX_ROW_BYTES:
            return None  # a row too long to hold (a crafted header: 64 million pixels in one row is 512 MB)
        at_once = max(1, STRIP_BYTES // size)
        above: list[bytes | None] = [None] * len(planes)
        done = 0
        while done < height:
            count = min(at_once, height - done)
            block = rows.take(count * size)
            if block is None:
                return None  # the data ends before its rows do
            strips = []
            for n, plane in enumerate(planes):  # each row's filter byte, then this plane's bytes of its pixels
                cut = [
                    block[r * size : r * size + 1] + block[r * size + 1 + plane : (r + 1) * size : step]
                    for r in range(count)
                ]
                across = len(cut[0]) - 1
                strips.append(_decoded(across, cut, above[n]))
                above[n] = strips[-1][-across:]  # the last row, as decoded: the row above the next strip's first
            if judge(strips, width, count):
                return True
            done += count
    return False


def _decoded(width: int, rows: Sequence[bytes], above: bytes | None) -> bytes:
    """The bytes of ``rows`` of a greyscale 8-bit plane (each a filter byte and ``width`` bytes) once unfiltered by
    Pillow's PNG decoder, ``above`` the row before them as decoded (None: they are the first)."""
    lines = list(rows) if above is None else [b"\0" + above, *rows]
    header = struct.pack(">IIBBBBB", width, len(lines), 8, 0, 0, 0, 0)
    png = b"".join(
        (_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", zlib.compress(b"".join(lines), 0)), _chunk(b"IEND", b""))
    )
    with pillow().open(io.BytesIO(png), formats=("PNG",)) as image:
        image.load()
        data = image.tobytes()
    return data if above is None else data[width:]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _passes(layout: _Layout) -> Iterator[tuple[int, int]]:
    """The width and height of each pass's sub-picture: the whole picture, or Adam7's seven (empty ones left out)."""
    if not layout.interlaced:
        yield layout.width, layout.height
        return
    for column, across, row, down in _ADAM7:
        width = (layout.width - column + across - 1) // across if layout.width > column else 0
        height = (layout.height - row + down - 1) // down if layout.height > row else 0
        if width and height:
            yield width, height


Judge = Callable[[list[bytes], int, int], bool]


def _judge(layout: _Layout) -> tuple[tuple[int, ...], Judge] | None:
    """The byte planes to read of a pixel (offsets in it), and what says a strip of them holds a transparent pixel
    (given the planes' unfiltered bytes, the pass's width and the strip's rows); None for a kind not read here."""
    colour, depth, trns = layout.colour, layout.depth, layout.trns
    if colour in (4, 6) and depth in (8, 16):
        alpha = (_CHANNELS[colour] - 1) * (depth // 8)  # its high byte at 16 bits

        def under_255(planes: list[bytes], width: int, rows: int) -> bool:
            return planes[0].count(0xFF) < len(planes[0])

        return (alpha,), under_255
    if colour == 3 and trns and depth in (1, 2, 4, 8):
        clear = [n for n, value in enumerate(trns[:256]) if value < 0xFF]
        rawmode = "P" if depth == 8 else f"P;{depth}"

        def used_clear(planes: list[bytes], width: int, rows: int) -> bool:
            counts = pillow().frombytes("P", (width, rows), planes[0], "raw", rawmode).histogram()
            return any(counts[n] for n in clear)

        return (0,), used_clear
    if colour in (0, 2) and depth == 8 and trns is not None and len(trns) == 2 * _CHANNELS[colour]:
        keys = [int.from_bytes(trns[n * 2 : n * 2 + 2], "big") for n in range(_CHANNELS[colour])]

        def keyed(planes: list[bytes], width: int, rows: int) -> bool:
            if any(key > 0xFF or key not in plane for key, plane in zip(keys, planes, strict=True)):
                return False  # a value no 8-bit pixel has, or one this strip never shows
            if len(planes) == 1:
                return True
            from PIL import ImageChops

            Image = pillow()
            masks = [
                Image.frombytes("L", (width, rows), plane).point([0xFF if v == key else 0 for v in range(256)])
                for key, plane in zip(keys, planes, strict=True)
            ]
            both = ImageChops.darker(ImageChops.darker(masks[0], masks[1]), masks[2])  # each band the key's
            return both.getextrema()[1] == 0xFF

        return tuple(range(_CHANNELS[colour])), keyed
    return None


class _Inflated:
    """The image data of a PNG (its run of IDAT chunks, read ``_READ`` at a time), inflated only as far as it is
    taken."""

    def __init__(self, source: IO[bytes], idat: int) -> None:
        self._pieces = _pieces(source, idat)
        self._inflate = zlib.decompressobj()
        self._tail = b""

    def take(self, size: int) -> bytes | None:
        """The next ``size`` bytes of the inflated data; None when it ends before them."""
        held = bytearray()
        while len(held) < size:
            if not self._tail:
                self._tail = next(self._pieces, b"")
                if not self._tail:
                    return None
            held += self._inflate.decompress(self._tail, size - len(held))
            self._tail = self._inflate.unconsumed_tail
        return bytes(held)


def _pieces(source: IO[bytes], start: int) -> Iterator[bytes]:
    """The data of the run of IDAT chunks from ``start``, walked a chunk at a time as it is taken (a file of a
    million empty chunks holds no list of them): it ends at the first other chunk, as Pillow's image data does."""
    offset = start
    while True:
        source.seek(offset)
        head = source.read(8)
        if len(head) != 8:
            return
        length, kind = struct.unpack(">I4s", head)
        if kind != b"IDAT":
            return
        left = length
        while left > 0:
            piece = source.read(min(left, _READ))
            if not piece:
                return
            left -= len(piece)
            yield piece
        offset += 12 + length
