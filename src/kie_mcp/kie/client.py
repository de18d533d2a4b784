"""The async KIE client: its HTTP clients (reads on kept-alive connections, whatever spends or saves on a connection
of its own: ``ONE_USE``), the envelope, pacing and the no-double-spend rules.

Creates are sent once. The only automatic retry is after a 429, which KIE documents as refused,
not queued and not charged. A create that may have reached KIE without a readable answer raises
``OutcomeUnknownError`` and is never sent again.
"""

from __future__ import annotations

import base64
import functools
import logging
import math
import mimetypes
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import quote, urlsplit

import anyio
import httpx2
from pydantic import BaseModel

from kie_mcp import __version__
from kie_mcp.redact import REDACTED, register_secret
from kie_mcp.spend.approval import Approval
from kie_mcp.words import parse_timestamp

from .calllog import CallLog
from .envelope import clean, json_or_none, loads_or_none, read_envelope, refused_before_api, whole_code
from .errors import (
    CREATE_NOT_FOUND,
    LOGS_URL,
    NOT_ACTED_REDIRECTS,
    UNKNOWN_OUTCOME_STEP,
    Category,
    KieError,
    NotSentError,
    OutcomeUnknownError,
    RedirectedError,
    RefusedHereError,
    any_request_step,
    wrong_key_step,
)
from .families import FAMILIES, NO_TASK_RECORD, Family, family_for_task_id, named_task_id
from .pacing import SharedBudget, SlidingWindow, Slot
from .status import TaskState, TaskStatus, int_or_none, result_link
from .text import as_text, kept_text, text_or_none

if TYPE_CHECKING:
    import ssl

log = logging.getLogger(__name__)

USER_AGENT = f"kie-mcp/{__version__} (+https://kie.ai) python-httpx2"
GAVE_UP = "it was not sent: its call was cancelled or kie-mcp was stopping while it waited for its turn"
NOT_WANTED = "it was not sent again: its caller withdrew it while it waited (the spend was declined)"
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.UnsupportedProtocol)

# KIE's model catalogue (kie-models agent skill, docs.kie.ai/ai-agent "Install kie-models" and
# supercode.sh/en/skills/kie.ai/kie-models, read 2026-12-02): GET /api/v1/models lists every live model,
# /api/v1/models/{model}/schema|price|success-rate describe one. The four share ONE budget of 1 request per second
# per account (over it: code 429 in the body); the skill advises spacing them at least 1.1 s apart.
MODELS_PATH = "/api/v1/models"
CATALOG_SPACING_SECONDS = 1.1
# KIE's public price feed (the one behind https://kie.ai/pricing): no key, POST {pageNum, pageSize <= 100} on the
# API host, the usual envelope with data.records[], total, pages. Seen answering code 4030 "Not supported in the
# current region." in some regions (public captures 2026-09-24..2026-09-30, see catalog/live.py).
PRICE_FEED_PATH = "/client/v1/model-pricing/page"
PRICE_FEED_MAX_PAGE_SIZE = 100
# The longest API answer read (after decompression). KIE's largest answers (its model list, a model's OpenAPI schema,
# a 100-row page of the price feed) are well under a megabyte; a longer body is garbage from a broken or hostile
# upstream (or a compression bomb) and is never held whole in memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
CONNECT_SECONDS = 10.0  # how long connecting (and TLS) may take, for every client
# How long a whole exchange may take (``_answer``). The client's timeout bounds each read only, so a body trickled a
# byte at a time would hold a call for ever; past this it is a timeout like any other (a create's outcome unknown, a
# read's a network error to retry). An API call: this many read timeouts (90 s at the default 30 s); an upload: the
# 120 s its reads wait, plus the time its body takes to send at a slow uplink's rate (a 100 MB video: 400 s more).
ANSWER_READS = 3
UPLOAD_ANSWER_SECONDS = 120.0
SLOWEST_SEND_RATE = 256 * 1024  # bytes per second
# A request's body is handed to the connection in pieces this long, so that each write waits at most the client's
# timeout for one piece, and the deadline above is the bound of the whole: sent whole, a 40 MB upload at 256 KiB/s
# met the 120 s write timeout, though its deadline allowed 280 s.
SEND_PIECE = 64 * 1024
# How long past its answer's deadline (``ANSWER_READS`` reads) a slot in KIE's windows may stay held before other
# processes on the key stop counting it (``SharedBudget``): a create's turn is taken before its attempt is journaled.
HELD_PAST_DEADLINE = 60.0
# KIE's create window: 20 creates in any 10 s (docs.kie.ai), each slot held a tenth longer (``SlidingWindow.margin``).
CREATE_LIMIT, CREATE_WINDOW = 20, 10.0
# A connection of its own for each request, closed after its answer (no connection is kept for another request):
# for every request whose answer spends or saves (a create, an upload whose link goes into a paid create, a fresh
# link to a result, a result file). Bytes an upstream sends past an answer's Content-Length (a broken proxy, a
# hostile or buggy host) stay with a kept-alive connection (httpcore2 keeps what h11 read beyond the answer when the
# connection goes back to its pool), and the next request sent on it reads them as its own answer: a create took
# another answer's task id for the task KIE made and charged (that task lost), a result was saved from the bytes
# sent after another file. A new connection costs a handshake, nothing to what these requests cost; status and
# balance reads, the most frequent by far, keep their connection (an answer about another task, or a balance that
# is not a number, is refused anyway).
ONE_USE = httpx2.Limits(max_connections=100, max_keepalive_connections=0)  # 100: httpx2's default


def longest_create(timeout: float = 30.0, backoff: float = 10.0, resends: int = 3) -> float:
    """The longest one create takes from its attempt's start (``Journal.begin_attempt``) to its last answer (its line
    in the call log), with the client's ``timeout`` for a read, ``backoff`` and ``resends`` after a 429: every send
    waits up to its answer's deadline (``ANSWER_READS`` reads), and before each resend the window pauses until its
    edge (or ``backoff``) and the resend then waits for a turn, which a window full of creates in flight gives once
    the first of them is answered and has left it."""
    answer = ANSWER_READS * timeout
    in_window = CREATE_WINDOW * 1.1
    return (resends + 1) * answer + resends * (max(backoff, in_window) + answer + in_window)


LONGEST_CREATE = longest_create()  # at the default settings: 696 s


_SSL_LOCK = threading.Lock()


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    return httpx2.create_ssl_context()


def shared_ssl_context() -> ssl.SSLContext:
    """The one TLS context of this process, built on first use exactly as httpx2 builds its default
    (``httpx2.create_ssl_context()``: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, else the system's trust store,
    via truststore on macOS and Windows). Loading the CA bundle costs tens of milliseconds: once, not per client."""
    with _SSL_LOCK:
        return _default_ssl_context()


class Resend(Protocol):
    """What a create's sender keeps of a create KIE refused with 429 while it waits to send it again (the journal:
    ``generation``), told by ``KieClient.create``."""

    async def refused(self) -> None:
        """KIE refused the create with 429 (not counted, not charged): it waits for the window's edge, not sent."""

    async def again(self) -> str | None:
        """The create is about to be sent again, in its turn: None once that is recorded; else why it could not be,
        and it is not sent."""


class UploadedFile(BaseModel, defer_build=True):
    url: str
    file_name: str
    size: int | None = None
    mime_type: str | None = None
    # How long KIE keeps it, when its answer says (``expiresAt`` less its upload time, both by KIE's clock); None
    # when it does not (the 2026 answer has no ``expiresAt``).
    kept_seconds: float | None = None


# How long an id every family said it has no task of is answered so without asking again (``find_task``), and how
# many such ids are kept: a task KIE makes elsewhere (its site) is asked for again a minute on.
UNKNOWN_ID_SECONDS = 60.0
UNKNOWN_IDS_KEPT = 1000


MAX_MODEL_PAGES = 20  # pages of KIE's model list followed at most (each a paced catalogue lookup)


class ModelListIncomplete(KieError):
    """KIE's model list gave fewer models than its ``total`` counts: never taken as the whole catalogue."""


