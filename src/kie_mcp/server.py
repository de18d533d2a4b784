"""The server a host starts: it answers the handshake and ``tools/list`` without loading the rest of kie-mcp.

``tools/list`` is answered from the listing an earlier start kept (``toolcache``) while it matches the code. The
tools, resources and prompts (``surface``) load on the first request that needs one. The runtime (journal, KIE
client, spend gate, follower: ``runtime``) opens on the first request that needs it, or ``OPEN_AFTER_SECONDS``
after start-up, whichever is first (``RuntimeHolder``), so the follower resumes unfinished tasks within a second.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourcesListChanged, SubscriptionBus
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    CompleteRequestParams,
    CompleteResult,
    EmptyResult,
    ListResourcesResult,
    ListToolsResult,
    PaginatedRequestParams,
    SetLevelRequestParams,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)
from mcp.types import Resource as MCPResource
from pydantic import ValidationError

from kie_mcp import __version__, toolcache
from kie_mcp.apps import app_only, apps_extension, client_supports_apps
from kie_mcp.config import Settings, no_key_advice
from kie_mcp.redact import redact, redact_value
from kie_mcp.refusals import ResourceRefused
from kie_mcp.stdio import UNREADABLE_METHOD, came_in_batch, refuse_batch, unreadable_error, without_batch_mark
from kie_mcp.toolschema import compact, keep_free_text
from kie_mcp.words import argument_problems, path_text, plain, readable_text, span_words

if TYPE_CHECKING:
    import httpx2
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.resources import Resource
    from mcp.server.mcpserver.tools.base import Tool
    from mcp.types import CallToolResult, InputRequiredResult
    from mcp.types import Prompt as MCPPrompt
    from mcp.types import ResourceTemplate as MCPResourceTemplate
    from mcp.types import Tool as MCPTool

    from kie_mcp.runtime import Runtime

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
kie-mcp makes images and videos with KIE.ai models. Every generation costs the user's KIE credits, so the \
server only spends what the user approved:
1. Pick a model (list_models, or the kie://models resource). Prompting guidance is in the kie://prompting/... \
resources.
2. estimate_cost shows the exact price and returns a quote_id. Show the cost to the user.
3. generate_image / generate_video with the same arguments. When the client can show confirmation forms, the \
server asks the user itself. Otherwise the tool answers status=confirmation_required with a quote; after the \
user approves that cost in the chat, repeat the call with quote_id. When the user answers No in the server's \
form, do not retry on your own: for ten minutes a quote_id of that request does not approve it on a client with \
forms, and the same call asks the user again. Hard caps and the account balance are enforced by the server and no \
approval overrides them.
Pass the same session="<name>" to every call of one piece of work, so its results share one folder and gallery \
page; without it, each prompt gets a folder of its own.
Images usually finish within the call. Videos take minutes: generate_video returns task ids at once; follow \
them with check_task(task_id, wait_seconds). check_credits shows the balance, today's spend and the caps.
A finished video can be continued with continue_video (extend it, its 1080p or 4K version, an upscale), priced and \
approved the same way. An extension costs about what a new clip of its length does; what it buys is the same \
people and setting as the take it continues."""

# Every tool, in the order of tools/list: what a kept listing must list. ``surface.register`` adds exactly these.
TOOL_NAMES = (
    "estimate_cost",
    "generate_image",
    "generate_video",
    "check_task",
    "stitch_videos",
    "list_tasks",
    "check_credits",
    "list_models",
    "upload_file",
    "continue_video",
)
# Tools only kie-mcp's app calls (``_meta.ui.visibility: ["app"]``, ``apps.app_only``): listed after TOOL_NAMES, and
# only to a client that declared the MCP Apps extension, whose host keeps them from the model; the tool refuses a
# call from any other client.
APP_TOOL_NAMES = ("decline_quote",)
# Tools whose structured answer is always the JSON dump of the result model they built by validating it
# (``surface._tool_result`` with no update): the SDK's check of that answer against the same model, on every call,
# is skipped (estimate_cost: about 20-30 us a call). The output schema is still published, and clients still check
# answers against it.
ANSWERS_BUILT_BY_VALIDATION = frozenset({"estimate_cost"})

# kie-mcp's tools as built (``_build``), by name and function: the surface defines its functions once per process
# (``surface._tool_definitions``), and building one (the SDK's argument model and schemas) takes 20-50 ms, paid
# once per process however many servers it starts (the tests start thousands). A tool added by code embedding this
# server is built for its server alone.
_BUILT_TOOLS: dict[tuple[str, Callable[..., Any]], Tool] = {}
ANSWER_GRACE = 300.0  # seconds a sealed confirmation answer stays readable after its question ended
# Tools that never write to the journal: they never wait for another program's lock on it (``_open_runtime``).
TOOLS_THAT_NEVER_WRITE = frozenset({"list_models", "list_tasks", "check_credits"})  # WAL: readers never wait
# Tools that wait for another writer's lock on the journal themselves, where they write: estimate_cost's one write
# is its quote (``Journal.unless_locked``; pricing a follow-up looks first, ``Journal.writable``), so the look at the
# lock every other tool that writes takes before it runs (``_open_runtime``) is left out of every estimate.
TOOLS_THAT_WAIT_WHERE_THEY_WRITE = frozenset({"estimate_cost"})
OPEN_AFTER_SECONDS = 0.5  # a host sends the handshake and tools/list at once: the runtime opens after them


def create_server(settings: Settings | None = None, *, transport: httpx2.AsyncBaseTransport | None = None) -> MCPServer:
    """Build the server. ``transport`` replaces the network (tests and the sandbox pass the simulator)."""
    settings = settings or Settings.from_env()
    bus = InMemorySubscriptionBus()  # subscriptions/listen: the follower publishes task updates on it

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[RuntimeHolder]:
        holder = RuntimeHolder(settings, transport, bus)
        async with anyio.create_task_group() as group:
            group.start_soon(holder.keep_open)
            try:
                yield holder
            finally:
                holder.stop()  # closed as before: the journal and KIE client close outside any cancelled scope

    def register() -> None:
        from kie_mcp import surface

        surface.register(mcp, settings)

    mcp = _Server(
        toolcache.listing_path(),
        (*TOOL_NAMES, *APP_TOOL_NAMES),
        register,
        "kie-mcp",
        title="KIE.ai (kie-mcp)" + (" [sandbox]" if settings.sandbox else ""),
        description="Images and videos from KIE.ai models, with the cost shown and approved before any spend.",
        instructions=_instructions(settings),
        website_url="https://kie.ai",
        version=__version__,
        lifespan=lifespan,
        subscriptions=bus,
        extensions=[apps_extension()],  # MCP Apps: the results gallery and the approval card (kie_mcp/apps)
        # 2026-07-28: a confirmation's answer comes back sealed in the retried request. The seal outlives the
        # question (10 minutes), so a late answer is kie-mcp's own "cancelled, with a quote", not "expired state".
        request_state_security=RequestStateSecurity.ephemeral(ttl=settings.confirm_timeout_seconds + ANSWER_GRACE),
    )
    return mcp


