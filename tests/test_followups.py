"""Issue 13: follow-ups KIE sells on a finished video (continue_video): extend, 1080p and 4K versions, upscale, and
chains that remember where each clip came from.

Every test drives the server through the real MCP client in both protocol eras against the simulator, and counts
what reached KIE's endpoints: one approval buys exactly one create, waits are never spends, a repeated 4K request
is never charged twice.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

import anyio
import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.journal import Journal, journal_path
from kie_mcp.kie import FAMILIES
from kie_mcp.sandbox import SANDBOX_API_KEY

from .conftest import answering, confirmed_and_replayed, eras_in_turn, one_era_each, text_of
from .test_every_model import minimal_arguments

VEO = {"prompt": "slow push-in on waves at dusk, gulls overhead", "model": "veo3_fast"}
RUNWAY = {"prompt": "a paper boat drifting down a rain gutter", "model": "runway-video"}
GROK = {"prompt": "a cat jumps onto a sunny windowsill", "model": "grok-imagine/text-to-video", "resolution": "720p"}
KLING = {"prompt": "a skateboarder kicks up at golden hour", "model": "kling-3.0/video"}
IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
HD_PATH = "/api/v1/veo/get-1080p-video"
UHD_PATH = "/api/v1/veo/get-4k-video"
VEO_EXTEND = "/api/v1/veo/extend"
RUNWAY_EXTEND = "/api/v1/runway/extend"
MARKET = "/api/v1/jobs/createTask"
CATALOG = load_catalog()
FOLLOWUPS = sorted(spec.id for spec in CATALOG.offered() if spec.followup is not None)


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """One era per test (``conftest.one_era_each``): these are the follow-ups' own rules, not the protocol's."""
    return one_era_each(request)


async def finished(client: Any, arguments: dict[str, Any]) -> str:
    """Make a clip and wait for it: the source of a follow-up."""
    made = await client.call_tool("generate_video", arguments)
    assert not made.is_error, text_of(made)
    task_id = made.structured_content["tasks"][0]["task_id"]
    done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    return task_id


async def follow(client: Any, task_id: str) -> dict[str, Any]:
    done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 40})
    assert not done.is_error, text_of(done)
    return done.structured_content["task"]


async def requests_to(controls: Any, path: str) -> list[dict[str, Any]]:
    return [r for r in (await controls.get("requests"))["requests"] if r["path"] == path]


async def spent_today(client: Any) -> float:
    return (await client.call_tool("check_credits", {})).structured_content["spent_today"]


async def balance(controls: Any) -> float:
    return (await controls.get("state"))["balances"]["default"]


def kie_auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


# -- extend ------------------------------------------------------------------------------------------------------


async def test_extending_a_veo_clip_sends_one_create_and_the_journal_keeps_the_chain(connect, controls, tmp_path):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, VEO)
        extended = await client.call_tool(
            "continue_video", {"task_id": source, "operation": "extend", "prompt": "the tide rolls in over the sand"}
        )
        assert extended.structured_content["status"] == "submitted", text_of(extended)
        task = extended.structured_content["tasks"][0]
        done = await follow(client, task["task_id"])
        listed = await client.call_tool("list_tasks", {})
    assert "60 credits" in seen[-1] and source in seen[-1]  # asked, with the catalogue's price for a Fast extension
    assert (task["parent_task_id"], task["operation"]) == (source, "extend")
    [create] = await requests_to(controls, VEO_EXTEND)
    assert create["body"]["taskId"] == source and create["body"]["model"] == "fast"
    assert create["body"]["prompt"] == "the tide rolls in over the sand"
    # The extended task's whole video is in fullResultUrls: it comes first, and it is what is saved first.
    assert done["state"] == "succeeded" and done["result_urls"][0].endswith("/full-0.mp4")
    assert done["files"][0].endswith("_1.mp4") and len(done["files"]) == 2
    sidecar = json.loads(next((tmp_path / "outputs").rglob(f"*{done['task_id']}.json")).read_text())
    assert (sidecar["parent_task_id"], sidecar["operation"]) == (source, "extend")
    assert f"(extension of task {source})" in text_of(listed)
    rows = {t["task_id"]: t for t in listed.structured_content["tasks"]}
    assert rows[done["task_id"]]["parent_task_id"] == source


async def test_extend_without_a_prompt_sends_kies_required_prompt_at_the_clips_own_tier(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, {**VEO, "model": "veo3_lite"})
        extended = await client.call_tool("continue_video", {"task_id": source, "operation": "extend"})
    assert extended.structured_content["status"] == "submitted", text_of(extended)
    [create] = await requests_to(controls, VEO_EXTEND)
    assert create["body"]["model"] == "lite" and create["body"]["prompt"].startswith("The scene continues")
    assert "30 credits" in seen[-1]  # the Lite extension's own price


@pytest.mark.parametrize(
    "prompt",
    ['{"scene": "the cat leaps onto the windowsill", "camera": "slow dolly in"}', "null", '["beat 1", "beat 2"]'],
)
async def test_an_extend_prompt_that_reads_as_json_is_sent_as_the_text_it_is(connect, controls, prompt):
    """The SDK decodes a string argument typed other than plain str as JSON: a JSON-style Veo prompt (a common way
    of writing them) became a dict and was refused as "must be text" after estimate_cost had priced it, and "null"
    became no prompt at all."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        arguments = {"task_id": source, "operation": "extend", "prompt": prompt}
        quoted = await client.call_tool("estimate_cost", arguments)
        extended = await client.call_tool("continue_video", arguments)
    assert not quoted.is_error, text_of(quoted)
    assert extended.structured_content["status"] == "submitted", text_of(extended)
    [create] = await requests_to(controls, VEO_EXTEND)
    assert create["body"]["prompt"] == prompt


async def test_runway_extend_keeps_the_quality_and_its_unknown_price_is_reserved_then_measured(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, {**RUNWAY, "resolution": "1080p"})
        before = await spent_today(client)
        extended = await client.call_tool(
            "continue_video",
            {"task_id": source, "operation": "extend", "prompt": "it tips over a grate", "max_credits": 40},
        )
        task = extended.structured_content["tasks"][0]
        assert await spent_today(client) == before + 30  # the catalogue's most (a Runway clip), never max_credits
        await follow(client, task["task_id"])
        done = await client.call_tool(
            "continue_video",
            {"task_id": task["task_id"], "operation": "extend", "prompt": "and sails on", "wait_seconds": 40},
        )
    assert "(30 reserved against today's cap, about $0.15: the most it can cost" in seen[1], seen[1]
    assert task["parent_task_id"] == source
    creates = await requests_to(controls, RUNWAY_EXTEND)
    assert [c["body"]["quality"] for c in creates] == ["1080p", "1080p"]  # the source's quality carries over
    assert creates[1]["body"]["taskId"] == task["task_id"] and creates[1]["body"]["callBackUrl"] == ""
    finished_task = done.structured_content["tasks"][0]
    assert finished_task["state"] == "succeeded", text_of(done)
    assert finished_task["credits_charged"] == 30  # measured from the balance: the simulator's 5 s 1080p price


