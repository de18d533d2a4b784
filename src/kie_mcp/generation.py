"""The request path, in order: validate -> price -> check caps and balance -> decide -> reserve -> upload -> submit
-> follow.

``plan`` and ``decide_approval`` run before the user is asked anything; ``execute`` runs only after
the gate has an answer. Nothing here knows about MCP: progress goes out through a callback.
"""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

import contextlib
import functools
import logging
import math
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import anyio
from pydantic import BaseModel, Field, PrivateAttr

from kie_mcp.catalog import InvalidRequest, ItemPrice, ModelSpec, Problem, WithdrawnModelError, build_input, usd
from kie_mcp.catalog.pricing import (
    FAR_CHARGE_COUNTED_SECONDS,
    FAR_FROM_TABLE,
    LIVE_ONLY,
    MOST_CREDITS_CHARGED,
    PLUS_OUTPUT,
    UNREADABLE_FACTOR,
    credits_figure,
    credits_text,
    input_to_measure,
    usd_text,
)
from kie_mcp.catalog.script import ClipCost, ClipPrice, ScriptFit, fit_script, speech_models
from kie_mcp.catalog.spec import Operation, UnifiedRoute
from kie_mcp.catalog.validate import argument_name, named_for_user
from kie_mcp.journal import (
    CALL_ANSWERED,
    CALL_CUT_OFF,
    CALL_RUNNING,
    JOURNAL_ERRORS,
    ON_ITS_WAY,
    WAITING,
    JournalUnavailable,
    ReservationGivenBack,
    never_resent,
    storage_fix,
)
from kie_mcp.kie import FAMILIES, KieClient, KieError, NotSentError, OutcomeUnknownError, RefusedHereError
from kie_mcp.kie.client import UPLOAD_FAILED, ExistingTaskError
from kie_mcp.kie.errors import not_published
from kie_mcp.kie.families import Family
from kie_mcp.kie.pacing import Slot
from kie_mcp.media import saved
from kie_mcp.media.downloads import Allowance, named_folder
from kie_mcp.media.frames import frame_notes
from kie_mcp.media.inputs import (
    LocalFile,
    bounds_lengths,
    find_local_files,
    length_bounds,
    names_local_files,
    not_approved,
    plainly,
    preparation_notes,
    sent_pixels,
    tidy_links,
    unreachable_links,
    upload_local_files,
    uploaded_here,
    with_identities,
    with_places,
)
from kie_mcp.media.results import LINKS_STILL_WORK, describe, save_results
from kie_mcp.processes import owner_gone, this_process
from kie_mcp.redact import hides_credentials, redact, redact_secrets
from kie_mcp.runtime import Runtime
from kie_mcp.spend import (
    Approval,
    Approved,
    Ask,
    Decision,
    Declined,
    NeedsConfirmation,
    Quote,
    QuoteError,
    Replay,
    Reservation,
    SpendRefused,
    check_balance,
    check_caps,
    decide,
    grant,
    priced,
    request_hash,
    reservation,
)
from kie_mcp.spend.approval import ApprovedBy
from kie_mcp.spend.ledger import (
    ALREADY_HAD,
    ALREADY_HAD_ANSWER,
    CHARGED,
    MEASURED,
    REFUSED,
    readable_charge,
    reported_charge,
)
from kie_mcp.spend.quotes import (
    CHARGED_HERE,
    DECLINED,
    AskedInputs,
    Bound,
    asked_credits,
    seen_charging,
    staleness,
)
from kie_mcp.stopping import CREATES
from kie_mcp.tasks import TaskRecord
from kie_mcp.tasks.follower import saving_words
from kie_mcp.tasks.records import UnreadableRecord, answer_not_recorded, charged_text, time_left_words
from kie_mcp.toolschema import is_blank
from kie_mcp.words import cut_point, plain, quoted_excerpt, span_words, timestamp

if TYPE_CHECKING:
    from kie_mcp.catalog import Catalog
    from kie_mcp.catalog.live import LiveCatalog  # loaded with the first request

log = logging.getLogger(__name__)

Status = Literal[
    "completed", "submitted", "partial", "failed", "unknown", "confirmation_required", "declined", "cancelled"
]
Progress = Callable[[float, float, str], Awaitable[None]]


class GenerationArgs(BaseModel, defer_build=True):
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
    bind_quote_id: str | None = None  # a quote that only binds the call to the request it priced (``bound_to``)
    script: str | None = None
    session: str | None = None
    max_credits: float | None = None
    model_by_default: bool = False  # the call named no model: ``model`` is the tool's default (``resolve_model``)


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
    max_credits: float | None = None  # the caller's ceiling for this call
    reserved: float = 0.0  # what the call counts against the caps: its price, or for an unknown price its ceiling
    balance: float | None = None  # the balance read before the spend (to measure a charge KIE does not report)
    balance_at: float | None = None  # when that read was sent (epoch seconds): the start of the measuring window
    parent_task_id: str | None = None  # continue_video: the finished task this request continues (followups.py)
    operation: Operation | None = None  # continue_video: extend, hd, 4k or upscale
    reserved_on: date | None = None  # the local date the reservation was made on (kept for an older kie-mcp)
    reserved_at: float | None = None  # the moment it was made (epoch seconds): its refunds count at that moment
    reservation: int | None = None  # its entry in the journal (``Reservation.entry``), counting its creates not begun
    unsettled: bool = False  # the same request was sent lately and its outcome is unknown: never auto-approved
    stood_in: bool = False  # the model stands in for a withdrawn default or short name's: never auto-approved
    least: float = 0.0  # an unknown price: the least the call can cost (``least_credits`` x variations)
    most: float | None = None  # an unknown price: the most it can cost by the catalogue (``most_credits``), or None
    most_why: str = ""  # where ``most`` comes from, and what would bind the price: for a refusal over the caps
    estimate: float | None = None  # a price per second of a link measured here, not bound (``unbound``)
    linked: tuple[str, ...] = ()  # the billed input's links kie-mcp did not upload itself (``unbound_links``)
    priced_input: dict[str, Any] = field(default_factory=dict)  # what the price was read for (wire and facts)
    measured: dict[str, float] | None = None  # the input lengths the price depends on, as measured
    local_inputs: AskedInputs | None = None  # its local files by path and hash, for a question asked about them
    quote_binds: bool = False  # ``quote_id`` came as bind_quote_id: it only binds the request, never approves it
    identity: dict[str, Any] = field(default_factory=dict)  # the input as ``digest`` reads it (files by content)

    @property
    def total(self) -> float | None:
        return None if self.price.credits is None else round(self.price.credits * self.variations, 4)

    @property
    def bound(self) -> Bound:
        """The request as its quote binds it: what a quote of another request names as changed."""
        return (self.spec.id, self.identity, self.variations)

    @property
    def counted(self) -> float | None:
        """What the request counts against the caps and the auto-approve limit: its price, or the higher charge KIE
        was seen making for it (``ItemPrice.up_to``); None for an unknown price."""
        return None if self.price.counted is None else round(self.price.counted * self.variations, 4)

    @property
    def listed(self) -> float | None:
        """The price, when the caps count a higher charge KIE was seen making (``counted``): for their wording."""
        return self.total if self.counted != self.total else None

    @property
    def ceiling_weighed(self) -> float | None:
        """What a ``max_credits`` given with the request is weighed against: the counted figure, but for a price
        only KIE's live list gives, the price itself. That price is counted at the whole per-call cap as a stand-in
        (``live_only_counted``), and as for an unknown price a caller's own ceiling is weighed against what the
        request costs by what is known, never against the stand-in: a ``max_credits`` under the cap refused it."""
        return self.total if self.price.up_to_source == LIVE_ONLY else self.counted

    @property
    def reserved_each(self) -> float:
        return round(self.reserved / self.variations, 4)


class GenerationResult(BaseModel, defer_build=True):
    status: Status = Field(description="completed, submitted, partial, failed, unknown, confirmation_required, ...")
    message: str
    model: str
    quote: Quote | None = Field(default=None, description="Present when the user must approve this cost.")
    tasks: list[TaskRecord] = Field(default_factory=list)
    saving: list[str] = Field(
        default_factory=list,
        description="Task ids that succeeded and whose results are being saved right now (their files are not listed "
        "yet): check_task shows them in a moment.",
    )
    sandbox: bool = False
    _why: str | None = PrivateAttr(default=None)  # why a request was not run (for the approval card, not the schema)
    _form_refused: bool = PrivateAttr(default=False)  # it was not run because the client refused to show the form
    # The create attempts this answer reports as made by its call (or by the cut-off call it replays): marked
    # answered once the answer is handed to the client (``delivered``), cut off when it never is.
    _attempts: list[str] = PrivateAttr(default_factory=list)
    # The plan ``quote`` was issued for: the request as priced when the quote was made (``confirmation_required``),
    # re-priced after a yes to a form whose price rose meanwhile, so the approval card asks what the quote says.
    _plan: Any = PrivateAttr(default=None)

    @property
    def why(self) -> str | None:
        return self._why

    @property
    def priced_plan(self) -> Plan | None:
        """The plan ``quote`` prices (None without a quote): the approval card is drawn from it, not from the plan
        the call began with, whose price may have moved while a form was open."""
        return self._plan

    @property
    def form_refused(self) -> bool:
        return self._form_refused


# -- before anything is asked ---------------------------------------------------------------

NOTHING_SENT = " Nothing was sent or charged."  # after a refusal of outputs/ (``saved.checked``)


async def plan(
    rt: Runtime,
    args: GenerationArgs,
    kind: str | None = None,
    shared: tuple[Path, ...] = (),
    *,
    facts: dict[str, Any] | None = None,
    continues: tuple[str, Operation] | None = None,
    outputs_checked: bool = False,
) -> Plan:
    """Validate and price; raises ``InvalidRequest`` (or unknown or withdrawn model errors) and costs nothing.

    ``continues`` (source task id, operation) and ``facts`` (the source's settings a price depends on, keys
    ``source.<name>``) come from ``followups.plan``, the one caller that may plan a follow-up model.
    ``outputs_checked``: the caller checked outputs/ already (estimate_cost: one check, in one worker thread)."""
    # Its results could not be saved: outputs/ is a link to /, the workspace or the home folder (media/saved.py).
    # Refused before anything is priced or sent. Whether outputs/ can take a file now (a disk not mounted, a
    # read-only one) is asked only of a call that would spend (``surface``), never of a replay of what was bought.
    if not outputs_checked:
        await saved.checked(rt.settings.workspace / saved.OUTPUTS, NOTHING_SENT)
    await first_prices(rt)  # a fresh install's first quote: KIE's live price, not a months-old bundled one
    model_notes: list[str] = []  # a default or short name whose model KIE withdrew: what stands in for it
    spec = resolve_model(
        rt, args.model, kind, followup=continues is not None, default=args.model_by_default, notes=model_notes
    )
    if not 1 <= args.variations <= 10:
        raise InvalidRequest(spec.id, [Problem("variations", f"{args.variations} is out of range 1-10.")])
    if args.max_credits is not None and not (math.isfinite(args.max_credits) and args.max_credits > 0):
        raise InvalidRequest(spec.id, [Problem("max_credits", f"{args.max_credits} is not a positive number.")])
    prompt, duration, audio, notes, scripted = args.prompt, args.duration, args.audio, [], None
    script_problems: list[Problem] = []  # a script that cannot be spoken here: refused with the request's others
    prompt_is_script = False
    if args.script and args.script.strip():
        try:
            fit = fit_script_to(rt, spec, args, facts)
        except InvalidRequest as refusal:
            script_problems = refusal.problems
            if not prompt or is_blank(prompt):  # a fitted script's words are its prompt: no "prompt: is required"
                prompt, prompt_is_script = args.script, True
        else:
            prompt, duration, audio, notes, scripted = fit.prompt, fit.duration, fit.audio, fit.notes, fit.request
    chosen: list[str] = []  # what a rule chose where the caller set nothing, and how to choose otherwise
    defaulted: set[str] = set()  # the fields holding only kie-mcp's bundled default: KIE's live schema may differ
    try:
        wire = build_input(
            spec,
            prompt=prompt,
            images=args.images,
            aspect_ratio=args.aspect_ratio,
            resolution=args.resolution,
            duration=duration,
            audio=audio,
            options=args.options,
            scripted=scripted,  # the durations that suit the script, settled by the request's rules (notes updated)
            chosen=chosen,
            defaulted=defaulted,
        )
    except InvalidRequest as refusal:  # one answer names every problem, the script's among them
        # The prompt that is the script is judged by the script's problem alone (its length is the split's).
        others = [problem for problem in refusal.problems if not (prompt_is_script and problem.field == "prompt")]
        raise InvalidRequest(spec.id, [*script_problems, *live_offers(rt, spec, args, others)]) from None
    if script_problems:
        raise InvalidRequest(spec.id, script_problems)
    wire = tidy_links(spec, wire)  # "https://a.test/x.png\n": judged, measured, quoted and sent without the newline
    from kie_mcp.catalog.live import fit_live_defaults  # the live catalogue loads with the first request

    # KIE's live schema, where it is stricter than ours: a default of ours it refuses is replaced or left out
    wire, live_notes, problems = fit_live_defaults(rt.live, spec, wire, defaulted)
    if problems:
        raise InvalidRequest(spec.id, named_for_user(spec, problems, args.options))
    chosen += live_notes

    if problems := unreachable_links(spec, wire):  # a link to this machine or a private network: KIE cannot fetch it
        raise InvalidRequest(spec.id, named_for_user(spec, problems, args.options))

    if problems := off_route(rt, spec, wire):  # a field the chosen route has no place for: refused before a quote
        raise InvalidRequest(spec.id, named_for_user(spec, problems, args.options))

    def roots() -> tuple[Path, ...]:  # the workspace, KIE_ALLOWED_DIRS and the client's MCP roots
        return (*rt.settings.input_roots, *shared)

    files: dict[str, LocalFile] = {}
    lengths: dict[str, float] = {}
    length_notes: list[str] = []  # an input whose headers claim less than it plays: priced at what it plays
    if names_local_files(spec, wire):  # reading and hashing them (up to 100 MB) stays off the event loop
        files, problems = await anyio.to_thread.run_sync(
            find_local_files, spec, wire, rt.settings.input_bases, roots, rt.settings.started_in, rt.saved_here
        )
        if not problems:  # a file longer or shorter than its field takes: refused before it is priced or sent
            lengths, problems = await checked_lengths(spec, wire, files, length_notes)
        if problems:
            raise InvalidRequest(spec.id, named_for_user(spec, problems, args.options))
        notes = [*notes, *await anyio.to_thread.run_sync(preparation_notes, spec, wire, files)]  # what is sent
        ratio_field = spec.field_for_arg("aspect_ratio")  # set by the caller, or the model's default
        given = args.options or {}
        ratio_given = args.aspect_ratio is not None or (ratio_field is not None and ratio_field.name in given)
        framed = functools.partial(frame_notes, spec, wire, files, ratio_given=ratio_given)
        notes = [*notes, *await anyio.to_thread.run_sync(framed)]  # a frame's shape
        if pixels := sent_pixels(spec, wire, files):  # a price by the picture's size (Topaz: by the output's)
            facts = {**(facts or {}), **pixels}
    measured = await measure_billed_input(rt, spec, wire, files, lengths, length_notes)
    notes = [*model_notes, *notes, *chosen, *dict.fromkeys(length_notes)]
    if saved.folder_label(args.session) is not None:  # a session named as its folder is: the answer says which
        named = await anyio.to_thread.run_sync(named_folder, rt.settings.workspace, args.session, date.today())
        notes = [*notes, *([named.words] if named is not None else [])]
    identity = with_identities(spec, wire, files)
    if measured:  # a quote binds the measured length too: a different file behind a URL needs a new quote
        identity = {**identity, "#measured_seconds": measured}
    options = options_key(spec, wire, facts)
    linked = unbound_links(rt, spec, wire, files) if measured is not None else ()
    cost = priced_request(rt, spec, {**wire, **(facts or {})}, options, measured, args.variations, linked)
    total = None if cost.price.counted is None else round(cost.price.counted * args.variations, 4)  # as counted
    digest = request_hash(spec.id, identity, args.variations)
    local_inputs = None
    if files:  # the same request whatever the files hold: a question's answer is checked against the bytes it was for
        shape = request_hash(spec.id, with_places(spec, wire, files), args.variations)
        local_inputs = AskedInputs(shape, {value: f.sha256 for value, f in files.items()})  # paths as written
    twin, made = twins(rt, digest)
    p = Plan(
        spec,
        wire,
        files,
        cost.price,
        args.variations,
        digest,
        args.quote_id,
        (*([twin] if twin else []), *([made] if made else []), *notes, *cost.notes),
        args.session,
        options,
        max_credits=args.max_credits,
        reserved=reservation(total, rt.ledger.caps, cost.most, cost.least, args.variations),
        parent_task_id=continues[0] if continues else None,
        operation=continues[1] if continues else None,
        unsettled=twin is not None,
        stood_in=bool(model_notes),
        least=cost.least,
        most=cost.most,
        most_why=cost.most_why,
        estimate=cost.estimate,
        linked=linked,
        priced_input={**wire, **(facts or {})},
        measured=measured,
        local_inputs=local_inputs,
        identity=identity,
    )
    return bound_to(p, args.bind_quote_id) if args.bind_quote_id else p


def live_offers(rt: Runtime, spec: ModelSpec, args: GenerationArgs, problems: list[Problem]) -> list[Problem]:
    """``problems``, each refusing a value kie-mcp's data does not allow but the model's live schema offers (8K when
    KIE added it) saying so: still refused, as kie-mcp cannot price it, but not as if KIE had no such value."""
    from kie_mcp.catalog.live import live_also_offers

    given: dict[str, tuple[str, Any]] = {}  # the user's name of a field -> (KIE's name, the value given)
    for name, value in (args.options or {}).items():
        given[f"options.{name}"] = (name, value)
    for arg in ("aspect_ratio", "resolution", "duration", "audio"):
        target = spec.field_for_arg(arg)
        if target is not None and getattr(args, arg, None) is not None and target.name not in (args.options or {}):
            given[arg] = (target.name, getattr(args, arg))
    out = []
    for problem in problems:
        name, value = given.get(problem.field, (None, None))
        also = live_also_offers(rt.live, spec, name, value) if name is not None else ""
        out.append(Problem(problem.field, problem.message + also) if also else problem)
    return out


def fit_script_to(rt: Runtime, spec: ModelSpec, args: GenerationArgs, facts: dict[str, Any] | None) -> ScriptFit:
    """``args.script`` fitted to ``spec`` (its duration chosen, its words in the prompt); raises ``InvalidRequest``
    with the script's problem, which ``plan`` names beside the rest of the request's."""
    if spec.kind != "video":
        raise InvalidRequest(spec.id, [Problem("script", "scripts are spoken in videos; leave it out for images.")])
    capability = "image-to-video" if args.images else "text-to-video"
    # Longer clips, for a script too long; an extension continues its clip on that clip's own model, so none there.
    alternatives = [] if spec.followup is not None else speech_models(list(rt.catalog.offered()), capability)
    price_of = clip_price(rt, spec, args, facts)
    return fit_script(spec, str(args.script), args.prompt, args.duration, args.audio, alternatives, price_of)


# The family whose endpoint a model's unified route (its catalogue ``unified`` table) creates through, and the
# setting that chooses that route, by the model's own family.
UNIFIED_FAMILIES = {"veo": "veo-unified"}
ROUTE_SETTINGS = {"veo": "KIE_VEO_ROUTE"}


def route_of(rt: Runtime, spec: ModelSpec) -> UnifiedRoute | None:
    """The unified route ``spec`` is created through (``KIE_VEO_ROUTE=unified`` for Veo 3.1); None: its family's own
    endpoint, the default. Follow-up models have no such route: they stay on their family's endpoint."""
    if spec.unified is None or spec.family not in UNIFIED_FAMILIES:
        return None
    return spec.unified if rt.settings.veo_route == "unified" else None


def off_route(rt: Runtime, spec: ModelSpec, wire: dict[str, Any]) -> list[Problem]:
    """The fields of ``wire`` the chosen route cannot carry (a Veo seed on the unified endpoint), each with why and
    what to do: refused before anything is quoted or sent, never dropped unseen."""
    route = route_of(rt, spec)
    if route is None:
        return []
    setting = ROUTE_SETTINGS[spec.family]
    return [
        Problem(name, f"{why} Leave it out, or set {setting}=legacy to send it on KIE's Veo endpoint.")
        for name, why in route.refuse.items()
        if name in wire
    ]


def clip_price(rt: Runtime, spec: ModelSpec, args: GenerationArgs, facts: dict[str, Any] | None) -> ClipPrice:
    """What one part of a script's offered split costs: this request at the part's duration, with the sound the
    script sets, priced as the part's own estimate prices it (KIE's live list, a higher charge seen here, the
    variations), and what the caps count for it. None when that is unknown: the request is refused at that length,
    or its price depends on the length of an input, which is measured only later."""

    def cost(seconds: int, sound: bool | None) -> ClipCost | None:
        try:
            wire = build_input(
                spec,
                prompt=args.prompt if not is_blank(args.prompt) else args.script or "",  # a part's prompt has its words
                images=args.images,
                aspect_ratio=args.aspect_ratio,
                resolution=args.resolution,
                duration=seconds if spec.field_for_arg("duration") is not None else None,  # a Veo extension's 7 s
                audio=sound,
                options=args.options,
            )
        except InvalidRequest:
            return None
        if input_to_measure(spec, wire) is not None:
            return None
        try:
            price, _ = quote_price(rt, spec, {**wire, **(facts or {})}, options_key(spec, wire, facts), None)
        except JOURNAL_ERRORS:  # what KIE charged before is unreadable: the split is offered without its total
            return None
        if price.credits is None:
            return None
        price = live_only_counted(price, rt.ledger.caps.per_call)  # as each part's own estimate counts it
        counted = price.counted if price.counted is not None else price.credits
        return ClipCost(round(price.credits * args.variations, 4), round(counted * args.variations, 4))

    return cost


def repriced(rt: Runtime, p: Plan) -> Plan:
    """``p`` priced again now: a form question's price may have moved while the user read it (KIE charged more for
    the same model and options meanwhile, or KIE's price list was read again)."""
    cost = priced_request(rt, p.spec, p.priced_input, p.options_key or "", p.measured, p.variations, p.linked)
    total = None if cost.price.counted is None else round(cost.price.counted * p.variations, 4)  # as counted
    return replace(
        p,
        price=cost.price,
        reserved=reservation(total, rt.ledger.caps, cost.most, cost.least, p.variations),
        least=cost.least,
        most=cost.most,
        most_why=cost.most_why,
        estimate=cost.estimate,
    )


@dataclass(frozen=True)
class Cost:
    """A request's price as the gate weighs it (``priced_request``); every figure is for all its variations."""

    price: ItemPrice  # what one task costs (unknown when nothing binds it before the task runs)
    notes: list[str]  # warnings about the price and the model's health
    least: float = 0.0  # an unknown price: the least it surely costs
    most: float | None = None  # an unknown price: the most the catalogue says it can cost (None: no such figure)
    most_why: str = ""
    estimate: float | None = None  # a price per second of a link, at the length the link served here


def priced_request(
    rt: Runtime,
    spec: ModelSpec,
    wire: dict[str, Any],
    options: str,
    measured: dict[str, float] | None,
    variations: int,
    linked: tuple[str, ...] = (),
) -> Cost:
    """The price of ``variations`` tasks of ``wire`` and, when it is not known (or not bound) before the task runs,
    the least and the most it can cost. A price per second of an input measured from a link kie-mcp did not upload
    itself (``linked``) is not bound: KIE fetches the link itself and bills the length it gets, which a host may serve
    it longer than it served kie-mcp, so that price is shown as an estimate and weighed as unknown (``unbound``)."""
    price, notes = quote_price(rt, spec, wire, options, measured)
    price = live_only_counted(price, rt.ledger.caps.per_call)
    estimate = None
    if linked and measured and price.credits is not None:
        estimate = round(price.credits * variations, 4)
        price = unbound(price, linked)
    if price.counted is not None:
        return Cost(price, notes)
    least = round(least_credits(rt, spec, wire) * variations, 4)
    most, why = most_credits(rt, spec, wire, linked)
    return Cost(price, notes, least, None if most is None else round(most * variations, 4), why, estimate)


