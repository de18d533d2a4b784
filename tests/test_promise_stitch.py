"""stitch_videos keeps upload_file's promises: no private file and nothing outside the allowed folders reaches its
output, no saved result is ever replaced, and bad input gets an error that says what is wrong."""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest

from kie_mcp.media import stitch as stitch_mod
from kie_mcp.media.stitch import Caption, StitchError, find_ffmpeg, parse_probe, probe, stitch

from .conftest import answering, dated, text_of


@pytest.fixture
def ffmpeg() -> str:
    try:
        return find_ffmpeg()
    except StitchError as err:
        pytest.skip(str(err))


def _clip(ffmpeg: str, path: Path, *, size: str = "64x64", seconds: int = 1, container: str = "mp4") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
    command += [f"testsrc=size={size}:rate=10:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast"]
    subprocess.run([*command, "-pix_fmt", "yuv420p", "-f", container, str(path)], check=True, capture_output=True)
    return path


def _videos_in(folder: Path) -> list[Path]:
    return sorted((folder / "outputs").rglob("*.mp4")) if (folder / "outputs").exists() else []


def _duration(ffmpeg: str, path: Path) -> float:
    command = [ffmpeg, "-hide_banner", "-i", str(path)]
    report = subprocess.run(command, check=False, capture_output=True, text=True).stderr
    hours, minutes, seconds = report.split("Duration: ")[1].split(",")[0].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


# -- 1. private files are never read ---------------------------------------------------------------------------


async def test_stitch_never_reads_private_files(connect, ffmpeg, tmp_path):
    _clip(ffmpeg, tmp_path / ".private" / "secret.mp4")
    _clip(ffmpeg, tmp_path / "logs" / "screen.mp4")
    _clip(ffmpeg, tmp_path / "ok.mp4")
    (tmp_path / ".env").write_text("KIE_API_KEY=sk-live-SECRET\n")
    (tmp_path / "innocent.mp4").symlink_to(tmp_path / ".private" / "secret.mp4")  # judged by its target
    async with connect() as client:
        results = {
            clip: await client.call_tool("stitch_videos", {"clips": ["ok.mp4", clip], "session": "x"})
            for clip in (".private/secret.mp4", "logs/screen.mp4", ".env", "innocent.mp4")
        }
    for clip, result in results.items():
        assert result.is_error, (clip, text_of(result))
        assert "is private" in text_of(result) and "never uploads or serves" in text_of(result), text_of(result)
    assert "sk-live-SECRET" not in "".join(text_of(r) for r in results.values())
    assert _videos_in(tmp_path) == []


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_saved_video_swapped_for_a_link_outside_is_never_joined_by_task_id(
    connect, ffmpeg, tmp_path, tmp_path_factory
):
    """A task's saved video is judged like a clip given by path: replaced in outputs/ by a link to a video outside
    the allowed folders, it is refused, never read, never served back through kie://outputs/."""
    secret = _clip(ffmpeg, tmp_path_factory.mktemp("private-videos") / "family.mp4", size="96x96")
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {"prompt": "waves", "model": "veo3_fast"})
        task_id = made.structured_content["tasks"][0]["task_id"]
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
        saved = tmp_path / next(f for f in done.structured_content["task"]["files"] if f.endswith(".mp4"))
        saved.unlink()
        saved.symlink_to(secret)  # the swap
        joined = await client.call_tool("stitch_videos", {"clips": [task_id, task_id]})
    assert joined.is_error and "outside the folders kie-mcp may read" in text_of(joined), text_of(joined)
    assert [video for video in _videos_in(tmp_path) if "stitched" in video.name] == []


