"""A task found after its create's answer was lost joins the create that made it, and only that one.

The simulator's ``drop_after_create`` makes (and charges) the task, then loses the create's answer: the create is of
unknown outcome, and its answer tells the agent to find the task on https://kie.ai/logs and follow it with
check_task. That task, looked up by its id, is the create's: it takes the create's prompt, session (its results go to
the session's folder) and reservation, which KIE's charge replaces once, and the create is no longer listed as one
that may have been charged. An agent can name any task id of the account, so a task is taken as a create's only when
nothing else can have made it: never one of another model or another prompt, and never when two calls' creates fit.

Through the real MCP client against the simulator, in both protocol eras. The simulator's clock runs at real speed
while the creates are sent (KIE's ``createTime`` is its clock's), then fast, so the videos end in moments.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from PIL import Image

from kie_mcp.processes import HOST
from kie_mcp.sandbox import SANDBOX_API_KEY, SimConfig, Simulator

from .conftest import Controls, answering, session_folder, text_of
from .test_promise_saved_by_one import a_gone_process

VIDEO = {"model": "kling-3.0/video", "prompt": "push in on a bottle", "duration": 5}  # 90 credits, quoted
IMAGE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table"}  # 8 credits
IMAGE_4O = {"model": "gpt-4o-image", "prompt": "a red apple on a wooden table"}  # 6 credits
JOURNAL = Path(".kie-mcp") / "journal.sqlite3"
# Where each family's create goes, and where its body keeps the request's fields: in ``input`` (the Market's
# ``{model, callBackUrl, input}``), or beside whatever else the body holds (GPT-4o Image's flat body).
CREATE_PATH = {"market": "/api/v1/jobs/createTask", "gpt4o": "/api/v1/gpt4o-image/generate"}
MAY_BE_CHARGED = "may have been created and charged"


@pytest.fixture
def sim() -> Simulator:
    """KIE at real speed while the creates go out, so its ``createTime`` is this machine's time (the default 1000x
    clock puts it minutes ahead); each test speeds it up once the creates are answered (``fast``)."""
    return Simulator(SimConfig(speed=1.0))


async def fast(controls: Controls) -> None:
    await controls.post("clock/speed", {"speed": 1000})


async def sim_tasks(controls: Controls) -> list[dict[str, Any]]:
    """Every task KIE holds, oldest first (its ids: what https://kie.ai/logs shows)."""
    return sorted((await controls.get("tasks"))["tasks"], key=lambda task: task["createdAt"])


async def lost(client: Client, controls: Controls, request: dict[str, Any], times: int = 1) -> Any:
    """``request`` made with its create's answer lost after KIE made and charged the task(s)."""
    await controls.fault("create", kind="drop_after_create", times=times)
    made = await client.call_tool(f"generate_{'video' if 'duration' in request else 'image'}", request)
    assert made.structured_content["status"] == "unknown", text_of(made)
    return made


async def made_elsewhere(controls: Controls, model: str, prompt: str) -> str:
    """A task of the account made outside kie-mcp (KIE's playground, another tool with the same key): its id."""
    response = await controls.http.post(
        "/api/v1/jobs/createTask",
        json={"model": model, "input": {"prompt": prompt}},
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
    )
    return response.json()["data"]["taskId"]


async def credits(client: Client) -> dict[str, Any]:
    return (await client.call_tool("check_credits", {})).structured_content


async def joins_none(client: Client, task_id: str, spent: float) -> None:
    """``task_id``, looked up, joins no create: it is recorded on its own, and the lost create stays counted."""
    checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
    after = await credits(client)
    task = checked.structured_content["task"]
    assert task["session"] is None and task["credits_reserved"] is None, text_of(checked)
    assert "This is the task of create" not in text_of(checked), text_of(checked)
    assert after["unknown_creates"] == 1 and after["spent_today"] == spent, after


async def joins_its_create(client: Client, workspace: Path, task_id: str, quoted: float) -> None:
    """``task_id`` (a lost create's own task, in session "mine"), looked up, joins that create: its session and
    folder, its reservation settled, no create left of unknown outcome, the create made with that task."""
    own = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
    after = await credits(client)
    found = own.structured_content["task"]
    assert found["session"] == "mine" and found["credits_reserved"] == quoted, text_of(own)
    assert "This is the task of create a_" in text_of(own), text_of(own)
    assert [Path(path).parent.name for path in found["files"]] == [session_folder(workspace, "mine").name]
    assert after["unknown_creates"] == 0 and after["spent_today"] == quoted, after
    with contextlib.closing(sqlite3.connect(workspace / JOURNAL)) as db:
        assert db.execute("SELECT state, task_id FROM attempts").fetchall() == [("created", task_id)]


async def only_its_own_task_joins(client: Client, workspace: Path, other: str, mine: str, quoted: float) -> None:
    """``other`` (another app's task of the lost create's request and one field more), looked up first, joins no
    create, and the create stays counted; ``mine``, the create's own task, looked up next, joins it."""
    theirs = await client.call_tool("check_task", {"task_id": other, "wait_seconds": 20})
    between = await credits(client)
    task = theirs.structured_content["task"]
    assert task["prompt"] is None and task["session"] is None and task["credits_reserved"] is None, text_of(theirs)
    assert "task of create" not in text_of(theirs) and "may be the one" not in text_of(theirs), text_of(theirs)
    assert between["unknown_creates"] == 1 and between["spent_today"] == quoted, between
    await joins_its_create(client, workspace, mine, quoted)


async def test_a_task_found_after_its_create_s_answer_was_lost_joins_that_create(connect, controls, tmp_path):
    """The audit: check_task of the task saved it to outputs/<date>-kling-3-0-video/ (not the session's folder),
    answered with no prompt and no Cost line, and list_tasks and check_credits went on saying the create "may have
    been created and charged" for ever, though its task was known."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        assert (await credits(client))["unknown_creates"] == 1
        await fast(controls)
        [task] = await sim_tasks(controls)
        checked = await client.call_tool("check_task", {"task_id": task["taskId"], "wait_seconds": 20})
        listed = await client.call_tool("list_tasks", {})
        after = await credits(client)
        attempt = await client.call_tool("check_task", {"task_id": listed.structured_content["tasks"][0]["task_id"]})
    found = checked.structured_content["task"]
    assert found["state"] == "succeeded" and found["prompt"] == VIDEO["prompt"] and found["session"] == "d"
    folder = session_folder(tmp_path, "d")
    assert [Path(path).parent.name for path in found["files"]] == [folder.name], found["files"]
    assert (tmp_path / found["files"][0]).is_file()
    assert "Cost: 90 credits quoted and counted" in text_of(checked), text_of(checked)
    assert "This is the task of create a_" in text_of(checked), text_of(checked)
    assert listed.structured_content["unknown_creates"] == 0 and listed.structured_content["unknown_create_list"] == []
    assert MAY_BE_CHARGED not in text_of(listed) and MAY_BE_CHARGED not in after["message"], after["message"]
    assert after["unknown_creates"] == 0
    assert not attempt.is_error, text_of(attempt)
    with contextlib.closing(sqlite3.connect(tmp_path / JOURNAL)) as db:
        [(state, task_id)] = db.execute("SELECT state, task_id FROM attempts").fetchall()
    assert (state, task_id) == ("created", task["taskId"])


async def test_spent_today_is_kie_s_charge_once_for_a_task_found_after_its_answer_was_lost(connect, controls, sim):
    """The create reserved 90 credits (its quote); KIE charged 70. Linked, the reservation settles against the
    charge, once: not both (160), not the reservation left beside nothing (90), not nothing."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("prices", {"kling-3.0/video": 70})
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        await fast(controls)
        [task] = await sim_tasks(controls)
        checked = await client.call_tool("check_task", {"task_id": task["taskId"], "wait_seconds": 20})
        again = await client.call_tool("check_task", {"task_id": task["taskId"]})
        spent = (await credits(client))["spent_today"]
    assert checked.structured_content["task"]["state"] == "succeeded", text_of(checked)
    assert "Cost: 70 credits charged" in text_of(checked), text_of(checked)
    assert again.structured_content["task"]["credits_charged"] == 70
    assert spent == 70 == 5000 - (await controls.get("state"))["balances"]["default"]


async def test_two_calls_creates_that_fit_a_task_leave_it_unlinked_and_name_both(connect, controls, tmp_path):
    """Two creates of one model and one prompt, in two sessions, both answers lost about the same moment: the task
    found may be either's. It is taken as neither (no session's folder, no reservation settled, both creates still
    counted), and the answer names both."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        await lost(client, controls, {**VIDEO, "session": "e"})
        await fast(controls)
        first, _ = await sim_tasks(controls)
        checked = await client.call_tool("check_task", {"task_id": first["taskId"], "wait_seconds": 20})
        listed = await client.call_tool("list_tasks", {})
        after = await credits(client)
    attempts = [create["attempt_id"] for create in listed.structured_content["unknown_create_list"]]
    text = text_of(checked)
    assert len(attempts) == 2 and all(attempt in text for attempt in attempts), text
    assert "This task may be the one of create" in text and "cannot tell" in text, text
    found = checked.structured_content["task"]
    assert found["prompt"] is None and found["session"] is None and found["credits_reserved"] is None
    assert not [folder.name for folder in (tmp_path / "outputs").glob("*-[de]")]  # neither session's folder
    assert after["unknown_creates"] == 2 and after["spent_today"] == 180


async def test_a_task_of_another_model_or_prompt_is_never_taken_as_the_create_s(connect, controls):
    """Made about the same moment outside kie-mcp (the playground, another tool with the key): a task of another
    model with the create's prompt, and one of the create's model with another prompt. Neither is the create's,
    whatever the agent says: each is recorded on its own and the create stays of unknown outcome, until its own task
    is looked up."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        [mine] = await sim_tasks(controls)
        other_model = await made_elsewhere(controls, IMAGE["model"], VIDEO["prompt"])
        other_prompt = await made_elsewhere(controls, VIDEO["model"], "a slow pan over a city at night")
        await fast(controls)
        others = [
            await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
            for task_id in (other_model, other_prompt)
        ]
        between = await credits(client)
        own = await client.call_tool("check_task", {"task_id": mine["taskId"], "wait_seconds": 20})
        after = await credits(client)
    for other in others:
        task = other.structured_content["task"]
        assert task["prompt"] is None and task["session"] is None and task["credits_reserved"] is None, task
        assert "task of create" not in text_of(other) and "may be the one" not in text_of(other), text_of(other)
    assert between["unknown_creates"] == 1 and between["spent_today"] == 90
    assert own.structured_content["task"]["session"] == "d", text_of(own)
    assert after["unknown_creates"] == 0 and after["spent_today"] == 90


async def test_a_call_s_variations_each_take_one_task_found_after_their_answers_were_lost(connect, controls):
    """One call, two variations, both answers lost: its two creates are one request, so the tasks found join them,
    one each, and neither create is left of unknown outcome."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**IMAGE, "variations": 2, "session": "fruit"}, times=2)
        await fast(controls)
        tasks = await sim_tasks(controls)
        checked = [
            await client.call_tool("check_task", {"task_id": task["taskId"], "wait_seconds": 20}) for task in tasks
        ]
        after = await credits(client)
    assert len(tasks) == 2
    for one in checked:
        assert one.structured_content["task"]["session"] == "fruit", text_of(one)
        assert "This is the task of create a_" in text_of(one), text_of(one)
    assert after["unknown_creates"] == 0 and after["spent_today"] == 16


async def test_a_create_whose_server_died_mid_send_takes_its_task_found_after_a_restart(connect, controls, tmp_path):
    """The server was killed while the create was on its way, after KIE made the task, before the answer was
    recorded (the journal left as such a death leaves it: the create being sent by a process that is gone). The next
    start makes it one of unknown outcome; the task, looked up there, joins it all the same."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
    gone = f"{HOST}-{await a_gone_process()}-{'0' * 12}"
    with contextlib.closing(sqlite3.connect(tmp_path / JOURNAL)) as db, db:
        db.execute("UPDATE attempts SET state = 'sending', error = NULL, owner = ?", (gone,))
    async with connect(elicitation=answering()) as client:
        before = await credits(client)
        await fast(controls)
        [task] = await sim_tasks(controls)
        checked = await client.call_tool("check_task", {"task_id": task["taskId"], "wait_seconds": 20})
        after = await credits(client)
    assert before["unknown_creates"] == 1, before  # the start found it: of unknown outcome, counted
    found = checked.structured_content["task"]
    assert found["session"] == "d" and found["prompt"] == VIDEO["prompt"], text_of(checked)
    assert Path(found["files"][0]).parent.name == session_folder(tmp_path, "d").name
    assert after["unknown_creates"] == 0 and after["spent_today"] == 90


async def test_a_task_kie_made_minutes_after_a_create_was_given_up_is_never_taken_as_its(connect, controls, tmp_path):
    """Two creates of one request, in two sessions; the first is moved five minutes back in the journal (as if sent
    then, instead of waiting that long). KIE's time of each task places it: the second's task joins the second, the
    only create sent about then, and the first's, made (KIE says) minutes after that create was given up, joins none."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        await lost(client, controls, {**VIDEO, "session": "e"})
        with contextlib.closing(sqlite3.connect(tmp_path / JOURNAL)) as db, db:
            db.execute(
                "UPDATE attempts SET created = created - 300, updated = updated - 300 WHERE session = 'd'",
            )
        await fast(controls)
        first, second = await sim_tasks(controls)
        joined = await client.call_tool("check_task", {"task_id": second["taskId"], "wait_seconds": 20})
        alone = await client.call_tool("check_task", {"task_id": first["taskId"], "wait_seconds": 20})
        listed = await client.call_tool("list_tasks", {})
    assert joined.structured_content["task"]["session"] == "e", text_of(joined)
    task = alone.structured_content["task"]
    assert task["session"] is None and task["credits_reserved"] is None, text_of(alone)
    assert [create["session"] for create in listed.structured_content["unknown_create_list"]] == ["d"]


async def test_reading_the_found_task_s_resource_joins_it_to_its_create_too(connect, controls):
    """kie://tasks/{id} of a task the journal does not know asks KIE once, as check_task does: the task found is
    the lost create's there too, and the create leaves the list of unknown outcomes."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        [task] = await sim_tasks(controls)
        read = json.loads((await client.read_resource(f"kie://tasks/{task['taskId']}")).contents[0].text)
        listed = json.loads((await client.read_resource("kie://tasks")).contents[0].text)
    assert read["session"] == "d" and read["prompt"] == VIDEO["prompt"] and read["credits_reserved"] == 90, read
    assert listed["unknown_creates"] == 0 and listed["unknown_create_list"] == []


async def test_a_task_kie_dates_in_text_is_never_taken_as_a_lost_create_s(connect, controls):
    """Veo (as Runway, Aleph and Flux Kontext) gives the time a task was made as zone-less text, no precise moment:
    another app's Veo task of the same prompt, made an hour before and failed (nothing charged), looked up first,
    was linked, and the create KIE charged 60 for was refunded with it (spent today 0). It joins no create: each
    stays as it is, and the create stays counted, of unknown outcome."""
    prompt = "a barista pours latte art, slow motion"
    response = await controls.http.post(
        "/api/v1/veo/generate",
        json={"prompt": prompt, "model": "veo3_fast", "aspectRatio": "16:9"},
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
    )
    other = response.json()["data"]["taskId"]
    await controls.post(f"tasks/{other}", {"state": "fail", "fail_msg": "upstream"})
    await controls.post("clock/advance", {"seconds": 3600})
    request = {"model": "veo3_fast", "prompt": prompt, "aspect_ratio": "16:9", "duration": 8, "session": "cafe"}
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, request)
        await fast(controls)
        await joins_none(client, other, spent=60)


