"""HTTP-level tests of the KIE simulator: every behaviour is checked through its real HTTP interface."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator

from .conftest import HandClock, served_over_tcp

BASE = "http://sandbox.test"
HEADERS = {"User-Agent": "test", "Authorization": f"Bearer {SANDBOX_API_KEY}"}
CREATE = "/api/v1/jobs/createTask"
RECORD = "/api/v1/jobs/recordInfo"
CREDIT = "/api/v1/chat/credit"
VEO = "/api/v1/veo"
PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"


@pytest.fixture
def sim() -> Simulator:
    sim = Simulator(SimConfig(speed=0))
    sim.rate_clock = sim.now  # one clock, moved by hand (advance); the rate limits' own tests keep them apart
    return sim


@pytest.fixture
def wall() -> HandClock:
    return HandClock()


@pytest.fixture
async def limited(wall: HandClock) -> AsyncIterator[tuple[httpx2.AsyncClient, Simulator]]:
    """A client of a simulator whose rate limits count ``wall``'s seconds, apart from its simulated clock."""
    sim = Simulator(SimConfig(speed=0), rate_clock=wall)
    async with httpx2.AsyncClient(transport=SandboxTransport(sim), base_url=BASE, headers=HEADERS) as c:
        yield c, sim


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=SandboxTransport(sim), base_url=BASE, headers=HEADERS) as c:
        yield c


