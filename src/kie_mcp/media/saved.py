"""Where saved results live, and which files there are saved results.

Results go to the workspace's ``outputs/`` folder, which may be a symbolic link to a folder of the user's choosing
(another disk). A link to ``/``, to the workspace or a folder holding it, or to the home folder or one holding it is
no folder of results but a way to every file (a cloned repository can carry one): nothing is saved, served or read
through it, and a request that would save there is refused before anything is spent.

What ``kie://outputs/`` serves is what kie-mcp saves there: files in session folders (``<day>-<session>/``) and
the gallery pages. An ``outputs/`` linked to a folder the user chose may hold their own files too, so through it
only what kie-mcp saved is served, previewed, shown in the gallery or read as an input (``lends``): the files its
sidecars list, the sidecars, and its pages.

``saving_problem`` tells whether ``outputs/`` can take a file now: a link to a disk that is not mounted, a file or a
loop of links in its place, or a read-only disk would let a paid result go unsaved. While results are saved as they
exist, ``estimate_cost`` refuses such a request and a generate call refuses it before its form, upload or create
(``surface``; a call answered with what an earlier one bought, creating nothing, is answered as ever),
``check_credits`` says so, and a save that fails (it broke after the create) says it instead of the bare error
(``downloads.real_folder``).

A saved result may change after it is saved (an editor's export written over it, a copy cut short): ``kept`` tells
whether it is still the file saved, by the size and sha256 the journal recorded, so a changed file is never taken
for the task's result (a follow-up's source, a clip of a join) and ``check_task`` says it changed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Any, Literal, NamedTuple

import anyio

from kie_mcp.journal import JOURNAL_ERRORS
from kie_mcp.media.sniff import PICTURE_EXTENSIONS

OUTPUTS = "outputs"
SESSION_FOLDER = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+)$")  # the name output_folder gives: its day, its slug
# A session label written as the name of a session folder, as the seed documents and MASTER_CONTEXT.md tell an agent
# to make one (``outputs/2026-04-20-ugc-batch/``, ``2026-04-20-ugc-batch``): its day and its name after the day, one
# word (no space, no separator: ``outputs/a/b``, ``../x`` and prose are session names, slugged as ever). A ``_N`` after
# it (``2026-04-20-x_2``) is part of its name (``x_2``, slugged ``x-2``) unless the folder it names is the stand-in
# ``downloads.real_folder`` made beside a link (``FolderLabel.stand_in``; ``downloads.named_folder`` judges the disk).
_FOLDER_LABEL = re.compile(r"(?:(?:\./)?outputs/)?((\d{4}-\d{2}-\d{2})-([^\s/\\]*[^\W_][^\s/\\]*))/?")
_STAND_IN = re.compile(r"(.*[^\W_].*?)_([0-9]+)")  # ``x_2``: a name ``real_folder`` gives the stand-in of ``x``
PAGE = "index.html"  # the gallery page (gallery.py), in outputs/ and in each session folder
OWN_INDEX = "kie-mcp-gallery.html"  # the index's name beside an index.html of the user's own (``index_name``)
# The gallery's pages (gallery.py): its index (under its own name beside an index.html of the user's) and month pages.
_PAGE = re.compile(r"^(?:index(?:-(?:\d{4}-\d{2}|undated))?|kie-mcp-gallery)\.html$")


@functools.lru_cache(maxsize=32)
def outputs_of(workspace: Path) -> Path:
    """The workspace's ``outputs/``, one ``Path`` per workspace (made once: a call on the hot path, estimate_cost,
    asks for it on every call)."""
    return workspace / OUTPUTS


def refusal(outputs: Path) -> str | None:
    """Why the ``outputs`` folder (``<workspace>/outputs``) is not used, or None: it is a link leading to ``/``, to
    the workspace or a folder holding it, or to the home folder or one holding it."""
    try:
        if _link_kind(outputs) is None:
            return None
        target = outputs.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of links: creating or reading the folder says so itself
        return None
    held = [outputs.parent.resolve()]
    with contextlib.suppress(OSError, RuntimeError, KeyError):  # no home folder known: the other checks stand
        held.append(Path.home().resolve())
    # Judged by the folder itself, not its spelling: a bind mount, another letter case on a case-insensitive disk.
    mark = _identity(target)
    if mark is None:  # nothing there (another disk not mounted): ``saving_problem`` says so
        return None

    def holds(folder: Path) -> bool:
        return any(_identity(above) == mark for above in (folder, *folder.parents))

    if _identity(Path(target.anchor)) == mark:
        what = "the top of the file system"
    elif _identity(held[0]) == mark:
        what = "the workspace itself"
    elif holds(held[0]):
        what = "a folder holding the workspace"
    elif len(held) > 1 and holds(held[1]):
        what = "a folder holding your home folder"
    else:
        return None
    return (
        f"outputs/ in the workspace is {_link_kind(outputs)} to {target}, {what}: kie-mcp saves, serves and reads no "
        "results through such a link (a cloned repository can carry one). Remove the link, or point it at a folder "
        "of its own (on another disk is fine)."
    )


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(folder)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def saving_problem(outputs: Path) -> str | None:
    """Why no result can be saved into ``outputs`` (``<workspace>/outputs``) now, or None: a link ``refusal`` names;
    a link whose folder is not there (a disk not mounted: nothing is made in its place, which would be on the disk
    beneath); a loop of links; a file, or anything else that is not a folder; a folder this process cannot write
    into (a read-only disk, its permissions), judged where ``outputs/`` is, or where it would be made. Each said with
    what to do."""
    if (reason := refusal(outputs)) is not None:
        return reason
    try:
        found: os.stat_result | None = os.stat(outputs)
    except FileNotFoundError:
        if os.path.lexists(outputs):  # a link whose folder is not there (a junction's too: not ``islink`` on 3.11)
            return _missing_target(outputs)
        found = None  # made when the first result is saved, in the nearest folder there is
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (
                "outputs/ in the workspace is a symbolic link that leads back to itself (a loop of links), so there "
                "is no folder to save results into. Remove the link, or point it at a folder (on another disk is "
                "fine)."
            )
        if not os.path.isdir(outputs.parent):  # the workspace itself: what the journal says of it is said instead
            return None
        return (
            f"outputs/ in the workspace ({outputs}) cannot be reached ({exc.strerror or exc}), so no result can be "
            "saved there. Make it a folder kie-mcp can write into, or remove it (kie-mcp then makes one)."
        )
    kind = _link_kind(outputs)
    linked = f" ({kind} to {_target(outputs)})" if kind is not None else ""
    if found is not None and not stat.S_ISDIR(found.st_mode):
        what = "a file" if stat.S_ISREG(found.st_mode) else "a special file (a pipe, a socket or a device)"
        return (
            f"outputs/ in the workspace{linked} is {what}, not a folder, so no result can be saved in it. Move it out "
            "of the way (kie-mcp then makes the folder), or make outputs/ a link to a folder."
        )
    folder = outputs if found is not None else _nearest_folder(outputs.parent)
    if folder is None or (why := _unwritable(folder)) is None:
        return None
    if found is None:
        return (
            f"outputs/ cannot be made in the workspace: {folder} {why}. Make it writable, or set KIE_WORKSPACE to a "
            "folder that is."
        )
    return (
        f"outputs/ in the workspace{linked} {why}, so no result can be saved in it. Make it writable, or make "
        "outputs/ a link to a folder that is (on another disk is fine)."
    )


def _link_kind(path: Path) -> str | None:
    """What leads ``path`` elsewhere: "a symbolic link", on Windows "a directory junction" (which ``os.path.islink``
    does not call a link before Python 3.12), or None when it is neither (or is not there)."""
    try:
        found = os.lstat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISLNK(found.st_mode):
        return "a symbolic link"
    junction = getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", None)
    if junction is not None and getattr(found, "st_reparse_tag", None) == junction:
        return "a directory junction"
    return None


def _target(link: Path) -> Path | str:
    """Where the link ``link`` leads, followed to its end as far as it goes (its text, when it cannot be)."""
    try:
        return link.resolve()
    except (OSError, RuntimeError):
        return os.readlink(link)


def _missing_target(outputs: Path) -> str:
    return (
        f"outputs/ in the workspace is {_link_kind(outputs) or 'a link'} to {_target(outputs)}, which is not there: "
        "is it on a disk that is not mounted? Mount the disk (or create that folder), point the link at a folder "
        "that exists, or remove the link (kie-mcp then makes outputs/ in the workspace)."
    )


def _nearest_folder(path: Path) -> Path | None:
    """``path`` or the nearest folder above it that exists: where a missing ``outputs/`` would be made."""
    for folder in (path, *path.parents):
        with contextlib.suppress(OSError):
            if folder.is_dir():
                return folder
    return None


def _unwritable(folder: Path) -> str | None:
    """Why nothing can be made in ``folder``, or None. A read-only disk is read from the mount's flags (``statvfs``):
    root passes every permission check, but not a read-only mount; ``os.access`` judges the rest (permissions)."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): os.access tells
        read_only = False
    if read_only:
        return "is on a read-only disk"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "cannot be written by this user (its permissions)"
    return None


