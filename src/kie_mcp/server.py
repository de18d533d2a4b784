"""The MCP surface: tools, resources and prompts, each a thin call into the layers below.

No ``from __future__ import annotations`` here: the SDK reads resolver annotations at runtime.
"""

import base64
import contextlib
import inspect
import json
import logging
import mimetypes
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

import anyio
import httpx2
from mcp.server import MCPServer
from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    DeclinedElicitation,
    Elicit,
    ElicitationResult,
    ListRoots,
    Resolve,
)
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.resources import FileResource
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from kie_mcp import __version__
from kie_mcp import generation as gen
from kie_mcp.bundled import bundled_path
from kie_mcp.catalog import (
    AmbiguousModelError,
    InvalidRequest,
    UnknownModelError,
    WithdrawnModelError,
    usd,
)
from kie_mcp.catalog.tables import model_document, model_table_json, model_table_markdown, price_summary
from kie_mcp.config import Settings
from kie_mcp.journal import Journal, JournalUnavailable, storage_problem, unavailable_reason
from kie_mcp.kie import KieError
from kie_mcp.media.downloads import output_folder, thumbnail
from kie_mcp.media.inputs import (
    UPLOAD_ACCEPTS,
    OutsideAllowedFolders,
    RefusedInput,
    confined,
    inspect_local,
    private_reason,
    upload_name,
)
from kie_mcp.media.prepare import upload_prepared
from kie_mcp.media.stitch import Caption, StitchError, output_file_name, stitch
from kie_mcp.prompts import register_prompts
from kie_mcp.redact import redact
from kie_mcp.runtime import NoKeyError, Runtime, open_runtime
from kie_mcp.spend import (
    Approved,
    Ask,
    ConfirmSpend,
    Declined,
    NeedsConfirmation,
    Quote,
    QuoteError,
    Replay,
    SpendRefused,
    check_caps,
)
from kie_mcp.spend.balance import balance_cache
from kie_mcp.tasks import TaskBook, TaskRecord
from kie_mcp.toolschema import compact

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
kie-mcp makes images and videos with KIE.ai models. Every generation costs the user's KIE credits, so the \
server only spends what the user approved:
1. Pick a model (list_models, or the kie://models resource). Prompting guidance is in the kie://prompting/... \
resources.
2. estimate_cost shows the exact price and returns a quote_id. Show the cost to the user.
3. generate_image / generate_video with the same arguments. When the client can show confirmation forms, the \
server asks the user itself. Otherwise the tool answers status=confirmation_required with a quote; after the \
user approves that cost in the chat, repeat the call with quote_id. Hard caps and the account balance are \
enforced by the server and no approval overrides them.
Images usually finish within the call. Videos take minutes: generate_video returns task ids at once; follow \
them with check_task(task_id, wait_seconds). check_credits shows the balance, today's spend and the caps."""

MAX_RESOURCE_BYTES = 50 * 1024 * 1024
CANCELLED = (
    "The confirmation was cancelled or dismissed (if no dialog appeared, this client cannot show MCP "
    "confirmation forms)."
)

READ_LOCAL = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
READ_KIE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
SPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
LOCAL_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
UPLOADS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)

_USER_ERRORS = (
    JournalUnavailable,
    InvalidRequest,
    UnknownModelError,
    WithdrawnModelError,
    AmbiguousModelError,
    KieError,
    SpendRefused,
    NoKeyError,
    QuoteError,
    FileNotFoundError,
    OutsideAllowedFolders,
    StitchError,
)

# -- argument types shared by the estimate and generate tools ---------------------------------

Prompt = Annotated[str, Field(description="What to make: one clear paragraph (see the kie://prompting guides).")]
Images = Annotated[
    list[str],
    Field(description="Input images: http(s) URLs or local file paths (uploaded to KIE first). Max per model."),
]
AspectRatio = Annotated[str | None, Field(description="e.g. 16:9, 9:16, 1:1; allowed values depend on the model.")]
Resolution = Annotated[str | None, Field(description="e.g. 1K/2K/4K for images, 720p/1080p/4k for video.")]
Duration = Annotated[
    int | None,
    Field(ge=1, le=60, allow_inf_nan=False, description="Video length in seconds, where the model has one."),
]
Audio = Annotated[bool | None, Field(description="Video sound on/off, where the model offers a choice.")]
Options = Annotated[
    dict[str, Any] | None,
    Field(description="Model-specific fields in KIE's own names, e.g. {'output_format': 'png'}; see list_models."),
]
Variations = Annotated[
    int, Field(ge=1, le=10, allow_inf_nan=False, description="How many identical tasks to run (each is charged).")
]
Script = Annotated[
    str | None,
    Field(
        description="Video only: the exact words spoken. Picks the shortest duration that fits (~2.5 words/s) and "
        "puts the words into the prompt as dialogue; too long a script gets a suggested split."
    ),
]
Session = Annotated[
    str | None,
    Field(description="A short name for this piece of work; results are saved in outputs/{date}-{session}/."),
]
MaxCredits = Annotated[
    float | None,
    Field(
        gt=0,
        allow_inf_nan=False,
        description="The most this call may cost, in credits. A price over it is refused; a price not known before "
        "the task runs reserves this much (instead of the whole per-call cap) against today's cap.",
    ),
]
QuoteId = Annotated[
    str | None, Field(description="The quote_id of a cost the user approved (from estimate_cost or a prior call).")
]