class KieClient:
    clients_built: ClassVar[int] = 0  # HTTP clients built by every KieClient of this process (start-up builds none)

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        upload_base_url: str,
        timeout: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        rate_limit_backoff: float = 10.0,
        max_rate_limit_retries: int = 3,
        create_window: SlidingWindow | None = None,
        poll_window: SlidingWindow | None = None,
        call_log: CallLog | None = None,
        catalog_window: SlidingWindow | None = None,
        share_pacing: bool = False,
        key_origin: str = "",
    ) -> None:
        """``share_pacing``: KIE's windows (creates, status reads, catalogue lookups) are shared with every kie-mcp
        process of this machine using this key at ``base_url`` (``SharedBudget``), not this client's alone; for a
        client that talks to KIE (or a simulator) over the network, never to the sandbox's simulator in process.
        ``key_origin``: where the key was written (``Settings.key_origin``), said with every refusal of it (401)."""
        register_secret(api_key)  # from now on no text or log line of this process shows the key
        auth = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"}
        reads = httpx2.Timeout(timeout, connect=CONNECT_SECONDS)
        slow = httpx2.Timeout(UPLOAD_ANSWER_SECONDS, connect=CONNECT_SECONDS)
        keyless = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        # The HTTP clients, each built on first use (start-up builds none; see ``_client``). A client for a plain
        # http address (a loopback one) never goes through a proxy (``_may_use_proxy``).
        api, uploads = _may_use_proxy(base_url), _may_use_proxy(upload_base_url)
        self._client_options: dict[str, dict[str, Any]] = {
            # The API host's reads (status, balance, the catalogue), on kept-alive connections.
            "api": {"base_url": base_url, "headers": auth, "timeout": reads, "trust_env": api},
            # The API host's creates and fresh result links, each on a connection of its own (``ONE_USE``).
            "once": {"base_url": base_url, "headers": auth, "timeout": reads, "trust_env": api, "limits": ONE_USE},
            "uploads": {
                "base_url": upload_base_url,
                "headers": auth,
                "timeout": slow,
                "trust_env": uploads,
                "limits": ONE_USE,
            },
            # Result files live on third-party CDNs: they never see the key. They are fetched directly, never through
            # a proxy the environment names: each address is judged public before it is connected to (the transport
            # ``media.addresses`` gives this client), which a proxy would hide.
            "files": {
                "headers": {"User-Agent": USER_AGENT},
                "timeout": slow,
                "follow_redirects": True,
                "limits": ONE_USE,
            },
            # The public price feed needs no key, so it never gets one: a keyless client for the same API host.
            "public": {"base_url": base_url, "headers": keyless, "timeout": reads, "trust_env": api},
        }
        # How long each client's whole exchange may take, besides the time its body takes to send (``_answer``).
        within = ANSWER_READS * timeout
        self._answer_within = {"api": within, "once": within, "public": within}
        self._answer_within["uploads"] = UPLOAD_ANSWER_SECONDS
        self._transport = transport
        self.upload_base_url = upload_base_url  # where inputs are uploaded: an earlier upload is reused only there
        self._clients: dict[str, httpx2.AsyncClient] = {}
        self._closed = False
        self._finding: anyio.Lock | None = None  # one lookup of an id of no known family at a time (``find_task``)
        self._unknown: dict[str, tuple[float, KieError]] = {}  # ids every family just said it has no task of
        self.rate_limit_backoff = rate_limit_backoff
        self.max_rate_limit_retries = max_rate_limit_retries
        self.call_log = call_log
        self._wrong_key = wrong_key_step(key_origin)  # a 401's advice: where the key came from, to fix it there
        held = ANSWER_READS * timeout + HELD_PAST_DEADLINE
        shared = SharedBudget(api_key, base_url, held_at_most=held) if share_pacing else None
        self._creates = create_window or SlidingWindow(CREATE_LIMIT, CREATE_WINDOW, shared=shared, name="create")
        self._polls = poll_window or SlidingWindow(10, 1.0, shared=shared, name="status")
        # The model-catalogue lookups share one budget of about 1 request/second per account.
        self._catalog = catalog_window or SlidingWindow(1, CATALOG_SPACING_SECONDS, shared=shared, name="catalogue")

    def _client(self, name: str) -> httpx2.AsyncClient:
        """The HTTP client for ``name``, built the first time it is needed. Without a test transport every client
        verifies TLS with the one SSL context of the process (``shared_ssl_context``), and the one for result files
        connects only to public addresses (``addresses.public_transport``)."""
        client = self._clients.get(name)
        if client is None:
            if self._closed:
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            _refuse_key_in_the_clear(name, self._client_options[name], tested=self._transport is not None)
            verify = shared_ssl_context() if self._transport is None else True
            transport = self._transport
            if transport is None and name == "files":  # URLs from outside: connected to only where judged public
                from kie_mcp.media.addresses import public_transport

                transport = public_transport(verify, limits=ONE_USE)
            client = httpx2.AsyncClient(**self._client_options[name], transport=transport, verify=verify)
            self._clients[name] = client
            KieClient.clients_built += 1
        return client

    @property
    def _api(self) -> httpx2.AsyncClient:
        return self._client("api")

    @property
    def _uploads(self) -> httpx2.AsyncClient:
        return self._client("uploads")

    @property
    def files(self) -> httpx2.AsyncClient:
        """The client for result files on third-party CDNs: it never carries the key."""
        return self._client("files")

    @property
    def _public(self) -> httpx2.AsyncClient:
        return self._client("public")

    def built_clients(self) -> tuple[str, ...]:
        """The HTTP clients built so far (``api``, ``once``, ``uploads``, ``files``, ``public``), in the order they
        were."""
        return tuple(self._clients)

    async def aclose(self) -> None:
        self._closed = True
        for client in list(self._clients.values()):
            await client.aclose()

    async def __aenter__(self) -> KieClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- spending ---------------------------------------------------------------------------

    async def create_turn(
        self, family: Family, model_id: str, approval: Approval, given_up: anyio.Event
    ) -> Slot | None:
        """Wait for one create's turn in KIE's create window (its slot, to hand to ``create``), unless ``given_up``
        is set first (its call was cut off, the server is stopping): then None, and the call log says it was not
        sent."""
        slot = await self._creates.hold_unless(given_up)
        if slot is None:
            self._log(
                family.create_path,
                time.monotonic(),
                model=model_id,
                credits_quoted=approval.credits_each,
                credits_reserved=approval.reserved_each,
                outcome="not sent",
                error=GAVE_UP,
            )
        return slot

    async def create(
        self,
        family: Family,
        model_id: str,
        body: dict[str, Any],
        approval: Approval,
        *,
        slot: Slot | None = None,
        given_up: anyio.Event | None = None,
        attempt: str | None = None,
        still_wanted: Callable[[], bool] | None = None,
        resend: Resend | None = None,
    ) -> str:
        """Send one approved create of ``model_id`` and return KIE's task id. A refusal that names a task KIE
        already has (a repeated Veo 4K request) raises ``ExistingTaskError``: nothing new was started or charged.
        ``slot``: its turn in the create window, taken already (``create_turn``); ``given_up``: set when a resend
        after a 429 should no longer wait for its turn (``NotSentError`` then); ``still_wanted``: asked right before
        each resend after a 429, False when the caller no longer wants it sent (the spend gate's say: the person
        declined it meanwhile), which raises ``NotSentError`` (``withdrawn``) unsent; ``attempt``: the journal's id
        of this create, written in each of its call-log lines, so that a restart finds its answer there by it;
        ``resend``: told of each 429 before the wait for the window's edge (``Resend.refused``), and asked right before
        each resend, in its turn (``Resend.again``: False sends nothing, ``NotSentError``)."""
        approval.use_one(model_id)
        reserved = approval.reserved_each
        return await self._send_create(
            family.create_path,
            body,
            model_id,
            approval.credits_each,
            family,
            reserved=reserved,
            turn=slot,
            given_up=given_up,
            attempt=attempt,
            still_wanted=still_wanted,
            resend=resend,
        )

    async def _send_create(
        self,
        path: str,
        body: dict[str, Any],
        model: str,
        quoted: float | None,
        family: Family | None = None,
        *,
        reserved: float | None = None,
        turn: Slot | None = None,
        given_up: anyio.Event | None = None,
        attempt: str | None = None,
        still_wanted: Callable[[], bool] | None = None,
        resend: Resend | None = None,
    ) -> str:
        """Send one create, inside KIE's 20-per-10-s window as KIE counts it: on arrival (see ``SlidingWindow``).
        Each of its call-log lines names ``attempt`` (the journal's id of it).

        Each attempt holds a slot of the create window from before it is sent until its answer; the slot then
        stays in the window for its margin and the window's length. A create that was never sent, or that KIE
        refused with 429 (documented as refused, not counted and not charged), frees its slot at once. After a 429
        the window pauses until its edge (the moment its oldest answered create leaves it) and the create is sent
        again then; only a 429 is ever retried, and that resend gives up its wait once ``given_up`` is set, and is
        not sent when ``still_wanted`` says no once its turn came, nor when ``resend`` cannot record it being sent
        again (``Resend``: the journal knows a create waiting after a 429 as not sent).
        """
        for send in range(self.max_rate_limit_retries + 1):
            # the first send may come with its turn taken; a resend after a 429 waits for a turn of its own (the
            # window's edge), which a cancel or a stop gives up (``given_up``)
            taken = turn if send == 0 else None
            logged = {"model": model, "credits_quoted": quoted, "credits_reserved": reserved, "attempt": attempt}
            async with self._turn(taken, given_up, path, logged) as slot:  # left unsettled: counted
                started = time.monotonic()
                log_call = functools.partial(self._log, path, started, **logged)
                if send and still_wanted is not None and not still_wanted():  # withdrawn while it waited: unsent
                    slot.not_counted()
                    log_call(outcome="not sent", error=NOT_WANTED)
                    raise NotSentError(
                        f"KIE refused it for too many creates at once (429, not counted, not charged) and {NOT_WANTED}",
                        endpoint=path,
                        withdrawn=True,
                    ).with_next_step("Nothing was created or charged.")
                if send and resend is not None and (why := await resend.again()) is not None:  # unrecorded: unsent
                    slot.not_counted()
                    log_call(outcome="not sent", error=why)
                    raise NotSentError(
                        f"KIE refused it for too many creates at once (429, not counted, not charged) and {why}",
                        endpoint=path,
                    ).with_next_step("Nothing was created or charged. Ask for it again.")
                method = "GET" if family is not None and family.create_method == "GET" else "POST"  # Veo's 1080p
                try:  # on a connection of its own: never an answer another request left on a kept one
                    within, once = self._answer_within["once"], self._client("once")
                    if method == "GET":
                        response = await _answer(once, "GET", path, within=within, params=body)
                    else:
                        response = await _answer(once, "POST", path, within=within, json=body)
                except UnreadableAnswer as exc:
                    log_call(outcome="unknown", error=str(exc))
                    raise OutcomeUnknownError(str(exc), endpoint=path, category=Category.PROTOCOL) from exc
                except _NOT_SENT as exc:
                    slot.not_counted()  # nothing left this machine: KIE cannot have counted it
                    log_call(outcome="not sent", error=type(exc).__name__)
                    raise NotSentError(f"could not connect to KIE ({type(exc).__name__})", endpoint=path) from exc
                except httpx2.TransportError as exc:
                    log.warning("create %s: no answer after sending (%s)", path, type(exc).__name__)
                    log_call(outcome="unknown", error=type(exc).__name__)
                    raise OutcomeUnknownError(
                        f"{_what_timed_out(exc)} {exc}, so whether the task was created is unknown"
                        if isinstance(exc, AnswerTimeout)
                        else f"the connection failed after the request was sent ({type(exc).__name__})",
                        endpoint=path,
                    ) from exc
                log.info("%s %s -> HTTP %s in %.2fs", method, path, response.status_code, time.monotonic() - started)
                try:
                    data = read_envelope(response, path)
                except RedirectedError as err:  # never followed: the key would go with it
                    named = named_task_id(_data(response))
                    if err.http_status in NOT_ACTED_REDIRECTS and not named and not _kies_envelope(response):
                        log_call(outcome="refused", code=err.http_status, error=err.message)
                        raise err.with_next_step(
                            f"The request was redirected (HTTP {err.http_status}) before KIE's API acted on it, so "
                            f"nothing was created or charged. {err.next_step}"
                        ) from err
                    # 302 and 303 after a POST: usually "acted on, see the answer there"; a body of KIE's own (a
                    # front passing KIE's answer on under a redirect): KIE's API read the request, and may have
                    # created and charged the task
                    log_call(outcome="unknown", task_id=named, code=err.http_status, error=err.message)
                    raise OutcomeUnknownError(
                        f"KIE answered with {err.message}"
                        + (f", naming task {named}" if named else "")
                        + ": the request may have been acted on",
                        endpoint=path,
                        next_step=f"{_named_but_unknown(named) if named else UNKNOWN_OUTCOME_STEP} {err.next_step}",
                        category=Category.PROTOCOL,
                    ) from err
                except KieError as err:
                    if err.category is Category.PROTOCOL and refused_before_api(err.http_status):
                        log_call(outcome="refused", code=err.http_status, error=err.message)
                        raise _refused_page(err) from err  # HTTP 4xx before the API: nothing was created
                    if err.category is Category.PROTOCOL:
                        log_call(outcome="unknown", code=err.http_status, error=err.message)
                        raise OutcomeUnknownError(
                            f"KIE's answer could not be read ({err.message})", endpoint=path, category=Category.PROTOCOL
                        ) from err
                    if _may_have_created(err):
                        named = named_task_id(_data(response))  # an error answer may still name the task it made
                        log_call(outcome="unknown", task_id=named, code=err.code, error=err.message)
                        server = (err.code or 0) >= 500 or (err.http_status or 0) >= 500
                        what = "a server error" if server else "an undocumented code"
                        raise OutcomeUnknownError(
                            f"KIE answered with {what} ({err.code}: {err.message})"
                            + (f" naming task {named}" if named else "")
                            + ", which does not say whether the task was created",
                            endpoint=path,
                            next_step=_named_but_unknown(named) if named else None,
                            category=Category.SERVER if server else Category.PROTOCOL,
                        ) from err
                    named = family.refused_but_exists(err.code, err.message, _data(response), body) if family else None
                    if named is not None and named.charged:  # e.g. Veo 1080p "processing": started, ask again later
                        log_call(outcome="created", task_id=named.task_id, code=err.code)
                        return named.task_id
                    if named is not None:
                        log_call(outcome="existing", task_id=named.task_id, code=err.code, error=err.message)
                        raise ExistingTaskError(
                            named.task_id, err.message, endpoint=path, result_urls=named.result_urls
                        ) from err
                    log_call(outcome="refused", code=err.code, error=err.message)
                    if err.code != 429:
                        step = family.refusal_step(err.code, err.message, body) if family else None
                        if step is None and err.code == 404:  # a create names no task: the endpoint or model
                            step = CREATE_NOT_FOUND
                        if step is None and err.code == 401:
                            step = self._wrong_key
                        if step is None:
                            raise
                        raise err.with_next_step(step) from err
                    pause = slot.rate_limited(self.rate_limit_backoff)
                    if send >= self.max_rate_limit_retries:
                        raise
                    log.warning(
                        "create refused with 429 (not counted, not charged); sending it again in %.1fs, when the "
                        "oldest create leaves KIE's window",
                        pause,
                    )
                    if resend is not None:  # not sent, for now: a stop during the wait leaves nothing KIE may have
                        await resend.refused()
                    continue
                task_id = family.created_id(data, body) if family is not None else named_task_id(data)
                if not task_id:
                    message, step = (
                        family.unnamed(data, body) if family else ("KIE said success but returned no task id", None)
                    )
                    log_call(outcome="unknown", error=message)
                    raise OutcomeUnknownError(message, endpoint=path, next_step=step, category=Category.PROTOCOL)
                log_call(outcome="created", task_id=task_id)
                return task_id
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def _turn(
        self,
        taken: Slot | None,
        given_up: anyio.Event | None,
        path: str,
        logged: dict[str, Any],
    ) -> AsyncIterator[Slot]:
        """A create's slot in the window (``taken`` already, or waited for now, given up once ``given_up`` is set:
        ``NotSentError``, in the call log with what ``logged`` names), settled as answered on leaving unless it was
        settled otherwise."""
        slot = taken
        if slot is None and given_up is not None:
            slot = await self._creates.hold_unless(given_up)
            if slot is None:
                self._log(path, time.monotonic(), **logged, outcome="not sent", error=GAVE_UP)
                raise NotSentError(
                    f"KIE refused it for too many creates at once (429, not counted, not charged) and {GAVE_UP}",
                    endpoint=path,
                ).with_next_step("Nothing was created or charged. Ask for it again.")
        if slot is None:
            slot = await self._creates.hold()
        try:
            yield slot
        finally:
            slot.answered()

    def _log(self, endpoint: str, started: float, **entry: Any) -> None:
        if self.call_log is not None:
            self.call_log.write(endpoint=endpoint, latency_ms=round((time.monotonic() - started) * 1000, 1), **entry)

    # -- reading ----------------------------------------------------------------------------

    async def status(self, family: Family, task_id: str) -> TaskStatus:
        """KIE's word on ``task_id``. An answer naming another task is refused (a protocol error, retried like an
        unreadable answer): taking it would give this task another's state, results and charge."""
        asked = family.status_params(task_id)
        try:
            data = await self._get(family.status_path, asked, paced=True)
        except KieError as err:  # some non-200 answers mean "not yet" (Veo 1080p being prepared)
            waiting = family.status_from_error(task_id, err.message)
            if waiting is not None:
                return waiting
            failed = _failure_in_error(family, task_id, asked, err)
            if failed is None:
                raise
            return failed
        if not isinstance(data, dict):  # "success" without a record: nothing, asked again; or Runway's "no such task"
            raise NoTaskRecord(task_id, family.status_path, unknown=family.null_record_unknown)
        named, wanted = data.get("taskId"), asked.get("taskId")
        if named not in (None, "") and str(named) != str(wanted):
            raise KieError(
                f"KIE answered a status check of task {wanted} about another task ({as_text(named, limit=80)})",
                category=Category.PROTOCOL,
                retryable=True,
                next_step="Nothing from that answer was taken. Reads are safe to repeat; kie-mcp asks again.",
                endpoint=family.status_path,
            )
        return _read_status(family, task_id, data)

    async def find_task(
        self, task_id: str, family: str | None = None, seen: Mapping[str, int] | None = None
    ) -> TaskStatus:
        """Status of any task id; without a known family, ask each family in turn, those whose ids have its shape
        first, then those the journal holds most tasks of (``seen``, ``family_for_task_id``), stopping at the first
        that knows it: one such lookup at a time, and an id every family said it has no task of is not asked again
        for ``UNKNOWN_ID_SECONDS``. An agent naming hundreds of made-up ids (a read, a subscription, check_task each)
        took six status calls each, all at once, and the following of the workspace's own tasks waited behind them in
        KIE's 10-a-second window."""
        candidates = [FAMILIES[family]] if family else family_for_task_id(task_id, seen)
        if len(candidates) == 1:
            return await self._find_in(candidates, task_id)
        if self._finding is None:
            self._finding = anyio.Lock()
        async with self._finding:
            now = time.monotonic()
            self._unknown = {k: v for k, v in self._unknown.items() if v[0] > now}
            if (known := self._unknown.get(task_id)) is not None:
                raise known[1].with_traceback(None)
            try:
                return await self._find_in(candidates, task_id)
            except KieError as err:
                unknown = err.code in (404, 422) or isinstance(err, NoTaskRecord) or err.category == Category.NOT_FOUND
                if unknown and len(self._unknown) < UNKNOWN_IDS_KEPT:
                    self._unknown[task_id] = (time.monotonic() + UNKNOWN_ID_SECONDS, err)
                raise

    async def _find_in(self, candidates: list[Family], task_id: str) -> TaskStatus:
        last: KieError | None = None
        for candidate in candidates:
            try:
                return await self.status(candidate, task_id)
            except KieError as err:
                unknown_here = err.code in (404, 422) or isinstance(err, NoTaskRecord)
                if not unknown_here and not candidate.is_not_visible(err.message):
                    raise
                last = err
        assert last is not None
        raise last

    async def credits(self) -> float:
        """The account balance in credits. Anything but a finite number (NaN, Infinity, true, text) is refused:
        a spend must never be weighed against a balance that is not one."""
        import math

        data = await self._get("/api/v1/chat/credit", None)
        try:
            balance = float(data) if not isinstance(data, bool) else math.nan
        except (TypeError, ValueError, OverflowError):
            balance = math.nan
        if not math.isfinite(balance):
            shown = as_text(data, limit=200)  # as KIE sent it: null, not Python's None
            raise KieError(
                f"KIE reported a balance that is not a number ({shown}); nothing was spent",
                category=Category.PROTOCOL,
                next_step="Check the balance at https://kie.ai and try again in a minute; if KIE keeps answering "
                "this way, its credit endpoint is misbehaving.",
                endpoint="/api/v1/chat/credit",
            ) from None
        return balance

    async def download_url(self, url: str) -> str:
        """A fresh link to the result file ``url`` names (KIE's links expire), asked on a connection of its own
        (``ONE_USE``): the file saved from it is the task's. Read as a result link is (``result_link``)."""
        data = await self._call("once", "POST", "/api/v1/common/download-url", json={"url": url})
        link = result_link(data)
        if link is None:
            raise KieError("download-url returned no link", category=Category.PROTOCOL)
        return link

    # -- the model catalogue (read only, paced) ----------------------------------------------

    async def list_models(
        self, task_type: str | list[str] | None = None, provider: str | None = None, q: str | None = None
    ) -> list[dict[str, Any]]:
        """KIE's live model list: ``[{model, slug, title, provider, taskType: [...], description, pricingDesc}]``.

        ``data`` is ``{total, models: [...]}``; filters that match nothing give an empty list, never an error.
        Several ``task_type`` values are sent comma-separated, as KIE takes them. A list that counts more models
        (``total``) than it gave is followed page by page (``pageNum``, each page a paced catalogue lookup, at most
        ``MAX_MODEL_PAGES``); still short of its ``total`` after that, it raises ``ModelListIncomplete``. A ``total``
        sent as digits (``"143"``) or a whole float (``143.0``) is that number; a negative or unreadable one is
        unknown, and then a paged answer (``pageSize``/``pageNum``) whose page is full is followed too, until a page
        comes empty or adds nothing (still full after ``MAX_MODEL_PAGES``: ``ModelListIncomplete``).
        """
        params: dict[str, str] = {}
        if task_type:
            params["taskType"] = ",".join(task_type) if isinstance(task_type, list) else task_type
        if provider:
            params["provider"] = provider
        if q:
            params["q"] = q
        rows: dict[str, dict[str, Any]] = {}
        total: int | None = None
        page_size: int | None = None  # a paged answer's (``pageSize``/``pageNum``): a full page asks for the next
        full = False
        for page in range(1, MAX_MODEL_PAGES + 1):
            # Page 1 is asked as KIE documents the list (no paging); a later page only when KIE said it pages it
            asked = {**params, "pageNum": str(page)} if page > 1 else params
            data = await self._catalog_get(MODELS_PATH, asked or None)
            models = data.get("models") if isinstance(data, dict) else data
            if not isinstance(models, list):
                raise KieError("KIE's model list had no models array", category=Category.PROTOCOL, endpoint=MODELS_PATH)
            before = len(rows)
            for m in models:
                name = m.get("model") or m.get("slug") if isinstance(m, dict) else None
                if isinstance(name, str):
                    rows.setdefault(name, m)
            counted = _count(data.get("total")) if isinstance(data, dict) else None
            if counted is not None:
                total = counted
            if page == 1 and isinstance(data, dict) and ("pageSize" in data or "pageNum" in data):
                page_size = _count(data.get("pageSize")) or len(models)  # the first page's rows: a full page
            full = page_size is not None and page_size > 0 and len(models) >= page_size
            if len(rows) == before or (total is not None and len(rows) >= total):
                full = False
                break  # all of it, or a page that added nothing (KIE ignores pageNum, or the list ended early)
            if total is None and not full:
                break  # no total to go by, and not a full page of a paged list: the last page
        if total is None and full:  # still full pages after the last one asked: more may follow
            raise ModelListIncomplete(
                f"KIE's list looks incomplete: it still gave full pages after {MAX_MODEL_PAGES} pages "
                f"({len(rows)} models)",
                category=Category.PROTOCOL,
                retryable=True,
                endpoint=MODELS_PATH,
            )
        if total is not None and len(rows) < total:
            raise ModelListIncomplete(
                f"KIE's list looks incomplete: it gave {len(rows)} of the {total} models it counts",
                category=Category.PROTOCOL,
                retryable=True,
                endpoint=MODELS_PATH,
            )
        return list(rows.values())

    async def model_schema(self, model_id: str) -> dict[str, Any] | None:
        """The model's OpenAPI 3.1 document (``data.openapi``), or None while KIE has not synced it (``null``)."""
        path = f"{_model_path(model_id)}/schema"
        data = await self._catalog_get(path, None)
        if not isinstance(data, dict):
            raise KieError("KIE's schema answer had no data", category=Category.PROTOCOL, endpoint=path)
        document = data.get("openapi")
        if isinstance(document, str):  # documented as an inline object; tolerate JSON text (cleaned once read)
            document = clean(loads_or_none(document))
        return document if isinstance(document, dict) else None

    async def model_price(self, model_id: str) -> str | None:
        """The model's ``pricingDesc``: prose that matches what KIE bills (the same text as the model list)."""
        path = f"{_model_path(model_id)}/price"
        data = await self._catalog_get(path, None)
        text = data.get("pricingDesc") if isinstance(data, dict) else None
        return text if isinstance(text, str) else None

    async def model_success_rate(self, model_id: str) -> list[dict[str, Any]]:
        """The last 24 h as 10-minute buckets (at most 144): ``{start, end, successRate, errorRate, isNormal}``.

        ``successRate`` is a percentage, ``null`` in a bucket without traffic; an empty list means no monitoring
        data, not zero success.
        """
        path = f"{_model_path(model_id)}/success-rate"
        data = await self._catalog_get(path, None)
        points = data.get("points") if isinstance(data, dict) else None
        return [p for p in points if isinstance(p, dict)] if isinstance(points, list) else []

    async def price_feed_page(self, page_num: int, page_size: int = PRICE_FEED_MAX_PAGE_SIZE) -> dict[str, Any]:
        """One page of KIE's public price feed, fetched WITHOUT the key: ``{records: [...], total, pages}``.

        Each record: ``modelDescription`` ("gpt image 2, text-to-image, 4k"), ``interfaceType``, ``provider``,
        ``creditPrice`` and ``usdPrice`` (numbers as text), ``creditUnit`` ("per image", "per second", ...),
        ``anchor`` (the model's page, often with ``?model=<id>``). A region where KIE does not serve it answers a
        non-200 code (seen: 4030), raised as ``KieError`` like any other.
        """
        size = max(1, min(int(page_size), PRICE_FEED_MAX_PAGE_SIZE))
        body = {"pageNum": max(1, int(page_num)), "pageSize": size}
        data = await self._call("public", "POST", PRICE_FEED_PATH, json=body)
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise KieError("KIE's price feed had no records", category=Category.PROTOCOL, endpoint=PRICE_FEED_PATH)
        return {
            "records": [r for r in data["records"] if isinstance(r, dict)],
            "total": int_or_none(data.get("total")),
            "pages": int_or_none(data.get("pages")),
        }

    async def _catalog_get(self, path: str, params: dict[str, Any] | None) -> Any:
        """A catalogue lookup inside the shared ~1/s budget, its place held from before it is sent until its answer
        (and ``CATALOG_SPACING_SECONDS`` plus the window's margin after): KIE counts a lookup when it arrives, and
        a slot stamped when it was granted let a busy machine's jitter bring two arrivals closer than a second (a
        429). A 429 (not counted by KIE) frees the place, waits for the window's edge and tries again."""
        for attempt in range(3):
            async with self._catalog.occupied() as slot:
                try:
                    return await self._call("api", "GET", path, params=params)
                except KieError as err:
                    if err.code != 429 or attempt == 2:
                        raise
                    slot.rate_limited(min(self.rate_limit_backoff, 2.0))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- uploads ----------------------------------------------------------------------------

    async def upload_file(
        self, content: bytes, file_name: str, upload_path: str = "kie-mcp", mime: str | None = None
    ) -> UploadedFile:
        """Upload a file's bytes as a multipart stream (the bytes read and checked, never a file opened again by
        name). ``mime``: their real type (sniffed from the bytes); otherwise guessed from the name."""
        mime = mime or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        files = {"file": (file_name, content, mime)}
        return await self._upload(
            "/api/file-stream-upload", file_name, files=files, data={"uploadPath": upload_path, "fileName": file_name}
        )

    async def upload_from_url(
        self, url: str, upload_path: str = "kie-mcp", file_name: str | None = None
    ) -> UploadedFile:
        body: dict[str, Any] = {"fileUrl": url, "uploadPath": upload_path}
        if file_name:
            body["fileName"] = file_name
        return await self._upload("/api/file-url-upload", file_name or url.rsplit("/", 1)[-1], json=body)

    async def upload_bytes(
        self, content: bytes, file_name: str, upload_path: str = "kie-mcp", mime: str | None = None
    ) -> UploadedFile:
        """Upload bytes as base64. ``mime``: their real type; otherwise guessed from the name."""
        mime = mime or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        payload = f"data:{mime};base64,{base64.b64encode(content).decode()}"
        body = {"base64Data": payload, "uploadPath": upload_path, "fileName": file_name}
        return await self._upload("/api/file-base64-upload", file_name, json=body)

    # -- plumbing ---------------------------------------------------------------------------

    async def _get(self, path: str, params: dict[str, Any] | None, *, paced: bool = False) -> Any:
        if paced:  # a status read holds its slot from before it is sent until its answer (see SlidingWindow)
            async with self._polls.occupied():
                return await self._call("api", "GET", path, params=params)
        return await self._call("api", "GET", path, params=params)

    async def _upload(self, path: str, fallback_name: str, **kwargs: Any) -> UploadedFile:
        """One upload to KIE's upload host (``KIE_UPLOAD_BASE_URL``), and its answer read; a failure says so in
        words for an upload (``_upload_failed``)."""
        try:
            return _uploaded(await self._call("uploads", "POST", path, **kwargs), fallback_name)
        except KieError as err:
            raise _upload_failed(err) from err

    async def _call(self, name: str, method: str, path: str, **kwargs: Any) -> Any:
        """A call that creates nothing, on the HTTP client ``name``: safe to report as a plain, retryable network
        failure."""
        started = time.monotonic()
        params = kwargs.get("params") or {}
        task_id = params.get("taskId") if isinstance(params, dict) else None
        try:
            response = await _answer(self._client(name), method, path, within=self._answer_within[name], **kwargs)
        except UnreadableAnswer as exc:
            self._log(path, started, task_id=task_id, outcome="error", error=str(exc))
            raise KieError(
                str(exc),
                category=Category.PROTOCOL,
                retryable=True,
                next_step="KIE's answer could not be read. Reads are safe to repeat; try again shortly.",
                endpoint=path,
            ) from exc
        except TooSlowToSend as exc:
            self._log(path, started, task_id=task_id, outcome="network error", error=str(exc))
            raise KieError(
                f"the request {exc}",
                category=Category.NETWORK,
                retryable=False,  # the same connection is as slow the next time
                next_step="This connection sends too slowly for a request this large. Try again on a faster "
                "connection, or with a smaller file (or a public link to it, passed in place of the file).",
                endpoint=path,
            ) from exc
        except httpx2.TransportError as exc:
            self._log(path, started, task_id=task_id, outcome="network error", error=type(exc).__name__)
            raise KieError(
                f"network error talking to KIE ({exc if isinstance(exc, AnswerTimeout) else type(exc).__name__})",
                category=Category.NETWORK,
                retryable=True,
                next_step="Check the network connection and KIE_BASE_URL, then try again.",
                endpoint=path,
            ) from exc
        log.debug("%s %s -> HTTP %s in %.2fs", method, path, response.status_code, time.monotonic() - started)
        try:
            data = read_envelope(response, path)
        except KieError as err:
            self._log(path, started, task_id=task_id, outcome="error", code=err.code, error=err.message)
            if err.code == 401:  # the key refused: said with where it came from
                raise err.with_next_step(self._wrong_key) from err
            raise
        details = data if isinstance(data, dict) else {}
        self._log(
            path,
            started,
            task_id=task_id,
            outcome="ok",
            state=_logged(details.get("state") or details.get("status") or details.get("successFlag")),
            credits_charged=_logged(details.get("creditsConsumed")),
        )
        return data


