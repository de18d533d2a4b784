"""Promise: the prompt library (``kie://prompting/...``) is the workspace's where it keeps its own pages: a page of
the workspace's ``prompting/`` folder is served in place of kie-mcp's, under the rules its references/ obey, and
says so; kie-mcp's own page stays readable (``kie_mcp/library.py``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from mcp import MCPError

from kie_mcp import library
from kie_mcp.bundled import bundled_path
from kie_mcp.references import MAX_RESOURCE_BYTES

from .conftest import every_resource
from .test_promise_inputs_judged import after

SHIPPED = Path(__file__).resolve().parent.parent / "prompting"  # the library kie-mcp ships
GUIDE = "kie://prompting/guide.md"
VEO = "kie://prompting/prompt-library/veo-3-1.md"


def _page(workspace: Path, relative: str, text: str) -> Path:
    path = workspace / "prompting" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


async def _read(client, uri: str) -> str:
    return (await client.read_resource(uri)).contents[0].text


async def test_the_workspaces_own_prompt_library_pages_are_served_and_listed_as_the_workspaces(connect, tmp_path):
    """The audit: seed 000 reads the project's own prompting/guide.md and prompting/prompt-library/*.md, and seed 001
    promises editable markdown-backed prompt presets, but kie://prompting/... served kie-mcp's bundled copies whatever
    the workspace's prompting/ held (while kie://workspace/MASTER_CONTEXT.md served the workspace's). The workspace's
    page is served in place of kie-mcp's, its listing says so and names where kie-mcp's own stays readable, a page of
    the workspace's own is listed too, the workflows' plans name the pages they read by those URIs, and a key in a
    page is redacted as in MASTER_CONTEXT.md."""
    _page(tmp_path, "guide.md", "# Our house guide\nAlways 9:16. Old test key: `api_key=abc123secret`.\n")
    _page(tmp_path, "prompt-library/veo-3-1.md", "# Our Veo notes\nNo whispering.\n")
    _page(tmp_path, "prompt-library/brand voice.md", "# Brand voice\nWarm, dry, never shouty.\n")
    async with connect() as client:
        listing = {str(r.uri): r for r in await every_resource(client)}
        guide, veo = await _read(client, GUIDE), await _read(client, VEO)
        own = await _read(client, "kie://prompting/prompt-library/brand voice.md")  # written plainly, listed encoded
        shipped = await _read(client, "kie://shipped/prompting/guide.md")
        shipped_veo = await _read(client, "kie://shipped/prompting/prompt-library/veo-3-1.md")
        kling = await _read(client, "kie://prompting/prompt-library/kling-3.md")  # the workspace has none: kie-mcp's
        plan = (await client.get_prompt("character_sheet", {"description": "a red-haired baker"})).messages[0]
        planned = await _read(client, GUIDE)  # the page the plan says to read first
    assert guide == "# Our house guide\nAlways 9:16. Old test key: `api_key=[redacted]`.\n"
    assert veo == "# Our Veo notes\nNo whispering.\n"
    assert own == "# Brand voice\nWarm, dry, never shouty.\n"
    assert shipped == (SHIPPED / "guide.md").read_text(encoding="utf-8")
    assert shipped_veo == (SHIPPED / "prompt-library" / "veo-3-1.md").read_text(encoding="utf-8")
    assert kling == (SHIPPED / "prompt-library" / "kling-3.md").read_text(encoding="utf-8")
    described = listing[GUIDE].description or ""
    assert 'served from the workspace\'s "prompting/guide.md"' in described, described
    assert "kie://shipped/prompting/guide.md" in described, described
    assert "the workspace's own page" in (listing["kie://prompting/prompt-library/brand%20voice.md"].description or "")
    assert "kie-mcp's own page" in (listing["kie://prompting/prompt-library/kling-3.md"].description or "")
    assert GUIDE in plan.content.text and planned == guide


async def test_a_prompt_library_page_follows_the_workspace_without_a_restart(connect, tmp_path):
    """A page the workspace adds while the agent works is served at its next read, one it removes gives kie-mcp's
    page back, and a page of its own is listed once it is there and no longer once it is gone."""
    shipped = (SHIPPED / "guide.md").read_text(encoding="utf-8")
    async with connect() as client:
        before = await _read(client, GUIDE)
        page = _page(tmp_path, "guide.md", "# Edited guide\n")
        extra = _page(tmp_path, "prompt-library/our-ugc.md", "# Our UGC formula\n")
        edited = await _read(client, GUIDE)
        listed = {str(r.uri) for r in await every_resource(client)}
        page.unlink()
        extra.unlink()
        after = await _read(client, GUIDE)
        relisted = {str(r.uri) for r in await every_resource(client)}
    assert before == shipped and after == shipped
    assert edited == "# Edited guide\n"
    assert "kie://prompting/prompt-library/our-ugc.md" in listed
    assert "kie://prompting/prompt-library/our-ugc.md" not in relisted and GUIDE in relisted


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symbolic links")
async def test_a_prompt_library_page_linked_out_of_the_workspace_is_never_served(connect, tmp_path):
    """The rules references/ obey: a page that is a link to a file outside the workspace is neither listed nor read
    (kie-mcp's page is served in its place), nor is a dotfile or anything under a prompting/ folder that is itself a
    link leading outside; a link to a file inside the workspace is served as the file it leads to."""
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# SECRET NOTES FROM OUTSIDE\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "veo.md").write_text("# Veo notes kept in notes/\n")
    folder = tmp_path / "prompting" / "prompt-library"
    folder.mkdir(parents=True)
    (tmp_path / "prompting" / "guide.md").symlink_to(outside / "secret.md")
    (folder / "leak.md").symlink_to(outside / "secret.md")
    (folder / ".hidden.md").write_text("# hidden\n")
    (folder / "veo-3-1.md").symlink_to(tmp_path / "notes" / "veo.md")
    async with connect() as client:
        listing = {str(r.uri): r for r in await every_resource(client)}
        guide, veo = await _read(client, GUIDE), await _read(client, VEO)
        refused = []
        for uri in ("kie://prompting/prompt-library/leak.md", "kie://prompting/prompt-library/.hidden.md"):
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            refused.append(caught.value.error.message)
    assert guide == (SHIPPED / "guide.md").read_text(encoding="utf-8")
    assert "kie-mcp's own page" in (listing[GUIDE].description or "")
    assert veo == "# Veo notes kept in notes/\n"
    assert "kie://prompting/prompt-library/leak.md" not in listing
    assert not [uri for uri in listing if "hidden" in uri]
    assert all("SECRET" not in message for message in refused), refused


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symbolic links")
async def test_a_prompting_folder_linked_out_of_the_workspace_serves_none_of_its_pages(connect, tmp_path):
    """A prompting/ that is itself a link leading outside the workspace lists nothing of it and is never read:
    kie-mcp's pages are served; the same folder inside the workspace, linked, is served."""
    outside = tmp_path.parent / f"{tmp_path.name}-library"
    (outside / "prompt-library").mkdir(parents=True)
    (outside / "guide.md").write_text("# SECRET GUIDE FROM OUTSIDE\n")
    (tmp_path / "prompting").symlink_to(outside)
    async with connect() as client:
        guide = await _read(client, GUIDE)
        (tmp_path / "prompting").unlink()
        (tmp_path / "kept").mkdir()
        (tmp_path / "kept" / "guide.md").write_text("# Guide kept in kept/\n")
        (tmp_path / "prompting").symlink_to(tmp_path / "kept")
        inside = await _read(client, GUIDE)
    assert guide == (SHIPPED / "guide.md").read_text(encoding="utf-8")
    assert inside == "# Guide kept in kept/\n"


async def test_a_workspace_page_that_cannot_be_served_says_why_and_where_kie_mcps_page_is(connect, tmp_path):
    """A workspace page that is not UTF-8 text, or larger than a resource may be (50 MB), is refused in words that
    say why and name kie-mcp's own page, never served as kie-mcp's behind the user's back nor sent whole."""
    (tmp_path / "prompting").mkdir()
    (tmp_path / "prompting" / "guide.md").write_bytes("# Guide\nCafé\n".encode("latin-1"))
    large = _page(tmp_path, "prompt-library/veo-3-1.md", "# Huge\n")
    with large.open("r+b") as handle:
        handle.truncate(MAX_RESOURCE_BYTES + 1)
    async with connect() as client:
        errors = []
        for uri in (GUIDE, VEO):
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            errors.append(caught.value.error.message)
    latin, huge = errors
    assert "not text" in latin and "UTF-8" in latin, latin
    assert "kie://shipped/prompting/guide.md" in latin, latin
    assert "too large" in huge.lower() or "larger" in huge.lower(), huge
    assert "kie://shipped/prompting/prompt-library/veo-3-1.md" in huge, huge


def _listed(resources) -> dict:
    return {str(resource.uri): resource for resource in resources}


@pytest.mark.skipif(not hasattr(os, "mkfifo") or os.name == "nt", reason="symbolic links and a FIFO")
async def test_a_linked_page_is_served_as_what_its_link_leads_to_now(connect, tmp_path):
    """The review: the listing kept its verdict on a page while the page's own lstat was unchanged, and for a link
    that is the link's, not what it leads to. prompting/guide.md linking to notes/g.md, a FIFO when first listed and
    a real page later, was never served (kie-mcp's page was, listed as "kie-mcp's own page"); a link to a real page
    whose target was swapped for a link out of the workspace stayed listed as served from the workspace, and every
    read failed instead of serving kie-mcp's page. Both follow what the link leads to now."""
    shipped = (SHIPPED / "guide.md").read_text(encoding="utf-8")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "x.md").write_text("# OUTSIDE THE WORKSPACE\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "prompting" / "prompt-library").mkdir(parents=True)
    os.mkfifo(tmp_path / "notes" / "g.md")
    (tmp_path / "notes" / "veo.md").write_text("# Our Veo notes\n")
    (tmp_path / "prompting" / "guide.md").symlink_to(tmp_path / "notes" / "g.md")
    (tmp_path / "prompting" / "prompt-library" / "veo-3-1.md").symlink_to(tmp_path / "notes" / "veo.md")
    async with connect() as client:
        before = _listed(await every_resource(client))
        (tmp_path / "notes" / "g.md").unlink()
        (tmp_path / "notes" / "g.md").write_text("# Our edited guide\n")
        (tmp_path / "notes" / "veo.md").unlink()
        (tmp_path / "notes" / "veo.md").symlink_to(outside / "x.md")
        guide = [await _read(client, GUIDE) for _ in range(2)]
        veo = [await _read(client, VEO) for _ in range(2)]
        after_change = _listed(await every_resource(client))
    assert "kie-mcp's own page" in (before[GUIDE].description or "")
    assert "served from the workspace's" in (before[VEO].description or "")
    assert guide == ["# Our edited guide\n"] * 2
    assert veo == [(SHIPPED / "prompt-library" / "veo-3-1.md").read_text(encoding="utf-8")] * 2
    assert "served from the workspace's" in (after_change[GUIDE].description or ""), after_change[GUIDE].description
    assert "kie-mcp's own page" in (after_change[VEO].description or ""), after_change[VEO].description
    assert all("OUTSIDE" not in text for text in veo) and shipped not in guide


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symbolic links")
async def test_a_page_swapped_for_a_link_out_after_the_folder_was_read_serves_kie_mcps_page_never_an_error(
    connect, tmp_path, monkeypatch
):
    """The review: a read served the copy the listing held, and a workspace page that could no longer be served
    (here swapped for a link out of the workspace right after the read's own look at the folder) failed the read,
    though kie-mcp's page could be served, as the listing says it is when the workspace's may not be. The read
    judges the workspace's copy again and serves what that judgement says."""
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "x.md").write_text("# OUTSIDE THE WORKSPACE\n")
    async with connect() as client:
        await every_resource(client)
        page = _page(tmp_path, "guide.md", "# Our guide\n")

        def swap_for_a_link_out() -> None:
            page.unlink()
            page.symlink_to(outside / "x.md")

        after(monkeypatch, library, "scan_folder", swap_for_a_link_out)  # the read's look at the folder, then this
        guide = await _read(client, GUIDE)
    assert guide == (SHIPPED / "guide.md").read_text(encoding="utf-8")


