"""``logs/kie-api.jsonl``: one line per KIE call, to trace cost and history later.

Each line has the time, endpoint, model, task id, outcome, credits quoted, reserved (a create's share of what
its call counts against the caps: its price, or for a price not known before it runs, the ceiling) and charged,
latency and any error code and message; a create's lines also name its attempt, the journal's id of it (``attempt``:
``a_`` and 16 random hex digits, no secret), by which a restart finds the answer of a create the journal never got
(``Journal.found_in_call_log``). Request bodies are never written, so neither the key nor base64 payloads can end
up here, and every string value is redacted before it is written (an error message may echo the Authorization
header). Each line is written whole or not at all, so a full disk never leaves half a record for the next one to
run into: the server's errors point to this log as the copy of task ids the journal could not keep. A line of a
create that may have been charged (``created``, ``unknown``) is on the disk before the call goes on (``fsync``),
so an OS crash or a power loss right after cannot take it back; the other lines are left to the OS.

The log is kept to about twice ``ROTATE_BYTES``: a line that would take it past that first moves it to
``kie-api.1.jsonl`` (replacing the one before), under the lock every writer takes, so two kie-mcp processes never
both move it (one that waited for the lock finds the log moved, and appends its line to the moved file: no line is
lost). ``counted_since`` reads both, the way the log is written: only a regular file in a real ``logs/`` folder, opened
without following a link and without blocking (a FIFO put there would otherwise hold the server's start for good);
anything else there is ``UnreadableLog``, never taken as "nothing spent". ``logged_creates`` reads the ``created``
lines the same way: the copy of task ids a lost journal, or a create a full disk kept out of it, is mended from.

The log is only ever written inside the workspace: ``logs/`` must be a real folder (not a symbolic link, which a
cloned repository can carry) and the log a regular file in it with no other name, opened without following a link
(``O_NOFOLLOW``) and checked once open to be the file its path names. A log that leads anywhere else (``~/.bashrc``,
where a shell would run what upstream wrote into a line) is never written: the line is skipped, with one warning,
like any other write the log cannot make; the KIE call itself goes on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import stat
import threading
from collections.abc import Collection, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from kie_mcp.redact import redact, redact_value
from kie_mcp.regular import kind_of

log = logging.getLogger(__name__)


class CallLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._warned = False

    def write(self, **entry: Any) -> None:
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        line.update({k: redact_value(v) for k, v in entry.items() if v is not None})
        record = (json.dumps(line, ensure_ascii=False, default=_text) + "\n").encode("utf-8", "replace")
        with self._lock:
            try:
                if not os.path.lexists(self.path.parent):  # a link there (even a broken one) is judged, not made
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                _append_whole(self.path, record, durable=entry.get("outcome") in CHARGING)
            except OSError as err:  # a full disk, an unwritable workspace, a log leading outside: the call goes on
                if not self._warned:
                    reason = err.strerror if isinstance(err, LogOutside) else err
                    log.warning("cannot write the call log %s (%s); KIE calls go on without it", self.path, reason)
                    self._warned = True


CALL_LOG = Path("logs") / "kie-api.jsonl"  # in the workspace
ROTATE_BYTES = 32 * 1024 * 1024  # a log this large moves to kie-api.1.jsonl (about 100,000 calls)
CHARGING = ("created", "unknown")  # create outcomes that may have been charged


class UnreadableLog(OSError):
    """The call log (or its moved copy) is there but cannot be read as kie-mcp's log: a FIFO, a device, a folder, a
    symbolic link (to it or to ``logs/``), or a file this user may not read. What it says was spent is unknown."""


def spent_on(path: Path, day: date, *, most_bytes: int = 64 * 1024 * 1024) -> float:
    """What the creates of ``day`` (local time) that may have been charged (created, or with no clear answer) cost by
    the call log's last ``most_bytes`` (``counted_since`` from its midnight to the next, added up). No log is 0; a log
    that is there but cannot be read (``_tail``) is ``UnreadableLog``: the caller must not take it as nothing spent."""
    start = datetime.combine(day, datetime.min.time()).timestamp()
    end = datetime.combine(day + timedelta(days=1), datetime.min.time()).timestamp()
    return sum(entry.credits for entry in counted_since(path, start, end, most_bytes=most_bytes).values())


class Counted(NamedTuple):
    """What a create counts against the daily cap by the call log, and the moment it counts at (epoch seconds): when
    its create was answered."""

    at: float
    credits: float


def counted_since(
    path: Path,
    since: float,
    until: float = math.inf,
    *,
    most_bytes: int = 64 * 1024 * 1024,
    read: list[bytes] | None = None,
) -> dict[str, Counted]:
    """What each create answered from ``since`` on (epoch seconds; before ``until``) that may have been charged
    (created, or with no clear answer) cost by the call log's last ``most_bytes``, by task id (by line, for a create
    with no id), and when: its quoted price, or what KIE charged for it when a status answer of that time said more;
    while no charge is known, what it reserved when that is more (the ceiling of a price not known before it runs).
    Today's spend when the journal that counted it is lost (``since``: today's midnight; a line of a later day, the
    clock set back since, counts too). Lines that cannot be read are skipped; no log is none; a log that cannot be
    read is ``UnreadableLog``. ``read``: the log's lines read already (``read_lines``), read again otherwise."""
    quoted: dict[str, Counted] = {}  # by task id (or line, for a create with no id)
    reserved: dict[str, float] = {}
    charged: dict[str, float] = {}
    for number, line in enumerate(_lines(path, most_bytes, read=read)):
        when = _moment(line)
        if when is None or not since <= when < until:
            continue
        task = str(line.get("task_id") or f"line {number}")
        if line.get("outcome") in CHARGING:
            quoted[task] = Counted(when, _number(line.get("credits_quoted")) or 0.0)
            reserved[task] = _number(line.get("credits_reserved")) or 0.0
        if _number(line.get("credits_charged")) is not None:
            charged[task] = _number(line.get("credits_charged")) or 0.0
    return {
        task: Counted(at, max(credits, charged[task] if task in charged else reserved[task]))
        for task, (at, credits) in quoted.items()
    }


