"""Veo 3.1 family (kie-api.md §3): generate, record-info, 1080p, 4K and extend.

Veo differs from the market API on purpose: camelCase bodies, ``successFlag`` instead of
``state``, string timestamps, ``response`` null until success, and upgrades that are tasks or
endpoints of their own with their own charges.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from kie_mcp.catalog import apply_defaults, check_input, load_catalog

from .context import Ctx, describe_problems, envelope, error_code, file_url, model_spec, stamp, success_flag
from .errors import KieError
from .media import SHIPPED_SECONDS
from .routes import SimRoute
from .state import MediaFile, Simulator, Task, video_shape

GENERATE_PATH = "/api/v1/veo/generate"
STATUS_PATH = "/api/v1/veo/record-info"
HD_PATH = "/api/v1/veo/get-1080p-video"
UHD_PATH = "/api/v1/veo/get-4k-video"
EXTEND_PATH = "/api/v1/veo/extend"

DEFAULT_MODEL = "veo3_fast"
HD_CREDITS = 5.0
UHD_CREDITS = 120.0
HD_SECONDS = (60.0, 180.0)
UHD_SECONDS = (300.0, 600.0)
FALLBACK_SECONDS = (120.0, 300.0)
# extend "model" -> (catalogue model for timing, credits)
EXTEND_MODELS: dict[str, tuple[str, float]] = {
    "fast": ("veo3_fast", 60.0),
    "quality": ("veo3", 250.0),
    "lite": ("veo3_lite", 30.0),
}
IGNORED_FIELDS = ("model", "callBackUrl", "enableFallback")
# KIE documents no length for an extension: Veo 3.1 extends a clip by 7 s (Google's "Extend videos" page for Veo
# 3.1), and KIE's record has the whole extended video (fullResultUrls) beside the new part (resultUrls).
EXTEND_SECONDS = 7.0

HD_PROCESSING = "1080P is processing, ready in 1-2 minutes"
HD_BLANK = "record result data is blank"  # KIE's other "not ready yet" answer (SimConfig.hd_blank_seconds)
UHD_PROCESSING = "4k is processing. It should be ready in 5-10 minutes. Please check back shortly."
# KIE's 422 to a repeated 4K request once the 4K is done (docs.kie.ai/veo3-api/get-veo-3-4k-video, "Error Responses",
# read 2026-12: {"code": 422, "msg": "The video has been generated successfully", "data": {"taskId", "resultUrls",
# "imageUrls"}}; a summary copy of the page shows the 422 without data). SimConfig.uhd_repeat picks the shape.
UHD_DONE = "The video has been generated successfully"
NOT_SUCCESS = "record status is not success"
RECORD_NULL = "record is null"
# The catalogue's follow-up models (catalog/data/followups.toml) price the upgrades and extensions.
HD_MODEL, UHD_MODEL, EXTEND_MODEL = "veo/get-1080p-video", "veo/get-4k-video", "veo/extend"


def _response(task: Task, base: str) -> dict[str, Any]:
    variant = task.meta["variant"]
    if variant == "4k":
        return {
            "taskId": task.id,
            "resultUrls": [file_url(base, task, "0.mp4")],
            "imageUrls": [file_url(base, task, "cover-0.jpg")],
            "resolution": "4k",
        }
    data: dict[str, Any] = {
        "taskId": task.id,
        "resultUrls": [file_url(base, task, "0.mp4")],
        "originUrls": [file_url(base, task, "origin-0.mp4")] if "origin-0.mp4" in task.files else None,
        "resolution": task.meta["resolution"],
    }
    if "full-0.mp4" in task.files:  # an extension's whole video; a generation's copy of its clip (KIE's example)
        data["fullResultUrls"] = [file_url(base, task, "full-0.mp4")]
    return data


def record(sim: Simulator, task: Task, base: str) -> dict[str, Any]:
    """The record-info ``data``: ``successFlag`` 0/1/2/3, string times, ``response`` null until success."""
    now = sim.now()
    flag = success_flag(task, now)
    failed = flag in (2, 3)
    data = {
        "taskId": task.id,
        "paramJson": json.dumps(task.body, ensure_ascii=False, separators=(",", ":")),
        "createTime": stamp(task.created_at),
        "completeTime": stamp(task.end_at) if flag else None,
        "successFlag": flag,
        "response": _response(task, base) if flag == 1 else None,
        "errorCode": error_code(task) if failed else None,
        "errorMessage": task.fail_msg if failed else "",
        "fallbackFlag": False,
    }
    if task.meta.get("variant") == "4k":  # KIE: "4K video generation tasks do not include this field"
        del data["fallbackFlag"]
    return data


def callback_body(sim: Simulator, task: Task) -> dict[str, Any]:
    """Generate/extend callbacks carry ``data.info``; failures carry no ``info`` (kie-api.md §12)."""
    if task.outcome == "success":
        info = _response(task, task.base_url)
        info.pop("taskId", None)
        return {
            "code": 200,
            "msg": "Veo3 video generated successfully.",
            "data": {"taskId": task.id, "info": info, "fallbackFlag": False},
        }
    return {"code": error_code(task), "msg": task.fail_msg, "data": {"taskId": task.id, "fallbackFlag": False}}


def uhd_callback_body(sim: Simulator, task: Task) -> dict[str, Any]:
    if task.outcome == "success":
        info = _response(task, task.base_url)
        return {
            "code": 200,
            "msg": "4K Video generated successfully.",
            "data": {"taskId": task.id, "info": {"resultUrls": info["resultUrls"], "imageUrls": info["imageUrls"]}},
        }
    return {
        "code": 500,
        "msg": "The 4K version of this video is unavailable. Please try a different video.",
        "data": {"taskId": task.id, "info": None},
    }


def _callback_url(body: dict[str, Any]) -> str | None:
    value = body.get("callBackUrl")
    if value is not None and not isinstance(value, str):
        raise KieError(422, "callBackUrl must be a URL")
    return value or None


def _new_task(
    ctx: Ctx, *, model: str, body: dict[str, Any], seconds: tuple[float, float], meta: dict[str, Any]
) -> Task:
    uhd = meta["variant"] == "4k"
    return ctx.new_task(
        family="veo",
        model=model,
        kind="video",
        body=body,
        seconds=seconds,
        callback_url=_callback_url(body),
        meta=meta,
        callback=uhd_callback_body if uhd else callback_body,
    )


def video_files(aspect: str, *, extension_of: Task | None = None) -> dict[str, MediaFile]:
    """A Veo task's videos. An extension's new part plays ``EXTEND_SECONDS``, and its whole video (``full-0.mp4``)
    its source's whole video and then that part, so a saved extension measures what KIE's would."""
    part = EXTEND_SECONDS if extension_of is not None else None
    files = {"0.mp4": MediaFile("video", "mp4", aspect, seconds=part)}
    if aspect != "16:9":
        files["origin-0.mp4"] = MediaFile("video", "mp4", aspect, seconds=part)
    if extension_of is not None:
        before, _ = video_shape(extension_of)
        files["full-0.mp4"] = MediaFile("video", "mp4", aspect, seconds=(before or SHIPPED_SECONDS) + EXTEND_SECONDS)
    return files


def _upgrade_of(task: Task, aspect: str, *, ready_at: float | None = None) -> MediaFile:
    """The 1080p or 4K version of ``task``'s whole video: as long as it, with its sound."""
    seconds, sound = video_shape(task)
    return MediaFile("video", "mp4", aspect, ready_at=ready_at, seconds=seconds, sound=sound)


