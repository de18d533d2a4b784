"""What a task cost is read by one rule, whether it failed or succeeded, and the figure a person approves is the one
that counts.

The audit (both protocol eras): a FAILED task whose record carried a garbage ``creditsConsumed`` (1e308 as a number
or as text, 5000 for an 8-credit image) was booked as spent: check_task said "1,000,000,000,000,000+ credits charged
by KIE for it, though it failed", check_credits "0 left of the 200 per day", and every later generate was refused
until midnight, at the call and again at the next start (``book_owed_refunds``). A succeeded task's such charge was
already unreadable (its reservation stays counted); now a failed task's is too: the 8 reserved stay counted rather
than given back (KIE usually refunds a failed task, but what it did is not known), said so. A succeeded task's
unreadable charge is said by check_task as the answer said it. And after KIE charged 30 for an 8-credit image (counted
for a day), the form asked "Spend 8 credits ...?" and the person paid 30: the question now leads with "up to 30".

Through the real MCP client against the simulator: its ``task_fail`` fault (and ``POST /__sim/tasks/<id>``) take
``credits_consumed``, the charge the failed record reports.
"""

from __future__ import annotations

import pytest

from .conftest import answering, text_of
from .test_promise_owed_refunds import failed_while_the_journal_is_locked, rows

IMAGE = {"prompt": "a red apple", "model": "nano-banana-2"}  # 8 credits in the bundled table (resolution 1K)


async def spent_today(client) -> float:
    return (await client.call_tool("check_credits", {})).structured_content["spent_today"]


@pytest.mark.parametrize("reported", [1e308, "1e308", 5000, "1e400", "NaN", "Infinity"])
async def test_a_failed_task_s_charge_beyond_belief_never_fills_the_daily_cap(connect, controls, reported):
    await controls.fault("create", kind="task_fail", fail_msg="boom", credits_consumed=reported)
    async with connect(answering(), auto_approve_credits=10, max_credits_per_day=200) as client:
        failed = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        task_id = failed.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        spent = await spent_today(client)
        again = await client.call_tool("generate_image", {**IMAGE, "prompt": "a plum", "wait_seconds": 5})
    assert failed.structured_content["status"] == "failed", text_of(failed)
    assert spent == 8  # the reservation, never the garbage
    assert not again.is_error and again.structured_content["status"] == "completed", text_of(again)
    assert "8 credits reserved stay counted as spent" in text_of(failed), text_of(failed)
    assert "could not be read" in text_of(failed), text_of(failed)
    said = text_of(checked)
    assert "KIE's charge for this task could not be read" in said and "boom" in said, said
    assert "the 8 credits reserved for it stay counted as spent rather than given back" in said, said
    assert "charged by KIE for it" not in said, said


async def test_a_failed_task_s_reason_saying_its_charge_could_not_be_read_gives_its_reservation_back(connect, controls):
    """The review: KIE's failMsg (which KIE writes, and may echo the request) read "upstream said: KIE's charge for
    this task could not be read: 0", no charge reported: the ledger gave the 8 back, but the answer and check_task,
    finding those words in the task's error, said the 8 "stay counted as spent". What the record is marked, never
    KIE's words, says a charge could not be read."""
    await controls.fault(
        "create", kind="task_fail", fail_msg="upstream said: KIE's charge for this task could not be read: 0"
    )
    async with connect(answering(), auto_approve_credits=10) as client:
        failed = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        task_id = failed.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        spent = await spent_today(client)
    assert spent == 0
    assert "Cost: nothing counted" in text_of(failed), text_of(failed)
    assert "stay counted" not in text_of(failed), text_of(failed)
    said = text_of(checked)
    assert "the 8 credits reserved for it were given back" in said, said
    assert "stay counted" not in said, said


async def test_a_failed_task_s_charge_kie_can_have_made_is_booked_and_said_in_the_answer(connect, controls):
    """KIE reports 30 for a failed 8-credit image: a charge it can have made, so it counts, and the answer says it
    (it said "nothing charged (the tasks failed; their reservation was returned)" while 30 counted)."""
    await controls.fault("create", kind="task_fail", credits_consumed=30)
    async with connect(answering(), auto_approve_credits=10) as client:
        failed = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        spent = await spent_today(client)
    assert failed.structured_content["status"] == "failed", text_of(failed)
    assert "Cost: 30 credits charged by KIE, though it failed" in text_of(failed), text_of(failed)
    assert "nothing charged" not in text_of(failed), text_of(failed)
    assert spent == 30


@pytest.mark.parametrize("reported", [1e308, "NaN"])
async def test_a_failed_task_s_charge_beyond_belief_booked_by_the_next_start_never_fills_the_daily_cap(
    connect, controls, tmp_path, monkeypatch, reported
):
    """The task fails, with a charge of 1e308 (or "NaN": reported, though no number, never the same as none), while
    another program holds the journal's lock: its settling is given up and owed. The next start books it from the
    journal (``book_owed_refunds``) by the same rule: nothing given back, nothing more taken, once."""
    task_id = await failed_while_the_journal_is_locked(
        connect, controls, tmp_path, monkeypatch, IMAGE, credits_consumed=reported
    )
    settles = f"SELECT delta, reason FROM spend WHERE ref = '{task_id}'"
    unbooked = rows(tmp_path, settles)
    async with connect(elicitation=answering()) as client:
        spent = await spent_today(client)
        again = await client.call_tool("generate_image", {**IMAGE, "prompt": "a plum", "wait_seconds": 0})
    assert unbooked == []  # the lock really kept its settling out
    assert spent == 8
    assert not again.is_error, text_of(again)
    # booked once, by the start: the task is settled, its 8 kept counted
    assert rows(tmp_path, settles) == [(0.0, "refunded: task failed")]


