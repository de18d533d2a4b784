"""media.alpha: whether a PNG too large to decode has a transparent pixel, told exactly and in bounded memory.

Pictures are written here by a small PNG encoder that picks each row's filter at random (None, Sub, Up, Average,
Paeth), so every filter meets every colour type, bit depth and interlacing; the verdict is compared with what
Pillow's whole decode gives, which is what decides flattening for a smaller picture (``media.prepare``).
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from kie_mcp.media import alpha

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
DEPTHS = {0: [8, 1, 2, 4], 2: [8], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered(kind: int, row: bytes, above: bytes | None, step: int) -> bytes:
    out = bytearray([kind])
    for i, x in enumerate(row):
        a = row[i - step] if i >= step else 0
        b = above[i] if above else 0
        c = above[i - step] if above and i >= step else 0
        out.append((x - (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) & 0xFF)
    return bytes(out)


def encode(
    size: tuple[int, int],
    depth: int,
    colour: int,
    pixel: Callable[[int, int], tuple[int, ...]],
    interlaced: bool,
    rng: random.Random,
    trns: bytes | None = None,
) -> bytes:
    """A PNG of ``pixel(x, y)``'s samples, each row filtered by a filter picked at random, its data in many IDATs."""
    width, height = size
    bits = CHANNELS[colour] * depth
    step = max(bits // 8, 1)
    data = bytearray()
    for column, across, row, down in alpha._ADAM7 if interlaced else ((0, 1, 0, 1),):
        xs, ys = range(column, width, across), range(row, height, down)
        above = None
        for y in ys if xs else ():
            packed, held, line = 0, 0, bytearray()
            for x in xs:
                for sample in pixel(x, y):
                    if depth >= 8:
                        line += sample.to_bytes(depth // 8, "big")
                        continue
                    packed, held = (packed << depth) | sample, held + depth
                    if held == 8:
                        line.append(packed)
                        packed, held = 0, 0
            if held:
                line.append(packed << (8 - held))
            data += _filtered(rng.randrange(5), bytes(line), above, step)
            above = bytes(line)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlaced))
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    if colour == 3:
        out += _chunk(b"PLTE", bytes(rng.randrange(256) for _ in range(3 << depth)))
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    packed_data = zlib.compress(bytes(data))
    out += b"".join(_chunk(b"IDAT", packed_data[i : i + 97]) for i in range(0, len(packed_data), 97))
    return out + _chunk(b"IEND", b"")


def decoded_verdict(png: bytes) -> bool:
    """What ``media.prepare`` finds decoding the picture whole: a pixel whose alpha is under 255."""
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return image.has_transparency_data and image.convert("RGBA").getchannel("A").getextrema()[0] < 0xFF


def random_picture(seed: int) -> tuple[bytes, str]:
    """A small random PNG of any colour type, bit depth and interlacing; half of them with one transparent pixel
    (or, for a 16-bit alpha, one just under opaque), the rest with none."""
    rng = random.Random(seed)
    colour = rng.choice(list(CHANNELS))
    depth = rng.choice(DEPTHS[colour])
    size = (rng.randrange(1, 40), rng.randrange(1, 40))
    top, spot, marked = (1 << depth) - 1, (rng.randrange(size[0]), rng.randrange(size[1])), rng.random() < 0.5
    interlaced = rng.random() < 0.5
    trns = None
    if colour in (4, 6):
        clear = rng.choice([0, top - 1, 0xFF00, 0xFEFF] if depth == 16 else [0, top - 1])

        def pixel(x: int, y: int) -> tuple[int, ...]:
            grey = [rng.randrange(top + 1) for _ in range(CHANNELS[colour] - 1)]
            return (*grey, clear if marked and (x, y) == spot else top)
    elif colour == 3:
        entries = 1 << depth
        clear = rng.randrange(entries)
        trns = bytes(0xFF if n != clear else rng.choice([0, 254]) for n in range(rng.randrange(clear + 1, entries + 1)))

        def pixel(x: int, y: int) -> tuple[int, ...]:
            index = rng.randrange(entries)
            return (clear,) if marked and (x, y) == spot else ((index + 1) % entries if index == clear else index,)
    else:
        key = [rng.randrange(top + 1) for _ in range(CHANNELS[colour])]
        trns = b"".join(value.to_bytes(2, "big") for value in key)

        def pixel(x: int, y: int) -> tuple[int, ...]:
            if marked and (x, y) == spot:
                return tuple(key)
            near = list(key)  # a colour one sample off the key: never transparent
            near[rng.randrange(len(near))] ^= 1
            return tuple(near) if rng.random() < 0.3 else tuple((v + 1) % (top + 1) for v in key)

    label = f"colour {colour}, {depth}-bit, {size[0]}x{size[1]}, interlaced={interlaced}"
    return encode(size, depth, colour, pixel, interlaced, rng, trns), label