async def test_a_clip_swapped_for_a_link_after_its_check_is_never_read(ffmpeg, tmp_path, outside, monkeypatch):
    """Race: the clip is replaced by a link to a file outside after it was checked and opened. ffmpeg reads the
    file that was checked (held open, given to ffmpeg by descriptor), never what the name leads to by then."""
    clip = _clip(ffmpeg, tmp_path / "clip.mp4", size="64x64", seconds=1)
    moved = tmp_path / "clip-before.mp4"
    real_hold = stitch_mod._hold

    def held_then_swapped(paths: list[Path]) -> Any:
        held = real_hold(paths)
        clip.rename(moved)
        clip.symlink_to(outside)  # 96x96, 3 seconds, outside every allowed folder
        return held

    monkeypatch.setattr(stitch_mod, "_hold", held_then_swapped)
    done = await stitch([clip, clip], tmp_path / "joined.mp4")
    joined = await probe(ffmpeg, done.path)
    assert (joined.width, joined.height) == (64, 64)  # the checked clip's frames, not the 96x96 file outside
    assert joined.duration == pytest.approx(2.0, abs=0.3)  # two 1-second clips, not 3-second ones


async def test_a_clip_swapped_for_a_link_before_it_is_opened_is_refused(ffmpeg, tmp_path, outside, monkeypatch):
    clip = _clip(ffmpeg, tmp_path / "clip.mp4")
    real_validate = stitch_mod._validate

    def checked_then_swapped(*args: Any) -> Any:
        checked = real_validate(*args)
        clip.unlink()
        clip.symlink_to(outside)
        return checked

    monkeypatch.setattr(stitch_mod, "_validate", checked_then_swapped)
    with pytest.raises(StitchError, match=r"changed since it was checked.*symbolic link"):
        await stitch([clip, clip], tmp_path / "joined.mp4")
    assert not (tmp_path / "joined.mp4").exists()


# -- 2. only single video files: no playlist reaches ffmpeg --------------------------------------------------------


