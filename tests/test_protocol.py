"""The server as a client sees it: tools, schemas and results through the SDK ``Client``, in both eras.

KIE is the simulator, reached over its HTTP interface; nothing of ours is mocked.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Literal

import anyio
import pytest
from mcp import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, Request
from PIL import Image

from kie_mcp import __version__

from .conftest import answering, text_of

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
VIDEO = {"prompt": "waves rolling onto a beach at dusk", "model": "veo3_fast"}
TOOLS = {
    "estimate_cost",
    "generate_image",
    "generate_video",
    "check_task",
    "check_credits",
    "list_models",
    "upload_file",
    "list_tasks",
    "stitch_videos",
    "continue_video",
}


async def balance(controls) -> float:
    state = await controls.get("state")
    balances = state["balances"] if "balances" in state else state["accounts"]
    value = balances["default"]
    return value["balance"] if isinstance(value, dict) else value


# -- discovery ------------------------------------------------------------------------------


async def test_server_identity_and_tools(connect):
    async with connect() as client:
        assert client.server_info.name == "kie-mcp"
        assert client.server_info.version == __version__
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.title, tool.name
        assert tool.output_schema, tool.name
        assert tool.description
    for name in ("generate_image", "generate_video"):
        hints = tools[name].annotations
        assert hints.read_only_hint is False
        assert hints.idempotent_hint is False
        assert hints.open_world_hint is True
        assert hints.destructive_hint is False
        assert "COSTS CREDITS" in tools[name].description
        schema = tools[name].input_schema["properties"]
        assert "plan" not in schema and "approval" not in schema and "ctx" not in schema
        assert schema["variations"]["maximum"] == 10
    for name in ("estimate_cost", "check_task", "check_credits", "list_models", "list_tasks"):
        assert tools[name].annotations.read_only_hint is True
        assert tools[name].annotations.idempotent_hint is True
    assert tools["upload_file"].annotations.read_only_hint is False
    stitch = tools["stitch_videos"].annotations  # each call writes a new file beside the last: not idempotent
    assert stitch.read_only_hint is False and stitch.idempotent_hint is False and stitch.open_world_hint is False


async def test_list_models_filters(connect):
    async with connect() as client:
        everything = (await client.call_tool("list_models", {})).structured_content["models"]
        videos = (await client.call_tool("list_models", {"kind": "video"})).structured_content["models"]
        veo = (await client.call_tool("list_models", {"query": "veo"})).structured_content["models"]
        refs = (await client.call_tool("list_models", {"capability": "reference"})).structured_content["models"]
    assert len(everything) >= 9
    assert all(m["kind"] == "video" for m in videos)
    assert {"veo3", "veo3_fast"} <= {m["id"] for m in veo}
    assert not any(m["id"].startswith(("nano", "kling", "sora")) for m in veo)
    assert "veo3_fast" in {m["id"] for m in refs}
    assert all(re.search(r"\bcredits? per ", m["price"]) or m["price"] == "price unknown" for m in everything)
    # only the models KIE publishes no price for (they are confirmed with a reserve instead)
    unknown = {m["id"] for m in everything if m["price"] == "price unknown"}
    assert unknown <= {
        "runway/extend",
        "wan/2-6-flash-image-to-video",
        "wan/2-6-flash-video-to-video",
    }


async def test_list_models_typical_prices_are_what_estimate_cost_quotes(connect):
    """The USD people compare in list_models is the quote they would get for that output at the defaults."""
    wanted = {
        "nano-banana-2": [None],
        "veo3_fast": [8],
        "kling-3.0/video": [5, 8],
        "runway-video": [5],
        "bytedance/seedance-2": [5, 8],
    }
    async with connect() as client:
        listed = (await client.call_tool("list_models", {})).structured_content["models"]
        listing = text_of(await client.call_tool("list_models", {"query": "veo3_fast"}))
        typical = {m["id"]: m["typical"] for m in listed if m["id"] in wanted}
        for model, lengths in wanted.items():
            assert [t["output"] for t in typical[model]] == [
                "1 image" if seconds is None else f"{seconds} s clip" for seconds in lengths
            ]
            for seconds, shown in zip(lengths, typical[model], strict=True):
                kind = "image" if seconds is None else "video"
                arguments = {"prompt": "a lighthouse at dawn", "model": model}
                if seconds is not None and model != "veo3_fast":
                    arguments["duration"] = seconds
                quote = (await client.call_tool("estimate_cost", arguments)).structured_content["quote"]
                assert (kind, quote["credits_total"], quote["usd_total"]) == (kind, shown["credits"], shown["usd"])
        table = (await client.read_resource("kie://models")).contents[0].text
        document = json.loads((await client.read_resource("kie://models.json")).contents[0].text)
    assert "8 s 60 cr ($0.30) at generationType=TEXT_2_VIDEO, resolution=720p" in listing
    assert "| Typical output (credits, USD) |" in table
    assert "| 8 s 60 cr ($0.30) at generationType=TEXT_2_VIDEO, resolution=720p |" in table
    veo = next(m for m in document["models"] if m["id"] == "veo3_fast")
    assert veo["typical_prices"] == [
        {"output": "8 s clip", "credits": 60.0, "usd": 0.3, "settings": "generationType=TEXT_2_VIDEO, resolution=720p"}
    ]
    unknown = {m["id"] for m in listed if m["price"] == "price unknown"}
    assert all(not m["typical"] for m in listed if m["id"] in unknown)


# -- estimate ------------------------------------------------------------------------------------


async def test_estimate_is_exact_and_free(connect, controls):
    before = await balance(controls)
    async with connect() as client:
        result = await client.call_tool("estimate_cost", {**VIDEO, "resolution": "1080p", "variations": 2})
    assert not result.is_error
    quote = result.structured_content["quote"]
    assert quote["credits_per_item"] == 65
    assert quote["credits_total"] == 130
    assert quote["usd_total"] == 0.65
    assert quote["price_date"] == "2026-09-24"  # KIE's price feed as captured on that day
    assert quote["quote_id"].startswith("q_")
    assert quote["expires_at"]
    assert "130 credits" in text_of(result)
    assert await balance(controls) == before
    assert await controls.creates() == []


async def test_invalid_argument_is_a_clear_error_and_costs_nothing(connect, controls):
    async with connect(elicitation=answering()) as client:
        bad = await client.call_tool("generate_video", {**VIDEO, "duration": 5})
        unknown = await client.call_tool("generate_image", {**IMAGE, "model": "nano bananna"})
        wrong_kind = await client.call_tool("generate_image", {**IMAGE, "model": "veo3"})
        schema = await client.call_tool("generate_image", {**IMAGE, "variations": 99})
    assert bad.is_error and "duration" in text_of(bad) and "4, 6, 8" in text_of(bad)
    assert unknown.is_error and "nano-banana-2" in text_of(unknown)
    assert wrong_kind.is_error and "generate_video" in text_of(wrong_kind)
    assert schema.is_error and "variations" in text_of(schema)
    assert "Traceback" not in text_of(bad) + text_of(unknown) + text_of(schema)
    assert await controls.creates() == []


async def test_missing_local_file_is_refused_before_anything(connect, controls):
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {**IMAGE, "images": ["refs/missing.png"]})
    assert result.is_error
    assert "missing.png" in text_of(result)
    assert await controls.creates() == []


# -- the gate ----------------------------------------------------------------------------------


async def test_elicitation_accept_spends_exactly_the_quote(connect, controls):
    seen: list[str] = []
    before = await balance(controls)
    async with connect(elicitation=answering(seen=seen)) as client:
        result = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    data = result.structured_content
    assert data["status"] == "completed", text_of(result)
    assert len(seen) == 1
    assert "8 credits" in seen[0] and "nano-banana-2" in seen[0] and "$0.04" in seen[0]
    task = data["tasks"][0]
    assert task["state"] == "succeeded"
    assert task["result_urls"][0].startswith("http")
    assert await balance(controls) == before - 8
    assert credits["spent_today"] == 8
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize(("action", "confirm"), [("accept", False), ("decline", True)])
async def test_declined_spends_nothing_and_issues_no_quote(connect, controls, action, confirm):
    async with connect(elicitation=answering(action, confirm)) as client:
        result = await client.call_tool("generate_image", IMAGE)
    assert result.structured_content["status"] == "declined"
    assert result.structured_content["quote"] is None
    assert "Nothing was spent" in text_of(result)
    assert await controls.creates() == []


async def test_cancel_returns_a_quote_to_approve(connect, controls):
    async with connect(elicitation=answering("cancel")) as client:
        result = await client.call_tool("generate_image", IMAGE)
    data = result.structured_content
    assert data["status"] == "confirmation_required"
    assert data["quote"]["credits_total"] == 8
    assert "cannot show" in data["message"] and "Nothing was spent" in data["message"]
    assert await controls.creates() == []


async def test_without_elicitation_the_quote_is_the_approval(connect, controls):
    async with connect() as client:  # no callback: like Claude Desktop
        first = await client.call_tool("generate_image", IMAGE)
        assert first.structured_content["status"] == "confirmation_required"
        assert await controls.creates() == []
        quote_id = first.structured_content["quote"]["quote_id"]
        assert quote_id in text_of(first)

        approved = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote_id})
        assert approved.structured_content["status"] == "completed", text_of(approved)
        assert len(await controls.creates()) == 1

        reused = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote_id})
    assert reused.structured_content["status"] == "confirmation_required"
    assert "already used" in reused.structured_content["message"]
    assert len(await controls.creates()) == 1


async def test_estimate_quote_approves_generate(connect, controls):
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", VIDEO)).structured_content["quote"]
        result = await client.call_tool("generate_video", {**VIDEO, "quote_id": quote["quote_id"]})
    data = result.structured_content
    assert data["status"] == "submitted", text_of(result)
    assert data["tasks"][0]["task_id"]
    assert data["tasks"][0]["eta_seconds"] > 0
    assert "check_task" in data["message"]


async def test_estimate_cost_prices_a_generate_calls_own_arguments_unchanged(connect, controls):
    """The tools and the prompts tell an agent to price "the exact arguments" of its generate call; a session name,
    a wait or an earlier quote_id among them made estimate_cost refuse the call."""
    call = {**VIDEO, "session": "beach ad", "wait_seconds": 30}
    async with connect() as client:
        priced = await client.call_tool("estimate_cost", {**call, "quote_id": "q_from_an_earlier_call"})
        assert not priced.is_error, text_of(priced)
        quote = priced.structured_content["quote"]
        made = await client.call_tool("generate_video", {**call, "quote_id": quote["quote_id"]})
    assert quote["credits_total"] == 60
    assert made.structured_content["status"] == "completed", text_of(made)  # waited 30 s: the sandbox clip is done
    assert len(await controls.creates()) == 1


async def test_changed_arguments_void_the_quote(connect, controls):
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        changed = await client.call_tool("generate_image", {**IMAGE, "resolution": "4K", "quote_id": quote["quote_id"]})
    data = changed.structured_content
    assert data["status"] == "confirmation_required"
    assert "different arguments" in data["message"]
    assert data["quote"]["credits_total"] == 18  # the new quote prices the changed request
    assert await controls.creates() == []


async def test_a_quote_used_with_other_arguments_names_each_change_with_both_values(connect, controls):
    """The audit: a quote used with changed arguments said only "the request changed after the estimate", so the
    agent could not tell which of its arguments to put back. Each changed argument is named with the value the
    quote priced and the one sent now, cut short as every echoed text is; unchanged ones are not named."""
    long_prompt = "a red apple on a wooden table, lit from the left by a low winter sun" * 4
    async with connect() as client:
        priced = {**IMAGE, "prompt": long_prompt, "aspect_ratio": "1:1"}
        quote = (await client.call_tool("estimate_cost", priced)).structured_content["quote"]
        changed = await client.call_tool(
            "generate_image",
            {**priced, "prompt": "a green apple", "aspect_ratio": "4:5", "quote_id": quote["quote_id"]},
        )
    message = changed.structured_content["message"]
    assert changed.structured_content["status"] == "confirmation_required", message
    said = message.split("the request changed after the estimate: ", 1)[1].split(". ", 1)[0]
    assert 'aspect_ratio "1:1" -> "4:5"' in said, message
    assert f'prompt "{long_prompt[:40]}' in said and f'..." ({len(long_prompt)} characters) -> "a green apple"' in said
    assert long_prompt not in message  # cut short, never echoed whole
    assert "output_format" not in said and "resolution" not in said and "variations" not in said, said
    assert await controls.creates() == []


async def test_expired_quote_is_refused(connect, controls):
    async with connect(quote_ttl_seconds=0.05) as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        await anyio.sleep(0.1)
        result = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote["quote_id"]})
    assert result.structured_content["status"] == "confirmation_required"
    assert "expired" in result.structured_content["message"]
    assert await controls.creates() == []


async def test_per_call_cap_cannot_be_confirmed_away(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), max_credits_per_call=20) as client:
        result = await client.call_tool("generate_image", {**IMAGE, "variations": 3})
    assert result.is_error
    assert "per-call cap of 20" in text_of(result)
    assert seen == []  # refused before asking
    assert await controls.creates() == []


async def test_daily_cap_counts_what_was_spent(connect, controls):
    async with connect(elicitation=answering(), max_credits_per_day=20) as client:
        first = await client.call_tool("generate_image", {**IMAGE, "variations": 2})
        assert first.structured_content["status"] == "completed"
        second = await client.call_tool("generate_image", IMAGE)
    assert second.is_error
    assert "today's cap" in text_of(second) and "16 spent today" in text_of(second)
    assert len(await controls.creates()) == 2


async def test_low_balance_is_refused(connect, controls):
    await controls.post("balance", {"credits": 5})
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
    assert result.is_error
    assert "has 5 credits" in text_of(result) and "needs 8" in text_of(result)
    assert await controls.creates() == []


async def test_auto_approve_under_the_limit(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=10) as client:
        cheap = await client.call_tool("generate_image", IMAGE)
        dear = await client.call_tool("generate_image", {**IMAGE, "model": "nano-banana-pro"})
    assert cheap.structured_content["status"] == "completed"
    assert len(seen) == 1 and "18 credits" in seen[0]  # only the 18-credit request was asked about
    assert dear.structured_content["status"] == "completed"


async def test_unknown_price_is_never_auto_approved(connect, controls):
    request = {
        "prompt": "a paper boat",
        "model": "bytedance/seedance-2",
        "options": {"reference_video_urls": ["https://example.com/ref.mp4"]},
    }
    async with connect(auto_approve_credits=1_000_000) as client:
        estimate = await client.call_tool("estimate_cost", request)
        result = await client.call_tool("generate_video", request)
    assert estimate.structured_content["quote"]["price_known"] is False
    assert estimate.structured_content["quote"]["credits_total"] is None
    assert result.structured_content["status"] == "confirmation_required"
    assert await controls.creates() == []


async def test_estimate_cost_without_a_model_names_the_generate_tools_defaults(connect, controls):
    async with connect() as client:
        result = await client.call_tool("estimate_cost", {"prompt": "a red apple", "variations": 3})
    assert result.is_error
    assert "model='nano-banana-2' (generate_image)" in text_of(result)
    assert "model='veo3_fast' (generate_video)" in text_of(result)


async def test_every_result_says_what_it_cost_and_who_approved_it(connect, controls, sim):
    """A result said "Done: 1 image ..." and nothing of its cost, auto-approved or not."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    async with connect(auto_approve_credits=10) as client:
        auto = await client.call_tool("generate_image", IMAGE)
    async with connect(elicitation=answering()) as client:
        asked = await client.call_tool("generate_image", IMAGE)
        video = await client.call_tool("generate_video", VIDEO)
    assert "Cost: 8 credits charged by KIE (auto-approved: at or under KIE_AUTO_APPROVE_CREDITS=10)." in text_of(auto)
    assert "Cost: 8 credits charged by KIE (approved in the confirmation form)." in text_of(asked)
    assert video.structured_content["status"] == "submitted"
    assert "Cost: 60 credits quoted and reserved (approved in the confirmation form)" in text_of(video)


