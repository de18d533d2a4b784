"""The daily cap holds across time zones: kie-mcp servers on one workspace whose clocks are in different zones (a
UTC container beside a desktop client in Sydney or Los Angeles) count each other's spend against it.

The audit: the ledger kept every spend entry under the local date of the server that wrote it, and each server
counted only its own date's, so two servers a day apart let 10 creates (80 credits) through under
KIE_MAX_CREDITS_PER_DAY=40. Each entry now counts at a moment (its reservation's, which its refunds and KIE's charge
share), and each server counts what counts at its own last midnight or later; an entry an older kie-mcp wrote, with
only its date, counts on that date as before, so mixing versions loses no spend from the count.

The servers that spend "in another time zone" are real processes with another ``TZ``: the console script over
stdio for the whole promise, and a small Python child using the ledger for the units (both run the code under test,
through PYTHONPATH).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from kie_mcp.journal import Journal, journal_path
from kie_mcp.sandbox import SimConfig, Simulator
from kie_mcp.spend import Caps, Ledger, SpendRefused
from kie_mcp.spend.ledger import TASK_FAILED

from .childsite.sitecustomize import CLOCK_SHIFT
from .conftest import CREATE_PATHS, served_over_tcp, text_of
from .test_promise_start import client_env, console_script

KEY = "kie-day-moments-3b9e51c07d2a4f68e1c5"  # a key of the simulator's account, as a real one would be
IMAGE = {"model": "nano-banana-2", "variations": 4}  # 4 x 8 credits
# UTC-12 and UTC+14: 26 hours apart, so their dates differ at every moment.
WEST, EAST = "Etc/GMT+12", "Etc/GMT-14"


def another_zone() -> str:
    """Of ``WEST`` and ``EAST``, one whose date now is not this process's local date (one of them always is not)."""
    here = datetime.now().date()
    return next(zone for zone in (WEST, EAST) if datetime.now(ZoneInfo(zone)).date() != here)


SPEND_THERE = """
import sys
from kie_mcp.journal import Journal
from kie_mcp.spend import Caps, Ledger
journal = Journal(sys.argv[1])
Ledger(journal, Caps(1000, 1000)).reserve(float(sys.argv[2]), "q_there")
journal.close()
"""


def spend_in(zone: str, path: Path, credits: float) -> None:
    """``credits`` reserved now against the journal at ``path`` by a kie-mcp process whose clock is in ``zone``."""
    env = {**os.environ, "TZ": zone}
    subprocess.run([sys.executable, "-c", SPEND_THERE, str(path), str(credits)], env=env, check=True, timeout=60)


def local(*when: int) -> float:
    """The moment a local date and time names (epoch seconds): what a ledger's clock reads then."""
    return datetime(*when).timestamp()  # type: ignore[arg-type]


# -- the whole promise, over real stdio ------------------------------------------------------------------------------


async def two_servers_spend(tmp_path: Path, *servers: tuple[str, float]) -> tuple[list[object], list[object]]:
    """Two real servers (the console script) on one workspace and one KIE (the simulator, counting creates as they
    arrive), each with KIE_MAX_CREDITS_PER_DAY=40, in the time zones ``servers`` name, their clocks moved by the
    seconds they give (``CLOCK_SHIFT``): each asks for a request of 32 credits (4 images), in turn, both running
    throughout. Returns the answers, and the creates KIE received."""
    sim = Simulator(SimConfig(speed=1000.0), keys={KEY: "default"})
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    answers = []
    async with served_over_tcp(sim) as base, AsyncExitStack() as stack:
        clients = []
        for n, ((zone, shift), mode) in enumerate(zip(servers, ("auto", "legacy"), strict=True)):  # both eras
            env = client_env(
                tmp_path / "home",
                TZ=zone,
                KIE_API_KEY=KEY,
                KIE_BASE_URL=base,
                KIE_UPLOAD_BASE_URL=base,
                KIE_WORKSPACE=str(workspace),
                KIE_CATALOG_SYNC="off",
                KIE_MAX_CREDITS_PER_DAY="40",
                KIE_AUTO_APPROVE_CREDITS="40",
                **({CLOCK_SHIFT: str(shift)} if shift else {}),
            )
            errlog = stack.enter_context((tmp_path / f"server-{n}.err").open("w"))
            params = StdioServerParameters(command=console_script(), args=[], env=env)
            clients.append(await stack.enter_async_context(Client(stdio_client(params, errlog=errlog), mode=mode)))
        for client, prompt in zip(clients, ("a red apple", "a green pear"), strict=True):
            answers.append(await client.call_tool("generate_image", {**IMAGE, "prompt": prompt}))
    return answers, [request for request in sim.requests if request.path in CREATE_PATHS]