class OutputsRefused(OSError):
    """The workspace's ``outputs/`` is a link ``refusal`` names, or (``check`` with ``saving``) cannot take a file now
    (``saving_problem``): nothing is saved there."""


def check(outputs: Path, then: str = "", *, saving: bool = False) -> None:
    """Raise ``OutputsRefused`` (its text ``refusal``'s, then ``then``) when ``outputs`` may not be used; with
    ``saving`` (a result is to be saved there), also when it cannot take a file now (``saving_problem``)."""
    if (reason := saving_problem(outputs) if saving else refusal(outputs)) is not None:
        raise OutputsRefused(f"{reason}{then}")


# How long a check that found outputs/ fine stands for a call that spends nothing and whose spend checks again (an
# estimate: ``checked`` with ``lately``). Each check is a hop to a worker thread, a good part of an estimate's time
# over stdio; an agent's estimates in a row (comparing models, settings) ask the disk once. The check before a form,
# an upload or a create is always made afresh, so a disk gone meanwhile is still refused before anything is spent.
FINE_SECONDS = 2.0
# outputs/ -> (when the last check that found it fine began, on the monotonic clock; whether it judged saving there).
_FINE: dict[Path, tuple[float, bool]] = {}


async def checked(outputs: Path, then: str = "", *, saving: bool = False, lately: bool = False) -> None:
    """``check`` in a worker thread: ``outputs/`` on a hung network or FUSE mount stalls its ``stat`` (and
    ``statvfs``) for as long as the mount hangs, which on the event loop would stall every call of the server.

    ``lately``: for an estimate, whose spend checks again: a check begun less than ``FINE_SECONDS`` ago that found
    ``outputs`` fine (for saving, when ``saving``) stands, and the disk is not asked. A refusal is never kept: the
    next call asks again, so an outputs/ mended since is taken at once."""
    began = time.monotonic()
    if lately and (kept := _FINE.get(outputs)) is not None and began - kept[0] < FINE_SECONDS and kept[1] >= saving:
        return
    try:
        await anyio.to_thread.run_sync(functools.partial(check, outputs, then, saving=saving))
    except OutputsRefused:
        _FINE.pop(outputs, None)
        raise
    _FINE[outputs] = (began, saving)


