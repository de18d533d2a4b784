"""The MCP surface: tools, resources and prompts, each a thin call into the layers below.

Loaded on the first request that needs a tool, a resource or a prompt (``server._Server``), not at start-up.
No ``from __future__ import annotations`` here: the SDK reads resolver annotations at runtime.
"""

import base64
import contextlib
import functools
import inspect
import json
import logging
import math
import mimetypes
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from urllib.parse import unquote

import anyio
from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    DeclinedElicitation,
    Elicit,
    ElicitationResult,
    Resolve,
)
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.mcpserver.resources import FunctionResource, ResourceTemplate
from mcp.types import CallToolResult, ElicitResult, ImageContent, ResourceLink, TextContent, ToolAnnotations
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError
from pydantic_core import PydanticCustomError

from kie_mcp import estimates, followups
from kie_mcp import generation as gen
from kie_mcp.apps import app_only_meta, card_meta, client_supports_apps, gallery_meta, made_card_meta, ui_meta
from kie_mcp.bundled import bundled_path
from kie_mcp.catalog import (
    AmbiguousModelError,
    InvalidRequest,
    UnknownModelError,
    WithdrawnModelError,
    usd,
)
from kie_mcp.catalog.pricing import UP_TO_MEANS, TypicalPrice, credits_text, typical_prices
from kie_mcp.catalog.tables import (
    Offer,
    model_document,
    model_table_json,
    model_table_markdown,
    price_summary,
    typical_text,
)
from kie_mcp.clientroots import root_folders, roots_resolver
from kie_mcp.config import Settings
from kie_mcp.estimates import EstimateResult
from kie_mcp.journal import (
    ATTEMPT_ID,
    JOURNAL_ERRORS,
    BadCursor,
    Journal,
    JournalUnavailable,
    attempt_story,
    storage_problem,
    unavailable_reason,
)
from kie_mcp.kie import Category, KieError, RefusedHereError
from kie_mcp.kie.errors import content_refused
from kie_mcp.kie.families import not_a_kie_id
from kie_mcp.kie.text import task_id_problem
from kie_mcp.media import saved
from kie_mcp.media.downloads import (
    SNIFF_BYTES,
    TEXT_TYPES,
    THUMBNAIL_SIDE,
    HoldsSecret,
    as_served,
    damage_of,
    key_held,
    not_whole,
    preview,
    sniff_mime,
)
from kie_mcp.media.inputs import (
    UPLOAD_ACCEPTS,
    UPLOAD_LIMIT_BYTES,
    ChangedFile,
    HardLinked,
    HoldsPrivateKey,
    MissingFile,
    OutsideAllowedFolders,
    RefusedInput,
    TooLarge,
    as_sent,
    inspect_local,
    kept_for,
    read_inside,
    remember_own_upload,
    snapshot,
)
from kie_mcp.media.saved import CHANGED, kept
from kie_mcp.redact import redact
from kie_mcp.refusals import ResourceRefused
from kie_mcp.runtime import SERVING, NoKeyError, Runtime
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
)
from kie_mcp.spend.account import account
from kie_mcp.spend.ledger import readable_charge, reported_charge
from kie_mcp.spend.quotes import QUOTE_ID
from kie_mcp.tasks import TaskRecord
from kie_mcp.tasks.follower import Asking, saving_words
from kie_mcp.tasks.listing import (
    LIST_DEFAULT,
    LIST_LIMIT,
    BadDay,
    UnknownCreate,
    labels_text,
    latest_tasks,
    list_page,
    parse_day,
)
from kie_mcp.tasks.records import (
    NOT_FOLLOWED,
    OVERDUE,
    ModelFilterError,
    answer_not_recorded,
    charged_text,
    time_left_words,
)
from kie_mcp.toolschema import BLANK_MEANS_UNSET, FREE_TEXT, is_blank
from kie_mcp.words import duration_text, path_text, plain, readable_text, timestamp

if TYPE_CHECKING:
    from kie_mcp.server import _Server

log = logging.getLogger(__name__)

SANDBOX_LABEL = "[sandbox]"  # every text a sandbox server returns starts with it

CANCELLED = (
    "The confirmation was cancelled or dismissed (if no dialog appeared, this client cannot show MCP "
    "confirmation forms)."
)

# A confirmation form's answer nothing can be read from (accepted with no content, or content not shaped as the form
# asked; handshake era also an action MCP does not have, or an empty result), in either era: it approves nothing, and
# it is no "no" either, so the call is answered ``confirmation_required`` with a quote, never ``declined`` (which an
# agent relays as the user's no).
UNREADABLE_ANSWER = (
    "The answer to the confirmation form could not be read (accepted with nothing filled in, or not as the form "
    "asked), so it approves nothing; it is not taken as a no either."
)
# The same under KIE_APPROVAL=form, where the quote that comes with it approves nothing: only the form's yes does.
UNREADABLE_ANSWER_FORM = (
    f"{UNREADABLE_ANSWER} On this server only the user's yes in the confirmation form approves a spend "
    "(KIE_APPROVAL=form): the quote_id below only binds the call to this request and price, and repeating the call "
    "with it asks the form again."
)

# list_models' capability values, as the catalogue's models have them (a test holds them to the data): in the tool's
# listing, so an agent filters without first reading the whole list.
CAPABILITIES = (
    "audio, avatar, background-removal, character, edit, extend, first-last-frame, image-to-image, image-to-video, "
    "inpaint, layer-decomposition, lip-sync, motion-control, multi-shot, reference, segmentation, text-to-image, "
    "text-to-video, upscale, video-to-video"
)
READ_LOCAL = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
READ_KIE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
SPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
# Not idempotent: a second identical call writes a second file beside the first (never replacing it: <name>-2.mp4).
LOCAL_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
UPLOADS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
# Marks a quote in the journal; a second call changes nothing more.
DECLINES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

_USER_ERRORS = (
    JournalUnavailable,
    saved.OutputsRefused,
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
)

# -- argument types shared by the estimate and generate tools ---------------------------------


# A number as some hosts send it, as text ("3", " 2.5 "): read as that number, as a person would read it.
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _number(value: Any) -> Any:
    """A JSON number as it is; a number written as text (``"3"``: some hosts send every argument so) as that number;
    NaN and Infinity refused as not finite; anything else (``true``, ``"three"``) as sent, for the strict check to
    refuse by name."""
    if isinstance(value, str) and len(value) <= 40 and _NUMBER_TEXT.fullmatch(value.strip()):
        value = float(value.strip())
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


