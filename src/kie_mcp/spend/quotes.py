"""Quotes: a price bound by hash to one exact request, for ten minutes, usable once."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from kie_mcp.catalog import ItemPrice, usd
from kie_mcp.journal import Journal


def request_hash(model_id: str, wire_input: dict[str, Any], variations: int) -> str:
    """The identity of a request: model, every input value after defaults, and the count."""
    canonical = json.dumps(
        {"model": model_id, "input": wire_input, "variations": variations},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class Quote(BaseModel):
    """What a request will cost, as shown to the user before any spend."""

    quote_id: str = Field(description="Pass this back as quote_id to approve exactly this request.")
    model: str
    variations: int
    price_known: bool
    credits_per_item: float | None
    credits_total: float | None
    usd_total: float | None = Field(description="About USD, at 1 credit = $0.005.")
    breakdown: str
    price_source: str = Field(description="Where the price comes from, or 'unknown'.")
    price_date: str | None
    expires_at: str = Field(description="ISO 8601 UTC; the quote cannot be used after this.")
    note: str | None = None


class QuoteError(Exception):
    """Why a quote_id cannot approve this request."""


class QuoteBook:
    """Quotes kept in the workspace journal, so they survive a restart within their ten minutes."""

    def __init__(self, journal: Journal, ttl_seconds: float = 600.0, clock: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self.ttl = ttl_seconds
        self._clock = clock

    def issue(self, model_id: str, digest: str, price: ItemPrice, variations: int) -> Quote:
        now = self._clock()
        expires = now + self.ttl
        total = None if price.credits is None else round(price.credits * variations, 4)
        quote = Quote(
            quote_id="q_" + secrets.token_hex(8),
            model=model_id,
            variations=variations,
            price_known=price.known,
            credits_per_item=price.credits,
            credits_total=total,
            usd_total=None if total is None else usd(total),
            breakdown=price.breakdown + (f" x {variations} variations" if variations > 1 else ""),
            price_source=price.source or "unknown",
            price_date=price.source_date,
            expires_at=datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds"),
            note=price.note,
        )
        self.journal.execute(
            "INSERT INTO quotes (quote_id, model, digest, body, expires, used, created) VALUES (?, ?, ?, ?, ?, 0, ?)",
            quote.quote_id,
            model_id,
            digest,
            quote.model_dump_json(),
            expires,
            now,
        )
        return quote

    def problem(self, quote_id: str, digest: str) -> str | None:
        """None when ``quote_id`` can approve the request with ``digest``; else the reason it cannot."""
        rows = self.journal.query("SELECT * FROM quotes WHERE quote_id = ?", quote_id)
        return self._problem(quote_id, digest, rows[0] if rows else None)

    def consume(self, quote_id: str, digest: str) -> Quote:
        """Use the quote up, atomically: of two calls (or two processes) racing with one quote, one wins."""
        with self.journal.transaction() as db:
            row = db.execute("SELECT * FROM quotes WHERE quote_id = ?", (quote_id,)).fetchone()
            reason = self._problem(quote_id, digest, row)
            if reason:
                raise QuoteError(reason)
            db.execute("UPDATE quotes SET used = 1 WHERE quote_id = ?", (quote_id,))
        return Quote.model_validate_json(row["body"])

    def _problem(self, quote_id: str, digest: str, row: Any) -> str | None:
        if row is None:
            return f"quote {quote_id} is unknown to this workspace (quotes live {self.ttl / 60:g} minutes)."
        if row["used"]:
            return f"quote {quote_id} was already used; a quote approves one request once."
        if self._clock() > row["expires"]:
            expired = datetime.fromtimestamp(row["expires"], UTC).isoformat(timespec="seconds")
            return f"quote {quote_id} expired at {expired}."
        if row["digest"] != digest:
            return f"quote {quote_id} was for different arguments; the request changed after the estimate."
        return None
