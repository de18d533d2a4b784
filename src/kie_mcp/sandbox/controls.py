"""Test controls under ``/__sim`` (kie-api.md S11): plain JSON, no auth, never logged as KIE traffic.

Success answers ``{"ok": true, ...}``; a bad control request answers HTTP 400 (404 for an
unknown task) with ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .config import DEFAULT_ACCOUNT, SimConfig
from .faults import FaultSpecError, parse_fault
from .state import Simulator


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


def _ok(**data: Any) -> JSONResponse:
    return JSONResponse({"ok": True, **data})


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ControlError("body must be JSON") from None
    if not isinstance(value, dict):
        raise ControlError("body must be a JSON object")
    return value


def _number(body: dict[str, Any], name: str, *, minimum: float | None = None) -> float:
    value = body.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ControlError(f"{name} must be a number")
    if minimum is not None and value < minimum:
        raise ControlError(f"{name} must be >= {minimum:g}")
    return float(value)


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
        sim.set_balance(_number(body, "credits"), account)
        return _ok(account=account, balance=sim.balance(account))

    async def advance(request: Request) -> Response:
        sim.advance(_number(await _body(request), "seconds", minimum=0))
        return _ok(now=sim.now())

    async def speed(request: Request) -> Response:
        sim.set_speed(_number(await _body(request), "speed", minimum=0))
        return _ok(now=sim.now(), speed=sim.config.speed)

    async def config(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
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
            try:
                fault = parse_fault(body.get("endpoint", "any"), body.get("fault"), body.get("times", 1))
            except FaultSpecError as exc:
                raise ControlError(str(exc)) from None
            sim.faults.add(fault)
        return _ok(faults=[f.to_dict() for f in sim.faults.items])

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
        if cap is not None and (not isinstance(cap, int | float) or isinstance(cap, bool)):
            raise ControlError("cap must be a number or null")
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

    table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/__sim/reset", reset, ["POST"]),
        ("/__sim/state", state, ["GET"]),
        ("/__sim/balance", balance, ["POST"]),
        ("/__sim/clock/advance", advance, ["POST"]),
        ("/__sim/clock/speed", speed, ["POST"]),
        ("/__sim/config", config, ["GET", "POST"]),
        ("/__sim/faults", faults, ["GET", "POST", "DELETE"]),
        ("/__sim/tasks", tasks, ["GET"]),
        ("/__sim/tasks/{task_id:path}", task, ["GET", "POST"]),
        ("/__sim/requests", requests, ["GET", "DELETE"]),
        ("/__sim/callbacks", callbacks, ["GET"]),
        ("/__sim/keys", keys, ["POST"]),
        ("/__sim/prices", prices, ["GET", "POST"]),
    ]
    return [Route(path, wrap(fn), methods=methods) for path, fn, methods in table]
