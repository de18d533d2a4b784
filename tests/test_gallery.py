"""The gallery of saved results: outputs/index.html and a page per session, written after every saved result, seen
in a real browser (headless Chromium, skipped when it is not installed)."""

from __future__ import annotations

import html
import json
import logging
import os
import posixpath
import re
import shutil
import unicodedata
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest
from mcp import MCPError
from PIL import Image

from kie_mcp.media import gallery, saved
from kie_mcp.media.downloads import output_folder, poster_path

from .browser import Page, save_artifact, spread
from .conftest import answering, session_folder, text_of
from .test_gallery_hostile import MODEL, PNG, Facts, as_served, linked_names, save, sidecar

HOSTILE = "Neon sign <script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\"> & more"
IMAGE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}
VIDEO = {"prompt": "Waves at dusk, slow dolly", "model": "veo3_fast", "wait_seconds": 20}


async def make_results(client) -> dict[str, dict]:
    """Two images (one with a hostile prompt) in one session and a video in another, all saved."""
    made = {
        "apple": await client.call_tool("generate_image", {**IMAGE, "session": "Spring Launch"}),
        "hostile": await client.call_tool("generate_image", {**IMAGE, "prompt": HOSTILE, "session": "Spring Launch"}),
        "video": await client.call_tool("generate_video", {**VIDEO, "session": "Teaser"}),
    }
    tasks = {}
    for name, result in made.items():
        task = result.structured_content["tasks"][0]
        assert task["files"], text_of(result)
        tasks[name] = task
    return tasks


def page_of(workspace: Path, session: str | None = None) -> str:
    folder = session_folder(workspace, session) if session else workspace / "outputs"
    return (folder / "index.html").read_text(encoding="utf-8")


# -- the pages -----------------------------------------------------------------------------------------


async def test_the_gallery_is_rebuilt_only_when_a_result_is_saved_with_previews_of_only_the_new_files(
    connect, tmp_path, monkeypatch
):
    """A check_task of a result already saved writes no page and makes no preview (it sits on the call's path);
    a new result makes its own previews, not the whole tree's."""
    from kie_mcp.media import gallery

    builds: list[list[str]] = []
    real_build = gallery.build

    def counted(outputs, side=gallery.THUMBNAIL_SIDE, fresh=()):
        builds.append(sorted(Path(path).name for path, _ in fresh))
        return real_build(outputs, side, fresh)

    monkeypatch.setattr(gallery, "build", counted)
    async with connect(elicitation=answering()) as client:
        first = (await client.call_tool("generate_image", IMAGE)).structured_content["tasks"][0]
        for _ in range(3):
            await client.call_tool("check_task", {"task_id": first["task_id"]})
        second = (await client.call_tool("generate_image", {**IMAGE, "prompt": "A green pear"})).structured_content
    assert builds == [[Path(first["files"][0]).name], [Path(second["tasks"][0]["files"][0]).name]]
    assert "A green pear" in page_of(tmp_path)


async def test_the_gallery_shows_every_saved_result_by_session_with_prompt_model_and_credits(
    connect, tmp_path, settings
):
    async with connect(elicitation=answering()) as client:
        tasks = await make_results(client)
        listed = await client.call_tool("list_tasks", {})
        index_resource = await client.read_resource("kie://outputs/index.html")
        spring_folder = session_folder(tmp_path, "spring-launch").name
        session_resource = await client.read_resource(f"kie://outputs/{spring_folder}/index.html")
    index = page_of(tmp_path)
    spring, teaser = page_of(tmp_path, "spring-launch"), page_of(tmp_path, "teaser")
    for name, task in tasks.items():
        file_name = Path(task["files"][0]).name
        folder = Path(task["files"][0]).parent.name
        assert f'href="{folder}/{file_name}"' in index, name  # relative links: works from file:// and when moved
        assert f'href="{file_name}"' in (teaser if name == "video" else spring), name
    assert index.index("teaser") < index.index("Spring Launch")  # newest session first, headed by its name as typed
    assert "A red apple on a wooden table" in index and "Waves at dusk, slow dolly" in spring + teaser + index
    assert "nano-banana-2" in index and "veo3_fast" in index
    assert "8 credits" in index and "60 credits" in index
    poster = poster_path(tmp_path / tasks["video"]["files"][0], settings.preview_px)
    assert poster.is_file()  # ffmpeg (a dev dependency) made a poster for the video, which the pages show
    assert f'<img src="{poster.name}"' in teaser and "<video" not in teaser
    assert "https://" not in index and "http://" not in index  # nothing from the network: no CDN, no KIE links

    # list_tasks says where the gallery is, as a path and as a file:// URI
    gallery = tmp_path / "outputs" / "index.html"
    assert listed.structured_content["gallery"] == str(gallery)
    assert listed.structured_content["gallery_uri"] == gallery.as_uri()
    assert str(gallery) in text_of(listed) and gallery.as_uri() in text_of(listed)

    # ... and the pages are resources, served as HTML
    assert index_resource.contents[0].mime_type == "text/html"
    assert index_resource.contents[0].text == as_served(index)  # its pictures at kie://previews/, as served
    assert session_resource.contents[0].mime_type == "text/html"
    assert session_resource.contents[0].text == as_served(spring, spring_folder)


def resolved(page: str, target: str) -> str:
    """A link of the page served at the URI ``page``, resolved as a client resolves a relative reference (RFC 3986:
    against the page's own path)."""
    if urlsplit(target).scheme:
        return target
    base = urlsplit(page)
    return f"{base.scheme}://{base.netloc}{posixpath.normpath(posixpath.join(posixpath.dirname(base.path), target))}"


