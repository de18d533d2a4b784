"""Credits spent through this workspace today (every kie-mcp server on it), and the hard caps that no approval
overrides."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import anyio

from kie_mcp.catalog.pricing import MOST_CREDITS_CHARGED, UNREADABLE_FACTOR, credits_figure, credits_text
from kie_mcp.journal import CLOCKS, JOURNAL_ERRORS, UNSENT_DOWN, Journal, JournalUnavailable
from kie_mcp.processes import owner_gone, this_process
from kie_mcp.words import plain

log = logging.getLogger(__name__)


class SpendRefused(Exception):
    """A hard cap or the balance forbids this spend. No confirmation can override it."""


@dataclass(frozen=True)
class Caps:
    per_call: float
    per_day: float
    per_day_from: str = ""  # where the daily cap in force was written (``Settings.max_credits_per_day_from``)
    per_call_from: str = ""  # where the per-call cap in force was written (``Settings.max_credits_per_call_from``)


@dataclass(frozen=True)
class Reservation:
    """Credits counted against the caps for one request, the moment they count at (``at``, epoch seconds: every
    correction of them counts there too) and the local date then (``day``, kept for an older kie-mcp sharing the
    journal); ``held``: the entry's ref while it is held for the request's input files to go up (``Ledger.reserve``
    with ``held``), until ``Ledger.keep``; ``entry``: its id in the journal, which counts its creates neither begun
    nor given back as not sent (``journal.SPEND_COLUMNS``: ``Journal.begin_attempt`` and ``Ledger.adjust``'s
    ``settles`` are given it)."""

    credits: float
    day: date
    at: float
    held: str | None = None
    entry: int | None = None


# A reservation made before a request's input files go up is held under a ref of its own, naming the process that
# holds it (``this_process``): ``held:<owner>:<token>``. Kept (``Ledger.keep``) once the files are up, it becomes the
# request's reservation like any other; released when they fail or the call is cut off, and by a stop (SIGTERM,
# Ctrl-C: ``release_held_here``). It is a lease: renewed while its files go up (``Ledger.holding``), so one a process
# left when it was killed meanwhile is released at the next look at the ledger (``Ledger.spent_today``, ``reserve``)
# once its process is known gone, or once it went unrenewed for ``HOLD_LEASE``, whoever held it: a server in a
# container of its own (``docker run -i --rm``: a PID namespace per session), before a reboot, or on another machine
# sharing the workspace cannot be told gone from here, and held the daily cap for an hour with nothing made.
HELD = "held while its input files upload"
HELD_REF = "held:"
_HELD_END = "held;"  # the first text after every ref starting with HELD_REF: the range an index search reads
HOLD_RENEW = 30.0  # seconds between two renewals of a held reservation while its files go up
# A held reservation not renewed for this long is released whoever holds it: six renewals missed (a journal another
# writer locked skips one). The call that held it, should it still run, reserves again once its files are up (and the
# caps may then refuse it).
HOLD_LEASE = 180.0
# How a succeeded task's charge is booked in place of its reservation (a spend row's reason): the charge KIE reported,
# or one measured from the balance around the call (KIE reports none for it). Either is booked once per task.
CHARGED = "charged by KIE"
MEASURED = "measured from the balance"
_ONE_CHARGE = (CHARGED, MEASURED)
# Why a refund was booked (a spend row's reason), once per create (its attempt) or task ever: a create KIE refused or
# that never left (nothing created or charged), one KIE answered with a task it already had (nothing new started), a
# task that failed. Each is booked as it happens, by its call or the follower; one the journal could not take before
# its server stopped (another program held its lock, a full disk: it was owed in memory) by the next start
# (``Ledger.book_owed_refunds``).
REFUSED = "refused by KIE"
ALREADY_HAD = "refunded: KIE already had this task"
TASK_FAILED = "refunded: task failed"
# The creates of a reservation whose process is gone that were neither begun nor given back as not sent (its call
# stopped with the process, or their refund was owed in memory): booked by a start (``SpendBook.book_unsent``).
UNSENT = "refunded: not sent, its server stopped first"
ALREADY_HAD_ANSWER = "KIE already had it: "  # how the outcome of a create KIE answered so starts (its attempt's error)
# How far back a start looks for refunds owed: as far as it takes up the call log's tasks (KIE keeps them 14 days).
OWED_SINCE = 14 * 86400.0
# Why a ledger whose runtime closed (``Ledger.close``) reserves nothing: a call that outlived its server's session.
CLOSED = "kie-mcp's session has closed: nothing more is reserved or sent for this call."
STOP_SECONDS = 0.5  # the longest a stop waits for the journal to give back this process's held reservations
# Journals where this process holds reservations now (their path -> the refs), for a stop to give them back.
_HOLDING: dict[str, set[str]] = {}


def priced(total: float | None) -> float | None:
    """``total`` when it is a price the caps can weigh (a finite number above 0), else None. A price of 0 or less
    comes from a broken price list, never from KIE's real rates: it is checked, reserved and approved as unknown, so
    it can neither slip past the caps nor be auto-approved."""
    if total is None or isinstance(total, bool) or not math.isfinite(total) or total <= 0:
        return None
    return float(total)


def readable_charge(reported: Any, reserved: float | None, *, failed: bool = False) -> float | None:
    """What KIE charged for one ended task, read from the charge it ``reported`` (as the task's record keeps it), or
    None when that cannot be what it charged: not a number, 0 or less (KIE charges for every task it completes),
    infinite or NaN, above ``MOST_CREDITS_CHARGED``, or more than ``UNREADABLE_FACTOR`` times what the task ``reserved``
    (no rate of KIE's comes near: 1e308, or 5000 for an 8-credit image). Of a ``failed`` task, no charge, 0 or less, or
    one that is not a number reads as 0 (KIE refunds a failed task, and reports 0 for it); only a charge beyond belief
    is None, and one reported as no finite number (``reported_charge``: infinity, as a record keeps it, never none).
    The one rule for the ledger (``SpendBook.refund_failed_task``, ``book_owed_refunds``, ``generation.settle_one``)
    and for what the answers say a task cost: an unreadable charge is never booked, its reservation stays counted."""
    number = reported if isinstance(reported, int | float) and not isinstance(reported, bool) else None
    if number is not None and not math.isfinite(number):  # reported, but no number (``reported_charge``)
        return None
    charged = priced(number)
    if charged is None:
        return 0.0 if failed else None
    if charged > MOST_CREDITS_CHARGED or (
        reserved is not None and reserved > 0 and charged > reserved * UNREADABLE_FACTOR
    ):
        return None
    return charged


def reported_charge(charged: Any, unreadable: Any) -> Any:
    """The charge KIE reported for a task, as ``readable_charge`` reads it, from its record's ``credits_charged`` and
    ``charge_unreadable`` (``TaskRecord``): a charge reported as no finite number ("NaN", "1e400"), which the record
    keeps as none beside that mark, reads as infinity, beyond belief, so a failed task's reservation stays counted as
    for 1e308. Never from the words of the record's error, which hold KIE's own."""
    return math.inf if charged is None and unreadable is True else charged


def failed_charge(reported: Any, reserved: float) -> float:
    """What a failed task is counted as having cost, given the charge KIE ``reported`` for it: that charge
    (``readable_charge``: 0 when none), or the whole reservation when the charge cannot be read."""
    charged = readable_charge(reported, reserved, failed=True)
    return reserved if charged is None else charged


def check_caps(
    total: float | None,
    spent_today: float,
    caps: Caps,
    *,
    max_credits: float | None = None,
    ceiling: float | None = None,
    most: float | None = None,
    most_why: str = "",
    least: float = 0.0,
    listed: float | None = None,
    counted_why: str = "KIE was seen charging that much",
    held: float | Callable[[], float] = 0.0,
    tasks: int = 1,
    overcharged: float | Callable[[], float] = 0.0,
    resets: str | Callable[[], str] | None = None,
) -> None:
    """Refuse a spend above the per-call cap, above a ``max_credits`` the caller gave, or above what is left of
    today's cap (``held``: how much of ``spent_today`` is held for input files uploading now, said apart;
    ``overcharged``: how much more than their reservations KIE charged today's tasks, for why a spend is already over
    the cap; ``resets``: when the daily cap frees what it holds, as ``Ledger.reset_at`` says it (None: at midnight,
    local time); a function is asked only when the daily cap refuses, as only that refusal says it).

    A known price is checked as it is; a price KIE was seen charging more than is checked at that higher figure,
    passed as ``total`` with the price itself as ``listed`` and ``counted_why`` (for the wording); so is a live
    price lower than the bundled one, whose bundled figure is what counts. ``ceiling``: what ``max_credits`` is
    weighed against when that is not ``total`` (a price only KIE's live list gives: its price, not the per-call cap
    it counts as a stand-in). An unknown price (``total`` None, or
    not above 0) is checked, and later reserved, at ``most``: the most the catalogue says the request can cost (its
    per-second rate times the longest input its field takes, or a figure the catalogue keeps for it; ``most_why``
    says where it comes from and what would bind it, for the refusal), else the whole per-call cap for each of its
    ``tasks`` (nothing bounds what KIE charges one, so a request of several is refused: ``_check_unknown``); never
    less than the ``least`` it surely costs (its rates with billed inputs of no length). What is counted is never the
    caller's to choose: ``max_credits`` only refuses (a price, or the least or the most an unknown one costs, above
    it) and never shrinks a reservation, since KIE charges what it charges whatever the caller said. Caps hold whether
    or not the price is known; an unknown price with nothing to reserve (a per-call cap of 0) is refused.
    """
    total = priced(total)
    if total is None:
        _check_unknown(least, most, most_why, caps, max_credits, tasks)
    if spent_today > caps.per_day:
        extra = overcharged() if callable(overcharged) else overcharged
        raise SpendRefused(
            f"{over_cap_words(spent_today, caps, extra)} Nothing was spent. Further spends are refused until the cap "
            f"resets at {_resets(resets, 'midnight (local time)')}; the user can "
            f"{raise_cap(PER_DAY, caps.per_day_from)}."
        )
    amount = reservation(total, caps, most, least, tasks)
    if total is None and amount <= 0:
        raise SpendRefused(
            "This request has no price known before it runs, so it needs credits reserved against the caps, and "
            f"the per-call cap of {credits_figure(caps.per_call)} (KIE_MAX_CREDITS_PER_CALL) leaves nothing to "
            "reserve. Nothing was spent. Choose a model or settings with a known price (estimate_cost shows it), or "
            f"have the user {raise_cap(PER_CALL, caps.per_call_from)}."
        )
    what = (
        f"costs {credits_text(total)}"
        if total is not None
        else f"has no price known before it runs, so up to {credits_text(amount)} are reserved for it"
    )
    if total is not None and listed is not None and listed < total:
        what = f"costs {credits_text(listed)} by KIE's list ({credits_figure(total)} counted: {counted_why})"
    weighed = total if ceiling is None else ceiling  # what max_credits is weighed against (``Plan.ceiling_weighed``)
    over_ceiling = weighed is not None and max_credits is not None and weighed > max_credits
    if total is not None and total > caps.per_call and not (over_ceiling and max_credits <= caps.per_call):
        also = f" (and over the max_credits of {credits_figure(max_credits)} given with it)" if over_ceiling else ""
        todo = (
            "Ask for one variation per call: a price only KIE's live list gives counts the whole per-call cap for "
            "each task, so raising KIE_MAX_CREDITS_PER_CALL does not let several through."
            if ceiling is not None and ceiling != total and tasks > 1  # counted at a stand-in: the cap per task
            else "Ask for fewer variations, a lower resolution or a cheaper model, or have the user "
            f"{raise_cap(PER_CALL, caps.per_call_from)}."
        )
        raise SpendRefused(  # the per-call cap is the tighter limit: the one to name
            f"This request {what}, over the per-call cap of {credits_figure(caps.per_call)} "
            f"(KIE_MAX_CREDITS_PER_CALL){also}. Nothing was spent. {todo}"
        )
    if over_ceiling:
        assert max_credits is not None
        raise SpendRefused(
            f"This request {what}, over the max_credits of {credits_figure(max_credits)} given with it. Nothing was "
            "spent. Raise max_credits, or ask for fewer variations, a lower resolution or a cheaper model."
        )
    if spent_today + amount > caps.per_day:
        left = max(caps.per_day - spent_today, 0)
        held = min(max(held() if callable(held) else held, 0.0), spent_today)
        counted = (
            f"{credits_figure(spent_today - held)} spent today, {credits_figure(held)} held for uploads under way: "
            "given back if their requests send nothing, so the cap may have room again in a few minutes"
            if held
            else f"{credits_figure(spent_today)} spent today"
        )
        raise SpendRefused(
            f"This request {what} but only {credits_figure(left)} of today's cap of {credits_figure(caps.per_day)} "
            f"(KIE_MAX_CREDITS_PER_DAY) are left ({counted}). Nothing was spent. The cap resets at "
            f"{_resets(resets, 'midnight')}; the user can {raise_cap(PER_DAY, caps.per_day_from)}."
        )


def over_cap_words(spent: float, caps: Caps, overcharged: float) -> str:
    """Why today's ``spent`` is over the daily cap in force. Every reservation was let in under the cap it met, so
    only charges above their reservations (``overcharged``) take the spend past that cap: when the spend less them
    is still within this cap, KIE charged more than was quoted. Otherwise this cap is lower than the one the spend
    was let in under (lowered since, or another kie-mcp server on this workspace with a higher cap): no fault of
    KIE's. Where the cap in force was written is named when it is known (``Caps.per_day_from``)."""
    head = (
        f"Today's spend through kie-mcp ({credits_text(spent)}) is already over the daily cap of "
        f"{credits_figure(caps.per_day)}"
    )
    if overcharged > 0 and spent - overcharged <= caps.per_day:
        return f"{head} (KIE_MAX_CREDITS_PER_DAY), because KIE charged more than was quoted."
    where = f", set in {caps.per_day_from}" if caps.per_day_from else ""
    also = f" KIE also charged {credits_figure(overcharged)} more than was quoted." if overcharged > 0 else ""
    return (
        f"{head} in force (KIE_MAX_CREDITS_PER_DAY{where}): that spend was let in under a higher daily cap (this "
        f"one was lowered since, or another kie-mcp server on this workspace has a higher one).{also}"
    )