def is_saved(relative: PurePath) -> bool:
    """Whether a path inside ``outputs/`` (relative to it) is where kie-mcp saves: a file in a session folder."""
    return len(relative.parts) >= 2 and SESSION_FOLDER.match(relative.parts[0]) is not None


class FolderLabel(NamedTuple):
    """A session label that names a session folder (``folder_label``)."""

    day: str  # its day as written: ``2026-04-20``, maybe no date at all (``2026-02-30``)
    name: str  # its name after the day: ``ugc-batch``; ``x_2`` of ``2026-04-20-x_2``
    bare: str  # the label without ``outputs/`` and a trailing ``/``: ``2026-04-20-x_2``

    @property
    def stand_in(self) -> tuple[str, int] | None:
        """The name and number of the folder this one's name would be the stand-in of (``x_2``: ``x``, 2), which
        ``real_folder`` makes beside a link of that name; None for a name without ``_N``. Only the disk tells whether
        it is one (``downloads.named_folder``): otherwise ``x_2`` is a name of its own."""
        found = _STAND_IN.fullmatch(self.name)
        return None if found is None else (found[1], int(found[2]))


def folder_label(label: str | None) -> FolderLabel | None:
    """A session label that names a session folder (``_FOLDER_LABEL``): its day as written, its name after the day
    (``ugc-batch``, ``x_2``) and the label bare; None for any other label."""
    found = _FOLDER_LABEL.fullmatch((label or "").strip())
    return None if found is None else FolderLabel(found[2], found[3], found[1])


