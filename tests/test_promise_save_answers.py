"""What an answer says of a paid result is what became of it:

- a result saved while the journal refuses writes is named as saved, and said to be unrecorded (never "could not be
  saved", never a create's wording in a check_task), and check_task records it once the journal is writable;
- an image link serving far more than any image KIE makes is not saved as the image, and not fetched again;

Through the real MCP client, in both protocol eras, against the simulator. The journal refuses writes as SQLite does
on a read-only database (``PRAGMA query_only``: "attempt to write a readonly database").
"""

from __future__ import annotations

import sqlite3

import anyio
import pytest

from kie_mcp.journal import Journal

from .conftest import answering, text_of
from .test_follower import saved

VIDEO = {"prompt": "waves rolling onto a beach at dusk", "model": "veo3_fast"}
IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2", "wait_seconds": 20}


async def file_gets(controls) -> int:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return sum(1 for r in items if r["path"].startswith(("/files/", "/dl/")))


def journals_opened(monkeypatch) -> list[Journal]:
    """Every journal handle opened from now on (the server's among them)."""
    handles: list[Journal] = []
    opened = Journal.__init__

    def kept(self: Journal, path, **options) -> None:
        opened(self, path, **options)
        handles.append(self)

    monkeypatch.setattr(Journal, "__init__", kept)
    return handles


def refuse_writes(handles: list[Journal], refused: bool) -> None:
    for journal in handles:
        with journal._lock:
            journal._db.execute(f"PRAGMA query_only = {'ON' if refused else 'OFF'}")


async def test_a_result_saved_while_the_journal_refuses_writes_is_named_and_recorded_later(
    connect, controls, tmp_path, monkeypatch
):
    """The audit: the journal refused writes when a task ended; its video was saved into outputs/, but check_task
    said its results "could not be saved or recorded", named no file, and said "KIE created task ... but kie-mcp
    could not record it" (a create's wording, in a check_task)."""
    handles = journals_opened(monkeypatch)
    await controls.post("clock/speed", {"speed": 0})
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        refuse_writes(handles, True)
        await controls.post("clock/speed", {"speed": 1000})
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
        refuse_writes(handles, False)
        again = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
    [video] = saved(tmp_path, task_id)
    relative = video.relative_to(tmp_path).as_posix()
    text = text_of(checked)
    assert checked.structured_content["task"]["files"] == [relative], text
    assert f"saved to {relative}, but not recorded in the journal" in text, text
    assert "check_task records it once the journal is writable" in text, text
    assert "could not be saved" not in text and "KIE created task" not in text, text
    assert again.structured_content["task"]["files"] == [relative], text_of(again)
    assert "not recorded" not in text_of(again), text_of(again)
    journal = sqlite3.connect(tmp_path / ".kie-mcp" / "journal.sqlite3")
    rows = journal.execute("SELECT path FROM files WHERE task_id = ?", (task_id,)).fetchall()
    journal.close()
    assert rows == [(relative,)]


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_an_image_link_serving_more_than_any_image_is_not_saved_nor_fetched_again(connect, controls, tmp_path):
    """The audit: an image task's link served 300 MB (the picture's start, then zeros, no Content-Length) and it was
    saved as the image; the only limit was 2 GiB for any result, and each of seven background tries would have
    streamed up to it again. An image is at most 100 MiB (KIE's image models make 4K at most), and a link that
    serves more is not fetched again by this process."""
    from kie_mcp.media.results import MOST_IMAGE_BYTES

    await controls.fault("files", kind="padded", bytes=MOST_IMAGE_BYTES + 4 * 1024**2)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task_id = made.structured_content["tasks"][0]["task_id"]
        await anyio.sleep(1.5)  # the background's first tries (30 s and 60 s after, schedule seconds) are past
        checked = await client.call_tool("list_tasks", {})
    text = text_of(made)
    assert made.structured_content["tasks"][0]["files"] == [] and saved(tmp_path, task_id) == [], text
    assert f"larger than the {MOST_IMAGE_BYTES:,}-byte limit for an image" in text, text
    assert "does not fetch it again" in text and "tries again in the background" not in text, text
    assert await file_gets(controls) == 1  # never fetched again
    assert not checked.is_error


async def test_the_line_saying_a_task_ended_never_reads_as_a_result_saved_when_it_is_not(settings, transport, controls):
    """The audit: a task whose download failed was announced "Task ... succeeded: <its link>" (log, notification),
    as if that were where the result is. The line says the result is not saved yet and that kie-mcp tries again, and
    names the file once a background try saved it."""
    from dataclasses import replace

    from .test_follower import hearing, video_nobody_waits_for

    await controls.fault("files", kind="code", code=503, times=1)
    async with hearing(replace(settings, auto_approve_credits=100), transport) as (client, lines):
        await controls.post("clock/speed", {"speed": 0})
        task_id = await video_nobody_waits_for(client)
        await client.call_tool("check_task", {"task_id": task_id})  # this client hears of the task from now on
        await controls.post("clock/speed", {"speed": 1000})
        with anyio.fail_after(20):
            while len([line for line in lines if task_id in line]) < 3:  # noqa: ASYNC110 - filled by the callback
                await anyio.sleep(0.02)
    ended, failed, saved_later = [line for line in lines if task_id in line][:3]
    assert "1 of its results not saved yet" in ended and "kie-mcp is saving them now" in ended, ended  # at its end
    assert "1 of its results not saved yet" in failed and "tries again in the background" in failed, failed
    assert "outputs/" in saved_later and "not saved" not in saved_later, saved_later


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_link_kie_will_not_renew_is_tried_once_more_later_then_said_so_and_not_fetched_again(
    connect, controls, sim
):
    """The audit: when KIE refused for good to renew an expired link, the answer said "KIE will not renew this link,
    so kie-mcp cannot save the file" while the follower went on trying it in the background; and a later audit: one
    brief 404 and download-url's 404 (a file missing for a moment) gave up a paid result at the first try. KIE's
    first refusal is tried once more in the background; its second is final, said so, and never tried again."""
    await controls.post("config", {"result_url_ttl_seconds": 60})
    refusal = "Only generated file URLs from kie.ai services are supported"
    await controls.fault("download-url", kind="code", code=422, msg=refusal, times=-1)
    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        sim.advance(4000)  # done long ago: its result link has expired
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
        tried = await file_gets(controls)
        await anyio.sleep(1.5)  # the background's first tries (30 s and 60 s after, schedule seconds) are past
        later = await file_gets(controls)
    said = text_of(done)
    assert "KIE would not renew it now" in said and "tries once more in the background" in said, said
    assert tried >= 1 and later == tried + 1  # once more, then given up
