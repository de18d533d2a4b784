"""``kie-mcp catalog check``: compare the bundled catalogue with KIE's live lists and with the workspace's cache.

KIE changes models and prices often. This command shows the drift as a table so a maintainer can update the
data files: models KIE lists that the catalogue lacks, catalogued Market models KIE no longer lists, catalogued
prices that do not appear in KIE's current price text, rates whose price-feed row (``feed``) now has another price
or is gone, and how the workspace's live cache (``kie-mcp catalog sync``) differs from KIE. Never run in CI: it
needs network and a key. When KIE cannot be reached, the drift against the cache is shown instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2

from kie_mcp.kie import Category, KieClient, KieError

from .registry import Catalog

if TYPE_CHECKING:
    from .live import LiveCatalog

MODELS_PATH = "/api/v1/models"
PRICES_PATH = "/client/v1/model-pricing/page"
_CREDITS = re.compile(r"(?<!\d)(\d+(?:\.\d+)?)\s*credits", re.IGNORECASE)


@dataclass(frozen=True)
class Drift:
    kind: str  # "new on KIE" | "gone from KIE" | "price"
    model: str
    detail: str


class Unreachable(RuntimeError):
    """KIE could not be asked; nothing can be compared."""


async def fetch_live(
    base_url: str,
    api_key: str,
    transport: httpx2.AsyncBaseTransport | None = None,
    notes: list[str] | None = None,
    key_origin: str = "",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """KIE's model list (needs the key) and its public price records (fetched without the key).

    A price feed KIE will not serve here (e.g. code 4030 in some regions) gives no records and a line in ``notes``;
    a network failure raises ``Unreachable``.
    """
    async with KieClient(
        api_key=api_key,
        base_url=base_url,
        upload_base_url=base_url,
        transport=transport,
        share_pacing=transport is None,
        key_origin=key_origin,  # a 401 says where the key came from
    ) as kie:
        try:
            models = await kie.list_models()
        except KieError as err:
            if err.category is Category.NETWORK:
                raise Unreachable(f"cannot reach KIE at {base_url} ({err.message})") from err
            if err.code == 404:  # KIE's advice for a 404 is about task ids; here the address is what is wrong
                raise Unreachable(
                    f"{base_url} does not serve KIE's model list (404): check that KIE_BASE_URL, when set, points at "
                    "KIE's API"
                ) from err
            raise
        records: list[dict[str, Any]] = []
        try:
            for page in range(1, 41):
                answer = await kie.price_feed_page(page)
                records += answer["records"]
                total, pages = answer["total"], answer["pages"]
                if not answer["records"] or (pages is not None and page >= pages) or len(records) >= (total or 0):
                    break
        except KieError as err:
            records = []
            if notes is not None:
                notes.append(f"KIE's public price feed could not be read ({err.message}); prices were not compared.")
    return models, records


def compare(
    catalog: Catalog,
    live_models: Iterable[dict[str, Any]],
    price_records: Iterable[dict[str, Any]],
    cache: LiveCatalog | None = None,
) -> list[Drift]:
    """The drift between the bundled data and KIE's lists (and, given ``cache``, between the cache and KIE)."""
    live_models, price_records = list(live_models), list(price_records)
    drifts = _compare_lists(catalog, live_models, price_records)
    if cache is not None:
        drifts += _compare_cache(cache, live_models, price_records)
    return drifts


def compare_cached(catalog: Catalog, cache: LiveCatalog) -> list[Drift]:
    """The drift between the bundled data and the workspace's cache of KIE's lists (KIE itself not asked)."""
    models = [
        {"model": m.model, "title": m.title, "pricingDesc": m.pricing_desc} for m in (cache.models or {}).values()
    ]
    return _compare_lists(catalog, models, _records(cache))


def _records(cache: LiveCatalog) -> list[dict[str, Any]]:
    return [
        {"modelDescription": r.description, "creditPrice": r.credits, "creditUnit": r.unit, "anchor": r.anchor}
        for r in cache.feed or []
    ]


