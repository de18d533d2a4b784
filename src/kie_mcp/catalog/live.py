"""The live catalogue: what KIE sells right now, cached in the workspace, and what the request path asks of it.

The bundled data (``catalog/data/*.toml``) is dated and sourced; KIE changes models and prices without notice. A
sync reads what KIE publishes and keeps it in ``<workspace>/.kie-mcp/catalog-live.json``:

- ``GET /api/v1/models`` (key): every live model, ``{model, slug, title, provider, taskType: [...], description,
  pricingDesc}`` inside ``data = {total, models}``;
- ``GET /api/v1/models/{model}/schema`` (key): ``data = {model, openapi}``, the model's OpenAPI document or ``null``;
- ``GET /api/v1/models/{model}/success-rate`` (key): ``data = {model, points: [{start, end, successRate,
  errorRate, isNormal}]}``, 24 h in 10-minute buckets, ``successRate`` a percentage or ``null`` without traffic;
- ``POST /client/v1/model-pricing/page`` (no key): ``data = {records, total, pages}``; a record is
  ``{modelDescription, interfaceType, provider, creditPrice, creditUnit, usdPrice, falPrice, discountRate, anchor}``.

Sources: the kie-models agent skill (supercode.sh/en/skills/kie.ai/kie-models and docs.kie.ai/ai-agent, read
2026-12-02) for the four keyed lookups, their shapes and their shared budget of 1 request/second per account;
public captures of the price feed (record shape and ``{records, total, pages}``, checked against KIE 2026-09-28 with
503 records; a region answering code 4030 "Not supported in the current region.", noted 2026 in a public project
log) for the feed.

Offline, or on any error, a sync keeps what the cache had and records the error. Everything here that the request
path calls is a pure function of a loaded ``LiveCatalog``; only ``LiveCatalog.sync``/``refresh_schemas`` and
``maybe_sync`` talk to KIE.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kie_mcp.words import listed, parse_timestamp, plain, timestamp

from . import openapi
from .pricing import CATALOGUE_FLOOR, LIVE_ONLY, ItemPrice, price_input
from .pricing import credits_figure as _fmt  # a price as every answer writes one
from .spec import FieldSpec, ModelSpec, PriceSpec, Rate, Scalar, Source
from .validate import Problem, when_matches

if TYPE_CHECKING:
    from kie_mcp.kie import KieClient

    from .registry import Catalog
    from .spec import ModelSpec

log = logging.getLogger(__name__)

CACHE_DIR = ".kie-mcp"
CACHE_NAME = "catalog-live.json"
# 2: everything in the cache came from KIE's answers as cleaned when read (kie.envelope); 1: as KIE sent them.
CACHE_VERSION = 2
DEFAULT_MAX_AGE = timedelta(hours=24)
RETRY_AFTER = timedelta(hours=1)  # after a failed sync, wait this long before the next automatic one
FEED_PATH = "/client/v1/model-pricing/page"  # the price feed, as errors name it
# A feed with fewer rows than the previous one's divided by this (more than a third fewer) is taken for one cut
# short: the previous feed and its date are kept (``LiveCatalog.sync``), as for a model list cut short.
FEED_CUT_SHORT = 1.5
# Under this share of a feed's records readable (a description and a price), the feed came in a shape kie-mcp
# cannot read (fields renamed): an error, the last good feed kept, never every feed-priced model made unknown.
FEED_READABLE = 0.5
# Over this share of the bundled Market models gone from one model list to the next, the list was cut short:
# KIE withdraws a model or a few at a time.
MOST_WITHDRAWN = 1 / 3
# Such a list is taken as KIE's after all (a real cull) once two syncs at least this far apart return the same models.
SAME_SMALLER_LIST_APART = timedelta(hours=1)
MAX_FEED_PAGES = 40  # 503 records fit in 6 pages of 100; a changed feed must not turn into an endless download
EXTRA_SCHEMAS_PER_SYNC = 30  # schemas of live-only image/video models fetched per sync (about 1.1 s each)
MAX_ERRORS = 50
_CREDITS = re.compile(r"(?<!\d)(\d+(?:\.\d+)?)\s*credits?\b", re.IGNORECASE)
_PER_SECOND = re.compile(r"per[\s-]*second|each second|a second|/\s*s(?:ec)?\b", re.IGNORECASE)
_SOME_SECONDS = re.compile(r"\b\d+(?:\.\d+)?\s*(?:-\s*)?(?:s|sec|secs|second|seconds)\b", re.IGNORECASE)
# A price text that names a floor, a ceiling or a price that moves ("Starting from 4 credits per image; 2K and 4K
# outputs cost more"): the figure in it is no exact price, so a live-only model priced by it is unknown. The floor
# and ceiling words count next to a credit figure only ("from 4", "up to 10 credits", "4 credits or more", "4+"), so
# "from the 2026 list: 4 credits", "no additional fees", "Higher quality: 10 credits" and "(up to 10 s)" stay exact.
_NUMBER = r"\d+(?:\.\d+)?"
_NOT_A_CREDIT = r"(?!\.?\d|\s*(?:[a-bd-z%×:/]|c(?!redit)))"  # a number followed by no unit but credits (nor a ratio)
_NOT_EXACT = re.compile(
    r"\b(?:from|starting(?:\s+(?:at|from))?|starts?(?:\s+(?:at|from))?|up\s*to|at\s+least|at\s+most|"
    r"minimum(?:\s+of)?|maximum(?:\s+of)?|min\.?|max\.?|as\s+low\s+as|as\s+much\s+as|approx\w*\.?|about|"
    rf"around|roughly|estimated)\s*:?\s*{_NUMBER}{_NOT_A_CREDIT}"
    rf"|[~≈]\s*{_NUMBER}|{_NUMBER}\s*\+"
    rf"|{_NUMBER}\s*credits?(?:\s+(?:per|each|a|for)\s+\w+)?\s*,?\s*(?:or\s+more|or\s+above|or\s+higher|and\s+up)\b"
    r"|\b(?:varies|vary|varying|variable|depending\s+on|depends\s+on|based\s+on|costs?\s+more|surcharge)\b",
    re.IGNORECASE,
)
# Two or more credit figures in one text ("4 credits per image; 4K: 16", "4-8", "between 4 and 8", "4 or 8"): no
# one exact price. A figure is a number followed by "credits", one after a colon, or one end of a range or choice.
_FIGURES = re.compile(
    rf"({_NUMBER})\s*credits?\b|(?<!\d):\s*({_NUMBER}){_NOT_A_CREDIT}"
    rf"|(?<![\d.:/])({_NUMBER})\s*(?:-|–|—|to|or|and)\s*({_NUMBER}){_NOT_A_CREDIT}",
    re.IGNORECASE,
)
# -- a live-only model's output count ------------------------------------------------------------------------
# KIE's price text prices one request or one output; a field asking for several outputs changes what a request
# costs. A field LOOKS LIKE AN OUTPUT COUNT when it holds whole numbers (integer, number, or an enum of whole
# numbers) and its name, split into words (snake_case, camelCase, kebab-case; "of" dropped), is
#   - a bare count word: n, num, number, count;
#   - batch, alone or followed by size/count/n/num/number or output nouns (batch, batch_size, batchCount);
#   - only count words (n, num, number, count, total, max) and output nouns (image, picture, photo, video, clip,
#     output, variant, variation, sample, generation, result; singular or plural), with at least one noun and
#     either a count word or a plural noun (numImages, num_outputs, image_count, number_of_images, variants).
# Not counts: num_inference_steps, num_frames, n_frames, max_image_size, output_quality (words outside the sets).
# Such a field MULTIPLIES the price (price x count) only when all of these hold:
#   - it is the model's only count-like field, and it holds integers (or an enum of whole numbers);
#   - its exact name is one of _COUNT_FIELDS, the names KIE's documented models use for the number of images
#     billed per image (bundled catalogue data), so its meaning is known;
#   - the price is not per second, and its wording is per output (_PER_OUTPUT: "per image", "for each image",
#     "each image", "per output", "/video", ...) of the model's own kind ("output" suits both), with no
#     per-request wording beside it (_PER_REQUEST: "per request", "per image generation", ...).
# Any other count-like field keeps the price only while it is left out or 1: above 1 the price is unknown (never
# one output's price for several, never a guess at how KIE bills them).
_COUNT_FIELDS = ("num_images", "n", "max_images", "number_of_images")
_COUNT_WORDS = frozenset({"n", "num", "number", "count", "total", "max"})
_BATCH_TAIL = frozenset({"size", "count", "n", "num", "number"})
_IMAGE_NOUNS = frozenset({"image", "picture", "photo"})
_VIDEO_NOUNS = frozenset({"video", "clip"})
_OUTPUT_NOUNS = frozenset(
    {"image", "picture", "photo", "video", "clip", "output", "variant", "variation", "sample", "generation", "result"}
)
_NOT_PER_OUTPUT = r"(?:request|generation|task|call|job|run|batch|set|edit|prompt|submission|pair|group)s?\b"
_PER_OUTPUT = re.compile(
    r"(?:\bper|\bfor\s+each|\bfor\s+every|\beach|/)\s*(?:generated\s+|output\s+)?"
    r"(image|picture|photo|video|clip|output)s?(?![\w-])"  # not "each image-to-image request"
    rf"(?!\s+{_NOT_PER_OUTPUT})",  # not "per image generation"
    re.IGNORECASE,
)
_PER_REQUEST = re.compile(
    rf"(?:\bper|\bfor\s+each|\bfor\s+every|\beach|/)\s*(?:[\w-]{{1,40}}+\s+)?{_NOT_PER_OUTPUT}", re.IGNORECASE
)
MAX_GUARDED_COUNTS = 3  # more count-like fields than this: no price at all (2^n rates would be needed)


def cache_path(workspace: Path) -> Path:
    """Where the live catalogue of a workspace is cached."""
    return workspace / CACHE_DIR / CACHE_NAME


# -- what KIE publishes, as cached -----------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class LiveModel(_Loose):
    """One row of KIE's live model list."""

    model: str
    title: str = ""
    provider: str = ""
    task_types: list[str] = Field(default_factory=list)
    description: str | None = None
    pricing_desc: str = ""

    @classmethod
    def from_wire(cls, row: Mapping[str, Any]) -> LiveModel | None:
        model_id = row.get("model") or row.get("slug")
        if not isinstance(model_id, str) or not model_id.strip():
            return None
        task_types = row.get("taskType")
        if isinstance(task_types, str):
            task_types = task_types.split(",")
        if not isinstance(task_types, list):
            task_types = []
        return cls(
            model=model_id.strip(),
            title=_text(row.get("title")),
            provider=_text(row.get("provider")),
            task_types=[str(t).strip() for t in task_types if str(t).strip()],
            description=row.get("description") if isinstance(row.get("description"), str) else None,
            pricing_desc=_text(row.get("pricingDesc")),
        )

    @property
    def kind(self) -> Literal["image", "video"] | None:
        return kind_of(self.task_types)


