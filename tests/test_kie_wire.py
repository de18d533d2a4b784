"""The envelope and error taxonomy on raw HTTP answers, and the family adapters on documented shapes; upstream
garbage (too deep, wrong types, half an emoji, another task's answer) through the MCP client and the simulator."""

import json
import sqlite3
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

from kie_mcp.catalog import load_catalog
from kie_mcp.kie import CODES, FAMILIES, Category, KieClient, KieError, TaskState
from kie_mcp.kie.client import MAX_ANSWER_BYTES
from kie_mcp.kie.envelope import read_envelope
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator, parse_fault
from kie_mcp.spend import grant

from .conftest import API, UPLOADS, answering, served_over_tcp, text_of


def answer(status, body):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.Response(status, content=content)


def test_success_needs_2xx_and_code_200():
    assert read_envelope(answer(200, {"code": 200, "msg": "success", "data": 12.5}), "/x") == 12.5
    with pytest.raises(KieError) as caught:
        read_envelope(answer(200, {"code": 402, "msg": "The current credits are insufficient.", "data": None}), "/x")
    assert caught.value.code == 402
    assert caught.value.category is Category.CREDITS
    assert "Top up" in str(caught.value)


def test_a_422_refusing_content_says_to_change_the_content_not_a_field():
    refused = "Your request was rejected by Flow (content policy). Please try a different prompt."
    assert "Change the prompt" in KieError("The image was judged NSFW.", code=422).next_step
    with pytest.raises(KieError) as caught:
        read_envelope(answer(200, {"code": 422, "msg": refused, "data": None}), "/api/v1/veo/generate")
    advice = caught.value.next_step
    assert "Change the prompt or the input images" in advice and "nothing was created or charged" in advice
    assert "Fix the field" not in advice and not caught.value.retryable
    fields = ("aspect_ratio must be one of 16:9, 9:16", "safetyTolerance must be 0-2", "nsfw_checker must be a boolean")
    for invalid in fields:
        assert "Fix the field it names" in KieError(invalid, code=422).next_step  # an invalid field keeps its advice


def test_message_key_fallback():
    with pytest.raises(KieError, match="Unauthorized"):
        read_envelope(answer(200, {"code": 401, "message": "Unauthorized"}), "/x")


@pytest.mark.parametrize("code", [400, 401, 402, 404, 408, 422, 429, 433, 451, 455, 500, 501, 505])
def test_every_documented_code_has_category_retry_and_next_step(code):
    err = KieError("m", code=code)
    assert code in CODES
    assert err.next_step and err.category
    assert err.retryable is CODES[code].retryable
    assert err.as_dict()["code"] == code


def test_retry_advice_matches_the_docs():
    assert KieError("", code=429).retryable and KieError("", code=455).retryable
    for code in (401, 402, 433, 501, 505):
        assert not KieError("", code=code).retryable


def test_non_json_bodies_are_survived():
    with pytest.raises(KieError) as caught:
        read_envelope(answer(502, b"<html>Bad gateway</html>"), "/x")
    assert caught.value.category is Category.PROTOCOL
    with pytest.raises(KieError) as caught:
        read_envelope(answer(403, b"error code: 1010"), "/x")
    assert caught.value.category is Category.BLOCKED


def test_upload_host_success_false():
    with pytest.raises(KieError, match="Invalid API Key"):
        read_envelope(
            answer(200, {"success": False, "code": 401, "msg": "Authentication failed: Invalid API Key"}), "/u"
        )


def test_market_status_parses_json_strings():
    data = {
        "taskId": "t1",
        "model": "nano-banana-2",
        "state": "success",
        "param": json.dumps({"model": "nano-banana-2"}),
        "resultJson": json.dumps({"resultUrls": ["https://f/a.png"]}),
        "failCode": "",
        "failMsg": "",
        "creditsConsumed": 8,
        "createTime": 1,
        "completeTime": 2,
    }
    status = FAMILIES["market"].parse_status("t1", data)
    assert status.state is TaskState.SUCCEEDED
    assert status.result_urls == ["https://f/a.png"]
    assert status.credits_charged == 8
    assert status.fail_code is None


NOW = 1_780_000_000.0  # 2026-05-28


@pytest.mark.parametrize(
    ("create_time", "created_at"),
    [
        (1_779_000_000_000, 1_779_000_000.0),  # milliseconds, as Market documents: the task's real age
        ("1779000000000", 1_779_000_000.0),  # the same as text
        (None, None),  # not said
        ("2026-05-17 06:40:00", None),  # zone-less text (other families): no age can be read from it
        (0, None),  # before KIE existed: garbage, not a task's age
        (1_779_000_000, None),  # seconds where milliseconds belong (1970)
        ((NOW + 86_400) * 1000, None),  # in the future
        ("1e400", None),  # not a finite number
    ],
)
def test_a_task_is_as_old_as_kie_says_when_that_can_be_true(create_time, created_at):
    status = FAMILIES["market"].parse_status("t", {"state": "success", "createTime": create_time})
    assert status.created_at(NOW) == created_at


