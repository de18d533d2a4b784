"""A session keeps one folder: a join goes where its clips are, a session taken up after midnight goes on in the
folder it has, and a link in outputs/ is still never written through.

The audit (a marketer's day): stitch_videos without ``session`` wrote ``outputs/<date>-stitched/`` (with
``output_name="final.mp4"``, ``outputs/<date>-final-mp4/``) while the README promised the session folder; and a take
made before midnight and its extension made after it landed in two folders, ``<day>-serum-launch`` and
``<next day>-serum-launch``, as every result's folder was dated by the day its own task was created.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from kie_mcp.journal import Journal
from kie_mcp.sandbox import media
from kie_mcp.tasks.records import TaskBook, TaskRecord

from .conftest import answering, dated, text_of

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="time zones by TZ, symlinks")

TAKE = {"prompt": "Selfie video of a woman with a serum bottle", "model": "veo3_fast", "aspect_ratio": "9:16"}
STILL = {"prompt": "The serum bottle on a marble shelf", "model": "nano-banana-2"}
SESSION = "serum-launch"


@pytest.fixture
def local_zone() -> Iterator[Callable[[str], None]]:
    """``local_zone("AAA+12")``: this process's local time zone (TZ, as POSIX writes it) from now on, so a session can
    go on "the next day" without waiting for midnight; the zone the test began with comes back after it."""
    before = os.environ.get("TZ")

    def move(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield move
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the workspace, which a link a cloned repository carried in outputs/ leads to."""
    return tmp_path_factory.mktemp("elsewhere")


