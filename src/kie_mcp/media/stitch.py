"""Join several clips into one video, optionally with burned-in timed captions.

ffmpeg comes from the optional ``imageio-ffmpeg`` package (kie-mcp's ``video`` extra, ``VIDEO_EXTRA``), which ships a
static binary (or the one ``IMAGEIO_FFMPEG_EXE`` names: one that is not there or not executable is refused, naming
it, before anything is made); an ``ffmpeg`` on PATH is used when that package is absent.

How a join is made:

* Every input must be one video file, by its bytes (MP4/MOV/M4V, WebM/Matroska, AVI, Ogg video: ``media.sniff``),
  never a playlist or a list of other files. ffmpeg reads inputs with ``-protocol_whitelist file`` and
  ``-format_whitelist`` limited to those containers (the copy join's own list adds ``concat``), so a file that
  changes into an HLS playlist or a concat list after the check still cannot make ffmpeg read other files.
* The clips are opened once, as judged (``inputs.open_judged``: a regular file, no symbolic link anywhere in its
  path), and held open for the whole join: ffmpeg reads those very files through ``/dev/fd`` (each clip position
  its own descriptor), so a clip swapped for a link to another file after it was checked is never read. Where
  ``/dev/fd`` is missing (Windows) ffmpeg gets the checked names.
* Every input is probed (``ffmpeg -hide_banner -i FILE``, stderr parsed) for its container, duration, video codec,
  profile, pixel format, resolution, sample aspect ratio, frame rate, rotation and audio stream. Only the lines
  ffmpeg writes itself are read (``report_lines``: tagged by ffmpeg's log level, in ffmpeg's own layout, ffmpeg 4's
  streams four spaces in as well as later ones' two), never the file's metadata printed among them: a title
  "Duration: 00:01:00.00" is no length, a key named "Stream #0:0(und)" no stream, a stream named "rotation of 90
  degrees" no turn (a display matrix is).
* When every clip has the same video and audio parameters and there are no captions, the clips are joined with the
  concat demuxer and ``-c copy``: fast and lossless. Should that fail (a container that cannot hold the codecs, say),
  the join is retried with a re-encode; never when the disk is full (``DiskFull``: a re-encode writes as much again).
* Otherwise the clips are re-encoded with the concat filter to H.264/AAC at the first clip's resolution and frame
  rate; other clips are scaled to fit and padded (letterboxed) with black. Clips without audio get silence, unless
  no clip has audio, in which case the output has none either.
* Captions are written to an SRT file and burned in with the ``subtitles`` filter (libass); a build without it uses
  one ``drawtext`` filter per caption, which does not wrap, so each caption is wrapped first to the frame's width
  less libass's side margins (``wrap_caption``; its lines centred where drawtext has ``text_align``, ffmpeg 6.1+); a
  build with neither is refused with a clear error. Each caption is one cue at its own times: ``-->`` in its text,
  which would make a line of it a timing line of its own, is written ``→``; text in ``{...}``, which libass reads as
  style tags and never shows, is named in the note. In a portrait video the captions sit ``PORTRAIT_MARGIN`` of the
  height up from the bottom, clear of a feed's buttons; landscape keeps libass's low margin. libass names each
  character no font on this computer has (``fontselect: failed to find any fallback with glyph 0x...``, a warning),
  which it draws as an empty box: that encode runs at ``-loglevel level+warning`` so those reports can be read, and
  the note then names the characters and the fonts to install (``glyphs``). The video is kept, boxes and all.

A join goes to its session's folder; without a session, to the folder its clips were saved in when they are all of
one session (``join_folder``), as a follow-up goes to its source's.

ffmpeg always writes to a temporary file beside ``output``, which takes ``output``'s name only once ffmpeg has
succeeded and the result probes as a video, so a failed, timed-out or cancelled join never leaves a half-written file.
The join's name is ``output_name`` in plain ASCII, as every file kie-mcp saves (``output_file_name``; ``name_note``
says how it differs from the name asked for). An existing file is never replaced (it may be another task's paid
result): the join then takes the first free name ``<name>-2.mp4``, ``<name>-3.mp4``, ... and its note says so. A
name is free only with its sidecar's name (``<name>.json``), so a join's sidecar is never another's left behind, nor
a task's.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.abc
import anyio.to_thread
from anyio.abc import ByteReceiveStream

from kie_mcp.media import glyphs
from kie_mcp.media.downloads import (
    folder_session,
    in_ascii,
    name_label,
    named_folder,
    output_folder,
    real_folder,
    session_folder,
    temp_name,
    unspelled_digest,
)
from kie_mcp.media.inputs import RefusedInput, open_judged, read_judged_head
from kie_mcp.media.saved import OUTPUTS
from kie_mcp.media.sniff import describe, sniff
from kie_mcp.processes import owner_gone, this_process
from kie_mcp.redact import redact
from kie_mcp.regular import open_regular
from kie_mcp.words import path_text, plain

log = logging.getLogger(__name__)  # stderr only, through the server's logging set-up

# How to get the bundled ffmpeg while kie-mcp is installed from a checkout or a wheel (it is not on PyPI yet).
VIDEO_EXTRA = (
    "kie-mcp's video extra, which ships a static ffmpeg (`uv tool install '/path/to/kie-mcp[video]'` from a "
    "checkout, or `uv sync --extra video` inside one)"
)
INSTALL_HELP = (
    f"Stitching videos needs ffmpeg, and none was found. Install {VIDEO_EXTRA}; alternatively install ffmpeg "
    "system-wide so `ffmpeg` is on PATH."
)

FFMPEG_SETTING = "IMAGEIO_FFMPEG_EXE"  # the ffmpeg imageio-ffmpeg (kie-mcp's video extra) is told to use

# Output container by file extension (ffmpeg muxer name).
MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Demuxers that read still images or text, which ffmpeg would otherwise happily report as "video".
_NOT_VIDEO_FORMATS = {"image2", "tty", "lavfi", "srt", "ass", "webvtt", "subviewer", "microdvd"}
_IMAGE_CODECS = {"png", "mjpeg", "bmp", "tiff", "webp", "jpegls", "jpeg2000", "ansi", "apng_single", "jpegxl"}
_NTSC_RATES = {"23.98": "24000/1001", "29.97": "30000/1001", "47.95": "48000/1001", "59.94": "60000/1001"}
_PROBE_TIMEOUT = 60.0
_STDERR_TAIL = 12
_OUTPUT_LIMIT = 256 * 1024
_AUDIO_RATE = 48000
MAX_CLIPS = 200  # one ffmpeg command line holds every clip; far more would not fit the system's argument limit
MAX_CAPTIONS = 200  # without libass each caption is a filter on the command line (about 200 characters)
MAX_CAPTION_SECONDS = 86400.0  # a day: any real video is shorter, and SRT times stay small integers
# ffmpeg demuxers of the single-file video formats media.sniff recognises; nothing else is ever opened.
_VIDEO_DEMUXERS = ("mov", "matroska", "avi", "ogg")
FD_FOLDER = Path("/dev/fd")  # an open descriptor by name: how ffmpeg is given the files that were checked


def by_descriptor() -> bool:
    """Whether ffmpeg can be given an open file as ``/dev/fd/N`` (with the descriptor passed on): not on Windows,
    which has no ``/dev/fd``; there it gets the checked name."""
    return os.name != "nt" and FD_FOLDER.is_dir()


def _whitelist(*formats: str) -> list[str]:
    """ffmpeg input options that let it open local files only, read with ``formats`` only."""
    return ["-protocol_whitelist", "file", "-format_whitelist", ",".join(formats)]


SINGLE_FILE = _whitelist(*_VIDEO_DEMUXERS)
_FORMATS_TAKEN = "Stitching takes single video files: MP4, MOV, M4V, WebM, Matroska (MKV), AVI or Ogg video."


class StitchError(Exception):
    """Stitching failed; the message says what went wrong and what to do about it."""


class DiskFull(StitchError):
    """ffmpeg could not write the join: the disk is full. Nothing is tried again (a re-encode would fail the same)."""


@dataclass(frozen=True)
class Caption:
    start: float  # seconds from the start of the joined video
    end: float
    text: str


@dataclass(frozen=True)
class StitchResult:
    path: Path
    duration: float | None  # seconds, probed from the written file
    reencoded: bool
    inputs: list[Path]
    note: str  # what was done and why, for a person
    # Caption characters no font on this computer has (drawn as empty boxes), in caption order: () when libass drew
    # every one, None when that was not checked (no captions, drawtext, or an ffmpeg without log level tags).
    missing_glyphs: tuple[str, ...] | None = None


# --------------------------------------------------------------------------------------------------------- ffmpeg


def find_ffmpeg() -> str:
    """The ffmpeg to use: imageio-ffmpeg's (``IMAGEIO_FFMPEG_EXE``, else its bundled binary), else ``ffmpeg`` on
    PATH, else StitchError. Only a file that is there and executable is used: one ``IMAGEIO_FFMPEG_EXE`` names that is
    not (a stale setting) is a StitchError naming it, raised before anything is made, never "none was found"."""
    try:
        import imageio_ffmpeg
    except ImportError:
        pass
    else:
        try:
            exe = imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError:  # the package is installed but has no binary for this platform
            exe = None
        if exe and shutil.which(exe):  # a path to an executable file, or a command on PATH
            return exe
        if exe and exe == os.environ.get(FFMPEG_SETTING):  # imageio-ffmpeg takes the setting unchecked
            raise StitchError(_unrunnable(exe))
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    raise StitchError(INSTALL_HELP)


def _unrunnable(exe: str) -> str:
    """Why the ffmpeg ``IMAGEIO_FFMPEG_EXE`` names cannot run, and what to do."""
    where = Path(exe)
    why = (
        "nothing is there"
        if not os.path.lexists(where)
        else "it is a folder"
        if where.is_dir()
        else "it is not an executable file"
    )
    return (
        f"Stitching videos needs ffmpeg, and the one {FFMPEG_SETTING} names ({path_text(exe)}) cannot run: {why}. "
        f"Point {FFMPEG_SETTING} at an ffmpeg that runs, or unset it: kie-mcp then uses the ffmpeg of {VIDEO_EXTRA}, "
        "else `ffmpeg` on PATH."
    )


@dataclass(frozen=True)
class Capabilities:
    filters: frozenset[str]
    encoders: frozenset[str]
    drawtext_options: frozenset[str] = frozenset()  # what this build's drawtext takes (text_align: ffmpeg 6.1+)

    @property
    def subtitles(self) -> bool:
        return "subtitles" in self.filters

    @property
    def drawtext(self) -> bool:
        return "drawtext" in self.filters


_capabilities_cache: dict[str, Capabilities] = {}


_OPTION = re.compile(r"^\s+([a-z_][a-z0-9_]*)\s+<", re.MULTILINE)  # an option's line in ``ffmpeg -h filter=X``


def _listed_names(text: str) -> frozenset[str]:
    """Names from ``ffmpeg -filters`` / ``-encoders``: lines of flags, a name, then a description."""
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and re.fullmatch(r"[A-Z.|]{2,8}", parts[0]) and parts[1] != "=":
            names.add(parts[1])
    return frozenset(names)


async def ffmpeg_capabilities(ffmpeg: str) -> Capabilities:
    """Which filters and encoders this ffmpeg build has (cached per binary)."""
    if ffmpeg not in _capabilities_cache:
        try:
            with anyio.fail_after(_PROBE_TIMEOUT):
                filters = await _run([ffmpeg, "-hide_banner", "-filters"])
                encoders = await _run([ffmpeg, "-hide_banner", "-encoders"])
                names = _listed_names(filters.stdout.decode(errors="replace"))
                help_text = (
                    await _run([ffmpeg, "-hide_banner", "-h", "filter=drawtext"]) if "drawtext" in names else None
                )
        except TimeoutError:
            raise StitchError(f"{ffmpeg} did not list its filters within {_PROBE_TIMEOUT:g} s.") from None
        _capabilities_cache[ffmpeg] = Capabilities(
            names,
            _listed_names(encoders.stdout.decode(errors="replace")),
            frozenset(_OPTION.findall(help_text.stdout.decode(errors="replace"))) if help_text else frozenset(),
        )
    return _capabilities_cache[ffmpeg]


async def _run(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    held: _Held | None = None,
    sieve: Callable[[bytes], bytes | None] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command without blocking the event loop, with the ``held`` clips' descriptors (rewound) passed on.

    With ``sieve``, each stderr line (without its line break) goes through it as it arrives and only what it
    returns is kept: a long encode can print far more than is kept, and what matters may come early.

    On cancellation or timeout (the caller's scope) the process is killed and reaped before this returns, so ffmpeg
    never outlives the call and cannot write after its temporary output has been removed.
    """
    stops = _STOPS[0]
    try:
        # Shielded: a spawn cancelled half-way would leave a running process that nobody owns.
        with anyio.CancelScope(shield=True):
            fds = held.rewound() if held is not None else ()
            process = await anyio.open_process(list(command), stdin=subprocess.DEVNULL, cwd=cwd, pass_fds=fds)
    except FileNotFoundError as exc:  # gone since find_ffmpeg found it: only a missing binary calls for one
        raise StitchError(
            f"Could not run ffmpeg ({command[0]}): {exc}. It is no longer there: install {VIDEO_EXTRA} again, or "
            "ffmpeg system-wide so `ffmpeg` is on PATH."
        ) from exc
    except OSError as exc:
        hint = ""
        if exc.errno == errno.E2BIG:
            hint = " The command line was too long for this system: join fewer clips at a time, or shorter paths."
        raise StitchError(f"Could not run ffmpeg ({command[0]}): {exc}.{hint}") from exc
    output = [b"", b""]

    async def drain(stream: ByteReceiveStream, index: int, sieve: Callable[[bytes], bytes | None] | None) -> None:
        kept = bytearray()
        partial = b""
        async for chunk in stream:
            if sieve is None:
                kept += chunk
            else:
                *lines, partial = (partial + chunk).split(b"\n")
                if len(partial) > _OUTPUT_LIMIT:  # a "line" this long is not a log line; let the sieve judge it now
                    lines.append(partial)
                    partial = b""
                sifted = (sieve(line.rstrip(b"\r")) for line in lines)
                kept += b"".join(line + b"\n" for line in sifted if line is not None)
            del kept[:-_OUTPUT_LIMIT]  # a corrupt input can make ffmpeg print megabytes; only the end matters
        if sieve is not None and partial and (last := sieve(partial.rstrip(b"\r"))) is not None:
            kept += last
        output[index] = bytes(kept)

    # Leaving ``process`` by cancellation kills the process and waits for it.
    _RUNNING.add(process)
    if _STOPS[0] != stops:  # ``stop_all`` came while it was being started, and could not kill it then
        with contextlib.suppress(OSError, ProcessLookupError):
            process.kill()
    try:
        async with process, anyio.create_task_group() as group:
            if process.stdout:
                group.start_soon(drain, process.stdout, 0, None)
            if process.stderr:
                group.start_soon(drain, process.stderr, 1, sieve)
            returncode = await process.wait()
    finally:
        _RUNNING.discard(process)
    return subprocess.CompletedProcess(list(command), returncode, output[0], output[1])


