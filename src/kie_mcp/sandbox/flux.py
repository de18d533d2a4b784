"""Flux Kontext family (kie-api.md §6): generate/edit and record-info.

Like Veo: the body names the model (``flux-kontext-pro`` by default, or ``flux-kontext-max``),
``successFlag`` 0 running / 1 success / 2 failed / 3 upstream failed, string timestamps, and
``response`` (``originImageUrl``, ``resultImageUrl``) null until success.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from kie_mcp.catalog import apply_defaults, check_input

from .context import Ctx, describe_problems, error_code, file_url, model_spec, stamp, success_flag
from .errors import KieError
from .routes import SimRoute
from .state import MediaFile, Simulator, Task

GENERATE_PATH = "/api/v1/flux/kontext/generate"
STATUS_PATH = "/api/v1/flux/kontext/record-info"

DEFAULT_MODEL = "flux-kontext-pro"
# Live, record-info answers an unknown task with 422 "The record does not exist" (justintanner/apicity
# kie/flux-kontext-record-info-not-found, 2026-06-27).
NOT_FOUND = "The record does not exist"
IGNORED_FIELDS = ("model", "callBackUrl")


def _response(task: Task, base: str) -> dict[str, Any]:
    fmt = task.meta["fmt"]
    return {
        "originImageUrl": file_url(base, task, f"origin.{fmt}"),
        "resultImageUrl": file_url(base, task, f"result.{fmt}"),
    }


def record(sim: Simulator, task: Task, base: str) -> dict[str, Any]:
    """The record-info ``data``: ``successFlag`` 0/1/2/3, string times, ``response`` null until success."""
    flag = success_flag(task, sim.now())
    failed = flag in (2, 3)
    return {
        "taskId": task.id,
        "paramJson": json.dumps(task.body, ensure_ascii=False, separators=(",", ":")),
        "completeTime": stamp(task.end_at) if flag else None,
        "createTime": stamp(task.created_at),
        "response": _response(task, base) if flag == 1 else None,
        "successFlag": flag,
        "errorCode": error_code(task) if failed else None,
        "errorMessage": task.fail_msg if failed else "",
    }


def callback_body(sim: Simulator, task: Task) -> dict[str, Any]:
    """``data.info`` holds the two image URLs; failures carry ``info`` null (kie-api.md §12)."""
    if task.outcome == "success":
        return {"code": 200, "msg": "success", "data": {"taskId": task.id, "info": _response(task, task.base_url)}}
    return {"code": error_code(task), "msg": task.fail_msg, "data": {"taskId": task.id, "info": None}}


async def generate(ctx: Ctx) -> Response:
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    model = body.get("model") or DEFAULT_MODEL
    spec = model_spec(model, "flux")
    callback = body.get("callBackUrl")
    if callback is not None and not isinstance(callback, str):
        raise KieError(422, "callBackUrl must be a URL")
    wire = apply_defaults(spec, {k: v for k, v in body.items() if k not in IGNORED_FIELDS})
    problems = check_input(spec, wire)
    if problems:
        raise KieError(422, describe_problems(spec.id, problems))
    fmt = "png" if wire.get("outputFormat") == "png" else "jpg"
    aspect = str(wire.get("aspectRatio", "auto"))  # an edit without one keeps its input's shape (drawn square)
    task = ctx.new_task(
        family="flux",
        model=spec.id,
        kind="image",
        body=body,
        seconds=spec.typical_seconds,
        callback_url=callback or None,
        files={f"result.{fmt}": MediaFile("image", fmt, aspect), f"origin.{fmt}": MediaFile("image", fmt, aspect)},
        meta={"fmt": fmt},
        callback=callback_body,
    )
    ctx.commit_task(task, sim.price(spec, wire))
    return ctx.ok({"taskId": task.id})


async def record_info(ctx: Ctx) -> Response:
    task = ctx.polled_task("flux", NOT_FOUND, expires=True)  # expired records answer like unknown ones
    data = record(ctx.sim, task, ctx.base_url)
    return ctx.task_record(data, failed=data["successFlag"] in (2, 3))


ROUTES = [
    SimRoute(GENERATE_PATH, "POST", "create", generate),
    SimRoute(STATUS_PATH, "GET", "status", record_info),
]
