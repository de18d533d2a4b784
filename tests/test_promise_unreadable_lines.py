"""No request the SDK's stdio transport cannot read goes unanswered: it is answered under its own id, saying what
was wrong, and nothing of it is run.

The SDK's transport drops a line it cannot read (its dispatcher logs it at DEBUG, so not even the server's log said
so): the client waited for ever on that call. Before, only a line with a lone surrogate escape, a byte-order mark or
nesting deeper than pydantic reads was mended (``test_deep_json.py``, ``test_entrypoints.py``); a line one "}" short,
a trailing comma, two messages on one line, a ``jsonrpc`` missing or "1.0", a ``method`` that is not text, or
``params`` a list or text, stayed unanswered, with nothing on stderr. Each is now answered (``stdio.stand_ins``), and
a line with no id to answer is logged; one that is not JSON is answered with a Parse error with no id (under id
null to a client of MCP 2025-06-18 or before), too. The SDK's own bare "Invalid request parameters" names the field,
and an unknown resource's URI is repeated at most 200 characters long.

The SDK's reader also takes a request whose id it cannot take (null, 1.5, true, an object, a list, and 2.0) for a
notification, dropped in silence: 2.0 is answered under 2, and each of the others with an Invalid Request with no id
(null to a client of 2025-06-18 or before), said on stderr too. A request under the id of
one still running took that one's place (a cancel then stopped only the newer): it is refused. A request before
``initialize`` is told what to send first.

The stdio tests run the installed ``kie-mcp`` against the simulator in its own process (``kie-mcp sim``).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError
from mcp import MCPError
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR

from .conftest import CREATE_PATHS, answer_from, not_found_code, text_of
from .test_deep_json import _kie_requests, _script, _server_env, hello

ANSWER_WITHIN = 20  # seconds: a dropped line is never answered, so a test of one fails here instead of hanging
CHECK_CREDITS = '"params":{"name":"check_credits","arguments":{}}'
CREDIT = "/api/v1/chat/credit"  # what check_credits asks KIE
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}

# A line the SDK cannot read, the error code it is answered with under its id, and words the answer says.
UNREADABLE = [
    (
        31,
        '{"jsonrpc":"2.0","id":31,"method":"tools/call","params":[1,2]}',
        INVALID_REQUEST,
        '"params" must be an object',
    ),
    (32, '{"id":32,"method":"ping"}', INVALID_REQUEST, '"jsonrpc" must be "2.0"'),
    (33, '{"jsonrpc":"1.0","id":33,"method":"ping"}', INVALID_REQUEST, '"jsonrpc" must be "2.0"'),
    (34, '{"jsonrpc":"2.0","id":34,"method":"tools/call",' + CHECK_CREDITS, PARSE_ERROR, "ends before its JSON does"),
    (36, '{"jsonrpc":"2.0","id":36,"method":5}', INVALID_REQUEST, '"method" must be text'),
    (37, '{"jsonrpc":"2.0","id":37,"method":"tools/list","params":"x"}', INVALID_REQUEST, '"params" must be an'),
    (38, '{"jsonrpc":"2.0","id":38,"method":"tools/call",' + CHECK_CREDITS + ",}", PARSE_ERROR, "trailing comma"),
    ("a-39", '{"jsonrpc":"2.0","id":"a-39","method":"ping","params":{"x":"\\q"}}', PARSE_ERROR, "invalid escape"),
]


class Wire:
    """The installed kie-mcp over real stdio, spoken line by line, its stderr kept in a file."""

    def __init__(self, base: str, workspace: Path) -> None:
        self.errors = workspace / "stderr.log"
        with self.errors.open("wb") as errors:
            self.server = subprocess.Popen(
                [_script()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env={**os.environ, **_server_env(base, workspace)},
            )
        self.buffer = bytearray()

    def send(self, line: str) -> None:
        assert self.server.stdin is not None
        self.server.stdin.write(line.encode() + b"\n")
        self.server.stdin.flush()

    def answer(self, request_id: Any) -> dict[str, Any]:
        """The answer to ``request_id`` (other messages skipped), or an AssertionError when none comes."""
        assert self.server.stdout is not None
        return answer_from(self.server.stdout, self.buffer, request_id, ANSWER_WITHIN)

    def request(self, method: str) -> dict[str, Any]:
        """The next request the server sends with ``method`` (a form, say; other messages skipped), or an
        AssertionError when none comes."""
        assert self.server.stdout is not None
        deadline = time.monotonic() + ANSWER_WITHIN
        while True:
            while b"\n" in self.buffer:
                line, _, rest = bytes(self.buffer).partition(b"\n")
                self.buffer[:] = rest
                message = json.loads(line)
                if message.get("method") == method and "id" in message:
                    return message
            ready, _, _ = select.select([self.server.stdout], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(self.server.stdout.fileno(), 65536) if ready else b""
            assert chunk, f"no {method} request from the server"
            self.buffer += chunk

    def messages_until(self, request_id: Any) -> list[dict[str, Any]]:
        """Every message the server writes, in order, up to the answer to ``request_id``, or an AssertionError when it
        does not come."""
        assert self.server.stdout is not None
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + ANSWER_WITHIN
        while True:
            while b"\n" in self.buffer:
                line, _, rest = bytes(self.buffer).partition(b"\n")
                self.buffer[:] = rest
                seen.append(json.loads(line))
                if seen[-1].get("id") == request_id and "method" not in seen[-1]:
                    return seen
            ready, _, _ = select.select([self.server.stdout], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(self.server.stdout.fileno(), 65536) if ready else b""
            assert chunk, f"no answer to {request_id!r}; seen {seen}"
            self.buffer += chunk

    def warnings(self, count: int, saying: str) -> list[str]:
        """The first ``count`` warning lines on stderr that say ``saying``, once they are there."""
        deadline = time.monotonic() + ANSWER_WITHIN
        while self.errors.read_text().count(saying) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return [line for line in self.errors.read_text().splitlines() if saying in line][:count]

    def handshake(self, capabilities: dict[str, Any] | None = None) -> None:
        self.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello(capabilities)}))
        assert "result" in self.answer(0)
        self.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')

    def close(self) -> int:
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.close()
        exited = self.server.wait(timeout=30)
        self.server.stdout.close()
        return exited


@pytest.fixture
def wire(simulator_process, tmp_path):
    opened = Wire(simulator_process, tmp_path)
    yield opened
    assert opened.close() == 0


@pytest.mark.stdio
def test_every_request_the_sdk_cannot_read_is_answered_under_its_own_id_and_nothing_of_it_runs(wire, simulator_process):
    wire.handshake()
    for request_id, line, code, says in UNREADABLE:
        wire.send(line)
        error = wire.answer(request_id)["error"]
        assert error["code"] == code, (line, error)
        assert says in error["message"] and "Nothing of it was run" in error["message"], (line, error)
        wire.send(json.dumps({"jsonrpc": "2.0", "id": f"after-{request_id}", "method": "ping"}))
        assert wire.answer(f"after-{request_id}")["result"] == {}  # the server goes on
    assert "Traceback" not in wire.errors.read_text()
    assert not CREATE_PATHS & set(_kie_requests(simulator_process))


@pytest.mark.stdio
def test_two_messages_on_one_line_are_each_answered_under_their_own_id(wire):
    wire.handshake()
    wire.send('{"jsonrpc":"2.0","id":39,"method":"ping","params":{}} {"jsonrpc":"2.0","id":40,"method":"tools/list"}')
    for request_id in (39, 40):
        error = wire.answer(request_id)["error"]
        assert error["code"] == PARSE_ERROR
        assert "its line holds more than one message" in error["message"]


@pytest.mark.stdio
def test_a_carriage_return_inside_a_message_is_whitespace_and_the_request_is_answered(wire):
    """MCP's stdio messages end at "\\n" alone. A bare "\\r" is JSON whitespace: it cut a request in two halves,
    neither with an id, never answered. A line ending "\\r\\n" is still one message, and a "\\r" between two messages
    leaves them on one line, each answered under its id."""
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello()}
    wire.send(json.dumps(initialize) + "\r")  # a CRLF line
    assert "result" in wire.answer(0)
    wire.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}\r')
    wire.send('{"jsonrpc":"2.0",\r"id":6,"method":"ping"}')
    assert wire.answer(6)["result"] == {}
    wire.send('{"jsonrpc":"2.0",\r"id":8,"method":"tools/call",' + CHECK_CREDITS[:-1] + ',\r"_meta":{}}}\r')
    assert "content" in wire.answer(8)["result"]
    wire.send('{"jsonrpc":"2.0","id":9,"method":"ping"}\r{"jsonrpc":"2.0","id":10,"method":"ping"}\r')
    for request_id in (9, 10):
        assert "its line holds more than one message" in wire.answer(request_id)["error"]["message"]
    assert "Traceback" not in wire.errors.read_text()


@pytest.mark.stdio
def test_an_unreadable_request_of_the_2026_era_is_answered_in_that_era(wire):
    """The stand-in carries the request's ``_meta``: the 2026-07-28 envelope routes it, and it is answered with what
    was wrong, not with a missing envelope."""
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": ENVELOPE}}))
    assert "tools" in wire.answer(1)["result"]
    params = {"name": "check_credits", "arguments": {}, "_meta": ENVELOPE}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})[:-1])  # one "}" short
    error = wire.answer(2)["error"]
    assert error["code"] == PARSE_ERROR and "this tools/call request" in error["message"], error


NOT_JSON_WITHOUT_ID = [
    '{"jsonrpc":"2.0","method":"notifications/progress","params":[1]',  # a notification cut short
    "this is not json",
    '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"check_credits","argu',  # a request cut before its id
]


ERROR_RESPONSE = json.loads(
    (Path(__file__).parent / "data" / "mcp-schema" / "jsonrpc-error-response-2025-11-25.json").read_text()
)


def _begin(wire: Wire, era: str) -> dict[str, Any]:
    """A session in ``era`` (a revision a handshake agrees on, or the 2026-07-28 era, which has none): the ``params``
    its requests carry."""
    if era == "2026-07-28":
        return {"_meta": ENVELOPE}
    hello = {"protocolVersion": era, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}))
    assert wire.answer(0)["result"]["protocolVersion"] == era
    wire.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    return {}


@pytest.mark.stdio
@pytest.mark.parametrize("era", ["2026-07-28", "2025-11-25", "2025-06-18"])
def test_a_line_that_is_no_json_and_names_no_id_is_answered_with_a_parse_error_its_revision_takes(
    wire, simulator_process, era
):
    """A line that is not JSON names no id to answer under. The SDK's transport drops it without a word; kie-mcp only
    said so on stderr, so a host whose request was in it waited for ever. It is answered with a Parse error
    (-32700), saying what broke, before the next request is; the stderr line stays (the line's length, never its
    text); nothing of it runs, and the next request is served.

    The review: that answer was written under ``"id": null``, which the TypeScript SDK (Claude Desktop, VS Code,
    Cursor) refuses: MCP 2025-11-25's ``JSONRPCErrorResponse`` takes no null id, and leaves the id out for a request
    whose id could not be read. So it has no ``id`` member, valid against that official schema, in 2025-11-25 and in
    the 2026-07-28 era (no handshake); a client whose handshake agreed on 2025-06-18 or before, whose schema requires
    an id, gets JSON-RPC 2.0's own ``"id": null``."""
    params = _begin(wire, era)
    before = _kie_requests(simulator_process)
    left_out = era != "2025-06-18"
    for number, line in enumerate(NOT_JSON_WITHOUT_ID):
        wire.send(line)
        wire.send(json.dumps({"jsonrpc": "2.0", "id": f"after-{number}", "method": "tools/list", "params": params}))
        seen = wire.messages_until(f"after-{number}")
        assert len(seen) == 2, f"the line was dropped: {seen}"  # its answer, then the ping's
        first, after = seen
        assert "result" not in first and ("id" not in first if left_out else first["id"] is None), first
        error = first["error"]
        assert error["code"] == PARSE_ERROR and error["data"]["length"] == len(line), error
        assert (
            f"kie-mcp could not read a line of {len(line)} characters it was sent: it is not valid JSON ("
            in (error["message"])
        )
        said = "this answer has no id" if left_out else "this answer's id is null"
        assert f"no request id could be read in it, so {said}" in error["message"], error
        assert "Nothing of it was run" in error["message"], error
        if left_out:
            Draft202012Validator(ERROR_RESPONSE).validate(first)
        assert "tools" in after["result"], after  # the server goes on
    with pytest.raises(ValidationError):  # what it was: no answer MCP 2025-11-25 takes
        Draft202012Validator(ERROR_RESPONSE).validate({**first, "id": None})
    warned = wire.warnings(3, "kie_mcp.stdio: a line of")
    assert len(warned) == 3, warned
    assert all(
        "WARNING" in line and "names no request id" in line and "with no id (null to a" in line for line in warned
    )
    assert "not json" not in wire.errors.read_text()  # what the line said is never logged: it may hold a secret
    assert CREDIT not in _kie_requests(simulator_process)[len(before) :]


