"""Promises of continue_video and the charges it cannot see, each kept against the simulator through the real MCP
client in both protocol eras:

- a charge KIE does not report, measured from the balance, never counts less than KIE charged (a refund of another
  task, another kie-mcp process's task, or a top-up landing meanwhile leaves the reservation counted as spent);
- an extend KIE lists no price for counts the catalogue's most for it, never a smaller max_credits the agent chose;
- a clip made elsewhere is as old as KIE says, so one older than the 14 days KIE keeps it is refused before anything
  is sent, by estimate_cost too, and the journal keeps KIE's date;
- two asks at once for one Veo clip's 1080p version are one task and one charge: the second reservation is returned;
- a 1080p version another server on the workspace is making is waited for as asked (and followed to the end when
  that server stops).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import anyio
import pytest

from .conftest import answering, one_era_each, text_of, twice_at_once
from .test_followups import GROK, HD_PATH, MARKET, RUNWAY, VEO, balance, finished, kie_auth, requests_to, spent_today

IMAGE = {"prompt": "an apple", "model": "nano-banana-2", "wait_seconds": 0}
# A Runway extend has no price: it reserves the catalogue's most for it, 30 (a max_credits above that changes nothing)
EXTEND = {"operation": "extend", "prompt": "it tips over a grate", "max_credits": 40, "wait_seconds": 40}


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """One era per test (``conftest.one_era_each``): these are the follow-ups' own rules, not the protocol's."""
    return one_era_each(request)


async def extend_while(client: Any, controls: Any, source: str, meanwhile: Any) -> dict[str, Any]:
    """Extend ``source`` (a Runway clip: its price is unknown and KIE does not report the charge) with the simulated
    clock stopped, do ``meanwhile`` once the call is under way, then let the clock run and return its task."""
    await controls.post("clock/speed", {"speed": 0})
    out: dict[str, Any] = {}

    async def extend() -> None:
        out["result"] = await client.call_tool("continue_video", {"task_id": source, **EXTEND})

    async def then() -> None:
        await anyio.sleep(1.0)
        await meanwhile()
        await controls.post("clock/speed", {"speed": 1000})

    async with anyio.create_task_group() as group:
        group.start_soon(extend)
        group.start_soon(then)
    result = out["result"]
    assert not result.is_error, text_of(result)
    task = result.structured_content["tasks"][0]
    assert task["state"] == "succeeded", text_of(result)
    return {"task": task, "text": text_of(result)}


async def test_an_unpriced_runway_extend_counts_the_dearest_runway_clip_whatever_max_credits_says(connect, controls):
    """The audit: twelve extends of one clip, each with max_credits=0.01, reserved 0.12 in all against a daily cap of
    100 while KIE charged each (and Runway never says what). Each now counts 30, the dearest Runway clip of its
    quality, whatever max_credits says: after the 12-credit source, two fit under 100 and the rest are refused before
    anything is sent; a max_credits below the 30 it may charge refuses it outright."""
    async with connect(elicitation=answering(), max_credits_per_day=100) as client:
        source = await finished(client, {**RUNWAY, "resolution": "720p"})
        await controls.post("clock/speed", {"speed": 0})  # the extends keep running: KIE has not said what it charged
        tiny = await client.call_tool(
            "continue_video", {"task_id": source, "operation": "extend", "prompt": "the boat", "max_credits": 0.01}
        )
        extends = [
            await client.call_tool(
                "continue_video",
                {"task_id": source, "operation": "extend", "prompt": f"the boat turns, take {n}", "max_credits": 40},
            )
            for n in range(4)
        ]
        spent = await spent_today(client)
    assert tiny.is_error and "up to 30 credits" in text_of(tiny) and "max_credits of 0.01" in text_of(tiny)
    assert [r.structured_content["status"] for r in extends[:2]] == ["submitted"] * 2, text_of(extends[0])
    assert all(r.is_error and "30 credits are reserved" in text_of(r) for r in extends[2:])
    assert spent == 12 + 2 * 30
    assert len(await requests_to(controls, "/api/v1/runway/extend")) == 2


async def test_a_charge_measured_from_the_balance_never_counts_less_than_kie_charged(connect, controls):
    """Another task of this workspace fails (and is refunded) while the extension runs: the balance difference is
    not the extension's charge, so the 30 reserved stay counted, never the smaller difference."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, {**RUNWAY, "resolution": "1080p"})
        await controls.post("clock/speed", {"speed": 0})  # the image stays running until the extension runs
        await controls.fault("create", kind="task_fail")
        image = await client.call_tool("generate_image", IMAGE)  # reserved 8; fails later and is refunded
        image_id = image.structured_content["tasks"][0]["task_id"]
        start_spent, start_balance = await spent_today(client), await balance(controls)

        async def nothing() -> None:
            return None

        extended = await extend_while(client, controls, source, nothing)
        await client.call_tool("check_task", {"task_id": image_id, "wait_seconds": 10})
        end_spent, end_balance = await spent_today(client), await balance(controls)
    charged = start_balance - end_balance  # KIE: the extension's 30, less the image's refunded 8
    assert charged == 30 - 8
    assert end_spent - start_spent >= charged, (end_spent - start_spent, charged)
    assert extended["task"]["credits_charged"] is None  # not measured: the difference is not its charge
    assert end_spent - start_spent == 30 - 8  # its reservation stands; the image's refund is its own
    assert "could not be measured from the balance" in extended["text"] and image_id in extended["text"]


