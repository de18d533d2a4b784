"""An auto approval holds its request for every server on the workspace, from the gate's decision until its call
ends, so a host that sends the same call to another server meanwhile (it restarted the server, or runs two) never
pays for it twice unasked:

- the same auto-approvable request reaching another server while the first call's input file uploads (its create not
  in the journal yet) is asked there (or answered ``confirmation_required``), warned that the first is still on its
  way; once the first call has made its task, the same request is warned about as made minutes ago, as before;
- two servers sent the same request at the same moment make it once;
- the hold is no quote: its id approves nothing;
- a call ended before its create (its host cancelled it, or its client went away) lets go of its hold at once, also
  when the call outlives its server's runtime: the other server auto-approves the request, never warned of a call
  "still on its way" that has ended; one whose create was sent stays known to the other server by its attempt;
- a hold a killed server left never blocks the request past its lease: at once where the process can be seen gone,
  minutes later where it cannot (a server in a PID namespace of its own).

Two in-process servers through the MCP SDK's client in both protocol eras, and the installed console script over
real stdio against the simulator in its own process (a real second process, and a real kill).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError

from kie_mcp.journal import journal_path
from kie_mcp.spend import ledger

from .conftest import answering, simulator_running, text_of
from .test_promise_host_retries import EDIT, IMAGE, cut_off, picture, retried_while_uploading
from .test_promise_many_servers import lock_journal
from .test_promise_stop import Server
from .test_promise_upload_holds import (
    Uploading,
    creates_made,
    own_namespace,
    slow_uploads,
    wait_for_upload,
    workspace_with_a_picture,
)

ON_ITS_WAY = "is still on its way to KIE"
MADE_MINUTES_AGO = "WARNING: this exact request was already made at"
WITH_FILE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table", "images": ["references/face.png"]}
LAPSED = 240.0  # four minutes unrenewed: past the lease (``ledger.HOLD_LEASE``, three)


def holds(workspace: Path) -> list[str]:
    """The auto approvals' holds in the journal, by id."""
    with sqlite3.connect(journal_path(workspace)) as db:
        return [row[0] for row in db.execute("SELECT quote_id FROM quotes WHERE kind = 'auto'")]


# -- two servers in one process, both eras ---------------------------------------------------------------------------


@pytest.mark.parametrize("forms", [True, False], ids=["forms", "no-forms"])
async def test_the_same_request_sent_to_another_server_while_an_auto_approved_call_uploads_is_asked_not_paid_twice(
    connect, controls, tmp_path, forms
):
    """The review: two kie-mcp servers on one workspace, auto-approval on, the first call's input file uploading: the
    same request sent to the second server was auto-approved there too and paid twice, unasked (only a quote's or a
    form's use, or a create in the journal, told the other server a call was under way). The second server now asks
    (or answers with a quote), warned that the first call is on its way; one create is made. Once that call made its
    task, the same request is warned about as made minutes ago (the hold is let go), and still not made again."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    asked: list[str] = []
    elicitation = answering(seen=asked, confirm=False) if forms else None
    call = {**EDIT, "wait_seconds": 20}
    held: list[list[str]] = []
    async with (
        connect(auto_approve_credits=10) as first,
        connect(elicitation=elicitation, auto_approve_credits=10) as second,
    ):

        async def retry() -> Any:
            held.append(holds(tmp_path))  # the first call's hold, while its file uploads
            return await second.call_tool("generate_image", call)

        made, retried = await retried_while_uploading(controls, lambda: first.call_tool("generate_image", call), retry)
        again = await second.call_tool("generate_image", call)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1, text_of(retried)
    assert len(held[0]) == 1 and holds(tmp_path) == [], (held, holds(tmp_path))  # held while it ran, let go after
    if forms:  # asked, the warning first, and the person says no
        assert len(asked) == 2 and asked[0].startswith("WARNING: a call of this exact request"), asked
        assert ON_ITS_WAY in asked[0] and "a second time" in asked[0], asked
        assert retried.structured_content["status"] == "declined", text_of(retried)
        assert asked[1].startswith(MADE_MINUTES_AGO) and ON_ITS_WAY not in asked[1], asked
    else:
        assert retried.structured_content["status"] == "confirmation_required", text_of(retried)
        assert text_of(retried).startswith("WARNING: a call of this exact request") and ON_ITS_WAY in text_of(retried)
        assert again.structured_content["status"] == "confirmation_required", text_of(again)
        assert text_of(again).startswith(MADE_MINUTES_AGO) and ON_ITS_WAY not in text_of(again), text_of(again)


@pytest.mark.parametrize("mode", ["auto"])  # the gate's lookup by id, not the era: once
async def test_an_auto_approvals_hold_approves_nothing_passed_as_a_quote(connect, controls, tmp_path):
    """The hold is kept among the quotes (other servers read it there), but it is no quote: its id passed back as
    quote_id is unknown to the workspace, and nothing is sent for it."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    call = {**EDIT, "wait_seconds": 20}
    async with connect(auto_approve_credits=10) as first, connect() as second:

        async def passed_as_quote() -> Any:
            [hold] = holds(tmp_path)
            return await second.call_tool("generate_image", {**call, "quote_id": hold})

        made, passed = await retried_while_uploading(
            controls, lambda: first.call_tool("generate_image", call), passed_as_quote
        )
    assert made.structured_content["status"] == "completed", text_of(made)
    assert passed.structured_content["status"] == "confirmation_required", text_of(passed)
    assert "is unknown to this workspace" in text_of(passed), text_of(passed)
    assert len(await controls.creates()) == 1


