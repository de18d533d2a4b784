"""Reading a small file kie-mcp does not own outright (a ``.env``, a sidecar, a join's claim) without ever waiting.

A workspace is not kie-mcp's alone: anything that can write in it can put a named pipe (FIFO) or a link to a device
where a file is read. ``open()`` of a FIFO waits for a writer for good (a ``.env`` that was one held the server
before it answered ``initialize``); ``/dev/zero`` never ends. Here a path is opened without waiting
(``O_NONBLOCK``), judged by the opened descriptor (``fstat``: never a second look by name, which a swap could
pass), and only a regular file is read, at most a bound. ``inputs.open_judged`` (uploads, resources) opens the same
way, refusing links too.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

# Flags every judged open uses: read only, never wait (a FIFO with no writer opens at once), binary on Windows.
READ_NOW = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


class NotRegular(OSError):
    """A path that names something other than a regular file (a FIFO, a device, a socket, a folder): never read.
    ``what`` says which, in words ("a named pipe (FIFO)"); ``mode`` is its ``st_mode``."""

    def __init__(self, path: Path, mode: int) -> None:
        self.what = kind_of(mode)
        super().__init__(f"{path} is {self.what}, not a file")
        self.path = path
        self.mode = mode

    @property
    def is_folder(self) -> bool:
        return stat.S_ISDIR(self.mode)


class TooLong(OSError):
    """A regular file larger than the bound it is read to; ``most`` is that bound in bytes."""

    def __init__(self, path: Path, most: int) -> None:
        super().__init__(f"{path} is larger than {_size(most)}, more than such a file ever holds")
        self.path = path
        self.most = most


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words, for a refusal."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def open_regular(path: Path, *, follow: bool = True) -> io.BufferedReader:
    """``path`` opened for reading without waiting, when the opened file is a regular file; ``NotRegular`` (a FIFO,
    a device, a socket, a folder) otherwise, judged on the descriptor. ``follow``: a symbolic link is followed (a
    ``.env`` linked from a dotfiles folder) and its target judged; without it, a link is ``OSError`` ``ELOOP``.
    Other ``OSError`` (no file, no permission) as ``os.open`` raises it."""
    fd = os.open(path, READ_NOW | (0 if follow else getattr(os, "O_NOFOLLOW", 0)))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(path, mode)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular(path: Path, most: int, *, follow: bool = True) -> bytes:
    """The bytes of the regular file at ``path`` (``open_regular``), read from that one open file; ``TooLong`` when
    it holds more than ``most`` bytes (never read past ``most + 1``)."""
    with open_regular(path, follow=follow) as handle:
        data = handle.read(most + 1)
    if len(data) > most:
        raise TooLong(path, most)
    return data


def _size(most: int) -> str:
    if most >= 1 << 20:
        return f"{most / (1 << 20):g} MiB"
    if most >= 1 << 10:
        return f"{most / (1 << 10):g} KiB"
    return f"{most} bytes"
