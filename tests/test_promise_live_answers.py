"""Answers KIE gives live (recorded by justintanner/apicity, tests/recordings/kie_2079838932), each against a promise:
a failed task ends failed and gives its reservation back, a task KIE does not show yet is waited for and its result
saved, a task KIE does not know is said to be so (not asked about as an unreadable answer for ever), and a charge KIE
does not report is never said to be KIE's. Driven through the MCP client and the simulator, which answers so itself;
where a promise is about the client, the live answer is the simulator's fault, whatever the simulator's default."""

import json
import time
from typing import Any

import anyio

from kie_mcp.journal import Journal
from kie_mcp.sandbox import SANDBOX_API_KEY
from kie_mcp.tasks import polling
from kie_mcp.tasks.follower import GIVE_UP
from kie_mcp.tasks.records import TaskBook, TaskRecord

from .conftest import answering, eras_in_turn, looked_then_cleared, text_of

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
ALEPH = {"model": "runway-aleph", "prompt": "make it rain", "options": {"videoUrl": "https://example.com/in.mp4"}}
RUNWAY = {"model": "runway-video", "prompt": "waves at dusk", "duration": 5, "aspect_ratio": "16:9"}
NO_RECORD = {"kind": "code", "code": 200, "msg": "success"}  # {"code": 200, "msg": "success", "data": null}


