"""An agent that knows only what the server says gets each call right the first time: found by playing a marketer's
first hour through the MCP client (product shots, a UGC reel, a user with no key, a stale price), each a promise.

Driven through the SDK ``Client`` in both protocol eras against the simulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

from kie_mcp.catalog.live import LiveCatalog, cache_path
from kie_mcp.sandbox import SandboxTransport, Simulator
from kie_mcp.spend import quotes

from .conftest import answering, text_of

IMAGE = {"prompt": "a green ceramic mug on a wooden table", "model": "nano-banana-2"}
STALE = "Warning: this price is from"


class HeldCatalog(httpx2.AsyncBaseTransport):
    """The simulator, with KIE's model list held until ``release`` is set (a catalogue sync that is still running),
    every model schema held for good when ``schemas_held``, and the paths in ``failing`` answered with a server
    error."""

    def __init__(self, inner: SandboxTransport) -> None:
        self.inner = inner
        self.release = anyio.Event()
        self.schemas_held = False
        self.failing: set[str] = set()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/v1/models":
            await self.release.wait()
        if self.schemas_held and request.url.path.endswith("/schema"):
            await anyio.sleep_forever()
        if request.url.path in self.failing:
            return httpx2.Response(500, json={"code": 500, "msg": "internal error"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def transport(sim: Simulator) -> HeldCatalog:
    return HeldCatalog(SandboxTransport(sim))


@pytest.fixture
def old_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every price not read from KIE's list today or yesterday is old (the bundled ones always are)."""
    monkeypatch.setattr(quotes, "PRICE_MAX_AGE_DAYS", 1)


def picture(folder: Path) -> str:
    path = folder / "mug.png"
    Image.new("RGB", (320, 320), (40, 140, 60)).save(path)  # background removal takes 256-4096 px a side
    return str(path)


# -- a model that takes no prompt ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "model"),
    [("generate_image", "recraft/remove-background"), ("generate_video", "grok-imagine/image-to-video")],
)
async def test_a_model_that_takes_no_prompt_runs_with_the_prompt_left_out(
    connect, controls, transport, tmp_path, tool, model
):
    """Background removal and upscales have no prompt, image-to-video may go without: the answer said "leave it out",
    and leaving it out was refused as "prompt: required" by the generate tools, though estimate_cost took the same
    arguments."""
    transport.release.set()
    request = {"model": model, "images": [picture(tmp_path)]}
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", request)
        quote_id = estimate.structured_content["quote"]["quote_id"]
        made = await client.call_tool(tool, {**request, "quote_id": quote_id})
    assert not made.is_error, text_of(made)
    assert made.structured_content["status"] in ("completed", "submitted"), text_of(made)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("tool", ["generate_image", "generate_video"])
@pytest.mark.parametrize("prompt", [None, "", "   ", "\n\t"])
async def test_a_model_that_needs_a_prompt_says_so_when_it_is_left_out_and_sends_nothing(
    connect, controls, transport, tool, prompt
):
    """Left out, empty or only spaces: no prompt, refused by name (a blank prompt was sent, and charged)."""
    transport.release.set()
    model = "nano-banana-2" if tool == "generate_image" else "veo3_fast"
    request = {"model": model} if prompt is None else {"model": model, "prompt": prompt}
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool(tool, request)
    assert refused.is_error and "prompt" in text_of(refused), text_of(refused)
    assert await controls.creates() == []


# -- prices in words -------------------------------------------------------------------------------------------------


async def test_a_price_under_a_cent_is_never_shown_as_zero_dollars(connect, transport):
    """z-image costs 0.8 credits ($0.004): the quote and the confirmation said "about $0.00"."""
    transport.release.set()
    request = {"prompt": "a mug", "model": "z-image"}
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", request)
        asked = await client.call_tool("generate_image", request)
    for answer in (estimate, asked):
        text = text_of(answer)
        assert "(about $0.004)" in text and "$0.00)" not in text, text
    assert asked.structured_content["status"] == "confirmation_required"


def test_a_negative_amount_reads_in_dollars_and_cents():
    """A balance KIE reports below zero read "$-2e+02": every negative amount took the under-a-cent branch."""
    from kie_mcp.catalog.pricing import usd_text

    assert (usd_text(-150), usd_text(-0.5), usd_text(-0.004), usd_text(0.004)) == (
        "-$150.00",
        "-$0.50",
        "-$0.004",
        "$0.004",
    )


