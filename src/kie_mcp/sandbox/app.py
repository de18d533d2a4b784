"""The simulator's ASGI app: every KIE host's paths on one app, routed by path only.

``create_app`` serves the API host (``/api/v1/...``), the upload host (``/api/file-*-upload``),
the result-file CDN (``/files/...``, ``/dl/...``) and the test controls (``/__sim/...``).
Every simulated endpoint runs through ``_run``: request log, Cloudflare User-Agent check,
scripted faults, bearer auth, then the family handler; ``KieError`` becomes KIE's envelope.
Run it for real with ``uvicorn.run(create_app(Simulator()), host="127.0.0.1", port=N)``. Over real
HTTP a ``drop`` fault sends response headers and then aborts: uvicorn logs the exception and
closes the socket, so clients see a connection cut mid-response (httpx: ``RemoteProtocolError``).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from . import aleph, controls, flux, gpt4o, market, media, models, runway, uploads, veo
from .context import Ctx, DropResponse, envelope, number
from .errors import EXPIRED_PAGES, LINK_EXPIRED, FileError, KieError, default_message
from .faults import (
    API_BODY,
    CREATE_ONLY,
    FILES_ONLY,
    STATUS_ONLY,
    UPLOAD_ONLY,
    Fault,
    auth_echo,
    html_page,
    huge_body,
    strip_results,
    tagged,
)
from .routes import SimRoute
from .state import Blob, SimRequest, Simulator

log = logging.getLogger(__name__)

CREDIT_PATH = "/api/v1/chat/credit"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
MALFORMED_BODY = b'{"code":200,"msg":"success","data":{"taskId":'
_ELIDE_KEYS = frozenset({"base64Data"})
_PADDING = 1024 * 1024  # a padded fault's zeros, sent this many bytes at a time


# -- request log ---------------------------------------------------------------------------


def _elided(text: str) -> str:
    return f"<base64 elided: {len(text)} chars>"


def _elide(value: Any) -> Any:
    """Drop base64 payloads from logged bodies: they are large and may be private."""
    if isinstance(value, dict):
        return {k: _elided(v) if k in _ELIDE_KEYS and isinstance(v, str) else _elide(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_elide(v) for v in value]
    if isinstance(value, str) and value.startswith("data:") and ";base64," in value[:200]:
        return _elided(value)
    return value


async def _record(sim: Simulator, request: Request) -> SimRequest:
    body: Any = None
    if request.method not in ("GET", "HEAD") and "multipart/" not in request.headers.get("content-type", ""):
        raw = await request.body()
        if raw:
            try:
                body = _elide(json.loads(raw))
            except ValueError:
                body = {"bytes": len(raw)}
    record = SimRequest(
        method=request.method,
        path=request.url.path,
        query=dict(request.query_params),
        body=body,
        has_auth="authorization" in request.headers,
        host=request.headers.get("host", ""),
        at=sim.now(),
    )
    sim.log_request(record)
    return record


# -- faults --------------------------------------------------------------------------------


async def _fire(ctx: Ctx, fault: Fault) -> Response | None:
    """Answer with the fault instead of the endpoint, or return None to go on (``slow``, ``hold``)."""
    params = fault.params
    log.info("fault %s on %s %s", fault.kind, ctx.request.method, ctx.request.url.path)
    if fault.kind == "slow":
        await anyio.sleep(float(params["seconds"]))
        return None
    if fault.kind == "hold":
        await ctx.sim.faults.hold(float(params["seconds"]))
        return None
    if fault.kind == "drop":
        return DropResponse()
    if fault.kind == "malformed":
        return Response(MALFORMED_BODY, status_code=200, media_type="application/json")
    if fault.kind == "html":
        status = int(params.get("status", 502))
        return HTMLResponse(html_page(status), status_code=status)
    if fault.kind == "huge":
        headers = {"content-encoding": "gzip"} if params["gzip"] else None
        return StreamingResponse(huge_body(fault), media_type="application/json", headers=headers)
    code = int(params["code"])
    if "held" in params:  # answered once the test lets it go, as a hold fault (a create's answer a moment away)
        await ctx.sim.faults.hold(float(params["held"]))
    msg = str(params.get("msg") or default_message(code))
    if params.get("echo_auth"):
        msg += auth_echo(ctx.request.headers.get("authorization"))
    if ctx.category == "files":
        return PlainTextResponse(msg, status_code=code)
    return envelope(ctx.sim, code, msg, params.get("data"), upload=ctx.upload)


class _BodyCut(Exception):
    """Raised through the wrapped response to stop it once a ``truncate`` fault has ended the body."""


def _only_cut(exc: BaseException) -> bool:
    if isinstance(exc, _BodyCut):
        return True
    if isinstance(exc, BaseExceptionGroup):
        rest = exc.split(_BodyCut)[1]
        return rest is None
    return False


class FaultyBody(Response):
    """A served file whose body misbehaves (``truncate``, ``stall``: headers, incl. Content-Length, stay whole;
    ``padded``: zeros after the file, and no Content-Length; ``damaged``: cut short, its Content-Length agreeing;
    ``tagged``: ``text`` in its metadata)."""

    def __init__(self, inner: Response, fault: Fault) -> None:
        super().__init__(status_code=inner.status_code)
        self.inner = inner
        self.kind = fault.kind
        after = fault.params.get("after_bytes")
        if after is None:  # truncate by default: half the file
            length = inner.headers.get("content-length", "")
            after = int(length) // 2 if length.isdigit() else 0
        self.after = int(after)
        self.seconds = float(fault.params.get("seconds", 0))
        self.total = int(fault.params.get("bytes", 0))  # padded: the body's length in all
        self.text = fault.params.get("text")  # tagged: what is written into the file's metadata

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.kind == "padded":
            await self._padded(scope, receive, send)
            return
        if self.kind == "tagged":
            await self._tagged(scope, receive, send)
            return
        sent = 0
        tripped = False

        async def faulty_send(message: Message) -> None:
            nonlocal sent, tripped
            if message["type"] == "http.response.start" and self.kind == "damaged":  # stored so: its length agrees
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                await send({**message, "headers": [*headers, (b"content-length", str(self.after).encode())]})
                return
            if message["type"] != "http.response.body" or tripped:
                await send(message)
                return
            body = bytes(message.get("body", b""))
            room = self.after - sent
            if len(body) < room or (len(body) == room and message.get("more_body", False) is False):
                sent += len(body)
                await send(message)
                return
            tripped = True
            if self.kind in ("truncate", "damaged"):
                await send({"type": "http.response.body", "body": body[:room], "more_body": False})
                raise _BodyCut
            await send({"type": "http.response.body", "body": body[:room], "more_body": True})
            await anyio.sleep(self.seconds)
            await send({**message, "body": body[room:]})

        try:
            await self.inner(scope, receive, faulty_send)
        except BaseException as exc:
            if not _only_cut(exc):
                raise

    async def _tagged(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The file with ``text`` in its metadata (``faults.tagged``), whole, its Content-Length agreeing."""
        start: Message | None = None
        parts: list[bytes] = []

        async def gathered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(bytes(message.get("body", b"")))
            if message.get("more_body", False) or start is None:
                return
            body = tagged(b"".join(parts), str(self.text))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.inner(scope, receive, gathered)

    async def _padded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The file, then zeros up to ``total`` bytes in all, 1 MiB at a time, with no Content-Length."""
        sent = 0

        async def padded_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                await send({**message, "headers": headers})
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = bytes(message.get("body", b""))
            sent += len(body)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            if message.get("more_body", False):
                return
            while sent < self.total:
                step = min(_PADDING, self.total - sent)
                await send({"type": "http.response.body", "body": bytes(step), "more_body": True})
                sent += step
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.inner(scope, receive, padded_send)


class Trickled(Response):
    """An answer (an API answer, or a served result file) sent a few bytes at a time (``trickle``): its headers whole,
    Content-Length included, then ``bytes`` bytes of its body every ``every`` real seconds."""

    def __init__(self, inner: Response, fault: Fault) -> None:
        super().__init__(status_code=inner.status_code)
        self.inner = inner
        self.every = float(fault.params.get("every", 0.5))
        self.step = int(fault.params.get("bytes", 1))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def trickled_send(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = bytes(message.get("body", b""))
            more = message.get("more_body", False)
            for start in range(0, len(body), self.step):
                await anyio.sleep(self.every)
                last = start + self.step >= len(body)
                await send(
                    {
                        "type": "http.response.body",
                        "body": body[start : start + self.step],
                        "more_body": more or not last,
                    }
                )
            if not body:
                await send(message)

        await self.inner(scope, receive, trickled_send)


async def _run(sim: Simulator, route: SimRoute, request: Request) -> Response:
    record = await _record(sim, request)
    if (
        route.category != "files"
        and sim.config.require_user_agent
        and not request.headers.get("user-agent", "").strip()
    ):
        return PlainTextResponse("error code: 1010", status_code=403)  # Cloudflare browser-integrity check
    ctx = Ctx(sim=sim, request=request, category=route.category, record=record)
    fault = sim.faults.peek(route.category)
    body_fault: Fault | None = None
    if fault is not None:
        if fault.kind in CREATE_ONLY:
            ctx.pending_fault = fault  # consumed only if a task really gets created
        elif fault.kind in STATUS_ONLY:
            body_fault = fault  # consumed only by a status answer that reports success
        elif fault.kind in FILES_ONLY or fault.kind in UPLOAD_ONLY or fault.kind in API_BODY:
            sim.faults.consume(fault)
            body_fault = fault  # applied to the body of the file, upload answer or API answer served below
        else:
            sim.faults.consume(fault)
            early = await _fire(ctx, fault)
            if early is not None:
                return early
    try:
        if route.auth:
            ctx.authenticate()
        response = await route.handler(ctx)
    except KieError as err:
        response = ctx.error(err)
    if ctx.drop_after:
        return DropResponse()
    if body_fault is not None and body_fault.kind in STATUS_ONLY:
        return _without_results(sim, response, body_fault)
    if body_fault is not None and body_fault.kind in UPLOAD_ONLY:
        return _with_link(response, body_fault)
    if body_fault is not None and body_fault.kind in API_BODY and (route.category != "files" or _served(response)):
        log.info("fault %s on the answer to %s", body_fault.kind, request.url.path)
        return Trickled(response, body_fault)
    if body_fault is not None and body_fault.kind in FILES_ONLY and _served(response):
        log.info("fault %s on the body of %s", body_fault.kind, request.url.path)
        return FaultyBody(response, body_fault)
    return response


def _served(response: Response) -> bool:
    """Whether a file is really served (its body faults apply; a 403/404 answer goes out unchanged)."""
    return 200 <= response.status_code < 300


def _without_results(sim: Simulator, response: Response, fault: Fault) -> Response:
    """A ``no_results`` fault: the same success answer, with its result links gone."""
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        return response
    if not isinstance(body, dict) or not strip_results(body.get("data"), fault.params.get("shape", "missing")):
        return response
    sim.faults.consume(fault)
    log.info("fault no_results on a status answer")
    return JSONResponse(body, status_code=response.status_code)


def _with_link(response: Response, fault: Fault) -> Response:
    """A ``link`` fault: the same upload answer, its file link replaced by the fault's."""
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        return response
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return response
    log.info("fault link on an upload answer")
    for name in ("downloadUrl", "fileUrl"):
        if name in data:
            data[name] = fault.params["url"]
    return JSONResponse(body, status_code=response.status_code)