@pytest.mark.stdio
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": "check_credits", "arguments": {}, "_meta": 5}, "params._meta"),
        (None, "params: required"),
        ({"name": 5}, "params.name: must be text"),
    ],
)
def test_params_the_sdk_refuses_are_refused_naming_the_field(wire, params, field):
    """The SDK answered each with a bare "Invalid request parameters" and empty ``data``. (A progressToken that is no
    text or integer no longer refuses the call: ``test_protocol``'s progress token test.)"""
    wire.handshake()
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}))
    error = wire.answer(9)["error"]
    assert error["code"] == INVALID_PARAMS
    assert error["message"].startswith("Invalid request parameters: ") and field in error["message"], error
    assert error["data"]["problems"] and any(field in problem for problem in error["data"]["problems"]), error
    assert "Input should" not in error["message"], error  # in kie-mcp's words, never pydantic's


async def test_an_unknown_resource_uri_is_repeated_at_most_200_characters_long(connect):
    uri = "kie://nowhere/" + "x" * 100_000
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource(uri)
    error = refused.value.error
    assert len(error.message) < 400, len(error.message)
    assert "(100014 characters)" in error.message
    assert len(json.dumps(error.data)) < 400


@pytest.mark.parametrize(
    "uri",
    [
        "kie://workspace/references/" + "é" * 30_000,  # listed percent-encoded: 180,000 characters
        "kie://workspace/references/" + " " * 30_000,
        "kie://workspace/references/%41" + "b" * 300,  # listed as "Ab...": not the URI sent either
        "kie://outputs/" + ("x" * 255 + "/") * 20 + "y",  # a saved result's path, as its error names it
        "kie://previews/" + "x" * 5_000,
    ],
    ids=["accented", "spaces", "percent-encoded", "saved-result", "preview"],
)
async def test_an_unknown_resource_uri_is_repeated_at_most_200_characters_long_in_every_form(connect, mode, uri):
    """The audit: a reference's URI is looked up in its listed form (percent-encoded), which the SDK's "Unknown
    resource: ..." then repeated whole (30,000 ``é`` became a 180,045-character error over stdio), as a saved
    result's error repeated its path whole; only the URI as sent was cut."""
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource(uri)
    error = refused.value.error
    assert error.code == not_found_code(mode)
    assert len(error.message) < 400, (len(error.message), error.message[:300])
    assert "characters)" in error.message, error.message
    assert len(error.data.get("uri", "") if isinstance(error.data, dict) else "") <= 300


