"""A tool call ends with its server's session: nothing it held outlives it, and what it sent is recorded.

The MCP SDK's 2026-07-28 client in process, going away with a call unanswered, closes the server's lifespan without
cancelling the call (the call runs in the client's own task). The review found such a call ran on: its input file kept
uploading, and it then met a closed journal, where it could not give back the credits reserved for it while its file
went up ("held while its input files upload"): they stayed counted against today's cap, on every server of the
workspace, for the three minutes of their lease. Now:

- the runtime's close cancels the calls still running with it and waits for them: each ends as a call its host cancels
  does (its reservation given back, its approval and its request's hold let go of), so none runs on;
- a create already on its way to KIE is waited for and recorded (its task in the journal) before the journal closes;
- a release the journal could not take when its call ended (a write it refused) is written as the runtime closes;
- an owed release the journal refuses again never holds back the others (an auto approval's hold among them).

Through the MCP SDK's client in both protocol eras, two servers on one workspace, against the simulator.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError

from kie_mcp.journal import journal_path
from kie_mcp.spend.ledger import HELD

from .conftest import text_of
from .test_promise_auto_approval_holds import gone_while_waiting, holds, uploading
from .test_promise_host_retries import EDIT, IMAGE, picture

CALL = {**EDIT, "wait_seconds": 20}  # 4 credits: the whole daily cap below
CAPPED = {"auto_approve_credits": 10, "max_credits_per_day": 4}


def held(workspace: Path) -> list[tuple[float, str]]:
    """The reservations held for input files uploading, in the journal: (credits, ref)."""
    with sqlite3.connect(journal_path(workspace)) as db:
        return db.execute("SELECT delta, ref FROM spend WHERE reason = ?", (HELD,)).fetchall()


def attempts(workspace: Path) -> list[tuple[str, str | None]]:
    """The create attempts in the journal: (state, task id)."""
    with sqlite3.connect(journal_path(workspace)) as db:
        return db.execute("SELECT state, task_id FROM attempts").fetchall()


async def test_credits_held_while_a_file_uploads_are_given_back_when_its_client_goes_away(connect, controls, tmp_path):
    """The review: a daily cap of 4 credits, a request of 4 auto-approved and its input file uploading when its
    client goes away. In the 2026-07-28 era the call outlived its server's session and its 4 credits stayed held in
    the journal for their three-minute lease: the same request sent to another server on the workspace was refused,
    "held for uploads under way". They are given back as the session closes, and the other server makes it, once."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    async with connect(**CAPPED) as second:
        await gone_while_waiting(connect(**CAPPED), CALL, lambda: uploading(controls))
        left = held(tmp_path)  # the first server's session is closed: nothing of it runs to give them back later
        made = await second.call_tool("generate_image", CALL)
    assert left == [], left
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1 and held(tmp_path) == [] and holds(tmp_path) == []