async def test_every_picture_and_link_of_the_gallery_pages_served_over_mcp_is_a_resource_it_reads(
    connect, tmp_path, monkeypatch
):
    """The audit: the page served as kie://outputs/index.html showed each picture from its kept preview,
    kie://outputs/<session>/.<name>.thumb-768.jpg, which the same scheme refuses (hidden files are never served):
    "No saved result". In the copy served over MCP a preview is a kie://previews/ URI; from the index, through the
    month page and each session's page, every picture and link is read with resources/read (a picture copied in
    under a name longer than its preview's name holds too)."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 1)  # the index links a month page listing both sessions
    async with connect(elicitation=answering()) as client:
        still = await client.call_tool("generate_image", {**IMAGE, "prompt": "A red apple. " * 60, "session": "Stills"})
        image = tmp_path / still.structured_content["tasks"][0]["files"][0]
        copied = "copied-" + "x" * 200 + ".jpg"
        shutil.copy(image, image.with_name(copied))
        await client.read_resource(f"kie://previews/{image.parent.name}/{copied}")  # its preview, kept beside it
        clip = await client.call_tool("generate_video", {**VIDEO, "session": "Teaser"})  # a build: both shown
        queued, pages, types, failed = ["kie://outputs/index.html"], {}, {}, {}
        while queued:
            page = queued.pop()
            pages[page] = (await client.read_resource(page)).contents[0].text
            for uri in (resolved(page, target) for target in Facts(pages[page]).targets):
                if uri.endswith(".html"):
                    queued += [] if uri in pages or uri in queued else [uri]
                elif uri not in types:
                    try:
                        types[uri] = (await client.read_resource(uri)).contents[0].mime_type
                    except MCPError as err:
                        failed[uri] = str(err)
    assert failed == {}
    teaser, stills = session_folder(tmp_path, "teaser").name, session_folder(tmp_path, "stills").name
    month = gallery.month_page(teaser[:7])
    assert set(pages) == {f"kie://outputs/{name}" for name in ("index.html", month, f"{teaser}/index.html")} | {
        f"kie://outputs/{stills}/index.html"
    }
    video = Path(clip.structured_content["tasks"][0]["files"][0])
    previews = {uri: kind for uri, kind in types.items() if uri.startswith("kie://previews/")}
    assert previews == {
        f"kie://previews/{stills}/{image.name}": "image/jpeg",  # the image's thumbnail
        f"kie://previews/{stills}/{copied}": "image/jpeg",  # kept as .copied-xxx(170 characters).thumb-768.jpg
        f"kie://previews/{teaser}/{video.name}": "image/jpeg",  # the clip's poster
    }
    assert types[f"kie://outputs/{stills}/{image.name}"] == "image/jpeg"
    assert types[f"kie://outputs/{teaser}/{video.name}"] == "video/mp4"
    assert types[f"kie://outputs/{stills}/{image.stem.rsplit('_', 1)[0]}.json"] == "application/json"  # whole prompt
    assert not [uri for uri in types if "/." in uri]  # no hidden file is linked


async def test_sessions_named_in_any_script_keep_their_own_folders_and_names(connect, tmp_path):
    """Two campaigns named 夏季活动 and 冬季活动, and a Russian prompt without a session, all went into one
    ``<day>-untitled`` folder and one gallery section headed "untitled": ASCII could spell none of their letters."""
    async with connect(elicitation=answering()) as client:
        summer = await client.call_tool("generate_image", {**IMAGE, "session": "夏季活动"})
        winter = await client.call_tool("generate_image", {**IMAGE, "session": "冬季活动"})
        cat = await client.call_tool("generate_image", {**IMAGE, "prompt": "Кот на крыше, закат"})
        listed = await client.call_tool("list_tasks", {})
    folders = [Path(result.structured_content["tasks"][0]["files"][0]).parent for result in (summer, winter, cat)]
    assert len(set(folders)) == 3 and not any("untitled" in folder.name for folder in folders), folders
    assert {task["folder"] for task in listed.structured_content["tasks"]} == {f"outputs/{f.name}" for f in folders}
    index = page_of(tmp_path)
    assert "夏季活动" in index and "冬季活动" in index and "Кот на крыше, закат" in index
    for folder, name in zip(folders, ("夏季活动", "冬季活动", "Кот на крыше, закат"), strict=True):
        page = (tmp_path / "outputs" / folder.name / "index.html").read_text(encoding="utf-8")
        assert f"<title>{name} (" in page, page[:400]


def test_a_session_whose_own_name_ends_in_eight_hex_characters_keeps_it_as_its_heading():
    """A folder named by its session ``shoot-20250601`` (written before sidecars kept the session) was headed by its
    first prompt, as if the slug were a hash standing in for letters ASCII cannot spell."""
    item = gallery.Item(name="a.png", kind="image", prompt="A red apple on a wooden table")
    assert gallery.Session("2026-12-04-shoot-20250601", [item]).title == "shoot 20250601"
    assert gallery.Session("2026-12-04-promo-v2-cafebabe", [item]).title == "promo v2 cafebabe"
    named_by_prompt = output_folder(Path(), "Кот на крыше", date(2026, 12, 4)).name  # a hash: the prompt heads it
    cat = gallery.Item(name="b.png", kind="image", prompt="Кот на крыше")
    assert gallery.Session(named_by_prompt, [cat]).title == "Кот на крыше"


@pytest.mark.parametrize("mode", ["auto"])  # the gallery's pages, not the protocol era: once
async def test_a_joined_video_in_a_session_ascii_cannot_spell_is_headed_by_that_name(connect, tmp_path):
    """stitch_videos in session "Итог кампании" saved into a folder named by a hash and left no sidecar, so the
    gallery headed it "2bb4ebe3"; the joined video's sidecar keeps its session and the clips it joined."""
    async with connect(elicitation=answering()) as client:
        clips = []
        for prompt in ("Waves at dusk", "Gulls over the pier"):
            made = await client.call_tool("generate_video", {"prompt": prompt, "model": "veo3_fast"})
            clips.append(made.structured_content["tasks"][0]["task_id"])
            await client.call_tool("check_task", {"task_id": clips[-1], "wait_seconds": 30})
        joined = await client.call_tool("stitch_videos", {"clips": clips, "session": "Итог кампании"})
    assert not joined.is_error, text_of(joined)
    video = tmp_path / joined.structured_content["path"]
    sidecar = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["session"] == "Итог кампании" and sidecar["joined_from"] == clips
    assert '<bdi dir="auto">Итог кампании</bdi>' in page_of(tmp_path)


async def test_a_prompt_with_html_and_script_is_shown_as_text(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", {**IMAGE, "prompt": HOSTILE, "session": "Spring Launch"})
    for page in (page_of(tmp_path), page_of(tmp_path, "spring-launch")):
        assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
        assert "<script" not in page.lower()  # the page has no script at all, and the prompt cannot add one
        assert "onerror=" not in page.replace("onerror=&quot;", "")  # only as escaped text
        assert "script-src 'none'" in page  # and a policy that would stop one anyway


async def test_the_gallery_is_up_to_date_after_a_burst_of_results(connect, tmp_path):
    sessions = ["one", "two", "three", "four"]
    async with connect(elicitation=answering()) as client, anyio.create_task_group() as group:
        for session in sessions:
            request = {**IMAGE, "prompt": f"{IMAGE['prompt']}, take {session}", "session": session}
            group.start_soon(client.call_tool, "generate_image", request)
    index = page_of(tmp_path)
    for session in sessions:
        assert f'href="{session_folder(tmp_path, session).name}/index.html"' in index
        assert "nano-banana-2_" in page_of(tmp_path, session)
    assert index.count('<figure class="card image">') == len(sessions)


@pytest.mark.parametrize("mode", ["auto"])  # the gallery's pages, not the protocol era: once
async def test_a_stitched_video_joins_its_session_page_saying_how_many_clips_it_joined(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "session": "Teaser"})
        task_id = made.structured_content["tasks"][0]["task_id"]
        joined = await client.call_tool("stitch_videos", {"clips": [task_id, task_id], "session": "Teaser"})
    assert not joined.is_error, text_of(joined)
    teaser = page_of(tmp_path, "teaser")
    assert lineages(teaser)["stitched-2-clips.mp4"] == "Joined from 2 clips"
    assert "No prompt recorded" not in teaser and '<span class="badge">sandbox</span>' not in teaser
    assert teaser.count('<figure class="card video">') == 2
    assert f'href="{session_folder(tmp_path, "teaser").name}/stitched-2-clips.mp4"' in page_of(tmp_path)


