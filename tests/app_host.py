"""A minimal MCP Apps host for browser tests: a page that iframes kie-mcp's app and a bridge to the real server.

``AppHost`` serves, on 127.0.0.1:
- ``/host.html``: ``app_host.html``, the host side of the MCP Apps postMessage protocol;
- ``/app.html``: the app exactly as the server serves it (``resources/read`` of its ``ui://`` URI through the SDK
  client), under the CSP the MCP Apps spec makes hosts apply when a resource declares no origins;
- ``/session/<view>``: the tool input and the real ``CallToolResult`` the host hands the view;
- ``/rpc``: the view's ``tools/call`` and ``resources/read``, relayed to the server through the same SDK client
  (so confirmation questions reach that client's elicitation callback, as in a real host);
- ``/event``: every message the view sends, kept in ``events`` for assertions.

``AppView`` drives one host page in headless Chromium (``tests/browser.py``). The app runs in a sandboxed iframe,
which Chromium puts in its own process: its DevTools session comes from auto-attaching to the page's frames.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.abc
from mcp import Client, MCPError
from mcp.types import CallToolResult

from kie_mcp.apps import APP_URI

from .browser import Browser, BrowserError, Page

HOST_PAGE = Path(__file__).with_name("app_host.html")
# The CSP a host applies to an app resource that declares no origins (SEP-1865, "Host Behavior").
DEFAULT_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' data:; connect-src 'none'; frame-src 'none'; object-src 'none'; "
    "base-uri 'self'"
)


def dump(result: Any) -> dict[str, Any]:
    """A protocol result as it travels over the wire (camelCase, ``_meta``)."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


