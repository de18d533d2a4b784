"""``kie-mcp catalog check``: compare the catalogue with KIE's live model list and public price list.

KIE changes models and prices often. This command shows the drift as a table so a maintainer can update the
data files: models KIE lists that the catalogue lacks, catalogued Market models KIE no longer lists, and
catalogued prices that do not appear in KIE's current price text. Never run in CI: it needs network and a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx2

from kie_mcp.kie.envelope import read_envelope

from .registry import Catalog

MODELS_PATH = "/api/v1/models"
PRICES_PATH = "/client/v1/model-pricing/page"
_CREDITS = re.compile(r"(\d+(?:\.\d+)?)\s*credits", re.IGNORECASE)


@dataclass(frozen=True)
class Drift:
    kind: str  # "new on KIE" | "gone from KIE" | "price"
    model: str
    detail: str


class Unreachable(RuntimeError):
    """KIE could not be asked; nothing can be compared."""


async def fetch_live(
    base_url: str, api_key: str, transport: httpx2.AsyncBaseTransport | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """KIE's model list (needs the key) and its public price records (no key)."""
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "kie-mcp catalog check"}
    async with httpx2.AsyncClient(base_url=base_url, headers=headers, timeout=30.0, transport=transport) as http:
        try:
            models_data = read_envelope(await http.get(MODELS_PATH), MODELS_PATH)
            records: list[dict[str, Any]] = []
            page = 1
            while True:
                answer = await http.post(PRICES_PATH, json={"pageNum": page, "pageSize": 100})
                data = read_envelope(answer, PRICES_PATH) or {}
                batch = data.get("records") or []
                records += batch
                if not batch or len(records) >= int(data.get("total") or 0):
                    break
                page += 1
        except httpx2.TransportError as exc:
            raise Unreachable(f"cannot reach KIE at {base_url} ({type(exc).__name__})") from exc
    models = models_data.get("models") if isinstance(models_data, dict) else models_data
    return list(models or []), records


def compare(
    catalog: Catalog, live_models: Iterable[dict[str, Any]], price_records: Iterable[dict[str, Any]]
) -> list[Drift]:
    live = {str(m.get("model") or m.get("slug")): m for m in live_models if m.get("model") or m.get("slug")}
    prices: dict[str, list[str]] = {}
    for record in price_records:
        model_id = _anchor_model(str(record.get("anchor") or ""))
        if model_id:
            prices.setdefault(model_id, []).append(f"{record.get('creditPrice')} {record.get('creditUnit', '')}")
    drifts: list[Drift] = []
    for model_id in sorted(set(live) - {spec.id for spec in catalog}):
        title = live[model_id].get("title") or ""
        drifts.append(Drift("new on KIE", model_id, f"{title}: not in the catalogue, so kie-mcp cannot price it"))
    for spec in catalog:
        if spec.family != "market":
            continue  # product APIs (Veo, Runway, ...) are listed under other names
        if spec.id not in live:
            drifts.append(Drift("gone from KIE", spec.id, "in the catalogue but not in KIE's model list"))
            continue
        stated = set(_CREDITS.findall(str(live[spec.id].get("pricingDesc") or "")))
        stated |= {p.split()[0] for p in prices.get(spec.id, [])}
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
    return drifts


def render(drifts: list[Drift]) -> str:
    if not drifts:
        return "No drift: every catalogued Market model is listed by KIE with the prices on file."
    rows = ["| Drift | Model | Detail |", "|---|---|---|"]
    rows += [f"| {d.kind} | `{d.model}` | {d.detail} |" for d in drifts]
    return "\n".join(rows) + f"\n\n{len(drifts)} difference(s). Update src/kie_mcp/catalog/data/*.toml and their tests."


def _anchor_model(anchor: str) -> str | None:
    match = re.search(r"[?&]model=([^&#]+)", anchor)
    return httpx2.URL(f"http://x/?m={match.group(1)}").params.get("m") if match else None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