LIVE_ONLY_COUNTED = (
    "nothing in kie-mcp's own data bounds a price only KIE's live list gives, so the caps count the whole per-call "
    "cap for each task, as for an unknown price"
)


def live_only_counted(price: ItemPrice, per_call: float) -> ItemPrice:
    """A price only KIE's live catalogue gives (``ItemPrice.live_only``: one typo in KIE's price text, or one edit of
    the workspace's cache, sets it), shown as it is but counted as an unknown price with no catalogue maximum: the
    whole per-call cap for each task (``ItemPrice.up_to``), so a request of several is refused and today's spend
    counts the cap until KIE reports its charge."""
    if not price.live_only or price.credits is None or per_call <= price.credits:
        return price
    return price.model_copy(
        update={"up_to": per_call, "up_to_source": LIVE_ONLY, "up_to_date": None, "up_to_why": LIVE_ONLY_COUNTED}
    )


def auto_approve_limit(rt: Runtime, p: Plan) -> float:
    """The auto-approve limit for ``p``: 0 for a request whose same twin's outcome is unknown (``unsettled``), whose
    model stands in for a withdrawn one the call named or defaulted to (``stood_in``: the person never chose it, and
    it may cost more), whose price only KIE's live list gives (``ItemPrice.live_only``) or whose price is old and
    unconfirmed (``unconfirmed_old``), else ``KIE_AUTO_APPROVE_CREDITS``. The one place this is decided: the
    approval itself, the estimate's ``auto_approved`` and the approval card use it."""
    if p.unsettled or p.stood_in or p.price.live_only or unconfirmed_old(rt, p.price):
        return 0.0
    return rt.settings.auto_approve_credits


# A price whose newest evidence (its source's date, the live price row that gave it, a charge here that bore it out)
# is older than this is quoted but never auto-approved: KIE changes prices every few weeks, and a model dropped from
# KIE's price feed (Seedance 1.0, priced from KIE's list of 2025-12-21) is never refreshed by the daily sync.
UNCONFIRMED_PRICE_MAX_DAYS = 180


def price_day() -> date:
    """The day a price's age is counted on (today, locally): the one clock of the stale-price warning and of
    ``unconfirmed_old``, so a test can pin it and the bundled prices do not age under it."""
    return datetime.now().date()


def unconfirmed_old(rt: Runtime, price: ItemPrice) -> bool:
    """Whether ``price`` is known but its newest evidence is more than ``UNCONFIRMED_PRICE_MAX_DAYS`` old (or
    undated). Never in the sandbox, whose simulated KIE charges the bundled prices themselves."""
    if rt.settings.sandbox or price.credits is None:
        return False
    dates = [day for day in (price.source_date, price.confirmed_on) if day]
    try:
        newest = max(date.fromisoformat(day) for day in dates) if dates else None
    except ValueError:
        newest = None
    return newest is None or (price_day() - newest).days > UNCONFIRMED_PRICE_MAX_DAYS


OLD_PRICE_ASKED = (
    f"This price is over {UNCONFIRMED_PRICE_MAX_DAYS} days old and no live KIE price or charge here has confirmed it "
    "since, so it is never auto-approved."
)


def unbound(price: ItemPrice, linked: tuple[str, ...]) -> ItemPrice:
    """A price per second of an input measured from a link, as an unknown price: the length is what the link served
    kie-mcp, and KIE fetches the link again itself and bills the length it gets (a host can tell the two apart)."""
    return price.model_copy(
        update={
            "known": False,
            "credits": None,
            "up_to": None,
            "breakdown": f"about {credits_text(price.credits)} at the length {shown_links(linked)} served when "
            f"measured ({price.breakdown}); KIE fetches the link itself and bills the length it gets, so that is not "
            "the price",
        }
    )


def shown_links(links: tuple[str, ...]) -> str:
    from kie_mcp.media.inputs import shown

    return ", ".join(shown(link) for link in links[:3]) + (f" and {len(links) - 3} more" if len(links) > 3 else "")


def unbound_links(rt: Runtime, spec: ModelSpec, wire: dict[str, Any], files: dict[str, LocalFile]) -> tuple[str, ...]:
    """The links of the input a price per second bills by whose bytes kie-mcp does not hold: not a local file (its
    bytes are hashed, measured and uploaded by kie-mcp), nor a link upload_file made from one (``uploaded_here``),
    nor a result link KIE gave a task of this workspace whose file kie-mcp saved (``Journal.saved_from``: KIE's
    own storage, which nobody else can fill with a longer clip, so "edit the clip I just made" is priced exactly).
    What such a link serves KIE later is not bound to what it served when it was measured."""
    label = input_to_measure(spec, wire)
    if label is None:
        return ()
    from kie_mcp.media.duration import input_field

    name = input_field(spec, label)
    value = wire.get(name) if name is not None else None
    values = value if isinstance(value, list) else [value]
    links = tuple(v for v in values if isinstance(v, str) and v and v not in files)
    try:
        return tuple(link for link in links if not uploaded_here(rt.journal, link) and not rt.journal.saved_from(link))
    except JOURNAL_ERRORS:  # which links kie-mcp uploaded or saved cannot be read: none is taken as bound
        return links


BIND_IT = (
    "Pass the file itself (a local path, or the link upload_file returns: kie-mcp uploads its bytes, so their length "
    "and price are bound to them), or a result link of a task made here (KIE's own file), to have it priced exactly."
)


def most_credits(
    rt: Runtime, spec: ModelSpec, wire: dict[str, Any], linked: tuple[str, ...] = ()
) -> tuple[float | None, str]:
    """The most one task of a request whose price is not known before it runs can cost, by the catalogue, and where
    that comes from: a rate per second of an input times the longest input its field takes (with a link, KIE bills
    the length it fetches, whatever kie-mcp measured), else the figure the catalogue keeps for the model
    (``ModelSpec.reserve``: a Runway extend, Imagen 4 Fast's images after the first). (None, why) when nothing
    bounds it: the caps then reserve the whole per-call cap."""
    from kie_mcp.catalog.live import live_price_input

    label = input_to_measure(spec, wire)
    if label is not None:
        from kie_mcp.media.duration import input_field

        name = input_field(spec, label)
        seconds = None if name is None else longest_input(spec, wire, name)
        most = None if seconds is None else live_price_input(rt.live, spec, wire, {label: seconds})
        if most is None or most.counted is None:
            return None, ""
        advice = f" {BIND_IT}" if linked else ""
        plus = ", plus the output's" if label.endswith(PLUS_OUTPUT) else ""
        return most.counted, (
            f"{label.removesuffix(PLUS_OUTPUT)} at the longest {name} takes ({seconds:g} s{plus}), at its rate per "
            f"second.{advice}"
        )
    if spec.reserve is not None:
        held = live_price_input(rt.live, spec.model_copy(update={"price": spec.reserve}), wire)
        if held.counted is not None:
            return held.counted, f"{held.breakdown}. {spec.reserve.note or ''}".strip()
    return None, ""


def longest_input(spec: ModelSpec, wire: dict[str, Any], name: str) -> float | None:
    """The longest field ``name`` takes in this request, in seconds, all its files together (its documented total,
    else each file's limit times its files); None when no length limit is documented."""
    bounds = length_bounds(spec, wire, name)
    if bounds is None:
        return None
    if bounds.total is not None:
        return bounds.total
    value = wire.get(name)
    return None if bounds.high is None else bounds.high * (len(value) if isinstance(value, list) else 1)


def least_credits(rt: Runtime, spec: ModelSpec, wire: dict[str, Any]) -> float:
    """What one task of a request whose price depends on an input's length that could not be measured costs at
    least: its rate with that input 0 s long (Seedance 2 bills reference videos' seconds plus the output's: the
    output's). 0 when nothing is known."""
    label = input_to_measure(spec, wire)
    if label is None:
        return 0.0
    from kie_mcp.catalog.live import live_price_input

    least = live_price_input(rt.live, spec, wire, {label: 1e-6})  # a priced length must be above 0: the least one
    return math.floor(least.credits * 100) / 100 if least.known and least.credits else 0.0  # ... to the cent below


UNSETTLED_WINDOW = 24 * 3600.0  # an identical request sent this recently with its outcome unknown is warned about
# An identical request made this recently (10 minutes, a quote's life) is warned about and never auto-approved: a host
# that timed out a call without cancelling it and sent it again once the first had finished paid twice, unasked, the
# answer only noting it was made before. Past this, asking again is taken as wanting another take (a note says so).
RECENTLY_MADE = 600.0


MADE_BEFORE = "This exact request was already made at"  # the note ``twins`` adds; not repeated once it is made
MADE_RECENTLY = "WARNING: this exact request was already made at"  # its warning within ``RECENTLY_MADE``; the same


def twins(
    rt: Runtime, digest: str, *, besides: str | None = None, strict: bool = False
) -> tuple[str | None, str | None]:
    """What the quote says of identical requests sent in the last day.

    First, the warning for one whose create's outcome is unknown (it may have reached KIE and been charged): led
    with, and never auto-approved, so nobody pays twice unawares. A call cut off and sent again by its host is
    answered with what it made instead (``retried_call``). Second, a note naming the tasks one made: approving the
    same request again (an approval card shown again later, an agent asking twice) makes and pays for it again.

    A call of this request still under way (sending its create, or waiting on its task; here also while its input
    files upload or its create waits for its turn, before the journal knows of it: ``under_way``), and one made in
    the last ``RECENTLY_MADE``, are warned about the same way, and so never auto-approved: a host that timed out a
    call without cancelling it and sent it again would otherwise pay twice, unasked.

    ``besides``: a quote whose own use is left out (``settled_twin``: a call looking again once it used its approval).
    ``strict``: a journal that cannot be read raises (``JOURNAL_ERRORS``) instead of saying nothing."""
    now = time.time()
    try:
        rows = rt.journal.recent_attempts(digest, now - UNSETTLED_WINDOW)
        begun = under_way(rt, digest, besides=besides)
        live = {r["attempt_id"] for r in rows if r["answered"] == CALL_RUNNING and owner_gone(r["owner"]) is False}
        replayed = {r["attempt_id"] for r in rows if now - r["created"] <= RETRY_WINDOW and _cut_off(r)}
        made = [
            row
            for row in rows
            if row["state"] == "created" and row["task_id"] and row["attempt_id"] not in live | replayed
        ]
        recent = [row for row in made if now - row["created"] <= RECENTLY_MADE and paid_for(rt, row)]
        again = [row for row in rows if row["attempt_id"] in replayed and row["state"] == "created" and row["task_id"]]
    except JOURNAL_ERRORS:
        if strict:
            raise
        return None, None
    unsettled = [row for row in rows if row["state"] == "unknown"]
    running = [row for row in rows if row["attempt_id"] in live and row["state"] in (*ON_ITS_WAY, "created")]
    said = []
    if unsettled:
        when = timestamp(unsettled[-1]["created"])
        named = [row["task_id"] for row in unsettled if row["task_id"]]
        which = f" (task {', '.join(named)})" if named else ""
        said.append(
            f"WARNING: this exact request was already sent to KIE at {when}{which} and its outcome is unknown: it "
            "may have been created and charged. Check https://kie.ai/logs before sending it again, or it may be paid "
            "twice."
        )
    if running:
        named = [row["task_id"] for row in running if row["task_id"]]
        follow = f" (task {', '.join(named)}; check_task follows it)" if named else ""
        said.append(
            f"WARNING: a call of this exact request, sent at {timestamp(running[-1]['created'])}{follow}, is still "
            "waiting for its result. Approving this one makes it, and pays for it, a second time."
        )
    elif begun is not None:  # approved, and not in the journal yet: its files going up, or its create's turn
        said.append(on_its_way(begun))
    if recent:
        tasks = ", ".join(row["task_id"] for row in recent[-3:])
        said.append(
            f"{MADE_RECENTLY} {timestamp(recent[-1]['created'])} (task {tasks}), less than {RECENTLY_MADE / 60:g} "
            "minutes ago: approving it again makes it, and pays for it, a second time (check_task shows the one "
            "made)."
        )
    warning, note = " ".join(said) or None, None
    if again:  # ``retried_call``: sent again now, it is answered with what the cut-off call made
        tasks = ", ".join(row["task_id"] for row in again[-3:])
        note = (
            f"A call of this exact request was cut off at {timestamp(again[-1]['created'])} after KIE made task "
            f"{tasks}: sending it again answers with that task and creates nothing (until "
            f"{timestamp(again[-1]['created'] + RETRY_WINDOW)}; after that it is a new request, made and paid again)."
        )
    elif made and not recent:
        tasks = ", ".join(row["task_id"] for row in made[-3:])
        note = (
            f"{MADE_BEFORE} {timestamp(made[-1]['created'])} (task {tasks}): approving it again makes it, and pays "
            "for it, again."
        )
    return warning, note


def on_its_way(begun: float) -> str:
    """``twins``' warning of a call of the same request approved at ``begun`` and not in the journal yet."""
    return (
        f"WARNING: a call of this exact request, approved at {timestamp(begun)}, is still on its way to KIE (its "
        "input files uploading, or its create waiting for its turn or being sent). Approving this one makes it, and "
        "pays for it, a second time; that call answers with what it made (list_tasks shows it too)."
    )


# How long the gate waits for a call of the same request that is on its way to settle (a host's cut-off call giving
# its approval back, a create being answered) before it asks instead of auto-approving (``settled_twin``).
TWIN_SETTLING_WAIT = 3.0


def _twin_sending(rt: Runtime, digest: str) -> bool:
    """Whether a call of this request is on its way to KIE now: approved and not in the journal yet (``under_way``),
    or its create being sent by a live process; or, in this process, whose task is made while the call has not
    ended yet (cut off by its host, it is marked so as it ends, and a retry is then answered with its task: waited
    for, not asked about with a pays-twice warning, when a loaded machine ends it a moment after the retry came)."""
    rows = rt.journal.recent_attempts(digest, time.time() - UNSETTLED_WINDOW)
    sending = any(
        row["answered"] == CALL_RUNNING
        and owner_gone(row["owner"]) is False
        and (row["state"] in ON_ITS_WAY or (row["state"] == "created" and row["owner"] == this_process()))
        for row in rows
    )
    return sending or under_way(rt, digest) is not None


async def settled_twin(rt: Runtime, p: Plan, *, wait: float = 0.0, besides: str | None = None) -> Plan:
    """``p`` without the warning ``twins`` gave it at planning (``Plan.unsettled``, its first note), when the call of
    the same request that warning was about has since settled having bought nothing: cut off in a 429's wait, say,
    and its approval given back. Waits up to ``wait`` seconds, while such a call is still on its way, for it to
    settle (the gate, before it asks instead of auto-approving). The warning stays whenever the journal says
    anything of that call that may have cost (its outcome unknown, its task made, still on its way) or cannot be
    read. ``besides``: this call's own approval, already used (``twins``)."""
    if not p.unsettled:
        return p
    deadline = anyio.current_time() + wait
    try:
        while anyio.current_time() < deadline:
            if not _twin_sending(rt, p.digest):
                break
            await anyio.sleep(0.05)  # rare (a retry right after a cut-off): the other call gives its approval back
        warning, note = twins(rt, p.digest, besides=besides, strict=True)
    except JOURNAL_ERRORS:
        return p
    if warning is not None or (note is not None and not note.startswith(MADE_BEFORE)):
        return p  # it may have reached KIE (or was cut off after making a task, which a retry is answered with)
    return replace(p, notes=p.notes[1:], unsettled=False)


def _cut_off(attempt: sqlite3.Row) -> bool:
    """Whether a create attempt's call was cut off before its answer reached the client (cancelled, timed out, or
    its server gone), as ``Journal.unanswered_attempts`` judges it: sent again, it is replayed (``retried_call``)."""
    if attempt["state"] == "refused" or attempt["answered"] == CALL_ANSWERED:
        return False
    return attempt["answered"] == CALL_CUT_OFF or bool(owner_gone(attempt["owner"]))


def under_way(rt: Runtime, digest: str, *, besides: str | None = None) -> float | None:
    """When the newest call of this request that is under way began (used its approval), as far as this server can
    tell before its creates are in the journal: a call here (``rt.spending``), or one a quote, a question's yes or
    auto-approval (its hold, from the gate's decision) approved in another server on the workspace
    (``QuoteBook.in_use_for``; ``besides``: but the quote named). None when none is."""
    elsewhere = rt.quotes.in_use_for(digest, besides=besides)
    begun = [when for when in (rt.spending.since(digest), elsewhere) if when is not None]
    return max(begun, default=None)


def paid_for(rt: Runtime, attempt: sqlite3.Row) -> bool:
    """Whether a create attempt KIE did not refuse may be paid for: any but one whose task failed (KIE refunds a
    failed task, so asking for the same request again then pays once, as it did before)."""
    if attempt["state"] != "created" or not attempt["task_id"]:
        return True
    task = rt.journal.task_row(attempt["task_id"])
    return task is None or task["state"] != "failed"


def sent_since_quoted(rt: Runtime, quote_id: str, digest: str) -> str | None:
    """Why the quote ``quote_id`` no longer approves its request: the same request was sent after it was issued (a
    create that made a task, got no clear answer, or is still on its way), which whoever approved the quote could
    not know of, so it would pay twice unawares; None when nothing was. A quote issued after such a send came with
    ``twins``' warning (the estimate, the question, ``confirmation_required``), so that one approves it.

    The quote's own use is never such a send: another call (in another server on the workspace) that used this very
    quote while this one looked, the same quote sent twice at once, is left out, and a quote found used once this
    has looked is None here too: the caller answers as for a used quote (``use_approval``: ``consume`` refuses it,
    and the call is answered with what the other made, or told it is on its way), never with a fresh quote that
    would pay for it a second time."""
    try:
        issued = rt.quotes.issued_at(quote_id)
        if issued is None:
            return None  # an unknown quote: ``QuoteBook.refusal`` says so
        rows = [
            row
            for row in rt.journal.recent_attempts(digest, issued)
            if row["quote_id"] != quote_id and paid_for(rt, row)
        ]
        begun = under_way(rt, digest, besides=quote_id)
    except JOURNAL_ERRORS:
        return None
    unknown = [row for row in rows if row["state"] == "unknown"]
    if unknown:
        what = (
            f"sent to KIE at {timestamp(unknown[-1]['created'])}, and that create's outcome is unknown (it may have "
            "been created and charged; https://kie.ai/logs shows it)"
        )
    elif (begun is not None and begun >= issued) or any(row["state"] in ON_ITS_WAY for row in rows):
        what = "sent again, and that call's create is still on its way to KIE"
    elif rows:
        tasks = ", ".join(row["task_id"] for row in rows[-3:] if row["task_id"])
        what = f"made at {timestamp(rows[-1]['created'])}" + (f" (task {tasks})" if tasks else "")
    else:
        return None
    try:  # read last, and only when there is a send to report: used meanwhile, it was by the other call of it
        refusal = rt.quotes.refusal(quote_id, digest)
    except JOURNAL_ERRORS:
        return None
    if refusal is not None and refusal.why == "used":
        return None
    return (
        f"Quote {quote_id} was issued before this same request was {what}, so it no longer approves it (it was left "
        "unused): whoever approved it could not know of that create, and sending it again pays for it twice."
    )


def resolve_model(
    rt: Runtime,
    name: str,
    kind: str | None = None,
    *,
    followup: bool = False,
    default: bool = False,
    notes: list[str] | None = None,
) -> ModelSpec:
    """The model KIE sells under ``name``: refused when withdrawn in the data, gone from KIE's live list or refused
    by KIE as not published (``live.is_gone``), and a model that only continues a finished video (``followup``
    data) unless ``followup`` (continue_video) asks for it. When KIE no longer sells the model a short name or
    title picks, or the tool's default one (``default``: the call named none), the first of the alternatives its
    refusal names that KIE sells is used instead, and ``notes`` gets a line saying so; a model named by its id is
    refused. A model found is kept for the same name while the catalogue and the live catalogue are the same
    objects (each is replaced, never changed, when it changes)."""
    from kie_mcp.catalog.live import gone_from, gone_words, is_withdrawn

    kept = _RESOLVED.get((name, kind, followup))
    if kept is not None and kept[0] is rt.catalog and kept[1] is rt.live:
        return kept[2]
    spec = rt.catalog.resolve(name)
    alternatives = is_withdrawn(rt.live, spec.id, rt.catalog)
    if alternatives is not None:
        gone = gone_words(*gone_from(rt.live, spec.id))
        # Only a caller that says so to the person (a generate call's plan, ``notes``), and only for the tool's
        # default or a name that is not the id, and only a model of the tool's kind doing what the gone one did
        asks = notes is not None and (default or not _names_id(name, spec.id)) and (not kind or spec.kind == kind)
        stand_in = _stand_in(rt, spec, alternatives) if asks else None
        if stand_in is None:
            raise WithdrawnModelError(spec.id, alternatives, gone)
        assert notes is not None
        how = "the default model" if default else f"{plain(name)} named {spec.id}, which"
        notes.append(
            f"{stand_in.id} is used: {how} is no longer offered by KIE ({gone}), and {stand_in.id} is the first "
            f"of what to use instead ({', '.join(alternatives)}) that does what it did. Never auto-approved: it may "
            "cost more. Name a model to choose another."
        )
        return stand_in
    if kind and spec.kind != kind:
        hint = f"{spec.id} makes {spec.kind}s; use generate_{spec.kind} for it."
        raise InvalidRequest(spec.id, [Problem("model", hint)])
    if spec.followup is not None and not spec.followup.standalone and not followup:
        hint = (
            f"{spec.id} continues a finished video; use continue_video(task_id=..., "
            f"operation='{spec.followup.operation}'), or estimate_cost with task_id and operation to price it."
        )
        raise InvalidRequest(spec.id, [Problem("model", hint)])
    if len(_RESOLVED) >= TABLE_PRICES_KEPT:
        _RESOLVED.clear()
    _RESOLVED[(name, kind, followup)] = (rt.catalog, rt.live, spec)
    return spec


def _names_id(name: str, model_id: str) -> bool:
    """Whether ``name`` is the model's id, or its last part as the id writes it (case and spaces aside)."""
    written = name.strip().casefold()
    return written in (model_id.casefold(), model_id.rsplit("/", 1)[-1].casefold())


def _stand_in(rt: Runtime, spec: ModelSpec, alternatives: Sequence[str]) -> ModelSpec | None:
    """The first of ``alternatives`` (a withdrawn model's, best first) that KIE sells, of the same kind and able to
    do all it did (its capabilities: a text-to-video model never stands in by an image-to-video one); or None."""
    from kie_mcp.catalog.live import is_gone

    for model_id in alternatives:
        other = rt.catalog.get(model_id)
        sold = other is not None and other.withdrawn is None and not is_gone(rt.live, model_id, rt.catalog)
        if (
            sold
            and other.kind == spec.kind
            and other.followup is None
            and set(spec.capabilities) <= set(other.capabilities)
        ):
            return other
    return None


# (name, kind, followup) -> the catalogues it was resolved in and the model (``resolve_model``).
_RESOLVED: "dict[tuple[str, str | None, bool], tuple[Catalog, LiveCatalog, ModelSpec]]" = {}


async def checked_lengths(
    spec: ModelSpec, wire: dict[str, Any], files: dict[str, LocalFile], notes: list[str] | None = None
) -> tuple[dict[str, float], list[Problem]]:
    """The lengths of the local files in fields whose data bounds them, and the files outside those bounds
    (``media.duration.check_lengths``); nothing is measured for a model whose data bounds no length. ``notes``
    gets a line for a file whose headers claim less than it plays."""
    if not files or not bounds_lengths(spec):
        return {}, []
    from kie_mcp.media.duration import check_lengths  # loads with the first request that has such a file

    return await check_lengths(spec, wire, local=files, timeout=MEASURE_SECONDS, notes=notes)


