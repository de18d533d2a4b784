"""KIE_VEO_ROUTE: Veo 3.1 generations on KIE's own Veo endpoint (the default) or on its unified Market endpoint.

KIE's Veo pages now call ``POST /api/v1/jobs/createTask`` with ``{"model": "veo-3-1", "input": {"model": <tier>}}``
"the new version". With ``KIE_VEO_ROUTE=unified`` kie-mcp sends the very request it validated and priced in that
form, follows it on ``jobs/recordInfo`` and saves what ``resultJson`` links (``resultUrls``, or ``data.result_urls``
at 1080p and 4K, never ``origin_urls``). Prices and caps are the same; Veo follow-ups stay on the Veo endpoints and
refuse a clip made this way. Every test drives the server through the real MCP client in both protocol eras against
the simulator, and counts what reached KIE.
"""

from __future__ import annotations

from typing import Any

from kie_mcp.config import Settings

from .conftest import answering, eras_in_turn, text_of

VEO = {"prompt": "slow push-in on waves at dusk, gulls overhead", "model": "veo3_fast"}
UNIFIED_CREATE = "/api/v1/jobs/createTask"
UNIFIED_STATUS = "/api/v1/jobs/recordInfo"
VEO_CREATE = "/api/v1/veo/generate"
VEO_STATUS = "/api/v1/veo/record-info"


async def requests_to(controls: Any, path: str) -> list[dict[str, Any]]:
    return [r for r in (await controls.get("requests"))["requests"] if r["path"] == path]


async def balance(controls: Any) -> float:
    return (await controls.get("state"))["balances"]["default"]


async def finished(client: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    made = await client.call_tool("generate_video", arguments)
    assert not made.is_error, text_of(made)
    task_id = made.structured_content["tasks"][0]["task_id"]
    done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
    assert not done.is_error, text_of(done)
    return done.structured_content["task"]


@eras_in_turn("resolution", ["720p", "1080p"])
async def test_with_the_unified_route_a_veo_fast_clip_is_one_market_create_followed_to_its_saved_result(
    connect, controls, resolution
):
    arguments = {**VEO, "aspect_ratio": "9:16", "duration": 6, "resolution": resolution}
    async with connect(elicitation=answering(), veo_route="unified") as client:
        task = await finished(client, arguments)
    [create] = await requests_to(controls, UNIFIED_CREATE)
    assert create["body"] == {
        "model": "veo-3-1",
        "input": {
            "prompt": VEO["prompt"],
            "model": "veo3_fast",
            "aspect_ratio": "9:16",
            "duration": 6,
            "resolution": resolution,
            "enable_translation": True,
            "generation_type": "TEXT_2_VIDEO",
        },
    }
    assert await requests_to(controls, VEO_CREATE) == [] and await requests_to(controls, VEO_STATUS) == []
    assert await requests_to(controls, UNIFIED_STATUS)  # followed on the Market's status endpoint
    assert task["state"] == "succeeded" and task["model"] == "veo3_fast"
    # 720p answers {"resultUrls"}, 1080p {"data": {"result_urls", "origin_urls"}}: the result, never the origin copy.
    assert [url.rsplit("/", 1)[-1] for url in task["result_urls"]] == ["0.mp4"]
    assert len(task["files"]) == 1 and task["files"][0].endswith(".mp4")


async def test_the_unified_route_quotes_and_charges_what_the_veo_endpoint_does(connect, controls):
    arguments = {**VEO, "resolution": "1080p"}
    async with connect() as client:
        legacy = (await client.call_tool("estimate_cost", arguments)).structured_content["quote"]
    before = await balance(controls)
    async with connect(elicitation=answering(), veo_route="unified") as client:
        unified = (await client.call_tool("estimate_cost", arguments)).structured_content["quote"]
        await finished(client, arguments)
    assert unified["credits_total"] == legacy["credits_total"] == 65  # the feed's Fast 1080p clip
    assert before - await balance(controls) == 65


async def test_by_default_veo_clips_are_created_on_kies_veo_endpoint(connect, controls):
    async with connect(elicitation=answering()) as client:
        task = await finished(client, VEO)
    [create] = await requests_to(controls, VEO_CREATE)
    assert create["body"]["model"] == "veo3_fast" and "input" not in create["body"]
    assert await requests_to(controls, UNIFIED_CREATE) == []
    assert task["state"] == "succeeded"


async def test_a_seed_the_unified_route_cannot_carry_is_refused_before_anything_is_quoted(connect, controls):
    async with connect(elicitation=answering(), veo_route="unified") as client:
        quoted = await client.call_tool("estimate_cost", {**VEO, "options": {"seeds": 12345}})
        made = await client.call_tool("generate_video", {**VEO, "options": {"seeds": 12345}})
    for answer in (quoted, made):
        assert answer.is_error
        assert "seeds" in text_of(answer) and "KIE_VEO_ROUTE=legacy" in text_of(answer)
    assert await controls.creates() == []


async def test_a_bad_veo_route_setting_is_a_broken_setting_that_spends_nothing(connect, controls, settings, tmp_path):
    broken = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_VEO_ROUTE": "new"}, cwd=tmp_path)
    assert broken.config_error is not None and "KIE_VEO_ROUTE" in broken.config_error
    assert 'must be "legacy" or "unified"' in broken.config_error
    assert broken.max_credits_per_call == broken.max_credits_per_day == 0.0
    overrides = {
        name: getattr(broken, name)
        for name in ("config_error", "config_fix_in", "max_credits_per_call", "max_credits_per_day", "veo_route")
    }
    async with connect(elicitation=answering(), **overrides) as client:
        made = await client.call_tool("generate_video", VEO)
    assert made.is_error and "KIE_VEO_ROUTE" in text_of(made)
    assert await controls.creates() == []
    assert settings.veo_route == Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path).veo_route == "legacy"


