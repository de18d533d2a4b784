"""Promises to a host that cancels a call and sends it again, kept through the real MCP client in both eras:

- a call cut off while its input file uploads leaves nothing reserved (the reservation, made before the upload,
  is given back);
- a call cut off after KIE was asked to create is answered, when sent again, with what it made: never a second
  create, whether it was approved by a quote, a form or auto-approval; once that answer is given, the same request
  is a new one again;
- a call cut off while its create is still on its way to KIE is known at once: its retry waits for the create to land
  and gets what it made (or, when the create takes too long, is refused without sending anything);
- a quote whose call was cut off before any create (while an input uploaded) is given back, and so is an approval
  (a quote, a 2026-07-28 form's yes) whose call was cut off while KIE's refusal of its create (a 429) was waited
  out: it bought nothing; one whose create may have reached KIE never is; a retry sent at once after such a cut-off
  is neither warned of that call nor (under auto-approval) asked because of it;
- a retry answered with what the cut-off call made waits on its tasks, with progress, as the first call would have;
- two identical calls at once are two requests (only a call whose answer was cut off is replayed), but a host that
  timed out a call without cancelling it and sent it again while the first still waits (on its task, or earlier:
  its input files still uploading, here or through another server on the workspace; or its balance still being
  read) is asked, never auto-approved into paying twice, and so is the same request again within minutes of being
  made;
- a used quote says what it made;
- a second server starting on the workspace leaves the first one's create in flight alone.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint
from mcp.types import ElicitResult
from PIL import Image

from .conftest import answering, text_of

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit", "images": ["references/face.png"]}


def picture(workspace: Path) -> None:
    folder = workspace / "references"
    folder.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (512, 512), "red").save(buffer, "PNG")
    (folder / "face.png").write_bytes(buffer.getvalue())


async def cut_off(
    call: Callable[[], Awaitable[Any]], started: Callable[[], Awaitable[bool]], within: float = 10
) -> None:
    """Start ``call`` and cancel it, as a host that gives up does, once ``started`` says it reached KIE (or began
    its work: ``within`` seconds at most)."""
    async with anyio.create_task_group() as group:
        group.start_soon(call)
        with anyio.fail_after(within):
            while not await started():  # noqa: ASYNC110 - the simulator's log: nothing to await but its answer
                await anyio.sleep(0.02)
        group.cancel_scope.cancel()


async def spent_today(client: Any) -> float:
    return (await client.call_tool("check_credits", {})).structured_content["spent_today"]


async def test_a_call_cut_off_while_its_input_uploads_leaves_nothing_reserved(connect, controls, tmp_path):
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=1.0)

    async def uploading() -> bool:
        return any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"])

    async with connect(elicitation=answering(), max_credits_per_day=4) as client:
        await cut_off(lambda: client.call_tool("generate_image", EDIT), uploading)
        await anyio.sleep(1.5)  # the slow upload ends on the simulator's side
        before = await spent_today(client)
        again = await client.call_tool("generate_image", EDIT)
    assert before == 0  # nothing was created, so nothing may stay reserved
    assert not again.is_error and again.structured_content["status"] == "completed", text_of(again)
    assert len(await controls.creates()) == 1


async def test_a_host_retry_with_the_quote_after_a_cut_off_create_gets_the_task_it_made(connect, controls):
    await controls.fault("create", kind="slow", seconds=0.6)
    async with connect() as client:  # no forms: the quote_id is the approval
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        call = {**IMAGE, "quote_id": quote}
        await cut_off(lambda: client.call_tool("generate_image", call), controls.creates)
        await anyio.sleep(1.0)
        again = await client.call_tool("generate_image", call)
        [task] = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
    assert len(await controls.creates()) == 1
    assert again.structured_content["tasks"][0]["task_id"] == task["task_id"], text_of(again)
    assert "created and charged nothing new" in text_of(again) and "cut off" in text_of(again)
    assert again.structured_content.get("quote") is None  # no fresh quote to pay twice


async def test_a_host_retry_after_a_cut_off_create_never_creates_twice_then_the_request_is_new(connect, controls):
    """Approved in the form: the retry is not asked again, it is answered with the task the first call made. The
    same request after that answer is a new one: asked and created as usual."""
    await controls.fault("create", kind="slow", seconds=0.6)
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        await cut_off(lambda: client.call_tool("generate_image", IMAGE), controls.creates)
        await anyio.sleep(1.0)
        questions = len(asked)
        again = await client.call_tool("generate_image", IMAGE)
        assert len(await controls.creates()) == 1 and len(asked) == questions  # not asked, not created again
        [task] = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
        assert again.structured_content["tasks"][0]["task_id"] == task["task_id"], text_of(again)
        another = await client.call_tool("generate_image", IMAGE)
    assert another.structured_content["status"] == "completed", text_of(another)
    assert len(await controls.creates()) == 2 and len(asked) == questions + 1


async def test_an_auto_approved_call_cut_off_after_its_create_is_not_created_again(connect, controls):
    """Sent again, a call cut off after its create is answered with its task; an estimate of it meanwhile says so,
    never that approving it pays a second time (the review: it warned of a charge the retry never makes)."""
    await controls.fault("create", kind="slow", seconds=0.6)
    async with connect(auto_approve_credits=10) as client:
        await cut_off(lambda: client.call_tool("generate_image", IMAGE), controls.creates)
        await anyio.sleep(1.0)
        estimate = text_of(await client.call_tool("estimate_cost", IMAGE))
        again = await client.call_tool("generate_image", IMAGE)
        spent = await spent_today(client)
    assert len(await controls.creates()) == 1 and spent == 8
    task_id = again.structured_content["tasks"][0]["task_id"]
    assert task_id and f"after KIE made task {task_id}: sending it again answers with that task" in estimate, estimate
    assert "second time" not in estimate and "pays for it, again" not in estimate, estimate


async def test_a_call_cut_off_during_its_create_has_its_task_followed_and_saved_with_nobody_asking(
    connect, controls, tmp_path
):
    """The audit: a generation cancelled while its create was on its way never reached the follower (only its wait
    hands tasks over), so the task sat unfollowed until the rescan adopted it, ``QUIET`` plus up to a ``RESCAN`` later
    (about 4 minutes with the default poll settings; here, a tenth of them, 18 to 24 seconds). The cut-off call hands
    its tasks over: the result is saved within the first look's time, nobody asking."""
    import sqlite3

    await controls.fault("create", kind="slow", seconds=0.6)
    async with connect(auto_approve_credits=10, poll_min_interval=0.2, poll_max_interval=1.5) as client:
        await cut_off(lambda: client.call_tool("generate_image", IMAGE), controls.creates)
        journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
        saved: list[tuple[str]] = []
        with anyio.move_on_after(10):  # the first look is at 0.6 s (1.2 x the model's 5 s, a tenth of the time)
            while not saved:
                await anyio.sleep(0.1)
                with sqlite3.connect(journal) as db:
                    saved = db.execute("SELECT path FROM files").fetchall()
    assert saved, "the task of the cut-off call was not followed: nobody saved its result"
    assert (tmp_path / saved[0][0]).is_file()
    assert len(await controls.creates()) == 1