async def _finished(client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a generating tool, and wait for its one task to be saved: the task as check_task shows it."""
    made = await client.call_tool(tool, arguments)
    assert not made.is_error, text_of(made)
    task_id = made.structured_content["tasks"][0]["task_id"]
    done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 40})
    task = done.structured_content["task"]
    assert task["state"] == "succeeded" and task["files"], text_of(done)
    return task


def _folder(task: dict[str, Any]) -> str:
    """The one folder every saved file of ``task`` is in."""
    [folder] = {str(PurePosixPath(path).parent) for path in task["files"]}
    return folder


async def test_the_instructions_tell_an_agent_to_pass_one_session_so_a_days_work_shares_one_folder(connect):
    """The journey: the server's instructions never said to pass ``session``, and an agent that did not scattered one
    day's work into a folder per prompt. Said in one short line, in both eras (the instructions go to every start)."""
    async with connect() as client:
        instructions = client.instructions or ""
    assert 'Pass the same session="<name>" to every call of one piece of work, so its results share one folder' in (
        instructions
    ), instructions
    assert "without it, each prompt gets a folder of its own" in instructions, instructions


@pytest.mark.parametrize("mode", ["auto"])  # the wire and the disk, not the protocol era: once
async def test_a_join_without_session_is_saved_in_the_session_folder_of_its_clips(connect, tmp_path):
    """Without ``session``, a join of a session's clips (by task id, a follow-up's too, or by saved path) goes to
    that session's folder; only clips of several sessions, or files saved by no task, get a folder of their own."""
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "mine.mp4").write_bytes(media.clip_bytes("1x1.mp4"))
    async with connect(elicitation=answering()) as client:
        take = await _finished(client, "generate_video", {**TAKE, "session": SESSION})
        extension = await _finished(  # no session: a follow-up is saved in its source's folder
            client, "continue_video", {"task_id": take["task_id"], "operation": "extend", "prompt": "She smiles."}
        )
        other = await _finished(client, "generate_video", {**TAKE, "session": "winter-sale"})
        caption = [{"start": 0.1, "end": 0.9, "text": "Two weeks in"}]
        final = await client.call_tool(
            "stitch_videos", {"clips": [extension["task_id"]], "output_name": "final.mp4", "captions": caption}
        )
        by_path = await client.call_tool("stitch_videos", {"clips": [extension["files"][0]], "captions": caption})
        two_sessions = await client.call_tool("stitch_videos", {"clips": [take["task_id"], other["task_id"]]})
        mine = ["clips/mine.mp4", "clips/mine.mp4"]
        not_saved = await client.call_tool("stitch_videos", {"clips": mine, "output_name": "final"})
    folder = _folder(take)
    assert dated(folder) == "outputs/TODAY-serum-launch" and _folder(extension) == folder
    for joined in (final, by_path, two_sessions, not_saved):
        assert not joined.is_error, text_of(joined)
    assert final.structured_content["path"] == f"{folder}/final.mp4", text_of(final)
    assert by_path.structured_content["path"] == f"{folder}/stitched-1-clips.mp4", text_of(by_path)
    assert dated(two_sessions.structured_content["path"]) == "outputs/TODAY-stitched/stitched-2-clips.mp4"
    assert dated(not_saved.structured_content["path"]) == "outputs/TODAY-final/final.mp4"


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_session_taken_up_after_midnight_goes_on_in_the_folder_it_has(connect, tmp_path, local_zone):
    """A take made on one day, and its extension, a still and the join made on the next (the local clock moved 25
    hours by the time zone), all land in the session's one folder, as the folder the extension's answer names before
    it is saved says; a result without a session still gets a folder of its own day."""
    local_zone("AAA+12")  # UTC-12
    async with connect(elicitation=answering()) as client:
        take = await _finished(client, "generate_video", {**TAKE, "session": SESSION})
        began = date.today()
        local_zone("BBB-13")  # UTC+13: the next day, or the one after
        assert date.today() > began
        asked = await client.call_tool(
            "continue_video",
            {"task_id": take["task_id"], "operation": "extend", "prompt": "She smiles.", "wait_seconds": 0},
        )
        assert not asked.is_error, text_of(asked)
        named = asked.structured_content["tasks"][0]["folder"]
        done = await client.call_tool(
            "check_task", {"task_id": asked.structured_content["tasks"][0]["task_id"], "wait_seconds": 40}
        )
        extension = done.structured_content["task"]
        still = await _finished(client, "generate_image", {**STILL, "session": SESSION})
        caption = [{"start": 0.1, "end": 0.9, "text": "Two weeks in"}]
        joined = await client.call_tool(
            "stitch_videos",
            {"clips": [extension["task_id"]], "session": SESSION, "output_name": "final", "captions": caption},
        )
        unnamed = await _finished(client, "generate_image", STILL)
    folder = _folder(take)
    assert folder == f"outputs/{began.isoformat()}-{SESSION}"
    assert named == folder and _folder(extension) == folder and _folder(still) == folder, text_of(done)
    assert joined.structured_content["path"] == f"{folder}/final.mp4", text_of(joined)
    assert _folder(unnamed).startswith(f"outputs/{date.today().isoformat()}-")
    sessions = sorted(path.name for path in (tmp_path / "outputs").iterdir() if path.is_dir())
    assert sessions == sorted([PurePosixPath(folder).name, PurePosixPath(_folder(unnamed)).name])


async def test_a_named_session_goes_on_in_its_real_folder_never_through_a_link(connect, controls, tmp_path, outside):
    """The session began 20 days ago; a cloned repository carried ``outputs/<that day>-serum-launch`` as a link, so
    its results went to the real ``..._2`` beside it, and a later-dated link of the session's name came too. Today's
    result goes on in the real folder, never through either link; and a refused download of it is still a task of
    today (not "probably gone from KIE" by its folder's date), saved by check_task once the link works again."""
    began = date.today() - timedelta(days=20)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / f"{began.isoformat()}-{SESSION}").symlink_to(outside, target_is_directory=True)
    (outputs / f"{began.isoformat()}-{SESSION}_2").mkdir()
    (outputs / f"2099-01-01-{SESSION}").symlink_to(outside, target_is_directory=True)
    await controls.fault("files", times=2, kind="code", code=404)  # the link and its fresh one, refused once
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool("generate_image", {**STILL, "session": SESSION, "wait_seconds": 30})
        task_id = refused.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
    assert "was refused" in text_of(refused) and "probably gone" not in text_of(refused), text_of(refused)
    task = checked.structured_content["task"]
    assert task["files"] and _folder(task) == f"outputs/{began.isoformat()}-{SESSION}_2", text_of(checked)
    assert sorted(outside.iterdir()) == []