def _price(sim: Simulator, model: str, wire: dict[str, Any], fallback: float) -> float:
    """Credits for a follow-up from its catalogue entry (and any price override), else ``fallback``."""
    spec = load_catalog().get(model)
    return sim.price(spec, wire) if spec is not None else fallback


def typical_seconds(model: str) -> tuple[float, float]:
    spec = load_catalog().get(model)
    return (float(spec.typical_seconds[0]), float(spec.typical_seconds[1])) if spec else FALLBACK_SECONDS


def _source(ctx: Ctx, task_id: Any) -> Task:
    """A finished, successful Veo task of the caller's account, or the errors Veo answers with."""
    if not isinstance(task_id, str) or not task_id:
        raise KieError(422, "taskId is required")
    task = ctx.sim.get_task(task_id, family="veo")
    if task is None or task.account != ctx.account:
        raise KieError(422, RECORD_NULL)
    if success_flag(task, ctx.sim.now()) != 1:
        raise KieError(422, NOT_SUCCESS)
    return task


async def generate(ctx: Ctx) -> Response:
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    model = body.get("model") or DEFAULT_MODEL
    spec = model_spec(model, "veo")
    wire = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    if "aspectRatio" in wire:  # KIE's docs disagree on the name; accept both
        camel = wire.pop("aspectRatio")
        wire.setdefault("aspect_ratio", camel)
    wire = apply_defaults(spec, wire)
    problems = check_input(spec, wire)
    if problems:
        raise KieError(422, describe_problems(spec.id, problems))
    aspect = str(wire.get("aspect_ratio", "16:9"))
    meta = {"variant": "generate", "aspect": aspect, "resolution": str(wire.get("resolution", "720p"))}
    task = _new_task(ctx, model=spec.id, body=body, seconds=typical_seconds(spec.id), meta=meta)
    task.files = video_files(aspect)
    # KIE's record-info example of a plain generation carries fullResultUrls ("Full video URLs after extended",
    # required in its schema) beside a resultUrls of another link (docs.kie.ai/veo3-api/get-veo-3-video-details,
    # OpenAPI example, read 2026-12): the same clip under a second link, as here.
    task.files["full-0.mp4"] = task.files["0.mp4"]
    ctx.commit_task(task, sim.price(spec, wire))
    return ctx.ok({"taskId": task.id})


