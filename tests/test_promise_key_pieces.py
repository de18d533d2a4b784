"""Promise: the KIE key leaves in no input link and no upload when it is cut in two or written in dashed groups, and
no file name reads as something else in a question about spending; each kept against the simulator through the real
MCP client in both protocol eras (``sim.requests`` and ``sim.uploads`` show what reached KIE and its file host):

- an input link holding half the key, or the key in dashed groups (a dash written ``%2D`` too), is refused with an
  error saying so, never repeating it; nothing is fetched (a free estimate of a per-second model does not measure
  it), uploaded, asked or created; a link holding 32 hex digits that are not the key is sent as it is;
- a picture whose bytes hold 16 of the key's characters in a row, or the key in dashed groups, is never uploaded; a
  picture holding a run of hex digits that is not the key's is uploaded as it is;
- a right-to-left override in a file name is shown escaped (``\\u202e``) in estimate_cost's answer and in the
  confirmation question; a name in Arabic letters is shown as it is.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from mcp import Client
from PIL import Image, PngImagePlugin
from pydantic import SecretStr

from kie_mcp.server import create_server

from .conftest import API, answering, text_of

KEY = "3f9a1c2b7d8e4f60a1b2c3d4e5f60718"  # shaped as KIE's keys are: 32 hex digits
DASHED = "-".join(KEY[at : at + 8] for at in range(0, 32, 8))  # 3f9a1c2b-7d8e4f60-a1b2c3d4-e5f60718
NOT_THE_KEY = "0123456789abcdef0123456789abcdef"
AVATAR = "kling/ai-avatar-standard"  # priced per second of its input audio: an estimate measures the audio link
IMAGE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table", "wait_seconds": 0}
HOLDS_KEY = "holds the KIE API key"


@pytest.fixture
def keyed(settings, transport, controls, mode):
    """``async with keyed() as client``: a server holding ``KEY`` (the simulator knows it)."""

    @asynccontextmanager
    async def opener(elicitation: Any = None) -> AsyncIterator[Client]:
        await controls.post("keys", {"key": KEY})
        server = create_server(replace(settings, api_key=SecretStr(KEY)), transport=transport)
        async with Client(server, mode=mode, elicitation_callback=elicitation) as client:
            yield client

    return opener


def _never_shown(text: str) -> None:
    assert KEY[:16] not in text and KEY[16:] not in text and DASHED not in text, text


def _creates(sim) -> list[Any]:
    return [r for r in sim.requests if r.method == "POST" and r.path.endswith("createTask")]


@pytest.mark.parametrize(
    "link",
    [
        f"https://collector.example/p/{KEY[:16]}.png",
        f"https://collector.example/q/{KEY[16:]}.png",
        f"https://collector.example/{DASHED}.png",
        f"https://collector.example/{KEY[:16]}%2D{KEY[16:]}.png",
    ],
    ids=["first-half", "second-half", "dashed", "percent-encoded-dash"],
)
async def test_an_input_link_holding_half_the_key_or_the_key_dashed_is_refused_and_never_fetched_or_sent(
    keyed, sim, link
):
    """The audit: each half of the key passed the link check (only the whole key was looked for), so two cheap
    creates handed KIE (and the host it fetches from) all of it; the dashed key passed too, and a free estimate of
    a per-second model made kie-mcp fetch such a link itself to measure it."""
    asked: list[str] = []
    audio = link.removesuffix(".png") + ".mp3"
    async with keyed(answering(seen=asked)) as client:
        created = await client.call_tool("generate_image", {**IMAGE, "images": [link]})
        options = {"image_url": "https://example.com/face.png", "audio_url": audio}
        estimated = await client.call_tool("estimate_cost", {"model": AVATAR, "prompt": "hi", "options": options})
    for result, field in ((created, "images[0]"), (estimated, "audio_url")):
        assert result.is_error, text_of(result)
        assert HOLDS_KEY in text_of(result) and field in text_of(result), text_of(result)
        _never_shown(text_of(result))
    assert not [r for r in sim.requests if r.host == "collector.example"]  # never fetched to be measured
    assert _creates(sim) == [] and sim.uploads == {} and asked == []


async def test_links_holding_hex_that_is_not_the_key_are_measured_and_sent_as_they_are(keyed, sim):
    """The other side: 32 hex digits in a link (a content hash, a task id) are not the key's pieces."""
    link = f"https://collector.example/p/{NOT_THE_KEY}.png"
    audio = f"{API}/files/{NOT_THE_KEY[:8]}-{NOT_THE_KEY[8:16]}/voice.mp3"
    async with keyed(answering()) as client:
        created = await client.call_tool("generate_image", {**IMAGE, "images": [link]})
        options = {"image_url": "https://example.com/face.png", "audio_url": audio}
        await client.call_tool("estimate_cost", {"model": AVATAR, "prompt": "hi", "options": options})
    assert not created.is_error, text_of(created)
    [create] = _creates(sim)
    assert create.body["input"]["image_input"] == [link]
    assert [r for r in sim.requests if r.method == "GET" and r.path.endswith("/voice.mp3")]  # measured


