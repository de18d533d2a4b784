"""Market ("jobs") family: ``POST /api/v1/jobs/createTask`` and ``GET /api/v1/jobs/recordInfo`` (kie-api.md §2).

Veo 3.1 is here too in KIE's unified form (``{"model": "veo-3-1", "input": {"model": <tier>, ...}}``, the catalogue's
``unified`` tables): a Market task with the Veo clips, whose ``resultJson`` is ``{"resultUrls"}`` at 720p and
``{"data": {"result_urls", "origin_urls"}}`` at 1080p and 4K, as KIE answers."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from starlette.responses import Response

from kie_mcp.catalog import ModelSpec, apply_defaults, check_input, load_catalog

from .context import Ctx, describe_problems, model_spec, number
from .errors import KieError
from .followups import check_segment_source, market_source
from .routes import SimRoute
from .state import REPORTED_CHARGE, MediaFile, Simulator, Task
from .veo import DEFAULT_MODEL as VEO_DEFAULT_TIER
from .veo import typical_seconds, video_files

CREATE_PATH = "/api/v1/jobs/createTask"
STATUS_PATH = "/api/v1/jobs/recordInfo"
MAX_OUTPUTS = 6
VEO_MODEL = "veo-3-1"  # Veo 3.1 on the unified endpoint; the tier is input.model
VEO_EXTRA_FIELDS = ("enable_fallback",)  # documented in KIE's example; no kie-mcp field, taken and ignored


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _output_count(wire: dict[str, Any]) -> int:
    for name in ("num_images", "max_images", "n"):
        value = wire.get(name)
        try:
            count = int(value) if value is not None else 0
        except (TypeError, ValueError):
            continue
        if count > 0:
            return min(count, MAX_OUTPUTS)
    return 1


def result_files(spec: ModelSpec, wire: dict[str, Any]) -> tuple[dict[str, MediaFile], dict[str, list[str]]]:
    """The files a task will produce and how they group in ``resultJson``."""
    aspect = wire.get("aspect_ratio") or wire.get("image_size")
    aspect_text = str(aspect) if aspect is not None else None
    if spec.kind == "image":
        fmt = "jpg" if str(wire.get("output_format", "png")).lower() in ("jpg", "jpeg") else "png"
        names = [f"{i}.{fmt}" for i in range(_output_count(wire))]
        return {n: MediaFile("image", fmt, aspect_text) for n in names}, {"resultUrls": names}
    files = {"0.mp4": MediaFile("video", "mp4", aspect_text)}
    groups = {"resultUrls": ["0.mp4"]}
    if wire.get("return_last_frame") is True:
        files["first-frame.png"] = MediaFile("image", "png", aspect_text)
        files["last-frame.png"] = MediaFile("image", "png", aspect_text)
        groups["firstFrameUrl"] = ["first-frame.png"]
        groups["lastFrameUrl"] = ["last-frame.png"]
    return files, groups


def _result_json(task: Task, base: str) -> str:
    """The files' links grouped as ``groups`` says; a dotted key (``data.result_urls``) nests one level down."""
    groups: dict[str, list[str]] = task.meta["groups"]
    result: dict[str, Any] = {}
    for key, names in groups.items():
        outer, _, inner = key.rpartition(".")
        (result.setdefault(outer, {}) if outer else result)[inner] = [f"{base}/files/{task.id}/{n}" for n in names]
    return _json_text(result)


def _param(body: dict[str, Any]) -> str:
    """The request as recordInfo echoes it: JSON text whose ``input`` is JSON text too (see ``record``)."""
    rest = {name: value for name, value in body.items() if name != "input"}
    return _json_text({"input": _json_text(body.get("input")), **rest})


# What KIE answers, as recorded live on 2026-04-30 (justintanner/apicity, tests/recordings/kie_2079838932/
# bytedance-seedance-2-fast-reference-bakeoff_3020612410/recording.har), and KIE's kie-models skill ("param.input
# comes back as a string"): createTask's data is {taskId, recordId} (the same id); recordInfo's failCode, failMsg,
# costTime and completeTime are null until the task ends, failCode and failMsg stay null on success, costTime is in
# whole seconds (188 for a task whose completeTime - createTime was 187,808 ms), and param is
# {"input": "<the input as JSON text>", "model": ...}.


def record(sim: Simulator, task: Task, base: str) -> dict[str, Any]:
    """The recordInfo ``data``: JSON-string ``param``/``resultJson``, string ``failCode``, ms timestamps, as KIE
    answers (the comment above)."""
    now = sim.now()
    sim.settle(task, now)  # one instant for the whole answer: a task failed at ``now`` is refunded at ``now``
    state = task.state(now)
    done = state in ("success", "fail")
    created, completed = _ms(task.created_at), _ms(task.end_at)
    data: dict[str, Any] = {
        "taskId": task.id,
        "model": task.model,
        "state": state,
        "param": _param(task.body) if sim.config.echo_request else None,
        "resultJson": _result_json(task, base) if state == "success" else "",
        "failCode": task.fail_code if state == "fail" else None,
        "failMsg": task.fail_msg if state == "fail" else None,
        "costTime": round((completed - created) / 1000) if done else None,
        "completeTime": completed if done else None,
        "createTime": created,
    }
    if sim.config.report_update_time:
        data["updateTime"] = _ms(task.last_change(now))
    if sim.config.report_credits_consumed:
        data["creditsConsumed"] = number(task.credits_consumed)
    if state == "fail" and REPORTED_CHARGE in task.meta:  # a KIE reporting a garbage charge for a failed task
        data["creditsConsumed"] = task.meta[REPORTED_CHARGE]
    if task.model.startswith("sora-2"):
        data["progress"] = task.progress(now)
    return data