def _whole(value: Any) -> Any:
    """``_number``, and a number written ``3.0`` (or ``"3"``) as the integer 3 (JSON Schema's "integer" takes it)."""
    value = _number(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Numbers as numbers: pydantic's lax mode took ``true`` for 1 (``variations: true`` made one task), which the strict
# check refuses, named (``variations: must be a whole number (got true)``); a number written as text is read as that
# number, a whole number written 3.0 as 3. After a Field's bounds (so they stay the schema's minimum and maximum):
# ``Strict(), NUMBER`` or ``Strict(), WHOLE``.
NUMBER = BeforeValidator(_number)
WHOLE = BeforeValidator(_whole)

Prompt = Annotated[
    str,
    Field(
        description="What to make: one clear paragraph (see the kie://prompting guides). Leave it out for a model "
        "that takes none (background removal, upscale)."
    ),
]
Images = Annotated[
    list[str],
    Field(
        description="Input images: http(s) URLs, local file paths, or kie://outputs/... and kie://workspace/... "
        "resource links (local files are uploaded to KIE after approval). How many, and what they are, depends on the "
        "model: on some video models they are the clip's first and last frame, and reference images go in an "
        "options field (kie://models/{id} says which)."
    ),
]
AspectRatio = Annotated[
    str | None, BLANK_MEANS_UNSET, Field(description="e.g. 16:9, 9:16, 1:1; allowed values depend on the model.")
]
Resolution = Annotated[
    str | None, BLANK_MEANS_UNSET, Field(description="e.g. 1K/2K/4K for images, 720p/1080p/4k for video.")
]
Duration = Annotated[
    int | None,
    Field(ge=1, le=60, allow_inf_nan=False, description="Video length in seconds, where the model has one."),
    Strict(),
    WHOLE,
]
Audio = Annotated[
    bool | None,
    Field(description="Video sound on/off, where the model offers a choice (true is fine where it always has sound)."),
]
Options = Annotated[
    dict[str, Any] | None,
    Field(
        description="Model-specific fields in KIE's own names, e.g. {'output_format': 'png'}; each model's are in "
        "kie://models/{id}."
    ),
]
Variations = Annotated[
    int,
    Field(ge=1, le=10, allow_inf_nan=False, description="How many identical tasks to run (each is charged)."),
    Strict(),
    WHOLE,
]
Script = Annotated[
    str | None,
    FREE_TEXT,
    Field(
        description="Video only: the exact words spoken. Picks the shortest duration that fits (~2.5 words/s; "
        "Chinese, Japanese and Thai by characters, Korean by syllables) and puts the words into the prompt as "
        "dialogue; too long a script gets a suggested split."
    ),
]
SESSION_MAX = 200  # characters: a name for a folder and a gallery heading, not a text (list_tasks' filter too)
Session = Annotated[
    str | None,
    FREE_TEXT,
    BLANK_MEANS_UNSET,
    Field(
        max_length=SESSION_MAX,
        description="A short name for this piece of work; results are saved in outputs/{date}-{session}/, dated by "
        "the session's first day: later results go on in the folder it has. A folder's name (2026-04-20-ugc-batch, "
        "outputs/2026-04-20-ugc-batch) is that folder.",
    ),
]
MaxCredits = Annotated[
    float | None,
    Field(
        gt=0,
        allow_inf_nan=False,
        description="A refusal threshold, in credits: a price over it (or, for a price not known before the task "
        "runs, the least or the most it can cost) is refused before anything is sent. It does not limit what KIE "
        "charges, nor lower what an unknown price counts against the caps.",
    ),
    Strict(),
    NUMBER,
]
QuoteId = Annotated[
    str | None,
    BLANK_MEANS_UNSET,
    Field(description="The quote_id of a cost the user approved (from estimate_cost or a prior call)."),
]
BindQuoteId = Annotated[
    str | None,
    BLANK_MEANS_UNSET,
    Field(
        description="Sent by kie-mcp's approval card: binds the call to the request that quote priced (anything "
        "changed since, such as an input file, is refused, free). It never approves a spend; quote_id does."
    ),
]
# generate_image's model when none is named; when KIE withdrew it, the first live model its refusal names stands in
DEFAULT_IMAGE_MODEL = "nano-banana-2"
DEFAULT_VIDEO_MODEL = "veo3_fast"  # generate_video's
_DEFAULTS = ((DEFAULT_IMAGE_MODEL, "image"), (DEFAULT_VIDEO_MODEL, "video"))


def _default_now(rt: Runtime, name: str, kind: str) -> str:
    """The model a generate tool named ``kind`` uses when its call names none: its default, or what stands in for it
    once KIE withdrew it (``generation.resolve_model``), as estimate_cost tells an agent to pass it."""
    try:
        return gen.resolve_model(rt, name, kind, default=True, notes=[]).id
    except (LookupError, InvalidRequest):  # withdrawn with nothing to stand in: named as it is, refused when used
        return name


NOT_PRICED = "Taken so that a generate call's arguments can be priced unchanged; it does not change the price."
# check_task of a finished task another server on the workspace follows: that server saves its results, never this one
SAVED_ELSEWHERE = (
    "Its results are being saved by another kie-mcp on this workspace (another client's server, which follows this "
    "task); check_task shows the files once they are saved."
)
NotPriced = Annotated[str | None, BLANK_MEANS_UNSET, Field(description=NOT_PRICED)]
VideoWait = Annotated[
    float,
    Field(
        ge=0, le=50, allow_inf_nan=False, description="How long to wait from the call's arrival (videos take minutes)."
    ),
    Strict(),
    NUMBER,
]
FollowupOperationName = Literal["extend", "hd", "4k", "upscale"]


def _operation(value: Any) -> Any:
    """An operation written in another case or with spaces around it ("4K", " extend"): the listed one it names;
    anything else as sent, for the check to refuse by name."""
    if isinstance(value, str) and (folded := value.strip().casefold()) in get_args(FollowupOperationName):
        return folded
    return value


OPERATION = BeforeValidator(_operation)
FollowupOperation = Annotated[
    FollowupOperationName,
    OPERATION,
    Field(
        description="extend: continue the scene from the last frame (Veo 3.1, Runway, Grok Imagine, PixVerse V6); hd: "
        "the 1080p version (Veo 3.1, Grok Imagine); 4k: the 4K version (Veo 3.1); upscale: an upscaled copy of any "
        "video (Topaz)."
    ),
]
FollowupScript = Annotated[
    str | None,
    FREE_TEXT,
    Field(
        description="extend only: the exact words spoken in the extension (the next line, not those already said). "
        "Put into the prompt as dialogue, as generate_video's script, and fitted to what the extension adds (Veo "
        "about 7 s, Grok 6 or 10 s, PixVerse 1-15 s); too long a line gets a warning or a suggested split."
    ),
]
FollowupTaskId = Annotated[
    str | None,
    BLANK_MEANS_UNSET,
    Field(max_length=200, description="With operation: price a follow-up of this finished video (continue_video)."),
]


class _Result(BaseModel):
    """Tool results refuse unknown fields, so a misspelt field fails loudly instead of vanishing. Built on first
    use (``defer_build``), as every model of kie-mcp is: a start then pays only for what it uses."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class DeclineResult(_Result):
    quote_id: str
    declined: bool = Field(
        description="True when the quote approves nothing now, by the user's no (declined now or before), and "
        "nothing of its request was sent since it was issued; false when the request may have run: a create of it "
        "was sent, approved by this quote or otherwise (another quote, a confirmation form, auto-approval). Its no is "
        "kept then: no call of the request sends a further create, and no quote of it approves it again (the message "
        "says so)."
    )
    message: str


class SavedFile(_Result):
    """A file this server saved, named every way a person or client can open it."""

    task_id: str | None = Field(description="The task it is a result of; null for a joined video.")
    path: str = Field(description="Relative to the workspace.")
    absolute_path: str = Field(description="Where it is on this computer.")
    file_uri: str = Field(description="The same as a file:// URI, to open in a browser or file manager.")
    resource_uri: str = Field(description="The kie://outputs/... resource serving it over MCP.")
    mime_type: str | None = None
    duration_seconds: float | None = Field(
        default=None, description="A video's length as saved (caption times and joins add these up); null otherwise."
    )
    damaged: str | None = Field(
        default=None,
        description="A result that is not whole (an image that does not decode, a video or sound file cut short; "
        "seen as it was saved or its preview made): why. Null otherwise.",
    )
    holds_key: bool = Field(
        default=False,
        description="True when its bytes held the KIE API key as it was saved (KIE wrote it into the file): kept, "
        "never served by kie://outputs; do not share it as it is.",
    )
    changed: bool = Field(
        default=False,
        description="True when the file is no longer the one saved (another size than kie-mcp recorded): it is not "
        "used as its task's result by continue_video or stitch_videos.",
    )
    missing: bool = Field(
        default=False,
        description="True when the saved file is not at its path any more: deleted or moved since it was saved, or "
        "something that is not a file (a folder, a FIFO) put in its place. check_task saves it again while KIE still "
        "keeps the result, once no folder is at that path.",
    )


SavedFiles = Annotated[
    list[SavedFile], Field(description="Every saved file of this result, with its absolute path and file:// URI.")
]


class CreditsResult(_Result):
    balance_credits: float | None = Field(description="KIE's balance now; null when it could not be read.")
    balance_usd: float | None
    balance_problem: str | None = Field(
        default=None,
        description="Why the balance could not be read (no key, the key refused, KIE out of reach) and what to do; "
        "the rest of the answer is this workspace's own record.",
    )
    spent_today: float = Field(description="Credits spent today through this workspace (every kie-mcp server on it).")
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
    workspace: str = Field(description="The folder (absolute) holding this server's journal, outputs/ and logs/.")
    workspace_reason: str = Field(description="Why that workspace: how it was chosen (in the sandbox, the real one).")
    message: str


class ModelInfo(_Result):
    id: str
    title: str
    family: str
    kind: str
    capabilities: list[str]
    price: str
    typical: list[TypicalPrice] = Field(
        default_factory=list,
        description="One image (and a default request's images, when it makes several), or a 5 s and an 8 s clip, "
        "at the default settings; empty when the price is unknown.",
    )
    good_for: str
    recent_success_rate: float | None = Field(
        default=None, description="Set when KIE reports under 90% successful tasks for it in the last 24 hours."
    )


def _typical_text(model: "ModelInfo") -> str:
    """'; 5 s 70 cr ($0.35), 8 s 112 cr ($0.56) at resolution=720p': what people compare, in the model's list line,
    as the model table's cell says it: what the caps count first when that is more ('8 s up to 60 cr ($0.30; KIE
    lists 30)'), never a list price alone that the caps and auto-approval count double."""
    return f"; {typical_text(model.typical)}" if model.typical else ""


def _health_text(model: "ModelInfo") -> str:
    rate = model.recent_success_rate
    return "" if rate is None else f" WARNING: only {rate:.0%} of its tasks succeeded on KIE in the last 24 hours."


class ModelList(_Result):
    models: list[ModelInfo]
    message: str


class CaptionArg(BaseModel):
    # Only start, end and text: a style, font or position is refused, never silently dropped (no styling exists).
    model_config = ConfigDict(extra="forbid", defer_build=True)
    # At most a day (stitch.MAX_CAPTION_SECONDS): larger times are mistakes, and 1e308 overflows the SRT clock.
    start: Annotated[float, Strict(), NUMBER] = Field(
        ge=0, le=86400, allow_inf_nan=False, description="Seconds from the start of the joined video (at most 86400)."
    )
    end: Annotated[float, Strict(), NUMBER] = Field(
        gt=0, le=86400, allow_inf_nan=False, description="Seconds from the start; after start (at most 86400)."
    )
    text: str = Field(min_length=1)


class StitchedVideo(_Result):
    status: Literal["joined", "joining"] = Field(
        "joined",
        description="joined: the video is saved at path. joining: it is still being made, in the background, and "
        "will be saved at path; call stitch_videos again with the same arguments to get it (it is not joined twice).",
    )
    path: str = Field(description="The joined video, relative to the workspace (while joining: where it will be).")
    duration: float | None
    reencoded: bool | None = Field(description="Whether the clips were re-encoded; null while joining.")
    saved_files: SavedFiles = Field(default_factory=list)
    message: str


class TaskList(_Result):
    tasks: list[TaskRecord]
    total: int = Field(
        description="How many tasks match the filters (with cursor: from there on, this page and older); more than "
        "listed when limit cut the list."
    )
    next_cursor: str | None = Field(
        None,
        description="Set when older tasks match than this page shows: pass it as cursor, with the same state, model, "
        "since, text and session, to list them. No task is skipped or repeated from page to page.",
    )
    unknown_creates: int = Field(description="Creates whose outcome is unknown (may have been charged).")
    unknown_create_list: list[UnknownCreate] = Field(
        default_factory=list,
        description="The latest (at most 20) of those creates, newest first: each may have made a task, charged, "
        "that only https://kie.ai/logs shows.",
    )
    saved_files: SavedFiles = Field(default_factory=list)
    gallery: str | None = Field(None, description="The gallery page of saved results (absolute path), once one exists.")
    gallery_uri: str | None = Field(None, description="The gallery page as a file:// URI, to open in a browser.")
    message: str


class TaskResult(_Result):
    task: TaskRecord
    saving: bool = Field(
        default=False,
        description="True when the task succeeded and its results are being saved, or queued to be behind other "
        "tasks' downloads (the message says which; files not listed yet): check_task again shows them once saved.",
    )
    saved_files: SavedFiles = Field(default_factory=list)
    message: str


class GenerationOutput(gen.GenerationResult):
    """What the generate tools return: the generation's result, and its saved files by absolute path."""

    saved_files: SavedFiles = Field(default_factory=list)


class UploadResult(_Result):
    url: str
    file_name: str
    size: int | None = None
    mime_type: str | None = None
    message: str


def register(mcp: "_Server", settings: Settings) -> None:
    """Add every tool (in the order of ``server.TOOL_NAMES``) and, for their first need, the resources and
    prompts (which read the workspace's references/ and the prompt library)."""
    _register_tools(mcp)
    mcp.defer(functools.partial(_register_resources, mcp, settings))
    mcp.defer(functools.partial(_register_prompts, mcp))


# -- tools --------------------------------------------------------------------------------------


_HIDDEN_PARAMETERS = {"ctx", "arrived", "plan", "approval", "roots"}
_ACCEPTED: dict[str, list[str]] = {}  # tool name -> the arguments it takes, filled at registration


def _accepts(tool_fn: Any) -> Any:
    """Remember which arguments ``tool_fn`` takes, so unknown ones can be refused instead of ignored."""
    _ACCEPTED[tool_fn.__name__] = [p for p in inspect.signature(tool_fn).parameters if p not in _HIDDEN_PARAMETERS]
    return tool_fn


def _reject_unknown_arguments(ctx: Context, tool: str) -> None:
    """The SDK drops arguments a tool does not declare; an agent would think they were used. Refuse them."""
    _refuse_unknown(ctx.request_context, tool)


def _refuse_unknown(request: Any, tool: str) -> None:
    """``_reject_unknown_arguments`` given the call's request context, already read."""
    given = (request.params or {}).get("arguments") or {}
    unknown = sorted(set(given) - set(_ACCEPTED.get(tool, given)))
    if unknown:
        video_only = tool == "generate_image" and set(unknown) & _VIDEO_ONLY
        hint = " Scripts, durations and audio belong to generate_video." if video_only else ""
        named = ", ".join(plain(name, quoted=False, limit=40) for name in unknown[:10])
        takes = ", ".join(_ACCEPTED[tool]) or "no arguments"
        raise ToolError(f"{tool} does not take {named}; nothing was sent.{hint} It takes: {takes}.")


_VIDEO_ONLY = {"script", "duration", "audio"}  # generate_video's own arguments: the hint to an image call


def _register_tools(mcp: MCPServer) -> None:
    for fn, options in _tool_definitions():
        mcp.tool(**options)(fn)


class _ToolRecorder:
    """Stands in for the server while the tools are defined (``_define_tools``): records each with its options."""

    def __init__(self) -> None:
        self.tools: list[tuple[Any, dict[str, Any]]] = []

    def tool(self, **options: Any) -> Callable[[Any], Any]:
        def record(fn: Any) -> Any:
            self.tools.append((fn, options))
            return fn

        return record


@functools.cache
def _tool_definitions() -> tuple[tuple[Any, dict[str, Any]], ...]:
    """kie-mcp's tools with their options, defined once per process. They hold no state of a server's (each call
    finds its runtime through its context), so every server registers the same functions, and a process that starts
    many servers (the tests, code embedding kie-mcp) builds each tool once (``server._build``)."""
    recorder = _ToolRecorder()
    _define_tools(recorder)
    return tuple(recorder.tools)


def _define_tools(mcp: _ToolRecorder) -> None:
    image_prepare, image_approve = _gate("image")
    video_prepare, video_approve = _gate("video")

    @mcp.tool(title="Estimate cost", annotations=READ_LOCAL, meta=ui_meta())
    @_accepts
    async def estimate_cost(
        ctx: Context,
        model: Annotated[
            str | None,
            BLANK_MEANS_UNSET,
            Field(description="KIE model id or friendly name, e.g. veo3_fast, 'nano banana' (a follow-up: optional)."),
        ] = None,
        prompt: Prompt = "",
        task_id: FollowupTaskId = None,
        operation: Annotated[
            FollowupOperationName | None,
            OPERATION,
            BLANK_MEANS_UNSET,
            Field(description='With task_id: the follow-up to price (continue_video); left out, null or "" otherwise.'),
        ] = None,
        images: Images = [],  # noqa: B006 - pydantic copies defaults
        aspect_ratio: AspectRatio = None,
        resolution: Resolution = None,
        duration: Duration = None,
        audio: Audio = None,
        options: Options = None,
        variations: Variations = 1,
        script: Script = None,
        max_credits: MaxCredits = None,
        session: Annotated[str | None, Field(max_length=SESSION_MAX, description=NOT_PRICED)] = None,
        quote_id: NotPriced = None,
        bind_quote_id: NotPriced = None,
        wait_seconds: Annotated[
            float | None, Field(ge=0, le=50, allow_inf_nan=False, description=NOT_PRICED), Strict(), NUMBER
        ] = None,
        roots: InputRoots = None,
    ) -> Annotated[CallToolResult, EstimateResult]:
        """Price a generation exactly, without spending anything. Takes the same arguments as generate_image /
        generate_video, model required (or task_id and operation: a follow-up, as continue_video takes them), and
        returns a quote (credits, about USD, price source and date) with a quote_id that approves exactly this
        request once, for 10 minutes. Free."""
        request = ctx.request_context  # read once (``_runtime``)
        _refuse_unknown(request, "estimate_cost")
        rt = _runtime(ctx, request)
        unpriced = ("session", "quote_id", "bind_quote_id", "wait_seconds", "request")
        given = {k: v for k, v in locals().items() if k not in unpriced}
        shared = root_folders(roots)  # the folders the client shared: priced as the generate call reads them
        with _user_errors():
            # A quote of what could not be saved: refused before it is priced. One check for the plan too (a link
            # to every file), a recent one standing: the spend that would follow this quote checks again.
            outputs = saved.outputs_of(rt.settings.workspace)
            await saved.checked(outputs, gen.NOTHING_SENT, saving=rt.settings.download, lately=True)
            if task_id is not None or operation is not None:  # a follow-up of a finished video (continue_video)
                args = _followup_args(given, "estimate_cost")
                await rt.journal.writable()  # it may record the task it continues: as every tool that writes
                plan = await followups.plan(rt, args, shared, outputs_checked=True)
                tool = "continue_video"
            else:
                if not model:
                    image, video = (_default_now(rt, name, kind) for name, kind in _DEFAULTS)
                    raise ToolError(
                        f"estimate_cost needs model: the generate tools' defaults are model='{image}' "
                        f"(generate_image) and model='{video}' (generate_video); pass the one the "
                        "generate call will use (or task_id and operation, to price a follow-up of a finished video "
                        "with continue_video). Nothing was priced."
                    )
                plan = await gen.plan(rt, gen.GenerationArgs(**_args(given)), shared=shared, outputs_checked=True)
                tool = f"generate_{plan.spec.kind}"
            result = await estimates.estimate(rt, plan, can_ask=_can_elicit(ctx))
        call = _tool_result(result, result.message, rt)
        if client_supports_apps(request):  # MCP Apps hosts: the quote as an approval card
            if isinstance(plan, followups.FollowupPlan) and plan.existing is not None:  # made: nothing to approve
                call.meta = made_card_meta(plan, plan.existing, result.message)
            elif result.quote is not None:
                call.meta = await _card_meta(ctx, plan, result.quote, tool, result.cap_problem)
        return call

    async def generate_image(
        ctx: Context,
        arrived: Arrived,
        plan: Annotated[gen.Plan, Resolve(image_prepare)],
        approval: Annotated[ElicitationResult[ConfirmSpend], Resolve(image_approve)],
        prompt: Prompt = "",
        model: Annotated[
            str, BLANK_MEANS_UNSET, Field(description="Image model id or name; see list_models.")
        ] = DEFAULT_IMAGE_MODEL,
        images: Images = [],  # noqa: B006
        aspect_ratio: AspectRatio = None,
        resolution: Resolution = None,
        options: Options = None,
        variations: Variations = 1,
        session: Session = None,
        quote_id: QuoteId = None,
        bind_quote_id: BindQuoteId = None,
        max_credits: MaxCredits = None,
        wait_seconds: Annotated[
            float,
            Field(
                ge=0, le=50, allow_inf_nan=False, description="How long to wait for results, from the call's arrival."
            ),
            Strict(),
            NUMBER,
        ] = 45,
    ) -> Annotated[CallToolResult, GenerationOutput]:
        """Make images with a KIE model. COSTS CREDITS. The cost must be approved first: the server asks the user
        through a confirmation form when the client supports it; otherwise it answers
        status=confirmation_required with a quote, and after the user approves that cost the call is repeated
        with quote_id. Answers within about wait_seconds (default 45) of the call, the confirmation included, waiting
        for the results with progress."""
        return await _generate(ctx, plan, approval, "generate_image", gen.Wait(wait_seconds, arrived))

    async def generate_video(
        ctx: Context,
        arrived: Arrived,
        plan: Annotated[gen.Plan, Resolve(video_prepare)],
        approval: Annotated[ElicitationResult[ConfirmSpend], Resolve(video_approve)],
        prompt: Prompt = "",
        model: Annotated[
            str, BLANK_MEANS_UNSET, Field(description="Video model id or name; see list_models.")
        ] = DEFAULT_VIDEO_MODEL,
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
        bind_quote_id: BindQuoteId = None,
        max_credits: MaxCredits = None,
        wait_seconds: VideoWait = 0,
    ) -> Annotated[CallToolResult, GenerationOutput]:
        """Make videos with a KIE model. COSTS CREDITS (tens to hundreds per clip). The cost must be approved
        first: the server asks the user through a confirmation form when the client supports it; otherwise it
        answers status=confirmation_required with a quote, and after the user approves that cost the call is
        repeated with quote_id. Returns task ids at once with an estimated time; follow them with check_task."""
        return await _generate(ctx, plan, approval, "generate_video", gen.Wait(wait_seconds, arrived))

    for tool_fn, prepare in ((generate_image, image_prepare), (generate_video, video_prepare)):
        _bind_to_tool_arguments(prepare, tool_fn)
        _accepts(tool_fn)
    mcp.tool(title="Generate image (spends credits)", annotations=SPENDS, meta=ui_meta())(generate_image)
    mcp.tool(title="Generate video (spends credits)", annotations=SPENDS, meta=ui_meta())(generate_video)

    @mcp.tool(title="Check task", annotations=READ_KIE, meta=ui_meta())
    @_accepts
    async def check_task(
        task_id: Annotated[
            str, Field(min_length=1, max_length=200, description="A KIE task id from any kie-mcp or KIE call.")
        ],
        ctx: Context,
        wait_seconds: Annotated[
            float,
            Field(ge=0, le=50, allow_inf_nan=False, description="Wait up to this long for it to finish."),
            Strict(),
            NUMBER,
        ] = 0,
    ) -> Annotated[CallToolResult, TaskResult]:
        """Status and results of a KIE task of any kind, with progress while waiting. Free."""
        _reject_unknown_arguments(ctx, "check_task")
        rt = _runtime(ctx)
        with _user_errors():
            rt.require_kie()
            rt.follower.attach_client(ctx)  # from now on task updates reach this client (tasks/follower.py)
            task_id = _usable_task_id(task_id)  # before anything is read or asked: an id holding a key never leaves
            record = rt.follower.known(task_id) or rt.tasks.get(task_id)
            looked = record is None
            found = None  # what became of a create of unknown outcome that may have made it
            if record is None:  # a task the journal does not know: KIE is asked once, then the follower has it
                record, found = await _find_record(rt, task_id)
            # The follower polls (once for every waiter); this call waits on it, with progress.
            reporter = gen.ProgressReporter(_progress(ctx), 1)
            try:
                checked = await rt.follower.check(record, wait_seconds, reporter, looked=looked)
                record, problems = checked.record, checked.problems
                saving = checked.saving
                if not checked.held:  # it had ended before this call: fold in its charge once, save what is missing
                    # Its charge and its record are written in a worker thread while another program holds the
                    # journal's lock (never waited for on the event loop: pings and other calls go on).
                    problems = await gen.settle_off_loop(rt, [record])
                    # Saved for a while (or a save in flight waited for), then handed to the follower (finally below).
                    saved, saving = await rt.follower.save_now(record, wait_seconds)
                    problems += saved
                    try:
                        await rt.journal.off_loop_when_locked(functools.partial(rt.tasks.add, record))
                    except JOURNAL_ERRORS as err:  # a full disk: the answer is what was learnt all the same
                        problems.append(answer_not_recorded(record.task_id, err))
                if saving and checked.elsewhere:  # the server that follows the task saves it, never this one
                    problems.append(SAVED_ELSEWHERE)
                elif saving and checked.queued is not None:  # waiting for other tasks' downloads: not "in a moment"
                    words = saving_words(checked.queued)
                    problems.append(f"{words[0].upper()}{words[1:]}; check_task shows the files once they are saved.")
                elif saving:
                    problems.append("Its results are being saved now; check_task shows the files in a moment.")
            finally:  # no await: runs even when the call is cancelled mid-download (a client timeout, a cancel)
                rt.follower.save_later(record)  # what this call did not save, the follower saves in the background
            if record.error and record.state in ("queued", "running") and not record.unknown_to_kie:
                problems.insert(0, record.error)  # why it does not move (one KIE does not know: _task_message)
            if found is not None:  # the create of unknown outcome it was taken as the task of, or may be
                problems.insert(0, found)
            rt.tasks.label(record)  # its prompt, session and folder, from the journal
            await rt.follower.deliver_notices(ctx)
        typical = rt.typical_seconds(record.model)
        said = _task_message(record, typical, rt.follower.asking(record))
        result = TaskResult(task=record, saving=saving, message=" ".join([said, *problems]))
        await _thumbnails_ready([record], rt.settings.workspace, rt.settings.preview_px)  # in a worker thread
        call = await _tasks_result(result, result.message, rt, [record])
        if client_supports_apps(ctx):  # MCP Apps hosts: the gallery
            call.meta = gallery_meta(rt, [record])
        return call

    @mcp.tool(title="Stitch videos", annotations=LOCAL_WRITE)
    @_accepts
    async def stitch_videos(
        clips: Annotated[
            list[str],
            Field(
                min_length=1,
                max_length=200,  # stitch.MAX_CLIPS: every clip goes on one ffmpeg command line
                description="In order (at most 200): task ids of saved videos, or video paths (in the workspace, a "
                "folder the client shares as an MCP root, or KIE_ALLOWED_DIRS).",
            ),
        ],
        ctx: Context,
        arrived: Arrived,  # the wait counts from here: before the client's roots are asked
        output_name: Annotated[
            str | None,
            FREE_TEXT,
            Field(
                description="File name for the joined video, always written as .mp4 in plain ASCII (another "
                "video extension is replaced, letters ASCII cannot spell become a short hash, and the answer says "
                "so); an existing file is never replaced."
            ),
        ] = None,
        session: Session = None,
        captions: Annotated[
            list[CaptionArg] | None,
            Field(
                max_length=200,
                description="Timed captions to burn in (seconds from the start; at most 200), at the bottom centre; "
                "in a portrait (9:16) video 18% of the height up, clear of a feed's buttons.",
            ),
        ] = None,
        chain: Annotated[
            bool,
            Field(
                description="True: each task id in clips stands for its whole chain of follow-ups (continue_video), "
                "from the first clip to it: extensions in order, an upgrade in place of the clip it upgrades."
            ),
        ] = False,
        roots: ClipRoots = None,
        wait_seconds: Annotated[
            float,
            Field(
                ge=0,
                le=50,
                allow_inf_nan=False,
                description="How long to wait for the join, from the call's arrival; after that the answer says "
                "where it will be saved, and it goes on in the background.",
            ),
            Strict(),
            NUMBER,
        ] = 45,
    ) -> Annotated[CallToolResult, StitchedVideo]:
        """Join saved clips (at most 200; single video files: MP4, MOV, WebM, MKV, AVI, Ogg) into one video in the
        session folder (without session: the clips' own, when all are saved results of one session; else a folder
        of the day named after output_name), re-encoding when formats differ, optionally with burned-in captions.
        With chain=true a task id brings its whole chain of extensions, in order (a chain that is one video
        already, such as a Veo extension, is answered with that video, nothing joined). An existing file is never
        replaced: the join then gets the next free name (name-2.mp4). Dotfiles, .env, .kie-mcp/ and logs/ are never
        read. Local and free: needs ffmpeg (kie-mcp's video extra, or ffmpeg on PATH). Answers within about
        wait_seconds (default 45) with progress; a longer join goes on in the background and the answer says
        status=joining with the path it will be saved at: call again with the same arguments to get it."""
        _reject_unknown_arguments(ctx, "stitch_videos")
        from kie_mcp import joining  # the join, the gallery and ffmpeg's plumbing load on first use
        from kie_mcp.media.stitch import StitchError

        rt = _runtime(ctx)

        async def progress(seconds: float, message: str) -> None:
            await ctx.report_progress(seconds, None, message)

        with _user_errors(StitchError):
            joined = await joining.join(
                rt,
                clips,
                output_name=output_name,
                session=session,
                captions=[(c.start, c.end, c.text) for c in captions or []],
                chain=chain,
                roots=root_folders(roots),
                wait=gen.Wait(wait_seconds, arrived),
                progress=progress,
            )
        await rt.follower.deliver_notices(ctx)  # joins (and tasks) that ended while nobody waited
        result = StitchedVideo(
            status=joined.status,
            path=joined.path,
            duration=joined.duration,
            reencoded=joined.reencoded,
            message=joined.message,
        )
        file = joined.saved
        shown = [_saved_file(rt.settings.workspace, joined.path, file.task_id, file.mime, file.seconds)] if file else []
        return _tool_result(result, result.message, rt, saved=shown)

    @mcp.tool(title="List tasks", annotations=READ_LOCAL, meta=ui_meta())
    @_accepts
    async def list_tasks(
        ctx: Context,
        state: Annotated[
            Literal["queued", "running", "succeeded", "succeeded_without_results", "failed", "unknown"] | None,
            Field(description="Only this state."),
        ] = None,
        model: Annotated[
            str | None,
            Field(description="Only this model: its id or a friendly name, as the generate tools take it."),
        ] = None,
        since: Annotated[
            str | None, Field(description="Only tasks created on or after this date (YYYY-MM-DD).")
        ] = None,
        text: Annotated[str | None, FREE_TEXT, Field(description="Words to find in the prompt.")] = None,
        session: Annotated[
            str | None,
            FREE_TEXT,
            Field(
                max_length=SESSION_MAX,
                description="Words to find in the session's name (the generate calls' session); a session folder's "
                "name (outputs/2026-04-20-ugc-batch) also finds the tasks saved in it.",
            ),
        ] = None,
        limit: Annotated[
            int,
            Field(
                ge=1,
                le=LIST_LIMIT,
                description=f"How many tasks to list ({LIST_DEFAULT} by default, at most {LIST_LIMIT}); next_cursor "
                "lists the rest.",
            ),
            Strict(),
            WHOLE,
        ] = LIST_DEFAULT,
        cursor: Annotated[
            str | None,
            Field(
                max_length=1000,
                description="The next_cursor of a listing, to list the tasks older than it showed (with the same "
                "state, model, since, text and session).",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, TaskList]:
        """Every task this workspace created, newest first, from the journal (survives restarts); past limit,
        next_cursor lists the older ones. Free."""
        _reject_unknown_arguments(ctx, "list_tasks")
        from kie_mcp.media import gallery as pages  # loaded on first use

        rt = _runtime(ctx)
        with _user_errors(ModelFilterError, BadCursor, BadDay):
            day = parse_day(since)
            model_id = rt.tasks.model_filter(model, rt.catalog) if model and model.strip() else None
            filters: dict[str, Any] = {"state": state, "model": model_id, "since": day, "text": text}
            if session and session.strip():  # only when given: a cursor of a listing without it stays valid
                filters["session"] = session.strip()
            listing = await list_page(rt.tasks, rt.journal, filters, limit=limit, cursor=cursor)
        found, message = listing.records, listing.message
        message += "".join(f"\n{notice}" for notice in rt.notices)
        # What was deleted since leaves the pages, where that is cheap (never a first build of a large workspace)
        await pages.refresh_if_kept(rt.settings.workspace, rt.settings.preview_px)
        page = pages.gallery_path(rt.settings.workspace)  # kie-mcp's own page, never one of the user's
        shown = (str(page.absolute()), page.absolute().as_uri()) if page is not None else (None, None)
        if page is not None:
            message += f"\nGallery of saved results: {shown[0]} ({shown[1]})"
            if page.name != pages.PAGE:
                message += (
                    f" (outputs/{pages.PAGE} there is a page of your own, left as it is: kie-mcp's gallery is "
                    f"{page.name} beside it)"
                )
        result = TaskList(
            tasks=found,
            total=listing.total,
            next_cursor=listing.next_cursor,
            unknown_creates=listing.unknown_total,
            unknown_create_list=listing.unknown,
            gallery=shown[0],
            gallery_uri=shown[1],
            message=message,
        )
        call = await _tasks_result(result, message, rt, found, previews=False, uri_only=True)
        if client_supports_apps(ctx):  # MCP Apps hosts: the gallery
            call.meta = gallery_meta(rt, found)
        return call

    @mcp.tool(title="Check credits", annotations=READ_KIE)
    @_accepts
    async def check_credits(ctx: Context) -> Annotated[CallToolResult, CreditsResult]:
        """The KIE balance (credits and about USD), credits spent today through this workspace (every kie-mcp
        server on it), and the caps. Free."""
        _reject_unknown_arguments(ctx, "check_credits")
        rt = _runtime(ctx)
        with _user_errors():
            found = await account(rt)
        s = rt.settings
        result = CreditsResult(
            balance_credits=found.balance,
            balance_usd=usd(found.balance) if found.balance is not None else None,
            balance_problem=found.balance_problem,
            spent_today=found.spent_today,
            spent_total=found.spent_total,
            spending_refused=found.spending_refused,
            unknown_creates=found.unknown_creates,
            max_credits_per_call=s.max_credits_per_call,
            max_credits_per_day=s.max_credits_per_day,
            auto_approve_credits=s.auto_approve_credits,
            sandbox=s.sandbox,
            workspace=path_text(s.workspace.absolute()),
            workspace_reason=readable_text(s.workspace_reason),
            message=found.message,
        )
        answer = _tool_result(result, found.message, rt)
        answer.is_error = found.balance is None  # what was asked for is missing: a client must not take it for one
        return answer

    @mcp.tool(title="List models", annotations=READ_LOCAL)
    @_accepts
    async def list_models(
        ctx: Context,
        kind: Annotated[Literal["image", "video"] | None, Field(description="Only image or video models.")] = None,
        capability: Annotated[
            str | None,
            Field(description=f"One of: {CAPABILITIES} (case, '-', '_' and spaces ignored)."),
        ] = None,
        query: Annotated[
            str | None,
            FREE_TEXT,
            Field(description="Words to match in id, name or description; all must match (a number as a whole word)."),
        ] = None,
    ) -> Annotated[CallToolResult, ModelList]:
        """The KIE models kie-mcp can validate and price, with what each is good at and its price. Free. The full
        list is large (150+ models, some 30 KB): filter it with kind, capability or query."""
        _reject_unknown_arguments(ctx, "list_models")
        rt = _runtime(ctx)
        from kie_mcp.catalog.live import live_price_input  # the live catalogue loads with the first request

        live_pricer = functools.partial(live_price_input, rt.live)  # what estimate_cost quotes, also here
        models = [
            ModelInfo(
                **spec.summary(),
                price=price_summary(spec, rt.live),
                typical=typical_prices(spec, live_pricer),
                recent_success_rate=rate,
            )
            for spec, rate in gen.offered_models(rt, kind=kind, capability=capability, query=query)
        ]
        lines = [f"- {m.id} ({m.kind}, {m.price}{_typical_text(m)}): {m.good_for}{_health_text(m)}" for m in models]
        if models:
            # The structured answer's message is a summary, not a second copy of the listing its models hold.
            message = f"{len(models)} model(s); each one's price, typical output price and use are in models."
            up_to = any(t.counted is not None for m in models for t in m.typical)
            text = f"{len(models)} model(s):\n" + "\n".join(lines) + (f"\n{UP_TO_MEANS}" if up_to else "")
        else:  # a next step, not a dead end: the capabilities there are, and the query's words no model has
            message = text = gen.no_model_matches(rt, kind=kind, capability=capability, query=query)
        return _tool_result(ModelList(models=models, message=message), text, rt)

    @mcp.tool(title="Upload file", annotations=UPLOADS)
    @_accepts
    async def upload_file(
        path: Annotated[
            str,
            Field(
                description="A local file: absolute, relative to the workspace, ~/..., file://, or a "
                "kie://outputs/... or kie://workspace/... resource link."
            ),
        ],
        ctx: Context,
        roots: PathRoots,
    ) -> Annotated[CallToolResult, UploadResult]:
        """Upload a local image, video or audio file to KIE's file host and return its URL for use as a model
        input. The file is sent exactly as it is: a small image is not upscaled (generate_image and generate_video
        upscale a small reference themselves, but not an upscaler's input or a mask, and this link may be either).
        The file's content decides its type; an image that does not decode, dotfiles, .env, .kie-mcp/ and logs/
        are never uploaded. Free; KIE deletes uploads after 24 hours (or sooner: use the URL within the day)."""
        _reject_unknown_arguments(ctx, "upload_file")
        rt = _runtime(ctx)
        with _user_errors():
            allowed = (*rt.settings.input_roots, *root_folders(roots))
            try:
                file, media = await anyio.to_thread.run_sync(
                    inspect_local,
                    path,
                    rt.settings.input_bases,
                    allowed,
                    UPLOAD_ACCEPTS,
                    rt.settings.started_in,
                    rt.saved_here,
                )
            except RefusedInput as err:
                raise ToolError(f"upload_file refused path: {err}") from None
            # What is sent is the bytes read and checked once (never the file opened again by name). Named by
            # content: KIE overwrites a file uploaded again under the same name, so a plain name would swap what an
            # earlier URL (and any task given it) shows.
            try:
                local, content = await anyio.to_thread.run_sync(snapshot, file, media, UPLOAD_LIMIT_BYTES)
            except RefusedInput as err:
                raise ToolError(f"upload_file refused path: {err}") from None
            except OSError as err:  # locked by another program, no permission: nothing was sent
                raise ToolError(
                    f"upload_file could not read {file.name} ({err.strerror or type(err).__name__}); nothing was "
                    "uploaded. Check that it is readable and not open exclusively in another program."
                ) from None
            sent = as_sent(local, content, prepare=False)  # its own bytes; an MP4 of sound only goes up as M4A
            uploaded = await rt.require_kie().upload_file(
                sent.content, sent.name, upload_path="kie-mcp/uploads", mime=sent.media.mime
            )
            with contextlib.suppress(*JOURNAL_ERRORS):  # unremembered, its link is priced as any other's
                remember_own_upload(rt.journal, uploaded.url, uploaded.kept_seconds)
        message = f"Uploaded {uploaded.file_name}: {uploaded.url} ({kept_for(uploaded.kept_seconds)})."
        result = UploadResult(**uploaded.model_dump(exclude={"kept_seconds"}), message=message)
        return _tool_result(result, message, rt)

    # -- continue_video (issue 13): follow-ups of a finished video, through the same gate as a generation -----------
    followup_prepare, followup_approve = _followup_gate()

    async def continue_video(
        task_id: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                description="The finished video task to continue (from generate_video, check_task or list_tasks).",
            ),
        ],
        operation: FollowupOperation,
        ctx: Context,
        arrived: Arrived,
        plan: Annotated[followups.FollowupPlan, Resolve(followup_prepare)],
        approval: Annotated[ElicitationResult[ConfirmSpend], Resolve(followup_approve)],
        prompt: Annotated[
            str | None,
            FREE_TEXT,
            Field(description="extend: what happens next (left out: a neutral 'continue the scene' line is sent)."),
        ] = None,
        script: FollowupScript = None,
        model: Annotated[
            str | None,
            BLANK_MEANS_UNSET,
            Field(
                description="The model doing it (default: the one for this task, e.g. veo/extend at the clip's own "
                "Veo tier, topaz/video-upscale); for a Veo extension also a tier: fast, quality, lite."
            ),
        ] = None,
        resolution: Annotated[
            str | None,
            BLANK_MEANS_UNSET,
            Field(
                description="Runway extend: 720p/1080p; PixVerse extend: 360p/540p/720p/1080p (default: the clip's); "
                "Topaz: factor 1, 2, 4."
            ),
        ] = None,
        duration: Annotated[
            int | None,
            Field(
                ge=1,
                le=60,
                allow_inf_nan=False,
                description="Seconds to add: Grok extend 6 or 10, PixVerse extend 1-15 (default 5).",
            ),
            Strict(),
            WHOLE,
        ] = None,
        options: Options = None,
        session: Session = None,
        quote_id: QuoteId = None,
        bind_quote_id: BindQuoteId = None,
        max_credits: MaxCredits = None,
        wait_seconds: VideoWait = 0,
    ) -> Annotated[CallToolResult, GenerationOutput]:
        """Continue a finished video: extend it (script: the next line spoken in it), get its 1080p (hd) or 4K
        version, or upscale it. COSTS CREDITS, priced from KIE's price list and approved like generate_video (a
        confirmation form, or status=confirmation_required with a quote; estimate_cost with task_id and operation
        prices it first). A
        1080p or 4K version is made once per clip: asked again, the earlier one comes back free. The new task names
        its source (parent_task_id); stitch_videos with chain=true joins a chain in order. Returns at once; follow
        the task with check_task."""
        wait = gen.Wait(wait_seconds, arrived)
        if plan.existing is not None:  # made once per clip, and already made: returned, nothing asked or spent
            rt = _runtime(ctx)
            rt.follower.attach_client(ctx)
            with _user_errors():
                result = await followups.existing_result(rt, plan, wait=wait, progress=_progress(ctx))
            await _thumbnails_ready(result.tasks, rt.settings.workspace, rt.settings.preview_px)
            output = GenerationOutput(**{name: getattr(result, name) for name in gen.GenerationResult.model_fields})
            call = await _tasks_result(output, result.message, rt, result.tasks)
            if client_supports_apps(ctx):  # MCP Apps hosts: the gallery
                call.meta = gallery_meta(rt, result.tasks)
            return call
        return await _generate(ctx, plan, approval, "continue_video", wait)

    bound_followup = {*followups.FollowupArgs.model_fields, "bind_quote_id"}
    _bind_to_tool_arguments(followup_prepare, continue_video, bound_followup, OptionRoots)
    _accepts(continue_video)
    mcp.tool(title="Continue a video (spends credits)", annotations=SPENDS, meta=ui_meta())(continue_video)

    @mcp.tool(title="Decline a quote (approval card)", annotations=DECLINES, meta=app_only_meta())
    @_accepts
    async def decline_quote(
        ctx: Context,
        quote_id: Annotated[
            str, Field(min_length=1, max_length=100, description="The quote the user declined on the approval card.")
        ],
    ) -> Annotated[CallToolResult, DeclineResult]:
        """The approval card's Decline (only kie-mcp's app calls it): the quote, and every other unused quote of the
        same request, approves nothing from now on. Free; it never approves or spends anything."""
        request = ctx.request_context
        _refuse_unknown(request, "decline_quote")
        if not client_supports_apps(request):
            raise ToolError(
                "decline_quote is the Decline button of kie-mcp's approval card, which this client does not show; "
                "nothing was declined. A quote the user turned down in the chat approves nothing unless it is passed "
                "to a generate call: do not pass it."
            )
        if not QUOTE_ID.fullmatch(quote_id):
            raise ToolError(
                f"{plain(quote_id, limit=40)} is not a quote id (q_ and 16 hex digits); nothing was declined."
            )
        rt = _runtime(ctx, request)
        with _user_errors():  # QuoteError: an id never issued here, a question's, in words
            declined, message = rt.quotes.decline(quote_id)
        return _tool_result(DeclineResult(quote_id=quote_id, declined=declined, message=message), message, rt)


# The client's MCP roots, asked for only when these arguments may name a local file (clientroots.py).
InputRoots = roots_resolver("images", "options")
PathRoots = roots_resolver("path")
ClipRoots = roots_resolver("clips", paths=frozenset())  # a clip that looks like a path, not a task id
OptionRoots = roots_resolver("options")


async def _arrival() -> float:
    """The moment a spending call arrived (``time.monotonic()``), its wait's start (``gen.Wait``): the first of its
    resolved parameters (``Arrived``, named before ``plan``), so it is taken before the request is priced, the
    confirmation form is asked or the input files go up. In the 2026-07-28 era each request of the call (the retried
    one that carries the person's yes) arrives anew, as a host's timeout counts each."""
    return time.monotonic()


Arrived = Annotated[float, Resolve(_arrival)]


def _gate(kind: str) -> tuple[Any, Any]:
    """The two resolvers of a generate tool: prepare (validate, price, caps, balance), then approve."""

    async def prepare(ctx: Context, **arguments: Any) -> gen.Plan:
        _reject_unknown_arguments(ctx, f"generate_{kind}")
        rt = _runtime(ctx)
        shared = root_folders(arguments.pop("roots", None))
        named = ((ctx.request_context.params or {}).get("arguments") or {}).get("model")
        by_default = not isinstance(named, str) or is_blank(named)  # the tool's default model: another may stand in
        with _user_errors():
            args = gen.GenerationArgs(**_args(arguments), model_by_default=by_default)
            plan = await gen.plan(rt, args, kind, shared)
            return await gen.check_spend(rt, plan)

    async def approve(
        ctx: Context, plan: Annotated[gen.Plan, Resolve(prepare)]
    ) -> Approved | NeedsConfirmation | Replay | Declined | Elicit[ConfirmSpend]:
        return await _decide(ctx, plan, kind)

    prepare.__qualname__ = f"prepare_{kind}"
    approve.__qualname__ = f"approve_{kind}"
    return prepare, approve


def _followup_gate() -> tuple[Any, Any]:
    """continue_video's two resolvers, as ``_gate`` builds a generate tool's: prepare (find and check the source,
    validate, price, caps, balance), then approve (the same decision and question as every spend)."""

    async def prepare(ctx: Context, **arguments: Any) -> followups.FollowupPlan:
        _reject_unknown_arguments(ctx, "continue_video")
        rt = _runtime(ctx)
        shared = root_folders(arguments.pop("roots", None))
        bind = arguments.pop("bind_quote_id", None)
        with _user_errors():
            plan = await followups.plan(rt, _followup_args(arguments, "continue_video"), shared)
            if plan.existing is not None:
                return plan  # nothing will be spent: no caps or balance to check
            if bind:
                plan = gen.bound_to(plan, bind)
            return await gen.check_spend(rt, plan)

    async def approve(
        ctx: Context, plan: Annotated[followups.FollowupPlan, Resolve(prepare)]
    ) -> Approved | NeedsConfirmation | Replay | Declined | Elicit[ConfirmSpend]:
        if plan.existing is not None:
            return Declined("Already made; nothing to approve.")  # never asks: continue_video returns it
        return await _decide(ctx, plan, "followup")

    prepare.__qualname__ = "prepare_followup"
    approve.__qualname__ = "approve_followup"
    return prepare, approve


async def _decide(
    ctx: Context, plan: gen.Plan, kind: str
) -> Approved | NeedsConfirmation | Replay | Declined | Elicit[ConfirmSpend]:
    """The gate's decision on ``plan``, shared by every spending tool: approved (quote, auto-approve), refused, or
    a question (the form asked now, or, in the 2026-07-28 era, returned for the client to answer in a retry)."""
    rt = _runtime(ctx)
    with _user_errors():
        decision = await gen.decide_approval(rt, plan, can_ask=_can_elicit(ctx), answered=_answers_us(ctx, kind))
        if _would_spend(rt, plan, decision):
            try:
                await _refuse_unsaveable(rt)
            except BaseException:
                if isinstance(decision, Approved) and decision.claim is not None:  # nothing will be spent
                    rt.spending.release(decision.claim)
                    rt.quotes.let_go(decision.claim.hold)  # for the other servers on the workspace too
                raise
    if not isinstance(decision, Ask):
        return decision
    if ctx.protocol_version is not None and ctx.session.can_send_request:
        asked = await _ask_with_deadline(ctx, decision, rt.settings.confirm_timeout_seconds)
        if isinstance(asked, NeedsConfirmation) and asked.form_refused:
            return await _without_the_form(rt, plan, decision, asked)
        return asked
    if any(_unreadable(answer) for answer in _answers(ctx, kind)):  # the SDK would refuse it as a bare tool error
        return NeedsConfirmation(_unreadable_answer(rt))
    return Elicit(decision.message, ConfirmSpend)  # 2026-07-28: the answer comes back in a retried request


async def _without_the_form(
    rt: Runtime, plan: gen.Plan, ask: Ask, refused: NeedsConfirmation
) -> Approved | NeedsConfirmation | Replay | Declined:
    """A client that declared forms but refused this one (``refused``): while the person's No to the request holds,
    the form that asks them again is all that would approve it on a client that shows forms, so this call is decided
    as on a client without forms (``gen.decide_approval``, never asking): the quote_id it passed (``ask`` was put in
    its place; a quote issued after the No, as every older one of the request was voided by it) approves it, the
    person's yes in the chat or on the card being all this client allows. Otherwise (no quote_id passed), the answer
    says so, with the quote that will. Under KIE_APPROVAL=form nothing changes: only the form approves there."""
    said_no = rt.quotes.declined_lately(plan.digest)
    if said_no is None or rt.settings.approval == "form":
        return refused
    problem = None
    if ask.instead_of_quote:
        with _user_errors():
            decision = await gen.decide_approval(rt, plan, can_ask=False, no_said_by_caller=True)
        if not isinstance(decision, NeedsConfirmation):
            return decision
        problem = decision.reason  # why the quote did not approve it (expired, another request's, ...)
    no = gen.REFUSED_FORM_AFTER_NO.format(where=said_no.where, at=timestamp(said_no.at))
    return replace(refused, reason=" ".join(filter(None, (refused.reason, no, problem))))


def _unreadable_answer(rt: Runtime) -> str:
    """Why an unreadable form answer approved nothing, worded for this server's approval mode."""
    return UNREADABLE_ANSWER_FORM if rt.settings.approval == "form" else UNREADABLE_ANSWER


def _would_spend(rt: Runtime, plan: gen.Plan, decision: Any) -> bool:
    """Whether this call goes on to a form, an upload or a create (approved, or asking: not a question put again only
    to read the answer a request carries, ``Ask.reread``), or hands back a fresh quote for them (a quote_id that
    cannot approve: expired, for another request, priced lower than now); not a call answered with what an earlier
    one bought (a replay, a used quote naming its task) or declined."""
    if isinstance(decision, Ask):
        return not decision.reread
    if isinstance(decision, Approved):
        return True
    if not isinstance(decision, NeedsConfirmation):
        return False
    if plan.quote_id is None:
        return True
    refusal = rt.quotes.refusal(plan.quote_id, plan.digest)
    return refusal is None or refusal.why != "used"


async def _refuse_unsaveable(rt: Runtime) -> None:
    """Refuse (``saved.OutputsRefused``) a request whose results could not be saved now, while they are saved as
    they exist: outputs/ a link to a disk not mounted, a file or a loop of links in its place, a read-only disk.
    Asked of the disk every time (never a verdict kept for an estimate): what follows may spend."""
    if rt.settings.download:
        await saved.checked(rt.settings.workspace / saved.OUTPUTS, gen.NOTHING_SENT, saving=True)


_GENERATION_ONLY = ("images", "aspect_ratio", "audio")


def _followup_args(values: dict[str, Any], tool: str) -> followups.FollowupArgs:
    """continue_video's arguments from a tool call's (estimate_cost's when it prices a follow-up)."""
    if not values.get("task_id") or not values.get("operation"):
        missing = "operation" if values.get("task_id") else "task_id"
        raise ToolError(f"{tool} prices a follow-up with both task_id and operation; {missing} is missing.")
    extra = [name for name in _GENERATION_ONLY if values.get(name)]
    if values.get("variations", 1) != 1:
        extra.append("variations")
    if extra:
        raise ToolError(
            f"A follow-up of a finished video does not take {', '.join(extra)}; nothing was priced or sent. It takes: "
            "task_id, operation, prompt, script (extend), model, resolution, duration, options, max_credits."
        )
    names = followups.FollowupArgs.model_fields
    return followups.FollowupArgs(**{k: v for k, v in values.items() if k in names and v is not None})


def _answers(ctx: Context, kind: str) -> list[Any]:
    """The answers this (2026-07-28, retried) request carries to this tool's confirmation question."""
    given = ctx.input_responses or {}
    return [answer for key, answer in given.items() if key.split("#")[0].endswith(f":approve_{kind}")]


def _answers_us(ctx: Context, kind: str) -> bool:
    """Whether this (2026-07-28, retried) request carries an answer to this tool's confirmation question."""
    return bool(_answers(ctx, kind))


def _unreadable(answer: Any) -> bool:
    """Whether a (2026-07-28) answer to the confirmation question is one the form cannot be read from: not a form's
    answer, or accepted with no content or content the form's model does not take (as the SDK validates it)."""
    if not isinstance(answer, ElicitResult):
        return True
    if answer.action != "accept":
        return False
    if answer.content is None:
        return True
    try:
        ConfirmSpend.model_validate(answer.content)
    except ValidationError:
        return True
    return False


# How long a yes in the confirmation form waits, before its approval is used, for the host's cancel of the same call
# (seconds). A host whose own timeout on the call fires as the person clicks Accept sends notifications/cancelled
# with the answer or a few milliseconds after it; from the answer to the create nothing else is awaited that the
# cancel could stop (the create is shielded), so without this wait such a call was created and charged, and never
# answered (the host said it timed out). A moment against the seconds the person took to answer. The yes keeps the
# moment it came (``Approved.answered_at``): its question's quote is judged expired by that moment, so a yes in the
# last moment of its question is as good after the wait as before it.
CANCEL_WITH_THE_YES = 0.1


async def _ask_with_deadline(ctx: Context, ask: Ask, seconds: float) -> Approved | Declined | NeedsConfirmation:
    """Ask over the back-channel (handshake era), giving up after ``seconds``: an unanswered question ends the
    call as cancelled, with nothing spent. A yes is used only once ``CANCEL_WITH_THE_YES`` has passed without the
    host cancelling the call (``_cancel_with_the_yes``)."""
    answered: Approved | Declined | NeedsConfirmation | None = None
    with anyio.move_on_after(seconds):
        answered = await _answer(ctx, ask)
    if answered is None:
        return NeedsConfirmation(gen.unanswered(seconds), cancelled=True)
    if isinstance(answered, Approved):
        await _cancel_with_the_yes()  # out of the deadline's scope: a yes in time stays in time
    return answered


async def _cancel_with_the_yes() -> None:
    """Wait ``CANCEL_WITH_THE_YES`` for the host's cancel of a call the person has just said yes to, in the form
    asked within it (handshake era) or in the answer its retried request carries (2026-07-28). Cancelled then, the
    call sends nothing and its question stays unused: the same request sent again puts it to the person again, as
    after a call cut off before its create."""
    try:
        await anyio.sleep(CANCEL_WITH_THE_YES)
    except anyio.get_cancelled_exc_class():
        log.info("the call was cancelled as the person confirmed it in the form: nothing was sent")
        raise


async def _answer(ctx: Context, ask: Ask) -> Approved | Declined | NeedsConfirmation:
    """The person's answer to ``ask`` in the confirmation form, as the gate's decision."""
    try:
        outcome = await ctx.elicit(ask.message, ConfirmSpend)
    except ValueError:  # accepted with no content or not as the form asked, an unknown action, an empty result
        return NeedsConfirmation(_unreadable_answer(_runtime(ctx)))
    except MCPError as err:  # the client declared forms but refused this one: as a client without forms
        return NeedsConfirmation(
            f"The client could not show the confirmation form ({plain(err.message)}).", form_refused=True
        )
    decision = _decision(outcome)
    if isinstance(decision, Approved):
        return Approved("elicitation", ask.quote_id, answered_at=time.time())  # the journal's clock, as the quote's
    assert not isinstance(decision, Replay)
    if isinstance(decision, Declined) and decision.said_no:
        return replace(decision, quote_id=ask.quote_id)
    return decision


def _bind_to_tool_arguments(
    resolver: Any, tool_fn: Any, fields: Any = gen.GenerationArgs.model_fields, roots: Any = InputRoots
) -> None:
    """Give ``resolver`` the tool's argument names that are ``fields`` (the plan's arguments), so the SDK passes it
    exactly what the tool received, and the client's ``roots``."""
    params = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
        inspect.Parameter("roots", inspect.Parameter.KEYWORD_ONLY, annotation=roots),
    ]
    for name in inspect.signature(tool_fn).parameters:
        if name in fields:
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY))
    resolver.__signature__ = inspect.Signature(params)
    resolver.__annotations__ = {**resolver.__annotations__, "roots": roots}


