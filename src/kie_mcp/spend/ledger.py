"""Credits spent through this server today, and the hard caps that no approval overrides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kie_mcp.journal import Journal


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
    """Today's spend through this workspace, from the journal. Reservations and corrections are transactions,
    so parallel calls, or two server processes, cannot both slip under a cap."""

    def __init__(self, journal: Journal, caps: Caps, today: Callable[[], date] = lambda: datetime.now().date()) -> None:
        self.journal = journal
        self.caps = caps
        self._today = today

    def spent_today(self) -> float:
        return round(self.journal.spent_on(self._today()), 4)

    def total_spent(self) -> float:
        return round(self.journal.total_spent(), 4)

    def reserve(self, credits: float | None, ref: str | None = None) -> None:
        """Count ``credits`` as spent now, if the caps allow; raise ``SpendRefused`` otherwise."""
        day = self._today()
        with self.journal.transaction() as db:
            spent = _sum(db, day)
            check_caps(credits, spent, self.caps)
            if credits:
                Journal.add_spend(db, day, credits, "reserved", ref)

    def adjust(self, delta: float, reason: str = "adjusted", ref: str | None = None, *, once: bool = False) -> bool:
        """Correct today's spend (a refund, or KIE's real charge); with ``once``, at most one entry per ``ref``."""
        day = self._today()
        with self.journal.transaction() as db:
            seen = db.execute("SELECT 1 FROM spend WHERE ref = ? AND reason = ?", (ref, reason)).fetchone()
            if once and ref and seen:
                return False
            spent = _sum(db, day)
            Journal.add_spend(db, day, max(delta, -spent), reason, ref)
        return True


def _sum(db: Any, day: date) -> float:
    row = db.execute("SELECT COALESCE(SUM(delta), 0) FROM spend WHERE day = ?", (day.isoformat(),)).fetchone()
    return max(float(row[0]), 0.0)