def test_an_absurd_amount_reads_as_beyond_any_reach_not_300_digits():
    """A balance KIE gave as 1e308 read "about $5000000000..." and some 300 digits more, though its credits were
    capped ("1,000,000,000,000,000+"); the dollars stop where the credits do, either way round."""
    from kie_mcp.catalog.pricing import usd, usd_text

    assert usd_text(usd(1e308)) == usd_text(float("inf")) == "$5,000,000,000,000+"
    assert usd_text(-usd(1e308)) == "-$5,000,000,000,000 or less"
    assert usd_text(float("nan")) == "an unknown number of dollars"
    assert usd_text(usd(10**14)) == "$500,000,000,000.00"  # below the cap, in the same thousands as at it
    assert usd_text(1250) == "$1,250.00" and usd_text(999.5) == "$999.50"


async def test_a_model_that_makes_several_images_by_default_is_listed_at_that_price(connect, transport):
    """Wan 2.7 makes 4 images per task unless told otherwise: its list line said "4.8 credits per task" and "1 image
    $0.02", a quarter of what the default request costs."""
    transport.release.set()
    async with connect() as client:
        listed = await client.call_tool("list_models", {"query": "wan 2.7 image"})
        quote = (await client.call_tool("estimate_cost", {**IMAGE, "model": "wan/2-7-image"})).structured_content
    [wan] = [m for m in listed.structured_content["models"] if m["id"] == "wan/2-7-image"]
    assert wan["price"] == "4.8 credits per image"
    assert [(p["output"], p["credits"]) for p in wan["typical"]] == [("1 image", 4.8), ("4 images", 19.2)]
    assert quote["quote"]["credits_total"] == 19.2  # what the list now shows for a default request
    assert "4 images 19.2 cr ($0.10)" in text_of(listed)


# -- no key ----------------------------------------------------------------------------------------------------------


async def test_without_a_key_the_agent_learns_before_asking_for_approval_that_nothing_can_run(
    connect, controls, transport, tmp_path
):
    """A user with no key asked for an image: the quote read like any other ("approves exactly this request"), so the
    agent asked the user to approve a spend that could not happen."""
    transport.release.set()
    async with connect(api_key=None) as client:
        instructions = client.instructions or ""
        estimate = await client.call_tool("estimate_cost", IMAGE)
    for text in (instructions, text_of(estimate)):
        assert "KIE_API_KEY is not set" in text and str(tmp_path / ".env") in text, text
    assert "nothing can be generated" in instructions
    assert text_of(estimate).index("quote_id=") < text_of(estimate).index("Nothing can be generated yet")
    assert await controls.creates() == []


async def test_with_a_key_neither_the_instructions_nor_a_quote_talk_of_a_missing_key(connect, transport):
    transport.release.set()
    async with connect() as client:
        instructions = client.instructions or ""
        estimate = await client.call_tool("estimate_cost", IMAGE)
    assert "KIE_API_KEY is not set" not in instructions + text_of(estimate)


# -- why a price is old ----------------------------------------------------------------------------------------------


def reason(answer: Any) -> str:
    found = re.search(r"this one was not refreshed: (.*?)\.\)", text_of(answer))
    assert found, text_of(answer)
    return found.group(1)


async def test_an_old_price_with_the_sync_off_says_only_that(connect, transport, old_prices):
    transport.release.set()
    async with connect() as client:  # tests' settings turn the daily sync off
        estimate = await client.call_tool("estimate_cost", IMAGE)
    assert reason(estimate) == "KIE_CATALOG_SYNC is off"


@pytest.mark.parametrize("mode", ["auto"])  # the price list's sync, not the protocol era: once
async def test_the_first_quote_while_kies_prices_are_being_read_says_so_and_the_next_is_fresh(
    connect, transport, tmp_path, old_prices
):
    """The first quote of a fresh workspace blamed KIE's list, the setting or a failing refresh, all three untrue:
    the sync was still running, and a moment later the same quote had today's price and no warning."""
    async with connect(catalog_sync=True) as client:
        first = await client.call_tool("estimate_cost", IMAGE)
        transport.release.set()
        with anyio.fail_after(30):
            while not cache_path(tmp_path).is_file():  # noqa: ASYNC110 - the server's background task writes it
                await anyio.sleep(0.05)
            while STALE in text_of(later := await client.call_tool("estimate_cost", IMAGE)):  # noqa: ASYNC110
                await anyio.sleep(0.05)
    assert reason(first).startswith("kie-mcp is reading KIE's price list right now"), reason(first)
    assert later.structured_content["quote"]["price_source"].startswith("KIE live price list of")


NO_FEED_ROW = {"prompt": "a lighthouse at dawn", "model": "bytedance/v1-lite-text-to-video"}  # a bundled price only


