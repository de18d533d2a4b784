"""Everything one server connection shares: settings, the catalogue, the KIE client and the spend state."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx2

from kie_mcp.catalog import Catalog, load_catalog
from kie_mcp.catalog.pricing import SIMULATED_COPY
from kie_mcp.config import Settings, no_key_advice
from kie_mcp.journal import JOURNAL_ERRORS, Journal, JournalInUse, JournalLocked, OwedWrites, UnavailableJournal
from kie_mcp.kie import KieClient
from kie_mcp.kie.calllog import CallLog
from kie_mcp.media import saved
from kie_mcp.media.downloads import sweep_interrupted_downloads
from kie_mcp.recovery import recover
from kie_mcp.spend import Caps, Ledger, QuoteBook
from kie_mcp.spend.inflight import SpendingCalls
from kie_mcp.spend.ledger import note_this_clock
from kie_mcp.tasks import Follower, TaskBook
from kie_mcp.tasks.records import links_kept

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from kie_mcp.catalog.live import LiveCatalog
    from kie_mcp.media.inputs import FileStamp

log = logging.getLogger(__name__)

SANDBOX_SPEED = 30.0  # --sandbox: a 4-minute Veo clip takes about 8 seconds

# The runtime of the request being served (set by ``server._Server`` around a resource read and a prompts/get), for
# what the SDK runs without a context: the model tables (static resources) and a workflow's model check use this
# server's catalogue, with KIE's live models, withdrawals and prices. None outside a request.
SERVING: ContextVar[Runtime | None] = ContextVar("kie_mcp_serving", default=None)


class NoKeyError(RuntimeError):
    def __init__(self, workspace: Path | None = None) -> None:
        super().__init__(no_key_advice(workspace))


class TaskLocks:
    """One lock per task id, held while the task's results are saved: two savers of one task (a ``check_task`` and
    the follower's background try) take turns, and the second finds in the journal what the first saved instead
    of downloading it again."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[anyio.Lock, int]] = {}  # task id -> its lock, and how many hold or wait for it

    @asynccontextmanager
    async def hold(self, task_id: str) -> AsyncIterator[None]:
        lock, users = self._held.get(task_id, (None, 0))
        lock = lock or anyio.Lock()
        self._held[task_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            users = self._held[task_id][1] - 1
            if users:
                self._held[task_id] = (lock, users)
            else:
                del self._held[task_id]


# What a tool call the runtime's close ended is answered (``RunningCalls``), should anyone still read it.
ENDED_BY_CLOSE = (
    "kie-mcp's session closed while this call ran, which ended the call: what it had already sent to KIE was answered "
    "and recorded first (list_tasks shows the tasks made), nothing more was sent, and nothing is held for it."
)


class RunningCalls:
    """The tool calls served with a runtime, each in a cancel scope of its own (``running``), so that its close ends
    them (``close``): a call can outlive its server's session (the MCP SDK's 2026-07-28 client in process, going away,
    closes the lifespan without cancelling the calls, which run in its own tasks), and would run on against a closed
    journal, uploading, unable to give back what it held or record what it sent."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._closed = False
        self._ended: anyio.Event | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[anyio.CancelScope]:
        """Run one tool call in this block; its scope is cancelled by ``close`` (at once when the runtime is closed
        already), which the block then swallows: ``cancelled_caught`` says so."""
        with anyio.CancelScope() as scope:
            if self._closed:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)
                if not self._scopes and self._ended is not None:
                    self._ended.set()

    async def close(self) -> None:
        """Cancel the calls still running and wait until each has ended, as a call its host cancels ends: its held
        credits given back, its approval and its request's hold let go of; a create on its way to KIE (shielded) is
        answered and recorded first, up to its own deadline, as when stdin closes (``stopping``). Shielded: the
        journal closes after this, whatever cancelled the close. Calls that come later are ended at once."""
        self._closed = True
        if not self._scopes:
            return
        self._ended = anyio.Event()
        for scope in self._scopes:
            scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._ended.wait()


@dataclass(eq=False)
class Join:
    """One stitch_videos join running (or ended) in the background of this runtime (``Joins``): what it does, where it
    is saved (decided as it starts, so an answer given before it ends can name it), and how it ended."""

    key: str  # the digest of the request it is the join of (joining.py: clips as resolved, captions, name, session)
    what: str  # what it is doing, for a person ("re-encoding 50 clips with captions")
    path: str  # where it is saved, relative to the workspace
    target: Path  # that file, in full (its name is held for it while it runs)
    folder: Path  # the folder it is saved in
    made_folder: bool  # the folder was made for it (removed again when the join fails and leaves it empty)
    note: str = ""  # why it is saved under another name than the one asked for, when it is
    started: float = field(default_factory=time.monotonic)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None  # what the join made (``joining.Joined``), once it succeeded
    failure: Exception | None = None  # why it failed (its words are the answer), once it failed
    told: bool = False  # its failure was given in an answer: an identical call after that joins again
    waiting: int = 0  # calls waiting for it now
    # the saved video's stamp once placed: it answers a repeated call while that file is the one there, never a file
    # saved under its name since
    identity: FileStamp | None = None
    running_now: bool = False  # it has one of the joins' slots (``Joins.slots``): ffmpeg may run; else it waits

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def begin(self) -> None:
        """It got a slot: its time (and its budget) counts from now."""
        self.running_now, self.started = True, time.monotonic()


class Joins:
    """The joins stitch_videos runs, each a task of the runtime's own (never of the call that asked for it), one per
    identical request (``Join.key``): a host that stops waiting for a call (its 60 s timeout) never ends the join,
    and a call repeated meanwhile waits for the same one. An ended join is kept (the last ``KEPT``), so a repeated
    call is answered with it at once, never joined again. The runtime's close ends the joins still running (their
    ffmpeg killed, nothing half written left: ``media/stitch.py``)."""

    KEPT = 64  # ended joins remembered
    AT_ONCE = 2  # joins whose ffmpeg runs at once (each a re-encode's CPU, up to 200 clips' descriptors)
    AT_MOST = 8  # joins running or waiting for a slot: past that, a new join is refused at once

    def __init__(self) -> None:
        self._group: TaskGroup | None = None  # the runtime's background tasks (``open_runtime``)
        self._joins: OrderedDict[str, Join] = OrderedDict()
        self.starting = anyio.Lock()  # held while a call finds or starts the join of its request
        self.slots = anyio.CapacityLimiter(self.AT_ONCE)  # taken by a join for its whole making (FIFO)

    def serve_in(self, group: TaskGroup) -> None:
        self._group = group

    def close(self) -> None:
        self._group = None

    def get(self, key: str) -> Join | None:
        return self._joins.get(key)

    def forget(self, join: Join) -> None:
        if self._joins.get(join.key) is join:
            del self._joins[join.key]

    def running(self) -> list[Join]:
        """The joins not ended: running, or waiting for a slot (in the order they started)."""
        return [join for join in self._joins.values() if not join.done.is_set()]

    def ahead_of(self, join: Join) -> int:
        """How many joins a join waiting for a slot waits behind: those running, and those waiting since before it."""
        others = self.running()
        waiting = [other for other in others if not other.running_now]
        before = waiting[: waiting.index(join)] if join in waiting else waiting
        return sum(other.running_now for other in others) + len(before)

    def start(
        self, join: Join, work: Callable[[Join], Awaitable[Any]], ended: Callable[[Join], Awaitable[None]]
    ) -> None:
        """Run ``work`` (the join) in the runtime's background; ``ended`` once it succeeded or failed (not when the
        runtime's close stopped it)."""
        if self._group is None:
            raise RuntimeError("kie-mcp is stopping (or did not start): nothing was joined; call stitch_videos again")
        self._joins[join.key] = join
        self._joins.move_to_end(join.key)
        ended_joins = [key for key, kept in self._joins.items() if kept.done.is_set()]
        for key in ended_joins[: max(0, len(ended_joins) - self.KEPT)]:
            del self._joins[key]
        self._group.start_soon(self._run, join, work, ended, name=f"join {join.path}")

    async def _run(
        self, join: Join, work: Callable[[Join], Awaitable[Any]], ended: Callable[[Join], Awaitable[None]]
    ) -> None:
        try:
            join.result = await work(join)
        except Exception as err:  # said to the calls that wait, or that repeat it
            join.failure = err
        except BaseException:  # the runtime's close: nobody is left to tell
            self.forget(join)
            join.done.set()
            raise
        join.done.set()
        try:
            await ended(join)
        except Exception as err:  # telling the client is advisory
            log.debug("could not tell the client of the join into %s: %s", join.path, err)


