"""Edges of Veo follow-ups (continue_video) that KIE's own answers create: a repeated 4K request refused without the
task it is about, a 1080p request KIE refuses outright, and a 1080p upgrade left running when the server stops.

Each test drives the server through the real MCP client in both protocol eras against the simulator, and checks a
promise: a refusal costs nothing and releases its reserve, a create is never sent again blindly, errors say what to
do, and a task id is never lost (its result is saved, even by the next server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from kie_mcp.journal import Journal, journal_path

from .conftest import answering, one_era_each, text_of
from .test_followups import balance, finished, requests_to, spent_today

VEO = {"prompt": "slow push-in on waves at dusk, gulls overhead", "model": "veo3_fast"}
HD_PATH = "/api/v1/veo/get-1080p-video"
UHD_PATH = "/api/v1/veo/get-4k-video"
HD_MODEL = "veo/get-1080p-video"
UHD_MODEL = "veo/get-4k-video"


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """One era per test (``conftest.one_era_each``): these are the follow-ups' own rules, not the protocol's."""
    return one_era_each(request)


def ledger(workspace: Path) -> list[tuple[float, str]]:
    """The journal's spend ledger, oldest first: every reserve, charge and refund as (credits, reason)."""
    journal = Journal(journal_path(workspace))
    try:
        return [(float(r["delta"]), str(r["reason"])) for r in journal.query("SELECT * FROM spend ORDER BY id")]
    finally:
        journal.close()


def attempts_of(workspace: Path, model: str) -> list[dict[str, Any]]:
    """The create attempts the journal recorded for ``model``, oldest first."""
    journal = Journal(journal_path(workspace))
    try:
        rows = journal.query("SELECT * FROM attempts WHERE model = ? ORDER BY created", model)
        return [dict(row) for row in rows]
    finally:
        journal.close()


# -- 4K: KIE's "already being made" without the task it means -----------------------------------------------------


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ("4k is processing, please wait", "is already being made"),
        ("4k video already generated.", "has already been made"),
    ],
    ids=["processing", "already-generated"],
)
async def test_a_refused_repeat_4k_without_a_task_id_costs_nothing_and_says_where_the_4k_is(
    connect, controls, tmp_path, message, said
):
    """KIE documents that a repeated 4K request is answered 422 with the 4K task in ``data``; when that ``data`` has
    no taskId there is no task to follow. The refusal is no charge: the reserve is released, nothing is sent again,
    and the error says a 4K version of that clip is already being made and how to find it."""
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, VEO)
        before, paid, booked = await spent_today(client), await balance(controls), len(ledger(tmp_path))
        creates = len(await controls.creates())
        await controls.fault("create", kind="code", code=422, msg=message)  # HTTP 200, body code 422, data null
        result = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
        await anyio.sleep(0.3)  # time for any follow-up ask a wrong reading would make
        after = await spent_today(client)
        listed = await client.call_tool("list_tasks", {})
    text = text_of(result)
    assert len(seen) == 2, seen  # the clip and this 4K were asked for; KIE's answer asked nobody again
    assert result.structured_content["status"] == "failed", text
    assert after == before, text
    assert ledger(tmp_path)[booked:] == [(120.0, "reserved"), (-120.0, "refused by KIE")]  # reserved, released
    assert await balance(controls) == paid  # and KIE charged nothing
    assert len(await controls.creates()) == creates + 1 and len(await requests_to(controls, UHD_PATH)) == 1
    assert listed.structured_content["unknown_creates"] == 0  # a refusal, not a create that may have happened
    [attempt] = attempts_of(tmp_path, UHD_MODEL)
    assert attempt["state"] == "refused" and attempt["task_id"] is None
    # What to do: a 4K version of this clip is already being made; where to find it; nothing was charged.
    assert message in text and f"A 4K version of task {source} {said}" in text, text
    assert "nothing was charged" in text, text
    assert f"list_tasks (it shows '(4K version of task {source})'" in text and "https://kie.ai/logs" in text, text
    assert "check_task(task_id=" in text, text
    assert "Fix the field" not in text, text  # KIE's generic 422 advice does not apply to this answer