async def record_info(ctx: Ctx) -> Response:
    # Live, an unknown task: 422 "Record not found for taskId: <id>" (justintanner/apicity
    # kie/veo/record-info-not-found, 2026-07-03).
    unknown = f"Record not found for taskId: {ctx.query('taskId')}"
    task = ctx.polled_task("veo", unknown, expired="Temporarily supports records within 14 days")
    data = record(ctx.sim, task, ctx.base_url)
    return ctx.task_record(data, failed=data["successFlag"] in (2, 3))


def _index(raw: Any) -> int:
    try:
        index = int(raw if raw not in (None, "") else 0)
    except (TypeError, ValueError):
        raise KieError(422, "index must be an integer") from None
    if index != 0:  # one clip per Veo task
        raise KieError(422, f"index {index} is out of range; this record has 1 video")
    return index


async def get_1080p(ctx: Ctx) -> Response:
    """Synchronous-ish upgrade: the first ask starts it (5 credits), later asks get the URL once ready."""
    sim = ctx.sim
    task_id = ctx.query("taskId")
    if not task_id:
        raise KieError(400, "taskId parameter is required")
    sim.admit_poll(ctx.key)
    task = _source(ctx, task_id)
    index = _index(ctx.query("index"))
    if task.meta["variant"] == "4k":
        raise KieError(422, "1080P is only available for generated or extended videos")
    if task.meta["resolution"] in ("1080p", "4k"):
        return ctx.ok({"resultUrl": file_url(ctx.base_url, task, f"{index}.mp4")})
    name = f"1080p-{index}.mp4"
    if "hd_started" not in task.meta:
        sim.charge(ctx.account, ctx.key, _price(sim, HD_MODEL, {"taskId": task.id, "index": index}, HD_CREDITS))
        now = sim.now()
        task.meta["hd_started"] = now
        ready = now + sim.duration_for(f"{task.id}/1080p", *HD_SECONDS)
        task.files[name] = _upgrade_of(task, task.meta["aspect"], ready_at=ready)
    if sim.now() < task.meta["hd_started"] + sim.config.hd_blank_seconds:
        raise KieError(422, HD_BLANK)  # started (and charged), its record not written yet: ask again later
    if sim.now() < (task.files[name].ready_at or 0.0):
        raise KieError(400, HD_PROCESSING)
    return ctx.ok({"resultUrl": file_url(ctx.base_url, task, name)})


