"""Issue 9, item 6: every quote says where its price comes from, in words a user trusts, and warns when old."""

from __future__ import annotations

from datetime import date

from .conftest import answering

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


async def test_a_bundled_price_names_kie_s_price_list_and_its_date(connect):
    async with connect() as client:
        result = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    quote = result["quote"]
    assert quote["price_source"] == f"KIE price list of {quote['price_date']}"
    assert "/" not in quote["price_source"]  # no repository or file names, only what the user can trust
    assert quote["price_reference"] == "https://kie.ai/pricing"  # where to check it; provenance is in kie://models
    age = (date.today() - date.fromisoformat(quote["price_date"])).days
    assert (f"({age} days ago)" in result["message"]) == (age > 30)


async def test_a_price_learned_from_a_charge_says_so(connect, controls):
    await controls.post("prices", {"nano-banana-2": 12})
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", IMAGE)
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
    assert quote["price_source"] == f"what KIE charged in this workspace on {date.today().isoformat()}"


async def test_an_old_price_is_flagged_in_the_confirmation_too(connect):
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as client:
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]
        await client.call_tool("generate_image", IMAGE)
    if (date.today() - date.fromisoformat(quote["price_date"])).days > 30:
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


async def test_the_sandbox_never_warns_that_its_prices_are_old(connect):
    """The simulator charges by the bundled prices themselves, so their age says nothing in the sandbox; the
    warning was the first thing a new user's demo quote showed. Outside the sandbox the same quote warns."""
    async with connect(sandbox=True) as client:
        sandboxed = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    async with connect() as client:
        real = (await client.call_tool("estimate_cost", IMAGE)).structured_content
    assert "Warning: this price is from" not in sandboxed["message"], sandboxed["message"]
    if (date.today() - date.fromisoformat(real["quote"]["price_date"])).days > 30:
        assert "Warning: this price is from" in real["message"]
