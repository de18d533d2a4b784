"""GPT-4o Image family (kie-api.md §5): generate, record-info and its own download-url.

The record carries both ``successFlag`` (0/1/2) and ``status`` (GENERATING, SUCCESS,
CREATE_TASK_FAILED, GENERATE_FAILED), ``progress`` as a string "0.00".."1.00" and times in ms.
``download-url`` takes ``{taskId, url}`` and answers a bare string (a 20-minute link).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from kie_mcp.catalog import apply_defaults, check_input, load_catalog

from .context import Ctx, describe_problems, error_code, file_url, millis
from .errors import KieError
from .routes import SimRoute
from .state import MediaFile, Simulator, Task

GENERATE_PATH = "/api/v1/gpt4o-image/generate"
STATUS_PATH = "/api/v1/gpt4o-image/record-info"
DOWNLOAD_PATH = "/api/v1/gpt4o-image/download-url"

MODEL = "gpt-4o-image"
# Live, record-info answers an unknown task with 422 "The record does not exist", download-url one with 422 "record
# is null" (justintanner/apicity kie/gpt4o-image/record-info-not-found 2026-06-27, download-url-not-found 2026-08-06).
NOT_FOUND = "The record does not exist"
RECORD_NULL = "record is null"
# Failure codes that mean KIE never started generating (bad input, unreachable image).
CREATE_FAILURES = ("400", "451")


def _status(task: Task, now: float) -> tuple[str, int]:
    if not task.is_done(now):
        return "GENERATING", 0
    if task.outcome == "success":
        return "SUCCESS", 1
    return ("CREATE_TASK_FAILED" if task.fail_code in CREATE_FAILURES else "GENERATE_FAILED"), 2


def _result_urls(task: Task, base: str) -> list[str]:
    return [file_url(base, task, name) for name in task.meta["names"]]


def record(sim: Simulator, task: Task, base: str) -> dict[str, Any]:
    """The record-info ``data``: flag + status word, string ``progress``, ms times, ``response`` null until success."""
    now = sim.now()
    status, flag = _status(task, now)
    done = flag != 0
    return {
        "taskId": task.id,
        "paramJson": json.dumps(task.body, ensure_ascii=False, separators=(",", ":")),
        "completeTime": millis(task.end_at) if done else None,
        "response": {"resultUrls": _result_urls(task, base)} if flag == 1 else None,
        "successFlag": flag,
        "status": status,
        "errorCode": error_code(task) if flag == 2 else None,
        "errorMessage": task.fail_msg if flag == 2 else "",
        "createTime": millis(task.created_at),
        "progress": f"{task.progress(now) / 100:.2f}",
    }


def callback_body(sim: Simulator, task: Task) -> dict[str, Any]:
    """``data.info.result_urls`` on success, ``info`` null on failure (kie-api.md §12)."""
    if task.outcome == "success":
        info = {"result_urls": _result_urls(task, task.base_url)}
        return {"code": 200, "msg": "success", "data": {"taskId": task.id, "info": info}}
    return {"code": error_code(task), "msg": task.fail_msg, "data": {"taskId": task.id, "info": None}}


async def generate(ctx: Ctx) -> Response:
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    spec = load_catalog().get(MODEL)
    if spec is None:  # pragma: no cover - the catalogue ships gpt-4o-image
        raise KieError(500)
    callback = body.get("callBackUrl")
    if callback is not None and not isinstance(callback, str):
        raise KieError(422, "callBackUrl must be a URL")
    wire = {k: v for k, v in body.items() if k not in ("callBackUrl", "fileUrl")}
    legacy = body.get("fileUrl")  # deprecated single-image field: counts as filesUrl
    if legacy and "filesUrl" not in wire:
        wire["filesUrl"] = [legacy]
    if "size" not in wire:
        raise KieError(422, "size is required")
    wire = apply_defaults(spec, wire)
    problems = check_input(spec, wire)
    if problems:
        raise KieError(422, describe_problems(spec.id, problems))
    size = str(wire["size"])
    names = [f"{i}.png" for i in range(int(wire.get("nVariants", 1)))]
    task = ctx.new_task(
        family="gpt4o",
        model=MODEL,
        kind="image",
        body=body,
        seconds=spec.typical_seconds,
        callback_url=callback or None,
        files={name: MediaFile("image", "png", size) for name in names},
        meta={"names": names},
        callback=callback_body,
    )
    ctx.commit_task(task, sim.price(spec, wire))
    return ctx.ok({"taskId": task.id})


def _visible_task(ctx: Ctx, task_id: str) -> Task:
    sim = ctx.sim
    task = sim.get_task(task_id, family="gpt4o")
    if task is None or task.account != ctx.account or not ctx.poll_visible(task):
        raise KieError(422, RECORD_NULL)
    if sim.now() - task.created_at > sim.config.record_retention_seconds:
        raise KieError(422, RECORD_NULL)  # expired records answer like unknown ones
    return task


async def record_info(ctx: Ctx) -> Response:
    task = ctx.polled_task("gpt4o", NOT_FOUND, expires=True)  # expired records answer like unknown ones
    return ctx.ok(record(ctx.sim, task, ctx.base_url))


async def download_url(ctx: Ctx) -> Response:
    """A fresh 20-minute link to one result image of a finished 4o task; ``data`` is a bare string."""
    body = await ctx.json_object()
    task_id, url = body.get("taskId"), body.get("url")
    if not isinstance(task_id, str) or not task_id.strip():
        raise KieError(422, "taskId is required")
    if not isinstance(url, str) or not url.strip():
        raise KieError(422, "url is required")
    sim = ctx.sim
    task = _visible_task(ctx, task_id.strip())
    if _status(task, sim.now())[1] != 1:
        raise KieError(422, "record status is not success")
    target = sim.resolve_sim_url(url.strip())
    if target is None or not target.startswith(f"/files/{task.id}/"):
        raise KieError(422, "The url is not a result of this task")
    link = sim.mint_link(target)
    return ctx.ok(f"{ctx.base_url}/dl/{link.token}/{quote(target.rsplit('/', 1)[-1])}")


ROUTES = [
    SimRoute(GENERATE_PATH, "POST", "create", generate),
    SimRoute(STATUS_PATH, "GET", "status", record_info),
    SimRoute(DOWNLOAD_PATH, "POST", "download-url", download_url),
]