async def measure_billed_input(
    rt: Runtime,
    spec: ModelSpec,
    wire: dict[str, Any],
    files: dict[str, LocalFile],
    known: dict[str, float] | None = None,
    notes: list[str] | None = None,
) -> dict[str, float] | None:
    """The length of the input a per-second-of-input price bills (a local file, or a URL within bounds), or None
    when the price does not depend on one. A local file is measured from the very file that was hashed (its bytes
    are what is approved and uploaded; ``known``: lengths ``checked_lengths`` measured already); one swapped or
    rewritten since is refused (``InvalidRequest``), and so is an input whose length its field does not take.
    ``notes`` gets a line for an input whose headers claim less than it plays (priced at what it plays)."""
    if input_to_measure(spec, wire) is None:
        return None
    from kie_mcp.media.duration import measure_inputs  # loads with the first per-second-of-input price

    client = rt.kie.files if rt.kie is not None else None
    return await measure_inputs(
        spec, wire, local=files, client=client, known=known, timeout=MEASURE_SECONDS, notes=notes
    )


def quote_price(
    rt: Runtime, spec: ModelSpec, wire: dict[str, Any], options: str, measured: dict[str, float] | None
) -> tuple[ItemPrice, list[str]]:
    """The price to quote (KIE's live price list where it has the row, else the bundled one; what KIE charged here
    may raise it) and the notes that go with it: warnings about the price and the model's recent health."""
    table = table_price(rt.live, spec, wire, measured)
    if measured is not None:
        price, warning = table, None  # a past charge is for another input's length: never this request's price
    else:
        price, warning = observed_price(rt, spec, options, table)
    # The sandbox's simulated KIE prices by the bundled list itself: its age says nothing there, and the warning (the
    # first thing a new user's demo quote showed, while the sandbox's first price sync ran) only alarmed.
    stale = None if rt.settings.sandbox else staleness(price, price_day(), why_not_refreshed(rt))
    live_only = LIVE_ONLY_PRICE if price.live_only and price.credits is not None else None
    # Said where auto-approval is on, the one place it could have mattered (``auto_approve_limit`` decides it)
    asked = OLD_PRICE_ASKED if rt.settings.auto_approve_credits > 0 and unconfirmed_old(rt, price) else None
    notes = [line for line in (live_only, asked, warning, stale, health_note(rt, spec.id)) if line]
    return price, notes


def table_price(
    live: "LiveCatalog", spec: ModelSpec, wire: dict[str, Any], measured: dict[str, float] | None
) -> ItemPrice:
    """``live_price_input``, kept per live catalogue, model and settings: a request priced again with another prompt
    (estimates in a row) is not priced anew. Exact: the price is a function of the three and of the fields its table
    reads, and a live catalogue or a model is replaced, never changed, when it changes; a table that reads the prompt,
    a measured length or a setting that cannot be kept as a key is priced every time. The same price object is handed
    out again: prices are never changed in place (``model_copy`` makes each variant)."""
    from kie_mcp.catalog.live import live_price_input

    key = None if measured is not None or _reads_prompt(spec) else _frozen(wire, skip="prompt")
    if key is None:
        return live_price_input(live, spec, wire, measured)
    kept = _TABLE_PRICES.get((id(live), id(spec), key))
    if kept is not None and kept[0] is live and kept[1] is spec:
        return kept[2]
    price = live_price_input(live, spec, wire, measured)
    if len(_TABLE_PRICES) >= TABLE_PRICES_KEPT:
        _TABLE_PRICES.clear()
    _TABLE_PRICES[(id(live), id(spec), key)] = (live, spec, price)  # held: their ids are not reused meanwhile
    return price


TABLE_PRICES_KEPT = 512
_TABLE_PRICES: "dict[tuple[int, int, Any], tuple[LiveCatalog, ModelSpec, ItemPrice]]" = {}


def _reads_prompt(spec: ModelSpec) -> bool:
    """Whether the price table of ``spec`` reads the prompt (none in the data: a rate by its words would)."""
    table = spec.price
    if table is None:
        return False
    named = {table.seconds_field, table.count_field}
    for rate in table.rates:
        named.update(key.split("#", 1)[0] for key in rate.when)
        named.update(rate.up_to_per_input)
    return "prompt" in named


def _frozen(value: Any, skip: str | None = None) -> Any:
    """``value`` (a request's JSON) as a key that tells every two different values apart (``True``, ``1`` and ``1.0``;
    ``0.0`` and ``-0.0``), leaving out the member ``skip`` of a mapping; None when it holds anything else."""
    if isinstance(value, dict):
        members = []
        for name, item in value.items():
            if name == skip:
                continue
            kept = _frozen(item)
            if kept is None:
                return None
            members.append((name, kept))
        return ("{}", tuple(sorted(members)))
    if isinstance(value, list | tuple):
        items = tuple(_frozen(item) for item in value)
        return None if None in items else ("[]", items)
    if value is None or isinstance(value, str | bool | int):
        return (type(value), value)
    if isinstance(value, float):
        return (float, repr(value))
    return None


LIVE_ONLY_PRICE = (
    "This price comes only from KIE's live price list (kie-mcp's own catalogue does not have this model), so it is "
    "never auto-approved."
)


# How long a quote (estimate_cost's, or a generate call's at the gate) waits for the first read of KIE's price list
# in a workspace that never had one, by the sync started with the server (a few seconds); then it is quoted from the
# bundled prices, with the warning that says why.
FIRST_PRICES_WAIT = 3.0


async def first_prices(rt: Runtime) -> None:
    """Wait, ``FIRST_PRICES_WAIT`` at most, when no price list of KIE was ever read in this workspace, for the
    catalogue check or sync under way to try KIE's prices (the first thing a sync reads; a check that finds no sync
    due, as after a failed read a moment ago, ends the wait at once), so that a fresh install's first quote is KIE's
    live price, not a months-old bundled one with a warning. A read that fails ends the wait as it fails (the quote
    then says so). An await, cancelled with its call; never under --sandbox, whose simulated list is a copy of the
    bundled prices."""
    priced = rt.catalog_priced
    if rt.settings.sandbox or priced is None or priced.is_set() or rt.live.feed_at is not None:
        return
    with anyio.move_on_after(FIRST_PRICES_WAIT):
        await priced.wait()


def why_not_refreshed(rt: Runtime) -> str:
    """Why a quoted price is not from today's KIE price list: only the reason that holds now, so an agent never
    relays a wrong cause (the first quote of a fresh workspace used to blame a sync that was still running)."""
    if not rt.settings.catalog_sync:
        return "KIE_CATALOG_SYNC is off"
    if rt.kie is None:
        return "no KIE key is set, so KIE's price list cannot be read"
    if rt.reading_prices:
        return "kie-mcp is reading KIE's price list right now; estimate again in a few seconds for today's price"
    live = rt.live
    if live.attempted_at is None:
        return "KIE's price list has not been read yet in this workspace"
    if live.feed_at != live.attempted_at:  # the model list decides when to read again: failed, within the hour
        again = "within the hour" if live.fetched_at != live.attempted_at else "with the next daily refresh"
        return f"the last read of KIE's price list failed (the server's log says why); it is read again {again}"
    return "KIE's price list has no row for this model and these settings"


def offered_models(
    rt: Runtime, *, kind: str | None = None, capability: str | None = None, query: str | None = None
) -> list[tuple[ModelSpec, float | None]]:
    """The models KIE sells (bundled, and live ones the bundle lacks) matching the filters, each with its recent
    success rate when that is below ``HEALTHY``."""
    from kie_mcp.catalog.live import health

    words = (query or "").lower().split()
    found = []
    for spec in _selling(rt, kind, capability):
        if not all(_has_word(_searched(spec), w) for w in words):
            continue
        rate = health(rt.live, spec.id)
        found.append((spec, rate if rate is not None and rate < HEALTHY else None))
    return found


def no_model_matches(rt: Runtime, *, kind: str | None, capability: str | None, query: str | None) -> str:
    """What list_models says when ``offered_models`` finds nothing: the capabilities there are (of the kind asked
    for), that a query's every word must match, and which of its words no model has: a next step, not a dead end."""
    lines = ["No model matches those filters."]
    kinds = _selling(rt, kind, None)
    if capability and not _selling(rt, kind, capability):
        lines.append(f"No {kind + ' ' if kind else ''}model has the capability {plain(capability)}.")
    offered = sorted({name for spec in kinds for name in spec.capabilities})
    lines.append(f"capability takes one of: {', '.join(offered)} (case, '-', '_' and spaces do not matter).")
    words = (query or "").lower().split()
    if words:
        pool = _selling(rt, kind, capability) or kinds
        missing = [word for word in words if not any(_has_word(_searched(spec), word) for spec in pool)]
        said = (
            f"no model has {' or '.join(plain(word) for word in missing)}"
            if missing
            else "each word is in some model, but no one model has them all"
        )
        lines.append(
            "query matches a model only when every word is in its id, name, description, short names or "
            f"capabilities; {said}: try fewer or other words, or a capability."
        )
    return " ".join(lines)


def _selling(rt: Runtime, kind: str | None, capability: str | None) -> list[ModelSpec]:
    """The models KIE sells (none withdrawn, here or from its live list) of ``kind`` with ``capability`` (compared
    with case, '-', '_' and spaces ignored: "lipsync" and "lip_sync" find "lip-sync")."""
    from kie_mcp.catalog.live import still_sold

    wanted = _capability_key(capability) if capability else None
    return [
        spec
        for spec in still_sold(rt.catalog, rt.live)
        if (not kind or spec.kind == kind)
        and (wanted is None or wanted in {_capability_key(name) for name in spec.capabilities})
    ]


def _capability_key(name: str) -> str:
    return "".join(name.lower().replace("-", " ").replace("_", " ").split())


def _searched(spec: ModelSpec) -> str:
    """What list_models' query words are looked for in."""
    return " ".join([spec.id, spec.title, spec.good_for, *spec.aliases, *spec.capabilities]).lower()


def _has_word(text: str, word: str) -> bool:
    """Whether a query ``word`` is in ``text``: anywhere in it ("kont" finds Kontext), but a number only as a number
    of its own, or a version's first part ("2" finds "seedance 2" and "wan 2.6"; never the 2 of "i2v", "1.2" or
    "1024"), so "seedance 2" no longer lists Seedance 1.0's image-to-video models."""
    if not _NUMBER.fullmatch(word):
        return word in text
    return re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text) is not None


_NUMBER = re.compile(r"\d+(?:\.\d+)*")


HEALTHY = 0.9  # below this recent success rate, the user hears about it before spending


def health_note(rt: Runtime, model_id: str) -> str | None:
    from kie_mcp.catalog.live import health

    rate = health(rt.live, model_id)
    if rate is None or rate >= HEALTHY:
        return None
    return (
        f"Warning: KIE reports a success rate of {rate:.0%} for this model over the last 24 hours; tasks may fail "
        "(failed tasks are refunded). Another model may be the safer choice right now."
    )


def options_key(spec: ModelSpec, wire: dict[str, Any], facts: dict[str, Any] | None = None) -> str:
    """The request minus its prompt and inputs, plus the source's facts of a follow-up: what decides the price."""
    options = {k: v for k, v in wire.items() if k != "prompt" and not spec.fields[k].is_media}
    return request_hash(spec.id, {**options, **(facts or {})}, 1)


MEASURE_SECONDS = 10.0  # the longest a quote waits to measure an input's length (then the price stays unknown)


def observed_price(rt: Runtime, spec: ModelSpec, options: str, table: ItemPrice) -> tuple[ItemPrice, str | None]:
    """The price to quote, given what KIE charged before for this model and these options, and any warning.

    A past charge may raise a quote above the table (KIE raised its price), never lower it. It never prices a
    request the table cannot price (those depend on an input's length). A charge of 0, or one less than half the
    table, is reported as a warning and not trusted. One more than 2x the table and above what the caps count for
    it (``ItemPrice.up_to``) is not quoted as the price either, but is what the caps and the auto-approve limit
    count (``up_to``), with a warning: a charge KIE made is never counted as less than it was. It counts for 24 hours
    after its task ended (``FAR_CHARGE_COUNTED_SECONDS``), then the table's price counts again: otherwise a per-call cap
    below that charge would refuse every later call before sending, and no newer charge could ever replace it. A
    charge more than 100x the table (``UNREADABLE_FACTOR``) or above ``MOST_CREDITS_CHARGED`` cannot be what KIE
    charged: it is neither the price nor counted, like an unreadable one (``unreadable_charge``).
    """
    history = rt.journal.charged_before(spec.id, options)
    if not history:
        return table, None
    charged, when, measured = history[0]
    day = datetime.fromtimestamp(when).date().isoformat()
    how = " (measured from the balance: KIE does not report it)" if measured else ""
    if (
        not math.isfinite(charged)
        or charged > MOST_CREDITS_CHARGED
        or (table.credits is not None and charged > table.credits * UNREADABLE_FACTOR)
    ):
        return table, (
            f"Warning: KIE reported a charge of {credits_text(charged)}{how} for this model and these settings on "
            f"{day}, which cannot be what it charged (more than {UNREADABLE_FACTOR:.0f}x the price table's price, or "
            "above any of KIE's rates); it is neither quoted nor counted. Check https://kie.ai/logs."
        )
    if table.credits is None:
        return table, (
            f"KIE charged {credits_text(charged)}{how} for this model and these settings on {day}; that is not used as "
            "the price, because this price depends on the request's inputs."
        )
    confirmed = table.model_copy(update={"confirmed_on": day})  # a charge no higher than it counts bears it out
    if table.up_to is not None and table.credits * FAR_FROM_TABLE < charged <= table.up_to + 1e-9:
        return confirmed, None  # within what the caps already count (a link's picture billed at a higher tier)
    if charged > table.credits * FAR_FROM_TABLE and charged > (table.up_to or 0.0):
        # Far above the table: the price is not raised on one charge, but what KIE took once it may take again, so
        # the caps and the auto-approve limit count it (never auto-approved on the table's lower figure), for a day.
        until = when + FAR_CHARGE_COUNTED_SECONDS
        if time.time() >= until:
            return table, (
                f"KIE charged {credits_text(charged)}{how} for this model and these settings on {day}, far above the "
                f"price table's {credits_figure(table.credits)}; that was more than 24 hours ago, so the table's price "
                "is quoted and counted again. Check https://kie.ai/logs."
            )
        until_text = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M UTC")
        counted = table.model_copy(
            update={
                "up_to": charged,
                "up_to_source": CHARGED_HERE,
                "up_to_date": day,
                "up_to_why": f"KIE charged {credits_text(charged)}{how} for the same model and options on {day}, "
                f"counted until {until_text} (24 hours after that task ended; other settings of this model, or a newer "
                "charge at the table's price, are not affected by it)",
            }
        )
        return counted, (
            f"Warning: KIE charged {credits_text(charged)}{how} for this model and these settings on {day}, far above "
            f"the price table's {credits_figure(table.credits)}; the table's price is quoted, but the caps and "
            f"auto-approval count the {credits_text(charged)} KIE charged until {until_text} (24 hours after that "
            "task ended). To be quoted by the table sooner, ask with other settings of this model, or wait until "
            "then. Check https://kie.ai/logs."
        )
    if charged <= 0 or not (table.credits / FAR_FROM_TABLE <= charged <= table.credits * FAR_FROM_TABLE):
        return table, (
            f"Warning: KIE charged {credits_text(charged)}{how} for this model and these settings on {day}, far from "
            f"the price table's {credits_figure(table.credits)}; the table's price is quoted. Check https://kie.ai/logs."
        )
    if charged <= table.credits + 1e-9:
        return confirmed, None
    raised = table.model_copy(
        update={
            "credits": charged,
            "breakdown": f"{credits_text(charged)} per task, as KIE charged{how} for the same model and options on "
            f"{day} (the price table says {credits_figure(table.credits)})",
            "source": CHARGED_HERE,
            "source_date": day,
        }
    )
    return raised, None


STILL_SENDING = (
    "This same request was sent a moment ago and its call was cut off while its create was still on its way to KIE, "
    "so nothing new was sent: sending it again could pay twice. Ask again in a minute: the answer will then be what "
    "that create made (list_tasks shows it too)."
)


async def check_spend(rt: Runtime, p: Plan) -> Plan:
    """Hard caps, then the live balance. Either refusal is final for this request. Returns the plan with the
    balance it saw. A request that will be answered with what an earlier call made (``replay_of``) spends nothing:
    its caps and balance are not checked (the earlier call's reservation would refuse it). The same request cut off
    by its host while its creates were being sent is waited for first (``rt.spending``), so that it is one."""
    if not await rt.spending.wait_for_cut_off(p.digest):
        raise SpendRefused(STILL_SENDING)
    if replay_of(rt, p) is not None:
        return p
    check_plan_caps(rt, p, rt.ledger.spent_today())
    # A balance read in the last seconds (less what was spent since) when it covers the price twice over (the
    # higher figure KIE was seen charging, when there is one); else, and always for a price not known before the
    # task runs, KIE's answer now. The list price is what is refused below: KIE itself refuses a create the
    # account cannot pay (402, nothing charged), so a balance between the two is let through.
    from kie_mcp.spend.balance import balance_cache

    cache = balance_cache(rt)
    balance = await cache.for_spend(p.counted)
    check_balance(p.total, balance)
    # What a charge KIE does not report is measured from (``measure_unreported_charges``): the read as KIE answered
    # it, kept or made now, and when it was sent, the start of the window the guards look at.
    read = cache.last_read()
    return replace(p, balance=read[0] if read else None, balance_at=read[1] if read else None)


def check_plan_caps(rt: Runtime, p: Plan, spent: float) -> None:
    """``check_caps`` for ``p``, as ``spend`` will reserve it (raises ``SpendRefused``)."""
    check_caps(
        p.counted,
        spent,
        rt.ledger.caps,
        max_credits=p.max_credits,
        ceiling=p.ceiling_weighed,
        most=p.most,
        most_why=p.most_why,
        least=p.least,
        listed=p.listed,
        counted_why=p.price.counted_why,
        held=rt.ledger.held_today,  # asked only when the daily cap refuses: no query on every estimate
        tasks=p.variations,
        overcharged=rt.ledger.overcharged_today,  # asked only when today's spend is already over the cap
        resets=rt.ledger.reset_at,  # likewise: when the cap frees what it holds
    )


def bound_to(p: Plan, quote_id: str) -> Plan:
    """``p`` bound to the quote ``quote_id`` (an approval card's, passed as bind_quote_id) without being approved by
    it: ``decide_approval`` refuses the call, free, when the request is not the one that quote priced (an input
    file replaced since the card was drawn, other settings), and otherwise decides as if no quote were given (the
    confirmation form is asked, or auto-approve applies). A call that also passes quote_id is refused: one quote
    cannot both approve and only bind."""
    if p.quote_id is not None:
        raise InvalidRequest(
            p.spec.id,
            [Problem("bind_quote_id", "pass quote_id (which approves) or bind_quote_id (which only binds), not both.")],
        )
    return replace(p, quote_id=quote_id, quote_binds=True)


UNANSWERED = "The confirmation got no answer within {within}, so it was cancelled."  # then: nothing spent


def unanswered(seconds: float) -> str:
    """``UNANSWERED`` for a question that had ``seconds`` to be answered (a setting under a minute in seconds)."""
    return UNANSWERED.format(within=span_words(seconds))


FORM_APPROVES = (
    "On this client only the user's answer in the confirmation form approves a spend (KIE_APPROVAL=form): a "
    "quote_id binds the call to the quoted request, and the server asks the user when the call is repeated."
)
DECLINED_LATELY = (
    "The user declined this very request {where} at {at}, so it is not auto-approved: ask them again before running it."
)
# What the form says when it asks again about a request the person said no to a moment ago (``decide_approval``):
# the agent sent it again (with its own quote_id, perhaps), which approves nothing on its own meanwhile.
ASKED_AGAIN = "You declined this same request {where} at {at}; it was sent again, so you are asked again."
# What an estimate of such a request says (``estimates.estimate``): it is not auto-approved meanwhile ...
SAID_NO_ESTIMATE = (
    "The user declined this very request {where} at {at}: until {until} it is not auto-approved. Do not run it unless "
    "the user asks for it again."
)
# ... and, to a client that shows forms (KIE_APPROVAL=any), what its quote_id does meanwhile, in place of saying it
# approves: it is no yes of the person's (a client that then refuses the form approves with it: ``_without_the_form``).
SAID_NO_QUOTE_ASKS = (
    "The user declined this very request {where} at {at}, so until {until} it is not auto-approved, and on this "
    "client, which shows forms, quote_id={quote_id} (until {expires}) does not approve it on its own: the generate "
    "call with it asks the user again in the form, and their yes there spends (if the client answers that it cannot "
    "show the form, the quote_id approves the request once, after the user agreed to this cost in the chat). Do not "
    "run it unless the user asks for it again."
)
# What a client that declares forms but refused the one asking again after a No is told (``surface._without_the_form``):
# on it, the person's yes with a quote is all that can approve the request.
REFUSED_FORM_AFTER_NO = (
    "The user declined this very request {where} at {at}: do not run it unless they ask for it again. This client "
    "does not show the form that would ask them, so here their yes to this cost in the chat (or the approval card's "
    "Approve) with the quote_id below approves it."
)
BINDS_ONLY = (
    "bind_quote_id only binds the call to the request that quote priced (as an approval card drew it); it never "
    "approves a spend, so nothing was asked or spent."
)


