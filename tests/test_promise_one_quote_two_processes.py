"""Two identical calls at once with one quote get one create and the same task, also when they reach two kie-mcp
processes on one workspace (a host that restarted the server and sent the call again to the new one while the old
one still ran): the call that lost the quote is answered with the task the other made (or told it is on its way),
never with a fresh quote, which an agent passes back and so pays twice.

The installed console script over real stdio against the simulator in its own process. One server is paused by a
test-only hook (``gapsite/sitecustomize.py``) in the gate's check-then-use gap: it has read that the quote is unused
and not yet looked whether the request was sent since the quote was issued; the other server uses the quote there.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import simulator_running
from .test_promise_stop import WAIT, Server, creates_sent, slow_creates, wait_for_create

IMAGE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table"}
GAPSITE = Path(__file__).parent / "gapsite"


@pytest.fixture
def simulator() -> Iterator[str]:
    yield from simulator_running("1000", kill=True)  # a create held by a slow fault would hold a graceful stop


def call(server: Server, request_id: int, tool: str, arguments: dict[str, Any]) -> None:
    server.send(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    )


def answered(server: Server, request_id: int) -> tuple[dict[str, Any], str]:
    """The structured answer to ``request_id`` and its text."""
    result = server.answer(request_id)["result"]
    return result["structuredContent"], result["content"][0]["text"]


def until(path: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.02)


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="PYTHONPATH hooks of a child process, as the other stdio tests")
@pytest.mark.parametrize("gap", ["gate", "use"])
def test_one_quote_sent_to_two_servers_at_once_makes_one_task_and_offers_no_fresh_quote(simulator, tmp_path, gap):
    """The audit's repro: B read that the quote was unused; A used it and sent its create; B then found A's use of
    that very quote "under way" and answered that the request "was sent again ... (it was left unused)", with a fresh
    quote, which the agent passed back: two creates for one approval. The gap was in the gate (``decide_approval``)
    and again as the approval is used (``use_approval``). B now answers as for a used quote whose create is on its
    way: A's task once its answer is in, else that create, still being sent; no quote to pass back."""
    workspace = tmp_path / "workspace"
    held = tmp_path / "gap"
    held.mkdir()
    settings = {"KIE_AUTO_APPROVE_CREDITS": "0"}  # a quote approves, nothing else
    a = Server(simulator, workspace, **settings)
    path = os.pathsep.join(filter(None, [str(GAPSITE), os.environ.get("PYTHONPATH")]))
    b = Server(
        simulator,
        workspace,
        PYTHONPATH=path,
        KIE_TEST_GAP=str(held),
        KIE_TEST_GAP_AT="1" if gap == "gate" else "2",
        **settings,
    )
    try:
        call(a, 1, "estimate_cost", IMAGE)
        quote_id = answered(a, 1)[0]["quote"]["quote_id"]
        slow_creates(simulator, 2.0)  # A's create is still on its way when B goes on
        arguments = {**IMAGE, "quote_id": quote_id, "wait_seconds": 0}
        call(b, 1, "generate_image", arguments)
        until(held / "paused")  # B has read the quote unused
        call(a, 2, "generate_image", arguments)
        wait_for_create(simulator)  # A used the quote, and its create reached KIE
        (held / "go").touch()
        won, _ = answered(a, 2)
        lost, said = answered(b, 1)
        offered = (lost.get("quote") or {}).get("quote_id") or next(iter(re.findall(r"quote_id='(q_\w+)'", said)), None)
        if offered is not None:  # what an agent does with a quote it is handed for the request it was asked to make
            call(b, 2, "generate_image", {**arguments, "quote_id": offered})
            answered(b, 2)
    finally:
        a.kill()
        b.kill()
    assert creates_sent(simulator) == 1
    made = [task["task_id"] for task in won["tasks"]]
    assert len(made) == 1 and made[0], won
    assert offered is None, said
    # A's task, once its create's answer is in (B waits a few seconds for it), or that create, said to be on its way
    assert lost["status"] in ("submitted", "completed", "unknown") and "already used" in said, said
    assert made[0] in said or "still being sent" in said, said
    assert {task["task_id"] for task in lost["tasks"]} <= {made[0], None}, said
    assert "left unused" not in said, said
