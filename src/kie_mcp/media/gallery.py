"""The workspace's gallery: ``outputs/index.html`` and one ``index.html`` per session folder.

A contact sheet a person opens in any browser straight from disk (``file://``, no server, no network): every saved
result by session and date, with image thumbnails, video posters (or the video itself), the prompt (its first
``PROMPT_SHOWN`` characters, linking the sidecar that holds it whole), what a follow-up or a join was made from, the
model and the credits. Every link is relative, so the pages keep working when the ``outputs/`` folder is moved or
copied; the CSS is inline and there is no script at all (a Content-Security-Policy forbids scripts too, so a prompt
holding ``<script>`` is shown as text, escaped, and could not run even if escaping failed). The copy the
``kie://outputs/`` resources serve shows each kept preview at its ``kie://previews/`` URI instead (``served_copy``).

**Never over a page of the user's.** Only a page kie-mcp wrote (it carries ``GENERATOR``) is ever replaced: beside an
``index.html`` of the user's own (a portfolio page, an exported album, a link), in ``outputs/`` or a session folder,
kie-mcp's page is ``kie-mcp-gallery.html`` (``index_name``), which the other pages link to and ``list_tasks`` names.

**Built from the sidecars, not the journal.** Each saved task has a sidecar JSON beside its files (prompt, model,
credits quoted and charged, times), written by the same step that saves the files, so the two always agree. The
gallery describes what is on disk: it survives a reset or corrupt journal, a second server on the workspace and a
copied ``outputs/`` folder, and reading it needs no database in a worker thread. A follow-up's sidecar names the
task it continues and how (``continue_video``), a joined video's the clips it joined (``stitch_videos``): their
cards say so. Media files without a sidecar (files copied in by hand) are shown too, without a prompt. A file of
0 bytes, with a sidecar or without, is said to be damaged (``EMPTY``), never drawn as a broken picture or a dead player;
so is a picture known not to open (its sidecar's ``damaged``, or ``damage_of``: nothing is decoded here), whose card
says it could not be shown, why, and where its file is; one the browser cannot open all the same is covered by the same
words, drawn by the CSS over a picture that did not load (no script runs on these pages).

**When.** ``refresh`` runs after every saved result (``generation.save_all``, where the follower and ``check_task``
finish saving), after a sidecar is written again with a charge measured since (``generation.describe_charges``),
and before ``list_tasks`` names the page; ``read_page`` runs the build first where it is cheap (``_refresh_kept``),
so what the user deleted since leaves the pages the resources serve, and where the index it serves is missing. It
builds in a worker thread, never on the event loop, and never raises: a gallery that cannot be written is logged
and the generation goes on. Concurrent refreshes coalesce: a refresh that finds a build running waits for it and runs
one more build only if none started after it asked. Pages are written atomically (a temporary file beside the page,
then ``os.replace``) and only when their content changed. A build reads again only the session
folders that changed since the last one (``_Cache``: a folder's stat, a page not the one written, a folder changed
within two seconds of its scan), so reading follows the folder that got the new result, not the number of results
in ``outputs/``; the index is put together from what was kept of the others. The first build of a process reads them
all.

**Many sessions.** A generation without ``session`` makes a folder of its own, so an agent that never names one
makes thousands. The index shows the newest ``SESSIONS_ON_INDEX`` sessions in full and, past that many, links to a
page per month (``index-2026-11.html`` beside it) listing every session of the month as a tile (its newest picture,
name, day and totals). The index stays the same size however many sessions there are; a month page is written again
only when one of its tiles changed. Between builds only the index's sections and every session's tile are kept in
memory. A build still looks at each folder's stat and page (30 ms at 3,000 folders, 0.3 s at 27,000).

**Previews.** The pages show the previews the tool results show too (``media.downloads``, ``KIE_PREVIEW_PX`` on a
side, kept beside each file and dated like it, made once if missing): an image's ``.<name>.thumb-<side>.jpg`` and a
video's poster ``.<name>.poster-<side>.jpg`` (ffmpeg from the optional ``video`` extra). A video with a poster is
drawn as that picture, loaded lazily, with a play mark, linking to the clip (a click plays it in the browser): a
``<video>`` per card made an index of 1,440 clips fetch 1,000 of them as it opened, and past Chromium's limit of
media players per page the rest never played. Without ffmpeg the page shows the ``<video>`` element itself with
``preload="metadata"``, which browsers draw with its first frame; an image whose thumbnail could not be kept (a
read-only folder) is shown full size. Hidden files are never results, and a build removes the kept previews of files
that are gone (``_sweep_orphans``).
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import mimetypes
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from stat import S_ISREG
from typing import Literal
from urllib.parse import quote, unquote_to_bytes

import anyio.to_thread

from kie_mcp.redact import redact, secrets_version
from kie_mcp.regular import read_regular
from kie_mcp.words import cut_point, made_of, shortened, unseen_escaped

from . import saved
from .downloads import (
    THUMBNAIL_SIDE,
    damage_of,
    is_temporary,
    kind_of,
    make_preview,
    output_folder,
    poster_path,
    thumbnail_path,
    write_bytes_atomic,
)
from .inputs import RefusedInput, TooLarge, read_inside
from .saved import OWN_INDEX, PAGE, SESSION_FOLDER, index_name

log = logging.getLogger(__name__)

_HASHED = re.compile(r"(?:^|-)[0-9a-f]{8}$")  # a slug output_folder ended with its label's hash
PER_SESSION_ON_INDEX = 24  # the index shows this many results per session; the session page shows all
SESSIONS_ON_INDEX = 60  # the index shows the newest sessions in full; with more, every one is listed by month too
_MONTH_PAGE = re.compile(r"^index-(\d{4}-\d{2}|undated)\.html$")  # a month's list of sessions, beside the index
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_GENERATOR = saved.GENERATOR  # what tells a page kie-mcp wrote
_SIDECAR_MAX_BYTES = 1024 * 1024
PAGE_MAX_BYTES = 50 * 1024 * 1024  # the most a page read for a resource may hold (the resources' own limit)
EMPTY = "empty file (0 bytes)"  # why a card of a file of 0 bytes (a download cut off, a file copied in) is damaged
PROMPT_SHOWN = 600  # characters of a prompt a card shows (up to 20,000 are taken): the rest is in the sidecar
ALT_SHOWN = 200  # characters of it a picture's alt text holds
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
Quoted = Literal["none", "some", "all"]  # how many of the tasks a total counts are only quoted (KIE said no charge)


# -- what is on disk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One saved file, as a card of the contact sheet."""

    name: str  # the file name inside its session folder
    kind: str  # image, video, audio or file
    preview: str | None = None  # the file name of its thumbnail or poster in the same folder
    prompt: str | None = None
    session: str | None = None  # the session name as the user typed it (the folder's slug may have lost letters)
    model: str | None = None
    task_id: str | None = None
    credits: float | None = None  # of the whole task: charged when KIE said, else quoted
    charged: bool = False
    created: float = 0.0  # when the task was created (epoch seconds; the file's time when there is no sidecar)
    sandbox: bool = False
    index: int = 1  # this file's place among the task's files
    of: int = 1
    saved_ns: int = 0  # the file's modification time: orders results made in the same second
    sidecar: str | None = None  # the file name of its sidecar in the same folder (the whole prompt is there)
    parent_task_id: str | None = None  # a follow-up (continue_video): the task it continues
    operation: str | None = None  # how it continues that task: extend, hd, 4k, upscale
    joined: int = 0  # a joined video (stitch_videos): how many clips it joined
    damaged: str | None = None  # not whole (cut short, does not decode), as its sidecar says: why
    changed: bool = False  # another size than its sidecar says was saved: not the file kie-mcp saved
    empty: bool = False  # a file of 0 bytes: nothing to show, said damaged (``EMPTY``), never a broken picture