async def decide_approval(
    rt: Runtime, p: Plan, *, can_ask: bool, answered: bool = False, no_said_by_caller: bool = False
) -> Decision | Declined | Replay:
    """Who approves this request. A question the user is asked is bound to a single-use quote in the journal, so
    a retried request that carries the same answer again gets the earlier result, never a second create.

    With ``KIE_APPROVAL=form`` and a client that can show the form, a quote_id only binds: the request must be the
    quoted one (an input file changed since, a quote used or expired: refused, with a new quote), and the person
    still answers the form. An agent's own estimate is then never an approval. A quote passed as bind_quote_id
    (``bound_to``: the approval card's Approve) binds the same way on every client and under either setting, and
    never approves: on a client without forms a new quote comes back.

    A request whose earlier call was cut off after it created (the host cancelled it, timed out, or lost the
    server) is answered with what that call made: a host's retry never creates twice. A quote issued before the same
    request was sent again (``sent_since_quoted``) approves nothing: whoever approved it did not know of that send.

    A quote the person declined on the approval card (``QuoteBook.decline``) or voided by their No in the
    confirmation form (``QuoteBook.decline_in_form``), passed back as quote_id, is refused saying so: nothing is asked,
    auto-approved or quoted. For a quote's life from that no, the same request is not auto-approved (the person is
    asked, or a new quote comes back), and on a client that shows forms a quote_id of it (the agent's own new
    estimate's) does not approve it on its own: the person is asked again in the form, told they declined it (a
    client that refuses that form is decided as one without forms: ``surface._without_the_form``). A request that
    carries the person's answer to a question of it (2026-07-28) is decided by that answer, open or expired
    (``carried_answer``), never by a quote or auto-approval in its place. ``no_said_by_caller``: the caller's answer
    says that No itself (``surface._without_the_form``), so a question here does not lead with it too."""
    # A call of this request on its way (its warning from ``plan`` alone stops auto-approval) may settle in a moment,
    # having bought nothing (cut off by its host in a 429's wait): waited for briefly, never asked about needlessly.
    waited = priced(p.counted) if p.unsettled and p.quote_id is None else None
    if waited is not None and waited <= auto_approve_limit(rt, replace(p, unsettled=False)):
        p = await settled_twin(rt, p, wait=TWIN_SETTLING_WAIT)
    if (replay := replay_of(rt, p)) is not None:
        return replay
    refusal = rt.quotes.refusal(p.quote_id, p.digest, p.bound) if p.quote_id else None
    problem = None if refusal is None else str(refusal) + made_with(rt, refusal, p.quote_id)
    form_only = can_ask and rt.settings.approval == "form"
    binds_only = form_only or p.quote_binds  # bind_quote_id (an approval card's Approve) binds on every host
    if refusal is not None and refusal.why == "declined" and not binds_only:
        return Declined(f"Not run: {refusal}")
    # The person said no to this very request a moment ago (in the form or on the card): on a client that shows forms,
    # the agent's quote_id does not approve it on its own (the person is asked again); and the person's answer to a
    # question of it, carried by this request (2026-07-28), decides it, whatever else would approve it now: also once
    # that question expired (a No is still a No; a yes is too late), never an auto approval or a quote in its place.
    said_no = rt.quotes.declined_lately(p.digest)
    asks_again = (answered or (can_ask and said_no is not None)) and not binds_only
    # A quote that only binds (KIE_APPROVAL=form) bound the question when it was asked: its answer, in time, is
    # not refused because the quote expired while the form was open.
    bound = binds_only and answered and refusal is not None and refusal.why == "expired" and question_open(rt, p.digest)
    if binds_only and problem is not None and not bound:
        return NeedsConfirmation(f"{problem} {BINDS_ONLY if p.quote_binds else FORM_APPROVES}")
    # Said whether or not the quote has expired since: the 2026-07-28 protocol asks the same question again when
    # the answer comes back, and a question whose text changed in between would be asked a third time.
    changed = price_change(rt, p) if p.quote_id else None
    # A quote issued before this same request was sent again approves nothing: asked, or a new quote with the warning.
    overtaken = None
    if p.quote_id and not binds_only and problem is None:
        overtaken = sent_since_quoted(rt, p.quote_id, p.digest)
    limit = 0.0 if overtaken or answered else auto_approve_limit(rt, p)
    total = priced(p.counted)
    quote_approves = (
        p.quote_id is not None and not (binds_only or asks_again) and (problem or changed or overtaken) is None
    )
    declined = twin = None
    looked = time.time()
    if not quote_approves and not p.unsettled:
        # A call of this request approved since ``plan`` looked (while this one's balance was read; of two identical
        # calls at once, the first's yes used once this one's question would be asked): warned about, as ``plan``
        # would have had it looked now, never auto-approved, and the question or quote handed back leads with it.
        # From here to the claim, the question's quote or the answer below nothing is awaited.
        twin = twins(rt, p.digest)[0]
        if twin is not None:
            p = replace(p, notes=(twin, *p.notes), unsettled=True)
    if not quote_approves and total is not None and total <= limit:  # looked at only where auto-approve would apply
        # The person said no to this very request a moment ago: it is never run unasked meanwhile, whatever quote the
        # call names (one that only binds, one for another request).
        declined = said_no

    def decided(auto_approve_limit: float) -> Decision:
        return decide(
            total=p.counted,  # auto-approved only when what KIE may charge is under the limit
            quote_id=None if binds_only or asks_again else p.quote_id,
            quote_problem=problem or changed or overtaken,
            auto_approve_limit=auto_approve_limit,
            can_ask=can_ask,
            question="",
        )

    decision = decided(0.0 if declined is not None or twin is not None else limit)
    if isinstance(decision, Approved) and decision.by == "auto":  # held from now: the same request sent now is asked
        if (held := await held_for(rt, p, decision, looked)) is not None:
            return held
        # Another server's call of this request holds it (auto-approved there a moment ago): asked, warned about it.
        twin = twins(rt, p.digest)[0] or on_its_way(under_way(rt, p.digest) or time.time())
        p = replace(p, notes=(twin, *p.notes), unsettled=True)
        decision = decided(0.0)
    if isinstance(decision, NeedsConfirmation) and (declined is not None or twin is not None):
        said = None
        if declined is not None and not no_said_by_caller:
            said = DECLINED_LATELY.format(where=declined.where, at=timestamp(declined.at))
        return NeedsConfirmation(" ".join(text for text in (said, decision.reason, twin) if text))
    if not isinstance(decision, Ask):
        return decision
    if answered and (carried := carried_answer(rt, p)) is not None:
        return carried
    # A yes carried by this retried request (2026-07-28) to a question at a lower figure than is counted now: the
    # new question leads with why it is asked again, as the form path's answer says it (``price_change``).
    earlier = unused_question(rt, p) if answered and changed is None else None
    ask = rt.quotes.open_question(
        p.spec.id,
        p.digest,
        p.price,
        p.variations,
        ceiling=p.reserved,
        ttl=rt.settings.confirm_timeout_seconds,
        measured=p.estimate,
        inputs=p.local_inputs,
    )
    # Asked again with its answer (2026-07-28), the question must read as it was shown, word for word, or the answer
    # is dropped and the person asked twice: its notes (a price list being read, a success rate) may have changed.
    shown = rt.quotes.asked_text(ask.quote_id) if answered else None
    if shown is None:  # redacted: the key pasted into a prompt is neither shown in the form nor kept in the journal
        again = None if said_no is None else ASKED_AGAIN.format(where=said_no.where, at=timestamp(said_no.at))
        if earlier is not None and earlier != ask.quote_id:
            changed = price_change(rt, replace(p, quote_id=earlier), asked=True)
        shown = redact(question(p, ask.quote_id, " ".join(text for text in (again, changed) if text) or None))
        rt.quotes.keep_asked_text(ask.quote_id, shown)
    return Ask(shown, ask.quote_id, instead_of_quote=asks_again and p.quote_id is not None)


async def held_for(rt: Runtime, p: Plan, decision: Approved, looked: float) -> Approved | None:
    """``decision``, an auto approval of ``p`` just given, holding its request from now until its call ends: here at
    once, before anything is awaited (``SpendingCalls.claim``), and for every server on the workspace by its hold in
    the journal (``QuoteBook.hold``; in a worker thread while another writer holds the journal's lock, as the spend's
    reservation is written). None, holding nothing, when another server's call of the request holds it already (or
    sent it since the gate ``looked``): of two servers auto-approving the same request at once, one spends."""
    claim = rt.spending.claim(p.digest)
    try:
        hold = functools.partial(rt.quotes.hold, p.digest, p.spec.id, claim.started, looked=looked)
        claim.hold = await rt.journal.off_loop_when_locked(hold)
    except BaseException:
        rt.spending.release(claim)
        raise
    if claim.hold is None:
        rt.spending.release(claim)
        return None
    return replace(decision, claim=claim)


def replaced_since_asked(rt: Runtime, p: Plan) -> KieError | None:
    """The refusal of an answer that comes back (2026-07-28, on a new request) to a question asked about other bytes
    of this request's local files: one was replaced while the form was open, so the yes was for bytes this request
    no longer sends. Priced again, the new file would be asked about in a question a person reads as the same;
    the handshake era's upload refuses it likewise (``approved_bytes``). None when no question was asked about its
    files, or the newest was about these very bytes."""
    if p.local_inputs is None:
        return None
    asked = rt.quotes.asked_inputs(p.local_inputs.shape)
    if asked is None or asked[0] == p.digest:
        return None
    then = asked[1]
    replaced = [plainly(Path(path).name) for path, sha in p.local_inputs.files.items() if then.get(path, sha) != sha]
    why = "the confirmation was answered for its content then"
    if not replaced:  # the same files, another measured length (a linked input): the request changed all the same
        return not_approved("an input of this request", why)
    return not_approved(", ".join(dict.fromkeys(replaced)), why)


def carried_answer(rt: Runtime, p: Plan) -> Ask | Declined | NeedsConfirmation | Replay | None:
    """What decides a request that carries the person's answer to this tool's question (2026-07-28), when the gate
    asks: the newest question of its request as the answer finds it. Answered No before (the same answer retried):
    that No again. Answered yes (in this form, or in another form of it: the request sent twice) or expired: the
    question word for word as it was shown (``Ask.reread``), so the answer is read all the same. A No is recorded and
    answered as one (``record_no``), stopping the yes'd call before its create; a yes is what the first yes bought
    (``replayed``), or too late (``use_approval``). With no text kept to read it by: what the yes bought, or too
    late. None: the open question is asked as usual. A local file replaced since the question was asked about it
    refuses the answer (``replaced_since_asked``)."""
    last = rt.quotes.last_question(p.digest)
    if last is None:
        if (replaced := replaced_since_asked(rt, p)) is not None:
            raise replaced
        return None
    quote_id, used, expired = last
    if used == DECLINED:  # the person's No to it, carried again by a retried request: the same answer
        return Declined(said_no=True, quote_id=quote_id)
    if not (used or expired):
        return None
    if (shown := rt.quotes.asked_text(quote_id)) is not None:
        return Ask(shown, quote_id, reread=True)
    return Replay(quote_id) if used else NeedsConfirmation(unanswered(rt.settings.confirm_timeout_seconds), True)


def question_open(rt: Runtime, digest: str) -> bool:
    """Whether a confirmation question asked for this request is still waiting for its answer: not used, in time."""
    last = rt.quotes.last_question(digest)
    return last is not None and not last[1] and not last[2]


# create attempts that may have reached KIE, with no answer (yet): waiting to be sent again after a 429 too, as its
# live process still sends it (one whose process is gone never reached KIE since its refusal: ``never_resent``)
UNSETTLED = ("unknown", "sending", WAITING)
# How long after a call was cut off sending the same request again counts as retrying it: a host retries within
# minutes. After that the same request is a new one (asked, approved and created as usual).
RETRY_WINDOW = 900.0


def retried_call(rt: Runtime, p: Plan) -> Replay | None:
    """The create attempts of this very request (same digest) whose call's answer never reached the client, made in
    the last ``RETRY_WINDOW``: the call was cut off (cancelled, timed out) or its server is gone. A call still
    running in a live process is no such one: two identical calls at once are two requests."""
    try:
        rows = rt.journal.unanswered_attempts(p.digest, time.time() - RETRY_WINDOW)
    except JOURNAL_ERRORS:
        return None
    if not rows:
        return None
    return Replay(rows[-1]["quote_id"], tuple(row["attempt_id"] for row in rows))


def replay_of(rt: Runtime, p: Plan) -> Replay | None:
    """Whether ``p`` is answered with an earlier call's tasks, creating nothing: a call cut off after its create and
    sent again (``retried_call``), or a used quote whose create may have reached KIE (``unsettled_replay``)."""
    if (retry := retried_call(rt, p)) is not None:
        return retry
    refusal = rt.quotes.refusal(p.quote_id, p.digest) if p.quote_id else None
    if p.quote_id and refusal is not None:
        return unsettled_replay(rt, p.quote_id, p.digest, refusal)
    return None


def unsettled_replay(rt: Runtime, quote_id: str, digest: str, refusal: QuoteError) -> Replay | None:
    """A used quote back for the request it approved while that request's create may have reached KIE (its outcome
    unknown, or still being sent): the answer is that create (``replayed``), never a fresh quote to pay twice."""
    if refusal.why != "used" or rt.quotes.quote(quote_id, digest) is None:
        return None
    if rt.spending.sending(digest) or rt.quotes.being_used(quote_id):  # its call is uploading or sending
        return Replay(quote_id)
    attempts = rt.journal.attempts_for_quote(quote_id)
    if any(attempt["state"] in UNSETTLED and not never_resent(attempt) for attempt in attempts):
        return Replay(quote_id)
    return None


def made_with(rt: Runtime, refusal: QuoteError, quote_id: str | None) -> str:
    """For a used quote: what it was used for (`` It made task t_1.``), so "nothing was spent" reads as what it
    is, nothing spent by this call."""
    if refusal.why != "used" or quote_id is None:
        return ""
    try:
        made = [row["task_id"] for row in rt.journal.attempts_for_quote(quote_id) if row["task_id"]]
    except JOURNAL_ERRORS:
        return ""
    return f" It made task {', '.join(made)} (check_task shows it)." if made else ""


def refused_answer(rt: Runtime, quote_id: str, refusal: QuoteError) -> Declined | NeedsConfirmation | Replay:
    """What a yes whose question's quote cannot be used means: a used quote is a replay (show what it bought), an
    expired one an answer that came too late (nothing spent, ask again), one the person answered No (in another form
    of the same question) that No, anything else the reason as it is."""
    if refusal.why == "used":
        return Replay(quote_id)
    if refusal.why == "declined":
        return Declined(f"Not run: {refusal}")
    if refusal.why == "expired":
        return NeedsConfirmation(unanswered(rt.settings.confirm_timeout_seconds), True)
    return NeedsConfirmation(f"The confirmation could not be used: {refusal}")


def approved_figure(rt: Runtime, quote: Quote, p: Plan) -> float | None:
    """What the question or quote that ``quote`` stands for asked the person to approve (``cost_asked``): what it
    kept when it was issued (``Quote.credits_asked``): the figure the caps counted (``Quote.credits_counted``) when it
    was asked as "up to" it, else the price; None for an unknown price. A price only KIE's live list gives is counted
    at the whole per-call cap as a stand-in (``live_only_counted``) but asked at its price, so its stand-in is never
    taken for what was approved, whatever per-call cap the server reading the yes has (the .env edited since, or
    another server on the workspace). A quote an older kie-mcp issued kept no such figure: its stand-in is told by
    this server's per-call cap."""
    if quote.asked_kept:
        return quote.credits_asked
    total, counted = quote.credits_total, quote.credits_counted
    if total is None or counted is None or counted <= total + 1e-9:
        return total
    stand_in = round(rt.ledger.caps.per_call * quote.variations, 4)
    if p.price.up_to_source == LIVE_ONLY and abs(counted - stand_in) <= 1e-6:
        return total
    return counted


def asked_now(p: Plan) -> float | None:
    """What ``p`` would be asked to approve now (``cost_asked``'s figure, as a quote issued now keeps it,
    ``asked_credits``): "up to" the figure the caps count when it is higher than the price (never a live-only price's
    stand-in, ``Plan.ceiling_weighed``), else the price."""
    return asked_credits(p.price, p.variations)


def price_change(rt: Runtime, p: Plan, *, asked: bool = False) -> str | None:
    """Why the quote given with the request (``p.quote_id``) no longer approves it: what the request would be asked
    to approve now (``asked_now``: its price, or "up to" the higher figure the caps count, KIE seen charging more)
    is more than the question or quote asked (``approved_figure``), or its price became unknown, or (for a quote of
    an unknown price) it would reserve more than the quote's ceiling. None when what was asked still covers the
    request: the same figure, or a lower one (a fall asks nothing again: the person approved spending up to the
    higher figure, what is reserved and counted is the lower one now, and a question asked again for less would
    only repeat a yes already given). The user approved the figure they read, never whatever it became.
    ``asked``: the quote is a form question's, answered yes (said as the question, not as a quote)."""
    quote = rt.quotes.quote(p.quote_id, p.digest) if p.quote_id else None
    if quote is None:
        return None  # an unknown quote_id, or one for another request: ``QuoteBook.problem`` says so
    was = quote.credits_total
    approved = approved_figure(rt, quote, p)
    now_asked = asked_now(p)
    if approved is not None and now_asked is not None and p.total is not None:
        if now_asked <= approved + 1e-9:
            return None
        if now_asked > p.total + 1e-9:  # the caps count more than the price (why: right after the new cost)
            now = f"is now counted at up to {credits_text(now_asked)} against your caps"
        else:
            now = f"now costs {credits_text(p.total)}"
    elif was is not None:
        now = f"now has no price known before it runs (up to {credits_text(p.reserved)} would be reserved for it)"
    else:  # the quote was for an unknown price, approved up to its ceiling
        limit = quote.credits_ceiling
        cost = p.total if p.total is not None else p.reserved
        if limit is not None and cost <= limit + 1e-9:
            return None
        now = (
            f"now costs {credits_text(p.total)}"
            if p.total is not None
            else f"would now reserve up to {credits_text(p.reserved)}"
        )
    if approved is not None and was is not None and approved > was + 1e-9:
        said = f"up to {credits_text(approved)}"  # as the question asked it ("Spend up to 30 credits")
    elif was is not None:
        said = credits_text(was)
    elif quote.credits_ceiling is not None:
        said = f"an unknown price, up to {credits_text(quote.credits_ceiling)}"
    else:
        said = "an unknown price"
    if asked:
        return (
            f"The price changed while the confirmation was open: it said {said}, and this request {now}. That yes "
            "does not approve the new price, so nothing was sent."
        )
    return (
        f"The price changed since quote {quote.quote_id} was given: it said {said}, and this request {now}. "
        "That quote does not approve the new price; it was left as it was."
    )


# What the confirmation form and the approval card add for a request holding text shaped like a credential
# (``hides_credentials``): shown as [redacted], as every answer shows it, it is sent as written, and a person reading
# [redacted] would take it as left out.
SENT_AS_WRITTEN = (
    "Text shown as [redacted] is sent to KIE as written: it is shaped like a credential (a token, a password), and "
    "kie-mcp takes only your KIE key out of a request; remove it from the prompt if it is a real credential."
)


def question(p: Plan, confirmation: str | None = None, why: str | None = None) -> str:
    """The confirmation text, led by ``why`` it is asked again (a quote whose price changed). Deterministic: the
    2026 protocol may ask it twice and compare."""
    cost = f"an UNKNOWN number of credits ({unknown_cost(p)})" if p.total is None else cost_asked(p)
    seen = seen_charging(p.price, p.variations)  # KIE charged more than its list: said with the question itself
    warned = p.notes[:1] if p.unsettled else ()  # the same request's unknown outcome (``twins``) leads
    notes = "".join(f" {note}" for note in p.notes[len(warned) :])
    ref = f" (confirmation {confirmation})" if confirmation else ""
    lead = "".join(f"{text} " for text in (*warned, why) if text)
    return (
        f"{lead}Spend {cost} to make {what_is_made(p)}?{f' {seen}' if seen else ''} "
        f"{settings_text(p)}.{prompt_excerpt(p)}{notes} "
        f"Nothing is charged unless you confirm{ref}."
    )


def cost_asked(p: Plan) -> str:
    """The known cost a person is asked to approve, as the form's question and ``confirmation_required`` both lead
    with it: the figure the caps count when it is higher than the price (``Plan.counted``: KIE charged 30 here for an
    8-credit image, a link's picture may bill a higher tier), "up to" it, since that is what KIE may take again and
    what the approval lets through; the price otherwise (a price only KIE's live list gives is counted at the whole
    per-call cap as a stand-in, ``Plan.ceiling_weighed``: no charge anyone saw, so never asked for)."""
    total = p.total or 0.0
    asked = p.ceiling_weighed
    if asked is not None and asked > total + 1e-9:
        return f"up to {credits_text(asked)} (about {usd_text(usd(asked))})"
    return f"{credits_text(total)} (about {usd_text(usd(total))})"


def what_is_made(p: Plan) -> str:
    """What the request makes and with which model, as every confirmation a person reads says it (the form's
    question, and ``confirmation_required`` on a client without forms): '1 video with Veo 3.1 Fast (veo3_fast)', the
    model the request resolved to, whatever name the call gave it."""
    return f"{outputs_text(p)} with {p.spec.title} ({p.spec.id})"


def prompt_excerpt(p: Plan) -> str:
    """The prompt sent, as every confirmation a person reads quotes it: ' Prompt: "...".', its start, on one line,
    its breaks written \n (a host showing the text as markdown would make "\n## Cost: 0 credits" in a prompt a
    heading of its own, read as kie-mcp's and not the prompt's); then, for a request holding text shaped like a
    credential, that it is sent as written. Empty for a request with no prompt."""
    prompt = str(p.wire.get("prompt", ""))
    excerpt = f" Prompt: {quoted_excerpt(prompt, limit=92)}." if prompt else ""
    return excerpt + (f" {SENT_AS_WRITTEN}" if hides_credentials(p.wire) else "")


def unknown_cost(p: Plan, *, refused: bool = False) -> str:
    """What a request whose price is not known (or not bound) before it runs is said to cost, in the question, the
    estimate and ``confirmation_required`` alike: what is reserved and why, and, for a price measured from a link,
    that figure and what KIE may charge instead. ``refused``: a cap refuses it (an estimate says why), so nothing is
    reserved, and the figure is what it would count."""
    counted = "would be counted" if refused else "reserved"
    reserved = f"{credits_figure(p.reserved)} {counted} against today's cap, about {usd_text(usd(p.reserved))}"
    if p.estimate is not None:
        limit = (
            f"may charge up to {credits_figure(p.most)} (the longest input the field takes); {reserved}"
            if p.most is not None
            else f"no documented limit bounds that length, so it may charge more; {reserved} (the whole per-call cap)"
        )
        return (
            f"about {credits_text(p.estimate)} at the length the link served when kie-mcp measured it, not bound to "
            f"that: KIE fetches the link itself and bills the length it gets, and {limit}. {BIND_IT}"
        )
    if p.most is not None:
        return (
            f"{reserved}: the most it can cost at the catalogue's rates; the price is not known before the task runs, "
            "and KIE charges its current rate, which may be more than that"
        )
    return (
        f"{reserved}; the price is not known before the task runs, and KIE charges its current rate, which may be "
        "more than that"
    )


def outputs_made(p: Plan) -> tuple[int, int, bool]:
    """How many results the request makes in all and per task (variations x the model's count field: Imagen's
    ``num_images``, Seedream's ``max_images``), and whether that is only the most it makes (``max_images``)."""
    each, at_most = p.spec.outputs_per_task(p.wire)
    return each * p.variations, each, at_most and each > 1


def outputs_text(p: Plan) -> str:
    """What the request makes, as the confirmation text and the approval card say it: '1 image', '4 images',
    'up to 6 images', '8 images (2 variations of 4)'."""
    total, each, at_most = outputs_made(p)
    things = f"{'up to ' if at_most else ''}{total:g} {p.spec.kind}{'s' if total > 1 else ''}"
    if each > 1 and p.variations > 1:
        things += f" ({p.variations} variations of {'up to ' if at_most else ''}{each})"
    return things


def settings_shown(p: Plan) -> list[tuple[str, Any]]:
    """The request's settings as the user sets them, for the confirmation text and the approval card alike: tool
    argument names where KIE's field has one (``audio`` for Kling's ``sound``), KIE's names for options; every one
    sent but the prompt and the input files (structured ones too: Kling's shots and elements are what is paid for)."""
    return [(argument_name(p.spec, k), v) for k, v in p.wire.items() if k != "prompt" and not p.spec.fields[k].is_media]


STRUCTURED_SHOWN = 600  # characters of a structured setting (Kling's shots) the confirmation text shows


def _setting_text(value: Any) -> str:
    """A setting in the confirmation text: a structured one (Kling's shots) long enough to read what is paid for."""
    if isinstance(value, list | dict):
        return plain(value, quoted=False, limit=STRUCTURED_SHOWN)
    return plain(value, quoted=False)


INPUTS_NAMED = 4  # input files the confirmation text names; the rest are counted


def settings_text(p: Plan) -> str:
    """``settings_shown`` in words, JSON values, and the input files by name (as the call wrote them: a path or a
    link, its file name whole: ``input_text``), so a person asked to approve sees which pictures are sent, not only
    how many. The estimate, the confirmation form and the confirmation to approve in the chat all say it."""
    shown = [f"{name}={_setting_text(value)}" for name, value in settings_shown(p)]
    inputs = [v for k, v in p.wire.items() if p.spec.fields[k].is_media for v in ([v] if isinstance(v, str) else v)]
    if inputs:
        named = [input_text(value) for value in inputs[:INPUTS_NAMED]]
        if len(inputs) > INPUTS_NAMED:
            named.append(f"and {len(inputs) - INPUTS_NAMED} more")
        files = "1 input file" if len(inputs) == 1 else f"{len(inputs)} input files"
        shown.append(f"{files}: {'; '.join(named)}")
    return "Settings: " + (", ".join(shown) if shown else "defaults")