async def test_a_call_whose_client_went_away_ends_before_its_server_has_closed(connect, controls, tmp_path, mode):
    """No call runs on after its server closed: the call uploading when its client goes away is ended by the close
    of its session (in the 2026-07-28 era, where nothing else ends it), before that close returns; it never went on
    uploading for the two seconds its file takes, to meet a closed journal."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    ended: list[float] = []
    answered: list[Any] = []

    async def unanswered(client: Any) -> None:
        try:
            with contextlib.suppress(MCPError):  # the connection closed under it
                answered.append(await client.call_tool("generate_image", CALL))
        finally:
            ended.append(time.monotonic())

    opened = connect(**CAPPED)
    async with anyio.create_task_group() as group:
        client = await opened.__aenter__()
        try:
            group.start_soon(unanswered, client)
            with anyio.fail_after(10):
                while not await uploading(controls):  # noqa: ASYNC110 - the simulator's log: nothing else to await
                    await anyio.sleep(0.02)
        finally:
            await opened.__aexit__(None, None, None)
            closed = time.monotonic()
    assert ended and ended[0] <= closed + 0.1, (ended, closed)  # a moment for the client's side to hear of it
    if mode == "auto":  # in process, the call's own answer comes back to the task that sent it: said so
        [answer] = answered
        assert answer.is_error and "session closed while this call ran" in text_of(answer), text_of(answer)
    assert held(tmp_path) == [] and holds(tmp_path) == [] and await controls.creates() == []


async def test_a_create_on_its_way_when_its_client_goes_away_is_recorded_before_its_server_closes(
    connect, controls, tmp_path
):
    """A create sent, its answer not in yet, when its client goes away: the session's close waits for it, so its task
    is in the journal when the close returns (in the 2026-07-28 era the journal closed under it, and the attempt stayed
    "being sent", to become one of unknown outcome at the next start)."""
    await controls.fault("create", kind="slow", seconds=1.0)

    async def sent() -> bool:
        return bool(await controls.creates())

    await gone_while_waiting(connect(auto_approve_credits=10), {**IMAGE, "wait_seconds": 20}, sent)
    recorded = attempts(tmp_path)
    assert len(recorded) == 1 and recorded[0][0] == "created" and recorded[0][1], recorded
    assert len(await controls.creates()) == 1


def refuse_held_releases(workspace: Path, refuse: bool) -> None:
    """Another program's rule on the journal (a trigger) refusing the release of every held reservation, while it
    stands: a write the journal cannot take, as a full disk refuses it."""
    db = sqlite3.connect(journal_path(workspace), timeout=10)
    try:
        if refuse:
            db.execute(
                f"CREATE TRIGGER refuse_releases BEFORE DELETE ON spend WHEN OLD.reason = '{HELD}' "
                "BEGIN SELECT RAISE(ABORT, 'no release is taken here'); END"
            )
        else:
            db.execute("DROP TRIGGER refuse_releases")
        db.commit()
    finally:
        db.close()


async def test_a_held_reservation_the_journal_refused_to_release_is_given_back_as_its_server_closes(
    connect, controls, tmp_path
):
    """A call whose upload failed gives back what it held for it; a journal that refuses that write keeps it owed
    (written at this server's next look at the ledger). Left owed when the server's session closed, it stayed
    counted on every server of the workspace for its lease. Once the journal takes writes again, the close writes
    it, and the other server makes the request under the cap."""
    picture(tmp_path)
    await controls.fault("upload", kind="code", code=500)
    async with connect(**CAPPED) as second:
        await second.call_tool("list_models", {})  # the journal made
        refuse_held_releases(tmp_path, True)
        async with connect(**CAPPED) as first:
            failed = await first.call_tool("generate_image", CALL)
            kept = held(tmp_path)
            refuse_held_releases(tmp_path, False)
        left = held(tmp_path)
        made = await second.call_tool("generate_image", CALL)
    assert failed.is_error and "nothing was charged" in text_of(failed), text_of(failed)
    assert len(kept) == 1 and left == [], (kept, left)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("mode", ["auto"])  # the quote book, not the era: once
async def test_a_quotes_release_the_journal_refuses_never_holds_back_the_release_of_a_hold(connect, controls, tmp_path):
    """An approval whose call sent nothing is given back; one the journal refuses to give back stays owed, and every
    owed release is tried again at the next look at a quote. The first refused one ended the try, so the hold of an
    auto-approved call that had ended since stayed in the journal too, for its lease: another server asked its
    request, warned of a call "still on its way". Each owed release is tried, whatever became of the others."""
    picture(tmp_path)
    image = {**IMAGE, "images": ["references/face.png"], "wait_seconds": 20}  # 8 credits: past auto-approval
    async with connect(auto_approve_credits=4) as first, connect(auto_approve_credits=4) as second:
        asked = await first.call_tool("generate_image", image)
        quote_id = asked.structured_content["quote"]["quote_id"]
        with sqlite3.connect(journal_path(tmp_path), timeout=10) as db:  # the quote's release is refused for good
            db.execute(
                "CREATE TRIGGER refuse_unuse BEFORE UPDATE OF used ON quotes WHEN OLD.used = 1 AND NEW.used = 0 "
                "BEGIN SELECT RAISE(ABORT, 'no release is taken here'); END"
            )
        await controls.fault("upload", kind="code", code=500)
        failed = await first.call_tool("generate_image", {**image, "quote_id": quote_id})
        made = await first.call_tool("generate_image", CALL)  # auto-approved: its hold let go of as it ends
        left = holds(tmp_path)
        again = await second.call_tool("generate_image", CALL)
    assert failed.is_error, text_of(failed)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert left == [], left
    assert "still on its way" not in text_of(again), text_of(again)