@pytest.mark.stdio
async def test_two_servers_a_day_apart_on_one_workspace_send_no_more_than_one_daily_cap_allows(tmp_path):
    """One server in UTC-12 and one in UTC+14, so their dates always differ. The first sends a request of 32 credits;
    the second's request of 32 more must be refused by the cap, and KIE receives only the first one's 4 creates.
    Before, the second server counted only its own date's spend (0) and sent 4 more."""
    (first, second), creates = await two_servers_spend(tmp_path, (WEST, 0), (EAST, 0))
    assert not first.is_error and len(first.structured_content["tasks"]) == 4, text_of(first)
    assert len(creates) == 4, (len(creates), text_of(second))
    said = text_of(second)
    assert second.is_error and "only 8 of today's cap of 40 (KIE_MAX_CREDITS_PER_DAY) are left" in said, said


def turn_taking_zones(now: float) -> tuple[str, str]:
    """Two time zones for servers taking turns 12 hours apart, one spending at ``now`` less 12 hours and the other
    at ``now``: the first's clock reads about 17:00 at ``now`` (so its turn was at about 05:00 its time, after its
    midnight), the second's about 05:00 (its midnight came after the first's turn)."""
    hour = datetime.fromtimestamp(now, UTC)
    second = round(5 - hour.hour - hour.minute / 60)
    second = second + 24 if second < -12 else second - 24 if second > 14 else second
    first = second + 12 if second <= 2 else second - 12
    return tuple(f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT" for offset in (first, second))  # type: ignore[return-value]


@pytest.mark.stdio
async def test_servers_taking_turns_after_their_own_midnights_send_no_more_than_one_daily_cap_allows(tmp_path):
    """The turn-taking the audit left: a server spends 32 credits early in its day, and 12 hours later another server
    on the workspace, in a time zone whose midnight came in between, asks for 32 more. Each server's day holds both
    spends (the first's from its midnight to its next one), so the second is refused, and KIE receives 4 creates. The
    first server runs with its clock 12 hours back, so both run at once. Before, the second counted from its own
    midnight only, after the first's spend, and sent 4 more: one cap each, every day."""
    earlier, later = turn_taking_zones(time.time())
    (first, second), creates = await two_servers_spend(tmp_path, (earlier, -12 * 3600.0), (later, 0))
    assert not first.is_error and len(first.structured_content["tasks"]) == 4, text_of(first)
    assert len(creates) == 4, (len(creates), text_of(second))
    said = text_of(second)
    assert second.is_error and "only 8 of today's cap of 40 (KIE_MAX_CREDITS_PER_DAY) are left" in said, said
    assert "run in other time zones too" in said, said  # and when the cap resets is said as it really does


# -- the ledger ------------------------------------------------------------------------------------------------------


def test_a_spend_a_server_in_another_time_zone_made_counts_against_today_s_cap_here(tmp_path):
    """A reservation made a moment ago by a kie-mcp process whose date is not this one's counts in today's spend here,
    and the cap refuses what would pass it."""
    path = tmp_path / "journal.sqlite3"
    ledger = Ledger(Journal(path), Caps(per_call=100, per_day=40))
    spend_in(another_zone(), path, 32)
    assert ledger.spent_today() == 32
    with pytest.raises(SpendRefused, match=r"only 8 of today's cap of 40 .* \(32 spent today\)"):
        ledger.reserve(32)
    ledger.reserve(8)


def test_a_refund_after_midnight_of_a_reservation_made_before_it_never_reopens_today_s_cap(tmp_path):
    """Reserved at 23:59:30 (600 credits for a price not known before it runs), refunded at 00:00:30 when the task
    failed: the refund counts at the reservation's moment, in yesterday, so today's spend (500 since midnight) is what
    it was and today's cap has 500 left, not 1100."""
    now = [local(2026, 11, 21, 23, 59, 30)]
    ledger = Ledger(Journal(tmp_path / "j.sqlite3"), Caps(per_call=600, per_day=1000), clock=lambda: now[0])
    late = ledger.reserve(None, "q_late")
    now[0] = local(2026, 11, 22, 0, 0, 30)
    ledger.reserve(500, "q_today")
    assert ledger.refund_failed_task("t_late", late.credits, None, at=late.at, day=late.day)
    assert ledger.spent_today() == 500
    assert ledger.spent_on(date(2026, 11, 21)) == 0  # the refund went to the day its reservation counts in
    ledger.reserve(500, "q_more")
    with pytest.raises(SpendRefused, match="only 0 of today's cap"):
        ledger.reserve(1, "q_over")


def test_a_spend_counted_before_the_clock_was_set_back_still_counts_today(tmp_path):
    """The clock set back a day (or a server restarted further west): what was spent at the later moment counts in
    today's spend until it is corrected, and its refund, at its own moment, gives it back."""
    now = [local(2026, 12, 5, 12)]
    ledger = Ledger(Journal(tmp_path / "j.sqlite3"), Caps(per_call=10, per_day=10), clock=lambda: now[0])
    ahead = ledger.reserve(8, "q_ahead")
    now[0] = local(2026, 12, 4, 12)
    assert ledger.spent_today() == 8
    with pytest.raises(SpendRefused, match=r"only 2 of today's cap"):
        ledger.reserve(8, "q_now")
    assert ledger.settle_task("t_ahead", ahead.credits, 0.0, TASK_FAILED, at=ahead.at, day=ahead.day)
    assert ledger.spent_today() == 0
    ledger.reserve(8, "q_now")
    assert ledger.spent_on(date(2026, 12, 4)) == 8 and ledger.spent_on(date(2026, 12, 5)) == 0


UTC_CLOCK, SYDNEY_CLOCK = UTC, timezone(timedelta(hours=11))


def utc(*when: int) -> float:
    return datetime(*when, tzinfo=UTC).timestamp()  # type: ignore[arg-type,misc]


def test_servers_taking_turns_after_their_own_midnights_get_one_daily_cap_between_them(tmp_path):
    """The turn-taking the audit left: a UTC container spends the cap (40) at 00:01 UTC, a desktop in Sydney (UTC+11)
    on the same workspace asks for 40 at 13:01 UTC, one minute after its own midnight, and so on every day. Each
    server counts today from the earliest last midnight of the clocks on the workspace, so the desktop is refused (and
    told when the cap really resets); the next day the container spends again. No day, of either clock, holds more
    than one cap. Before, each server counted from its own midnight: 80 a day, one cap each."""
    now = [utc(2026, 12, 1, 0, 0)]
    path = tmp_path / "journal.sqlite3"
    caps = Caps(per_call=40, per_day=40)
    container = Ledger(Journal(path), caps, clock=lambda: now[0], zone=UTC_CLOCK)
    desktop = Ledger(Journal(path), caps, clock=lambda: now[0], zone=SYDNEY_CLOCK)
    assert desktop.spent_today() == 0  # the desktop's server runs: its clock is known on the workspace
    for day in (1, 2, 3):
        now[0] = utc(2026, 12, day, 0, 1)
        container.reserve(40, f"q_container_{day}")
        now[0] = utc(2026, 12, day, 13, 1)  # 00:01 in Sydney
        assert desktop.spent_today() == 40
        with pytest.raises(SpendRefused, match=r"only 0 of today's cap of 40") as refused:
            desktop.reserve(40, f"q_desktop_{day}")
        said = str(refused.value)
        assert "resets at 11:00 (local time) for what was spent before 00:00, and at 00:00 tomorrow" in said, said
        assert "(UTC+00:00; this one in UTC+11:00)" in said, said
        told = desktop.day_words()  # check_credits says when today began here, and when what it holds is gone
        assert told.startswith(
            "Today's spend counts from 11:00 yesterday (local time), and what is counted now has all "
            "stopped counting by 00:00 tomorrow: kie-mcp servers on this workspace run in other"
        ), told
    assert [container.spent_on(date(2026, 12, day)) for day in (1, 2, 3)] == [40, 40, 40]
    assert [desktop.spent_on(date(2026, 12, day)) for day in (1, 2, 3, 4)] == [40, 40, 40, 0]


def test_with_one_time_zone_on_the_workspace_today_begins_at_midnight_as_before(tmp_path):
    """Every clock on the workspace in one zone (nearly every user): today begins at this server's midnight, what was
    spent before it no longer counts, and a refusal says the cap resets at midnight. A clock of another zone last
    seen over two days ago no longer moves today's beginning either."""
    now = [utc(2026, 12, 1, 23, 0)]
    path = tmp_path / "journal.sqlite3"
    caps = Caps(per_call=40, per_day=40)
    ledger = Ledger(Journal(path), caps, clock=lambda: now[0], zone=UTC_CLOCK)
    Ledger(Journal(path), caps, clock=lambda: utc(2026, 11, 29, 12), zone=SYDNEY_CLOCK).spent_today()
    ledger.reserve(40, "q_late")
    now[0] = utc(2026, 12, 2, 0, 1)
    assert ledger.spent_today() == 0
    ledger.reserve(40, "q_early")
    with pytest.raises(SpendRefused, match=r"The cap resets at midnight; "):
        ledger.reserve(1, "q_more")
    assert ledger.day_words() == ""


def test_summer_time_moves_a_clock_s_offset_and_its_old_one_never_reads_as_another_zone(tmp_path):
    """Summer time ends in Berlin (UTC+2 to UTC+1) with one server on the workspace: its new offset replaces the old
    one within a minute, so its day still begins at its own midnight. The review: the clocks were kept by offset,
    the server's own offset of before the change counted as another zone's for two days, and a spend at 23:30 on
    the Sunday still counted on Monday, refused as "servers on this workspace run in other time zones too"."""
    berlin = ZoneInfo("Europe/Berlin")
    now = [datetime(2026, 10, 24, 12, 0, tzinfo=berlin).timestamp()]
    path = tmp_path / "journal.sqlite3"
    ledger = Ledger(Journal(path), Caps(40, 40), clock=lambda: now[0], zone=berlin)
    assert ledger.spent_today() == 0  # summer time: UTC+2, written to the journal
    now[0] = datetime(2026, 10, 25, 23, 30, tzinfo=berlin).timestamp()  # the Sunday summer time ended, UTC+1
    ledger.reserve(30, "q_sunday")
    now[0] = datetime(2026, 10, 26, 0, 30, tzinfo=berlin).timestamp()
    assert ledger.spent_today() == 0
    ledger.reserve(20, "q_monday")
    assert ledger.day_words() == ""
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT offset_seconds FROM clock_zones")] == [3600]


def test_a_spend_made_while_the_journal_was_locked_still_writes_its_clock(tmp_path):
    """The review: this clock's offset was written only by a best-effort write that never waits, tried again a
    minute later; a server whose first looks found the journal locked booked its spend with its clock unwritten,
    and a server in another zone then took a cap of its own the same day. The reservation writes it under its lock."""
    now = [utc(2026, 12, 1, 13, 1)]  # 00:01 in Sydney
    path = tmp_path / "journal.sqlite3"
    caps = Caps(per_call=40, per_day=40)
    container = Ledger(Journal(path), caps, clock=lambda: now[0], zone=UTC_CLOCK)
    container.spent_today()
    desktop = Ledger(Journal(path), caps, clock=lambda: now[0], zone=SYDNEY_CLOCK)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another kie-mcp mid-write: the desktop's look cannot write its clock
    assert desktop.spent_today() == 0
    holder.execute("ROLLBACK")
    holder.close()
    now[0] += 20
    desktop.reserve(40, "q_desktop")
    now[0] = utc(2026, 12, 2, 0, 1)  # the container's midnight: the desktop's day (from 13:00 UTC) still holds 40
    with pytest.raises(SpendRefused, match=r"only 0 of today's cap of 40"):
        container.reserve(40, "q_container")


def test_a_clocks_row_another_program_wrote_is_no_clock_and_breaks_nothing(tmp_path):
    """The review: a clocks table with a text offset in it (made by hand, or by another program) made every tool
    answer "kie-mcp hit an unexpected error (ValueError...)". Rows that are no clock are left out; a whole number
    beyond any time zone's offset too."""
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE clock_zones")
        db.execute("CREATE TABLE clock_zones (clock, offset_seconds, seen)")
        rows = [("a", "+11:00", 1e12), ("b", 180000, 1e12), ("c", 2**62, 1e12), ("d", 1.5, 1e12)]
        db.executemany("INSERT INTO clock_zones VALUES (?, ?, ?)", rows)
    ledger = Ledger(Journal(path), Caps(40, 40), zone=UTC_CLOCK)
    assert ledger.spent_today() == 0
    ledger.reserve(10, "q")
    assert ledger.day_words() == ""


OLD_SPEND = """
CREATE TABLE spend (id INTEGER PRIMARY KEY AUTOINCREMENT, day TEXT NOT NULL, delta REAL NOT NULL,
    reason TEXT NOT NULL, ref TEXT, at REAL NOT NULL);
CREATE INDEX spend_day_delta ON spend(day, delta);
CREATE TABLE attempts (attempt_id TEXT PRIMARY KEY, model TEXT NOT NULL, family TEXT NOT NULL, approved_by TEXT,
    quote_id TEXT, prompt TEXT, params TEXT, options_key TEXT, credits_quoted REAL, state TEXT NOT NULL, task_id TEXT,
    error TEXT, session TEXT, created REAL NOT NULL, updated REAL NOT NULL, digest TEXT, owner TEXT,
    answered INTEGER NOT NULL DEFAULT 1, kind TEXT, sandbox INTEGER, parent_task_id TEXT, operation TEXT,
    reserved REAL, reserved_on TEXT);
"""


def old_journal(path: Path, today: date) -> None:
    """A journal as the kie-mcp before moments wrote it (its spend and attempts tables; the rest is made on open):
    today's spend of 38 (a reservation of 24, a charge 6 over it, and a refused create's share of 8 whose refund is
    owed, not booked yet), and yesterday's 100."""
    yesterday = today - timedelta(days=1)
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SPEND)
        rows = [
            (yesterday.isoformat(), 100, "reserved", "q_0"),
            (today.isoformat(), 24, "reserved", "q_1"),
            (today.isoformat(), 6, "charged by KIE", "t_1"),
            (today.isoformat(), 8, "reserved", "q_2"),
        ]
        db.executemany("INSERT INTO spend (day, delta, reason, ref, at) VALUES (?, ?, ?, ?, 1)", rows)
        db.execute(
            "INSERT INTO attempts (attempt_id, model, family, state, created, updated, reserved, reserved_on)"
            " VALUES ('a_refused', 'm', 'market', 'refused', ?, ?, 8, ?)",
            (datetime.now().timestamp(), datetime.now().timestamp(), today.isoformat()),
        )


