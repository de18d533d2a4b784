"""Spend rules as pure units: quotes, caps, the ledger, the gate's order, approvals."""

import threading
from datetime import date, datetime
from types import SimpleNamespace

import pytest

from kie_mcp.catalog import ItemPrice
from kie_mcp.generation import settle
from kie_mcp.journal import Journal
from kie_mcp.spend import (
    ApprovalError,
    Approved,
    Ask,
    Caps,
    Ledger,
    NeedsConfirmation,
    QuoteBook,
    QuoteError,
    SpendRefused,
    check_balance,
    decide,
    grant,
    request_hash,
)
from kie_mcp.spend.approval import Approval
from kie_mcp.tasks import TaskRecord

PRICE = ItemPrice(
    known=True, credits=8, unit="task", breakdown="8 credits per task", source="snap", source_date="2026-06-30"
)


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_hash_binds_model_input_and_count():
    base = request_hash("m", {"prompt": "a", "n": 1}, 1)
    assert base == request_hash("m", {"n": 1, "prompt": "a"}, 1)  # key order does not matter
    assert base != request_hash("m", {"prompt": "b", "n": 1}, 1)
    assert base != request_hash("m", {"prompt": "a", "n": 1}, 2)
    assert base != request_hash("m2", {"prompt": "a", "n": 1}, 1)


def test_quote_is_single_use_bound_and_expires():
    clock = Clock()
    book = QuoteBook(Journal(":memory:"), 600, clock)
    quote = book.issue("nano-banana-2", "h1", PRICE, 2)
    assert quote.credits_total == 16
    assert quote.usd_total == 0.08
    assert book.refusal(quote.quote_id, "h1") is None
    assert "different arguments" in str(book.refusal(quote.quote_id, "h2"))
    book.consume(quote.quote_id, "h1")
    with pytest.raises(QuoteError, match="already used"):
        book.consume(quote.quote_id, "h1")
    late = book.issue("nano-banana-2", "h1", PRICE, 1)
    clock.now += 601
    assert "expired" in str(book.refusal(late.quote_id, "h1"))
    assert "unknown" in str(book.refusal("q_nope", "h1"))


def test_only_one_of_two_racing_calls_can_use_a_quote():
    book = QuoteBook(Journal(":memory:"))
    quote = book.issue("m", "h", PRICE, 1)
    wins = []

    def use():
        try:
            book.consume(quote.quote_id, "h")
            wins.append(1)
        except QuoteError:
            pass

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_caps_and_balance():
    ledger = Ledger(Journal(":memory:"), Caps(per_call=100, per_day=150))
    with pytest.raises(SpendRefused, match="per-call cap of 100"):
        ledger.reserve(101)
    ledger.reserve(100)
    with pytest.raises(SpendRefused, match="only 50 of today's cap"):
        ledger.reserve(60)
    ledger.adjust(-100, "refund")
    ledger.reserve(60)
    assert ledger.spent_today() == 60
    with pytest.raises(SpendRefused, match="has 5 credits"):
        check_balance(8, 5)
    check_balance(None, 0)  # an unknown price is not refused here: a person must approve it


def local(*when: int) -> float:
    """The moment a local date and time names (epoch seconds): what a ledger's clock reads then."""
    return datetime(*when).timestamp()  # type: ignore[arg-type]


def test_daily_spend_resets_at_midnight():
    now = [local(2026, 11, 21, 12)]
    ledger = Ledger(Journal(":memory:"), Caps(100, 100), clock=lambda: now[0])
    ledger.reserve(90)
    now[0] = local(2026, 11, 22, 0, 0, 1)
    assert ledger.spent_today() == 0
    ledger.reserve(90)


