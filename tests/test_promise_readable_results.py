"""Results read by everyone: a long prompt stays inside its tile and is shown whole from a touch screen or the
keyboard; each tile's buttons and pictures name their own task; a screen reader hears each followed task's end, not
every note at once; a saved path is reached with Tab; the keyboard's focus stays on a followed tile's button as the
tile is updated; the gallery's headings read as a day and a name; a file of 0 bytes says it is empty, and a picture
that does not open says so and where its file is, instead of showing a broken picture.

The app's tests drive the server through the SDK client and the built-in simulator, and the app in headless Chromium
inside the minimal MCP Apps host of ``tests/app_host.py``; the gallery's open its pages from disk. They skip when
Chromium is not installed.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from kie_mcp.media import gallery

from . import test_app_edges
from .app_host import AppHost, AppView
from .browser import BrowserError, Page, save_artifact
from .conftest import answering, session_folder, text_of
from .test_app_edges import in_browser

IMAGE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}
LONG = "W" * 5000  # a prompt of 5,000 characters with no space in it


connect_app = test_app_edges.connect_app  # a client that declares the MCP Apps extension (a fixture)


def tail(task_id: str) -> str:
    """How a tile's buttons name a task's id (its last eight characters, for a long one)."""
    return task_id[-8:] if len(task_id) > 12 else task_id


# -- a long prompt on a tile -------------------------------------------------------------------------------------

PROMPT_BOX = """(() => {
  const tile = document.querySelector('.tile'), prompt = tile.querySelector('.prompt');
  const toggle = tile.querySelector('.show-all');
  const p = prompt.getBoundingClientRect(), t = tile.getBoundingClientRect();
  return {wide: prompt.scrollWidth - prompt.clientWidth, right: p.right - t.right,
          hidden: prompt.scrollHeight - prompt.clientHeight, height: p.height,
          toggle: toggle && {text: toggle.textContent, shown: !toggle.hidden && toggle.offsetParent !== null,
                             expanded: toggle.getAttribute('aria-expanded'),
                             controls: toggle.getAttribute('aria-controls') === prompt.id}};
})()"""


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_long_prompt_wraps_inside_its_tile_and_is_shown_whole_on_a_press(connect_app, browser):
    """The audit: a prompt of 5,000 characters with no space ran past the tile's right edge, clipped, in a view 360 px
    wide too, and the whole of it was only in a tooltip, which a touch screen or a keyboard cannot open. It wraps
    inside the tile, and "Show all" (a button, with aria-expanded) shows it whole, and stays so as the tile is drawn
    again (Check again)."""
    call = {**IMAGE, "prompt": LONG}
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", call)
        assert made.structured_content["status"] == "completed", text_of(made)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("long-prompt", call, made))
            try:
                await in_browser(view.page.evaluate, "document.querySelector('.frame').style.width = '360px'")
                await in_browser(view.wait_for, "document.querySelector('.tile .prompt')")
                await in_browser(view.wait_for, "document.documentElement.clientWidth <= 360")
                await in_browser(view.wait_for, "(t => t && !t.hidden)(document.querySelector('.tile .show-all'))", 5)
                before = await in_browser(view.evaluate, PROMPT_BOX)
                save_artifact("app-long-prompt.png", await in_browser(view.screenshot))
                await in_browser(view.click, ".tile .show-all")
                await in_browser(view.wait_for, "document.querySelector('.tile .prompt.all')")
                opened = await in_browser(view.evaluate, PROMPT_BOX)
                await in_browser(view.click, ".tile .actions .btn")  # Check again: the tile is drawn again
                await in_browser(view.wait_for, "document.querySelector('.tile .note').textContent")  # its answer
                checked = await in_browser(view.evaluate, PROMPT_BOX)
            finally:
                await in_browser(view.close)
    assert host.calls("check_task"), host.relayed
    assert before["wide"] <= 1 and before["right"] <= 0.5, before  # wrapped inside the tile, nothing clipped
    assert before["hidden"] > 0, before  # three lines of it ...
    assert before["toggle"] == {"text": "Show all (5,000 characters)", "shown": True, "expanded": "false",
                                "controls": True}, before  # fmt: skip
    assert opened["toggle"]["text"] == "Show less" and opened["toggle"]["expanded"] == "true", opened
    assert opened["hidden"] <= 1 and opened["height"] > 10 * before["height"] and opened["wide"] <= 1, opened
    assert checked["toggle"]["expanded"] == "true" and checked["hidden"] <= 1, checked  # still whole


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_the_card_s_show_all_says_whether_the_prompt_is_shown_whole(connect_app, browser):
    """The audit: the card's "Show all"/"Show less" changed its words but told a screen reader nothing of its state."""
    request = {**IMAGE, "prompt": "\n".join(f"Line {n} of the prompt" for n in range(30))}
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", request)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("card-toggle", request, estimate))
            state = (
                "(t => [t.textContent, t.getAttribute('aria-expanded'), document.getElementById("
                "t.getAttribute('aria-controls')) === document.querySelector('.card blockquote')])"
                "(document.querySelector('.card .show-all'))"
            )
            try:
                await in_browser(view.wait_for, "(t => t && !t.hidden)(document.querySelector('.card .show-all'))")
                closed = await in_browser(view.evaluate, state)
                await in_browser(view.click, ".card .show-all")
                await in_browser(view.wait_for, "document.querySelector('.card blockquote.all')")
                opened = await in_browser(view.evaluate, state)
            finally:
                await in_browser(view.close)
    assert closed == [f"Show all (30 lines, {len(request['prompt']):,} characters)", "false", True], closed
    assert opened == ["Show less", "true", True], opened