@pytest.mark.parametrize("tool", ["estimate_cost", "generate_video"])
async def test_an_old_price_in_a_workspace_whose_catalogue_is_fresh_never_says_kies_list_is_being_read(
    connect, controls, transport, tmp_path, old_prices, monkeypatch, tool
):
    """The audit: the server marked KIE's price list as "being read" for every check of whether a sync was due (at
    start, then every hour), before it knew one was; with a cache read today nothing is read, yet an estimate then
    said "kie-mcp is reading KIE's price list right now; estimate again in a few seconds", and the next gave another
    reason. A price KIE's list of today has no row for says that, at once after start and during every check."""
    from kie_mcp import runtime

    from .test_live_wiring import sync

    monkeypatch.setattr(runtime, "CATALOG_CHECK_EVERY", 0.05)  # the hourly check, every 50 ms
    await sync(transport.inner, controls, tmp_path)  # KIE's list and prices, read today
    seen: list[str] = []  # the server's reads of KIE's model list would wait: ``transport.release`` is never set
    async with connect(catalog_sync=True, elicitation=answering(seen=seen, action="decline")) as client:
        first = await client.call_tool(tool, NO_FEED_ROW)  # at once after start, as the first check runs
        later = []
        until = anyio.current_time() + 1.0
        while anyio.current_time() < until:  # twenty checks meanwhile
            later.append(await client.call_tool("estimate_cost", NO_FEED_ROW))
    said = [text_of(first) if tool == "estimate_cost" else seen[0]] + [text_of(answer) for answer in later]
    assert [text for text in said if "reading KIE's price list right now" in text] == []
    no_row = "not refreshed: KIE's price list has no row for this model and these settings."
    assert len(said) > 5 and all(no_row in text for text in said), said
    assert await controls.creates() == []


@pytest.mark.parametrize("tool", ["estimate_cost", "generate_image"])
async def test_the_first_quote_after_start_waits_for_kies_price_list_and_carries_the_live_price(
    connect, controls, transport, old_prices, tool
):
    """The audit: on a fresh install the first quote and the confirmation carried "Warning: this price is from
    2026-09-11 (86 days ago)", because the catalogue sync started with the server was still reading KIE's list, a
    few seconds. The first quote, an estimate's or the gate's, waits for it (a few seconds at most) and is KIE's live
    price."""
    await controls.post("config", {"catalog_limit_per_second": 0})
    await controls.post("catalog/feed", {"description": "Google nano banana 2, 1K", "credits": 10})  # bundled: 8
    transport.release.set()
    seen: list[str] = []
    async with connect(catalog_sync=True, elicitation=answering(seen=seen, action="decline")) as client:
        first = await client.call_tool(tool, IMAGE)
    if tool == "estimate_cost":
        said, quote = text_of(first), first.structured_content["quote"]
        assert quote["credits_total"] == 10 and quote["price_source"].startswith("KIE live price list of"), said
    else:
        assert len(seen) == 1 and seen[0].startswith("Spend 10 credits"), seen
        said = seen[0]
    assert STALE not in said, said
    assert await controls.creates() == []


async def test_the_first_quote_waits_for_kies_prices_not_for_the_schemas_the_sync_reads_after_them(
    connect, controls, transport, old_prices
):
    """KIE's catalogue lookups go one a second: a first sync reading the schemas of the live models the bundle lacks
    takes a second each, a minute with thirty. The prices, read first, are quoted as soon as they are in."""
    from kie_mcp.generation import FIRST_PRICES_WAIT

    from .test_live_catalog import EXTRA

    await controls.post("config", {"catalog_limit_per_second": 0})
    await controls.post("catalog/extra", EXTRA)  # a live model the bundle lacks: its schema is read after the prices
    await controls.post("catalog/feed", {"description": "Google nano banana 2, 1K", "credits": 10})  # bundled: 8
    transport.release.set()
    transport.schemas_held = True  # the sync never ends
    async with connect(catalog_sync=True) as client:
        started = anyio.current_time()
        first = await client.call_tool("estimate_cost", IMAGE)
        waited = anyio.current_time() - started
    quote = first.structured_content["quote"]
    assert quote["credits_total"] == 10 and quote["price_source"].startswith("KIE live price list of"), text_of(first)
    assert STALE not in text_of(first) and waited < FIRST_PRICES_WAIT, waited


