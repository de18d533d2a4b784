"""Spending calls whose creates may be on their way to KIE right now, in this process.

A host that gives up on a call (it cancels it, or times out) and sends the same request again at once must get
what the first call made, never a second create. The journal tells a retry which of a request's attempts were cut
off (``retried_call``), but only once the cut-off call has recorded KIE's answer to its creates: a create is sent
and recorded as one shielded unit, and that can take seconds (an HTTP round trip, a pacing slot, a 429's wait).
A retry that arrived in those seconds found the first call's attempt "still running in a live process", which is
how two identical calls at once look, and sent a second create. Here a call is known to be cut off the moment the
host cuts it, and a retry of it waits for its creates to land before the gate decides.

An auto-approved call is known here from the very moment the gate approves it (``claim``), not only once it starts
spending: a host that timed it out while its balance was being read and sent it again had the retry auto-approved
too, and paid twice, unasked. The other servers on the workspace know of it from then too, by the hold the gate writes
in the journal beside the claim (``QuoteBook.hold``, kept in ``Claim.hold``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

# How long a retry waits for a cut-off call's creates to land before answering without spending. A create's HTTP
# round trip is seconds; a pacing slot or a 429's wait adds up to about 10 s.
LANDING_WAIT = 20.0
# How long the loser of two calls at once with one approval waits for the winner's create, on its way to KIE, to be
# answered (``generation.landed_here``): KIE answers a create within a second or two; past this, the answer says a
# create is still being sent.
REPLAY_LANDING_WAIT = 3.0


@dataclass(eq=False)
class _Call:
    digest: str
    cut_off: bool = False
    creating: bool = False  # its input files are up and its credits reserved: its creates go out now
    landed: anyio.Event = field(default_factory=anyio.Event)
    started: float = field(default_factory=time.time)  # when it used its approval (epoch seconds, as the journal's)
    # A claim (``SpendingCalls.claim``) not yet taken over by its call's spend: the task the gate approved it in. Its
    # call never reaching its spend (cut off in between, or failing) is seen by that task's end.
    owner: int | None = None
    # For a claim: its hold in the journal, which tells the other servers on the workspace (``QuoteBook.hold``).
    hold: str | None = None


# An auto approval's hold on its request, from the gate's decision until its call's spend ends (``claim``).
Claim = _Call


class SpendingCalls:
    """The spending calls of one server, by request digest: which were cut off while sending, and when they end."""

    def __init__(self) -> None:
        self._calls: dict[str, list[_Call]] = {}

    def claim(self, digest: str) -> Claim:
        """Hold this request for a call the gate auto-approved just now, before anything is awaited: from then on the
        same request sent again sees it under way (``since``, ``sending``) and is asked, never auto-approved too. The
        call's ``spending`` takes the claim over; ``release`` gives it up when that call ends without spending, and a
        claim whose task ended first (the call cut off before its spend) is no longer held."""
        call = _Call(digest, owner=anyio.get_current_task().id)
        self._calls.setdefault(digest, []).append(call)
        return call

    def release(self, claim: Claim) -> None:
        """Give up ``claim`` (its call ended, spent or not). Idempotent."""
        claim.landed.set()
        self._forget(claim, (claim.digest,))

    @asynccontextmanager
    async def spending(self, digest: str, *also: str, claimed: Claim | None = None) -> AsyncIterator[None]:
        """Run a call's sends and waits in this block. A cancellation of the call (by its host) marks it cut off at
        once, while shielded creates still run; leaving the block (after the call recorded what its creates made)
        lets a retry of it go on. ``also``: further keys ``sending`` knows the call by (a follow-up made once per
        clip, whatever else its request says). ``claimed``: the call's own claim (``claim``), taken over: the call
        is known from when the gate approved it."""
        call = _Call(digest) if claimed is None else claimed
        call.owner = None  # held by this block from now on, whichever task runs it
        keys = (digest, *also)
        for key in keys:
            calls = self._calls.setdefault(key, [])
            if call not in calls:
                calls.append(call)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_mark_when_cut_off, call)
                try:
                    yield
                finally:
                    call.landed.set()  # the body ended (answered, failed or cut off): the watcher stands down
                    group.cancel_scope.cancel()
        except BaseExceptionGroup as raised:  # the body's own error, as it raised it (the watcher only ends cancelled)
            error = raised.exceptions[0] if len(raised.exceptions) == 1 else raised
            raise error from error.__cause__
        finally:
            call.landed.set()
            self._forget(call, keys)

    def _forget(self, call: _Call, keys: tuple[str, ...]) -> None:
        for key in keys:
            calls = self._calls.get(key, [])
            if call in calls:
                calls.remove(call)
            if not calls:
                self._calls.pop(key, None)

    def _live(self, key: str) -> list[_Call]:
        """The calls of ``key`` under way: not landed, and for a claim, its task still running."""
        calls = [call for call in self._calls.get(key, ()) if not call.landed.is_set()]
        if any(call.owner is not None for call in calls):
            running = {task.id for task in anyio.get_running_tasks()}
            calls = [call for call in calls if call.owner is None or call.owner in running]
        return calls

    def sending(self, key: str) -> bool:
        """Whether a call of this request (its digest, or another key it was registered under) is under way in this
        process after using its approval: its creates are on their way (or about to be, its input files still
        uploading, or its auto approval just given: ``claim``) and not yet all in the journal."""
        return bool(self._live(key))

    def since(self, key: str) -> float | None:
        """When the newest call of this request under way here used its approval (epoch seconds), None when none
        is. Until its creates are in the journal (its input files uploading, its creates waiting for their turn in
        KIE's create window or on their way) only this knows of it: the same request sent again meanwhile is warned
        about it and never auto-approved (``generation.twins``)."""
        return max((call.started for call in self._live(key)), default=None)

    def begin_creates(self, digest: str) -> None:
        """The calls of this request under way here are past their uploads and reservation: their creates go out now
        (``creating``). A claim not yet spending is not."""
        for call in self._calls.get(digest, ()):
            if not call.landed.is_set() and call.owner is None:
                call.creating = True

    def creating(self, key: str) -> bool:
        """Whether a call of this request under way here is sending its creates (past its uploads): their answers
        are a KIE round trip away, not an upload's time."""
        return any(call.creating and not call.landed.is_set() for call in self._calls.get(key, ()))

    async def wait_for_cut_off(self, digest: str, seconds: float | None = None) -> bool:
        """Wait (up to ``seconds``, by default ``LANDING_WAIT``) until no call of this request that its host cut off
        is still sending. True when none is (the journal then says what they made); False when one still is."""
        pending = [call for call in self._calls.get(digest, ()) if call.cut_off and not call.landed.is_set()]
        if not pending:
            return True
        with anyio.move_on_after(LANDING_WAIT if seconds is None else seconds):
            for call in pending:
                await call.landed.wait()
        return all(call.landed.is_set() for call in pending)


async def _mark_when_cut_off(call: _Call) -> None:
    """Sleep beside the call's body; cancelled before the body ended means the host cut the call off."""
    try:
        await anyio.sleep_forever()
    finally:
        if not call.landed.is_set():
            call.cut_off = True
