"""The envelope and error taxonomy on raw HTTP answers, and the family adapters on documented shapes."""

import json

import httpx2
import pytest

from kie_mcp.kie import CODES, FAMILIES, Category, KieError, TaskState
from kie_mcp.kie.envelope import read_envelope
from kie_mcp.kie.pacing import SlidingWindow


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
