"""outputs/ may be a link to a folder of the user's choosing (another disk), never a way to every file.

A workspace is often a cloned folder (a shared MASTER_CONTEXT.md), and a clone can carry ``outputs -> /`` or a
link to the home folder. Through such a link ``kie://outputs/etc/passwd`` was served and the gallery's pages were
written over the user's own. Now such a link is refused outright (nothing saved, served or read through it, and a
request whose results could not be saved is refused before anything is spent), ``kie://outputs/`` serves only what
kie-mcp saves (session folders' files and gallery pages), and a link to a folder elsewhere works in full: its
saved results are inputs like any other.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mcp import MCPError

from kie_mcp.media import saved

from .conftest import answering, text_of
from .test_apps import has_ffmpeg
from .test_gallery_hostile import as_served
from .test_inputs import EDIT, PNG, uploads

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symlinks")

REQUEST = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}


@pytest.fixture
def elsewhere(tmp_path_factory) -> Path:
    """A folder outside the workspace: the other disk outputs/ is linked to."""
    return tmp_path_factory.mktemp("other-disk")


def _link_outputs(workspace: Path, where: str, elsewhere: Path, monkeypatch) -> None:
    """outputs/ made a link to the top of the file system, the workspace, a folder holding it, or the home folder."""
    if where == "home":  # the link leads to the home folder (HOME) itself, outside the workspace
        home = elsewhere / "me"
        home.mkdir()
        monkeypatch.setenv("HOME", str(home))
        target = home
    else:
        target = {"top": Path("/"), "workspace": workspace, "above": workspace.parent}[where]
    (workspace / "outputs").symlink_to(target, target_is_directory=True)


@pytest.mark.parametrize("where", ["top", "workspace", "above", "home"])
async def test_outputs_linked_to_every_file_serves_saves_and_spends_nothing(
    connect, controls, tmp_path, elsewhere, monkeypatch, where
):
    """A cloned workspace's ``outputs -> /`` (or to the workspace, a folder above it, the home folder) served any
    file by ``kie://outputs/<path>`` and took paid requests whose results would land all over the disk. Now nothing
    is served through it, and estimate_cost and generate_image refuse before anything is sent, saying what to do."""
    _link_outputs(tmp_path, where, elsewhere, monkeypatch)
    (tmp_path / "notes.txt").write_text("the workspace's own file\n")
    readable = "etc/hostname" if where == "top" else "notes.txt" if where != "above" else f"{tmp_path.name}/notes.txt"
    async with connect(elicitation=answering()) as client:
        with pytest.raises(MCPError) as served:
            await client.read_resource(f"kie://outputs/{readable}")
        with pytest.raises(MCPError) as page:
            await client.read_resource("kie://outputs/index.html")
        estimate = await client.call_tool("estimate_cost", REQUEST)
        generated = await client.call_tool("generate_image", REQUEST)
    assert "symbolic link" in str(served.value) and "Remove the link" in str(served.value), served.value
    assert "symbolic link" in str(page.value), page.value
    for answer in (estimate, generated):
        assert answer.is_error, text_of(answer)
        assert "outputs/ in the workspace is a symbolic link" in text_of(answer), text_of(answer)
        assert "Nothing was sent or charged" in text_of(answer)
    assert await controls.creates() == []


async def test_a_linked_outputs_elsewhere_saves_serves_and_reuses_its_results(connect, controls, tmp_path, elsewhere):
    """outputs/ a link to a folder on another disk (as the README allows): results are saved there, served, and
    usable as the next request's input, by resource link or by path (they were refused as "outside the folders
    kie-mcp may read", so a product shot could not be animated or edited)."""
    (tmp_path / "outputs").symlink_to(elsewhere, target_is_directory=True)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**REQUEST, "session": "shoot"})
        [path] = made.structured_content["tasks"][0]["files"]
        link = next(block.uri for block in made.content if block.type == "resource_link")
        served = await client.read_resource(str(link))
        by_link = await client.call_tool("generate_image", {**EDIT, "images": [str(link)]})
        by_path = await client.call_tool("generate_image", {**EDIT, "images": [path]})
    assert (elsewhere / Path(path).relative_to("outputs")).is_file()  # saved on the other disk
    assert served.contents[0].blob
    for answer in (by_link, by_path):
        assert answer.structured_content["status"] == "completed", text_of(answer)
    assert len(await uploads(controls)) >= 1 and len(await controls.creates()) == 3


