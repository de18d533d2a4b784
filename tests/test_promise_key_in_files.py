"""Promise: the KIE key never leaves in a file kie-mcp makes or an answer it gives, even when KIE (or its file host)
writes it into a result's bytes, each kept against the simulator through the real MCP client in both protocol eras:

- a result picture carrying the key in its metadata (a JPEG comment) is kept, as it is paid for, and said to hold
  it; its inline previews and the thumbnail kept beside it are pixels only, and kie://outputs never serves it;
- a joined video copies none of its clips' tags or chapters (a clip may carry the key in its comment or title);
- a picture whose compressed text (a PNG's zTXt, compressed iTXt or ICC profile) holds the key, or inflates past
  what is searched, is never uploaded; one without it is uploaded exactly as it is;
- a local file named after the key is never named so in an answer (an upscale's note, a reused upload's) nor in the
  journal, whose record of a question's files still tells a file replaced while the form was open.
"""

from __future__ import annotations

import base64
import contextlib
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.client import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult, ImageContent, ResourceTemplateReference
from PIL import Image, PngImagePlugin
from pydantic import SecretStr

from kie_mcp.journal import journal_path
from kie_mcp.media import downloads
from kie_mcp.server import create_server

from .conftest import answering, text_of

KEY = "5f3c9e0a7b2d4e6f8a1c3b5d7e9f0a2c"  # shaped as KIE's keys are: 32 hex digits
IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2", "wait_seconds": 30}


@pytest.fixture
def keyed(settings, transport, controls, mode):
    """``async with keyed() as client``: a server holding ``KEY`` (the simulator knows it)."""

    @asynccontextmanager
    async def opener(elicitation: Any = None, **overrides: Any) -> AsyncIterator[Client]:
        await controls.post("keys", {"key": KEY})
        server = create_server(replace(settings, api_key=SecretStr(KEY), **overrides), transport=transport)
        async with Client(server, mode=mode, elicitation_callback=elicitation or answering()) as client:
            yield client

    return opener


def _previews(result) -> list[bytes]:
    return [base64.b64decode(item.data) for item in result.content if isinstance(item, ImageContent)]


async def test_a_key_kie_writes_into_a_result_picture_never_reaches_a_preview_and_the_file_is_flagged(
    keyed, controls, tmp_path
):
    """The audit: KIE's JPEG with the key in its comment was re-saved by Pillow for every inline preview (the
    comment copied along), kept so beside the result, and the saved original was named a clean success."""
    await controls.fault("files", kind="tagged", text=f"made for {KEY}")
    async with keyed() as client:
        made = await client.call_tool("generate_image", IMAGE)
        task = made.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
        with pytest.raises(MCPError, match="holds the KIE API key"):
            await client.read_resource(checked.structured_content["saved_files"][0]["resource_uri"])
    [saved] = task["files"]
    assert KEY.encode() in (tmp_path / saved).read_bytes()  # kept: it is paid for
    previews = _previews(made) + _previews(checked)
    assert len(previews) == 2 and all(KEY.encode() not in shown for shown in previews)
    kept = list((tmp_path / saved).parent.glob(".*.thumb-*"))
    assert kept and all(KEY.encode() not in thumb.read_bytes() for thumb in kept)
    assert f"saved to {saved}, but its bytes hold your KIE API key" in text_of(made), text_of(made)
    assert "bytes hold your KIE API key" in text_of(checked), text_of(checked)
    assert checked.structured_content["saved_files"][0]["holds_key"] is True
    assert KEY not in text_of(made) + text_of(checked)


async def test_a_result_picture_without_the_key_is_not_flagged(keyed, tmp_path):
    async with keyed() as client:
        made = await client.call_tool("generate_image", IMAGE)
        checked = await client.call_tool("check_task", {"task_id": made.structured_content["tasks"][0]["task_id"]})
    assert "API key" not in text_of(made) + text_of(checked)
    assert checked.structured_content["saved_files"][0]["holds_key"] is False