@dataclass
class Runtime:
    settings: Settings
    journal: Journal
    quotes: QuoteBook
    ledger: Ledger
    tasks: TaskBook
    kie: KieClient | None
    time_scale: float = 1.0  # simulated seconds per real second (the sandbox runs faster than KIE)
    notices: tuple[str, ...] = ()  # what happened at start that the user should hear about (a corrupt journal)
    notices_told: bool = False  # the first tool answer carried them (``untold_notices``)
    unknown_at_start: int = 0  # creates a stopped server was sending, made unknown as this one started
    follower: Follower = field(default_factory=Follower)  # polls every unfinished task (tasks/follower.py)
    saving: TaskLocks = field(default_factory=TaskLocks)  # one saver of a task's results at a time
    spending: SpendingCalls = field(default_factory=SpendingCalls)  # calls sending creates now (spend/inflight.py)
    owed: OwedWrites = field(default_factory=OwedWrites)  # creates' outcomes a full disk kept out of the journal
    calls: RunningCalls = field(default_factory=RunningCalls)  # the tool calls served now, ended by the close
    joins: Joins = field(default_factory=Joins)  # stitch_videos' joins, run in the background, ended by the close
    # KIE's live models and prices are being read (quotes say so): set once a check found a sync due, never for a check
    # that reads nothing (a fresh cache, a failed try a moment ago).
    catalog_syncing: bool = False
    # Set once the check or sync under way has tried KIE's prices (the first thing a sync reads), read or failed, or
    # ended: what the first quotes of a workspace that never read them wait for (``generation.first_prices``).
    catalog_priced: anyio.Event | None = None
    # While another program holds the journal locked (it has not opened yet): set when the next try to open it ends,
    # so a call waits for that try (``OPEN_WAIT`` at most) and finds it open once the lock is gone. None once open.
    journal_retry: anyio.Event | None = None
    # Both built on first use: start-up and tools/list neither parse the catalogue nor read the live cache.
    _live: LiveCatalog | None = field(default=None, repr=False)
    _catalog: Catalog | None = field(default=None, repr=False)

    def use_journal(self, journal: Journal | UnavailableJournal, notices: tuple[str, ...], unknown: int) -> None:
        """Take ``journal`` (opened once another program's lock on it was gone), as if opened at start: its quotes,
        ledger and tasks, and the notices of its opening, told in the next answer."""
        for name, value in _journal_parts(self.settings, journal).items():
            setattr(self, name, value)
        self.notices, self.notices_told, self.unknown_at_start = notices, False, unknown

    def untold_notices(self) -> tuple[str, ...]:
        """The start-up notices, the first time a tool answer asks: whatever the agent calls first after a start
        that reset the journal (a generation, most likely), the user hears of it once."""
        if self.notices_told:
            return ()
        self.notices_told = True
        return self.notices

    @property
    def live(self) -> LiveCatalog:
        """KIE's live models, schemas and prices: the workspace's cache of them, read the first time it is needed."""
        if self._live is None:
            from kie_mcp.catalog.live import LiveCatalog, cache_path

            self._live = LiveCatalog.load(cache_path(self.settings.workspace))
        return self._live

    @live.setter
    def live(self, value: LiveCatalog) -> None:
        """A sync's catalogue (or another server's) read while this one was in use keeps the creates KIE refused
        as not published since its model list was read (``LiveCatalog.keeping_refusals_of``)."""
        self._live = value if self._live is None else value.keeping_refusals_of(self._live)

    @property
    def catalog(self) -> Catalog:
        """The bundled catalogue plus the live models it lacks, built the first time a tool needs it."""
        if self._catalog is None:
            self._catalog = with_live_models(self.live)
        return self._catalog

    @catalog.setter
    def catalog(self, value: Catalog) -> None:
        self._catalog = value

    def typical_seconds(self, model_id: str) -> tuple[int, int] | None:
        """The model's usual wall-clock duration, in this runtime's time."""
        spec = self.catalog.get(model_id)
        if spec is None:
            return None
        low, high = spec.typical_seconds
        return max(int(low / self.time_scale), 1), max(int(high / self.time_scale), 1)

    def saved_here(self, path: Path, size: int) -> bool:
        """Whether the real ``path``, ``size`` bytes, is a result this workspace's kie-mcp saved, by the journal's row
        of it (``saved.vouched_by``): what vouches for a saved result a backup hard-linked (``inputs.open_judged``)."""
        try:
            file_at = self.journal.file_at  # the journal as it is now (one opened since start, or none to ask)
        except JOURNAL_ERRORS:
            return False
        return saved.vouched_by(file_at, self.settings.workspace, path, size)

    def links_kept(self, model_id: str) -> int:
        """How many result links a task of this model keeps (``records.links_kept``): a garbage answer naming
        thousands never makes thousands of files."""
        return links_kept(self.catalog.get(model_id))

    def sync_checks(self) -> None:
        """A check of whether KIE's live catalogue is due a sync begins (at start-up, then every hour): the first
        quotes of a workspace that never read KIE's prices may wait for it, but none says a read is under way until
        one is (``sync_starts``)."""
        if self.catalog_priced is None or self.catalog_priced.is_set():  # one a quote may already wait on is kept
            self.catalog_priced = anyio.Event()

    def sync_starts(self) -> None:
        """The check found a sync due and it begins (``maybe_sync``'s ``starts``, after its age check): quotes say
        KIE's price list is being read until its prices are tried."""
        self.sync_checks()
        self.catalog_syncing = True

    def prices_tried(self, live: LiveCatalog) -> None:
        """The look under way has tried KIE's model list and prices (its schemas and success rates follow): what it
        read is quoted from now on, and the quotes waiting for it go on, whether the prices came or their read
        failed (then they say so, rather than wait the full ``FIRST_PRICES_WAIT`` for a read that is over)."""
        self.live = live
        self.catalog = with_live_models(live)
        if self.catalog_priced is not None:
            self.catalog_priced.set()

    def sync_ends(self) -> None:
        self.catalog_syncing = False
        if self.catalog_priced is not None:
            self.catalog_priced.set()

    @property
    def reading_prices(self) -> bool:
        """A sync of KIE's catalogue is under way (a check found it due) and has not tried its prices yet (neither
        read nor failed)."""
        return self.catalog_syncing and not (self.catalog_priced is not None and self.catalog_priced.is_set())

    def require_kie(self) -> KieClient:
        if self.kie is None:
            raise NoKeyError(self.settings.context_folder)
        return self.kie