def test_a_refund_goes_to_its_reservations_day_even_when_the_local_date_now_reads_earlier():
    """Reserved on the 5th (a server in UTC+14), settled when the date read the 4th (restarted in UTC-12, or the
    clock set back): the refund was booked on the 4th, cut to the nothing it held, never retried, and the 5th kept
    the failed task's 8 credits against its cap; with spend on the 4th, it reopened the 4th's cap instead."""
    now = [local(2026, 12, 5, 12)]
    journal = Journal(":memory:")
    ledger = Ledger(journal, Caps(10, 10), clock=lambda: now[0])
    reservation = ledger.reserve(8)
    now[0] = local(2026, 12, 4, 12)
    ledger.adjust(2, "adjusted")  # real spend on the 4th
    assert ledger.settle_task(
        "t1", reservation.credits, 0.0, "refunded: task failed", at=reservation.at, day=reservation.day
    )
    assert ledger.spent_on(date(2026, 12, 4)) == 2  # the 4th's cap is not reopened by another day's refund
    assert ledger.spent_on(date(2026, 12, 5)) == 0  # the failed task's day gets its credits back
    later = datetime(2026, 12, 5, 12).timestamp()
    assert ledger.day_of(later) == date(2026, 12, 5)  # an older record's day: when it was made, not clamped to today


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"quote_id": "q", "quote_problem": None}, Approved("quote")),
        ({"total": 8, "auto_approve_limit": 10}, Approved("auto")),
        ({"total": 12, "auto_approve_limit": 10, "can_ask": True}, Ask("?")),
        ({"total": None, "auto_approve_limit": 1e9}, NeedsConfirmation()),  # unknown price: never auto
        ({"total": 8, "auto_approve_limit": 0}, NeedsConfirmation()),  # default: always ask
        ({"total": 0, "auto_approve_limit": 10}, NeedsConfirmation()),  # a price of 0 is a broken list: never auto
        ({"total": -5, "auto_approve_limit": 10}, NeedsConfirmation()),
        ({"quote_id": "q", "quote_problem": "expired"}, NeedsConfirmation("expired")),
    ],
)
def test_gate_decisions(kwargs, expected):
    args = {"total": 8, "quote_id": None, "quote_problem": None, "auto_approve_limit": 0, "can_ask": False}
    assert decide(**{**args, **kwargs, "question": "?"}) == expected


def test_approval_counts_creates_and_cannot_be_forged():
    approval = grant("veo3", 2, "quote", 120)
    approval.use_one("veo3")
    with pytest.raises(ApprovalError):
        approval.use_one("veo3_fast")
    approval.use_one("veo3")
    with pytest.raises(ApprovalError, match="no creates left"):
        approval.use_one("veo3")
    with pytest.raises(ApprovalError, match="only by the spend gate"):
        Approval("veo3", 1, "auto", 1, _token=object())


