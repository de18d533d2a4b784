"""The stdio session, with every line the client sends made readable first.

JSON may escape a lone UTF-16 surrogate (``"\\ud83d"``: an emoji cut in half, as a host that escapes non-ASCII
text and cuts it may send). The SDK's stdio transport reads each line with pydantic, which refuses such a line
("unexpected end of hex escape") and drops it without an answer: the client would wait for ever on that call.
Here each lone surrogate escape becomes ``\\ufffd`` (U+FFFD, as KIE's own answers are mended in ``kie/text.py``)
before the SDK reads the line, so the call is answered like any other: the text with a replacement character,
shown in the confirmation like the rest of the request.

The SDK claims fd 0 only when it opens stdin itself; this module opens it, so it claims it the same way: the wire
is read from a private duplicate and fd 0 points at the null device while serving (a child such as ffmpeg reads
end-of-file, never the protocol), restored on exit.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

# At each backslash, left to right (so ``\\`` is one escape and never starts another): a surrogate pair, a lone
# surrogate, or any other escape. Only the lone one is replaced.
_ESCAPES = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\.", re.S
)
_LONE_ESCAPE_LENGTH = 6
REPLACEMENT_ESCAPE = "\\ufffd"


def mend_line(line: str) -> str:
    """``line`` (one JSON-RPC message) with every lone surrogate escape written ``\\ufffd``; a line without any
    ``\\ud`` escape (nearly all) costs two substring checks."""
    if "\\ud" not in line and "\\uD" not in line:
        return line
    return _ESCAPES.sub(_mend_escape, line)


def _mend_escape(found: re.Match[str]) -> str:
    escape = found.group()
    return REPLACEMENT_ESCAPE if len(escape) == _LONE_ESCAPE_LENGTH else escape


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
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
