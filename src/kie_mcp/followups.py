"""Follow-ups of a finished video (``continue_video``): extend it, get its 1080p or 4K version, upscale it.

Each operation is a catalogue model with a ``followup`` table (``catalog/data/followups.toml``; Topaz in
``video_more.toml``) saying which finished tasks it continues and how. This module only finds the source task,
checks that it can be continued (finished, of a model the operation takes, young enough for KIE to still have it,
not refused by KIE's rules), picks the model and fills in the request. The request then takes the one straight path
of every generation: ``generation.plan`` (validate, price) -> ``check_spend`` -> ``decide_approval`` -> ``execute``
(submit once, follow, save, record), with the source's id kept on the new task (``TaskRecord.parent_task_id``).
An extension's ``script`` (the next line) goes that way too, so it is spoken and fitted as generate_video's is
(``catalog.script``); it is refused for the upgrades, which say nothing new, and for a silent extension.
"""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

import functools
import json
import logging
import re
import time
from dataclasses import dataclass, fields
from typing import Any

import anyio
import anyio.to_thread
from pydantic import BaseModel, Field, ValidationError

from kie_mcp import generation as gen
from kie_mcp.catalog import InvalidRequest, ModelSpec, Problem
from kie_mcp.catalog.registry import AmbiguousModelError, UnknownModelError, WithdrawnModelError
from kie_mcp.catalog.spec import FieldSpec, Operation
from kie_mcp.catalog.validate import when_matches
from kie_mcp.kie import FAMILIES, KieError, TaskStatus
from kie_mcp.kie.client import NoTaskRecord
from kie_mcp.kie.envelope import loads_or_none
from kie_mcp.kie.errors import LOGS_URL, creates_nothing
from kie_mcp.kie.families import not_a_kie_id
from kie_mcp.kie.text import task_id_problem
from kie_mcp.media import saved
from kie_mcp.runtime import Runtime
from kie_mcp.tasks import TaskRecord
from kie_mcp.tasks.lost import TakenUp, take_up
from kie_mcp.tasks.records import time_left_words
from kie_mcp.toolschema import is_blank
from kie_mcp.words import timestamp

log = logging.getLogger(__name__)

TOOL = "continue_video"
OPERATIONS: dict[str, str] = {
    "extend": "continue the scene from the clip's last frame",
    "hd": "the clip's 1080p version",
    "4k": "the clip's 4K version",
    "upscale": "an upscaled copy of the clip",
}
DAY = 86400.0
MAIN_RESULT = 1  # a task's first saved result (media/results.py counts from 1): a Veo extension's whole video


class FollowupArgs(BaseModel, defer_build=True):
    """What continue_video (and estimate_cost with task_id and operation) takes."""

    task_id: str
    operation: Operation
    prompt: str | None = None
    script: str | None = None  # extend: the words spoken in the extension (generate_video's script handling)
    model: str | None = None
    resolution: str | None = None
    duration: int | None = None
    options: dict[str, Any] | None = None
    session: str | None = None
    quote_id: str | None = None
    max_credits: float | None = Field(default=None)


@dataclass(frozen=True)
class FollowupPlan(gen.Plan):
    """A planned follow-up: the generation plan, the source task, and an earlier follow-up that makes this one
    needless (a 1080p or 4K version is made once per clip: asked again, that one is returned, nothing is spent)."""

    source: TaskRecord | None = None
    existing: TaskRecord | None = None


def refused(message: str, argument: str = "task_id") -> InvalidRequest:
    """An error naming the argument and what to do; nothing was sent or charged."""
    return InvalidRequest(TOOL, [Problem(argument, message)])


# -- planning ----------------------------------------------------------------------------------------------------


async def plan(
    rt: Runtime, args: FollowupArgs, shared: tuple[Any, ...] = (), *, outputs_checked: bool = False
) -> FollowupPlan:
    """Validate and price a follow-up of ``args.task_id``; raises ``InvalidRequest`` naming the argument, costs
    nothing (a look at KIE for a task the journal does not know, or one it still shows as running, is free).
    ``outputs_checked``: as ``generation.plan`` takes it."""
    script = args.script if args.script and args.script.strip() else None
    if script is not None and args.operation != "extend":  # before any look at KIE: nothing is said in an upgrade
        raise refused(
            f"operation={args.operation} makes {OPERATIONS[args.operation]}, with nothing new said in it; script is "
            "the words spoken in an extension (operation=extend). Leave script out.",
            "script",
        )
    source = await find_source(rt, args.task_id)
    spec, chosen = pick_model(rt, source, args)
    follow = spec.followup
    assert follow is not None
    facts = source_facts(rt, source)
    check_source(rt, source, spec, facts)
    if script is not None and "audio" not in spec.capabilities:
        raise refused(
            f"{spec.title} ({spec.id}) adds silent video, as {title_of(rt, source.model)} makes, so the words would "
            "not be spoken. Say what happens in prompt and leave script out; for the line to be spoken, make it a "
            "new clip on a model with sound (generate_video with script=) and join the clips with stitch_videos.",
            "script",
        )
    existing = earlier(rt, source, spec) if follow.once else None
    options, notes = await request_options(rt, source, spec, args, chosen)
    prompt = args.prompt or ""
    if not is_blank(prompt) and spec.field_for_arg("prompt") is None:
        raise refused(f"operation={args.operation} takes no prompt ({spec.title} only upgrades the clip).", "prompt")
    if is_blank(prompt) and spec.field_for_arg("prompt") is not None and follow.default_prompt:
        prompt = follow.default_prompt
        if script is None:
            notes.append(f'No prompt was given, and KIE requires one: sending "{prompt}"')
        else:
            notes.append(f'No prompt was given: the scene is "{prompt}", and the script\'s words follow it.')
    generation = gen.GenerationArgs(
        model=spec.id,
        prompt=prompt,
        script=script,
        resolution=args.resolution,
        duration=args.duration,
        options=options,
        session=args.session or source_label(rt, source),
        quote_id=args.quote_id,
        max_credits=args.max_credits,
    )
    try:
        p = await gen.plan(
            rt,
            generation,
            shared=shared,
            facts=facts,
            continues=(str(source.task_id), args.operation),
            outputs_checked=outputs_checked,
        )
    except InvalidRequest as err:
        raise source_refused(err, source, spec, options.get(follow.field)) from None
    pinned_resolution(spec, p.wire, args.operation)
    lead = (
        f"Continues task {source.task_id} ({_made_by(rt, source)}, made {timestamp(source.created_at)}): "
        f"{OPERATIONS[args.operation]} with {spec.title}."
    )
    if follow.note:
        notes.append(follow.note)
    if existing is not None:
        notes.append(
            f"Task {source.task_id} already has this: task {existing.task_id} ({existing.state}); continue_video "
            "returns it without asking KIE again or spending anything."
        )
    values = {f.name: getattr(p, f.name) for f in fields(gen.Plan)}
    values["notes"] = (lead, *notes, *p.notes)
    return FollowupPlan(**values, source=source, existing=existing)