def _resets(resets: str | Callable[[], str] | None, default: str) -> str:
    """When the daily cap frees what it holds (``check_caps``' ``resets``), or ``default``."""
    said = resets() if callable(resets) else resets
    return said or default


PER_CALL, PER_DAY = "KIE_MAX_CREDITS_PER_CALL", "KIE_MAX_CREDITS_PER_DAY"


def raise_cap(name: str, where: str) -> str:
    """How the user raises the cap ``name`` (after "the user can"): where its value in force was written (``where``:
    ``Caps.per_call_from`` or ``per_day_from``), since the lowest value written anywhere applies: a raise in the
    client's env block (the Claude Desktop bundle's settings) leaves a lower one in the workspace's .env in force.
    The default's is the server's configuration."""
    return f"raise {name} {_raised_at(where)}"


def _raised_at(where: str) -> str:
    if not where:
        return "in the server's configuration"
    return f"in {where}, where the cap in force is set (the lowest value written anywhere applies)"


def reservation(
    total: float | None, caps: Caps, most: float | None = None, least: float = 0.0, tasks: int = 1
) -> float:
    """What a request counts against today's cap until KIE's real charge is known: its price, or for an unknown
    price (or one not above 0) the ``most`` the catalogue says it can cost, else the whole per-call cap for each of
    its ``tasks`` (KIE bills every task, and nothing says one costs less than the cap), and never less than the
    ``least`` it surely costs. Nothing the caller passes lowers it."""
    total = priced(total)
    if total is not None:
        return total
    return max(caps.per_call * max(tasks, 1) if most is None else most, least)