class AppHost:
    """The bridge between a host page in the browser and the kie-mcp server (through an SDK client).

    ``approve_answer_seconds``: how long the card waits for the answer to Approve's call, past what the call itself
    may take, before it says none came (the app's ``APPROVE_ANSWER_SECONDS``, 60): a test of a host that never
    answers shortens it in the app it serves, rather than waiting a minute."""

    def __init__(self, client: Client, *, approve_answer_seconds: float | None = None) -> None:
        self.client = client
        self.approve_answer_seconds = approve_answer_seconds
        self.views: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []  # every message the view sent the host
        self.relayed: list[dict[str, Any]] = []  # every tools/call and resources/read relayed to the server
        self.html = ""
        self.url = ""

    def show(self, name: str, tool_input: dict[str, Any], result: CallToolResult) -> str:
        """Register a view of ``result`` (what the host got for a call with ``tool_input``); its page's URL."""
        self.views[name] = {"toolInput": tool_input, "toolResult": dump(result)}
        return f"{self.url}/host.html?view={name}"

    def show_raw(self, name: str, tool_input: dict[str, Any], result: dict[str, Any]) -> str:
        """``show``, for a tool result as it would travel (camelCase, ``_meta``), of any shape: what the view does
        with one it cannot draw."""
        self.views[name] = {"toolInput": tool_input, "toolResult": result}
        return f"{self.url}/host.html?view={name}"

    def calls(self, tool: str) -> list[dict[str, Any]]:
        """The arguments of every ``tools/call`` of ``tool`` the view made."""
        return [r["params"].get("arguments", {}) for r in self.relayed if r["params"].get("name") == tool]

    def sent(self, method: str) -> list[dict[str, Any]]:
        """The params of every message of that method the view sent."""
        return [e.get("params", {}) for e in self.events if e.get("method") == method]

    async def until_sent(self, method: str, within: float = 10.0) -> list[dict[str, Any]]:
        """``sent(method)`` once the view has sent one: the page reports each message in a request of its own,
        which may reach the bridge after the app has already moved on."""
        with anyio.fail_after(within):
            while not self.sent(method):  # noqa: ASYNC110 - the browser's requests, served by this bridge
                await anyio.sleep(0.05)
        return self.sent(method)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[AppHost]:
        read = await self.client.read_resource(APP_URI)
        self.html = read.contents[0].text
        if self.approve_answer_seconds is not None:
            constant = "const APPROVE_ANSWER_SECONDS = 60;"
            assert self.html.count(constant) == 1, "the app no longer names APPROVE_ANSWER_SECONDS as the host expects"
            self.html = self.html.replace(constant, f"const APPROVE_ANSWER_SECONDS = {self.approve_answer_seconds:g};")
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self.url = f"http://127.0.0.1:{port}"
        accepted: set[anyio.abc.SocketStream] = set()
        try:
            async with listener, anyio.create_task_group() as group:
                for one in listener.listeners:  # 127.0.0.1: one socket
                    group.start_soon(self._accept, one, group, accepted)
                try:
                    yield self
                finally:
                    group.cancel_scope.cancel()
        finally:  # a connection accepted as the host stopped, whose handler never ran: closed, not left to the GC
            with anyio.CancelScope(shield=True):
                for stream in accepted:
                    await stream.aclose()

    async def _accept(self, listener: anyio.abc.Listener[Any], group: anyio.abc.TaskGroup, accepted: set[Any]) -> None:
        """``listener.serve``, keeping each connection until its handler closed it: one cancelled before its handler
        started would otherwise be closed by no one."""
        while True:
            stream = await listener.accept()
            accepted.add(stream)
            group.start_soon(self._serve_one, stream, accepted)

    async def _serve_one(self, stream: anyio.abc.SocketStream, accepted: set[Any]) -> None:
        try:
            await self._serve(stream)
        finally:
            accepted.discard(stream)

    # -- HTTP, just enough for one browser ---------------------------------------------------------------

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                method, path, body = await _read_request(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
                return
            status, kind, payload, headers = await self._answer(method, path, body)
            head = f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(payload)}\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            head += "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            try:
                await stream.send(head.encode() + payload)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    async def _answer(self, method: str, path: str, body: bytes) -> tuple[str, str, bytes, dict[str, str]]:
        page = path.split("?", 1)[0]
        if page == "/host.html":
            return "200 OK", "text/html; charset=utf-8", HOST_PAGE.read_bytes(), {}
        if page == "/app.html":
            return "200 OK", "text/html; charset=utf-8", self.html.encode(), {"Content-Security-Policy": DEFAULT_CSP}
        if page.startswith("/session/"):
            view = self.views.get(unquote(page.removeprefix("/session/")))
            if view is None:
                return "404 Not Found", "application/json", b"{}", {}
            return "200 OK", "application/json", json.dumps(view).encode(), {}
        if page == "/event" and method == "POST":
            self.events.append(json.loads(body))
            return "200 OK", "application/json", b"{}", {}
        if page == "/rpc" and method == "POST":
            message = json.loads(body)
            self.relayed.append(message)
            return "200 OK", "application/json", json.dumps(await self._relay(message)).encode(), {}
        return "404 Not Found", "text/plain", b"not found", {}

    async def _relay(self, message: dict[str, Any]) -> dict[str, Any]:
        params = message.get("params") or {}
        try:
            if message.get("method") == "tools/call":
                result = await self.client.call_tool(params["name"], params.get("arguments") or {})
            elif message.get("method") == "resources/read":
                result = await self.client.read_resource(params["uri"])
            else:
                return {"error": {"message": f"the test host does not relay {message.get('method')}"}}
        except MCPError as err:
            return {"error": {"message": str(err)}}
        return {"result": dump(result)}


