"""The gallery under attack: garbage and hostile sidecars, hostile file names, links that lead outside the workspace,
and path escapes through the gallery resources.

The promises: never a traceback to the client; nothing outside the workspace is ever read or served; a hostile
string is only text on a page (escaped, no script, no injected markup, no ``javascript:`` link); a page is written
atomically; one bad file never breaks the whole gallery (every other result keeps its card, and its own file too).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

import pytest
from mcp import MCPError

from kie_mcp.media import gallery

from .conftest import answering, text_of

MODEL = "nano-banana-2"
SECRET = "OUTSIDE-SECRET-5d1c9e"  # held only by files outside the workspace (or outside outputs/)
GOOD = "A good red apple on a wooden table"
NEIGHBOUR = "A good green pear beside the garbage"
HOSTILE = (
    "<script>alert(1)</script> \"><img src=x onerror=alert(1)> 'onmouseover=alert(1) "
    '<a href="javascript:alert(1)">click</a> javascript:alert(1) <style>*{display:none}</style> &amp; &lt;'
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)  # the gallery goes by names and sidecars, not pixels
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TAGS = {  # every element the gallery itself writes; anything else was injected
    *("html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "a", "span", "section", "div"),
    *("figure", "figcaption", "img", "video", "audio", "time", "bdi"),
}
LINKING = {"href", "src", "poster", "srcset", "action", "formaction", "data", "xlink:href", "background"}


# -- what a page holds, as a browser would parse it ----------------------------------------------------------------


class Facts(HTMLParser):
    """A page's elements, their attributes and its text, parsed as HTML (so markup that escaped escaping shows up as
    elements, not as text)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []  # (element, attribute, value)
        self.chunks: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def targets(self) -> list[str]:
        return [value for _, name, value in self.attributes if name in LINKING]


def assert_only_text(raw: bytes | str, folder: Path, outputs: Path, *, pages_written: bool = True) -> Facts:
    """A page built from hostile data keeps every promise: valid UTF-8, only the gallery's own elements, no script,
    no event handler, no control character, nothing from outside, and every link relative (no ``javascript:``,
    no scheme at all) to an existing file inside ``outputs`` (links to pages only once pages are written); in the
    copy a resource serves, a picture may be ``kie://previews/<the path of an existing result in outputs>``."""
    page = raw.decode("utf-8") if isinstance(raw, bytes) else raw  # strict: a lone surrogate did not spoil it
    facts = Facts(page)
    assert set(facts.tags) <= TAGS, set(facts.tags) - TAGS
    assert "<script" not in page.lower()
    assert not [(tag, name) for tag, name, _ in facts.attributes if name.startswith("on")]
    assert not CONTROL.search(page)
    assert SECRET not in page and "root:x:0:0" not in page
    home = outputs.resolve()
    for target in facts.targets:
        parts = urlsplit(target)
        if target.startswith(PREVIEWS):  # a kept preview, as the resources serve it
            assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("kie", "previews", "", ""), target
            real = (outputs / os.fsdecode(unquote_to_bytes(parts.path.removeprefix("/")))).resolve()
            assert real.is_relative_to(home) and real.is_file() and not real.name.startswith("."), target
            continue
        assert not parts.scheme and not parts.netloc and not target.startswith(("/", "\\")), target
        real = (folder / os.fsdecode(unquote_to_bytes(parts.path))).resolve()
        assert real.is_relative_to(home), target  # a link never leads out of outputs/, not even through a symlink
        if pages_written or real.name != gallery.PAGE:
            assert real.is_file(), target  # and names a real file (undecodable names included)
    return facts


PREVIEWS = "kie://previews/"
_KEPT_PICTURE = re.compile(r'<img src="((?:[^"/]+/)?)\.([^"/]+?)\.(?:thumb-\d+\.(?:jpg|png)|poster-\d+\.jpg)"')


def as_served(page: str, folder: str = "") -> str:
    """A page as its resource serves it: each picture that is a kept preview (a hidden file, which kie://outputs/
    does not serve) at kie://previews/<session folder>/<its result> (``folder``: the page's own, for a session
    page), the rest as written."""
    return _KEPT_PICTURE.sub(lambda m: f'<img src="{PREVIEWS}{m[1] or quote(folder, safe="") + "/"}{m[2]}"', page)


def linked_names(facts: Facts) -> set[bytes]:
    """The file names a page links to, as the bytes the filesystem has."""
    return {unquote_to_bytes(urlsplit(target).path).rsplit(b"/", 1)[-1] for target in facts.targets}


