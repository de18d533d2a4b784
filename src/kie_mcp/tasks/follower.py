"""The follower: one per server process, the only place that asks KIE how a task is doing.

It follows every unfinished task of the workspace (those in the journal when the server starts, those this
process creates or is asked about, and any the journal shows that nobody has touched for a while) to the end,
whether or not a tool call is waiting on it:

- **When it looks.** By the model's typical duration ``(low, high)``: a first look at 1.2x ``low`` (nothing
  is asked before: KIE seldom finishes that early), then every 10% of the task's age, never closer than
  ``settings.poll_min_interval`` and never further apart than a minute. So a task is seen within
  max(2 s, 10%) of its duration whenever it ends after 1.1x ``low`` (within 20% if it ends right at ``low``).
  A 5-minute Veo 3.1 Fast clip costs 12 status calls (``bench/bench_polling.py``), against 49 when every
  ``check_task`` call polled alone; waiting for the typical end before the first look is what keeps it that low.
  A look out of turn (``check_task``'s "look now", a wait's early look: below) costs that one status call and moves
  no later look earlier (``_resumed``): the schedule goes on from the look it went ahead of, or from the look out of
  turn when the schedule's own gap after it ends later. A task the journal did not know, found at KIE by a
  ``check_task``, ``kie://tasks/{id}`` or ``continue_video`` (that call's look is its first), is looked at next where
  the schedule puts the look after one at its age from KIE's time of the task (milliseconds: the Market, GPT-4o
  Image), never before its first scheduled look. One KIE gives no such time for (Veo, Runway, Aleph, Flux Kontext)
  may be old and nearly done: it is looked at every 10% of the time since it was found (2 s at least). Only an end
  it sees moves the schedule earlier (the finishing starts at once); a 429's pause, a failed look's backoff or a
  success without a result link (3 minutes) may move it later, as after any look. KIE's reported progress plays no
  part in the schedule.
  ``settings.poll_min_interval`` (2 s) is also the schedule's time unit: tests that shorten it to 10 ms run
  the same schedule 200 times faster.
- **Backing off.** A 429 pauses every look for ``settings.rate_limit_backoff``, doubling while KIE keeps answering 429
  (up to 8x); an answer about a task whose own last check KIE answered 429 says so from the first (``Asking``), and
  from the second in a row, every followed task says so (``records.RATE_LIMITED``: when kie-mcp asks
  again, and that another app using the key may be spending the budget) until KIE answers again; a network or server
  error, or an answer that cannot be used (garbage no parser foresaw: noted on the record until KIE answers sensibly),
  puts that task's next look further out (doubling, up to a minute); a refusal (unknown task, bad key) is noted on the
  record, and after 8 in a row (``GIVE_UP``: refusals only, not other failures) the task is left alone, as is one KIE
  still calls unfinished 14 days after it was created (``RETENTION_SECONDS``: KIE deletes results then, and a restart
  would not adopt it). The record then says so (``NOT_FOLLOWED``, in the journal too) with what to do; ``check_task``
  still asks, and tasks left alone for refusals are taken up again once an hour (``RETRY_DROPPED``: a key or KIE may
  have recovered). A task unfinished twice as long as its model's longest typical duration shows no time left
  (``records.OVERDUE``). A young task KIE does not show yet is not an error (``VISIBILITY_GRACE_SECONDS``; for Runway
  and Aleph, which answer a task they do not know with no record at all, counted from the task's first look), and
  a task KIE has answered about before that it then answers with no record is a failed look, backing off, never a
  refusal towards ``GIVE_UP``. Every look goes through the KIE client's poll pacing (10 per second).
- **When a task ends** it settles the spend (refund of a failed task, KIE's real charge), tells the client (below: at
  once, whatever downloads its results wait for), saves the results into ``outputs/`` (unless ``KIE_DOWNLOAD=never``),
  records everything in the journal, and tells the client again once they are saved. An end the journal will not take (a
  full disk, a journal refusing writes) is kept in memory (``_ended``): the journal still calls the task unfinished, and
  no rescan takes it up again to ask KIE and download its results anew; ``check_task`` answers from it, and it is
  written once the journal takes it (the runtime's ``OwedWrites``); a write that fails for good (dropped by
  ``OwedWrites``) lets it go, so the journal's record is followed again, as after a restart. Results a download missed
  (a CDN error, a cut-off body, the server stopped while saving) are tried again on ``SAVE_AGAIN``'s schedule (30 s,
  then longer gaps up to half an hour: seven tries in about 50 minutes), then every ``RETRY_DROPPED`` (an hour: a CDN
  outage, a network down or an unplugged disk for outputs/ outlasts the schedule, and a server runs for days) until the
  next try would come after KIE deleted them (``RETENTION_SECONDS``); the client is told when the quick tries are over
  (what to do: check_task saves them now) and when the tries stop. After a restart they are tried at once for every task
  of the last 14 days the journal shows succeeded with fewer saved files than result links (up to 10,000); every
  ``RESCAN`` too for such a task nobody here has (another server on the workspace stopped while saving it, or between
  two tries; not one a live follower claims). Every save of a task's results, whoever makes it, first removes the
  temporary files a dead process's download of them left (``results.save_results``). A task made
  elsewhere and first seen already finished (through ``kie://tasks/{id}``, or as a follow-up's source) has its results
  saved the same way, at once (``follow``); a ``check_task`` of a task no follower holds saves it itself, claiming it as
  a background try does (``save_now``: another server's try waits, never downloading it at the same time), and what it
  missed, or left when it was cancelled mid-download, is handed over the same way (``save_later``). A link refused for
  pointing at this machine or a private network, for serving more than any result of its kind, or that KIE refused to
  renew twice, is never tried again by this process. Finishing is ``generation.settle`` and ``generation.save_all``,
  reached through the ``finish`` callback (imported when first used: ``generation`` imports ``runtime``, which imports
  this).
- **Waiting.** ``generate_*`` and ``check_task`` never poll themselves: they ``wait`` on the follower. Each
  watched task has a ``done`` event (set once the task is finished AND settled and saved) and a set of
  listener events, set after every look; a waiter registers one event with each task it waits on, and also
  wakes every ``settings.poll_max_interval`` to refresh its progress estimate (progress notifications double
  as heartbeats). However many calls wait on a task, it is looked at once per scheduled look. ``check_task``
  with ``wait_seconds=0`` is the one explicit "look now": it asks KIE once (after any look in flight), unless 429s
  pause every look: then the record answers, saying so. Also of a task another server's follower holds
  (``_look_apart``: below). It is a look out of turn (above): made before the task's first scheduled look, it costs
  that one status call, and the next look is still the first scheduled one. A generation stops waiting on a task KIE
  says succeeded without a result link (looked at again every 3 minutes: its answer says so, never "still
  generating"). A generation cut off after its creates, before it waits (cancelled by its host), hands its tasks over
  (``adopt``): they are followed and saved at once, with nobody waiting.
- **An early look for a wait** (``_ask_early``). The schedule holds a task's first look back to 1.2x its model's
  typical minimum, so a ``check_task`` that waits (``wait_seconds`` > 0) before then would answer only the estimate it
  began with, though KIE may have ended the task long before (a content refusal is often its fastest answer). Such a
  wait gets one look at KIE early in it, made by the follower in its loop like every look and seen by every waiter,
  when all of these hold: the task is followed here and unfinished, no look at it is in flight, and looks are neither
  paused by 429s nor backing off after a failed look; the wait would end before the task's next scheduled look; KIE
  has not answered about the task yet (never asked, or it did not show the task yet: ``TaskRecord.answered``), or it
  said the task succeeded without a result link (looked at every 3 minutes) and the last look is further back than
  the schedule's own gap for the task's age (``next_gap``); and no early look of the task was made in the last
  ``poll_min_interval`` (coalesced: waits at once cause one look). The look is made at once, or as the task turns
  ``FLOOR`` (2 schedule seconds) old when it is younger (KIE may not show a task in its first moments), and not at
  all when the wait ends before that. It moves no later look: the schedule resumes at the look it went ahead of
  (``Watch.resume_at``). So waiting costs a task one status call more, once (one more a wait, at most, while KIE does
  not show the task yet), a second waiter none, and nothing when nobody waits. ``asking`` tells an answer whether KIE
  was asked, whether the progress is KIE's figure or the estimate, and when the next look is due.
- **Looks and downloads apart.** At most ``LOOKS_AT_ONCE`` looks run at once, and a task that ended is finished
  (settled, its results downloaded) apart from them, ``ENDS_AT_ONCE`` at a time: results on a slow file server never
  stop other tasks from being looked at. A ``check_task`` of a task that just ended waits at most
  ``settings.save_grace`` for its results (or its own ``wait_seconds``, when longer); the download goes on, and the
  answer says the results are being saved; results waiting for a slot are said to be queued behind the downloads of
  so many other tasks (``queued_behind``), never "in a moment", and no grace is waited for them. Each download there
  gets ``settings.download_deadline`` in all (longer for a large file: ``downloads.Allowance``), then is left to the
  background's tries: a slow file server holds a finishing slot no longer. Those tries (``SAVES_AT_ONCE``) and
  ``check_task``'s own save (``save_now``) hold no finishing slot, and get longer (``Allowance.in_background``: six
  times as long, or a slower pace of a large file's size): a large result on a slow link is saved, never cut at the
  same point on every try, and one trickling on for days (just over the stall line, ``downloads.TRICKLE_BYTES`` a
  minute) or streaming garbage up to the size limit still ends, nothing of it kept, its link in the journal for the
  next try, so it never holds a background slot, nor the task's save lock, for good. The first such cut of a task's
  try is told to the client (``_announce``: what happened, and that check_task tries at once).
- **One follower per workspace.** Each task is claimed in the journal (``follows``) by the follower that asks
  KIE about it and saves its results, when it starts following it; claims are renewed every ``RESCAN`` and given
  up when the task ends or the server stops. Another server's follower leaves a task claimed by a live one alone,
  and takes it over once that server is gone (its process has ended, killed too: a call waiting on it here at once,
  the next rescan otherwise), or its claim goes ``QUIET`` unrenewed (another machine's). Meanwhile a call here that
  waits on such a task (a ``check_task``; a generation, when KIE answered with a task another server made, or that
  server's rescan took up this one's new task while it was busy) reads its row in the journal instead of asking KIE
  (``_read_apart``: every ``poll_min_interval``, a second at most, in a worker thread, and once more as the wait ends,
  so it answers what that server recorded within a second, with progress notifications at each read), waits for
  the results of one that ended while that server saves them (``check_task``: as long as for its own,
  ``save_grace``; saying they are being saved elsewhere only once that runs out), and saves them itself when that
  server let them go unsaved (it stopped). This server's clients are told of its changes read the same way
  (``_observe``): every
  ``poll_max_interval`` the follower reads the tasks the journal recorded since its last read (``_relay``, an index
  search on ``updated``) and observes each unfinished one it does not follow, whoever made it and whether or not
  anyone here asked about it; one another server made and finished between two reads is announced at once. A
  ``check_task`` here with ``wait_seconds=0`` asks KIE all the same, once (``_look_apart``: one such look at a task at a
  time, through the KIE client's poll pacing and paused by 429s, as every look), on a copy of the record: what it
  learnt is recorded unless that server recorded the task's end first (``TaskBook.add_unless_ended``), and an end's
  charge or refund settled (once per task, whichever server comes first); that server reads the end at its next
  relay (``_ended_elsewhere``) and looks then, not at its schedule's next look, and saves the results: never this one.
- **Another program's lock on the journal** (a database browser with an edit not saved, a kie-mcp stopped
  mid-write) never holds up the event loop, where SQLite would wait for it up to 30 s with pings, calls and
  cancellations frozen behind it: a look's state is left to the next look (or the task's end) to write, claims are
  decided by a read (WAL: reads never wait) and written once the lock goes (``_owed``), the rescan skips a turn, and
  what must be recorded (a task's end, its charge, its saved files, a task left alone) is written in a worker thread
  that waits for the lock (``Journal.off_loop_when_locked``).
- **Telling the client.** ``check_task`` and the ``kie://tasks/{id}`` resource hand the follower their request context
  (``attach_client``). From then on, every change of a task's state is published as a resource update of
  ``kie://tasks/{id}`` on the server's subscription bus (``Context.notify_resource_updated``: the bus is server-wide,
  so this works outside the request; the SDK delivers it only to ``subscriptions/listen`` streams that subscribed to
  that URI), and of ``kie://tasks``, as is a create whose outcome became unknown (``unknown_creates_changed``: that
  list names them). Handshake-era clients subscribe with ``resources/subscribe`` instead: each update of a URI a
  session subscribed to is sent to that session as ``notifications/resources/updated`` (``subscribers``). A finished
  task is also logged (stderr) and reported as a ``notifications/message`` (``ended_line``; one with results to save
  twice: as it ends, its results being saved or queued, and once they are saved or their save failed; a link kie-mcp
  refused is never given as the result): on the standalone channel to handshake-era clients; 2026-07-28 clients have
  no channel outside a request, so the line is queued and sent with the next ``check_task`` (delivered when that
  request opts in to log messages). Nothing here waits on a client: what a handshake-era session is sent goes in its
  outbox (``outbox``: bounded, sent in order by a task of its own, which ``run`` hosts), so a host that stops reading
  its stdout never holds a look or a finish slot, and tasks are followed and saved all the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import sqlite3
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from kie_mcp import processes
from kie_mcp.config import Settings
from kie_mcp.journal import JOURNAL_ERRORS
from kie_mcp.processes import this_process
from kie_mcp.words import timestamp

from .outbox import Outboxes
from .polling import Look, refresh
from .records import (
    NOT_FOLLOWED,
    RATE_LIMITED,
    STATUS_FAILED,
    STATUS_REFUSED,
    STILL_ASKING,
    TaskRecord,
    answer_not_recorded,
    record_from_row,
    time_left,
)
from .subscribers import Subscribers, connection_of_session

if TYPE_CHECKING:
    from mcp.server.connection import Connection

    from kie_mcp.runtime import Runtime

log = logging.getLogger(__name__)

# The schedule, in schedule seconds (runtime seconds with the default settings; see ``time_unit``).
FIRST_LOOK = 1.2  # the first look, as a share of the typical low
FLOOR = 2.0  # the shortest gap between two looks at a task (poll_min_interval, in schedule seconds)
FINE = 0.1  # the gap between looks, as a share of the task's age: a task is seen within 10% of its duration
MAX_GAP = 60.0  # the longest gap between two looks at a task
NO_RESULTS_GAP = 180.0  # KIE said success without a result link: look again after this
RESCAN = 60.0  # how often the journal is read for unfinished tasks nobody follows
ADOPT_PAGE = 500  # unfinished tasks read from the journal at a time (the journal's default page)
ADOPT_PAGES = 20  # pages a scan reads at most: 10,000 unfinished tasks
QUIET = 180.0  # ... adopted when nothing was recorded about them for this long
APART_READ = 1.0  # real seconds: a call waiting on a task another server follows reads it at least this often
CHANGES_OVERLAP = 5.0  # real seconds each read of the journal's changes reaches back (a write committed late)
TOLD_KEPT = 10_000  # what the clients were last told of each task, for this many tasks (the journal relay's memory)
GIVE_UP = 8  # refusals in a row after which a task is left alone
RETRY_DROPPED = 3600.0  # ... and looked at again after this (a key or KIE may have recovered)
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")  # MCP's, ascending
MAX_RATE_LIMIT_FACTOR = 8  # 429s in a row pause every look: rate_limit_backoff, doubled each time, up to 8x
LOOKS_AT_ONCE = 8  # looks at KIE running at the same time
ENDS_AT_ONCE = 8  # tasks being finished (settled, their results downloaded) at the same time, apart from the looks
SAVES_AT_ONCE = 2  # background tries at saving missed results: apart from the looks, so they never hold those up
RETENTION_SECONDS = 14 * 86400.0  # KIE deletes results after 14 days: older tasks are not followed
SAVE_AGAIN = (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)  # gaps between tries to save results a download missed
# ... then every RETRY_DROPPED, until KIE deletes them (RETENTION_SECONDS); said to the client when the tries stop:
GIVEN_UP = (
    "kie-mcp no longer tries to save them: KIE deletes a task's results 14 days after it was created, before its "
    "next try would come; check_task still tries while KIE has them"
)
DEFAULT_TYPICAL = {"image": (5, 60), "video": (60, 300)}  # a model the catalogue does not know
OTHER_TYPICAL = (30, 300)

_FOLLOWERS = itertools.count(1)  # the followers of this process (one per server), told apart in their claims
CLAIM, DROP, RELEASE = "claim", "drop", "release"  # claim writes put off while another program holds the journal
NO_LINKS_YET = "succeeded_without_results"  # KIE said success but sent no result link: looked at again, not waited for
TASK_STATES_UNFINISHED = ("queued", "running", NO_LINKS_YET)
TASK_LIST = "kie://tasks"  # the resource listing the workspace's tasks and its creates of unknown outcome

OnUpdate = Callable[[list[TaskRecord]], Awaitable[None]]
Finish = Callable[["Runtime", list[TaskRecord]], Awaitable[list[str]]]
Save = Callable[["Runtime", list[TaskRecord]], Awaitable[list[str]]]


def time_unit(settings: Settings) -> float:
    """Real seconds per schedule second: ``poll_min_interval`` against its default (2 s). Tests and benchmarks
    that shorten the poll interval run the whole schedule faster by the same factor."""
    default = next(f.default for f in dataclasses.fields(Settings) if f.name == "poll_min_interval")
    assert isinstance(default, float)
    return settings.poll_min_interval / default


def first_look(typical: tuple[float, float]) -> float:
    """The age (schedule seconds) of a task at its first look."""
    return FIRST_LOOK * typical[0]


def next_gap(age: float) -> float:
    """Schedule seconds from a look at a task of ``age`` to the next one: 10% of its age (2 s at least, a minute
    at most), so a task that ends between two looks is seen within max(2 s, 10%) of its duration."""
    return min(max(FINE * age, FLOOR), MAX_GAP)


async def settle_and_save(rt: Runtime, records: list[TaskRecord]) -> list[str]:
    """The default ``finish``: fold KIE's charge or refund into the spend, then save the results, each download within
    ``settings.download_deadline`` (it holds a finishing slot: ``ENDS_AT_ONCE``; more for a large file:
    ``downloads.Allowance``); one slower is left to the background's tries (``save_again``), which give it longer."""
    from kie_mcp import generation  # generation -> runtime -> tasks: resolved when first used, not at import
    from kie_mcp.media.downloads import Allowance

    # In a worker thread while another program holds the journal's lock; with no journal, the results are saved all
    # the same.
    problems = await generation.settle_off_loop(rt, records)
    problems += await generation.save_all(rt, records, within=Allowance(rt.settings.download_deadline))
    return problems


