"""A full disk loses nothing a paid task left: the sidecar beside its saved files, and the call log that keeps its
task id; and a call it stopped before any create keeps nothing of its approval in use.

Through the real MCP client, in both protocol eras, against the simulator. The disk fills for real where a small
tmpfs can be mounted (root); elsewhere the kernel cuts writes short the same way through a file size limit, or the
fault is injected where the sidecar's temporary file is made or written.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from kie_mcp.kie.calllog import CallLog
from kie_mcp.media.results import LINKS_STILL_WORK

from . import test_promise_durability as durability
from .conftest import answering, eras_in_turn, text_of
from .test_promise_host_retries import EDIT, picture

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2", "wait_seconds": 20}
FULL = os.strerror(errno.ENOSPC)
bare_error = durability.bare_error
small_disk = durability.small_disk  # a fixture: a 4 MiB tmpfs, so the disk really fills (root only)


# -- the sidecar beside a saved result -------------------------------------------------------------------------


class FullForSidecars:
    """While ``full``, the disk refuses every sidecar: at the creation of its temporary file (``open``), or after
    half of it was written (``midway``: a short write, then ENOSPC), as a filling disk does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, where: str, names: tuple[str, ...] = (".json.part-",)) -> None:
        self.full = True
        self._names = names
        self.refused = 0
        self._where = where
        self._temps: set[int] = set()
        self._open, self._write = os.open, os.write
        monkeypatch.setattr(os, "open", self.open)
        monkeypatch.setattr(os, "write", self.write)

    def open(self, path, flags, mode=0o777, *args, **kwargs):
        sidecar = any(name in os.fspath(path) for name in self._names)
        if sidecar and self.full and self._where == "open":
            self.refused += 1
            raise OSError(errno.ENOSPC, FULL)
        fd = self._open(path, flags, mode, *args, **kwargs)
        self._temps.discard(fd)
        if sidecar and self.full:
            self._temps.add(fd)
        return fd

    def write(self, fd, data):
        if fd not in self._temps:
            return self._write(fd, data)
        self._temps.discard(fd)  # half of it fits; the next write finds the disk full
        self.refused += 1
        self._write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, FULL)


def sidecars(workspace: Path) -> list[Path]:
    return sorted((workspace / "outputs").rglob("*.json"))


def temporaries(workspace: Path) -> list[Path]:
    return [p for p in (workspace / "outputs").rglob(".*") if ".part-" in p.name]


def says_only_the_sidecar_is_missing(text: str) -> None:
    assert "sidecar" in text and "could not be written" in text and FULL in text, text
    assert "its result files are saved" in text, text
    assert "could not be saved or recorded" not in text and LINKS_STILL_WORK not in text, text  # no download is due
    assert not bare_error(text)


@eras_in_turn("where", ["open", "midway"])
async def test_a_sidecar_a_full_disk_refused_is_written_in_the_background_once_there_is_room(
    connect, controls, tmp_path, monkeypatch, where
):
    """The answer said the results could not be saved and that kie-mcp tried again; nothing was retried (every
    file was saved) and the sidecar (prompt, model, cost) never appeared, even after space came back."""
    disk = FullForSidecars(monkeypatch, where)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        data = result.structured_content
        assert data["status"] == "completed", text_of(result)
        task = data["tasks"][0]
        says_only_the_sidecar_is_missing(text_of(result))
        assert task["files"] and all((tmp_path / name).is_file() for name in task["files"])
        assert disk.refused >= 1 and sidecars(tmp_path) == [] and temporaries(tmp_path) == []
        disk.full = False  # space is freed; nobody calls anything
        with anyio.fail_after(10):
            while not sidecars(tmp_path):  # noqa: ASYNC110 - a file on disk: nothing to await
                await anyio.sleep(0.02)
        [path] = sidecars(tmp_path)
        written = json.loads(path.read_text(encoding="utf-8"))
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    assert path.parent == (tmp_path / task["files"][0]).parent  # beside the files it describes
    assert written["task_id"] == task["task_id"] and written["model"] == "nano-banana-2"
    assert written["prompt"] == IMAGE["prompt"] and written["credits_quoted"] == 8
    assert [f["path"] for f in written["files"]] == task["files"]
    assert temporaries(tmp_path) == []
    assert "could not be written" not in text_of(checked)


