"""Promise: the KIE key never leaves in what a workflow or a resource read answers: the plan a workflow writes and
every error, whatever it names (a prompt's or argument's name, a bad count, model or ratio, a resource URI), show
``[redacted]`` where the key was, as every tool's answer does (``server._answered_without_secrets``)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from urllib.parse import quote, quote_plus

import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS
from pydantic import SecretStr

from kie_mcp.server import create_server

from .conftest import not_found_code, text_of

KEY = "kie-live-key-3f9a2c7e1b8d4a60"


def leaks(text: str) -> bool:
    return KEY in text or KEY[:16] in text


def said(refused: MCPError) -> str:
    """Everything an error answer carries: its message and its data."""
    return json.dumps(refused.error.model_dump(mode="json"))


@pytest.fixture
def keyed(settings, transport, controls, mode):
    """``async with keyed() as client``: a server holding ``KEY`` (the simulator knows it), its runtime open as
    after the first call."""

    @asynccontextmanager
    async def opener() -> AsyncIterator[Client]:
        await controls.post("keys", {"key": KEY})
        server = create_server(replace(settings, api_key=SecretStr(KEY)), transport=transport)
        async with Client(server, mode=mode) as client:
            await client.call_tool("check_credits", {})
            yield client

    return opener


async def test_the_key_given_to_a_workflow_is_never_written_into_its_plan_or_echoed_by_its_errors(keyed):
    """The audit: a key pasted into a workflow's argument was written verbatim into the plan, and every prompt error
    echoed it (``estimate_cost(model=<key>)`` answers ``Unknown model "[redacted]"``)."""
    asked = {
        "unknown prompt": (KEY, {}),
        "unknown argument": ("ugc_video", {"product": "x", "script": "y", KEY: "1"}),
        "bad count": ("animated_ad", {"product": "x", "story": "y", "beats": KEY}),
        "bad model": ("ugc_video", {"product": "x", "script": "y", "model": KEY}),
        "bad ratio": (
            "ugc_product_selfie",
            {"creator_image": "a", "product_image": "b", "setting": "c", "aspect_ratio": KEY},
        ),
    }
    refusals = {}
    async with keyed() as client:
        plan = await client.get_prompt("ugc_video", {"product": f"bottle, my key is {KEY}", "script": f"say {KEY}"})
        for what, (name, arguments) in asked.items():
            with pytest.raises(MCPError) as refused:
                await client.get_prompt(name, arguments)
            refusals[what] = refused.value
    text = plan.messages[0].content.text
    assert not leaks(text) and "bottle, my key is [redacted]" in text, text
    assert {what: said(err) for what, err in refusals.items() if leaks(said(err))} == {}
    assert all(err.error.code == INVALID_PARAMS and "[redacted]" in err.error.message for err in refusals.values())


@pytest.mark.parametrize(
    "uri",
    [
        f"kie://models/{KEY}",
        f"kie://outputs/{KEY}.png",
        f"kie://previews/{KEY}.png",
        f"kie://outputs/{KEY}/index.html",
        f"kie://workspace/references/{KEY}.png",
        f"kie://nothing/{KEY}",
    ],
)
async def test_a_resource_uri_holding_the_key_is_never_echoed_by_its_error(keyed, mode, uri):
    """The audit: a not-found model, saved result, gallery session or reference, and the SDK's "Unknown resource:
    ...", named the URI with the key in it, in the message and in the error's data."""
    async with keyed() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource(uri)
    assert refused.value.error.code == not_found_code(mode)
    assert not leaks(said(refused.value)), said(refused.value)
    assert "[redacted]" in refused.value.error.message


async def test_a_tool_refusal_naming_what_it_was_given_never_echoes_the_key(keyed):
    """The review: an unknown tool, an argument the tool does not take and a bad value are refused by the SDK or
    before the tool runs, as error results that named what they were given: the key, when that was it."""
    async with keyed() as client:
        refusals = {
            "unknown tool": await client.call_tool(f"tool_{KEY}", {}),
            "unknown argument": await client.call_tool("estimate_cost", {KEY: 1, "model": "nano-banana-2"}),
            "bad value": await client.call_tool("list_tasks", {"limit": KEY}),
        }
    shown = {what: json.dumps(result.model_dump(mode="json")) for what, result in refusals.items()}
    assert all(result.is_error for result in refusals.values()), shown
    assert {what: text for what, text in shown.items() if leaks(text)} == {}
    assert all("[redacted]" in text for text in shown.values()), shown


async def test_a_workflows_plan_keeps_the_users_signed_link_and_words_and_drops_only_the_key(keyed):
    """The review: the plan was redacted as an error is, so a signed link's ``access_token=...`` and a description's
    "password: ..." came back as ``[redacted]``: an agent following the plan sent a broken link to a paid create."""
    # A token of its own: a key another test registers (the registry is process-wide) shares no 16 characters with it.
    link = "https://cdn.example.com/me.png?access_token=Tk4mP9qR2sV7wX1yZ3bN&expires=1893456000"
    async with keyed() as client:
        plan = await client.get_prompt(
            "ugc_video", {"product": f"bottle at {link}, password: swordfish", "script": f"say {KEY}"}
        )
    text = plan.messages[0].content.text
    assert link in text and "password: swordfish" in text, text
    assert not leaks(text) and "say [redacted]" in text, text


