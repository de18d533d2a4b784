"""Issue 9, item 4: a price per second of an input is measured before the quote, so the quote is exact."""

from __future__ import annotations

import hashlib
import wave

import pytest
from mcp.types import ElicitResult
from PIL import Image

from kie_mcp.journal import Journal, journal_path

from .conftest import answering, text_of

AVATAR = "kling/ai-avatar-standard"  # 8 credits per second of the input audio


def speech(path, seconds: float, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))


def request(tmp_path, seconds: float) -> dict:
    Image.new("RGB", (1200, 1200), "tan").save(tmp_path / "face.png")
    speech(tmp_path / "line.wav", seconds)
    return {
        "model": AVATAR,
        "prompt": "a friendly presenter",
        "options": {"image_url": "face.png", "audio_url": "line.wav"},
    }


async def test_a_lip_sync_quote_is_exact_once_its_audio_is_measured(connect, controls, tmp_path):
    seen: list[str] = []
    async with connect(elicitation=answering(seen=seen)) as client:
        estimate = await client.call_tool("estimate_cost", request(tmp_path, 3.0))
        result = await client.call_tool("generate_video", request(tmp_path, 3.0))
    quote = estimate.structured_content["quote"]
    assert quote["price_known"] and quote["credits_total"] == 24  # 8 credits/s x 3.0 s
    assert "measured" in quote["breakdown"]
    assert "24 credits" in seen[0] and "UNKNOWN" not in seen[0]
    assert result.structured_content["status"] in ("submitted", "completed"), text_of(result)


async def test_a_quote_for_one_length_does_not_approve_another(connect, controls, tmp_path):
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", request(tmp_path, 3.0))).structured_content["quote"]
        longer = {**request(tmp_path, 9.0), "quote_id": quote["quote_id"]}  # same file names, longer audio
        result = await client.call_tool("generate_video", longer)
    assert result.structured_content["status"] == "confirmation_required"
    assert result.structured_content["quote"]["credits_total"] == 72
    assert await controls.creates() == []


async def test_an_input_that_cannot_be_measured_leaves_the_price_unknown(connect, controls, tmp_path):
    Image.new("RGB", (1200, 1200), "tan").save(tmp_path / "face.png")
    remote = {
        "model": AVATAR,
        "prompt": "a friendly presenter",
        "options": {"image_url": "face.png", "audio_url": "https://example.com/unreachable.wav"},
    }
    async with connect() as client:
        quote = (await client.call_tool("estimate_cost", remote)).structured_content["quote"]
    assert quote["credits_total"] is None and quote["credits_ceiling"] == 600


async def test_an_input_replaced_while_the_user_reads_the_question_is_not_sent(connect, controls, sim, tmp_path, mode):
    """The handshake era asks inside the call, after the inputs were hashed and priced: a file replaced (same
    name and type, other content) before the user answers is refused, never uploaded as the approved one."""
    if mode != "legacy":
        pytest.skip("the 2026-07-28 era re-plans (and re-prices) the request when the answer comes back")
    asked = request(tmp_path, 3.0)
    priced = hashlib.sha256((tmp_path / "line.wav").read_bytes()).hexdigest()

    async def replace_then_accept(context, params):  # an agent's file tool rewrites it while the question is open
        speech(tmp_path / "line.wav", 60.0)  # 480 credits at KIE's 8 per second; 24 were approved
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(elicitation=replace_then_accept, max_credits_per_call=100) as client:
        result = await client.call_tool("generate_video", asked)
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert "changed since it was priced" in text_of(result)
    assert await controls.creates() == []
    assert not [u for u in sim.uploads.values() if u.mime.startswith("audio")]  # nothing of it reached KIE
    assert spent == 0  # the reservation was returned
    journal = Journal(journal_path(tmp_path))
    try:
        assert journal.live_upload(priced, 3600) is None  # the priced bytes' hash names no other file's upload
    finally:
        journal.close()
