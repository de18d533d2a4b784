"""Credits spent through this server today, and the hard caps that no approval overrides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kie_mcp.journal import Journal
from kie_mcp.words import plain


class SpendRefused(Exception):
    """A hard cap or the balance forbids this spend. No confirmation can override it."""


@dataclass(frozen=True)
class Caps:
    per_call: float
    per_day: float


def check_caps(total: float | None, spent_today: float, caps: Caps, *, ceiling: float | None = None) -> None:
    """Refuse a spend above the per-call cap or above what is left of today's cap.

    A known price is checked as it is. An unknown price (``total`` None) is checked, and later reserved, at its
    ``ceiling``: the per-call cap or a lower ``max_credits`` the caller gave. Caps hold whether or not the price
    is known.
    """
    if spent_today > caps.per_day:
        raise SpendRefused(
            f"Today's spend through kie-mcp ({spent_today:g} credits) is already over the daily cap of "
            f"{caps.per_day:g} (KIE_MAX_CREDITS_PER_DAY), because KIE charged more than was quoted. Nothing was "
            "spent. Further spends are refused until the cap resets at midnight (local time); the user can raise "
            "KIE_MAX_CREDITS_PER_DAY in the server's configuration."
        )
    amount = total if total is not None else (caps.per_call if ceiling is None else min(ceiling, caps.per_call))
    what = (
        f"costs {total:g} credits"
        if total is not None
        else f"has no price known before it runs, so up to {amount:g} credits are reserved for it"
    )
    if total is not None and total > caps.per_call:
        raise SpendRefused(
            f"This request {what}, over the per-call cap of {caps.per_call:g} "
            "(KIE_MAX_CREDITS_PER_CALL). Nothing was spent. Ask for fewer variations, a lower resolution or a "
            "cheaper model, or have the user raise KIE_MAX_CREDITS_PER_CALL in the server's configuration."
        )
    if total is not None and ceiling is not None and total > ceiling:
        raise SpendRefused(
            f"This request {what}, over the max_credits ceiling of {ceiling:g} given with it. Nothing was spent. "
            "Raise max_credits, or ask for fewer variations, a lower resolution or a cheaper model."
        )
    if spent_today + amount > caps.per_day:
        left = max(caps.per_day - spent_today, 0)
        raise SpendRefused(
            f"This request {what} but only {left:g} of today's cap of {caps.per_day:g} "
            f"(KIE_MAX_CREDITS_PER_DAY) are left ({spent_today:g} spent today). Nothing was spent. The cap resets "
            "at midnight; "
            + ("a lower max_credits ceiling reserves less; " if total is None else "")
            + "the user can raise KIE_MAX_CREDITS_PER_DAY in the server's configuration."
        )


def reservation(total: float | None, caps: Caps, ceiling: float | None = None) -> float:
    """What a request counts against today's cap until KIE's real charge is known."""
    if total is not None:
        return total
    return caps.per_call if ceiling is None else min(ceiling, caps.per_call)


def check_balance(total: float | None, balance: float) -> None:
    """Refuse a spend the balance cannot cover, and any spend at all against a balance that is not a number."""
    import math

    if isinstance(balance, bool) or not isinstance(balance, int | float) or not math.isfinite(balance):
        raise SpendRefused(
            f"KIE reported a balance that is not a number ({plain(balance)}); nothing was spent. Check the balance at "
            "https://kie.ai and try again in a minute."
        )
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

    def reserve(self, total: float | None, ref: str | None = None, *, ceiling: float | None = None) -> float:
        """Count the request as spent now, if the caps allow (raise ``SpendRefused`` otherwise); return the
        credits reserved: the price, or for an unknown price its ceiling."""
        day = self._today()
        with self.journal.transaction() as db:
            spent = _sum(db, day)
            check_caps(total, spent, self.caps, ceiling=ceiling)
            amount = reservation(total, self.caps, ceiling)
            if amount:
                Journal.add_spend(db, day, amount, "reserved", ref)
        return amount

    def over_cap(self) -> str | None:
        """Why spending is refused for the rest of today, when KIE's real charges pushed past the daily cap."""
        spent = self.spent_today()
        if spent > self.caps.per_day:
            return (
                f"Today's spend ({spent:g} credits) is over the daily cap of {self.caps.per_day:g} because KIE "
                "charged more than was quoted; further spends are refused until midnight (local time)."
            )
        return None

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
