"""Caps hold whether or not the price is known, and a listed price KIE was seen to exceed is no exception.

KIE's price list says 30 credits for a 720p Veo 3.1 Lite clip, but a live test on 2026-09-28 was charged 60 (the
catalogue's ``up_to``, with its source). Veo never reports its charge, so what the caps count is all the ledger
knows: counting the list price, three clips KIE charged 180 for read "spent today: 90" and a 100-credit daily cap
was never hit (audit s21). The quote still shows the list price; its text and the confirmation say the higher
figure, and the caps, the auto-approve limit and today's spend count it.

Everything goes through the real MCP client in both protocol eras and the simulator's HTTP interface.
"""

from __future__ import annotations

from .conftest import answering, text_of

LITE = {"model": "veo3_lite", "prompt": "A woman talks to her phone camera.", "aspect_ratio": "9:16"}
SEEN = "KIE's list says 30; KIE was seen charging 60 (2026-09-28): up to 60 is counted against your caps."


async def spent_today(client) -> float:
    return (await client.call_tool("check_credits", {})).structured_content["spent_today"]


async def test_a_price_kie_was_seen_to_exceed_counts_its_higher_figure_against_the_caps(connect, controls):
    await controls.post("prices", {"veo3_lite": 60})  # KIE charges what the field test saw, and never says so
    async with connect(elicitation=answering(), max_credits_per_day=100) as client:
        first = await client.call_tool("generate_video", {**LITE, "wait_seconds": 20})
        assert first.structured_content["status"] == "completed", text_of(first)
        spent = await spent_today(client)
        task_id = first.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id})
        second = await client.call_tool("generate_video", {**LITE, "prompt": "A second take.", "wait_seconds": 20})
    assert spent == 60  # not the 30 listed: KIE reported no charge, so the higher figure stays counted
    assert "30 credits quoted; 60 counted" in text_of(checked)
    assert second.is_error  # 60 more would pass the daily cap of 100
    assert "60 counted" in text_of(second) and "only 40 of today's cap of 100" in text_of(second)
    assert len(await controls.creates()) == 1


async def test_the_per_call_cap_weighs_the_higher_figure_a_price_was_seen_at(connect, controls):
    async with connect(elicitation=answering(), max_credits_per_call=50) as client:
        estimate = await client.call_tool("estimate_cost", LITE)
        refused = await client.call_tool("generate_video", LITE)
    assert estimate.structured_content["within_caps"] is False
    assert refused.is_error and "over the per-call cap of 50" in text_of(refused)
    assert await controls.creates() == []


