"""Run at the start of every child Python process the tests launch (conftest puts this folder on PYTHONPATH, and the
tests pass PYTHONPATH on): pins the day the bundled prices' ages are counted on (``kie_mcp.generation.price_day``)
to ``PRICE_DAY``, as conftest's ``pinned_price_day`` fixture does in process. kie-mcp is not imported here: the day
is set as kie-mcp's own import of that module finishes, so a child that never imports it pays nothing.

A child given ``CLOCK_SHIFT`` in its environment (seconds) lives that much later (earlier, below 0) by ``time.time``,
what kie-mcp's clocks read: two servers run at once then act as if hours apart (one taking its turn at the daily cap
hours before the other), with no wait for a real midnight. The computer's clock and every other child are untouched."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from collections.abc import Sequence
from datetime import date
from types import ModuleType

# The tests' day: a price from June is "over 180 days old, never auto-approved" from December on, so a test that
# auto-approved it passed one day and failed the next. Pinned, the tests' verdicts on the bundled prices are those of
# this day whatever the calendar says; the tests of the age rules move the limits themselves (test_promise_old_prices).
PRICE_DAY = date(2026, 12, 6)
PINNED = "kie_mcp.generation"


class PinnedPriceDay(importlib.abc.MetaPathFinder):
    """Finds ``kie_mcp.generation`` as Python would, and sets its ``price_day`` once the module has run."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != PINNED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            module.price_day = lambda: PRICE_DAY

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, PinnedPriceDay())


CLOCK_SHIFT = "KIE_TEST_CLOCK_SHIFT"
if shift := float(os.environ.get(CLOCK_SHIFT) or 0):
    _real_time = time.time
    time.time = lambda: _real_time() + shift
