"""Answers KIE's current docs show, which kie-mcp misread: a failed Market task reported with code 501 and its record
(as KIE's failure callback is shaped), a repeated 4K request answered in KIE's documented words (with the 4K's links
but no 4K task, or with no data at all), and a plain Veo clip's record that fills ``fullResultUrls``.

Each test drives the server through the real MCP client in both protocol eras against the simulator, taught the
documented shape (``SimConfig.failed_record_code``, ``SimConfig.uhd_repeat``, Veo's generation record).
"""

from __future__ import annotations

from pathlib import Path

import anyio

from .conftest import answering, text_of
from .test_followups import balance, finished, kie_auth, requests_to, spent_today

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
VEO = {"prompt": "slow push-in on waves at dusk, gulls overhead", "model": "veo3_fast"}
UHD_PATH = "/api/v1/veo/get-4k-video"


async def test_a_market_task_kie_reports_failed_with_code_501_ends_failed_and_its_credits_return(connect, controls):
    """docs.kie.ai/market/common/get-task-detail lists 501 ("Generation failed", "Check failMsg") among recordInfo's
    codes, and the Market failure callback is ``{code: 501, data: {state: "fail", failMsg, ...}}``. Answered so, the
    task stayed "queued" for good with its credits held, and kie-mcp stopped following it as "refused"."""
    await controls.post("config", {"failed_record_code": 501})
    await controls.fault("create", kind="task_fail", fail_code="501", fail_msg="the render melted")
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        task_id = made.structured_content["tasks"][0]["task_id"]
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        spent = await spent_today(client)
    [task] = made.structured_content["tasks"]
    assert task["state"] == "failed", text_of(made)
    assert "the render melted" in task["error"] and task["fail_code"] == "501", text_of(made)
    assert "their reservation was returned" in text_of(made)
    assert looked.structured_content["task"]["state"] == "failed", text_of(looked)
    assert "stopped following" not in text_of(looked)
    assert spent == 0  # its reservation went back, as for any failed task
    assert await balance(controls) == 5000  # and KIE charged nothing


async def done_4k_made_elsewhere(client, controls, *, repeat: str) -> str:
    """A finished clip whose 4K was made elsewhere (another tool, kie.ai) and is done by now; KIE answers a repeat
    in the ``uhd_repeat`` shape. Returns the clip's task id."""
    source = await finished(client, VEO)
    await controls.http.post(UHD_PATH, json={"taskId": source, "index": 0}, headers=kie_auth())
    await controls.post("clock/advance", {"seconds": 700})
    await controls.post("config", {"uhd_repeat": repeat})
    return source


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