async def test_grok_extend_is_priced_by_the_source_resolution_and_charged_as_quoted(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    async with connect(elicitation=answering()) as client:
        source = await finished(client, GROK)
        estimate = await client.call_tool(
            "estimate_cost", {"task_id": source, "operation": "extend", "prompt": "it curls up", "duration": 10}
        )
        quote = estimate.structured_content["quote"]
        extended = await client.call_tool(
            "continue_video",
            {
                "task_id": source,
                "operation": "extend",
                "prompt": "it curls up",
                "duration": 10,
                "quote_id": quote["quote_id"],
                "wait_seconds": 40,
            },
        )
    assert quote["credits_total"] == 45 and "source.resolution=720p" in quote["breakdown"]  # 2026-09 feed: 10 s 720p
    task = extended.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["credits_charged"] == 45, text_of(extended)
    [create] = [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/extend"]
    # extend_at: KIE's default 2 (its docs of 2026-09-24 and 2026-10-07 take 2 or more)
    assert create["body"]["input"] == {"task_id": source, "prompt": "it curls up", "extend_at": 2, "extend_times": "10"}


@pytest.mark.parametrize("extend_at", [1, 0, 1.5])
async def test_a_grok_extension_starting_before_2_s_is_refused_before_anything_is_asked_or_spent(
    connect, controls, extend_at
):
    """The audit of 2026-12-06: kie-mcp sent extend_at 0 and took any value from 0 (a live call of 2026-04-16 sent 0),
    while KIE's docs of 2026-09-24 and 2026-10-07 require extend_at of at least 2. A value below 2 is refused by
    estimate_cost and continue_video, saying what it takes, before any quote, form or create."""
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, GROK)
        del seen[:]  # the source clip's approval
        asked = {"task_id": source, "operation": "extend", "duration": 6, "options": {"extend_at": extend_at}}
        estimate = await client.call_tool("estimate_cost", asked)
        refused = await client.call_tool("continue_video", {**asked, "wait_seconds": 0})
    for answer in (estimate, refused):
        assert answer.is_error, text_of(answer)
        said = text_of(answer)
        assert f"options.extend_at: {extend_at} is out of range at least 2. Nearest allowed: 2." in said, said
    assert seen == []  # no approval was asked for
    assert [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/extend"] == []


# -- 1080p: waits are not spends -----------------------------------------------------------------------------------


async def test_a_pixverse_extension_of_a_clip_with_sound_keeps_its_sound_and_its_price(connect, controls):
    """The audit (F5): a PixVerse clip made with sound was extended silent, priced at the silent rate (72 credits for
    5 s at 1080p), and a chain join then had a silent stretch. The extension keeps the clip's sound (KIE's extend
    takes generate_audio_switch and prices it: 18.4 credits/s at 1080p) unless told otherwise."""
    seen: list[str] = []
    pixverse = {"prompt": "a red kite over a beach", "model": "pixverse-v6/text-to-video"}
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=0) as client:
        source = await finished(client, {**pixverse, "audio": True, "resolution": "1080p"})
        estimate = await client.call_tool("estimate_cost", {"task_id": source, "operation": "extend"})
        silent = await client.call_tool(
            "estimate_cost",
            {"task_id": source, "operation": "extend", "options": {"generate_audio_switch": False}},
        )
        extended = await client.call_tool("continue_video", {"task_id": source, "operation": "extend"})
    assert estimate.structured_content["quote"]["credits_total"] == 92, text_of(estimate)  # 18.4/s x 5 s
    assert silent.structured_content["quote"]["credits_total"] == 72, text_of(silent)  # asked silent: 14.4/s
    assert extended.structured_content["status"] == "submitted" and "92 credits" in seen[-1], text_of(extended)
    create = [r["body"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == "pixverse-v6/extend"]
    assert [body["input"]["generate_audio_switch"] for body in create] == [True], create


async def test_a_pixverse_transition_clip_can_be_extended_like_any_pixverse_v6_clip(connect, controls):
    """The review: continue_video refused to extend a pixverse-v6/transition clip ("needs a task of ... PixVerse V6
    (text to video) ..."), while KIE's pixverse-v6/extend continues any finished PixVerse V6 task. It is extended as
    the others are, at the clip's quality and with its sound."""
    seen: list[str] = []
    transition = {
        "prompt": "the bud opens into a flower",
        "model": "pixverse-v6/transition",
        "images": ["https://example.com/bud.png", "https://example.com/flower.png"],
        "resolution": "540p",
        "audio": True,
    }
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=0) as client:
        source = await finished(client, transition)
        estimate = await client.call_tool("estimate_cost", {"task_id": source, "operation": "extend"})
        extended = await client.call_tool("continue_video", {"task_id": source, "operation": "extend"})
    assert not estimate.is_error, text_of(estimate)
    assert estimate.structured_content["quote"]["credits_total"] == 36, text_of(estimate)  # 7.2/s at 540p with sound
    assert extended.structured_content["status"] == "submitted", text_of(extended)
    assert "36 credits" in seen[-1] and "PixVerse V6 extend" in seen[-1], seen[-1]
    create = [r["body"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == "pixverse-v6/extend"]
    assert [(body["input"]["taskId"], body["input"]["quality"]) for body in create] == [(source, "540p")], create
    assert [body["input"]["generate_audio_switch"] for body in create] == [True], create


async def test_an_operation_written_in_capitals_or_with_spaces_is_the_one_it_names(connect, controls):
    """The audit: operation "4K" (as people write 4K) was refused with 'must be one of "extend", "hd", "4k" or
    "upscale" (got "4K")'. An operation that names one of them in another case, or with spaces around it, is that
    one; what is sent is the same as for the operation as listed."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        estimate = await client.call_tool("estimate_cost", {"task_id": source, "operation": "HD"})
        assert not estimate.is_error, text_of(estimate)
        quote = estimate.structured_content["quote"]
        made = await client.call_tool(
            "continue_video", {"task_id": source, "operation": " Hd ", "quote_id": quote["quote_id"]}
        )
        refused = await client.call_tool("estimate_cost", {"task_id": source, "operation": "8K"})
    assert quote["credits_total"] == 5 and quote["model"] == "veo/get-1080p-video", quote
    task = made.structured_content["tasks"][0]
    assert task["operation"] == "hd" and task["task_id"] == f"{source}-1080p", text_of(made)
    assert await requests_to(controls, HD_PATH)  # KIE's 1080p endpoint, as for operation "hd"
    assert refused.is_error and '(got "8K")' in text_of(refused), text_of(refused)  # naming none: refused as before


async def test_veo_1080p_processing_is_a_wait_charged_once(connect, controls):
    await controls.post("config", {"hd_blank_seconds": 20})  # KIE's other "not yet": "record result data is blank"
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        paid = await balance(controls)
        hd = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 40})
        again = await client.call_tool("continue_video", {"task_id": source, "operation": "hd"})
        spent = await spent_today(client)
    result = hd.structured_content
    assert result["status"] == "completed", text_of(hd)
    task = result["tasks"][0]
    assert task["task_id"] == f"{source}-1080p" and task["parent_task_id"] == source and task["operation"] == "hd"
    assert task["result_urls"][0].endswith("/1080p-0.mp4") and task["files"]
    asks = await requests_to(controls, HD_PATH)
    assert len(asks) >= 2  # asked again while KIE prepared it ...
    assert paid - await balance(controls) == 5  # ... and charged once
    assert spent == 60 + 5
    assert again.structured_content["tasks"][0]["task_id"] == task["task_id"]  # made once per clip: returned
    assert "Nothing new was requested or charged" in text_of(again)
    assert len(await requests_to(controls, HD_PATH)) == len(asks)  # not even asked again


async def test_a_1080p_version_already_made_is_estimated_at_0_credits_with_no_quote_to_approve(connect, controls):
    """The audit (F1): once a clip's 1080p version was made, estimate_cost still quoted its full price with a
    quote_id, auto-approved it, held it against the daily cap ("Over a cap") and said approving it again would pay
    again, though continue_video returns the one made, free. It says 0 credits, names that task, and issues no
    quote: nothing is to approve, so no cap stands in the way and nothing can be approved by it."""
    async with connect(elicitation=answering(), auto_approve_credits=100, max_credits_per_day=66) as client:
        source = await finished(client, VEO)
        made = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 40})
        hd = made.structured_content["tasks"][0]["task_id"]
        spent, asked = await spent_today(client), len(await requests_to(controls, HD_PATH))
        estimate = await client.call_tool("estimate_cost", {"task_id": source, "operation": "hd"})
        again = await client.call_tool("continue_video", {"task_id": source, "operation": "hd"})
        spent_after = await spent_today(client)
    answer, text = estimate.structured_content, text_of(estimate)
    assert not estimate.is_error and answer["quote"] is None, text
    assert answer["within_caps"] is True and answer["cap_problem"] is None and answer["auto_approved"] is False
    assert text.startswith("0 credits:") and f"task {hd} (succeeded)" in text and "quote_id=" not in text, text
    assert "Over a cap" not in text and "pays for it, again" not in text and "already made at" not in text
    assert again.structured_content["tasks"][0]["task_id"] == hd and "Nothing new was requested" in text_of(again)
    assert spent == spent_after == 60 + 5 and len(await requests_to(controls, HD_PATH)) == asked


# -- 4K: a repeated request is never charged twice ------------------------------------------------------------------


async def test_4k_asked_again_while_processing_returns_the_same_task_and_spends_once(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, VEO)
        first = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
        spent = await spent_today(client)
        second = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
        estimate = await client.call_tool("estimate_cost", {"task_id": source, "operation": "4k"})
        done = await follow(client, first.structured_content["tasks"][0]["task_id"])
        spent_after = await spent_today(client)
    uhd = first.structured_content["tasks"][0]["task_id"]
    assert second.structured_content["tasks"][0]["task_id"] == uhd
    assert len(await requests_to(controls, UHD_PATH)) == 1
    assert len(seen) == 2  # the clip and the first 4K: the repeat asked nobody
    assert spent == spent_after == 60 + 120
    assert "already has this" in text_of(estimate)
    assert done["state"] == "succeeded" and done["result_urls"] and done["parent_task_id"] == source


async def test_two_4k_requests_at_once_record_one_task_with_its_reserve(connect, controls):
    """Both calls pass the "already made?" check of their plans before either is recorded; the second, once
    approved, waits for the first's task and answers with it, so KIE sees one request. One task, one charge, and the
    first's record (its reserve) stands. (KIE's own 422 naming an existing 4K task: the test after this one.)"""
    async with connect(elicitation=answering(), auto_approve_credits=200) as client:
        source = await finished(client, VEO)
        results: list[Any] = []

        async def ask() -> None:
            results.append(await client.call_tool("continue_video", {"task_id": source, "operation": "4k"}))

        async with anyio.create_task_group() as group:
            group.start_soon(ask)
            group.start_soon(ask)
        spent = await spent_today(client)
    [task_id] = {r.structured_content["tasks"][0]["task_id"] for r in results}
    async with connect() as client:  # a restart: what the journal kept, not the live follower's copy
        checked = (await client.call_tool("list_tasks", {})).structured_content["tasks"]
    [checked] = [t for t in checked if t["task_id"] == task_id]
    assert len(await requests_to(controls, UHD_PATH)) == 1
    assert spent == 60 + 120
    assert checked["credits_reserved"] == 120 and checked["parent_task_id"] == source


async def test_a_4k_kie_already_has_is_followed_and_not_charged_again(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        # Someone else (another tool, kie.ai) asked for this clip's 4K version: KIE answers our request with 422.
        made = (await controls.http.post(UHD_PATH, json={"taskId": source, "index": 0}, headers=kie_auth())).json()
        before, paid = await spent_today(client), await balance(controls)
        result = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
        after = await spent_today(client)
        done = await follow(client, made["data"]["taskId"])
    task = result.structured_content["tasks"][0]
    assert task["task_id"] == made["data"]["taskId"] and task["credits_reserved"] == 0, text_of(result)
    assert "KIE already had this task" in text_of(result)
    assert after == before and await balance(controls) == paid  # reserved, then refunded; KIE charged nothing
    assert done["state"] == "succeeded" and done["result_urls"]


async def test_a_4k_kie_already_generated_yields_its_result(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        made = (await controls.http.post(UHD_PATH, json={"taskId": source, "index": 0}, headers=kie_auth())).json()
        await controls.post("clock/advance", {"seconds": 700})
        paid = await balance(controls)
        result = await client.call_tool("continue_video", {"task_id": source, "operation": "4k", "wait_seconds": 40})
    answer = (await requests_to(controls, UHD_PATH))[-1]
    assert answer["body"] == {"taskId": source, "index": 0}
    task = result.structured_content["tasks"][0]
    assert task["task_id"] == made["data"]["taskId"] and task["state"] == "succeeded", text_of(result)
    assert task["files"] and await balance(controls) == paid


async def test_a_4k_answer_naming_the_source_clip_keeps_the_clip_and_finds_the_4k_when_asked_again(connect, controls):
    """KIE's documented example answer of get-4k-video names the source clip's task id. Taken as the 4K task, the
    clip's own result was reported (and saved) as its 4K version and the clip's record overwritten."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        await controls.post("config", {"uhd_names_source": True})
        first = await client.call_tool("continue_video", {"task_id": source, "operation": "4k", "wait_seconds": 40})
        spent = await spent_today(client)
        again = await client.call_tool("continue_video", {"task_id": source, "operation": "4k", "wait_seconds": 40})
        spent_again, paid = await spent_today(client), await balance(controls)
    asked = first.structured_content
    assert asked["status"] == "unknown", text_of(first)
    assert asked["tasks"][0]["task_id"] is None and not asked["saved_files"]
    assert f"continue_video(task_id='{source}', operation='4k') in a few minutes" in text_of(first)
    assert "do not ask a third time" in text_of(first)
    assert spent == 60 + 120  # KIE probably charged it: counted against the caps
    uhd = again.structured_content["tasks"][0]
    assert uhd["task_id"] not in (None, source) and uhd["state"] == "succeeded" and uhd["files"], text_of(again)
    assert uhd["parent_task_id"] == source and "nothing new was started or charged" in text_of(again)
    assert spent_again == 60 + 120 and paid == 5000 - 60 - 120  # the second ask cost nothing
    async with connect() as client:  # a restart: what the journal kept
        tasks = {t["task_id"]: t for t in (await client.call_tool("list_tasks", {})).structured_content["tasks"]}
    assert tasks[source]["model"] == "veo3_fast" and tasks[source]["parent_task_id"] is None
    assert tasks[uhd["task_id"]]["operation"] == "4k"
    assert len(await requests_to(controls, UHD_PATH)) == 2


async def test_a_veo_clip_whose_kie_record_names_no_model_can_be_continued(connect, controls):
    """KIE's documented record-info example shows paramJson without a model. A Veo clip made on kie.ai (or by
    another tool) was then 'made by unknown', and every Veo follow-up refused it before asking anyone."""
    made = await controls.http.post("/api/v1/veo/generate", json={"prompt": "gulls at dusk"}, headers=kie_auth())
    source = made.json()["data"]["taskId"]
    await controls.post("clock/advance", {"seconds": 600})
    async with connect(elicitation=answering()) as client:
        uhd = await client.call_tool("continue_video", {"task_id": source, "operation": "4k", "wait_seconds": 40})
        extended = await client.call_tool(
            "continue_video", {"task_id": source, "operation": "extend", "prompt": "the gulls land", "wait_seconds": 40}
        )
    for result in (uhd, extended):
        task = result.structured_content["tasks"][0]
        assert task["state"] == "succeeded" and task["files"] and task["parent_task_id"] == source, text_of(result)
    assert len(await requests_to(controls, UHD_PATH)) == 1 and len(await requests_to(controls, VEO_EXTEND)) == 1
    assert "a Veo 3.1 clip; KIE's record of it does not name the model" in text_of(uhd)


def test_a_veo_records_parameters_name_its_model():
    def model(param: dict[str, Any]) -> str | None:
        return FAMILIES["veo"].parse_status("t", {"successFlag": 1, "paramJson": json.dumps(param)}).model

    assert model({"model": "veo3", "prompt": "x"}) == "veo3"
    assert model({"taskId": "src", "model": "fast", "prompt": "x"}) == "veo/extend"  # an extend names its tier
    assert model({"taskId": "src", "prompt": "x"}) == "veo/extend"
    assert model({"taskId": "src", "index": 0}) == "veo/get-4k-video"  # the 4K request's body
    assert model({"prompt": "x"}) is None  # KIE's documented example: a generation that names no model


async def test_a_4k_made_elsewhere_is_not_taken_for_a_clip_to_continue(connect, controls):
    """Its record names no model either; read as 'some Veo clip', it was offered for extend and for another 4K,
    which KIE's rules refuse (a 4K version cannot be extended or upgraded)."""
    made = await controls.http.post("/api/v1/veo/generate", json={"prompt": "gulls at dusk"}, headers=kie_auth())
    await controls.post("clock/advance", {"seconds": 600})
    uhd = await controls.http.post(
        UHD_PATH, json={"taskId": made.json()["data"]["taskId"], "index": 0}, headers=kie_auth()
    )
    await controls.post("clock/advance", {"seconds": 700})
    async with connect(elicitation=answering()) as client:
        extend = await client.call_tool(
            "continue_video", {"task_id": uhd.json()["data"]["taskId"], "operation": "extend", "prompt": "on"}
        )
    assert extend.is_error and "Veo 3.1 4K version" in text_of(extend), text_of(extend)
    assert len(await requests_to(controls, VEO_EXTEND)) == 0


# -- upscale and hd of other families ------------------------------------------------------------------------------


async def test_grok_hd_is_its_upscale_priced_by_the_source_resolution(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, GROK)
        hd = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 40})
    task = hd.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["model"] == "grok-imagine/upscale", text_of(hd)
    assert "20 credits" in seen[-1]  # 720p -> 1080p
    [create] = [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/upscale"]
    assert create["body"]["input"] == {"task_id": source, "resolution": "1080p"}  # KIE's default target is 720p


async def test_a_grok_clip_made_elsewhere_is_never_priced_by_a_guessed_resolution(connect, controls, sim):
    """A clip this workspace did not make has no recorded resolution (it may be 1080p, which KIE lists no price
    for): the follow-up's price is unknown, reserved and asked for, even under a generous auto-approve limit."""
    made = await controls.http.post(
        MARKET, json={"model": GROK["model"], "input": {"prompt": "a cat", "resolution": "720p"}}, headers=kie_auth()
    )
    source = made.json()["data"]["taskId"]
    sim.advance(600)
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=100) as client:
        quote = (await client.call_tool("estimate_cost", {"task_id": source, "operation": "hd"})).structured_content
        hd = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "max_credits": 40})
    assert quote["quote"]["price_known"] is False and quote["quote"]["credits_total"] is None
    assert not quote["auto_approved"]
    assert not hd.is_error and seen, text_of(hd)  # the person was asked: no auto-approval of an unknown price
    # KIE lists no price for it and the catalogue no most: the whole per-call cap, whatever max_credits says
    assert "(600 reserved against today's cap, about $3.00;" in seen[-1] and "UNKNOWN" in seen[-1]