class FeedRow(_Loose):
    """One record of KIE's public price feed."""

    description: str
    interface_type: str = ""
    provider: str = ""
    credits: float | None = None
    unit: str = ""
    usd: float | None = None
    anchor: str = ""

    @classmethod
    def from_wire(cls, row: Mapping[str, Any]) -> FeedRow | None:
        description = _text(row.get("modelDescription"))
        if not description:
            return None
        return cls(
            description=description,
            interface_type=_text(row.get("interfaceType")).lower(),
            provider=_text(row.get("provider")),
            credits=_number(row.get("creditPrice")),
            unit=_text(row.get("creditUnit")),
            usd=_number(row.get("usdPrice")),
            anchor=_text(row.get("anchor")),
        )

    @property
    def model_id(self) -> str | None:
        """The model the row's link names (``...?model=kling-2.6%2Ftext-to-video``), if it names one."""
        values = parse_qs(urlsplit(self.anchor).query).get("model")
        return values[0] if values else None


class SchemaEntry(_Loose):
    fetched_at: str
    openapi: dict[str, Any] | None = None  # None: KIE answered ``openapi: null`` (not synced yet)


class SuccessPoint(_Loose):
    start: str = ""
    end: str = ""
    success_rate: float | None = None  # percent
    error_rate: float | None = None
    is_normal: bool | None = None

    @classmethod
    def from_wire(cls, row: Mapping[str, Any]) -> SuccessPoint:
        normal = row.get("isNormal")
        return cls(
            start=_text(row.get("start")),
            end=_text(row.get("end")),
            success_rate=_number(row.get("successRate")),
            error_rate=_number(row.get("errorRate")),
            is_normal=normal if isinstance(normal, bool) else None,
        )


class SuccessEntry(_Loose):
    fetched_at: str
    points: list[SuccessPoint] = Field(default_factory=list)


class LiveError(_Loose):
    at: str
    endpoint: str
    model: str | None = None
    code: int | None = None
    message: str


class LivePrice(NamedTuple):
    """A feed row's live price: credits per ``unit`` ("per image", "per second", ...) as of ``date``."""

    credits: float
    unit: str
    date: str


@dataclass(frozen=True)
class RateVerdict:
    """What to price one bundled rate with. ``credits`` None: unknown (never guess)."""

    state: Literal["bundled", "live", "unknown"]
    credits: float | None
    date: str | None
    detail: str


@dataclass(frozen=True)
class PriceChange:
    model: str
    feed: str
    bundled: float
    live: float | None  # None: the row is gone from KIE's feed


class SmallerList(_Loose):
    """A model list refused as cut short (``_newly_withdrawn``): which models it held, and when it was first seen."""

    at: str
    models: list[str]