# What runs and what is being written now, for ``stop_all``: a server stopped by a signal ends them first.
_RUNNING: set[anyio.abc.Process] = set()
_WRITING: set[Path] = set()
_STOPS = [0]  # how many times ``stop_all`` ran: a process started meanwhile (not yet in _RUNNING) is killed as it is


def stop_all() -> None:
    """Kill every ffmpeg this process runs and remove the joins they were writing: called when the server is
    stopped by a signal (SIGTERM from a host, SIGHUP from a closed terminal), which ends the process before any
    cancellation could, and which ffmpeg, a process of its own, would otherwise outlive, writing on."""
    _STOPS[0] += 1
    for process in list(_RUNNING):
        with contextlib.suppress(OSError, ProcessLookupError):
            process.kill()
    for temp in list(_WRITING):
        _remove(temp)


def _tail(stderr: bytes, lines: int = _STDERR_TAIL) -> str:
    text = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return "\n".join(text[-lines:]) or "(ffmpeg printed nothing)"


# --------------------------------------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class _Audio:
    codec: str
    profile: str | None
    sample_rate: int | None
    channels: str | None


@dataclass(frozen=True)
class Probe:
    path: Path
    container: str
    duration: float | None
    codec: str
    profile: str | None
    pix_fmt: str | None
    width: int
    height: int
    sar: str | None
    fps: str | None  # as ffmpeg prints it: "24", "29.97"
    rotation: int
    audio: _Audio | None
    source: str | None = None  # what ffmpeg opens for this clip (its held descriptor), when not ``path``

    @property
    def input(self) -> str:
        return self.source or str(self.path)

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown, after the rotation ffmpeg applies when decoding."""
        if self.rotation % 180 == 90:
            return self.height, self.width
        return self.width, self.height

    def describe(self) -> str:
        audio = f"{self.audio.codec} audio" if self.audio else "no audio"
        fps = f"{self.fps} fps" if self.fps else "unknown fps"
        return f"{self.codec} {self.width}x{self.height} {fps}, {audio}"


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses or brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(depth - 1, 0)
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


# How ffmpeg's report of an input (``ffmpeg -i``, on stderr) is read. At this log level ffmpeg tags each line it begins
# ``[info] `` (ffmpeg 4.0 and later); what a file wrote into the report, a metadata key or value holding a line break
# (a title "x\n  Duration: 01:00:00.00"), goes on in a line ffmpeg began and is never tagged, so it is never taken for
# a line of ffmpeg's own. Of the tagged lines only those of ffmpeg's own layout are read, never a metadata value or key
# that says the same words (a title "Duration: 00:01:00.00", a stream name "rotation of 90 degrees"). The layout, in
# every ffmpeg: the file's own metadata (keys four spaces in), then the input's ``  Duration: `` line (two), then its
# chapters, programs and streams, each heading a ``Metadata:`` or ``Side data:`` section of lines indented past it.
# A ``Stream #`` line is two spaces in from ffmpeg 5.0, four before (Debian 11's 4.3, Ubuntu 22.04's 4.4, and 3.x), as
# far in as a file's metadata key: one named "Stream #0:0(und)" prints "    Stream #0:0(und): <its value>". So a
# stream is read only after the Duration line and outside any section, and a rotation only from the video stream's
# side data.
REPORT_LEVEL = ("-loglevel", "repeat+level+info")
_OWN = "[info] "
_LEVEL_TAG = re.compile(r"\[(?:panic|fatal|error|warning|info|verbose|debug|trace)\] ")
_DURATION_LINE = "  Duration: "  # the input's, two spaces in (every ffmpeg)
_HEADER_DURATION = re.compile(r"  Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_STREAM = re.compile(r"(?:  |    )Stream #\d+:\d+\S*: (Video|Audio|Subtitle|Data|Attachment): (.*)")
_SECTION = re.compile(r"( +)(Metadata|Side data):")  # a heading; a metadata key's line has ": " after its words
# The rotation a display matrix gives (ffmpeg 7 and later write "Display Matrix"): the whole line, so a metadata key
# of those words (its line goes on ": <value>") is no rotation.
_MATRIX_ROTATION = re.compile(r"\s+(?:displaymatrix|Display Matrix): rotation of (-?\d+(?:\.\d+)?) degrees")
_ROTATE_TAG = re.compile(r"\s+rotate {10}: (-?\d+(?:\.\d+)?)", re.IGNORECASE)  # a bare number, as ffmpeg 3 read it


def levels_refused(stderr: bytes) -> bool:
    """Whether ffmpeg refused ``REPORT_LEVEL``'s level tags (before ffmpeg 4.0): it says so first, and reads no file."""
    return stderr.lstrip().startswith(b"Invalid loglevel")


