"""``resources/list`` in pages, so that a workspace with tens of thousands of references is never one answer.

One answer listing 20,000 files of ``references/`` was about 6.4 MiB of JSON, which some clients refuse or time out on.
A page holds ``PAGE_SIZE`` resources at most. The first holds every resource of kie-mcp's own (the app, the model
table, the gallery, MASTER_CONTEXT.md, tasks, the prompt library, the references' README), so a client that reads
only the first page (some do) still has them all, then the references in the order of their URIs. Each page after
it continues after the last URI the one before listed (a keyset, as ``list_tasks``' cursor), so a client that
follows ``nextCursor`` sees every resource once, in that order, whatever is added or removed between pages: none
that was there throughout is skipped or repeated. The cursor is opaque to clients but not signed: it names the last
URI listed, and one written by hand in its form lists from there, which shows nothing the pages would not (the
listing is the client's to see). Anything not in its form (cut short, garbled, naming no URI where the later pages
list from) is refused as invalid params, in words.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_right
from collections.abc import Sequence

# About 160 KiB of JSON for a page of references (the whole listing of 20,000 was about 6.4 MiB; tools/list is 49 KB):
# small for any client, and few round trips (40 for 20,000 files). A client that reads only the first page still
# sees kie-mcp's own resources (23 today) and 477 references; every file is usable by its path all the same.
PAGE_SIZE = 500
CURSOR_PREFIX = "r1."  # the version of a resources/list cursor's layout
# A reference's URI is at most a path of the system's longest (4096 bytes) percent-encoded: about 12,300
# characters, 16,500 as a cursor. Anything longer is no cursor of ours and is not decoded.
LONGEST_CURSOR = 32 * 1024


class BadCursor(ValueError):
    """A resources/list cursor not in the form ``cursor_after`` gives (cut short, garbled, naming no URI the later
    pages list from): the message says what to do."""


def cursor_after(uri: str) -> str:
    """The cursor that continues a listing after ``uri`` (the last it listed, or "" for the first of the rest)."""
    body = json.dumps([uri], separators=(",", ":"))
    return CURSOR_PREFIX + base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def read_cursor(cursor: str, prefixes: Sequence[str]) -> str:
    """The URI a cursor of ``cursor_after`` continues after. Raises ``BadCursor`` for anything else: text that is
    no cursor, one cut short or changed, or one naming no URI under ``prefixes`` (where pages after the first
    list from)."""
    try:
        if len(cursor) > LONGEST_CURSOR or not cursor.startswith(CURSOR_PREFIX):
            raise ValueError
        packed = cursor.removeprefix(CURSOR_PREFIX)
        decoded = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
        if not isinstance(decoded, list) or len(decoded) != 1 or not isinstance(decoded[0], str):
            raise ValueError
        after: str = decoded[0]
        if after and not after.startswith(tuple(prefixes)):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise BadCursor(
            "cursor is not one resources/list gave (a nextCursor, whole and unchanged); nothing was listed. List "
            "again without a cursor to start from the first page."
        ) from None
    return after


def page(first: Sequence[str], rest: Sequence[str], after: str | None) -> tuple[list[str], str | None]:
    """The URIs of one page and the cursor of the next (None when none is left). With no cursor (``after`` None):
    ``first`` whole, then the start of ``rest`` (sorted) while the page has room; with one, the URIs of ``rest``
    after ``after``."""
    start = 0 if after is None else bisect_right(rest, after)
    room = PAGE_SIZE - len(first) if after is None else PAGE_SIZE
    taken = list(rest[start : start + max(0, room)])
    listed = [*first, *taken] if after is None else taken
    if start + len(taken) >= len(rest):
        return listed, None
    return listed, cursor_after(taken[-1] if taken else after or "")
