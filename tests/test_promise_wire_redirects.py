"""Redirects and slow links, each against a promise: a task whose status checks are redirected for a while is still
followed and saved; a create a front forwarded to KIE before answering a redirect is never called "nothing created";
advice names an address to set only when the API moved there; an upload is bounded by its deadline, not by one write;
a result link never fetched is never "not saved yet"; a plain-http address is named by its host. Driven through the
MCP client and the simulator (over real TCP where the connection's speed matters)."""

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.types import LoggingMessageNotificationParams

from kie_mcp.config import Settings
from kie_mcp.kie import client as kie_client
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, Simulator
from kie_mcp.server import create_server

from .conftest import answering, served_over_tcp, text_of
from .test_promise_config import everything_a_client_sees, fresh_key
from .test_promise_wire_edges import CREATE, CREDIT, IMAGE, RECORD, Rewriting, moved, result_link


@pytest.fixture
def transport(sim: Simulator) -> Rewriting:
    return Rewriting(SandboxTransport(sim))


class ForwardedThenRedirected(SandboxTransport):
    """A front that passes a create on to KIE (the simulator creates and charges the task), then answers the client
    with a redirect of ``status``: with KIE's own answer as its body (``pass_body``), or with none."""

    def __init__(self, sim: Simulator, status: int, *, pass_body: bool) -> None:
        super().__init__(sim)
        self.status, self.pass_body, self.creates = status, pass_body, 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        if request.url.path != CREATE:
            return response
        self.creates += 1
        body = await response.aread() if self.pass_body else b""
        location = {"location": f"https://api.kie.ai{CREATE}"}
        return httpx2.Response(self.status, content=body, headers=location, request=request)


# -- 1. a status check redirected for a while: still followed, saved once KIE answers -------------------------------


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_whose_status_checks_are_redirected_for_a_while_is_still_followed_and_saved(
    connect, transport, tmp_path
):
    """20 status checks answered HTTP 302 (a maintenance page, say), then normal: the follower counted each as a
    refusal, left the task after 8 ("no longer following it"), and saved it only at the hourly retry."""
    redirect = lambda request: httpx2.Response(  # noqa: E731
        302, headers={"location": "https://status.kie.ai/maintenance"}, request=request
    )
    transport.edge[RECORD] = [redirect] * 20
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        with anyio.fail_after(15):
            while True:
                [task] = [t for t in (await client.call_tool("list_tasks", {})).structured_content["tasks"]]
                if task["files"]:
                    break
                assert "no longer following" not in json.dumps(task), task
                await anyio.sleep(0.2)
    assert task["task_id"] == task_id and task["state"] == "succeeded", task
    assert transport.sent[RECORD] > 20 and not transport.edge[RECORD]
    assert list((tmp_path / "outputs").rglob(f"*{task_id}*"))


# -- 3. a create a front passed on to KIE, then answered with a redirect --------------------------------------------


@pytest.mark.parametrize(
    ("status", "pass_body"),
    [(307, True), (302, True), (303, True), (302, False)],
    ids=["307-kie-body", "302-kie-body", "303-kie-body", "302-empty"],
)
async def test_a_create_redirected_after_kie_made_it_is_unknown_and_keeps_its_task_id(
    sim, settings, mode, status, pass_body
):
    """A front forwarded the create (KIE created and charged it) and answered a redirect with KIE's own answer as
    its body: read as "nothing was created or charged", the reservation released, the task id dropped. KIE's body
    says KIE's API read it, and a 302 after a POST is the usual "acted on, see there": unknown, counted, never resent,
    and the task KIE named is said, to look up."""
    front = ForwardedThenRedirected(sim, status, pass_body=pass_body)
    server = create_server(settings, transport=front)
    async with Client(server, mode=mode, elicitation_callback=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    [task] = made.structured_content["tasks"]
    assert made.structured_content["status"] == "unknown", text_of(made)
    assert "nothing was created or charged" not in task["error"] and "Do not submit" in task["error"]
    assert credits["spent_today"] == 8 and credits["unknown_creates"] == 1
    assert front.creates == 1 and len(sim.tasks) == 1  # created once, never resent
    if pass_body:
        [made_id] = sim.tasks
        assert f"check_task(task_id='{made_id}')" in task["error"], task["error"]


# -- 4. "set it to that" only for an address the API moved to -------------------------------------------------------


async def test_a_redirect_to_a_page_that_is_not_kies_api_is_never_offered_as_the_address_to_set(connect, transport):
    """A redirect to a status page read "KIE_BASE_URL redirects to https://status.kie.ai; set it to that"."""
    page = lambda request: httpx2.Response(  # noqa: E731
        302, headers={"location": "https://status.kie.ai/maintenance"}, request=request
    )
    transport.edge[CREDIT] = [page, moved(301)]
    async with connect() as client:
        elsewhere = text_of(await client.call_tool("check_credits", {}))
        moved_api = text_of(await client.call_tool("check_credits", {}))
    assert "redirects elsewhere (https://status.kie.ai, not KIE's API)" in elsewhere, elsewhere
    assert "set it to that" not in elsewhere
    assert "KIE_BASE_URL redirects to https://api.kie.ai; set it to that" in moved_api, moved_api


# -- 2. an upload is bounded by its deadline, not by one write of its whole body ------------------------------------


@asynccontextmanager
async def slow_front(sim: Simulator, rate: float) -> AsyncIterator[str]:
    """The simulator over real TCP behind a front that reads what it is sent at ``rate`` bytes a second (a slow
    uplink); yields its base URL. Paced by the clock, not by a sleep per read: each sleep overshoots, a little on an
    idle machine and much on a loaded one (a thousand of them made a 4 s upload take 30-45 s); a front that fell
    behind catches up, never reading more than ``rate`` a second since its first byte."""
    async with served_over_tcp(sim) as base:
        port = int(base.rsplit(":", 1)[1])

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pace: bool) -> None:
            began, passed = 0.0, 0
            try:
                while data := await reader.read(16384):
                    writer.write(data)
                    await writer.drain()
                    if pace:
                        began, passed = began or time.monotonic(), passed + len(data)
                        await asyncio.sleep(max(0.0, began + passed / rate - time.monotonic()))
            except OSError:
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            to_reader, to_writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.gather(pipe(reader, to_writer, True), pipe(to_reader, writer, False))

        listening = socket.socket()
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no megabytes buffered unread
        listening.bind(("127.0.0.1", 0))
        front = await asyncio.start_server(handle, sock=listening)
        try:
            yield f"http://127.0.0.1:{front.sockets[0].getsockname()[1]}"
        finally:
            front.close()