async def test_unknown_price_is_asked_with_the_word_unknown(connect, controls):
    seen: list[str] = []
    request = {
        "prompt": "a paper boat",
        "model": "bytedance/seedance-2",
        "options": {"reference_video_urls": ["https://example.com/ref.mp4"]},
    }
    async with connect(elicitation=answering(seen=seen)) as client:
        result = await client.call_tool("generate_video", request)
    assert "UNKNOWN" in seen[0]
    assert "(500 reserved against today's cap" in seen[0]  # the most it can cost: 25 x (15 s of references + 5)
    assert "may be more" in seen[0] and "UP TO" not in seen[0]  # a reservation, never a promised ceiling
    assert result.structured_content["status"] == "submitted"


# -- running tasks -----------------------------------------------------------------------------


async def test_variations_run_in_parallel_and_are_charged_each(connect, controls):
    before = await balance(controls)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {**IMAGE, "variations": 3})
    tasks = result.structured_content["tasks"]
    assert len({t["task_id"] for t in tasks}) == 3
    assert all(t["state"] == "succeeded" for t in tasks)
    assert len(await controls.creates()) == 3
    assert await balance(controls) == before - 24


async def test_video_then_check_task_with_progress(connect, controls):
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", VIDEO)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        # slow enough to see progress (a loaded CI machine at 40 times saw one), fast enough for tests: Veo 3.1 Fast's
        # 90-300 s in 4.5-15 s
        await controls.post("clock/speed", {"speed": 20})
        done = await client.call_tool(
            "check_task", {"task_id": task_id, "wait_seconds": 40}, progress_callback=on_progress
        )
        await anyio.sleep(0.05)
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    assert done.structured_content["task"]["result_urls"]
    assert len(progress) >= 2
    assert progress == sorted(progress) and len(set(progress)) == len(progress)