# -- a workspace's outputs, with garbage in it ---------------------------------------------------------------------


def sidecar(folder: Path, task: str, prompt: str = GOOD, **fields: Any) -> dict[str, Any]:
    """A sidecar as ``media.results`` writes it, naming one saved file ``{model}_{task}_1.png`` of ``folder``."""
    return {
        "task_id": task,
        "model": MODEL,
        "family": "market",
        "parent_task_id": None,
        "operation": None,
        "prompt": prompt,
        "credits_quoted": 8,
        "credits_charged": 8,
        "created_at": "2026-01-01T10:00:00Z",
        "saved_at": "2026-01-01T10:01:00Z",
        "sandbox": True,
        "files": [
            {
                "path": f"outputs/{folder.name}/{MODEL}_{task}_1.png",
                "sha256": "0" * 64,
                "size": len(PNG),
                "mime": "image/png",
                "source_url": "https://tempfile.example/result.png",
            }
        ],
        **fields,
    }


def save(folder: Path, task: str, body: bytes | dict[str, Any]) -> str:
    """A saved result ``{model}_{task}_1.png`` and its sidecar ``{model}_{task}.json`` (``body`` as raw bytes or
    as JSON); returns the result's file name."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{MODEL}_{task}_1.png"
    (folder / name).write_bytes(PNG)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    (folder / f"{MODEL}_{task}.json").write_bytes(raw)
    return name


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# Each makes the raw sidecar from a well-formed one (``good``, as a dict).
GARBAGE: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "not-json": lambda good: b"this is not JSON {",
    "empty-file": lambda good: b"",
    "truncated-json": lambda good: json.dumps(good).encode()[: len(json.dumps(good)) // 2],
    "json-array": lambda good: json.dumps([good]).encode(),
    "json-number": lambda good: b"42",
    "json-string": lambda good: json.dumps("a sidecar").encode(),
    "json-null": lambda good: b"null",
    "utf-8-bom": lambda good: b"\xef\xbb\xbf" + json.dumps(good).encode(),
    "not-utf-8": lambda good: json.dumps(good).encode().replace(b"apple", b"\xff\xfe\xfd"),
    "fields-of-the-wrong-type": lambda good: json.dumps(
        {
            **good,
            "prompt": ["a", "list"],
            "model": {"a": "dict"},
            "task_id": 12,
            "credits_quoted": "12",
            "credits_charged": "12",
            "created_at": 1767261600,
            "sandbox": "yes",
        }
    ).encode(),
    "files-as-a-string": lambda good: json.dumps({**good, "files": good["files"][0]["path"]}).encode(),
    "files-as-a-list-of-strings": lambda good: json.dumps({**good, "files": [good["files"][0]["path"]]}).encode(),
    "file-entries-of-the-wrong-type": lambda good: json.dumps(
        {**good, "files": [None, 1, [], {"path": ["a"]}, {"path": None}, {"path": {"x": 1}}, *good["files"]]}
    ).encode(),
    "null-everywhere": lambda good: json.dumps(dict.fromkeys(good)).encode(),
    "nan-and-infinity": lambda good: json.dumps(
        {**good, "credits_quoted": float("nan"), "credits_charged": float("inf")}
    ).encode(),
    "a-number-too-large-for-a-float": lambda good: (
        json.dumps({**good, "credits_charged": None})
        .replace('"credits_charged": null', '"credits_charged": 1e400')
        .encode()
    ),
    "an-integer-too-large-for-a-float": lambda good: json.dumps({**good, "credits_charged": 10**400}).encode(),
    "very-deep-nesting": lambda good: (
        json.dumps({**good, "parameters": None})
        .replace('"parameters": null', f'"parameters": {_nested(100_000)}')
        .encode()
    ),
    "times-out-of-range": lambda good: json.dumps({**good, "created_at": "0001-01-01T00:00:00"}).encode(),
    "times-that-are-not-times": lambda good: json.dumps({**good, "created_at": "2026-13-45T99:99:99\x00"}).encode(),
    "several-megabytes": lambda good: json.dumps({**good, "prompt": "HUGE " * 1_200_000}).encode(),
}


def plant_hostile(outputs: Path, outside: Path) -> dict[str, Any]:
    """Hostile sidecars, hostile file names and links that lead outside the workspace, beside good results.
    Returns what the tests look for."""
    today = date.today().isoformat()  # where generate_image(session="Spring Launch") saves today
    folder = outputs / f"{today}-spring-launch"
    good = save(folder, "neighbour", sidecar(folder, "neighbour", NEIGHBOUR, created_at="2099-01-01T00:00:00Z"))
    for kind, make in GARBAGE.items():
        save(folder, kind, make(sidecar(folder, kind)))
    long_text = "very long " * 20_000
    hostile = sidecar(
        folder,
        "hostile",
        HOSTILE + " bell\x07 nul\x00 escape\x1b[31m delete\x7f lone\ud800surrogate \u202eevil " + long_text,
        model='"><img src=x onerror=alert(1)>',
        task_id="javascript:alert(1)",
        family="<script>alert(1)</script>",
        operation="javascript:alert(1)",
        parameters={"prompt": HOSTILE, "image_urls": ["javascript:alert(1)"]},
        created_at="<script>alert(1)</script>",
    )
    hostile["files"][0]["path"] = f"javascript:alert(1)/../{MODEL}_hostile_1.png"
    save(folder, "hostile", hostile)
    names = [
        f"{MODEL}_q \"double\" 'single' <b>bold<b> &amp;_1.png",
        "javascript:alert(1)_1.png",
        "<img src=x onerror=alert(1)>.png",
        "a result with spaces.png",
        "tab\tand\nnewline.png",
    ]
    for name in names:
        (folder / name).write_bytes(PNG)
    undecodable = os.fsdecode(b"bytes-\xff\xfe-not-utf-8.png")  # a name that is not UTF-8 (Linux allows it)
    (folder / undecodable).write_bytes(PNG)

    # Links that lead outside the workspace: never read, never shown, never linked, never written through.
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.json").write_text(json.dumps(sidecar(folder, "neighbour", SECRET)))
    (outside / "secret.png").write_bytes(PNG + SECRET.encode())
    (outside / "secret.jpg").write_bytes(SECRET.encode())
    (folder / "a-linked-sidecar.json").symlink_to(outside / "secret.json")  # sorts first: it would claim a card
    (folder / "passwd.json").symlink_to("/etc/passwd")
    (folder / "loop.json").symlink_to(folder / "loop.json")
    (folder / f"{MODEL}_linked_1.png").symlink_to(outside / "secret.png")
    (folder / f".{good}.thumb-{gallery.THUMBNAIL_SIDE}.jpg").symlink_to(outside / "secret.jpg")  # a "preview"
    (folder / "a-folder.json").mkdir()
    elsewhere = outside / "session"
    save(elsewhere, "elsewhere", sidecar(elsewhere, "elsewhere", SECRET))
    linked_session = f"{today}-linked-session"
    (outputs / linked_session).symlink_to(elsewhere, target_is_directory=True)

    # Hostile session folders, each with a good result.
    for session in ('2026-01-02-<img src=x onerror=alert(1)> "q" &amp;', os.fsdecode(b"2026-01-03-\xff\xfe")):
        save(outputs / session, "in-hostile-folder", sidecar(outputs / session, "in-hostile-folder"))
    return {
        "folder": folder,
        "linked_session": linked_session,
        "good": good,
        "media": [
            good,
            *(f"{MODEL}_{kind}_1.png" for kind in GARBAGE),
            f"{MODEL}_hostile_1.png",
            *names,
            undecodable,
        ],
        "not_shown": [f"{MODEL}_linked_1.png", "secret.png", "secret.jpg"],
        "outside": outside,
        "elsewhere": elsewhere,
    }


def gallery_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == gallery.__name__ and r.levelno >= logging.WARNING]


# -- 1. garbage sidecars: the scan never breaks ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(GARBAGE))
async def test_one_garbage_sidecar_never_breaks_the_gallery(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refresh (as after every saved result) writes both pages; the good result keeps its prompt, and the result
    of the garbage sidecar still gets its card."""
    caplog.set_level(logging.WARNING, logger=gallery.__name__)
    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-garbage"
    good = save(folder, "good", sidecar(folder, "good"))
    bad = save(folder, kind, GARBAGE[kind](sidecar(folder, kind)))

    await gallery.refresh(tmp_path)

    assert not gallery_problems(caplog)  # no build failed, none was logged and swallowed
    session = (folder / gallery.PAGE).read_bytes()
    index = (outputs / gallery.PAGE).read_bytes()
    for page, where in ((session, folder), (index, outputs)):
        facts = assert_only_text(page, where, outputs)
        assert GOOD in facts.text
        assert {good.encode(), bad.encode()} <= linked_names(facts)
    assert Facts(session.decode()).text.count("No prompt recorded") <= 1  # only the garbage lost its prompt