async def test_check_task_says_a_succeeded_task_s_charge_could_not_be_read_as_the_answer_did(connect, controls):
    """The answer said KIE's charge of 5000 for an 8-credit image could not be read; a later check_task said only
    "KIE does not report this task's charge"."""
    await controls.post("balance", {"credits": 10**6})
    await controls.post("prices", {"nano-banana-2": 5000})
    await controls.post("config", {"report_credits_consumed": True})
    async with connect(answering(), auto_approve_credits=10, max_credits_per_call=100) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
    assert "could not be read" in text_of(made), text_of(made)
    said = text_of(checked)
    assert "KIE's charge for this task could not be read: KIE reported 5000 credits" in said, said
    assert "The 8 credits reserved for it stay counted as spent" in said, said
    assert "does not report" not in said, said


async def test_the_question_and_the_chat_confirmation_lead_with_the_figure_the_caps_count(connect, controls):
    """KIE charged 30 for an 8-credit image (counted for a day): the form asked "Spend 8 credits (about $0.04)" and
    the person paid 30. Both the form and ``confirmation_required`` now ask for up to the 30 counted."""
    await controls.post("prices", {"nano-banana-2": 30})
    await controls.post("config", {"report_credits_consumed": True})
    seen: list[str] = []
    async with connect(answering(seen=seen), auto_approve_credits=10, max_credits_per_call=50) as client:
        await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})  # auto-approved at 8, charged 30
        await client.call_tool("generate_image", {**IMAGE, "prompt": "a fig", "wait_seconds": 5})
    async with connect(auto_approve_credits=10, max_credits_per_call=50) as client:  # no forms: asked in the chat
        asked = await client.call_tool("generate_image", {**IMAGE, "prompt": "a kiwi", "wait_seconds": 5})
    [question] = seen
    assert question.startswith("Spend up to 30 credits (about $0.15) to make 1 image"), question
    assert "KIE's list says 8" in question, question
    assert asked.structured_content["status"] == "confirmation_required", text_of(asked)
    assert "and costs up to 30 credits (about $0.15)" in text_of(asked), text_of(asked)


@pytest.mark.parametrize("reported", [5000, "NaN"])
async def test_list_tasks_says_a_failed_task_s_unreadable_charge_keeps_its_reservation_counted(
    connect, controls, reported
):
    """KIE reports 5000 (or "NaN") for a failed 8-credit image: its 8 reserved stay counted for the day, as
    check_task says, but list_tasks showed the task "(refunded)"."""
    await controls.fault("create", kind="task_fail", fail_msg="boom", credits_consumed=reported)
    async with connect(answering(), auto_approve_credits=10) as client:
        failed = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        listed = await client.call_tool("list_tasks", {})
        spent = await spent_today(client)
    assert failed.structured_content["status"] == "failed", text_of(failed)
    assert spent == 8
    said = text_of(listed)
    assert "(KIE's charge for this task could not be read; the 8 credits reserved stay counted as spent)" in said, said
    assert "refunded" not in said, said


async def test_estimate_cost_leads_with_the_figure_the_caps_count_and_its_quote_carries_it(connect, controls):
    """KIE charged 30 for an 8-credit image: the form and confirmation_required lead with "up to 30", but
    estimate_cost's text led with "x1: 8 credits (about $0.04)" and its quote carried only credits_total 8, so an
    agent relaying the estimate said 8. Its text now leads with the same figure, and the quote carries it."""
    await controls.post("prices", {"nano-banana-2": 30})
    await controls.post("config", {"report_credits_consumed": True})
    async with connect(answering(), auto_approve_credits=10, max_credits_per_call=50) as client:
        await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})  # auto-approved at 8, charged 30
        estimate = await client.call_tool("estimate_cost", {**IMAGE, "prompt": "a fig"})
    said = text_of(estimate)
    quote = estimate.structured_content["quote"]
    assert said.startswith("Nano Banana 2 (nano-banana-2) x1: up to 30 credits (about $0.15). KIE's list says 8"), said
    assert quote["credits_total"] == 8 and quote["credits_counted"] == 30, quote


async def test_a_failed_task_with_no_charge_reported_is_never_said_refunded_on_a_guess(connect, controls, sim):
    """The chaos audit: KIE kept the 8 credits of a failed task (the simulator's ``refund_on_fail`` off) and reported
    no charge; the answer said "nothing charged ... given back" and list_tasks "(refunded)", though nothing here saw a
    refund. The 8 are given back on KIE's documented refund of a failed task, and every answer says so, on its word."""
    sim.config.refund_on_fail = False
    await controls.fault("create", kind="task_fail", fail_msg="boom")
    async with connect(answering(), auto_approve_credits=10) as client:
        failed = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})
        task_id = failed.structured_content["tasks"][0]["task_id"]
        checked = text_of(await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0}))
        listed = text_of(await client.call_tool("list_tasks", {}))
    for said in (text_of(failed), checked, listed):
        assert "KIE refunds failed tasks" in said and "as its docs say" in said, said
        assert "nothing charged" not in said and "(refunded)" not in said, said
