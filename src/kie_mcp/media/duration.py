"""How long an audio or video input is, measured before a price that depends on it is quoted.

Some models bill per second of an input (an avatar's audio track, a motion-control reference video, the video to
upscale or edit). Their quote is exact only once that input's length is known, so it is measured here:

* **Pure Python, bounded reads** for the common formats: WAV (RIFF ``fmt``/``data`` chunk sizes, including
  WAVE_FORMAT_EXTENSIBLE and a ``fact`` sample count for compressed WAV), MP3 (ID3v2 tags skipped; the Xing/Info or
  VBRI frame count when there is one, else the first frame's bitrate and the audio byte length, like ffprobe, held
  to its frames counted one by one), MP4/MOV/M4A (the ``moov/mvhd`` timescale and duration, 32- and 64-bit,
  ``moov`` at either end, held to what each track plays: its edit list, else its sample table ``stts`` and media
  header ``mdhd``; a fragmented file is left to ffmpeg) and FLAC (STREAMINFO). Only boxes, chunks, tables and frame
  headers are read, never decoded. The same MP4 boxes say what a file's tracks hold (``tracks``: sound, picture, from
  their handlers), which decides whether a field that takes only audio or only video can take it and whether it is
  uploaded as audio (``media.inputs``); the same readers say whether a local MP3, WAV or MP4 has what a player
  needs at all (``unplayable``: frames after the ID3 tag, ``fmt`` and ``data`` chunks, a movie box with tracks),
  and whether a saved MP4/MOV/M4A result is whole (``cut_short``: a movie box, and no top-level box running past
  the file's end, from their headers alone).
* **ffmpeg** (the optional ``video`` extra, ``imageio-ffmpeg``, or ``ffmpeg`` on PATH) for every other container
  (WebM, Matroska, AVI, Ogg, AAC...) and for files the readers above leave open: ``ffmpeg -i`` with a timeout and
  only the ``file`` protocol allowed, and a stream-copy pass to the null muxer (every packet read, none decoded);
  for a FLAC file the same pass checks its STREAMINFO. Without ffmpeg such files are not measured.
* **A header is the file maker's word.** Whoever made a file wrote its movie header, its MP3 frame count, its
  Matroska duration; a price per second read from one of them alone could be any fraction of what KIE bills for
  what it plays (the audit's 150 s clip whose ``mvhd`` said 1 s was quoted 8 credits, not 1200). So every header's
  length is held to what the file's contents play (tracks, frames, packets); when those run longer than the header
  by more than they ever legitimately differ (half a second, or 0.5 %: priming samples, encoder padding, a last
  frame), the length is theirs and ``Length.claimed`` keeps the header's word for the quote to name
  (``header_note``). A header with nothing to hold it to (a movie with no readable track, a file ffmpeg counts no
  packet in) is not a length: the price stays unknown and the caps reserve for it.
* **A request's local input** is measured from the file that was hashed for its quote (``measure_judged``): opened
  through the judged opener (``inputs.still_hashed``) and checked to be that very file when it is opened and again
  once it is measured; the readers read that open file and ffmpeg reads it as ``/dev/fd/N`` (its checked name where
  there is no ``/dev/fd``: Windows). A file swapped or rewritten between the hash and the end of the measuring is
  ``ChangedFile``, and the request is refused: the price is always that of the bytes that are uploaded.
* **URLs** are fetched with HTTP Range requests when the server honours them (the first 64 KiB, then only the
  headers the readers ask for, such as an MP4's ``moov`` at the end, its tables included, or an MP3's frames), else
  streamed into a temporary file up to a byte cap; everything within a time bound. The same checks hold a link's
  header to its contents; one whose contents cannot be read within the bounds is not measured (an unknown price).
  Redirects are followed only to http(s) URLs. The caller's client must carry no credentials (kie-mcp passes
  ``KieClient.files``, which never sends the KIE key); one that does is refused. A URL (or a redirect) to this
  machine or a private network is never fetched (``addresses``): KIE could not fetch it either, so the request is
  refused with a clear error instead of being priced.

**What a field takes.** A length measured here is held to the field's documented lengths (``MediaLimits``:
each file's, a list's files together; ``inputs.length_problems``): ``check_lengths`` measures every local file in
such a field before the request is priced, and ``measure_inputs`` checks what it measures for a price (a link
too), so a file KIE would refuse is never priced, uploaded or sent.

Every function returns seconds (a float; ``judged_length``, ``url_length`` and ``ffmpeg_length`` a ``Length``, with
the header's claim) or None: garbage, truncated or empty files, a server that answers
wrongly, a body over the cap or a fetch over the time bound all give None, never an exception (a private
address, above, is the one exception). A length of zero, or over a day, is treated as not measured.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import os
import re
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import anyio
import anyio.to_thread
import httpx2

from kie_mcp.catalog import ModelSpec
from kie_mcp.catalog.pricing import input_to_measure
from kie_mcp.catalog.validate import InvalidRequest, Problem, named_for_user
from kie_mcp.regular import NotRegular, open_regular
from kie_mcp.words import unseen_escaped

from .addresses import PrivateAddress, kie_cannot_reach, send_checked
from .inputs import (
    ChangedFile,
    LocalFile,
    Tracks,
    field_kinds,
    is_remote,
    length_bounds,
    length_problems,
    shown,
    still_hashed,
)
from .sniff import HEAD_BYTES, sniff
from .stitch import (
    FD_FOLDER,
    REPORT_LEVEL,
    StitchError,
    by_descriptor,
    find_ffmpeg,
    levels_refused,
    report_duration,
    report_lines,
)

log = logging.getLogger(__name__)

MAX_SECONDS = 24 * 3600.0  # no KIE model takes an input anywhere near this long: longer means a broken header
RANGE_CHUNK = 64 * 1024  # the first request, and the smallest later one
URL_MAX_BYTES = 32 * 1024 * 1024  # most bytes fetched for one URL (all requests together)
URL_TIMEOUT = 20.0  # seconds for one URL, ffmpeg included
FFMPEG_TIMEOUT = 15.0  # seconds for one local file's ffmpeg fallback
MAX_REQUESTS = 12  # range requests for one URL
MAX_REDIRECTS = 5
_MAX_READ = 1024 * 1024  # the most one reader call returns
_MAX_TOP_BOXES = 64  # top-level MP4 boxes walked (a plain file has a handful; a fragmented one is left to ffmpeg)
_MAX_CHILD_BOXES = 256
_MAX_CHUNKS = 256  # RIFF chunks walked
_MP3_SCAN = 64 * 1024  # bytes searched for the first MP3 frame after the ID3 tags


# ---------------------------------------------------------------------------------------------- readers of bytes


class _Need(Exception):
    """A remote reader lacks ``size`` bytes at ``offset``: fetch them and parse again."""

    def __init__(self, offset: int, size: int) -> None:
        super().__init__(offset, size)
        self.offset = offset
        self.size = size


class _NeedAll(Exception):
    """The whole file is needed (its size is not known otherwise)."""


class _TryFfmpeg(Exception):
    """The pure readers cannot tell this file's length; ffmpeg, reading the whole file, may."""


class _Reader(Protocol):
    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset``: fewer only at the end of the file."""
        ...

    def size(self) -> int: ...


class _FileReader:
    def __init__(self, handle: IO[bytes], length: int) -> None:
        self._handle = handle
        self._length = length

    def read(self, offset: int, size: int) -> bytes:
        if offset < 0 or offset >= self._length or size <= 0:
            return b""
        self._handle.seek(offset)
        return self._handle.read(min(size, _MAX_READ))

    def size(self) -> int:
        return self._length


class _SpanReader:
    """Byte ranges fetched from a server that honours Range; ``total`` from Content-Range (None: not given)."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.spans: list[tuple[int, bytes]] = []

    def read(self, offset: int, size: int) -> bytes:
        size = min(size, _MAX_READ)
        end = offset + size if self.total is None else min(offset + size, self.total)
        if offset < 0 or offset >= end:
            return b""
        for start, data in self.spans:
            if start <= offset and end <= start + len(data):
                return data[offset - start : end - start]
        raise _Need(offset, end - offset)

    def size(self) -> int:
        if self.total is None:
            raise _NeedAll
        return self.total


