"""The gallery at the sizes a workspace reaches: an index of 60 sessions of 24 clips, prompts of 20,000 characters,
a session page too large to send as a resource, and results the user deleted. Seen in headless Chromium (skipped
when it is not installed) and through the MCP client."""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from mcp import MCPError

from kie_mcp.media import gallery
from kie_mcp.media.downloads import poster_path
from kie_mcp.media.gallery import OWN_INDEX, PAGE

from .browser import Page, save_artifact, spread
from .conftest import answering, audits, session_folder, text_of
from .test_gallery import assert_pictures_are_seen, assert_plays, click, rects
from .test_gallery_hostile import MODEL, save, sidecar

VIDEO = {"prompt": "Waves at dusk, slow dolly", "model": "veo3_fast", "wait_seconds": 20}
LONG_MODEL = "gpt-image-2-5-flare-text-to-image"  # takes a prompt of up to 20,000 characters


def plant_clips(
    outputs: Path, clip: Path, side: int, sessions: int, per_session: int, *, prompt: str = "", first_day: int = 1
) -> list[Path]:
    """``sessions`` session folders of ``per_session`` saved clips each (hard links of ``clip`` and its poster, one
    sidecar a clip, its prompt ``prompt`` or a short one), one a day back from ``first_day`` days ago; returns the
    folders, newest first."""
    poster = poster_path(clip, side)
    folders = []
    for s in range(sessions):
        day = date.today() - timedelta(days=s + first_day)
        folder = outputs / f"{day.isoformat()}-shoot-{s}"
        folder.mkdir(parents=True)
        folders.append(folder)
        for k in range(per_session):
            task = f"t{s:03d}{k:04d}"
            name = f"veo3_fast_{task}_1.mp4"
            os.link(clip, folder / name)
            os.link(poster, poster_path(folder / name, side))
            data = {
                "task_id": task,
                "model": "veo3_fast",
                "prompt": prompt or f"Clip {k} of shoot {s}",
                "credits_charged": 60,
                "created_at": f"{day.isoformat()}T10:{k % 60:02d}:00Z",
                "files": [{"path": f"outputs/{folder.name}/{name}"}],
            }
            (folder / f"veo3_fast_{task}.json").write_text(json.dumps(data))
    return folders


def clips_fetched(page: Page) -> list[str]:
    return [url for url in page.requested_urls() if urlsplit(url).path.endswith(".mp4")]


def file_of(url: str) -> Path:
    """The local file a ``file://`` URL names."""
    return Path(unquote(urlsplit(url).path))


def sidecar_prompt(url: str) -> str:
    return json.loads(file_of(url).read_text(encoding="utf-8"))["prompt"]


