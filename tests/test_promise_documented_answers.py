"""Answers KIE's current docs show, which kie-mcp misread: a failed task reported with code 501 and its record (as
KIE's failure callbacks are shaped: Market, Veo, Flux Kontext), and no other code read so; a repeated 4K request
answered in KIE's documented words (with the 4K's links but no 4K task, or with no data at all), and neither a
message merely holding those words nor links that are the clip's own taken for a 4K; and a plain Veo clip's record
that fills ``fullResultUrls``.

Each test drives the server through the real MCP client in both protocol eras against the simulator, taught the
documented shape (``SimConfig.failed_record_code``, ``SimConfig.uhd_repeat``, Veo's generation record, a ``code``
fault's ``data``).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from .conftest import answering, text_of
from .test_followups import balance, finished, kie_auth, requests_to, spent_today

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
FLUX = {"prompt": "a red apple on a wooden table", "model": "flux-kontext-pro"}
VEO = {"prompt": "slow push-in on waves at dusk, gulls overhead", "model": "veo3_fast"}
UHD_PATH = "/api/v1/veo/get-4k-video"


async def done_4k_made_elsewhere(client, controls, *, repeat: str) -> str:
    """A finished clip whose 4K was made elsewhere (another tool, kie.ai) and is done by now; KIE answers a repeat
    in the ``uhd_repeat`` shape. Returns the clip's task id."""
    source = await finished(client, VEO)
    await controls.http.post(UHD_PATH, json={"taskId": source, "index": 0}, headers=kie_auth())
    await controls.post("clock/advance", {"seconds": 700})
    await controls.post("config", {"uhd_repeat": repeat})
    return source


# KIE's answers are read the same way in both protocol eras: one era keeps the suite short.
pytestmark = pytest.mark.parametrize("mode", ["auto"])


async def test_a_4k_kie_answers_with_its_links_but_no_4k_task_is_recorded_saved_and_not_charged(
    connect, controls, tmp_path: Path
):
    """KIE's documented 422 to a repeat for a finished 4K: "The video has been generated successfully" with the 4K's
    ``resultUrls`` (docs.kie.ai/veo3-api/get-veo-3-4k-video, "Error Responses"), here naming the clip asked about.
    It read as "fix the field it names", its links dropped. Now it is the clip's 4K, ``<clip>-4k``: its links
    saved, nothing charged, and asked again it is returned without asking KIE."""
    async with connect(elicitation=answering()) as client:
        source = await done_4k_made_elsewhere(client, controls, repeat="source")
        before, paid = await spent_today(client), await balance(controls)
        result = await client.call_tool("continue_video", {"task_id": source, "operation": "4k", "wait_seconds": 20})
        after = await spent_today(client)
        again = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
        clip = (await client.call_tool("check_task", {"task_id": source})).structured_content["task"]
    text = text_of(result)
    [task] = result.structured_content["tasks"]
    assert task["task_id"] == f"{source}-4k" and task["state"] == "succeeded", text
    assert task["result_urls"] and len(task["files"]) == 1, text
    assert all((tmp_path / name).is_file() for name in task["files"])
    assert task["credits_reserved"] == 0 and task["parent_task_id"] == source, text
    assert "nothing new was started or charged" in text and "Fix the field" not in text, text
    # the cost line says the same: it said "120 credits quoted and reserved ... KIE's charge is recorded as each task
    # ends" (no charge ever comes for a task KIE already had)
    [cost] = [line for line in text.splitlines() if line.startswith("Cost:")]
    assert cost.startswith("Cost: nothing charged (KIE already had the task from an earlier request"), cost
    assert "reserved" not in cost.split(";")[0] and "recorded as each task ends" not in cost, cost
    assert after == before and await balance(controls) == paid  # reserved, then refunded; KIE charged nothing
    assert again.structured_content["tasks"][0]["task_id"] == f"{source}-4k", text_of(again)
    assert len(await requests_to(controls, UHD_PATH)) == 2  # the one made elsewhere and ours: the repeat asked nobody
    assert clip["model"] == "veo3_fast" and clip["parent_task_id"] is None  # the clip's own record is untouched