# -- names a screen reader reads ---------------------------------------------------------------------------------

NAMES = """(() => [...document.querySelectorAll('.tile')].map(t => ({
  task: t.dataset.task,
  buttons: [...t.querySelectorAll('.actions button')].map(b => [b.textContent, b.getAttribute('aria-label')]),
  alts: [...t.querySelectorAll('.media img')].map(i => i.alt)})))()"""


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_each_tile_s_buttons_and_pictures_name_their_own_task(connect_app, browser):
    """The audit: every tile's "Check again" and "Make a video from this still" had the same accessible name, and
    each picture's alt text was its generated file name. Each button names its task (model and the end of its id),
    and each picture's alt text is its prompt, cut to 120 characters."""
    long = "A lighthouse on a cliff at dawn, " * 10  # 330 characters
    async with connect_app(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", IMAGE)
        second = await client.call_tool("generate_image", {**IMAGE, "prompt": long})
        tasks = [r.structured_content["tasks"][0] for r in (first, second)]
        listed = await client.call_tool("list_tasks", {})
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("names", {}, listed))
            try:
                await in_browser(view.wait_for, "document.querySelectorAll('.tile .actions button').length === 4")
                tiles = {t["task"]: t for t in await in_browser(view.evaluate, NAMES)}
            finally:
                await in_browser(view.close)
    labels = [label for tile in tiles.values() for _, label in tile["buttons"]]
    assert len(set(labels)) == 4, labels  # no two alike
    for task in tasks:
        tile = tiles[task["task_id"]]
        named = f"nano-banana-2 task ending {tail(task['task_id'])}"
        assert tile["buttons"] == [
            ["Check again", f"Check again, {named}"],
            ["Make a video from this still", f"Make a video from this still, {named}"],
        ], tile
    assert tiles[tasks[0]["task_id"]]["alts"] == [IMAGE["prompt"]]
    [alt] = tiles[tasks[1]["task_id"]]["alts"]
    assert alt.endswith("…") and len(alt) <= 121 and long.startswith(alt[:-1]), alt


# -- what a screen reader hears while tasks are followed ----------------------------------------------------------