class CallAsSent(Request[dict[str, Any], Literal["tools/call"]]):
    """A tool call as a client may write it, not as the SDK's types allow (its ``_meta`` unchecked)."""

    method: Literal["tools/call"] = "tools/call"


@pytest.mark.parametrize(
    ("token", "kind"),
    [(1.5, "a number with a fraction"), (None, "null"), ({"a": 1}, "an object"), (True, "true"), ([7], "a list")],
    ids=["fraction", "null", "object", "true", "list"],
)
async def test_a_progress_token_that_is_no_text_or_integer_costs_the_call_nothing_but_its_progress(
    connect, caplog, token, kind
):
    """The audit: a progressToken of 1.5, null or an object refused the whole tool call (-32602, the price never
    quoted), while true passed as the integer 1 and got no progress. MCP's progress tokens are text or integers, and
    a server may always send none: each such call runs, without progress notifications, said on stderr (what the
    token is, never the token)."""
    params = {"name": "estimate_cost", "arguments": IMAGE, "_meta": {"progressToken": token}}
    caplog.set_level(logging.WARNING, logger="kie_mcp.server")
    async with connect() as client:
        result = await client.session.send_request(CallAsSent(params=params), CallToolResult)
    assert not result.is_error, text_of(result)
    assert result.structured_content["quote"]["credits_total"] == 8
    warned = [record.getMessage() for record in caplog.records if "progressToken" in record.getMessage()]
    assert warned == [
        f"a tools/call request's progressToken is {kind}, and MCP's progress tokens are text or integers: it runs "
        "without progress notifications"
    ], warned