def callback_body(sim: Simulator, task: Task) -> dict[str, Any]:
    """The market callback (F-5 shape): recordInfo fields plus consumeCredits/remainedCredits."""
    data = record(sim, task, task.base_url)
    reported = data.pop("creditsConsumed", None)
    garbage = task.outcome == "fail" and REPORTED_CHARGE in task.meta
    data["consumeCredits"] = reported if garbage else number(task.credits_consumed)
    data["remainedCredits"] = number(sim.accounts[task.account].balance)
    if task.outcome == "success":
        return {"code": 200, "msg": "Playground task completed successfully.", "data": data}
    data.pop("resultJson", None)
    return {"code": 501, "msg": "Playground task failed.", "data": data}


async def create_task(ctx: Ctx) -> Response:
    body = await ctx.json_object()
    sim = ctx.sim
    sim.admit_create(ctx.account)
    model = body.get("model")
    if model == VEO_MODEL:
        return _create_veo(ctx, body)
    spec = model_spec(model, "market", sim)
    raw_input = body.get("input")
    if not isinstance(raw_input, dict):
        raise KieError(422, "input is required and must be a JSON object")
    wire = apply_defaults(spec, raw_input)
    problems = check_input(spec, wire)
    if problems:
        raise KieError(422, describe_problems(spec.id, problems))
    callback = body.get("callBackUrl")
    if callback is not None and not isinstance(callback, str):
        raise KieError(422, "callBackUrl must be a URL")
    check_segment_source(ctx, spec, wire)  # a Grok Image 2.0 segment map or edit: its task, one of that model's
    source = market_source(ctx, spec, wire)  # a follow-up job (Grok extend/upscale): its finished source, checked
    files, groups = result_files(spec, {**wire, **source.shape})
    if source.video is not None:  # an upscale plays as long as its source, with its sound
        seconds, sound = source.video
        files["0.mp4"] = replace(files["0.mp4"], seconds=seconds, sound=sound)
    task = ctx.new_task(
        family="market",
        model=spec.id,
        kind=spec.kind,
        body=body,
        seconds=spec.typical_seconds,
        callback_url=callback or None,
        files=files,
        meta={"groups": groups, **source.meta},
        callback=callback_body,
    )
    ctx.commit_task(task, sim.price(spec, {**wire, **source.facts}))
    return ctx.ok({"taskId": task.id, "recordId": task.id})


def _create_veo(ctx: Ctx, body: dict[str, Any]) -> Response:
    """A Veo 3.1 generation in KIE's unified form: the tier's catalogue model checks the input, read back into its
    own field names (its ``unified`` table); a field the form does not have (a legacy camelCase name, a seed) is
    refused as KIE refuses an unknown field, so a wrongly written body never passes."""
    sim = ctx.sim
    raw_input = body.get("input")
    if not isinstance(raw_input, dict):
        raise KieError(422, "input is required and must be a JSON object")
    tiers = {s.unified.input.get("model"): s for s in load_catalog() if s.unified and s.unified.model == VEO_MODEL}
    spec = tiers.get(raw_input.get("model", VEO_DEFAULT_TIER))
    if spec is None or spec.unified is None:
        raise KieError(422, f"input.model must be one of {', '.join(str(t) for t in tiers)}")
    route = spec.unified
    known = {route.rename.get(name, name) for name in spec.fields if name not in route.refuse}
    if unknown := sorted(set(raw_input) - known - set(route.input) - set(VEO_EXTRA_FIELDS)):
        raise KieError(422, f"input.{unknown[0]} is not a parameter of {VEO_MODEL}")
    wire = apply_defaults(spec, route.wire_of({k: v for k, v in raw_input.items() if k not in VEO_EXTRA_FIELDS}))
    if problems := check_input(spec, wire):
        raise KieError(422, describe_problems(VEO_MODEL, problems))
    callback = body.get("callBackUrl")
    if callback is not None and not isinstance(callback, str):
        raise KieError(422, "callBackUrl must be a URL")
    aspect, resolution = str(wire.get("aspect_ratio", "16:9")), str(wire.get("resolution", "720p"))
    # The Veo clips, playing as long as asked, with sound (this task's model is no catalogue entry to say so).
    seconds = float(wire["duration"])
    files = {name: replace(file, seconds=seconds, sound=True) for name, file in video_files(aspect).items()}
    if resolution == "720p":
        groups = {"resultUrls": ["0.mp4"]}
    else:
        files.setdefault("origin-0.mp4", files["0.mp4"])
        groups = {"data.result_urls": ["0.mp4"], "data.origin_urls": ["origin-0.mp4"]}
    task = ctx.new_task(
        family="market",
        model=VEO_MODEL,
        kind="video",
        body=body,
        seconds=typical_seconds(spec.id),
        callback_url=callback or None,
        files=files,
        meta={"groups": groups, "tier": spec.id, "resolution": resolution},
        callback=callback_body,
    )
    ctx.commit_task(task, sim.price(spec, wire))
    return ctx.ok({"taskId": task.id, "recordId": task.id})


async def record_info(ctx: Ctx) -> Response:
    task = ctx.polled_task("market", "recordInfo is null")
    data = record(ctx.sim, task, ctx.base_url)
    return ctx.task_record(data, failed=data["state"] == "fail")


ROUTES = [
    SimRoute(CREATE_PATH, "POST", "create", create_task),
    SimRoute(STATUS_PATH, "GET", "status", record_info),
]
