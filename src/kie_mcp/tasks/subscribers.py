"""Handshake-era subscriptions to the task resources (``resources/subscribe``, ``resources/unsubscribe``).

Clients of the handshake era (2025-06-18, 2025-11-25: most hosts) subscribe to a resource with
``resources/subscribe`` and are sent ``notifications/resources/updated`` on their connection when it changes. The
2026-07-28 era has no such method: its clients listen (``subscriptions/listen``, served by the SDK from the server's
subscription bus). The follower publishes every update of ``kie://tasks/{id}`` and ``kie://tasks`` on that bus, and
queues it for each handshake-era connection subscribed to that URI here (``Subscribers.subscribed``), in that
connection's outbox (``outbox``: sent by its own task, so a client that stops reading never holds up the follower).

Only those resources are updated while the server runs, so only they can be subscribed to (``subscribable``): a
client subscribed to anything else would wait for an update that never comes. A connection's subscriptions go when it
closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kie_mcp.kie.text import task_id_problem, usable_task_id
from kie_mcp.words import plain

if TYPE_CHECKING:
    from mcp.server.connection import Connection

TASK_LIST = "kie://tasks"
TASK_PREFIX = "kie://tasks/"
URI_SHOWN = 200  # characters of a refused URI its error repeats


class NotSubscribable(ValueError):
    """A URI kie-mcp sends no updates of; the message says which it does."""


def subscribable(uri: str) -> str:
    """``uri`` when it is a resource kie-mcp sends updates of: ``kie://tasks``, or ``kie://tasks/{task_id}`` with a
    usable task id (the rule every task id meets). Raises ``NotSubscribable`` otherwise."""
    if uri == TASK_LIST:
        return uri
    if uri.startswith(TASK_PREFIX):
        task_id = uri.removeprefix(TASK_PREFIX)
        if usable_task_id(task_id) == task_id and "/" not in task_id:
            return uri
        shown = plain(task_id, limit=URI_SHOWN)
        why = task_id_problem(task_id) or f"{shown} is not a task id (spaces around it, or a /)"
        raise NotSubscribable(
            f"{why}, so nothing was subscribed to. Subscribe to kie://tasks/{{task_id}} with a task id a generate "
            "call, list_tasks or kie://tasks gave."
        )
    raise NotSubscribable(
        f"{plain(uri, limit=URI_SHOWN)} cannot be subscribed to: kie-mcp sends updates of kie://tasks (the "
        "workspace's tasks and creates of unknown outcome) and of kie://tasks/{task_id} (a task's state and saved "
        "results) only. Other resources are read again to see them as they are now."
    )


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
    """The task resources each handshake-era connection subscribed to."""

    def __init__(self) -> None:
        self._uris: dict[Connection, set[str]] = {}

    def subscribe(self, connection: Connection, uri: str) -> None:
        """``connection`` is sent the updates of ``uri`` (a ``subscribable`` one) from now on, until it unsubscribes
        or closes."""
        if connection not in self._uris:
            self._uris[connection] = set()
            connection.exit_stack.callback(self._uris.pop, connection, None)  # its subscriptions end with it
        self._uris[connection].add(uri)

    def unsubscribe(self, connection: Connection, uri: str) -> None:
        """No more updates of ``uri`` to ``connection`` (nothing when it was not subscribed)."""
        self._uris.get(connection, set()).discard(uri)

    def subscribed(self, uri: str) -> list[Connection]:
        """The open connections subscribed to ``uri`` (the follower queues its updates for them)."""
        return [connection for connection, uris in self._uris.items() if uri in uris]