async def test_upscale_sends_the_saved_clip_of_any_video_to_topaz(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, KLING)
        upscaled = await client.call_tool(
            "continue_video", {"task_id": source, "operation": "upscale", "resolution": "4", "wait_seconds": 40}
        )
    task = upscaled.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["model"] == "topaz/video-upscale", text_of(upscaled)
    assert "Spend 70 credits" in seen[-1] and "the saved file outputs/" in seen[-1]  # 14 credits/s x 5 s measured
    [create] = [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "topaz/video-upscale"]
    assert create["body"]["input"]["upscale_factor"] == "4"
    assert "/files/uploads/" in create["body"]["input"]["video_url"]  # the saved file, uploaded after approval


async def test_under_download_never_an_upscale_says_to_save_the_clip_first(connect, controls):
    """KIE_DOWNLOAD=never keeps no copy, and KIE's result links expire (within the hour, at times): the upscale is
    refused before anything is sent, naming the setting to change (advice to call check_task alone would loop)."""
    async with connect(elicitation=answering(), download=False) as client:
        source = await finished(client, KLING)
        refused = await client.call_tool("continue_video", {"task_id": source, "operation": "upscale"})
    text = text_of(refused)
    assert refused.is_error and "KIE_DOWNLOAD=never" in text and "Set KIE_DOWNLOAD=always" in text, text
    assert [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "topaz/video-upscale"] == []