async def test_a_4k_kie_says_is_done_without_data_costs_nothing_and_says_it_is_made(connect, controls):
    """The same 422 without ``data`` (a summary copy of KIE's page shows it so): there is no task and no link, so it
    is a refusal, but one that says the 4K has already been made and where to find it, never "fix the field"."""
    async with connect(elicitation=answering()) as client:
        source = await done_4k_made_elsewhere(client, controls, repeat="bare")
        before, paid = await spent_today(client), await balance(controls)
        result = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
        await anyio.sleep(0.2)
        after = await spent_today(client)
    text = text_of(result)
    assert result.structured_content["status"] == "failed", text
    assert "The video has been generated successfully" in text, text
    assert f"A 4K version of task {source} has already been made" in text and "nothing was charged" in text, text
    assert "Fix the field" not in text, text
    assert after == before and await balance(controls) == paid


async def test_a_plain_veo_clip_is_saved_once_though_its_record_fills_full_result_urls(connect, tmp_path: Path):
    """KIE's record-info example of a plain generation carries ``fullResultUrls`` ("Full video URLs after extended",
    required in its schema) beside ``resultUrls`` of another link (docs.kie.ai/veo3-api/get-veo-3-video-details):
    taken for every Veo record, one clip was saved twice. Only an extension's record has a whole video."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        task = (await client.call_tool("check_task", {"task_id": source})).structured_content["task"]
    assert len(task["result_urls"]) == 1 and task["result_urls"][0].endswith("/0.mp4"), task["result_urls"]
    assert len(task["files"]) == 1 and (tmp_path / task["files"][0]).is_file(), task["files"]


# -- the 4K's "done" answer is read by KIE's sentence, and its links are checked against the clip -------------------

NOT_DONE = "The video has not been generated successfully, 4K cannot be requested"


async def asked_again_goes_to_kie(client, controls, source: str) -> dict:
    """Asking for the clip's 4K once more, with KIE answering as it does to a first request: the answer, having
    checked that it went to KIE (a fake 4K recorded before would be returned without asking anyone)."""
    asked = len(await requests_to(controls, UHD_PATH))
    quote = await client.call_tool("estimate_cost", {"task_id": source, "operation": "4k"})
    again = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
    assert len(await requests_to(controls, UHD_PATH)) == asked + 1, text_of(again)
    assert (quote.structured_content["quote"] or {}).get("credits_total", 0) > 0, text_of(
        quote
    )  # not the "0 credits" of a made 4K
    return again.structured_content["tasks"][0]


async def test_a_4k_refusal_that_only_contains_kies_words_for_done_is_a_refusal_and_records_nothing(connect, controls):
    """KIE's words for a done 4K were found anywhere in its message: a 422 "The video has not been generated
    successfully, ..." read as "the 4K has already been made", and, naming the clip with its own 720p link, that
    link was saved as the 4K: asked again, the fake was returned and quoted at 0 credits, so the real 4K could never
    be had. Now only a message that starts with KIE's sentence says a 4K is done."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        clip = (await client.call_tool("check_task", {"task_id": source})).structured_content["task"]
        before, paid = await spent_today(client), await balance(controls)
        for data in (None, {"taskId": source, "resultUrls": clip["result_urls"], "imageUrls": None}):
            await controls.fault("create", kind="code", code=422, msg=NOT_DONE, data=data)
            result = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
            text = text_of(result)
            assert result.structured_content["status"] == "failed", text
            assert NOT_DONE in text and "already been made" not in text and "already being made" not in text, text
            assert f"{source}-4k" not in text, text
        await anyio.sleep(0.2)
        after = await spent_today(client)
        paid_after = await balance(controls)
        listed = await client.call_tool("list_tasks", {})
        real = await asked_again_goes_to_kie(client, controls, source)
    assert after == before and paid_after == paid  # refused twice: nothing charged, nothing held
    assert not [t for t in listed.structured_content["tasks"] if t["task_id"] == f"{source}-4k"]
    assert real["task_id"] != f"{source}-4k" and real["parent_task_id"] == source, real


