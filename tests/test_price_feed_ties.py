"""A rate KIE's public price feed prices is tied to its row (``feed``), so KIE's price changes reach the quotes.

The catalogue audit of 2026-12-05 found about twenty models (Seedance 2.5, MiniMax H3, GPT Image 2.5, Qwen3,
Seedream 5 Pro, ...) whose rates named no feed row although KIE's feed had one for each: the live price layer and
``kie-mcp catalog check`` never compared them with KIE, so a price rise never reached their quotes. The image and
video rows of KIE's feed as captured on 2026-09-24 (``tests/data/kie-price-feed-2026-09-24.txt``) are read here as
the live layer reads a synced feed: every row must price a rate, or be named below with the reason it cannot.

The audit of 2026-12-06 found Nano Banana 2.1 and Seedream 5.0 Flash untied although KIE's feed of 2026-10-10 has
their rows: both came after the 2026-09-24 capture, so the tests above never saw a row of theirs. The rows newer
than that capture are added (``tests/data/kie-price-feed-2026-10-10.txt``), and a priced model with no rate tied to
any row is now named with the reason, whatever a capture holds: a new model's entry ties its rates or says why not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kie_mcp.catalog import load_catalog
from kie_mcp.catalog.live import FeedRow, LiveCatalog, effective_rate

from .conftest import text_of
from .test_live_wiring import sync

DATA = Path(__file__).parent / "data"
CAPTURE = DATA / "kie-price-feed-2026-09-24.txt"
# Rows KIE's feed gained after that capture (models it listed later), from its 2026-10-10 snapshot, and the rows of
# a model that snapshot leaves out (Seedream 5.0 Flash's layer decomposition), from a client's capture of 2026-10-05.
LATER_ROWS = DATA / "kie-price-feed-2026-10-10.txt"
OTHER_LATER_ROWS = DATA / "kie-price-feed-2026-10-05.txt"
PICTURE = "https://example.com/first-frame.png"

# Rows of the capture that price no bundled rate, and why. A row that one rate could carry is tied, never listed.
UNTIED_ROWS = {
    **dict.fromkeys(
        [
            f"Qwen image 3.0{pro}, {part}, {size}"
            for pro in ("", " Pro")
            for part in ("input", "output")
            for size in ("1K", "2K")
        ],
        "an image-to-image rate is the output row plus the input row once per input image: no one row is the rate",
    ),
    **dict.fromkeys(
        [
            "seedream 5 Pro, image-to-image, 1K",
            "seedream 5 Pro, image-to-image, 2K",
            "seedream 5 Pro, input image, First image free",
        ],
        "an image-to-image rate is the output row plus the input-image row for each image after the first",
    ),
    **dict.fromkeys(
        ["Qwen Image , text-to-image", "Qwen Image, image-to-image", "Qwen image-edit, image-to-image"],
        "billed per megapixel; the catalogue prices each image size, so no row is a rate",
    ),
    **dict.fromkeys(
        ["HappyHorse-1.0, video-edit, 720p", "HappyHorse-1.0, video-edit, 1080p"],
        "KIE bills the input's seconds and the output's: the rate per input second is twice the row",
    ),
    "MiniMax H3, image input, 768p, 2k": "a charge per input image on top of the output rate that "
    "the sources disagree on: image to video counts it against the caps (up_to_per_input), never quotes it",
    **dict.fromkeys(
        ["MiniMax H3, video input, 768p", "MiniMax H3, video input, 2k"],
        "charges for inputs on top of the output rate, which the catalogue does not price (such requests are unknown)",
    ),
    "grok-imagine, upscale, 360p→720p": "kie-mcp asks Grok's upscale for 1080p only",
    "wan 2.2,  text-to-video, 5.0s-580p": "the catalogue offers Wan 2.2 Turbo at 480p and 720p only",
    "wan 2.2, image-to-video, 5.0s-580p": "the catalogue offers Wan 2.2 Turbo at 480p and 720p only",
}
# Rows a rate is tied to that the capture lacks: live sync prices such a rate unknown, which is never auto-approved.
ROWS_GONE_FROM_THE_CAPTURE = {
    "Topaz Image Upscaler, image-upscale, 8K": "in the 2026-09-11 feed, not in the 2026-09-24 one (the 4x quote)",
}
# Models the capture prices (a row's link names them) with some rates tied to no row, and why.
PARTLY_TIED = {
    "hailuo/02-image-to-video-standard": "768P 6 s: the feed has that row for text to video only",
    "qwen3/image-to-image": UNTIED_ROWS["Qwen image 3.0, input, 1K"],
    "qwen3/pro-image-to-image": UNTIED_ROWS["Qwen image 3.0, input, 1K"],
    "happyhorse/video-edit": UNTIED_ROWS["HappyHorse-1.0, video-edit, 720p"],
}


def _key(description: str) -> str:
    return " ".join(description.lower().split())


def captured_rows(path: Path) -> list[FeedRow]:
    """A capture's rows as KIE's records (``modelDescription``, ``creditPrice``, ``creditUnit``, ``anchor``) read by
    ``FeedRow.from_wire``."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        _kind, provider, description, price, anchor = line.split("|")
        credits, _, unit = price.strip().partition(" ")
        record = {"modelDescription": description, "provider": provider, "creditPrice": credits, "creditUnit": unit}
        rows.append(FeedRow.from_wire({**record, "anchor": f"https://kie.ai{anchor}" if anchor[:1] == "/" else anchor}))
    return [row for row in rows if row is not None]