async def test_gallery_pages_a_full_disk_refused_are_written_once_there_is_room(
    connect, controls, tmp_path, monkeypatch
):
    """The audit: the pages were rebuilt only when a new result file was saved, so once the disk was freed the
    background wrote the missing sidecar but outputs/index.html stayed missing until some other result came."""
    disk = FullForSidecars(monkeypatch, "open", names=(".json.part-", ".index.html.part-"))
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        task = result.structured_content["tasks"][0]
        session = (tmp_path / task["files"][0]).parent
        assert not (tmp_path / "outputs" / "index.html").exists() and not (session / "index.html").exists()
        disk.full = False  # space is freed; nobody calls anything
        with anyio.fail_after(10):  # the sidecar and the pages are written in turn, in the background
            while not ((tmp_path / "outputs" / "index.html").is_file() and sidecars(tmp_path)):  # noqa: ASYNC110
                await anyio.sleep(0.02)
    assert (session / "index.html").is_file() and sidecars(tmp_path)
    assert Path(task["files"][0]).name in (tmp_path / "outputs" / "index.html").read_text(encoding="utf-8")


async def test_a_sidecar_a_full_disk_refused_is_written_by_check_task_after_a_restart(
    connect, controls, tmp_path, monkeypatch
):
    """The server stopped while the disk was still full: the next check_task writes the sidecar at once."""
    disk = FullForSidecars(monkeypatch, "open")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        task = result.structured_content["tasks"][0]
        says_only_the_sidecar_is_missing(text_of(result))
    assert sidecars(tmp_path) == []
    disk.full = False
    async with connect(elicitation=answering()) as client:
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
        [path] = sidecars(tmp_path)  # written by the call itself, before it answered
    assert checked.structured_content["task"]["files"] == task["files"]
    assert json.loads(path.read_text(encoding="utf-8"))["prompt"] == IMAGE["prompt"]
    assert "could not be written" not in text_of(checked) and temporaries(tmp_path) == []


# -- the call log, the fallback copy of task ids ------------------------------------------------------------


def log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().decode("utf-8").splitlines()]  # every line whole


async def test_every_call_log_line_is_whole_after_the_disk_filled_and_was_freed(connect, controls, small_disk):
    """A full disk cut a line short, and the next call's line ran into it: an unreadable line in the log the
    server's own errors name as the copy of a task id."""
    workspace = small_disk / "ws"
    log = workspace / "logs" / "kie-api.jsonl"
    async with connect(elicitation=answering(), workspace=workspace) as client:
        await client.call_tool("check_credits", {})
        filler = durability.fill(small_disk)
        for _ in range(60):  # a few fill what room the log's last block had left; the rest are refused
            await client.call_tool("check_credits", {})
        tried = 61
        filler.unlink()
        await client.call_tool("check_credits", {})
    records = log_records(log)
    assert 1 < len(records) < tried + 1  # some calls could not be logged: the disk really was full
    assert records[-1]["endpoint"].endswith("/chat/credit")  # the call after the disk was freed


def test_a_record_after_a_line_a_crash_cut_short_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / "kie-api.jsonl"
    path.write_bytes(b'{"time": "2026-01-01T00:00:00.000+00:00", "endpoint": "/api/v1/jobs/createTask"}\n{"time": "20')
    CallLog(path).write(endpoint="/api/v1/jobs/recordInfo", task_id="t-after-the-crash")
    lines = path.read_bytes().decode("utf-8").splitlines()
    assert json.loads(lines[0])["endpoint"] == "/api/v1/jobs/createTask"
    assert lines[1] == '{"time": "20'  # the crash's half line stays what it was, on its own
    assert json.loads(lines[2])["task_id"] == "t-after-the-crash"


CUT_SHORT = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    from kie_mcp.kie.calllog import CallLog

    path = Path(sys.argv[1])
    log = CallLog(path)
    log.write(endpoint="/api/v1/jobs/createTask", task_id="t-before")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit are cut short, then fail (EFBIG)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 150, hard))
    for n in range(5):
        log.write(endpoint="/api/v1/jobs/recordInfo", task_id=f"t-{n}", note="x" * 60)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    log.write(endpoint="/api/v1/jobs/recordInfo", task_id="t-after")
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_call_log_record_the_system_cut_short_is_not_left_half_written(tmp_path):
    """No root needed: a file size limit makes the kernel cut a write short and fail the rest, as a full disk
    does."""
    path = tmp_path / "kie-api.jsonl"
    quiet = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # CPython writes a .pyc cut short under the limit, unsaid
    subprocess.run([sys.executable, "-c", CUT_SHORT, str(path)], check=True, timeout=60, env=quiet)
    records = log_records(path)
    ids = [record["task_id"] for record in records]
    assert ids[0] == "t-before" and ids[-1] == "t-after"
    assert len(ids) < 7  # the limit refused some records whole