POSTERS_SHOWN = """(async () => {  // the lazy posters in view arrive after the load event: wait for them
  const inView = () => [...document.images].filter(i => { const r = i.getBoundingClientRect();
    return r.bottom > 0 && r.top < innerHeight; });
  const deadline = Date.now() + 10000;
  while (inView().some(i => !i.complete) && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
  return inView().map(i => i.naturalWidth);
})()"""


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_an_index_of_1440_clips_fetches_no_clip_as_it_opens_and_the_last_plays_on_click(
    connect, tmp_path, settings, browser
):
    """Every clip was a ``<video preload="metadata">``: an index of 60 sessions of 24 clips took 38-65 s to open,
    fetched 1,000 clips, and past Chromium's limit of media players per page the rest would not play. A clip with a
    poster is its poster, loaded lazily, linking to the clip: opening the page fetches no clip, and a click on any
    of them, the last too, plays it."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "session": "Teaser"})
    clip = tmp_path / made.structured_content["tasks"][0]["files"][0]
    assert poster_path(clip, settings.preview_px).is_file(), text_of(made)
    outputs = tmp_path / "outputs"
    plant_clips(outputs, clip, settings.preview_px, sessions=59, per_session=24)
    assert gallery.build(outputs, settings.preview_px) == []

    page = browser.new_page(1280, 900)
    try:
        page.goto((outputs / "index.html").as_uri())
        cards = page.evaluate("document.querySelectorAll('figure.card.video').length")
        assert cards == 1 + 59 * 24, cards
        assert page.evaluate("document.querySelectorAll('video').length") == 0
        shown = page.evaluate(POSTERS_SHOWN)
        assert shown and all(width > 0 for width in shown), shown  # the posters in view are decoded
        posters = [url for url in page.requested_urls() if ".poster-" in url]
        assert len(posters) < 200, len(posters)  # the others wait until they are scrolled to
        assert clips_fetched(page) == []
        assert spread(page.screenshot(rects(page, "figure.card.video .media")[0])) > 10  # a poster, not a flat box

        last = "[...document.querySelectorAll('figure.card.video .media')].at(-1)"
        href = page.evaluate(f"{last}.href")
        click(page, last)
        assert page.evaluate("location.href") == href and file_of(href).name.startswith("veo3_fast_t058")
        assert_plays(page)

        page.goto((session_folder(tmp_path, "teaser") / "index.html").as_uri())
        save_artifact("gallery-clip-session.png", page.screenshot())
        assert set(clips_fetched(page)) == {href}  # only the one clicked, before
        click(page, "document.querySelector('figure.card.video .media')")
        assert_plays(page)
    finally:
        page.close()


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_a_card_of_a_20000_character_prompt_shows_its_start_and_links_the_whole_prompt(
    connect, tmp_path, browser
):
    """A card held its prompt three times (the text, 1,000 characters in a title, 200 in the alt text): 60 sessions
    of 24 such results made a 31 MB index. A card shows the first 600 characters and "…", and links the sidecar that
    holds the whole prompt."""
    prompt = " ".join(f"word{n}" for n in range(4000))[:20000]
    assert len(prompt) == 20000
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {"prompt": prompt, "model": LONG_MODEL, "session": "Long"})
    task = made.structured_content["tasks"][0]
    assert task["files"], text_of(made)
    folder = session_folder(tmp_path, "long")
    seen = {}
    page = browser.new_page(1200, 900)
    try:
        for where in (folder / "index.html", tmp_path / "outputs" / "index.html"):
            page.goto(where.as_uri())
            seen[where] = page.evaluate(
                "(() => { const card = document.querySelector('figure.card'); return {"
                "words: card.querySelector('.prompt').textContent, html: card.outerHTML.length, "
                "titles: [...card.querySelectorAll('[title]')].map(e => e.title), "
                "alt: card.querySelector('img').alt, whole: card.querySelector('a.whole').href, "
                "link: card.querySelector('a.whole').textContent}; })()"
            )
    finally:
        page.close()
    for where, card in seen.items():
        assert card["words"] == prompt[:600] + "\u2026", where
        assert len(card["alt"]) <= 201 and prompt.startswith(card["alt"].removesuffix("\u2026")), where
        assert card["titles"] == [], where  # no copy of the prompt in a title
        assert card["html"] < 2500, (where, card["html"])
        assert card["link"] == "whole prompt (20,000 characters)"
        assert sidecar_prompt(card["whole"]) == prompt


def test_an_index_of_60_sessions_of_24_results_with_20000_character_prompts_stays_small(tmp_path):
    """31 MB before: the index and a session page grow by at most about 1.5 KB a card, whatever the prompt (1,550
    bytes: each picture names its file, about 70 bytes, for the words the CSS covers it with if it does not open)."""
    prompt = ("Ultra-detailed product shot, the serum bottle on wet slate, rim light; " * 300)[:20000]
    outputs = tmp_path / "outputs"
    for s in range(60):
        folder = outputs / f"{(date.today() - timedelta(days=s)).isoformat()}-shoot-{s}"
        for k in range(24 if s else 200):
            save(folder, f"t{s}x{k}", sidecar(folder, f"t{s}x{k}", prompt))
    assert gallery.build(outputs) == []
    index = (outputs / "index.html").stat().st_size
    session = (outputs / f"{date.today().isoformat()}-shoot-0" / "index.html").stat().st_size
    assert index < 60 * 24 * 1550, index
    assert session < 200 * 1550, session


async def test_a_deleted_result_leaves_the_pages_list_tasks_names_and_the_resources_and_its_previews_go(
    connect, tmp_path, browser
):
    """A picture the user deleted kept its card (its hidden thumbnail left behind, its link dead) on the index and
    the kie://outputs/index.html resource until the next result was saved. list_tasks and a read of a gallery
    resource bring the pages up to date first, and a deleted result's kept previews are removed."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool(
            "generate_image",
            {"prompt": "A red apple", "model": "nano-banana-2", "variations": 2, "session": "Shoot"},
        )
        files = [tmp_path / path for task in made.structured_content["tasks"] for path in task["files"]]
        assert len(files) == 2, text_of(made)
        folder = files[0].parent
        rejected, kept = files
        assert any(p.name.startswith(f".{rejected.name}.") for p in folder.iterdir())  # its previews
        rejected.unlink()

        listed = await client.call_tool("list_tasks", {})
        pages = [where.read_text(encoding="utf-8") for where in (tmp_path / "outputs" / "index.html", folder / PAGE)]
        page = browser.new_page(1200, 900)
        try:
            page.goto((folder / PAGE).as_uri())  # as list_tasks left it
            links = page.evaluate("[...document.querySelectorAll('a')].map(a => decodeURIComponent(a.href))")
            assert_pictures_are_seen(page, count=1)  # its picture, decoded
            images = page.evaluate("[...document.images].map(i => decodeURIComponent(i.src))")
        finally:
            page.close()
        index = (await client.read_resource("kie://outputs/index.html")).contents[0].text
        session = (await client.read_resource(f"kie://outputs/{folder.name}/index.html")).contents[0].text

        kept.unlink()  # the session's last picture: read without list_tasks, the index goes without it
        emptied = (await client.read_resource("kie://outputs/index.html")).contents[0].text
        with pytest.raises(MCPError, match="No gallery page"):
            await client.read_resource(f"kie://outputs/{folder.name}/index.html")

    assert listed.structured_content["gallery"] == str(tmp_path / "outputs" / "index.html")
    for text in (*pages, index, session):
        assert rejected.name not in text and kept.name in text
        assert "1 result" in text
    assert not any(rejected.name in link for link in links)
    assert len(images) == 1 and kept.name in images[0], images
    assert not [p.name for p in folder.iterdir() if p.name.startswith((f".{rejected.name}.", f".{kept.name}."))]
    assert kept.name not in emptied and folder.name not in emptied and "No saved results yet" in emptied
    assert not (folder / PAGE).exists()  # a session with no result left has no page