# -- refusals: nothing sent, nobody asked, the error names the argument and what to do -----------------------------


async def test_an_upscale_of_a_clip_no_longer_saved_is_refused_until_check_task_saves_it_again(
    connect, controls, tmp_path, sim
):
    """The saved clip deleted and its KIE link expired: the upscale was quoted at an unknown price (its length could
    not be measured) and sent with the dead link, a paid task KIE could only fail. It is refused, pointing at
    check_task, which saves the clip again from a fresh link; then the upscale goes ahead at its measured price."""
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, KLING)
        [saved] = (await follow(client, source))["files"]
        (tmp_path / saved).unlink()
        sim.advance(2 * 86400)  # two days on: the result link has expired
        asked = {"task_id": source, "operation": "upscale", "resolution": "2", "wait_seconds": 40}
        refused = await client.call_tool("continue_video", asked)
        checked = await client.call_tool("check_task", {"task_id": source})
        upscaled = await client.call_tool("continue_video", asked)
    text = text_of(refused)
    assert refused.is_error and "- task_id: " in text and f"check_task(task_id='{source}')" in text, text
    assert "not saved in this workspace any more" in text and "nothing was sent or charged" in text
    assert (tmp_path / checked.structured_content["task"]["files"][0]).is_file()
    assert upscaled.structured_content["tasks"][0]["state"] == "succeeded", text_of(upscaled)
    assert "the saved file outputs/" in seen[-1] and "UNKNOWN" not in seen[-1], seen[-1]
    [create] = [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "topaz/video-upscale"]
    assert "/files/uploads/" in create["body"]["input"]["video_url"]


async def test_an_upscale_of_a_veo_extension_never_sends_its_new_part_for_the_whole_video(connect, controls, tmp_path):
    """The audit (F2): a Veo extension saves its whole video (``_1.mp4``) and its new part (``_2.mp4``). With the
    whole-video file gone, the upscale uploaded the new part, was charged, and a chain join then took that upscale
    for the whole extended video, dropping the first clip's footage. It is refused, as stitch_videos refuses the
    extension, until check_task saves the whole video again; then that file is what is sent."""
    async with connect(elicitation=answering(), auto_approve_credits=1000) as client:
        source = await finished(client, VEO)
        made = await client.call_tool("continue_video", {"task_id": source, "operation": "extend", "wait_seconds": 40})
        extended = await follow(client, made.structured_content["tasks"][0]["task_id"])
        whole, part = extended["files"]
        (tmp_path / whole).unlink()
        asked = {"task_id": extended["task_id"], "operation": "upscale", "resolution": "2", "wait_seconds": 40}
        estimate = await client.call_tool("estimate_cost", asked)
        refused = await client.call_tool("continue_video", asked)
        spent = await spent_today(client)
        await client.call_tool("check_task", {"task_id": extended["task_id"]})
        upscaled = await client.call_tool("continue_video", asked)
    assert whole.endswith("_1.mp4") and part.endswith("_2.mp4")
    for result in (estimate, refused):
        text = text_of(result)
        assert result.is_error and "- task_id: " in text and part not in text, text
        assert f"({whole} is not there)" in text and f"check_task(task_id='{extended['task_id']}')" in text, text
    assert spent == 60 + 60  # the clip and its extension; nothing for the refused upscale
    assert upscaled.structured_content["tasks"][0]["state"] == "succeeded", text_of(upscaled)
    [upload] = await requests_to(controls, "/api/file-stream-upload")
    assert "_1-" in upload["body"]["fileName"] and "_2-" not in upload["body"]["fileName"], upload["body"]


async def test_an_upscale_of_a_veo_extension_whose_whole_video_was_never_saved_is_refused(connect, controls):
    """The same, when the whole video's download failed and only the new part was saved: refused, nothing sent."""
    async with connect(elicitation=answering(), auto_approve_credits=1000) as client:
        source = await finished(client, VEO)
        await controls.fault("files", times=2, kind="html", status=200)  # its first file, and that file minted anew
        made = await client.call_tool("continue_video", {"task_id": source, "operation": "extend", "wait_seconds": 40})
        extended = made.structured_content["tasks"][0]  # not check_task: it would try the first file again
        asked = {"task_id": extended["task_id"], "operation": "upscale", "resolution": "2"}
        refused = await client.call_tool("continue_video", asked)
    [part] = extended["files"]
    text = text_of(refused)
    assert part.endswith("_2.mp4") and refused.is_error and "its main video (its first result) was not saved" in text
    assert await requests_to(controls, "/api/file-stream-upload") == []
    assert [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "topaz/video-upscale"] == []


async def test_a_join_of_a_veo_extension_whose_whole_video_was_never_saved_never_joins_its_new_part(connect, controls):
    """The follow-ups builder's finding: stitch_videos joined the first video file a task had, so an extension whose
    whole video failed to download joined its new part alone as if it were the whole clip (the source's footage
    silently missing from the join). Refused, saying to save it again."""
    async with connect(elicitation=answering(), auto_approve_credits=1000) as client:
        source = await finished(client, VEO)
        await controls.fault("files", times=2, kind="html", status=200)  # its first file, and that file minted anew
        made = await client.call_tool("continue_video", {"task_id": source, "operation": "extend", "wait_seconds": 40})
        extended = made.structured_content["tasks"][0]
        joined = await client.call_tool("stitch_videos", {"clips": [extended["task_id"]], "output_name": "whole"})
        chained = await client.call_tool("stitch_videos", {"clips": [extended["task_id"]], "chain": True})
    [part] = extended["files"]
    assert part.endswith("_2.mp4")
    for refused in (joined, chained):
        text = text_of(refused)
        assert refused.is_error and "main video (its first result) was not saved" in text, text
        assert f"check_task(task_id='{extended['task_id']}')" in text


async def test_a_bad_saved_clip_is_refused_under_task_id_saying_what_to_do(connect, controls, tmp_path):
    """The audit: a saved clip the upscaler cannot take (here replaced by text) was refused under options.video_url, a
    field the caller never typed (continue_video fills it in from task_id). The refusal names task_id, the saved file
    it sends, why it cannot, and what to do instead, in the estimate too; nothing is asked, uploaded or sent. (The
    journal records the text as what was saved: a file changed since has its own refusal, test_promise_saved_unchanged.)
    """
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, KLING)
        [saved] = (await follow(client, source))["files"]
        (tmp_path / saved).write_text("not a clip any more\n")
        with sqlite3.connect(journal_path(tmp_path)) as db:
            bad = (tmp_path / saved).read_bytes()
            db.execute(
                "UPDATE files SET size = ?, sha256 = ? WHERE path = ?", (len(bad), sha256(bad).hexdigest(), saved)
            )
        asked = {"task_id": source, "operation": "upscale", "resolution": "2"}
        estimate = await client.call_tool("estimate_cost", asked)
        refused = await client.call_tool("continue_video", asked)
    for result in (estimate, refused):
        text = text_of(result)
        assert result.is_error and "- task_id: " in text and "options.video_url" not in text, text
        assert f"task {source}'s saved clip ({saved})" in text and "is not a video (its bytes are plain text)" in text
        assert "generate_video(model='topaz/video-upscale', options={'video_url': '<the copy>'})" in text, text
    assert len(seen) == 1  # the source's own form; none for the refused upscale
    assert [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "topaz/video-upscale"] == []
    assert await requests_to(controls, "/api/file-stream-upload") == []


