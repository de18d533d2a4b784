"""A paid result is never left unsaved by the way it was looked at, and one journal row this kie-mcp cannot read
hides no other task.

Through the real MCP client, in both protocol eras, against the simulator: a task made elsewhere (KIE's site,
another tool) and finished before kie-mcp hears of it, read only through ``kie://tasks/{id}``; a ``check_task``
cancelled while it downloads the result; a journal row written by a newer kie-mcp sharing the workspace.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import MCPError

from .conftest import answering, text_of
from .test_downloads import AUTH
from .test_follower import file_gets, saved, until_saved

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


async def made_elsewhere(controls, sim) -> str:
    """A task created on KIE without kie-mcp, finished there before kie-mcp hears of it; returns its id."""
    body = {"model": "nano-banana-2", "input": {"prompt": "a red fox"}}
    answer = await controls.http.post("/api/v1/jobs/createTask", json=body, headers=AUTH)
    sim.advance(1800)
    return answer.json()["data"]["taskId"]


# -- a finished result is saved whoever saw it first ------------------------------------------------------------


async def test_a_result_seen_only_through_the_resource_is_saved_in_the_background(connect, controls, sim, tmp_path):
    """Reading ``kie://tasks/{id}`` recorded the task as succeeded with its links, and nothing ever saved it:
    the follower skipped finished tasks, and its restart-time search ran only at start-up."""
    task_id = await made_elsewhere(controls, sim)
    async with connect() as client:
        # Calls first, so the follower is past its start-up search of the journal (which would save a result the
        # journal already showed unsaved): this task is first seen afterwards, as in a long-running session.
        await client.call_tool("check_credits", {})
        await client.call_tool("list_tasks", {})
        read = await client.read_resource(f"kie://tasks/{task_id}")
        files = await until_saved(tmp_path, task_id)  # no check_task: the follower saves it
        # The file is on disk before the task's record names it (written once its saving ends): asked until then
        with anyio.fail_after(5):
            while not (listed := await _tasks(client))[0]["files"]:  # noqa: ASYNC110 - the journal: nothing to await
                await anyio.sleep(0.05)
    assert json.loads(read.contents[0].text)["state"] == "succeeded"
    assert files[0].suffix == ".jpg" and files[0].stat().st_size > 0
    assert [task["files"] for task in listed] == [[files[0].relative_to(tmp_path).as_posix()]]
    assert len(file_gets(await controls.get("requests"))) == 1  # saved once


async def _tasks(client) -> list[dict]:
    return (await client.call_tool("list_tasks", {})).structured_content["tasks"]


async def test_a_check_task_cancelled_while_it_saves_leaves_the_saving_to_the_follower(
    connect, controls, sim, tmp_path
):
    """``check_task`` of a task that had ended saves the result itself; cancelled mid-download (a client timeout),
    it used to skip handing the rest to the background saves, and the result stayed unsaved."""
    task_id = await made_elsewhere(controls, sim)
    await controls.fault("files", kind="stall", seconds=3.0, after_bytes=1000)  # once: the next download is whole
    async with connect() as client:
        await client.call_tool("check_credits", {})  # the follower is past its start-up search (see above)
        await client.call_tool("list_tasks", {})
        with anyio.move_on_after(1.0):  # the host gives up while the result is downloading
            await client.call_tool("check_task", {"task_id": task_id})
        files = await until_saved(tmp_path, task_id)  # no second check_task: the follower saved it
    assert files[0].suffix == ".jpg" and files[0].stat().st_size > 0
    assert not list((tmp_path / "outputs").rglob(".*part*"))  # the cut download left no temporary file


async def test_a_finished_video_first_seen_as_a_follow_ups_source_is_saved_in_the_background(
    connect, controls, sim, tmp_path
):
    """Pricing a follow-up (estimate_cost with task_id and operation) of a video made elsewhere and finished records
    it as succeeded with its links: the follower saves them, as for a task read through ``kie://tasks/{id}``."""
    body = {"prompt": "waves at dusk", "model": "veo3_fast", "aspect_ratio": "16:9"}
    answer = await controls.http.post("/api/v1/veo/generate", json=body, headers=AUTH)
    sim.advance(1800)
    task_id = answer.json()["data"]["taskId"]
    async with connect() as client:
        await client.call_tool("check_credits", {})  # the follower is past its start-up search (see above)
        await client.call_tool("list_tasks", {})
        priced = await client.call_tool(
            "estimate_cost", {"task_id": task_id, "operation": "extend", "prompt": "the waves calm down"}
        )
        files = await until_saved(tmp_path, task_id)
    assert not priced.is_error, text_of(priced)
    assert any(path.suffix == ".mp4" and path.stat().st_size > 0 for path in files)


# -- one odd journal row ----------------------------------------------------------------------------------------


def rewrite_operation(workspace: Path, task_id: str, operation: str) -> None:
    """Make ``task_id``'s journal row one that a newer kie-mcp (one with another follow-up operation) wrote."""
    db = sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3")
    record = json.loads(db.execute("SELECT record FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0])
    newer = json.dumps({**record, "operation": operation})
    db.execute("UPDATE tasks SET record = ? WHERE task_id = ?", (newer, task_id))
    db.commit()
    db.close()


async def test_one_journal_row_this_version_cannot_read_hides_no_other_task(connect, tmp_path):
    """A row written by a newer kie-mcp sharing the workspace made list_tasks, ``kie://tasks`` and check_task of
    that id fail with "unexpected error ... please report"."""
    async with connect(elicitation=answering()) as client:
        newer = (await client.call_tool("generate_image", IMAGE)).structured_content["tasks"][0]["task_id"]
        good = (await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear"})).structured_content
    good_id = good["tasks"][0]["task_id"]
    rewrite_operation(tmp_path, newer, "lipsync")
    async with connect() as client:
        listed = await client.call_tool("list_tasks", {})
        resource = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
        other = await client.call_tool("check_task", {"task_id": good_id})
        odd = await client.call_tool("check_task", {"task_id": newer})
        with pytest.raises(MCPError) as refused:  # an error that says why, never a read holding one
            await client.read_resource(f"kie://tasks/{newer}")
    assert not listed.is_error, text_of(listed)
    assert [t["task_id"] for t in listed.structured_content["tasks"]] == [good_id]
    assert f"1 task(s) of the journal could not be read by this kie-mcp and are not listed: {newer}" in text_of(listed)
    assert [t["task_id"] for t in resource["tasks"]] == [good_id] and resource["unreadable_tasks"] == [newer]
    assert not other.is_error and other.structured_content["task"]["state"] == "succeeded", text_of(other)
    for said in (text_of(odd), refused.value.error.message):
        assert newer in said and "cannot read its record" in said and "operation" in said, said
        assert "unexpected" not in said and "report" not in said and "Traceback" not in said
    assert odd.is_error
    assert saved(tmp_path, good_id)
