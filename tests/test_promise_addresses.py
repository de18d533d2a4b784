"""Promise: kie-mcp never fetches this machine or a private network for a URL it was given (no SSRF).

Measuring an input's length (per-second-of-input prices) and saving results are the two places kie-mcp fetches
URLs itself. A URL, or a redirect, to loopback, private, link-local (cloud metadata), reserved or multicast
addresses is refused before any request, with a clear error; the configured KIE endpoints and the in-process
sandbox are the exceptions. Real-network cases use a local HTTP server on 127.0.0.1 that must see no request;
"a public name resolving to a private address" uses an injected resolver, never real DNS.
"""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import threading
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from PIL import Image
from pydantic import SecretStr

from kie_mcp.config import Settings
from kie_mcp.media import addresses
from kie_mcp.media.addresses import PrivateAddress, check_peer, check_url, literal_address, trust_endpoints
from kie_mcp.media.downloads import DownloadError, download
from kie_mcp.media.duration import measure_url
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .conftest import answering, served_over_tcp, text_of

AVATAR = "kling/ai-avatar-standard"  # 8 credits per second of the input audio


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


async def streamed(data: bytes) -> AsyncIterator[bytes]:
    """A body the client counts as it arrives (a MockTransport's in-memory content is not counted)."""
    yield data


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, "PNG")
    return buf.getvalue()


