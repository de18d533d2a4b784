"""A paid result always has a place in outputs/, or nothing is spent.

The audit: with outputs/ a link to an external disk that is not mounted, check_credits and estimate_cost said
nothing, generate_video sent its create (60 credits) and answered as a success, and every save failed with "Could not
create the folder .../outputs/2026-... (File exists). Check the workspace path and its permissions", naming neither
the link nor where it leads. The same with outputs/ a plain file, a loop of links or a read-only disk. Now, while
results are saved as they exist (KIE_DOWNLOAD=always), such an outputs/ is refused before anything is priced, asked,
uploaded or sent, in words saying what is wrong and what to do, and check_credits says the same; with saving off
nothing is refused; and an outputs/ that breaks after a create is named as such by the save's error, the result
saved once it is mended.

Through the real MCP client against the simulator, the protocol eras taking turns case by case.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp.types import ElicitResult

from .conftest import answering, eras_in_turn, text_of
from .test_inputs import PNG, uploads

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symbolic links, mounts and POSIX permissions")

VIDEO = {"prompt": "a cat walks along a sunny wall", "model": "veo3_fast"}
IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit", "images": ["references/apple.png"]}


def _unmounted(workspace: Path) -> str:
    """outputs/ -> a folder on an external disk that is not mounted: its mount point is there, empty."""
    mount_point = workspace.parent / f"{workspace.name}-media" / "usb-disk"
    mount_point.mkdir(parents=True)
    target = mount_point / "kie-results"
    (workspace / "outputs").symlink_to(target, target_is_directory=True)
    return f"outputs/ in the workspace is a symbolic link to {target}, which is not there: is it on a disk that is not"


def _file(workspace: Path) -> str:
    (workspace / "outputs").write_text("notes\n")
    return "outputs/ in the workspace is a file, not a folder"


def _loop(workspace: Path) -> str:
    (workspace / "outputs").symlink_to(workspace / "outputs")
    return "a loop of links"


def _read_only_disk(workspace: Path) -> str:
    outputs = workspace / "outputs"
    outputs.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(outputs)]
    try:
        done = subprocess.run(command, check=False, capture_output=True)
    except OSError as err:  # no mount command here
        pytest.skip(f"cannot mount a read-only tmpfs here: {err}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip() or 'not root'}")
    return "outputs/ in the workspace is on a read-only disk"


def _not_writable(workspace: Path) -> str:
    if os.geteuid() == 0:
        pytest.skip("root writes whatever a folder's permissions say (the read-only disk case runs instead)")
    (workspace / "outputs").mkdir(mode=0o555)
    return "outputs/ in the workspace cannot be written by this user"


BROKEN = {
    "unmounted": _unmounted,
    "file": _file,
    "loop": _loop,
    "read-only-disk": _read_only_disk,
    "not-writable": _not_writable,
}


@pytest.fixture
def unmount(tmp_path):
    """Whatever a test mounted on the workspace's outputs/ is unmounted after it."""
    yield
    if os.path.ismount(tmp_path / "outputs"):
        subprocess.run(["umount", "-l", str(tmp_path / "outputs")], check=False)
    if (tmp_path / "outputs").is_dir() and not (tmp_path / "outputs").is_symlink():
        (tmp_path / "outputs").chmod(0o755)


@eras_in_turn("broken", list(BROKEN))
async def test_results_outputs_cannot_take_are_refused_before_anything_is_spent(
    connect, controls, tmp_path, broken, unmount
):
    """check_credits names what is wrong with outputs/; estimate_cost and every generation refuse before a quote,
    a form, an upload or a create, saying what is wrong (the missing link target by name) and that nothing was sent
    or charged. With saving off (KIE_DOWNLOAD=never) nothing goes into outputs/: nothing is refused or warned of."""
    said = BROKEN[broken](tmp_path)
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "apple.png").write_bytes(PNG)
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        credits = await client.call_tool("check_credits", {})
        estimate = await client.call_tool("estimate_cost", VIDEO)
        video = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
        edit = await client.call_tool("generate_image", EDIT)
    assert not credits.is_error and said in text_of(credits), text_of(credits)
    assert "Results cannot be saved" in text_of(credits) and "before anything is sent or charged" in text_of(credits)
    for answer in (estimate, video, edit):
        assert answer.is_error and said in text_of(answer), text_of(answer)
        assert "Nothing was sent or charged" in text_of(answer) and "File exists" not in text_of(answer)
        assert answer.structured_content is None or not answer.structured_content.get("quote")
    if broken == "unmounted":
        assert "not mounted?" in text_of(video)
    assert asked == []  # no confirmation form was shown
    assert await controls.creates() == [] and await uploads(controls) == []

    async with connect(elicitation=answering(), download=False) as client:
        credits = await client.call_tool("check_credits", {})
        made = await client.call_tool("generate_image", IMAGE)
    assert "Results cannot be saved" not in text_of(credits), text_of(credits)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1


