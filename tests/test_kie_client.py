"""The async KIE client against the simulator over HTTP: every family, every error code, every fault."""

from __future__ import annotations

import httpx2
import pytest

from kie_mcp.kie import (
    FAMILIES,
    Category,
    KieClient,
    KieError,
    NotSentError,
    OutcomeUnknownError,
    RefusedHereError,
    TaskState,
)
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.sandbox import SANDBOX_API_KEY
from kie_mcp.spend import ApprovalError, grant

from .conftest import API, UPLOADS

MARKET, VEO = FAMILIES["market"], FAMILIES["veo"]
IMAGE_BODY = {"model": "nano-banana-2", "input": {"prompt": "a fox", "aspect_ratio": "1:1"}}
VEO_BODY = {"model": "veo3_fast", "prompt": "waves", "aspect_ratio": "16:9"}
CODES = [400, 401, 402, 404, 408, 422, 429, 433, 451, 455, 500, 501, 505]


@pytest.fixture
async def kie(transport):
    client = KieClient(
        api_key=SANDBOX_API_KEY,
        base_url=API,
        upload_base_url=UPLOADS,
        transport=transport,
        rate_limit_backoff=0.01,
        timeout=2.0,
    )
    yield client
    await client.aclose()


def approve(model: str, n: int = 1):
    return grant(model, n, "quote", None)


async def test_market_create_and_status(kie, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    sim.set_speed(0)  # the task ends when the test advances the clock (at 1000x a loaded machine saw it end first)
    task_id = await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approve("nano-banana-2"))
    first = await kie.status(MARKET, task_id)
    assert first.state in (TaskState.QUEUED, TaskState.RUNNING)
    sim.advance(120)
    done = await kie.status(MARKET, task_id)
    assert done.state is TaskState.SUCCEEDED
    assert done.result_urls and done.credits_charged == 8
    download = await kie.files.get(done.result_urls[0])
    assert download.status_code == 200 and download.content[:3] == b"\xff\xd8\xff"  # jpg by default


async def test_veo_create_status_1080p_4k_extend(kie, sim, caplog):
    caplog.set_level("INFO", logger="kie_mcp")
    sim.set_speed(0)  # each task ends when the test advances the clock
    task_id = await kie.create(VEO, VEO_BODY["model"], VEO_BODY, approve("veo3_fast"))
    assert (await kie.status(VEO, task_id)).state is TaskState.RUNNING
    sim.advance(400)
    done = await kie.find_task(task_id)
    assert done.family == "veo" and done.state is TaskState.SUCCEEDED and done.result_urls

    hd = FAMILIES["veo-1080p"]
    hd_id = await kie.create(hd, "veo/get-1080p-video", {"taskId": task_id}, approve("veo/get-1080p-video"))
    assert hd_id == f"{task_id}-1080p"
    assert "GET /api/v1/veo/get-1080p-video -> HTTP 200" in caplog.text  # logged as sent (KIE documents a GET)
    assert "POST /api/v1/veo/get-1080p-video" not in caplog.text
    assert (await kie.status(hd, hd_id)).state is TaskState.RUNNING  # KIE is still preparing it: ask again later
    sim.advance(200)
    ready = await kie.status(hd, hd_id)
    assert ready.state is TaskState.SUCCEEDED and ready.result_urls[0].startswith("http")

    other = await kie.create(VEO, VEO_BODY["model"], VEO_BODY, approve("veo3_fast"))
    sim.advance(400)
    uhd = await kie.create(
        FAMILIES["veo-4k"], "veo/get-4k-video", {"taskId": other, "index": 0}, approve("veo/get-4k-video")
    )
    body = {"taskId": other, "prompt": "the camera keeps rising", "model": "fast"}
    extended = await kie.create(FAMILIES["veo-extend"], "veo/extend", body, approve("veo/extend"))
    sim.advance(700)
    assert (await kie.status(VEO, uhd)).state is TaskState.SUCCEEDED
    assert (await kie.status(VEO, extended)).state is TaskState.SUCCEEDED