async def test_a_linked_outputs_lends_only_its_saved_results(connect, controls, tmp_path, elsewhere):
    """Through a linked outputs/ only what kie-mcp saves is served or read as an input: a file of the other disk
    outside any session folder (the folder may hold the user's other files), or a dotfile in a session folder, is
    neither, and nothing is uploaded."""
    (tmp_path / "outputs").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "private.png").write_bytes(PNG)
    (elsewhere / "2026-01-01-shoot").mkdir()
    (elsewhere / "2026-01-01-shoot" / ".hidden.png").write_bytes(PNG)
    (elsewhere / "2026-01-01-shoot" / "apple.png").write_bytes(PNG)
    (elsewhere / "2024-07-14-holiday").mkdir()  # the user's own photos, in a folder named by a date
    (elsewhere / "2024-07-14-holiday" / "IMG_0001.png").write_bytes(PNG)
    async with connect(elicitation=answering()) as client:
        for uri in ("private.png", "2026-01-01-shoot/apple.png", "2024-07-14-holiday/IMG_0001.png"):
            with pytest.raises(MCPError, match="No saved result"):  # served, or previewed, only what kie-mcp saved
                await client.read_resource(f"kie://outputs/{uri}")
            with pytest.raises(MCPError):
                await client.read_resource(f"kie://previews/{uri}")
        made = await client.call_tool("generate_image", {**REQUEST, "session": "shoot"})
        loose = await client.call_tool("generate_image", {**EDIT, "images": ["outputs/private.png"]})
        hidden = await client.call_tool("generate_image", {**EDIT, "images": ["outputs/2026-01-01-shoot/.hidden.png"]})
        photo = await client.call_tool("upload_file", {"path": "outputs/2024-07-14-holiday/IMG_0001.png"})
        unsaved = await client.call_tool("upload_file", {"path": "outputs/2026-01-01-shoot/apple.png"})
    assert made.structured_content["status"] == "completed", text_of(made)
    holiday = elsewhere / "2024-07-14-holiday"
    assert sorted(p.name for p in holiday.iterdir()) == ["IMG_0001.png"]  # no page, no preview written there
    assert "holiday" not in (elsewhere / "index.html").read_text()  # nor listed in the gallery
    for refused in (loose, hidden, photo, unsaved):  # no sidecar of kie-mcp's lists them: never uploaded
        assert refused.is_error and "not a result kie-mcp saved there" in text_of(refused), text_of(refused)
    assert await uploads(controls) == [] and len(await controls.creates()) == 1  # the one generation above


def test_kie_outputs_serves_only_what_kie_mcp_saves_there():
    """Session folders' files and the gallery's pages; nothing else a (linked) outputs/ may hold."""
    assert saved.is_served(Path("2026-12-05-shoot/apple.png"))
    assert saved.is_served(Path("2026-12-05-shoot_2/sub/clip.mp4"))
    assert saved.is_served(Path("index.html")) and saved.is_served(Path("index-2026-11.html"))
    for other in ("notes.txt", "etc/passwd", "2026-12-05-shoot", "Documents/2026-12-05-x/a.png", "index.htm"):
        assert not saved.is_served(Path(other)), other


def test_a_dangling_or_plain_outputs_is_not_refused(tmp_path):
    """Only a link leading to every file is refused as one: a real folder, a missing one, or a link to a folder
    that does not exist (the other disk not mounted) is not; the last cannot take a result, which
    ``saving_problem`` says (test_promise_outputs_take_results)."""
    assert saved.refusal(tmp_path / "outputs") is None
    (tmp_path / "outputs").mkdir()
    assert saved.refusal(tmp_path / "outputs") is None
    (tmp_path / "outputs").rmdir()
    (tmp_path / "outputs").symlink_to(tmp_path / "unmounted" / "disk", target_is_directory=True)
    assert saved.refusal(tmp_path / "outputs") is None


@pytest.mark.parametrize("page", ["file", "link"])
async def test_a_linked_outputs_keeps_the_users_own_pages(connect, tmp_path, elsewhere, page):
    """outputs/ linked to a folder of the user's that holds an index.html of their own (an exported web album, or
    a link to one): the gallery replaced it at the next save. A page kie-mcp did not write is left as it is."""
    (tmp_path / "outputs").symlink_to(elsewhere, target_is_directory=True)
    own = "<!doctype html><title>My album</title>\n"
    (elsewhere / "album.html").write_text(own)
    if page == "file":
        (elsewhere / "index.html").write_text(own)
    else:
        (elsewhere / "index.html").symlink_to(elsewhere / "album.html")
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**REQUEST, "session": "shoot"})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert (elsewhere / "index.html").read_text() == own and (elsewhere / "album.html").read_text() == own
    assert (elsewhere / "index.html").is_symlink() == (page == "link")
    [path] = made.structured_content["tasks"][0]["files"]
    assert b"kie-mcp" in (elsewhere / Path(path).relative_to("outputs").parent / "index.html").read_bytes()