async def test_an_outputs_disk_gone_after_the_create_is_named_and_the_result_saved_once_it_is_back(
    connect, controls, tmp_path, tmp_path_factory
):
    """The disk outputs/ links to goes away while a paid task runs: saving its result says outputs/ leads to a
    folder that is not there and asks whether its disk is mounted (not "File exists"), the task is still answered
    with its result links, and once the disk is back the result is saved there."""
    disk = tmp_path_factory.mktemp("usb-disk") / "kie-results"
    disk.mkdir()
    (tmp_path / "outputs").symlink_to(disk, target_is_directory=True)
    await controls.post("clock/speed", {"speed": 0})  # the task runs until the disk has gone
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 0})
        assert made.structured_content["status"] == "submitted", text_of(made)
        task_id = made.structured_content["tasks"][0]["task_id"]
        away = disk.rename(disk.with_name("unplugged"))
        await controls.post("clock/speed", {"speed": 1000})
        unsaved = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
        away.rename(disk)  # plugged in again
        saved = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
    said = text_of(unsaved)
    assert f"outputs/ in the workspace is a symbolic link to {disk}, which is not there" in said, said
    assert "not mounted?" in said and "File exists" not in said and "stays on KIE" in said
    task = unsaved.structured_content["task"]
    assert task["state"] == "succeeded" and task["result_urls"] and not task["files"]
    [path] = saved.structured_content["task"]["files"]
    assert (disk / Path(path).relative_to("outputs")).is_file(), text_of(saved)


def _plugged_disk(workspace: Path, parent: Path) -> Path:
    """outputs/ -> a folder on an external disk, there for now (``_unplug`` takes it away)."""
    disk = parent / "kie-results"
    disk.mkdir()
    (workspace / "outputs").symlink_to(disk, target_is_directory=True)
    return disk


def _unplug(disk: Path) -> None:
    disk.rename(disk.with_name("unplugged"))


async def test_a_repeated_paid_call_still_shows_its_task_while_outputs_cannot_take_results(
    connect, controls, tmp_path, tmp_path_factory
):
    """The review: a call approved by a quote and repeated (its answer lost) after outputs/' disk went away was told
    "Nothing was sent or charged", and its task id was not given: the check of outputs/ ran before the server knew
    the call creates nothing. A repeat is answered as ever, naming the task the quote bought; a new request is
    still refused before it is priced."""
    disk = _plugged_disk(tmp_path, tmp_path_factory.mktemp("usb-disk"))
    async with connect() as client:  # no forms: the quote approves
        quote = await client.call_tool("estimate_cost", VIDEO)
        approved = {**VIDEO, "quote_id": quote.structured_content["quote"]["quote_id"], "wait_seconds": 0}
        first = await client.call_tool("generate_video", approved)
        [task_id] = [task["task_id"] for task in first.structured_content["tasks"]]
        _unplug(disk)
        again = await client.call_tool("generate_video", approved)
        other = await client.call_tool("generate_video", {**VIDEO, "prompt": "a dog on a wall", "wait_seconds": 0})
    assert not again.is_error and task_id in text_of(again), text_of(again)
    assert "Nothing was sent or charged" not in text_of(again)
    assert other.is_error and "which is not there" in text_of(other) and "Nothing was sent or charged" in text_of(other)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("mode", ["auto"])  # the answer comes back in a retried request
async def test_an_answered_confirmation_sent_again_shows_its_task_while_outputs_cannot_take_results(
    connect, controls, tmp_path, tmp_path_factory
):
    """The review: a host that sent an answered (yes) request again after outputs/' disk went away was told
    "Nothing was sent or charged" with no task id, though the first send had bought it. The repeat answers with the
    task, as it does with the disk there."""
    disk = _plugged_disk(tmp_path, tmp_path_factory.mktemp("usb-disk"))
    arguments = {**VIDEO, "wait_seconds": 0}
    async with connect(elicitation=answering()) as client:
        first = await client.session.call_tool("generate_video", arguments, allow_input_required=True)
        yes = {key: ElicitResult(action="accept", content={"confirm": True}) for key in first.input_requests}
        done = await client.call_tool(
            "generate_video", arguments, input_responses=yes, request_state=first.request_state
        )
        [task_id] = [task["task_id"] for task in done.structured_content["tasks"]]
        _unplug(disk)
        again = await client.call_tool(
            "generate_video", arguments, input_responses=yes, request_state=first.request_state
        )
    assert not again.is_error and task_id in text_of(again), text_of(again)
    assert "created and charged nothing new" in text_of(again)
    assert len(await controls.creates()) == 1