async def test_a_price_kie_was_seen_to_exceed_is_said_in_the_estimate_and_the_confirmation(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        estimate = await client.call_tool("estimate_cost", LITE)
        made = await client.call_tool("generate_video", LITE)
    quote = estimate.structured_content["quote"]
    assert quote["credits_total"] == 30 and quote["credits_counted"] == 60  # the list price is still what is shown
    assert SEEN in text_of(estimate)
    # the figure approved is the one that counts (KIE took 60 for it); the list's 30 is said beside it
    assert SEEN in seen[0] and seen[0].startswith("Spend up to 60 credits (about $0.30)"), seen
    assert "30 credits quoted; 60 reserved" in text_of(made)


async def test_a_price_kie_was_seen_to_exceed_is_auto_approved_only_under_its_higher_figure(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=50) as client:
        estimate = await client.call_tool("estimate_cost", LITE)
        await client.call_tool("generate_video", LITE)  # 30 listed, 60 seen: over 50, so the person is asked
    assert estimate.structured_content["auto_approved"] is False
    assert len(seen) == 1


async def test_the_estimate_text_says_the_price_note_and_what_is_left_of_today_s_cap(connect, controls):
    async with connect(elicitation=answering(), max_credits_per_day=1000, max_credits_per_call=500) as client:
        await client.call_tool("generate_video", {**LITE, "prompt": "A first take.", "wait_seconds": 20})
        estimate = await client.call_tool("estimate_cost", {**LITE, "resolution": "1080p"})
    text = text_of(estimate)
    note = estimate.structured_content["quote"]["note"]
    assert note and note.rstrip(".") in text  # every price note, not only the structured one
    assert "Spent today: 60 credits; 940 left of the 1000 per day (per call at most 500)." in text
    assert "counted against your caps" not in text.replace(note, "")  # no charge above 35 was seen at 1080p
    assert estimate.structured_content["quote"]["credits_counted"] is None


async def test_a_kept_balance_is_read_again_when_close_to_the_higher_figure_a_price_was_seen_at(connect, controls):
    """A balance kept from a read seconds ago is trusted when it covers the spend twice over. Weighed against the
    list price (30), a kept 100 was trusted for a clip KIE was seen charging 60, so a balance spent elsewhere since
    was not seen and the create went to KIE."""
    await controls.post("balance", {"credits": 100})
    async with connect(elicitation=answering()) as client:
        estimate = await client.call_tool("estimate_cost", LITE)
        assert estimate.structured_content["balance_credits"] == 100
        await controls.post("balance", {"credits": 20})  # spent elsewhere since
        refused = await client.call_tool("generate_video", LITE)
    assert refused.is_error
    assert "has 20 credits" in text_of(refused) and "needs 30" in text_of(refused)
    assert await controls.creates() == []


async def test_the_estimate_says_when_the_balance_covers_the_list_price_but_not_the_charge_seen(connect, controls):
    await controls.post("balance", {"credits": 45})
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", LITE)
    text = text_of(estimate)
    assert (
        "The balance (45 credits) covers KIE's list price but not the 60 counted (KIE was seen charging that much)"
        in text
    )
    assert "too low for this request" not in text


# MiniMax H3 image to video: KIE's docs as captured 2026-09-24 price it "8/s, 13/s (+4/image input)", while other
# integrations count some input images free. The quote stays the documented rate; the caps count 4 more per frame.
H3 = {"model": "minimax-h3/image-to-video", "prompt": "A cat walks.", "resolution": "768P", "duration": 5}
FRAME = "https://example.com/first.png"
H3_WHY = "KIE's docs as captured 2026-09-24 add 4 credits per input image, which other integrations count as free"


async def test_minimax_h3_image_to_video_is_quoted_at_its_rate_and_counts_4_credits_more_per_frame(connect):
    async with connect() as client:
        one = await client.call_tool("estimate_cost", {**H3, "images": [FRAME]})
        two = await client.call_tool("estimate_cost", {**H3, "images": [FRAME, "https://example.com/last.png"]})
    for answer, counted in ((one, 44), (two, 48)):
        quote = answer.structured_content["quote"]
        assert (quote["credits_total"], quote["credits_counted"]) == (40, counted), text_of(answer)
        assert f"KIE's list says 40; {H3_WHY}: up to {counted} is counted against your caps." in text_of(answer)


async def test_minimax_h3_frames_count_against_the_auto_approve_limit_and_the_per_call_cap(connect, controls):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen), auto_approve_credits=42) as client:
        estimate = await client.call_tool("estimate_cost", {**H3, "images": [FRAME]})
        await client.call_tool("generate_video", {**H3, "images": [FRAME]})  # 40 listed, 44 counted: asked
    assert estimate.structured_content["auto_approved"] is False
    assert len(seen) == 1 and H3_WHY in seen[0], seen
    async with connect(elicitation=answering(), max_credits_per_call=42) as client:
        refused = await client.call_tool("generate_video", {**H3, "images": [FRAME]})
    assert refused.is_error and "over the per-call cap of 42" in text_of(refused), text_of(refused)
    assert len(await controls.creates()) == 1  # the one the person approved


async def test_a_price_note_says_a_price_was_charged_on_a_date_without_an_internal_label(connect):
    """The journey: veo3_fast's estimate said "Price note: Per clip, whatever its length. Measured 60 credits per
    720p clip for both 4 s and 8 s (field note F-3, 2026-09-28)": "field note F-3" is the catalogue's own label for
    a source, which tells a user nothing. The note says what it is, a real request charged that price on that day,
    and no price note of any model carries such a label."""
    import json
    import re

    async with connect() as client:
        estimate = text_of(await client.call_tool("estimate_cost", {"model": "veo3_fast", "prompt": "A red kite."}))
        models = json.loads((await client.read_resource("kie://models.json")).contents[0].text)["models"]
    said = "real 720p clips of 4 s and of 8 s were each charged 60 credits on 2026-09-28"
    assert f"Price note: Per clip, whatever its length: {said}." in estimate, estimate
    label = re.compile(r"field note|\bF-\d")
    notes = {m["id"]: m["price"]["note"] for m in models if (m.get("price") or {}).get("note")}
    assert len(notes) > 10 and {model: note for model, note in notes.items() if label.search(note)} == {}
