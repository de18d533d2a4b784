"""Wire edges a real KIE (or what stands between it and this machine) sends, each against a promise: a task id is
never lost, a refused create releases its reservation and is never resent, a create that may have reached KIE is
never resent, a task that does not move says why, and errors say what to do. Driven through the MCP client and the
simulator; answers the simulator has no fault for are rewritten on their way back (``Rewriting``)."""

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from PIL import Image

from kie_mcp.kie import FAMILIES, Category, KieClient, KieError, OutcomeUnknownError
from kie_mcp.kie.envelope import read_envelope
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, Simulator
from kie_mcp.sandbox.state import TASK_ID_PREFIXES
from kie_mcp.server import create_server
from kie_mcp.spend import grant
from kie_mcp.tasks.polling import Look, refresh
from kie_mcp.tasks.records import TaskRecord

from .conftest import API, UPLOADS, answering, eras_in_turn, looked_then_cleared, served_over_tcp, text_of

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
VIDEO = {"prompt": "waves rolling onto a beach at dusk", "model": "veo3_fast"}
CREATE, RECORD, CREDIT = "/api/v1/jobs/createTask", "/api/v1/jobs/recordInfo", "/api/v1/chat/credit"


class Rewriting(httpx2.AsyncBaseTransport):
    """The simulator, with chosen answers changed on their way back. ``rewrites``: path -> function of the answer's
    JSON body returning the body to send instead. ``edge``: path -> a list of answers given in front of the
    simulator, one per request while any are left (a proxy's or CDN's page: the simulator never sees the request).
    ``sent`` counts every request per path, answered here or by the simulator."""

    def __init__(self, inner: SandboxTransport) -> None:
        self.inner = inner
        self.rewrites: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self.edge: dict[str, list[Callable[[httpx2.Request], httpx2.Response]]] = {}
        self.sent: dict[str, int] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.sent[path] = self.sent.get(path, 0) + 1
        if self.edge.get(path):
            return self.edge[path].pop(0)(request)
        response = await self.inner.handle_async_request(request)
        rewrite = self.rewrites.get(path)
        if rewrite is None:
            return response
        body = rewrite(json.loads(await response.aread()))
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx2.Response(response.status_code, headers=headers, content=json.dumps(body).encode())

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def transport(sim: Simulator) -> Rewriting:
    """Overrides conftest's: the server and the controls talk to the simulator through ``Rewriting``."""
    return Rewriting(SandboxTransport(sim))


def page(status: int, text: str) -> Callable[[httpx2.Request], httpx2.Response]:
    return lambda request: httpx2.Response(status, text=text, headers={"content-type": "text/html"}, request=request)


