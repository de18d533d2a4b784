"""Errors say what happened, whether anything was spent or created, and what to do, in words for the request that
failed: a status check, a balance check, an upload and a download each get advice that fits them, never KIE's advice
for a create ("change the prompt", "fix the field it names", "choose another model"). Driven through the real MCP
client against the simulator, with KIE's answers faulted."""

from typing import Any

import anyio
import pytest
from PIL import Image

from kie_mcp.sandbox import SANDBOX_API_KEY

from .conftest import answering, eras_in_turn, text_of
from .test_followups import VEO, finished

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit"}
MARKET = "/api/v1/jobs/createTask"
# KIE's advice per code, written for a create: never right after a status check, a balance check or an upload.
CREATE_ADVICE = (
    "Change the prompt",
    "Fix the field it names",
    "lower the cost",
    "Trying again is a new charge",
    "Choose another model",
    "Check the task id",
    "2 months",
    "20 new tasks",
    "unexpected error",
)


def create_advice_in(text: str) -> list[str]:
    return [advice for advice in CREATE_ADVICE if advice.lower() in text.lower()]


async def credits_and_a_generate(connect: Any) -> tuple[Any, Any]:
    """check_credits, then generate_image: the two calls that read the balance first."""
    async with connect(elicitation=answering()) as client:
        return await client.call_tool("check_credits", {}), await client.call_tool("generate_image", IMAGE)


# -- F3: a failed status lookup is not "KIE knows no task" ---------------------------------------------------------