async def test_a_session_never_goes_on_in_a_folder_dated_after_today(connect, controls, tmp_path):
    """The review: a real ``outputs/2099-01-01-<session>`` (a cloned repository can carry one) took the session's
    every later result, and check_task and list_tasks named it. A folder dated after today is no folder of the
    session: today's result starts today's. Tomorrow's too, which only a label naming that very folder may date
    (the user's today, a time zone ahead: ``test_a_folder_named_by_the_users_date_a_day_ahead_...``)."""
    planted = [f"2099-01-01-{SESSION}", f"{(date.today() + timedelta(days=1)).isoformat()}-{SESSION}"]
    for name in planted:
        (tmp_path / "outputs" / name).mkdir(parents=True)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**STILL, "session": SESSION, "wait_seconds": 30})
    task = made.structured_content["tasks"][0]
    assert _folder(task) == f"outputs/{date.today().isoformat()}-{SESSION}", text_of(made)
    for name in planted:
        assert list((tmp_path / "outputs" / name).iterdir()) == []


def test_a_session_never_goes_on_in_a_folder_this_user_cannot_write(tmp_path):
    """The review: a session's older folder archived read-only, or made by another user (a root Docker run), was
    still chosen, and every result of the session failed to save there ("Permission denied"), paid for. Such a
    folder is passed over: the latest folder the user can write is the session's, else a new one."""
    from .test_promise_config import as_a_user_without_privilege

    prefix = as_a_user_without_privilege()
    if prefix is None:
        pytest.skip("no way here to run as a user that file permissions apply to")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    older, newer = (date.today() - timedelta(days=days) for days in (30, 2))
    (outputs / f"{older.isoformat()}-{SESSION}").mkdir()
    (outputs / f"{newer.isoformat()}-{SESSION}").mkdir()
    (outputs / f"{newer.isoformat()}-{SESSION}").chmod(0o555)  # archived read-only
    script = (
        "import sys; from pathlib import Path; from kie_mcp.media.downloads import latest_session_folder; "
        "print(latest_session_folder(Path(sys.argv[1]), sys.argv[2]))"
    )
    found = subprocess.run(
        [*prefix, sys.executable, "-c", script, str(outputs), SESSION],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(outputs / f"{older.isoformat()}-{SESSION}"), found.stdout + found.stderr


# The seed documents and MASTER_CONTEXT.md tell an agent to "create/reuse outputs/{YYYY-MM-DD}-{brief-slug}/" (e.g.
# outputs/2026-04-20-ugc-batch/); the audit: a user who passed that folder's name as ``session`` got a new,
# double-dated folder beside it (outputs/<today>-2026-04-20-ugc-batch/, outputs/<today>-outputs-2026-04-20-ugc-batch/),
# which the gallery and stitch_videos took for another session.
BRIEF = "ugc-batch"


def _brief_folder(tmp_path: Path, days_ago: int = 20) -> tuple[str, Path]:
    """The brief's folder as the seed documents have an agent make it, ``days_ago`` days back, with a file in it: its
    name (``<day>-ugc-batch``) and its path."""
    name = f"{(date.today() - timedelta(days=days_ago)).isoformat()}-{BRIEF}"
    folder = tmp_path / "outputs" / name
    folder.mkdir(parents=True)
    (folder / "brief.txt").write_text("the brief's notes\n")
    return name, folder


def _session_folders(tmp_path: Path) -> list[str]:
    return sorted(path.name for path in (tmp_path / "outputs").iterdir() if path.is_dir())


async def test_a_session_named_as_its_folder_is_that_folder_and_the_answer_says_so(connect, tmp_path):
    """``session`` written as the seed documents write the folder (``outputs/<day>-ugc-batch``, ``./outputs/...``, with
    a trailing slash, or ``<day>-ugc-batch``) saves every result in that very folder, as the session's own name does:
    one folder, whose gallery page heads it with the session's name; the confirmation and the answer name it."""
    name, folder = _brief_folder(tmp_path)
    seen: list[str] = []
    labels = [f"outputs/{name}", f"./outputs/{name}/", name, BRIEF]
    async with connect(elicitation=answering(seen=seen)) as client:
        tasks = [await _finished(client, "generate_image", {**STILL, "session": label}) for label in labels]
        answer = await client.call_tool("generate_image", {**STILL, "session": name, "variations": 2})
        page = await client.read_resource(f"kie://outputs/{name}/index.html")
    for task in tasks:
        assert _folder(task) == f"outputs/{name}", task
    assert not answer.is_error and _folder({"files": _files(answer)}) == f"outputs/{name}", text_of(answer)
    assert f'session "{name}" names the session folder outputs/{name}/: results go on in it.' in text_of(answer)
    assert any(f"names the session folder outputs/{name}/" in asked for asked in seen), seen
    assert _session_folders(tmp_path) == [name]
    assert (folder / "brief.txt").read_text() == "the brief's notes\n"
    html = page.contents[0].text
    assert f'<span class="day">{name[:10]}</span> <bdi dir="auto">{BRIEF}</bdi>' in html, html[:3000]


def _files(answer: Any) -> list[str]:
    return [path for task in answer.structured_content["tasks"] for path in task["files"]]


async def test_a_session_named_as_a_folder_not_made_yet_starts_that_folder(connect, tmp_path):
    """A folder's name for a session that has no folder yet (the agent did not make it first) starts exactly that
    folder, dated by the day it names, and every later call naming it goes on there."""
    name = f"{(date.today() - timedelta(days=3)).isoformat()}-{BRIEF}"
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", {**STILL, "session": f"outputs/{name}", "wait_seconds": 30})
        again = await _finished(client, "generate_image", {**STILL, "session": name})
    assert not first.is_error, text_of(first)
    assert {str(PurePosixPath(path).parent) for path in _files(first)} == {f"outputs/{name}"}, text_of(first)
    message = f'session "outputs/{name}" names the session folder outputs/{name}/: results are saved in it (a new'
    assert message in text_of(first), text_of(first)
    assert _folder(again) == f"outputs/{name}"
    assert _session_folders(tmp_path) == [name]


async def test_a_label_naming_no_folder_kie_mcp_may_use_is_a_session_name(connect, tmp_path, outside):
    """A folder's name dated more than a day after today, or on a day no calendar has, or of a link (a cloned
    repository can carry one), names no session folder: its results go to the session of the name after the day (its
    folder, else today's), and the answer says why; a path that leaves outputs/ or goes below a session folder is a
    session name, slugged as ever, never a folder."""
    name, _ = _brief_folder(tmp_path)
    linked = f"{(date.today() - timedelta(days=5)).isoformat()}-linked"
    (tmp_path / "outputs" / linked).symlink_to(outside, target_is_directory=True)
    cases = {
        f"2099-01-01-{BRIEF}": f"outputs/{name}",  # the session ugc-batch's folder
        "2026-02-30-spring-launch": "outputs/TODAY-spring-launch",
        f"outputs/{linked}": "outputs/TODAY-linked",
        "../escape": "outputs/TODAY-escape",
        "/etc/cron.d": "outputs/TODAY-etc-cron-d",
        "outputs/a/b": "outputs/TODAY-outputs-a-b",
    }
    async with connect(elicitation=answering()) as client:
        answers = {
            label: await client.call_tool("generate_image", {**STILL, "session": label, "wait_seconds": 30})
            for label in cases
        }
    for label, folder in cases.items():
        [where] = {str(PurePosixPath(path).parent) for path in _files(answers[label])}
        assert (where if folder == f"outputs/{name}" else dated(where)) == folder, (label, text_of(answers[label]))
    future = text_of(answers[f"2099-01-01-{BRIEF}"])
    assert "2099-01-01 is more than a day after today, and no session folder is dated so late: results are saved " in (
        future
    )
    assert f'outputs/{name}/, the folder of the session "{BRIEF}".' in future
    assert "2026-02-30 is no date" in text_of(answers["2026-02-30-spring-launch"])
    assert f"outputs/{linked}/ is a link, a file or a folder kie-mcp cannot write into" in text_of(
        answers[f"outputs/{linked}"]
    )
    assert list(outside.iterdir()) == []
    for label in ("../escape", "/etc/cron.d", "outputs/a/b"):
        assert "session folder" not in text_of(answers[label]), text_of(answers[label])
    assert not (tmp_path / "escape").exists() and not (tmp_path / "outputs" / "a").exists()


async def test_every_tool_naming_the_session_by_its_folder_agrees_on_it(connect, tmp_path):
    """The take, its extension (no session: its source's), the join and list_tasks: a session named by its folder
    keeps them in that folder, the join's answer names it, and list_tasks given the folder's name finds every task
    saved there, those of the session's plain name too."""
    name, _ = _brief_folder(tmp_path)
    caption = [{"start": 0.1, "end": 0.9, "text": "Two weeks in"}]
    async with connect(elicitation=answering()) as client:
        take = await _finished(client, "generate_video", {**TAKE, "session": f"outputs/{name}"})
        extension = await _finished(
            client, "continue_video", {"task_id": take["task_id"], "operation": "extend", "prompt": "She smiles."}
        )
        still = await _finished(client, "generate_image", {**STILL, "session": BRIEF})
        joined = await client.call_tool(
            "stitch_videos",
            {"clips": [extension["task_id"]], "session": name, "output_name": "final", "captions": caption},
        )
        listed = await client.call_tool("list_tasks", {"session": f"outputs/{name}/"})
        other = await _finished(client, "generate_image", {**STILL, "session": "winter-sale"})
        narrowed = await client.call_tool("list_tasks", {"session": name})
    assert _folder(take) == _folder(extension) == _folder(still) == f"outputs/{name}"
    assert not joined.is_error and joined.structured_content["path"] == f"outputs/{name}/final.mp4", text_of(joined)
    assert f"names the session folder outputs/{name}/: results go on in it." in text_of(joined)
    found = {task["task_id"] for task in listed.structured_content["tasks"]}
    assert found == {take["task_id"], extension["task_id"], still["task_id"]}, text_of(listed)
    assert other["task_id"] not in {task["task_id"] for task in narrowed.structured_content["tasks"]}
    assert _session_folders(tmp_path) == sorted([name, PurePosixPath(_folder(other)).name])


# The review of the merge above (a session written as its folder's name is that folder).


def _saved_before(workspace: Path, task_id: str, session: str, path: str) -> None:
    """A finished task of ``session`` with its result saved at ``path`` in the workspace's journal (and on disk), as a
    kie-mcp before folder names named folders saved it."""
    (workspace / path).parent.mkdir(parents=True, exist_ok=True)
    (workspace / path).write_bytes(b"an older result")
    journal = Journal.for_workspace(workspace)
    try:
        record = TaskRecord(
            task_id=task_id,
            model="nano-banana-2",
            family="market",
            kind="image",
            state="succeeded",
            created_at=time.time() - 86400,
            files=[path],
        )
        TaskBook(journal).add(record, prompt="an older still", session=session)
        journal.add_file(task_id, 1, path, "0" * 64, 15, "image/png", f"https://tempfile.example/{task_id}.png")
    finally:
        journal.close()


async def _listed(client: Any, session: str) -> set[str]:
    """The ids of the tasks list_tasks finds by ``session``."""
    listed = await client.call_tool("list_tasks", {"session": session})
    assert not listed.is_error, text_of(listed)
    return {task["task_id"] for task in listed.structured_content["tasks"]}


async def test_list_tasks_by_a_folders_name_finds_the_labels_naming_it_as_typed_and_no_other_folders(connect, controls):
    """The review: list_tasks given a folder's name compared the labels kept as typed with the folder's slug, so a
    session typed ``<day>-UGC.Batch``, ``<day>-ugc_batch`` or ``<day>-Été`` was found by neither its folder's name nor
    its own label while its task ran, nor ever once it failed (no file saved); and words of the slug found the tasks
    of another folder (``outputs/<day>-ugc`` listed those of ``<day>-ugc-batch``). A label naming the very folder is
    found, however typed; one naming another folder never is."""
    day = date.today().isoformat()
    sessions = {
        "batch": [f"{day}-UGC.Batch", f"{day}-ugc_batch", f"outputs/{day}-ugc-batch"],
        "summer": [f"{day}-Été"],
        "short": [f"{day}-ugc"],
    }
    await controls.post("clock/speed", {"speed": 0})  # every task runs until the test fails it
    ids: dict[str, set[str]] = {}
    async with connect(elicitation=answering()) as client:
        for session, labels in sessions.items():
            for label in labels:
                made = await client.call_tool("generate_image", {**STILL, "session": label, "wait_seconds": 0})
                assert not made.is_error, text_of(made)
                ids.setdefault(session, set()).add(made.structured_content["tasks"][0]["task_id"])
        searches = {
            "batch": [f"outputs/{day}-ugc-batch", f"{day}-UGC.Batch", f"./outputs/{day}-ugc_batch/"],
            "summer": [f"outputs/{day}-ete", f"{day}-été"],
            "short": [f"outputs/{day}-ugc", f"{day}-ugc", f"{day}-UGC"],
        }
        running = {query: await _listed(client, query) for queries in searches.values() for query in queries}
        for task_id in set().union(*ids.values()):
            await controls.post(f"tasks/{task_id}", {"state": "fail", "fail_msg": "upstream timeout"})
            checked = await client.call_tool("check_task", {"task_id": task_id})
            assert checked.structured_content["task"]["state"] == "failed", text_of(checked)
        failed = {query: await _listed(client, query) for queries in searches.values() for query in queries}
    expected = {query: ids[session] for session, queries in searches.items() for query in queries}
    assert running == expected, ids
    assert failed == expected, ids


async def test_a_folders_name_ending_in_its_stand_ins_n_is_the_folder_kie_mcp_saves_that_session_in(
    connect, tmp_path, outside
):
    """The review: a link a cloned repository carried in the session's folder's place sends session ``x``'s results
    to ``<day>-x_2``; the agent, naming the folder it sees (``outputs/<day>-x_2``), got a third folder ``<day>-x-2``,
    and list_tasks by that name missed session x's task. ``_2`` after a folder's name is the stand-in of the folder
    without it: the same folder, and the answer names it as it is on disk."""
    day = date.today().isoformat()
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / f"{day}-x").symlink_to(outside, target_is_directory=True)
    async with connect(elicitation=answering()) as client:
        plain_name = await _finished(client, "generate_image", {**STILL, "session": "x"})
        named = await client.call_tool("generate_image", {**STILL, "session": f"outputs/{day}-x_2", "wait_seconds": 30})
        by_stand_in = await _listed(client, f"outputs/{day}-x_2")
    assert _folder(plain_name) == f"outputs/{day}-x_2"
    assert {str(PurePosixPath(path).parent) for path in _files(named)} == {f"outputs/{day}-x_2"}, text_of(named)
    said = f'session "outputs/{day}-x_2" names the session folder outputs/{day}-x_2/: results go on in it.'
    assert said in text_of(named), text_of(named)
    assert by_stand_in == {plain_name["task_id"], named.structured_content["tasks"][0]["task_id"]}
    assert _session_folders(tmp_path) == [f"{day}-x", f"{day}-x_2"]  # the link and its stand-in, no third folder
    assert list(outside.iterdir()) == []


