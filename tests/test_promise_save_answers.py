"""What an answer says of a paid result is what became of it:

- a result saved while the journal refuses writes is named as saved, and said to be unrecorded (never "could not be
  saved", never a create's wording in a check_task), and check_task records it once the journal is writable;

Through the real MCP client, in both protocol eras, against the simulator. The journal refuses writes as SQLite does
on a read-only database (``PRAGMA query_only``: "attempt to write a readonly database").
"""

from __future__ import annotations

import sqlite3

from kie_mcp.journal import Journal

from .conftest import answering, text_of
from .test_follower import saved

VIDEO = {"prompt": "waves rolling onto a beach at dusk", "model": "veo3_fast"}


def journals_opened(monkeypatch) -> list[Journal]:
    """Every journal handle opened from now on (the server's among them)."""
    handles: list[Journal] = []
    opened = Journal.__init__

    def kept(self: Journal, path) -> None:
        opened(self, path)
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