class LiveCatalog(_Loose):
    """The cached live catalogue. Times are ISO 8601 UTC. A part never read is None (not empty)."""

    version: int = CACHE_VERSION
    attempted_at: str | None = None  # the last sync, whatever its outcome
    fetched_at: str | None = None  # when KIE's model list was last read
    models: dict[str, LiveModel] | None = None
    feed_at: str | None = None  # when the price feed was last read (all pages)
    feed: list[FeedRow] | None = None
    schemas: dict[str, SchemaEntry] = Field(default_factory=dict)
    success: dict[str, SuccessEntry] = Field(default_factory=dict)
    models_in_use: list[str] = Field(default_factory=list)
    errors: list[LiveError] = Field(default_factory=list)  # those of the last sync
    # Models KIE answered a create of with "The page does not exist or is not published", and when: withdrawn in this
    # workspace until a model list read after that answer says otherwise (``refused_at``).
    unpublished: dict[str, str] = Field(default_factory=dict)
    # The last model list refused as cut short: the same one again ``SAME_SMALLER_LIST_APART`` later is taken.
    smaller_list: SmallerList | None = None
    smaller_feed: SmallerList | None = None  # the same for the price feed (its rows' descriptions)
    notes: list[str] = Field(default_factory=list)  # what the last sync did that is no error (a cull accepted)

    # -- state -------------------------------------------------------------------------------

    @property
    def has_list(self) -> bool:
        """KIE's model list was read (and was not empty): withdrawals can be judged."""
        return bool(self.models)

    @property
    def has_feed(self) -> bool:
        """KIE's price feed was read: a rate's feed row can be priced, or found gone."""
        return self.feed is not None

    def age(self, now: datetime | None = None) -> timedelta | None:
        fetched = parse_timestamp(self.fetched_at)
        return None if fetched is None else (now or datetime.now(UTC)) - fetched

    def refused_at(self, model_id: str) -> str | None:
        """When KIE answered a create of ``model_id`` that it is not published, while no model list has been read
        since (a later list decides again: listed, it is offered; unlisted, it is gone by the list); else None."""
        at = self.unpublished.get(model_id)
        return at if _refusal_stands(at, self.fetched_at) else None

    def with_unpublished(self, model_id: str, now: datetime | None = None) -> LiveCatalog:
        """A copy marking that KIE answered a create of ``model_id`` now that the model is not published."""
        marks = {**self.unpublished, model_id: timestamp(now or datetime.now(UTC))}
        return self.model_copy(update={"unpublished": marks})

    def keeping_refusals_of(self, before: LiveCatalog) -> LiveCatalog:
        """This catalogue (a sync's, read while ``before`` was in use) with ``before``'s refusals that it lacks and
        that no model list it read has superseded: a create refused during a sync stays refused after it."""
        kept = {
            model: at
            for model, at in before.unpublished.items()
            if model not in self.unpublished and _refusal_stands(at, self.fetched_at)
        }
        return self.model_copy(update={"unpublished": {**self.unpublished, **kept}}) if kept else self

    def save_keeping_refusals(self, path: Path) -> LiveCatalog:
        """Save this catalogue (a sync's, begun from the cache at ``path``) there with the refusals another process
        wrote into that cache meanwhile (``note_unpublished``: a server whose create KIE refused while this sync
        ran) that no model list it read supersedes (``keeping_refusals_of``); returns what was saved. Saved as it
        was read, a sync wrote over them, and the model was offered again."""
        kept = self.keeping_refusals_of(LiveCatalog.load(path))
        kept.save(path)
        return kept

    def schema_of(self, model_id: str) -> dict[str, Any] | None:
        """The cached OpenAPI document of a model, or None (never fetched, or KIE answered `openapi: null`)."""
        entry = self.schemas.get(model_id)
        return entry.openapi if entry is not None else None

    # -- disk --------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> LiveCatalog:
        """The cache at ``path``; an empty catalogue when there is none or it cannot be read (never raises)."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except OSError as err:
            log.warning("cannot read the live catalogue cache %s: %s", path, err)
            return cls()
        from kie_mcp.kie.envelope import clean

        try:
            live = cls.model_validate_json(raw)
            if live.version >= CACHE_VERSION:
                return live
            # Written before KIE's answers were cleaned as they are read (redacted, valid Unicode): it may hold a key
            # KIE echoed, which list_models would show. Cleaned once (about 0.3 s on a full cache) and kept so.
            cleaned = cls.model_validate({**clean(live.model_dump()), "version": CACHE_VERSION})
            try:
                cleaned.save(path)
            except OSError as err:  # a read-only workspace: cleaned again on the next start
                log.warning("could not rewrite the live catalogue cache %s: %s", path, err)
            return cleaned
        except (ValidationError, ValueError, RecursionError) as err:
            log.warning("ignoring an unreadable live catalogue cache %s: %s", path, str(err).splitlines()[0])
            return cls()

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, flushed, then renamed over the cache."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed or removed
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        )
        try:
            with handle:
                handle.write(self.model_dump_json(indent=1))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            raise

    # -- talking to KIE ----------------------------------------------------------------------

    async def sync(
        self,
        kie: KieClient,
        *,
        models_in_use: Iterable[str] = (),
        now: datetime | None = None,
        catalog: Catalog | None = None,
        extra_schemas: int = EXTRA_SCHEMAS_PER_SYNC,
        prices_tried: Callable[[LiveCatalog], None] | None = None,
    ) -> LiveCatalog:
        """Read KIE's model list, the public price feed (every page), the schemas of ``models_in_use`` (and of live
        image/video models the bundled catalogue lacks, up to ``extra_schemas`` not yet cached) and their success
        rates. Returns an updated copy; never raises for KIE or network trouble: what fails keeps its cached value
        and is listed in ``errors``. The keyed lookups go through ``kie``'s ~1/s catalogue pacing, so the schemas
        may take a minute: ``prices_tried`` is handed a copy of what the list and the feed gave, as soon as both
        were tried, read or failed (so a quote waiting for the prices goes on, and says why it has none)."""
        from kie_mcp.kie import Category, KieError

        from .registry import load_catalog

        stamp = timestamp(now or datetime.now(UTC))
        new = self.model_copy(deep=True)
        new.attempted_at, new.errors, new.notes = stamp, [], []
        in_use = list(dict.fromkeys(m for m in models_in_use if isinstance(m, str) and m))
        new.models_in_use = in_use

        from kie_mcp.kie.client import ModelListIncomplete

        bundled = catalog if catalog is not None else load_catalog()
        list_ok = True
        try:
            rows = [m for m in (LiveModel.from_wire(r) for r in await kie.list_models()) if m is not None]
            read = {m.model: m for m in rows}
            dropped = _newly_withdrawn(self.models, set(read), bundled)
            if dropped is not None and self._same_smaller_list(sorted(read), stamp):
                assert self.smaller_list is not None
                new.notes.append(
                    f"KIE's model list left out many Market models kie-mcp ships, with the same {len(read)} models at "
                    f"{self.smaller_list.at} and now, at least an hour apart: taken as KIE's list (models withdrawn), "
                    "not one cut short"
                )
                dropped = None
            if not rows:
                new._error(stamp, "/api/v1/models", None, None, "KIE listed no models; the previous list was kept")
            elif dropped is not None:
                held = self.smaller_list
                if held is None or held.models != sorted(read):
                    new.smaller_list = SmallerList(at=stamp, models=sorted(read))
                added = {k: v for k, v in read.items() if k not in (self.models or {})}
                if added:  # what it newly lists is taken in any case (a model KIE added is no cut)
                    new.models = {**(self.models or {}), **added}
                since = new.smaller_list.at if new.smaller_list is not None else stamp
                new._error(
                    stamp,
                    "/api/v1/models",
                    None,
                    None,
                    f"{dropped}"
                    + (f" (the {len(added)} models it newly lists were added to it)" if added else "")
                    + f"; the same list again an hour or more after {since} is taken as KIE's",
                )
            else:
                new.models, new.fetched_at = read, stamp
                new.unpublished = {}  # the list read now decides, as ``refused_at`` says
                new.smaller_list = None
        except ModelListIncomplete as err:  # KIE answers, but gave part of its list: the previous one is kept
            new._error(stamp, "/api/v1/models", None, None, f"{err.message}; the previous list was kept")
        except KieError as err:
            list_ok = False
            new._error_from(stamp, "/api/v1/models", None, err)

        try:
            feed = await read_feed(kie)
            rows_read = sorted(r.description for r in feed)
            if feed and self.smaller_feed is not None and self._same_smaller_list(rows_read, stamp, self.smaller_feed):
                new.notes.append(
                    f"KIE's price feed came with the same {len(feed)} rows at {self.smaller_feed.at} and now, at least "
                    "an hour apart: taken as KIE's feed, not one cut short"
                )
                new.feed, new.feed_at, new.smaller_feed = feed, stamp, None
            elif not self.feed or len(feed) * FEED_CUT_SHORT >= len(self.feed):
                new.feed, new.feed_at, new.smaller_feed = feed, stamp, None
            elif not feed:  # an empty feed never replaces a non-empty one (nor its date)
                new._error(
                    stamp, FEED_PATH, None, None, "KIE's price feed came empty; the previous one and its date were kept"
                )
            else:  # nor does one more than a third shorter: a feed cut short, as a model list can be
                new._error(
                    stamp,
                    FEED_PATH,
                    None,
                    None,
                    f"KIE's price feed came with {len(feed)} rows, more than a third fewer than the previous "
                    f"{len(self.feed)} (cut short?); the previous one and its date were kept (the same rows again an "
                    "hour or more later are taken as KIE's)",
                )
                if self.smaller_feed is None or self.smaller_feed.models != rows_read:
                    new.smaller_feed = SmallerList(at=stamp, models=rows_read)
        except KieError as err:
            new._error_from(stamp, FEED_PATH, None, err)
        if prices_tried is not None:  # its own parts: the schemas, success rates and errors still change
            parts = {"schemas": dict(new.schemas), "success": dict(new.success), "errors": list(new.errors)}
            prices_tried(new.model_copy(update=parts))

        if not list_ok:
            return new  # the key, the network or KIE is failing: per-model lookups would fail the same way
        live = new.models or {}
        extras = [
            m.model
            for m in sorted(live.values(), key=lambda m: m.model)
            if m.kind is not None and m.model not in bundled and m.model not in new.schemas
        ][: max(extra_schemas, 0)]
        wanted = [m for m in in_use if m in live] + [m for m in extras if m not in in_use]
        stopped = await new._fetch_schemas(kie, wanted, stamp)
        if stopped:
            return new
        for model_id in (m for m in in_use if m in live):
            try:
                points = await kie.model_success_rate(model_id)
            except KieError as err:
                new._error_from(stamp, "success-rate", model_id, err)
                if err.category in (Category.NETWORK, Category.AUTH, Category.BLOCKED):
                    break
                continue
            new.success[model_id] = SuccessEntry(fetched_at=stamp, points=[SuccessPoint.from_wire(p) for p in points])
        return new

    async def refresh_schemas(
        self, kie: KieClient, model_ids: Iterable[str], *, now: datetime | None = None
    ) -> LiveCatalog:
        """Fetch just these models' schemas (a model asked for that the cache lacks); returns an updated copy."""
        stamp = timestamp(now or datetime.now(UTC))
        new = self.model_copy(deep=True)
        await new._fetch_schemas(kie, list(dict.fromkeys(model_ids)), stamp)
        return new

    async def _fetch_schemas(self, kie: KieClient, model_ids: list[str], stamp: str) -> bool:
        """Fetch schemas in place; True when a network or auth failure stopped the rest."""
        from kie_mcp.kie import Category, KieError

        for model_id in model_ids:
            try:
                document = await kie.model_schema(model_id)
            except KieError as err:
                self._error_from(stamp, "schema", model_id, err)
                if err.category in (Category.NETWORK, Category.AUTH, Category.BLOCKED):
                    return True
                continue
            self.schemas[model_id] = SchemaEntry(fetched_at=stamp, openapi=document)
        return False

    def _same_smaller_list(self, models: list[str], stamp: str, held: SmallerList | None = None) -> bool:
        """Whether ``models`` is the list refused as cut short before (``smaller_list``, or ``held``), an hour or more
        ago."""
        held = held if held is not None else self.smaller_list
        if held is None or held.models != models:
            return False
        first, now = parse_timestamp(held.at), parse_timestamp(stamp)
        return first is not None and now is not None and now - first >= SAME_SMALLER_LIST_APART

    def _error(self, at: str, endpoint: str, model: str | None, code: int | None, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(LiveError(at=at, endpoint=endpoint, model=model, code=code, message=message))
        log.info("live catalogue: %s%s: %s", endpoint, f" ({model})" if model else "", message)

    def _error_from(self, at: str, endpoint: str, model: str | None, err: Exception) -> None:
        code = getattr(err, "code", None)
        message = getattr(err, "message", None) or str(err)
        category = getattr(err, "category", None)
        if category is not None:
            message = f"{message} ({getattr(category, 'value', category)})"
        self._error(at, endpoint, model, code, message)


def _newly_withdrawn(before: dict[str, LiveModel] | None, listed: set[str], bundled: Catalog) -> str | None:
    """Why a model list that would newly withdraw more than ``MOST_WITHDRAWN`` of the bundled Market models (those
    listed before, or all of them on a first read) is taken for a list cut short, not KIE withdrawing them; None
    when it is not. KIE withdraws a model or a few at a time, never a third of its catalogue in a day."""
    market = [spec.id for spec in bundled.offered() if spec.family == "market"]
    if not listed or not market:
        return None
    gone = [m for m in market if m not in listed and (before is None or m in before)]
    if len(gone) <= len(market) * MOST_WITHDRAWN:
        return None
    return (
        f"KIE's list looks incomplete: it leaves out {len(gone)} of the {len(market)} Market models kie-mcp ships "
        "that were listed before; the previous list was kept"
    )


def _refusal_stands(refused_at: str | None, listed_at: str | None) -> bool:
    """Whether a refusal of ``refused_at`` still stands: no model list was read after it."""
    refused, listed = parse_timestamp(refused_at), parse_timestamp(listed_at)
    return refused is not None and (listed is None or listed <= refused)


async def read_feed(kie: KieClient, *, max_pages: int = MAX_FEED_PAGES) -> list[FeedRow]:
    """Every row of KIE's public price feed, page by page; raises ``KieError`` unless all pages were read."""
    from kie_mcp.kie import Category, KieError

    rows: list[FeedRow] = []
    seen = 0
    priced = 0
    total: int | None = None
    for page in range(1, max_pages + 1):
        answer = await kie.price_feed_page(page)
        records = answer["records"]
        total = answer["total"] if answer["total"] is not None else total
        seen += len(records)
        read = [r for r in (FeedRow.from_wire(x) for x in records) if r is not None]
        rows += read
        priced += sum(1 for r in read if r.credits is not None)
        pages = answer["pages"]
        if not records or (pages is not None and page >= pages) or (total is not None and seen >= total):
            break
    else:
        raise KieError(f"KIE's price feed has more than {max_pages} pages", category=Category.PROTOCOL)
    if total is not None and seen < total:
        raise KieError(
            f"KIE's price feed ended after {seen} of {total} records", category=Category.PROTOCOL, retryable=True
        )
    if seen and priced < seen * FEED_READABLE:  # records came, but (nearly) none has a description and a price
        raise KieError(
            f"KIE's price feed came in a shape kie-mcp cannot read ({priced} of {seen} records readable); the "
            "previous feed and its date were kept",
            category=Category.PROTOCOL,
            endpoint=FEED_PATH,
        )
    return rows


async def maybe_sync(
    kie: KieClient,
    cache_path: Path,
    models_in_use: Iterable[str],
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    retry_after: timedelta = RETRY_AFTER,
    now: datetime | None = None,
    catalog: Catalog | None = None,
    starts: Callable[[], None] | None = None,
    prices_tried: Callable[[LiveCatalog], None] | None = None,
) -> LiveCatalog | None:
    """Sync and save the cache when it is older than ``max_age``; return the new catalogue, or None when nothing was
    done (fresh cache, a sync already running for this cache in this process, a failed attempt less than
    ``retry_after`` ago, or any error at all). Never raises (except cancellation): meant to run in a background task
    so that it never delays start-up or a tool call. ``starts``: called once a sync is found due, before anything is
    read (never for a check that reads nothing); ``prices_tried``: as for ``LiveCatalog.sync``."""
    key = str(cache_path)
    if key in _RUNNING:
        return None
    _RUNNING.add(key)
    try:
        moment = now or datetime.now(UTC)
        live = LiveCatalog.load(cache_path)
        age = live.age(moment)
        if age is not None and age < max_age:
            return None
        attempted = parse_timestamp(live.attempted_at)
        if attempted is not None and moment - attempted < retry_after:
            return None  # the last attempt failed a moment ago (offline): do not hammer KIE at every start
        if starts is not None:
            starts()
        new = await live.sync(kie, models_in_use=models_in_use, now=moment, catalog=catalog, prices_tried=prices_tried)
        return new.save_keeping_refusals(cache_path)
    except OSError as err:  # the cache could not be written (a read-only workspace, a full disk): no traceback
        log.warning("live catalogue sync could not be saved in %s (%s); it was not kept", cache_path, err)
        return None
    except Exception:
        log.warning("live catalogue sync failed; the cache was left as it was", exc_info=True)
        return None
    finally:
        _RUNNING.discard(key)


_RUNNING: set[str] = set()


def models_in_use_from_journal(workspace: Path, *, days: int = 30, limit: int = 40) -> list[str]:
    """Models this workspace quoted or ran in the last ``days`` (newest first), read-only from its journal."""
    from kie_mcp.journal import journal_path

    path = journal_path(workspace)
    if not path.is_file():
        return []
    since = time.time() - days * 86400
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)) as db:
            rows = db.execute(
                "SELECT model, MAX(created) AS last FROM ("
                " SELECT model, created FROM tasks WHERE created >= ?"
                " UNION ALL SELECT model, created FROM quotes WHERE created >= ?)"
                " GROUP BY model ORDER BY last DESC LIMIT ?",
                (since, since, limit),
            ).fetchall()
    except sqlite3.Error as err:
        log.info("cannot read models in use from the journal: %s", err)
        return []
    return [str(row[0]) for row in rows if row[0]]


