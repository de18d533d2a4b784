"""The tool listing, kept between starts so a start does not rebuild what the last one already built.

Building a tool in the SDK (its argument model and its input and output JSON Schemas, from the function's
signature) is most of what a start costs beyond importing: ten tools, about 60 ms on a small machine, paid again
by every start for a listing that only changes when the code or the libraries change. The first ``tools/list`` of
this code builds every tool as before and keeps the listing in the user's cache folder (``cache_folder``); later
starts answer ``tools/list`` from it and build each tool only when it is first called (its arguments are then
checked by the model the SDK builds from the code, never by anything read from the file).

The listing is kept per user, not in the workspace: an agent that can write the project's files cannot rewrite the
descriptions, hints or output schemas other sessions are shown. Its file is named after a fingerprint of
everything it was built from (kie-mcp's version and source files, the ``mcp``, ``pydantic`` and ``pydantic-core``
versions, the Python version and optimisation level), which it also carries; a listing with another fingerprint,
another set of tools or anything unreadable is ignored and rebuilt. It holds only the public listing (names,
descriptions, schemas): nothing secret, nothing from a user.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import stat
import sys
from importlib import metadata
from pathlib import Path

from mcp.types import Tool as MCPTool

log = logging.getLogger(__name__)

FORMAT = 2  # bump when what is kept changes shape
_PACKAGE = Path(__file__).resolve().parent
MAX_BYTES = 1_000_000  # a listing is about 45 KB; anything far bigger is not ours
KEPT_LISTINGS = 4  # listings of other code states kept beside the current one (several installs share the folder)
_CLAMPED_MTIME = 946_684_800  # 2000-01-01: a file time before it was set by a build, not by an edit (Nix: 1)


def cache_folder() -> Path | None:
    """The user's cache folder for kie-mcp (the kept listing here, the shared pacing in ``kie.pacing``):
    ``KIE_CACHE_DIR`` when it is set and usable (``cache_setting_note``), else the default folder."""
    chosen, _ = _cache_setting()
    return chosen if chosen is not None else _default_folder()


def cache_setting_note() -> str | None:
    """What the start-up log says of a KIE_CACHE_DIR that cannot be used (and the folder used instead); None when it
    is not set or is usable. Only a note: the cache makes starts faster and lets servers share KIE's request limits,
    nothing that is wrong without it."""
    _, problem = _cache_setting()
    if problem is None:
        return None
    default = _default_folder()
    instead = (
        f"the default cache folder ({default}) is used instead"
        if default is not None
        else "nothing is kept, as there is no home folder for the default cache folder"
    )
    return (
        f"{problem} Meanwhile {instead}. It only holds what makes kie-mcp start faster and what lets the servers on "
        "one key share KIE's request limits."
    )


def _cache_setting() -> tuple[Path | None, str | None]:
    """KIE_CACHE_DIR as a folder, or what is wrong with it (then no folder); neither when it is not set (a blank
    value counts as not set, as for every setting)."""
    chosen = os.environ.get("KIE_CACHE_DIR", "").strip()
    if not chosen:
        return None, None
    from kie_mcp.config import folder_setting_problem  # as KIE_WORKSPACE is checked: quotes, placeholders, relative

    problem = folder_setting_problem("KIE_CACHE_DIR", chosen)
    return (None, problem) if problem else (Path(chosen).expanduser(), None)


def _default_folder() -> Path | None:
    """``$XDG_CACHE_HOME/kie-mcp`` (``~/.cache/kie-mcp``), on macOS ``~/Library/Caches/kie-mcp``, on Windows
    ``%LOCALAPPDATA%\\kie-mcp\\Cache``. None when it would be in a home folder there is none of (HOME unset, a user
    the system does not know): then nothing is kept, and every start builds the listing."""
    try:
        if sys.platform == "win32":
            base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
            return base / "kie-mcp" / "Cache"
        if sys.platform == "darwin":
            return Path.home() / "Library" / "Caches" / "kie-mcp"
        chosen = os.environ.get("XDG_CACHE_HOME", "")  # an empty or relative one is ignored, as the XDG spec says
        return (Path(chosen) if Path(chosen).is_absolute() else Path.home() / ".cache") / "kie-mcp"
    except RuntimeError:  # "Could not determine home directory"
        return None


def listing_path() -> Path | None:
    """Where the listing of this code is kept (None when the code cannot be fingerprinted, or there is no cache
    folder)."""
    stamp, folder = fingerprint(), cache_folder()
    return None if stamp is None or folder is None else folder / f"tools-{stamp[:32]}.json"


@functools.cache
def fingerprint() -> str | None:
    """What a kept listing must have been built from to be used: kie-mcp's version; the name, size and
    modification time of each of its source files (every ``.py`` of the package, so a tool's signature,
    descriptions and result models are all covered; an edit changes the time, a release the version), or their
    contents when a build has clamped the times; the ``mcp`` (which pins ``mcp-types``), ``pydantic``,
    ``pydantic-core`` and Python versions; and the optimisation level (``-OO`` drops the docstrings that are the
    tools' descriptions). None when the sources cannot be found (then nothing is kept or read)."""
    import pydantic
    import pydantic_core

    from kie_mcp import __version__

    parts = [str(FORMAT), __version__, f"{sys.version_info[:2]}", f"O{sys.flags.optimize}"]
    parts += [pydantic.VERSION, pydantic_core.__version__]
    try:
        parts.append(metadata.version("mcp"))
        sources: list[tuple[str, os.stat_result]] = []
        for folder, subfolders, names in os.walk(_PACKAGE):
            subfolders[:] = [sub for sub in subfolders if sub != "__pycache__"]
            sources += [
                (os.path.join(folder, name), os.stat(os.path.join(folder, name)))
                for name in names
                if name.endswith(".py")
            ]
        if not sources:  # no source file found (e.g. imported from a zip): nothing to stamp a listing with
            return None
        clamped = any(found.st_mtime < _CLAMPED_MTIME for _, found in sources)
        for path, found in sorted(sources):
            name = os.path.relpath(path, _PACKAGE)
            if clamped:  # the times say nothing: the contents do
                parts.append(f"{name}:{hashlib.sha256(Path(path).read_bytes()).hexdigest()}")
            else:
                parts.append(f"{name}:{found.st_size}:{found.st_mtime_ns}")
    except (OSError, metadata.PackageNotFoundError):
        return None
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def read(path: Path | None, names: list[str]) -> list[MCPTool] | None:
    """The kept listing of exactly the tools ``names`` (in that order), or None when there is none to trust."""
    stamp = fingerprint()
    if path is None or stamp is None:
        return None
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a folder, a FIFO (opening one would block the server)
            return None
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            return None
        kept = json.loads(raw)
        if not isinstance(kept, dict) or kept.get("fingerprint") != stamp:
            return None
        tools = [MCPTool.model_validate(item) for item in kept["tools"]]
    except Exception:  # missing, unreadable, not JSON, nested too deep, not a listing: build it again
        return None
    if [tool.name for tool in tools] != names:
        return None
    return tools


def write(path: Path | None, tools: list[MCPTool]) -> None:
    """Keep ``tools`` for the next start, and drop all but the newest few listings of other code states. Best
    effort: a cache folder that cannot be written (read-only, full) only means the next start builds again."""
    stamp = fingerprint()
    if path is None or stamp is None:
        return
    body = {
        "fingerprint": stamp,
        "note": "kie-mcp's tool listing, kept to start faster; safe to delete (rebuilt on the next start).",
        "tools": [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from kie_mcp.media.downloads import write_bytes_atomic  # only the first start of a kie-mcp writes one

        write_bytes_atomic(path, json.dumps(body, ensure_ascii=False).encode("utf-8"), durable=False)
        others = sorted(
            (p for p in path.parent.glob("tools-*.json") if p != path), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for old in others[KEPT_LISTINGS:]:
            old.unlink(missing_ok=True)
    except OSError as err:
        log.debug("could not keep the tool listing in %s (%s); the next start builds it again", path, err)