class KeptCurrent(Protocol):
    """A part of the resource listing read again before a listing's first page (``_Server.keep_current``): the
    references (``references.ReferenceListing``) and the prompt library (``library.PromptLibrary``)."""

    prefix: str
    first_page: tuple[str, ...]  # URIs under the prefix listed on the first page with the server's own resources

    async def current(self) -> dict[str, Any]: ...

    def outdated(self, uri: str, held: Any) -> bool: ...


class RuntimeUnavailable(Exception):
    """The runtime could not be opened; the message says why (redacted) and that nothing was sent or spent."""


def could_not_start(failure: str | None) -> str:
    """What every request that needs what could not be loaded or opened is answered (``failure``: why, redacted)."""
    return f"kie-mcp could not start ({failure}); nothing was sent or spent. Restart it after fixing that."


class RuntimeHolder:
    """A connection's runtime, opened once: by the first request that needs it (``get``), or ``OPEN_AFTER_SECONDS``
    after start-up, whichever comes first; held open until the server stops."""

    def __init__(
        self, settings: Settings, transport: httpx2.AsyncBaseTransport | None, bus: SubscriptionBus | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._bus = bus
        self._wanted = anyio.Event()
        self._ready = anyio.Event()
        self._stopped = anyio.Event()
        self._runtime: Runtime | None = None
        self._failure: str | None = None

    async def keep_open(self) -> None:
        """Open the runtime when wanted (or after the grace) and hold it open until ``stop``."""
        with anyio.move_on_after(OPEN_AFTER_SECONDS):
            await self._wanted.wait()
        if self._stopped.is_set():  # the server stopped before anything needed the runtime
            return
        try:
            from kie_mcp.runtime import open_runtime  # in here: a Python without _sqlite3, a broken install

            async with open_runtime(self._settings, self._transport) as runtime:
                if self._bus is not None:  # before the follower's first look: an update of any task reaches
                    runtime.follower.publish_to(self._bus)  # subscribers, whoever made it and whenever
                self._runtime = runtime
                self._ready.set()
                await self._stopped.wait()
        except Exception as err:
            if self._runtime is not None:
                raise  # closing at shutdown failed: reported as before
            self._failure = redact(f"{type(err).__name__}: {err}")
            log.error("kie-mcp could not open its workspace journal and KIE client: %s", self._failure, exc_info=True)
            self._ready.set()

    def stop(self) -> None:
        """Let ``keep_open`` close the runtime (or not open it at all) and return."""
        self._stopped.set()
        self._wanted.set()

    async def get(self) -> Runtime:
        """The runtime, opened now if it is not yet. Once it is open, returned at once: waiting on the set event
        would still hand the call back to the event loop for a turn (anyio's checkpoint), on every request. While
        another program holds the journal locked, after the next try to open it (``Runtime.journal_retry``): a
        call made once the lock is gone finds it open."""
        if self._runtime is not None:
            if (retry := self._runtime.journal_retry) is not None:
                await retry.wait()
            return self._runtime
        self._wanted.set()
        await self._ready.wait()
        if self._runtime is None:
            raise RuntimeUnavailable(could_not_start(self._failure))
        return self._runtime

    @property
    def current(self) -> Runtime:
        """The open runtime, for code that runs after ``get`` (every tool and resource does)."""
        if self._runtime is None:
            raise RuntimeError("the runtime is not open: a request reached the surface before RuntimeHolder.get")
        return self._runtime


def _serving(context: Context[Any, Any] | None) -> Runtime | None:
    """The open runtime of the request ``context`` serves; None outside one (code embedding this server), or when
    it could not open."""
    try:
        holder = context.request_context.lifespan_context if context is not None else None
        return holder.current if isinstance(holder, RuntimeHolder) else None
    except (RuntimeError, ValueError, AttributeError):
        return None


async def _set_client_log_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    """logging/setLevel: log messages below ``params.level`` are no longer sent to this client."""
    holder = ctx.lifespan_context
    if isinstance(holder, RuntimeHolder):
        with contextlib.suppress(RuntimeUnavailable):  # unavailable: nothing runs that could send a log message
            (await holder.get()).follower.client_level = params.level
    return EmptyResult()


async def _unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
    """resources/unsubscribe: no more updates of that URI, as it was subscribed to, to this session (nothing to do
    when it was not subscribed)."""
    from kie_mcp.tasks.subscribers import connection_of

    with contextlib.suppress(RuntimeUnavailable):  # unavailable: nothing could have been subscribed
        (await ctx.lifespan_context.get()).follower.subscribers.unsubscribe(connection_of(ctx), params.uri)
    return EmptyResult()


class _Server(MCPServer):
    """The SDK's server, with these changes:

    - ``tools/list`` leaves out the tools only kie-mcp's app calls for a client without the MCP Apps extension.
    - Tools are built when first needed: ``tools/list`` is answered from the listing kept by an earlier start
      (``toolcache``) when it still matches the code, and a tool is built on its first call; without a kept
      listing the first ``tools/list`` builds every tool and keeps the listing. Building is most of a start's cost.
    - The surface (``register``: tools, resources, prompts) loads on the first request that needs it, and
      resources and prompts are registered when a client first lists or reads one (``defer``).
    - A tool call or a resource read waits for the runtime (``RuntimeHolder``) before it runs.
    - Arguments that do not fit a tool's schema are explained in the tool's words (argument names, JSON values,
      what to change) instead of pydantic's text, Python reprs and links; so is a confirmation answer the SDK
      cannot read.
    - ``logging/setLevel`` is served (so ``logging`` is declared): the follower's log messages honour it.
    - ``resources/subscribe`` and ``resources/unsubscribe`` are served (so handshake-era clients are told
      ``subscribe: true``): the follower sends a subscribed session the updates of the task resources. Those and the
      URIs of a ``subscriptions/listen`` are judged as their read takes them (``tasks.subscribers.subscribable``):
      one whose read is refused, or that is never updated, is refused in words (the SDK's listen honours any URI).
    - ``resources/list`` answers in pages (``resourcepages``): the SDK's handler ignores the cursor and lists all.
    - ``completion/complete`` is served (so ``completions`` is declared): the workflows' model and picture arguments
      and the model and task templates' ids (``completions``).
    - Every error answer, and a workflow's plan, leaves redacted (``_answered_without_secrets``); ``prompts/get``
      takes a number given for an argument as its text; a request before ``initialize`` is told what to send first;
      a cursor to a listing that is never paged is refused; a second initialize is refused, changing nothing; an
      initialized notification before any initialize succeeded is ignored; a tool's
      answer to a client of 2024-11-05 or 2025-03-26 goes without resource links (its revision has none).
    - A tool's, resource's and template's description is its docstring without the source's indentation
      (``add_tool``, ``resource``).
    - A ``resources/read`` of a resource that does not exist is answered "Resource not found" (-32002) on a
      handshake-era connection, as MCP up to 2025-11-25 says; invalid params (-32602), the SDK's, in the 2026-07-28
      era, as its revision says (``_not_found_code``). A read refused for its input or the workspace's setup
      (``ResourceRefused``) is invalid params in every era: it is no "not found".
    - A tool's own error (its ``ToolError``, a resolver's) reaches the client in its words, without the SDK's
      "Error executing tool <name>: " before them.
    - A surface that cannot load (a Python without ``_sqlite3``, a broken install) is a start that failed, said as
      the runtime's is (``could_not_start``).
    - A read of a reference that is gone reads the folder again: it is no longer listed.
    """

    def __init__(
        self,
        listing_path: Path | None,
        tool_names: tuple[str, ...],
        register: Callable[[], None],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self._unbuilt: dict[str, dict[str, Any]] = {}  # tool name -> how it was registered, until it is built
        self._order: list[str] = list(tool_names)  # every tool's name, in the order of tools/list
        self._register = register
        self._registered = False
        self._registering = False
        self._listing: list[MCPTool] | None = None
        self._listing_path = listing_path
        self._deferred: list[Callable[[], None]] = []
        self._kept_current: list[KeptCurrent] = []  # read again before every first page (references/, prompting/)
        self._filled: set[str] = set()  # their prefixes, once listed
        self._applied: dict[str, Any] = {}  # by prefix: the last ``current()`` the held resources match
        self._paged: tuple[list[str], list[str]] | None = None  # the listing's order (``_listing_order``)
        super().__init__(*args, **kwargs)
        # The follower sends log messages (a task ended); a server that does declares logging and honours the
        # level a client sets (handshake era; 2026-07-28 clients opt in per request).
        self._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_client_log_level)
        self._lowlevel_server.add_request_handler("resources/list", PaginatedRequestParams, self._list_resources_page)
        # Handshake-era subscriptions to the task resources (the 2026-07-28 era has subscriptions/listen instead; the
        # SDK answers these methods "Method not found" there and advertises subscribe by listen alone).
        self._lowlevel_server.add_request_handler("resources/subscribe", SubscribeRequestParams, self._subscribe)
        self._lowlevel_server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)
        # subscriptions/listen (2026-07-28): the SDK's stream, once its resource URIs are judged as resources/subscribe
        # judges one (the SDK's own handler acknowledges any URI, which then never fires)
        listen = self._lowlevel_server._request_handlers.get("subscriptions/listen")
        self._listener = listen.handler if listen is not None else None
        if self._listener is not None:
            self._lowlevel_server.add_request_handler(
                "subscriptions/listen", SubscriptionsListenRequestParams, self._listen
            )
        # As the SDK's ``completion()`` decorator registers one, but with the request: the runtime, opened on need.
        self._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, self._complete)
        # Outside the SDK's request-state boundary, so its refusal of a stale answer is explained here too.
        chain = self._lowlevel_server.middleware
        boundary = next((i for i, m in enumerate(chain) if isinstance(m, RequestStateBoundary)), len(chain))
        security = kwargs.get("request_state_security")  # to tell why an answer's sealed state was refused
        chain.insert(boundary, functools.partial(_answered_without_secrets, sealed_by=security))

    async def _subscribe(self, ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        """resources/subscribe (handshake era; 2026-07-28 clients listen): the updates of a task resource are sent to
        this session from now on, under the URI as it subscribed to it (``tasks.subscribers``); a URI whose read is
        refused, and any other resource, is refused, saying why and which can be subscribed to."""
        from kie_mcp.tasks.subscribers import connection_of

        runtime = await self._subscription_runtime(ctx)
        [published] = (await self._subscribable(ctx, [params.uri])).values()
        runtime.follower.subscribers.subscribe(connection_of(ctx), params.uri, published)
        return EmptyResult()

    async def _listen(self, ctx: Any, params: SubscriptionsListenRequestParams) -> Any:
        """subscriptions/listen (2026-07-28): the SDK's stream, its resource URIs judged first as resources/subscribe
        judges one: a listen naming one whose read is refused, or a resource never updated, is refused in words before
        it is acknowledged (nothing listened to); a URI written otherwise than the follower publishes it that reads the
        same task hears its updates under the URI as written, while the stream is open."""
        assert self._listener is not None
        uris = list(dict.fromkeys(params.notifications.resource_subscriptions or ()))
        if not uris:  # list changes only: nothing to judge, nor to open
            return await self._listener(ctx, params)
        published = await self._subscribable(ctx, uris)  # kie://tasks alone opens nothing: a stream from the start
        if all(uri == to for uri, to in published.items()):  # hears what the follower's start announces
            return await self._listener(ctx, params)
        runtime = await self._subscription_runtime(ctx)  # open already: a task's URI was read
        with runtime.follower.subscribers.listening(published):
            return await self._listener(ctx, params)

    @staticmethod
    async def _subscription_runtime(ctx: Any) -> Runtime:
        holder = ctx.lifespan_context
        try:
            runtime: Runtime = await holder.get()  # the follower sends the updates
        except RuntimeUnavailable as err:
            raise MCPError(code=INTERNAL_ERROR, message=str(err)) from None
        return runtime

    async def _subscribable(self, ctx: Any, uris: list[str]) -> dict[str, str]:
        """Each of ``uris``: the URI its updates are published as (``tasks.subscribers.subscribable``: by this server's
        own resource read, made on the request ``ctx``). The first refused ends it, refused as invalid params (or as
        the read's own error, when it could not be made now), saying why."""
        from mcp.server.mcpserver import Context

        from kie_mcp.tasks.subscribers import NotSubscribable, ReadRefused, subscribable

        async def read(uri: str) -> str:
            context = Context(request_context=ctx, mcp_server=self, subscriptions=self._subscriptions)
            try:
                contents = await self.read_resource(uri, context)
            except ResourceNotFoundError as err:
                raise ReadRefused(str(err)) from None
            except ResourceError as err:
                raise ReadRefused(str(err), INTERNAL_ERROR) from None
            except MCPError as err:
                raise ReadRefused(err.error.message, err.error.code) from None
            item = next(iter(contents), None) if isinstance(contents, list | tuple) else None
            content = getattr(item, "content", "")
            return content if isinstance(content, str) else ""

        published: dict[str, str] = {}
        for uri in uris:
            try:
                published[uri] = await subscribable(uri, read)
            except NotSubscribable as err:
                raise MCPError(code=err.code, message=str(err)) from None
        return published

    def _ensure_registered(self) -> None:
        """Load the surface and register its tools (deferring its resources and prompts), once. A registration
        that fails is undone, so the next request tries again."""
        if self._registered:
            return
        before, deferred = set(self._unbuilt), len(self._deferred)
        self._registering = True
        try:
            self._register()
            missing = [name for name in self._order if name not in self._unbuilt]
            if missing:
                raise RuntimeError(f"TOOL_NAMES lists {', '.join(missing)}, which the surface does not register")
        except BaseException as err:
            for name in set(self._unbuilt) - before:
                del self._unbuilt[name]
            del self._deferred[deferred:]
            if not isinstance(err, Exception):
                raise
            # A module that cannot load (a Python without _sqlite3, a broken install): said as a start that failed,
            # not as the bare exception text (code 0) the SDK would send
            failure = redact(f"{type(err).__name__}: {err}")
            log.error("kie-mcp could not load its tools, resources and prompts: %s", failure, exc_info=True)
            raise MCPError(code=INTERNAL_ERROR, message=could_not_start(failure)) from None
        finally:
            self._registering = False
        self._registered = True

    def defer(self, register: Callable[[], None]) -> None:
        """Run ``register`` (it adds resources or prompts) before the first request that lists or reads either."""
        self._deferred.append(register)

    def keep_current(self, listing: KeptCurrent) -> None:
        """The resources under ``listing.prefix`` are read again (``listing.current()``: by URI) before every first
        page of ``resources/list``, and before a read under it that ``listing.outdated`` says needs it (a file not
        listed yet)."""
        self._kept_current.append(listing)

    async def _bring_up_to_date(self, reading: str | None = None, *, gone: bool = False) -> None:
        """Replace the resources under each kept prefix with what ``current`` says; a change is announced on the
        subscription bus (2026-07-28 clients that listen list again). With ``reading``, only the listing holding
        that URI, when it needs it (``outdated``) or the file read is ``gone``."""
        from kie_mcp.references import same_resources

        held = self._resource_manager._resources  # the SDK offers no removal; its order is kept
        changed = False
        for listing in list(self._kept_current):
            prefix = listing.prefix
            if reading is not None and (
                not reading.startswith(prefix) or not (gone or listing.outdated(reading, held.get(reading)))
            ):
                continue
            wanted = await listing.current()
            if wanted is self._applied.get(prefix):  # the reading they were last brought up to: nothing changed
                continue
            old = {uri: resource for uri, resource in held.items() if uri.startswith(prefix)}
            first = prefix not in self._filled
            self._filled.add(prefix)
            if same_resources(old, wanted):
                self._applied[prefix] = wanted
                continue
            rebuilt: dict[str, Any] = {}
            placed = False
            for uri, resource in held.items():
                if not uri.startswith(prefix):
                    rebuilt[uri] = resource
                elif not placed:
                    rebuilt.update(wanted)  # once, where the first of them was
                    placed = True
            if not placed:  # none there before: after the others
                rebuilt.update(wanted)
            held.clear()
            held.update(rebuilt)
            self._applied[prefix] = wanted
            self._paged = None
            changed = changed or not first  # the first listing is no change to announce
        publish = getattr(self._subscriptions, "publish", None)
        if changed and publish is not None:
            await publish(ResourcesListChanged())

    def _register_deferred(self) -> None:
        self._ensure_registered()
        while self._deferred:
            self._deferred[0]()  # if it fails, the request says so and the next one tries again
            self._deferred.pop(0)

    @staticmethod
    async def _open_runtime(context: Context[Any, Any] | None, *, writes: bool = False) -> None:
        """Wait for this connection's runtime (``RuntimeHolder``) before anything that may use it runs; with
        ``writes``, also for the journal's write lock while another program holds it (in a worker thread, never
        in SQLite on the event loop: pings and other calls go on meanwhile; ``Journal.writable``)."""
        try:
            holder = context.request_context.lifespan_context if context is not None else None
        except ValueError:  # a context outside any request: no connection, nothing to open
            return
        if isinstance(holder, RuntimeHolder):
            runtime = await holder.get()
            if not writes:
                return
            import sqlite3

            from kie_mcp.journal import Journal, storage_problem  # loaded with the runtime already

            if isinstance(runtime.journal, Journal):  # an unavailable journal: the tool explains
                try:
                    await runtime.journal.writable()
                except sqlite3.OperationalError as err:
                    raise ToolError(redact(storage_problem(err))) from None

    def add_resource(self, resource: Resource) -> None:
        self._paged = None
        super().add_resource(resource)

    def _listing_order(self) -> tuple[list[str], list[str]]:
        """The URIs of the first page's own part (every resource not kept current, in the order they were added,
        and the kept ones named ``first_page``), and of the rest (the kept resources, sorted): the order of
        ``resources/list``, made again only after the resources changed."""
        if self._paged is None:
            prefixes = tuple(listing.prefix for listing in self._kept_current)
            pinned = {uri for listing in self._kept_current for uri in listing.first_page}
            first, rest = [], []
            for uri in self._resource_manager._resources:
                (rest if uri.startswith(prefixes) and uri not in pinned else first).append(uri)
            self._paged = (first, sorted(rest))
        return self._paged

    async def list_resources(self) -> list[MCPResource]:
        """Every resource, in the order of the pages of ``resources/list`` (for code that embeds this server)."""
        self._register_deferred()
        await self._bring_up_to_date()
        first, rest = self._listing_order()
        held = self._resource_manager._resources
        return [_listed(held[uri]) for uri in (*first, *rest)]

    async def _list_resources_page(self, ctx: Any, params: PaginatedRequestParams) -> ListResourcesResult:
        """``resources/list``: one page (``resourcepages``). The first page reads the kept listings again (a file
        added to references/ shows); a page after it lists from the listing as it is, so following the cursors
        reads the folder once."""
        from kie_mcp.resourcepages import BadCursor, page, read_cursor

        self._register_deferred()
        after = None
        if params.cursor:  # an empty one asks for the first page, as none does
            try:
                after = read_cursor(params.cursor, [listing.prefix for listing in self._kept_current])
            except BadCursor as err:
                raise MCPError(code=INVALID_PARAMS, message=str(err)) from None
        if after is None or any(listing.prefix not in self._filled for listing in self._kept_current):
            await self._bring_up_to_date()  # with a cursor: one from before a restart, the folder never read yet
        first, rest = self._listing_order()
        uris, next_cursor = page(first, rest, after)
        held = self._resource_manager._resources
        return ListResourcesResult(resources=[_listed(held[uri]) for uri in uris], next_cursor=next_cursor)

    async def list_resource_templates(self) -> list[MCPResourceTemplate]:
        self._register_deferred()
        return await super().list_resource_templates()

    async def read_resource(self, uri: Any, context: Context[Any, Any] | None = None) -> Any:
        from kie_mcp.references import canonical_uri

        self._register_deferred()
        asked = str(uri)
        uri = canonical_uri(asked)  # a reference's path percent-encoded as listed, or written plainly
        await self._bring_up_to_date(reading=uri)
        try:
            await self._open_runtime(context)
        except RuntimeUnavailable as err:
            raise ResourceError(str(err)) from None
        from kie_mcp.runtime import SERVING  # loaded with the runtime

        token = SERVING.set(_serving(context))  # the model tables are this server's: KIE's live list and prices
        try:
            return await super().read_resource(uri, context)
        except ResourceRefused:
            raise  # the reader's input or the workspace's setup, to fix: invalid params, as the SDK answers it
        except ResourceNotFoundError as err:
            if uri in self._resource_manager._resources:  # a listed file removed since: listed no more
                await self._bring_up_to_date(reading=uri, gone=True)
            if (code := _not_found_code(context)) is not None:
                raise MCPError(code=code, message=str(err), data={"uri": asked}) from None
            raise
        finally:
            SERVING.reset(token)

    async def list_prompts(self) -> list[MCPPrompt]:
        self._register_deferred()
        return await super().list_prompts()

    async def _complete(self, ctx: Any, params: CompleteRequestParams) -> CompleteResult:
        """``completion/complete``: suggestions for the registered prompts' and resource templates' arguments
        (``completions``); the runtime is opened only for those that need it (the catalogue, the journal)."""
        from kie_mcp.completions import complete

        self._register_deferred()
        holder = ctx.lifespan_context

        async def runtime() -> Runtime | None:
            if isinstance(holder, RuntimeHolder):
                with contextlib.suppress(RuntimeUnavailable):  # the bundled catalogue answers, as for a workflow
                    return await holder.get()
            return None

        prompts, templates = await self.list_prompts(), await self.list_resource_templates()
        completion = await complete(params, prompts, templates, runtime, self._kept_current)
        return CompleteResult(completion=completion)

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> Any:
        self._register_deferred()
        prompt = self._prompt_manager.get_prompt(name)
        _check_prompt_arguments(prompt, name, arguments)
        with contextlib.suppress(RuntimeUnavailable, RuntimeError, ValueError, AttributeError):
            await self._open_runtime(context)  # a workflow's model is judged by the catalogue the tools use
        from kie_mcp.runtime import SERVING

        token = SERVING.set(_serving(context))
        try:
            return await super().get_prompt(name, _without_blank_optionals(prompt, arguments), context)
        finally:
            SERVING.reset(token)

    def resource(self, uri: str, *, description: str | None = None, **options: Any) -> Callable[[Any], Any]:
        """As the SDK's decorator, a resource or template without a description of its own described by its
        docstring without the source's indentation, as a tool is (``add_tool``)."""

        def register(fn: Any) -> Any:
            described = description or (inspect.cleandoc(fn.__doc__) if fn.__doc__ else None)
            return super(_Server, self).resource(uri, description=described, **options)(fn)

        return register

    def add_tool(self, fn: Any, name: str | None = None, **options: Any) -> None:
        """Register now, build on first need (``_build``). A tool without a description of its own is described by
        its docstring without the source's indentation (Python before 3.13 keeps it: "A\\n        1080p")."""
        name = name or fn.__name__
        if not options.get("description") and fn.__doc__:
            options["description"] = inspect.cleandoc(fn.__doc__)
        if not self._registering:  # a tool added by code embedding this server: kie-mcp's own come first
            self._ensure_registered()
        if name in self._unbuilt or self._tool_manager.get_tool(name) is not None:
            raise ValueError(f"tool {name} is registered twice")
        self._unbuilt[name] = {"fn": fn, "name": name, **options}
        if name not in self._order:  # a tool added besides kie-mcp's own (by code embedding this server)
            self._order.append(name)
            self._listing = None

    def remove_tool(self, name: str) -> None:
        self._ensure_registered()
        if self._unbuilt.pop(name, None) is None:
            super().remove_tool(name)
        self._order.remove(name)
        self._listing = None

    def _build(self, name: str) -> None:
        """Build tool ``name`` if it is not built yet, with the leaner published schemas (``toolschema.compact``;
        the SDK has no public hook for them, hence its tool manager)."""
        self._ensure_registered()
        options = self._unbuilt.get(name)
        if options is None:
            return
        key = (name, options["fn"])
        # kie-mcp's own tools are the same in every server; one added by embedding code is built for its server alone
        shared = (getattr(options["fn"], "__module__", None) or "").startswith("kie_mcp.")
        if shared and key in _BUILT_TOOLS:
            self._tool_manager._tools[name] = _BUILT_TOOLS[key]  # the SDK adds only from a function
            del self._unbuilt[name]
            return
        super().add_tool(**options)  # if building fails, the call says so and the next one tries again
        del self._unbuilt[name]
        tool = self._tool_manager.get_tool(name)
        assert tool is not None
        tool.parameters = compact(tool.parameters)
        keep_free_text(tool.fn_metadata)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = compact(tool.fn_metadata.output_schema, output=True)
            if name in ANSWERS_BUILT_BY_VALIDATION:  # the schema stays published; only the server's re-check goes
                tool.fn_metadata.output_model = None
        if shared:
            _BUILT_TOOLS[key] = tool

    async def list_tools(self) -> list[MCPTool]:
        if self._listing is None:
            self._listing = toolcache.read(self._listing_path, self._order)
        if self._listing is None:
            for name in self._order:
                self._build(name)
            built = {tool.name: tool for tool in await super().list_tools()}
            self._listing = [built[name] for name in self._order]  # registration order, whatever was called first
            toolcache.write(self._listing_path, self._listing)
        return self._listing

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        """Every tool; those only kie-mcp's app calls (``apps.app_only``) to a client that shows the app alone."""
        tools = await self.list_tools()
        if not client_supports_apps(ctx):
            tools = [tool for tool in tools if not app_only(tool.meta)]
        return ListToolsResult(tools=tools)

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        self._build(name)  # the SDK reads it (HTTP transport) before the call
        return super()._tool_input_schema(name)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            writes = name not in TOOLS_THAT_NEVER_WRITE and name not in TOOLS_THAT_WAIT_WHERE_THEY_WRITE
            await self._open_runtime(context, writes=writes)
        except RuntimeUnavailable as err:
            raise ToolError(str(err)) from None
        self._build(name)
        runtime = _serving(context)
        try:  # a call its runtime's close ended (its client gone) is answered so, should anyone still read it
            with runtime.calls.running() if runtime is not None else contextlib.nullcontext():
                return await super().call_tool(name, arguments, context)
            from kie_mcp.runtime import ENDED_BY_CLOSE  # loaded with the runtime

            raise ToolError(ENDED_BY_CLOSE)
        except ToolError as err:
            if "Resolver '" in str(err) and "elicitation" in str(err):  # the SDK's words for an unreadable answer
                raise ToolError(
                    f"{name}: the answer to the confirmation form could not be read (accepted with nothing filled "
                    "in, or not as the form asked), so it is not a yes; nothing was sent or spent. Call again to be "
                    "asked again."
                ) from None
            cause = err.__cause__
            if isinstance(err, UnexpectedToolError) or str(err) != f"Error executing tool {name}: {cause}":
                raise  # a crash (its text stays on the server), or not a ToolError the SDK wrapped
            if isinstance(cause, ToolError | ResourceError):  # kie-mcp's own words, without the SDK's prefix
                raise ToolError(str(cause)) from cause
            if not isinstance(cause, ValidationError):
                raise
            problems = "\n".join(f"- {line}" for line in argument_problems(cause.errors(include_url=False)))
            raise ToolError(
                f"{name}: some arguments do not fit; nothing was sent or spent. Fix these and call again:\n{problems}"
            ) from cause


# MCP's "Resource not found" code, which its revisions up to 2025-11-25 name for a read of a resource that does not
# exist; 2026-07-28 (SEP-2164) makes that invalid params (-32602), the code the SDK answers in every era.
RESOURCE_NOT_FOUND = -32002


def _not_found_code(context: Context[Any, Any] | None) -> int | None:
    """The code of the answer to a ``resources/read`` of a resource that does not exist, where it is not the SDK's
    invalid params: ``RESOURCE_NOT_FOUND`` on a handshake-era connection, whose revisions name it. None (invalid
    params, as the SDK answers) in the 2026-07-28 era, whose revision says so, and for a read made for another
    request (``resources/subscribe`` judging a URI, a tool reading a resource). Never asked of a ``ResourceRefused``,
    which is invalid params in every era."""
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    try:
        request = context.request_context if context is not None else None
    except ValueError:  # a read outside any request (code embedding the server)
        return None
    if request is None or request.method != "resources/read" or request.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return None
    return RESOURCE_NOT_FOUND


def _listed(resource: Resource) -> MCPResource:
    """A resource as ``resources/list`` names it (the fields the SDK's own listing sends)."""
    return MCPResource(
        uri=resource.uri,
        name=resource.name or "",
        title=resource.title,
        description=resource.description,
        mime_type=resource.mime_type,
        icons=resource.icons,
        annotations=resource.annotations,
        _meta=resource.meta,
    )


def _without_blank_optionals(prompt: Any, arguments: dict[str, Any] | None) -> dict[str, Any] | None:
    """``arguments`` without the optional ones left blank (a client's form sends "" for a field left empty): those
    take their defaults, as a blank setting does, instead of failing ("beats must be a whole number") or reading
    "Workflow: animated ad, . Product ..."."""
    if not arguments or prompt is None:
        return arguments
    optional = {argument.name for argument in prompt.arguments or () if not argument.required}
    return {k: v for k, v in arguments.items() if k not in optional or not isinstance(v, str) or v.strip()}


# The SDK answers -32602 "Invalid or expired requestState" to an answer whose sealed state it refuses, naming no
# reason (``stale_answer`` tells them apart): the seal's key lives only as long as the server process, the seal only
# as long as the question and a grace, and it binds the tool and the arguments of the call that asked.
STALE_ANSWER = (
    "This answer to a confirmation question could not be read: it was asked by an earlier run of kie-mcp (the "
    "server restarted since), or the answer was changed on its way. Nothing was run, sent or spent. Call the tool "
    "again, without requestState, to be asked again."
)
ANSWER_TOO_LATE = (
    "This answer to a confirmation question came too late: the question was asked more than {within} ago."
    " Nothing was run, sent or spent. Call the tool again, without requestState, to be asked again."
)
ANSWER_FOR_OTHER_ARGUMENTS = (
    "This answer to a confirmation question came back with other arguments than the call that asked it (every "
    "argument counts, wait_seconds too): a yes approves only the request it was asked about. Nothing was run, sent "
    "or spent. Send the answer with that call's arguments unchanged, or call the tool with these arguments, without "
    "requestState, to be asked about them."
)
ANSWER_FOR_ANOTHER_TOOL = (
    "This answer to a confirmation question came back on a call of another tool than the one that asked it ({asked}): "
    "a yes approves only the request it was asked about. Nothing was run, sent or spent. Send the answer with the "
    "call of {asked} that asked it, or call {asked} without requestState to be asked about it."
)


def stale_answer(security: RequestStateSecurity | None, method: str, params: Mapping[str, Any] | None) -> str:
    """Why the SDK refused the sealed state of an answer to a confirmation question (its refusal says "Invalid or
    expired requestState" whatever the reason, which goes to its log only), as this server can tell from the seal it
    made (``security``): too late, or the answer sent back with other arguments or on another tool than the call that
    asked (the SDK's own binding of a round to its request); otherwise a seal of an earlier run of the server, or
    changed on its way (``STALE_ANSWER``)."""
    if security is None or params is None:
        return STALE_ANSWER
    try:
        from mcp.server.request_state import _request_identity  # what the SDK binds a round to: tool, arguments

        claims = json.loads(security.codec.unseal(params["requestState"]))
        expires = float(claims["exp"])
        asked = (claims.get("m"), claims.get("t"), claims.get("a"))
        target, arguments = _request_identity(method, params)
    except Exception:  # not a seal of this run (a restart, a changed token), or nothing to tell it by
        return STALE_ANSWER
    if not time.time() < expires:
        return ANSWER_TOO_LATE.format(within=span_words(security.ttl))
    if asked[:2] != (method, target):
        return ANSWER_FOR_ANOTHER_TOOL.format(asked=asked[1] if isinstance(asked[1], str) else asked[0])
    if asked[2] != arguments:
        return ANSWER_FOR_OTHER_ARGUMENTS
    return STALE_ANSWER


async def _answered_without_secrets(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext, *, sealed_by: RequestStateSecurity | None = None
) -> HandlerResult:
    """The one point where every error answer (a JSON-RPC error, or a tool's error result), and every workflow's
    plan, is redacted before it leaves (tools redact their own other answers). A key given as a prompt's argument
    was written into the plan, and errors echo what they name: a tool's, a prompt's or an argument's name, a bad
    count, model or ratio, a resource URI (in the message and in the SDK's ``data``).

    It runs before the SDK checks a request's params and that the handshake ended, so ``prompts/get`` takes a number
    given for an argument as its text (``_prompt_arguments_as_text``), a completion's reference of no type it completes
    is refused saying which it completes (``completions.check_reference``), and a line over stdio nested too deep to
    read (``stdio.UNREADABLE_METHOD``) is answered whenever it comes; and outside the SDK's request-state boundary, so
    its bare refusal of a confirmation's answer it can no longer read says what happened and what to do
    (``stale_answer``, told by the seal's ``sealed_by``). Its check of a request's params, which it answered "Invalid
    request parameters" naming nothing (``params: null`` for a tool call), names what is wrong; a ``progressToken``
    that is no text or integer is taken out first, said on stderr, so the request runs without progress
    (``_without_odd_progress_token``), where the SDK refused it whole; an unknown resource URI, method or tool name it
    repeats is cut to ``ECHO_SHOWN`` characters. A request that came in a JSON-RPC batch is refused here, before
    anything else, where the session's protocol has none, and an initialize always (``stdio.refuse_batch``). Its bare
    refusal of a request before the handshake (``BEFORE_INITIALIZE``) says to send initialize first, or the 2026-07-28
    envelope (``_initialize_first``); a cursor given to a listing that is never paged (``NEVER_PAGED``) is refused,
    where the SDK listed the first page for any. A second initialize on a connection is refused
    (``_initialized_once``), where the SDK took its protocol version and capabilities; a ``notifications/initialized``
    before any initialize succeeded is ignored (``_before_any_initialize``), where the SDK took it for the handshake's
    end. A tool's answer to a client of a revision before ``RESOURCE_LINKS_SINCE`` leaves without its resource links
    (``_for_revision``)."""
    method = ctx.method
    if method == "notifications/initialized" and _before_any_initialize(ctx):
        return None
    plan = method == "prompts/get"
    try:
        if method == UNREADABLE_METHOD:  # here, not as a handler: also answered before the handshake ends
            raise unreadable_error(ctx.params)
        if came_in_batch(ctx.params):  # it came in a JSON-RPC batch (stdio): run where the protocol has batches
            refuse_batch(ctx.protocol_version, method)  # every method alike: a workflow's plan too
            ctx = replace(ctx, params=without_batch_mark(ctx.params))
        if ctx.request_id is not None and (kept := _without_odd_progress_token(method, ctx.params)) is not None:
            ctx = replace(ctx, params=kept)
        if method == "initialize":
            _initialized_once(ctx)
        if method in NEVER_PAGED:
            _refuse_cursor(method, ctx.params)
        if plan:
            ctx = replace(ctx, params=_prompt_arguments_as_text(ctx.params))
        if method == "completion/complete":
            from kie_mcp.completions import check_reference

            check_reference(ctx.params)
        result = await call_next(ctx)
    except ImportError as err:  # a module a handler loads cannot load (a Python without _sqlite3, a broken install)
        failure = redact(f"{type(err).__name__}: {err}")
        log.error("kie-mcp could not load what %s needs: %s", method, failure, exc_info=True)
        raise MCPError(code=INTERNAL_ERROR, message=could_not_start(failure)) from None
    except ValidationError as err:  # the SDK's check of the params, which it answers naming nothing
        problems = argument_problems(err.errors(include_url=False))
        message = redact(f"Invalid request parameters: {'; '.join(problems[:5]) or 'not as the method takes them'}.")
        raise MCPError(
            code=INVALID_PARAMS, message=message, data={"problems": [redact(p) for p in problems[:5]]}
        ) from None
    except MCPError as err:
        error = err.error
        message, data = error.message, error.data
        if (error.code, message, data) == BEFORE_INITIALIZE and method != "initialize":
            message, data = _initialize_first(method)
        # What the request named is echoed (an unknown URI, method or tool): a 40 MB one, whole, in message and data
        message, data = _echoes_bounded(message, ctx), _echoes_bounded(data, ctx)
        message, data = redact(message), redact_value(data)
        if isinstance(data, dict) and data.get("reason") == "invalid_request_state":
            message = stale_answer(sealed_by, method, ctx.params)
        if message == error.message and data == error.data:
            raise
        raise MCPError(code=error.code, message=message, data=data) from None
    if plan:  # the user's own words, to be used: only the key goes (a signed link's access_token stays)
        return redact_value(result, secrets_only=True)
    if method == "tools/call":
        result = _for_revision(result, ctx.protocol_version)
    if method == "tools/call" and isinstance(result, dict) and result.get("isError"):
        return redact_value(_echoes_bounded(result, ctx))  # a refusal names what it was given (an unknown tool)
    return result


ECHO_SHOWN = 200  # characters of a resource URI, a method or a tool's name an error repeats

# The first revision whose content blocks include ``resource_link``: a client of an earlier one (2024-11-05,
# 2025-03-26) checks a tool's content against a union without it and throws the whole answer away, after the
# credits were spent. Its text names every saved file by absolute path and file:// URI all the same.
RESOURCE_LINKS_SINCE = "2025-06-18"


def _for_revision(result: Any, version: str) -> Any:
    """A tool's answer (its wire form) without its ``resource_link`` blocks when the connection's protocol
    ``version`` predates ``RESOURCE_LINKS_SINCE`` (revisions are dates: they compare as text)."""
    if version >= RESOURCE_LINKS_SINCE or not isinstance(result, dict) or not isinstance(result.get("content"), list):
        return result
    content = [
        block for block in result["content"] if not (isinstance(block, dict) and block.get("type") == "resource_link")
    ]
    return {**result, "content": content} if len(content) != len(result["content"]) else result


def _before_any_initialize(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether ``notifications/initialized`` came on a handshake-era connection where no initialize has succeeded (none
    sent, or each refused): then it is ignored, said on stderr. The SDK took it as the handshake's end and served every
    request after it, with no protocol version agreed and no capabilities declared (a generate_image answered with a
    quote, no form). A 2026-07-28 connection has no handshake: its notification is left as the SDK takes it."""
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or ctx.session.client_params is not None:
        return False
    log.warning(
        "notifications/initialized came, but no initialize has succeeded on this connection: ignored; requests are "
        "refused until an initialize succeeds"
    )
    return True


def _without_odd_progress_token(method: str, params: Any) -> dict[str, Any] | None:
    """``params`` without its ``_meta.progressToken`` when that is no text or integer (null, 1.5, true, an object, a
    list), said on stderr: the request runs, without progress notifications; None when there is none to take out.
    MCP's progress tokens are text or integers, and a server may always send no progress; the SDK refused the whole
    request over such a token (a tool call, priced and all), and took true for the integer 1 while its dispatcher
    sent no progress for it."""
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    if not isinstance(meta, Mapping) or "progressToken" not in meta:
        return None
    token = meta["progressToken"]
    if isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool)):
        return None
    log.warning(
        "a %s request's progressToken is %s, and MCP's progress tokens are text or integers: it runs without progress "
        "notifications",
        plain(method, quoted=False, limit=60),
        _kind_of(token),
    )
    return {**params, "_meta": {key: value for key, value in meta.items() if key != "progressToken"}}


def _kind_of(value: Any) -> str:
    """What a JSON value is, in words (never the value itself: a token may hold anything)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    kinds = ((float, "a number with a fraction"), (Mapping, "an object"), (list, "a list"), (str, "text"))
    return next((words for kind, words in kinds if isinstance(value, kind)), "a number")


def _initialized_once(ctx: ServerRequestContext[Any, Any]) -> None:
    """Refuse an initialize on a connection whose handshake already took one: the SDK took the second's protocol
    version and capabilities, so a client could change mid-session the rules it was served by (batches, forms)."""
    if ctx.session.client_params is None:
        return
    raise MCPError(
        code=INVALID_REQUEST,
        message=f"kie-mcp is already initialized on this connection (MCP {ctx.protocol_version}, by its first "
        "initialize); nothing changed: the protocol version and the capabilities it declared stay. A connection is "
        "initialized once; to start over, open a new connection.",
    )


# The SDK's answer to a request before the handshake ended, in the handshake era: its bare "Invalid request
# parameters" with empty data, which named nothing (the same as a refused params' before kie-mcp named them).
BEFORE_INITIALIZE = (INVALID_PARAMS, "Invalid request parameters", "")
ENVELOPE_KEYS = ("io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientCapabilities")


def _initialize_first(method: str) -> tuple[str, dict[str, Any]]:
    """The message and data of the answer to a request sent before ``initialize`` on a connection of the handshake
    era: the first request of a connection decides its era, and one without the 2026-07-28 envelope opened this one
    in the handshake era."""
    named = plain(method, quoted=False, limit=60)
    message = (
        f"kie-mcp did not run this {named} request: this connection has not been initialized, so nothing of it was "
        "run, priced or sent. Send initialize first (then notifications/initialized), and this request again. "
        "This connection serves the handshake era (2025-11-25 and before), as its first request decided (an "
        "initialize, or a request without the 2026-07-28 envelope). A 2026-07-28 client sends no initialize: "
        "every request of its connection, the first too, carries the envelope in params._meta "
        f'({ENVELOPE_KEYS[0]}: "2026-07-28" and {ENVELOPE_KEYS[1]}: its capabilities; '
        "io.modelcontextprotocol/clientInfo optional)."
    )
    return message, {"send_first": "initialize", "envelope": list(ENVELOPE_KEYS)}


NEVER_PAGED = ("tools/list", "prompts/list", "resources/templates/list")  # one answer lists every one


def _refuse_cursor(method: str, params: Any) -> None:
    """Refuse a cursor given to a listing that is never paged (its one answer has no nextCursor, so no cursor was
    ever given): the SDK listed the first page for any text, as if it were one. An empty cursor asks for the first
    page, as none does (``resources/list`` too); one that is not text is left to the SDK's check."""
    cursor = params.get("cursor") if isinstance(params, Mapping) else None
    if isinstance(cursor, str) and cursor:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"cursor is not one {method} gave: {method} is never paged (its one answer lists every one, with "
            "no nextCursor); nothing was listed. List again without a cursor.",
        )


def _echoes_bounded(value: Any, ctx: ServerRequestContext[Any, Any]) -> Any:
    """``value`` (an error's message or data, or a tool's error result) with what the request named shown at most
    ``ECHO_SHOWN`` characters long wherever it repeats it: its method (the SDK's "Method not found" data), the tool
    or prompt ``name``, and a resource URI as the client sent it and as the read looked it up (a reference's path
    percent-encoded as listed, ``canonical_uri``: 30,000 ``é`` sent are 180,000 characters there)."""
    named = [ctx.method]
    params = ctx.params if isinstance(ctx.params, Mapping) else {}
    if isinstance(name := params.get("name"), str):
        named.append(name)
    if ctx.method == "resources/read" and isinstance(uri := params.get("uri"), str):
        from kie_mcp.references import canonical_uri

        named += [uri, canonical_uri(uri)]
    long = sorted({text for text in named if len(text) > ECHO_SHOWN}, key=len, reverse=True)  # the longer first
    return _bounded(value, [(text, plain(text, quoted=False, limit=ECHO_SHOWN)) for text in long])


def _bounded(value: Any, shown: list[tuple[str, str]]) -> Any:
    """``value`` with each of ``shown``'s texts replaced by its shortened form, in a dict's values too."""
    if not shown:
        return value
    if isinstance(value, str):
        for form, short in shown:
            value = value.replace(form, short)
        return value
    if isinstance(value, dict):
        return {key: _bounded(inner, shown) for key, inner in value.items()}
    if isinstance(value, list):  # a tool result's content
        return [_bounded(inner, shown) for inner in value]
    return value


def _prompt_arguments_as_text(params: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``prompts/get``'s params with each argument given as a JSON number written as text (``5`` as ``"5"``, as a
    form field sends it); any other value that is not text (null, true, a list) is refused as invalid params naming
    the argument and what it takes, and so is a missing name. MCP's arguments are text: the SDK refused such a
    request as "Invalid request parameters", naming nothing."""
    given = params if isinstance(params, Mapping) else {}
    name, arguments = given.get("name"), given.get("arguments")
    if not isinstance(name, str):
        got = "none" if name is None else _shown(name)
        raise MCPError(code=INVALID_PARAMS, message=f"prompts/get needs a prompt's name, as text (got {got}).")
    if arguments is None:
        return params
    prompt = f"Prompt {plain(name, quoted=not name.isidentifier(), limit=40)}"
    if not isinstance(arguments, Mapping):
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"{prompt}: arguments must be an object of argument names and their text values (got "
            f"{_shown(arguments)}).",
        )
    texts: dict[str, Any] = {}
    problems = []
    for key, value in arguments.items():
        text = _argument_text(value)
        if text is None:
            named = plain(key, quoted=not (isinstance(key, str) and key.isidentifier()), limit=40)
            problems.append(f"{named}: {_shown(value)} is not text")
        texts[key] = text
    if problems:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"{prompt}: {'; '.join(problems[:5])}. Each argument's value is text (a number is taken as its "
            "text); leave an optional argument out to take its default.",
        )
    return {**given, "arguments": texts}


def _shown(value: Any) -> str:
    """``value`` as an error repeats it (``plain``); a whole number longer than Python writes out, in words."""
    try:
        return plain(value, limit=40)
    except ValueError:
        return "a number too long to read"


def _argument_text(value: Any) -> str | None:
    """A prompt argument's value as text: text as it is, a number as people write it (``5.0`` reads ``5``, as a
    count takes it); None for anything else, and for a whole number longer than Python writes out (4,300 digits)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            return plain(value, quoted=False, limit=10_000)
    return None