HEARD = """(() => { window.heard = []; const region = document.getElementById('announce');
  new MutationObserver(() => region.textContent && window.heard.push(region.textContent))
    .observe(region, {childList: true, characterData: true, subtree: true}); return true; })()"""


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_screen_reader_hears_each_followed_task_s_end_not_every_note(
    connect_app, controls, browser
):
    """The audit: every tile's note was a live region of its own, so several followed tasks spoke at once, at every
    update. Only the page's one live region speaks, and it says each task's end."""
    async with connect_app(elicitation=answering(), auto_approve_credits=100) as client:
        await controls.post("clock/speed", {"speed": 0})  # KIE finishes nothing while the view is open
        made = await client.call_tool("generate_image", {**IMAGE, "variations": 2, "wait_seconds": 0})
        assert made.structured_content["status"] == "submitted", text_of(made)
        tasks = made.structured_content["tasks"]
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("followed", {}, made))
            try:
                await in_browser(view.wait_for, "document.querySelectorAll('.tile .note').length === 2")
                await in_browser(view.evaluate, HEARD)
                await host.until_sent("tools/call")  # the tiles follow their tasks
                live = await in_browser(view.evaluate, "[...document.querySelectorAll('[aria-live]')].map(e => e.id)")
                await controls.post("clock/speed", {"speed": 1000})  # they end
                ended = "document.querySelectorAll('.tile .state-succeeded').length === 2"
                await in_browser(view.wait_for, ended, 40)
                await in_browser(view.wait_for, "window.heard.length > 0", 5)
                await anyio.sleep(1)  # anything else it would say has been said
                heard = await in_browser(view.evaluate, "window.heard")
            finally:
                await in_browser(view.close)
    assert live == ["announce"], live
    said = " ".join(heard)
    for task in tasks:
        assert f"nano-banana-2 task ending {tail(task['task_id'])} succeeded." in said, heard
    assert len(heard) <= 2, heard  # each end once (two ends a moment apart: one sentence)


# -- the keyboard's place on a followed tile ----------------------------------------------------------------------

FOCUS_ON = """(selector => { const control = document.querySelector(selector); control.focus();
  window.focused = control; return document.activeElement === control; })"""
FOCUS_NOW = """(() => { const now = document.activeElement;
  return {same: now === window.focused, kept: window.focused.isConnected,
          now: now === document.body ? 'body' : now.getAttribute('aria-label') || now.textContent}; })()"""


@pytest.mark.parametrize("mode", ["legacy"])
@pytest.mark.parametrize(
    ("control", "selector"), [("Check again", ".tile .actions .btn"), ("Show all", ".tile .show-all")]
)
async def test_in_a_browser_a_followed_tile_keeps_the_keyboard_s_place_as_it_is_drawn_again(
    connect_app, controls, browser, control, selector
):
    """The audit: a keyboard user who tabbed onto a followed tile's button lost the focus at the tile's next update
    (the tile was drawn anew: the button the focus was on left the page, the focus went to nowhere). The tile is
    updated in place: the focus stays on that very button through every update to the task's end, and a screen
    reader hears only the end, not the tile read again."""
    async with connect_app(elicitation=answering(), auto_approve_credits=100) as client:
        await controls.post("clock/speed", {"speed": 0})  # KIE finishes nothing until the focus is on the button
        made = await client.call_tool("generate_image", {**IMAGE, "prompt": LONG, "wait_seconds": 0})
        assert made.structured_content["status"] == "submitted", text_of(made)
        [task] = made.structured_content["tasks"]
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("focus-kept", {}, made))
            try:
                await in_browser(view.wait_for, "(t => t && !t.hidden)(document.querySelector('.tile .show-all'))")
                await host.until_sent("tools/call")  # the tile follows its task
                focused = await in_browser(view.evaluate, f"{FOCUS_ON}({json.dumps(selector)})")
                await in_browser(view.evaluate, HEARD)
                await controls.post("clock/speed", {"speed": 1000})  # it runs, ends and is saved: drawn again
                await in_browser(view.wait_for, "document.querySelector('.tile .state-succeeded')", 40)
                await in_browser(view.wait_for, "document.querySelectorAll('.tile .actions .btn').length === 2", 20)
                await in_browser(view.wait_for, "window.heard.length > 0", 5)
                await anyio.sleep(1)  # any update still on its way is drawn
                now = await in_browser(view.evaluate, FOCUS_NOW)
                heard = await in_browser(view.evaluate, "window.heard")
            finally:
                await in_browser(view.close)
    assert focused, control
    label = f"Check again, nano-banana-2 task ending {tail(task['task_id'])}" if control == "Check again" else None
    assert now == {"same": True, "kept": True, "now": label or "Show all (5,000 characters)"}, now
    assert heard == [f"nano-banana-2 task ending {tail(task['task_id'])} succeeded."], heard