async def save_again(rt: Runtime, records: list[TaskRecord]) -> list[str]:
    """The default ``save``: fetch the results a finished task still lacks (``generation.save_all``), each download
    within a background try's allowance (``Allowance.in_background``: ``BACKGROUND_TIMES`` the finishing slot's, at a
    slower pace for a large file): a large result on a slow link is saved, not cut at the same point on every try,
    and a link that trickles on for days (or streams garbage up to the size limit) ends, its task left to the next
    try, so that it never holds the background's few slots (``SAVES_AT_ONCE``) and the task's save lock for good."""
    from kie_mcp import generation
    from kie_mcp.media.downloads import Allowance

    within = Allowance(rt.settings.download_deadline).in_background()
    return await generation.save_all(rt, records, within=within)


@dataclass(eq=False)
class Watch:
    """One followed task."""

    record: TaskRecord
    typical: tuple[float, float]
    next_at: float = 0.0  # time.monotonic() of the next look
    busy: bool = False  # a look (or the finishing after it) is running
    estimated: bool = True  # the record's progress is our estimate, not KIE's
    failures: int = 0  # looks in a row that learnt nothing
    refusals: int = 0  # looks in a row KIE refused (GIVE_UP of them: the task is left alone)
    waiters: int = 0
    problems: list[str] = field(default_factory=list)  # journal, spend and download problems, for the waiters
    unrecorded: bool = False  # a look's state not written: another program held the journal's lock (``_journal``)
    queued: int = 0  # ended, its results waiting for a finishing slot (``ENDS_AT_ONCE``): its turn, from 1; 0: not
    looked_at: float = 0.0  # time.monotonic() of the last look at KIE here (this follower's, or the call that found it)
    rate_limited: bool = False  # KIE answered that last look with 429: refused, for now (``Asking.rate_limited``)
    early_at: float = -math.inf  # time.monotonic() of the last early look a waiting check_task brought (``_ask_early``)
    resume_at: float = 0.0  # the scheduled look a look out of turn went ahead of: the schedule resumes there (0: none)
    done: anyio.Event = field(default_factory=anyio.Event)  # finished, settled and saved
    listeners: set[anyio.Event] = field(default_factory=set)  # set after every look

    def tell(self) -> None:
        for event in list(self.listeners):
            event.set()

    def note(self, problems: list[str]) -> None:
        self.problems += [line for line in problems if line not in self.problems]


@dataclass(eq=False)
class Unsaved:
    """A finished task whose results are not all saved yet: tried again on ``SAVE_AGAIN``'s schedule."""

    record: TaskRecord
    next_at: float
    tries: int = 0
    busy: bool = False
    told_slow: bool = False  # a try was stopped at its deadline (a file server too slow to finish), and that was said


@dataclass(frozen=True)
class Asking:
    """How kie-mcp knows a task's state, for the words of an answer about it (``Follower.asking``): the progress and
    time left are kie-mcp's estimate from the model's typical time unless KIE reported the progress itself, and a
    task KIE was never asked about has only that estimate."""

    asked: bool  # KIE was asked about the task (it may not have shown it yet: ``TaskRecord.answered`` says it did)
    reported: bool  # the record's progress is KIE's own figure
    next_in: float | None  # real seconds until the follower's next look at it (0: being made now); None: not followed
    # KIE answered the last look at it with 429 (a refusal of the status check, for now; the task is unaffected): said
    # so from the first 429, never "KIE did not show it yet", though one 429 alone is pacing and noted on no task
    rate_limited: bool = False


@dataclass
class Checked:
    """What ``check`` found."""

    record: TaskRecord
    problems: list[str]
    held: bool  # the follower has (or just had) the task: it saves the results, nobody else must
    saving: bool = False  # finished, and its results are being saved right now (or queued to be: ``queued``)
    queued: int | None = None  # saving: the downloads of this many other tasks are ahead of it (``queued_behind``)
    elsewhere: bool = False  # saving: by another server's follower, which holds the task (never this server)