@pytest.mark.parametrize("mode", ["auto"])  # the gallery's pages, not the protocol era: once
async def test_a_paid_kie_result_without_a_prompt_names_its_model_never_made_locally(connect, tmp_path):
    """The journey: a background removal (recraft/remove-background, which takes no prompt), paid for on KIE, read
    "No prompt recorded (made locally or copied in)" in the gallery. A KIE task without a prompt says so, naming its
    model; only a file no task saved keeps "made locally or copied in"."""
    (tmp_path / "references").mkdir()
    Image.new("RGB", (640, 640), (120, 160, 120)).save(tmp_path / "references" / "bottle.png")
    async with connect(elicitation=answering()) as client:
        cut = await client.call_tool(
            "generate_image",
            {"model": "recraft/remove-background", "images": ["references/bottle.png"], "session": "cutout"},
        )
        assert not cut.is_error, text_of(cut)
        folder = session_folder(tmp_path, "cutout")
        (folder / "copied-in.png").write_bytes(PNG)  # a file kie-mcp did not make
        again = await client.call_tool("generate_image", {**IMAGE, "session": "cutout"})  # the page made anew
        assert not again.is_error, text_of(again)
    cards = page_of(tmp_path, "cutout").split('<figure class="card ')[1:]
    [removed] = [card for card in cards if "recraft-remove-background_" in card]
    [copied] = [card for card in cards if 'href="copied-in.png"' in card]
    assert "No prompt (recraft/remove-background takes none)." in removed, removed
    assert "made locally or copied in" not in removed, removed
    assert "No prompt recorded (made locally or copied in)." in copied, copied


def lineages(page: str) -> dict[str, str | None]:
    """Each card's file name and the line saying where its result came from (None: a card without one)."""
    found = {}
    for card in page.split('<figure class="card ')[1:]:
        name = html.unescape(re.search(r'<p class="meta file"><a href="[^"]*">([^<]*)</a>', card)[1])
        line = re.search(r'<p class="lineage">([^<]*)</p>', card)
        found[name] = html.unescape(line[1]) if line else None
    return found


@pytest.mark.parametrize("mode", ["auto"])  # one era: the cards are the gallery's, the era test_protocol's (26 s)
async def test_follow_ups_and_joins_say_what_they_were_made_from_and_a_sandbox_join_has_its_badge(
    connect, tmp_path, mode
):
    """The audit: every continue_video result (its 1080p and 4K versions, an extension without a prompt) and every
    joined video read "No prompt recorded (made locally or copied in)", though kie-mcp made them and their sidecars
    say which task each continues and which clips a join joined; a join under --sandbox had no sandbox badge. Each
    card says what it is of, and the join's sidecar says it was made in the sandbox."""
    async with connect(elicitation=answering(), sandbox=True) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "session": "Teaser"})
        source = made.structured_content["tasks"][0]["task_id"]
        files = {}
        for operation in ("extend", "hd", "4k"):  # KIE extends no clip once its 1080p version was asked for
            done = await client.call_tool(
                "continue_video", {"task_id": source, "operation": operation, "wait_seconds": 40}
            )
            assert not done.is_error, text_of(done)
            task = done.structured_content["tasks"][0]
            assert task["state"] == "succeeded" and task["files"], text_of(done)
            files[operation] = Path(task["files"][0]).name
        joined = await client.call_tool("stitch_videos", {"clips": [source, source], "session": "Teaser"})
    assert not joined.is_error, text_of(joined)
    folder = session_folder(tmp_path, "teaser")
    teaser, index = page_of(tmp_path, "teaser"), page_of(tmp_path)
    for page in (teaser, index):
        found = lineages(page)
        assert found[files["hd"]] == f"1080p version of task {source}", found
        assert found[files["4k"]] == f"4K version of task {source}", found
        assert found[files["extend"]] == f"Extension of task {source}", found
        assert found["stitched-2-clips.mp4"] == "Joined from 2 clips", found
        assert found[Path(made.structured_content["tasks"][0]["files"][0]).name] is None  # the clip has its prompt
        assert "No prompt recorded" not in page
    assert json.loads((folder / "stitched-2-clips.json").read_text())["sandbox"] is True
    join_card = next(card for card in teaser.split("<figure ") if 'href="stitched-2-clips.mp4"' in card)
    assert '<span class="badge">sandbox</span>' in join_card


async def test_a_gallery_that_cannot_be_written_does_not_fail_the_generation(connect, tmp_path, caplog):
    (tmp_path / "outputs" / "index.html").mkdir(parents=True)  # a folder squats where the page goes ...
    (tmp_path / "outputs" / "kie-mcp-gallery.html").mkdir()  # ... and where it goes beside a page not kie-mcp's
    caplog.set_level(logging.WARNING, logger="kie_mcp.media.gallery")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {**IMAGE, "session": "Spring Launch"})
        listed = await client.call_tool("list_tasks", {})
    assert result.structured_content["status"] == "completed", text_of(result)
    saved = result.structured_content["tasks"][0]["files"]
    assert saved and (tmp_path / saved[0]).is_file()
    assert "nano-banana-2_" in page_of(tmp_path, "spring-launch")  # the other pages are still written
    assert any("gallery" in record.getMessage() and "gallery.html" in record.getMessage() for record in caplog.records)
    assert listed.structured_content["gallery"] is None  # no page to point at
    assert "Traceback" not in text_of(result)


async def test_without_a_saved_result_there_is_no_gallery_and_the_resource_says_so(connect, tmp_path):
    async with connect(elicitation=answering(), download=False) as client:
        await client.call_tool("generate_image", IMAGE)
        listed = await client.call_tool("list_tasks", {})
        read = await client.read_resource("kie://outputs/index.html")
    assert not (tmp_path / "outputs").exists()
    assert listed.structured_content["gallery"] is None and "Gallery" not in text_of(listed)
    assert read.contents[0].mime_type == "text/html"
    assert "No saved results yet" in read.contents[0].text


# -- a refresh keeps what did not change -------------------------------------------------------------


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept scans trusted at once (``RECENT_NS`` 0): a refresh then knows of a change only by the folder's stat, as
    for a folder last written more than two seconds before, so these tests do not wait."""
    monkeypatch.setattr(gallery, "RECENT_NS", 0)


def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The session folders each build from now on scans (reads the files of), in order."""
    scanned: list[str] = []
    real = gallery._scan_folder

    def counted(folder: Path, side: int, **how: bool) -> gallery.Session:
        scanned.append(folder.name)
        return real(folder, side, **how)

    monkeypatch.setattr(gallery, "_scan_folder", counted)
    return scanned


def settle(outputs: Path) -> None:
    """Build until a build writes nothing: the first one's pages date their folders, so the next scans them again."""
    for _ in range(2):
        assert gallery.build(outputs) == []