@pytest.mark.stdio
def test_a_stray_bracket_never_gets_another_requests_id_answered(wire):
    """The stop review: one broken line whose stray "}" closed the request early, leaving an object nested in it
    (``"x": {"id": 77, ...}``) at the top level, was taken for two messages and answered twice: under its own id and
    under 77, which may be another call of the host still running (it would see that call fail while the server goes
    on and spends). Only back-to-back messages are several; a broken one is answered under its own id alone. A batch
    (an array) is answered element by element (test_promise_batches.py)."""
    wire.handshake()
    nested = '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"check_credits","arguments":{}}}}'
    wire.send(nested + ',"x":{"jsonrpc":"2.0","id":77,"method":"ping"}}')
    wire.send('[{"jsonrpc":"2.0","id":10,"method":"ping"}]')
    wire.send(json.dumps({"jsonrpc": "2.0", "id": "after", "method": "ping"}))
    seen: list[Any] = []
    deadline = time.monotonic() + ANSWER_WITHIN
    while "after" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([wire.server.stdout], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(wire.server.stdout.fileno(), 65536) if ready else b""
        assert chunk, f"no answer to the last ping; seen {seen}"
        wire.buffer += chunk
        while b"\n" in wire.buffer:
            line, _, rest = bytes(wire.buffer).partition(b"\n")
            wire.buffer[:] = rest
            seen.append(json.loads(line).get("id"))
    assert seen == [9, 10, "after"], seen  # the batch's one element under its own id (refused: 2025-11-25 has none)


async def test_an_unknown_tool_name_is_repeated_at_most_200_characters_long(connect):
    """The audit: a 40 MB tool name got a 40 MB "Unknown tool: ..." answer (peak memory several times that)."""
    async with connect() as client:
        result = await client.call_tool("n" * 100_000, {})
    assert result.is_error
    assert len(text_of(result)) < 300 and "(100000 characters)" in text_of(result), text_of(result)[:300]


@pytest.mark.stdio
def test_an_unknown_method_is_repeated_at_most_200_characters_long(wire):
    """The audit: the SDK's "Method not found" carries the method as its data, whole (40 MB for a 40 MB method)."""
    wire.handshake()
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "m" * 100_000}))
    error = wire.answer(7)["error"]
    assert error["code"] == -32601 and len(json.dumps(error)) < 400, json.dumps(error)[:300]
    assert "(100000 characters)" in error["data"]
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 8, "method": "kie/nothing"}))
    assert wire.answer(8)["error"]["data"] == "kie/nothing"  # a short one as it was sent