async def test_a_retry_is_replayed_even_when_the_first_calls_reservation_left_too_little_under_the_cap(
    connect, controls
):
    """The first call's 8 credits leave 4 of a cap of 12: the retry spends nothing, so it is not refused over the
    cap (which would hide the task it made), it is answered with that task."""
    await controls.fault("create", kind="slow", seconds=0.6)
    async with connect(auto_approve_credits=10, max_credits_per_day=12) as client:
        await cut_off(lambda: client.call_tool("generate_image", IMAGE), controls.creates)
        await anyio.sleep(1.0)
        again = await client.call_tool("generate_image", IMAGE)
    assert not again.is_error and again.structured_content["tasks"][0]["task_id"], text_of(again)
    assert "created and charged nothing new" in text_of(again)
    assert len(await controls.creates()) == 1


async def test_two_identical_calls_at_once_are_two_requests(connect, controls):
    """Neither is answered as a replay of the other (only a call whose answer was cut off is). Under auto-approval the
    one approved second cannot be told from a host's retry of the first: it is asked (here, handed a quote of its
    own) with the warning that the other is on its way, never auto-approved into paying twice unasked."""
    answers: list[Any] = []

    async def call(client: Any) -> None:
        answers.append(await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5}))

    async with connect(auto_approve_credits=10) as client, anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(call, client)
    statuses = sorted(answer.structured_content["status"] for answer in answers)
    [asked] = [answer for answer in answers if answer.structured_content["status"] == "confirmation_required"]
    assert statuses == ["completed", "confirmation_required"], [text_of(answer) for answer in answers]
    assert text_of(asked).startswith("WARNING: ") and "created and charged nothing new" not in text_of(asked)
    assert asked.structured_content["quote"]["quote_id"]
    assert len(await controls.creates()) == 1


async def test_a_retry_sent_while_the_first_call_still_waits_is_never_auto_approved_into_paying_twice(
    connect, controls
):
    """The protocol audit: a host timed out a generate call without notifications/cancelled and sent it again. With
    auto-approval the retry was created and charged a second time, unasked and unsaid (with forms the person was
    at least asked). Now a call of the same request still running here keeps the retry from being auto-approved:
    with forms the person is asked, told of the first call's task; without forms the retry is a quote to approve."""
    await controls.post("clock/speed", {"speed": 0})  # KIE never finishes the first call's task while it waits
    for forms in (True, False):
        waiting = {**IMAGE, "prompt": f"{IMAGE['prompt']}, forms {forms}", "wait_seconds": 30}  # a request each
        asked: list[str] = []
        elicitation = answering(seen=asked, confirm=False) if forms else None
        before = len(await controls.creates())
        connected = connect(elicitation=elicitation, auto_approve_credits=10)
        async with connected as client, anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "generate_image", waiting)
            with anyio.fail_after(10):
                while len(await controls.creates()) == before:  # noqa: ASYNC110 - the simulator's log
                    await anyio.sleep(0.02)
            await anyio.sleep(0.2)  # the first call waits on its task
            retry = await client.call_tool("generate_image", waiting)
            group.cancel_scope.cancel()
        created = await controls.creates()
        assert len(created) == before + 1, (forms, text_of(retry))  # the first call's create only
        if forms:
            assert len(asked) == 1 and "is still waiting for its result" in asked[0], asked
        else:
            assert retry.structured_content["status"] == "confirmation_required", text_of(retry)
            assert "is still waiting for its result" in text_of(retry)