async def test_check_task_finds_tasks_created_elsewhere(connect, controls):
    created = await controls.http.post(
        "/api/v1/veo/generate",
        json={"prompt": "x", "model": "veo3_fast"},
        headers={"Authorization": "Bearer sandbox-key"},
    )
    task_id = created.json()["data"]["taskId"]
    async with connect() as client:
        result = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
        missing = await client.call_tool("check_task", {"task_id": "no-such-task"})
    assert result.structured_content["task"]["family"] == "veo"
    assert result.structured_content["task"]["state"] == "succeeded"
    assert missing.is_error and "KIE knows no task" in text_of(missing)


async def test_task_failure_reaches_the_user_and_is_refunded(connect, controls):
    await controls.fault("create", kind="task_fail", fail_code="500", fail_msg="Internal server error")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    data = result.structured_content
    assert data["status"] == "failed"
    assert data["tasks"][0]["fail_code"] == "500"
    assert "Internal server error" in data["tasks"][0]["error"]
    assert credits["spent_today"] == 0


async def test_check_credits(connect, controls):
    await controls.post("balance", {"credits": 1234.5})
    async with connect() as client:
        result = await client.call_tool("check_credits", {})
    data = result.structured_content
    assert data["balance_credits"] == 1234.5
    assert data["balance_usd"] == pytest.approx(6.1725)
    assert data["max_credits_per_call"] == 600
    assert data["spent_today"] == 0


