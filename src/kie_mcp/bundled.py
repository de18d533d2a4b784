"""Files shipped with kie-mcp: the prompt library and the workspace templates.

In a wheel they live in ``kie_mcp/_bundled``; in a source checkout they are read from the repo root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CANDIDATES = (_PACKAGE / "_bundled", _PACKAGE.parent.parent)


def bundled_path(name: str) -> Path | None:
    """The shipped file or folder ``name`` (e.g. ``prompting``), or None if this install lacks it."""
    for root in _CANDIDATES:
        candidate = root / name
        if candidate.exists():
            return candidate
    return None