class _Result(BaseModel):
    """Tool results refuse unknown fields, so a misspelt field fails loudly instead of vanishing."""

    model_config = ConfigDict(extra="forbid")


class EstimateResult(_Result):
    quote: Quote
    within_caps: bool
    cap_problem: str | None = None
    auto_approved: bool = Field(description="True when this price is at or under KIE_AUTO_APPROVE_CREDITS.")
    balance_credits: float | None = None
    spent_today: float
    max_credits_per_call: float
    max_credits_per_day: float
    message: str


class CreditsResult(_Result):
    balance_credits: float
    balance_usd: float
    spent_today: float = Field(description="Credits spent today through this workspace.")
    spent_total: float = Field(description="Credits spent through this workspace since its journal began.")
    max_credits_per_call: float
    max_credits_per_day: float
    auto_approve_credits: float
    spending_refused: str | None = Field(
        default=None, description="Why spends are refused for the rest of today (real charges over the daily cap)."
    )
    unknown_creates: int = Field(
        default=0, description="Creates whose outcome is unknown: they may have been charged; check kie.ai/logs."
    )
    sandbox: bool
    message: str


class ModelInfo(_Result):
    id: str
    title: str
    family: str
    kind: str
    capabilities: list[str]
    price: str
    good_for: str
    recent_success_rate: float | None = Field(
        default=None, description="Set when KIE reports under 90% successful tasks for it in the last 24 hours."
    )


def _health_text(model: "ModelInfo") -> str:
    rate = model.recent_success_rate
    return "" if rate is None else f" WARNING: only {rate:.0%} of its tasks succeeded on KIE in the last 24 hours."


class ModelList(_Result):
    models: list[ModelInfo]
    message: str


class CaptionArg(BaseModel):
    start: float = Field(ge=0, allow_inf_nan=False, description="Seconds from the start of the joined video.")
    end: float = Field(gt=0, allow_inf_nan=False, description="Seconds from the start; after start.")
    text: str = Field(min_length=1)


class StitchedVideo(_Result):
    path: str = Field(description="The joined video, relative to the workspace.")
    duration: float | None
    reencoded: bool
    message: str


class TaskList(_Result):
    tasks: list[TaskRecord]
    unknown_creates: int = Field(description="Creates whose outcome is unknown (may have been charged).")
    message: str


class TaskResult(_Result):
    task: TaskRecord
    message: str


class UploadResult(_Result):
    url: str
    file_name: str
    size: int | None = None
    mime_type: str | None = None
    message: str


