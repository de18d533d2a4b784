"""The task journal: one SQLite file per workspace that outlives the server process.

Everything a tool reports is written here first: quotes, each create attempt (before the request is sent),
task ids as soon as KIE returns them, status changes, results, credits and downloaded files. A restarted or
second server on the same workspace reads the same file. Writes that decide money (using a quote, reserving
spend under a cap) run in ``BEGIN IMMEDIATE`` transactions, so two processes cannot both win.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import functools
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import stat
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import anyio

try:
    import resource  # a file size limit (``ulimit -f``) the process was started with: POSIX only
except ImportError:  # Windows: no such limit
    resource = None  # type: ignore[assignment]

from kie_mcp import processes
from kie_mcp.journaluse import JournalUse, ShareRefused, identity
from kie_mcp.redact import redact, redact_value
from kie_mcp.regular import kind_of
from kie_mcp.words import shortened, timestamp

if TYPE_CHECKING:
    from kie_mcp.kie.calllog import LoggedCreate

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS quotes (
    quote_id TEXT PRIMARY KEY, model TEXT NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL,
    expires REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
    kind TEXT NOT NULL DEFAULT 'estimate', used_by TEXT, used_at REAL, asked TEXT, shape TEXT, inputs TEXT,
    declined_at REAL, request TEXT, asked_at REAL, declined_in TEXT);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY AUTOINCREMENT, day TEXT NOT NULL, delta REAL NOT NULL, reason TEXT NOT NULL,
    ref TEXT, at REAL NOT NULL, counted_at REAL, owner TEXT, creates INTEGER, unsent INTEGER);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id TEXT PRIMARY KEY, model TEXT NOT NULL, family TEXT NOT NULL, approved_by TEXT, quote_id TEXT,
    prompt TEXT, params TEXT, options_key TEXT, credits_quoted REAL, state TEXT NOT NULL, task_id TEXT, error TEXT,
    session TEXT, created REAL NOT NULL, updated REAL NOT NULL, digest TEXT, owner TEXT,
    answered INTEGER NOT NULL DEFAULT 1, kind TEXT, sandbox INTEGER, parent_task_id TEXT, operation TEXT,
    reserved REAL, reserved_on TEXT, reserved_at REAL, sent_params TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, attempt_id TEXT, model TEXT NOT NULL, state TEXT NOT NULL, prompt TEXT,
    session TEXT, record TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, parent_task_id TEXT);
CREATE TABLE IF NOT EXISTS uploads (
    sha256 TEXT PRIMARY KEY, url TEXT NOT NULL, uploaded REAL NOT NULL, expires REAL);
CREATE TABLE IF NOT EXISTS answers (
    task_id TEXT NOT NULL, body TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS follows (
    task_id TEXT PRIMARY KEY, owner TEXT NOT NULL, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    mime TEXT NOT NULL, source_url TEXT NOT NULL, created REAL NOT NULL, holds_key INTEGER,
    PRIMARY KEY (task_id, idx));
"""

# Every lookup a tool call makes is an index search (tests/test_per_call.py checks the plans), so a call costs the
# same with 50 or 50,000 tasks in the journal. Each index costs every insert a page write (~40 us): none serves only
# the daily background reads (quotes by date).
INDEXES = {
    "quotes_digest_kind": "quotes(digest, kind, created)",  # the question asked for a request (open/last_question)
    # the question asked for a request with local files, whatever their bytes (``asked_inputs``): questions only
    "quotes_shape": "quotes(shape, created) WHERE shape IS NOT NULL",
    # Today's spend, read from the index alone: the entries counted since a moment (a server's last midnight), and
    # those an older kie-mcp wrote with only their day's label (``counted_at`` NULL), by that label.
    "spend_moment": "spend(counted_at, day, delta)",
    "spend_ref": "spend(ref, reason)",  # a charge or refund is folded in once per task
    # reservations with creates neither sent nor given back yet: none but while a call sends (``SpendBook.unsent``)
    "spend_unsent": "spend(counted_at) WHERE unsent > 0",
    "attempts_state_created": "attempts(state, created)",  # unknown creates, interrupted sends
    "attempts_quote": "attempts(quote_id)",  # the tasks a quote approved (replays)
    "attempts_task": "attempts(task_id)",  # a result's sidecar
    "attempts_digest": "attempts(digest, created)",  # a host's retry of a call whose answer it never got
    # list_tasks, newest first and a page at a time: ties of creation time broken by task id (``TaskCursor``)
    "tasks_created_id": "tasks(created, task_id)",
    "tasks_attempt": "tasks(attempt_id)",
    "tasks_state_created_id": "tasks(state, created, task_id)",
    "tasks_model_created_id": "tasks(model, created, task_id)",
    "tasks_charged": "tasks(model, options_key, updated) WHERE state = 'succeeded'",  # charged_before
    "tasks_parent": "tasks(parent_task_id, created) WHERE parent_task_id IS NOT NULL",  # a clip's follow-ups
    # what another server on the workspace recorded since the follower last read it (``tasks_changed_since``)
    "tasks_updated": "tasks(updated)",
    "answers_task": "answers(task_id)",
    "files_path": "files(path)",  # which task saved a file a join names by its path (``file_at``)
    "files_source": "files(source_url)",  # a result link given back as an input: KIE's own, bound (``saved_from``)
    # the saved files whose bytes held the API key, by path (``key_held_in``): none but those, so no insert's cost
    "files_key_held": "files(path) WHERE holds_key = 1",
    # prompts an older kie-mcp (or a hand edit) wrote without their folded form: folded before the next text search
    "tasks_unfolded": "tasks(created) WHERE prompt_folded IS NULL AND prompt IS NOT NULL",
    # list_tasks by a session folder's name: the labels naming that folder (``session_folder_of``), and the labels an
    # older kie-mcp (or a hand edit) wrote without it, named before the next search by a session (``name_folders``)
    "tasks_session_folder": "tasks(session_folder)",
    "tasks_unnamed": "tasks(created) WHERE session_folder IS NULL AND session IS NOT NULL",
}
# Indexes of older journals that the ones above replace. Not among them, and left where it is: ``spend_day_delta``
# (``spend(day, delta)``), by which an older kie-mcp sharing the journal reads a day's spend by its label alone; it
# makes it at its start when it is missing, and this one no longer needs it.
SUPERSEDED = (
    "spend_day",
    "attempts_state",
    "quotes_digest",
    "tasks_created",
    "tasks_state_created",
    "tasks_model_created",
)
# Columns of create attempts added since the first journal: the request's digest and the process sending it (whose
# death makes a create "being sent" an unknown one), and whether the call's answer reached the client (a host that
# retries a call it cancelled gets what the first one made, never a second create). And what the task it makes is
# besides its model: its kind (what its results are checked against when saved), whether it is a sandbox one, and
# the task it continues and how (continue_video): a task a restart finds in the call log keeps them
# (``_record_logged``). NULL in the attempts of an older kie-mcp.
ATTEMPT_COLUMNS = {
    "digest": "TEXT",
    "owner": "TEXT",
    "answered": "INTEGER NOT NULL DEFAULT 1",
    "kind": "TEXT",
    "sandbox": "INTEGER",
    "parent_task_id": "TEXT",
    "operation": "TEXT",
    # The create's share of its call's reservation and the day that reservation was booked on: the refund a create
    # KIE refused (or that started nothing new) is owed, which a start books when the server that owed it stopped
    # before the journal took it (``Ledger.book_owed_refunds``).
    "reserved": "REAL",
    "reserved_on": "TEXT",
    # The moment that reservation was made (epoch seconds): what its refund counts at (``Ledger.adjust``). NULL in the
    # attempts of an older kie-mcp, whose refunds go to the day ``reserved_on`` names.
    "reserved_at": "REAL",
    # The request's input fields as they were sent to KIE, each local input file as the link it was uploaded as
    # (kept redacted, as ``params``, the request as it was given, is): what a task found at KIE after the create's
    # answer was lost is compared with (``tasks.lost``), and nothing else reads it, so no sidecar or answer shows an
    # upload link. NULL when the request was sent as it was given (no local input file), and in the attempts of an
    # older kie-mcp (whose ``params`` kept a local file's path: such a create never joins a task found).
    "sent_params": "TEXT",
}
# Columns of quotes added since: the process that used a quote, and when (a call whose create is not in the journal
# yet, its input files still uploading, is known to be under way in another process too); a question's text as it
# was shown (the 2026-07-28 protocol asks it again when the answer comes back and compares the two); for a question
# about a request with local files, the request with those files named by path (``shape``) and their hashes then
# (``inputs``): the answer comes back on a new request, which must be refused when a file's bytes changed meanwhile.
# And when the person declined the quote on the approval card (``QuoteBook.decline``): kept on a quote a call was
# using then too, so that call sends no create after it, and never gives the quote back for a later spend. And what
# an estimate's quote priced, argument by argument (``quotes.request_record``: a fingerprint of each value, and the
# value redacted and cut short), so that a call with other arguments is told which changed. And, for a confirmation
# question, when it was last put to the person (``QuoteBook.keep_asked_text``): a No to it stops the calls of its
# request approved since then, which the question could not tell the person of (``QuoteBook.decline_in_form``). And
# where the person declined: NULL on the approval card, "form" in the confirmation form (a No there), so that every
# answer says which.
QUOTE_COLUMNS = {
    "used_by": "TEXT",
    "used_at": "REAL",
    "asked": "TEXT",
    "shape": "TEXT",
    "inputs": "TEXT",
    "declined_at": "REAL",
    "request": "TEXT",
    "asked_at": "REAL",
    "declined_in": "TEXT",
}
# Columns of saved files added since: whether the file's bytes held the API key as it was saved (KIE echoed it into
# its metadata): 1 so, 0 not, NULL in the rows of an older kie-mcp, which knew it only in the memory of the process
# that saved it. A restart, or another server on the workspace, still says so of the file, and never serves it
# (``Journal.key_held_in``, ``downloads.key_held``). An older kie-mcp names the columns it inserts: its rows go on.
FILE_COLUMNS = {"holds_key": "INTEGER"}
# Columns of uploads added since: until when an upload may be reused, when KIE's answer said how long it keeps it.
UPLOAD_COLUMNS = {"expires": "REAL"}
# Columns of spend entries added since: the moment the entry counts at against the daily cap (epoch seconds): a
# reservation's own, and for a correction (a refund, KIE's charge) the moment of the reservation it corrects. Every
# server counts the entries after its own last midnight, whatever time zone wrote them (``Ledger.spent_today``).
# NULL in the entries of an older kie-mcp: counted by their day's label (``day``, the writer's local date).
# And, on a reservation, the process that made it (``processes.this_process``), how many creates it is for, and how
# many of them are neither begun (``begin_attempt``, which counts it down with its attempt) nor given back as not sent
# (``Ledger.adjust``'s ``settles``, which counts it down with the refund): what a reservation still owes back once its
# process is gone (``SpendBook.book_owed_refunds``), whatever it owed in memory then. NULL on every other entry, and
# on the reservations of an older kie-mcp.
SPEND_COLUMNS = {"counted_at": "REAL", "owner": "TEXT", "creates": "INTEGER", "unsent": "INTEGER"}
# A reservation's create begun or given back as not sent: one fewer to give back (``SPEND_COLUMNS``). Value: its id.
UNSENT_DOWN = "UPDATE spend SET unsent = unsent - 1 WHERE id = ? AND unsent > 0"
# The clocks of the kie-mcp servers on this workspace: each clock (a computer and its time zone, ``Ledger.clock``) with
# its offset from UTC now (seconds) and the last moment a server on it said so: today's spend counts from the earliest
# of their last midnights (``Ledger.now``), so servers in different time zones get one daily cap between them, however
# they take turns. One row a clock, its offset replaced when summer time begins or ends, so a server's own offset of
# before the change never reads as another zone. Not in SCHEMA: a read-only journal of an older kie-mcp still opens
# without it (``_add_clocks``); an older kie-mcp ignores it.
CLOCKS = (
    "CREATE TABLE IF NOT EXISTS clock_zones"
    " (clock TEXT PRIMARY KEY, offset_seconds INTEGER NOT NULL, seen REAL NOT NULL)"
)
CALL_RUNNING, CALL_ANSWERED, CALL_CUT_OFF = 0, 1, 2  # attempts.answered
# A mark kept on the disk beside the journal (``Journal.keep_answered``), put in it by a start: that the answer went
# out stands whatever was marked; that the call was cut off, only over a call still marked running (a replay that went
# out since, whoever sent it, stands). Values: the mark, the attempt, CALL_RUNNING, the mark, CALL_ANSWERED.
KEPT_ANSWER = "UPDATE attempts SET answered = ? WHERE attempt_id = ? AND (answered = ? OR ? = ?)"

# Kept right by SQLite whoever writes, an older kie-mcp on the same workspace too:
# - tasks.options_key: the price-deciding options of the attempt that created the task (``charged_before``);
# - spend_total: the sum of every spend entry (``total_spent``, without adding up the whole table).
_OPTIONS_OF_ATTEMPT = (
    "BEGIN UPDATE tasks SET options_key = (SELECT options_key FROM attempts WHERE attempt_id = NEW.attempt_id)"
    " WHERE task_id = NEW.task_id; END"
)
TRIGGERS = {
    "tasks_options_on_insert": "AFTER INSERT ON tasks WHEN NEW.attempt_id IS NOT NULL AND NEW.options_key IS NULL "
    + _OPTIONS_OF_ATTEMPT,
    "tasks_options_on_update": "AFTER UPDATE OF attempt_id ON tasks "
    "WHEN NEW.attempt_id IS NOT NULL AND NEW.options_key IS NULL " + _OPTIONS_OF_ATTEMPT,
    "spend_total_on_insert": "AFTER INSERT ON spend BEGIN UPDATE spend_total SET total = total + NEW.delta; END",
    "spend_total_on_delete": "AFTER DELETE ON spend BEGIN UPDATE spend_total SET total = total - OLD.delta; END",
    "spend_total_on_update": "AFTER UPDATE OF delta ON spend "
    "BEGIN UPDATE spend_total SET total = total - OLD.delta + NEW.delta; END",
    # A prompt changed by a writer that does not fold (an older kie-mcp, a hand edit) loses its stale folded form;
    # the next text search folds it again (``Journal.fold_prompts``).
    "tasks_prompt_refold": "AFTER UPDATE OF prompt ON tasks WHEN NEW.prompt IS NOT OLD.prompt AND "
    "NEW.prompt_folded IS OLD.prompt_folded BEGIN UPDATE tasks SET prompt_folded = NULL WHERE rowid = NEW.rowid; END",
    # So does a session label changed by one: the next search by a session names its folder again (``name_folders``).
    "tasks_session_refold": "AFTER UPDATE OF session ON tasks WHEN NEW.session IS NOT OLD.session AND "
    "NEW.session_folder IS OLD.session_folder BEGIN UPDATE tasks SET session_folder = NULL WHERE rowid = NEW.rowid;"
    " END",
}