class Internal:
    """An "internal-only" HTTP server on 127.0.0.1: records every request; /redirect?to=URL answers 302."""

    def __init__(self, body: bytes, mime: str, host: str = "127.0.0.1") -> None:
        self.hits: list[str] = []
        hits, payload = self.hits, body

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                if self.path.startswith("/redirect?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.removeprefix("/redirect?to="))
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.httpd.server_port
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fresh set of trusted endpoints, and a resolver that records lookups and fails (no real DNS here)."""
    monkeypatch.setattr(addresses, "_TRUSTED", set())
    looked_up: list[str] = []

    async def no_dns(host: str, port: int | None) -> list[str]:
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "no DNS in tests")

    monkeypatch.setattr(addresses, "resolve_host", no_dns)
    return looked_up


@pytest.fixture
def internal() -> Iterator[Internal]:
    server = Internal(wav_bytes(7.0), "audio/wav")
    yield server
    server.close()


def resolving_to(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    async def resolve(host: str, port: int | None) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, host)
        return table[host]

    monkeypatch.setattr(addresses, "resolve_host", resolve)


# -- the rule ----------------------------------------------------------------------------------------------

PRIVATE_HOSTS = [
    "127.0.0.1",
    "127.1",  # the short forms the C resolver reads as 127.0.0.1
    "0x7f.1",
    "0x7f000001",
    "2130706433",
    "017700000001",
    "0177.1",
    "0x7f.0.0.1",
    "127.0.0.1.",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:a9fe:a9fe]",  # 169.254.169.254, IPv4-mapped
    "[2002:a9fe:a9fe::]",  # 6to4
    "[64:ff9b::a9fe:a9fe]",  # NAT64
    "169.254.169.254",
    "[fe80::1]",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "[fc00::1]",
    "0.0.0.0",
    "0",
    "[::]",
    "224.0.0.1",
    "[ff02::1]",
    "255.255.255.255",
    "240.0.0.1",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
async def test_loopback_private_link_local_reserved_and_multicast_hosts_are_refused_without_dns(
    host: str, isolated: list[str]
) -> None:
    async with httpx2.AsyncClient() as client:  # httpx2's network transport, as kie-mcp uses outside the sandbox
        with pytest.raises(PrivateAddress) as refused:
            await check_url(client, f"http://{host}:8080/a.wav")
    assert "points at this machine or a private network" in refused.value.message
    assert isolated == []  # a literal (or localhost) needs no lookup


@pytest.mark.parametrize("host", ["8.8.8.8", "93.184.216.34", "[2606:4700::1]", "1.1"])
async def test_public_addresses_pass(host: str) -> None:
    async with httpx2.AsyncClient() as client:
        await check_url(client, f"https://{host}/a.wav")


def test_ip_literals_are_read_as_the_resolver_reads_them() -> None:
    assert str(literal_address("0x7f.1")) == "127.0.0.1"
    assert str(literal_address("2130706433")) == "127.0.0.1"
    assert str(literal_address("0251.0376.0251.0376")) == "169.254.169.254"
    assert str(literal_address("10.1")) == "10.0.0.1"
    assert literal_address("cdn.example.com") is None and literal_address("123abc.de") is None
    assert literal_address("256.1.1.1") is None  # not an address: a name (looked up like any other)


async def test_a_public_name_that_resolves_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    resolving_to(
        monkeypatch,
        {
            "metadata.example": ["169.254.169.254"],
            "mixed.example": ["93.184.216.34", "10.0.0.7"],
            "public.example": ["93.184.216.34", "2606:2800:220:1::"],
        },
    )
    async with httpx2.AsyncClient() as client:
        with pytest.raises(PrivateAddress, match=r"metadata\.example resolves to a link-local address"):
            await check_url(client, "http://metadata.example/latest/meta-data/")
        with pytest.raises(PrivateAddress, match=r"10\.0\.0\.7"):
            await check_url(client, "https://mixed.example/a.mp4")
        await check_url(client, "https://public.example/a.mp4")
        await check_url(client, "https://unresolvable.example/a.mp4")  # fails the same way when fetched


async def test_the_configured_kie_endpoints_and_the_sandbox_are_fetched_without_checks_or_dns(
    isolated: list[str],
) -> None:
    trust_endpoints("http://127.0.0.1:8790", "http://127.0.0.1:8790/")  # kie-mcp sim --port 8790
    async with httpx2.AsyncClient() as client:
        await check_url(client, "http://127.0.0.1:8790/files/t1/0.png")
        with pytest.raises(PrivateAddress):  # only that port: other services on this machine stay out of reach
            await check_url(client, "http://127.0.0.1:8791/files/t1/0.png")
    sandbox = SandboxTransport(Simulator(SimConfig(speed=0)))
    async with httpx2.AsyncClient(transport=sandbox) as client:
        await check_url(client, "http://10.0.0.1/x.wav")  # never leaves the process
        await check_url(client, "https://cdn.example/x.wav")
    assert isolated == []


async def test_an_answer_from_a_connection_that_reached_a_private_address_is_not_read() -> None:
    """DNS rebinding: the name was public when checked, private when connected. The peer is checked before any
    byte of the answer is read."""

    class Stream:
        def get_extra_info(self, info: str) -> Any:
            return ("127.0.0.1", 8080) if info == "server_addr" else None

    url = httpx2.URL("https://rebind.example/a.wav")
    response = httpx2.Response(200, extensions={"network_stream": Stream()})
    async with httpx2.AsyncClient() as client:
        with pytest.raises(PrivateAddress, match="the connection reached a loopback address"):
            check_peer(client, url, response)


# -- measuring an input's length ---------------------------------------------------------------------------


async def test_measuring_never_requests_a_private_url(internal: Internal) -> None:
    async with httpx2.AsyncClient() as client:
        for url in (f"{internal.base}/admin/secret.wav", f"http://localhost:{internal.port}/admin/secret.wav"):
            with pytest.raises(PrivateAddress):
                await measure_url(client, url)
    assert internal.hits == []


async def test_measuring_never_follows_a_redirect_to_a_private_url(internal: Internal) -> None:
    """The first hop is allowed (a configured endpoint here); its redirect to another loopback port is not."""
    other = Internal(wav_bytes(7.0), "audio/wav")
    try:
        trust_endpoints(other.base)
        secret = f"{internal.base}/admin/secret.wav"
        async with httpx2.AsyncClient() as client:
            with pytest.raises(PrivateAddress) as refused:
                await measure_url(client, f"{other.base}/redirect?to={secret}")
            assert await measure_url(client, f"{other.base}/line.wav") == pytest.approx(7.0)  # trusted: measured
    finally:
        other.close()
    assert f"redirects to {secret}" in refused.value.message
    assert internal.hits == []


async def test_measuring_reads_nothing_from_a_name_that_resolves_elsewhere_when_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding over real TCP: the check sees a public address, the connection lands on this machine."""
    name = socket.gethostname()
    try:
        real = {info[4][0] for info in socket.getaddrinfo(name, 80, 0, socket.SOCK_STREAM)}
    except OSError:
        pytest.skip("this machine's name does not resolve")
    if not real or any(literal_address(a.split("%")[0]) and not addresses.refusal(literal_address(a)) for a in real):
        pytest.skip("this machine's name does not resolve to a private address")
    server = Internal(wav_bytes(7.0), "audio/wav", host="")
    resolving_to(monkeypatch, {name.lower(): ["93.184.216.34"]})
    try:
        async with httpx2.AsyncClient() as client:
            with pytest.raises(PrivateAddress, match="the connection reached"):
                await measure_url(client, f"http://{name}:{server.port}/secret.wav")
    finally:
        server.close()


# -- the address connected to is the address judged (result files over the network) ------------------------


class Sockets:
    """The socket layer under httpx2 (httpcore2's backend), recorded: where each connection was asked to go. No
    connection leaves this machine: an address in ``answering`` gets a canned HTTP answer, any other fails."""

    def __init__(self, answering: dict[str, bytes]) -> None:
        self.asked: list[tuple[str, int]] = []
        self.answering = answering

    async def connect_tcp(self, host: str, port: int, **_: Any) -> Any:
        import httpcore2

        self.asked.append((host, port))
        if host not in self.answering:
            raise httpcore2.ConnectError(f"{host} does not answer (tests reach no network)")
        body = self.answering[host]
        head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        return httpcore2.AsyncMockStream([head, body])


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> Sockets:
    import httpcore2

    recorded = Sockets({"1.1.1.1": png_bytes()})

    async def connect_tcp(_: Any, host: str, port: int, **options: Any) -> Any:
        return await recorded.connect_tcp(host, port, **options)

    monkeypatch.setattr(httpcore2.AnyIOBackend, "connect_tcp", connect_tcp)
    return recorded


def rebinding(monkeypatch: pytest.MonkeyPatch, first: list[str], then: list[str]) -> list[str]:
    """A resolver answering ``first`` to the first lookup of each name and ``then`` to every later one; returns
    the names looked up, in order."""
    looked_up: list[str] = []

    async def resolve(host: str, port: int | None) -> list[str]:
        looked_up.append(host)
        return first if looked_up.count(host) == 1 else then

    monkeypatch.setattr(addresses, "resolve_host", resolve)
    return looked_up


@pytest.fixture
async def kie_files() -> AsyncIterator[httpx2.AsyncClient]:
    """The client kie-mcp saves results and measures inputs with, on the real network stack."""
    from kie_mcp.kie.client import KieClient

    kie = KieClient(api_key="sk-test", base_url="https://api.kie.test", upload_base_url="https://upload.kie.test")
    try:
        yield kie.files
    finally:
        await kie.aclose()


async def test_a_result_file_is_fetched_from_the_very_address_that_was_judged_public(
    monkeypatch: pytest.MonkeyPatch, sockets: Sockets, kie_files: httpx2.AsyncClient, tmp_path: Path
) -> None:
    """DNS rebinding: a name public when looked up and this machine the next time is looked up once, and the
    connection goes to the address judged, never to the name (whose next lookup would lead here). An address that
    does not answer is passed over for the next."""
    looked_up = rebinding(monkeypatch, ["2606:4700:4700::1111", "1.1.1.1"], ["127.0.0.1"])
    saved = await download(kie_files, "https://cdn.test/r/a.png", tmp_path / "a.png", expected="image")
    assert sockets.asked == [("2606:4700:4700::1111", 443), ("1.1.1.1", 443)]
    assert looked_up == ["cdn.test"]
    assert saved.mime == "image/png" and (tmp_path / "a.png").read_bytes() == png_bytes()


async def test_a_name_resolving_to_a_private_address_when_connecting_is_never_connected_to(
    monkeypatch: pytest.MonkeyPatch, sockets: Sockets, kie_files: httpx2.AsyncClient, tmp_path: Path
) -> None:
    rebinding(monkeypatch, ["1.1.1.1", "10.0.0.7"], ["1.1.1.1"])
    url = "https://cdn.test/r/a.png"
    with pytest.raises(DownloadError) as refused:
        await download(kie_files, url, tmp_path / "a.png", expected="image")
    assert sockets.asked == []
    assert refused.value.refused
    assert f"{url} points at this machine or a private network (cdn.test resolves to a private address, 10.0.0.7)" in (
        str(refused.value)
    )
    assert not (tmp_path / "a.png").exists()


async def test_the_configured_kie_endpoint_is_connected_to_by_name(
    sockets: Sockets, kie_files: httpx2.AsyncClient, tmp_path: Path, isolated: list[str]
) -> None:
    """``kie-mcp sim --port`` on 127.0.0.1, or a KIE host whose name the system resolves: not judged here."""
    trust_endpoints("https://api.kie.test")
    with pytest.raises(DownloadError):
        await download(kie_files, "https://api.kie.test/files/a.png", tmp_path / "a.png", expected="image")
    assert sockets.asked == [("api.kie.test", 443)] and isolated == []


class Routing(httpx2.AsyncBaseTransport):
    """KIE's hosts (*.kie.test) go to the in-process simulator, every other host to the real network (as the
    auditor's repro). ``result`` (when set) replaces the result links of every Market status answer: a hostile
    or broken upstream."""

    def __init__(self, sim: Simulator) -> None:
        self.sandbox = SandboxTransport(sim)
        self.real = httpx2.AsyncHTTPTransport()
        self.result: str | None = None
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if not request.url.host.endswith("kie.test"):
            self.sent.append(str(request.url))
            return await self.real.handle_async_request(request)
        response = await self.sandbox.handle_async_request(request)
        if self.result is None or not request.url.path.endswith("/jobs/recordInfo"):
            return response
        answer = json.loads(await response.aread())
        data = answer.get("data") or {}
        if data.get("resultJson"):
            data["resultJson"] = json.dumps({"resultUrls": [self.result]})
        return httpx2.Response(response.status_code, json=answer)


class SeenAsTheNetwork(httpx2.AsyncHTTPTransport):
    """``Routing`` as kie-mcp sees httpx2's own network transport: names in result links are resolved (with the
    test's resolver) and judged, as they would be on a real network."""

    def __init__(self, inner: Routing) -> None:
        super().__init__()
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.inner.handle_async_request(request)


def served(tmp_path: Path, transport: httpx2.AsyncBaseTransport) -> Any:
    settings = Settings(
        api_key=SecretStr(SANDBOX_API_KEY),
        base_url="http://api.kie.test",
        upload_base_url="http://upload.kie.test",
        workspace=tmp_path,
        poll_min_interval=0.01,
        poll_max_interval=0.05,
        catalog_sync=False,
    )
    return create_server(settings, transport=transport)


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_a_private_input_url_is_refused_before_pricing_or_asking(
    internal: Internal, tmp_path: Path, mode: str
) -> None:
    """The auditor's repro: estimate_cost and generate_video with an audio_url on this machine, a redirect to
    it, or the cloud metadata address. Each is refused, naming the field; nothing is requested, asked or sent."""
    Image.new("RGB", (1200, 1200), "tan").save(tmp_path / "face.png")
    sim = Simulator(SimConfig(speed=1000.0))
    transport = Routing(sim)
    asked: list[str] = []
    urls = (
        f"{internal.base}/admin/secret.wav",
        f"http://localhost:{internal.port}/redirect",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:7f00:1]/admin/secret.wav",
    )
    async with Client(served(tmp_path, transport), mode=mode, elicitation_callback=answering(seen=asked)) as client:
        for url in urls:
            args = {"model": AVATAR, "prompt": "a presenter", "options": {"image_url": "face.png", "audio_url": url}}
            for tool in ("estimate_cost", "generate_video"):
                result = await client.call_tool(tool, args)
                text = text_of(result)
                assert result.is_error, text
                assert "audio_url" in text and url in text, text
                assert "points at this machine or a private network" in text, text
                assert "pass a public URL or a local file path" in text, text
    assert internal.hits == [] and transport.sent == [] and asked == []
    assert not [r for r in sim.requests if r.path.endswith("createTask")]


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_an_input_link_kie_cannot_reach_is_refused_before_anyone_is_asked(tmp_path: Path, mode: str) -> None:
    """An image link to this machine or the local network was priced, approved and sent: KIE cannot fetch it, so
    the paid task could only fail. Refused from the link alone (no DNS lookup), naming the field."""
    sim = Simulator(SimConfig(speed=1000.0))
    transport = Routing(sim)
    asked: list[str] = []
    links = (
        "http://localhost:8080/x.png",
        "http://192.168.1.20/x.png",
        "http://[::1]/x.png",
        "http://nas/x.png",
        "http://printer.local/x.png",
        "https://files.home.arpa/x.png",
    )
    async with Client(served(tmp_path, transport), mode=mode, elicitation_callback=answering(seen=asked)) as client:
        for link in links:
            args = {"model": "google/nano-banana-edit", "prompt": "make it blue", "images": [link]}
            for tool in ("estimate_cost", "generate_image"):
                result = await client.call_tool(tool, args)
                assert result.is_error and link in text_of(result), text_of(result)
                assert "KIE cannot reach either; pass a public URL or a local file path" in text_of(result)
        public = await client.call_tool(
            "estimate_cost",
            {"model": "google/nano-banana-edit", "prompt": "x", "images": ["https://example.com/x.png"]},
        )
    assert not public.is_error, text_of(public)  # a public name passes: how KIE resolves it is KIE's to say
    assert asked == [] and not [r for r in sim.requests if r.path.endswith("createTask")]


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_a_link_with_whitespace_around_it_is_judged_and_sent_without_it(tmp_path: Path, mode: str) -> None:
    """The audit: "http://127.0.0.1/cat.png\n" (a line copied with its newline) and "http://192.168.1.20/cat.png\t"
    were quoted, approved and sent: httpx could not parse them, and a link it could not parse was left to KIE. The
    whitespace around a link is taken off before it is judged (so these are refused, naming the field) and before it
    is sent (a public one reaches KIE without it, its scheme in lower case); whitespace or a control character inside
    a link, or a link with no host, is refused, never left unjudged."""
    sim = Simulator(SimConfig(speed=1000.0))
    asked: list[str] = []
    edit = {"model": "google/nano-banana-edit", "prompt": "make it blue", "wait_seconds": 0}
    refused = {
        "http://127.0.0.1/cat.png\n": "points at this machine or a private network",
        "http://192.168.1.20/cat.png\t": "points at this machine or a private network",
        " \thttp://[::1]/cat.png \r\n": "points at this machine or a private network",
        "https://example.com/a b.png": "has a space inside it",
        "https://example.com/a\nb.png": "has a control character ('\\n') inside it",
        "https://example.com/\u200bcat.png": "has a space or invisible character ('\\u200b') inside it",
        "\u200bhttp://127.0.0.1/cat.png\u200b": "points at this machine or a private network",  # copied from a chat
        "http:///cat.png": "names no host",
        "https://exa mple.com/cat.png": "has a space inside it",
    }
    async with Client(served(tmp_path, Routing(sim)), mode=mode, elicitation_callback=answering(seen=asked)) as c:
        for link, said in refused.items():
            for tool in ("estimate_cost", "generate_image"):
                result = await c.call_tool(tool, {**edit, "images": [link]})
                assert result.is_error and "images[0]" in text_of(result) and said in text_of(result), text_of(result)
        assert asked == [] and not [r for r in sim.requests if r.path.endswith("createTask")]
        sent = await c.call_tool("generate_image", {**edit, "images": ["\ufeff HTTPS://example.com/cat.png\u200b\n"]})
    assert not sent.is_error, text_of(sent)
    [create] = [r for r in sim.requests if r.path.endswith("createTask")]
    assert create.body["input"]["image_urls"] == ["https://example.com/cat.png"], create.body


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_links_inside_an_object_field_are_judged_as_the_media_fields_are(tmp_path: Path, mode: str) -> None:
    """The audit: Kling's elements (element_input_urls inside kling_elements) skipped every input check: a local
    path, a private link and a path to .env were priced at 90 credits and sent, three paid creates KIE could only
    fail. Each is refused before anyone is asked, naming the field."""
    sim = Simulator(SimConfig(speed=1000.0))
    asked: list[str] = []
    cases = {
        "http://10.0.0.7/a.png": "KIE cannot reach either",
        "references/cat2.png": "Upload it first with upload_file",
        str(tmp_path / ".env"): "Upload it first with upload_file",
    }
    async with Client(served(tmp_path, Routing(sim)), mode=mode, elicitation_callback=answering(seen=asked)) as c:
        for link, said in cases.items():
            element = {"name": "cat", "description": "a cat", "element_input_urls": ["https://example.com/1.png", link]}
            args = {"model": "kling-3.0/video", "prompt": "@cat runs", "options": {"kling_elements": [element]}}
            for tool in ("estimate_cost", "generate_video"):
                result = await c.call_tool(tool, args)
                assert result.is_error and said in text_of(result), text_of(result)
                assert "kling_elements[0].element_input_urls[1]" in text_of(result), text_of(result)
    assert asked == [] and not [r for r in sim.requests if r.path.endswith("createTask")]