@pytest.mark.parametrize("garbage", ["1e400", "-1e400", "nan", "inf", "Infinity"])
def test_a_number_kie_sends_as_infinity_or_nan_is_no_number(garbage):
    """JSON's 1e400 reads as infinity: never an infinite charge, progress or time, and never a crash."""
    value = json.loads(garbage) if garbage[0].isdigit() or garbage[0] == "-" else garbage
    status = FAMILIES["market"].parse_status(
        "t",
        {"state": "success", "creditsConsumed": value, "progress": value, "createTime": value, "completeTime": value},
    )
    assert status.credits_charged is None and status.progress is None
    assert status.created_at_ms is None and status.completed_at_ms is None


def test_a_price_feed_page_count_of_infinity_is_no_count():
    from kie_mcp.kie.status import int_or_none  # what the price feed's client reads its counts with

    assert int_or_none(json.loads("1e400")) is None  # was OverflowError: the whole catalogue sync stopped
    assert int_or_none("12") == 12 and int_or_none(True) is None


def test_a_result_link_is_http_or_nothing_in_every_shape_kie_sends():
    links = ["javascript:alert(1)//", "file:///etc/passwd", "data:text/html,x", "https://cdn.kie.ai/a.png"]
    for shaped in (links, [{"url": u} for u in links], [{"resultUrl": u} for u in links], json.dumps(links)):
        status = FAMILIES["market"].parse_status("t", {"state": "success", "resultJson": {"resultUrls": shaped}})
        assert status.result_urls == ["https://cdn.kie.ai/a.png"], shaped


def test_market_failure_and_states():
    market = FAMILIES["market"]
    failed = market.parse_status("t", {"state": "fail", "resultJson": "", "failCode": "500", "failMsg": "boom"})
    assert failed.state is TaskState.FAILED and failed.fail_code == "500" and failed.fail_message == "boom"
    assert market.parse_status("t", {"state": "waiting"}).state is TaskState.QUEUED
    assert market.parse_status("t", {"state": "generating", "progress": 40}).progress == 0.4


@pytest.mark.parametrize(("flag", "state"), [(0, "running"), (1, "succeeded"), (2, "failed"), (3, "failed")])
def test_veo_success_flag(flag, state):
    data = {"taskId": "v", "successFlag": flag, "response": {"resultUrls": ["https://f/v.mp4"]} if flag == 1 else None}
    status = FAMILIES["veo"].parse_status("v", data)
    assert status.state.value == state
    if flag == 3:
        assert "upstream" in status.fail_message