async def retried_while_uploading(
    controls: Any, first: Callable[[], Awaitable[Any]], retry: Callable[[], Awaitable[Any]]
) -> tuple[Any, Any]:
    """The answers of ``first`` and of ``retry``, sent once ``first``'s input file is on its way to the simulator (a
    slow upload: the call has used its approval, and the journal has no create of it yet)."""
    answers: dict[str, Any] = {}

    async def uploading() -> bool:
        return any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"])

    async def run_first() -> None:
        answers["first"] = await first()

    async with anyio.create_task_group() as group:
        group.start_soon(run_first)
        with anyio.fail_after(10):
            while not await uploading():  # noqa: ASYNC110 - the simulator's log: nothing to await but its answer
                await anyio.sleep(0.02)
        answers["retry"] = await retry()
    return answers["first"], answers["retry"]


@pytest.mark.parametrize("forms", [True, False], ids=["forms", "no-forms"])
async def test_a_retry_while_the_first_call_still_uploads_is_never_auto_approved_into_paying_twice(
    connect, controls, tmp_path, forms
):
    """The spend audit: a host timed out a call while its input file was still going up (no create attempt in the
    journal yet) and sent it again: the retry was auto-approved (or asked with no word of the first call) and created
    a second time. The server knows the first call is under way from the moment it used its approval: the retry is
    asked (or handed a quote) with the warning that approving it pays twice, and never auto-approved."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    asked: list[str] = []
    elicitation = answering(seen=asked, confirm=False) if forms else None
    call = {**EDIT, "wait_seconds": 20}
    async with connect(elicitation=elicitation, auto_approve_credits=10) as client:
        made, retry = await retried_while_uploading(
            controls, lambda: client.call_tool("generate_image", call), lambda: client.call_tool("generate_image", call)
        )
    warning = "WARNING: a call of this exact request, approved at"
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1, text_of(retry)
    if forms:  # the first call was auto-approved; the retry is asked, the warning first
        assert len(asked) == 1 and asked[0].startswith(warning), asked
        assert "is still on its way to KIE" in asked[0] and "a second time" in asked[0]
        assert retry.structured_content["status"] == "declined", text_of(retry)
    else:
        assert retry.structured_content["status"] == "confirmation_required", text_of(retry)
        assert text_of(retry).startswith(warning) and "is still on its way to KIE" in text_of(retry)


@pytest.mark.parametrize("forms", [True, False], ids=["forms", "no-forms"])
async def test_a_retry_while_the_first_calls_balance_is_read_is_never_auto_approved_into_paying_twice(
    connect, controls, forms
):
    """The spend audit: a host timed out an auto-approved call while its balance was still being read (before the
    call was known to be under way) and sent it again: both were auto-approved and created, unasked and unsaid. The
    server holds the request from the moment the gate auto-approves a call of it: the other is asked (or handed a
    quote) with the warning that approving it pays twice, and only one create is made."""
    asked: list[str] = []
    elicitation = answering(seen=asked, confirm=False) if forms else None
    async with connect(elicitation=elicitation, auto_approve_credits=10) as client:
        await client.call_tool("list_models", {})  # the server up: the slow read is the spend's balance
        await controls.fault("credit", kind="slow", seconds=1.5)
        answers: list[Any] = []

        async def call() -> None:
            answers.append(await client.call_tool("generate_image", IMAGE))

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await anyio.sleep(0.5)  # the host gave up waiting and sent the same call again
            group.start_soon(call)
    by_status = {answer.structured_content["status"]: answer for answer in answers}
    assert len(await controls.creates()) == 1, [text_of(answer) for answer in answers]
    assert by_status["completed"], by_status
    if forms:  # the person is asked, the warning first, and says no
        assert len(asked) == 1 and asked[0].startswith("WARNING: "), asked
        assert "a second time" in asked[0] and "declined" in by_status, by_status
    else:
        retry = by_status["confirmation_required"]
        assert text_of(retry).startswith("WARNING: ") and "a second time" in text_of(retry), text_of(retry)


async def test_a_retry_through_another_server_while_the_first_call_uploads_is_never_auto_approved(
    connect, controls, tmp_path
):
    """The same retry reaching another server on the workspace: the first call's quote, used by a live process with
    no create in the journal yet, tells it that call is under way."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=2.0)
    async with connect() as client, connect(auto_approve_credits=10) as elsewhere:
        quote = (await client.call_tool("estimate_cost", EDIT)).structured_content["quote"]["quote_id"]
        made, retry = await retried_while_uploading(
            controls,
            lambda: client.call_tool("generate_image", {**EDIT, "quote_id": quote, "wait_seconds": 20}),
            lambda: elsewhere.call_tool("generate_image", {**EDIT, "wait_seconds": 20}),
        )
    assert made.structured_content["status"] == "completed", text_of(made)
    assert retry.structured_content["status"] == "confirmation_required", text_of(retry)
    assert "is still on its way to KIE" in text_of(retry)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("forms", [True, False], ids=["forms", "no-forms"])