def session_name(label: str) -> str:
    """A session's name as the gallery heads it: a label naming its folder (``folder_label``) by its name after the
    day, which the heading writes beside it; any other as typed."""
    named = folder_label(label)
    return label if named is None else named[1]


def is_served(relative: PurePath) -> bool:
    """Whether a path inside ``outputs/`` is one ``kie://outputs/`` serves: a saved file or a gallery page."""
    return is_saved(relative) or (len(relative.parts) == 1 and _PAGE.match(relative.parts[0]) is not None)


def sidecars_since(outputs: Path, since: float) -> set[str]:
    """The names of the sidecars (``<model>_<task>.json``) in the session folders of ``outputs`` changed at ``since``
    or later (a folder changes when a file is saved into it): which tasks made since then have their results saved,
    read without walking every result ever saved. A folder that cannot be read holds none; ``outputs`` refused
    (``refusal``) is never read."""
    names: set[str] = set()
    if refusal(outputs) is not None:
        return names
    try:
        folders = list(os.scandir(outputs))
    except OSError:
        return names
    for folder in folders:
        try:
            if (
                not SESSION_FOLDER.match(folder.name)
                or not folder.is_dir(follow_symlinks=False)
                or folder.stat().st_mtime < since
            ):
                continue
            names.update(entry.name for entry in os.scandir(folder.path) if entry.name.endswith(".json"))
        except OSError:
            continue
    return names


SIDECAR_MOST = 1 << 20  # a sidecar is a few KB; a larger ".json" beside a file is not one


GENERATOR = b'<meta name="generator" content="kie-mcp">'  # in every gallery page kie-mcp writes (gallery.py)


SESSIONS_READ = 200  # session folders a look for saved pictures reads at most, the newest first


def saved_pictures(workspace: Path, wanted: Callable[[str], bool], *, folders: str = "") -> tuple[list[str], bool]:
    """The pictures kie-mcp saved in the session folders of ``workspace``'s outputs/ that ``wanted`` takes, by their
    path relative to the workspace (``outputs/<date>-<session>/<file>``, as a call takes them in images), newest
    first; and whether any were left out (folders left unread). For a workflow's picture argument: character_sheet's
    hero and angles stay in their session folder, and later workflows take them by those paths.

    Bounded, as a host asks again on every key: the ``SESSIONS_READ`` session folders newest by their day (those
    whose name starts with ``folders``, case folded, when it is given), each listed once. Only regular files (kie-mcp
    saves no link), no dotfiles (the kept previews), a picture by the name it was saved under (``result_name``
    writes its real type); in an outputs/ linked to a folder of the user's, only what kie-mcp saved there
    (``lends``). An outputs/ ``refusal`` names is not read."""
    outputs = workspace / OUTPUTS
    if refusal(outputs) is not None:
        return [], False
    try:
        with os.scandir(outputs) as listing:  # a link in a session folder's place (kie-mcp makes none) is not read
            names = [e.name for e in listing if SESSION_FOLDER.match(e.name) and e.is_dir(follow_symlinks=False)]
        names.sort(reverse=True)  # the newest day first
        home = outputs.resolve() if outputs.is_symlink() else None
    except (OSError, RuntimeError):  # no outputs/ yet, or none to read
        return [], False
    names = [name for name in names if name.casefold().startswith(folders.casefold())]
    found: list[tuple[int, str]] = []
    for name in names[:SESSIONS_READ]:
        try:
            with os.scandir(outputs / name) as listing:
                entries = [(entry, entry.stat(follow_symlinks=False)) for entry in listing]
        except OSError:  # a folder that cannot be read, or removed meanwhile
            continue
        for entry, facts in entries:
            relative = f"{OUTPUTS}/{name}/{entry.name}"
            suffix = entry.name.rsplit(".", 1)[-1].lower() if "." in entry.name else ""
            if entry.name.startswith(".") or not stat.S_ISREG(facts.st_mode) or suffix not in PICTURE_EXTENSIONS:
                continue
            if wanted(relative) and (home is None or _lent(home, home / name / entry.name)):
                found.append((facts.st_mtime_ns, relative))
    return [relative for _, relative in sorted(found, reverse=True)], len(names) > SESSIONS_READ