async def test_a_task_of_another_kie_mcp_on_the_same_workspace_is_not_counted_out_of_a_measured_charge(
    connect, controls
):
    """Two servers on one workspace (one journal): the second's image fails and is refunded while the first's
    extension runs. The first sees it in the journal and keeps its reservation."""
    async with connect(elicitation=answering()) as first, connect(elicitation=answering()) as second:
        source = await finished(first, {**RUNWAY, "resolution": "1080p"})
        start_spent, start_balance = await spent_today(first), await balance(controls)

        async def image_elsewhere() -> None:
            await controls.fault("create", kind="task_fail")
            await second.call_tool("generate_image", IMAGE)

        extended = await extend_while(first, controls, source, image_elsewhere)
        await anyio.sleep(0.5)
        end_spent, end_balance = await spent_today(first), await balance(controls)
    assert start_balance - end_balance == 30  # KIE: the extension's 30 (the image was charged and refunded)
    assert extended["task"]["credits_charged"] is None
    assert end_spent - start_spent >= 30  # the extension's reservation stands


async def test_a_top_up_during_an_unreported_charge_never_lowers_what_is_counted(connect, controls):
    """A top-up leaves no trace in the journal. One as large as the charge leaves the balance where it was: that is
    no charge of 0 (which would refund the whole reservation), and the reservation stays counted."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, {**RUNWAY, "resolution": "1080p"})
        start_spent = await spent_today(client)

        async def top_up() -> None:
            await controls.post("balance", {"credits": await balance(controls) + 30})

        extended = await extend_while(client, controls, source, top_up)
        end_spent = await spent_today(client)
    assert extended["task"]["credits_charged"] is None
    assert end_spent - start_spent == 30
    assert "the balance did not go down" in extended["text"]


async def test_a_measured_charge_far_below_what_kie_charged_before_is_not_taken(connect, controls):
    """KIE charged 30 for this extension before (measured with nothing else moving the balance). A top-up of 20
    while the same request runs again makes the balance drop only 10: not a plausible charge (KIE charged 30 for the
    same model and settings), so its reservation stays."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, {**RUNWAY, "resolution": "1080p"})

        async def nothing() -> None:
            return None

        first = await extend_while(client, controls, source, nothing)
        assert first["task"]["credits_charged"] == 30
        start_spent = await spent_today(client)

        async def top_up() -> None:
            await controls.post("balance", {"credits": await balance(controls) + 20})

        second = await extend_while(client, controls, source, top_up)  # the same request again
        end_spent = await spent_today(client)
    assert second["task"]["credits_charged"] is None
    assert end_spent - start_spent == 30
    assert "far less than the 30 KIE charged here before" in second["text"]