def test_a_long_named_result_keeps_its_previews_until_it_is_deleted(tmp_path, monkeypatch):
    """A preview names its file by the first 170 characters of the file's name: one of a long name is its own, not
    an orphan, and goes with it."""
    monkeypatch.setattr(gallery, "RECENT_NS", 0)  # a folder's kept scan trusted at once: its stat tells a change
    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-long"
    save(folder, "short", sidecar(folder, "short", "A result beside it"))
    name = "joined-" + "x" * 200 + ".png"  # a join's own name (stitch_videos' output_name), no sidecar
    (folder / name).write_bytes((folder / f"{MODEL}_short_1.png").read_bytes())
    thumb = folder / f".{name[:170]}.thumb-256.png"
    thumb.write_bytes(b"\x89PNG")
    orphan = folder / ".gone.png.thumb-256.jpg"
    orphan.write_bytes(b"\xff\xd8")
    hidden = folder / "..hidden.png.thumb-256.jpg"  # a hidden file's name, not a preview kie-mcp keeps
    hidden.write_bytes(b"\xff\xd8")
    assert gallery.build(outputs) == []
    assert thumb.exists() and hidden.exists() and not orphan.exists()
    (folder / name).unlink()
    assert gallery.build(outputs) == []
    assert not thumb.exists() and hidden.exists()