async def _generate(
    ctx: Context, plan: gen.Plan, approval: ElicitationResult[ConfirmSpend], tool: str, wait: gen.Wait
) -> CallToolResult:
    rt = _runtime(ctx)
    rt.follower.attach_client(ctx)  # updates of the tasks this call creates reach this client
    decision = _decision(approval)
    if isinstance(decision, Approved) and decision.by == "elicitation" and decision.answered_at is None:
        # The person's yes carried by this retried request (2026-07-28; the handshake era's waited in its form's call):
        # it waits for a cancel of the call as that one does. Its moment is now, as it reaches this call: the gate
        # found its question open a moment ago, and gave it its full time again (``QuoteBook.open_question``).
        decision = replace(decision, answered_at=time.time())
        await _cancel_with_the_yes()
    with _user_errors():
        result = await gen.execute(rt, plan, decision, tool=tool, wait=wait, progress=_progress(ctx))
    try:
        # Previews (scaled images, video posters) are made in a worker thread, never on the loop.
        await _thumbnails_ready(result.tasks, rt.settings.workspace, rt.settings.preview_px)
        output = GenerationOutput(**{name: getattr(result, name) for name in gen.GenerationResult.model_fields})
        call = await _tasks_result(output, result.message, rt, result.tasks)
        if client_supports_apps(ctx):  # MCP Apps hosts: a quote as the approval card, results as the gallery
            quote = result.quote
            if quote is not None:  # not run: the card again, saying why when there was a reason
                # Drawn from the plan the quote prices (re-priced after a yes whose price rose), so the card, the
                # text and the quote say the same figures.
                priced = result.priced_plan or plan
                call.meta = await _card_meta(ctx, priced, quote, tool, why=result.why, form_refused=result.form_refused)
            else:
                call.meta = gallery_meta(rt, result.tasks, message=result.message)
    except BaseException:  # the host gave up while the answer was being made: the tasks were never shown
        gen.delivered(rt, result, handed_over=False)
        raise
    gen.delivered(rt, result, handed_over=True)
    return call


