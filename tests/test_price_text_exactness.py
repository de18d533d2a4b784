"""Which of KIE's price texts (a live model's ``pricingDesc``) name one exact price, as ``catalog.live.not_exact``
reads them: a text that names a floor, a ceiling, a moving price or two different figures is no exact price, so a
model priced by it is priced unknown (the caps count their per-call cap), never quoted at its first figure.

No capture of KIE's real ``pricingDesc`` texts was found (searched 2026-12-07: KIE's docs and public code name the
field, never its values); the texts below are worded as KIE's price feed and pricing page word prices
(tests/data/kie-price-feed-*.txt) and as the review of 2026-12-07 met them. When a live capture exists, its texts
belong in this table.
"""

from __future__ import annotations

import pytest

from kie_mcp.catalog.live import not_exact

EXACT = [
    "4 credits per image",
    "4 credits",
    "1 credit per image",
    "12.5 credits per video",
    "Text to image, 1K: 4 credits per image",
    "from the 2026 list: 4 credits",
    "8 credits per image, no additional fees",
    "Higher quality: 10 credits",
    "20 credits per 5 s video (up to 10 s)",
    "16:9 or 9:16, 8 credits per image",
    "",
    None,
]

NOT_EXACT = [
    "Starting from 4 credits per image; 2K and 4K outputs cost more.",
    "from 4 credits",
    "starts at 4 credits per image",
    "up to 10 credits",
    "at least 6 credits",
    "as low as 2 credits per image",
    "approx. 30 credits per video",
    "about 30 credits",
    "~30 credits",
    "4+ credits",
    "4 credits per image or more",
    "4 credits and up",
    "Price varies with resolution",
    "depending on duration",
    "4 credits per image; 4K: 16",
    "4-8 credits",
    "4 to 8 credits",
    "between 4 and 8 credits",
    "4 or 8 credits",
    "1K: 4 credits, 2K: 6 credits, 4K: 9 credits",
]


@pytest.mark.parametrize("text", EXACT)
def test_a_price_text_naming_one_figure_is_exact(text):
    assert not_exact(text) is False


@pytest.mark.parametrize("text", NOT_EXACT)
def test_a_price_text_naming_a_floor_a_ceiling_or_two_figures_is_not_exact(text):
    assert not_exact(text) is True