def _tagged_clip(ffmpeg: str, path: Path, size: str) -> Path:
    """A short clip carrying ``KEY`` in its tags (title, comment, the video stream's handler)."""
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
    command += [f"testsrc=size={size}:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast"]
    command += ["-pix_fmt", "yuv420p", "-metadata", f"title={KEY}", "-metadata", f"comment=made for {KEY}"]
    command += ["-metadata:s:v:0", f"handler_name={KEY}", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    assert KEY.encode() in path.read_bytes()
    return path


@pytest.mark.parametrize("how", ["copy", "reencode"])
async def test_a_joined_video_never_carries_a_clips_tags(keyed, ffmpeg, tmp_path, how):
    """The audit: a re-encoded join copied the first clip's tags (and the key in them) into the joined video."""
    first = _tagged_clip(ffmpeg, tmp_path / "first.mp4", "64x64")
    second = _tagged_clip(ffmpeg, tmp_path / "second.mp4", "64x64" if how == "copy" else "96x64")
    async with keyed() as client:
        joined = await client.call_tool("stitch_videos", {"clips": [first.name, second.name], "session": "tags"})
    assert not joined.is_error, text_of(joined)
    assert ("losslessly" in text_of(joined)) == (how == "copy"), text_of(joined)
    [video] = joined.structured_content["saved_files"]
    assert KEY.encode() not in (tmp_path / video["path"]).read_bytes()


def _png(path: Path, how: str, text: str) -> Path:
    """A small picture carrying ``text`` compressed: in a ``zTXt`` chunk, a compressed ``iTXt`` or an ICC profile."""
    picture, info = Image.new("RGB", (640, 640), (200, 30, 30)), PngImagePlugin.PngInfo()
    if how == "zTXt":
        info.add_text("Comment", text, zip=True)
    elif how == "iTXt":
        info.add_itxt("Description", text, lang="en", tkey="Beschreibung", zip=True)
    picture.save(path, pnginfo=info, icc_profile=text.encode() if how == "iCCP" else None)
    assert KEY.encode() not in path.read_bytes()  # only compressed: the raw bytes never show it
    return path


def _uploads(requests: list[dict]) -> list[dict]:
    return [r for r in requests if "upload" in r["path"]]


@pytest.mark.parametrize("how", ["zTXt", "iTXt", "iCCP"])
async def test_a_key_in_a_pictures_compressed_text_is_never_uploaded(keyed, controls, tmp_path, how):
    """The audit: the raw-bytes search missed the key in a PNG's compressed text chunk, and upload_file sent it to
    KIE's public file host."""
    _png(tmp_path / "photo.png", how, f"made with key {KEY}")
    async with keyed() as client:
        uploaded = await client.call_tool("upload_file", {"path": "photo.png"})
        generated = await client.call_tool("generate_image", {**IMAGE, "images": ["photo.png"]})
    for result in (uploaded, generated):
        assert result.is_error and "photo.png holds the KIE API key" in text_of(result), text_of(result)
    assert _uploads((await controls.get("requests"))["requests"]) == []
    assert await controls.creates() == []


@pytest.mark.parametrize("mode", ["auto"])  # the wire and the disk, not the protocol era: once
async def test_compressed_text_inflating_past_what_is_searched_is_never_uploaded(keyed, controls, tmp_path):
    """A compression bomb is never searched to its end, nor sent unsearched: 17 MiB of text in a few KB."""
    _png(tmp_path / "bomb.png", "zTXt", " " * (17 * 2**20) + KEY)
    async with keyed() as client:
        uploaded = await client.call_tool("upload_file", {"path": "bomb.png"})
    assert uploaded.is_error and "compressed text inflating past 16 MiB" in text_of(uploaded), text_of(uploaded)
    assert _uploads((await controls.get("requests"))["requests"]) == []


@pytest.mark.parametrize("how", ["zTXt", "iTXt", "iCCP"])
async def test_a_picture_with_compressed_text_without_the_key_is_uploaded_exactly_as_it_is(
    keyed, controls, tmp_path, how
):
    sent = _png(tmp_path / "photo.png", how, "made with an ordinary editor " * 50).read_bytes()
    async with keyed() as client:
        uploaded = await client.call_tool("upload_file", {"path": "photo.png"})
    assert not uploaded.is_error, text_of(uploaded)
    served = await controls.http.get(uploaded.structured_content["url"])
    assert served.content == sent


def _journal_holds_key(workspace: Path) -> bool:
    return any(KEY.encode() in kept.read_bytes() for kept in (workspace / ".kie-mcp").glob("journal.sqlite3*"))


async def test_a_file_named_after_the_key_is_never_named_so_in_an_answer_or_the_journal(keyed, tmp_path):
    """The audit: "photo_<key>.png (64x64 px) is upscaled ...", "... was already uploaded recently; reused" and the
    journal's record of a question's files (quotes.inputs) named the file with the key in its name."""
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / f"photo_{KEY}.png")
    Image.new("RGB", (1200, 1200), (30, 30, 200)).save(tmp_path / f"big_{KEY}.png")
    request = {**IMAGE, "images": [f"photo_{KEY}.png", f"big_{KEY}.png"]}
    async with keyed(auto_approve_credits=0.0) as client:
        estimated = await client.call_tool("estimate_cost", request)
        first = await client.call_tool("generate_image", request)
        again = await client.call_tool("generate_image", {**request, "prompt": "a green apple"})
    texts = [text_of(result) for result in (estimated, first, again)]
    assert "photo_[redacted].png (64x64 px) is upscaled" in texts[0], texts[0]
    assert "big_[redacted].png was already uploaded recently; reused" in texts[2], texts[2]
    assert all(KEY not in text for text in texts), texts
    assert not _journal_holds_key(tmp_path)


