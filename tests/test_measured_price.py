"""Issue 9, item 4: a price per second of an input is measured before the quote, so the quote is exact; and only
bytes kie-mcp holds (a local file, a link upload_file made) bind it: a link's host may serve KIE other bytes."""

from __future__ import annotations

import hashlib
import io
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.types import ElicitResult
from PIL import Image

from kie_mcp.journal import Journal, journal_path
from kie_mcp.sandbox.media import clip_bytes
from kie_mcp.server import create_server

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
        estimate = (await client.call_tool("estimate_cost", remote)).structured_content
    quote = estimate["quote"]
    # KIE bills the audio's seconds, and its audio_url takes 300 s at most: 8 x 300 could be charged, over the cap
    assert quote["credits_total"] is None and quote["credits_ceiling"] == 2400
    assert estimate["within_caps"] is False and "up to 2400 credits" in estimate["cap_problem"]


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


# -- a link's length is what its host served kie-mcp, not what it serves KIE ------------------------------------

LINK_HOST = "media.cdn-example.com"


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(rate)
        sound.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


class TwoFacedHost(httpx2.AsyncBaseTransport):
    """A file host that answers kie-mcp's Range requests (how it measures a link) from a short file and a plain
    download (how KIE fetches an input) with a long one; every other request goes to the simulator."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, short: bytes, long: bytes, mime: str) -> None:
        self.inner, self.short, self.long, self.mime = inner, short, long, mime

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host != LINK_HOST:
            return await self.inner.handle_async_request(request)
        asked = request.headers.get("range", "")
        if not asked.startswith("bytes="):
            return httpx2.Response(200, content=self.long, headers={"content-type": self.mime})
        first, _, last = asked.removeprefix("bytes=").partition("-")
        start, end = int(first), min(int(last) if last else len(self.short) - 1, len(self.short) - 1)
        return httpx2.Response(
            206,
            content=self.short[start : end + 1],
            headers={"content-type": self.mime, "content-range": f"bytes {start}-{end}/{len(self.short)}"},
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def behind(settings: Any, host: TwoFacedHost, mode: str, **overrides: Any) -> AsyncIterator[Client]:
    """A server whose every fetch and KIE call goes through ``host``, and a real MCP client (no forms) on it."""
    server = create_server(replace(settings, **overrides), transport=host)
    async with Client(server, mode=mode) as client:
        yield client


async def test_a_price_measured_from_a_link_is_never_trusted_as_known(settings, transport, controls, mode):
    """The audit's swapped link: Topaz bills the seconds of the video it fetches. The host served kie-mcp 2 s (16
    credits, auto-approved under 20) and KIE 300 s, and KIE charged 2400 against a per-call cap of 600. Now the
    figure is an estimate: never auto-approved, and the caps count the whole per-call cap (Topaz documents no
    longest input)."""
    host = TwoFacedHost(transport, clip_bytes("16x9.mp4"), clip_bytes("16x9.mp4", 300), "video/mp4")
    await controls.post("prices", {"topaz/video-upscale": 8 * 300})  # what KIE bills for the 300 s it fetched
    await controls.post("clock/speed", {"speed": 0})
    upscale = {"model": "topaz/video-upscale", "options": {"video_url": f"https://{LINK_HOST}/clip.mp4"}}
    caps = {"auto_approve_credits": 20, "max_credits_per_call": 600, "max_credits_per_day": 3000}
    async with behind(settings, host, mode, **caps) as client:
        estimate = (await client.call_tool("estimate_cost", upscale)).structured_content
        unasked = await client.call_tool("generate_video", upscale)
        assert await controls.creates() == []  # never auto-approved at the 16 the link showed
        quote = estimate["quote"]["quote_id"]
        approved = await client.call_tool("generate_video", {**upscale, "quote_id": quote})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert estimate["quote"]["price_known"] is False and estimate["quote"]["credits_total"] is None
    assert estimate["quote"]["credits_measured"] == 16 and estimate["quote"]["credits_ceiling"] == 600
    assert estimate["auto_approved"] is False and "upload_file" in estimate["message"]
    assert unasked.structured_content["status"] == "confirmation_required", text_of(unasked)
    assert approved.structured_content["status"] == "submitted", text_of(approved)
    assert spent == 600  # the per-call cap, not the 16 measured, counts while KIE has not said what it charged
    assert len(await controls.creates()) == 1


async def test_only_bytes_kie_mcp_uploaded_bind_a_price_measured_from_a_link(settings, transport, controls, mode):
    """An avatar billed per second of its audio: a link (3 s when kie-mcp measures it) may be up to the 300 s its
    field takes when KIE fetches it, so 8 x 300 is what may be charged: refused over a 600 per-call cap, and reserved
    under a larger one. The same audio uploaded with upload_file is kie-mcp's own bytes: 24 credits, bound."""
    Image.new("RGB", (1200, 1200), "tan").save(settings.workspace / "face.png")
    (settings.workspace / "line.wav").write_bytes(wav_bytes(3.0))
    host = TwoFacedHost(transport, wav_bytes(3.0), wav_bytes(300.0), "audio/wav")
    linked = {
        "model": AVATAR,
        "prompt": "a friendly presenter",
        "options": {"image_url": "face.png", "audio_url": f"https://{LINK_HOST}/line.wav"},
    }
    await controls.post("clock/speed", {"speed": 0})
    async with behind(settings, host, mode, auto_approve_credits=100, max_credits_per_day=5000) as client:
        over = await client.call_tool("generate_video", linked)
    async with behind(settings, host, mode, auto_approve_credits=100, max_credits_per_call=3000) as client:
        estimate = (await client.call_tool("estimate_cost", linked)).structured_content
        unasked = await client.call_tool("generate_video", linked)
        uploaded = (await client.call_tool("upload_file", {"path": "line.wav"})).structured_content["url"]
        own = {**linked, "options": {**linked["options"], "audio_url": uploaded}}
        bound = (await client.call_tool("estimate_cost", own)).structured_content
        made = await client.call_tool("generate_video", own)
    assert over.is_error and "up to 2400 credits" in text_of(over) and "upload_file" in text_of(over)
    assert estimate["quote"]["price_known"] is False and estimate["quote"]["credits_measured"] == 24
    assert estimate["quote"]["credits_ceiling"] == 2400 and "may charge up to 2400" in estimate["message"]
    assert unasked.structured_content["status"] == "confirmation_required", text_of(unasked)
    assert bound["quote"]["price_known"] is True and bound["quote"]["credits_total"] == 24
    assert made.structured_content["status"] == "submitted", text_of(made)  # auto-approved: a known 24
    [create] = await controls.creates()
    assert create["body"]["input"]["audio_url"] == uploaded