async def find_source(rt: Runtime, task_id: str) -> TaskRecord:
    """The task to continue, as fresh as can be: the follower's copy, the journal's, or KIE's answer for a task this
    workspace does not know yet (recorded from then on). One look at KIE when it is still shown as unfinished."""
    task_id = task_id.strip()
    if not task_id:
        raise refused("is empty; give the id of a finished video task (generate_video, check_task, list_tasks).")
    if (problem := task_id_problem(task_id)) is not None:  # one holding a key is never put into a status URL
        raise refused(f"{problem}; nothing was asked of KIE. Give the id of a finished video task.")
    record = rt.follower.known(task_id) or rt.tasks.get(task_id)
    looked = False
    if record is None:
        if (problem := not_a_kie_id(task_id)) is not None:  # a link, quotes, JSON: each family asked for nothing
            raise refused(f"{problem}; nothing was asked of KIE. Give the id of a finished video task.")
        try:
            status = await rt.require_kie().find_task(task_id, seen=rt.tasks.families_seen())
        except KieError as err:
            if not unknown_to_kie(err):  # the look failed (a server error, the key): that, not "no such task"
                raise lookup_failed(task_id, err) from err
            raise refused(
                f"KIE knows no task {task_id!r} ({err.message}). Use the id of a video task from generate_video, "
                "check_task or list_tasks; KIE keeps tasks for 14 days."
            ) from err
        taken = await found_elsewhere(rt, task_id, status)
        if taken.words:  # this answer has no place for what became of a create of unknown outcome: the log says it
            log.info("continue_video of task %s: %s", task_id, taken.words)
        record, looked = taken.record, True
        if record.finished:  # made elsewhere and done: the follower saves its results, as for kie://tasks/{id}
            return await rt.follower.follow(record, looked=True)
    if not record.finished and rt.kie is not None:
        record = (await rt.follower.check(record, 0, looked=looked)).record
    return record


def unknown_to_kie(err: KieError) -> bool:
    """Whether KIE's answer to a status check says it has no such task: a refusal with 404 or 422 ("record is
    null"), an answer of "success" with no record (``NoTaskRecord``), or a refusal in the words KIE uses for a task
    it does not show. Anything else (a server error, maintenance, the key, the network) is a failed look."""
    if isinstance(err, NoTaskRecord):
        return True
    if err.retryable:
        return False
    return err.code in (404, 422) or any(family.is_not_visible(err.message) for family in FAMILIES.values())


def lookup_failed(task_id: str, err: KieError) -> KieError:
    """A status check of ``task_id`` that failed, in words for it: what KIE answered, that nothing was sent or
    charged, and what to do (the key or its cap when KIE says so; otherwise to try again)."""
    return creates_nothing(
        err,
        f"KIE's status check of task {task_id} failed, so the task could not be looked up; nothing was sent or "
        "charged.",
        f"Try again in a minute; if it keeps failing, see the task on {LOGS_URL}.",
    )


def made_elsewhere(rt: Runtime, task_id: str, status: TaskStatus) -> TaskRecord:
    """The record of a task this workspace did not create, as KIE describes it: dated when KIE says it was made (so
    the 14-day limit of follow-ups holds for it, and the journal keeps KIE's date, not the day it was first looked
    up), or now when KIE's answer carries no usable time (``TaskRecord.undated``: its age is not known). The one
    construction of such a record (check_task's too)."""
    model = status.model or "unknown"
    spec = rt.catalog.get(model)
    family = status.family
    # A clip made on KIE's unified endpoint under a catalogued model's unified id (Veo 3.1's "veo-3-1", its tier
    # inside the request): of that route, whose follow-ups kie-mcp refuses, never a Market task of an unknown model.
    unified = next((s for s in rt.catalog.offered() if s.unified is not None and s.unified.model == model), None)
    if unified is not None and status.family == "market":
        family = gen.UNIFIED_FAMILIES.get(unified.family, family)
        tier = rt.catalog.get(_unified_tier(status) or "")
        if tier is not None and tier.unified is not None and tier.unified.model == model:
            model, spec = tier.id, tier  # the tier the request named (input.model), as kie-mcp records its own
        spec = spec or unified
    now = time.time()
    made = status.created_at(now)
    record = TaskRecord(
        task_id=task_id,
        model=model,
        family=family,
        kind=spec.kind if spec else None,
        state="queued",
        sandbox=rt.settings.sandbox,
        created_at=made or now,
    )
    if made is None:  # its age is not known: the follower looks at it as at a task made now (``Follower._add``)
        record.mark_undated()
    record.apply(status, rt.typical_seconds(model), rt.links_kept(model))
    return record