def _check_unknown(
    least: float, most: float | None, most_why: str, caps: Caps, max_credits: float | None, tasks: int = 1
) -> None:
    """An unknown price that costs at least ``least`` (a rate billed for an input's seconds plus the output's, the
    output alone known), and at most ``most`` by the catalogue: a ``max_credits`` below either refuses it, and so
    does a per-call cap below either (the cap could not hold whatever KIE then charges); the tighter one is named.
    With no ``most`` (nothing bounds the price), ``max_credits`` can only be weighed against ``least``, and the
    per-call cap is counted for each of the request's ``tasks`` (``reservation``): several are refused, since KIE
    bills each and one alone may cost the whole cap."""
    what = (
        f"This request has no price known before it runs, but it costs at least {credits_text(least)} (its rates with "
        "the billed inputs taken as 0 s long)"
    )
    if least > 0 and max_credits is not None and max_credits < least and max_credits <= caps.per_call:
        raise SpendRefused(
            f"{what}, over the max_credits of {credits_figure(max_credits)} given with it. Nothing was spent. Pass a "
            f"max_credits of at least {credits_figure(least)}, or ask for fewer variations or a shorter output."
        )
    if least > caps.per_call:
        raise SpendRefused(
            f"{what}, over the per-call cap of {credits_figure(caps.per_call)} (KIE_MAX_CREDITS_PER_CALL). Nothing was "
            "spent. Ask for fewer variations or a shorter output, or have the user "
            f"{raise_cap(PER_CALL, caps.per_call_from)}."
        )
    if most is not None and max_credits is not None and max_credits < most and max_credits <= caps.per_call:
        raise SpendRefused(
            f"This request has no price known before it runs, and KIE may charge up to {credits_text(most)} for it, "
            f"over the max_credits of {credits_figure(max_credits)} given with it"
            + (f": {most_why.rstrip('.')}." if most_why else ".")
            + f" Nothing was spent. Pass a max_credits of at least {credits_figure(most)}, or ask for fewer variations "
            "or a shorter output."
        )
    if most is None and tasks > 1 and caps.per_call > 0:
        raise SpendRefused(
            f"This request has no price known before it runs and nothing bounds what KIE charges for each of its "
            f"{tasks} variations, so each counts the whole per-call cap of {credits_figure(caps.per_call)} "
            f"(KIE_MAX_CREDITS_PER_CALL): {credits_text(caps.per_call * tasks)} in all, over that cap. Nothing was "
            "spent. Ask for one variation per call (each call is then held to the cap, and counted against the daily "
            "cap), or choose a model or settings with a known price (estimate_cost shows it). Raising "
            "KIE_MAX_CREDITS_PER_CALL raises what each variation counts too, so it does not let several through."
        )
    if most is not None and most > caps.per_call:
        raise SpendRefused(
            f"This request has no price bound before it runs, and KIE may charge up to {credits_text(most)} for it, "
            f"over the per-call cap of {credits_figure(caps.per_call)} (KIE_MAX_CREDITS_PER_CALL), which could then "
            "not hold"
            + (f": {most_why}" if most_why else ".")
            + " Nothing was spent. Ask for fewer variations, or have the user "
            + f"{raise_cap(PER_CALL, caps.per_call_from)}."
        )


def check_balance(total: float | None, balance: float) -> None:
    """Refuse a spend the balance cannot cover, and any spend at all against a balance that is not a number."""
    if isinstance(balance, bool) or not isinstance(balance, int | float) or not math.isfinite(balance):
        raise SpendRefused(
            f"KIE reported a balance that is not a number ({plain(balance)}); nothing was spent. Check the balance at "
            "https://kie.ai and try again in a minute."
        )
    if total is not None and balance < total:
        raise SpendRefused(
            f"The KIE account has {credits_text(balance)}; this request needs {credits_figure(total)}. Nothing was "
            "spent. Top up at https://kie.ai/pricing or choose a cheaper request."
        )