def pages(outputs: Path, folder: Path) -> tuple[str, str]:
    return (outputs / gallery.PAGE).read_text(encoding="utf-8"), (folder / gallery.PAGE).read_text(encoding="utf-8")


async def test_each_saved_result_shows_on_its_session_page_and_the_index_with_scans_kept(connect, tmp_path, trusting):
    """Results saved one after another, into one session, another, and the first again: after each, the index and
    the session's page show every result so far (a refresh that served the first session as kept would miss the
    third)."""
    made: dict[str, list[str]] = {"spring-launch": [], "teaser": []}
    async with connect(elicitation=answering()) as client:
        for prompt, session in (
            ("A red apple", "Spring Launch"),
            ("A green pear", "Teaser"),
            ("A lemon", "Spring Launch"),
        ):
            result = await client.call_tool("generate_image", {**IMAGE, "prompt": prompt, "session": session})
            assert result.structured_content["status"] == "completed", text_of(result)
            made[session.lower().replace(" ", "-")].append(prompt)
            for slug, prompts in made.items():
                if prompts:
                    index, page = pages(tmp_path / "outputs", session_folder(tmp_path, slug))
                    assert all(p in index and p in page for p in prompts), (slug, prompts)
                    assert f"{len(prompts)} result{'s' if len(prompts) > 1 else ''}" in page
    assert f"{len(made['spring-launch']) + len(made['teaser'])} results · 2 sessions" in index


def test_a_refresh_scans_only_the_folders_that_changed_and_shows_a_result_saved_in_an_old_session(
    tmp_path, monkeypatch, trusting
):
    outputs = tmp_path / "outputs"
    old, new = outputs / "2026-01-01-old-session", outputs / "2026-01-05-new-session"
    for folder in (old, new):
        save(folder, "first", sidecar(folder, "first", f"The first of {folder.name}"))
    settle(outputs)
    scanned = scans(monkeypatch)
    assert gallery.build(outputs) == [] and scanned == []  # nothing changed: nothing read again

    late = sidecar(old, "late", "A late result in the old session", created_at="2026-01-01T11:00:00Z")
    dated = old.stat()
    save(old, "late", late)
    os.utime(old, ns=(dated.st_atime_ns, dated.st_mtime_ns))  # dated back (as rsync -a does): only ctime tells
    assert gallery.build(outputs) == []
    assert scanned == [old.name]  # the old session only: the newest was not read again
    index, page = pages(outputs, old)
    assert "A late result in the old session" in index and "A late result in the old session" in page
    assert "2 results" in page and "3 results · 2 sessions" in index
    assert "The first of 2026-01-05-new-session" in index  # the kept session is still on the index

    scanned.clear()
    assert gallery.build(outputs) == []
    assert scanned == [old.name]  # once more: its new page dated it, and a build cannot tell that from a new file
    scanned.clear()
    save(new, "second", sidecar(new, "second", "A second result in the newest session"))
    assert gallery.build(outputs) == []
    assert scanned == [new.name]
    index, page = pages(outputs, new)
    assert "A second result in the newest session" in index and "A second result in the newest session" in page
    assert "4 results · 2 sessions" in index


def test_a_sidecar_rewritten_in_place_in_the_same_tick_shows_at_the_next_refresh(tmp_path, monkeypatch):
    """A file rewritten in place does not date its folder, and on a coarse clock neither does a second change in
    the same tick: a folder that changed within ``RECENT_NS`` of its scan is scanned again, whatever its stat."""
    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-tick"
    save(folder, "task", sidecar(folder, "task", "The first words"))
    settle(outputs)  # the second build scanned a folder dated just now (by the first build's page)
    before = folder.stat()
    (folder / f"{MODEL}_task.json").write_text(json.dumps(sidecar(folder, "task", "The second words, longer")))
    after = folder.stat()
    assert (after.st_mtime_ns, after.st_ctime_ns, after.st_ino) == (
        before.st_mtime_ns,
        before.st_ctime_ns,
        before.st_ino,
    )
    scanned = scans(monkeypatch)

    assert gallery.build(outputs) == []
    assert scanned == [folder.name]
    for page in pages(outputs, folder):
        assert "The second words, longer" in page and "The first words" not in page


def test_a_removed_result_and_a_removed_session_leave_the_pages(tmp_path, trusting):
    outputs = tmp_path / "outputs"
    kept, gone = outputs / "2026-01-01-kept", outputs / "2026-01-02-gone"
    first = save(kept, "first", sidecar(kept, "first", "The result that stays"))
    second = save(kept, "second", sidecar(kept, "second", "The result that is deleted"))
    save(gone, "only", sidecar(gone, "only", "The session that is deleted"))
    settle(outputs)

    (kept / second).unlink()
    (kept / f"{MODEL}_second.json").unlink()
    shutil.rmtree(gone)
    assert gallery.build(outputs) == []
    index, page = pages(outputs, kept)
    for text in (index, page):
        assert "The result that stays" in text and first in text
        assert "The result that is deleted" not in text and second not in text
    assert "The session that is deleted" not in index and gone.name not in index
    assert "1 result · 1 session" in index


