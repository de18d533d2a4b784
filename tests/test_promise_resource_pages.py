"""Promise: ``resources/list`` answers in pages a client can follow, whatever the workspace's references/ holds
(``kie_mcp/resourcepages.py``): each resource once, in a stable order, kie-mcp's own on the first page, and a
cursor not in its form refused in words."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, ListResourcesResult

from .conftest import every_resource

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PREFIX = "kie://workspace/references/"
PAGE_AT_MOST = 500  # resources on one page (README, "Resources")
# Names that sort before the folder's README.md (digits, capitals, "%" and "(" listed as %25 and %28) and spaces.
ODD_NAMES = ("0 first.png", "A.png", "100% real.png", "(draft) logo.png", "Aesthetics/mood board.png", "my photo.png")


def references(workspace: Path, count: int) -> dict[str, Path]:
    """``count`` reference files in a few folders (and the odd names), by the URI each is listed under."""
    relatives = [f"products/set {n // 400:02d}/shot {n:05d}.png" for n in range(count)] + list(ODD_NAMES)
    return {PREFIX + quote(relative, safe="/"): add(workspace, relative) for relative in relatives}


def add(workspace: Path, relative: str) -> Path:
    path = workspace / "references" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG)
    return path


async def pages(client: Client, first: ListResourcesResult | None = None) -> list[list[str]]:
    """The URIs of each page, following the cursors from ``first`` (or from a first page asked now)."""
    page = first or await client.list_resources()
    found = [[str(r.uri) for r in page.resources]]
    while page.next_cursor is not None:
        page = await client.list_resources(cursor=page.next_cursor)
        found.append([str(r.uri) for r in page.resources])
    return found


async def test_a_listing_longer_than_a_page_comes_in_pages_that_name_every_resource_once_in_a_stable_order(
    connect, tmp_path
):
    """The audit: with 20,000 files in references/, one resources/list answer was 6.8 MiB, which some clients
    refuse or time out on. It comes in pages of at most 500 that, followed, name every resource exactly once."""
    files = references(tmp_path, 1200)
    async with connect() as client:
        walked = await pages(client)
        again = await pages(client)
    listed = [uri for page in walked for uri in page]
    assert len(walked) >= 3 and all(len(page) <= PAGE_AT_MOST for page in walked), [len(p) for p in walked]
    assert len(listed) == len(set(listed))  # none twice
    assert set(files) <= set(listed)
    assert {"kie://models", "kie://tasks", "kie://workspace/MASTER_CONTEXT.md"} <= set(listed)
    assert again == walked  # the same pages in the same order
    after_first = [uri for page in walked[1:] for uri in page]
    assert after_first == sorted(after_first) and all(uri.startswith(PREFIX) for uri in after_first)


async def test_files_added_or_removed_between_pages_never_make_one_skipped_or_listed_twice(connect, tmp_path):
    """A client follows the cursors while the folder changes (and meanwhile lists again from the start, and reads a
    file not yet listed, which both read the folder again): every file there throughout is listed exactly once."""
    files = references(tmp_path, 1200)
    async with connect() as client:
        first = await client.list_resources()
        assert first.next_cursor is not None, "one page for 1,206 references"
        seen = {str(r.uri) for r in first.resources}
        gone = [next(uri for uri in files if uri in seen), next(uri for uri in reversed(files) if uri not in seen)]
        for uri in gone:  # one listed already, one not yet
            files[uri].unlink()
        add(tmp_path, "aaa before the cursor.png")
        add(tmp_path, "products/set 01/shot 00700b.png")  # among those not listed yet
        add(tmp_path, "zzz at the end.png")
        await client.list_resources()  # a first page meanwhile: the folder is read again under the cursor
        add(tmp_path, "products/set 02/shot 00850b.png")
        read = await client.read_resource(PREFIX + "products/set%2002/shot%2000850b.png")  # not listed: read again
        walked = await pages(client, first)
    listed = [uri for page in walked for uri in page]
    assert read.contents[0].blob
    assert len(listed) == len(set(listed)), sorted({uri for uri in listed if listed.count(uri) > 1})[:5]
    throughout = set(files) - set(gone)
    assert throughout <= set(listed), sorted(throughout - set(listed))[:5]
    assert len(walked) >= 3 and all(len(page) <= PAGE_AT_MOST for page in walked)
    for added in (
        "products/set%2001/shot%2000700b.png",
        "products/set%2002/shot%2000850b.png",
        "zzz%20at%20the%20end.png",
    ):
        assert PREFIX + added in listed  # after the cursor when they were added: listed on a later page


def cursor_of(body: object) -> str:
    return "r1." + base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


async def test_a_cursor_the_server_did_not_give_is_refused_in_words_as_invalid_params(connect, tmp_path):
    """A forged, changed or cut-short cursor is a JSON-RPC invalid-params error saying what to do, never a
    traceback, an internal error or a page that quietly starts again."""
    references(tmp_path, 600)
    async with connect() as client:
        real = (await client.list_resources()).next_cursor
        assert real is not None, "one page for 606 references"
        forged = [
            "garbage",
            real[:-4],  # cut short
            real[:3] + "!" + real[4:],  # changed
            "c1." + real[3:],  # another listing's layout (list_tasks')
            cursor_of(["kie://models"]),  # a URI no page after the first lists from
            cursor_of({"after": PREFIX}),
            cursor_of([PREFIX, "x"]),
            cursor_of(1e999),
            "r1." + "A" * 100_000,
        ]
        refusals = []
        for cursor in forged:
            with pytest.raises(MCPError) as caught:
                await client.list_resources(cursor=cursor)
            refusals.append(caught.value)
        after = await every_resource(client)  # a refusal leaves the listing usable
    for cursor, err in zip(forged, refusals, strict=True):
        assert err.code == INVALID_PARAMS, (cursor[:40], err.code, err.message)
        assert "cursor is not one resources/list gave" in err.message, err.message
        assert "without a cursor" in err.message and "Traceback" not in err.message
    assert len(after) >= 606


async def test_the_first_page_holds_kie_mcps_own_resources_however_many_references_there_are(connect, tmp_path):
    """A client that reads only the first page (some do not follow cursors) still has the model table,
    MASTER_CONTEXT.md, tasks, the gallery, the app, the whole prompt library and the references' README, even when
    references sort before them."""
    references(tmp_path, 1200)
    async with connect() as client:
        first = await client.list_resources()
        everything = [str(r.uri) for r in await every_resource(client)]
    on_first = [str(r.uri) for r in first.resources]
    own = [uri for uri in everything if not uri.startswith(PREFIX)] + [PREFIX + "README.md"]
    assert first.next_cursor is not None and len(on_first) <= PAGE_AT_MOST
    assert set(own) <= set(on_first), sorted(set(own) - set(on_first))
    assert {"kie://models", "kie://models.json", "kie://workspace/MASTER_CONTEXT.md", "kie://tasks"} <= set(own)
    assert {"kie://outputs/index.html", "ui://kie-mcp/results.html", "kie://prompting/guide.md"} <= set(own)
    assert len([uri for uri in own if uri.startswith("kie://prompting/prompt-library/")]) >= 10
    assert on_first[: len(own)] == [uri for uri in on_first if uri in set(own)]  # before any reference
    assert PREFIX + "0%20first.png" in on_first  # and then references, from the first in order