async def test_a_task_that_is_still_running_is_refused_with_what_to_do(connect, controls):
    seen: list[str] = []
    await controls.post(
        "clock/speed", {"speed": 0}
    )  # the clock stands still: the task is running, however slow the host
    async with connect(elicitation=answering(seen=seen)) as client:
        made = await client.call_tool("generate_video", VEO)
        task_id = made.structured_content["tasks"][0]["task_id"]
        refused = await client.call_tool("continue_video", {"task_id": task_id, "operation": "extend"})
        estimate = await client.call_tool("estimate_cost", {"task_id": task_id, "operation": "4k"})
    for result in (refused, estimate):
        assert result.is_error
        text = text_of(result)
        assert "- task_id: " in text and "still" in text and f"check_task(task_id='{task_id}'" in text, text
    assert len(seen) == 1 and await requests_to(controls, VEO_EXTEND) == []


async def test_a_task_of_the_wrong_family_is_refused_naming_what_fits(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, KLING)
        uhd = await client.call_tool("continue_video", {"task_id": source, "operation": "4k"})
        extend = await client.call_tool("continue_video", {"task_id": source, "operation": "extend"})
        wrong_model = await client.call_tool(
            "continue_video", {"task_id": source, "operation": "upscale", "model": "veo/get-4k-video"}
        )
    text = text_of(uhd)
    assert uhd.is_error and "- operation: " in text and "Veo 3.1" in text and "Kling 3.0" in text, text
    assert "operation=upscale (model=topaz/video-upscale)" in text
    assert extend.is_error and "operation=upscale" in text_of(extend)
    assert wrong_model.is_error and "- model: " in text_of(wrong_model)
    assert [r for r in await requests_to(controls, MARKET) if r["body"]["model"] != KLING["model"]] == []


async def test_an_image_a_failed_task_and_an_unknown_id_are_refused(connect, controls):
    async with connect(elicitation=answering()) as client:
        image = (await client.call_tool("generate_image", IMAGE)).structured_content["tasks"][0]["task_id"]
        await controls.post("clock/speed", {"speed": 0})  # the video runs until it is failed (a busy run finished it)
        made = await client.call_tool("generate_video", VEO)
        failed = made.structured_content["tasks"][0]["task_id"]
        await controls.post(f"tasks/{failed}", {"state": "fail", "fail_msg": "upstream timeout"})
        await follow(client, failed)
        results = [
            await client.call_tool("continue_video", {"task_id": task_id, "operation": "upscale"})
            for task_id in (image, failed, "no-such-task")
        ]
    assert all(r.is_error for r in results)
    assert "is an image" in text_of(results[0]) and "topaz/image-upscale" in text_of(results[0])
    assert "failed" in text_of(results[1]) and "no video to continue" in text_of(results[1])
    assert "KIE knows no task 'no-such-task'" in text_of(results[2])


async def test_a_clip_older_than_kie_keeps_it_is_refused(connect, controls, settings):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        journal = Journal(journal_path(settings.workspace))
        row = journal.task_row(source)
        record = json.loads(row["record"])
        record["created_at"] = time.time() - 15 * 86400
        journal.execute("UPDATE tasks SET record = ? WHERE task_id = ?", json.dumps(record), source)
        journal.close()
        refused = await client.call_tool("continue_video", {"task_id": source, "operation": "extend"})
    assert refused.is_error and "15 days ago" in text_of(refused) and "KIE keeps a task 14 days" in text_of(refused)
    assert await requests_to(controls, VEO_EXTEND) == []


async def test_a_clip_made_outside_kie_mcp_is_as_old_as_kie_says(connect, controls, sim):
    """A Market clip made elsewhere (another tool, KIE's site) 15 days ago: check_task records it with KIE's own
    creation time, so list_tasks dates it right and a follow-up is refused before any create, as KIE would."""
    made = await controls.http.post(
        MARKET, json={"model": GROK["model"], "input": {"prompt": "a cat"}}, headers=kie_auth()
    )
    task_id = made.json()["data"]["taskId"]
    sim.tasks[task_id].created_at -= 15 * 86400
    async with connect(elicitation=answering()) as client:
        found = await client.call_tool("check_task", {"task_id": task_id})
        listed = await client.call_tool("list_tasks", {})
        refused = await client.call_tool("continue_video", {"task_id": task_id, "operation": "extend"})
    assert found.structured_content["task"]["state"] == "succeeded", text_of(found)
    [row] = [t for t in listed.structured_content["tasks"] if t["task_id"] == task_id]
    age = time.time() - datetime.fromisoformat(row["created_at"].replace("Z", "+00:00")).timestamp()
    assert 14.9 * 86400 < age < 15.1 * 86400
    assert refused.is_error and "15 days ago" in text_of(refused) and "KIE keeps a task 14 days" in text_of(refused)
    assert [r for r in await requests_to(controls, MARKET) if r["body"]["model"] == "grok-imagine/extend"] == []


async def test_a_veo_clip_upgraded_to_1080p_cannot_be_extended(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 40})
        refused = await client.call_tool("continue_video", {"task_id": source, "operation": "extend"})
    assert refused.is_error and "after its 1080p version" in text_of(refused), text_of(refused)
    assert await requests_to(controls, VEO_EXTEND) == []


@pytest.mark.parametrize("resolution", ["1080p", "4k"])
async def test_a_veo_clip_made_at_1080p_or_4k_is_not_extended_and_says_to_extend_a_720p_clip(
    connect, controls, resolution
):
    """KIE's extend page (compiled 2026-09-24): '1080P-generated videos cannot be extended'. kie-mcp refused an
    extension only after a 1080p version was asked for, so a clip made at 1080p (or 4K) went to KIE as a paid
    request it refuses. Now it is refused before any quote, form or create, saying how to get the scene extended."""
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        source = await finished(client, {**VEO, "resolution": resolution})
        del seen[:]  # the source clip's approval
        asked = {"task_id": source, "operation": "extend", "prompt": "the tide rolls in"}
        estimate = await client.call_tool("estimate_cost", asked)
        refused = await client.call_tool("continue_video", asked)
    for answer in (estimate, refused):
        assert answer.is_error, text_of(answer)
        said = text_of(answer)
        assert "1080p" in said if resolution == "1080p" else "4K" in said, said
        assert "Nothing was sent or charged" in said and "make the clip at resolution=720p, extend that one" in said
    assert seen == []
    assert await requests_to(controls, VEO_EXTEND) == []


async def test_a_clip_made_at_1080p_has_no_separate_1080p_version(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, {**VEO, "resolution": "1080p"})
        refused = await client.call_tool("continue_video", {"task_id": source, "operation": "hd"})
    assert refused.is_error and "already made at 1080p" in text_of(refused)
    assert await requests_to(controls, HD_PATH) == []


async def test_generate_video_refuses_a_follow_up_model_and_points_to_continue_video(connect, controls):
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool(
            "generate_video", {"prompt": "more", "model": "veo/extend", "options": {"taskId": "x"}}
        )
        no_model = await client.call_tool("estimate_cost", {"prompt": "waves"})
        half = await client.call_tool("estimate_cost", {"task_id": "x"})
    assert refused.is_error and "continue_video(task_id=..., operation='extend')" in text_of(refused)
    assert no_model.is_error and "needs model" in text_of(no_model)
    assert half.is_error and "operation is missing" in text_of(half)
    assert await controls.creates() == []


# -- the gate: quotes, single use, no question without a form ------------------------------------------------------