class Follower:
    """Follows every unfinished task of this server process to the end (see the module doc)."""

    def __init__(self, finish: Finish | None = None, save: Save | None = None) -> None:
        self._finish = finish or settle_and_save
        self._save = save or save_again
        self._rt: Runtime | None = None
        self._unit = 1.0
        self._watches: dict[str, Watch] = {}
        self._unsaved: dict[str, Unsaved] = {}
        self._dropped: set[str] = set()
        self._retrying: set[str] = set()  # tasks left alone, taken up again for one more look
        # Finished tasks whose saving this follower is done with (saved, or what is left refused, or KIE deletes it
        # before the next try): the rescan does not take them up again, though the journal may still show them
        # unsaved (a link refused, a row the journal refused). A restart or a check_task tries them again.
        self._saves_done: set[str] = set()
        # Tasks this process saw end whose end the journal would not take (a full disk, a journal refusing writes), as
        # they ended: the journal still calls them unfinished, so without this every rescan took them up again, asking
        # KIE and downloading their results anew. Answered from here and never followed again; each end is written once
        # the journal takes it (the runtime's ``OwedWrites``), and then dropped from here, as it is when that write
        # fails for good (``_record_end``). The newest ``TOLD_KEPT``.
        self._ended: OrderedDict[str, TaskRecord] = OrderedDict()
        self._rescanning = False
        # Claims not written while another program held the journal's lock (task id: CLAIM, DROP or RELEASE, the
        # latest wanted), written by the loop once the lock is free, and before any later claim write (``_write_owed``)
        self._owed: dict[str, str] = {}
        # Tasks another server's follower holds that this server's clients asked about: what the journal said of
        # each (state, saved files), read again every poll_max_interval so they hear of a change all the same.
        self._observed: dict[str, tuple[str, int]] = {}
        # What this server's clients were last told of each task (state, saved files), so the journal relay tells
        # them of a change once, whichever server recorded it; and where the relay's last read of the journal ended.
        self._told: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._changes_since = 0.0
        self._changes_read: dict[str, float] = {}  # rows the last reads went through (task id: its ``updated``)
        self._started_at = 0.0
        self._relaying = False
        # ``check_task(wait_seconds=0)`` of tasks another server's follower holds: one look at KIE at a time per task
        # (``_look_apart``), a call meanwhile waiting for it
        self._apart: dict[str, anyio.Lock] = {}
        self._wake: anyio.Event | None = None
        self._bound: anyio.Event | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._end_limiter: anyio.CapacityLimiter | None = None
        self._save_limiter: anyio.CapacityLimiter | None = None
        self._paused_until = 0.0
        self._rate_limited = 0
        self._turns = itertools.count(1)  # the order tasks that ended wait for a finishing slot in (``Watch.queued``)
        self._publish: Callable[[str], Awaitable[None]] | None = None
        self.subscribers = Subscribers()  # handshake-era sessions' resources/subscribe: told of each update too
        # What handshake-era clients are told outside a request, sent apart from the follower's work (``outbox``)
        self.outboxes = Outboxes(self._client_hears)
        self._client: Connection | None = None  # a handshake-era client's connection: told when a task ends
        self._notices: deque[str] = deque(maxlen=50)
        self.owner = f"{this_process()}/{next(_FOLLOWERS)}"  # whose claims, in the journal's follows table
        self.client_level = "info"  # logging/setLevel: "a task ended" (info) is sent unless the client set higher

    # -- the loop --------------------------------------------------------------------------------------------

    async def run(self, rt: Runtime) -> None:
        """Follow tasks until cancelled (the runtime's background task group runs this)."""
        self._rt = rt
        self._unit = time_unit(rt.settings)
        self._started_at = self._changes_since = time.time()
        self._limiter = anyio.CapacityLimiter(LOOKS_AT_ONCE)
        self._end_limiter = anyio.CapacityLimiter(ENDS_AT_ONCE)
        self._save_limiter = anyio.CapacityLimiter(SAVES_AT_ONCE)
        self._bound_event().set()
        async with anyio.create_task_group() as group:
            group.start_soon(self.outboxes.run)  # what clients are told: never waited on by the work below
            if rt.unknown_at_start:  # creates a stopped server was sending became unknown as this one started
                await self.unknown_creates_changed()
            if rt.kie is None:  # no key: nothing can be followed, and no tool can create or check a task
                return  # (the senders run on until the server stops)
            try:
                await self._follow_all()
            finally:  # a stop (cancelled): another server on the workspace may take these tasks up at once
                self._release(None)

    async def _follow_all(self) -> None:
        self._adopt(quiet_for=None)  # every unfinished task an earlier process left
        await self._adopt_unsaved()  # and every finished one whose results it could not save
        rescan_at = time.monotonic() + RESCAN * self._unit
        retry_dropped_at = time.monotonic() + RETRY_DROPPED * self._unit
        relay_at = time.monotonic()
        async with anyio.create_task_group() as group:
            while True:
                self._wake = anyio.Event()
                now = time.monotonic()
                if self._owed and not self._journal_locked():  # claims put off while another program held it
                    self._write_owed()
                if now >= retry_dropped_at:
                    self._retrying |= self._dropped  # the rescan adopts them again (unless over KIE's 14 days) ...
                    self._dropped.clear()  # ... for one look each: a refusal leaves them alone again
                    retry_dropped_at = now + RETRY_DROPPED * self._unit
                if now >= relay_at:  # what other servers recorded, told to this one's clients
                    relay_at = now + self._rt.settings.poll_max_interval
                    if not self._relaying:  # the last one still announcing: the next turn
                        self._relaying = True
                        group.start_soon(self._relay)
                if now >= rescan_at and self._journal_locked():  # another program holds it: the next rescan
                    rescan_at = now + RESCAN * self._unit
                if now >= rescan_at:
                    self._renew()
                    await self._recover_interrupted()
                    self._adopt(quiet_for=QUIET * self._unit)
                    if not self._rescanning:  # a worker thread's read: the loop goes on meanwhile
                        self._rescanning = True
                        group.start_soon(self._rescan_unsaved)
                    rescan_at = now + RESCAN * self._unit
                for watch in list(self._watches.values()):  # a task that ended is finished even while 429s pause looks
                    due = watch.next_at <= now and (now >= self._paused_until or watch.record.finished)
                    if not watch.busy and due:
                        watch.busy = True
                        group.start_soon(self._look_in_turn, watch)
                for unsaved in list(self._unsaved.values()):  # downloads: not paused by KIE's 429s on status calls
                    if not unsaved.busy and unsaved.next_at <= now:
                        unsaved.busy = True
                        group.start_soon(self._save_in_turn, unsaved)
                idle = [w for w in self._watches.values() if not w.busy]
                looks = [w.next_at for w in idle if not w.record.finished]
                others = [w.next_at for w in idle if w.record.finished]
                others += [u.next_at for u in self._unsaved.values() if not u.busy]
                others.append(relay_at)
                wake_at = min(max(min([*looks, rescan_at]), self._paused_until), *others, rescan_at)
                with anyio.move_on_after(max(wake_at - time.monotonic(), 0.0)):
                    await self._wake.wait()

    def _journal_locked(self) -> bool:
        """Whether another writer holds the journal now. Every write would wait for it on the event loop, freezing the
        server (pings, calls, cancellations) up to ``journal.BUSY_SECONDS``: so the rescan skips a turn, claims are
        written once it is free (``_owed``), a look's state is left to the next write (``_journal``), and what must
        be written (a task's end, its charge, its files) waits for it in a worker thread (``off_loop_when_locked``)."""
        assert self._rt is not None
        try:
            return self._rt.journal.locked_now()
        except JOURNAL_ERRORS:
            return False

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _bound_event(self) -> anyio.Event:
        if self._bound is None:
            self._bound = anyio.Event()
        return self._bound

    async def _runtime(self) -> Runtime:
        await self._bound_event().wait()
        assert self._rt is not None
        return self._rt

    async def _recover_interrupted(self) -> None:
        """Creates another server on this workspace was sending when it died become unknown now, not at this
        server's next start: counted against the cap, and a retry of the same request is never auto-approved.
        Subscribers to ``kie://tasks`` hear of it (its unknown creates changed). Those the call log shows KIE refused
        are recorded so, and their refunds booked (``Ledger.book_owed_refunds``)."""
        assert self._rt is not None
        refused: list[str] = []
        try:  # in a worker thread: it may read the call log (megabytes) and wait for another writer's lock
            ended = await anyio.to_thread.run_sync(self._rt.journal.recover_interrupted, None, None, refused)
            if refused:
                await anyio.to_thread.run_sync(self._rt.ledger.book_owed_refunds)
        except JOURNAL_ERRORS as err:
            log.warning("could not check for creates an ended kie-mcp left unfinished: %s", err)
            return
        if ended:
            log.warning(
                "%d create(s) another kie-mcp on this workspace was sending when it stopped may have been created and "
                "charged on KIE: they are now unknown (counted against the daily cap; check https://kie.ai/logs)",
                ended,
            )
            await self.unknown_creates_changed()

    def _adopt(self, *, quiet_for: float | None) -> None:
        """Follow the journal's unfinished tasks (all of them, or those nobody recorded anything about lately, and
        those whose follower's process is gone). One another live server follows is observed instead: this
        server's clients hear of its changes all the same (``_relay``)."""
        assert self._rt is not None
        now = time.time()
        quiet_since = None if quiet_for is None else now - quiet_for
        elsewhere = self._followed_elsewhere_now()
        rows = self._unfinished_rows(since=now - RETENTION_SECONDS, quiet_since=quiet_since)
        if quiet_for is not None:  # a follower known gone (killed) left these: at once, not after QUIET
            rows = itertools.chain(rows, self._rows_of_gone_followers(since=now - RETENTION_SECONDS))
        for row in rows:
            task_id = row["task_id"]
            if task_id in self._watches or task_id in self._dropped or task_id in self._ended:
                continue
            # adopted by a rescan once that server stops following it (gone, or its claim quiet)
            held = task_id in elsewhere or (quiet_for is None and self._followed_elsewhere(row, now))
            try:
                record = TaskRecord.model_validate_json(row["record"])
                if record.state not in TASK_STATES_UNFINISHED:
                    continue
                if not held:
                    log.info("following task %s (%s) left unfinished in the journal", record.task_id, record.model)
                if held or self._add(record) is None:
                    self._observe(record)  # followed by another server: its changes reach this server's clients
            except ValidationError as err:
                log.warning("task %s: its journal record cannot be read (%s)", task_id, err)
            except Exception:  # one odd row must not stop the follower, which would stop the server
                log.exception("task %s: could not follow it", task_id)

    def _rows_of_gone_followers(self, *, since: float) -> list[sqlite3.Row]:
        """The journal rows of unfinished tasks (created after ``since``) whose follower's process is known to be gone
        (killed while following them): its claim would hold them back until ``QUIET``, for nothing."""
        assert self._rt is not None
        try:
            orphans = self._rt.journal.followed_by_gone(self.owner)
            rows = [self._rt.journal.task_row(task_id) for task_id in sorted(orphans)[:ADOPT_PAGE]]
        except JOURNAL_ERRORS as err:
            log.warning("could not read the tasks of stopped kie-mcp servers from the journal: %s", err)
            return []
        return [
            row
            for row in rows
            if row is not None and row["state"] in TASK_STATES_UNFINISHED and row["created"] >= since
        ]

    # -- claims: one follower per task, across the servers of a workspace ---------------------------------------

    def _claim(self, task_id: str, *, asked: bool = False) -> bool:
        """Whether this follower may follow (or save) ``task_id``: its claim in the journal, unless another live
        follower holds one (renewed within ``QUIET``). No journal to share claims through: yes (a second look
        costs less than a result nobody saves). While another program holds the journal's lock, a read (WAL: it
        never waits) tells whether another follower holds the task, and the claim is written once the lock is free."""
        assert self._rt is not None
        if self._journal_locked():
            if self._held_elsewhere(task_id, take_dropped=asked):
                return False
            self._owed[task_id] = CLAIM
            return True
        self._write_owed()
        try:
            claimed = self._rt.journal.claim_follow(
                task_id, self.owner, fresh_for=QUIET * self._unit, take_dropped=asked
            )  # asked (check_task, a read): a task another server left alone is this one's to ask about again
            return claimed is None
        except JOURNAL_ERRORS:
            return True

    def _held_elsewhere(self, task_id: str, *, take_dropped: bool = True) -> bool:
        assert self._rt is not None
        fresh_for = QUIET * self._unit
        try:
            holder = self._rt.journal.follower_of(task_id, self.owner, fresh_for=fresh_for, take_dropped=take_dropped)
            return holder is not None
        except JOURNAL_ERRORS:
            return False

    def _followed_elsewhere_now(self) -> set[str]:
        assert self._rt is not None
        try:
            return self._rt.journal.followed_elsewhere(self.owner, fresh_for=QUIET * self._unit)
        except JOURNAL_ERRORS:
            return set()

    def _renew(self) -> None:
        """Every ``RESCAN``: this follower's claims are fresh again (they go stale after ``QUIET`` unrenewed)."""
        assert self._rt is not None
        try:
            self._rt.journal.renew_follows(self.owner)
        except JOURNAL_ERRORS as err:
            log.debug("could not renew the claims on followed tasks: %s", err)

    def _drop_claim(self, task_id: str) -> None:
        assert self._rt is not None
        if self._journal_locked():
            self._owed[task_id] = DROP
            return
        self._write_owed()
        try:
            self._rt.journal.drop_follow(task_id, self.owner)
        except JOURNAL_ERRORS as err:
            log.debug("could not mark %s left alone: %s", task_id, err)

    def _release(self, task_id: str | None) -> None:
        """Give up the claim on ``task_id`` (None: on every task, as the follower stops). While another program holds
        the journal's lock, the claim goes once it is free; a stop then writes nothing: the claims of a process that
        has ended are taken over at once by another server of this machine (``processes.owner_gone``), after
        ``QUIET`` by one of another machine."""
        if self._rt is None:
            return
        if task_id is None:
            self._owed.clear()
        if self._journal_locked():
            if task_id is not None:
                self._owed[task_id] = RELEASE
            return
        self._write_owed()
        try:
            self._rt.journal.release_follows(self.owner, task_id)
        except JOURNAL_ERRORS as err:
            log.debug("could not release the claim on %s: %s", task_id or "followed tasks", err)

    def _write_owed(self) -> None:
        """Write the claims put off while another program held the journal's lock (``_owed``), the lock free now:
        each as last wanted. A claim another follower made meanwhile stands; this one then follows the task too (as
        with no journal to share claims through: a second look costs less than a result nobody saves)."""
        assert self._rt is not None
        owed, self._owed = self._owed, {}
        journal, owner, fresh_for = self._rt.journal, self.owner, QUIET * self._unit
        for task_id, wanted in owed.items():
            try:
                if wanted == RELEASE:
                    journal.release_follows(owner, task_id)
                    continue
                holder = journal.claim_follow(task_id, owner, fresh_for=fresh_for, take_dropped=True)
                if holder is not None:
                    log.debug("task %s: %s claimed it while the journal was locked", task_id, holder)
                elif wanted == DROP:  # left alone, and still held (see _forget)
                    journal.drop_follow(task_id, owner)
            except JOURNAL_ERRORS as err:
                log.debug("could not write the claim on %s: %s", task_id, err)

    def _followed_elsewhere(self, row: sqlite3.Row, now: float) -> bool:
        """Whether another server on this workspace, alive, created this task and recorded something about it lately:
        it follows and saves it, so this one does not poll KIE and download its results a second time."""
        assert self._rt is not None
        if not row["attempt_id"] or now - row["updated"] > QUIET * self._unit:
            return False
        try:
            owners = [attempt["owner"] for attempt in self._rt.journal.attempts_by_id([row["attempt_id"]])]
        except JOURNAL_ERRORS:
            return False
        return any(owner != this_process() and processes.owner_gone(owner) is False for owner in owners)

    def _unfinished_rows(self, *, since: float, quiet_since: float | None) -> Iterator[sqlite3.Row]:
        """The journal's unfinished tasks, page by page, oldest first: tasks already followed or given up on do not
        hide newer ones behind a page's limit (up to ``ADOPT_PAGES`` pages a scan)."""
        assert self._rt is not None
        after: tuple[float, str] | None = None
        for _ in range(ADOPT_PAGES):
            try:
                rows = self._rt.journal.unfinished_tasks(
                    since=since, quiet_since=quiet_since, after=after, limit=ADOPT_PAGE
                )
            except JOURNAL_ERRORS as err:
                log.warning("could not read unfinished tasks from the journal: %s", err)
                return
            yield from rows
            if len(rows) < ADOPT_PAGE:
                return
            after = (rows[-1]["created"], rows[-1]["task_id"])

    async def _adopt_unsaved(self) -> int:
        """Save again what the journal shows finished but not saved (a download failed, or a server stopped while
        saving, this one before a restart or another on the workspace): KIE keeps results 14 days, and nobody may ask
        for them before that. The query reads every finished task of those 14 days (about 50 ms at 50,000 tasks): in
        a worker thread, off the event loop. Up to 10,000 of them: results that can never be saved (refused links)
        must not hide ones that still can. Left alone: tasks this follower has already (followed, or saving), those
        it is done with (``_saves_done``), and those a live follower claimed (another server saving them now; a try
        of each claims it, so two never download one result at once). Returns how many it took up."""
        assert self._rt is not None
        if not self._rt.settings.download:
            return 0
        try:
            since, most = time.time() - RETENTION_SECONDS, ADOPT_PAGE * ADOPT_PAGES
            rows = await anyio.to_thread.run_sync(
                functools.partial(self._rt.journal.unsaved_tasks, since=since, limit=most)
            )
        except JOURNAL_ERRORS as err:
            log.warning("could not read unsaved results from the journal: %s", err)
            return 0
        elsewhere = self._followed_elsewhere_now() if rows else set()
        taken = 0
        for row in rows:
            task_id = row["task_id"]
            if task_id in self._watches or task_id in self._unsaved or task_id in self._saves_done:
                continue
            if task_id in elsewhere:
                continue
            try:
                record = TaskRecord.model_validate_json(row["record"])
            except ValidationError as err:
                log.warning("task %s: its journal record cannot be read (%s)", task_id, err)
                continue
            log.info("saving the results of task %s (%s), left unsaved in the journal", record.task_id, record.model)
            self.save_later(record, at=time.monotonic())
            taken += task_id in self._unsaved
        return taken

    async def _rescan_unsaved(self) -> None:
        """Every ``RESCAN``: results another server on the workspace left unsaved when it stopped (mid-download, or
        between two tries) are saved here (each save first removes what a dead server's download of them left:
        ``results.save_results``). Never raises."""
        assert self._rt is not None
        try:
            await self._adopt_unsaved()
        except Exception:  # a bug here must not stop the follower, which would stop the server
            log.exception("the rescan for unsaved results failed; trying again at the next")
        finally:
            self._rescanning = False

    def _unsaved_results(self, record: TaskRecord) -> bool:
        """Results still to save: a link with no file yet, or saved files whose sidecar a full disk refused."""
        assert self._rt is not None
        if not (self._rt.settings.download and record.state == "succeeded" and record.task_id is not None):
            return False
        if record.unsaved_links > 0:  # a link refused for pointing at a private network is never tried again
            return True
        from kie_mcp.media.results import sidecar_missing  # media -> tasks: resolved when first used

        return sidecar_missing(self._rt.settings.workspace, record)  # one stat

    def save_later(self, record: TaskRecord, *, at: float | None = None) -> None:
        """Try again later to save what ``record``'s results still lack (``SAVE_AGAIN``'s schedule); nothing when
        they are all saved, or downloads are off, or the task is still followed (its finishing saves it, and hands
        over what that misses)."""
        if self._rt is None or record.task_id is None or record.task_id in self._watches:
            return
        if not self._unsaved_results(record):
            if record.finished and record.task_id not in self._unsaved:
                self._saves_done.add(record.task_id)  # the rescan leaves it alone (see _adopt_unsaved)
            return
        if record.task_id not in self._unsaved:
            first = time.monotonic() + SAVE_AGAIN[0] * self._unit if at is None else at
            self._unsaved[record.task_id] = Unsaved(record, first)
            if at is None and self._claim(record.task_id):  # held till its first try, as between tries (_save_again)
                self._drop_claim(record.task_id)
            self._poke()

    async def _save_in_turn(self, unsaved: Unsaved) -> None:
        assert self._save_limiter is not None
        try:
            async with self._save_limiter:
                await self._save_again(unsaved)
        finally:
            unsaved.busy = False
            self._poke()

    async def _save_again(self, unsaved: Unsaved) -> None:
        """One more try at saving a finished task's results. Never raises (see ``_look``)."""
        from kie_mcp.media.downloads import STOPPED_IN_BACKGROUND  # media -> tasks: resolved when first used

        assert self._rt is not None
        record = unsaved.record
        assert record.task_id is not None
        if not self._claim(record.task_id):  # another server's follower is saving them: look again later
            unsaved.next_at = time.monotonic() + SAVE_AGAIN[0] * self._unit
            return
        # Between tries the claim is kept, marked left alone (renewed every RESCAN with the others): another
        # server's rescan leaves the task to this one instead of trying a failing link as often again, and a
        # check_task there takes it over at once. It goes when the saving is over.
        try:
            problems = await self._save(self._rt, [record])
        except Exception as err:
            log.exception("saving the results of task %s failed", record.task_id)
            problems = [f"{type(err).__name__}: {err}"]
        except BaseException:  # cancelled (the server stops): the claim goes, so another server takes it up at once
            self._done_saving(record.task_id)
            raise
        if not self._unsaved_results(record):
            self._done_saving(record.task_id)
            await self._announce(record)
            return
        unsaved.tries += 1
        quick = unsaved.tries < len(SAVE_AGAIN)
        gap = (SAVE_AGAIN[unsaved.tries] if quick else RETRY_DROPPED) * self._unit
        why = " ".join(problems) or "no reason given"
        if time.time() + gap - record.created_at > RETENTION_SECONDS:  # KIE deletes them before the next try
            self._done_saving(record.task_id)
            log.warning("task %s: its results could not be saved (%s); %s", record.task_id, why, GIVEN_UP)
            await self._announce(record, then=GIVEN_UP)
            return
        unsaved.next_at = time.monotonic() + gap
        if record.task_id not in self._watches:
            self._drop_claim(record.task_id)
        if unsaved.tries == len(SAVE_AGAIN):  # the quick tries are over: hourly from now on, and the client is told
            then = hourly(record)
            log.warning("task %s: its results could not be saved (%s); %s", record.task_id, why, then)
            await self._announce(record, then=then)
        elif not unsaved.told_slow and any(STOPPED_IN_BACKGROUND in line for line in problems):
            unsaved.told_slow = True  # once a task: a link that slow is usually as slow on the next tries
            then = too_slow_then(self._rt.settings.download_deadline)
            log.warning("task %s: its results could not be saved (%s); %s", record.task_id, why, then)
            await self._announce(record, then=then)

    def _done_saving(self, task_id: str) -> None:
        """Background saving of ``task_id`` is over (saved, given up on, or stopped): its claim goes."""
        self._unsaved.pop(task_id, None)
        self._saves_done.add(task_id)
        if task_id not in self._watches:
            self._release(task_id)

    # -- watches ---------------------------------------------------------------------------------------------

    def _typical(self, record: TaskRecord) -> tuple[float, float]:
        assert self._rt is not None
        found = self._rt.typical_seconds(record.model) if record.model != "unknown" else None
        return found or DEFAULT_TYPICAL.get(record.kind or "", OTHER_TYPICAL)

    def _age(self, record: TaskRecord) -> float:
        """The task's age in schedule seconds."""
        return max(time.time() - record.created_at, 0.0) / self._unit

    def _add(self, record: TaskRecord, *, looked: bool = False, asked: bool = False) -> Watch | None:
        """Follow ``record`` (or the copy already followed); None when there is nothing to follow."""
        if record.task_id is None:
            return None
        watch = self._watches.get(record.task_id)
        if watch is not None:
            return watch
        if record.finished or record.task_id in self._ended:  # ended (the journal may not know it yet): nothing to ask
            return None
        if not self._claim(record.task_id, asked=asked):  # another server's follower asks KIE and saves it
            return None
        self._dropped.discard(record.task_id)
        watch = Watch(record=record, typical=self._typical(record))
        if record.task_id in self._retrying:  # one refusal more and it is left alone again
            self._retrying.discard(record.task_id)
            watch.refusals = GIVE_UP - 1
        now = time.monotonic()
        first = first_look(watch.typical) - self._age(record)  # to the first scheduled look, from the task's age
        if looked:  # found at KIE by the call that asked: the schedule's next look after that one, never before the
            # first when KIE's time of the task tells its age; when it does not (``undated``: aged from now), the task
            # may be old and nearly done, and is looked at every 10% of the time since it was found
            watch.looked_at = now
            floor = first if not record.undated else -math.inf
            watch.next_at = now + max(self._gap(watch), floor) * self._unit
        else:
            watch.next_at = now + max(first, 0.0) * self._unit
        self._estimate(watch)
        self._watches[record.task_id] = watch
        self._poke()
        return watch

    def _gap(self, watch: Watch) -> float:
        if watch.record.state == "succeeded_without_results":
            return NO_RESULTS_GAP
        return next_gap(self._age(watch.record))

    def _estimate(self, watch: Watch) -> None:
        """Progress and time left from the model's typical time, between looks (no call to KIE)."""
        assert self._rt is not None
        record = watch.record
        if record.finished or record.state == "succeeded_without_results" or record.no_estimate:
            return
        typical = self._rt.typical_seconds(record.model) or watch.typical
        elapsed = time.time() - record.created_at
        record.eta_seconds = time_left(typical, elapsed)
        if watch.estimated:
            record.progress = round(min(elapsed / typical[1], 0.95), 3)

    # -- looking ---------------------------------------------------------------------------------------------

    async def _look_in_turn(self, watch: Watch) -> None:
        """A look at KIE (with the other looks: at most ``LOOKS_AT_ONCE``), then, when the task has ended, its
        finishing (with the other ends: a slow download never holds up the looks at other tasks)."""
        assert self._limiter is not None
        assert self._end_limiter is not None
        try:
            if not watch.record.finished:
                async with self._limiter:
                    await self._look(watch)
            if watch.record.finished and not watch.done.is_set():
                watch.tell()  # waiters learn it ended; a check_task need not wait for the download
                if watch.unrecorded:  # its end, once another program's lock allows (_end records it whatever)
                    await self._journal(watch, interim=True)
                await self._settle(watch)  # a refund or KIE's charge counts at once, whatever downloads wait for
                downloads = self._unsaved_results(watch.record)  # none for a failed task: no slot to wait for
                if downloads:  # its end is news now, not once slower downloads ahead of its own are done
                    watch.queued = next(self._turns)
                    await self._announce(watch.record, waiters=watch.waiters, then=self._saving_then(watch))
                try:
                    async with self._end_limiter if downloads else contextlib.nullcontext():
                        watch.queued = 0
                        try:
                            await self._end(watch)
                        except Exception:  # a bug here must not stop the follower, which would stop the server
                            log.exception("finishing task %s failed; trying again later", watch.record.task_id)
                            self._later(watch)
                finally:
                    watch.queued = 0
        finally:
            watch.busy = False
            watch.tell()
            self._poke()

    async def _look(self, watch: Watch) -> None:
        """One look at KIE. A task that ended is due for its finishing at once (``_look_in_turn``). Never raises: a
        bug here must not stop the follower, which would stop the server."""
        rt = self._rt
        assert rt is not None
        assert rt.kie is not None
        record = watch.record
        try:
            if not record.finished:
                state = record.state
                first = first_look(watch.typical) * self._unit  # the age at its first look: Runway's grace runs after
                outcome, reported = await refresh(rt.kie, rt.typical_seconds, record, rt.links_kept, first_look=first)
                watch.looked_at = time.monotonic()
                if outcome is Look.SEEN:
                    watch.estimated = not reported
                if (why := self._schedule(watch, outcome)) is not None:
                    await self._drop(watch, why)
                else:
                    await self._journal(watch, interim=True)
                if record.state != state and not record.finished:
                    await self._announce(record)
        except Exception:
            log.exception("following task %s failed; trying again later", record.task_id)
            self._later(watch)
            return
        if record.finished:
            watch.next_at = 0.0  # its finishing is due now

    async def _settle(self, watch: Watch) -> None:
        """Fold KIE's charge or refund into the spend now (``generation.settle``: once per task, ever, so the
        finishing's own settling after it is a no-op). Written in a worker thread while another program holds the
        journal's lock (``off_loop_when_locked``): the review found a failed task's refund given up on the event
        loop, counting against the daily cap until someone called check_task."""
        rt = self._rt
        assert rt is not None
        from kie_mcp import generation  # generation -> runtime -> tasks: resolved when first used, not at import

        try:
            watch.note(await rt.journal.off_loop_when_locked(lambda: generation.settle(rt, [watch.record])))
        except JOURNAL_ERRORS as err:
            watch.note([f"{watch.record.task_id}: its charge or refund could not be recorded ({err})."])

    def _note_paused(self, watch: Watch) -> None:
        self._note_paused_on(watch.record)

    def _note_paused_on(self, record: TaskRecord) -> None:
        """Say on an unfinished task that KIE refuses status checks for now (429s), and when kie-mcp asks again; a note
        of another kind (KIE does not know the task, it is no longer followed) is kept."""
        if not record.finished and (record.error is None or record.error.startswith((RATE_LIMITED, STATUS_FAILED))):
            record.note_rate_limited(max(self._paused_until - time.monotonic(), 0.0))

    def _later(self, watch: Watch) -> None:
        """A look or finishing that failed on a bug: tried again later, a little later each time."""
        watch.failures += 1
        watch.next_at = time.monotonic() + min(FLOOR * 2**watch.failures, MAX_GAP) * self._unit

    def _rate_limit_after(self, outcome: Look) -> None:
        """What a look's ``outcome`` (any look: this follower's, or a ``check_task`` of a task another server follows)
        says of KIE's status budget: a 429 pauses every look (``rate_limit_backoff``, doubling while they come, up to
        8x; from the second in a row every followed task says so), and an answer ends the pause's notes."""
        assert self._rt is not None
        if outcome is Look.RATE_LIMITED:
            self._rate_limited += 1
            factor = min(2 ** (self._rate_limited - 1), MAX_RATE_LIMIT_FACTOR)
            pause = self._rt.settings.rate_limit_backoff * factor
            log.warning("KIE answered 429 to a status call; looking again in %.1fs", pause)
            self._paused_until = max(self._paused_until, time.monotonic() + pause)
            if self._rate_limited >= 2:  # not one 429 (pacing), a storm: every task followed says why it waits
                for other in self._watches.values():
                    self._note_paused(other)
        elif outcome in (Look.SEEN, Look.NOT_VISIBLE):
            if self._rate_limited:  # KIE answers again: no task waits on its rate limit any more
                for other in self._watches.values():
                    if (other.record.error or "").startswith(RATE_LIMITED):
                        other.record.error = None
            self._rate_limited = 0

    def _schedule(self, watch: Watch, outcome: Look) -> str | None:
        """When to look at ``watch`` next, after a look's ``outcome``; returns why it is no longer followed (``_drop``),
        or None."""
        assert self._rt is not None
        now = time.monotonic()
        self._rate_limit_after(outcome)
        watch.rate_limited = outcome is Look.RATE_LIMITED  # this task's own check refused: its answer says why
        if outcome is Look.RATE_LIMITED:  # the account's poll budget is spent: every look waits
            watch.next_at = self._resumed(watch, self._paused_until)
            return None
        if outcome in (Look.SEEN, Look.NOT_VISIBLE):
            watch.failures = 0
        else:
            watch.failures += 1
        watch.refusals = watch.refusals + 1 if outcome is Look.REFUSED else 0
        gap = self._gap(watch)
        if watch.failures:
            gap = min(max(gap, FLOOR * 2**watch.failures), MAX_GAP)
        watch.next_at = self._resumed(watch, now + gap * self._unit)
        if outcome is Look.REFUSED and watch.refusals >= GIVE_UP:
            log.warning(
                "task %s: KIE refused %d looks in a row (%s); no longer following it (check_task still asks)",
                watch.record.task_id,
                watch.refusals,
                watch.record.error,
            )
            said = (watch.record.error or "").removeprefix(STATUS_REFUSED).removesuffix(STILL_ASKING).rstrip(".")
            return f"KIE refused {watch.refusals} status checks in a row (the last: {said})"
        if time.time() - watch.record.created_at > RETENTION_SECONDS:  # as a restart would: not for ever
            log.warning(
                "task %s: still unfinished %d days after it was created, longer than KIE keeps results; no longer "
                "following it (check_task still asks)",
                watch.record.task_id,
                RETENTION_SECONDS // 86400,
            )
            days = RETENTION_SECONDS // 86400
            return f"KIE still calls it unfinished {days:g} days after it was created"
        return None

    @staticmethod
    def _resumed(watch: Watch, next_at: float) -> float:
        """The next look after a look out of turn (``check_task``'s "look now": ``_look_now``; an early look for a
        wait: ``_ask_early``), given the one the schedule puts after it (``next_at``: a gap after it, a backoff, a 429's
        pause): the look it went ahead of, unless ``next_at`` is later still. Any other look: ``next_at``."""
        resume, watch.resume_at = watch.resume_at, 0.0
        return max(next_at, resume)

    async def _drop(self, watch: Watch, why: str) -> None:
        """Stop following a task, and say so on it (in the journal too): whoever looks at it learns why it no longer
        moves and what to do. A task left alone stays claimed (no other server takes it up to ask KIE again), and is
        looked at once more every hour (``RETRY_DROPPED``)."""
        watch.record.error = (
            f"{NOT_FOLLOWED}{why}. The task itself is unaffected; check_task asks KIE again (and follows it from "
            "then on), and https://kie.ai/logs shows the task as KIE has it."
        )
        watch.record.eta_seconds = None
        await self._journal(watch)
        self._forget(watch, dropped=True)

    async def _journal(self, watch: Watch, *, interim: bool = False) -> bool:
        """Every change reaches the journal; a journal that cannot take it is reported to the waiters. Never waited
        for on the event loop while another program holds the journal's lock: a look's state (``interim``) is then
        left to the next look, or the task's end, to write; anything else is written in a worker thread that waits for
        the lock (``off_loop_when_locked``: ``TaskBook.add`` is safe to run again after a "locked" failure)."""
        assert self._rt is not None
        if interim and self._journal_locked():
            watch.unrecorded = True
            return False
        try:
            await self._rt.journal.off_loop_when_locked(functools.partial(self._rt.tasks.add, watch.record))
            watch.unrecorded = False
            return True
        except JOURNAL_ERRORS as err:
            watch.note([answer_not_recorded(watch.record.task_id, err)])
            return False

    async def _end(self, watch: Watch) -> None:
        """The task has ended: settle, save, record, tell. Never raises (see ``_look``)."""
        assert self._rt is not None
        record = watch.record
        try:
            watch.note(await self._finish(self._rt, [record]))
        except JOURNAL_ERRORS as err:
            watch.note([f"{record.task_id}: finishing it stopped: the journal could not be read or written ({err})."])
        # how it ended is recorded whatever another writer's lock (waited for off the loop), or once the journal can
        if not await self._journal(watch):
            self._owe_end(record)
        self._forget(watch)
        self.save_later(record)  # a download failed (or was cut off): tried again in the background
        await self._announce(record, waiters=watch.waiters)

    def _owe_end(self, record: TaskRecord) -> None:
        """``record`` ended, and the journal would not take it: kept here (``_ended``), so that no rescan takes the
        task up again and check_task answers from it, and written once the journal takes it (with the rows of the
        files saved meanwhile), by the runtime's owed writes: every few seconds, and as the server stops."""
        assert self._rt is not None
        assert record.task_id is not None
        task_id = record.task_id
        if task_id in self._ended:
            return
        self._ended[task_id] = record
        while len(self._ended) > TOLD_KEPT:
            self._ended.popitem(last=False)
        self._rt.owed.owe(f"how task {task_id} ended", functools.partial(self._record_end, record))

    def _record_end(self, record: TaskRecord) -> None:
        """Write an end the journal would not take (``_owe_end``): its saved files' rows, then its record. Raises what
        the journal raises (``OwedWrites.retry`` tries again later). Written, or failed in a way no later try mends
        (an integrity error, a bug: ``OwedWrites.retry`` drops the write), the task leaves ``_ended``: the journal's
        record is what check_task answers and a rescan takes up from then on, as a restart would, never an end kept
        here for good that no one writes."""
        assert self._rt is not None
        assert record.task_id is not None
        again = False  # the journal cannot take it now (full, locked): owed still, tried again later
        try:
            for row in record.unrecorded_rows():
                self._rt.journal.add_file(*row)
            self._rt.tasks.add(record)
        except sqlite3.IntegrityError:  # never taken: OwedWrites drops it
            raise
        except JOURNAL_ERRORS:
            again = True
            raise
        finally:
            if not again:
                self._ended.pop(record.task_id, None)

    def _forget(self, watch: Watch, *, dropped: bool = False) -> None:
        task_id = watch.record.task_id
        assert task_id is not None
        if self._watches.get(task_id) is watch:
            del self._watches[task_id]
            if dropped:  # a task left alone stays claimed: no other server's rescan takes it up to ask KIE again
                self._drop_claim(task_id)
            else:
                self._release(task_id)
        if dropped:
            self._dropped.add(task_id)
        watch.done.set()
        watch.tell()

    # -- telling the client ----------------------------------------------------------------------------------

    def publish_to(self, bus: Any) -> None:
        """Publish every task's updates on the server's subscription bus (``subscriptions/listen``), from the
        start: a task an earlier process left, or one nobody asked about since, is announced too."""
        from mcp.shared.subscriptions import ResourceUpdated

        async def publish(uri: str) -> None:
            await bus.publish(ResourceUpdated(uri=uri))

        self._publish = publish

    def attach_client(self, ctx: Any, session: Any = None) -> None:
        """Remember how to reach the client outside a request: the server's subscription bus (when it was not
        given at start), and for a handshake-era client its session. ``ctx`` is the MCP request context of a tool
        or resource call; ``session`` its session, when the caller has read it already."""
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        if self._publish is None:
            self._publish = ctx.notify_resource_updated
        session = ctx.session if session is None else session
        modern = session.protocol_version in MODERN_PROTOCOL_VERSIONS
        self._client = None if modern else connection_of_session(session)

    async def _announce(self, record: TaskRecord, *, waiters: int = 0, then: str | None = None) -> None:
        """A task's state changed (or its results were saved on a later try, or their quick tries are over):
        publish the updates of its resource and of the task list; when it ended, say so in a log message too (queued
        for the next check_task when nobody waits on it). ``then``: what becomes of its results not saved yet."""
        self._remember_told(record)  # before any await: the journal relay never tells this twice
        await self._published(f"kie://tasks/{record.task_id}", TASK_LIST)
        if not record.finished:
            return
        downloads = self._rt is not None and self._rt.settings.download
        missing = record.unsaved_links if downloads else 0  # a link refused (it held a credential) is never fetched
        line = ended_line(record, missing=missing, retrying=record.task_id in self._unsaved, then=then)
        log.info("%s", line)
        if not self._client_hears("info"):
            return
        if self._client is not None:  # queued: sent by the connection's own sender, never waited on here
            self.outboxes.of(self._client).log("info", line, about=f"kie://tasks/{record.task_id}")
        elif waiters == 0:
            self._notices.append(line)

    def tell(self, line: str, *, waiters: int = 0) -> None:
        """Say ``line`` (something that ended in the background, a stitch_videos join) as a task's end is said
        (``_announce``): logged, and sent as a log message, to a handshake-era client on its channel, else queued for
        the next check_task when no call waits for it (``waiters``: the calls that get it in their answer)."""
        log.info("%s", line)
        if not self._client_hears("info"):
            return
        if self._client is not None:
            self.outboxes.of(self._client).log("info", line)
        elif waiters == 0:
            self._notices.append(line)

    async def unknown_creates_changed(self) -> None:
        """A create's outcome became unknown (KIE's answer never came or could not be read, or another server died
        while sending it): ``kie://tasks`` lists it among its unknown creates, so its subscribers hear it changed.
        No task record changed, so nothing else is published, and nothing is logged as a task's end."""
        await self._published(TASK_LIST)

    async def _published(self, *uris: str) -> None:
        """Publish the updates of ``uris`` on the subscription bus, when there is one (the SDK's fan-out never waits
        on a client), and queue them for the handshake-era sessions subscribed to them (``outbox``: a client that does
        not read never holds up the follower). Advisory: a client gone away must not stop the follower, nor a create
        being recorded."""
        try:
            for uri in uris:
                if self._publish is not None:  # and under each URI a listen stream wrote it otherwise, as written
                    for written in (uri, *self.subscribers.listened_as(uri)):
                        await self._publish(written)
                for connection, written_as in self.subscribers.subscribed(uri):
                    for written in written_as:  # as the session subscribed to it
                        self.outboxes.of(connection).updated(written)
        except Exception as err:
            log.debug("could not publish the update of %s: %s", ", ".join(uris), err)

    def _remember_told(self, record: TaskRecord) -> None:
        """This server's clients know ``record`` as it is now (announced, or the answer of their own call): the journal
        relay tells them of it again only when it changes."""
        if record.task_id is None:
            return
        self._told[record.task_id] = _told_of(record)
        self._told.move_to_end(record.task_id)
        while len(self._told) > TOLD_KEPT:
            self._told.popitem(last=False)

    def _client_hears(self, level: str) -> bool:
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.client_level)

    async def deliver_notices(self, ctx: Any) -> None:
        """Send the queued "task ended" lines as log messages on this request (2026-07-28 clients, which have no
        channel outside a request; sent only when the request opted in to log messages)."""
        while self._notices:
            line = self._notices.popleft()
            with warnings.catch_warnings():  # logging is deprecated in 2026-07-28 (SEP-2577), still served
                warnings.simplefilter("ignore")
                try:
                    await ctx.log("info", line, logger_name="kie-mcp")
                except Exception as err:
                    log.debug("could not send a queued notice: %s", err)

    # -- what tools call -------------------------------------------------------------------------------------

    def known(self, task_id: str) -> TaskRecord | None:
        """The record of a task being followed (fresher than the journal's), or of one that ended whose end the journal
        has not taken yet (``_ended``), or None."""
        watch = self._watches.get(task_id)
        return watch.record if watch is not None else self._ended.get(task_id)

    def saving(self, record: TaskRecord) -> bool:
        """Whether ``record`` has ended and this follower's finishing is saving its results right now: a generation
        that stopped waiting before the download ended says so (and no "no results")."""
        watch = self._watches.get(record.task_id) if record.task_id is not None else None
        return (
            watch is not None
            and watch.record.finished
            and not watch.done.is_set()
            and self._rt is not None
            and self._unsaved_results(watch.record)
        )

    def queued_behind(self, record: TaskRecord) -> int | None:
        """How many other tasks' downloads are ahead of ``record``'s results, which wait for a finishing slot
        (``ENDS_AT_ONCE`` tasks are saved at a time); None when they are not waiting (being saved now, or not at
        all). An answer never says "in a moment" of results that cannot start."""
        watch = self._watches.get(record.task_id) if record.task_id is not None else None
        return None if watch is None else self._ahead(watch)

    def _ahead(self, watch: Watch) -> int | None:
        if not watch.queued or self._end_limiter is None:
            return None
        waiting = sum(1 for other in self._watches.values() if 0 < other.queued < watch.queued)
        if self._end_limiter.available_tokens > waiting:  # a slot is free for it: it starts now
            return None
        return int(self._end_limiter.borrowed_tokens) + waiting

    def _saving_then(self, watch: Watch) -> str:
        """What becomes of the results of a task that just ended, for the line announcing its end."""
        return saving_words(self._ahead(watch), ending=True)

    async def follow(self, record: TaskRecord, *, looked: bool = False) -> TaskRecord:
        """Follow ``record`` from now on (``looked``: KIE was just asked about it). Returns the record as followed
        (the follower's own copy when it already followed the task). A task first seen already finished (made
        elsewhere and done before anyone here asked) has nothing left to follow: its unsaved results are saved in
        the background at once, so whoever found it (the ``kie://tasks/{id}`` resource, a follow-up's source) never
        saves them itself."""
        await self._runtime()
        watch = self._add(record, looked=looked, asked=True)
        if watch is None:
            if record.finished and not self._unsaved_results(record):
                self._remember_told(record)  # whoever found it shows it as it is
            self.save_later(record, at=time.monotonic())
            if record.task_id is not None and not record.finished and self._held_elsewhere(record.task_id):
                self._observe(record)  # followed by another server: its clients here still hear when it changes
            return record
        return watch.record

    def adopt(self, records: list[TaskRecord]) -> None:
        """Follow ``records`` from now on, waiting on nothing: the tasks of a generation cut off (cancelled, or failed)
        after its creates, which never reaches ``wait``. Without this they sat unfollowed until the rescan took them
        up (``QUIET`` plus up to a ``RESCAN``: about 4 minutes), their results unsaved meanwhile. Never awaits and
        never raises: it runs while the call unwinds. A follower not started yet takes them up when it starts (it
        follows every unfinished task of the journal)."""
        if self._rt is None:
            return
        for record in records:
            if record.task_id is None:
                continue
            try:
                if self._add(record) is None:  # finished already: what its results lack is saved in the background
                    self.save_later(record, at=time.monotonic())
            except Exception:  # one odd record must not stop the others, nor replace the call's own error
                log.exception("task %s: could not follow it", record.task_id)

    async def wait(
        self, records: list[TaskRecord], seconds: float, on_update: OnUpdate | None = None
    ) -> tuple[list[TaskRecord], list[str]]:
        """Follow ``records`` and wait until they have all ended (and are settled and saved) or ``seconds`` have
        passed, calling ``on_update`` at the start, after every look and at least every
        ``settings.poll_max_interval``. Never asks KIE itself. A task KIE says succeeded without a result link is not
        waited for (it is looked at again every 3 minutes: waiting out ``seconds`` would only read as "still
        generating"). Returns the records as followed and the problems met while finishing them."""
        await self._runtime()
        watches = [self._add(record) for record in records]
        return await self._wait_on(records, watches, seconds, on_update, links_owed=True)

    async def _wait_on(
        self,
        records: list[TaskRecord],
        watches: list[Watch | None],
        seconds: float,
        on_update: OnUpdate | None,
        *,
        links_owed: bool = False,
        saving_for: float | None = None,
    ) -> tuple[list[TaskRecord], list[str]]:
        """Wait on ``watches`` (the followed ``records``). A record another server's follower holds (it may have
        taken up a task while the server that made it was busy, or KIE answered with a task that server made) is
        read from the journal instead, never asked of KIE a second time: every ``apart_every`` (a second at most),
        off the event loop, and once more as the wait ends, so an end recorded there is answered, not the state the
        wait began with; followed here once that server is gone. One that ended with its results unsaved is waited
        on until that server has saved them; ``saving_for`` (``check_task``: its ``save_grace``, as for a task this
        follower saves) is how long from the start of the wait that may take at least. ``links_owed``: a task KIE
        said succeeded without a result link ends the wait too."""
        rt = await self._runtime()
        records, watches = list(records), list(watches)
        apart = {i for i, watch in enumerate(watches) if watch is None and self._held_apart(records[i])}
        elsewhere = set(apart)
        followed = [w for w in watches if w is not None]
        for watch in followed:
            watch.waiters += 1
        start = time.monotonic()
        deadline = start + seconds
        every = self.apart_every()
        read_at = start + every
        try:
            while True:
                now = time.monotonic()
                if apart and (now >= read_at or now >= deadline):  # ... and once more at the end, before answering
                    for taken in await self._read_apart(records, watches, apart):
                        taken.waiters += 1
                        followed.append(taken)
                    read_at = time.monotonic() + every
                if saving_for is not None and any(records[i].finished for i in apart):  # saved elsewhere: a while
                    deadline = max(deadline, start + saving_for)
                for watch in followed:
                    self._estimate(watch)
                if on_update is not None:
                    await on_update(_current(records, watches))
                pending = [
                    w for w in followed if not (w.done.is_set() or (links_owed and w.record.state == NO_LINKS_YET))
                ]
                left = deadline - time.monotonic()
                if not (pending or apart) or left <= 0:
                    break
                event = anyio.Event()
                for watch in pending:
                    watch.listeners.add(event)
                wake = min(left, rt.settings.poll_max_interval)  # progress is estimated again at least this often
                if apart:
                    wake = min(wake, max(read_at - time.monotonic(), 0.0))
                try:
                    with anyio.move_on_after(wake):
                        await event.wait()
                finally:
                    for watch in pending:
                        watch.listeners.discard(event)
        finally:
            for watch in followed:
                watch.waiters -= 1
        for i in elsewhere:
            if watches[i] is None:
                self._observe(records[i])  # its clients here still hear when it changes, and when its results are saved
        problems: list[str] = []
        for watch in followed:
            problems += [line for line in watch.problems if line not in problems]
        return _current(records, watches), problems

    def apart_every(self) -> float:
        """How often a call waiting on a task another server follows reads it from the journal (real seconds):
        ``settings.poll_min_interval``, a second at most. One indexed row in a worker thread: the other server's
        record of the task's end (or of its saved results) is answered within that, never a state read at the start
        of the wait."""
        assert self._rt is not None
        return min(self._rt.settings.poll_min_interval, APART_READ)

    def _held_apart(self, record: TaskRecord) -> bool:
        """Whether another server's follower holds ``record``'s task, unfinished or ended with its results unsaved
        (that server is saving them)."""
        if record.task_id is None or (record.finished and not self._unsaved_results(record)):
            return False
        return self._held_elsewhere(record.task_id)

    async def _read_apart(self, records: list[TaskRecord], watches: list[Watch | None], apart: set[int]) -> list[Watch]:
        """Read again from the journal, in a worker thread, the records held elsewhere (in place): each one's holder
        first, then its record, so that a holder gone after it recorded the saved results is read with them. One
        that ended with its results saved, or that no server holds any more, leaves ``apart``; one still unfinished
        whose holder is gone is followed here (returned: the waiter waits on it from now on)."""
        assert self._rt is not None
        tasks = self._rt.tasks
        known = {i: records[i] for i in sorted(apart)}

        def read() -> dict[int, tuple[bool, TaskRecord, bool] | None]:
            found: dict[int, tuple[bool, TaskRecord, bool] | None] = {}
            for i, record in known.items():
                assert record.task_id is not None
                try:
                    held = self._held_elsewhere(record.task_id)
                    current = tasks.get(record.task_id) or record
                    found[i] = (held, current, current.finished and self._unsaved_results(current))
                except JOURNAL_ERRORS:  # no journal to read: what this call knew is its answer
                    found[i] = None
            return found

        taken: list[Watch] = []
        for i, seen in (await anyio.to_thread.run_sync(read)).items():
            if seen is None:
                apart.discard(i)
                continue
            held, records[i], unsaved = seen
            if records[i].finished:
                if not (held and unsaved):  # saved, or nobody saves them now: the caller's to answer (and save)
                    apart.discard(i)
            elif not held and (watch := self._add(records[i], asked=True)) is not None:
                apart.discard(i)
                watches[i] = watch
                taken.append(watch)
        return taken

    async def check(
        self, record: TaskRecord, seconds: float, on_update: OnUpdate | None = None, *, looked: bool = False
    ) -> Checked:
        """``check_task``: wait up to ``seconds`` on the task; with 0, look once now (after any look in flight; also
        when KIE last said success without a result link, which the follower's schedule looks at every 3 minutes)."""
        await self._runtime()
        watch = self._add(record, looked=looked, asked=True)
        if watch is None:  # another server's follower asks KIE and saves it: this waits on what the journal says
            if record.task_id is None or not self._held_elsewhere(record.task_id):
                return Checked(record, [], held=False)
            problems: list[str] = []
            if seconds <= 0 and not looked:  # the person asks: KIE is asked once here too (that server saves it)
                record, problems = await self._look_apart(record)
            # Its end, read from the journal, waits a while for that server to save the results, as one of this
            # follower's own does (``save_grace``)
            grace = self.save_grace(seconds)
            [current], _ = await self._wait_on([record], [None], seconds, on_update, saving_for=grace)
            saving = current.finished and self._unsaved_results(current)
            if saving and current.task_id is not None and not self._held_elsewhere(current.task_id):
                return Checked(current, problems, held=False)  # let go unsaved (stopped, between tries): saved here
            self._observe(current)
            self._remember_told(current)
            return Checked(current, problems, held=True, saving=saving, elsewhere=saving)
        if seconds <= 0 and not looked:  # also a success KIE sent without its links: the person asks, KIE is asked
            await self._look_now(watch)
        elif not looked:  # a wait that would otherwise end before KIE is asked: one look early in it (module doc)
            self._ask_early(watch, seconds)
        if watch.record.finished and not watch.done.is_set() and self._ahead(watch) is None:  # its results: saving
            seconds = self.save_grace(seconds)  # a while for them; a slow download goes on meanwhile
        # This very watch, even if this call's own look ended the task or left it alone (a task no longer followed is
        # not followed again by waiting on it). A task that ended in that look is finished and forgotten before
        # waiting starts: its problems (a result that could not be saved) are on this watch only.
        [current], problems = await self._wait_on([watch.record], [watch], seconds, on_update)
        if time.monotonic() < self._paused_until and (current.error or "").startswith(RATE_LIMITED):
            self._note_paused(watch)  # when kie-mcp asks again, from now
        problems = [*watch.problems, *(line for line in problems if line not in watch.problems)]
        saving = current.finished and not watch.done.is_set() and self._unsaved_results(current)
        return Checked(current, problems, held=True, saving=saving, queued=self._ahead(watch) if saving else None)

    async def _look_apart(self, record: TaskRecord) -> tuple[TaskRecord, list[str]]:
        """``check_task(wait_seconds=0)`` of a task another server's follower holds: one look at KIE now, as that
        server's own would make, through the same pacing as every status call (10 a second per key, shared by the
        servers of this machine) and paused as every look while KIE answers 429. On a copy: that server still follows
        the task and saves its results. What the look found is recorded (``_record_apart``), so that server looks
        again at its next read of the journal's changes (``_ended_elsewhere``) and settles and saves an end. One such
        look at a task at a time here: a call meanwhile waits for it, then answers from what it recorded, or asks once
        more. Returns the record as KIE answered (or as it was, when nothing was asked) and the problems met recording
        it."""
        assert self._rt is not None
        rt = self._rt
        task_id = record.task_id
        assert task_id is not None
        lock = self._apart.setdefault(task_id, anyio.Lock())
        try:
            async with lock:
                with contextlib.suppress(*JOURNAL_ERRORS):  # what a look just before recorded (this one's, or that
                    record = rt.tasks.get(task_id) or record  # server's): a task found ended is not asked about
                seen = record.model_copy(deep=True)
                if seen.finished:
                    return seen, []
                if time.monotonic() < self._paused_until:  # KIE answered 429: the record answers, as for every look
                    if self._rate_limited >= 2:
                        self._note_paused_on(seen)
                    return seen, []
                first = first_look(self._typical(seen)) * self._unit  # Runway's grace runs after it, as there
                outcome, _ = await refresh(rt.kie, rt.typical_seconds, seen, rt.links_kept, first_look=first)
                self._rate_limit_after(outcome)
                if outcome is Look.RATE_LIMITED and self._rate_limited >= 2:
                    self._note_paused_on(seen)
                if outcome is not Look.SEEN or seen.state == record.state:
                    return seen, []
                return seen, await self._record_apart(seen)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._apart.pop(task_id, None)

    async def _record_apart(self, record: TaskRecord) -> list[str]:
        """Record what a look of ``_look_apart`` found, unless the task's follower recorded its end first (the journal
        keeps that, with its saved files: ``TaskBook.add_unless_ended``); an end's charge or refund is settled now (once
        per task, whichever server comes first), so it counts even if that server stops before its next look. Never
        raises: the answer is what KIE said all the same."""
        assert self._rt is not None
        rt = self._rt
        from kie_mcp import generation  # generation -> runtime -> tasks: resolved when first used, not at import

        problems: list[str] = []
        try:
            if record.finished:
                problems += await rt.journal.off_loop_when_locked(functools.partial(generation.settle, rt, [record]))
            await rt.journal.off_loop_when_locked(functools.partial(rt.tasks.add_unless_ended, record))
        except JOURNAL_ERRORS as err:
            problems.append(answer_not_recorded(record.task_id, err))
        return problems

    async def save_now(self, record: TaskRecord, seconds: float) -> tuple[list[str], bool]:
        """``check_task`` of a task that had ended before it, which no follower holds: save what its results lack,
        for ``save_grace(seconds)`` at most (what is left then is the background's: ``save_later``). The task is
        claimed in the journal meanwhile, as a background try claims it: another server's try waits, so two servers
        never download one result at once. Returns the problems met, and whether the results are still being saved
        (here, cut short by the grace, or by the follower that claimed the task first)."""
        rt = await self._runtime()
        task_id = record.task_id or ""
        claimed = bool(task_id) and self._unsaved_results(record)
        # asked: a claim another server holds between two of its tries (left alone) is taken over; one it holds
        # while it downloads is not
        if claimed and not self._claim(task_id, asked=True):  # another server's follower is saving them right now
            return [], True
        problems: list[str] = []
        try:
            with anyio.move_on_after(self.save_grace(seconds)) as grace:
                problems = await self._save(rt, [record])
            self._remember_told(record)  # the check_task's answer says so
            return problems, grace.cancelled_caught
        finally:  # no await: runs even when the call is cancelled mid-download
            if claimed and task_id not in self._watches:
                unsaved = self._unsaved.get(task_id)
                if unsaved is None:
                    self._release(task_id)
                elif not unsaved.busy:  # left to the background: held, as between its tries (a try holds its own)
                    self._drop_claim(task_id)

    def _observe(self, record: TaskRecord) -> None:
        """Relay what the journal says of a task another server follows (``_relay_observed``) until it has ended
        and its results are saved."""
        if record.task_id is None or record.task_id in self._watches:
            return
        if not record.finished or self._unsaved_results(record):
            self._observed.setdefault(record.task_id, (record.state, len(record.files)))
            self._poke()

    async def _relay(self) -> None:
        """Every ``poll_max_interval``: what other servers on the workspace recorded reaches this server's clients
        (``_read_changes``, ``_relay_observed``). Never raises: a bug here must not stop the follower."""
        try:
            await self._read_changes()
            await self._relay_observed()
        except Exception:
            log.exception("relaying the journal's task changes failed; trying again at the next")
        finally:
            self._relaying = False

    async def _read_changes(self) -> None:
        """Read the tasks recorded since the last read (an index search on ``updated``): an unfinished one this
        follower does not follow is observed (another server created it, or follows it), and one another server
        created since this one started and that ended before it was observed here is announced now. A task this
        follower has, or whose state its clients were already told, is left alone."""
        assert self._rt is not None
        read_at = time.time()
        try:
            rows = self._rt.journal.tasks_changed_since(self._changes_since, limit=ADOPT_PAGE)
        except JOURNAL_ERRORS as err:
            log.debug("could not read the journal's task changes: %s", err)
            return
        # The next read reaches back CHANGES_OVERLAP (a write committed a moment after the time it records); after a
        # full page, it goes on from this page's last change instead.
        self._changes_since = rows[-1]["updated"] if len(rows) == ADOPT_PAGE else read_at - CHANGES_OVERLAP
        read, self._changes_read = self._changes_read, {}
        for row in rows:
            task_id = row["task_id"]
            self._changes_read[task_id] = row["updated"]
            if read.get(task_id) == row["updated"]:  # read already (the overlap): unchanged since
                continue
            if (watch := self._watches.get(task_id)) is not None:
                self._ended_elsewhere(watch, row["state"])
                continue
            if task_id in self._unsaved or task_id in self._observed:
                continue
            if task_id in self._dropped or row["state"] not in (*TASK_STATES_UNFINISHED, "succeeded", "failed"):
                continue
            try:
                record = record_from_row(row)
            except (ValueError, TypeError):  # a row this kie-mcp cannot read: check_task says so when asked
                continue
            if not record.finished:
                self._observe(record)
            elif row["created"] >= self._started_at and self._told.get(task_id) != _told_of(record):
                if self._unsaved_results(record):
                    self._observe(record)  # told once its results are saved (``_relay_observed``)
                else:
                    await self._announce(record)

    def _ended_elsewhere(self, watch: Watch, state: str) -> None:
        """The journal says a task this follower follows has ended (``state``), and it has not seen that: another
        server's ``check_task`` asked KIE (``_look_apart``). Looked at now (paced, and paused by 429s, as every look),
        not at the schedule's next look a minute away maybe: this follower settles and saves it."""
        if state in ("succeeded", "failed") and not watch.record.finished and not watch.busy:
            watch.next_at = min(watch.next_at, time.monotonic())
            self._poke()

    async def _relay_observed(self) -> None:
        """Announce (subscribers, log message) each observed task whose state or saved files changed in the
        journal; stop observing one that ended with its results saved, or that this follower now follows."""
        assert self._rt is not None
        for task_id, seen in list(self._observed.items()):
            try:
                record = self._rt.tasks.get(task_id)
            except JOURNAL_ERRORS:
                continue
            if record is None or task_id in self._watches or task_id in self._unsaved:  # this server has it now
                self._observed.pop(task_id, None)
                continue
            now = (record.state, len(record.files))
            saving = record.finished and self._unsaved_results(record)  # told once, when its results are saved
            if now != seen and not saving:
                self._observed[task_id] = now
                await self._announce(record)
            if record.finished and not saving:
                self._observed.pop(task_id, None)

    def save_grace(self, seconds: float) -> float:
        """How long a ``check_task`` asked to wait ``seconds`` waits for results being saved: ``settings.save_grace``
        at least (real seconds: downloads take real time), then it answers that they are being saved."""
        return max(seconds, self._rt.settings.save_grace if self._rt is not None else 0.0)

    def _ask_early(self, watch: Watch, seconds: float) -> None:
        """A ``check_task`` waits ``seconds`` on ``watch``: bring its next look forward to early in the wait when KIE's
        word on the task is older than the schedule means it to be and the wait would end before the next scheduled
        look (the rule: "An early look for a wait", in the module doc). The follower's loop makes the look; every
        waiter sees it. Never asks KIE itself."""
        assert self._rt is not None
        now = time.monotonic()
        if watch.record.finished or watch.busy or watch.failures or now < self._paused_until:
            return  # ended, a look in flight (every waiter sees it), or a 429 pause or a backoff that holds
        if not self._stale(watch, now):
            return
        at = now + max(FLOOR - self._age(watch.record), 0.0) * self._unit  # not before KIE may show the task
        end = now + seconds
        if watch.next_at <= end or at >= end:  # the wait sees the scheduled look, or ends before an early one
            return
        if at - watch.early_at < self._rt.settings.poll_min_interval:  # one early look per poll_min_interval
            return
        watch.early_at = at
        watch.resume_at = max(watch.resume_at, watch.next_at)
        watch.next_at = at
        self._poke()

    def _stale(self, watch: Watch, now: float) -> bool:
        """Whether KIE's word on ``watch``'s task is older than the schedule means it to be: KIE has not answered about
        it yet (never asked, or it did not show the task yet), or it said the task succeeded without a result link and
        the last look is further back than the schedule's own gap for its age (such a task is looked at every 3
        minutes). Any other answer stands until the schedule's next look: before the first, KIE seldom ends a task;
        after it, the looks come every 10% of the task's age."""
        record = watch.record
        if not record.answered:
            return True
        if record.state != NO_LINKS_YET or not watch.looked_at:
            return False
        return (now - watch.looked_at) / self._unit > next_gap(self._age(record))

    def asking(self, record: TaskRecord) -> Asking:
        """How kie-mcp knows ``record``'s state, for an answer to word it truthfully: whether KIE was asked, whether
        the progress is KIE's figure, and when the next look here is due (``Asking``)."""
        watch = self._watches.get(record.task_id) if record.task_id is not None else None
        if watch is None or watch.record is not record:  # not followed here: the record's own word
            return Asking(asked=record.answered, reported=False, next_in=None)
        if watch.record.finished:
            next_in = None
        elif watch.busy:
            next_in = 0.0
        else:
            next_in = max(max(watch.next_at, self._paused_until) - time.monotonic(), 0.0)
        asked = record.answered or watch.looked_at > 0
        reported = record.answered and not watch.estimated
        return Asking(asked=asked, reported=reported, next_in=next_in, rate_limited=watch.rate_limited)

    async def _look_now(self, watch: Watch) -> None:
        """One look at KIE now, after the look in flight: out of turn, so the schedule's next look stays where it was
        (``_resumed``). A task that ended needs none: its finishing (which may be a long download) is the follower's,
        started by its loop, and never waited for here. None either while KIE's 429s pause every look: the record
        answers, saying so (``_note_paused``) from the second 429 in a row (one is pacing, not a storm: the record
        answers as it is)."""
        while watch.busy and not watch.record.finished:  # one look at a time: the one in flight, then ask again
            event = anyio.Event()
            watch.listeners.add(event)
            try:
                await event.wait()
            finally:
                watch.listeners.discard(event)
        if watch.done.is_set() or watch.record.finished:
            self._poke()
            return
        if time.monotonic() < self._paused_until:  # KIE answered 429: answered from the record, never asked again now
            if self._rate_limited >= 2:  # a storm, not one 429 (pacing): said on the task, as on every other
                self._note_paused(watch)
            return
        watch.busy = True
        watch.resume_at = max(watch.resume_at, watch.next_at)  # out of turn: the schedule resumes there (_resumed)
        try:
            await self._look(watch)
        finally:
            watch.busy = False
            watch.tell()
            self._poke()