def captured_feed() -> LiveCatalog:
    """The captures as the live layer holds a synced feed: the 2026-09-24 rows and the rows KIE added since."""
    later = captured_rows(LATER_ROWS) + captured_rows(OTHER_LATER_ROWS)
    return LiveCatalog(feed=captured_rows(CAPTURE) + later, feed_at="2026-10-10T00:00:00Z")


CAPTURED = captured_feed()
CATALOG = load_catalog()


def tied_rates() -> list[tuple[object, object]]:
    return [(spec, rate) for spec in CATALOG.offered() if spec.price for rate in spec.price.rates if rate.feed]


def test_the_capture_holds_kies_image_and_video_rows():
    assert len(captured_rows(CAPTURE)) == 379  # 110 image + 269 video of the 503
    assert len(captured_rows(LATER_ROWS)) == 6  # Nano Banana 2.1 and Seedream 5.0 Flash, newer than the capture
    assert len(captured_rows(OTHER_LATER_ROWS)) == 3  # Seedream 5.0 Flash's layer decomposition
    assert {_key(r) for r in UNTIED_ROWS} <= {_key(row.description) for row in CAPTURED.feed or []}


def test_every_row_of_kies_price_feed_prices_a_rate_or_is_named_with_the_reason_it_cannot():
    tied = {_key(rate.feed) for _, rate in tied_rates()}
    untied = {row.description for row in CAPTURED.feed or [] if _key(row.description) not in tied}
    listed = {_key(row) for row in UNTIED_ROWS}
    assert sorted(row for row in untied if _key(row) not in listed) == []  # tie them to their rates
    assert sorted(row for row in UNTIED_ROWS if _key(row) in tied) == []  # tied now: no longer an exception


def test_every_tied_rate_is_priced_from_its_row_as_the_live_layer_reads_it():
    """Same name (case and spacing aside), a real price, and per second exactly when the rate is."""
    wrong = []
    for spec, rate in tied_rates():
        verdict = effective_rate(CAPTURED, spec, rate)
        gone = rate.feed in ROWS_GONE_FROM_THE_CAPTURE
        if (verdict.state == "live") == gone:
            wrong.append((spec.id, rate.feed, verdict.detail))
    assert wrong == []


def test_a_model_kie_prices_in_its_feed_has_every_rate_tied():
    named = {row.model_id for row in CAPTURED.feed or []}
    partly = {
        spec.id
        for spec in CATALOG.offered()
        if spec.price
        and (spec.id in named or any(rate.feed for rate in spec.price.rates))
        and not all(rate.feed for rate in spec.price.rates)
    }
    assert sorted(partly - set(PARTLY_TIED)) == []  # tie the rest of their rates, or say why they cannot be
    assert sorted(set(PARTLY_TIED) - partly) == []


def test_a_price_every_row_of_a_capture_confirms_is_dated_no_earlier_than_that_capture():
    """The audit of 2026-12-07: Veo 3.1's extend, 1080p and 4K prices were dated 2026-06-09 and about ninety
    others 2026-09-11, although KIE's feed captured 2026-09-24 lists every one of their rates unchanged. A price
    over 180 days old is never auto-approved and a quote warns of its age, so each read as older than KIE's list
    says: the Veo follow-ups had turned 180 days old. A price every rate of which the capture confirms is dated by
    that capture, or a later one."""
    confirmed = {_key(row.description): row.credits for row in captured_rows(CAPTURE)}
    old = []
    for spec in CATALOG.offered():
        rates = spec.price.rates if spec.price else []
        if rates and all(rate.feed and confirmed.get(_key(rate.feed)) == rate.credits for rate in rates):
            day = spec.sources[spec.price.source].date
            if day is None or day < "2026-09-24":
                old.append((spec.id, day))
    assert old == []


