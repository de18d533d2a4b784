"""Client-side pacing so KIE's documented limits are never the thing that says no.

KIE allows 20 creates per 10 seconds per account and counts a create when it ARRIVES, which we never see: we
only know that it arrived after we sent it and before its answer came back. So a create holds a place in the
window (a *slot*) from before it is sent until its answer, and the window is measured from the answer plus a
safety margin, never from the moment the slot was granted. See ``SlidingWindow`` for the invariant this buys.

KIE's limits are per key, so the windows of a ``KieClient`` that talks to KIE (not the sandbox's simulator in
process) are shared by every kie-mcp process on this machine using the same key and API address: two clients side
by side (Claude Desktop and Cursor, each starting its own server) together stay within 10 status calls a second and
20 creates in 10 s. What they share is one small file per key (``SharedBudget``); where it cannot be used (Windows,
no cache folder, a file that cannot be read or written) each process paces itself alone, as before, and KIE's 429s
pace what they send together (a refused create is not counted, every new slot waits for the window's edge,
``Slot.rate_limited``, and the create is sent again).

Nothing the shared file holds can raise into a request: it is written by other processes (or anyone who can write
where it lies), so whatever is found there, or goes wrong reading, changing or writing it, makes this process pace
alone with one log line; taking a slot and settling one (after KIE answered, with a task id to hand back) never
fail for it.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import itertools
import json
import logging
import math
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

log = logging.getLogger(__name__)


class Slot:
    """One place in a ``SlidingWindow``, held from before a request is sent until its fate is known.

    Exactly one of ``answered``, ``not_counted`` or ``rate_limited`` settles it; later calls do nothing. A slot
    that is never settled explicitly (``SlidingWindow.occupied`` leaves it with an exception or a cancellation)
    is settled as ``answered``: when in doubt, the request counts.
    """

    __slots__ = ("_open", "_ticket", "_window")

    def __init__(self, window: SlidingWindow, ticket: str | None = None) -> None:
        self._window = window
        self._ticket = ticket  # its entry in the key's shared file, when the window is shared
        self._open = True

    def answered(self) -> None:
        """The answer is here (or the connection failed after sending): the upstream counted it at the latest now.
        The slot stays in the window until ``now + margin + window``."""
        if self._open:
            self._open = False
            self._window._settle(counted=True, ticket=self._ticket)

    def not_counted(self) -> None:
        """The upstream never counted it (refused with 429, or never sent): the slot is free at once."""
        if self._open:
            self._open = False
            self._window._settle(counted=False, ticket=self._ticket)

    def rate_limited(self, fallback: float) -> float:
        """Refused with 429: free the slot (a refused request is not counted) and hold every new slot back until
        the window's edge, the moment its oldest answered slot leaves it; ``fallback`` seconds when it holds none
        (the upstream counted traffic this window cannot see, e.g. another process on the same account).
        Returns the pause in seconds."""
        if not self._open:
            return 0.0
        self.not_counted()
        return self._window._pause_until_edge(fallback)


class SlidingWindow:
    """At most ``limit`` requests in any ``window`` seconds as the upstream counts them, on arrival.

    Two ways to take a place:

    - ``occupied()`` / ``hold()`` (creates, status reads): the slot is occupied from the moment it is granted
      (before the request is sent) until the answer, and then for ``margin + window`` more seconds. A request
      the upstream did not count (a 429 refusal, a request never sent) frees its slot at once.
    - ``acquire()`` (spaced lookups with their own slack): the slot is stamped when it is granted and occupied
      for ``window`` seconds from then. Arrival jitter can squeeze two such requests closer than ``window``.

    **The invariant** (for ``hold``): for any request ``i`` the upstream counted, with ``g`` the time its slot
    was granted, ``a`` the time the upstream counted it (its arrival) and ``r`` the time its answer was read,
    causality gives ``g <= a <= r``. A slot is granted at ``g_k`` only while fewer than ``limit`` slots are
    occupied, i.e. fewer than ``limit`` earlier requests are still in flight or have ``r + margin + window >
    g_k``. Take any ``limit + 1`` counted requests and let ``k`` be the one granted last: one of the others,
    ``j``, had already left when ``k`` was granted, so ``a_k - a_j >= g_k - r_j >= window + margin``. Hence
    **any limit + 1 counted requests span at least window + margin seconds of arrival time**: the upstream never
    sees more than ``limit`` in any ``window`` seconds, however slow or uneven the answers, and with ``margin``
    to spare. Freeing refused and never-sent requests keeps it: the upstream did not count them. The margin
    covers what causality does not: upstream timestamps of coarse resolution, several upstream servers whose
    clocks differ a little, our own timers. Default: a tenth of the window (1 s on KIE's 10 s create window,
    0.1 s on the 1 s status window).

    The price of the invariant is each request's answer time plus the margin per reuse of a slot: 100 creates
    at 20 per 10 s take 4 x (10 + 1 + answer time) seconds plus the last answer, about 45 s.

    Waiters are served in order. ``clock`` and ``sleep`` can be replaced (tests, a simulator's virtual clock).

    ``shared`` (a ``SharedBudget``, on ``time.monotonic`` only) makes the window one of the key's, shared with every
    process on this machine using the key, under ``name``: a slot is granted only while fewer than ``limit`` are
    occupied there by all of them together, and the invariant above holds for their requests together. This
    process's own slots are counted here too, so the window goes on alone, where it is, once the file fails.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        margin: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        shared: SharedBudget | None = None,
        name: str = "",
    ) -> None:
        if shared is not None and clock is not time.monotonic:
            raise ValueError("a shared window runs on time.monotonic, the clock every process of the machine reads")
        self.limit = limit
        self.window = window
        self.margin = window / 10 if margin is None else margin
        self._clock = clock
        self._sleep = sleep
        self._leaves: list[float] = []  # sorted: when each settled, counted slot leaves the window
        self._in_flight = 0  # slots held by requests whose answer has not come
        self._paused_until = -math.inf
        self._changed = anyio.Event()  # set (and replaced) whenever a slot is settled
        self._lock = anyio.Lock()
        self._shared = shared
        self.name = name

    # -- taking a place ------------------------------------------------------------------------

    async def acquire(self) -> float:
        """Wait for a slot stamped now, occupied for ``window`` seconds; return how long we waited."""
        async with self._lock:
            waited, _ = await self._wait_for_room(stamped=True)
            bisect.insort(self._leaves, self._clock() + self.window)
            return waited

    async def hold(self) -> Slot:
        """Wait for a slot and hold it until it is settled (see ``Slot``); send the request after this returns."""
        async with self._lock:
            _, ticket = await self._wait_for_room(stamped=False)
            self._in_flight += 1
            return Slot(self, ticket)

    async def hold_unless(self, given_up: anyio.Event) -> Slot | None:
        """``hold``, unless ``given_up`` is set first (the request no longer wanted: its call cut off, the process
        stopping): then None, and no slot is taken. A request still waiting has not been sent: giving it up costs
        nothing upstream."""
        slot: Slot | None = None
        try:
            async with anyio.create_task_group() as group:

                async def take() -> None:
                    nonlocal slot
                    slot = await self.hold()
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    await given_up.wait()
                    group.cancel_scope.cancel()

                if not given_up.is_set():
                    group.start_soon(take)
                    group.start_soon(watch)
        except BaseException:
            if slot is not None:  # granted as the wait was cancelled: never sent
                slot.not_counted()
            raise
        if slot is not None and given_up.is_set():  # both at once: given up, as nothing was sent yet
            slot.not_counted()
            return None
        return slot

    @asynccontextmanager
    async def occupied(self) -> AsyncIterator[Slot]:
        """``async with window.occupied() as slot:`` send inside; leaving settles the slot as answered unless it
        was settled otherwise."""
        slot = await self.hold()
        try:
            yield slot
        finally:
            slot.answered()

    # -- inspection ----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Slots held by requests still waiting for their answer."""
        return self._in_flight

    def occupancy(self) -> int:
        """Slots occupied now: in flight, or answered and not yet out of the window."""
        self._purge(self._clock())
        return self._in_flight + len(self._leaves)

    def edge(self) -> float | None:
        """When the oldest answered slot leaves the window (on ``clock``), or None when none is in it."""
        self._purge(self._clock())
        return self._leaves[0] if self._leaves else None

    # -- internals -----------------------------------------------------------------------------

    def _purge(self, now: float) -> None:
        drop = bisect.bisect_right(self._leaves, now)
        if drop:
            del self._leaves[:drop]

    async def _wait_for_room(self, *, stamped: bool) -> tuple[float, str | None]:
        """With the lock held: wait until a slot may be granted now (here, and in the key's shared file when there
        is one: ``stamped`` for ``acquire``'s slot, occupied for ``window`` from now); return how long it took and
        the slot's ticket in the shared file (None when the window is this process's alone)."""
        started = self._clock()
        waiting = Waiting()  # this wait's own: a wait given up while the lock was busy leaves nothing behind
        while True:
            now = self._clock()
            self._purge(now)
            if now < self._paused_until:
                await self._sleep(self._paused_until - now)
                continue
            if self._in_flight + len(self._leaves) < self.limit:
                if self._shared is None:
                    return self._clock() - started, None
                stays = self.window if stamped else None
                lifetime = self.margin + self.window
                taken = self._shared.take(self.name, self.limit, lifetime=lifetime, stays=stays, waiting=waiting)
                if not isinstance(taken, float):  # a ticket, or None: pacing alone from now on
                    return self._clock() - started, taken
                await self._sleep_or_change(taken)  # full with other processes' slots, or their lock busy
                continue
            # Full. An answer never makes room (its slot stays counted for a window from now); only a slot
            # leaving (known time) or a slot freed by a refusal (any time) does.
            delay = self._leaves[0] - now if self._leaves else None
            if self._in_flight == 0:
                assert delay is not None  # full with nothing in flight: something must leave
                await self._sleep(delay)
            else:
                await self._sleep_or_change(delay)

    async def _sleep_or_change(self, delay: float | None) -> None:
        """Wait ``delay`` seconds (forever if None), or until a slot is settled, whichever comes first."""
        changed = self._changed
        if delay is None:
            await changed.wait()
            return
        async with anyio.create_task_group() as group:

            async def timer() -> None:
                await self._sleep(delay)
                group.cancel_scope.cancel()

            async def watch() -> None:
                await changed.wait()
                group.cancel_scope.cancel()

            group.start_soon(timer)
            group.start_soon(watch)

    def _settle(self, *, counted: bool, ticket: str | None) -> None:
        """Never raises: it runs after the answer came back, where an error would take the answer's place (a create
        KIE made and charged would lose its task id)."""
        try:
            self._in_flight -= 1
            leave = self._clock() + self.margin + self.window if counted else None
            if leave is not None:
                bisect.insort(self._leaves, leave)
            if ticket is not None and self._shared is not None:
                try:
                    self._shared.settle(self.name, ticket, leave)
                except Exception as err:  # not expected (``SharedBudget`` keeps its own), and never the request's
                    log.debug("settling a slot of %s failed", self.name, exc_info=True)
                    self._shared.pace_alone(f"settling a slot failed ({type(err).__name__})")
        finally:
            self._changed.set()
            self._changed = anyio.Event()

    def _pause_until_edge(self, fallback: float) -> float:
        now = self._clock()
        self._purge(now)
        until = self._leaves[0] if self._leaves else now + fallback
        self._paused_until = max(self._paused_until, until)
        return max(self._paused_until - now, 0.0)