def _logged(value: Any) -> Any:
    """A value of KIE's answer as the call log keeps it: a number as it is, anything else as at most 80 characters
    of text (a status word of megabytes would otherwise be written whole at every look)."""
    if value is None or isinstance(value, int | float):
        return value
    return kept_text(value, 80)


class UnreadableAnswer(Exception):
    """An API answer longer than ``MAX_ANSWER_BYTES`` (reading stopped there) or whose compression is broken."""


class AnswerTimeout(httpx2.ReadTimeout):
    """An answer that did not come whole within its deadline (``_answer``), however steadily its bytes trickled in:
    a timeout, as when one read waits too long."""


async def _answer(
    client: httpx2.AsyncClient, method: str, path: str, *, within: float, **kwargs: Any
) -> httpx2.Response:
    """The answer to one request with its body read, decompressed, up to ``MAX_ANSWER_BYTES`` (``UnreadableAnswer``
    past that, the connection closed), so that no answer of KIE's, however long, is held whole in memory. A body
    whose compression is broken is ``UnreadableAnswer`` too. The whole exchange ends within a deadline (``within``
    seconds, and the time the body takes to send at ``SLOWEST_SEND_RATE``), past which it is ``AnswerTimeout``, the
    connection closed: each read waits at most the client's timeout, so an answer trickled a byte at a time would
    otherwise hold the call for ever. (A deadline met while connecting reads as a timeout after sending too: a create
    is then unknown, never taken for one not sent.)"""
    request = client.build_request(method, path, **kwargs)
    length = request.headers.get("content-length", "")
    size = int(length) if length.isdigit() else 0
    deadline = within + size / SLOWEST_SEND_RATE
    sending = request.stream = _InPieces(request.stream)
    chunks: list[bytes] = []
    with anyio.move_on_after(deadline) as timer:
        response = await client.send(request, stream=True)
        read = 0
        try:
            async for chunk in response.aiter_bytes():
                read += len(chunk)
                if read > MAX_ANSWER_BYTES:
                    raise UnreadableAnswer(
                        f"KIE's answer was longer than {MAX_ANSWER_BYTES // 1024**2} MiB (HTTP "
                        f"{response.status_code}), far longer than any answer of KIE's, and was not read"
                    )
                chunks.append(chunk)
        except httpx2.DecodingError as exc:
            raise UnreadableAnswer(
                f"KIE's answer could not be decompressed (HTTP {response.status_code}): {exc}"
            ) from exc
        finally:
            with anyio.CancelScope(shield=True):  # closed (not pooled half-read) also when the deadline cut it
                await response.aclose()
    if timer.cancelled_caught:
        log.warning("%s %s: no whole answer within %.3g s; given up", method, path, deadline)
        if sending.sent < size:  # the request itself was still being sent: the connection is too slow for it
            raise TooSlowToSend(size, sending.sent, deadline, request=request)
        raise AnswerTimeout(f"did not come whole within {deadline:.3g} s", request=request)
    headers = [
        (name, value) for name, value in response.headers.multi_items() if name.lower() not in _BODY_FRAMING
    ]  # the body below is already decoded and whole
    return httpx2.Response(response.status_code, headers=headers, content=b"".join(chunks), request=request)