async def test_sliding_window_paces_without_real_time():
    now = [0.0]
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    window = SlidingWindow(3, 10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        assert await window.acquire() == 0
    assert await window.acquire() == 10.0
    assert slept == [10.0]


# -- upstream garbage, through the MCP client and the simulator ------------------------------------------------------


class Rewriting(httpx2.AsyncBaseTransport):
    """The simulator, with some answers rewritten as a misbehaving KIE might send them. ``rewrites`` maps a path to a
    function of the answer's JSON body returning the new body (an object, or raw bytes), or None to leave it be.

    The request still reaches the simulator (auth, charges, faults, request log); only its answer changes.
    """

    def __init__(self, inner: SandboxTransport) -> None:
        self.inner = inner
        self.rewrites: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.encoding: dict[str, str] = {}  # a path whose rewritten answer claims this Content-Encoding

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        rewrite = self.rewrites.get(request.url.path)
        if rewrite is None:
            return response
        content = await response.aread()
        changed = rewrite(json.loads(content))
        if changed is not None:
            content = changed if isinstance(changed, bytes) else json.dumps(changed).encode()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        if request.url.path in self.encoding:
            headers["content-encoding"] = self.encoding[request.url.path]
        return httpx2.Response(response.status_code, headers=headers, stream=httpx2.ByteStream(content))

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def transport(sim: Simulator) -> Rewriting:
    """Overrides conftest's: the tests here talk to the simulator through ``Rewriting``."""
    return Rewriting(SandboxTransport(sim))


IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
VIDEO = {"prompt": "waves rolling onto a beach at dusk", "model": "veo3_fast"}
CREATE, RECORD, CREDIT = "/api/v1/jobs/createTask", "/api/v1/jobs/recordInfo", "/api/v1/chat/credit"
OTHER = "https://cdn.example/someone-else/0.png"
UPLOAD_PATHS = ("/api/file-stream-upload", "/api/file-base64-upload", "/api/file-url-upload")
DEEP = b'{"code":200,"msg":"success","data":' + b"[" * 5000 + b"]" * 5000 + b"}"  # ~10 KB: RecursionError to read


def test_an_answer_nested_too_deep_to_read_is_a_clear_error_never_a_crash():
    with pytest.raises(KieError) as caught:
        read_envelope(answer(200, DEEP), "/x")  # json.loads itself raises RecursionError
    assert caught.value.category is Category.PROTOCOL and caught.value.retryable
    readable_but_deep = {"code": 200, "msg": "success", "data": json.loads("[" * 300 + "]" * 300)}
    with pytest.raises(KieError) as caught:
        read_envelope(answer(200, readable_but_deep), "/x")  # read, but deeper than any walk over it may go
    assert caught.value.category is Category.PROTOCOL
    deep_text = {"state": "success", "resultJson": "[" * 5000 + "]" * 5000, "param": "{" * 3000}
    assert FAMILIES["market"].parse_status("t", deep_text).result_urls == []  # JSON inside data: text, no crash


async def test_a_create_answered_with_json_too_deep_to_read_is_unknown_counted_and_never_resent(
    connect, controls, transport
):
    """The simulator creates (and charges) the task; its answer is ~10 KB of ``[[[[``. Never "nothing was spent"."""
    transport.rewrites[CREATE] = lambda body: DEEP
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        transport.rewrites[CREDIT] = lambda body: DEEP
        balance = await client.call_tool("check_credits", {})
        del transport.rewrites[CREDIT]
        credits = (await client.call_tool("check_credits", {})).structured_content
    data = result.structured_content
    assert data["status"] == "unknown", text_of(result)
    assert "may have been created" in text_of(result) and "kie.ai/logs" in text_of(result)
    assert len(await controls.creates()) == 1  # never sent again
    assert credits["spent_today"] == 8 and credits["unknown_creates"] == 1  # counted against the caps
    assert balance.is_error and "not readable JSON" in text_of(balance)  # a read: a clear KieError
    assert "unexpected error" not in text_of(result) + text_of(balance)


DEEP_TEXT = "[" * 100_000 + "]" * 100_000  # JSON text json.loads cannot read: RecursionError, not ValueError


@pytest.mark.parametrize("param", [DEEP_TEXT, json.dumps({"input": DEEP_TEXT})], ids=["param", "param-input"])
async def test_a_task_made_elsewhere_whose_echoed_request_nests_too_deep_is_looked_up_never_a_crash(
    connect, transport, param
):
    """A Market answer naming Veo 3.1's unified model ("veo-3-1") is read for the tier its request named (``param``,
    JSON text): text nested deeper than Python's JSON reader reads ended check_task and continue_video in "kie-mcp
    hit an unexpected error (RecursionError ...)". It says nothing of the tier: the task is Veo 3.1's all the
    same."""
    task_id = "0123456789abcdef0123456789abcdef"
    transport.rewrites[RECORD] = lambda body: {
        "code": 200,
        "msg": "success",
        "data": {"taskId": task_id, "model": "veo-3-1", "state": "generating", "param": param, "resultJson": ""},
    }
    async with connect(elicitation=answering()) as client:
        looked = await client.call_tool("check_task", {"task_id": task_id})
        extended = await client.call_tool(
            "continue_video", {"task_id": task_id, "operation": "extend", "prompt": "the waves keep rolling"}
        )
    assert not looked.is_error, text_of(looked)
    task = looked.structured_content["task"]
    assert (task["family"], task["model"], task["state"]) == ("veo-unified", "veo-3-1", "running"), task
    for answer_ in (looked, extended):
        assert "unexpected error" not in text_of(answer_) and "RecursionError" not in text_of(answer_)


FAMILY_TEXT_SHAPES = [
    ("market", {"state": "fail", "failMsg": {"code": "E1", "message": "nope"}}, '{"code": "E1", "message": "nope"}'),
    ("market", {"state": "fail", "failMsg": 42, "failCode": 7}, "42"),
    ("veo", {"successFlag": 2, "errorMessage": {"a": [1, None]}}, '{"a": [1, null]}'),
    ("aleph", {"successFlag": 0, "errorMessage": 3.5}, "3.5"),
    ("gpt4o", {"status": "GENERATE_FAILED", "errorMessage": ["x"]}, '["x"]'),
    ("flux", {"successFlag": 2, "errorMessage": True}, "true"),
    ("runway", {"state": "fail", "failMsg": {"detail": "x"}}, '{"detail": "x"}'),
]


@pytest.mark.parametrize(("family", "data", "message"), FAMILY_TEXT_SHAPES)
def test_every_family_takes_a_number_or_object_where_kie_should_send_text(family, data, message):
    status = FAMILIES[family].parse_status("t", data)
    assert status.state is TaskState.FAILED and status.fail_message == message
    named = FAMILIES["market"].parse_status("t", {"state": "success", "model": 7, "resultJson": "{}"})
    assert named.state is TaskState.SUCCEEDED and named.model is None  # a number names no model


async def test_a_status_with_a_number_or_object_where_text_belongs_is_taken_not_retried_forever(
    connect, controls, transport, tmp_path
):
    """A charged success whose ``model`` is a number is saved, and a failure whose ``failMsg`` is an object is
    reported (and refunded): before, each look raised a ValidationError and the task stayed queued."""

    def model_is_a_number(body: dict[str, Any]) -> dict[str, Any]:
        body["data"]["model"] = 7
        return body

    transport.rewrites[RECORD] = model_is_a_number
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        await controls.fault("create", kind="task_fail", fail_msg="nope")

        def fail_msg_is_an_object(body: dict[str, Any]) -> dict[str, Any]:
            if body["data"]["state"] == "fail":
                body["data"]["failMsg"] = {"code": "E1", "message": body["data"]["failMsg"]}
            return body

        transport.rewrites[RECORD] = fail_msg_is_an_object
        failed = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        credits = (await client.call_tool("check_credits", {})).structured_content
    assert made.structured_content["status"] == "completed", text_of(made)
    assert made.structured_content["tasks"][0]["files"]
    [task] = failed.structured_content["tasks"]
    assert task["state"] == "failed" and '{"code": "E1", "message": "nope"}' in task["error"], text_of(failed)
    assert credits["spent_today"] == 8  # the success only: the failure's reservation was returned


async def test_half_an_emoji_from_kie_is_kept_as_a_replacement_character_and_the_task_is_recorded(
    connect, controls, transport, tmp_path
):
    """JSON's ``\\ud83d`` alone (an emoji cut in two) reads as a lone surrogate, which no UTF-8 writer takes: the
    journal's write failed at every look and the failed task stayed queued, its reservation never returned."""

    await controls.fault("create", kind="task_fail", fail_code="500", fail_msg="content flagged XSURR")
    transport.rewrites[RECORD] = lambda body: json.dumps(body).replace("XSURR", "\\ud83d").encode()
    async with connect(elicitation=answering()) as client:
        failed = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        transport.rewrites[CREDIT] = lambda body: b'{"code": 500, "msg": "busy \\ud83d", "data": null}'
        refused = await client.call_tool("check_credits", {})
        del transport.rewrites[CREDIT]
        credits = (await client.call_tool("check_credits", {})).structured_content
    db = sqlite3.connect(tmp_path / ".kie-mcp" / "journal.sqlite3")
    assert db.execute("SELECT state FROM tasks").fetchall() == [("failed",)]
    assert credits["spent_today"] == 0  # the failure was recorded, so its reservation was returned
    assert refused.is_error and "busy \ufffd" in text_of(refused)  # an error's message too (and the call log)
    [task] = failed.structured_content["tasks"]
    assert task["state"] == "failed" and "content flagged \ufffd" in task["error"], text_of(failed)
    assert "busy \ufffd" in (tmp_path / "logs" / "kie-api.jsonl").read_text(encoding="utf-8")


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_status_answer_about_another_task_is_never_taken_for_this_one(connect, controls, transport, tmp_path):
    """KIE (or a cache in front of it) answering about another task: its success, links and charge are not this
    task's. The look counts as failed, and the task is followed on until KIE answers about it."""

    def about_another_task(body: dict[str, Any]) -> dict[str, Any]:
        body["data"].update(
            taskId="someone-elses-task", state="success", resultJson=json.dumps({"resultUrls": [OTHER]})
        )
        return body

    transport.rewrites[RECORD] = about_another_task
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 1})
        [task] = made.structured_content["tasks"]
        looked = await client.call_tool("check_task", {"task_id": task["task_id"], "wait_seconds": 0})
        del transport.rewrites[RECORD]
        done = await client.call_tool("check_task", {"task_id": task["task_id"], "wait_seconds": 10})
    assert task["state"] != "succeeded" and OTHER not in text_of(made), text_of(made)
    assert OTHER not in text_of(looked) and looked.structured_content["task"]["state"] != "succeeded"
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    assert OTHER not in json.dumps(done.structured_content) and done.structured_content["task"]["files"]
    assert len(await controls.creates()) == 1


