"""A stop on its way: the creates this process is sending to KIE, which a host's SIGTERM waits for.

A create on its way to KIE may already be created and charged there, and only its answer names the task: the create
path sends it and records that answer as one unit (``generation``, shielded from cancellation). A signal ended the
process at once, between the two: the attempt stayed "being sent", became ``unknown`` at the next start, and the
task's result was never saved. A host that quits stops its server exactly then: the MCP SDK's client closes stdin,
waits 2 s, sends SIGTERM, and SIGKILL 2 s after that.

So the first SIGTERM or SIGHUP closes the gate (``sending`` lets no create start after it) and the process exits once
the creates in flight have landed and been recorded, ``LANDING_SECONDS`` at most (``cli``); a second signal, or
Ctrl-C, ends it at once. One count for the whole process: a signal is the process's, whatever connection sent the
create.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

LANDING_SECONDS = 10.0  # how long a stop waits for the creates on their way to KIE; KIE answers one in a second or two


class CreatesInFlight:
    """The creates being sent now, and whether a stop has closed the gate to new ones."""

    def __init__(self) -> None:
        self._sending = 0
        self._closed = False
        self._landed: anyio.Event | None = None

    @property
    def sending_now(self) -> int:
        return self._sending

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
            if not self._sending and self._landed is not None:
                self._landed.set()

    def close(self) -> None:
        """No create starts from now on (those in flight go on)."""
        self._closed = True

    async def landed(self, seconds: float) -> bool:
        """Wait until no create is in flight, ``seconds`` at most; whether none is."""
        if self._sending:
            self._landed = anyio.Event()
            with anyio.move_on_after(seconds):
                await self._landed.wait()
        return not self._sending


CREATES = CreatesInFlight()
