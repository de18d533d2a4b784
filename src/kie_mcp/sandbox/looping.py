"""A shipped sandbox clip made as long as the request asked, without ffmpeg: its samples repeated, then trimmed.

The simulator ships 2 s clips (``clips/``). A request for an 8 s video should give an 8 s video, so that what the
user sees in the sandbox (a saved clip's measured length, captions offset by it, a joined reel, a per-second price
of a sandbox result used as an input) matches what KIE would make. Each clip starts with a key frame and holds one
group of pictures, so its samples played again from the start decode as they did the first time: the media data is
repeated ``k`` times, every sample table (``stts``, ``ctts``, ``stsz``, ``stsc``, ``stco``, ``stss``, ``sbgp``,
``sdtp``) is repeated with its sample and chunk numbers and file offsets moved on, and the edit list trims what is
shown to the exact length asked (as ffmpeg does when it cuts without re-encoding). Durations in ``mvhd``, ``tkhd``
and ``mdhd`` follow. Anything this does not expect (a box it does not know inside a sample table, several edits, a
``moov`` after the media) raises ``Unloopable``; the caller then serves the clip as it is.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
# Sample-table boxes whose contents do not depend on how many samples there are.
_KEPT_AS_IS = {b"stsd", b"sgpd", b"cslg"}
MAX_COPIES = 75  # 150 s of a 2 s clip: a Veo clip extended 20 times (8 + 20 × 7 = 148 s), longer than any one task


class Unloopable(ValueError):
    """The clip has a layout this module does not rewrite."""


@dataclass
class _Box:
    kind: bytes
    payload: bytes = b""  # a leaf's contents after its 8-byte header
    children: list[_Box] = field(default_factory=list)

    def find(self, kind: bytes) -> _Box | None:
        return next((child for child in self.children if child.kind == kind), None)

    def encode(self) -> bytes:
        body = b"".join(child.encode() for child in self.children) if self.kind in _CONTAINERS else self.payload
        return struct.pack(">I4s", 8 + len(body), self.kind) + body


def _parse(data: bytes, start: int, end: int) -> list[_Box]:
    boxes, offset = [], start
    while offset < end:
        if offset + 8 > end:
            raise Unloopable("truncated box header")
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size < 8 or offset + size > end:  # 64-bit or to-the-end sizes: never in the shipped clips
            raise Unloopable(f"box {kind!r} has a size this does not handle")
        if kind in _CONTAINERS:
            boxes.append(_Box(kind, children=_parse(data, offset + 8, offset + size)))
        else:
            boxes.append(_Box(kind, payload=data[offset + 8 : offset + size]))
        offset += size
    return boxes


def _entries(payload: bytes, head: int, width: int) -> tuple[bytes, list[bytes]]:
    """A full box's fixed part (``head`` bytes, the entry count last) and its entries of ``width`` bytes."""
    (count,) = struct.unpack_from(">I", payload, head - 4)
    if len(payload) != head + count * width:
        raise Unloopable("sample table of an unexpected length")
    return payload[:head], [payload[head + n * width : head + (n + 1) * width] for n in range(count)]


def _table(head: bytes, entries: list[bytes]) -> bytes:
    return head[:-4] + struct.pack(">I", len(entries)) + b"".join(entries)


def _repeated(box: _Box, copies: int, samples: int, chunks: int, moved: Callable[[int, int], int]) -> None:
    """Rewrite one sample-table box for ``copies`` plays of its track."""
    kind, data = box.kind, box.payload
    if kind in (b"stts", b"ctts"):
        head, rows = _entries(data, 8, 8)
        box.payload = _table(head, rows * copies)
    elif kind == b"stsz":
        (uniform, count) = struct.unpack_from(">II", data, 4)
        if uniform:
            box.payload = data[:8] + struct.pack(">I", count * copies)
        else:
            box.payload = data[:8] + struct.pack(">I", count * copies) + data[12:] * copies
    elif kind == b"stsc":
        head, rows = _entries(data, 8, 12)
        box.payload = _table(
            head,
            [
                struct.pack(">I", struct.unpack_from(">I", row)[0] + copy * chunks) + row[4:]
                for copy in range(copies)
                for row in rows
            ],
        )
    elif kind in (b"stco", b"co64"):
        width, code = (4, ">I") if kind == b"stco" else (8, ">Q")
        head, rows = _entries(data, 8, width)
        offsets = [struct.unpack(code, row)[0] for row in rows]
        box.payload = _table(head, [struct.pack(code, moved(o, copy)) for copy in range(copies) for o in offsets])
    elif kind == b"stss":
        head, rows = _entries(data, 8, 4)
        numbers = [struct.unpack(">I", row)[0] for row in rows]
        box.payload = _table(head, [struct.pack(">I", n + copy * samples) for copy in range(copies) for n in numbers])
    elif kind == b"sbgp":
        head, rows = _entries(data, 16 if data[0] == 1 else 12, 8)
        box.payload = _table(head, rows * copies)
    elif kind == b"sdtp":
        box.payload = data[:4] + data[4:] * copies
    elif kind not in _KEPT_AS_IS:
        raise Unloopable(f"sample table box {kind!r}")


def _durations(payload: bytes, at_v0: int, at_v1: int) -> tuple[int, int]:
    """(offset, width) of the duration field of an mvhd/tkhd/mdhd payload, by its version."""
    return (at_v1, 8) if payload[0] == 1 else (at_v0, 4)


def _get(payload: bytes, where: tuple[int, int]) -> int:
    offset, width = where
    return struct.unpack_from(">Q" if width == 8 else ">I", payload, offset)[0]


