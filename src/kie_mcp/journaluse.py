"""Which servers have the workspace journal open: each holds a shared lock on ``.kie-mcp/journal.lock`` for as long
as it does, and moving a damaged journal aside takes that lock exclusively. A journal another server still writes
into is never moved (its tasks and spend would go on into the moved file, which nobody reads: the workspace's
record split in two, the daily cap counted in neither whole).

The lock is POSIX ``flock``: held by an open file (two servers in one process exclude each other too), given up by
the system when the process ends, however it ends. The lock file is opened without following a link. Where it
cannot be had (no ``flock``, as on Windows; a workspace that cannot hold the file, such as a read-only one), no
lock is held: on Windows, the system itself refuses to move a journal another process has open."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "journal.lock"
TRY_EVERY = 0.05  # seconds between two tries at a lock another server holds


class ShareRefused(OSError):
    """The shared lock stayed refused: another server has held it exclusively (moving a damaged journal aside) for
    longer than the open waits."""


class JournalUse:
    """This server's claim on the workspace journal: a shared lock while it has the journal open."""

    def __init__(self, fd: int | None, problem: OSError | None = None) -> None:
        self._fd = fd
        self.problem = problem  # why no lock could be held (the file could not be made or opened), else None

    @property
    def locks(self) -> bool:
        """Whether this system and workspace lock at all (``flock``, and a lock file)."""
        return self._fd is not None

    @classmethod
    def take(cls, folder: Path, wait: float) -> JournalUse:
        """Open ``folder``/journal.lock (made when missing) and hold it shared, waiting up to ``wait`` seconds while
        another server moves a damaged journal aside. Raises ``ShareRefused`` when that lasts longer."""
        if fcntl is None:
            return cls(None)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = _open(folder / LOCK_FILE)
        except OSError as err:  # the journal's open meets the same problem and names it
            return cls(None, err)
        use = cls(fd)
        try:
            shared = use._until(fcntl.LOCK_SH, wait)
        except OSError as err:  # a file system that cannot lock (ENOLCK): as one without locks
            use.release()
            return cls(None, err)
        if not shared:
            use.release()
            raise ShareRefused("another kie-mcp process is moving the damaged journal aside")
        return use

    def exclusive(self, wait: float, gave_up: Callable[[], bool]) -> bool:
        """Hold the lock alone: no other server has the journal open. The shared lock is let go first (two servers
        both waiting to be alone, each holding it shared, would wait for each other); tried until ``wait`` seconds
        have passed or ``gave_up()`` says there is no point (the journal was replaced meanwhile). True when held
        alone (always where there are no locks); else no lock is held, and the claim is to be released."""
        if self._fd is None or fcntl is None:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return self._until(fcntl.LOCK_EX, wait, gave_up)

    def shared(self) -> None:
        """From holding it alone back to sharing it (the damaged journal is moved, the fresh one open)."""
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # and with it the lock
            self._fd = None

    def _until(self, how: int, wait: float, gave_up: Callable[[], bool] = lambda: False) -> bool:
        assert self._fd is not None
        assert fcntl is not None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._fd, how | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline or gave_up():
                    return False
            time.sleep(TRY_EVERY)


def _open(path: Path) -> int:
    """The lock file, opened (made when missing) without following a link; read-only when it may not be written
    (a lock needs no more)."""
    flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, os.O_RDWR | flags, 0o644)
    except PermissionError:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))


def identity(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` (its device and inode), None when none is: a journal moved aside and replaced since
    it was checked is told from the one that failed the check."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
