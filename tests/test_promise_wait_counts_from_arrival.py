"""A generate call answers within about its ``wait_seconds`` of its arrival, the confirmation and uploads included.

The audit with the TypeScript SDK's client (the client of Claude Desktop, Cursor, VS Code and the Inspector): such a
host gives every request 60 s of its own, which progress does not extend unless the host opts in. The results' wait
(``wait_seconds``, 45 by default for an image) began only once the person had answered the confirmation form and the
input files had gone up: a person taking 15 s to say yes, and a slow model, and the host said "Request timed out"
(-32001) of a call that had created and charged its task. The paying call ended as a protocol error with no task id,
and an agent that does not retry never learnt credits were spent. Now the wait counts from the call's arrival: what
the form and the uploads took comes out of it, and with nothing left the tasks are answered at once, as they are,
with their ids and how to follow them; the follower follows and saves them all the same.

The simulator's clock stands still (the task runs until the test ends it), so whatever the call waits it waits out;
how much is read from the answer's progress (one notification at the start of a wait, one more every 50 ms of it)
and from bounds the code before this could not meet (it waited the whole ``wait_seconds`` after the form or the
uploads), with two seconds or more of slack for a loaded machine.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from kie_mcp.sandbox import SimConfig, Simulator

from .conftest import text_of
from .test_follower import until_saved
from .test_inputs import PNG

IMAGE = {"model": "nano-banana-2", "prompt": "a slow lighthouse painting"}  # 8 credits


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SimConfig(speed=0))  # a frozen clock: the task runs until the test ends it (sim.advance)


async def made_and_timed(client: Any, arguments: dict[str, Any]) -> tuple[Any, float, list[float]]:
    """generate_image's answer to ``arguments``, the real seconds from sending it to its answer, and its progress."""
    progress: list[float] = []
    await client.list_tools()  # the tools loaded and their schemas read: the clock below times the call alone

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    started = time.monotonic()
    made = await client.call_tool("generate_image", arguments, progress_callback=on_progress)
    return made, time.monotonic() - started, progress


async def answered_running_then_saved(client: Any, made: Any, sim: Simulator, workspace: Any) -> None:
    """``made`` answers its task as running, with its id and how to follow it, and the task is followed and saved
    once it ends on KIE, nobody waiting on it."""
    data = made.structured_content
    [task] = data["tasks"]
    assert data["status"] == "submitted" and task["task_id"] and task["state"] != "succeeded", text_of(made)
    assert "check_task" in text_of(made)
    sim.advance(1800)  # it ends on KIE
    await until_saved(workspace, task["task_id"])
    checked = (await client.call_tool("check_task", {"task_id": task["task_id"]})).structured_content
    assert checked["task"]["state"] == "succeeded" and checked["task"]["files"], checked


@pytest.mark.parametrize("mode", ["legacy"])  # the form asked within the call: the handshake era's back-channel
@pytest.mark.parametrize(
    ("form", "wait"), [(3.0, 2.5), (2.0, 4.0)], ids=["the-form-took-the-whole-wait", "the-form-took-part-of-it"]
)
async def test_the_wait_counts_the_time_the_person_took_to_answer_the_form(
    connect, controls, sim, tmp_path, form, wait
):
    """The yes comes ``form`` s after the call, which waits ``wait`` s: it answers within about max(form, wait) of
    its arrival (the code before this, form + wait at least), at once when the form took the whole wait."""

    async def slow_yes(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        await anyio.sleep(form)  # the person reads the question and takes their time
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(elicitation=slow_yes) as client:
        made, took, progress = await made_and_timed(client, {**IMAGE, "wait_seconds": wait})
        assert max(form, wait) <= took < form + wait, (took, text_of(made))  # what was left was waited, no more
        if form >= wait:  # nothing left: answered at once, with the task as it is (one progress notification)
            assert len(progress) <= 2, progress
        await answered_running_then_saved(client, made, sim, tmp_path)
    assert len(await controls.creates()) == 1


async def test_the_wait_counts_the_time_the_input_files_took_to_upload(connect, controls, sim, tmp_path):
    """A call approved with its quote_id (no form), whose input file takes 3 s to go up and which waits 2.5 s:
    answered at once once the file is up and the task created (the code before this waited 2.5 s more), in both eras
    (in the 2026-07-28 one a request's uploads are in the request as in the handshake era's)."""
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "face.png").write_bytes(PNG)
    request = {**IMAGE, "images": ["references/face.png"]}
    upload, wait = 3.0, 2.5
    async with connect() as client:  # a client without forms: the agent's quote_id approves it
        quote = (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"]
        await controls.fault("upload", kind="slow", seconds=upload)
        made, took, progress = await made_and_timed(client, {**request, "quote_id": quote, "wait_seconds": wait})
        assert upload <= took < upload + wait, (took, text_of(made))
        assert len(progress) <= 2, progress  # the uploads took the whole wait: answered at once
        await answered_running_then_saved(client, made, sim, tmp_path)
    assert len(await controls.creates()) == 1