async def body(client: httpx2.AsyncClient, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = await client.request(method, path, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


async def create(client: httpx2.AsyncClient, model: str = "nano-banana-2", **fields: Any) -> dict[str, Any]:
    return await body(client, "POST", CREATE, json={"model": model, "input": {"prompt": "a red fox", **fields}})


async def create_id(client: httpx2.AsyncClient, model: str = "nano-banana-2", **fields: Any) -> str:
    answer = await create(client, model, **fields)
    assert answer["code"] == 200, answer
    return answer["data"]["taskId"]


async def record(client: httpx2.AsyncClient, task_id: str) -> dict[str, Any]:
    return await body(client, "GET", RECORD, params={"taskId": task_id})


async def veo_generate(client: httpx2.AsyncClient, **fields: Any) -> str:
    answer = await body(client, "POST", f"{VEO}/generate", json={"prompt": "a cat surfing", **fields})
    assert answer["code"] == 200, answer
    return answer["data"]["taskId"]


async def veo_record(client: httpx2.AsyncClient, task_id: str) -> dict[str, Any]:
    return await body(client, "GET", f"{VEO}/record-info", params={"taskId": task_id})


async def add_fault(client: httpx2.AsyncClient, endpoint: str, fault: dict[str, Any], times: int = 1) -> None:
    answer = await body(client, "POST", "/__sim/faults", json={"endpoint": endpoint, "fault": fault, "times": times})
    assert answer["ok"] is True


# -- auth, envelope, credits ------------------------------------------------------------------


async def test_missing_or_unknown_key_is_401_in_a_200(client: httpx2.AsyncClient) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        response = await client.get(CREDIT, headers=headers)
        assert response.status_code == 200
        assert response.json() == {"code": 401, "msg": "You do not have access permissions", "data": None}


async def test_credit_is_a_bare_number_and_can_be_fractional(client: httpx2.AsyncClient, sim: Simulator) -> None:
    assert await body(client, "GET", CREDIT) == {"code": 200, "msg": "success", "data": 5000}
    sim.set_balance(12.5)
    assert (await body(client, "GET", CREDIT))["data"] == 12.5


async def test_unknown_path_is_a_404_envelope(client: httpx2.AsyncClient) -> None:
    response = await client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["code"] == 404
    assert response.json()["data"] is None


async def test_missing_user_agent_gets_cloudflare_1010(client: httpx2.AsyncClient) -> None:
    request = client.build_request("GET", CREDIT)
    del request.headers["User-Agent"]
    response = await client.send(request)
    assert response.status_code == 403
    assert response.text == "error code: 1010"
    assert response.headers["content-type"].startswith("text/plain")


async def test_strict_http_and_message_key(client: httpx2.AsyncClient, sim: Simulator) -> None:
    sim.config.strict_http = True
    sim.config.message_key = True
    response = await client.get(CREDIT, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == {"code": 401, "message": "You do not have access permissions", "data": None}
    sim.set_balance(1)
    response = await client.post(CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}})
    assert response.status_code == 402
    assert response.json()["message"] == "The current credits are insufficient. Please top up."
    assert (await client.get(CREDIT)).status_code == 200


# -- market jobs ---------------------------------------------------------------------------


async def test_market_task_advances_with_the_clock_to_success(client: httpx2.AsyncClient, sim: Simulator) -> None:
    """The Market answers as KIE's do (recorded live 2026-04-30, see sandbox/market.py): createTask names the task
    twice (taskId, recordId); recordInfo's failCode, failMsg, costTime and completeTime are null until the task ends,
    failCode and failMsg stay null on success, costTime is whole seconds, param holds the input as JSON text, and
    the record carries neither creditsConsumed nor updateTime (settings that add them: SimConfig)."""
    request_body = {"model": "nano-banana-2", "input": {"prompt": "a red fox", "output_format": "png"}}
    answer = await body(client, "POST", CREATE, json=request_body)
    task_id = answer["data"]["taskId"]
    assert re.fullmatch(r"[0-9a-f]{32}", task_id)
    assert answer["data"] == {"taskId": task_id, "recordId": task_id}
    assert await body(client, "GET", CREDIT) == {"code": 200, "msg": "success", "data": 4992}  # 8 credits at 1K

    duration = sim.tasks[task_id].duration
    low, high = 5, 60  # nano-banana-2 typical_seconds
    assert low <= duration <= high
    data = (await record(client, task_id))["data"]
    assert data["state"] == "waiting"
    assert data["resultJson"] == ""
    assert (data["failCode"], data["failMsg"], data["costTime"], data["completeTime"]) == (None, None, None, None)
    param = json.loads(data["param"])
    assert param == {"input": param["input"], "model": "nano-banana-2"} and isinstance(param["input"], str)
    assert json.loads(param["input"]) == request_body["input"]
    assert "creditsConsumed" not in data and "updateTime" not in data
    assert "progress" not in data
    seen = {data["state"]}
    for _ in range(20):
        sim.advance(duration / 20 + 1e-6)
        seen.add((await record(client, task_id))["data"]["state"])
    assert seen >= {"waiting", "queuing", "generating", "success"}

    data = (await record(client, task_id))["data"]
    assert data["state"] == "success"
    assert "creditsConsumed" not in data and "updateTime" not in data
    sim.config.report_credits_consumed = sim.config.report_update_time = True  # a KIE that reports them
    reported = (await record(client, task_id))["data"]
    assert reported["creditsConsumed"] == 8 and reported["updateTime"] == reported["completeTime"]
    assert data["failCode"] is None
    assert data["failMsg"] is None
    assert isinstance(data["createTime"], int)
    assert data["costTime"] == round((data["completeTime"] - data["createTime"]) / 1000)  # seconds, as KIE's
    assert abs(data["costTime"] - duration) <= 0.5 + 1e-3
    assert isinstance(data["resultJson"], str)
    urls = json.loads(data["resultJson"])["resultUrls"]
    assert urls == [f"{BASE}/files/{task_id}/0.png"]

    async with httpx2.AsyncClient(transport=client._transport) as anonymous:  # result files need no auth
        image = await anonymous.get(urls[0])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(PNG)


async def test_jpg_output_format_makes_jpeg_and_sora_reports_progress(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    task_id = await create_id(client, output_format="jpg")
    sim.advance(60)
    url = json.loads((await record(client, task_id))["data"]["resultJson"])["resultUrls"][0]
    assert url.endswith(".jpg")
    assert (await client.get(url)).content.startswith(JPEG)

    sora = await create_id(client, "sora-2-text-to-video")
    assert sora.startswith("task_sora-2-text-to-video_")
    assert (await record(client, sora))["data"]["progress"] == 0
    sim.advance(sim.tasks[sora].duration / 2)
    assert 40 <= (await record(client, sora))["data"]["progress"] <= 60
    sim.advance(300)
    data = (await record(client, sora))["data"]
    assert (data["state"], data["progress"]) == ("success", 100)
    video = await client.get(json.loads(data["resultJson"])["resultUrls"][0])
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    assert len(video.content) == sim.config.video_bytes


async def test_failed_task_is_refunded(client: httpx2.AsyncClient, sim: Simulator) -> None:
    sim.config.report_credits_consumed = True  # the refund, as a KIE reporting its charge says it
    await add_fault(client, "create", {"kind": "task_fail", "fail_code": "500", "fail_msg": "Internal server error"})
    task_id = await create_id(client)
    assert sim.balance() == 4992
    data = (await record(client, task_id))["data"]
    assert data["state"] in ("waiting", "queuing", "generating")
    assert data["creditsConsumed"] == 8
    sim.advance(60)
    data = (await record(client, task_id))["data"]
    assert data["state"] == "fail"
    assert (data["failCode"], data["failMsg"], data["resultJson"]) == ("500", "Internal server error", "")
    assert data["creditsConsumed"] == 0
    assert (await body(client, "GET", CREDIT))["data"] == 5000

    sim.config.refund_on_fail = False
    kept = await create_id(client)
    await body(client, "POST", f"/__sim/tasks/{kept}", json={"state": "fail", "fail_code": "501"})
    data = (await record(client, kept))["data"]
    assert (data["state"], data["failCode"], data["creditsConsumed"]) == ("fail", "501", 8)
    assert sim.balance() == 4992


async def test_a_record_that_says_failed_also_says_refunded_whenever_the_clock_turns(
    client: httpx2.AsyncClient, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The virtual clock runs while a status read is answered. When it passes the task's end between finding the
    task and writing the answer, the answer must still be one instant: "fail" with the credits refunded, never
    "fail" with them consumed (kie-mcp would then book no refund: a flaky test under load showed it)."""
    sim.config.report_credits_consumed = True  # the refund, as a KIE reporting its charge says it
    await add_fault(client, "create", {"kind": "task_fail"})
    task_id = await create_id(client)
    end = sim.tasks[task_id].end_at
    clock = {"now": end - 0.001}
    monkeypatch.setattr(sim, "now", lambda: clock["now"])
    found = sim.get_task

    def found_then_the_clock_turns(*args: Any, **kwargs: Any) -> Any:
        task = found(*args, **kwargs)
        clock["now"] = end + 0.001
        return task

    monkeypatch.setattr(sim, "get_task", found_then_the_clock_turns)
    data = (await record(client, task_id))["data"]
    assert data["state"] == "fail"
    assert data["creditsConsumed"] == 0 and sim.balance() == 5000


async def test_low_balance_is_402_and_nothing_is_created(client: httpx2.AsyncClient, sim: Simulator) -> None:
    sim.set_balance(7.5)
    answer = await create(client)
    assert answer == {"code": 402, "msg": "The current credits are insufficient. Please top up.", "data": None}
    assert sim.tasks == {}
    assert sim.balance() == 7.5


async def test_unknown_model_and_invalid_input_are_422(client: httpx2.AsyncClient, sim: Simulator) -> None:
    answer = await create(client, "no-such-model")
    assert answer == {"code": 422, "msg": "The page does not exist or is not published", "data": None}
    answer = await body(
        client, "POST", CREATE, json={"model": "nano-banana-2", "input": {"aspect_ratio": "7:5", "colour": "red"}}
    )
    assert answer["code"] == 422
    for field in ("prompt", "aspect_ratio", "colour"):
        assert field in answer["msg"]
    assert sim.tasks == {}
    assert sim.balance() == 5000


async def test_record_info_errors_and_visibility_lag(client: httpx2.AsyncClient, sim: Simulator) -> None:
    assert await body(client, "GET", RECORD) == {"code": 400, "msg": "taskId parameter is required", "data": None}
    assert (await record(client, "nope"))["msg"] == "recordInfo is null"
    sim.config.visibility_lag_polls = 2
    task_id = await create_id(client)
    assert [(await record(client, task_id))["code"] for _ in range(3)] == [422, 422, 200]


async def test_create_window_429_then_ok_after_the_window(
    limited: tuple[httpx2.AsyncClient, Simulator], wall: HandClock
) -> None:
    client, sim = limited
    first = await create_id(client)
    # polls, uploads and credit checks do not count toward the create window
    for _ in range(5):
        await record(client, first)
    for _ in range(3):
        upload = {"base64Data": "aGk=", "uploadPath": "x"}
        assert (await body(client, "POST", "/api/file-base64-upload", json=upload))["success"] is True
    await body(client, "GET", CREDIT)
    for _ in range(19):
        await create_id(client)
    assert sim.balance() == 5000 - 20 * 8
    answer = await create(client)
    assert answer == {"code": 429, "msg": "Rate limit exceeded", "data": None}
    assert len(sim.tasks) == 20
    assert sim.balance() == 5000 - 20 * 8
    wall.move(9.9)
    assert (await create(client))["code"] == 429
    wall.move(0.2)
    assert (await create(client))["code"] == 200


async def test_kie_s_rate_limits_count_real_seconds_however_fast_the_simulated_clock_runs(
    limited: tuple[httpx2.AsyncClient, Simulator], wall: HandClock
) -> None:
    """The audit: ``kie-mcp sim`` (x30) took 25 creates in 1.5 s, as its windows ran on the simulated clock, where
    KIE refuses the 21st within 10 real seconds; a client paced against the simulator then failed live. Simulated
    minutes pass between these requests and the windows do not move; real seconds move them."""
    client, sim = limited
    codes = []
    for _ in range(21):
        codes.append((await create(client))["code"])
        sim.advance(60)  # the tasks move on: a simulated minute per create
    assert codes == [200] * 20 + [429]
    task_id = next(iter(sim.tasks))
    reads = []
    for _ in range(11):
        reads.append((await record(client, task_id))["code"])
        sim.advance(5)
    assert reads == [200] * 10 + [429]
    wall.move(1.01)
    assert (await record(client, task_id))["code"] == 200
    assert (await create(client))["code"] == 429  # 10 s have not passed
    wall.move(9)
    assert (await create(client))["code"] == 200


async def test_at_kie_mcp_sim_s_own_speed_the_21st_create_within_10_s_is_refused() -> None:
    """As ``kie-mcp sim`` runs it (x30, the real clock): 21 creates in about a second (half a simulated minute) are
    20 tasks and a 429."""
    sim = Simulator(SimConfig(speed=30.0))
    codes = []
    async with httpx2.AsyncClient(transport=SandboxTransport(sim), base_url=BASE, headers=HEADERS) as client:
        for _ in range(21):
            codes.append((await create(client))["code"])
            await asyncio.sleep(0.05)
    assert codes == [200] * 20 + [429] and len(sim.tasks) == 20


async def test_poll_limit_and_running_task_cap(limited: tuple[httpx2.AsyncClient, Simulator], wall: HandClock) -> None:
    client, sim = limited
    task_id = await create_id(client)
    codes = [(await record(client, task_id))["code"] for _ in range(11)]
    assert codes == [200] * 10 + [429]
    wall.move(1.01)
    assert (await record(client, task_id))["code"] == 200

    sim.config.max_running_tasks = 2
    await create_id(client)
    answer = await create(client)
    assert answer["code"] == 429
    assert len(sim.tasks) == 2
    sim.advance(120)  # the running-task cap is about tasks, on the simulated clock
    assert (await create(client))["code"] == 200


# -- Veo ------------------------------------------------------------------------------------


async def test_veo_generate_and_record_info(client: httpx2.AsyncClient, sim: Simulator) -> None:
    task_id = await veo_generate(client, aspectRatio="9:16")
    assert task_id.startswith("veo_task_")
    assert sim.balance() == 5000 - 60
    data = (await veo_record(client, task_id))["data"]
    assert data["successFlag"] == 0
    assert data["response"] is None
    assert data["completeTime"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", data["createTime"])
    assert json.loads(data["paramJson"]) == {"prompt": "a cat surfing", "aspectRatio": "9:16"}
    assert data["fallbackFlag"] is False
    sim.advance(300)
    data = (await veo_record(client, task_id))["data"]
    assert data["successFlag"] == 1
    assert (data["errorCode"], data["errorMessage"]) == (None, "")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", data["completeTime"])
    response = data["response"]
    assert response["resultUrls"] == [f"{BASE}/files/{task_id}/0.mp4"]
    assert response["originUrls"] == [f"{BASE}/files/{task_id}/origin-0.mp4"]
    assert response["resolution"] == "720p"
    assert (await client.get(response["resultUrls"][0])).content[4:8] == b"ftyp"

    wide = await veo_generate(client, aspect_ratio="16:9", model="veo3")
    assert sim.balance() == 5000 - 60 - 250
    sim.advance(300)
    assert (await veo_record(client, wide))["data"]["response"]["originUrls"] is None
    assert (await veo_record(client, "nope"))["msg"] == "Record not found for taskId: nope"  # as KIE's, live
    answer = await body(client, "POST", f"{VEO}/generate", json={"prompt": "x", "model": "veo9"})
    assert answer["code"] == 422
    answer = await body(client, "POST", f"{VEO}/generate", json={"prompt": "x", "duration": 5})
    assert answer["code"] == 422
    assert "duration" in answer["msg"]


async def test_veo_1080p_processing_then_ready_and_charged_once(client: httpx2.AsyncClient, sim: Simulator) -> None:
    task_id = await veo_generate(client)
    hd = {"taskId": task_id, "index": 0}
    answer = await body(client, "GET", f"{VEO}/get-1080p-video", params=hd)
    assert answer == {"code": 422, "msg": "record status is not success", "data": None}
    sim.advance(300)
    before = sim.balance()
    for _ in range(3):
        answer = await body(client, "GET", f"{VEO}/get-1080p-video", params=hd)
        assert answer["code"] != 200
        assert answer["msg"] == "1080P is processing, ready in 1-2 minutes"
        sim.advance(10)
    assert sim.balance() == before - 5
    sim.advance(180)
    answer = await body(client, "GET", f"{VEO}/get-1080p-video", params=hd)
    assert answer["code"] == 200
    url = answer["data"]["resultUrl"]
    assert url.endswith("/1080p-0.mp4")
    assert (await client.get(url)).status_code == 200
    assert sim.balance() == before - 5
    # an upgraded clip cannot be extended
    answer = await body(client, "POST", f"{VEO}/extend", json={"taskId": task_id, "prompt": "more"})
    assert (answer["code"], answer["msg"]) == (422, "Videos upgraded to 1080P cannot be extended")


async def test_veo_4k_is_a_new_task(client: httpx2.AsyncClient, sim: Simulator) -> None:
    task_id = await veo_generate(client)
    sim.advance(300)
    answer = await body(client, "POST", f"{VEO}/get-4k-video", json={"taskId": task_id, "index": 0})
    assert answer["code"] == 200
    uhd = answer["data"]["taskId"]
    assert answer["data"] == {"taskId": uhd, "resultUrls": None, "imageUrls": None}
    assert uhd != task_id
    assert sim.balance() == 5000 - 60 - 120
    again = await body(client, "POST", f"{VEO}/get-4k-video", json={"taskId": task_id, "index": 0})
    assert again["data"]["taskId"] == uhd
    assert sim.balance() == 5000 - 60 - 120
    sim.advance(299)
    assert (await veo_record(client, uhd))["data"]["successFlag"] == 0
    sim.advance(302)
    data = (await veo_record(client, uhd))["data"]
    assert data["successFlag"] == 1
    assert data["response"]["resolution"] == "4k"
    assert (await client.get(data["response"]["imageUrls"][0])).content.startswith(JPEG)
    assert "fallbackFlag" not in data  # KIE: 4K tasks do not include it; a generation's record does
    assert (await veo_record(client, task_id))["data"]["fallbackFlag"] is False


async def test_veo_extend_rules_and_prices(client: httpx2.AsyncClient, sim: Simulator) -> None:
    task_id = await veo_generate(client)
    extend = f"{VEO}/extend"
    answer = await body(client, "POST", extend, json={"taskId": task_id, "prompt": "and then"})
    assert (answer["code"], answer["msg"]) == (422, "record status is not success")
    sim.advance(300)
    answer = await body(client, "POST", extend, json={"taskId": "nope", "prompt": "and then"})
    assert (answer["code"], answer["msg"]) == (422, "record is null")
    answer = await body(client, "POST", extend, json={"taskId": task_id, "prompt": "x", "model": "turbo"})
    assert answer["code"] == 422
    before = sim.balance()
    fast = await body(client, "POST", extend, json={"taskId": task_id, "prompt": "and then"})
    quality = await body(client, "POST", extend, json={"taskId": task_id, "prompt": "then", "model": "quality"})
    lite = await body(client, "POST", extend, json={"taskId": task_id, "prompt": "then", "model": "lite"})
    assert all(a["code"] == 200 for a in (fast, quality, lite))
    assert sim.balance() == before - 60 - 250 - 30
    sim.advance(300)
    response = (await veo_record(client, fast["data"]["taskId"]))["data"]["response"]
    assert response["fullResultUrls"]
    uhd = (await body(client, "POST", f"{VEO}/get-4k-video", json={"taskId": task_id}))["data"]["taskId"]
    sim.advance(600)
    answer = await body(client, "POST", extend, json={"taskId": uhd, "prompt": "x"})
    assert answer["code"] == 422


# -- files, download-url, uploads --------------------------------------------------------------


async def test_download_url_is_a_bare_string_that_expires(client: httpx2.AsyncClient, sim: Simulator) -> None:
    task_id = await create_id(client)
    sim.advance(60)
    url = json.loads((await record(client, task_id))["data"]["resultJson"])["resultUrls"][0]
    answer = await body(client, "POST", "/api/v1/common/download-url", json={"url": url})
    assert answer["code"] == 200
    link = answer["data"]
    assert isinstance(link, str)
    assert link.startswith(f"{BASE}/dl/")
    assert (await client.get(link)).content == (await client.get(url)).content
    sim.advance(sim.config.download_url_ttl_seconds)
    assert (await client.get(link)).status_code == 403

    # the result URL itself expires after a day, but a fresh download-url still works
    sim.advance(sim.config.result_url_ttl_seconds)
    assert (await client.get(url)).status_code == 403
    fresh = (await body(client, "POST", "/api/v1/common/download-url", json={"url": url}))["data"]
    assert (await client.get(fresh)).status_code == 200

    foreign = {"url": "https://example.com/cat.png"}
    assert (await body(client, "POST", "/api/v1/common/download-url", json=foreign))["code"] == 422
    sim.config.mint_unknown_urls = True
    minted = (await body(client, "POST", "/api/v1/common/download-url", json=foreign))["data"]
    assert (await client.get(minted)).status_code == 404
    assert (await client.get(f"{BASE}/files/{task_id}/9.png")).status_code == 404


async def test_big_video_streams_in_chunks(client: httpx2.AsyncClient, sim: Simulator) -> None:
    sim.config.video_bytes = 3_000_000
    task_id = await create_id(client, "sora-2-text-to-video")
    sim.advance(300)
    url = json.loads((await record(client, task_id))["data"]["resultJson"])["resultUrls"][0]
    sizes: list[int] = []
    head = b""
    async with client.stream("GET", url) as response:
        assert response.headers["content-length"] == "3000000"
        async for chunk in response.aiter_raw():
            head = head or chunk[:16]
            sizes.append(len(chunk))
    assert sum(sizes) == 3_000_000
    assert len(sizes) > 10
    assert head[4:12] == b"ftypisom"
    async with client.stream("GET", url) as response:  # leaving early must not hang
        async for _ in response.aiter_raw():
            break


async def test_uploads_all_three_ways(client: httpx2.AsyncClient, sim: Simulator) -> None:
    png = (await client.get(f"{BASE}/files/missing/0.png")).status_code
    assert png == 404
    files = {"file": ("cat.png", PNG + b"rest", "image/png")}
    answer = await body(
        client, "POST", "/api/file-stream-upload", files=files, data={"uploadPath": "images/u1", "fileName": "a.png"}
    )
    assert answer["success"] is True
    assert (answer["code"], answer["msg"]) == (200, "File uploaded successfully")
    data = answer["data"]
    assert set(data) == {"fileName", "filePath", "downloadUrl", "fileSize", "mimeType", "uploadedAt"}
    assert (data["fileName"], data["filePath"], data["fileSize"], data["mimeType"]) == (
        "a.png",
        "images/u1/a.png",
        12,
        "image/png",
    )
    assert (await client.get(data["downloadUrl"])).content == PNG + b"rest"

    raw = base64.b64encode(b"hello").decode()
    answer = await body(
        client, "POST", "/api/file-base64-upload", json={"base64Data": raw, "uploadPath": "t", "fileName": "h.txt"}
    )
    assert (await client.get(answer["data"]["downloadUrl"])).content == b"hello"
    data_url = "data:image/png;base64," + base64.b64encode(PNG + b"x").decode()
    answer = await body(client, "POST", "/api/file-base64-upload", json={"base64Data": data_url, "uploadPath": "t"})
    assert answer["data"]["mimeType"] == "image/png"
    assert answer["data"]["fileName"].endswith(".png")
    # same name overwrites
    again = base64.b64encode(b"bye").decode()
    answer = await body(
        client, "POST", "/api/file-base64-upload", json={"base64Data": again, "uploadPath": "t", "fileName": "h.txt"}
    )
    assert (await client.get(answer["data"]["downloadUrl"])).content == b"bye"
    logged = [r for r in sim.requests if r.path == "/api/file-base64-upload"]
    assert all(r.body["base64Data"].startswith("<base64 elided") for r in logged)

    # url upload: a URL the sim served is copied, anything else becomes a placeholder image
    task_id = await create_id(client, output_format="png")
    sim.advance(60)
    result = json.loads((await record(client, task_id))["data"]["resultJson"])["resultUrls"][0]
    answer = await body(client, "POST", "/api/file-url-upload", json={"fileUrl": result, "uploadPath": "copies"})
    assert (await client.get(answer["data"]["downloadUrl"])).content == (await client.get(result)).content
    answer = await body(
        client, "POST", "/api/file-url-upload", json={"fileUrl": "https://example.com/x.jpg", "uploadPath": "c"}
    )
    assert answer["data"]["fileName"] == "x.jpg"
    assert (await client.get(answer["data"]["downloadUrl"])).content.startswith(PNG)

    # uploads expire after three days
    sim.advance(sim.config.upload_ttl_seconds)
    assert (await client.get(answer["data"]["downloadUrl"])).status_code == 404


async def test_upload_errors_and_old_shape(client: httpx2.AsyncClient, sim: Simulator) -> None:
    answer = await body(client, "POST", "/api/file-base64-upload", json={"base64Data": "aGk="})
    assert answer == {"success": False, "code": 400, "msg": "Missing required parameter: uploadPath", "data": None}
    answer = await body(
        client, "POST", "/api/file-base64-upload", json={"base64Data": "@@not base64@@", "uploadPath": "x"}
    )
    assert answer == {
        "success": False,
        "code": 400,
        "msg": "Base64 decoding failed: Invalid Base64 format",
        "data": None,
    }
    answer = await body(client, "POST", "/api/file-stream-upload", files={"file": ("a.bin", b"1")})
    assert (answer["success"], answer["code"]) == (False, 400)
    answer = await body(
        client,
        "POST",
        "/api/file-url-upload",
        json={"fileUrl": "https://e.com/a.png", "uploadPath": "x"},
        headers={"Authorization": "Bearer wrong"},
    )
    assert (answer["success"], answer["code"]) == (False, 401)

    sim.config.old_upload_shape = True
    answer = await body(client, "POST", "/api/file-base64-upload", json={"base64Data": "aGk=", "uploadPath": "x"})
    assert set(answer["data"]) == {
        "fileId",
        "fileName",
        "originalName",
        "fileSize",
        "mimeType",
        "uploadPath",
        "fileUrl",
        "downloadUrl",
        "uploadTime",
        "expiresAt",
    }
    assert (await client.get(answer["data"]["fileUrl"])).content == b"hi"


# -- faults ---------------------------------------------------------------------------------


async def test_code_faults_create_and_charge_nothing(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await add_fault(client, "create", {"kind": "code", "code": 455})
    await add_fault(client, "create", {"kind": "code", "code": 500, "msg": "boom"})
    await add_fault(client, "status", {"kind": "code", "code": 408})
    assert (await create(client))["code"] == 455
    assert await create(client) == {"code": 500, "msg": "boom", "data": None}
    assert sim.tasks == {}
    task_id = await create_id(client)
    answer = await record(client, task_id)
    assert answer["code"] == 408
    assert answer["msg"].startswith("Upstream is currently experiencing service issues")
    assert (await record(client, task_id))["code"] == 200
    assert sim.balance() == 4992


async def test_drop_and_drop_after_create(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await add_fault(client, "create", {"kind": "drop"})
    with pytest.raises(httpx2.RemoteProtocolError, match="Server disconnected without sending a response"):
        await client.post(CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}})
    assert sim.tasks == {}

    await add_fault(client, "create", {"kind": "drop_after_create"})
    with pytest.raises(httpx2.RemoteProtocolError, match="Server disconnected without sending a response"):
        await client.post(CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}})
    assert len(sim.tasks) == 1
    assert sim.balance() == 4992
    assert (await body(client, "GET", "/__sim/state"))["faults"] == []
    # the next create is normal again
    assert (await create(client))["code"] == 200
    assert len(sim.tasks) == 2


async def test_invalid_create_does_not_consume_a_create_fault(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await add_fault(client, "any", {"kind": "drop_after_create"})
    assert (await create(client, "nope"))["code"] == 422
    assert (await body(client, "GET", CREDIT))["code"] == 200
    with pytest.raises(httpx2.RemoteProtocolError):
        await veo_generate(client)
    assert [t.family for t in sim.tasks.values()] == ["veo"]


async def test_slow_malformed_and_html_faults(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await add_fault(client, "credit", {"kind": "slow", "seconds": 0.2})
    started = time.monotonic()
    assert (await body(client, "GET", CREDIT))["code"] == 200
    assert time.monotonic() - started >= 0.2

    await add_fault(client, "credit", {"kind": "malformed"})
    response = await client.get(CREDIT)
    assert response.status_code == 200
    with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError
        response.json()

    await add_fault(client, "any", {"kind": "html", "status": 502}, times=2)
    for path in (CREDIT, f"{RECORD}?taskId=x"):
        response = await client.get(path)
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/html")
    assert (await client.get(CREDIT)).status_code == 200

    await add_fault(client, "files", {"kind": "code", "code": 503})
    assert (await client.get(f"{BASE}/files/x/0.png")).status_code == 503


# Each family's create (path, body) and status path, and where its status answer keeps the result links.
FAMILY_TASKS: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "market": (CREATE, {"model": "nano-banana-2", "input": {"prompt": "a red fox"}}, RECORD, "resultJson"),
    "veo": (f"{VEO}/generate", {"prompt": "a cat surfing"}, f"{VEO}/record-info", "response"),
    "runway": (
        "/api/v1/runway/generate",
        {"prompt": "a cat surfing", "duration": 5, "quality": "720p", "aspectRatio": "16:9", "callBackUrl": ""},
        "/api/v1/runway/record-detail",
        "videoInfo",
    ),
    "aleph": (
        "/api/v1/aleph/generate",
        {"prompt": "make it rain", "videoUrl": "https://example.com/in.mp4"},
        "/api/v1/aleph/record-info",
        "response",
    ),
    "gpt4o": (
        "/api/v1/gpt4o-image/generate",
        {"prompt": "a fox", "size": "1:1"},
        "/api/v1/gpt4o-image/record-info",
        "response",
    ),
    "flux": ("/api/v1/flux/kontext/generate", {"prompt": "a fox"}, "/api/v1/flux/kontext/record-info", "response"),
}


@pytest.mark.parametrize("family", list(FAMILY_TASKS))
async def test_a_no_results_fault_takes_the_links_out_of_every_familys_success_in_its_own_shape(
    client: httpx2.AsyncClient, sim: Simulator, family: str
) -> None:
    """The audit: on Runway the fault did nothing (it took a Market ``resultJson`` out of an answer that has none, and
    counted itself used), so kie-mcp's handling of a success without links was never tried there; on Aleph and Flux
    Kontext "empty" replaced the links with a Market-shaped list. Each shape now holds for each family where its
    links are: "missing" none there (Runway: ``videoInfo`` null, as before success), "empty" every link there empty
    with the rest kept, "not_json" text that is not JSON; and a fault meets a success only."""
    create_path, create_body, status_path, where = FAMILY_TASKS[family]
    answer = await body(client, "POST", create_path, json=create_body)
    assert answer["code"] == 200, answer
    task_id = answer["data"]["taskId"]
    await add_fault(client, "status", {"kind": "no_results"})
    running = (await body(client, "GET", status_path, params={"taskId": task_id}))["data"]
    assert "/files/" not in json.dumps(running)
    assert len((await body(client, "GET", "/__sim/state"))["faults"]) == 1  # not a success: still queued
    await body(client, "DELETE", "/__sim/faults")
    sim.advance(3600)
    whole = (await body(client, "GET", status_path, params={"taskId": task_id}))["data"]
    assert "/files/" in json.dumps(whole[where])  # the links, as the family answers them
    for shape in ("missing", "empty", "not_json"):
        await add_fault(client, "status", {"kind": "no_results", "shape": shape})
        data = (await body(client, "GET", status_path, params={"taskId": task_id}))["data"]
        assert (await body(client, "GET", "/__sim/state"))["faults"] == [], (family, shape)
        assert "/files/" not in json.dumps(data), (family, shape, data)
        assert {k: v for k, v in data.items() if k != where} == {k: v for k, v in whole.items() if k != where}
        if shape == "missing":
            assert data.get(where) is None and (where in data) is (family == "runway"), data
        elif shape == "not_json":
            assert isinstance(data[where], str)
            with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError
                json.loads(data[where])
        else:
            links = json.loads(data[where]) if family == "market" else data[where]
            kept = json.loads(whole[where]) if family == "market" else whole[where]
            assert links.keys() == kept.keys(), (links, kept)
            emptied = {name for name, value in links.items() if value != kept[name]}
            assert emptied and all(links[name] in ("", []) for name in emptied), links


def test_a_no_results_fault_on_a_success_without_links_stays_queued() -> None:
    """Nothing to take away (a success that came without its links already): the fault waits for one that has them,
    never counted used for nothing."""
    from kie_mcp.sandbox.faults import strip_results

    for data in (
        {"state": "success", "videoInfo": None},
        {"state": "success", "resultJson": '{"resultUrls": []}'},
        {"successFlag": 1, "response": {"resultVideoUrl": "", "resultImageUrl": ""}},
    ):
        for shape in ("missing", "empty", "not_json"):
            assert strip_results(dict(data), shape) is False, (data, shape)


async def test_a_huge_fault_answers_a_whole_envelope_of_the_size_asked_plain_or_gzipped(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    for gzipped in (False, True):
        await add_fault(client, "credit", {"kind": "huge", "bytes": 3 * 1024**2 + 5, "gzip": gzipped})
        response = await client.get(CREDIT)
        assert response.headers.get("content-encoding") == ("gzip" if gzipped else None)
        assert len(response.content) == 3 * 1024**2 + 5  # decoded
        assert response.json()["code"] == 200 and set(response.json()["data"]) == {"padding"}
    assert (await body(client, "GET", CREDIT))["data"] == 5000  # used up: the next answer is normal
    for endpoint, fault in [("files", {}), ("credit", {"bytes": 10}), ("credit", {"bytes": 5 * 1024**3})]:
        refused = await client.post("/__sim/faults", json={"endpoint": endpoint, "fault": {"kind": "huge", **fault}})
        assert refused.status_code == 400 and refused.json()["ok"] is False


async def test_slow_create_times_out_but_still_creates(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await add_fault(client, "create", {"kind": "slow", "seconds": 0.3})
    with pytest.raises(httpx2.ReadTimeout):
        await client.post(CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}}, timeout=0.05)
    for _ in range(50):
        if sim.tasks:
            break
        await asyncio.sleep(0.02)
    assert len(sim.tasks) == 1
    assert sim.balance() == 4992


async def test_a_hold_fault_answers_a_create_only_once_the_test_releases_it(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    """What happens while KIE has not answered is ordered by events, never by a guess at how long a slow answer takes
    on a loaded machine: the create is logged and held, nothing created, until ``/__sim/faults/release``; then it runs
    as usual. A reset lets the held requests go on too."""
    answers: list[dict[str, Any]] = []

    async def held_create() -> None:
        answers.append(await create(client))

    async def until_held() -> None:
        with anyio.fail_after(30):
            while (await body(client, "GET", "/__sim/faults"))["held"] == 0:  # noqa: ASYNC110 - nothing to await
                await anyio.sleep(0.01)

    await add_fault(client, "create", {"kind": "hold"})
    async with anyio.create_task_group() as group:
        group.start_soon(held_create)
        await until_held()
        assert [r.path for r in sim.requests] == [CREATE] and not sim.tasks and not answers
        assert sim.faults.items == []  # used up by the create it holds
        assert (await body(client, "POST", "/__sim/faults/release"))["released"] == 1
    [answer] = answers
    assert answer["code"] == 200 and list(sim.tasks) == [answer["data"]["taskId"]]
    assert (await body(client, "GET", "/__sim/faults"))["held"] == 0
    assert (await body(client, "POST", "/__sim/faults/release"))["released"] == 0

    await add_fault(client, "create", {"kind": "hold"})
    async with anyio.create_task_group() as group:
        group.start_soon(held_create)
        await until_held()
        await body(client, "POST", "/__sim/reset")
    assert answers[1]["code"] == 200 and list(sim.tasks) == [answers[1]["data"]["taskId"]]


async def test_veo_task_fail_flags(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await add_fault(client, "create", {"kind": "task_fail", "fail_code": "501", "fail_msg": "Generation failed"})
    await add_fault(client, "create", {"kind": "task_fail", "upstream": True})
    failed = await veo_generate(client)
    upstream = await veo_generate(client)
    assert sim.balance() == 5000 - 120
    sim.advance(300)
    data = (await veo_record(client, failed))["data"]
    assert (data["successFlag"], data["errorCode"], data["errorMessage"]) == (2, 501, "Generation failed")
    assert data["response"] is None
    assert (await veo_record(client, upstream))["data"]["successFlag"] == 3
    assert sim.balance() == 5000


async def test_bad_fault_spec_is_rejected(client: httpx2.AsyncClient) -> None:
    response = await client.post("/__sim/faults", json={"endpoint": "status", "fault": {"kind": "task_fail"}})
    assert response.status_code == 400
    assert response.json()["ok"] is False
    response = await client.post("/__sim/faults", json={"endpoint": "create", "fault": {"kind": "explode"}})
    assert response.status_code == 400


ECHOED = f"Authorization: Bearer {SANDBOX_API_KEY}"


async def test_echo_auth_faults_put_the_real_authorization_header_in_every_kind_of_error(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    """A hostile or buggy KIE: the request's own key comes back in the error message (kie-mcp must redact it)."""
    task_id = await create_id(client)
    for endpoint in ("create", "status", "credit", "upload", "download-url"):
        await add_fault(client, endpoint, {"kind": "code", "code": 500, "msg": "boom", "echo_auth": True})
    answers = {
        "create": await create(client),
        "status": await record(client, task_id),
        "credit": await body(client, "GET", CREDIT),
        "upload": await body(client, "POST", "/api/file-base64-upload", json={"base64Data": "aGk=", "uploadPath": "x"}),
        "download-url": await body(client, "POST", "/api/v1/common/download-url", json={"url": "https://x/y.png"}),
    }
    for endpoint, answer in answers.items():
        assert (answer["code"], answer["msg"]) == (500, f"boom {ECHOED}"), endpoint
    assert answers["upload"]["success"] is False
    assert len(sim.tasks) == 1  # the echoing create created nothing
    assert SANDBOX_API_KEY not in repr(sim.requests)  # the request log still keeps no key
    assert SANDBOX_API_KEY not in json.dumps((await body(client, "GET", "/__sim/requests"))["requests"])


async def test_echo_auth_task_fail_puts_the_header_in_the_failed_tasks_message(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    await add_fault(client, "create", {"kind": "task_fail", "fail_msg": "Refused.", "echo_auth": True})
    await add_fault(client, "create", {"kind": "task_fail", "echo_auth": True})
    market = await create_id(client)
    veo = await veo_generate(client)
    sim.advance(600)
    assert (await record(client, market))["data"]["failMsg"] == f"Refused. {ECHOED}"
    assert (await veo_record(client, veo))["data"]["errorMessage"] == f"Internal server error {ECHOED}"
    listed = await body(client, "GET", "/__sim/tasks")  # the simulator's own dump masks the key
    assert SANDBOX_API_KEY not in json.dumps(listed)
    assert "Authorization: Bearer sand..." in listed["tasks"][0]["failMsg"]


async def test_echo_auth_only_applies_to_code_and_task_fail_faults(client: httpx2.AsyncClient) -> None:
    for endpoint, fault in (
        ("any", {"kind": "html", "echo_auth": True}),
        ("create", {"kind": "code", "code": 500, "echo_auth": "yes"}),
    ):
        response = await client.post("/__sim/faults", json={"endpoint": endpoint, "fault": fault})
        assert response.status_code == 400, fault
        assert "echo_auth" in response.json()["error"]


# -- controls, callbacks, request log --------------------------------------------------------


async def test_controls_over_http(client: httpx2.AsyncClient, sim: Simulator) -> None:
    bare = {"User-Agent": "curl"}
    state = await body(client, "GET", "/__sim/state", headers=bare)
    assert state["balances"] == {"default": 5000}
    await body(client, "POST", "/__sim/balance", json={"credits": 42.5})
    assert (await body(client, "GET", CREDIT))["data"] == 42.5
    before = sim.now()
    await body(client, "POST", "/__sim/clock/advance", json={"seconds": 100})
    assert sim.now() == pytest.approx(before + 100)
    config = await body(client, "POST", "/__sim/config", json={"strict_http": True, "create_limit": 5})
    assert config["config"]["strict_http"] is True
    assert sim.config.create_limit == 5
    assert (await client.post("/__sim/config", json={"nope": 1})).status_code == 400
    await body(client, "POST", "/__sim/clock/speed", json={"speed": 1000})
    t0 = sim.now()
    await asyncio.sleep(0.01)
    assert sim.now() - t0 >= 5
    await body(client, "POST", "/__sim/clock/speed", json={"speed": 0})

    task_id = await create_id(client)
    forced = await body(client, "POST", f"/__sim/tasks/{task_id}", json={"state": "success"})
    assert forced["task"]["state"] == "success"
    assert (await record(client, task_id))["data"]["state"] == "success"
    assert (await client.post(f"/__sim/tasks/{task_id}", json={"state": "fail"})).status_code == 400
    assert (await client.post("/__sim/tasks/nope", json={"state": "fail"})).status_code == 404
    listed = await body(client, "GET", "/__sim/tasks")
    assert [t["taskId"] for t in listed["tasks"]] == [task_id]

    logged = (await body(client, "GET", "/__sim/requests"))["requests"]
    assert logged[0]["path"] == CREDIT
    assert logged[0]["has_auth"] is True
    assert SANDBOX_API_KEY not in json.dumps(logged)
    assert not any(r["path"].startswith("/__sim") for r in logged)

    await body(client, "POST", "/__sim/reset")
    assert sim.tasks == {}
    assert sim.requests == []
    assert sim.balance() == sim.config.starting_balance


async def test_keys_accounts_and_sub_key_caps(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await body(client, "POST", "/__sim/keys", json={"key": "capped", "account": "default", "cap": 10})
    await body(client, "POST", "/__sim/keys", json={"key": "other", "account": "team"})
    capped = {"Authorization": "Bearer capped"}
    other = {"Authorization": "Bearer other"}
    ok = await body(client, "POST", CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}}, headers=capped)
    assert ok["code"] == 200
    answer = await body(
        client, "POST", CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}}, headers=capped
    )
    assert answer["code"] == 433
    # tasks are private to their account
    assert (await body(client, "GET", RECORD, params={"taskId": ok["data"]["taskId"]}, headers=other))["code"] == 422
    assert (await body(client, "GET", CREDIT, headers=other))["data"] == 5000
    assert sim.balance("default") == 4992


async def test_callbacks_are_recorded_with_hmac_stamped_with_the_real_time(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    sim.config.webhook_hmac_key = "secret"
    payload = {"model": "nano-banana-2", "input": {"prompt": "x"}, "callBackUrl": "https://hook.test/kie"}
    market_id = (await body(client, "POST", CREATE, json=payload))["data"]["taskId"]
    veo_id = await veo_generate(client, callBackUrl="https://hook.test/veo")
    await add_fault(client, "create", {"kind": "task_fail"})
    failed_id = (await body(client, "POST", CREATE, json=payload))["data"]["taskId"]
    assert (await body(client, "GET", "/__sim/callbacks"))["callbacks"] == []
    sim.advance(400)
    calls = {c["taskId"]: c for c in (await body(client, "GET", "/__sim/callbacks"))["callbacks"]}
    assert set(calls) == {market_id, veo_id, failed_id}

    market = calls[market_id]
    assert market["url"] == "https://hook.test/kie"
    assert market["body"]["code"] == 200
    assert market["body"]["data"]["state"] == "success"
    assert json.loads(market["body"]["data"]["resultJson"])["resultUrls"]
    assert market["body"]["data"]["consumeCredits"] == 8
    failed = calls[failed_id]["body"]
    assert (failed["code"], failed["data"]["state"], failed["data"]["consumeCredits"]) == (501, "fail", 0)
    veo = calls[veo_id]["body"]
    assert veo["code"] == 200
    assert veo["data"]["info"]["resultUrls"]

    import base64 as b64
    import hashlib
    import hmac

    headers = market["headers"]
    expected = hmac.new(b"secret", f"{market_id}.{headers['X-Webhook-Timestamp']}".encode(), hashlib.sha256)
    assert headers["X-Webhook-Signature"] == b64.b64encode(expected.digest()).decode()
    # Stamped with the real time, as a receiver checks a signature's age against its own clock, not with the
    # simulated one (here 400 s ahead); ``at`` stays the simulated time it was recorded.
    assert abs(int(headers["X-Webhook-Timestamp"]) - time.time()) < 60 and abs(market["sent_at"] - time.time()) < 60
    assert market["at"] == pytest.approx(sim.now(), abs=1)


# -- over real HTTP --------------------------------------------------------------------------


async def test_works_over_real_http_with_uvicorn() -> None:
    sim = Simulator(SimConfig(speed=0))
    async with served_over_tcp(sim) as base, httpx2.AsyncClient(base_url=base, headers=HEADERS) as real:
        assert (await real.get(CREDIT)).json()["data"] == 5000
        task_id = (await real.post(CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}})).json()["data"][
            "taskId"
        ]
        await real.post("/__sim/clock/advance", json={"seconds": 60})
        data = (await real.get(RECORD, params={"taskId": task_id})).json()["data"]
        url = json.loads(data["resultJson"])["resultUrls"][0]
        assert url.startswith(f"{base}/files/")
        assert (await real.get(url)).content.startswith(JPEG)
        await real.post("/__sim/faults", json={"endpoint": "credit", "fault": {"kind": "drop"}})
        with pytest.raises(httpx2.RemoteProtocolError):
            await real.get(CREDIT)
        assert (await real.get(CREDIT)).status_code == 200