@pytest.fixture
def outside(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-second video outside every allowed folder (the workspace is another tmp_path)."""
    return _clip(ffmpeg, tmp_path_factory.mktemp("outside") / "private.ts", size="96x96", seconds=3, container="mpegts")


def _playlist(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\nfile://{target}\n#EXT-X-ENDLIST\n")
    return path


async def test_stitch_takes_only_single_video_files_never_playlists(connect, ffmpeg, tmp_path, outside):
    _clip(ffmpeg, tmp_path / "ok.mp4")
    _playlist(tmp_path / "references" / "reel.m3u8", outside)
    _playlist(tmp_path / "references" / "reel.mp4", outside)  # a video's name does not make it one
    (tmp_path / "references" / "list.mp4").write_text(f"ffconcat version 1.0\nfile '{outside}'\n")
    async with connect() as client:
        results = [
            await client.call_tool("stitch_videos", {"clips": ["ok.mp4", clip]})
            for clip in ("references/reel.m3u8", "references/reel.mp4", "references/list.mp4")
        ]
    for result in results:
        assert result.is_error, text_of(result)
        assert "is not a video (its bytes are plain text)" in text_of(result), text_of(result)
    assert _videos_in(tmp_path) == []


@pytest.mark.parametrize("join", ["copy", "reencode"])
async def test_ffmpeg_never_follows_a_playlist_that_passed_the_check(ffmpeg, tmp_path, outside, monkeypatch, join):
    """A file swapped for a playlist after its bytes were checked still cannot make ffmpeg read other files: ffmpeg
    opens only local single-file video formats, in the probe, the re-encode and the copy join's list alike."""
    playlist = _playlist(tmp_path / "reel.m3u8", outside)  # ffmpeg reads a playlist as one only by that name
    clip = _clip(ffmpeg, tmp_path / "ok.mp4")
    with pytest.raises(StitchError, match=r"reel.m3u8 is not a video \(its bytes are plain text\)"):
        await stitch([clip, playlist], tmp_path / "checked.mp4")
    with pytest.raises(StitchError, match="not a video ffmpeg can read"):
        await probe(ffmpeg, playlist)

    monkeypatch.setattr(stitch_mod, "_single_video", lambda given, path: None, raising=False)  # the swap
    real_probe = stitch_mod.probe

    async def probed_before_the_swap(exe: str, path: Path, **held: Any) -> stitch_mod.Probe:
        if path != playlist:
            return await real_probe(exe, path, **held)
        source = held["held"].sources[held["position"]]  # what ffmpeg opens for it: its held descriptor
        return replace(await real_probe(exe, clip), path=path, source=source, fps="10" if join == "copy" else "25")

    monkeypatch.setattr(stitch_mod, "probe", probed_before_the_swap)
    output = tmp_path / "joined.mp4"
    with pytest.raises(StitchError, match="ffmpeg failed"):  # copy: the list's clip is refused, then the re-encode
        await stitch([clip, playlist], output)
    assert not output.exists()


def test_a_probe_that_reads_a_playlist_is_refused():
    report = """Input #0, hls, from 'reel.m3u8':
  Duration: 00:00:03.00, start: 1.400000, bitrate: 0 kb/s
  Stream #0:0: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p(progressive), 96x96, 10 fps, 10 tbr, 90k tbn
"""
    with pytest.raises(StitchError, match=r"not a single video file: ffmpeg reads it as 'hls'"):
        parse_probe(Path("reel.m3u8"), report)


# -- 3. a saved result is never replaced ---------------------------------------------------------------------------


async def _saved_video(client: Any, session: str) -> tuple[str, str]:
    made = await client.call_tool("generate_video", {"prompt": "waves", "model": "veo3_fast", "session": session})
    task_id = made.structured_content["tasks"][0]["task_id"]
    done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
    return task_id, done.structured_content["task"]["files"][0]


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_stitch_never_replaces_a_saved_result(connect, controls, tmp_path):
    async with connect(elicitation=answering()) as client:
        first, _ = await _saved_video(client, "reel")
        paid, paid_file = await _saved_video(client, "reel")
        before = hashlib.sha256((tmp_path / paid_file).read_bytes()).hexdigest()
        name = Path(paid_file).stem
        joins = [  # two joins (an identical request is answered with its join, never joined twice)
            await client.call_tool("stitch_videos", {"clips": [first] * count, "session": "reel", "output_name": name})
            for count in (2, 3)
        ]
        again = await client.call_tool("stitch_videos", {"clips": [paid, paid], "session": "reel"})  # still its file
    assert hashlib.sha256((tmp_path / paid_file).read_bytes()).hexdigest() == before
    folder = Path(paid_file).parent.as_posix()
    assert [j.structured_content["path"] for j in joins] == [f"{folder}/{name}-2.mp4", f"{folder}/{name}-3.mp4"]
    assert "already exists and was kept as it was" in text_of(joins[0])
    assert not again.is_error, text_of(again)


async def test_a_join_never_replaces_a_file_without_hard_links(ffmpeg, tmp_path, monkeypatch):
    clip = _clip(ffmpeg, tmp_path / "a.mp4")
    target = tmp_path / "joined.mp4"
    target.write_bytes(b"an earlier result")

    def no_links(source: Any, destination: Any) -> None:
        raise PermissionError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(stitch_mod.os, "link", no_links)
    done = await stitch([clip, clip], target)
    assert target.read_bytes() == b"an earlier result"
    assert done.path == tmp_path / "joined-2.mp4" and _duration(ffmpeg, done.path) == pytest.approx(2.0, abs=0.2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "joined-2.mp4", "joined.mp4"]  # no leftovers


async def test_a_join_that_cannot_take_its_name_leaves_no_empty_file_behind(ffmpeg, tmp_path, monkeypatch):
    """No hard links, and the move onto the claimed name fails (an antivirus holding it, on Windows): the empty
    placeholder that claimed the name must not stay behind looking like a finished join."""
    clip = _clip(ffmpeg, tmp_path / "a.mp4")

    def no_links(source: Any, destination: Any) -> None:
        raise PermissionError(errno.EPERM, "hard links not supported")

    def held(source: Any, destination: Any) -> None:
        raise PermissionError(errno.EACCES, "the file is in use by another process")

    monkeypatch.setattr(stitch_mod.os, "link", no_links)
    monkeypatch.setattr(stitch_mod.os, "replace", held)
    with pytest.raises((StitchError, PermissionError)):
        await stitch([clip, clip], tmp_path / "joined.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]  # no placeholder, no temporary file


# -- 4. bad input gets an error that says what is wrong -----------------------------------------------------------


async def test_more_than_200_clips_are_refused_with_the_limit(connect, ffmpeg, tmp_path):
    _clip(ffmpeg, tmp_path / "a.mp4")
    async with connect() as client:
        many = await client.call_tool("stitch_videos", {"clips": ["a.mp4"] * 201})
    assert many.is_error and "at most 200" in text_of(many), text_of(many)
    with pytest.raises(StitchError, match=r"201 clips is more than one join takes \(at most 200\)"):
        await stitch([tmp_path / "a.mp4"] * 201, tmp_path / "out.mp4")
    assert _videos_in(tmp_path) == [] and not (tmp_path / "out.mp4").exists()


async def test_ffmpeg_that_cannot_start_is_reported_as_such_not_as_missing(tmp_path, monkeypatch):
    async def too_long(command: Any, **kwargs: Any) -> Any:
        raise OSError(errno.E2BIG, os.strerror(errno.E2BIG))

    monkeypatch.setattr(stitch_mod.anyio, "open_process", too_long)
    with pytest.raises(StitchError) as error:
        await stitch_mod._run([sys.executable, "-c", "pass"])
    assert "none was found" not in str(error.value) and "kie-mcp[video]" not in str(error.value)
    assert "command line was too long" in str(error.value)

    async def missing(command: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))

    monkeypatch.setattr(stitch_mod.anyio, "open_process", missing)
    with pytest.raises(StitchError, match=r"kie-mcp\[video\]"):  # a missing binary still gets the install hint
        await stitch_mod._run(["/no/such/ffmpeg"])


@pytest.mark.parametrize(("start", "end"), [(1e12, 1e13), (1e300, 1.5e300), (0, 1e308), (0, 86400.5)])
async def test_caption_times_beyond_a_day_are_refused_clearly(connect, ffmpeg, tmp_path, start, end):
    _clip(ffmpeg, tmp_path / "a.mp4")
    captions = [{"start": start, "end": end, "text": "hi"}]
    async with connect() as client:
        result = await client.call_tool("stitch_videos", {"clips": ["a.mp4"], "captions": captions})
    assert result.is_error and "at most 86400" in text_of(result), text_of(result)
    assert "captions[0]" in text_of(result)  # refused with the arguments, before any file is read
    assert "unexpected error" not in text_of(result)
    with pytest.raises(StitchError, match=r"finite and at most 86400 s"):
        await stitch([tmp_path / "a.mp4"], tmp_path / "out.mp4", captions=[Caption(start, end, "hi")])
    with pytest.raises(StitchError, match=r"finite and at most 86400 s"):
        await stitch([tmp_path / "a.mp4"], tmp_path / "out.mp4", captions=[Caption(0, float("inf"), "hi")])
    assert _videos_in(tmp_path) == [] and not (tmp_path / "out.mp4").exists()


async def test_a_caption_near_the_day_limit_is_still_taken(connect, ffmpeg, tmp_path):
    _clip(ffmpeg, tmp_path / "a.mp4")
    captions = [{"start": 0.1, "end": 86400, "text": "all day"}]
    async with connect() as client:
        result = await client.call_tool("stitch_videos", {"clips": ["a.mp4"], "captions": captions, "session": "d"})
    assert not result.is_error, text_of(result)
    assert dated(result.structured_content["path"]) == "outputs/TODAY-d/stitched-1-clips.mp4"


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_task_that_gives_no_clip_is_refused_saying_why_and_what_to_do(connect, controls, tmp_path, ffmpeg):
    """An image task and a failed one were both "has no saved video yet; check_task saves it once it has finished",
    which sent an agent to check_task for ever; a saved video deleted since said only that it was gone."""
    async with connect(elicitation=answering()) as client:
        image = await client.call_tool("generate_image", {"prompt": "a red apple", "model": "nano-banana-2"})
        made = await client.call_tool(
            "generate_video", {"prompt": "waves at dusk", "model": "veo3_fast", "wait_seconds": 40}
        )
        await controls.post("clock/speed", {"speed": 0})  # the next one is still running when it is made to fail
        failing = await client.call_tool("generate_video", {"prompt": "gulls", "model": "veo3_fast", "wait_seconds": 0})
        clip = made.structured_content["tasks"][0]
        failed = failing.structured_content["tasks"][0]["task_id"]
        await controls.post(f"tasks/{failed}", {"state": "fail", "fail_msg": "upstream timeout"})
        await client.call_tool("check_task", {"task_id": failed})
        (tmp_path / clip["files"][0]).unlink()
        answers = [
            await client.call_tool("stitch_videos", {"clips": [task_id, task_id]})
            for task_id in (image.structured_content["tasks"][0]["task_id"], failed, clip["task_id"])
        ]
    assert all(answer.is_error for answer in answers)
    assert "is an image task, not a video" in text_of(answers[0]), text_of(answers[0])
    assert "failed and has no video to join" in text_of(answers[1]), text_of(answers[1])
    assert f"check_task(task_id='{clip['task_id']}')" in text_of(answers[2]), text_of(answers[2])


async def test_a_refused_join_leaves_no_empty_session_folder_behind(connect, ffmpeg, tmp_path):
    """The audit: each refused stitch_videos call (one clip and no captions, captions that end before they start)
    left an empty outputs/<day>-<session>/ folder, one per typo of the session name. What is refused of the clips
    and captions alone is refused before the folder is made; one that was there before is left as it was (a folder
    is never removed after: another call may be about to save there, the review found)."""
    _clip(ffmpeg, tmp_path / "a.mp4")
    mine = tmp_path / "outputs" / f"{date.today().isoformat()}-mine"
    mine.mkdir(parents=True)
    backwards = [{"start": 2, "end": 1, "text": "x"}]
    async with connect() as client:
        refused = [
            await client.call_tool("stitch_videos", {"clips": ["a.mp4"], "session": "Summer Launch"}),
            await client.call_tool("stitch_videos", {"clips": ["a.mp4"], "session": "mine"}),
            await client.call_tool(
                "stitch_videos", {"clips": ["a.mp4", "a.mp4"], "session": "bad caption", "captions": backwards}
            ),
        ]
    assert all(result.is_error for result in refused), [text_of(r) for r in refused]
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == [mine.name]


async def test_a_refused_clip_outside_is_named_not_redacted_and_secrets_still_are(connect, ffmpeg, tmp_path):
    """ "refused clip '../../etc/passwd': '[redacted]' leads outside": the clip followed by "': '" read as a
    password to redact, hiding the path. The path is said as given; a password typed into a clip is still hidden."""
    _clip(ffmpeg, tmp_path / "a.mp4")
    async with connect() as client:
        outside = await client.call_tool("stitch_videos", {"clips": ["a.mp4", "../../etc/passwd"]})
        secret = await client.call_tool("stitch_videos", {"clips": ["a.mp4", "password=hunter2-very-secret"]})
    text = text_of(outside)
    assert outside.is_error and "'../../etc/passwd' leads outside the folders kie-mcp may read" in text, text
    assert "[redacted]" not in text, text
    assert secret.is_error and "hunter2-very-secret" not in text_of(secret), text_of(secret)


async def test_a_still_given_to_stitch_videos_says_nothing_was_joined_and_how_to_animate_it(connect, ffmpeg, tmp_path):
    """The audit: a saved still (.jpg) among the clips was refused with "... is not a video ... Nothing was
    uploaded.": a join uploads nothing, and the answer left out the way forward. By its path or by its task's id, the
    answer now says nothing was joined and to make a clip of the still first (generate_video with it in images)."""
    _clip(ffmpeg, tmp_path / "ok.mp4")
    async with connect(elicitation=answering()) as client:
        image = await client.call_tool("generate_image", {"prompt": "a red apple", "model": "nano-banana-2"})
        task = image.structured_content["tasks"][0]
        still = task["files"][0]
        by_path = await client.call_tool("stitch_videos", {"clips": [still, "ok.mp4"], "session": "apple"})
        by_id = await client.call_tool("stitch_videos", {"clips": [task["task_id"], "ok.mp4"], "session": "apple"})
    for answer in (by_path, by_id):
        assert answer.is_error, text_of(answer)
        assert "Nothing was joined." in text_of(answer) and "uploaded" not in text_of(answer), text_of(answer)
        assert "animate it first" in text_of(answer) and "generate_video(images=[" in text_of(answer), text_of(answer)
    assert f"generate_video(images=[{still!r}]" in text_of(by_path), text_of(by_path)
    assert _videos_in(tmp_path / "outputs") == []


# -- 5. an ffmpeg that cannot run, a disk that is full: said as such -----------------------------------------------


@pytest.mark.parametrize("stale", ["gone", "not executable"])
async def test_an_ffmpeg_setting_that_cannot_run_is_named_before_any_folder_is_made(
    connect, ffmpeg, tmp_path, monkeypatch, stale
):
    """The audit: with IMAGEIO_FFMPEG_EXE naming an ffmpeg that is not there (a stale setting), stitch_videos said
    "none was found" though one was named, and left an empty session folder. It names the setting and what is wrong
    with it, before anything is made."""
    _clip(ffmpeg, tmp_path / "a.mp4")
    named = tmp_path / "tools" / "ffmpeg"
    if stale == "not executable":
        named.parent.mkdir()
        named.write_text("#!/bin/sh\n")
        named.chmod(0o644)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(named))
    async with connect() as client:
        joined = await client.call_tool("stitch_videos", {"clips": ["a.mp4", "a.mp4"], "session": "reel"})
    text = text_of(joined)
    assert joined.is_error and "none was found" not in text, text
    why = "nothing is there" if stale == "gone" else "it is not an executable file"
    assert f"the one IMAGEIO_FFMPEG_EXE names ({named}) cannot run: {why}." in text, text
    assert "Point IMAGEIO_FFMPEG_EXE at an ffmpeg that runs, or unset it" in text, text
    assert not (tmp_path / "outputs").exists()  # a refused join makes no session folder


