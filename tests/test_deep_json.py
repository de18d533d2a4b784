"""A message nested deeper than the SDK's JSON reader reads is answered over stdio, never dropped in silence.

The SDK's stdio transport reads each line with pydantic, whose JSON reader refuses nesting past its limit
(``stdio.DEEPEST_JSON``: 200 lists and objects inside each other with pydantic-core 2.50) and the SDK drops
such a line unanswered: the client waited for ever on that call. kie-mcp puts a shallow stand-in with the same id
in its place (``stdio.stand_ins``), which is answered with an Invalid Request error saying why; nothing of
it is run.

The stdio tests run the installed ``kie-mcp`` against the simulator in its own process (``kie-mcp sim``), so what
reached KIE is read from the simulator's request log: never a create or an upload.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import INVALID_REQUEST, jsonrpc_message_adapter

from kie_mcp import stdio
from kie_mcp.stdio import DEEPEST_JSON, UNREADABLE_METHOD, mend_line, top_level_members

from .conftest import CREATE_PATHS, answering

ANSWER_WITHIN = 20  # seconds: a dropped line is never answered, so a test of one fails here instead of hanging
ESTIMATE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table"}


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` lists and objects inside each other, alternately."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


def call_line(request_id: Any, options_depth: int, **extra: Any) -> str:
    """A tools/call of estimate_cost as a client writes it, its ``options`` ``options_depth`` levels deep (the
    line 3 levels deeper: the message, its params and the arguments hold them)."""
    arguments = {**ESTIMATE, "options": nested(options_depth)}
    params = {"name": "estimate_cost", "arguments": arguments, **extra}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


# -- the stand-in, line by line --------------------------------------------------------------------------


def test_the_depth_kie_mcp_reads_is_the_one_the_sdks_reader_reads():
    readable = call_line(1, DEEPEST_JSON - 3)
    jsonrpc_message_adapter.validate_json(readable, by_name=False)
    with pytest.raises(ValueError, match="recursion limit"):
        jsonrpc_message_adapter.validate_json(call_line(1, DEEPEST_JSON - 2), by_name=False)
    assert mend_line(readable) == readable  # just under the limit: the line as it came
    shortest = "[" * (DEEPEST_JSON + 1) + "0" + "]" * (DEEPEST_JSON + 1)  # no shorter line is too deep
    with pytest.raises(ValueError, match="recursion limit"):
        jsonrpc_message_adapter.validate_json(shortest, by_name=False)


@pytest.mark.parametrize(
    ("written_id", "request_id"),
    [("7", 7), ('"call-7"', "call-7"), (r'"\u00e9t\u00e9 \"7\""', 'été "7"'), ('"[{id}]"', "[{id}]")],
)
def test_a_deep_request_stands_in_as_a_shallow_one_with_its_own_id(written_id, request_id):
    deep = call_line(0, DEEPEST_JSON).replace('"id": 0', f'"id": {written_id}')
    stand_in = jsonrpc_message_adapter.validate_json(mend_line(deep), by_name=False)
    assert stand_in.id == request_id
    assert stand_in.method == UNREADABLE_METHOD
    assert stand_in.params == {"method": "tools/call"}


def test_the_id_is_found_after_the_deep_params_and_under_an_escaped_key():
    deep = call_line(0, DEEPEST_JSON).replace('"id": 0, ', "")[:-1] + r', "\u0069d": 41}'
    assert jsonrpc_message_adapter.validate_json(mend_line(deep), by_name=False).id == 41


def test_brackets_quotes_and_id_inside_strings_are_text_not_structure():
    decoy = r'"id": 666, \"id\": 667, [[[{{{ \\'
    prompt = decoy * 80  # 480 brackets in the text alone: more than DEEPEST_JSON
    shallow = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"arguments": {"p": prompt}}})
    assert mend_line(shallow) == shallow  # many brackets, all text: read by the SDK as it is
    deep = call_line(5, DEEPEST_JSON, note=prompt)
    assert jsonrpc_message_adapter.validate_json(mend_line(deep), by_name=False).id == 5
    top, params = top_level_members(deep)
    assert set(top) == {"jsonrpc", "id", "method", "params"}
    assert set(params) == {"name", "arguments", "note"}
    start, end = top["id"]
    assert deep[start:end] == "5"


def test_the_2026_envelope_stays_with_the_stand_in():
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    stand_in = json.loads(mend_line(call_line(3, DEEPEST_JSON, _meta=meta)))
    assert stand_in["params"] == {"method": "tools/call", "_meta": meta}


def test_a_deep_line_with_a_lone_surrogate_escape_is_mended_and_stands_in():
    deep = call_line(9, DEEPEST_JSON).replace("a red apple", r"a red apple \ud83d")
    assert json.loads(mend_line(deep))["method"] == UNREADABLE_METHOD


def test_a_deep_answer_to_a_request_of_the_server_becomes_an_error_answer_with_its_id():
    deep = json.dumps({"jsonrpc": "2.0", "id": 4, "result": {"action": "accept", "content": nested(DEEPEST_JSON)}})
    answer = jsonrpc_message_adapter.validate_json(mend_line(deep), by_name=False)
    assert answer.id == 4
    assert answer.error.code == INVALID_REQUEST
    assert f"nested more than {DEEPEST_JSON} levels deep" in answer.error.message


@pytest.mark.parametrize("request_id", [None, "null", "{}", "true"])
def test_a_deep_notification_or_a_message_without_an_id_to_answer_is_left_to_the_sdk(request_id):
    deep = call_line(0, DEEPEST_JSON)
    deep = deep.replace('"id": 0, ', "") if request_id is None else deep.replace('"id": 0', f'"id": {request_id}')
    assert mend_line(deep) == deep


def test_the_error_names_the_method_only_when_it_is_a_plain_name():
    assert "this tools/call request" in _error_of(call_line(1, DEEPEST_JSON))
    sneaky = call_line(1, DEEPEST_JSON).replace('"tools/call"', '"sk-secret key\\n and more"')
    assert json.loads(mend_line(sneaky))["params"] == {"method": None}


def _error_of(line: str) -> str:
    return stdio.unreadable_error(json.loads(mend_line(line))["params"]).error.message


# -- over real stdio ---------------------------------------------------------------------------------------


def _server_env(base: str, workspace: Path) -> dict[str, str]:
    return {
        "KIE_BASE_URL": base,
        "KIE_UPLOAD_BASE_URL": base,
        "KIE_API_KEY": "sandbox-key",
        "KIE_WORKSPACE": str(workspace),
        "KIE_CATALOG_SYNC": "off",  # the start's look at KIE's model list would land in the request log any time
    }


def _script() -> str:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script, "the kie-mcp console script is not installed beside this Python"
    return script


def _kie_requests(base: str) -> list[str]:
    """The paths of every request the simulator has seen."""
    items = httpx2.get(f"{base}/__sim/requests", timeout=10).json()
    return [r["path"] for r in (items if isinstance(items, list) else items["requests"])]


@pytest.mark.stdio
@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
@pytest.mark.parametrize("tool", ["estimate_cost", "generate_image"])
async def test_a_too_deep_tool_call_is_answered_with_an_error_and_the_next_call_is_served(
    simulator_process, tmp_path, mode, tool
):
    base = simulator_process
    params = StdioServerParameters(command=_script(), args=[], env=_server_env(base, tmp_path))
    too_deep = {**ESTIMATE, "options": {"resolution": nested(DEEPEST_JSON)}}
    async with Client(
        params, mode=mode, elicitation_callback=answering(), read_timeout_seconds=ANSWER_WITHIN
    ) as client:
        await client.list_tools()
        before = _kie_requests(base)
        with pytest.raises(MCPError) as refused:
            await client.call_tool(tool, too_deep)
        assert refused.value.code == INVALID_REQUEST, refused.value.message  # not a timeout: answered
        assert f"this tools/call request: its JSON is nested more than {DEEPEST_JSON} levels" in refused.value.message
        assert "Send the arguments flatter" in refused.value.message
        assert _kie_requests(base) == before  # nothing priced against KIE, created or uploaded
        served = await client.call_tool("estimate_cost", ESTIMATE)
    assert served.is_error is False
    assert served.structured_content["quote"]["credits_total"] == 8
    assert not CREATE_PATHS & set(_kie_requests(base))
    assert not any("upload" in path.lower() for path in _kie_requests(base))


@pytest.mark.stdio
@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_a_tool_call_just_under_the_depth_limit_is_served_as_any_other(simulator_process, tmp_path, mode):
    """The line is DEEPEST_JSON levels deep: the message, its params, the arguments and the options."""
    params = StdioServerParameters(command=_script(), args=[], env=_server_env(simulator_process, tmp_path))
    arguments = {**ESTIMATE, "options": {"resolution": nested(DEEPEST_JSON - 4)}}
    async with Client(params, mode=mode, read_timeout_seconds=ANSWER_WITHIN) as client:
        result = await client.call_tool("estimate_cost", arguments)
    assert result.is_error is True  # read and judged: a resolution is not a nested object
    assert "resolution" in result.content[0].text


def hello(capabilities: Any = None) -> dict[str, Any]:
    """The params of a handshake-era ``initialize``."""
    client = {"name": "raw", "version": "1"}
    return {"protocolVersion": "2025-11-25", "capabilities": capabilities or {}, "clientInfo": client}


class RawWire:
    """The installed kie-mcp over real stdio, spoken line by line as a client that writes its own JSON."""

    def __init__(
        self, base: str, workspace: Path, capabilities: dict[str, Any] | None = None, *, handshake: bool = True
    ) -> None:
        env = {**os.environ, **_server_env(base, workspace)}
        self.server = subprocess.Popen(
            [_script()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        if handshake:
            try:
                self.handshake(capabilities)
            except BaseException:
                self.close()
                raise

    def handshake(self, capabilities: dict[str, Any] | None = None) -> None:
        self.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello(capabilities)}))
        assert "result" in self.read()
        self.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')

    def send(self, line: str) -> None:
        assert self.server.stdin is not None
        self.server.stdin.write(line.encode() + b"\n")
        self.server.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.server.stdout is not None
        ready, _, _ = select.select([self.server.stdout], [], [], ANSWER_WITHIN)
        assert ready, "no answer: the line was dropped"
        return json.loads(self.server.stdout.readline())

    def close(self) -> int:
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.close()
        exited = self.server.wait(timeout=30)
        self.server.stdout.close()
        return exited


@pytest.mark.stdio
def test_a_deep_request_with_a_string_id_is_answered_with_that_id(simulator_process, tmp_path):
    wire = RawWire(simulator_process, tmp_path)
    try:
        wire.send(call_line("ask \u00e9 [1]", DEEPEST_JSON))  # json.dumps escapes the é
        answer = wire.read()
        assert answer["id"] == "ask \u00e9 [1]"
        assert answer["error"]["code"] == INVALID_REQUEST
        wire.send(call_line(2, 1))  # the server goes on
        assert wire.read()["id"] == 2
    finally:
        assert wire.close() == 0
    assert not CREATE_PATHS & set(_kie_requests(simulator_process))


@pytest.mark.stdio
def test_a_deep_notification_is_ignored_and_the_next_request_is_answered(simulator_process, tmp_path):
    wire = RawWire(simulator_process, tmp_path)
    try:
        deep = {"progressToken": 1, "progress": 1, "message": nested(DEEPEST_JSON)}
        wire.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "params": deep}))
        wire.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
        assert wire.read() == {"jsonrpc": "2.0", "id": 3, "result": {}}  # the first answer: none to the notification
    finally:
        assert wire.close() == 0


@pytest.mark.stdio
def test_a_deep_answer_to_the_confirmation_form_approves_nothing_and_the_call_goes_on(simulator_process, tmp_path):
    """The form's answer nested too deep was dropped: the call waited for it (10 minutes). It is now an answer
    that could not be read: nothing approved, nothing created, the quote returned to approve in the chat."""
    wire = RawWire(simulator_process, tmp_path, capabilities={"elicitation": {"form": {}}})
    try:
        call = {"name": "generate_image", "arguments": ESTIMATE}
        wire.send(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": call}))
        question = wire.read()
        assert question["method"] == "elicitation/create"
        content = {"confirm": True, "note": nested(DEEPEST_JSON)}
        wire.send(
            json.dumps({"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": content}})
        )
        result = wire.read()["result"]
    finally:
        assert wire.close() == 0
    assert result["structuredContent"]["status"] == "confirmation_required"
    assert f"nested more than {DEEPEST_JSON} levels deep" in result["structuredContent"]["message"]
    assert not CREATE_PATHS & set(_kie_requests(simulator_process))


@pytest.mark.stdio
def test_a_request_whose_id_is_nested_deeper_than_python_reads_never_stops_the_server(simulator_process, tmp_path):
    """The review: an id 5,000 lists deep made reading the id raise RecursionError in the stdin reader, which ended
    the server (and every call in flight with it). Such a line is left to the SDK, which drops it, as before."""
    wire = RawWire(simulator_process, tmp_path)
    try:
        wire.send('{"jsonrpc":"2.0","id":' + "[" * 5000 + "]" * 5000 + ',"method":"tools/call","params":{}}')
        wire.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
        assert wire.read() == {"jsonrpc": "2.0", "id": 3, "result": {}}
    finally:
        assert wire.close() == 0


@pytest.mark.stdio
def test_a_deep_request_before_the_handshake_is_answered_with_why_and_the_handshake_then_served(
    simulator_process, tmp_path
):
    """The review: before ``initialize`` ended, the SDK answered the stand-in with a bare "Invalid request
    parameters", as any request then; the answer says why, and the handshake that follows is served."""
    wire = RawWire(simulator_process, tmp_path, handshake=False)
    try:
        deep = {"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": hello(nested(DEEPEST_JSON))}
        wire.send(json.dumps(deep))
        answer = wire.read()
        assert answer["id"] == 9 and answer["error"]["code"] == INVALID_REQUEST
        assert f"this initialize request: its JSON is nested more than {DEEPEST_JSON}" in answer["error"]["message"]
        wire.handshake()
    finally:
        assert wire.close() == 0


def test_a_deep_line_carrying_a_long_text_is_looked_into_in_little_memory():
    """The review: the string pattern took about 117 bytes of the regex engine's stack a character (2.4 GB for a
    20 MB text) and each open bracket an entry in three lists. Under a 500 MiB address-space limit, a deep request
    carrying 20 MB of text, and one of two million brackets, are both answered."""
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (500 * 2**20, 500 * 2**20))\n"
        "from kie_mcp.stdio import mend_line\n"
        "text = '\"' + 'A' * 20_000_000 + '\"'\n"
        'print(mend_line(\'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"x":\' + text'
        " + ',\"o\":' + '[' * 300 + ']' * 300 + '}}'))\n"
        'print(mend_line(\'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"o":\''
        " + '[' * 2_000_000 + ']' * 2_000_000 + '}}'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(a["id"], a["method"]) for a in answers] == [(7, UNREADABLE_METHOD), (8, UNREADABLE_METHOD)]
