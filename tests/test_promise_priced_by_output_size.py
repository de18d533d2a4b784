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