class SpendBook:
    """The spend entries of this workspace as every server on it counts them, from the journal, with no cap in sight:
    the days they count in, this computer's clock among the workspace's, and the corrections of reservations (KIE's
    charges, refunds) and the refunds owed. What a start, or a clock's note, asks of the spend (``recovery``,
    ``note_this_clock``); a ``Ledger`` is one with the caps, which reserves.

    Today is this server's local day (its date), and today's spend is what counts at its first moment or later. Every
    spend entry counts at a moment (a reservation's, which its corrections share: ``journal.SPEND_COLUMNS``), whichever
    server on the workspace wrote it and whatever its time zone (a UTC container beside a desktop client in Sydney).
    Today's first moment is this server's last midnight (local time) when every server on the workspace has its time
    zone (nearly always); otherwise the earliest last midnight among the clocks of the workspace's servers seen in the
    last two days (``journal.CLOCKS``, ``now``): a spend counts until every one of them has passed a midnight after it,
    so servers taking turns right after their own midnights get one cap between them, not one each. An entry an older
    kie-mcp wrote, with only its day's label, counts on the day it names. ``clock``: the time now, in epoch seconds;
    ``zone``: this server's time zone (None: the computer's local time)."""

    def __init__(self, journal: Journal, clock: Callable[[], float] = time.time, zone: tzinfo | None = None) -> None:
        self.journal = journal
        self._clock = clock
        self._zone = zone
        # This server's last midnight, its next one, and today's date: kept while the clock reads a moment between them
        # and its offset from UTC is the same.
        self._day = (math.inf, -math.inf, date.min)
        # When this clock's offset from UTC was last looked at (at most every ``OFFSET_CHECK`` seconds), and it.
        self._offset: tuple[float, int | None] = (math.inf, None)
        # The offset and date this book last wrote to the clocks table (written again when either changes, so it
        # never lapses while the server is in use), and when it last tried (a journal that refuses it, a minute later).
        self._noted: tuple[int, date] | None = None
        self._noting = -math.inf
        # The offsets of the workspace's clocks seen in the last ``ZONES_KEPT`` (this one's aside), as read at a moment
        # on a date of this server's: read again ``ZONES_REREAD`` later, on a new day, and by every reservation.
        self._zones: tuple[int, ...] = ()
        self._zones_read = (math.inf, date.min)

    def now(self, db: sqlite3.Connection | None = None) -> tuple[float, date, float]:
        """The moment now (epoch seconds), today's date (local) and today's first moment: this server's last
        midnight, or the earliest last midnight of the other clocks on the workspace (``Ledger``), computed here from
        their offsets. ``db``: a transaction to read those offsets in now (a reservation's, under the write lock);
        otherwise they are the ones read at most ``ZONES_REREAD`` seconds ago on this day (nearly every look reads no
        more than today's spend). This clock's offset is looked at once a minute (summer time, a laptop moved) and
        written to the journal when it or the date changed, best effort: a journal locked or that cannot be written
        leaves it for a minute later, and counts today as it did."""
        now = self._clock()
        start, end, day = self._day
        checked, offset = self._offset
        if offset is None or not (checked <= now < checked + OFFSET_CHECK and start <= now < end):
            seen = self.offset_at(now)
            if seen != offset:  # its own midnight moved with it
                start, end = math.inf, -math.inf
            self._offset, offset = (now, seen), seen
        if not start <= now < end:  # a new day, or the clock set back, or moved to another offset
            day = self.day_of(now)
            start, end = self._midnight(day), self._midnight(day + timedelta(days=1))
            self._day = (start, end, day)
        if db is None and self._noted != (offset, day) and not self._noting <= now < self._noting + OFFSET_CHECK:
            self._note(now, offset, day)
        read, read_on = self._zones_read
        if db is not None or read_on != day or not read <= now < read + ZONES_REREAD:
            self._read_zones(now, day, offset, db)
        return now, day, min([start, *(last_midnight(now, other) for other in self._zones)])

    def today(self) -> date:
        return self.now()[1]

    def day_of(self, moment: float) -> date:
        """The local date of an epoch ``moment``: the day a reservation an older kie-mcp made then is labelled with (it
        kept no moment), even when the local date now reads earlier (the clock set back, the server moved west)."""
        return datetime.fromtimestamp(moment, self._zone).date()

    @functools.cached_property
    def clock(self) -> str:
        """This clock's name among the workspace's (``journal.CLOCKS``): the computer and its time zone (the zone's
        names, standard and summer, which stay the same when summer time moves the offset), so each keeps one row."""
        if self._zone is not None:
            zone = getattr(self._zone, "key", None) or str(self._zone)
        else:
            zone = os.environ.get("TZ") or "/".join(time.tzname)
        return f"{socket.gethostname()}|{zone}"

    def offset_at(self, moment: float) -> int:
        """This server's offset from UTC at ``moment`` (seconds)."""
        local = (
            datetime.fromtimestamp(moment, self._zone) if self._zone else datetime.fromtimestamp(moment).astimezone()
        )
        offset = local.utcoffset()
        return round(offset.total_seconds()) if offset is not None else 0

    def _midnight(self, day: date) -> float:
        """The first moment of ``day`` in this server's time zone (``midnight``)."""
        return datetime.combine(day, datetime.min.time(), tzinfo=self._zone).timestamp()

    def _day_values(self, day: date) -> tuple[float, float, str]:
        """``DAY_SUM``'s values for ``day``, a date of this server's."""
        return self._midnight(day), self._midnight(day + timedelta(days=1)), day.isoformat()

    def _note(self, now: float, offset: int, day: date) -> None:
        """Write this clock's offset, seen ``now``, to the journal: at once, when no other writer holds its lock (never
        waited for: on the event loop too), best effort."""
        self._noting = now
        try:
            if not self.journal.write_now(lambda db: note_clock(db, self.clock, offset, now)):
                return
        except JOURNAL_ERRORS as err:
            log.debug("this clock's offset could not be written to the journal: %s", err)
            return
        self._noted = (offset, day)

    def _read_zones(self, now: float, day: date, offset: int, db: sqlite3.Connection | None) -> None:
        """The offsets of the other clocks seen on the workspace lately, read now (in ``db`` when given); a journal
        that cannot tell keeps those read before."""
        try:
            since = now - ZONES_KEPT
            rows = (
                db.execute(ZONES_SEEN, (since,)).fetchall() if db is not None else self.journal.query(ZONES_SEEN, since)
            )
        except sqlite3.OperationalError as err:
            if db is not None and "no such table" not in str(err):
                raise  # a reservation's read failed: as any of its reads would
            return
        except JOURNAL_ERRORS:
            return
        self._zones = tuple(sorted({int(row[0]) for row in rows} - {offset}))
        self._zones_read = (now, day)

    def reset_at(self) -> str:
        """When the daily cap frees what it holds now, as the refusals say it ("refused until ..."): empty while every
        clock on the workspace has this server's offset (it resets at midnight, local time, as they say); otherwise
        the moment today's first moment next moves on (the earliest of those midnights a day later) and what then stops
        counting, and the moment all that is counted now has (every clock has passed a midnight after it). From what
        the last look at the ledger read (a refusal asks it under a reservation's lock, which it never waits for)."""
        now, day = self._looked()
        if not self._zones:
            return ""
        end = self._day[1]
        lasts = sorted([self._day[0], *(last_midnight(now, other) for other in self._zones)])
        nexts = [end, *(last_midnight(now, other) + DAY for other in self._zones)]
        first, last = min(nexts), max(nexts)
        if first >= last:
            return f"{self._clock_text(first, day)} (local time)"
        return (
            f"{self._clock_text(first, day)} (local time) for what was spent before {self._clock_text(lasts[1], day)}, "
            f"and at {self._clock_text(last, day)} for all of it: {self._zones_text()}"
        )

    def day_words(self) -> str:
        """What today is on this server when other clocks on the workspace have other offsets (``Ledger``), for
        check_credits; empty when none has. From what the last look at the ledger read (``reset_at``)."""
        now, day = self._looked()
        if not self._zones:
            return ""
        start = min([self._day[0], *(last_midnight(now, other) for other in self._zones)])
        last = max([self._day[1], *(last_midnight(now, other) + DAY for other in self._zones)])
        return (
            f"Today's spend counts from {self._clock_text(start, day)} (local time), and what is counted now has all "
            f"stopped counting by {self._clock_text(last, day)}: {self._zones_text()}."
        )

    def _looked(self) -> tuple[float, date]:
        """The moment now and today's date, as the last look at the ledger left them (``now`` when none looked)."""
        now = self._clock()
        start, end, day = self._day
        return (now, day) if start <= now < end else self.now()[:2]

    def _zones_text(self) -> str:
        zones = ", ".join(utc_offset_text(other) for other in self._zones)
        here = utc_offset_text(self._offset[1] or 0)
        return (
            f"kie-mcp servers on this workspace run in other time zones too ({zones}; this one in {here}), and a spend "
            "counts against the daily cap until each of them has passed a midnight after it"
        )

    def _clock_text(self, moment: float, day: date) -> str:
        """``moment`` as this server's clock reads it, beside its date ``day``: ``13:00``, ``13:00 yesterday``."""
        local = datetime.fromtimestamp(moment, self._zone)
        hour = local.strftime("%H:%M")
        days = (local.date() - day).days
        return {0: hour, -1: f"{hour} yesterday", 1: f"{hour} tomorrow"}.get(days, f"{hour} on {local.date()}")

    def spent_on(self, day: date) -> float:
        """What the local ``day`` holds: the spend counted from its midnight to the next, and the entries an older
        kie-mcp labelled with it."""
        [row] = self.journal.query(DAY_SUM, *self._day_values(day))
        return round(max(float(row[0]), 0.0), 4)

    def total_spent(self) -> float:
        return round(self.journal.total_spent(), 4)

    def adjust(
        self,
        delta: float,
        reason: str = "adjusted",
        ref: str | None = None,
        *,
        once: bool = False,
        at: float | None = None,
        day: date | None = None,
        reserved: float | None = None,
        settles: int | None = None,
    ) -> bool:
        """Correct a reservation's spend (a refund, or KIE's real charge); with ``once``, at most one entry per ``ref``.

        ``at`` is the moment the corrected reservation was made (``Reservation.at``; default now), and the correction
        counts at that moment: a task reserved before midnight and settled after it is corrected in the day it was
        reserved in, so its refund cannot reopen today's cap, on any server of the workspace whatever its time zone.
        ``day``: the local date the reservation is labelled with (``Reservation.day``), written beside it for an older
        kie-mcp sharing the journal; given without ``at`` (a reservation an older kie-mcp made, which keeps no moment),
        the correction counts by that label alone, as the reservation does. ``reserved`` is what the corrected request
        reserved: a correction never takes off more than that (KIE reporting a charge of -1000 for one task cannot
        erase what other tasks spent), nor more than the reservation's day holds (its local day here, from the
        midnight before ``at`` to the next). A correction that is not a number is not booked: the reservation stands.
        The reservation's moment holds even when the clock now reads earlier (a server restarted further west, or a
        clock set back): booked on that earlier day, a refund was cut to what it held (often nothing, and never
        again) or reopened its cap. ``settles``: the reservation's entry (``Reservation.entry``) when this gives back
        the share of one of its creates that was not sent: counted as such in the same transaction
        (``journal.UNSENT_DOWN``), so that a start never gives it back again once this server is gone; one a start
        gave back already (it took this server for stopped) is not booked again, and returns False."""
        if not math.isfinite(delta):
            return False
        same = _ONE_CHARGE if reason in _ONE_CHARGE else (reason, reason)  # a task's charge: however it was learned
        seen = "SELECT 1 FROM spend WHERE ref = ? AND reason IN (?, ?) LIMIT 1"
        # Booked before (the follower settled the task, and its call settles it again): a read, which never waits for
        # another writer's lock, so a settling that has nothing to write takes no write lock either.
        if once and ref and self.journal.query(seen, ref, *same):
            return False
        with self.journal.transaction(durable=True) as db:  # what KIE charged or refunded: kept through a power loss
            if once and ref and db.execute(seen, (ref, *same)).fetchone():  # booked meanwhile, by another writer
                return False
            if settles is not None and not db.execute(UNSENT_DOWN, (settles,)).rowcount:
                return False  # a start took its server for stopped and gave it back already (``book_unsent``)
            self._correct(db, delta, reason, ref, at=at, day=day, reserved=reserved)
        return True

    def _correct(
        self,
        db: sqlite3.Connection,
        delta: float,
        reason: str,
        ref: str | None,
        *,
        at: float | None,
        day: date | None,
        reserved: float | None,
    ) -> float:
        """Book one correction in ``db``, a write transaction (``adjust``: what ``at``, ``day`` and ``reserved`` are),
        cut to what it may take off. Returns what was booked."""
        at = _moment(at)
        if day is None:
            at = self._clock() if at is None else at
            day = self.day_of(at)
        window = day if at is None else self.day_of(at)  # the reservation's local day here
        holds = _day_sum(db, self._day_values(window))
        floor = -holds if reserved is None else -min(holds, _refundable(reserved))
        booked = max(delta, floor)
        Journal.add_spend(db, day, booked, reason, ref, counted_at=at)
        return booked

    def settle_task(
        self, task_id: str, reserved: float, charged: float, reason: str, *, at: float | None, day: date | None
    ) -> bool:
        """Replace one task's reservation by what KIE charged for it (0 for a failed task), once per task ever, at
        the reservation's moment ``at`` (and with its ``day``: ``adjust``); never taking off more than that task
        reserved."""
        return self.adjust(charged - reserved, reason, task_id, once=True, at=at, day=day, reserved=reserved)

    def refund_failed_task(
        self, task_id: str, reserved: float, reported: Any, *, at: float | None, day: date | None
    ) -> bool:
        """Give back a failed task's reservation, less a charge KIE ``reported`` for it (``readable_charge``: a
        "charge" that is no number or not above 0 is none), once per task ever, at the reservation's moment ``at`` (and
        with its ``day``). A charge that cannot be what KIE charged (1e308, or 5000 for an 8-credit task) gives nothing
        back and takes nothing more: the reservation stays counted, as for a succeeded task's unreadable charge (KIE
        usually refunds a failed task, but what it did here is not known; https://kie.ai/logs shows it). Its entry
        of 0 marks the task settled, so that no start looks at it again."""
        return self.settle_task(task_id, reserved, failed_charge(reported, reserved), TASK_FAILED, at=at, day=day)

    def book_owed_refunds(self, since: float = OWED_SINCE) -> list[float]:
        """Book every refund the journal shows is owed and does not hold, each once ever (``adjust`` with ``once``,
        by its create or task: two servers starting at once on the workspace book it once, and a server that still
        owes it in memory books nothing when it writes it later), at the moment its reservation was made: a create
        KIE refused or that never left (its attempt ``refused``), or that KIE answered with a task it already had,
        gives back its share of its call's reservation (the attempt keeps both since ``begin_attempt`` did); a failed
        task gives back its reservation, less a charge KIE reported for it. What its call or the follower would have
        booked then, had the journal taken it before their server stopped (one an older kie-mcp reserved, which keeps
        no moment: on the day it names). And a reservation whose process is gone gives back the shares of its creates
        that were never begun, nor given back as not sent (``book_unsent``). Never a create of unknown outcome, still
        being sent, or that made a task (KIE may have charged for it), nor an attempt an older kie-mcp wrote without
        its share. Those of the last ``since`` seconds are looked at (index searches: nothing is written when nothing is
        owed). Returns the credits of each refund booked."""
        after = time.time() - since
        booked = self.book_unsent(after)
        had = (len(ALREADY_HAD_ANSWER), ALREADY_HAD_ANSWER)
        found = self.journal.query(OWED_BY_CREATES, after, after, *had, REFUSED, ALREADY_HAD)
        for row in found:
            share, day, at = _finite(row["reserved"]), _day(row["reserved_on"]), _moment(row["reserved_at"])
            if share is None or share <= 0 or (day is None and at is None):
                continue
            reason = REFUSED if row["state"] == "refused" else ALREADY_HAD
            if self.adjust(-share, reason, row["attempt_id"], once=True, at=at, day=day, reserved=share):
                booked.append(share)
        for row in self.journal.query(OWED_BY_TASKS, after, TASK_FAILED):
            try:
                record = json.loads(row["record"])
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            reserved = record.get("credits_reserved")
            reserved = _finite(record.get("credits_quoted") if reserved is None else reserved)
            if reserved is None or reserved <= 0:
                continue
            at, day = _moment(record.get("reserved_at")), _day(record.get("reserved_on"))
            if at is None and day is None:  # an older kie-mcp's record: the day the task was made
                day = self.day_of(row["created"])
            reported = reported_charge(record.get("credits_charged"), record.get("charge_unreadable"))
            given = reserved - failed_charge(reported, reserved)  # 0: its charge unreadable
            if self.refund_failed_task(row["task_id"], reserved, reported, at=at, day=day):
                booked += [given] if given > 0 else []  # a charge KIE made, or kept counted: no refund to announce
        return booked

    def book_unsent(self, after: float) -> list[float]:
        """Give back, once ever, the shares of the creates that reservations made since ``after`` (epoch seconds) by
        a process now gone (``processes.owner_gone``: this machine's) neither began nor gave back as not sent
        (``journal.SPEND_COLUMNS``): a create is begun, its attempt written, before it is sent, so none of them reached
        KIE. Their process stopped before it could send them (killed while a create waited for its turn in KIE's
        window), or before the journal took their refund (another program held its lock, the disk was full: owed in
        memory). Each counts at its reservation's moment, as its call would have booked it. A reservation whose process
        runs, or that this machine cannot tell about (another machine's, another PID namespace's), is left as it is:
        its call may still send them. Checked and booked in one transaction each, so two servers starting at once book
        it once. Returns the credits of each refund booked."""
        booked: list[float] = []
        for row in self.journal.query(OWED_BY_UNSENT, after):
            if owner_gone(row["owner"]) is not True:
                continue
            with self.journal.transaction(durable=True) as db:  # what it gives back: kept through a power loss
                entry = db.execute(UNSENT_ENTRY, (row["id"],)).fetchone()
                if entry is None:  # booked meanwhile, by another start
                    continue
                total, creates, unsent = _finite(entry["delta"]), entry["creates"], entry["unsent"]
                db.execute("UPDATE spend SET unsent = 0 WHERE id = ?", (row["id"],))
                if total is None or total <= 0 or not isinstance(creates, int) or creates <= 0:
                    continue
                share = total if unsent >= creates else round(round(total / creates, 4) * unsent, 4)
                at, day = _moment(entry["counted_at"]), _day(entry["day"])
                booked.append(-self._correct(db, -share, UNSENT, None, at=at, day=day, reserved=share))
        return booked