async def test_a_task_whose_answer_echoes_no_request_is_never_taken_as_a_lost_create_s(connect, controls, sim):
    """A Market answer with ``param`` null gave no prompt to compare: another app's task of the same model and
    another prompt, made the same moment, was linked. With no request to compare it joins no create."""
    sim.config.echo_request = False
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        other = await made_elsewhere(controls, VIDEO["model"], "a completely different prompt")
        await fast(controls)
        await joins_none(client, other, spent=90)


async def test_a_task_of_the_same_prompt_and_other_settings_is_never_taken_as_the_create_s(connect, controls, sim):
    """Another app's kling-3.0 video of the same prompt, made seconds later, at 15 s, 1:1 and with sound (KIE charged
    405): compared by its prompt only, it was linked and booked against the create's 90. Every field the create sent
    must be echoed with the same value: it joins none, and the create's own task, looked up next, joins it."""
    sim.config.report_credits_consumed = True
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        [mine] = await sim_tasks(controls)
        response = await controls.http.post(
            "/api/v1/jobs/createTask",
            json={
                "model": VIDEO["model"],
                "input": {"prompt": VIDEO["prompt"], "duration": "15", "aspect_ratio": "1:1", "sound": True},
            },
            headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        )
        other = response.json()["data"]["taskId"]
        await fast(controls)
        theirs = await client.call_tool("check_task", {"task_id": other, "wait_seconds": 20})
        own = await client.call_tool("check_task", {"task_id": mine["taskId"], "wait_seconds": 20})
        after = await credits(client)
    task = theirs.structured_content["task"]
    assert task["session"] is None and task["credits_reserved"] is None, text_of(theirs)
    assert own.structured_content["task"]["session"] == "d", text_of(own)
    assert after["unknown_creates"] == 0 and after["spent_today"] == 90, after