def create_server(settings: Settings | None = None, *, transport: httpx2.AsyncBaseTransport | None = None) -> MCPServer:
    """Build the server. ``transport`` replaces the network (tests and the sandbox pass the simulator)."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[Runtime]:
        async with open_runtime(settings, transport) as runtime:
            yield runtime

    mcp = MCPServer(
        "kie-mcp",
        title="KIE.ai (kie-mcp)" + (" [sandbox]" if settings.sandbox else ""),
        description="Images and videos from KIE.ai models, with the cost shown and approved before any spend.",
        instructions=INSTRUCTIONS,
        website_url="https://kie.ai",
        version=__version__,
        lifespan=lifespan,
    )
    _register_tools(mcp)
    _compact_tool_schemas(mcp)
    _register_resources(mcp, settings)
    register_prompts(mcp)
    return mcp


def _compact_tool_schemas(mcp: MCPServer) -> None:
    """Publish leaner schemas (``toolschema.compact``: no derived titles, single-use ``$defs`` inlined), set
    before anything reads them. The SDK has no public hook for this, hence its tool manager."""
    for tool in mcp._tool_manager.list_tools():
        tool.parameters = compact(tool.parameters)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = compact(tool.fn_metadata.output_schema)


# -- tools --------------------------------------------------------------------------------------


_HIDDEN_PARAMETERS = {"ctx", "plan", "approval", "roots"}
_ACCEPTED: dict[str, list[str]] = {}  # tool name -> the arguments it takes, filled at registration


def _accepts(tool_fn: Any) -> Any:
    """Remember which arguments ``tool_fn`` takes, so unknown ones can be refused instead of ignored."""
    _ACCEPTED[tool_fn.__name__] = [p for p in inspect.signature(tool_fn).parameters if p not in _HIDDEN_PARAMETERS]
    return tool_fn


def _reject_unknown_arguments(ctx: Context, tool: str) -> None:
    """The SDK drops arguments a tool does not declare; an agent would think they were used. Refuse them."""
    params = ctx.request_context.params or {}
    given = params.get("arguments") or {}
    unknown = sorted(set(given) - set(_ACCEPTED.get(tool, given)))
    if unknown:
        hint = " Scripts and durations belong to generate_video." if tool == "generate_image" else ""
        raise ToolError(
            f"{tool} does not take {', '.join(unknown)}; nothing was sent.{hint} "
            f"It takes: {', '.join(_ACCEPTED[tool])}."
        )


def _register_tools(mcp: MCPServer) -> None:
    image_prepare, image_approve = _gate("image")
    video_prepare, video_approve = _gate("video")

    @mcp.tool(title="Estimate cost", annotations=READ_LOCAL)
    @_accepts
    async def estimate_cost(
        model: Annotated[str, Field(description="KIE model id or friendly name, e.g. veo3_fast, 'nano banana'.")],
        prompt: Prompt,
        ctx: Context,
        images: Images = [],  # noqa: B006 - pydantic copies defaults
        aspect_ratio: AspectRatio = None,
        resolution: Resolution = None,
        duration: Duration = None,
        audio: Audio = None,
        options: Options = None,
        variations: Variations = 1,
        script: Script = None,
        max_credits: MaxCredits = None,
    ) -> Annotated[CallToolResult, EstimateResult]:
        """Price a generation exactly, without spending anything. Takes the same arguments as generate_image /
        generate_video and returns a quote (credits, about USD, price source and date) with a quote_id that
        approves exactly this request once, for 10 minutes. Free."""
        _reject_unknown_arguments(ctx, "estimate_cost")
        rt = _runtime(ctx)
        with _user_errors():
            args = gen.GenerationArgs(**_args(locals()))
            plan = await gen.plan(rt, args)
            result = await _estimate(rt, plan)
        return _tool_result(result, result.message)

    async def generate_image(
        prompt: Prompt,
        ctx: Context,
        plan: Annotated[gen.Plan, Resolve(image_prepare)],
        approval: Annotated[ElicitationResult[ConfirmSpend], Resolve(image_approve)],
        model: Annotated[str, Field(description="Image model id or name; see list_models.")] = "nano-banana-2",
        images: Images = [],  # noqa: B006
        aspect_ratio: AspectRatio = None,
        resolution: Resolution = None,
        options: Options = None,
        variations: Variations = 1,
        session: Session = None,
        quote_id: QuoteId = None,
        max_credits: MaxCredits = None,
        wait_seconds: Annotated[
            float, Field(ge=0, le=50, allow_inf_nan=False, description="How long to wait for results.")
        ] = 45,
    ) -> Annotated[CallToolResult, gen.GenerationResult]:
        """Make images with a KIE model. COSTS CREDITS. The cost must be approved first: the server asks the user
        through a confirmation form when the client supports it; otherwise it answers
        status=confirmation_required with a quote, and after the user approves that cost the call is repeated
        with quote_id. Waits up to wait_seconds (default 45) for the results, reporting progress."""
        return await _generate(ctx, plan, approval, "generate_image", wait_seconds)

    async def generate_video(
        prompt: Prompt,
        ctx: Context,
        plan: Annotated[gen.Plan, Resolve(video_prepare)],
        approval: Annotated[ElicitationResult[ConfirmSpend], Resolve(video_approve)],
        model: Annotated[str, Field(description="Video model id or name; see list_models.")] = "veo3_fast",
        images: Images = [],  # noqa: B006
        aspect_ratio: AspectRatio = None,
        resolution: Resolution = None,
        duration: Duration = None,
        audio: Audio = None,
        options: Options = None,
        variations: Variations = 1,
        script: Script = None,
        session: Session = None,
        quote_id: QuoteId = None,
        max_credits: MaxCredits = None,
        wait_seconds: Annotated[
            float, Field(ge=0, le=50, allow_inf_nan=False, description="How long to wait (videos take minutes).")
        ] = 0,
    ) -> Annotated[CallToolResult, gen.GenerationResult]:
        """Make videos with a KIE model. COSTS CREDITS (tens to hundreds per clip). The cost must be approved
        first: the server asks the user through a confirmation form when the client supports it; otherwise it
        answers status=confirmation_required with a quote, and after the user approves that cost the call is
        repeated with quote_id. Returns task ids at once with an estimated time; follow them with check_task."""
        return await _generate(ctx, plan, approval, "generate_video", wait_seconds)

    for tool_fn, prepare in ((generate_image, image_prepare), (generate_video, video_prepare)):
        _bind_to_tool_arguments(prepare, tool_fn)
        _accepts(tool_fn)
    mcp.tool(title="Generate image (spends credits)", annotations=SPENDS)(generate_image)
    mcp.tool(title="Generate video (spends credits)", annotations=SPENDS)(generate_video)

    @mcp.tool(title="Check task", annotations=READ_KIE)
    @_accepts
    async def check_task(
        task_id: Annotated[str, Field(min_length=1, description="A KIE task id from any kie-mcp or KIE call.")],
        ctx: Context,
        wait_seconds: Annotated[
            float, Field(ge=0, le=50, allow_inf_nan=False, description="Wait up to this long for it to finish.")
        ] = 0,
    ) -> Annotated[CallToolResult, TaskResult]:
        """Status and results of a KIE task of any kind, with progress while waiting. Free."""
        _reject_unknown_arguments(ctx, "check_task")
        rt = _runtime(ctx)
        with _user_errors():
            rt.require_kie()
            rt.follower.attach_client(ctx)  # from now on task updates reach this client (tasks/follower.py)
            task_id = task_id.strip()
            record = rt.follower.known(task_id) or rt.tasks.get(task_id)
            looked = record is None
            if record is None:  # a task the journal does not know: KIE is asked once, then the follower has it
                record = await _find_record(rt, task_id)
            # The follower polls (once for every waiter); this call waits on it, with progress.
            reporter = gen.ProgressReporter(_progress(ctx), 1)
            checked = await rt.follower.check(record, wait_seconds, reporter, looked=looked)
            record, problems = checked.record, checked.problems
            if not checked.held:  # it had ended before this call: fold in its charge once, save what is missing
                problems = [*gen.settle(rt, [record]), *await gen.save_all(rt, [record])]
                rt.tasks.add(record)
            elif checked.saving:
                problems.append("Its results are being saved now; check_task shows the files in a moment.")
            await rt.follower.deliver_notices(ctx)
        result = TaskResult(task=record, message=" ".join([_task_message(record), *problems]))
        return _tool_result(result, result.message, [record], rt.settings.workspace)

    @mcp.tool(title="Stitch videos", annotations=LOCAL_WRITE)
    @_accepts
    async def stitch_videos(
        clips: Annotated[
            list[str],
            Field(min_length=1, description="In order: task ids of saved videos, or video paths in the workspace."),
        ],
        ctx: Context,
        output_name: Annotated[str | None, Field(description="File name for the joined video (.mp4).")] = None,
        session: Session = None,
        captions: Annotated[
            list[CaptionArg] | None, Field(description="Timed captions to burn in (seconds from the start).")
        ] = None,
    ) -> Annotated[CallToolResult, StitchedVideo]:
        """Join saved clips into one video in the session folder (re-encoding when formats differ), optionally
        with burned-in captions. Local and free: needs ffmpeg (pip install 'kie-mcp[video]')."""
        _reject_unknown_arguments(ctx, "stitch_videos")
        rt = _runtime(ctx)
        with _user_errors():
            name = output_file_name(output_name, f"stitched-{len(clips)}-clips")  # refuses paths, NUL, overlong
            paths = [_clip_path(rt, clip) for clip in clips]
            label = session or output_name or "stitched"
            folder = output_folder(rt.settings.workspace, label, datetime.now().date())
            folder.mkdir(parents=True, exist_ok=True)
            parts = [Caption(c.start, c.end, c.text) for c in captions or []]
            done = await stitch(paths, folder / name, captions=parts or None)
        relative = done.path.relative_to(rt.settings.workspace).as_posix()
        message = f"Joined {len(paths)} clip(s) into {relative}. {done.note}"
        result = StitchedVideo(path=relative, duration=done.duration, reencoded=done.reencoded, message=message)
        link = ResourceLink(
            type="resource_link",
            uri=f"kie://outputs/{relative.removeprefix('outputs/')}",
            name=done.path.name,
            mime_type="video/mp4",
        )
        call = _tool_result(result, message)
        call.content.append(link)
        return call

    @mcp.tool(title="List tasks", annotations=READ_LOCAL)
    @_accepts
    async def list_tasks(
        ctx: Context,
        state: Annotated[
            Literal["queued", "running", "succeeded", "succeeded_without_results", "failed", "unknown"] | None,
            Field(description="Only this state."),
        ] = None,
        model: Annotated[str | None, Field(description="Only this model id.")] = None,
        since: Annotated[
            str | None, Field(description="Only tasks created on or after this date (YYYY-MM-DD).")
        ] = None,
        text: Annotated[str | None, Field(description="Words to find in the prompt.")] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 50,
    ) -> Annotated[CallToolResult, TaskList]:
        """Every task this workspace created, newest first, from the journal (survives restarts). Free."""
        _reject_unknown_arguments(ctx, "list_tasks")
        rt = _runtime(ctx)
        with _user_errors():
            day = _parse_day(since)
            found = rt.tasks.find(state=state, model=model, since=day, text=text, limit=limit)
            unknown = [a["attempt_id"] for a in rt.journal.attempts("unknown")]
        lines = [
            f"- {t.task_id} {t.model} {t.state}" + (f": {', '.join(t.result_urls)}" if t.result_urls else "")
            for t in found
        ]
        message = f"{len(found)} task(s)" + (":\n" + "\n".join(lines) if lines else ".")
        if unknown:
            message += "\n" + _unknown_creates_text(len(unknown))
        message += "".join(f"\n{notice}" for notice in rt.notices)
        result = TaskList(tasks=found, unknown_creates=len(unknown), message=message)
        return _tool_result(result, message)

    @mcp.tool(title="Check credits", annotations=READ_KIE)
    @_accepts
    async def check_credits(ctx: Context) -> Annotated[CallToolResult, CreditsResult]:
        """The KIE balance (credits and about USD), credits spent today through this server, and the caps. Free."""
        _reject_unknown_arguments(ctx, "check_credits")
        rt = _runtime(ctx)
        with _user_errors():
            rt.require_kie()
            balance = await balance_cache(rt).read()  # always fresh, and refreshes the cache spends use
            s, spent, total = rt.settings, rt.ledger.spent_today(), rt.ledger.total_spent()
            blocked, unknown = rt.ledger.over_cap(), len(rt.journal.attempts("unknown"))
        message = (
            f"Balance: {balance:g} credits (about ${usd(balance):.2f}). Spent today through kie-mcp: {spent:g}. "
            f"Caps: {s.max_credits_per_call:g} per call, {s.max_credits_per_day:g} per day. "
            + (
                f"Auto-approve up to {s.auto_approve_credits:g} credits."
                if s.auto_approve_credits
                else "Every spend is confirmed."
            )
            + (" SANDBOX: simulated account." if s.sandbox else "")
            + (f" {blocked}" if blocked else "")
            + (f" {_unknown_creates_text(unknown)}" if unknown else "")
            + "".join(f" {notice}" for notice in rt.notices)
        )
        result = CreditsResult(
            balance_credits=balance,
            balance_usd=usd(balance),
            spent_today=spent,
            spent_total=total,
            spending_refused=blocked,
            unknown_creates=unknown,
            max_credits_per_call=s.max_credits_per_call,
            max_credits_per_day=s.max_credits_per_day,
            auto_approve_credits=s.auto_approve_credits,
            sandbox=s.sandbox,
            message=message,
        )
        return _tool_result(result, message)

    @mcp.tool(title="List models", annotations=READ_LOCAL)
    @_accepts
    async def list_models(
        ctx: Context,
        kind: Annotated[Literal["image", "video"] | None, Field(description="Only image or video models.")] = None,
        capability: Annotated[str | None, Field(description="e.g. text-to-video, edit, audio, reference.")] = None,
        query: Annotated[str | None, Field(description="Words to match in id, name or description.")] = None,
    ) -> Annotated[CallToolResult, ModelList]:
        """The KIE models kie-mcp can validate and price, with what each is good at and its price. Free."""
        _reject_unknown_arguments(ctx, "list_models")
        rt = _runtime(ctx)
        models = [
            ModelInfo(**spec.summary(), price=price_summary(spec), recent_success_rate=rate)
            for spec, rate in gen.offered_models(rt, kind=kind, capability=capability, query=query)
        ]
        lines = [f"- {m.id} ({m.kind}, {m.price}): {m.good_for}{_health_text(m)}" for m in models]
        message = f"{len(models)} model(s):\n" + "\n".join(lines) if models else "No model matches those filters."
        return _tool_result(ModelList(models=models, message=message), message)

    @mcp.tool(title="Upload file", annotations=UPLOADS)
    @_accepts
    async def upload_file(
        path: Annotated[str, Field(description="A local file (absolute, or relative to the workspace).")],
        ctx: Context,
        roots: Roots,
    ) -> Annotated[CallToolResult, UploadResult]:
        """Upload a local image, video or audio file to KIE's file host and return its URL for use as a model
        input. The file's content decides its type; dotfiles, .env, .kie-mcp/ and logs/ are never uploaded.
        Free; KIE keeps uploads for about 3 days."""
        _reject_unknown_arguments(ctx, "upload_file")
        rt = _runtime(ctx)
        with _user_errors():
            allowed = (*rt.settings.input_roots, *_root_folders(roots))
            try:
                file, media = await anyio.to_thread.run_sync(
                    inspect_local, path, rt.settings.workspace, allowed, UPLOAD_ACCEPTS
                )
            except RefusedInput as err:
                raise ToolError(f"upload_file refused path: {err}") from None
            name = upload_name(file, media)
            uploaded, note = await upload_prepared(rt.require_kie(), file, "kie-mcp/uploads", name, media)
        message = f"Uploaded {uploaded.file_name}: {uploaded.url} (KIE keeps uploads for about 3 days)."
        message += f" {note}" if note else ""
        result = UploadResult(**uploaded.model_dump(), message=message)
        return _tool_result(result, message)


async def client_roots(ctx: Context) -> ListRoots | list[Any]:
    """Ask for the client's MCP roots (folders the user shared), only when the client declared it has some."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return []
    return ListRoots()