def wav(size: int) -> bytes:
    data = size - 44
    form = struct.pack("<IHHIIHH", 16, 1, 2, 44100, 176400, 4, 16)
    head = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + form
    return head + b"data" + struct.pack("<I", data) + bytes(data)


MB = 1_000_000


@pytest.mark.parametrize("mode", ["auto"])  # the wire and the disk, not the protocol era: once
@pytest.mark.parametrize(
    ("send_rate", "sent"),
    [(256 * 1024, True), (100 * MB, False)],  # the slowest uplink allowed for: 63 s for 16 MB; 0.16 s
    ids=["within-its-deadline", "past-its-deadline"],
)
async def test_an_upload_slower_than_one_write_timeout_is_sent_within_its_deadline_or_said_too_slow(
    sim, settings, mode, tmp_path, monkeypatch, send_rate, sent
):
    """16 MB read at 2 MB/s (8 s) with a write timeout of 3 s (scaled down from 40 MB at 256 KiB/s and 120 s): sent
    as one write, it always failed with a write timeout, "Check the network connection", though its deadline allowed
    it. Sent in pieces, it is bounded by its deadline; past that, the error says it was too slow to send. The front
    reads 2 MB/s at most however loaded the machine, so even with the ~4 MB the two sockets buffer, the client has
    not handed over all 16 MB at the 3.16 s deadline, nor a single 16 MB write within its 3 s timeout."""
    monkeypatch.setattr(kie_client, "UPLOAD_ANSWER_SECONDS", 3.0)  # each write, and the answer's share of the deadline
    monkeypatch.setattr(kie_client, "SLOWEST_SEND_RATE", send_rate)
    (tmp_path / "voice.wav").write_bytes(wav(16 * MB))
    async with slow_front(sim, rate=2 * MB) as base:
        pointed = replace(settings, base_url=base, upload_base_url=base)
        async with Client(create_server(pointed), mode=mode) as client:
            with anyio.fail_after(120):  # a hang: the upload's own deadline (63 s at the slowest) ends it before
                uploaded = await client.call_tool("upload_file", {"path": "voice.wav"})
    text = text_of(uploaded)
    if sent:
        assert not uploaded.is_error, text
    else:
        assert uploaded.is_error and "too slow to send 16 MB within 3.16 s" in text, text
        assert "Check the network connection" not in text and "faster connection" in text


# -- 5. a result link never fetched is never "not saved yet" --------------------------------------------------------


async def test_a_result_link_refused_for_holding_a_credential_is_never_announced_as_not_saved_yet(
    settings, transport, tmp_path
):
    """The line saying the task ended read "1 of its results not saved yet (...?token=[redacted]); check_task says
    why and tries again" for a link kie-mcp refused and will never fetch."""
    transport.rewrites[RECORD] = result_link(lambda url: f"{url}?token={SANDBOX_API_KEY}")
    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    server = create_server(settings, transport=transport)
    async with Client(server, mode="legacy", logging_callback=on_log, elicitation_callback=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})  # heard of from now on
        with anyio.fail_after(10):
            while not [line for line in lines if f"Task {task_id}" in line]:  # noqa: ASYNC110 - the callback fills it
                await anyio.sleep(0.02)
    told = [line for line in lines if f"Task {task_id}" in line]  # the end, and any line after it about the task
    for ended in told:
        assert "not saved yet" not in ended and "tries again" not in ended, told
        assert SANDBOX_API_KEY not in ended


# -- 6. a plain-http address is named by its host, never its user or password ----------------------------------------


async def test_a_plain_http_address_is_named_by_its_host_and_port_never_its_user_or_password(transport, mode, tmp_path):
    """The refusal showed ``"http..." (48 characters)``: not which host was meant. Now scheme, host and port; the
    key, pasted as the password or as a label of the host, is never shown."""
    key = fresh_key()
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": key, "KIE_BASE_URL": f"http://me:{key}@proxy.lan:8080/kie"}
    seen = await everything_a_client_sees(Settings.load(env, cwd=tmp_path), transport, mode)
    assert 'KIE_BASE_URL="http://proxy.lan:8080..." is plain http to another machine' in seen, seen
    env["KIE_BASE_URL"] = f"http://{key}.proxy.lan:8080"
    seen = await everything_a_client_sees(Settings.load(env, cwd=tmp_path), transport, mode)
    assert 'KIE_BASE_URL="http://[redacted].proxy.lan:8080" is plain http' in seen, seen
    assert key not in seen and "me:" not in seen
