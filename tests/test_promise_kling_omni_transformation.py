"""Promise: Kling 3.0 Omni transformation (restyling a clip given in ``options.video_urls``) is catalogued as KIE's own
model list of 2026-10-06 has it, and priced only where that text settles the price.

KIE prices it per second with a video input (20 / 27 / 67 credits at 720p / 1080p / 4K). A video alone is quoted per
second of that clip once kie-mcp has measured it (a local file here), and counted at twice the quote, since an
integration note says KIE bills the input's seconds and the output's; a clip it cannot measure, or a request with
reference images (whose length KIE leaves open), is quoted unknown with the rate shown, never auto-approved, and
the caps still hold. A video alone is sent with aspect_ratio auto, as KIE requires.

Each kept against the simulator through the real MCP client in both protocol eras.
"""

from __future__ import annotations

from kie_mcp.sandbox.media import clip_bytes

from .conftest import answering, text_of
from .test_followups import MARKET, requests_to

TRANSFORMATION = "kling-3.0-omni/transformation"
ASKED = {"model": TRANSFORMATION, "prompt": "the same street as a watercolour painting", "resolution": "1080p"}


async def test_a_clip_is_transformed_at_kies_rate_per_second_of_it_and_counted_at_twice_that(
    connect, controls, tmp_path
):
    (tmp_path / "street.mp4").write_bytes(clip_bytes("16x9.mp4", 6))
    local = {**ASKED, "options": {"video_urls": ["street.mp4"]}}
    async with connect(elicitation=answering(), auto_approve_credits=200) as client:
        estimate = await client.call_tool("estimate_cost", local)
        made = await client.call_tool("generate_video", {**local, "wait_seconds": 30})
    quote = estimate.structured_content["quote"]
    assert (quote["credits_total"], quote["credits_counted"]) == (162, 324), text_of(estimate)  # 27/s x 6 s, twice
    assert "input's seconds and the output's" in text_of(estimate), text_of(estimate)
    assert not estimate.structured_content["auto_approved"]  # 324 counted, over the limit of 200
    assert made.structured_content["tasks"][0]["state"] == "succeeded", text_of(made)
    [sent] = [r["body"]["input"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == TRANSFORMATION]
    assert sent["aspect_ratio"] == "auto" and sent["resolution"] == "1080p" and len(sent["video_urls"]) == 1, sent


async def test_a_clip_not_measured_or_a_request_with_images_is_unknown_with_its_rate_shown(connect, controls):
    link = {**ASKED, "options": {"video_urls": ["https://example.com/street.mp4"]}}
    guided = {**link, "images": ["https://example.com/style.png"], "aspect_ratio": "9:16"}
    async with connect(auto_approve_credits=10_000) as client:
        answers = [await client.call_tool("estimate_cost", asked) for asked in (link, guided)]
        refused = await client.call_tool("estimate_cost", {**link, "aspect_ratio": "16:9"})
    for answer in answers:
        assert not answer.is_error, text_of(answer)
        assert answer.structured_content["quote"]["price_known"] is False, text_of(answer)
        assert answer.structured_content["auto_approved"] is False
    assert "27 credits per second of the input video" in text_of(answers[0]), text_of(answers[0])
    assert "20 (720p), 27 (1080p) or 67 (4K) credits a second" in text_of(answers[1]), text_of(answers[1])
    assert refused.is_error and "aspect_ratio is auto" in text_of(refused), text_of(refused)
    assert await controls.creates() == []