def code_as(shape: Callable[[int], Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda body: {**body, "code": shape(body["code"])}


async def spent_today(client: Any) -> float:
    return (await client.call_tool("check_credits", {})).structured_content["spent_today"]


# -- 1. a code sent as text or as a whole float is the code ----------------------------------------------------------


def answer(body: dict[str, Any], status: int = 200) -> httpx2.Response:
    return httpx2.Response(status, content=json.dumps(body).encode())


@pytest.mark.parametrize("code", ["200", " 200 ", "+200", 200.0])
def test_a_success_code_sent_as_text_or_a_whole_float_is_success(code):
    assert read_envelope(answer({"code": code, "msg": "success", "data": {"taskId": "t1"}}), "/x") == {"taskId": "t1"}


@pytest.mark.parametrize(("code", "read"), [("402", 402), (" 429", 429), (433.0, 433), ("2e2", 500), ("200.5", 500)])
def test_a_refusal_code_sent_as_text_keeps_its_meaning_and_anything_else_is_a_server_error(code, read):
    with pytest.raises(KieError) as caught:
        read_envelope(answer({"code": code, "msg": "m", "data": None}), "/x")
    assert caught.value.code == read


@pytest.mark.parametrize("code", ["0" * 4400 + "200", "9" * 20, 1e300])
def test_a_code_no_number_type_holds_is_a_server_error_never_a_crash(code):
    """Python refuses to read digit strings over 4300 long: such a "code" once escaped as a ValueError."""
    with pytest.raises(KieError) as caught:
        read_envelope(answer({"code": code, "msg": "m", "data": {"taskId": "t1"}}), "/x")
    assert caught.value.code == 500


async def test_a_create_answered_with_a_code_no_number_holds_is_an_unknown_outcome_never_lost(
    connect, controls, transport
):
    """The create reached KIE (created, charged): the answer says it may have been, the attempt is journaled as
    unknown (not left "being sent"), counted, and never sent again."""
    transport.rewrites[CREATE] = lambda body: {**body, "code": "0" * 4400 + "200"}
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    assert not made.is_error and made.structured_content["status"] == "unknown", text_of(made)
    assert "kie.ai/logs" in text_of(made) and "Traceback" not in text_of(made)
    assert credits["unknown_creates"] == 1 and credits["spent_today"] == 8
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize(
    ("code", "msg"), [(502, "Bad Gateway"), (503, "Service Unavailable"), (504, "Gateway Timeout")]
)
async def test_a_create_answered_with_an_undocumented_server_error_code_in_a_200_body_may_have_been_created(
    connect, controls, code, msg
):
    """KIE answers errors inside HTTP 200 bodies. A body code of 500 and up that KIE does not document as a refusal
    (only 501 and 505 are) says its server failed, not that it refused: the create may have been made and charged.
    Unknown, counted against the caps, journaled, never "try again", and the same request is never sent again
    without a warning. Before, it read as a clean refusal: "failed", "Try again later", the reservation refunded."""
    await controls.fault("create", kind="code", code=code, msg=msg)
    seen: list[str] = []
    async with connect(auto_approve_credits=10, elicitation=answering(action="decline", seen=seen)) as client:
        made = await client.call_tool("generate_image", IMAGE)  # auto-approved (8 credits): sent once
        again = await client.call_tool("generate_image", IMAGE)  # the same request: asked with a warning, declined
        credits = (await client.call_tool("check_credits", {})).structured_content
        listed = (await client.call_tool("list_tasks", {})).structured_content
    [task] = made.structured_content["tasks"]
    assert not made.is_error and made.structured_content["status"] == "unknown", text_of(made)
    assert f"server error ({code}" in task["error"] and "may have been created" in task["error"]
    assert "kie.ai/logs" in text_of(made) and "Do not submit it again" in text_of(made)
    assert "try again" not in text_of(made).lower() and "unexpected error" not in text_of(made)
    assert credits["spent_today"] == 8 and credits["unknown_creates"] == 1  # counted against the caps
    assert listed["unknown_creates"] == 1 and "kie.ai/logs" in listed["message"]  # journaled
    assert seen and seen[0].startswith("WARNING: this exact request was already sent to KIE"), seen
    assert again.structured_content["status"] == "declined", text_of(again)
    assert len(await controls.creates()) == 1  # never sent again


@pytest.mark.parametrize(
    ("code", "refused"),
    [(403, True), (430, True), (501, True), (505, True), (201, False), (302, False), (531, False), (550, False)],
)
async def test_only_a_4xx_or_kies_documented_501_and_505_in_a_200_body_refuse_a_create(
    transport, controls, code, refused
):
    """A 4xx body code is a refusal (KIE's documented ones, and by HTTP's meaning any other), as are 501 (generation
    failed, not charged) and 505 (feature disabled). A code KIE documents nowhere as a create's refusal (a 2xx or
    3xx that is not 200, Suno's callback code 531, the 550 in 4o's code list) says nothing clear: unknown."""
    await controls.fault("create", kind="code", code=code, msg="m")
    async with KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport) as kie:
        with pytest.raises(KieError) as caught:
            await kie.create(FAMILIES["market"], IMAGE["model"], IMAGE, grant(IMAGE["model"], 1, "quote", None))
    assert isinstance(caught.value, OutcomeUnknownError) is not refused, caught.value
    if not refused:
        assert "Do not submit it again" in caught.value.next_step and "try again" not in str(caught.value).lower()
    assert transport.sent[CREATE] == 1  # never sent again


@pytest.mark.parametrize("shape", [str, lambda code: f" {code} ", float], ids=["text", "spaced", "float"])
async def test_a_create_answered_with_its_code_as_text_is_created_and_its_task_id_never_lost(
    connect, controls, transport, tmp_path, shape
):
    """KIE's "code": "200" (or 200.0) to a create and to every status check: the task is recorded under its id,
    followed, and its result saved. Before, the create read as a server error: "unknown", the task id lost."""
    transport.rewrites[CREATE] = code_as(shape)
    transport.rewrites[RECORD] = code_as(shape)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        listed = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
    [task] = made.structured_content["tasks"]
    assert made.structured_content["status"] == "completed", text_of(made)
    assert task["task_id"] and task["files"] and (tmp_path / task["files"][0]).is_file()
    assert [t["task_id"] for t in listed] == [task["task_id"]]
    assert len(await controls.creates()) == 1


async def test_a_create_refused_with_its_code_as_text_is_refused_and_releases_its_reservation(
    connect, controls, transport
):
    """ "402" as text is KIE's refusal for credits (not a server error that keeps the reservation); "429" as text is
    KIE's rate limit, sent again as KIE documents (refused, not charged). Each on a server of its own: after the
    402's answer, the 429's resend would wait out the pacing window's 10 s."""
    transport.rewrites[CREATE] = code_as(str)
    await controls.fault("create", kind="code", code=402)
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool("generate_image", IMAGE)
        after_refusal = await spent_today(client)
    await controls.fault("create", kind="code", code=429)
    async with connect(elicitation=answering()) as client:
        paced = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
    [task] = refused.structured_content["tasks"]
    assert refused.structured_content["status"] == "failed", text_of(refused)
    assert "KIE error 402 (credits)" in task["error"] and "Top up" in task["error"]
    assert after_refusal == 0
    assert paced.structured_content["status"] == "completed", text_of(paced)
    assert len(await controls.creates()) == 3  # the 402, then the 429 and its one resend


async def test_a_refusal_without_a_message_reads_as_its_code_never_as_http_200(connect, controls, transport):
    transport.rewrites[CREATE] = lambda body: {**body, "msg": None}
    await controls.fault("create", kind="code", code=402)
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    error = refused.structured_content["tasks"][0]["error"]
    assert error.startswith("KIE error 402 (credits). The KIE account has too few credits"), error
    assert "HTTP 200" not in error and spent == 0


# -- 2. a page that is not KIE's JSON, refusing a create before KIE's API --------------------------------------------

EDGE_REFUSALS = [400, 401, 403, 404, 405, 413, 414, 415, 421, 431, 451]
UNKNOWN_OUTCOMES = [408, 409, 425, 502]


@eras_in_turn("status", EDGE_REFUSALS + UNKNOWN_OUTCOMES)
async def test_a_create_refused_by_a_page_before_kie_creates_nothing_and_releases_its_reservation(
    connect, controls, transport, status
):
    """HTTP 4xx with an HTML page (a proxy, VPN, firewall, CDN, or KIE_BASE_URL pointing elsewhere): refused before
    KIE's API acted, so refused, the reservation released, never resent. 408, 409, 425 and 5xx say nothing about
    that: the create may have reached KIE, so it is unknown, counted, and never resent either."""
    transport.edge[CREATE] = [page(status, f"<html><body><h1>{status}</h1><hr>nginx</body></html>")]
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    [task] = result.structured_content["tasks"]
    assert transport.sent[CREATE] == 1  # never sent again
    if status in EDGE_REFUSALS:
        assert result.structured_content["status"] == "failed", text_of(result)
        assert spent == 0
        for words in ("nothing was created", "proxy, VPN or firewall", "KIE_BASE_URL", f"HTTP {status}"):
            assert words in task["error"], task["error"]
        assert "may have been created" not in task["error"]
    else:
        assert result.structured_content["status"] == "unknown", text_of(result)
        assert spent == 8 and "may have been created" in task["error"]


CLOUDFLARE_1010 = (
    '<!DOCTYPE html>\n<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->\n'
    "<head>\n<title>Access denied | api.kie.ai used Cloudflare to restrict access</title>\n"
    '<meta charset="UTF-8" />\n</head><body><div id="cf-wrapper"><div id="cf-error-details">'
    '<h1 data-translate="block_headline">Access denied</h1><span class="cf-error-code">Error code 1010</span>'
    "<p>The owner of this website (api.kie.ai) has banned your access based on your browser's signature.</p>"
    "</div></div></body></html>"
)


async def test_cloudflares_error_1010_is_named_wherever_it_stands_in_its_page(connect, controls, transport):
    """The code stands far past the first 120 bytes of Cloudflare's page: a read says what to check (a VPN or
    proxy), not "try again shortly"; a create is refused, nothing created, its reservation released."""
    assert CLOUDFLARE_1010.index("1010") > 120
    transport.edge[CREDIT] = [page(403, CLOUDFLARE_1010)]
    transport.edge[CREATE] = [page(403, CLOUDFLARE_1010)]
    async with connect(elicitation=answering()) as client:
        read = await client.call_tool("check_credits", {})
        made = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    assert read.is_error and "error code 1010" in text_of(read) and "VPN or proxy" in text_of(read), text_of(read)
    error = made.structured_content["tasks"][0]["error"]
    assert made.structured_content["status"] == "failed" and "error code 1010" in error, error
    assert spent == 0 and transport.sent[CREATE] == 1


# -- 3. a status check that keeps failing says so --------------------------------------------------------------------


@eras_in_turn(
    ("fault", "said"),
    [
        ({"kind": "code", "code": 455}, "KIE error 455 (maintenance)"),
        ({"kind": "code", "code": 500}, "KIE error 500 (server)"),
        ({"kind": "drop"}, "network"),
    ],
    ids=["455", "500", "dropped"],
)
async def test_a_task_whose_status_checks_keep_failing_says_why_and_is_still_followed(connect, controls, fault, said):
    """check_task (even "look now", wait_seconds=0) shows why the task does not move, and kie-mcp keeps asking;
    once KIE answers, the note goes and the task finishes. Before, it said "queued; about 57s left", no word more."""
    await controls.fault("status", times=-1, **fault)
    async with connect(elicitation=answering()) as client:
        looked, done = await looked_then_cleared(client, controls, "generate_image", IMAGE, 10)
    task = looked.structured_content["task"]
    assert task["state"] in ("queued", "running") and not looked.is_error, text_of(looked)
    assert task["error"].startswith("KIE's last status check failed: ") and said in task["error"], task["error"]
    assert task["error"].endswith("kie-mcp keeps asking (less often while this lasts; check_task asks at once).")
    assert task["error"] in text_of(looked)
    assert SANDBOX_API_KEY not in text_of(looked)
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    assert done.structured_content["task"]["error"] is None


async def test_one_429_to_a_status_check_is_pacing_never_said_as_kie_refusing_status_checks(connect, controls):
    """A 429 is pacing, not a failure: never noted as one. The review: while the pause after a single 429 lasted,
    check_task said "KIE is refusing status checks for now (rate limit) ... another app may be using the budget",
    which the README promises only from the second 429 in a row. It answers from the record as it is, saying the one
    check was refused (it said "KIE did not show it yet", which KIE never said). (A pause of a
    minute: the second check_task comes within it however loaded the machine; one of 5 s ran out once in CI.)"""
    async with connect(elicitation=answering(), rate_limit_backoff=60.0) as client:
        await controls.post("clock/speed", {"speed": 0})
        made = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        await controls.fault("status", kind="code", code=429, times=1)
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})  # its 429
        paused = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})  # within the pause
        asked = [r for r in await requests(controls) if r["query"].get("taskId") == task_id]
    for answer in (looked, paused):
        task = answer.structured_content["task"]
        assert task["state"] == "queued" and task["error"] is None, text_of(answer)
        # said as what it was (one refused check, the task unaffected), never as a storm of refusals
        assert "refusing status checks" not in text_of(answer) and "Another app" not in text_of(answer)
    assert "it refused the status check for now (429, rate limit; the task itself is unaffected)" in text_of(looked)
    assert len(asked) == 1, asked  # the pause holds: the second check_task answered from the record