class Ledger(SpendBook):
    """Today's spend through this workspace, from the journal (``SpendBook``), held to the caps. Reservations and
    corrections are transactions, so parallel calls, or two server processes, cannot both slip under a cap."""

    def __init__(
        self, journal: Journal, caps: Caps, clock: Callable[[], float] = time.time, zone: tzinfo | None = None
    ) -> None:
        super().__init__(journal, clock, zone)
        self.caps = caps
        # Held reservations of this process whose release the journal could not take (a full disk): released at the
        # next look at the ledger that can write it, or as its runtime closes (``close``).
        self._owed: set[str] = set()
        # The reservations this ledger holds for input files uploading now (``reserve`` with ``held``) that no call
        # kept or released yet: given back as its runtime closes (``close``), after which it reserves nothing more.
        self._held: set[str] = set()
        self._closed = False

    def spent_today(self) -> float:
        """Today's spend, held reservations that nobody holds any more released first (``HELD_REF``). One look at the
        journal for both while none is held (nearly always: one is held only while input files go up)."""
        _, day, start = self.now()
        [row] = self.journal.query(SPENT_AND_HELD, start, day.isoformat(), HELD_REF, _HELD_END, HELD)
        if not row["held"]:
            return round(max(float(row["total"]), 0.0), 4)
        self._release_abandoned()
        [row] = self.journal.query(TODAY_SUM, start, day.isoformat())
        return round(max(float(row[0]), 0.0), 4)

    def reserve(
        self,
        total: float | None,
        ref: str | None = None,
        *,
        max_credits: float | None = None,
        ceiling: float | None = None,
        most: float | None = None,
        most_why: str = "",
        least: float = 0.0,
        listed: float | None = None,
        counted_why: str = "KIE was seen charging that much",
        held: bool = False,
        tasks: int = 1,
    ) -> Reservation:
        """Count the request as spent now, if the caps allow (raise ``SpendRefused`` otherwise); return the
        credits reserved (the price, or the higher charge KIE was seen making with ``listed`` its price, or for an
        unknown price the most it can cost: ``reservation``) and the moment they count at (and the local date then),
        which every later correction of this spend must use. ``held``: reserved before the request's input files go
        up, under a ref of its own (``HELD_REF``) until ``keep`` makes it the request's (``ref``) or ``release`` gives
        it back. Not synced to the disk on its own: the create attempt written before anything is sent is
        (``Journal.begin_attempt``), and that sync of the journal's log takes this reservation with it; one no create
        followed cost nothing. A closed ledger (``close``) reserves nothing: it raises ``JournalUnavailable``."""
        if self._closed:
            raise JournalUnavailable(CLOSED)
        self._release_abandoned()
        self.now()  # this clock's offset written to the journal first, when it is new there (best effort)
        noted = None
        with self.journal.transaction() as db:
            now, day, start = self.now(db)  # once the write lock is held: the moment the entry is written
            offset = self._offset[1] or 0
            if self._noted != (offset, day):  # the best-effort write found the journal locked (or could not write it):
                try:  # written here, so no spend is booked with its clock unwritten
                    note_clock(db, self.clock, offset, now)
                    noted = (offset, day)
                except sqlite3.OperationalError as err:  # a clocks table another program made: only this write fails
                    log.debug("this clock's offset could not be written to the journal: %s", err)
            spent = _spent_since(db, start, day)
            check_caps(
                total,
                spent,
                self.caps,
                max_credits=max_credits,
                ceiling=ceiling,
                most=most,
                most_why=most_why,
                least=least,
                listed=listed,
                counted_why=counted_why,
                held=functools.partial(_held_since, db, start, day),
                tasks=tasks,
                overcharged=functools.partial(_overcharged_since, db, start, day),
                resets=self.reset_at,
            )
            amount = reservation(total, self.caps, most, least, tasks)
            hold = f"{HELD_REF}{this_process()}:{secrets.token_hex(6)}" if held and amount else None
            entry = None
            if amount:
                reason, kept = ("reserved", ref) if hold is None else (HELD, hold)
                entry = Journal.add_spend(db, day, amount, reason, kept, counted_at=now, creates=max(tasks, 1))
        if noted is not None:
            self._noted = noted
        if hold is not None:
            self._held.add(hold)
            _HOLDING.setdefault(str(self.journal.path), set()).add(hold)
        return Reservation(amount, day, now, hold, entry)

    def held_today(self) -> float:
        """How much of today's spend is held for input files uploading now (0 when the journal cannot tell)."""
        _, day, start = self.now()
        try:
            [row] = self.journal.query(HELD_SUM, HELD_REF, _HELD_END, HELD, start, day.isoformat())
        except JOURNAL_ERRORS:
            return 0.0
        return max(float(row[0]), 0.0)

    @asynccontextmanager
    async def holding(self, booked: Reservation | None) -> AsyncIterator[None]:
        """Run a request's uploads in this block: its held reservation (``booked.held``) is renewed every
        ``HOLD_RENEW`` seconds while they go up, and no longer once the block ends, so a server killed meanwhile leaves
        one that lapses ``HOLD_LEASE`` later, whoever looks and wherever it ran."""
        if booked is None or booked.held is None:
            yield
            return
        renew = "UPDATE spend SET at = ? WHERE ref = ? AND reason = ?"
        async with renewing(self.journal, lambda: (renew, time.time(), booked.held, HELD)):
            yield

    def keep(self, booked: Reservation, ref: str | None) -> bool:
        """Make a held reservation the request's (``ref``: the quote it used), as ``reserve`` books one: its input
        files are up and its creates are about to be sent. False when it is no longer held (released as abandoned: its
        lease lapsed, ``HOLD_LEASE``, or given back as the runtime closed, ``close``): nothing is reserved for the
        request then."""
        if booked.held is None:
            return True
        if self._closed:
            return False
        with self.journal.transaction() as db:
            kept = db.execute(
                "UPDATE spend SET reason = 'reserved', ref = ? WHERE ref = ? AND reason = ?", (ref, booked.held, HELD)
            ).rowcount
        self._held.discard(booked.held)
        _HOLDING.get(str(self.journal.path), set()).discard(booked.held)
        return kept > 0

    def release(self, booked: Reservation | None) -> None:
        """Give back a held reservation whose request sent nothing (an upload failed, the call was cut off): it was
        never spent, so it leaves no entry. A journal that cannot take it now (a full disk) gets it at the next look
        at the ledger; it never raises. A reservation already kept is not touched."""
        if booked is None or booked.held is None:
            return
        self._held.discard(booked.held)
        try:
            with self.journal.transaction() as db:
                db.execute("DELETE FROM spend WHERE ref = ? AND reason = ?", (booked.held, HELD))
        except JOURNAL_ERRORS:
            self._owed.add(booked.held)
            return
        self._owed.discard(booked.held)
        _HOLDING.get(str(self.journal.path), set()).discard(booked.held)

    def close(self) -> None:
        """Give back, as its runtime closes and before the journal does, every reservation this ledger holds for input
        files uploading that no call kept or released (``_held``), and those whose release the journal could not take
        (``_owed``); from then on it reserves nothing (``reserve`` raises, ``keep`` keeps nothing). A held reservation
        has sent nothing (its creates come once ``keep`` made it the request's), so it is no spend; a reservation kept
        is the spend of creates that may have been sent, and stays as it is. A journal that cannot take it now leaves
        it to lapse ``HOLD_LEASE`` later, as a killed server's does. Never raises."""
        self._closed = True
        refs = self._held | self._owed
        if not refs:
            return
        try:
            with self.journal.transaction() as db:
                db.executemany("DELETE FROM spend WHERE ref = ? AND reason = ?", [(ref, HELD) for ref in refs])
        except JOURNAL_ERRORS:
            return
        self._held.clear()
        self._owed.clear()
        _HOLDING.get(str(self.journal.path), set()).difference_update(refs)

    def _release_abandoned(self) -> None:
        """``_release_abandoned`` in a transaction of its own, when there is any held reservation to look at (nearly
        never: one is held only while input files go up); a journal that cannot take it leaves it for the next look."""
        try:
            if not self.journal.query(HELD_QUERY + " LIMIT 1", HELD_REF, _HELD_END, HELD):
                return
            with self.journal.transaction() as db:
                released = _release_abandoned(db, self._owed)
        except JOURNAL_ERRORS:
            return
        self._owed.difference_update(released)

    def overcharged_today(self) -> float:
        """How much more than their reservations KIE charged today's tasks (0 when the journal cannot tell)."""
        _, day, start = self.now()
        try:
            [row] = self.journal.query(OVERCHARGED_SUM, start, *_ONE_CHARGE, day.isoformat(), *_ONE_CHARGE)
        except JOURNAL_ERRORS:
            return 0.0
        return max(float(row[0]), 0.0)

    def over_cap(self) -> str | None:
        """Why spending is refused for the rest of today, when today's spend is over the daily cap in force: KIE's
        real charges pushed past it, or the cap is lower than what was spent under another (``over_cap_words``)."""
        spent = self.spent_today()
        if spent > self.caps.per_day:
            return (
                f"{over_cap_words(spent, self.caps, self.overcharged_today())} Further spends are refused until "
                f"{self.reset_at() or 'midnight (local time)'}; the user can "
                f"{raise_cap(PER_DAY, self.caps.per_day_from)}."
            )
        return None


