"""A price KIE sets by the output's size (Topaz image upscale: 2K 10, 4K 20, 8K 40 credits) is quoted from the
measured size of a local picture times the factor, and for a link, whose size is not known, the top tier is counted.

Through the real MCP client (both protocol eras) and the simulator; nothing of ours is mocked.
"""

from __future__ import annotations

from PIL import Image

from .conftest import answering, text_of

UPSCALE = "topaz/image-upscale"


def picture(path, size):
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path.name


async def quoted(client, images, factor):
    answer = await client.call_tool(
        "estimate_cost", {"model": UPSCALE, "images": images, "options": {"upscale_factor": factor}}
    )
    return answer.structured_content


async def test_a_large_picture_is_quoted_at_its_output_tier_never_below_what_kie_bills(connect, controls, tmp_path):
    """The audit: a 6000x6000 picture at upscale_factor 1 makes an 8K output (40 credits), yet was quoted a known 10
    and auto-approved under 10."""
    big = picture(tmp_path / "big.png", (6000, 6000))
    await controls.post("prices", {UPSCALE: 40})  # what KIE bills an 8K output (the simulator prices by factor alone)
    async with connect(elicitation=answering(), auto_approve_credits=10) as client:
        estimate = await quoted(client, [big], "1")
        made = await client.call_tool(
            "generate_image", {"model": UPSCALE, "images": [big], "options": {"upscale_factor": "1"}, "wait_seconds": 0}
        )
    assert estimate["quote"]["credits_total"] == 40 and estimate["quote"]["price_known"], estimate
    assert not estimate.get("auto_approved")
    assert "6000x6000 px as sent" in estimate["quote"]["breakdown"], estimate["quote"]
    assert made.structured_content["tasks"][0]["credits_reserved"] == 40, text_of(made)


async def test_a_small_picture_keeps_the_tier_its_output_reaches(connect, tmp_path):
    small = picture(tmp_path / "small.png", (1000, 800))
    async with connect(auto_approve_credits=10) as client:
        same = await quoted(client, [small], "1")  # 1000x800: 2K
        doubled = await quoted(client, [small], "2")  # 2000x1600: 4K
        quadrupled = await quoted(client, [small], "4")  # 4000x3200: 8K
    assert same["quote"]["credits_total"] == 10 and same["auto_approved"], same
    assert doubled["quote"]["credits_total"] == 20 and quadrupled["quote"]["credits_total"] == 40


async def test_a_link_whose_size_is_unknown_counts_the_top_tier(connect, tmp_path):
    async with connect(auto_approve_credits=10) as client:
        linked = await quoted(client, ["https://example.com/photo.png"], "1")
    quote = linked["quote"]
    assert quote["credits_total"] == 10 and quote["credits_counted"] == 40, quote
    assert not linked.get("auto_approved")
    # said for what it is: KIE was never seen charging 40 for this; the link's picture is not measured
    said = linked["message"]
    assert "a picture given as a link is not measured before KIE fetches it" in said, said
    assert "seen charging" not in said, said


LINK = "https://example.com/photo.png"


async def test_a_link_s_top_tier_follows_kie_s_live_8k_price(connect, controls, transport, tmp_path):
    """KIE raises its 8K tier to 60: a local 6000x6000 picture was quoted 60 while a link was still counted 40."""
    from .test_live_wiring import sync

    await controls.post("catalog/feed", {"description": "Topaz Image Upscaler, image-upscale, 8K", "credits": 60})
    await sync(transport, controls, tmp_path)
    big = picture(tmp_path / "big.png", (6000, 6000))
    async with connect(auto_approve_credits=10) as client:
        local = await quoted(client, [big], "1")
        linked = await quoted(client, [LINK], "1")
    assert local["quote"]["credits_total"] == 60, local["quote"]
    assert (linked["quote"]["credits_total"], linked["quote"]["credits_counted"]) == (10, 60), linked["quote"]
    assert "up to 60 is counted against your caps" in linked["message"], linked["message"]


async def test_a_link_s_unreported_cost_is_called_the_most_kie_may_charge(connect, controls, tmp_path):
    """KIE reports no charge: check_task said "KIE was seen charging that much, or its live list is far below
    kie-mcp's catalogue" of a link counted at its top tier, neither of which had happened."""
    await controls.post("config", {"report_credits_consumed": False})
    async with connect(answering()) as client:
        made = await client.call_tool(
            "generate_image",
            {"model": UPSCALE, "images": [LINK], "options": {"upscale_factor": "1"}, "wait_seconds": 30},
        )
        checked = await client.call_tool("check_task", {"task_id": made.structured_content["tasks"][0]["task_id"]})
    said = text_of(checked)
    assert "10 credits quoted; 40 counted against the caps, as KIE does not report this task's charge" in said, said
    assert "seen charging" not in said and "far below" not in said, said


async def test_a_link_charged_its_counted_top_tier_is_no_warning(connect, controls, tmp_path):
    """KIE charged 40 (8K) for a link at 1x, as the counted top tier foresaw: the next quote warned "far from the
    price table's 10 ... Check https://kie.ai/logs"."""
    await controls.post("prices", {UPSCALE: 40})
    async with connect(answering()) as client:
        await client.call_tool(
            "generate_image",
            {"model": UPSCALE, "images": [LINK], "options": {"upscale_factor": "1"}, "wait_seconds": 30},
        )
        again = await quoted(client, ["https://example.com/other.png"], "1")
    assert "far from the price table" not in again["message"], again["message"]
    assert (again["quote"]["credits_total"], again["quote"]["credits_counted"]) == (10, 40), again["quote"]


async def test_a_picture_whose_output_is_over_20000_px_is_refused_not_priced_as_a_link(connect, controls, tmp_path):
    """A local 20001x64 picture fell through to the link's rate and was told it was "given as a link"."""
    wide = picture(tmp_path / "wide.png", (20001, 64))
    doubled = picture(tmp_path / "doubled.png", (10001, 64))
    async with connect() as client:
        once = await client.call_tool(
            "estimate_cost", {"model": UPSCALE, "images": [wide], "options": {"upscale_factor": "1"}}
        )
        twice = await client.call_tool(
            "estimate_cost", {"model": UPSCALE, "images": [doubled], "options": {"upscale_factor": "2"}}
        )
    assert once.is_error and "up to 20000 px a side" in text_of(once), text_of(once)
    assert twice.is_error and "10001 px x upscale_factor=2 is 20002" in text_of(twice), text_of(twice)
    assert "given as a link" not in text_of(once) + text_of(twice)
    assert await controls.creates() == []