# -- ids and the handshake -----------------------------------------------------------------------


@pytest.mark.stdio
@pytest.mark.parametrize("era", ["2026-07-28", "2025-11-25", "2025-06-18"])
def test_a_request_whose_id_is_no_string_or_integer_is_answered_with_no_id_and_never_run(wire, simulator_process, era):
    """The SDK's reader takes a request whose id is null, a fraction, true, an object or a list for a notification:
    nothing of it runs, nothing answers it, and its caller waits for ever. The audit: only stderr said so. Each is
    answered with an Invalid Request (-32600) whose id is JSON-RPC 2.0's null for an id it could not take, left out
    where MCP's revision writes it so (``stdio.id_left_out``: 2025-11-25, the 2026-07-28 era), saying what the id is,
    never its text; the warning on stderr stays, and nothing of it runs."""
    params = _begin(wire, era)
    left_out = era != "2025-06-18"
    before = _kie_requests(simulator_process)
    odd = ("null", "1.5", "true", '{"n": 1}', "[1]")
    kinds = ["null", "a number with a fraction, or too large", "true", "an object", "a list"]
    credits = json.dumps({"name": "check_credits", "arguments": {}, **params})
    for written in odd:
        wire.send(f'{{"jsonrpc":"2.0","id":{written},"method":"tools/call","params":{credits}}}')
    wire.send(json.dumps({"jsonrpc": "2.0", "id": "after", "method": "tools/list", "params": params}))
    *answers, after = wire.messages_until("after")
    assert "tools" in after["result"], after  # the server goes on
    assert len(answers) == len(odd), answers
    for answer, kind in zip(answers, kinds, strict=True):
        assert ("id" not in answer) if left_out else (answer["id"] is None), answer
        error = answer["error"]
        assert error["code"] == INVALID_REQUEST and error["data"] == {"reason": "odd-id"}, error
        assert error["message"].startswith(f"kie-mcp did not run this tools/call request: its id is {kind}, and"), error
        said = "this answer has no id" if left_out else "this answer's id is null"
        assert said in error["message"] and "Nothing of it was run" in error["message"], error
        if left_out:
            Draft202012Validator(ERROR_RESPONSE).validate(answer)
    warned = wire.warnings(5, "kie_mcp.stdio: a request of")
    assert len(warned) == len(kinds), warned
    for line, kind in zip(warned, kinds, strict=True):
        assert "WARNING" in line and f"has an id that is {kind}, and" in line and "nothing of it was run" in line, line
    assert "check_credits" not in wire.errors.read_text()  # what the line said is never logged
    assert CREDIT not in _kie_requests(simulator_process)[len(before) :]  # the balance was never asked for


