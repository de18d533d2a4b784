"""Promise: two Market models KIE documents (docs.kie.ai, compiled 2026-09-24; KIE's registry of 2026-10-07) are
catalogued with what KIE documents of them, and what they cost holds the caps.

- ``seedream/5-pro-layer-decomposition`` splits one picture into layers: 1K and 1.5K are quoted at 7 credits and 2K
  at 14, from KIE's price-feed rows, and 1K is sent unless told; ``size=auto`` (KIE's own default) has no listed
  price, so it is quoted unknown, never auto-approved, and counts 238 (17 pictures at its dearest listed size)
  against the caps, whatever ``max_credits`` says.
- KIE bills a layer decomposition per picture it returns, the base image and up to 16 layers (a client's pricing
  tests and a live two-picture charge; a node pack's notes, read 2026-12-07): the catalogue of 2026-12-06 counted
  one picture, 7 credits, for a task that may cost 119, so the auto-approve limit let such a task through. The quote
  still shows KIE's per-picture price; the caps and the auto-approve limit count 17 pictures, Pro's and Flash's.
- ``pixverse-v6/transition`` goes from a first to a last frame: the two images land in ``first_frame_image_url``
  and ``last_frame_image_url`` in order, one image alone is refused before anything is asked; it is quoted per
  second at KIE's own price text for it (captured 2026-10-06; KIE's price feed has no row for it), so a clip counts
  its price against the caps, no longer the whole per-call cap it counted while no price was on file.

Each kept against the simulator through the real MCP client in both protocol eras.
"""

from __future__ import annotations

from PIL import Image

from .conftest import answering, text_of
from .test_followups import MARKET, requests_to, spent_today

LAYERS = "seedream/5-pro-layer-decomposition"
TRANSITION = "pixverse-v6/transition"
PICTURE, LAST = "https://example.com/poster.png", "https://example.com/last.png"