@pytest.mark.parametrize("mode", ["auto"])  # joins by ffmpeg, local work: once (the era is test_protocol's)
@pytest.mark.skipif(not has_ffmpeg(), reason="no ffmpeg: install the video extra (imageio-ffmpeg)")
async def test_a_join_into_a_linked_outputs_is_named_and_recorded(connect, tmp_path, elsewhere):
    """stitch_videos into an outputs/ linked to another disk wrote the video, then failed with a bare error (its
    path was named from the other disk, outside the workspace): no answer naming it, no sidecar, no gallery."""
    (tmp_path / "outputs").symlink_to(elsewhere, target_is_directory=True)
    video = {"prompt": "waves at dusk", "model": "veo3_fast", "wait_seconds": 40, "session": "reel"}
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_video", video)
        second = await client.call_tool("generate_video", {**video, "prompt": "gulls at dusk"})
        ids = [made.structured_content["tasks"][0]["task_id"] for made in (first, second)]
        joined = await client.call_tool("stitch_videos", {"clips": ids, "session": "reel"})
    assert not joined.is_error, text_of(joined)
    path = joined.structured_content["path"]
    assert path.startswith("outputs/") and (tmp_path / path).is_file() and path in text_of(joined)
    assert (tmp_path / path).with_suffix(".json").is_file()


def test_a_fifo_beside_a_file_in_a_linked_outputs_is_never_waited_on(tmp_path):
    """What a linked outputs/ lends is judged by reading the sidecar beside a file: a FIFO named like one (which
    would block the read for good) is not a sidecar."""
    home = tmp_path / "other-disk"
    folder = home / "2026-01-01-shoot"
    folder.mkdir(parents=True)
    (folder / "apple_1.png").write_bytes(PNG)
    os.mkfifo(folder / "apple.json")
    assert saved.is_recorded(home, folder / "apple_1.png") is False
    assert saved.lends(home, folder / "apple.json") is False


ALBUM = "<!doctype html><title>My holiday album</title><p>Grandma's address: 12 Elm Street</p>\n"


@pytest.mark.parametrize("mode", ["legacy"])  # what the pages show does not depend on the protocol era
async def test_beside_the_users_own_index_the_gallery_is_written_under_its_own_name_and_named_everywhere(
    connect, tmp_path, elsewhere, browser, caplog
):
    """outputs/ linked to the user's folder holding their own index.html: the gallery's index was never written
    (only a warning on stderr), yet list_tasks named the user's page as the gallery, kie://outputs/index.html served
    their album and every session page's "All sessions" led to it. The index is written beside it as
    kie-mcp-gallery.html, and list_tasks, the resource and the session pages name that; once the user's page is
    gone, the index is index.html again."""
    (tmp_path / "outputs").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "index.html").write_text(ALBUM)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**REQUEST, "session": "shoot"})
        listed = await client.call_tool("list_tasks", {})
        served = (await client.read_resource("kie://outputs/index.html")).contents[0].text
        by_name = (await client.read_resource("kie://outputs/kie-mcp-gallery.html")).contents[0].text
    assert made.structured_content["status"] == "completed", text_of(made)
    own = tmp_path / "outputs" / "kie-mcp-gallery.html"
    assert (elsewhere / "index.html").read_text() == ALBUM  # never replaced
    assert listed.structured_content["gallery"] == str(own) and listed.structured_content["gallery_uri"] == own.as_uri()
    assert f"Gallery of saved results: {own}" in text_of(listed)
    assert "outputs/index.html there is a page of your own" in text_of(listed), text_of(listed)
    assert served == by_name == as_served(own.read_text(encoding="utf-8")) and "Grandma" not in served
    assert REQUEST["prompt"] in served
    assert not [r for r in caplog.records if "could not be written" in r.getMessage()]

    session = tmp_path / Path(made.structured_content["tasks"][0]["files"][0]).parent / "index.html"
    page = browser.new_page(1200, 900)
    try:
        page.goto(session.as_uri())
        page.goto(page.evaluate("document.querySelector('header a').href"))  # "All sessions"
        landed = page.evaluate(
            "({title: document.title, prompts: [...document.querySelectorAll('.prompt')].map(p => p.textContent)})"
        )
    finally:
        page.close()
    assert landed == {"title": "kie-mcp gallery", "prompts": [REQUEST["prompt"]]}, landed

    (elsewhere / "index.html").unlink()  # the user moved their album away
    async with connect(elicitation=answering()) as client:
        again = await client.call_tool("generate_image", {**REQUEST, "prompt": "A green pear", "session": "shoot"})
        listed = await client.call_tool("list_tasks", {})
    assert again.structured_content["status"] == "completed", text_of(again)
    assert listed.structured_content["gallery"] == str(tmp_path / "outputs" / "index.html")
    assert "A green pear" in (elsewhere / "index.html").read_text(encoding="utf-8") and not own.exists()
    assert 'href="../index.html">All sessions' in session.read_text(encoding="utf-8")