@pytest.mark.parametrize("family", ["veo-4k", "veo-extend", "runway-extend"])
def test_a_follow_up_answer_naming_its_source_is_no_new_task(family):
    """Following the source's id as the new task would take the source's result for it and overwrite its record."""
    continued = FAMILIES[family]
    assert continued.created_id({"taskId": "src1"}, {"taskId": "src1", "index": 0}) is None
    assert continued.created_id({"taskId": "new2"}, {"taskId": "src1", "index": 0}) == "new2"
    message, _ = continued.unnamed({"taskId": "src1"}, {"taskId": "src1"})
    assert "named the task this one continues (src1)" in message
    assert continued.unnamed({}, {})[1] is None  # no source named: the advice for any unknown create
    assert MARKET.created_id({"taskId": "t9"}, IMAGE_BODY) == "t9"  # a first generation's body names no source


async def test_a_4k_create_answered_with_the_source_id_is_an_unknown_outcome(kie, sim, controls):
    await controls.post("config", {"uhd_names_source": True})
    source = await kie.create(VEO, VEO_BODY["model"], VEO_BODY, approve("veo3_fast"))
    sim.advance(400)
    body = {"taskId": source, "index": 0}
    with pytest.raises(OutcomeUnknownError) as caught:
        await kie.create(FAMILIES["veo-4k"], "veo/get-4k-video", body, approve("veo/get-4k-video"))
    assert f"named the task this one continues ({source})" in caught.value.message
    assert caught.value.category is Category.PROTOCOL  # KIE answered: not a network failure
    assert f"continue_video(task_id='{source}', operation='4k') in a few minutes" in caught.value.next_step
    assert len([c for c in await controls.creates() if c["path"].endswith("get-4k-video")]) == 1  # never resent


async def test_every_create_needs_a_matching_approval(kie, controls):
    approval = approve("nano-banana-2")
    with pytest.raises(ApprovalError):
        await kie.create(VEO, VEO_BODY["model"], VEO_BODY, approval)  # wrong model
    await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approval)
    with pytest.raises(ApprovalError):
        await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approval)  # used up
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("family", ["market", "veo"])
@pytest.mark.parametrize("code", CODES)
async def test_error_codes_on_create(kie, controls, family, code):
    body = IMAGE_BODY if family == "market" else VEO_BODY
    await controls.fault("create", kind="code", code=code, times=-1 if code == 429 else 1)
    with pytest.raises(KieError) as caught:
        await kie.create(FAMILIES[family], body["model"], body, approve(body["model"]))
    await controls.http.delete("/__sim/faults")
    err = caught.value
    assert err.next_step
    if code == 500:  # a server error does not say the task was not created: never refused, never retried
        assert isinstance(err, OutcomeUnknownError) and err.category is Category.SERVER
        assert "kie.ai/logs" in err.next_step and "Do not submit it again" in err.next_step
    else:
        assert err.code == code
        assert not isinstance(err, OutcomeUnknownError)  # KIE answered a clear refusal: nothing was created
    if code == 429:
        assert len(await controls.creates()) == kie.max_rate_limit_retries + 1
    else:
        assert len(await controls.creates()) == 1


@pytest.mark.parametrize("code", CODES)
async def test_error_codes_on_reads(kie, controls, code):
    await controls.fault("status", kind="code", code=code)
    with pytest.raises(KieError) as caught:
        await kie.status(MARKET, "any")
    assert caught.value.code == code
    await controls.fault("credit", kind="code", code=code)
    with pytest.raises(KieError) as caught:
        await kie.credits()
    assert caught.value.code == code


