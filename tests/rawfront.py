"""The simulator behind a raw HTTP/1.1 server on loopback, which sends what no HTTP server library lets an
application send: bytes past an answer's ``Content-Length``, on a connection kept alive, as a broken proxy or a
hostile upstream may. Every request is answered by the simulator (in process, ``SandboxTransport``), written on the
wire here byte for byte."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2

from kie_mcp.sandbox import SandboxTransport, Simulator

_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})


def http_answer(body: bytes, content_type: str = "application/json", status: int = 200) -> bytes:
    """A whole HTTP/1.1 answer as it goes on the wire."""
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def kie_answer(data: Any) -> bytes:
    """A whole HTTP answer of KIE's: success, with ``data``."""
    return http_answer(json.dumps({"code": 200, "msg": "success", "data": data}).encode())


class RawFront:
    """``sim`` served over loopback TCP by hand. ``after``: path prefix -> bytes to write right after that path's
    next answers, in the same write (one item per answer, while any are left). ``requests``: every request line."""

    def __init__(self, sim: Simulator) -> None:
        self.inner = SandboxTransport(sim)
        self.after: dict[str, list[bytes]] = {}
        self.requests: list[str] = []
        self.base = ""

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Listening on a free loopback port while open; yields its base URL."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            yield self.base
        finally:
            server.close()
            await self.inner.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")[:-2]
                method, target, _ = line.split(" ", 2)
                headers = [tuple(part.strip() for part in field.split(":", 1)) for field in fields]
                length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
                body = await reader.readexactly(length)
                self.requests.append(f"{method} {target}")
                request = httpx2.Request(method, self.base + target, headers=headers, content=body)
                response = await self.inner.handle_async_request(request)
                content = b"".join([chunk async for chunk in response.aiter_raw()])
                kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _FRAMING]
                lines = [f"HTTP/1.1 {response.status_code} {response.reason_phrase or 'OK'}"]
                lines += [f"{k}: {v}" for k, v in kept] + [f"Content-Length: {len(content)}"]
                path = target.split("?", 1)[0]
                queued = next((items for prefix, items in self.after.items() if path.startswith(prefix)), None)
                extra = queued.pop(0) if queued else b""
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content + extra)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
