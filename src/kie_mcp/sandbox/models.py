"""KIE's model catalogue and public price feed, generated from the bundled catalogue data.

Keyed (bearer key, the shared ~1/s budget per account, code 429 over it):
- ``GET /api/v1/models`` (``taskType`` comma-separated, ``provider``, ``q``): ``data = {total, models: [{model, slug,
  title, provider, taskType: [...], description, pricingDesc}]}``; filters that match nothing give ``total: 0``;
- ``GET /api/v1/models/{model}/schema``: ``data = {model, openapi}``, an OpenAPI 3.1 document built from the model's
  fields (``openapi: null`` once dropped by a control);
- ``GET /api/v1/models/{model}/price``: ``data = {model, pricingDesc}``;
- ``GET /api/v1/models/{model}/success-rate``: ``data = {model, points}``, 144 ten-minute buckets of the last 24 h.
The slash in a model id is not encoded (``/api/v1/models/kling/v2-1-pro/schema``). An unknown or withdrawn model
answers code 404 (the code KIE's documents list for "not found"; the message is the simulator's).

No key: ``POST /client/v1/model-pricing/page`` with ``{pageNum, pageSize <= 100}``: ``data = {records, total,
pages}``, one record per price-table rate; a rate with ``feed`` uses it as ``modelDescription``.

``/__sim/catalog/moved`` makes KIE move: ``feedRenamed`` serves the feed's records under other field names,
``feedServed`` only its first records, ``modelsTotal`` writes a paged list's ``total`` as ``"text"``, ``"float"``,
``"negative"`` or ``"missing"``,
``modelsPageSize`` serves the model list in pages (``pageNum``; ``total`` counts every model) and ``modelsServed``
serves none past that many rows (a list cut short); ``null`` turns each off.

Shapes: the kie-models agent skill (supercode.sh/en/skills/kie.ai/kie-models, read 2026-12-02) and public captures
of the price feed (2026-09); see kie_mcp/catalog/live.py.
"""

from __future__ import annotations

import copy
import math
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from kie_mcp.catalog import ModelSpec, load_catalog
from kie_mcp.catalog.pricing import USD_PER_CREDIT
from kie_mcp.catalog.spec import FieldSpec

from .context import Ctx, number
from .errors import KieError
from .routes import SimRoute
from .state import Simulator

MODELS_PATH = "/api/v1/models"
PRICE_FEED_PATH = "/client/v1/model-pricing/page"
MODEL_NOT_FOUND = "Model not found"
REGION_BLOCKED = (4030, "Not supported in the current region.")  # seen on the public feed in some regions
DEFAULT_SUCCESS_RATE = 99.0  # percent
BUCKET_SECONDS = 600
BUCKETS = 144
MAX_PAGE_SIZE = 100

_TASK_TYPES = {
    "text-to-image": "Text to Image",
    "image-to-image": "Image to Image",
    "edit": "Image to Image",
    "text-to-video": "Text to Video",
    "image-to-video": "Image to Video",
    "video-to-video": "Video to Video",
}
_PROVIDERS = {
    "bytedance": "ByteDance",
    "google": "Google",
    "nano": "Google",
    "imagen4": "Google",
    "kling": "Kling",
    "wan": "Wan",
    "hailuo": "Hailuo",
    "sora": "OpenAI",
    "gpt": "OpenAI",
    "grok": "Grok",
    "qwen": "Qwen",
    "ideogram": "Ideogram",
    "flux": "Flux",
    "seedream": "ByteDance",
    "seedance": "ByteDance",
    "topaz": "Topaz",
    "recraft": "Recraft",
    "runway": "Runway",
    "veo3": "Google",
}


# -- what the catalogue says, in KIE's words --------------------------------------------------------


def provider_of(model_id: str) -> str:
    head = model_id.lower().replace("/", "-").split("-")[0]
    return _PROVIDERS.get(head) or next((v for k, v in _PROVIDERS.items() if head.startswith(k)), head.title())


