"""Durability across processes: a server killed mid-call loses no task id KIE returned.

KIE is the simulator in its own process (``kie-mcp sim`` on loopback), so it outlives the server we kill.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from .conftest import answering


def server(base: str, workspace: Path, pidfile: Path | None = None) -> StdioServerParameters:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    env = {
        "KIE_BASE_URL": base,
        "KIE_UPLOAD_BASE_URL": base,
        "KIE_API_KEY": "sandbox-key",
        "KIE_WORKSPACE": str(workspace),
    }
    if pidfile is None:
        return StdioServerParameters(command=script, args=[], env=env)
    return StdioServerParameters(command="/bin/sh", args=["-c", f'echo $$ > "{pidfile}"; exec "{script}"'], env=env)


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and /bin/sh")
async def test_sigkill_mid_generate_loses_no_task_id(simulator_process, tmp_path):
    base, pidfile = simulator_process, tmp_path / "server.pid"
    controls = httpx2.AsyncClient(base_url=base, timeout=5)

    async def polls_seen() -> list[str]:
        items = (await controls.get("/__sim/requests")).json()
        items = items if isinstance(items, list) else items["requests"]
        return [r["query"] for r in items if r["path"] == "/api/v1/jobs/recordInfo"]

    async def kill_once_the_server_has_the_id() -> None:
        with anyio.fail_after(20):
            while not await polls_seen():  # noqa: ASYNC110 - another process: nothing to await but its log
                await anyio.sleep(0.05)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)

    async def call_until_killed() -> bool:
        params = server(base, tmp_path, pidfile)
        try:
            async with (
                Client(params, elicitation_callback=answering(), mode="legacy") as doomed,
                anyio.create_task_group() as group,
            ):
                group.start_soon(kill_once_the_server_has_the_id)
                await doomed.call_tool("generate_image", {"prompt": "an apple", "wait_seconds": 50})
        except (Exception, BaseExceptionGroup):  # the connection dies with the server, in whatever form
            return True
        return False

    assert await call_until_killed(), "the server answered although it was killed"
    created = (await controls.get("/__sim/tasks")).json()
    rows = created if isinstance(created, list) else created["tasks"]
    created_ids = {t["id"] if "id" in t else t["taskId"] for t in rows}
    assert len(created_ids) == 1
    async with Client(server(base, tmp_path)) as survivor:
        listed = (await survivor.call_tool("list_tasks", {})).structured_content
        credits = (await survivor.call_tool("check_credits", {})).structured_content
    assert {t["task_id"] for t in listed["tasks"]} == created_ids
    assert credits["spent_today"] == 8
    await controls.aclose()


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="/bin/sh")
async def test_a_second_server_leaves_a_live_servers_new_task_to_it(simulator_process, tmp_path):
    """The audit: a second server on the workspace (another client) adopted every unfinished task at start, also
    those the first server, alive, was following: both polled KIE and both downloaded every result. It sees the
    task (list_tasks) but leaves following it to its creator while that one is alive and keeps recording it."""
    base = simulator_process
    log = tmp_path / "second.log"
    second = server(base, tmp_path)
    second.env = {**(second.env or {}), "KIE_LOG_LEVEL": "INFO"}
    second = StdioServerParameters(
        command="/bin/sh", args=["-c", f'exec "{second.command}" 2> "{log}"'], env=second.env
    )
    async with Client(server(base, tmp_path), elicitation_callback=answering(), mode="legacy") as first:
        made = await first.call_tool("generate_video", {"prompt": "waves at dusk", "model": "veo3_fast"})
        task_id = made.structured_content["tasks"][0]["task_id"]
        async with Client(second, mode="legacy") as other:
            listed = await other.call_tool("list_tasks", {})
            await anyio.sleep(1.5)  # the second server's follower has started and read the journal
        said = log.read_text()
    assert task_id in str(listed.structured_content["tasks"])
    assert str(tmp_path) in said  # its log is read (the first line names the workspace)
    assert f"following task {task_id}" not in said, said