def _compare_lists(
    catalog: Catalog, live_models: list[dict[str, Any]], price_records: list[dict[str, Any]]
) -> list[Drift]:
    live = {str(m.get("model") or m.get("slug")): m for m in live_models if m.get("model") or m.get("slug")}
    prices: dict[str, list[str]] = {}
    for record in price_records:
        model_id = _anchor_model(str(record.get("anchor") or ""))
        if model_id:
            prices.setdefault(model_id, []).append(f"{record.get('creditPrice')} {record.get('creditUnit', '')}")
    drifts: list[Drift] = []
    known = {spec.id for spec in catalog} | {spec.unified.model for spec in catalog if spec.unified is not None}
    for model_id in sorted(set(live) - known):
        title = live[model_id].get("title") or ""
        drifts.append(Drift("new on KIE", model_id, f"{title}: not in the catalogue, so kie-mcp cannot price it"))
    for spec in catalog:
        if spec.withdrawn is not None:
            continue  # withdrawn ones are known gone
        # Product APIs (Veo, Runway, ...) are listed under other names: one with a unified route (Veo 3.1) is priced
        # by KIE's text of that route's model (veo-3-1, every tier in one text), the others are not compared.
        listed_as = spec.id if spec.family == "market" else (spec.unified.model if spec.unified else None)
        if listed_as is None:
            continue
        if listed_as not in live:
            if spec.family == "market":
                drifts.append(Drift("gone from KIE", spec.id, "in the catalogue but not in KIE's model list"))
            continue
        stated = {_number(float(v)) for v in _CREDITS.findall(str(live[listed_as].get("pricingDesc") or ""))}
        stated |= {_number(n) for p in prices.get(listed_as, []) if (n := _as_number(p.partition(" ")[0])) is not None}
        ours = sorted({_number(r.credits) for r in spec.price.rates}) if spec.price else []
        missing = [value for value in ours if value not in stated]
        if stated and missing:
            drifts.append(
                Drift(
                    "price",
                    spec.id,
                    f"catalogue rates {', '.join(missing)} not in KIE's price text; KIE states "
                    f"{', '.join(sorted(stated, key=float))}",
                )
            )
    if price_records:
        drifts += _feed_drift(catalog, price_records)
    return drifts


def _feed_drift(catalog: Catalog, price_records: list[dict[str, Any]]) -> list[Drift]:
    """Rates tied to a price-feed row (``feed``) whose row has another price, or is gone."""
    rows = {" ".join(str(r.get("modelDescription") or "").lower().split()): r for r in price_records}
    drifts: list[Drift] = []
    for spec in catalog:
        if spec.price is None or spec.withdrawn is not None:
            continue
        for rate in spec.price.rates:
            if rate.feed is None:
                continue
            row = rows.get(" ".join(rate.feed.lower().split()))
            if row is None:
                drifts.append(Drift("feed row gone", spec.id, f"{rate.feed!r} is not in KIE's price feed any more"))
                continue
            live = _as_number(row.get("creditPrice"))
            if live is not None and live != rate.credits:
                drifts.append(
                    Drift(
                        "feed price",
                        spec.id,
                        f"{rate.feed!r}: catalogue {_number(rate.credits)}, KIE {_number(live)} credits",
                    )
                )
    return drifts


def _compare_cache(
    cache: LiveCatalog, live_models: list[dict[str, Any]], price_records: list[dict[str, Any]]
) -> list[Drift]:
    """How the workspace's cache differs from what KIE says now: the cache needs a sync."""
    when = (cache.fetched_at or cache.attempted_at or "never")[:10]
    if cache.models is None:
        return [Drift("cache", "(workspace)", "no live catalogue cached yet; run kie-mcp catalog sync")]
    live_ids = {str(m.get("model") or m.get("slug")) for m in live_models}
    cached_ids = set(cache.models)
    drifts: list[Drift] = []
    added, gone = sorted(live_ids - cached_ids), sorted(cached_ids - live_ids)
    if added or gone:
        detail = f"the cache of {when} lacks {len(added)} model(s) KIE lists and has {len(gone)} KIE no longer lists"
        drifts.append(Drift("cache", "(workspace)", f"{detail}; run kie-mcp catalog sync"))
    if price_records and cache.feed is not None:
        now = {" ".join(str(r.get("modelDescription") or "").lower().split()): r for r in price_records}
        changed = sum(
            1
            for row in cache.feed
            if _as_number((now.get(" ".join(row.description.lower().split())) or {}).get("creditPrice")) != row.credits
        )
        if changed:
            detail = f"{changed} price-feed row(s) in the cache of {when} differ from KIE's feed now"
            drifts.append(Drift("cache", "(workspace)", f"{detail}; run kie-mcp catalog sync"))
    return drifts


def render(drifts: list[Drift], cached_on: str | None = None) -> str:
    """The drift as a table, or the line saying there is none. ``cached_on``: KIE was not reached and the drift is
    against the workspace's cache of its lists, made that day (``compare_cached``): said so, never "listed by KIE"."""
    against = "" if cached_on is None else f" against the cache of {cached_on} (KIE itself was not reached)"
    if not drifts:
        if cached_on is None:
            return "No drift: every catalogued Market model is listed by KIE with the prices on file."
        return f"No drift{against}: every catalogued Market model is listed there with the prices on file."
    rows = ["| Drift | Model | Detail |", "|---|---|---|"]
    rows += [f"| {d.kind} | `{d.model}` | {d.detail} |" for d in drifts]
    return (
        "\n".join(rows)
        + f"\n\n{len(drifts)} difference(s){against}. Update src/kie_mcp/catalog/data/*.toml and their tests."
    )


def _anchor_model(anchor: str) -> str | None:
    match = re.search(r"[?&]model=([^&#]+)", anchor)
    return httpx2.URL(f"http://x/?m={match.group(1)}").params.get("m") if match else None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