# -- what the request path asks --------------------------------------------------------------------


LIVE_LIST = "KIE's live model list"  # the source of a withdrawal read there (``gone_from``)
REFUSED_CREATE = "KIE's answer to a create of it"  # the source of one KIE said in answer to a create


def is_gone(live: LiveCatalog | None, model_id: str, catalog: Catalog | None = None) -> bool:
    """Whether KIE no longer sells this bundled Market model: the one test of "KIE stopped selling it". Gone from its
    live list, or refused by KIE as not published in answer to a create since the list was read (``refused_at``).

    Product-API models (Veo, Runway, ...) are listed by KIE under other names, so they are never judged here; nor
    is anything before a model list was read or a create refused.
    """
    from .registry import load_catalog

    if live is None:
        return False
    unlisted = live.has_list and live.models is not None and model_id not in live.models
    if not unlisted and live.refused_at(model_id) is None:
        return False
    spec = (catalog if catalog is not None else load_catalog()).get(model_id)
    return spec is not None and spec.family == "market"


def gone_from(live: LiveCatalog, model_id: str) -> tuple[str | None, str]:
    """The day and the source of what says KIE no longer sells ``model_id`` (``is_gone``): its refusal of a create
    (``REFUSED_CREATE``), else its live model list (``LIVE_LIST``, dated by the list's read; None before one)."""
    refused = live.refused_at(model_id)
    if refused is not None:
        return refused[:10], REFUSED_CREATE
    return (live.fetched_at or "")[:10] or None, LIVE_LIST


