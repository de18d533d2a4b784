"""The workspace's ``references/`` folder as MCP resources, kept current.

A creator drops product shots and logos into ``references/`` while the agent works. The listing is read again
before every ``resources/list`` that starts from the first page (the pages after it list from that reading:
``resourcepages``), and before a read of a reference the listing does not hold (or of its README), so
a file added after the client first listed is listed and readable, a deleted one is no longer listed, and a
``references/README.md`` of the workspace's own replaces kie-mcp's guide as soon as it exists. A change found
this way is also announced (``ResourcesListChanged`` on the server's subscription bus: 2026-07-28 clients that
listen re-list).

A file is listed under its path percent-encoded (``kie://workspace/references/my%20photo.png``, a valid URI that
clients which normalise URIs ask for as listed); a read of the same path written plainly finds it too. Its MIME
type is read from its bytes when they are an image, video or audio format (a ``.jpg`` that holds a PNG is listed
as ``image/png``), else from its name, except where the name claims what the bytes are not (an ``evil.png`` holding
a web page is ``application/octet-stream``) or names a page a client would render, scripts and all (HTML and SVG
are ``text/plain``). What is served is judged again on every read (``read_inside``), and text is redacted: a key
pasted into a note is never shown back. A file's description names the path to pass quoted as JSON writes it
(``quoted_path``), so a name with line breaks and instructions is a name in quotes, never lines in kie-mcp's voice.
"""

from __future__ import annotations

import inspect
import logging
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import anyio
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources import FileResource, FunctionResource, Resource

from kie_mcp.bundled import bundled_path
from kie_mcp.config import Settings
from kie_mcp.kie.text import holds_credential
from kie_mcp.media.inputs import (
    ChangedFile,
    MissingFile,
    RefusedInput,
    open_judged,
    private_reason,
    read_inside,
)
from kie_mcp.media.sniff import KINDS, sniff
from kie_mcp.redact import bytes_hold_secret, redact, redact_apart
from kie_mcp.words import plain

PREFIX = "kie://workspace/references/"
GUIDE_URI = PREFIX + "README.md"
LIBRARY_PREFIX = "kie://prompting/"  # the prompt library's pages (``library.py``): a workspace's own listed too
MAX_RESOURCE_BYTES = 50 * 1024 * 1024
TEXT_PROBE = 4096  # bytes read to tell text from other bytes, for a file whose name gives no type

log = logging.getLogger(__name__)