async def found_elsewhere(rt: Runtime, task_id: str, status: TaskStatus) -> TakenUp:
    """Record a task KIE describes in ``status`` that the journal did not know (``made_elsewhere``): as the task of
    the create of unknown outcome that made it (its answer lost), when exactly that create can have
    (``tasks.lost``), else on its own. Written in a worker thread while another program holds the journal's lock;
    ``kie://tasks`` subscribers hear when a create is no longer of unknown outcome."""
    record = made_elsewhere(rt, task_id, status)
    taken = await rt.journal.off_loop_when_locked(functools.partial(take_up, rt, record, status))
    if taken.linked:
        await rt.follower.unknown_creates_changed()
    return taken


def _unified_tier(status: TaskStatus) -> str | None:
    """The model a unified create named inside its input (Veo 3.1's tier, ``veo3_fast``), from the request KIE
    echoes in its status answer (``param``, JSON text whose ``input`` may be JSON text too); None when it does not
    say (also when that text is not JSON, or nests deeper than any request of KIE's)."""
    found: Any = (status.raw or {}).get("param")
    for key in (None, "input", "model"):
        if isinstance(found, str):
            found = loads_or_none(found)  # never json.loads: text nested too deep raises RecursionError
        if key is not None:
            found = found.get(key) if isinstance(found, dict) else None
    return found if isinstance(found, str) else None


def pick_model(rt: Runtime, source: TaskRecord, args: FollowupArgs) -> tuple[ModelSpec, dict[str, Any]]:
    """The model that performs ``args.operation`` on the source, and option defaults that ``args.model`` implies
    (``model="veo3"`` for a Veo extension means the quality tier)."""
    op = args.operation
    candidates = [s for s in rt.catalog.offered() if s.followup is not None and s.followup.operation == op]
    fits = sorted((s for s in candidates if takes(s, source)), key=lambda s: "*" in _parents(s))
    if not fits:
        raise refused(wrong_source(rt, source, op, candidates), "operation")
    if not args.model:
        return fits[0], {}
    wanted = args.model.strip()
    try:
        named = rt.catalog.resolve(wanted)
    except (UnknownModelError, AmbiguousModelError, WithdrawnModelError):
        named = None
    if named is not None and named in fits:
        return named, {}
    if named is not None and named in candidates:
        raise refused(
            f"{named.id} does operation={op} for tasks of {listing(rt, _parents(named))}, not for "
            f"{title_of(rt, source.model)}. For this task use model={' or '.join(s.id for s in fits)}.",
            "model",
        )
    for spec in fits:  # a source model or a tier name that picks this model's option (Veo: veo3 -> quality)
        implied = spec.followup.by_parent.get(named.id) if named is not None and spec.followup else None
        if implied:
            return spec, dict(implied)
        tier = spec.fields.get("model")
        if tier is not None and tier.values and wanted.lower() in [str(v).lower() for v in tier.values]:
            return spec, {"model": wanted.lower()}
    raise refused(
        f"{wanted!r} does not do operation={op} on this task. Use model={' or '.join(s.id for s in fits)}"
        + _tiers(fits)
        + ", or leave model out.",
        "model",
    )


def takes(spec: ModelSpec, source: TaskRecord) -> bool:
    """Whether ``spec`` continues tasks like ``source`` (its model is one of the follow-up's sources; "*": any
    video). A Veo clip made outside kie-mcp whose record does not name its model (KIE's record-info shows the
    request's parameters, which need not name it) is taken by a follow-up of Veo clips only: it is one of them,
    and KIE refuses, free, what it cannot continue."""
    parents = _parents(spec)
    if source.model in parents or ("*" in parents and source.kind in ("video", None) and is_video(source)):
        return True
    return _unnamed_veo(source) and spec.family in VEO_FOLLOWUPS


def is_video(source: TaskRecord) -> bool:
    return source.kind == "video" or any(_is_video_url(u) for u in source.result_urls)


def check_source(rt: Runtime, source: TaskRecord, spec: ModelSpec, facts: dict[str, Any]) -> None:
    """Refuse, naming what to do, a source that cannot be continued: unfinished, failed, too old, or one KIE's
    rules exclude (a Veo clip upgraded to 1080p cannot be extended, a 1080p clip has no 1080p version ...)."""
    follow = spec.followup
    assert follow is not None
    tid = source.task_id
    if source.state in ("queued", "running"):
        left = f", {time_left_words(source.eta_seconds, source.sandbox)}" if source.eta_seconds else ""
        raise refused(
            f"task {tid} is still {source.state}{left}; call check_task(task_id='{tid}', wait_seconds=50) until it "
            "has succeeded, then continue it."
        )
    if source.state == "succeeded_without_results":
        raise refused(
            f"KIE says task {tid} succeeded but has sent no result link yet; call check_task(task_id='{tid}') again "
            "in a few minutes, then continue it."
        )
    if source.state != "succeeded":
        why = f" ({source.error})" if source.error else ""
        raise refused(f"task {tid} {source.state}{why}; there is no video to continue. Make it again instead.")
    if follow.max_age_days is not None and follow.takes == "task":
        age = time.time() - source.created_at
        if age > follow.max_age_days * DAY:
            raise refused(
                f"task {tid} was made {age / DAY:.0f} days ago, and KIE keeps a task {follow.max_age_days:g} days, "
                "so it can no longer be continued there. Use operation=upscale (it works on the saved file), or "
                "make the clip again."
            )
    for rule in follow.refuse:
        later = [c for c in children(rt, source) if c.model in rule.after and c.state != "failed"]
        if (rule.after and later) or (rule.when and when_matches(rule.when, facts)):
            raise refused(f"task {tid}: {rule.message}", "operation")