async def get_4k(ctx: Ctx) -> Response:
    """A separate task (120 credits) that finishes in 5-10 min. Asked again for the same clip, KIE answers 422 with
    the 4K task it has ("4k is processing ...", or with its result once done): nothing new, nothing charged."""
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    source = _source(ctx, body.get("taskId"))
    _index(body.get("index"))
    if source.meta["variant"] == "4k":
        raise KieError(422, "4K is only available for generated or extended videos")
    existing = sim.get_task(source.meta.get("uhd_task") or "", family="veo")
    if existing is not None:
        if success_flag(existing, sim.now()) == 1:
            info = _response(existing, ctx.base_url)
            urls = {"resultUrls": info["resultUrls"], "imageUrls": info["imageUrls"]}
            if sim.config.uhd_repeat == "bare":
                return envelope(sim, 422, UHD_DONE, None)
            named = source.id if sim.config.uhd_repeat == "source" else existing.id
            return envelope(sim, 422, UHD_DONE, {"taskId": named, **urls})
        if not existing.is_done(sim.now()):
            return envelope(sim, 422, UHD_PROCESSING, {"taskId": existing.id, "resultUrls": None, "imageUrls": None})
    meta = {"variant": "4k", "aspect": source.meta["aspect"], "resolution": "4k", "parent": source.id}
    task = _new_task(ctx, model=source.model, body=body, seconds=UHD_SECONDS, meta=meta)
    task.files = {
        "0.mp4": _upgrade_of(source, source.meta["aspect"]),
        "cover-0.jpg": MediaFile("image", "jpg", source.meta["aspect"]),
    }
    ctx.commit_task(task, _price(sim, UHD_MODEL, {"taskId": source.id, "index": 0}, UHD_CREDITS))
    source.meta["uhd_task"] = task.id
    named = source.id if sim.config.uhd_names_source else task.id
    return ctx.ok({"taskId": named, "resultUrls": None, "imageUrls": None})


async def extend(ctx: Ctx) -> Response:
    """A new Veo task continuing a successful, Veo-generated clip that was not upgraded to 1080p."""
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise KieError(422, "prompt is required")
    choice = body.get("model") or "fast"
    if choice not in EXTEND_MODELS:
        raise KieError(422, f"model must be one of {', '.join(EXTEND_MODELS)}; got {choice!r}")
    seeds = body.get("seeds")
    if seeds is not None and (not isinstance(seeds, int) or isinstance(seeds, bool) or not 10000 <= seeds <= 99999):
        raise KieError(422, "seeds must be an integer from 10000 to 99999")
    source = _source(ctx, body.get("taskId"))
    if source.meta["variant"] == "4k":
        raise KieError(422, "Only videos generated by Veo can be extended")
    if "hd_started" in source.meta:
        raise KieError(422, "Videos upgraded to 1080P cannot be extended")
    timing_model, credits = EXTEND_MODELS[choice]
    credits = _price(sim, EXTEND_MODEL, {"model": choice}, credits)
    meta = {
        "variant": "extend",
        "aspect": source.meta["aspect"],
        "resolution": source.meta["resolution"],
        "parent": source.id,
    }
    task = _new_task(ctx, model=timing_model, body=body, seconds=typical_seconds(timing_model), meta=meta)
    task.files = video_files(source.meta["aspect"], extension_of=source)
    ctx.commit_task(task, credits)
    return ctx.ok({"taskId": task.id})


ROUTES = [
    SimRoute(GENERATE_PATH, "POST", "create", generate),
    SimRoute(STATUS_PATH, "GET", "status", record_info),
    SimRoute(HD_PATH, "GET", "status", get_1080p),
    SimRoute(UHD_PATH, "POST", "create", get_4k),
    SimRoute(EXTEND_PATH, "POST", "create", extend),
]