def _check_prompt_arguments(prompt: Any, name: str, arguments: dict[str, Any] | None) -> None:
    """An unknown prompt, a missing (or blank) required argument or an unexpected one, as an invalid-parameters error
    that names it (the SDK says "Error rendering prompt", or in the 2026 era only "Internal server error"; a blank
    one rendered "Character: .")."""
    if prompt is None:
        raise MCPError(code=INVALID_PARAMS, message=f"There is no prompt named {plain(name)}; see prompts/list.")
    declared = [argument.name for argument in prompt.arguments or ()]
    given = {name for name, value in (arguments or {}).items() if not isinstance(value, str) or value.strip()}
    missing = [argument.name for argument in prompt.arguments or () if argument.required and argument.name not in given]
    given |= set(arguments or {})  # a blank argument the prompt does not take is still named as unexpected
    unexpected = sorted(given - set(declared))
    problems = [f"{n}: required" for n in missing]  # declared names: plain words
    # A name the client made up is shown as written when it is a plain word, else quoted (no raw control characters).
    problems += [
        f"{plain(n, quoted=not n.isidentifier(), limit=40)}: not an argument of this prompt" for n in unexpected[:5]
    ]
    if problems:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"Prompt {name}: {'; '.join(problems)}. Its arguments are {', '.join(declared) or 'none'}.",
        )