async def test_a_hung_outputs_disk_never_stalls_the_other_calls(connect, tmp_path, monkeypatch):
    """The review: whether outputs/ can take a file was asked on the event loop, so an outputs/ on a hung network
    or FUSE mount (its statvfs waiting, here until list_tasks answered, 10 s at most) stalled every other call of the
    server: list_tasks waited for the estimate. It is asked in a worker thread: list_tasks answers at once."""
    import threading
    import time

    (tmp_path / "outputs").mkdir()
    real = os.statvfs
    hang, answered = 10.0, threading.Event()

    def hung(path: os.PathLike[str] | str) -> os.statvfs_result:
        if str(path).endswith("outputs"):
            answered.wait(hang)  # on the event loop, nothing could set it: the whole 10 s
        return real(path)

    async with connect(elicitation=answering()) as client:
        await client.call_tool("list_tasks", {})
        monkeypatch.setattr(os, "statvfs", hung)
        took: dict[str, float] = {}
        async with anyio.create_task_group() as group:

            async def estimate() -> None:
                await client.call_tool("estimate_cost", IMAGE)

            started = time.monotonic()  # the client shares the server's event loop: a stall stops its clock too
            group.start_soon(estimate)
            await anyio.sleep(0.3)
            await client.call_tool("list_tasks", {})
            took["list_tasks"] = time.monotonic() - started
            answered.set()  # the disk answers: the estimate goes on
    assert took["list_tasks"] < hang / 2, took  # due at 0.3 s, well before the hang ends


async def test_an_expired_quote_gets_no_fresh_quote_while_outputs_cannot_take_results(
    connect, controls, tmp_path, tmp_path_factory
):
    """The review's leftover: a generate call with a quote_id that had expired was answered with a fresh quote
    (confirmation_required) without asking whether outputs/ could take the result, so with its disk gone a quote
    came back for a request that could not be saved. It is refused like any request that would be quoted: nothing
    sent, no quote."""
    disk = _plugged_disk(tmp_path, tmp_path_factory.mktemp("usb-disk"))
    async with connect(quote_ttl_seconds=0.2) as client:  # no forms: a quote approves
        estimate = await client.call_tool("estimate_cost", VIDEO)
        quote_id = estimate.structured_content["quote"]["quote_id"]
        _unplug(disk)
        await anyio.sleep(0.4)  # the quote has expired
        late = await client.call_tool("generate_video", {**VIDEO, "quote_id": quote_id, "wait_seconds": 0})
    assert late.is_error and "which is not there" in text_of(late), text_of(late)
    assert "Nothing was sent or charged" in text_of(late)
    assert late.structured_content is None or not late.structured_content.get("quote")
    assert await controls.creates() == []


async def test_estimates_in_a_row_ask_the_disk_once_and_the_spend_asks_again(
    connect, controls, tmp_path, tmp_path_factory, monkeypatch
):
    """An estimate asks whether outputs/ can take a result in a worker thread, a good part of its time: estimates
    in a row (an agent comparing settings) ask once, the plan's own look at outputs/ included, and a fine answer
    stands a moment for estimates only. The spend that follows always asks again: a disk gone since the estimate is
    refused before anything is sent, whatever the estimate was told."""
    disk = _plugged_disk(tmp_path, tmp_path_factory.mktemp("usb-disk"))
    outputs = str(tmp_path / "outputs")
    asked: list[str] = []
    real = os.statvfs

    def counted(path: os.PathLike[str] | str) -> os.statvfs_result:
        if str(path) == outputs:
            asked.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "statvfs", counted)
    # The two estimates come within the moment a fine answer stands however loaded the machine (2 s ran out in CI).
    monkeypatch.setattr("kie_mcp.media.saved.FINE_SECONDS", 60.0)
    async with connect() as client:  # no forms: a quote approves
        first = await client.call_tool("estimate_cost", VIDEO)
        second = await client.call_tool("estimate_cost", {**VIDEO, "prompt": "a dog walks along a sunny wall"})
        assert len(asked) == 1, asked
        _unplug(disk)
        quote_id = second.structured_content["quote"]["quote_id"]
        spent = await client.call_tool(
            "generate_video", {**VIDEO, "prompt": "a dog walks along a sunny wall", "quote_id": quote_id}
        )
    assert not first.is_error and not second.is_error, text_of(second)
    assert spent.is_error and "which is not there" in text_of(spent), text_of(spent)
    assert "Nothing was sent or charged" in text_of(spent)
    assert await controls.creates() == []