async def test_a_trickle_fault_sends_a_whole_answer_a_byte_at_a_time_over_real_http() -> None:
    """An upstream too slow to finish but never silent for a read timeout: the create still runs (and charges), its
    answer is whole, with its Content-Length, and comes in pieces; so does a result file, as a file server that holds
    a download for as long as it likes."""
    sim = Simulator(SimConfig(speed=0))
    async with served_over_tcp(sim) as base, httpx2.AsyncClient(base_url=base, headers=HEADERS) as real:
        for endpoint, fault in [("create", {"every": -1}), ("create", {"bytes": 0})]:
            spec = {"endpoint": endpoint, "fault": {"kind": "trickle", **fault}}
            refused = await real.post("/__sim/faults", json=spec)
            assert refused.status_code == 400 and refused.json()["ok"] is False, fault
        await real.post("/__sim/faults", json={"endpoint": "create", "fault": {"kind": "trickle", "every": 0.01}})
        pieces: list[bytes] = []
        async with real.stream("POST", CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}}) as response:
            async for piece in response.aiter_raw():
                pieces.append(piece)
        whole = b"".join(pieces)
        assert int(response.headers["content-length"]) == len(whole) and len(pieces) > 10
        assert json.loads(whole)["data"]["taskId"] in sim.tasks and sim.balance() == 4992
        again = await real.post(CREATE, json={"model": "nano-banana-2", "input": {"prompt": "x"}})
        assert again.json()["code"] == 200  # used up: the next answer comes whole at once
        await real.post("/__sim/clock/advance", json={"seconds": 60})
        data = (await real.get(RECORD, params={"taskId": again.json()["data"]["taskId"]})).json()["data"]
        url = json.loads(data["resultJson"])["resultUrls"][0]
        whole_file = (await real.get(url)).content
        step = len(whole_file) // 5 + 1  # five pieces, 0.05 s apart
        await real.post(
            "/__sim/faults", json={"endpoint": "files", "fault": {"kind": "trickle", "every": 0.05, "bytes": step}}
        )
        pieces = []
        async with real.stream("GET", url) as response:
            async for piece in response.aiter_raw():
                pieces.append(piece)
        assert b"".join(pieces) == whole_file and int(response.headers["content-length"]) == len(whole_file)
        assert len(pieces) >= 3, len(pieces)


