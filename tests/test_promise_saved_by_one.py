"""A paid result is saved, once, whichever server on the workspace is left to save it, and the answers say what
became of it.

- a result a server left unsaved when it stopped (mid-download) is saved by another server already running on the
  workspace, without anyone asking, and the temporary file of a download a dead server left is removed;
- two servers never download one result at the same time (a check_task on one, a background try on the other).

Through the real MCP client, against the simulator; two servers on one workspace are two in-process servers. The
follower's schedule runs 200 times faster (``poll_min_interval`` 10 ms, conftest): a rescan every 0.3 s.
"""

from __future__ import annotations

import sys

import anyio
from mcp import Client

from kie_mcp import processes
from kie_mcp.server import create_server

from .conftest import answering, text_of
from .test_follower import CountedTransport, saved, until_saved

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


async def file_gets(controls) -> int:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return sum(1 for r in items if r["path"].startswith(("/files/", "/dl/")))


async def a_gone_process() -> int:
    """The id of a process that has ended."""
    ran = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    return int(ran.stdout)


async def test_a_result_a_stopped_server_left_unsaved_is_saved_by_another_server_on_the_workspace(
    settings, transport, controls, tmp_path
):
    """The audit: server A stopped (or was killed) while downloading a finished task's result; server B, running on
    the same workspace all along, never saved it (only a check_task or a restart did), A's temporary file stayed
    until the next start, and B's list_tasks showed the task succeeded with no file. B's rescan takes it up."""
    async with Client(create_server(settings, transport=transport)) as b:
        await b.call_tool("list_tasks", {})  # B's follower runs from now on
        await controls.fault("files", kind="stall", seconds=5, after_bytes=1024)
        async with Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a:
            made = await a.call_tool("generate_image", {**IMAGE, "wait_seconds": 0.5})
            task_id = made.structured_content["tasks"][0]["task_id"]
            with anyio.fail_after(10):
                while not await file_gets(controls):  # noqa: ASYNC110 - the simulator's log: nothing to await
                    await anyio.sleep(0.02)
            # What a killed server leaves beside it: the temporary file of its download, named for its process (gone).
            folder = next((tmp_path / "outputs").iterdir())
            gone = await a_gone_process()
            left = folder / f".nano-banana-2_{task_id}_1.jpg.part-{processes.HOST}-{gone}-{'0' * 12}"
            left.write_bytes(b"\x89PNG half of it")
        assert saved(tmp_path, task_id) == []  # A stopped mid-download: the journal says succeeded, no file
        files = await until_saved(tmp_path, task_id, seconds=10)  # nobody asks
        with anyio.fail_after(5):  # the rescan's save of the task removed it first
            while left.exists():  # noqa: ASYNC110 - a file on disk: nothing to await
                await anyio.sleep(0.02)
        # The file's row is written as it is saved, the task's own record once its saving ends: a moment later
        # on a loaded machine (CI saw list_tasks between the two)
        with anyio.fail_after(5):
            while not (task := await _listed(b, task_id))["files"]:  # noqa: ASYNC110 - the journal: nothing to await
                await anyio.sleep(0.05)
    assert len(files) == 1 and files[0].stat().st_size > 1024
    assert task["files"]
    assert await file_gets(controls) == 2  # A's cut download, then B's


async def _listed(client: Client, task_id: str) -> dict:
    """Task ``task_id`` as ``list_tasks`` shows it."""
    listed = await client.call_tool("list_tasks", {})
    [task] = [t for t in listed.structured_content["tasks"] if t["task_id"] == task_id]
    return task


async def test_a_check_task_on_one_server_and_a_background_try_on_another_never_download_one_result_twice(
    settings, transport, controls, tmp_path
):
    """The audit: server A's first download of a result failed, and its background try came due while a check_task
    on server B was saving the result itself, unclaimed: both downloaded it at once. B's save claims the task in
    the journal as a background try does, so A's try waits and then finds the file saved."""
    from dataclasses import replace

    first = CountedTransport(transport)
    slower = replace(settings, poll_min_interval=0.1)  # A's schedule: its background try 1.5 s after the failure
    await controls.fault("files", kind="code", code=503, times=1)
    async with (
        Client(create_server(slower, transport=first), elicitation_callback=answering()) as a,
        Client(create_server(settings, transport=transport)) as b,
    ):
        made = await a.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
        task_id = made.structured_content["tasks"][0]["task_id"]
        assert made.structured_content["tasks"][0]["files"] == [], text_of(made)  # the 503: A tries again later
        await controls.fault("files", kind="stall", seconds=2.5, after_bytes=0, times=3)  # every download is slow
        checked = await b.call_tool("check_task", {"task_id": task_id})  # A's try comes due while B downloads
        await anyio.sleep(2)  # A's try, put off while B held the task, has come and gone
    assert checked.structured_content["task"]["files"], text_of(checked)
    assert await file_gets(controls) == 2  # the 503, then B's: A never fetched it again
    assert first.file_gets() == 1 and len(saved(tmp_path, task_id)) == 1


async def test_a_server_between_two_tries_at_a_failing_link_keeps_it_and_another_servers_rescan_leaves_it(
    settings, transport, controls, tmp_path
):
    """The review: a server released its claim after each failed try at saving a result, so every other server's
    rescan (once a minute) took the task up and ran its own seven tries: a link that kept failing was fetched seven
    times per server. Between tries the claim is kept, left alone: other rescans leave the task, a check_task
    there takes it over at once."""
    await controls.fault("files", kind="code", code=503, times=-1)
    second = CountedTransport(transport)
    async with Client(create_server(settings, transport=second)) as b:
        await b.call_tool("list_tasks", {})  # B's follower runs, rescanning every 0.3 s
        async with Client(create_server(settings, transport=transport), elicitation_callback=answering()) as a:
            made = await a.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
            task_id = made.structured_content["tasks"][0]["task_id"]
            assert made.structured_content["tasks"][0]["files"] == [], text_of(made)
            await anyio.sleep(2)  # six of B's rescans; A tries again at 0.15, 0.45, 1.05 and 2.55 s
            tried = second.file_gets()
            (await controls.http.delete("/__sim/faults")).raise_for_status()
            checked = await b.call_tool("check_task", {"task_id": task_id})  # takes the task over at once
    assert tried == 0, tried  # B's rescans left the task to A
    assert checked.structured_content["task"]["files"], text_of(checked)
