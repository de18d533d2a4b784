"""Quotes that expired a month ago and approved nothing are cleared from the journal, so estimates (every one a quote)
do not make it grow for ever; a quote that approved a create stays with its task, and a forgotten quote still
approves nothing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio

from kie_mcp import runtime as runtime_module
from kie_mcp.catalog import ItemPrice
from kie_mcp.journal import Journal, journal_path
from kie_mcp.spend import QuoteBook
from kie_mcp.spend.quotes import KEEP_EXPIRED_DAYS

from .conftest import text_of

PRICE = ItemPrice(
    known=True, credits=8, unit="task", breakdown="8 credits per task", source="snap", source_date="2026-06-30"
)
DAY = 86400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def approve_a_create(journal: Journal, book: QuoteBook, quote_id: str, digest: str, kind: str = "estimate") -> None:
    """The quote used, and a create attempt that names it (as the gate records one before the create is sent)."""
    book.consume(quote_id, digest, kind=kind)
    journal.begin_attempt(
        model="nano-banana-2",
        family="market",
        approved_by="quote" if kind == "estimate" else "elicitation",
        quote_id=quote_id,
        prompt="A red apple",
        params={"prompt": "A red apple"},
        credits_quoted=8,
        session=None,
    )


def quote_ids(workspace: Path) -> set[str]:
    with sqlite3.connect(journal_path(workspace)) as db:
        return {row[0] for row in db.execute("SELECT quote_id FROM quotes")}


def test_quotes_that_expired_a_month_ago_and_approved_nothing_are_forgotten_and_the_others_kept(tmp_path):
    journal = Journal.for_workspace(tmp_path)
    clock = Clock(time.time() - (KEEP_EXPIRED_DAYS + 10) * DAY)
    book = QuoteBook(journal, 600, clock)
    old = [book.issue("nano-banana-2", f"old-{n}", PRICE, 1).quote_id for n in range(1203)]  # three batches
    approved = old[7]
    approve_a_create(journal, book, approved, "old-7")
    asked = book.issue("nano-banana-2", "asked", PRICE, 1, kind="ask").quote_id
    approve_a_create(journal, book, asked, "asked", kind="ask")
    clock.now = time.time() - 5 * DAY
    recent = book.issue("nano-banana-2", "recent", PRICE, 1).quote_id
    clock.now = time.time()
    live = book.issue("nano-banana-2", "live", PRICE, 1).quote_id

    assert book.forget_expired() == 1202
    assert quote_ids(tmp_path) == {approved, asked, recent, live}
    assert book.refusal(old[0], "old-0").why == "unknown"  # a forgotten quote approves nothing
    assert book.refusal(approved, "old-7").why == "used"  # replays still tell what it bought
    assert book.quote(approved, "old-7") is not None
    assert book.refusal(recent, "recent").why == "expired"
    assert book.refusal(live, "live") is None
    assert book.forget_expired() == 0  # nothing more to clear
    journal.close()


async def test_a_server_clears_old_quotes_by_itself_and_a_forgotten_one_creates_nothing(
    connect, controls, tmp_path, monkeypatch
):
    journal = Journal.for_workspace(tmp_path)
    book = QuoteBook(journal, 600, Clock(time.time() - 40 * DAY))
    forgotten = book.issue("nano-banana-2", "old", PRICE, 1).quote_id
    approved = book.issue("nano-banana-2", "approved", PRICE, 1).quote_id
    approve_a_create(journal, book, approved, "approved")
    journal.close()
    monkeypatch.setattr(runtime_module, "FORGET_QUOTES_AFTER", 0.0)

    async with connect() as client:
        await client.call_tool("list_tasks", {})  # opens the runtime, which clears old quotes in the background
        for _ in range(500):  # up to 10 s
            if forgotten not in quote_ids(tmp_path):
                break
            await anyio.sleep(0.02)
        assert forgotten not in quote_ids(tmp_path) and approved in quote_ids(tmp_path)
        result = await client.call_tool(
            "generate_image", {"model": "nano-banana-2", "prompt": "A red apple", "quote_id": forgotten}
        )
    assert "unknown" in text_of(result), text_of(result)
    assert await controls.creates() == []