async def test_an_input_link_holding_the_key_is_never_fetched_to_be_measured_nor_sent(tmp_path: Path) -> None:
    """The audit: estimate_cost fetched an audio link with the key in its query from a third-party host, to measure
    its length for a per-second price: the key went to that host before anyone approved anything."""
    sim = Simulator(SimConfig(speed=1000.0))
    transport = Routing(sim)
    link = f"https://voice.example/v.wav?k={SANDBOX_API_KEY}"
    options = {"image_url": "https://example.com/f.png", "audio_url": link}
    async with Client(served(tmp_path, transport)) as client:
        result = await client.call_tool("estimate_cost", {"model": AVATAR, "prompt": "a presenter", "options": options})
    assert result.is_error and "holds the KIE API key" in text_of(result), text_of(result)
    assert SANDBOX_API_KEY not in text_of(result)
    assert not [r for r in sim.requests if r.path.endswith("createTask")]


# -- saving results ----------------------------------------------------------------------------------------


async def test_a_result_link_redirecting_to_a_private_address_is_not_followed(tmp_path: Path) -> None:
    seen: list[str] = []

    def cdn(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        if request.url.host == "cdn.example":
            return httpx2.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        return httpx2.Response(200, content=streamed(png_bytes()))

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(cdn)) as client:
        with pytest.raises(DownloadError) as refused:
            await download(client, "https://cdn.example/r.png", tmp_path / "r.png", expected="image")
        saved = await download(client, "https://cdn2.example/r.png", tmp_path / "ok.png", expected="image")
    assert seen == ["https://cdn.example/r.png", "https://cdn2.example/r.png"]
    assert refused.value.refused and not refused.value.retryable and not refused.value.expired
    assert "redirects to http://169.254.169.254/latest/meta-data/" in refused.value.message
    assert saved.path.name == "ok.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png"]  # noqa: ASYNC240