_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class TooSlowToSend(AnswerTimeout):
    """A request whose body was not sent whole within its deadline (``_answer``): this connection sends too slowly
    for a body this long, which no retry soon will change."""

    def __init__(self, size: int, sent: int, deadline: float, *, request: httpx2.Request) -> None:
        super().__init__(
            f"was too slow to send {_megabytes(size)} within {deadline:.3g} s ({_megabytes(sent)} sent)",
            request=request,
        )


def _what_timed_out(exc: AnswerTimeout) -> str:
    return "the request" if isinstance(exc, TooSlowToSend) else "KIE's answer"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.3g} MB"


class _InPieces(httpx2.AsyncByteStream):
    """A request's body handed to the connection ``SEND_PIECE`` bytes at a time (httpx2 writes a body given as bytes,
    a multipart file's included, in one write, bounded by the write timeout), counting the bytes handed over."""

    def __init__(self, body: httpx2.AsyncByteStream) -> None:
        self._body = body
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:  # type: ignore[attr-defined]  # every body httpx2 builds is async iterable
            for start in range(0, len(chunk), SEND_PIECE):
                piece = chunk[start : start + SEND_PIECE]
                yield piece
                self.sent += len(piece)  # asked for the next piece: this one was written

    async def aclose(self) -> None:
        await self._body.aclose()


