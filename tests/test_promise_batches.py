"""A JSON-RPC batch (a list of messages on one line) is answered, element by element, never dropped in silence.

MCP 2025-03-26 says implementations MUST support receiving batches, and kie-mcp accepts that revision; 2025-06-18
removed them. The SDK's stdio reader drops a list without an answer, so the line is split where it is read
(``stdio.readable_lines``): under 2025-03-26 (and 2024-11-05) each request in it runs and is answered under its own
id, on a line of its own (the SDK writes one message a line; JSON-RPC's batch answer is a SHOULD); under later
revisions each is answered with an error saying batches are gone, and nothing of it runs (a notification in it is
dropped, said in one line on stderr). A batch line that is not JSON (cut short) is answered with a Parse error with
no id (MCP 2025-11-25 and later), or under id null, as JSON-RPC 2.0 answers it (2025-06-18 and before, whose schema
requires an id); an empty batch, and each element that is no object, with an Invalid Request the same way.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any

import pytest
from mcp.types import INVALID_REQUEST, PARSE_ERROR

from .conftest import CREATE_PATHS
from .test_deep_json import _kie_requests
from .test_promise_unreadable_lines import ANSWER_WITHIN, CHECK_CREDITS, CREDIT, ENVELOPE, Wire

BATCH = '[{"jsonrpc":"2.0","id":15,"method":"ping"}, {"jsonrpc":"2.0","id":16,"method":"tools/list"}]'
PRICE = {"name": "estimate_cost", "arguments": {"model": "nano-banana-2", "prompt": "an apple"}}


@pytest.fixture
def wire(simulator_process, tmp_path):
    opened = Wire(simulator_process, tmp_path)
    yield opened
    assert opened.close() == 0


NO_ID = "(no id)"  # the key of an answer without an id member (``_answers``)


def _answers(wire: Wire, ids: set[Any]) -> dict[Any, dict[str, Any]]:
    """The answers to ``ids``, in whatever order they come (other messages skipped); an answer with no id member is
    found under ``NO_ID``."""
    found: dict[Any, dict[str, Any]] = {}
    deadline = time.monotonic() + ANSWER_WITHIN
    while set(found) != ids:
        while b"\n" in wire.buffer:
            line, _, rest = bytes(wire.buffer).partition(b"\n")
            wire.buffer[:] = rest
            message = json.loads(line)
            key = message.get("id", NO_ID)
            if key in ids and "method" not in message and ("id" in message or "error" in message):
                found[key] = message
        if set(found) == ids:
            break
        ready, _, _ = select.select([wire.server.stdout], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(wire.server.stdout.fileno(), 65536) if ready else b""
        assert chunk, f"no answer to {ids - set(found)}: dropped"
        wire.buffer += chunk
    return found


def _handshake(wire: Wire, version: str) -> None:
    hello = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}))
    assert wire.answer(0)["result"]["protocolVersion"] == version
    wire.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')


@pytest.mark.stdio
@pytest.mark.parametrize("version", ["2025-03-26", "2024-11-05"])
def test_each_request_of_a_batch_is_run_and_answered_under_its_own_id_where_the_protocol_has_batches(wire, version):
    _handshake(wire, version)
    wire.send(BATCH)
    answers = _answers(wire, {15, 16})
    assert answers[15]["result"] == {}
    assert "estimate_cost" in {tool["name"] for tool in answers[16]["result"]["tools"]}
    batch = [
        {"jsonrpc": "2.0", "id": 17, "method": "tools/call", "params": {**PRICE, "_meta": {"progressToken": "p"}}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},
        '{"jsonrpc":"2.0","id":18,"method":"ping"',  # one element unreadable: answered under its id, saying why
    ]
    wire.send("[" + ", ".join(item if isinstance(item, str) else json.dumps(item) for item in batch) + "]")
    answers = _answers(wire, {17, 18})
    quoted = answers[17]["result"]
    assert not quoted.get("isError") and quoted["structuredContent"]["quote"]["quote_id"], quoted
    assert "kie-mcp/batched" not in json.dumps(quoted)  # the mark is the server's own, never shown
    assert "Nothing of it was run" in answers[18]["error"]["message"]
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 19, "method": "ping"}))
    assert wire.answer(19)["result"] == {}
    assert "Traceback" not in wire.errors.read_text()


@pytest.mark.stdio
@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_a_batch_is_refused_element_by_element_where_the_protocol_removed_batches(wire, simulator_process, version):
    _handshake(wire, version)
    call = {"jsonrpc": "2.0", "id": 16, "method": "tools/call", "params": PRICE}
    # a workflow's plan too: a review found prompts/get ran in a batch the others of were refused
    plan = {
        "jsonrpc": "2.0",
        "id": 14,
        "method": "prompts/get",
        "params": {"name": "ugc_video", "arguments": {"product": "a balm", "script": "Hi."}},
    }
    wire.send(json.dumps([plan, {"jsonrpc": "2.0", "id": 15, "method": "ping"}, call]))
    for error in (answer.get("error") or answer for answer in _answers(wire, {14, 15, 16}).values()):
        assert error["code"] == INVALID_REQUEST and "JSON-RPC batch" in error["message"], error
        assert f"MCP {version} does not take" in error["message"] and "Nothing of it was run" in error["message"]
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 17, "method": "ping"}))
    assert wire.answer(17)["result"] == {}
    assert not CREATE_PATHS & set(_kie_requests(simulator_process))


@pytest.mark.stdio
@pytest.mark.parametrize("written", [{"id": None}, {}], ids=["with-id-null", "plain"])
def test_a_notification_in_a_refused_batch_is_dropped_with_one_warning_and_cancels_nothing(
    wire, simulator_process, written
):
    """The review: on a 2025-11-25 connection a batch holding a notification written with ``"id": null`` printed a
    traceback on stderr: its refusal was raised from the notification's handler, with no id to answer under, and the
    SDK had already acted on it (a cancel stopped the call it named), as it did on a notification without an id,
    while every request of a batch is refused there. It is dropped, said in one line; a cancel in it cancels
    nothing, so the call it names goes on, its id still in flight (a request under it is refused), and answers when
    its form does."""
    wire.handshake({"elicitation": {"form": {}}})
    call = {"name": "generate_image", "arguments": {"prompt": "an apple"}}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": call}))
    form = wire.request("elicitation/create")
    cancel = {"jsonrpc": "2.0", **written, "method": "notifications/cancelled", "params": {"requestId": 42}}
    wire.send(json.dumps([cancel]))
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "ping"}))
    assert "is still running" in wire.answer(42)["error"]["message"]
    wire.send(json.dumps({"jsonrpc": "2.0", "id": form["id"], "result": {"action": "decline"}}))
    declined = wire.answer(42)["result"]
    assert declined["structuredContent"]["status"] == "declined", declined
    [warned] = wire.warnings(1, "came in a JSON-RPC batch")
    assert "WARNING" in warned and "notifications/cancelled" in warned and "dropped, not run" in warned, warned
    errors = wire.errors.read_text()
    assert "Traceback" not in errors and errors.count("notifications/cancelled") == 1, errors
    assert not CREATE_PATHS & set(_kie_requests(simulator_process))


@pytest.mark.stdio
def test_a_lone_cancel_wearing_the_batch_mark_still_cancels(wire, simulator_process):
    """The review: the mark that says a notification came in a batch lived in the client's own ``_meta`` with the
    value ``true``, so a lone cancel written with it was dropped as batched, and the call it named ran on (and was
    charged). The mark's value is the process's own secret now: a lone cancel is a cancel, whatever its ``_meta``."""
    wire.handshake({"elicitation": {"form": {}}})
    call = {"name": "generate_image", "arguments": {"prompt": "an apple"}}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": call}))
    wire.request("elicitation/create")
    forged = {"requestId": 42, "_meta": {"kie-mcp/batched": True}}
    wire.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": forged}))
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "ping"}))  # its id is free once the call is cancelled
    assert wire.answer(42)["result"] == {}
    assert "came in a JSON-RPC batch" not in wire.errors.read_text()
    assert not CREATE_PATHS & set(_kie_requests(simulator_process))


@pytest.mark.stdio
def test_a_batch_of_the_2026_era_is_refused_in_that_era(wire):
    """Stateless 2026-07-28 requests carry their envelope in ``_meta``: the mark joins it, the envelope still routes
    each element, and each is refused saying why."""
    elements = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": ENVELOPE}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {**PRICE, "_meta": ENVELOPE}},
    ]
    wire.send(json.dumps(elements))
    for error in (answer["error"] for answer in _answers(wire, {1, 2}).values()):
        assert "MCP 2026-07-28 does not take" in error["message"], error
    wire.send(json.dumps(elements[0]))
    assert "tools" in wire.answer(1)["result"]


@pytest.mark.stdio
def test_an_initialize_in_a_batch_is_refused_for_what_it_is(wire):
    """A review: an initialize sent in a batch asking for 2025-03-26 was refused as "MCP 2025-11-25 does not take"
    batches (the server's default before any handshake); 2025-03-26 takes batches but forbids initialize in one."""
    hello = {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    wire.send(json.dumps([{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}]))
    error = _answers(wire, {0})[0]["error"]
    assert "initialize must not be sent in a JSON-RPC batch" in error["message"], error
    assert "2025-11-25" not in error["message"], error
    _handshake(wire, "2025-03-26")  # sent on a line of its own, it works


@pytest.mark.stdio
@pytest.mark.parametrize("version", ["2025-03-26", "2025-11-25"])
def test_an_empty_batch_and_each_element_that_is_no_object_are_answered_with_an_invalid_request_with_no_id(
    wire, simulator_process, version
):
    """The audit: ``[]`` and a batch of numbers got no answer, a warning on stderr only, and a batch with one such
    element beside a request dropped that request too. JSON-RPC 2.0 answers an empty batch with one Invalid Request
    (-32600), and each element that is no object with one, their id null: left out where MCP's revision writes it so
    (2025-11-25), null where its schema requires an id (2025-03-26). The batch's requests are answered as ever."""
    _handshake(wire, version)
    left_out = version == "2025-11-25"
    before = _kie_requests(simulator_process)
    wire.send("[]")
    wire.send('[1, "two", [3]]')
    wire.send('[{"jsonrpc":"2.0","id":15,"method":"tools/call",' + CHECK_CREDITS + "}, null]")
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 16, "method": "ping"}))
    seen = wire.messages_until(16)
    if not any(message.get("id") == 15 for message in seen):
        seen.append(wire.answer(15))
    refused = [message for message in seen if message.get("id") not in (15, 16)]
    said = ["an empty JSON-RPC batch", "it is a number, not a message", "it is text, not", "it is a list, not"]
    said.append("it is null, not a message")
    assert len(refused) == len(said), seen
    for answer, words in zip(refused, said, strict=True):
        assert ("id" not in answer) if left_out else (answer["id"] is None), answer
        assert answer["error"]["code"] == INVALID_REQUEST and words in answer["error"]["message"], answer
        which = "this answer has no id" if left_out else "this answer's id is null"
        assert which in answer["error"]["message"], answer
    [answered] = [message for message in seen if message.get("id") == 15]
    if left_out:  # refused where batches are gone, run where they are
        assert "does not take" in answered["error"]["message"], answered
    else:
        assert "result" in answered and CREDIT in _kie_requests(simulator_process)[len(before) :], answered
    warned = wire.warnings(5, "(-32600) with no id")
    assert len(warned) == 5 and all("WARNING" in line for line in warned), warned
    assert "dropped a line" not in wire.errors.read_text()