async def test_429s_in_a_row_to_status_checks_are_said_on_the_task_until_kie_answers_again(connect, controls):
    """From the second 429 in a row (a storm), the task says why it does not move: KIE refuses status checks for
    now, when kie-mcp asks again, and that another app on the key may be using the budget; once KIE answers, the
    note goes and the task finishes."""
    await controls.fault("status", kind="code", code=429, times=-1)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        with anyio.fail_after(5):
            while len([r for r in await requests(controls) if r["query"].get("taskId") == task_id]) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        await controls.http.delete("/__sim/faults")
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    error = looked.structured_content["task"]["error"]
    assert error.startswith("KIE is refusing status checks for now (rate limit): kie-mcp asks again in"), error
    assert "Another app or server using this API key" in error and error in text_of(looked)
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    assert done.structured_content["task"]["error"] is None


async def requests(controls: Any) -> list[dict[str, Any]]:
    """Every request the simulator received, in order."""
    found = await controls.get("requests")
    return found if isinstance(found, list) else found["requests"]


# -- 4. "success" with no task record --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_kie_answers_with_no_record_is_followed_until_kie_says_more(connect, controls):
    """``{"code": 200, "data": null}`` to every status check: an answer that says nothing, asked again (backing
    off) and noted, never a refusal ("fix the field it names") after 8 of which the follower left the task."""
    await controls.fault("status", kind="code", code=200, msg="success", times=-1)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        deadline = time.monotonic() + 20
        while await status_checks(controls) < 12:  # past the 8 refusals after which the follower gave up
            assert time.monotonic() < deadline, "the follower stopped asking about the task"
            await anyio.sleep(0.1)
        await controls.http.delete("/__sim/faults")
        deadline = time.monotonic() + 20
        while (await client.call_tool("list_tasks", {})).structured_content["tasks"][0]["state"] != "succeeded":
            assert time.monotonic() < deadline, "the follower did not finish the task once KIE answered"
            await anyio.sleep(0.1)
    error = looked.structured_content["task"]["error"]
    assert error.startswith("KIE's last status answer could not be used: ") and "no task record" in error, error
    assert "Fix the field" not in error and "KIE error 422" not in error