INPUT_SHOWN = 160  # characters of an input file's path or link a confirmation shows at most (about: see input_text)
FOLDERS_SHOWN = 12  # of them, the fewest left for its folders when its file name is long
QUERY_SHOWN = 16  # of them, the fewest a link's query keeps when it is cut (its start: "?export=download&id=…")
CUT = "\u2026"  # where a path is cut: one character (…), never read as a folder named "..."
EXTENSION = 16  # the longest extension a long file name keeps when it is cut


def input_text(value: str) -> str:
    """An input file (a path or a link, as the call wrote it) as a confirmation names it: as JSON shows text
    (``plain``'s quotes and escapes), whole up to ``INPUT_SHOWN`` characters. A longer one keeps its file name whole
    and is cut in the middle of its folders (``"references/clients/…/approved/passport-scan-private.png"``); a file
    name too long for that is cut in its middle, keeping its extension. A link keeps its scheme and host whole too,
    and its query (a signed link's signature, credential and dates, which hold slashes of their own) is cut first, to
    its start: ``"https://acme-private.s3.amazonaws.com/hr/…/passport-scan.png?X-Amz-Algorithm=AWS4…"``. The person
    approving sees which file is sent and from where, never a folder prefix (or a signature) two files share. The API
    key is redacted before anything is cut, so no piece of it shows."""
    text = redact_secrets(value)
    if len(text) > INPUT_SHOWN:
        link = _link_parts(text)
        text = _path_text(text) if link is None else _link_text(*link)
    return plain(text, limit=len(text) * 12 + 2)  # never cut by plain: what it adds is its quotes and escapes


def _path_text(text: str, limit: int = INPUT_SHOWN) -> str:
    """A path (or a link's path) in about ``limit`` characters: its file name whole, its folders cut in their middle
    at a folder's edge; a file name too long for that cut in its middle, keeping its extension."""
    split = max(text.rfind("/"), text.rfind("\\")) + 1
    folders, name, separator = text[:split], text[split:], text[split - 1 : split] or "/"
    if len(name) > limit - FOLDERS_SHOWN:
        dot = name.rfind(".", 1)
        extension = name[dot:] if dot > 0 and len(name) - dot <= EXTENSION else ""
        stem = name[: len(name) - len(extension)]
        name = _middle_cut(stem, max(limit - FOLDERS_SHOWN, EXTENSION + 8) - len(extension)) + extension
    return _middle_cut(folders, limit - len(name), at=separator) + name


def _link_parts(text: str) -> tuple[str, str, str] | None:
    """A link's ``scheme://host``, its path, and its query and fragment (``?…#…``); None for what is no link with a
    host (a local path, ``C:\\…``)."""
    try:
        parts = urlsplit(text)
    except ValueError:  # a bracketed host that is no address: shown as a path
        return None
    if not parts.scheme or not parts.netloc or not text.startswith(f"{parts.scheme}://{parts.netloc}"):
        return None
    origin = f"{parts.scheme}://{parts.netloc}"
    rest = text[len(origin) :]
    end = min((at for at in (rest.find("?"), rest.find("#")) if at >= 0), default=len(rest))
    return origin, rest[:end], rest[end:]


def _link_text(origin: str, path: str, query: str) -> str:
    """A long link in about ``INPUT_SHOWN`` characters: ``origin`` (scheme and host) whole; its query cut first, to
    its start (down to ``QUERY_SHOWN``), then its path as ``_path_text`` cuts one."""
    room = INPUT_SHOWN - len(origin)
    if len(path) + len(query) > room and len(query) > QUERY_SHOWN:
        keep = max(room - len(path), QUERY_SHOWN) - 1
        query = query[: cut_point(query, keep)] + CUT
    if len(path) + len(query) > room:
        path = _path_text(path, max(room - len(query), FOLDERS_SHOWN + EXTENSION + 8))
    return origin + path + query