def _open_journal(
    settings: Settings, damaged: tuple[int, int] | None = None
) -> tuple[Journal | UnavailableJournal, tuple[str, ...], int]:
    """The journal, whatever state the disk is in: the server starts, and tools explain what is wrong; its notices,
    and how many creates became unknown. What a crash or a lost journal left half done is ended first
    (``recovery.recover``); temporary files of interrupted downloads are swept apart (``_sweep_downloads``).
    ``damaged``: the damaged journal the last try found another server using (``JournalInUse``)."""
    journal, notice = Journal.open_for_server(settings.workspace, damaged=damaged)
    if journal is None:
        assert notice is not None
        log.error("%s", notice)
        return UnavailableJournal(notice), (notice,), 0
    try:
        recovered, interrupted = recover(journal, settings)
    finally:
        journal.share()  # a fresh journal in place of a damaged one: the others open it once it is taken up
    note_this_clock(journal)  # this clock's offset: the other servers on the workspace count today from its midnight
    notices = ([notice] if notice else []) + recovered
    for line in notices:
        log.warning("%s", line)
    return journal, tuple(notices), interrupted


def _journal_parts(settings: Settings, journal: Journal | UnavailableJournal) -> dict[str, Any]:
    """The runtime's parts that keep their state in ``journal``."""
    return {
        "journal": journal,
        "quotes": QuoteBook(journal, settings.quote_ttl_seconds, simulated=settings.sandbox),
        "ledger": Ledger(
            journal,
            Caps(
                settings.max_credits_per_call,
                settings.max_credits_per_day,
                settings.max_credits_per_day_from,
                settings.max_credits_per_call_from,
            ),
        ),
        "tasks": TaskBook(journal, settings.workspace),
    }