# -- one key's windows, shared by the processes of this machine ----------------------------------------------------

FORMAT = 1  # in the file and in its name: a kie-mcp writing another format uses another file
SECRET_BYTES = 32
MAX_STATE_BYTES = 64 * 1024  # a state is a few hundred bytes: anything far longer is not kie-mcp's
MAX_ENTRIES = 1000
LOCK_PATIENCE = 1.0  # seconds the file's lock may stay busy (it is held for a read and a write) before pacing alone
LOCK_RETRY = 0.002  # seconds between tries while another process holds the lock
STALE_AFTER = 60.0  # a damaged file nobody wrote for this long has no slot still in a window: it is started over
LONGEST_HOLD = 3600.0  # the most ``held_at_most`` may be: a deadline further ahead is another clock's
_BUSY = object()
_OPEN_TO_OTHERS = stat.S_IWGRP | stat.S_IWOTH  # a folder or file others may write: not this user's alone


@dataclass
class Waiting:
    """One wait for a slot (``SlidingWindow._wait_for_room``): when it first found the key's file locked by another
    process, None while it has not. Kept per wait, so a wait given up meanwhile leaves nothing to later ones."""

    busy_since: float | None = None


@dataclass
class _Stamps:
    """One window's entries in the file: when each answered slot leaves it, and each held slot's deadline."""

    left: list[float] = field(default_factory=list)
    held: dict[str, float] = field(default_factory=dict)  # by ticket: ``<process>/<n>`` (``processes.this_process``)

    def count(self) -> int:
        return len(self.left) + len(self.held)

    def purge(self, now: float, lifetime: float) -> None:
        """Drop what has left, and what lies further ahead than it ever could: a stamp of another boot or another
        machine's clock (a cache folder shared over the network) means nothing here."""
        self.left = [t for t in self.left if now < t <= now + lifetime]
        self.held = {k: d for k, d in self.held.items() if now < d <= now + LONGEST_HOLD + lifetime}


