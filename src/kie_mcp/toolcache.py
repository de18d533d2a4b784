"""The tool listing, kept between starts so a start does not rebuild what the last one already built.

Building a tool in the SDK (its argument model and its input and output JSON Schemas, from the function's
signature) is most of what a start costs beyond importing: ten tools, about 60 ms on a small machine, paid again
by every start for a listing that only changes when the code or the libraries change. The first ``tools/list`` in
a workspace builds every tool as before and keeps the listing in ``.kie-mcp/tools.json``; later starts answer
``tools/list`` from it and build each tool only when it is first called (its arguments are then checked by the
model the SDK builds from the code, never by anything read from the file).

The kept listing carries a fingerprint of everything it was built from (kie-mcp's version and source files, the
``mcp``, ``pydantic`` and ``pydantic-core`` versions, the Python version); a listing with another fingerprint,
another set of tools or anything unreadable is ignored and rebuilt. It holds only the public listing (names,
descriptions, schemas): nothing secret, nothing from a user.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
from importlib import metadata
from pathlib import Path

from mcp.types import Tool as MCPTool

from kie_mcp.media.downloads import write_bytes_atomic

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what is kept changes shape
_PACKAGE = Path(__file__).resolve().parent
_LIBRARIES = ("mcp", "pydantic", "pydantic-core")
MAX_BYTES = 1_000_000  # a listing is about 45 KB; anything far bigger is not ours


def cache_path(workspace: Path) -> Path:
    """Where a workspace keeps its tool listing (beside its journal)."""
    return workspace / ".kie-mcp" / "tools.json"


@functools.cache
def fingerprint() -> str | None:
    """What a kept listing must have been built from to be used: kie-mcp's version and the name, size and
    modification time of each of its source files (every ``.py`` of the package, so a tool's signature,
    descriptions and result models are all covered; an edit changes the time, a release the version), and the
    ``mcp`` (which pins ``mcp-types``), ``pydantic``, ``pydantic-core`` and Python versions. Reading the file
    times instead of the files keeps this under a millisecond. None when the sources cannot be found (then
    nothing is kept or read)."""
    import pydantic
    import pydantic_core

    from kie_mcp import __version__

    parts = [str(FORMAT), __version__, f"{sys.version_info[:2]}", pydantic.VERSION, pydantic_core.__version__]
    try:
        parts.append(metadata.version("mcp"))
        sources = []
        for folder, subfolders, names in os.walk(_PACKAGE):
            subfolders[:] = [sub for sub in subfolders if sub != "__pycache__"]
            for name in names:
                if name.endswith(".py"):
                    stat = os.stat(os.path.join(folder, name))
                    sources.append(f"{os.path.relpath(folder, _PACKAGE)}/{name}:{stat.st_size}:{stat.st_mtime_ns}")
    except (OSError, metadata.PackageNotFoundError):
        return None
    if not sources:  # no source file found (e.g. imported from a zip): nothing to stamp a listing with
        return None
    return hashlib.sha256("|".join(parts + sorted(sources)).encode()).hexdigest()


def read(path: Path | None, names: list[str]) -> list[MCPTool] | None:
    """The kept listing of exactly the tools ``names`` (in that order), or None when there is none to trust."""
    stamp = fingerprint()
    if path is None or stamp is None:
        return None
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            return None
        kept = json.loads(raw)
        if not isinstance(kept, dict) or kept.get("fingerprint") != stamp:
            return None
        tools = [MCPTool.model_validate(item) for item in kept["tools"]]
    except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable, not JSON, not a listing
        return None
    if [tool.name for tool in tools] != names:
        return None
    return tools


def write(path: Path | None, tools: list[MCPTool]) -> None:
    """Keep ``tools`` for the next start. Best effort: a workspace that cannot be written (read-only, full) only
    means the next start builds the tools again."""
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
        write_bytes_atomic(path, json.dumps(body, ensure_ascii=False).encode("utf-8"), durable=False)
    except OSError as err:
        log.debug("could not keep the tool listing in %s (%s); the next start builds it again", path, err)