def _model_path(model_id: str) -> str:
    """``/api/v1/models/<id>`` with the id's slash NOT encoded (KIE: ``/api/v1/models/wan/v2-2-t2v/schema``);
    anything else unsafe is percent-encoded, and ids with empty or dot segments are refused."""
    parts = model_id.split("/")
    if not model_id or any(part in ("", ".", "..") for part in parts):
        raise KieError(f"not a KIE model id: {model_id!r}", category=Category.INPUT, retryable=False)
    return f"{MODELS_PATH}/{quote(model_id, safe='/')}"


class ExistingTaskError(KieError):
    """A create KIE refused because it already has that task (a repeated Veo 4K request): nothing new was started
    or charged, and ``task_id`` is the task it has. ``result_urls``: that task's links, when KIE's answer carries
    them and names no task to follow (a done 4K, ``<source id>-4k``): it has ended, and they are its results."""

    def __init__(
        self, task_id: str, message: str, *, endpoint: str | None = None, result_urls: tuple[str, ...] = ()
    ) -> None:
        super().__init__(
            message,
            code=422,
            next_step=f"KIE already has this task ({task_id}); follow it with check_task. Nothing new was charged.",
            endpoint=endpoint,
        )
        self.task_id = task_id
        self.result_urls = result_urls

    def refusal(self, family: Family, body: dict[str, Any]) -> KieError:
        """This answer as the plain refusal it is when its links cannot be the 4K (they are the clip's own): nothing
        was started or charged, and the advice says where the 4K is (``Family.refusal_step``)."""
        return KieError(
            self.message,
            code=self.code,
            endpoint=self.endpoint,
            next_step=family.refusal_step(self.code, self.message, body),
        )

    def status(self, family: Family) -> TaskStatus | None:
        """The finished task its links make, as a status answer would say it; None when it carries none."""
        if not self.result_urls:
            return None
        urls = list(self.result_urls)
        return TaskStatus(
            task_id=self.task_id, family=family.name, state=TaskState.SUCCEEDED, raw_state="existing", result_urls=urls
        )