def test_a_session_page_spoiled_in_place_is_written_again_though_its_folder_looks_unchanged(tmp_path, trusting):
    """A page of kie-mcp's cut short where it is (its folder not dated) is written again; a page that no longer
    carries kie-mcp's mark is the user's, left as it is (test_promise_own_pages)."""
    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-spoiled"
    save(folder, "task", sidecar(folder, "task", "A picture worth keeping"))
    settle(outputs)
    page = folder / gallery.PAGE
    good = page.read_bytes()
    before = folder.stat().st_mtime_ns
    with page.open("r+b") as handle:  # the same file, cut short where it is: its folder is not dated
        handle.truncate(len(good) // 2)
    assert folder.stat().st_mtime_ns == before and saved.GENERATOR in page.read_bytes()

    assert gallery.build(outputs) == []
    assert page.read_bytes() == good


def test_kept_pages_are_the_pages_a_full_build_writes(tmp_path, trusting):
    """Byte for byte: after changes in several sessions, the pages a refresh put together from kept scans are the
    pages a build with nothing kept writes."""
    outputs = tmp_path / "outputs"
    folders = [outputs / f"2026-01-0{n}-session-{n}" for n in range(1, 5)]
    for n, folder in enumerate(folders):
        for t in range(n + 2):
            save(folder, f"t{t}", sidecar(folder, f"t{t}", f"Prompt {n}.{t}", credits_charged=[None, 1.5, 8][t % 3]))
    settle(outputs)
    save(folders[0], "late", sidecar(folders[0], "late", "A late one", created_at="2026-01-09T10:00:00Z"))
    (folders[2] / f"{MODEL}_t0_1.png").unlink()
    (folders[3] / "stitched.mp4").write_bytes(b"\x00" * 64)
    assert gallery.build(outputs) == []
    kept = {p: p.read_bytes() for p in outputs.rglob(gallery.PAGE)}

    gallery._caches.clear()  # a new process: nothing kept
    for page in kept:
        page.unlink()
    assert gallery.build(outputs) == []
    assert {p: p.read_bytes() for p in outputs.rglob(gallery.PAGE)} == kept
    assert os.fsencode("A late one") in kept[outputs / gallery.PAGE]


# -- many sessions: the newest on the index, every one on its month's page ------------------------------


def month_sessions(outputs: Path, month: str) -> list[str]:
    """The session folders a month page links to, in the order it shows them."""
    page = (outputs / gallery.month_page(month)).read_text(encoding="utf-8")
    return [href.split("/")[0] for href in re.findall(r'<p><a href="([^"]+/index\.html)"', page)]


def index_sessions(outputs: Path) -> list[str]:
    """The sessions the index shows in full, in its order."""
    found = re.findall(r'<section id="([^"]+)">', (outputs / gallery.PAGE).read_text(encoding="utf-8"))
    return [name for name in found if name != "by-month"]


def test_past_the_newest_sessions_the_index_links_a_page_per_month_listing_every_session(
    tmp_path, monkeypatch, trusting
):
    """Thousands of sessions (an agent that never names one) made a 29 MB index: the index shows the newest in
    full, and each month's page lists every session of its month, newest first, each linking to its own page."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 3)
    outputs = tmp_path / "outputs"
    days = ["2026-01-05", "2026-01-20", "2026-02-01", "2026-02-02", "2026-02-03"]
    for n, day in enumerate(days):
        folder = outputs / f"{day}-shoot-{n}"
        save(folder, f"t{n}", sidecar(folder, f"t{n}", f"Prompt of shoot {n}", created_at=f"{day}T10:00:00Z"))
    settle(outputs)

    index = (outputs / gallery.PAGE).read_text(encoding="utf-8")
    assert index_sessions(outputs) == ["2026-02-03-shoot-4", "2026-02-02-shoot-3", "2026-02-01-shoot-2"]
    assert "Prompt of shoot 1" not in index and "Prompt of shoot 4" in index
    assert "5 results · 5 sessions" in index  # the totals stay the whole gallery's
    assert '<a href="index-2026-02.html">February 2026</a> · 3 sessions · 3 results' in index
    assert '<a href="index-2026-01.html">January 2026</a> · 2 sessions · 2 results' in index
    assert month_sessions(outputs, "2026-01") == ["2026-01-20-shoot-1", "2026-01-05-shoot-0"]
    assert month_sessions(outputs, "2026-02") == ["2026-02-03-shoot-4", "2026-02-02-shoot-3", "2026-02-01-shoot-2"]
    january = (outputs / gallery.month_page("2026-01")).read_text(encoding="utf-8")
    assert "<h1>January 2026</h1>" in january and '<a href="index.html">All sessions</a>' in january
    assert f'src="2026-01-05-shoot-0/{MODEL}_t0_1.png"' in january  # its picture (no preview was kept for it)
    assert "shoot 0" in january and "1 result · 8 credits" in january


def test_a_month_page_is_written_again_only_when_a_session_on_it_changed(tmp_path, monkeypatch, trusting):
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 1)
    outputs = tmp_path / "outputs"
    old, new = outputs / "2026-01-05-old", outputs / "2026-02-05-new"
    for folder in (old, new):
        save(folder, "first", sidecar(folder, "first", f"The first of {folder.name}"))
    settle(outputs)
    january, february = outputs / gallery.month_page("2026-01"), outputs / gallery.month_page("2026-02")
    before = january.stat()

    save(new, "second", sidecar(new, "second", "A second result in February"))
    assert gallery.build(outputs) == []
    assert (january.stat().st_ino, january.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "2 results" in february.read_text(encoding="utf-8")

    save(old, "second", sidecar(old, "second", "A second result in January"))
    assert gallery.build(outputs) == []
    assert "2 results" in january.read_text(encoding="utf-8")

    january.write_bytes(january.read_bytes()[:600])  # a month page cut short: written again, as a session page is
    assert gallery.build(outputs) == []
    assert "2026-01-05-old/index.html" in january.read_text(encoding="utf-8")


def test_month_pages_go_when_the_index_shows_every_session_again_and_a_page_of_the_users_stays(
    tmp_path, monkeypatch, trusting
):
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 2)
    outputs = tmp_path / "outputs"
    folders = [outputs / f"2026-0{n}-01-shoot" for n in (1, 2, 3)]
    for folder in folders:
        save(folder, "t", sidecar(folder, "t", f"Prompt of {folder.name}"))
    (outputs / "index-2025-12.html").write_text("<p>notes of my own</p>")  # the user's, named like a month page
    settle(outputs)
    assert {p.name for p in outputs.glob("index-*.html")} == {
        "index-2025-12.html",
        *(gallery.month_page(f"2026-0{n}") for n in (1, 2, 3)),
    }

    shutil.rmtree(folders[0])  # two sessions left: the index shows them both
    assert gallery.build(outputs) == []
    assert {p.name for p in outputs.glob("index-*.html")} == {"index-2025-12.html"}
    assert (outputs / "index-2025-12.html").read_text() == "<p>notes of my own</p>"
    index = (outputs / gallery.PAGE).read_text(encoding="utf-8")
    assert index_sessions(outputs) == [folders[2].name, folders[1].name] and "by-month" not in index


def test_a_session_that_moves_back_onto_the_index_shows_its_results_as_a_full_build_does(
    tmp_path, monkeypatch, trusting
):
    """Sessions off the index keep only their tiles: when newer ones are removed, an older one moves up and is read
    again, and every page is the page a build with nothing kept writes, byte for byte."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 2)
    outputs = tmp_path / "outputs"
    folders = [outputs / f"2026-01-0{n}-shoot-{n}" for n in range(1, 7)]
    for n, folder in enumerate(folders):
        for t in range(n % 3 + 1):
            save(
                folder, f"t{t}", sidecar(folder, f"t{t}", f"Prompt {n}.{t}", created_at=f"2026-01-0{n + 1}T10:0{t}:00Z")
            )
    (outputs / "hand-made").mkdir()  # a folder not named by a day: on the page of undated sessions
    save(outputs / "hand-made", "t", sidecar(outputs / "hand-made", "t", "Copied in by hand"))
    settle(outputs)
    assert month_sessions(outputs, "undated") == ["hand-made"]
    for folder in folders[-3:]:
        shutil.rmtree(folder)
    assert gallery.build(outputs) == []
    assert index_sessions(outputs) == [folders[2].name, folders[1].name]
    assert "Prompt 2.2" in (outputs / gallery.PAGE).read_text(encoding="utf-8")  # read again for the index
    kept = {p: p.read_bytes() for p in outputs.rglob("index*.html")}

    gallery._caches.clear()  # a new process: nothing kept
    for page in kept:
        page.unlink()
    assert gallery.build(outputs) == []
    assert {p: p.read_bytes() for p in outputs.rglob("index*.html")} == kept


# -- in a real browser ---------------------------------------------------------------------------------


def rects(page: Page, selector: str) -> list[dict[str, float]]:
    """The page-coordinate boxes of the elements matching ``selector``."""
    script = (
        f"[...document.querySelectorAll({json.dumps(selector)})].map(e => {{ const r = e.getBoundingClientRect(); "
        "return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; })"
    )
    return page.evaluate(script)


PICTURES = """(async () => {  // lazy pictures arrive after the load event: wait for them as a person would
  const deadline = Date.now() + 10000;
  const waiting = () => [...document.images].some(i => !i.complete);
  while (waiting() && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
  // decoded and painted before a screenshot looks at them (a large preview on a busy machine: one frame later)
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
})()"""


def assert_pictures_are_seen(page: Page, count: int) -> None:
    """Every picture decoded (not a broken image) and not blank on screen."""
    images = page.evaluate(PICTURES)
    assert len(images) == count
    assert all(complete and width > 0 and height > 0 for complete, width, height in images), images
    for box in rects(page, "img"):
        assert spread(page.screenshot(box)) > 10, box  # a real picture, not a flat colour


PLAY = """(async () => {
  const video = document.querySelector('video');
  video.muted = true;
  await video.play();
  const deadline = Date.now() + 10000;
  while (video.currentTime < 0.25 && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
  video.pause();
  return {error: video.error && video.error.code, readyState: video.readyState, width: video.videoWidth,
          duration: video.duration, time: video.currentTime};
})()"""


def click(page: Page, element: str) -> None:
    """Scroll the element ``element`` (a JavaScript expression) into view and click its middle, as a person would,
    then wait for the page it opens."""
    box = page.evaluate(
        f"(() => {{ const e = {element}; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); "
        "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    loads = len(page.browser.events("Page.loadEventFired", page.session))
    for kind in ("mousePressed", "mouseReleased"):
        event = {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1}
        page.send("Input.dispatchMouseEvent", event)
    page.browser.wait_event("Page.loadEventFired", page.session, loads)


def assert_plays(page: Page) -> None:
    """The page's first video plays (a quarter of a second of it, decoded, no error)."""
    played = page.evaluate(PLAY)
    assert played["error"] is None and played["width"] > 0 and played["time"] >= 0.25, played


FIRST_FRAME = """(async () => {
  const video = document.querySelector('video');
  const deadline = Date.now() + 10000;
  while (video.readyState < 2 && !video.error && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
  return {readyState: video.readyState, error: video.error && video.error.code};
})()"""


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_an_arabic_or_hebrew_prompt_and_session_read_right_to_left(connect, tmp_path, browser):
    """A right-to-left prompt or session name on the English page read left to right (its punctuation and any
    Latin word in it out of place): each is laid out in its own direction."""
    async with connect(elicitation=answering()) as client:
        await client.call_tool(
            "generate_image", {**IMAGE, "prompt": "قطة على السطح عند الغروب، 35mm", "session": "حملة"}
        )
        await client.call_tool("generate_image", {**IMAGE, "session": "Spring Launch"})
    page = browser.new_page(1200, 900)
    try:
        page.goto((tmp_path / "outputs" / "index.html").as_uri())
        directions = page.evaluate(
            "[...document.querySelectorAll('.prompt, h2 bdi')].map(e => [e.textContent, getComputedStyle(e).direction])"
        )
    finally:
        page.close()
    assert ["قطة على السطح عند الغروب، 35mm", "rtl"] in directions and ["حملة", "rtl"] in directions, directions
    assert ["A red apple on a wooden table", "ltr"] in directions and ["Spring Launch", "ltr"] in directions


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_the_moved_gallery_shows_pictures_plays_the_video_and_runs_no_script(
    connect, tmp_path, browser
):
    async with connect(elicitation=answering()) as client:
        tasks = await make_results(client)
    moved = tmp_path / "elsewhere" / "my results"  # the folder moved, with a space in its name
    shutil.copytree(tmp_path / "outputs", moved)
    shutil.rmtree(tmp_path / "outputs")
    page = browser.new_page(1200, 900)
    try:
        page.goto((moved / "index.html").as_uri())
        assert page.evaluate("document.title") == "kie-mcp gallery"  # the hostile prompt changed nothing
        assert page.evaluate("document.scripts.length") == 0
        prompts = page.evaluate("[...document.querySelectorAll('.prompt')].map(p => p.textContent)")
        assert HOSTILE in prompts  # shown as the text it is
        assert_pictures_are_seen(page, count=3)  # two images and the video's poster; the prompt's <img> is text
        assert spread(page.screenshot(rects(page, ".card.video .media")[0])) > 10  # the poster is on screen
        shot = page.screenshot(full_page=True)
        save_artifact("gallery-index.png", shot)
        assert spread(shot) > 10
        click(page, "document.querySelector('.card.video .media')")  # the poster links to its clip, which plays
        assert_plays(page)
        page.goto((moved / "index.html").as_uri())

        page.goto(page.evaluate("document.querySelector('section h2 a[href$=\"spring-launch/index.html\"]').href"))
        assert_pictures_are_seen(page, count=2)
        save_artifact("gallery-session.png", page.screenshot(full_page=True))
        assert page.evaluate("document.querySelector('header a').href") == (moved / "index.html").as_uri()
        requested = page.requested_urls()
    finally:
        page.close()
    assert any(Path(tasks["apple"]["files"][0]).name in url for url in requested)
    assert all(url.startswith(("file:", "data:")) for url in requested), requested  # no network at all


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_the_index_leads_to_a_month_page_showing_every_session_and_on_to_each_one(
    connect, tmp_path, browser, monkeypatch
):
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 1)
    sessions = ["Spring Launch", "Teaser", "Summer Sale"]
    async with connect(elicitation=answering()) as client:
        for n, session in enumerate(sessions):
            prompt = f"A red apple, shot {n}"
            result = await client.call_tool("generate_image", {**IMAGE, "prompt": prompt, "session": session})
            assert result.structured_content["status"] == "completed", text_of(result)
    page = browser.new_page(1200, 900)
    try:
        page.goto((tmp_path / "outputs" / "index.html").as_uri())
        assert page.evaluate("document.querySelectorAll('section h2 bdi').length") == 1  # the newest, in full
        page.goto(page.evaluate("document.querySelector('#by-month a').href"))
        assert page.evaluate("document.scripts.length") == 0
        names = page.evaluate("[...document.querySelectorAll('figcaption bdi')].map(e => e.textContent)")
        assert names == list(reversed(sessions))  # every session of the month, newest first
        assert_pictures_are_seen(page, count=3)  # each session's newest picture (its kept preview)
        save_artifact("gallery-month.png", page.screenshot(full_page=True))
        page.goto(page.evaluate("[...document.querySelectorAll('figcaption a')].at(-1).href"))  # the oldest one
        assert page.evaluate("document.querySelector('h1 bdi').textContent") == "Spring Launch"
        assert_pictures_are_seen(page, count=1)
        requested = page.requested_urls()
    finally:
        page.close()
    assert all(url.startswith(("file:", "data:")) for url in requested), requested  # no network at all


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_without_ffmpeg_the_video_shows_its_first_frame(
    connect, tmp_path, settings, browser, monkeypatch
):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-ffmpeg-here"))  # ffmpeg absent at runtime
    monkeypatch.setenv("PATH", "/nonexistent")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_video", {**VIDEO, "session": "Teaser"})
    video = tmp_path / result.structured_content["tasks"][0]["files"][0]
    assert not poster_path(video, settings.preview_px).exists()
    assert 'preload="metadata"' in page_of(tmp_path, "teaser") and "poster=" not in page_of(tmp_path, "teaser")
    page = browser.new_page(1200, 900)
    try:
        page.goto((session_folder(tmp_path, "teaser") / "index.html").as_uri())
        state = page.evaluate(FIRST_FRAME)
        assert state["readyState"] >= 2 and state["error"] is None, state  # its first frame is decoded ...
        shot = page.screenshot(rects(page, "video")[0])
        save_artifact("gallery-video-without-poster.png", shot)
        assert spread(shot) > 10  # ... and on screen
        assert_plays(page)
    finally:
        page.close()


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_a_joined_video_whose_name_holds_part_is_on_its_session_page_and_the_index(
    connect, tmp_path, browser, ffmpeg
):
    """stitch_videos(output_name="summer.party") saved, recorded and served the join, but the gallery took every
    name holding ".part" for a download being written and left it out. Only the temporary files' own names (hidden,
    ``.<name>.part-<host>-<pid>-<random>``) are left out."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "session": "Party"})
        task_id = made.structured_content["tasks"][0]["task_id"]
        joined = await client.call_tool(
            "stitch_videos", {"clips": [task_id, task_id], "output_name": "summer.party", "session": "Party"}
        )
    assert not joined.is_error and joined.structured_content["path"].endswith("/summer.party.mp4"), text_of(joined)
    folder = session_folder(tmp_path, "party")
    page = browser.new_page(1200, 900)
    try:
        shown = {}
        for where in (folder / "index.html", tmp_path / "outputs" / "index.html"):
            page.goto(where.as_uri())
            shown[where] = page.evaluate(
                "[...document.querySelectorAll('.card.video .media')].map(v => "
                "decodeURIComponent((v.href || v.querySelector('video').src).split('/').pop()))"
            )
    finally:
        page.close()
    for where, videos in shown.items():
        assert "summer.party.mp4" in videos and len(videos) == 2, (where, videos)


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_a_total_of_charged_and_quoted_tasks_is_never_called_quoted(
    connect, tmp_path, browser, monkeypatch, sim
):
    """Two stills KIE charged 8 credits each and a Veo clip only quoted at 60 were headed "76 credits (quoted)" on
    the session's page, its section of the index and its month tile, as if nothing had been charged. A total says
    "(quoted)" only when every task in it is a quote; part quoted, it says so."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 1)  # the older session only on the month page, as a tile
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_video", {**VIDEO, "session": "Quoted"})
        await client.call_tool("generate_image", {**IMAGE, "variations": 2, "session": "Mixed"})
        await client.call_tool("generate_video", {**VIDEO, "session": "Mixed"})
    mixed, quoted = session_folder(tmp_path, "mixed"), session_folder(tmp_path, "quoted")
    month = next((tmp_path / "outputs").glob("index-*.html"))
    page = browser.new_page(1200, 900)
    try:
        page.goto((mixed / "index.html").as_uri())
        heading = page.evaluate("document.querySelector('header .summary').textContent")
        cards = page.evaluate("[...document.querySelectorAll('figcaption .meta:not(.file)')].map(p => p.textContent)")
        page.goto((tmp_path / "outputs" / "index.html").as_uri())
        section = page.evaluate(f"document.querySelector('section[id=\"{mixed.name}\"] .meta').textContent")
        summary = page.evaluate("document.querySelector('header .summary').textContent")
        page.goto(month.as_uri())
        tiles = page.evaluate("[...document.querySelectorAll('.tile')].map(t => t.textContent)")
    finally:
        page.close()
    assert heading == section == "3 results · 76 credits, some only quoted", (heading, section)
    assert summary.startswith("4 results · 2 sessions · 136 credits, some only quoted"), summary
    assert [tile for tile in tiles if "76 credits" in tile] == [
        f"Mixed{mixed.name[:10]} · 3 results · 76 credits, some only quoted"
    ]
    assert [tile for tile in tiles if "60 credits" in tile] == [
        f"Quoted{quoted.name[:10]} · 1 result · 60 credits (quoted)"
    ]
    assert sorted(card.split(" · ")[1] for card in cards) == ["60 credits (quoted)", "8 credits", "8 credits"], cards


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_the_longest_session_name_wraps_inside_the_page(connect, tmp_path, browser):
    """A session name of 200 characters with no space in it (the longest a generate call takes) ran off the side of
    the index's section heading and the session page's title: a heading breaks anywhere rather than overflow."""
    name = "S" * 200
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "session": name})
    folder = tmp_path / Path(made.structured_content["tasks"][0]["files"][0]).parent
    page = browser.new_page(800, 900)
    try:
        seen = {}
        for where, heading in ((tmp_path / "outputs" / "index.html", "section h2"), (folder / "index.html", "h1")):
            page.goto(where.as_uri())
            seen[where.parent.name] = page.evaluate(
                f"(() => {{ const h = document.querySelector({json.dumps(heading)}); "
                "return {text: h.textContent, right: h.getBoundingClientRect().right, width: innerWidth, "
                "scroll: document.documentElement.scrollWidth}; })()"
            )
    finally:
        page.close()
    for where, box in seen.items():
        assert name in box["text"], (where, box)
        assert box["right"] <= box["width"] and box["scroll"] <= box["width"], (where, box)


