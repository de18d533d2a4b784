"""Test controls under ``/__sim`` (kie-api.md S11): plain JSON, no auth, never logged as KIE traffic.

Success answers ``{"ok": true, ...}``; a bad control request answers HTTP 400 (404 for an
unknown task) with ``{"ok": false, "error": "..."}``.

No control may wedge or break the simulator: NaN and Infinity are refused anywhere in a body (Python's
``json`` would accept the bare literals), and every number that steers time or size is bounded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .config import DEFAULT_ACCOUNT, SimConfig
from .faults import FaultSpecError, parse_fault
from .state import Simulator

MAX_SPEED = 1_000_000.0  # virtual seconds per real second: a real second is then 11.6 virtual days
MAX_ADVANCE = 10 * 365 * 86400.0  # ten years per call
MAX_VIRTUAL_TIME = 32_503_680_000.0  # 3000-01-01: later timestamps stop fitting KIE's date formats
MAX_BALANCE = 1e12  # credits
TOTAL_SHAPES = ("number", "text", "float", "negative", "missing")  # how a paged model list writes its total
MAX_FAULT_SECONDS = 600.0  # real seconds a slow, hold or stall fault may hold one answer (a trickle fault, each step)
MAX_VIDEO_BYTES = 4 * 1024**3  # the size of each fake result video


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


def _ok(**data: Any) -> JSONResponse:
    try:
        return JSONResponse({"ok": True, **data})
    except ValueError:  # a logged request body held NaN or Infinity, which JSON cannot carry: show them as text
        return JSONResponse({"ok": True, **_as_text_if_not_finite(data)})


def _as_text_if_not_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _as_text_if_not_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_text_if_not_finite(item) for item in value]
    return value


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        value = json.loads(raw, parse_constant=_no_constant) if raw.strip() else {}
    except ControlError:
        raise
    except ValueError:
        raise ControlError("body must be JSON") from None
    if not isinstance(value, dict):
        raise ControlError("body must be a JSON object")
    where = _non_finite(value)
    if where is not None:
        raise ControlError(f"{where} must be a finite number (1e999 overflows to Infinity)")
    return value


def _no_constant(name: str) -> Any:
    raise ControlError(f"{name} is not a number the simulator accepts; give a finite number")


def _non_finite(value: Any) -> str | None:
    """The path of the first infinite (or NaN) number in a parsed body, or None."""
    stack: list[tuple[str, Any]] = [("body", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where
        if isinstance(item, dict):
            stack.extend((f"{where}.{key}", inner) for key, inner in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}[{index}]", inner) for index, inner in enumerate(item))
    return None


def _number(body: dict[str, Any], name: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = body.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ControlError(f"{name} must be a finite number")
    if minimum is not None and value < minimum:
        raise ControlError(f"{name} must be >= {minimum:g}")
    if maximum is not None and value > maximum:
        raise ControlError(f"{name} must be <= {maximum:g}")
    return float(value)


def _flag(body: dict[str, Any], name: str) -> bool:
    """A true/false setting of a control's body, refused when it is anything else (``1``, ``"true"``)."""
    value = body.get(name)
    if not isinstance(value, bool):
        raise ControlError(f"{name} must be true or false")
    return value


def _check_fault_body(body: dict[str, Any]) -> None:
    """Bounds ``parse_fault`` does not know: a slow, hold or stall fault holds an answer for at most
    MAX_FAULT_SECONDS, a trickle fault each of its steps."""
    fault = body.get("fault")
    if isinstance(fault, dict) and fault.get("kind") in ("slow", "hold", "stall") and "seconds" in fault:
        _number(fault, "seconds", minimum=0, maximum=MAX_FAULT_SECONDS)
    if isinstance(fault, dict) and fault.get("kind") == "trickle" and "every" in fault:
        _number(fault, "every", minimum=0, maximum=MAX_FAULT_SECONDS)