async def test_the_same_request_again_minutes_after_it_was_made_is_asked_never_auto_approved(connect, controls, forms):
    """The spend audit: a host that timed out a call without cancelling it and sent it again once the first had
    finished paid twice under auto-approval, the second answer only noting the request was made before. The same
    request within ``RECENTLY_MADE`` of being made is asked (or handed a quote), told what was made and when; the
    person's yes, or that quote, still makes it."""
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked) if forms else None, auto_approve_credits=10) as client:
        first = await client.call_tool("generate_image", IMAGE)  # auto-approved: 8 credits
        task_id = first.structured_content["tasks"][0]["task_id"]
        priced = (await client.call_tool("estimate_cost", IMAGE)).structured_content
        again = await client.call_tool("generate_image", IMAGE)
        if not forms:  # the quote handed back, approved in the chat
            assert again.structured_content["status"] == "confirmation_required", text_of(again)
            quote = again.structured_content["quote"]["quote_id"]
            approved = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        spent = await spent_today(client)
    warning = "WARNING: this exact request was already made at"
    assert first.structured_content["status"] == "completed", text_of(first)
    assert priced["auto_approved"] is False and warning in priced["message"] and task_id in priced["message"]
    if forms:
        assert len(asked) == 1 and asked[0].startswith(warning) and task_id in asked[0], asked
        assert again.structured_content["status"] == "completed", text_of(again)
    else:
        assert text_of(again).startswith(warning) and task_id in text_of(again)
        assert approved.structured_content["status"] == "completed", text_of(approved)
    assert len(await controls.creates()) == 2 and spent == 16


async def test_the_same_request_again_after_its_task_failed_is_auto_approved(connect, controls):
    """A task that failed was refunded: asking for it again pays once, so it is not held back as made minutes ago."""
    await controls.fault("create", kind="task_fail")
    async with connect(auto_approve_credits=10) as client:
        failed = await client.call_tool("generate_image", IMAGE)
        again = await client.call_tool("generate_image", IMAGE)
    assert failed.structured_content["status"] == "failed", text_of(failed)
    assert again.structured_content["status"] == "completed", text_of(again)
    assert len(await controls.creates()) == 2


async def test_the_same_request_asked_for_after_the_recent_window_is_auto_approved_as_another_take(
    connect, controls, monkeypatch
):
    """Past ``RECENTLY_MADE`` the same request is another take, auto-approved as before (the window is shortened
    here, not waited out)."""
    from kie_mcp import generation

    monkeypatch.setattr(generation, "RECENTLY_MADE", 0.5)
    async with connect(auto_approve_credits=10) as client:
        await client.call_tool("generate_image", IMAGE)
        await anyio.sleep(0.7)
        later = await client.call_tool("generate_image", IMAGE)
    assert later.structured_content["status"] == "completed", text_of(later)
    assert len(await controls.creates()) == 2


async def test_a_used_quote_says_what_it_made(connect, controls):
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        made = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        reused = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
    task_id = made.structured_content["tasks"][0]["task_id"]
    assert reused.structured_content["status"] == "confirmation_required"
    assert f"already used; a quote approves one request once. It made task {task_id}" in text_of(reused)
    assert len(await controls.creates()) == 1


async def test_a_second_server_on_the_workspace_leaves_a_live_create_alone(connect, controls):
    """Server B starting while server A sends a create does not call A's create interrupted: A is alive. KIE answers
    A's create only once B has answered, however long B takes to start."""
    await controls.fault("create", kind="hold", seconds=60)
    made: list[Any] = []
    async with connect(elicitation=answering()) as first, anyio.create_task_group() as group:

        async def call() -> None:
            made.append(await first.call_tool("generate_image", {**IMAGE, "wait_seconds": 20}))

        group.start_soon(call)
        try:
            with anyio.fail_after(10):
                while not await controls.creates():  # noqa: ASYNC110 - the create reached KIE (and is held)
                    await anyio.sleep(0.02)
            async with connect() as second:
                during = await second.call_tool("check_credits", {})
        finally:
            released = (await controls.post("faults/release"))["released"]
    assert released == 1  # A's create was on its way throughout
    assert "last stopped" not in text_of(during) and during.structured_content["unknown_creates"] == 0
    assert made[0].structured_content["status"] == "completed", text_of(made[0])


async def test_a_call_cut_off_while_its_previews_are_made_is_replayed_not_created_again(connect, controls, monkeypatch):
    """The tasks exist and are journaled, but the host gives up while the answer's previews are made (a 4K image
    or a video poster takes real time): that answer never reached it, so the same request again is a replay."""
    from kie_mcp import surface

    made = surface._thumbnails_ready
    started = anyio.Event()
    slow_once: list[int] = []

    async def slow_first(*args: Any, **kwargs: Any) -> Any:
        if not slow_once:
            slow_once.append(1)
            started.set()
            await anyio.sleep(5)
        return await made(*args, **kwargs)

    monkeypatch.setattr(surface, "_thumbnails_ready", slow_first)
    async with connect(auto_approve_credits=10) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "generate_image", IMAGE)
            await started.wait()
            group.cancel_scope.cancel()
        again = await client.call_tool("generate_image", IMAGE)
    assert "created and charged nothing new" in text_of(again), text_of(again)
    assert len(await controls.creates()) == 1