@pytest.mark.parametrize("strip", [1, 37, alpha.STRIP_BYTES])  # a row a strip, a few rows, all at once
def test_the_verdict_read_a_strip_at_a_time_is_the_whole_decodes_for_every_filter_depth_and_interlacing(
    monkeypatch, strip
):
    """The exact check that decides flattening past 16 megapixels: for 300 random pictures, every row filtered by a
    filter picked at random, it finds a transparent pixel exactly where Pillow's whole decode does (a 16-bit alpha
    by its high byte, as Pillow reads it). A colour key on grey under 8 bits is the one kind not told (None)."""
    monkeypatch.setattr(alpha, "STRIP_BYTES", strip)
    told = 0
    for seed in range(300):
        png, label = random_picture(seed)
        found = alpha.transparent(io.BytesIO(png))
        if found is None:
            assert label.startswith("colour 0,") and not label.startswith("colour 0, 8-bit"), label
            continue
        told += 1
        assert found is decoded_verdict(png), (seed, label, found)
    assert told > 200


def test_damaged_or_crafted_data_is_not_told_and_never_raises():
    rng = random.Random(7)
    png = encode((30, 20), 8, 6, lambda x, y: (1, 2, 3, 0xFF), False, rng)
    start = png.index(b"IDAT") - 4
    cut = png[: start + 40] + _chunk(b"IEND", b"")  # its data ends before its rows
    garbage = png[:start] + _chunk(b"IDAT", b"not deflate at all") + _chunk(b"IEND", b"")
    bad_filter = png[:start] + _chunk(b"IDAT", zlib.compress(b"\x09" + b"\xff" * 120)) + _chunk(b"IEND", b"")
    header = struct.pack(">IIBBBBB", 9000, 9000, 8, 6, 0, 0, 0)  # past MAX_PIXELS: left unchecked
    huge = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + png[start:]
    for damaged in (cut, garbage, bad_filter, huge, b"GIF89a", b""):
        assert alpha.transparent(io.BytesIO(damaged)) is None
    assert alpha.transparent(io.BytesIO(png)) is False


_MEASURED = (
    "import resource, sys\n"
    "from kie_mcp.media import alpha, sniff\n"
    "sniff.pillow()\n"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "with open(sys.argv[1], 'rb') as source:\n"
    "    found = alpha.transparent(source)\n"
    "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
    "print(found, grown // 1024)\n"
)


def _checked_in_a_fresh_process(path) -> tuple[str, int]:
    """The verdict on the PNG at ``path`` and how many MB the check's process grew by (its peak resident size)."""
    done = subprocess.run([sys.executable, "-c", _MEASURED, str(path)], capture_output=True, text=True, check=True)
    found, grown_mb = done.stdout.split()
    return found, int(grown_mb)


def test_a_large_png_is_read_in_bounded_memory(tmp_path):
    """A 60-megapixel RGBA PNG (its last pixel transparent) decoded whole takes 240 MB; read a strip at a time, the
    check's process grows by a few tens of MB at most (measured in a fresh process: its peak resident size)."""
    width, height = 8000, 7500
    path = tmp_path / "poster.png"
    squeeze = zlib.compressobj(6)
    row = b"\0" + b"\x10\x80\x10\xff" * width
    last = b"\0" + b"\x10\x80\x10\xff" * (width - 1) + b"\x10\x80\x10\x00"
    data = b"".join(squeeze.compress(row) for _ in range(height - 1)) + squeeze.compress(last) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    found, grown_mb = _checked_in_a_fresh_process(path)
    assert found == "True" and grown_mb < 60, (found, grown_mb)