# Priced models with no rate tied to a row of KIE's feed, and why. Any other priced model ties its rates to its rows:
# this holds of a model newer than every capture too (Nano Banana 2.1 and Seedream 5.0 Flash were caught here).
NEVER_TIED = {
    **dict.fromkeys(
        [
            "bytedance/v1-pro-text-to-video",
            "bytedance/v1-pro-image-to-video",
            "bytedance/v1-pro-fast-image-to-video",
            "bytedance/v1-lite-text-to-video",
            "bytedance/v1-lite-image-to-video",
            "bytedance/seedream",
            "bytedance/seedream-v4-text-to-image",
            "bytedance/seedream-v4-edit",
        ],
        "not in KIE's price feed (2026-09-24 capture: 'not in pricing feed')",
    ),
    **dict.fromkeys(
        [
            "kling-3.0-omni/text-to-video",
            "kling-3.0-omni/image-to-video",
            "kling-3.0-omni/reference-to-video",
            "kling-3.0-omni/transformation",
        ],
        "no rows of its own in KIE's feed (2026-09-24 capture, 2026-10-10 snapshot), priced from KIE's own Omni text, "
        "and never tied to Kling 3.0's rows",
    ),
    "pixverse-v6/transition": "no row in KIE's feed ('not separately listed', 2026-09-24 capture); priced from KIE's "
    "own text for it, and never tied to text to video's rows",
    **dict.fromkeys(
        ["grok-imagine-image-2-0/segment-edit", "grok-imagine-image-2-0/segment-map"],
        "not in KIE's price feed (2026-09-24 capture: 'not in feed'); priced from KIE's own text (segment map: free)",
    ),
    "seedream/5-flash-image-to-image": "KIE's feed snapshots name only text-to-image rows for Seedream 5.0 Flash",
    "happyhorse/video-edit": UNTIED_ROWS["HappyHorse-1.0, video-edit, 720p"],
    "qwen/text-to-image": UNTIED_ROWS["Qwen Image , text-to-image"],
    "qwen/image-to-image": UNTIED_ROWS["Qwen Image , text-to-image"],
    "qwen/image-edit": UNTIED_ROWS["Qwen Image , text-to-image"],
    "qwen3/image-to-image": UNTIED_ROWS["Qwen image 3.0, input, 1K"],
    "qwen3/pro-image-to-image": UNTIED_ROWS["Qwen image 3.0, input, 1K"],
    "seedream/5-pro-image-to-image": UNTIED_ROWS["seedream 5 Pro, input image, First image free"],
}


def test_a_priced_model_ties_a_rate_to_kies_feed_or_is_named_with_the_reason_it_cannot():
    untied = {spec.id for spec in CATALOG.offered() if spec.price and not any(rate.feed for rate in spec.price.rates)}
    assert sorted(untied - set(NEVER_TIED)) == []  # tie its rates to KIE's feed rows, or say here why they cannot be
    assert sorted(set(NEVER_TIED) - untied) == []  # tied now (or gone): no longer an exception


# Rows KIE raised (row: raised credits), and a request of a model each prices, with its quoted total.
RAISED = {
    "bytedance/seedance-2-5, 720p no video": 80,  # was 63/s
    "bytedance/seedance-2-5, 1080p no video": 190,  # was 158/s
    "MiniMax H3, text to video, 768p": 12,  # was 8/s
    "MiniMax H3, image to video, 2K": 16,  # was 13/s
    "MiniMax H3, reference to video, 768p": 9,  # was 8/s
    "gpt-image-2-5-sunburst, text-to-image, 4K": 20,  # was 16
    "gpt-image-2-5-flare, image-to-image, 2K": 12,  # was 10
    "grok-imagine-image-2-0, Text to Image": 5,  # was 4
    "nano-banana-2-lite, 1k": 5,  # was 4
    "Qwen image 3.0 Pro, text to image, 2K": 15,  # was 12
    "seedream 5 Pro, text-to-image, 2K": 17,  # was 14
}
QUOTED = [
    ("bytedance/seedance-2-5", {"resolution": "720p", "duration": 10}, 800),
    ("bytedance/seedance-2-5", {"resolution": "1080p", "duration": 4}, 760),
    ("minimax-h3/text-to-video", {"resolution": "768P", "duration": 10}, 120),
    ("minimax-h3/image-to-video", {"resolution": "2K", "duration": 10, "images": [PICTURE]}, 160),
    ("minimax-h3/reference-to-video", {"resolution": "768P", "duration": 5, "images": [PICTURE]}, 45),
    ("gpt-image-2-5-sunburst-text-to-image", {"resolution": "4K"}, 20),
    ("gpt-image-2-5-flare-image-to-image", {"resolution": "2K", "images": [PICTURE]}, 12),
    ("grok-imagine-image-2-0/text-to-image", {}, 5),
    ("nano-banana-2-lite", {}, 5),
    ("qwen3/pro-text-to-image", {"resolution": "2K"}, 15),
    ("seedream/5-pro-text-to-image", {"resolution": "2K"}, 17),
]


