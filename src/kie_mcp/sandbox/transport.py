"""In-process transport: an ``httpx2`` client talks to the simulator without sockets.

API calls go through ``httpx2.ASGITransport``. Three things it does not do are added here:
- a ``drop`` fault (the app raises ``ConnectionDropped``) reaches the client as
  ``httpx2.RemoteProtocolError("Server disconnected without sending a response.")``;
- the client's read timeout is honoured: a ``slow`` answer raises ``httpx2.ReadTimeout`` while the
  server side keeps running, so a timed-out create may still create and charge, as on KIE;
- file downloads (``/files/``, ``/dl/``) are streamed chunk by chunk with back-pressure instead of
  being buffered, so a 200 MB fake video costs constant memory.
Uses asyncio tasks (the MCP server runs anyio on asyncio).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from .app import create_app
from .context import IN_PROCESS_EXTENSION
from .errors import ConnectionDropped
from .state import Simulator

log = logging.getLogger(__name__)

DISCONNECTED = "Server disconnected without sending a response."
INCOMPLETE = "peer closed connection without sending complete message body"
_STREAMED_PREFIXES = ("/files/", "/dl/")
_ERROR = "kie_sim.error"


def _dropped(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionDropped):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(ConnectionDropped) is not None
    return False


def _read_timeout(request: httpx2.Request) -> float | None:
    timeout = request.extensions.get("timeout") or {}
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if value is not None else None


class _QueueStream(httpx2.AsyncByteStream):
    """Response body fed by the app task through a small bounded queue."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]], task: asyncio.Task[None], done: asyncio.Event) -> None:
        self._queue = queue
        self._task = task
        self._done = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._queue.get()
            if message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk:
                    yield bytes(chunk)
                if not message.get("more_body", False):
                    self._done.set()
                    return
            else:  # the app failed or returned mid-body: the connection is cut
                self._done.set()
                raise httpx2.RemoteProtocolError(INCOMPLETE)

    async def aclose(self) -> None:
        self._done.set()
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class SandboxTransport(httpx2.AsyncBaseTransport):
    """Route an ``httpx2.AsyncClient`` (any base URL, any host) to ``create_app(sim)`` in process."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.app = create_app(sim)
        self._asgi = httpx2.ASGITransport(app=self.app)
        self._background: set[asyncio.Future[Any]] = set()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method in ("GET", "HEAD") and request.url.path.startswith(_STREAMED_PREFIXES):
            return await self._stream(request)
        work = asyncio.ensure_future(self._asgi.handle_async_request(request))
        try:
            done, _ = await asyncio.wait({work}, timeout=_read_timeout(request))
        except asyncio.CancelledError:
            self._keep(work)  # like a real server, finish what was received
            raise
        if not done:
            self._keep(work)
            raise httpx2.ReadTimeout("The simulator did not answer within the read timeout.", request=request)
        try:
            return work.result()
        except Exception as exc:
            if _dropped(exc):
                raise httpx2.RemoteProtocolError(DISCONNECTED, request=request) from None
            raise

    async def aclose(self) -> None:
        """The client closes (the server stops): a simulator with a state file saves it with its clock. The
        transport stays usable: tests share one across several clients."""
        self.sim.persist(force=True)

    def _keep(self, work: asyncio.Future[Any]) -> None:
        self._background.add(work)

        def finished(future: asyncio.Future[Any]) -> None:
            self._background.discard(future)
            if not future.cancelled() and future.exception() is not None and not _dropped(future.exception()):
                log.debug("abandoned simulator request failed: %r", future.exception())

        work.add_done_callback(finished)

    async def _stream(self, request: httpx2.Request) -> httpx2.Response:
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 123),
            "root_path": "",
            "extensions": {IN_PROCESS_EXTENSION: {}},
        }
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=4)
        done = asyncio.Event()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            if request.method == "HEAD" and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await queue.put(dict(message))

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                await queue.put({"type": _ERROR, "exc": exc})
            else:
                await queue.put({"type": _ERROR, "exc": None})

        task = asyncio.create_task(run())
        try:
            first = await asyncio.wait_for(queue.get(), _read_timeout(request))
        except BaseException as exc:
            task.cancel()
            if isinstance(exc, TimeoutError):
                raise httpx2.ReadTimeout(
                    "The simulator did not answer within the read timeout.", request=request
                ) from None
            raise
        if first["type"] != "http.response.start":
            task.cancel()
            error = first.get("exc")
            if error is None or _dropped(error):
                raise httpx2.RemoteProtocolError(DISCONNECTED, request=request)
            raise error
        stream = _QueueStream(queue, task, done)
        return httpx2.Response(first["status"], headers=first.get("headers", []), stream=stream)