class NoTaskRecord(KieError):
    """A status check KIE answered "success" with no task record (``data`` null or not an object): nothing to read,
    and no refusal either (no field to fix). Retried with backoff like any unreadable answer, and noted on the task;
    ``find_task`` asks the next family, as for a task this one does not know. ``unknown``: the family answers so for
    a task it does not know or does not show yet (``Family.null_record_unknown``: Runway, Aleph), so it is that
    answer, not retried as unreadable: the family's ``is_not_visible`` knows its words, and the poller waits for a
    young task and says an older one is unknown to KIE, as for another family's "record is null"."""

    def __init__(self, task_id: str, endpoint: str, *, unknown: bool = False) -> None:
        if unknown:  # said as KIE's answer: the record of a task KIE does not know quotes it
            super().__init__(
                f"success, with {NO_TASK_RECORD} (data null), for task {task_id}",
                category=Category.NOT_FOUND,
                retryable=False,
                next_step=f"The task may not show yet; otherwise {LOGS_URL} shows the tasks of the account whose key "
                "is set.",
                endpoint=endpoint,
            )
            return
        super().__init__(
            f"KIE answered a status check of task {task_id} with success but {NO_TASK_RECORD}",
            category=Category.PROTOCOL,
            retryable=True,
            next_step="Nothing was taken from that answer and nothing was changed on KIE. kie-mcp asks again, less "
            "often while KIE keeps answering this way; check_task asks at once. If it persists, see the task on "
            f"{LOGS_URL}.",
            endpoint=endpoint,
        )


