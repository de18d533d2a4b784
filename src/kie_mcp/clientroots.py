"""The client's MCP roots (the folders the user shared with it): asked for only when a call may read a local file,
never for longer than ``Settings.roots_timeout_seconds``, and never an error.

Roots only widen where local inputs may come from (besides the workspace and ``KIE_ALLOWED_DIRS``). Some clients
declare the roots capability and then answer ``roots/list`` with an error, or never: asked for every call, as the
SDK's ``ListRoots`` marker does, a prompt-only ``estimate_cost`` failed with "Method not found" or waited for ever.
So a call whose arguments name no local file does not ask (in the 2026-07-28 era that also saves the client a
round trip), and in the handshake era the question is sent here, bounded, with any failure read as "no roots". In
the 2026-07-28 era (where roots are deprecated) the question travels with the retried request (``ListRoots``);
the client answers it or the call ends there, with nothing spent.
"""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import anyio
from mcp.server.mcpserver import Context, ListRoots, Resolve
from mcp.shared.message import ServerMessageMetadata
from mcp.types import ListRootsRequest, ListRootsResult

log = logging.getLogger(__name__)

_NOT_A_PATH = ("http://", "https://", "data:", "kie://")  # addresses: fetched by KIE, or inside the workspace
_PATHLIKE = re.compile(r"[/\\]|^~|^file:|\.[A-Za-z0-9]{2,5}$")  # a folder, home, a file URI or a file extension


def may_name_local_file(value: Any, *, paths_only: bool = False) -> bool:
    """Whether ``value`` (a tool argument: a string, or lists and objects of them) may name a local file.

    A string is taken for a path when it is not a URL or kie:// link and, unless ``paths_only`` (an argument that
    only ever holds files, such as ``images``), looks like one: an ``options`` value "cinematic" is no file."""
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lower().startswith(_NOT_A_PATH):
            return False
        return paths_only or bool(_PATHLIKE.search(text))
    if isinstance(value, dict):
        return any(may_name_local_file(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(may_name_local_file(item, paths_only=paths_only) for item in value)
    return False


def roots_resolver(*arguments: str, paths: frozenset[str] = frozenset({"images", "path"})) -> Any:
    """An ``Annotated`` type whose resolver gives the client's roots to a tool taking ``arguments``: an empty list
    unless one of them may name a local file (``paths``: arguments that only hold files)."""

    async def client_roots(ctx: Context, **given: Any) -> ListRoots | ListRootsResult | list[Any]:
        # The arguments first: most calls name no local file, and reading the context costs microseconds.
        if not any(may_name_local_file(given.get(name), paths_only=name in paths) for name in arguments):
            return []
        capabilities = ctx.client_capabilities
        if capabilities is None or capabilities.roots is None:
            return []
        if ctx.protocol_version is not None and ctx.session.can_send_request:  # the handshake era: ask here
            return await _asked(ctx)
        return ListRoots()  # 2026-07-28: the client answers in its retried request

    client_roots.__qualname__ = f"client_roots_for_{'_'.join(arguments)}"
    client_roots.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
        + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in arguments]
    )
    return Annotated[Any, Resolve(client_roots)]


async def _asked(ctx: Context) -> ListRootsResult | list[Any]:
    seconds = _timeout(ctx)
    with anyio.move_on_after(seconds):
        try:
            return await ctx.session.send_request(
                ListRootsRequest(),
                ListRootsResult,
                metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
            )
        except Exception as err:  # an error answer, a malformed one, a closed channel: no shared folders
            log.info("the client's roots/list failed (%s); only the workspace and KIE_ALLOWED_DIRS are read", err)
            return []
    log.info(
        "the client did not answer roots/list within %g s; only the workspace and KIE_ALLOWED_DIRS are read", seconds
    )
    return []


def _timeout(ctx: Context) -> float:
    return float(ctx.request_context.lifespan_context.current.settings.roots_timeout_seconds)


def root_folders(roots: Any) -> tuple[Path, ...]:
    """The local folders among the client's roots (file:// URIs), as real paths."""
    found = []
    for root in getattr(roots, "roots", None) or []:
        uri = str(root.uri)
        if uri.startswith("file://"):
            found.append(Path(url2pathname(urlparse(uri).path)).resolve())
    return tuple(found)