def task_types(spec: ModelSpec) -> list[str]:
    kind = spec.kind.title()
    names = [f"{kind} Upscale" if c == "upscale" else _TASK_TYPES.get(c) for c in spec.capabilities]
    types = list(dict.fromkeys(n for n in names if n))
    return types or [f"{'Image' if spec.images else 'Text'} to {kind}"]


def _unit_word(spec: ModelSpec) -> str:
    assert spec.price is not None
    if spec.price.unit == "second":
        return "second"
    return "image" if spec.kind == "image" else "video"


def _condition(rate_when: dict[str, Any]) -> str:
    return ", ".join(f"{k.removesuffix('#count')} {v}" for k, v in rate_when.items())


def pricing_desc(spec: ModelSpec) -> str:
    """Prose that states every rate, like KIE's ``pricingDesc``."""
    if spec.price is None:
        return "Pricing varies; see https://kie.ai/pricing."
    unit = _unit_word(spec)
    parts = []
    for rate in spec.price.rates:
        when = _condition(rate.when)
        credits = f"{number(rate.credits)} credits per {unit}"
        parts.append(f"{credits} ({when})" if when else credits)
    return "; ".join(parts) + "."


def feed_rows(sim: Simulator) -> list[dict[str, Any]]:
    """The price feed: one record per rate of every priced model KIE still sells, with the controls applied."""
    state = sim.catalog
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for spec in load_catalog().offered():
        if spec.price is None or spec.id in state.withdrawn:
            continue
        unit = _unit_word(spec)
        for index, rate in enumerate(spec.price.rates):
            description = rate.feed or ", ".join(
                part for part in (spec.title.lower(), _condition(rate.when) or "standard") if part
            )
            if description in seen and rate.feed:
                continue  # several rates (or models) priced by one feed row: KIE lists the row once
            if description in seen:
                description = f"{description} #{index + 1}"
            seen.add(description)
            credits = state.feed_prices.get(description, rate.credits)
            if description in state.feed_prices and credits is None:
                continue  # the row is gone
            assert credits is not None
            rows.append(
                {
                    "modelDescription": description,
                    "interfaceType": spec.kind,
                    "provider": provider_of(spec.id),
                    "creditPrice": str(number(credits)),
                    "creditUnit": f"per {unit}",
                    "usdPrice": str(round(credits * USD_PER_CREDIT, 6)),
                    "falPrice": None,
                    "discountRate": 0.0,
                    "anchor": f"https://kie.ai/{spec.id.split('/')[0]}?model={quote(spec.id, safe='')}",
                    "discountPrice": False,
                }
            )
    return rows


def listed(sim: Simulator) -> dict[str, dict[str, Any]]:
    """The live model list: every Market model the data still offers, minus the withdrawn, plus the extras."""
    out: dict[str, dict[str, Any]] = {}
    for spec in load_catalog().offered():
        if spec.family != "market" or spec.id in sim.catalog.withdrawn:
            continue
        out[spec.id] = {
            "model": spec.id,
            "slug": spec.id,
            "title": spec.title,
            "provider": provider_of(spec.id),
            "taskType": task_types(spec),
            "description": spec.good_for,
            "pricingDesc": pricing_desc(spec),
        }
    for model_id, extra in sim.catalog.extra.items():
        if model_id not in sim.catalog.withdrawn:
            out[model_id] = {key: value for key, value in extra.items() if key != "openapi"}
    return out