def _instructions(settings: Settings) -> str:
    """INSTRUCTIONS plus where this server keeps its files (absolute paths) and why that workspace (a typo in
    KIE_WORKSPACE made a new, empty folder; a relative path was read from the current folder), and any configuration
    problem; never a secret (a setting may hold the key: all of it is redacted)."""
    chosen = f", {readable_text(settings.workspace_reason)}" if settings.workspace_reason else ""
    where = (
        f"\nWorkspace: {path_text(settings.workspace.absolute())}{'' if settings.sandbox else chosen}. Results are "
        "saved in its outputs/ folder; every result names each saved file by absolute path and file:// URI."
    )
    if settings.sandbox:
        where += (
            " SANDBOX: this server runs against kie-mcp's built-in KIE simulator, so results are simulated and "
            f"nothing is spent. That folder is the sandbox area of the workspace "
            f"{path_text(settings.context_folder.absolute())}{chosen}; simulated tasks and spend stay there and never "
            "count against the real caps or appear in real task lists."
        )
    if settings.approval == "form":
        where += (
            "\nKIE_APPROVAL=form: when this client can show confirmation forms, only the user's answer in the form "
            "approves a spend; a quote_id does not replace it (it only binds the call to the quoted request)."
        )
    if settings.config_problem is not None:
        where += f"\n{settings.config_problem}"
    elif not settings.has_key:  # estimates still work; say so before the agent asks the user to approve a spend
        where += f"\n{no_key_advice(settings.context_folder)} Until then estimate_cost prices requests, but nothing "
        where += "can be generated."
    return INSTRUCTIONS + redact(where)