@pytest.mark.stdio
@pytest.mark.parametrize("era", ["handshake", "envelope"], ids=["2025-11-25", "2026-07-28"])
def test_a_whole_number_id_written_as_a_fraction_is_answered_under_it_and_never_run(wire, simulator_process, era):
    """``2.0`` is a JSON-RPC number id the SDK's ids (text or integers) do not take: the call was dropped without an
    answer. It is answered under that id (2), saying ids must be strings or integers; nothing of it runs."""
    params: dict[str, Any] = {"name": "check_credits", "arguments": {}}
    if era == "handshake":
        wire.handshake()
    else:
        params["_meta"] = ENVELOPE
    before = _kie_requests(simulator_process)
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 2.0, "method": "tools/call", "params": params}))
    error = wire.answer(2)["error"]
    assert error["code"] == INVALID_REQUEST, error
    assert "this tools/call request: its id 2.0 is a number written with a fraction" in error["message"], error
    assert (
        "Nothing of it was run" in error["message"] and "Send it again with the id 2: ids must be" in error["message"]
    )
    assert CREDIT not in _kie_requests(simulator_process)[len(before) :]  # the balance was never asked for
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}))
    assert "result" in wire.answer(3)  # served as any other
    assert CREDIT in _kie_requests(simulator_process)[len(before) :]


