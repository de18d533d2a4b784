"""Every save of a result ends: a result link that trickles on (too slowly to finish, never slowly enough for a read
timeout, or just over the 64 KiB-a-minute stall line) holds no save for ever.

The finishing slot's download had a deadline (``KIE_DOWNLOAD_DEADLINE``), but the background's tries and
``check_task``'s own save had none: such a link held one of the background's two slots (every other task's missed
results waiting behind it), and its task's save lock, for as long as it trickled. Each now gets a longer deadline of
its own (six times the setting, more for a large file), then stops: nothing of it kept as a result, the task and its
link kept in the journal for the next try, the client told why and what to do, and the follower goes on with the
other tasks.

Through the real MCP client against the simulator, whose ``trickle`` fault serves a result file a few bytes at a time.
``download_deadline`` is the setting shortened (0.3 s: a background try gets 1.8 s).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import anyio
from mcp import Client
from mcp.types import LoggingMessageNotificationParams

from kie_mcp.server import create_server

from .conftest import answering, text_of
from .test_follower import IMAGE, saved, until_saved

TRICKLE = {"kind": "trickle", "bytes": 16, "every": 0.05}  # 320 bytes a second: a sandbox image in minutes
STOPPED_IN_BACKGROUND = "a download in the background gets"  # what a background try stopped at its deadline says


def partial_files(workspace: Path) -> list[Path]:
    """The temporary files of downloads under way (or left behind) in outputs/."""
    outputs = workspace / "outputs"
    return [p for p in outputs.rglob(".*.part-*") if p.is_file()] if outputs.is_dir() else []


def journal_links(workspace: Path, task_id: str) -> tuple[list[str], int]:
    """The result links the journal keeps for ``task_id``, and how many saved files it records."""
    db = sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3")
    try:
        [(record,)] = db.execute("SELECT record FROM tasks WHERE task_id = ?", (task_id,)).fetchall()
        [(files,)] = db.execute("SELECT COUNT(*) FROM files WHERE task_id = ?", (task_id,)).fetchall()
    finally:
        db.close()
    return json.loads(record)["result_urls"], files


async def test_a_generated_result_that_trickles_is_stopped_at_its_deadline_and_check_task_says_why(
    connect, controls, tmp_path
):
    """A generation whose result link trickles: the generate call answers at the finishing slot's deadline (the task
    id, and why nothing is saved yet); the background's try at it was not cut at all, so a check_task waited its
    whole grace on that try and could only say "being saved now". It now ends at its own deadline, and check_task's
    own try too: the answer names the task, what happened and what to do, nothing is left as a result, the journal
    keeps the link, and once the link serves again the result is saved."""
    await controls.fault("files", times=-1, **TRICKLE)
    async with connect(elicitation=answering(), download_deadline=0.3, save_grace=6.0) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 10})
        task_id = made.structured_content["tasks"][0]["task_id"]
        said = text_of(made)
        assert not made.is_error and made.structured_content["tasks"][0]["state"] == "succeeded", said
        assert task_id in said and "slower than the" in said and "goes on saving it in the background" in said, said
        with anyio.fail_after(9):
            checked = await client.call_tool("check_task", {"task_id": task_id})
        told = text_of(checked)
        assert not checked.is_error and "Traceback" not in told, told
        assert f"{task_id} result 1: The file server sent" in told, told
        assert STOPPED_IN_BACKGROUND in told and "nothing was saved" in told, told
        assert "check_task tries at once" in told, told  # what to do
        assert checked.structured_content["saving"] is False, told
        assert not saved(tmp_path, task_id)
        links, files = journal_links(tmp_path, task_id)
        assert links and files == 0  # the task and its link, kept for the next try
        await controls.http.delete("/__sim/faults")  # the file server is itself again
        assert await until_saved(tmp_path, task_id, seconds=10)
        with anyio.fail_after(5):
            while partial_files(tmp_path):  # noqa: ASYNC110 - files on disk: nothing to await
                await anyio.sleep(0.05)


async def test_a_background_save_of_a_task_nobody_asked_about_ends_at_its_deadline_and_the_follower_goes_on(
    settings, transport, controls, tmp_path
):
    """Three finished tasks a restarted server finds unsaved, nobody asking about them, their links trickling: the
    first two held both of the background's slots for as long as they trickled, and the third was never tried. Each
    try now ends at its deadline, nothing of it kept; the client is told of each task what happened and what to do;
    the third is tried in turn; the journal keeps every link, and each is saved once its link serves again."""
    server = create_server(replace(settings, download=False), transport=transport)  # KIE_DOWNLOAD=never
    async with Client(server, elicitation_callback=answering()) as client:
        made = [
            await client.call_tool("generate_image", {**IMAGE, "prompt": f"apple {n}", "wait_seconds": 20})
            for n in range(3)
        ]
    tasks = [result.structured_content["tasks"][0]["task_id"] for result in made]
    assert all(r.structured_content["tasks"][0]["state"] == "succeeded" for r in made)
    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    def told(task_id: str) -> list[str]:
        return [line for line in lines if task_id in line and "in the background was stopped" in line]

    await controls.fault("files", times=-1, **TRICKLE)
    restarted = create_server(replace(settings, download_deadline=0.3), transport=transport)
    async with Client(restarted, mode="legacy", logging_callback=on_log) as client:
        await client.call_tool("check_credits", {})  # the runtime opens; the follower saves what was left
        with anyio.fail_after(15):
            while not all(told(t) for t in tasks):  # noqa: ASYNC110 - lines come through the callback
                await anyio.sleep(0.05)
        assert not any(saved(tmp_path, t) for t in tasks)
        kept = [journal_links(tmp_path, t) for t in tasks]
        await controls.http.delete("/__sim/faults")
        for task_id in tasks:
            assert await until_saved(tmp_path, task_id, seconds=15)
        with anyio.fail_after(5):
            while partial_files(tmp_path):  # noqa: ASYNC110 - files on disk: nothing to await
                await anyio.sleep(0.05)
    for task_id in tasks:
        [line] = told(task_id)  # once a task, not at every try
        assert "not saved yet" in line and "kie-mcp tries again later" in line, line
        assert "check_task tries at once" in line, line
    assert all(links and files == 0 for links, files in kept)
