"""An explicit look never speeds up the schedule: a ``check_task(wait_seconds=0)`` (the "look now") made before a
task's first scheduled look costs that one status call, and the follower then looks where its schedule had it (the
first look at 1.2x the model's typical minimum, then every 10% of the task's age), still seeing the end within
max(2 s, 10%) of the task's duration.

Found in passing: the look now reset the task to the every-10%-of-age pace from the young age it was made at, so a
5-minute Veo 3.1 Fast clip checked 5 s after its create was looked at every 2 s from then on, instead of from 108 s
on: one early check cost tens of status calls more for the rest of the task.

In process against the simulator, both eras. Its clock runs at the schedule's own pace (``poll_min_interval`` 100 ms
runs the schedule 20 times faster, and the simulator's KIE at 20x), so its request log's times are the schedule's
seconds, and each task takes exactly ``DURATION`` of them (at 50x, a loaded CI machine's 0.3 s of delay was 16 of
those seconds, past the 15.5 the end may be seen late).
"""

from __future__ import annotations

import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.sandbox import SimConfig, Simulator
from kie_mcp.tasks.follower import first_look

from .conftest import answering, text_of
from .test_follower import VIDEO, looks_for, status_calls, until_saved, video_nobody_waits_for

PACE = {"poll_min_interval": 0.2, "poll_max_interval": 1.0}  # the schedule 10 times faster than its default 2 s
SPEED = 2.0 / PACE["poll_min_interval"]  # KIE's seconds per real second: the same pace
# Veo 3.1 Fast (typically 90-300 s): scheduled looks at about 108, 119, 131, 144 and 158 s, the end 3 s before the
# last: a busy machine's delays (each look a little later than due) leave it 12 s of the 15.5 s it may be seen late,
# and add no look (a late look only moves the later ones later). At 10 times real time, 1.2 s of real delay is 12 s
# here: a CI machine loaded by other work (at 20 times, 1 s of it overran the bound)
DURATION = 155.0


@pytest.fixture
def sim() -> Simulator:
    """KIE at the schedule's pace, every task taking ``DURATION``."""
    simulator = Simulator(SimConfig(speed=SPEED))
    simulator.duration_for = lambda task_id, low, high: DURATION  # type: ignore[method-assign]
    return simulator


async def test_a_look_now_at_a_young_task_costs_one_status_call_and_the_schedule_keeps_its_pace(
    connect, controls, sim, tmp_path
):
    typical = load_catalog().get(VIDEO["model"]).typical_seconds
    async with connect(elicitation=answering(), **PACE) as client:
        await video_nobody_waits_for(client)  # a server's first create answers late (a busy machine: ~0.5 s); ...
        task_id = await video_nobody_waits_for(client)  # ... this one within milliseconds: checked about 1 s old
        looked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        await until_saved(tmp_path, task_id)  # nobody asks again: the follower sees it to its end
    assert looked.structured_content["task"]["state"] in ("queued", "running"), text_of(looked)
    calls = [call["at"] for call in await status_calls(controls, task_id)]
    task = sim.tasks[task_id]
    assert calls[0] - task.created_at < first_look(typical) / 2, calls  # the look now came long before the first
    scheduled, _ = looks_for(DURATION, typical)  # the looks the schedule makes of a task that ends after DURATION
    assert len(calls) <= scheduled + 1, [round(at - task.created_at, 1) for at in calls]
    seen = next(at for at in calls if at >= task.end_at)
    assert seen - task.end_at <= max(2.0, 0.1 * DURATION), seen - task.end_at