def _png(header: tuple[int, int, int, int], *chunks: bytes) -> bytes:
    """A PNG whose IHDR says ``header`` (width, height, bit depth, colour type), then ``chunks`` and its end."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", *header, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(chunks) + _chunk(b"IEND", b"")


def _one_long_row(width: int) -> bytes:
    """One 16-bit RGBA row of ``width`` opaque white pixels, deflated a MB at a time (never held whole here)."""
    squeeze, white = zlib.compressobj(9), b"\xff" * (1 << 20)
    data = [squeeze.compress(b"\0")]
    for done in range(0, width * 8, len(white)):
        data.append(squeeze.compress(white[: width * 8 - done]))
    return b"".join(data) + squeeze.flush()


def test_a_crafted_header_a_long_row_or_a_million_empty_chunks_never_take_more_than_a_strip(tmp_path):
    """The review: a 0.5 MB PNG whose second IHDR, after its image data (Pillow ignores it), says 16 million x 1
    pixels of 16-bit RGBA made the check inflate one 128 MB row (64 million: a GB); so did one whose only header says
    so; and a PNG of a million empty IDAT chunks made it list them all (50 MB). Its header is its first chunk, a row
    longer than ``MAX_ROW_BYTES`` is not read (not told), and IDAT chunks are walked as their data is taken: each
    check's process grows by less than 30 MB (a strip), and a spliced header is never what is judged."""
    wide = _one_long_row(16_000_000)
    rows = zlib.compress((b"\0" + b"\xff" * 8000 * 4) * 600, 9)
    empty = _chunk(b"IDAT", b"") * 1_000_000
    crafted = {
        "spliced.png": _png(
            (5000, 4000, 8, 6),
            _chunk(b"IDAT", wide),
            _chunk(b"IHDR", struct.pack(">IIBBBBB", 16_000_000, 1, 16, 6, 0, 0, 0)),
        ),
        "wide.png": _png((16_000_000, 1, 16, 6), _chunk(b"IDAT", wide)),
        "empty_after.png": _png((8000, 600, 8, 6), _chunk(b"IDAT", rows), empty),
        "empty_before.png": _png((8000, 600, 8, 6), empty, _chunk(b"IDAT", rows)),
    }
    told = {}
    for name, png in crafted.items():
        (tmp_path / name).write_bytes(png)
        found, grown_mb = _checked_in_a_fresh_process(tmp_path / name)
        assert grown_mb < 30, (name, found, grown_mb)
        told[name] = found
    assert told == {"spliced.png": "None", "wide.png": "None", "empty_after.png": "False", "empty_before.png": "False"}


def test_only_the_first_chunk_is_the_header_and_only_the_first_run_of_image_data_is_read():
    """The review: a 1x1 IHDR spliced in after a transparent picture's image data (Pillow reads the picture, its
    first header) made the check judge a 1x1 picture, opaque, and the picture was sent unchecked, nothing said. The
    header is the first chunk, whatever follows the image data; a picture with a second header or ``tRNS`` before
    its image data, a first chunk other than its header, image data broken by another chunk, or a header other than
    the size Pillow read (``prepare`` passes it) is not told (None)."""
    rng = random.Random(11)
    png = encode((30, 20), 8, 6, lambda x, y: (9, 9, 9, 0 if (x, y) == (29, 19) else 0xFF), False, rng)
    end = png.rindex(b"IEND") - 4
    first_data = png.index(b"IDAT") - 4
    tiny = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
    assert alpha.transparent(io.BytesIO(png[:end] + tiny + png[end:])) is True
    assert alpha.transparent(io.BytesIO(png[:end] + tiny + png[end:]), (30, 20)) is True
    assert alpha.transparent(io.BytesIO(png), (20, 30)) is None  # not the picture Pillow read
    assert alpha.transparent(io.BytesIO(png[:first_data] + tiny + png[first_data:])) is None
    texted = png[:8] + _chunk(b"tEXt", b"Title\0logo") + png[8:]
    assert alpha.transparent(io.BytesIO(texted)) is None
    rows = (b"\0" + b"\x09\x09\x09\xff" * 30) * 19 + b"\0" + b"\x09\x09\x09\xff" * 29 + b"\x09\x09\x09\x00"
    data, text = zlib.compress(rows, 0), _chunk(b"tEXt", b"Title\0logo")
    whole = _png((30, 20, 8, 6), _chunk(b"IDAT", data[:300]), _chunk(b"IDAT", data[300:]), text)
    broken = _png((30, 20, 8, 6), _chunk(b"IDAT", data[:300]), text, _chunk(b"IDAT", data[300:]))
    assert alpha.transparent(io.BytesIO(whole)) is True
    assert alpha.transparent(io.BytesIO(broken)) is None  # its data ends with the first run of IDAT chunks
    grey = _png(
        (2, 1, 8, 0),
        _chunk(b"tRNS", b"\0\x05"),
        _chunk(b"tRNS", b"\0\x07"),
        _chunk(b"IDAT", zlib.compress(b"\0\x05\x07")),
    )
    assert alpha.transparent(io.BytesIO(grey)) is None  # two colour keys: which one a decoder believes is its own
    assert alpha.transparent(io.BytesIO(grey.replace(b"\0\x07", b"\0\x09", 1))) is None


def test_a_transparent_pixel_anywhere_in_an_interlaced_picture_is_found(monkeypatch):
    """Adam7 sends a picture in seven passes, each its own rows: a transparent pixel only the last pass holds (an odd
    row) is found, as one only the first holds (the top-left pixel)."""
    monkeypatch.setattr(alpha, "STRIP_BYTES", 64)
    rng = random.Random(3)
    for spot in ((0, 0), (5, 7), (13, 9)):
        png = encode((16, 10), 8, 6, lambda x, y, s=spot: (9, 9, 9, 0 if (x, y) == s else 0xFF), True, rng)
        assert alpha.transparent(io.BytesIO(png)) is True, spot
    opaque = encode((16, 10), 8, 6, lambda x, y: (9, 9, 9, 0xFF), True, rng)
    assert alpha.transparent(io.BytesIO(opaque)) is False