async def test_hostile_text_in_sidecars_and_file_names_is_only_text_on_the_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hostile strings in every field and in file and folder names: shown as the text they are, never markup,
    script or link target; every result still has its card."""
    caplog.set_level(logging.WARNING, logger=gallery.__name__)
    outputs = tmp_path / "ws" / "outputs"
    planted = plant_hostile(outputs, tmp_path / "outside")
    folder: Path = planted["folder"]

    await gallery.refresh(tmp_path / "ws")

    assert not gallery_problems(caplog)
    session = assert_only_text((folder / gallery.PAGE).read_bytes(), folder, outputs)
    index = assert_only_text((outputs / gallery.PAGE).read_bytes(), outputs, outputs)
    assert HOSTILE in session.text  # the prompt, as text a person reads
    assert "bell" in session.text and "delete" in session.text  # around the control characters, which are dropped
    assert "very long " * 20 in session.text and "very long " * 70 not in session.text  # cut short on the card
    assert f"{MODEL}_hostile.json".encode() in linked_names(session)  # the whole prompt is in the sidecar it links
    assert NEIGHBOUR in session.text and NEIGHBOUR in index.text
    assert {os.fsencode(name) for name in planted["media"]} <= linked_names(session)  # every file has its card
    for name in ('<img src=x onerror=alert(1)> "q" &amp;', "javascript:alert(1)_1.png"):
        assert name in session.text + index.text  # hostile names are shown as names
    for session_name in ('2026-01-02-<img src=x onerror=alert(1)> "q" &amp;', os.fsdecode(b"2026-01-03-\xff\xfe")):
        page = outputs / session_name / gallery.PAGE
        assert GOOD in assert_only_text(page.read_bytes(), page.parent, outputs).text
        assert os.fsencode(session_name) in {unquote_to_bytes(t).split(b"/")[0] for t in index.targets}


async def test_a_hostile_task_id_or_join_name_on_the_line_saying_what_a_result_was_made_from_is_only_text(
    connect: Callable[..., Any], tmp_path: Path
) -> None:
    """The line a follow-up's card shows ("1080p version of task ...") and a join's ("Joined from N clips") come from
    sidecars anyone can edit: a hostile task id, operation or joined clip, and a join named with markup, are text
    there, on the page on disk and in the copy served over MCP; a task id of 5,000 characters is cut short."""
    workspace = tmp_path / "ws"
    folder = workspace / "outputs" / "2026-01-01-lineage"
    save(folder, "up", sidecar(folder, "up", "", parent_task_id=HOSTILE, operation="hd"))
    save(folder, "odd", sidecar(folder, "odd", "", parent_task_id="x" * 5000, operation="<b>bold</b>"))
    join = '<img src=x onerror=alert(1)> "q" &amp;.mp4'
    (folder / join).write_bytes(b"\x00\x00\x00\x18ftypmp42")  # the gallery goes by names and sidecars
    joined = {"joined_from": [HOSTILE, "b.mp4"], "files": [{"path": f"outputs/{folder.name}/{join}"}], "sandbox": True}
    (folder / join).with_suffix(".json").write_text(json.dumps(joined))

    await gallery.refresh(workspace)
    async with connect(workspace=workspace) as client:
        served = (await client.read_resource(f"kie://outputs/{folder.name}/index.html")).contents[0].text

    for page in ((folder / gallery.PAGE).read_text(encoding="utf-8"), served):
        facts = assert_only_text(page, folder, folder.parent)
        assert f"1080p version of task {HOSTILE}" in facts.text
        assert f"Follow-up of task {'x' * 200}\u2026" in facts.text and "x" * 201 not in facts.text
        assert "Joined from 2 clips" in facts.text and join in facts.text  # its name, as text
        assert "No prompt recorded" not in facts.text and "bold" not in facts.text
        assert facts.text.count("sandbox") == 3  # each card's badge: the join's too


async def test_hostile_session_names_and_prompts_are_only_text_on_the_month_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the sessions the index shows, every session is a tile on its month's page: hostile names and prompts
    are text there too, and every link leads to a real page or picture inside outputs/."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 0)
    outputs = tmp_path / "ws" / "outputs"
    planted = plant_hostile(outputs, tmp_path / "outside")

    await gallery.refresh(tmp_path / "ws")

    months = sorted(outputs.glob("index-*.html"))
    assert months, "no month page was written"
    linked: set[bytes] = set()
    text = ""
    for page in months:
        facts = assert_only_text(page.read_bytes(), outputs, outputs)
        linked |= {unquote_to_bytes(target).split(b"/")[0] for target in facts.targets}
        text += facts.text
    hostile_sessions = ('2026-01-02-<img src=x onerror=alert(1)> "q" &amp;', os.fsdecode(b"2026-01-03-\xff\xfe"))
    for session_name in (planted["folder"].name, *hostile_sessions):
        assert os.fsencode(session_name) in linked  # each session has its tile, linking to its page
    assert '<img src=x onerror=alert(1)> "q" &amp;' in text  # the hostile session's name, as text
    assert planted["linked_session"] not in text  # a session folder that is a link leads nowhere


async def test_nothing_outside_the_workspace_is_read_shown_linked_or_written(tmp_path: Path) -> None:
    """Symlinked sidecars, results, previews and session folders that lead outside: none of what they hold
    reaches a page, no page links them, and no page is written into the outside folder."""
    outputs = tmp_path / "ws" / "outputs"
    planted = plant_hostile(outputs, tmp_path / "outside")
    before = {p: p.read_bytes() for p in planted["outside"].rglob("*") if p.is_file()}

    await gallery.refresh(tmp_path / "ws")

    pages = [outputs / gallery.PAGE, planted["folder"] / gallery.PAGE]
    for page in pages:
        text = page.read_bytes().decode("utf-8")
        assert_only_text(text, page.parent, outputs)  # no SECRET, no /etc/passwd, every link inside outputs/
        for name in planted["not_shown"]:
            assert name not in text
        assert planted["linked_session"] not in text
    assert NEIGHBOUR in pages[1].read_text(encoding="utf-8")  # the linked sidecar did not claim its card
    assert not (planted["elsewhere"] / gallery.PAGE).exists()  # nothing written through the linked folder
    assert {p: p.read_bytes() for p in planted["outside"].rglob("*") if p.is_file()} == before


async def test_a_page_that_is_a_symlink_outside_is_never_written_through(tmp_path: Path) -> None:
    """A link where a page goes (a cloned repository can carry one) is neither followed nor replaced: it is no page
    kie-mcp wrote, so it is left as it is, and the index is written beside it under its own name."""
    outputs = tmp_path / "ws" / "outputs"
    folder = outputs / "2026-01-01-good"
    save(folder, "good", sidecar(folder, "good"))
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("index.html", "session.html"):
        (outside / name).write_text(SECRET)
    (outputs / gallery.PAGE).symlink_to(outside / "index.html")
    (folder / gallery.PAGE).symlink_to(outside / "session.html")

    await gallery.refresh(tmp_path / "ws")

    assert (outside / "index.html").read_text() == SECRET and (outside / "session.html").read_text() == SECRET
    assert (outputs / gallery.PAGE).is_symlink() and (folder / gallery.PAGE).is_symlink()
    for page in (outputs / gallery.OWN_INDEX, folder / gallery.OWN_INDEX):
        assert not page.is_symlink()
        assert GOOD in assert_only_text(page.read_bytes(), page.parent, outputs).text


def test_a_page_is_written_whole_while_readers_watch(tmp_path: Path) -> None:
    """A browser or the resource reading a page while it is rewritten sees the old page or the new one, never part
    of one; no temporary file is left behind."""
    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-big"
    pages = (outputs / gallery.PAGE, folder / gallery.PAGE)
    done = threading.Event()
    failures: list[BaseException] = []

    def rewrite() -> None:
        try:
            for turn in range(40):  # each turn a different ~1 MB prompt, so each build rewrites both pages
                save(folder, "big", sidecar(folder, "big", "AB"[turn % 2] * 500_000))
                gallery.build(outputs)
        except BaseException as err:  # reported by the test below, not lost in the thread
            failures.append(err)
        finally:
            done.set()

    writer = threading.Thread(target=rewrite)
    writer.start()
    reads, torn = 0, []
    while not done.is_set():
        for page in pages:
            try:
                data = page.read_bytes()
            except FileNotFoundError:  # before the first build
                continue
            reads += 1
            if not (data.startswith(b"<!doctype html>") and data.endswith(b"</html>\n")):
                torn.append((page.name, len(data)))
    writer.join()
    assert not failures, failures
    assert reads > 0 and not torn, (reads, torn[:5])
    leftovers = [p.name for where in (outputs, folder) for p in where.iterdir() if ".part" in p.name]
    assert not leftovers


# -- 1a. what a refresh keeps between builds is never served for what changed under it -----------------------------


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept scans trusted at once (``RECENT_NS`` 0), as for folders last written more than two seconds before."""
    monkeypatch.setattr(gallery, "RECENT_NS", 0)


