"""Saving KIE results into the workspace: streamed, verified, atomic.

KIE's result links do not last (``download-url`` links live 20 minutes; result URLs have been seen
answering 403 after ~40 minutes; the files themselves are kept ~14 days), so results are fetched as
soon as a task succeeds. ``download`` streams the body into a hidden temporary file beside the
destination, hashing and counting as it goes (constant memory), refuses bodies that are too big,
truncated, empty or of the wrong type (a video where an image was expected), names the file after
the type its bytes really have, fsyncs it and moves it into place with ``os.replace``. Whatever goes
wrong, including cancellation, no final-looking file and no temporary file is left behind. A link
that does not serve the file (an expiry status, any 4xx asking again cannot mend, or an error message
in its place: a web page, JSON, XML or plain text where media was expected) is renewed once through
download-url. A result that is saved but not whole (an image that does not decode, an MP4/MOV/M4A
cut short: ``damaged``) is fetched once more, then kept and said to be damaged. A link (or a
redirect) to this machine or a private network is never fetched (``addresses``): KIE's results are on
public servers, so such a link is a broken or hostile answer.

The helpers build the workspace layout (``outputs/<day>-<slug>/<model>_<task>_<n>.<ext>``; a named session keeps
the folder of the day it began, ``session_folder``), write sidecar JSON atomically and make the inline previews:
scaled-down images, and a poster frame of each video (with ffmpeg), each made once and kept beside the file it
shows. A preview is made from one open file of the saved result, judged as it is opened (``opened_source``: a regular
file, no link, never waited on; ffmpeg reads it by descriptor), and a kept one is served only when it is dated like
that very file: a link or a FIFO in a result's place has no preview.

A result is only ever written into a real folder: a session folder that is a symbolic link (a cloned repository can
carry one, named for the session an agent is told to use, leading anywhere) is never written through. The result goes
to a real folder beside it with another name (``real_folder``), so a paid result is still saved and the answer names
where; a sidecar whose folder became a link is refused (``write_json_atomic``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import json
import logging
import math
import mimetypes
import os
import re
import secrets
import stat
import subprocess
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any, Literal

import anyio
import anyio.to_thread
import httpx2

from kie_mcp import processes
from kie_mcp.redact import SecretWatch, bytes_hold_secret, redact, redact_apart
from kie_mcp.regular import open_regular
from kie_mcp.words import plain

from . import saved
from .addresses import PrivateAddress, send_checked
from .saved import SESSION_FOLDER
from .sniff import pillow

log = logging.getLogger(__name__)  # stderr only, through the server's logging set-up

MediaKind = Literal["image", "video", "audio"]
Expected = MediaKind | tuple[MediaKind, ...]  # the kind (or kinds) of file a result link must serve

SNIFF_BYTES = 64  # enough for every signature below
WRITE_BATCH = 1024 * 1024  # bytes gathered before one write + hash in a worker thread
# A file server that sends less than this in a minute is trickling (or stalled): the download stops and is tried
# again later, instead of holding a download slot for as long as the trickle lasts (a byte every two seconds never
# trips the read timeout). Any connection a person would call working sends this in well under a second.
TRICKLE_BYTES = 64 * 1024
TRICKLE_SECONDS = 60.0
# ... and one that keeps just above that line must still end, however long it would go on: every download has an
# overall deadline (``Allowance``). In one of the follower's finishing slots (ENDS_AT_ONCE, shared by every task that
# ends) it gets the setting ``download_deadline`` (KIE_DOWNLOAD_DEADLINE: 10 minutes), more for a large file (its size
# at this average), then it stops and is left to the background. A background try (and check_task's own save) holds
# no finishing slot but one of the background's few (``SAVES_AT_ONCE``), and a task's save lock: it gets
# BACKGROUND_TIMES as long, more for a large file (its size at the slower BACKGROUND_BYTES_PER_SECOND), so that a
# large video on a slow link is still saved, and a link trickling just over the line for days is not.
AVERAGE_BYTES_PER_SECOND = 256 * 1024
LEAST_SECONDS = 600.0  # Settings.download_deadline's default
BACKGROUND_TIMES = 6  # a background try gets this many times a finishing slot's least time: an hour by default
BACKGROUND_BYTES_PER_SECOND = 32 * 1024  # ... or its size at this pace, when longer (a 2 GiB video: about 18 hours)
RETENTION_HINT = (
    "KIE keeps generated files for about 14 days; while the file exists a fresh link can be minted through "
    "KIE's download-url endpoint (20 minutes valid)."
)
LOGS_HINT = "https://kie.ai/logs shows the task, with its files, while KIE keeps them."
_EXPIRED_STATUSES = frozenset({403, 404, 410})
_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})

# mime -> extensions; the first is the one files get, the others are accepted as already right.
_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg", "jpe"),
    "image/webp": ("webp",),
    "image/gif": ("gif",),
    "image/avif": ("avif",),
    "image/heic": ("heic", "heif"),
    "image/bmp": ("bmp",),
    "image/tiff": ("tif", "tiff"),
    "video/mp4": ("mp4", "m4v"),
    "video/quicktime": ("mov", "qt"),
    "video/webm": ("webm",),
    "video/x-matroska": ("mkv",),
    "audio/mpeg": ("mp3",),
    "audio/wav": ("wav", "wave"),
    "audio/mp4": ("m4a",),
    "audio/aac": ("aac",),
    "audio/ogg": ("ogg", "oga", "opus"),
    "audio/flac": ("flac",),
    "text/html": ("html", "htm"),
    "application/json": ("json",),
    "text/plain": ("txt",),
}
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<?xml", b"<!--", b"<center", b"<h1")


# -- types ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedFile:
    path: Path  # absolute final path
    url: str  # the URL actually downloaded (a re-minted link when the first one had expired)
    source_url: str  # the original result URL
    size: int
    sha256: str
    mime: str  # sniffed from the bytes
    # not whole (an image that does not decode, a video or sound cut short), fetched twice, the same both times: why
    damaged: str | None = None
    holds_key: bool = False  # its bytes hold the API key (KIE echoed it into its metadata): kept, never served


@dataclass(frozen=True)
class Allowance:
    """How long the download of one file may take in all: ``least_seconds``, or its size at ``bytes_per_second`` when
    that is longer. The size is the one it declared, or what it has sent once that is more (a body with no
    Content-Length, or longer than it said, is always allowed that pace of what came). Past it, the download stops
    (retryable, nothing left behind) whatever pace the file server keeps: each read waits at most the client's
    timeout, and the trickle line (``TRICKLE_BYTES``) stops only a server slower than 64 KiB a minute, so without it
    a link sending a little more held its save, and the slot it ran in, for days. ``background``: a background try's
    (or check_task's own save's), said so when it stops."""

    least_seconds: float = LEAST_SECONDS
    bytes_per_second: float = AVERAGE_BYTES_PER_SECOND
    background: bool = False

    def seconds(self, size: int | None) -> float:
        """Seconds a body of ``size`` bytes (None: not said) gets in all (at the default, a 2 GiB video: 8,192 s)."""
        return max(self.least_seconds, (size or 0) / self.bytes_per_second)

    def in_background(self) -> Allowance:
        """What a background try gets, where this is a finishing slot's: ``BACKGROUND_TIMES`` its least time, or its
        size at ``BACKGROUND_BYTES_PER_SECOND`` (an hour, or 32 KiB/s of a larger file, by default)."""
        return Allowance(self.least_seconds * BACKGROUND_TIMES, BACKGROUND_BYTES_PER_SECOND, background=True)


FINISHING = Allowance()  # a finishing slot's, at the default download_deadline
STOPPED_IN_BACKGROUND = "a download in the background gets"  # in what a background try cut at its deadline says


class DownloadError(Exception):
    """A result that could not be saved. The message says what happened and what to do; nothing was left at dest.
    It may quote the file host (its reason phrase, what it sent instead of a file), so it redacts itself."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        retryable: bool = False,
        expired: bool = False,
        refused: bool = False,
        why: str = "",
        unrenewed: bool = False,
    ) -> None:
        message, url = redact(message), redact(url)
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status
        self.retryable = retryable
        # The link did not serve the file (expired, refused, an error message in its place), renewed or not: the
        # message says what to do, and never that the links still work.
        self.expired = expired
        # Not fetched again by this process: the link points at this machine or a private network, it served more
        # than any result of its kind can be, or KIE refused to renew it for good.
        self.refused = refused
        self.why = redact(why)  # a refused link: why, in a few words ("it points at a private network (10.0.0.7)")
        # KIE refused to renew the link (400/404/422), for the first time: tried once more later, then refused
        self.unrenewed = unrenewed