async def request_options(
    rt: Runtime, source: TaskRecord, spec: ModelSpec, args: FollowupArgs, chosen: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The follow-up's options: defaults from the source (its model, its settings), what ``model`` implied, the
    caller's ``options``, and the source itself in the follow-up's field."""
    follow = spec.followup
    assert follow is not None
    params = source_params(rt, str(source.task_id))
    defaults: dict[str, Any] = dict(follow.by_parent.get(source.model, {}))
    for target, name in follow.from_parent.items():
        field, value = spec.fields.get(target), params.get(name)
        if field is not None and value is not None and (not field.values or value in field.values):
            defaults[target] = value
    defaults.update(chosen)
    spoken = True if args.script and args.script.strip() else None  # a script turns the sound on, as in generate_video
    for arg, given in (
        ("resolution", args.resolution),
        ("duration", args.duration),
        ("prompt", args.prompt),
        ("audio", spoken),
    ):
        target = spec.field_for_arg(arg)
        if given is not None and target is not None:
            defaults.pop(target.name, None)  # the caller's argument wins over a default from the source
    options = {**defaults, **(args.options or {})}
    if follow.field in (args.options or {}):
        raise refused(f"continue_video fills {follow.field} in from task_id; leave it out.", f"options.{follow.field}")
    notes: list[str] = []
    if follow.takes == "task":
        options[follow.field] = source.task_id
    else:
        options[follow.field], where = await source_clip(rt, source, spec)
        notes.append(f"The source clip goes to {spec.title} as {where}.")
    return options, notes


async def source_clip(rt: Runtime, source: TaskRecord, spec: ModelSpec) -> tuple[str, str]:
    """The source's video for a model that takes a clip: its main saved file (its first result, the one
    ``stitch_videos`` joins for it), uploaded after approval. Never a later file in its place: a Veo extension's
    second file is only its new part, so an upscale of it would be paid for and then stand for the whole video in
    chain joins. Never its result link: KIE's links expire, and one KIE can no longer fetch would be a paid task that
    can only fail (its length, and so the price, cannot be measured either); ``check_task`` saves the clip again
    from a fresh link. Never a file changed since it was saved (``saved.kept``): another video would be priced,
    sent and recorded as this task's continuation."""
    main = next((row for row in rt.journal.files_for(str(source.task_id)) if row["idx"] == MAIN_RESULT), None)
    state = "missing"
    if main is not None:
        path = rt.settings.workspace / main["path"]
        state = await anyio.to_thread.run_sync(saved.kept, path, main["size"], main["sha256"])  # reads a video
    if main is not None and state == "kept":
        return main["path"], f"the saved file {main['path']} (uploaded to KIE once approved)"
    if main is not None and state == "changed":
        follow = spec.followup
        assert follow is not None
        edited = (
            f"give its path to generate_video(model='{spec.id}', options={{'{follow.field}': '<its path>'}}) "
            "(it is then a new video, not a continuation of this task)."
            if follow.standalone
            else f"{spec.title} continues only a task's own clip; the changed copy cannot be sent in its place."
        )
        raise refused(saved.changed_file(str(source.task_id), main["path"], edited))
    if not rt.settings.download:  # no copy is kept, and KIE's result links expire (within the hour, at times)
        raise refused(
            f"task {source.task_id}'s video is not saved: downloads are off (KIE_DOWNLOAD=never), and its result "
            "link may have expired (a task KIE cannot fetch its clip for fails after it is paid for). Set "
            f"KIE_DOWNLOAD=always and call check_task(task_id='{source.task_id}') to save it, then continue it."
        )
    if main is not None:
        missing = f"is not saved in this workspace any more ({main['path']} is not there)"
    elif source.files:  # a later file (a Veo extension's new part) was saved, its main video not
        missing = "is not saved in this workspace: its main video (its first result) was not saved"
    else:
        missing = "has no saved video yet"
    raise refused(
        f"task {source.task_id} {missing}, and its result link may have expired (a task KIE cannot fetch its clip "
        f"for fails after it is paid for). Call check_task(task_id='{source.task_id}') to save it again from a "
        "fresh link, then continue it."
    )


def source_refused(err: InvalidRequest, source: TaskRecord, spec: ModelSpec, given: Any) -> InvalidRequest:
    """``err`` (the follow-up's request refused) with each problem of the field continue_video fills in from task_id
    (``given``: the source's saved clip, or its id) named for what the user gave, task_id: which file it is, and what
    to do, as that file is what continue_video sends. Its other problems pass through as they are."""
    follow = spec.followup
    assert follow is not None
    own = re.compile(rf"(?:options\.)?{re.escape(follow.field)}(?:[\[.]|$)")
    problems = []
    for problem in err.problems:
        if not own.match(problem.field):
            problems.append(problem)
        elif follow.takes == "task":
            problems.append(Problem("task_id", problem.message))
        else:
            todo = (
                f"give a fixed copy to generate_video(model='{spec.id}', options={{'{follow.field}': '<the copy>'}}) "
                "instead"
                if follow.standalone
                else f"replace {given} with a fixed copy, then ask again"
            )
            todo = f"continue_video always sends that saved file: {todo}."
            said = f"task {source.task_id}'s saved clip ({given}), which continue_video sends to {spec.id} for it, "
            problems.append(Problem("task_id", f"{said}cannot be used: {problem.message} {todo}"))
    return InvalidRequest(err.model, problems)


def source_facts(rt: Runtime, source: TaskRecord) -> dict[str, Any]:
    """The source's settings a follow-up's price or rules depend on, as ``source.<name>`` (price-table keys)."""
    resolution = source_resolution(rt, source)
    facts: dict[str, Any] = {"source.resolution": resolution} if resolution else {}
    family = FAMILIES.get(source.family)
    if family is not None and family.route is not None:  # made through KIE's unified endpoint (KIE_VEO_ROUTE)
        facts["source.route"] = family.route
    return facts