def _root_folders(roots: Any) -> tuple[Path, ...]:
    """The local folders among the client's roots (file:// URIs), as real paths."""
    found = []
    for root in getattr(roots, "roots", None) or []:
        uri = str(root.uri)
        if uri.startswith("file://"):
            found.append(Path(url2pathname(urlparse(uri).path)).resolve())
    return tuple(found)


Roots = Annotated[Any, Resolve(client_roots)]


def _gate(kind: str) -> tuple[Any, Any]:
    """The two resolvers of a generate tool: prepare (validate, price, caps, balance), then approve."""

    async def prepare(ctx: Context, **arguments: Any) -> gen.Plan:
        _reject_unknown_arguments(ctx, f"generate_{kind}")
        rt = _runtime(ctx)
        shared = _root_folders(arguments.pop("roots", None))
        with _user_errors():
            plan = await gen.plan(rt, gen.GenerationArgs(**_args(arguments)), kind, shared)
            return await gen.check_spend(rt, plan)

    async def approve(
        ctx: Context, plan: Annotated[gen.Plan, Resolve(prepare)]
    ) -> Approved | NeedsConfirmation | Replay | Declined | Elicit[ConfirmSpend]:
        rt = _runtime(ctx)
        with _user_errors():
            decision = gen.decide_approval(rt, plan, can_ask=_can_elicit(ctx), answered=_answers_us(ctx, kind))
        if not isinstance(decision, Ask):
            return decision
        if ctx.protocol_version is not None and ctx.session.can_send_request:
            return await _ask_with_deadline(ctx, decision, rt.settings.confirm_timeout_seconds)
        return Elicit(decision.message, ConfirmSpend)  # 2026-07-28: the answer comes back in a retried request

    prepare.__qualname__ = f"prepare_{kind}"
    approve.__qualname__ = f"approve_{kind}"
    return prepare, approve


