"""A create still waiting for its turn in KIE's create window is never sent once its call is cancelled or the server
is stopping, and a host's SIGINT keeps a create on its way; over real stdio with the installed console script.

KIE takes 20 creates per 10 s; kie-mcp paces itself (``kie.pacing``), so the 21st create of a burst waits about 10 s
for its turn. That wait was inside the unit shielded from cancellation (sending a create and recording its answer):
a call cancelled before any of its creates reached KIE still sent them all ~10 s later, and they were charged. A
SIGTERM counted the waiting creates as "on their way": never sent, they were left "being sent", so the next start
showed them as unknown ("may have been charged") and the daily cap counted them as spent. And a SIGINT (a Ctrl-C in a
host's terminal reaches its whole process group) stopped the server at once mid-create, losing the task id.

The simulator runs in its own process (``kie-mcp sim``), so what reached KIE is read from its request log.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kie_mcp.stopping import LANDING_SECONDS

from .conftest import CREATE_PATHS, simulator_running
from .test_promise_stop import (
    WAIT,
    Server,
    attempts,
    creates_sent,
    environment,
    hold_creates,
    lines,
    said_then_release,
    wait_for_create,
)
from .test_terminal import console_script

pytestmark = [
    pytest.mark.stdio,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

WINDOW = 10.0  # KIE's create window, and ours: 20 creates per 10 s
BATCH = {"model": "nano-banana-2", "variations": 10}
GENEROUS = {"KIE_AUTO_APPROVE_CREDITS": "1000", "KIE_MAX_CREDITS_PER_DAY": "100000"}


@pytest.fixture
def simulator() -> Iterator[str]:
    """``kie-mcp sim`` in its own process, 1000 simulated seconds a real second: an image is made at once."""
    yield from simulator_running("1000", kill=True)


def sent_with(base: str, word: str) -> int:
    """The creates that reached the simulator whose prompt holds ``word``."""
    items = httpx2.get(f"{base}/__sim/requests", timeout=10).json()
    items = items if isinstance(items, list) else items["requests"]
    return sum(word in json.dumps(item) for item in items if item["path"] in CREATE_PATHS)


def quoted_total(workspace: Path) -> float:
    """What the creates the journal holds were quoted, together."""
    with sqlite3.connect(workspace / ".kie-mcp" / "journal.sqlite3") as db:
        return float(db.execute("SELECT coalesce(sum(credits_quoted), 0) FROM attempts").fetchone()[0])


def call(server: Server, request_id: int, tool: str, arguments: dict[str, Any]) -> None:
    server.send(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    )


def test_creates_waiting_for_their_turn_at_a_sigterm_are_not_sent_nor_counted_as_unknown(simulator, tmp_path):
    """KIE's answers to the 20 creates sent are held until the server said it stops, and each keeps its slot until
    a window after its answer: the ten waiting for their turn could be sent, or waited for, only WINDOW after the
    SIGTERM at the soonest, past the stop's own LANDING_SECONDS. They are given up at the SIGTERM: the process exits
    once the 20 have landed, however slow the machine."""
    workspace = tmp_path / "workspace"
    hold_creates(simulator, 20)
    server = Server(simulator, workspace, **GENEROUS)
    try:
        for n in range(3):
            call(server, 10 + n, "generate_image", {**BATCH, "prompt": f"paced apple {n}"})
        wait_for_create(simulator, 20)  # the window is full: ten creates wait for their turn
        time.sleep(0.3)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        heard = said_then_release(simulator, server, "kie-mcp: stopping (SIGTERM): waiting up to")
        code, errors = server.stopped()
        took = time.monotonic() - signalled
    finally:
        server.kill()
    time.sleep(1.0)
    assert code == 128 + signal.SIGTERM, errors
    assert heard and "waiting up to 10 s for 20 creates on its way" in errors, errors  # the ten were not counted
    assert took < LANDING_SECONDS, took  # nothing waited for the window to free (nor the stop's whole wait)
    assert creates_sent(simulator) == 20
    assert "got no answer from KIE" not in errors and "Traceback" not in errors, errors
    assert lines(errors)[-1] == "kie-mcp: stopped (SIGTERM)."
    states = [state for state, _ in attempts(workspace)]
    assert states == ["created"] * 20, states  # none left "being sent": none unknown at the next start

    restarted = Server(simulator, workspace, **GENEROUS)
    try:
        call(restarted, 1, "check_credits", {})
        credits = restarted.answer(1)["result"]["structuredContent"]
    finally:
        restarted.kill()
    assert credits["unknown_creates"] == 0, credits
    assert credits["spent_today"] == pytest.approx(quoted_total(workspace)), credits  # the 20 sent, no more


def test_a_create_waiting_for_its_turn_does_not_start_after_a_sigterm(simulator, tmp_path):
    """The window frees while the server is stopping: the create that waited for it is not sent. The SIGTERM comes
    a second before the window can free at the soonest (a window, and its margin, after the first create was
    answered, which was after ``began``), so the create still waits then, however slow the machine was until then;
    the window frees a few seconds later, within the stop's LANDING_SECONDS, had the stop waited for it."""
    workspace = tmp_path / "workspace"
    server = Server(simulator, workspace, **GENEROUS)
    try:
        began = time.monotonic()
        call(server, 10, "generate_image", {**BATCH, "prompt": "batch a"})
        call(server, 11, "generate_image", {**BATCH, "prompt": "batch b"})
        wait_for_create(simulator, 20)
        call(server, 12, "generate_image", {"model": "nano-banana-2", "prompt": "late one"})
        time.sleep(0.3)  # it reaches its wait for a turn
        stop_at = began + WINDOW - 1
        assert time.monotonic() < stop_at, "20 creates took a whole window to send: no time left to stop meanwhile"
        time.sleep(stop_at - time.monotonic())
        server.process.send_signal(signal.SIGTERM)
        code, errors = server.stopped()
    finally:
        server.kill()
    time.sleep(0.5)  # it has exited, so it sends nothing more: a moment for what it sent to reach the log
    assert code == 128 + signal.SIGTERM, errors
    assert sent_with(simulator, "late one") == 0
    assert creates_sent(simulator) == 20