@dataclass
class Session:
    """One ``outputs/<date>-<slug>/`` folder."""

    folder: str
    items: list[Item] = field(default_factory=list)
    unlisted: bool = False  # its folder could not be listed (a busy or network disk): not known to be empty
    page: str = PAGE  # its page's name: ``OWN_INDEX`` beside an index.html of the user's own (``index_name``)

    @property
    def day(self) -> str:
        match = SESSION_FOLDER.match(self.folder)
        return match.group(1) if match else ""

    @property
    def title(self) -> str:
        """The session's name as typed (one typed as its folder's name, ``outputs/2026-04-20-ugc-batch``, by its name
        after the day: ``saved.session_name``); else the folder's slug, or, when the slug had to stand in for letters
        ASCII cannot spell (it ends in 8 hex characters of a hash: ``output_folder``), the prompt it was named after."""
        named = next((item.session for item in self.items if item.session), None)
        if named:
            return " ".join(saved.session_name(named).split())
        match = SESSION_FOLDER.match(self.folder)
        slug = match.group(2) if match else self.folder
        prompt = next((item.prompt for item in self.items if item.prompt), None)
        if prompt and match and _HASHED.search(slug) and _named_by(prompt, match.group(1), self.folder):
            return shortened(" ".join(prompt.split()), 80)
        return slug.replace("-", " ")

    @property
    def latest(self) -> float:
        return max((item.created for item in self.items), default=0.0)

    @property
    def order(self) -> tuple[str, float, int, str]:
        """Its place, newest first (descending): its day, its latest result, then (results made in the same second)
        when that was saved, then its folder's name."""
        return (self.day, self.latest, max((item.saved_ns for item in self.items), default=0), self.folder)

    def credits(self) -> tuple[float, Quoted]:
        """Credits of the session's tasks (each counted once) and how many of them are only a quote."""
        seen: dict[str, Item] = {}
        for item in self.items:
            if item.task_id and item.credits is not None:
                seen.setdefault(item.task_id, item)
        quoted = [not item.charged for item in seen.values()]
        return sum(item.credits or 0.0 for item in seen.values()), _quoted(quoted)


def _quoted(flags: Iterable[bool]) -> Quoted:
    """``all`` when every one of ``flags`` (is it only quoted?) is true, ``some`` when one is, else ``none``."""
    told = list(flags)
    return "all" if told and all(told) else "some" if any(told) else "none"


def _named_by(prompt: str, day: str, folder: str) -> bool:
    """Whether ``folder`` is the one ``output_folder`` names for ``prompt`` on ``day`` (not a session's own name that
    happens to end in eight hex characters, such as shoot-20250601)."""
    try:
        return output_folder(Path(), prompt, date.fromisoformat(day)).name == folder
    except ValueError:
        return False


def gallery_path(workspace: Path) -> Path | None:
    """The workspace's gallery page (``index_name``, or ``OWN_INDEX`` still), once kie-mcp wrote it; None while there
    is none of its own (no result saved yet, a page that could not be written, or only a page of the user's)."""
    outputs = Path(workspace) / "outputs"
    if saved.refusal(outputs) is not None:
        return None
    # Its name now, else the one it had: a user's index.html deleted since, the index stays kie-mcp-gallery.html
    # until the next save writes index.html (the session pages link to it meanwhile).
    for name in dict.fromkeys((index_name(outputs), OWN_INDEX)):
        if saved.is_own_page(page := outputs / name):
            return page
    return None


def scan(outputs: Path, side: int = THUMBNAIL_SIDE) -> list[Session]:
    """Every session folder of ``outputs`` with its results, newest session first, each with its kept preview of
    ``side`` pixels (nothing is made here)."""
    folders = [Path(outputs) / name for name, _ in _session_folders(Path(outputs))]
    sessions = [s for s in (_scan_folder(folder, side) for folder in folders) if s.items]
    sessions.sort(key=lambda s: s.order, reverse=True)
    return sessions


def _scan_folder(folder: Path, side: int, *, sweep: bool = False) -> Session:
    """One session folder's results (``scan``); with ``sweep`` (a build), the kept previews of files that are gone
    are removed first (``_sweep_orphans``)."""
    session = Session(folder.name)
    listed: dict[str, bool] = {}  # each name: is it a regular file (a link is not)
    try:
        with os.scandir(folder) as found:
            for entry in found:
                with contextlib.suppress(OSError):
                    listed[entry.name] = entry.is_file(follow_symlinks=False)
    except OSError:
        session.unlisted = True
        return session
    if sweep:
        _sweep_orphans(folder, list(listed))
    if PAGE in listed:  # a page of the user's own there is never replaced: kie-mcp's goes beside it
        session.page = index_name(folder)
    entries = {name: folder / name for name, regular in listed.items() if regular and name[:1] != "."}
    media = {name: kind for name in entries if (kind := _media_kind(name)) is not None}
    claimed: set[str] = set()
    for name in sorted(entries):
        if name.endswith(".json"):
            for item in _items_of_sidecar(entries[name], media):
                if item.name not in claimed:
                    claimed.add(item.name)
                    session.items.append(item)
    if not folder.parent.is_symlink():  # in an outputs/ linked to a folder of the user's, only kie-mcp's results
        session.items += [Item(name=name, kind=media[name]) for name in sorted(set(media) - claimed)]
    for position, found in enumerate(session.items):
        try:
            stat = os.stat(folder / found.name)
        except OSError:
            stat = None
        saved_ns = stat.st_mtime_ns if stat is not None else 0
        dated = replace(found, saved_ns=saved_ns, created=found.created or saved_ns / 1e9)
        if stat is not None and stat.st_size == 0:  # with a sidecar or without: said why nothing shows
            dated = replace(dated, empty=True, damaged=EMPTY)
        kept = _kept_preview(folder / dated.name, dated.kind, side)
        if kept is None and dated.kind == "image" and dated.damaged is None:  # what this process saw of it, if any
            dated = replace(dated, damaged=_redacted(damage_of(folder / dated.name)))  # (one lstat: nothing decoded)
        session.items[position] = replace(dated, preview=kept.name if kept is not None else None)
    session.items.sort(key=lambda item: (item.created, item.saved_ns, item.name))
    return session


def _media_kind(name: str) -> str | None:
    if name == PAGE or is_temporary(name):  # hidden too: a temporary file is never a card
        return None
    return kind_of(mimetypes.guess_type(name)[0] or "")


def _items_of_sidecar(path: Path, media: dict[str, str]) -> list[Item]:
    """The cards a sidecar describes: its files that are in the folder (by name, so a moved folder still works)."""
    try:  # never waits: a sidecar swapped for a FIFO since the folder was scanned held the gallery for good
        data = json.loads(read_regular(path, _SIDECAR_MAX_BYTES).decode("utf-8-sig"))  # a BOM (an editor's) is text
    except (OSError, ValueError, RecursionError):  # RecursionError: nesting too deep for the parser (a few KB do)
        return []
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return []
    entries = [entry for entry in data["files"] if isinstance(entry, dict)]
    names = [PurePosixPath(str(entry.get("path", ""))).name for entry in entries]
    damage = {name: _text(entry.get("damaged")) for name, entry in zip(names, entries, strict=True)}
    sizes = {name: entry.get("size") for name, entry in zip(names, entries, strict=True)}
    present = [name for name in names if name in media]
    charged = _number(data.get("credits_charged"))
    quoted = _number(data.get("credits_quoted"))
    task = Item(
        name="",
        kind="file",
        prompt=_redacted(_text(data.get("prompt"))),
        session=_redacted(_text(data.get("session"))),
        model=_text(data.get("model")),
        task_id=_text(data.get("task_id")),
        credits=charged if charged is not None else quoted,
        charged=charged is not None,
        created=_epoch(data.get("created_at")),
        sandbox=data.get("sandbox") is True,
        of=len(names),
        sidecar=path.name,
        parent_task_id=_text(data.get("parent_task_id")),
        operation=_text(data.get("operation")),
        joined=len(data["joined_from"]) if isinstance(data.get("joined_from"), list) else 0,
    )
    return [
        replace(
            task,
            name=name,
            kind=media[name],
            index=names.index(name) + 1,
            damaged=_redacted(damage.get(name)),
            changed=_changed(path.parent / name, sizes.get(name)),
        )
        for name in present
    ]


def _changed(path: Path, size: object) -> bool:
    """Whether the saved file at ``path`` has another size than the ``size`` its sidecar recorded (edited or replaced
    since it was saved, as ``saved.kept`` judges it by its size); False when the sidecar records none."""
    if isinstance(size, bool) or not isinstance(size, int):
        return False
    try:
        return os.stat(path, follow_symlinks=False).st_size != size
    except OSError:
        return False