async def test_strict_http_and_message_key(kie, controls):
    await controls.post("config", {"strict_http": True, "message_key": True})
    await controls.post("balance", {"credits": 1})
    with pytest.raises(KieError) as caught:
        await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approve("nano-banana-2"))
    assert caught.value.code == 402 and caught.value.http_status == 402
    assert "insufficient" in caught.value.message


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_create_answered_with_a_server_error_envelope_may_have_been_created(kie, controls, code):
    await controls.post("config", {"strict_http": True})  # the envelope arrives with HTTP status = its code
    await controls.fault("create", kind="code", code=code)
    with pytest.raises(OutcomeUnknownError) as caught:
        await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approve("nano-banana-2"))
    assert "server error" in caught.value.message
    assert "kie.ai/logs" in caught.value.next_step
    assert len(await controls.creates()) == 1  # sent once, never again


async def test_credit_balance_is_a_bare_number(kie, controls):
    await controls.post("balance", {"credits": 12.5})
    assert await kie.credits() == 12.5


async def test_unknown_task_and_visibility_lag(kie, controls, sim):
    with pytest.raises(KieError) as caught:
        await kie.find_task("nope")
    assert caught.value.code == 422
    await controls.post("config", {"visibility_lag_polls": 2})
    task_id = await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approve("nano-banana-2"))
    with pytest.raises(KieError) as caught:
        await kie.status(MARKET, task_id)
    assert MARKET.is_not_visible(caught.value.message)


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ({"kind": "drop_after_create"}, OutcomeUnknownError),
        ({"kind": "drop"}, OutcomeUnknownError),
        ({"kind": "malformed"}, OutcomeUnknownError),
        ({"kind": "html", "status": 502}, OutcomeUnknownError),
        ({"kind": "slow", "seconds": 5}, OutcomeUnknownError),
    ],
)
async def test_create_faults_are_never_resubmitted(kie, controls, fault, outcome):
    kie._api.timeout = httpx2.Timeout(0.3)  # the slow fault outlasts it
    await controls.fault("create", **fault)
    with pytest.raises(outcome) as caught:
        await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approve("nano-banana-2"))
    assert "may have been created" in caught.value.next_step
    assert len(await controls.creates()) == 1


async def test_drop_after_create_charged_exactly_once(kie, controls, sim):
    before = sim.balance()
    await controls.fault("create", kind="drop_after_create")
    with pytest.raises(OutcomeUnknownError):
        await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approve("nano-banana-2"))
    tasks = await controls.get("tasks")
    assert len(tasks if isinstance(tasks, list) else tasks["tasks"]) == 1
    assert sim.balance() == before - 8


async def test_reads_survive_proxy_pages(kie, controls):
    await controls.fault("status", kind="html", status=502)
    with pytest.raises(KieError) as caught:
        await kie.status(MARKET, "x")
    assert caught.value.category is Category.PROTOCOL and caught.value.retryable


async def test_cloudflare_block_without_user_agent(transport):
    bare = httpx2.AsyncClient(transport=transport, base_url=API)
    del bare.headers["User-Agent"]  # httpx2 sends its own by default
    answer = await bare.get("/api/v1/chat/credit", headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})
    await bare.aclose()
    assert answer.status_code == 403 and b"1010" in answer.content


async def test_connection_refused_is_not_sent():
    client = KieClient(api_key="k", base_url="http://127.0.0.1:9", upload_base_url="http://127.0.0.1:9")
    with pytest.raises(NotSentError, match="nothing was created"):
        await client.create(MARKET, "nano-banana-2", IMAGE_BODY, approve("nano-banana-2"))
    await client.aclose()


async def test_download_url_is_a_bare_string_and_expires(kie, sim):
    task_id = await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approve("nano-banana-2"))
    sim.advance(120)
    url = (await kie.status(MARKET, task_id)).result_urls[0]
    fresh = await kie.download_url(url)
    assert isinstance(fresh, str) and fresh != url
    assert (await kie.files.get(fresh)).status_code == 200
    sim.advance(1201)
    assert (await kie.files.get(fresh)).status_code == 403
    with pytest.raises(KieError) as caught:
        await kie.download_url("https://example.com/not-from-kie.png")
    assert caught.value.code == 422