async def test_a_generate_call_without_the_estimates_quote_names_that_quote(connect, controls):
    """The agent priced the request, the user said yes in chat, and the agent forgot quote_id: the answer names the
    estimate's quote as the approval it may pass, instead of only a new one to ask the user about again."""
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        forgot = await client.call_tool("generate_image", IMAGE)
        passed = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
    assert forgot.structured_content["status"] == "confirmation_required"
    assert f"pass quote_id='{quote}' instead" in text_of(forgot)
    assert passed.structured_content["status"] == "completed" and len(await controls.creates()) == 1


# -- a retry that arrives while the cut-off call's create is still on its way to KIE -------------------------------


@pytest.mark.parametrize("approval", ["auto", "form", "quote"])
async def test_a_retry_while_the_cut_off_create_is_still_in_flight_never_creates_twice(connect, controls, approval):
    """The audit: the host gave up while the create was being sent (slow, or waiting for a pacing slot) and sent the
    same request at once. The first call's attempt still read "running in a live process", so the retry was a new
    request: two creates, two charges (and, with the form, the user asked twice). Now the retry waits for the
    cut-off create to land and is answered with what it made."""
    await controls.fault("create", kind="slow", seconds=1.5)
    asked: list[str] = []
    overrides = {"auto": {"auto_approve_credits": 10}, "form": {"elicitation": answering(seen=asked)}, "quote": {}}
    async with connect(**overrides[approval]) as client:
        call = dict(IMAGE)
        if approval == "quote":
            call["quote_id"] = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        await cut_off(lambda: client.call_tool("generate_image", call), controls.creates)
        again = await client.call_tool("generate_image", call)  # at once: the first create is still in flight
        [task] = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
        spent = await spent_today(client)
    assert len(await controls.creates()) == 1 and spent == 8
    assert not again.is_error and again.structured_content["tasks"][0]["task_id"] == task["task_id"], text_of(again)
    assert "created and charged nothing new" in text_of(again)
    assert len(asked) == (1 if approval == "form" else 0)


@pytest.mark.parametrize("variations", [2, 3])
async def test_a_retry_after_a_cut_off_as_its_last_create_was_answered_returns_every_task_it_made(
    connect, controls, tmp_path, variations
):
    """The review: a call of ``variations`` images cut off the moment its last create's answer was recorded. That
    create was sent and recorded (shielded), but the cut-off landed before the call counted it as its own, so only
    the others were marked cut off: the retry answered with one task too few and said the last "were never sent ...
    nothing was created or charged for them. To make them, ask again", while KIE had made and charged it (following
    that advice pays twice). Here KIE answers every create but the last at once and holds the last; once it is let
    go, the host cuts the call off at the first turn of the event loop after the journal holds its task: the retry
    returns every task, creates nothing and never says "never sent"."""
    await controls.fault("create", times=variations - 1, kind="slow", seconds=0)  # answered at once
    await controls.fault("create", kind="hold", seconds=30)  # answered when the test lets it go
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
    call = {**IMAGE, "variations": variations, "wait_seconds": 5}

    def created() -> int:
        with sqlite3.connect(journal) as db:
            return int(db.execute("SELECT COUNT(*) FROM attempts WHERE state = 'created'").fetchone()[0])

    async with connect(auto_approve_credits=50) as client:
        async with anyio.create_task_group() as host:
            host.start_soon(client.call_tool, "generate_image", call)
            with anyio.fail_after(10):
                while len(await controls.creates()) < variations or created() < variations - 1:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
                await anyio.sleep(0.2)  # the creates answered are counted by their call
                released = (await controls.post("faults/release"))["released"]
                while created() < variations:  # each turn of the loop, until the last task is recorded
                    await checkpoint()
            host.cancel_scope.cancel()  # the host gives up at once
        again = await client.call_tool("generate_image", call)
        made = {task["task_id"] for task in (await client.call_tool("list_tasks", {})).structured_content["tasks"]}
    assert released == 1  # the last create was on its way until then
    assert len(await controls.creates()) == variations == len(made)  # never a second create
    returned = {task["task_id"] for task in again.structured_content["tasks"]}
    assert returned == made, text_of(again)
    assert "created and charged nothing new" in text_of(again) and "never sent" not in text_of(again), text_of(again)