def _lent(home: Path, real: Path) -> bool:
    """``lends``, for the newest saved pictures: a picture that cannot be judged (unreadable, or out of ``home``) is
    not suggested, never an error in the completion that asked."""
    try:
        return lends(home, real)
    except (OSError, ValueError):
        return False


def is_own_page(path: Path) -> bool:
    """Whether ``path`` is a gallery page kie-mcp wrote: a regular file, not a link, carrying ``GENERATOR`` (a page of
    the user's own, a link to one, or a FIFO named like one is not; a FIFO is never waited on)."""
    try:
        if path.is_symlink():
            return False
    except OSError:
        return False
    return GENERATOR in (_head(path, 4096) or b"")


def index_name(folder: Path) -> str:
    """The file name of the gallery's page in ``folder`` (``outputs/``: the index; a session folder: its page):
    ``PAGE``, or, beside an ``index.html`` that kie-mcp did not write (a portfolio page, an exported album, a link;
    never replaced), ``OWN_INDEX``, which the gallery's other pages then link to."""
    page = Path(folder) / PAGE
    try:
        theirs = os.path.lexists(page) and not is_own_page(page)
    except OSError:
        theirs = False
    return OWN_INDEX if theirs else PAGE


def lends(home: Path, real: Path) -> bool:
    """What an ``outputs/`` linked to ``home`` (a folder the user chose, which may hold their own files too) serves,
    previews or gives as an input: a result a sidecar of kie-mcp's lists (``is_recorded``), such a sidecar, or a
    gallery page kie-mcp wrote. Nothing else the folder holds, whatever its folder's name."""
    if is_recorded(home, real):
        return True
    relative = real.relative_to(home)
    if real.suffix == ".json" and is_saved(relative):
        files = _listed(real)
        folder = PurePath(OUTPUTS, relative.parent).as_posix()
        return bool(files) and all(str(PurePath(path).parent) == folder for path in files)
    if is_served(relative) and _PAGE.match(real.name):
        return GENERATOR in (_head(real, 4096) or b"")
    return False


def _head(path: Path, most: int) -> bytes | None:
    """The first ``most`` bytes of a regular file; None for anything else (a FIFO is never waited on, a folder of
    that name is not read)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(most)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """A sidecar's JSON object; None for anything else (not a regular file: a FIFO is never waited on; larger than
    ``SIDECAR_MOST``; not a JSON object)."""
    data = _head(path, SIDECAR_MOST + 1)
    try:
        body = json.loads(data) if data is not None and len(data) <= SIDECAR_MOST else None
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _listed(sidecar: Path) -> list[str]:
    """The paths a sidecar of kie-mcp's lists (``files[].path``); none for anything else."""
    body = read_sidecar(sidecar)
    files = body.get("files") if body is not None else None
    if not isinstance(files, list):
        return []
    return [f["path"] for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)]