async def test_the_client_refuses_a_status_naming_another_task_as_a_protocol_error(transport, sim):
    transport.rewrites[RECORD] = lambda body: {**body, "data": {**body["data"], "taskId": "another"}}
    async with KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport) as kie:
        task_id = await kie.create(
            FAMILIES["market"],
            "nano-banana-2",
            {"model": "nano-banana-2", "input": {"prompt": "a fox"}},
            grant("nano-banana-2", 1, "quote", None),
        )
        with pytest.raises(KieError) as caught:
            await kie.status(FAMILIES["market"], task_id)
        assert caught.value.category is Category.PROTOCOL and caught.value.retryable
        assert task_id in caught.value.message and "another" in caught.value.message
        transport.rewrites[RECORD] = lambda body: {**body, "data": {**body["data"], "taskId": None}}
        assert (await kie.status(FAMILIES["market"], task_id)).task_id == task_id  # not named: it is this task


HUGE = 10**400  # valid JSON, and an int no float can hold: float() raises OverflowError on it


@pytest.mark.parametrize("field", ["creditsConsumed", "progress", "createTime"])
async def test_a_number_too_large_for_a_float_in_a_status_answer_is_unknown_and_the_result_still_saved(
    connect, controls, transport, tmp_path, field
):
    """Each look used to raise OverflowError, outside every guard: the task stayed "queued" for good, looked at
    again and again, and its (charged) result was never saved."""
    transport.rewrites[RECORD] = lambda body: {**body, "data": {**body["data"], field: HUGE}}
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
    [task] = made.structured_content["tasks"]
    assert task["state"] == "succeeded" and task["files"], text_of(made)
    assert (tmp_path / task["files"][0]).is_file()
    if field == "creditsConsumed":
        assert task["credits_charged"] is None  # no charge KIE could have meant: unknown, the estimate stands