@pytest.mark.stdio
@pytest.mark.parametrize("version", ["2025-03-26", "2025-11-25"])
def test_a_batch_cut_short_is_answered_with_one_parse_error_its_revision_takes_and_the_session_goes_on(
    wire, simulator_process, version
):
    """A batch line cut short (or broken anywhere outside its elements) is no JSON: it is answered with one Parse
    error (-32700). It was dropped with a warning on stderr, so the host waited for ever on every request in it. The
    ids of a line cut short are not guessed at, and nothing in it runs, not even its whole first request; the
    warning stays, and the next requests are served, in a revision with batches and in one without. The review:
    that answer was under ``"id": null``, which MCP 2025-11-25's schema (and the TypeScript SDK) refuses; there it
    has no id member, and under 2025-03-26, whose schema requires an id, JSON-RPC 2.0's null."""
    _handshake(wire, version)
    no_id = NO_ID if version == "2025-11-25" else None
    before = _kie_requests(simulator_process)
    credits = '{"jsonrpc":"2.0","id":15,"method":"tools/call",' + CHECK_CREDITS + "}"
    wire.send("[" + credits + ', {"jsonrpc":"2.0","id":16,"method":"pi')  # cut inside its second request
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 17, "method": "ping"}))
    answers = _answers(wire, {no_id, 17})
    error = answers[no_id]["error"]
    assert error["code"] == PARSE_ERROR and "it ends before its JSON does" in error["message"], error
    said = "this answer has no id" if no_id == NO_ID else "this answer's id is null"
    assert said in error["message"] and "Nothing of it was run" in error["message"], error
    assert answers[17]["result"] == {}
    assert CREDIT not in _kie_requests(simulator_process)[len(before) :]  # its whole first request never ran
    # One element no JSON and with no id, in a whole batch: that element answered so, the others as ever.
    wire.send('[{"jsonrpc":"2.0","id":18,"method":"ping"}, {"jsonrpc":"2.0","method":"notifications/x",}]')
    answers = _answers(wire, {no_id, 18})
    assert answers[no_id]["error"]["code"] == PARSE_ERROR and "trailing comma" in answers[no_id]["error"]["message"]
    assert ("result" in answers[18]) is (version == "2025-03-26"), answers[18]  # refused where batches are gone
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 19, "method": "tools/call", "params": PRICE}))
    assert wire.answer(19)["result"]["structuredContent"]["quote"]["quote_id"]
    warned = wire.warnings(2, "kie_mcp.stdio: a line of")
    assert len(warned) == 2 and all("answered with a Parse error (-32700) with no id" in line for line in warned)
    assert "Traceback" not in wire.errors.read_text()


