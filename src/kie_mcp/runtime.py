"""Everything one server connection shares: settings, the catalogue, the KIE client and the spend state."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx2

from kie_mcp.catalog import Catalog, load_catalog
from kie_mcp.config import Settings, no_key_advice
from kie_mcp.journal import JOURNAL_ERRORS, Journal, JournalLocked, OwedWrites, UnavailableJournal
from kie_mcp.kie import KieClient
from kie_mcp.kie.calllog import CALL_LOG, CallLog
from kie_mcp.media.downloads import sweep_interrupted_downloads
from kie_mcp.spend import Caps, Ledger, QuoteBook
from kie_mcp.spend.inflight import SpendingCalls
from kie_mcp.tasks import Follower, TaskBook
from kie_mcp.tasks.records import links_kept

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from kie_mcp.catalog.live import LiveCatalog

log = logging.getLogger(__name__)

SANDBOX_SPEED = 30.0  # --sandbox: a 4-minute Veo clip takes about 8 seconds


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
    catalog_syncing: bool = False  # a look at KIE's live models and prices is under way (quotes say so)
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
        self._live = value

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

    def links_kept(self, model_id: str) -> int:
        """How many result links a task of this model keeps (``records.links_kept``): a garbage answer naming
        thousands never makes thousands of files."""
        return links_kept(self.catalog.get(model_id))

    def require_kie(self) -> KieClient:
        if self.kie is None:
            raise NoKeyError(self.settings.context_folder)
        return self.kie


def _open_journal(settings: Settings) -> tuple[Journal | UnavailableJournal, tuple[str, ...], int]:
    """The journal, whatever state the disk is in: the server starts, and tools explain what is wrong; its notices,
    and how many creates became unknown.

    Start-up also ends what a crash left half done: creates still marked as being sent are looked for in the call log
    (recorded with their task when it shows KIE's answer) or become unknown (they may have been created on KIE), and
    temporary files of interrupted downloads are removed. A journal that starts afresh (the last one was corrupt, or
    it was deleted or emptied while the call log shows earlier calls) takes today's spend and the tasks of the last
    14 days from the call log.
    """
    journal, notice = Journal.open_for_server(settings.workspace)
    if journal is None:
        assert notice is not None
        log.error("%s", notice)
        return UnavailableJournal(notice), (notice,), 0
    notices = [notice] if notice else []
    renewed = journal.reset_from is not None
    if not renewed and journal.created_now and _has_call_log(settings.workspace):
        renewed = True
        notices.append(
            f"The workspace journal ({journal.path}) was missing or empty, though the call log "
            f"({CALL_LOG.as_posix()}) shows earlier KIE calls: a new one was started. Quotes and tasks recorded "
            "before are not in it; today's spend and the tasks of the last 14 days are taken from the call log."
        )
    marker = _renewal_marker(journal)
    if not renewed and marker is not None and marker.exists():  # an earlier start was cut off while it took them
        renewed = True
        notices.append(
            f"A start of kie-mcp that was taking today's spend and tasks from the call log ({CALL_LOG.as_posix()}) "
            "after the journal was lost did not finish: they are taken now."
        )
    if renewed:
        if marker is not None:  # marked until done: a start cut off meanwhile leaves it for the next
            with contextlib.suppress(OSError):
                marker.touch()
        try:
            carried, counted = _carry_over_todays_spend(journal, settings.workspace, settings.max_credits_per_day)
            notices += carried + _adopt_logged_tasks(journal, settings, counted)
        except _Unfinished:  # the journal refused them (a full disk): taken again at the next start
            pass
        else:
            if marker is not None:
                with contextlib.suppress(OSError):
                    marker.unlink(missing_ok=True)
    found: list[str] = []
    try:
        interrupted = journal.recover_interrupted(found)
    except Exception as err:  # a read-only journal: the tools that write will explain
        log.warning("could not mark interrupted creates as unknown: %s", err)
        interrupted = 0
    if found:
        notices.append(
            f"{len(found)} create(s) were being sent when kie-mcp last stopped, and the call log shows KIE made "
            f"them: task(s) {', '.join(found)}, now recorded, followed and saved like any other."
        )
    if interrupted:
        notices.append(
            f"{interrupted} create(s) were being sent when kie-mcp last stopped; they may have been created and "
            "charged on KIE, so they are counted against the daily cap. Check https://kie.ai/logs."
        )
    for line in notices:
        log.warning("%s", line)
    return journal, tuple(notices), interrupted


class _Unfinished(Exception):
    """Today's spend or the tasks of the call log could not be written into a fresh journal: the start goes on, and
    the next one takes them again (``_renewal_marker``)."""


def _renewal_marker(journal: Journal) -> Path | None:
    """A file beside a fresh journal while today's spend and the call log's tasks are taken into it: a start cut off
    meanwhile (a SIGKILL, a host closing it, a full disk) leaves it, and the next start, which sees a journal that is
    neither new nor reset, takes them again (both steps skip what they already wrote). None for a journal in memory."""
    return Path(f"{journal.path}.renewing") if isinstance(journal.path, Path) else None


def _journal_parts(settings: Settings, journal: Journal | UnavailableJournal) -> dict[str, Any]:
    """The runtime's parts that keep their state in ``journal``."""
    return {
        "journal": journal,
        "quotes": QuoteBook(journal, settings.quote_ttl_seconds),
        "ledger": Ledger(journal, Caps(settings.max_credits_per_call, settings.max_credits_per_day)),
        "tasks": TaskBook(journal, settings.workspace),
    }


RETRY_PAUSE = 0.05  # seconds between two tries to open a journal another program holds (each waits OPEN_WAIT)


async def _open_once_free(runtime: Runtime, background: TaskGroup) -> None:
    """Open the journal another program held locked at start, trying again until it opens (each try waits up to
    ``OPEN_WAIT`` for the lock, in a worker thread); then it is used as if opened at start (``Runtime.use_journal``)
    and the follower starts on the tasks it holds. Nobody has to restart the server, or call anything."""
    while (tried := runtime.journal_retry) is not None:
        with anyio.CancelScope(shield=True):  # a journal opened as the server stops is still taken, so it is closed
            try:
                opened = await anyio.to_thread.run_sync(_open_journal, runtime.settings)
            except JournalLocked as err:
                log.debug("the journal is still locked: %s", err)
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


def _has_call_log(workspace: Path) -> bool:
    """Whether the workspace has a call log (or its moved copy) with lines in it, a regular file as kie-mcp writes it:
    calls were made here before. Anything else in its place (a link or a FIFO a cloned repository carries) is no
    sign of that."""
    import os
    import stat

    from kie_mcp.kie.calllog import rotated

    for path in (workspace / CALL_LOG, rotated(workspace / CALL_LOG)):
        try:
            found = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(found.st_mode) and found.st_size > 0:
            return True
    return False


def _adopt_logged_tasks(journal: Journal, settings: Settings, counted: dict[str, float]) -> list[str]:
    """The tasks the call log shows KIE created in the last 14 days (how long KIE keeps them), added to a fresh journal
    as queued, so the follower follows each and saves its results: the journal that held them is lost. Left out:
    tasks the journal has, and those whose results are saved already (their sidecar is in an ``outputs/`` folder
    changed since). Nothing is ever sent again. What each counts against today's cap is what the call log counted for
    it (``counted``, by task: ``_carry_over_todays_spend``), so KIE's charge or refund corrects exactly that; one of
    an earlier day counts nothing until KIE says what it charged. Returns the notice naming them."""
    from datetime import datetime

    from kie_mcp.kie.calllog import UnreadableLog, logged_creates
    from kie_mcp.media.downloads import result_name
    from kie_mcp.media.saved import OUTPUTS, sidecars_since
    from kie_mcp.tasks import TaskRecord
    from kie_mcp.tasks.follower import RETENTION_SECONDS

    path, since = settings.workspace / CALL_LOG, time.time() - RETENTION_SECONDS
    try:
        logged = logged_creates(path, since)
    except UnreadableLog:  # the carry-over said so, and counted the whole cap
        return []
    except Exception:  # a log no reader foresaw: its tasks are not taken up, the start goes on
        log.exception("the tasks of the call log could not be read after a journal reset")
        return []
    if not logged:
        return []
    saved = sidecars_since(settings.workspace / OUTPUTS, logged[0].at)
    catalog = load_catalog()
    book = TaskBook(journal, settings.workspace)
    adopted, kept = [], 0
    try:
        with journal.transaction():
            for create in logged:
                if journal.task_row(create.task_id) is not None:
                    continue
                if result_name(create.model, create.task_id, 1, "json").rsplit("_", 1)[0] + ".json" in saved:
                    kept += 1
                    continue
                spec = catalog.get(create.model)
                family = _family_of(create.endpoint, spec.family if spec else None)
                if family is None:  # an endpoint no family creates on now: it could not be asked about
                    log.warning(
                        "task %s of the call log was made on %s, which kie-mcp no longer follows",
                        create.task_id,
                        create.endpoint,
                    )
                    continue
                made = datetime.fromtimestamp(create.at)
                record = TaskRecord(
                    task_id=create.task_id,
                    model=create.model,
                    family=family,
                    kind=spec.kind if spec else None,
                    state="queued",
                    credits_quoted=create.credits_quoted,
                    credits_reserved=counted.get(create.task_id, 0.0),
                    reserved_on=made.date(),
                    created_at=create.at,
                    sandbox=settings.sandbox,
                )
                book.add(record)
                adopted.append(create.task_id)
    except JOURNAL_ERRORS as err:  # a journal that cannot be written: the tools that write will explain
        log.warning("could not take up the tasks of the call log: %s", err)
        raise _Unfinished from err
    if not adopted:
        return []
    also = f" ({kept} more were saved in outputs/ already, and are left as they are)" if kept else ""
    return [
        f"The call log shows {len(adopted)} task(s) KIE created in the last 14 days that the journal did not hold"
        f"{also}: {', '.join(adopted)}. They are followed, and their results saved, like any other (their prompts "
        "were not in the call log)."
    ]


def _family_of(endpoint: str, family: str | None) -> str | None:
    """The family a task created on ``endpoint`` is followed as: the one whose create endpoint it is; of two
    (KIE's Market endpoint also takes Veo 3.1: ``veo-unified``), the one of the model's own ``family``. None for an
    endpoint no family creates on."""
    from kie_mcp.kie.families import FAMILIES

    names = [name for name, kind in FAMILIES.items() if kind.create_path == endpoint]
    if len(names) <= 1 or not family:
        return names[0] if names else None
    for name in names:
        if name == family or name.startswith(f"{family}-"):
            return name
    return names[0]


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


async def _write_owed(runtime: Runtime) -> None:
    """What a full disk kept out of the journal, written as soon as it takes it. The releases of approvals whose call
    sent nothing (``QuoteBook.release_owed``): another server on the workspace, or this one restarted, then finds the
    approval good too, not "a create is on its way" for ten minutes. And what became of creates (``OwedWrites``):
    their tasks and outcomes, so a restart knows every task made, and no create stays "being sent" to become one of
    unknown outcome. Those are written on the event loop (the follower changes their records there), never while
    another writer holds the journal (that wait would hold up the loop): the next turn tries again."""
    while True:
        await anyio.sleep(RELEASE_OWED_EVERY)
        if runtime.quotes.owes:
            await anyio.to_thread.run_sync(runtime.quotes.release_owed)
        if runtime.owed.owes and not runtime.journal.locked_now():
            runtime.owed.retry()


def _carry_over_todays_spend(journal: Journal, workspace: Path, daily_cap: float) -> tuple[list[str], dict[str, float]]:
    """A fresh journal (the last one was corrupt, or gone) would start today's spend at 0 and let the daily cap be
    spent again: what the call log says today's creates cost is counted against it instead. A log that is there but
    cannot be read (a FIFO or a link put in its place, a file this user may not read) says nothing of today's spend,
    so the whole ``daily_cap`` is counted as spent: the cap holds until midnight, never reopened by a log nobody can
    read. Returns the notice, and what was counted for each task (``counted_on``; none when nothing was)."""
    from datetime import datetime

    from kie_mcp.kie.calllog import UnreadableLog, counted_on

    today = datetime.now().date()
    unreadable, counted = None, {}
    try:
        counted = counted_on(workspace / CALL_LOG, today)
        carried = sum(counted.values())
    except UnreadableLog as err:
        unreadable, carried = err.strerror or str(err), daily_cap
        log.warning("the call log cannot be read (%s): today's spend before the journal reset is unknown", unreadable)
    except Exception as err:  # a log no reader foresaw: as one that cannot be read, never a failed start
        log.exception("the call log could not be read after a journal reset")
        unreadable, counted, carried = f"{type(err).__name__}: {err}", {}, daily_cap
    if carried <= 0:
        return [], {}
    reason = "carried over from the call log after a journal reset"
    if unreadable is not None:
        reason = "today's daily cap, counted as spent: the call log could not be read after a journal reset"
    try:
        with journal.transaction() as db:
            # two servers starting at once on the new journal: the second finds the first's and adds nothing
            if db.execute("SELECT 1 FROM spend WHERE day = ? AND reason = ?", (today.isoformat(), reason)).fetchone():
                return [], counted  # (or an earlier start cut off after it): what each task counts is the same
            Journal.add_spend(db, today, carried, reason, None)
    except Exception as err:  # a journal that cannot be written: the tools that write will explain
        log.warning("could not count today's earlier spend against the cap: %s", err)
        raise _Unfinished from err
    if unreadable is not None:
        return [
            f"Today's spend before that could not be read: the call log {CALL_LOG.as_posix()} cannot be read "
            f"({unreadable}). So that the daily cap still holds, the whole cap ({carried:g} credits, "
            "KIE_MAX_CREDITS_PER_DAY) is counted as spent today: spends are refused until midnight (local time). "
            "https://kie.ai/logs shows what was really spent; the user can raise KIE_MAX_CREDITS_PER_DAY to spend "
            f"more today. Replace {CALL_LOG.as_posix()} with a regular file (or remove it) so that calls are logged "
            "again."
        ], {}
    return [
        f"Today's spend before that, {carried:g} credits by the call log ({CALL_LOG.as_posix()}), is counted against "
        "the daily cap."
    ], counted


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
        )
    else:
        log.warning("KIE_API_KEY is not set: tools that need KIE will explain how to set it")
    # In a worker thread: the start's check of the journal's pages, a lock another program holds on it and a
    # migration's writes never hold up the event loop (pings, the handshake, other requests).
    locked = False
    try:
        journal, notices, unknown_at_start = await anyio.to_thread.run_sync(_open_journal, settings)
    except JournalLocked as err:  # tried again until it opens (``_open_once_free``); every use says it is locked
        log.warning("%s", err)
        locked, journal, notices, unknown_at_start = True, UnavailableJournal(str(err)), (), 0
    runtime = Runtime(
        settings=settings,
        **_journal_parts(settings, journal),
        kie=kie,
        time_scale=time_scale,
        notices=notices,
        unknown_at_start=unknown_at_start,
        journal_retry=anyio.Event() if locked else None,
    )
    try:
        async with anyio.create_task_group() as background:
            if not locked:
                background.start_soon(runtime.follower.run, runtime)  # the one place that polls KIE for task status
            else:  # the follower starts once the journal opens
                background.start_soon(_open_once_free, runtime, background)
            background.start_soon(_sweep_downloads, settings.workspace / "outputs")
            background.start_soon(_forget_old_quotes, runtime)
            background.start_soon(_write_owed, runtime)
            if kie is not None and settings.catalog_sync:
                runtime.catalog_syncing = True  # from now: a quote made before the first look ends says so
                background.start_soon(_keep_catalog_current, runtime, kie)  # never delays start-up or a tool call
            yield runtime
            background.cancel_scope.cancel()
    finally:
        runtime.quotes.release_owed()  # a release still held back: written now if the journal takes it
        runtime.owed.retry()  # and what became of a create
        if kie is not None:
            await kie.aclose()
        runtime.journal.close()  # the one in use: opened at start, or once another program's lock was gone


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
    server on this workspace wrote. A sync only at start-up left prices and withdrawn models as they were that day."""
    while True:
        runtime.catalog_syncing = True
        try:
            await _sync_catalog(runtime, kie)
        finally:
            runtime.catalog_syncing = False
        await anyio.sleep(CATALOG_CHECK_EVERY)


async def _sync_catalog(runtime: Runtime, kie: KieClient) -> None:
    """At most once a day, in the background: read KIE's live models, schemas, prices and success rates."""
    from kie_mcp.catalog.live import cache_path, maybe_sync, models_in_use_from_journal

    path = cache_path(runtime.settings.workspace)
    in_use = await anyio.to_thread.run_sync(models_in_use_from_journal, runtime.settings.workspace)
    fresh = await maybe_sync(kie, path, in_use)  # loads the catalogue itself, only when a sync is due
    if fresh is None:  # not due: the cache may still be newer than what this server holds (another server wrote it)
        from kie_mcp.catalog.live import LiveCatalog

        kept = await anyio.to_thread.run_sync(LiveCatalog.load, path)
        if kept.fetched_at is not None and kept.fetched_at != runtime.live.fetched_at:
            runtime.live = kept
            runtime.catalog = with_live_models(kept)
            log.info("KIE's live model list and prices were taken from the cache of %s", kept.fetched_at)
        return
    runtime.live = fresh
    runtime.catalog = with_live_models(fresh)
    failed = "; ".join(f"{error.endpoint}: {error.message}" for error in fresh.errors[:3])
    if fresh.fetched_at == fresh.attempted_at == fresh.feed_at:
        log.info("KIE's live model list and prices were refreshed (%s)", fresh.fetched_at)
    elif fresh.fetched_at == fresh.attempted_at:  # the list, but not the prices (KIE's feed failed, or 4030)
        log.warning(
            "KIE's live model list was refreshed but its prices could not be (%s); the prices read before are kept "
            "until the next daily refresh",
            failed or "no price feed",
        )
    else:  # KIE or the network failed: what was cached is kept, and the next try is in a while
        failed = failed or "no model list"
        log.warning("KIE's live model list could not be refreshed (%s); the last one read is kept", failed)