# -- controls refuse NaN, Infinity and values that would wedge the simulator ---------------------


RAW_BAD_CONTROLS = [
    ("/__sim/balance", b'{"credits": NaN}'),
    ("/__sim/balance", b'{"credits": Infinity}'),
    ("/__sim/balance", b'{"credits": 1e999}'),
    ("/__sim/clock/advance", b'{"seconds": NaN}'),
    ("/__sim/clock/advance", b'{"seconds": Infinity}'),
    ("/__sim/clock/speed", b'{"speed": NaN}'),
    ("/__sim/clock/speed", b'{"speed": -Infinity}'),
    ("/__sim/config", b'{"speed": Infinity}'),
    ("/__sim/config", b'{"starting_balance": NaN}'),
    ("/__sim/config", b'{"result_url_ttl_seconds": 1e999}'),
    ("/__sim/faults", b'{"endpoint": "credit", "fault": {"kind": "slow", "seconds": NaN}}'),
    ("/__sim/faults", b'{"endpoint": "files", "fault": {"kind": "stall", "seconds": Infinity}}'),
    ("/__sim/keys", b'{"key": "k", "account": "default", "cap": NaN}'),
    ("/__sim/prices", b'{"nano-banana-2": Infinity}'),
    ("/__sim/config", b'{"create_limit": 5, "extra": [1, NaN]}'),
]


