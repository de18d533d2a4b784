"""A task the journal does not know, found at KIE by a ``check_task`` (as by ``kie://tasks/{id}`` and
``continue_video``), is followed on the schedule of any task: that call's look is its first, and the follower's next
look comes where the schedule puts the look after it, never before the first scheduled look (1.2x the model's typical
minimum), by the task's age from KIE's time of the task (Market, GPT-4o Image: ``createTime`` in milliseconds), else
from when it was found.

The review: the follower started a found task's schedule at "now + 10% of its age", so a young one (found on
https://kie.ai/logs moments after it was made) was looked at every 2 s until it was 20 s old and every 10% of its age
after that: a Kling 3.0 video found at once cost about thirty status calls instead of eleven.

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


@pytest.mark.parametrize("family", sorted(MADE_ELSEWHERE))
async def test_a_young_task_found_at_kie_is_looked_at_next_at_its_first_scheduled_look(connect, controls, sim, family):
    path, body = MADE_ELSEWHERE[family]
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