@pytest.mark.parametrize("family", ["veo", "aleph", "gpt4o", "flux"])
@pytest.mark.parametrize("flag", ["²", "①", " ", "1.0", "-1"])
def test_a_success_flag_that_is_no_decimal_number_is_no_state_and_never_an_error(family, flag):
    """``"²".isdigit()`` is true and ``int("²")`` raises: the whole answer was unreadable. Now the flag is unknown."""
    status = FAMILIES[family].parse_status("t", {"successFlag": flag, "state": "generating"})
    assert status.state in (TaskState.RUNNING, TaskState.QUEUED)


async def test_a_veo_task_answered_with_an_odd_success_flag_is_kept_unfinished_saying_so_and_saved_once_kie_says_more(
    connect, controls, transport, tmp_path
):
    """While KIE sends ``successFlag: "²"`` the answer is read (never a crash that leaves the task silently queued):
    the task is kept unfinished, with the flag KIE sent noted on it; once KIE sends a flag that means something, the
    video is saved."""
    veo = FAMILIES["veo"].status_path
    transport.rewrites[veo] = lambda body: {**body, "data": {**body["data"], "successFlag": "²"}}
    async with connect(elicitation=answering()) as client:
        _, odd, done = await looked_then_answered(client, transport, veo, VIDEO)
    assert odd.structured_content["task"]["state"] in ("queued", "running"), text_of(odd)
    assert "successFlag=²" in odd.structured_content["task"]["error"] and "not marked failed" in text_of(odd)
    assert done.structured_content["task"]["state"] == "succeeded" and done.structured_content["task"]["files"]


async def test_an_aleph_success_flag_of_2_no_doc_or_live_answer_shows_keeps_the_task_and_its_reservation(
    connect, controls, transport
):
    """The review: Aleph's successFlag 2 was taken for a failure, as Veo's 2 is, and the task's 110 credits given
    back, though KIE's Aleph docs define only 0 and 1 and live it answered a failure with 3. A flag kie-mcp does not
    know for the family keeps the task as it was (never failed or refunded on a guess), says what KIE sent, and the
    video is saved once KIE says more."""
    aleph = FAMILIES["aleph"].status_path
    transport.rewrites[aleph] = lambda body: {**body, "data": {**body["data"], "successFlag": 2}}
    video = {"model": "runway-aleph", "prompt": "make it rain", "options": {"videoUrl": "https://example.com/v.mp4"}}
    async with connect(elicitation=answering(), max_credits_per_call=10_000) as client:
        made, odd, done = await looked_then_answered(client, transport, aleph, video)
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    task = odd.structured_content["task"]
    assert task["state"] in ("queued", "running") and task["fail_code"] is None, text_of(odd)
    assert "successFlag=2" in task["error"] and "not marked failed" in text_of(odd), task["error"]
    assert done.structured_content["task"]["state"] == "succeeded" and done.structured_content["task"]["files"]
    assert spent == made.structured_content["tasks"][0]["credits_reserved"] > 0  # counted as spent, never given back


async def looked_then_answered(
    client: Any, transport: Rewriting, path: str, video: dict[str, Any]
) -> tuple[Any, Any, Any]:
    """Make one ``video`` while ``path``'s answers are rewritten and look at it at once (check_task, wait_seconds=0),
    then let KIE's own answers through and look again, waiting up to 20 s: the create's answer and the two looks."""
    made = await client.call_tool("generate_video", {**video, "wait_seconds": 0})
    task_id = made.structured_content["tasks"][0]["task_id"]
    odd = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    del transport.rewrites[path]
    return made, odd, await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})