@pytest.mark.parametrize("old_shape", [False, True])
async def test_uploads_all_three_endpoints(kie, controls, old_shape):
    await controls.post("config", {"old_upload_shape": old_shape})
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
    streamed = await kie.upload_file(png, "ref.png")
    from_bytes = await kie.upload_bytes(png, "ref2.png")
    from_url = await kie.upload_from_url(streamed.url)
    for uploaded in (streamed, from_bytes, from_url):
        assert uploaded.url.startswith("http")
        assert (await kie.files.get(uploaded.url)).content == png


async def test_upload_errors(kie, controls):
    await controls.fault("upload", kind="code", code=401)
    with pytest.raises(KieError) as caught:
        await kie.upload_bytes(b"x", "x.png")
    assert caught.value.code == 401
    answer = await kie._uploads.post("/api/file-base64-upload", json={"base64Data": "!!", "uploadPath": "p"})
    assert answer.json()["success"] is False and "Base64" in answer.json()["msg"]


async def test_429_refusal_is_retried_once_then_succeeds(kie, controls):
    await controls.fault("create", kind="code", code=429)
    task_id = await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approve("nano-banana-2"))
    assert task_id
    assert len(await controls.creates()) == 2


async def test_simulator_rate_limit_is_real(kie, controls):
    """The simulator enforces KIE's 20 creates per 10 s (the client's own pacing is unit-tested)."""
    await controls.post("clock/speed", {"speed": 0})
    kie._creates = SlidingWindow(100, 10.0)  # let the simulator, not our pacing, say no
    approval = approve("nano-banana-2", 25)
    kie.max_rate_limit_retries = 0
    outcomes = []
    for _ in range(21):
        try:
            await kie.create(MARKET, IMAGE_BODY["model"], IMAGE_BODY, approval)
            outcomes.append("ok")
        except KieError as err:
            outcomes.append(err.code)
    assert outcomes[:20] == ["ok"] * 20
    assert outcomes[20] == 429


def test_advice_fitted_to_where_a_refusal_happened_keeps_what_kind_of_refusal_it_is():
    """with_next_step made every error a plain KieError: a refusal that never reached KIE read "KIE request failed",
    and one that was never sent lost its "nothing was created" class (callers tell unknown outcomes by class)."""
    here = RefusedHereError("x.png changed since it was priced", next_step="Ask again.").with_next_step("Look.")
    assert type(here) is RefusedHereError and str(here).startswith("Refused by kie-mcp (input): x.png"), str(here)
    unknown = OutcomeUnknownError("the connection failed").with_next_step("Check https://kie.ai/logs.")
    assert type(unknown) is OutcomeUnknownError and unknown.next_step == "Check https://kie.ai/logs."
    assert str(unknown).endswith("Check https://kie.ai/logs.") and unknown.message == "the connection failed"


async def test_the_key_is_never_sent_over_plain_http_to_another_machine():
    """Whatever built the client (config refuses such a KIE_BASE_URL): nothing is sent, not even a lookup of the
    host; a loopback address (a local proxy, ``kie-mcp sim``) is this machine, and is used."""
    async with KieClient(
        api_key=SANDBOX_API_KEY, base_url="http://api.kie.example", upload_base_url="http://upload.kie.example"
    ) as kie:
        with pytest.raises(RefusedHereError) as read:
            await kie.credits()
        with pytest.raises(KieError) as upload:  # an upload's failure, in words for one
            await kie.upload_bytes(b"\x89PNG", "x.png")
        assert kie.built_clients() == ()
    for caught, setting in ((read, "Set KIE_BASE_URL to an https"), (upload, "Set KIE_UPLOAD_BASE_URL to an https")):
        assert "is plain http to another machine, so the API key is not sent there" in str(caught.value)
        assert "Nothing was sent" in str(caught.value) and setting in str(caught.value)