# -- a charge measured after the files were saved -------------------------------------------------------------------

RUNWAY = {"prompt": "a paper boat drifting down a rain gutter", "model": "runway-video", "wait_seconds": 40}


async def extended_runway_clip(client, session: str) -> dict:
    """A Runway clip extended (KIE publishes no price for Runway extend: its charge is measured from the balance once
    the task ends, after the follower saved its files and wrote their sidecar)."""
    made = await client.call_tool("generate_video", {**RUNWAY, "session": session})
    source = made.structured_content["tasks"][0]
    assert source["state"] == "succeeded", text_of(made)
    extended = await client.call_tool(
        "continue_video",
        {"task_id": source["task_id"], "operation": "extend", "prompt": "it tips over a grate", "session": session}
        | {"max_credits": 40, "wait_seconds": 40},
    )
    task = extended.structured_content["tasks"][0]
    assert task["state"] == "succeeded" and task["credits_quoted"] is None, text_of(extended)
    said = f"{task['credits_charged']:g} credits, measured from the KIE balance"  # never said to be KIE's charge
    assert task["credits_charged"] and task["charge_measured"] and said in text_of(extended), text_of(extended)
    return task


def card_facts(page: str) -> dict[str, str]:
    """Each card's model and what its meta line says, from a page's HTML."""
    return dict(re.findall(r'<span class="model">([^<]*)</span>([^<]*)', page))


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_a_charge_measured_after_saving_is_on_the_card_and_in_the_totals(connect, tmp_path, browser):
    """A Runway extend (no known price) was answered "12 credits charged", and list_tasks said so, but its sidecar
    was written before the charge was measured and kept null: the gallery showed the clip with no cost and left it
    out of the session's total. The sidecar is written again with the charge, and the pages with it."""
    async with connect(elicitation=answering()) as client:
        task = await extended_runway_clip(client, "Gutter")
    charge = task["credits_charged"]
    sidecar = json.loads((tmp_path / task["files"][0]).with_name(f"runway-extend_{task['task_id']}.json").read_text())
    assert sidecar["credits_charged"] == charge and sidecar["credits_quoted"] is None
    folder = session_folder(tmp_path, "gutter")
    page = browser.new_page(1200, 900)
    try:
        page.goto((folder / "index.html").as_uri())
        heading = page.evaluate("document.querySelector('header .summary').textContent")
        cards = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('figcaption')].map(c => "
            "[c.querySelector('.model').textContent, c.querySelector('.meta').textContent]))"
        )
        page.goto((tmp_path / "outputs" / "index.html").as_uri())
        summary = page.evaluate("document.querySelector('header .summary').textContent")
    finally:
        page.close()
    assert cards["runway/extend"].startswith(f"runway/extend · {charge:g} credits · "), cards
    source = float(re.search(r"([\d.]+) credits", cards["runway-video"])[1])
    assert heading == f"2 results · {source + charge:g} credits, some only quoted", heading
    assert f"· {source + charge:g} credits" in summary, summary