@pytest.fixture
def full_outputs(tmp_path):
    """The workspace's outputs/ on a 1 MiB tmpfs, filled to its last byte (root only; skipped elsewhere)."""
    from .test_promise_durability import fill

    outputs = tmp_path / "outputs"
    outputs.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(outputs)], check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    fill(outputs)
    yield outputs
    subprocess.run(["umount", "-l", str(outputs)], check=False)


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_join_a_full_disk_stopped_says_the_disk_is_full_and_is_not_encoded_again(
    connect, ffmpeg, tmp_path, monkeypatch, full_outputs
):
    """The audit: a stream copy the full disk stopped fell back to a whole re-encode, which wrote as much onto the
    same full disk and failed too, after minutes on long clips. Out of space, nothing is tried again: the answer says
    the disk is full, and nothing is left behind. (ffmpeg runs through a wrapper that logs each command line.)"""
    _clip(ffmpeg, tmp_path / "references" / "a.mp4", seconds=3)
    log = tmp_path / "ffmpeg-runs.log"
    wrapper = tmp_path / "ffmpeg-logged"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{ffmpeg}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(wrapper))
    async with connect() as client:
        joined = await client.call_tool(
            "stitch_videos", {"clips": ["references/a.mp4", "references/a.mp4"], "session": "s", "output_name": "big"}
        )
    text = text_of(joined)
    assert joined.is_error and "is full: free some space there and join again" in text, text
    writes = [run for run in log.read_text().splitlines() if " -f mp4 " in run]
    assert len(writes) == 1 and "-c copy" in writes[0], writes  # the stream copy, and no re-encode after it
    assert sorted(path.name for path in full_outputs.rglob("*") if path.is_file()) == ["filler"]