async def test_a_file_named_after_the_key_replaced_while_the_form_is_open_is_still_refused(keyed, controls, tmp_path):
    """The journal keeps a question's file paths redacted; a request's paths are matched against them redacted the
    same way, so a picture named after the key replaced while the person reads the form is still refused."""
    name = f"look_{KEY}.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / name)
    seen: list[str] = []

    async def replaced_while_reading(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params.message)
        if len(seen) == 1:
            Image.new("RGB", (64, 64), (30, 30, 200)).save(tmp_path / name)
        return ElicitResult(action="accept", content={"confirm": True})

    async with keyed(replaced_while_reading, auto_approve_credits=0.0) as client:
        refused = await client.call_tool("generate_image", {**IMAGE, "images": [name]})
    assert refused.is_error and "look_[redacted].png changed since it was priced" in text_of(refused), text_of(refused)
    assert len(seen) == 1 and _uploads((await controls.get("requests"))["requests"]) == []
    assert await controls.creates() == []
    assert not _journal_holds_key(tmp_path)


async def test_a_picture_with_more_compressed_text_chunks_than_are_searched_is_never_uploaded(
    keyed, controls, tmp_path
):
    """The review: 40,000 compressed text chunks of a byte each took 12 s to search, one at a time (a 100 MB file
    holds millions). Past 256 such chunks the picture is refused as unsearched, at once, and nothing is sent."""
    info = PngImagePlugin.PngInfo()
    for n in range(300):
        info.add_text(f"c{n}", "x", zip=True)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "chunky.png", pnginfo=info)
    async with keyed() as client:
        uploaded = await client.call_tool("upload_file", {"path": "chunky.png"})
    text = text_of(uploaded)
    assert uploaded.is_error and "more than 256 compressed text chunks" in text, text
    assert _uploads((await controls.get("requests"))["requests"]) == []


@pytest.mark.parametrize(
    "stem",
    [
        "-".join(KEY[at : at + 8] for at in range(0, len(KEY), 8)),  # in dashed groups, as a UUID writes it
        KEY[:24],  # cut short
        "".join(chr(ord(ch) + 0xFEE0) for ch in KEY),  # in fullwidth look-alikes
    ],
    ids=["dashed", "cut-short", "fullwidth"],
)
async def test_a_file_named_after_the_key_in_any_form_goes_up_under_another_name(keyed, controls, tmp_path, stem):
    """The review: only the key's exact forms kept a file's name off KIE's public file host; in dashed groups, cut
    short or in fullwidth letters it was published in the file's link (the fullwidth one as percent-encoded UTF-8
    the agent could read back). Every form redaction knows is left out of the uploaded name."""
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / f"photo_{stem}.png")
    async with keyed() as client:
        uploaded = await client.call_tool("upload_file", {"path": f"photo_{stem}.png"})
    assert not uploaded.is_error, text_of(uploaded)
    [sent] = _uploads((await controls.get("requests"))["requests"])
    assert sent["body"]["fileName"].startswith("input"), sent["body"]
    assert "photo_" not in uploaded.structured_content["url"]


# -- what a restart knows of a result that held the key ---------------------------------------------------------------

OUTPUT = ResourceTemplateReference(uri="kie://outputs/{+path}")
PREVIEW = ResourceTemplateReference(uri="kie://previews/{+path}")


async def _offered(client: Client, folder: str, template: ResourceTemplateReference = OUTPUT) -> list[str]:
    """What ``kie://outputs/{+path}`` (or ``template``) completes to in the session folder ``folder``."""
    return (await client.complete(template, {"name": "path", "value": f"{folder}/"})).completion.values


def _saved_files(result) -> dict[str, dict]:
    return {f["path"]: f for f in result.structured_content["saved_files"]}


async def _saved_holding_the_key(keyed, controls, monkeypatch, session: str) -> tuple[str, str]:
    """A picture made in ``session`` whose bytes KIE wrote the key into, saved by a server since stopped: its task id
    and its path; then a new process (``downloads``' memory of what it saw saving, emptied)."""
    await controls.fault("files", kind="tagged", text=f"made for {KEY}")
    async with keyed() as client:
        made = await client.call_tool("generate_image", {**IMAGE, "session": session})
    [task] = made.structured_content["tasks"]
    assert made.structured_content["saved_files"][0]["holds_key"] is True, made.structured_content
    monkeypatch.setattr(downloads, "_key_held", downloads._Failures())  # a new process: nothing kept in memory
    return task["task_id"], task["files"][0]