async def test_a_status_answer_no_reader_foresaw_is_a_protocol_error_that_repeats_no_value(transport, sim):
    """Whatever a family's reader raises on an answer becomes a retryable protocol error that says what to do; a
    plain exception escaped every guard and the task was asked about at full rate forever. The answer's values
    (which could echo a secret) are never repeated."""

    class Unforeseen(type(FAMILIES["market"])):  # a reader meeting garbage nobody foresaw
        def parse_status(self, task_id: str, data: dict[str, Any]) -> Any:
            raise ValueError(f"cannot read {data.get('secret')}")

    transport.rewrites[RECORD] = lambda body: {**body, "data": {**body["data"], "secret": "sk-do-not-repeat"}}
    async with KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport) as kie:
        body = {"model": "nano-banana-2", "input": {"prompt": "a fox"}}
        task_id = await kie.create(FAMILIES["market"], "nano-banana-2", body, grant("nano-banana-2", 1, "quote", None))
        with pytest.raises(KieError) as caught:
            await kie.status(Unforeseen(), task_id)
    err = caught.value
    assert err.category is Category.PROTOCOL and err.retryable and err.code is None
    assert task_id in err.message and "could not be read" in err.message
    assert "asks again" in err.next_step and "kie.ai/logs" in err.next_step
    assert "sk-do-not-repeat" not in str(err)


async def test_a_task_whose_status_answers_cannot_be_used_says_why_and_stays_followed(connect, transport):
    """An answer that cannot be used leaves the task as it was (never failed, never refunded on a guess), with a
    note saying why that check_task shows; the task is looked at again and the note goes once KIE answers."""
    transport.rewrites[RECORD] = lambda body: {**body, "data": {**body["data"], "taskId": "someone-elses-task"}}
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        stuck = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        listed = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
        del transport.rewrites[RECORD]
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    task = stuck.structured_content["task"]
    assert task["state"] in ("queued", "running") and not stuck.is_error, text_of(stuck)
    assert task["error"].startswith("KIE's last status answer could not be used: ") and task["error"] in text_of(stuck)
    assert listed[0]["error"] == task["error"]  # in the journal too
    assert done.structured_content["task"]["state"] == "succeeded" and done.structured_content["task"]["error"] is None


async def test_an_upload_answer_with_a_mime_type_or_size_that_is_not_text_still_uploads(connect, transport, tmp_path):
    Image.new("RGB", (1200, 900), (200, 60, 40)).save(tmp_path / "photo.png")

    def odd_types(body: dict[str, Any]) -> dict[str, Any]:
        body["data"].update(mimeType=0, fileSize=json.loads("1e400"), fileName={"x": 1})
        return body

    for path in UPLOAD_PATHS:
        transport.rewrites[path] = odd_types
    async with connect() as client:
        result = await client.call_tool("upload_file", {"path": "photo.png"})
    assert not result.is_error, text_of(result)
    assert "unexpected error" not in text_of(result) and "http://upload.kie.test/" in text_of(result)


# -- answers too long to hold ------------------------------------------------------------------------------------

ENDLESS = MAX_ANSWER_BYTES + 1024**2  # a well-formed success envelope, a megabyte past the limit


async def test_a_create_answered_without_end_is_unknown_counted_never_resent_and_never_read_whole(
    connect, controls, sim
):
    await controls.fault("create", kind="huge", bytes=ENDLESS)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    assert result.structured_content["status"] == "unknown", text_of(result)
    assert "longer than 16 MiB" in text_of(result) and "may have been created" in text_of(result)
    assert len(await controls.creates()) == 1  # never sent again
    assert credits["spent_today"] == 8 and credits["unknown_creates"] == 1  # counted against the caps


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip bomb"])
async def test_a_read_answered_without_end_is_a_clear_error_and_the_next_read_works(connect, controls, compressed):
    """A gzip bomb (256 MiB of padding in about 250 KB on the wire) is stopped at the limit after decompression."""
    await controls.fault("credit", kind="huge", bytes=ENDLESS if not compressed else 256 * 1024**2, gzip=compressed)
    async with connect() as client:
        refused = await client.call_tool("check_credits", {})
        again = await client.call_tool("check_credits", {})
    assert refused.is_error and "longer than 16 MiB" in text_of(refused) and "try again" in text_of(refused)
    assert "unexpected error" not in text_of(refused)
    assert not again.is_error and again.structured_content["balance_credits"] == 5000