RETRY_PAUSE = 0.05  # seconds between two tries to open a journal another program holds (each waits OPEN_WAIT)


async def _open_once_free(runtime: Runtime, background: TaskGroup, damaged: tuple[int, int] | None) -> None:
    """Open the journal another program held locked at start, or that was damaged while another server had it open
    (``damaged``, moved aside once that server is gone), trying again until it opens (each try waits up to
    ``OPEN_WAIT`` for the lock, in a worker thread); then it is used as if opened at start (``Runtime.use_journal``)
    and the follower starts on the tasks it holds. Nobody has to restart the server, or call anything."""
    while (tried := runtime.journal_retry) is not None:
        with anyio.CancelScope(shield=True):  # a journal opened as the server stops is still taken, so it is closed
            try:
                opened = await anyio.to_thread.run_sync(_open_journal, runtime.settings, damaged)
            except JournalLocked as err:
                log.debug("the journal is still locked: %s", err)
                damaged = err.damaged if isinstance(err, JournalInUse) else None
                if str(err) != getattr(runtime.journal, "reason", None):  # every use says what holds it up now
                    runtime.use_journal(UnavailableJournal(str(err)), (), 0)
                runtime.journal_retry = anyio.Event()
            except Exception as err:  # anything else once the lock went: every use says so, the server goes on
                log.exception("the workspace journal could not be opened once it was free")
                runtime.use_journal(UnavailableJournal(f"{type(err).__name__}: {err}"), (), 0)
            else:
                runtime.use_journal(*opened)
                log.info("the workspace journal is free and open now")
                background.start_soon(runtime.follower.run, runtime)
            finally:
                if runtime.journal_retry is tried:  # opened (or failed otherwise): calls no longer wait for a try
                    runtime.journal_retry = None
                tried.set()
        if runtime.journal_retry is not None:
            await anyio.sleep(RETRY_PAUSE)