def test_a_failed_call_log_append_never_cuts_another_servers_line(tmp_path, monkeypatch):
    """Two servers share the workspace's log. When this one's append fails, cutting the file back to the size it
    saw must not take the line the other server wrote meanwhile (it may hold the only copy of a task id)."""
    from kie_mcp.kie import calllog

    path = tmp_path / "kie-api.jsonl"
    log = CallLog(path)
    log.write(endpoint="/a", outcome="ok")
    real_write = os.write

    def other_server_then_full(fd: int, data: bytes) -> int:
        other = os.open(path, os.O_WRONLY | os.O_APPEND)
        real_write(other, b'{"outcome": "created", "task_id": "t_other"}\n')
        os.close(other)
        raise OSError(errno.ENOSPC, FULL)

    monkeypatch.setattr(calllog.os, "write", other_server_then_full)
    log.write(endpoint="/b", outcome="created", task_id="t_ours")
    monkeypatch.setattr(calllog.os, "write", real_write)
    log.write(endpoint="/c", outcome="ok")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r.get("task_id") for r in records] == [None, "t_other", None]


# -- an approval whose call the disk stopped before any create ----------------------------------------------------


async def uploading(controls) -> bool:
    return any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"])


async def stopped_by_a_full_disk_while_uploading(controls, small_disk: Path, call) -> object:
    """The answer of ``call``, whose input file is on its way to KIE's file host when the disk fills; the disk is
    freed once it answered."""
    answers = []

    async def first() -> None:
        answers.append(await call())

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        with anyio.fail_after(10):
            while not await uploading(controls):  # noqa: ASYNC110 - the simulator's log: nothing to await but its answer
                await anyio.sleep(0.02)
        filler = durability.fill(small_disk)
    filler.unlink()
    return answers[0]


async def with_a_picture(controls, small_disk: Path) -> Path:
    """A workspace on the small disk with the picture EDIT sends, whose upload KIE's file host answers slowly."""
    workspace = small_disk / "ws"
    workspace.mkdir()
    picture(workspace)
    await controls.fault("upload", kind="slow", seconds=0.8)
    return workspace


async def quoted_and_stopped(client, controls, small_disk: Path) -> tuple[str, dict, object]:
    """EDIT quoted, then sent with its quote_id and stopped by the disk filling while its picture goes up: the
    quote id, the call, and its answer."""
    quote = (await client.call_tool("estimate_cost", EDIT)).structured_content["quote"]["quote_id"]
    call = {**EDIT, "quote_id": quote, "wait_seconds": 20}
    stopped = await stopped_by_a_full_disk_while_uploading(
        controls, small_disk, lambda: client.call_tool("generate_image", call)
    )
    return quote, call, stopped


def says_the_disk_is_full_and_nothing_was_created(text: str) -> None:
    assert "Nothing was created or charged" in text and "no create was sent" in text, text
    assert "The disk is full: free some space and call generate_image again with the same arguments" in text, text
    assert not bare_error(text)


async def test_a_quote_whose_upload_a_full_disk_stopped_approves_the_retry_once_space_is_freed(
    connect, controls, small_disk
):
    """The audit: the disk filled while the approved request's input file went up to KIE's file host. Nothing was
    created, but the journal could not take the quote back, so for ten minutes the retry after freeing space was
    told "another call of this same request is sending its create" (unknown, may have been charged), and the
    approval bought nothing. The call's answer now says the disk is full and to call again with the same quote_id,
    which then makes the image, once."""
    workspace = await with_a_picture(controls, small_disk)
    async with connect(workspace=workspace) as client:
        quote, call, stopped = await quoted_and_stopped(client, controls, small_disk)
        created_meanwhile = await controls.creates()
        again = await client.call_tool("generate_image", call)
        reused = await client.call_tool("generate_image", call)
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert stopped.is_error and created_meanwhile == []
    assert again.structured_content["status"] == "completed", text_of(again)
    says_the_disk_is_full_and_nothing_was_created(text_of(stopped))
    assert f"quote_id='{quote}'" in text_of(stopped)
    assert reused.structured_content["status"] == "confirmation_required", text_of(reused)  # one quote, one spend
    assert "already used" in text_of(reused) and again.structured_content["tasks"][0]["task_id"] in text_of(reused)
    assert len(await controls.creates()) == 1 and spent == 4