class _SpoolReader:
    """A body streamed (no Range support) into a temporary file, read as far as it has arrived."""

    def __init__(self, handle: IO[bytes], declared: int | None) -> None:
        self.handle = handle
        self.declared = declared
        self.spooled = 0
        self.eof = False

    def read(self, offset: int, size: int) -> bytes:
        size = min(size, _MAX_READ)
        end = offset + size
        if self.declared is not None:
            end = min(end, self.declared)
        if self.eof:
            end = min(end, self.spooled)
        if offset < 0 or offset >= end:
            return b""
        if end > self.spooled:
            raise _Need(offset, end - offset)
        self.handle.seek(offset)
        return self.handle.read(end - offset)

    def size(self) -> int:
        if self.declared is not None:
            return self.declared
        if self.eof:
            return self.spooled
        raise _NeedAll


def _u16le(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def _u32le(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 8], "big")


def _valid(seconds: float | None) -> float | None:
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
        return None
    return float(seconds)


@dataclass(frozen=True)
class Length:
    """A measured length in seconds and, when the file's own header claimed less than its contents play (its
    tracks, its frames or its packets, by ``by``), that claim. The price and the field's limits use ``seconds``:
    a header is written by whoever made the file, and a price read from it alone could be any fraction of what KIE
    bills for what it decodes."""

    seconds: float
    claimed: float | None = None
    by: str | None = None  # what ran longer than the header: "tracks", "frames" or "packets"


# A header and the contents it describes agree when they differ by no more than this (an AAC track's priming samples,
# an MP3's encoder padding, the last frame's duration), and then the header's figure is the length, as ffprobe has it.
_AGREE_SECONDS = 0.5
_AGREE_SHARE = 0.005


def _longest(header: float, contents: float | None, *, by: str) -> Length:
    """``header`` unless ``contents`` (what the file's samples, frames or packets play) runs longer by more than
    they ever legitimately differ; then ``contents``, with the header's claim kept to be named in the quote."""
    if contents is None or contents <= header + max(_AGREE_SECONDS, _AGREE_SHARE * contents):
        return Length(header)
    return Length(contents, claimed=header, by=by)


def _checked(length: Length | None) -> Length | None:
    """``length`` when its seconds can price something (above zero, at most a day), else None."""
    if length is None or _valid(length.seconds) is None:
        return None
    return length


# ---------------------------------------------------------------------------------------------------------- WAV

_PCM_TAGS = {1, 3, 6, 7}  # PCM, IEEE float, A-law, mu-law: one block per sample frame
_EXTENSIBLE = 0xFFFE
_WAV_PLACEHOLDERS = {0, 0xFFFFFFFF}  # what streaming writers leave in a size they could not go back to