def test_a_session_folder_that_cannot_be_listed_for_a_moment_keeps_its_page_and_card(tmp_path, monkeypatch):
    """A review: one failed listing (too many open files, a network disk's timeout) read as "its last result deleted":
    the session's page was removed and the empty scan kept, so its card stayed off the index until the folder
    changed again. A folder that cannot be listed is left as it was, and read again at the next build."""
    monkeypatch.setattr(gallery, "RECENT_NS", 0)
    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-launch"
    save(folder, "one", sidecar(folder, "one", "The launch picture"))
    assert gallery.build(outputs) == []
    assert (folder / PAGE).exists() and folder.name in (outputs / PAGE).read_text()
    real_scandir = os.scandir

    def failing(path):  # the session folder cannot be listed, everything else can
        if Path(path) == folder:
            raise OSError(24, "Too many open files")
        return real_scandir(path)

    monkeypatch.setattr(gallery.os, "scandir", failing)
    os.utime(folder, ns=(folder.stat().st_atime_ns, folder.stat().st_mtime_ns + 10**9))  # it changed: read again
    assert gallery.build(outputs) == []
    assert (folder / PAGE).exists()
    assert folder.name in (outputs / PAGE).read_text()
    monkeypatch.setattr(gallery.os, "scandir", real_scandir)
    assert gallery.build(outputs) == []
    assert (folder / PAGE).exists() and folder.name in (outputs / PAGE).read_text()


