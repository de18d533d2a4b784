"""Values worked out from a catalogue and a live price list, kept while both are the very same objects.

A catalogue and a live list are replaced, never changed, when a sync (or another server's cache, or a create KIE
refused as not published) brings other models or prices: whatever was worked out from a pair holds until one of them
is replaced. The model tables (``tables``: some 0.1 s a render) and what a workflow's argument takes (``completions``:
tens of milliseconds, asked again on every key a user types) are kept so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class KeptPerOffer(Generic[Value]):
    """At most ``most`` values, each by its catalogue, live list and key, the oldest let go first. Safe from worker
    threads (the lock guards the bookkeeping only: two threads may work out the same value side by side)."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._kept: dict[tuple[int, int, Hashable], tuple[object, object, Value]] = {}
        self._lock = threading.Lock()

    def get(self, catalog: object, live: object, key: Hashable, work_out: Callable[[], Value]) -> Value:
        """The value kept for ``key`` with this very ``catalog`` and ``live`` list, else ``work_out()``, kept."""
        slot = (id(catalog), id(live), key)
        with self._lock:
            kept = self._kept.get(slot)
        if kept is not None and kept[0] is catalog and kept[1] is live:
            return kept[2]
        value = work_out()
        with self._lock:
            if slot not in self._kept and len(self._kept) >= self._most:
                del self._kept[next(iter(self._kept))]  # the oldest kept
            self._kept[slot] = (catalog, live, value)
        return value

    def clear(self) -> None:
        """Let every kept value go (``bench/bench_model_tables.py``: every read renders, as before they were kept)."""
        with self._lock:
            self._kept.clear()