def gone_words(day: str | None, source: str) -> str:
    """``gone_from``'s answer in words: why a refusal or a table says the model is withdrawn."""
    if source == REFUSED_CREATE:
        return f"KIE answered a create of it on {day} that its page does not exist or is not published"
    return f"gone from {LIVE_LIST} of {day or 'its last sync'}"


def still_sold(catalog: Catalog, live: LiveCatalog | None) -> list[ModelSpec]:
    """The models of ``catalog`` KIE sells, in its order: none withdrawn in the data (``offered``) or gone from
    KIE's live list (``is_gone``). Every surface that lists models asks this, so they agree."""
    return [spec for spec in catalog.offered() if not is_gone(live, spec.id, catalog)]


class _Candidate(NamedTuple):
    """A model ``is_withdrawn`` may name instead of a withdrawn one: a row of KIE's live list, or before any list was
    read a bundled model still sold, in the few facts its ranking compares (kind, provider, task types, title)."""

    model: str
    kind: str | None
    provider: str
    task_types: list[str]
    title: str


def is_withdrawn(live: LiveCatalog, model_id: str, catalog: Catalog | None = None) -> list[str] | None:
    """None unless KIE no longer sells this bundled Market model (``is_gone``); then the nearest alternatives of the
    same kind (ranked by provider, task type and name), best first, possibly empty: KIE's live models, or before
    any list was read the models the bundled data still sells. Never one KIE refused as not published."""
    from .registry import load_catalog

    bundled = catalog if catalog is not None else load_catalog()
    spec = bundled.get(model_id)
    if spec is None or not is_gone(live, model_id, bundled):
        return None
    if live.models:
        pool = [_Candidate(m.model, m.kind, m.provider, m.task_types, m.title) for m in live.models.values()]
    else:
        pool = [_Candidate(s.id, s.kind, "", s.capabilities, s.title) for s in still_sold(bundled, live)]
    wanted_types = {_task_key(c) for c in spec.capabilities}
    provider = _provider_key(model_id)
    scored: list[tuple[float, str]] = []
    for candidate in pool:
        if candidate.kind != spec.kind or candidate.model == model_id or live.refused_at(candidate.model):
            continue
        score = 0.0
        if provider and (provider == _provider_key(candidate.model) or provider in candidate.provider.lower()):
            score += 2.0
        types = {_task_key(t) for t in candidate.task_types}
        if types and wanted_types:
            score += 2.0 * len(types & wanted_types) / len(types | wanted_types)
        score += 2.0 * difflib.SequenceMatcher(None, _name_key(model_id), _name_key(candidate.model)).ratio()
        title = _name_key(candidate.title)
        if title:
            score += difflib.SequenceMatcher(None, _name_key(spec.title), title).ratio()
        if candidate.model in bundled:
            score += 0.5  # kie-mcp can price and validate it from its own data
        scored.append((score, candidate.model))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [model for score, model in scored[:3] if score >= 1.5]


def note_unpublished(path: Path, model_id: str, now: datetime | None = None) -> None:
    """Record in the workspace's cache at ``path`` that KIE answered a create of ``model_id`` that it is not
    published (``LiveCatalog.with_unpublished``): the cache as it is on disk now (another server's newer sync kept),
    with the mark. Raises ``OSError`` when it cannot be written."""
    LiveCatalog.load(path).with_unpublished(model_id, now).save(path)


LIVE_VALUES_TRIED = 200  # values of a live schema's enum tried against kie-mcp's data when a default is refused


def stricter_problems(live: LiveCatalog, spec: ModelSpec, wire: Mapping[str, Any]) -> list[Problem]:
    """Where ``wire`` (already valid for the bundled data) breaks KIE's live schema of the model: an enum narrowed,
    a field now required, a tighter minimum/maximum, maxLength or item count. Local ``$ref``s are resolved and a
    ``oneOf`` input must fit one branch. Empty without a cached schema (or with ``openapi: null``)."""
    entry = live.schemas.get(spec.id)
    if entry is None or entry.openapi is None:
        return []
    return openapi.check(entry.openapi, wire, label=live_label(entry), known=spec.fields)


def live_label(entry: SchemaEntry) -> str:
    """How an error names a cached live schema: "KIE's live schema of <the day it was read>"."""
    return f"KIE's live schema of {entry.fetched_at[:10]}"


def fit_live_defaults(
    live: LiveCatalog, spec: ModelSpec, wire: Mapping[str, Any], defaulted: Collection[str]
) -> tuple[dict[str, Any], list[str], list[Problem]]:
    """``wire`` fitted to the model's live schema where only kie-mcp's bundled default (``defaulted``: no one asked
    for it) breaks it: the live schema's own default when the bundled data allows and prices it, else the field left
    out when the live schema does not require it and the price does not depend on it, else a problem saying plainly
    that KIE changed the field and what to pick. Returns the wire to price and send, what the quote says of each
    change, and every remaining problem (``stricter_problems`` of the fitted wire among them)."""
    problems = stricter_problems(live, spec, wire)
    entry = live.schemas.get(spec.id)
    if not problems or entry is None or entry.openapi is None:
        return dict(wire), [], problems
    label, fitted, notes, refused = live_label(entry), dict(wire), [], []
    for problem in problems:
        name = problem.field
        if name not in defaulted or name not in fitted:
            continue
        prop, required = openapi.field_of(entry.openapi, name)
        ours, theirs = fitted[name], (prop or {}).get("default")
        setting = spec.fields[name].arg or f"options.{name}"
        why = f"{label} no longer allows kie-mcp's default {plain(ours)}"
        live_takes = theirs is not None and not any(
            p.field == name for p in stricter_problems(live, spec, {**fitted, name: theirs})
        )
        if live_takes and _bundled_takes(spec, {**fitted, name: theirs}):
            fitted[name] = theirs
            notes.append(
                f"{name}={plain(theirs)} is sent: {why}, and {plain(theirs)} is its own default. Set {setting}"
            )
            notes[-1] += " to choose another."
        elif prop is not None and not required and not _priced_by(spec, name):
            del fitted[name]
            notes.append(f"{name} is left out, for KIE to choose: {why}. Set {setting} to choose.")
        else:
            # the first few hundred (a garbage schema's enum of thousands priced one by one took seconds a call)
            values = (openapi.allowed_values(entry.openapi, prop or {}) or [])[:LIVE_VALUES_TRIED]
            ours_too = [v for v in values if _bundled_takes(spec, {**fitted, name: v})]
            pick = f" Set {setting} to one of {listed(ours_too)}." if ours_too else " Use another model for now."
            cannot = [v for v in values if v not in ours_too]
            unpriced = f" ({listed(cannot)} too, which kie-mcp cannot price yet)" if cannot and ours_too else ""
            refused.append(Problem(name, f"KIE changed this field: {why} ({problem.message}){unpriced}.{pick}"))
    named = {p.field for p in refused}
    rest = [p for p in stricter_problems(live, spec, fitted) if p.field not in named]
    if not refused:
        from .validate import check_input

        rest = check_input(spec, fitted) + rest  # the bundled rules, of what is now sent
    return fitted, notes, [*refused, *rest]


