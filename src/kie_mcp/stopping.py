"""A stop on its way: the creates this process is sending to KIE, which a host's SIGTERM waits for.

A create on its way to KIE may already be created and charged there, and only its answer names the task: the create
path sends it and records that answer as one unit (``generation``, shielded from cancellation). A signal ended the
process at once, between the two: the attempt stayed "being sent", became ``unknown`` at the next start, and the
task's result was never saved. A host that quits stops its server exactly then: the MCP SDK's client closes stdin,
waits 2 s, sends SIGTERM, and SIGKILL 2 s after that.

A create waiting for its place in KIE's create window (``kie.pacing``, 20 creates per 10 s) has not been sent, and
waiting is not shielded: it gives up when its call is cut off or a stop closes the gate (``waiting``), is settled as
not sent, and its share of the reservation goes back. Only from the moment its slot is granted to its recorded answer
is a create one shielded unit.

So the first SIGTERM or SIGHUP (or a host's SIGINT, ``cli``) closes the gate (``sending`` lets no create start after
it) and the process exits once the creates in flight have landed and been recorded, ``LANDING_SECONDS`` at most
(``cli``); a second signal, or Ctrl-C typed in a terminal, ends it at once. One count for the whole process: a signal
is the process's, whatever connection sent the create.

A host that closes stdin mid-create (the MCP SDK's client does, before its SIGTERM) ends the session: the calls in
flight are cancelled, and the process waits for the create on its way, shielded, to be answered and recorded.
``stdio`` says so on stderr (``waiting_words``), as a signal's stop does (the wait was silent). It is not cut at
``LANDING_SECONDS``: nothing asked the process to stop by a time, and a create cut off before its answer is one of
unknown outcome at the next start (it may have been charged, and its task is not followed); the create's own
deadline bounds it, and a SIGTERM meanwhile stops it as above.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio

LANDING_SECONDS = 10.0  # how long a stop waits for the creates on their way to KIE; KIE answers one in a second or two


class CreatesInFlight:
    """The creates being sent now, and whether a stop has closed the gate to new ones."""

    def __init__(self) -> None:
        self._sending = 0
        self._closed = False
        self._landed: anyio.Event | None = None
        self._waiting: set[anyio.Event] = set()  # one per create waiting for its turn, set when it should give up

    @property
    def sending_now(self) -> int:
        return self._sending

    @property
    def closed(self) -> bool:
        """Whether a stop closed the gate: no create starts any more."""
        return self._closed

    @contextmanager
    def sending(self) -> Iterator[bool]:
        """Around one create, from before it is journaled until its answer is: whether it may be sent (False once a
        stop closed the gate: it must not be, and nothing is counted)."""
        if self._closed:
            yield False
            return
        self._sending += 1
        try:
            yield True
        finally:
            self._sending -= 1
            self._changed()

    @asynccontextmanager
    async def waiting(self) -> AsyncIterator[anyio.Event]:
        """Around one create, from before it waits for its turn until it is settled: an event set once it should
        give up waiting (its call was cut off, or a stop closed the gate). The body runs on when its call is cut
        off (the event tells it to settle as not sent), and a stop waits for it to be settled (``landed``)."""
        given_up = anyio.Event()
        if self._closed:
            given_up.set()
        self._waiting.add(given_up)
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    try:
                        await anyio.sleep_forever()
                    finally:  # cancelled: the call was cut off (or the create was settled)
                        given_up.set()

                group.start_soon(watch)
                try:
                    yield given_up
                finally:
                    group.cancel_scope.cancel()
        finally:
            self._waiting.discard(given_up)
            self._changed()

    def close(self) -> None:
        """No create starts from now on (those in flight go on, those waiting for their turn give up)."""
        self._closed = True
        for given_up in self._waiting:
            given_up.set()

    async def landed(self, seconds: float) -> bool:
        """Wait until no create is in flight or still settling after giving up its wait, ``seconds`` at most;
        whether none is being sent."""
        if self._sending or self._waiting:
            self._landed = anyio.Event()
            with anyio.move_on_after(seconds):
                await self._landed.wait()
        return not self._sending

    def _changed(self) -> None:
        if not self._sending and not self._waiting and self._landed is not None:
            self._landed.set()


CREATES = CreatesInFlight()


def waiting_words(how: str, sending: int, seconds: float | None = LANDING_SECONDS) -> str:
    """The line a stop says on stderr while ``sending`` creates are on their way to KIE, in the words of a signal's
    (``cli``): ``how`` it was asked ("stdin closed"), waiting ``seconds`` at most (None: until each is answered or
    reaches its own deadline)."""
    creates = "a create" if sending == 1 else f"{sending} creates"
    up_to = f"up to {seconds:g} s " if seconds is not None else ""
    return (
        f"kie-mcp: stopping ({how}): waiting {up_to}for {creates} on its way to KIE, so that the task it made is "
        "recorded."
    )