async def test_a_retry_returns_every_task_its_cut_off_call_made_even_one_the_call_left_unmarked(
    connect, controls, tmp_path
):
    """A journal the race above left (an older kie-mcp): a cut-off call's last create made a task but stayed marked
    as running in this live server, so the retry, which finds the call by its cut-off creates, knew only the others.
    The retry reads every create of that call from the journal (its request, its process, its reservation): it
    returns both tasks, never says the second was "never sent", and creates nothing."""
    await controls.fault("create", times=2, kind="slow", seconds=0.3)
    journal = tmp_path / ".kie-mcp" / "journal.sqlite3"
    call = {**IMAGE, "variations": 2, "wait_seconds": 5}

    async def sent_both() -> bool:
        return len(await controls.creates()) == 2

    def marks() -> list[int]:
        with sqlite3.connect(journal) as db:
            return [row[0] for row in db.execute("SELECT answered FROM attempts ORDER BY created")]

    async with connect(auto_approve_credits=50) as client:
        await cut_off(lambda: client.call_tool("generate_image", call), sent_both)
        with anyio.fail_after(10):
            while marks() != [2, 2]:  # noqa: ASYNC110 - both creates recorded, and marked as cut off
                await anyio.sleep(0.05)
        with sqlite3.connect(journal) as db:  # the second as the race left it: still "running" here
            db.execute("UPDATE attempts SET answered = 0 WHERE created = (SELECT MAX(created) FROM attempts)")
        again = await client.call_tool("generate_image", call)
        made = {task["task_id"] for task in (await client.call_tool("list_tasks", {})).structured_content["tasks"]}
    assert len(await controls.creates()) == 2 == len(made)
    assert {task["task_id"] for task in again.structured_content["tasks"]} == made, text_of(again)
    assert "created and charged nothing new" in text_of(again) and "never sent" not in text_of(again), text_of(again)
    assert marks() == [1, 1]  # both answered now: the same request again is a new one


async def test_a_retry_that_cannot_wait_for_the_cut_off_create_sends_nothing(connect, controls, monkeypatch, mode):
    """A create that takes longer than a retry waits for it: the retry is refused, nothing sent, and says why; once
    the create has landed, the same request is answered with what it made."""
    if mode != "legacy":
        pytest.skip("the in-process client of the 2026-07-28 era sees the slowed create only once it has landed")
    from kie_mcp.spend import inflight

    monkeypatch.setattr(inflight, "LANDING_WAIT", 0.3)
    await controls.fault("create", kind="hold", seconds=60)  # KIE answers once the retry was refused
    async with connect(auto_approve_credits=10) as client:
        try:
            await cut_off(lambda: client.call_tool("generate_image", IMAGE), controls.creates)
            refused = await client.call_tool("generate_image", IMAGE)
            assert len(await controls.creates()) == 1
        finally:
            released = (await controls.post("faults/release"))["released"]
        with anyio.fail_after(10):  # the create lands, and is recorded
            while not (await client.call_tool("list_tasks", {})).structured_content["tasks"]:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        later = await client.call_tool("generate_image", IMAGE)
    assert released == 1  # the cut-off create was still on its way when the retry was answered
    assert refused.is_error, text_of(refused)
    assert "still on its way to KIE" in text_of(refused) and "nothing new was sent" in text_of(refused)
    assert "created and charged nothing new" in text_of(later), text_of(later)
    assert len(await controls.creates()) == 1


async def test_a_quote_whose_call_was_cut_off_before_any_create_is_still_good(connect, controls, tmp_path):
    """The audit: a call cut off while its input uploaded had used its quote: the retry with the same quote_id was
    told "already used" although it bought nothing. A quote that bought nothing is given back."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=1.0)

    async def uploading() -> bool:
        return any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"])

    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", EDIT)).structured_content["quote"]["quote_id"]
        call = {**EDIT, "quote_id": quote}
        await cut_off(lambda: client.call_tool("generate_image", call), uploading)
        again = await client.call_tool("generate_image", call)
        reused = await client.call_tool("generate_image", call)
    assert not again.is_error and again.structured_content["status"] == "completed", text_of(again)
    assert reused.structured_content["status"] == "confirmation_required"  # and then it is used: one quote, one spend
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("server", ["same", "another"])
async def test_a_quote_sent_again_while_its_first_call_uploads_is_told_a_create_is_on_its_way(
    connect, controls, tmp_path, server
):
    """The audit: the same quote_id sent again while the first call's input file was still going up (its quote used,
    no create attempt in the journal yet) was answered with a fresh quote and "Nothing was spent": approving that
    one paid twice. It is now told a create is on its way, with no new quote, and the first call makes its task;
    also when it reaches another server on the workspace (the journal keeps which live process used the quote)."""
    picture(tmp_path)
    await controls.fault("upload", kind="slow", seconds=1.0)

    async def uploading() -> bool:
        return any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"])

    answers: dict[str, Any] = {}
    async with connect() as client, connect() as elsewhere:
        again_by = client if server == "same" else elsewhere
        quote = (await client.call_tool("estimate_cost", EDIT)).structured_content["quote"]["quote_id"]
        call = {**EDIT, "quote_id": quote, "wait_seconds": 20}

        async def first() -> None:
            answers["first"] = await client.call_tool("generate_image", call)

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            with anyio.fail_after(10):
                while not await uploading():  # noqa: ASYNC110 - the simulator's log: nothing to await but its answer
                    await anyio.sleep(0.02)
            answers["again"] = await again_by.call_tool("generate_image", call)
    again, made = answers["again"], answers["first"]
    assert made.structured_content["status"] == "completed", text_of(made)
    assert again.structured_content["quote"] is None and "Nothing was spent" not in text_of(again)
    if again.structured_content["status"] == "unknown":  # still uploading when its short wait ended
        assert "Another call of this same request is sending its create" in text_of(again)
    else:  # the upload ended within the wait: answered with the task the first call made
        made_ids = {t["task_id"] for t in made.structured_content["tasks"]}
        assert {t["task_id"] for t in again.structured_content["tasks"]} == made_ids, text_of(again)
    assert len(await controls.creates()) == 1


async def test_a_quote_another_machine_is_using_is_told_a_create_is_on_its_way(connect, controls, tmp_path):
    """The review: a quote used by a server on another machine sharing the workspace (a network drive), whose
    liveness cannot be checked from here, read as not in use: its replay got a fresh quote and "Nothing was spent".
    Another machine's use counts as under way for the ten minutes a create may take, as its create attempts do."""
    import time

    from kie_mcp.journal import Journal

    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        journal = Journal.for_workspace(tmp_path)
        journal.execute(  # used a moment ago by a kie-mcp on another machine, still uploading
            "UPDATE quotes SET used = 1, used_by = 'another-machine-4242', used_at = ? WHERE quote_id = ?",
            time.time(),
            quote,
        )
        journal.close()
        again = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
    assert again.structured_content["status"] == "unknown", text_of(again)
    assert again.structured_content["quote"] is None and "Nothing was spent" not in text_of(again)
    assert await controls.creates() == []


