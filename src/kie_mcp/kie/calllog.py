"""``logs/kie-api.jsonl``: one line per KIE call, to trace cost and history later.

Each line has the time, endpoint, model, task id, outcome, credits quoted and charged, latency and any error
code and message. Request bodies are never written, so neither the key nor base64 payloads can end up here, and
every string value is redacted before it is written (an error message may echo the Authorization header). Each
line is written whole or not at all, so a full disk never leaves half a record for the next one to run into: the
server's errors point to this log as the copy of task ids the journal could not keep.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kie_mcp.redact import redact, redact_value

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
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _append_whole(self.path, record)
            except OSError as err:  # a full disk or an unwritable workspace must not turn a paid answer into an error
                if not self._warned:
                    log.warning("cannot write the call log %s (%s); KIE calls go on without it", self.path, err)
                    self._warned = True


def _append_whole(path: Path, record: bytes) -> None:
    """Append one line, whole or not at all: a single write on an O_APPEND descriptor, and after a short write or
    an error (a full disk) the file is cut back to its size before it. A line an earlier crash left unfinished is
    ended first, so the new record starts a line of its own and stays readable."""
    flags = os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
    try:
        fd, readable = os.open(path, flags | os.O_RDWR, 0o666), True
    except PermissionError:  # a log one may append to but not read: appended to all the same
        fd, readable = os.open(path, flags | os.O_WRONLY, 0o666), False
    try:
        _lock(fd)  # another kie-mcp on the workspace appends between our size and our cut: it waits instead
        size = os.fstat(fd).st_size
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
    finally:
        os.close(fd)  # releases the lock


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
