"""Market follow-up jobs (Grok Imagine extend and upscale, ``catalog/data/followups.toml``): jobs that continue a
finished task named in their input.

KIE takes only a successful task of one of its own video models, of the same account ("only videos made by KIE's
models"). The result keeps the source's shape (an upscale: its aspect, length and sound; it is the same clip at a
higher resolution), and the price depends on the source's resolution (``source.<name>`` keys in the price table), as
KIE bills it. Veo and Runway follow-ups have endpoints of their own (veo.py, runway.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kie_mcp.catalog import ModelSpec, load_catalog

from .context import Ctx
from .errors import KieError
from .state import Task, video_shape

NOT_FOUND = "recordInfo is null"
NOT_SUCCESS = "record status is not success"


@dataclass(frozen=True)
class Source:
    """What a follow-up job takes from its source task: price facts, result shape, facts for its own follow-ups."""

    facts: dict[str, Any] = field(default_factory=dict)  # price-table keys: source.resolution
    shape: dict[str, Any] = field(default_factory=dict)  # result_files keys: aspect_ratio
    meta: dict[str, Any] = field(default_factory=dict)  # kept on the new task: aspect, resolution, parent
    video: tuple[float | None, bool] | None = None  # an upgrade's: the source video's length and sound, which it keeps


NONE = Source()


def market_source(ctx: Ctx, spec: ModelSpec, wire: dict[str, Any]) -> Source:
    """The checked source of a Market follow-up job (``NONE`` for any other model), or KIE's 422."""
    follow = spec.followup
    if follow is None or follow.takes != "task":
        return NONE
    task_id = wire.get(follow.field)
    task = ctx.sim.get_task(task_id) if isinstance(task_id, str) and task_id else None
    if task is None or task.account != ctx.account:
        raise KieError(422, NOT_FOUND)
    if task.state(ctx.sim.now()) != "success":
        raise KieError(422, NOT_SUCCESS)
    if task.model not in follow.parents and "*" not in follow.parents:
        raise KieError(422, f"{spec.id} only takes tasks of {', '.join(follow.parents)}; {task_id} is {task.model}")
    resolution = _resolution(task)
    aspect = task.meta.get("aspect") or _inputs(task).get("aspect_ratio")
    meta = {"parent": task.id, "resolution": follow.gives_resolution or resolution}
    if aspect:
        meta["aspect"] = str(aspect)
    return Source(
        facts={"source.resolution": resolution} if resolution else {},
        shape={"aspect_ratio": str(aspect)} if aspect else {},
        meta={k: v for k, v in meta.items() if v},
        video=video_shape(task) if follow.result == "same" else None,
    )


# Grok Imagine Image 2.0's segment tools take a task of that model by its id (``task_id``): KIE documents "an existing
# grok-imagine-image-2-0 task" (a segment map of it, or a segment edit of a picture made or mapped there).
GROK_IMAGE_2 = "grok-imagine-image-2-0/"
SEGMENT_TOOLS = (f"{GROK_IMAGE_2}segment-map", f"{GROK_IMAGE_2}segment-edit")


def check_segment_source(ctx: Ctx, spec: ModelSpec, wire: dict[str, Any]) -> None:
    """KIE's 422 for a Grok Image 2.0 segment map or edit whose ``task_id`` names no Grok Image 2.0 task of this
    account (unknown, another account's, or another model's): nothing is created or charged."""
    if spec.id not in SEGMENT_TOOLS or "task_id" not in wire:
        return
    task_id = wire["task_id"]
    task = ctx.sim.get_task(task_id) if isinstance(task_id, str) and task_id else None
    if task is None or task.account != ctx.account:
        raise KieError(422, NOT_FOUND)
    if not task.model.startswith(GROK_IMAGE_2):
        raise KieError(422, f"{spec.id} only takes tasks of grok-imagine-image-2-0; {task_id} is {task.model}")


def _resolution(task: Task) -> str | None:
    """The source clip's resolution: what it was made at, or (as KIE does) its model's default when not asked."""
    value = task.meta.get("resolution") or _inputs(task).get("resolution")
    if not value and (spec := load_catalog().get(task.model)) is not None:
        field = spec.field_for_arg("resolution")
        value = field.default if field is not None else None
    return str(value).lower() if value else None


def _inputs(task: Task) -> dict[str, Any]:
    inner = task.body.get("input")
    return inner if isinstance(inner, dict) else {}