def _refused_page(err: KieError) -> KieError:
    """A create answered HTTP 4xx (not 408, 409, 425 or 429) with a page that is not KIE's JSON: something between
    this machine and KIE's API (a proxy, VPN, firewall or CDN), or a server that is not KIE's API (KIE_BASE_URL
    pointing elsewhere), refused it before the API acted on it. Nothing was created or charged; not retried."""
    status = err.http_status
    too_large = (
        " HTTP 413, 414 and 431 say the request was too large for it: a shorter prompt, or large inputs passed as "
        "files or links, may get through."
        if status in (413, 414, 431)
        else ""
    )
    return KieError(
        err.message,
        category=Category.BLOCKED,
        retryable=False,
        next_step=f"The request was refused (HTTP {status}) before KIE's API acted on it, so nothing was created or "
        "charged. The likely cause is a proxy, VPN or firewall between this machine and KIE, or KIE_BASE_URL "
        "pointing somewhere other than KIE's API (leave it unset for https://api.kie.ai). Check those, then try "
        f"again.{too_large}",
        http_status=status,
        endpoint=err.endpoint,
    )


def _named_but_unknown(task_id: str) -> str:
    """What to do about a create whose error answer still named a task: look that task up (free), never resend."""
    return (
        f"KIE's answer named task {task_id}; check_task(task_id='{task_id}') shows whether it exists, and follows it "
        f"if it does. Do not submit the request again: it may have been created and charged ({LOGS_URL} lists every "
        "task)."
    )


def _may_use_proxy(base_url: str) -> bool:
    """Whether a client for ``base_url`` may go through a proxy the environment names (``HTTPS_PROXY``,
    ``ALL_PROXY``, the system's settings): over https, where a proxy only relays the encrypted connection. A plain
    http address is a loopback one (``config`` refuses any other where the key goes), which no proxy is needed to
    reach, and through a proxy every request, its Authorization header and the key with it, would go to the proxy
    in the clear: httpx2 takes a proxy from ``HTTP_PROXY`` for loopback addresses too, unless ``NO_PROXY`` names
    them. Such a client ignores the environment's proxies (and its other HTTP settings: ``trust_env``)."""
    return urlsplit(base_url.strip()).scheme.lower() != "http"


def _refuse_key_in_the_clear(name: str, options: dict[str, Any], *, tested: bool) -> None:
    """Refuse to build a client that would send the key over plain http to another machine (``config`` makes such a
    KIE_BASE_URL or KIE_UPLOAD_BASE_URL a broken setting; this holds for any other way a client is made). A test's
    transport (the in-process simulator) sends nothing over the network."""
    from kie_mcp.config import key_sent_in_the_clear

    if tested or "Authorization" not in options.get("headers", {}):
        return
    if key_sent_in_the_clear(str(options.get("base_url", ""))):
        raise RefusedHereError(
            f"{options['base_url']} is plain http to another machine, so the API key is not sent there",
            category=Category.BLOCKED,
            next_step=f"Nothing was sent. Set {'KIE_UPLOAD_BASE_URL' if name == 'uploads' else 'KIE_BASE_URL'} to an "
            "https address, or to a loopback one (http://127.0.0.1:<port>) for a proxy or simulator on this machine, "
            "and restart the server.",
        )


def _kies_envelope(response: httpx2.Response) -> bool:
    """Whether the answer's body is KIE's own envelope (JSON with a ``code``): KIE's API read the request."""
    body = json_or_none(response)
    return isinstance(body, dict) and isinstance(whole_code(body.get("code")), int)


def _data(response: httpx2.Response) -> Any:
    """``data`` of an answer that is JSON, whatever its code (KIE's 4K refusals carry the task they mean), made safe
    to keep as ``read_envelope`` makes it; None when the body cannot be read."""
    body = json_or_none(response)
    return clean(body.get("data")) if isinstance(body, dict) else None


# KIE's documented body codes of 500 and up that end a create with nothing charged: 501 (the generation failed at
# the model's provider; KIE charges no failed task) and 505 (the feature is disabled). Every other code of 500 and up
# says KIE failed, not that it refused: 500 (internal error), 502 and 503 (a gateway or overloaded server behind an
# HTTP 200), KIE's 531 (documented only for Suno callbacks) and 550 (in a code list, with no meaning of its own).
_REFUSED_SERVER_CODES = frozenset({501, 505})


def _may_have_created(err: KieError) -> bool:
    """Whether KIE's error answer to a create leaves open that the task was created (and charged) before it failed.

    KIE answers errors inside HTTP 200 bodies, so the body's code decides, not the HTTP status alone. A clear refusal
    (nothing created, the reservation released): a code in 400-499 (KIE documents 400 input or content, 401 key, 402
    credits, 404, 408, 422 validation, 429 rate limit, 433 key cap, 451 input fetch, 455 maintenance; an undocumented
    4xx such as 403 or 430 is a refusal by HTTP's own meaning), or 501 or 505 (``_REFUSED_SERVER_CODES``). Anything
    else may have created the task: HTTP 5xx whatever the body says, any other body code of 500 and up (500, 502,
    503, ...), and a code KIE does not document outside those classes (0, 201, 302, ...), which says nothing clear.
    Those are unknown outcomes: counted, journaled, never sent again."""
    if (err.http_status or 0) >= 500:
        return True
    code = err.code if err.code is not None else err.http_status  # no body code (a firewall's page): its HTTP status
    if code is None:
        return True
    return not (400 <= code < 500 or code in _REFUSED_SERVER_CODES)


UPLOAD_FAILED = "The upload failed, and nothing was charged (uploads are free)."
# A failure with a code of KIE's whose advice (written for a create) does not fit an upload, in words for one.
_UPLOAD_STEPS: dict[int, str] = {
    405: "KIE's upload host did not take this request: check that KIE_UPLOAD_BASE_URL (when set) points at it "
    "(leave it unset for KIE's own), then try again.",
    413: "KIE's upload host refused the file, often for its size: a smaller file (or a public link to it, passed "
    "in place of the file) may get through.",
}