@pytest.mark.parametrize(("path", "raw"), RAW_BAD_CONTROLS, ids=[f"{p}:{r.decode()}" for p, r in RAW_BAD_CONTROLS])
async def test_controls_refuse_nan_and_infinity(client: httpx2.AsyncClient, sim: Simulator, path: str, raw: bytes):
    before = sim.snapshot()
    response = await client.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["ok"] is False
    assert "finite number" in answer["error"] or "not a number" in answer["error"]
    after = sim.snapshot()
    assert (after["balances"], after["config"], after["faults"]) == (before["balances"], before["config"], [])
    assert sim.price_overrides == {} and "k" not in sim.keys
    assert (await body(client, "GET", CREDIT))["data"] == 5000  # still answering, with a number


@pytest.mark.parametrize(
    ("path", "payload", "words"),
    [
        ("/__sim/clock/speed", {"speed": -1}, ">= 0"),
        ("/__sim/clock/speed", {"speed": 1e12}, "<= 1e+06"),
        ("/__sim/config", {"speed": 1e12}, "<= 1e+06"),
        ("/__sim/config", {"video_bytes": 10**15}, "video_bytes must be <="),
        ("/__sim/clock/advance", {"seconds": -5}, ">= 0"),
        ("/__sim/clock/advance", {"seconds": 1e300}, "seconds must be <="),
        ("/__sim/faults", {"endpoint": "credit", "fault": {"kind": "slow", "seconds": 3600}}, "seconds must be <= 600"),
        ("/__sim/faults", {"endpoint": "files", "fault": {"kind": "stall", "seconds": 1e9}}, "seconds must be <= 600"),
        ("/__sim/faults", {"endpoint": "create", "fault": {"kind": "hold", "seconds": 3600}}, "seconds must be <= 600"),
        ("/__sim/balance", {"credits": 1e300}, "credits must be <="),
        ("/__sim/keys", {"key": "k", "cap": -1}, "cap must be a number >= 0"),
        ("/__sim/balance", {"credits": True}, "finite number"),
    ],
)
async def test_controls_refuse_values_that_would_wedge_the_simulator(
    client: httpx2.AsyncClient, sim: Simulator, path: str, payload: dict[str, Any], words: str
) -> None:
    response = await client.post(path, json=payload)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert sim.faults.items == [] and sim.config.speed == 0
    assert (await body(client, "GET", CREDIT))["data"] == 5000