async def test_a_folder_named_by_the_users_date_a_day_ahead_of_the_machine_is_that_folder_from_the_first_call(
    connect, tmp_path, local_zone
):
    """The review: the agent writes the user's date, a day ahead of the machine's (a user in Auckland, UTC+13, a
    server on UTC): ``outputs/<tomorrow here>-launch`` was refused as "after today" and saved in ``<today>-launch``,
    and the next day the same label made ``<tomorrow>-launch``: one session in two folders. A date up to a day after
    the machine's names its folder, made dated as named, found by the next call and the next day's; a date further
    on still names none."""
    local_zone("AAA+12")  # the machine on UTC-12, the user a day ahead of it
    ahead = (date.today() + timedelta(days=1)).isoformat()
    label = f"outputs/{ahead}-launch"
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", {**STILL, "session": label, "wait_seconds": 30})
        again = await _finished(client, "generate_image", {**STILL, "session": label})
        too_far = (date.today() + timedelta(days=2)).isoformat()
        planned = await client.call_tool("generate_image", {**STILL, "session": f"{too_far}-plan", "wait_seconds": 30})
        machine_day = date.today().isoformat()
        local_zone("BBB-13")  # UTC+13: the machine's next day (or the one after)
        assert date.today().isoformat() >= ahead
        later = await _finished(client, "generate_image", {**STILL, "session": label})
        listed = await _listed(client, label)
    assert {str(PurePosixPath(path).parent) for path in _files(first)} == {f"outputs/{ahead}-launch"}, text_of(first)
    said = f'session "{label}" names the session folder outputs/{ahead}-launch/: results are saved in it (a new'
    assert said in text_of(first), text_of(first)
    assert _folder(again) == _folder(later) == f"outputs/{ahead}-launch"
    first_id = first.structured_content["tasks"][0]["task_id"]
    assert listed == {first_id, again["task_id"], later["task_id"]}
    assert {str(PurePosixPath(path).parent) for path in _files(planned)} == {f"outputs/{machine_day}-plan"}
    assert f"{too_far} is more than a day after today" in text_of(planned), text_of(planned)
    assert _session_folders(tmp_path) == sorted([f"{ahead}-launch", f"{machine_day}-plan"])