def settled(outputs: Path) -> None:
    for _ in range(2):  # the first build's pages date their folders, so the second scans them again
        assert gallery.build(outputs) == []


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
@pytest.mark.parametrize("target", ["a look-alike outside", "a folder of outputs"])
def test_a_kept_session_folder_that_became_a_symlink_is_dropped_never_served_or_written_through(
    tmp_path: Path, trusting: None, target: str
) -> None:
    """A session folder scanned and kept, then swapped for a link (to a folder outside holding the same file names
    and a secret, or to another session of outputs/): the next refresh neither shows the kept results nor follows
    the link, and writes nothing through it."""
    outputs = tmp_path / "ws" / "outputs"
    swapped, other = outputs / "2026-01-02-swapped", outputs / "2026-01-01-other"
    save(swapped, "good", sidecar(swapped, "good", "The result of the swapped session"))
    save(other, "good", sidecar(other, "good"))
    settled(outputs)
    assert "The result of the swapped session" in (outputs / gallery.PAGE).read_text()

    if target == "a look-alike outside":
        elsewhere = tmp_path / "outside" / swapped.name
        save(elsewhere, "good", sidecar(elsewhere, "good", SECRET))
    else:
        elsewhere = other
    for child in swapped.iterdir():
        child.unlink()
    swapped.rmdir()
    swapped.symlink_to(elsewhere, target_is_directory=True)
    before = {p: p.read_bytes() for p in elsewhere.iterdir()}

    assert gallery.build(outputs) == []
    index = (outputs / gallery.PAGE).read_bytes()
    facts = assert_only_text(index, outputs, outputs)  # no SECRET, every link a file inside outputs/
    assert "The result of the swapped session" not in facts.text and swapped.name not in facts.text
    assert GOOD in facts.text and "1 result · 1 session" in facts.text
    assert {p: p.read_bytes() for p in elsewhere.iterdir()} == before  # no page written through the link
    if target == "a look-alike outside":
        assert gallery.read_page(outputs, swapped.name) is None  # the resource serves nothing from there either