def _number(value: object) -> float | None:
    """A finite number of a sidecar, else None (an integer too large for a float is not one: no OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _redacted(text: str | None) -> str | None:
    """A sidecar's prompt as a page may show it: the API key (and anything shaped like a credential) never reaches a
    page, even from a sidecar written before sidecars were redacted."""
    return redact(text) if text else text


def _epoch(value: object) -> float:
    """Epoch seconds of a sidecar's ISO time (UTC with ``Z``, or local time without a zone, as older sidecars
    have it); 0 when it is not one."""
    try:
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else 0.0
    except (ValueError, OverflowError, OSError):
        return 0.0


# -- previews ------------------------------------------------------------------------------------------


def _source_mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _dated_like(kept: Path, source_mtime: int | None) -> bool:
    """A kept preview is current when it carries the modification time of the file it shows."""
    try:
        return source_mtime is not None and not kept.is_symlink() and kept.stat().st_mtime_ns == source_mtime
    except OSError:
        return False


def _kept_preview(path: Path, kind: str, side: int) -> Path | None:
    """The preview of ``path`` kept beside it (an image's thumbnail, a video's poster), if current; nothing is made."""
    source = _source_mtime(path)
    if kind == "image":
        candidates = [thumbnail_path(path, mime, side) for mime in ("image/jpeg", "image/png")]
    elif kind == "video":
        candidates = [poster_path(path, side)]
    else:
        return None
    return next((kept for kept in candidates if _dated_like(kept, source)), None)


# The kept previews' names (``downloads.thumbnail_path``, ``poster_path``): ``.<name>.thumb-<side>.jpg`` (or .png),
# ``.<name>.poster-<side>.jpg``, the file's name cut short (``_preview_key``).
_PREVIEW = re.compile(r"\.(.+)\.(?:thumb-\d+\.(?:jpg|png)|poster-\d+\.jpg)", re.DOTALL)


def _preview_key(name: str) -> str:
    """The part of a file's name its kept previews are named by (a long name is cut short in theirs)."""
    return poster_path(Path(name), 0).name[1:].removesuffix(".poster-0.jpg")


_PREVIEW_KEY_MOST = len(_preview_key("x" * 1000))  # the most characters of a result's name its previews' names hold


def _sweep_orphans(folder: Path, names: Sequence[str]) -> None:
    """Remove from ``folder`` the kept previews (regular files only) of files that are gone: a result the user
    deleted left its hidden thumbnail or poster behind for ever. ``names`` is the folder's listing; a file saved
    since is previewed after it is saved, so a preview listed without its file has none."""
    shown = {name for name in names if name[:1] != "."}
    keys: set[str] | None = None  # the cut names, only worked out when a preview names no file whole
    for name in names:
        match = _PREVIEW.fullmatch(name) if name[:1] == "." else None
        if match is None or match[1][:1] == "." or match[1] in shown:
            continue
        if keys is None:
            keys = {_preview_key(other) for other in shown}
        if match[1] in keys:
            continue
        path = folder / name
        with contextlib.suppress(OSError):
            if not os.path.lexists(folder / match[1]) and not path.is_symlink() and path.is_file():
                path.unlink()


# -- pages ---------------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light dark; --bg: #f6f6f4; --card: #fff; --ink: #1c1c1e; --muted: #6b6b70; --line: #e2e2e0;
  --well: #ececea; --accent: #2f5bd3; --badge: #fde68a; --badge-ink: #5b4300; --danger: #b42318; }
