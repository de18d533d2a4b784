"""What a server opening the workspace journal takes from the call log: a journal found lost (corrupt, deleted,
emptied) gets today's spend and the last 14 days' tasks back, and creates a stopped server was sending are matched
to KIE's logged answers or made unknown. The call log is the record that outlives the journal; this module is the
one reader of it at start."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from kie_mcp.catalog import load_catalog
from kie_mcp.catalog.pricing import credits_text
from kie_mcp.config import Settings
from kie_mcp.journal import JOURNAL_ERRORS, Journal
from kie_mcp.kie.calllog import CALL_LOG, Counted, UnreadableLog, counted_since, read_lines
from kie_mcp.spend.ledger import SpendBook, midnight
from kie_mcp.spend.quotes import CHARGES_PAGE
from kie_mcp.tasks import TaskBook

log = logging.getLogger(__name__)


def recover(journal: Journal, settings: Settings) -> tuple[list[str], int]:
    """End what a crash or a lost journal left half done, as a server opens ``journal``: its notices, and how many
    creates became unknown.

    A journal that starts afresh (the last one was corrupt, or it was deleted or emptied while the call log shows
    earlier calls) takes today's spend and the tasks of the last 14 days from the call log. Creates still marked as
    being sent are looked for in the call log (recorded with their task when it shows KIE's answer, as refused when
    it shows KIE created nothing) or become unknown (they may have been created on KIE); creates waiting to be sent
    again after KIE's 429 are recorded as refused, not sent (nothing reached KIE since its refusal). Then the refunds
    the journal shows owed and does not hold are booked (``SpendBook.book_owed_refunds``): those an earlier server could
    not write before it stopped; and the marks that calls' answers went out, which it kept beside the journal
    (``Journal.take_kept_answers``), put in it.
    """
    notices = _renew_from_call_log(journal, settings)
    found: list[str] = []
    taken_up: list[str] = []
    refused: list[str] = []
    unsent: list[str] = []
    try:
        interrupted = journal.recover_interrupted(found, taken_up, refused, unsent)
    except Exception as err:  # a read-only journal: the tools that write will explain
        log.warning("could not mark interrupted creates as unknown: %s", err)
        interrupted = 0
    if len(refused) > len(unsent):
        notices.append(
            f"{len(refused) - len(unsent)} create(s) were being sent when kie-mcp last stopped, and the call log "
            "shows KIE refused them (or they were never sent): nothing was created or charged for them."
        )
    if unsent:
        notices.append(
            f"{len(unsent)} create(s) KIE refused for too many creates at once (429, not counted, not charged) were "
            "waiting to be sent again when kie-mcp last stopped: they were not sent again, and nothing was created "
            "or charged for them (ask for them again if they are still wanted)."
        )
    notices += book_owed_refunds(journal)
    _take_kept_answers(journal)
    if found:
        notices.append(
            f"{len(found)} create(s) were being sent when kie-mcp last stopped, and the call log shows KIE made "
            f"them: task(s) {', '.join(found)}, now recorded, followed and saved like any other."
        )
    if taken_up:
        notices.append(
            f"The call log shows KIE made task(s) {', '.join(taken_up)} for creates that were being sent when "
            "kie-mcp last stopped, in lines an older kie-mcp wrote that do not say which create made which: they are "
            "followed and saved like any other, without a prompt (those creates are listed as unknown)."
        )
    if interrupted:
        notices.append(
            f"{interrupted} create(s) were being sent when kie-mcp last stopped; they may have been created and "
            "charged on KIE, so they are counted against the daily cap. Check https://kie.ai/logs."
        )
    return notices, interrupted


def book_owed_refunds(journal: Journal) -> list[str]:
    """The refunds the journal shows owed and does not hold, booked once (``SpendBook.book_owed_refunds``: the caps
    play no part in a refund): what a create KIE refused or that was never sent, or a task that failed, gives back,
    which a server could not write before it stopped (another program held the journal's lock, the disk was full, or
    it was killed while its creates waited to be sent). The notice saying so."""
    try:
        booked = SpendBook(journal).book_owed_refunds()
    except JOURNAL_ERRORS as err:  # a read-only or full journal: the next start books them
        log.warning("could not book the refunds an earlier kie-mcp could not record: %s", err)
        return []
    if not booked:
        return []
    log.info("booked %d refund(s) an earlier kie-mcp could not record before it stopped", len(booked))
    return [
        f"{len(booked)} refund(s) of {credits_text(sum(booked))} in all (creates KIE refused or that were never sent, "
        "or tasks that failed) could not be recorded before kie-mcp last stopped (another program held its journal, "
        "the disk was full, or it was stopped while creates waited to be sent): they are booked now, on the day of "
        "their reservation, and no longer count against the daily cap."
    ]


def _take_kept_answers(journal: Journal) -> None:
    """Whether the answers of calls reached their clients, which an earlier server kept beside the journal as it could
    not write them there (``Journal.keep_answered``), put in it now: a request sent again is then a new one, as it
    would have been (its call is not taken for cut off). A journal that refuses them leaves them to the next start."""
    try:
        taken = journal.take_kept_answers()
    except (*JOURNAL_ERRORS, OSError) as err:
        log.warning("could not record the answered calls an earlier kie-mcp kept beside its journal: %s", err)
        return
    if taken:
        log.info("recorded that the answers of %d create(s) reached the client, which an earlier kie-mcp kept", taken)


def _renew_from_call_log(journal: Journal, settings: Settings) -> list[str]:
    """A journal that starts afresh takes today's spend and the tasks of the last 14 days from the call log: the
    notices saying so. A fresh journal is marked (``_renewal_marker``) until both are written."""
    notices: list[str] = []
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
        read, unreadable = _read_call_log(settings.workspace)  # once, for both
        try:
            carried, counted = _carry_over_todays_spend(
                journal, settings.workspace, settings.max_credits_per_day, read, unreadable
            )
            notices += carried + _adopt_logged_tasks(journal, settings, counted, read)
        except _Unfinished:  # the journal refused them (a full disk): taken again at the next start
            pass
        else:
            if marker is not None:
                with contextlib.suppress(OSError):
                    marker.unlink(missing_ok=True)
    return notices


class _Unfinished(Exception):
    """Today's spend or the tasks of the call log could not be written into a fresh journal: the start goes on, and
    the next one takes them again (``_renewal_marker``)."""


def _renewal_marker(journal: Journal) -> Path | None:
    """A file beside a fresh journal while today's spend and the call log's tasks are taken into it: a start cut off
    meanwhile (a SIGKILL, a host closing it, a full disk) leaves it, and the next start, which sees a journal that is
    neither new nor reset, takes them again (both steps skip what they already wrote). None for a journal in memory."""
    return Path(f"{journal.path}.renewing") if isinstance(journal.path, Path) else None


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


def _read_call_log(workspace: Path) -> tuple[list[bytes] | None, str | None]:
    """The call log's lines (its moved copy's too, ``calllog.read_lines``), read once for what a fresh journal takes
    from it: today's spend and the tasks of the last 14 days. None and why, for a log that is there but cannot be
    read (a FIFO or a link put in its place, a file this user may not read), or that failed in a way no reader
    foresaw."""
    try:
        return read_lines(workspace / CALL_LOG), None
    except UnreadableLog as err:
        log.warning("the call log cannot be read (%s): today's spend before the journal reset is unknown", err)
        return None, err.strerror or str(err)
    except Exception as err:  # as one that cannot be read, never a failed start
        log.exception("the call log could not be read after a journal reset")
        return None, f"{type(err).__name__}: {err}"


def _adopt_logged_tasks(
    journal: Journal, settings: Settings, counted: dict[str, Counted], read: list[bytes] | None
) -> list[str]:
    """The tasks the call log shows KIE created in the last 14 days (how long KIE keeps them), added to a fresh journal
    as queued, so the follower follows each and saves its results: the journal that held them is lost. Left out:
    tasks the journal has, and those whose results are saved already (their sidecar is in an ``outputs/`` folder
    changed since). Nothing is ever sent again. What each counts against today's cap is what the call log counted for
    it, at the moment it counted it (``counted``, by task: ``_carry_over_todays_spend``), so KIE's charge or refund
    corrects exactly that; one of an earlier day counts nothing until KIE says what it charged, at the moment its
    create was answered. ``read``: the call log's lines (``_read_call_log``; None: it cannot be read, and the
    carry-over counted the whole cap). Returns the notice naming them."""
    from datetime import datetime

    from kie_mcp.kie.calllog import logged_creates
    from kie_mcp.media.downloads import result_name
    from kie_mcp.media.saved import OUTPUTS, sidecars_since
    from kie_mcp.tasks import TaskRecord
    from kie_mcp.tasks.follower import RETENTION_SECONDS

    if read is None:  # the carry-over said so, and counted the whole cap
        return []
    path, since = settings.workspace / CALL_LOG, time.time() - RETENTION_SECONDS
    try:
        logged = logged_creates(path, since, read=read)
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
                made, entry = datetime.fromtimestamp(create.at), counted.get(create.task_id)
                record = TaskRecord(
                    task_id=create.task_id,
                    model=create.model,
                    family=family,
                    kind=spec.kind if spec else None,
                    state="queued",
                    credits_quoted=create.credits_quoted,
                    credits_reserved=entry.credits if entry is not None else 0.0,
                    reserved_on=made.date(),
                    reserved_at=entry.at if entry is not None else create.at,
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


def _carry_over_todays_spend(
    journal: Journal, workspace: Path, daily_cap: float, read: list[bytes] | None, unreadable: str | None
) -> tuple[list[str], dict[str, Counted]]:
    """A fresh journal (the last one was corrupt, or gone) would start today's spend at 0 and let the daily cap be
    spent again: what the call log says today's creates cost is counted against it instead, each at the moment its
    create was answered (so every server on the workspace counts it in its own day, whatever its time zone). A log
    that is there but cannot be read (a FIFO or a link put in its place, a file this user may not read) says nothing
    of today's spend, so the whole ``daily_cap`` is counted as spent now: the cap holds until it resets, never reopened
    by a log nobody can read. ``read``: the log's lines, or None and why it ``unreadable`` (``_read_call_log``).
    Returns the notice, and what was counted for each task, and when (``counted_since``; none when nothing was)."""
    from datetime import datetime

    now = time.time()
    today = datetime.fromtimestamp(now).date()
    since = midnight(today)
    counted: dict[str, Counted] = {}
    carried = daily_cap
    if read is not None:
        try:
            counted = counted_since(workspace / CALL_LOG, since, read=read)
            carried = sum(entry.credits for entry in counted.values())
        except Exception as err:  # a log no reader foresaw: as one that cannot be read, never a failed start
            log.exception("the call log could not be read after a journal reset")
            unreadable, counted, carried = f"{type(err).__name__}: {err}", {}, daily_cap
    if carried <= 0:  # nothing to count, but a lost journal's spend is the first thing a user wonders about
        return [
            f"The call log ({CALL_LOG.as_posix()}) shows no spend today before that, so none is carried over to the "
            f"daily cap; {CHARGES_PAGE} shows what KIE charged."
        ], {}
    reason = "carried over from the call log after a journal reset"
    if unreadable is not None:
        reason = "today's daily cap, counted as spent: the call log could not be read after a journal reset"
    try:
        with journal.transaction() as db:
            # two servers starting at once on the new journal: the second finds the first's and adds nothing
            if db.execute("SELECT 1 FROM spend WHERE counted_at >= ? AND reason = ?", (since, reason)).fetchone():
                return [], counted  # (or an earlier start cut off after it): what each task counts is the same
            if unreadable is not None:
                Journal.add_spend(db, today, carried, reason, None, counted_at=now)
            for entry in (entry for entry in counted.values() if entry.credits):  # none when the log is unreadable
                day = datetime.fromtimestamp(entry.at).date()
                Journal.add_spend(db, day, entry.credits, reason, None, counted_at=entry.at)
    except Exception as err:  # a journal that cannot be written: the tools that write will explain
        log.warning("could not count today's earlier spend against the cap: %s", err)
        raise _Unfinished from err
    if unreadable is not None:
        try:  # midnight, or later when servers in other time zones share the workspace (``SpendBook.reset_at``)
            until = SpendBook(journal).reset_at() or "midnight (local time)"
        except JOURNAL_ERRORS:
            until = "midnight (local time)"
        return [
            f"Today's spend before that could not be read: the call log {CALL_LOG.as_posix()} cannot be read "
            f"({unreadable}). So that the daily cap still holds, the whole cap ({credits_text(carried)}, "
            f"KIE_MAX_CREDITS_PER_DAY) is counted as spent today: spends are refused until {until}. "
            "https://kie.ai/logs shows what was really spent; the user can raise KIE_MAX_CREDITS_PER_DAY to spend "
            f"more today. Replace {CALL_LOG.as_posix()} with a regular file (or remove it) so that calls are logged "
            "again."
        ], {}
    return [
        f"Today's spend before that, {credits_text(carried)} by the call log ({CALL_LOG.as_posix()}), is counted "
        f"against the daily cap; {CHARGES_PAGE} shows what KIE really charged."
    ], counted