# -- 1080p: a refusal that is not a wait ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [(422, "The video is not generated successfully"), (400, "record is not exist")],
    ids=["not-generated", "record-not-exist"],
)
async def test_a_refused_1080p_costs_nothing_says_what_to_do_and_is_not_asked_again(
    connect, controls, tmp_path, code, message
):
    """Only "processing" and "record result data is blank" / "is empty" mean "ask again later" (the upgrade
    started, and was charged). Any other refusal means KIE started nothing: the reserve is released, no task is
    followed (asking get-1080p-video again would start, and charge, the upgrade), and the error says what to do."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        before, paid, booked = await spent_today(client), await balance(controls), len(ledger(tmp_path))
        # get-1080p-video is a GET that KIE also answers while preparing, so the simulator counts it as a status
        # endpoint: the fault answers the next status call, which is this request (the clip is finished).
        await controls.fault("status", kind="code", code=code, msg=message)
        result = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 1})
        await anyio.sleep(0.3)  # time for any further ask a wrong reading would make
        after = await spent_today(client)
        listed = await client.call_tool("list_tasks", {})
    text = text_of(result)
    assert result.structured_content["status"] == "failed", text
    assert len(await requests_to(controls, HD_PATH)) == 1, text  # asked once: no loop of asks
    assert after == before, text
    assert ledger(tmp_path)[booked:] == [(5.0, "reserved"), (-5.0, "refused by KIE")]  # reserved, released
    assert await balance(controls) == paid  # and KIE charged nothing
    rows = listed.structured_content["tasks"]
    assert [t["task_id"] for t in rows if t["task_id"].endswith("-1080p")] == []  # nothing to follow
    assert listed.structured_content["unknown_creates"] == 0
    [attempt] = attempts_of(tmp_path, HD_MODEL)
    assert attempt["state"] == "refused" and attempt["task_id"] is None
    # What to do: KIE's words, that nothing was charged, and a next step about the clip, not about a prompt.
    assert message in text and f"did not start the 1080p version of task {source}" in text, text
    assert "nothing was charged" in text and f"check_task(task_id='{source}')" in text, text
    assert "Change the prompt" not in text and "Fix the field" not in text, text


@pytest.mark.parametrize("operation", ["extend", "4k"])
async def test_a_follow_up_of_a_task_kie_does_not_know_says_so_not_fix_a_field(connect, controls, operation):
    """KIE answers a follow-up of a task it has no record of (another account's key, older than 14 days, a sandbox
    restarted) with "record is null": there is no field to fix, and nothing was started or charged."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        before = await spent_today(client)
        await controls.fault("create", kind="code", code=422, msg="record is null")
        prompt = {"prompt": "the gulls fly off"} if operation == "extend" else {}
        result = await client.call_tool("continue_video", {"task_id": source, "operation": operation, **prompt})
        after = await spent_today(client)
    text = text_of(result)
    assert result.structured_content["status"] == "failed", text
    assert f"KIE does not know task {source} under the current API key" in text, text
    assert "Nothing was started or charged" in text and "Fix the field" not in text, text
    assert after == before


@pytest.mark.parametrize("message", ["record result data is empty", "record result data not exist"])
async def test_a_1080p_answered_record_result_data_is_empty_is_followed_as_started(
    connect, controls, tmp_path, message
):
    """KIE's other documented "not ready yet" wordings: the upgrade started (and is charged), so it is followed until
    its file is saved, never treated as a refusal (that would release its reserve and lose the task)."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        await controls.fault("status", kind="code", code=422, msg=message)
        hd = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 30})
    task = hd.structured_content["tasks"][0]
    assert task["task_id"] == f"{source}-1080p" and task["state"] == "succeeded", text_of(hd)
    assert task["files"], text_of(hd)
    assert [a["state"] for a in attempts_of(tmp_path, HD_MODEL)] != ["refused"]


# -- 1080p: a restart while it is being prepared ---------------------------------------------------------------------


async def test_a_1080p_upgrade_left_running_by_a_restart_is_finished_and_saved_by_the_next_server(
    connect, controls, tmp_path
):
    """``<source id>-1080p`` has no task of its own at KIE: it is followed by asking get-1080p-video again. A server
    stopped while KIE prepares it leaves it in the journal; the next server's follower finishes it on its own:
    the 1080p file is saved into outputs/, check_task says it succeeded, and it was charged once."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        paid = await balance(controls)
        await controls.post("clock/speed", {"speed": 0})  # KIE's clock stands still: the 1080p version is not ready
        hd = await client.call_tool("continue_video", {"task_id": source, "operation": "hd"})
    upgrade = f"{source}-1080p"
    task = hd.structured_content["tasks"][0]
    assert hd.structured_content["status"] == "submitted", text_of(hd)
    assert task["task_id"] == upgrade and task["state"] in ("queued", "running")
    assert list((tmp_path / "outputs").rglob(f"*{upgrade}*")) == []  # nothing saved before the restart

    await controls.post("clock/speed", {"speed": 1000})  # KIE goes on preparing it while no server runs
    asks = len(await requests_to(controls, HD_PATH))
    async with connect() as client:  # a new server on the same workspace; it is asked nothing about the upgrade
        for _ in range(400):  # up to 20 s: the follower's own schedule, no tool call nudging it
            saved = list((tmp_path / "outputs").rglob(f"*{upgrade}_1.mp4"))
            if saved:
                break
            await anyio.sleep(0.05)
        assert saved, "the next server's follower did not finish and save the 1080p version"
        checked = await client.call_tool("check_task", {"task_id": upgrade})
        spent = await spent_today(client)
    done = checked.structured_content["task"]
    assert done["state"] == "succeeded" and done["result_urls"][0].endswith("/1080p-0.mp4"), text_of(checked)
    assert done["parent_task_id"] == source and done["operation"] == "hd"
    assert any(Path(f).name == saved[0].name for f in done["files"]), done["files"]
    assert saved[0].stat().st_size > 0 and list((tmp_path / "outputs").rglob(f"*{upgrade}.json"))  # with its sidecar
    assert len(await requests_to(controls, HD_PATH)) > asks  # the new server asked KIE again ...
    assert paid - await balance(controls) == 5  # ... and KIE charged the upgrade once
    assert spent == 60 + 5
    assert len(attempts_of(tmp_path, HD_MODEL)) == 1  # one create, ever