def _endpoint(sim: Simulator, route: SimRoute) -> Route:
    async def endpoint(request: Request) -> Response:
        response = await _run(sim, route, request)
        if route.category != "files":
            sim.persist()  # a simulator with a state file keeps what this request changed (persist.py)
        return response

    endpoint.__name__ = route.handler.__name__
    return Route(route.path, endpoint, methods=[route.method])


# -- common endpoints ----------------------------------------------------------------------


async def credit(ctx: Ctx) -> Response:
    """``data`` is a bare number (KIE docs), fractional when the balance is."""
    return ctx.ok(number(ctx.sim.balance(ctx.account)))


async def download_url(ctx: Ctx) -> Response:
    """``data`` is a bare string: a fresh link valid ``download_url_ttl_seconds`` (20 min)."""
    body = await ctx.json_object()
    url = body.get("url")
    if not isinstance(url, str) or not url.strip():
        raise KieError(422, "url is required")
    target = ctx.sim.resolve_sim_url(url.strip())
    if target is None and not ctx.sim.config.mint_unknown_urls:
        raise KieError(422, "The url is not a file generated by KIE; only KIE file URLs are supported")
    link = ctx.sim.mint_link(target)
    name = (target or urlsplit(url.strip()).path).rsplit("/", 1)[-1] or "file"
    return ctx.ok(f"{ctx.base_url}/dl/{link.token}/{quote(name)}")