def _told_of(record: TaskRecord) -> tuple[str, int]:
    """What a client is told of a task, as the journal relay compares it: its state and saved files."""
    return record.state, len(record.files)


def saving_words(ahead: int | None, *, ending: bool = False) -> str:
    """What is being done with a finished task's results: saved now, or (``ahead``: the downloads of that many other
    tasks before them) queued. ``ending``: for the line announcing its end, else for an answer."""
    if ahead is None:
        return "kie-mcp is saving them now" if ending else "its results are being saved now"
    queue = (
        f"the downloads of {ahead} other task{'s' if ahead != 1 else ''} are ahead of them (kie-mcp saves "
        f"{ENDS_AT_ONCE} tasks' results at a time, and leaves a download that takes too long to a later try)"
    )
    return f"kie-mcp saves them after {queue}" if ending else f"its results are queued to be saved: {queue}"


def too_slow_then(download_deadline: float) -> str:
    """What the client is told when a background try at saving a task's results was stopped at its deadline: its
    file server sent them too slowly to finish (``downloads.Allowance.in_background``)."""
    from kie_mcp.media.downloads import Allowance, allowance_words  # media -> tasks: resolved when first used

    within = allowance_words(Allowance(download_deadline).in_background())
    return (
        f"a try at saving them in the background was stopped: the file server sends them too slowly to finish within "
        f"what such a try gets ({within}), and nothing of it was kept; KIE's link is kept, kie-mcp tries again later, "
        "and check_task tries at once (and says why it cannot)"
    )