@pytest.mark.parametrize("mode", ["auto"])  # the gallery's pages, not the protocol era: once
async def test_a_sidecar_that_misses_a_measured_charge_is_written_again_by_check_task_in_a_new_server(
    connect, tmp_path
):
    """A sidecar an older kie-mcp left without the charge it measured (or one a crash cut off before it was written
    again): check_task, even in another server process, writes it with the charge the journal holds, and the
    gallery shows it. A sidecar that says the record's charge is not written again."""
    async with connect(elicitation=answering()) as client:
        task = await extended_runway_clip(client, "Gutter")
    path = (tmp_path / task["files"][0]).with_name(f"runway-extend_{task['task_id']}.json")
    left = json.loads(path.read_text()) | {"credits_charged": None}
    path.write_text(json.dumps(left))  # as the server before this fix left it
    async with connect(elicitation=answering()) as client:  # a new server on the same workspace
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
        assert checked.structured_content["task"]["credits_charged"] == task["credits_charged"], text_of(checked)
        written = path.stat()
        await client.call_tool("check_task", {"task_id": task["task_id"]})
    assert json.loads(path.read_text())["credits_charged"] == task["credits_charged"]
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # once
    page = (session_folder(tmp_path, "gutter") / "index.html").read_text(encoding="utf-8")
    assert card_facts(page)["runway/extend"].startswith(f" · {task['credits_charged']:g} credits · "), page