def _wav(r: _Reader) -> float | None:
    head = r.read(0, 12)
    if len(head) < 12 or head[0:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    fmt: tuple[int, int, int, int] | None = None  # format tag, sample rate, byte rate, block align
    fact: int | None = None
    for _ in range(_MAX_CHUNKS):
        header = r.read(offset, 8)
        if len(header) < 8:
            return None  # no data chunk
        chunk, length = header[0:4], _u32le(header, 4)
        body = offset + 8
        if chunk == b"fmt ":
            data = r.read(body, min(length, 40))
            if length < 16 or len(data) < 16:
                return None
            tag = _u16le(data, 0)
            if tag == _EXTENSIBLE and length >= 40 and len(data) >= 40:
                tag = _u16le(data, 24)  # the first two bytes of the SubFormat GUID
            fmt = (tag, _u32le(data, 4), _u32le(data, 8), _u16le(data, 12))
        elif chunk == b"fact" and length >= 4:
            data = r.read(body, 4)
            fact = _u32le(data, 0) if len(data) == 4 else None
        elif chunk == b"data":
            if fmt is None:
                return None
            size = r.size()
            if length in _WAV_PLACEHOLDERS:
                length = size - body
            elif body + length > size:
                return None  # truncated: the header promises more sound than the file holds
            return _wav_seconds(fmt, fact, length)
        offset = body + length + (length & 1)
    return None


def _wav_seconds(fmt: tuple[int, int, int, int], fact: int | None, length: int) -> float | None:
    tag, rate, byte_rate, block = fmt
    if rate <= 0 or length <= 0:
        return None
    if tag in _PCM_TAGS and block > 0:
        return (length // block) / rate
    if fact:
        return fact / rate
    return length / byte_rate if byte_rate > 0 else None


# ---------------------------------------------------------------------------------------------------------- MP3

_MP3_KBPS = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


@dataclass(frozen=True)
class _Frame:
    version: int  # the two version bits: 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5
    layer: int
    rate: int
    bitrate: int  # bits per second
    samples: int  # per frame
    length: int  # bytes
    mono: bool


def _mp3_frame(header: bytes) -> _Frame | None:
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or index in (0, 15) or rate_index == 3:
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    kbps = _MP3_KBPS[(1 if mpeg1 else 2, layer)][index]
    rate = _MP3_RATES[version][rate_index]
    if layer == 1:
        samples, length = 384, (12000 * kbps // rate + padding) * 4
    else:
        samples = 1152 if layer == 2 or mpeg1 else 576
        length = (samples // 8) * 1000 * kbps // rate + padding
    return _Frame(version, layer, rate, kbps * 1000, samples, length, header[3] >> 6 == 3)


def _id3_end(r: _Reader) -> int:
    """Where the audio starts: after any ID3v2 tags (each 10 bytes, a syncsafe size, an optional footer)."""
    offset = 0
    for _ in range(8):
        tag = r.read(offset, 10)
        if len(tag) < 10 or tag[0:3] != b"ID3" or tag[3] not in (2, 3, 4) or any(b >= 0x80 for b in tag[6:10]):
            break
        size = (tag[6] << 21) | (tag[7] << 14) | (tag[8] << 7) | tag[9]
        offset += 10 + size + (10 if tag[5] & 0x10 else 0)
    return offset


def _first_frame(r: _Reader, start: int) -> tuple[int, _Frame, bytes] | None:
    """The first MPEG audio frame at or after ``start`` that is followed by another like it (or by the end)."""
    window = r.read(start, _MP3_SCAN + 4096)
    at = window.find(b"\xff")
    while 0 <= at < min(len(window) - 3, _MP3_SCAN):
        frame = _mp3_frame(window[at : at + 4])
        if frame is not None:
            after = at + frame.length
            following = _mp3_frame(window[after : after + 4])
            same = following is not None and (following.version, following.layer, following.rate) == (
                frame.version,
                frame.layer,
                frame.rate,
            )
            if same or start + after == r.size():  # or a single frame that ends the file
                return start + at, frame, window[at : at + frame.length]
        at = window.find(b"\xff", at + 1)
    return None


_LAME_ENCODERS = (b"LAME", b"Lavf", b"Lavc")  # the encoders whose Info tag carries delay and padding


def _gapless_padding(xing: bytes) -> int:
    """Samples the encoder added (start delay + end padding), from the LAME extension after a Xing/Info header;
    ffprobe leaves them out of a file's duration, and so does this."""
    flags = _u32(xing, 4)
    at = 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    lame = xing[at : at + 24]  # encoder (9), revision (1), lowpass (1), replay gain (8), flags (1), bitrate (1), ...
    if len(lame) < 24 or lame[0:4] not in _LAME_ENCODERS:
        return 0
    packed = int.from_bytes(lame[21:24], "big")  # ... then 12 bits of delay and 12 of padding
    return (packed >> 12) + (packed & 0xFFF)


def _mp3(r: _Reader) -> Length | None:
    found = _first_frame(r, _id3_end(r))
    if found is None:
        return None
    offset, frame, data = found
    end = _mp3_audio_end(r, offset)
    header = _mp3_header(frame, data)
    if header is None:  # no header claims a length: the frames are the length (the first frame's bitrate over the
        # audio bytes, as ffprobe estimates it, made a VBR file that starts quietly several times as long)
        counted = _mp3_frames(r, offset, end, frame)
        return Length(counted) if counted is not None else Length((end - offset) * 8 / frame.bitrate)
    offset += frame.length  # the Xing/Info or VBRI frame holds no sound
    return _longest(header, _mp3_frames(r, offset, end, frame), by="frames")


def _mp3_audio_end(r: _Reader, start: int) -> int:
    """Where an MP3's frames end: before the tags a tagger appends (ID3v1, APEv2 with its cover art, Lyrics3v2),
    whose bytes would otherwise be searched for frames."""
    end = r.size()
    for _ in range(4):  # the tags, in any order
        if end - 128 > start and r.read(end - 128, 3) == b"TAG":
            end -= 128  # ID3v1
            continue
        footer = r.read(end - 32, 32) if end - 32 > start else b""
        if footer[:8] == b"APETAGEX":
            size = int.from_bytes(footer[12:16], "little") + (32 if footer[23] & 0x80 else 0)  # with its header
            if 32 <= size <= end - start:
                end -= size
                continue
        lyrics = r.read(end - 15, 15) if end - 15 > start else b""
        if lyrics[6:] == b"LYRICS200" and lyrics[:6].isdigit() and int(lyrics[:6]) + 15 <= end - start:
            end -= int(lyrics[:6]) + 15
            continue
        break
    return end


def _mp3_header(frame: _Frame, data: bytes) -> float | None:
    """The length an MP3's Xing/Info or VBRI header (in its first frame) states, or None without one."""
    side = (17 if frame.mono else 32) if frame.version == 3 else (9 if frame.mono else 17)
    xing = data[4 + side :]
    if xing[0:4] in (b"Xing", b"Info") and len(xing) >= 12 and _u32(xing, 4) & 1:
        frames = _u32(xing, 8)
        if frames:
            samples = frames * frame.samples - _gapless_padding(xing)
            return samples / frame.rate if samples > 0 else None
    vbri = data[36:54]
    if vbri[0:4] == b"VBRI" and len(vbri) >= 18:
        frames = _u32(vbri, 14)
        if frames:
            return frames * frame.samples / frame.rate
    return None


def _mp3_frames(r: _Reader, start: int, end: int, first: _Frame) -> float | None:
    """The seconds of sound in the frames from ``start`` to ``end``, counted one by one as a decoder reads them: the
    frames of ``first``'s layer, each found where the one before it ends, past any bytes that are not one (a decoder
    skips them too), each at its own sample rate (a decoder plays a file whose frames change rate, so 0.5 s of 48 kHz
    frames then 55 s of 8 kHz ones is 55.5 s, not 0.5). What no header can misstate; None when no frame is found."""
    seconds, offset, chunk_at, chunk = 0.0, start, start, b""
    playing, resynced = (first.version, first.layer, first.rate), False
    while offset + 4 <= end:
        if not chunk_at <= offset <= chunk_at + len(chunk) - 4:
            chunk_at, chunk = offset, r.read(offset, min(_MAX_READ, end - offset))
            if len(chunk) < 4:
                break
        at = offset - chunk_at
        frame = _mp3_frame(chunk[at : at + 4])
        kind = None if frame is None else (frame.version, frame.layer, frame.rate)
        # A frame where the one before it ended, like it, counts; one after bytes that were no frame, or of another
        # rate, only when the next frame is like it (or it ends the audio): a stray 0xFF in junk (cover art in a
        # tag no reader knows) is taken for a frame far more often than two in a row.
        plain = kind == playing and not resynced
        if frame is not None and kind is not None and (plain or _confirmed(r, offset, frame, end)):
            seconds += frame.samples / frame.rate
            offset += frame.length
            playing, resynced = kind, False
            continue
        resynced = True
        following = chunk.find(b"\xff", at + 1)  # resynchronise: the next byte that may start a frame
        offset = chunk_at + following if following >= 0 else chunk_at + len(chunk) - 3
    return seconds or None


def _confirmed(r: _Reader, offset: int, frame: _Frame, end: int) -> bool:
    """Whether the MPEG audio frame at ``offset`` is followed by another of its version, layer and rate, or ends the
    audio at ``end``."""
    after = offset + frame.length
    if after == end:
        return True
    following = _mp3_frame(r.read(after, 4)) if after + 4 <= end else None
    return following is not None and (following.version, following.layer, following.rate) == (
        frame.version,
        frame.layer,
        frame.rate,
    )


# ------------------------------------------------------------------------------------------------ MP4, MOV, M4A


def _box(r: _Reader, offset: int, limit: int) -> tuple[bytes, int, int] | None:
    """(type, header length, box length) of the box at ``offset``, which must end by ``limit``."""
    head = r.read(offset, 16)
    if len(head) < 8:
        return None
    length, kind = _u32(head, 0), head[4:8]
    if not all(32 <= b < 127 for b in kind):
        return None
    header = 8
    if length == 1:
        if len(head) < 16:
            return None
        length, header = _u64(head, 8), 16
    elif length == 0:
        length = limit - offset  # to the end of the enclosing space
    if length < header or offset + length > limit:
        return None
    return kind, header, length


def _mp4(r: _Reader) -> Length | None:
    size = r.size()
    offset, found, boxes = 0, None, 0
    while offset < size:
        boxes += 1
        box = _box(r, offset, size) if boxes <= _MAX_TOP_BOXES else None
        if box is None:
            return None  # garbage, a truncated file, or too many top-level boxes (fragments)
        kind, header, length = box
        if kind == b"moof":
            raise _TryFfmpeg  # fragments: samples no movie header lists, which ffmpeg reads and counts
        if kind == b"moov":
            if found is not None:
                return None  # two movie headers: not a file to trust
            found = _movie(r, offset + header, offset + length)
            if found is None:
                return None
        offset += length
    return found  # only once every top-level box fit in the file: a cut-off download is not measured


def _movie(r: _Reader, start: int, end: int) -> Length | None:
    """The movie's length: its header's (``mvhd``), unless its tracks play longer (``_track_units``), which only the
    file's maker could make them; a fragmented movie (``mvex``: its samples are in fragments after it, which a
    header cannot be checked against here) is left to ffmpeg, which reads them."""
    parts = _children(r, start, end)
    if parts is None:
        return None
    headers = [r.read(body, 32) for kind, body, _ in parts if kind == b"mvhd"]
    header_of = _movie_header(headers[0]) if len(headers) == 1 else None
    if header_of is None:
        return None
    timescale, duration = header_of
    if timescale == 0:
        return None
    if any(kind == b"mvex" for kind, _, _ in parts):
        raise _TryFfmpeg
    played = [_track_seconds(r, body, box_end, timescale) for kind, body, box_end in parts if kind == b"trak"]
    if not played or None in played:
        raise _TryFfmpeg  # a track that cannot be read could be the long one: not priced from the header alone
    longest = max(seconds for seconds in played if seconds is not None)
    if duration in _UNKNOWN_DURATIONS:  # unknown to the writer: the tracks say
        return Length(longest) if longest > 0 else None
    return _longest(duration / timescale, longest, by="tracks")


_UNKNOWN_DURATIONS = (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
_MAX_TABLE_BYTES = 8 * 1024 * 1024  # the most of one sample or edit table read (a two-hour VFR clip's stts: ~1.7 MB)


def _track_seconds(r: _Reader, start: int, end: int, movie_timescale: int) -> float | None:
    """How long one track plays, as a decoder plays it: its edit list's segments (in the movie's timescale) where it
    has one, else its samples' durations (``stts``) or its media header's (``mdhd``), whichever is longer. None when
    a box on the way is missing or cannot be read."""
    parts = _children(r, start, end)
    medias = [box for box in parts or () if box[0] == b"mdia"]
    media = _children(r, *medias[0][1:]) if len(medias) == 1 else None
    heads = [r.read(body, 32) for kind, body, _ in media or () if kind == b"mdhd"]
    header_of = _movie_header(heads[0]) if len(heads) == 1 else None  # mdhd's times are laid out as mvhd's
    infos = [box for box in media or () if box[0] == b"minf"]
    tables = [box for box in _children(r, *infos[0][1:]) or () if box[0] == b"stbl"] if len(infos) == 1 else []
    times = [box for box in _children(r, *tables[0][1:]) or () if box[0] == b"stts"] if len(tables) == 1 else []
    if header_of is None or header_of[0] == 0 or len(times) != 1:
        return None
    samples = _table_sum(r, times[0][1], times[0][2], entry=8, at=0, width=4, factor_at=4)
    if samples is None:
        return None
    timescale, duration = header_of
    units = max(samples, 0 if duration in _UNKNOWN_DURATIONS else duration)
    edits = [box for box in parts or () if box[0] == b"edts"]
    lists = [box for box in _children(r, *edits[0][1:]) or () if box[0] == b"elst"] if len(edits) == 1 else []
    if len(lists) == 1:
        version = r.read(lists[0][1], 1)
        wide = version == b"\x01"
        shown = _table_sum(r, lists[0][1], lists[0][2], entry=20 if wide else 12, at=0, width=8 if wide else 4)
        if shown:  # an edit list sets what is played (a clip cut without re-encoding shows less than its samples)
            return shown / movie_timescale
    return units / timescale


def _table_sum(
    r: _Reader, body: int, end: int, *, entry: int, at: int, width: int, factor_at: int | None = None
) -> int | None:
    """The sum over a full box's table (version and flags, an entry count, then ``entry``-byte rows) of each row's
    ``width``-byte number at ``at``, times its 4-byte number at ``factor_at`` (``stts``: sample count x delta);
    None when the count does not fit the box or the table is over the bound."""
    head = r.read(body, 8)
    if len(head) < 8:
        return None
    count = _u32(head, 4)
    size = count * entry
    if body + 8 + size > end or size > _MAX_TABLE_BYTES:
        return None
    total, offset = 0, body + 8
    while size > 0:
        step = min(size, _MAX_READ - _MAX_READ % entry)
        rows = r.read(offset, step)
        if len(rows) < step:
            return None
        for row in range(0, step, entry):
            value = int.from_bytes(rows[row + at : row + at + width], "big")
            total += value * (_u32(rows, row + factor_at) if factor_at is not None else 1)
        offset += step
        size -= step
    return total


def _movie_header(body: bytes) -> tuple[int, int] | None:
    """mvhd (and mdhd, laid out alike): (timescale, duration); version 0 has 32-bit times, version 1 64-bit."""
    if len(body) < 20:
        return None
    if body[0] == 1:
        return (_u32(body, 20), _u64(body, 24)) if len(body) >= 32 else None
    if body[0] == 0:
        return _u32(body, 12), _u32(body, 16)
    return None


def _children(r: _Reader, start: int, end: int, *, whole: bool = True) -> list[tuple[bytes, int, int]] | None:
    """(type, body offset, body end) of the boxes between ``start`` and ``end``. Where they cannot all be walked (a
    box that does not fit, garbage, more than ``_MAX_CHILD_BOXES``): None when ``whole`` (a track could hide past
    the break), else those before the break."""
    found, offset = [], start
    while offset < end:
        box = _box(r, offset, end) if len(found) < _MAX_CHILD_BOXES else None
        if box is None:
            return None if whole else found
        kind, header, length = box
        found.append((kind, offset + header, offset + length))
        offset += length
    return found


def _track_handlers(r: _Reader) -> list[bytes] | None:
    """The handler type of each track of an MP4/MOV/M4A (``moov/trak/mdia/hdlr``: b"vide", b"soun", b"text", ...),
    read from box headers only; None unless there is one movie box, its boxes can all be walked and each of its
    tracks has one handler that can be read (a damaged file, whose tracks cannot all be told). The file's top level
    is walked as far as it goes: a file cut off after its movie box still says what its tracks are."""
    movies = [box for box in _children(r, 0, r.size(), whole=False) or () if box[0] == b"moov"]
    movie = _children(r, *movies[0][1:]) if len(movies) == 1 else None
    if not movie:
        return None
    handlers = []
    for kind, start, end in movie:
        if kind != b"trak":
            continue
        medias = [box for box in _children(r, start, end) or () if box[0] == b"mdia"]
        parts = _children(r, *medias[0][1:]) if len(medias) == 1 else None
        # hdlr: version and flags, pre_defined (QuickTime: the component type), then the handler type
        found = [r.read(body + 8, 4) for part, body, _ in parts or () if part == b"hdlr"]
        if len(found) != 1 or len(found[0]) != 4:
            return None
        handlers.append(found[0])
    return handlers or None


def tracks(handle: IO[bytes], length: int) -> Tracks | None:
    """What the tracks of the MP4/MOV/M4A in ``handle`` (``length`` bytes) hold: sound (a ``soun`` track) and
    picture (a ``vide`` track), read from box headers only; None when its tracks cannot all be read (garbage, a
    cut-off file, no movie box or no track): left to KIE. Never raises."""
    try:
        handlers = _track_handlers(_FileReader(handle, length))
    except Exception as exc:  # bad input never raises
        log.debug("could not read the tracks: %s", exc)
        return None
    if handlers is None:
        return None
    return Tracks(sound=b"soun" in handlers, video=b"vide" in handlers)


# --------------------------------------------------------------------------------------------------------- FLAC


def _flac(r: _Reader) -> float | None:
    head = r.read(0, 42)
    if len(head) < 42 or head[0:4] != b"fLaC" or head[4] & 0x7F != 0 or int.from_bytes(head[5:8], "big") < 34:
        return None
    info = int.from_bytes(head[18:26], "big")  # 20 bits rate, 3 channels, 5 bits per sample, 36 total samples
    rate, samples = info >> 44, info & ((1 << 36) - 1)
    if rate == 0 or samples == 0:
        raise _TryFfmpeg  # "unknown" in STREAMINFO
    return samples / rate


# ----------------------------------------------------------------------------------------------------- playable

# The formats whose structure is checked before a local file is priced or uploaded (``unplayable``): a sniff reads
# only their first bytes, and "ID3" with seven bytes more and then any text was uploaded as MP3 audio.
PLAYABLE_CHECKED = frozenset({"mp3", "wav", "mp4", "mov", "m4v", "m4a"})


def unplayable(handle: IO[bytes], length: int, media_format: str) -> str | None:
    """Why the MP3, WAV or MP4/MOV/M4V/M4A in ``handle`` (``length`` bytes) cannot be played, read from its structure
    (nothing decoded): an MP3 with no run of MPEG audio frames after its ID3 tags (or at its start; an ADTS stream
    behind an ID3 tag plays too), a WAV with no ``fmt`` chunk or no ``data`` chunk, an MP4 with no movie box whose
    tracks can all be read (``tracks``). None when it can, and for other formats (left to KIE). Never raises: a
    reader's failure is no verdict, and the file is left to KIE."""
    reader = _FileReader(handle, length)
    try:
        if media_format == "mp3":
            return _mp3_unplayable(reader)
        if media_format == "wav":
            return _wav_unplayable(reader)
        if media_format in ("mp4", "mov", "m4v", "m4a") and _track_handlers(reader) is None:
            return (
                "it has no movie box (moov) with tracks that can be read: a recording that never finished, a file "
                "cut short, or no real one"
            )
    except Exception as exc:  # bad input never raises
        log.debug("could not read the structure: %s", exc)
    return None


# Top-level boxes walked by ``cut_short``: a plain file has a handful, a fragmented one two a fragment (a two-hour
# stream in one-second fragments: 14,400). Past this the walk gives no verdict.
_MAX_WHOLE_BOXES = 100_000

# The box types an MP4, MOV or M4A has at its top level (ISO/IEC 14496-12, QuickTime). Once the movie and its media
# are whole, only one of these running past the end is the file cut short: other bytes after them (a newline, zero
# padding, a tag some tool appended) are trailing data a player never reads.
_TOP_LEVEL = frozenset(
    b"ftyp styp moov mdat moof mfra free skip wide uuid meta udta pdin sidx ssix prft emsg meco pnot".split()
)


def cut_short(handle: IO[bytes], length: int) -> str | None:
    """Why the MP4/MOV/M4A in ``handle`` (``length`` bytes) is not whole, from its top-level box headers alone (one
    seek and 16 bytes a box, never the file itself, whatever its size): a box that runs past the end of the file (a
    file cut short, as KIE may store one, its length agreeing so that only its boxes tell) or a header cut off, or no
    movie box (``moov``), without which no player opens it. Once a ``moov`` and an ``mdat`` have been walked whole,
    what follows that is not a box of a top-level type (``_TOP_LEVEL``), or is shorter than a box header, is
    trailing data, not a cut. A box's size may be 64-bit (size 1) or "to the end of the file" (size 0). None when it
    is whole, and when it cannot be told (more than ``_MAX_WHOLE_BOXES`` boxes, a read that fails). Never raises."""
    try:
        return _cut_short(_FileReader(handle, length))
    except Exception as exc:  # bad input never raises
        log.debug("could not walk the boxes: %s", exc)
        return None


def _cut_short(r: _Reader) -> str | None:
    size = r.size()
    offset, movie, media = 0, False, False
    for _ in range(_MAX_WHOLE_BOXES):
        if offset >= size:
            return None if movie else "it has no movie box (moov), without which no player opens it"
        head = r.read(offset, 16)
        kind = head[4:8]
        if movie and media and (len(head) < 8 or kind not in _TOP_LEVEL):
            return None  # trailing data after a whole movie and its media
        if len(head) < 8:
            return f"it ends {len(head)} bytes into a box header (byte {offset:,}): it was cut short"
        declared, header = _u32(head, 0), 8
        if declared == 1:
            if len(head) < 16:
                return f"it ends inside a box header (byte {offset:,}): it was cut short"
            declared, header = _u64(head, 8), 16
        elif declared == 0:
            declared = size - offset  # the last box, to the end of the file
        box = f"its {kind.decode('ascii')} box" if all(32 <= b < 127 for b in kind) else f"a box at byte {offset:,}"
        if declared < header:
            return f"{box} declares {declared} bytes, less than its own header: it is damaged"
        if offset + declared > size:
            return f"{box} ends at byte {offset + declared:,}, past the file's end at byte {size:,}: it was cut short"
        movie = movie or kind == b"moov"
        media = media or kind == b"mdat"
        offset += declared
    return None


def _mp3_unplayable(r: _Reader) -> str | None:
    start = _id3_end(r)
    after = r.read(start, 2)
    if start and len(after) == 2 and after[0] == 0xFF and after[1] & 0xF6 == 0xF0:
        return None  # ADTS (AAC) frames behind an ID3 tag, as some encoders write them: a player plays them
    if _first_frame(r, start) is not None:
        return None
    if start:
        return "no MPEG audio frames follow its ID3 tag (its sound is missing, or it is no real MP3)"
    return "no run of MPEG audio frames follows its first frame header (it is no real MP3)"


def _wav_unplayable(r: _Reader) -> str | None:
    """A WAV's chunks walked (their headers only) for a ``fmt`` chunk that describes the sound and a ``data`` chunk
    that holds it."""
    offset, described = 12, False
    for _ in range(_MAX_CHUNKS):
        header = r.read(offset, 8)
        if len(header) < 8:
            break
        chunk, size = header[0:4], _u32le(header, 4)
        if chunk == b"fmt ":
            described = size >= 16
        elif chunk == b"data":
            return None if described else "its sound data comes with no format chunk (fmt) saying how to play it"
        offset += 8 + size + (size & 1)
    if not described:
        return "it has no format chunk (fmt) and no sound data chunk (data)"
    return "it has no sound data chunk (data)"


# ----------------------------------------------------------------------------------------------------- dispatch

_PURE = {"wav": _wav, "mp3": _mp3, "mp4": _mp4, "mov": _mp4, "m4v": _mp4, "m4a": _mp4, "flac": _flac}
# Formats whose pure reading is one header's word (FLAC's STREAMINFO sample count): where ffmpeg is available, its
# packets are counted too (``_measure_open``). A WAV's length is its bytes, an MP3's frames are counted one by one, and
# an MP4's tracks are read to their sample tables and edit lists (the packets a stream copy would count, which unlike
# a decoder does not stop where an edit list ends: a clip cut without re-encoding would be priced past its cut).
_HEADER_FORMATS = {"flac"}


def _pure(r: _Reader) -> tuple[str | None, Length | None]:
    """The format sniffed and the length by a pure-Python reader; ``_TryFfmpeg`` for formats (or files) only ffmpeg
    can tell."""
    media = sniff(r.read(0, HEAD_BYTES))
    if media is None or media.kind == "image":
        return None, None
    reader = _PURE.get(media.format)
    if reader is None:
        raise _TryFfmpeg
    found = reader(r)
    return media.format, _checked(found if isinstance(found, Length) or found is None else Length(found))


def _with_file(path: Path, read: Any) -> float | None:
    try:
        with open_regular(path) as handle:  # judged as opened: a FIFO or device would block or never end
            found = read(_FileReader(handle, os.fstat(handle.fileno()).st_size))
    except NotRegular:
        return None
    except _TryFfmpeg:
        return None
    except Exception as exc:  # bad input never raises
        log.debug("could not measure %s: %s", path, exc)
        return None
    return _valid(found.seconds if isinstance(found, Length) else found)


def wav_seconds(path: Path) -> float | None:
    """A WAV file's length from its ``fmt`` and ``data`` chunks, or None."""
    return _with_file(path, _wav)


def mp3_seconds(path: Path) -> float | None:
    """An MP3 file's length: Xing/Info or VBRI frame count, else first-frame bitrate over the audio bytes, unless
    its frames, counted one by one, play longer; or None."""
    return _with_file(path, _mp3)


def mp4_seconds(path: Path) -> float | None:
    """An MP4/MOV/M4A file's length from ``moov/mvhd``, unless its tracks (edit lists, sample tables, media headers)
    play longer; or None (a fragmented file, or one whose tracks cannot all be read, is left to ffmpeg)."""
    return _with_file(path, _mp4)


def video_seconds(path: Path, mime: str | None) -> float | None:
    """A saved video's length as answers show it: an MP4/MOV's from its header (``mp4_seconds``: a few small reads,
    no decoding), rounded to the millisecond; None for a file that is not a video (by ``mime``) or not an MP4/MOV.
    Reads the file: blocking (on a slow or network disk, seconds), so a tool calls it in a worker thread."""
    if not (mime or "").startswith("video/"):
        return None
    seconds = mp4_seconds(path)
    return round(seconds, 3) if seconds is not None else None


def bytes_seconds(data: bytes) -> float | None:
    """Seconds of the audio or video held in ``data`` by the pure-Python readers (WAV, MP3, MP4/MOV, FLAC; no
    ffmpeg), or None when they cannot tell: the simulated KIE measures the clips it hosts, as KIE bills them."""
    try:
        _, found = _pure(_FileReader(io.BytesIO(data), len(data)))
    except Exception as exc:  # bad input never raises (``_TryFfmpeg`` included)
        log.debug("could not measure %d bytes: %s", len(data), exc)
        return None
    return _valid(found.seconds if found is not None else None)


def flac_seconds(path: Path) -> float | None:
    """A FLAC file's length from STREAMINFO, or None."""
    return _with_file(path, _flac)


def measure_local(path: Path, *, timeout: float = FFMPEG_TIMEOUT) -> float | None:
    """Seconds of the audio or video in ``path``, or None when it cannot be measured.

    Pure-Python readers first (by the file's bytes, never its name); ffmpeg, within ``timeout`` seconds, for other
    containers and for files those readers leave open, and to count the packets of a file whose pure reading rests
    on headers (``_HEADER_FORMATS``). Blocking: run it in a worker thread from async code. A request's input, hashed
    for its quote, is measured with ``judged_length`` instead."""
    try:
        with open_regular(path) as handle:  # judged as opened: a FIFO swapped in is never waited on
            found = _measure_open(handle, Path(path), timeout)
    except NotRegular:
        return None
    except Exception as exc:
        log.debug("could not measure %s: %s", path, exc)
        return None
    return None if found is None else found.seconds


def judged_length(local: LocalFile, *, timeout: float = FFMPEG_TIMEOUT) -> Length | None:
    """The length of the audio or video ``local`` hashed, or None when it cannot be measured; ``ChangedFile`` when
    the file at its path is no longer the one hashed (checked as it is opened and again once it is measured), so a
    quote never prices other bytes than the ones approved and uploaded. Blocking: run it in a worker thread."""
    with still_hashed(local) as handle:
        return _measure_open(handle, local.path, timeout)


def measure_judged(local: LocalFile, *, timeout: float = FFMPEG_TIMEOUT) -> float | None:
    """``judged_length`` in seconds."""
    found = judged_length(local, timeout=timeout)
    return None if found is None else found.seconds


def _measure_open(handle: IO[bytes], path: Path, timeout: float) -> Length | None:
    """The length of the open file ``handle`` (``path`` is its checked name, for ffmpeg where ``/dev/fd`` is missing
    and for logs); never raises."""
    try:
        size = os.fstat(handle.fileno()).st_size
        media, found = _pure(_FileReader(handle, size))
    except _TryFfmpeg:
        return _ffmpeg_open(handle, path, timeout)
    except Exception as exc:
        log.debug("could not measure %s: %s", path, exc)
        return None
    if found is None or media not in _HEADER_FORMATS or not ffmpeg_available():
        return found
    return _outrun(found, _ffmpeg_open(handle, path, timeout))


def _outrun(found: Length, packets: Length | None) -> Length:
    """``found`` (the pure reading), unless ffmpeg's packets run longer beyond the agreement: then theirs, with the
    shorter figure the file's headers gave kept as its claim."""
    if packets is None:
        return found
    longer = _longest(found.seconds, packets.seconds, by=packets.by or "packets")
    if longer.claimed is None:
        return found
    return Length(longer.seconds, claimed=found.claimed or found.seconds, by=longer.by)


def _ffmpeg_open(handle: IO[bytes], path: Path, timeout: float) -> Length | None:
    """ffmpeg's length of the open file ``handle``, read as ``/dev/fd/N`` (where ``/dev/fd`` exists), so a name
    swapped for another file meanwhile is never what is measured; elsewhere its checked name."""
    if not by_descriptor():
        return ffmpeg_length(path, timeout=timeout)
    try:
        fd = handle.fileno()
        os.lseek(fd, 0, os.SEEK_SET)  # where opening /dev/fd/N shares the offset (macOS): from the start
    except (OSError, ValueError) as exc:
        log.debug("could not measure %s: %s", path, exc)
        return None
    return ffmpeg_length(FD_FOLDER / str(fd), timeout=timeout, pass_fds=(fd,))


# ------------------------------------------------------------------------------------------------------- ffmpeg

_NULL_COPY = ("-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-")
_OUT_TIME = re.compile(rb"^out_time_us=(\d+)\s*$", re.MULTILINE)


def ffmpeg_available() -> bool:
    try:
        find_ffmpeg()
    except StitchError:
        return False
    return True


def ffmpeg_seconds(path: Path, *, timeout: float = FFMPEG_TIMEOUT, pass_fds: tuple[int, ...] = ()) -> float | None:
    """``ffmpeg_length`` in seconds."""
    found = ffmpeg_length(path, timeout=timeout, pass_fds=pass_fds)
    return None if found is None else found.seconds


def ffmpeg_length(path: Path, *, timeout: float = FFMPEG_TIMEOUT, pass_fds: tuple[int, ...] = ()) -> Length | None:
    """The length ffmpeg finds for ``path``: the duration its own ``  Duration: `` line reports (from the container's
    headers; ``stitch.report_duration``, never the file's metadata printed among ffmpeg's lines), unless a
    stream-copy pass (every packet read, nothing decoded) ends later, within ``timeout`` seconds in all. None without
    ffmpeg, on a timeout, when ffmpeg cannot read it, and when the copy pass counts no packets: a header's word alone,
    with nothing to hold it to, is no price. ``pass_fds``: the descriptors ffmpeg inherits, for a ``path`` in
    ``/dev/fd``."""
    try:
        ffmpeg = find_ffmpeg()
    except StitchError:
        return None
    deadline = time.monotonic() + timeout
    source = ["-protocol_whitelist", "file", "-i", f"file:{Path(path).absolute()}"]

    def report(*level: str) -> bytes:
        run = subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", *level, *source],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=max(deadline - time.monotonic(), 0.001),
            check=False,
            pass_fds=pass_fds,
        )
        return run.stderr[-65536:]

    try:
        told = report(*REPORT_LEVEL)
        tagged = not levels_refused(told)
        if not tagged:  # before ffmpeg 4.0: the report without tags
            told = report()
        lines = report_lines(told.decode(errors="replace"), tagged=tagged)
        if not any(line.startswith("Input #0") for line in lines):
            return None
        # the input's own "  Duration: " line, never a metadata value or key that says "Duration: 01:00:00.00"
        header = report_duration(lines)
        packets = _packet_seconds(ffmpeg, source, deadline - time.monotonic(), pass_fds)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.debug("ffmpeg could not measure %s: %s", path, exc)
        return None
    if packets is None:
        return None
    if header is None:  # "Duration: N/A" (a streamed WebM, say): the packets alone
        return _checked(Length(packets))
    return _checked(_longest(header, packets, by="packets"))


def _packet_seconds(ffmpeg: str, source: list[str], timeout: float, pass_fds: tuple[int, ...]) -> float | None:
    """Where a stream-copy pass to the null muxer ends (every packet read, nothing decoded), or None."""
    if timeout <= 0:
        return None
    try:
        copy = subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", *source, *_NULL_COPY],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            pass_fds=pass_fds,
        )
    except subprocess.TimeoutExpired:
        return None
    times = _OUT_TIME.findall(copy.stdout[-65536:])
    return int(times[-1]) / 1e6 if copy.returncode == 0 and times else None


# ---------------------------------------------------------------------------------------------------------- URLs


class _Refused(Exception):
    """The server's answer cannot be used (status, size, Range reply); the URL is not measured."""


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _is_http(url: str) -> bool:
    try:
        return httpx2.URL(url).scheme in ("http", "https")
    except Exception:
        return False


def _carries_credentials(client: httpx2.AsyncClient) -> bool:
    return "authorization" in client.headers or "cookie" in client.headers or client.auth is not None


class _Remote:
    def __init__(self, client: httpx2.AsyncClient, url: str, max_bytes: int, deadline: float) -> None:
        self.client = client
        self.first = url  # the URL as given: named when one of its redirects is refused
        self.url = httpx2.URL(url)
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.fetched = 0
        self.requests = 0

    # -- HTTP --------------------------------------------------------------------------------------------

    async def _open(self, stack: contextlib.AsyncExitStack, headers: dict[str, str]) -> httpx2.Response:
        """A streamed GET of ``self.url`` (redirects followed by hand, http(s) only), closed with ``stack``."""
        for _ in range(MAX_REDIRECTS + 1):
            self.requests += 1
            if self.requests > MAX_REQUESTS:
                raise _Refused("too many requests")
            request = self.client.build_request("GET", self.url, headers={"Accept-Encoding": "identity", **headers})
            response = await send_checked(self.client, request, first=self.first)  # never this machine or a LAN
            if response.is_redirect and "location" in response.headers:
                await response.aclose()
                target = self.url.join(response.headers["location"])
                if target.scheme not in ("http", "https"):
                    raise _Refused(f"redirect to a {target.scheme!r} URL")
                self.url = target
                continue
            stack.push_async_callback(response.aclose)
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise _Refused(f"content-encoding {encoding}")
            return response
        raise _Refused("too many redirects")

    async def _body(self, response: httpx2.Response, limit: int) -> bytes:
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > limit:
                raise _Refused("the server sent more than it announced")
        self.fetched += len(data)
        return bytes(data)

    async def _fetch_range(self, reader: _SpanReader, need: _Need) -> None:
        start = need.offset
        length = max(need.size, RANGE_CHUNK)
        if reader.total is not None:
            length = min(length, reader.total - start)
        if length <= 0 or self.fetched + length > self.max_bytes:
            raise _Refused("over the byte bound")
        async with contextlib.AsyncExitStack() as stack:
            response = await self._open(stack, {"Range": f"bytes={start}-{start + length - 1}"})
            got = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            if response.status_code != 206 or got is None or int(got.group(1)) != start:
                raise _Refused(f"a range request was answered with {response.status_code}")
            first, last = int(got.group(1)), int(got.group(2))
            if last < first or last - first + 1 > length:
                raise _Refused("a longer range than asked for")
            reader.spans.append((start, await self._body(response, last - first + 1)))

    # -- measuring ---------------------------------------------------------------------------------------

    async def measure(self) -> Length | None:
        async with contextlib.AsyncExitStack() as stack:
            first = min(RANGE_CHUNK, self.max_bytes)
            response = await self._open(stack, {"Range": f"bytes=0-{first - 1}"})
            if response.status_code == 206:
                got = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
                if got is None or int(got.group(1)) != 0 or not 0 <= int(got.group(2)) < first:
                    return None
                reader = _SpanReader(None if got.group(3) == "*" else int(got.group(3)))
                reader.spans.append((0, await self._body(response, int(got.group(2)) + 1)))
                await stack.aclose()
                return await self._by_ranges(reader)
            if response.status_code == 200:
                return await self._by_stream(stack, response)
            return None  # 416 (an empty file), 403, 404, ...

    async def _by_ranges(self, reader: _SpanReader) -> Length | None:
        for _ in range(MAX_REQUESTS):
            if self.requests >= MAX_REQUESTS - 1:  # one request is left for the whole file
                break
            try:
                return _pure(reader)[1]
            except _Need as need:
                await self._fetch_range(reader, need)
            except (_NeedAll, _TryFfmpeg) as exc:
                if isinstance(exc, _TryFfmpeg) and not ffmpeg_available():
                    return None
                return await self._whole(reader)
        # Ranges ran out before the reading was done (an MP3's frames are read to its end, a range at a time): the
        # whole file, within the cap, as a server without ranges sends it.
        return await self._whole(reader)

    async def _whole(self, reader: _SpanReader) -> Length | None:
        """The whole file, streamed (within ``max_bytes``), then read as a local one."""
        if reader.total is not None and reader.total > self.max_bytes:
            return None
        async with contextlib.AsyncExitStack() as stack:
            response = await self._open(stack, {})
            if response.status_code != 200:
                return None
            return await self._by_stream(stack, response)

    async def _by_stream(self, stack: contextlib.AsyncExitStack, response: httpx2.Response) -> Length | None:
        declared = response.headers.get("content-length")
        size = int(declared) if declared and declared.isdigit() else None
        if size is not None and size > self.max_bytes:
            return None
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="kie-mcp-measure-", ignore_cleanup_errors=True))
        path = Path(folder) / "input"
        handle = stack.enter_context(open(path, "w+b"))  # noqa: ASYNC230, SIM115 - a new, empty temporary file
        reader = _SpoolReader(handle, size)
        chunks = response.aiter_bytes()
        for _ in range(4 * MAX_REQUESTS):
            try:
                return _pure(reader)[1]
            except _Need as need:
                await self._spool(reader, chunks, need.offset + max(need.size, RANGE_CHUNK))
            except _NeedAll:
                await self._spool(reader, chunks, None)
            except _TryFfmpeg:
                if not ffmpeg_available():
                    return None
                await self._spool(reader, chunks, None)
                handle.flush()
                remaining = self.deadline - anyio.current_time()
                if remaining <= 0:
                    return None
                measure = functools.partial(ffmpeg_length, path, timeout=remaining)
                return await anyio.to_thread.run_sync(measure, abandon_on_cancel=True)
        return None

    async def _spool(self, reader: _SpoolReader, chunks: AsyncIterator[bytes], until: int | None) -> None:
        """Receive the body into the spool file up to ``until`` bytes (None: to its end), within the cap."""
        handle = reader.handle
        handle.seek(0, os.SEEK_END)
        while not reader.eof and (until is None or reader.spooled < until):
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                reader.eof = True
                if reader.declared is not None and reader.spooled != reader.declared:
                    raise _Refused("the body is shorter than its Content-Length") from None
                break
            reader.spooled += len(chunk)
            self.fetched += len(chunk)
            if self.fetched > self.max_bytes or (reader.declared is not None and reader.spooled > reader.declared):
                raise _Refused("over the byte bound")
            handle.write(chunk)
        handle.flush()


async def measure_url(
    client: httpx2.AsyncClient,
    url: str,
    *,
    max_bytes: int = URL_MAX_BYTES,
    timeout: float = URL_TIMEOUT,  # noqa: ASYNC109 - the whole measurement's budget, ffmpeg included
) -> float | None:
    """``url_length`` in seconds."""
    found = await url_length(client, url, max_bytes=max_bytes, timeout=timeout)
    return None if found is None else found.seconds


async def url_length(
    client: httpx2.AsyncClient,
    url: str,
    *,
    max_bytes: int = URL_MAX_BYTES,
    timeout: float = URL_TIMEOUT,  # noqa: ASYNC109 - the whole measurement's budget, ffmpeg included
) -> Length | None:
    """The length of the audio or video at ``url``, or None when it cannot be measured within the bounds.

    Fetches at most ``max_bytes`` (all requests together) within ``timeout`` seconds: Range requests when the
    server honours them (the first 64 KiB, then only the headers, sample tables and frames the readers ask for),
    else the body streamed into a temporary file, removed afterwards. http(s) only, redirects included. ``client``
    must carry no credentials (pass ``KieClient.files``): a client with an Authorization or Cookie header, or auth,
    is refused (None).

    Raises ``PrivateAddress`` (nothing fetched from there) when ``url``, or a redirect, points at this machine or
    a private network: KIE could not fetch it either, so the caller refuses the request rather than price it."""
    if max_bytes <= 0 or not _is_http(url) or _carries_credentials(client):
        return None
    result: Length | None = None
    try:
        with anyio.move_on_after(timeout) as scope:
            result = await _Remote(client, url, max_bytes, scope.deadline).measure()
    except PrivateAddress:
        raise
    except Exception as exc:  # a refused answer, a transport error, bad bytes: not measured, never raised
        log.debug("could not measure %s: %s (%s)", url, type(exc).__name__, exc)
        return None
    return _checked(result)


# ---------------------------------------------------------------------------------------------- request inputs

_AUDIO_LABEL = ("audio", "voice", "speech", "sound", "song", "music")


def input_field(spec: ModelSpec, label: str) -> str | None:
    """The wire field holding the input a rate bills by (``Rate.input_seconds``, e.g. "the input video").

    A label that is a media field's name is that field; otherwise "audio"/"voice"/... means the model's one
    audio field and "video" its one video field (kinds from ``media.inputs.field_kinds``). When a model has
    several such fields and exactly one is required, that one; otherwise None: no guess."""
    field = spec.fields.get(label)
    if field is not None and field.is_media:
        return label
    lowered = label.lower()
    kind = "audio" if any(word in lowered for word in _AUDIO_LABEL) else "video" if "video" in lowered else None
    if kind is None:
        return None
    candidates = [name for name, f in spec.fields.items() if f.is_media and field_kinds(spec, name) == {kind}]
    if len(candidates) > 1:
        candidates = [name for name in candidates if spec.fields[name].required]
    return candidates[0] if len(candidates) == 1 else None


async def measure_inputs(
    spec: ModelSpec,
    wire: Mapping[str, Any],
    *,
    local: Mapping[str, LocalFile],
    client: httpx2.AsyncClient | None,
    known: Mapping[str, float] | None = None,
    max_bytes: int = URL_MAX_BYTES,
    timeout: float = URL_TIMEOUT,  # noqa: ASYNC109 - the budget for every file of the input together
    notes: list[str] | None = None,
) -> dict[str, float]:
    """``{input label: seconds}`` for the input the applicable rate of ``spec`` bills by, when it can be measured.

    The input is ``pricing.input_to_measure``: the one the rate ``price_input`` picks (the first whose ``when``
    matches ``wire``) bills by. The wire field holding that input comes from ``input_field``. Each value in it is a
    URL (measured with ``client``, which must carry no credentials) or a key of ``local`` (a local file the request
    path already resolved, checked and hashed; measured from that very file, in a worker thread, unless ``known``
    holds its length: ``check_lengths`` measured it). When the field holds several files the billed length is their
    sum (KIE documents no rule; every per-input-second model takes one file today, and the sum is the most KIE could
    bill). Any file that cannot be measured leaves the input out: its price stays unknown. Everything within
    ``timeout`` seconds in all. Raises only ``InvalidRequest``, naming the field: for a URL (or its redirect) to this
    machine or a private network (nothing is fetched from it, and KIE could not fetch it either), for a local file
    that changed between its hash and the end of its measuring (the price would be another file's), and for a file
    (a link too: it is measured here) whose length is outside what the field takes (``inputs.length_problems``).
    A file whose headers claim less than its contents play is priced at what they play, and ``notes`` (when given)
    gets a line saying so (``header_note``), for the quote."""
    label = input_to_measure(spec, wire)
    if label is None:
        return {}
    name = input_field(spec, label)
    value = wire.get(name) if name is not None else None
    values = value if isinstance(value, list) else [value]
    if name is None or not values or not all(isinstance(v, str) and v for v in values):
        return {}
    measured: list[tuple[str, str, float]] = []
    try:
        with anyio.move_on_after(timeout) as scope:
            for index, item in enumerate(values):
                remaining = max(scope.deadline - anyio.current_time(), 0.001)
                where = f"{name}[{index}]" if isinstance(value, list) else name
                try:
                    seconds = (known or {}).get(item)
                    if seconds is None:
                        found = await _measure_one(item, local, client, max_bytes, remaining)
                        seconds = None if found is None else found.seconds
                        if found is not None and found.claimed is not None and notes is not None:
                            notes.append(header_note(_named_input(item, local), found))
                except PrivateAddress as refused:
                    hint = kie_cannot_reach(refused)
                    raise InvalidRequest(spec.id, named_for_user(spec, [Problem(where, hint)])) from None
                except ChangedFile as changed:
                    raise InvalidRequest(spec.id, named_for_user(spec, [Problem(where, _changed(changed))])) from None
                if seconds is None:
                    break
                measured.append((where, _named_input(item, local), seconds))
    except InvalidRequest:
        raise
    except Exception as exc:  # never raises: an input that cannot be measured is simply not measured
        log.debug("could not measure %s's input: %s", spec.id, exc)
    whole = len(measured) == len(values)
    if problems := length_problems(spec, wire, name, measured, whole=whole):
        raise InvalidRequest(spec.id, named_for_user(spec, problems))
    return {label: sum(seconds for *_, seconds in measured)} if whole else {}


async def check_lengths(
    spec: ModelSpec,
    wire: Mapping[str, Any],
    *,
    local: Mapping[str, LocalFile],
    timeout: float = URL_TIMEOUT,  # noqa: ASYNC109 - the budget for every file together
    notes: list[str] | None = None,
) -> tuple[dict[str, float], list[Problem]]:
    """The length of every local file in a field whose data bounds it (``MediaLimits``: each file's length, all the
    field's files together), measured from the very file that was hashed for the quote, and what is wrong with
    them (``inputs.length_problems``: the file, its length, what the field takes, what to do), so that a file KIE
    would refuse is never priced, uploaded or sent. Returns ``({local value: seconds}, problems)``: the lengths are
    reused by a price per second of that input. A link is not fetched here (``measure_inputs`` measures one that
    prices the request, and checks it); a file that cannot be measured in ``timeout`` (a WebM without ffmpeg) is
    left to KIE. A file changed since it was hashed is a problem too. A file whose headers claim less than its
    contents play is held to what they play, and ``notes`` (when given) gets a line saying so."""
    lengths: dict[str, float] = {}
    problems: list[Problem] = []
    with anyio.move_on_after(timeout) as scope:
        for name, value in wire.items():
            if length_bounds(spec, wire, name) is None or not isinstance(value, (str, list)):
                continue
            values = value if isinstance(value, list) else [value]
            measured: list[tuple[str, str, float]] = []
            for index, item in enumerate(values):
                if not isinstance(item, str) or item not in local:
                    continue  # a link, left to the price's measuring (or to KIE)
                where = f"{name}[{index}]" if isinstance(value, list) else name
                if item not in lengths:
                    remaining = max(scope.deadline - anyio.current_time(), 0.001)
                    try:
                        found = await _measure_one(item, local, None, 0, remaining)
                    except ChangedFile as changed:
                        problems.append(Problem(where, _changed(changed)))
                        continue
                    if found is None:
                        continue
                    lengths[item] = found.seconds
                    if found.claimed is not None and notes is not None:
                        notes.append(header_note(_named_input(item, local), found))
                measured.append((where, _named_input(item, local), lengths[item]))
            problems += length_problems(spec, wire, name, measured, whole=len(measured) == len(values))
    return lengths, problems


def _named_input(value: str, local: Mapping[str, LocalFile]) -> str:
    """An input as a message names it: a local file by its name (what would turn the message around escaped:
    ``unseen_escaped``), a link shortened."""
    return unseen_escaped(Path(value).name or value) if value in local else shown(value)


def _changed(changed: ChangedFile) -> str:
    return (
        f"{changed.path.name} changed while it was being read ({changed.what}), so its length could "
        "not be priced as the file that would be uploaded. Nothing was sent or spent; call again."
    )


def header_note(name: str, found: Length) -> str:
    """What the quote says of an input whose headers claim less than its contents play (``Length.claimed``)."""
    return (
        f"{name}'s headers say it is {_secs(found.claimed or 0)} s long, but its {found.by or 'contents'} play "
        f"{_secs(found.seconds)} s: it is priced, and held to the field's lengths, at {_secs(found.seconds)} s (KIE "
        "may bill what it plays, not what its headers say)."
    )


def _secs(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


async def _measure_one(
    value: str, local: Mapping[str, LocalFile], client: httpx2.AsyncClient | None, max_bytes: int, budget: float
) -> Length | None:
    if value in local:
        measure = functools.partial(judged_length, local[value], timeout=budget)
        return await anyio.to_thread.run_sync(measure, abandon_on_cancel=True)
    if is_remote(value) and client is not None:
        return await url_length(client, value, max_bytes=max_bytes, timeout=budget)
    return None