# -- inputs --------------------------------------------------------------------------------------


async def test_local_images_are_uploaded_first(connect, controls, tmp_path):
    picture = tmp_path / "refs" / "bottle.png"
    picture.parent.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(picture)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool(
            "generate_image", {**IMAGE, "model": "google/nano-banana-edit", "images": ["refs/bottle.png"]}
        )
    assert result.structured_content["status"] == "completed", text_of(result)
    create = (await controls.creates())[0]
    sent = create["body"]["input"]["image_urls"][0]
    assert sent.startswith("http") and "bottle" in sent


async def test_upload_file_tool(connect, tmp_path):
    clip = tmp_path / "clip.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(clip)
    async with connect() as client:
        ok = await client.call_tool("upload_file", {"path": str(clip)})
        missing = await client.call_tool("upload_file", {"path": "nope.png"})
    assert ok.structured_content["url"].startswith("http")
    assert missing.is_error and "No file" in text_of(missing)


# -- failures on the wire -------------------------------------------------------------------------


async def test_dropped_connection_creates_one_task_and_is_never_resubmitted(connect, controls):
    before = await balance(controls)
    await controls.fault("create", kind="drop_after_create")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    data = result.structured_content
    assert data["status"] == "unknown"
    assert data["tasks"][0]["task_id"] is None
    assert "may have been created" in data["tasks"][0]["error"]
    assert "kie.ai/logs" in data["message"]
    assert len(await controls.creates()) == 1
    assert await balance(controls) == before - 8  # created and charged on KIE, once
    assert credits["spent_today"] == 8  # counted against the cap: assume it was charged