def press_enter(view: AppView) -> None:
    """Press Enter in the app, as a person at the keyboard does on the control the focus is on."""
    for kind in ("rawKeyDown", "char", "keyUp"):
        key = {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
        view.browser.send("Input.dispatchKeyEvent", {**key, "text": "\r"} if kind == "char" else key, view.frame)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_check_again_pressed_from_the_keyboard_keeps_the_focus(connect_app, browser):
    """The audit: Enter on "Check again" dropped the focus to nowhere twice over: the button was disabled while its
    call ran (a disabled button loses the focus), then drawn anew with the answer. It says it is busy with
    aria-disabled instead, and stays, focused, through the answer."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        assert made.structured_content["status"] == "completed", text_of(made)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("check-again-keyboard", IMAGE, made))
            try:
                await in_browser(view.wait_for, "document.querySelectorAll('.tile .actions .btn').length === 2")
                focused = await in_browser(view.evaluate, f"{FOCUS_ON}('.tile .actions .btn')")
                await in_browser(press_enter, view)
                await in_browser(view.wait_for, "document.querySelector('.tile .note').textContent")  # its answer
                await anyio.sleep(0.5)
                now = await in_browser(view.evaluate, FOCUS_NOW)
                busy = await in_browser(view.evaluate, "window.focused.getAttribute('aria-disabled')")
            finally:
                await in_browser(view.close)
    [task] = made.structured_content["tasks"]
    assert focused and len(host.calls("check_task")) == 1, host.relayed
    label = f"Check again, nano-banana-2 task ending {tail(task['task_id'])}"
    assert now == {"same": True, "kept": True, "now": label}, now
    assert busy is None, busy  # no longer busy once answered


# -- a saved path from the keyboard ------------------------------------------------------------------------------


def press_tab(view: AppView) -> None:
    """Press Tab in the app, as a person at the keyboard does."""
    for kind in ("rawKeyDown", "keyUp"):
        key = {"type": kind, "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9, "nativeVirtualKeyCode": 9}
        view.browser.send("Input.dispatchKeyEvent", key, view.frame)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_saved_path_is_reached_and_selected_whole_from_the_keyboard(connect_app, browser):
    """The audit: "a click selects it whole" held for a mouse only: Tab went from the picture past the saved path to
    "Check again". Tab now reaches the path, selected whole, for the keyboard's copy."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        [path] = made.structured_content["tasks"][0]["files"]
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("path", IMAGE, made))
            try:
                await in_browser(view.wait_for, "document.querySelector('.tile .media img')")
                await in_browser(view.evaluate, "document.querySelector('.tile .media img').focus()")
                await in_browser(press_tab, view)
                await in_browser(view.wait_for, "document.activeElement !== document.querySelector('.media img')", 5)
                reached = await in_browser(
                    view.evaluate,
                    "[document.activeElement.className, document.activeElement.getAttribute('aria-label'), "
                    "String(getSelection())]",
                )
            finally:
                await in_browser(view.close)
    assert reached == ["mono path", "Saved path", path], reached


# -- the gallery's pages -----------------------------------------------------------------------------------------


def headings(page: Page) -> list[str]:
    """The headings of the page as a screen reader names them (Chromium's accessibility tree)."""
    page.send("Accessibility.enable")
    nodes = page.send("Accessibility.getFullAXTree")["nodes"]
    return [n.get("name", {}).get("value", "") for n in nodes if n.get("role", {}).get("value") == "heading"]


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_the_index_s_headings_read_as_a_day_and_a_name(connect, tmp_path, browser):
    """The audit: the index's session headings read "2026-12-07odd" and "2026-12-07-leading" to a screen reader and
    in a copy (nothing between the day and the name); the session page's title had a space. Both have one now."""
    async with connect(elicitation=answering()) as client:
        for session in ("odd", "-leading"):
            made = await client.call_tool("generate_image", {**IMAGE, "session": session})
            assert made.structured_content["status"] == "completed", text_of(made)
    day = session_folder(tmp_path, "odd").name[:10]
    page = browser.new_page(1000, 900)
    try:
        page.goto((tmp_path / "outputs" / "index.html").as_uri())
        read = headings(page)
        copied = page.evaluate("[...document.querySelectorAll('section h2')].map(h => h.innerText)")
        page.goto((session_folder(tmp_path, "odd") / "index.html").as_uri())
        titled = headings(page)
    finally:
        page.close()
    assert f"{day} odd" in read and f"{day} -leading" in read, read
    assert sorted(copied) == sorted([f"{day} odd", f"{day} -leading"]), copied
    assert f"{day} odd" in titled, titled