async def status_checks(controls: Any) -> int:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return sum(1 for r in items if r["path"] == RECORD)


async def test_a_status_answer_with_no_record_is_retried_and_a_lookup_still_asks_every_family(
    transport, sim, monkeypatch
):
    """The client: no record is a retryable protocol error (not KIE's 422), and ``find_task`` still goes on to the
    next family when one answers that way (ids are opaque: a Flux Kontext task is first asked about on Market)."""
    monkeypatch.setitem(TASK_ID_PREFIXES, "flux", "")  # as KIE's own ids: no prefix naming the family
    transport.rewrites[RECORD] = lambda body: {"code": 200, "msg": "success", "data": None}
    async with KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport) as kie:
        body = {"model": "flux-kontext-pro", "prompt": "a fox", "aspectRatio": "1:1"}
        approval = grant("flux-kontext-pro", 1, "quote", None)
        task_id = await kie.create(FAMILIES["flux"], "flux-kontext-pro", body, approval)
        with pytest.raises(KieError) as caught:
            await kie.status(FAMILIES["market"], task_id)
        found = await kie.find_task(task_id)
    err = caught.value
    assert err.category is Category.PROTOCOL and err.retryable and err.code is None, err
    assert task_id in err.message and "asks again" in err.next_step
    assert found.family == "flux" and transport.sent[RECORD] == 2


# -- 5. a 404 to a create names the endpoint or model, not a task id -------------------------------------------------


@pytest.mark.parametrize("request_", [("generate_image", IMAGE), ("generate_video", VIDEO)], ids=["market", "veo"])
async def test_a_create_kie_answers_404_says_the_model_or_endpoint_is_not_offered_not_to_check_a_task_id(
    connect, controls, request_
):
    tool, arguments = request_
    await controls.fault("create", kind="code", code=404, msg="Not Found")
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool(tool, arguments)
        spent = await spent_today(client)
    error = refused.structured_content["tasks"][0]["error"]
    assert refused.structured_content["status"] == "failed" and error.startswith("KIE error 404"), error
    assert "task id" not in error.lower() and "list_models" in error and "KIE_BASE_URL" in error
    assert spent == 0 and len(await controls.creates()) == 1