# The creates settled as not charged since a moment (refused; KIE already had the task) whose refund is not booked.
OWED_BY_CREATES = (
    "SELECT attempt_id, state, reserved, reserved_on, reserved_at FROM attempts a WHERE reserved > 0"
    " AND ((state = 'refused' AND created >= ?) OR (state = 'created' AND created >= ?"
    " AND substr(error, 1, ?) = ?))"
    " AND NOT EXISTS (SELECT 1 FROM spend s WHERE s.ref = a.attempt_id AND s.reason IN (?, ?))"
)
# The tasks failed since a moment whose refund is not booked.
OWED_BY_TASKS = (
    "SELECT task_id, record, created FROM tasks t WHERE state = 'failed' AND created >= ?"
    " AND NOT EXISTS (SELECT 1 FROM spend s WHERE s.ref = t.task_id AND s.reason = ?)"
)
# The reservations since a moment with creates neither begun nor given back (``journal.SPEND_COLUMNS``), an index
# search (``spend_unsent``: none but while calls send), and one of them as a start books it.
OWED_BY_UNSENT = "SELECT id, owner FROM spend WHERE unsent > 0 AND counted_at >= ? AND reason = 'reserved'"
UNSENT_ENTRY = (
    "SELECT delta, day, counted_at, creates, unsent FROM spend WHERE id = ? AND unsent > 0 AND reason = 'reserved'"
)
HELD_QUERY = "SELECT id, ref, at FROM spend WHERE ref >= ? AND ref < ? AND reason = ?"
# The workspace's clocks (``journal.CLOCKS``): an offset counts for two days after a server last wrote it, read again
# on the request path at most every few seconds (a reservation reads them under its lock), and this clock's looked at
# once a minute. Values: the moment two days ago.
ZONES_KEPT = 2 * 86400.0
ZONES_REREAD = 5.0
OFFSET_CHECK = 60.0
# A row another program wrote (not a whole number of seconds, or further from UTC than any clock: 26 h) is no clock.
ZONES_SEEN = (
    "SELECT offset_seconds FROM clock_zones WHERE seen >= ?"
    " AND typeof(offset_seconds) = 'integer' AND abs(offset_seconds) <= 93600"
)
# A clock's offset and when it was seen; the later of two writes stands (two servers on one clock).
CLOCK_SEEN = (
    "INSERT INTO clock_zones (clock, offset_seconds, seen) VALUES (?, ?, ?) ON CONFLICT(clock) DO UPDATE SET"
    " offset_seconds = excluded.offset_seconds, seen = excluded.seen WHERE excluded.seen >= clock_zones.seen"
)
DAY = 86400.0
# Today's spend as a server counts it: the entries counting at its last midnight or later (a later moment too: one
# written before the clock was set back still counts), whichever server wrote them and in whatever time zone; and
# those an older kie-mcp wrote with only a day's label (no moment), by today's label. Two index searches of
# ``spend_moment``, read from the index alone. Values: today's first moment, today's date.
_SINCE = "SELECT COALESCE(SUM(delta), 0) FROM spend WHERE counted_at >= ?"
_LABELLED = "SELECT COALESCE(SUM(delta), 0) FROM spend WHERE counted_at IS NULL AND day = ?"
TODAY_SUM = f"SELECT ({_SINCE}) + ({_LABELLED})"
# What one local day holds (a correction's floor, ``Ledger.adjust``): the entries counting from its midnight to the
# next, and those labelled with it alone. Values: ``_day_values``.
DAY_SUM = f"SELECT ({_SINCE} AND counted_at < ?) + ({_LABELLED})"
# What of today's spend is held for input files uploading (values: the held refs' range, ``HELD``, then as TODAY_SUM).
HELD_SUM = (
    "SELECT COALESCE(SUM(delta), 0) FROM spend WHERE ref >= ? AND ref < ? AND reason = ?"
    " AND (counted_at >= ? OR (counted_at IS NULL AND day = ?))"
)
# Today's spend (``TODAY_SUM``) and whether any reservation is held (``HELD_QUERY``), in one look.
SPENT_AND_HELD = f"SELECT ({_SINCE}) + ({_LABELLED}) AS total, EXISTS ({HELD_QUERY}) AS held"
# What charges above their reservations added to today's spend: the only way past the daily cap in force when every
# reservation was (a charge below its reservation frees room that later reservations may take, so it is not netted).
# Values: today's first moment, the two reasons of a charge, today's date, the two reasons again.
_CHARGES_ABOVE = " AND reason IN (?, ?) AND delta > 0"
OVERCHARGED_SUM = f"SELECT ({_SINCE}{_CHARGES_ABOVE}) + ({_LABELLED}{_CHARGES_ABOVE})"


