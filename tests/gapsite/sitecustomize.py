"""Run at the start of one child kie-mcp a test starts with this folder first on PYTHONPATH (a test-only hook, never
shipped): pauses that server in the spend gate's check-then-use gap, so a test can have another server act there
at a moment it chooses, the same on every machine. The gap: the gate has read that the call's quote is unused and
has not yet looked whether the same request was sent since the quote was issued (``sent_since_quoted``).

``KIE_TEST_GAP``: a folder. The ``KIE_TEST_GAP_AT``-th look of the process (1: the gate's, ``decide_approval``; 2:
the one as the approval is used, ``use_approval``) writes ``paused`` there and waits (up to ``HELD`` seconds) until
the test writes ``go``. ``KIE_TEST_GAP_IN``: another function of ``kie_mcp.generation`` to hold so instead (its
``KIE_TEST_GAP_AT``-th call): ``delivered``, as a tool's answer is handed over. Python runs only the first
``sitecustomize`` on its path, so the tests' own (``childsite/sitecustomize.py``: the pinned price day) is run from
here first."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HELD = 30.0
PAUSED = "kie_mcp.generation"

_own = importlib.util.spec_from_file_location(
    "_childsite", Path(__file__).parent.parent / "childsite" / "sitecustomize.py"
)
assert _own is not None and _own.loader is not None
_own.loader.exec_module(importlib.util.module_from_spec(_own))


def paused(look: Callable[..., Any], gap: Path, at: int) -> Callable[..., Any]:
    """``look`` (``sent_since_quoted``, or the function ``KIE_TEST_GAP_IN`` names), its ``at``-th call held until the
    test says go."""
    calls = 0

    def held(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == at:
            (gap / "paused").touch()
            deadline = time.monotonic() + HELD
            while not (gap / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)  # the whole server waits here, as a slow journal read would hold it
        return look(*args, **kwargs)

    return held


class PausedGate(importlib.abc.MetaPathFinder):
    """Finds ``kie_mcp.generation`` as the finders after it would (the tests' own pins its price day), and holds its
    ``sent_since_quoted`` (or the function ``KIE_TEST_GAP_IN`` names) once the module has run."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != PAUSED:
            return None
        spec = None
        for finder in sys.meta_path[sys.meta_path.index(self) + 1 :]:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            name = os.environ.get("KIE_TEST_GAP_IN") or "sent_since_quoted"
            gap, at = Path(os.environ["KIE_TEST_GAP"]), int(os.environ["KIE_TEST_GAP_AT"])
            setattr(module, name, paused(getattr(module, name), gap, at))

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if os.environ.get("KIE_TEST_GAP"):
    sys.meta_path.insert(0, PausedGate())