async def test_rate_limited_create_is_retried_and_charged_once(connect, controls):
    before = await balance(controls)
    await controls.fault("create", kind="code", code=429)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
    assert result.structured_content["status"] == "completed"
    assert len(await controls.creates()) == 2
    assert await balance(controls) == before - 8


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (400, "content-policy"),
        (401, "KIE_API_KEY"),
        (402, "Top up"),
        (404, "list_models"),
        (408, "10 minutes"),
        (422, "invalid"),
        (433, "usage cap"),
        (451, "public URL"),
        (455, "maintenance"),
        (501, "provider"),
        (505, "disabled"),
    ],
)
async def test_kie_error_codes_on_create(connect, controls, code, words):
    await controls.fault("create", kind="code", code=code)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    data = result.structured_content
    assert data["status"] == "failed"
    error = data["tasks"][0]["error"]
    assert f"KIE error {code}" in error
    assert words.lower() in error.lower()
    assert credits["spent_today"] == 0  # KIE refused it: not counted


async def test_kie_error_500_on_create_may_have_created_the_task(connect, controls):
    await controls.fault("create", kind="code", code=500)
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", IMAGE)
        credits = (await client.call_tool("check_credits", {})).structured_content
    data = result.structured_content
    assert data["status"] == "unknown"
    assert "server error (500" in data["tasks"][0]["error"] and "kie.ai/logs" in data["tasks"][0]["error"]
    assert credits["spent_today"] == 8  # it may have been charged: counted, never refunded silently
    assert len(await controls.creates()) == 1


async def test_error_codes_on_reads_are_tool_errors(connect, controls):
    await controls.fault("credit", kind="code", code=455)
    async with connect() as client:
        result = await client.call_tool("check_credits", {})
    assert result.is_error
    assert "455" in text_of(result) and "maintenance" in text_of(result)


# -- configuration -----------------------------------------------------------------------------


