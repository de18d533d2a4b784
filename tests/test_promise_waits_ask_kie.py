"""A check_task that waits never answers staler than one that does not: a wait on a task KIE has not been asked about
yet, that would end before the follower's first look (1.2x the model's typical minimum), gets one look at KIE early
in it, made by the follower and shared by every waiter; and an answer never gives kie-mcp's estimate from the model's
typical time as KIE's word: a task KIE was not asked about yet is said to be so, with when kie-mcp asks and that
wait_seconds=0 asks now.

The audit (a Veo 3.1 Fast task KIE refused for its content right after the create): check_task(wait_seconds=20)
answered after 20 s "queued (7%); about 279s left. Check again later", while wait_seconds=0 said at once that it
failed (code 400, flagged by content policy); the refusal stayed hidden, its reservation counted against the daily
cap, until the follower's first look about 108 s after the create.

In process against the simulator, both eras; its clock is stopped so that no task ends but the one forced to.
``poll_min_interval`` sets the schedule's pace (conftest's 10 ms runs it 200 times faster): 0.2 s here puts Veo 3.1
Fast's first look 10.8 s after its create, far past every wait, and its shortest gap at 0.2 s.
"""

from __future__ import annotations

import re
import time

import anyio

from .conftest import answering, text_of
from .test_follower import status_calls, video_nobody_waits_for

PACE = {"poll_min_interval": 0.2, "poll_max_interval": 0.5}  # Veo 3.1 Fast's first look: 10.8 s after the create


async def test_a_wait_answers_a_task_kie_failed_before_the_first_look_with_its_reason_asking_kie_once(
    connect, controls
):
    await controls.post("clock/speed", {"speed": 0})
    async with connect(elicitation=answering(), **PACE) as client:
        task_id = await video_nobody_waits_for(client)
        failed = {"state": "fail", "fail_code": "400", "fail_msg": "flagged by content policy"}
        await controls.post(f"tasks/{task_id}", failed)
        started = time.monotonic()
        waited = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
        took = time.monotonic() - started
    said = text_of(waited)
    assert waited.structured_content["task"]["state"] == "failed", said
    assert "code 400" in said and "flagged by content policy" in said, said
    assert took < 4, took  # answered as KIE's look came back, not at the wait's end
    assert len(await status_calls(controls, task_id)) == 1


async def test_waits_at_once_on_a_task_kie_was_not_asked_about_cause_one_look_and_later_waits_none(connect, controls):
    await controls.post("clock/speed", {"speed": 0})
    async with connect(elicitation=answering(), **PACE) as client:
        task_id = await video_nobody_waits_for(client)
        answers = []

        async def wait_on() -> None:
            answers.append(await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 1}))

        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(wait_on)
        looked = len(await status_calls(controls, task_id))
        again = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 1})
    assert looked == 1, looked  # one look for the three waits
    assert len(await status_calls(controls, task_id)) == 1  # KIE has answered: the schedule's first look is next
    for answer in (*answers, again):
        said = text_of(answer)
        assert answer.structured_content["task"]["state"] in ("queued", "running"), said
        assert "not been asked" not in said and "kie-mcp asks KIE again in about" in said, said
        assert "kie-mcp's estimate and not KIE's word" in said, said


async def test_an_answer_before_kie_was_asked_says_so_and_gives_the_estimate_as_one(connect, controls):
    await controls.post("clock/speed", {"speed": 0})
    # The schedule at its real pace: the first look 108 s after the create, and none for a task under 2 s old
    async with connect(elicitation=answering(), poll_min_interval=2.0, poll_max_interval=15.0) as client:
        task_id = await video_nobody_waits_for(client)
        waited = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0.3})
    said = text_of(waited)
    assert f"Task {task_id} (veo3_fast; " in said and "): KIE has not been asked about it yet;" in said, said
    assert ": queued" not in said, said  # not KIE's word
    assert "by this model's typical time (90-300 s), kie-mcp's estimate and not KIE's word: about" in said, said
    assert re.search(r"kie-mcp first asks KIE in about 10[0-9] s;", said), said  # 108 s after the create
    assert "check_task with wait_seconds=0 asks now" in said, said
    assert waited.structured_content["task"]["eta_seconds"] > 0
    assert len(await status_calls(controls, task_id)) == 0