async def test_two_looks_at_once_keep_a_found_task_s_reservation_for_its_refund(connect, controls):
    """Two check_task calls of a found task at once: the second, finding the task linked by the first, wrote its bare
    record over the linked one (no quote, no reservation). The task then failed at KIE (nothing charged) and, after
    a restart, its 90 credits were never given back. The linked record stands, and the refund is booked."""
    async with connect(elicitation=answering(), poll_min_interval=5.0, poll_max_interval=15.0) as client:
        await lost(client, controls, {**VIDEO, "session": "d"})
        [task] = await sim_tasks(controls)
        looks = await asyncio.gather(
            *[client.call_tool("check_task", {"task_id": task["taskId"], "wait_seconds": 0}) for _ in range(2)]
        )
    await controls.post(f"tasks/{task['taskId']}", {"state": "fail", "fail_msg": "upstream"})
    await fast(controls)
    async with connect(elicitation=answering()) as client:
        checked = await client.call_tool("check_task", {"task_id": task["taskId"], "wait_seconds": 30})
        after = await credits(client)
    assert [look.structured_content["task"]["credits_reserved"] for look in looks] == [90, 90]
    assert checked.structured_content["task"]["state"] == "failed", text_of(checked)
    assert after["unknown_creates"] == 0 and after["spent_today"] == 0, after