async def test_an_approved_quote_buys_exactly_one_create(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
    async with connect() as client:  # a client that cannot show forms
        asked = await client.call_tool("continue_video", {"task_id": source, "operation": "extend", "prompt": "dusk"})
        quote = asked.structured_content["quote"]
        arguments = {"task_id": source, "operation": "extend", "prompt": "dusk", "quote_id": quote["quote_id"]}
        done = await client.call_tool("continue_video", arguments)
        replay = await client.call_tool("continue_video", arguments)
        changed = await client.call_tool("continue_video", {**arguments, "prompt": "night"})
    assert asked.structured_content["status"] == "confirmation_required" and quote["credits_total"] == 60
    assert "call continue_video again" in text_of(asked)
    assert done.structured_content["status"] == "submitted", text_of(done)
    assert replay.structured_content["status"] == "confirmation_required"  # a quote is good for one request, once
    assert changed.structured_content["status"] == "confirmation_required"  # and for that exact request only
    assert len(await requests_to(controls, VEO_EXTEND)) == 1


async def test_a_replayed_confirmation_of_a_follow_up_never_creates_it_twice(connect, controls, mode):
    if mode != "auto":
        pytest.skip("only the 2026-07-28 era carries the confirmation inside a retried request")
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        arguments = {"task_id": source, "operation": "extend", "prompt": "night falls"}
        done, again = await confirmed_and_replayed(client, "continue_video", arguments)
    task_id = done.structured_content["tasks"][0]["task_id"]
    assert done.structured_content["status"] == "submitted", text_of(done)
    assert [t["task_id"] for t in again.structured_content["tasks"]] == [task_id]  # the earlier result
    assert "already used" in text_of(again)
    assert len(await requests_to(controls, VEO_EXTEND)) == 1


async def test_a_follow_up_that_may_have_reached_kie_is_not_resubmitted(connect, controls):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        await controls.fault("create", kind="drop_after_create")
        result = await client.call_tool("continue_video", {"task_id": source, "operation": "extend"})
        listed = await client.call_tool("list_tasks", {})
    assert result.structured_content["status"] == "unknown", text_of(result)
    assert "NOT resubmitted" in text_of(result)
    assert listed.structured_content["unknown_creates"] == 1
    assert len(await requests_to(controls, VEO_EXTEND)) == 1


# Each extension with each first-clip model it continues (follow-ups of follow-ups left out): the pairs whose prices
# the words about extending are checked against.
EXTENSION_SOURCES = [
    (spec.id, parent)
    for spec in CATALOG.offered()
    if spec.followup is not None and spec.followup.operation == "extend"
    for parent in spec.followup.parents
    if CATALOG.get(parent).followup is None
]
CHEAPER = re.compile(  # "extending a good take is usually cheaper", "Cheaper than a new clip", "cheaper to continue"
    r"(?i)(extend|extension|continu)[^.]{0,80}cheaper|cheaper[^.]{0,80}(extend|continu|regenerat)|cheaper than a new"
)


async def test_an_extension_costs_about_what_a_new_clip_of_its_length_does_as_the_instructions_and_guides_say(
    connect, controls
):
    """The audit: the server's instructions, veo/extend's description and the prompting guides said extending a
    good take is cheaper than making a new one; the catalogue prices a Veo Fast extension at 60 credits, a new Fast
    clip too (Grok 14.4 and 14.4, PixVerse 36 and 36). The words now say what is true, and estimate_cost keeps it
    true: every priced extension costs within 15% of a new clip of the same model and length."""
    compared: dict[str, float] = {}
    async with connect(elicitation=answering(), auto_approve_credits=300) as client:
        instructions = client.instructions or ""
        guides = [
            (await client.read_resource(f"kie://prompting/{name}")).contents[0].text
            for name in ("guide.md", "prompt-library/veo-3-1.md")
        ]
        listed = await client.call_tool("list_models", {"capability": "extend"})
        for extension, source_model in EXTENSION_SOURCES:
            arguments = minimal_arguments(CATALOG.get(source_model))
            new = (await client.call_tool("estimate_cost", arguments)).structured_content["quote"]
            source = await finished(client, arguments)
            seconds = CATALOG.get(source_model).field_for_arg("duration")
            extend = {"task_id": source, "operation": "extend"}
            if seconds is not None and CATALOG.get(extension).field_for_arg("duration") is not None:
                extend["duration"] = seconds.default  # as long as the new clip
            quoted = await client.call_tool("estimate_cost", extend)
            assert not quoted.is_error, text_of(quoted)
            extension_quote = quoted.structured_content["quote"]
            # Runway's extension has no published price, nor has a PixVerse transition clip: nothing to compare
            if extension_quote["price_known"] and new["price_known"]:
                ratio = extension_quote["credits_total"] / new["credits_total"]
                compared[f"{extension} of {source_model}"] = ratio
    assert {key.split(" of ")[0] for key in compared} >= {"veo/extend", "grok-imagine/extend", "pixverse-v6/extend"}
    assert all(0.85 <= ratio <= 1.15 for ratio in compared.values()), compared
    assert "An extension costs about what a new clip of its length does" in instructions
    for text in (instructions, *guides, text_of(listed)):
        assert CHEAPER.search(text) is None, CHEAPER.search(text)


# -- chains: stitch_videos takes one in order ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_stitch_videos_joins_a_chain_of_extensions_in_order(connect, controls, mode):
    async with connect(elicitation=answering()) as client:
        source = await finished(client, RUNWAY)
        first = await client.call_tool(
            "continue_video",
            {"task_id": source, "operation": "extend", "max_credits": 30, "wait_seconds": 40},
        )
        one = first.structured_content["tasks"][0]["task_id"]
        second = await client.call_tool(
            "continue_video", {"task_id": one, "operation": "extend", "max_credits": 30, "wait_seconds": 40}
        )
        two = second.structured_content["tasks"][0]["task_id"]
        chain = await client.call_tool("stitch_videos", {"clips": [two], "chain": True, "output_name": "chain"})
        veo = await finished(client, VEO)
        whole = await client.call_tool("continue_video", {"task_id": veo, "operation": "extend", "wait_seconds": 40})
        extended = whole.structured_content["tasks"][0]["task_id"]
        twice = await client.call_tool(
            "stitch_videos", {"clips": [extended, extended], "chain": True, "output_name": "veo"}
        )
    assert not chain.is_error, text_of(chain)
    assert "Joined 3 clip(s)" in text_of(chain)  # the first clip, then each extension's new part
    assert chain.structured_content["duration"] > 5
    # Veo's extended video already holds the clip it continues: its chain is that one video.
    assert not twice.is_error and "Joined 2 clip(s)" in text_of(twice), text_of(twice)


async def test_a_chain_that_is_one_video_already_answers_with_that_video_and_says_why_nothing_was_joined(
    connect, controls, tmp_path
):
    """The audit: stitch_videos(clips=[a Veo extension], chain=true) failed with "Stitching needs at least two
    clips": Veo's extended video holds the whole video so far, so its chain is that one file. The answer is that
    saved video, saying why nothing was joined; nothing is written. A first clip alone is its own chain, said so."""
    async with connect(elicitation=answering()) as client:
        veo = await finished(client, VEO)
        made = await client.call_tool("continue_video", {"task_id": veo, "operation": "extend", "wait_seconds": 40})
        extended = await follow(client, made.structured_content["tasks"][0]["task_id"])
        chained = await client.call_tool("stitch_videos", {"clips": [extended["task_id"]], "chain": True})
        alone = await client.call_tool("stitch_videos", {"clips": [veo], "chain": True})
        captioned = await client.call_tool(
            "stitch_videos",
            {"clips": [extended["task_id"]], "chain": True, "captions": [{"start": 0, "end": 1, "text": "Hi"}]},
        )
    whole = extended["files"][0]
    text = text_of(chained)
    assert not chained.is_error, text
    said = f"Nothing was joined: {extended['task_id']} is an extension whose video already holds the whole video"
    assert said in text, text
    assert chained.structured_content["path"] == whole and chained.structured_content["reencoded"] is False
    assert [f["path"] for f in chained.structured_content["saved_files"]] == [whole]
    assert chained.structured_content["duration"] == pytest.approx(15, abs=1)
    assert not alone.is_error and f"{veo} is the only clip of its chain" in text_of(alone), text_of(alone)
    assert not captioned.is_error and "Joined 1 clip(s)" in text_of(captioned)  # captions: still burned in
    joins = [p.name for p in (tmp_path / "outputs").rglob("*.mp4") if p.name.startswith("stitched")]
    assert joins == ["stitched-1-clips.mp4"], joins  # the captioned one only


async def test_stitch_videos_never_plays_footage_twice_and_names_an_extension_left_out(connect, controls):
    """A Veo extension's video is the whole video before it: listing the clip it extends beside it would play that
    clip twice (refused, nothing written); listing the clip without its extension ends the join early (said)."""
    async with connect(elicitation=answering()) as client:
        first = await finished(client, VEO)
        second = await finished(client, VEO)
        made = await client.call_tool("continue_video", {"task_id": second, "operation": "extend", "wait_seconds": 40})
        extended = made.structured_content["tasks"][0]["task_id"]
        twice = await client.call_tool("stitch_videos", {"clips": [first, second, extended], "output_name": "a"})
        short = await client.call_tool("stitch_videos", {"clips": [first, second], "chain": True, "output_name": "b"})
        right = await client.call_tool("stitch_videos", {"clips": [first, extended], "output_name": "c"})
    assert twice.is_error and f"{second} is already in {extended}" in text_of(twice), text_of(twice)
    assert "Nothing was written" in text_of(twice)
    assert not short.is_error and f"{second} was extended later ({extended})" in text_of(short), text_of(short)
    assert not right.is_error and "extended later" not in text_of(right) and "Joined 2 clip(s)" in text_of(right)


# Extensions whose video is only the part they added (the catalogue's result = "part"), each with the first clip
# model it continues: Runway, Grok Imagine, PixVerse V6 today, whatever the catalogue says tomorrow.
PART_EXTENSIONS = [
    (spec.id, next(p for p in spec.followup.parents if CATALOG.get(p).followup is None))
    for spec in CATALOG.offered()
    if spec.followup is not None and spec.followup.operation == "extend" and spec.followup.result == "part"
]


@eras_in_turn(("extension", "source_model"), PART_EXTENSIONS)
async def test_a_join_of_an_extension_holding_only_its_new_part_without_its_clip_says_what_to_pass(
    connect, controls, extension, source_model
):
    """The audit: stitch_videos(clips=[<PixVerse extension>], captions=...) answered "Joined 1 clip" with the 5 s new
    part alone, unsaid, though the chain is 11 s. The answer names the extension and the clip it continues, and
    what to pass; either list it gives joins the whole chain, saying nothing more."""
    assert {"runway/extend", "grok-imagine/extend", "pixverse-v6/extend"} <= {e for e, _ in PART_EXTENSIONS}
    async with connect(elicitation=answering(), auto_approve_credits=100) as client:
        source = await finished(client, {"model": source_model, "prompt": "a paper boat drifts down a rain gutter"})
        made = await client.call_tool(
            "continue_video",
            {"task_id": source, "operation": "extend", "prompt": "it tips over", "max_credits": 60, "wait_seconds": 40},
        )
        part = made.structured_content["tasks"][0]["task_id"]
        assert (await follow(client, part))["model"] == extension
        caption = [{"start": 0, "end": 1, "text": "Splash"}]  # one clip is joined only to caption it
        alone = await client.call_tool("stitch_videos", {"clips": [part], "captions": caption, "output_name": "a"})
        listed = await client.call_tool("stitch_videos", {"clips": [source, part], "output_name": "listed"})
        chained = await client.call_tool("stitch_videos", {"clips": [part], "chain": True, "output_name": "chained"})
        backwards = await client.call_tool("stitch_videos", {"clips": [part, source], "output_name": "backwards"})
    note = f"{part} holds only the part {CATALOG.get(extension).title} ({extension}) added, and the clip it continues"
    assert not alone.is_error and note in text_of(alone), text_of(alone)
    assert f"{source}, is not before it in this join" in text_of(alone)
    assert f"pass clips={[source, part]} with chain=false, or clips={[part]} with chain=true." in text_of(alone)
    assert note in text_of(backwards)  # listed after its extension, the clip still comes too late
    for joined in (listed, chained):
        assert not joined.is_error and "holds only the part" not in text_of(joined), text_of(joined)
        assert "Joined 2 clip(s)" in text_of(joined)
        assert joined.structured_content["duration"] > alone.structured_content["duration"] + 1


async def test_a_join_of_a_clip_whose_paid_1080p_version_it_leaves_out_names_that_version(connect, controls):
    """A 1080p version was paid for, then the clip itself was joined: the join said nothing, so the final video
    used the 720p take unawares. The answer names the version and what to pass instead; joining it says nothing."""
    async with connect(elicitation=answering()) as client:
        source = await finished(client, VEO)
        hd = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 40})
        hd_id = hd.structured_content["tasks"][0]["task_id"]
        other = await finished(client, VEO)
        lower = await client.call_tool("stitch_videos", {"clips": [source, other], "output_name": "a"})
        upgraded = await client.call_tool("stitch_videos", {"clips": [hd_id, other], "output_name": "b"})
    assert hd.structured_content["status"] == "completed", text_of(hd)
    assert not lower.is_error, text_of(lower)
    assert f"{source} has the clip's 1080p version (task {hd_id}, already paid for)" in text_of(lower)
    assert f"pass {hd_id} in place of {source}" in text_of(lower)
    assert text_of(lower).count("already paid for") == 1  # the other clip has no upgrade
    assert not upgraded.is_error and "already paid for" not in text_of(upgraded), text_of(upgraded)


