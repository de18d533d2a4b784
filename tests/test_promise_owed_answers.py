"""A call's answer that went out is known to have gone out after its server is killed, even when the journal could
not note it then: the same request sent again soon after is a new request, never a replay of that call.

The audit: that a call's answer reached the client is a journal write (``Journal.mark_answered``). While another
program held the journal's lock it was kept in memory only ("owed"), and a server killed before the lock went lost
it: its call read as cut off, and the same request sent within 15 minutes was answered with what that call made
("kie-mcp has no record that its answer reached you") instead of being made again. Nothing in the journal or the
call log lets a start tell, so the mark is kept on the disk beside the journal until the journal takes it.

The installed console script over real stdio, against the simulator in its own process. A test-only hook
(``gapsite/sitecustomize.py``, ``KIE_TEST_GAP_IN=delivered``) holds the server as the answer is handed over, which is
when the test takes the journal's lock, as another program would.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from kie_mcp.journal import CALL_ANSWERED

from .conftest import simulator_running
from .test_promise_journal_recovery import until
from .test_promise_one_quote_two_processes import GAPSITE
from .test_promise_owed_refunds import LockTaken, rows
from .test_promise_stop import Server

pytestmark = [
    pytest.mark.stdio,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2", "wait_seconds": 0}  # 8 credits


@pytest.fixture
def simulator() -> Iterator[str]:
    yield from simulator_running("1000", kill=True)


def generate(server: Server, request_id: int) -> None:
    call = {"name": "generate_image", "arguments": IMAGE}
    server.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": call})


def text(result: dict[str, Any]) -> str:
    return " ".join(block.get("text", "") for block in result["content"])


def test_an_answer_that_went_out_while_the_journal_was_locked_is_known_after_a_kill(simulator, tmp_path):
    """A generation's answer goes out while another program holds the journal's lock, so the journal cannot note it;
    the server is then killed (SIGKILL) before the lock goes. The next server takes the same request sent again as a
    new one (asked about, as one made minutes ago), never as a retry of a call whose answer was lost."""
    workspace, gap = tmp_path / "ws", tmp_path / "gap"
    gap.mkdir()
    path = os.pathsep.join(filter(None, [str(GAPSITE), os.environ.get("PYTHONPATH")]))
    hook = {"PYTHONPATH": path, "KIE_TEST_GAP": str(gap), "KIE_TEST_GAP_IN": "delivered", "KIE_TEST_GAP_AT": "1"}
    server = Server(simulator, workspace, **hook)
    try:
        with LockTaken(workspace) as lock:
            generate(server, 1)
            until((gap / "paused").exists, "the answer was never handed over")
            lock.take()
            (gap / "go").touch()
            first = server.answer(1)["result"]
            server.process.kill()
            server.process.wait(timeout=30)
    finally:
        server.kill()
    left = rows(workspace, "SELECT state, answered FROM attempts")
    again = Server(simulator, workspace)
    try:
        generate(again, 1)
        second = again.answer(1)["result"]
    finally:
        again.kill()
    assert first["structuredContent"]["tasks"][0]["task_id"], first  # it made a task, and said so
    assert left[0][1] != CALL_ANSWERED  # the journal really did not note it before the kill
    said = text(second)
    assert "no record that its answer reached you" not in said, said
    assert second["structuredContent"]["status"] == "confirmation_required", said  # a new request, asked about
    assert rows(workspace, "SELECT answered FROM attempts") == [(CALL_ANSWERED,)]