async def test_a_failed_runway_aleph_task_ends_failed_and_gives_its_reservation_back(connect, controls):
    """KIE answers an Aleph failure with successFlag 3 and a numeric errorCode (kie/aleph/generate-upstream-failure,
    2026-08-18), a flag Aleph's docs do not list: it was shown "running" for ever, its 110 credits held."""
    said = "internal error, please try again later."
    await controls.fault("create", kind="task_fail", fail_code="500", fail_msg=said)
    async with connect(elicitation=answering(), max_credits_per_call=10_000) as client:
        made = await client.call_tool("generate_video", {**ALEPH, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
        credits = await client.call_tool("check_credits", {})
    task = done.structured_content["task"]
    assert task["state"] == "failed" and task["fail_code"] == "500", text_of(done)
    assert task["error"] == f"KIE reports the task failed (code 500): {said}"
    assert credits.structured_content["spent_today"] == 0, text_of(credits)
    data = (await controls.http.get(f"/api/v1/aleph/record-info?taskId={task_id}", headers=AUTH)).json()["data"]
    assert (data["successFlag"], data["errorCode"]) == (3, 500)  # the simulator answers as KIE does
    assert isinstance(data["createTime"], int) and isinstance(data["completeTime"], int)


@eras_in_turn("model", ["gpt-4o-image", "flux-kontext-pro"])
async def test_an_image_kie_says_does_not_exist_yet_is_waited_for_and_saved(connect, controls, model):
    """GPT-4o Image and Flux Kontext answer a task they do not show with 422 "The record does not exist"
    (kie/gpt4o-image/record-info-not-found, kie/flux-kontext-record-info-not-found, 2026-06-27): right after the
    create that is a wait, never a refusal, after 8 of which the follower left the paid image unsaved."""
    await controls.fault("status", kind="code", code=422, msg="The record does not exist", times=10)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool(
            "generate_image", {"model": model, "prompt": "a fox", "aspect_ratio": "1:1", "wait_seconds": 20}
        )
    task = made.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["files"] and task["error"] is None, text_of(made)


@eras_in_turn("arguments", [RUNWAY, ALEPH], ids=["runway", "aleph"])
async def test_a_young_runway_task_kie_answers_with_no_record_is_a_wait_not_an_unreadable_answer(
    connect, controls, arguments
):
    """Runway's and Aleph's status endpoints answer a task they do not show with success and ``data`` null
    (kie/runway/record-detail-not-found 2026-06-27, kie/aleph/record-info-not-found 2026-08-06): for a task made
    seconds ago that is a wait, as another family's "record is null", not an answer to note and retry as unreadable."""
    await controls.fault("status", times=-1, **NO_RECORD)
    async with connect(elicitation=answering(), max_credits_per_call=10_000) as client:
        looked, done = await looked_then_cleared(client, controls, "generate_video", arguments, 20)
    seen = looked.structured_content["task"]
    assert seen["state"] in ("queued", "running") and seen["error"] is None, text_of(looked)
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)


def scaled_grace(poll_min_interval: float) -> float:
    """The 30 s grace, scaled as the follower's schedule is by a shorter ``poll_min_interval`` (2 s by default)."""
    return polling.VISIBILITY_GRACE_SECONDS * poll_min_interval / 2.0


async def status_calls(controls: Any, task_id: str) -> int:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return sum(1 for r in items if r["query"].get("taskId") == task_id and "record" in r["path"])


@eras_in_turn("arguments", [RUNWAY, ALEPH], ids=["runway", "aleph"])
async def test_a_new_runway_task_answered_with_no_record_at_its_first_look_is_a_wait_not_unknown_to_kie(
    connect, controls, monkeypatch, arguments
):
    """The review: the grace in which "no record" means "not shown yet" ran 30 s from the create, but the follower
    first looks at a task at 1.2x its model's typical time (72 s for Runway, 144 s for Aleph), so a new video
    answered so at its first look was said to be another account's task. The grace runs from the first look."""
    poll = 0.04  # the schedule 50 times faster: Runway's first look 1.44 s after its create, the grace 0.6 s
    grace = scaled_grace(poll)
    monkeypatch.setattr(polling, "VISIBILITY_GRACE_SECONDS", grace)
    await controls.fault("status", times=-1, **NO_RECORD)
    async with connect(elicitation=answering(), max_credits_per_call=10_000, poll_min_interval=poll) as client:
        made = await client.call_tool("generate_video", {**arguments, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        await anyio.sleep(grace + 0.2)  # past 30 s from its create; its first look comes later
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        await controls.http.delete("/__sim/faults")
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
    seen = looked.structured_content["task"]
    assert seen["state"] in ("queued", "running") and seen["error"] is None, text_of(looked)
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)


@eras_in_turn("arguments", [RUNWAY, ALEPH], ids=["runway", "aleph"])
async def test_a_runway_task_kie_has_answered_about_is_followed_through_a_streak_of_no_record_answers(
    connect, controls, monkeypatch, arguments
):
    """The review: past the grace, a streak of "no record" answers about a task KIE had answered about (a passing
    hiccup) read as "made with another account's key, or KIE no longer keeps it", and after 8 of them the paid task
    was left alone for an hour, its reservation held. KIE has that task: each such answer is a failed look, asked
    again with backoff and never counted towards leaving it, and the task is followed to its end."""
    poll = 0.005  # the schedule 400 times faster: the backoff between two looks at most 0.15 s, the grace 0.075 s
    grace = scaled_grace(poll)
    monkeypatch.setattr(polling, "VISIBILITY_GRACE_SECONDS", grace)
    streak = GIVE_UP + 2
    async with connect(elicitation=answering(), max_credits_per_call=10_000, poll_min_interval=poll) as client:
        await controls.post("clock/speed", {"speed": 0})
        made = await client.call_tool("generate_video", {**arguments, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        seen = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})  # KIE answers: queued
        await anyio.sleep(grace + 0.05)
        before = await status_calls(controls, task_id)
        await controls.fault("status", times=streak, **NO_RECORD)
        with anyio.fail_after(4):  # the streak, then KIE asked once more: still followed
            while await status_calls(controls, task_id) <= before + streak:  # noqa: ASYNC110 - the simulator's log
                await anyio.sleep(0.05)
        await controls.post("clock/speed", {"speed": 1000})
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    assert seen.structured_content["task"]["error"] is None, text_of(seen)
    task = done.structured_content["task"]
    assert task["state"] == "succeeded" and task["files"] and task["error"] is None, text_of(done)


@eras_in_turn("family", ["runway", "aleph"])
async def test_a_runway_task_kie_answers_with_no_record_later_is_said_to_be_unknown_to_kie(
    connect, controls, tmp_path, family
):
    """The same answer an hour after the create: KIE does not know the task under this key, said so as for any
    family, and neither failed nor refunded on it. It used to read "KIE's last status answer could not be used",
    asked about again for ever."""
    record = TaskRecord(
        task_id="0123456789abcdef0123456789abcdef",
        model={"runway": "runway-video", "aleph": "runway-aleph"}[family],
        family=family,
        kind="video",
        state="queued",
        created_at=time.time() - 3600,
        credits_reserved=110.0,
    )
    journal = Journal.for_workspace(tmp_path)
    TaskBook(journal).add(record, prompt="make it rain", session=None)
    journal.close()
    await controls.fault("status", times=-1, **NO_RECORD)
    async with connect() as client:
        looked = await client.call_tool("check_task", {"task_id": record.task_id, "wait_seconds": 0})
    task = looked.structured_content["task"]
    assert task["state"] == "queued" and task["error"].startswith("KIE does not know this task under the current API")
    assert "could not be used" not in text_of(looked) and "data null" in task["error"], task["error"]


async def test_a_market_charge_kie_does_not_report_is_never_said_to_be_kies(connect, controls):
    """A Market record as KIE answers it live has no creditsConsumed (none of 24 recorded success records, 2026-04):
    the task's quote stays counted as spent, and no answer says KIE charged it (README, "Real charges")."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool(
            "generate_image", {"model": "nano-banana-2", "prompt": "a red apple", "wait_seconds": 20}
        )
        task = made.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
        credits = await client.call_tool("check_credits", {})
    assert task["state"] == "succeeded" and task["credits_quoted"] == 8, text_of(made)
    assert task["credits_charged"] is None and not task["charge_measured"]
    said = "Cost: 8 credits quoted and counted (approved in the confirmation form); KIE does not report its charge"
    assert said in text_of(made), text_of(made)
    assert "Cost: 8 credits quoted and counted; KIE does not report this task's charge" in text_of(checked)
    assert "charged by KIE" not in text_of(made) + text_of(checked)
    assert "recorded as each task ends" not in text_of(made)
    assert credits.structured_content["spent_today"] == 8
    data: dict[str, Any] = (
        await controls.http.get(f"/api/v1/jobs/recordInfo?taskId={task['task_id']}", headers=AUTH)
    ).json()["data"]
    assert "creditsConsumed" not in data and "updateTime" not in data, json.dumps(data)