async def test_layer_decomposition_is_quoted_from_kies_rows_and_made_in_the_sandbox(connect, controls):
    async with connect(elicitation=answering()) as client:
        quoted = {}
        for size in (None, "1K", "1.5K", "2K"):
            asked = {"model": LAYERS, "images": [PICTURE]} | ({"resolution": size} if size else {})
            answer = await client.call_tool("estimate_cost", asked)
            assert not answer.is_error, text_of(answer)
            quoted[size] = answer.structured_content["quote"]["credits_total"]
        made = await client.call_tool(
            "generate_image",
            {"model": LAYERS, "images": [PICTURE], "resolution": "1.5K", "prompt": "", "wait_seconds": 30},
        )
    assert quoted == {None: 7, "1K": 7, "1.5K": 7, "2K": 14}  # 1K unless told
    task = made.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["result_urls"], text_of(made)
    [create] = [r["body"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == LAYERS]
    assert create["input"] == {"image_url": PICTURE, "size": "1.5K", "output_format": "jpeg"}


async def test_layer_decomposition_at_kies_auto_size_is_unknown_and_counts_its_dearest_size(connect, controls):
    async with connect(elicitation=answering(), max_credits_per_day=500) as client:
        auto = {"model": LAYERS, "images": [PICTURE], "resolution": "auto"}
        estimate = await client.call_tool("estimate_cost", auto)
        too_little = await client.call_tool("generate_image", {**auto, "max_credits": 10})
        await controls.post("clock/speed", {"speed": 0})  # running: KIE has not said what it charged
        made = [
            await client.call_tool("generate_image", {**auto, "prompt": f"layer {n}", "wait_seconds": 0})
            for n in range(3)
        ]
        spent = await spent_today(client)
    quote = estimate.structured_content["quote"]
    assert not quote["price_known"] and quote["credits_total"] is None and quote["credits_ceiling"] == 238, quote
    assert not estimate.structured_content["auto_approved"]
    assert "size=auto" in text_of(estimate) and "238" in text_of(estimate), text_of(estimate)
    assert too_little.is_error and "up to 238 credits" in text_of(too_little), text_of(too_little)
    assert [r.structured_content["status"] for r in made[:2]] == ["submitted"] * 2, text_of(made[0])
    assert made[2].is_error and "238 credits are reserved" in text_of(made[2]), text_of(made[2])
    assert spent == 2 * 238
    sent = [r["body"]["input"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == LAYERS]
    assert [body["size"] for body in sent] == ["auto", "auto"]


FLASH_LAYERS = "seedream/5-flash-layer-decomposition"


async def test_a_layer_decomposition_counts_every_picture_kie_may_return_against_the_caps_and_auto_approve(
    connect, controls
):
    async with connect(elicitation=answering(), auto_approve_credits=50, max_credits_per_day=200) as client:
        quotes = {}
        for model, size in ((LAYERS, "1K"), (LAYERS, "2K"), (FLASH_LAYERS, "1.5K")):
            answer = await client.call_tool("estimate_cost", {"model": model, "images": [PICTURE], "resolution": size})
            assert not answer.is_error, text_of(answer)
            quotes[(model, size)] = answer
        await controls.post("clock/speed", {"speed": 0})  # running: KIE has not said what it charged
        made = await client.call_tool(
            "generate_image", {"model": LAYERS, "images": [PICTURE], "prompt": "split the title", "wait_seconds": 0}
        )
        again = await client.call_tool(
            "generate_image", {"model": LAYERS, "images": [PICTURE], "prompt": "split the logo", "wait_seconds": 0}
        )
        spent = await spent_today(client)
    counted = {
        key: (a.structured_content["quote"]["credits_total"], a.structured_content["quote"]["credits_counted"])
        for key, a in quotes.items()
    }
    assert counted == {(LAYERS, "1K"): (7, 119), (LAYERS, "2K"): (14, 238), (FLASH_LAYERS, "1.5K"): (3.24, 55.08)}
    assert not quotes[(FLASH_LAYERS, "1.5K")].structured_content["auto_approved"]  # 55.08 counted, over 50
    assert "each picture a decomposition returns" in text_of(quotes[(LAYERS, "1K")])
    assert made.structured_content["status"] == "submitted", text_of(made)  # asked and approved, 119 counted
    assert again.is_error and "119" in text_of(again), text_of(again)  # 119 more would pass the 200 a day
    assert spent == 119
    sent = [r["body"]["input"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == LAYERS]
    assert sent == [{"image_url": PICTURE, "prompt": "split the title", "size": "1K", "output_format": "jpeg"}]


async def test_flash_layer_decomposition_is_sent_as_kie_documents_it_and_made_in_the_sandbox(connect, controls):
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool(
            "generate_image",
            {"model": FLASH_LAYERS, "images": [PICTURE], "resolution": "2K", "prompt": "", "wait_seconds": 30},
        )
    task = made.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["result_urls"], text_of(made)
    [create] = [r["body"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == FLASH_LAYERS]
    assert create["input"] == {"image_url": PICTURE, "size": "2K", "output_format": "jpeg"}


async def test_a_transition_sends_its_first_and_last_frames_in_order_at_kies_price_per_second(connect, controls):
    async with connect(elicitation=answering(), max_credits_per_call=200) as client:
        one = await client.call_tool(
            "estimate_cost", {"model": TRANSITION, "prompt": "dusk to dawn", "images": [PICTURE]}
        )
        estimate = await client.call_tool(
            "estimate_cost", {"model": TRANSITION, "prompt": "dusk to dawn", "images": [PICTURE, LAST]}
        )
        await controls.post("clock/speed", {"speed": 0})
        made = await client.call_tool(
            "generate_video",
            {"model": TRANSITION, "prompt": "dusk to dawn", "images": [PICTURE, LAST], "duration": 8},
        )
        spent = await spent_today(client)
        await controls.post("clock/speed", {"speed": 1000})
        done = await client.call_tool(
            "check_task", {"task_id": made.structured_content["tasks"][0]["task_id"], "wait_seconds": 30}
        )
    assert one.is_error and "takes 2 image(s); got 1" in text_of(one), text_of(one)
    quote = estimate.structured_content["quote"]
    assert quote["price_known"] and quote["credits_total"] == 36, quote  # 720p silent: 7.2 credits/s x 5 s
    assert made.structured_content["status"] == "submitted", text_of(made)
    assert spent == 57.6  # 8 s at 7.2 credits/s, KIE's own price text: no longer the whole per-call cap
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    [create] = [r["body"] for r in await requests_to(controls, MARKET) if r["body"]["model"] == TRANSITION]
    assert create["input"] == {
        "prompt": "dusk to dawn",
        "first_frame_image_url": PICTURE,
        "last_frame_image_url": LAST,
        "quality": "720p",
        "duration": 8,
        "generate_audio_switch": False,
    }


async def test_a_picture_under_the_layer_splitters_pixel_count_is_refused_before_anything_is_priced_or_sent(
    connect, controls, tmp_path
):
    """KIE documents 262,144 to 36,000,000 pixels for the layer splitter's picture: a wide strip of 1100x230 px
    (253,000 pixels, each side long enough) would be refused by KIE after the create; it is refused here first."""
    Image.new("RGB", (1100, 230), "tan").save(tmp_path / "strip.png")
    Image.new("RGB", (1100, 480), "tan").save(tmp_path / "banner.png")
    async with connect(elicitation=answering()) as client:
        strip = await client.call_tool("estimate_cost", {"model": LAYERS, "images": ["strip.png"]})
        banner = await client.call_tool("estimate_cost", {"model": LAYERS, "images": ["banner.png"]})
    assert strip.is_error and "253,000 pixels" in text_of(strip) and "262,144" in text_of(strip), text_of(strip)
    assert not banner.is_error, text_of(banner)  # 528,000 pixels: taken
    paths = [r["path"] for r in (await controls.get("requests"))["requests"]]
    assert not [p for p in paths if "upload" in p] and not await controls.creates(), paths  # nothing up, nothing sent