# -- 6. a chain that is one video: answered without holding up other requests --------------------------------------


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Files to read as off a slow network disk: each open of one (``open`` or ``os.open``) takes ``SLOW_READ``
    seconds. Gives the set of their real paths to fill, and a list of whether each such open was on this test's
    thread (the event loop's, which the in-memory server shares)."""
    loop, slow, on_loop = threading.get_ident(), set(), []
    opened, os_opened = builtins.open, os.open

    def wait(file: Any) -> None:
        if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) in slow:
            on_loop.append(threading.get_ident() == loop)
            time.sleep(SLOW_READ)

    def slow_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        wait(file)
        return opened(file, *args, **kwargs)

    def slow_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if kwargs.get("dir_fd") is None and (len(args) < 2 or args[1] is None):  # a name, not one under a folder
            wait(path)
        return os_opened(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", slow_open)
    monkeypatch.setattr(os, "open", slow_os_open)
    return slow, on_loop


SLOW_READ = 1.0  # seconds an open of a file on the slow disk takes


async def _joined_while_reading(client: Any, clip: str, on_loop: list[bool]) -> tuple[Any, float, tuple[Any, ...]]:
    """stitch_videos(clips=[clip], chain=true), and meanwhile: the longest the event loop was held while it ran, and
    list_models called once a read of the clip is under way (how long it took, whether the join had ended by then)."""
    answer: list[Any] = []
    finished = anyio.Event()

    async def join() -> None:
        answer.append(await client.call_tool("stitch_videos", {"clips": [clip], "chain": True}))
        finished.set()

    async def ticks() -> None:
        last = time.monotonic()
        while not finished.is_set():
            await anyio.sleep(0.02)
            worst[0], last = max(worst[0], time.monotonic() - last), time.monotonic()

    worst = [0.0]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(join)
            group.start_soon(ticks)
            began = len(on_loop)
            for _ in range(3000):  # until a read of the clip is under way
                if len(on_loop) > began:
                    break
                await anyio.sleep(0.01)
            started = time.monotonic()
            listed = await client.call_tool("list_models", {"kind": "image"})
            other = (time.monotonic() - started, finished.is_set(), listed.is_error)
    return answer[0], worst[0], other


async def test_a_chain_that_is_one_video_is_answered_without_holding_up_other_requests(connect, tmp_path, slow_disk):
    """The review: stitch_videos(chain=true) of a chain that is one video already read that video's header on the
    event loop, so on a slow or network disk every other request waited for it. Every read of the clip is made in a
    worker thread: with each open of it taking a second, the event loop never stalls and another call is answered
    while the clip is read; the answer still names the video and its length. Both ways a clip is given: a task's
    saved video (the Veo case), and a file of the user's own."""
    slow, on_loop = slow_disk
    async with connect(elicitation=answering()) as client:
        task_id, saved = await _saved_video(client, "waves")
        mine = tmp_path / "mine.mp4"
        mine.write_bytes((tmp_path / saved).read_bytes())
        slow.update({str((tmp_path / saved).resolve()), str(mine.resolve())})
        joins = {clip: await _joined_while_reading(client, clip, on_loop) for clip in (task_id, "mine.mp4")}
    for clip, (answer, stall, (took, ended, error)) in joins.items():
        assert not answer.is_error and "Nothing was joined" in text_of(answer), text_of(answer)
        assert answer.structured_content["duration"] == pytest.approx(8, abs=1), (clip, answer.structured_content)
        assert stall < SLOW_READ, (clip, stall)  # never held for a read: one on the loop holds it SLOW_READ at least
        assert not ended and not error, (clip, took, ended)  # answered while the clip was read
    assert joins[task_id][0].structured_content["path"] == saved
    assert joins["mine.mp4"][0].structured_content["path"] == "mine.mp4"
    assert on_loop and not any(on_loop), on_loop  # every read of the clip in a worker thread