def source_resolution(rt: Runtime, record: TaskRecord) -> str | None:
    """The source clip's resolution: an upgrade's own (1080p, 4k), else the setting it was made with, else (for an
    extension) its own source's; None when it cannot be told."""
    node: TaskRecord | None = record
    for _ in range(50):  # a chain is short; a hand-edited journal must not loop forever
        if node is None or node.task_id is None:
            return None
        spec = rt.catalog.get(node.model)
        follow = spec.followup if spec else None
        if follow is not None and follow.gives_resolution:
            return follow.gives_resolution
        if follow is not None and follow.result == "same":
            return None  # an upscale by some factor: its resolution is not a setting
        field = spec.field_for_arg("resolution") if spec else None
        value = source_params(rt, node.task_id).get(field.name) if field else None
        if value is not None:
            return str(value).lower()
        if follow is None or node.parent_task_id is None:
            return None
        node = rt.tasks.get(node.parent_task_id)
    return None


def source_params(rt: Runtime, task_id: str) -> dict[str, Any]:
    """The request (wire input) kie-mcp sent to create ``task_id``; empty for a task made elsewhere."""
    rows = rt.journal.query(
        "SELECT params FROM attempts WHERE task_id = ? AND params IS NOT NULL ORDER BY created DESC LIMIT 1", task_id
    )
    try:
        params = json.loads(rows[0]["params"]) if rows else {}
    except (TypeError, ValueError):
        return {}
    return params if isinstance(params, dict) else {}


def source_label(rt: Runtime, source: TaskRecord) -> str | None:
    """The source's session (or prompt), so its follow-ups are saved in the same folder."""
    row = rt.journal.task_row(str(source.task_id))
    if row is None:
        return None
    return row["session"] or row["prompt"] or None


def children(rt: Runtime, source: TaskRecord, model: str | None = None) -> list[TaskRecord]:
    """The recorded follow-ups of ``source``, oldest first."""
    return _children_of(rt, str(source.task_id), model)


def _children_of(rt: Runtime, source_id: str, model: str | None = None) -> list[TaskRecord]:
    found = []
    for row in rt.journal.children(source_id, model):
        try:
            record = rt.follower.known(row["task_id"]) or TaskRecord.model_validate_json(row["record"])
        except ValidationError:  # a row this kie-mcp cannot read (a newer one wrote it): not one of these
            log.warning("skipped follow-up %s of %s: its journal row cannot be read", row["task_id"], source_id)
            continue
        found.append(record)
    return found


def earlier(rt: Runtime, source: TaskRecord, spec: ModelSpec) -> TaskRecord | None:
    """A made-once follow-up (1080p, 4K) the source already has and that did not fail: the newest."""
    return made_before(rt, str(source.task_id), spec)


def made_before(rt: Runtime, source_id: str, spec: ModelSpec) -> TaskRecord | None:
    """The newest recorded follow-up of ``source_id`` by ``spec`` that did not fail and was made at the resolution
    it stands for (a Grok upscale asked at 720p, as older kie-mcp allowed, is not the clip's 1080p version)."""
    alive = [c for c in _children_of(rt, source_id, spec.id) if c.state != "failed" and _made_as_meant(rt, c, spec)]
    return alive[-1] if alive else None


def _resolution_field(spec: ModelSpec) -> FieldSpec | None:
    """The field a follow-up's target resolution is sent in (the ``resolution`` argument's, else one so named)."""
    return spec.field_for_arg("resolution") or spec.fields.get("resolution")


def _made_as_meant(rt: Runtime, record: TaskRecord, spec: ModelSpec) -> bool:
    follow = spec.followup
    target = _resolution_field(spec)
    if follow is None or not follow.gives_resolution or target is None or record.task_id is None:
        return True
    sent = source_params(rt, record.task_id).get(target.name)
    return sent is None or str(sent).lower() == follow.gives_resolution.lower()


def pinned_resolution(spec: ModelSpec, wire: dict[str, Any], operation: str) -> None:
    """A made-once upgrade stands for one resolution (``gives_resolution``: hd is the 1080p version): asked for at
    another, it would be made once in the clip's place and the real one never could be. Refused by name."""
    follow = spec.followup
    target = _resolution_field(spec)
    if follow is None or not follow.once or not follow.gives_resolution or target is None:
        return
    given = wire.get(target.name)
    if given is not None and str(given).lower() != follow.gives_resolution.lower():
        raise refused(
            f"operation={operation} makes the clip's {follow.gives_resolution} version, once; {target.name}={given} "
            f"would be another. Leave {target.name} out.",
            "resolution",
        )


# -- the answer of a follow-up that already exists -----------------------------------------------------------------


async def existing_result(
    rt: Runtime, p: FollowupPlan, *, wait: gen.Wait, progress: gen.Progress | None = None
) -> gen.GenerationResult:
    """The earlier follow-up, returned instead of a new request: nothing asked, sent or charged. Still running, it
    is waited on for what is left of ``wait`` as a new one would be (by whichever server on the workspace follows
    it)."""
    assert p.existing is not None
    assert p.source is not None
    record, problems = p.existing, []
    if not record.finished and rt.kie is not None:
        record = await rt.follower.follow(record)
        if (seconds := wait.left()) > 0 and not record.finished:
            reporter = gen.ProgressReporter(progress, 1) if progress is not None else None
            [record], problems = await rt.follower.wait([record], seconds, reporter)
    note = (
        f"Task {p.source.task_id} already has this ({p.spec.title}): task {record.task_id}. Nothing new was "
        "requested or charged."
    )
    return gen.summarise(rt, p.spec, [record], (note, *problems))


def existing_estimate(p: FollowupPlan) -> str:
    """What estimate_cost says of a follow-up the source already has: it costs nothing, continue_video returns the
    earlier one, and there is no quote, for there is nothing to approve (a quote here could only approve a real
    create, should that one fail meanwhile: continue_video then prices it again and asks as always)."""
    assert p.existing is not None
    assert p.source is not None
    operation = p.operation or "that"
    return (
        f"0 credits: task {p.source.task_id} already has this ({OPERATIONS.get(operation, 'its follow-up')}, "
        f"{p.spec.title}): task {p.existing.task_id} ({p.existing.state}). "
        f"continue_video(task_id='{p.source.task_id}', operation='{operation}') returns it, or check_task"
        f"(task_id='{p.existing.task_id}') shows it; nothing is sent to KIE or charged, so there is no quote_id and "
        "nothing to approve."
    )