async def _sweep_downloads(outputs: Path) -> None:
    """The temporary files of downloads a dead server left, removed in a worker thread: the walk covers every result
    ever saved (0.5 s at 81,000 files), and on the event loop it held up every request of the start. Files of a
    live process, this one's too, are left alone, so it may run beside this server's own downloads."""
    swept = await anyio.to_thread.run_sync(sweep_interrupted_downloads, outputs)
    if swept:
        log.info("removed %d unfinished download(s) left by an interrupted server", swept)


FORGET_QUOTES_AFTER = 60.0  # seconds after start-up before the first clear-out of long-expired quotes
FORGET_QUOTES_EVERY = 86400.0  # seconds between two clear-outs


async def _forget_old_quotes(runtime: Runtime) -> None:
    """A minute after start-up (the start's own work done) and then daily, in a worker thread: the quotes that
    expired a month ago and approved nothing are deleted (``QuoteBook.forget_expired``). A journal that cannot be
    written only keeps them."""
    await anyio.sleep(FORGET_QUOTES_AFTER)
    while True:
        try:
            forgotten = await anyio.to_thread.run_sync(runtime.quotes.forget_expired)
        except Exception as err:  # a locked, read-only or full journal: tried again tomorrow
            log.info("old quotes could not be cleared from the journal: %s", err)
        else:
            if forgotten:
                log.info("cleared %d quote(s) that expired over a month ago and approved nothing", forgotten)
        await anyio.sleep(FORGET_QUOTES_EVERY)