# -- what a call cut off after its create leaves: its approval, its retry ----------------------------------------------


async def settled(journal: Path) -> list[str]:
    """The states of the journal's create attempts, once none is still being sent (or waiting to be sent again after
    a 429)."""
    with anyio.fail_after(10):
        while True:
            with sqlite3.connect(journal) as db:
                states = [row[0] for row in db.execute("SELECT state FROM attempts")]
            if states and not {"sending", "waiting"} & set(states):
                return states
            await anyio.sleep(0.05)


@pytest.mark.parametrize(
    ("approval", "mode"),
    [("quote", "auto"), ("quote", "legacy"), ("form", "auto")],
    ids=["quote-2026-07-28", "quote-2025-11-25", "answered-form-2026-07-28"],
)
async def test_an_approval_whose_call_was_cut_off_while_a_429_was_waited_out_is_still_good(
    connect, controls, tmp_path, approval
):
    """The audit: KIE answered the create 429 (refused, not charged) and the host cancelled while the call waited to
    send it again. Nothing was created or spent, yet the approval was used up: the retry with the same quote was
    refused "already used", and the answered form sent again (2026-07-28) "This approval ... was already used".
    Without the cancel such a quote stays good (KIE refused every create it approved); cut off, it does too."""
    await controls.fault("create", kind="code", code=429)
    async with connect(elicitation=answering() if approval == "form" else None, rate_limit_backoff=3.0) as client:
        if approval == "quote":
            quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]

            async def call() -> Any:
                return await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
        else:
            asked = await client.session.call_tool("generate_image", IMAGE, allow_input_required=True)
            assert asked.input_requests, asked
            yes = {key: ElicitResult(action="accept", content={"confirm": True}) for key in asked.input_requests}

            async def call() -> Any:
                state = asked.request_state
                return await client.call_tool("generate_image", IMAGE, input_responses=yes, request_state=state)

        await cut_off(call, controls.creates)  # in the 3 s wait after the 429
        states = await settled(tmp_path / ".kie-mcp" / "journal.sqlite3")
        again = await call()
        spent = await spent_today(client)
    assert states == ["refused"]  # KIE created nothing
    assert again.structured_content["status"] == "completed", text_of(again)
    assert "already used" not in text_of(again)
    assert len(await controls.creates()) == 2 and spent == 8  # the refused create, and the one the retry bought


async def test_an_approval_whose_cut_off_call_sent_a_create_of_unknown_outcome_stays_used(connect, controls, tmp_path):
    """The other side of the rule above: of two variations, KIE answered one create with a server error (it may have
    created and charged it) and the other 429, and the host cancelled in the wait after the 429. That approval may
    have bought a task: the retry with its quote sends nothing, and says the create's outcome is unknown."""
    await controls.fault("create", kind="code", code=500)
    await controls.fault("create", kind="code", code=429)
    call = {**IMAGE, "variations": 2}
    async with connect(rate_limit_backoff=3.0) as client:
        quote = (await client.call_tool("estimate_cost", call)).structured_content["quote"]["quote_id"]
        await cut_off(lambda: client.call_tool("generate_image", {**call, "quote_id": quote}), controls.creates)
        states = await settled(tmp_path / ".kie-mcp" / "journal.sqlite3")
        again = await client.call_tool("generate_image", {**call, "quote_id": quote})
    assert sorted(states) == ["refused", "unknown"]
    assert len(await controls.creates()) == 2  # nothing sent again
    assert again.structured_content["status"] == "unknown", text_of(again)