def _middle_cut(text: str, limit: int, *, at: str = "") -> str:
    """``text`` in about ``limit`` characters, its start and its end kept with ``CUT`` between them, never splitting a
    character as a reader sees it (``cut_point``); with ``at`` (a path's separator), cut at a folder's edge where that
    keeps at least half of each side."""
    if len(text) <= limit:
        return text
    keep = max(limit - 1, 2)
    head = text[: cut_point(text, keep // 2)]
    tail = text[cut_point(text, len(text) - (keep - keep // 2)) :]
    if at:
        end = head.rfind(at)
        head = head[: end + 1] if end >= len(head) // 2 else head
        start = tail.find(at, 0, len(tail) - 1)
        tail = tail[start:] if 0 <= start < len(tail) // 2 else tail
    return head + CUT + tail


FORM_REFUSED = (
    "This server spends only with the user's yes in the client's confirmation dialog (KIE_APPROVAL=form), and this "
    "client does not show it, so repeating the call cannot approve it: use a client that shows the dialog, or have "
    "the user set KIE_APPROVAL=any to approve in the chat with a quote_id."
)


def confirmation_required(
    rt: Runtime,
    p: Plan,
    tool: str,
    why: str | None = None,
    status: Status = "confirmation_required",
    *,
    only_form: bool = False,
) -> GenerationResult:
    # Before this one is issued: an open quote for this very request, issued by estimate_cost or by an earlier answer
    # like this one (the journal does not record which), so the text names neither; never one issued before the
    # request was sent again (``sent_since_quoted``), which no longer approves it.
    earlier = rt.quotes.open_estimate(p.digest) if p.quote_id is None else None
    if earlier is not None and (
        sent_since_quoted(rt, earlier, p.digest) is not None or rt.quotes.refusal(earlier, p.digest) is not None
    ):
        earlier = None  # overtaken, or used since ``open_estimate`` read it (another server's call of it)
    quote = rt.quotes.issue(
        p.spec.id, p.digest, p.price, p.variations, ceiling=p.reserved, measured=p.estimate, request=p.bound
    )
    cost = f"an UNKNOWN number of credits ({unknown_cost(p)})" if quote.credits_total is None else cost_asked(p)
    # The same request's unknown outcome, or its call still under way (``twins``), leads, as in the question: it is
    # why this was not approved on its own, and what the user must hear before approving it.
    warned = p.notes[:1] if p.unsettled else ()
    lead = "".join(f"{text} " for text in (why, *warned) if text)
    seen = seen_charging(p.price, p.variations)  # KIE charged more than its list: said right after the price
    notes = "".join(f" {note}" for note in p.notes[len(warned) :])  # after the cost and the next step
    if only_form:  # a quote_id cannot approve here, and this client refuses the form that can
        next_step = FORM_REFUSED
    else:
        next_step = (
            f"The user must approve this cost first; once they do, call {tool} again with the same arguments and "
            f"quote_id='{quote.quote_id}' (valid until {quote.expires_at})."
        )
        if earlier:
            next_step += (
                f" If the user already approved the quote {earlier} issued earlier for this very request, that one "
                f"approves it too: pass quote_id='{earlier}' instead."
            )
    costs = f"This request makes {what_is_made(p)} and costs {cost}: {quote.breakdown.rstrip('.')}."
    # What is approved, as the form's question says it (``what_is_made``, ``prompt_excerpt``): on a client without forms
    # this is the only confirmation the person reads, so it names the model the request resolved to, the prompt, the
    # settings and the input files that would go to KIE's public file host.
    message = (
        f"{lead}Nothing was spent. {costs}{f' {seen}' if seen else ''} {settings_text(p)}.{prompt_excerpt(p)} "
        f"{next_step}{notes}"
    )
    result = GenerationResult(status=status, message=message, model=p.spec.id, quote=quote, sandbox=rt.settings.sandbox)
    result._why = why
    result._plan = p  # the card is drawn from the plan this quote prices (``priced_plan``)
    return result


# -- after the gate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """How long a spending call waits for its tasks' results: ``seconds`` (its ``wait_seconds``) counted from the
    moment the call arrived (``since``, ``time.monotonic()``), never from its approval. The person's time in the
    confirmation form and the input files' uploads come out of it, so the call answers within about ``seconds`` (and
    its creates) of its arrival: a host gives a request 60 s of its own (the TypeScript SDK's default, which progress
    does not extend), and a call answered after it timed out there has created and charged tasks whose ids it never
    showed. The one place the wait left is reckoned (``left``), wherever a call of this request waits."""

    seconds: float
    since: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        """What is left of the wait now, never below 0: nothing left, the tasks are answered as they are (their ids,
        their state, how to follow them), at once."""
        return max(0.0, self.seconds - (time.monotonic() - self.since))


async def execute(
    rt: Runtime,
    p: Plan,
    decision: Approved | Declined | NeedsConfirmation | Replay,
    *,
    tool: str,
    wait: Wait,
    progress: Progress,
) -> GenerationResult:
    claim = decision.claim if isinstance(decision, Approved) else None  # an auto approval's hold on its request
    try:
        if isinstance(decision, Replay):
            return await replayed(rt, p, tool, decision, wait=wait, progress=progress)
        if isinstance(decision, Declined) and decision.said_no:  # the person's No in the form: it holds a while
            decision = await record_no(rt, p, decision)
        if not isinstance(decision, Approved):
            return without_spending(rt, p, tool, decision)
        if decision.by == "elicitation" and decision.quote_id is not None:  # a yes to a form asked in this very call
            p = repriced(rt, p)  # the user took their time: the yes approves the price they read, never a higher one
            if (changed := price_change(rt, replace(p, quote_id=decision.quote_id), asked=True)) is not None:
                return without_spending(rt, p, tool, NeedsConfirmation(changed))
        elif (
            # A yes carried by this retried request (2026-07-28) to the question as it was shown (``carried_answer``
            # rereads it word for word), priced afresh by this request: it approves the figure it asked, never more.
            decision.by == "elicitation"
            and (asked := unused_question(rt, p)) is not None
            and (changed := price_change(rt, replace(p, quote_id=asked), asked=True)) is not None
        ):
            return without_spending(rt, p, tool, NeedsConfirmation(changed))
        # When this call's approval is used: a Decline of its request on the approval card from then on stops its
        # creates (``still_wanted``); an auto approval's, when the gate gave it (``SpendingCalls.claim``).
        approved_at = decision.claim.started if decision.claim is not None else time.time()
        decision = use_approval(rt, p, decision)
        if isinstance(decision, Replay):  # the same approval used at once by another call here: what it made
            return await replayed(rt, p, tool, decision, wait=wait, progress=progress)
        if not isinstance(decision, Approved):
            return without_spending(rt, p, tool, decision)
        # The call of this request it was warned of at planning (still on its way then) may have settled since,
        # buying nothing: its warning is then not repeated in this call's answer. An auto approval is given only
        # once the gate found it so (``decide_approval``), and this call's own claim would count as one on its way.
        if decision.by == "auto" and p.unsettled:
            p = replace(p, notes=p.notes[1:], unsettled=False)
        p = await settled_twin(rt, p, besides=decision.quote_id)
        try:
            made = await made_once(rt, p)
        except BaseException:  # cut off while it waited for another call: nothing was sent, the approval stays good
            _give_back(rt, decision.quote_id)
            raise
        if made is not None:
            _give_back(rt, decision.quote_id)
            return made
        # From the moment its approval is used (nothing is awaited in between), this call is known to be sending
        # (``rt.spending``): the same request sent meanwhile, while this one's input files go up, is told a create is
        # on its way (``in_flight_create``), never handed a fresh quote with "nothing was spent". A host that cuts this
        # call off is known at once, while the shielded creates still run: its retry waits for them and gets what they
        # made.
        # An auto approval's hold on its request, for the other servers on the workspace: its lease is renewed
        # while the call spends (``QuoteBook.holding``; the wait above for another call's follow-up is seconds).
        renewed = rt.quotes.holding(None if claim is None else claim.hold)
        async with rt.spending.spending(p.digest, *once_key(p), claimed=decision.claim), renewed:
            wanted = still_wanted(rt, p, decision.quote_id, approved_at)
            return await _spend(rt, p, decision, wanted, tool=tool, wait=wait, progress=progress)
    finally:  # its spend took the hold over and ended, or the call ended without one: the request is free again
        if claim is not None:
            rt.spending.release(claim)
            rt.quotes.let_go(claim.hold)  # for the other servers on the workspace too


async def record_no(rt: Runtime, p: Plan, decision: Declined) -> Declined:
    """Record the person's No in the confirmation form (``QuoteBook.decline_in_form``), for the question it answered
    (in the 2026-07-28 era, the newest asked for this request, expired or not): its request is declined as on the
    approval card, and the answer (``without_spending``) says what the agent is to do. What the No met is kept on the
    decision: a create of it sent while the form was open (the agent's own quote_id, approved meanwhile), or the call
    the person said yes to in another form of the same question, stopped by it; a No the journal could not keep is
    said not to hold beyond this answer."""
    try:
        asked = decision.quote_id
        if asked is None and (last := rt.quotes.last_question(p.digest)) is not None:
            asked = last[0]
        if asked is None:
            raise QuoteError("no confirmation question of this request is in the journal", "unknown")
        met = await rt.journal.off_loop_when_locked(functools.partial(rt.quotes.decline_in_form, asked))
    except (QuoteError, *JOURNAL_ERRORS) as err:
        log.warning("a No in the confirmation form could not be recorded: %s", err)
        note = (
            f"kie-mcp could not record this No in its journal ({err}), so it holds for this call only: ask the user "
            "before calling again."
        )
        return replace(decision, reason=note)
    return replace(decision, reason=None, sent_at=met.sent, stopped_yes=met.stopped_yes)


def still_wanted(rt: Runtime, p: Plan, quote_id: str | None, since: float) -> Callable[[], bool]:
    """Whether a create of this call may still be sent: asked right before each one is journaled and sent
    (``_submit``), and before each resend after a 429 (``KieClient.create``). False once the person declined the
    request on the approval card after this call's approval was used (``since``), whatever approved it (its own
    quote, another quote, a form's yes or auto-approval; ``QuoteBook.decline``), or answered No in a confirmation
    form of it put to them before that (``QuoteBook.decline_in_form``). A journal that cannot be read
    says nothing against it: the attempt's own write meets the same journal and settles the create as not sent."""

    def wanted() -> bool:
        try:
            declined = rt.quotes.declined_since(p.digest, since) or (
                quote_id is not None and rt.quotes.declined_before_create(quote_id)
            )
        except JOURNAL_ERRORS:
            return True
        return not declined

    return wanted


async def _spend(
    rt: Runtime,
    p: Plan,
    decision: Approved,
    wanted: Callable[[], bool],
    *,
    tool: str,
    wait: Wait,
    progress: Progress,
) -> GenerationResult:
    """Reserve, upload, create and follow: the spend of an approval ``execute`` used. ``wanted``: whether a create
    may still be sent (``still_wanted``)."""
    used = decision.quote_id
    kie = rt.require_kie()
    held: Reservation | None = None
    doing = "its credits were being reserved"  # what a workspace that cannot be written stopped
    try:
        # Reserved before any input file goes up, in a transaction that re-checks the caps (parallel calls cannot
        # overrun them): a request the caps refuse has published nothing on KIE's file host. With local files, the
        # reservation is held while they go up: given back when an upload fails or the call is cut off (nothing was
        # sent), and renewed meanwhile (``Ledger.holding``), so one a killed process left lapses minutes later,
        # released at the next look at the ledger (``Ledger.spent_today``).
        held = await rt.journal.off_loop_when_locked(functools.partial(_reserve, rt, p, used, held=bool(p.files)))
        doing = "this request's input files were being uploaded"
        try:
            async with rt.ledger.holding(held):
                wire, upload_notes = await upload_local_files(kie, p.spec, p.wire, p.files, rt.journal)
        except RefusedHereError as err:  # kie-mcp's own refusal (a changed file): it says so, and nothing was sent
            raise RefusedHereError(
                f"an input file was refused before anything was created: {err.message}",
                category=err.category,
                next_step="Nothing was spent. " + err.next_step,
            ) from err
        except KieError as err:
            raise KieError(
                f"uploading an input file failed before anything was created: {err.message}",
                code=err.code,
                category=err.category,
                next_step=err.next_step
                if err.next_step.startswith(UPLOAD_FAILED)  # the upload's own words say nothing was charged
                else "Nothing was spent. " + err.next_step,
            ) from err
        # The held reservation becomes the request's. From here to each create's attempt in the journal nothing
        # waits, so nothing can cut in between (a journal another writer holds is waited for in a worker thread,
        # shielded: the reservation, once kept, is followed by its attempts before anything else runs here).
        doing = "its credits were being reserved"
        booked = await rt.journal.off_loop_when_locked(functools.partial(_kept, rt, p, held, used))
    except (sqlite3.Error, OSError) as err:  # a full disk while the inputs went up: nothing was sent
        rt.ledger.release(held)
        _give_back(rt, used)
        raise JournalUnavailable(unwritten_before_create(err, doing, tool, used, decision.by)) from err
    except BaseException:  # cut off, an upload failed or a cap refused: nothing was sent, the approval stays good
        rt.ledger.release(held)
        _give_back(rt, used)
        raise
    p = replace(p, reserved_on=booked.day, reserved_at=booked.at, reservation=booked.entry)
    rt.spending.begin_creates(p.digest)  # a replay of this approval now waits a moment for its creates' answers
    records: list[TaskRecord] = []
    attempts: list[str] = []  # this call's create attempts (the journal's ids)
    problems: list[str] = []
    prompt = str(p.wire.get("prompt", ""))
    begun = 0  # creates whose attempt was begun: journaled and sent, or refunded as not sent (``_submit``)
    sent: list[TaskRecord] = []  # creates that got their turn in KIE's create window and went to ``_submit``

    try:
        approval = grant(p.spec.id, p.variations, decision.by, p.total, reserved=p.reserved)
        route = route_of(rt, p.spec)
        if route is not None:  # the model on KIE's unified endpoint: the same request, written in that form
            family = FAMILIES[UNIFIED_FAMILIES[p.spec.family]]
            body = family.create_body(route.model, route.input_of(wire))
        else:
            family = FAMILIES[p.spec.family]
            body = family.create_body(p.spec.id, wire)

        async def submit_one() -> None:
            nonlocal begun
            record = TaskRecord(
                task_id=None,
                model=p.spec.id,
                family=family.name,
                kind=p.spec.kind,
                state="queued",
                credits_quoted=p.price.credits,
                credits_reserved=p.reserved_each,
                reserved_on=p.reserved_on,
                reserved_at=p.reserved_at,
                sandbox=rt.settings.sandbox,
                parent_task_id=p.parent_task_id,
                operation=p.operation,
            )
            records.append(record)
            # A create first waits for its turn in KIE's create window (20 per 10 s): unsent, it gives up when its
            # call is cut off or a stop closes the gate, and is settled as not sent. From its turn on, sending it and
            # recording its answer are one unit: a cancelled call, a host's timeout or a failing sibling cannot split
            # them, so a task KIE created is always in the journal (or in the answer). A host's SIGTERM waits for it
            # too (``stopping``), and once one came no create starts.
            async with CREATES.waiting() as given_up:
                with anyio.CancelScope(shield=True):  # the wait ends by ``given_up``, and is then settled here
                    slot = await kie.create_turn(family, p.spec.id, approval, given_up)
                    with CREATES.sending() as sendable:
                        begun += 1
                        if slot is None or not sendable:  # settled here, as _submit settles one it could not journal
                            if slot is not None:
                                slot.not_counted()
                            _not_sent(rt, p, record, problems, stopping=CREATES.closed)
                            return
                        sent.append(record)
                        attempt = await _submit(
                            rt,
                            kie,
                            family,
                            p,
                            body,
                            wire,
                            approval,
                            record,
                            prompt,
                            used,
                            decision.by,
                            problems,
                            slot,
                            given_up,
                            wanted,
                        )
                        # Known to this call in the same shielded unit: a cut-off landing as the unit ends (the next
                        # await) would otherwise leave a create KIE made unmarked (``_answered``), and its retry
                        # would answer without its task.
                        if attempt is not None:
                            attempts.append(attempt)

        async with anyio.create_task_group() as group:
            for _ in range(p.variations):
                group.start_soon(submit_one)

        reporter = ProgressReporter(progress, len(records))
        # The follower polls, journals every answer, and settles and saves each task as it ends; this call only
        # waits on it (progress notifications go out while it does) and gets the problems it met.
        ended = {r.task_id for r in records if r.task_id and r.state == "succeeded" and r.unsaved_links}
        earlier = {r.task_id for r in records if r.earlier and r.task_id}  # the follower's records carry no mark
        # What is left of the call's wait once its creates are answered: the form and the uploads took the rest.
        records, followed = await rt.follower.wait(records, wait.left(), reporter)
        for record in records:  # ended before it was followed (a done 4K KIE answered with its links): saved here
            if record.task_id in ended:
                try:
                    followed += (await rt.follower.save_now(record, wait.left()))[0]
                finally:  # what this call did not save, the follower saves in the background
                    rt.follower.save_later(record)
        charged = [record.credits_charged for record in records]
        problems += await measure_unreported_charges(rt, p, records, attempts)
        measured = [record for record, before in zip(records, charged, strict=True) if record.credits_charged != before]
        for record in measured:
            await _record_off_loop(rt, problems, record)
        problems += followed
        # Once per task, ever: a no-op but for a charge measured just now (the follower settled each as it ended), and
        # then without the write lock (``Ledger.adjust``).
        problems += await settle_off_loop(rt, records)
        problems += await describe_charges(rt, measured)
        if bought_nothing(sent):  # KIE refused every create (or none was sent): the approval is good again
            _give_back(rt, used)
        told = tuple(note for note in p.notes if not note.startswith((MADE_BEFORE, MADE_RECENTLY)))  # the quote's
        uploaded = (note for note in upload_notes if note not in told)  # an upscale the quote already said
        notes = (cost_line(rt, p, records, decision.by, earlier), *told, *uploaded, *dict.fromkeys(problems))
        result = summarise(rt, p.spec, records, notes, p.wire)
    except BaseException:  # cancelled by the host, or failed: this answer never reaches the client
        _answered(rt, attempts, CALL_CUT_OFF)
        _unsent(rt, p, p.variations - begun, used, nothing_bought=bought_nothing(sent))
        rt.follower.adopt(records)  # followed and saved now, with nobody waiting, not at the rescan minutes later
        raise
    result._attempts = attempts  # answered once the tool hands the answer over (``delivered``)
    return result


def _reserve(rt: Runtime, p: Plan, quote_id: str | None, *, held: bool = False) -> Reservation:
    """``p`` counted against the caps now (``Ledger.reserve``; raises ``SpendRefused``): ``held`` while its input
    files go up."""
    return rt.ledger.reserve(
        p.counted,
        quote_id,
        max_credits=p.max_credits,
        ceiling=p.ceiling_weighed,
        most=p.most,
        most_why=p.most_why,
        least=p.least,
        listed=p.listed,
        counted_why=p.price.counted_why,
        held=held,
        tasks=p.variations,
    )


def _kept(rt: Runtime, p: Plan, held: Reservation, quote_id: str | None) -> Reservation:
    """The reservation held while ``p``'s input files went up, made the request's (``Ledger.keep``). One released
    meanwhile as abandoned (its lease lapsed, ``HOLD_LEASE``) is made again, the caps checked again: a refusal then,
    after the files went up, says which ones KIE's file host has."""
    if rt.ledger.keep(held, quote_id):
        return replace(held, held=None)
    try:
        return _reserve(rt, p, quote_id)
    except SpendRefused as err:
        shown = "; ".join(input_text(value) for value in p.files)
        uploaded = f"Its input files were uploaded to KIE's file host before this refusal: {shown}."
        raise SpendRefused(f"{err} {uploaded}") from err


def _unsent(rt: Runtime, p: Plan, unsent: int, quote_id: str | None, *, nothing_bought: bool) -> None:
    """A call stopped after its reservation and before ``unsent`` of its creates began (cut off, or an error in
    between): their share of the reservation goes back, and when it bought nothing (``bought_nothing``), its
    approval too. A create that began settles as any other (shielded to its end once sent, refunded when it gave up
    waiting for its turn)."""
    problems: list[str] = []
    for _ in range(unsent):
        _refund(rt, problems, p, "refunded: not sent", None)
    if nothing_bought:
        _give_back(rt, quote_id)
    for line in problems:
        log.warning("%s", line)


def bought_nothing(sent: Sequence[TaskRecord]) -> bool:
    """Whether a call whose creates ``sent`` are these (the records of those that got their turn and went to
    ``_submit``, settled there) bought nothing with its approval, which is then good again for the same request
    (``_give_back``): none was sent, or KIE refused every one (a 402, a 455, a 429 after its retries, or a resend
    after a 429 given up when its call was cut off or declined). One rule for a call that ends and one cut off. A
    create that named a task, or whose outcome is unknown (it may have reached KIE and been charged), bought
    something: its approval stays used. (The journal holds the quote to the same rule: ``QuoteBook.give_back``.)"""
    return all(record.state == "failed" and record.task_id is None for record in sent)


TURN_WAIT = "its turn in KIE's create window (20 creates per 10 s)"
JOURNAL_WAIT = "another program's lock on kie-mcp's journal to record it"


def _not_sent(
    rt: Runtime, p: Plan, record: TaskRecord, problems: list[str], *, stopping: bool, waited: str = TURN_WAIT
) -> None:
    """A create not sent, because the server is stopping (its host sent SIGTERM, SIGHUP or SIGINT) or because its
    call was cut off while it ``waited`` for its turn in KIE's create window (or for the journal to record its
    attempt): nothing created, its share of the reservation given back."""
    record.state, record.credits_reserved = "failed", 0.0
    if stopping:
        record.error = (
            "Not sent: kie-mcp was stopping (its host stopped it), so this create was not sent; nothing was created "
            "or charged for it. Ask for it again once kie-mcp runs again."
        )
        _refund(rt, problems, p, "refunded: not sent, the server was stopping", None)
        return
    record.error = (
        f"Not sent: its call was cancelled while it waited for {waited}; nothing was created or charged for it."
    )
    _refund(rt, problems, p, "refunded: not sent, its call was cancelled", None)


def delivered(rt: Runtime, result: GenerationResult, *, handed_over: bool) -> None:
    """Whether ``result`` was handed to the client (the tool built its whole answer) or its call was cut off first
    (cancelled or failed while previews were made): a request sent again after a cut-off gets ``retried_call``."""
    _answered(rt, result._attempts, CALL_ANSWERED if handed_over else CALL_CUT_OFF)


def unwritten_before_create(err: BaseException, doing: str, tool: str, quote_id: str | None, by: ApprovedBy) -> str:
    """Why a call stopped before any create (its workspace could not be written while ``doing``: its input files going
    up, its credits reserved; a full disk, most often), what to do, and that its approval is still good."""
    again = f"call {tool} again with the same arguments"
    if by == "quote" and quote_id is not None:
        again += f" and quote_id='{quote_id}': its approval was not used"
    elif by == "elicitation":
        again += ": the confirmation bought nothing, and the request is confirmed again before it runs"
    return (
        f"Nothing was created or charged: kie-mcp could not write to its workspace while {doing} "
        f"({type(err).__name__}: {err}), so no create was sent. {storage_fix(err, again)}"
    )


def _give_back(rt: Runtime, quote_id: str | None) -> None:
    """The quote (or confirmation) this call used, unused again: the call sent nothing, so the same request may
    still be sent once with it. A journal that cannot take it now (a full disk, another program's lock: never waited
    for here, on the event loop) is written once it can (``QuoteBook.give_back``); this process treats the quote as
    released meanwhile."""
    if quote_id is not None:
        with contextlib.suppress(*JOURNAL_ERRORS):
            rt.quotes.give_back(quote_id)


def _answered(rt: Runtime, attempts: list[str], answered: int) -> None:
    """Note whether a call's answer reached the client (``journal.mark_answered``); a journal that cannot take it now
    (a full disk, or another program's lock, never waited for on the event loop) is written once it can
    (``OwedWrites``), so that a restart does not take the call for cut off; kept on the disk beside the journal
    meanwhile (``Journal.keep_answered``), so that a server killed before the journal takes it loses nothing: the next
    start puts it in (``Journal.take_kept_answers``)."""
    if attempts:
        ids = list(attempts)
        _now_or_owed(
            rt,
            f"whether the answer of create(s) {', '.join(ids)} reached the client",
            functools.partial(rt.journal.mark_answered, ids, answered=answered),
            kept=(
                functools.partial(rt.journal.keep_answered, ids, answered),
                functools.partial(rt.journal.mark_answered, ids, answered=answered, kept=True),
            ),
        )


def _now_or_owed(
    rt: Runtime,
    what: str,
    write: Callable[[], object],
    *,
    kept: tuple[Callable[[], object], Callable[[], object]] | None = None,
) -> str | None:
    """Make ``write`` (one transaction) now, on the event loop, unless another program holds the journal's lock now
    (``locked_now``: that wait would hold up the loop, pings and other calls, for up to ``BUSY_SECONDS``) or the
    journal refuses it (a full disk): then it is owed (``OwedWrites``: written once the journal takes it, every few
    seconds). ``kept``: what owing it takes instead, where nothing in the journal lets a start make it for a server
    killed first: a copy kept on the disk now, and the write to owe, which lets that copy go once it is made. Returns
    why it was owed, None when it was written. Never raises for the journal."""
    try:
        if not rt.journal.locked_now():
            write()
            return None
        why = "the journal is locked by another program or kie-mcp process"
    except JOURNAL_ERRORS as err:
        why = f"{type(err).__name__}: {err}"
    if kept is not None:
        keep, write = kept
        with contextlib.suppress(*JOURNAL_ERRORS):  # best effort: owed in memory all the same
            keep()
    rt.owed.owe(what, write)
    return why


def cost_line(rt: Runtime, p: Plan, records: list[TaskRecord], by: ApprovedBy, earlier: Set[str] = frozenset()) -> str:
    """What the spend came to and who approved it, in one line: a result should say what it cost. Creates KIE
    refused cost nothing; creates with no clear answer may have been charged (their reservation stays counted), and
    the line says so whatever became of the others. Tasks KIE already had (``earlier``: a repeated Veo 4K) cost this
    request nothing, whatever their own record says; the line said "120 credits quoted and reserved ... KIE's charge
    is recorded as each task ends" beside "nothing new was started or charged"."""
    how = {
        "auto": "auto-approved: at or under "
        f"KIE_AUTO_APPROVE_CREDITS={credits_figure(rt.settings.auto_approve_credits)}",
        "elicitation": "approved in the confirmation form",
        "quote": "approved with its quote",
    }[by]
    had = [r for r in records if r.task_id in earlier and r.state != "unknown"]
    made = [r for r in records if r.task_id and r.state != "unknown" and r.task_id not in earlier]
    unsure = [r for r in records if r.state == "unknown"]
    if not made and not unsure:
        why = "KIE already had the task from an earlier request" if had else "KIE created nothing"
        return f"Cost: nothing charged ({why}; the reservation was released). It was {how}."
    if not unsure and all(r.state == "failed" for r in made):
        said = (
            failed_cost(made)
            or f"nothing counted (the tasks failed; {REFUNDED_BY_KIE_WITHIN}; their reservation was returned)"
        )
        return f"Cost: {said}. It was {how}."
    parts = []
    if unsure:
        held = sum(priced(r.credits_reserved) or 0.0 for r in unsure)
        parts.append(
            f"{len(unsure)} create{'s' if len(unsure) > 1 else ''} got no clear answer and may have been charged "
            f"(up to {credits_text(held)}, counted against today's cap; https://kie.ai/logs shows what KIE did)"
        )
    amount, tail = _made_cost(p, made, others=bool(unsure)) if made else ("", "")
    if amount:
        parts.append(amount)
    if had:
        parts.append(f"nothing for the {len(had)} task(s) KIE already had from an earlier request")
    return f"Cost: {'; '.join(parts)} ({how}){tail}."


def failed_cost(failed: list[TaskRecord], them: str = "") -> str | None:
    """What ``failed`` tasks cost when it is not nothing (None): a charge KIE reported for them (``readable_charge``),
    and the reservations kept counted for those whose charge could not be read (``unreadable_charge``)."""
    kept = sum(_reserved(r) for r in failed if unreadable(r))
    charged = sum(readable_charge(r.credits_charged, _reserved(r), failed=True) or 0.0 for r in failed)
    they = "it" if len(failed) == 1 else "they"
    parts = [f"{credits_text(charged)} charged by KIE{them}, though {they} failed"] if charged else []
    if kept:
        parts.append(
            f"{credits_text(kept)} reserved stay counted as spent{them}, as KIE's charge could not be "
            "read (KIE usually refunds a failed task; https://kie.ai/logs shows whether it did)"
        )
    return "; ".join(parts) or None


def _reserved(record: TaskRecord) -> float:
    return record.credits_reserved if record.credits_reserved is not None else record.credits_quoted or 0.0


PENDING_CHARGE = "; KIE's charge is recorded as each task ends"
# What a failed task with no charge reported cost: nothing counted, on KIE's word (its docs), never "refunded" as
# if seen: no balance read confirms it (the measurement reads one only after a succeeded task, and a refund may land
# minutes after the failure).
REFUNDED_BY_KIE = "KIE refunds failed tasks (as its docs say)"
REFUNDED_BY_KIE_WITHIN = "KIE refunds failed tasks, as its docs say"  # the same, inside parentheses
UNREPORTED_CHARGE = "; KIE does not report its charge (https://kie.ai/logs shows it)"
UNREPORTED_SANDBOX = "; the simulator does not report its charge, as KIE's task records do not"


def unread_tail(unread: int, of: int) -> str:
    """How a cost line ends when KIE reported a charge for ``unread`` of ``of`` ended tasks that cannot be what it
    charged (``unreadable``: 0 for a succeeded task), as check_task says it of each: never "KIE does not report its
    charge", which it did."""
    which = "this task" if of == 1 else ("these tasks" if unread == of else f"{unread} of these tasks")
    return f"; {UNREADABLE_CHARGE.replace('this task', which)} (https://kie.ai/logs shows the real charge)"


def _made_cost(p: Plan, made: list[TaskRecord], *, others: bool) -> tuple[str, str]:
    """What the tasks KIE created cost (``others``: beside creates with no clear answer), and what the line ends
    with: that a charge is still to come (``PENDING_CHARGE``), or that the tasks ended with none reported, as KIE's
    task records answer live (``UNREPORTED_CHARGE``: the quote is what stays counted)."""
    them = (" for the other tasks" if len(made) > 1 else " for the other task") if others else ""
    if all(r.state == "failed" for r in made):
        return failed_cost(
            made, them
        ) or f"nothing counted{them} (failed; {REFUNDED_BY_KIE_WITHIN}; the reservation was returned)", ""
    succeeded = [r for r in made if r.state == "succeeded"]
    charged = [priced(r.credits_charged) for r in succeeded]
    ended = all(r.state in ("succeeded", "failed") for r in made)
    if ended and None not in charged:
        measured = sum(priced(r.credits_charged) or 0.0 for r in succeeded if r.charge_measured)
        return f"{charged_text(sum(c for c in charged if c is not None), measured)}{them}", ""
    running = [r for r in made if r.state != "failed"]
    if p.price.credits is not None:
        quoted = sum(r.credits_quoted or 0.0 for r in running)
        counted = sum(priced(r.credits_reserved) or 0.0 for r in running)
        unreported = UNREPORTED_SANDBOX if all(r.sandbox for r in running) else UNREPORTED_CHARGE
        if unread := [r for r in running if unreadable(r)]:  # KIE reported one that is no charge, as check_task says
            unreported = unread_tail(len(unread), len(running))
        kept, tail = ("counted", unreported) if ended else ("reserved", PENDING_CHARGE)
        if counted > quoted + 1e-9:  # KIE was seen charging more than its list: the higher figure is what counts
            counted_text = f"{credits_figure(counted)} {kept} ({p.price.counted_why})"
            return f"{credits_text(quoted)} quoted; {counted_text}{them}", tail
        return f"{credits_text(quoted)} quoted and {kept}{them}", tail
    reserved = sum(priced(r.credits_reserved) or 0.0 for r in running)
    if ended:  # KIE reported no charge, and none could be measured (a note says why): the reservation stays
        return (
            f"the price is unknown and so is KIE's charge; the {credits_text(reserved)} reserved stay counted{them}",
            "",
        )
    return f"the price is unknown; {credits_text(reserved)} are reserved{them}", PENDING_CHARGE


# Some clients decline every form without showing it (Codex with approval_policy = "never"): the user saw nothing.
_UNSEEN = (
    'If the user saw no dialog (a client that declines forms on its own, such as Codex with approval_policy "never")'
)
DECLINED_UNSEEN = f"{_UNSEEN}, ask them in the chat; with their yes, call estimate_cost and pass its quote_id."
DECLINED_UNSEEN_FORM = (
    f"{_UNSEEN}: this server spends only with a yes in the client's dialog (KIE_APPROVAL=form), so use a client "
    "that shows forms, or have the user set KIE_APPROVAL=any to approve in the chat with estimate_cost's quote_id."
)


async def landed_here(rt: Runtime, p: Plan, replay: Replay) -> None:
    """Wait (up to ``REPLAY_LANDING_WAIT``) while a create of the approval a replay names is on its way to KIE, sent
    by a call in this process or in another live one of this machine (its attempt "being sent"): two identical calls
    at once with one quote get one create, and the one that lost answers with the task the other made
    (``replayed``) instead of "still being sent" a moment before the task id came back; so is a call of this very
    request here about to send (its inputs up, its credits reserved, its attempt not yet begun), and so is a call
    of this approval, here or in another server, that has used it and not yet begun its attempt. A call still
    uploading its inputs when the wait ends, or sending from another machine, is not waited for further: the answer
    says a create is on its way."""
    from kie_mcp.processes import owner_gone
    from kie_mcp.spend.inflight import REPLAY_LANDING_WAIT

    deadline = anyio.current_time() + REPLAY_LANDING_WAIT
    while anyio.current_time() < deadline:
        try:
            if replay.attempts:
                attempts = rt.journal.attempts_by_id(replay.attempts)
            else:
                attempts = rt.journal.attempts_for_quote(str(replay.quote_id))
            sending = any(row["state"] in ON_ITS_WAY and owner_gone(row["owner"]) is False for row in attempts)
            sending |= rt.spending.creating(p.digest) and len(attempts) < p.variations  # here, about to send
            # used a moment ago by a live call (here or in another server) that has not begun its attempt yet: its
            # reservation, its uploads (waited for up to the same bound, then said to be on its way)
            sending |= not attempts and replay.quote_id is not None and rt.quotes.being_used(str(replay.quote_id))
        except JOURNAL_ERRORS:
            return  # the answer says what the journal can tell
        if not sending:
            return
        await anyio.sleep(0.05)  # rare (the same call twice at once): the other call records KIE's answer


def said_no_answer(rt: Runtime, tool: str, decision: Declined) -> str:
    """The answer to the person's No in the confirmation form (``record_no``): not to retry, and how long it holds.
    A create of the request sent while the form was open leads (it may have been charged: never "Nothing was
    spent" beside it); a call the person said yes to in another form of the same question, which this later No
    stopped before its create, is said to be stopped."""
    holds = (
        f"Do not retry on your own: for the next {span_words(rt.quotes.ttl)} a quote_id of this request does not "
        f"approve it here (it brings the form back), and it is not auto-approved. If the user changes their mind, call "
        f"{tool} again with the same arguments: it asks them again in the form."
    )
    if decision.sent_at is not None:
        return (
            f"The user said no in the confirmation form, but a call of this request was sent to KIE at "
            f"{timestamp(decision.sent_at)}, while the form was open: it ran or is on its way and may have been "
            "charged (list_tasks shows the tasks). This call sent no create and issued no quote. " + holds
        )
    stopped = (
        " Their No, the later answer, also stopped the call of this request they had said yes to in another form of "
        "the same question (the request was sent twice): it sent no create."
        if decision.stopped_yes
        else ""
    )
    return f"The user said no in the confirmation form.{stopped} Nothing was spent and no quote was issued. {holds}" + (
        f" {decision.reason}" if decision.reason else ""
    )


def no_holds(rt: Runtime, p: Plan, *, dismissed: bool = False) -> str | None:
    """What works on this client for a form declined or dismissed (``dismissed``) while the person's No to the request
    holds (``QuoteBook.declined_lately``; KIE_APPROVAL=any): a quote_id of it brings the form back rather than
    approving it until the No is a quote's life old, so a client that declines or cancels forms on its own approves
    it with a quote only after then. None when no No holds."""
    try:
        said = rt.quotes.declined_lately(p.digest)
    except JOURNAL_ERRORS:
        return None
    if said is None:
        return None
    until = timestamp(said.at + rt.quotes.ttl)
    held = (
        f"The user declined this very request {said.where} at {timestamp(said.at)}, so until {until} a quote_id of it "
        "brings the form back here instead of approving it"
    )
    if dismissed:
        return f"{held}: their yes in the form approves it; if no dialog appeared, a quote approves it only after then."
    return (
        f"{_UNSEEN}, ask them in the chat. {held}: with their yes, call estimate_cost after then and pass its quote_id."
    )


def without_spending(rt: Runtime, p: Plan, tool: str, decision: Declined | NeedsConfirmation) -> GenerationResult:
    """The answer to a request that will not be sent: declined, to be confirmed, or cancelled (a replay:
    ``replayed``)."""
    if isinstance(decision, Declined):
        message = (decision.reason or "The user declined.") + " Nothing was spent and no quote was issued."
        if decision.said_no:
            message = said_no_answer(rt, tool, decision)
        if decision.dialog:
            message = "The confirmation dialog was declined. Nothing was spent and no quote was issued. " + (
                DECLINED_UNSEEN_FORM if rt.settings.approval == "form" else no_holds(rt, p) or DECLINED_UNSEEN
            )
        return GenerationResult(status="declined", message=message, model=p.spec.id, sandbox=rt.settings.sandbox)
    status: Status = "cancelled" if decision.cancelled else "confirmation_required"
    only_form = decision.form_refused and rt.settings.approval == "form"  # and this client refuses the form
    why = decision.reason
    if decision.dismissed and (held := no_holds(rt, p, dismissed=True)) is not None:
        why = f"{why} {held}"
    result = confirmation_required(rt, p, tool, why, status, only_form=only_form)
    result._form_refused = decision.form_refused
    return result


def unused_question(rt: Runtime, p: Plan) -> str | None:
    """The quote of the newest question asked for ``p``'s request, while it is unused: the one a yes carried by a
    retried request (2026-07-28) answers, and ``use_approval`` uses. None once used (what it bought is replayed) or
    declined, or when none was asked."""
    try:
        last = rt.quotes.last_question(p.digest)
    except JOURNAL_ERRORS:
        return None  # ``use_approval`` reads it again and says what is wrong
    return last[0] if last is not None and not last[1] else None


def use_approval(rt: Runtime, p: Plan, decision: Approved) -> Approved | Declined | NeedsConfirmation | Replay:
    """Use up the quote behind an approval (a quote_id, or the confirmation question's own quote): one yes, one
    spend. Returns the approval with the quote it used, or what to answer instead."""
    if decision.by == "quote":
        assert p.quote_id is not None
        # A quote another call used since the gate looked (the same quote sent twice at once) is no quote overtaken by
        # that call's create: ``consume`` refuses it below and the call is answered with what the other made.
        if rt.quotes.refusal(p.quote_id, p.digest) is None:
            if (changed := price_change(rt, p)) is not None:  # checked before use: the quote stays unused
                return NeedsConfirmation(changed)
            if (overtaken := sent_since_quoted(rt, p.quote_id, p.digest)) is not None:  # sent since: likewise
                return NeedsConfirmation(overtaken)
        try:
            rt.quotes.consume(p.quote_id, p.digest, request=p.bound)
        except QuoteError as err:
            replay = unsettled_replay(rt, p.quote_id, p.digest, err)
            return replay or NeedsConfirmation(f"The quote could not be used: {err}{made_with(rt, err, p.quote_id)}")
        return Approved("quote", p.quote_id)
    if decision.by != "elicitation":
        return decision
    asked = decision.quote_id
    if asked is None:
        last = rt.quotes.last_question(p.digest)
        if last is None:
            return NeedsConfirmation("The confirmation could not be matched to a question that was asked.")
        asked, used, expired = last
        if used and used != DECLINED:  # a question the person answered No is refused below, saying so
            return Replay(asked)
        if expired and decision.answered_at is None:  # else ``consume`` judges by when the yes came
            return NeedsConfirmation(unanswered(rt.settings.confirm_timeout_seconds), True)
    try:
        rt.quotes.consume(asked, p.digest, kind="ask", answered_at=decision.answered_at)
    except QuoteError as err:
        return refused_answer(rt, asked, err)
    return Approved("elicitation", asked)


# A create a Decline on the approval card, or a No in the confirmation form, stopped before it was sent (or sent again
# after a 429): the record's error (``declined_unsent``).
DECLINED_UNSENT = (
    "Not sent: the user declined this spend {where} before its create was sent; nothing was created or "
    "charged. Do not run this request again unless they ask."
)


# The same, for the call the person said yes to in one form of a question and then No to in another form of it (the
# request sent twice at once): their later No stopped it.
YES_THEN_NO_UNSENT = (
    "Not sent: the user said yes in this confirmation form, then no in another form of the same question (the request "
    "was sent twice), before its create was sent: their later No stopped it; nothing was created or charged. Do not "
    "run this request again unless they ask."
)


def declined_unsent(rt: Runtime, p: Plan, quote_id: str | None = None) -> str:
    """``DECLINED_UNSENT``, saying where the person declined the request (the approval card, else the form); for a
    call approved by a yes to the question ``quote_id`` that the person then answered No in another form of it,
    ``YES_THEN_NO_UNSENT``."""
    try:
        if quote_id is not None and rt.quotes.answered_no_after_yes(quote_id):
            return YES_THEN_NO_UNSENT
        said = rt.quotes.declined_lately(p.digest)
    except JOURNAL_ERRORS:
        said = None
    return DECLINED_UNSENT.format(where="on the approval card" if said is None else said.where)


class _Resend:
    """The journal's word on a create KIE refused with 429 while it waits to be sent again (``KieClient.create``):
    "waiting" (not sent, for now), so that a stop or a kill during the wait leaves a create that never reached KIE
    since, which a start records as not sent (its reservation given back), never as one that may have been charged;
    and "sending" again, on the disk, right before the resend, in its shielded turn. A journal that cannot take the
    first mark leaves the attempt "sending" (unknown should the server stop before its answer), never "not sent" by a
    guess; one that cannot take the second, or that shows it no longer waiting (a start took this server for stopped
    and recorded it as not sent), has it not sent."""

    def __init__(self, rt: Runtime, attempt: str) -> None:
        self.rt, self.attempt, self.waiting = rt, attempt, False

    async def refused(self) -> None:
        journal = self.rt.journal
        try:
            self.waiting = await journal.off_loop_when_locked(functools.partial(journal.attempt_waiting, self.attempt))
        except JOURNAL_ERRORS as err:  # it stays "being sent": of unknown outcome should the server stop meanwhile
            log.warning("create %s: its 429 could not be recorded in the journal (%s)", self.attempt, err)

    async def again(self) -> str | None:
        if not self.waiting:  # still "being sent" in the journal: nothing to write before the resend
            return None
        journal = self.rt.journal
        try:
            marked = await journal.off_loop_when_locked(functools.partial(journal.attempt_sending_again, self.attempt))
        except JOURNAL_ERRORS as err:
            return f"kie-mcp could not record in its journal that it sends it again ({err}), so it was not sent again"
        if not marked:
            return (
                "another kie-mcp starting on this workspace took this server for stopped and recorded it as not sent, "
                "so it was not sent again"
            )
        self.waiting = False
        return None


async def _submit(
    rt: Runtime,
    kie: KieClient,
    family: Family,
    p: Plan,
    body: dict[str, Any],
    sent: dict[str, Any],
    approval: Approval,
    record: TaskRecord,
    prompt: str,
    quote_id: str | None,
    approved_by: str,
    problems: list[str],
    slot: Slot,
    given_up: anyio.Event,
    wanted: Callable[[], bool],
) -> str | None:
    """Journal the attempt, send one create in its ``slot`` of KIE's create window, journal its answer. Never
    raises: every outcome lands in ``record``. Returns the attempt's id in the journal (None when it could not be
    recorded, and nothing was sent). The attempt's ``params`` are the request as it was given (``p.wire``: a local
    file by its path, as its results' sidecars show it); ``sent``: its input fields as ``body`` sends them (each
    local file replaced by the link it was uploaded as, which may carry the upload host's signature), journaled apart
    as ``sent_params`` when they differ: what KIE echoes of the request, so that a task found after the create's
    answer was lost is compared with what was sent (``tasks.lost``), and read by nothing else.
    ``wanted``: whether the create may still be sent (``still_wanted``), asked as its attempt is journaled, once the
    journal's write lock is held, and before each resend after a 429.

    The attempt is written in a worker thread while another program holds the journal's lock
    (``off_loop_when_locked``: pings, other calls and cancellations go on), up to ``BUSY_SECONDS``; its call cut
    off, a stop, or a Decline meanwhile, nothing is written or sent. A lock held longer: not sent, refunded."""

    def still() -> bool:  # in the attempt's transaction: nothing is awaited between it and the create
        return not given_up.is_set() and wanted()

    try:
        attempt = await rt.journal.off_loop_when_locked(
            functools.partial(
                rt.journal.begin_attempt,
                model=p.spec.id,
                family=family.name,
                approved_by=approved_by,
                quote_id=quote_id,
                prompt=prompt,
                params=p.wire,
                sent_params=None if sent == p.wire else sent,
                credits_quoted=p.price.credits,
                session=p.session,
                options_key=p.options_key,
                digest=p.digest,
                kind=record.kind,
                sandbox=record.sandbox,
                parent_task_id=record.parent_task_id,
                operation=record.operation,
                reserved=p.reserved_each,
                reserved_on=p.reserved_on,
                reserved_at=p.reserved_at,
                reservation=p.reservation,
                still=still,
            )
        )
    except ReservationGivenBack:  # given back by a start that took this server for stopped: not sent, not refunded
        slot.not_counted()
        record.state, record.credits_reserved = "failed", 0.0
        record.error = (
            "Not sent: another kie-mcp starting on this workspace took this server for stopped and gave this "
            "create's credits back, so it was not sent; nothing was created or charged for it. Ask for it again."
        )
        return None
    except JOURNAL_ERRORS as err:
        slot.not_counted()
        record.state, record.credits_reserved = "failed", 0.0
        record.error = (
            f"Not sent: kie-mcp could not record the attempt in its journal first ({err}); nothing was created or "
            f"charged for it. {storage_fix(err, 'ask for it again')}"
        )
        _refund(rt, problems, p, "refunded: not sent", None)
        return None
    if attempt is None:  # no longer wanted once the journal took it: nothing was written or sent
        slot.not_counted()
        if given_up.is_set():  # cut off, or a stop came, while the journal's lock was waited for
            _not_sent(rt, p, record, problems, stopping=CREATES.closed, waited=JOURNAL_WAIT)
        else:  # the card's Decline of this request, or a No in its form, came meanwhile, whatever approved this call
            record.state, record.credits_reserved = "failed", 0.0
            record.error = declined_unsent(rt, p, quote_id)
            _refund(rt, problems, p, "refunded: not sent, declined by the user", None)
        return None
    state, error, existing, unoffered = "created", None, False, False
    try:
        try:
            record.task_id = await kie.create(
                family,
                p.spec.id,
                body,
                approval,
                slot=slot,
                given_up=given_up,
                attempt=attempt,
                still_wanted=wanted,
                resend=_Resend(rt, attempt),
            )
        except ExistingTaskError as err:  # a done 4K's links that are the clip's own (its 720p) are no 4K: refused
            if _links_of_source(rt, body, err.result_urls):
                raise err.refusal(family, body) from err
            raise
    except ExistingTaskError as err:  # KIE already had this task (a repeated Veo 4K): nothing new, not charged
        record.task_id, error, existing = err.task_id, f"{ALREADY_HAD_ANSWER}{err.message}", True
        record.credits_reserved = 0.0
        if (done := err.status(family)) is not None:  # a done 4K named by its links only: ended, its links its results
            record.apply(done, None)
    except OutcomeUnknownError as err:
        record.state, record.error = "unknown", err.describe()
        state, error = "unknown", err.message  # still counted as spent
    except KieError as err:
        withdrawn = isinstance(err, NotSentError) and err.withdrawn  # a resend after a 429, declined meanwhile
        record.state, record.error = "failed", declined_unsent(rt, p, quote_id) if withdrawn else err.describe()
        record.credits_reserved = 0.0  # released below: KIE created nothing
        state, error = "refused", err.message
        unoffered = not_published(err)
    except Exception as err:  # a bug or an answer nothing foresaw, after the create may have left: never lost
        log.exception("a create of %s ended in an unexpected error", p.spec.id)
        error = f"kie-mcp hit an unexpected error while sending this create ({type(err).__name__})"
        record.state, state = "unknown", "unknown"
        record.error = (
            f"{error}, so whether KIE created (and charged) it is unknown. It was NOT sent again, and its "
            "reservation stays counted against today's cap; check https://kie.ai/logs before asking for it again."
        )
    context = {"attempt_id": attempt, "prompt": prompt, "session": p.session}
    new_task = state == "created" and not existing and not shared_by_design(family, body, record.task_id)
    try:
        if new_task:
            # the task id KIE answered is written whatever another writer's lock (waited for off the event loop)
            await rt.journal.off_loop_when_locked(functools.partial(enter_new_task, rt, record, attempt, context))
        else:  # likewise (each write safe to make again after a "locked" failure)
            existing = await rt.journal.off_loop_when_locked(
                functools.partial(_finished, rt, record, attempt, state, error, existing=existing, context=context)
            )
    except JOURNAL_ERRORS as err:  # a full disk: written once the journal takes it, never left "being sent"
        if new_task:
            rt.owed.owe(
                f"task {record.task_id} of create {attempt}",
                functools.partial(enter_new_task, rt, record, attempt, context),
            )
        else:
            rt.owed.owe(
                f"the outcome of create {attempt}",
                functools.partial(_finish_later, rt, record, attempt, state, error, context),
            )
        problems.append(await _not_recorded(rt, record, err))
    if state == "refused":
        _refund(rt, problems, p, REFUSED, attempt)  # nothing was charged
    if unoffered and (withdrawn := await _no_longer_offered(rt, p.spec)):
        problems.append(withdrawn)
    if existing:
        record.mark_earlier()
        _refund(rt, problems, p, ALREADY_HAD, attempt)
        problems.append(
            f"KIE already had this task ({record.task_id}) from an earlier request, so nothing new was started or "
            "charged; "
            + (
                "KIE's answer gave its finished results, which are saved like any other task's (check_task "
                f"{record.task_id} shows where)."
                if record.finished
                else "it is followed like any other."
            )
        )
    if record.state == "unknown":  # kie://tasks lists it among the creates of unknown outcome: its subscribers hear
        await rt.follower.unknown_creates_changed()
    return attempt


async def _no_longer_offered(rt: Runtime, spec: ModelSpec) -> str | None:
    """KIE answered a create of ``spec`` that the model is not published: marked withdrawn in the workspace's live
    catalogue (``catalog.live``: in this server's copy and in the cache), so it is refused before anything is sent
    and listed as withdrawn until a model list read later says otherwise. What the answer says of that; None for a
    model of KIE's product APIs, which KIE's Market list does not judge (``live.is_gone``)."""
    from kie_mcp.catalog.live import cache_path, note_unpublished

    if spec.family != "market":
        return None
    now = datetime.now(UTC)
    rt.live = rt.live.with_unpublished(spec.id, now)
    where = "in this workspace"
    try:
        await anyio.to_thread.run_sync(note_unpublished, cache_path(rt.settings.workspace), spec.id, now)
    except Exception as err:  # a read-only workspace or a full disk: this server still refuses it
        log.warning("could not note in the live catalogue cache that KIE does not offer %s: %s", spec.id, err)
        where = f"by this server (the workspace's cache of KIE's catalogue could not be written: {err})"
    until = _until_listed(rt)
    return f"KIE does not offer {spec.id} now: from now on it is refused before anything is sent {where}, {until}"


def _until_listed(rt: Runtime) -> str:
    """Until when a model KIE refused as not published stays refused here, as this server's settings make it true:
    a model list read after the refusal decides (``LiveCatalog.refused_at``). The background sync reads one once a
    day, and takes the cache ``kie-mcp catalog sync`` wrote within the hour (``_sync_catalog``); with the sync off,
    only that command reads one, or the cache deleted forgets the mark, and a server reads the cache at its start."""
    from kie_mcp.catalog.live import cache_path

    command = "kie-mcp --sandbox catalog sync" if rt.settings.sandbox else "kie-mcp catalog sync"
    if rt.settings.catalog_sync:
        return (
            f"until KIE's model list, read again, lists it (the daily sync reads it; `{command}` reads it now, "
            "which a running server takes within the hour)."
        )
    return (
        f"until KIE's model list, read by `{command}`, lists it, or {cache_path(rt.settings.workspace)} is deleted, "
        "and kie-mcp starts again (KIE_CATALOG_SYNC is off: kie-mcp reads neither the list nor that file again by "
        "itself)."
    )


def _links_of_source(rt: Runtime, body: dict[str, Any], links: tuple[str, ...]) -> bool:
    """Whether a done 4K's links (KIE's answer named no 4K task) include a link of the clip it was asked for, as
    the journal has it: that answer is no 4K, and recorded as ``<clip>-4k`` it would stand for the 4K for good
    (asked again, returned without asking KIE; quoted at 0 credits). A clip record the journal cannot read is
    counted as a match: refusing costs nothing, while a wrong record would block the real 4K."""
    source = body.get("taskId")
    if not links or not source:
        return False
    try:
        clip = rt.tasks.get(str(source))
    except (UnreadableRecord, *JOURNAL_ERRORS):
        return True
    return clip is not None and not set(links).isdisjoint(clip.result_urls)


def shared_by_design(family: Family, body: dict[str, Any], task_id: str | None) -> bool:
    """Whether KIE answers every ask for this create with one task: an id the family derives from the request itself
    (Veo's 1080p version of a clip, ``<clip>-1080p``), so a second ask names the task the first one started. Only
    then may a create's answer name a task already in the journal; for any other create that proves nothing."""
    return task_id is not None and task_id == family.created_id({}, body)


def enter_new_task(rt: Runtime, record: TaskRecord, attempt: str, context: dict[str, Any]) -> None:
    """Record the task a create was answered with, and its attempt as created, in one transaction (two creates, in
    one process or two, cannot both take one id). KIE names every new task with a new id, so an id the journal
    already holds says nothing about what this create did: it becomes ``unknown``, its reservation stays, nothing
    resubmits it, and the task recorded before is left as it was. Written later (``OwedWrites``: the journal could
    not take it at first), the task may be there already as this create's own: its record, written by the follower
    (no attempt named, created when this record was), or by a restart that found it in the call log (this attempt
    named); it is then this create's task."""
    task_id = record.task_id
    with rt.journal.transaction(durable=True):  # a task id KIE answered: kept through a power loss
        row = rt.journal.task_row(task_id) if task_id is not None else None
        own = row is not None and (
            row["attempt_id"] == attempt or (row["attempt_id"] is None and row["created"] == record.created_at)
        )
        if row is not None and not own:
            record.task_id, record.state, record.error = None, "unknown", answered_with_known_task(task_id)
            rt.journal.finish_attempt(attempt, "unknown", error=record.error)
            return
        rt.journal.finish_attempt(attempt, "created", task_id=task_id)
        rt.tasks.add(record, **context)


def _finished(
    rt: Runtime,
    record: TaskRecord,
    attempt: str,
    state: str,
    error: str | None,
    *,
    existing: bool,
    context: dict[str, Any],
) -> bool:
    """The outcome of a create whose answer named no new task (unknown, refused, or a task KIE already had), and
    whether that task is an earlier request's (``take_existing_task``)."""
    rt.journal.finish_attempt(attempt, state, task_id=record.task_id, error=error)
    return take_existing_task(rt, record, existing=existing, created=state == "created", context=context)


def answered_with_known_task(task_id: str) -> str:
    return (
        f"KIE answered this create with task {task_id}, which this workspace already has from an earlier request, "
        "so whether KIE created (and charged) a new task for it is unknown. It was NOT sent again, and its "
        "reservation stays counted against today's cap; check https://kie.ai/logs."
    )


def take_existing_task(
    rt: Runtime, record: TaskRecord, *, existing: bool, created: bool, context: dict[str, Any]
) -> bool:
    """Record an answer that may name a task an earlier request started: a Veo 4K KIE already has
    (``ExistingTaskError``), or two asks for one clip's 1080p version at once (KIE answers the second about the
    first's task). That task's record (reserve, charge) then stands for this one. Returns whether it was such a
    task: this request started nothing new."""
    kept = rt.tasks.get(record.task_id) if existing and record.task_id else None
    if kept is None and created:
        kept = rt.tasks.claim(record, **context)
        existing = existing or kept is not None
    if kept is not None:
        for name in type(record).model_fields:
            setattr(record, name, getattr(kept, name))
    return existing


def _finish_later(
    rt: Runtime, record: TaskRecord, attempt: str, state: str, error: str | None, context: dict[str, Any]
) -> None:
    """The outcome of a create whose answer named no new task (unknown, refused, or a task KIE already had), written
    once the journal takes it (``OwedWrites``); a task it named is recorded unless the journal has it."""
    with rt.journal.transaction():
        rt.journal.finish_attempt(attempt, state, task_id=record.task_id, error=error)
        if state == "created" and record.task_id and rt.journal.task_row(record.task_id) is None:
            rt.tasks.add(record, **context)


async def _not_recorded(rt: Runtime, record: TaskRecord, err: BaseException) -> str:
    """What to say of a create whose outcome the journal could not take (``OwedWrites`` writes it later); the call
    log is searched in a worker thread (it may be long, and the disk slow)."""
    from kie_mcp.kie.calllog import CALL_LOG, logged_task

    why = f"({type(err).__name__}: {err})"
    if not record.task_id:
        return (
            f"A create's outcome could not be recorded in kie-mcp's journal yet {why}: kie-mcp records it as soon as "
            "the journal takes it (it tries every few seconds)."
        )
    head = (
        f"KIE created task {record.task_id} but kie-mcp could not record it in its journal yet {why}. It is followed "
        "and saved all the same while kie-mcp runs, and recorded as soon as the journal takes it (kie-mcp tries "
        "every few seconds)"
    )
    if await anyio.to_thread.run_sync(logged_task, rt.settings.workspace / CALL_LOG, record.task_id):
        return f"{head}; the call log ({CALL_LOG.as_posix()}) holds it, so a restart finds it there too."
    return (
        f"{head}. The call log could not keep it either: keep this task id, and should kie-mcp restart before it "
        "is recorded, follow it with check_task."
    )


async def _record_off_loop(rt: Runtime, problems: list[str], record: TaskRecord) -> None:
    """Record what became of a task KIE made (its end, its saved files, a charge measured): never a create, whose
    failure to be recorded ``_not_recorded`` words. In a worker thread while another program holds the journal's
    lock (``off_loop_when_locked``: ``TaskBook.add`` is safe to run again after a "locked" failure), never waiting
    for it on the event loop."""
    try:
        await rt.journal.off_loop_when_locked(functools.partial(rt.tasks.add, record))
    except JOURNAL_ERRORS as err:
        _note_unrecorded(problems, record, err)


def _note_unrecorded(problems: list[str], record: TaskRecord, err: BaseException) -> None:
    line = answer_not_recorded(record.task_id, err)
    if line not in problems:
        problems.append(line)


def _refund(rt: Runtime, problems: list[str], p: Plan, reason: str, ref: str | None) -> None:
    """Give back one create's share of the reservation, at the moment the reservation was made. A journal that cannot
    take it now (another program's lock, a full disk) gets it once it can (``_now_or_owed``): a refund given up would
    count against the daily cap for the rest of the day. That of a create in the journal (``ref``: its attempt) is
    booked once ever: should this server stop before the journal takes it, the next start books it from the attempt
    (``Ledger.book_owed_refunds``), and one started meanwhile on the workspace may have booked it already. That of a
    create never begun (no ``ref``) is counted on its call's reservation as it is booked (``settles``): should this
    server stop first, the next start gives back what the reservation shows was neither begun nor given back
    (``SpendBook.book_unsent``)."""
    refund = functools.partial(
        rt.ledger.adjust,
        -p.reserved_each,
        reason,
        ref,
        once=ref is not None,
        at=p.reserved_at,
        day=p.reserved_on,
        reserved=p.reserved_each,
        settles=p.reservation if ref is None else None,
    )
    why = _now_or_owed(rt, f"a refund of {credits_text(p.reserved_each)} ({reason})", refund)
    if why is not None:
        problems.append(
            f"The journal could not record a refund of {credits_text(p.reserved_each)} yet ({why}): kie-mcp records it "
            "as soon as the journal takes it (it tries every few seconds); until then today's spend counts it."
        )


async def replayed(
    rt: Runtime, p: Plan, tool: str, replay: Replay, *, wait: Wait, progress: Progress
) -> GenerationResult:
    """A confirmation answered again (a retried request), a used quote_id back, or a call sent again after its
    answer was cut off: what was approved and made, never a new create. Every create attempt counts, whatever
    became of it: one whose outcome is unknown, or that is still being sent, may have been created and charged, so
    the answer says so and offers no fresh quote. Once shown, a cut-off call's attempts count as answered: the
    same request sent after this one is a new request.

    A create still on its way is waited for first (``landed_here``), and the tasks made are waited on as the first
    call would have (for what is left of ``wait``, with progress): a host that retries at once after cancelling gets its
    results, never an instant "still generating"."""
    await landed_here(rt, p, replay)
    if replay.attempts:
        cut = rt.journal.attempts_by_id(replay.attempts)
        attempts = with_their_calls(rt, cut)
        when = f"at {timestamp(cut[0]['created'])}" if cut else "earlier"
        if all(row["answered"] == CALL_CUT_OFF for row in cut):
            how = "its call was cut off before its answer reached you (cancelled or timed out)"
        else:  # its server stopped before noting whether the answer went out (a full disk, a kill)
            how = "kie-mcp has no record that its answer reached you (its server stopped before noting it)"
        used = (
            f"This same request was sent {when} and {how}, after KIE had been asked to create it. This call created "
            f"and charged nothing new: here is what that call made. To make another, call {tool} again."
        )
    else:
        assert replay.quote_id is not None
        attempts = rt.journal.attempts_for_quote(replay.quote_id)
        used = f"This approval ({replay.quote_id}) was already used, so this call created and charged nothing new."
    records = [record for record in (approved_task(rt, p, row) for row in attempts) if record is not None]
    if not records and (rt.spending.sending(p.digest) or (replay.quote_id and rt.quotes.being_used(replay.quote_id))):
        # its call (here, or in another server on the workspace) is still uploading: no attempt in the journal yet
        records = [in_flight_create(rt, p) for _ in range(p.variations)]
    if not records:
        result = confirmation_required(rt, p, tool, used)
    else:
        followed: list[str] = []
        if any(record.task_id for record in records):  # followed, settled and saved by the follower meanwhile
            records, followed = await rt.follower.wait(records, wait.left(), ProgressReporter(progress, len(records)))
        lead = used if replay.attempts else f"{used} This is the request it approved."
        notes = (lead, *_never_sent(rt, p, attempts), *dict.fromkeys(followed))
        result = summarise(rt, p.spec, records, notes, p.wire)
    result._attempts = [row["attempt_id"] for row in attempts]  # answered once this answer reaches the client
    return result


def with_their_calls(rt: Runtime, cut: list[sqlite3.Row]) -> list[sqlite3.Row]:
    """A retried call's attempts (``cut``, those its call left unanswered) and every other create of that call the
    journal holds that KIE did not refuse (made, of unknown outcome, or still being sent), oldest first
    (``Journal.call_attempts``): one its call did not mark with the rest (as an older kie-mcp could leave a create
    KIE made as its call was cut off) is still that call's, its task in the answer, never counted as never sent
    (``_never_sent``)."""
    rows = {row["attempt_id"]: row for row in cut}
    calls = {(row["digest"], row["owner"], row["reserved_at"]): row for row in cut}  # one read a call
    try:
        for row in calls.values():
            rows.update((made["attempt_id"], made) for made in rt.journal.call_attempts(row))
    except JOURNAL_ERRORS:
        return cut
    return sorted(rows.values(), key=lambda row: row["created"])


def _never_sent(rt: Runtime, p: Plan, attempts: Sequence[sqlite3.Row]) -> list[str]:
    """What a replay says of the variations its call never sent: given up while they waited for their turn in
    KIE's create window when the call was cut off, or the server stopped. They were never journaled, so the answer
    showed "here is what that call made" with five of ten, not a word of the rest."""
    missing = p.variations - len(attempts)
    if missing <= 0 or rt.spending.sending(p.digest):  # its call still sends them: nothing was given up
        return []
    return [
        f"{missing} of the {p.variations} asked for were never sent (their call was cut off, or the server stopped, "
        "while they waited for their turn in KIE's create window): nothing was created or charged for them. To make "
        f"them, ask again with variations={missing}."
    ]


def approved_task(rt: Runtime, p: Plan, attempt: sqlite3.Row) -> TaskRecord | None:
    """What one create attempt of an approval left: its task, a create that may have reached KIE, or None (KIE
    refused it, or its task could not be recorded)."""
    if never_resent(attempt):  # refused with 429, its server gone before it was sent again: nothing was made
        return None
    if attempt["state"] in UNSETTLED:
        return unsettled_create(rt, p, attempt)
    return rt.tasks.get(attempt["task_id"]) if attempt["task_id"] else None


def once_key(p: Plan) -> tuple[str, ...]:
    """What a follow-up made once per clip (1080p, 4K: ``followup.once``) is known by while it is being made: its
    clip and model, whatever else its request says."""
    follow = p.spec.followup
    if follow is None or not follow.once or p.parent_task_id is None:
        return ()
    return (f"once:{p.parent_task_id}:{p.spec.id}",)


async def made_once(rt: Runtime, p: Plan) -> GenerationResult | None:
    """A follow-up made once per clip that another call is making right now (its task, once the journal has it, is
    the answer), or that was made since this call was planned (two calls at once each found none then; a form may
    have stayed open a while): that one is the answer, and nothing is sent. Checked once the approval is used;
    nothing is awaited between the last look and this call's registration (``execute``)."""
    key = once_key(p)
    if not key:
        return None
    from kie_mcp.followups import made_before  # followups is built on this module
    from kie_mcp.spend.inflight import LANDING_WAIT

    deadline = anyio.current_time() + LANDING_WAIT
    while (record := made_before(rt, str(p.parent_task_id), p.spec)) is None and rt.spending.sending(key[0]):
        if anyio.current_time() >= deadline:  # its create is slow to answer: say so rather than wait on
            note = (
                f"Another call is making this {p.spec.title} of task {p.parent_task_id} right now; it is made once "
                "per clip, so this call sent nothing and charged nothing. Ask again in a minute: continue_video "
                "then returns it."
            )
            return summarise(rt, p.spec, [in_flight_create(rt, p)], (note,), p.wire)
        await anyio.sleep(0.1)  # rare (two asks at once): the other call records its task as KIE answers
    if record is None:
        return None
    note = (
        f"Task {p.parent_task_id} already has this ({p.spec.title}): task {record.task_id}, made while this call "
        "waited. Nothing new was requested or charged."
    )
    return summarise(rt, p.spec, [record], (note,), p.wire)


def in_flight_create(rt: Runtime, p: Plan) -> TaskRecord:
    """A create another call of this very request is about to send or sending right now (its approval used, its
    input files going up), as the record a replay reports: state unknown, and why."""
    return TaskRecord(
        task_id=None,
        model=p.spec.id,
        family=p.spec.family,
        kind=p.spec.kind,
        state="unknown",
        credits_quoted=p.price.credits,
        sandbox=rt.settings.sandbox,
        error=(
            "Another call of this same request is sending its create (or about to, once its input files are up): "
            "KIE may create and charge it. Ask again in a minute (list_tasks shows what it made) instead of "
            "approving it again."
        ),
    )


def unsettled_create(rt: Runtime, p: Plan, attempt: sqlite3.Row) -> TaskRecord:
    """A create attempt with no answer (yet), as the record a replay reports: state unknown, and why."""
    if attempt["state"] == "sending":
        what = "is still being sent"
    elif attempt["state"] == WAITING:
        what = "was refused for too many creates at once (429, not charged) and is waiting to be sent again"
    else:
        what = f"got no clear answer ({attempt['error'] or 'no reason recorded'})"
    return TaskRecord(
        task_id=None,
        model=attempt["model"],
        family=attempt["family"],
        kind=p.spec.kind,
        state="unknown",
        credits_quoted=attempt["credits_quoted"],
        created_at=attempt["created"],
        sandbox=rt.settings.sandbox,
        error=(
            f"The create this approval sent {what}: KIE may have created and charged it. It counts against today's "
            "cap as spent; check https://kie.ai/logs before asking for it again."
        ),
    )


# A listed price's charge measured from the balance is booked only up to this many times what its task reserved (its
# quote, or the higher charge seen here that it counts): KIE has charged above its list (20 for an image it lists at
# 8), but a larger fall is far likelier another spend on the same API key (another workspace or tool, which this
# journal cannot see) than KIE's charge, and booked as the price it would count against the caps for 24 h.
MEASURED_OVER_RESERVED = 3.0


async def measure_unreported_charges(
    rt: Runtime, p: Plan, records: list[TaskRecord], attempts: Sequence[str] = ()
) -> list[str]:
    """For a charge KIE does not report on the task, the balance difference around the call is the charge, but only
    when every task of the call succeeded (none failed, whose refund may land later, unknown, unreadable or missing)
    and nothing else can have moved the balance in between, so the ledger never counts less than KIE charged: no
    other task of this workspace (this process, another call, another kie-mcp process on the same journal) was being
    created, running, or ended while the balance was read twice (``moved_by_others``, asked before the second read
    too, which is skipped when it already says why: a burst of calls sends none), and the difference is a plausible
    charge (``implausible``). Otherwise the charge stays unmeasured and the reservation stays counted as spent: for
    an unknown price the request's ceiling (a note says why), for a listed one its quote (or the higher charge seen
    here that it counts). A measured charge is marked so (``TaskRecord.charge_measured``): every answer says it was
    measured from the balance, never that KIE charged it.

    An unknown price books what was measured. A listed price books it only when it is above what the task reserved
    (KIE charged more than its list, or than the quote the call was approved with) and at most
    ``MEASURED_OVER_RESERVED`` times that: then the ledger counts it, and the journal keeps it as a charge seen here,
    which the next estimate leads with and a stale quote is asked about again (``observed_price``), as for a charge
    KIE reports. A measurement at or under the reservation books nothing new: the quote stays counted, never less;
    one above the bound books nothing new either, and a note says the balance fell by more than the call's tasks
    can account for. The balance read after the call costs one GET /chat/credit (paced as every KIE call is) per
    call whose tasks all succeeded, none with a charge KIE reported, while no other task of the workspace moved the
    balance. Returns the notes to show."""
    measured = [r for r in records if r.state == "succeeded" and r.credits_charged is None and not unreadable(r)]
    if not measured or p.balance is None or not all(r.finished for r in records):
        return []
    listed = p.total is not None
    ours = [r.task_id for r in records if r.task_id]

    def unmeasured(why: str) -> list[str]:
        if listed:  # its quote stays counted: nothing to say beyond what the cost line says
            log.info("a charge KIE did not report was not measured: %s", why)
            return []
        return [
            f"KIE does not report what it charged for {', '.join(r.task_id or '?' for r in measured)}, and its "
            f"charge could not be measured from the balance: {why}. The {credits_text(p.reserved_each)} reserved for "
            "each stay counted as spent; KIE's logs (https://kie.ai/logs) show the real charge."
        ]

    def others(until: float) -> str | None:
        try:
            return moved_by_others(rt, p.balance_at, until, ours, list(attempts))
        except JOURNAL_ERRORS as err:
            return f"the journal could not be read to rule out other balance movements ({err})"

    # A failed task's refund may land after the read (minutes later), an unknown create may or may not have been
    # charged: the difference would be booked as the succeeded tasks' charge (16 for an 8-credit image).
    if len(records) != p.variations or not all(
        r.task_id and r.state == "succeeded" and not unreadable(r) for r in records
    ):
        return unmeasured(
            "not every task of this call succeeded, and what the others cost (a failed task's refund may land "
            "later) cannot be told apart in the balance"
        )
    why = others(time.time())  # before the read: a burst of calls, each seeing the others, sends none
    if why is not None:
        return unmeasured(why)
    try:
        after = await rt.require_kie().credits()
    except KieError:
        return []
    read_at = time.time()
    from kie_mcp.spend.balance import balance_cache

    # This read precedes this call's own records: a later call's window starting at it would see them as others'.
    balance_cache(rt).invalidate()
    spent = p.balance - after
    each = round(spent / len(measured), 4) if math.isfinite(spent) else math.nan
    why = others(read_at)
    if why is None and listed and each > MEASURED_OVER_RESERVED * p.reserved_each + 1e-6:
        them = "tasks" if len(records) > 1 else "task"
        return [
            f"The KIE balance fell by {credits_text(spent)} during this call, more than its {them} can account for "
            f"(another spend on this API key, or KIE charging more than {MEASURED_OVER_RESERVED:g}x the "
            f"{credits_text(p.reserved_each)} counted for each; https://kie.ai/logs shows which), so nothing more "
            "was counted."
        ]
    if why is None:
        try:
            why = implausible(rt, p, each)
        except JOURNAL_ERRORS as err:
            why = f"the journal could not be read to rule out other balance movements ({err})"
    if why is not None:
        return unmeasured(why)
    if listed and each <= p.reserved_each + 1e-6:  # its quote stays counted unless more was surely taken
        return []
    for record in measured:
        record.credits_charged, record.charge_measured = each, True
    return []


SETTLE_MARGIN = 300.0  # a failed task's refund may land this long after kie-mcp saw it fail (seconds)
KEPT_DAYS = 15  # KIE keeps a task 14 days: an older one no longer moves the balance


def moved_by_others(
    rt: Runtime, since: float | None, until: float, task_ids: list[str], attempt_ids: list[str]
) -> str | None:
    """Why the balance may have moved between ``since`` and ``until`` for other reasons than this call's tasks,
    as far as this workspace's journal (shared by every kie-mcp process on it) can tell: another create being sent
    or answered, another task unfinished, or ending (a failed one refunded) in that window. None when nothing did.
    A top-up, or tasks of another workspace or tool on the same key, leave no trace here (``implausible``)."""
    if since is None:
        return "the balance before the task was not read"
    tasks = _placeholders(task_ids)
    live = rt.journal.query(
        "SELECT task_id FROM tasks WHERE state IN ('queued', 'running', 'succeeded_without_results', 'unknown')"
        f" AND created BETWEEN ? AND ? AND task_id NOT IN ({tasks}) LIMIT 1",
        since - KEPT_DAYS * 86400,
        until,
        *task_ids,
    )
    ended = rt.journal.query(
        "SELECT task_id FROM tasks WHERE created BETWEEN ? AND ?"
        " AND updated >= ? - CASE WHEN state = 'failed' THEN ? ELSE 0 END"
        f" AND task_id NOT IN ({tasks}) LIMIT 1",
        since - KEPT_DAYS * 86400,
        until,
        since,
        SETTLE_MARGIN,
        *task_ids,
    )
    sent = rt.journal.query(
        "SELECT attempt_id FROM attempts WHERE state IN ('sending', 'waiting', 'created', 'refused', 'unknown')"
        " AND created BETWEEN ? AND ? AND (state IN ('sending', 'waiting') OR updated >= ?)"
        f" AND attempt_id NOT IN ({_placeholders(attempt_ids)}) LIMIT 1",
        since - 86400,
        until,
        since,
        *attempt_ids,
    )
    if live or ended:
        other = (live or ended)[0]["task_id"]
        return f"another task of this workspace ({other}) was running or ended meanwhile, and moved the balance too"
    if sent:
        return "another create was sent from this workspace meanwhile, and moved the balance too"
    return None


def implausible(rt: Runtime, p: Plan, each: float) -> str | None:
    """Why ``each`` credits per task, measured from the balance, cannot be what KIE charged: nothing, or less than
    the request surely costs (``Plan.least``, per variation as it is counted: a top-up or a refund of a task made
    elsewhere landed meanwhile, even a partial one), more than the catalogue says it can cost (``Plan.most``, when it
    says: another spend on the key landed meanwhile; with no such figure the reservation is the per-call cap, which a
    real charge may pass, and is booked as charged), or far less than KIE charged here before for this model and
    these options. None when it can be."""
    if not math.isfinite(each) or each <= 0:
        return "the balance did not go down (a top-up or a refund of another task may have landed meanwhile)"
    least = round(p.least / p.variations, 4)
    if each < least - 1e-6:
        return (
            f"the balance went down {credits_text(each)} per task, less than the {credits_figure(least)} each surely "
            "costs (its "
            "rates with the billed inputs taken as 0 s long), so a top-up or a refund of another task landed meanwhile"
        )
    most = round(p.most / p.variations, 4) if p.most is not None else None
    if most is not None and each > most + 1e-6:
        return (
            f"the balance went down {credits_text(each)} per task, more than the {credits_figure(most)} each can cost "
            "by its rates, "
            "so another spend on this API key (another workspace or tool) landed meanwhile"
        )
    history = rt.journal.charged_before(p.spec.id, p.options_key or "")
    lowest = min((charged for charged, *_ in history if charged > 0), default=None)
    if lowest is not None and each < lowest / FAR_FROM_TABLE:
        return (
            f"the balance went down {credits_text(each)} per task, far less than the {credits_figure(lowest)} KIE "
            "charged here "
            "before for this model and these settings (a top-up or a refund may have landed meanwhile)"
        )
    return None


def _placeholders(values: list[str]) -> str:
    return ", ".join("?" for _ in values) or "''"  # never an empty list, and never NULL (NOT IN (NULL) is never true)


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
        tail = f"; {time_left_words(eta, any(r.sandbox for r in running))}" if running and eta else ""
        await self._send(value, self._total, f"{done}/{len(records)} finished{tail}")


async def save_all(rt: Runtime, records: list[TaskRecord], *, within: Allowance) -> list[str]:
    """Save finished results into the workspace (unless KIE_DOWNLOAD=never); problems come back as lines. ``within``:
    how long each download gets in all (``downloads.Allowance``): a finishing slot's, which other tasks' results wait
    for, or a background try's (check_task's own save too), longer."""
    if not rt.settings.download or rt.kie is None:
        return []
    problems: list[str] = []
    fresh: list[tuple[Path, str | None]] = []
    described = False  # a sidecar written again (a charge measured since): the pages show it
    for record in records:
        had = set(record.files)
        try:
            async with rt.saving.hold(record.task_id or ""):  # a save of this task in flight elsewhere ends first
                saved = await save_results(rt.kie, rt.journal, rt.settings.workspace, record, within=within)
            problems += saved.problems
            described = described or saved.described
        except JOURNAL_ERRORS as err:
            why = f"the journal could not be read or written ({type(err).__name__}: {err})"
            problems += [f"{record.task_id}: saving its results stopped: {why}.", LINKS_STILL_WORK]
        record.name_unrecorded()  # results saved whose row the journal refused are named all the same
        await _record_off_loop(rt, problems, record)  # the follower's saves: a held lock never freezes the server
        fresh += [(rt.settings.workspace / path, record.kind) for path in record.files if path not in had]
    if not fresh:  # nothing new: the pages still, if a full disk refused them when the files were saved
        fresh = _pages_missing(rt.settings.workspace, records)
    if fresh or described:  # only when something new was saved or described (or a page is missing)
        await _refresh_gallery(rt, fresh)
    return list(dict.fromkeys(problems))  # the advice once, after the first problem it follows


async def describe_charges(rt: Runtime, records: list[TaskRecord]) -> list[str]:
    """Write again the sidecars of ``records``, whose charge was measured after their files were saved, and bring the
    gallery up to date: its cards and totals are built from the sidecars, so they count what KIE charged. A record
    whose files this server is still saving is left to that save, which writes its sidecar with the charge (and a
    later ``check_task`` writes any sidecar that still says another charge)."""
    if not rt.settings.download:
        return []
    problems: list[str] = []
    described = False
    for record in records:
        if not record.files or rt.follower.saving(record):
            continue
        try:
            written, problem = describe(rt.journal, rt.settings.workspace, record)
        except JOURNAL_ERRORS as err:  # the journal gives the sidecar its prompt and files
            written, problem = False, f"{record.task_id}: its sidecar could not be written again ({err})."
        described = described or written
        problems += [problem] if problem else []
    if described:
        await _refresh_gallery(rt, [])
    return problems


async def _refresh_gallery(rt: Runtime, fresh: list[tuple[Path, str | None]]) -> None:
    """outputs/index.html and the pages of the sessions that changed, the previews of ``fresh`` files made first."""
    from kie_mcp.media.gallery import refresh as refresh_gallery  # loaded with the first saved result

    await refresh_gallery(rt.settings.workspace, rt.settings.preview_px, fresh)  # never raises


def _pages_missing(workspace: Path, records: list[TaskRecord]) -> list[tuple[Path, str | None]]:
    """The saved files of ``records`` whose gallery page (their session's, or the workspace's) is not there."""
    files = [(workspace / path, record.kind) for record in records for path in record.files]
    if not files:
        return []
    outputs = workspace / saved.OUTPUTS
    index = outputs / saved.index_name(outputs)  # under its own name beside a page of the user's own
    missing = not index.is_file() or any(
        not (path.parent / saved.index_name(path.parent)).is_file() for path, _ in files
    )
    return files if missing else []


def settle(rt: Runtime, records: list[TaskRecord]) -> list[str]:
    """Fold what KIE reported into the spend, priced or not: refunds of failed tasks, real charges. Once per task,
    ever, and at the moment the task was reserved (``reserved_at``), never when it ends: a task reserved before
    midnight and refunded after it must not reopen today's cap. Returns problems to report."""
    problems: list[str] = []
    for record in records:
        reserved = record.credits_reserved if record.credits_reserved is not None else record.credits_quoted
        if record.task_id is None or reserved is None:
            continue
        try:
            problems += settle_one(rt, record, record.task_id, reserved)
        except JOURNAL_ERRORS as err:
            problems.append(f"The journal could not record what KIE charged for {record.task_id} ({err}).")
    if (reason := _over_cap(rt)) is not None:
        problems.append(reason)
    return problems


async def settle_off_loop(rt: Runtime, records: list[TaskRecord]) -> list[str]:
    """``settle``, in a worker thread while another program holds the journal's lock (``off_loop_when_locked``: each
    task's correction is one transaction, booked once ever, so safe to make again), never waiting for it on the event
    loop, where pings, other calls and cancellations would wait with it."""
    try:
        return await rt.journal.off_loop_when_locked(functools.partial(settle, rt, records))
    except JOURNAL_ERRORS as err:  # no journal to write to
        return [f"The journal could not record what KIE charged for {r.task_id} ({err})." for r in records]


def settle_one(rt: Runtime, record: TaskRecord, task_id: str, reserved: float) -> list[str]:
    """One ended task's correction: a failed one gives its reservation back (less a charge KIE reports for it), a
    succeeded one books KIE's charge in place of it. The ledger never takes off more than the task reserved."""
    # The reservation's own moment; a record of an older kie-mcp keeps none: its day then (as its reservation counts),
    # or when it keeps none either, the day the task was created.
    at, day = record.reserved_at, record.reserved_on
    if at is None and day is None:
        day = rt.ledger.day_of(record.created_at)
    reported = reported_charge(record.credits_charged, record.charge_unreadable)
    if record.state == "failed":
        rt.ledger.refund_failed_task(task_id, reserved, reported, at=at, day=day)
        if readable_charge(reported, reserved, failed=True) is None:  # booked as kept: said so
            return [unreadable_charge(record, reserved)]
    elif record.state == "succeeded" and reported is not None:
        charged = readable_charge(reported, reserved)
        if charged is None:
            return [unreadable_charge(record, reserved)]
        reason = MEASURED if record.charge_measured else CHARGED
        rt.ledger.settle_task(task_id, reserved, charged, reason, at=at, day=day)
    return []


UNREADABLE_CHARGE = "KIE's charge for this task could not be read"


def unreadable_charge(record: TaskRecord, reserved: float) -> str:
    """A charge KIE reports for a finished task that cannot be what it charged (``ledger.readable_charge``: for a
    succeeded task 0 or less, or not a number, as KIE charges for every task it completes; for any, one reported as
    no finite number ("NaN", "1e400": ``TaskRecord.charge_unreadable``), more than 100x what was reserved for it, or
    above ``MOST_CREDITS_CHARGED``: no rate of KIE's comes near) is no charge: the reservation stays counted as spent
    (it is not measured from the balance either, nor given back for a failed task: KIE usually refunds one, but what
    it did here is not known). The record is marked so (``charge_unreadable``, journaled with it: what ``unreadable``
    reads), and says why (a failed task's after why it failed). Returns the line to show."""
    said = "" if record.credits_charged is None else f": KIE reported {credits_text(record.credits_charged)}"
    already = record.credits_charged is None and record.charge_unreadable  # said before (settled by another answer)
    record.credits_charged, record.charge_unreadable = None, True
    if record.state == "failed":
        kept = (
            f"The {credits_text(reserved)} reserved for it stay counted as spent rather than given back "
            "(KIE usually refunds a failed task; https://kie.ai/logs shows whether it did)."
        )
        why = record.error or "KIE reports the task failed."
        if not (already and f" {UNREADABLE_CHARGE}" in why):  # what it cost is check_task's to say
            record.error = f"{why} {UNREADABLE_CHARGE}{said}."  # (``surface._failed_cost``)
        return f"{record.task_id}: {UNREADABLE_CHARGE}{said}. {kept}"
    if not (already and (record.error or "").startswith(UNREADABLE_CHARGE)):
        record.error = (
            f"{UNREADABLE_CHARGE}{said}. The {credits_text(reserved)} reserved for it stay counted as spent; "
            "https://kie.ai/logs shows the real charge."
        )
    return f"{record.task_id}: {record.error}"


def unreadable(record: TaskRecord) -> bool:
    """Whether KIE reported a charge for this task that could not be read (``unreadable_charge``): the record's mark,
    never the words of its error, which for a failed task hold KIE's own (its ``failMsg`` may say anything). A
    succeeded task's record an older kie-mcp wrote, without the mark, says so only at the start of its error, which
    for a succeeded task is kie-mcp's own words, never KIE's: read too, so its reservation is not measured again."""
    if record.charge_unreadable:
        return True
    return (
        record.state == "succeeded"
        and record.credits_charged is None
        and (record.error or "").startswith(UNREADABLE_CHARGE)
    )


def _over_cap(rt: Runtime) -> str | None:
    try:
        return rt.ledger.over_cap()
    except JOURNAL_ERRORS:
        return None


def summarise(
    rt: Runtime,
    spec: ModelSpec,
    records: list[TaskRecord],
    notes: tuple[str, ...] = (),
    wire: dict[str, Any] | None = None,
) -> GenerationResult:
    """The answer for ``records``; ``wire``, the request they were made for (its count field: the results each task
    makes, as the confirmation counts them)."""
    states = [r.state for r in records]
    created = [r for r in records if r.task_id]
    if all(s == "succeeded" for s in states):
        status: Status = "completed"
    elif all(s == "failed" for s in states):
        status = "failed"
    elif all(s in ("failed", "unknown") for s in states):  # nothing made, and a create may have been charged
        status = "unknown"
    elif any(s in ("failed", "unknown") for s in states) or any(s == "succeeded" for s in states):
        status = "partial" if any(s in ("failed", "unknown") for s in states) else "submitted"
    else:
        status = "submitted"
    saving = [r.task_id for r in records if r.task_id is not None and rt.follower.saving(r)]
    queued = {r.task_id: rt.follower.queued_behind(r) for r in records if r.task_id in saving}
    lines = [_headline(status, spec, records, wire), *notes]
    for index, record in enumerate(records, 1):
        lines.append(f"{index}. {_describe(record, record.task_id in saving, queued.get(record.task_id))}")
    if saving:  # never read as "no results": the download outlasted this call's wait
        soon = "once they are saved" if any(n is not None for n in queued.values()) else "in a moment"
        lines.append(
            f"{len(saving)} result(s) still being saved into the workspace: check_task(task_id) shows the files {soon} "
            "(the links above work meanwhile)."
        )
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
        status=status,
        message="\n".join(lines),
        model=spec.id,
        tasks=records,
        saving=saving,
        sandbox=rt.settings.sandbox,
    )


def _headline(status: Status, spec: ModelSpec, records: list[TaskRecord], wire: dict[str, Any] | None) -> str:
    """The first line of an answer, counting results as the confirmation did: Imagen's ``num_images=4`` in one task
    is "4 images", never "1 image"."""
    each, at_most = spec.outputs_per_task(wire) if wire is not None else (1, False)
    n = len(records) * each
    noun = f"{spec.kind}{'s' if n > 1 else ''}"
    things = f"{'up to ' if at_most and each > 1 else ''}{n} {noun}"
    no_links = [r for r in records if r.state == "succeeded_without_results"]
    if status == "submitted" and no_links and all(r.finished or r.state == no_links[0].state for r in records):
        return (  # nothing left generating: KIE only owes links, which the follower looks for every 3 minutes
            f"KIE reports {things} from {spec.title} done, but sent no result link for {len(no_links)} of "
            f"{len(records)} task{'s' if len(records) > 1 else ''} yet; kie-mcp looks again every few minutes, and "
            "check_task looks at once."
        )
    return {
        "completed": f"Done: {things} from {spec.title}.",
        "submitted": f"Submitted {things} to {spec.title}; still generating.",
        "partial": f"Partly done: {things} requested from {spec.title}.",
        "failed": f"Failed: no {noun} could be made with {spec.title}.",
        "unknown": f"Unclear: the request to {spec.title} may or may not have been created.",
    }.get(status, status)


def _describe(record: TaskRecord, saving: bool = False, queued: int | None = None) -> str:
    ident = record.task_id or "(no task id)"
    if record.state == "succeeded":
        where = ", ".join(record.files) if record.files else ", ".join(record.openable_links())
        where = "; ".join(part for part in (where, *record.refused_words()) if part)  # a refused link: why
        being = f"; {saving_words(queued)}" if saving else ""
        return f"{ident}: succeeded{being}: {where}" + (f" ({record.note})" if record.note else "")
    if record.state in ("failed", "unknown"):
        return f"{ident}: {record.state}: {record.error}"
    eta = f", {time_left_words(record.eta_seconds, record.sandbox)}" if record.eta_seconds else ""
    note = f" ({record.error})" if record.error else ""  # e.g. KIE refused the last status check: why it waits
    return f"{ident}: {record.state}{eta}{note}"