@eras_in_turn("operation", ["extend", "hd", "4k"])
async def test_continue_video_refuses_a_clip_made_through_the_unified_route_and_sends_nothing(
    connect, controls, operation
):
    async with connect(elicitation=answering(), veo_route="unified") as client:
        source = await finished(client, VEO)
        before, creates = await balance(controls), len(await controls.creates())
        refused = await client.call_tool("continue_video", {"task_id": source["task_id"], "operation": operation})
    assert refused.is_error, text_of(refused)
    said = text_of(refused)
    assert "KIE_VEO_ROUTE=unified" in said and "Nothing was sent or charged" in said
    assert len(await controls.creates()) == creates and await balance(controls) == before
    assert await requests_to(controls, "/api/v1/veo/get-1080p-video") == []


@eras_in_turn("operation", ["extend", "4k"])
async def test_a_unified_clip_looked_up_in_another_workspace_is_known_as_one(connect, controls, tmp_path, operation):
    """The review: a clip made on the unified route, looked up from another workspace (whose journal never saw it),
    was recorded as a Market task of an unknown model "veo-3-1": continue_video said it "was made by veo-3-1" and
    needed "Veo 3.1 Fast". It is known by KIE's model id as a clip of that route, and refused as one; its tier is
    read from the request KIE echoes (``param``, whose ``input`` KIE sends as JSON text of its own)."""
    async with connect(elicitation=answering(), veo_route="unified") as client:
        source = await finished(client, VEO)
    other = tmp_path / "other"
    other.mkdir()
    async with connect(elicitation=answering(), workspace=other) as client:
        checked = await client.call_tool("check_task", {"task_id": source["task_id"], "wait_seconds": 5})
        creates = len(await controls.creates())
        refused = await client.call_tool("continue_video", {"task_id": source["task_id"], "operation": operation})
    assert checked.structured_content["task"]["family"] == "veo-unified", text_of(checked)
    assert checked.structured_content["task"]["kind"] == "video"
    assert checked.structured_content["task"]["model"] == "veo3_fast"  # the tier, from param's input as text
    said = text_of(refused)
    assert refused.is_error and "KIE_VEO_ROUTE=unified" in said and "Nothing was sent or charged" in said, said
    assert len(await controls.creates()) == creates