async def test_a_session_page_too_large_to_send_says_so_and_where_it_is_on_disk(connect, tmp_path, monkeypatch):
    """A session of 2,500 results with long prompts made a 54 MB page, and its resource answered "No gallery page
    for the session folder" though the page was there. It says the page is too large to send, and where it is."""
    folder = tmp_path / "outputs" / f"{date.today().isoformat()}-big"
    for n in range(600):
        save(folder, f"t{n:04d}", sidecar(folder, f"t{n:04d}", f"Picture {n}"))
    assert gallery.build(tmp_path / "outputs") == []
    page = folder / "index.html"
    size = page.stat().st_size
    monkeypatch.setattr(gallery, "PAGE_MAX_BYTES", size // 2)
    async with connect(elicitation=answering()) as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource(f"kie://outputs/{folder.name}/index.html")
        index = await client.read_resource("kie://outputs/index.html")
    said = str(raised.value)
    assert "No gallery page" not in said, said
    assert f"too large to send ({size / 2**20:.1f} MB): open it from disk at {page}" in said, said
    assert folder.name in index.contents[0].text  # the index is small: still served


def plant_sessions(outputs: Path, days: list[str]) -> None:
    """A session folder a day of ``days`` (``<day>-shoot-<n>``), one saved picture in each, no gallery page."""
    for n, day in enumerate(days):
        folder = outputs / f"{day}-shoot-{n}"
        save(folder, f"t{n}", sidecar(folder, f"t{n}", f"Prompt of shoot {n}", created_at=f"{day}T10:00:00Z"))


def sections(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', page)


async def test_an_index_read_with_none_on_disk_is_the_one_a_build_writes_of_the_newest_sessions_and_month_pages(
    connect, tmp_path, monkeypatch
):
    """The audit: with no index of kie-mcp's on disk (the user deleted it, or copied outputs/ in) and no build yet in
    this process, a read of kie://outputs/index.html made one showing every session in full, with no size limit:
    2,000 sessions made 60 MB of HTML in 17 s and about 1 GB of memory, at every read, past the 50 MB a resource
    sends. The read runs the build a save runs, which writes the index of the newest sessions and the month pages
    listing them all, and serves that page."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 3)
    outputs = tmp_path / "outputs"
    days = [f"2026-0{1 + n // 4}-{10 + n:02d}" for n in range(8)]  # four sessions in January, four in February
    plant_sessions(outputs, days)
    async with connect() as client:
        first = (await client.read_resource("kie://outputs/index.html")).contents[0].text
        written = (outputs / PAGE).read_text(encoding="utf-8")
        (outputs / PAGE).unlink()  # deleted again: the next read writes it again
        again = (await client.read_resource("kie://outputs/index.html")).contents[0].text
        january = (await client.read_resource("kie://outputs/index-2026-01.html")).contents[0].text
    assert sections(first) == ["2026-02-17-shoot-7", "2026-02-16-shoot-6", "2026-02-15-shoot-5", "by-month"]
    assert "Prompt of shoot 4" not in first and "8 results · 8 sessions" in first
    assert '<a href="index-2026-01.html">January 2026</a> · 4 sessions · 4 results' in first
    assert first == written == again == (outputs / PAGE).read_text(encoding="utf-8")  # served as written
    assert all(f'href="{days[n]}-shoot-{n}/index.html"' in january for n in range(4)), january
    assert all((outputs / f"{day}-shoot-{n}" / PAGE).is_file() for n, day in enumerate(days))


async def test_an_index_no_build_can_write_is_made_for_the_read_of_the_newest_sessions_never_past_the_limit(
    connect, tmp_path, monkeypatch
):
    """Where the build cannot write the index (folders in its places here; a read-only outputs/, a full disk), the read
    makes the same index of the newest sessions and says the month pages may be missing; one larger than a resource
    may send is refused in words, never sent."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 2)
    outputs = tmp_path / "outputs"
    plant_sessions(outputs, [f"2026-03-{10 + n:02d}" for n in range(5)])
    for name in (PAGE, OWN_INDEX):  # folders where the index goes, under either of its names
        (outputs / name).mkdir()
    async with connect() as client:
        made = (await client.read_resource("kie://outputs/index.html")).contents[0].text
        monkeypatch.setattr(gallery, "PAGE_MAX_BYTES", len(made.encode()) // 2)
        with pytest.raises(MCPError) as raised:
            await client.read_resource("kie://outputs/index.html")
    assert sections(made) == ["2026-03-14-shoot-4", "2026-03-13-shoot-3", "by-month"]
    assert "The newest 2 of 5 sessions are shown above" in made and "could not be written in outputs/" in made
    assert "5 results · 5 sessions" in made and "Prompt of shoot 2" not in made
    assert f"too large to send ({len(made.encode()) / 2**20:.1f} MB)" in str(raised.value), str(raised.value)


# The folders the gallery lists (os.scandir) while a test watches (``listings``), seen through Python's audit events
# (``audits``): nothing of kie-mcp's is replaced to count them.
@pytest.fixture
def listings():
    """A list that gathers the names of the folders the gallery lists (``os.scandir``) while the test runs."""
    listed: list[str] = []

    def watch(event: str, args: tuple) -> None:
        listing = event == "os.scandir" and args and isinstance(args[0], str | os.PathLike)
        if listing and sys._getframe(2).f_code.co_filename == gallery.__file__:  # not a start-up sweep's
            listed.append(os.path.basename(os.fspath(args[0])))

    with audits(watch):
        yield listed


async def test_a_read_of_an_index_no_build_can_write_lists_each_session_folder_once(
    connect, tmp_path, monkeypatch, listings
):
    """Where the index cannot be written, a read of it listed every session folder up to three times: the refresh of
    this process's kept scans, the build again (its index still missing), then a scan of its own for the index made
    for the read. The index made for the read comes from the build's scans: each folder is listed once a read."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 2)
    outputs = tmp_path / "outputs"
    days = [f"2026-03-{10 + n:02d}" for n in range(5)]
    plant_sessions(outputs, days)
    for name in (PAGE, OWN_INDEX):  # folders where the index goes, under either of its names
        (outputs / name).mkdir()
    folders = {f"{day}-shoot-{n}" for n, day in enumerate(days)}
    async with connect() as client:
        for _ in range(3):  # the first read builds; the later ones refresh what this process keeps
            listings.clear()
            made = (await client.read_resource("kie://outputs/index.html")).contents[0].text
            counted = Counter(name for name in listings if name in folders)
            assert set(counted) == folders and max(counted.values()) == 1, counted
            assert sections(made) == ["2026-03-14-shoot-4", "2026-03-13-shoot-3", "by-month"], sections(made)
            assert "5 results · 5 sessions" in made and "could not be written in outputs/" in made, made