def report_lines(report: str, *, tagged: bool) -> list[str]:
    """The lines of ``report`` ffmpeg began itself (``tagged``: run with ``REPORT_LEVEL``), without their tag; an
    untagged report (an ffmpeg before 4.0), every line, held to ffmpeg's layout alone. Split at line feeds only:
    ``str.splitlines`` would also split at a carriage return, U+2028 and others, which a metadata value can hold."""
    lines = [line.removesuffix("\r") for line in report.split("\n")]
    if not tagged:
        return lines
    return [line[len(_OWN) :] for line in lines if line.startswith(_OWN)]


def _duration_at(lines: Sequence[str]) -> int | None:
    """Where the input's own ``  Duration: `` line is in ``lines`` (``report_lines``): the first line so begun, as
    ffmpeg prints the file's metadata before it four spaces in, and its chapters, programs and streams after it."""
    return next((n for n, line in enumerate(lines) if line.startswith(_DURATION_LINE)), None)


def report_duration(lines: Sequence[str]) -> float | None:
    """The input's length by ffmpeg's report (``report_lines``): its own ``  Duration: `` line, never a metadata
    value or key of those words; None for "N/A" or none."""
    at = _duration_at(lines)
    found = _HEADER_DURATION.match(lines[at]) if at is not None else None
    if found is None:
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def parse_probe(path: Path, stderr: str, *, tagged: bool = False) -> Probe:
    """Read what ``ffmpeg -hide_banner -i FILE`` printed (``tagged``: with ``REPORT_LEVEL``, as ``probe`` runs it);
    raises StitchError when it is not a video."""
    lines = report_lines(stderr, tagged=tagged)
    container_match = re.search(r"^Input #0, (.+?), from ", "\n".join(lines), re.MULTILINE)
    if not container_match:
        reason = _LEVEL_TAG.sub("", _tail(stderr.encode(), 3)).replace("\n", " / ")
        raise StitchError(f"{path} is not a video ffmpeg can read ({reason}).")
    container = container_match.group(1)
    duration = report_duration(lines)

    video: str | None = None
    audio: str | None = None
    matrix: int | None = None  # the video stream's display matrix, which ffmpeg turns it by
    tag: int | None = None  # its ``rotate`` tag, which only ffmpeg before 4.0 turned it by (an untagged report)
    current: str | None = None
    section: tuple[str, int] | None = None  # the heading whose lines follow, and how far in it is
    at = _duration_at(lines)
    for line in lines[at + 1 :] if at is not None else ():
        indent = len(line) - len(line.lstrip(" "))
        if section is not None and indent > section[1]:  # a line of the section: a metadata key's, side data
            if current != "video":
                continue
            if section[0] == "Side data" and (rotated := _MATRIX_ROTATION.fullmatch(line)):
                matrix = round(float(rotated.group(1))) % 360
            elif section[0] == "Metadata" and not tagged and (rotated := _ROTATE_TAG.fullmatch(line)):
                tag = round(float(rotated.group(1))) % 360
            continue
        section = None
        if heading := _SECTION.fullmatch(line):  # a section of the stream (chapter, program) above
            section = heading.group(2), indent
            continue
        current = None  # a line of ffmpeg's own that heads no section: a stream's, a chapter's, a program's
        if stream := _STREAM.fullmatch(line):
            kind, spec = stream.groups()
            if kind == "Video" and video is None and "(attached pic)" not in spec:
                video, current = spec, "video"
            elif kind == "Audio" and audio is None:
                audio = spec
    rotation = tag or matrix or 0  # ffmpeg 3 turned by a tag other than 0 first
    if video is None:
        what = "audio only" if audio else "no video stream"
        raise StitchError(f"{path} is not a video ({what}; ffmpeg reads it as {container!r}).")

    parts = _split_top(video)
    codec_field = parts[0]
    codec = codec_field.split()[0]
    profile_match = re.match(r"\S+ \(([^)]*)\)", codec_field)
    profile = profile_match.group(1) if profile_match and "/" not in profile_match.group(1) else None
    if container in _NOT_VIDEO_FORMATS or container.endswith("_pipe") or codec in _IMAGE_CODECS:
        raise StitchError(f"{path} is not a video: ffmpeg reads it as {container!r} ({codec}), a still image or text.")
    if container.split(",")[0] not in _VIDEO_DEMUXERS:  # a playlist or list would make ffmpeg read other files
        raise StitchError(f"{path} is not a single video file: ffmpeg reads it as {container!r}. {_FORMATS_TAKEN}")
    size = re.search(r"\b(\d{1,5})x(\d{1,5})\b", video)
    if not size:
        raise StitchError(f"{path}: could not read the video's resolution from ffmpeg's report.")
    pix_fmt = parts[1].split("(")[0].strip() if len(parts) > 1 and not re.search(r"\d+x\d+", parts[1]) else None
    sar = re.search(r"\[SAR (\d+:\d+)", video)
    fps = re.search(r"(\d+(?:\.\d+)?k?) fps", video) or re.search(r"(\d+(?:\.\d+)?k?) tbr", video)

    audio_info = None
    if audio is not None:
        audio_parts = _split_top(audio)
        audio_codec_field = audio_parts[0]
        audio_profile = re.match(r"\S+ \(([^)]*)\)", audio_codec_field)
        rate = re.search(r"(\d+) Hz", audio)
        hz_index = next((i for i, part in enumerate(audio_parts) if part.endswith(" Hz")), None)
        channels = audio_parts[hz_index + 1] if hz_index is not None and hz_index + 1 < len(audio_parts) else None
        audio_info = _Audio(
            codec=audio_codec_field.split()[0],
            profile=audio_profile.group(1) if audio_profile and "/" not in audio_profile.group(1) else None,
            sample_rate=int(rate.group(1)) if rate else None,
            channels=channels,
        )
    return Probe(
        path=path,
        container=container,
        duration=duration,
        codec=codec,
        profile=profile,
        pix_fmt=pix_fmt,
        width=int(size.group(1)),
        height=int(size.group(2)),
        sar=sar.group(1) if sar else None,
        fps=fps.group(1) if fps else None,
        rotation=rotation,
        audio=audio_info,
    )


async def probe(ffmpeg: str, path: Path, *, held: _Held | None = None, position: int = 0) -> Probe:
    """Probe one file with ``ffmpeg -i`` (ffmpeg exits non-zero since no output is given; stderr is the report);
    with ``held``, the clip at ``position`` read through its held descriptor."""
    source = held.sources[position] if held is not None else None

    def command(*level: str) -> list[str]:
        return [ffmpeg, "-hide_banner", "-nostdin", *level, *SINGLE_FILE, "-i", source or str(path)]

    try:
        with anyio.fail_after(_PROBE_TIMEOUT):
            result = await _run(command(*REPORT_LEVEL), held=held)
            tagged = not levels_refused(result.stderr)
            if not tagged:  # before ffmpeg 4.0: the report without tags
                result = await _run(command(), held=held)
    except TimeoutError:
        raise StitchError(f"ffmpeg took longer than {_PROBE_TIMEOUT:g} s to read {path}.") from None
    try:  # read as ffmpeg printed it: a clip's name put in for /dev/fd/N is no line of ffmpeg's
        probed = parse_probe(path, result.stderr.decode(errors="replace"), tagged=tagged)
    except StitchError as exc:
        raise StitchError(held.named(str(exc)) if held is not None else str(exc)) from None
    return replace(probed, source=source)