class _Expired(Exception):
    """A link that does not serve its file, which a fresh link from download-url may: an expiry status
    (403/404/410), any other 4xx that asking again cannot mend (400, 401, 451: a signed link its host refuses), or
    (``page``, what was sent, in words) an error message answered in place of the file: a CDN's "link expired" page,
    an object store's JSON or XML error, often with 200."""

    def __init__(self, status: int, *, reason: str = "", page: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.reason = reason
        self.page = page

    def what(self) -> str:
        if self.page:
            return f"answered with {self.page} instead of the file (an error message: it has probably expired)"
        if self.status in _EXPIRED_STATUSES:
            return f"has expired (HTTP {self.status})"
        return f"was refused (HTTP {self.status}{f' {self.reason}' if self.reason else ''})"


def _page_answer(page: str, *, again: bool) -> str:
    """What to say of a link that answered with an error message (``page``, in words) in place of the file, and, when
    ``again``, so did the fresh link download-url gave: the file server failing, or the link expired."""
    fresh = " A fresh link from download-url answered the same." if again else ""
    return (
        f"The result link answered with {page} instead of the file (an error message, not the result); nothing was "
        f"saved.{fresh} The link has probably expired, or KIE's file server is failing. {RETENTION_HINT} kie-mcp "
        f"tries again in the background, and check_task tries at once; if it keeps failing, {LOGS_HINT}"
    )


def _page_words(mime: str, head: bytes) -> str:
    """What an error message sent in place of a file is, in words, by its type (and first bytes: XML)."""
    if head.removeprefix(b"\xef\xbb\xbf").lstrip()[:5].lower() == b"<?xml" and b"<html" not in head.lower():
        return "an XML document"
    return {"application/json": "JSON text", "text/plain": "plain text"}.get(mime, "a web page")


# -- sniffing ------------------------------------------------------------------------------


def sniff_mime(first_bytes: bytes) -> str:
    """The content type of a file from its first bytes (magic numbers); ``application/octet-stream`` if unknown."""
    b = first_bytes
    if b.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if b.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return "image/webp"
    if b[:4] == b"RIFF" and b[8:12] == b"WAVE":
        return "audio/wav"
    if b[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if b[4:8] == b"ftyp":
        return _ftyp_mime(b[8:12])
    if b[4:8] in _QUICKTIME_ATOMS and len(b) >= 8:
        return "video/quicktime"
    if b.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM is Matroska with the "webm" doctype
        return "video/webm" if b"webm" in b[:SNIFF_BYTES] else "video/x-matroska"
    if b.startswith(b"ID3"):
        return "audio/mpeg"
    if len(b) >= 2 and b[0] == 0xFF and b[1] & 0xF6 == 0xF0:  # ADTS sync, layer 0
        return "audio/aac"
    if len(b) >= 2 and b[0] == 0xFF and b[1] & 0xE0 == 0xE0 and b[1] & 0x06:  # MPEG audio frame sync, layer I-III
        return "audio/mpeg"
    if b.startswith(b"OggS"):
        return "audio/ogg"
    if b.startswith(b"fLaC"):
        return "audio/flac"
    if b.startswith(b"BM") and len(b) >= 14:
        return "image/bmp"
    if b[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if b.startswith(b"%PDF-"):  # ASCII at its start: called plain text before, which it is not
        return "application/pdf"
    return _text_mime(b)


TEXT_TYPES = ("application/json", "text/plain", "text/html")  # what sniff_mime calls text; served as text


class HoldsSecret(ValueError):
    """Bytes that are not text hold the API key: they cannot be redacted, so they are not served."""


def as_served(data: bytes) -> str | bytes:
    """A saved file's content as a resource serves it: text (a sidecar, a gallery page, a note: ``TEXT_TYPES`` by its
    first bytes, in UTF-8) decoded, with the API key and anything shaped like a credential redacted (a sidecar from
    before sidecars were redacted, a page placed by hand); other bytes as they are, unless they hold the key
    (``HoldsSecret``), as the workspace's references are served. Scans every byte: call it in a worker thread."""
    if sniff_mime(data[:SNIFF_BYTES]) in TEXT_TYPES:
        try:
            return redact_apart(data.decode("utf-8"))  # a page of megabytes in a child process: no thread waits
        except UnicodeDecodeError:
            pass
    if bytes_hold_secret(data):
        raise HoldsSecret("it holds the KIE API key, so it is not served")
    return data


def _ftyp_mime(brand: bytes) -> str:
    if brand in (b"avif", b"avis"):
        return "image/avif"
    if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
        return "image/heic"
    if brand == b"qt  ":
        return "video/quicktime"
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return "audio/mp4"
    return "video/mp4"


def _text_mime(b: bytes) -> str:
    text = b.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(_HTML_STARTS):
        return "text/html"
    if text[:1] in (b"{", b"["):
        return "application/json"
    if text and all(32 <= c < 127 or c in (9, 10, 13) for c in text):
        return "text/plain"
    return "application/octet-stream"


def mime_to_ext(mime: str) -> str:
    """The file extension (no dot) for a content type; ``bin`` when nothing fits."""
    base = mime.split(";", 1)[0].strip().lower()
    if base in _EXTENSIONS:
        return _EXTENSIONS[base][0]
    guessed = mimetypes.guess_extension(base) if base else None
    return guessed.lstrip(".") if guessed else "bin"


def kind_of(mime: str) -> str | None:
    """``image``, ``video`` or ``audio`` for a media type, else None."""
    major = mime.split("/", 1)[0]
    return major if major in ("image", "video", "audio") else None


def kind_of_file(path: Path, fallback: str | None = None) -> str | None:
    """What a saved file is, by its extension (which the download fixed to the sniffed type): a video task's
    results may include an image (its first or last frame). ``fallback`` when the extension says nothing."""
    mime, _ = mimetypes.guess_type(path.name)
    return kind_of(mime or "") or fallback


def _with_extension(dest: Path, mime: str) -> Path:
    """``dest`` renamed to carry the extension of ``mime`` (kept when it already fits or the type is unknown)."""
    accepted = _EXTENSIONS.get(mime)
    if accepted is None:
        return dest
    if dest.suffix.lower().lstrip(".") in accepted:
        return dest
    stem = dest.stem if dest.suffix and dest.stem else dest.name
    return dest.with_name(f"{stem}.{accepted[0]}")


# -- download ------------------------------------------------------------------------------


async def download(
    client: httpx2.AsyncClient,
    url: str,
    dest: Path,
    *,
    expected: Expected | None = None,
    max_bytes: int = 2 * 1024**3,
    remint: Callable[[str], Awaitable[str]] | None = None,
    made: date | None = None,
    within: Allowance = FINISHING,
    renewal_refused_before: bool = True,
) -> SavedFile:
    """Save the file at ``url`` as ``dest`` (its extension fixed to the sniffed type) and describe it.

    A link that does not serve the file (403/404/410 for an expired link, any other 4xx that asking again cannot
    mend, or an error message in place of the file: ``_Expired``) is renewed: with ``remint`` (e.g.
    ``KieClient.download_url``) a fresh link is fetched once and tried once (``made``, the day the task was made,
    tells whether KIE may have let the file go). Raises ``DownloadError``; on any failure or cancellation nothing is
    left at ``dest`` and no temporary file remains. An existing identical file is kept as it is. A result that is not
    whole (``damaged``: an image that does not decode, an MP4, MOV or M4A cut short) is fetched once more (a download
    only, never a new task). KIE refusing to renew a link (400, 404, 422) is final when it did so before
    (``renewal_refused_before``; otherwise ``DownloadError.unrenewed``: a link can be missing for a moment, so it is
    tried once more later); still so, it is kept (it is paid for) and ``damaged`` says why. Each fetch of the body
    ends ``within`` its allowance (``Allowance``: a finishing slot's by default): a slower one stops
    (``DownloadError``, retryable), as one under ``TRICKLE_BYTES`` a minute does.
    """
    fetch = functools.partial(_fetch, within=within, renewal_refused_before=renewal_refused_before)
    file = await fetch(client, url, dest, expected, max_bytes, remint, made)
    damage = await anyio.to_thread.run_sync(damaged, file.path, file.mime)
    if damage is None:
        return file
    log.warning("The result saved as %s is not whole (%s); fetching it once more.", file.path.name, damage)
    try:
        file = await fetch(client, url, dest, expected, max_bytes, remint, made)
    except DownloadError as err:  # the first copy stays saved, said to be damaged
        log.warning("Fetching %s again failed: %s", file.path.name, err)
        return _remember_damage(replace(file, damaged=damage))
    damage = await anyio.to_thread.run_sync(damaged, file.path, file.mime)
    return _remember_damage(replace(file, damaged=damage)) if damage else file


async def _fetch(
    client: httpx2.AsyncClient,
    url: str,
    dest: Path,
    expected: Expected | None,
    max_bytes: int,
    remint: Callable[[str], Awaitable[str]] | None,
    made: date | None,
    *,
    within: Allowance,
    renewal_refused_before: bool,
) -> SavedFile:
    """``download``'s fetch: one try, and one with a fresh link when the first did not serve the file."""
    dest = _prepare(Path(dest), url)
    attempt = functools.partial(_attempt, within=within)
    try:
        return await attempt(client, url, url, dest, expected, max_bytes)
    except _Expired as first:
        if remint is None and first.page:
            raise DownloadError(_page_answer(first.page, again=False), url=url, retryable=True, expired=True) from None
        if remint is None:
            raise DownloadError(
                f"The result link {first.what()}, so nothing was saved. {RETENTION_HINT} "
                "Fetch a fresh link with download-url and download again.",
                url=url,
                status=first.status,
                expired=True,
            ) from None
        try:
            fresh = await remint(url)
        except Exception as exc:
            # KIE's own word on it (a KieError's message and whether asking again can help). A refusal of this very
            # link (400/404/422: not one of KIE's files, or gone) is final the second time (a file can be missing
            # for a moment: the first time, it is tried once more later); KIE's generic advice for those codes is
            # written for a generation ("fix the field it names"). Any other refusal (the key, credits, a quota)
            # keeps KIE's advice: once that is fixed, the link renews.
            retry = bool(getattr(exc, "retryable", True))
            reason = str(getattr(exc, "message", exc))
            unrenewed = not retry and getattr(exc, "code", None) in (400, 404, 422)
            final = unrenewed and renewal_refused_before  # not fetched again by this process
            if retry:
                then = "Try again in a minute."
            elif final:
                then = f"KIE will not renew this link, so kie-mcp cannot save the file; {LOGS_HINT}"
            elif unrenewed:
                then = (
                    "KIE would not renew it now; a file can be missing for a moment, so kie-mcp tries once more in "
                    f"the background (check_task tries at once), then gives it up. {LOGS_HINT}"
                )
            else:
                then = f"{getattr(exc, 'next_step', '')} Then check_task saves it.".strip()
            raise DownloadError(
                f"The result link {first.what()} and KIE did not give a fresh one ({reason}). {RETENTION_HINT} {then}",
                url=url,
                status=first.status,
                retryable=retry,
                expired=True,
                refused=final,
                why="it expired, and KIE will not renew it",
                unrenewed=unrenewed and not final,
            ) from exc
    try:
        return await attempt(client, fresh, url, dest, expected, max_bytes)
    except _Expired as second:
        if second.page:  # a fresh link served an error message too: more likely the CDN failing than the file gone
            raise DownloadError(
                _page_answer(second.page, again=True), url=fresh, retryable=True, expired=True
            ) from None
        raise DownloadError(
            _refused_twice(second.status, _age_days(made)), url=fresh, status=second.status, expired=True
        ) from None


KEPT_DAYS = 14  # how long KIE keeps a task's files


def _refused_twice(status: int, age_days: int | None) -> str:
    """A result link refused, and the fresh one download-url gave refused too. Only a task older than the days KIE
    keeps files is "probably gone"; a younger one (or one whose age is not known) is a refusal that may pass, tried
    again before anyone is told to pay for the result again."""
    refused = (
        f"The result link was refused, and so was a fresh link from download-url (HTTP {status}); nothing was saved"
    )
    if age_days is not None and age_days > KEPT_DAYS:
        return (
            f"{refused}. The task was made {age_days} days ago and KIE keeps files about {KEPT_DAYS} days, so the file "
            f"is probably gone from KIE. {LOGS_HINT} If it is gone there too, generating it again is a new, charged "
            "task."
        )
    kept = (
        f"this task was made {_days_ago(age_days)} and KIE keeps files about {KEPT_DAYS} days, so the file should "
        "still be there"
        if age_days is not None
        else f"KIE keeps files about {KEPT_DAYS} days, so a younger task's file should still be there"
    )
    return (
        f"{refused} yet: {kept}. kie-mcp tries again in the background, and check_task tries at once. If it keeps "
        f"failing, {LOGS_HINT}"
    )


def _days_ago(days: int) -> str:
    return "today" if days <= 0 else "yesterday" if days == 1 else f"{days} days ago"


def _age_days(made: date | None) -> int | None:
    """Whole days since the task was made (not its folder's date: a named session's folder is the day it began,
    ``session_folder``). None when not known."""
    return None if made is None else (date.today() - made).days


def _prepare(dest: Path, url: str) -> Path:
    """``dest`` made absolute, in a real folder (``real_folder``: created when missing; when its folder is a link,
    the real folder beside it that takes its place)."""
    if dest.name in ("", ".", ".."):
        raise ValueError(f"dest must name a file, got {str(dest)!r}")
    dest = dest.absolute()
    try:
        return real_folder(dest.parent) / dest.name
    except saved.OutputsRefused as exc:  # outputs/ itself: a link to a disk not mounted, a file, ... (said as such)
        raise DownloadError(
            f"Nothing could be saved in {dest.parent}: {exc} The result stays on KIE for about 14 days.", url=url
        ) from exc
    except OSError as exc:
        raise DownloadError(
            f"Could not create the folder {dest.parent} ({exc.strerror or exc}). Check the workspace path and "
            "its permissions; the result stays on KIE for about 14 days.",
            url=url,
        ) from exc


FOLDER_NAMES_TRIED = 100  # <name>, <name>_2 ... <name>_100: a folder taken by links that often is refused


def real_folder(folder: Path) -> Path:
    """``folder`` as a real folder to write into, created when missing, and never through a symbolic link: a session
    folder that is a link (a cloned repository can carry one, leading anywhere) or not a folder is left alone, and the
    first of ``<name>_2``, ``<name>_3``, ... that is a real folder or can be made one is used instead (no session's
    own folder has ``_`` in its name), the same one every time, so every result of a task and its sidecar land
    together and a paid result is always saved. The folder holding it (``outputs/``, which may be a link to another
    disk the user chose) is created when missing, and followed, unless it is a link ``saved.refusal`` names
    (``OutputsRefused``). ``OSError`` when none can be made: ``OutputsRefused`` when ``outputs/`` itself is why
    (``saved.saving_problem``: a link to a disk not mounted, a file in its place, a read-only disk), saying so."""
    saved.check(folder.parent)  # outputs/ linked to /, the workspace or the home folder: nothing is written there
    try:
        return _real_folder(folder)
    except OSError as exc:  # said by what is wrong with outputs/ ("a link to /media/disk, which is not there"), where
        if (why := saved.saving_problem(folder.parent)) is not None:  # that is why, never "File exists"
            raise saved.OutputsRefused(why) from exc
        raise


def _real_folder(folder: Path) -> Path:
    """``real_folder``'s work, once ``outputs/`` is not refused."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, FOLDER_NAMES_TRIED + 1):
        candidate = folder if n == 1 else folder.with_name(f"{folder.name}_{n}")
        try:
            os.mkdir(candidate)  # never through a link: a link there, even a broken one, is "exists"
        except FileExistsError:
            if not _is_real_folder(candidate):
                continue
        if n > 1:
            log.warning(
                "%s is a symbolic link or not a folder, which kie-mcp never writes into; results meant for it are "
                "saved in %s.",
                folder,
                candidate.name,
            )
        return candidate
    raise OSError(
        errno.EEXIST,
        f"{folder.name} and the {FOLDER_NAMES_TRIED - 1} names after it are symbolic links or not folders, which "
        "kie-mcp never writes into; move them away",
    )


def _is_real_folder(folder: Path) -> bool:
    """Whether ``folder`` is a folder itself, judged without following a link."""
    try:
        found = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(found.st_mode) and not stat.S_ISLNK(found.st_mode)


def _still_in_real_folder(tmp: Path, written: os.stat_result) -> None:
    """Before a result is moved into place: the temporary file written is still there, in a real folder (not one
    swapped for a link since it was made). ``OSError`` otherwise: nothing is moved."""
    try:
        named = os.lstat(tmp)
    except FileNotFoundError:
        named = None
    same = named is not None and (named.st_dev, named.st_ino) == (written.st_dev, written.st_ino)
    if not same or not _is_real_folder(tmp.parent):
        raise OSError(errno.ELOOP, f"{tmp.parent.name} was replaced while the result was being saved")


async def _attempt(
    client: httpx2.AsyncClient,
    url: str,
    source_url: str,
    dest: Path,
    expected: Expected | None,
    max_bytes: int,
    *,
    within: Allowance,
) -> SavedFile:
    """One GET of ``url`` into a temporary file, then into place, ``within`` its allowance (the temporary file is
    removed when it is not met). Raises ``_Expired`` or ``DownloadError``."""
    tmp: Path | None = None
    fd: int | None = None
    try:
        try:
            async with _get(client, url) as response:
                _check_status(response, url)
                declared = _content_length(response)
                if declared is not None and declared > max_bytes:
                    raise _too_big(url, max_bytes, declared, expected)
                fd, tmp = _open_temp(dest)
                watch = SecretWatch()
                started = time.monotonic()
                with anyio.CancelScope(deadline=started + within.seconds(declared)) as timer:
                    size, sha256, head = await _receive(response, fd, url, expected, max_bytes, watch, timer, within)
                if timer.cancelled_caught:
                    elapsed = time.monotonic() - started
                    got = response.num_bytes_downloaded
                    raise _too_slow(url, got, declared, elapsed, timer.deadline - started, within)
                wire_bytes = response.num_bytes_downloaded
        except httpx2.UnsupportedProtocol as exc:  # file://, ftp://: not a link to a result, ever (never retried)
            raise DownloadError(
                f"The result link is not a web address kie-mcp fetches ({exc}); nothing was saved, and it is not "
                f"tried again. KIE serves results over https: this link is broken or was tampered with. {LOGS_HINT}",
                url=url,
                refused=True,
                why="it is not a web address kie-mcp fetches",
            ) from None
        except httpx2.TransportError as exc:
            raise DownloadError(
                f"The download was cut off ({type(exc).__name__}: {exc or 'no detail'}); nothing was saved. "
                f"This is usually temporary: try again. {RETENTION_HINT}",
                url=url,
                retryable=True,
            ) from exc
        except (httpx2.RequestError, httpx2.InvalidURL, httpx2.StreamError) as exc:
            raise DownloadError(
                f"The result could not be fetched ({type(exc).__name__}: {exc}); nothing was saved. {LOGS_HINT}",
                url=url,
            ) from exc
        except PrivateAddress as exc:
            raise DownloadError(
                f"The result link {exc.message}, so kie-mcp did not fetch it and nothing was saved. KIE serves "
                f"results from public servers: this link is broken or was tampered with. {LOGS_HINT}",
                url=url,
                refused=True,
                why=f"it {'redirects to' if exc.url != url else 'points at'} this machine or a private network "
                f"({exc.why})",
            ) from None

        if declared is not None and wire_bytes != declared:
            raise DownloadError(
                f"The download was truncated: the server announced {declared} bytes but sent {wire_bytes}. "
                f"Nothing was saved; try again. {RETENTION_HINT}",
                url=url,
                retryable=True,
            )
        if size == 0:
            raise DownloadError(
                "KIE sent an empty file; nothing was saved. Try again in a minute; if it stays empty, check the "
                "task on https://kie.ai/logs.",
                url=url,
                retryable=True,
            )
        mime = sniff_mime(head)
        _check_type(mime, expected, url, head)  # bodies shorter than SNIFF_BYTES are only sniffed here
        final = _with_extension(dest, mime)
        assert fd is not None  # both set once the body started
        assert tmp is not None
        await anyio.to_thread.run_sync(os.fsync, fd)
        written = os.fstat(fd)
        os.close(fd)
        fd = None
        saved = SavedFile(final, url, source_url, size, sha256, mime, holds_key=watch.found)
        if await anyio.to_thread.run_sync(_same_file, final, size, sha256):
            _remember_key_held(saved)
            return saved  # finally removes the temp file
        _still_in_real_folder(tmp, written)
        os.replace(tmp, final)
        tmp = None
        _fsync_dir(final.parent)
        _remember_key_held(saved)
        return saved
    except OSError as exc:
        raise DownloadError(
            f"Could not write the result to {dest.parent} ({exc.strerror or exc}). Check free disk space and "
            f"permissions, then try again. {RETENTION_HINT}",
            url=url,
        ) from exc
    finally:  # synchronous on purpose: runs to the end even when the task is being cancelled
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.asynccontextmanager
async def _get(client: httpx2.AsyncClient, url: str) -> AsyncIterator[httpx2.Response]:
    """A streamed GET of ``url``, redirects followed by hand so that every hop is checked before it is requested
    (``check_url``) and its answer before it is read (``check_peer``)."""
    headers = {"Accept-Encoding": "identity"}  # so Content-Length counts the bytes we store
    request = client.build_request("GET", url, headers=headers)
    for _ in range(client.max_redirects + 1):
        response = await send_checked(client, request, first=url)
        if response.next_request is None:
            break
        await response.aclose()
        request = response.next_request
    else:
        raise httpx2.TooManyRedirects("Exceeded maximum allowed redirects.", request=request)
    try:
        yield response
    finally:
        await response.aclose()


def _check_status(response: httpx2.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    retryable = status in _RETRYABLE_STATUSES or status >= 500
    if status in _EXPIRED_STATUSES or (400 <= status < 500 and not retryable):
        raise _Expired(status, reason=response.reason_phrase or "")  # ``download`` asks KIE for a fresh link once
    advice = (
        "This is usually temporary: try again in a minute."
        if retryable
        else f"kie-mcp tries again in the background, and check_task tries at once; if it keeps failing, {LOGS_HINT}"
    )
    raise DownloadError(
        f"The file server answered HTTP {status} {response.reason_phrase or ''}".rstrip()
        + f"; nothing was saved. {advice} {RETENTION_HINT}",
        url=url,
        status=status,
        retryable=retryable,
    )


def _too_slow(
    url: str, got: int, declared: int | None, seconds: float, allowed: float, within: Allowance
) -> DownloadError:
    """A download that did not end in the ``allowed`` seconds it had (``Allowance``): stopped, nothing kept. Where it
    held a finishing slot, so that other tasks' results are not held up behind it, it is left to the background,
    which gives it longer; a background try's is tried again later, as a link that slow may be a moment's."""
    of = f" of {declared:,}" if declared is not None else ""
    # The pace it needed: its declared size over the time it had; without one, the average it was always allowed.
    needed = declared / allowed if declared and allowed > 0 else within.bytes_per_second
    pace = f"{needed / 1024:,.0f} KiB/s" if needed >= 1024 else f"{needed:,.0f} bytes/s"
    sent = f"The file server sent {got:,}{of} bytes in {seconds:,.0f} s, slower than the {pace} it needed to finish"
    if not within.background:
        later = allowance_words(within.in_background())
        return DownloadError(
            f"{sent} within the {allowed:,.0f} s a download gets while other tasks' results wait; nothing is saved "
            f"yet. kie-mcp goes on saving it in the background, where a download gets longer ({later}).",
            url=url,
            retryable=True,
        )
    return DownloadError(
        f"{sent} within the {allowed:,.0f} s {STOPPED_IN_BACKGROUND} ({allowance_words(within)}): it was stopped "
        f"there, and nothing was saved. If the file server stays this slow, {LOGS_HINT}",
        url=url,
        retryable=True,
    )


def allowance_words(within: Allowance) -> str:
    """An allowance in words: "1 h, or 32 KiB/s of a larger file's size"."""
    least = within.least_seconds
    time_words = f"{least / 3600:g} h" if least >= 3600 else f"{least / 60:g} min" if least >= 60 else f"{least:g} s"
    return f"{time_words}, or {within.bytes_per_second / 1024:g} KiB/s of a larger file's size"


def _content_length(response: httpx2.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def _too_big(url: str, max_bytes: int, seen: int, expected: Expected | None = None) -> DownloadError:
    """A body over the limit: no result of its kind KIE makes is that large, so the link is not fetched again by
    this process (each try would stream up to the limit again)."""
    kind = "image" if expected == "image" else "result"
    return DownloadError(
        f"The file is larger than the {max_bytes:,}-byte limit for {'an' if kind == 'image' else 'a'} {kind} "
        f"({seen:,} bytes or more); nothing was saved, and kie-mcp does not fetch it again by itself. No {kind} KIE "
        f"makes is that large, so this link is probably not the result. {LOGS_HINT}",
        url=url,
        refused=True,
        why=f"it serves more than the {max_bytes:,} bytes {'an' if kind == 'image' else 'a'} {kind} can be",
    )


def _check_type(mime: str, expected: Expected | None, url: str, head: bytes) -> None:
    """Refuse what is not the file: a web page, or any text (JSON, plain, XML) where media was ``expected``, is an
    error message in its place (``_Expired``: ``download`` asks KIE for a fresh link once); a file of another kind
    than ``expected`` is not this result."""
    if mime == "text/html" or (expected is not None and mime in TEXT_TYPES):
        raise _Expired(200, page=_page_words(mime, head))
    kinds = (expected,) if isinstance(expected, str) else expected
    if kinds is not None and kind_of(mime) not in kinds:
        wanted = " or ".join(f"{'an' if kind in ('image', 'audio') else 'a'} {kind}" for kind in kinds)
        raise DownloadError(
            f"Expected {wanted} but the file is {_TYPE_WORDS.get(mime, mime)}; nothing was saved. KIE's link for this "
            f"result serves something else; {LOGS_HINT}",
            url=url,
        )


# What a refused result is, in words (other types are named by their MIME type: image/png, video/mp4)
_TYPE_WORDS = {
    "application/pdf": "a PDF document (application/pdf)",
    "application/octet-stream": "of a type kie-mcp does not recognise",
}


async def _receive(
    response: httpx2.Response,
    fd: int,
    url: str,
    expected: Expected | None,
    max_bytes: int,
    watch: SecretWatch,
    timer: anyio.CancelScope,
    within: Allowance,
) -> tuple[int, str, bytes]:
    """Stream the body into ``fd``: returns (size, sha256 hex, first bytes); ``watch`` sees every byte (whether the
    file holds the API key where files keep their metadata, searched as it is written, not read again). Memory
    stays about WRITE_BATCH (and the watch's kept tail). ``timer``'s deadline grows with a body longer than it
    declared (or that declared none): ``within``'s pace of it is always allowed (up to ``max_bytes``)."""
    digest = hashlib.sha256()
    pending = bytearray()
    head = b""
    size = 0
    window_at, window_size = time.monotonic(), 0
    started = window_at
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        timer.deadline = max(timer.deadline, started + size / within.bytes_per_second)
        if time.monotonic() - window_at >= TRICKLE_SECONDS:
            if size - window_size < TRICKLE_BYTES:
                raise DownloadError(
                    f"The file server sent {size - window_size:,} bytes in the last {TRICKLE_SECONDS:g} s, too slowly "
                    f"to finish; nothing was saved. This is usually temporary: try again. {RETENTION_HINT}",
                    url=url,
                    retryable=True,
                )
            window_at, window_size = time.monotonic(), size
        if size > max_bytes:
            raise _too_big(url, max_bytes, size, expected)
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
            if len(head) >= SNIFF_BYTES:  # refuse an error page or a wrong type before fetching all of it
                _check_type(sniff_mime(head), expected, url, head)
        pending += chunk
        if len(pending) >= WRITE_BATCH:
            await _hash_and_write(digest, fd, pending, watch)
            pending.clear()
    if pending:
        await _hash_and_write(digest, fd, pending, watch)
    await anyio.to_thread.run_sync(watch.finish)
    return size, digest.hexdigest(), head


async def _hash_and_write(digest: Any, fd: int, data: bytearray, watch: SecretWatch) -> None:
    """Hash, write and search one batch in worker threads at once (they release the GIL); returns when all are
    done."""
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, digest.update, data)
            group.start_soon(anyio.to_thread.run_sync, _write_all, fd, data)
            group.start_soon(anyio.to_thread.run_sync, watch.feed, data)
    except ExceptionGroup as failed:  # a failed write (a full disk) reaches the caller as the OSError it is
        raise failed.exceptions[0] from None


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    finally:
        view.release()


# ``.name.part-<host>-<pid>-<random>``; older kie-mcp wrote ``-<pid>-`` alone, or neither.
_TEMP_NAME = re.compile(r"^\..+\.part-(?:(?:([0-9a-f]{8})-)?(\d+)-)?([0-9a-f]{12})$")
_STALE_UNOWNED_SECONDS = 3600.0
_HOST = processes.HOST  # this machine, in a temporary file's name (processes.py)


def sweep_interrupted_downloads(outputs: Path) -> int:
    """Remove the temporary files of downloads a crashed or killed server left behind; return how many.

    A temporary file names the machine and process writing it (and the process's run: ``processes.RUN``, its
    random part's first 8 digits): one whose process is gone (``_writer_gone``: this machine's, this PID namespace's,
    another run of this process's id as a container restarted in place gives) is removed, one of a live process
    (another server on the same workspace) is left alone. One whose writer cannot be judged (another machine's or
    container's on shared storage, one where a sandbox hides the PID namespace, or unnamed: older kie-mcp) goes once
    it has been an hour unwritten: a live download writes every ``WRITE_BATCH`` (1 MiB), and one sending less than
    ``TRICKLE_BYTES`` a minute is stopped, so none goes 16 minutes without writing.
    """
    if saved.refusal(outputs) is not None:  # a link to / or the home folder: nothing there is kie-mcp's to remove
        return 0
    removed = 0
    try:
        candidates = [p for p in outputs.rglob(".*.part-*") if p.is_file() and not p.is_symlink()]
    except OSError:
        return 0
    for path in candidates:
        match = _TEMP_NAME.match(path.name)
        if match is None:
            continue
        try:
            gone = _writer_gone(match)
            if gone is False or (gone is None and time.time() - path.stat().st_mtime < _STALE_UNOWNED_SECONDS):
                continue
            path.unlink()
            removed += 1
        except OSError:
            continue
    return removed


def sweep_left_downloads(folder: Path, stem: str) -> int:
    """Remove the temporary files of the downloads of one task's results (named ``<stem>_<n>.<ext>``: ``result_stem``)
    that a server now gone left in ``folder``, the session folder they are saved in (the real folder ``real_folder``
    writes them into; nothing is created); return how many. A step of every save of a task's results, before its
    downloads: the server that saves results another let go also clears what that one's download left. Only a file
    whose writer is known to be gone (``_writer_gone`` is True) is removed: a live process's (this one's too) is
    being written, and one whose writer cannot be judged (another machine's, a hidden PID namespace, no owner in its
    name) is left to the start-up sweep (``sweep_interrupted_downloads``)."""
    if saved.refusal(folder.parent) is not None or (real := _written_folder(folder)) is None:
        return 0
    name = re.compile(rf"\.{re.escape(stem)}_\d+\.[a-z0-9]{{1,8}}\.part-")
    removed = 0
    try:
        with os.scandir(real) as entries:
            left = [e for e in entries if name.match(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return 0
    for entry in left:
        match = _TEMP_NAME.match(entry.name)
        if match is None or _writer_gone(match) is not True:
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed += 1
    return removed


def _writer_gone(match: re.Match[str]) -> bool | None:
    """Whether the process that wrote a temporary file (``_TEMP_NAME``'s match of its name) is gone: True, False while
    it runs, None when this machine cannot tell (``processes.owner_gone``: another machine's or PID namespace's, a
    namespace a sandbox hides, or a name of an older kie-mcp naming no machine, whose process id may be any machine's).
    """
    host, pid, tail = match.groups()
    if pid is None:
        return None
    return processes.owner_gone(f"{host or ''}-{pid}-{tail[: len(processes.RUN)]}")


def _written_folder(folder: Path) -> Path | None:
    """The folder ``real_folder`` writes ``folder``'s files into, when it is there: ``folder`` or the first of
    ``<name>_2``, ... that is a real folder, where none before it is missing (``real_folder`` would make that one)."""
    for n in range(1, FOLDER_NAMES_TRIED + 1):
        candidate = folder if n == 1 else folder.with_name(f"{folder.name}_{n}")
        if _is_real_folder(candidate):
            return candidate
        if not os.path.lexists(candidate):
            return None
    return None


def is_temporary(name: str) -> bool:
    """Whether a file name is one ``temp_name`` gives (a download or a join being written): never a result, whatever
    a result's own name holds (a join named ``summer.party.mp4`` is one)."""
    return _TEMP_NAME.match(name) is not None


def temp_name(dest: Path) -> Path:
    """A new hidden name beside ``dest`` for a file being written (a download, a joined video): machine, process id
    and run let a later start tell a crashed writer's leftovers from a live one's (``sweep_interrupted_downloads``)."""
    unique = processes.RUN + secrets.token_hex(2)
    return dest.with_name(f".{dest.name[:160]}.part-{_HOST}-{os.getpid()}-{unique}")  # < NAME_MAX


def _open_temp(dest: Path) -> tuple[int, Path]:
    """A new hidden file beside ``dest`` (same filesystem, so the final rename is atomic)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(10):
        tmp = temp_name(dest)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {dest}")


def _same_file(path: Path, size: int, sha256: str) -> bool:
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size != size:
            return False
        return _sha256_of(path) == sha256
    except OSError:
        return False


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path, follow=False) as handle:  # never waits on a FIFO swapped in since it was judged
        while block := handle.read(WRITE_BATCH):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); some platforms cannot open folders, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- workspace layout ----------------------------------------------------------------------


# Latin letters that no decomposition makes ASCII (NFKD leaves them whole): as they are usually written in ASCII.
_LATIN_PLAIN = str.maketrans(
    {"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D"}
    | {"ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D", "ı": "i", "ħ": "h", "Ħ": "H"}
)


def in_ascii(text: str) -> str:
    """``text`` in the ASCII it can be spelled in (accents dropped, ``ß`` as ``ss``); letters ASCII cannot spell go."""
    return unicodedata.normalize("NFKD", text.translate(_LATIN_PLAIN)).encode("ascii", "ignore").decode("ascii")


def name_label(label: str) -> str:
    """``label`` as a folder or file name is made from it: redacted as typed and with full-width or other
    compatibility letters made plain, so the API key never becomes a name."""
    return redact(unicodedata.normalize("NFKC", redact(label or "")))


def unspelled_digest(label: str, slug: str) -> str | None:
    """8 hex characters of ``label``'s hash (a ``name_label``) for the name ``slug`` made of it, where that name loses
    what the label says: letters ASCII cannot spell (夏季活动 and 冬季活动 would both be nothing), or no ASCII at all
    (emoji alone), so two such labels never share one name; None where ``slug`` spells it. Letter case and runs of
    spaces aside: "Tokyo 東京" and "tokyo  東京" share one, as ASCII names in any letter case do."""
    if not label.strip() or (slug and not _spelled_in_part(label)):
        return None
    named = " ".join(label.casefold().split())
    return hashlib.sha256(named.encode("utf-8")).hexdigest()[:8]


def _slug(text: str, max_len: int, allowed: str = "a-z0-9") -> str:
    ascii_text = in_ascii(text).lower()
    slug = re.sub(f"[^{allowed}]+", "-", ascii_text).strip("-")
    if len(slug) > max_len:
        cut = slug[:max_len]
        slug = cut.rsplit("-", 1)[0] if "-" in cut[max_len // 2 :] else cut
    return slug.strip("-")


def output_folder(workspace: Path, label: str, day: date) -> Path:
    """``workspace/outputs/YYYY-MM-DD-<slug>``: the slug is lowercase ASCII, at most 40 chars, never empty.

    Deterministic and safe for any label (no separators, no dots, no ``..``). The folder is not created. The label
    (a session name or a prompt) is redacted, as typed and with full-width or other compatibility letters made
    plain: the API key never becomes a folder name. Letters ASCII cannot spell (Chinese, Arabic, Cyrillic, ...)
    and labels of emoji alone add 8 hex characters of the label's hash, so two such sessions of a day never share
    one folder (夏季活动 and 冬季活动 were both ``untitled``); the gallery heads them with the session's own name.
    """
    plain_label = name_label(label)
    slug = _slug(plain_label, 40)
    if digest := unspelled_digest(plain_label, slug):
        slug = "-".join(part for part in (_slug(plain_label, 31), digest) if part)
    return Path(workspace) / "outputs" / f"{day.isoformat()}-{slug or 'untitled'}"


def session_folder(workspace: Path, label: str, day: date, *, named: bool) -> Path:
    """The folder a session's results go to, not created (``real_folder`` makes it when a file is written, and a link
    in its place is never written through). A named session goes on in the folder it has: the latest-dated real
    folder ``outputs/<date>-<slug>`` of its slug (or a ``_2`` one standing in for a link of that name), so a session
    that runs past midnight, or is taken up another day, stays in one folder; one with none yet starts at ``day``.
    A session named as its folder is (``outputs/2026-04-20-ugc-batch``, as the seed documents write one) is that
    folder (``named_folder``). Results without a session (their folder named after the prompt) keep a folder a day
    (``output_folder``)."""
    if not named:
        return output_folder(workspace, label, day)
    if (read := named_folder(workspace, label, day)) is not None:
        return read.folder
    return _named_session_folder(workspace, label, day)


def _named_session_folder(workspace: Path, label: str, day: date) -> Path:
    """A named session's folder by its slug (``session_folder``): the latest it has, else one starting at ``day``."""
    fresh = output_folder(workspace, label, day)
    slug = fresh.name[len(day.isoformat()) + 1 :]
    return latest_session_folder(fresh.parent, slug) or fresh


@dataclass(frozen=True)
class NamedFolder:
    """A session label read as the name of a session folder (``saved.folder_label``): the folder its results go to,
    and the sentence an answer says it in."""

    folder: Path
    words: str


NAMED_DAYS_AHEAD = 1  # how many days after this machine's date a session folder's name may be dated (named_folder)


def last_named_day() -> date:
    """The latest day a session label written as a folder's name may date its folder (``named_folder``): the day
    after this machine's local date. The agent writes the user's date, and the user may be a day ahead of this
    machine (Auckland, UTC+13, while a server runs on UTC): their today names their folder. A date further on is no
    one's today where the two clocks are less than 24 hours apart (a typo, a plan, a folder a cloned repository
    carried): it names none."""
    return date.today() + timedelta(days=NAMED_DAYS_AHEAD)


def _a_day(written: str) -> date | None:
    """The day a folder's name is dated (``saved.FolderLabel.day``), or None when no calendar has it."""
    try:
        return date.fromisoformat(written)
    except ValueError:
        return None


def _named_day(written: str) -> date | None:
    """The day a folder's name is dated (``saved.FolderLabel.day``) when it may date a new session folder: a day of
    the calendar, at most ``last_named_day``; None for any other."""
    on = _a_day(written)
    return on if on is not None and on <= last_named_day() else None


def named_folder(
    workspace: Path, label: str | None, day: date, saved_before: Callable[[Path], bool] | None = None
) -> NamedFolder | None:
    """The folder a session label written as a session folder's name means (``outputs/2026-04-20-ugc-batch``,
    ``./outputs/2026-04-20-ugc-batch/`` or ``2026-04-20-ugc-batch``: the seed documents and MASTER_CONTEXT.md tell
    an agent to make ``outputs/{YYYY-MM-DD}-{slug}/``), or None for a label that names no folder (a session name,
    slugged as ever: ``ugc-batch``, ``../x``, ``outputs/a/b``). The folder it names, ``outputs/<its day>-<its name's
    slug>``, when it may be a session's: a real folder there the user can write into, whatever its day (a server in
    another time zone, or past midnight, still finds the folder the user named); the ``_2`` that stands in for a link
    of that name (as ``latest_session_folder`` takes them); or none there yet, made on the first result (dated as
    named: the user named that folder, and every later call naming it finds it), when its day is at most the one
    after this machine's (``last_named_day``: the user's today, a time zone ahead). ``2026-04-20-x_2`` names the
    folder ``2026-04-20-x`` only where that is a link and ``2026-04-20-x_2`` the real folder ``real_folder`` writes
    its results into (``_stand_in``); otherwise ``x_2`` is a name of its own (``2026-04-20-x-2``). A day no calendar
    has, a later one with no such folder, and a folder there that cannot be written into (a link, a file, read-only)
    name none: its results go to the session of its name's (``ugc-batch``'s: its latest folder, else one of ``day``).
    Before a new folder, or the name's session, comes the folder the label's session was given before kie-mcp read
    such a label as a folder (``_double_dated``: ``outputs/<its first day>-2026-04-20-ugc-batch``), when
    ``saved_before`` (by default the journal) says a task of this very label saved a file there. Lists ``outputs/``
    and reads the journal: call it in a worker thread where that matters."""
    given = saved.folder_label(label)
    if given is None or label is None:
        return None
    shown = plain(label, limit=80)
    written_day = _a_day(given.day)
    on = _named_day(given.day)
    outputs = Path(workspace) / saved.OUTPUTS
    if written_day is not None and (base := _stand_in(workspace, given, written_day)) is not None:
        where = f"{saved.OUTPUTS}/{given.bare}/"
        return NamedFolder(base, f"session {shown} names the session folder {where}: results go on in it.")
    folder = output_folder(workspace, given.name, written_day or day)
    if written_day is not None and _writable_folder(folder):  # named exactly, and there: whatever its day
        return NamedFolder(
            folder, f"session {shown} names the session folder {saved.OUTPUTS}/{folder.name}/: results go on in it."
        )
    folder = output_folder(workspace, given.name, on or day)
    where = f"{saved.OUTPUTS}/{folder.name}/"
    if on is not None and latest_session_folder(outputs, folder.name[11:], on=on) is not None:
        written = f"{saved.OUTPUTS}/{(_written_folder(folder) or folder).name}/"  # a stand-in by its own name
        return NamedFolder(folder, f"session {shown} names the session folder {written}: results go on in it.")
    fresh = on is not None and not os.path.lexists(folder)
    if fresh:
        said = f"session {shown} names the session folder {where}"
    else:
        said = f"session {shown} names a session folder, but {_names_none(given.day, on, where)}"
    if (old := _double_dated(outputs, label, given, saved_before)) is not None:  # a session begun before
        gone = ", which is not there" if fresh else ""
        old_where = f"{saved.OUTPUTS}/{(_written_folder(old) or old).name}/"
        before = "where this session was saved before kie-mcp read a folder's name as that folder"
        return NamedFolder(old, f"{said}{gone}: results go on in {old_where}, {before}.")
    if fresh:
        return NamedFolder(folder, f"{said}: results are saved in it (a new folder, dated as named).")
    folder = _named_session_folder(workspace, given.name, day)
    return NamedFolder(
        folder,
        f"{said}: results are saved in {saved.OUTPUTS}/{folder.name}/, the folder of the session "
        f"{plain(given.name, limit=80)}.",
    )


def _stand_in(workspace: Path, given: saved.FolderLabel, on: date) -> Path | None:
    """The folder a label ending in ``_N`` (``2026-04-20-x_2``) names as the stand-in ``real_folder`` made beside a
    link of the name without it: ``outputs/2026-04-20-x`` (which ``real_folder`` sends on to ``..._2``) when that is
    a link or no real folder, and ``..._2`` the real folder, one this user can write into, that ``real_folder``
    writes its results into; else None (``x_2`` is then a name of its own)."""
    if (named := given.stand_in) is None:
        return None
    base = output_folder(workspace, named[0], on)
    stand = base.with_name(f"{base.name}_{named[1]}")
    if named[1] < 2 or _is_real_folder(base) or not _writable_folder(stand):
        return None
    return base if _written_folder(base) == stand else None


def _names_none(written: str, on: date | None, where: str) -> str:
    """Why a session folder's name names no folder a session may have (``named_folder``), in words."""
    if on is not None:
        return f"{where} is a link, a file or a folder kie-mcp cannot write into"
    if _a_day(written) is None:
        return f"{written} is no date"
    return f"{written} is more than a day after today, and no session folder is dated so late"


def _double_dated(
    outputs: Path, label: str, given: saved.FolderLabel, saved_before: Callable[[Path], bool] | None
) -> Path | None:
    """The folder a session labelled as a folder's name (``2026-04-20-ugc-batch``) was given before kie-mcp read such
    a label as that folder: the session of the whole label, slugged, ``outputs/<its first day>-2026-04-20-ugc-batch``
    (``...-outputs-2026-04-20-ugc-batch`` for ``outputs/2026-04-20-ugc-batch``), the latest of those it has
    (``latest_session_folder``), when ``saved_before`` (by default the journal: ``journal.session_saved_in``) says
    this very label saved a file there (slugs are cut at 40
    characters: another label sharing its first 40 has the same folder, which is never this session's); or None."""
    if saved_before is None:  # the journal: a task of this label, as typed or bare, with a file saved there
        from kie_mcp.journal import session_saved_in  # the journal's module loads the media helpers lazily too

        saved_before = functools.partial(session_saved_in, outputs.parent, (label, given.bare))
    found = [
        folder
        for written in dict.fromkeys((label, given.bare))
        if (folder := latest_session_folder(outputs, output_folder(Path(), written, date.min).name[11:]))
        and saved_before(folder)
    ]
    return max(found, key=lambda folder: folder.name[:10], default=None)


def named_folder_name(label: str | None, *, capped: bool = True) -> str | None:
    """The name of the session folder a label written as one names (``outputs/2026-04-20-ugc-batch``:
    ``2026-04-20-ugc-batch``; ``outputs/2026-04-20-x_2``: ``2026-04-20-x-2``), judged without the disk: None for a
    label naming no folder, or one of a day no calendar has or (``capped``) after ``last_named_day``. Uncapped, it
    does not change with the clock: the journal keeps it with each task (``journal.session_folder_of``)."""
    given = saved.folder_label(label)
    if given is None or (on := (_named_day if capped else _a_day)(given.day)) is None:
        return None
    return output_folder(Path(), given.name, on).name


def latest_session_folder(outputs: Path, slug: str, *, on: date | None = None) -> Path | None:
    """``outputs/<date>-<slug>`` of the latest date with a real folder of that slug (``<date>-<slug>``, or a
    ``<date>-<slug>_N`` that ``real_folder`` made beside a link of that name), or None. One listing of ``outputs/``
    (14 ms at 27,000 folders); a link in a session folder's place is not a folder of the session. Nor is one this
    user cannot write into (archived read-only, made by another user: a paid result would not be saved there), nor
    one dated after today (planted, as a cloned repository can carry one: it would take every later result). With
    ``on``, only a folder of that day, which may be up to ``last_named_day`` (a folder the user named, dated by
    their today: ``named_folder``); a later one is none."""
    dated = re.compile(rf"(\d{{4}}-\d{{2}}-\d{{2}})-{re.escape(slug)}(?:_\d+)?")
    try:
        names = [name for name in os.listdir(outputs) if slug in name]
    except OSError:  # no outputs/ yet (or none to read): the session has no folder
        return None
    latest = date.today() if on is None else min(on, last_named_day())
    days = sorted(
        {
            found[1]
            for name in names
            if (found := dated.fullmatch(name))
            and found[1] <= latest.isoformat()
            and (on is None or found[1] == on.isoformat())
            and _writable_folder(outputs / name)
        },
        reverse=True,
    )
    for day in days:
        with contextlib.suppress(ValueError):  # a folder named like one, of a day no calendar has
            return outputs / f"{date.fromisoformat(day).isoformat()}-{slug}"
    return None


def _writable_folder(folder: Path) -> bool:
    """Whether ``folder`` is a real folder (``_is_real_folder``) this user may make files in."""
    return _is_real_folder(folder) and os.access(folder, os.W_OK | os.X_OK)


def folder_session(folder: str) -> tuple[str, str] | None:
    """A session folder's day and slug (``2026-12-05-serum-launch_2``: ``2026-12-05``, ``serum-launch``), or None
    for a name ``output_folder`` does not give."""
    found = SESSION_FOLDER.match(folder)
    if found is None:
        return None
    return found[1], re.sub(r"_\d+$", "", found[2])


def _spelled_in_part(label: str) -> bool:
    """Whether ``label`` holds a letter or digit that ASCII cannot spell (its slug would lose it)."""
    return any(unicodedata.category(ch)[0] in "LN" and not in_ascii(ch).strip() for ch in label)


def result_name(model_id: str, task_id: str, index: int, ext: str) -> str:
    """``<model>_<task>_<index>.<ext>``, e.g. ``nano-banana-2_abc123_1.png``; safe for any input.

    ``/`` and other unsafe characters in model ids become ``-``; ``index`` is written as given.
    """
    suffix = re.sub(r"[^a-z0-9]+", "", ext.lower())[:8] or "bin"
    return f"{result_stem(model_id, task_id)}_{int(index)}.{suffix}"


def result_stem(model_id: str, task_id: str) -> str:
    """``<model>_<task>``: what the names of a task's results begin with (``result_name``)."""
    model = re.sub(r"\.{2,}", ".", _slug(model_id, 48, "a-z0-9.")).strip(".-") or "model"
    task = re.sub(r"[^A-Za-z0-9_-]+", "-", task_id).strip("-_")[:64] or "task"
    return f"{model}_{task}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as pretty UTF-8 JSON: temp file beside ``path``, fsync, ``os.replace``. Never half-written, and
    never into a folder that is a symbolic link (a sidecar's folder swapped for one since its files were saved):
    ``OSError`` then."""
    path = Path(path)
    if not os.path.lexists(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    if not _is_real_folder(path.parent):
        why = f"{path.parent.name} is a symbolic link or not a folder, which kie-mcp never writes into"
        raise OSError(errno.ELOOP, why)
    write_bytes_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def write_bytes_atomic(path: Path, payload: bytes, *, durable: bool = True) -> None:
    """Write ``payload`` to ``path`` through a hidden temporary file beside it (swept like a download's if the
    process dies) and ``os.replace``: readers see the old file or the new one, never half of one. A symlink at
    ``path`` is replaced, never followed. ``durable`` also fsyncs the file and its folder."""
    fd, tmp = _open_temp(path)
    try:
        try:
            _write_all(fd, payload)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        _fsync_dir(path.parent)


THUMBNAIL_SIDE = 256  # the longest side of the thumbnails shown inline to the model
# A preview decodes at most this many pixels, judged before any decode: a small crafted PNG can declare 13000x13000
# (~700 MB decoded, far more while scaling), and Pillow itself only refuses above twice its own limit. An 8K image
# is 33 million pixels. A baseline JPEG is decoded at a reduced scale (down to an eighth a side, ``_drafted``), so
# the limit holds what is decoded: an 8200 x 8200 upscale (67 million) is decoded as 1025 x 1025; a progressive one
# is judged at its full size, as its decode holds that much whatever the scale. Past Pillow's own limit (179 million)
# nothing is opened, in any format.
PREVIEW_MAX_PIXELS = 64_000_000
FAILURES_REMEMBERED = 4096  # previews that could not be made, remembered per process (the oldest forgotten first)


class _Failures:
    """Files that could not be previewed, each under a key naming the file's version (so a changed file is tried
    again), at most ``FAILURES_REMEMBERED``: a process that runs for weeks must not grow with every failure."""

    def __init__(self) -> None:
        self._keys: dict[tuple[Any, ...], None] = {}  # in the order they failed
        self._lock = threading.Lock()  # previews are made in worker threads

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            self._keys[key] = None
            while len(self._keys) > FAILURES_REMEMBERED:
                del self._keys[next(iter(self._keys))]


_failed_thumbnails = _Failures()  # (image, its mtime_ns, side) that could not be scaled


def thumbnail_path(path: Path, mime: str, max_side: int = THUMBNAIL_SIDE) -> Path:
    """Where the thumbnail of ``path`` is kept: a hidden sibling, ``.<name>.thumb-<side>.jpg`` (``.png`` with
    transparency). Hidden files are never served as outputs and never listed as results."""
    path = Path(path)
    ext = "png" if mime == "image/png" else "jpg"
    return path.with_name(f".{path.name[:170]}.thumb-{int(max_side)}.{ext}")


def cached_thumbnail(path: Path, max_side: int = THUMBNAIL_SIDE) -> tuple[bytes, str] | None:
    """The kept thumbnail of ``path``, without decoding anything; None when there is none, the file changed since
    (a kept thumbnail carries the modification time of the file it was made from) or its name no longer holds a
    regular file (a link or a FIFO in its place has no preview)."""
    source = _source_mtime(path)
    return None if source is None else _kept_thumbnail(path, source, max_side)


def _source_mtime(path: Path) -> int | None:
    """The modification time of the file named ``path`` when it is a regular file, its name never followed through a
    link (``lstat``: nothing is opened, so nothing is waited on)."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    return found.st_mtime_ns if stat.S_ISREG(found.st_mode) else None


def _kept_thumbnail(path: Path, source_mtime_ns: int, max_side: int) -> tuple[bytes, str] | None:
    """The thumbnail kept beside ``path`` for the version of it modified at ``source_mtime_ns``, if any."""
    for mime in ("image/jpeg", "image/png"):
        kept = _read_kept(thumbnail_path(path, mime, max_side), source_mtime_ns, mime)
        if kept is not None:
            return kept
    return None


def _read_kept(kept: Path, source_mtime_ns: int, mime: str) -> tuple[bytes, str] | None:
    """A kept preview, when it is dated like its source (else the source changed since) and has ``mime``: read from
    one open file that is a regular file reached with no symlink in its name (``open_judged``: a link or a FIFO in its
    place is no kept preview, and is never waited on)."""
    from kie_mcp.media.inputs import open_judged

    try:
        with open_judged(kept.parent.resolve() / kept.name) as handle:
            if os.fstat(handle.fileno()).st_mtime_ns != source_mtime_ns:
                return None
            data = handle.read()
    except (OSError, RuntimeError):  # RuntimeError: a loop of links in its folder's path
        return None
    if not data or sniff_mime(data[:SNIFF_BYTES]) != mime or bytes_hold_secret(data):
        return None  # holding the key: an older kie-mcp kept the source's metadata in it; made again, bare
    return data, mime


def thumbnail(path: Path, max_side: int = THUMBNAIL_SIDE) -> tuple[bytes, str] | None:
    """A small JPEG (PNG when the image has transparency) of an image file for inline display; None otherwise (and
    for a link or a FIFO in the file's place: it is read only as ``opened_source`` opens it).

    Made once per file and kept beside it (``thumbnail_path``, written atomically), made again when the file
    changed (is newer) since. A file that could not be scaled is remembered (until it changes) and not decoded again.
    Decoding a large image takes a while: call it in a worker thread (``make_thumbnails``); ``cached_thumbnail``
    reads the kept one without decoding.
    """
    return _made_from_source(path, _thumbnail_of, max_side)


def _thumbnail_of(path: Path, source: IO[bytes], max_side: int) -> tuple[bytes, str] | None:
    """``thumbnail`` of ``source``, the open file of ``path``: the one kept beside it when that is dated like this
    very file (never one kept for whatever the name held before), else made from it and kept."""
    mtime_ns = os.fstat(source.fileno()).st_mtime_ns
    kept = _kept_thumbnail(path, mtime_ns, max_side)
    if kept is not None:
        return kept
    tried = (str(path), mtime_ns, int(max_side))
    if tried in _failed_thumbnails:
        return None
    made = _make_thumbnail(source, max_side)
    if made is None:
        _failed_thumbnails.add(tried)
        if (damage := undecodable(path)) is not None:  # a second look only at a failure: damaged, or too large
            _damaged[(str(path), mtime_ns)] = damage
        return None
    with contextlib.suppress(OSError):  # a read-only folder: the thumbnail is still shown, just not kept
        _keep_thumbnail(path, made, max_side, mtime_ns)
    return made


async def make_thumbnails(paths: list[Path], max_side: int = THUMBNAIL_SIDE) -> None:
    """Make (or check) the kept thumbnails of ``paths`` in a worker thread, off the event loop."""

    def make_all() -> None:
        for path in paths:
            _best_effort(thumbnail, path, max_side)

    if paths:
        await anyio.to_thread.run_sync(make_all)


def _keep_thumbnail(path: Path, made: tuple[bytes, str], max_side: int, source_mtime_ns: int) -> None:
    """Write the thumbnail beside ``path`` (a temporary file moved into place), dated like the file it shows."""
    data, mime = made
    _keep_dated(thumbnail_path(path, mime, max_side), data, source_mtime_ns)
    other = thumbnail_path(path, "image/jpeg" if mime == "image/png" else "image/png", max_side)
    with contextlib.suppress(OSError):
        other.unlink(missing_ok=True)  # the image lost or gained transparency: one kept thumbnail per size


# The results whose structure is checked as they are saved, besides images (``undecodable``): MP4, MOV and M4A, by
# their top-level boxes (``duration.cut_short``).
BOXED = frozenset({"video/mp4", "video/quicktime", "audio/mp4"})


def damaged(path: Path, mime: str) -> str | None:
    """Why the saved result at ``path`` (of type ``mime``, sniffed as it was saved) is not whole, or None: an image
    that does not decode (``undecodable``), or an MP4, MOV or M4A that is cut short or has no movie box (``cut_short``:
    its box headers only, a seek and 16 bytes a box, never decoded nor read whole). Other types, and a link or a FIFO
    in its place, are not judged. Worker thread."""
    if kind_of(mime) == "image":
        return undecodable(path)
    if mime not in BOXED:
        return None
    try:
        source = opened_source(_in_real_folder(path))
    except (OSError, RuntimeError):  # a link, a FIFO or nothing in its place, unreadable, a loop of links
        return None
    with source:
        return cut_short(source)


def cut_short(source: IO[bytes]) -> str | None:
    """Why the open MP4, MOV or M4A ``source`` is not whole (``duration.cut_short``); None when it is, or is none."""
    from .duration import cut_short as boxes_cut_short  # duration's readers load when a video is first judged

    source.seek(0)
    if sniff_mime(source.read(SNIFF_BYTES)) not in BOXED:
        return None
    return boxes_cut_short(source, os.fstat(source.fileno()).st_size)


def not_whole(mime: str | None) -> str:
    """What a saved result that is not whole (``damaged``) is said to be, by its type."""
    kind = kind_of(mime or "")
    if kind == "video":
        return "it is not a whole video"
    if kind == "audio":
        return "it is not a whole audio file"
    return "it does not open as an image"


def undecodable(path: Path) -> str | None:
    """Why the saved image at ``path`` does not decode (cut short, damaged), or None: it decodes, or it is not
    judged (not an image by its bytes, more pixels than a preview decodes, a link or a FIFO in its place). A PNG's
    chunks are checked to its end, not decoded; a JPEG is decoded at a reduced scale (``_drafted``: a progressive one
    is judged at its full size). Worker thread."""
    try:
        source = opened_source(_in_real_folder(path))
    except (OSError, RuntimeError):  # a link, a FIFO or nothing in its place, unreadable, a loop of links
        return None
    with source:
        try:
            if kind_of(sniff_mime(source.read(SNIFF_BYTES))) != "image":
                return None
            source.seek(0)
            image = pillow().open(source)
        except pillow().UnidentifiedImageError:  # a format Pillow does not read (HEIC, ...): not judged
            return None
        except Exception as err:  # a format it reads, whose header is cut short or garbled
            return _damage(err)
        with image:
            # a JPEG: decoded at a reduced scale, and judged at it (a progressive one at its full size)
            if _too_many_pixels(image, size=_drafted(image, THUMBNAIL_SIDE)):
                return None
            try:
                if image.format == "PNG":  # every chunk's checksum, to the end: 7 ms for a 4K PNG, not a 400 ms decode
                    image.verify()
                else:
                    image.load()
            except Exception as err:  # any error of the decoder on an image it reads: damaged (cut short, garbled)
                return _damage(err)
    return None


def _damage(err: Exception) -> str | None:
    """What ``err``, raised opening or decoding a saved image, says of its damage; None when it is one of Pillow's
    own guards, not damage: more pixels than it opens (a Topaz 4x upscale of a photo: 192 million) or metadata
    larger than it reads (a PNG's text chunk over 1 MB). Such an image is not judged, so never called damaged."""
    image = pillow()
    if isinstance(err, image.DecompressionBombError | image.DecompressionBombWarning):
        return None
    if isinstance(err, ValueError) and "MAX_TEXT" in str(err):  # "Decompressed data too large for ...MAX_TEXT_CHUNK"
        return None
    return str(err) or type(err).__name__


_damaged: dict[tuple[str, int], str] = {}  # (result, its mtime_ns) -> why it is not whole, seen saving or previewing it
_key_held: _Failures = _Failures()  # (saved result, its mtime_ns) whose bytes held the API key as it was saved


def _remember_key_held(file: SavedFile) -> None:
    """Remember a saved result whose bytes hold the API key, so that later answers naming it (``key_held``) say so."""
    if not file.holds_key:
        return
    with contextlib.suppress(OSError):
        real = _in_real_folder(file.path)
        _key_held.add((str(real), os.lstat(real).st_mtime_ns))


def _remember_damage(file: SavedFile) -> SavedFile:
    """Remember why a saved result is not whole, so that later answers naming it (``damage_of``) say so."""
    if file.damaged is not None:
        with contextlib.suppress(OSError, RuntimeError):
            real = _in_real_folder(file.path)
            _damaged[(str(real), os.lstat(real).st_mtime_ns)] = file.damaged
    return file


def key_held(path: Path, recorded: int | None = None) -> bool:
    """Whether the saved result at ``path`` held the API key as it was saved, as it is now (a file changed since is
    another): as this process saved it (dated as it was then), or as the journal's row of it says, which outlives the
    process (a restart, another server on the workspace): ``recorded``, the size it was saved at, given when its row
    says it held the key (``Journal.add_file``'s ``holds_key``), a file of another size since being another (as
    ``saved.kept`` judges a list's files). Never reads it (one lstat): answers on the event loop call it; none seen
    and no row given, not even that (a completion judges every file of a folder)."""
    if recorded is None and not len(_key_held):
        return False
    try:
        real = _in_real_folder(path)
        found = os.lstat(real)
    except (OSError, RuntimeError):
        return False
    if not stat.S_ISREG(found.st_mode):  # a link or a folder in its place: not the file saved
        return False
    return found.st_size == recorded or (str(real), found.st_mtime_ns) in _key_held


def damage_of(path: Path) -> str | None:
    """Why the saved result at ``path`` is not whole (``damaged``), as this process saw it saving it or making its
    preview (an image that did not decode, a video cut short), or None. Never reads it (one lstat): answers on the
    event loop call it after ``make_previews``."""
    try:
        real = _in_real_folder(path)
    except (OSError, RuntimeError):
        return None
    mtime = _source_mtime(real)
    return None if mtime is None else _damaged.get((str(real), mtime))


def _make_thumbnail(source: IO[bytes], max_side: int) -> tuple[bytes, str] | None:
    """Decode the open image ``source`` from its start and scale it down (the slow part: hundreds of ms for a 4K
    PNG)."""
    try:
        source.seek(0)
    except OSError:
        return None
    return scaled_copy(source, max_side)


def _keep_dated(dest: Path, data: bytes, source_mtime_ns: int) -> None:
    """Write ``data`` to ``dest`` atomically, dated like the file it was made from (how staleness is seen)."""
    fd, tmp = _open_temp(dest)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.utime(tmp, ns=(time.time_ns(), source_mtime_ns))
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# -- the saved result a preview is made from -----------------------------------------------------------------


def opened_source(real: Path) -> io.BufferedReader:
    """The saved result at ``real`` (a path with no symbolic link in it) opened once, judged as it is opened
    (``inputs.open_judged``: a regular file, not a link, the very file its name leads to, opened without waiting):
    a preview is made, and a kept one chosen, from this open file only, never from the name opened again.
    ``ChangedFile`` for a link (to a picture outside the workspace) or a FIFO (which would block a read for good)
    in its place, or nothing there."""
    from kie_mcp.media.inputs import open_judged

    return open_judged(real)


def _in_real_folder(path: Path) -> Path:
    """``path`` with the links of its folder resolved and its own name kept, never followed: what ``opened_source``
    takes. ``RuntimeError`` (``OSError`` on newer Pythons) for a loop of links."""
    path = Path(path)
    return path.parent.resolve() / path.name


def _made_from_source(
    path: Path, make: Callable[[Path, IO[bytes], int], tuple[bytes, str] | None], max_side: int
) -> tuple[bytes, str] | None:
    """``make(real path, open file, max_side)`` on ``path`` opened by ``opened_source``; None when it cannot be (a
    link or a FIFO in its place, nothing there, unreadable)."""
    try:
        real = _in_real_folder(path)
        with opened_source(real) as source:
            return make(real, source, max_side)
    except (OSError, RuntimeError):  # ChangedFile is an OSError; RuntimeError: a loop of links in its folder
        return None


# -- video posters ---------------------------------------------------------------------------

POSTER_TIMEOUT = 30.0  # seconds ffmpeg may take to pick and decode one frame
_POSTER_SCAN_FRAMES = 24  # ffmpeg's thumbnail filter picks the most typical of the first frames (not a black one)
_failed_posters = _Failures()  # (video, its mtime_ns) ffmpeg could not read: not tried again


def poster_path(path: Path, max_side: int) -> Path:
    """Where the poster frame of the video ``path`` is kept: a hidden sibling, ``.<name>.poster-<side>.jpg``."""
    path = Path(path)
    return path.with_name(f".{path.name[:170]}.poster-{int(max_side)}.jpg")


def cached_poster(path: Path, max_side: int) -> tuple[bytes, str] | None:
    """The kept poster of ``path``, without running ffmpeg; None when there is none, the video changed since or its
    name no longer holds a regular file."""
    source = _source_mtime(path)
    return None if source is None else _read_kept(poster_path(path, max_side), source, "image/jpeg")


def poster(path: Path, max_side: int) -> tuple[bytes, str] | None:
    """A JPEG still of the video ``path`` (longest side at most ``max_side``), so a person and the agent can see
    what a clip shows without playing it; None without ffmpeg, when the file is not a decodable video, or when a
    link or a FIFO is in its place (it is read only as ``opened_source`` opens it).

    Made once per video with ffmpeg (``media.stitch.find_ffmpeg``: the ``video`` extra, else ffmpeg on PATH),
    which reads that open file, and kept beside it (``poster_path``). Runs a subprocess: call it in a worker thread
    (``make_previews``).
    """
    return _made_from_source(path, _poster_of, max_side)


def _poster_of(path: Path, source: IO[bytes], max_side: int) -> tuple[bytes, str] | None:
    """``poster`` of ``source``, the open file of ``path``: the one kept beside it when that is dated like this very
    file, else made from it by ffmpeg and kept. An MP4 or MOV cut short is remembered as such (``damage_of``), as
    a restarted server did not see it saved."""
    mtime_ns = os.fstat(source.fileno()).st_mtime_ns
    if (str(path), mtime_ns) not in _damaged and (damage := cut_short(source)) is not None:
        _damaged[(str(path), mtime_ns)] = damage  # said by later answers, though a frame from its start may show
    kept = _read_kept(poster_path(path, max_side), mtime_ns, "image/jpeg")
    if kept is not None:
        return kept
    source.seek(0)
    if kind_of(sniff_mime(source.read(SNIFF_BYTES))) != "video":
        return None
    tried = (str(path), mtime_ns)
    made = None if tried in _failed_posters else _make_poster(path, source, max_side)
    if made is None:
        _failed_posters.add(tried)
        return None
    with contextlib.suppress(OSError):  # a read-only folder: the poster is still shown, just not kept
        _keep_dated(poster_path(path, max_side), made[0], mtime_ns)
    return made


def _make_poster(path: Path, source: IO[bytes], max_side: int) -> tuple[bytes, str] | None:
    """A poster frame of the open video ``source``: ffmpeg reads that very file as ``/dev/fd/N`` (the descriptor
    passed on), as a single-file video only (stitch's whitelists: a local file, a video container); where there is
    no ``/dev/fd`` (Windows), ``path``, the name it was opened by."""
    from kie_mcp.media.stitch import FD_FOLDER, SINGLE_FILE, StitchError, by_descriptor, find_ffmpeg

    try:
        ffmpeg = find_ffmpeg()
        fds = (source.fileno(),) if by_descriptor() else ()
        for fd in fds:
            os.lseek(fd, 0, os.SEEK_SET)  # where opening /dev/fd/N shares the offset (macOS): from the start
    except (StitchError, OSError, ValueError):
        return None
    given = FD_FOLDER / str(fds[0]) if fds else path
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", *SINGLE_FILE, "-i", str(given),
        "-vf", f"thumbnail=n={_POSTER_SCAN_FRAMES}", "-frames:v", "1", "-an",
        "-f", "image2pipe", "-c:v", "png", "-",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=POSTER_TIMEOUT,
            check=False,
            pass_fds=fds,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not done.stdout:
        return None
    try:
        with pillow().open(io.BytesIO(done.stdout)) as frame:
            if _too_many_pixels(frame):
                return None
            frame.thumbnail((max_side, max_side))
            out = io.BytesIO()
            _bare(frame.convert("RGB")).save(out, format="JPEG", quality=82)
            return out.getvalue(), "image/jpeg"
    except Exception as exc:  # a poster is best effort: any failure of the decoder means no poster
        log.debug("No poster for %s: %s: %s", path, type(exc).__name__, exc)
        return None


def scaled_copy(
    source: IO[bytes], max_side: int, *, decoded_at_most: int = PREVIEW_MAX_PIXELS
) -> tuple[bytes, str] | None:
    """A scaled-down JPEG (PNG with transparency) of the image in ``source``, an open file, made now and not kept:
    for files in the user's own folders (input images), where nothing should be written, and which are read only as
    they were opened and checked, never opened again by name. None when it is not an image Pillow can decode, or
    would decode more than ``PREVIEW_MAX_PIXELS``, or more than ``decoded_at_most`` (judged from its header, before
    any decode; a baseline JPEG at the reduced scale it is decoded at, ``_drafted``, any other format and a
    progressive JPEG at full size): a picture on every approval card is held to what an estimate decodes
    (``prepare.DECODE_MAX_PIXELS``). A preview is best effort: any error of the decoder on a crafted file means no
    preview, never a failed tool. Decodes: call it in a worker thread."""
    try:
        if kind_of(sniff_mime(source.read(SNIFF_BYTES))) != "image":
            return None
        source.seek(0)
        with pillow().open(source) as image:
            if _too_many_pixels(image, decoded_at_most, _drafted(image, max_side)):
                return None
            return _encode_small(_scaled_upright(image, max_side))
    except Exception as exc:
        log.debug("No preview of an image: %s: %s", type(exc).__name__, exc)
        return None


def _drafted(image: Any, max_side: int) -> tuple[int, int]:
    """Ask an opened (not yet decoded) JPEG to decode at the smallest scale libjpeg offers (a half, a quarter, an
    eighth a side) that still holds its preview, ``max_side`` on its longest side: its ``size`` is then what will
    be decoded. The size asked for keeps the picture's shape, so a long strip is reduced as much as a square. Any
    other format has no reduced decode: nothing changes. Returns the size its decode costs memory for, which
    ``_too_many_pixels`` judges: the reduced one, but a progressive JPEG's full size (libjpeg keeps the whole
    picture's coefficients, 3 to 6 bytes a pixel, whatever the scale: a 2 MB progressive 13000 x 13000 JPEG took
    1 GB at an eighth)."""
    from .prepare import progressive

    full = width, height = image.size
    longest = max(width, height)
    if longest > max_side:
        image.draft(
            "RGB", (max(1, math.ceil(width * max_side / longest)), max(1, math.ceil(height * max_side / longest)))
        )
    return full if progressive(image) else image.size


def _too_many_pixels(image: Any, at_most: int = PREVIEW_MAX_PIXELS, size: tuple[int, int] | None = None) -> bool:
    """Whether an opened (not yet decoded) image would decode more pixels than a preview may (``at_most``, never
    over ``PREVIEW_MAX_PIXELS``): ``size``, what its decode costs (a JPEG's from ``_drafted``), else its own."""
    width, height = size or image.size
    limit = min(at_most, PREVIEW_MAX_PIXELS)
    if width * height <= limit:
        return False
    log.debug("No preview: the %s image would decode %dx%d, over %d pixels.", image.format, width, height, limit)
    return True


def _scaled_upright(image: Any, max_side: int) -> Any:
    """``image`` scaled down first (a JPEG decoded at a reduced scale, ``_drafted`` before), then turned as its
    EXIF says (``prepare.upright``: only the orientation read, a malformed EXIF block never fails the preview):
    turning first would copy the full-size image."""
    from .prepare import upright

    image.thumbnail((max_side, max_side))
    return upright(image)


def _encode_small(small: Any) -> tuple[bytes, str]:
    """A scaled image as PNG when it has transparency (an alpha band, or a transparent colour), else JPEG; 16-bit
    grey scaled to 8 bits, as an input is sent (``prepare.as_8_bit``: never clipped to white). ``ValueError`` for
    pixels with no 8-bit form."""
    from .prepare import as_8_bit

    small = as_8_bit(small)
    alpha = small.has_transparency_data
    out = io.BytesIO()
    if alpha:
        _bare(small.convert("RGBA")).save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    _bare(small.convert("RGB")).save(out, format="JPEG", quality=80)
    return out.getvalue(), "image/jpeg"


def _bare(image: Any) -> Any:
    """``image`` (a converted copy, ours) without the metadata Pillow would write back when saving it: the source's
    JPEG comment, EXIF, XMP, ICC profile and PNG text. A preview is pixels only: whatever a result file carries in
    its metadata (KIE may echo the API key into a comment) never reaches the agent or a kept preview."""
    image.info.clear()
    return image


def preview(path: Path, kind: str | None, max_side: int) -> tuple[bytes, str] | None:
    """The kept inline preview of a saved result: a scaled image, or a video's poster. Never decodes (it runs on the
    event loop): previews are made by ``make_previews`` in a worker thread, and a file that got none has none. The
    file's own type decides (``kind_of_file``); ``kind``, its task's, only when the extension says nothing."""
    kind = kind_of_file(path, kind)
    if kind == "video":
        return cached_poster(path, max_side)
    return cached_thumbnail(path, max_side) if kind == "image" else None


def make_preview(path: Path, kind: str | None, max_side: int) -> tuple[bytes, str] | None:
    """Make (or check) the kept preview of one saved result, and return it, best effort: an error means no preview
    for that file (None), logged, never an error of the tool that saved it (the result is paid for and on disk); a
    link or a FIFO in the file's place has none. Decodes: worker thread."""
    try:
        return preview_of(_in_real_folder(path), kind, max_side)
    except (OSError, RuntimeError):  # a link, a FIFO or nothing in its place (ChangedFile), unreadable, a loop
        return None


def preview_of(real: Path, kind: str | None, max_side: int) -> tuple[bytes, str] | None:
    """The preview of the saved result at ``real``, a path with no symbolic link in it (as judged by the caller,
    never resolved again here): made from, or kept for, the one open file ``opened_source`` opens. None when it has
    none (not an image or a video, too many pixels, a video without ffmpeg; any error of the decoder, logged).
    ``ChangedFile`` when ``real`` is no longer a regular file (a link or a FIFO swapped in since it was judged);
    ``OSError`` when it cannot be opened. Decodes: worker thread."""
    kind = kind_of_file(real, kind)
    make = _thumbnail_of if kind == "image" else _poster_of if kind == "video" else None
    if make is None:
        return None
    with opened_source(real) as source:
        try:
            return make(real, source, max_side)
        except Exception:
            log.warning("No preview could be made of %s; the file itself is saved.", real, exc_info=True)
            return None


def _best_effort(
    make: Callable[[Path, int], tuple[bytes, str] | None], path: Path, max_side: int
) -> tuple[bytes, str] | None:
    """Run a preview maker; any error is logged and leaves the file without a preview."""
    try:
        return make(path, max_side)
    except Exception:
        log.warning("No preview could be made of %s; the file itself is saved.", path, exc_info=True)
        return None


async def make_previews(files: list[tuple[Path, str | None]], max_side: int) -> None:
    """Make (or check) the kept previews of ``(path, kind)`` pairs in a worker thread, off the event loop: images
    are scaled down, videos get a poster frame when ffmpeg is available."""

    def make_all() -> None:
        for path, given in files:
            make_preview(path, given, max_side)

    if files:
        await anyio.to_thread.run_sync(make_all)