# -- 6. "Task not found" from a family's status endpoint, for a task too young to show ---------------------------------


@pytest.mark.parametrize("family", ["veo", "runway", "aleph", "gpt4o", "flux", "market"])
async def test_a_young_task_answered_task_not_found_is_not_yet_visible_in_every_family(transport, controls, family):
    """KIE documents 404 "Task not found" for its status endpoints (Aleph, Market): right after a create that means
    "not visible yet", in every family, never a refusal noted on the task."""
    await controls.fault("status", kind="code", code=404, msg="Task not found")
    record = TaskRecord(task_id="a-new-task", model="m", family=family, state="queued")
    async with KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport) as kie:
        look, _ = await refresh(kie, lambda model: None, record)
    assert look is Look.NOT_VISIBLE and record.error is None, record.error


async def test_a_young_veo_video_answered_task_not_found_shows_no_refusal(connect, controls):
    await controls.fault("status", kind="code", code=404, msg="Task not found", times=-1)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    task = looked.structured_content["task"]
    assert task["state"] in ("queued", "running") and task["error"] is None, text_of(looked)


# -- 7. an answer trickled in a byte at a time ends within its deadline ------------------------------------------------


@asynccontextmanager
async def over_tcp(sim: Simulator, settings: Any, mode: str, **overrides: Any) -> AsyncIterator[Client]:
    """A server talking to ``sim`` over real TCP (``served_over_tcp``): a read timeout there bounds each read, as on
    the internet, where the in-process transport bounds a whole answer."""
    async with served_over_tcp(sim) as base:
        pointed = replace(settings, base_url=base, upload_base_url=base, **overrides)
        async with Client(create_server(pointed), mode=mode, elicitation_callback=answering()) as client:
            yield client


# A byte a second, under a read timeout of 2 s: each read waits a second, so a stall of the event loop the simulator
# shares with the server (a loaded machine) up to a second long still reads as a trickle, never a read timeout. The
# deadline is ANSWER_READS (3) reads' timeouts: 6 s; the shortest answer trickled (the balance's 40 bytes) 40 s.
TRICKLE = {"kind": "trickle", "every": 1.0}
TRICKLE_TIMEOUT = 2.0
HALF_A_TRICKLE = 20  # seconds: an answer waited for whole would take twice that at least


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_create_whose_answer_trickles_in_ends_within_its_deadline_unknown_counted_and_never_resent(
    sim, settings, controls, mode
):
    """Each read of the answer waited less than the timeout, so the create waited for the whole trickle: 122 s for
    ~80 bytes at http_timeout=2, and a create answered a byte a minute held its tool call for ever. Past a few
    timeouts in all it is a timeout like any other: it may have reached KIE (it did: the simulator created it), so
    unknown, counted against the caps, never sent again."""
    await controls.fault("create", **TRICKLE)  # 127 bytes: over 2 minutes in all
    async with over_tcp(sim, settings, mode, http_timeout=TRICKLE_TIMEOUT) as client:
        started = time.monotonic()
        made = await client.call_tool("generate_image", IMAGE)
        took = time.monotonic() - started
        credits = (await client.call_tool("check_credits", {})).structured_content
    [task] = made.structured_content["tasks"]
    assert took < HALF_A_TRICKLE, f"{took:.1f}s"  # its deadline, never the whole trickle
    assert made.structured_content["status"] == "unknown", text_of(made)
    assert "did not come whole within 6 s" in task["error"] and "Do not submit it again" in task["error"]
    assert credits["spent_today"] == 8 and credits["unknown_creates"] == 1
    assert len(await controls.creates()) == 1 and len(sim.tasks) == 1  # created once, never resent


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_read_whose_answer_trickles_in_ends_within_its_deadline_and_the_next_read_works(
    sim, settings, controls, mode
):
    """check_task(wait_seconds=0) of a task whose status answers trickle in took 822 s; a balance check as long as
    the trickle lasted. Each is now a network error within its deadline, safe to repeat, and says why."""
    async with over_tcp(sim, settings, mode, http_timeout=TRICKLE_TIMEOUT) as client:
        # Status answers trickle from the start: the follower's first look must not see the task end before them
        await controls.fault("status", **TRICKLE, times=-1)  # 342 bytes: almost 6 minutes each
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        await controls.fault("credit", **TRICKLE)  # 40 bytes: 40 s
        took = {}
        started = time.monotonic()
        balance = await client.call_tool("check_credits", {})
        took["balance"], started = time.monotonic() - started, time.monotonic()
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        took["status"] = time.monotonic() - started
        again = await client.call_tool("check_credits", {})
    assert max(took.values()) < HALF_A_TRICKLE, took  # each its deadline, never the whole trickle
    assert balance.is_error and "did not come whole within 6 s" in text_of(balance), text_of(balance)
    assert "try again" in text_of(balance) and "unexpected error" not in text_of(balance)
    task = looked.structured_content["task"]
    assert task["state"] in ("queued", "running") and "did not come whole within 6 s" in task["error"], task
    assert not again.is_error and again.structured_content["balance_credits"] == 4992