async def test_prices_kie_raised_in_its_feed_reach_the_quotes_of_seedance_2_5_minimax_h3_and_the_others(
    connect, controls, transport, tmp_path
):
    for row, credits in RAISED.items():
        await controls.post("catalog/feed", {"description": row, "credits": credits})
    await sync(transport, controls, tmp_path)
    async with connect() as client:
        for model, request, total in QUOTED:
            arguments = {"model": model, "prompt": "a lighthouse at dusk", **request}
            answer = await client.call_tool("estimate_cost", arguments)
            assert not answer.is_error, text_of(answer)
            quote = answer.structured_content["quote"]
            assert quote["credits_total"] == pytest.approx(total), (model, text_of(answer))
            assert quote["price_source"].startswith("KIE live price list of 20"), (model, quote["price_source"])


async def test_kling_3_omni_with_sound_is_quoted_at_kies_omni_text_and_counts_kling_3s_rate(connect):
    """The audit of 2026-12-07: Omni with sound was quoted at Kling 3.0's 20 and 27 credits a second, from a
    kie.ai/pricing summary of 2026-10-07 that prices the two as one, while KIE's own Omni text of 2026-10-06 says 18
    and 23. The quote is KIE's Omni text; the caps and the auto-approve limit still count Kling 3.0's rate, so a clip
    KIE bills at the higher figure never passes them."""
    async with connect() as client:
        for model, images in (
            ("kling-3.0-omni/text-to-video", []),
            ("kling-3.0-omni/image-to-video", [PICTURE]),
            ("kling-3.0-omni/reference-to-video", [PICTURE]),
        ):
            for resolution, quoted, counted in (("720p", 180, 200), ("1080p", 230, 270)):
                arguments = {"prompt": "a lighthouse at dusk", "resolution": resolution, "audio": True, "duration": 10}
                answer = await client.call_tool("estimate_cost", {"model": model, "images": images, **arguments})
                assert not answer.is_error, text_of(answer)
                quote = answer.structured_content["quote"]
                assert (quote["credits_total"], quote["credits_counted"]) == (quoted, counted), (model, text_of(answer))
                assert "KIE's own Omni text" in text_of(answer), text_of(answer)


async def test_nano_banana_2_1_and_seedream_5_flash_are_quoted_at_kies_live_price_when_it_changes(
    connect, controls, transport, tmp_path
):
    """The audit of 2026-12-06: their rates named no feed row, so a price KIE changed in its feed (Nano Banana 2.1's
    half of Nano Banana 2's price ending, say) was never quoted: estimate_cost kept the bundled 6 and 3.24."""
    await controls.post("catalog/feed", {"description": "nano-banana-2-1, 2K", "credits": 12})  # was 6
    await controls.post("catalog/feed", {"description": "seedream 5 Flash, Text to image, 1.5K", "credits": 5})  # 3.24
    await sync(transport, controls, tmp_path)
    async with connect() as client:
        quotes = {}
        for model, resolution in (
            ("nano-banana-2-1", "2K"),
            ("nano-banana-2-1", "1K"),
            ("seedream/5-flash-text-to-image", "1.5K"),
            ("seedream/5-flash-text-to-image", "1K"),
        ):
            arguments = {"model": model, "prompt": "a lighthouse at dusk", "resolution": resolution}
            answer = await client.call_tool("estimate_cost", arguments)
            assert not answer.is_error, text_of(answer)
            quotes[model, resolution] = answer.structured_content["quote"]
    assert {key: quote["credits_total"] for key, quote in quotes.items()} == {
        ("nano-banana-2-1", "2K"): 12,
        ("nano-banana-2-1", "1K"): 4,  # unchanged, and now said to be KIE's live price
        ("seedream/5-flash-text-to-image", "1.5K"): 5,
        ("seedream/5-flash-text-to-image", "1K"): 3.24,
    }
    for key, quote in quotes.items():
        assert quote["price_source"].startswith("KIE live price list of 20"), (key, quote["price_source"])