class LoggedCreate(NamedTuple):
    """A create KIE answered with a new task (a ``created`` line): when its answer came (epoch seconds), the endpoint
    and model it was sent to, the task, what it was quoted and reserved, and the journal's id of its attempt (None in
    a line an older kie-mcp wrote)."""

    at: float
    endpoint: str
    model: str
    task_id: str
    credits_quoted: float | None
    credits_reserved: float | None
    attempt: str | None = None


def logged_creates(
    path: Path, since: float, *, most_bytes: int = 64 * 1024 * 1024, read: list[bytes] | None = None
) -> list[LoggedCreate]:
    """The creates the call log's last ``most_bytes`` shows KIE answered with a task id at ``since`` or later, oldest
    first, each task once: the copy of task ids a journal that was lost, or could not take them, no longer has. Lines
    that cannot be read, or lack an endpoint, model or task id, are skipped; no log is none; a log that cannot be read
    is ``UnreadableLog``. ``read``: the log's lines read already (``read_lines``), read again otherwise."""
    found: dict[str, LoggedCreate] = {}
    for line in _lines(path, most_bytes, holding=b'"created"', read=read):
        when, task, endpoint, model = _moment(line), line.get("task_id"), line.get("endpoint"), line.get("model")
        if line.get("outcome") != "created" or when is None or when < since or task in found:
            continue
        if not all(isinstance(value, str) and value for value in (task, endpoint, model)):
            continue
        quoted, reserved = _number(line.get("credits_quoted")), _number(line.get("credits_reserved"))
        attempt = line.get("attempt") if isinstance(line.get("attempt"), str) and line.get("attempt") else None
        found[task] = LoggedCreate(when, endpoint, model, task, quoted, reserved, attempt)
    return sorted(found.values(), key=lambda create: create.at)


def refused_creates(
    path: Path,
    since: float,
    attempts: Collection[str],
    *,
    most_bytes: int = 64 * 1024 * 1024,
    read: list[bytes] | None = None,
) -> dict[str, str]:
    """Which of ``attempts`` the call log's last ``most_bytes`` shows ended unsent or refused, so that KIE created and
    charged nothing (``refused_finally``), by the last line naming each at ``since`` or later (a create's lines name
    its attempt, in the order they were written: a send KIE refused with 429 is followed by its resend's line); the
    error each line gives. No log is none; a log that cannot be read is ``UnreadableLog``. ``read``: the log's lines
    read already (``read_lines``), read again otherwise."""
    last: dict[str, dict[str, Any]] = {}
    for line in _lines(path, most_bytes, holding=b'"attempt"', read=read):
        attempt, when = line.get("attempt"), _moment(line)
        if isinstance(attempt, str) and attempt in attempts and when is not None and when >= since:
            last[attempt] = line
    return {attempt: str(line.get("error") or "") for attempt, line in last.items() if refused_finally(line)}


def refused_finally(line: dict[str, Any]) -> bool:
    """Whether a create's call-log ``line``, the last of its create, says KIE created and charged nothing, as the
    create's own call took it: never sent ("not sent": no connection, its turn given up, withdrawn), or refused with
    an answer that ends the create. A 429 is not one: the create is sent again after it (KIE's window), and that
    resend's line comes only with its answer, so a server that stopped meanwhile leaves a resend that may have been
    created; so is anything else (created, existing, unknown)."""
    if line.get("outcome") == "not sent":
        return True
    return line.get("outcome") == "refused" and line.get("code") != 429