# -- chains --------------------------------------------------------------------------------------------------------


def chain_clips(rt: Runtime, task_id: str) -> list[str]:
    """The task ids whose saved videos, joined in this order, play the chain that ends with ``task_id``: the first
    clip, then each extension's new part; an upgrade (1080p, 4K, upscale) in place of the clip it upgrades; an
    extension whose result holds the whole video so far (Veo) in place of everything before it."""
    order: list[str] = []
    node = rt.tasks.get(task_id)
    seen: set[str] = set()
    while node is not None and node.task_id is not None and node.task_id not in seen:
        seen.add(node.task_id)
        order.insert(0, node.task_id)
        content = footage_of(rt, node)
        if _result(rt, content) != "part" or content.parent_task_id is None:
            break  # a first clip, or an extension whose video already holds everything before it
        node = rt.tasks.get(content.parent_task_id)
    return order


def footage_of(rt: Runtime, record: TaskRecord) -> TaskRecord:
    """The clip whose footage ``record``'s video shows: an upgrade (1080p, 4K, upscale) shows the clip it upgrades,
    up through upgrades of upgrades; anything else, itself."""
    content, seen = record, {record.task_id}
    while _result(rt, content) == "same" and content.parent_task_id and content.parent_task_id not in seen:
        upgraded = rt.tasks.get(content.parent_task_id)
        if upgraded is None:
            break
        seen.add(upgraded.task_id)
        content = upgraded
    return content


def chain_overlap(chains: list[tuple[str, list[str]]]) -> str | None:
    """With chain=true, a task id two listed clips' chains both bring (``chains``: each listed clip with its chain,
    from ``chain_clips``) would play twice: the refusal, naming it and what to list instead. A clip listed twice on
    purpose plays twice."""
    seen: dict[str, str] = {}
    for listed, chain in chains:
        for link in chain:
            if link in seen and seen[link] != listed:
                return (
                    f"With chain=true each task id brings its whole chain, and {link} is in the chains of both "
                    f"{seen[link]} and {listed}, so it would play twice. List only the last task id of each chain. "
                    "Nothing was written."
                )
            seen.setdefault(link, listed)
    return None


def join_check(rt: Runtime, clips: list[str], *, chained: bool = False) -> tuple[str | None, list[str]]:
    """What joining ``clips`` (as ``stitch_videos`` gets them) would get wrong about follow-ups: a clip whose footage
    another listed clip already holds (a Veo extension's video is the whole video before it; an upgrade is its clip,
    so the 4K version of a clip is held by that clip's Veo extension too) would play twice: the refusal. A listed clip
    extended later, with no extension of it in the join, ends the join before that extension, and a listed clip with
    a finished upgrade (1080p, 4K, upscale) left out joins the footage at the quality before the paid upgrade: a note
    naming each. ``chained``: ``clips`` is what chain=true made of the listed ids, so advice gives the whole list to
    pass with chain=false (chain=true would bring a clip back). An extension whose video holds only its new part
    (the catalogue's ``result = "part"``: Runway, Grok, PixVerse), with the clip it continues not before it, joins that
    part without its start: a note saying what to pass. A clip given by its saved path is judged as the task that
    saved it (``clip_task``); a file no task saved here is judged as nothing, and no advice is given that it could
    make play twice. ``(None, [])`` for plain clips."""
    records = {clip: clip_task(rt, clip) for clip in dict.fromkeys(clips)}
    listed = {clip: record for clip, record in records.items() if record is not None}
    ids = {str(record.task_id) for record in listed.values()}
    if (twice := _played_twice(rt, clips, listed, chained)) is not None:
        return twice, []
    notes = [note] if (note := _part_without_source(rt, clips, chained, records)) is not None else []
    for clip, record in listed.items():
        named = _named(clip, record)
        later = [c.task_id for c in children(rt, record) if c.operation == "extend" and c.state != "failed"]
        if later and not any(str(c) in ids or _descends(rt, ids, str(c)) for c in later):
            notes.append(
                f"{named} was extended later ({', '.join(map(str, later))}), and no extension of it is in "
                "this join, so the join ends with its footage. To include an extension, pass the last task id of "
                "the chain instead (with chain=true when each extension holds only its new part)."
            )
        if (unused := _upgrade_left_out(rt, record, ids)) is not None:
            instead = f"pass {unused.task_id} in place of {clip}"
            if chained:  # chain=true puts the clip back in front of its extension: list every clip instead
                listed_ids = [str(unused.task_id) if c == clip else c for c in dict.fromkeys(clips)]
                instead = f"pass clips={listed_ids} with chain=false ({unused.task_id} in place of {clip})"
            notes.append(
                f"{named} has {OPERATIONS.get(str(unused.operation), 'an upgraded version')} (task "
                f"{unused.task_id}, already paid for), and this join uses the clip itself, not that version. To "
                f"join it, {instead}."
            )
    return None, notes


def clip_task(rt: Runtime, clip: str) -> TaskRecord | None:
    """The task a clip of a join stands for: the task by its id, or, for a path (relative, absolute, a file:// URI
    or a kie://outputs/ link), the task whose main saved video it is, by the journal's saved files. None for anything
    else: a file of the user's own, another result of a task (a Veo extension's new part), an unknown id. A clip
    given by its path was judged as nothing, so a join of a clip's saved file and its extension's new part was told
    the clip was missing, and advised to add it again."""
    record = rt.tasks.get(clip)
    if record is not None:
        return record
    for name in _saved_names(rt, clip):
        row = rt.journal.file_at(name)
        if row is not None:
            if row["idx"] != MAIN_RESULT or not str(row["mime"]).startswith("video/"):
                return None
            return rt.tasks.get(row["task_id"])
    return None