def openapi_for(spec: ModelSpec, base_url: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document for one Market model, shaped like KIE's: the input behind local ``$ref``s (one with
    percent-encoded spaces), fields with type, enum, default, minimum/maximum, maxLength and item counts."""
    properties = {f.name: _property(f) for f in spec.fields.values()}
    required = [f.name for f in spec.fields.values() if f.required]
    body = {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "enum": [spec.id], "default": spec.id},
            "callBackUrl": {"type": "string", "format": "uri"},
            "input": {"$ref": "#/components/schemas/Input"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": spec.title, "version": "1.0.0", "description": spec.good_for},
        "servers": [{"url": base_url}],
        "paths": {
            "/api/v1/jobs/createTask": {
                "post": {
                    "summary": spec.title,
                    "operationId": spec.id.replace("/", "-"),
                    "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                    "responses": {
                        "200": {
                            "description": "",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/response%20not%20with%20recordId"}
                                }
                            },
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "description": "Input parameters for the generation task",
                    "properties": properties,
                    "required": required,
                },
                "response not with recordId": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "integer"},
                        "msg": {"type": "string"},
                        "data": {"type": "object", "properties": {"taskId": {"type": "string"}}},
                    },
                },
            },
            "securitySchemes": {"BearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def _property(field: FieldSpec) -> dict[str, Any]:
    prop: dict[str, Any]
    if field.type == "enum":
        values = list(field.values or [])
        kinds = {type(v) for v in values}
        json_type = "integer" if kinds == {int} else "number" if kinds <= {int, float} else "string"
        prop = {"type": json_type, "enum": values}
    elif field.type in ("string", "url"):
        prop = {"type": "string"}
        if field.type == "url":
            prop["format"] = "uri"
        if field.max_length is not None and not field.max_length_default:
            prop["maxLength"] = field.max_length
    elif field.type in ("integer", "number", "boolean"):
        prop = {"type": field.type}
        if field.min is not None:
            prop["minimum"] = field.min
        if field.max is not None:
            prop["maximum"] = field.max
    else:
        items: dict[str, Any] = {"type": "object"} if field.type == "objects" else {"type": "string"}
        if field.type == "urls":
            items["format"] = "uri"
        if field.type == "integers":
            items = {"type": "integer"}
            if field.min is not None:
                items["minimum"] = field.min
            if field.max is not None:
                items["maximum"] = field.max
        prop = {"type": "array", "items": items}
        if field.min_items is not None:
            prop["minItems"] = field.min_items
        if field.max_items is not None:
            prop["maxItems"] = field.max_items
    if field.default is not None:
        prop["default"] = field.default
    if field.note:
        prop["description"] = field.note
    if field.example is not None:
        prop["examples"] = [field.example]
    return prop


def success_points(sim: Simulator, model_id: str) -> list[dict[str, Any]]:
    rate = sim.catalog.success_rates.get(model_id, DEFAULT_SUCCESS_RATE)
    if rate is None:
        return []  # no monitoring data
    end = math.floor(sim.now() / BUCKET_SECONDS) * BUCKET_SECONDS
    points = []
    for index in range(BUCKETS, 0, -1):
        start = end - index * BUCKET_SECONDS
        points.append(
            {
                "start": _iso(start),
                "end": _iso(start + BUCKET_SECONDS),
                "successRate": round(rate, 2),
                "errorRate": round(100.0 - rate, 2),
                "isNormal": rate >= 80.0,
            }
        )
    return points


def _iso(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# -- endpoints ----------------------------------------------------------------------------------


def _live_model(ctx: Ctx) -> str:
    """The model a per-model lookup names, counted against the budget; 404 when KIE does not list it."""
    ctx.sim.admit_catalog(ctx.account)
    model_id = ctx.request.path_params["model"]
    if model_id not in listed(ctx.sim):
        raise KieError(404, MODEL_NOT_FOUND)
    return model_id


async def list_models(ctx: Ctx) -> Response:
    ctx.sim.admit_catalog(ctx.account)
    wanted_types = {t.strip().lower() for t in ctx.query("taskType").split(",") if t.strip()}
    provider = ctx.query("provider").lower()
    words = ctx.query("q").lower()
    models = []
    for row in listed(ctx.sim).values():
        if wanted_types and not wanted_types & {t.lower() for t in row.get("taskType") or []}:
            continue
        if provider and str(row.get("provider", "")).lower() != provider:
            continue
        text = " ".join(str(row.get(k) or "") for k in ("model", "title", "description")).lower()
        if words and words not in text:
            continue
        models.append(row)
    state = ctx.sim.catalog
    if state.models_page_size is None and state.models_served is None:
        return ctx.ok({"total": len(models), "models": models})
    # KIE moved: a list served in pages (``pageNum``), none past ``models_served`` rows, ``total`` still all of them
    size = state.models_page_size or len(models) or 1
    page = int(ctx.query("pageNum")) if ctx.query("pageNum").isdigit() and int(ctx.query("pageNum")) >= 1 else 1
    served = models[: state.models_served] if state.models_served is not None else models
    rows = served[(page - 1) * size : page * size]
    answer: dict[str, Any] = {"pageNum": page, "pageSize": size, "models": rows}
    total = {"number": len(models), "text": str(len(models)), "float": float(len(models)), "negative": -1}
    if state.models_total in total:
        answer["total"] = total[state.models_total]
    return ctx.ok(answer)


async def model_schema(ctx: Ctx) -> Response:
    model_id = _live_model(ctx)
    document: dict[str, Any] | None
    if model_id in ctx.sim.catalog.dropped_schemas:
        document = None
    elif model_id in ctx.sim.catalog.extra:
        document = ctx.sim.catalog.extra[model_id].get("openapi")
    else:
        spec = load_catalog().get(model_id)
        assert spec is not None
        document = changed(openapi_for(spec, ctx.base_url), ctx.sim.catalog.schema_changes.get(model_id))
    return ctx.ok({"model": model_id, "openapi": document})


def changed(document: dict[str, Any], change: dict[str, Any] | None) -> dict[str, Any]:
    """``document`` with what a control changed in its input (``/__sim/catalog/schema`` with ``input``)."""
    if not change:
        return document
    schema = document["components"]["schemas"]["Input"]
    for name, keys in change["properties"].items():
        schema["properties"][name] = {**schema["properties"].get(name, {}), **copy.deepcopy(keys)}
    schema["required"] = [
        *schema.get("required", []),
        *(n for n in change["required"] if n not in schema.get("required", [])),
    ]
    return document


async def model_price(ctx: Ctx) -> Response:
    model_id = _live_model(ctx)
    return ctx.ok({"model": model_id, "pricingDesc": listed(ctx.sim)[model_id].get("pricingDesc")})


async def model_success_rate(ctx: Ctx) -> Response:
    model_id = _live_model(ctx)
    return ctx.ok({"model": model_id, "points": success_points(ctx.sim, model_id)})


async def price_feed(ctx: Ctx) -> Response:
    """No key needed. ``pageSize`` over 100 is served as 100 (KIE's cap)."""
    if ctx.sim.catalog.feed_region_blocked:
        raise KieError(*REGION_BLOCKED)
    body = await ctx.json_object()
    page, size = body.get("pageNum", 1), body.get("pageSize", 10)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (page, size)):
        raise KieError(422, "pageNum and pageSize must be integers >= 1")
    size = min(size, MAX_PAGE_SIZE)
    rows = feed_rows(ctx.sim)
    if ctx.sim.catalog.feed_served is not None:  # KIE moved: a feed cut short, saying it is whole
        rows = rows[: ctx.sim.catalog.feed_served]
    if ctx.sim.catalog.feed_renamed:  # KIE moved: the same records under other field names
        rows = [
            {"name": r["modelDescription"], "price": {"credits": r["creditPrice"]}, "link": r["anchor"]} for r in rows
        ]
    pages = max(1, math.ceil(len(rows) / size))
    return ctx.ok({"records": rows[(page - 1) * size : page * size], "total": len(rows), "pages": pages})


ROUTES = [
    SimRoute(MODELS_PATH, "GET", "catalog", list_models),
    SimRoute(f"{MODELS_PATH}/{{model:path}}/schema", "GET", "catalog", model_schema),
    SimRoute(f"{MODELS_PATH}/{{model:path}}/price", "GET", "catalog", model_price),
    SimRoute(f"{MODELS_PATH}/{{model:path}}/success-rate", "GET", "catalog", model_success_rate),
    SimRoute(PRICE_FEED_PATH, "POST", "price-feed", price_feed, auth=False),
]
