"""A task the journal does not know, found at KIE by a ``check_task`` (as by ``kie://tasks/{id}`` and
``continue_video``), is followed on the schedule of any task: that call's look is its first, and the follower's next
look comes where the schedule puts the look after it, never before the first scheduled look (1.2x the model's typical
minimum), by the task's age from KIE's time of the task (Market, GPT-4o Image: ``createTime`` in milliseconds). A task
of a family that gives no such time (Veo, Runway, Aleph, Flux Kontext: zone-less text) is of unknown age, and may be
old and nearly done: it is looked at every 10% of the time since it was found (2 s at least).

The review: the follower started a found task's schedule at "now + 10% of its age", so a young one (found on
https://kie.ai/logs moments after it was made) was looked at every 2 s until it was 20 s old and every 10% of its age
after that: a Kling 3.0 video found at once cost about thirty status calls instead of eleven. The next review: with
that fix, a Veo task found when nearly done was taken as made the moment it was found, and its first look waited 108 s
(1.2x Veo 3.1 Fast's 90 s) however soon it ended.

In process against the simulator, both eras. KIE's clock is this machine's while the task is made (so its
``createTime`` is this machine's time), then runs at the schedule's own pace (``PACE``: 25 times faster), so its
request log's times are the schedule's seconds, and the task takes exactly ``DURATION`` of them.
"""

from __future__ import annotations

import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.sandbox import SANDBOX_API_KEY, SimConfig, Simulator
from kie_mcp.tasks.follower import first_look

from .conftest import answering, text_of
from .test_follower import listed_with_files, looks_for, status_calls

PACE = {"poll_min_interval": 0.08, "poll_max_interval": 0.2}  # the schedule 25 times faster than its default 2 s
SPEED = 2.0 / PACE["poll_min_interval"]  # KIE's seconds per real second: the same pace
DURATION = 155.0  # each task's, in KIE's (and the schedule's) seconds

PROMPT = "waves rolling onto a beach at dusk"
# A task made elsewhere (KIE's playground, another app with the key): where it was made, its body, its model.
MADE_ELSEWHERE = {
    "market": ("/api/v1/jobs/createTask", {"model": "kling-3.0/video", "input": {"prompt": PROMPT}}),  # createTime ms
    "veo": ("/api/v1/veo/generate", {"model": "veo3_fast", "prompt": PROMPT, "aspectRatio": "16:9"}),  # zone-less text
}


@pytest.fixture
def sim() -> Simulator:
    """KIE at this machine's time until the task is made (the test then speeds it up), every task taking
    ``DURATION``."""
    simulator = Simulator(SimConfig(speed=1.0))
    simulator.duration_for = lambda task_id, low, high: DURATION  # type: ignore[method-assign]
    return simulator


async def test_a_young_task_found_at_kie_is_looked_at_next_at_its_first_scheduled_look(connect, controls, sim):
    path, body = MADE_ELSEWHERE["market"]  # KIE gives its createTime in milliseconds: its age is known
    typical = load_catalog().get(body["model"]).typical_seconds
    async with connect(elicitation=answering(), **PACE) as client:
        await client.call_tool("list_tasks", {})  # a server's first call answers late (a busy machine: a second)
        made = await controls.http.post(path, json=body, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})
        task_id = made.json()["data"]["taskId"]
        switched = (await controls.post("clock/speed", {"speed": SPEED}))["now"]  # KIE's clock at the schedule's pace
        found = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        await listed_with_files(client, seconds=60)  # nobody asks KIE again: the follower sees it to its end
    assert found.structured_content["task"]["state"] in ("queued", "running"), text_of(found)
    task = sim.tasks[task_id]
    # The task's age in the schedule's seconds at each status call: KIE's clock ran at this machine's pace from the
    # task's making until it was sped up, the schedule's 25 times faster all along
    ahead = (switched - task.created_at) * (SPEED - 1)
    ages = [round(call["at"] - task.created_at + ahead, 1) for call in await status_calls(controls, task_id)]
    assert ages[0] < first_look(typical) / 2, ages  # found young: check_task's look, long before the first
    assert ages[1] >= first_look(typical) - 1.0, ages  # the follower's first look: where the schedule puts it
    scheduled, _ = looks_for(DURATION, typical)  # the looks the schedule makes of a task that ends after DURATION
    assert len(ages) <= scheduled + 1, ages
    assert ages[-1] >= DURATION, ages  # the last look saw it ended


async def test_an_old_veo_task_found_at_kie_is_seen_ending_within_the_wait(connect, controls, sim):
    """Another app's Veo 3.1 Fast task, found at KIE by check_task 150 s after it was made, 5 s before it ends. KIE
    dates a Veo task in zone-less text, so its age is not known: it is looked at every 10% of the time since it was
    found, and a check_task waiting 3 s (75 of KIE's seconds) sees it end, as before the review's fix. That fix's first
    look, 108 s after the task was found, came after the wait had ended."""
    path, body = MADE_ELSEWHERE["veo"]
    typical = load_catalog().get(body["model"]).typical_seconds
    async with connect(elicitation=answering(), **PACE) as client:
        await client.call_tool("list_tasks", {})  # a server's first call answers late (a busy machine: a second)
        made = await controls.http.post(path, json=body, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})
        task_id = made.json()["data"]["taskId"]
        await controls.post("clock/advance", {"seconds": DURATION - 5.0})  # made elsewhere, 5 s from its end
        await controls.post("clock/speed", {"speed": SPEED})
        found = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        waited = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 3})
        calls = await status_calls(controls, task_id)
    assert found.structured_content["task"]["state"] in ("queued", "running"), text_of(found)
    assert waited.structured_content["task"]["state"] == "succeeded", text_of(waited)
    since = [round(call["at"] - calls[0]["at"], 1) for call in calls]  # KIE's (the schedule's) seconds since found
    assert since[1] < first_look(typical) / 10, since  # looked at again within moments, not at the first look's time
    assert len(since) <= 6, since  # every 2 s of the schedule until it ended (5 s), a few looks