async def test_an_uploaded_files_link_is_named_by_enough_of_its_hash_that_no_other_file_can_take_its_place(
    connect, controls, tmp_path
):
    """The gate review: an upload_file link binds a price per second (kie-mcp's own bytes), but KIE overwrites a file
    uploaded again under its name, and the name kept 40 bits of the bytes' hash: an agent that writes files found a
    1 s and a 300 s voice.wav sharing them in seconds, so the long one replaced the short one behind a link priced
    and approved at 1 s. Each upload's name now holds 128 bits of its bytes' hash: two recordings under one name get
    two links, each naming its own bytes."""
    sizes = {"a": 1.0, "b": 2.0}
    for folder, seconds in sizes.items():
        (tmp_path / folder).mkdir()
        speech(tmp_path / folder / "voice.wav", seconds)
    async with connect() as client:
        links = {
            folder: (await client.call_tool("upload_file", {"path": f"{folder}/voice.wav"})).structured_content["url"]
            for folder in sizes
        }
    assert links["a"] != links["b"]
    for folder, link in links.items():
        digest = hashlib.sha256((tmp_path / folder / "voice.wav").read_bytes()).hexdigest()
        assert f"voice-{digest[:32]}.wav" in link, link
    assert await controls.creates() == []


async def test_a_result_link_of_a_task_made_here_binds_its_price_as_the_saved_file_does(connect, controls, settings):
    """The review: "edit the clip I just made" with the link KIE gave for it was refused (HappyHorse at 720p "may
    charge up to 3360, over the per-call cap of 600"), or asked every time (Wan 2.7, 128 credits). KIE's own storage
    holds that clip and nobody else can serve KIE a longer one there, so a result link whose file kie-mcp saved for
    a task of this workspace is priced exactly, as the saved file is; the same link changed by a character is not."""
    edit = {"model": "happyhorse/video-edit", "prompt": "make it blue", "resolution": "720p", "wait_seconds": 0}
    async with connect(auto_approve_credits=300) as client:
        made = await client.call_tool("generate_video", {"model": "veo3_fast", "prompt": "a cat", "wait_seconds": 50})
        link = made.structured_content["tasks"][0]["result_urls"][0]
        [saved] = [str(path) for path in (settings.workspace / "outputs").rglob("*.mp4")]
        by_link, by_file = [
            (await client.call_tool("estimate_cost", {**edit, "options": {"video_url": src}})).structured_content
            for src in (link, saved)
        ]
        changed = await client.call_tool("estimate_cost", {**edit, "options": {"video_url": link + "?v=2"}})
        wan = {"model": "wan/2-7-videoedit", "prompt": "make it blue", "resolution": "720p", "wait_seconds": 0}
        auto = await client.call_tool("generate_video", {**wan, "options": {"video_url": link}})
    assert by_link["quote"]["price_known"] is True, by_link["message"]
    assert by_link["quote"]["credits_total"] == by_file["quote"]["credits_total"] == 448  # 56 credits/s x 8 s
    assert by_link["within_caps"] is True and by_link["quote"]["credits_measured"] is None
    assert changed.structured_content["quote"]["price_known"] is False  # another link: KIE's storage or not
    assert auto.structured_content["status"] == "submitted", text_of(auto)  # a known 128, under the 300 limit
    creates = await controls.creates()
    assert creates[-1]["body"]["input"]["video_url"] == link


async def test_the_simulated_kie_charges_a_rate_per_input_second_by_the_clip_it_was_sent(connect, controls, tmp_path):
    """The review: the simulator priced a rate per second of an input video (Kling 3.0 Omni transformation, 20
    credits a second at 720p) without measuring the clip, so 2 s, 10 s and 60 s clips were all charged its flat
    unknown price (50), and nothing kie-mcp measured and quoted was ever borne out against it. It reads the clips it
    holds as KIE bills them: 40 credits for 2 s, 200 for 10 s, as the quote said."""
    charged: list[float] = []
    quoted: list[float] = []
    for seconds in (2, 10):
        (tmp_path / f"clip{seconds}.mp4").write_bytes(clip_bytes("16x9.mp4", seconds))
        call = {
            "model": "kling-3.0-omni/transformation",
            "prompt": "x",
            "options": {"video_urls": [f"clip{seconds}.mp4"]},
        }
        before = (await controls.get("state"))["balances"]["default"]
        async with connect(auto_approve_credits=500, max_credits_per_call=500) as client:
            estimate = await client.call_tool("estimate_cost", call)
            made = await client.call_tool("generate_video", {**call, "wait_seconds": 5})
        assert made.structured_content["status"] == "completed", text_of(made)
        quoted.append(estimate.structured_content["quote"]["credits_total"])
        charged.append(before - (await controls.get("state"))["balances"]["default"])
    assert charged == quoted == [40, 200], (charged, quoted)