async def test_a_chained_join_leaving_out_a_paid_upgrade_gives_the_list_that_joins_it(connect, controls):
    """The review: chain=true brings the clip an extension continues, and the note said to pass its upgrade "in place
    of" a clip the user never listed; passed with chain=true again, the chain brought the clip back and the join was
    refused. The note gives the whole list with chain=false, and that list joins the upgrade."""
    async with connect(elicitation=answering(), auto_approve_credits=200) as client:
        source = await finished(client, GROK)
        hd = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 40})
        upscaled = hd.structured_content["tasks"][0]["task_id"]
        extend = {"task_id": source, "operation": "extend", "prompt": "it curls up", "duration": 6, "wait_seconds": 40}
        extended = (await client.call_tool("continue_video", extend)).structured_content["tasks"][0]["task_id"]
        chained = await client.call_tool("stitch_videos", {"clips": [extended], "chain": True, "output_name": "a"})
        advised = await client.call_tool(
            "stitch_videos", {"clips": [upscaled, extended], "chain": False, "output_name": "b"}
        )
    assert not chained.is_error, text_of(chained)
    assert f"pass clips={[upscaled, extended]} with chain=false ({upscaled} in place of {source})" in text_of(chained)
    assert not advised.is_error and "already paid for" not in text_of(advised), text_of(advised)
    assert "Joined 2 clip(s)" in text_of(advised)


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_stitch_videos_refuses_two_chains_sharing_a_clip_and_an_upgrade_beside_an_extension_holding_it(
    connect, controls, mode
):
    """The audit: chain=true with two links of one chain played its first clip twice (A, A, E1, E2), and the 4K
    version of a clip beside that clip's Veo extension (which holds the clip) played it twice too. Both are
    refused, nothing written; one chain, or the extension alone, joins."""
    extend = {"operation": "extend", "max_credits": 30, "wait_seconds": 40}
    async with connect(elicitation=answering(), auto_approve_credits=200) as client:
        source = await finished(client, RUNWAY)
        one = (await client.call_tool("continue_video", {**extend, "task_id": source})).structured_content
        one_id = one["tasks"][0]["task_id"]
        two = (await client.call_tool("continue_video", {**extend, "task_id": one_id})).structured_content
        two_id = two["tasks"][0]["task_id"]
        shared = await client.call_tool("stitch_videos", {"clips": [one_id, two_id], "chain": True})
        chained = await client.call_tool("stitch_videos", {"clips": [two_id], "chain": True})
        veo = await finished(client, VEO)
        uhd = await client.call_tool("continue_video", {"task_id": veo, "operation": "4k", "wait_seconds": 40})
        uhd_id = uhd.structured_content["tasks"][0]["task_id"]
        longer = await client.call_tool("continue_video", {"task_id": veo, "operation": "extend", "wait_seconds": 40})
        longer_id = longer.structured_content["tasks"][0]["task_id"]
        beside = await client.call_tool("stitch_videos", {"clips": [uhd_id, longer_id]})
    assert shared.is_error and f"{source} is in the chains of both {one_id} and {two_id}" in text_of(shared)
    assert not chained.is_error and "Joined 3 clip(s)" in text_of(chained), text_of(chained)
    assert beside.is_error and f"{uhd_id} is already in {longer_id}" in text_of(beside), text_of(beside)
    assert "Nothing was written" in text_of(shared) and "Nothing was written" in text_of(beside)


async def saved_path(client: Any, task_id: str) -> dict[str, Any]:
    """The main saved video of a finished task, as check_task names it (path, absolute_path, resource_uri)."""
    done = await client.call_tool("check_task", {"task_id": task_id})
    return done.structured_content["saved_files"][0]


async def grok_chain(client: Any) -> tuple[str, str, str]:
    """A Grok Imagine clip and two extensions, each holding only its new part: (take, first, second)."""
    take = await finished(client, GROK)
    links = [take]
    for prompt in ("it curls up", "it falls asleep"):
        extend = {"task_id": links[-1], "operation": "extend", "prompt": prompt, "duration": 6, "wait_seconds": 40}
        made = await client.call_tool("continue_video", extend)
        assert not made.is_error, text_of(made)
        links.append(made.structured_content["tasks"][0]["task_id"])
        await follow(client, links[-1])
    return links[0], links[1], links[2]


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
async def test_a_clip_given_by_its_saved_path_counts_as_that_clip_in_a_join(connect, controls, mode):
    """The review: stitch_videos(clips=[<saved path of S>, E1]), E1 a Grok extension of S holding only its new
    part, said S "is not before it" and advised lists that played S twice (18 s for a 12 s chain); and
    clips=[V, <saved path of E1>] said nothing of the missing S. A saved path is judged as its task: the first join
    says nothing and plays the chain once; the second names S, and each list it advises plays every clip once."""
    async with connect(elicitation=answering(), auto_approve_credits=200) as client:
        take, first, _ = await grok_chain(client)
        other = await finished(client, VEO)
        take_file, first_file = await saved_path(client, take), await saved_path(client, first)
        by_id = await client.call_tool("stitch_videos", {"clips": [take, first], "output_name": "ids"})
        joined = {
            form: await client.call_tool("stitch_videos", {"clips": [take_file[form], first], "output_name": form})
            for form in ("path", "absolute_path", "resource_uri")
        }
        missing = await client.call_tool("stitch_videos", {"clips": [other, first_file["path"]], "output_name": "m"})
        advised = [
            (json.loads(found[1].replace("'", '"')), found[2] == "true")
            for found in re.finditer(r"clips=(\[[^]]*\]) with chain=(true|false)", text_of(missing))
        ]
        followed = [
            await client.call_tool("stitch_videos", {"clips": clips, "chain": chain, "output_name": f"f{at}"})
            for at, (clips, chain) in enumerate(advised)
        ]
        alone = await client.call_tool("stitch_videos", {"clips": [other, take, first], "output_name": "whole"})
    length = by_id.structured_content["duration"]
    for form, answer in joined.items():
        assert not answer.is_error and "holds only the part" not in text_of(answer), (form, text_of(answer))
        assert answer.structured_content["duration"] == pytest.approx(length, abs=0.1), form
    assert f"the clip it continues, {take}, is not before it in this join" in text_of(missing), text_of(missing)
    assert len(advised) == 2, text_of(missing)  # the chain in order with chain=false, or chain=true by task id
    whole = alone.structured_content["duration"]
    for answer in followed:
        assert not answer.is_error and "holds only the part" not in text_of(answer), text_of(answer)
        assert answer.structured_content["duration"] == pytest.approx(whole, abs=0.1), text_of(answer)