async def test_a_session_begun_before_folder_names_named_folders_goes_on_in_the_folder_it_has(connect, tmp_path):
    """The review: a session labelled ``<day>-ugc-batch`` before such a label named its folder lives in the old
    double-dated ``outputs/<its first day>-<day>-ugc-batch/``; after the change the same label made a new
    ``outputs/<day>-ugc-batch/`` beside it, "a new folder". While the named folder is not there, the session's own
    folder is the one it goes on in, as the answer says, written either way, and list_tasks finds its tasks."""
    named = f"{(date.today() - timedelta(days=20)).isoformat()}-{BRIEF}"
    began = (date.today() - timedelta(days=6)).isoformat()
    own = tmp_path / "outputs" / f"{began}-{named}"
    own.mkdir(parents=True)
    (own / "brief.txt").write_text("the brief's notes\n")
    _saved_before(tmp_path, "older", named, f"outputs/{began}-{named}/nano-banana-2_older_1.png")
    async with connect(elicitation=answering()) as client:
        bare = await client.call_tool("generate_image", {**STILL, "session": named, "wait_seconds": 30})
        pathed = await _finished(client, "generate_image", {**STILL, "session": f"outputs/{named}"})
        listed = await _listed(client, named)
    assert {str(PurePosixPath(path).parent) for path in _files(bare)} == {f"outputs/{began}-{named}"}, text_of(bare)
    said = (
        f'session "{named}" names the session folder outputs/{named}/, which is not there: results go on in '
        f"outputs/{began}-{named}/, where this session was saved before kie-mcp read a folder's name as that folder."
    )
    assert said in text_of(bare), text_of(bare)
    assert _folder(pathed) == f"outputs/{began}-{named}"
    assert listed == {"older", bare.structured_content["tasks"][0]["task_id"], pathed["task_id"]}
    assert _session_folders(tmp_path) == [f"{began}-{named}"]