RELEASE_OWED_EVERY = 5.0  # seconds between two tries to write what a full disk held back
# The longest a stop by signal waits for the journal to take what a full disk held back (``write_owed_at_exit``).
OWED_AT_EXIT = 2.0
_OPEN: list[Runtime] = []  # the runtimes this process has open (a stdio server: one), for ``write_owed_at_exit``


def write_owed_at_exit(seconds: float = OWED_AT_EXIT) -> None:
    """Write what the open runtimes owe the journal (``_write_owed``: approvals' releases, creates' tasks and
    outcomes) before a stop by signal ends the process at once (``cli._stop_now``), which skips ``open_runtime``'s
    own shutdown. In a thread of its own, waited for ``seconds`` at most: a journal another writer holds locked, or
    one the code the signal interrupted is using, holds the exit no longer (what is left unwritten is found by the next
    start, a create's task in the call log). Never raises."""
    owing = [runtime for runtime in _OPEN if runtime.quotes.owes or runtime.owed.owes]
    if not owing:
        return

    def write() -> None:
        for runtime in owing:
            with contextlib.suppress(Exception):  # never raises by contract; a stop must not fail on it
                runtime.quotes.release_owed()
                runtime.owed.retry()

    writer = threading.Thread(target=write, name="kie-mcp-owed-at-exit", daemon=True)
    writer.start()
    writer.join(seconds)


async def _write_owed(runtime: Runtime) -> None:
    """What a full disk (or another program's lock, not waited for on the event loop) kept out of the journal,
    written as soon as it takes it. The releases of approvals whose call sent nothing (``QuoteBook.release_owed``):
    another server on the workspace, or this one restarted, then finds the approval good too, not "a create is on its
    way" for ten minutes. And what became of creates (``OwedWrites``): their tasks, outcomes and refunds, so a restart
    knows every task made, no create stays "being sent" to become one of unknown outcome, and no refund is lost.
    Those are written on the event loop (the follower changes their records there), never while another writer holds
    the journal (that wait would hold up the loop): the next turn tries again."""
    while True:
        await anyio.sleep(RELEASE_OWED_EVERY)
        if runtime.quotes.owes:
            await anyio.to_thread.run_sync(runtime.quotes.release_owed)
        if runtime.owed.owes and not runtime.journal.locked_now():
            runtime.owed.retry()


OWED_AT_CLOSE_PAUSE = 0.05  # seconds between two looks at another program's lock while the close waits for it