@asynccontextmanager
async def renewing(journal: Journal, renewal: Callable[[], tuple[Any, ...]]) -> AsyncIterator[None]:
    """Run a block while a lease it holds in ``journal`` is renewed every ``HOLD_RENEW`` seconds (``renewal``: the
    statement and its values, made at each turn), and no longer once it ends; the block's own error is raised as it
    raised it. Best effort: a journal another writer holds now skips a turn rather than wait on the event loop, and
    one that cannot be written is left for the next turn."""

    async def renew() -> None:
        while True:
            await anyio.sleep(HOLD_RENEW)
            with contextlib.suppress(*JOURNAL_ERRORS):
                if not journal.locked_now():
                    journal.execute(*renewal())

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(renew)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
    except BaseExceptionGroup as raised:  # the body's own error, as it raised it (the renewal only ends cancelled)
        error = raised.exceptions[0] if len(raised.exceptions) == 1 else raised
        raise error from error.__cause__


def release_held_here(seconds: float = STOP_SECONDS) -> None:
    """Give back every reservation this process holds for input files uploading, as it stops (``cli``: a SIGTERM, a
    second signal, Ctrl-C): their uploads end with it and nothing is sent. On a connection of its own (the stop may
    come in the middle of a write on the shared one), waiting ``seconds`` at most for another writer; never raises.
    What it cannot give back lapses ``HOLD_LEASE`` later."""
    prefix = f"{HELD_REF}{this_process()}:"
    delete = "DELETE FROM spend WHERE ref >= ? AND ref < ? AND reason = ?"
    give_back_at_stop(_HOLDING, lambda db, _: db.execute(delete, (prefix, f"{prefix[:-1]};", HELD)), seconds)