PICTURES = """(async () => {  // lazy pictures arrive after the load event: wait for them as a person would
  const deadline = Date.now() + 10000;
  const waiting = () => [...document.images].some(i => !i.complete);
  while (waiting() && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
  return [...document.images].map(i => [decodeURIComponent(i.src.split('/').pop()), i.naturalWidth]);
})()"""


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_a_file_of_no_bytes_says_it_is_empty_never_a_broken_picture(
    connect, tmp_path, browser, monkeypatch
):
    """The audit: a file of 0 bytes in a session folder (copied in, a download cut off outside kie-mcp) showed as a
    broken picture on the session page and the index, and stood for its session on the month page, with nothing
    saying why. Its card says it is empty, and no page draws it as a picture."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 1)  # the older session on the month page only
    async with connect(elicitation=answering()) as client:
        for session in ("Older", "Shoot"):
            made = await client.call_tool("generate_image", {**IMAGE, "session": session})
            assert made.structured_content["status"] == "completed", text_of(made)
    folder = session_folder(tmp_path, "shoot")
    (folder / "zero.jpg").write_bytes(b"")  # the newest file of the newest session
    outputs = tmp_path / "outputs"
    assert gallery.build(outputs) == []
    month = next(outputs.glob("index-*.html"))
    page = browser.new_page(1000, 900)
    seen: dict[str, Any] = {}
    try:
        for name, where in (("session", folder / "index.html"), ("index", outputs / "index.html"), ("month", month)):
            page.goto(where.as_uri())
            seen[name] = {
                "pictures": page.evaluate(PICTURES),
                "cards": page.evaluate(
                    "Object.fromEntries([...document.querySelectorAll('figure.card:not(.tile)')].map(c => "
                    "[c.querySelector('.file a').textContent, c.innerText]))"
                ),
            }
            save_artifact(f"gallery-empty-file-{name}.png", page.screenshot(full_page=True))
    finally:
        page.close()
    for name, shown in seen.items():
        assert shown["pictures"] and all(width > 0 for _, width in shown["pictures"]), (name, shown["pictures"])
        assert "zero.jpg" not in [src for src, _ in shown["pictures"]], (name, shown["pictures"])
    for name in ("session", "index"):
        card = seen[name]["cards"]["zero.jpg"]
        assert "Damaged: empty file (0 bytes)" in card and "Empty file: nothing to show." in card, (name, card)
    assert len(seen["month"]["pictures"]) == 2, json.dumps(seen["month"])  # each session's tile has its picture


UNSHOWN = """(() => [...document.querySelectorAll('figure.card:not(.tile)')].map(c => ({
  file: c.querySelector('.meta.file a').textContent, text: c.innerText,
  pictures: [...c.querySelectorAll('img')].map(i => i.naturalWidth)})))()"""


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_a_picture_known_not_to_open_says_so_and_where_it_is_never_a_broken_picture(
    connect, controls, tmp_path, browser, monkeypatch
):
    """The audit: a picture KIE stored damaged (kept: it is paid for; its sidecar says it does not open) showed as a
    broken picture on its card, and stood for its session on the month page. Its card says it could not be shown,
    why and where its file is, and no page draws it as a picture."""
    monkeypatch.setattr(gallery, "SESSIONS_ON_INDEX", 1)  # the older session on the month page only
    async with connect(elicitation=answering()) as client:
        good = await client.call_tool("generate_image", {**IMAGE, "session": "Older"})
        await controls.fault("files", kind="damaged", times=2)  # the first fetch and the one more: both cut short
        bad = await client.call_tool("generate_image", {**IMAGE, "session": "Older"})  # the session's newest
        newer = await client.call_tool("generate_image", {**IMAGE, "session": "Shoot"})
    assert "does not open as an image" in text_of(bad), text_of(bad)
    assert newer.structured_content["status"] == "completed", text_of(newer)
    [path] = bad.structured_content["tasks"][0]["files"]
    [good_path] = good.structured_content["tasks"][0]["files"]
    folder = session_folder(tmp_path, "older")
    outputs = tmp_path / "outputs"
    assert gallery.build(outputs) == []
    month = next(outputs.glob("index-*.html"))
    page = browser.new_page(1000, 900)
    try:
        page.goto((folder / "index.html").as_uri())
        page.evaluate(PICTURES)  # every picture loaded (or failed to)
        cards = {card["file"]: card for card in page.evaluate(UNSHOWN)}
        save_artifact("gallery-damaged-picture.png", page.screenshot(full_page=True))
        page.goto(month.as_uri())
        tile = page.evaluate(PICTURES)
    finally:
        page.close()
    card = cards[path.split("/")[-1]]
    assert card["pictures"] == [], card  # no broken picture
    assert "Could not be shown: it does not open as an image (" in card["text"], card
    assert f"The file is at {path}." in card["text"], card
    assert [width > 0 for width in cards[good_path.split("/")[-1]]["pictures"]] == [True], cards
    shown = [src for src, width in tile if width > 0]
    assert len(shown) == len(tile) == 2, tile  # each session's tile has a picture that opens ...
    assert any(good_path.split("/")[-1] in src for src in shown), tile  # ... the older's its good one
    assert path.split("/")[-1] not in shown, tile


COVERED = """(img => { const after = getComputedStyle(img, '::after');
  return {loaded: img.naturalWidth, content: after.content, file: img.dataset.file}; })"""


def covering_box(page: Page, name: str) -> float | None:
    """The width of what covers the picture showing ``name`` (its ::after as Chromium lays it out), or None when
    nothing covers it: a picture that loads has no ::after drawn."""
    page.send("DOM.enable")
    root = page.send("DOM.getDocument", {"depth": -1})["root"]

    def found(node: dict[str, Any]) -> dict[str, Any] | None:
        attributes = node.get("attributes") or []
        if node.get("nodeName") == "IMG" and any(a.endswith(name) for a in attributes[1::2]):
            return node
        return next((hit for child in node.get("children", []) if (hit := found(child))), None)

    img = found(root)
    assert img is not None, name
    after = next((p for p in img.get("pseudoElements", []) if p.get("pseudoType") == "after"), None)
    if after is None:  # no ::after at all
        return None
    try:
        return page.send("DOM.getBoxModel", {"nodeId": after["nodeId"]})["model"]["width"]
    except BrowserError:  # Chromium's "Could not compute box model": nothing drawn
        return None


@pytest.mark.parametrize("mode", ["legacy"])  # the pages do not depend on the protocol era: one browser run
async def test_in_a_browser_a_picture_that_does_not_open_is_covered_by_where_its_file_is(connect, tmp_path, browser):
    """The audit: a file that is not empty but does not decode (copied in, damaged since; no build decodes every
    file) showed as a broken picture. The pages run no script (their CSP forbids it, inline handlers too), so what
    covers a picture the browser cannot open is drawn by the pages' CSS: it says it could not be shown and where
    the file is, and a picture that opens is not covered."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "session": "Shoot"})
        assert made.structured_content["status"] == "completed", text_of(made)
    [good] = made.structured_content["tasks"][0]["files"]
    folder = session_folder(tmp_path, "shoot")
    (folder / "copied.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a picture after all " * 40)  # no sidecar, no preview
    assert gallery.build(tmp_path / "outputs") == []
    page = browser.new_page(1000, 900)
    try:
        page.goto((folder / "index.html").as_uri())
        page.evaluate(PICTURES)
        pictures = {
            src.split("/")[-1]: page.evaluate(f"{COVERED}([...document.images].find(i => i.src.endsWith('{src}')))")
            for src in ("copied.jpg", good.split("/")[-1])
        }
        covered = {name: covering_box(page, name) for name in pictures}
        width = page.evaluate("document.querySelector('img[src$=\"copied.jpg\"]').getBoundingClientRect().width")
        save_artifact("gallery-undecodable-picture.png", page.screenshot(full_page=True))
    finally:
        page.close()
    copied = pictures["copied.jpg"]
    assert copied["loaded"] == 0, copied  # the browser cannot open it ...
    assert "Could not be shown" in copied["content"] and copied["file"] == f"outputs/{folder.name}/copied.jpg", copied
    assert covered["copied.jpg"] and abs(covered["copied.jpg"] - width) <= 1, (covered, width)  # ... and it is covered
    [good_name] = [name for name in pictures if name != "copied.jpg"]
    assert pictures[good_name]["loaded"] > 0 and covered[good_name] is None, (pictures, covered)  # one that opens: not