async def uploading(controls: Any) -> bool:
    """Whether an input file is on its way to the simulator (a slow upload: the call holds its request)."""
    return any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"])


async def let_go_within(workspace: Path, seconds: float) -> list[str]:
    """The holds in the journal once none is left, or ``seconds`` later (a cancel reaches the server a moment after
    the client sent it)."""
    with anyio.move_on_after(seconds):
        while holds(workspace):  # noqa: ASYNC110 - the journal: nothing to await but its rows
            await anyio.sleep(0.02)
    return holds(workspace)


async def gone_while_waiting(opened: Any, call: dict[str, Any], waited: Any) -> None:
    """Send ``call`` through a client of ``opened`` (a ``connect(...)``), and once ``waited()`` says the call waits,
    close that client with the call unanswered, as a host that goes away does."""

    async def unanswered(client: Any) -> None:
        with contextlib.suppress(MCPError):  # the connection closed under it
            await client.call_tool("generate_image", call)

    async with anyio.create_task_group() as group:
        client = await opened.__aenter__()
        try:
            group.start_soon(unanswered, client)
            with anyio.fail_after(10):
                while not await waited():  # noqa: ASYNC110 - the simulator's log: nothing to await but its answer
                    await anyio.sleep(0.02)
        finally:
            await opened.__aexit__(None, None, None)


@pytest.mark.parametrize("ending", ["cancelled", "disconnected", "failed"])
async def test_an_auto_approved_call_ended_before_its_create_lets_go_of_its_request_at_once(
    connect, controls, tmp_path, ending
):
    """The review: two servers on one workspace, auto-approval on, the first call's input file uploading when its host
    cancels it (notifications/cancelled; in the 2026-07-28 era the request's own scope) or goes away, or when the
    upload fails. A call that outlived its server's runtime (its client gone in the 2026-07-28 era: the session's
    runtime closed, the call went on and met a closed journal) could not let go of its hold, which stayed for its
    three-minute lease: the other server asked the same request, warned of a call "still on its way" that had ended
    with nothing sent. However the call ends, its hold is let go of at once, and the other server auto-approves the
    request and makes it, once."""
    picture(tmp_path)
    if ending == "failed":
        await controls.fault("upload", kind="code", code=500)
    else:
        await controls.fault("upload", kind="slow", seconds=2.0)
    call = {**EDIT, "wait_seconds": 20}
    async with connect(auto_approve_credits=10) as second:
        first = connect(auto_approve_credits=10)
        if ending == "failed":
            async with first as client:
                failed = await client.call_tool("generate_image", call)
                assert failed.is_error and "nothing was charged" in text_of(failed), text_of(failed)
                left = holds(tmp_path)
        elif ending == "cancelled":
            async with first as client:
                await cut_off(lambda: client.call_tool("generate_image", call), lambda: uploading(controls))
                left = await let_go_within(tmp_path, 1.0)
        else:
            await gone_while_waiting(first, call, lambda: uploading(controls))
            left = holds(tmp_path)  # the server's runtime is closed: nothing of it runs to let go later
        made = await second.call_tool("generate_image", call)
    assert left == [], left
    assert made.structured_content["status"] == "completed", text_of(made)
    assert "auto-approved" in text_of(made) and ON_ITS_WAY not in text_of(made), text_of(made)
    assert len(await controls.creates()) == 1 and holds(tmp_path) == []