def _upload_failed(err: KieError) -> KieError:
    """An upload KIE's upload host refused or that failed on the way, in words for an upload: that it failed and
    nothing was charged, the upload's own address setting (``KIE_UPLOAD_BASE_URL``, never ``KIE_BASE_URL``), and
    advice that fits it (the key, its cap, maintenance, pacing; ``_UPLOAD_STEPS``). KIE's advice per code is written
    for a create ("change the prompt", "a cheaper model", "check the task id"). A refusal kie-mcp itself made with
    its own advice (a link holding a credential, a firewall's refusal) keeps that advice."""
    if err.code is not None:
        then = (
            any_request_step(err)
            or _UPLOAD_STEPS.get(err.code)
            or "Try again in a minute; if it keeps failing, pass a public link to the file instead."
        )
    elif isinstance(err.__cause__, TooSlowToSend):
        then = err.next_step
    elif err.category is Category.NETWORK:
        then = (
            "Check the network connection and KIE_UPLOAD_BASE_URL (when set; leave it unset for KIE's own upload "
            "host), then try again."
        )
    elif err.retryable:  # an answer that could not be read: the file's link is unknown, and uploading again is safe
        then = (
            "Its answer could not be used, so kie-mcp has no link to the file; uploading it again is safe. Try again "
            "shortly; if it keeps happening, check KIE_UPLOAD_BASE_URL (when set) or pass a public link to the file."
        )
    else:
        then = err.next_step
    return KieError(
        _upload_address(err.message),
        code=err.code,
        category=err.category,
        retryable=err.retryable,
        next_step=_upload_address(f"{UPLOAD_FAILED} {then}"),
        http_status=err.http_status,
        endpoint=err.endpoint,
    )


def _upload_address(text: str) -> str:
    """``text`` naming the upload host's setting where a shared message names the API's."""
    return text.replace("KIE_BASE_URL", "KIE_UPLOAD_BASE_URL")


def _uploaded(data: Any, fallback_name: str) -> UploadedFile:
    """Accept both documented upload answers: ``downloadUrl`` (new) and ``fileUrl`` (old)."""
    if not isinstance(data, dict):
        raise KieError("the upload answer had no file data", category=Category.PROTOCOL)
    url = text_or_none(data.get("downloadUrl")) or text_or_none(data.get("fileUrl"))
    if not url:
        raise KieError("the upload answer had no file URL", category=Category.PROTOCOL)
    if REDACTED in url:  # ``data`` is redacted as it is read: this link held a credential, and cannot be used
        raise KieError(
            f"the upload answer's file URL holds a credential ({url}), so it is not used",
            category=Category.PROTOCOL,
            retryable=False,
            next_step="KIE's upload host put a credential into the file's link; nothing was generated or charged. "
            "Pass a public URL of the file instead, or try again later.",
        )
    if problem := _unusable_upload_url(url):
        raise KieError(
            f"the upload answer's file URL {problem}, so it is not used",
            category=Category.PROTOCOL,
            retryable=False,
            next_step="KIE's upload host answered with a link KIE's models could not fetch; nothing was generated or "
            "charged. Try again later, check KIE_UPLOAD_BASE_URL (when set), or pass a public URL of the file.",
        )
    return UploadedFile(
        url=url,
        file_name=text_or_none(data.get("fileName")) or fallback_name,
        size=int_or_none(data.get("fileSize")),
        mime_type=text_or_none(data.get("mimeType")),
        kept_seconds=_kept_seconds(data),
    )


MAX_UPLOAD_URL = 2048  # KIE's links are a few dozen characters; a longer one is no link of KIE's


def _unusable_upload_url(url: str) -> str | None:
    """Why the link an upload answer gave cannot go into a paid create (or the upload cache), or None: it is sent to
    KIE as the model's input, so it must be a public web link KIE can fetch. An upload host that is misconfigured or
    hostile (``KIE_UPLOAD_BASE_URL``) could otherwise point a create at this machine's or a private network's
    address (a task that fails, and is charged), at ``file:`` or ``javascript:``, or at a link with control
    characters that would be sent as they are. The configured endpoints (a simulator on 127.0.0.1) are exempt."""
    from kie_mcp.media.addresses import is_trusted, unreachable_host

    if len(url) > MAX_UPLOAD_URL:
        return f"is {len(url)} characters long"
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "holds spaces or control characters"
    try:
        parsed = httpx2.URL(url)
    except Exception:
        return "is not a web link"
    host = parsed.host.lower().removesuffix(".")
    if parsed.scheme not in ("http", "https") or not host:
        return "is not an http(s) link"
    if is_trusted(parsed) or not (why := unreachable_host(host)):
        return None
    return f"points at this machine or a private network ({why})"


def _kept_seconds(data: dict[str, Any]) -> float | None:
    """How long KIE keeps an upload by its own answer: ``expiresAt`` less ``uploadTime`` (or ``uploadedAt``), both
    KIE's clock, so this machine's clock being off does not matter; None without both, or when they make no sense."""
    expires = _when(data.get("expiresAt"))
    uploaded = _when(data.get("uploadTime")) or _when(data.get("uploadedAt"))
    if expires is None or uploaded is None:
        return None
    return max(expires - uploaded, 0.0)


def _when(value: Any) -> float | None:
    """An ISO 8601 time of KIE's (``2025-01-15T10:30:00Z``) as unix seconds, or None."""
    moment = parse_timestamp(text_or_none(value))
    return moment.timestamp() if moment is not None else None


def _read_status(family: Family, task_id: str, data: dict[str, Any]) -> TaskStatus:
    """``family``'s reading of a status answer. Whatever that reading raises (garbage KIE sent that no parser
    foresaw) is a protocol error, retried with backoff like any unreadable answer and noted on the task: a plain
    exception escaped as a bug, and the task stayed "queued", silently, with its result unsaved. The error names
    the task and the kind of failure only, never a value from the answer (which could echo a secret)."""
    try:
        return family.parse_status(task_id, data).model_copy(update={"raw": data})  # redacted as it was read
    except Exception as err:
        log.warning("status answer of task %s could not be read (%s)", task_id, type(err).__name__)
        raise KieError(
            f"KIE's status answer about task {task_id} could not be read ({type(err).__name__})",
            category=Category.PROTOCOL,
            retryable=True,
            next_step="Nothing from that answer was taken and nothing was changed on KIE. kie-mcp asks again, less "
            "often while KIE keeps answering this way; check_task asks at once. If it persists, see the task on "
            f"{LOGS_URL}.",
            endpoint=family.status_path,
        ) from err


# KIE's code for "Generation failed" (Market's recordInfo error table; Veo's and Flux Kontext's failure callbacks):
# the one error code whose answer about a task says that task failed.
GENERATION_FAILED = 501


def _failure_in_error(family: Family, task_id: str, asked: dict[str, Any], err: KieError) -> TaskStatus | None:
    """A status answer with an error code that still carries this task's record saying it failed, read as that
    failure (its ``failMsg``, else KIE's ``msg``); None for any other error answer. KIE's Market docs list 501
    ("Generation failed", "Check failMsg") among recordInfo's answer codes (docs.kie.ai/market/common/
    get-task-detail, read 2026-12), and its Market failure callback is ``{code: 501, data: {state: "fail", failCode,
    failMsg, ...}}``: a status answer shaped so is a failed task (ended, its reservation released), not a refused status
    check. Only a record naming this very task, with the family's own
    word for failed, is taken: anything else beside an error code contradicts it, and stays the error it is. Only
    code 501, KIE's documented "Generation failed", says that: a 429, a 455 or a 500 is about the status check, not
    the task, whatever record rides along (a task ended on one, and its reservation released, may have succeeded)."""
    if err.code != GENERATION_FAILED:
        return None
    data = err.data
    named, wanted = data.get("taskId") if isinstance(data, dict) else None, asked.get("taskId")
    if named in (None, "") or str(named) != str(wanted):
        return None
    try:
        status = _read_status(family, task_id, data)
    except KieError:
        return None
    if not status.understood or status.state is not TaskState.FAILED:
        return None
    said: dict[str, Any] = {}
    if not status.fail_message and err.message:
        said["fail_message"] = err.message
    if not status.fail_code and err.code is not None:
        said["fail_code"] = str(err.code)
    return status.model_copy(update=said)


def _count(value: Any) -> int | None:
    """A count KIE sends (a list's ``total``, ``pageSize``): a whole number, also written as digits (``"143"``) or a
    whole finite float (``143.0``); None when negative or unreadable (``True``, ``"12a"``, ``1.5``, NaN)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None
