"""The connections to KIE and to the file hosts, each against a promise: an answer is only ever taken as the answer to
the request it was sent for, whatever bytes an upstream sends past it, and the key never goes to a proxy in the
clear. Driven through the MCP client, the server reaching the simulator over real TCP (``RawFront`` where an upstream
sends bytes past an answer's Content-Length, which no HTTP server library sends; ``served_over_tcp`` elsewhere)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx2
import pytest
from mcp import Client
from PIL import Image

from kie_mcp.server import create_server

from .conftest import CREATE_PATHS, answering, served_over_tcp, text_of
from .rawfront import RawFront, http_answer, kie_answer

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2", "wait_seconds": 10}
EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit", "wait_seconds": 0}
CREDIT = "/api/v1/chat/credit"


@asynccontextmanager
async def server_at(settings: Any, mode: str, base: str) -> AsyncIterator[Client]:
    """A server whose KIE (API and upload host) is ``base``, over the network: no test transport."""
    pointed = replace(settings, base_url=base, upload_base_url=base)
    async with Client(create_server(pointed), mode=mode, elicitation_callback=answering()) as client:
        yield client


def picture(color: tuple[int, int, int]) -> bytes:
    from io import BytesIO

    out = BytesIO()
    Image.new("RGB", (64, 64), color).save(out, "PNG")
    return out.getvalue()


# -- 1. bytes past an answer's Content-Length are never another request's answer -------------------------------------


async def test_bytes_sent_past_an_answer_never_become_a_creates_answer_and_the_task_kie_made_is_kept(
    sim, settings, mode
):
    """The create went out on the kept-alive connection of the balance read before it, and read the bytes sent past
    the balance's answer as its own: kie-mcp recorded a task KIE never made, and the one KIE made and charged was in
    no journal and never followed."""
    front = RawFront(sim)
    async with front.serving() as base:
        front.after[CREDIT] = [kie_answer({"taskId": "smuggled-task"})]
        async with server_at(settings, mode, base) as client:
            made = await client.call_tool("generate_image", IMAGE)
            listed = await client.call_tool("list_tasks", {})
    assert front.after[CREDIT] == [], front.requests  # the balance was read, its extra bytes sent
    [made_by_kie] = sim.tasks
    [task] = made.structured_content["tasks"]
    assert task["task_id"] == made_by_kie, text_of(made)
    assert task["state"] == "succeeded" and task["files"], text_of(made)
    assert "smuggled" not in text_of(made) + text_of(listed), text_of(listed)


async def test_bytes_a_file_host_sends_past_a_file_are_never_saved_as_the_next_result(sim, settings, mode, tmp_path):
    """The next result was fetched on the kept-alive connection of the one before, and saved from the bytes the file
    host sent past that file (another picture) instead of from what it sent for it."""
    other = picture((20, 20, 220))
    front = RawFront(sim)
    async with front.serving() as base:
        front.after["/files/"] = [http_answer(other, "image/png")]
        async with server_at(settings, mode, base) as client:
            made = [await client.call_tool("generate_image", {**IMAGE, "prompt": p}) for p in ("a pear", "a plum")]
        served = {}
        for answer in made:
            [task] = answer.structured_content["tasks"]
            [url] = task["result_urls"]
            [saved] = task["files"]
            fetched = await front.inner.handle_async_request(httpx2.Request("GET", url))
            served[saved] = b"".join([chunk async for chunk in fetched.aiter_raw()])
    assert front.after["/files/"] == [], front.requests
    for saved, content in served.items():
        assert (tmp_path / saved).read_bytes() == content != other, saved


async def test_bytes_sent_past_an_upload_answer_never_become_the_next_uploads_link(sim, settings, mode, tmp_path):
    """The second input's upload read the bytes sent past the first's answer as its own: the paid create was sent
    with a link to a file that was not the one approved."""
    for name, color in (("one.png", (200, 60, 40)), ("two.png", (40, 160, 60))):
        Image.new("RGB", (600, 400), color).save(tmp_path / name)
    front = RawFront(sim)
    async with front.serving() as base:
        front.after["/api/file-"] = [kie_answer({"downloadUrl": "https://files.example.com/not-yours.png"})]
        async with server_at(settings, mode, base) as client:
            made = await client.call_tool("generate_image", {**EDIT, "images": ["one.png", "two.png"]})
    assert not made.is_error, text_of(made)
    assert front.after["/api/file-"] == [], front.requests
    [create] = [r for r in sim.requests if r.path in CREATE_PATHS]
    links = create.body["input"]["image_urls"]
    assert len(links) == 2 and all(link.startswith(base) for link in links), links


# -- 2. the key never goes to a proxy in the clear ---------------------------------------------------------------------


class RecordingProxy:
    """A proxy that records the head of every request it is sent and refuses it (HTTP 403)."""

    def __init__(self) -> None:
        self.heads: list[str] = []

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        finally:
            server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.heads.append((await reader.readuntil(b"\r\n\r\n")).decode("latin-1"))
            writer.write(http_answer(b"refused", "text/plain", status=403))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def proxied(monkeypatch: pytest.MonkeyPatch, proxy: str, *names: str) -> None:
    """The environment naming ``proxy`` under each of ``names`` (upper and lower case), and no NO_PROXY."""
    for name in names:
        monkeypatch.setenv(name, proxy)
        monkeypatch.setenv(name.lower(), proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


async def test_the_key_never_goes_to_a_proxy_the_environment_names_when_kie_is_plain_http_on_this_machine(
    sim, settings, mode, monkeypatch, tmp_path
):
    """KIE_BASE_URL=http://127.0.0.1:<port> (a proxy or simulator on this machine, as the README allows) with
    HTTP_PROXY set, as on many corporate machines: every request went to that proxy, its Authorization header (the
    key) in the clear. A loopback address needs no proxy: balance, upload, create, status and result file all go
    straight to it."""
    Image.new("RGB", (600, 400), (200, 60, 40)).save(tmp_path / "photo.png")
    proxy = RecordingProxy()
    async with proxy.serving() as proxy_url, served_over_tcp(sim) as base:
        proxied(monkeypatch, proxy_url, "HTTP_PROXY", "ALL_PROXY")
        async with server_at(settings, mode, base) as client:
            credits = await client.call_tool("check_credits", {})
            made = await client.call_tool("generate_image", {**EDIT, "images": ["photo.png"], "wait_seconds": 10})
    assert proxy.heads == []
    assert not credits.is_error, text_of(credits)
    [task] = made.structured_content["tasks"]
    assert task["state"] == "succeeded" and task["files"], text_of(made)


async def test_an_https_kie_is_still_reached_through_the_proxy_the_environment_names(settings, mode, monkeypatch):
    """A corporate machine reaches the internet only through its proxy: over https, the proxy relays the encrypted
    connection (CONNECT), and never sees the key."""
    proxy = RecordingProxy()
    async with proxy.serving() as proxy_url:
        proxied(monkeypatch, proxy_url, "HTTPS_PROXY")
        async with server_at(settings, mode, "https://api.kie.test") as client:
            credits = await client.call_tool("check_credits", {})
    assert credits.is_error, text_of(credits)  # the proxy refused the tunnel
    assert proxy.heads and all(head.startswith("CONNECT api.kie.test:443 ") for head in proxy.heads), proxy.heads
    assert all("authorization" not in head.lower() for head in proxy.heads), proxy.heads