async def test_an_auto_approved_call_cancelled_before_its_create_leaves_its_own_server_free_to_auto_approve_it(
    connect, controls, tmp_path
):
    """The same on the server whose call was cancelled: its in-process claim on the request (``SpendingCalls``) is
    released with the call, so the request sent again there at once is auto-approved and made, once, never warned of
    the cancelled call as on its way."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    call = {**EDIT, "wait_seconds": 20}
    async with connect(auto_approve_credits=10) as client:
        await cut_off(lambda: client.call_tool("generate_image", call), lambda: uploading(controls))
        left = await let_go_within(tmp_path, 1.0)
        again = await client.call_tool("generate_image", call)
    assert left == [], left
    assert again.structured_content["status"] == "completed", text_of(again)
    assert "auto-approved" in text_of(again) and ON_ITS_WAY not in text_of(again), text_of(again)
    assert len(await controls.creates()) == 1


async def test_an_auto_approved_call_gone_after_its_create_was_sent_is_never_made_again_elsewhere(
    connect, controls, tmp_path
):
    """Letting go of the hold never erases what says a create may have been charged: a call whose client went away
    while its create was on its way to KIE lets go of its hold, and its create attempt, written before it was sent,
    tells the other server of it. The same request there is answered with that task or asked with a warning, never
    auto-approved into a second create."""
    await controls.fault("create", kind="slow", seconds=1.0)
    call = {**IMAGE, "wait_seconds": 20}
    async with connect(auto_approve_credits=10) as second:

        async def sent() -> bool:
            return bool(await controls.creates())

        await gone_while_waiting(connect(auto_approve_credits=10), call, sent)
        again = await second.call_tool("generate_image", call)
        await anyio.sleep(1.5)  # the first create is answered, whatever became of its call
    said, status = text_of(again), again.structured_content["status"]
    assert len(await controls.creates()) == 1, said
    replayed = "created and charged nothing new" in said  # the handshake era: the call was cut off, its task kept
    warned = status == "confirmation_required" and said.startswith("WARNING: ") and "a second time" in said
    assert replayed or warned, said


@pytest.mark.parametrize("mode", ["legacy"])  # the lease, not the era: once
async def test_a_hold_is_renewed_while_its_call_runs_so_it_never_lapses_under_a_live_upload(
    connect, controls, tmp_path, monkeypatch
):
    """The lease, shortened here (renewed every 0.05 s, lapsing after 0.5 s unrenewed) so that an upload outlives it:
    the first call's hold is renewed while its file goes up, so the same request sent to another server twice the
    lease later is still asked, not auto-approved into a second create."""
    monkeypatch.setattr(ledger, "HOLD_RENEW", 0.05, raising=False)
    monkeypatch.setattr(ledger, "HOLD_LEASE", 0.5, raising=False)
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    call = {**EDIT, "wait_seconds": 20}
    async with connect(auto_approve_credits=10) as first, connect(auto_approve_credits=10) as second:

        async def later() -> Any:
            await anyio.sleep(1.0)  # twice the lease
            return await second.call_tool("generate_image", call)

        made, retried = await retried_while_uploading(controls, lambda: first.call_tool("generate_image", call), later)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert retried.structured_content["status"] == "confirmation_required", text_of(retried)
    assert ON_ITS_WAY in text_of(retried) and len(await controls.creates()) == 1


@pytest.mark.parametrize("mode", ["auto"])  # the event loop, not the era: once
async def test_a_hold_written_while_another_program_holds_the_journal_never_stalls_the_server(
    connect, controls, tmp_path
):
    """The hold is a journal write on the request path: while another writer holds the journal's lock as the gate
    auto-approves (taken while the call's balance was read, after the call waited for the lock), it waits for the
    lock in a worker thread, never in SQLite on the event loop, so other calls are answered meanwhile; once the lock
    goes, the call holds its request, makes its task and lets go."""
    async with connect(auto_approve_credits=10) as client:
        await client.call_tool("list_models", {})  # the server up: the slow read is the spend's balance
        await controls.fault("credit", kind="slow", seconds=0.6)
        answers: dict[str, Any] = {}

        async def generate() -> None:
            answers["made"] = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})

        holder: sqlite3.Connection | None = None
        try:
            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    group.start_soon(generate)
                    await anyio.sleep(0.3)  # the call reads the balance
                    holder = lock_journal(tmp_path)
                    await anyio.sleep(0.8)  # the gate has decided, and waits for the lock
                    began = time.monotonic()
                    models = await client.call_tool("list_models", {"kind": "image"})
                    answered_in = time.monotonic() - began
                    waiting = "made" not in answers and holds(tmp_path) == []
                    holder.execute("ROLLBACK")  # the other program lets go: the hold is written, the call goes on
        finally:
            if holder is not None:
                holder.close()
    assert answered_in < 10 and not models.is_error  # well before the lock's 30 s wait (BUSY_SECONDS) would end
    assert waiting
    made = answers["made"]
    assert made.structured_content["status"] == "completed" and "auto-approved" in text_of(made), text_of(made)
    assert len(await controls.creates()) == 1 and holds(tmp_path) == []


# -- real server processes ------------------------------------------------------------------------------------------


@pytest.fixture
def simulator() -> Iterator[str]:
    yield from simulator_running("1000", kill=True)  # an upload held by a slow fault would hold a graceful stop


def answer_of(server: Server, request_id: int) -> tuple[str, str]:
    """The status and the text of the answer to ``request_id``."""
    result = server.answer(request_id)["result"]
    return result["structuredContent"]["status"], result["content"][0]["text"]


def generate(server: Server, request_id: int, arguments: dict[str, Any]) -> None:
    call = {"name": "generate_image", "arguments": {**arguments, "wait_seconds": 20}}
    server.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": call})


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_two_server_processes_sent_the_same_auto_approvable_request_at_once_make_it_once(simulator, tmp_path):
    """The review's repro: two kie-mcp processes on one workspace (a host that restarted the server and sent the call
    again to the new process while the old one still ran), auto-approval on, a slow upload: both were auto-approved and
    two creates were sent. The same request sent to both at the same moment is made once; the other server's call is
    answered with a quote and the warning that a call of it is on its way; sent again once that call made its task, it
    is warned about as made minutes ago."""
    workspace = workspace_with_a_picture(tmp_path)
    fault = {"endpoint": "upload", "fault": {"kind": "slow", "seconds": 2.5}, "times": 1}
    httpx2.post(f"{simulator}/__sim/faults", json=fault, timeout=10).raise_for_status()
    servers = [Server(simulator, workspace), Server(simulator, workspace)]
    try:
        answers: dict[int, tuple[str, str]] = {}

        def ask(n: int) -> None:
            generate(servers[n], 1, WITH_FILE)
            answers[n] = answer_of(servers[n], 1)

        both = [threading.Thread(target=ask, args=(n,)) for n in range(2)]
        for thread in both:
            thread.start()
        for thread in both:
            thread.join(60)
        by_status = {status: (n, text) for n, (status, text) in answers.items()}
        assert sorted(by_status) == ["completed", "confirmation_required"], answers
        other, said = by_status["confirmation_required"]
        assert said.startswith("WARNING: a call of this exact request") and ON_ITS_WAY in said, said
        generate(servers[other], 2, WITH_FILE)
        status, again = answer_of(servers[other], 2)
    finally:
        for server in servers:
            server.kill()
    assert status == "confirmation_required" and again.startswith(MADE_MINUTES_AGO), again
    assert ON_ITS_WAY not in again, again
    assert creates_made(simulator) == 1 and holds(workspace) == []


class AutoUploading(Uploading):
    """The installed kie-mcp over real stdio (in a PID namespace of its own where ``prefix`` says so), sending an
    auto-approved request whose input file is uploading."""

    def __init__(self, base: str, workspace: Path, prefix: list[str]) -> None:
        Server.__init__(self, base, workspace, prefix=prefix)
        generate(self, 1, WITH_FILE)
        wait_for_upload(base)


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("namespace", ["own", "same"])
def test_a_hold_a_killed_server_left_never_blocks_the_request_past_its_lease(simulator, tmp_path, namespace):
    """A server killed (SIGKILL) while its auto-approved call's file uploaded leaves its hold in the journal, with no
    create sent. Where its process can be seen gone (this machine, this PID namespace), the same request is
    auto-approved on the next server at once. A server in a PID namespace of its own (a container) cannot be told
    gone from here: the request is asked, warned about the call on its way, until the hold's lease lapses (unrenewed
    for ``ledger.HOLD_LEASE``, three minutes); then it is auto-approved and made, once."""
    prefix = own_namespace() if namespace == "own" else []
    if namespace == "own" and not prefix:
        pytest.skip("no PID namespace of its own for a process here (unshare needs root)")
    workspace = workspace_with_a_picture(tmp_path)
    slow_uploads(simulator)
    uploading = AutoUploading(simulator, workspace, prefix)
    try:
        if prefix:  # the server, not ``unshare`` in front of it
            uploading.stop(signal.SIGKILL)
    finally:
        uploading.kill()  # SIGKILL
    left = holds(workspace)  # nothing could run to let it go
    server = Server(simulator, workspace)
    try:
        generate(server, 1, WITH_FILE)
        first = answer_of(server, 1)
        if namespace == "own":
            with sqlite3.connect(journal_path(workspace)) as db:  # minutes pass: nobody renews it
                db.execute("UPDATE quotes SET expires = expires - ? WHERE kind = 'auto'", (LAPSED,))
            generate(server, 2, WITH_FILE)
            lapsed = answer_of(server, 2)
    finally:
        server.kill()
    if namespace == "own":
        assert first[0] == "confirmation_required" and ON_ITS_WAY in first[1], first
        assert lapsed[0] == "completed" and "auto-approved" in lapsed[1], lapsed
        assert ledger.HOLD_LEASE < LAPSED
    else:
        assert first[0] == "completed" and "auto-approved" in first[1], first
    assert creates_made(simulator) == 1 and len(left) == 1 and holds(workspace) == []