def test_a_journal_an_older_kie_mcp_wrote_is_upgraded_and_counts_today_s_spend_the_same(tmp_path):
    """Its entries keep only their date: after the upgrade they count on that date, as before (38 today, yesterday's
    100 not), the refund it owes is booked on that date, every lookup of today's spend is still an index search, and
    from then on a spend by a server in another time zone counts too."""
    path = tmp_path / "journal.sqlite3"
    today = datetime.now().date()
    old_journal(path, today)
    journal = Journal(path)
    ledger = Ledger(journal, Caps(per_call=100, per_day=60))
    assert ledger.spent_today() == 38
    assert ledger.book_owed_refunds() == [8]  # the refused create's share, by its date
    assert ledger.spent_today() == 30
    spend_in(another_zone(), path, 20)
    assert ledger.spent_today() == 50
    with pytest.raises(SpendRefused, match=r"only 10 of today's cap of 60"):
        ledger.reserve(20)
    journal.close()
    with sqlite3.connect(path) as db:  # its old index still there, today's spend is read from the new one
        plans = [row[3] for sql, values in _today_lookups() for row in db.execute("EXPLAIN QUERY PLAN " + sql, values)]
    assert not [plan for plan in plans if plan.startswith("SCAN spend")], plans


def _today_lookups() -> list[tuple[str, tuple[object, ...]]]:
    """The statements that read today's spend on the request path, with values."""
    from kie_mcp.spend import ledger

    today = datetime.now().date()
    return [
        (ledger.SPENT_AND_HELD, (0.0, today.isoformat(), ledger.HELD_REF, "held;", ledger.HELD)),
        (ledger.TODAY_SUM, (0.0, today.isoformat())),
    ]


def test_an_older_kie_mcp_s_spend_still_counts_beside_a_newer_server_s_in_another_time_zone(tmp_path):
    """An older kie-mcp still running on the workspace writes entries with only its date: they count on that date,
    beside the spend a server in another time zone made, so mixing versions never loses spend from the count."""
    path = journal_path(tmp_path)
    journal = Journal(path)
    with journal.transaction() as db:  # as an older kie-mcp writes them: no moment
        Journal.add_spend(db, datetime.now().date(), 12, "reserved", "q_older")
        Journal.add_spend(db, datetime.now().date() - timedelta(days=1), 40, "reserved", "q_older_yesterday")
    spend_in(another_zone(), path, 20)
    ledger = Ledger(journal, Caps(per_call=100, per_day=40))
    assert ledger.spent_today() == 32
    with pytest.raises(SpendRefused, match=r"only 8 of today's cap of 40"):
        ledger.reserve(10)
    journal.close()
