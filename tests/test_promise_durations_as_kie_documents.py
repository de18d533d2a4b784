"""Promise: a clip's length goes to KIE in the shape KIE documents for the model, and is quoted as the seconds sent.

The wire audit of 2026-12-07 compared kie-mcp's create bodies with KIE's pages. Seedance 1.5 Pro was sent
``"duration": 5``, a number and a length KIE's page (text '4', '8' or '12') refuses and no integration sends; it now
goes as text, 8 s unless asked, and another length is refused before anything is sent. Grok Imagine image to video
was sent ``"duration": 6``, where KIE's page and its live answers take the text ``"6"``; it now goes as text, still
priced per second of it. The simulator checks a create as KIE's page has it, so the old shapes are refused there too.

Each kept against the simulator through the real MCP client in both protocol eras.
"""

from __future__ import annotations

from typing import Any

from kie_mcp.sandbox import SANDBOX_API_KEY

from .conftest import answering, text_of

SEEDANCE = "bytedance/seedance-1.5-pro"
GROK = "grok-imagine/image-to-video"
CREATE = "/api/v1/jobs/createTask"


async def sent_durations(controls: Any, model: str) -> list[Any]:
    """The ``duration`` of every create the simulator received for ``model``, in order, exactly as sent."""
    return [r["body"]["input"].get("duration") for r in await controls.creates() if r["body"]["model"] == model]


async def kie_answer(controls: Any, model: str, given: dict[str, Any]) -> dict[str, Any]:
    """The simulator's answer to a create of ``model`` with the input ``given``, posted as any client would."""
    body = {"model": model, "input": given}
    response = await controls.http.post(CREATE, json=body, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})
    return response.json()


async def test_seedance_1_5_pro_is_sent_4_8_or_12_seconds_as_text_8_by_default_and_quoted_for_that(connect, controls):
    asked = {"model": SEEDANCE, "prompt": "a paper boat drifting down a gutter", "resolution": "720p"}
    async with connect(elicitation=answering()) as client:
        default = await client.call_tool("estimate_cost", asked)
        made = await client.call_tool("generate_video", {**asked, "wait_seconds": 0})
        longest = await client.call_tool("estimate_cost", {**asked, "duration": 12})
        made_longest = await client.call_tool("generate_video", {**asked, "duration": 12, "wait_seconds": 0})
        refused = await client.call_tool("generate_video", {**asked, "duration": 5, "wait_seconds": 0})
    assert not made.is_error and not made_longest.is_error, (text_of(made), text_of(made_longest))
    assert await sent_durations(controls, SEEDANCE) == ["8", "12"]  # text, as KIE lists them; never 5
    assert default.structured_content["quote"]["credits_total"] == 28  # 3.5 credits/s at 720p x the 8 s sent
    assert longest.structured_content["quote"]["credits_total"] == 42
    assert refused.is_error and "duration: 5 is not allowed; allowed: 4, 8, 12" in text_of(refused), text_of(refused)
    given = {"prompt": "a paper boat", "aspect_ratio": "1:1"}
    assert (await kie_answer(controls, SEEDANCE, {**given, "duration": "4"}))["code"] == 200  # the documented shape
    for old_shape in (5, 8):  # what kie-mcp sent before, and a number at all: not what KIE's page takes
        answer = await kie_answer(controls, SEEDANCE, {**given, "duration": old_shape})
        assert answer["code"] == 422 and "duration" in answer["msg"], answer


async def test_grok_image_to_video_sends_its_seconds_as_text_and_is_priced_per_second_of_them(connect, controls):
    asked = {"model": GROK, "prompt": "the girl turns and smiles", "images": ["https://example.com/girl.png"]}
    async with connect(elicitation=answering()) as client:
        default = await client.call_tool("estimate_cost", asked)
        made = await client.call_tool("generate_video", {**asked, "wait_seconds": 0})
        ten = await client.call_tool("estimate_cost", {**asked, "duration": 10})
        made_ten = await client.call_tool("generate_video", {**asked, "duration": 10, "wait_seconds": 0})
    assert not made.is_error and not made_ten.is_error, (text_of(made), text_of(made_ten))
    assert await sent_durations(controls, GROK) == ["6", "10"]  # KIE's page: type string, example '6'
    assert default.structured_content["quote"]["credits_total"] == 14.4  # 2.4 credits/s at 480p x 6 s
    assert ten.structured_content["quote"]["credits_total"] == 24
    given = {"image_urls": ["https://example.com/girl.png"]}
    assert (await kie_answer(controls, GROK, {**given, "duration": "30"}))["code"] == 200  # the documented shape
    answer = await kie_answer(controls, GROK, {**given, "duration": 6})  # what kie-mcp sent before: a number
    assert answer["code"] == 422 and "duration" in answer["msg"], answer