def is_recorded(home: Path, real: Path) -> bool:
    """Whether ``real``, inside ``home`` (the folder a linked ``outputs/`` leads to), is a result kie-mcp saved there:
    in a session folder, and listed by the sidecar beside it (``<model>_<task>.json`` for a task's files,
    ``<name>.json`` for a joined video). A folder of the user's own that happens to be named by a date (a holiday's
    photos) is not lent."""
    relative = real.relative_to(home)
    if not is_saved(relative):
        return False
    listed = PurePath(OUTPUTS, relative).as_posix()
    sidecars = {real.with_name(f"{real.stem.rsplit('_', 1)[0]}.json"), real.with_suffix(".json")} - {real}
    return any(listed in _listed(sidecar) for sidecar in sidecars)


def linked_homes(workspaces: Iterable[Path]) -> list[Path]:
    """The real folders of the ``outputs/`` links among ``workspaces`` that are used (``refusal`` is None)."""
    found = []
    for workspace in workspaces:
        outputs = Path(workspace) / OUTPUTS
        try:
            if outputs.is_symlink() and refusal(outputs) is None and outputs.is_dir():
                found.append(outputs.resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    return found


def vouched_by(file_at: Callable[[str], Any], workspace: Path, path: Path, size: int) -> bool:
    """Whether the real ``path``, ``size`` bytes, is a result kie-mcp saved itself, by the journal's row of it
    (``file_at``: ``Journal.file_at``, the row of a path relative to the workspace): in the workspace's ``outputs/``
    (or the folder it links to) and recorded at that path with that size, as ``downloads.key_held`` judges a row (a
    file of another size since is another). The journal vouches for such a file, not its link count: a backup made
    with ``cp -al`` or a deduplicating tool gives it other names on disk (``inputs.open_judged``'s ``saved_here``).
    No row, or no journal to ask: not vouched for."""
    try:
        home = outputs_of(workspace).resolve()
        if not path.is_relative_to(home):
            return False
        row = file_at(PurePath(OUTPUTS, path.relative_to(home)).as_posix())
    except (*JOURNAL_ERRORS, RuntimeError):  # no journal to ask (unavailable, locked, damaged): nothing vouched for
        return False
    return row is not None and row["size"] == size


Kept = Literal["kept", "missing", "changed"]
_HASH_BLOCK = 1024 * 1024


def kept(path: Path, size: int, sha256: str | None = None) -> Kept:
    """Whether the result saved at ``path`` (``size`` bytes, ``sha256``, as the journal recorded it) is still the
    file saved: "missing" (nothing there, or no regular file: a folder, a FIFO), "changed" (another size; given
    ``sha256``, other bytes of that size), else "kept". The bytes are read only when ``sha256`` is given and the size
    matches: a video can be gigabytes, so a list compares sizes, and only a follow-up or a join about to use the file
    reads it (in a worker thread). A link in its place is "changed", never followed: it may lead to a file kie-mcp
    may not read."""
    try:
        found = os.lstat(path)
        if stat.S_ISLNK(found.st_mode):
            return "changed"
        if not stat.S_ISREG(found.st_mode):
            return "missing"
        if found.st_size != size:
            return "changed"
        if sha256 is None:
            return "kept"
        digest = hashlib.sha256()
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped since the lstat: never waited on
                return "changed"
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
    except OSError:  # ELOOP: a link swapped in since the lstat
        return "missing" if not os.path.lexists(path) else "changed"
    return "kept" if digest.hexdigest() == sha256 else "changed"


CHANGED = "changed since it was saved"


def changed_file(task_id: str, relative: str, edited: str) -> str:
    """What to say of task ``task_id``'s saved file at ``relative`` that changed since kie-mcp saved it, which is
    therefore not used as the task's result; ``edited``: how to use the changed copy instead."""
    return (
        f"Task {task_id}'s saved file {relative} has {CHANGED} (its size or bytes are not what kie-mcp saved), so it "
        f"is not used as the task's result. To use the original: delete or rename the changed "
        f"file, then call check_task(task_id='{task_id}'), which saves it again from KIE (its files are kept about "
        f"14 days). To use the changed copy: {edited}"
    )