@pytest.mark.stdio
def test_a_request_before_initialize_is_told_to_send_initialize_or_the_2026_envelope_first(wire):
    """The audit: the SDK answered -32602 "Invalid request parameters" with empty data, naming nothing, and that
    first request fixed the connection's era. The answer now says what to send first, and why the envelope no
    longer helps on this connection."""
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "check_credits"}}))
    error = wire.answer(1)["error"]
    assert error["code"] == INVALID_PARAMS, error
    message = error["message"]
    assert message.startswith("kie-mcp did not run this tools/call request: this connection has not been initialized")
    assert "Send initialize first (then notifications/initialized)" in message, message
    for key in ENVELOPE:  # the 2026-07-28 envelope's fields, named
        assert key in message, message
    assert error["data"] == {"send_first": "initialize", "envelope": list(ENVELOPE)}, error
    wire.handshake()
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "check_credits"}}))
    assert "result" in wire.answer(2)


@pytest.mark.stdio
def test_a_request_reusing_the_id_of_one_still_running_is_refused_and_the_first_stays_cancellable(
    wire, simulator_process
):
    """The audit: the SDK's dispatcher keeps one request by id, so a second request under the id of one waiting
    for its form took its place: a cancel stopped only the newer, and the older, once its form was confirmed, spent.
    The second is refused under that id (Invalid Request) and never runs; the first is cancelled as asked, and
    the id is free again once its request is cancelled or answered."""
    wire.handshake({"elicitation": {"form": {}}})
    call = {"name": "generate_image", "arguments": {"prompt": "an apple"}}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": call}))
    form = wire.request("elicitation/create")
    again = {"name": "generate_image", "arguments": {"prompt": "a pear", "variations": 2}}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": again}))
    error = wire.answer(42)["error"]
    assert error["code"] == INVALID_REQUEST, error
    said = error["message"]  # the final read: never read as the first request's answer ("ran nothing")
    assert said.startswith("A request under this id (42) is still running, and its answer will come under this id")
    assert "This second tools/call request with the same id was not run" in said and "the first goes on" in said
    wire.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 42}}))
    answer = {"action": "accept", "content": {"confirm": True}}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": form["id"], "result": answer}))  # a yes, too late
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "ping"}))  # free: its request was cancelled
    assert wire.answer(42)["result"] == {}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 42, "method": "ping"}))  # free: its request was answered
    assert wire.answer(42)["result"] == {}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "list_tasks"}}))
    assert wire.answer(9)["result"]["structuredContent"]["total"] == 0
    assert not CREATE_PATHS & set(_kie_requests(simulator_process))


@pytest.mark.stdio
def test_initialized_after_a_refused_initialize_opens_nothing_and_a_valid_initialize_still_can(wire, simulator_process):
    """The audit: an initialize refused (no ``capabilities``: -32602) and then ``notifications/initialized`` opened the
    connection: a generate_image was served (its quote) with no protocol version agreed. The notification is ignored
    until an initialize succeeded, said on stderr; requests are still told to send initialize first, and a valid
    initialize then opens the connection as it would have at the start."""
    refused = {"protocolVersion": "2025-11-25", "clientInfo": {"name": "raw", "version": "1"}}
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": refused}))
    assert wire.answer(0)["error"]["code"] == INVALID_PARAMS
    wire.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    call = {"name": "generate_image", "arguments": {"prompt": "an apple"}}
    before = _kie_requests(simulator_process)
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}))
    error = wire.answer(1)["error"]
    assert error["code"] == INVALID_PARAMS, error
    assert "this connection has not been initialized" in error["message"], error
    assert error["data"]["send_first"] == "initialize", error
    warned = wire.warnings(1, "notifications/initialized")
    assert len(warned) == 1 and "WARNING" in warned[0] and "no initialize has succeeded" in warned[0], warned
    wire.handshake()  # accepted: the refused one opened nothing
    wire.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "check_credits"}}))
    assert "result" in wire.answer(2)
    assert not CREATE_PATHS & set(_kie_requests(simulator_process)[len(before) :])
