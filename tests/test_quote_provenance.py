"""Issue 9, item 6: every quote says where its price comes from, in words a user trusts, and warns when old."""

from __future__ import annotations

import logging
import re
from datetime import date

import anyio

from kie_mcp.catalog.pricing import PRICE_LIST

from .conftest import answering

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


async def test_a_bundled_price_names_kie_s_price_list_and_its_date(connect, pinned_price_day):
    async with connect() as client:
        result = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    quote = result["quote"]
    assert quote["price_source"] == f"KIE price list of {quote['price_date']}"
    assert "/" not in quote["price_source"]  # no repository or file names, only what the user can trust
    assert quote["price_reference"] == "https://kie.ai/pricing"  # where to check it; provenance is in kie://models
    age = (pinned_price_day - date.fromisoformat(quote["price_date"])).days
    assert (f"({age} days ago)" in result["message"]) == (age > 30)


async def test_a_price_learned_from_a_charge_says_so(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    await controls.post("prices", {"nano-banana-2": 12})
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", IMAGE)
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
    assert quote["price_source"] == f"what KIE charged in this workspace on {date.today().isoformat()}"


async def test_an_old_price_is_flagged_in_the_confirmation_too(connect, pinned_price_day):
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        await client.call_tool("generate_image", IMAGE)
    if (pinned_price_day - date.fromisoformat(quote["price_date"])).days > 30:
        assert "Warning: this price is from" in seen[0]


def test_a_stale_price_warning_points_the_agent_to_kies_prices_and_the_user_to_the_refresh():
    """The agent cannot run a command (Claude Desktop has no shell): the warning gives it KIE's price page. It
    told the user to run `kie-mcp catalog sync` in a terminal, which a bundle user has no command for and which,
    with the key in the client's settings, fails or refreshes another workspace; the server refreshes by itself,
    so the warning says why this price was not."""
    from kie_mcp.catalog import ItemPrice
    from kie_mcp.spend.quotes import staleness

    price = ItemPrice(
        known=True, credits=8, unit="task", breakdown="8 credits", source="price-feed", source_date="2026-01-01"
    )
    warning = staleness(price, date(2026, 12, 4), "KIE_CATALOG_SYNC is off")
    assert warning.startswith("Warning: this price is from 2026-01-01")
    assert "https://kie.ai/pricing shows today's" in warning and "once a day by itself" in warning
    assert "not refreshed: KIE_CATALOG_SYNC is off." in warning and "terminal" not in warning


async def test_the_sandbox_never_warns_that_its_prices_are_old(connect, pinned_price_day):
    """The simulator charges by the bundled prices themselves, so their age says nothing in the sandbox; the
    warning was the first thing a new user's demo quote showed. Outside the sandbox the same quote warns."""
    async with connect(sandbox=True) as client:
        sandboxed = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    async with connect() as client:
        real = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    assert "Warning: this price is from" not in sandboxed["message"], sandboxed["message"]
    if (pinned_price_day - date.fromisoformat(real["quote"]["price_date"])).days > 30:
        assert "Warning: this price is from" in real["message"]


async def test_the_sandbox_names_prices_synced_from_the_simulator_as_the_simulator_s_never_kie_s(
    connect, controls, tmp_path, caplog
):
    """The audit: under --sandbox the background sync reads the simulator's price list (a copy of the bundled
    prices), and quotes then said "KIE live price list of <today>" and the log "KIE's live model list and prices were
    refreshed", as if KIE had been asked. They name the simulator."""
    from kie_mcp.catalog.live import cache_path

    await controls.post("config", {"catalog_limit_per_second": 0})
    with caplog.at_level(logging.INFO, logger="kie_mcp"):
        async with connect(sandbox=True, catalog_sync=True) as client:
            with anyio.fail_after(30):
                while not cache_path(tmp_path).is_file():  # noqa: ASYNC110 - the server's background task writes it
                    await anyio.sleep(0.05)
                while (quote := await estimate(client))["price_source"].startswith(PRICE_LIST):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
    assert quote["price_source"] == (
        f"the simulator's price list of {quote['price_date']} (a copy of the KIE prices kie-mcp ships)"
    ), quote
    assert "KIE live" not in quote["price_source"]
    said = [record.getMessage() for record in caplog.records if record.name == "kie_mcp.runtime"]
    assert any(line.startswith("The simulator's model list and prices") for line in said), said
    assert not any("KIE's live" in line for line in said), said


async def estimate(client) -> dict:
    return (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]


def test_a_figure_of_credits_reads_as_what_it_is_at_either_extreme():
    """The review: a figure of minus a million billion or less read "-1,000,000,000,000,000+" (more than minus
    that), and a tiny negative one "-less than 0.000001"; a figure is never e-notation nor float noise either way."""
    from kie_mcp.catalog.pricing import credits_figure

    assert credits_figure(-float("inf")) == credits_figure(-1e300) == "-1,000,000,000,000,000 or less"
    assert credits_figure(-1e-9) == "more than -0.000001" and credits_figure(-0.5) == "-0.5"
    assert credits_figure(1e300) == "1,000,000,000,000,000+" and credits_figure(0.00001) == "0.00001"


def test_a_price_or_charge_is_never_written_in_e_notation():
    """A price, a charge and what the caps count are written as every other figure of credits: a price of a
    million credits read "1e+06" and a hundred-thousandth "1e-05" where a quote said what KIE was seen charging
    and where a task's charge was part measured."""
    from kie_mcp.catalog.pricing import CATALOGUE_FLOOR, ItemPrice
    from kie_mcp.spend.quotes import seen_charging
    from kie_mcp.tasks.records import charged_text

    seen = ItemPrice(known=True, credits=0.00001, unit="task", breakdown="", up_to=1_000_000.0, up_to_date="2026-12-01")
    floored = seen.model_copy(update={"up_to_source": CATALOGUE_FLOOR})
    for said in (seen_charging(seen, 1), seen_charging(floored, 2)):
        assert said is not None and not re.search(r"\de[+-]\d", said)
        assert "0.00001" in said and "1000000" in said
    assert "2000000" in (seen_charging(floored, 2) or "")
    charged = charged_text(1_000_000.5, 0.5)
    assert "1000000 charged by KIE" in charged and not re.search(r"\de[+-]\d", charged)
