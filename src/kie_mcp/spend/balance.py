"""The KIE balance on the request path: read at most every few seconds, lowered by what was spent since.

``estimate_cost`` shows the balance and a generate checks it before anything is sent. Asking KIE each time
costs a round trip per call, so one read is kept for ``FRESH_SECONDS`` and, while it is kept, lowered by every
credit the workspace journal reserved or charged after it (refunds are not added back: the cache only ever errs
low). The spend gate trusts a kept balance only when it covers the request ``CLOSE_FACTOR`` times over; a spend
closer to it, a price not known before the task runs, a stale or missing read all ask KIE again. A 402 from KIE
(too few credits), or a read that failed, drops the kept balance. ``check_credits`` always asks KIE, and every
read of the balance, wherever it happens, refreshes the kept one.

One cache per KIE client (``balance_cache``), created on first use and watching that client's balance reads and
creates from then on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from kie_mcp.kie import KieClient, KieError
from kie_mcp.kie.errors import creates_nothing

if TYPE_CHECKING:
    from kie_mcp.journal import Journal
    from kie_mcp.runtime import Runtime

FRESH_SECONDS = 5.0  # how long one read of the balance is used
CLOSE_FACTOR = 2.0  # a kept balance under this many times the request's price is read again before the spend
INSUFFICIENT_CREDITS = 402  # KIE's code for "the account has too few credits"


class BalanceCache:
    """One KIE account's balance, as last read, and what the journal spent after that read."""

    def __init__(
        self,
        kie: KieClient,
        journal: Journal,
        *,
        fresh_seconds: float = FRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._fresh_seconds = fresh_seconds
        self._clock = clock
        self._lock = anyio.Lock()
        self._value: float | None = None
        self._read_at = 0.0
        self._mark: int | None = None  # the journal's newest spend entry when the read was sent
        self._sent_at: float | None = None  # when the kept read was sent (epoch seconds): ``last_read``
        self.reads = 0  # balance reads sent to KIE through this client since the cache was created
        self._kie_read = self._watch(kie)

    # -- what callers use ------------------------------------------------------------------------

    async def read(self) -> float:
        """Ask KIE now (``check_credits``, a spend close to the balance); the answer is kept."""
        return await self._kie_read()

    async def current(self) -> float:
        """The balance to show: the kept one less what was spent since it was read, or a fresh read."""
        kept = self._kept()
        if kept is not None:
            return kept
        async with self._lock:  # parallel calls with a stale balance share one read
            kept = self._kept()
            return kept if kept is not None else await self.read()

    async def for_spend(self, total: float | None) -> float:
        """The balance to weigh a spend of ``total`` credits against (None: a price not known before it runs).

        The kept balance when it covers ``CLOSE_FACTOR`` x ``total``; otherwise KIE's answer now. Parallel spends
        that find no kept balance share one read (twenty creates at once were twenty reads)."""
        if total is not None and math.isfinite(total):
            kept = self._kept()
            if kept is None:
                async with self._lock:
                    kept = self._kept()
                    if kept is None:
                        return await self.read()
            if kept >= CLOSE_FACTOR * total:
                return kept
        return await self.read()

    def last_read(self) -> tuple[float, float] | None:
        """The kept read as KIE answered it, never lowered by what was spent since, and when it was sent (epoch
        seconds), or None: where a charge KIE does not report is measured from (``generation.check_spend``). A
        figure lowered by the journal's reservations would measure a charge against what was counted, not what KIE
        took."""
        if self._value is None or self._sent_at is None or self._kept() is None:
            return None
        return self._value, self._sent_at

    def invalidate(self) -> None:
        self._value = None
        self._mark = None
        self._sent_at = None

    # -- inside ---------------------------------------------------------------------------------------

    def _kept(self) -> float | None:
        if self._value is None or self._mark is None or self._clock() - self._read_at > self._fresh_seconds:
            return None
        return round(self._value - self._journal.spent_since(self._mark), 4)

    def _watch(self, kie: KieClient) -> Callable[[], Awaitable[float]]:
        """Route the client's balance reads and creates through this cache: every read refreshes it, a failed
        read or a 402 drops it. Returns the watched balance read."""
        read_balance = kie.credits
        send_create = kie._send_create

        async def credits() -> float:
            mark = self._spend_mark()
            sent_at = time.time()
            self.reads += 1
            try:
                value = await read_balance()
            except KieError as err:
                self.invalidate()
                raise balance_failed(err) from err
            except BaseException:
                self.invalidate()
                raise
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                self._value, self._read_at, self._mark = float(value), self._clock(), mark
                self._sent_at = sent_at
            else:  # never kept; the gate's check_balance refuses it
                self.invalidate()
            return value

        async def create(*args: Any, **kwargs: Any) -> str:
            try:
                return await send_create(*args, **kwargs)
            except KieError as err:
                if err.code == INSUFFICIENT_CREDITS:
                    self.invalidate()
                raise

        kie.credits = credits  # type: ignore[method-assign]
        kie._send_create = create  # type: ignore[method-assign]
        return credits

    def _spend_mark(self) -> int | None:
        try:
            return self._journal.spend_mark()
        except Exception:  # no journal (unwritable workspace): nothing is kept, every call reads
            return None


BALANCE_FAILED = "KIE's balance check failed, so nothing was sent or charged."
BALANCE_PAGE = "https://kie.ai"  # where the account's balance shows


def balance_failed(err: KieError) -> KieError:
    """A balance read KIE refused or that failed, in words for it: every read of the balance passes here (check_credits,
    a generate's check before anything is sent, an estimate). KIE's advice per code is written for a create ("change
    the prompt", "fix the field it names"); a balance check has the key, its cap, maintenance and pacing, or its own
    advice when it met no code of KIE's (the network, an answer that could not be read), and otherwise a retry."""
    return creates_nothing(
        err, BALANCE_FAILED, f"Try again in a minute; if it keeps failing, the balance is on {BALANCE_PAGE}."
    )


def balance_cache(rt: Runtime) -> BalanceCache:
    """The balance cache of the runtime's KIE client (created, and watching the client, on first use). It lives
    on the client, so it goes with it."""
    kie = rt.require_kie()
    cache = getattr(kie, _ATTRIBUTE, None)
    if not isinstance(cache, BalanceCache):
        cache = BalanceCache(kie, rt.journal)
        setattr(kie, _ATTRIBUTE, cache)
    return cache


_ATTRIBUTE = "_balance_cache"