async def test_a_new_session_sharing_an_older_labels_first_40_characters_gets_a_folder_of_its_own(connect, tmp_path):
    """The review: the folder an older label was given (``outputs/<first day>-<whole label slugged>``) cuts the slug at
    40 characters, so a brand-new ``<d>-ugc-batch-for-the-spring-campaign-b`` was saved into campaign A's folder and
    told it was "where this session was saved before". The old folder is a session's only when the journal shows that
    very label saved a file there."""
    day = date.today().isoformat()
    began = (date.today() - timedelta(days=6)).isoformat()
    older, newer = f"{day}-ugc-batch-for-the-spring-campaign-a", f"{day}-ugc-batch-for-the-spring-campaign-b"
    shared = f"{began}-{day}-ugc-batch-for-the-spring"  # both labels, slugged whole and cut at 40
    _saved_before(tmp_path, "older", older, f"outputs/{shared}/nano-banana-2_older_1.png")
    async with connect(elicitation=answering()) as client:
        new = await client.call_tool("generate_image", {**STILL, "session": newer, "wait_seconds": 30})
        old = await _finished(client, "generate_image", {**STILL, "session": older})
        by_new = await _listed(client, newer)
    assert {str(PurePosixPath(path).parent) for path in _files(new)} == {f"outputs/{newer}"}, text_of(new)
    assert "saved before" not in text_of(new), text_of(new)
    assert _folder(old) == f"outputs/{shared}"  # campaign A goes on where it was
    assert by_new == {new.structured_content["tasks"][0]["task_id"]}