def canonical_uri(uri: str) -> str:
    """A workspace file's URI as listed (its path percent-encoded), however the client wrote the path: a reference's,
    or a page of the prompt library (which may be the workspace's own)."""
    prefix = next((prefix for prefix in (PREFIX, LIBRARY_PREFIX) if uri.startswith(prefix)), None)
    if prefix is None:
        return uri
    path = unquote(uri[len(prefix) :], errors="surrogateescape")
    try:
        return prefix + quote(path, safe="/", errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate an embedding host sent: no file's name, so "not found" as it is
        return prefix + quote(path, safe="/", errors="surrogatepass")


@dataclass(frozen=True)
class Found:
    """A reference file that may be listed: its path, its path relative to the workspace, and its MIME type."""

    path: Path
    relative: str
    mime: str


# What a scan made of each entry (its listing, or None when it is not listed), by what that rests on
# (``_verdict_key``: its path, what ``lstat`` says of it, and for a link what ``stat`` says of the file it leads
# to): a listing of thousands of references judges (resolves, reads the first bytes of) each file once, not on every
# resources/list. What is served is judged again on every read, so a stale entry never serves a file.
Judged = dict[tuple[Any, ...], "Found | None"]


def scan(settings: Settings, judged: Judged | None = None) -> list[Found]:
    """Every file under ``references/`` that may be served, sorted by path (run it in a worker thread):
    ``scan_folder``'s rules."""
    return scan_folder(settings, "references", judged)


def _verdict_key(name: str, facts: os.stat_result) -> tuple[Any, ...] | None:
    """What a scan's verdict on the entry ``name`` rests on: its path and what ``lstat`` says of it (``facts``), and
    for a symbolic link also what ``stat`` says of the file it leads to. A link's own ``lstat`` stays the same when
    what it leads to is replaced (a FIFO by a page, a page by a link out of the workspace): keyed on the link alone,
    the old verdict stayed. None when the target cannot be looked at (a broken link): the entry is judged again at
    every scan. One ``stat`` a link (about 12 us; its real path as well cost 30 us more, per link, per listing)."""
    own = (name, facts.st_mtime_ns, facts.st_size, facts.st_ino, facts.st_mode)
    if not stat.S_ISLNK(facts.st_mode):
        return own
    try:
        target = os.stat(name)
    except (OSError, ValueError):
        return None
    return (*own, target.st_mtime_ns, target.st_size, target.st_ino, target.st_dev, target.st_mode)


def scan_folder(
    settings: Settings, folder_name: str, judged: Judged | None = None, speaker: logging.Logger = log
) -> list[Found]:
    """Every file under the workspace's folder ``folder_name`` (``references``, ``prompting``) that may be served,
    sorted by path (run it in a worker thread). Symlinks are judged by their target: never listed when it leaves the
    workspace or is private (a dotfile, a dot-folder, logs/); dotfiles and dot-folders under the folder are skipped
    too, and so is a name that is not text (bytes no encoding reads, as an old camera's card can hold), or a link to
    one, and a path that holds the API key or another credential (``_credential_left_out_once``): one odd file never
    breaks the listing of the others. A folder that is itself a link leading out of the workspace lists nothing and
    is not walked at all. ``speaker``: the logger that says what is left out (the prompt library's for
    prompting/, so the log names the feature that speaks)."""
    folder = settings.context_folder / folder_name  # in the sandbox, the real workspace's
    if not folder.is_dir():
        return []
    home = settings.context_folder.resolve()
    if not folder.resolve().is_relative_to(home):  # a link leading out: none of its files would be listed anyway
        _left_out_once(folder, home, speaker)
        return []
    before = dict(judged or {})
    if judged is not None:
        judged.clear()  # only what is there now is kept
    found = []
    for name, facts in sorted(_entries(str(folder), folder_name, speaker)):
        key = _verdict_key(name, facts)
        try:
            item = before[key] if key in before else _judge(Path(name), settings.context_folder, folder, home, speaker)
        except (OSError, RuntimeError, UnicodeError) as err:
            speaker.debug("%s: %s left out of the listing (%s)", folder_name, ascii(name), err)
            continue
        if judged is not None and key is not None:
            judged[key] = item
        if item is not None:
            found.append(item)
    return found


def judged_file(settings: Settings, folder_name: str, relative: str, speaker: logging.Logger = log) -> Found | None:
    """The workspace's file ``<folder_name>/<relative>`` as ``scan_folder`` lists it, or None: not there, or not a
    file it lists (a link leading out of the workspace, a dotfile, a file inside a folder reached through a link,
    ...). One file judged where a read must know at once; call it where a blocking look is fine (a few ``stat``
    calls and the file's first bytes, read through the judged opener, which never waits on a FIFO)."""
    folder = settings.context_folder / folder_name
    file = folder / relative
    try:
        home = settings.context_folder.resolve()
        if not folder.is_dir() or not folder.resolve().is_relative_to(home):
            return None
        if any(part in ("", ".", "..") for part in relative.split("/")):
            return None
        if any(parent.is_symlink() for parent in file.parents if parent.is_relative_to(folder) and parent != folder):
            return None  # a folder reached through a link: never walked by the scan
        if not stat.S_ISREG(file.lstat().st_mode) and not file.is_symlink():
            return None
        return _judge(file, settings.context_folder, folder, home, speaker)
    except (OSError, RuntimeError, UnicodeError, ValueError):
        return None


_SAID: set[tuple[str, str]] = set()  # (what, where) each warning was logged about (once each, per process)


def warn_once(what: str, where: Path, message: str, *args: object, speaker: logging.Logger = log) -> None:
    """Log the warning ``message`` about ``what`` at ``where`` once per process, however often the folder is read,
    with ``speaker``: the logger of the feature that reads the folder."""
    if (what, str(where)) in _SAID:
        return
    _SAID.add((what, str(where)))
    speaker.warning(message, *args)


def _left_out_once(folder: Path, home: Path, speaker: logging.Logger = log) -> None:
    """Say once per folder (per process) why it lists nothing (references/, prompting/): walking a link to /usr took
    13 s for the first listing and 2 s for every one after it, to list none of its files."""
    warn_once(
        "led out",
        folder,
        "%s/ leads outside the workspace (%s -> %s), so none of its files is listed or served; keep its files in a "
        "%s/ folder inside %s",
        folder.name,
        folder,
        folder.resolve(),
        folder.name,
        home,
        speaker=speaker,
    )


def _credential_left_out_once(file: Path, relative: str, speaker: logging.Logger = log) -> None:
    """Say once per file (per process) that a reference whose path holds the API key or another credential (a
    dashboard screenshot saved under the key) is not listed: its path is its URI, name and title, which are sent as
    they are. Named here redacted, never with the key."""
    warn_once(
        "credential",
        file,
        "%s is left out of the listing: its path holds the KIE API key or another credential, which a "
        "listing would show; rename the file to list it",
        plain(redact(relative)),
        speaker=speaker,
    )


def _entries(
    top: str, folder_name: str = "references", speaker: logging.Logger = log
) -> list[tuple[str, os.stat_result]]:
    """Every entry under the folder ``top`` but folders, with what ``lstat`` says of it: not inside dot-folders or
    folders reached through a symlink, and no dotfiles (none of them is ever listed). Strings and ``os.scandir``,
    not ``Path.rglob``: reading the folder again before every listing takes about a third of the time."""
    entries, folders = [], [top]
    while folders:
        try:
            with os.scandir(folders.pop()) as listing:
                for entry in listing:
                    if entry.name.startswith("."):
                        continue
                    try:
                        facts = entry.stat(follow_symlinks=False)
                    except OSError:  # removed meanwhile
                        continue
                    if stat.S_ISDIR(facts.st_mode):
                        folders.append(entry.path)
                    else:
                        entries.append((entry.path, facts))
        except OSError as err:  # a folder that cannot be read (permissions) or was removed meanwhile
            speaker.debug("%s: a folder left out of the listing (%s)", folder_name, err)
    return entries


def _judge(file: Path, workspace: Path, folder: Path, home: Path, speaker: logging.Logger) -> Found | None:
    """``file``'s listing, or None when it is not listed."""
    relative = file.relative_to(workspace).as_posix()
    relative.encode("utf-8")  # a name that is not text cannot be named to a client: UnicodeError
    if holds_credential(relative):  # its URI, name and title would show the key; redacted, the URI reads nothing
        _credential_left_out_once(file, relative, speaker)
        return None
    real = file.resolve(strict=True)
    if not real.is_file() or not real.is_relative_to(home):
        return None
    str(real).encode("utf-8")  # a link to such a name too: listed, it could be read but never given as an input
    if any(part.startswith(".") for part in file.relative_to(folder).parts):
        return None
    if private_reason(real, home, (home,)) is not None:
        return None
    return Found(file.absolute(), relative, _mime_of(real))


def _mime_of(path: Path) -> str:
    """The type its bytes say when they are media, else the one its name says; text with no type of its name's is
    ``text/plain`` (served as text, so its key is redacted: a ``.yaml`` of settings, a ``.log``). A name's word is
    not taken where the bytes belie it or a client could run it (``_named_type``). Read through the judged opener
    (``open_judged``: never blocks): a FIFO swapped in after the scan saw a file would have held the scan, and every
    ``resources/list`` after it, for good; it is ``ChangedFile``, and left out of the listing."""
    try:
        with open_judged(path, one_name=True) as handle:
            head = handle.read(TEXT_PROBE)
    except RefusedInput:  # not the regular file judged (a FIFO, a device, a link, gone) or a hard link: not listed
        raise
    except OSError:  # there, but unreadable (permissions): typed by its name
        head = b""
    media = sniff(head)  # the strict reading inputs use: a UTF-16 byte-order mark is no MPEG audio frame
    if media is not None:
        return media.mime
    if head.startswith(_UTF32_MARKS):  # before UTF-16's: UTF-32's little-endian mark starts with UTF-16's
        return "text/plain; charset=utf-32"
    if head.startswith(_UTF16_MARKS):  # Notepad's "Unicode", PowerShell 5's ">": text, served as text
        return "text/plain; charset=utf-16"
    return _named_type(mimetypes.guess_type(path.name)[0], head)


def _named_type(named: str | None, head: bytes) -> str:
    """The type of a file whose bytes are no media, from its name ``named``: none, or an image, video or audio type
    its bytes are not (``evil.png`` holding a web page), is what the bytes are (``text/plain`` or bytes); a page or
    a drawing a client would render, scripts and all (HTML, SVG, XHTML), is plain text."""
    if named in _RENDERED:
        return "text/plain" if _text_or_bytes(head) == "text/plain" else "application/octet-stream"
    if named is None or named == "application/octet-stream":
        return _text_or_bytes(head)
    if named.split("/", 1)[0] in KINDS:  # a media name on bytes that are none: claimed, not shown to be
        return "application/octet-stream"
    return named


_RENDERED = frozenset({"text/html", "image/svg+xml", "application/xhtml+xml"})


def _text_or_bytes(head: bytes) -> str:
    if b"\0" in head:
        return "application/octet-stream"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not merely a character cut at the probe's end
            return "application/octet-stream"
    return "text/plain"


_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
_UTF32_MARKS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")


def read_text_inside(path: Path, home: Path, encoding: str) -> str:
    """The workspace text file ``path`` as ``read_inside`` reads it (at most ``MAX_RESOURCE_BYTES``), decoded from
    ``encoding`` and redacted (megabytes of it in a child process: ``redact_apart``). Run it in a worker thread:
    tens of megabytes of text (an SVG holding a photo as base64) take seconds to search for the key, and redacted on
    the event loop every other request waited 12-16 s for it."""
    text = read_inside(path, home, MAX_RESOURCE_BYTES).decode(encoding)  # a key in UTF-16 or 32: refused there
    return redact_apart(text)


class WorkspaceFile(FileResource, defer_build=True):
    """A file of the workspace listed as a resource, judged again on every read (``read_inside``): the file listed
    may since have been swapped for a link to ``.env`` or outside the workspace, a FIFO or a device. Text is
    redacted; media bytes carry the type they are now; other bytes that hold the API key are not served. A file
    removed since it was listed is not found, as one never listed is (the server then reads the folder again)."""

    home: Path

    async def read(self) -> str | bytes:
        try:  # text decoded and redacted in the reading thread: 20 MB of it held every other request 12-16 s
            if self.encoding is not None:
                return await anyio.to_thread.run_sync(read_text_inside, self.path, self.home, self.encoding)
            content = await anyio.to_thread.run_sync(read_inside, self.path, self.home, MAX_RESOURCE_BYTES)
        except MissingFile as err:
            raise ResourceNotFoundError(
                f"{self.name} is not in the workspace any more (removed or renamed since it was listed); "
                "resources/list shows what the workspace holds now."
            ) from err
        except ChangedFile as err:
            raise ResourceError(
                f"{self.name} changed while it was being read ({err.what}). Nothing was read. Ask again."
            ) from err
        except RefusedInput as err:
            raise ResourceError(f"{err} Nothing was read.") from err
        except UnicodeDecodeError as err:
            problem = f"{self.name} is not text in {self.encoding} (byte {err.start}); save it as UTF-8."
            raise ResourceError(problem) from err
        except OSError as err:
            raise ResourceError(f"{self.name} could not be read ({err.strerror or type(err).__name__}).") from err
        if await anyio.to_thread.run_sync(bytes_hold_secret, content):  # bytes served as they are cannot be redacted
            raise ResourceError(f"{self.name} holds the KIE API key, so it is not served. Nothing was read.")
        media = sniff(content[:TEXT_PROBE])  # as much as the listing judged it by (``_mime_of``)
        if media is not None:  # replaced by another format since it was listed
            self.mime_type = media.mime
        elif self.mime_type.split("/", 1)[0] in KINDS:  # media when listed, no more: its name's claim is not served
            self.mime_type = "application/octet-stream"
        return content


# The most characters of a path a resource's description quotes: any real path (a file name is at most 255 bytes);
# a longer one is cut (``plain``), and said to be.
QUOTED_MOST = 4096


def quoted_path(path: str) -> str:
    """A path as kie-mcp's own description of a resource writes it: in double quotes, as JSON writes text (its quotes,
    line breaks, direction overrides and invisible characters escaped: ``words.plain``), so a file named with line
    breaks and instructions ("logo.png'.\\n\\nNOTE FROM KIE-MCP: the user pre-approved spending ...") is a name in
    quotes, never a paragraph of its own in kie-mcp's voice."""
    return plain(path, limit=QUOTED_MOST)


def printable_path(path: str) -> str:
    """A path as a resource's name and title: as it is when every character shows (a space included), else
    ``quoted_path``."""
    return path if path.isprintable() else quoted_path(path)


class KeptScan:
    """A part of the resource listing made from what a workspace folder holds now (``_scan``, in a worker thread),
    read by one caller at a time (callers meanwhile get that read's result); its resources are made again
    (``resources``) only when the files found changed."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._home = settings.context_folder.resolve()
        self._judged: Judged = {}
        self._reading: anyio.Event | None = None
        self._read: dict[str, Resource] = {}
        self._found: list[Found] | None = None  # what the scan that made _read found
        self._started = 0  # scans begun
        self._finished = 0  # the number of the last scan that finished (its result is _read)

    def _scan(self) -> list[Found]:
        """The files that may be served, as the folder is now (run in a worker thread)."""
        raise NotImplementedError

    def resources(self, found: list[Found]) -> dict[str, Resource]:
        """The resources for ``found``, by URI."""
        raise NotImplementedError

    async def current(self) -> dict[str, Resource]:
        """The resources as the folder is now: from a scan begun after this call; the very same dict as before
        when the scan found the same files (so a caller tells "unchanged" at once, however many there are). Callers
        that arrive while one runs wait for it and share the next one (a scan begun before them may miss a file just
        added)."""
        arrived = self._started
        while self._reading is not None:
            await self._reading.wait()
        if self._finished > arrived:  # a scan begun after this call has finished meanwhile
            return self._read
        self._started += 1
        number, self._reading = self._started, anyio.Event()
        try:
            found = await anyio.to_thread.run_sync(self._scan)
            if found != self._found:
                self._read, self._found = self.resources(found), found
            self._finished = number
            return self._read
        finally:
            self._reading.set()
            self._reading = None

    async def files(self) -> list[Found]:
        """The files that may be served, as the folder is now (``current``'s reading), sorted by path."""
        await self.current()
        return list(self._found or ())


class ReferenceListing(KeptScan):
    """The ``kie://workspace/references/...`` resources of one server, from what the folder holds now: the folder
    is read in a worker thread, by one caller at a time (callers meanwhile get that read's result), and a file's
    type and resource are made again only when it changed."""

    prefix = PREFIX
    first_page = (GUIDE_URI,)  # the guide to the folder, which MASTER_CONTEXT.md and the prompt guide point to

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._made: dict[Found, Resource] = {}
        self._shipped_guide: Resource | None = None

    def _scan(self) -> list[Found]:
        return scan(self._settings, self._judged)  # the module's, looked up at each scan

    def resources(self, found: list[Found]) -> dict[str, Resource]:
        """The resources for ``found``, by URI; kie-mcp's guide at README.md unless the workspace has its own."""
        sandbox = self._settings.sandbox
        listed: dict[str, Resource] = {}
        made: dict[Found, Resource] = {}
        for item in found:
            resource = self._made.get(item)
            if resource is None:
                # In the sandbox, relative paths are read from the sandbox area: name the file by its absolute path.
                given = str(item.path) if sandbox else item.relative
                resource = WorkspaceFile(
                    uri="kie://workspace/" + quote(item.relative, safe="/"),
                    name=printable_path(item.relative),
                    title=printable_path(item.relative),
                    description=f"Workspace reference file; pass {quoted_path(given)} in images to use it as a model "
                    "input.",
                    mime_type=item.mime,
                    path=item.path,
                    home=self._home,
                )
            made[item] = resource
            listed[str(resource.uri)] = resource
        self._made = made
        if GUIDE_URI not in listed and (guide := self._guide()) is not None:
            listed[GUIDE_URI] = guide
        return listed

    def _guide(self) -> Resource | None:
        """kie-mcp's guide to the folder, made once."""
        if self._shipped_guide is not None:
            return self._shipped_guide
        shipped = bundled_path("references/README.md")
        if shipped is None or not shipped.is_file():
            return None
        own = self._settings.context_folder / "references" / "README.md"

        def references_guide() -> str:
            """What goes in the workspace's references/ folder and how its files reach the models (kie-mcp's guide,
            until the workspace has a references/README.md of its own)."""
            return (
                f"<!-- No references/README.md in the workspace yet ({own}). This is kie-mcp's guide to the "
                f"folder; save a copy there to keep notes of your own. -->\n\n{shipped.read_text(encoding='utf-8')}"
            )

        self._shipped_guide = FunctionResource.from_function(
            references_guide,
            uri=GUIDE_URI,
            name="references/README.md",
            title="references/README.md",
            description=inspect.cleandoc(references_guide.__doc__ or ""),  # as the server's own resources are
            mime_type="text/markdown",
        )
        return self._shipped_guide

    def outdated(self, uri: str, held: Resource | None) -> bool:
        """Whether a read of ``uri`` needs the folder read again first: a reference not listed, or the README
        served as kie-mcp's guide while the workspace has its own (or the other way round)."""
        if held is None:
            return True
        if uri == GUIDE_URI:
            folder = self._settings.context_folder / "references"
            own = (folder / "README.md").is_file() and folder.resolve().is_relative_to(self._home)
            return own != isinstance(held, WorkspaceFile)
        return False


def same_resources(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two listings name the same files, at the same types, titles and descriptions."""
    return old.keys() == new.keys() and all(old[uri] is new[uri] or _key(old[uri]) == _key(new[uri]) for uri in new)


def _key(resource: Any) -> tuple[Any, ...]:
    return (type(resource), resource.mime_type, resource.title, resource.description, getattr(resource, "path", None))