@pytest.mark.stdio
@pytest.mark.parametrize("version", ["2025-03-26", "2025-11-25"])
def test_json_that_is_no_message_at_all_is_answered_with_an_invalid_request_not_dropped(
    wire, simulator_process, version
):
    """JSON-RPC 2.0's own example: ``{"foo": "boo"}`` is answered with an Invalid Request under id null, alone on a
    line or in a batch. It was dropped with a warning on stderr, so a host that sent it waited for an answer that
    never came. A value that is no object (text, a number) alike. What may be a message (a notification the SDK
    cannot read, an answer with no id) stays unanswered, as JSON-RPC never answers those."""
    _handshake(wire, version)
    left_out = version == "2025-11-25"
    wire.send('{"foo": "boo"}')
    wire.send('"hello"')
    wire.send('[{"foo": "boo"}, {"jsonrpc":"2.0","id":15,"method":"ping"}]')
    wire.send('{"jsonrpc":"2.0","method":"notifications/odd","params":5}')  # a notification, if unreadable
    wire.send('{"jsonrpc":"2.0","result":{}}')  # an answer with no id
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 16, "method": "ping"}))
    seen = wire.messages_until(16)
    if not any(message.get("id") == 15 for message in seen):
        seen.append(wire.answer(15))
    refused = [message for message in seen if message.get("id") not in (15, 16)]
    said = ["it is an object with none of a message's members", "it is text, not"]
    said.append("it is an object with none of a message's members")
    assert len(refused) == len(said), seen
    for answer, words in zip(refused, said, strict=True):
        assert ("id" not in answer) if left_out else (answer["id"] is None), answer
        assert answer["error"]["code"] == INVALID_REQUEST and words in answer["error"]["message"], answer
        assert "Nothing of it was run, priced or sent" in answer["error"]["message"], answer
    warned = wire.warnings(3, "is JSON but no JSON-RPC message")
    assert len(warned) == 3 and all("WARNING" in line for line in warned), warned
    assert "Traceback" not in wire.errors.read_text()