# -- 8. a create answer's task id is used only when it is one -------------------------------------------------------


@pytest.mark.parametrize(
    ("named", "shown"),
    [
        (["abc", "def"], '["abc", "def"]'),
        ({"id": "abc"}, '{"id": "abc"}'),
        (True, "true"),
        (12.5, "12.5"),
        ("  ", '"  "'),
        ("abc\ndef", '"abc\\ndef"'),
        ("a" * 5000, "(5002 characters)"),
        (f"task-{SANDBOX_API_KEY}", "[redacted]"),
    ],
    ids=["list", "object", "true", "float", "blank", "line-break", "5000-chars", "key"],
)
async def test_a_create_answer_naming_no_usable_task_id_is_an_unknown_outcome_never_a_recorded_task(
    connect, controls, transport, named, shown
):
    """Any truthy taskId used to be recorded as a created task under its text ("['abc', 'def']", "True", "  "):
    "submitted", nothing unknown, and a task asked about in vain (a blank one refused by KIE 8 times). KIE's ids
    are short printable text, the rule check_task holds an agent's ids to: anything else names no task, so the
    create may have been made without an id kie-mcp can follow (unknown, counted, never resent)."""
    transport.rewrites[CREATE] = lambda body: {**body, "data": {**body["data"], "taskId": named}}
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        listed = (await client.call_tool("list_tasks", {})).structured_content
        spent = await spent_today(client)
    [task] = made.structured_content["tasks"]
    assert made.structured_content["status"] == "unknown", text_of(made)
    assert task["task_id"] is None and "KIE said success but named no usable task id (" in task["error"]
    assert shown in task["error"] and "kie.ai/logs" in task["error"]
    assert SANDBOX_API_KEY not in text_of(made)
    assert listed["tasks"] == [] and listed["unknown_creates"] == 1 and spent == 8
    assert transport.sent[CREATE] == 1


def test_a_repeated_4k_request_answer_naming_no_usable_task_is_no_existing_task():
    """KIE's 422 "4k is processing" names the 4K task it has; a list or a blank there names none (before: taken
    as task "['x']", followed, never found)."""
    family = FAMILIES["veo-4k"]
    for named in (["x"], "  ", {"taskId": "x"}, "a\nb"):
        assert family.refused_but_exists(422, "4k is processing", {"taskId": named}, {"taskId": "src"}) is None
    kept = family.refused_but_exists(422, "4k is processing", {"taskId": " veo-4k-1 "}, {"taskId": "src"})
    assert kept is not None and kept.task_id == "veo-4k-1"


# -- 9. a redirect is never followed, and names where KIE_BASE_URL leads -----------------------------------------------


def moved(status: int, to: str = "https://api.kie.ai", body: str = "<html><h1>Moved</h1>cloudflare</html>") -> Any:
    return lambda request: httpx2.Response(
        status,
        text=body,
        headers={"content-type": "text/html", "location": f"{to}{request.url.path}"},
        request=request,
    )


@pytest.mark.parametrize("status", [301, 307, 308])
async def test_a_create_redirected_elsewhere_is_refused_before_kie_and_names_where_kie_base_url_leads(
    connect, controls, transport, status
):
    """KIE_BASE_URL=http://... where the host sends everything to https://: the create was "unknown" (counted
    against the caps, "check kie.ai/logs"), and nothing said the address was wrong. A redirect that moves the
    request elsewhere means it was not acted on here: refused, nothing spent; never followed with the key."""
    transport.edge[CREATE] = [moved(status)]
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    [task] = made.structured_content["tasks"]
    assert made.structured_content["status"] == "failed", text_of(made)
    assert f"redirected (HTTP {status}) before KIE's API acted on it" in task["error"]
    assert "nothing was created or charged" in task["error"]
    assert "KIE_BASE_URL redirects to https://api.kie.ai; set it to that" in task["error"]
    assert credits["spent_today"] == 0 and credits["unknown_creates"] == 0
    assert transport.sent[CREATE] == 1 and await controls.creates() == []  # never followed


@pytest.mark.parametrize("status", [302, 303])
async def test_a_create_answered_see_other_may_have_been_created_and_names_where_kie_base_url_leads(
    connect, controls, transport, status
):
    """303 (and 302, what servers answer a POST they acted on) says the request was acted on and its answer is
    elsewhere (never fetched with the key): unknown."""
    transport.edge[CREATE] = [moved(status)]
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    [task] = made.structured_content["tasks"]
    assert made.structured_content["status"] == "unknown", text_of(made)
    assert "Do not submit it again" in task["error"]
    assert "KIE_BASE_URL redirects to https://api.kie.ai; set it to that" in task["error"]
    assert spent == 8 and transport.sent[CREATE] == 1