async def test_a_create_answered_with_broken_compression_is_unknown_and_never_resent(connect, controls, transport):
    def broken_gzip(body: dict[str, Any]) -> bytes:
        return b"\x1f\x8b\x08\x00garbage, not gzip"

    transport.rewrites[CREATE] = broken_gzip
    transport.encoding[CREATE] = "gzip"
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
    assert result.structured_content["status"] == "unknown", text_of(result)
    assert "could not be decompressed" in text_of(result) and "may have been created" in text_of(result)
    assert len(await controls.creates()) == 1


async def test_over_real_tcp_an_endless_answer_is_never_held_whole_in_memory():
    """256 MiB offered over loopback: the client reads to the limit and drops the connection; its memory stays near
    the limit (reading it all would hold at least the 256 MiB)."""
    sim = Simulator(SimConfig(speed=0))
    async with served_over_tcp(sim) as base:
        sim.faults.add(parse_fault("credit", {"kind": "huge", "bytes": 256 * 1024**2}))
        kie = KieClient(api_key=SANDBOX_API_KEY, base_url=base, upload_base_url=base)
        tracemalloc.start()
        try:
            with pytest.raises(KieError) as caught:
                await kie.credits()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert await kie.credits() == 5000  # the connection it dropped is not reused half-read
        await kie.aclose()
    assert caught.value.category is Category.PROTOCOL and caught.value.retryable
    assert peak < MAX_ANSWER_BYTES + 32 * 1024**2, f"{peak / 1024**2:.0f} MiB"


# -- answers outside KIE's documented vocabulary, and answers naming too many results --------------------------------


def with_links(count: int) -> Callable[[dict[str, Any]], Any]:
    """A Market success answer naming ``count`` distinct links to its real result (``?copy=n``): garbage, but every
    link a file the simulator serves, and all of it within the 16 MiB an answer may be."""

    def rewrite(body: dict[str, Any]) -> Any:
        data = body.get("data") or {}
        if data.get("state") != "success":
            return None
        [url] = json.loads(data["resultJson"])["resultUrls"]
        links = [f"{url}?copy={n}" for n in range(count)]
        return {**body, "data": {**data, "resultJson": json.dumps({"resultUrls": links})}}

    return rewrite


def answers_kept(workspace, task_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        rows = db.execute("SELECT body FROM answers WHERE task_id = ?", (task_id,)).fetchall()
    return [json.loads(body) for (body,) in rows]


async def test_a_status_answer_naming_thousands_of_result_links_keeps_what_the_model_makes_and_says_so(
    connect, transport, tmp_path
):
    """One garbage answer naming 20,000 links gave the task all of them, for good: check_task, list_tasks and both
    resources weighed 5 MiB on every call. A task keeps at most 24 (nano-banana-2 has no count field saying how many
    it makes), says how many KIE named and how many were dropped, and KIE's whole answer stays in the journal."""
    transport.rewrites[RECORD] = with_links(20_000)
    async with connect(elicitation=answering(), download=False) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        listed = await client.call_tool("list_tasks", {})
        views = [
            (await client.read_resource(uri)).contents[0].text for uri in ("kie://tasks", f"kie://tasks/{task_id}")
        ]
    task = checked.structured_content["task"]
    assert task["state"] == "succeeded" and len(task["result_urls"]) == 24, text_of(checked)
    assert "it named 20000; kie-mcp kept the first 24 and dropped 19976" in task["note"]
    assert task["note"] in text_of(checked)
    for answer_ in (made, checked, listed):
        assert len(json.dumps(answer_.model_dump(mode="json"))) < 64 * 1024
    assert all(len(view) < 64 * 1024 for view in views)
    [kept] = answers_kept(tmp_path, task_id)  # the whole answer, once, however often the task was looked at
    assert len(json.loads(kept["resultJson"])["resultUrls"]) == 20_000


@pytest.mark.parametrize(
    ("model", "links", "kept"),
    [("google/imagen4-fast", 60, 8), ("grok-imagine/text-to-image", 6, 6)],
    ids=["garbage", "six-a-call"],
)
async def test_a_task_saves_the_results_its_model_makes_and_never_hundreds(
    connect, transport, tmp_path, model, links, kept
):
    """500 links in one answer wrote 1,001 files to outputs/ (each link saved, with a preview). A model whose data
    says how many it makes (Imagen 4 Fast: up to 4) keeps those and 4 more. The review: Grok Imagine makes six images
    a call (its data says so in words, with no count field), and a cap of "one, plus 4" dropped the sixth, paid for;
    a model with no count field keeps up to 24."""
    transport.rewrites[RECORD] = with_links(links)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {"prompt": "a red apple", "model": model, "wait_seconds": 20})
    [task] = made.structured_content["tasks"]
    assert task["state"] == "succeeded" and len(task["files"]) == kept, text_of(made)
    saved = [path for path in (tmp_path / "outputs").rglob(f"*{task['task_id']}*") if path.is_file()]
    assert len([path for path in saved if path.suffix == ".png"]) <= 2 * kept  # each result, and at most its preview
    if links > kept:
        assert f"dropped {links - kept}" in text_of(made)
    else:
        assert not task.get("note"), task["note"]