# A create "being sent" for longer than this was interrupted, whoever named itself its sender (a process id can be
# reused after a restart; another machine's, or an older kie-mcp's, cannot be checked): longer than any create can
# take, its waits for KIE's window, its resends after a 429 and their answers (``client.LONGEST_CREATE``, 696 s at
# the default settings), so a live create is never called interrupted.
SEND_LIMIT = 720.0
# The state of a create attempt KIE refused with 429 (documented as refused: not counted, not charged) while it waits
# for the window's edge to be sent again: not sent, for now. Marked in the step that reads the 429 (``attempt_waiting``)
# and marked "sending" again, durably, in the shielded step right before the resend (``attempt_sending_again``): a
# server stopped or killed meanwhile left a create that never reached KIE since its refusal, which a start records as
# refused (its share of the reservation given back), never of unknown outcome. A journal that cannot take the first
# mark leaves it "sending" (unknown should the server stop before it is answered): never "not sent" by a guess; one
# that cannot take the second sends nothing.
WAITING = "waiting"
ON_ITS_WAY = ("sending", WAITING)  # create attempts on their way to KIE: being sent, or waiting to be sent again
WAITED_UNSENT = (
    "Not sent again: KIE refused this create for too many creates at once (429, not counted, not charged) and the "
    "server stopped while it waited to send it again; nothing was created or charged for it"
)
INTERRUPTED = (
    "the server stopped while this create was being sent, so KIE may have created (and charged) it; check "
    "https://kie.ai/logs before trying again"
)


def interrupted_among(task_ids: list[str]) -> str:
    """Why a create a stopped server was sending is unknown when the call log shows tasks KIE made for it or for
    another create sent about then (``Journal.recover_interrupted``), which for which it cannot tell."""
    return (
        "the server stopped while this create was being sent; the call log shows KIE made task(s) "
        f"{', '.join(task_ids)} for it or for another create of the same model sent about then (an older "
        "kie-mcp's log does not say which), and those are followed and saved. Whether this one made one of them "
        "(and was charged for it) is unknown; check https://kie.ai/logs before trying again"
    )


def never_resent(attempt: sqlite3.Row) -> bool:
    """Whether ``attempt`` waits to be sent again after KIE's 429 (``WAITING``) by a process that is gone: it never
    reached KIE since its refusal, so it created and charged nothing, whatever a start has recorded of it yet."""
    return attempt["state"] == WAITING and processes.owner_gone(attempt["owner"]) is True


def attempt_story(attempt_id: str, attempt: sqlite3.Row | None) -> str:
    """What became of a create attempt (``attempt``: its row, or None when this journal has none by that id), and
    where its task, if any, is found: check_task's answer to an attempt id, which is never asked of KIE."""
    if attempt is None:
        return (
            f"This workspace's journal has no create {attempt_id}: check the id (list_tasks names the creates of "
            "unknown outcome), or use a task id from generate_image, generate_video, list_tasks or "
            "https://kie.ai/logs."
        )
    what = f"It was a {attempt['model']} create sent at {timestamp(attempt['created'])}"
    why = f" ({shortened(attempt['error'], 200)})" if attempt["error"] else ""
    if attempt["state"] == "created" and attempt["task_id"]:
        return f"{what}; KIE made task {attempt['task_id']}: check_task(task_id='{attempt['task_id']}') shows it."
    if attempt["state"] == "refused":
        return f"{what}; KIE refused it{why}, so nothing was created or charged."
    if attempt["state"] == "sending":
        return f"{what}; it is still being sent. Its call returns the task id, and list_tasks shows the task."
    if attempt["state"] == WAITING:
        return (
            f"{what}; KIE refused it for too many creates at once (429, not counted, not charged), and it waits to "
            "be sent again at the edge of KIE's create window (not sent if its server stops first). Its call returns "
            "the task id, and list_tasks shows the task."
        )
    return (
        f"{what}, and KIE gave no clear answer{why}: it may have made a task, and charged it, whose id kie-mcp "
        "never got. Look on https://kie.ai/logs for a task of that model at that time; check_task takes its task "
        "id from there. Check before trying the create again."
    )


# Another writer's lock on the journal (another kie-mcp mid-write, a process suspended mid-transaction, a database
# browser): SQLite waits for it up to BUSY_SECONDS. On the event loop that wait blocks the whole loop (pings, other
# calls, cancellations), so a tool call that writes waits for a lock held when it starts in a worker thread first
# (``writable``; an estimate, at its one write: ``unless_locked``), and the writes that decide money are done
# again in a worker thread when the lock outlasted that (``off_loop_when_locked``). The event loop's own connection
# keeps the whole wait: the review found that a shorter one there (a quarter second) failed writes nobody retried,
# such as a refused create's refund, which then counted against the daily cap for good.
BUSY_SECONDS = 30.0
# A server's start waits this long for a lock another program holds on the journal (a write, or a database tool in
# exclusive mode), in a worker thread: still held then, the journal is tried again, each try waiting as long, until it
# opens (``runtime``), and every call meanwhile says it is locked and by whom.
OPEN_WAIT = 0.5
# How long a start waits for another server moving a damaged journal aside (it holds the journal alone until the call
# log's spend and tasks are in the fresh one): longer, the journal is tried again until it opens, as when locked.
MOVE_WAIT = 5.0
T = TypeVar("T")


def is_locked(err: BaseException) -> bool:
    """Whether ``err`` is SQLite's "database is locked" (another writer held the journal longer than we waited)."""
    text = str(err).lower()
    return isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def journal_path(workspace: Path) -> Path:
    return workspace / ".kie-mcp" / "journal.sqlite3"


def _free_name(path: Path) -> Path:
    """A name beside ``path`` to keep a damaged journal under, taken by no file (nor its ``-wal`` or ``-shm``): the
    time, and a part of its own, so two moved aside in one second never share one, and none replaces another."""
    while True:
        kept = path.with_name(f"{path.name}.corrupt-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}")
        if not any(kept.with_name(kept.name + suffix).exists() for suffix in ("", "-wal", "-shm")):
            return kept


def _is_corrupt(err: BaseException) -> bool:
    """Whether ``err`` is SQLite saying the journal's file is damaged (or is no database at all)."""
    text = str(err).lower()
    return isinstance(err, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    )


def _is_full(err: BaseException) -> bool:
    return "full" in str(err).lower() or getattr(err, "errno", None) == errno.ENOSPC


def _size_limit_met(err: BaseException) -> int | None:
    """The limit on the size of a file this process writes (``ulimit -f``, in bytes) when ``err`` is likely that limit
    met: a write refused as too large (EFBIG), or SQLite's "disk I/O error" (how it reports one) while a limit is
    set. None otherwise, and where there are no such limits (Windows)."""
    too_large = getattr(err, "errno", None) == errno.EFBIG or "disk i/o error" in str(err).lower()
    if not too_large or resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _not_a_file(path: Path) -> str | None:
    """What is at ``path`` when it is there but no file (a folder, a FIFO, a socket, a device), in words; else
    None. SQLite cannot open such a thing as its database, and no write to the workspace makes it one."""
    try:
        mode = path.stat().st_mode
    except OSError:  # nothing there (a journal not made yet), or a link to nothing: SQLite's own error says
        return None
    return None if stat.S_ISREG(mode) else kind_of(mode)


def unavailable_reason(workspace: Path, err: BaseException) -> str:
    """Why the journal cannot be used, and what the user can do about it."""
    folder = workspace / ".kie-mcp"
    keeps = "It keeps every quote, spend and task there, so nothing that costs credits can run without it."
    try:
        not_a_folder = folder.exists() and not folder.is_dir()  # a file (or a link to one) where the folder goes
    except OSError:  # a workspace it may not look into: the reason below says so
        not_a_folder = False
    if not_a_folder:
        return (
            f"kie-mcp cannot use its journal: {folder} is a file, and kie-mcp keeps its journal in a folder of that "
            f"name. {keeps} Rename or remove that file (or set KIE_WORKSPACE to another folder), then restart the "
            "server. Nothing was spent."
        )
    path = journal_path(workspace)
    other = _not_a_file(path)
    if other is not None:
        return (
            f"kie-mcp cannot use its journal: {path} is {other}, not a file, and kie-mcp keeps its journal in a file "
            f"of that name. {keeps} Move that {other.removeprefix('a ')} out of the way (or rename it), then restart "
            "the server: it starts a new journal there. Nothing was spent."
        )
    if is_locked(err):  # tried again before every call until it opens (``runtime``): no restart
        fix = storage_fix(err, "call again: kie-mcp opens the journal as soon as it is free, without a restart")
    elif _is_full(err) or _size_limit_met(err) is not None or _is_corrupt(err):
        fix = storage_fix(err, "restart the server")
    else:
        fix = f"Make {workspace} a writable folder (or set KIE_WORKSPACE to one), then restart the server."
    why = _why_unwritable(err, workspace)
    return f"kie-mcp cannot use its journal in {folder} ({why}). {keeps} {fix} Nothing was spent."


def _why_unwritable(err: BaseException, workspace: Path) -> str:
    """Why the journal could not be made or opened: a folder on a read-only disk (EROFS) said so in plain words, the
    folder named; any other error as it came. The journey: the answer said "(OSError: [Errno 30] Read-only file
    system: '/x/sandbox')"."""
    if isinstance(err, OSError) and err.errno == errno.EROFS:
        where = os.fsdecode(err.filename) if err.filename else str(workspace)
        return f"{where} is read-only: it is on a read-only disk, where nothing can be written"
    return f"{type(err).__name__}: {err}"


def in_use_reason(path: Path) -> str:
    """Why a damaged journal was not moved aside: another server still has it open (``Journal.open_for_server``)."""
    return (
        f"kie-mcp cannot use its journal: {path} is damaged (the check of its pages at the start found errors), and "
        "another kie-mcp process on this workspace (another client's server) still has it open, so it was not moved "
        "aside: that process would go on recording its tasks and spend in the moved file, where no server reads "
        "them. kie-mcp keeps every quote, spend and task there, so nothing that costs credits can run until then. "
        "Close every other client of this workspace (or restart them): once no other kie-mcp process has it open, "
        "this server moves the damaged file aside (kept beside it), starts a fresh journal and takes today's spend "
        "and recent tasks from the call log, without a restart. Nothing was spent."
    )


def storage_fix(err: BaseException, then: str = "try again") -> str:
    """What to do about a failed write to the workspace (free space, make it writable, or check it; wait for
    another writer's lock; restart, for a damaged journal), and ``then``."""
    text = str(err).lower()
    if is_locked(err):
        return (
            "The workspace journal (.kie-mcp/journal.sqlite3) is locked by another program or kie-mcp process on this "
            f"workspace (a database browser, a process stopped mid-write): close it, or wait a moment, then {then}."
        )
    if _is_corrupt(err):  # found again by the next start's check (``Journal.open_for_server``), which moves it aside
        return (
            "The workspace journal (.kie-mcp/journal.sqlite3) is damaged. Restart the server: at its start kie-mcp "
            "moves the damaged file aside (kept beside it, and named in its first answer), starts a fresh journal and "
            "counts today's spend from the call log against the daily cap; it waits to do so until no other kie-mcp "
            "server has that journal open (another client of this workspace: close or restart it too). Then try again "
            "(a quote given before the restart stays in the old file: ask for a new estimate)."
        )
    if _is_full(err):
        return f"The disk is full: free some space and {then}."
    if (limit := _size_limit_met(err)) is not None:
        return (
            f"kie-mcp's process may not write a file larger than {limit:,} bytes (a file size limit, ulimit -f, set "
            "where it is started), and the workspace needs more: remove that limit from the command or shell that "
            "starts kie-mcp, then restart the server."
        )
    if "readonly" in text or "read-only" in text or getattr(err, "errno", None) in (errno.EACCES, errno.EROFS):
        return (
            "The workspace is read-only or not writable: make it writable (or set KIE_WORKSPACE to a writable one)"
            + ("." if then == "try again" else f", then {then}.")
        )
    return f"Check the workspace folder (free space, permissions), then {then}."


def storage_problem(err: BaseException) -> str:
    """A failed write to the workspace (journal, logs, outputs), in words that say what to do."""
    what = "its journal" if is_locked(err) or _is_corrupt(err) else "its workspace"
    return (
        f"kie-mcp could not write to {what} ({type(err).__name__}: {err}). {storage_fix(err)} Nothing was "
        "spent by this call unless it returned a task id."
    )