async def _write_owed_at_close(runtime: Runtime, seconds: float = OWED_AT_EXIT) -> None:
    """What became of creates that the journal could not take (``OwedWrites``: their outcomes, refunds, and whether
    their answers went out), written as the runtime closes: whenever another program's lock lets go within
    ``seconds`` (``OWED_AT_EXIT``, as a stop by signal waits), looked at every ``OWED_AT_CLOSE_PAUSE`` without waiting
    for it on the event loop; a full disk is tried as often. Left unwritten, a refund counted against the daily cap
    until the next start books it from the journal (``Ledger.book_owed_refunds``), and an answer that went out read as
    cut off. Shielded: a close that was cancelled still writes them. Never raises."""
    if not runtime.owed.owes:
        return
    with anyio.move_on_after(seconds, shield=True):
        while True:
            if not _locked_now(runtime.journal):
                runtime.owed.retry()
            if not runtime.owed.owes:
                return
            await anyio.sleep(OWED_AT_CLOSE_PAUSE)
    log.warning(
        "the journal did not take what became of a create within %g s of the close (another program holds it, or the "
        "disk is full): the next start books its refund from the journal, or from the call log",
        seconds,
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings, transport: httpx2.AsyncBaseTransport | None = None
) -> AsyncIterator[Runtime]:
    """Build the shared state; in sandbox mode without a given transport, start a private simulator.

    With a broken setting nothing is opened or started: no KIE client, no journal, no follower, no sync. The
    state exists only so that every tool can answer with the problem (``Settings.config_problem``)."""
    if settings.config_problem is not None:
        yield _unconfigured(settings, settings.config_problem)
        return
    time_scale = 1.0
    if settings.sandbox and transport is None:
        from kie_mcp.sandbox import SandboxTransport, SimConfig, Simulator, state_path

        time_scale = SANDBOX_SPEED  # its tasks, uploads and balance are kept in the sandbox area across restarts
        sim = Simulator(SimConfig(speed=SANDBOX_SPEED), state_path=state_path(settings.workspace))
        transport = SandboxTransport(sim)
    kie = None
    if settings.has_key:
        assert settings.api_key is not None
        from kie_mcp.media.addresses import trust_endpoints

        trust_endpoints(settings.base_url, settings.upload_base_url)  # `kie-mcp sim --port` serves from 127.0.0.1
        kie = KieClient(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            upload_base_url=settings.upload_base_url,
            timeout=settings.http_timeout,
            transport=transport,
            rate_limit_backoff=settings.rate_limit_backoff,
            call_log=CallLog(settings.workspace / "logs" / "kie-api.jsonl"),
            # KIE's limits are per key: shared with the other servers on it, never the simulator's in process
            share_pacing=transport is None and not settings.sandbox,
            key_origin=settings.key_origin,  # a 401 says where the key came from
        )
    else:
        log.warning("KIE_API_KEY is not set: tools that need KIE will explain how to set it")
    # In a worker thread: the start's check of the journal's pages, a lock another program holds on it and a
    # migration's writes never hold up the event loop (pings, the handshake, other requests).
    locked, damaged = False, None
    try:
        journal, notices, unknown_at_start = await anyio.to_thread.run_sync(_open_journal, settings)
    except JournalLocked as err:  # tried again until it opens (``_open_once_free``); every use says it is locked
        log.warning("%s", err)
        locked, journal, notices, unknown_at_start = True, UnavailableJournal(str(err)), (), 0
        damaged = err.damaged if isinstance(err, JournalInUse) else None
    runtime = Runtime(
        settings=settings,
        **_journal_parts(settings, journal),
        kie=kie,
        time_scale=time_scale,
        notices=notices,
        unknown_at_start=unknown_at_start,
        journal_retry=anyio.Event() if locked else None,
    )
    _OPEN.append(runtime)
    try:
        async with anyio.create_task_group() as background:
            if not locked:
                background.start_soon(runtime.follower.run, runtime)  # the one place that polls KIE for task status
            else:  # the follower starts once the journal opens
                background.start_soon(_open_once_free, runtime, background, damaged)
            background.start_soon(_sweep_downloads, settings.workspace / "outputs")
            background.start_soon(_forget_old_quotes, runtime)
            background.start_soon(_write_owed, runtime)
            runtime.joins.serve_in(background)  # a join outlives the call that asked for it, never the runtime
            if kie is not None and settings.catalog_sync:
                runtime.sync_checks()  # from now: a quote made before it has read KIE's prices waits for the check
                background.start_soon(_keep_catalog_current, runtime, kie)  # never delays start-up or a tool call
            yield runtime
            background.cancel_scope.cancel()
    finally:
        runtime.joins.close()  # its joins ended with the background tasks above; none starts from now on
        await runtime.calls.close()  # each ends as a cancelled call does, a create on its way recorded first
        _OPEN[:] = [other for other in _OPEN if other is not runtime]  # by identity: runtimes compare by fields
        # What the calls could not write as they ended (the journal refused it then), written now if it takes it: the
        # requests this server's auto approvals hold, let go of, the releases of approvals, and the credits held for
        # input files uploading, given back (the ledger reserves nothing more); and what became of a create (its
        # outcome, its refund, whether its answer went out), waiting a moment for another program's lock.
        runtime.quotes.let_go_all()
        runtime.ledger.close()
        await _write_owed_at_close(runtime)
        if kie is not None:
            await kie.aclose()
        runtime.journal.close()  # the one in use: opened at start, or once another program's lock was gone


def _locked_now(journal: Journal | UnavailableJournal) -> bool:
    """Whether another program holds the journal's write lock now (no wait); False for one that could not be opened."""
    try:
        return journal.locked_now()
    except JOURNAL_ERRORS:
        return False