def test_a_secret_registered_after_a_scan_was_kept_never_reaches_a_page(tmp_path: Path, trusting: None) -> None:
    """A sidecar written before redaction holds a key registered only later (a key set while the server runs): the
    next refresh makes the pages again from the sidecar, redacted, rather than serving the kept scan."""
    from kie_mcp.redact import register_secret

    late_key = "gallery-late-key-8c41d07e93b2"  # unique to this test: registering it is for the whole process
    outputs = tmp_path / "outputs"
    folder = outputs / "2026-01-01-poster"
    save(folder, "task", sidecar(folder, "task", f"{late_key} on a poster"))
    settled(outputs)
    assert late_key in (folder / gallery.PAGE).read_text()  # not a secret yet: the prompt as written

    register_secret(late_key)
    assert gallery.build(outputs) == []
    for page in (folder / gallery.PAGE, outputs / gallery.PAGE):
        text = page.read_text(encoding="utf-8")
        assert late_key not in text and "[redacted] on a poster" in text


# -- 1b. the same through the MCP client and a real generation ------------------------------------------------------


async def test_the_gallery_resources_and_a_real_generation_survive_garbage_and_hostile_sidecars(
    connect: Callable[..., Any], tmp_path: Path
) -> None:
    """The index resource (made on the fly before any page exists), a generation in the simulator that rebuilds
    the pages, then both page resources: no error, good results and the new one shown, hostile text only text."""
    workspace = tmp_path / "ws"
    outputs = workspace / "outputs"
    planted = plant_hostile(outputs, tmp_path / "outside")
    other = outputs / "2026-01-01-good-session"
    save(other, "good", sidecar(other, "good"))
    async with connect(elicitation=answering(), workspace=workspace) as client:
        early = await client.read_resource("kie://outputs/index.html")
        made = await client.call_tool("generate_image", {"prompt": "A ripe yellow lemon", "session": "Spring Launch"})
        index = await client.read_resource("kie://outputs/index.html")
        session = await client.read_resource(f"kie://outputs/{planted['folder'].name}/index.html")

    early_facts = assert_only_text(early.contents[0].text, outputs, outputs, pages_written=False)
    assert GOOD in early_facts.text and NEIGHBOUR in early_facts.text
    assert not made.is_error and made.structured_content["status"] == "completed", text_of(made)
    assert "Traceback" not in text_of(made)
    new = Path(made.structured_content["tasks"][0]["files"][0]).name
    index_facts = assert_only_text(index.contents[0].text, outputs, outputs)
    session_facts = assert_only_text(session.contents[0].text, planted["folder"], outputs)
    assert "A ripe yellow lemon" in session_facts.text  # the index shows only a session's newest 24, in a tie here
    assert f"{planted['folder'].name}/{gallery.PAGE}".encode() in {
        unquote_to_bytes(target) for target in index_facts.targets
    }
    assert GOOD in index_facts.text and NEIGHBOUR in session_facts.text and HOSTILE in session_facts.text
    assert {os.fsencode(name) for name in [*planted["media"], new]} <= linked_names(session_facts)
    assert index.contents[0].text == as_served((outputs / gallery.PAGE).read_text(encoding="utf-8"))
    served = as_served((planted["folder"] / gallery.PAGE).read_text(encoding="utf-8"), planted["folder"].name)
    assert session.contents[0].text == served