def copy_mismatch(probes: Sequence[Probe]) -> str | None:
    """Why the clips cannot be joined by stream copy, or None when they can."""
    first = probes[0]
    checks = [
        ("video codec", lambda p: (p.codec, p.profile)),
        ("pixel format", lambda p: p.pix_fmt),
        ("resolution", lambda p: (p.width, p.height)),
        ("pixel aspect ratio", lambda p: p.sar),
        ("frame rate", lambda p: p.fps),
        ("rotation", lambda p: p.rotation),
        ("audio", lambda p: p.audio is not None),
        ("audio format", lambda p: p.audio),
    ]
    for index, clip in enumerate(probes[1:], start=2):
        for label, key in checks:
            if key(clip) != key(first):
                return (
                    f"clip {index} ({clip.path.name}: {clip.describe()}) differs from clip 1 "
                    f"({first.path.name}: {first.describe()}) in {label}"
                )
    return None


# --------------------------------------------------------------------------------------------------------- commands


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def _caption_text(text: str) -> str:
    """Caption text without blank lines (a blank line ends an SRT cue) or surrounding whitespace, and with any secret
    redacted: the API key pasted into a caption is never burned into a video or written to a caption file."""
    return "\n".join(line.strip() for line in redact(text).strip().splitlines() if line.strip())


SRT_ARROW = "-->"  # what makes a line an SRT timing line, for ffmpeg's reader: never left in a caption's text
ARROW_SHOWN = "\u2192"  # → : what a caption's "-->" is burned in as


def _srt_text(text: str) -> str:
    """A caption's text as written to the SRT file: ``_caption_text`` with each ``-->`` shown as ``→``.

    ffmpeg's SRT reader starts a new cue at any line holding ``-->`` between two times, whatever came before it (and
    takes a number on the line above it for that cue's index), so caption text holding a timing line would burn text
    in at times the caller never gave. Without ``-->`` no line reads as a timing line, so a line of digits stays text
    too, and each caption is exactly one cue at its own times."""
    return _caption_text(text).replace(SRT_ARROW, ARROW_SHOWN)


def write_srt(captions: Sequence[Caption], path: Path) -> None:
    cues = [
        f"{number}\n{_srt_time(c.start)} --> {_srt_time(c.end)}\n{_srt_text(c.text)}\n"
        for number, c in enumerate(sorted(captions, key=lambda c: (c.start, c.end)), start=1)
    ]
    path.write_text("\n".join(cues), encoding="utf-8")


_BRACED = re.compile(r"\{[^}]*\}")  # libass reads what is between braces as style tags, and never shows it


def _libass_changes(captions: Sequence[Caption]) -> list[str]:
    """What the answer says about caption text libass will not show as given: ``-->`` (shown as ``→``), text in
    ``{...}`` (read as style tags, silently) and a backslash before n, N or h (a line break or a space)."""
    arrows = [str(n) for n, c in enumerate(captions, start=1) if SRT_ARROW in _caption_text(c.text)]
    texts = {n: _srt_text(c.text) for n, c in enumerate(captions, start=1)}
    braced = {n: _BRACED.findall(text[: text.rfind("}") + 1]) for n, text in texts.items()}
    notes = []
    if arrows:
        notes.append(
            f"'-->' in caption(s) {', '.join(arrows)} is shown as '{ARROW_SHOWN}' (in a caption file it would start "
            "a caption of its own)"
        )
    if any(braced.values()):
        shown = "; ".join(f"caption {n}: {plain(' '.join(found), limit=80)}" for n, found in braced.items() if found)
        notes.append(
            f"text inside {{...}} is not shown (libass reads it as style tags) ({shown}): write it without braces "
            "to show it"
        )
    escaped = [str(n) for n, c in enumerate(captions, start=1) if _LIBASS_ESCAPE.search(_srt_text(c.text))]
    if escaped:
        notes.append(
            f"in caption(s) {', '.join(escaped)}, a backslash before n or N is shown as a line break and before h "
            "as a space, as libass reads them (a path such as C:\\new shows as 'C:' and 'ew'): write another "
            "character there to show it as typed"
        )
    return notes


_LIBASS_ESCAPE = re.compile(r"\\[nNh]")  # libass's escapes in subtitle text: a line break, a soft one, a hard space


def concat_list_line(path: Path | str) -> str:
    """One line of a concat-demuxer list: the path single-quoted, each ``'`` written as ``'\\''``."""
    return "file '" + str(path).replace("'", "'\\''") + "'"


def _fps_expr(fps: str | None) -> str:
    if not fps:
        return "30"
    if fps in _NTSC_RATES:
        return _NTSC_RATES[fps]
    if fps.endswith("k"):
        return str(round(float(fps[:-1]) * 1000))
    return fps


def _even(value: int) -> int:
    return max(2, value - value % 2)


def _video_encoder(caps: Capabilities) -> tuple[list[str], str]:
    if "libx264" in caps.encoders:
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"], "H.264"
    if "libopenh264" in caps.encoders:
        return ["-c:v", "libopenh264", "-b:v", "8M", "-pix_fmt", "yuv420p"], "H.264"
    return ["-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p"], "MPEG-4 Part 2 (this ffmpeg has no H.264 encoder)"


# Portrait (9:16) feeds cover the bottom fifth or so of the picture with their buttons and the post's text: there,
# captions sit this far up from the bottom edge, clear of them. Landscape keeps libass's usual low margin.
PORTRAIT_MARGIN = 0.18  # of the height
_SRT_PLAY_HEIGHT = 288  # the script height ffmpeg gives an SRT file (PlayResY): libass's margins are in its units


def _portrait(width: int, height: int) -> bool:
    return height > width


def _subtitles_filter(width: int, height: int) -> str:
    """The libass filter for ``captions.srt``: its usual style, raised to ``PORTRAIT_MARGIN`` in a portrait video."""
    if not _portrait(width, height):
        return "subtitles=captions.srt"
    return f"subtitles=captions.srt:force_style='MarginV={round(_SRT_PLAY_HEIGHT * PORTRAIT_MARGIN)}'"


# drawtext does not wrap, so a caption is wrapped before it is drawn, as libass would: within the frame less its side
# margins (libass's MarginL and MarginR, 10 of the 384 units of an SRT's script width) and the caption box's border.
# A line's width is estimated from the font size: glyph advances in ems, a little over those of the common sans fonts
# (DejaVu Sans: lower case 0.56, capitals 0.67, digits 0.64, space 0.32; CJK and other wide characters 1.0).
_SRT_PLAY_WIDTH = 384
_SRT_SIDE_MARGIN = 10
_WIDE_EM, _CAPITAL_EM, _SPACE_EM, _OTHER_EM = 1.0, 0.7, 0.32, 0.6
# Never the first character of a line: closing punctuation, small kana and the long-vowel mark (kinsoku).
_NO_LINE_START = frozenset(",.!?:;)]}%、。，．！？：；）」』】〕〉》ーぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々")


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def text_ems(text: str) -> float:
    """The estimated width of ``text`` in ems."""
    total = 0.0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        if _wide(ch):
            total += _WIDE_EM
        elif ch.isspace():
            total += _SPACE_EM
        elif ch.isupper() or ch.isdigit():
            total += _CAPITAL_EM
        else:
            total += _OTHER_EM
    return total


_ZWJ = "\u200d"
_LEADING_VOWELS = frozenset("\u0e40\u0e41\u0e42\u0e43\u0e44\u0ec0\u0ec1\u0ec2\u0ec3\u0ec4")  # Thai, Lao


