"""The product families (Runway, Runway Aleph, GPT-4o Image, Flux Kontext): adapter, simulator and catalogue.

Each family is driven through the real client against the simulator (create, status, clock, results,
failures, create errors, ``find_task``) and once end to end through the MCP server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from kie_mcp.catalog import build_input, load_catalog, price_input
from kie_mcp.kie import FAMILIES, KieClient, KieError, TaskState
from kie_mcp.kie.families import FOLLOWUP_FAMILIES, family_for_task_id
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.sandbox import SANDBOX_API_KEY
from kie_mcp.spend import grant

from .conftest import API, UPLOADS, answering, eras_in_turn, text_of

CATALOG = load_catalog()
NOT_FOUND = "The record does not exist"  # GPT-4o Image's and Flux Kontext's words, live
START = 5000.0  # SimConfig.starting_balance


@dataclass(frozen=True)
class Case:
    family: str
    model: str
    kind: str
    args: dict[str, Any]
    finish: float  # virtual seconds that surely finish the task
    shape: str  # the simulator's ids for it, in KIE's shape (kie_mcp.kie.families.ID_SHAPES)
    unknown: str  # an id of that shape no task has
    bad: tuple[str, Any]  # a wire field and a value the simulator must refuse


CASES = [
    Case(
        "runway",
        "runway-video",
        "video",
        {"prompt": "waves at dusk", "duration": 10, "aspect_ratio": "9:16"},
        400,
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        "00000000-0000-4000-8000-00000000cafe",
        ("quality", "4k"),
    ),
    Case(
        "aleph",
        "runway-aleph",
        "video",
        {"prompt": "make it rain", "options": {"videoUrl": "https://example.com/in.mp4"}},
        700,
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        "00000000-0000-4000-8000-00000000beef",
        ("aspectRatio", "2:1"),
    ),
    Case(
        "gpt4o",
        "gpt-4o-image",
        "image",
        {"prompt": "a fox character sheet", "aspect_ratio": "2:3", "options": {"isEnhance": True}},
        200,
        r"[0-9a-f]{32}",
        "deadbeef" * 4,
        ("size", "16:9"),
    ),
    Case(
        "flux",
        "flux-kontext-max",
        "image",
        {"prompt": "a fox", "aspect_ratio": "1:1", "options": {"outputFormat": "png"}},
        100,
        r"task_flux_[0-9a-f]{20}",
        "task_flux_nope",
        ("outputFormat", "gif"),
    ),
]
IDS = [c.family for c in CASES]
MAGIC = {"video": b"ftyp", "jpg": b"\xff\xd8\xff", "png": b"\x89PNG"}


@pytest.fixture
async def kie(transport, sim):
    sim.set_speed(0)  # a frozen clock: only sim.advance moves it
    sim.rate_clock = sim.now  # KIE's limits too: the test moves past them with sim.advance
    client = KieClient(
        api_key=SANDBOX_API_KEY,
        base_url=API,
        upload_base_url=UPLOADS,
        transport=transport,
        rate_limit_backoff=0.01,
        timeout=2.0,
        poll_window=SlidingWindow(100, 1.0),  # find_task may ask all six families; the sim keeps its own limit
    )
    yield client
    await client.aclose()


def wire_and_body(case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
    wire = build_input(CATALOG.get(case.model), **case.args)
    return wire, FAMILIES[case.family].create_body(case.model, wire)


async def create(kie: KieClient, case: Case) -> str:
    _, body = wire_and_body(case)
    return await kie.create(FAMILIES[case.family], case.model, body, grant(case.model, 1, "quote", None))


def expected_price(case: Case) -> float:
    wire, _ = wire_and_body(case)
    return price_input(CATALOG.get(case.model), wire).credits


# -- adapters and wire bodies --------------------------------------------------------------------


def test_bodies_follow_each_family_wire_format():
    runway = wire_and_body(CASES[0])[1]
    assert runway["callBackUrl"] == "" and "model" not in runway  # KIE documents no model field here
    assert runway["duration"] == 10 and runway["quality"] == "720p" and runway["aspectRatio"] == "9:16"
    aleph = wire_and_body(CASES[1])[1]
    assert aleph["videoUrl"].endswith(".mp4") and "model" not in aleph
    gpt4o = wire_and_body(CASES[2])[1]
    assert gpt4o["size"] == "2:3" and "nVariants" not in gpt4o and "model" not in gpt4o
    flux = wire_and_body(CASES[3])[1]
    assert flux["model"] == "flux-kontext-max" and flux["safetyTolerance"] == 2
    assert FAMILIES["runway"].extend_path == "/api/v1/runway/extend"


def test_prices_follow_the_snapshot():
    assert expected_price(CASES[0]) == 30  # 10 s 720p
    runway = CATALOG.get("runway-video")
    assert price_input(runway, build_input(runway, prompt="x")).credits == 12
    assert price_input(runway, build_input(runway, prompt="x", resolution="1080p")).credits == 30
    assert expected_price(CASES[1]) == 110
    assert expected_price(CASES[2]) == 6  # 6 credits per task (KIE dropped nVariants)
    assert expected_price(CASES[3]) == 10
    pro = CATALOG.get("flux-kontext-pro")
    assert price_input(pro, build_input(pro, prompt="x")).credits == 5


def test_catalogue_rules():
    runway = CATALOG.get("runway-video")
    with pytest.raises(ValueError, match="720p"):
        build_input(runway, prompt="x", duration=10, resolution="1080p")
    assert build_input(runway, prompt="x", images=["https://e/a.png"])["imageUrl"] == "https://e/a.png"
    gpt4o = CATALOG.get("gpt-4o-image")
    with pytest.raises(ValueError, match="filesUrl"):
        build_input(gpt4o)
    assert build_input(gpt4o, images=["https://e/a.png"])["filesUrl"] == ["https://e/a.png"]
    flux = CATALOG.get("flux-kontext-pro")
    with pytest.raises(ValueError, match="safetyTolerance"):
        build_input(flux, prompt="x", images=["https://e/a.png"], options={"safetyTolerance": 5})
    for name, model in [("runway gen 4", "runway-video"), ("aleph", "runway-aleph"), ("4o image", "gpt-4o-image")]:
        assert CATALOG.resolve(name).id == model
    assert CATALOG.resolve("flux kontext").id == "flux-kontext-pro"
    assert CATALOG.resolve("flux kontext max").id == "flux-kontext-max"


def test_status_vocabularies_map_onto_one_state():
    runway = FAMILIES["runway"]
    for raw, state in [("wait", "queued"), ("queueing", "queued"), ("generating", "running"), ("fail", "failed")]:
        assert runway.parse_status("r", {"state": raw}).state.value == state
    ok = runway.parse_status("r", {"state": "success", "videoInfo": {"videoUrl": "https://f/v.mp4"}})
    assert ok.state is TaskState.SUCCEEDED and ok.result_urls == ["https://f/v.mp4"]

    aleph = FAMILIES["aleph"]
    assert aleph.parse_status("a", {"successFlag": 0, "errorCode": None, "errorMessage": ""}).state.value == "running"
    failed = aleph.parse_status("a", {"successFlag": 0, "errorCode": 400, "errorMessage": "flagged"})
    assert failed.state is TaskState.FAILED and failed.fail_code == "400" and failed.fail_message == "flagged"
    done = aleph.parse_status("a", {"successFlag": 1, "errorCode": 0, "response": {"resultVideoUrl": "https://f/a"}})
    assert done.state is TaskState.SUCCEEDED and done.result_urls == ["https://f/a"] and done.fail_code is None
    live = {"successFlag": 3, "errorCode": 500, "errorMessage": "internal error, please try again later."}  # KIE's
    lost = aleph.parse_status("a", live)
    assert lost.state is TaskState.FAILED and lost.understood and lost.fail_code == "500"
    assert lost.fail_message == "internal error, please try again later."
    bare = aleph.parse_status("a", {"successFlag": 3, "errorCode": None, "errorMessage": None})
    assert bare.state is TaskState.FAILED and bare.fail_message
    # 2 is in neither KIE's Aleph docs (0 and 1) nor a live answer (3): a word kie-mcp does not know, never a failure
    two = aleph.parse_status("a", {"successFlag": 2, "errorCode": None, "errorMessage": None})
    assert not two.understood and two.raw_state == "successFlag=2"

    gpt4o = FAMILIES["gpt4o"]
    running = gpt4o.parse_status("g", {"successFlag": 0, "status": "GENERATING", "progress": "0.40"})
    assert running.state is TaskState.RUNNING and running.progress == 0.4
    snake = gpt4o.parse_status(
        "g", {"successFlag": 1, "status": "SUCCESS", "response": {"result_urls": ["https://f/i"]}}
    )
    assert snake.result_urls == ["https://f/i"]
    for status in ("CREATE_TASK_FAILED", "GENERATE_FAILED"):
        assert gpt4o.parse_status("g", {"successFlag": 2, "status": status}).state is TaskState.FAILED

    flux = FAMILIES["flux"]
    upstream = flux.parse_status("f", {"successFlag": 3, "paramJson": '{"model":"flux-kontext-max"}'})
    assert upstream.state is TaskState.FAILED and "upstream" in upstream.fail_message
    assert upstream.model == "flux-kontext-max"


def test_task_id_shapes_put_their_families_first_and_keep_the_rest():
    names = lambda task_id, seen=None: [f.name for f in family_for_task_id(task_id, seen)]  # noqa: E731
    assert names("veo_task_abc")[:2] == ["veo", "market"]
    assert names("0123abcd")[:2] == ["market", "veo"]
    assert names("task_wan_1765186743319")[0] == "market" and names("task_flux_abc123")[0] == "flux"
    assert names("ee603959-debb-48d1-98c4-a6d1c717eba6")[:2] == ["runway", "aleph"]
    assert names("d231a99a9a9f1dd8f895be1b97be8065")[:4] == ["market", "veo", "gpt4o", "flux"]
    # The journal's habit orders the families within a shape and after it, follow-ups and routes counted as the
    # family whose endpoint answers for them (a Veo extension Veo's, Veo 3.1 on the unified route the Market's).
    assert names("ee603959-debb-48d1-98c4-a6d1c717eba6", {"aleph": 2})[:2] == ["aleph", "runway"]
    assert names("d231a99a9a9f1dd8f895be1b97be8065", {"veo-extend": 2, "veo-unified": 1})[:2] == ["veo", "market"]
    assert names("nosuch", {"flux": 1, "no-such-family": 9})[0] == "flux"
    # A family reached through another's endpoint (Veo 3.1 on the unified route asks the Market's) is found by
    # asking that one: the answer's model tells it (followups.made_elsewhere), so it is never asked on its own.
    routed = {name for name, family in FAMILIES.items() if family.route is not None}
    for case in CASES:
        for seen in (None, {"market": 9, "veo": 5}):
            order = names(case.unknown, seen)
            assert case.family in order[:4] and sorted(order) == sorted(set(FAMILIES) - FOLLOWUP_FAMILIES - routed)


# -- through the client and the simulator --------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_create_run_succeed_and_download(kie, sim, case):
    task_id = await create(kie, case)
    assert re.fullmatch(case.shape, task_id), task_id
    family = FAMILIES[case.family]
    first = await kie.status(family, task_id)
    assert first.state in (TaskState.QUEUED, TaskState.RUNNING) and not first.result_urls
    assert sim.balance() == START - expected_price(case)  # charged at submission

    sim.advance(case.finish)
    done = await kie.status(family, task_id)
    assert done.state is TaskState.SUCCEEDED, done
    assert done.family == case.family and done.model == case.model
    assert len(done.result_urls) == 1
    for url in done.result_urls:
        download = await kie.files.get(url)
        assert download.status_code == 200
        fmt = "video" if case.kind == "video" else "png"  # 4o answers png; the flux case asks for png
        assert MAGIC[fmt] in download.content[:16]
    assert sim.balance() == START - expected_price(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_task_failure_is_reported_and_refunded(kie, sim, controls, case):
    await controls.fault("create", kind="task_fail", fail_code="501", fail_msg="the render melted")
    task_id = await create(kie, case)
    sim.advance(case.finish)
    status = await kie.status(FAMILIES[case.family], task_id)
    assert status.state is TaskState.FAILED
    assert status.fail_code == "501" and status.fail_message == "the render melted"
    assert not status.result_urls
    assert sim.balance() == START  # failed tasks are refunded


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_forced_failure_through_the_controls(kie, sim, controls, case):
    task_id = await create(kie, case)
    sim.advance(1)
    await controls.post(f"tasks/{task_id}", {"state": "fail", "fail_code": "400", "fail_msg": "flagged by moderation"})
    status = await kie.status(FAMILIES[case.family], task_id)
    assert status.state is TaskState.FAILED and status.fail_message == "flagged by moderation"


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_create_errors_charge_nothing(kie, sim, controls, case):
    family = FAMILIES[case.family]
    field, value = case.bad
    _, body = wire_and_body(case)
    body[field] = value
    with pytest.raises(KieError) as caught:
        await kie.create(family, case.model, body, grant(case.model, 1, "quote", None))
    assert caught.value.code == 422 and field in caught.value.message

    await controls.fault("create", kind="code", code=402)
    with pytest.raises(KieError) as caught:
        await create(kie, case)
    assert caught.value.code == 402
    assert sim.tasks == {} and sim.balance() == START


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_find_task_asks_the_right_family(kie, sim, case):
    task_id = await create(kie, case)
    sim.advance(case.finish)
    found = await kie.find_task(task_id)
    assert found.family == case.family and found.state is TaskState.SUCCEEDED

    # An opaque id (as real KIE issues) is still found: every family is asked in turn.
    task = sim.tasks.pop(task_id)
    task.id = "0123456789abcdef0123456789abcdef"
    sim.tasks[task.id] = task
    sim.advance(1)  # a fresh second of the simulator's poll budget
    assert (await kie.find_task(task.id)).family == case.family

    sim.advance(1)
    with pytest.raises(KieError) as caught:
        await kie.find_task(case.unknown)
    last = family_for_task_id(case.unknown)[-1]  # every family was asked: the last one's answer is raised
    assert last.is_not_visible(caught.value.message)
    assert caught.value.code == (None if last.null_record_unknown else 422)  # Runway and Aleph: success, no record


async def test_unknown_ids_answer_each_family_not_found_shape(kie, sim, controls):
    """As KIE answers live (justintanner/apicity recordings): Runway and Aleph with success and no record, GPT-4o
    Image and Flux Kontext 422 "The record does not exist"; each family reads its own as "not visible"."""
    for name in ("runway", "aleph", "gpt4o", "flux"):
        family = FAMILIES[name]
        with pytest.raises(KieError) as caught:
            await kie.status(family, "missing")
        assert family.is_not_visible(caught.value.message) and not caught.value.retryable, caught.value
        sim.advance(1)  # a fresh second of the simulator's poll budget
        answer = (await controls.http.get(f"{family.status_path}?taskId=missing", headers=_auth())).json()
        if family.null_record_unknown:
            assert caught.value.code is None and answer == {"code": 200, "msg": "success", "data": None}
        else:
            assert caught.value.code == 422 and answer == {"code": 422, "msg": NOT_FOUND, "data": None}


async def test_runway_record_extend_and_expiry(kie, sim, controls):
    case = CASES[0]
    task_id = await create(kie, case)
    response = await controls.http.get(f"/api/v1/runway/record-detail?taskId={task_id}", headers=_auth())
    data = response.json()["data"]
    assert data["state"] in ("wait", "queueing") and data["videoInfo"] is None and data["expireFlag"] == 0
    sim.advance(case.finish)

    extend = {"taskId": task_id, "prompt": "the camera keeps rising", "quality": "1080p", "callBackUrl": ""}
    answer = (await controls.http.post(FAMILIES["runway"].extend_path, json=extend, headers=_auth())).json()
    assert answer["code"] == 200
    child = answer["data"]["taskId"]
    sim.advance(case.finish)
    record = (await controls.http.get(f"/api/v1/runway/record-detail?taskId={child}", headers=_auth())).json()
    assert record["data"]["parentTaskId"] == task_id and record["data"]["state"] == "success"
    assert sim.balance() == START - 30 - 30  # the 10 s clip, then a 5 s 1080p extension

    missing = {k: v for k, v in extend.items() if k != "quality"}
    refused = (await controls.http.post(FAMILIES["runway"].extend_path, json=missing, headers=_auth())).json()
    assert refused["code"] == 422 and "quality" in refused["msg"]

    sim.advance(15 * 86400)
    old = (await controls.http.get(f"/api/v1/runway/record-detail?taskId={task_id}", headers=_auth())).json()
    assert old["data"]["expireFlag"] == 1


async def test_runway_requires_callback_field_but_accepts_empty(controls):
    body = {"prompt": "x", "duration": 5, "quality": "720p", "aspectRatio": "16:9"}
    answer = (await controls.http.post("/api/v1/runway/generate", json=body, headers=_auth())).json()
    assert answer["code"] == 422 and "callBackUrl" in answer["msg"]


async def test_gpt4o_record_shape_and_download_url(kie, sim, controls):
    task_id = await create(kie, CASES[2])
    sim.advance(5)
    running = (await controls.http.get(f"/api/v1/gpt4o-image/record-info?taskId={task_id}", headers=_auth())).json()
    data = running["data"]
    assert data["status"] == "GENERATING" and data["successFlag"] == 0 and data["response"] is None
    assert isinstance(data["progress"], str) and 0.0 < float(data["progress"]) < 1.0
    assert isinstance(data["createTime"], int)
    sim.advance(CASES[2].finish)
    status = await kie.status(FAMILIES["gpt4o"], task_id)
    link = await controls.http.post(
        "/api/v1/gpt4o-image/download-url", json={"taskId": task_id, "url": status.result_urls[0]}, headers=_auth()
    )
    url = link.json()["data"]
    assert isinstance(url, str) and "/dl/" in url
    assert (await kie.files.get(url)).content[:4] == MAGIC["png"]
    foreign = await controls.http.post(
        "/api/v1/gpt4o-image/download-url",
        json={"taskId": task_id, "url": "https://example.com/x.png"},
        headers=_auth(),
    )
    assert foreign.json()["code"] == 422


async def test_callbacks_use_each_family_shape(sim, controls):
    sim.set_speed(0)
    bodies = {
        "/api/v1/runway/generate": {
            "prompt": "x",
            "duration": 5,
            "quality": "720p",
            "aspectRatio": "16:9",
            "callBackUrl": "https://hooks.test/r",
        },
        "/api/v1/aleph/generate": {"prompt": "x", "videoUrl": "https://e/v.mp4", "callBackUrl": "https://hooks.test/a"},
        "/api/v1/gpt4o-image/generate": {"prompt": "x", "size": "1:1", "callBackUrl": "https://hooks.test/g"},
        "/api/v1/flux/kontext/generate": {"prompt": "x", "callBackUrl": "https://hooks.test/f"},
    }
    for path, body in bodies.items():
        assert (await controls.http.post(path, json=body, headers=_auth())).json()["code"] == 200
    sim.advance(1000)
    calls = {c["url"]: c["body"] for c in (await controls.get("callbacks"))["callbacks"]}
    assert calls["https://hooks.test/r"]["data"]["video_url"].endswith(".mp4")
    assert re.fullmatch(CASES[1].shape, calls["https://hooks.test/a"]["taskId"])  # a UUID, as KIE's Aleph ids
    assert calls["https://hooks.test/a"]["data"]["result_video_url"]
    assert calls["https://hooks.test/g"]["data"]["info"]["result_urls"]
    assert calls["https://hooks.test/f"]["data"]["info"]["resultImageUrl"]


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


# -- through the MCP server ------------------------------------------------------------------


@eras_in_turn("case", CASES, ids=IDS)
async def test_generate_through_the_server(connect, controls, case):
    arguments = {"model": case.model, **case.args}
    async with connect(elicitation=answering(), max_credits_per_call=10_000) as client:
        if case.kind == "image":
            result = await client.call_tool("generate_image", arguments)
            assert not result.is_error, text_of(result)
            task = result.structured_content["tasks"][0]
        else:
            submitted = await client.call_tool("generate_video", arguments)
            assert not submitted.is_error, text_of(submitted)
            task_id = submitted.structured_content["tasks"][0]["task_id"]
            assert re.fullmatch(case.shape, task_id), task_id
            result = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
            task = result.structured_content["task"]
    assert task["state"] == "succeeded", text_of(result)
    assert task["family"] == case.family and task["model"] == case.model
    assert task["result_urls"] and all(u.startswith("http") for u in task["result_urls"])
    assert len(await controls.creates()) == 1