async def test_a_charge_measured_with_nothing_else_moving_the_balance_is_kept(connect, controls):
    """The counterpart: alone, the balance difference is the charge, and it replaces the reservation."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, {**RUNWAY, "resolution": "1080p"})
        start_spent = await spent_today(client)

        async def nothing() -> None:
            return None

        extended = await extend_while(client, controls, source, nothing)
        end_spent = await spent_today(client)
    assert extended["task"]["credits_charged"] == 30
    assert end_spent - start_spent == 30


# -- a clip made elsewhere is as old as KIE says --------------------------------------------------------------------


async def test_a_clip_made_elsewhere_15_days_ago_is_refused_before_anything_is_sent(connect, controls, sim):
    """Continued directly (no check_task first): estimate_cost, which records the clip, keeps KIE's date, and both
    it and continue_video refuse it as KIE would; nothing reaches a create endpoint."""
    made = await controls.http.post(
        MARKET, json={"model": GROK["model"], "input": {"prompt": "a cat"}}, headers=kie_auth()
    )
    task_id = made.json()["data"]["taskId"]
    sim.tasks[task_id].created_at -= 15 * 86400
    async with connect(elicitation=answering()) as client:
        estimate = await client.call_tool("estimate_cost", {"task_id": task_id, "operation": "extend"})
        refused = await client.call_tool(
            "continue_video", {"task_id": task_id, "operation": "extend", "max_credits": 30}
        )
        listed = await client.call_tool("list_tasks", {})
    for answer in (estimate, refused):
        assert answer.is_error, text_of(answer)
        assert "15 days ago" in text_of(answer) and "KIE keeps a task 14 days" in text_of(answer)
    [row] = [t for t in listed.structured_content["tasks"] if t["task_id"] == task_id]
    age = time.time() - datetime.fromisoformat(row["created_at"].replace("Z", "+00:00")).timestamp()
    assert 14.9 * 86400 < age < 15.1 * 86400
    assert [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/extend"] == []


# -- 1080p asked twice at once ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("clip", "charge"), [(VEO, 5), (GROK, 20)], ids=["veo", "grok"])
async def test_two_1080p_asks_at_once_are_one_task_and_one_charge(connect, controls, clip, charge):
    """Both calls pass the "already made?" check of their plans before either is recorded: the second, once
    approved, waits for the first's task and answers with it, asking KIE nothing. One task, one charge, one
    reservation. (The audit: KIE makes a Grok upscale, an ordinary Market task, every time it is asked, so two asks
    at once were two upscales and two charges; for Veo, KIE's own answer kept it to one.)"""
    async with connect(elicitation=answering(), auto_approve_credits=100) as client:
        source = await finished(client, clip)
        paid, base = await balance(controls), await spent_today(client)
        hd = {"task_id": source, "operation": "hd", "wait_seconds": 30}
        results = await twice_at_once(client, "continue_video", hd)
        spent = await spent_today(client)
    async with connect() as client:  # a restart: what the journal kept
        listed = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
    [task_id] = {r.structured_content["tasks"][0]["task_id"] for r in results}
    assert task_id and {r.structured_content["status"] for r in results} <= {"completed", "submitted"}
    # the second waited for the first's task, or (asked, being an identical call under way) found it made
    answered = [text_of(r) for r in results]
    assert any("made while this call waited" in t or "already has this" in t for t in answered), answered
    assert paid - await balance(controls) == charge  # KIE charged once ...
    assert spent - base == charge  # ... and the ledger counts it once
    [kept] = [t for t in listed if t["task_id"] == task_id]
    assert kept["credits_reserved"] == charge and kept["parent_task_id"] == source and kept["operation"] == "hd"
    upscales = [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/upscale"]
    assert len(upscales) == (1 if clip is GROK else 0)


async def hd_running_on(client: Any, controls: Any) -> tuple[str, str]:
    """A Veo clip, then its 1080p version asked for without waiting, with the simulated clock stopped: the version
    stays running, followed by ``client``'s server. Returns (the clip, its 1080p task)."""
    source = await finished(client, VEO)
    await controls.post("clock/speed", {"speed": 0})
    made = await client.call_tool("continue_video", {"task_id": source, "operation": "hd"})
    [task] = made.structured_content["tasks"]
    assert task["state"] in ("queued", "running"), text_of(made)
    return source, task["task_id"]


async def ask_hd_while(client: Any, source: str, meanwhile: Any) -> Any:
    """continue_video hd with a wait, and ``meanwhile`` once it is under way."""
    out: dict[str, Any] = {}

    async def ask() -> None:
        hd = {"task_id": source, "operation": "hd", "wait_seconds": 30}
        out["result"] = await client.call_tool("continue_video", hd)

    async def then() -> None:
        await anyio.sleep(1.0)
        await meanwhile()

    async with anyio.create_task_group() as group:
        group.start_soon(ask)
        group.start_soon(then)
    return out["result"]


async def test_a_1080p_version_another_kie_mcp_is_making_is_waited_for_as_asked(connect, controls):
    """Two servers on one workspace. The 1080p version the first made is running; the second, asked for it with
    wait_seconds, returns it free and waits for it as asked, reading the journal the first server's follower writes,
    instead of answering "running" at once."""
    async with connect(auto_approve_credits=100) as first, connect(auto_approve_credits=100) as second:
        source, hd_id = await hd_running_on(first, controls)

        async def clock_runs() -> None:
            await controls.post("clock/speed", {"speed": 1000})

        result = await ask_hd_while(second, source, clock_runs)
    [task] = result.structured_content["tasks"]
    assert not result.is_error and task["task_id"] == hd_id, text_of(result)
    assert task["state"] == "succeeded", text_of(result)
    assert "Nothing new was requested or charged" in text_of(result)


async def test_a_1080p_version_whose_kie_mcp_stopped_is_followed_by_the_one_waiting_for_it(connect, controls):
    """The first server stops while the second waits for the 1080p version it made: the second takes the task up
    (the first gave up its claims as it stopped), follows it to the end and saves its video."""
    ready, stop, gone = anyio.Event(), anyio.Event(), anyio.Event()
    made: dict[str, str] = {}

    async def first_server() -> None:
        async with connect(auto_approve_credits=100) as first:
            made["source"], made["hd"] = await hd_running_on(first, controls)
            ready.set()
            await stop.wait()
        gone.set()

    async def first_stops() -> None:
        stop.set()
        await gone.wait()
        await controls.post("clock/speed", {"speed": 1000})

    async with connect(auto_approve_credits=100) as second, anyio.create_task_group() as group:
        group.start_soon(first_server)
        await ready.wait()
        result = await ask_hd_while(second, made["source"], first_stops)
    [task] = result.structured_content["tasks"]
    assert task["task_id"] == made["hd"] and task["state"] == "succeeded", text_of(result)
    assert task["files"], text_of(result)  # saved by the second server, which followed it to the end


async def test_a_grok_hd_at_another_resolution_is_refused_so_the_1080p_version_stays_possible(connect, controls):
    """The audit: hd with options.resolution=720p made a 720p upscale, and every later hd returned it as "already
    has this": the clip's 1080p version could never be made. hd stands for 1080p: another resolution is refused."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, {**GROK, "resolution": "480p"})
        refused = await client.call_tool(
            "continue_video", {"task_id": source, "operation": "hd", "options": {"resolution": "720p"}}
        )
        made = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 30})
    assert refused.is_error and "makes the clip's 1080p version, once" in text_of(refused), text_of(refused)
    assert made.structured_content["status"] == "completed", text_of(made)
    upscales = [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/upscale"]
    assert [r["body"]["input"]["resolution"] for r in upscales] == ["1080p"]


async def test_a_veo_extension_kie_refuses_says_why_and_what_to_do_not_fix_a_field(connect, controls):
    """The audit: a clip whose 1080p version was asked for elsewhere cannot be extended; KIE's 422 came back as
    "Fix the field it names", and there is no field. The answer now says the clip cannot be extended, that nothing
    was charged, and what can be done instead."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        await controls.http.get(HD_PATH, params={"taskId": source, "index": 0}, headers=kie_auth())  # elsewhere
        paid = await balance(controls)
        refused = await client.call_tool("continue_video", {**EXTEND, "task_id": source, "max_credits": 100})
    text = text_of(refused)
    assert f"KIE will not extend task {source}" in text and "Nothing was started or charged" in text, text
    assert "Fix the field" not in text
    assert await balance(controls) == paid


async def test_a_veo_extension_whose_prompt_kie_flags_keeps_kies_advice_to_change_the_prompt(connect, controls):
    """The review: every 400/422 refusal of an extension was said to be the clip's, so a prompt KIE flagged told the
    person to give up on the clip. Only KIE's refusals of the clip itself are; a flagged prompt is the prompt's."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        flagged = "Your prompt was flagged by Website as violating content policies."
        await controls.fault("create", kind="code", code=400, msg=flagged)
        refused = await client.call_tool("continue_video", {**EXTEND, "task_id": source, "max_credits": 100})
        again = await client.call_tool(
            "continue_video", {**EXTEND, "prompt": "the waves calm down", "task_id": source, "max_credits": 100}
        )
    assert flagged in text_of(refused) and "KIE will not extend" not in text_of(refused), text_of(refused)
    assert again.structured_content["status"] in ("completed", "submitted"), text_of(again)


async def test_a_720p_grok_upscale_an_older_kie_mcp_made_does_not_stand_for_the_1080p_version(
    connect, controls, tmp_path
):
    """The review: refusing hd at 720p did not free a clip an older kie-mcp had already stuck with a 720p upscale:
    every hd still returned it. Only an upscale made at 1080p is the clip's hd."""
    from kie_mcp.journal import Journal

    async with connect(elicitation=answering(), auto_approve_credits=100) as client:
        source = await finished(client, {**GROK, "resolution": "480p"})
        first = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 30})
        made = first.structured_content["tasks"][0]["task_id"]
        journal = Journal.for_workspace(tmp_path)
        journal.execute(  # as an older kie-mcp recorded its 720p upscale
            "UPDATE attempts SET params = json_set(params, '$.resolution', '720p') WHERE task_id = ?", made
        )
        journal.close()
        again = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 30})
    upscales = [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/upscale"]
    assert len(upscales) == 2 and again.structured_content["tasks"][0]["task_id"] != made, text_of(again)