async def test_a_yes_whose_upload_a_full_disk_stopped_approves_the_same_request_once_space_is_freed(
    connect, controls, small_disk, mode
):
    """As for a quote, with the user's yes in the confirmation form: the same request sent again after space was
    freed (in the 2026-07-28 era, the very request with its answer, as a host retries it) makes the image, once."""
    workspace = small_disk / "ws"
    workspace.mkdir()
    picture(workspace)
    await controls.fault("upload", kind="slow", seconds=0.8)
    call = {**EDIT, "wait_seconds": 20}
    async with connect(elicitation=answering(), workspace=workspace) as client:
        if mode == "auto":  # the 2026-07-28 era: the answer comes back in a retried request, which a host may repeat
            from mcp.types import ElicitResult

            asked = await client.session.call_tool("generate_image", call, allow_input_required=True)
            yes = {key: ElicitResult(action="accept", content={"confirm": True}) for key in asked.input_requests}

            async def answered():
                return await client.call_tool(
                    "generate_image", call, input_responses=yes, request_state=asked.request_state
                )

            stopped = await stopped_by_a_full_disk_while_uploading(controls, small_disk, answered)
            created_meanwhile = await controls.creates()
            again = await answered()
            replayed = await answered()
        else:
            stopped = await stopped_by_a_full_disk_while_uploading(
                controls, small_disk, lambda: client.call_tool("generate_image", call)
            )
            created_meanwhile = await controls.creates()
            again = await client.call_tool("generate_image", call)
            replayed = None
    assert stopped.is_error and created_meanwhile == []
    assert again.structured_content["status"] == "completed", text_of(again)
    says_the_disk_is_full_and_nothing_was_created(text_of(stopped))
    if replayed is not None:  # the same answer once more: the image it made, never a second create
        assert replayed.structured_content["tasks"][0]["task_id"] == again.structured_content["tasks"][0]["task_id"]
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_quote_a_full_disk_stopped_approves_the_retry_on_another_server_of_the_workspace(
    connect, controls, small_disk
):
    """The review: the release a full disk held back was written only when the same server next looked at a quote,
    so a retry through a second client window (another server on the workspace) was told for ten minutes that
    "another call of this same request is sending its create" (may have been charged). The server writes it on its
    own as soon as the disk takes it."""
    workspace = await with_a_picture(controls, small_disk)
    async with connect(workspace=workspace) as first:
        quote, call, stopped = await quoted_and_stopped(first, controls, small_disk)
        journal = sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3")
        with anyio.fail_after(10):  # the first server stays idle: nothing of it looks at a quote meanwhile
            while journal.execute("SELECT used FROM quotes WHERE quote_id = ?", (quote,)).fetchone()[0]:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        journal.close()
        async with connect(workspace=workspace) as second:
            again = await second.call_tool("generate_image", call)
    says_the_disk_is_full_and_nothing_was_created(text_of(stopped))
    assert again.structured_content["status"] == "completed", text_of(again)
    assert len(await controls.creates()) == 1


# -- a task's end the journal would not take -------------------------------------------------------------------

VIDEO = {"prompt": "waves rolling onto a beach at dusk", "model": "veo3_fast", "wait_seconds": 0}