async def test_a_folders_name_ending_in_n_with_no_link_beside_it_is_a_session_of_its_own(connect, tmp_path):
    """The review: ``_N`` was always read as the stand-in of the folder without it, so an agent's second batch
    ``outputs/<d>-ugc-batch_2`` was saved into batch 1's folder, and list_tasks by it listed batch 1's task. Without a
    link of that name, ``x_2`` is a name of its own (``<d>-x-2``), and each is listed alone."""
    day = date.today().isoformat()
    first, second = f"outputs/{day}-ugc-batch", f"outputs/{day}-ugc-batch_2"
    async with connect(elicitation=answering()) as client:
        one = await _finished(client, "generate_image", {**STILL, "session": first})
        two = await _finished(client, "generate_image", {**STILL, "session": second})
        by_first, by_second = await _listed(client, first), await _listed(client, second)
    assert _folder(one) == f"outputs/{day}-ugc-batch"
    assert _folder(two) == f"outputs/{day}-ugc-batch-2"
    assert by_first == {one["task_id"]}
    assert by_second == {two["task_id"]}


async def test_a_label_naming_an_existing_folder_is_that_folder_whatever_its_day(connect, tmp_path):
    """The review: a server in another time zone (or past midnight) refused ``outputs/<d>-launch`` as "more than a
    day after today" while that folder existed, writable, holding this session's result: its results went elsewhere.
    A label naming a real folder there is that folder; the one-day rule is for making a new one."""
    ahead = (date.today() + timedelta(days=3)).isoformat()
    (tmp_path / "outputs" / f"{ahead}-launch").mkdir(parents=True)
    label = f"outputs/{ahead}-launch"
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**STILL, "session": label, "wait_seconds": 30})
        listed = await _listed(client, label)
    assert {str(PurePosixPath(path).parent) for path in _files(made)} == {label}, text_of(made)
    assert f"names the session folder {label}/: results go on in it." in text_of(made), text_of(made)
    assert listed == {made.structured_content["tasks"][0]["task_id"]}