def _bundled_takes(spec: ModelSpec, wire: Mapping[str, Any]) -> bool:
    """Whether kie-mcp's data allows ``wire`` and its price table prices it (a model without one: allowed is enough)."""
    from .validate import check_input

    return not check_input(spec, wire) and (spec.price is None or price_input(spec, wire).known)


def _priced_by(spec: ModelSpec, name: str) -> bool:
    """Whether the model's price depends on the field ``name`` (a rate's condition, its count or its seconds)."""
    table = spec.price
    if table is None:
        return False
    if name in (table.count_field, table.seconds_field or ("duration" if table.unit == "second" else None)):
        return True
    return any(key.split("#")[0] == name for rate in table.rates for key in rate.when)


def live_also_offers(live: LiveCatalog, spec: ModelSpec, name: str, value: Any) -> str:
    """For a value kie-mcp's data refuses for the field ``name``: the sentence saying the model's live schema offers
    it too (which kie-mcp cannot price yet), or has the field kie-mcp's data lacks (which it cannot send yet), or
    "" when it does not."""
    entry = live.schemas.get(spec.id)
    if entry is None or entry.openapi is None or isinstance(value, list | dict):
        return ""
    prop, _ = openapi.field_of(entry.openapi, name)
    if prop is not None and name not in spec.fields:
        return (
            f" {live_label(entry)} has it, but kie-mcp cannot send a field its data lacks yet; use another model "
            "for now."
        )
    values = openapi.allowed_values(entry.openapi, prop) if prop is not None else None
    if not values or not any(openapi.same_value(value, v) for v in values):
        return ""
    return f" {live_label(entry)} also offers {plain(value, quoted=False)}, which kie-mcp cannot price yet."


def live_rate(live: LiveCatalog, feed_description: str) -> LivePrice | None:
    """The live price of the feed row named ``feed_description`` (a rate's ``feed``; case and spacing ignored).

    None when the row is not in the cached feed: it disappeared, so the caller treats the price as unknown. Only
    meaningful when ``live.has_feed``; without a feed nothing is known, and ``effective_rate`` keeps the bundled price.
    """
    if live.feed is None:
        return None
    wanted = _desc_key(feed_description)
    for row in live.feed:
        if _desc_key(row.description) == wanted and row.credits is not None:
            return LivePrice(row.credits, row.unit, (live.feed_at or "")[:10])
    return None


def effective_rate(live: LiveCatalog, spec: ModelSpec, rate: Rate) -> RateVerdict:
    """What one bundled rate costs now: the bundled credits when the rate has no ``feed`` row or no feed was read;
    the live credits when the row is there; unknown (credits None) when the row is gone or its unit changed between
    per-second and per-item."""
    if rate.feed is None or not live.has_feed:
        return RateVerdict("bundled", rate.credits, None, "the bundled price table")
    found = live_rate(live, rate.feed)
    date = (live.feed_at or "")[:10] or None
    if found is None:
        return RateVerdict(
            "unknown",
            None,
            date,
            f"KIE live price list of {date} no longer has {plain(rate.feed)}, so the price is unknown",
        )
    if not found.credits > 0:  # KIE sells nothing for free: 0 or less is a broken price list, not a price
        return RateVerdict(
            "unknown",
            None,
            date,
            f"KIE live price list of {date} gives {plain(rate.feed)} {_fmt(found.credits)} credits, which is not a "
            "real price, so the price is unknown",
        )
    per_second = "second" in found.unit.lower()
    if spec.price is not None and per_second != (spec.price.unit == "second"):
        return RateVerdict(
            "unknown", None, date, f"KIE now bills {plain(rate.feed)} {found.unit.strip()}, so the price is unknown"
        )
    if found.credits == rate.credits:
        return RateVerdict("live", found.credits, date, f"KIE live price list of {date} (unchanged)")
    return RateVerdict(
        "live",
        found.credits,
        date,
        f"KIE live price list of {date}: {_fmt(found.credits)} credits (the bundled data said {_fmt(rate.credits)})",
    )


def live_price_input(
    live: LiveCatalog, spec: ModelSpec, wire: Mapping[str, Any], *args: Any, **kwargs: Any
) -> ItemPrice:
    """``pricing.price_input`` with the live price feed applied: when the rate that prices ``wire`` is tied to a feed
    row, its credits are the row's live credits (every rate sharing that row follows), the source is KIE's price feed
    and its date; a row gone from the feed (or billed in another unit) makes the price unknown. Without a feed, or
    for a rate with no ``feed``, it is exactly ``price_input``. A live price lower than the bundled one is shown,
    but the bundled figure is what counts (``floored``). Extra arguments go to ``price_input`` unchanged."""
    spec = up_to_followed(live, spec)
    base = price_input(spec, wire, *args, **kwargs)
    table = spec.price
    rate = None if table is None else next((r for r in table.rates if when_matches(r.when, wire)), None)
    if table is not None and rate is None and not base.known and (over := _counts_over_one(table, wire)):
        asked = ", ".join(f"{name}={plain(wire[name], quoted=False)}" for name in over)
        breakdown = (
            f"KIE's live price of {spec.id} holds for one output, and its price text does not say what {asked} "
            "costs, so the price is unknown"
        )
        return base.model_copy(update={"breakdown": breakdown})
    listed = (live.models or {}).get(spec.id) if table is None else None
    if listed is not None and not_exact(listed.pricing_desc):
        breakdown = (
            f"KIE's price text for {spec.id} is {plain(' '.join(listed.pricing_desc.split()), limit=160)}: a "
            "lowest, highest or varying figure, not an exact price, so the price is unknown"
        )
        return base.model_copy(update={"breakdown": breakdown})
    if table is None or rate is None or rate.feed is None:
        return base
    verdict = effective_rate(live, spec, rate)
    if verdict.state == "bundled":
        return base
    source = f"KIE price feed row {plain(rate.feed)}"
    if verdict.credits is None:
        return ItemPrice(
            known=False,
            credits=None,
            unit=base.unit,
            breakdown=f"{verdict.detail}.",
            source=source,
            source_date=verdict.date,
            note=base.note,
        )
    live_table = table.model_copy(
        update={
            "rates": [
                r.model_copy(update={"credits": verdict.credits}) if r.feed == rate.feed else r for r in table.rates
            ]
        }
    )
    priced = price_input(spec.model_copy(update={"price": live_table}), wire, *args, **kwargs)
    if verdict.credits != rate.credits:
        priced = priced.model_copy(update={"breakdown": f"{priced.breakdown}; {verdict.detail}"})
    priced = priced.model_copy(update={"source": source, "source_date": verdict.date})
    return floored(priced, base) if verdict.credits < rate.credits else priced