async def _card_meta(
    ctx: Context,
    plan: gen.Plan,
    quote: Quote,
    tool: str,
    cap_problem: str | None = None,
    *,
    why: str | None = None,
    form_refused: bool = False,
) -> dict[str, Any] | None:
    """The approval card's data (MCP Apps hosts): the quoted request as ``tool`` takes it, and whether the server
    can ask this client itself (then Approve leaves the quote out and the gate asks the person); a client that
    declared forms but ``form_refused`` this call's is treated as one without them."""
    if tool not in _ACCEPTED:
        return None
    given = (ctx.request_context.params or {}).get("arguments") or {}
    arguments = {key: value for key, value in given.items() if key in _ACCEPTED[tool]}
    return await card_meta(
        _runtime(ctx),
        plan,
        quote,
        tool=tool,
        arguments=arguments,
        can_ask=_can_elicit(ctx),
        cap_problem=cap_problem,
        why=why,
        form_refused=form_refused,
    )


def _decision(outcome: ElicitationResult[Any]) -> Approved | Declined | NeedsConfirmation | Replay:
    match outcome:
        case AcceptedElicitation(data=ConfirmSpend(confirm=True)):
            return Approved("elicitation")
        case AcceptedElicitation(data=ConfirmSpend(unasked=unasked)) if unasked:
            named = ", ".join(plain(name, quoted=False, limit=40) for name in unasked[:5])
            more = f" and {len(unasked) - 5} more" if len(unasked) > 5 else ""
            return Declined(
                f"The confirmation answer had fields the form did not ask ({named}{more}), so it is not a yes."
            )
        case AcceptedElicitation(data=ConfirmSpend(not_boolean=True)):
            return Declined("The confirmation answer was not the boolean true, so it is not a yes.")
        case AcceptedElicitation(data=ConfirmSpend()):  # confirm false: the person's explicit No
            return Declined(said_no=True)
        case AcceptedElicitation(data=Approved() | NeedsConfirmation() | Replay() | Declined() as decided):
            return decided
        case DeclinedElicitation():
            return Declined(dialog=True)
        case _:
            return NeedsConfirmation(CANCELLED, dismissed=True)