async def until(holds: Any) -> None:
    """Wait (at most ``WAIT``) until ``holds()``: the simulator's log, nothing to await."""
    import anyio

    with anyio.fail_after(WAIT):
        while not holds():  # noqa: ASYNC110 - the simulator's log: nothing to await
            await anyio.sleep(0.05)


async def fill_then_cut_off(
    client: Any, simulator: str, fillers: list[dict[str, Any]], filled: int, asked: dict[str, Any], waited: Any
) -> None:
    """Send ``fillers`` until ``filled`` creates reached KIE, then ``asked``; once ``waited()`` returns, cancel it
    (the user presses stop: the SDK sends notifications/cancelled)."""
    import anyio

    async with anyio.create_task_group() as group:
        for filler in fillers:
            group.start_soon(client.call_tool, "generate_image", filler)
        await until(lambda: creates_sent(simulator) >= filled)
        stop = anyio.CancelScope()

        async def cut_off() -> None:
            with stop:
                await client.call_tool("generate_image", asked)

        group.start_soon(cut_off)
        await waited()
        stop.cancel()


@pytest.mark.parametrize("mode", ["auto"])  # one era: the cancellation is the SDK's in both (20 s of the suite)
async def test_a_call_cancelled_while_its_creates_wait_for_their_turn_sends_and_charges_nothing(
    simulator, tmp_path, mode
):
    import anyio
    from mcp import Client, StdioServerParameters

    workspace = tmp_path / "workspace"
    params = StdioServerParameters(command=console_script(), env={**environment(simulator, workspace), **GENEROUS})
    async with Client(params, mode=mode, read_timeout_seconds=120) as client:

        async def all_ten_wait() -> None:
            await anyio.sleep(1.0)
            assert sent_with(simulator, "third batch") == 0  # all ten wait for their turn

        fillers = [{**BATCH, "prompt": "first batch"}, {**BATCH, "prompt": "second batch"}]
        await fill_then_cut_off(
            client, simulator, fillers, 20, {**BATCH, "prompt": "third batch cancelled"}, all_ten_wait
        )
        # Turns are taken in order: a create asked after the cut-off is sent once the window frees, after any of
        # the ten still waiting would have been. Once it is answered, their turn has come and gone.
        after = await client.call_tool("generate_image", {"model": "nano-banana-2", "prompt": "after the cut-off"})
        assert not after.is_error and sent_with(simulator, "after the cut-off") == 1
        assert sent_with(simulator, "third batch") == 0
        credits = (await client.call_tool("check_credits", {})).structured_content
        listed = (await client.call_tool("list_tasks", {"limit": 50})).structured_content
    assert creates_sent(simulator) == 21
    assert credits["unknown_creates"] == 0, credits
    assert credits["spent_today"] == pytest.approx(quoted_total(workspace)), credits  # the 21 sent, no more
    assert listed.get("unknown_creates", 0) == 0 and len(listed["tasks"]) == 21, listed
    assert [state for state, _ in attempts(workspace)] == ["created"] * 21


@pytest.mark.parametrize("mode", ["auto"])
async def test_the_retry_of_a_call_cut_off_with_creates_still_waiting_says_they_were_never_sent(
    simulator, tmp_path, mode
):
    """A review: ten variations, five sent and five still waiting for their turn when the call was cancelled; the
    same request sent again answered "here is what that call made" with five images and no word of the other five
    (never journaled: given up unsent). The answer says they were never sent, and how to make them."""
    import anyio
    from mcp import Client, StdioServerParameters

    from .conftest import text_of

    workspace = tmp_path / "workspace"
    params = StdioServerParameters(command=console_script(), env={**environment(simulator, workspace), **GENEROUS})
    asked = {**BATCH, "prompt": "half sent"}
    async with Client(params, mode=mode, read_timeout_seconds=120) as client:

        async def five_sent() -> None:
            await until(lambda: sent_with(simulator, "half sent") >= 5)
            await anyio.sleep(0.5)

        fillers = [{**BATCH, "prompt": "filler"}, {**BATCH, "variations": 5, "prompt": "more filler"}]
        await fill_then_cut_off(client, simulator, fillers, 15, asked, five_sent)
        again = await client.call_tool("generate_image", asked)
    said = text_of(again)
    assert not again.is_error and len(again.structured_content["tasks"]) == 5, said
    assert "5 of the 10 asked for were never sent" in said and "ask again with variations=5" in said, said
    assert sent_with(simulator, "half sent") == 5  # the retry sent nothing