def up_to_followed(live: LiveCatalog, spec: ModelSpec) -> ModelSpec:
    """``spec`` with each rate's ``up_to`` raised to the live credits of the feed row it follows (``Rate.up_to_feed``)
    where that row is higher: a tier KIE raised is counted at its new price, never its old one. A row gone, not
    above 0 or billed in another unit leaves ``up_to`` as the catalogue has it."""
    table = spec.price
    if table is None or not live.has_feed or not any(r.up_to_feed for r in table.rates):
        return spec
    rates = []
    for rate in table.rates:
        found = None if rate.up_to_feed is None else live_rate(live, rate.up_to_feed)
        same_unit = found is not None and ("second" in found.unit.lower()) == (table.unit == "second")
        higher = found is not None and same_unit and found.credits > (rate.up_to or 0.0)
        rates.append(rate.model_copy(update={"up_to": found.credits}) if higher and found is not None else rate)
    return spec.model_copy(update={"price": table.model_copy(update={"rates": rates})})


def floored(priced: ItemPrice, bundled: ItemPrice) -> ItemPrice:
    """A live price lower than the bundled one with the bundled figure as what counts (never an undercount): the live
    price is shown, and the caps, the auto-approve limit and today's spend (until KIE reports its charge) weigh the
    bundled one (``ItemPrice.up_to``), as for a charge KIE was seen making above its list. One row of KIE's public
    price page, or one edit of the workspace's cache, must not make a 250-credit clip pass as 1 credit."""
    if bundled.counted is None or priced.counted is None or bundled.counted <= priced.counted:
        return priced
    return priced.model_copy(
        update={"up_to": bundled.counted, "up_to_source": CATALOGUE_FLOOR, "up_to_date": bundled.source_date}
    )


def _counts_over_one(table: PriceSpec, wire: Mapping[str, Any]) -> list[str]:
    """The count-like fields of a live-only price that holds for one output (``_one_output_each``) that ``wire``
    sets to something else than 1."""
    if table.source != LIVE_ONLY or len(table.rates) < 2:
        return []
    guarded = set.intersection(*({key.removesuffix("#count") for key in r.when} for r in table.rates))
    return [
        name
        for name in sorted(guarded)
        if not when_matches({name: [1, 1.0]}, wire) and not when_matches({f"{name}#count": 0}, wire)
    ]


def price_changes(live: LiveCatalog, catalog: Catalog | None = None) -> list[PriceChange]:
    """Bundled rates whose feed row has another price in the cached feed, or is gone from it (once per model and
    row; models KIE's list no longer has are left out: they are withdrawn, not repriced)."""
    from .registry import load_catalog

    if not live.has_feed:
        return []
    bundled = catalog if catalog is not None else load_catalog()
    changes: list[PriceChange] = []
    seen: set[tuple[str, str]] = set()
    for spec in still_sold(bundled, live):
        if spec.price is None:
            continue
        for rate in spec.price.rates:
            if rate.feed is None or (spec.id, rate.feed) in seen:
                continue
            seen.add((spec.id, rate.feed))
            found = live_rate(live, rate.feed)
            if found is None or found.credits != rate.credits:
                changes.append(PriceChange(spec.id, rate.feed, rate.credits, found.credits if found else None))
    return changes


def health(live: LiveCatalog, model_id: str) -> float | None:
    """KIE's recent success rate for the model, 0-1: the mean of its last 24 h of 10-minute buckets that had
    traffic. None without data (never fetched, no points, or no bucket with traffic)."""
    entry = live.success.get(model_id)
    if entry is None:
        return None
    rates = [p.success_rate for p in entry.points if p.success_rate is not None]
    if not rates:
        return None
    return max(0.0, min(1.0, sum(rates) / len(rates) / 100.0))


def extra_models(live: LiveCatalog, catalog: Catalog | None = None) -> list[ModelSpec]:
    """Live Market image/video models the bundled catalogue lacks and whose live schema is cached, as ``ModelSpec``s
    (family "market", fields from the schema, price parsed exactly from the feed or ``pricingDesc``, else None)."""
    from .registry import load_catalog

    if not live.models:
        return []
    bundled = catalog if catalog is not None else load_catalog()
    specs = []
    for model_id in sorted(live.models):
        if model_id in bundled:
            continue
        spec = spec_from_live(live, model_id)
        if spec is not None:
            specs.append(spec)
    return specs


def spec_from_live(live: LiveCatalog, model_id: str) -> ModelSpec | None:
    """A ``ModelSpec`` for one live model from its cached schema; sources say "KIE live schema of <date>"."""
    listed = (live.models or {}).get(model_id)
    entry = live.schemas.get(model_id)
    if listed is None or entry is None or entry.openapi is None or listed.kind is None:
        return None
    date = entry.fetched_at[:10]
    common = {
        "title": _short_title(listed.title) or model_id,
        "kind": listed.kind,
        "task_types": listed.task_types,
        "description": listed.description or listed.title,
        "date": date,
    }
    spec = openapi.spec_from_openapi(model_id, entry.openapi, **common)
    if spec is None:
        return None
    priced = _exact_price(live, listed, spec)
    if priced is None:
        return spec
    price, source = priced
    return openapi.spec_from_openapi(model_id, entry.openapi, **common, price=price, price_source=source)


def not_exact(text: str | None) -> bool:
    """Whether KIE's price text names a price that is not exact (``_NOT_EXACT``: from 4, up to 10 credits, 4+,
    varies...), or two or more different credit figures (``_FIGURES``)."""
    if not text:
        return False
    if _NOT_EXACT.search(text) is not None:
        return True
    figures = {float(n) for match in _FIGURES.finditer(text) for n in match.groups() if n is not None}
    return len(figures) > 1


def _exact_price(live: LiveCatalog, listed: LiveModel, spec: ModelSpec) -> tuple[PriceSpec, Source] | None:
    """One price that holds for every request, from the feed rows naming the model or from ``pricingDesc``; None
    when the text has several prices or depends on something not in the request (a length it does not state).

    A field that looks like an output count (the rule above ``_COUNT_FIELDS``) either multiplies the price, or,
    when the text cannot be applied to it, limits the price to requests that leave it out or set it to 1."""
    if not_exact(listed.pricing_desc):
        return None  # "Starting from 4 credits": a floor, never the price (``live_price_input`` says why)
    rows = [r for r in live.feed or [] if r.model_id == listed.model and r.credits is not None]
    from_feed = rows[0] if len(rows) == 1 else None
    if len(rows) > 1:
        return None  # several rows: which one applies depends on options kie-mcp cannot map
    numbers = {float(n) for n in _CREDITS.findall(listed.pricing_desc)}
    if not all(map(math.isfinite, numbers)):
        return None  # a 400-digit "price" reads as infinity: garbage, never a quote
    from_text = next(iter(numbers)) if len(numbers) == 1 else None
    text = listed.pricing_desc
    if from_feed is not None:
        if from_text is not None and from_text != from_feed.credits:
            return None
        credits, unit_text = from_feed.credits, from_feed.unit
        ref = f"KIE price feed row {plain(from_feed.description)} of {(live.feed_at or '')[:10]}"
        date = (live.feed_at or "")[:10]
    elif from_text is not None:
        credits, unit_text = from_text, text
        date = (live.fetched_at or "")[:10]
        ref = f"KIE pricingDesc of {date}: {plain(' '.join(text.split()), limit=160)}"
    else:
        return None
    assert credits is not None
    per_second = bool(_PER_SECOND.search(unit_text))
    if not per_second and from_feed is None and _SOME_SECONDS.search(text):
        return None  # "a 5-second video costs 160 credits": other lengths cost otherwise
    seconds_field = None
    if per_second:
        duration = spec.fields.get("duration")
        if duration is None or duration.type not in ("integer", "number", "enum"):
            return None
        seconds_field = "duration"
    counts = [name for name, field in spec.fields.items() if looks_like_count(name, field)]
    readable = len(counts) == 1 and counts[0] in _COUNT_FIELDS and _whole(spec.fields[counts[0]], integers=True)
    count_field = counts[0] if readable and not per_second and _per_output(unit_text, spec.kind) else None
    guarded = [name for name in counts if name != count_field]  # unknown above 1
    if len(guarded) > MAX_GUARDED_COUNTS:
        return None
    unit: Literal["task", "clip", "second"] = "second" if per_second else ("task" if spec.kind == "image" else "clip")
    feed = from_feed.description if from_feed else None
    note = "parsed from KIE's live price; only a price that holds for every request is used"
    if guarded:
        named, which = (guarded[0], "it") if len(guarded) == 1 else (" or ".join(guarded), "one of them")
        note = (
            f"parsed from KIE's live price, which holds for one output: KIE's price text does not say how {named} "
            f"changes it, so a request setting {which} above 1 is priced unknown"
        )
    price = PriceSpec(
        unit=unit,
        seconds_field=seconds_field,
        count_field=count_field,
        rates=[Rate(when=when, credits=credits, feed=feed) for when in _one_output_each(guarded)],
        source=LIVE_ONLY,
        note=note,
    )
    return price, Source(kind="documented", ref=ref, date=date or timestamp(datetime.now(UTC))[:10])