def _unconfigured(settings: Settings, problem: str) -> Runtime:
    """State that cannot spend or reach KIE: every journal use explains ``problem``, the caps are 0."""
    journal = UnavailableJournal(problem)
    return Runtime(
        settings=settings,
        journal=journal,
        quotes=QuoteBook(journal),
        ledger=Ledger(journal, Caps(0.0, 0.0)),
        tasks=TaskBook(journal, settings.workspace),
        kie=None,
        notices=(problem,),
    )


def with_live_models(live: LiveCatalog) -> Catalog:
    """The bundled catalogue plus the live Market image and video models it lacks (validated by their live schema,
    priced only when KIE's price list prices them exactly)."""
    from kie_mcp.catalog.live import extra_models

    bundled = load_catalog()
    extra = {spec.id: spec for spec in extra_models(live, bundled)} if live.has_list else {}
    return Catalog({**{spec.id: spec for spec in bundled}, **extra}) if extra else bundled


CATALOG_CHECK_EVERY = 3600.0  # seconds between looks at whether KIE's live catalogue is due a sync


async def _keep_catalog_current(runtime: Runtime, kie: KieClient) -> None:
    """For as long as the server runs (a host keeps it up for weeks), every hour: sync KIE's live models and prices
    when the cache is a day old (``maybe_sync`` waits an hour after a failed try), and take a newer cache another
    server on this workspace wrote, or the models another server saw KIE refuse as not published. A sync only at
    start-up left prices and withdrawn models as they were that day."""
    while True:
        runtime.sync_checks()  # "being read" only once maybe_sync finds a sync due (``sync_starts``)
        try:
            await _sync_catalog(runtime, kie)
        finally:
            runtime.sync_ends()
        await anyio.sleep(CATALOG_CHECK_EVERY)


async def _sync_catalog(runtime: Runtime, kie: KieClient) -> None:
    """At most once a day, in the background: read KIE's live models, schemas, prices and success rates (under
    --sandbox, the simulator's: the logs name it, never KIE)."""
    from kie_mcp.catalog.live import cache_path, maybe_sync, models_in_use_from_journal

    whose = "The simulator's" if runtime.settings.sandbox else "KIE's live"
    path = cache_path(runtime.settings.workspace)
    in_use = await anyio.to_thread.run_sync(models_in_use_from_journal, runtime.settings.workspace)
    fresh = await maybe_sync(  # only when a sync is due
        kie, path, in_use, starts=runtime.sync_starts, prices_tried=runtime.prices_tried
    )
    if fresh is None:  # not due: the cache may still be newer than what this server holds (another server wrote it)
        from kie_mcp.catalog.live import LiveCatalog

        kept = await anyio.to_thread.run_sync(LiveCatalog.load, path)
        if kept.fetched_at is not None and kept.fetched_at != runtime.live.fetched_at:
            runtime.live = kept
            runtime.catalog = with_live_models(kept)
            log.info("%s model list and prices were taken from the cache of %s", whose, kept.fetched_at)
        elif kept.unpublished != runtime.live.unpublished:  # another server's create KIE refused as not published
            runtime.live = runtime.live.keeping_refusals_of(kept)
        return
    runtime.live = fresh
    runtime.catalog = with_live_models(fresh)
    failed = "; ".join(f"{error.endpoint}: {error.message}" for error in fresh.errors[:3])
    if fresh.fetched_at == fresh.attempted_at == fresh.feed_at:
        copy = f" ({SIMULATED_COPY})" if runtime.settings.sandbox else ""
        log.info("%s model list and prices%s were refreshed (%s)", whose, copy, fresh.fetched_at)
    elif fresh.fetched_at == fresh.attempted_at:  # the list, but not the prices (KIE's feed failed, or 4030)
        log.warning(
            "%s model list was refreshed but its prices could not be (%s); the prices read before are kept "
            "until the next daily refresh",
            whose,
            failed or "no price feed",
        )
    else:  # KIE or the network failed: what was cached is kept, and the next try is in a while
        failed = failed or "no model list"
        log.warning("%s model list could not be refreshed (%s); the last one read is kept", whose, failed)