async def test_a_done_4k_answer_whose_links_are_the_clips_own_is_not_recorded_as_its_4k(connect, controls):
    """KIE's documented sentence for a done 4K, naming the clip asked about, but with the clip's own (720p) link:
    recorded as ``<clip>-4k`` it stood for the 4K for good (returned without asking KIE, quoted at 0 credits). A
    link the journal holds for the clip is no 4K: the answer is a refusal saying the 4K exists and where to look."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        clip = (await client.call_tool("check_task", {"task_id": source})).structured_content["task"]
        data = {"taskId": source, "resultUrls": clip["result_urls"], "imageUrls": None}
        before, paid = await spent_today(client), await balance(controls)
        await controls.fault(
            "create", kind="code", code=422, msg="The video has been generated successfully", data=data
        )
        result = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
        await anyio.sleep(0.2)
        after, paid_after = await spent_today(client), await balance(controls)
        listed = await client.call_tool("list_tasks", {})
        real = await asked_again_goes_to_kie(client, controls, source)
    text = text_of(result)
    assert result.structured_content["status"] == "failed", text
    assert f"A 4K version of task {source} has already been made" in text and "nothing was charged" in text, text
    assert "https://kie.ai/logs" in text and "list_tasks" in text and "Fix the field" not in text, text
    assert "in a few minutes" not in text, text  # a done 4K is answered the same way again: no "ask again later"
    assert after == before and paid_after == paid
    assert not [t for t in listed.structured_content["tasks"] if t["task_id"] == f"{source}-4k"]
    assert real["task_id"] != f"{source}-4k", real


# -- only code 501 says a task failed ----------------------------------------------------------------------------------


async def test_a_status_answer_with_another_error_code_beside_a_failed_record_does_not_end_the_task(connect, controls):
    """Any error code beside this task's record with a failed flag ended the task for good and released its
    reservation: a 429 (or 455, 500) is about the status check, and the task may well succeed. Only 501, KIE's
    "Generation failed", says the task failed; the task here ends failed once KIE says so with code 200."""
    await controls.post("config", {"failed_record_code": 429})
    await controls.fault("create", kind="task_fail", fail_code="500", fail_msg="the render melted")
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VEO, "wait_seconds": 2})
        task_id = made.structured_content["tasks"][0]["task_id"]
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        held = await spent_today(client)
        await controls.post("config", {"failed_record_code": None})
        ended = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
        spent = await spent_today(client)
    assert made.structured_content["tasks"][0]["state"] != "failed", text_of(made)
    assert looked.structured_content["task"]["state"] not in ("failed", "succeeded"), text_of(looked)
    assert held > 0  # its reservation still held while KIE has not said the task failed
    assert ended.structured_content["task"]["state"] == "failed", text_of(ended)
    assert "the render melted" in ended.structured_content["task"]["error"], text_of(ended)
    assert spent == 0


@pytest.mark.parametrize(
    ("tool", "arguments", "status_path"),
    [
        ("generate_image", IMAGE, "/api/v1/jobs/recordInfo"),
        ("generate_video", VEO, "/api/v1/veo/record-info"),
        ("generate_image", FLUX, "/api/v1/flux/kontext/record-info"),
    ],
    ids=["market", "veo", "flux-kontext"],
)
async def test_a_task_kie_reports_failed_with_code_501_ends_failed_and_its_credits_return(
    connect, controls, tool, arguments, status_path
):
    """KIE's code for a failed generation is 501: docs.kie.ai/market/common/get-task-detail lists it ("Generation
    failed", "Check failMsg") among recordInfo's codes, and the failure callbacks of the Market (``{code: 501, data:
    {state: "fail", failMsg, ...}}``), Veo and Flux Kontext ("video/image generation task failed",
    docs.kie.ai/veo3-api/generate-veo-3-video-callbacks, .../flux-kontext-api/generate-or-edit-image-callbacks) use
    it. A status answer so shaped, the task's own record (Market's ``state``, Veo's and Flux's ``successFlag`` 2 or
    3) as its data, left the task "queued" for good, its credits held; it ends the task failed with KIE's message,
    its reservation returned. (Runway, Aleph and GPT-4o Image document no 501.)"""
    await controls.post("config", {"failed_record_code": 501})
    await controls.fault("create", kind="task_fail", fail_code="501", fail_msg="the render melted", upstream=True)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool(tool, {**arguments, "wait_seconds": 20})
        task_id = made.structured_content["tasks"][0]["task_id"]
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        spent = await spent_today(client)
    asked = await controls.http.get(status_path, params={"taskId": task_id}, headers=kie_auth())
    answer = asked.json()  # what kie-mcp read: KIE's failure shape, 501 beside the task's own record
    assert answer["code"] == 501 and answer["data"]["taskId"] == task_id, answer
    [task] = made.structured_content["tasks"]
    assert task["state"] == "failed", text_of(made)
    assert "the render melted" in task["error"] and task["fail_code"] == "501", text_of(made)
    assert "their reservation was returned" in text_of(made)
    assert looked.structured_content["task"]["state"] == "failed", text_of(looked)
    assert "stopped following" not in text_of(looked)
    assert spent == 0  # its reservation went back, as for any failed task
    assert await balance(controls) == 5000  # and KIE charged nothing