def _saved_names(rt: Runtime, clip: str) -> list[str]:
    """The names the journal may keep ``clip``'s file under: its path relative to the workspace, as the path was
    given and as it resolves (an ``outputs/`` linked to another disk keeps its files under ``outputs/``). Never a
    name that is not UTF-8 text (a link to a Latin-1 ``caf\\xe9.mp4``): no saved file has one, and the journal's
    query failed on it as an unexpected error; the clip's own check then refuses it, saying to rename it."""
    from pathlib import Path, PurePath

    from kie_mcp.media.inputs import local_path, untexted_part
    from kie_mcp.media.saved import OUTPUTS

    workspace = rt.settings.workspace
    try:
        given = local_path(clip, rt.settings.input_bases)
        real = given.resolve()
        homes = [(workspace, ""), (workspace.resolve(), ""), ((workspace / OUTPUTS).resolve(), OUTPUTS)]
    except (OSError, ValueError, RuntimeError):  # an unusable path (UnusablePath is a ValueError), a symlink loop
        return []
    names: list[str] = []
    for path in (Path(*given.parts), real):
        for home, prefix in homes:
            if path.is_relative_to(home):
                name = PurePath(prefix, path.relative_to(home)).as_posix()
                if ".." not in PurePath(name).parts and name not in names and untexted_part(Path(name)) is None:
                    names.append(name)
    return names


def _named(clip: str, record: TaskRecord) -> str:
    """A listed clip in words: its task id, or the path it was given by with its task."""
    return str(record.task_id) if clip == record.task_id else f"{clip} (task {record.task_id})"


def _played_twice(rt: Runtime, clips: list[str], listed: dict[str, TaskRecord], chained: bool) -> str | None:
    """The refusal of a join that would play some footage twice: a listed clip another one holds (see
    ``join_check``), or with chain=true a clip given by its saved path that a chain brings in again by its id. Where
    chain=true brought the clip in (the user never listed it), the advice is the whole list with chain=false: "leave
    it out" named a clip that was not in the list, and passing the holder "in its place" with chain=true again
    brought it back."""
    for clip, record in listed.items():
        held = _held(rt, record)
        twice = [
            other
            for other, found in listed.items()
            if found.task_id != record.task_id
            and (str(found.task_id) in held or str(footage_of(rt, found).task_id) in held)
        ]
        if twice:
            inside = ", ".join(sorted(twice))
            said = (
                f"{inside} is already in {_named(clip, record)}: its video holds the footage before it (an "
                "extension that returns the whole video so far, or an upgrade of that clip), so joining both would "
                "play it twice."
            )
            if chained and all(_brought_by_chain(rt, clips, other) for other in twice):
                kept = _in_place(clips, set(twice), clip)
                return (
                    f"{said} chain=true brought {inside} in, as the start of the chain after it. Pass "
                    f"clips={kept} with chain=false instead. Nothing was written."
                )
            return f"{said} Leave {inside} out, and pass {clip} in its place. Nothing was written."
    if chained:
        for clip, record in listed.items():
            task = str(record.task_id)
            if clip != task and task in clips and _brought_by_chain(rt, clips, task):
                kept = [c for c in dict.fromkeys(clips) if c != task]
                return (
                    f"{clip} is the saved video of {task}, and chain=true brings {task} in again, as the start of "
                    f"the chain after it, so it would play twice. Pass clips={kept} with chain=false instead. "
                    "Nothing was written."
                )
    return None


def _brought_by_chain(rt: Runtime, clips: list[str], clip: str) -> bool:
    """Whether chain=true put ``clip`` into ``clips`` (a chained join's list): a later clip's chain has it."""
    at = clips.index(clip) if clip in clips else len(clips)
    return any(later != clip and clip in chain_clips(rt, later) for later in clips[at + 1 :])


def _in_place(clips: list[str], twice: set[str], holder: str) -> list[str]:
    """``clips`` with each of ``twice`` left out and ``holder`` where the first of them was: once, in order."""
    kept: list[str] = []
    for clip in clips:
        placed = holder if clip in twice else clip
        if placed not in kept:
            kept.append(placed)
    return kept


def _part_without_source(
    rt: Runtime, clips: list[str], chained: bool, records: dict[str, TaskRecord | None]
) -> str | None:
    """The note for listed extensions whose video is only their new part (the catalogue's ``result = "part"``)
    while the clip they continue is not earlier in the join: the join would start mid-scene, unsaid. It names each
    and what to pass: the chains in order (``chain_clips``) with chain=false, or, when the list was not chained and
    chaining it brings no footage twice, the same clips with chain=true (an extension given by its path by its task
    id: chain=true brings a task id's chain only). A clip given by its saved path counts as its task's footage (by
    ``records``); after a file no task saved here, nothing is said of the extensions that follow: that file may be
    the clip they continue, and adding the clip again would play it twice. A source this workspace has no record
    of is named with check_task, which records it."""
    order = list(dict.fromkeys(clips))
    shown: set[str] = set()  # the footage of the clips before the one looked at
    unknown_before = False  # a file before it that no task saved: it may be the clip an extension continues
    alone: dict[str, TaskRecord] = {}  # a listed clip whose new part would start the join: the extension it shows
    for clip in order:
        record = records.get(clip)
        content = footage_of(rt, record) if record is not None else None
        if content is None:
            unknown_before = True
            continue
        if content.parent_task_id and _result(rt, content) == "part" and not unknown_before:
            source = rt.tasks.get(content.parent_task_id)
            if (str(footage_of(rt, source).task_id) if source else content.parent_task_id) not in shown:
                alone[clip] = content
        shown.add(str(content.task_id))
    if not alone:
        return None
    said = [
        f"{clip} holds only the part {title_of(rt, part.model)} added, and the clip it continues, "
        f"{part.parent_task_id}, is not before it in this join, so its part would play without what leads up to it."
        for clip, part in alone.items()
    ]
    unknown = [str(part.parent_task_id) for part in alone.values() if rt.tasks.get(str(part.parent_task_id)) is None]
    if unknown:
        advice = (
            f"This workspace has no record of {', '.join(unknown)}: check_task of it records and saves it here; then "
            "list it before its extension."
        )
        return " ".join([*said, advice])
    whole: list[str] = []
    played: set[str] = set()  # the footage already in ``whole``: a clip's saved file and its id are one footage
    for clip in order:
        record = records.get(clip)
        links = chain_clips(rt, str(record.task_id)) if clip in alone and record is not None else [clip]
        for link in links:
            found = records.get(link) or rt.tasks.get(link)
            footage = str(footage_of(rt, found).task_id) if found is not None else link
            if footage not in played:
                played.add(footage)
                whole.append(link)
    advice = f"To join from the start, pass clips={whole} with chain=false"
    chain = [str(found.task_id) if clip in alone and (found := records[clip]) else clip for clip in order]
    if not chained and not _chains_repeat(rt, chain):
        advice += f", or clips={chain} with chain=true"
    return " ".join([*said, advice + "."])