async def test_bounded_controls_still_take_every_sensible_value(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await body(client, "POST", "/__sim/clock/speed", json={"speed": 0})  # 0 freezes the clock: documented, kept
    await body(client, "POST", "/__sim/clock/speed", json={"speed": 1_000_000})
    await body(client, "POST", "/__sim/clock/speed", json={"speed": 0})
    before = sim.now()
    await body(client, "POST", "/__sim/clock/advance", json={"seconds": 60 * 86400})  # two months: tasks expire
    assert sim.now() == pytest.approx(before + 60 * 86400)
    await add_fault(client, "credit", {"kind": "slow", "seconds": 0})
    await body(client, "POST", "/__sim/balance", json={"credits": 0})
    assert (await body(client, "GET", CREDIT))["data"] == 0
    for _ in range(100):  # ten years a step, the clock still cannot be pushed past the year 3000
        response = await client.post("/__sim/clock/advance", json={"seconds": 10 * 365 * 86400})
        if response.status_code == 400:
            assert "year 3000" in response.json()["error"]
            break
    else:
        pytest.fail("the clock was pushed past the year 3000")
    assert (await body(client, "GET", "/__sim/state"))["now"] < 32_503_680_000


def test_simulator_api_refuses_non_finite_time_speed_and_balance(sim: Simulator) -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            sim.advance(bad)
        with pytest.raises(ValueError, match="finite"):
            sim.set_speed(bad)
        with pytest.raises(ValueError, match="finite"):
            sim.set_balance(bad)
    assert sim.balance() == 5000 and sim.config.speed == 0


async def test_nan_in_a_create_is_a_422_and_the_request_log_still_reads(client: httpx2.AsyncClient) -> None:
    raw = b'{"model": "qwen/text-to-image", "input": {"prompt": "x", "guidance_scale": NaN, "seed": Infinity}}'
    answer = await body(client, "POST", CREATE, content=raw, headers={"content-type": "application/json"})
    assert answer["code"] == 422
    assert "guidance_scale" in answer["msg"] and "NaN" in answer["msg"]
    logged = (await body(client, "GET", "/__sim/requests"))["requests"]
    assert logged[-1]["body"]["input"]["guidance_scale"] == "nan"  # JSON cannot carry it: shown as text


# -- the model catalogue and the public price feed ---------------------------------------------------

MODELS = "/api/v1/models"
FEED = "/client/v1/model-pricing/page"


async def lookup(client: httpx2.AsyncClient, sim: Simulator, path: str, **kwargs: Any) -> dict[str, Any]:
    """A catalogue lookup one simulated second after the last: inside KIE's shared 1/s budget."""
    sim.advance(1.0)
    return await body(client, "GET", path, **kwargs)


async def feed_page(client: httpx2.AsyncClient, page: int = 1, size: int = 100) -> dict[str, Any]:
    response = await client.post(FEED, json={"pageNum": page, "pageSize": size}, headers={"Authorization": ""})
    assert response.status_code == 200
    return response.json()


async def control(client: httpx2.AsyncClient, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = await body(client, "POST", f"/__sim/catalog/{path}", json=payload)
    assert answer["ok"] is True
    return answer["catalog"]


async def test_model_list_shape_filters_and_key(client: httpx2.AsyncClient, sim: Simulator) -> None:
    answer = await lookup(client, sim, MODELS)
    assert answer["code"] == 200 and answer["data"]["total"] == len(answer["data"]["models"])
    row = next(m for m in answer["data"]["models"] if m["model"] == "kling/v2-1-pro")
    assert row["slug"] == "kling/v2-1-pro" and row["provider"] == "Kling"
    assert "Image to Video" in row["taskType"] and "credits" in row["pricingDesc"]
    assert not any(m["model"] == "veo3_fast" for m in answer["data"]["models"])  # product APIs: other names
    videos = (await lookup(client, sim, MODELS, params={"taskType": "Text to Video,Image to Video"}))["data"]
    assert videos["models"] and all({"Text to Video", "Image to Video"} & set(m["taskType"]) for m in videos["models"])
    kling = (await lookup(client, sim, MODELS, params={"provider": "kling", "q": "v2-1-pro"}))["data"]
    assert [m["model"] for m in kling["models"]] == ["kling/v2-1-pro"]
    assert (await lookup(client, sim, MODELS, params={"q": "nothing like this"}))["data"] == {"total": 0, "models": []}
    sim.advance(1.0)
    refused = (await client.get(MODELS, headers={"Authorization": "Bearer nope"})).json()
    assert refused["code"] == 401


async def test_schema_price_and_success_rate_shapes(client: httpx2.AsyncClient, sim: Simulator) -> None:
    schema = (await lookup(client, sim, f"{MODELS}/kling/v2-1-pro/schema"))["data"]
    assert schema["model"] == "kling/v2-1-pro"
    document = schema["openapi"]
    assert document["openapi"] == "3.1.0"
    post = document["paths"]["/api/v1/jobs/createTask"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["properties"]["input"] == {"$ref": "#/components/schemas/Input"}
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("%20recordId")
    fields = document["components"]["schemas"]["Input"]["properties"]
    assert fields["duration"]["enum"] and "prompt" in document["components"]["schemas"]["Input"]["required"]

    price = (await lookup(client, sim, f"{MODELS}/nano-banana-pro/price"))["data"]
    assert price["model"] == "nano-banana-pro" and "credits per image" in price["pricingDesc"]

    rate = (await lookup(client, sim, f"{MODELS}/nano-banana-pro/success-rate"))["data"]
    points = rate["points"]
    assert rate["model"] == "nano-banana-pro" and len(points) == 144
    assert points[0]["start"].endswith("Z") and points[0]["end"] == points[1]["start"]
    assert all(p["successRate"] >= 95 and p["isNormal"] for p in points)  # high by default

    unknown = await lookup(client, sim, f"{MODELS}/no/such-model/schema")
    assert unknown["code"] == 404 and unknown["data"] is None


async def test_catalogue_lookups_share_one_request_per_second(client: httpx2.AsyncClient, sim: Simulator) -> None:
    assert (await lookup(client, sim, MODELS))["code"] == 200
    too_soon = await body(client, "GET", f"{MODELS}/nano-banana-pro/price")  # same simulated instant
    assert too_soon["code"] == 429
    sim.advance(1.0)
    assert (await body(client, "GET", f"{MODELS}/nano-banana-pro/price"))["code"] == 200
    for _ in range(3):
        assert (await feed_page(client))["code"] == 200  # the public feed is not in that budget
    sim.config.catalog_limit_per_second = 0
    assert (await body(client, "GET", MODELS))["code"] == 200  # 0 switches the limit off


async def test_price_feed_needs_no_key_and_pages_at_most_100(client: httpx2.AsyncClient) -> None:
    first = await feed_page(client, 1, 500)
    data = first["data"]
    assert first["code"] == 200 and len(data["records"]) == 100
    assert data["pages"] == math.ceil(data["total"] / 100)
    record = data["records"][0]
    assert {"modelDescription", "interfaceType", "provider", "creditPrice", "creditUnit", "usdPrice", "anchor"} <= set(
        record
    )
    assert isinstance(record["creditPrice"], str) and float(record["creditPrice"]) >= 0
    assert "?model=" in record["anchor"]
    last = (await feed_page(client, data["pages"]))["data"]["records"]
    assert 0 < len(last) <= 100
    assert (await feed_page(client, data["pages"] + 1))["data"]["records"] == []
    rows = [r for p in range(1, data["pages"] + 1) for r in (await feed_page(client, p))["data"]["records"]]
    assert len(rows) == data["total"] == len({r["modelDescription"] for r in rows})
    described = {r.feed for s in load_catalog().offered() if s.price for r in s.price.rates if r.feed}
    assert described <= {r["modelDescription"] for r in rows}  # a rate's feed row is served under that name
    bad = await client.post(FEED, json={"pageNum": 0, "pageSize": 10})
    assert bad.json()["code"] == 422


async def test_catalog_controls(client: httpx2.AsyncClient, sim: Simulator) -> None:
    state = await control(client, "withdraw", {"model": "kling/v2-1-pro"})
    assert state["withdrawn"] == ["kling/v2-1-pro"]
    models = (await lookup(client, sim, MODELS))["data"]["models"]
    assert "kling/v2-1-pro" not in {m["model"] for m in models}
    assert (await lookup(client, sim, f"{MODELS}/kling/v2-1-pro/schema"))["code"] == 404
    pages = (await feed_page(client))["data"]["pages"]
    rows = [r for p in range(1, pages + 1) for r in (await feed_page(client, p))["data"]["records"]]
    assert not any("kling%2Fv2-1-pro" in r["anchor"] for r in rows)  # its prices went with it
    await control(client, "withdraw", {"model": "kling/v2-1-pro", "withdrawn": False})
    assert (await lookup(client, sim, f"{MODELS}/kling/v2-1-pro/schema"))["code"] == 200

    await control(client, "schema", {"model": "nano-banana-pro"})
    assert (await lookup(client, sim, f"{MODELS}/nano-banana-pro/schema"))["data"]["openapi"] is None
    await control(client, "schema", {"model": "nano-banana-pro", "dropped": False})
    assert (await lookup(client, sim, f"{MODELS}/nano-banana-pro/schema"))["data"]["openapi"] is not None

    row = (await feed_page(client))["data"]["records"][0]
    await control(client, "feed", {"description": row["modelDescription"], "credits": 123.5})
    records = (await feed_page(client))["data"]["records"]
    changed = next(r for r in records if r["modelDescription"] == row["modelDescription"])
    assert changed["creditPrice"] == "123.5"
    await control(client, "feed", {"description": row["modelDescription"], "credits": None})
    first_page = (await feed_page(client))["data"]["records"]
    assert row["modelDescription"] not in {r["modelDescription"] for r in first_page}
    await control(client, "feed", {"regionBlocked": True})
    blocked = await feed_page(client)
    assert (blocked["code"], blocked["msg"]) == (4030, "Not supported in the current region.")
    await control(client, "feed", {"regionBlocked": False})

    await control(client, "success-rate", {"model": "nano-banana-pro", "successRate": 40})
    points = (await lookup(client, sim, f"{MODELS}/nano-banana-pro/success-rate"))["data"]["points"]
    assert {(p["successRate"], p["errorRate"], p["isNormal"]) for p in points} == {(40, 60, False)}
    await control(client, "success-rate", {"model": "nano-banana-pro", "successRate": None})
    assert (await lookup(client, sim, f"{MODELS}/nano-banana-pro/success-rate"))["data"]["points"] == []

    extra = {
        "model": "brand/new",
        "taskType": ["Text to Image"],
        "pricingDesc": "3 credits per image",
        "openapi": {"openapi": "3.1.0", "paths": {}},
    }
    assert (await control(client, "extra", extra))["extra"] == ["brand/new"]
    listed = (await lookup(client, sim, MODELS, params={"q": "brand/new"}))["data"]["models"]
    assert listed == [
        {
            "model": "brand/new",
            "slug": "brand/new",
            "title": "brand/new",
            "provider": "Brand",
            "taskType": ["Text to Image"],
            "description": None,
            "pricingDesc": "3 credits per image",
        }
    ]
    assert (await lookup(client, sim, f"{MODELS}/brand/new/schema"))["data"]["openapi"] == extra["openapi"]
    await control(client, "extra", {"model": "brand/new", "remove": True})

    await body(client, "POST", "/__sim/reset")  # like price overrides, catalogue changes outlive a reset
    state = (await body(client, "GET", "/__sim/catalog"))["catalog"]
    assert state["successRates"] == {"nano-banana-pro": None}


async def test_catalog_controls_refuse_bad_requests(client: httpx2.AsyncClient) -> None:
    cases = [
        ("withdraw", {"model": "no/such"}, 404),
        ("withdraw", {"model": "veo3_fast"}, 404),  # not a Market model: KIE lists it under another name
        ("withdraw", {"model": "kling/v2-1-pro", "withdrawn": "yes"}, 400),
        ("schema", {"model": "kling/v2-1-pro", "dropped": 1}, 400),
        ("feed", {"description": "no such row", "credits": 1}, 404),
        ("feed", {"regionBlocked": "yes"}, 400),
        ("success-rate", {"model": "kling/v2-1-pro", "successRate": 101}, 400),
        ("extra", {"model": "../x"}, 400),
        ("extra", {"model": "a/b", "openapi": "text"}, 400),
    ]
    for path, payload, status in cases:
        response = await client.post(f"/__sim/catalog/{path}", json=payload)
        assert response.status_code == status, (path, payload, response.text)
        assert response.json()["ok"] is False
