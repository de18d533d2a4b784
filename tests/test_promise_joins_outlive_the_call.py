"""stitch_videos answers within its wait_seconds, and the join goes on without the call: a host cuts a call after
60 s (Claude Desktop, Cursor, VS Code, the Inspector), and a captioned join of 50 clips takes longer. The answer then
says status=joining and where the join is saved; the same call again gets it, never a second join; a call the host
cancelled leaves its join running to the end; a failed or stopped join leaves no file and no folder it made.

The joins here are slowed by their clips (a few seconds of re-encoding with captions), never by timing: a wait of 0
answers before any join could end."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import LoggingMessageNotificationParams

from kie_mcp.server import create_server

from .conftest import dated, text_of
from .test_promise_host_retries import cut_off
from .test_stitch import _make

CAPTIONS = [{"start": 0, "end": 3, "text": "Hello"}]


@pytest.fixture(scope="module")
def slow_clips(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three clips whose join with captions is a re-encode of a few seconds."""
    folder = tmp_path_factory.mktemp("slow")
    return [
        _make(ffmpeg, folder / f"c{n}.mp4", size="960x540", rate=30, audio=True, source="testsrc2", seconds=8)
        for n in range(3)
    ]


def _in_workspace(workspace: Path, clips: list[Path]) -> list[str]:
    for clip in clips:
        shutil.copyfile(clip, workspace / clip.name)
    return [clip.name for clip in clips] * 2


def _videos(workspace: Path) -> list[Path]:
    """The joined videos and their sidecars under outputs/ (hidden files are temporary ones, thumbnails; the
    gallery's pages are not joins)."""
    outputs = workspace / "outputs"
    found = outputs.rglob("*") if outputs.exists() else []
    return sorted(p for p in found if p.suffix in (".mp4", ".json") and not p.name.startswith("."))


def _writing(workspace: Path) -> list[Path]:
    """Joins being written now: ffmpeg's temporary files."""
    outputs = workspace / "outputs"
    return list(outputs.rglob(".*.part-*")) if outputs.exists() else []


async def test_a_join_longer_than_the_wait_answers_joining_with_its_path_then_the_join(connect, slow_clips, tmp_path):
    clips = _in_workspace(tmp_path, slow_clips)
    arguments: dict[str, Any] = {"clips": clips, "session": "reel", "output_name": "cut", "captions": CAPTIONS}
    async with connect() as client:
        first = await client.call_tool("stitch_videos", {**arguments, "wait_seconds": 0})
        joined = await client.call_tool("stitch_videos", {**arguments, "wait_seconds": 50})
        again = await client.call_tool("stitch_videos", {**arguments, "wait_seconds": 0})
    running = first.structured_content
    assert not first.is_error, text_of(first)
    assert running["status"] == "joining" and running["duration"] is None
    assert dated(running["path"]) == "outputs/TODAY-reel/cut.mp4"
    assert "re-encoding 6 clips with captions" in running["message"]
    said = "call stitch_videos again with the same arguments (it is not joined twice) to get it; it is saved as "
    assert said + running["path"] in running["message"]
    assert not joined.is_error, text_of(joined)
    assert joined.structured_content["status"] == "joined"
    assert joined.structured_content["path"] == running["path"]
    assert joined.structured_content["duration"] == pytest.approx(48, abs=1)
    assert again.structured_content == joined.structured_content  # ended: answered at once with the same join
    folder = tmp_path / running["path"]
    assert [p.name for p in _videos(tmp_path)] == ["cut.json", "cut.mp4"], "joined once: one video, one sidecar"
    assert folder.is_file()