async def _read_request(stream: anyio.abc.SocketStream) -> tuple[str, str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length") or 0)
    while len(body) < length:
        body += await stream.receive(65536)
    return method, path, body


# What may act on a click: a click meant for one element that lands on one of these fails the test.
INTERACTIVE = "button, a, input, textarea, select, label, summary, [role=button], [tabindex]"


class AppView:
    """One host page in headless Chromium, with a DevTools session inside the app's (out-of-process) iframe.

    Every method blocks: call them through ``anyio.to_thread.run_sync`` so the bridge keeps serving meanwhile."""

    def __init__(self, browser: Browser, url: str, width: int = 760, height: int = 1100) -> None:
        self.browser = browser
        self.page: Page = browser.new_page(width, height)
        self.page.send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": False, "flatten": True})
        self.page.goto(url)
        self.frame = self._frame_session()

    def _frame_session(self, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.browser.events("Target.attachedToTarget", self.page.session):
                info = event.get("targetInfo", {})
                if info.get("type") == "iframe" and info.get("parentId") == self.page.target:
                    return event["sessionId"]
            time.sleep(0.05)
        raise BrowserError("the app's iframe never appeared")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression inside the app (awaited when it is a promise)."""
        answer = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self.frame,
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:80]!r} threw in the app: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> None:
        """Poll ``expression`` inside the app until it is truthy (in JavaScript)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(f"!!({expression})")  # an element would come back as {}
            if value:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {timeout:g} s: {expression}; the app shows: {self.text()!r}")
            time.sleep(0.1)

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def answered(self) -> list[str]:
        """The tool of each call the host has answered the view (with its result or an error), in order."""
        return self.page.evaluate("window.answered")

    def box(self, selector: str) -> dict[str, float]:
        """Where an element of the app is in the window, scrolled into view (the iframe's place plus its own);
        ``inner_x``/``inner_y``: its centre in the app's own coordinates."""
        where = (
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null; "
            "const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
        )
        inner, deadline = None, time.monotonic() + 5
        while True:  # pictures still decoding move things: wait until the element stays put
            before, inner = inner, self.evaluate(where)
            if inner is None:
                raise AssertionError(f"{selector} is not in the app; it shows: {self.text()!r}")
            if inner == before or time.monotonic() > deadline:
                break
            time.sleep(0.15)
        deadline = time.monotonic() + 5  # the host sizes the frame to the app (ui/notifications/size-changed)
        while self.page.evaluate("document.getElementById('app').clientHeight") < inner["y"] + inner["height"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{selector} lies outside the app's frame: the app never reported its size")
            time.sleep(0.05)
        outer = self.page.evaluate(  # the host page scrolls only when the element is off screen (the app is not
            # scrolled): after a scroll, Chromium may route input to the frame by hit-test data not yet redrawn
            f"(() => {{ const f = document.getElementById('app');"
            f" const top = f.getBoundingClientRect().y + {inner['y']}; "
            f"if (top < 0 || top + {inner['height']} > innerHeight) scrollTo(0, Math.max(0, top + scrollY - 200)); "
            "const r = f.getBoundingClientRect(); return {x: r.x, y: r.y}; })()"
        )
        centre = {"inner_x": inner["x"] + inner["width"] / 2, "inner_y": inner["y"] + inner["height"] / 2}
        return {**inner, **centre, "x": outer["x"] + inner["x"], "y": outer["y"] + inner["y"]}

    def click(self, selector: str) -> None:
        """Click an element of the app with the mouse, as a person would (once nothing covers or moves it).

        The app reports where the click landed: a click that reached nothing that acts (the element moved between
        aiming and pressing, or Chromium routed the press to the host page: then it is pressed inside the app's
        own frame) is aimed again; one that hit another control fails the test, since that control may have
        acted."""
        hits = (
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            "const h = document.elementFromPoint(X, Y); return !!e && !!h && (h === e || e.contains(h)); })()"
        )
        tokens: list[str] = []  # this call's watches: another thread may click in the app meanwhile (a callback)
        deadline, aimed = time.monotonic() + 10, False
        try:
            while True:
                if aimed and self._landed(selector, tokens, wait=0.0):  # a click the app saw late still counts
                    return
                box = self.box(selector)
                x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                on_frame = self.page.evaluate(f"document.elementFromPoint({x}, {y}) === document.getElementById('app')")
                if on_frame and self.evaluate(hits.replace("X", str(box["inner_x"])).replace("Y", str(box["inner_y"]))):
                    self._watch(selector, tokens)
                    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                        event = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
                        self.page.send("Input.dispatchMouseEvent", event)
                    aimed = True
                    if self._landed(selector, tokens, wait=3.0):
                        return
                    # Chromium routed the press to the host page (its hit-test data for the app's frame lagged
                    # behind, seen on a loaded machine): press inside the app's own frame, at the same place.
                    self._watch(selector, tokens)
                    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                        event = {
                            "type": kind,
                            "x": box["inner_x"],
                            "y": box["inner_y"],
                            "button": "left",
                            "clickCount": 1,
                        }
                        self.browser.send("Input.dispatchMouseEvent", event, self.frame)
                    if self._landed(selector, tokens, wait=3.0):
                        return
                if time.monotonic() > deadline:
                    host_hit = self.page.evaluate(
                        f"(() => {{ const h = document.elementFromPoint({x}, {y}); "
                        "return h ? h.outerHTML.slice(0, 80) : null; })()"
                    )
                    app_hit = self.evaluate(
                        f"(() => {{ const h = document.elementFromPoint({box['inner_x']}, {box['inner_y']}); "
                        "return h ? h.outerHTML.slice(0, 120) : null; })()"
                    )
                    raise AssertionError(
                        f"{selector} cannot be clicked: something else is at its place (aimed: {aimed}; at "
                        f"{x:.0f},{y:.0f} the page has {host_hit!r}, the app has {app_hit!r}; box {box})"
                    )
                time.sleep(0.1)
        finally:
            if tokens:  # a watch that saw nothing yet must not catch a later click meant for something else
                self.evaluate(
                    f"(() => {{ for (const id of {json.dumps(tokens)}) {{ const w = (window.__kieWatches || {{}})[id]; "
                    "if (w) document.removeEventListener('click', w, true); } return true; })()"
                )

    def _watch(self, selector: str, tokens: list[str]) -> None:
        """Before a press: record, in the capture phase (before the app's own handlers can replace the element),
        what the next click in the app lands on. Each watch has its own token and sees one click only, so a click
        made meanwhile by another thread (a callback typing into the form) is never read as this one."""
        token = uuid.uuid4().hex
        tokens.append(token)
        self.evaluate(
            "(() => { window.__kieClicks = window.__kieClicks || {}; window.__kieWatches = window.__kieWatches || {}; "
            f"const id = {json.dumps(token)}; window.__kieClicks[id] = null; "
            "const watch = (event) => { document.removeEventListener('click', watch, true); const t = event.target; "
            f"window.__kieClicks[id] = t.closest({json.dumps(selector)}) ? 'hit' "
            f": t.closest({json.dumps(INTERACTIVE)}) ? String(t.outerHTML).slice(0, 120) : 'miss'; "
            "}; window.__kieWatches[id] = watch; document.addEventListener('click', watch, true); return true; })()"
        )

    def _landed(self, selector: str, tokens: list[str], wait: float) -> bool:
        """Whether the app saw a click of this call meant for ``selector`` (waiting up to ``wait`` seconds for it);
        a click of this call that hit another element fails the test, since that element may have acted."""
        until = time.monotonic() + wait
        read = f"(() => {{ const c = window.__kieClicks || {{}}; return {json.dumps(tokens)}.map((id) => c[id]); }})()"
        while True:
            landed = self.evaluate(read) or []
            if "hit" in landed:
                return True
            if landed and landed[-1] == "miss":  # on nothing that acts (the element moved between aiming and pressing)
                return False
            for where in landed:
                if where not in (None, "hit", "miss"):
                    raise AssertionError(f"the click meant for {selector} landed on {where}")
            if time.monotonic() >= until:
                return False
            time.sleep(0.05)

    def type_into(self, selector: str, text: str) -> None:
        """Focus a field of the app and type ``text`` into it."""
        self.click(selector)
        self.browser.send("Input.insertText", {"text": text}, self.frame)  # keys go to the app's own frame

    def screenshot(self) -> bytes:
        """The host page as a person sees it: the app's frame and what is in it (the window is made tall enough for
        all of it, since a frame's content outside the window is not drawn)."""
        self.page.evaluate("scrollTo(0, 0)")
        where = (
            "(() => { const r = document.querySelector('.frame').getBoundingClientRect(); "
            "return {x: r.x - 8, y: r.y - 8, width: r.width + 16, height: r.height + 16}; })()"
        )
        box = self.page.evaluate(where)
        size = self.page.evaluate("[innerWidth, innerHeight]")
        tall = box["y"] + box["height"] > size[1]
        if tall:
            self.page.resize(size[0], int(box["y"] + box["height"]) + 1)
            time.sleep(0.3)  # let the app's frame draw at the new size
            box = self.page.evaluate(where)
        try:
            params = {"format": "png", "clip": {**box, "scale": 1}}
            return base64.b64decode(self.page.send("Page.captureScreenshot", params)["data"])
        finally:
            if tall:
                self.page.resize(*size)

    def close(self) -> None:
        self.page.close()