# A status word (or flag) no page of KIE's documents for that family, and what KIE said beside it.
UNDOCUMENTED = [
    ("nano-banana-2", "generate_image", {}, {"state": "canceled", "failMsg": "canceled by the user"}, "canceled"),
    (
        "runway-video",
        "generate_video",
        {"duration": 5, "aspect_ratio": "16:9"},
        {"state": "timeout", "failMsg": "timed out upstream"},
        "timeout",
    ),
    (
        "gpt-4o-image",
        "generate_image",
        {},
        {"status": "CANCELLED", "successFlag": 0, "errorMessage": "cancelled"},
        "CANCELLED",
    ),
    ("flux-kontext-pro", "generate_image", {}, {"successFlag": 4, "errorMessage": "expired"}, "successFlag=4"),
]


@pytest.mark.parametrize(
    ("model", "tool", "args", "said", "word"), UNDOCUMENTED, ids=["market", "runway", "gpt4o", "flux"]
)
async def test_a_status_word_kie_does_not_document_keeps_the_task_unfinished_with_kies_word_and_no_estimate(
    connect, transport, model, tool, args, said, word
):
    """Market "canceled", Runway "timeout", GPT-4o "CANCELLED", Flux successFlag 4 read as "running (67%), about 19 s
    left" with KIE's word dropped. The task is kept unfinished (never failed or refunded on a word kie-mcp does not
    know), says what KIE sent, shows no invented progress or time left, and ends normally once KIE speaks its
    documented vocabulary again."""
    path = FAMILIES[load_catalog().get(model).family].status_path
    transport.rewrites[path] = lambda body: {**body, "data": {**(body.get("data") or {}), **said}}
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool(tool, {"prompt": "a fox at dawn", "model": model, **args, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        odd = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
        listed = await client.call_tool("list_tasks", {})
        del transport.rewrites[path]
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
    task = odd.structured_content["task"]
    assert task["state"] in ("queued", "running"), text_of(odd)
    assert task["progress"] is None and task["eta_seconds"] is None
    assert word in task["error"] and (said.get("failMsg") or said.get("errorMessage")) in task["error"]
    assert "not marked failed, nothing refunded" in text_of(odd)
    assert "%" not in text_of(odd) and "s left" not in text_of(odd)
    assert spent == made.structured_content["tasks"][0]["credits_reserved"]  # still counted: nothing refunded
    assert "status kie-mcp does not know" in text_of(listed)
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    assert done.structured_content["task"]["error"] is None and done.structured_content["task"]["files"]


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_kie_keeps_answering_with_an_unknown_status_word_is_asked_less_often_and_its_answer_kept_once(
    connect, controls, transport, tmp_path
):
    """The word was taken for "running": the task was asked about on the running schedule (every 2 s while young),
    however long KIE kept answering it. Now it backs off (4 s, 8 s, ... up to a minute); KIE's answer is kept in the
    journal once, not at every look."""
    transport.rewrites[RECORD] = lambda body: {**body, "data": {**(body.get("data") or {}), "state": "canceled"}}
    # poll_min_interval 0.05 s: one schedule second is 25 ms, so the 3 s below are 120 schedule seconds.
    async with connect(elicitation=answering(), poll_min_interval=0.05) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        await anyio.sleep(3)
        requests = await controls.get("requests")
        items = requests if isinstance(requests, list) else requests["requests"]
        asked = [r for r in items if r["path"] == RECORD and r["query"].get("taskId") == task_id]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0.1})
    assert 1 <= len(asked) <= 10, len(asked)
    assert checked.structured_content["task"]["state"] in ("queued", "running")
    assert len(answers_kept(tmp_path, task_id)) == 1


async def test_a_veo_success_flag_sent_as_a_whole_float_is_a_success_and_the_video_saved(connect, transport):
    """``successFlag: 1.0`` (1 as some JSON writers write it) was no flag at all: the success was never seen, the
    video never saved, and the task asked about for 14 days."""
    veo = FAMILIES["veo"].status_path

    def as_float(body: dict[str, Any]) -> Any:
        data = body.get("data") or {}
        return {**body, "data": {**data, "successFlag": float(data["successFlag"])}} if "successFlag" in data else None

    transport.rewrites[veo] = as_float
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 20})
    [task] = made.structured_content["tasks"]
    assert task["state"] == "succeeded" and task["files"], text_of(made)