def _chains_repeat(rt: Runtime, clips: list[str]) -> bool:
    """Whether ``clips`` joined with chain=true would play some footage twice: two listed clips' chains share a
    clip (``chain_overlap``), or a clip given by its saved path is a clip another's chain brings by its id."""
    if chain_overlap([(clip, chain_clips(rt, clip) or [clip]) for clip in clips]) is not None:
        return True
    seen: dict[str, str] = {}
    for clip in clips:
        for link in chain_clips(rt, clip) or [clip]:
            found = clip_task(rt, link)
            footage = str(footage_of(rt, found).task_id) if found is not None else link
            if seen.setdefault(footage, clip) != clip:
                return True
    return False


def _upgrade_left_out(rt: Runtime, record: TaskRecord, ids: set[str]) -> TaskRecord | None:
    """The newest finished upgrade of ``record`` (its 1080p, 4K or upscaled copy) that the join leaves out: not
    listed, and no listed clip made from it."""
    upgrades = [c for c in children(rt, record) if c.state == "succeeded" and _result(rt, c) == "same"]
    for upgrade in reversed(upgrades):
        if str(upgrade.task_id) in ids or _descends(rt, ids, str(upgrade.task_id)):
            return None
    return upgrades[-1] if upgrades else None


def _held(rt: Runtime, record: TaskRecord) -> set[str]:
    """The ancestors whose footage ``record``'s video already holds: each parent of an extension that returns the
    whole video, or of an upgrade, up the chain."""
    held: set[str] = set()
    node = record
    while node.parent_task_id and _result(rt, node) in ("whole", "same") and node.parent_task_id not in held:
        held.add(node.parent_task_id)
        parent = rt.tasks.get(node.parent_task_id)
        if parent is None:
            break
        node = parent
    return held


def _descends(rt: Runtime, ids: set[str], task_id: str) -> bool:
    """Whether some listed clip is a follow-up (at any depth) of ``task_id``."""
    for listed in ids:
        node = rt.tasks.get(listed)
        seen: set[str] = set()
        while node is not None and node.parent_task_id and node.parent_task_id not in seen:
            if node.parent_task_id == task_id:
                return True
            seen.add(node.parent_task_id)
            node = rt.tasks.get(node.parent_task_id)
    return False


def _result(rt: Runtime, record: TaskRecord) -> str | None:
    spec = rt.catalog.get(record.model)
    return spec.followup.result if spec is not None and spec.followup is not None else None


# -- words ---------------------------------------------------------------------------------------------------------


def wrong_source(rt: Runtime, source: TaskRecord, op: str, candidates: list[ModelSpec]) -> str:
    """Why ``op`` cannot continue ``source``, what it works on, and what this task can do instead."""
    made_by = title_of(rt, source.model)
    if source.kind == "image":
        return (
            f"task {source.task_id} is an image ({made_by}); continue_video continues videos. To enlarge an image use "
            "generate_image with an upscale model such as topaz/image-upscale."
        )
    works_on = sorted({p for s in candidates for p in _parents(s)})
    text = f"operation={op} ({OPERATIONS[op]}) needs a task of {listing(rt, works_on)}; task {source.task_id} was "
    text += f"made by {made_by}."
    instead = []
    for other in OPERATIONS:
        if other == op:
            continue
        fitting = [s for s in rt.catalog.offered() if s.followup and s.followup.operation == other and takes(s, source)]
        if fitting:
            instead.append(f"operation={other} (model={fitting[0].id})")
    if instead:
        text += " For this task use " + " or ".join(instead) + "."
    return text


def listing(rt: Runtime, model_ids: list[str]) -> str:
    if "*" in model_ids:
        return "any video model"
    return ", ".join(title_of(rt, m) for m in model_ids)


def title_of(rt: Runtime, model_id: str) -> str:
    spec = rt.catalog.get(model_id)
    return f"{spec.title} ({model_id})" if spec is not None else model_id


def _made_by(rt: Runtime, source: TaskRecord) -> str:
    if _unnamed_veo(source):
        return "a Veo 3.1 clip; KIE's record of it does not name the model"
    return title_of(rt, source.model)


VEO_FOLLOWUPS = frozenset({"veo-extend", "veo-1080p", "veo-4k"})  # the API families continuing a Veo clip


def _unnamed_veo(source: TaskRecord) -> bool:
    """A Veo generation made outside kie-mcp whose record names no model (a 4K or extend is named by its body)."""
    return source.model == "unknown" and source.family == "veo"


def _parents(spec: ModelSpec) -> list[str]:
    return spec.followup.parents if spec.followup is not None else []


def _tiers(fits: list[ModelSpec]) -> str:
    tiers = [str(v) for s in fits if (f := s.fields.get("model")) is not None and f.values for v in f.values]
    return f" (or a tier: {', '.join(tiers)})" if tiers else ""


def _is_video_url(url: str) -> bool:
    return url.split("?", 1)[0].lower().endswith((".mp4", ".mov", ".webm", ".mkv"))