def logged_task(path: Path, task_id: str, *, most_bytes: int = 1024 * 1024) -> bool:
    """Whether the call log's last ``most_bytes`` shows a create KIE answered with ``task_id``: a restart finds that
    task there when the journal could not take it (``Journal.recover_interrupted``). A log that cannot be read shows
    none."""
    try:
        return any(create.task_id == task_id for create in logged_creates(path, 0.0, most_bytes=most_bytes))
    except UnreadableLog:
        return False


def read_lines(path: Path, most_bytes: int = 64 * 1024 * 1024) -> list[bytes]:
    """The lines of the moved log and then this one, oldest first, each of their last ``most_bytes``, unparsed: read
    once for readers that look at the same log one after the other (``counted_since`` and ``logged_creates`` as a
    start takes up a lost journal; ``logged_creates`` and ``refused_creates`` for creates a stopped server was
    sending), each given them as ``read``. No log is none; a log that cannot be read is ``UnreadableLog``."""
    return _tail(rotated(path), most_bytes) + _tail(path, most_bytes)


def _lines(
    path: Path, most_bytes: int, holding: bytes = b"", read: list[bytes] | None = None
) -> Iterator[dict[str, Any]]:
    """The readable lines (JSON objects) of the moved log and then this one, oldest first, each of their last
    ``most_bytes`` (``read``: those lines read already); with ``holding``, only lines with those bytes in them (the
    rest are never parsed)."""
    for raw in read_lines(path, most_bytes) if read is None else read:
        if holding not in raw:
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            yield line


def _moment(line: dict[str, Any]) -> float | None:
    """A line's time, as epoch seconds; None when it has none that can be read, or none this machine's calendar can
    turn into a local date (``0001-01-01T00:00:00-14:00``, from a hand edit or a damaged file: read as a local date,
    it failed the whole start)."""
    try:
        moment = datetime.fromisoformat(line["time"]).timestamp()
        datetime.fromtimestamp(moment)
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return None
    return moment


def rotated(path: Path) -> Path:
    """Where the log moves once it is ``ROTATE_BYTES`` long: ``kie-api.1.jsonl`` beside it."""
    return path.with_name(f"{path.stem}.1{path.suffix}")


def _tail(path: Path, most_bytes: int) -> list[bytes]:
    """The lines of ``path``'s last ``most_bytes``; none when there is no log. Read as the log is written
    (``_open_inside``): a regular file in a real folder, opened without following a link and without blocking, so a
    FIFO put in its place (by hand, or by whoever can write the workspace) never holds the reader for good. Anything
    else there is ``UnreadableLog``."""
    try:
        _real_folder(path.parent)
    except LogOutside as err:
        if err.errno == errno.ENOENT:  # no logs/ folder: no call was ever logged here
            return []
        raise UnreadableLog(err.errno, err.strerror) from None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        if _is_link(path):  # where O_NOFOLLOW is 0 (Windows); elsewhere the open refuses it too
            raise UnreadableLog(errno.ELOOP, f"{path.name} is a symbolic link")
        fd = os.open(path, flags)
    except FileNotFoundError:
        return []
    except UnreadableLog:
        raise
    except OSError as err:
        why = f"{path.name} is a symbolic link" if err.errno == errno.ELOOP else f"{path.name}: {err.strerror}"
        raise UnreadableLog(err.errno, why) from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode):
        os.close(fd)
        raise UnreadableLog(errno.EINVAL, f"{path.name} is not a regular file ({kind_of(found.st_mode)})")
    with os.fdopen(fd, "rb") as handle:
        try:
            handle.seek(max(found.st_size - most_bytes, 0))
            return handle.read().splitlines()
        except OSError as err:
            raise UnreadableLog(err.errno, f"{path.name}: {err.strerror}") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _append_whole(path: Path, record: bytes, *, durable: bool = False) -> None:
    """Append one line, whole or not at all: a single write on an O_APPEND descriptor, and after a short write or
    an error (a full disk) the file is cut back to its size before it. A line an earlier crash left unfinished is
    ended first, so the new record starts a line of its own and stays readable. ``durable``: the line is on the disk
    before this returns (``_sync``)."""
    fd, readable = _open_inside(path)
    moved = False
    try:
        _lock(fd)  # another kie-mcp on the workspace appends between our size and our cut: it waits instead
        size = os.fstat(fd).st_size
        if size + len(record) > ROTATE_BYTES and _still_named(path, fd):
            with contextlib.suppress(OSError):  # cannot be moved (a folder in the way): it grows on, no line lost
                os.replace(path, rotated(path))  # this line still goes to this (moved) file; the next starts a new one
                moved = True
        if size and readable and not _ends_a_line(fd, size):
            record = b"\n" + record
        written = 0
        try:
            written = os.write(fd, record)
            if written != len(record):
                raise OSError(errno.ENOSPC, f"only {written} of {len(record)} bytes could be written")
        except OSError:
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_size == size + written:  # only our own bytes since: cut them off
                    os.ftruncate(fd, size)  # no half line left for the next record to run into
                elif written:  # someone else wrote too (no lock on this system): end our half line instead
                    os.write(fd, b"\n")
            raise
        if durable:
            _sync(fd, path.parent if moved or not size else None)
    finally:
        os.close(fd)  # releases the lock