def _task_filter(
    *,
    state: str | None,
    model: str | None,
    since: datetime | None,
    text: str | None,
    session: str | None = None,
    older_than: tuple[float, str] | None = None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its values) of a search of the tasks (``find_tasks``, ``count_tasks``); with
    ``older_than`` (the creation time and id of the last task of a page), only the tasks after it, newest first."""
    clauses: list[str] = []
    args: list[Any] = []
    if state:
        clauses.append("state = ?")
        args.append(state)
    if model:
        clauses.append("model = ?")
        args.append(model)
    if since:
        clauses.append("created >= ?")
        args.append(since.timestamp())
    if text:  # in any letter case and Unicode form, every character as itself ("50%" is no wildcard)
        # Against the prompt folded when it was saved; one written without (``fold_prompts``) is folded here.
        clauses.append("prompt IS NOT NULL AND instr(COALESCE(prompt_folded, kie_fold(prompt)), ?) > 0")
        args.append(folded(text))
    if session:  # the session label as kept (redacted), in any letter case: words of it find it
        from kie_mcp.media.downloads import last_named_day, named_folder_name  # loaded with the first search
        from kie_mcp.media.saved import folder_label

        if (folder := named_folder_name(session, capped=False)) is None:
            clauses.append("session IS NOT NULL AND instr(kie_fold(session), ?) > 0")
            args.append(folded(redact(session)))
        else:  # a session folder's name (outputs/2026-04-20-ugc-batch): the labels naming it, and what is saved in it
            # A label naming this very folder, as typed (2026-04-20-UGC.Batch) before any file is saved, by the
            # folder kept with it (``session_folder_of``; ``name_folders`` names it for rows an older kie-mcp wrote);
            # words of a label (as above) naming no folder (outputs/<d>-ugc never finds <d>-ugc-batch), or one of a
            # day no new folder is made for (after ``last_named_day``); a file in the folder, or in its stand-in
            # ``_N``, or in the folder the label names as written (``<d>-x_2``, the stand-in of a link <d>-x).
            named = "COALESCE(session_folder, kie_session_folder(session))"
            saved_in = f"outputs/{folder}"
            written = f"outputs/{_glob_literal(getattr(folder_label(session), 'bare', folder))}/*"
            clauses.append(
                f"((session IS NOT NULL AND ({named} = ? OR (({named} = '' OR substr({named}, 1, 10) > ?)"
                " AND instr(kie_fold(session), ?) > 0)))"
                " OR EXISTS (SELECT 1 FROM files WHERE files.task_id = tasks.task_id"
                " AND (substr(files.path, 1, ?) = ? OR files.path GLOB ? OR files.path GLOB ?)))"
            )
            args += [folder, last_named_day().isoformat(), folded(redact(session)), len(saved_in) + 1, f"{saved_in}/"]
            args += [f"{_glob_literal(saved_in)}_[0-9]*/*", written]
    if older_than is not None:  # a keyset: pages never skip or repeat a task, whatever is added meanwhile
        clauses.append("(created, task_id) < (?, ?)")
        args += [older_than[0], older_than[1]]
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


FOLD_SECONDS = 1.0  # the longest a text search spends folding prompts an older kie-mcp kept (``fold_prompts``)
ATTEMPT_ID = re.compile(r"a_[0-9a-f]{16}")  # kie-mcp's id of a create attempt (``begin_attempt``), never KIE's
CURSOR_PREFIX = "c1."  # the version of a list_tasks cursor's layout


class BadCursor(ValueError):
    """A list_tasks cursor not in the form ``page_cursor`` gives (cut short, garbled; it is not signed, so one written
    by hand in that form lists from the task it names), or one given with other filters than the listing that gave
    it: the message says what to do."""


def _filters_digest(filters: dict[str, Any]) -> str:
    """The filters of a listing (state, model, since, text, session) as a short digest, so that a cursor is only
    ever used to continue the listing that gave it (words to find, in any letter case)."""
    kept = {}
    for name, value in sorted(filters.items()):
        if value:
            kept[name] = (
                folded(value)
                if name in ("text", "session")
                else value.isoformat()
                if isinstance(value, datetime)
                else value
            )
    return hashlib.sha256(json.dumps(kept, ensure_ascii=False).encode()).hexdigest()[:16]


def page_cursor(last: tuple[float, str], filters: dict[str, Any]) -> str:
    """The cursor that continues a listing after its task ``last`` (creation time, task id): opaque to agents."""
    body = json.dumps([last[0], last[1], _filters_digest(filters)], ensure_ascii=False, separators=(",", ":"))
    return CURSOR_PREFIX + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def read_cursor(cursor: str, filters: dict[str, Any]) -> tuple[float, str]:
    """The point a cursor of ``page_cursor`` continues from. Raises ``BadCursor`` for anything else (text that is no
    cursor, one cut short or changed, a creation time that is no finite number) and for a cursor of a listing
    with other filters."""
    start_again = "Call list_tasks without cursor to start again from the newest task."
    try:
        if not cursor.startswith(CURSOR_PREFIX):
            raise ValueError
        packed = cursor.removeprefix(CURSOR_PREFIX)
        created, task_id, digest = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
        if isinstance(created, bool) or not isinstance(created, int | float) or not math.isfinite(created):
            raise ValueError
        if not isinstance(task_id, str) or not isinstance(digest, str):
            raise ValueError
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise BadCursor(
            "cursor is not one list_tasks gave (a next_cursor, whole and unchanged); no task was listed. " + start_again
        ) from None
    if digest != _filters_digest(filters):
        raise BadCursor(
            "cursor continues a list_tasks with other filters; no task was listed. Pass it with the same state, "
            "model, since, text and session as the call that gave it. " + start_again
        )
    return float(created), task_id


def _finite(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a whole number too large for a float
        return False


def folded(text: str | None) -> str:
    """``text`` as searches compare it: NFKC and case-folded, so "Кот" finds "кот", "Über" finds "über", "ÉTÉ"
    finds "été" and a café typed on a Mac (NFD) finds one typed elsewhere. SQLite's own LOWER folds ASCII only."""
    return unicodedata.normalize("NFKC", text or "").casefold()


@functools.lru_cache(maxsize=4096)  # a session's tasks share one label: each is worked out once, not once a row
def session_folder_of(label: object) -> str | None:
    """What the journal keeps of a session label (as kept, redacted) in ``tasks.session_folder``: the name of the
    session folder it names (``downloads.named_folder_name``, without today's cap, so it never changes with the
    clock: ``2026-04-20-UGC.Batch`` names ``2026-04-20-ugc-batch``, ``..._2`` names ``...-2``), ``''`` for a label
    naming none, None for no label (or a value no label is, from a hand edit)."""
    from kie_mcp.media.downloads import named_folder_name  # loaded by the first use that needs it

    if not isinstance(label, str):
        return None
    return named_folder_name(label, capped=False) or ""


def _search_functions(db: sqlite3.Connection) -> None:
    """The task search's own SQL functions on a connection: ``kie_fold`` (its letter case, ``folded``) and
    ``kie_session_folder`` (``session_folder_of``, for a row kept without it until ``name_folders`` names it)."""
    db.create_function("kie_fold", 1, folded, deterministic=True)
    db.create_function("kie_session_folder", 1, session_folder_of, deterministic=True)