def _usable_task_id(task_id: str) -> str:
    """``task_id`` as the rule a create answer's id meets takes it (``usable_task_id``), or refused before anything
    is read or asked of KIE: an empty one would ask about nothing, and one holding a credential (the API key, a
    bearer-shaped token) would be sent to KIE in six status URLs. The refusal never repeats such an id."""
    problem = task_id_problem(task_id)
    if problem is not None:
        raise RefusedHereError(
            f"{problem}; nothing was asked of KIE",
            next_step="Use a task id from generate_image, generate_video, list_tasks or KIE's logs.",
        )
    return task_id.strip()


async def _find_record(rt: Runtime, task_id: str, *, reading: bool = False) -> tuple[TaskRecord, str | None]:
    """The record of ``task_id`` (a usable id, ``_usable_task_id``): the journal's, else KIE's (asked once), taken
    as the task of the create of unknown outcome that made it when surely one did (``followups.found_elsewhere``);
    with what the answer says of that (None: nothing). ``reading``: for a resource read, whose errors describe and
    never tell the client to call a tool or spend."""
    record = rt.tasks.get(task_id)
    if record is not None:
        return record, None
    if QUOTE_ID.fullmatch(task_id):  # an agent's easy mix-up: never asked of KIE, which would say "record is null"
        raise RefusedHereError(
            f"{task_id} is a quote id (from estimate_cost or confirmation_required), not a task id; nothing was asked "
            "of KIE",
            next_step="A quote id names a price kie-mcp quoted for a request, not a task; kie://tasks lists the "
            "workspace's tasks."
            if reading
            else "Pass it as quote_id to the generate call it priced, once the user approved the cost; "
            "check_task takes the task_id that call returns.",
        )
    if ATTEMPT_ID.fullmatch(task_id):  # list_tasks names creates of unknown outcome by it: never asked of KIE either
        attempt = next(iter(rt.journal.attempts_by_id([task_id])), None)
        raise RefusedHereError(
            f"{task_id} is kie-mcp's id of a create attempt, not a KIE task id; nothing was asked of KIE",
            next_step=attempt_story(task_id, attempt),
        )
    if (problem := not_a_kie_id(task_id)) is not None:  # a link, quotes, JSON: each family asked for nothing
        raise RefusedHereError(
            f"{problem}; nothing was asked of KIE",
            next_step="A task id is what generate_image, generate_video and list_tasks give, or the id "
            "https://kie.ai/logs shows for a task (32 hex digits, a UUID for Runway and Aleph).",
        )
    try:
        status = await rt.require_kie().find_task(task_id, seen=rt.tasks.families_seen())
    except KieError as err:
        if err.retryable or err.category not in (Category.INPUT, Category.NOT_FOUND):
            raise followups.lookup_failed(plain(task_id), err) from None  # advice for a status call, not a create
        raise KieError(  # a lookup has no field to fix: KIE's "invalid request" means it has no such task
            f"KIE knows no task {plain(task_id)} ({err.message})",
            category=Category.INPUT,
            retryable=False,
            next_step="Use a task id from generate_image, generate_video, list_tasks or https://kie.ai/logs; KIE "
            "keeps tasks for 14 days.",
        ) from None
    # As old as KIE says (the 14-day limit applies); the task of a create whose answer was lost when surely that one's
    taken = await followups.found_elsewhere(rt, task_id, status)
    return taken.record, taken.words


