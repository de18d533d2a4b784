"""Client-side pacing so KIE's documented limits are never the thing that says no."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio


class SlidingWindow:
    """At most ``limit`` acquisitions in any ``window`` seconds; waiters are served in order."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = anyio.Lock()

    async def acquire(self) -> float:
        """Wait for a slot; return how long we waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self._clock()
                while self._stamps and now - self._stamps[0] >= self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return waited
                delay = self.window - (now - self._stamps[0])
                waited += delay
                await self._sleep(delay)