def session_saved_in(workspace: Path, labels: Iterable[str], folder: Path) -> bool:
    """Whether the journal shows a task of one of these session ``labels`` (as typed: kept redacted) with a file saved
    in ``folder`` (``outputs/<name>``) or the ``<name>_N`` ``real_folder`` made beside it: whether a session began in
    that folder (``downloads._double_dated``). False when the journal cannot tell (none yet, unreadable). One range of
    the files' path index, on a read-only connection of its own."""
    path = journal_path(workspace)
    kept = list(dict.fromkeys(redact(label) for label in labels if label))
    if not kept or not path.is_file():
        return False
    start = f"{OUTPUTS_PREFIX}{folder.name}"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0, check_same_thread=False)
        try:
            row = db.execute(
                "SELECT 1 FROM files JOIN tasks ON tasks.task_id = files.task_id WHERE files.path >= ? AND"
                " files.path < ? AND (files.path GLOB ? OR files.path GLOB ?)"
                f" AND tasks.session IN ({','.join('?' * len(kept))}) LIMIT 1",
                (f"{start}/", f"{start}`", f"{_glob_literal(start)}/*", f"{_glob_literal(start)}_[0-9]*/*", *kept),
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error as err:
        log.info("the journal could not tell where a session was saved before: %s", err)
        return False
    return row is not None


OUTPUTS_PREFIX = "outputs/"  # how the journal's files' paths begin: relative to the workspace


def _glob_literal(text: str) -> str:
    """``text`` as a GLOB pattern matching itself alone."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


DROPPED = "!"  # after a follower's tag in ``follows``: a task it left alone (refused too often) and still holds


def _live_holder(row: sqlite3.Row | None, owner: str, fresh_since: float, *, take_dropped: bool = False) -> str | None:
    """The follower in a ``follows`` row when it is not ``owner``, renewed its claim after ``fresh_since`` and its
    process is not known to be gone; else None. With ``take_dropped``, a claim on a task its holder left alone
    counts as none (a person's check_task asks KIE again)."""
    if row is None or row["owner"] in (owner, owner + DROPPED) or row["seen"] <= fresh_since:
        return None
    if take_dropped and row["owner"].endswith(DROPPED):
        return None
    return None if processes.owner_gone(row["owner"].removesuffix(DROPPED)) is True else str(row["owner"])


# A create's line in the call log names its attempt (since kie-mcp wrote it there): a restart takes the line with that
# attempt's id as its answer, whenever it came. A line an older kie-mcp wrote names none, and is matched by time: it is
# written when KIE's answer comes, at most the longest a create takes after its attempt was begun
# (``client.longest_create``: up to four sends, each waiting up to its answer's deadline, and the waits for KIE's
# window before the three resends after a 429; 696 s at the default settings).
LOG_TIME_STEP = 0.001  # the call log's times are cut to the millisecond: a line may read up to this early
# How much of the call log (and of its moved copy) is read for those answers: days of calls (about 50,000 lines);
# a create older than that stays unknown.
LOG_MATCH_BYTES = 16 * 1024 * 1024


def log_match_seconds() -> float:
    """How long after its attempt was begun a line that names no attempt may be its answer."""
    from kie_mcp.kie.client import LONGEST_CREATE  # the kie package imports the journal: resolved when used

    return LONGEST_CREATE


class LoggedAnswers(NamedTuple):
    """What the call log says of creates a stopped server was sending (``Journal.found_in_call_log``): the line that
    is each one's answer, by attempt id; and the lines an older kie-mcp wrote (no attempt named) that are the answer
    of one of several such creates, which one it cannot tell, each with the creates it may answer; and the creates
    whose last line says KIE created and charged nothing (never sent, or refused for good), with their error."""

    paired: dict[str, LoggedCreate]
    unclaimed: list[tuple[LoggedCreate, list[sqlite3.Row]]]
    refused: dict[str, str]  # the creates whose last line says KIE created nothing (by attempt id): its error


def _may_answer(line: LoggedCreate, attempt: sqlite3.Row, within: float) -> bool:
    """Whether the call log's ``line`` (one that names no attempt) can be the answer to ``attempt``: its model, its
    family's endpoint, written at most ``within`` seconds after the attempt was begun."""
    from kie_mcp.kie.families import FAMILIES  # the wire format, only when a create is looked for in the log

    family = FAMILIES.get(attempt["family"])
    if family is None or family.create_path != line.endpoint or attempt["model"] != line.model:
        return False
    return attempt["created"] - LOG_TIME_STEP <= line.at <= attempt["created"] + within


def _groups(
    answers: dict[LoggedCreate, list[sqlite3.Row]],
) -> Iterator[tuple[list[LoggedCreate], list[sqlite3.Row]]]:
    """The lines and the attempts they may answer, in groups that share none with another (connected)."""
    left = dict(answers)
    while left:
        line, rows = left.popitem()
        lines, attempts = [line], {row["attempt_id"]: row for row in rows}
        grew = True
        while grew:
            grew = False
            for other, others in list(left.items()):
                if any(row["attempt_id"] in attempts for row in others):
                    del left[other]
                    lines.append(other)
                    attempts.update({row["attempt_id"]: row for row in others})
                    grew = True
        if attempts:
            yield lines, list(attempts.values())


# What a create attempt keeps of the task it makes besides its model and family: its kind (what its results are
# checked against when saved), whether it is a sandbox task, the task it continues and how (a follow-up stays in its
# clip's chain). An older kie-mcp's attempt kept none of these.
TASK_KEPT = ("kind", "sandbox", "parent_task_id", "operation")


def _kept_by(attempts: list[sqlite3.Row]) -> dict[str, Any]:
    """What ``attempts`` kept of the task they make (``TASK_KEPT``), each only where all of them agree: the task one
    of them made has it whichever one that was."""
    first = attempts[0]
    keys = first.keys()
    return {
        name: first[name] for name in TASK_KEPT if name in keys and all(row[name] == first[name] for row in attempts)
    }


def _queued_task(model: str, family: str, kept: dict[str, Any], **fields: Any) -> Any:
    """A queued ``TaskRecord`` of a task found in the call log (``fields``: its id and what its line says), with what
    its attempt kept of it (``kept``); without that when it cannot be read (a hand edit)."""
    from pydantic import ValidationError

    from kie_mcp.tasks.records import TaskRecord  # records import the journal: resolved when first used

    known = {name: kept.get(name) for name in ("kind", "parent_task_id", "operation")}
    known["sandbox"] = bool(kept.get("sandbox"))
    try:
        return TaskRecord(model=model, family=family, state="queued", **known, **fields)
    except ValidationError:
        log.warning("what create attempts kept of task %s cannot be read: it is recorded without", fields["task_id"])
        return TaskRecord(model=model, family=family, state="queued", **fields)


_TASK_INSERT = (
    "INSERT INTO tasks (task_id, attempt_id, model, state, prompt, session, record, created, updated, parent_task_id,"
    " prompt_folded, session_folder) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE"
    " SET attempt_id = excluded.attempt_id, prompt = COALESCE(tasks.prompt, excluded.prompt),"
    " session_folder = CASE WHEN tasks.session IS NULL THEN excluded.session_folder ELSE tasks.session_folder END,"
    " session = COALESCE(tasks.session, excluded.session),"
    " prompt_folded = COALESCE(tasks.prompt_folded, excluded.prompt_folded),"
    " parent_task_id = COALESCE(tasks.parent_task_id, excluded.parent_task_id)"
)


def _record_refused(db: sqlite3.Connection, attempt: sqlite3.Row, error: str, now: float) -> bool:
    """Record ``attempt`` as refused, as the call log's last line of it shows (KIE created and charged nothing),
    unless its sender recorded something meanwhile. Returns whether it was recorded."""
    why = f"{error or 'refused by KIE'} (recorded from the call log: kie-mcp stopped before its journal took it)"
    return bool(
        db.execute(
            "UPDATE attempts SET state = 'refused', error = ?, updated = ? WHERE attempt_id = ? AND state = 'sending'",
            (why, now, attempt["attempt_id"]),
        ).rowcount
    )


def _record_logged(db: sqlite3.Connection, attempt: sqlite3.Row, create: LoggedCreate, now: float) -> bool:
    """Record ``attempt`` as created with the task the call log shows KIE answered it with, and that task as queued
    (the follower follows it, and saves its results), unless its sender recorded something meanwhile or another
    create recorded that task. Returns whether it was recorded."""
    from kie_mcp.tasks.records import KEEP_EPOCH  # records import the journal: resolved when first used

    taken = db.execute(
        "SELECT 1 FROM attempts WHERE task_id = ? UNION ALL SELECT 1 FROM tasks WHERE task_id = ? AND attempt_id IS"
        " NOT NULL AND attempt_id != ?",
        (create.task_id, create.task_id, attempt["attempt_id"]),
    ).fetchone()
    if taken is not None:
        return False
    if not db.execute(
        "UPDATE attempts SET state = 'created', task_id = ?, error = NULL, updated = ? WHERE attempt_id = ? AND"
        " state = 'sending'",
        (create.task_id, now, attempt["attempt_id"]),
    ).rowcount:
        return False
    reserved = create.credits_reserved if create.credits_reserved is not None else attempt["credits_quoted"]
    record = _queued_task(
        attempt["model"],
        attempt["family"],
        _kept_by([attempt]),
        task_id=create.task_id,
        credits_quoted=attempt["credits_quoted"],
        credits_reserved=reserved,
        **_reserved_when([attempt]),
        created_at=attempt["created"],
    )
    body = record.model_dump_json(context=KEEP_EPOCH, exclude={"prompt", "session", "folder"})
    db.execute(
        _TASK_INSERT,
        (
            create.task_id,
            attempt["attempt_id"],
            attempt["model"],
            attempt["prompt"],
            attempt["session"],
            body,
            attempt["created"],
            now,
            record.parent_task_id,
            folded(attempt["prompt"]) if attempt["prompt"] else None,
            session_folder_of(attempt["session"]),
        ),
    )
    return True


def _reserved_when(attempts: list[sqlite3.Row]) -> dict[str, Any]:
    """When the reservation of the task one of ``attempts`` made was made, for its record (``reserved_on``,
    ``reserved_at``): the earliest attempt's, which KIE's charge or refund of the task corrects. An attempt an older
    kie-mcp wrote keeps no moment: its day then, the day it was made when it keeps none either."""
    first = min(attempts, key=lambda row: row["created"])
    on, at = datetime.fromtimestamp(first["created"]).date(), first["reserved_at"]
    with contextlib.suppress(TypeError, ValueError):  # none kept, or a hand edit
        on = date.fromisoformat(first["reserved_on"])
    try:  # a moment with a local date, or none (an older kie-mcp's attempt, a hand edit)
        datetime.fromtimestamp(at)
    except (TypeError, ValueError, OverflowError, OSError):
        at = None
    return {"reserved_on": on, "reserved_at": at}


def attempt_task_fields(attempt: sqlite3.Row) -> dict[str, Any]:
    """What a task takes from the create ``attempt`` that made it, for its record: the price it was quoted at, its
    share of the call's reservation (its quote's, from an older kie-mcp that kept no share) and when that reservation
    was made (KIE's charge of the task replaces it once, at that moment: ``Ledger.settle_task``), and what the attempt
    kept of the task (``TASK_KEPT``: its kind, the task it continues and how)."""
    reserved = attempt["reserved"] if attempt["reserved"] is not None else attempt["credits_quoted"]
    kept = {name: value for name, value in _kept_by([attempt]).items() if name != "sandbox" and value is not None}
    return {
        "credits_quoted": attempt["credits_quoted"],
        "credits_reserved": reserved,
        **_reserved_when([attempt]),
        **kept,
    }


def _take_up_unclaimed(db: sqlite3.Connection, create: LoggedCreate, attempts: list[sqlite3.Row], now: float) -> bool:
    """Record the task of a call-log line that names no attempt and is the answer of one of ``attempts`` (which one,
    it cannot tell) as queued, so the follower follows it and saves its results: a paid task is never left unfollowed.
    It names no attempt and no prompt (none is guessed); what all ``attempts`` agree on of the task (its kind, sandbox,
    the task it continues) it keeps. Not when the journal has that task already. Returns whether it was recorded."""
    from kie_mcp.tasks.records import KEEP_EPOCH

    if db.execute(
        "SELECT 1 FROM tasks WHERE task_id = ? UNION ALL SELECT 1 FROM attempts WHERE task_id = ?",
        (create.task_id, create.task_id),
    ).fetchone():
        return False
    record = _queued_task(
        create.model,
        attempts[0]["family"],  # the line's model and endpoint are every one's (``_may_answer``)
        _kept_by(attempts),
        task_id=create.task_id,
        credits_quoted=create.credits_quoted,
        credits_reserved=create.credits_reserved if create.credits_reserved is not None else create.credits_quoted,
        **_reserved_when(attempts),
        created_at=create.at,
    )
    body = record.model_dump_json(context=KEEP_EPOCH, exclude={"prompt", "session", "folder"})
    db.execute(
        _TASK_INSERT,
        (create.task_id, None, create.model, None, None, body, create.at, now, record.parent_task_id, None, None),
    )
    return True


class ReservationGivenBack(RuntimeError):
    """A create's reservation shows none of its creates left to begin: a start on the workspace took this server
    for stopped and gave them back (``SpendBook.book_unsent``), so this one is not sent, nor refunded again."""


class JournalUnavailable(RuntimeError):
    """The journal cannot be opened or written; the message says why and what to do."""


class JournalLocked(JournalUnavailable):
    """The journal could not be opened because another program or kie-mcp process holds it locked (a database tool
    in exclusive mode, a write left open): not unavailable for good. The server opens it again once the lock is gone
    (``runtime``); the message says so, and what to close."""


class JournalInUse(JournalLocked):
    """The journal is damaged and another kie-mcp process still has it open, so it is not moved aside: the server
    tries again until that process is gone (``runtime``), then moves it. ``damaged``: which file failed the check
    (``journaluse.identity``), so the tries meanwhile do not check its pages again while it is still there."""

    def __init__(self, message: str, damaged: tuple[int, int] | None) -> None:
        super().__init__(message)
        self.damaged = damaged


JOURNAL_ERRORS = (sqlite3.Error, OSError, JournalUnavailable)  # a journal that cannot be read or written now


class OwedWrites:
    """What became of a create that the journal could not take when it happened (a full disk, or another program's
    lock, which the event loop does not wait for): the task KIE answered with, the attempt's outcome, whether the
    call's answer reached the client, the refund of a create not sent or refused. Each is written as soon as the
    journal takes it (``retry``: every few seconds in the runtime's background, and at shutdown), oldest first, once.
    Left unwritten, the attempt would stay "being sent" and turn into a create of unknown outcome, its task unknown to
    every restart, and a refund would count against the daily cap for the rest of the day."""

    def __init__(self) -> None:
        self._owed: list[tuple[str, Callable[[], object]]] = []

    @property
    def owes(self) -> bool:
        return bool(self._owed)

    def owe(self, what: str, write: Callable[[], object]) -> None:
        """Keep ``write`` (``what`` it records, for the log) to be made once the journal takes it."""
        self._owed.append((what, write))

    def retry(self) -> int:
        """Make the owed writes the journal takes now, oldest first; stop at the first it refuses (still full). Returns
        how many were made. Never raises."""
        done = 0
        while self._owed:
            what, write = self._owed[0]
            try:
                write()
            except sqlite3.IntegrityError:  # a write that can never succeed must not hold up the others for good
                log.exception("could not record %s", what)
            except JOURNAL_ERRORS as err:
                log.debug("the journal still cannot record %s: %s", what, err)
                break
            except Exception:  # likewise
                log.exception("could not record %s", what)
            else:
                done += 1
                log.info("recorded %s, which the journal could not take before", what)
            self._owed.pop(0)
        return done


@contextmanager
def _own_folder(folder: Path) -> Iterator[int | None]:
    """``folder`` opened, never through a link (a cloned repository can carry one in its place): its descriptor, for
    the files in it to be opened relative to it (None where the system cannot: Windows, which then opens them by
    name, the folder checked first). Raises OSError for a link or anything but a folder."""
    if not (hasattr(os, "O_DIRECTORY") and hasattr(os, "O_NOFOLLOW") and os.open in os.supports_dir_fd):
        if folder.is_symlink() or not folder.is_dir():
            raise OSError(errno.ENOTDIR, f"{folder} is not a folder of kie-mcp's")
        yield None
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        yield fd
    finally:
        os.close(fd)


def _write_small(folder: Path, name: str, data: bytes, opened: int | None) -> None:
    """Write a few bytes to ``name`` in ``folder`` (``_own_folder``), never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(name, flags, 0o600, dir_fd=opened) if opened is not None else os.open(folder / name, flags, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_mark(folder: Path, name: str, opened: int | None) -> int | None:
    """The mark in ``name`` (``Journal.keep_answered``), or None: no regular file, or no mark in it."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(name, flags, dir_fd=opened) if opened is not None else os.open(folder / name, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 8).strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return int(text) if text in (b"%d" % CALL_ANSWERED, b"%d" % CALL_CUT_OFF) else None


class UnavailableJournal:
    """Stands in for a journal that could not be opened: every use explains why, instead of crashing the server."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.path = None

    def __getattr__(self, name: str) -> Any:
        raise JournalUnavailable(self.reason)

    def close(self) -> None:
        return None


class Journal:
    """A thread-safe handle on the workspace journal."""

    def __init__(self, path: Path | str, *, open_wait: float | None = None, check: bool = False) -> None:
        """Open (or make) the journal at ``path``, waiting up to ``open_wait`` seconds (``BUSY_SECONDS`` unless
        given) for another writer's lock while it is set up; with ``check``, its pages are checked first
        (``_check_pages``). A failure closes what it opened."""
        self.path = path
        self.reset_from: Path | None = None  # the corrupt journal this fresh one replaced (``open_for_server``)
        self.created_now = False  # this handle made the journal: it held no table (no file, or an empty one)
        self.use: JournalUse | None = None  # a server's shared lock on the journal while open (``open_for_server``)
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        wait = BUSY_SECONDS if open_wait is None else open_wait
        self._db = sqlite3.connect(str(path), timeout=wait, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        _search_functions(self._db)
        self._lock = threading.RLock()
        self._own = threading.local()  # a worker thread's own connection (``off_loop_when_locked``)
        self._probe: sqlite3.Connection | None = None  # tells at once whether another writer holds the lock
        self._probe_lock = threading.Lock()  # not the shared connection's: a worker thread's query never holds it up
        try:
            with self._lock:
                self._db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                if check:
                    self._check_pages()
                self.created_now = self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None
                self._db.executescript(SCHEMA)
                self._migrate()
                self._add_clocks()
                self._db.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
        except BaseException:
            self._db.close()  # a server tries again while the journal is locked: no connection left behind each time
            raise

    def _check_pages(self) -> None:
        """SQLite's ``quick_check`` of every page, in the start's worker thread: a damaged page (a bad sector, a torn
        write) is found at the start, before anything is written into it, instead of failing every spend while reads
        still work. It reads the whole file: 0.2-0.3 s for a journal of 50,000 tasks (132 MB) in the page cache, a
        few seconds from a slow disk. Raises a "malformed" ``DatabaseError`` on damage."""
        problems = [str(row[0]) for row in self._db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(f"database disk image is malformed ({'; '.join(problems)})")

    def _migrate(self) -> None:
        """Bring a journal written by an older kie-mcp up to this schema: columns, indexes and triggers are only
        ever added (and superseded indexes dropped), in one transaction. A journal already up to date is not
        written to, so a read-only one still opens."""
        if self._up_to_date():
            return
        with self.transaction() as db:
            if "kind" not in _columns(db, "quotes"):
                db.execute("ALTER TABLE quotes ADD COLUMN kind TEXT NOT NULL DEFAULT 'estimate'")
            for column in set(QUOTE_COLUMNS) - _columns(db, "quotes"):
                db.execute(f"ALTER TABLE quotes ADD COLUMN {column} {QUOTE_COLUMNS[column]}")
            for column in set(UPLOAD_COLUMNS) - _columns(db, "uploads"):
                db.execute(f"ALTER TABLE uploads ADD COLUMN {column} {UPLOAD_COLUMNS[column]}")
            for column in set(FILE_COLUMNS) - _columns(db, "files"):  # an older kie-mcp's rows: not known (NULL)
                db.execute(f"ALTER TABLE files ADD COLUMN {column} {FILE_COLUMNS[column]}")
            for column in set(SPEND_COLUMNS) - _columns(db, "spend"):  # an older kie-mcp's entries: counted by label
                db.execute(f"ALTER TABLE spend ADD COLUMN {column} {SPEND_COLUMNS[column]}")
            attempt_columns = _columns(db, "attempts")
            for column in set(ATTEMPT_COLUMNS) - attempt_columns:  # an older kie-mcp's attempts were all answered
                db.execute(f"ALTER TABLE attempts ADD COLUMN {column} {ATTEMPT_COLUMNS[column]}")
            if "parent_task_id" not in _columns(db, "tasks"):  # follow-ups (continue_video) name their source
                db.execute("ALTER TABLE tasks ADD COLUMN parent_task_id TEXT")
            if "prompt_folded" not in _columns(db, "tasks"):  # the prompt as searches compare it, folded on save
                db.execute("ALTER TABLE tasks ADD COLUMN prompt_folded TEXT")  # older rows: ``fold_prompts``
            if "session_folder" not in _columns(db, "tasks"):  # the folder a label names, kept on save
                db.execute("ALTER TABLE tasks ADD COLUMN session_folder TEXT")  # older rows: ``name_folders``
            if "options_key" not in _columns(db, "tasks"):
                db.execute("ALTER TABLE tasks ADD COLUMN options_key TEXT")
                db.execute(
                    "UPDATE tasks SET options_key = (SELECT a.options_key FROM attempts a"
                    " WHERE a.attempt_id = tasks.attempt_id) WHERE attempt_id IS NOT NULL"
                )
            db.execute("CREATE TABLE IF NOT EXISTS spend_total (total REAL NOT NULL)")
            if db.execute("SELECT COUNT(*) FROM spend_total").fetchone()[0] != 1:
                db.execute("DELETE FROM spend_total")
                db.execute("INSERT INTO spend_total (total) SELECT COALESCE(SUM(delta), 0) FROM spend")
            for name in SUPERSEDED:
                db.execute(f"DROP INDEX IF EXISTS {name}")
            for name, definition in INDEXES.items():
                db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
            for name, definition in TRIGGERS.items():
                db.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {definition}")

    def _add_clocks(self) -> None:
        """The table of the workspace's clocks (``CLOCKS``), added to a journal that lacks it when it can be written: a
        read-only one still opens without it, and today is then counted from this server's midnight alone."""
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'clock_zones'").fetchone():
            return
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute(CLOCKS)

    def _up_to_date(self) -> bool:
        names = {row["name"] for row in self._db.execute("SELECT name FROM sqlite_master")}
        if not names >= {*INDEXES, *TRIGGERS, "spend_total"} or names & set(SUPERSEDED):
            return False
        if "kind" not in _columns(self._db, "quotes") or not {
            "options_key",
            "parent_task_id",
            "prompt_folded",
            "session_folder",
        } <= _columns(self._db, "tasks"):
            return False
        if not set(ATTEMPT_COLUMNS) <= _columns(self._db, "attempts"):
            return False
        if not set(QUOTE_COLUMNS) <= _columns(self._db, "quotes"):
            return False
        if not set(UPLOAD_COLUMNS) <= _columns(self._db, "uploads"):
            return False
        if not set(FILE_COLUMNS) <= _columns(self._db, "files"):
            return False
        if not set(SPEND_COLUMNS) <= _columns(self._db, "spend"):
            return False
        return self._db.execute("SELECT COUNT(*) FROM spend_total").fetchone()[0] == 1

    @classmethod
    def for_workspace(cls, workspace: Path) -> Journal:
        return cls(journal_path(workspace))

    @classmethod
    def open_for_server(
        cls, workspace: Path, wait: float | None = None, damaged: tuple[int, int] | None = None
    ) -> tuple[Journal | None, str | None]:
        """Open the workspace journal for a server that must start whatever the disk says, waiting up to ``wait``
        seconds (``OPEN_WAIT`` unless given) for a lock another program holds.

        The server holds a shared lock on the journal from now until it closes it (``journaluse``). Its pages are
        checked first (``_check_pages``). A corrupt journal (damaged anywhere, not only where the open reads) is
        moved aside (kept under a name of its own, and named in the notice) and a fresh one started, but only while
        no other server has it open, and only the very file that failed the check. A journal that cannot be opened
        at all (unwritable workspace, full disk, a folder in its place) gives ``None`` and the reason, so the server
        starts and every tool that needs the journal explains. A fresh journal started in place of a damaged one
        is still held alone: the caller ``share``s it once the call log's spend and tasks are in it, so that no other
        server opens it half taken up (and takes them up too). One another program holds locked raises
        ``JournalLocked``, and a damaged one another server has open ``JournalInUse`` (given back as ``damaged`` by
        the next try, which then skips the check while that file is still there): it opens once the lock or the
        other server is gone, without a restart.
        """
        path = journal_path(workspace)
        wait = OPEN_WAIT if wait is None else wait
        for _ in range(3):  # the journal replaced meanwhile (another server moved it aside): the new one is opened
            try:
                use = JournalUse.take(path.parent, max(wait, MOVE_WAIT))
            except ShareRefused as err:
                locked = sqlite3.OperationalError(f"database is locked ({err})")
                raise JournalLocked(unavailable_reason(workspace, locked)) from err
            try:
                seen = identity(path)
                if damaged is None or seen != damaged:
                    journal, reason = cls._open_checked(workspace, wait, use)
                    if journal is not None or reason is not None:
                        return journal, reason
                opened = cls._move_aside(workspace, wait, use, seen)
            except BaseException:
                use.release()
                raise
            if opened is not None:
                return opened
            use.release()  # another server moved it aside meanwhile: the file there now is opened
        raise JournalLocked(unavailable_reason(workspace, sqlite3.OperationalError("database is locked")))

    @classmethod
    def _open_checked(cls, workspace: Path, wait: float, use: JournalUse) -> tuple[Journal | None, str | None]:
        """The journal, its pages checked, holding ``use``; or None and why it cannot be used. (None, None): it is
        damaged, to be moved aside. ``use`` is released unless the journal holds it."""
        path = journal_path(workspace)
        try:
            journal = cls(path, open_wait=wait, check=True)
        except sqlite3.DatabaseError as err:
            if _is_corrupt(err) and path.is_file():
                return None, None
            use.release()
            if is_locked(err):
                raise JournalLocked(unavailable_reason(workspace, err)) from err
            return None, unavailable_reason(workspace, err)
        except OSError as err:
            use.release()
            return None, unavailable_reason(workspace, err)
        journal.use = use
        return journal, None

    @classmethod
    def _move_aside(
        cls, workspace: Path, wait: float, use: JournalUse, damaged: tuple[int, int] | None
    ) -> tuple[Journal | None, str | None] | None:
        """Move the damaged journal (the file ``damaged`` names) aside and start a fresh one, holding ``use`` alone
        meanwhile: the fresh journal and the notice, or None and why it cannot be done. None when the file there is
        no longer the damaged one (another server moved it): it is to be opened instead. Raises ``JournalInUse``
        while another server has it open."""
        path = journal_path(workspace)
        if use.problem is not None:  # no lock to be had: whether another server has it open cannot be told
            use.release()
            return None, unavailable_reason(workspace, use.problem)
        try:
            alone = use.exclusive(wait, gave_up=lambda: identity(path) != damaged)
        except OSError as err:  # a file system whose locks fail (ENOLCK)
            use.release()
            return None, unavailable_reason(workspace, err)
        if not alone:
            if identity(path) != damaged:
                return None
            use.release()
            raise JournalInUse(in_use_reason(path), damaged)
        if identity(path) != damaged:
            return None
        try:
            kept = _free_name(path)
            for suffix in ("", "-wal", "-shm"):
                part = path.with_name(path.name + suffix)
                if part.exists():
                    part.rename(kept.with_name(kept.name + suffix))
            journal = cls(path, open_wait=wait)
        except (OSError, sqlite3.Error) as err:
            use.release()
            if getattr(err, "winerror", None) == 32:  # Windows: the file is open in another process
                raise JournalInUse(in_use_reason(path), damaged) from err
            return None, unavailable_reason(workspace, err)
        journal.use, journal.reset_from = use, kept  # held alone until ``share``
        notice = (
            f"The workspace journal was unreadable (corrupt), so it was moved aside to {kept} and a fresh one was "
            "started. Quotes and tasks recorded before are in that file, not in the new journal."
        )
        return journal, notice

    def share(self) -> None:
        """Let the other servers open the journal too (a fresh one ``open_for_server`` started is held alone)."""
        if self.use is not None:
            self.use.shared()

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
        if self.use is not None:  # closed: another server may move it aside now, if it is damaged
            self.use.release()

    @contextmanager
    def _handle(self) -> Iterator[sqlite3.Connection]:
        """The connection this thread uses: its own in ``off_loop_when_locked``, else the shared one, under its lock."""
        own = getattr(self._own, "db", None)
        if own is not None:
            yield own
            return
        with self._lock:
            yield self._db

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction, across threads and processes. ``durable``: its commit is on the disk when
        it returns (``PRAGMA synchronous=FULL`` for it: the write-ahead log is synced, with every commit before it),
        for the writes that record money and task ids (an attempt before its create is sent, a task id KIE answered,
        a reservation, a charge). Every other commit is synced at the next checkpoint or durable commit
        (``synchronous=NORMAL``): a power loss may take back its last moments, never corrupt the journal."""
        with self._handle() as db:
            level = db.execute("PRAGMA synchronous").fetchone()[0] if durable else None
            if durable:
                db.execute("PRAGMA synchronous=FULL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                if level is not None:
                    db.execute(f"PRAGMA synchronous={int(level)}")

    # ``_handle`` written out: a generator's context manager costs a few microseconds, and a tool call makes several.
    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        own = getattr(self._own, "db", None)
        if own is not None:
            return own.execute(sql, args).fetchall()
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def execute(self, sql: str, *args: Any) -> None:
        own = getattr(self._own, "db", None)
        if own is not None:
            own.execute(sql, args)
            return
        with self._lock:
            self._db.execute(sql, args)

    def _connection(self, busy_seconds: float) -> sqlite3.Connection | None:
        """A connection of its own to this journal (None for one that cannot have another: ":memory:")."""
        if str(self.path) == ":memory:":
            return None
        db = sqlite3.connect(str(self.path), timeout=busy_seconds, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        _search_functions(db)
        db.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        return db

    def _own_connection(self, work: Callable[[], T]) -> T:
        """Run ``work`` in this (worker) thread on a connection of its own, which waits up to ``BUSY_SECONDS`` for
        another writer's lock; the shared connection (and its lock) stays free for the event loop meanwhile."""
        db = self._connection(BUSY_SECONDS)
        if db is None:
            return work()
        self._own.db = db
        try:
            return work()
        finally:
            self._own.db = None
            db.close()

    async def off_loop_when_locked(self, work: Callable[[], T]) -> T:
        """Run ``work`` (journal calls) now, on the event loop, unless another writer holds the journal's lock
        (``locked_now``: one try, no wait), or held it longer than SQLite waited: then in a worker thread that waits
        up to ``BUSY_SECONDS`` (the loop, pings and other calls go on). ``work`` must be safe to run again after a
        "locked" failure: one transaction (a lock refused at its ``BEGIN IMMEDIATE`` left nothing written), or reads.
        Once begun in the thread it is seen through, even when the call is cancelled meanwhile (shielded): a
        reservation or a task id written there is never left without the lines of this call that follow it."""
        if not self.locked_now():
            try:
                return work()
            except sqlite3.OperationalError as err:
                if not is_locked(err):
                    raise
        log.info("the journal is locked by another writer; waiting for it off the event loop")
        with anyio.CancelScope(shield=True):
            return await anyio.to_thread.run_sync(self._own_connection, work)

    def locked_now(self) -> bool:
        """Whether another program or kie-mcp process holds the journal's write lock right now (one try, no wait):
        background writes on the event loop (the follower's rescan) skip a turn rather than wait for it there."""
        if str(self.path) == ":memory:":
            return False
        with self._probe_lock:
            try:
                self._probe_connection().execute("BEGIN IMMEDIATE")
                self._probe_connection().execute("ROLLBACK")
                return False
            except sqlite3.Error as err:  # anything but a lock (read-only, a full disk) is the call's to meet and say
                return is_locked(err)

    def _probe_connection(self) -> sqlite3.Connection:
        """The connection that never waits for another writer's lock (``locked_now``, ``unless_locked``), made
        on first use, under ``_probe_lock``; its commits as the shared connection's (``synchronous=NORMAL``)."""
        if self._probe is None:
            probe = self._connection(0.0)
            assert probe is not None  # not ":memory:" (the callers' case)
            probe.execute("PRAGMA synchronous=NORMAL")
            self._probe = probe
        return self._probe

    def write_now(self, work: Callable[[sqlite3.Connection], object]) -> bool:
        """``work`` in a write transaction of its own, at once or not at all: on the connection that never waits for
        another writer's lock, for a best-effort write on the event loop. False when another writer holds the lock; a
        journal that cannot be written raises as any write would."""
        if str(self.path) == ":memory:":
            with self.transaction() as db:
                work(db)
            return True
        with self._probe_lock:
            db = self._probe_connection()
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                if is_locked(err):
                    return False
                raise
            try:
                work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return True

    async def unless_locked(self, work: Callable[[], T]) -> T:
        """Run ``work`` (journal calls) now, on the event loop, while no other writer holds the journal's lock: on a
        connection that never waits for it, so its write is its own look at the lock (no ``locked_now`` first). Held
        by another writer, in a worker thread that waits up to ``BUSY_SECONDS`` (the loop, pings and other calls go
        on). ``work`` must be safe to run again after a "locked" failure (one write, or one transaction) and must not
        look at the lock itself (``locked_now``). For a tool call whose one write this is (an estimate's quote), in
        place of ``writable`` before it runs: the same wait, off the loop, without a look at the lock on every call."""
        if str(self.path) == ":memory:":
            return work()
        with self._probe_lock:
            self._own.db = self._probe_connection()  # this thread's journal calls, while ``work`` runs
            try:
                return work()
            except sqlite3.OperationalError as err:
                if not is_locked(err):
                    raise
            finally:
                self._own.db = None
        log.info("the journal is locked by another writer; writing off the event loop once it is free")
        return await anyio.to_thread.run_sync(self._own_connection, work, abandon_on_cancel=True)

    async def writable(self) -> None:
        """Wait while another program or kie-mcp process holds the journal's write lock (up to ``BUSY_SECONDS``), in a
        worker thread: a tool call that writes waits here, not in SQLite on the event loop. Raises SQLite's
        "database is locked" when it is still held then. At once when the lock is free (one try, no wait)."""
        if not self.locked_now():
            return
        await anyio.to_thread.run_sync(self._own_connection, self._write_lock_free, abandon_on_cancel=True)

    def _write_lock_free(self) -> None:
        with self.transaction():
            pass

    # -- spend ---------------------------------------------------------------------------------

    def total_spent(self) -> float:
        rows = self.query("SELECT total FROM spend_total")  # kept by triggers: no sum over the whole table
        return max(float(rows[0]["total"]), 0.0) if rows else 0.0

    def spend_mark(self) -> int:
        """The newest spend entry's id: ``spent_since`` counts what came after it."""
        return int(self.query("SELECT COALESCE(MAX(id), 0) AS mark FROM spend")[0]["mark"])

    def spent_since(self, mark: int) -> float:
        """Credits reserved or charged (positive entries) after ``mark``; refunds are left out."""
        rows = self.query("SELECT COALESCE(SUM(delta), 0) AS total FROM spend WHERE id > ? AND delta > 0", mark)
        return float(rows[0]["total"])

    @staticmethod
    def add_spend(
        db: sqlite3.Connection,
        day: date,
        delta: float,
        reason: str,
        ref: str | None,
        counted_at: float | None = None,
        *,
        creates: int | None = None,
    ) -> int:
        """One spend entry: ``day``, the writer's local date it counts on (how an older kie-mcp reads it), and
        ``counted_at``, the moment it counts at (``SPEND_COLUMNS``; None: by its day alone, as an older kie-mcp
        wrote it). ``creates``: a reservation's, for that many creates, none of them begun yet, made by this process
        (``SPEND_COLUMNS``). Returns the entry's id."""
        owner = None if creates is None else processes.this_process()
        cursor = db.execute(
            "INSERT INTO spend (day, delta, reason, ref, at, counted_at, owner, creates, unsent)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (day.isoformat(), delta, reason, ref, time.time(), counted_at, owner, creates, creates),
        )
        return int(cursor.lastrowid or 0)

    # -- create attempts -----------------------------------------------------------------------

    def begin_attempt(
        self,
        *,
        model: str,
        family: str,
        approved_by: str,
        quote_id: str | None,
        prompt: str,
        params: dict[str, Any],
        credits_quoted: float | None,
        session: str | None,
        sent_params: dict[str, Any] | None = None,
        options_key: str | None = None,
        digest: str | None = None,
        kind: str | None = None,
        sandbox: bool = False,
        parent_task_id: str | None = None,
        operation: str | None = None,
        reserved: float | None = None,
        reserved_on: date | None = None,
        reserved_at: float | None = None,
        reservation: int | None = None,
        still: Callable[[], bool] | None = None,
    ) -> str | None:
        """Written before the create is sent, durably (``transaction``): a crash, even of the machine, after this
        line still leaves a trace of the spend. The prompt, parameters and session are kept redacted: the API key
        typed into any of them is never written to this file. ``params``: the request's input fields as the person
        gave them (a local file by its path: what its results' sidecars show); ``sent_params``: those fields as sent,
        when that differs (a local file as the link it was uploaded as: ``tasks.lost`` compares a task found with
        it), None when they were sent as given. ``kind``, ``sandbox``, ``parent_task_id`` and
        ``operation``: the task's, for a restart that finds it in the call log (``_record_logged``). ``reserved``,
        ``reserved_on`` and ``reserved_at``: its share of its call's reservation, and that reservation's day and
        moment, so that a start books the refund of a refusal its server could not (``Ledger.book_owed_refunds``);
        ``reservation``: that reservation's entry, whose creates not begun it counts one fewer of (``UNSENT_DOWN``) in
        the same transaction: a create written here may have reached KIE, so its share is never given back as not
        sent. Raises ``ReservationGivenBack``, writing nothing, when it shows none left to begin. The id returned
        (``a_`` and 16 random hex digits) is no secret: the call log names the create's answer by it.
        ``still``: whether the create is still wanted, asked once the write lock is held (after any wait for another
        writer's): False writes nothing and returns None, and the create is not sent (its call was cut off, or
        declined, while the lock was waited for)."""
        attempt_id = "a_" + uuid.uuid4().hex[:16]
        now = time.time()
        with self.transaction(durable=True) as db:
            if still is not None and not still():
                return None
            if reservation is not None and not db.execute(UNSENT_DOWN, (reservation,)).rowcount:
                raise ReservationGivenBack(reservation)  # nothing written: the transaction is rolled back
            db.execute(
                "INSERT INTO attempts (attempt_id, model, family, approved_by, quote_id, prompt, params, options_key,"
                " credits_quoted, state, session, created, updated, digest, owner, answered, kind, sandbox,"
                " parent_task_id, operation, reserved, reserved_on, reserved_at, sent_params)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'sending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt_id,
                    model,
                    family,
                    approved_by,
                    quote_id,
                    redact(prompt),
                    json.dumps(redact_value(params), ensure_ascii=False),
                    options_key,
                    credits_quoted,
                    redact(session) if session else session,
                    now,
                    now,
                    digest,
                    processes.this_process(),
                    CALL_RUNNING,
                    kind,
                    int(sandbox),
                    parent_task_id,
                    operation,
                    reserved,
                    reserved_on.isoformat() if reserved_on is not None else None,
                    reserved_at,
                    None if sent_params is None else json.dumps(redact_value(sent_params), ensure_ascii=False),
                ),
            )
        return attempt_id

    def finish_attempt(self, attempt_id: str, state: str, task_id: str | None = None, error: str | None = None) -> None:
        """``state``: created (KIE returned a task id), refused (KIE said no) or unknown (no answer)."""
        self.execute(
            "UPDATE attempts SET state = ?, task_id = ?, error = ?, updated = ? WHERE attempt_id = ?",
            state,
            task_id,
            error,
            time.time(),
            attempt_id,
        )

    def attempt_waiting(self, attempt_id: str) -> bool:
        """``attempt_id``, being sent, was refused by KIE with 429 (not counted, not charged) and waits to be sent
        again (``WAITING``). Returns whether the journal shows it so (False: it was no longer being sent)."""
        with self.transaction() as db:
            return bool(
                db.execute(
                    "UPDATE attempts SET state = ?, updated = ? WHERE attempt_id = ? AND state = 'sending'",
                    (WAITING, time.time(), attempt_id),
                ).rowcount
            )

    def attempt_sending_again(self, attempt_id: str) -> bool:
        """``attempt_id``, waiting after KIE's 429, is about to be sent again: "sending" once more, on the disk before
        it is sent (``transaction`` durable), as when it was begun. False when the journal no longer shows it waiting
        (a start that took its server for stopped recorded it as not sent): it must not be sent."""
        with self.transaction(durable=True) as db:
            return bool(
                db.execute(
                    "UPDATE attempts SET state = 'sending', updated = ? WHERE attempt_id = ? AND state = ?",
                    (time.time(), attempt_id, WAITING),
                ).rowcount
            )

    def recover_interrupted(
        self,
        found: list[str] | None = None,
        taken_up: list[str] | None = None,
        refused: list[str] | None = None,
        unsent: list[str] | None = None,
    ) -> int:
        """Attempts a crashed process left as being sent may have been created on KIE. Each is looked for in the call
        log first (``found_in_call_log``): one whose create KIE answered with a task (the ``created`` line naming it,
        or in an older kie-mcp's log one only it can own) is recorded as created with that task, queued, so the
        follower follows and saves it, and its id goes to ``found``. A task of an older line that is the answer of one
        of several such creates, which one it cannot tell, is recorded all the same (no prompt, no attempt named), so
        it is followed and saved, and its id goes to ``taken_up``. One whose last line says it was never sent, or
        that KIE refused it for good (``calllog.refused_finally``), is recorded as refused, as its call would have
        (its refund is then owed: ``Ledger.book_owed_refunds``), and its id goes to ``refused``. The others become
        unknown (those several too, their error naming the tasks). Those a live process is sending (another server on
        this workspace) are left to it, until they are older than any create takes (a process id reused after a
        restart looks alive); another machine's, and those of an older kie-mcp that named no process, at that age
        too. Nothing is ever sent again.
        Those a gone process left waiting to be sent again after KIE's 429 (``WAITING``: none reached KIE since its
        refusal) are recorded as refused, not sent (their refund is owed the same way), and their ids go to
        ``refused`` and ``unsent``; never unknown.
        Run at start-up and by the follower every minute (another server on this workspace may die while this one
        runs). Written durably (``transaction``). Returns how many became unknown."""
        now = time.time()
        rows = self.query("SELECT * FROM attempts WHERE state IN (?, ?)", *ON_ITS_WAY)
        ended = [row for row in rows if processes.owner_gone(row["owner"]) or now - row["created"] > SEND_LIMIT]
        waited = [row for row in ended if row["state"] == WAITING]
        ended = [row for row in ended if row["state"] != WAITING]
        if waited:
            with self.transaction(durable=True) as db:
                for row in waited:
                    if db.execute(
                        "UPDATE attempts SET state = 'refused', error = ?, updated = ? WHERE attempt_id = ? AND"
                        " state = ?",
                        (WAITED_UNSENT, now, row["attempt_id"], WAITING),
                    ).rowcount:
                        for named in (refused, unsent):
                            if named is not None:
                                named.append(row["attempt_id"])
        if not ended:  # nearly always: no write, so the follower can ask every minute for nothing
            return 0
        answers = self.found_in_call_log(ended)
        marked = 0
        with self.transaction(durable=True) as db:
            for row in ended:  # still being sent: its owner may have recorded KIE's answer since it was read
                create = answers.paired.get(row["attempt_id"])
                if create is not None and _record_logged(db, row, create, now) and found is not None:
                    found.append(create.task_id)
            maybe: dict[str, list[str]] = {}  # the tasks an attempt may have made, by attempt id
            for create, rows in answers.unclaimed:
                if _take_up_unclaimed(db, create, rows, now):
                    if taken_up is not None:
                        taken_up.append(create.task_id)
                    for row in rows:
                        maybe.setdefault(row["attempt_id"], []).append(create.task_id)
            for row in ended:
                why = answers.refused.get(row["attempt_id"])
                if why is not None and row["attempt_id"] not in maybe and _record_refused(db, row, why, now):
                    if refused is not None:
                        refused.append(row["attempt_id"])
                    continue
                tasks = maybe.get(row["attempt_id"])
                marked += db.execute(
                    "UPDATE attempts SET state = 'unknown', updated = ?, error = ? WHERE attempt_id = ? AND"
                    " state = 'sending'",
                    (now, INTERRUPTED if not tasks else interrupted_among(tasks), row["attempt_id"]),
                ).rowcount
        return marked

    def found_in_call_log(self, ended: list[sqlite3.Row]) -> LoggedAnswers:
        """What the call log's ``created`` lines say of the ``ended`` attempts. A line naming one of them is its answer
        (``paired``, by attempt id), unless another create of the journal recorded its task. One with no such line
        whose last line says KIE created nothing is ``refused`` (``calllog.refused_creates``).

        A line an older kie-mcp wrote names no attempt: it is matched strictly, as a wrong match would give one request
        another's task. It can be an attempt's answer when it names the attempt's model and its family's endpoint,
        came at most ``log_match_seconds`` after the attempt was begun, and names a task no other create of the
        journal recorded. Lines and the attempts they can answer (every attempt being sent or of unknown outcome, in
        any process, whose own line names none) are taken together: only when every such attempt is one of ``ended``,
        all of one request (the same digest: its variations), and there are no more lines than attempts, are they
        paired, in the order they were sent. Lines of any other group whose attempts are all ended or of unknown
        outcome (none a live process is still sending, which records its own) are ``unclaimed``: each is one of those
        creates' answer, which one it cannot tell. A log that cannot be read answers none."""
        from kie_mcp.kie.calllog import logged_creates, read_lines, refused_creates  # the kie package imports this

        none = LoggedAnswers({}, [], {})
        path = self.call_log()
        if path is None:
            return none
        since = min(row["created"] for row in ended)
        ending = {row["attempt_id"] for row in ended}
        try:
            read = read_lines(path, LOG_MATCH_BYTES)  # once, for both
            lines = logged_creates(path, since - LOG_TIME_STEP, most_bytes=LOG_MATCH_BYTES, read=read)
            refused = refused_creates(path, since - LOG_TIME_STEP, ending, most_bytes=LOG_MATCH_BYTES, read=read)
        except OSError as err:  # UnreadableLog: nothing is matched, the creates are unknown as before
            log.warning("the call log cannot be read (%s): creates being sent when kie-mcp stopped stay unknown", err)
            return none
        answered = {line.attempt for line in lines if line.attempt}  # attempts whose own line is there
        lines = [line for line in lines if not self._task_taken(line.task_id)]
        paired = {line.attempt: line for line in lines if line.attempt in ending}
        refused = {attempt: why for attempt, why in refused.items() if attempt not in answered}  # a created line wins
        answers = LoggedAnswers(paired, [], refused)
        older = [line for line in lines if line.attempt is None]
        if not older:
            return answers
        within = log_match_seconds()
        rows = self.query(
            "SELECT * FROM attempts WHERE state IN ('sending', 'unknown') AND created >= ? AND created <= ?",
            since - within,
            max(line.at for line in older) + LOG_TIME_STEP,
        )
        rows = [row for row in rows if row["attempt_id"] not in answered]
        candidates = {line: [row for row in rows if _may_answer(line, row, within)] for line in older}
        written = {line: number for number, line in enumerate(older)}
        for group_lines, group_rows in _groups(candidates):
            digests = {row["digest"] for row in group_rows}
            others = [row for row in group_rows if row["attempt_id"] not in ending]  # another's, or unknown already
            if len(group_lines) <= len(group_rows) and len(digests) == 1 and None not in digests and not others:
                by_time = sorted(group_rows, key=lambda row: row["created"])
                in_log = sorted(group_lines, key=written.__getitem__)  # as they were written (the log's times are ms)
                for row, line in zip(by_time, in_log, strict=False):
                    answers.paired[row["attempt_id"]] = line
            elif all(row["state"] == "unknown" for row in others):  # no live server is sending one of them
                answers.unclaimed.extend((line, candidates[line]) for line in group_lines)
        return answers

    def _task_taken(self, task_id: str) -> bool:
        """Whether another create of this journal already recorded ``task_id`` (its attempt, or its task's)."""
        return bool(
            self.query("SELECT 1 FROM attempts WHERE task_id = ? LIMIT 1", task_id)
            or self.query("SELECT 1 FROM tasks WHERE task_id = ? AND attempt_id IS NOT NULL LIMIT 1", task_id)
        )

    def call_log(self) -> Path | None:
        """The call log of this journal's workspace (``logs/kie-api.jsonl``); None for a journal of no workspace."""
        from kie_mcp.kie.calllog import CALL_LOG

        if not isinstance(self.path, Path) or self.path.parent.name != ".kie-mcp":
            return None
        return self.path.parent.parent / CALL_LOG

    def mark_answered(self, attempt_ids: list[str], *, answered: int = CALL_ANSWERED, kept: bool = False) -> None:
        """Whether the answer of the call that made these attempts reached the client (``CALL_ANSWERED``) or the
        call was cut off before it (``CALL_CUT_OFF``: cancelled by the host, or failed). ``kept``: the mark was kept
        on the disk meanwhile (``keep_answered``), whose copy goes once the journal has it."""
        for attempt_id in attempt_ids:
            self.execute("UPDATE attempts SET answered = ? WHERE attempt_id = ?", answered, attempt_id)
        if kept:
            self._let_go_kept(attempt_ids)

    def _answers_kept(self) -> Path | None:
        """The folder beside the journal where the answered marks it could not take wait (``keep_answered``); None
        for a journal in memory."""
        return Path(f"{self.path}.answered") if isinstance(self.path, Path) else None

    def keep_answered(self, attempt_ids: list[str], answered: int) -> None:
        """Keep a mark the journal cannot take now (another program holds its lock, a full disk: ``mark_answered``
        is owed meanwhile) on the disk beside it: a file per create attempt, named by its id, holding the mark. The
        owed write lets it go once the journal has the mark (``mark_answered`` with ``kept``); a server killed
        before that leaves it to the next start (``take_kept_answers``), so that the same request sent again is a
        new one, as it would have been, never a replay of that call saying its server stopped before noting it. Only
        kie-mcp's own folder is written (never through a link); a disk that takes nothing loses it, as before, with a
        warning. Never raises."""
        folder = self._answers_kept()
        if folder is None:
            return
        try:
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
            with _own_folder(folder) as opened:
                for attempt_id in attempt_ids:
                    if ATTEMPT_ID.fullmatch(attempt_id):
                        _write_small(folder, attempt_id, str(answered).encode(), opened)
        except OSError as err:
            log.warning("could not keep whether the answer of create(s) %s reached the client: %s", attempt_ids, err)

    def _let_go_kept(self, attempt_ids: Iterable[str]) -> None:
        """The kept copies of these attempts' marks removed (``keep_answered``): the journal has them. Never raises."""
        folder = self._answers_kept()
        if folder is None:
            return
        with contextlib.suppress(OSError), _own_folder(folder) as opened:
            for attempt_id in attempt_ids:
                if ATTEMPT_ID.fullmatch(attempt_id):
                    with contextlib.suppress(OSError):  # gone already, or a folder of that name: the others still go
                        os.unlink(attempt_id, dir_fd=opened) if opened is not None else (folder / attempt_id).unlink()

    def take_kept_answers(self) -> int:
        """The answered marks kept beside the journal (``keep_answered``) by a server that stopped before the
        journal took them, put in it now (``KEPT_ANSWER``) and let go: at a start. Two starts at once put each in
        once (the same mark twice is the same). A file no kie-mcp wrote (not an attempt's id, or not a mark) is let
        go of, unread when it is no regular file. Returns how many attempts took a mark."""
        folder = self._answers_kept()
        if folder is None or folder.is_symlink() or not folder.is_dir():
            return 0
        marks: dict[str, int | None] = {}
        with _own_folder(folder) as opened:
            for name in os.listdir(folder if opened is None else opened):
                if ATTEMPT_ID.fullmatch(name):
                    marks[name] = _read_mark(folder, name, opened)
        if not marks:
            return 0
        taken = 0
        with self.transaction() as db:
            for attempt_id, mark in marks.items():
                if mark is not None:
                    taken += db.execute(KEPT_ANSWER, (mark, attempt_id, CALL_RUNNING, mark, CALL_ANSWERED)).rowcount
        self._let_go_kept(marks)
        return taken

    def unanswered_attempts(self, digest: str, since: float) -> list[sqlite3.Row]:
        """Create attempts for the request ``digest`` since ``since`` that may have created a task (not refused by
        KIE) and whose call's answer never reached the client: cut off, or left running by a process that is gone.
        A call still running in a live process is not one."""
        rows = self.query(
            "SELECT * FROM attempts WHERE digest = ? AND created >= ? AND answered != ? AND state != 'refused'"
            " ORDER BY created",
            digest,
            since,
            CALL_ANSWERED,
        )
        return [
            row
            for row in rows
            if (row["answered"] == CALL_CUT_OFF or processes.owner_gone(row["owner"])) and not never_resent(row)
        ]

    def recent_attempts(self, digest: str, since: float) -> list[sqlite3.Row]:
        """Create attempts for the request ``digest`` since ``since`` that KIE did not refuse (made, of unknown
        outcome, being sent, or waiting to be sent again after a 429 by a live process), oldest first."""
        rows = self.query(
            "SELECT * FROM attempts WHERE digest = ? AND created >= ? AND state != 'refused' ORDER BY created",
            digest,
            since,
        )
        return [row for row in rows if not never_resent(row)]

    def call_attempts(self, attempt: sqlite3.Row) -> list[sqlite3.Row]:
        """The create attempts of the call that made ``attempt`` that KIE did not refuse (made, of unknown outcome, or
        being sent), oldest first: those of its request, its process and its reservation (each call's creates share
        their reservation's moment, ``reserved_at``, whatever approved them). An attempt that keeps no such moment (an
        older kie-mcp's) stands alone."""
        if attempt["reserved_at"] is None:
            return [attempt]
        rows = self.query(
            "SELECT * FROM attempts WHERE digest = ? AND created >= ? AND owner IS ? AND reserved_at = ?"
            " AND state != 'refused' ORDER BY created",
            attempt["digest"],
            attempt["reserved_at"],
            attempt["owner"],
            attempt["reserved_at"],
        )
        return [row for row in rows if not never_resent(row)]

    def attempts_for_quote(self, quote_id: str) -> list[sqlite3.Row]:
        """Every create one quote (or confirmation) approved, whatever became of it: created, refused, unknown, or
        still being sent."""
        return self.query("SELECT * FROM attempts WHERE quote_id = ? ORDER BY created", quote_id)

    def attempts_by_id(self, attempt_ids: Iterable[str]) -> list[sqlite3.Row]:
        """The attempts named, oldest first."""
        rows = [row for a in attempt_ids for row in self.query("SELECT * FROM attempts WHERE attempt_id = ?", a)]
        return sorted(rows, key=lambda row: row["created"])

    def latest_attempts(self, state: str, limit: int) -> list[sqlite3.Row]:
        """The newest ``limit`` create attempts in ``state``, newest first: an index range, however many there are
        (a workspace may hold thousands of creates of unknown outcome)."""
        return self.query("SELECT * FROM attempts WHERE state = ? ORDER BY created DESC LIMIT ?", state, limit)

    def count_attempts(self, state: str) -> int:
        return int(self.query("SELECT COUNT(*) FROM attempts WHERE state = ?", state)[0][0])

    def attempts(self, state: str | None = None) -> list[sqlite3.Row]:
        if state is None:
            return self.query("SELECT * FROM attempts ORDER BY created")
        return self.query("SELECT * FROM attempts WHERE state = ? ORDER BY created", state)

    def unsettled_attempts(self, model: str, since: float, until: float, limit: int = 200) -> list[sqlite3.Row]:
        """The creates of ``model`` begun between ``since`` and ``until`` that may have made a task whose id this
        journal never got: of unknown outcome, or still being sent. Oldest first, at most the newest ``limit``
        (an index range of ``attempts_state_created``, however many there are)."""
        rows = self.query(
            "SELECT * FROM attempts WHERE state IN ('unknown', 'sending') AND created >= ? AND created <= ?"
            " AND model = ? ORDER BY created DESC LIMIT ?",
            since,
            until,
            model,
            limit,
        )
        return rows[::-1]

    def link_found_task(
        self,
        attempt_ids: list[str],
        task_id: str,
        record: Callable[[sqlite3.Row], None],
        note: Callable[[sqlite3.Row], str],
    ) -> sqlite3.Row | None:
        """Record ``task_id``, a task found at KIE (``check_task`` of an id this journal did not know), as the one made
        by the first of ``attempt_ids`` (creates of one call, whose answers were lost) still of unknown outcome: that
        attempt becomes created with the task (``note(attempt)``: its error from now on), and ``record``, called in
        the transaction with the attempt's row, writes the task's record with its prompt, session, quote and
        reservation. Only while neither the journal's tasks nor another attempt hold that task (another server, or
        another look, recorded it meanwhile). One durable transaction (a task id, and the money its charge settles):
        two looks at two tasks of one call's variations take one create each. Returns the attempt's row as it was
        read (None: nothing was recorded)."""
        with self.transaction(durable=True) as db:
            taken = db.execute(
                "SELECT 1 FROM tasks WHERE task_id = ? UNION ALL SELECT 1 FROM attempts WHERE task_id = ?",
                (task_id, task_id),
            ).fetchone()
            if taken is not None:
                return None
            for attempt_id in attempt_ids:
                attempt = db.execute(
                    "SELECT * FROM attempts WHERE attempt_id = ? AND state = 'unknown'", (attempt_id,)
                ).fetchone()
                if attempt is None:
                    continue
                db.execute(
                    "UPDATE attempts SET state = 'created', task_id = ?, error = ?, updated = ? WHERE attempt_id = ?",
                    (task_id, note(attempt), time.time(), attempt_id),
                )
                record(attempt)
                return attempt
        return None

    # -- who follows a task ---------------------------------------------------------------------
    # One follower per workspace asks KIE about a task and saves its results, whichever server it runs in: each
    # claims the tasks it follows here and renews the claims every minute (``tasks/follower.py``).

    def claim_follow(self, task_id: str, owner: str, *, fresh_for: float, take_dropped: bool = False) -> str | None:
        """Claim following ``task_id`` for the follower ``owner``. None when it is ours now; else the owner that
        holds it: one that renewed its claim within ``fresh_for`` seconds and whose process is not known to be gone
        (``processes.owner_gone``; another machine's cannot be told, so its claim holds until it goes stale)."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute("SELECT owner, seen FROM follows WHERE task_id = ?", (task_id,)).fetchone()
            if (holder := _live_holder(row, owner, now - fresh_for, take_dropped=take_dropped)) is not None:
                return holder
            db.execute(
                "INSERT INTO follows (task_id, owner, seen) VALUES (?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET"
                " owner = excluded.owner, seen = excluded.seen",
                (task_id, owner, now),
            )
        return None

    def follower_of(self, task_id: str, owner: str, *, fresh_for: float, take_dropped: bool = True) -> str | None:
        """Another follower holding ``task_id`` (as ``claim_follow`` judges), without claiming it; or None. A read:
        it never waits for another writer's lock."""
        rows = self.query("SELECT owner, seen FROM follows WHERE task_id = ?", task_id)
        return _live_holder(rows[0] if rows else None, owner, time.time() - fresh_for, take_dropped=take_dropped)

    def followed_elsewhere(self, owner: str, *, fresh_for: float) -> set[str]:
        """The tasks another follower, alive (or of another machine), claimed within ``fresh_for`` seconds."""
        rows = self.query(
            "SELECT task_id, owner FROM follows WHERE owner NOT IN (?, ?) AND seen > ?",
            owner,
            owner + DROPPED,
            time.time() - fresh_for,
        )
        gone: dict[str, bool | None] = {}
        for row in rows:
            gone.setdefault(row["owner"], processes.owner_gone(row["owner"].removesuffix(DROPPED)))
        return {row["task_id"] for row in rows if gone[row["owner"]] is not True}

    def followed_by_gone(self, owner: str) -> set[str]:
        """The tasks claimed by another follower whose process is known to be gone (killed: it never released them)."""
        rows = self.query("SELECT task_id, owner FROM follows WHERE owner NOT IN (?, ?)", owner, owner + DROPPED)
        gone: dict[str, bool | None] = {}
        for row in rows:
            gone.setdefault(row["owner"], processes.owner_gone(row["owner"].removesuffix(DROPPED)))
        return {row["task_id"] for row in rows if gone[row["owner"]] is True}

    def renew_follows(self, owner: str) -> None:
        self.execute("UPDATE follows SET seen = ? WHERE owner IN (?, ?)", time.time(), owner, owner + DROPPED)

    def drop_follow(self, task_id: str, owner: str) -> None:
        """``owner`` left ``task_id`` alone: it keeps the claim (no other server's rescan takes the task up), which a
        check_task elsewhere may take over."""
        self.execute("UPDATE follows SET owner = ? WHERE task_id = ? AND owner = ?", owner + DROPPED, task_id, owner)

    def release_follows(self, owner: str, task_id: str | None = None) -> None:
        """Give up the claim on ``task_id`` (or on every task, when the follower stops)."""
        if task_id is None:
            self.execute("DELETE FROM follows WHERE owner IN (?, ?)", owner, owner + DROPPED)
        else:
            self.execute("DELETE FROM follows WHERE task_id = ? AND owner IN (?, ?)", task_id, owner, owner + DROPPED)

    # -- tasks -----------------------------------------------------------------------------------

    def save_task(self, record_json: str, *, task_id: str, model: str, state: str, **extra: Any) -> None:
        """Save a task's record (``extra``: attempt_id, prompt, session, created, parent_task_id). The prompt is
        kept redacted, and folded as text searches compare it (``folded``)."""
        now = time.time()
        prompt = redact(extra["prompt"]) if extra.get("prompt") else None
        session = redact(extra["session"]) if extra.get("session") else None
        self.execute(
            "INSERT INTO tasks (task_id, attempt_id, model, state, prompt, session, record, created, updated,"
            " parent_task_id, prompt_folded, session_folder) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(task_id) DO UPDATE"
            " SET state = excluded.state, record = excluded.record, updated = excluded.updated,"
            " session_folder = CASE WHEN excluded.session IS NULL THEN tasks.session_folder"
            " ELSE excluded.session_folder END,"
            " prompt = COALESCE(excluded.prompt, tasks.prompt), session = COALESCE(excluded.session, tasks.session),"
            " prompt_folded = COALESCE(excluded.prompt_folded, tasks.prompt_folded),"
            " attempt_id = COALESCE(excluded.attempt_id, tasks.attempt_id),"
            " parent_task_id = COALESCE(excluded.parent_task_id, tasks.parent_task_id)"
            # A finished task never reads unfinished again: another server on this workspace (or a slow look of
            # this one) may write what it saw before the task ended, after the task's end was recorded.
            " WHERE NOT (tasks.state IN ('succeeded', 'failed') AND"
            " excluded.state IN ('queued', 'running', 'succeeded_without_results'))",
            task_id,
            extra.get("attempt_id"),
            model,
            state,
            prompt,
            session,
            record_json,
            extra.get("created", now),
            now,
            extra.get("parent_task_id"),
            folded(prompt) if prompt else None,
            session_folder_of(session),
        )

    def keep_answer(self, task_id: str, body: dict[str, Any]) -> None:
        """Keep KIE's raw answer about a task when it made no sense (success without results), for later study."""
        self.execute(
            "INSERT INTO answers (task_id, body, at) VALUES (?, ?, ?)",
            task_id,
            json.dumps(body, ensure_ascii=False, default=str),
            time.time(),
        )

    def answers_for(self, task_id: str) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.query("SELECT body FROM answers WHERE task_id = ?", task_id)]

    def task_row(self, task_id: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM tasks WHERE task_id = ?", task_id)
        return rows[0] if rows else None

    def children(self, parent_task_id: str, model: str | None = None) -> list[sqlite3.Row]:
        """The follow-ups of a task (extensions, 1080p/4K versions, upscales), oldest first; of one model if given."""
        if model is None:
            return self.query("SELECT * FROM tasks WHERE parent_task_id = ? ORDER BY created", parent_task_id)
        return self.query(
            "SELECT * FROM tasks WHERE parent_task_id = ? AND model = ? ORDER BY created", parent_task_id, model
        )

    def chain(self, task_id: str, limit: int = 100) -> list[sqlite3.Row]:
        """The task and every task it continues, back to the first clip: newest first. Stops at a task the journal
        does not know (or after ``limit`` links, should a hand-edited journal loop)."""
        rows: list[sqlite3.Row] = []
        seen: set[str] = set()
        current: str | None = task_id
        while current and current not in seen and len(rows) < limit:
            row = self.task_row(current)
            if row is None:
                break
            rows.append(row)
            seen.add(current)
            current = row["parent_task_id"]
        return rows

    def unfinished_tasks(
        self,
        *,
        since: float,
        quiet_since: float | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 500,
    ) -> list[sqlite3.Row]:
        """Tasks KIE has not finished yet (queued, running, or success without a result link), created after
        ``since``, oldest first (by creation, then id); with ``quiet_since``, only those nobody recorded anything
        about after it; with ``after`` (the creation time and id of the last row of a page), the next page."""
        where = "state IN ('queued', 'running', 'succeeded_without_results') AND created >= ?"
        args: list[Any] = [since]
        if quiet_since is not None:
            where += " AND updated <= ?"
            args.append(quiet_since)
        if after is not None:
            where += " AND (created > ? OR (created = ? AND task_id > ?))"
            args += [after[0], after[0], after[1]]
        return self.query(f"SELECT * FROM tasks WHERE {where} ORDER BY created, task_id LIMIT ?", *args, limit)

    def tasks_changed_since(self, since: float, limit: int = 500) -> list[sqlite3.Row]:
        """Tasks recorded (created or changed, by any server on the workspace) at ``since`` or later, oldest change
        first: what the follower relays to its clients about tasks other servers follow."""
        return self.query("SELECT * FROM tasks WHERE updated >= ? ORDER BY updated LIMIT ?", since, limit)

    def unsaved_tasks(self, *, since: float, limit: int = 100) -> list[sqlite3.Row]:
        """Succeeded tasks created after ``since`` with fewer saved files than result links, oldest first: results
        that a failed download or a stop left on KIE only (a file the user deleted later still has its row)."""
        try:
            return self.query(
                "SELECT * FROM tasks t WHERE state = 'succeeded' AND created >= ? AND (SELECT COUNT(*) FROM files f"
                " WHERE f.task_id = t.task_id) < json_array_length(record, '$.result_urls') ORDER BY created LIMIT ?",
                since,
                limit,
            )
        except sqlite3.OperationalError as err:
            if "json" not in str(err).lower():
                raise
            return self.query(  # an SQLite built without JSON functions: the tasks with no file saved at all
                "SELECT * FROM tasks t WHERE state = 'succeeded' AND created >= ? AND NOT EXISTS (SELECT 1 FROM"
                " files f WHERE f.task_id = t.task_id) ORDER BY created LIMIT ?",
                since,
                limit,
            )

    def find_tasks(
        self,
        *,
        state: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        text: str | None = None,
        session: str | None = None,
        older_than: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[sqlite3.Row]:
        """Tasks matching the filters, newest first (ties of creation time by task id, so a listing continued with
        ``older_than`` never skips or repeats one), at most ``limit``.

        With ``text`` (or ``session``), every prompt (or session label) is compared: a scan of the whole table
        (about 0.4 s at 50,000 tasks with 2 kB prompts), run on a connection of its own, so that in a worker thread
        it holds up no other journal use."""
        where, args = _task_filter(
            state=state, model=model, since=since, text=text, session=session, older_than=older_than
        )
        sql = f"SELECT * FROM tasks {where} ORDER BY created DESC, task_id DESC LIMIT ?"
        if not text and not session:
            return self.query(sql, *args, limit)
        with self._reader() as db:
            if text:
                self.fold_prompts(db)
            if session:
                self.name_folders(db)
            return db.execute(sql, (*args, limit)).fetchall()

    def count_tasks(
        self,
        *,
        state: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        text: str | None = None,
        session: str | None = None,
        older_than: tuple[float, str] | None = None,
    ) -> int:
        """How many tasks ``find_tasks`` with these filters would find without a limit."""
        where, args = _task_filter(
            state=state, model=model, since=since, text=text, session=session, older_than=older_than
        )
        sql = f"SELECT COUNT(*) FROM tasks {where}"
        if not text and not session:
            return int(self.query(sql, *args)[0][0])
        with self._reader() as db:
            return int(db.execute(sql, args).fetchone()[0])

    def recent_task_ids(self, prefix: str, limit: int, longest: int) -> tuple[list[str], int]:
        """The ids of the newest ``limit`` tasks whose id starts with ``prefix`` (as written: ids are case-sensitive)
        and is at most ``longest`` characters, newest first, and how many tasks' ids do: what completion suggests for
        ``kie://tasks/{task_id}``. The count is a range of the task id's own index, the ids a walk of the creation-time
        index (or of that range, sorted, when the prefix narrows it); on a connection of its own (``_reader``), so in a
        worker thread it holds up no tool call's journal use."""
        where, args = "WHERE length(task_id) <= ?", [longest]
        if prefix:
            where += " AND task_id >= ? AND task_id < ?"  # ``prefix`` and what follows all of it in text order
            args += [prefix, prefix + "\U0010ffff"]
        # One statement: the ids and their count from one reading of the journal, whatever is written meanwhile.
        sql = (
            f"SELECT task_id, (SELECT COUNT(*) FROM tasks {where}) AS total FROM tasks {where}"
            " ORDER BY created DESC, task_id DESC LIMIT ?"
        )
        with self._reader() as db:
            rows = db.execute(sql, (*args, *args, limit)).fetchall()
        return [row[0] for row in rows], int(rows[0][1]) if rows else 0

    def cursor_after(self, task_ids: Iterable[str], filters: dict[str, Any]) -> str | None:
        """The cursor that lists the tasks after a page of ``find_tasks`` with ``filters`` (``task_ids``: the page's
        tasks, its unreadable rows too); None when the journal holds none of them."""
        end = self._page_end(task_ids)
        return page_cursor(end, filters) if end else None

    def _page_end(self, task_ids: Iterable[str]) -> tuple[float, str] | None:
        """The creation time and id of the oldest of ``task_ids``: where the next page starts."""
        ids = list(dict.fromkeys(task_ids))
        ends: list[tuple[float, str]] = []
        for start in range(0, len(ids), 500):  # a page is at most 200; SQLite takes up to 999 values
            some = ids[start : start + 500]
            rows = self.query(
                f"SELECT created, task_id FROM tasks WHERE task_id IN ({','.join('?' * len(some))})", *some
            )
            # A time no keyset can hold (NULL, NaN: a hand edit) is skipped: such a row sorts after every other.
            ends += [(row["created"], row["task_id"]) for row in rows if _finite(row["created"])]
        return min(ends) if ends else None

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own for a long read (a text search over every prompt), closed after it: it holds no
        lock of this handle, so in a worker thread it holds up no tool call's journal use on the event loop (WAL:
        readers and the writer never wait for each other). A journal of one connection (":memory:", tests) lends
        that one, under its lock; so does one a second connection cannot open."""
        db: sqlite3.Connection | None = None
        if str(self.path) != ":memory:":
            try:
                db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
                db.row_factory = sqlite3.Row
                _search_functions(db)
                db.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as err:
                log.info("the journal's search uses the shared connection (%s)", err)
                if db is not None:
                    db.close()
                db = None
        if db is None:
            with self._lock:
                yield self._db
            return
        try:
            yield db
        finally:
            db.close()

    def fold_prompts(
        self, db: sqlite3.Connection | None = None, *, seconds: float = FOLD_SECONDS, batch: int = 500
    ) -> int:
        """Fold the prompts kept without their folded form (by a kie-mcp before it kept one, or a hand edit) so that
        text searches compare them inside SQLite alone; return how many. Newest first (a search stops at its page of
        the newest), a batch (at most 500) at a time, each a short write transaction, for ``seconds`` at most: the
        search after an upgrade costs no more than one more second however large the journal (the next searches
        fold on). On ``db`` (a ``_reader`` connection), outside any lock of this handle. A journal that cannot be
        written keeps them as they are: the search folds them as it reads them."""
        said = "prompts of older tasks could not be folded for searches"
        return self._fill_in("prompt_folded", "prompt", folded, said, db, seconds=seconds, batch=batch)

    def name_folders(
        self, db: sqlite3.Connection | None = None, *, seconds: float = FOLD_SECONDS, batch: int = 500
    ) -> int:
        """Keep the session folder each label names (``session_folder_of``) for the tasks kept without it (by a
        kie-mcp before it kept one, or a label changed by a hand edit), so that searches by a session folder's name
        compare the column inside SQLite alone; return how many. As ``fold_prompts``: newest first, a batch (at most
        500) at a time, each a short write transaction, for ``seconds`` at most, on ``db`` outside any lock of this
        handle; a journal that cannot be written keeps them as they are, and the search names them as it reads."""
        said = "the session folders of older tasks could not be kept for searches"
        return self._fill_in("session_folder", "session", session_folder_of, said, db, seconds=seconds, batch=batch)

    def _fill_in(
        self,
        column: str,
        source: str,
        make: Callable[[Any], Any],
        said: str,
        db: sqlite3.Connection | None,
        *,
        seconds: float,
        batch: int,
    ) -> int:
        """Fill the tasks' ``column`` kept empty (NULL) with ``make`` of their ``source`` column, newest first, a
        batch at a time, each a short write transaction, for ``seconds`` at most (``fold_prompts``, ``name_folders``);
        return how many. A write refused (read-only, busy past the timeout) stops it, logged with ``said``."""
        find = (
            f"SELECT rowid, created, {source} FROM tasks WHERE {column} IS NULL AND {source} IS NOT NULL"
            " AND (created, rowid) < (?, ?) ORDER BY created DESC, rowid DESC LIMIT ?"
        )
        keep = f"UPDATE tasks SET {column} = ? WHERE rowid = ? AND {source} IS ? AND {column} IS NULL"
        done, before, deadline = 0, (math.inf, 0), time.monotonic() + seconds
        with self._lock if db is None else contextlib.nullcontext():
            db = db or self._db
            while time.monotonic() < deadline and (rows := db.execute(find, (*before, min(batch, 500))).fetchall()):
                before = (rows[-1]["created"], rows[-1]["rowid"])
                values = [(make(row[source]), row["rowid"], row[source]) for row in rows]
                try:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        db.executemany(keep, values)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                except sqlite3.Error as err:  # read-only, or busy for longer than the timeout: searched all the same
                    log.info("%s: %s", said, err)
                    return done
                done += len(rows)
        return done

    def charged_before(self, model: str, options_key: str, limit: int = 5) -> list[tuple[float, float, bool]]:
        """(credits charged, when, whether measured from the balance rather than reported by KIE) of recent finished
        tasks with this model and these options, newest first."""
        # tasks.options_key is the options_key of the task's attempt (kept by a trigger), so this is one index range.
        rows = self.query(
            "SELECT record, updated FROM tasks WHERE model = ? AND options_key = ? AND state = 'succeeded'"
            " ORDER BY updated DESC LIMIT ?",
            model,
            options_key,
            limit,
        )
        found = []
        for row in rows:
            record = json.loads(row["record"])
            charged = record.get("credits_charged")
            if charged is not None:
                found.append((float(charged), float(row["updated"]), record.get("charge_measured") is True))
        return found

    # -- quotes --------------------------------------------------------------------------------

    def forget_quotes(self, expired_before: float, batch: int = 500) -> int:
        """Delete the quotes that expired before ``expired_before`` and that no create attempt names (a quote that
        approved a create stays as long as its task: replays and the approval trail read it); return how many.

        Slow on a large journal, so it runs in a worker thread on a connection of its own: the rows are looked for
        outside any lock (WAL: readers never wait), then deleted ``batch`` (at most 500) at a time, each batch a
        short write transaction that checks them again, so a tool call's write waits for one batch at most."""
        find = (
            "SELECT rowid FROM quotes WHERE rowid > ? AND expires < ? AND NOT EXISTS"
            " (SELECT 1 FROM attempts a WHERE a.quote_id = quotes.quote_id) ORDER BY rowid LIMIT ?"
        )
        shared = str(self.path) == ":memory:"  # a journal of one connection (tests): that one, under its lock
        db = self._db if shared else sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        removed, after = 0, 0
        try:
            with self._lock if shared else contextlib.nullcontext():
                db.execute("PRAGMA busy_timeout=30000")
                while rows := [row[0] for row in db.execute(find, (after, expired_before, min(batch, 500)))]:
                    after = rows[-1]
                    forget = (
                        f"DELETE FROM quotes WHERE rowid IN ({','.join('?' * len(rows))}) AND expires < ?"
                        " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.quote_id = quotes.quote_id)"
                    )
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        removed += db.execute(forget, (*rows, expired_before)).rowcount
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
        finally:
            if not shared:
                db.close()
        return removed

    # -- files ---------------------------------------------------------------------------------

    def add_file(
        self,
        task_id: str,
        index: int,
        path: str,
        sha256: str,
        size: int,
        mime: str,
        source_url: str,
        holds_key: bool = False,
    ) -> None:
        """Record task ``task_id``'s ``index``-th result, saved at ``path`` (relative to the workspace); ``holds_key``:
        its bytes held the API key as it was saved (``FILE_COLUMNS``)."""
        self.execute(
            "INSERT OR REPLACE INTO files (task_id, idx, path, sha256, size, mime, source_url, created, holds_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            task_id,
            index,
            path,
            sha256,
            size,
            mime,
            source_url,
            time.time(),
            int(holds_key),
        )

    def remember_upload(self, sha256: str, url: str, *, reusable_for: float | None = None) -> None:
        """Remember an upload of this content; ``reusable_for``: seconds it may be reused at most (KIE said when it
        deletes the file), else ``live_upload``'s own limit."""
        now = time.time()
        expires = None if reusable_for is None else now + reusable_for
        self.execute(
            "INSERT OR REPLACE INTO uploads (sha256, url, uploaded, expires) VALUES (?, ?, ?, ?)",
            sha256,
            url,
            now,
            expires,
        )

    def live_upload(self, sha256: str, max_age_seconds: float) -> str | None:
        """The URL of an earlier upload of the same content, while KIE still keeps it."""
        now = time.time()
        rows = self.query(
            "SELECT url FROM uploads WHERE sha256 = ? AND uploaded > ? AND (expires IS NULL OR expires > ?)",
            sha256,
            now - max_age_seconds,
            now,
        )
        return rows[0]["url"] if rows else None

    def files_for(self, task_id: str) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM files WHERE task_id = ? ORDER BY idx", task_id)

    def saved_from(self, url: str) -> bool:
        """Whether ``url`` is a result link KIE gave a task of this workspace and kie-mcp saved its file from."""
        return bool(self.query("SELECT 1 FROM files WHERE source_url = ? LIMIT 1", url))

    def key_held_in(self, folder: str) -> dict[str, int]:
        """The saved files in ``folder`` (relative to the workspace, as ``files_for`` lists them, ending in ``/``)
        and its folders whose bytes held the API key as they were saved (``FILE_COLUMNS``), each with its size then
        (the file is another once its size differs: ``saved.kept``). One range of their own small index, for a whole
        folder: a completion judges every file of it."""
        end = folder[:-1] + chr(ord(folder[-1]) + 1)  # "outputs/day/" to "outputs/day0": all it holds
        rows = self.query("SELECT path, size FROM files WHERE holds_key = 1 AND path >= ? AND path < ?", folder, end)
        return {row["path"]: row["size"] for row in rows}

    def file_at(self, path: str) -> sqlite3.Row | None:
        """The saved file at ``path`` (relative to the workspace, as ``files_for`` lists it): its task and which of
        its results it is; None for a file no task saved here."""
        rows = self.query("SELECT * FROM files WHERE path = ? ORDER BY created DESC LIMIT 1", path)
        return rows[0] if rows else None