def _catalog_model(sim: Simulator, body: dict[str, Any]) -> str:
    """The model a catalogue control names: a Market model of the bundled data or an extra live model."""
    from kie_mcp.catalog import load_catalog

    model = body.get("model")
    spec = load_catalog().get(model) if isinstance(model, str) else None
    if not isinstance(model, str) or ((spec is None or spec.family != "market") and model not in sim.catalog.extra):
        raise ControlError(f"no Market model {model!r} in the simulated catalogue", status=404)
    return model


def _catalog_state(sim: Simulator) -> dict[str, Any]:
    state = sim.catalog
    return {
        "withdrawn": sorted(state.withdrawn),
        "droppedSchemas": sorted(state.dropped_schemas),
        "schemaChanges": state.schema_changes,
        "feedPrices": state.feed_prices,
        "successRates": state.success_rates,
        "extra": sorted(state.extra),
        "feedRegionBlocked": state.feed_region_blocked,
        "feedRenamed": state.feed_renamed,
        "modelsPageSize": state.models_page_size,
        "modelsServed": state.models_served,
        "feedServed": state.feed_served,
        "modelsTotal": state.models_total,
    }


def routes(sim: Simulator) -> list[Route]:
    """The control routes bound to ``sim``."""

    def wrap(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except ControlError as err:
                return JSONResponse({"ok": False, "error": err.message}, status_code=err.status)

        endpoint.__name__ = fn.__name__
        return endpoint

    async def reset(request: Request) -> Response:
        sim.reset()
        return _ok(state=sim.snapshot())

    async def state(request: Request) -> Response:
        return _ok(**sim.snapshot())

    async def balance(request: Request) -> Response:
        body = await _body(request)
        account = body.get("account", DEFAULT_ACCOUNT)
        if not isinstance(account, str) or not account:
            raise ControlError("account must be a name")
        sim.set_balance(_number(body, "credits", minimum=-MAX_BALANCE, maximum=MAX_BALANCE), account)
        return _ok(account=account, balance=sim.balance(account))

    async def advance(request: Request) -> Response:
        seconds = _number(await _body(request), "seconds", minimum=0, maximum=MAX_ADVANCE)
        if sim.now() + seconds > MAX_VIRTUAL_TIME:
            raise ControlError("the virtual clock cannot go past the year 3000; reset the simulator")
        sim.advance(seconds)
        return _ok(now=sim.now())

    async def speed(request: Request) -> Response:
        sim.set_speed(_number(await _body(request), "speed", minimum=0, maximum=MAX_SPEED))
        return _ok(now=sim.now(), speed=sim.config.speed)

    async def config(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            if "speed" in body:
                _number(body, "speed", minimum=0, maximum=MAX_SPEED)
            if "video_bytes" in body:
                _number(body, "video_bytes", maximum=MAX_VIDEO_BYTES)
            if "starting_balance" in body:
                _number(body, "starting_balance", minimum=-MAX_BALANCE, maximum=MAX_BALANCE)
            try:
                merged = SimConfig.model_validate({**sim.config.model_dump(), **body})
            except ValidationError as exc:
                raise ControlError(f"invalid config: {exc.errors(include_url=False)}") from None
            sim.now()  # pin the clock before a speed change
            for name in body:
                setattr(sim.config, name, getattr(merged, name))
            sim.now()
        return _ok(config=sim.config.model_dump())

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            sim.faults.clear()
        elif request.method == "POST":
            body = await _body(request)
            _check_fault_body(body)
            try:
                fault = parse_fault(body.get("endpoint", "any"), body.get("fault"), body.get("times", 1))
            except FaultSpecError as exc:
                raise ControlError(str(exc)) from None
            sim.faults.add(fault)
        return _ok(faults=[f.to_dict() for f in sim.faults.items], held=sim.faults.held)

    async def release(request: Request) -> Response:
        return _ok(released=sim.faults.release())

    async def tasks(request: Request) -> Response:
        sim.settle_all()
        now = sim.now()
        return _ok(tasks=[t.summary(now) for t in sim.tasks.values()])

    async def task(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        if task_id not in sim.tasks:
            raise ControlError(f"no task {task_id}", status=404)
        if request.method == "POST":
            body = await _body(request)
            try:
                sim.force_task(
                    task_id,
                    str(body.get("state", "")),
                    fail_code=str(body.get("fail_code", "500")),
                    fail_msg=str(body.get("fail_msg", "")),
                    **{k: body[k] for k in ("credits_consumed",) if k in body},
                )
            except ValueError as exc:
                raise ControlError(str(exc)) from None
            if body.get("upstream"):
                sim.tasks[task_id].meta["upstream_fail"] = True
        sim.settle_all()
        return _ok(task=sim.tasks[task_id].summary(sim.now()))

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            sim.requests.clear()
        return _ok(requests=[r.to_dict() for r in sim.requests])

    async def callbacks(request: Request) -> Response:
        sim.settle_all()
        return _ok(callbacks=sim.callbacks)

    async def keys(request: Request) -> Response:
        body = await _body(request)
        key, account, cap = body.get("key"), body.get("account", DEFAULT_ACCOUNT), body.get("cap")
        if not isinstance(key, str) or not key or not isinstance(account, str) or not account:
            raise ControlError("key and account must be non-empty strings")
        if cap is not None and (not isinstance(cap, int | float) or isinstance(cap, bool) or cap < 0):
            raise ControlError("cap must be a number >= 0 or null")
        sim.add_key(key, account, cap)
        return _ok(keys=len(sim.keys), accounts=sorted(sim.accounts))

    async def prices(request: Request) -> Response:
        if request.method == "POST":
            for model, credits in (await _body(request)).items():
                if credits is None:
                    sim.price_overrides.pop(model, None)
                elif isinstance(credits, int | float) and not isinstance(credits, bool) and credits >= 0:
                    sim.price_overrides[model] = float(credits)
                else:
                    raise ControlError(f"price for {model} must be a number >= 0 or null")
        return _ok(prices=sim.price_overrides)

    async def catalog(request: Request) -> Response:
        return _ok(catalog=_catalog_state(sim))

    async def catalog_withdraw(request: Request) -> Response:
        return await _toggle(request, "withdrawn", sim.catalog.withdrawn)

    async def catalog_schema(request: Request) -> Response:
        """Drop a model's schema (``dropped``), or change its input as KIE might (``input``: ``properties``, each a
        field's keys to set, a new field's whole schema; ``required``: names now required; ``{}`` undoes it)."""
        body = await _body(request)
        if "input" not in body:
            return await _toggle(request, "dropped", sim.catalog.dropped_schemas)
        model = _catalog_model(sim, body)
        change = body["input"]
        properties, required = (change.get("properties", {}), change.get("required", [])) if change else ({}, [])
        if not isinstance(properties, dict) or not all(isinstance(v, dict) for v in properties.values()):
            raise ControlError("input.properties must map field names to objects")
        if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
            raise ControlError("input.required must be a list of field names")
        if properties or required:
            sim.catalog.schema_changes[model] = {"properties": properties, "required": required}
        else:
            sim.catalog.schema_changes.pop(model, None)
        return _ok(catalog=_catalog_state(sim))

    async def _toggle(request: Request, flag: str, members: set[str]) -> Response:
        """Put a model in ``members`` (``{flag: true}``, the default) or take it out (``{flag: false}``)."""
        body = await _body(request)
        model = _catalog_model(sim, body)
        if body.get(flag, True) is True:
            members.add(model)
        elif body.get(flag) is False:
            members.discard(model)
        else:
            raise ControlError(f"{flag} must be true or false")
        return _ok(catalog=_catalog_state(sim))

    async def catalog_feed(request: Request) -> Response:
        from .models import feed_rows

        body = await _body(request)
        if "regionBlocked" in body:
            sim.catalog.feed_region_blocked = _flag(body, "regionBlocked")
        if "description" in body:
            description = body["description"]
            known = {row["modelDescription"] for row in feed_rows(sim)} | set(sim.catalog.feed_prices)
            if not isinstance(description, str) or description not in known:
                raise ControlError(f"no price-feed row {description!r}", status=404)
            credits = body.get("credits")
            if credits is not None:
                _number(body, "credits", minimum=0, maximum=MAX_BALANCE)
            sim.catalog.feed_prices[description] = None if credits is None else float(credits)
        return _ok(catalog=_catalog_state(sim))

    async def catalog_moved(request: Request) -> Response:
        body = await _body(request)
        if "feedRenamed" in body:
            sim.catalog.feed_renamed = _flag(body, "feedRenamed")
        if "modelsTotal" in body:
            if body["modelsTotal"] not in TOTAL_SHAPES:
                raise ControlError(f"modelsTotal must be one of {', '.join(TOTAL_SHAPES)}")
            sim.catalog.models_total = body["modelsTotal"]
        for name, attribute in (
            ("modelsPageSize", "models_page_size"),
            ("modelsServed", "models_served"),
            ("feedServed", "feed_served"),
        ):
            if name in body:
                value = body[name]
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                    raise ControlError(f"{name} must be a whole number >= 1 or null")
                setattr(sim.catalog, attribute, value)
        return _ok(catalog=_catalog_state(sim))

    async def catalog_success_rate(request: Request) -> Response:
        body = await _body(request)
        model = _catalog_model(sim, body)
        if body.get("successRate") is None:
            sim.catalog.success_rates[model] = None  # no monitoring data
        else:
            sim.catalog.success_rates[model] = _number(body, "successRate", minimum=0, maximum=100)
        if body.get("reset") is True:
            sim.catalog.success_rates.pop(model, None)
        return _ok(catalog=_catalog_state(sim))

    async def catalog_extra(request: Request) -> Response:
        body = await _body(request)
        model = body.get("model")
        if not isinstance(model, str) or not model.strip() or any(p in ("", ".", "..") for p in model.split("/")):
            raise ControlError("model must be a model id such as brand/new-model")
        if body.get("remove") is True:
            sim.catalog.extra.pop(model, None)
            return _ok(catalog=_catalog_state(sim))
        document = body.get("openapi")
        if document is not None and not isinstance(document, dict):
            raise ControlError("openapi must be an object or null")
        task_type = body.get("taskType", ["Text to Image"])
        if not isinstance(task_type, list) or not all(isinstance(t, str) for t in task_type):
            raise ControlError("taskType must be a list of text")
        sim.catalog.extra[model] = {
            "model": model,
            "slug": model,
            "title": str(body.get("title") or model),
            "provider": str(body.get("provider") or model.split("/")[0].title()),
            "taskType": task_type,
            "description": body.get("description") if isinstance(body.get("description"), str) else None,
            "pricingDesc": str(body.get("pricingDesc") or ""),
            "openapi": document,
        }
        return _ok(catalog=_catalog_state(sim))

    table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/__sim/reset", reset, ["POST"]),
        ("/__sim/state", state, ["GET"]),
        ("/__sim/balance", balance, ["POST"]),
        ("/__sim/clock/advance", advance, ["POST"]),
        ("/__sim/clock/speed", speed, ["POST"]),
        ("/__sim/config", config, ["GET", "POST"]),
        ("/__sim/faults", faults, ["GET", "POST", "DELETE"]),
        ("/__sim/faults/release", release, ["POST"]),
        ("/__sim/tasks", tasks, ["GET"]),
        ("/__sim/tasks/{task_id:path}", task, ["GET", "POST"]),
        ("/__sim/requests", requests, ["GET", "DELETE"]),
        ("/__sim/callbacks", callbacks, ["GET"]),
        ("/__sim/keys", keys, ["POST"]),
        ("/__sim/prices", prices, ["GET", "POST"]),
        ("/__sim/catalog", catalog, ["GET"]),
        ("/__sim/catalog/withdraw", catalog_withdraw, ["POST"]),
        ("/__sim/catalog/schema", catalog_schema, ["POST"]),
        ("/__sim/catalog/feed", catalog_feed, ["POST"]),
        ("/__sim/catalog/moved", catalog_moved, ["POST"]),
        ("/__sim/catalog/success-rate", catalog_success_rate, ["POST"]),
        ("/__sim/catalog/extra", catalog_extra, ["POST"]),
    ]
    return [Route(path, wrap(fn), methods=methods) for path, fn, methods in table]