@media (prefers-color-scheme: dark) { :root { --bg: #141416; --card: #1e1e22; --ink: #ececf0; --muted: #9a9aa3;
  --line: #2e2e34; --well: #0e0e10; --accent: #8fb0ff; --badge: #5b4a12; --badge-ink: #fde68a; --danger: #ff8f85; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px clamp(12px, 3vw, 40px) 48px; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header h1 { margin: 0 0 4px; font-size: 22px; overflow-wrap: anywhere; }
.summary, .meta { color: var(--muted); margin: 0; }
section { margin-top: 28px; }
section h2 { margin: 0 0 2px; font-size: 17px; overflow-wrap: anywhere; }
section h2 .day { color: var(--muted); font-weight: 500; margin-right: 8px; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 14px; margin-top: 10px; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow: hidden;
  display: flex; flex-direction: column; }
.media { display: block; height: 220px; background: var(--well); }
.media.video { position: relative; }
.play { position: absolute; left: 50%; top: 50%; width: 56px; height: 56px; margin: -28px 0 0 -28px;
  border-radius: 50%; background: rgba(0, 0, 0, .55); box-shadow: 0 0 0 2px rgba(255, 255, 255, .85); }
.play::after { content: ""; position: absolute; left: 22px; top: 16px; border-style: solid;
  border-width: 12px 0 12px 20px; border-color: transparent transparent transparent #fff; }
.media img, .media video { display: block; width: 100%; height: 100%; object-fit: contain; }
.media.audio, .media.file { display: flex; align-items: center; justify-content: center; padding: 12px; }
.empty-file { color: var(--muted); }
.unshown { margin: 0; text-align: center; color: var(--danger); font-weight: 600; overflow-wrap: anywhere; }
/* A picture the browser cannot open (damaged since, a format it does not show): no script runs on these pages to
   swap it, so what covers a broken picture does (a picture that loads has no ::after drawn), saying so and where its
   file is, never a broken-picture icon. */
.media img { position: relative; }
.media img::after { content: "Could not be shown: this browser does not open it as a picture (it may be damaged). "
  "The file is at " attr(data-file) "."; position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; padding: 12px; text-align: center; background: var(--well); color: var(--danger);
  font-weight: 600; overflow-wrap: anywhere; }
.media audio { width: 100%; }
figcaption { padding: 10px 12px 12px; display: flex; flex-direction: column; gap: 6px; }
.prompt { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; display: -webkit-box; -webkit-box-orient: vertical;
  -webkit-line-clamp: 4; line-clamp: 4; overflow: hidden; }
.session .prompt { display: block; max-height: 16em; overflow: auto; }
.noprompt { color: var(--muted); font-style: italic; }
.lineage { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.damaged { margin: 0; color: var(--danger); font-weight: 600; overflow-wrap: anywhere; }
.model { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.badge { background: var(--badge); color: var(--badge-ink); border-radius: 4px; padding: 0 5px; font-size: 11px; }
.file { font-size: 12px; word-break: break-all; }
.file .whole { word-break: normal; }
time { white-space: nowrap; }
.more { margin: 8px 0 0; }
.months p { margin: 4px 0; }
.tile figcaption p { margin: 0; overflow-wrap: anywhere; }
.empty { margin-top: 40px; color: var(--muted); }
"""

# No script may run on these pages, whatever a prompt holds; pictures and clips are local files.
_CSP = "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-src 'none'"


def _e(text: object) -> str:
    """Text made safe for HTML content and attribute values (control characters dropped), and what shows nothing or
    turns the text around it written escaped (``unseen_escaped``: tag characters spelling hidden words, a
    right-to-left override in a name or a prompt), as the confirmation form and the approval card show it."""
    return html.escape(unseen_escaped(_CONTROL.sub("", str(text))), quote=True)


def _href(*parts: str) -> str:
    """A relative link to a file: each part percent-encoded, then escaped for an attribute."""
    return _e("/".join(quote(_name_bytes(part), safe="") for part in parts))


def _name_bytes(name: str) -> bytes:
    """A file name's bytes as the filesystem has them, for its link: a name that is not UTF-8 (Linux keeps its
    bytes as lone surrogates) links to that very file instead of failing the page."""
    try:
        return os.fsencode(name)
    except UnicodeEncodeError:
        return name.encode("utf-8", "replace")


def _credits_text(credits: float, quoted: Quoted) -> str:
    """A total as a person reads it: "(quoted)" only when none of it was charged, "some only quoted" when part was
    (76 credits of which 16 were charged and 60 quoted is no quote)."""
    amount = f"{credits:,.2f}".rstrip("0").rstrip(".")
    said = {"none": "", "some": ", some only quoted", "all": " (quoted)"}[quoted]
    return f"{amount} credit{'' if credits == 1 else 's'}{said}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _when(epoch: float) -> str:
    """A time as a person reads it here: local time, to the minute."""
    try:
        return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return ""


def _unshowable(item: Item) -> bool:
    """Whether a card has no picture to draw: a file of 0 bytes, or a picture known not to open (``damaged``, as its
    sidecar or this process's save or preview of it says: nothing is decoded here) with no kept preview."""
    return item.empty or (item.kind == "image" and item.damaged is not None and item.preview is None)


def _where(folder: str, item: Item) -> str:
    """Where a result is in the workspace, as the tools' answers name it: ``outputs/<session>/<file>``."""
    return f"{saved.OUTPUTS}/{folder}/{item.name}"


def _media(item: Item, prefix: tuple[str, ...], alt: str, folder: str) -> str:
    src = _href(*prefix, item.name)
    if item.empty:  # nothing to draw: a broken picture (or a dead player) would say nothing of why
        return '<div class="media file"><span class="empty-file">Empty file: nothing to show.</span></div>'
    if _unshowable(item):  # known not to open: said, with where its file is, never drawn as a broken picture
        why = _e(_cut(item.damaged or "", ALT_SHOWN))
        return (
            f'<div class="media file"><p class="unshown">Could not be shown: {why}. '
            f'The file is at <a href="{src}">{_e(_where(folder, item))}</a>.</p></div>'
        )
    # Each picture names its file (data-file) for what covers it when the browser cannot open it (the CSS's ::after).
    where = _e(_where(folder, item))
    if item.kind == "image":
        shown = _href(*prefix, item.preview) if item.preview else src
        return (
            f'<a class="media image" href="{src}"><img src="{shown}" alt="{alt}" loading="lazy" decoding="async"'
            f' data-file="{where}"></a>'
        )
    if item.kind == "video" and item.preview:
        # Its poster, lazy, linking to the clip (a click plays it): a <video> per card had every clip on the page
        # fetched as it opened, and past Chromium's limit of media players per page they would not play at all.
        poster = _href(*prefix, item.preview)
        return (
            f'<a class="media video" href="{src}"><img src="{poster}" alt="{alt}" loading="lazy" decoding="async"'
            f' data-file="{where}"><span class="play" aria-hidden="true"></span></a>'
        )
    if item.kind == "video":  # no poster (no ffmpeg): the clip itself shows its first frame
        return (
            f'<div class="media video"><video controls playsinline preload="metadata" src="{src}"'
            f' title="{alt}"></video></div>'
        )
    if item.kind == "audio":
        return f'<div class="media audio"><audio controls preload="metadata" src="{src}"></audio></div>'
    return f'<div class="media file"><a href="{src}">{_e(item.name)}</a></div>'


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters and an ellipsis, never cut inside a character as a reader sees it."""
    return text if len(text) <= limit else text[: cut_point(text, limit)] + "\u2026"


def _lineage(item: Item) -> str | None:
    """What a result kie-mcp made from others was made from, as its sidecar says: the task a follow-up continues
    (``1080p version of task …``), or how many clips a join joined. None for anything else."""
    if item.parent_task_id:
        task = _cut(item.parent_task_id, ALT_SHOWN)  # a task id of KIE's is short; a hostile sidecar's is cut
        made = made_of(item.operation, task)
        return made[:1].upper() + made[1:]
    if item.joined:
        return f"Joined from {_count(item.joined, 'clip')}"
    return None


def _no_prompt(item: Item) -> str:
    """What a card with no prompt says: a KIE task's says so, naming its model (one that takes no prompt, such as a
    background remover, says that); only a file no task saved (made locally or copied in) has no prompt recorded."""
    if not item.task_id or not item.model:
        return "No prompt recorded (made locally or copied in)."
    model = _cut(item.model, ALT_SHOWN)
    if _takes_no_prompt(item.model):
        return f"No prompt ({model} takes none)."
    return f"No prompt was given to {model}."


def _takes_no_prompt(model: str) -> bool:
    """Whether ``model`` is a catalogue model with no prompt setting (recraft/remove-background); False for one the
    catalogue does not know (a live model, a sidecar's garbage)."""
    from kie_mcp.catalog import load_catalog  # parsed once per process; only for a card without a prompt

    spec = load_catalog().get(model)
    return spec is not None and spec.field_for_arg("prompt") is None


def _card(item: Item, prefix: tuple[str, ...], folder: str) -> str:
    prompt = item.prompt or ""
    lineage = _lineage(item)
    alt = _e(_cut(prompt, ALT_SHOWN) or lineage or item.name)
    cut = len(prompt) > PROMPT_SHOWN
    words = f'<p class="lineage">{_e(lineage)}</p>' if lineage else ""
    if item.damaged:  # paid for and kept, but not whole: never shown as a clean result
        words += f'<p class="damaged">Damaged: {_e(_cut(item.damaged, ALT_SHOWN))}</p>'
    if item.changed:  # a clip that no longer plays (no script here says so) is said to be another file
        words += '<p class="damaged">Changed since it was saved: this is not the file kie-mcp saved.</p>'
    if prompt:
        words += f'<p class="prompt" dir="auto">{_e(_cut(prompt, PROMPT_SHOWN))}</p>'
    elif not lineage:
        words += f'<p class="prompt noprompt">{_e(_no_prompt(item))}</p>'
    facts = []
    if item.model:
        facts.append(f'<span class="model">{_e(item.model)}</span>')
    if item.credits is not None:
        facts.append(
            _e(_credits_text(item.credits, "none" if item.charged else "all")) + (" per task" if item.of > 1 else "")
        )
    if item.created:
        facts.append(f"<time>{_e(_when(item.created))}</time>")
    if item.of > 1:
        facts.append(f"{item.index}/{item.of}")
    if item.sandbox:
        facts.append('<span class="badge">sandbox</span>')
    link = f'<a href="{_href(*prefix, item.name)}">{_e(item.name)}</a>'
    if cut and item.sidecar:  # the whole prompt is in the sidecar
        whole = f"whole prompt ({len(prompt):,} characters)"
        link += f' · <a class="whole" href="{_href(*prefix, item.sidecar)}">{whole}</a>'
    return (
        f'<figure class="card {_e(item.kind)}">{_media(item, prefix, alt, folder)}<figcaption>{words}'
        f'<p class="meta">{" · ".join(facts)}</p><p class="meta file">{link}</p></figcaption></figure>'
    )


def _page(title: str, body: Iterable[str], css_class: str) -> bytes:
    text = "\n".join(
        [
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="kie-mcp">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            f'<body class="{css_class}">',
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )
    return text.encode("utf-8", "replace")  # a lone surrogate from a sidecar becomes "?", never an error


@dataclass(frozen=True)
class _Shown:
    """What the index and the month pages show of one session: its place, its totals and its parts of the pages,
    kept between builds (``_Kept``) so that a session folder that did not change is neither scanned nor rendered
    again."""

    order: tuple[str, float, int, str]  # newest session first (``Session.order``, descending)
    results: int
    credits: float
    quoted: Quoted  # how many of its tasks are only quoted
    month: str  # its month page's key: "2026-11", or "undated" for a folder not named by a day
    tile: str  # its tile on its month's page: a picture, its name, its day and totals, a link to its page
    section: str | None  # its ``<section>`` of the index; None once it is not among the newest (memory stays small)

    @property
    def folder(self) -> str:
        return self.order[-1]

    @classmethod
    def of(cls, session: Session, *, section: bool = True) -> _Shown:
        """What is shown of ``session``; without ``section`` only its tile (a session off the index)."""
        credits, quoted = session.credits()
        facts = [_count(len(session.items), "result")]
        if credits:
            facts.append(_credits_text(credits, quoted))
        order = session.order
        month = session.day[:7] if session.day else "undated"
        tile = _tile(session, facts)
        shown = _section(session, facts) if section else None
        return cls(order, len(session.items), credits, quoted, month, tile, shown)


def _section(session: Session, facts: list[str]) -> str:
    """A session on the index: its heading and totals, its newest results, a link to its page holding them all."""
    shown = session.items[-PER_SESSION_ON_INDEX:]  # the newest ones
    lines = [
        f'<section id="{_e(session.folder)}">',
        # A space between the day and the name, as the session page's title has it: without one a screen reader
        # and a copy read "2026-12-07odd". An Arabic or Hebrew name reads right to left (its own <bdi>).
        f'<h2><a href="{_href(session.folder, session.page)}"><span class="day">{_e(session.day)}</span> '
        f'<bdi dir="auto">{_e(session.title)}</bdi></a></h2>',
        f'<p class="meta">{_e(" · ".join(facts))}</p>',
        '<div class="grid">',
        *(_card(item, (session.folder,), session.folder) for item in shown),
        "</div>",
    ]
    if len(shown) < len(session.items):
        lines.append(
            f'<p class="more"><a href="{_href(session.folder, session.page)}">All {len(session.items)} results of this '
            "session</a></p>"
        )
    lines.append("</section>")
    return "\n".join(lines)


def _tile(session: Session, facts: list[str]) -> str:
    """A session on its month's page: its newest picture (a kept preview; never a video, thousands of them would
    load), its name, its day and totals, all linking to its own page."""
    page = _href(session.folder, session.page)
    picture = next(
        (item for item in reversed(session.items) if not _unshowable(item) and (item.kind == "image" or item.preview)),
        None,
    )
    if picture is not None:
        alt = _e(_cut(picture.prompt or picture.name, ALT_SHOWN))
        source = _href(session.folder, picture.preview or picture.name)
        where = _e(_where(session.folder, picture))
        image = f'<img src="{source}" alt="{alt}" loading="lazy" decoding="async" data-file="{where}">'
        media = f'<a class="media image" href="{page}">{image}</a>'
    else:
        media = f'<a class="media file" href="{page}">{_e(_count(len(session.items), "result"))}</a>'
    return (
        f'<figure class="card tile">{media}<figcaption><p><a href="{page}"><bdi dir="auto">{_e(session.title)}</bdi>'
        f'</a></p><p class="meta"><time>{_e(session.day)}</time> · {_e(" · ".join(facts))}</p></figcaption></figure>'
    )


def month_page(month: str) -> str:
    """The file name, in ``outputs/``, of the page listing every session of ``month`` (``2026-11``, ``undated``)."""
    return f"index-{month}.html"


def _month_name(month: str) -> str:
    """``2026-11`` as a person reads it: November 2026 (English, as the pages are, whatever the locale)."""
    if month == "undated":
        return "Sessions not named by a day"
    year, number = month.split("-")
    return f"{_MONTHS[int(number) - 1]} {year}" if 1 <= int(number) <= 12 else month


def _summary(sessions: Sequence[_Shown]) -> str:
    count = sum(s.results for s in sessions)
    credits = sum(s.credits for s in sessions)
    quoted = {s.quoted for s in sessions if s.credits}
    parts = [_count(count, "result"), _count(len(sessions), "session")]
    if credits:
        parts.append(_credits_text(credits, "all" if quoted == {"all"} else "some" if quoted - {"none"} else "none"))
    return " · ".join(parts)


def render_index(sessions: list[Session]) -> bytes:
    """``outputs/index.html``: the newest sessions (``SESSIONS_ON_INDEX``), newest first, with their newest results
    and a link to each one's own page; with more sessions, a link to each month's page, which lists them all."""
    return _index_page([_Shown.of(session) for session in sessions])


def _index_page(sessions: Sequence[_Shown], *, months: bool = True) -> bytes:
    """The index of ``sessions`` (newest first, the first ``SESSIONS_ON_INDEX`` with their sections), from what is
    kept of each: the same size at 60 sessions and at 60,000. Without ``months`` (no build could write the month
    pages) it says the older sessions' pages may be missing instead of linking them."""
    body = [
        "<header><h1>kie-mcp gallery</h1>",
        f'<p class="summary">{_e(_summary(sessions))}. Open a picture or a file name for the full-size file.</p>',
        "</header>",
    ]
    if not sessions:
        body.append('<p class="empty">No saved results yet: this page fills in as results are saved.</p>')
    shown = sessions[:SESSIONS_ON_INDEX]
    body += [session.section or "" for session in shown]
    if len(shown) < len(sessions):
        body.append(_by_month(sessions) if months else _months_unwritten(len(sessions)))
    return _page("kie-mcp gallery", body, "index")


def _months_unwritten(count: int) -> str:
    """What an index made without its month pages says in their place (``_index_unwritten``)."""
    said = (
        f"The newest {SESSIONS_ON_INDEX} of {count} sessions are shown above. The gallery's pages could not be "
        "written in outputs/, so the month pages listing every session may be missing (the server's log says why)."
    )
    return f'<section id="by-month"><p class="meta">{_e(said)}</p></section>'


def _by_month(sessions: Sequence[_Shown]) -> str:
    """The index's list of months, each linking to the page that lists every session of that month."""
    months: dict[str, list[_Shown]] = {}
    for session in sessions:
        months.setdefault(session.month, []).append(session)
    lines = [
        '<section id="by-month">',
        "<h2>Every session, by month</h2>",
        f'<p class="meta">The newest {SESSIONS_ON_INDEX} of {len(sessions)} sessions are shown above; each month\'s '
        "page lists all of its sessions.</p>",
        '<div class="months">',
    ]
    for month, members in months.items():
        facts = [_count(len(members), "session"), _count(sum(s.results for s in members), "result")]
        link = f'<a href="{_href(month_page(month))}">{_e(_month_name(month))}</a>'
        lines.append(f"<p>{link} · {_e(' · '.join(facts))}</p>")
    lines += ["</div>", "</section>"]
    return "\n".join(lines)


def _month_page_of(month: str, sessions: Sequence[_Shown], index: str = PAGE) -> bytes:
    """``outputs/index-<month>.html``: every session of one month, newest first, as a tile linking to its page (and
    to the ``index``)."""
    name = _month_name(month)
    body = [
        f'<header><p class="meta"><a href="{_href(index)}">All sessions</a></p>',
        f"<h1>{_e(name)}</h1>",
        f'<p class="summary">{_e(_summary(sessions))}. Open a session for its results.</p></header>',
        '<section><div class="grid">',
        *(session.tile for session in sessions),
        "</div></section>",
    ]
    return _page(f"{name} · kie-mcp gallery", body, "month")


def render_session(session: Session, index: str = PAGE) -> bytes:
    """``outputs/<session>/index.html``: every result of one session, in the order they were made, linking back to the
    gallery's ``index`` (``index_name``)."""
    credits, quoted = session.credits()
    facts = [_count(len(session.items), "result")]
    if credits:
        facts.append(_credits_text(credits, quoted))
    body = [
        f'<header><p class="meta"><a href="{_href("..", index)}">All sessions</a></p>',
        f'<h1><span class="day">{_e(session.day)}</span> <bdi dir="auto">{_e(session.title)}</bdi></h1>',
        f'<p class="summary">{_e(" · ".join(facts))}</p></header>',
        '<section><div class="grid">',
        *(_card(item, (), session.folder) for item in session.items),
        "</div></section>",
    ]
    return _page(f"{session.title} ({session.day}) · kie-mcp gallery", body, "session")


# -- writing -------------------------------------------------------------------------------------------


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds exactly that (a page, not a paid result: no
    fsync). Only a page kie-mcp wrote (it carries ``GENERATOR``) is replaced, one spoiled in place too; anything else
    there (a page of the user's own, in the workspace's ``outputs/`` or a folder it links to; a link, never followed;
    a FIFO, never waited on) is left as it is (``OSError``)."""
    existing = _regular(path)
    if existing == data:
        return False
    if os.path.lexists(path) and (existing is None or _GENERATOR not in existing[:4096]):  # not ours
        raise OSError(f"{path} is a page kie-mcp did not write: it is left as it is (move it away to see the gallery)")
    write_bytes_atomic(path, data, durable=False)
    return True


def build(outputs: Path, side: int = THUMBNAIL_SIDE, fresh: Sequence[tuple[Path, str | None]] = ()) -> list[str]:
    """Bring every gallery page of ``outputs`` up to date, first making the previews of ``side`` pixels (the ones
    the tool results show too) of the ``fresh`` files just saved, as ``(path, kind)``; return what could not be
    written. Older files keep the previews they have: a file without one is shown itself.

    Only the session folders that changed since the last build are scanned again and get their page rendered
    (``_Cache``); the index is put together from what is kept of the others. Slow all the same (thumbnails, ffmpeg,
    file reads): call it in a worker thread. Nothing is written when ``outputs`` does not exist. Each page is written
    on its own, so one failure does not keep the others stale.
    """
    outputs = Path(outputs)
    if not outputs.is_dir() or saved.refusal(outputs) is not None:  # no results are saved through such a link
        return []
    for path, given in fresh:
        make_preview(path, given, side)  # best effort, file by file: a crafted file only goes without a preview
    cache = _cache_of(outputs, side)
    with cache.lock:
        return cache.update(outputs, side)


def _write_page(path: Path, render: Callable[[], bytes], problems: list[str]) -> bool:
    try:
        _write_if_changed(path, render())
    except OSError as err:
        problems.append(f"The gallery page {path} could not be written ({err.strerror or err}).")
        return False
    return True


# -- what is kept between builds -----------------------------------------------------------------------

# A folder changed this recently is scanned again at every build whatever its stat says: a filesystem whose clock
# ticks coarsely (a second, two on FAT) can date a second change like the first, and a file rewritten in place does
# not date its folder at all (kie-mcp itself always writes by renaming, which does).
RECENT_NS = 2_000_000_000
_CACHES_KEPT = 4  # outputs folders whose scans are kept at once (one per workspace a process serves)


@dataclass(frozen=True)
class _Kept:
    """One session folder as the last build left it."""

    folder: tuple[int, ...] | None  # its stat before that scan (``_folder_key``); None: too recent to be trusted
    page: tuple[int, ...] | None  # its page's stat once written; None: not written (or no results, no page)
    shown: _Shown | None  # None: no results (no page, not on the index)
    name: str = PAGE  # its page's file name (``Session.page``)


@dataclass
class _Cache:
    """The scans of one ``outputs`` folder's sessions, kept between builds, so that the cost of a build follows what
    changed, not how much ``outputs`` holds. A session folder is scanned again and its page rendered again when its
    stat changed (a result, sidecar or preview saved, renamed or removed in it), when it changed within ``RECENT_NS``
    of its last scan, or when its page is not the one last written; a folder that is gone, became a link or a file
    is forgotten. Everything is dropped when a new secret is registered (``redact``), so a page never shows one a
    kept scan predates. Used under ``lock``: one build at a time.

    Not seen: a file of an older folder edited in place (no rename), which does not date its folder: it shows once
    the folder changes again, or at the first build of the next process. kie-mcp itself never writes that way."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    folders: dict[str, _Kept] = field(default_factory=dict)
    months: dict[str, tuple[tuple[str, ...], tuple[int, ...] | None]] = field(default_factory=dict)  # tiles, page
    redaction: object = None  # the redaction pattern the kept scans were made with
    index: str = PAGE  # the index's name the kept pages link to (``index_name``)
    # The sessions the last build put on the index, newest first (``_with_sections``); None while one runs, or after
    # one that did not get that far: what a read makes the index of where the build could not write it
    shown: list[_Shown] | None = None

    def update(self, outputs: Path, side: int) -> list[str]:
        current = secrets_version()  # a new secret makes a new pattern
        index = index_name(outputs)  # a page of the user's own put there, or taken away, since the last build
        if current is not self.redaction or index != self.index:
            self.folders, self.months, self.redaction, self.index = {}, {}, current, index
        self.shown = None
        problems: list[str] = []
        kept: dict[str, _Kept] = {}
        now = time.time_ns()
        folders, month_pages = _listing(outputs)
        base = os.fspath(outputs)  # a kept folder is judged by plain string paths: pathlib costs more than the stat
        for name, stat in folders:
            known = self.folders.get(name)
            key = _folder_key(stat, now)
            if known is not None and _still(known, key, os.path.join(base, name, known.name)):
                kept[name] = known
                continue
            folder = outputs / name
            session = _scan_folder(folder, side, sweep=True)
            if session.unlisted:  # not read now (too many open files, a network disk): kept as it was, read again
                if known is not None:  # at the next build (its key is not this stat's)
                    kept[name] = known
                continue
            if not session.items:  # its last result deleted: its page (kie-mcp's) goes, as its card does
                _remove_own_page(folder / PAGE)
                _remove_own_page(folder / OWN_INDEX)
                kept[name] = _Kept(key, None, None)
                continue
            page = folder / session.page
            written = _write_page(page, lambda session=session: render_session(session, index), problems)
            if session.page == PAGE:  # the user's own page there is gone: kie-mcp's under its own name goes too
                _remove_own_page(folder / OWN_INDEX)
            kept[name] = _Kept(key, _page_stat(page) if written else None, _Shown.of(session), session.page)
        shown = _with_sections(kept, outputs, side)
        self.folders, self.shown = kept, shown
        _write_page(outputs / index, lambda: _index_page(shown), problems)
        if index == PAGE:  # the user's own index.html is gone: the index under its own name goes too
            _remove_own_page(outputs / OWN_INDEX)
        self._write_months(outputs, shown, month_pages, problems)
        return problems

    def _write_months(self, outputs: Path, shown: list[_Shown], found: set[str], problems: list[str]) -> None:
        """Each month's page, written again only when a tile on it changed or the page is not the one last written;
        none while the index shows every session, and a month page kie-mcp wrote that lists nothing now is removed."""
        months: dict[str, list[_Shown]] = {}
        if len(shown) > SESSIONS_ON_INDEX:
            for session in shown:
                months.setdefault(session.month, []).append(session)
        written: dict[str, tuple[tuple[str, ...], tuple[int, ...] | None]] = {}
        for month, members in months.items():
            path = outputs / month_page(month)
            tiles = tuple(session.tile for session in members)  # the kept strings: compared by identity first
            known = self.months.get(month)
            if known is not None and known[0] == tiles and known[1] is not None and known[1] == _page_stat(path):
                written[month] = known
                continue
            done = _write_page(
                path,
                lambda month=month, members=members: _month_page_of(month, members, self.index),
                problems,
            )
            written[month] = (tiles, _page_stat(path) if done else None)
        self.months = written
        for name in found - {month_page(month) for month in months}:
            _remove_own_page(outputs / name)


def _with_sections(kept: dict[str, _Kept], outputs: Path, side: int) -> list[_Shown]:
    """Every session with results, newest first, the index's ones (the first ``SESSIONS_ON_INDEX``) with their
    sections: a session that moved up onto the index (newer ones were removed) is scanned again for it, and one
    that moved off it lets its section go, so what is kept is the index's sections and every session's tile."""
    while True:
        shown = sorted((k.shown for k in kept.values() if k.shown is not None), key=lambda s: s.order, reverse=True)
        missing = [session for session in shown[:SESSIONS_ON_INDEX] if session.section is None]
        if not missing:
            break
        for session in missing:
            again = _scan_folder(outputs / session.folder, side)
            known = kept[session.folder]
            fresh = _Shown.of(again) if again.items else None
            same = fresh is not None and fresh.tile == session.tile and fresh.order == session.order
            # a folder that changed since its scan is scanned (and its page written) again at the next build
            kept[session.folder] = replace(known, shown=fresh, folder=known.folder if same else None)
    for position, session in enumerate(shown[SESSIONS_ON_INDEX:], SESSIONS_ON_INDEX):
        if session.section is not None:
            shown[position] = replace(session, section=None)
            kept[session.folder] = replace(kept[session.folder], shown=shown[position])
    return shown


def _remove_own_page(path: Path) -> None:
    """Remove a page kie-mcp no longer writes (a month page that lists nothing now, the index under its own name, the
    page of a session whose results are all gone), only when it is a regular file kie-mcp wrote (a page of the
    user's own with a name like it stays; a FIFO in its place is never waited on)."""
    head = _regular(path, 1024)
    if head is not None and _GENERATOR in head:
        with contextlib.suppress(OSError):
            path.unlink()


def _still(known: _Kept, key: tuple[int, ...] | None, page: str) -> bool:
    """Whether a folder's kept scan still holds: its stat is the one it was made at (a trusted one) and its ``page``
    is the one last written there."""
    if known.folder is None or known.folder != key:
        return False
    return known.shown is None or (known.page is not None and known.page == _page_stat(page))


_caches: dict[tuple[Path, int], _Cache] = {}
_caches_guard = threading.Lock()


def _cache_of(outputs: Path, side: int) -> _Cache:
    key = (outputs.absolute(), side)
    with _caches_guard:
        cache = _caches.pop(key, None) or _Cache()
        _caches[key] = cache  # the most recently used last
        while len(_caches) > _CACHES_KEPT:
            del _caches[next(iter(_caches))]
        return cache


def _session_folders(outputs: Path) -> list[tuple[str, os.stat_result]]:
    """The session folders of ``outputs`` with their own stat: real folders (never a link), not hidden. One that
    goes while it is listed is left out, not the whole listing."""
    return _listing(outputs)[0]


def _listing(outputs: Path) -> tuple[list[tuple[str, os.stat_result]], set[str]]:
    """One pass over ``outputs``: its session folders (``_session_folders``) and the names of its month pages."""
    folders = []
    month_pages = set()
    try:
        with os.scandir(outputs) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.name[:1] != "." and entry.is_dir(follow_symlinks=False):
                        folders.append((entry.name, entry.stat(follow_symlinks=False)))
                    elif _MONTH_PAGE.match(entry.name):
                        month_pages.add(entry.name)
    except OSError:
        return [], set()
    return folders, month_pages


def _folder_key(stat: os.stat_result, now: int) -> tuple[int, ...] | None:
    """What tells a session folder changed: its identity and times (a file saved, renamed or removed in a folder
    dates it, both times; its change time cannot be set back); None when it changed too recently to tell
    (``RECENT_NS``)."""
    if now - max(stat.st_mtime_ns, stat.st_ctime_ns) < RECENT_NS:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)


def _page_stat(path: Path | str) -> tuple[int, ...] | None:
    try:
        stat = os.lstat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mode, stat.st_size, stat.st_mtime_ns)


@dataclass
class _Builds:
    """Coalescing of the builds of one outputs folder: requests are numbered, a build covers every request made
    before it started."""

    running: threading.Lock = field(default_factory=threading.Lock)
    requested: int = 0
    covered: int = 0
    fresh: list[tuple[Path, str | None]] = field(default_factory=list)  # files whose previews the next build makes


_builds: dict[Path, _Builds] = {}
_builds_guard = threading.Lock()


def _build_coalesced(outputs: Path, side: int, fresh: Sequence[tuple[Path, str | None]]) -> list[str]:
    key = outputs.absolute()
    with _builds_guard:
        state = _builds.setdefault(key, _Builds())
        state.requested += 1
        state.fresh += fresh
        ticket = state.requested
    with state.running:
        if state.covered >= ticket:  # a build that started after this request has just finished
            return []
        with _builds_guard:
            covering = state.requested
            taken, state.fresh = state.fresh, []
        problems = build(outputs, side, taken)
        state.covered = covering
        return problems


async def refresh(workspace: Path, side: int = THUMBNAIL_SIDE, fresh: Sequence[tuple[Path, str | None]] = ()) -> None:
    """Bring the workspace's gallery up to date after ``fresh`` files, as ``(path, kind)``, were saved: their
    previews of ``side`` pixels (KIE_PREVIEW_PX) are made, then the pages rewritten, in a worker thread. Never raises:
    the gallery is a convenience, and a generation must not fail because a page could not be written (it is logged
    instead)."""
    outputs = Path(workspace) / "outputs"
    try:
        problems = await anyio.to_thread.run_sync(_build_coalesced, outputs, side, list(fresh))
    except Exception:
        log.exception("The gallery in %s could not be updated; the results themselves are saved.", outputs)
        return
    for line in problems:
        log.warning("%s The results themselves are saved.", line)


async def refresh_if_kept(workspace: Path, side: int) -> None:
    """``_refresh_kept`` in a worker thread, for ``list_tasks``: the pages brought up to date with what is on disk
    (a result deleted since leaves them) only where this process keeps scans of ``outputs/`` (a save or a build made
    them), so the listing never pays a first build (seconds at tens of thousands of results). Never raises."""
    try:
        await anyio.to_thread.run_sync(_refresh_kept, Path(workspace) / "outputs", side)
    except Exception:
        log.exception("The gallery of %s could not be brought up to date.", workspace)


class PageTooLarge(ValueError):
    """A gallery page of kie-mcp's too large to send as a resource: it is read from disk instead."""

    def __init__(self, path: Path, size: int) -> None:
        super().__init__(f"too large to send ({size / 2**20:.1f} MB): open it from disk at {path.absolute()}")


def _refresh_kept(outputs: Path, side: int | None) -> int | None:
    """The pages of ``outputs`` brought up to date with what is on disk before a resource reads them, when that is
    cheap: where this process keeps scans of ``outputs`` for ``side`` (a save or ``list_tasks`` built them), the
    build with nothing fresh, which reads only the folders that changed since (a result deleted since leaves the
    pages, its previews with it), coalesced with any running one. Otherwise nothing: a read never pays a first build
    (seconds at tens of thousands of results). ``side`` None: the side of this process's last build of ``outputs``.
    The side it built for, or None when it did not. Never raises (a page that cannot be written is logged). Reads
    and writes files: call it in a worker thread."""
    outputs = Path(outputs)
    kept = _kept_sides(outputs)
    side = side if side is not None else (kept[-1] if kept else None)
    if side is None or side not in kept:
        return None
    _rebuild(outputs, side)
    return side


def _rebuild(outputs: Path, side: int) -> None:
    """The build with nothing fresh (``_build_coalesced``), for a read. Never raises: what could not be written is
    logged."""
    try:
        problems = _build_coalesced(outputs, side, [])
    except Exception:
        log.exception("The gallery in %s could not be updated.", outputs)
        return
    for line in problems:
        log.warning("%s", line)


def _kept_sides(outputs: Path) -> list[int]:
    """The preview sides this process keeps scans of ``outputs`` for (``_Cache``), the most recently built last."""
    key = outputs.absolute()
    with _caches_guard:
        return [side for where, side in _caches if where == key]


def read_page(outputs: Path, session: str | None = None, side: int | None = None) -> str | None:
    """A gallery page's HTML for the ``kie://outputs/.../index.html`` resources, redacted, as it is served
    (``served_copy``), brought up to date first where that is cheap (``_refresh_kept`` with ``side``): a page kie-mcp
    wrote (it carries ``GENERATOR``; the index under either of its names, ``index_name``). None for a session that
    is not a session folder of ``outputs`` (a plain name ``saved.is_served`` serves: ``<day>-<session>``) or has no
    page kie-mcp wrote: a page of the user's own (in an ``outputs/`` linked to their folder, or any ``index.html`` of
    a folder kie-mcp does not save into) is never served as the gallery. ``PageTooLarge`` for a page of kie-mcp's
    larger than ``PAGE_MAX_BYTES`` (a session of tens of thousands of results): it says where the page is on disk.

    The workspace's index when there is none of kie-mcp's (the user deleted it, or copied ``outputs/`` in, and this
    process has not built the gallery yet): the build a save runs writes it (of ``side`` pixels' previews, none
    made), with the month pages it links, and that page is served; where the build cannot write it, the same index
    made here (``_index_unwritten``). Either way the newest ``SESSIONS_ON_INDEX`` sessions, never every one: the page
    is read whole at every read, and with every session it grows with the workspace (tens of MB at thousands).

    The page is read from one open file judged again as it is opened (``inputs.read_inside``): inside ``outputs``, a
    regular file, no link swapped in since the check (to ``.env`` or outside), never a FIFO to block on (opened
    without blocking). ``OutputsRefused`` when ``outputs`` is a link ``saved.refusal`` names. Reads and writes
    files: call it in a worker thread."""
    outputs = Path(outputs)
    saved.check(outputs)  # a link to / or the home folder: no page is read through it (OutputsRefused)
    if session is not None and not _session_folder_name(session):
        return None
    built = _refresh_kept(outputs, side)
    if session is not None:
        page = _own_index(outputs / session, outputs)
        return None if page is None else served_copy(page, outputs, f"{session}/{PAGE}")
    side = side or THUMBNAIL_SIDE
    index = _own_index(outputs, outputs)
    if index is None and built != side:  # none of kie-mcp's on disk, and no build just tried: the build writes it
        _rebuild(outputs, side)
        index = _own_index(outputs, outputs)
    return served_copy(index if index is not None else _index_unwritten(outputs, side), outputs, PAGE)


def _own_index(folder: Path, outputs: Path) -> str | None:
    """The text of the page of ``folder`` (``outputs`` itself: the index; a session folder: its page), under either
    of its names (``index_name``), when kie-mcp wrote it; else None."""
    for path in (folder / PAGE, folder / OWN_INDEX):
        if (page := _own_page(path, outputs)) is not None:
            return page
    return None


def _index_unwritten(outputs: Path, side: int) -> str:
    """The index made for a read where the build could not write it (a read-only ``outputs/``, a full disk, a folder
    where the page goes: the build logged why): the newest ``SESSIONS_ON_INDEX`` sessions, as a build writes it,
    and in place of the month pages' links, that they may be missing: from the sessions the build that just failed
    to write it kept (``_Cache.shown``), not a scan of every session again; a scan where it kept none. ``ValueError``
    past ``PAGE_MAX_BYTES``."""
    shown = _kept_index(outputs, side)
    if shown is None:
        sessions = scan(outputs, side)
        shown = [_Shown.of(session, section=n < SESSIONS_ON_INDEX) for n, session in enumerate(sessions)]
    page = _index_page(shown, months=False)
    if len(page) > PAGE_MAX_BYTES:
        raise ValueError(
            f"too large to send ({len(page) / 2**20:.1f} MB), and it could not be written in {outputs.absolute()}"
        )
    return page.decode("utf-8")


def _kept_index(outputs: Path, side: int) -> list[_Shown] | None:
    """The sessions this process's last build of ``outputs`` for ``side`` put on the index (``_Cache.shown``); None
    when no build kept them, or ``outputs`` is no folder now (the build then keeps nothing new)."""
    with _caches_guard:
        cache = _caches.get((outputs.absolute(), side))
    if cache is None or not outputs.is_dir():
        return None
    with cache.lock:
        return cache.shown


# The picture a page shows, as ``_media`` and ``_tile`` write it: a relative link, percent-encoded.
_PICTURE = re.compile(r'(<img src=")([^"]*)(")')


def served_copy(page: str, outputs: Path, where: str) -> str:
    """A gallery page of kie-mcp's as the ``kie://outputs/`` resources serve it, redacted: each picture that is a
    kept preview (a hidden file beside its result, which ``kie://outputs/`` never serves) points at
    ``kie://previews/<session>/<its result>``, which serves that preview; every other link stays relative, and
    resolves against the page's own ``kie://outputs/`` URI (the session pages, the month pages, the results and
    their sidecars are all served there). The file on disk keeps its relative links, for a browser's ``file://``.
    ``where``: the page's path inside ``outputs`` (``index.html``, ``<session>/index.html``, a month page). A page
    that is not kie-mcp's is only redacted. Lists a session folder only for a result's name longer than a
    preview's name holds: call it in a worker thread."""
    page = redact(page)  # a key pasted into a page by hand (or a sidecar an older kie-mcp wrote) is never shown
    if _GENERATOR.decode() not in page[:4096]:
        return page
    folder = PurePosixPath(where).parent
    listings: dict[str, list[str]] = {}  # a session folder's names, listed once for the page

    def pointed(match: re.Match[str]) -> str:
        named = (os.fsdecode(unquote_to_bytes(html.unescape(part))) for part in match[2].split("/"))
        parts = PurePosixPath(folder, *named).parts
        if len(parts) != 2 or not _session_folder_name(parts[0]):  # only a file of a session folder
            return match[0]
        session, name = parts
        kept = _PREVIEW.fullmatch(name)
        result = _previewed(outputs / session, kept[1], listings) if kept is not None else None
        if result is None:  # the result itself (no kept preview), which kie://outputs/ serves
            return match[0]
        return f"{match[1]}kie://previews/{_href(session, result)}{match[3]}"

    return _PICTURE.sub(pointed, page)


def _previewed(folder: Path, key: str, listings: dict[str, list[str]]) -> str | None:
    """The name of the result in ``folder`` whose kept previews are named by ``key`` (``_preview_key``): ``key``
    itself, unless it is as long as a preview's name holds, when the folder's results are looked through (a long
    name, cut in its previews'; ``listings`` keeps each folder's names once listed). None for none."""
    if key[:1] == ".":
        return None
    if len(key) < _PREVIEW_KEY_MOST:
        return key
    if folder.name not in listings:
        try:
            listings[folder.name] = sorted(os.listdir(folder))
        except OSError:
            listings[folder.name] = []
    return next((name for name in listings[folder.name] if name[:1] != "." and _preview_key(name) == key), None)


SESSION_PAGES_NAMED = 5  # the most session folders a gallery page's "not found" names


def session_pages_like(outputs: Path, session: str) -> list[str]:
    """The session folders whose gallery page ``kie://outputs/<session>/index.html`` was likely meant, newest
    first, at most ``SESSION_PAGES_NAMED``: folders are named ``<date>-<session>`` (``output_folder``), so a read by
    the session's name alone (``serum-showcase``), or with another date, finds none. Those of its very slug (or a
    ``_2`` beside a link of that name), else those whose slug holds it; only folders with a page of kie-mcp's. Reads
    the folder: call it in a worker thread."""
    slug = folder_of_today(session)[len("YYYY-MM-DD-") :]
    dated = []
    for name, _ in _session_folders(outputs):
        found = SESSION_FOLDER.match(name)
        if found is not None and name != session:
            dated.append((found.group(1), name, found.group(2)))
    dated.sort(reverse=True)
    same = [name for _, name, of in dated if of == slug or re.fullmatch(rf"{re.escape(slug)}_\d+", of)]
    like = same or [name for _, name, of in dated if slug in of]
    return [name for name in like if (outputs / name / PAGE).is_file()][:SESSION_PAGES_NAMED]


def folder_of_today(session: str) -> str:
    """The name of the folder a session named ``session`` (or written as a folder, ``<date>-<session>``) would
    start today: ``2026-12-06-serum-showcase``."""
    given = SESSION_FOLDER.match(session)
    return output_folder(Path(), given.group(2) if given else session, date.today()).name


def _session_folder_name(name: str) -> bool:
    """Whether ``name`` is a plain name of a session folder (``<day>-<session>``), the only folders whose pages the
    session resource serves, as ``kie://outputs/`` serves only their files."""
    if name in ("", ".", "..") or name[:1] == "." or "/" in name or "\\" in name or "\x00" in name:
        return False
    return saved.is_served(PurePosixPath(name, PAGE))


def _own_page(path: Path, outputs: Path) -> str | None:
    """The text of the page at ``path`` when it is one kie-mcp wrote inside ``outputs`` (``GENERATOR`` in its head);
    None for anything else, or anything swapped in since it was judged. ``PageTooLarge`` for one of kie-mcp's
    larger than ``PAGE_MAX_BYTES``."""
    try:
        home = outputs.resolve()
        real = path.resolve()
        if not (real.is_relative_to(home) and real.is_file()):
            return None
        data = read_inside(path, outputs, PAGE_MAX_BYTES)
    except TooLarge:
        head = _regular(real, 4096)
        if head is not None and _GENERATOR in head:  # kie-mcp's own, too large for a resource: said, with where it is
            raise PageTooLarge(path, real.stat().st_size) from None
        return None
    except RefusedInput:  # swapped since the check (a link leading out, a FIFO): not a page served
        return None
    except (OSError, RuntimeError, ValueError):
        return None
    return data.decode("utf-8", "replace") if _GENERATOR in data[:4096] else None


def _regular(path: Path, most: int = -1) -> bytes | None:
    """The bytes of ``path`` (its first ``most``) when it is a regular file; None for anything else: never read
    through a link put in its place, never waiting on a FIFO (opened without blocking, then judged by what was
    opened), so a page swapped while a build or a read looks at it gives nothing."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read(most) if S_ISREG(os.fstat(fd).st_mode) else None
        except OSError:
            return None