def _blob_response(blob: Blob) -> Response:
    if blob.data is not None:
        return Response(blob.data, media_type=blob.mime)
    return StreamingResponse(
        media.video_stream(blob.clip or "", blob.size, blob.seconds),
        media_type=blob.mime,
        headers={"content-length": str(blob.size)},
    )


def _expired(sim: Simulator) -> Response:
    """What a result link past its time answers: 403, or an error message with 200 (``expired_link_page``)."""
    page = sim.config.expired_link_page
    if page == "none":
        return PlainTextResponse(LINK_EXPIRED, status_code=403)
    body, mime = EXPIRED_PAGES[page]
    return Response(body, status_code=200, media_type=mime)


async def serve_file(ctx: Ctx) -> Response:
    """Result and upload files: no auth, 403 once the result URL expired (or ``_expired``'s page), 404 when unknown
    or deleted."""
    try:
        return _blob_response(ctx.sim.lookup_file(ctx.request.url.path))
    except FileError as err:
        if err.text == LINK_EXPIRED:
            return _expired(ctx.sim)
        return PlainTextResponse(err.text, status_code=err.status)


async def serve_link(ctx: Ctx) -> Response:
    """download-url links: 403 (or ``_expired``'s page) after 20 virtual minutes, 404 for links minted for unknown
    URLs."""
    link = ctx.sim.links.get(ctx.request.path_params["token"])
    if link is None:
        return PlainTextResponse("Not Found", status_code=404)
    if ctx.sim.now() >= link.expires_at:
        return _expired(ctx.sim)
    if link.target is None:
        return PlainTextResponse("Not Found", status_code=404)
    try:
        return _blob_response(ctx.sim.lookup_file(link.target, check_ttl=False))
    except FileError as err:
        return PlainTextResponse(err.text, status_code=err.status)


