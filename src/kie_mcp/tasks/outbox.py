"""What the follower tells a handshake-era client outside a request, sent apart from the follower's own work.

A client that stops reading (a host that no longer reads the server's stdout, an HTTP client's standalone stream
left unread) makes every message to it wait. The follower's work (looking at KIE, settling, saving results, the
journal) must never wait on that: the audit saw a host that stopped reading freeze it, no finished task saved again,
because it sent each resource update and "task ended" line itself, holding its look and finish slots. Now it puts
each one in the connection's ``Outbox`` and goes on; one sender task per connection (``Outbox.run``) sends them, in
the order they were put.

An outbox holds ``QUEUED`` messages at most. An update of a resource already waiting to be sent is not queued again
(the client reads the resource as it is when the one update arrives), unless a log message about that task was queued
after it: a task's messages arrive in the order they were said. When it is full, the oldest log message goes (the
oldest update when there are none), counted: stderr says so when the dropping starts, and once the client reads again
it is told how many were dropped (a warning log message, when its log level takes warnings) and stderr too. A
connection's outbox closes with it: nothing queued for it is sent after that.

2026-07-28 clients have no outbox: their resource updates go on the server's subscription bus (the SDK buffers each
``subscriptions/listen`` stream and never waits on the client), their "task ended" lines with the next check_task.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from mcp.server.connection import Connection

log = logging.getLogger(__name__)

QUEUED = 500  # messages an outbox holds for a client that does not read; beyond it the oldest log message goes
UPDATED = "notifications/resources/updated"
MESSAGE = "notifications/message"
LOGGER = "kie-mcp"  # the logger named in kie-mcp's log messages to the client
STATE_KEY = "kie_mcp.outbox"  # where a connection keeps its outbox (``Connection.state``: it lasts as long as it)


@dataclass(eq=False)
class _Message:
    method: str
    params: dict[str, Any]
    uri: str | None = None  # an update's resource


class Outbox:
    """The messages waiting for one handshake-era connection, sent in order by ``run``."""

    def __init__(self, connection: Connection, hears: Callable[[str], bool]) -> None:
        self._connection = connection
        self._hears = hears  # whether the client's log level takes a level (logging/setLevel)
        self._queue: deque[_Message] = deque()
        self._mergeable: dict[str, _Message] = {}  # the queued update of each resource a new one may be merged into
        self._dropped = 0  # messages dropped since the client last read one
        self._ready = anyio.Event()
        self._scope = anyio.CancelScope()
        self.closed = False

    def updated(self, uri: str) -> None:
        """Queue ``notifications/resources/updated`` of ``uri`` (nothing when one is waiting already)."""
        if self.closed or uri in self._mergeable:
            return
        message = _Message(UPDATED, {"uri": uri}, uri)
        self._mergeable[uri] = message
        self._put(message)

    def log(self, level: str, line: str, *, about: str | None = None) -> None:
        """Queue a log message; ``about``: the resource of the task it speaks of, whose next update comes after it."""
        if self.closed:
            return
        if about is not None:
            self._mergeable.pop(about, None)
        self._put(_Message(MESSAGE, {"level": level, "logger": LOGGER, "data": line}))

    def close(self) -> None:
        """The connection closed: nothing more is sent, and the sender ends."""
        self.closed = True
        self._queue.clear()
        self._mergeable.clear()
        self._scope.cancel()

    def _put(self, message: _Message) -> None:
        self._queue.append(message)
        if len(self._queue) > QUEUED:
            self._drop_oldest()
        self._ready.set()

    def _drop_oldest(self) -> None:
        oldest = next((m for m in self._queue if m.method == MESSAGE), self._queue[0])
        self._queue.remove(oldest)  # at most QUEUED long, and only while the client does not read
        if oldest.uri is not None and self._mergeable.get(oldest.uri) is oldest:
            del self._mergeable[oldest.uri]
        if self._dropped == 0:
            log.warning(
                "the client is not reading what kie-mcp sends it: %d messages wait, the oldest are dropped (tasks "
                "are followed and saved all the same)",
                QUEUED,
            )
        self._dropped += 1

    async def run(self) -> None:
        """Send the queued messages, one at a time, until the connection closes (or the server stops)."""
        with self._scope:
            while not self.closed:
                if not self._queue:
                    self._ready = anyio.Event()
                    await self._ready.wait()
                    continue
                message = self._queue.popleft()
                if message.uri is not None and self._mergeable.get(message.uri) is message:
                    del self._mergeable[message.uri]
                await self._send(message)
                if self._dropped:  # that one reached the client: it reads again
                    await self._say_dropped()

    async def _say_dropped(self) -> None:
        dropped, self._dropped = self._dropped, 0
        log.warning("the client reads again; %d message(s) to it were dropped while it did not", dropped)
        if self._hears("warning"):
            line = (
                f"kie-mcp dropped {dropped} of its messages to this client (task updates, task ended lines) while the "
                "client was not reading them; list_tasks and kie://tasks show every task as it is now"
            )
            await self._send(_Message(MESSAGE, {"level": "warning", "logger": LOGGER, "data": line}))

    async def _send(self, message: _Message) -> None:
        """Best effort: a connection gone away (``Connection.notify`` drops it then) or anything else the SDK raises
        costs this message only."""
        try:
            await self._connection.notify(message.method, message.params)
        except Exception as err:
            log.debug("could not send %s to the client: %s", message.method, err)


class Outboxes:
    """The outbox of each handshake-era connection the follower speaks to, and the task group their senders run in
    (``run``, for as long as the follower runs)."""

    def __init__(self, hears: Callable[[str], bool]) -> None:
        self._hears = hears
        self._group: TaskGroup | None = None
        self._waiting: list[Outbox] = []  # outboxes made before ``run``: their senders start with it

    def of(self, connection: Connection) -> Outbox:
        """``connection``'s outbox (made, its sender started, on first use; closed with the connection)."""
        box = connection.state.get(STATE_KEY)
        if box is None:
            box = connection.state[STATE_KEY] = Outbox(connection, self._hears)
            connection.exit_stack.callback(box.close)  # none of its messages is sent after the connection closed
            if self._group is not None:
                self._group.start_soon(box.run)
            else:
                self._waiting.append(box)
        assert isinstance(box, Outbox)
        return box

    async def run(self) -> None:
        """Run the senders until cancelled (the follower stops)."""
        async with anyio.create_task_group() as group:
            self._group = group
            waiting, self._waiting = self._waiting, []
            for box in waiting:
                group.start_soon(box.run)
            try:
                await anyio.sleep_forever()
            finally:
                self._group = None