def _answers_us(ctx: Context, kind: str) -> bool:
    """Whether this (2026-07-28, retried) request carries an answer to this tool's confirmation question."""
    return any(key.split("#")[0].endswith(f":approve_{kind}") for key in ctx.input_responses or {})


async def _ask_with_deadline(ctx: Context, ask: Ask, seconds: float) -> Approved | Declined | NeedsConfirmation:
    """Ask over the back-channel (handshake era), giving up after ``seconds``: an unanswered question ends the
    call as cancelled, with nothing spent."""
    with anyio.move_on_after(seconds):
        try:
            outcome = await ctx.elicit(ask.message, ConfirmSpend)
        except ValueError:
            return Declined("The confirmation answer could not be read, so it is not a yes.")
        decision = _decision(outcome)
        if isinstance(decision, Approved):
            return Approved("elicitation", ask.quote_id)
        assert not isinstance(decision, Replay)
        return decision
    return NeedsConfirmation(gen.UNANSWERED.format(minutes=seconds / 60), cancelled=True)


def _bind_to_tool_arguments(resolver: Any, tool_fn: Any) -> None:
    """Give ``resolver`` the tool's argument names, so the SDK passes it exactly what the tool received."""
    params = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
        inspect.Parameter("roots", inspect.Parameter.KEYWORD_ONLY, annotation=Roots),
    ]
    for name in inspect.signature(tool_fn).parameters:
        if name in gen.GenerationArgs.model_fields:
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY))
    resolver.__signature__ = inspect.Signature(params)
    resolver.__annotations__ = {**resolver.__annotations__, "roots": Roots}