async def test_a_reminted_link_to_a_private_address_is_not_fetched(internal: Internal, tmp_path: Path) -> None:
    """An expired link is renewed through KIE's download-url; the fresh link is checked like the first."""

    def cdn(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(403)

    async def remint(url: str) -> str:
        return f"{internal.base}/r.png"

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(cdn)) as client:
        with pytest.raises(DownloadError) as refused:
            await download(client, "https://cdn.example/r.png", tmp_path / "r.png", remint=remint)
    assert refused.value.refused and "points at this machine or a private network" in refused.value.message
    assert internal.hits == [] and list(tmp_path.iterdir()) == []  # noqa: ASYNC240


async def test_a_result_link_from_the_configured_kie_endpoint_is_saved(tmp_path: Path) -> None:
    """kie-mcp sim --port serves result files from 127.0.0.1: the configured endpoint keeps working."""
    server = Internal(png_bytes(), "image/png")
    try:
        trust_endpoints(server.base)
        async with httpx2.AsyncClient() as client:
            saved = await download(client, f"{server.base}/files/t1/0.png", tmp_path / "r.png", expected="image")
    finally:
        server.close()
    assert saved.mime == "image/png" and server.hits == ["/files/t1/0.png"]


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_a_status_answer_pointing_at_a_private_address_is_not_saved_and_keeps_the_task(
    tmp_path: Path, mode: str
) -> None:
    """A hostile or broken upstream names an internal URL as the result: nothing is fetched or saved, the answer
    says why, and the task (id, state, link) is kept."""
    server = Internal(png_bytes(), "image/png")
    sim = Simulator(SimConfig(speed=1000.0))
    transport = Routing(sim)
    transport.result = f"{server.base}/internal/secret.png"
    try:
        async with Client(served(tmp_path, transport), mode=mode, elicitation_callback=answering()) as client:
            result = await client.call_tool("generate_image", {"prompt": "A red apple", "model": "nano-banana-2"})
            task = result.structured_content["tasks"][0]
            listed = await client.call_tool("list_tasks", {})
    finally:
        server.close()
    text = text_of(result)
    assert task["task_id"] and task["state"] == "succeeded", text
    assert task["result_urls"] == [] and task["files"] == []  # the link is kept (the journal), never offered
    assert [r["index"] for r in task["refused_results"]] == [1], task
    assert "points at this machine or a private network" in text, text
    assert "tries again in the background" not in text  # a refused link is not a passing failure
    assert task["task_id"] in text_of(listed)
    assert server.hits == [] and transport.sent == []
    assert not (tmp_path / "outputs").exists() or not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]


