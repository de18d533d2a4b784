"""The stdio session, with every line the client sends made readable first.

The SDK's stdio transport reads each line with pydantic and drops a line it cannot read without an answer (its
dispatcher logs it at DEBUG): the client waits for ever on that call. So each line is read here first, by the SDK's
own reader (``jsonrpc_message_adapter``: its verdict, by construction), in the worker thread that reads stdin (3 to
6 microseconds a line of a tool call, which the SDK then spends again). A line it takes is passed on as it is.
A line it refuses and that names a request's id is answered under that id: a shallow ``kie-mcp/unreadable`` request
with the same id (and the same ``_meta``, so the 2026-07-28 envelope still routes it) stands in for it, which the
server answers with an error saying what was wrong (``unreadable_error``); nothing of it is run:

- not JSON (a line cut short, a trailing comma, a bad escape): Parse error (-32700), with where it broke;
- two or more messages on one line: each request among them gets a Parse error (-32700), each under its own id;
- JSON, but no JSON-RPC 2.0 request (``jsonrpc`` missing or not "2.0", ``method`` not text, ``params`` a list or
  text): Invalid Request (-32600), naming the member;
- nested deeper than pydantic's JSON reader reads (``DEEPEST_JSON``: 200 lists and objects inside each other with
  pydantic-core 2.50): Invalid Request (-32600), saying so.

A JSON-RPC batch (a list of objects) becomes its messages, each read as a line of its own (so an unreadable one gets
its stand-in), each request and notification among them marked ``BATCHED`` in its ``_meta``. MCP 2025-03-26 says
implementations MUST receive batches (and kie-mcp accepts that revision); 2025-06-18 removed them. Only the server
knows which revision a request is served in, so the server runs a marked request where batches exist and refuses it
under its id where not (``refuse_batch``). A notification has no id to refuse it under: where the handshake agreed on
no revision with batches, ``RequestsOnce`` drops it before the SDK sees it (a cancel in it cancels nothing), with one
line on stderr. Each answer is written on a line of its own, not gathered into one list: the SDK's writer writes one
message a line, and JSON-RPC's batch answer is a SHOULD; an SDK client matches answers by id.

A client's answer to a request of the server (a form's answer) that cannot be read becomes an error answer with its
id, so the call waiting for it goes on at once. A line that is not JSON and names no id to answer under (a batch cut
short, a request cut before its id, a notification cut short) is answered with a Parse error (-32700), saying where
it broke, with a warning on stderr; the ids of a line cut short are not guessed at, and nothing in it runs (a
``kie-mcp/unparseable`` notification of this process's own stands in for it, which ``RequestsOnce`` answers). That
answer has no ``id`` member, as MCP 2025-11-25 and later write an error whose request's id could not be read (their
``JSONRPCErrorResponse``: ``id?: RequestId``, never null; the TypeScript SDK of Claude Desktop, VS Code and Cursor
refuses an error under id null); to a client whose handshake agreed on 2025-06-18 or before, whose schema requires
an id (``RequestId``: text or a number), it is ``"id": null``, JSON-RPC 2.0's own answer to a line it cannot parse
(``id_left_out``: the revision as the handshake's answer said it; none yet, or the 2026-07-28 era: left out).

An empty JSON-RPC batch (``[]``), and each element of a batch that is not an object (``[1, 2]``: a number, text, a
list), is answered with an Invalid Request (-32600) with no id, or under id null by the same rule (``id_left_out``), as
JSON-RPC 2.0 answers them (one for the empty batch, one an element), with a warning on stderr; the other elements of
the batch are read as ever. JSON that is no message at all (``{"foo": "boo"}``, JSON-RPC 2.0's own example; text; a
number), alone on a line or in a batch, is answered the same way (``NO_MESSAGE``). JSON with no id to answer that may
be a message (a notification the SDK cannot read, an answer with no id) stays dropped, with a warning on stderr (a
blank line, at DEBUG). The id, method and ``_meta`` are found without
reading the line as JSON (``top_level_members``): strings skipped whole, deep containers only counted.

The SDK's reader takes a request whose id is not a string or an integer for a notification (its ``id`` ignored):
nothing of it runs and nothing answers it. Such a line gets one more look (a notification is rare: initialized,
cancelled): a whole number written as a fraction or with an exponent (``2.0``, ``1e3``: JSON-RPC number ids) gets a
stand-in under that number, answered that ids must be strings or integers (Invalid Request); any other (null, a
fraction, true, an object, a list) is answered with an Invalid Request with no id (or under id null, as above), its id
not being one to answer under, with a warning on stderr saying what the id is, its length, never its text; nothing of
it runs. A method under ``notifications/`` written with an id (JSON-RPC 1.0 wrote ``"id": null``) goes on as the
notification it is.

A request whose id is that of one still in flight is refused under that id (Invalid Request) and never passed on
(``RequestsOnce``): the SDK's dispatcher keeps one request by id, so the newer took the older's place, a cancel
stopped only the newer, and the older went on to ask its form and spend. An id is in flight from its request until
the answer under it is written, or the client cancels it.

JSON may escape a lone UTF-16 surrogate (``"\\ud83d"``: an emoji cut in half, as a host that escapes non-ASCII
text and cuts it may send). pydantic refuses such a line ("unexpected end of hex escape"); here each lone surrogate
escape becomes ``\\ufffd`` (U+FFFD, as KIE's own answers are mended in ``kie/text.py``) before the line is read, so
the call is answered like any other: the text with a replacement character, shown in the confirmation like the rest
of the request.

A line ends at "\\n" alone, as MCP's stdio transport delimits messages (``NEWLINE``): Python's universal newlines
also ended one at a bare "\\r", which is JSON whitespace, so a request with one between its members was cut in two
halves and never answered. A line ending "\\r\\n" keeps its "\\r", whitespace after the JSON.

When the client closes stdin while a create is on its way to KIE, the session ends and the process waits for the
create's answer (shielded, so its task is recorded): that is said on stderr, as a signal's stop says it
(``stopping``).

A host that writes "UTF-8 with BOM" (.NET's ``Encoding.UTF8``) starts its first line with a byte-order mark,
which no JSON starts with: the SDK dropped that line (the ``initialize``, so the host never connected). It is
taken off.

What the server writes is made writable too. A path (or a setting's value) given in bytes that are not UTF-8 is
text with lone surrogates in it (Python's ``surrogateescape``): a folder named in Latin-1 on a UTF-8 system, or any
name beyond ASCII where the file system's encoding is ASCII (``PYTHONUTF8=0`` under the C locale). JSON cannot carry
them: the SDK's writer failed on the first answer naming one (the initialize's instructions name the workspace) and
the session ended, the client waiting for ever for that answer. Each message is serialized here, once, as the SDK's
writer would (which is then handed the text), and one that cannot be is written with such text as its bytes read as
UTF-8, each byte that is not UTF-8 escaped (``proj_\\xe9t\\xe9``; ``words.readable_text``).

The SDK claims fd 0 only when it opens stdin itself; this module opens it, so it claims it the same way: the wire
is read from a private duplicate and fd 0 points at the null device while serving (a child such as ffmpeg reads
end-of-file, never the protocol), restored on exit.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp import MCPError
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic_core import PydanticSerializationError, from_json

from kie_mcp.redact import redact
from kie_mcp.words import plain, readable_text

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

log = logging.getLogger(__name__)

# At each backslash, left to right (so ``\\`` is one escape and never starts another): a surrogate pair, a lone
# surrogate, or any other escape. Only the lone one is replaced.
_ESCAPES = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\.", re.S
)
_LONE_ESCAPE_LENGTH = 6
REPLACEMENT_ESCAPE = "\\ufffd"
BYTE_ORDER_MARK = "\ufeff"  # JSON never starts with one; the SDK's reader refuses a line that does

UNREADABLE_METHOD = "kie-mcp/unreadable"
# This process's own secret, in what the reader adds to a line (the stand-in below, the batch mark): a client cannot
# write either on a message of its own (a lone notifications/cancelled marked as batched would be dropped, and the
# call it named run on and charged).
_OWN_TOKEN = secrets.token_hex(16)
# A line that is not JSON and names no id to answer under: this notification stands in for it (``_unparseable``), and
# ``RequestsOnce`` answers it with a Parse error with no id (``id_left_out``), never passing it on. With the token, a
# client's notification of that name is only a notification.
UNPARSEABLE_METHOD = "kie-mcp/unparseable"
BATCHED = "kie-mcp/batched"  # the _meta mark of a request that came in a JSON-RPC batch (``came_in_batch``)
LAST_BATCHING_PROTOCOL = "2025-03-26"  # the last MCP revision with JSON-RPC batches
LAST_ERROR_ID_REQUIRED = "2025-06-18"  # the last MCP revision whose error answers must carry an id (``id_left_out``)
# JSON's tokens: a string (escapes and all), a structural character, or a bare scalar (number, true, ...).
# A string unrolled (runs of plain characters between escapes): one step a run, not a regex stack frame a character.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]|[^\s\[\]{}:,"]+|(?P<open>")', re.S)
_NO_STRINGS = re.compile(r'[\[\]{}:,]|[^\s\[\]{}:,"]+')


def _token_matches(line: str) -> Iterator[re.Match[str]]:
    """``_TOKENS``' matches in ``line``, as before: a quote that opens no closed string is no token, and neither is any
    quote after it (each later one was an escaped quote of that open string, so it fails alike): the rest is read
    for structure and bare scalars only, once, not again from each of its quotes (quadratic in the line)."""
    for token in _TOKENS.finditer(line):
        if token.group("open") is None:
            yield token
        else:
            yield from _NO_STRINGS.finditer(line, token.end())
            return


Span = tuple[int, int]  # where a value is written in a line: its start and end
_TRACKED = 3  # the top-level object, ``params``, and its members' own containers (``_meta``)
_METHOD_NAME = re.compile(r"[A-Za-z0-9_./-]{1,64}")  # a method named in the error: only a plain, short one


def _deepest_json() -> int:
    """How many lists and objects inside each other pydantic-core's JSON reader (the SDK's) reads, a value in the
    innermost, found by asking it once. A line past it has more brackets than that."""
    readable, unreadable = 1, 1 << 12  # past 4095, the slow path (pydantic's reader) still decides
    while unreadable - readable > 1:
        depth = (readable + unreadable) // 2
        try:
            from_json("[" * depth + "0" + "]" * depth)
        except ValueError:
            unreadable = depth
        else:
            readable = depth
    return readable


DEEPEST_JSON = _deepest_json()

# What was wrong with a line the SDK's reader refuses: the stand-in's ``why`` (only these are ever named; none: it
# was nested too deep, as every stand-in was before the others).
NOT_JSON, SEVERAL, NOT_JSON_RPC, ODD_ID = "not-json", "several", "not-json-rpc", "odd-id"
# JSON with no id kie-mcp can answer under, answered with an Invalid Request with no id (``_without_id``): a request
# whose id is no string or whole number (``ODD_ID``), an empty batch, a batch's element that is not an object, a
# line or element that is JSON but no message at all (``NO_MESSAGE``: a value not an object, or an object with none
# of a message's members: JSON-RPC 2.0's own example, ``{"foo": "boo"}``).
EMPTY_BATCH, NOT_AN_OBJECT, NO_MESSAGE = "empty-batch", "not-an-object", "no-message"
_MESSAGE_MEMBERS = ("id", "method", "result", "error")  # an object with none of them is no request, answer or notice
_ODD_ID = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")  # an id as a stand-in names it (``2.0``)
_PARSE_ERROR = re.compile(r"Invalid JSON: ([A-Za-z ,']{1,60}) at line \d+ column (\d+)")  # pydantic-core's words
_PLAIN_WORDS = re.compile(r"[A-Za-z ,']{1,60}")
# A member of a message the SDK's reader refuses, and what it must be (the first that is not, in this order).
_MEMBERS = {"jsonrpc": 'must be "2.0"', "method": "must be text", "params": "must be an object"}
# An answer to a request of the server that could not be read: the error that request fails with (short, as a form's
# failure quotes it).
_ANSWER_TOO_DEEP = f"its answer is nested more than {DEEPEST_JSON} levels deep"
_ANSWER_PROBLEMS = {
    NOT_JSON: "its answer is not valid JSON",
    SEVERAL: "its answer shares its line with another message",
    NOT_JSON_RPC: "its answer is not a JSON-RPC 2.0 answer",
}


def mend_line(line: str) -> str:
    """``line`` as the SDK reads it (``readable_lines``; of a line holding several messages, the first one's)."""
    return readable_lines(line)[0]


def readable_lines(line: str) -> list[str]:
    """The messages ``line`` stands for, each as the SDK reads it: ``line`` itself, without a leading byte-order mark
    and with every lone surrogate escape written ``\\ufffd``, when the SDK's reader takes it (nearly always: one read,
    and a prefix and two substring checks); else a stand-in for each request (or answer) in it with an id to answer
    (``stand_ins``). The end of the input ("") stays as it is."""
    if line.startswith(BYTE_ORDER_MARK):  # a host writing "UTF-8 with BOM" (.NET's Encoding.UTF8) starts with one
        line = line.lstrip(BYTE_ORDER_MARK)
    if "\\ud" in line or "\\uD" in line:
        line = _ESCAPES.sub(_mend_escape, line)
    if not line:
        return [line]
    try:
        message = jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError as err:
        try:
            return stand_ins(line, err)
        except Exception:  # never the reader's end: the SDK drops the line, as it would have
            log.warning("could not look into a line of %d characters; left to the SDK", len(line), exc_info=True)
    else:
        if isinstance(message, JSONRPCNotification):  # rare (initialized, cancelled): one more look, for an id
            return _request_without_usable_id(line, message.method)
    return [line]


def _request_without_usable_id(line: str, method: str) -> list[str]:
    """``line``, which the SDK's reader took for a notification, as it is; or, when it names an id (a request whose
    id is not a string or an integer, which the SDK reads as a notification: nothing runs, nothing is answered), a
    stand-in answered under that id when it is a whole number written as a fraction (``2.0``), else the warning
    that it is dropped. A notification written with an id (JSON-RPC 1.0 wrote ``"id": null``) goes on as one."""
    if method.startswith("notifications/"):
        return [line]
    top, _ = top_level_members(line)
    written = _written(line, top.get("id"))
    if written is None:
        return [line]
    whole = _whole_number(written)
    if whole is not None:
        return _stand_in(line, {"why": ODD_ID, "id": written}, whole)
    kind = _kind(written, number="a number with a fraction, or too large")
    log.warning(
        "a request of %d characters has an id that is %s, and a JSON-RPC id kie-mcp can answer under is text or a "
        "whole number: answered with an Invalid Request (-32600) with no id (null to a client of MCP 2025-06-18 or "
        "before); nothing of it was run",
        len(line),
        kind,
    )
    return [_without_id({"invalid": ODD_ID, "kind": kind, "method": _string(_written(line, top.get("method")))})]


LONGEST_ODD_ID = 40  # characters of a whole number written as a fraction (``2.0``, ``1e3``) read as an id


def _whole_number(written: str) -> int | None:
    """The whole number a JSON number written with a fraction or an exponent stands for (``2.0``, ``1e3``: JSON
    numbers the SDK's ids, text or integers, do not take), read exactly; None for anything else."""
    from decimal import Decimal, InvalidOperation

    if len(written) > LONGEST_ODD_ID or not _ODD_ID.fullmatch(written):
        return None
    try:
        number = Decimal(written)
    except InvalidOperation:
        return None
    if not number.is_finite() or number.adjusted() >= LONGEST_ODD_ID or number != number.to_integral_value():
        return None
    return int(number)


def _kind(written: str, *, number: str = "a number") -> str:
    """What a JSON value is, in words (never the text itself): an id the SDK cannot take, a batch's element."""
    first = written[:1]
    kinds = {"n": "null", "t": "true", "f": "false", "{": "an object", "[": "a list", '"': "text"}
    return kinds.get(first, number)


def _mend_escape(found: re.Match[str]) -> str:
    escape = found.group()
    return REPLACEMENT_ESCAPE if len(escape) == _LONE_ESCAPE_LENGTH else escape


def stand_ins(line: str, refused: ValueError) -> list[str]:
    """What stands in for ``line``, which the SDK's reader refused (``refused``): for each request in it with an id, a
    ``kie-mcp/unreadable`` request with that id and its ``_meta`` (answered with ``unreadable_error`` by the server's
    middleware), for each answer to a request of the server an error answer with its id. A line with neither stays
    as it is (the SDK drops it; logged here)."""
    elements = _batch_elements(line)
    if elements == []:  # JSON-RPC 2.0 answers an empty batch with one Invalid Request, its id null
        log.warning(
            "a line of %d characters is an empty JSON-RPC batch: answered with an Invalid Request (-32600) with no id "
            "(null to a client of MCP 2025-06-18 or before)",
            len(line.rstrip("\r\n")),
        )
        return [_without_id({"invalid": EMPTY_BATCH, "length": len(line.rstrip("\r\n"))})]
    if elements:  # a JSON-RPC batch: each element a message of its own, answered (or refused) on its own
        return [message for start, end in elements for message in _element_lines(line[start:end])]
    why = _parse_error(refused, line)
    if why is None:  # JSON, but not a JSON-RPC message the SDK takes
        found = _stand_in(line, {"why": NOT_JSON_RPC, **_wrong_member(line)})
    elif "recursion limit" in why[0]:
        found = _stand_in(line, {})
    elif len(messages := _several_messages(line)) > 1:
        found = [answer for start, end in messages for answer in _stand_in(line[start:end], {"why": SEVERAL})]
    else:  # one broken message: the first value's, never what a stray bracket leaves after it (another id)
        first = next(((start, end) for start, end in _top_level_values(line) if line[start] == "{"), (0, len(line)))
        found = _stand_in(line[first[0] : first[1]], {"why": NOT_JSON, "what": why[0], "at": why[1]})
    if not found and why is not None and "recursion limit" not in why[0] and line.strip():
        length = len(line.rstrip("\r\n"))  # as the client wrote it, without the line's end
        log.warning(
            "a line of %d characters is not JSON and names no request id kie-mcp can read: answered with a Parse "
            "error (-32700) with no id (null to a client of MCP 2025-06-18 or before); nothing of it was run",
            length,
        )
        return [_unparseable(why, length)]
    if not found and why is None and (kind := _no_message(line)) is not None:
        log.warning(
            "a line of %d characters is JSON but no JSON-RPC message (%s): answered with an Invalid Request (-32600) "
            "with no id (null to a client of MCP 2025-06-18 or before)",
            len(line.rstrip("\r\n")),
            kind,
        )
        return [_without_id({"invalid": NO_MESSAGE, "kind": kind})]
    if not found:
        if line.lstrip().startswith("["):
            log.warning(
                "dropped a line of %d characters: a list that is no JSON-RPC batch kie-mcp can answer (nested too "
                "deep to read)",
                len(line),
            )
        elif line.strip():
            log.warning(
                "dropped a line of %d characters that is no JSON-RPC message kie-mcp can answer: it names no request "
                "id (a notification, or an id that is not text or a whole number)",
                len(line),
            )
        else:
            log.debug("dropped a blank line")
        return [line]
    return found


def _no_message(line: str) -> str | None:
    """What ``line`` (JSON the SDK's reader refused, naming no id) is when it is no message at all, in words for the
    answer (``_kind``: "text", "a number", "an object with none of a message's members"); None when it may be one (a
    notification the SDK could not read, an answer with no id), which stays unanswered: JSON-RPC never answers those."""
    values = _top_level_values(line)
    if len(values) != 1:
        return None
    start, end = values[0]
    written = line[start:end]
    if written.startswith("["):
        return None  # a batch (``_batch_elements``), or a list nested too deep to read: dropped as before
    if not written.startswith("{"):
        return _kind(written)
    top, _ = top_level_members(line)
    return None if any(member in top for member in _MESSAGE_MEMBERS) else "an object with none of a message's members"


def _unparseable(why: tuple[str, int], length: int) -> str:
    """The notification that stands in for a line of ``length`` characters that is not JSON and names no id to answer
    under (``UNPARSEABLE_METHOD``): what pydantic's reader said of it and where (``why``)."""
    return _without_id({"what": why[0], "at": why[1], "length": length})


def _without_id(params: dict[str, Any]) -> str:
    """The notification (``UNPARSEABLE_METHOD``, with this process's token) that stands in for a message answered
    with no id, or under id null (``unparseable_error``): a line that is not JSON (``params`` says what broke, where),
    or, with ``invalid``, JSON that is no request kie-mcp can answer under an id (``ODD_ID``, ``EMPTY_BATCH``,
    ``NOT_AN_OBJECT``)."""
    return _compact({"jsonrpc": "2.0", "method": UNPARSEABLE_METHOD, "params": {"token": _OWN_TOKEN, **params}})


def _parse_error(refused: ValueError, line: str) -> tuple[str, int] | None:
    """What pydantic's JSON reader said of ``line``, which it could not read, and at which character; None when it
    read it (and the message in it was refused). Said of the line without its end ("\\n"), read again: a line cut short
    broke there, at "line 2 column 0", and one cut inside a string at a control character in it."""
    said = _json_invalid(refused)
    if said is None:
        return None
    ended = line.rstrip("\r\n")
    if ended != line and (said.startswith("control character") or " at line 2 column 0" in said):
        try:
            jsonrpc_message_adapter.validate_json(ended, by_name=False)
        except ValueError as again:
            said = _json_invalid(again) or said
    found = _PARSE_ERROR.fullmatch(said)
    return (found[1], int(found[2])) if found else ("not JSON", 0)


def _json_invalid(refused: ValueError) -> str | None:
    """pydantic's words for JSON it could not read ("Invalid JSON: ..."), or None when the JSON was read."""
    errors = refused.errors(include_url=False) if hasattr(refused, "errors") else []
    if not errors or errors[0].get("type") != "json_invalid":
        return None
    return str(errors[0].get("msg", ""))


def _stand_in(line: str, why: dict[str, Any], request_id: str | int | None = None) -> list[str]:
    """The stand-in for the one message ``line`` holds ([] when it names no id to answer), under ``request_id`` or
    the id it names."""
    top, params = top_level_members(line)
    if request_id is None:
        request_id = _request_id(_written(line, top.get("id")))
    if request_id is None:
        return []
    if "method" in top:
        method = _string(_written(line, top.get("method")))
        stand_in: dict[str, Any] = {"method": method if method and _METHOD_NAME.fullmatch(method) else None, **why}
        meta = _meta(_written(line, params.get("_meta")))
        if meta is not None:  # the 2026-07-28 envelope: the stand-in is served in the request's era
            stand_in["_meta"] = meta
        return [_compact({"jsonrpc": "2.0", "id": request_id, "method": UNREADABLE_METHOD, "params": stand_in})]
    if "result" in top or "error" in top:  # the server's request fails at once
        error = {"code": _unreadable(why)[0], "message": _ANSWER_PROBLEMS.get(why.get("why"), _ANSWER_TOO_DEEP)}
        return [_compact({"jsonrpc": "2.0", "id": request_id, "error": error})]
    return []


def _wrong_member(line: str) -> dict[str, str]:
    """The first of ``_MEMBERS`` that is not what a JSON-RPC request's must be (``{"member": name}``), or nothing."""
    top, _ = top_level_members(line)
    jsonrpc, method, params = (_written(line, top.get(name)) for name in _MEMBERS)
    if _string(jsonrpc) != "2.0":
        return {"member": "jsonrpc"}
    if method is not None and not method.startswith('"'):
        return {"member": "method"}
    if params is not None and params[:1] != "{" and params != "null":
        return {"member": "params"}
    return {}


def _batch_elements(line: str) -> list[Span] | None:
    """Where each element of the JSON-RPC batch ``line`` is (a list alone on the line), or None when it is none. A list
    of objects is read element by element (one of them may be broken); an empty list, or one with an element that is
    not an object (a number, text, a list), only when the line is JSON: each such element is answered with an Invalid
    Request with no id (``_element_lines``), an empty one once (``stand_ins``), as JSON-RPC 2.0 answers them."""
    values = _top_level_values(line)
    if len(values) != 1 or line[values[0][0]] != "[":
        return None
    start, end = values[0][0], len(line[: values[0][1]].rstrip())  # a broken element runs to the line's end
    if line[end - 1] != "]":
        return None
    elements = [(start + 1 + first, start + 1 + last) for first, last in _top_level_values(line[start + 1 : end - 1])]
    if elements and all(line[first] == "{" for first, _ in elements):
        return elements
    try:
        from_json(line)
    except ValueError:  # not JSON (a stray comma, nested too deep): the line is answered as such
        return None
    return elements


def _element_lines(element: str) -> list[str]:
    """The lines an element of a batch stands for (``readable_lines``), a request or notification among them marked
    ``BATCHED`` in its ``_meta``: the server then runs it where the session's protocol takes batches (``refuse_batch``),
    and a notification is dropped where it does not (``RequestsOnce``). An element that is not an object is no
    message: it stands for an Invalid Request with no id (``NOT_AN_OBJECT``)."""
    if not element.startswith("{"):
        kind = _kind(element)
        log.warning(
            "an element of a JSON-RPC batch is %s, not a message: answered with an Invalid Request (-32600) with no id "
            "(null to a client of MCP 2025-06-18 or before)",
            kind,
        )
        return [_without_id({"invalid": NOT_AN_OBJECT, "kind": kind})]
    lines = readable_lines(element)
    try:
        message = json.loads(lines[0]) if len(lines) == 1 else None
    except ValueError:  # unreadable and unanswerable: dropped, as a line of its own would be
        return lines
    if not isinstance(message, dict) or "method" not in message or message["method"] == UNPARSEABLE_METHOD:
        return lines  # an answer, or the stand-in for an element answered with no id (``RequestsOnce`` answers it)
    params = message["params"] if isinstance(message.get("params"), dict) else {}
    meta = params["_meta"] if isinstance(params.get("_meta"), dict) else {}
    params["_meta"] = {**meta, BATCHED: _OWN_TOKEN}
    return [_compact({**message, "params": params})]


def came_in_batch(params: Any) -> bool:
    """Whether a request with ``params`` came in a JSON-RPC batch (``_element_lines`` marked its ``_meta``)."""
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    return isinstance(meta, Mapping) and meta.get(BATCHED) == _OWN_TOKEN


def refuse_batch(protocol_version: str, method: str = "") -> None:
    """Refuse a request that came in a batch when the session's protocol has none: MCP 2025-03-26 took batches
    (implementations MUST receive them), 2025-06-18 removed them. ``initialize`` is never taken in one (2025-03-26
    forbids it; before the handshake the session's version is only the server's default, which said nothing true)."""
    if method == "initialize":
        raise MCPError(
            code=INVALID_REQUEST,
            message="initialize must not be sent in a JSON-RPC batch (MCP 2025-03-26 forbids it; later revisions "
            "have no batches). Nothing of it was run. Send it on a line of its own.",
            data={"batch": True},
        )
    if protocol_version <= LAST_BATCHING_PROTOCOL:
        return
    message = (
        f"kie-mcp did not run this request: it came in a JSON-RPC batch, which MCP {protocol_version} does not take "
        f"(batches were removed after {LAST_BATCHING_PROTOCOL}). Nothing of it was run, priced or sent. Send each "
        "request on a line of its own."
    )
    raise MCPError(code=INVALID_REQUEST, message=message, data={"batch": True})


def without_batch_mark(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without the ``BATCHED`` mark (it was ours, not the client's)."""
    meta = {key: value for key, value in params["_meta"].items() if key != BATCHED}
    return {**{key: value for key, value in params.items() if key != "_meta"}, **({"_meta": meta} if meta else {})}


def _several_messages(line: str) -> list[Span]:
    """The objects ``line`` holds back to back (whitespace at most around and between them), when it holds several
    messages; else []. A stray bracket or member between them (``{"id": 9, ...}}, "x": {"id": 77, ...}}``) makes one
    broken message, whose nested objects are not messages: answering them would fail another call under its id."""
    values = _top_level_values(line)
    gaps = zip([0, *(end for _, end in values)], [*(start for start, _ in values), len(line)], strict=True)
    if len(values) < 2 or any(line[start] != "{" for start, _ in values) or any(line[a:b].strip() for a, b in gaps):
        return []
    return values


def _top_level_values(line: str) -> list[Span]:
    """Where each JSON value written at the top level of ``line`` is (one, unless several messages share the line):
    read by the tokens alone, as ``top_level_members`` reads, a value never closed running to the line's end."""
    values: list[Span] = []
    depth, start = 0, 0
    for token in _token_matches(line):
        first = token.group()[0]
        if first in "[{":
            if depth == 0:
                start = token.start()
            depth += 1
        elif first in "]}":
            if depth == 0:
                continue
            depth -= 1
            if depth == 0:
                values.append((start, token.end()))
        elif depth == 0 and first not in ",:":
            values.append(token.span())
    if depth:
        values.append((start, len(line)))
    return values


def _compact(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def top_level_members(line: str) -> tuple[dict[str, Span], dict[str, Span]]:
    """Where the values of the top-level object's members are in ``line`` (``{key: (start, end)}``; of a repeated
    key the last, as the SDK's reader keeps it), and those of its ``params`` object, read without building any of
    it: strings are skipped whole, so brackets, quotes and keys inside them are text; a value a line cut short leaves
    open runs to its end. Containers deeper than the members of ``params`` are only counted, so a line of millions
    of brackets costs no more memory than its own."""
    top: dict[str, Span] = {}
    params: dict[str, Span] = {}
    depth = 0
    kinds: list[str] = []  # each open container down to ``_TRACKED`` deep: "{" or "["
    keys: list[str | None] = []  # the key each of them is the value of
    starts: list[int] = []
    key: str | None = None  # in an object, the key of the value read next
    key_next = False  # the next string is a key
    for token in _token_matches(line):
        text = token.group()
        first = text[0]
        if first in "[{":
            depth += 1
            if depth > _TRACKED:
                continue
            kinds.append(first)
            keys.append(key)
            starts.append(token.start())
            if len(kinds) == 2 and key == "params":
                params = {}  # a repeated params: the last one counts
            key, key_next = None, first == "{"
        elif first in "]}":
            if depth == 0:
                break
            depth -= 1
            if depth >= _TRACKED:
                continue
            kinds.pop()
            key, start = keys.pop(), starts.pop()
            _keep(top, params, kinds, keys, key, (start, token.end()))
            key_next = False
        elif depth > _TRACKED:
            continue
        elif first == ",":
            key_next = bool(kinds) and kinds[-1] == "{"
        elif first == ":":
            key_next = False
        elif key_next:
            key, key_next = _key(text), False
        else:
            _keep(top, params, kinds, keys, key, token.span())
    while kinds:  # a line cut short: what it left open runs to its end (an answer's "result", say)
        kinds.pop()
        _keep(top, params, kinds, keys, keys.pop(), (starts.pop(), len(line)))
    return top, params


def _keep(
    top: dict[str, Span], params: dict[str, Span], kinds: list[str], keys: list[str | None], key: str | None, span: Span
) -> None:
    """Note where a value is when it is a member of the top-level object or of its ``params``."""
    if key is None or not kinds or kinds[-1] != "{":
        return
    if len(kinds) == 1:
        top[key] = span
    elif len(kinds) == 2 and keys[1] == "params":
        params[key] = span


def _key(token: str) -> str:
    """A key as the reader reads it (``"\\u0069d"`` is ``id``)."""
    return _string(token) or token[1:-1]


def _written(line: str, span: Span | None) -> str | None:
    return None if span is None else line[span[0] : span[1]]


def _string(written: str | None) -> str | None:
    if written is None or not written.startswith('"'):
        return None
    try:
        return str(json.loads(written))
    except ValueError:
        return None


def _request_id(written: str | None) -> str | int | None:
    """A JSON-RPC id the SDK takes (a string or a whole number); anything else (null, a fraction) is none."""
    if written is None or written[:1] not in ('"', "-", *"0123456789"):  # a list or object is no id: not read
        return None
    try:
        value = json.loads(written)
    except ValueError:
        return None
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _meta(written: str | None) -> dict[str, Any] | None:
    """The request's ``_meta`` when it is an object shallow enough to carry over (it always is, from a client)."""
    if written is None or not written.startswith("{") or written.count("[") + written.count("{") > DEEPEST_JSON - 2:
        return None
    try:
        value = json.loads(written)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def unreadable_error(params: Any) -> MCPError:
    """The answer to a ``kie-mcp/unreadable`` stand-in: what was wrong with the line it stood for (its ``why``; nested
    too deep when it names none), said in kie-mcp's own words. The method, and pydantic's words for where the JSON
    broke, are named only when plain and short (a client may send this method itself)."""
    given = params if isinstance(params, Mapping) else {}
    method = given.get("method")
    named = method if isinstance(method, str) and _METHOD_NAME.fullmatch(method) else None
    request = f"this {named} request" if named else "this request"
    code, problem, fix, data = _unreadable(given)
    message = f"kie-mcp could not read {request}: {problem}. Nothing of it was run, priced or sent. {fix}"
    return MCPError(code=code, message=message, data=data)


def _unreadable(why: Mapping[str, Any]) -> tuple[int, str, str, dict[str, Any]]:
    """The error code, the problem, the fix and the data of a line the SDK could not read, by a stand-in's ``why``."""
    reason = why.get("why")
    if reason == NOT_JSON:
        problem, at = _not_json(why)
        fix = "Send it again as one complete JSON object on a line of its own."
        return PARSE_ERROR, f"its line is {problem}", fix, {"at": at}
    if reason == SEVERAL:
        fix = "Send each message on a line of its own."
        return PARSE_ERROR, "its line holds more than one message", fix, {}
    if reason == ODD_ID:
        written = why.get("id")
        whole = _whole_number(written) if isinstance(written, str) else None
        if whole is None:  # a client's own kie-mcp/unreadable request
            return INVALID_REQUEST, "its id is no integer", "Ids must be strings or integers.", {}
        problem = f"its id {written} is a number written with a fraction or an exponent"
        fix = f"Send it again with the id {whole}: ids must be strings or integers."
        return INVALID_REQUEST, problem, fix, {"id": written}
    if reason == NOT_JSON_RPC:
        member = why.get("member")
        wrong = f': "{member}" {_MEMBERS[member]}' if isinstance(member, str) and member in _MEMBERS else ""
        fix = 'A request is {"jsonrpc": "2.0", "id": ..., "method": "...", "params": {...}}.'
        return INVALID_REQUEST, f"it is not a JSON-RPC 2.0 request{wrong}", fix, {"member": member} if wrong else {}
    problem = f"its JSON is nested more than {DEEPEST_JSON} levels deep, and kie-mcp reads at most {DEEPEST_JSON}"
    fix = "Send the arguments flatter: fewer lists and objects inside each other."
    return INVALID_REQUEST, problem, fix, {"deepest": DEEPEST_JSON}


def _not_json(why: Mapping[str, Any]) -> tuple[str, int]:
    """What is wrong with a line pydantic's reader refused as JSON, "not valid JSON (...)" with what broke and where
    (its words in ``why``, named only when plain and short), and the character it broke at (0: not known)."""
    what, at = why.get("what"), why.get("at")
    what = what if isinstance(what, str) and _PLAIN_WORDS.fullmatch(what) else "not JSON"
    if what.startswith("EOF while parsing"):  # pydantic's words for a line cut short, or a bracket missing
        what = "it ends before its JSON does: cut short, or a closing bracket missing"
    at = at if isinstance(at, int) and not isinstance(at, bool) and at >= 0 else 0
    where = f" at character {at}" if at else ""
    return f"not valid JSON ({what}{where})", at


def unparseable_error(params: Any, protocol: str | None) -> JSONRPCError | None:
    """The answer to the stand-in for a line that is not JSON and names no id (``_unparseable``): a Parse error with
    no id, or under id null for a client of ``protocol`` (``id_left_out``), its ids unreadable (a batch cut short, a
    request cut before its id), saying what broke and where; for JSON with no id to answer under (``_without_id``
    with ``invalid``), an Invalid Request so, saying what it is (``_invalid_without_id``). None for a notification of
    that name a client sent (not our token). Its ``id`` is None: ``WritableMessages.refuse`` leaves the member out
    where it is to be."""
    given = params if isinstance(params, Mapping) else {}
    if given.get("token") != _OWN_TOKEN:
        return None
    which = "this answer has no id" if id_left_out(protocol) else "this answer's id is null"
    if "invalid" in given:
        error = _invalid_without_id(given, which)
        return JSONRPCError(jsonrpc="2.0", id=None, error=error)
    problem, at = _not_json(given)
    length = given.get("length")
    line = f"a line of {length} characters" if isinstance(length, int) and not isinstance(length, bool) else "a line"
    message = (
        f"kie-mcp could not read {line} it was sent: it is {problem}, and no request id could be read in it, so "
        f"{which}. Nothing of it was run, priced or sent. Send each request in it again, as complete JSON on a line "
        "of its own."
    )
    error = ErrorData(code=PARSE_ERROR, message=message, data={"at": at, "length": length})
    return JSONRPCError(jsonrpc="2.0", id=None, error=error)


def _invalid_without_id(given: Mapping[str, Any], which: str) -> ErrorData:
    """The Invalid Request answering JSON that names no id kie-mcp can answer under (``given``: our own stand-in's,
    ``_without_id``), ``which`` saying the answer has no id or is under id null."""
    reason, kind, length = given.get("invalid"), given.get("kind"), given.get("length")
    if reason == ODD_ID:
        method = given.get("method")
        named = f"this {method} request" if isinstance(method, str) and _METHOD_NAME.fullmatch(method) else "a request"
        message = (
            f"kie-mcp did not run {named}: its id is {kind}, and MCP's request ids are text or integers, so it cannot "
            f"be answered under its id and {which}. Nothing of it was run, priced or sent. Send it again with an id "
            "that is text or an integer."
        )
    elif reason == NO_MESSAGE:
        message = (
            f"kie-mcp could not read a message it was sent: it is {kind}, not a JSON-RPC request, notification or "
            f"answer, so there is nothing to answer it under and {which}. Nothing of it was run, priced or sent. A "
            'request is {"jsonrpc": "2.0", "id": ..., "method": "...", "params": {...}}.'
        )
    elif reason == EMPTY_BATCH:
        message = (
            f"kie-mcp could not read a line of {length} characters it was sent: it is an empty JSON-RPC batch (a list "
            f"with no message in it), so there is no request to answer, and {which}. Send each request as a JSON "
            "object on a line of its own."
        )
    else:
        message = (
            f"kie-mcp could not read an element of a JSON-RPC batch it was sent: it is {kind}, not a message (a JSON "
            f"object), so {which}. Nothing of it was run. Each element of a batch is a request or notification object."
        )
    return ErrorData(code=INVALID_REQUEST, message=message, data={"reason": reason})


def id_left_out(protocol: str | None) -> bool:
    """Whether an error answer whose request's id could not be read leaves out its ``id`` (MCP 2025-11-25 and later:
    ``id?: RequestId``, which a client's schema refuses as null) rather than writing ``"id": null`` (JSON-RPC 2.0's
    answer, for a client whose handshake agreed on ``LAST_ERROR_ID_REQUIRED`` or before, whose schema requires an
    id). ``protocol`` is the revision the handshake agreed on: None before one, or in the 2026-07-28 era (none)."""
    return protocol is None or protocol > LAST_ERROR_ID_REQUIRED


NEWLINE = "\n"  # where a line of the wire ends (not at a bare "\r", JSON whitespace: see the module's docstring)


class _MendedLines(io.TextIOWrapper):
    """UTF-8 lines of the wire (undecodable bytes replaced, as the SDK reads them), each made readable (a line of
    several messages, a line each). Lines end at "\\n" alone (``NEWLINE``)."""

    _waiting: list[str] | None = None  # the rest of what the last line read stood for

    def __init__(self, buffer: Any) -> None:
        super().__init__(buffer, encoding="utf-8", errors="replace", newline=NEWLINE)

    def readline(self, size: int | None = -1, /) -> str:
        if self._waiting:
            return self._waiting.pop(0)
        first, *self._waiting = readable_lines(super().readline(-1 if size is None else size))
        return first

    def close(self) -> None:  # the buffer belongs to ``claimed_stdin``, which closes it
        with suppress(ValueError):
            self.detach()


@contextmanager
def claimed_stdin() -> Iterator[Any]:
    """The wire's input as the SDK's transport wants it (an async text file), fd 0 claimed while it is read."""
    import anyio

    try:
        private, saved = os.dup(0), os.dup(0)
    except OSError:  # no fd 0 to claim (an embedding host closed it): read sys.stdin as it is
        yield anyio.wrap_file(_MendedLines(sys.stdin.buffer))
        return
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    buffer = os.fdopen(private, "rb")
    try:
        yield anyio.wrap_file(_MendedLines(buffer))
    finally:
        buffer.close()
        os.dup2(saved, 0)
        os.close(saved)


async def serve(server: MCPServer) -> None:
    """Run ``server`` over stdio with the mended input and every message made writable (the SDK's
    ``run_stdio_async`` with another stdin and a write stream that serializes each message once, itself)."""
    from mcp.server.stdio import stdio_server

    # run_stdio_async takes no stdin; this is what it runs. A server without it (an SDK that renamed it, a test's
    # stand-in) serves through its own run_stdio_async, unmended.
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None:
        await server.run_stdio_async()
        return
    with claimed_stdin() as stdin:
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):
            writes = WritableMessages(write_stream, WireSession())
            reads = RequestsOnce(read_stream, writes)
            await lowlevel.run(reads, writes, lowlevel.create_initialization_options())


class RequestsOnce:
    """The wire's read stream, a request whose id is already in flight refused under that id (Invalid Request),
    never passed on: the SDK's dispatcher keeps one request by id, so the newer took the older's place (a cancel
    then stopped only the newer; the older went on, could ask its form and spend). An id is in flight from its
    request until the answer under it is written (``WritableMessages``), or the client cancels it (a cancelled
    request is never answered). Ids are compared as the dispatcher compares them (``"7"`` is 7)."""

    def __init__(self, inner: Any, writes: WritableMessages) -> None:
        self._inner = inner
        self._writes = writes

    async def receive(self) -> Any:
        import anyio

        while True:
            try:
                item = await self._inner.receive()
            except anyio.EndOfStream:
                _stdin_closed()
                raise
            message = item.message if isinstance(item, SessionMessage) else None
            if isinstance(message, JSONRPCRequest):
                if not self._writes.take(message.id):
                    log.warning("a request came under the id of a request still running: refused, not run")
                    await self._writes.refuse(duplicate_error(message.id, message.method))
                    continue
                if message.method == "initialize":  # its answer says the revision (``WritableMessages.protocol``)
                    self._writes.session.initialize_id = coerce_request_id(message.id)
            elif isinstance(message, JSONRPCNotification) and message.method == UNPARSEABLE_METHOD:
                protocol = self._writes.session.protocol
                error = unparseable_error(message.params, protocol)
                if error is not None:  # a line that was not JSON, with no id: answered, never passed on
                    await self._writes.refuse(error, with_id=not id_left_out(protocol))
                    continue
            elif isinstance(message, JSONRPCNotification) and self._batch_refused(message.params):
                protocol = self._writes.session.protocol
                log.warning(
                    "a notification (%s) came in a JSON-RPC batch, which %s does not take: dropped, not run",
                    plain(message.method),
                    f"MCP {protocol}" if protocol else "a connection with no revision agreed (2026-07-28, or none yet)",
                )
                continue
            elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
                cancelled = cancelled_request_id_from_params(message.params)
                if cancelled is not None:
                    self._writes.answered(cancelled)
            return item

    def _batch_refused(self, params: Any) -> bool:
        """Whether a message with ``params`` came in a JSON-RPC batch (``came_in_batch``) that the session's protocol
        refuses (``refuse_batch``): the revision the handshake agreed on, none yet or the 2026-07-28 era (no
        handshake) being ones without batches. A notification in one is dropped here, before the SDK's dispatcher,
        which acts on a cancel before any handler runs: raised from its handler, the refusal was a traceback on
        stderr and the cancel had already stopped the call it named."""
        protocol = self._writes.session.protocol
        return came_in_batch(params) and (protocol is None or protocol > LAST_BATCHING_PROTOCOL)

    def __aiter__(self) -> RequestsOnce:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def __getattr__(self, name: str) -> Any:  # ``last_context`` (the sender's context), close, aclose, ...
        return getattr(self._inner, name)

    async def __aenter__(self) -> RequestsOnce:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._inner.aclose()


def _stdin_closed() -> None:
    """The client closed stdin: the session ends, and its calls in flight are cancelled. A create on its way to KIE
    is waited for (shielded) until it is answered and recorded: said on stderr, as a signal's stop says it
    (``stopping``), where the wait was silent, up to the create's own deadline."""
    from kie_mcp.stopping import CREATES, LANDING_SECONDS, waiting_words

    if CREATES.sending_now:
        line = waiting_words("stdin closed", CREATES.sending_now, None)
        with suppress(OSError, ValueError):
            sys.stderr.write(f"{line} A SIGTERM stops it within {LANDING_SECONDS:g} s.\n")
            sys.stderr.flush()


def duplicate_error(request_id: str | int, method: str) -> JSONRPCError:
    """The answer to a request whose id another request still running holds."""
    named = f" {method}" if _METHOD_NAME.fullmatch(method) else ""
    shown = redact(json.dumps(request_id)) if len(str(request_id)) <= _ID_SHOWN else ""  # a key as an id: never
    message = (
        f"A request under this id{f' ({shown})' if shown else ''} is still running, and its answer will come under "
        f"this id. This second{named} request with the same id was not run (nothing of it was priced or sent); the "
        "first goes on. Give each request an id of its own (an id is free again once its request is answered or "
        "cancelled)."
    )
    error = ErrorData(code=INVALID_REQUEST, message=message, data={"in_flight": True})
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=error)


_ID_SHOWN = 80  # characters of an id an answer repeats


@dataclass
class WireSession:
    """What the wire's streams know of their session (shared by ``WritableMessages`` and its clones): the ids of the
    client's requests in flight, the id of its ``initialize`` (``RequestsOnce`` notes it), and the MCP revision the
    answer under that id agreed on (None before it, and in the 2026-07-28 era, which has no handshake)."""

    in_flight: set[str | int] = field(default_factory=set)
    initialize_id: str | int | None = None
    protocol: str | None = None


class WritableMessages:
    """The wire's write stream, each message serialized here, once (``written``), and made writable first when it
    cannot be: the SDK's stdio writer serializes what it is handed on its own task, where a failure ends the
    session (the server stopped, the client waited for ever on its call). It keeps the ids of the client's requests
    in flight (``RequestsOnce`` adds them, an answer written frees them), and the revision the handshake's answer
    agreed on (``WireSession``)."""

    def __init__(self, inner: Any, session: WireSession) -> None:
        self._inner = inner
        self.session = session

    def take(self, request_id: str | int) -> bool:
        """Hold ``request_id`` for a request now read; False when a request still in flight holds it."""
        key = coerce_request_id(request_id)
        if key in self.session.in_flight:
            return False
        self.session.in_flight.add(key)
        return True

    def answered(self, request_id: str | int) -> None:
        """``request_id`` is free again: its request was answered, or cancelled."""
        self.session.in_flight.discard(coerce_request_id(request_id))

    async def refuse(self, error: JSONRPCError, *, with_id: bool = True) -> None:
        """Write ``error``, an answer that frees no id: under an id another request holds (which stays held), or a
        line that was not JSON, with no id (``with_id`` False: no ``id`` member) or under id null."""
        await self._inner.send(written(SessionMessage(error), with_id=with_id))

    async def send(self, item: SessionMessage) -> None:
        await self._inner.send(written(item))
        message = item.message
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            self.answered(message.id)
            if isinstance(message, JSONRPCResponse) and coerce_request_id(message.id) == self.session.initialize_id:
                agreed = message.result.get("protocolVersion") if isinstance(message.result, Mapping) else None
                self.session.protocol = agreed if isinstance(agreed, str) else self.session.protocol

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def clone(self) -> WritableMessages:
        return WritableMessages(self._inner.clone(), self.session)

    async def __aenter__(self) -> WritableMessages:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


AS_SENT: dict[str, Any] = {"by_alias": True, "exclude_unset": True}  # how the SDK's stdio writer serializes a message


def written(item: SessionMessage, *, with_id: bool = True) -> SessionMessage:
    """``item`` with its message serialized as the SDK's stdio writer would (``AS_SENT``), the writer then handed that
    text (``Serialized``): one serialization a message, as before. A message that cannot be serialized because text
    in it holds lone surrogates (a folder named in bytes that are not UTF-8, under any file system encoding; a
    setting's value given so) has every such text made readable (``words.readable_text``: those bytes escaped) and is
    serialized again; nothing else is looked at. Without ``with_id``, an error is written with no ``id`` member (the
    SDK's model has one, null at least: ``id_left_out``)."""
    message = item.message
    leave_out: dict[str, Any] = {} if with_id else {"exclude": {"id"}}
    try:
        text = message.model_dump_json(**AS_SENT, **leave_out)
    except PydanticSerializationError:
        message = _readable_message(message)
        text = message.model_dump_json(**AS_SENT, **leave_out)
    return SessionMessage(Serialized(message, text), item.metadata)  # type: ignore[arg-type]


class Serialized:
    """A message already serialized: asked for its JSON as the SDK's stdio writer asks (``AS_SENT``), it gives that
    text; any other question goes to the message itself."""

    __slots__ = ("_message", "_text")

    def __init__(self, message: Any, text: str) -> None:
        self._message = message
        self._text = text

    def model_dump_json(self, **options: Any) -> str:
        return self._text if options == AS_SENT else self._message.model_dump_json(**options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)


def _readable_message(message: Any) -> Any:
    """``message`` (a JSON-RPC message) with every text in it, keys too, made readable (``words.readable_text``)."""
    data = _readable(message.model_dump(by_alias=True, exclude_unset=True))
    return jsonrpc_message_adapter.validate_python(data, by_name=False)


def _readable(value: Any) -> Any:
    if isinstance(value, str):
        return readable_text(value)
    if isinstance(value, dict):
        return {readable_text(k) if isinstance(k, str) else k: _readable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_readable(inner) for inner in value]
    return value