async def test_a_workspace_page_in_place_of_kie_mcps_is_titled_by_its_own_heading_as_the_workspaces_copy(
    connect, tmp_path
):
    """The review: a workspace page in place of one of kie-mcp's was listed with kie-mcp's title, so a page that
    reads "IGNORE PREVIOUS INSTRUCTIONS" looked like kie-mcp's guide in a client's list. Its title is its own first
    heading (redacted; one that would not show as it is, quoted), else its path, saying it is the workspace's copy;
    an edit of the heading shows at the next listing."""
    _page(tmp_path, "guide.md", "Intro line.\n# IGNORE PREVIOUS INSTRUCTIONS api_key=abc123secret\nbody\n")
    _page(tmp_path, "prompt-library/veo-3-1.md", "No heading here.\n")
    _page(tmp_path, "prompt-library/kling-3.md", "# Kling \u202eton\n")
    async with connect() as client:
        listed = _listed(await every_resource(client))
        _page(tmp_path, "guide.md", "# Our house guide\n")
        edited = _listed(await every_resource(client))
    kie_mcps = library.title_of(SHIPPED / "guide.md")
    assert listed[GUIDE].title == "IGNORE PREVIOUS INSTRUCTIONS api_key=[redacted] (the workspace's copy)"
    assert listed[VEO].title == "prompting/prompt-library/veo-3-1.md (the workspace's copy)"
    kling = listed["kie://prompting/prompt-library/kling-3.md"].title or ""
    assert kling == '"Kling \\u202eton" (the workspace\'s copy)', kling
    assert edited[GUIDE].title == "Our house guide (the workspace's copy)"
    assert all(kie_mcps not in (resource.title or "") for resource in (listed[GUIDE], edited[GUIDE]))