# -- 2. path escapes through the gallery resources ------------------------------------------------------------------


def plant_escapes(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace whose traversal targets hold a secret: the workspace's own root, a folder beside it, a session
    folder linked outside and a session page linked outside; and one real session page. Returns (workspace,
    outside)."""
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    outputs = workspace / "outputs"
    folder = outputs / "2026-01-01-real"
    save(folder, "good", sidecar(folder, "good"))
    gallery.build(outputs)
    outside.mkdir()
    (outside / gallery.PAGE).write_text(f"<p>{SECRET}</p>")
    (workspace / gallery.PAGE).write_text(f"<p>{SECRET}</p>")  # inside the workspace, outside outputs/
    (workspace / ".env").write_text(f"KIE_API_KEY={SECRET}\n")
    (outputs / "evil").symlink_to(outside, target_is_directory=True)
    linked = outputs / "2026-01-02-linked-page"
    linked.mkdir()
    (linked / gallery.PAGE).symlink_to(outside / gallery.PAGE)
    return workspace, outside


def escapes(outside: Path) -> list[str]:
    """Session values that try to leave outputs/, raw and encoded."""
    absolute = str(outside)
    return [
        "..",
        "../..",
        "../../outside",
        "%2e%2e",
        "%2E%2E",
        "..%2f..",
        "..%2F..%2Foutside",
        "..%5c..",
        ".",
        "",
        absolute,
        absolute.replace("/", "%2F"),
        "evil",  # a session folder linked outside
        "2026-01-02-linked-page",  # a session page linked outside
        "no-such-session",
        "a\x00b",
        "x" * 5000,
    ]


@pytest.mark.parametrize(
    "session", ["..", "../../outside", "%2e%2e", "..%2f..", "<absolute>", "evil", "2026-01-02-linked-page"]
)
def test_read_page_never_serves_a_session_page_from_outside_outputs(session: str, tmp_path: Path) -> None:
    """The gallery's own guard, whatever the resource layer in front of it lets through: each value names a page
    that holds the secret (or would, once decoded)."""
    workspace, outside = plant_escapes(tmp_path)
    value = str(outside) if session == "<absolute>" else session
    assert gallery.read_page(workspace / "outputs", value) is None


def test_read_page_answers_every_hostile_session_value_without_raising(tmp_path: Path) -> None:
    workspace, outside = plant_escapes(tmp_path)
    outputs = workspace / "outputs"
    answers = {value: gallery.read_page(outputs, value) for value in escapes(outside)}
    assert answers == dict.fromkeys(answers)  # None each: no page, nothing from outside, no exception
    assert GOOD in (gallery.read_page(outputs, "2026-01-01-real") or "")  # the real page is served


def test_read_page_of_the_index_symlinked_outside_serves_a_fresh_page_not_the_target(tmp_path: Path) -> None:
    workspace, outside = plant_escapes(tmp_path)
    outputs = workspace / "outputs"
    (outputs / gallery.PAGE).unlink()
    (outputs / gallery.PAGE).symlink_to(outside / gallery.PAGE)
    page = gallery.read_page(outputs) or ""
    assert GOOD in assert_only_text(page, outputs, outputs, pages_written=False).text


async def test_session_gallery_resource_refuses_every_path_escape_cleanly(
    connect: Callable[..., Any], tmp_path: Path
) -> None:
    """Each escape is a clean MCP error (or, where the URI normalises back into outputs/, a page of outputs/):
    never a secret, never a traceback. A missing or linked-out session says there is no such page."""
    workspace, outside = plant_escapes(tmp_path)
    outcomes: dict[str, str] = {}
    async with connect(workspace=workspace) as client:
        real = await client.read_resource("kie://outputs/2026-01-01-real/index.html")
        for value in escapes(outside):
            uri = f"kie://outputs/{value}/index.html"
            try:
                read = await client.read_resource(uri)
            except MCPError as err:
                outcomes[uri] = f"error: {err}"
            else:
                outcomes[uri] = "served: " + "".join(getattr(c, "text", "") or "" for c in read.contents)
        missing = {}
        for value in ("no-such-session", "evil", "2026-01-02-linked-page"):
            with pytest.raises(MCPError, match="No gallery page") as raised:
                await client.read_resource(f"kie://outputs/{value}/index.html")
            missing[value] = str(raised.value)

    assert GOOD in real.contents[0].text  # the resource does serve real pages: the refusals below mean something
    for uri, outcome in outcomes.items():
        assert SECRET not in outcome, uri
        assert "Traceback" not in outcome and 'File "' not in outcome, uri
        if outcome.startswith("served: "):  # only ever a gallery page of outputs/
            assert_only_text(outcome.removeprefix("served: "), workspace / "outputs", workspace / "outputs")
    assert all(SECRET not in text and "Traceback" not in text for text in missing.values())


async def test_gallery_resource_never_serves_an_index_symlinked_outside(
    connect: Callable[..., Any], tmp_path: Path
) -> None:
    """outputs/index.html linked to a file outside: the resource answers with a page made from outputs/, not the
    link's target."""
    workspace, outside = plant_escapes(tmp_path)
    outputs = workspace / "outputs"
    (outputs / gallery.PAGE).unlink()
    (outputs / gallery.PAGE).symlink_to(outside / gallery.PAGE)
    async with connect(workspace=workspace) as client:
        read = await client.read_resource("kie://outputs/index.html")
    assert read.contents[0].mime_type == "text/html"
    facts = assert_only_text(read.contents[0].text, outputs, outputs, pages_written=False)
    assert GOOD in facts.text and "kie-mcp gallery" in facts.text


# -- a page swapped between its check and its read -----------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks and FIFOs")
@pytest.mark.parametrize("swap", ["link to .env", "fifo"])
@pytest.mark.parametrize("page", ["session page", "index page"])
async def test_a_gallery_page_swapped_between_check_and_read_is_never_served_or_waited_on(
    connect: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str, swap: str
) -> None:
    """A page checked (inside outputs/, a regular file), then swapped before it is read: for a link to .env, the key
    is never served; for a FIFO nobody writes to, the read never waits and the server answers other requests
    meanwhile. The session page is then no page; the index is made afresh from outputs/."""
    from .test_media_safety import read_while_swapped, replacer, swap_once_checked

    workspace, _ = plant_escapes(tmp_path)
    outputs = workspace / "outputs"
    target = outputs / "2026-01-01-real" / gallery.PAGE if page == "session page" else outputs / gallery.PAGE
    uri = "kie://outputs/2026-01-01-real/index.html" if page == "session page" else "kie://outputs/index.html"

    replace = replacer(target, swap, workspace / ".env")
    async with connect(workspace=workspace) as client:
        swapped = swap_once_checked(monkeypatch, target, replace)
        answer, released = await read_while_swapped(client, uri, swapped, target)
    assert not released, "the read waited on the FIFO until a writer came: it opened the page by name"
    assert SECRET not in answer
    if page == "session page":
        assert answer.startswith("error: ") and "No gallery page" in answer, answer
    else:
        facts = assert_only_text(answer.removeprefix("served: "), outputs, outputs, pages_written=False)
        assert GOOD in facts.text and "kie-mcp gallery" in facts.text