def _sync(fd: int, folder: Path | None) -> None:
    """Put the log's data on the disk (``fsync``), and ``folder``'s entries too when the log was just made or moved
    (its name is then only in the folder's pages). A sync the system refuses leaves the line written all the same."""
    try:
        os.fsync(fd)
    except OSError as err:
        log.debug("the call log could not be synced to the disk: %s", err)
    if folder is None or not hasattr(os, "O_DIRECTORY"):  # Windows: folders cannot be opened to sync
        return
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError as err:
        log.debug("the call log's folder could not be synced to the disk: %s", err)
    finally:
        os.close(handle)


def _still_named(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the open log (another kie-mcp may have moved it while this one waited for its
    lock: then it is not moved again)."""
    try:
        named, opened = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


class LogOutside(OSError):
    """The call log's path leads out of its folder (a symbolic link, a hard link, not a regular file): never written."""


def _open_inside(path: Path) -> tuple[int, bool]:
    """The call log opened to append (and to read, when allowed), only when it is a regular file with no other name in
    a real folder: neither the file nor ``logs/`` is a symbolic link (checked without following them, and again once
    the file is open, so a link swapped in between is caught), and the file is not a FIFO (opened without blocking).
    ``LogOutside`` otherwise. Windows has no ``O_NOFOLLOW``: there the checks before and after the open hold."""
    folder = path.parent
    _real_folder(folder)
    if _is_link(path):  # where O_NOFOLLOW is 0 (Windows); elsewhere the open refuses it too
        raise LogOutside(errno.ELOOP, f"{path.name} is a symbolic link, which kie-mcp never writes through")
    nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO never blocks the open
    flags = os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0) | nofollow
    try:
        try:
            fd, readable = os.open(path, flags | os.O_RDWR, 0o666), True
        except PermissionError:  # a log one may append to but not read: appended to all the same
            fd, readable = os.open(path, flags | os.O_WRONLY, 0o666), False
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        linked = LogOutside(errno.ELOOP, f"{path.name} is a symbolic link, which kie-mcp never writes through")
        raise linked from None  # O_NOFOLLOW met a link swapped in since the check
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise LogOutside(errno.EINVAL, f"{path.name} is not a regular file")
        if opened.st_nlink > 1:  # a hard link: the same file has a name outside logs/ too
            raise LogOutside(errno.EMLINK, f"{path.name} has other names (a hard link), which kie-mcp never writes to")
        _real_folder(folder)  # logs/ swapped for a link while the file was opened
        named = os.lstat(path)
        if (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
            raise LogOutside(errno.EINVAL, f"{path.name} was replaced while it was opened")
    except BaseException:
        os.close(fd)
        raise
    return fd, readable


def _real_folder(folder: Path) -> None:
    """``LogOutside`` unless ``folder`` is a real folder, judged without following a link."""
    try:
        found = os.lstat(folder)
    except FileNotFoundError:
        raise LogOutside(errno.ENOENT, f"{folder.name}/ is not there any more") from None
    if stat.S_ISLNK(found.st_mode):
        raise LogOutside(errno.ELOOP, f"{folder.name}/ is a symbolic link, which kie-mcp never writes through")
    if not stat.S_ISDIR(found.st_mode):
        raise LogOutside(errno.ENOTDIR, f"{folder.name}/ is not a folder")


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _lock(fd: int) -> None:
    """An exclusive lock on the call log while a line is appended (POSIX; elsewhere the cut checks its size)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX)


def _ends_a_line(fd: int, size: int) -> bool:
    os.lseek(fd, size - 1, os.SEEK_SET)  # reads only: O_APPEND writes go to the end wherever the offset is
    return os.read(fd, 1) == b"\n"


def _text(value: object) -> str:
    """What JSON cannot hold as it is, as redacted text."""
    return redact(str(value))