@pytest.mark.parametrize("tool", ["estimate_cost", "generate_image"])
async def test_the_first_quote_after_kies_price_list_failed_is_not_held_and_says_it_failed(
    connect, controls, transport, old_prices, tool
):
    """KIE's price feed refused (4030, "not supported in the current region") while the sync went on to the schemas,
    a second each: every quote in that minute waited the full ``FIRST_PRICES_WAIT`` and said the list was "being
    read right now", though its read had failed. The first quote goes on as the read fails, and says it failed."""
    from kie_mcp.generation import FIRST_PRICES_WAIT

    from .test_live_catalog import EXTRA

    await controls.post("config", {"catalog_limit_per_second": 0})
    await controls.post("catalog/extra", EXTRA)  # a live model the bundle lacks: its schema is read after the prices
    await controls.post("catalog/feed", {"regionBlocked": True})
    transport.release.set()
    transport.schemas_held = True  # the sync never ends
    seen: list[str] = []
    async with connect(catalog_sync=True, elicitation=answering(seen=seen, action="decline")) as client:
        started = anyio.current_time()
        first = await client.call_tool(tool, IMAGE)
        waited = anyio.current_time() - started
    assert waited < FIRST_PRICES_WAIT * 0.8, waited
    said = text_of(first) if tool == "estimate_cost" else seen[0]
    assert "the last read of KIE's price list failed" in said and "right now" not in said, said
    assert await controls.creates() == []


async def test_the_first_quote_after_start_waits_no_longer_than_the_bound_for_a_sync_that_hangs(
    connect, transport, old_prices, monkeypatch
):
    """KIE's list never answers: the first estimate and the first question wait ``FIRST_PRICES_WAIT`` for it, no
    more, and are quoted from the bundled prices, saying that the list is being read."""
    from kie_mcp import generation

    monkeypatch.setattr(generation, "FIRST_PRICES_WAIT", 1.0)
    seen: list[str] = []
    async with connect(catalog_sync=True, elicitation=answering(seen=seen, action="decline")) as client:
        for tool in ("estimate_cost", "generate_image"):
            started = anyio.current_time()
            answer = await client.call_tool(tool, IMAGE)
            waited = anyio.current_time() - started
            assert 0.9 <= waited < 2.5, (tool, waited)
            assert not answer.is_error, text_of(answer)
    assert len(seen) == 1 and "kie-mcp is reading KIE's price list right now" in seen[0], seen


async def test_an_old_price_after_a_failed_read_of_kies_list_says_it_failed(
    connect, controls, transport, tmp_path, old_prices
):
    transport.release.set()
    await controls.fault("any", times=-1, kind="code", code=500)
    async with connect(catalog_sync=True) as client:
        with anyio.fail_after(30):
            while LiveCatalog.load(cache_path(tmp_path)).attempted_at is None:  # noqa: ASYNC110 - written by the sync
                await anyio.sleep(0.05)
            await anyio.sleep(0.1)  # the server takes the failed sync in as it saves it
        estimate = await client.call_tool("estimate_cost", IMAGE)
    assert reason(estimate).startswith("the last read of KIE's price list failed"), reason(estimate)


async def test_an_old_price_after_only_kies_price_list_failed_says_when_it_is_read_again(
    connect, transport, tmp_path, old_prices
):
    """The model list read, the price feed not: the quote promised a new read "within the hour", but the next sync
    comes with the next daily refresh (the list is fresh), so for a day the agent promised a correction that never
    came."""
    transport.release.set()
    transport.failing.add("/client/v1/model-pricing/page")
    async with connect(catalog_sync=True) as client:
        with anyio.fail_after(30):
            while LiveCatalog.load(cache_path(tmp_path)).attempted_at is None:  # noqa: ASYNC110 - written by the sync
                await anyio.sleep(0.05)
        estimate = await client.call_tool("estimate_cost", IMAGE)
    live = LiveCatalog.load(cache_path(tmp_path))
    assert live.fetched_at == live.attempted_at and live.feed_at is None  # the list was read, the feed was not
    assert reason(estimate).endswith("it is read again with the next daily refresh"), reason(estimate)


@pytest.mark.parametrize("mode", ["auto"])  # the question is asked again when its answer comes back
async def test_a_question_answered_while_kies_prices_were_read_is_asked_once(
    connect, controls, transport, tmp_path, old_prices
):
    """The audit: the form said "kie-mcp is reading KIE's price list right now"; by the time the person answered,
    the read had ended, so the question asked again with the answer read differently, the yes was dropped and the
    person was shown a second form for the same spend. A question reads as it was shown."""
    shown: list[str] = []

    async def person(context: Any, params: Any) -> Any:
        from mcp.types import ElicitResult

        shown.append(params.message)
        transport.release.set()  # KIE's list arrives while the person reads the form
        with anyio.fail_after(30):
            while not cache_path(tmp_path).is_file():  # noqa: ASYNC110 - the server's background task writes it
                await anyio.sleep(0.05)
        await anyio.sleep(0.2)  # and the server takes it in
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(catalog_sync=True, elicitation=person) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 20})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(shown) == 1 and "reading KIE's price list right now" in shown[0], shown
    assert len(await controls.creates()) == 1
