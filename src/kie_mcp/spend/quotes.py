"""Quotes: a price bound by hash to one exact request, for ten minutes, usable once."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from kie_mcp.catalog import ItemPrice, usd


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


@dataclass
class _Entry:
    quote: Quote
    digest: str
    expires: float
    used: bool = False


class QuoteError(Exception):
    """Why a quote_id cannot approve this request."""


class QuoteBook:
    def __init__(self, ttl_seconds: float = 600.0, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def issue(self, model_id: str, digest: str, price: ItemPrice, variations: int) -> Quote:
        expires = self._clock() + self.ttl
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
        with self._lock:
            self._prune()
            self._entries[quote.quote_id] = _Entry(quote, digest, expires)
        return quote

    def problem(self, quote_id: str, digest: str) -> str | None:
        """None when ``quote_id`` can approve the request with ``digest``; else the reason it cannot."""
        with self._lock:
            return self._problem(quote_id, digest)

    def consume(self, quote_id: str, digest: str) -> Quote:
        """Use the quote up, atomically: of two calls racing with one quote, exactly one wins."""
        with self._lock:
            reason = self._problem(quote_id, digest)
            if reason:
                raise QuoteError(reason)
            entry = self._entries[quote_id]
            entry.used = True
            return entry.quote

    def _problem(self, quote_id: str, digest: str) -> str | None:
        entry = self._entries.get(quote_id)
        if entry is None:
            return f"quote {quote_id} is unknown to this server (quotes live {self.ttl / 60:g} minutes)."
        if entry.used:
            return f"quote {quote_id} was already used; a quote approves one request once."
        if self._clock() > entry.expires:
            return f"quote {quote_id} expired at {entry.quote.expires_at}."
        if entry.digest != digest:
            return f"quote {quote_id} was for different arguments; the request changed after the estimate."
        return None

    def _prune(self) -> None:
        cutoff = self._clock() - self.ttl
        for key in [k for k, e in self._entries.items() if e.expires < cutoff]:
            del self._entries[key]