def give_back_at_stop(
    holding: dict[str, set[str]], give_back: Callable[[sqlite3.Connection, set[str]], object], seconds: float
) -> None:
    """For each journal in ``holding`` (its path -> what this process holds there), ``give_back`` what it holds, as the
    process stops: on a connection of its own (the stop may come in the middle of a write on the shared one), waiting
    ``seconds`` at most for another writer. Never raises."""
    for path, held in [(path, held) for path, held in holding.items() if held and path != ":memory:"]:
        with contextlib.suppress(Exception):
            db = sqlite3.connect(path, timeout=seconds, isolation_level=None)
            try:
                give_back(db, held)
            finally:
                db.close()
            holding.pop(path, None)


def note_clock(db: sqlite3.Connection, clock: str, offset: int, moment: float) -> None:
    """Write ``clock``'s ``offset`` from UTC (seconds), seen at ``moment``, to the clocks table (made when missing)."""
    db.execute(CLOCKS)
    db.execute(CLOCK_SEEN, (clock, offset, moment))


def note_this_clock(journal: Journal) -> None:
    """Write this computer's offset from UTC now to ``journal`` (a runtime opening it), best effort."""
    now = time.time()
    book = SpendBook(journal)
    offset = book.offset_at(now)
    try:  # never waited for at the start: when locked, the ledger's first look (or its first reservation) writes it
        journal.write_now(lambda db: note_clock(db, book.clock, offset, now))
    except JOURNAL_ERRORS as err:
        log.debug("this clock's offset could not be written to the journal: %s", err)


def last_midnight(moment: float, offset: int) -> float:
    """The last midnight at or before ``moment`` of a clock ``offset`` seconds from UTC (epoch seconds)."""
    return math.floor((moment + offset) / DAY) * DAY - offset


def utc_offset_text(offset: int) -> str:
    """An offset from UTC as people write it: ``UTC+11:00``, ``UTC-03:30``."""
    sign, rest = ("-", -offset) if offset < 0 else ("+", offset)
    return f"UTC{sign}{rest // 3600:02d}:{rest % 3600 // 60:02d}"


def midnight(day: date) -> float:
    """The first moment of the local ``day`` (epoch seconds); where the clocks skip midnight, the moment they skip it
    (Python's reading of a local time in a gap)."""
    return datetime.combine(day, datetime.min.time()).timestamp()


def _spent_since(db: Any, start: float, day: date) -> float:
    """Today's spend (``TODAY_SUM``), today beginning at ``start`` on the local date ``day``."""
    row = db.execute(TODAY_SUM, (start, day.isoformat())).fetchone()
    return max(float(row[0]), 0.0)


def _day_sum(db: Any, values: tuple[float, float, str]) -> float:
    """What a local day holds (``DAY_SUM``; ``values``: ``Ledger._day_values``)."""
    row = db.execute(DAY_SUM, values).fetchone()
    return max(float(row[0]), 0.0)


def _held_since(db: Any, start: float, day: date) -> float:
    """What the held reservations of today count (``_spent_since``'s day)."""
    row = db.execute(HELD_SUM, (HELD_REF, _HELD_END, HELD, start, day.isoformat())).fetchone()
    return max(float(row[0]), 0.0)


def _overcharged_since(db: Any, start: float, day: date) -> float:
    """What KIE's charges of today's tasks added to their reservations (``_spent_since``'s day)."""
    row = db.execute(OVERCHARGED_SUM, (start, *_ONE_CHARGE, day.isoformat(), *_ONE_CHARGE)).fetchone()
    return max(float(row[0]), 0.0)


def _release_abandoned(db: Any, owed: set[str]) -> list[str]:
    """Delete the held reservations nobody holds any more: their process is gone (killed while its input files went
    up), or they went unrenewed for ``HOLD_LEASE`` (whoever held them: a process this machine cannot see, or one that
    stopped uploading without letting them go), or this process could not release them when it let them go
    (``owed``). Their requests sent nothing, so nothing of them is spent. Returns the refs released."""
    now, released = time.time(), []
    for row in db.execute(HELD_QUERY, (HELD_REF, _HELD_END, HELD)).fetchall():
        owner = str(row["ref"])[len(HELD_REF) :].rpartition(":")[0]
        if row["ref"] in owed or owner_gone(owner) is True or now - row["at"] > HOLD_LEASE:
            db.execute("DELETE FROM spend WHERE id = ?", (row["id"],))
            released.append(str(row["ref"]))
    return released


def _finite(value: Any) -> float | None:
    """``value`` as a finite number, or None (a hand edit, an older record)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _moment(value: Any) -> float | None:
    """``value`` as a moment that has a local date (epoch seconds), or None (none kept, a hand edit)."""
    moment = _finite(value)
    if moment is None:
        return None
    try:
        datetime.fromtimestamp(moment)
    except (OverflowError, OSError, ValueError):
        return None
    return moment


def _day(value: Any) -> date | None:
    """A date the journal keeps as ISO text, or None."""
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _refundable(amount: float) -> float:
    """The most a correction of a reservation of ``amount`` may give back: a finite number, at least 0."""
    return amount if math.isfinite(amount) and amount > 0 else 0.0
