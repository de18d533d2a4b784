"""What a client settled at its handshake holds for the whole connection, over real stdio.

Every answer fits the protocol revision the client negotiated: a tool's content blocks of type ``resource_link``
exist only from 2025-06-18, and a client of 2024-11-05 or 2025-03-26 checks a result against its own revision's
union of content blocks, so it threw away every answer naming a saved file (after the credits were spent). Those
clients now get the answer without the links; its text names each file by absolute path and file:// URI. The
answers are checked against the official schema of each revision (the definitions ``CallToolResult`` uses, copied
into tests/data/mcp-schema).

A connection is initialized once: a second ``initialize`` was taken, and changed the revision (batches on or off)
and the capabilities (confirmation forms on or off) mid-session. It is refused, and nothing changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from mcp.types import INVALID_REQUEST

from .conftest import simulator_running
from .test_promise_unreadable_lines import Wire

SCHEMAS = Path(__file__).parent / "data" / "mcp-schema"
IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}

pytestmark = pytest.mark.stdio


@pytest.fixture
def simulator() -> Iterator[str]:
    """``kie-mcp sim`` in its own process, 1000 simulated seconds a real second: an image is made within its call."""
    yield from simulator_running("1000")


@pytest.fixture
def wire(simulator, tmp_path):
    opened = Wire(simulator, tmp_path)
    yield opened
    assert opened.close() == 0


def _handshake(wire: Wire, version: str, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    hello = {
        "protocolVersion": version,
        "capabilities": capabilities or {},
        "clientInfo": {"name": "raw", "version": "1"},
    }
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}))
    answer = wire.answer(0)["result"]
    wire.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    return answer


def _call(wire: Wire, request_id: int, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    call = {"name": tool, "arguments": arguments}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": call}))
    return wire.answer(request_id)["result"]


def _made_and_checked(wire: Wire) -> list[dict[str, Any]]:
    """An image made (its quote approved) and its task checked: the two answers that name its saved file."""
    quoted = _call(wire, 1, "generate_image", IMAGE)
    quote_id = quoted["structuredContent"]["quote"]["quote_id"]
    made = _call(wire, 2, "generate_image", {**IMAGE, "quote_id": quote_id})
    assert made["structuredContent"]["status"] == "completed", made
    checked = _call(wire, 3, "check_task", {"task_id": made["structuredContent"]["tasks"][0]["task_id"]})
    return [made, checked]


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26"])
def test_a_client_of_a_revision_before_resource_links_gets_answers_its_schema_takes_naming_every_file(wire, version):
    assert _handshake(wire, version)["protocolVersion"] == version
    schema = json.loads((SCHEMAS / f"call-tool-result-{version}.json").read_text())
    for answer in _made_and_checked(wire):
        problems = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in Draft7Validator(schema).iter_errors(answer)]
        assert not problems, problems
        assert "resource_link" not in {block["type"] for block in answer["content"]}
        text = answer["content"][0]["text"]
        for saved in answer["structuredContent"]["saved_files"]:
            assert saved["absolute_path"] in text and saved["file_uri"] in text, text
        assert any(block["type"] == "image" for block in answer["content"])  # the preview stays: 2024-11-05 has it


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26"])
def test_a_client_sent_no_resource_links_is_told_where_each_preview_not_attached_is(wire, version):
    """The review: past the first 8 previews, the text said "each of the other 2 has its preview at its resource
    link", to a client of a revision before resource links, which was sent none. It names each one's kie://previews/
    URI, read as a resource, which serves that preview."""
    _handshake(wire, version)
    ten = {**IMAGE, "variations": 10, "wait_seconds": 40}
    quote_id = _call(wire, 1, "generate_image", ten)["structuredContent"]["quote"]["quote_id"]
    made = _call(wire, 2, "generate_image", {**ten, "quote_id": quote_id})
    saved = made["structuredContent"]["saved_files"]
    assert len(saved) == 10, made
    assert "resource_link" not in {block["type"] for block in made["content"]}
    text = made["content"][0]["text"]
    assert "resource link" not in text, text
    unattached = [file["resource_uri"].replace("kie://outputs/", "kie://previews/") for file in saved[8:]]
    said = "first 8 of 10 saved files; those of the other 2 are resources to read (resources/read): "
    assert said + ", ".join(unattached) in text, text
    for number, uri in enumerate(unattached, start=3):
        read = {"jsonrpc": "2.0", "id": number, "method": "resources/read", "params": {"uri": uri}}
        wire.send(json.dumps(read))
        [content] = wire.answer(number)["result"]["contents"]
        assert content["uri"] == uri and content["mimeType"] == "image/jpeg" and content["blob"], uri


def test_a_client_of_2025_06_18_still_gets_a_resource_link_for_every_saved_file(wire):
    _handshake(wire, "2025-06-18")
    for answer in _made_and_checked(wire):
        links = [block["uri"] for block in answer["content"] if block["type"] == "resource_link"]
        assert links == [saved["resource_uri"] for saved in answer["structuredContent"]["saved_files"]], answer


def test_a_second_initialize_is_refused_and_changes_nothing(wire):
    """Opened at 2025-06-18 (no batches, no forms declared), a second initialize asking for 2025-03-26 with forms is
    refused: a batch is still refused as 2025-06-18 refuses it, and a generate still answers with a quote, asking
    no form."""
    _handshake(wire, "2025-06-18")
    hello = {
        "protocolVersion": "2025-03-26",
        "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "y", "version": "2"},
    }
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "initialize", "params": hello}))
    error = wire.answer(5)["error"]
    assert error["code"] == INVALID_REQUEST, error
    assert "already initialized" in error["message"] and "nothing changed" in error["message"], error
    assert "2025-06-18" in error["message"], error
    wire.send(json.dumps([{"jsonrpc": "2.0", "id": 6, "method": "ping"}]))
    refused = wire.answer(6)["error"]
    assert "MCP 2025-06-18 does not take" in refused["message"], refused
    quoted = _call(wire, 7, "generate_image", IMAGE)
    assert quoted["structuredContent"]["status"] == "confirmation_required", quoted
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 8, "method": "ping"}))
    assert wire.answer(8)["result"] == {}
    assert "Traceback" not in wire.errors.read_text()