def looks_like_count(name: str, field: FieldSpec) -> bool:
    """Whether a live field looks like a number of outputs (the rule above ``_COUNT_FIELDS``)."""
    if not _whole(field, integers=False):
        return False
    words = _words(name)
    if words in (["n"], ["num"], ["number"], ["count"]):
        return True
    if words and words[0] == "batch":
        return all(w in _BATCH_TAIL or _noun(w) in _OUTPUT_NOUNS for w in words[1:])
    nouns = [w for w in words if _noun(w) in _OUTPUT_NOUNS]
    if not nouns or not all(w in _COUNT_WORDS or _noun(w) in _OUTPUT_NOUNS for w in words):
        return False
    return len(nouns) < len(words) or any(w != _noun(w) for w in nouns)  # a count word, or a plural ("variants")


def _words(name: str) -> list[str]:
    """A field name's words, lower case: ``numberOfImages`` and ``number_of_images`` are ["number", "images"]."""
    spaced = re.sub(r"(?<![A-Z])([A-Z]+)([A-Z][a-z])", r"\1 \2", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name))
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w and w != "of"]


def _noun(word: str) -> str:
    return word[:-1] if word.endswith("s") and word[:-1] in _OUTPUT_NOUNS else word


def _whole(field: FieldSpec, *, integers: bool) -> bool:
    """The field holds whole numbers: an integer, an enum of whole numbers (``2`` or ``"2"``), or (unless
    ``integers``) any number."""
    if field.type == "integer" or (field.type == "number" and not integers):
        return True
    if field.type != "enum" or not field.values:
        return False
    return all(
        (isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer())
        or (isinstance(v, str) and v.strip().isdigit())
        for v in field.values
    )


def _per_output(text: str, kind: str) -> bool:
    """The price wording is per output of this model's kind ("per image", "for each image generated", "each
    video", "per output", "/image"), and nothing in it is per request ("per request", "per image generation")."""
    found = {_noun(m.lower()) for m in _PER_OUTPUT.findall(text)}
    if not found or _PER_REQUEST.search(text):
        return False
    own = _IMAGE_NOUNS if kind == "image" else _VIDEO_NOUNS
    return found <= own | {"output"}


def _one_output_each(guarded: list[str]) -> list[dict[str, Scalar | list[Scalar]]]:
    """The ``when`` of every rate a price that holds for one output needs: each guarded field left out (``#count``
    0) or 1. A request setting one above 1 matches no rate, so ``price_input`` prices it unknown."""
    whens: list[dict[str, Scalar | list[Scalar]]] = [{}]
    for name in guarded:
        whens = [{**when, **choice} for when in whens for choice in ({name: [1, 1.0]}, {f"{name}#count": 0})]
    return whens


def sync_summary(live: LiveCatalog, catalog: Catalog | None = None) -> list[str]:
    """A few lines on what a sync found: models live, withdrawals, price changes, schemas, success rates, errors."""
    from .registry import load_catalog

    bundled = catalog if catalog is not None else load_catalog()
    stamp = live.attempted_at
    lines: list[str] = []
    models = live.models or {}
    kinds = [m.kind for m in models.values()]
    when = f" (read {live.fetched_at})" if live.fetched_at and live.fetched_at != stamp else ""
    lines.append(
        f"models live: {len(models)} ({kinds.count('image')} image, {kinds.count('video')} video, "
        f"{kinds.count(None)} other){when}"
    )
    extras = [m for m in models.values() if m.kind is not None and m.model not in bundled]
    usable = extra_models(live, bundled)
    lines.append(f"live image/video models the bundled catalogue lacks: {len(extras)} ({len(usable)} usable)")
    gone = [s.id for s in bundled.offered() if is_gone(live, s.id, bundled)]
    lines.append(f"withdrawn from the bundled catalogue: {len(gone)}{_some(gone)}")
    if live.has_feed:
        changes = price_changes(live, bundled)
        shown = [
            f"{c.model} {c.feed!r}: {_fmt(c.bundled)} -> {_fmt(c.live) if c.live is not None else 'gone'}"
            for c in changes
        ]
        lines.append(f"prices changed vs the bundled data: {len(changes)}{_some(shown)}")
        lines.append(f"price feed: {len(live.feed or [])} rows (read {live.feed_at})")
    else:
        lines.append("prices changed vs the bundled data: unknown (KIE's price feed was not read)")
    fresh = [k for k, v in live.schemas.items() if v.fetched_at == stamp]
    unsynced = [k for k in fresh if live.schemas[k].openapi is None]
    lines.append(
        f"schemas fetched: {len(fresh)}" + (f" ({len(unsynced)} not yet published by KIE)" if unsynced else "")
    )
    rates = [k for k, v in live.success.items() if v.fetched_at == stamp]
    lines.append(f"success rates fetched: {len(rates)}")
    lines.extend(f"note: {note}" for note in live.notes)
    errors = [f"{e.endpoint}{f' {e.model}' if e.model else ''}: {e.message}" for e in live.errors]
    lines.append(f"errors: {len(errors)}{_some(errors, 3)}" if errors else "errors: none")
    return lines


def _some(items: list[str], limit: int = 5) -> str:
    if not items:
        return ""
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return f" ({'; '.join(items[:limit])}{more})"


# -- small helpers -------------------------------------------------------------------------------


def kind_of(task_types: Iterable[str]) -> Literal["image", "video"] | None:
    """The output kind of KIE task types ("Text to Video" -> video, "Image to Image" -> image); None for others."""
    kinds = set()
    for task_type in task_types:
        text = str(task_type).lower()
        target = text.rsplit(" to ", 1)[-1] if " to " in text else text
        if "video" in target:
            kinds.add("video")
        elif "image" in target:
            kinds.add("image")
    if "video" in kinds:
        return "video"
    return "image" if "image" in kinds else None


def _task_key(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").replace("_", " ").split())


def _provider_key(model_id: str) -> str:
    return re.split(r"[/\-_.]", model_id.lower(), maxsplit=1)[0]


def _name_key(text: str) -> str:
    return " ".join(re.sub(r"[\s_\-./]+", " ", text.lower()).split())


def _desc_key(text: str) -> str:
    return " ".join(text.lower().split())


def _short_title(title: str) -> str:
    """KIE's list titles are page titles ("Affordable Kling 2.1 Master API — Premium ..."): keep the first part."""
    return re.split(r"(?<!\s)\s+[—|–]\s+", title.strip(), maxsplit=1)[0].strip()


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    """KIE's numbers arrive as numbers or as text ("14.4"); anything else, or not finite, is None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
