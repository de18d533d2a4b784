"""The sandbox survives a restart: ``kie-mcp --sandbox`` keeps its built-in simulator's tasks, uploads and balance
in its sandbox area, beside the journal that remembers the same tasks (audit M3).

Each test runs two servers, one after the other, on the same sandbox area, as a host that restarts the server does:
``create_server`` with sandbox settings and no transport, so each server builds its own private simulator, driven
through the real MCP client in both protocol eras. A state file that cannot be read is a fresh start, never a failed
one.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from kie_mcp import runtime
from kie_mcp.config import Settings, sandbox_area
from kie_mcp.media.duration import mp4_seconds
from kie_mcp.redact import REDACTED, register_secret
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator, state_path
from kie_mcp.server import create_server

from .conftest import answering, eras_in_turn, text_of
from .test_redaction import KIE_KEY, key_leaks

IMAGE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits
VIDEO = {"prompt": "Waves at dusk, gulls overhead", "model": "veo3_fast"}
START = 5000.0  # the sandbox's simulated balance
FAST = 300.0  # a Veo clip in well under a second


@pytest.fixture
def restartable(settings: Settings, mode: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``async with run() as client``: a ``kie-mcp --sandbox`` server on this test's workspace with its own
    simulator (no transport given), as a new process would build it; ``run(speed=...)`` runs its clock faster than
    the sandbox's own 30x, so that a video is made in a moment."""

    @asynccontextmanager
    async def run(speed: float = runtime.SANDBOX_SPEED) -> AsyncIterator[Client]:
        monkeypatch.setattr(runtime, "SANDBOX_SPEED", speed)
        server = create_server(settings.for_sandbox())
        async with Client(server, mode=mode, elicitation_callback=answering()) as client:
            yield client

    return run


def saved_state(workspace: Path) -> Path:
    return state_path(sandbox_area(workspace))


async def made(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    return result.structured_content["tasks"][0]["task_id"]


async def finished(client: Client, task_id: str) -> dict[str, Any]:
    done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 40})
    assert not done.is_error, text_of(done)
    task = done.structured_content["task"]
    assert task["state"] == "succeeded", text_of(done)
    return task


async def credits(client: Client) -> dict[str, Any]:
    return (await client.call_tool("check_credits", {})).structured_content


@pytest.mark.parametrize("mode", ["auto"])  # the sandbox's saved state, not the protocol era: once
async def test_a_video_made_before_a_restart_is_extended_after_it(restartable, tmp_path):
    async with restartable(FAST) as client:
        source = await made(client, "generate_video", VIDEO)
        await finished(client, source)
    async with restartable(FAST) as client:
        extended = await client.call_tool(
            "continue_video", {"task_id": source, "operation": "extend", "prompt": "the tide rolls in over the sand"}
        )
        assert extended.structured_content["status"] == "submitted", text_of(extended)
        task = extended.structured_content["tasks"][0]
        assert (task["parent_task_id"], task["operation"]) == (source, "extend")
        done = await finished(client, task["task_id"])
        again = await client.call_tool("check_task", {"task_id": source})  # the source's record is still there
    assert len(done["files"]) == 2 and all((sandbox_area(tmp_path) / name).is_file() for name in done["files"])
    assert again.structured_content["task"]["state"] == "succeeded", text_of(again)
    assert "record is null" not in text_of(again)


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_running_at_exit_is_finished_and_saved_by_the_next_server(restartable, tmp_path):
    async with restartable() as client:
        submitted = await client.call_tool("generate_video", VIDEO)
        assert submitted.structured_content["status"] == "submitted", text_of(submitted)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        running = await client.call_tool("check_task", {"task_id": task_id})
        assert running.structured_content["task"]["state"] in ("queued", "running"), text_of(running)
    async with restartable(FAST) as client:  # the clock runs on from where it stopped, faster
        task = await finished(client, task_id)
    assert task["files"] and all((sandbox_area(tmp_path) / name).is_file() for name in task["files"])
    assert (sandbox_area(tmp_path) / task["files"][0]).stat().st_size > 1000


@pytest.mark.parametrize("mode", ["auto"])  # the sandbox's saved state, not the protocol era: once
async def test_the_simulated_balance_carries_over_a_restart(restartable, tmp_path):
    async with restartable(FAST) as client:
        assert (await credits(client))["balance_credits"] == START
        await finished(client, await made(client, "generate_image", IMAGE))
        first = await credits(client)
    assert first["balance_credits"] == START - 8 and first["spent_today"] == 8
    async with restartable(FAST) as client:
        second = await credits(client)
        await finished(client, await made(client, "generate_image", IMAGE))
        third = await credits(client)
    assert second["balance_credits"] == START - 8 and second["spent_today"] == 8  # not back to 5000
    assert third["balance_credits"] == START - 16 and third["spent_today"] == 16
    text = saved_state(tmp_path).read_text()
    assert SANDBOX_API_KEY not in text and "Bearer" not in text  # no key is ever written


