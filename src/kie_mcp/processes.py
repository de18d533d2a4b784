"""Which process wrote something: this machine's tag and a process id, so a later start can tell what a crashed
server left half done from what a live one (another server on the same workspace) is still doing."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket

# This machine, in a temporary file's name or a create attempt's owner: a workspace on shared storage may be written
# by servers on other machines (or containers), whose process ids mean nothing here.
HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


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
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no process id at all (a crafted name)
        return False
    except (PermissionError, OSError):
        return True  # it exists (owned by someone else) or we cannot tell: treat it as alive
    return True


def owner_gone(owner: str | None) -> bool | None:
    """For an owner tag (``this_process``): True when that process of this machine is gone, False when it runs,
    None when this machine cannot tell (another machine's, or no tag)."""
    host, _, rest = (owner or "").partition("/")[0].partition("-")  # a follower's tag adds /<its number>
    pid, _, run = rest.partition("-")  # older kie-mcp wrote no run
    if host != HOST or not pid.isdigit():
        return None
    if int(pid) == os.getpid():
        return run != RUN  # this process id, another run: an earlier process, gone
    return not alive(int(pid))