async def _generate(
    ctx: Context, plan: gen.Plan, approval: ElicitationResult[ConfirmSpend], tool: str, wait_seconds: float
) -> CallToolResult:
    rt = _runtime(ctx)
    rt.follower.attach_client(ctx)  # updates of the tasks this call creates reach this client
    with _user_errors():
        result = await gen.execute(
            rt, plan, _decision(approval), tool=tool, wait_seconds=wait_seconds, progress=_progress(ctx)
        )
    await _thumbnails_ready(result.tasks, rt.settings.workspace)  # decoded in a worker thread, never on the loop
    return _tool_result(result, result.message, result.tasks, rt.settings.workspace)


def _decision(outcome: ElicitationResult[Any]) -> Approved | Declined | NeedsConfirmation | Replay:
    match outcome:
        case AcceptedElicitation(data=ConfirmSpend(confirm=True)):
            return Approved("elicitation")
        case AcceptedElicitation(data=ConfirmSpend(not_boolean=True)):
            return Declined("The confirmation answer was not the boolean true, so it is not a yes.")
        case AcceptedElicitation(data=ConfirmSpend()):
            return Declined()
        case AcceptedElicitation(data=Approved() | NeedsConfirmation() | Replay() | Declined() as decided):
            return decided
        case DeclinedElicitation():
            return Declined()
        case _:
            return NeedsConfirmation(CANCELLED)


async def _estimate(rt: Runtime, plan: gen.Plan) -> EstimateResult:
    from kie_mcp.spend.balance import balance_cache

    quote = rt.quotes.issue(plan.spec.id, plan.digest, plan.price, plan.variations, ceiling=plan.reserved)
    spent = rt.ledger.spent_today()
    try:
        check_caps(plan.total, spent, rt.ledger.caps, ceiling=plan.max_credits)
        cap_problem = None
    except SpendRefused as err:
        cap_problem = str(err)
    balance = await balance_cache(rt).current() if rt.kie is not None else None  # read at most every few seconds
    auto = quote.price_known and 0 < (quote.credits_total or 0) <= rt.settings.auto_approve_credits
    cost = (
        f"{quote.credits_total:g} credits (about ${quote.usd_total:.2f})"
        if quote.credits_total is not None
        else f"UNKNOWN before it runs (never auto-approved); up to {plan.reserved:g} credits are reserved against "
        "today's cap (the per-call cap, or max_credits when lower)"
    )
    parts = [
        f"{plan.spec.title} ({plan.spec.id}) x{plan.variations}: {cost}.",
        *plan.notes,
        f"Breakdown: {quote.breakdown}. Price source: {quote.price_source}.",
        gen.settings_text(plan) + ".",
        f"quote_id={quote.quote_id} approves exactly this request once, until {quote.expires_at}.",
    ]
    if cap_problem:
        parts.append(f"Over a cap: {cap_problem}")
    if balance is not None and quote.credits_total is not None and balance < quote.credits_total:
        parts.append(f"The balance ({balance:g} credits) is too low for this request.")
    return EstimateResult(
        quote=quote,
        within_caps=cap_problem is None,
        cap_problem=cap_problem,
        auto_approved=auto,
        balance_credits=balance,
        spent_today=spent,
        max_credits_per_call=rt.ledger.caps.per_call,
        max_credits_per_day=rt.ledger.caps.per_day,
        message=" ".join(parts),
    )


async def _find_record(rt: Runtime, task_id: str) -> TaskRecord:
    record = rt.tasks.get(task_id)
    if record is not None:
        return record
    status = await rt.require_kie().find_task(task_id)
    model = status.model or "unknown"
    record = TaskRecord(task_id=task_id, model=model, family=status.family, state="queued", sandbox=rt.settings.sandbox)
    spec = rt.catalog.get(model)
    record.kind = spec.kind if spec else None
    record.apply(status, rt.typical_seconds(model))
    rt.tasks.add(record)
    return record