# -- what a card says of its result: hidden characters, a file changed since, damage in the dark ------------------

TAG_WORDS = "".join(chr(0xE0000 + ord(c)) for c in "hidden words")  # show nothing; a model reads the words


async def test_hidden_characters_in_a_prompt_or_a_file_name_are_shown_escaped_on_the_pages(tmp_path):
    """The audit: a prompt's tag letters showed nothing and its right-to-left override turned the rest around on
    the pages, and so did one in a file copied in by hand (``invoice\u202egnp.exe.png`` read ``invoiceexe.png``).
    Each is written escaped, as the confirmation form and the approval card show them; the link leads to the file."""
    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-hidden"
    save(folder, "kitten", sidecar(folder, "kitten", "A kitten" + TAG_WORDS + " \u202eenoyreve rof"))
    copied = "invoice\u202egnp.exe.png"
    (folder / copied).write_bytes(PNG)
    await gallery.refresh(tmp_path)
    for page in ((folder / gallery.PAGE).read_text(encoding="utf-8"), page_of(tmp_path)):
        facts = Facts(page)
        assert "A kitten\\udb40\\udc68\\udb40\\udc69" in facts.text and "\\u202eenoyreve rof" in facts.text
        assert "invoice\\u202egnp.exe.png" in facts.text
        assert not [f"U+{ord(ch):04X}" for ch in page if unicodedata.category(ch) == "Cf"]
        assert os.fsencode(copied) in linked_names(facts)


async def test_a_result_changed_since_it_was_saved_says_so_on_its_card(tmp_path):
    """A saved clip overwritten since (another size than its sidecar says), with no poster, was drawn as a player
    that plays nothing, with no word (the pages run no script to say so): its card says it changed. One whose size
    is the saved one says nothing of the kind."""
    folder = tmp_path / "outputs" / "2026-01-01-changed"
    save(folder, "kept", sidecar(folder, "kept"))
    clip = f"{MODEL}_clip_1.mp4"
    said = sidecar(folder, "clip")
    said["files"][0] |= {"path": f"outputs/{folder.name}/{clip}", "size": 4000, "mime": "video/mp4"}
    (folder / f"{MODEL}_clip.json").write_text(json.dumps(said))
    (folder / clip).write_bytes(b"\0" * 5000)  # not the clip kie-mcp saved, and no video at all
    await gallery.refresh(tmp_path)
    page = (folder / gallery.PAGE).read_text(encoding="utf-8")
    cards = {Facts(card).targets[0]: Facts(card).text for card in page.split("<figure")[1:]}
    assert "Changed since it was saved" in cards[clip], cards
    assert "Changed" not in cards[f"{MODEL}_kept_1.png"], cards


LEGIBLE = """(() => { const e = document.querySelector('.damaged');
  return [getComputedStyle(e).color, getComputedStyle(e.closest('figure')).backgroundColor]; })()"""


def _contrast(foreground: str, background: str) -> float:
    """WCAG's contrast ratio of two opaque ``rgb(r, g, b)`` colours."""

    def luminance(colour: str) -> float:
        channels = [int(v) / 255 for v in re.findall(r"\d+", colour)[:3]]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_in_a_browser_a_damaged_result_s_warning_is_legible_in_light_and_dark(tmp_path, browser, scheme):
    """The audit: in dark mode the red "Damaged: ..." line stood at 2.53:1 on its card (WCAG asks 4.5:1)."""
    folder = tmp_path / "outputs" / "2026-01-01-damaged"
    said = sidecar(folder, "cut")
    said["files"][0]["damaged"] = "it is cut short after 1,234 bytes"
    save(folder, "cut", said)
    await gallery.refresh(tmp_path)
    page = browser.new_page(800, 900)
    try:
        page.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
        page.goto((folder / gallery.PAGE).as_uri())
        foreground, background = page.evaluate(LEGIBLE)
    finally:
        page.close()
    assert _contrast(foreground, background) >= 4.5, (scheme, foreground, background)
