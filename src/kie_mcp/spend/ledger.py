"""Credits spent through this server today, and the hard caps that no approval overrides."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime


class SpendRefused(Exception):
    """A hard cap or the balance forbids this spend. No confirmation can override it."""


@dataclass(frozen=True)
class Caps:
    per_call: float
    per_day: float


def check_caps(total: float | None, spent_today: float, caps: Caps) -> None:
    """Refuse a known price above the per-call cap or above what is left of today's cap."""
    if total is None:
        return  # unknown prices are never auto-approved; a person approves them explicitly
    if total > caps.per_call:
        raise SpendRefused(
            f"This request costs {total:g} credits, over the per-call cap of {caps.per_call:g} "
            "(KIE_MAX_CREDITS_PER_CALL). Nothing was spent. Ask for fewer variations, a lower resolution or a "
            "cheaper model, or have the user raise KIE_MAX_CREDITS_PER_CALL in the server's configuration."
        )
    if spent_today + total > caps.per_day:
        left = max(caps.per_day - spent_today, 0)
        raise SpendRefused(
            f"This request costs {total:g} credits but only {left:g} of today's cap of {caps.per_day:g} "
            f"(KIE_MAX_CREDITS_PER_DAY) are left ({spent_today:g} spent today). Nothing was spent. The cap resets "
            "at midnight; the user can raise KIE_MAX_CREDITS_PER_DAY in the server's configuration."
        )


def check_balance(total: float | None, balance: float) -> None:
    if total is not None and balance < total:
        raise SpendRefused(
            f"The KIE account has {balance:g} credits; this request needs {total:g}. Nothing was spent. "
            "Top up at https://kie.ai/pricing or choose a cheaper request."
        )


class Ledger:
    """Today's spend. Reservations are taken under one lock, so parallel calls cannot both slip under a cap."""

    def __init__(self, caps: Caps, today: Callable[[], date] = lambda: datetime.now().date()) -> None:
        self.caps = caps
        self._today = today
        self._day = today()
        self._spent = 0.0
        self._lock = threading.Lock()

    def spent_today(self) -> float:
        with self._lock:
            self._roll()
            return round(self._spent, 4)

    def reserve(self, credits: float | None) -> None:
        """Count ``credits`` as spent now, if the caps allow; raise ``SpendRefused`` otherwise."""
        with self._lock:
            self._roll()
            check_caps(credits, self._spent, self.caps)
            self._spent += credits or 0.0

    def adjust(self, delta: float) -> None:
        """Correct today's spend: a refund of a failed task, or KIE's real charge differing from the quote."""
        with self._lock:
            self._roll()
            self._spent = max(self._spent + delta, 0.0)

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._spent = today, 0.0