COMMON_ROUTES = [
    SimRoute(CREDIT_PATH, "GET", "credit", credit),
    SimRoute(DOWNLOAD_URL_PATH, "POST", "download-url", download_url),
    SimRoute("/files/{path:path}", "GET", "files", serve_file, auth=False),
    SimRoute("/dl/{token}/{name:path}", "GET", "files", serve_link, auth=False),
]

# A new family adds its module's ROUTES here.
FAMILY_ROUTES: list[SimRoute] = [
    *market.ROUTES,
    *veo.ROUTES,
    *runway.ROUTES,
    *aleph.ROUTES,
    *gpt4o.ROUTES,
    *flux.ROUTES,
    *uploads.ROUTES,
    *models.ROUTES,
    *COMMON_ROUTES,
]


def create_app(sim: Simulator) -> Starlette:
    """One ASGI app for all KIE hosts and the ``/__sim`` controls, bound to ``sim``."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/__sim"):
            return JSONResponse({"ok": False, "error": exc.detail}, status_code=exc.status_code)
        await _record(sim, request)
        key = "message" if sim.config.message_key else "msg"
        body = {"code": exc.status_code, key: exc.detail, "data": None}
        return JSONResponse(body, status_code=exc.status_code)  # a real 404/405, whatever strict_http says

    routes = [_endpoint(sim, r) for r in FAMILY_ROUTES] + controls.routes(sim)
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
