"""A server stopped or killed mid-download leaves no partial file beside the result: whichever server saves the
results it let go first removes what its download left (a hidden ``.<name>.part-<machine>-<pid>-<run>`` file), and
only when that writer is known to be gone: a live server's download, another machine's or container's, or one whose
writer its name does not tell, is never removed as "dead".

The audit: server A, following a task, was killed while it downloaded the result; server B's check_task saved the
result, but A's partial file stayed in outputs/ (and beside the result in a file browser) until some server's next
start. Two real kie-mcp processes over stdio against ``kie-mcp sim``, A killed with SIGKILL; what the start-up sweep
judges is checked on the sweep itself.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from PIL import Image

from kie_mcp import processes
from kie_mcp.media.downloads import sweep_interrupted_downloads

from .conftest import simulator_running
from .test_promise_stop import WAIT, Server

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


@pytest.fixture
def simulator() -> Iterator[str]:
    """``kie-mcp sim`` in its own process, 1000 simulated seconds a real second: an image is made at once."""
    yield from simulator_running("1000", kill=True)


def call(server: Server, request_id: int, name: str, arguments: dict) -> dict:
    """The structured answer of tool ``name`` on ``server``."""
    params = {"name": name, "arguments": arguments}
    server.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
    answer = server.answer(request_id)
    assert "result" in answer and not answer["result"].get("isError"), answer
    return answer["result"]["structuredContent"]


def partial_files(workspace: Path, task_id: str) -> list[Path]:
    """The temporary files of downloads of ``task_id``'s results in the workspace's session folders."""
    return sorted((workspace / "outputs").glob(f"*/.*_{task_id}_*.part-*"))


def a_gone_process() -> int:
    """The id of a process that has ended."""
    with subprocess.Popen([sys.executable, "-c", "pass"]) as ended:
        ended.wait()
    return ended.pid


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_servers_partial_download_is_removed_by_the_server_that_saves_what_it_let_go(simulator, tmp_path):
    """A follows its task and downloads the result, held by the file server after 1 KiB; A is killed (SIGKILL: no
    clean-up of its own). B, running on the workspace all along (its start-up sweep long done), saves the result on
    check_task: the result is whole, and A's partial file is gone. Beside it, a live process's partial download, one
    of another machine and one whose name tells no writer (an older kie-mcp's) are all left as they are."""
    if not processes.PIDS_TOLD:
        pytest.skip("this machine's PID namespace cannot be read: no process here is judged gone")
    workspace = tmp_path / "workspace"
    b = Server(simulator, workspace)
    a: Server | None = None
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        call(b, 1, "list_tasks", {})  # B's runtime is open: its start-up sweep ran on an empty outputs/
        stall = {"endpoint": "files", "fault": {"kind": "stall", "seconds": 600, "after_bytes": 1024}, "times": 1}
        httpx2.post(f"{simulator}/__sim/faults", json=stall, timeout=10).raise_for_status()
        a = Server(simulator, workspace)
        task_id = call(a, 1, "generate_image", {**IMAGE, "wait_seconds": 0})["tasks"][0]["task_id"]
        deadline = time.monotonic() + WAIT
        while not (left := partial_files(workspace, task_id)):  # A's follower saw the end and is downloading
            assert time.monotonic() < deadline, "A never began downloading the result"
            time.sleep(0.05)
        a.process.kill()  # SIGKILL mid-download: A removes nothing
        a.process.wait(timeout=WAIT)
        [dead] = left
        assert dead.name.split(".part-")[1].startswith(f"{processes.HOST}-{a.process.pid}-"), dead.name
        named = dead.name[: dead.name.index(".part-") + len(".part-")]
        elsewhere = "f" * 8 if processes.HOST != "f" * 8 else "e" * 8  # another machine (or container) sharing it
        kept = [
            dead.with_name(f"{named}{processes.HOST}-{live.pid}-0a0b0c0d0001"),  # a live process is writing it
            dead.with_name(f"{named}{elsewhere}-{a_gone_process()}-0a0b0c0d0002"),  # its process id means nothing here
            dead.with_name(f"{named}0a0b0c0d0003"),  # an older kie-mcp's name: no machine, no process
        ]
        for path in kept:
            path.write_bytes(b"\xff\xd8 part of a picture")
        checked = call(b, 2, "check_task", {"task_id": task_id, "wait_seconds": 20})
    finally:
        live.kill()
        live.wait()
        for server in (a, b):
            if server is not None:
                server.kill()
    assert checked["task"]["state"] == "succeeded" and len(checked["task"]["files"]) == 1, checked
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        [(path, sha256, size)] = db.execute("SELECT path, sha256, size FROM files WHERE task_id = ?", (task_id,))
    result = workspace / path
    assert result.stat().st_size == size > 1024 and hashlib.sha256(result.read_bytes()).hexdigest() == sha256
    with Image.open(result) as picture:
        picture.load()  # the whole picture decodes: not A's kilobyte
    assert not dead.exists(), "the killed server's partial download is still beside the result"
    assert partial_files(workspace, task_id) == sorted(kept)  # never a live, another machine's or an unjudged one


# -- what the start-up sweep judges ----------------------------------------------------------------------------


def plant(folder: Path, owner: str, *, hours_old: float = 0.0) -> Path:
    """A temporary file of a download in ``folder``, its name's owner part ``owner``, last written ``hours_old`` ago."""
    path = folder / f".veo3_t{len(list(folder.iterdir()))}_1.mp4.part-{owner}"
    path.write_bytes(b"half a video")
    then = time.time() - hours_old * 3600
    os.utime(path, (then, then))
    return path


def test_the_start_sweep_never_takes_a_partial_file_for_a_dead_servers_where_the_pid_namespace_is_hidden(
    tmp_path, monkeypatch
):
    """Where a sandbox hides the PID namespace, two containers of one name share this machine's tag, and a live
    server in the other (its process id not seen here) was taken for dead: its download was removed from under it.
    Its writer cannot be judged: the file is left until it has been an hour unwritten."""
    folder = tmp_path / "outputs" / "2026-12-01-clip"
    folder.mkdir(parents=True)
    gone = a_gone_process()
    fresh = plant(folder, f"{processes.HOST}-{gone}-0a0b0c0d0001")
    stale = plant(folder, f"{processes.HOST}-{gone}-0a0b0c0d0002", hours_old=2)
    monkeypatch.setattr(processes, "PIDS_TOLD", False)
    assert sweep_interrupted_downloads(tmp_path / "outputs") == 1
    assert fresh.exists() and not stale.exists()


def test_the_start_sweep_never_takes_an_older_name_with_no_machine_for_this_machines(tmp_path):
    """An older kie-mcp named its temporary files by process id alone (``.part-<pid>-<random>``): on a workspace on
    shared storage that id may be any machine's, and a live download of another was removed as this machine's dead
    process's. Such a file goes once it has been an hour unwritten, as one of another machine does."""
    folder = tmp_path / "outputs" / "2026-12-01-clip"
    folder.mkdir(parents=True)
    gone = a_gone_process()
    fresh = plant(folder, f"{gone}-0a0b0c0d0001")
    stale = plant(folder, f"{gone}-0a0b0c0d0002", hours_old=2)
    dead = plant(folder, f"{processes.HOST}-{gone}-0a0b0c0d0003")  # this machine's, its process gone: at once
    assert sweep_interrupted_downloads(tmp_path / "outputs") == 2
    assert fresh.exists() and not stale.exists() and not dead.exists()