async def test_a_call_s_variations_looked_up_at_once_while_the_journal_is_locked_each_take_a_create(
    connect, controls, tmp_path
):
    """Both variations' tasks looked up at once while another program holds the journal's lock: both looks judged the
    call's first create, the second's link failed, and that variation's create stayed of unknown outcome for ever.
    Each takes the first of the call's creates still of unknown outcome, in the journal's transaction."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**IMAGE, "variations": 2, "session": "fruit"}, times=2)
        await fast(controls)
        tasks = await sim_tasks(controls)
        ids = {task["taskId"] for task in tasks}

        async def asked(count: int) -> None:  # until KIE was asked about ``count`` of the two tasks
            with anyio.fail_after(15):
                while (  # noqa: ASYNC110
                    len(ids & {r["query"].get("taskId") for r in (await controls.get("requests"))["requests"]}) < count
                ):
                    await asyncio.sleep(0.02)

        # KIE answers each look a second after it came in (one look at a time). Another program takes the journal's
        # write lock as the first look reaches KIE, and lets go only after the second's answer came back: both looks
        # judge while neither can link, however slow this machine is.
        await controls.fault("status", times=2, kind="slow", seconds=1.0)
        calls = [
            asyncio.create_task(client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30}))
            for task_id in sorted(ids)
        ]
        await asked(1)
        with contextlib.closing(sqlite3.connect(tmp_path / JOURNAL, isolation_level=None)) as locker:
            locker.execute("BEGIN IMMEDIATE")
            await asked(2)
            await asyncio.sleep(2.0)  # its answer in, and judged
            locker.execute("COMMIT")
        checked = await asyncio.gather(*calls)
        after = await credits(client)
    assert [(one.structured_content or {}).get("task", {}).get("session") for one in checked] == ["fruit"] * 2, [
        text_of(one) for one in checked
    ]
    assert after["unknown_creates"] == 0 and after["spent_today"] == 16, after


@pytest.mark.parametrize(
    ("family", "request_", "image_field", "quoted"),
    [("market", IMAGE, "image_input", 8), ("gpt4o", IMAGE_4O, "filesUrl", 6)],
    ids=["market", "gpt4o"],
)
async def test_a_task_of_the_create_s_request_plus_a_field_it_never_sent_is_never_taken_as_its(
    connect, controls, sim, tmp_path, family, request_, image_field, quoted
):
    """The audit: another app's task of the same model, sent seconds later with every field the create sent, at the
    same values, and an image to edit the create never asked for (someone else's picture). Compared by the fields
    sent only, it was linked: its result saved in the person's session under their prompt, the create's reservation
    settled against its charge, and the create's own task, looked up next, recorded bare, its charge outside the
    caps. KIE echoes a request as it was sent, so a field the create did not send makes another request: that task
    joins none, and the create's own task joins it."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**request_, "session": "mine"})
        [mine] = await sim_tasks(controls)
        twin = copy.deepcopy(sim.tasks[mine["taskId"]].body)
        twin.get("input", twin)[image_field] = ["https://example.com/someone-else.png"]  # beside the create's fields
        response = await controls.http.post(
            CREATE_PATH[family], json=twin, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"}
        )
        other = response.json()["data"]["taskId"]
        await fast(controls)
        await only_its_own_task_joins(client, tmp_path, other, mine["taskId"], quoted)


@pytest.mark.parametrize(
    ("request_", "beside"),
    [
        (IMAGE, {"callBackUrl": "https://example.com/callback", "progressCallBackUrl": "https://example.com/progress"}),
        (IMAGE_4O, {"callBackUrl": "https://example.com/callback"}),
    ],
    ids=["market", "gpt4o"],
)
async def test_a_task_whose_echo_holds_what_kie_keeps_beside_the_request_still_joins_its_create(
    connect, controls, sim, request_, beside
):
    """KIE's echo of a request holds what its body held beside the request's fields: ``callBackUrl`` (in KIE's own
    example of a Market task's ``param``), ``progressCallBackUrl``, next to the Market's ``input`` or among GPT-4o
    Image's flat fields. Those are no field of the model: the create's task, echoed with them, still joins it."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**request_, "session": "mine"})
        [mine] = await sim_tasks(controls)
        sim.tasks[mine["taskId"]].body.update(beside)  # KIE echoing its record of the task with them
        await fast(controls)
        own = await client.call_tool("check_task", {"task_id": mine["taskId"], "wait_seconds": 20})
        after = await credits(client)
    assert own.structured_content["task"]["session"] == "mine", text_of(own)
    assert "This is the task of create a_" in text_of(own), text_of(own)
    assert after["unknown_creates"] == 0, after


@pytest.mark.parametrize(
    "extra",
    [
        {"fileUrl": "https://example.com/someone-else.png"},
        {"maskUrl": "https://example.com/mask.png", "nVariants": 4},
    ],
    ids=["fileUrl", "maskUrl"],
)
async def test_a_gpt_4o_image_task_with_a_field_the_catalogue_does_not_take_is_never_taken_as_the_create_s(
    connect, controls, sim, tmp_path, extra
):
    """The review: a text-only gpt-4o-image create lost its answer; another app sent the identical body plus
    ``fileUrl`` (an edit of its own photo), or plus ``maskUrl`` and ``nVariants``, which KIE's docs name for GPT-4o
    Image's generate and kie-mcp's catalogue does not take. Only a name the model's spec listed counted as a field of
    the request, so that task joined the create (saved in the person's session, the reservation settled against its
    charge) and the person's own task then joined nothing. Beside a flat echo's fields only what KIE keeps beside a
    request (``callBackUrl``, ``progressCallBackUrl``, ``model``) is allowed: that task joins none, and the create's
    own task joins it."""
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**IMAGE_4O, "session": "mine"})
        [mine] = await sim_tasks(controls)
        response = await controls.http.post(
            CREATE_PATH["gpt4o"],
            json=sim.tasks[mine["taskId"]].body,
            headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        )
        other = response.json()["data"]["taskId"]
        # KIE's record of that app's request, echoed as it sent it (the simulator's catalogue, as kie-mcp's, takes
        # none of these, so they are written into the record rather than sent)
        sim.tasks[other].body.update(extra)
        await fast(controls)
        await only_its_own_task_joins(client, tmp_path, other, mine["taskId"], 6)


async def local_image_joins_its_create(
    connect: Any, controls: Controls, workspace: Path, request_: dict[str, Any], quoted: float
) -> str:
    """``request_`` with the local image ref.png, in session "mine", its create's answer lost: its own task, looked
    up, joins it (``joins_its_create``). Returns the task's id."""
    Image.new("RGB", (512, 512), (200, 10, 10)).save(workspace / "ref.png")
    async with connect(elicitation=answering()) as client:
        await lost(client, controls, {**request_, "session": "mine"})
        await fast(controls)
        [mine] = await sim_tasks(controls)
        await joins_its_create(client, workspace, mine["taskId"], quoted)
    return str(mine["taskId"])


@pytest.mark.parametrize(
    ("request_", "quoted"),
    [
        ({**IMAGE, "images": ["ref.png"]}, 8),
        ({**IMAGE_4O, "images": ["ref.png"]}, 6),
        ({**VIDEO, "images": ["ref.png"]}, 90),
    ],
    ids=["market", "gpt4o", "video"],
)
async def test_a_lost_create_with_a_local_image_takes_its_own_task_found_at_kie(
    connect, controls, tmp_path, request_, quoted
):
    """The review: a lost create with a local input image (nano-banana-2, gpt-4o-image, kling-3.0 video) never joined
    its own task: the journal kept the request with the file's path, and KIE echoes the link it was uploaded as. The
    results went to outputs/<date>-<model>/, the create stayed of unknown outcome for good, and KIE's charge never
    counted against it. The attempt keeps the request as it was sent: its own task joins it."""
    await local_image_joins_its_create(connect, controls, tmp_path, request_, quoted)


@pytest.mark.parametrize(
    ("request_", "quoted"),
    [({**IMAGE, "images": ["ref.png"]}, 8), ({**IMAGE_4O, "images": ["ref.png"]}, 6)],
    ids=["market", "gpt4o"],
)
async def test_the_sidecar_of_a_lost_create_s_task_names_its_local_image_as_given_never_its_upload_link(
    connect, controls, tmp_path, request_, quoted
):
    """The review: once the journal kept a create's request as sent (for its own task, found at KIE, to join it), the
    results' sidecar in outputs/ (a folder people share) showed the link the local image was uploaded as, with any
    signature the upload host put on it, instead of "ref.png". The request as sent is kept apart, for that match only:
    the task still joins its create, and the sidecar names the image as the person gave it."""
    task_id = await local_image_joins_its_create(connect, controls, tmp_path, request_, quoted)
    [saved] = (tmp_path / "outputs").glob(f"*/{request_['model']}_{task_id}.json")
    parameters = json.loads(json.loads(saved.read_text())["parameters"])
    images = [value for value in parameters.values() if isinstance(value, list)]
    assert images == [["ref.png"]], parameters
    assert "/files/uploads/" not in saved.read_text(), parameters