def _unknown_creates_text(count: int) -> str:
    return (
        f"{count} create(s) got no clear answer from KIE (or were being sent when the server stopped) and may have "
        "been created and charged: they are counted against the daily cap. Check https://kie.ai/logs before "
        "trying them again."
    )


def _clip_path(rt: Runtime, clip: str) -> Path:
    """A clip by task id (its saved video) or by workspace path (inside the allowed folders)."""
    saved = [f for f in rt.journal.files_for(clip) if f["mime"].startswith("video/")]
    if saved:
        return rt.settings.workspace / saved[0]["path"]
    if rt.tasks.get(clip) is not None:
        raise ToolError(f"Task {clip} has no saved video yet; check_task saves it once it has finished.")
    path = confined(clip, rt.settings.workspace, rt.settings.input_roots)
    if not path.is_file():
        raise ToolError(f"{clip!r} is neither a task id with a saved video nor a video file in the workspace.")
    return path


def _parse_day(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d")
    except ValueError:
        raise ToolError(f"since={text!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-21.") from None


def _task_message(record: TaskRecord) -> str:
    head = f"Task {record.task_id} ({record.model}): {record.state}"
    if record.state == "succeeded":
        saved = f" Saved: {', '.join(record.files)}." if record.files else ""
        return f"{head}. Results: " + ", ".join(record.result_urls) + "." + saved
    if record.state in ("failed", "succeeded_without_results", "unknown"):
        return f"{head}. {record.error}"
    eta = f"; about {record.eta_seconds}s left" if record.eta_seconds else ""
    progress = f" ({record.progress:.0%})" if record.progress is not None else ""
    return f"{head}{progress}{eta}. Check again later with check_task."


# -- resources ------------------------------------------------------------------------------------


def _register_resources(mcp: MCPServer, settings: Settings) -> None:
    @mcp.resource("kie://models", name="models", title="KIE model table", mime_type="text/markdown")
    def models_markdown() -> str:
        """Every model kie-mcp knows: kind, capabilities, price and what it is good at."""
        return model_table_markdown()

    @mcp.resource("kie://models.json", name="models-json", title="KIE model table (JSON)", mime_type="application/json")
    def models_json() -> str:
        """The model table as JSON, with each model's fields, rules, price table and sources."""
        return model_table_json()

    @mcp.resource("kie://models/{+model_id}", name="model", title="One KIE model", mime_type="application/json")
    def model(model_id: str, ctx: Context) -> str:
        """A model's input schema (fields, types, enums, defaults, limits), rules, price table and sources."""
        try:
            spec = gen.resolve_model(_runtime(ctx), model_id)
        except (UnknownModelError, WithdrawnModelError, AmbiguousModelError) as err:
            raise ResourceError(str(err)) from err
        return json.dumps(model_document(spec), indent=2)

    outputs = settings.workspace / "outputs"

    @mcp.resource("kie://outputs/{+path}", name="output", title="A saved result", mime_type="application/octet-stream")
    def output(path: str) -> bytes:
        """A result saved in the workspace's outputs/ folder (images, videos, sidecar JSON)."""
        home = outputs.resolve()
        try:  # symlinks are judged by their target: nothing outside outputs/, no dotfiles, no unusable paths
            target = (outputs / path).resolve()
            inside = target.is_relative_to(home) and target.is_file()
        except (OSError, ValueError, RuntimeError):
            inside = False
        names = (*Path(path).parts, *(target.relative_to(home).parts if inside else ()))
        if not inside or any(name.startswith(".") for name in names):
            raise ResourceError(f"No saved result at outputs/{path}.")
        if target.stat().st_size > MAX_RESOURCE_BYTES:
            raise ResourceError(f"outputs/{path} is too large to send over MCP; open it from the workspace.")
        return target.read_bytes()

    master = settings.workspace / "MASTER_CONTEXT.md"

    @mcp.resource(
        "kie://workspace/MASTER_CONTEXT.md",
        name="master-context",
        title="Workspace MASTER_CONTEXT.md",
        mime_type="text/markdown",
    )
    def master_context() -> str:
        """The workspace's brand voice, decisions, model preferences and known quirks."""
        if master.is_file():
            return master.read_text(encoding="utf-8")
        template = bundled_path("MASTER_CONTEXT.md")
        body = template.read_text(encoding="utf-8") if template and template.is_file() else ""
        return (
            f"<!-- No MASTER_CONTEXT.md in the workspace yet ({master}). This is kie-mcp's template; "
            f"save a copy there to keep brand and model decisions between sessions. -->\n\n{body}"
        )

    @mcp.resource("kie://tasks", name="tasks", title="Tasks of this workspace", mime_type="application/json")
    def tasks() -> str:
        """The workspace's latest tasks (up to 100) from the journal, newest first, and creates whose outcome is
        unknown (they may have been charged)."""
        try:
            journal = Journal.for_workspace(settings.workspace)
        except (OSError, sqlite3.Error) as err:
            raise ResourceError(unavailable_reason(settings.workspace, err)) from err
        try:
            found = TaskBook(journal).find(limit=100)
            unknown = [
                {"attempt_id": a["attempt_id"], "model": a["model"], "error": a["error"], "created": a["created"]}
                for a in journal.attempts("unknown")
            ]
        except sqlite3.Error as err:
            raise ResourceError(unavailable_reason(settings.workspace, err)) from err
        finally:
            journal.close()
        body: dict[str, Any] = {"tasks": [t.model_dump(mode="json") for t in found], "unknown_creates": unknown}
        if unknown:
            body["unknown_creates_note"] = _unknown_creates_text(len(unknown))
        return json.dumps(body, indent=2)

    @mcp.resource("kie://tasks/{task_id}", name="task", title="A KIE task", mime_type="application/json")
    async def task(task_id: str, ctx: Context) -> str:
        """A task's last known state and results (kept current by the server while it runs; subscribers are told
        when it changes)."""
        rt = _runtime(ctx)
        rt.follower.attach_client(ctx)  # a subscription to this resource is served from now on
        record = rt.follower.known(task_id)
        if record is None:
            try:
                record = rt.tasks.get(task_id)
                looked = record is None
                if record is None:  # asked of KIE once, then followed
                    record = await _find_record(rt, task_id)
            except _USER_ERRORS as err:
                return json.dumps({"task_id": task_id, "error": str(err)})
            if not record.finished and rt.kie is not None:
                record = await rt.follower.follow(record, looked=looked)
        return record.model_dump_json(indent=2)

    references = settings.workspace / "references"
    if references.is_dir():
        home = settings.workspace.resolve()
        for file in sorted(references.rglob("*")):
            # Symlinks are judged by their target: never served when it leaves the workspace or is private
            # (a dotfile, a dot-folder, logs/); dotfiles and dot-folders under references/ are skipped too.
            try:
                real = file.resolve(strict=True)
                usable = real.is_file() and real.is_relative_to(home)
            except (OSError, RuntimeError):
                usable = False
            hidden = any(part.startswith(".") for part in file.relative_to(references).parts)
            if not usable or hidden or private_reason(real, home, (home,)) is not None:
                continue
            relative = file.relative_to(settings.workspace).as_posix()
            mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            mcp.add_resource(
                FileResource(
                    uri=f"kie://workspace/{relative}",
                    name=relative,
                    title=relative,
                    description=f"Workspace reference file; pass '{relative}' in images to use it as a model input.",
                    mime_type=mime,
                    path=real,
                )
            )

    library = bundled_path("prompting")
    if library and library.is_dir():
        for file in sorted(library.rglob("*.md")):
            relative = file.relative_to(library).as_posix()
            mcp.add_resource(
                FileResource(
                    uri=f"kie://prompting/{relative}",
                    name=f"prompting/{relative}",
                    title=_title_of(file),
                    description="Prompt-writing guidance (descriptive reference).",
                    mime_type="text/markdown",
                    path=file.resolve(),
                )
            )


def _title_of(file: Path) -> str:
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return file.stem.replace("-", " ")


# -- helpers ----------------------------------------------------------------------------------------


def _runtime(ctx: Context) -> Runtime:
    return ctx.request_context.lifespan_context


def _args(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in gen.GenerationArgs.model_fields}


def _can_elicit(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _progress(ctx: Context) -> gen.Progress:
    async def send(value: float, total: float, message: str) -> None:
        await ctx.report_progress(value, total, message)

    return send


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Expected failures reach the agent as readable tool errors, never as tracebacks, and never with a secret
    (KieError redacts itself; this is the last safety net for every other error text)."""
    try:
        yield
    except _USER_ERRORS as err:
        raise ToolError(redact(str(err))) from err
    except (sqlite3.Error, OSError) as err:
        log.warning("storage problem: %s", err)
        raise ToolError(redact(storage_problem(err))) from err
    except (ToolError, ResourceError):
        raise
    except Exception as err:
        log.exception("unexpected error in a tool")
        raise ToolError(
            redact(
                f"kie-mcp hit an unexpected error ({type(err).__name__}: {err}). Nothing was spent by this call "
                "unless it returned a task id; list_tasks shows every task this workspace created. Please report "
                "this at the kie-mcp issue tracker."
            )
        ) from err


def _tool_result(
    model: BaseModel, text: str, tasks: Sequence[TaskRecord] = (), workspace: Path | None = None
) -> CallToolResult:
    """Text and structured content; saved results also as resource links, and small image thumbnails (the ones
    kept beside each image: ``await _thumbnails_ready(tasks, workspace)`` first makes any missing one in a worker
    thread, so nothing is decoded here, on the event loop)."""
    content: list[Any] = [TextContent(type="text", text=text)]
    for task in tasks:
        for relative in task.files:
            content.append(_output_link(relative, task))
            if workspace is not None and task.kind == "image":
                small = thumbnail(workspace / relative)  # the kept one; decoded here only if none was made
                if small is not None:
                    data, mime = small
                    content.append(ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime))
    return CallToolResult(content=content, structured_content=model.model_dump(mode="json"))


async def _thumbnails_ready(tasks: Sequence[TaskRecord], workspace: Path) -> None:
    """Make the kept thumbnails of the tasks' saved images, in a worker thread (once per file)."""
    from kie_mcp.media.downloads import make_thumbnails

    await make_thumbnails([workspace / relative for task in tasks if task.kind == "image" for relative in task.files])


def _output_link(relative: str, task: TaskRecord) -> ResourceLink:
    inside = relative.removeprefix("outputs/")
    return ResourceLink(
        type="resource_link",
        uri=f"kie://outputs/{inside}",
        name=Path(relative).name,
        description=f"{task.model} result saved at {relative}",
        mime_type=mimetypes.guess_type(relative)[0],
    )
