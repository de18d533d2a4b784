"""Quotes: a price bound by hash to one exact request, for ten minutes, usable once."""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, PrivateAttr

from kie_mcp.catalog import ItemPrice, usd
from kie_mcp.catalog.pricing import CATALOGUE_FLOOR, CHARGED_HERE, LIVE_ONLY, credits_figure, provenance
from kie_mcp.journal import JOURNAL_ERRORS, SEND_LIMIT, Journal, JournalLocked, is_locked
from kie_mcp.processes import owner_gone, this_process
from kie_mcp.redact import redact_secrets
from kie_mcp.spend import ledger
from kie_mcp.words import plain, quoted_excerpt, span_words, timestamp

# What every quote id looks like (``issue``): told apart from a task id given to check_task by mistake.
QUOTE_ID = re.compile(r"q_[0-9a-f]{16}")


# ``json.dumps`` with these arguments, made once (it builds an encoder on every call with any argument).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_hash(model_id: str, wire_input: dict[str, Any], variations: int) -> str:
    """The identity of a request: model, every input value after defaults, and the count."""
    canonical = _CANONICAL.encode({"model": model_id, "input": wire_input, "variations": variations})
    return hashlib.sha256(canonical.encode()).hexdigest()


# A request as its quote binds it: the model, the input (local files by content, ``with_identities``) and the count.
Bound = tuple[str, Mapping[str, Any], int]
_FILE_IDENTITY = re.compile(r"file:([0-9a-f]{64}):(.*)", re.DOTALL)  # ``LocalFile.identity``
_SHOWN = 60  # characters of a value a changed argument shows, each side
_CHANGES_SHOWN = 4  # changed arguments named, at the most
# The model and the count among a request's arguments, under names no input field has (a KIE input may hold a field
# named "model"); and an input field a request does not have.
_MODEL, _COUNT = "#model", "#variations"
_ABSENT = object()


def request_record(request: Bound) -> str:
    """What a quote keeps of the request it priced (the journal's ``quotes.request``), so that a call with other
    arguments is told which changed (``changed_arguments``): each argument (the model, the count, every input value
    as the quote binds it) by a fingerprint of its value, and the value as a person reads it, redacted and cut short
    (never the whole of a long prompt)."""
    model, wire, variations = request
    kept = {
        "model": _kept(model),
        "variations": _kept(variations),
        "input": {name: _kept(value) for name, value in wire.items()},
    }
    return json.dumps(kept, ensure_ascii=False, sort_keys=True)


def changed_arguments(record: str | None, request: Bound) -> list[str]:
    """The arguments of ``request`` that differ from those a quote priced (its ``request_record``), each as
    ``aspect_ratio "1:1" -> "4:5"`` (redacted and cut short): the model, the input in the request's order (then
    what it no longer has), the count; none when the quote kept no record (an older kie-mcp's) or nothing differs
    by what it kept."""
    try:
        kept = json.loads(record) if record else None
    except ValueError:
        kept = None
    if not isinstance(kept, dict) or not isinstance(kept.get("input"), dict):
        return []
    model, wire, variations = request
    now = {_MODEL: model, **{name: wire.get(name, _ABSENT) for name in (*wire, *kept["input"])}, _COUNT: variations}
    was = {_MODEL: kept.get("model"), **kept["input"], _COUNT: kept.get("variations")}
    changes = []
    for name, value in now.items():
        before = was.get(name)
        known = isinstance(before, list) and len(before) == 2
        if value is _ABSENT and not known:
            continue
        if value is not _ABSENT and known and before[0] == _fingerprint(value):
            continue
        shown = "(not given)" if value is _ABSENT else _shown(value)
        changes.append(f"{_argument(name)} {before[1] if known else '(not given)'} -> {shown}")
    return changes


def _kept(value: Any) -> list[str]:
    return [_fingerprint(value), _shown(value)]


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(_CANONICAL.encode(value).encode()).hexdigest()[:16]


def _shown(value: Any) -> str:
    """A value as a changed argument shows it: a local file by its name and the start of its content's hash."""
    readable = _readable(value)
    return quoted_excerpt(readable, _SHOWN) if isinstance(readable, str) else plain(readable, limit=_SHOWN)


def _readable(value: Any) -> Any:
    if isinstance(value, str) and (found := _FILE_IDENTITY.fullmatch(value)):
        return f"{found[2]} (content {found[1][:8]})"
    if isinstance(value, list):
        return [_readable(item) for item in value]
    return value


def _argument(name: str) -> str:
    """An argument as a changed one is named: the model, the count, an input field by KIE's name."""
    named = {_MODEL: "model", _COUNT: "variations", "#measured_seconds": "the input's measured length (s)"}
    return named.get(name, name)


def changed_words(changes: list[str]) -> str:
    """``changed_arguments`` in a sentence's end: ``: a -> b; c -> d`` (and how many more), or nothing."""
    if not changes:
        return ""
    more = len(changes) - _CHANGES_SHOWN
    return ": " + "; ".join(changes[:_CHANGES_SHOWN]) + (f"; and {more} more" if more > 0 else "")


class AskedInputs(NamedTuple):
    """The local files a confirmation question is asked about: ``shape``, the request's identity with each file
    named by its path as the caller wrote it instead of its content; ``files``, each path's SHA-256 as priced."""

    shape: str
    files: dict[str, str]


