"""The stdio session, with every line the client sends made readable first.

JSON may escape a lone UTF-16 surrogate (``"\\ud83d"``: an emoji cut in half, as a host that escapes non-ASCII
text and cuts it may send). The SDK's stdio transport reads each line with pydantic, which refuses such a line
("unexpected end of hex escape") and drops it without an answer: the client would wait for ever on that call.
Here each lone surrogate escape becomes ``\\ufffd`` (U+FFFD, as KIE's own answers are mended in ``kie/text.py``)
before the SDK reads the line, so the call is answered like any other: the text with a replacement character,
shown in the confirmation like the rest of the request.

pydantic's JSON reader also refuses a line nested deeper than it reads (``DEEPEST_JSON``: 200 lists and objects
inside each other with pydantic-core 2.50), and the SDK drops that line unanswered too. A request nested deeper
(``arguments`` holding hundreds of lists inside each other) is rewritten into a shallow ``kie-mcp/unreadable``
request with the same id (and the same ``_meta``, so the 2026-07-28 envelope still routes it), which the server
answers with an Invalid Request error saying why: nothing of it is run. A client's answer to a request of the
server (a form's answer) nested that deep becomes an error answer with its id, so the call waiting for it goes on
at once. A deep notification stays dropped (logged). Only a line with more brackets than ``DEEPEST_JSON`` is
looked at again (by pydantic's reader, then a scan for its id); every other line costs two counts.

A host that writes "UTF-8 with BOM" (.NET's ``Encoding.UTF8``) starts its first line with a byte-order mark,
which no JSON starts with: the SDK dropped that line (the ``initialize``, so the host never connected). It is
taken off.

What the server writes is made writable too, where the file system's encoding is not UTF-8 (``PYTHONUTF8=0`` under
the C locale: ASCII). There every path with a character beyond ASCII (a workspace named "Marken ü") is text with
lone surrogates in it (Python's ``surrogateescape``), which JSON cannot carry: the SDK's writer failed on the first
answer naming it (the initialize's instructions) and the server stopped with a traceback. Such a message is written
with that text as the path's bytes read as UTF-8 (as a file manager shows the name). Under UTF-8 (the default,
also in the C locale) nothing is looked at.

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
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from mcp import MCPError
from mcp.types import INVALID_REQUEST
from pydantic_core import from_json

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
# JSON's tokens: a string (escapes and all), a structural character, or a bare scalar (number, true, ...).
# A string unrolled (runs of plain characters between escapes): one step a run, not a regex stack frame a character.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]|[^\s\[\]{}:,"]+', re.S)
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
_SHORTEST_TOO_DEEP = 2 * DEEPEST_JSON + 3  # one more list than it reads, a value inside: ``[[...[0]...]]``


def mend_line(line: str) -> str:
    """``line`` (one JSON-RPC message) as the SDK can read it: without a leading byte-order mark, every lone
    surrogate escape written ``\\ufffd``, and a message nested deeper than ``DEEPEST_JSON`` replaced by one that
    says so (``stand_in_for_deep``). A line without any of these (nearly all) costs a prefix check, two substring
    checks and two counts (a line too short to hold that many brackets, only its length)."""
    if line.startswith(BYTE_ORDER_MARK):  # a host writing "UTF-8 with BOM" (.NET's Encoding.UTF8) starts with one
        line = line.lstrip(BYTE_ORDER_MARK)
    if "\\ud" in line or "\\uD" in line:
        line = _ESCAPES.sub(_mend_escape, line)
    if len(line) >= _SHORTEST_TOO_DEEP and line.count("[") + line.count("{") > DEEPEST_JSON:
        try:
            return stand_in_for_deep(line)
        except Exception:  # never the reader's end: the SDK drops the line, as it would have
            log.warning("could not look into a line of %d characters; left to the SDK", len(line), exc_info=True)
    return line


def _mend_escape(found: re.Match[str]) -> str:
    escape = found.group()
    return REPLACEMENT_ESCAPE if len(escape) == _LONE_ESCAPE_LENGTH else escape


def stand_in_for_deep(line: str) -> str:
    """``line`` as is when the SDK's JSON reader reads it. Nested too deep, a shallow message in its place: a
    request becomes a ``kie-mcp/unreadable`` request with its id and ``_meta`` (answered with ``unreadable_error``
    by the server's middleware), an answer to a request of the server an error answer with its id. A notification,
    or a message without an id to answer, stays as it is (the SDK drops it; logged here)."""
    try:
        from_json(line)
    except ValueError as err:
        if "recursion limit" not in str(err):
            return line  # unreadable for another reason: the SDK's own verdict stands
    else:
        return line
    top, params = top_level_members(line)
    request_id = _request_id(_written(line, top.get("id")))
    if request_id is not None and "method" in top:
        method = _string(_written(line, top.get("method")))
        stand_in: dict[str, Any] = {"method": method if method and _METHOD_NAME.fullmatch(method) else None}
        meta = _meta(_written(line, params.get("_meta")))
        if meta is not None:  # the 2026-07-28 envelope: the stand-in is served in the request's era
            stand_in["_meta"] = meta
        return _compact({"jsonrpc": "2.0", "id": request_id, "method": UNREADABLE_METHOD, "params": stand_in})
    if request_id is not None and ("result" in top or "error" in top):  # the server's request fails at once
        error = {"code": INVALID_REQUEST, "message": f"its answer is nested more than {DEEPEST_JSON} levels deep"}
        return _compact({"jsonrpc": "2.0", "id": request_id, "error": error})
    log.warning("dropped a message nested more than %d levels deep: no request id to answer", DEEPEST_JSON)
    return line


def _compact(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


Span = tuple[int, int]


def top_level_members(line: str) -> tuple[dict[str, Span], dict[str, Span]]:
    """Where the values of the top-level object's members are in ``line`` (``{key: (start, end)}``; of a repeated
    key the last, as the SDK's reader keeps it), and those of its ``params`` object, read without building any of
    it: strings are skipped whole, so brackets, quotes and keys inside them are text. Containers deeper than the
    members of ``params`` are only counted, so a line of millions of brackets costs no more memory than its own."""
    top: dict[str, Span] = {}
    params: dict[str, Span] = {}
    depth = 0
    kinds: list[str] = []  # each open container down to ``_TRACKED`` deep: "{" or "["
    keys: list[str | None] = []  # the key each of them is the value of
    starts: list[int] = []
    key: str | None = None  # in an object, the key of the value read next
    key_next = False  # the next string is a key
    for token in _TOKENS.finditer(line):
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
    """The answer to a ``kie-mcp/unreadable`` stand-in: the request it stood for was nested too deep to read. The
    method is named only when the stand-in carries a plain, short one (a client may send this method itself)."""
    method = params.get("method") if isinstance(params, Mapping) else None
    named = method if isinstance(method, str) and _METHOD_NAME.fullmatch(method) else None
    request = f"this {named} request" if named else "this request"
    message = (
        f"kie-mcp could not read {request}: its JSON is nested more than {DEEPEST_JSON} levels deep, and kie-mcp "
        f"reads at most {DEEPEST_JSON}. Nothing of it was run, priced or sent. Send the arguments flatter: fewer "
        "lists and objects inside each other."
    )
    return MCPError(code=INVALID_REQUEST, message=message, data={"deepest": DEEPEST_JSON})


class _MendedLines(io.TextIOWrapper):
    """UTF-8 lines of the wire (undecodable bytes replaced, as the SDK reads them), each mended."""

    def readline(self, size: int | None = -1, /) -> str:
        return mend_line(super().readline(-1 if size is None else size))

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
        yield anyio.wrap_file(_MendedLines(sys.stdin.buffer, encoding="utf-8", errors="replace"))
        return
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    buffer = os.fdopen(private, "rb")
    try:
        yield anyio.wrap_file(_MendedLines(buffer, encoding="utf-8", errors="replace"))
    finally:
        buffer.close()
        os.dup2(saved, 0)
        os.close(saved)


async def serve(server: MCPServer) -> None:
    """Run ``server`` over stdio with the mended input (the SDK's ``run_stdio_async`` with another stdin)."""
    from mcp.server.stdio import stdio_server

    # run_stdio_async takes no stdin; this is what it runs. A server without it (an SDK that renamed it, a test's
    # stand-in) serves through its own run_stdio_async, unmended.
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None:
        await server.run_stdio_async()
        return
    with claimed_stdin() as stdin:
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):
            writes = write_stream if FILE_NAMES_ARE_UTF8 else _WritableMessages(write_stream)
            await lowlevel.run(read_stream, writes, lowlevel.create_initialization_options())


FILE_NAMES_ARE_UTF8 = sys.getfilesystemencoding().replace("-", "").lower() == "utf8"


class _WritableMessages:
    """The wire's write stream, each message made writable first (``writable``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: Any) -> None:
        await self._inner.send(writable(item))

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def clone(self) -> _WritableMessages:
        return _WritableMessages(self._inner.clone())

    async def __aenter__(self) -> _WritableMessages:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def writable(item: Any) -> Any:
    """``item`` (a ``SessionMessage``) as JSON can carry it: as it is when it serializes, else with every text holding
    lone surrogates (a path under a non-UTF-8 file system encoding) read as UTF-8 (``readable_text``)."""
    from pydantic_core import PydanticSerializationError

    try:
        item.message.model_dump_json(by_alias=True, exclude_unset=True)
    except PydanticSerializationError:
        import dataclasses

        import mcp_types

        data = _readable(item.message.model_dump(by_alias=True, exclude_unset=True))
        return dataclasses.replace(item, message=mcp_types.jsonrpc_message_adapter.validate_python(data, by_name=False))
    return item


def _readable(value: Any) -> Any:
    if isinstance(value, str):
        return readable_text(value)
    if isinstance(value, dict):
        return {readable_text(k) if isinstance(k, str) else k: _readable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_readable(inner) for inner in value]
    return value


def readable_text(text: str) -> str:
    """``text`` with the bytes Python kept as lone surrogates (``surrogateescape``: a file name not in the file system's
    encoding) read as UTF-8, and any other lone surrogate as U+FFFD."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")