def test_settlement_happens_once_per_task(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    ledger = Ledger(journal, Caps(1000, 1000))
    ledger.reserve(60, "t1")
    assert ledger.adjust(-60, "refunded: task failed", "t1", once=True)
    assert not ledger.adjust(-60, "refunded: task failed", "t1", once=True)
    assert ledger.spent_today() == 0


def test_two_processes_share_one_ledger_and_one_quote(tmp_path):
    """Two journals on one file behave like two server processes on one workspace."""
    first, second = Journal(tmp_path / "j.sqlite3"), Journal(tmp_path / "j.sqlite3")
    caps = Caps(100, 100)
    Ledger(first, caps).reserve(80)
    with pytest.raises(SpendRefused, match="today's cap"):
        Ledger(second, caps).reserve(30)
    quote = QuoteBook(first).issue("m", "h", PRICE, 1)
    QuoteBook(second).consume(quote.quote_id, "h")
    with pytest.raises(QuoteError, match="already used"):
        QuoteBook(first).consume(quote.quote_id, "h")


def test_a_reservation_held_while_inputs_upload_counts_until_it_is_kept_or_released(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    ledger = Ledger(journal, Caps(100, 100))
    held = ledger.reserve(60, "q_1", held=True)
    assert ledger.spent_today() == 60
    with pytest.raises(SpendRefused, match="today's cap"):  # held, it counts against the caps like any reservation
        ledger.reserve(60, "q_2", held=True)
    ledger.release(held)  # the upload failed: nothing was spent
    assert ledger.spent_today() == 0
    kept = ledger.reserve(60, "q_3", held=True)
    assert ledger.keep(kept, "q_3")
    ledger.release(kept)  # kept, it is the request's: only a settlement or a refund corrects it
    assert ledger.spent_today() == 60
    assert [tuple(row) for row in journal.query("SELECT reason, ref, delta FROM spend")] == [("reserved", "q_3", 60)]


def test_a_reservation_a_gone_process_held_is_released_and_a_live_one_s_is_not(tmp_path):
    """A server killed while a request's input files went up leaves its held reservation: the next look at the
    ledger, by any server on the workspace, releases it, so it never holds the daily cap for the rest of the day. One
    a live process holds stays while its upload renews it, and is released once unrenewed for ``HOLD_LEASE``."""
    import subprocess
    import sys
    import time

    from kie_mcp.processes import HOST
    from kie_mcp.spend.ledger import HELD, HELD_REF, HOLD_LEASE

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    journal = Journal(tmp_path / "j.sqlite3")
    with journal.transaction() as db:
        Journal.add_spend(db, date.today(), 40, HELD, f"{HELD_REF}{HOST}-{int(gone.stdout)}-0a0b0c0d:1")
    live = Ledger(journal, Caps(100, 100)).reserve(30, "q_live", held=True)
    ledger = Ledger(Journal(tmp_path / "j.sqlite3"), Caps(100, 100))
    assert ledger.spent_today() == 30  # the gone process's 40 released; the live one's 30 held
    journal.execute("UPDATE spend SET at = ? WHERE ref = ?", time.time() - HOLD_LEASE - 1, live.held)
    assert ledger.spent_today() == 0  # unrenewed past its lease: its upload no longer runs
    assert not Ledger(journal, Caps(100, 100)).keep(live, "q_live")  # its call, still running, must reserve again


@pytest.mark.parametrize("price", [0, -8, float("nan")])
def test_a_price_of_zero_or_less_is_reserved_as_unknown(price):
    ledger = Ledger(Journal(":memory:"), Caps(per_call=600, per_day=1000))
    assert ledger.reserve(price).credits == 600  # the per-call cap, as for any unknown price; never 0
    assert ledger.spent_today() == 600
    with pytest.raises(SpendRefused, match="up to 600 credits are reserved"):
        ledger.reserve(price)


def test_an_unknown_price_is_refused_when_the_caps_leave_nothing_to_reserve():
    ledger = Ledger(Journal(":memory:"), Caps(per_call=0, per_day=1000))
    with pytest.raises(SpendRefused, match=r"per-call cap of 0 \(KIE_MAX_CREDITS_PER_CALL\) leaves nothing"):
        ledger.reserve(None)
    assert ledger.spent_today() == 0


def test_what_an_unknown_price_reserves_is_never_the_caller_s_to_choose():
    """A max_credits below the reservation used to be the reservation (0.01 a call against the daily cap while KIE
    charged its rate): it only refuses what may cost more; the catalogue's most, or the per-call cap, counts."""
    ledger = Ledger(Journal(":memory:"), Caps(per_call=600, per_day=1000))
    assert ledger.reserve(None, max_credits=0.01).credits == 600
    assert ledger.reserve(None, max_credits=40, most=30).credits == 30
    with pytest.raises(SpendRefused, match="at least 125 credits"):
        ledger.reserve(None, max_credits=100, most=300, least=125)
    with pytest.raises(SpendRefused, match="up to 2400 credits for it, over the per-call cap of 600"):
        ledger.reserve(None, most=2400)
    assert ledger.spent_today() == 630


@pytest.mark.parametrize(
    ("per_call", "ceiling", "named", "not_named"),
    [
        (20, 10, "max_credits of 10", "KIE_MAX_CREDITS_PER_CALL"),  # raising the cap would not help
        (10, 30, "per-call cap of 10", "max_credits of"),
        (10, 15, "per-call cap of 10 (KIE_MAX_CREDITS_PER_CALL) (and over the max_credits of 15", None),
    ],
)
def test_a_refusal_names_the_tighter_of_the_per_call_cap_and_max_credits(per_call, ceiling, named, not_named):
    ledger = Ledger(Journal(":memory:"), Caps(per_call=per_call, per_day=1000))
    with pytest.raises(SpendRefused) as refused:
        ledger.reserve(24, max_credits=ceiling)
    assert named in str(refused.value)
    assert not_named is None or not_named not in str(refused.value)
    assert ledger.spent_today() == 0


def video_task(state: str, created: datetime, **fields: object) -> TaskRecord:
    """A video task with 600 credits reserved (an unknown price under a per-call cap of 600)."""
    return TaskRecord(task_id="t1", model="m", family="market", kind="video", state=state, credits_reserved=600.0,
                      created_at=created.timestamp(), **fields)  # fmt: skip


def test_a_task_sent_after_midnight_is_settled_on_the_day_its_reservation_was_booked(tmp_path):
    """Reserved at 23:59:30, created at 00:00:30 after a minute's upload: its record is of the 22nd, its
    reservation counts on the 21st, and KIE's charge corrects the 21st."""
    now = [local(2026, 11, 21, 23, 59, 30)]
    ledger = Ledger(Journal(tmp_path / "j.sqlite3"), Caps(per_call=600, per_day=1000), clock=lambda: now[0])
    booked = ledger.reserve(None, "q_late")
    now[0] = local(2026, 11, 22, 0, 0, 30)
    ledger.reserve(500, "q_today")
    record = video_task(
        "succeeded",
        datetime(2026, 11, 22, 0, 0, 30),
        credits_charged=50.0,
        reserved_on=booked.day,
        reserved_at=booked.at,
    )
    settle(SimpleNamespace(ledger=ledger), [record])
    assert ledger.spent_today() == 500 and ledger.spent_on(date(2026, 11, 21)) == 50


def test_a_task_reserved_before_midnight_is_settled_on_its_own_day(tmp_path):
    """A record that keeps no moment of its reservation (an older kie-mcp's) is settled on the day it was made."""
    now = [local(2026, 11, 21, 23, 59)]
    ledger = Ledger(Journal(tmp_path / "j.sqlite3"), Caps(per_call=600, per_day=1000), clock=lambda: now[0])
    assert ledger.reserve(None, "q_late").day == date(2026, 11, 21)  # 23:59, an unknown price: 600 reserved
    record = video_task("running", datetime(2026, 11, 21, 23, 59))
    now[0] = local(2026, 11, 22, 0, 1)  # midnight passes while the task runs
    ledger.reserve(500, "q_today")
    record.state, record.credits_charged = "succeeded", 50.0  # KIE charged 50 of the 600 reserved
    settle(SimpleNamespace(ledger=ledger), [record])
    assert ledger.spent_today() == 500  # today's spend is untouched: the refund went to the 21st
    assert ledger.spent_on(date(2026, 11, 21)) == 50
    ledger.reserve(500, "q_more")
    with pytest.raises(SpendRefused, match="today's cap"):
        ledger.reserve(500, "q_over")


def test_a_max_credits_below_the_most_an_unknown_price_may_cost_refuses_it():
    """Imagen 4 Fast's four images may cost 16 (the catalogue's most), and max_credits=5 let them go ahead: a
    threshold that KIE's charge can pass is no threshold. A per-call cap tighter still is the one named."""
    ledger = Ledger(Journal(":memory:"), Caps(per_call=600, per_day=1000))
    with pytest.raises(SpendRefused, match="up to 16 credits for it, over the max_credits of 5") as refused:
        ledger.reserve(None, max_credits=5, most=16, most_why="4 credits per image x 4")
    assert "Pass a max_credits of at least 16" in str(refused.value)
    tight = Ledger(Journal(":memory:"), Caps(per_call=10, per_day=1000))
    with pytest.raises(SpendRefused, match="over the per-call cap of 10"):
        tight.reserve(None, max_credits=12, most=16)
    assert ledger.reserve(None, max_credits=16, most=16).credits == 16


def test_creates_a_start_gave_back_for_a_server_it_took_for_stopped_are_neither_sent_nor_refunded_again(tmp_path):
    """Should a start take a live server for stopped (``owner_gone`` misjudged) and give back its reservation's
    creates not yet begun, that server's creates are not begun (not sent: ``ReservationGivenBack``) and its own
    not-sent refunds book nothing more: the cap never counts less than what may have reached KIE."""
    import subprocess
    import sys

    from kie_mcp.journal import ReservationGivenBack
    from kie_mcp.processes import HOST
    from kie_mcp.spend.ledger import SpendBook

    journal = Journal(tmp_path / "j.sqlite3")
    ledger = Ledger(journal, Caps(100, 100))
    booked = ledger.reserve(30, "q_live", tasks=3)
    begin = dict(model="m", family="market", approved_by="quote", quote_id="q", prompt="p", params={}, session=None)
    assert journal.begin_attempt(**begin, credits_quoted=10, reservation=booked.entry)  # one create begun
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    journal.execute("UPDATE spend SET owner = ? WHERE id = ?", f"{HOST}-{int(gone.stdout)}-0a0b0c0d", booked.entry)
    assert SpendBook(Journal(tmp_path / "j.sqlite3")).book_unsent(0) == [20]  # the two not begun, given back
    assert ledger.spent_today() == 10
    with pytest.raises(ReservationGivenBack):
        journal.begin_attempt(**begin, credits_quoted=10, reservation=booked.entry)
    refund = dict(at=booked.at, day=booked.day, reserved=10, settles=booked.entry)
    assert not ledger.adjust(-10, "refunded: not sent", **refund)
    assert ledger.spent_today() == 10  # the begun create's share stays counted, once
    assert len(journal.query("SELECT 1 FROM attempts")) == 1


def test_a_tag_is_never_judged_gone_where_the_pid_namespace_cannot_be_read(monkeypatch):
    """Where a sandbox hides the PID namespace, another container's live server (its own process 1) shares this
    machine's tag: no process id there is judged gone, only this very process is known to run."""
    from kie_mcp import processes

    monkeypatch.setattr(processes, "PIDS_TOLD", False)
    assert processes.owner_gone(f"{processes.HOST}-1-0a0b0c0d") is None
    assert processes.owner_gone(f"{processes.HOST}-999999999-0a0b0c0d") is None
    assert processes.owner_gone(processes.this_process()) is False
    monkeypatch.setattr(processes, "PIDS_TOLD", True)
    assert processes.owner_gone(f"{processes.HOST}-999999999-0a0b0c0d") is True