async def test_a_join_whose_call_the_host_cancelled_is_still_saved_and_told(settings, transport, slow_clips, mode):
    """The host's timeout cancels the call while ffmpeg runs: the join goes on and is saved, a handshake-era client
    hears so in a log message, and the same call again answers with that join, never a second one."""
    clips = _in_workspace(settings.workspace, slow_clips)
    lines: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    arguments = {"clips": clips, "session": "reel", "output_name": "cut", "captions": CAPTIONS}
    async with Client(create_server(settings, transport=transport), mode=mode, logging_callback=on_log) as client:

        async def call() -> None:
            await client.call_tool("stitch_videos", arguments)
            raise AssertionError("the join ended before the host gave up on the call; make the clips longer")

        async def writing() -> bool:  # ffmpeg has begun writing the join
            return bool(_writing(settings.workspace))

        await cut_off(call, writing, within=30)  # the host's timeout
        with anyio.fail_after(60):
            while not any(p.suffix == ".mp4" for p in _videos(settings.workspace)):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        if mode == "legacy":
            with anyio.fail_after(10):
                while not any("Joined:" in line for line in lines):  # noqa: ASYNC110 - the client's callback
                    await anyio.sleep(0.02)
        repeated = await client.call_tool("stitch_videos", {**arguments, "wait_seconds": 50})  # its end, if not yet
    assert not repeated.is_error, text_of(repeated)
    assert repeated.structured_content["status"] == "joined"
    assert [p.name for p in _videos(settings.workspace)] == ["cut.json", "cut.mp4"]
    assert _writing(settings.workspace) == []
    if mode == "legacy":  # a 2026-07-28 client hears it with a call that opts in to log messages
        said = [line for line in lines if "Joined:" in line]
        assert said and "reel/cut.mp4 is saved" in said[0]


async def test_a_failed_join_leaves_no_file_and_no_folder_and_is_told_once(connect, ffmpeg, tmp_path):
    """A join ffmpeg fails (a clip whose frames are damaged) leaves no partial file and not the session folder it
    made; its error is the answer of the same call repeated (once: after that, the call joins again)."""
    _make(ffmpeg, tmp_path / "good.mp4", size="256x256", rate=30, audio=False, source="testsrc2")
    damaged = _make(ffmpeg, tmp_path / "damaged.mp4", size="320x240", rate=24, audio=True)
    data = bytearray(damaged.read_bytes())
    mdat = data.find(b"mdat")  # moov before mdat (faststart): it still probes as a video
    data[mdat + 4 :] = bytes(len(data) - mdat - 4)
    damaged.write_bytes(bytes(data))
    arguments = {"clips": ["damaged.mp4", "good.mp4"], "session": "doomed"}
    outputs = tmp_path / "outputs"
    async with connect() as client:
        refused = await client.call_tool("stitch_videos", {"clips": ["good.mp4"], "session": "doomed"})
        failed_now = await client.call_tool("stitch_videos", arguments)
        assert failed_now.is_error and "ffmpeg failed" in text_of(failed_now), text_of(failed_now)
        assert not outputs.exists() or list(outputs.iterdir()) == [], list(outputs.rglob("*"))
        first = await client.call_tool("stitch_videos", {**arguments, "wait_seconds": 0})  # told: joined again
        failed = await client.call_tool("stitch_videos", {**arguments, "wait_seconds": 50})
        retried = await client.call_tool("stitch_videos", {**arguments, "wait_seconds": 50})
    assert refused.is_error and "at least two clips" in text_of(refused)
    assert first.structured_content["status"] == "joining", text_of(first)
    assert failed.is_error and "ffmpeg failed" in text_of(failed), text_of(failed)
    assert "Traceback" not in text_of(failed)
    assert retried.is_error and "ffmpeg failed" in text_of(retried)
    assert not outputs.exists() or list(outputs.iterdir()) == [], list(outputs.rglob("*"))


async def test_a_join_the_server_stops_leaves_no_partial_file(connect, slow_clips, tmp_path):
    """The server stops (its client quits) while a join runs: ffmpeg is ended with it, and nothing of the join is
    left, neither its file nor its folder; the next start joins it when the call is made again."""
    clips = _in_workspace(tmp_path, slow_clips)
    arguments = {"clips": clips, "session": "reel", "captions": CAPTIONS, "wait_seconds": 0}
    async with connect() as client:
        first = await client.call_tool("stitch_videos", arguments)
        with anyio.fail_after(30):
            while not _writing(tmp_path):  # noqa: ASYNC110 - ffmpeg has begun writing the join
                await anyio.sleep(0.02)
    assert first.structured_content["status"] == "joining", text_of(first)
    assert _writing(tmp_path) == [] and _videos(tmp_path) == []
    assert not (tmp_path / first.structured_content["path"]).parent.exists()