async def test_a_read_or_upload_redirected_elsewhere_names_the_address_to_set_not_a_gateway_error(
    connect, transport, tmp_path
):
    """A redirected balance check read as "a proxy or gateway error; try again shortly"; an upload the same."""
    Image.new("RGB", (640, 480), (200, 60, 40)).save(tmp_path / "photo.png")
    transport.edge[CREDIT] = [moved(301, body="")]
    transport.edge["/api/file-stream-upload"] = [moved(308, to="https://upload.kie.example")]
    async with connect() as client:
        read = await client.call_tool("check_credits", {})
        uploaded = await client.call_tool("upload_file", {"path": "photo.png"})
    assert read.is_error and "KIE_BASE_URL redirects to https://api.kie.ai; set it to that" in text_of(read)
    assert "gateway" not in text_of(read) and "try again shortly" not in text_of(read)
    text = text_of(uploaded)
    assert uploaded.is_error and "KIE_UPLOAD_BASE_URL redirects to https://upload.kie.example; set it to" in text
    assert transport.sent[CREDIT] == 1 and transport.sent["/api/file-stream-upload"] == 1


# -- 10. an error answer that names a task keeps its id --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"code": 200, "msg": "success", "data": {"taskId": "t-500-named"}}),
        (200, {"code": 500, "msg": "internal error", "data": {"taskId": "t-500-named"}}),
    ],
    ids=["http-500", "code-500"],
)
async def test_a_create_error_answer_naming_a_task_keeps_its_id_to_check(connect, transport, tmp_path, status, body):
    """The create may have been made (unknown, counted), and KIE's answer named the task: the id was dropped, "(no
    task id)", leaving only kie.ai/logs to find it. It is said, with how to look it up, and kept in the call log and
    in the journal's record of the attempt."""
    transport.edge[CREATE] = [lambda request: httpx2.Response(status, json=body, request=request)]
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        [attempt] = re.findall(r"\ba_[0-9a-f]{16}\b", text_of(await client.call_tool("list_tasks", {})))
        story = await client.call_tool("check_task", {"task_id": attempt})  # what the journal kept of the attempt
    [task] = made.structured_content["tasks"]
    assert made.structured_content["status"] == "unknown", text_of(made)
    assert "check_task(task_id='t-500-named') shows whether it exists" in task["error"]
    assert "Do not submit the request again" in task["error"]
    assert "naming task t-500-named" in text_of(story), text_of(story)
    logged = [json.loads(line) for line in (tmp_path / "logs" / "kie-api.jsonl").read_text().splitlines()]
    assert [(e["outcome"], e.get("task_id")) for e in logged if e["endpoint"] == CREATE] == [("unknown", "t-500-named")]


# -- 11. a result link that held the key is never fetched; a result that cannot be read is not "no result" -------------