def _png(text: str) -> bytes:
    """A picture carrying ``text`` in a PNG text chunk (as a tool writes its settings)."""
    info, buffer = PngImagePlugin.PngInfo(), io.BytesIO()
    info.add_text("Comment", text)
    Image.new("RGB", (640, 640), (30, 90, 200)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "text",
    [f"made with {KEY[7:23]}", f"key {DASHED}", f"key {KEY[:16]}\n{KEY[16:]}"],
    ids=["sixteen-in-a-row", "dashed", "broken-over-two-lines"],
)
async def test_a_picture_holding_sixteen_of_the_keys_characters_in_a_row_is_never_uploaded(keyed, sim, tmp_path, text):
    """The audit: upload_file published PNGs whose bytes held the key in dashed groups or 16 of its characters in
    a row: only the whole key was looked for in a file's bytes. KIE's file host shows an upload to anyone."""
    (tmp_path / "photo.png").write_bytes(_png(text))
    async with keyed(answering()) as client:
        uploaded = await client.call_tool("upload_file", {"path": "photo.png"})
        generated = await client.call_tool("generate_image", {**IMAGE, "images": ["photo.png"]})
    for result in (uploaded, generated):
        assert result.is_error and f"photo.png {HOLDS_KEY}" in text_of(result), text_of(result)
        _never_shown(text_of(result))
    assert sim.uploads == {} and _creates(sim) == []


async def test_a_picture_holding_hex_that_is_not_the_keys_is_uploaded_as_it_is(keyed, sim, tmp_path):
    content = _png(f"document id {NOT_THE_KEY} {NOT_THE_KEY[:8]}-{NOT_THE_KEY[8:12]}-{KEY[:15]}")
    (tmp_path / "photo.png").write_bytes(content)
    async with keyed() as client:
        uploaded = await client.call_tool("upload_file", {"path": "photo.png"})
    assert not uploaded.is_error, text_of(uploaded)
    assert [item.data for item in sim.uploads.values()] == [content]


async def test_a_right_to_left_override_in_a_file_name_is_shown_escaped_before_anything_is_spent(keyed, tmp_path):
    """The audit: ``nice\\u202egnp.exe.png`` was shown with the override itself, which turns the rest of the line
    around as it is displayed: a file named to read as something else, in the question that approves the spend."""
    (tmp_path / "references").mkdir()
    names = ["invoice\u202egnp.exe.png", "قهوة باردة.png"]  # an override; Arabic letters, shown as they are
    for name in names:
        Image.new("RGB", (1200, 900), (200, 30, 30)).save(tmp_path / "references" / name, format="PNG")
    asked: list[str] = []
    arguments = {**IMAGE, "images": [f"references/{name}" for name in names]}
    async with keyed(answering(seen=asked)) as client:
        estimated = await client.call_tool("estimate_cost", arguments)
        generated = await client.call_tool("generate_image", arguments)
    assert not estimated.is_error and not generated.is_error, text_of(estimated) + text_of(generated)
    [question] = asked
    for shown in (text_of(estimated), estimated.structured_content["message"], question):
        assert "\u202e" not in shown, shown
        assert "references/invoice\\u202egnp.exe.png" in shown and "references/قهوة باردة.png" in shown, shown