def _set(payload: bytes, where: tuple[int, int], value: int) -> bytes:
    offset, width = where
    if width == 4 and value > 0xFFFFFFFF:
        raise Unloopable("a duration too long for a version-0 box")
    return payload[:offset] + struct.pack(">Q" if width == 8 else ">I", value) + payload[offset + width :]


def loop_clip(clip: bytes, seconds: float) -> bytes:
    """``clip`` (an MP4 with ``moov`` before ``mdat``) played for ``seconds``: repeated, then trimmed by its edit
    lists. Raises ``Unloopable`` for a layout it does not handle."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise Unloopable(f"cannot make a clip {seconds!r} s long")
    top = _parse(clip, 0, len(clip))
    kinds = [box.kind for box in top]
    if b"moov" not in kinds or b"mdat" not in kinds or kinds.index(b"moov") > kinds.index(b"mdat"):
        raise Unloopable("the clip's moov must come before its mdat")
    if kinds.count(b"mdat") != 1:
        raise Unloopable("one mdat expected")
    moov = top[kinds.index(b"moov")]
    mvhd = moov.find(b"mvhd")
    if mvhd is None:
        raise Unloopable("no mvhd")
    movie_scale = struct.unpack_from(">I", mvhd.payload, 20 if mvhd.payload[0] == 1 else 12)[0]
    movie_where = _durations(mvhd.payload, 16, 24)
    clip_units = _get(mvhd.payload, movie_where)
    if not movie_scale or not clip_units:
        raise Unloopable("the clip has no length")
    shown = max(1, round(seconds * movie_scale))
    copies = max(1, math.ceil(shown / clip_units))
    if copies > MAX_COPIES:
        raise Unloopable(f"{seconds:g} s is longer than {MAX_COPIES} plays of the clip")

    mdat_start = sum(len(box.encode()) for box in top[: kinds.index(b"mdat")]) + 8
    media = top[kinds.index(b"mdat")].payload
    new_mdat_start = [0]  # known once the new moov's length is: offsets below are filled in by then

    def moved(offset: int, copy: int) -> int:
        if not mdat_start <= offset <= mdat_start + len(media):
            raise Unloopable("a chunk outside the mdat")
        return new_mdat_start[0] + (offset - mdat_start) + copy * len(media)

    pending: list[tuple[_Box, bytes, int]] = []
    for trak in (box for box in moov.children if box.kind == b"trak"):
        stbl = _path(trak, b"mdia", b"minf", b"stbl")
        mdia, tkhd = _path(trak, b"mdia"), trak.find(b"tkhd")
        mdhd = mdia.find(b"mdhd")
        stsz, stco = stbl.find(b"stsz"), stbl.find(b"stco") or stbl.find(b"co64")
        if mdhd is None or tkhd is None or stsz is None or stco is None:
            raise Unloopable("a track without its headers or sample tables")
        samples = struct.unpack_from(">I", stsz.payload, 8)[0]
        chunks = struct.unpack_from(">I", stco.payload, 4)[0]
        media_scale = struct.unpack_from(">I", mdhd.payload, 20 if mdhd.payload[0] == 1 else 12)[0]
        media_where = _durations(mdhd.payload, 16, 24)
        media_units = _get(mdhd.payload, media_where)
        mdhd.payload = _set(mdhd.payload, media_where, media_units * copies)
        for box in stbl.children:
            if box.kind in (b"stco", b"co64"):  # written twice: for its new size, then once the mdat's place is known
                pending.append((box, box.payload, chunks))
            _repeated(box, copies, samples, chunks, moved)
        added = (copies - 1) * media_units * movie_scale // max(media_scale, 1)  # in the movie's time scale
        track_units = _trimmed_edits(trak, shown, added)
        tkhd.payload = _set(tkhd.payload, _durations(tkhd.payload, 20, 28), track_units)
    mvhd.payload = _set(mvhd.payload, movie_where, shown)

    new_mdat_start[0] = sum(len(box.encode()) for box in top[: kinds.index(b"mdat")]) + 8
    for box, original, chunks in pending:  # the same entries, now pointing into the new mdat
        box.payload = original
        _repeated(box, copies, 0, chunks, moved)
    head = b"".join(box.encode() for box in top[: kinds.index(b"mdat")])
    tail = b"".join(box.encode() for box in top[kinds.index(b"mdat") + 1 :])
    body = media * copies
    return head + struct.pack(">I4s", 8 + len(body), b"mdat") + body + tail


def _path(box: _Box, *kinds: bytes) -> _Box:
    for kind in kinds:
        found = box.find(kind)
        if found is None:
            raise Unloopable(f"no {kind!r} box")
        box = found
    return box


def _trimmed_edits(trak: _Box, shown: int, added: int) -> int:
    """Make the track's single edit show at most ``shown`` movie units of its ``added``-longer media; the track's
    new length. A track with no edit list plays its whole media."""
    edts = trak.find(b"edts")
    elst = edts.find(b"elst") if edts is not None else None
    tkhd = trak.find(b"tkhd")
    assert tkhd is not None
    if elst is None:
        return min(shown, _get(tkhd.payload, _durations(tkhd.payload, 20, 28)) + added)
    wide = elst.payload[0] == 1
    head, rows = _entries(elst.payload, 8, 20 if wide else 12)
    if len(rows) != 1:
        raise Unloopable("an edit list of several edits")
    code = ">QqI" if wide else ">IiI"
    segment, media_time, rate = struct.unpack(code, rows[0])
    if media_time < 0:
        raise Unloopable("an empty edit")
    segment = min(shown, segment + added)
    elst.payload = _table(head, [struct.pack(code, segment, media_time, rate)])
    return segment