def _continues(previous: str, ch: str) -> bool:
    """Whether ``ch`` belongs to the character (grapheme cluster) ``previous`` ends, so no line may start with it: a
    mark (a vowel sign of Thai or Devanagari as much as an accent), what a joiner or a virama joins, a variation
    selector, a skin tone, the second half of a flag, and whatever follows a Thai or Lao vowel written before it."""
    if not previous:
        return False
    last, code = previous[-1], ord(ch)
    return (
        unicodedata.category(ch).startswith("M")
        or _ZWJ in (ch, last)
        or unicodedata.combining(last) == 9  # a virama: the next consonant is part of the conjunct
        or last in _LEADING_VOWELS
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F  # the tags of a subdivision flag
        or (_regional(ch) and _regional(last) and sum(map(_regional, previous)) % 2 == 1)
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _break_units(line: str) -> list[tuple[str, bool]]:
    """The pieces a line may be broken between, each with whether a space comes before it: words, and each wide
    (CJK) character on its own, closing punctuation and small kana kept with what they follow, and never a
    character cut from its cluster (``_continues``)."""
    units: list[tuple[str, bool]] = []
    spaced = joinable = False  # a space since the last unit; whether the last unit is a word still being written
    for ch in line:
        if ch.isspace() and not (units and not spaced and _continues(units[-1][0], ch)):
            spaced, joinable = bool(units), False
            continue
        continues = bool(units) and _continues(units[-1][0], ch)
        kept_with_last = continues or ch in _NO_LINE_START or (joinable and not _wide(ch))
        if units and not spaced and kept_with_last:
            units[-1] = (units[-1][0] + ch, units[-1][1])
            joinable = joinable and not _wide(ch)
        else:
            units.append((ch, spaced))
            spaced, joinable = False, not _wide(ch)
    return units


def _hard_break(word: str, limit: float) -> list[tuple[str, float]]:
    """``word`` cut into pieces that each fit ``limit`` ems (a piece has at least one character), with their widths."""
    pieces: list[tuple[str, float]] = []
    text, width = "", 0.0
    for ch in word:
        added = text_ems(ch)
        if text and width + added > limit and not _continues(text, ch):
            pieces.append((text, width))
            text, width = "", 0.0
        text, width = text + ch, width + added
    return [*pieces, (text, width)]


def _greedy(units: list[tuple[str, bool, float]], limit: float) -> list[str]:
    """Lines filled in order up to ``limit`` ems from ``units`` (text, whether a space comes before it, its width)."""
    lines: list[str] = []
    current, width = "", 0.0
    for text, spaced, ems in units:
        gap = _SPACE_EM if current and spaced else 0.0
        if width + gap + ems <= limit:
            current, width = current + (" " if gap else "") + text, width + gap + ems
            continue
        if current:
            lines.append(current)
        *full, (current, width) = _hard_break(text, limit)
        lines += [piece for piece, _ in full]
    return [*lines, current] if current else lines


def wrap_caption(text: str, limit: float) -> list[str]:
    """The lines of a caption, each at most ``limit`` ems wide by ``text_ems``'s estimate: broken at spaces and between
    wide (CJK) characters, a word too long for a line cut where it must, and the lines of each of the caption's own
    lines made about equally long, as libass lays out a caption."""
    wrapped: list[str] = []
    for line in text.splitlines():
        units = [(unit, spaced, text_ems(unit)) for unit, spaced in _break_units(line)]
        lines = _greedy(units, limit)
        if len(lines) > 1:  # the narrowest width needing no more lines (evenly filled), never cutting a word that fits
            low, high = max((ems for _, _, ems in units if ems <= limit), default=0.0), limit
            for _ in range(12):
                middle = (low + high) / 2
                low, high = (low, middle) if len(_greedy(units, middle)) <= len(lines) else (middle, high)
            lines = _greedy(units, high)
        wrapped += lines
    return wrapped


def _drawtext_chain(captions: Sequence[Caption], width: int, height: int, workdir: Path, caps: Capabilities) -> str:
    """One drawtext filter per caption, wrapped to the frame (``wrap_caption``) with its lines centred where this
    drawtext can centre them (``text_align``); each text sits in its own file so nothing in it needs escaping."""
    size = max(12, height // 16)
    border = max(4, size // 3)
    margin = round(height * PORTRAIT_MARGIN) if _portrait(width, height) else max(8, height // 14)
    side = round(width * _SRT_SIDE_MARGIN / _SRT_PLAY_WIDTH)
    limit = max(1.0, (width - 2 * (side + border)) / size)
    centred = ":text_align=C" if "text_align" in caps.drawtext_options else ""
    filters = []
    for index, caption in enumerate(captions):
        name = f"caption_{index}.txt"
        (workdir / name).write_text("\n".join(wrap_caption(_caption_text(caption.text), limit)), encoding="utf-8")
        filters.append(
            f"drawtext=textfile={name}:expansion=none:fontcolor=white:fontsize={size}:line_spacing={size // 4}"
            f":box=1:boxcolor=black@0.55:boxborderw={border}:fix_bounds=1{centred}"
            f":x=(w-text_w)/2:y=h-text_h-{margin}"
            f":enable='between(t,{caption.start:.3f},{caption.end:.3f})'"
        )
    return ",".join(filters)


# A join is ours: none of its clips' tags or chapters (a title, a comment: a clip KIE made may carry the API key
# in them) is copied into it. The muxer still writes its own encoder tag.
_NO_TAGS = ("-map_metadata", "-1", "-map_chapters", "-1")


@dataclass(frozen=True)
class _Plan:
    args: list[str]
    notes: list[str]  # what was done and why, "; "-joined in the answer
    burns_with_libass: bool = False  # then the encode reads libass's reports of characters no font has
    burned: str | None = None  # how the captions are burned in ("with the subtitles filter (libass)"), if they are

    def note(self, shown: int) -> str:
        """The notes, their first saying how many captions are burned in: ``shown``, those that start before the
        joined video ends (known once it is written), never every caption given."""
        said = [f"burned in {shown} caption(s) {self.burned}"] if self.burned is not None else []
        return "; ".join([*self.notes[:1], *said, *self.notes[1:]])


def _reencode_plan(
    probes: Sequence[Probe], captions: Sequence[Caption] | None, caps: Capabilities, workdir: Path, reason: str
) -> _Plan:
    first = probes[0]
    width, height = (_even(v) for v in first.display_size)
    rate = _fps_expr(first.fps)
    any_audio = any(p.audio for p in probes)
    args: list[str] = []
    graph: list[str] = []
    segments: list[str] = []
    silent: list[str] = []
    for index, clip in enumerate(probes):
        args += [*SINGLE_FILE, "-i", clip.input]
        graph.append(
            f"[{index}:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,fps={rate},format=yuv420p,"
            f"setpts=PTS-STARTPTS[v{index}]"
        )
        segments.append(f"[v{index}]")
        if not any_audio:
            continue
        if clip.audio:
            graph.append(
                f"[{index}:a:0]aresample={_AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                f"asetpts=PTS-STARTPTS[a{index}]"
            )
        else:
            if clip.duration is None:
                raise StitchError(
                    f"{clip.path} has no audio and ffmpeg reports no duration for it, so silence of the right "
                    "length cannot be added; re-export the clip (for example as MP4) and try again."
                )
            graph.append(
                f"anullsrc=r={_AUDIO_RATE}:cl=stereo,atrim=duration={clip.duration:.3f},aformat=sample_fmts=fltp"
                f"[a{index}]"
            )
            silent.append(clip.path.name)
        segments.append(f"[a{index}]")
    audio_flag = 1 if any_audio else 0
    outputs = "[vcat][acat]" if any_audio else "[vcat]"
    graph.append(f"{''.join(segments)}concat=n={len(probes)}:v=1:a={audio_flag}{outputs}")

    notes: list[str] = []
    burned: str | None = None  # how the captions are burned in: the count is known once the join is written
    video_label = "[vcat]"
    if captions:
        if caps.subtitles:
            write_srt(captions, workdir / "captions.srt")
            graph.append(f"[vcat]{_subtitles_filter(width, height)}[vout]")
            burned = "with the subtitles filter (libass)"
            notes += _libass_changes(captions)
        elif caps.drawtext:
            graph.append(f"[vcat]{_drawtext_chain(captions, width, height, workdir, caps)}[vout]")
            burned = "with drawtext (this ffmpeg has no libass subtitles filter), wrapped to the frame's width"
        else:
            raise StitchError(
                "Captions need an ffmpeg with libass (the `subtitles` filter) or libfreetype (`drawtext`), and this "
                f"one has neither. Install {VIDEO_EXTRA}: it has both; or stitch without captions."
            )
        if _portrait(width, height):
            notes.append(
                f"the video is portrait, so the captions sit {PORTRAIT_MARGIN:.0%} of its height up from the bottom, "
                "clear of a feed's buttons"
            )
        video_label = "[vout]"

    encoder, codec_name = _video_encoder(caps)
    args += ["-filter_complex", ";".join(graph), "-map", video_label, *_NO_TAGS]
    if any_audio:
        args += ["-map", "[acat]", "-c:a", "aac", "-b:a", "192k"]
    args += encoder
    audio_name = "AAC" if any_audio else "no audio (no clip has any)"
    notes.insert(
        0, f"re-encoded to {codec_name}/{audio_name} at {width}x{height}, {first.fps or rate} fps, because {reason}"
    )
    if len(probes) > 1 and any(p.display_size != first.display_size for p in probes[1:]):
        notes.append("clips of another size were scaled to fit and padded with black")
    if silent:
        notes.append(f"silence added for clips without audio: {', '.join(silent)}")
    return _Plan(args, notes, burns_with_libass=bool(captions) and caps.subtitles, burned=burned)


def _copy_plan(probes: Sequence[Probe], workdir: Path) -> _Plan:
    lines = [concat_list_line(p.input) for p in probes]
    (workdir / "inputs.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The list is ours; the whitelists reach the files it names too (ffmpeg's concat demuxer passes them on).
    args = [*_whitelist("concat", *_VIDEO_DEMUXERS), "-f", "concat", "-safe", "0", "-i", "inputs.txt", "-map", "0:v:0"]
    if probes[0].audio:
        args += ["-map", "0:a:0"]
    args += [*_NO_TAGS, "-c", "copy"]
    return _Plan(args, [f"joined losslessly by stream copy (all clips are {probes[0].describe()})"])


# --------------------------------------------------------------------------------------------------------- stitch


# Extensions output_name may end in that are replaced by .mp4, what every join is written as (extension_note).
_VIDEO_SUFFIXES = {*MUXERS, ".webm", ".avi", ".ogv"}
MAX_OUTPUT_NAME = 120  # characters; far below every filesystem's NAME_MAX (255 bytes) even with the temp suffix


def output_file_name(output_name: str | None, default: str) -> str:
    """The joined video's file name (always ``.mp4``: a video extension asked for is replaced) from what the caller
    asked for, or ``default``; ``name_note`` says how it differs from the name asked for.

    A name is a plain file name, never a path: separators, ``.``/``..``, control characters (NUL included) and names
    over ``MAX_OUTPUT_NAME`` characters are refused with a ``StitchError`` saying what to give instead. Anything else
    becomes a name in plain characters, as every file and folder kie-mcp saves has (``downloads.output_folder``):
    ASCII letters, digits, ``.``, ``_`` and ``-`` (accents dropped, others turn into ``-``), no leading dot, with any
    secret redacted (the API key pasted into the name becomes ``redacted``); a name whose letters ASCII cannot spell
    (夏季广告, إعلان الصيف) keeps 8 hex characters of its hash (``downloads.unspelled_digest``), the same its folder
    gets, so two such names are two files, never the default's.
    """
    given = (output_name or "").strip()
    fix = "Give a plain file name such as 'final-cut.mp4'; session chooses the folder (outputs/<date>-<session>/)."
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in given):
        raise StitchError(f"output_name {plain(given)} contains a control character (such as NUL). {fix}")
    if "/" in given or "\\" in given or (given and given.strip(".") == ""):
        raise StitchError(f"output_name {plain(given)} is a path, not a file name. {fix}")
    if len(given) > MAX_OUTPUT_NAME:
        raise StitchError(f"output_name is {len(given)} characters long; the limit is {MAX_OUTPUT_NAME}. {fix}")
    label = name_label(_name_stem(given))
    # redacted as ASCII too: the API key typed into the name (in any form, full-width letters too) is never a file name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", redact(in_ascii(label))).strip(".-_")
    slug = slug[:MAX_OUTPUT_NAME].rstrip(".-_")  # a letter ASCII spells in several (ß, ㎒) never makes it overlong
    if digest := unspelled_digest(label, slug):
        slug = f"{slug}-{digest}" if slug else digest
    return f"{slug or default}.mp4"


def _name_stem(output_name: str) -> str:
    """``output_name`` without a video extension (``final.mov``: ``final``), which the join's name replaces."""
    suffix = Path(output_name).suffix
    return output_name[: -len(suffix)] if suffix and suffix.lower() in _VIDEO_SUFFIXES else output_name


def name_note(output_name: str | None, name: str) -> str:
    """What the answer says when the join's file name ``name`` (``output_file_name``) is not the ``output_name``
    asked for (empty when it is, or none was): another video extension (every join is an MP4 file), characters a
    saved file's name does not keep, letters ASCII cannot spell kept as their hash. Never silent: the name asked for
    is what the user will look for."""
    given = (output_name or "").strip()
    if not given:
        return ""
    suffix = Path(given).suffix.lower()
    why = []
    if suffix in _VIDEO_SUFFIXES and suffix != ".mp4":
        why.append("joins are always written as MP4 files (.mp4)")
    stem = name.removesuffix(".mp4")
    if stem != _name_stem(given):
        kept = "kie-mcp names the files it saves in ASCII letters, digits, '.', '_' and '-'"
        digest = unspelled_digest(name_label(_name_stem(given)), "")  # the label's hash, whatever its letters
        if digest and stem.endswith(digest):
            kept += ", with 8 characters of the name's hash for letters ASCII cannot spell"
        why.append(f"{kept} (a name in those characters is kept as it is)")
    if not why:
        return ""
    return f"output_name {plain(given)} is saved as {name}: {'; '.join(why)}."


def join_folder(workspace: Path, clips: Sequence[Path], session: str | None, output_name: str | None) -> Path:
    """The real folder a join is written in, made now (``real_folder``: never through a link). A named ``session``'s
    folder (the one it already has: ``session_folder``). Without one, the clips' own session: every clip a file of
    one session's folder(s) in ``outputs/`` (a follow-up is saved in its source's), the latest of them; else, for
    clips of several sessions or from elsewhere, a folder of the day named after ``output_name`` (or "stitched").
    ``clips`` are the clips' real paths (``inputs.inspect_local``)."""
    today = date.today()
    if session:
        return real_folder(session_folder(workspace, session, today, named=True))
    outputs = workspace / OUTPUTS
    shared = _clips_session(outputs, clips)
    if shared is None:
        named = _name_stem((output_name or "").strip())  # "夏季广告.mp4": the folder of 夏季广告, as its file
        return real_folder(output_folder(workspace, named or "stitched", today))
    day, slug = shared
    return real_folder(outputs / f"{day}-{slug}")


def session_note(workspace: Path, session: str | None) -> str:
    """What a join's answer says of a ``session`` named as its folder is (``downloads.named_folder``: the folder it
    was saved in, and why when not that one); nothing for any other. Lists ``outputs/``: call it in a worker thread."""
    named = named_folder(workspace, session, date.today()) if session else None
    return "" if named is None else named.words


def chain_video(workspace: Path, clip: Path, saved: str | None) -> tuple[str, float | None]:
    """What stitch_videos answers with when a chain is one video already (``chain=true``, one clip, no captions):
    nothing is joined or written, and the answer names that video (``clip``, judged as a clip) and its length. Its
    name: ``saved``, its path in the workspace as the journal keeps it; else (a file of the user's own) its path
    relative to the workspace when it is inside it, else in full. Its length: from its header (an MP4/MOV's, else
    None). Reads the file and resolves the workspace: blocking (on a slow or network disk, seconds), so call it in
    a worker thread."""
    from kie_mcp.media.duration import video_seconds  # duration imports this module

    if saved is None:
        home = workspace.resolve()
        saved = clip.relative_to(home).as_posix() if clip.is_relative_to(home) else path_text(clip)
    return saved, video_seconds(clip, "video/mp4")


def _clips_session(outputs: Path, clips: Sequence[Path]) -> tuple[str, str] | None:
    """The session every clip was saved in (``folder_session``: the latest day of its folders, its slug), or None
    when a clip is no file of a session folder of ``outputs`` or the clips are of several sessions."""
    try:
        home = outputs.resolve()  # the clips' paths are real: an outputs/ linked to another disk is that disk
    except (OSError, RuntimeError):
        return None
    days, slugs = set(), set()
    for clip in clips:
        found = folder_session(clip.parent.name) if clip.parent.parent == home else None
        if found is None:
            return None
        days.add(found[0])
        slugs.add(found[1])
    return (max(days), slugs.pop()) if len(slugs) == 1 else None


def _single_video(given: Path, path: Path) -> None:
    """Refuse what is not one video file by its bytes: a playlist or concat list would make ffmpeg read other
    files, wherever they are."""
    try:
        head = read_judged_head(path)  # never blocks on a FIFO swapped in since the clip was checked
    except RefusedInput as exc:
        raise StitchError(f"Input clip {given} changed since it was checked: {exc}") from None
    except OSError as exc:
        raise StitchError(f"Input clip {given} cannot be read: {exc.strerror or exc}.") from None
    media = sniff(head)
    if media is None or media.kind != "video":
        what = media.label if media is not None else describe(head)
        raise StitchError(f"{path} is not a video (its bytes are {what}). {_FORMATS_TAKEN}")


def check_clip_count(count: int) -> None:
    """Refuse more clips than one ffmpeg command line holds, saying how to get there in parts."""
    if count > MAX_CLIPS:
        raise StitchError(
            f"{count} clips is more than one join takes (at most {MAX_CLIPS}). Join them in parts of up to "
            f"{MAX_CLIPS}, then join the parts."
        )


def _validate(inputs: Sequence[Path], output: Path, captions: Sequence[Caption] | None) -> tuple[list[Path], Path]:
    """Check everything that can be checked before ffmpeg runs (reads each input's first bytes: a worker thread's
    job)."""
    paths = check_request(inputs, captions)
    target = Path(output).expanduser().resolve()
    if not target.parent.is_dir():
        raise StitchError(f"Output folder does not exist: {target.parent} (create it first).")
    if target.is_dir():
        raise StitchError(f"Output path is a folder, not a file name: {target}")
    if target.suffix.lower() not in MUXERS:
        raise StitchError(
            f"Output file must end in one of {', '.join(sorted(MUXERS))} (got {plain(target.name)}); "
            ".mp4 plays everywhere."
        )
    if target in paths:
        raise StitchError(f"Output {target} is also one of the inputs; choose another output name.")
    return paths, target


def check_request(inputs: Sequence[Path], captions: Sequence[Caption] | None) -> list[Path]:
    """What ``stitch`` refuses of the clips and captions alone, before ffmpeg runs (the clips resolved): checked
    before the join's session folder is made, so a refused join makes none. Reads each clip's first bytes: a worker
    thread's job."""
    if not inputs:
        raise StitchError("No clips to stitch: give at least two video files.")
    if len(inputs) < 2 and not captions:
        raise StitchError(
            "Stitching needs at least two clips (a single clip is only accepted when adding captions to it)."
        )
    check_clip_count(len(inputs))
    if captions and len(captions) > MAX_CAPTIONS:
        raise StitchError(f"{len(captions)} captions is more than one join takes (at most {MAX_CAPTIONS}).")
    paths = [Path(p).expanduser().resolve() for p in inputs]
    for given, path in zip(inputs, paths, strict=True):
        if not path.exists():
            raise StitchError(f"Input clip not found: {given}")
        if not path.is_file():
            raise StitchError(f"Input clip is not a file: {given}")
        if "\n" in str(path) or "\r" in str(path):
            raise StitchError(f"Input clip path contains a line break, which ffmpeg cannot take: {plain(given)}")
        _single_video(given, path)
    for index, caption in enumerate(captions or [], start=1):
        times = (caption.start, caption.end)
        if not all(math.isfinite(t) and t <= MAX_CAPTION_SECONDS for t in times):
            raise StitchError(
                f"Caption {index} has start {caption.start} s and end {caption.end} s; caption times must be finite "
                f"and at most {MAX_CAPTION_SECONDS:g} s (24 hours) from the start of the joined video."
            )
        if caption.start < 0 or caption.end <= caption.start:
            raise StitchError(
                f"Caption {index} has start {caption.start} s and end {caption.end} s; "
                "it needs 0 <= start < end (seconds from the start of the joined video)."
            )
        if not _caption_text(caption.text):
            raise StitchError(f"Caption {index} (at {caption.start} s) has no text.")
    return paths


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _free_names(target: Path) -> Iterator[Path]:
    """``target``, then ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ..."""
    yield target
    for number in range(2, 10_000):
        yield target.with_name(f"{target.stem}-{number}{target.suffix}")


CLAIM_LIFE = 2400.0  # seconds a claim of another machine's join is honoured: 8 joins, 2 at a time, 600 s each


def claim_of(target: Path) -> Path:
    """The hidden file that claims ``target``'s name for a join being made now, by any server on the workspace:
    ``.<name>.joining`` beside it, holding its writer's owner tag (``processes.this_process``)."""
    return target.with_name(f".{target.name}.joining")


def _claimed(candidate: Path) -> bool:
    """Whether a join being made now claims ``candidate`` (``claim_of``). A claim whose writer is gone (a crashed
    server of this machine), or that is older than any join lasts (``CLAIM_LIFE``) where its writer cannot be told,
    is removed: it never holds a name for ever."""
    claim = claim_of(candidate)
    try:  # never waits: a FIFO planted as a claim held every join; it, a device or a link is taken, never read
        with open_regular(claim, follow=False) as handle:
            owner = handle.read(200).decode("utf-8", "replace").strip()
            age = time.time() - os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return False
    except OSError:  # there and unreadable, or not a regular file (``NotRegular``, a link): taken
        return True
    gone = owner_gone(owner)
    if gone is False or (gone is None and age <= CLAIM_LIFE):
        return True
    with contextlib.suppress(OSError):
        claim.unlink()
    return os.path.lexists(claim)


def _taken_now(candidate: Path) -> bool:
    """Whether ``candidate`` is taken: a file or its sidecar is there, or a join being made now claims it."""
    return os.path.lexists(candidate) or os.path.lexists(sidecar_of(candidate)) or _claimed(candidate)


def free_name(target: Path, held: Collection[Path] = ()) -> Path:
    """Claim the name a join into ``target`` is saved as, decided as it starts: the first of ``target``,
    ``<stem>-2``, ... that no file has, nor its sidecar (as ``_place`` judges it), nor another join being made now,
    by this server (``held``) or any other on the workspace (its claim). The claim (``claim_of``, created exclusively)
    is the caller's to remove (``unclaim``) once the join is placed, failed or stopped. Lists the folder: a worker
    thread's job."""
    for candidate in _free_names(target):
        if candidate in held or _taken_now(candidate):
            continue
        try:
            fd = os.open(claim_of(candidate), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another server claimed it just now
            continue
        except OSError as err:
            raise StitchError(
                f"Could not claim {candidate.name} in {candidate.parent.name}/ for the join: {err.strerror or err}."
            ) from None
        # A full disk takes the empty claim but not its writer's tag: the claim still holds the name (a claim of
        # no known writer lasts CLAIM_LIFE), and the join says the disk is full as it writes (``_join``)
        with contextlib.suppress(OSError):
            os.write(fd, this_process().encode())
        os.close(fd)
        if os.path.lexists(candidate) or os.path.lexists(sidecar_of(candidate)):  # saved there meanwhile
            unclaim(candidate)
            continue
        return candidate
    raise StitchError(
        f"{target.name} and every numbered variant up to {target.stem}-9999{target.suffix} already exist; choose "
        "another output name."
    )


def unclaim(target: Path) -> None:
    """Remove the claim ``free_name`` made of ``target``'s name."""
    with contextlib.suppress(OSError):
        claim_of(target).unlink()


def taken_words(target: Path) -> str:
    """Why a join asked to be ``target`` is saved under another name (``free_name``): what holds that name."""
    if not os.path.lexists(target) and not os.path.lexists(sidecar_of(target)):
        return f"{target.name} is the name of another join being made now"
    return f"{_taken(target).name} already exists and was kept as it was"


def sidecar_of(video: Path) -> Path:
    """Where a joined video's sidecar goes (``<name>.json`` beside it; ``results.write_joined_sidecar`` writes it)."""
    return video.with_suffix(".json")


def _place(temp: Path, target: Path) -> Path:
    """Give ``temp`` the first free name from ``target`` on and return it. An existing file is never replaced: it
    may be another task's saved (paid) result, whose bytes the journal's hash vouches for. A name whose sidecar name
    is taken (an earlier join's sidecar left behind, or a task's ``<model>_<task>.json``) is not free either: the
    join's own sidecar is written there, and another's is never replaced nor passed off as this join's. A hard link
    claims the name atomically; where links are not supported, an exclusively created placeholder claims it
    instead. Once the join has its name, a temporary name that cannot be removed is logged, never a failed join."""
    for candidate in _free_names(target):
        # another join's claim (any server's) holds a name; this join's own is the one of ``target``
        if os.path.lexists(sidecar_of(candidate)) or (candidate != target and _claimed(candidate)):
            continue
        try:
            os.link(temp, candidate)
        except FileExistsError:
            continue
        except OSError:  # no hard links on this file system
            try:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                continue
            try:
                os.replace(temp, candidate)  # replaces only the placeholder created just now
            except BaseException:
                _remove(candidate)  # an empty placeholder must never be left looking like a join
                raise
            return candidate
        try:
            _remove(temp)
        except OSError as err:  # the join is at its name all the same: never told it failed (the next start's sweep
            # removes the temporary name, ``downloads.sweep_interrupted_downloads``)
            log.warning("Joined video saved as %s; its temporary name could not be removed (%s)", candidate.name, err)
        return candidate
    raise StitchError(
        f"{target.name} and every numbered variant up to {target.stem}-9999{target.suffix} already exist; choose "
        "another output name."
    )


def _taken(target: Path) -> Path:
    """What kept the join from ``target``: the file of that name, or else the sidecar of that name."""
    return target if os.path.lexists(target) else sidecar_of(target)


class _Held:
    """The clips of one join, each position opened once as judged (``open_judged``) and held until the join ends:
    ffmpeg reads them as ``/dev/fd/N``, the very files that were checked, whatever their names lead to by then."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self._handles: list[BinaryIO] = []
        try:
            for path in self.paths:
                self._handles.append(open_judged(path))
        except BaseException:
            self.close()
            raise
        passed = by_descriptor()
        self.fds = tuple(handle.fileno() for handle in self._handles) if passed else ()
        self.sources = [f"{FD_FOLDER}/{fd}" for fd in self.fds] if passed else [str(p) for p in self.paths]

    def rewound(self) -> tuple[int, ...]:
        """The descriptors to pass, each at its start (where opening ``/dev/fd/N`` shares the offset: macOS)."""
        for fd in self.fds:
            os.lseek(fd, 0, os.SEEK_SET)
        return self.fds

    def named(self, text: str) -> str:
        """ffmpeg's words with each ``/dev/fd/N`` replaced by the clip's name."""
        if not self.fds:
            return text
        for source, path in sorted(zip(self.sources, self.paths, strict=True), key=lambda pair: -len(pair[0])):
            text = text.replace(source, path.name)  # the longest first: /dev/fd/12 before /dev/fd/1
        return text

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles = []


def _hold(paths: Sequence[Path]) -> _Held:
    """``_Held`` for ``paths``; a clip that is no longer what was checked is a ``StitchError`` (a worker thread's
    job: it opens files)."""
    try:
        return _Held(paths)
    except RefusedInput as exc:
        raise StitchError(f"An input clip changed since it was checked: {exc}") from None
    except OSError as exc:
        raise StitchError(f"An input clip cannot be read: {exc.strerror or exc}.") from None


async def _encode(
    ffmpeg: str, plan: _Plan, temp: Path, muxer: str, workdir: Path, held: _Held
) -> tuple[int, ...] | None:
    """Run ``plan`` into ``temp``. Returns the code points libass found no font for when the plan burns captions with
    libass (then ffmpeg logs warnings too, and ``glyphs.CaptionLog`` keeps only its errors), else None."""

    def command(log_level: str) -> list[str]:
        faststart = ["-movflags", "+faststart"] if muxer in {"mp4", "mov"} else []
        return [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", log_level, *plan.args, *faststart, "-f", muxer]

    log = glyphs.CaptionLog() if plan.burns_with_libass else None
    if log is not None:
        result = await _run([*command("level+warning"), str(temp)], cwd=workdir, held=held, sieve=log)
        if result.returncode != 0 and levels_refused(result.stderr):  # before ffmpeg 4.0: no level tags
            log = None
    if log is None:
        result = await _run([*command("error"), str(temp)], cwd=workdir, held=held)
    if result.returncode != 0:
        failed = DiskFull if NO_SPACE in result.stderr else StitchError
        raise failed(f"{_failure(result, temp)}:\n{held.named(_tail(result.stderr))}")
    if b"Impossible to open" in result.stderr:  # the concat demuxer skips a clip it cannot open and exits 0
        raise StitchError(f"ffmpeg left out a clip it could not open:\n{held.named(_tail(result.stderr))}")
    return tuple(log.missing) if log is not None else None


NO_SPACE = b"No space left on device"  # ffmpeg's words for ENOSPC (strerror's, on Linux, macOS and Windows alike)


def _failure(result: subprocess.CompletedProcess[bytes], temp: Path) -> str:
    """How ffmpeg failed, in words, with what to do where that is known."""
    if result.returncode < 0:
        how = (
            f"ffmpeg was stopped by signal {-result.returncode} (something outside kie-mcp ended it; on a machine "
            "short of memory, join fewer clips at a time)"
        )
    else:
        how = f"ffmpeg failed (exit code {result.returncode})"
    if NO_SPACE in result.stderr:
        how += f"; the disk holding {temp.parent} is full: free some space there and join again"
    return how


async def stitch(
    inputs: list[Path],
    output: Path,
    *,
    captions: list[Caption] | None = None,
    timeout: float = 600,  # noqa: ASYNC109 - the whole job's budget, including the copy attempt and its fallback
) -> StitchResult:
    """Join ``inputs`` in order into ``output``, burning in ``captions`` when given.

    Raises StitchError with a readable message on any failure; ``output`` is then left as it was.
    """
    paths, target = await anyio.to_thread.run_sync(_validate, inputs, output, captions)
    ffmpeg = find_ffmpeg()
    held = await anyio.to_thread.run_sync(_hold, paths)
    try:
        return await _join(ffmpeg, held, target, captions, timeout)
    finally:
        held.close()


SHORTFALL_SECONDS = 0.5  # and 0.1 s a clip: a joined video shorter than its clips by more than that lost footage


def _late_text(late: Sequence[tuple[int, Caption]], total: float | None) -> str:
    """What the answer says first of the captions (by their place in the list) that start after the joined video
    ends (``total`` seconds): each by its number, its text's start and its time, and that it is not shown."""
    named = ", ".join(f"{n} ({plain(_caption_text(c.text), limit=40)} at {c.start:g} s)" for n, c in late)
    ends = f"the video ends ({total:.2f} s)"
    if len(late) == 1:
        return f"caption {named} starts after {ends}, so it is not shown"
    return f"captions {named} start after {ends}, so they are not shown"


def _shortfall(probes: Sequence[Probe], total: float | None) -> str:
    """What the note says when the joined video is clearly shorter than its clips together: a clip damaged or cut
    short (its header still promising its whole length) ends early, and the join is quietly shorter."""
    lengths = [probe.duration for probe in probes]
    if total is None or any(length is None for length in lengths):
        return ""
    expected = sum(length for length in lengths if length is not None)
    missing = expected - total
    if missing <= SHORTFALL_SECONDS + 0.1 * len(probes):
        return ""
    return (
        f"; WARNING: the joined video is {total:.2f} s, {missing:.2f} s shorter than its clips together "
        f"({expected:.2f} s): a clip is probably damaged or cut short (its footage ends before its stated length). "
        "Play each clip to find it, and save it again with check_task if it is a task's"
    )


async def _join(
    ffmpeg: str,
    held: _Held,
    target: Path,
    captions: list[Caption] | None,
    timeout: float,  # noqa: ASYNC109 - the whole job's budget
) -> StitchResult:
    """``stitch`` once the clips are checked and held."""
    paths = held.paths
    probes = [await probe(ffmpeg, path, held=held, position=n) for n, path in enumerate(paths)]
    unfound: tuple[int, ...] | None = None  # code points libass found no font for, when it burned the captions
    caps = await ffmpeg_capabilities(ffmpeg)
    muxer = MUXERS[target.suffix.lower()]
    mismatch = "captions are burned in" if captions else copy_mismatch(probes)

    # ffmpeg creates the temporary file itself, so it gets the usual permissions (mkstemp's would be 0600). Named as a
    # download's is: what a killed server's ffmpeg leaves is removed at the next start (sweep_interrupted_downloads).
    temp = temp_name(target)
    _WRITING.add(temp)
    try:
        with tempfile.TemporaryDirectory(prefix="kie-stitch-") as work:
            workdir = Path(work)
            with anyio.fail_after(timeout):  # one budget for the whole job, copy attempt and re-encode alike
                if mismatch is None:
                    plan = _copy_plan(probes, workdir)
                    try:
                        await _encode(ffmpeg, plan, temp, muxer, workdir, held)
                        reencoded = False
                    except DiskFull:  # a re-encode writes as much again, onto the same full disk
                        raise
                    except StitchError as copy_error:
                        reason = str(copy_error).splitlines()[-1]
                        plan = _reencode_plan(probes, None, caps, workdir, f"stream copy failed ({reason})")
                        await _encode(ffmpeg, plan, temp, muxer, workdir, held)
                        reencoded = True
                else:
                    plan = _reencode_plan(probes, captions, caps, workdir, mismatch)
                    unfound = await _encode(ffmpeg, plan, temp, muxer, workdir, held)
                    reencoded = True
                written = await probe(ffmpeg, temp)
        placed = await anyio.to_thread.run_sync(_place, temp, target)
    except TimeoutError:
        _remove(temp)
        raise StitchError(
            f"Stitching did not finish within {timeout:g} s and was stopped; nothing was written to {target}. "
            "Join fewer clips at a time (say, each half, then the two halves), or without captions, which needs no "
            "re-encoding when the clips match."
        ) from None
    except StitchError as exc:
        _remove(temp)
        raise StitchError(f"Could not stitch into {target}: {exc}") from exc
    except BaseException:
        _remove(temp)
        raise
    finally:
        _WRITING.discard(temp)
    total = written.duration
    late = [(n, c) for n, c in enumerate(captions or [], start=1) if total is not None and c.start >= total]
    note = plan.note(len(captions or []) - len(late)) + _shortfall(probes, total)
    if late:  # said first: a caption asked for and not in the video
        note = f"{_late_text(late, total)}; {note}"
    if placed != target:
        taken = await anyio.to_thread.run_sync(_taken, target)
        note += f"; {taken.name} already exists and was kept as it was, so this join is {placed.name}"
    note = f"Stitched {len(paths)} clip(s) into {placed.name}: {note}."
    missing = None
    if captions and unfound is not None:
        undrawn = glyphs.undrawn([_srt_text(c.text) for c in captions], unfound)
        missing = undrawn.characters
        if missing:
            note += f" {glyphs.font_advice(undrawn)}"
    return StitchResult(
        path=placed, duration=total, reencoded=reencoded, inputs=paths, note=note, missing_glyphs=missing
    )