@eras_in_turn(
    ("code", "advice"),
    [(500, "Try again in a minute"), (401, "KIE_API_KEY"), (433, "cap")],
    ids=["server error", "bad key", "key cap"],
)
async def test_a_follow_up_of_another_workspaces_task_whose_status_check_fails_says_so_not_no_such_task(
    connect, controls, tmp_path, code, advice
):
    """continue_video and estimate_cost of a task this workspace's journal does not know ask KIE about it; a failed
    ask (a server error, the key) is that failure, with nothing sent or charged, never "KIE knows no task"."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
    await controls.fault("status", times=-1, kind="code", code=code)
    args = {"task_id": source, "operation": "extend", "prompt": "more"}
    async with connect(elicitation=answering(), workspace=tmp_path / "other") as other:
        continued = await other.call_tool("continue_video", args)
        estimated = await other.call_tool("estimate_cost", args)
    for answer in (continued, estimated):
        text = text_of(answer)
        assert answer.is_error, text
        assert "knows no task" not in text and "Use the id of a video task" not in text, text
        assert f"KIE's status check of task {source} failed" in text, text
        assert "nothing was sent or charged" in text.lower() and advice in text, text
        assert create_advice_in(text) == [], text
    assert len(await controls.creates()) == 1  # the source only


async def test_a_follow_up_of_a_task_kie_has_no_record_of_still_says_kie_knows_no_such_task(connect, controls):
    await controls.fault("status", times=-1, kind="code", code=422, msg="record is null")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool(
            "continue_video", {"task_id": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", "operation": "extend", "prompt": "more"}
        )
    assert result.is_error and "KIE knows no task" in text_of(result), text_of(result)
    assert await controls.creates() == []


# -- F4: a refused status check is noted in words for a status check ------------------------------------------------


@eras_in_turn(
    ("code", "advice"),
    [
        (400, None),
        (402, None),
        (404, None),
        (422, None),
        (501, None),
        (505, None),
        (401, "KIE_API_KEY"),
        (433, "cap"),
        (455, "maintenance"),
    ],
)
async def test_a_refused_status_check_is_noted_with_advice_for_a_status_check_not_for_a_create(
    connect, controls, code, advice
):
    await controls.fault("status", times=-1, kind="code", code=code)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 1})  # KIE keeps refusing: no end
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id})
    note = checked.structured_content["task"]["error"]
    text = text_of(checked)
    assert note and note in text, text
    assert f"KIE error {code}" in note and "unaffected" in note, note
    # Still asking, or (this call's own look the 8th refusal in a row) no longer, saying what to do.
    assert "keeps asking" in note or "check_task asks KIE again" in note, note
    assert create_advice_in(note) == [], note
    assert ".." not in note, note
    if advice is not None:
        assert advice in note, note


# -- F5: balance checks and uploads ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (400, "Try again in a minute"),
        (404, "Try again in a minute"),
        (422, "Try again in a minute"),
        (505, "Try again in a minute"),
        (500, "Try again in a minute"),
        (401, "KIE_API_KEY"),
    ],
)
async def test_a_failed_balance_check_says_nothing_was_sent_or_charged_and_what_to_do(connect, controls, code, advice):
    await controls.fault("credit", times=-1, kind="code", code=code)
    for answer in await credits_and_a_generate(connect):
        text = text_of(answer)
        assert answer.is_error, text
        assert "KIE's balance check failed" in text and "nothing was sent or charged" in text, text
        assert advice in text, text
        assert create_advice_in(text) == [], text
    assert await controls.creates() == []


@pytest.mark.parametrize("code", [400, 402, 404, 405, 413, 422, 429, 500, 505])
async def test_a_refused_upload_says_the_upload_failed_and_nothing_was_charged(connect, controls, tmp_path, code):
    Image.new("RGB", (1200, 900), (200, 60, 40)).save(tmp_path / "photo.png")
    await controls.fault("upload", times=-1, kind="code", code=code)
    async with connect(elicitation=answering()) as client:
        uploaded = await client.call_tool("upload_file", {"path": "photo.png"})
        edited = await client.call_tool("generate_image", {**EDIT, "images": ["photo.png"]})
    for answer in (uploaded, edited):
        text = text_of(answer)
        assert answer.is_error or answer.structured_content["status"] == "failed", text
        assert "The upload failed" in text and "nothing was charged" in text, text
        assert create_advice_in(text) == [], text
    assert await controls.creates() == []


@pytest.mark.parametrize("kind", ["drop", "huge"])
async def test_an_upload_that_gets_no_usable_answer_names_the_upload_address(connect, controls, tmp_path, kind):
    Image.new("RGB", (1200, 900), (200, 60, 40)).save(tmp_path / "photo.png")
    fault = {"bytes": 17 * 1024**2} if kind == "huge" else {}
    await controls.fault("upload", times=-1, kind=kind, **fault)
    async with connect() as client:
        uploaded = await client.call_tool("upload_file", {"path": "photo.png"})
    text = text_of(uploaded)
    assert uploaded.is_error, text
    assert "The upload failed" in text and "nothing was charged" in text, text
    assert "KIE_UPLOAD_BASE_URL" in text and "KIE_BASE_URL" not in text, text
    assert "Reads are safe" not in text and create_advice_in(text) == [], text


async def test_an_error_code_kie_mcp_does_not_know_is_named_not_called_unexpected(connect, controls):
    await controls.fault("status", times=-1, kind="code", code=430)
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"})
    text = text_of(checked)
    assert checked.is_error, text
    assert "unexpected error" not in text and "error 430, which kie-mcp does not know" in text, text


async def test_kies_message_that_ends_with_a_full_stop_gets_no_second_one(connect, controls):
    await controls.fault("create", kind="code", code=402)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
    text = text_of(made)
    assert "Please top up." in text and "Please top up.." not in text, text


# -- F7: a journal folder that is a file; a download refused seconds after the task finished -----------------------


async def test_a_kie_mcp_file_where_the_journal_folder_goes_is_named_with_what_to_do(connect, controls, tmp_path):
    (tmp_path / ".kie-mcp").write_text("not a folder")
    for answer in await credits_and_a_generate(connect):
        text = text_of(answer)
        assert answer.is_error, text
        assert ".kie-mcp is a file" in text and "Rename or remove that file" in text, text
        assert "writable folder" not in text and "FileExistsError" not in text, text
    assert await controls.creates() == []


async def test_a_fresh_result_whose_links_are_refused_is_not_called_gone_and_no_new_spend_is_suggested(
    connect, controls
):
    await controls.fault("files", times=2, kind="code", code=404)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 30})
    text = text_of(made)
    assert "was refused" in text, text
    assert "probably gone" not in text and "new, charged task" not in text, text
    assert "kie.ai/logs" in text and "in the background" in text and "check_task" in text, text


async def test_a_result_older_than_kie_keeps_files_whose_links_are_refused_is_probably_gone(connect, controls, sim):
    made = await controls.http.post(
        MARKET,
        json={"model": IMAGE["model"], "input": {"prompt": IMAGE["prompt"]}},
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
    )
    task_id = made.json()["data"]["taskId"]
    sim.tasks[task_id].created_at -= 15 * 86400
    await anyio.sleep(0.2)  # finished in the simulator's time
    await controls.fault("files", times=2, kind="code", code=404)
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    text = text_of(checked)
    assert "probably gone" in text, text