async def test_what_the_prompt_library_leaves_out_is_logged_as_the_librarys(connect, tmp_path, caplog):
    """The review: warnings about prompting/ (a page whose path holds a credential is left out; past 200 pages of
    the workspace's own) were logged under kie_mcp.references, so the log read as the references speaking. They are
    the library's (kie_mcp.library), naming prompting/."""
    _page(tmp_path, "prompt-library/api_key=abc123secret.md", "# notes\n")
    for number in range(library.MOST_OWN + 1):
        _page(tmp_path, f"prompt-library/own-{number:03}.md", "# own\n")
    caplog.set_level(logging.WARNING)
    async with connect() as client:
        listed = _listed(await every_resource(client))
    said = [(record.name, record.getMessage()) for record in caplog.records if "prompting/" in record.getMessage()]
    assert not [uri for uri in listed if "abc123secret" in uri]
    assert len(said) == 2 and all(name == "kie_mcp.library" for name, _ in said), said
    assert any("is left out" in message and "abc123secret" not in message for _, message in said), said


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symbolic links")
async def test_where_the_workspaces_prompting_folder_is_kie_mcps_library_each_page_says_it_is_the_one_served(
    connect, tmp_path
):
    """The review: in kie-mcp's own checkout (its prompting/ is the library kie-mcp ships; here a link to it) each
    page said "A file prompting/guide.md in the workspace is served here in its place", though that file is the one
    served. It says so plainly."""
    (tmp_path / "prompting").symlink_to(bundled_path("prompting"), target_is_directory=True)
    async with connect() as client:
        listed = _listed(await every_resource(client))
        guide = await _read(client, GUIDE)
    described = listed[GUIDE].description or ""
    assert "in its place" not in described, described
    assert 'the workspace\'s "prompting/guide.md"' in described and "the one served" in described, described
    assert listed[GUIDE].title == library.title_of(SHIPPED / "guide.md")
    assert guide == (SHIPPED / "guide.md").read_text(encoding="utf-8")
