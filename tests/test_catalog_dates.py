"""A source's date is the date of what it captures, never the day a copy of it was read.

The catalogue audit of 2026-12-06 found about ninety sources citing the Chinese copy of KIE's docs in henjicc/Henji-AI
(docs/api/KIE, every file of it committed 2026-06-30) dated 2026-08-21 (the repository's last commit) or 2026-12-05
(the day it was read), copies of no known date dated by the day they were read, and Seedance 2 Fast's and Mini's
prices, KIE's list of 2026-06-30, dated 2026-10-04: the staleness warning told users a price was newer than it was.
A source now has ``date`` (the capture) and ``read`` (the day it was read); an undated copy has only ``read``, and a
price from it is quoted as undated. The audit also found Wan prices below what their own sources say and Seedance 2
Fast's note calling an offer ended that KIE's price page still showed three days later.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from pydantic import ValidationError

from kie_mcp.catalog import load_catalog, price_input
from kie_mcp.catalog.spec import Source
from kie_mcp.spend.quotes import provenance, staleness

from .conftest import eras_in_turn, text_of

CATALOG = load_catalog()
# Copies of KIE's pages whose capture date is known, by how a source names them: a source citing one is dated no
# later than it, unless its text names a later capture of its own (a feed captured 2026-09-24, a page seen 2026-10-07).
KNOWN_COPIES = {
    "henjicc/Henji-AI docs/api/KIE": "2026-06-30",  # every file last committed 2026-06-30 (a4cc65b6, bbc031aa)
    "hassanvfx/kie-api-python": "2026-04-29",  # docs/kie-ai/manifest.json: downloaded_at 2026-04-29
}
DAY = re.compile(r"\b20\d\d-\d\d-\d\d\b")
READ_DAY = re.compile(r"\bread (?:on )?(20\d\d-\d\d-\d\d)\b", re.IGNORECASE)  # when a copy was read, not captured
UNDATED = re.compile(r"\bundated\b|capture dates? (?:is |are )?not known|stored cop(?:y|ies)|unknown date", re.I)
TODAY = date(2026, 12, 6)


def sources() -> dict[tuple[str, str], Source]:
    """Every source of the bundled data, once (a file's sources are shared by its models)."""
    return {(key, source.ref): source for spec in CATALOG for key, source in spec.sources.items()}


def captures_named(ref: str) -> set[str]:
    """The days ``ref`` names, less those it names as the day a copy was read."""
    return set(DAY.findall(ref)) - set(READ_DAY.findall(ref))


def test_a_source_citing_a_dated_copy_is_dated_no_later_than_that_copy_unless_it_names_a_later_capture():
    wrong = []
    for (key, ref), source in sources().items():
        cited = [day for name, day in KNOWN_COPIES.items() if name in ref]
        if cited and source.date and source.date > max(cited) and source.date not in captures_named(ref):
            wrong.append((key, source.date, max(cited)))
    assert wrong == []


def test_the_henji_copy_is_named_by_its_path_so_every_citation_of_it_is_checked():
    """The repository also holds a client's code (src/models/kie), dated by its own commits; its docs copy is always
    named by docs/api/KIE, so the rule above sees every source that cites it."""
    loose = [
        (key, mention)
        for (key, ref), _ in sources().items()
        for mention in re.findall(r"henjicc/Henji-AI (\S+)", ref)
        if not mention.startswith(("docs/api/KIE", "src/models/kie/"))
    ]
    assert loose == []


def test_a_source_whose_copy_is_undated_says_the_day_it_was_read():
    missing = [key for (key, ref), source in sources().items() if UNDATED.search(ref) and source.read is None]
    assert missing == []


def test_every_source_is_dated_by_calendar_days_none_of_them_in_the_future():
    for (key, _), source in sources().items():
        for day in (source.date, source.read):
            if day is not None:
                assert date.fromisoformat(day) <= date.today(), (key, day)


def test_a_source_needs_a_date_or_the_day_it_was_read_and_is_never_read_before_it_was_captured():
    with pytest.raises(ValidationError):
        Source(kind="documented", ref="a copy of a page")
    with pytest.raises(ValidationError):
        Source(kind="documented", ref="a copy of a page", date="2026-06-30", read="2026-06-01")
    assert Source(kind="documented", ref="a copy of unknown date", read="2026-12-05").date is None


@pytest.mark.parametrize(
    ("known", "said", "warned"),
    [
        ({"read": "2026-12-05"}, "KIE price list of an unknown date", "Warning: this price is undated"),
        (
            {"date": "2026-06-30", "read": "2026-12-05"},
            "KIE price list of 2026-06-30",
            "Warning: this price is from 2026-06-30 (159 days ago)",
        ),
    ],
)
def test_a_price_is_quoted_as_of_its_capture_never_as_of_the_day_it_was_read(known, said, warned):
    spec = CATALOG.get("z-image")
    table = spec.price.source
    sources = {**spec.sources, table: Source(kind="documented", ref="KIE's price list, a copy", **known)}
    price = price_input(spec.model_copy(update={"sources": sources}), {"prompt": "a red apple", "aspect_ratio": "1:1"})
    assert price.known and price.source_date == known.get("date")
    assert provenance(price) == said
    assert staleness(price, TODAY, "KIE_CATALOG_SYNC is off").startswith(warned)


async def test_seedance_2_fast_is_quoted_at_the_higher_list_of_2026_06_30_and_dated_so(connect):
    async with connect() as client:
        answer = await client.call_tool(
            "estimate_cost",
            {"model": "bytedance/seedance-2-fast", "prompt": "a paper boat", "resolution": "480p", "duration": 5},
        )
    quote = answer.structured_content["quote"]
    assert quote["credits_total"] == 77.5  # 15.5 credits/s, never the 11.8 KIE's page showed on 2026-10-10
    assert quote["price_date"] == "2026-06-30" and quote["price_source"] == "KIE price list of 2026-06-30"
    assert "KIE's price page showed lower ones on 2026-10-10 (11.8 / 24.8 credits/s)" in text_of(answer)
    assert "ended" not in quote["note"]


@pytest.mark.parametrize(
    ("arguments", "credits"),
    [
        ({"model": "wan/3-0-video-prime", "resolution": "480P", "duration": 5}, 61.2),  # $0.0612/s: 12.24, not 12.2
        (
            {
                "model": "wan/2-6-image-to-video",
                "resolution": "1080p",
                "duration": 10,
                "images": ["https://x.io/a.png"],
            },
            210,  # $1.05 on kie.ai/pricing 2026-10-10, above the feed's 209.5
        ),
    ],
)
async def test_where_kies_prices_disagree_the_higher_is_quoted_with_a_note(connect, arguments, credits):
    async with connect() as client:
        answer = await client.call_tool("estimate_cost", {"prompt": "a lighthouse at dusk", **arguments})
    assert not answer.is_error, text_of(answer)
    quote = answer.structured_content["quote"]
    assert quote["credits_total"] == pytest.approx(credits)
    assert "the higher of" in quote["note"] and "2026-10-10" in quote["note"]


SEEDANCE_LITE = {  # KIE's own Lite text of 2026-10-06: 2 / 4.5 / 10 credits a second at 480p / 720p / 1080p
    ("5", "480p"): 10,
    ("5", "720p"): 22.5,
    ("5", "1080p"): 50,
    ("10", "480p"): 20,
    ("10", "720p"): 45,
    ("10", "1080p"): 100,
}


@eras_in_turn("model", ["bytedance/v1-lite-text-to-video", "bytedance/v1-lite-image-to-video"])
async def test_seedance_1_lite_is_quoted_per_second_at_kies_own_lite_text_not_at_pros_prices(connect, model):
    """The audit of 2026-12-06 had Lite quoted at the higher of the two Lite rows of KIE's 2025-12-21 snapshot, 14 /
    30 / 70 credits per 5 s. Those are Seedance 1.0 Pro's prices: KIE's own model list of 2026-10-06 gives Lite 2 /
    4.5 / 10 credits a second (Pro 2.8 / 6 / 14), the snapshot's other Lite row. The audit of 2026-12-07 read it, and
    a Lite clip is now quoted at Lite's price, dated by that text."""
    images = ["https://x.io/a.png"] if "image-to-video" in model else []
    async with connect() as client:
        for (duration, resolution), credits in SEEDANCE_LITE.items():
            arguments = {"model": model, "prompt": "a paper boat", "images": images, "resolution": resolution}
            answer = await client.call_tool("estimate_cost", {**arguments, "duration": int(duration)})
            quote = answer.structured_content["quote"]
            assert quote["credits_total"] == credits, (duration, resolution, text_of(answer))
    assert quote["price_source"] == "KIE price list of 2026-10-06"
    assert "Pro's rates" in quote["note"] and "14 / 30 / 70" in quote["note"]


async def test_gpt_4o_image_says_kie_now_calls_its_endpoint_the_old_version(connect):
    async with connect() as client:
        listed = await client.call_tool("list_models", {"query": "4o"})
        answer = await client.call_tool("estimate_cost", {"model": "gpt-4o-image", "prompt": "a red apple"})
    assert "KIE's docs now list as the old version" in text_of(listed)
    assert "docs.kie.ai/old-model/4o-image-api/" in answer.structured_content["quote"]["note"]
    fallback = CATALOG.get("gpt-4o-image").fields["fallbackModel"]
    assert "OpenAI has retired" in fallback.note and "FLUX_MAX" in fallback.note
    assert "2026-10-23" in CATALOG.get("gpt-4o-image").source_of(fallback.source).ref