async def test_list_tasks_by_a_folders_name_finds_labels_kept_before_the_folder_column(connect, tmp_path):
    """Searches by a folder's name compare the folder each label names, kept with its task: tasks an older kie-mcp
    kept (no folder beside the label), or whose label a hand edit changed, are found by the folder they name now."""
    day = date.today().isoformat()
    _saved_before(tmp_path, "kept-before", f"{day}-UGC.Batch", f"outputs/{day}-elsewhere/nano-banana-2_a_1.png")
    _saved_before(tmp_path, "edited", f"{day}-other", f"outputs/{day}-other/nano-banana-2_b_1.png")
    journal = Journal.for_workspace(tmp_path)
    try:
        journal.execute("UPDATE tasks SET session_folder = NULL WHERE task_id = 'kept-before'")
        journal.execute(f"UPDATE tasks SET session = 'outputs/{day}-ugc_batch' WHERE task_id = 'edited'")
    finally:
        journal.close()
    async with connect() as client:
        listed = await _listed(client, f"outputs/{day}-ugc-batch")
        other = await _listed(client, f"{day}-other")
    assert listed == {"kept-before", "edited"}
    assert other == {"edited"}  # its file is still in <d>-other
    journal = Journal.for_workspace(tmp_path)
    try:
        assert journal.query("SELECT COUNT(*) FROM tasks WHERE session_folder IS NULL")[0][0] == 0
    finally:
        journal.close()