def hourly(record: TaskRecord) -> str:
    """What the client is told when the quick tries at saving ``record``'s results are over."""
    until = timestamp(record.created_at + RETENTION_SECONDS)
    minutes = round(sum(SAVE_AGAIN) / 60)
    return (
        f"kie-mcp could not save them in about {minutes} minutes of tries; check_task saves them now (or says why it "
        f"cannot), and kie-mcp tries again every hour until KIE deletes them ({until})"
    )


def _current(records: list[TaskRecord], watches: list[Watch | None]) -> list[TaskRecord]:
    return [watch.record if watch is not None else record for record, watch in zip(records, watches, strict=True)]


def ended_line(record: TaskRecord, *, missing: int = 0, retrying: bool = False, then: str | None = None) -> str:
    """One line saying how a task ended, for the log and the client. ``missing``: how many of its results are not
    saved (downloads on), said with their links, never left to read as a result saved; ``retrying``: the follower
    tries again in the background; ``then``: what becomes of them, said instead (``hourly``, ``GIVEN_UP``)."""
    head = f"Task {record.task_id} ({record.model}) {record.state}"
    if record.state == "succeeded":
        refusals = record.refused_words()  # links never offered as the result: said why instead
        refused = "; ".join(refusals)
        missing = min(missing, max(len(record.result_urls) - len(record.files) - len(refusals), 0))
        if missing > 0:
            saved = f"saved {', '.join(record.files)}; " if record.files else ""
            if then is None:
                then = "kie-mcp tries again in the background" if retrying else "check_task says why and tries again"
            links = f" ({', '.join(offered)})" if (offered := record.openable_links()) else ""
            refused = f"; {refused}" if refused else ""
            return f"{head}: {saved}{missing} of its results not saved yet{links}{refused}; {then}"
        where = ", ".join(record.files) if record.files else ", ".join(record.openable_links())
        return f"{head}: {'; '.join(part for part in (where, refused) if part)}"
    return f"{head}: {record.error}" if record.error else head
