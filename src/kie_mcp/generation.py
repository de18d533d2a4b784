"""The request path, in order: validate -> price -> check caps and balance -> decide -> submit -> follow.

``plan`` and ``decide_approval`` run before the user is asked anything; ``execute`` runs only after
the gate has an answer. Nothing here knows about MCP: progress goes out through a callback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field

from kie_mcp.catalog import InvalidRequest, ItemPrice, ModelSpec, Problem, build_input, price_input, usd
from kie_mcp.catalog.script import fit_script, speech_models
from kie_mcp.kie import FAMILIES, KieError, OutcomeUnknownError
from kie_mcp.media.inputs import LocalFile, find_local_files, upload_local_files, with_identities
from kie_mcp.media.results import save_results
from kie_mcp.runtime import Runtime
from kie_mcp.spend import (
    Approved,
    Decision,
    Declined,
    NeedsConfirmation,
    Quote,
    QuoteError,
    check_balance,
    check_caps,
    decide,
    grant,
    request_hash,
)
from kie_mcp.tasks import TaskRecord, follow

log = logging.getLogger(__name__)

Status = Literal[
    "completed", "submitted", "partial", "failed", "unknown", "confirmation_required", "declined", "cancelled"
]
Progress = Callable[[float, float, str], Awaitable[None]]


class GenerationArgs(BaseModel):
    """The arguments shared by estimate_cost, generate_image and generate_video."""

    model: str
    prompt: str = ""
    images: list[str] = Field(default_factory=list)
    aspect_ratio: str | None = None
    resolution: str | None = None
    duration: int | None = None
    audio: bool | None = None
    options: dict[str, Any] | None = None
    variations: int = 1
    quote_id: str | None = None
    script: str | None = None
    session: str | None = None


@dataclass(frozen=True)
class Plan:
    """A validated, priced request: everything the gate and the submitter need."""

    spec: ModelSpec
    wire: dict[str, Any]
    files: dict[str, LocalFile]
    price: ItemPrice
    variations: int
    digest: str
    quote_id: str | None
    notes: tuple[str, ...] = ()
    session: str | None = None
    options_key: str | None = None

    @property
    def total(self) -> float | None:
        return None if self.price.credits is None else round(self.price.credits * self.variations, 4)


class GenerationResult(BaseModel):
    status: Status = Field(description="completed, submitted, partial, failed, unknown, confirmation_required, ...")
    message: str
    model: str
    quote: Quote | None = Field(default=None, description="Present when the user must approve this cost.")
    tasks: list[TaskRecord] = Field(default_factory=list)
    sandbox: bool = False


# -- before anything is asked ---------------------------------------------------------------


def plan(rt: Runtime, args: GenerationArgs, kind: str | None = None, shared: tuple[Path, ...] = ()) -> Plan:
    """Validate and price; raises ``InvalidRequest`` (or unknown-model errors) and costs nothing."""
    spec = rt.catalog.resolve(args.model)
    if kind and spec.kind != kind:
        hint = f"{spec.id} makes {spec.kind}s; use generate_{spec.kind} for it."
        raise InvalidRequest(spec.id, [Problem("model", hint)])
    if not 1 <= args.variations <= 10:
        raise InvalidRequest(spec.id, [Problem("variations", f"{args.variations} is out of range 1-10.")])
    prompt, duration, audio, notes = args.prompt, args.duration, args.audio, []
    if args.script and args.script.strip():
        if spec.kind != "video":
            raise InvalidRequest(spec.id, [Problem("script", "scripts are spoken in videos; leave it out for images.")])
        capability = "image-to-video" if args.images else "text-to-video"
        fit = fit_script(spec, args.script, prompt, duration, audio, speech_models(list(rt.catalog), capability))
        prompt, duration, audio, notes = fit.prompt, fit.duration, fit.audio, fit.notes
    wire = build_input(
        spec,
        prompt=prompt,
        images=args.images,
        aspect_ratio=args.aspect_ratio,
        resolution=args.resolution,
        duration=duration,
        audio=audio,
        options=args.options,
    )
    roots = (*rt.settings.input_roots, *shared)  # the workspace, KIE_ALLOWED_DIRS and the client's MCP roots
    files, problems = find_local_files(spec, wire, rt.settings.workspace, roots)
    if problems:
        raise InvalidRequest(spec.id, problems)
    digest = request_hash(spec.id, with_identities(spec, wire, files), args.variations)
    options = options_key(spec, wire)
    price = observed_price(rt, spec, options, price_input(spec, wire))
    return Plan(spec, wire, files, price, args.variations, digest, args.quote_id, tuple(notes), args.session, options)


def options_key(spec: ModelSpec, wire: dict[str, Any]) -> str:
    """The request minus its prompt and inputs: what decides the price."""
    options = {k: v for k, v in wire.items() if k != "prompt" and not spec.fields[k].is_media}
    return request_hash(spec.id, options, 1)


def observed_price(rt: Runtime, spec: ModelSpec, options: str, table: ItemPrice) -> ItemPrice:
    """What KIE actually charged for this model and these options before, when it differs from the table."""
    history = rt.journal.charged_before(spec.id, options)
    if not history:
        return table
    charged, when = history[0]
    if table.credits is not None and abs(charged - table.credits) < 1e-9:
        return table
    listed = "unknown" if table.credits is None else f"{table.credits:g}"
    day = datetime.fromtimestamp(when).date().isoformat()
    return table.model_copy(
        update={
            "known": True,
            "credits": charged,
            "unit": "task",
            "breakdown": f"{charged:g} credits per task, as KIE charged for the same model and options on "
            f"{day} (the price table says {listed})",
            "source": "charged by KIE in this workspace (journal)",
            "source_date": day,
        }
    )


async def check_spend(rt: Runtime, p: Plan) -> None:
    """Hard caps, then the live balance. Either refusal is final for this request."""
    check_caps(p.total, rt.ledger.spent_today(), rt.ledger.caps)
    balance = await rt.require_kie().credits()
    check_balance(p.total, balance)


def decide_approval(rt: Runtime, p: Plan, *, can_ask: bool) -> Decision:
    problem = rt.quotes.problem(p.quote_id, p.digest) if p.quote_id else None
    return decide(
        total=p.total,
        quote_id=p.quote_id,
        quote_problem=problem,
        auto_approve_limit=rt.settings.auto_approve_credits,
        can_ask=can_ask,
        question=question(p),
    )


def question(p: Plan) -> str:
    """The confirmation text. Deterministic: the 2026 protocol may ask it twice and compare."""
    spec, n = p.spec, p.variations
    things = f"{n} {spec.kind}{'s' if n > 1 else ''}"
    if p.total is None:
        cost = "an UNKNOWN number of credits (no price on file for these settings; KIE charges its current rate)"
    else:
        cost = f"{p.total:g} credits (about ${usd(p.total):.2f})"
    prompt = str(p.wire.get("prompt", ""))
    excerpt = f' Prompt: "{prompt[:90]}{"..." if len(prompt) > 90 else ""}".' if prompt else ""
    notes = "".join(f" {note}" for note in p.notes)
    return (
        f"Spend {cost} to make {things} with {spec.title} ({spec.id})? {settings_text(p)}.{excerpt}{notes} "
        "Nothing is charged unless you confirm."
    )


def settings_text(p: Plan) -> str:
    shown = [
        f"{k}={v}"
        for k, v in p.wire.items()
        if k != "prompt" and not p.spec.fields[k].is_media and not isinstance(v, list | dict)
    ]
    images = sum(1 if isinstance(v, str) else len(v) for k, v in p.wire.items() if p.spec.fields[k].is_media)
    if images:
        shown.append(f"{images} input file(s)")
    return "Settings: " + (", ".join(shown) if shown else "defaults")


def confirmation_required(rt: Runtime, p: Plan, tool: str, why: str | None = None) -> GenerationResult:
    quote = rt.quotes.issue(p.spec.id, p.digest, p.price, p.variations)
    cost = "an unknown number of" if quote.credits_total is None else f"{quote.credits_total:g}"
    dollars = "" if quote.usd_total is None else f" (about ${quote.usd_total:.2f})"
    lead = f"{why} " if why else ""
    lead += "".join(f"{note} " for note in p.notes)
    message = (
        f"{lead}Nothing was spent. This request costs {cost} credits{dollars}: {quote.breakdown}. "
        f"The user must approve this cost first; once they do, call {tool} again with the same arguments and "
        f"quote_id='{quote.quote_id}' (valid until {quote.expires_at})."
    )
    return GenerationResult(
        status="confirmation_required", message=message, model=p.spec.id, quote=quote, sandbox=rt.settings.sandbox
    )


# -- after the gate ---------------------------------------------------------------------------


async def execute(
    rt: Runtime,
    p: Plan,
    decision: Approved | Declined | NeedsConfirmation,
    *,
    tool: str,
    wait_seconds: float,
    progress: Progress,
) -> GenerationResult:
    if isinstance(decision, Declined):
        message = "The user declined. Nothing was spent and no quote was issued."
        return GenerationResult(status="declined", message=message, model=p.spec.id, sandbox=rt.settings.sandbox)
    if isinstance(decision, NeedsConfirmation):
        return confirmation_required(rt, p, tool, decision.reason)
    if decision.by == "quote":
        assert p.quote_id is not None
        try:
            rt.quotes.consume(p.quote_id, p.digest)
        except QuoteError as err:
            return confirmation_required(rt, p, tool, f"The quote could not be used: {err}")

    kie = rt.require_kie()
    rt.ledger.reserve(p.total, p.quote_id)  # re-checks the caps in a transaction: parallel calls cannot overrun
    approval = grant(p.spec.id, p.variations, decision.by, p.total)
    try:
        wire, upload_notes = await upload_local_files(kie, p.spec, p.wire, p.files, rt.journal)
    except KieError as err:
        rt.ledger.adjust(-(p.total or 0.0))
        raise KieError(
            f"uploading an input file failed before anything was created: {err.message}",
            code=err.code,
            category=err.category,
            next_step="Nothing was spent. " + err.next_step,
        ) from err

    family = FAMILIES[p.spec.family]
    body = family.create_body(p.spec.id, wire)
    records: list[TaskRecord] = []
    prompt = str(p.wire.get("prompt", ""))

    async def submit_one() -> None:
        record = TaskRecord(
            task_id=None,
            model=p.spec.id,
            family=family.name,
            kind=p.spec.kind,
            state="queued",
            credits_quoted=p.price.credits,
            sandbox=rt.settings.sandbox,
        )
        attempt = rt.journal.begin_attempt(
            model=p.spec.id,
            family=family.name,
            approved_by=decision.by,
            quote_id=p.quote_id,
            prompt=prompt,
            params=p.wire,
            credits_quoted=p.price.credits,
            session=p.session,
            options_key=p.options_key,
        )
        try:
            record.task_id = await kie.create(family, p.spec.id, body, approval)
        except OutcomeUnknownError as err:
            record.state, record.error = "unknown", err.describe()
            rt.journal.finish_attempt(attempt, "unknown", error=err.message)  # still counted as spent
        except KieError as err:
            record.state, record.error = "failed", err.describe()
            rt.journal.finish_attempt(attempt, "refused", error=err.message)
            rt.ledger.adjust(-(p.price.credits or 0.0), "refused by KIE", attempt)  # nothing was charged
        else:
            rt.journal.finish_attempt(attempt, "created", task_id=record.task_id)
            rt.tasks.add(record, attempt_id=attempt, prompt=prompt, session=p.session)
        records.append(record)

    async with anyio.create_task_group() as group:
        for _ in range(p.variations):
            group.start_soon(submit_one)

    reporter = ProgressReporter(progress, len(records))

    async def on_update(current: list[TaskRecord]) -> None:
        for record in current:
            rt.tasks.add(record)  # every change reaches the journal before the tool answers
        await reporter(current)

    await follow(
        kie,
        rt.typical_seconds,
        records,
        budget=wait_seconds,
        min_interval=rt.settings.poll_min_interval,
        max_interval=rt.settings.poll_max_interval,
        on_update=on_update,
    )
    settle(rt, records)
    saved = await save_all(rt, records)
    return summarise(rt, p.spec, records, (*p.notes, *upload_notes, *saved))


class ProgressReporter:
    """Turns task records into strictly increasing progress notifications (they double as heartbeats)."""

    def __init__(self, send: Progress, total: int) -> None:
        self._send = send
        self._total = float(max(total, 1))
        self._last = -1.0

    async def __call__(self, records: list[TaskRecord]) -> None:
        done = sum(1 for r in records if r.finished)
        value = sum(1.0 if r.finished else (r.progress or 0.0) for r in records)
        if done < len(records):
            value = min(max(value, self._last + 0.001), self._total - 0.001)
        if value <= self._last:
            return
        self._last = value
        running = [r for r in records if not r.finished]
        eta = max((r.eta_seconds or 0 for r in running), default=0)
        tail = f"; about {eta}s left" if running and eta else ""
        await self._send(value, self._total, f"{done}/{len(records)} finished{tail}")


async def save_all(rt: Runtime, records: list[TaskRecord]) -> list[str]:
    """Save finished results into the workspace (unless KIE_DOWNLOAD=never); problems come back as lines."""
    if not rt.settings.download or rt.kie is None:
        return []
    problems: list[str] = []
    for record in records:
        problems += await save_results(rt.kie, rt.journal, rt.settings.workspace, record)
        rt.tasks.add(record)
    if problems:
        problems.append("The result links still work for a while; check_task saves them on the next try.")
    return problems


def settle(rt: Runtime, records: list[TaskRecord]) -> None:
    """Fold what KIE reported into the spend: refunds of failed tasks, real charges. Once per task, ever."""
    for record in records:
        if record.task_id is None or record.credits_quoted is None:
            continue
        if record.state == "failed":
            rt.ledger.adjust(-record.credits_quoted, "refunded: task failed", record.task_id, once=True)
        elif record.state == "succeeded" and record.credits_charged is not None:
            delta = record.credits_charged - record.credits_quoted
            rt.ledger.adjust(delta, "charged by KIE", record.task_id, once=True)


def summarise(rt: Runtime, spec: ModelSpec, records: list[TaskRecord], notes: tuple[str, ...] = ()) -> GenerationResult:
    states = [r.state for r in records]
    created = [r for r in records if r.task_id]
    if all(s == "succeeded" for s in states):
        status: Status = "completed"
    elif all(s == "failed" for s in states):
        status = "failed"
    elif all(s == "unknown" for s in states):
        status = "unknown"
    elif any(s in ("failed", "unknown") for s in states) or any(s == "succeeded" for s in states):
        status = "partial" if any(s in ("failed", "unknown") for s in states) else "submitted"
    else:
        status = "submitted"
    lines = [_headline(status, spec, records), *notes]
    for index, record in enumerate(records, 1):
        lines.append(f"{index}. {_describe(record)}")
    if any(r.state == "unknown" for r in records):
        lines.append(
            "A create may have reached KIE without an answer; it was NOT resubmitted. Check https://kie.ai/logs "
            "before trying again, so the same request is not paid twice."
        )
    if created and status in ("submitted", "partial") and any(not r.finished for r in created):
        lines.append("Follow running tasks with check_task(task_id, wait_seconds=...); results stay on KIE for days.")
    if rt.settings.sandbox:
        lines.append("SANDBOX: simulated results from the built-in KIE simulator; no credits were spent.")
    return GenerationResult(
        status=status, message="\n".join(lines), model=spec.id, tasks=records, sandbox=rt.settings.sandbox
    )


def _headline(status: Status, spec: ModelSpec, records: list[TaskRecord]) -> str:
    n = len(records)
    noun = f"{spec.kind}{'s' if n > 1 else ''}"
    return {
        "completed": f"Done: {n} {noun} from {spec.title}.",
        "submitted": f"Submitted {n} {noun} to {spec.title}; still generating.",
        "partial": f"Partly done: {n} {noun} requested from {spec.title}.",
        "failed": f"Failed: no {noun} could be made with {spec.title}.",
        "unknown": f"Unclear: the request to {spec.title} may or may not have been created.",
    }.get(status, status)


def _describe(record: TaskRecord) -> str:
    ident = record.task_id or "(no task id)"
    if record.state == "succeeded":
        where = ", ".join(record.files) if record.files else ", ".join(record.result_urls)
        return f"{ident}: succeeded: {where}"
    if record.state in ("failed", "unknown"):
        return f"{ident}: {record.state}: {record.error}"
    eta = f", about {record.eta_seconds}s left" if record.eta_seconds else ""
    return f"{ident}: {record.state}{eta}"
