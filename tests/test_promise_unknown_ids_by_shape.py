"""Promise: an id the journal does not know is asked first of the family whose ids have its shape, or that this
workspace makes most, and stops at the first family that knows it; an id no family knows is still asked of every
family, once, and said to be unknown; an id no KIE task can have (a link, quotes or JSON around an id) is refused
before anything is asked.

The leftover: ``check_task`` of such an id asked Market, Veo, Runway, Aleph, GPT-4o Image and Flux Kontext in that
order, whatever the id looked like: a Runway task (KIE gives Runway and Aleph UUIDs) cost two wasted status calls, a
Veo clip with a live-shaped id (32 hex, as the Market's) one, in KIE's 10-a-second window the follower shares; and a
link pasted as the id was asked of all six. ``kie_mcp.kie.families.ID_SHAPES`` names where each shape was seen.
In process against the simulator, whose ids have KIE's shapes, both eras.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import Any

import pytest

from kie_mcp.journal import Journal
from kie_mcp.kie import FAMILIES
from kie_mcp.sandbox import SANDBOX_API_KEY

from .conftest import answering, text_of

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
LOOKED_UP = ("market", "veo", "runway", "aleph", "gpt4o", "flux")  # the families an unknown id is asked of
RUNWAY = (
    "/api/v1/runway/generate",
    {"prompt": "waves at dusk", "duration": 5, "quality": "720p", "aspectRatio": "16:9", "callBackUrl": ""},
)
VEO = ("/api/v1/veo/generate", {"model": "veo3_fast", "prompt": "gulls at dusk", "aspectRatio": "16:9"})


async def made_elsewhere(controls: Any, made: tuple[str, dict[str, Any]]) -> str:
    """A task made with the key outside kie-mcp (KIE's playground, another app): its id, as KIE gave it."""
    path, body = made
    answer = (await controls.http.post(path, json=body, headers=AUTH)).json()
    assert answer["code"] == 200, answer
    return answer["data"]["taskId"]


async def status_calls(controls: Any, task_id: str) -> list[str]:
    """The status endpoints KIE was asked about ``task_id``, in order."""
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    paths = {family.status_path for family in FAMILIES.values()}
    return [r["path"] for r in items if r["path"] in paths and r["query"].get("taskId") == task_id]


async def test_a_runway_task_made_elsewhere_is_asked_of_runway_alone(connect, controls, sim):
    """A UUID is Runway's or Aleph's (KIE's docs print one for both): Runway is asked first and answers, so the
    Market and Veo, asked first before, are not asked at all."""
    made = await made_elsewhere(controls, RUNWAY)
    task_id = "ee603959-debb-48d1-98c4-a6d1c717eba6"  # the UUID KIE's Runway docs print (families.ID_SHAPES)
    sim.tasks[task_id] = sim.tasks.pop(made)
    sim.tasks[task_id].id = task_id
    async with connect() as client:
        found = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    assert not found.is_error, text_of(found)
    assert found.structured_content["task"]["family"] == "runway"
    asked = await status_calls(controls, task_id)
    assert asked and set(asked) == {FAMILIES["runway"].status_path}, asked  # the follower's looks: Runway's too


@pytest.mark.parametrize("damaged", [False, True], ids=["journal", "damaged-record"])
async def test_a_veo_clip_with_a_live_shaped_id_is_asked_of_veo_first_where_the_workspace_makes_veo_clips(
    connect, controls, sim, tmp_path, damaged
):
    """KIE's live Veo ids are 32 hex digits, as the Market's and GPT-4o Image's: the shape does not tell them apart,
    so the family this workspace's journal holds most tasks of is asked first. Here one Veo clip already looked up
    (and so recorded) makes the next clip's lookup one call, where the Market was asked first before. The review:
    one record among the newest 500 that is not JSON (a damaged row) made the count fail whole, so every lookup fell
    back to the default order (the Market first), warning again each time; the damaged row is passed over."""
    recorded = await made_elsewhere(controls, VEO)
    clip = await made_elsewhere(controls, VEO)
    live_id = "9e9a071c779cf8842d269d0d3991d34e"  # as KIE's veo/generate answered live (families.ID_SHAPES)
    task = sim.tasks.pop(clip)
    task.id = live_id
    sim.tasks[live_id] = task
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("check_task", {"task_id": recorded, "wait_seconds": 0})
        assert not first.is_error, text_of(first)
        if damaged:
            with contextlib.closing(sqlite3.connect(Journal.for_workspace(tmp_path).path)) as journal, journal:
                journal.execute(
                    "INSERT INTO tasks (task_id, model, state, record, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
                    ("0" * 32, "nano-banana-2", "succeeded", "{not json", time.time(), time.time()),
                )
        found = await client.call_tool("check_task", {"task_id": live_id, "wait_seconds": 0})
    assert not found.is_error, text_of(found)
    assert found.structured_content["task"]["family"] == "veo"
    asked = await status_calls(controls, live_id)
    assert asked and set(asked) == {FAMILIES["veo"].status_path}, asked


async def test_an_id_no_family_knows_is_asked_of_every_family_once_and_said_unknown(connect, controls):
    """A shape only puts families first: an id of Runway's shape no family knows is asked of Runway and Aleph first,
    then of the four others, each once, before kie-mcp says KIE knows no such task."""
    task_id = "00000000-0000-4000-8000-00000000cafe"
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    assert checked.is_error and f'KIE knows no task "{task_id}"' in text_of(checked), text_of(checked)
    asked = await status_calls(controls, task_id)
    assert sorted(asked) == sorted(FAMILIES[name].status_path for name in LOOKED_UP), asked
    assert asked[:2] == [FAMILIES["runway"].status_path, FAMILIES["aleph"].status_path], asked


@pytest.mark.parametrize(
    ("task_id", "words"),
    [
        ("https://kie.ai/logs/0123456789abcdef0123456789abcdef", "is a link, not a task id"),
        ('"0123456789abcdef0123456789abcdef"', "cannot be a KIE task id"),
        ('{"taskId":"0123456789abcdef0123456789abcdef"}', "cannot be a KIE task id"),
    ],
    ids=["link", "quoted", "json"],
)
async def test_an_id_no_kie_task_can_have_is_refused_before_any_status_call(connect, controls, task_id, words):
    """KIE's ids are letters, digits, '-' and '_': a link or an id in quotes was asked of every family, six status
    calls for nothing. check_task and continue_video refuse it in words, asking nothing."""
    async with connect() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id})
        continued = await client.call_tool("continue_video", {"task_id": task_id, "operation": "extend"})
    for result in (checked, continued):
        said = text_of(result)
        assert result.is_error and words in said and "nothing was asked of KIE" in said, said
        assert "unexpected" not in said and "Traceback" not in said
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    assert not [r for r in items if r["path"] in {f.status_path for f in FAMILIES.values()}], items