async def test_without_a_key_tools_explain_how_to_set_it(connect):
    async with connect(api_key=None) as client:
        models = await client.call_tool("list_models", {})
        estimate = await client.call_tool("estimate_cost", IMAGE)
        generate = await client.call_tool("generate_image", IMAGE)
        credits = await client.call_tool("check_credits", {})
    assert not models.is_error
    assert not estimate.is_error  # pricing is local
    for result in (generate, credits):
        assert result.is_error
        assert (
            "KIE_API_KEY" in text_of(result) and "--sandbox" in text_of(result) and "https://kie.ai" in text_of(result)
        )
        assert "Set KIE_API_KEY to your key" in text_of(result)  # the instruction itself, not "[redacted] key>"
        assert "[redacted]" not in text_of(result)


@pytest.mark.parametrize(
    ("tool", "arguments", "unknown"),
    [
        ("generate_image", {**IMAGE, "script": "hello"}, "script"),
        ("generate_image", {**IMAGE, "duration": 8}, "duration"),
        ("generate_video", {**VIDEO, "n": 2}, "n"),
        ("estimate_cost", {**IMAGE, "count": 3}, "count"),
        ("check_task", {"task_id": "t", "wait": 5}, "wait"),
        ("check_credits", {"verbose": True}, "verbose"),
        ("list_models", {"type": "video"}, "type"),
        ("upload_file", {"path": "x.png", "folder": "a"}, "folder"),
    ],
)
async def test_unknown_arguments_are_refused_not_ignored(connect, controls, tool, arguments, unknown):
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert f"does not take {unknown}" in text_of(result)
    assert "It takes:" in text_of(result) and "It takes: ." not in text_of(result)
    assert ("belong to generate_video" in text_of(result)) == (unknown in ("script", "duration"))
    assert await controls.creates() == []


async def test_an_unknown_argument_to_an_image_call_gets_the_video_hint_only_when_it_is_a_video_argument(connect):
    async with connect() as client:
        odd = await client.call_tool("generate_image", {**IMAGE, "colour": "red"})
        no_args = await client.call_tool("check_credits", {"verbose": True})
    assert "generate_video" not in text_of(odd)
    assert "It takes: no arguments." in text_of(no_args), text_of(no_args)


async def test_a_restarted_server_knows_every_task_and_todays_spend(connect, controls):
    async with connect(elicitation=answering()) as first:
        video = await first.call_tool("generate_video", VIDEO)
        image = await first.call_tool("generate_image", IMAGE)
    video_id = video.structured_content["tasks"][0]["task_id"]
    async with connect() as second:  # a new server process on the same workspace
        listed = (await second.call_tool("list_tasks", {})).structured_content
        found = await second.call_tool("list_tasks", {"text": "apple", "state": "succeeded"})
        checked = await second.call_tool("check_task", {"task_id": video_id, "wait_seconds": 10})
        credits = (await second.call_tool("check_credits", {})).structured_content
        resource = json.loads((await second.read_resource("kie://tasks")).contents[0].text)
    assert {t["task_id"] for t in listed["tasks"]} == {video_id, image.structured_content["tasks"][0]["task_id"]}
    assert [t["model"] for t in found.structured_content["tasks"]] == ["nano-banana-2"]
    assert checked.structured_content["task"]["model"] == "veo3_fast"
    assert checked.structured_content["task"]["state"] == "succeeded"
    assert credits["spent_today"] == 68 and credits["spent_total"] == 68
    assert len(resource["tasks"]) == 2


async def test_an_unknown_create_is_journaled_and_listed(connect, controls):
    await controls.fault("create", kind="drop_after_create")
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", IMAGE)
    async with connect() as again:
        listed = (await again.call_tool("list_tasks", {})).structured_content
        credits = (await again.call_tool("check_credits", {})).structured_content
    assert listed["unknown_creates"] == 1
    assert "kie.ai/logs" in listed["message"]
    assert credits["spent_today"] == 8  # assumed charged, across restarts
    assert len(await controls.creates()) == 1  # and never resubmitted


async def test_list_tasks_rejects_a_bad_date(connect):
    async with connect() as client:
        result = await client.call_tool("list_tasks", {"since": "yesterday"})
    assert result.is_error and "YYYY-MM-DD" in text_of(result)