def _task_message(record: TaskRecord, typical: tuple[int, int] | None = None, asking: Asking | None = None) -> str:
    """check_task's words for ``record``. Of a task still running, what KIE said is told apart from kie-mcp's estimate
    (``asking``: whether KIE was asked, whether the progress is its own figure, when the follower asks next): a task
    KIE was never asked about is said to be so, with the estimate from the model's typical time as an estimate, when
    kie-mcp asks, and that wait_seconds=0 asks now."""
    task = f"Task {record.task_id} ({record.model}{labels_text(record)})"
    if record.unknown_to_kie:  # no progress or time left to tell: KIE has no such task under this key
        return f"{task}, last recorded {record.state}: {record.error}"
    head = f"{task}: {record.state}"
    if record.state == "succeeded":
        offered = record.openable_links()  # a link kie-mcp refused is never shown as the result: why, instead
        results = f" Results: {', '.join(offered)}." if offered else ""
        refused = "".join(f" {words[0].upper()}{words[1:]}." for words in record.refused_words())
        saved = f" Saved: {', '.join(record.files)}." if record.files else ""
        note = f" {record.note}" if record.note else ""  # e.g. KIE named more result links than the model makes
        return f"{head}.{results}{refused}{saved}{_task_cost(record)}{note}"
    if record.state == "failed":
        return f"{head}. {record.error}{_failed_cost(record)} {_after_failure(record)}"
    if record.state in ("succeeded_without_results", "unknown"):
        return f"{head}. {record.error}"
    if typical and time.time() - record.created_at > OVERDUE * typical[1]:  # no estimate: it would only be wrong
        waited = duration_text(time.time() - record.created_at)
        followed = not (record.error or "").startswith(NOT_FOLLOWED)
        keeps = "kie-mcp keeps asking (check again later with check_task); " if followed else ""
        return (
            f"{head}, for {waited}: longer than this model usually takes ({typical[0]}-{typical[1]} s), and KIE has "
            f"not ended it. {keeps}https://kie.ai/logs shows the task as KIE has it."
        )
    asking = asking or Asking(asked=record.answered, reported=False, next_in=None)
    reported = asking.reported and record.progress is not None
    if not record.answered:  # "queued" is only how kie-mcp files a task KIE has not said a word about
        if record.error:  # why KIE did not answer follows (check_task adds it): asked, here or by another server
            head = f"{task}: KIE has not answered about it yet"
        elif asking.rate_limited:  # the first 429 is on no record (one is pacing): the answer says it all the same
            head = (
                f"{task}: KIE has not answered about it yet: it refused the status check for now (429, rate limit; "
                "the task itself is unaffected)"
            )
        elif not asking.asked:
            head = f"{task}: KIE has not been asked about it yet"
        else:
            head = f"{task}: KIE did not show it yet when asked (a new task can take a moment to appear)"
    elif reported:
        head = f"{head} ({record.progress:.0%} done, as KIE reports it)"
    guess = []
    if record.eta_seconds:
        guess.append(time_left_words(record.eta_seconds, record.sandbox))
    if record.progress is not None and not reported:
        guess.append(f"{record.progress:.0%} done")
    by = f"this model's typical time ({typical[0]}-{typical[1]} s)" if typical else "how long such tasks usually take"
    estimate = f"; by {by}, kie-mcp's estimate and not KIE's word: {', '.join(guess)}" if guess else ""
    return f"{head}{estimate}.{_next_look(asking)} Check again later with check_task."


def _next_look(asking: Asking) -> str:
    """When the follower asks KIE next about a task, for check_task's words (nothing when it does not follow it)."""
    if asking.next_in is None:
        return ""
    if asking.next_in < 1:
        return " kie-mcp is asking KIE about it now."
    seconds = math.ceil(asking.next_in)
    when = f"{seconds} s" if seconds < 120 else duration_text(seconds)
    ask = "asks KIE again" if asking.asked else "first asks KIE"
    return f" kie-mcp {ask} in about {when}; check_task with wait_seconds=0 asks now."


def _failed_cost(record: TaskRecord) -> str:
    """What a failed task cost, as its record shows it: a charge KIE reported for it, else nothing, its reservation
    given back (``generation.settle_one``); a charge that cannot be what KIE charged (``readable_charge``), its
    reservation kept counted; nothing said of a task kie-mcp did not make here (no quote, no reservation), whose cost
    it does not know."""
    reserved = record.credits_reserved if record.credits_reserved is not None else record.credits_quoted
    charged = readable_charge(reported_charge(record.credits_charged, record.charge_unreadable), reserved, failed=True)
    if reserved and (charged is None or gen.unreadable(record)):
        said = "" if record.credits_charged is None else f" (KIE reported {credits_text(record.credits_charged)})"
        read = (  # a record not settled here yet says what KIE reported; a settled one said it before its cost
            f"{gen.UNREADABLE_CHARGE}{said}; " if f" {gen.UNREADABLE_CHARGE}" not in (record.error or "") else ""
        )
        return (
            f" Cost: {read}the {credits_text(reserved)} reserved for it stay counted as spent rather "
            "than given back (KIE usually refunds a failed task; https://kie.ai/logs shows whether it did)."
        )
    if charged:
        kept = (
            f"; the rest of the {credits_text(reserved)} reserved was given back"
            if reserved and reserved > charged
            else ""
        )
        said = charged_text(charged, charged if record.charge_measured else 0.0)
        return f" Cost: {said} for it, though it failed{kept}."
    if reserved:
        given = f"the {credits_text(reserved)} reserved for it were given back"
        return f" Cost: nothing counted; {gen.REFUNDED_BY_KIE}, so {given}."
    return ""


def _after_failure(record: TaskRecord) -> str:
    """What to do after a failed task: a content refusal (code 400, or KIE's words for a flagged prompt or picture)
    is met again by the same request, so the prompt is rephrased first; any retry is a new spend of its own."""
    again = "Trying again is a new request, priced and approved on its own like the first."
    if record.fail_code == "400" or content_refused(record.error or ""):
        return (
            "KIE refused the content: rephrase the prompt (or change the input pictures) before trying again, as the "
            f"same request is refused again. {again}"
        )
    return again


def _task_cost(record: TaskRecord) -> str:
    """What a finished task cost, as a result should say: KIE's charge (or the one measured from the balance, said
    so), else the price it was quoted at; a charge KIE reported that could not be read (``generation.unreadable``,
    ``readable_charge``), said so, with the reservation that stays counted in its place."""
    quoted = record.credits_reserved if record.credits_reserved is not None else record.credits_quoted
    charged = readable_charge(reported_charge(record.credits_charged, record.charge_unreadable), quoted)
    if charged is not None:
        return f" Cost: {charged_text(charged, charged if record.charge_measured else 0.0)}."
    if gen.unreadable(record) and (record.error or "").startswith(gen.UNREADABLE_CHARGE):  # as its answer said it
        return f" Cost: {record.error}"
    if (record.credits_charged is not None or gen.unreadable(record)) and quoted:  # not settled here yet: the same
        said = "" if record.credits_charged is None else f": KIE reported {credits_text(record.credits_charged)}"
        return (
            f" Cost: {gen.UNREADABLE_CHARGE}{said}. The "
            f"{credits_text(quoted)} reserved for it stay counted as spent; https://kie.ai/logs shows the real charge."
        )
    unreported = (
        "the simulator does not report this task's charge, as KIE's task records do not (a sandbox task: "
        "https://kie.ai/logs has no record of it)"
        if record.sandbox
        else "KIE does not report this task's charge (https://kie.ai/logs shows it)"
    )
    if quoted and record.credits_quoted and quoted > record.credits_quoted:  # the caps counted more than listed
        return (
            f" Cost: {credits_text(record.credits_quoted)} quoted; {quoted:g} counted against the caps, as "
            f"{unreported}."
        )
    if quoted and record.credits_quoted is None:  # an unknown price, its charge not measured either: none was quoted
        return f" Cost: no price was known before it ran; {credits_text(quoted)} reserved and counted, as {unreported}."
    if quoted:
        return f" Cost: {credits_text(quoted)} quoted and counted; {unreported}."
    return ""


# -- resources ------------------------------------------------------------------------------------


def _register_prompts(mcp: MCPServer) -> None:
    """The prompts, registered when a client first lists or gets one: their module loads then, not with every tool."""
    from kie_mcp.prompts import register_prompts

    register_prompts(mcp)


