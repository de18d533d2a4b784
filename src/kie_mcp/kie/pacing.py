"""Client-side pacing so KIE's documented limits are never the thing that says no.

KIE allows 20 creates per 10 seconds per account and counts a create when it ARRIVES, which we never see: we
only know that it arrived after we sent it and before its answer came back. So a create holds a place in the
window (a *slot*) from before it is sent until its answer, and the window is measured from the answer plus a
safety margin, never from the moment the slot was granted. See ``SlidingWindow`` for the invariant this buys.

The windows are this process's own. Several kie-mcp servers on one key (two clients side by side on a workspace)
each pace themselves and know nothing of the others' creates, so together they can exceed KIE's limit: KIE's 429s
then pace them (a refused create is not counted, every new slot waits for the window's edge, ``Slot.rate_limited``,
and the create is sent again).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio


class Slot:
    """One place in a ``SlidingWindow``, held from before a request is sent until its fate is known.

    Exactly one of ``answered``, ``not_counted`` or ``rate_limited`` settles it; later calls do nothing. A slot
    that is never settled explicitly (``SlidingWindow.occupied`` leaves it with an exception or a cancellation)
    is settled as ``answered``: when in doubt, the request counts.
    """

    __slots__ = ("_open", "_window")

    def __init__(self, window: SlidingWindow) -> None:
        self._window = window
        self._open = True

    def answered(self) -> None:
        """The answer is here (or the connection failed after sending): the upstream counted it at the latest now.
        The slot stays in the window until ``now + margin + window``."""
        if self._open:
            self._open = False
            self._window._settle(counted=True)

    def not_counted(self) -> None:
        """The upstream never counted it (refused with 429, or never sent): the slot is free at once."""
        if self._open:
            self._open = False
            self._window._settle(counted=False)

    def rate_limited(self, fallback: float) -> float:
        """Refused with 429: free the slot (a refused request is not counted) and hold every new slot back until
        the window's edge, the moment its oldest answered slot leaves it; ``fallback`` seconds when it holds none
        (the upstream counted traffic this window cannot see, e.g. another process on the same account).
        Returns the pause in seconds."""
        if not self._open:
            return 0.0
        self.not_counted()
        return self._window._pause_until_edge(fallback)


class SlidingWindow:
    """At most ``limit`` requests in any ``window`` seconds as the upstream counts them, on arrival.

    Two ways to take a place:

    - ``occupied()`` / ``hold()`` (creates, status reads): the slot is occupied from the moment it is granted
      (before the request is sent) until the answer, and then for ``margin + window`` more seconds. A request
      the upstream did not count (a 429 refusal, a request never sent) frees its slot at once.
    - ``acquire()`` (spaced lookups with their own slack): the slot is stamped when it is granted and occupied
      for ``window`` seconds from then. Arrival jitter can squeeze two such requests closer than ``window``.

    **The invariant** (for ``hold``): for any request ``i`` the upstream counted, with ``g`` the time its slot
    was granted, ``a`` the time the upstream counted it (its arrival) and ``r`` the time its answer was read,
    causality gives ``g <= a <= r``. A slot is granted at ``g_k`` only while fewer than ``limit`` slots are
    occupied, i.e. fewer than ``limit`` earlier requests are still in flight or have ``r + margin + window >
    g_k``. Take any ``limit + 1`` counted requests and let ``k`` be the one granted last: one of the others,
    ``j``, had already left when ``k`` was granted, so ``a_k - a_j >= g_k - r_j >= window + margin``. Hence
    **any limit + 1 counted requests span at least window + margin seconds of arrival time**: the upstream never
    sees more than ``limit`` in any ``window`` seconds, however slow or uneven the answers, and with ``margin``
    to spare. Freeing refused and never-sent requests keeps it: the upstream did not count them. The margin
    covers what causality does not: upstream timestamps of coarse resolution, several upstream servers whose
    clocks differ a little, our own timers. Default: a tenth of the window (1 s on KIE's 10 s create window,
    0.1 s on the 1 s status window).

    The price of the invariant is each request's answer time plus the margin per reuse of a slot: 100 creates
    at 20 per 10 s take 4 x (10 + 1 + answer time) seconds plus the last answer, about 45 s.

    Waiters are served in order. ``clock`` and ``sleep`` can be replaced (tests, a simulator's virtual clock).
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        margin: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self.margin = window / 10 if margin is None else margin
        self._clock = clock
        self._sleep = sleep
        self._leaves: list[float] = []  # sorted: when each settled, counted slot leaves the window
        self._in_flight = 0  # slots held by requests whose answer has not come
        self._paused_until = -math.inf
        self._changed = anyio.Event()  # set (and replaced) whenever a slot is settled
        self._lock = anyio.Lock()

    # -- taking a place ------------------------------------------------------------------------

    async def acquire(self) -> float:
        """Wait for a slot stamped now, occupied for ``window`` seconds; return how long we waited."""
        async with self._lock:
            waited = await self._wait_for_room()
            bisect.insort(self._leaves, self._clock() + self.window)
            return waited

    async def hold(self) -> Slot:
        """Wait for a slot and hold it until it is settled (see ``Slot``); send the request after this returns."""
        async with self._lock:
            await self._wait_for_room()
            self._in_flight += 1
            return Slot(self)

    async def hold_unless(self, given_up: anyio.Event) -> Slot | None:
        """``hold``, unless ``given_up`` is set first (the request no longer wanted: its call cut off, the process
        stopping): then None, and no slot is taken. A request still waiting has not been sent: giving it up costs
        nothing upstream."""
        slot: Slot | None = None
        try:
            async with anyio.create_task_group() as group:

                async def take() -> None:
                    nonlocal slot
                    slot = await self.hold()
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    await given_up.wait()
                    group.cancel_scope.cancel()

                if not given_up.is_set():
                    group.start_soon(take)
                    group.start_soon(watch)
        except BaseException:
            if slot is not None:  # granted as the wait was cancelled: never sent
                slot.not_counted()
            raise
        if slot is not None and given_up.is_set():  # both at once: given up, as nothing was sent yet
            slot.not_counted()
            return None
        return slot

    @asynccontextmanager
    async def occupied(self) -> AsyncIterator[Slot]:
        """``async with window.occupied() as slot:`` send inside; leaving settles the slot as answered unless it
        was settled otherwise."""
        slot = await self.hold()
        try:
            yield slot
        finally:
            slot.answered()

    # -- inspection ----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Slots held by requests still waiting for their answer."""
        return self._in_flight

    def occupancy(self) -> int:
        """Slots occupied now: in flight, or answered and not yet out of the window."""
        self._purge(self._clock())
        return self._in_flight + len(self._leaves)

    def edge(self) -> float | None:
        """When the oldest answered slot leaves the window (on ``clock``), or None when none is in it."""
        self._purge(self._clock())
        return self._leaves[0] if self._leaves else None

    # -- internals -----------------------------------------------------------------------------

    def _purge(self, now: float) -> None:
        drop = bisect.bisect_right(self._leaves, now)
        if drop:
            del self._leaves[:drop]

    async def _wait_for_room(self) -> float:
        """With the lock held: wait until a slot may be granted now; return how long it took."""
        started = self._clock()
        while True:
            now = self._clock()
            self._purge(now)
            if now < self._paused_until:
                await self._sleep(self._paused_until - now)
                continue
            if self._in_flight + len(self._leaves) < self.limit:
                return self._clock() - started
            # Full. An answer never makes room (its slot stays counted for a window from now); only a slot
            # leaving (known time) or a slot freed by a refusal (any time) does.
            delay = self._leaves[0] - now if self._leaves else None
            if self._in_flight == 0:
                assert delay is not None  # full with nothing in flight: something must leave
                await self._sleep(delay)
            else:
                await self._sleep_or_change(delay)

    async def _sleep_or_change(self, delay: float | None) -> None:
        """Wait ``delay`` seconds (forever if None), or until a slot is settled, whichever comes first."""
        changed = self._changed
        if delay is None:
            await changed.wait()
            return
        async with anyio.create_task_group() as group:

            async def timer() -> None:
                await self._sleep(delay)
                group.cancel_scope.cancel()

            async def watch() -> None:
                await changed.wait()
                group.cancel_scope.cancel()

            group.start_soon(timer)
            group.start_soon(watch)

    def _settle(self, *, counted: bool) -> None:
        self._in_flight -= 1
        if counted:
            bisect.insort(self._leaves, self._clock() + self.margin + self.window)
        self._changed.set()
        self._changed = anyio.Event()

    def _pause_until_edge(self, fallback: float) -> float:
        now = self._clock()
        self._purge(now)
        until = self._leaves[0] if self._leaves else now + fallback
        self._paused_until = max(self._paused_until, until)
        return max(self._paused_until - now, 0.0)
