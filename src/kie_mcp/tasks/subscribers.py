"""Subscriptions to the task resources: handshake-era ``resources/subscribe`` and 2026-07-28 ``subscriptions/listen``.

Clients of the handshake era (2025-06-18, 2025-11-25: most hosts) subscribe to a resource with
``resources/subscribe`` and are sent ``notifications/resources/updated`` on their connection when it changes. The
2026-07-28 era has no such method: its clients listen (``subscriptions/listen``, served by the SDK from the server's
subscription bus). The follower publishes every update of ``kie://tasks/{id}`` and ``kie://tasks`` on that bus, and
queues it for each handshake-era connection subscribed to that URI here (``Subscribers.subscribed``), in that
connection's outbox (``outbox``: sent by its own task, so a client that stops reading never holds up the follower).

Only those resources are updated while the server runs, so only they can be subscribed to, in either era
(``subscribable``, the one judge of both): a URI is taken as the resource read takes it, by reading it, so a
subscription is refused exactly when its read is (no task id, a quote id, ``?`` or ``#`` after the id, an id KIE does
not know), with the read's reason, and never accepted to wait for an update that never comes. A URI written
otherwise than the follower publishes it that reads the same task (``kie://tasks/%20<id>``) is subscribed as written:
its updates are sent under the URI the client gave (``Subscribers.subscribed``, ``Subscribers.listened_as``). A
connection's subscriptions go when it closes, a listen stream's when it ends.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mcp.types import INVALID_PARAMS

from kie_mcp.words import plain

if TYPE_CHECKING:
    from mcp.server.connection import Connection

TASK_LIST = "kie://tasks"
TASK_PREFIX = "kie://tasks/"
URI_SHOWN = 200  # characters of a refused URI its error repeats
HOW = (
    "Subscribe to kie://tasks, or to kie://tasks/{task_id} written as its read takes it: a task id a generate call, "
    "list_tasks or kie://tasks gave (ids are case-sensitive), with nothing after it (no ?query or #fragment)."
)


class NotSubscribable(ValueError):
    """A URI kie-mcp sends no updates of; the message says why and which it does. ``code``: the JSON-RPC error code
    its refusal carries (invalid params, or the read's own code when the read could not be made now)."""

    def __init__(self, message: str, code: int = INVALID_PARAMS) -> None:
        super().__init__(message)
        self.code = code


class ReadRefused(Exception):
    """The resource read of a URI refused it (``read``'s failure): its reason, and the code the read answers with."""

    def __init__(self, message: str, code: int = INVALID_PARAMS) -> None:
        super().__init__(message)
        self.code = code


async def subscribable(uri: str, read: Callable[[str], Awaitable[str]]) -> str:
    """The URI the follower publishes the updates of ``uri`` under: ``kie://tasks``, or ``kie://tasks/{task_id}`` of
    the task a read of ``uri`` shows (``read``: the server's resource read, returning the text read, raising
    ``ReadRefused``). Raises ``NotSubscribable`` for a URI kie-mcp sends no updates of, and for one whose read is
    refused, with the read's reason. The one judge of ``resources/subscribe`` and ``subscriptions/listen``."""
    if uri == TASK_LIST:
        return uri
    shown = plain(uri, limit=URI_SHOWN)
    if not uri.startswith(TASK_PREFIX):
        raise NotSubscribable(
            f"{shown} cannot be subscribed to: kie-mcp sends updates of kie://tasks (the workspace's tasks and "
            "creates of unknown outcome) and of kie://tasks/{task_id} (a task's state and saved results) only; "
            "nothing was subscribed to. Other resources are read again to see them as they are now."
        )
    try:
        text = await read(uri)
    except ReadRefused as err:
        reason = str(err).rstrip(".")
        raise NotSubscribable(
            f"{shown} cannot be subscribed to: its read is refused ({reason}), so no update of it would ever come; "
            f"nothing was subscribed to. {HOW}",
            err.code,
        ) from None
    try:
        task_id = json.loads(text)["task_id"]
    except (ValueError, TypeError, KeyError):  # not a task's record: no update of it is published
        raise NotSubscribable(f"{shown} names no task; nothing was subscribed to. {HOW}") from None
    return f"{TASK_PREFIX}{task_id}" if isinstance(task_id, str) and task_id else uri


def connection_of(ctx: Any) -> Connection:
    """The connection a request came on (a lowlevel handler's ``ServerRequestContext``)."""
    return connection_of_session(ctx.session)


def connection_of_session(session: Any) -> Connection:
    """The connection behind a request's session. The SDK hands a handler a per-request session proxy only; the
    connection it wraps, which lasts as long as the client's session, is that proxy's ``_connection`` (mcp 2.3: no
    public accessor yet)."""
    connection: Connection = session._connection
    return connection


class Subscribers:
    """The task resources each handshake-era connection subscribed to, and the URIs the open listen streams of the
    2026-07-28 era wrote otherwise than the follower publishes them (each as the client wrote it)."""

    def __init__(self) -> None:
        self._uris: dict[Connection, dict[str, str]] = {}  # URI as subscribed -> the URI its updates are published as
        self._listened: dict[str, Counter[str]] = {}  # published URI -> URIs as listened to (one count per stream)

    def subscribe(self, connection: Connection, uri: str, published: str | None = None) -> None:
        """``connection`` is sent the updates of ``published`` (``subscribable``'s answer for ``uri``), under ``uri``
        as it subscribed to it, from now on, until it unsubscribes or closes."""
        if connection not in self._uris:
            self._uris[connection] = {}
            connection.exit_stack.callback(self._uris.pop, connection, None)  # its subscriptions end with it
        self._uris[connection][uri] = published or uri

    def unsubscribe(self, connection: Connection, uri: str) -> None:
        """No more updates of ``uri`` (as it was subscribed to) to ``connection`` (nothing when it was not)."""
        self._uris.get(connection, {}).pop(uri, None)

    def subscribed(self, published: str) -> list[tuple[Connection, list[str]]]:
        """The open connections subscribed to ``published``, each with the URIs it subscribed to it as (the follower
        queues an update under each for it)."""
        found = []
        for connection, uris in self._uris.items():
            written = [uri for uri, to in uris.items() if to == published]
            if written:
                found.append((connection, written))
        return found

    @contextmanager
    def listening(self, uris: dict[str, str]) -> Iterator[None]:
        """While a listen stream is open: ``uris`` (each URI as listened to: the URI it is published as) are
        published too, under the URI as written, where it differs."""
        aliases = {uri: published for uri, published in uris.items() if uri != published}
        for uri, published in aliases.items():
            self._listened.setdefault(published, Counter())[uri] += 1
        try:
            yield
        finally:
            for uri, published in aliases.items():
                counts = self._listened.get(published)
                if counts is None:
                    continue
                counts[uri] -= 1
                if counts[uri] <= 0:
                    del counts[uri]
                if not counts:
                    del self._listened[published]

    def listened_as(self, published: str) -> list[str]:
        """The other URIs open listen streams wrote ``published`` as (each published too)."""
        return list(self._listened.get(published, ()))