async def kie_requests(controls, task_id: str) -> tuple[int, int]:
    """The status calls about ``task_id`` and the result file requests KIE received so far."""
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    status = sum(1 for r in items if r["query"].get("taskId") == task_id)
    return status, sum(1 for r in items if r["path"].startswith(("/files/", "/dl/")))


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_task_whose_end_a_full_disk_kept_from_the_journal_is_not_asked_about_or_saved_again(
    connect, controls, small_disk, tmp_path
):
    """The audit: the workspace's disk full (its journal refusing writes) while outputs/ links to a disk with room,
    a documented setup. The journal still called the finished video unfinished, so every rescan took it up again:
    KIE asked and the whole video downloaded anew every minute. This server remembers the end it saw, answers from
    it, and writes it to the journal once the disk has room."""
    workspace = small_disk / "ws"
    workspace.mkdir()
    (tmp_path / "big").mkdir()
    (workspace / "outputs").symlink_to(tmp_path / "big")
    await controls.post("clock/speed", {"speed": 0})
    async with connect(elicitation=answering(), workspace=workspace) as client:
        task_id = (await client.call_tool("generate_video", VIDEO)).structured_content["tasks"][0]["task_id"]
        filler = durability.fill(small_disk)
        try:
            await controls.post("clock/speed", {"speed": 1000})
            with anyio.fail_after(10):
                while not list((tmp_path / "big").rglob(f"*{task_id}*.mp4")):  # noqa: ASYNC110 - files on disk
                    await anyio.sleep(0.02)
            await anyio.sleep(0.2)  # its end announced
            ended = await kie_requests(controls, task_id)
            await anyio.sleep(1.5)  # five rescans (0.3 s each here), past the 0.9 s a task must be quiet to be taken up
            later = await kie_requests(controls, task_id)
            checked = await client.call_tool("check_task", {"task_id": task_id})
        finally:
            filler.unlink()
    assert later == ended, (ended, later)  # neither asked about nor downloaded again
    assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
    assert checked.structured_content["task"]["files"], text_of(checked)
    journal = sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3")
    try:  # written once the disk had room (here: as the server stopped)
        state = journal.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0]
        files = journal.execute("SELECT COUNT(*) FROM files WHERE task_id = ?", (task_id,)).fetchone()[0]
    finally:
        journal.close()
    assert (state, files) == ("succeeded", 1)


def refuse_ends(journal: Path, refuse: bool) -> None:
    """Another program's rule on the journal (a trigger) refusing every task's end as a constraint violation, for
    good while it stands: the write of a task's end fails in a way no later try mends, until the rule goes."""
    db = sqlite3.connect(journal, timeout=10)
    try:
        if refuse:
            db.execute(
                "CREATE TRIGGER refuse_ends BEFORE UPDATE OF state ON tasks WHEN NEW.state = 'succeeded' "
                "BEGIN SELECT RAISE(ABORT, 'no end is taken here'); END"
            )
        else:
            db.execute("DROP TRIGGER refuse_ends")
        db.commit()
    finally:
        db.close()


@pytest.mark.parametrize("mode", ["legacy"])  # the follower and the journal, not the era: once
async def test_a_task_whose_end_the_journal_can_never_take_is_followed_again_not_answered_from_memory_for_ever(
    connect, tmp_path, monkeypatch, caplog
):
    """The review: an end kept in memory because the journal would not take it stayed there for good when its owed
    write failed in a way no later try mends (a constraint, a bug: the write is dropped): no rescan took the task up
    again and check_task answered that copy, so the journal called it unfinished for as long as the server ran
    (other servers on the workspace, and the gallery, with it). Once the write is dropped, the task is the
    journal's again, as after a restart: followed again, and its end recorded once the journal takes it."""
    from kie_mcp import runtime

    monkeypatch.setattr(runtime, "RELEASE_OWED_EVERY", 0.05)  # owed writes tried every 5 s: sooner here
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
    async with connect(elicitation=answering()) as client:
        await client.call_tool("check_credits", {})  # the journal is open
        refuse_ends(journal, True)
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        with anyio.fail_after(5):  # its end refused, owed, then the owed write given up
            while not any(f"could not record how task {task_id} ended" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110 - the log
                await anyio.sleep(0.02)
        refuse_ends(journal, False)
        with anyio.fail_after(4):  # the rescan (every 0.3 s here) takes it up, as it is quiet (0.9 s), and records it
            while journal_state(journal, task_id) != "succeeded":  # noqa: ASYNC110 - another program's read
                await anyio.sleep(0.05)
        checked = await client.call_tool("check_task", {"task_id": task_id})
    assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
    assert checked.structured_content["task"]["files"], text_of(checked)


def journal_state(journal: Path, task_id: str) -> str:
    db = sqlite3.connect(journal, timeout=10)
    try:
        return db.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0]
    finally:
        db.close()