def _register_resources(mcp: MCPServer, settings: Settings) -> None:
    from kie_mcp.library import SHIPPED_PREFIX, PromptLibrary, shipped_pages, shipped_text
    from kie_mcp.media import gallery as pages  # resources are registered on first need (``_Server.defer``)
    from kie_mcp.references import MAX_RESOURCE_BYTES, ReferenceListing, read_text_inside

    @mcp.resource("kie://models", name="models", title="KIE model table", mime_type="text/markdown")
    async def models_markdown() -> str:
        """Every model KIE sells that kie-mcp knows: kind, capabilities, price (with its source and date) and what
        it is good at."""
        return await anyio.to_thread.run_sync(model_table_markdown, _offer())

    @mcp.resource("kie://models.json", name="models-json", title="KIE model table (JSON)", mime_type="application/json")
    async def models_json() -> str:
        """The model table as JSON, with each model's fields, rules, price table and sources: large, about 1.3 MB
        (kie://models, the table in Markdown, is some 50 KB). For one model read kie://models/{id}."""
        return await anyio.to_thread.run_sync(model_table_json, _offer())

    @mcp.resource("kie://models/{+model_id}", name="model", title="One KIE model", mime_type="application/json")
    def model(model_id: str, ctx: Context) -> str:
        """A model's input schema (fields, types, enums, defaults, limits), rules, price table and sources."""
        try:
            # The catalogue, readable even with a broken setting; a follow-up (veo/extend) is documented like any
            # model: reading its document is not generating with it.
            spec = gen.resolve_model(_state(ctx), model_id, followup=True)
        except AmbiguousModelError as err:  # a name several models answer to: the reader picks one
            raise ResourceRefused(str(err)) from err
        except (UnknownModelError, WithdrawnModelError) as err:  # no such model (any more): not found
            raise ResourceNotFoundError(str(err)) from err
        return json.dumps(model_document(spec, _offer(_state(ctx))), indent=2)

    outputs = settings.workspace / "outputs"

    # The gallery pages (media/gallery.py) as HTML, registered before the template serving any saved file.
    @mcp.resource("kie://outputs/index.html", name="gallery", title="Gallery of saved results", mime_type="text/html")
    def gallery() -> str:
        """Every saved result by session and date: pictures, videos, prompts, models and credits (open
        outputs/index.html, or kie-mcp-gallery.html beside a page of your own, in a browser to see the pictures).
        Its pictures are kie://previews/ URIs; its other links are relative to this page's URI."""
        try:
            return pages.read_page(outputs, side=settings.preview_px) or ""
        except saved.OutputsRefused as err:  # outputs/ a link to the workspace: refused as every outputs/ read is
            raise ResourceRefused(f"No gallery page is served: {err}") from err
        except (OSError, ValueError, RecursionError) as err:  # a full disk, an unreadable folder: said, not hidden
            raise ResourceError(redact(f"The gallery page could not be made ({err}).")) from err

    @mcp.resource(
        "kie://outputs/{session}/index.html", name="session-gallery", title="A session's gallery", mime_type="text/html"
    )
    async def session_gallery(session: str) -> str:
        """Every saved result of one session folder, in the order they were made."""
        try:  # in a worker thread: reading the page never holds up the server
            page = await anyio.to_thread.run_sync(pages.read_page, outputs, session)
        except saved.OutputsRefused as err:  # as for the gallery
            raise ResourceRefused(f"No gallery page is served: {err}") from err
        except (OSError, ValueError, RecursionError) as err:  # as for the gallery: said, with what to check
            raise ResourceError(redact(f"The session's gallery page could not be read ({err}).")) from err
        if page is None:
            raise ResourceNotFoundError(await _no_session_page(outputs, session))
        return page

    def saved_result(path: str) -> Path:
        """The real path of the saved result ``outputs/<path>``, or ``ResourceNotFoundError``: symlinks are judged by
        their target, nothing outside outputs/ and nothing there kie-mcp does not save (``saved.is_served``: files
        of session folders, gallery pages; in an outputs/ linked elsewhere, only what ``saved.lends``), no dotfiles
        (the kept previews among them), no unusable paths: each names nothing served, so is not found, whether a
        file is there or not. ``ResourceRefused`` while outputs/ is a link ``saved.refusal`` names: a setup to fix."""
        if (refused := saved.refusal(outputs)) is not None:
            raise ResourceRefused(f"No saved result is served: {refused}")
        home = outputs.resolve()
        try:
            target = (outputs / path).resolve()
            inside = target.is_relative_to(home) and target.is_file() and saved.is_served(target.relative_to(home))
            if inside and outputs.is_symlink():  # a folder the user chose, which may hold their own files too
                inside = saved.lends(home, target)
        except (OSError, ValueError, RuntimeError):
            inside = False
        names = (*Path(path).parts, *(target.relative_to(home).parts if inside else ()))
        if not inside or any(name.startswith(".") for name in names):
            raise ResourceNotFoundError(f"No saved result at {_saved_at(path)}.")
        return target

    @mcp.resource("kie://outputs/{+path}", name="output", title="A saved result", mime_type="application/octet-stream")
    async def output(path: str, ctx: Context) -> str | bytes:
        """A result saved in the workspace's outputs/ folder (images, videos, sidecar JSON)."""
        rt = _state(ctx)

        def judged() -> str | bytes:
            where = saved_result(path).relative_to(outputs.resolve())
            # Judged again as it is opened, and read from that one open file, never by name again: a link swapped in
            # since the check above (to .env, outside) is refused, a FIFO is not waited on, the size is the file's.
            # Text is redacted; other bytes holding the key are not served (``as_served``).
            # A result the journal records at this path and size is served though a backup hard-linked it.
            served = as_served(read_inside(outputs / path, outputs, MAX_RESOURCE_BYTES, rt.saved_here))
            if isinstance(served, str) and where.suffix == ".html":  # a gallery page: its pictures as served here
                return pages.served_copy(served, outputs, where.as_posix())
            return served

        try:  # in a worker thread: no file, whatever it became, holds up the server
            return await anyio.to_thread.run_sync(judged)
        except HoldsSecret as err:
            raise ResourceError(f"{_saved_at(path)}: {err}. Nothing was read.") from err
        except TooLarge as err:
            raise ResourceError(
                f"{_saved_at(path)} is too large to send over MCP; open it from the workspace."
            ) from err
        except ChangedFile as err:
            raise ResourceError(
                f"{_saved_at(path)} changed while it was being read ({err.what}); nothing was sent."
            ) from err
        except (HardLinked, HoldsPrivateKey) as err:  # there, and refused for what it is: said, never "no result"
            raise ResourceError(f"{_saved_at(path)}: {err} Nothing was read.") from err
        except RefusedInput as err:  # a link swapped in since the check now leads outside outputs/, or to a dotfile
            raise ResourceNotFoundError(f"No saved result at {_saved_at(path)}.") from err
        except OSError as err:  # removed or made unreadable since it was found
            raise ResourceError(
                f"{_saved_at(path)} could not be read ({err.strerror or type(err).__name__}); check that the file is "
                "still there and readable."
            ) from err

    _serve_with_real_types(mcp, "kie://outputs/{+path}")

    @mcp.resource(
        "kie://previews/{+path}", name="output-preview", title="A saved result's preview", mime_type="image/jpeg"
    )
    async def output_preview(path: str) -> bytes:
        """The preview of the saved result kie://outputs/<path>: an image scaled to KIE_PREVIEW_PX, or a video's
        poster frame, small enough to show many (the one kept beside the file, made once when missing)."""
        from kie_mcp.media.downloads import preview_of

        def made() -> bytes:
            # Made from (and a kept preview chosen for) one open file judged as it is opened, the path just checked,
            # never opened again by name: a link (to a picture outside) or a FIFO swapped in since is refused at once.
            small = preview_of(saved_result(path), None, settings.preview_px)  # decodes: in this worker thread
            if small is None:  # not an image or a video, too many pixels, a video without ffmpeg
                raise ResourceNotFoundError(f"No preview of {_saved_at(path)}.")
            return small[0]

        try:  # in a worker thread: no file, whatever it became, holds up the server
            return await anyio.to_thread.run_sync(made)
        except ChangedFile as err:
            raise ResourceError(
                f"{_saved_at(path)} changed while its preview was being made ({err.what}); nothing was sent."
            ) from err
        except OSError as err:  # made unreadable since it was found
            raise ResourceError(
                f"{_saved_at(path)} could not be read for its preview ({err.strerror or type(err).__name__}); check "
                "that the file is still there and readable."
            ) from err

    _serve_with_real_types(mcp, "kie://previews/{+path}")
    master = settings.context_folder / "MASTER_CONTEXT.md"  # in the sandbox, the real workspace's

    @mcp.resource(
        "kie://workspace/MASTER_CONTEXT.md",
        name="master-context",
        title="Workspace MASTER_CONTEXT.md",
        mime_type="text/markdown",
    )
    async def master_context() -> str:
        """The workspace's brand voice, decisions, model preferences and known quirks."""
        if master.is_file():  # a link leading outside the workspace, a FIFO or a device is not served
            try:
                # A key pasted into the brand notes is never shown back: redacted in the reading thread, as a
                # reference's text is (``read_text_inside``), never on the event loop.
                return await anyio.to_thread.run_sync(read_text_inside, master, master.parent, "utf-8")
            except UnicodeDecodeError as err:
                raise ResourceError(
                    f"{master} is not UTF-8 text (byte {err.start} cannot be read); save it as UTF-8 (most editors "
                    "offer it under Save As / Encoding)."
                ) from err
            except MissingFile:  # removed since it was found: the template, as when there is none
                pass
            except ChangedFile as err:
                raise ResourceError(
                    f"{master} changed while it was being read ({err.what}). Nothing was read. Ask again."
                ) from err
            except TooLarge as err:
                raise ResourceError(
                    f"{err} Keep it to the notes worth reading at the start of each session (brand voice, decisions, "
                    "model preferences, quirks) and move long material elsewhere."
                ) from err
            except RefusedInput as err:
                raise ResourceError(f"{err} Keep MASTER_CONTEXT.md as a plain file in the workspace.") from err
            except OSError as err:
                raise ResourceError(
                    f"{master} could not be read ({err.strerror or type(err).__name__}); check its permissions."
                ) from err
        elif (there := _not_a_file(master)) is not None:  # never the template, which says to save a copy there
            raise ResourceError(
                f"{master} is {there}, not a file, so it is not read. Replace it with MASTER_CONTEXT.md as a plain "
                "text file (or remove it: kie-mcp's template is then served, with where to save it)."
            )
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
        if settings.config_problem is not None:
            raise ResourceError(settings.config_problem)
        try:
            journal = Journal.for_workspace(settings.workspace)
        except (OSError, sqlite3.Error) as err:
            raise ResourceError(unavailable_reason(settings.workspace, err)) from err
        try:
            body = latest_tasks(journal, settings.workspace)
        except sqlite3.Error as err:
            raise ResourceError(unavailable_reason(settings.workspace, err)) from err
        finally:
            journal.close()
        return json.dumps(body, indent=2)

    @mcp.resource("kie://tasks/{task_id}", name="task", title="A KIE task", mime_type="application/json")
    async def task(task_id: str, ctx: Context) -> str:
        """A task's last known state and results (kept current by the server while it runs; subscribers are told
        when it changes)."""
        rt = _state(ctx)
        if rt.settings.config_problem is not None:
            raise ResourceError(rt.settings.config_problem)
        rt.follower.attach_client(ctx)  # a subscription to this resource is served from now on
        try:  # before anything is read or asked: an id holding a key never leaves
            task_id = _usable_task_id(task_id)
        except RefusedHereError as err:  # no task id at all (blank, spaces, a credential): the reader's to fix
            raise ResourceRefused(str(err)) from None
        record = rt.follower.known(task_id)
        if record is None:
            try:
                record = rt.tasks.get(task_id)
                looked = record is None
                if record is None:  # asked of KIE once, then followed
                    record, found = await _find_record(rt, task_id, reading=True)
                    if found:  # a read's JSON has no place for it: the log says what became of the lost create
                        log.info("kie://tasks/%s: %s", task_id, found)
            except _USER_ERRORS as err:  # an error, not a read: a client (or app) can tell it from a task
                if isinstance(err, KieError) and err.category in (Category.INPUT, Category.NOT_FOUND):
                    if isinstance(err, RefusedHereError):  # a quote id, an attempt id, a link: no task id at all
                        raise ResourceRefused(str(err)) from None
                    raise ResourceNotFoundError(str(err)) from None  # KIE knows no such task
                raise ResourceError(str(err)) from None  # KIE could not be asked: try again
            # The follower has it from now on: one still running is followed; one first seen finished here (made
            # elsewhere) has its results saved in the background, as nobody else would save them.
            if rt.kie is not None and (looked or not record.finished):
                record = await rt.follower.follow(record, looked=looked)
        rt.tasks.label(record)  # its prompt, session and folder, from the journal
        return record.model_dump_json(indent=2)

    # The prompt library: each page from the workspace's prompting/ when it has it (``library.py``), read again
    # before every first page; kie-mcp's own pages stay readable under kie://shipped/prompting/.
    mcp.keep_current(PromptLibrary(settings))

    @mcp.resource(
        SHIPPED_PREFIX + "{+path}",
        name="shipped-prompt-page",
        title="kie-mcp's own prompt-library page",
        mime_type="text/markdown",
    )
    def shipped_prompt_page(path: str) -> str:
        """A page of the prompt library as kie-mcp ships it, whichever copy kie://prompting/<path> serves (the
        workspace's prompting/ folder may hold its own)."""
        text = shipped_text(unquote(path))
        if text is None:
            listed = ", ".join(SHIPPED_PREFIX + relative for relative in shipped_pages())
            raise ResourceNotFoundError(
                f"kie-mcp ships no prompt-library page {plain(path, limit=200)}; its pages are {listed}."
            )
        return text

    # references/: listed as the folder is now, and read again before every first page (``references.py``)
    mcp.keep_current(ReferenceListing(settings))


class _RealTypeTemplate(ResourceTemplate, defer_build=True):
    """A template whose every read carries the content's real MIME type, sniffed from its bytes the way downloads
    name saved files (a template itself can declare only one type for all its files). Text comes back as text, as the
    handler made it (``as_served``: redacted); bytes that look like text but are not UTF-8 are plain bytes."""

    async def create_resource(self, uri: str, params: dict[str, Any], context: Any) -> Any:
        resource = await super().create_resource(uri, params, context)
        if not isinstance(resource, FunctionResource):
            return resource
        data = resource.fn()
        if isinstance(data, str):
            return resource.model_copy(
                update={"mime_type": sniff_mime(data[:SNIFF_BYTES].encode("utf-8")[:SNIFF_BYTES])}
            )
        if not isinstance(data, bytes):
            return resource
        mime = sniff_mime(data[:SNIFF_BYTES])
        return resource.model_copy(update={"mime_type": "application/octet-stream" if mime in TEXT_TYPES else mime})


