"""Which process wrote something: this machine's tag and a process id, so a later start can tell what a crashed
server left half done from what a live one (another server on the same workspace) is still doing."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import sys
from pathlib import Path


def _this_host() -> str:
    """What tells this machine's process ids from any other's: its name, and on Linux its boot and its PID namespace.
    Two containers on one host network (one name; each its own process 1), a sandbox, or two cloned machines of one
    name on shared storage see each other's process ids as missing: by the name alone, a live server there was taken
    for a crashed one, and a quote it was spending was released to another server, which spent it again."""
    facts = [socket.gethostname()]
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            facts.append(Path(source).read_text().strip() if "boot_id" in source else str(os.stat(source).st_ino))
        except OSError:  # not Linux, or hidden by a sandbox: the name alone, as before
            facts.append("")
    return hashlib.sha256("\0".join(facts).encode("utf-8", "replace")).hexdigest()[:8]


def _pids_told() -> bool:
    """Whether this machine's tag tells its process ids from those of another PID namespace beside it: off Linux
    there are none, and on Linux only when the namespace could be read (``_this_host``)."""
    if not sys.platform.startswith("linux"):
        return True
    try:
        os.stat("/proc/self/ns/pid")
    except OSError:
        return False
    return True


# This machine (this boot, this PID namespace), in a temporary file's name or a create attempt's owner: a workspace on
# shared storage may be written by servers on other machines (or containers), whose process ids mean nothing here.
HOST = _this_host()
# False where a sandbox hides the PID namespace: two containers of one name, each its own process 1, then share a
# tag, and another's live server would be taken for gone (``owner_gone`` cannot tell, and says so).
PIDS_TOLD = _pids_told()


# This run of this process: a process given the id an earlier one had (a container restarted in place is process 1
# again) tells that one's leftovers from its own by it.
RUN = secrets.token_hex(4)


def this_process() -> str:
    """``<host>-<pid>-<run>``: the owner tag of what this process writes."""
    return f"{HOST}-{os.getpid()}-{RUN}"


def alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (or cannot be ruled out: owned by another user)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill there terminates the process it names, whatever the signal
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no process id at all (a crafted name)
        return False
    except (PermissionError, OSError):
        return True  # it exists (owned by someone else) or we cannot tell: treat it as alive
    return True


def _alive_on_windows(pid: int) -> bool:
    """``alive`` on Windows: the process opened for a query of its exit code (never signalled). Untested here (no
    Windows in CI): anything unexpected reads as alive, which keeps what it owns."""
    import ctypes

    try:
        kernel = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel.GetLastError() != 87  # ERROR_INVALID_PARAMETER: no such process; access denied: it exists
        try:
            code = ctypes.c_ulong()
            if not kernel.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel.CloseHandle(handle)
    except Exception:  # ctypes missing, a changed API: cannot tell
        return True


def owner_gone(owner: str | None) -> bool | None:
    """For an owner tag (``this_process``): True when that process of this machine is gone, False when it runs,
    None when this machine cannot tell (another machine's, no tag, or one no kie-mcp wrote)."""
    host, _, rest = (owner or "").partition("/")[0].partition("-")  # a follower's tag adds /<its number>
    pid, _, run = rest.partition("-")  # older kie-mcp wrote no run
    if host != HOST or not (pid.isascii() and pid.isdigit()) or len(pid) > 20:  # "①" is a digit to isdigit
        return None
    if not PIDS_TOLD:  # its process id may be another PID namespace's: only this very process is told
        return False if (int(pid), run) == (os.getpid(), RUN) else None
    if int(pid) == os.getpid():
        return run != RUN  # this process id, another run: an earlier process, gone
    return not alive(int(pid))