class _PathsRedacted(dict[str, str]):
    """Local files' hashes by path as the journal keeps them: each path with the API key redacted (a file may be
    named after the key, and the journal never holds it), and looked up by a path as the caller wrote it (redacted
    the same way), so a question's files are still matched against a request's."""

    @classmethod
    def of(cls, files: dict[str, str]) -> dict[str, str]:
        return {redact_secrets(path): sha for path, sha in files.items()}

    def get(self, path: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(redact_secrets(path), default)

    def __getitem__(self, path: str) -> str:
        return super().__getitem__(redact_secrets(path))

    def __contains__(self, path: object) -> bool:
        return super().__contains__(redact_secrets(path) if isinstance(path, str) else path)


class Quote(BaseModel, defer_build=True):
    """What a request will cost, as shown to the user before any spend."""

    quote_id: str = Field(description="Pass this back as quote_id to approve exactly this request.")
    model: str
    variations: int
    price_known: bool
    credits_per_item: float | None
    credits_total: float | None
    usd_total: float | None = Field(description="About USD, at 1 credit = $0.005.")
    breakdown: str
    price_source: str = Field(
        description="Where the price comes from, in words: 'KIE price list of <date>' (the prices kie-mcp ships "
        "with), 'KIE live price list of <date>' (read from KIE since; under --sandbox 'the simulator's price list "
        "of <date>', a copy of the shipped prices), or 'what KIE charged in this workspace on <date>'; 'unknown' "
        "when there is none. Each model's full provenance is in kie://models/{id}."
    )
    price_date: str | None
    price_reference: str | None = Field(
        default=None,
        description="Where to check the price on KIE: https://kie.ai/pricing, or https://kie.ai/logs for a price "
        "learned from what KIE charged.",
    )
    expires_at: str = Field(description="ISO 8601 UTC (2026-12-02T20:38:03Z); the quote cannot be used after this.")
    note: str | None = None
    credits_ceiling: float | None = Field(
        default=None,
        description="For a price not known before the task runs: what this request counts against the caps until "
        "KIE's charge is known: the most the catalogue says it can cost (a per-second rate times the longest input "
        "its field takes, or the figure it keeps for the model), else the whole per-call cap. max_credits never "
        "lowers it.",
    )
    credits_measured: float | None = Field(
        default=None,
        description="For a price per second of an input given as a link kie-mcp does not hold: the price at the "
        "length the link served when kie-mcp measured it. Not bound: KIE fetches the link itself and bills the "
        "length it gets, so the price is unknown (never auto-approved) and credits_ceiling is what the caps count.",
    )
    credits_counted: float | None = Field(
        default=None,
        description="When the caps count more than the price for this request (KIE was seen charging more than "
        "its list, KIE's live price list is lower than kie-mcp's catalogue, a picture given as a link may be billed "
        "at a higher tier, or the price comes only from KIE's live list; the message says which): that figure, which "
        "the caps, the auto-approve limit and today's spend count until KIE reports its charge. Null when "
        "credits_total is all that counts.",
    )
    # What the person was asked to approve (``asked_credits``), as the quote was issued: kept in its journaled body
    # (``ASKED``), never in the tools' output. ``_asked_kept`` is False for a quote an older kie-mcp wrote.
    _asked: float | None = PrivateAttr(default=None)
    _asked_kept: bool = PrivateAttr(default=False)

    @property
    def asked_kept(self) -> bool:
        """Whether the quote kept what it asked (``credits_asked``): an older kie-mcp's did not."""
        return self._asked_kept

    @property
    def credits_asked(self) -> float | None:
        """What the question or quote asked the person to approve (``asked_credits``, as it was issued): "up to" the
        figure the caps counted when it was asked so, else the price; None for an unknown price (and for a quote
        that did not keep it, ``asked_kept``)."""
        return self._asked


def asked_credits(price: ItemPrice, variations: int) -> float | None:
    """What a person is asked to approve for ``variations`` tasks at ``price``: "up to" the figure the caps count when
    it is higher than the price (KIE seen charging more, the catalogue's figure under a lower live price, a link's
    higher tier), else the price; never the whole per-call cap a price only KIE's live list gives is counted at as a
    stand-in (``up_to_source`` ``LIVE_ONLY``), which no one saw charged. None for an unknown price."""
    if price.credits is None:
        return None
    total = round(price.credits * variations, 4)
    if price.up_to_source == LIVE_ONLY:
        return total
    counted = round((price.counted or 0.0) * variations, 4)
    return counted if counted > total + 1e-9 else total


# The key of a quote's journaled body that keeps what it asked (``Quote.credits_asked``): read back by this kie-mcp
# and ignored by an older one, so a yes approves the figure asked whatever per-call cap the server answering it has.
ASKED = "credits_asked"


def _body(quote: Quote) -> str:
    """The quote as the journal keeps it (``quotes.body``): its fields, and what it asked (``ASKED``) when known."""
    kept = quote.model_dump(mode="json")
    if quote.asked_kept:
        kept[ASKED] = quote.credits_asked
    return json.dumps(kept, ensure_ascii=False)


def _loaded(body: str) -> Quote:
    """The quote a journaled body (``_body``) keeps, with what it asked when the body says it."""
    kept = json.loads(body)
    quote = Quote.model_validate(kept)
    if isinstance(kept, dict) and ASKED in kept:
        asked = kept[ASKED]
        quote._asked = float(asked) if isinstance(asked, (int, float)) and not isinstance(asked, bool) else None
        quote._asked_kept = asked is None or quote._asked is not None
    return quote


PRICE_MAX_AGE_DAYS = 30  # KIE changes prices every few weeks: an older price gets a warning

PRICING_PAGE = "https://kie.ai/pricing"
CHARGES_PAGE = "https://kie.ai/logs"


def seen_charging(price: ItemPrice, variations: int) -> str | None:
    """What a quote, its confirmation and an estimate say when KIE was seen charging more than the price for this
    request (``ItemPrice.up_to``): the price stays what is shown, and the higher figure is what the caps count."""
    if price.credits is None or price.up_to is None or price.up_to <= price.credits:
        return None  # no higher charge seen, or the price has caught up with it (KIE charged it here)
    each = " each" if variations > 1 else ""
    counted = credits_figure(round(price.up_to * variations, 4))
    if price.up_to_source == CATALOGUE_FLOOR:  # a live price lower than the bundled one (live.floored)
        dated = f" (KIE price list of {price.up_to_date})" if price.up_to_date else ""
        shows = (  # a charge seen here may have raised the live figure: said as what it is
            f"KIE charged {credits_figure(price.credits)}{each} here before"
            if price.source == CHARGED_HERE
            else f"KIE's live price list shows {credits_figure(price.credits)}{each}"
        )
        return (
            f"{shows}, lower than the {credits_figure(price.up_to)}{each} in "
            f"kie-mcp's catalogue{dated}, so the higher is what counts: up to {counted} "
            "against your caps and the auto-approve limit, and in today's spend until KIE's charge confirms the "
            "price."
        )
    said = (
        f"KIE charged {credits_figure(price.credits)}{each} here before"
        if price.source == CHARGED_HERE
        else f"KIE's list says {credits_figure(price.credits)}{each}"
    )
    if price.up_to_why:  # counted for another reason than a charge seen (a link's picture not measured)
        return f"{said}; {price.up_to_why}: up to {counted} is counted against your caps."
    when = f" ({price.up_to_date})" if price.up_to_date else ""
    return (
        f"{said}; KIE was seen charging {credits_figure(price.up_to)}{each}{when}: up to {counted} "
        "is counted against your caps."
    )


def reference(price: ItemPrice) -> str | None:
    """The KIE page to check a price against: its price list, or its logs for a price learned from a charge."""
    if price.source is None:
        return None
    return CHARGES_PAGE if price.source == CHARGED_HERE else PRICING_PAGE


# How the warning of ``staleness`` starts, whatever it says next: the app's gallery leaves it out of a generation's
# head once KIE's charge is recorded (``apps.head_text``).
STALE_PRICE = "Warning: this price is "


def staleness(price: ItemPrice, today: date, why: str) -> str | None:
    """A warning when the price is more than ``PRICE_MAX_AGE_DAYS`` old (or undated), with ``why`` it was not
    refreshed (the one reason that holds: the caller knows the live catalogue's state)."""
    if price.source is None or price.credits is None:
        return None
    try:
        seen = date.fromisoformat(price.source_date or "")
    except ValueError:
        return f"{STALE_PRICE}undated; check https://kie.ai/pricing before a large spend."
    age = (today - seen).days
    if age <= PRICE_MAX_AGE_DAYS:
        return None
    return (
        f"{STALE_PRICE}from {seen.isoformat()} ({age} days ago) and KIE changes prices often; "
        f"https://kie.ai/pricing shows today's. (kie-mcp refreshes its prices from KIE's price list once a day by "
        f"itself; this one was not refreshed: {why}.)"
    )


# Which rule refused a quote: only "used" means the request it approved may already have run; "declined", that the
# person said no to it on the approval card (``QuoteBook.decline``) or in the confirmation form
# (``QuoteBook.decline_in_form``).
QuoteRefusal = Literal["unknown", "question", "declined", "used", "expired", "other request"]

# ``quotes.used`` of a quote the person declined on the approval card (``QuoteBook.decline``): used up without a use,
# with no process behind it (``used_by`` NULL), so it is never "being used", never given back and never taken for one
# a crash left (``_abandoned``); an older kie-mcp on the same workspace reads it as used, and refuses it too. A quote
# declined while a call was using it, before any create was sent, stays used (1) with ``declined_at`` set until that
# call ends: the call sends no create after it (``declined_before_create``), and the quote, given back, is declined
# (``_unuse``), never usable again.
DECLINED = 2
# ``quotes.declined_in`` of the quotes a No in the confirmation form declined (``QuoteBook.decline_in_form``): the
# question the person answered, and every other quote of its request declined with it (voided, or stopped in use).
# NULL is the approval card's Decline (``QuoteBook.decline``), as every row an older kie-mcp declined.
FORM_NO = "form"
FORM_NO_OF_REQUEST = "form: request"


class FormNo(NamedTuple):
    """What a No in the confirmation form met (``QuoteBook.decline_in_form``): ``sent``, when a create of its request
    approved since the question was put was last sent to KIE (None: none was); ``stopped_yes``, whether it stopped,
    before its create, the call the person had said yes to in another form of the same question."""

    sent: float | None
    stopped_yes: bool


class SaidNo(NamedTuple):
    """The person's last no to a request (``QuoteBook.declined_lately``): when, and whether in the confirmation form
    (else on the approval card)."""

    at: float
    in_form: bool

    @property
    def where(self) -> str:
        return "in the confirmation form" if self.in_form else "on the approval card"


# ``quotes.kind`` of an auto approval's hold on its request (``QuoteBook.hold``): no quote anyone was shown or can pass
# back (its id is no ``QUOTE_ID``, and every lookup by id, the estimates and the questions leave it out), only what
# tells every server on the workspace that a call of the request is under way before its creates are in the journal.
AUTO_HOLD = "auto"
# The calls of a request under way with no create in the journal yet, as their rows say (``QuoteBook._begun`` judges
# the processes): a quote or a question's yes used in the last ``SEND_LIMIT`` seconds, or an auto approval's hold
# whose lease (``expires``, renewed while its call runs) has not lapsed.
UNDER_WAY = (
    "SELECT quote_id, kind, used_by, used_at FROM quotes WHERE digest = ? AND used = 1 AND CASE kind WHEN 'auto'"
    " THEN expires > ? ELSE used_at > ? END AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.quote_id ="
    " quotes.quote_id)"
)
HOLD_DELETE = "DELETE FROM quotes WHERE quote_id = ? AND kind = 'auto'"  # an auto approval's hold let go of
# Journals where this process holds requests for auto approvals now (their path -> the holds' ids), for a stop to let
# them go (``let_go_here``).
_HELD_HERE: dict[str, set[str]] = {}


class QuoteError(Exception):
    """Why a quote_id cannot approve this request; ``why`` names the rule, so a caller can tell a used quote (show
    what it bought) from an expired one (nothing was spent: ask again) or any other."""

    def __init__(self, message: str, why: QuoteRefusal) -> None:
        super().__init__(message)
        self.why: QuoteRefusal = why


# How long a quote that approved nothing is kept after it expired: past its ten minutes it can approve nothing,
# but the daily catalogue sync reads the models quoted in the last 30 days, and "expired" says more than "unknown"
# to an agent that comes back the same month. A quote that approved a create is kept with its task.
KEEP_EXPIRED_DAYS = 30


class QuoteBook:
    """Quotes kept in the workspace journal, so they survive a restart within their ten minutes."""

    def __init__(
        self,
        journal: Journal,
        ttl_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
        *,
        simulated: bool = False,
    ) -> None:
        self.journal = journal
        self.ttl = ttl_seconds
        self._clock = clock
        self.simulated = simulated  # --sandbox: live prices come from the simulator (``provenance``)
        # Quotes this process used for calls that ended having sent no create, whose release the journal could not
        # take (a full disk): released again at the next look at any quote, and never "being used" meanwhile.
        self._owed: set[str] = set()
        # Whose auto approvals' holds (``hold``) this book writes: this process, and this server in it (two servers in
        # one process each know their own calls, ``SpendingCalls``, and not the other's); and the holds it let go of
        # that the journal could not take yet (written with the owed releases).
        self._holder = f"{this_process()}/{secrets.token_hex(3)}"
        self._owed_holds: set[str] = set()
        # The holds this book wrote whose calls have not let go of them yet: let go of when its runtime closes
        # (``let_go_all``), as a call may outlive it.
        self._holds: set[str] = set()

    def issue(
        self,
        model_id: str,
        digest: str,
        price: ItemPrice,
        variations: int,
        *,
        ceiling: float | None = None,
        measured: float | None = None,
        kind: str = "estimate",
        ttl: float | None = None,
        inputs: AskedInputs | None = None,
        request: Bound | None = None,
    ) -> Quote:
        """A new quote. ``ceiling``: what an unknown price reserves; ``measured``: its price at the length a link
        served (``Quote.credits_measured``). ``kind`` "ask" marks the quote a confirmation question is bound to;
        ``inputs``, the local files it was asked about (``asked_inputs``); ``request``, the request it prices, kept
        to say what changed when it is passed with other arguments (``request_record``)."""
        now = self._clock()
        expires = now + (self.ttl if ttl is None else ttl)
        total = None if price.credits is None else round(price.credits * variations, 4)
        quote = Quote(
            quote_id="q_" + secrets.token_hex(8),  # QUOTE_ID
            model=model_id,
            variations=variations,
            price_known=price.known,
            credits_per_item=price.credits,
            credits_total=total,
            usd_total=None if total is None else usd(total),
            breakdown=price.breakdown + (f" x {variations} variations" if variations > 1 else ""),
            price_source=provenance(price, simulated=self.simulated),
            price_date=price.source_date,
            price_reference=reference(price),
            expires_at=timestamp(expires),
            note=price.note,
            credits_ceiling=ceiling if total is None else None,
            credits_measured=measured if total is None else None,
            credits_counted=None
            if total is None or seen_charging(price, variations) is None
            else round((price.counted or 0.0) * variations, 4),
        )
        # What it asks, kept with it: the figure a yes to it approves, judged by no per-call cap of a later moment.
        quote._asked, quote._asked_kept = asked_credits(price, variations), True
        self.journal.execute(
            "INSERT INTO quotes (quote_id, model, digest, body, expires, used, created, kind, shape, inputs, request)"
            " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            quote.quote_id,
            model_id,
            digest,
            _body(quote),
            expires,
            now,
            kind,
            None if inputs is None else inputs.shape,
            None if inputs is None else json.dumps(_PathsRedacted.of(inputs.files), sort_keys=True),
            None if request is None else request_record(request),
        )
        return quote

    def open_question(
        self,
        model_id: str,
        digest: str,
        price: ItemPrice,
        variations: int,
        *,
        ceiling: float | None,
        ttl: float,
        measured: float | None = None,
        inputs: AskedInputs | None = None,
    ) -> Quote:
        """The quote a confirmation question for this exact request is bound to: the unused, unexpired one asked
        before at this very price and counted figure (so the question reads the same on every round of a retried
        request), else a new one (the price moved: a yes to the new question approves the new price, never the old
        quote's). Asked again, a question gets its full ``ttl`` from now: one left by an earlier call (declined,
        cancelled) would otherwise expire while this call's user is still answering, and a yes in time would read as
        too late."""
        self.release_owed()
        now = self._clock()
        total = None if price.credits is None else round(price.credits * variations, 4)
        with self.journal.transaction() as db:
            row = db.execute(
                "SELECT quote_id, body, expires FROM quotes WHERE digest = ? AND kind = 'ask' AND used = 0"
                " AND expires >= ? ORDER BY created DESC LIMIT 1",
                (digest, now),
            ).fetchone()
            asked = _loaded(row["body"]) if row is not None else None
            # As ``issue`` keeps them: the price, an unknown price's ceiling, the higher figure the caps count, and
            # what it asks (the figure "up to" which, or the price): a question at another of them is another
            # question, with its own quote. (What an older kie-mcp's question asked is not kept: its figures tell.)
            counted = None if total is None or seen_charging(price, variations) is None else price.counted or 0.0
            priced = (
                total,
                ceiling if total is None else None,
                None if counted is None else round(counted * variations, 4),
            )
            if (
                asked is None
                or (asked.credits_total, asked.credits_ceiling, asked.credits_counted) != priced
                or (asked.asked_kept and asked.credits_asked != asked_credits(price, variations))
            ):
                return self.issue(
                    model_id,
                    digest,
                    price,
                    variations,
                    ceiling=ceiling,
                    measured=measured,
                    kind="ask",
                    ttl=ttl,
                    inputs=inputs,
                )
            return _extended(db, row, max(row["expires"], now + ttl))

    def asked_text(self, quote_id: str) -> str | None:
        """The text a confirmation question bound to ``quote_id`` was shown with (``keep_asked_text``), if any."""
        rows = self.journal.query("SELECT asked FROM quotes WHERE quote_id = ? AND kind = 'ask'", quote_id)
        return rows[0]["asked"] if rows and rows[0]["asked"] else None

    def keep_asked_text(self, quote_id: str, text: str) -> None:
        """Keep the text a confirmation question is put to the person with, and when it was first put to them
        (``asked_at``: a No to it stops the calls of its request approved since, ``decline_in_form``). Shown again
        (the same question for another call of the request), it keeps its first moment: a call approved after the
        person first saw it is one the question could not tell them of, whichever showing they answer."""
        self.journal.execute(
            "UPDATE quotes SET asked = ?, asked_at = COALESCE(asked_at, ?) WHERE quote_id = ? AND kind = 'ask'",
            text,
            self._clock(),
            quote_id,
        )

    def last_question(self, digest: str) -> tuple[str, int, bool] | None:
        """(quote_id, used, expired) of the newest confirmation question asked for this exact request; ``used`` is 0,
        1, or ``DECLINED`` (the person answered it No, ``decline_in_form``)."""
        self.release_owed()
        rows = self.journal.query(
            "SELECT quote_id, used, expires FROM quotes WHERE digest = ? AND kind = 'ask'"
            " ORDER BY created DESC LIMIT 1",
            digest,
        )
        if not rows:
            return None
        row = rows[0]
        return row["quote_id"], int(row["used"]), self._clock() > row["expires"]

    def asked_inputs(self, shape: str) -> tuple[str, dict[str, str]] | None:
        """(digest, local files by path with their hashes) of the newest confirmation question asked for the request
        ``shape`` names (its local files by path, whatever their bytes): what a yes to it was a yes to."""
        rows = self.journal.query(
            "SELECT digest, inputs FROM quotes WHERE shape = ? ORDER BY created DESC LIMIT 1",
            shape,
        )
        if not rows:
            return None
        try:
            files = json.loads(rows[0]["inputs"] or "{}")
        except ValueError:
            files = {}
        return str(rows[0]["digest"]), _PathsRedacted(files if isinstance(files, dict) else {})

    def open_estimate(self, digest: str) -> str | None:
        """The newest estimate quote for this exact request still unused and unexpired, if any."""
        self.release_owed()
        rows = self.journal.query(
            "SELECT quote_id, used, expires, declined_at FROM quotes WHERE digest = ? AND kind = 'estimate'"
            " ORDER BY created DESC LIMIT 1",
            digest,
        )
        if not rows or rows[0]["used"] or rows[0]["declined_at"] is not None or self._clock() > rows[0]["expires"]:
            return None
        return str(rows[0]["quote_id"])

    def refusal(self, quote_id: str, digest: str, request: Bound | None = None) -> QuoteError | None:
        """None when ``quote_id`` can approve the request with ``digest``; else why not, with the rule's name (and,
        given the ``request``, for a quote of another request, which of its arguments changed)."""
        self.release_owed()
        rows = self.journal.query("SELECT * FROM quotes WHERE quote_id = ? AND kind != 'auto'", quote_id)
        row = rows[0] if rows else None
        if row is not None and self._abandoned(row, self.journal.query):
            row = {**dict(row), "used": 0}  # as consume will take it
        return self._refusal(quote_id, digest, row, request=request)

    def quote(self, quote_id: str, digest: str | None = None) -> Quote | None:
        """The quote as it was issued (its price never changes), used or expired or not; None when unknown, or
        (with ``digest``) when it was for another request."""
        rows = self.journal.query("SELECT body, digest FROM quotes WHERE quote_id = ? AND kind != 'auto'", quote_id)
        if not rows or (digest is not None and rows[0]["digest"] != digest):
            return None
        return _loaded(rows[0]["body"])

    def consume(
        self,
        quote_id: str,
        digest: str,
        *,
        kind: str = "estimate",
        request: Bound | None = None,
        answered_at: float | None = None,
    ) -> Quote:
        """Use the quote up, atomically: of two calls (or two processes) racing with one quote, one wins. A refusal
        of a quote of another request names what changed, given the ``request``. ``answered_at``: when the person's
        yes to the question this quote is bound to came (``Approved.answered_at``); its expiry is judged by that
        moment (never a later one than now), so a yes in time is not too late once its call has used it."""
        self.release_owed()
        with self.journal.transaction() as db:
            row = db.execute("SELECT * FROM quotes WHERE quote_id = ? AND kind != 'auto'", (quote_id,)).fetchone()
            if row is not None and self._abandoned(row, lambda sql, *args: db.execute(sql, args).fetchall()):
                row = {**dict(row), "used": 0}  # in this very transaction: no other process can take it meanwhile
            refusal = self._refusal(quote_id, digest, row, kind, request, answered_at)
            if refusal is not None:
                raise refusal
            db.execute(
                "UPDATE quotes SET used = 1, used_by = ?, used_at = ? WHERE quote_id = ?",
                (this_process(), self._clock(), quote_id),
            )
        return _loaded(row["body"])

    def decline(self, quote_id: str) -> tuple[bool, str]:
        """Void the estimate quote ``quote_id``, which the person declined (the approval card's Decline), and every
        other unused estimate quote of the same request: none of them approves it any more (``_refusal`` says it was
        declined). Idempotent. It never approves, spends or gives back anything: a quote already used stays used
        (what it approved may have run), and a confirmation question's quote is left to the answer in its form.
        The no is for the request, whatever approved its calls: every quote in use for it with no create sent yet
        (its call's input files going up), this one or another (the agent's own estimate, a form's yes), keeps it
        (``declined_at``), and its call sends no create from then on (``declined_since``, which stops an
        auto-approved call of it too); such a quote, given back, is declined, never approving a later spend
        (``_unuse``).
        Returns whether nothing of the request was sent since the quote was issued (False: a create of it, approved
        by this quote or otherwise, was sent, so it may have run), and what became of it, in words; raises
        QuoteError for an id this workspace never issued, or a question's."""
        self.release_owed()
        now = self._clock()
        with self.journal.transaction() as db:
            row = db.execute("SELECT * FROM quotes WHERE quote_id = ? AND kind != 'auto'", (quote_id,)).fetchone()
            if row is None:
                raise QuoteError(
                    f"quote {quote_id} is unknown to this workspace (quotes live {span_words(self.ttl)}); nothing "
                    "was declined.",
                    "unknown",
                )
            if row["kind"] != "estimate":
                raise QuoteError(
                    f"quote {quote_id} belongs to a confirmation question; only the user's answer in that form "
                    "decides it. Nothing was declined.",
                    "question",
                )
            if row["used"] == DECLINED:  # a second Decline: the quotes issued since (a new price asked for) stay
                return True, f"quote {quote_id} was already declined: it approves nothing."

            def query(sql: str, *args: Any) -> list[Any]:
                return db.execute(sql, args).fetchall()

            in_use = bool(row["used"]) and not self._abandoned(row, query)
            if in_use and row["declined_at"] is not None:  # a second Decline: the quotes issued since stay
                return not _sent(quote_id, query), f"quote {quote_id} was already declined: it approves nothing more."
            sent = in_use and _sent(quote_id, query)
            stopped, voided, ran = _said_no(db, row, now, in_use=in_use)
        if sent:  # a create of this quote may have reached KIE: the no still stops the rest
            return False, (
                f"quote {quote_id} was already used: it approved its request, which may have run (list_tasks shows the "
                "tasks). From now on its call sends no further create, and neither it nor any other quote of the same "
                "request approves it again."
            )
        if ran:
            return False, (
                f"quote {quote_id} is declined, and so is every other quote of the same request: none approves it "
                f"again. But a call of this request (approved otherwise: another quote, a confirmation form or "
                f"auto-approval) was sent to KIE at {timestamp(ran)}, after this quote was issued, so it "
                "ran or is on its way and may have been charged (list_tasks shows the tasks). From now on no call of "
                "it sends a further create."
            )
        others = {0: "", 1: " The other quote of the same request is declined now."}.get(
            voided, f" The {voided} other quotes of the same request are declined now."
        )
        if in_use:
            also = " Nor does any other call of this request under way." if stopped else ""
            return True, (
                f"quote {quote_id} is declined: the call using it (its input files going up) sends no create now, so "
                f"nothing is created or spent by it, and the quote never approves its request again.{also}{others}"
            )
        calls = (
            " The call of this request under way (approved by another quote or a confirmation form, its input files "
            "going up) sends no create now."
            if stopped
            else ""
        )
        others = {0: "", 1: " (and so is the other quote of the same request)"}.get(
            voided, f" (and so are the {voided} other quotes of the same request)"
        )
        return True, f"quote {quote_id} is declined{others}: it approves nothing.{calls} Nothing was spent."

    def decline_in_form(self, quote_id: str) -> FormNo:
        """The person answered the confirmation question bound to ``quote_id`` with No (``confirm`` false in an
        accepted form; never a dialog declined, which a client may do on its own without showing it): recorded as the
        approval card's Decline is (``decline``), marked as the form's (``declined_in``). The question and every
        unused estimate quote of its request approve nothing from now on; the calls of the request approved since the
        question was put to the person (``asked_at``: the agent's own quote_id sent while the form was open) send no
        create after it, as an auto-approved one (``declined_since``); a call approved before it was put, which the
        question warned of, goes on. For a quote's life from now the request is not auto-approved, and on a client
        that shows forms a quote_id of it asks the person again (``declined_lately``). Idempotent: a request retried
        with the same answer changes nothing.

        Returns what the No met (``FormNo``): when a create of the request approved since the question was put was
        sent to KIE already (it ran or is on its way, and may have been charged), and whether it stopped a call the
        person had said yes to in another form of this very question (the same request sent twice at once) before
        that call sent its create; raises QuoteError for a question this workspace never asked."""
        self.release_owed()
        now = self._clock()
        with self.journal.transaction() as db:
            row = db.execute("SELECT * FROM quotes WHERE quote_id = ? AND kind = 'ask'", (quote_id,)).fetchone()
            if row is None:
                raise QuoteError(f"confirmation {quote_id} is unknown to this workspace.", "unknown")
            if row["used"] == DECLINED or row["declined_at"] is not None:  # said already: a retried answer
                return FormNo(None, False)

            def query(sql: str, *args: Any) -> list[Any]:
                return db.execute(sql, args).fetchall()

            in_use = bool(row["used"]) and not self._abandoned(row, query)  # a yes in another form of it, sending
            since = row["asked_at"] if row["asked_at"] is not None else row["created"]
            ran = _said_no(db, row, now, in_use=in_use, form_asked=since)[2]
            return FormNo(ran, in_use and not _sent(quote_id, query))

    def declined_since(self, digest: str, since: float) -> bool:
        """Whether the person declined the request ``digest`` at or after ``since`` (a call's approval was used then):
        on the approval card, or in the confirmation form when the call was approved after that question was put
        (``decline_in_form``). That call, however it was approved, sends no create after the no
        (``generation._submit`` asks right before each create, and before each resend after a 429)."""
        rows = self.journal.query(
            "SELECT 1 FROM quotes WHERE digest = ? AND (used = ? OR declined_at IS NOT NULL)"
            " AND COALESCE(declined_at, used_at) >= ? AND (declined_in IS NULL OR (declined_in = ?"
            " AND COALESCE(asked_at, created) <= ?)) LIMIT 1",
            digest,
            DECLINED,
            since,
            FORM_NO,
            since,
        )
        return bool(rows)

    def declined_before_create(self, quote_id: str) -> bool:
        """Whether the person declined ``quote_id`` on the approval card while the call it approved was still on its
        way to its create (``decline``): that call then sends no create (``generation._submit`` asks right before it
        writes the attempt)."""
        rows = self.journal.query("SELECT declined_at FROM quotes WHERE quote_id = ?", quote_id)
        return bool(rows) and rows[0]["declined_at"] is not None

    def answered_no_after_yes(self, quote_id: str) -> bool:
        """Whether ``quote_id`` is a confirmation question the person said yes to in one form and then No to in
        another form of it (the same request sent twice at once; ``decline_in_form`` of a question in use)."""
        rows = self.journal.query(
            "SELECT 1 FROM quotes WHERE quote_id = ? AND kind = 'ask' AND declined_in = ?", quote_id, FORM_NO
        )
        return bool(rows)

    def declined_lately(self, digest: str) -> SaidNo | None:
        """When and where the person last said no to the request ``digest`` (the approval card's Decline, or a No in
        the confirmation form), if within the last ``ttl`` (a quote's life, counted from the no): that same request
        is not auto-approved meanwhile, and on a client that shows forms a quote_id of it asks the person again
        (``generation.decide_approval``)."""
        rows = self.journal.query(
            "SELECT COALESCE(declined_at, used_at) AS at, declined_in FROM quotes WHERE digest = ?"
            " AND kind IN ('estimate', 'ask') AND (used = ? OR declined_at IS NOT NULL) ORDER BY at DESC LIMIT 1",
            digest,
            DECLINED,
        )
        at = rows[0]["at"] if rows else None
        if at is None or at <= self._clock() - self.ttl:
            return None
        return SaidNo(float(at), rows[0]["declined_in"] is not None)

    def being_used(self, quote_id: str) -> bool:
        """Whether a call that used this quote is under way, in this process or another live one, without a create
        in the journal yet (its input files still uploading): used in the last ``SEND_LIMIT`` seconds by a process
        still running (or of another machine, which cannot be told: taken as running, as create attempts are), and
        no create attempt names it. A replay is then told a create is on its way. A quote whose call this process
        saw end with no create sent is not in use, even while the journal cannot yet take its release."""
        if quote_id in self._owed:
            self.release_owed()
            return False
        rows = self.journal.query(
            "SELECT used_by, used_at FROM quotes WHERE quote_id = ? AND used = 1 AND used_at > ? AND NOT EXISTS"
            " (SELECT 1 FROM attempts a WHERE a.quote_id = quotes.quote_id)",
            quote_id,
            self._clock() - SEND_LIMIT,
        )
        return bool(rows) and owner_gone(rows[0]["used_by"]) is not True  # this process: alive, so in use

    def in_use_for(self, digest: str, *, besides: str | None = None) -> float | None:
        """When the newest call of the request ``digest`` that a quote (or a question's yes) approved began, while
        it is under way without a create in the journal (``being_used``, by request: a server on this workspace,
        this one or another, is uploading its input files or waiting for its create's turn), or that another server
        on the workspace auto-approved, while it holds the request (``hold``); None when none is. ``besides``: a
        quote whose own use is left out (``generation.sent_since_quoted``: a quote is never overtaken by itself)."""
        now = self._clock()
        rows = self.journal.query(UNDER_WAY, digest, now, now - SEND_LIMIT)
        return max(self._begun([row for row in rows if row["quote_id"] != besides]), default=None)

    def _begun(self, rows: list[Any]) -> list[float]:
        """When the calls of ``rows`` (``UNDER_WAY``) began, for those still under way: their process runs (or is
        another machine's, which cannot be told: taken as running). A quote this process saw its call give back is
        not; nor is a hold of this server's own, whose calls ``SpendingCalls`` knows better (one whose call was cut
        off before its spend is no longer held there)."""
        return [
            float(row["used_at"])
            for row in rows
            if row["quote_id"] not in self._owed
            and row["used_by"] != self._holder
            and owner_gone(row["used_by"]) is not True
        ]

    def hold(self, digest: str, model_id: str, since: float, *, looked: float) -> str | None:
        """Hold the request ``digest`` for a call the gate auto-approved at ``since``, for every server on the
        workspace: a row of its own (``AUTO_HOLD``, used by this server at ``since``) that ``in_use_for`` reads, so the
        same request sent to another server while this call's input files go up, its balance is read or its creates
        wait for their turn is warned about and asked, never auto-approved too. Checked and written in one ``BEGIN
        IMMEDIATE`` transaction: of two servers deciding at once, one holds it. Returns the hold's id, to renew
        (``holding``) and let go of (``let_go``) when its call ends; None when another server's call of the request
        holds it already, or sent a create of it since ``looked`` (when the gate read the journal for it).

        A lease, as a held reservation is (``ledger.HOLD_LEASE``): renewed while its call runs, so a hold a killed
        server left is ignored once its process is known gone, or once it went unrenewed for minutes, wherever it
        ran; the old quotes' clear-out deletes it a month later (``forget_expired``)."""
        self.release_owed()
        now = self._clock()
        hold_id = "auto_" + secrets.token_hex(8)
        with self.journal.transaction() as db:
            rows = db.execute(UNDER_WAY, (digest, now, now - SEND_LIMIT)).fetchall()
            if self._begun(rows):
                return None
            sent = db.execute(  # a call of it that held it, sent its creates and ended since the gate looked
                "SELECT 1 FROM attempts WHERE digest = ? AND created >= ? AND state != 'refused' LIMIT 1",
                (digest, looked),
            ).fetchone()
            if sent is not None:
                return None
            gone = [row["quote_id"] for row in rows if row["kind"] == AUTO_HOLD and owner_gone(row["used_by"]) is True]
            db.execute(  # the request's holds nobody holds any more: lapsed, or their process gone
                f"DELETE FROM quotes WHERE digest = ? AND kind = 'auto' AND (expires <= ? OR quote_id IN"
                f" ({','.join('?' * len(gone))}))",
                (digest, now, *gone),
            )
            db.execute(
                "INSERT INTO quotes (quote_id, model, digest, body, expires, used, created, kind, used_by, used_at)"
                " VALUES (?, ?, ?, '{}', ?, 1, ?, ?, ?, ?)",
                (hold_id, model_id, digest, now + ledger.HOLD_LEASE, now, AUTO_HOLD, self._holder, since),
            )
        self._holds.add(hold_id)
        _HELD_HERE.setdefault(str(self.journal.path), set()).add(hold_id)
        return hold_id

    @asynccontextmanager
    async def holding(self, hold_id: str | None) -> AsyncIterator[None]:
        """Run the call of an auto approval's hold (``hold``) in this block: its lease is renewed every
        ``ledger.HOLD_RENEW`` seconds meanwhile, and no longer once the block ends."""
        if hold_id is None:
            yield
            return
        renew = "UPDATE quotes SET expires = ? WHERE quote_id = ? AND kind = 'auto'"
        async with ledger.renewing(self.journal, lambda: (renew, self._clock() + ledger.HOLD_LEASE, hold_id)):
            yield

    def let_go(self, hold_id: str | None) -> None:
        """Give up an auto approval's hold (``hold``): its call ended, its creates in the journal or none sent. A
        journal that cannot take it now (a full disk) gets it with the owed releases (``release_owed``); meanwhile
        the hold lapses for the other servers as a crashed one's does. One let go of already (``let_go_all``) is
        left alone. Never raises."""
        if hold_id is not None and hold_id in self._holds:
            self._holds.discard(hold_id)
            self._owed_holds.add(hold_id)
            self.release_owed()

    def let_go_all(self) -> None:
        """Give up every hold of this book whose call has not let go of it yet (``let_go``), and write the releases
        still owed, as its runtime closes, before the journal does: the calls end with the server (the runtime's close
        ends those still running first, ``RunningCalls``; what their own releases could not write is written here). A
        call that outlived its runtime all the same would meet a closed journal, where it can neither write its own
        release nor any create's attempt, so it sends no create; a create it sent before is in the journal as its
        attempt (written before the create is sent), which tells the other servers of it as before. Never raises."""
        self._owed_holds |= self._holds
        self._holds.clear()
        self.release_owed()

    def issued_at(self, quote_id: str) -> float | None:
        """When the quote was issued (epoch seconds); None when it is unknown."""
        rows = self.journal.query("SELECT created FROM quotes WHERE quote_id = ? AND kind != 'auto'", quote_id)
        return float(rows[0]["created"]) if rows else None

    def forget_expired(self, keep_days: float = KEEP_EXPIRED_DAYS) -> int:
        """Delete the quotes that expired more than ``keep_days`` ago and approved nothing (every estimate is a
        quote: about 1 KB each, which a busy agent adds by the thousand), so the journal stops growing with
        them. Slow on a large journal: call it in a worker thread."""
        return self.journal.forget_quotes(self._clock() - keep_days * 86400)

    def give_back(self, quote_id: str) -> None:
        """Unuse a quote that bought nothing: its call ended (cut off, an upload failed, a cap refused it) before any
        create was sent, or KIE refused every create it approved. A quote with any create that may have reached KIE
        (created, unknown, or still being sent) stays used. A journal that cannot take it now (a full disk) raises,
        and the quote is released at the next look at a quote once it can: a retry after space was freed finds the
        approval good, never "a create is on its way" for the ten minutes a create may take. One another program
        holds locked now is not waited for (that wait would be on the event loop): released the same way."""
        try:
            if self.journal.locked_now():
                raise JournalLocked("the journal is locked by another program or kie-mcp process")
            self._unuse(quote_id)
        except JOURNAL_ERRORS:
            self._owed.add(quote_id)
            raise
        self._owed.discard(quote_id)

    def _unuse(self, quote_id: str) -> None:
        """Unuse a quote this process used (never one another process has consumed since) that bought nothing; one
        the person declined while its call ran (``declined_at``) becomes declined instead, never usable again."""
        self.journal.execute(
            "UPDATE quotes SET used = CASE WHEN declined_at IS NULL THEN 0 ELSE ? END, used_by = NULL,"
            " used_at = declined_at WHERE quote_id = ? AND used_by = ? AND NOT EXISTS"
            " (SELECT 1 FROM attempts WHERE quote_id = ? AND state != 'refused')",
            DECLINED,
            quote_id,
            this_process(),
            quote_id,
        )

    @property
    def owes(self) -> bool:
        """Whether releases ``give_back`` (or ``let_go``) could not write are waiting for the journal to take them."""
        return bool(self._owed or self._owed_holds)

    def release_owed(self) -> None:
        """The releases ``give_back`` could not write (a full disk), written now if the journal takes them (else kept
        owed): at every look at a quote, and soon after on their own (the runtime's background, and its shutdown), so
        another server on the workspace, or this one restarted, finds the approval good too; and the holds ``let_go``
        could not give up, so the other servers need not wait for their lease to lapse. Each is tried, whatever became
        of the others (one the journal refuses holds back none after it), but for a journal another writer holds
        locked: every write would wait that lock out on the event loop (a look at a quote is there), so all of it is
        left for later. Never raises."""
        if self.owes and self.journal.locked_now():
            return
        for quote_id in tuple(self._owed):
            if (written := _tried(self._unuse, quote_id)) is None:
                return
            if written:
                self._owed.discard(quote_id)
        for hold_id in tuple(self._owed_holds):
            if (written := _tried(self.journal.execute, HOLD_DELETE, hold_id)) is None:
                return
            if written:
                self._owed_holds.discard(hold_id)
                _HELD_HERE.get(str(self.journal.path), set()).discard(hold_id)

    @staticmethod
    def _abandoned(row: Any, query: Callable[..., list[Any]]) -> bool:
        """Whether the used quote of ``row`` was left by a call that sent nothing: the process that used it is gone
        (this machine's and PID namespace's, by its tag: ``processes.HOST``) and it has no create attempt but refused
        ones (a create's attempt is written before it is sent), its release unwritten (a crash, or a full disk it
        never recovered from). Its approval bought nothing, so it approves its request once more. A live process's,
        another machine's or another namespace's stays used."""
        if row["used"] != 1 or owner_gone(row["used_by"]) is not True:  # unused, or declined (``DECLINED``)
            return False
        return not _sent(row["quote_id"], query)

    def _refusal(
        self,
        quote_id: str,
        digest: str,
        row: Any,
        kind: str = "estimate",
        request: Bound | None = None,
        answered_at: float | None = None,
    ) -> QuoteError | None:
        if row is None:
            return QuoteError(
                f"quote {quote_id} is unknown to this workspace (quotes live {span_words(self.ttl)}).", "unknown"
            )
        if row["kind"] != kind:
            return QuoteError(
                f"quote {quote_id} belongs to a confirmation question; only the user's answer to that question "
                "can approve it.",
                "question",
            )
        # Declined, or declined while a call used it and given back since (an older kie-mcp gives it back unused).
        if row["used"] == DECLINED or (not row["used"] and row["declined_at"] is not None):
            at = row["declined_at"] if row["declined_at"] is not None else row["used_at"]
            if row["declined_in"] is not None:
                return QuoteError(
                    f"quote {quote_id} was declined by the user in the confirmation form at {timestamp(at)}: it "
                    "approves nothing. Do not run this request unless the user asks for it again (the same call then "
                    "asks them in the form).",
                    "declined",
                )
            return QuoteError(
                f"quote {quote_id} was declined by the user on the approval card at {timestamp(at)}: it "
                "approves nothing. Do not run this request unless the user asks for it again (estimate_cost then "
                "gives a new quote).",
                "declined",
            )
        if row["used"]:
            return QuoteError(f"quote {quote_id} was already used; a quote approves one request once.", "used")
        now = self._clock()
        if (now if answered_at is None else min(answered_at, now)) > row["expires"]:
            return QuoteError(f"quote {quote_id} expired at {timestamp(row['expires'])}.", "expired")
        if row["digest"] != digest:
            changed = "" if request is None else changed_words(changed_arguments(row["request"], request))
            return QuoteError(
                f"quote {quote_id} was for different arguments; the request changed after the estimate{changed}.",
                "other request",
            )
        return None


def _tried(write: Callable[..., object], *args: Any) -> bool | None:
    """Whether ``write(*args)`` was taken by the journal: None when another writer held it locked longer than the
    write waited (the next write would wait as long)."""
    try:
        write(*args)
    except JOURNAL_ERRORS as err:
        return None if is_locked(err) else False
    return True


def _said_no(
    db: Any, row: Any, now: float, *, in_use: bool, form_asked: float | None = None
) -> tuple[int, int, float | None]:
    """The person's no to the request of the quote ``row`` (``QuoteBook.decline``, ``QuoteBook.decline_in_form``),
    written in the transaction ``db``: the calls of the request under way with no create sent yet keep it (this
    quote's, in use, and any other quote's or question's; ``declined_since`` stops them, and an auto-approved one, at
    their create: its hold, ``AUTO_HOLD``, is no quote to keep it); this quote, unless in use, and every unused
    estimate quote of the request approve nothing from now on (``DECLINED``). ``form_asked``: a No in the confirmation
    form, put to the person then; only the calls approved since (which the question could not tell of) are stopped,
    and the rows are marked as the form's (``declined_in``). Returns (the other calls stopped, the other quotes
    voided, when a create of the request was last sent since the quote was issued (or, in the form, since the question
    was put), whatever approved it)."""
    quote_id, digest = row["quote_id"], row["digest"]
    this, others = (None, None) if form_asked is None else (FORM_NO, FORM_NO_OF_REQUEST)
    stopped = db.execute(
        "UPDATE quotes SET declined_at = ?, declined_in = ? WHERE digest = ? AND used = 1 AND declined_at IS NULL"
        " AND kind != 'auto' AND quote_id != ? AND (? IS NULL OR used_at >= ?) AND NOT EXISTS (SELECT 1 FROM"
        " attempts a WHERE a.quote_id = quotes.quote_id AND a.state != 'refused')",
        (now, others, digest, quote_id, form_asked, form_asked),
    ).rowcount
    if in_use:
        db.execute("UPDATE quotes SET declined_at = ?, declined_in = ? WHERE quote_id = ?", (now, this, quote_id))
    else:
        db.execute(
            "UPDATE quotes SET used = ?, used_by = NULL, used_at = ?, declined_at = ?, declined_in = ? WHERE"
            " quote_id = ?",
            (DECLINED, now, now, this, quote_id),
        )
    voided = db.execute(
        "UPDATE quotes SET used = ?, used_by = NULL, used_at = ?, declined_at = ?, declined_in = ? WHERE digest = ?"
        " AND kind = 'estimate' AND used = 0",
        (DECLINED, now, now, others, digest),
    ).rowcount
    ran = db.execute(  # a create of this request sent since, whatever approved it
        "SELECT MAX(created) FROM attempts WHERE digest = ? AND created >= ? AND state != 'refused'",
        (digest, row["created"] if form_asked is None else form_asked),
    ).fetchone()[0]
    return stopped, voided, ran


def _sent(quote_id: str, query: Callable[..., list[Any]]) -> bool:
    """Whether a create the quote approved may have reached KIE: it has a create attempt other than refused ones (an
    attempt is written before its create is sent)."""
    return bool(query("SELECT 1 FROM attempts WHERE quote_id = ? AND state != 'refused' LIMIT 1", quote_id))


def _extended(db: Any, row: Any, expires: float) -> Quote:
    """The quote of ``row`` with its expiry moved to ``expires``, in the journal and in the quote it shows."""
    quote = _loaded(row["body"]).model_copy(update={"expires_at": timestamp(expires)})
    db.execute(
        "UPDATE quotes SET expires = ?, body = ? WHERE quote_id = ?",
        (expires, _body(quote), row["quote_id"]),
    )
    return quote


def let_go_here(seconds: float = ledger.STOP_SECONDS) -> None:
    """Let go of every request this process holds for an auto approval (``QuoteBook.hold``), as it stops (``cli``: a
    SIGTERM, a second signal, Ctrl-C): their calls end with it, and the next server (a container's, a machine's that
    cannot see this process gone) need not wait for their lease to lapse to auto-approve them. ``seconds`` at most
    for another writer; never raises."""

    def delete(db: Any, held: set[str]) -> None:
        db.execute(f"DELETE FROM quotes WHERE kind = 'auto' AND quote_id IN ({','.join('?' * len(held))})", (*held,))

    ledger.give_back_at_stop(_HELD_HERE, delete, seconds)
