"""Runway Aleph family (kie-api.md §4): video-to-video generate and record-info.

The record as KIE answers it live (justintanner/apicity kie/aleph/generate-upstream-failure, 2026-08-18):
``successFlag`` 0 while running, with ``errorCode`` and ``errorMessage`` null; 3 on a failure, with a numeric
``errorCode`` (500) and ``errorMessage``; times in unix milliseconds. KIE's docs show a failure as 0 with an
``errorMessage`` instead, which kie-mcp reads too. On success ``successFlag`` is 1 and ``errorCode`` 0 (the docs'
example); ``response`` holds ``resultVideoUrl``/``resultImageUrl`` and is null until success. An unknown task is
answered with success and ``data`` null (kie/aleph/record-info-not-found, 2026-08-06).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from kie_mcp.catalog import apply_defaults, check_input, load_catalog

from .context import Ctx, describe_problems, error_code, file_url, millis
from .errors import KieError
from .routes import SimRoute
from .state import MediaFile, Simulator, Task

GENERATE_PATH = "/api/v1/aleph/generate"
STATUS_PATH = "/api/v1/aleph/record-info"

MODEL = "runway-aleph"


def record(sim: Simulator, task: Task, base: str) -> dict[str, Any]:
    """The record-info ``data``: ``successFlag`` 0 running, 1 success, 3 failed (``errorCode`` a number), ms times."""
    now = sim.now()
    done = task.is_done(now)
    success = done and task.outcome == "success"
    failed = done and task.outcome == "fail"
    response = None
    if success:
        response = {
            "taskId": task.id,
            "resultVideoUrl": file_url(base, task, "0.mp4"),
            "resultImageUrl": file_url(base, task, "cover.jpg"),
        }
    return {
        "taskId": task.id,
        "paramJson": json.dumps(task.body, ensure_ascii=False, separators=(",", ":")),
        "response": response,
        "completeTime": millis(task.end_at) if done else None,
        "createTime": millis(task.created_at),
        "successFlag": 1 if success else (3 if failed else 0),
        "errorCode": 0 if success else (error_code(task) if failed else None),
        "errorMessage": task.fail_msg if failed else ("" if success else None),
    }


def callback_body(sim: Simulator, task: Task) -> dict[str, Any]:
    """The documented page shape: ``taskId`` at the top level, snake_case result keys (kie-api.md §12)."""
    if task.outcome == "success":
        data = {
            "result_video_url": file_url(task.base_url, task, "0.mp4"),
            "result_image_url": file_url(task.base_url, task, "cover.jpg"),
        }
        return {"code": 200, "msg": "success", "data": data, "taskId": task.id}
    return {"code": error_code(task), "msg": task.fail_msg, "data": None, "taskId": task.id}


async def generate(ctx: Ctx) -> Response:
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    spec = load_catalog().get(MODEL)
    if spec is None:  # pragma: no cover - the catalogue ships runway-aleph
        raise KieError(500)
    callback = body.get("callBackUrl")
    if callback is not None and not isinstance(callback, str):
        raise KieError(422, "callBackUrl must be a URL")
    wire = apply_defaults(spec, {k: v for k, v in body.items() if k != "callBackUrl"})
    problems = check_input(spec, wire)
    if problems:
        raise KieError(422, describe_problems(spec.id, problems))
    aspect = str(wire.get("aspectRatio") or "16:9")
    task = ctx.new_task(
        family="aleph",
        model=MODEL,
        kind="video",
        body=body,
        seconds=spec.typical_seconds,
        callback_url=callback or None,
        files={"0.mp4": MediaFile("video", "mp4", aspect), "cover.jpg": MediaFile("image", "jpg", aspect)},
        meta={"aspect": aspect},
        callback=callback_body,
    )
    ctx.commit_task(task, sim.price(spec, wire))
    return ctx.ok({"taskId": task.id})


async def record_info(ctx: Ctx) -> Response:
    task = ctx.polled_task("aleph", None, expires=True)  # unknown and expired: success, data null, as live
    return ctx.ok(record(ctx.sim, task, ctx.base_url))


ROUTES = [
    SimRoute(GENERATE_PATH, "POST", "create", generate),
    SimRoute(STATUS_PATH, "GET", "status", record_info),
]