async def test_the_gallery_beside_a_users_page_is_named_until_the_next_save_and_written_again_when_missing(
    connect, tmp_path, elsewhere
):
    """The review: after the user deleted their own index.html, list_tasks named no gallery at all until the next
    save, though kie-mcp-gallery.html was there and the session pages linked to it; and while the user's page stood,
    a kie-mcp-gallery.html that had gone missing (a full disk, a hand) was never written again by check_task.
    list_tasks brings the gallery up to date before it names it: index.html again, the one under its own name gone."""
    (tmp_path / "outputs").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "index.html").write_text(ALBUM)
    own = tmp_path / "outputs" / "kie-mcp-gallery.html"
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**REQUEST, "session": "shoot"})
        task_id = made.structured_content["tasks"][0]["task_id"]
        own.unlink()  # gone while the user's page stands
        await client.call_tool("check_task", {"task_id": task_id})
        rewritten = own.is_file()
        (elsewhere / "index.html").unlink()  # the user moved their album away; nothing saved since
        listed = await client.call_tool("list_tasks", {})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert rewritten and not own.exists()
    assert listed.structured_content["gallery"] == str(tmp_path / "outputs" / "index.html"), text_of(listed)
    assert saved.is_own_page(elsewhere / "index.html")  # kie-mcp's own page, where the album was


async def test_the_gallery_resources_serve_only_pages_kie_mcp_wrote_in_its_session_folders(
    connect, tmp_path, elsewhere
):
    """kie://outputs/{session}/index.html served any outputs/<folder>/index.html (kie://outputs/private/notes.html
    was refused while kie://outputs/private/index.html was served), and kie://outputs/index.html the user's own
    page, through a linked outputs/ and in the workspace's own. They serve only the gallery's pages: a page of a
    session folder kie-mcp wrote, and the index it wrote (else one made from what kie-mcp saved)."""
    private = "USERS-PRIVATE-PAGE-7f3a"
    linked, plain = tmp_path / "linked", tmp_path / "plain"
    linked.mkdir()
    (linked / "outputs").symlink_to(elsewhere, target_is_directory=True)
    for outputs in (elsewhere, plain / "outputs"):
        for folder in ("private", "2024-07-14-holiday"):  # a folder of the user's, one named by a date
            (outputs / folder).mkdir(parents=True)
            (outputs / folder / "index.html").write_text(f"<html>{private}</html>")
    (elsewhere / "index.html").write_text(f"<html>my album {private}</html>")
    answers: dict[str, str] = {}
    for workspace in (linked, plain):
        async with connect(elicitation=answering(), workspace=workspace) as client:
            early = (await client.read_resource("kie://outputs/index.html")).contents[0].text
            made = await client.call_tool("generate_image", {**REQUEST, "session": "shoot"})
            assert made.structured_content["status"] == "completed", text_of(made)
            folder = Path(made.structured_content["tasks"][0]["files"][0]).parent.name
            for uri in ("private/index.html", "2024-07-14-holiday/index.html", "private/notes.html"):
                with pytest.raises(MCPError) as refused:
                    await client.read_resource(f"kie://outputs/{uri}")
                answers[f"{workspace.name}: {uri}"] = str(refused.value)
            index = (await client.read_resource("kie://outputs/index.html")).contents[0].text
            session = (await client.read_resource(f"kie://outputs/{folder}/index.html")).contents[0].text
        assert private not in early and "kie-mcp gallery" in early and "No saved results yet" in early
        for page in (index, session):
            assert private not in page and saved.GENERATOR.decode() in page and REQUEST["prompt"] in page
    for uri, said in answers.items():
        assert private not in said and ("No gallery page" in said or "No saved result" in said), (uri, said)