class SharedBudget:
    """KIE's windows of one key, shared through one small file by every kie-mcp process of this machine using it.

    The file is ``<cache folder>/pacing/<name>.json`` (``toolcache.cache_folder``: ``KIE_CACHE_DIR`` when usable, else
    the user's cache folder), its name an HMAC of the key and the API address under a random secret made once beside it
    (``secret``, readable by the user alone): neither the name nor the file tells anything of the key. The file holds,
    per window, only when each answered slot leaves it and a deadline for each slot still held, and is created
    readable and writable by the user alone. The folder, the secret and the file are used only while they are this
    user's (and the folder and the file writable by no one else): where others may write (a ``KIE_CACHE_DIR`` open
    to them), another user could put a folder or a file of theirs in place and hold back this user's requests.

    Taking a slot (``take``) or settling one (``settle``) opens the file, locks it (``flock``, exclusive) without
    waiting, reads it, changes it, writes it whole and unlocks: the lock is held for a read and a write, and never
    waited for (the event loop is never blocked; a busy lock is tried again after a short async sleep). A settle
    that meets the lock busy is written with this process's next change, and counts as held until then (never
    less than it is).

    The clock is ``time.monotonic``: CLOCK_MONOTONIC on Linux, mach_absolute_time on macOS, each counting from the
    machine's boot, one clock for every process of the machine (and its containers, short of a time namespace),
    never moved when the wall clock is set by hand or by NTP, which would let one process's slots leave early or
    late for another. Across a reboot or between machines it means nothing: a stamp further ahead than it could be is
    dropped, and one still plausible at most delays a slot for its window.

    A process that crashed leaves stamps that simply leave their window; a slot it held (sent, maybe counted, never
    answered) leaves a window from the moment its process is found gone (``processes.owner_gone``), or at its
    deadline (``held_at_most`` plus the window) when that cannot be told (another container's). Nothing here is ever
    an error to the user: on Windows (no ``flock``), with no cache folder, or once the file cannot be opened, read
    or written (a read-only or full disk, a folder in its place, a lock held for over a second, content kie-mcp did
    not write, a folder or file another user owns or may write), this process paces alone, as each did before, and
    says why in one log line.
    """

    def __init__(self, api_key: str, base_url: str, *, held_at_most: float) -> None:
        material = f"kie-mcp pacing\0{FORMAT}\0{base_url.rstrip('/')}\0{api_key}".encode()
        self._digest = hashlib.sha256(material).digest()  # what the file's name is keyed from: the key is not kept
        self.held_at_most = min(max(held_at_most, 0.0), LONGEST_HOLD)
        self.alone = False
        self._path: Path | None = None
        self._owner = ""
        self._tickets = itertools.count()
        self._owed: list[tuple[str, str, float | None]] = []  # settles the lock was busy for: window, ticket, leave

    @property
    def path(self) -> Path | None:
        """The key's file (its folder and secret made ready on first use), or None once this process paces alone."""
        if self._path is None and not self.alone:
            self._path = self._locate()
        return None if self.alone else self._path

    def take(
        self, name: str, limit: int, *, lifetime: float, stays: float | None, waiting: Waiting
    ) -> str | float | None:
        """A slot in window ``name``, where at most ``limit`` may be occupied by every process together; ``lifetime``:
        how long a slot stays in the window once answered (margin and window); ``waiting``: the wait asking, which
        paces alone once the lock has stayed busy for ``LOCK_PATIENCE`` of it. Granted: its ticket, the slot held
        until ``settle`` (for ``held_at_most`` at most), or occupied for ``stays`` seconds from now when given. Not
        granted: the seconds to wait before asking again. None: this process paces alone (from now on)."""
        taken = self._transact(lambda windows, now: self._grant(windows, name, limit, now, lifetime, stays))
        if taken is _BUSY:
            now = time.monotonic()
            if waiting.busy_since is None:
                waiting.busy_since = now
            elif now - waiting.busy_since > LOCK_PATIENCE:
                self._alone(f"{self._path} stayed locked by another process for over {LOCK_PATIENCE:g} s")
                return None
            return LOCK_RETRY
        waiting.busy_since = None
        assert taken is None or isinstance(taken, (str, float))
        return taken

    def settle(self, name: str, ticket: str, leave_at: float | None) -> None:
        """The slot ``ticket`` of window ``name`` was answered (it leaves at ``leave_at``) or was not counted (None:
        free at once)."""
        if not self.alone:
            self._owed.append((name, ticket, leave_at))
            self._transact(lambda windows, now: None)

    def pace_alone(self, why: str) -> None:
        """From now on this process paces alone (``why``, in the one log line)."""
        self._alone(why)

    # -- internals -----------------------------------------------------------------------------

    def _grant(
        self, windows: dict[str, _Stamps], name: str, limit: int, now: float, lifetime: float, stays: float | None
    ) -> str | float:
        stamps = windows.setdefault(name, _Stamps())
        stamps.purge(now, lifetime)
        if stamps.count() >= limit:
            self._reap(stamps, now + lifetime)
        if stamps.count() < limit:
            ticket = f"{self._owner}/{next(self._tickets)}"
            if stays is None:
                stamps.held[ticket] = now + self.held_at_most + lifetime
            else:
                stamps.left.append(now + stays)
            return ticket
        wait = min(stamps.left) - now if stamps.left else math.inf
        if stamps.held:  # another process may settle one at any moment: look again soon
            wait = min(wait, max(lifetime / 50, 0.01), 0.2)
        return max(wait, 0.001)

    @staticmethod
    def _reap(stamps: _Stamps, leave: float) -> None:
        """Slots held by a process of this machine that is gone: it may have sent them, and they may have been
        counted up to the moment it died, so they leave the window at ``leave`` (now plus margin and window)."""
        from kie_mcp.processes import owner_gone

        for ticket in [ticket for ticket in stamps.held if owner_gone(ticket) is True]:
            del stamps.held[ticket]
            stamps.left.append(leave)

    def _transact(self, change: Callable[[dict[str, _Stamps], float], object]) -> object:
        """Lock the file without waiting, apply the settles owed and ``change`` (given the windows and the time read
        with the lock held), write it back, unlock: what ``change`` returned, ``_BUSY`` when another process holds
        the lock, None once this process paces alone. The time is read under the lock so that no stamp written
        before is later than it: a stamp further ahead than a window is another clock's (``_Stamps.purge``).
        Nothing found in the file raises: whatever goes wrong with it makes this process pace alone."""
        located = self._path is None  # located now: the file may be made (its folder and secret are ready)
        path = self.path
        if path is None:
            return None
        import fcntl  # POSIX only; ``_locate`` has checked it is there

        try:
            # Made only where it was just located: a file gone since (its folder deleted, made again by another
            # process with a new secret, so a new name) is located again, and every process meets in the new one.
            fd = _open_state(path, create=located)
        except FileNotFoundError:  # the cache folder was deleted meanwhile: made again, or found made again
            self._path = self._locate()
            if self._path is None:
                return None
            path = self._path
            try:
                fd = _open_state(path, create=True)
            except OSError as err:
                self._alone(f"{path} cannot be opened ({_why(err)})")
                return None
        except OSError as err:
            self._alone(f"{path} cannot be opened ({_why(err)})")
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return _BUSY
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode):
                self._alone(f"{path} is not a file")
                return None
            if found.st_uid != os.getuid() or found.st_mode & _OPEN_TO_OTHERS:
                self._alone(f"{path} {_not_ours(found)}")
                return None
            raw = os.pread(fd, MAX_STATE_BYTES + 1, 0)
            now = time.monotonic()
            windows = _parse(raw)
            if windows is None:
                if time.time() - found.st_mtime < STALE_AFTER:
                    self._alone(f"{path} holds what kie-mcp did not write")
                    return None
                windows = {}  # damaged long ago (the machine stopped mid-write): nothing in it is still in a window
            for name, ticket, leave in self._owed:
                stamps = windows.setdefault(name, _Stamps())
                stamps.held.pop(ticket, None)
                if leave is not None:
                    stamps.left.append(leave)
            result = change(windows, now)
            data = _dump(windows, now)
            if data != raw:
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
            self._owed.clear()
            return result
        except OSError as err:  # a full disk, an I/O error
            self._alone(f"{path} cannot be read or written ({_why(err)})")
            return None
        except Exception as err:  # what the file holds broke something else: never the request's error
            log.debug("reading %s failed", path, exc_info=True)
            self._alone(f"{path} holds what kie-mcp cannot read ({type(err).__name__})")
            return None
        finally:
            os.close(fd)  # and with it the lock

    def _locate(self) -> Path | None:
        try:
            import fcntl  # noqa: F401
        except ImportError:
            self._alone("this system has no flock (Windows)", quietly=True)
            return None
        from kie_mcp.processes import this_process
        from kie_mcp.toolcache import cache_folder

        base = cache_folder()
        if base is None:
            self._alone("there is no cache folder (no home folder, and no usable KIE_CACHE_DIR)")
            return None
        folder = base / "pacing"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # an existing folder's owner and mode are kept
            found = os.lstat(folder)
            if not stat.S_ISDIR(found.st_mode):  # a link to a folder, which mkdir took for the folder
                raise ValueError("it is a link" if stat.S_ISLNK(found.st_mode) else "it is not a folder")
            if found.st_uid != os.getuid() or found.st_mode & _OPEN_TO_OTHERS:
                raise ValueError(_not_ours(found))
            secret = _secret(folder)
        except (OSError, ValueError) as err:
            self._alone(f"{folder} cannot be used ({_why(err)})")
            return None
        self._owner = this_process()
        return folder / f"{hmac.new(secret, self._digest, hashlib.sha256).hexdigest()[:32]}.json"

    def _alone(self, why: str, *, quietly: bool = False) -> None:
        if not self.alone:
            self.alone = True
            (log.info if quietly else log.warning)(
                "KIE's request limits are paced by this process alone, not shared with other kie-mcp processes "
                "using the same key: %s",
                why,
            )