@eras_in_turn(
    "content",
    [
        b"\x00{not json at all",
        json.dumps({"format": 99, "clock": 1.0, "tasks": "from a newer kie-mcp"}).encode(),
        json.dumps({"format": 1, "clock": 1.0, "accounts": {"default": 1.0}, "tasks": [{"id": "half"}]}).encode(),
    ],
    ids=["corrupt", "newer-format", "wrong-shape"],
)
async def test_an_unreadable_state_file_is_a_fresh_start_with_one_warning(restartable, tmp_path, caplog, content):
    path = saved_state(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="kie_mcp.sandbox"):
        async with restartable(FAST) as client:
            before = await credits(client)
            await finished(client, await made(client, "generate_image", IMAGE))
            after = await credits(client)
    assert before["balance_credits"] == START and after["balance_credits"] == START - 8
    warnings = [r for r in caplog.records if r.name.startswith("kie_mcp.sandbox") and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "starts afresh" in warnings[0].getMessage(), [r.getMessage() for r in warnings]
    [kept] = path.parent.glob(f"{path.name}.unreadable-*")
    assert kept.read_bytes() == content  # moved aside, not lost
    assert json.loads(path.read_text())["accounts"]["default"] == START - 8  # and a good one written in its place


# -- the simulator itself ---------------------------------------------------------------------------------------


async def test_uploads_and_result_files_are_served_again_by_a_reloaded_simulator(tmp_path):
    path = tmp_path / ".kie-mcp" / "simulator.json"
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}", "User-Agent": "tests"}
    first = SandboxTransport(Simulator(SimConfig(speed=1000.0), state_path=path))
    async with httpx2.AsyncClient(transport=first, base_url="http://sim.test", headers=headers) as http:
        body = {"base64Data": base64.b64encode(data).decode(), "uploadPath": "in", "fileName": "ref.png"}
        uploaded = (await http.post("/api/file-base64-upload", json=body)).json()["data"]["downloadUrl"]
        create = {"model": "nano-banana-2", "input": {"prompt": "an apple"}}
        task_id = (await http.post("/api/v1/jobs/createTask", json=create)).json()["data"]["taskId"]
        first.sim.advance(3600)
        record = (await http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})).json()["data"]
        result = json.loads(record["resultJson"])["resultUrls"][0]
        image = (await http.get(result)).content
    second = SandboxTransport(Simulator(SimConfig(speed=1000.0), state_path=path))
    async with httpx2.AsyncClient(transport=second, base_url="http://sim.test", headers=headers) as http:
        assert (await http.get(uploaded)).content == data
        assert (await http.get(result)).content == image  # generated from the task again, the same bytes
        again = (await http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})).json()["data"]
    assert again["state"] == "success" and again["resultJson"] == record["resultJson"]
    assert second.sim.balance() == first.sim.balance() < START


async def test_a_reloaded_simulator_serves_an_extension_as_long_as_before(tmp_path):
    """An extension's whole video is as long as its source and the new part together, a length no request field
    states: it is kept with the task, so the next server serves the same video, not one of the model's default
    length."""
    path = tmp_path / ".kie-mcp" / "simulator.json"
    headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}", "User-Agent": "tests"}
    first = SandboxTransport(Simulator(SimConfig(speed=1000.0), state_path=path))
    async with httpx2.AsyncClient(transport=first, base_url="http://sim.test", headers=headers) as http:
        create = {"prompt": "waves at dusk", "model": "veo3_fast", "duration": 4}
        source = (await http.post("/api/v1/veo/generate", json=create)).json()["data"]["taskId"]
        first.sim.advance(3600)
        extend = {"taskId": source, "prompt": "the tide rolls in"}
        extension = (await http.post("/api/v1/veo/extend", json=extend)).json()["data"]["taskId"]
        first.sim.advance(3600)
        whole = (await http.get(f"/files/{extension}/full-0.mp4")).content
    second = SandboxTransport(Simulator(SimConfig(speed=1000.0), state_path=path))
    async with httpx2.AsyncClient(transport=second, base_url="http://sim.test", headers=headers) as http:
        again = (await http.get(f"/files/{extension}/full-0.mp4")).content
    (tmp_path / "whole.mp4").write_bytes(again)
    assert again == whole and mp4_seconds(tmp_path / "whole.mp4") == 4 + 7


def test_a_simulator_without_a_state_path_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sim = Simulator(SimConfig(speed=1000.0))
    sim.set_balance(12)
    sim.persist(force=True)
    assert sim.store is None and list(tmp_path.iterdir()) == []
    assert Simulator(SimConfig(speed=1000.0)).balance() == START


async def test_tasks_kie_would_have_dropped_are_not_kept(tmp_path):
    """A finished task is kept 14 days after it was first saved, as KIE keeps its tasks; then it is gone."""
    path = tmp_path / ".kie-mcp" / "simulator.json"
    headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}", "User-Agent": "tests"}
    first = SandboxTransport(Simulator(SimConfig(speed=1000.0), state_path=path))
    async with httpx2.AsyncClient(transport=first, base_url="http://sim.test", headers=headers) as http:
        create = {"model": "nano-banana-2", "input": {"prompt": "an apple"}}
        ids = [(await http.post("/api/v1/jobs/createTask", json=create)).json()["data"]["taskId"] for _ in range(2)]
        first.sim.advance(3600)
    saved = json.loads(path.read_text())
    assert [task["id"] for task in saved["tasks"]] == ids
    saved["tasks"][0]["kept_since"] -= 15 * 86400  # first saved 15 days ago
    path.write_text(json.dumps(saved))
    assert list(Simulator(SimConfig(speed=1000.0), state_path=path).tasks) == ids[1:]


@pytest.mark.parametrize("mode", ["auto"])  # the sandbox's saved state, not the protocol era: once
async def test_a_key_pasted_into_a_prompt_is_never_kept_in_the_sandbox_state(restartable, tmp_path):
    """``kie-mcp --sandbox`` with the real key in its environment (registered for redaction at start, as cli.main
    does): a key pasted into a prompt is [redacted] in the simulator's saved state as in every file kie-mcp writes;
    ``git add .`` in the workspace would otherwise commit it."""
    register_secret(KIE_KEY)
    async with restartable() as client:
        await made(client, "generate_image", {**IMAGE, "prompt": f"A red apple, note {KIE_KEY.upper()}"})
    kept = saved_state(tmp_path).read_text()
    assert f"note {REDACTED}" in kept
    assert key_leaks(kept) == []