def shows_encoded_key(text: str, run: int = 16) -> bool:
    """Whether ``text`` shows ``run`` characters in a row of the key's base64 (at any of its three alignments): a
    piece that long decodes to 12 of the key's characters."""
    for lead in range(3):
        encoded = base64.b64encode(bytes(lead) + KEY.encode()).decode()[4:-4]
        if any(encoded[at : at + run] in text for at in range(len(encoded) - run + 1)):
            return True
    return False


async def test_a_value_holding_the_encoded_key_is_redacted_before_it_is_cut_short(keyed):
    """The audit: values an error repeats are cut to 60 characters before the answer is redacted, so the key's
    base64 after 25 characters of padding was shown cut, 22 of its 29 characters recoverable; a workflow's error
    likewise. Redacted first, then cut: no piece of it is shown."""
    encoded = base64.b64encode(KEY.encode()).decode()
    async with keyed() as client:
        tool = await client.call_tool("generate_image", {"prompt": "an apple", "model": "x" * 25 + encoded})
        with pytest.raises(MCPError) as refused:
            await client.get_prompt("ugc_video", {"product": "x", "script": "y", "model": f"a fox {KEY} {encoded}"})
    shown = {"tool": text_of(tool), "prompt": said(refused.value)}
    assert tool.is_error and '"' + "x" * 25 + '[redacted]"' in shown["tool"], shown
    assert {what: text for what, text in shown.items() if shows_encoded_key(text) or leaks(text)} == {}


async def test_the_key_broken_over_lines_in_an_argument_is_not_shown_back_in_its_refusal(keyed, controls):
    """The review: an error repeats a refused value as JSON writes it, so a line break reads "\\n"; the key in
    eight-character lines (each too short to be taken for a piece of it) was shown back whole."""
    lines = "\n".join(KEY[at : at + 8] for at in range(0, len(KEY), 8))
    async with keyed() as client:
        refused = await client.call_tool("generate_image", {"prompt": "an apple", "model": f"model {lines}"})
    text = text_of(refused)
    assert refused.is_error and "[redacted]" in text, text
    assert not leaks(text) and KEY[:8] not in text and KEY[-8:] not in text, text
    assert await controls.creates() == []


def _disguised(key: str) -> dict[str, str]:
    """The key as a careless or hostile upstream may echo it, in cheap encodings the redactor knows."""
    raw = key.encode()
    return {
        "every byte percent-encoded": "".join(f"%{byte:02X}" for byte in raw),
        "in lower-case percent-encoding": "".join(f"%{byte:02x}" for byte in raw),
        "its bytes in hex": raw.hex(),
        "with colons between": ":".join(key),
        "in groups by slashes": "/".join(key[at : at + 4] for at in range(0, len(key), 4)),
        "in groups by commas": ",".join(key[at : at + 8] for at in range(0, len(key), 8)),
        "with dots between": ".".join(key),
        "over lines, as JSON escapes them": "\\n".join(key[at : at + 8] for at in range(0, len(key), 8)),
        "in fullwidth letters": "".join(chr(ord(ch) + 0xFEE0) for ch in key),
        "with zero width spaces between": "\u200b".join(key),
        "with soft hyphens between": "\u00ad".join(key),
        "with variation selectors between": "\ufe0f".join(key),  # the review: invisible, but not Cf
        "with Hangul fillers between": "\u3164".join(key),
        "with combining grapheme joiners between": "\u034f".join(key),
    }


@pytest.mark.parametrize("how", list(_disguised(KEY)))
async def test_the_key_echoed_in_a_cheap_disguise_is_redacted_and_the_words_around_it_kept(keyed, controls, how):
    """The audit: KIE's refusal echoing the key percent-encoded byte by byte, in hex, with colons, slashes or
    commas between its characters, in fullwidth letters or with invisible characters between them, reached the
    agent as it was. The words around it (fullwidth punctuation included) come back as they were."""
    disguised = _disguised(KEY)[how]
    async with keyed() as client:
        await controls.fault("credit", kind="code", code=422, msg=f"鍵（{disguised}）は無効です！ see docs")
        refused = await client.call_tool("check_credits", {})
    text = text_of(refused)
    assert refused.is_error and "鍵（[redacted]）は無効です！ see docs" in text, text
    assert disguised not in text and not leaks(text)


ODD_KEY = "kie/odd+key&<shape> 3f9a2c7e"  # not KIE's shape today: never refused, as KIE may change its keys


@pytest.mark.parametrize(
    "echoed",
    [
        html.escape(ODD_KEY),
        html.escape(ODD_KEY, quote=False),
        quote_plus(ODD_KEY),
        quote(ODD_KEY, safe="/"),
        quote(ODD_KEY, safe=""),
    ],
    ids=["html", "html-no-quotes", "form", "path", "query"],
)
async def test_a_key_of_another_shape_echoed_escaped_or_url_encoded_is_redacted(
    settings, transport, controls, mode, echoed
):
    """A key with characters HTML or a URL escapes (KIE may change its keys' shape, so none is refused) is redacted
    as an upstream echoes it: HTML-escaped, URL-encoded as a form writes it, as a path keeps "/", as a query
    value."""
    await controls.post("keys", {"key": ODD_KEY})
    server = create_server(replace(settings, api_key=SecretStr(ODD_KEY)), transport=transport)
    async with Client(server, mode=mode) as client:
        await controls.fault("credit", kind="code", code=422, msg=f"bad key <{echoed}> given")
        refused = await client.call_tool("check_credits", {})
    text = text_of(refused)
    assert refused.is_error and "bad key <[redacted]> given" in text, text
    assert echoed not in text and "3f9a2c7e" not in text