async def test_two_servers_on_one_workspace_never_promise_the_same_file(settings, transport, slow_clips, mode):
    """Two servers on one workspace join other clips under one name at once: each answer names its own file, from
    "joining" on, and each log line the file its join made (the name is claimed on disk as a join starts)."""
    clips = _in_workspace(settings.workspace, slow_clips)
    lines: dict[str, list[str]] = {"a": [], "b": []}

    def heard(who: str) -> Any:
        async def on_log(params: LoggingMessageNotificationParams) -> None:
            lines[who].append(str(params.data))

        return on_log

    first = {"clips": clips[:2], "session": "reel", "output_name": "final", "captions": CAPTIONS}
    second = {**first, "clips": clips[1:3]}
    async with (
        Client(create_server(settings, transport=transport), mode=mode, logging_callback=heard("a")) as a,
        Client(create_server(settings, transport=transport), mode=mode, logging_callback=heard("b")) as b,
    ):
        a_first = await a.call_tool("stitch_videos", {**first, "wait_seconds": 0})
        b_first = await b.call_tool("stitch_videos", {**second, "wait_seconds": 0})
        a_done = await a.call_tool("stitch_videos", {**first, "wait_seconds": 50})
        b_done = await b.call_tool("stitch_videos", {**second, "wait_seconds": 50})
        if mode == "legacy":
            with anyio.fail_after(10):
                while not (lines["a"] and lines["b"]):  # noqa: ASYNC110 - the clients' callbacks
                    await anyio.sleep(0.02)
    promised = [a_first.structured_content["path"], b_first.structured_content["path"]]
    assert a_first.structured_content["status"] == b_first.structured_content["status"] == "joining"
    assert promised[0] != promised[1], "both servers promised one file"
    assert [a_done.structured_content["path"], b_done.structured_content["path"]] == promised
    assert [p.name for p in _videos(settings.workspace)] == ["final-2.json", "final-2.mp4", "final.json", "final.mp4"]
    assert not list((settings.workspace / "outputs").rglob(".*.joining")), "no claim is left once the joins end"
    if mode == "legacy":
        assert f"Joined: {promised[0]} is saved" in lines["a"][0]
        assert f"Joined: {promised[1]} is saved" in lines["b"][0]


async def test_a_kept_join_is_not_answered_with_another_file_saved_under_its_name(connect, slow_clips, tmp_path):
    """A join's video is deleted and another join is saved under its name: the first request again is joined
    again, never answered with the other join's file."""
    clips = _in_workspace(tmp_path, slow_clips)
    first = {"clips": clips[:2], "session": "reel", "output_name": "final", "wait_seconds": 50}
    other = {**first, "clips": clips[2:4]}
    async with connect() as client:
        made = await client.call_tool("stitch_videos", first)
        video = tmp_path / made.structured_content["path"]
        video.unlink()
        video.with_suffix(".json").unlink()
        replaced = await client.call_tool("stitch_videos", other)
        again = await client.call_tool("stitch_videos", first)
    assert replaced.structured_content["path"] == made.structured_content["path"]  # the name was free again
    assert again.structured_content["status"] == "joined", text_of(again)
    assert again.structured_content["path"] != replaced.structured_content["path"], "answered with the other's file"
    assert (tmp_path / again.structured_content["path"]).is_file()


async def test_at_most_two_joins_run_at_once_and_a_ninth_waiting_is_refused(connect, slow_clips, tmp_path):
    """Quick calls of distinct joins: two run at once and the others wait, their answers saying behind how many;
    with eight running or waiting, a new one is refused at once and makes nothing."""
    clips = _in_workspace(tmp_path, slow_clips)
    async with connect() as client:
        answers = [
            await client.call_tool(
                "stitch_videos", {"clips": clips[:2], "output_name": f"x{n}", "captions": CAPTIONS, "wait_seconds": 0}
            )
            for n in range(9)
        ]
        writing = 0
        with anyio.move_on_after(2):
            while True:
                writing = max(writing, len(_writing(tmp_path)))
                await anyio.sleep(0.02)
    for answer in answers[:8]:
        assert answer.structured_content["status"] == "joining", text_of(answer)
    assert "it waits behind 2 other joins (at most 2 run at once)" in answers[2].structured_content["message"]
    assert "it waits behind 7 other joins" in answers[7].structured_content["message"]
    refused = answers[8]
    assert refused.is_error, text_of(refused)
    assert "8 joins are running or waiting; ask again once one has finished" in text_of(refused)
    assert "Traceback" not in text_of(refused)
    assert 0 < writing <= 2, f"{writing} joins written at once"
    assert not any(p.name.endswith("x8") for p in (tmp_path / "outputs").iterdir()), "the refused join made a folder"