def result_link(make_link: Callable[[str], str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def rewrite(body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data") or {}
        if data.get("state") == "success":
            [url] = json.loads(data["resultJson"])["resultUrls"]
            data["resultJson"] = json.dumps({"resultUrls": [make_link(url)]})
        return body

    return rewrite


@pytest.mark.parametrize(
    "make_link",
    [lambda url: f"{url}?token={SANDBOX_API_KEY}", lambda url: url.replace("/files/", f"/files/{SANDBOX_API_KEY}/")],
    ids=["query", "path"],
)
async def test_a_result_link_that_held_the_key_is_never_fetched_and_says_so(
    connect, controls, transport, tmp_path, make_link
):
    """The link is kept redacted (right), but was then fetched as ``...[redacted]...``, and the agent told "The
    result link has expired (HTTP 404)", or the file saved from a link that was not KIE's."""
    transport.rewrites[RECORD] = result_link(make_link)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        task_id = made.structured_content["tasks"][0]["task_id"]
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    text = text_of(looked)
    assert looked.structured_content["task"]["files"] == [] and not (tmp_path / "outputs").exists(), text
    assert "the result link held a credential" in text and "did not fetch it" in text, text
    assert "expired" not in text and SANDBOX_API_KEY not in text
    fetched = [r for r in (await controls.get("requests"))["requests"] if "redacted" in json.dumps(r)]
    assert fetched == []


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_result_kie_sent_as_text_that_is_not_json_is_said_to_be_unreadable_not_missing(connect, controls):
    """``resultJson`` that is not JSON read as "sent no result link": KIE did send one, that could not be read."""
    await controls.fault("status", kind="no_results", shape="not_json", times=-1)
    async with connect(elicitation=answering(), download=False) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 2})  # it never ends: waited out
    task = made.structured_content["tasks"][0]
    assert task["state"] == "succeeded_without_results", text_of(made)
    assert "sent a result that could not be read" in task["error"] and "no result link" not in task["error"]


# -- 12. a result link with spaces around it, or its scheme in capitals, is a link ------------------------------------


def shaped(shape: str) -> Callable[[str], str]:
    """``shape`` of a link: ``{url}`` the link, ``{rest}`` it after its ``scheme://``."""
    return lambda url: shape.format(url=url, rest=url.partition("://")[2])


@eras_in_turn(
    ("where", "shape"),
    [
        ("result", " {url}"),
        ("result", "{url}\n"),
        ("result", "\r\n{url}\t"),
        ("result", "HTTP://{rest}"),
        ("renewed", " {url}\n"),
        ("renewed", "HTTP://{rest}\r\n"),
    ],
)
async def test_a_result_link_with_spaces_around_it_or_its_scheme_in_capitals_is_saved(
    connect, controls, transport, tmp_path, where, shape
):
    """RFC 3986 makes a scheme's letter case meaningless, and KIE's links have been seen with a line break after
    them: " https://..." and "HTTPS://..." read as "KIE sent no result link" (never saved), and "https://...\\n" as a
    link no request could be made with, retried for ever while the answer said the links still worked. So did a
    fresh link download-url gave in such a shape."""
    if where == "result":
        transport.rewrites[RECORD] = result_link(shaped(shape))
    else:  # the first link refused as expired, and the fresh one KIE gives for it shaped so
        await controls.fault("files", kind="code", code=403)
        transport.rewrites["/api/v1/common/download-url"] = lambda body: {**body, "data": shaped(shape)(body["data"])}
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
    [task] = made.structured_content["tasks"]
    assert task["state"] == "succeeded" and task["error"] is None, text_of(made)
    [saved] = task["files"]
    assert (tmp_path / saved).stat().st_size > 0
    assert all(url.startswith("http://") and url == url.strip() for url in task["result_urls"]), task["result_urls"]


# -- 13. KIE's text is cut wherever it is repeated ---------------------------------------------------------------------

LONG = 300_000  # characters of a text KIE sends: a garbage answer may hold megabytes (16 MiB are read)


def every_state_word(word: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def rewrite(body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data")
        return {**body, "data": {**data, "state": word}} if isinstance(data, dict) else body

    return rewrite


@eras_in_turn("where", ["create error", "failure", "status error", "status word"])
async def test_a_text_kie_sends_megabytes_of_is_cut_in_every_answer_record_and_log_saying_so(
    connect, controls, transport, tmp_path, caplog, where
):
    """A ``msg``, ``failMsg`` or status word of 4 MiB made 12.6 MB tool answers (the text three times), list_tasks
    and kie://tasks of 4.2 MB for good (it was kept in the task's record), 4 MB more call log and 4 MB of log at
    every look. Each is cut to 2000 characters where it is read, saying it was cut and how long it was."""
    caplog.set_level(logging.INFO)
    if where == "create error":
        await controls.fault("create", kind="code", code=500, msg="E" * LONG)
    elif where == "failure":
        await controls.fault("create", kind="task_fail", fail_msg="F" * LONG)
    elif where == "status error":
        await controls.fault("status", kind="code", code=500, msg="S" * LONG, times=-1)
    else:
        transport.rewrites[RECORD] = every_state_word("Z" * LONG)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 1})
        [task] = made.structured_content["tasks"]
        answers = [made, await client.call_tool("list_tasks", {}), await client.read_resource("kie://tasks")]
        if task["task_id"]:
            answers.append(await client.call_tool("check_task", {"task_id": task["task_id"], "wait_seconds": 0}))
            answers.append(await client.read_resource(f"kie://tasks/{task['task_id']}"))
    shown = [json.dumps(answer.model_dump(mode="json")) for answer in answers]
    assert max(len(text) for text in shown) < 20_000, [len(text) for text in shown]
    assert "characters)" in shown[0], text_of(made)
    if where != "status word":  # a status word is said shorter still (60 characters)
        assert f"({LONG} characters)" in shown[0], text_of(made)
    logged = (tmp_path / "logs" / "kie-api.jsonl").read_text().splitlines()
    assert max(len(line) for line in logged) < 3000, [len(line) for line in logged]
    assert max(len(record.getMessage()) for record in caplog.records) < 3000


async def test_a_record_an_older_kie_mcp_kept_with_megabytes_of_kies_text_is_cut_when_read(connect, controls, tmp_path):
    """The record kept KIE's whole ``failMsg``: every listing of the workspace carried it, for good."""
    from kie_mcp.journal import Journal

    await controls.fault("create", kind="task_fail", fail_msg="boom")
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
    [task] = made.structured_content["tasks"]
    assert task["state"] == "failed", text_of(made)
    journal = Journal.for_workspace(tmp_path)
    with journal.transaction() as db:  # as an older kie-mcp wrote it
        (record,) = db.execute("SELECT record FROM tasks WHERE task_id = ?", (task["task_id"],)).fetchone()
        kept = json.dumps({**json.loads(record), "error": "F" * LONG, "fail_code": "C" * LONG})
        db.execute("UPDATE tasks SET record = ? WHERE task_id = ?", (kept, task["task_id"]))
    journal.close()
    async with connect() as client:
        answers = [
            await client.call_tool("list_tasks", {}),
            await client.call_tool("check_task", {"task_id": task["task_id"], "wait_seconds": 0}),
            await client.read_resource("kie://tasks"),
        ]
    shown = [json.dumps(answer.model_dump(mode="json")) for answer in answers]
    assert max(len(text) for text in shown) < 20_000, [len(text) for text in shown]
    assert f"({LONG} characters)" in shown[1], shown[1][:3000]