async def test_a_result_that_held_the_key_is_still_said_to_after_a_restart(keyed, controls, tmp_path, monkeypatch):
    """The gap: a saved result whose bytes held the key was known as such only in the memory of the process that
    saved it. After a restart (or on a second server sharing the workspace) check_task and list_tasks called it a
    clean result (``holds_key`` false: the person no longer told not to share it), and the completion of
    kie://outputs/ offered it, whose read then refused it. The journal's row for the file keeps it."""
    task_id, saved = await _saved_holding_the_key(keyed, controls, monkeypatch, "keyrow")
    folder, name = saved.split("/")[1:]
    assert KEY.encode() in (tmp_path / saved).read_bytes()
    async with keyed() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id})
        listed = await client.call_tool("list_tasks", {})
        offered = await _offered(client, folder)
        previewed = await _offered(client, folder, PREVIEW)
    for result in (checked, listed):
        assert _saved_files(result)[saved]["holds_key"] is True, result.structured_content
        assert "bytes hold your KIE API key" in text_of(result) and KEY not in text_of(result), text_of(result)
    assert f"{folder}/{name}" not in offered and f"{folder}/index.html" in offered, offered
    assert f"{folder}/{name}" not in previewed, previewed


@pytest.mark.parametrize("mode", ["auto"])  # the disk and the journal, not the protocol era: once
async def test_a_result_that_held_the_key_changed_since_is_judged_as_it_is_after_a_restart(
    keyed, controls, tmp_path, monkeypatch
):
    """The journal's word holds for the file as it was saved: one of another size since (the person stripped its
    metadata) is another file, said to have changed, not to hold the key; its read judges its bytes as they are."""
    task_id, saved = await _saved_holding_the_key(keyed, controls, monkeypatch, "keyrow")
    folder, name = saved.split("/")[1:]
    async with keyed() as client:
        before = await client.call_tool("check_task", {"task_id": task_id})
        Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / saved, format="JPEG")  # stripped: another size
        after = await client.call_tool("check_task", {"task_id": task_id})
        offered = await _offered(client, folder)
    assert _saved_files(before)[saved]["holds_key"] is True, before.structured_content
    file = _saved_files(after)[saved]
    assert file["holds_key"] is False and file["changed"] is True, file
    assert "API key" not in text_of(after), text_of(after)
    assert f"{folder}/{name}" in offered, offered


@pytest.mark.parametrize("mode", ["auto"])  # the journal's schema, not the protocol era: once
async def test_a_journal_of_an_older_kie_mcp_learns_which_results_held_the_key_and_still_takes_its_rows(
    keyed, controls, tmp_path, monkeypatch
):
    """A journal written before the files' rows kept it is brought up to date by the first start (the column added,
    as every other), and an older kie-mcp still running on the workspace records its files as it always did: rows
    that say nothing of the key, never read as holding it."""
    async with keyed() as client:
        made = await client.call_tool("generate_image", {**IMAGE, "session": "older"})
    [clean] = made.structured_content["tasks"][0]["files"]
    with contextlib.closing(sqlite3.connect(str(journal_path(tmp_path)), isolation_level=None)) as older:
        if any(column[1] == "holds_key" for column in older.execute("PRAGMA table_info(files)")):
            older.execute("DROP INDEX files_key_held")  # as an older kie-mcp made it: neither index nor column
            older.execute("ALTER TABLE files DROP COLUMN holds_key")
    task_id, held = await _saved_holding_the_key(keyed, controls, monkeypatch, "older")
    columns = "task_id, idx, path, sha256, size, mime, source_url, created"  # those an older kie-mcp knows
    with contextlib.closing(sqlite3.connect(str(journal_path(tmp_path)), isolation_level=None)) as older:
        older.execute(  # the clean result's row written again by an older kie-mcp (it saved the file again)
            f"INSERT OR REPLACE INTO files ({columns}) SELECT {columns} FROM files WHERE path = ?", (clean,)
        )
        assert older.execute("SELECT holds_key FROM files WHERE path = ?", (clean,)).fetchone() == (None,)
    async with keyed() as client:
        checked = await client.call_tool("check_task", {"task_id": task_id})
        listed = await client.call_tool("list_tasks", {})
    assert _saved_files(checked)[held]["holds_key"] is True, checked.structured_content
    assert _saved_files(listed)[clean]["holds_key"] is False, listed.structured_content