async def test_a_refused_result_link_is_never_shown_as_the_result(tmp_path: Path) -> None:
    """The audit: a result link kie-mcp refused to fetch (a private address) was still given as the result: the log
    line said "Task ... succeeded: http://10.0.0.7/x.png" (the line counted it neither saved nor missing) and
    check_task listed it under "Results:". Each says it was not saved, and why; only links a person may open are
    offered. The review: the text hid it, but the structured content of generate, check_task and list_tasks and the
    kie://tasks resources still listed it under result_urls; now they name the refused result by its number and why
    (``refused_results``), never by its link, and only the journal keeps KIE's own list."""
    lines: list[str] = []

    async def on_log(params: Any) -> None:
        lines.append(str(params.data))

    sim = Simulator(SimConfig(speed=1000.0))
    transport = Routing(sim)
    transport.result = "http://10.0.0.7/x.png"
    server = served(tmp_path, transport)
    async with Client(server, mode="legacy", elicitation_callback=answering(), logging_callback=on_log) as client:
        made = await client.call_tool("generate_image", {"prompt": "A red apple", "model": "nano-banana-2"})
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id})
        with anyio.fail_after(5):
            while not [line for line in lines if task_id in line and "private network" in line]:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        listed = await client.call_tool("list_tasks", {})
        resource = (await client.read_resource(f"kie://tasks/{task_id}")).contents[0].text
        resources = (await client.read_resource("kie://tasks")).contents[0].text
    why = "not saved (refused: it points at this machine or a private network (a private address, 10.0.0.7))"
    told = [line for line in lines if task_id in line]
    assert told and all("http://10.0.0.7" not in line for line in told), told
    assert f"succeeded: result 1 {why}" in told[-1], told
    assert f"Result 1 {why}." in text_of(checked) and "Results:" not in text_of(checked), text_of(checked)
    assert f"{task_id}: succeeded: result 1 {why}" in text_of(made), text_of(made)
    assert transport.sent == []
    refused = {"index": 1, "reason": "it points at this machine or a private network (a private address, 10.0.0.7)"}
    for task in (made.structured_content["tasks"][0], checked.structured_content["task"]):
        assert task["result_urls"] == [] and task["refused_results"] == [refused], task
    [row] = [t for t in listed.structured_content["tasks"] if t["task_id"] == task_id]
    [shown] = [t for t in json.loads(resources)["tasks"] if t["task_id"] == task_id]
    for task in (row, json.loads(resource), shown):  # read from the journal: refused for pointing at 10.0.0.7
        assert task["result_urls"] == [] and [r["index"] for r in task["refused_results"]] == [1], task
    tasks = (made.structured_content["tasks"][0], checked.structured_content["task"], row)
    for seen in (*map(json.dumps, tasks), resource, resources):  # the records, anywhere in them
        assert "10.0.0.7/x.png" not in seen, seen
    journal = sqlite3.connect(tmp_path / ".kie-mcp" / "journal.sqlite3")
    try:  # KIE's own list, as it sent it
        kept = json.loads(journal.execute("SELECT record FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0])
    finally:
        journal.close()
    assert kept["result_urls"] == [transport.result] and "refused_results" not in kept


def _resolving_to_a_private_address(monkeypatch: pytest.MonkeyPatch, looked_up: list[str]) -> Routing:
    """A simulator whose result link names a host that resolves to 10.0.0.5 (each lookup noted in ``looked_up``)."""

    async def resolve(host: str, port: int | None) -> list[str]:
        looked_up.append(host)
        return ["10.0.0.5"]

    monkeypatch.setattr(addresses, "resolve_host", resolve)
    transport = Routing(Simulator(SimConfig(speed=1000.0)))
    transport.result = "http://results.internal.example/secret.png"
    return transport


async def test_a_result_link_refused_once_is_not_tried_again_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result link whose host resolves to a private address is refused for good: the follower's background saves
    (seven tries over 50 minutes, here scaled to about 15 s) would only look it up and refuse it again."""
    looked_up: list[str] = []
    transport = _resolving_to_a_private_address(monkeypatch, looked_up)
    async with Client(served(tmp_path, SeenAsTheNetwork(transport)), elicitation_callback=answering()) as client:
        result = await client.call_tool("generate_image", {"prompt": "A red apple", "model": "nano-banana-2"})
        assert "points at this machine or a private network" in text_of(result), text_of(result)
        tried = len(looked_up)
        await anyio.sleep(1.0)  # the first three background tries would have come at 0.15, 0.45 and 1.05 s
    assert tried >= 1 and len(looked_up) == tried
    assert transport.sent == []


async def test_a_result_link_refused_for_its_private_address_is_never_offered_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final read: the links kie-mcp refused lived in memory only, so after a restart (or on another server of the
    workspace) a name resolving to a private address, which nothing looks up when a record is shown, was offered
    as the result again. The journal's copy keeps the refusal, with why."""
    transport = _resolving_to_a_private_address(monkeypatch, [])
    async with Client(served(tmp_path, SeenAsTheNetwork(transport)), elicitation_callback=answering()) as client:
        made = await client.call_tool("generate_image", {"prompt": "A red apple", "model": "nano-banana-2"})
    task_id = made.structured_content["tasks"][0]["task_id"]
    async with Client(served(tmp_path, SeenAsTheNetwork(transport)), elicitation_callback=answering()) as client:
        checked = await client.call_tool("check_task", {"task_id": task_id})
        listed = await client.call_tool("list_tasks", {})
        resource = (await client.read_resource(f"kie://tasks/{task_id}")).contents[0].text
    [row] = [t for t in listed.structured_content["tasks"] if t["task_id"] == task_id]
    for task in (checked.structured_content["task"], row, json.loads(resource)):
        assert task["result_urls"] == [], task
        [refused] = task["refused_results"]
        assert refused["index"] == 1 and "private network" in refused["reason"], task
    for seen in (json.dumps(checked.structured_content["task"]["result_urls"]), json.dumps(row), resource):
        assert "results.internal.example/secret.png" not in seen, seen  # (the text says why it was not fetched)
    assert transport.sent == []


async def test_a_server_pointed_at_kie_mcp_sim_on_loopback_saves_its_results(
    tmp_path: Path, settings: Settings, monkeypatch
) -> None:
    """`kie-mcp sim --port` on 127.0.0.1 with KIE_BASE_URL pointing at it, over real TCP: the configured endpoint is
    trusted by the server itself (nothing trusted beforehand), so its result files are saved."""
    monkeypatch.setattr(addresses, "_TRUSTED", set())
    sim = Simulator(SimConfig(speed=1000.0))
    async with served_over_tcp(sim) as base:
        pointed = replace(settings, base_url=base, upload_base_url=base)  # no transport: real TCP to the simulator
        async with Client(create_server(pointed), elicitation_callback=answering()) as client:
            result = await client.call_tool("generate_image", {"prompt": "A red apple", "model": "nano-banana-2"})
    task = result.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["files"], text_of(result)
    assert (tmp_path / task["files"][0]).is_file()


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("64:ff9b::808:808", False),  # DNS64 (IPv6-only networks): a public IPv4 host, reached through NAT64
        ("64:ff9b::7f00:1", True),  # ... and 127.0.0.1 the same way
        ("::ffff:8.8.8.8", False),
        ("::ffff:10.0.0.1", True),
        ("198.18.0.7", False),  # a fake-IP proxy's answer (Clash, Surge): every name resolves in 198.18.0.0/15
    ],
)
def test_an_ipv6_form_of_a_public_address_and_a_fake_ip_proxy_answer_are_fetched(address, refused):
    """Every result link used to be refused on an IPv6-only network with DNS64 (64:ff9b::/96 is "reserved") and
    behind a proxy in fake-IP mode (198.18.0.0/15 is "private"): paid results never saved."""
    import ipaddress

    assert (addresses.refusal(ipaddress.ip_address(address)) is not None) is refused