async def test_a_retry_right_after_a_cut_off_waits_for_the_task_with_progress_as_the_first_call_would(
    connect, controls
):
    """The audit: retried at once after a cancel (same arguments, so the default 45 s wait), the call was answered at
    once with the cut-off call's task as "queued ... still generating": no wait and no progress. It waits on that
    task as the first call would have, reporting progress, and answers with its results; still one create."""
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def then_finish() -> None:
        await anyio.sleep(0.5)  # the retry waits on the task meanwhile
        await controls.post("clock/speed", {"speed": 1000})

    async with connect(auto_approve_credits=10) as client:
        await controls.post("clock/speed", {"speed": 0})  # KIE does not finish the task until the retry waits on it
        await cut_off(lambda: client.call_tool("generate_image", IMAGE), controls.creates)
        async with anyio.create_task_group() as group:
            group.start_soon(then_finish)
            again = await client.call_tool("generate_image", IMAGE, progress_callback=on_progress)
    assert "created and charged nothing new" in text_of(again), text_of(again)
    assert again.structured_content["status"] == "completed", text_of(again)
    assert again.structured_content["tasks"][0]["state"] == "succeeded"
    assert progress, "the retry reported no progress while it waited"
    assert len(await controls.creates()) == 1


ON_ITS_WAY = ("is still on its way to KIE", "is still waiting for its result")


@pytest.mark.parametrize("approval", ["quote", "form"])
async def test_a_retry_right_after_a_call_cut_off_in_a_429_wait_is_not_warned_of_that_call_which_bought_nothing(
    connect, controls, mode, approval
):
    """The review: a call cut off while it waited out KIE's 429, sent again at once, twice at once. The retries were
    planned while the cut-off call was still settling, and kept what they were told then: the retry that spent
    answered "completed" yet warned that a call of this request "is still on its way to KIE ... Approving this one
    makes it, and pays for it, a second time", though the cut-off call bought nothing. One create bought, and no such
    warning."""
    if approval == "form" and mode != "auto":
        pytest.skip("a form's answer sent again is the 2026-07-28 era's")
    await controls.fault("create", kind="code", code=429)
    answers: dict[str, Any] = {}
    elicitation = answering() if approval == "form" else None
    async with connect(elicitation=elicitation, rate_limit_backoff=2.0) as client:
        arguments: dict[str, Any] = dict(IMAGE)
        if approval == "quote":
            estimate = await client.call_tool("estimate_cost", IMAGE)
            arguments["quote_id"] = estimate.structured_content["quote"]["quote_id"]
        extra: dict[str, Any] = {}
        if approval == "form":
            asked = await client.session.call_tool("generate_image", arguments, allow_input_required=True)
            assert asked.input_requests, asked
            yes = {key: ElicitResult(action="accept", content={"confirm": True}) for key in asked.input_requests}
            extra = {"input_responses": yes, "request_state": asked.request_state}

        async def call(name: str) -> None:
            answers[name] = await client.call_tool("generate_image", arguments, **extra)

        first = anyio.CancelScope()

        async def cut_off_call() -> None:
            with first:
                await call("cut off")

        async with anyio.create_task_group() as group:
            group.start_soon(cut_off_call)
            with anyio.fail_after(10):
                while not await controls.creates():  # noqa: ASYNC110 - the simulator's log
                    await anyio.sleep(0.02)
            first.cancel()  # in the 2 s wait after the 429; the retries are sent at once, while it settles
            group.start_soon(call, "retry")
            group.start_soon(call, "retry at once")
    assert "cut off" not in answers
    retries = [answers["retry"], answers["retry at once"]]
    # The other retry is answered with what this one made.
    spent = [
        again
        for again in retries
        if again.structured_content["status"] == "completed" and "charged nothing new" not in text_of(again)
    ]
    assert len(spent) == 1, [text_of(again) for again in retries]
    assert not any(said in text_of(spent[0]) for said in ON_ITS_WAY), text_of(spent[0])
    assert len(await controls.creates()) == 2  # the refused create, and the one a retry bought


async def test_an_auto_approved_call_cut_off_in_a_429_wait_leaves_its_retry_auto_approved(connect, controls):
    """The review: with KIE_AUTO_APPROVE_CREDITS=10, a call cut off while it waited out KIE's 429 and sent again at
    once was not auto-approved: "confirmation_required" with a new quote and the warning that the cut-off call "is
    still on its way to KIE", though it bought nothing. The gate waits a moment for that call to settle: the retry is
    auto-approved, says nothing of it, and buys the one task."""
    await controls.fault("create", kind="code", code=429)
    async with connect(rate_limit_backoff=2.0, auto_approve_credits=10) as client:
        await cut_off(lambda: client.call_tool("generate_image", IMAGE), controls.creates)  # in the 2 s wait
        again = await client.call_tool("generate_image", IMAGE)
    assert again.structured_content["status"] == "completed", text_of(again)
    assert "auto-approved" in text_of(again)
    assert not any(said in text_of(again) for said in ON_ITS_WAY), text_of(again)
    assert len(await controls.creates()) == 2  # the refused create, and the one the retry bought