# -- what a request must be --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "named"),
    [
        ("estimate_cost", {**IMAGE, "variations": "three"}, 'variations: must be a whole number (got "three")'),
        ("generate_image", {**IMAGE, "variations": True}, "variations: must be a whole number (got true)"),
        ("generate_video", {**VIDEO, "duration": "8 s"}, 'duration: must be a whole number (got "8 s")'),
        ("generate_video", {**VIDEO, "wait_seconds": True}, "wait_seconds: must be a number (got true)"),
        ("generate_image", {**IMAGE, "max_credits": False}, "max_credits: must be a number (got false)"),
        ("list_tasks", {"limit": True}, "limit: must be a whole number (got true)"),
        ("continue_video", {"task_id": "t", "operation": "extend", "duration": "6.5"}, "duration: must be a whole"),
        (
            "stitch_videos",
            {"clips": ["a"], "captions": [{"start": "soon", "end": 1, "text": "hi"}]},
            'captions[0].start: must be a number (got "soon")',
        ),
    ],
    ids=["text-count", "true-count", "text-duration", "true-wait", "false-cap", "true-limit", "half", "caption"],
)
async def test_a_number_that_is_no_number_or_true_is_refused_by_name_and_costs_nothing(
    connect, controls, tool, arguments, named
):
    """The audit: ``variations: true`` made one task (pydantic's lax mode took true for 1); true, false and text that
    is no number are refused naming the argument, before anyone is asked or anything is sent."""
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error and named in text_of(result), text_of(result)
    assert text_of(result).startswith(f"{tool}: some arguments do not fit; nothing was sent or spent.")
    assert seen == [] and await controls.creates() == []


async def test_a_whole_number_written_with_a_fraction_or_as_text_is_still_that_number(connect):
    """``variations: 2.0`` is the integer 2 in JSON Schema, and some hosts send every argument as text (``"3"``):
    read as the number it says, as a person reads it."""
    async with connect() as client:
        quote = await client.call_tool("estimate_cost", {**IMAGE, "variations": 2.0, "wait_seconds": 5})
        said = await client.call_tool("estimate_cost", {**IMAGE, "variations": " 3 ", "wait_seconds": "5"})
    assert not quote.is_error and " x2: 16 credits" in text_of(quote), text_of(quote)
    assert not said.is_error and " x3: 24 credits" in text_of(said), text_of(said)


@pytest.mark.parametrize(
    ("tool", "arguments", "begins"),
    [
        ("check_credits", {"verbose": True}, "check_credits does not take verbose; nothing was sent."),
        ("generate_image", {**IMAGE, "colour": "red"}, "generate_image does not take colour; nothing was sent."),
        ("upload_file", {"path": ".env"}, "upload_file refused path: .env is private"),
        ("list_tasks", {"since": "yesterday"}, "since='yesterday' is not a date"),
    ],
    ids=["check_credits", "generate_image", "upload_file", "list_tasks"],
)
async def test_a_tools_own_refusal_comes_in_its_own_words_without_the_sdks_prefix(connect, tool, arguments, begins):
    """The SDK put "Error executing tool <name>: " before every error a tool or its resolver raised, kie-mcp's own
    words included; alone, that prefix is what a crash looks like."""
    async with connect() as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error and text_of(result).startswith(begins), text_of(result)
    assert "Error executing tool" not in text_of(result)


@pytest.mark.parametrize("listing", ["list_tools", "list_prompts", "list_resource_templates"])
async def test_a_listing_that_is_never_paged_refuses_a_cursor_in_words(connect, listing):
    """tools/list, prompts/list and resources/templates/list answer everything at once, with no nextCursor; the SDK
    answered any cursor (garbage, a NUL, 100 KB) with the first page, as if it were one. resources/list, which is
    paged, already refused one not in its form."""
    async with connect() as client:
        lister = getattr(client, listing)
        for cursor in ("garbage", "\x00", "c" * 100_000):
            with pytest.raises(MCPError) as refused:
                await lister(cursor=cursor, cache_mode="bypass")
            error = refused.value.error
            assert error.code == INVALID_PARAMS and "is never paged" in error.message, error
            assert "nothing was listed. List again without a cursor." in error.message and len(error.message) < 300
        everything = await lister(cursor="", cache_mode="bypass")  # empty: the first page, as none is
    assert everything.next_cursor is None