def _open_state(path: Path, *, create: bool) -> int:
    """The state file, made readable and writable by the user alone if it is not there; never through a link."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    return os.open(path, flags, 0o600)


def _secret(folder: Path) -> bytes:
    """The random secret the files' names are keyed with: made once per cache folder, readable by the user alone
    (two processes making it at once: the first one linked in place is everyone's)."""
    path = folder / "secret"
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    fresh = folder / f"secret.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(SECRET_BYTES))
    finally:
        os.close(fd)
    try:
        os.link(fresh, path)  # never over one another process linked meanwhile: that one is used
    except FileExistsError:
        pass
    finally:
        fresh.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise ValueError(f"{path.name} is not a file")
        if found.st_uid != os.getuid():
            raise ValueError(f"{path.name} {_not_ours(found)}")
        secret = os.read(fd, SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"{path.name} is damaged (deleting it lets kie-mcp make a new one)")
    return secret


def _parse(raw: bytes) -> dict[str, _Stamps] | None:
    """The windows in a state file's first line, or None when it is not what kie-mcp writes (an empty file: none).
    Whatever follows the line is ignored: a write cut short by a crash left the end of a longer earlier state."""
    if not raw:
        return {}
    line, newline, _ = raw.partition(b"\n")
    if not newline or len(raw) > MAX_STATE_BYTES:
        return None
    try:
        state = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(state, dict) or state.get("v") != FORMAT or not isinstance(state.get("windows"), dict):
        return None
    windows: dict[str, _Stamps] = {}
    for name, entries in state["windows"].items():
        left = entries.get("left") if isinstance(entries, dict) else None
        held = entries.get("held") if isinstance(entries, dict) else None
        if not isinstance(left, list) or not isinstance(held, dict) or len(left) + len(held) > MAX_ENTRIES:
            return None
        if not all(map(_finite, left)) or not all(map(_finite, held.values())):
            return None
        windows[name] = _Stamps(left=[float(t) for t in left], held={k: float(d) for k, d in held.items()})
    return windows


def _dump(windows: dict[str, _Stamps], now: float) -> bytes:
    """One line of JSON, what is still in a window only."""
    kept = {}
    for name, stamps in windows.items():
        left = sorted(t for t in stamps.left if t > now)
        held = {ticket: deadline for ticket, deadline in stamps.held.items() if deadline > now}
        if left or held:
            kept[name] = {"left": left, "held": held}
    return (json.dumps({"v": FORMAT, "windows": kept}, separators=(",", ":")) + "\n").encode()


def _finite(value: object) -> bool:
    """A stamp: any JSON number that is a finite float (an integer too large for one is not), never raising."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits
        return False


def _not_ours(found: os.stat_result) -> str:
    """Why a folder or file of the cache folder is not this user's alone (``found``: its status)."""
    if found.st_uid != os.getuid():
        return f"belongs to another user (uid {found.st_uid})"
    return f"can be written by other users (mode {stat.S_IMODE(found.st_mode):o})"


def _why(err: Exception) -> str:
    return (err.strerror if isinstance(err, OSError) else None) or str(err)