async def test_a_file_no_task_saved_before_an_extension_gets_no_advice_that_plays_a_clip_twice(
    connect, controls, tmp_path
):
    """A join of a file the journal does not know (here a copy of the take, kept in references/) and an extension's
    new part: the file may be the clip the part continues, so no list is advised that would add that clip again."""
    async with connect(elicitation=answering(), auto_approve_credits=200) as client:
        take, first, _ = await grok_chain(client)
        copy = tmp_path / "references" / "take.mp4"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes((tmp_path / (await saved_path(client, take))["path"]).read_bytes())
        joined = await client.call_tool("stitch_videos", {"clips": ["references/take.mp4", first], "output_name": "a"})
    assert not joined.is_error, text_of(joined)
    assert "holds only the part" not in text_of(joined) and take not in text_of(joined), text_of(joined)


async def test_a_chained_join_never_plays_a_clip_given_by_its_path_again_from_a_chain(connect, controls):
    """clips=[<saved path of S>, E1] with chain=true: E1's chain brings S by its id after the file of S, which
    played twice. Refused, nothing written, with the list that plays it once; that list joins the chain once."""
    async with connect(elicitation=answering(), auto_approve_credits=200) as client:
        take, first, _ = await grok_chain(client)
        take_file = (await saved_path(client, take))["path"]
        twice = await client.call_tool("stitch_videos", {"clips": [take_file, first], "chain": True})
        advised = await client.call_tool("stitch_videos", {"clips": [take_file, first], "output_name": "once"})
        chained = await client.call_tool("stitch_videos", {"clips": [first], "chain": True, "output_name": "chain"})
    assert twice.is_error and "Nothing was written" in text_of(twice), text_of(twice)
    assert f"{take_file} is the saved video of {take}" in text_of(twice)
    assert f"Pass clips={[take_file, first]} with chain=false instead" in text_of(twice)
    assert not advised.is_error and "holds only the part" not in text_of(advised), text_of(advised)
    assert advised.structured_content["duration"] == pytest.approx(chained.structured_content["duration"], abs=0.1)


async def test_a_chained_join_whose_chain_brings_a_clip_an_upgrade_listed_holds_says_the_list_to_pass(
    connect, controls
):
    """The review: stitch_videos(clips=[S_hd, E2], chain=true) was refused with "Leave S out, and pass S_hd in its
    place", though the user never listed S (E2's chain brought it) and had passed S_hd. The refusal says chain=true
    brought S in and gives clips=[S_hd, E1, E2] with chain=false, which joins the upgraded chain."""
    async with connect(elicitation=answering(), auto_approve_credits=200) as client:
        take, first, second = await grok_chain(client)
        hd = await client.call_tool("continue_video", {"task_id": take, "operation": "hd", "wait_seconds": 40})
        upscaled = hd.structured_content["tasks"][0]["task_id"]
        await follow(client, upscaled)
        refused = await client.call_tool("stitch_videos", {"clips": [upscaled, second], "chain": True})
        advised = await client.call_tool(
            "stitch_videos", {"clips": [upscaled, first, second], "chain": False, "output_name": "hd"}
        )
    assert refused.is_error and "Nothing was written" in text_of(refused), text_of(refused)
    assert "Leave" not in text_of(refused) and "chain=true brought" in text_of(refused), text_of(refused)
    assert f"Pass clips={[upscaled, first, second]} with chain=false instead" in text_of(refused), text_of(refused)
    assert not advised.is_error and "Joined 3 clip(s)" in text_of(advised), text_of(advised)
    assert "already paid for" not in text_of(advised) and "holds only the part" not in text_of(advised)


# -- the journal ---------------------------------------------------------------------------------------------------


def test_an_older_journal_gains_the_parent_column_and_keeps_its_tasks(tmp_path: Path):
    path = journal_path(tmp_path)
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE tasks (task_id TEXT PRIMARY KEY, attempt_id TEXT, model TEXT NOT NULL, state TEXT NOT NULL,"
        " prompt TEXT, session TEXT, record TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);"
        "INSERT INTO tasks VALUES ('old', NULL, 'veo3_fast', 'succeeded', 'waves', NULL, '{}', 1, 1);"
    )
    db.commit()
    db.close()
    journal = Journal(path)
    journal.save_task("{}", task_id="new", model="veo/extend", state="queued", parent_task_id="old")
    assert [r["task_id"] for r in journal.children("old")] == ["new"]
    assert [r["task_id"] for r in journal.chain("new")] == ["new", "old"]
    assert journal.task_row("old")["prompt"] == "waves"
    journal.close()


# -- every follow-up in the catalogue, generically ----------------------------------------------------------------


def source_arguments(model_id: str) -> dict[str, Any]:
    """A clip a follow-up model takes, from its data: its first source model, made with minimal arguments."""
    spec = CATALOG.get(model_id)
    first = next(p for p in spec.followup.parents if p == "*" or CATALOG.get(p).followup is None)
    if first == "*":
        return VEO
    arguments = {"prompt": "a calm test scene", "model": first}
    if first == "runway-video":
        arguments["prompt"] = RUNWAY["prompt"]
    return arguments


@eras_in_turn("model_id", FOLLOWUPS)
async def test_every_follow_up_continues_a_clip_of_its_first_source(connect, controls, model_id):
    spec = CATALOG.get(model_id)
    async with connect(elicitation=answering(), max_credits_per_call=10_000, max_credits_per_day=100_000) as client:
        source = await finished(client, source_arguments(model_id))
        arguments = {"task_id": source, "operation": spec.followup.operation, "model": model_id, "wait_seconds": 40}
        if spec.price is None:
            arguments["max_credits"] = 100
        result = await client.call_tool("continue_video", arguments)
    task = result.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["result_urls"], text_of(result)
    assert task["model"] == model_id and task["parent_task_id"] == source
    creates = await controls.creates()
    assert len(creates) == (1 if spec.family == "veo-1080p" else 2)  # the source, and exactly one follow-up


# -- the simulator's follow-up jobs answer as KIE does ----------------------------------------------------------


async def test_the_simulator_refuses_a_grok_follow_up_of_a_wrong_or_unfinished_source(controls, sim):
    async def create(body: dict[str, Any]) -> dict[str, Any]:
        return (await controls.http.post(MARKET, json=body, headers=kie_auth())).json()

    grok = await create({"model": GROK["model"], "input": {"prompt": "a cat", "aspect_ratio": "9:16"}})
    veo = (await controls.http.post("/api/v1/veo/generate", json={"prompt": "waves"}, headers=kie_auth())).json()
    paid = await balance(controls)
    early = await create({"model": "grok-imagine/upscale", "input": {"task_id": grok["data"]["taskId"]}})
    sim.advance(400)
    wrong = await create({"model": "grok-imagine/upscale", "input": {"task_id": veo["data"]["taskId"]}})
    unknown = await create({"model": "grok-imagine/upscale", "input": {"task_id": "nope"}})
    assert (early["code"], early["msg"]) == (422, "record status is not success")
    assert wrong["code"] == 422 and "only takes tasks of" in wrong["msg"]
    assert (unknown["code"], unknown["msg"]) == (422, "recordInfo is null")
    assert await balance(controls) == paid  # refused before any charge
    upscaled = await create({"model": "grok-imagine/upscale", "input": {"task_id": grok["data"]["taskId"]}})
    assert upscaled["code"] == 200
    assert await balance(controls) == paid - 30  # 480p source -> 1080p, as KIE bills it
