"""Runway family (kie-api.md §4): generate, extend and record-detail.

Runway differs from the market API: ``state`` is ``wait -> queueing -> generating -> success | fail``
(spelled its own way), the result is one ``videoInfo`` object, ``failCode`` is an int, and
``expireFlag`` turns 1 once the 14-day media retention has passed. The docs mark ``callBackUrl``
required: it must be present, but may be empty (KIE's own examples send "").
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from kie_mcp.catalog import apply_defaults, check_input, load_catalog

from .context import Ctx, describe_problems, file_url, stamp
from .errors import KieError
from .routes import SimRoute
from .state import MediaFile, Simulator, Task

GENERATE_PATH = "/api/v1/runway/generate"
EXTEND_PATH = "/api/v1/runway/extend"
STATUS_PATH = "/api/v1/runway/record-detail"

MODEL = "runway-video"
RECORD_NULL = "recordDetail is null"
NOT_SUCCESS = "record status is not success"
QUALITIES = ("720p", "1080p")
EXTEND_SECONDS = 5  # an extension adds one 5 s clip: priced at the 5 s rate of its quality (inferred)
PROMPT_LIMIT = 1800
# The market vocabulary Task.state() derives -> Runway's words.
STATES = {"waiting": "wait", "queuing": "queueing", "generating": "generating", "success": "success", "fail": "fail"}


def _fail_code(task: Task) -> int:
    return int(task.fail_code) if task.fail_code.isdigit() else 500


def _video_info(task: Task, base: str) -> dict[str, Any]:
    return {
        "videoId": task.meta["video_id"],
        "taskId": task.id,
        "videoUrl": file_url(base, task, "0.mp4"),
        "imageUrl": file_url(base, task, "cover.jpg"),
    }


def record(sim: Simulator, task: Task, base: str) -> dict[str, Any]:
    """The record-detail ``data``: Runway's ``state`` words, ``videoInfo`` once done, int ``failCode``."""
    now = sim.now()
    state = STATES[task.state(now)]
    expired = state == "success" and now >= task.end_at + sim.config.record_retention_seconds
    return {
        "taskId": task.id,
        "parentTaskId": task.meta.get("parent", ""),
        "generateParam": {
            "prompt": task.body.get("prompt", ""),
            "imageUrl": task.body.get("imageUrl", ""),
            "expandPrompt": bool(task.body.get("expandPrompt", False)),
        },
        "state": state,
        "generateTime": stamp(task.end_at) if state in ("success", "fail") else "",
        "videoInfo": _video_info(task, base) if state == "success" else None,
        "failCode": _fail_code(task) if state == "fail" else None,
        "failMsg": task.fail_msg if state == "fail" else "",
        "expireFlag": 1 if expired else 0,
    }


def callback_body(sim: Simulator, task: Task) -> dict[str, Any]:
    """Generate/extend callbacks are snake_case, with empty strings on failure (kie-api.md §12)."""
    if task.outcome == "success":
        info = _video_info(task, task.base_url)
        data = {"task_id": task.id, "video_id": info["videoId"], "video_url": info["videoUrl"]}
        return {"code": 200, "msg": "All generated successfully.", "data": {**data, "image_url": info["imageUrl"]}}
    empty = {"task_id": task.id, "video_id": "", "video_url": "", "image_url": ""}
    return {"code": _fail_code(task), "msg": task.fail_msg, "data": empty}


def _callback_url(body: dict[str, Any], *, required: bool) -> str | None:
    if "callBackUrl" not in body:
        if required:
            raise KieError(422, "callBackUrl is required")
        return None
    value = body["callBackUrl"]
    if value is not None and not isinstance(value, str):
        raise KieError(422, "callBackUrl must be a URL")
    return value or None


def _new_task(ctx: Ctx, body: dict[str, Any], aspect: str, meta: dict[str, Any]) -> Task:
    spec = load_catalog().get(MODEL)
    callback_url = meta.pop("callback_url")
    task = ctx.new_task(
        family="runway",
        model=MODEL,
        kind="video",
        body=body,
        seconds=spec.typical_seconds if spec else (60, 300),
        callback_url=callback_url,
        files={"0.mp4": MediaFile("video", "mp4", aspect), "cover.jpg": MediaFile("image", "jpg", aspect)},
        meta={"aspect": aspect, **meta},
        callback=callback_body,
    )
    task.meta["video_id"] = f"video_{task.id.removeprefix('runway_')}"
    return task


async def generate(ctx: Ctx) -> Response:
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    spec = load_catalog().get(MODEL)
    if spec is None:  # pragma: no cover - the catalogue ships runway-video
        raise KieError(500)
    callback = _callback_url(body, required=True)
    wire = {k: v for k, v in body.items() if k != "callBackUrl"}
    for name in ("duration", "quality"):  # documented as required; the catalogue only defaults them
        if name not in wire:
            raise KieError(422, f"{name} is required")
    if not wire.get("imageUrl") and "aspectRatio" not in wire:
        raise KieError(422, "aspectRatio is required for text-to-video")
    wire = apply_defaults(spec, wire)
    problems = check_input(spec, wire)
    if problems:
        raise KieError(422, describe_problems(spec.id, problems))
    aspect = str(wire.get("aspectRatio", "16:9"))
    task = _new_task(ctx, body, aspect, {"variant": "generate", "quality": wire["quality"], "callback_url": callback})
    ctx.commit_task(task, sim.price(spec, wire))
    return ctx.ok({"taskId": task.id})


async def extend(ctx: Ctx) -> Response:
    """A new Runway task continuing a successful Runway clip of the same account."""
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    spec = load_catalog().get(MODEL)
    if spec is None:  # pragma: no cover
        raise KieError(500)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise KieError(422, "prompt is required")
    if len(prompt) > PROMPT_LIMIT:
        raise KieError(422, f"prompt is {len(prompt)} characters long; the limit is {PROMPT_LIMIT}")
    quality = body.get("quality")
    if quality not in QUALITIES:
        raise KieError(422, f"quality is required and must be one of {', '.join(QUALITIES)}; got {quality!r}")
    if not isinstance(body.get("waterMark", ""), str):
        raise KieError(422, "waterMark must be text")
    callback = _callback_url(body, required=False)
    source_id = body.get("taskId")
    if not isinstance(source_id, str) or not source_id:
        raise KieError(422, "taskId is required")
    source = sim.get_task(source_id, family="runway")
    if source is None or source.account != ctx.account:
        raise KieError(422, RECORD_NULL)
    if source.state(sim.now()) != "success":
        raise KieError(422, NOT_SUCCESS)
    meta = {"variant": "extend", "quality": quality, "parent": source.id, "callback_url": callback}
    task = _new_task(ctx, body, source.meta["aspect"], meta)
    ctx.commit_task(task, sim.price(spec, {"duration": EXTEND_SECONDS, "quality": quality}))
    return ctx.ok({"taskId": task.id})


async def record_detail(ctx: Ctx) -> Response:
    task = ctx.polled_task("runway", None)  # an unknown task: success, data null, as KIE answers live
    return ctx.ok(record(ctx.sim, task, ctx.base_url))


ROUTES = [
    SimRoute(GENERATE_PATH, "POST", "create", generate),
    SimRoute(EXTEND_PATH, "POST", "create", extend),
    SimRoute(STATUS_PATH, "GET", "status", record_detail),
]