def _serve_with_real_types(mcp: MCPServer, uri_template: str) -> None:
    """Make the registered template ``uri_template`` send each file's real MIME type. The SDK has no public hook
    for a per-read type, hence its resource manager."""
    templates = mcp._resource_manager._templates
    registered = templates[uri_template]
    templates[uri_template] = _RealTypeTemplate(
        **{name: getattr(registered, name) for name in ResourceTemplate.model_fields}
    )


def _not_a_file(path: Path) -> str | None:
    """What stands at ``path`` that is not a regular file (a folder, a FIFO, a link to nothing), in words; None when
    nothing is there or it is a file. Only looked at (``lstat``, ``stat``): a FIFO is never opened, so never waited
    on."""
    try:
        mode = path.lstat().st_mode
    except OSError:  # nothing there (or nothing that can be looked at): the template
        return None
    link = ""
    if stat.S_ISLNK(mode):
        try:
            mode, link = path.stat().st_mode, "a symbolic link to "
        except OSError:
            return "a symbolic link to nothing that exists"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))
    kinds += ((stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    return link + next((words for test, words in kinds if test(mode)), "something other than a file")


async def _no_session_page(outputs: Path, session: str) -> str:
    """Why ``kie://outputs/<session>/index.html`` is not found, and the pages that were likely meant: folders are
    named ``<date>-<session>``, so a session's name alone finds none (``gallery.session_pages_like``)."""
    from kie_mcp.media.gallery import folder_of_today, session_pages_like

    named = plain(session, limit=200)
    missing = f"No gallery page for the session folder {named} in outputs/; session folders are named <date>-<session>"
    try:
        like = await anyio.to_thread.run_sync(session_pages_like, outputs, session)
    except OSError:  # outputs/ unreadable, or gone: the rule alone
        like = []
    if like:
        pages = ", ".join(f"kie://outputs/{name}/index.html" for name in like)
        return f"{missing}. The session folders of outputs/ with that name, newest first: {pages}."
    return (
        f"{missing} (e.g. {folder_of_today(session)}), and outputs/ has no session folder with that name. "
        "kie://outputs/index.html links every session's page."
    )


def _saved_at(path: str) -> str:
    """A saved result's path as an error names it: ``outputs/<path>``, the path at most 200 characters long (a
    kie://outputs URI of 5,000 characters is not repeated whole)."""
    return "outputs/" + plain(path, quoted=False, limit=200)


# -- helpers ----------------------------------------------------------------------------------------


def _runtime(ctx: Context, request: Any = None) -> Runtime:
    """This connection's state, for a tool: while a setting is broken, every tool answers with it and the fix.

    ``request``: the call's request context when the caller read it already. The SDK's ``Context`` reaches it
    through a pydantic private attribute, about 4-7 us a read (``ctx.session``, ``ctx.client_capabilities`` read it
    too), so a call on the hot path (estimate_cost) reads it once and hands it on."""
    request = ctx.request_context if request is None else request
    rt: Runtime = request.lifespan_context.current  # opened before any tool or resource runs
    if (problem := rt.settings.config_problem) is not None:
        raise ToolError(redact(problem))
    rt.follower.attach_client(ctx, request.session)  # any tool call: from now on the client hears when a task ends
    return rt


def _state(ctx: Context) -> Runtime:
    return ctx.request_context.lifespan_context.current  # opened before any tool or resource runs


def _offer(rt: Runtime | None = None) -> Offer:
    """The models this server offers and how it prices them, for the model tables: what the tools take and
    estimate_cost quotes (KIE's live list and prices, once read). ``rt``: this request's runtime (``SERVING`` for a
    static resource, which the SDK gives no context); without one, the bundled catalogue."""
    rt = rt if rt is not None else SERVING.get()
    if rt is None:
        return Offer()
    return Offer(rt.catalog, rt.live, simulated=rt.settings.sandbox)


def _args(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in _GENERATION_ARGS}


# GenerationArgs' field names, read once: pydantic's ``model_fields`` is a class property that costs about a
# microsecond per read, and ``_args`` would read it for every argument of every call.
_GENERATION_ARGS = frozenset(gen.GenerationArgs.model_fields)


def _can_elicit(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _progress(ctx: Context) -> gen.Progress:
    async def send(value: float, total: float, message: str) -> None:
        await ctx.report_progress(value, total, message)

    return send


@contextlib.contextmanager
def _user_errors(*expected: type[Exception]) -> Iterator[None]:
    """Expected failures (``_USER_ERRORS`` and ``expected``) reach the agent as readable tool errors, never as
    tracebacks, and never with a secret (KieError redacts itself; this is the last safety net for every other
    error text)."""
    try:
        yield
    except (*_USER_ERRORS, *expected) as err:
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
    model: BaseModel,
    text: str,
    rt: Runtime | None = None,
    tasks: Sequence[TaskRecord] = (),
    *,
    saved: Sequence[SavedFile] = (),
    previews: bool = True,
    uri_only: bool = False,
) -> CallToolResult:
    """Text and structured content. Every saved file (``saved``: those of ``tasks``, found by ``_tasks_result``) is
    named by absolute path and file:// URI in the text and in ``saved_files`` (with ``uri_only``, a listing of many:
    by its file:// URI alone in the text, which names each file once); with ``previews`` also as a resource
    link, and the first ``PREVIEWS_PER_ANSWER`` files with a preview image (images scaled to KIE_PREVIEW_PX, a
    video's poster frame; the one kept beside each file: ``await _thumbnails_ready(tasks, workspace, side)`` first
    makes any missing one in a worker thread, so nothing is decoded here, on the event loop); the text says where the
    others' are. A sandbox server's text starts with SANDBOX_LABEL."""
    files = list(saved)
    if files and "saved_files" in type(model).model_fields:
        model = model.model_copy(update={"saved_files": files})
    if files:
        text += "\nSaved on this computer:" + "".join(
            (f"\n- {f.file_uri}" if uri_only else f"\n- {f.absolute_path} ({f.file_uri})")
            + (f", {f.duration_seconds:g} s" if f.duration_seconds else "")
            + (f", {CHANGED}: {CHANGED_TODO}" if f.changed else "")
            + (f", {MISSING}" if f.missing else "")
            + (f", saved, but {not_whole(f.mime_type)} ({f.damaged}); {DAMAGED_TODO}" if f.damaged else "")
            + (f", {KEY_HELD}" if f.holds_key else "")
            for f in files
        )
    if previews and len(files) > PREVIEWS_PER_ANSWER:
        text += _previews_elsewhere(files)
    if rt is not None:  # what happened at start (a corrupt journal set aside), in the first answer of any tool
        text += "".join(f"\n{notice}" for notice in rt.untold_notices() if notice not in text)
    if rt is not None and rt.settings.sandbox:
        text = f"{SANDBOX_LABEL} {text}"
    content: list[Any] = [TextContent(type="text", text=text)]
    kinds = {relative: task.kind for task in tasks for relative in task.files}
    side = rt.settings.preview_px if rt is not None else THUMBNAIL_SIDE
    for index, file in enumerate(files if previews else ()):
        content.append(_output_link(file))  # every file's link; a preview for the first few only
        if index >= PREVIEWS_PER_ANSWER:
            continue
        # The kept preview, never decoded here (made in a worker thread first): an image scaled to KIE_PREVIEW_PX,
        # a video's poster.
        small = preview(Path(file.absolute_path), kinds.get(file.path), side)
        if small is not None:
            data, mime = small
            content.append(ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime))
    return CallToolResult(content=content, structured_content=model.model_dump(mode="json"))


# Preview images in one answer, at most: Seedream's max_images 6 times 10 variations made 60 (about 10 MB of base64 in
# the model's context, past what clients take per request). Every file still has its resource link.
PREVIEWS_PER_ANSWER = 8


def _previews_elsewhere(files: Sequence[SavedFile]) -> str:
    """What the text says of the files past ``PREVIEWS_PER_ANSWER``: each one's preview by its ``kie://previews/`` URI,
    to read as a resource, and the gallery pages. Named, not pointed at "its resource link": a client of a revision
    before resource links (``server.RESOURCE_LINKS_SINCE``) is sent none."""
    rest = files[PREVIEWS_PER_ANSWER:]
    previews = [f.resource_uri.replace("kie://outputs/", "kie://previews/", 1) for f in rest]
    pages = dict.fromkeys(
        f"kie://outputs/{Path(f.path).parts[1]}/index.html" for f in rest if len(Path(f.path).parts) > 2
    )
    return (
        f"\nPreviews are attached for the first {PREVIEWS_PER_ANSWER} of {len(files)} saved files; those of the "
        f"other {len(rest)} are resources to read (resources/read): {', '.join(previews)}"
        + (f"; the gallery shows them all: {', '.join(pages)}" if pages else "")
        + "."
    )


async def _tasks_result(
    model: BaseModel,
    text: str,
    rt: Runtime | None,
    tasks: Sequence[TaskRecord],
    *,
    previews: bool = True,
    uri_only: bool = False,
) -> CallToolResult:
    """``_tool_result`` of an answer naming ``tasks``: their saved files found first (``_task_files``), in one worker
    thread for the whole answer, never on the event loop, and none when no task has a file."""
    found = [(task.task_id, tuple(task.files)) for task in tasks if task.files]  # as they are now, read in the thread
    files = await anyio.to_thread.run_sync(_task_files, rt, found) if rt is not None and found else []
    return _tool_result(model, text, rt, tasks, saved=files, previews=previews, uri_only=uri_only)


def _task_files(rt: Runtime, tasks: Sequence[tuple[str | None, Sequence[str]]]) -> list[SavedFile]:
    """The saved files of ``tasks`` (each task's id and the paths of its files), each with the type its bytes had
    when it was saved (from the journal) and a video's length (``_video_seconds``). Reads the journal and every
    video's header, and looks at each file on disk: blocking, so ``_tasks_result`` calls it in a worker thread (a
    list of many videos on a slow disk held up every other request)."""
    files = []
    for task_id, paths in tasks:
        try:
            rows = {row["path"]: row for row in rt.journal.files_for(task_id)} if task_id else {}
        except (JournalUnavailable, sqlite3.Error):
            rows = {}
        for path in paths:
            row = rows.get(path)
            mime = (row["mime"] if row else None) or mimetypes.guess_type(path)[0]
            seconds = _video_seconds(rt.settings.workspace / path, mime)
            file = _saved_file(rt.settings.workspace, path, task_id, mime, seconds)
            # Its size only: a list never reads a video's bytes (a follow-up or a join about to use it does)
            state = kept(rt.settings.workspace / path, row["size"]) if row is not None else "kept"
            if state != "kept":  # deleted or moved since (the gallery then offers nothing of it), or changed
                file = file.model_copy(update={state: True})
            elif (damage := damage_of(rt.settings.workspace / path)) is not None:  # seen saving or previewing it
                file = file.model_copy(update={"damaged": redact(damage)})
            # as this process saved it, or as its row says (a restart, another server): the size saved, still
            held = row["size"] if row is not None and row["holds_key"] else None
            if key_held(rt.settings.workspace / path, held):
                file = file.model_copy(update={"holds_key": True})
            files.append(file)
    return files


MISSING = (
    "deleted or moved since it was saved, or something that is not a file (a folder, a FIFO) is in its place "
    "(check_task saves it again while KIE still keeps the result, once no folder is at that path)"
)
KEY_HELD = "but its bytes hold your KIE API key (KIE wrote it into the file): never served; do not share it as it is"
DAMAGED_TODO = "KIE may have stored it damaged: https://kie.ai/logs shows the task with its files"

# What a changed saved file's line in an answer adds (saved.changed_file says it in full when one is used).
CHANGED_TODO = (
    "continue_video and stitch_videos do not use it as the task's result; to get the original back, delete or rename "
    "it and call check_task, which saves it again"
)


def _saved_file(
    workspace: Path, relative: str, task_id: str | None, mime: str | None = None, duration: float | None = None
) -> SavedFile:
    """A saved file as answers name it; ``duration``: a video's length, read by the caller (``_video_seconds``)."""
    where = (workspace / relative).absolute()
    mime = mime or mimetypes.guess_type(relative)[0]
    return SavedFile(
        task_id=task_id,
        path=relative,
        absolute_path=str(where),
        file_uri=where.as_uri(),
        resource_uri=f"kie://outputs/{relative.removeprefix('outputs/')}",
        mime_type=mime,
        duration_seconds=duration,
    )


def _video_seconds(path: Path, mime: str | None) -> float | None:
    """``duration.video_seconds`` (an MP4/MOV's length from its header), its module loaded with the first video, not
    at start-up. Reads the file: blocking."""
    if not (mime or "").startswith("video/"):
        return None
    from kie_mcp.media.duration import video_seconds

    return video_seconds(path, mime)


async def _thumbnails_ready(tasks: Sequence[TaskRecord], workspace: Path, side: int = THUMBNAIL_SIDE) -> None:
    """Make the kept previews of the tasks' saved results in a worker thread (once per file): images scaled to
    ``side``, and a poster frame of each video when ffmpeg is available."""
    from kie_mcp.media.downloads import make_previews

    await make_previews([(workspace / relative, task.kind) for task in tasks for relative in task.files], side)


def _output_link(file: SavedFile) -> ResourceLink:
    return ResourceLink(
        type="resource_link",
        uri=file.resource_uri,
        name=Path(file.path).name,
        description=f"Saved at {file.absolute_path}",
        mime_type=file.mime_type,
    )
