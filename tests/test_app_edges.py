"""The MCP App where a result is not simply there: creates whose outcome is unknown, results still being saved, a
host that loses Approve's answer, requests that make several outputs a task, full files that cannot be read, and
results of a shape the app does not know.

Each browser test drives the server through the SDK client and the built-in simulator, and the app in headless
Chromium inside the minimal MCP Apps host of ``tests/app_host.py`` (see ``tests/test_apps.py``); they skip when
Chromium is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from PIL import Image

from kie_mcp.apps import CARD_KEY, GALLERY_KEY
from kie_mcp.media import addresses
from kie_mcp.redact import REDACTED
from kie_mcp.sandbox import SimConfig, Simulator
from kie_mcp.tasks import TaskRecord

from .app_host import AppHost, AppView
from .browser import save_artifact
from .conftest import answering, text_of
from .test_promise_addresses import Routing, SeenAsTheNetwork, served

IMAGE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}


@pytest.fixture
def connect_app(connect: Callable[..., Any]) -> Callable[..., Any]:
    """``async with connect_app(**overrides) as client``: a client that declares the MCP Apps extension."""
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    return lambda elicitation=None, **overrides: connect(elicitation, extensions=[apps], **overrides)


async def in_browser(function: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking browser step in a worker thread, so the host's bridge keeps serving the app meanwhile."""
    return await anyio.to_thread.run_sync(function, *args)


async def read_in_view(
    client: Any,
    browser: Any,
    name: str,
    arguments: dict[str, Any],
    result: Any,
    ready: str,
    read: str | None = None,
    query: str = "",
) -> Any:
    """Show ``result`` in the app in a browser, wait until the JS condition ``ready`` holds, and give what the JS
    expression ``read`` evaluates to (the view's whole text without one); ``query`` is added to the host page's
    URL (``&noresult``: see ``app_host.html``)."""
    async with AppHost(client).running() as host:
        view = await in_browser(AppView, browser, host.show(name, arguments, result) + query)
        try:
            await in_browser(view.wait_for, ready)
            return await in_browser(view.evaluate, read) if read else await in_browser(view.text)
        finally:
            await in_browser(view.close)


# -- creates whose outcome is unknown ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_the_task_list_shows_each_create_whose_outcome_is_unknown(connect_app, controls, browser):
    """A create KIE gave no clear answer to may have made, and charged, a task whose id kie-mcp never got: the
    gallery drew only the tasks and the first line of the message, so the one thing to check before trying again
    was not on screen."""
    await controls.fault("create", kind="drop_after_create")
    async with connect_app(elicitation=answering()) as client:
        await client.call_tool("generate_image", IMAGE)  # sent, no answer: outcome unknown
        await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear"})
        listed = await client.call_tool("list_tasks", {})
        [unknown] = listed.structured_content["unknown_create_list"]
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("unknown", {}, listed))
            try:
                await in_browser(view.wait_for, "document.querySelectorAll('.tile').length === 2")
                tile = await in_browser(
                    view.evaluate,
                    f"(t => t && t.innerText)(document.querySelector('[data-attempt=\"{unknown['attempt_id']}\"]'))",
                )
                head = "document.querySelector('.gallery-head .message').textContent"
                message = await in_browser(view.evaluate, head)
                save_artifact("app-unknown-create.png", await in_browser(view.screenshot))
            finally:
                await in_browser(view.close)
    assert tile, "no tile for the create whose outcome is unknown"
    assert "Outcome unknown, may have been charged: check kie.ai/logs before trying again" in tile, tile
    assert unknown["attempt_id"] in tile and "nano-banana-2" in tile and IMAGE["prompt"] in tile and "Sent " in tile
    assert message == listed.structured_content["message"]  # the whole message, its warning too
    assert "may have been created and charged" in message


# -- results still being saved -----------------------------------------------------------------------------------


async def test_a_result_still_downloading_is_said_to_be_saving_never_unsaved(connect_app, controls):
    """generate_image answered "Done" with the result link and no file while the download still ran, and check_task
    said "being saved" only in its text: an agent (and the app) read it as a result that would never be saved."""
    await controls.fault("files", kind="stall", seconds=4, after_bytes=0)
    async with connect_app(elicitation=answering(), save_grace=0.5) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 2})
        task = made.structured_content["tasks"][0]
        ask = {"task_id": task["task_id"]}
        checked = await client.call_tool("check_task", ask)
        with anyio.fail_after(20):  # until the stalled download ends (4 s after it began) and the result is saved
            saved = await client.call_tool("check_task", ask)
            while saved.structured_content.get("saving"):
                await anyio.sleep(0.1)
                saved = await client.call_tool("check_task", ask)
    assert task["state"] == "succeeded" and task["files"] == [], made.structured_content
    assert made.structured_content["saving"] == [task["task_id"]]
    assert "being saved now" in text_of(made) and "check_task" in text_of(made), text_of(made)
    assert checked.structured_content["saving"] is True and "being saved now" in text_of(checked)
    assert saved.structured_content["saving"] is False and saved.structured_content["task"]["files"]


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_result_still_downloading_shows_as_saving_then_appears(connect_app, controls, browser):
    """The tile said "Not saved in the workspace; open it at KIE" for a result whose download outlasted the call,
    stopped following it (it had succeeded), and never showed the picture once it was saved."""
    await controls.fault("files", kind="stall", seconds=6, after_bytes=0)
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 2})
        assert made.structured_content["saving"], text_of(made)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("saving", IMAGE, made))
            try:
                await in_browser(view.wait_for, "document.querySelector('.tile')")
                first = await in_browser(view.text)
                await in_browser(view.wait_for, "(i => i && i.src)(document.querySelector('.media > img'))", 30)
                later = await in_browser(view.text)
                save_artifact("app-saved-late.png", await in_browser(view.screenshot))
            finally:
                await in_browser(view.close)
    assert "Saving the result" in first and "Not saved" not in first, first
    assert "Saving the result" not in later and "Not saved" not in later, later
    assert host.calls("check_task")  # it went on following the task until the file was there


# -- result links kie-mcp would not fetch ------------------------------------------------------------------------

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
TILE_READY = "document.querySelector('.tile .placeholder') && !document.querySelector('.tile .play')"


@pytest.mark.parametrize(
    "link", ["http://192.168.1.1/cgi-bin/reboot?now=1", "http://169.254.169.254/latest/meta-data/"]
)
async def test_in_a_browser_a_result_link_kie_mcp_refused_to_fetch_is_never_offered_and_its_reason_is_shown(
    tmp_path, browser, link
):
    """The auditor's repro: a hostile upstream names a result link on a private network; the server refused to
    fetch it, yet the tile offered it ("open it at KIE", one click sent ui/open-link), said "No saved file yet",
    and the server's reason sat in the header, cut to three lines."""
    transport = Routing(Simulator(SimConfig(speed=1000.0)))
    transport.result = link
    server = served(tmp_path, transport)
    async with Client(server, mode="legacy", elicitation_callback=answering(), extensions=[APPS]) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task_id = made.structured_content["tasks"][0]["task_id"]
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("private-link", IMAGE, made))
            try:
                await in_browser(view.wait_for, TILE_READY)
                buttons = await in_browser(view.evaluate, "document.querySelectorAll('.tile button.open-link').length")
                tile = await in_browser(view.evaluate, "document.querySelector('.tile .media').innerText")
                save_artifact("app-private-link.png", await in_browser(view.screenshot))
            finally:
                await in_browser(view.close)
    assert buttons == 0 and not host.sent("ui/open-link"), tile
    assert "No saved file yet" not in tile and "open it at KIE" not in tile, tile
    assert f"{task_id} result 1: The result link {link} points at this machine or a private network" in tile, tile
    assert transport.sent == []  # and kie-mcp never fetched it
    assert made.meta[GALLERY_KEY]["links"] == {}, made.meta[GALLERY_KEY]


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_result_that_could_not_be_saved_says_why_and_its_link_names_its_host(
    connect_app, controls, browser
):
    """A public result link whose download failed: the tile said "No saved file yet" and "open it at KIE" on a
    button that did not say where it went. It now says what went wrong, and the button names the link's host."""
    await controls.fault("files", kind="code", code=503, times=-1)
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        [task] = made.structured_content["tasks"]
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("unsaved", IMAGE, made))
            try:
                await in_browser(view.wait_for, TILE_READY)
                tile = await in_browser(view.evaluate, "document.querySelector('.tile .media').innerText")
                await in_browser(view.click, ".tile .placeholder button.open-link")
                [opened] = await host.until_sent("ui/open-link")
            finally:
                await in_browser(view.close)
    assert task["files"] == [] and len(task["result_urls"]) == 1, task
    assert "No saved file yet" not in tile and f"{task['task_id']} result 1:" in tile, tile
    assert "Open at api.kie.test" in tile, tile
    assert opened["url"] == task["result_urls"][0]


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_result_link_past_kie_s_retention_is_never_offered_and_the_tile_says_so(
    connect_app, controls, browser, tmp_path
):
    """The audit: a result kie-mcp could not save offered "Open at <host>" and said it was "still at KIE's file host
    for a while", however old the task: past the 14 days KIE keeps results the link is dead. A link is offered with
    the day KIE keeps it until, and past that the tile says the links are gone, with no button."""
    import time

    from kie_mcp.journal import Journal

    await controls.fault("files", kind="code", code=503, times=-1)  # no result is ever saved
    async with connect_app(elicitation=answering()) as client:
        old = (await client.call_tool("generate_image", IMAGE)).structured_content["tasks"][0]["task_id"]
    weeks_ago = time.time() - 20 * 86400
    journal = Journal.for_workspace(tmp_path)
    journal.execute(
        "UPDATE tasks SET created = ?, record = json_set(record, '$.created_at', ?) WHERE task_id = ?",
        weeks_ago, weeks_ago, old,
    )  # fmt: skip
    journal.close()
    async with connect_app(elicitation=answering()) as client:  # another run: the task is read from the journal
        young = (await client.call_tool("generate_image", IMAGE)).structured_content["tasks"][0]["task_id"]
        listed = await client.call_tool("list_tasks", {})
        tiles = await read_in_view(
            client, browser, "retention", {}, listed,
            "document.querySelectorAll('.tile .placeholder').length === 2",
            "Object.fromEntries([...document.querySelectorAll('.tile')].map(t => [t.dataset.task, "
            "[t.querySelector('.media').innerText, t.querySelectorAll('button.open-link').length]]))",
        )  # fmt: skip
    extra = listed.meta[GALLERY_KEY]
    assert old not in extra["links"] and "about 14 days" in extra["links_gone"][old], extra
    assert "made 20 days ago" in extra["links_gone"][old], extra
    [link] = extra["links"][young]
    kept = (datetime.now(UTC) + timedelta(days=14)).date()
    assert link["until"] in {kept.isoformat(), (kept - timedelta(days=1)).isoformat()}, link  # a run at midnight
    said, buttons = tiles[old]
    assert buttons == 0 and "links are gone" in said and "file host" not in said, said
    said, buttons = tiles[young]
    assert buttons == 1 and "file host until about" in said and "file host for a while" not in said, said


def test_the_gallery_offers_only_result_links_kie_mcp_would_fetch_itself():
    """What the gallery may offer a person to open is decided by the server, with the rules it fetches by: never
    this machine, a private network, a redacted credential, a user name that hides the real host, or any scheme
    but http(s)."""
    record = TaskRecord(task_id="t1", model="m", family="market", state="succeeded", result_urls=[
        "https://tempfile.aiquickdraw.com/a.png", "http://127.0.0.1:8080/admin?reset=1", "http://10.0.0.7/a.png",
        "http://169.254.169.254/latest/meta-data/", "http://localhost/a.png", "http://printer/a.png",
        "https://kie.ai@evil.example/x.png", f"https://cdn.example/a.png?key={REDACTED}", "javascript:alert(1)//",
        "  https://x.example/lead-space", "file:///etc/passwd", "https://refused.example/a.png",
    ])  # fmt: skip
    record.refuse_link("https://refused.example/a.png")  # as save_results does with one it will never fetch
    assert record.openable_links() == ["https://tempfile.aiquickdraw.com/a.png"]


def test_the_gallery_never_offers_a_link_a_browser_reads_as_this_machine_or_a_private_network():
    """The review: a browser reads a backslash as "/" (``http://127.0.0.1\\.example.com/admin`` opens 127.0.0.1, and
    ``https://evil.example\\.kie.ai/`` poses as kie.ai), and a name with its trailing dot is the same name
    (``localhost.``, ``nas.local.``): each was offered. Whitespace, a % escape or a zone in the host, and a host
    of 5,000 digits (which made the judgement raise) are never offered either."""
    good = "https://tempfile.aiquickdraw.com/a.png"
    record = TaskRecord(task_id="t1", model="m", family="market", state="succeeded", result_urls=[
        "http://127.0.0.1\\.example.com/admin?reset=1", "http://169.254.169.254\\.kie.ai/latest/meta-data/",
        "https://evil.example\\.kie.ai/a.png", "http://localhost./a.png", "http://nas.local./a.png",
        "http://printer./a.png", "http://x.internal./a.png", "http://router.home.arpa./a", "http://localhost\u3002/a",
        "http://localhost../a", "https://cdn.example/a b.png", "https://cdn.example/a\tb.png",
        "http://exa%20mple.com/a", "http://a_b.internal/a", "http://[fe80::1%25eth0]/a", "http://[::1]/a",
        "http://" + "1" * 5000 + "/a.png", "http://0x" + "f" * 5000 + "/a.png", good,
    ])  # fmt: skip
    assert record.openable_links() == [good]


DIGITS = "http://" + "1" * 5000 + "/a.png"  # a host Python refuses to read as one number (over 4300 digits)


async def test_a_result_link_whose_host_is_thousands_of_digits_never_fails_a_call(tmp_path, monkeypatch):
    """The review: on an Apps host a paid generate_image answered an error with no task id, and list_tasks and
    check_task failed for good, because judging the link raised (Python reads no number of over 4300 digits);
    estimate_cost failed the same way for such an input link. Each now answers, and the link is not offered."""
    _names_resolve_to(monkeypatch, "10.0.0.5")  # nothing leaves the test, whatever is judged a name
    transport = Routing(Simulator(SimConfig(speed=1000.0)))
    transport.result = DIGITS
    async with Client(
        served(tmp_path, SeenAsTheNetwork(transport)), mode="legacy", elicitation_callback=answering(),
        extensions=[APPS],
    ) as client:  # fmt: skip
        made = await client.call_tool("generate_image", IMAGE)
        checked = await client.call_tool("check_task", {"task_id": made.structured_content["tasks"][0]["task_id"]})
        listed = await client.call_tool("list_tasks", {})
        priced = await client.call_tool("estimate_cost", {**IMAGE, "images": [DIGITS]})
    assert not made.is_error and made.structured_content["tasks"][0]["task_id"], text_of(made)
    assert not checked.is_error and not listed.is_error, (text_of(checked), text_of(listed))
    assert made.meta[GALLERY_KEY]["links"] == checked.meta[GALLERY_KEY]["links"] == {}
    assert listed.meta[GALLERY_KEY]["links"] == {}
    assert "does not fit nano-banana-2" in text_of(priced), text_of(priced)  # a user's error, not a crash
    assert transport.sent == []


async def test_the_task_list_never_offers_a_link_the_server_refused_to_fetch_and_says_why(tmp_path, monkeypatch):
    """The review: a result link whose name resolves to a private address is refused by the server's fetch, and the
    answer of that call offered no link; list_tasks, which reads its records from the journal, offered it (and
    never said what the save could not do). The task list now knows what this server learnt saving it."""
    _names_resolve_to(monkeypatch, "10.0.0.5")
    transport = Routing(Simulator(SimConfig(speed=1000.0)))
    transport.result = "http://router.evil.example/cgi-bin/reboot"
    async with Client(
        served(tmp_path, SeenAsTheNetwork(transport)), mode="legacy", elicitation_callback=answering(),
        extensions=[APPS],
    ) as client:  # fmt: skip
        made = await client.call_tool("generate_image", IMAGE)
        task_id = made.structured_content["tasks"][0]["task_id"]
        listed = await client.call_tool("list_tasks", {})
        checked = await client.call_tool("check_task", {"task_id": task_id})
    for answer in (made, listed, checked):
        assert answer.meta[GALLERY_KEY]["links"] == {}, answer.meta[GALLERY_KEY]
    [said] = listed.meta[GALLERY_KEY]["save_problems"][task_id]
    assert "router.evil.example resolves to a private address, 10.0.0.5" in said, said
    assert transport.sent == []


def _names_resolve_to(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """Every name a result link names resolves to ``address`` (no real DNS in tests)."""

    async def resolve(host: str, port: int | None) -> list[str]:
        return [address]

    monkeypatch.setattr(addresses, "resolve_host", resolve)


# -- Approve's answer lost by the host ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_approve_whose_answer_was_lost_is_never_offered_again(connect_app, controls, browser):
    """The host relayed Approve's call (the server created the task), then answered the app with an error: the card
    said "The call did not go through" and turned Approve back on, so a second click could pay for a second task.
    It now says it may have run, keeps Approve off, and offers the task list."""
    async with connect_app() as client:  # no forms: Approve passes the card's quote
        asked = await client.call_tool("generate_image", IMAGE)
        async with AppHost(client).running() as host:
            url = host.show("lost", IMAGE, asked) + "&failafter=generate_image"
            card = await in_browser(AppView, browser, url)
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .approve')")
                await in_browser(card.click, ".card .approve")
                status = "document.querySelector('.card [role=status]').textContent"
                await in_browser(card.wait_for, f"{status}.trim() && !{status}.endsWith('…')")  # answered, or not
                said = await in_browser(card.evaluate, status)
                approve_off = await in_browser(card.evaluate, "document.querySelector('.card .approve').disabled")
                await in_browser(card.click, ".card .check-list")
                await in_browser(card.wait_for, "document.querySelector('.card .nested .tile')")
                listed = await in_browser(card.evaluate, "document.querySelector('.card .nested').innerText")
                save_artifact("app-card-answer-lost.png", await in_browser(card.screenshot))
            finally:
                await in_browser(card.close)
    assert "No answer came back" in said and "it may have run" in said and "did not go through" not in said, said
    assert approve_off is True
    assert "1 result" in listed and "nano-banana-2" in listed, listed
    assert len(host.calls("generate_image")) == 1 and len(await controls.creates()) == 1


# -- several outputs a task ---------------------------------------------------------------------------------------


SEVERAL = [
    ({"model": "google/imagen4-fast", "prompt": "a lighthouse", "options": {"num_images": "4"}}, "4 images"),
    (
        {"model": "bytedance/seedream-v4-text-to-image", "prompt": "a lighthouse", "options": {"max_images": 6}},
        "up to 6 images",
    ),
    (
        {"model": "google/imagen4-fast", "prompt": "a lighthouse", "options": {"num_images": "2"}, "variations": 3},
        "6 images (3 variations of 2)",
    ),
]


@pytest.mark.parametrize(("request_", "made"), SEVERAL)
async def test_the_card_and_the_form_count_every_output_a_task_makes(connect_app, request_, made):
    """Imagen with num_images 4, Seedream with max_images 6: the card and the confirmation said "Make 1 image"."""
    seen: list[str] = []
    async with connect_app(elicitation=answering(action="decline", seen=seen)) as client:
        card = (await client.call_tool("estimate_cost", request_)).meta[CARD_KEY]
        await client.call_tool("generate_image", request_)
    assert card["outputs_text"] == made, card
    assert f"to make {made} with" in seen[0], seen


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_the_card_says_how_many_outputs_it_makes(connect_app, browser):
    request = SEVERAL[0][0]
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", request)
        what = await read_in_view(
            client, browser, "outputs", request, estimate, "document.querySelector('.card .what')",
            "document.querySelector('.card .what').textContent",
        )  # fmt: skip
    assert what.startswith("Make 4 images with"), what


# -- a file name that would turn the text around it ---------------------------------------------------------------

TURNED = "summer\u202egpj.exe.png"  # shows as "summergnp.exe.jpg" where the override is obeyed


def small_picture_named(workspace: Path, name: str) -> str:
    """A picture under MIN_LONG_SIDE in references/ (upscaled before upload: its note names it), as a call names it."""
    (workspace / "references").mkdir(exist_ok=True)
    Image.new("RGB", (64, 64), (200, 10, 10)).save(workspace / "references" / name, "PNG")
    return f"references/{name}"


async def test_a_file_name_with_a_direction_override_turns_around_neither_the_form_nor_the_card(connect_app, tmp_path):
    """The audit: a right-to-left override in an input's file name reversed the note saying the picture is
    upscaled, in the confirmation form's message and on the card, and the card's input caption. Each now names the
    file with the override escaped (``\\u202e``), as the form's settings already did."""
    request = {"prompt": "slow zoom", "model": "bytedance/v1-pro-fast-image-to-video"}
    request["images"] = [small_picture_named(tmp_path, TURNED)]
    seen: list[str] = []
    async with connect_app(elicitation=answering(action="decline", seen=seen)) as client:
        card = (await client.call_tool("estimate_cost", request)).meta[CARD_KEY]
        await client.call_tool("generate_video", request)
    [form] = seen
    assert "\u202e" not in form and "summer\\u202egpj.exe.png (64x64 px) is upscaled" in form, form
    shown = [card["inputs"][0]["name"], *card["notes"]]
    assert not any("\u202e" in text for text in shown), shown
    assert card["inputs"][0]["name"] == "summer\\u202egpj.exe.png"
    assert any(note.startswith("summer\\u202egpj.exe.png (64x64 px) is upscaled") for note in card["notes"]), shown


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_file_name_with_a_direction_override_never_turns_the_card_around(
    connect_app, browser, tmp_path
):
    request = {"prompt": "slow zoom", "model": "bytedance/v1-pro-fast-image-to-video"}
    request["images"] = [small_picture_named(tmp_path, TURNED)]
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", request)
        shown = await read_in_view(client, browser, "turned", request, estimate, "document.querySelector('.card li')")
    assert "\u202e" not in shown and "summer\\u202egpj.exe.png (64x64 px) is upscaled" in shown, shown


# -- a full file that cannot be read ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_picture_whose_full_file_is_gone_says_so_when_widened(connect_app, browser, tmp_path):
    """The tile shows the preview the result carried; the file itself was deleted since. Widening it failed
    silently: the tile just sat there."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        (tmp_path / made.structured_content["tasks"][0]["files"][0]).unlink()
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("gone", IMAGE, made))
            try:
                await in_browser(view.wait_for, "(i => i && i.src)(document.querySelector('.media > img'))")
                await in_browser(view.click, ".media > img")
                await in_browser(view.wait_for, "document.querySelector('.media .load-error')")
                said = await in_browser(view.evaluate, "document.querySelector('.media .load-error').textContent")
                preview_kept = await in_browser(view.evaluate, "!!document.querySelector('.media > img').src")
            finally:
                await in_browser(view.close)
    assert said.startswith("Could not load: "), said
    assert preview_kept  # the preview stays; the note says why the full picture is not there


async def test_a_saved_result_deleted_since_is_said_to_be_gone(connect_app, tmp_path):
    """The audit: a result deleted from the workspace was still listed as "Saved in the workspace". The answer now
    marks it ``missing`` and says so, for the agent and the gallery."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        path = made.structured_content["tasks"][0]["files"][0]
        (tmp_path / path).unlink()
        listed = await client.call_tool("list_tasks", {})
    [gone] = [file for file in listed.structured_content["saved_files"] if file["path"] == path]
    assert gone["missing"] is True and gone["changed"] is False
    assert "deleted or moved since it was saved" in text_of(listed)


async def test_a_folder_in_a_saved_results_place_is_said_to_be_there_and_the_result_saved_again_once_moved(
    connect_app, tmp_path
):
    """The review: a folder (or a FIFO) at a saved result's path was marked ``missing`` with "check_task saves it
    again", which a folder there prevents. It is said to be in its place, and once it is moved away check_task saves
    the result again, as said."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task_id = made.structured_content["tasks"][0]["task_id"]
        path = made.structured_content["tasks"][0]["files"][0]
        (tmp_path / path).unlink()
        (tmp_path / path).mkdir()
        blocked = await client.call_tool("check_task", {"task_id": task_id})
        (tmp_path / path).rmdir()
        again = await client.call_tool("check_task", {"task_id": task_id})
    [there] = [file for file in blocked.structured_content["saved_files"] if file["path"] == path]
    assert there["missing"] is True
    assert "something that is not a file (a folder, a FIFO) is in its place" in text_of(blocked), text_of(blocked)
    assert "once no folder is at that path" in text_of(blocked)
    [saved] = [file for file in again.structured_content["saved_files"] if file["path"] == path]
    assert (tmp_path / path).is_file() and not saved["missing"], text_of(again)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_saved_result_deleted_since_offers_nothing_to_open(connect_app, browser, tmp_path):
    """Its tile said "No preview; click to load the full file" and "Saved in the workspace", and offered a video
    from it; it now says the file is gone, and offers neither."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        (tmp_path / made.structured_content["tasks"][0]["files"][0]).unlink()
        listed = await client.call_tool("list_tasks", {})
        tile = await read_in_view(
            client, browser, "deleted", {}, listed, "document.querySelector('.tile .gone')",
            "document.querySelector('.tile').innerText",
        )  # fmt: skip
    assert "The saved file is gone" in tile and "Was saved in the workspace (gone now)" in tile, tile
    assert "click to load" not in tile and "Make a video from this still" not in tile, tile


# -- a result the app cannot draw ---------------------------------------------------------------------------------


UNDRAWABLE = {
    "card-without-model": {"content": [], "_meta": {CARD_KEY: {"credits": 1, "price_known": True}}},
    "task-without-state": {"content": [], "structuredContent": {"task": {"task_id": "t1", "model": "m"}}},
    "files-not-a-list": {
        "content": [],
        "structuredContent": {"task": {"task_id": "t1", "model": "m", "state": "succeeded", "files": "outputs/a.png"}},
    },
}


@pytest.mark.parametrize("mode", ["legacy"])
@pytest.mark.parametrize("shape", list(UNDRAWABLE))
async def test_in_a_browser_a_result_the_app_cannot_draw_says_so(connect_app, browser, shape):
    """A result of a shape the app does not know threw inside the app and left what was there before on screen
    ("Working on it…", or the previous card with its Approve)."""
    shown = await _raw_answer_shown(connect_app, browser, shape, UNDRAWABLE[shape], ".notice.error")
    assert "could not draw this answer" in shown and "Working on it" not in shown, shown


@pytest.mark.parametrize("mode", ["legacy"])
@pytest.mark.parametrize("answer", [None, {}], ids=["params-null", "empty"])
async def test_in_a_browser_an_empty_answer_says_so_and_never_reads_as_done(connect_app, browser, answer):
    """The audit: a tool-result whose params were null, or an empty answer, replaced the view with "Done."."""
    shown = await _raw_answer_shown(connect_app, browser, "empty", answer, ".notice")
    assert "kie-mcp got an empty answer" in shown and "Done." not in shown, shown


async def _raw_answer_shown(connect_app, browser, name: str, answer: Any, selector: str) -> str:
    """The view's text once it drew ``answer`` (a tool result as the host sends it, whatever its shape) and
    ``selector`` appeared."""
    async with connect_app() as client, AppHost(client).running() as host:
        view = await in_browser(AppView, browser, host.show_raw(name, IMAGE, answer))
        try:
            await in_browser(view.wait_for, f"document.querySelector('{selector}')")
            return await in_browser(view.text)
        finally:
            await in_browser(view.close)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_approve_answered_empty_is_never_offered_again(connect_app, controls, browser):
    """An Approve the host answered with an empty result (the server may have created and charged the task): as an
    answer that never came, never "Done.", with Approve kept off and the task list offered."""
    async with connect_app() as client:  # no forms: Approve passes the card's quote
        asked = await client.call_tool("generate_image", IMAGE)
        async with AppHost(client).running() as host:
            card = await in_browser(
                AppView, browser, host.show("empty-approve", IMAGE, asked) + "&emptyafter=generate_image"
            )
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .approve')")
                await in_browser(card.click, ".card .approve")
                await in_browser(card.wait_for, "document.querySelector('.card .unanswered')")
                said = await in_browser(card.evaluate, "document.querySelector('.card [role=status]').textContent")
                approve_off = await in_browser(card.evaluate, "document.querySelector('.card .approve').disabled")
            finally:
                await in_browser(card.close)
    assert "the answer was empty" in said and "it may have run" in said, said
    assert approve_off is True and len(await controls.creates()) == 1


# -- a quote seen after it expired --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_card_shown_after_its_quote_expired_says_so(connect_app, browser):
    async with connect_app(quote_ttl_seconds=1) as client:
        asked = await client.call_tool("generate_image", IMAGE)
        await anyio.sleep(2.1)  # expires_at is to the second: the card calls it expired a second after it
        validity = await read_in_view(
            client, browser, "expired", IMAGE, asked, "document.querySelector('.card .validity')",
            "document.querySelector('.card .validity').textContent",
        )  # fmt: skip
    assert validity.startswith("expired at "), validity


EXPIRED_CARD = """(() => {
  const card = document.querySelector('.card'), cost = getComputedStyle(card.querySelector('.cost'));
  return {approve: card.querySelector('.approve').textContent, opacity: Number(cost.opacity),
          how: card.querySelector('.how').textContent};
})()"""


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_an_expired_card_offers_a_new_price_never_approve(connect_app, controls, browser):
    """The audit: once its quote expired, the card still read "Approve 8 credits" in full colour. Approve is now
    "Get a new price", the figures are greyed, and pressing it brings a new card, with nothing asked or spent."""
    seen: list[str] = []
    async with connect_app(elicitation=answering(seen=seen), quote_ttl_seconds=2) as client:
        estimate = await client.call_tool("estimate_cost", IMAGE)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("expiring", IMAGE, estimate))
            try:
                await in_browser(view.wait_for, "document.querySelector('.card .approve')")
                live = await in_browser(view.evaluate, EXPIRED_CARD)
                await in_browser(view.wait_for, "document.querySelector('.card .validity.expired')", 10)
                expired = await in_browser(view.evaluate, EXPIRED_CARD)
                save_artifact("app-card-expired.png", await in_browser(view.screenshot))
                await in_browser(view.click, ".card .approve")
                await in_browser(view.wait_for, new_card(estimate.meta[CARD_KEY]))
                again = await in_browser(view.evaluate, "document.querySelector('.card').innerText")
            finally:
                await in_browser(view.close)
    assert live["approve"] == "Approve 8 credits" and live["opacity"] == 1, live
    assert expired["approve"] == "Get a new price" and expired["opacity"] < 0.6, expired
    assert "nothing is spent" in expired["how"], expired
    assert "Approve 8 credits" in again, again  # a new card, with a live price
    assert host.calls("generate_image") == [] and len(host.calls("estimate_cost")) == 1
    assert seen == [] and await controls.creates() == []


def new_card(old: dict[str, Any]) -> str:
    """A JS condition: the card drawn anew after "Get a new price" (another quote than ``old``'s) is on screen."""
    return (
        f"(c => c && !c.querySelector('.mono').textContent.includes({old['quote_id']!r})"
        " && c.querySelector('.approve').textContent.startsWith('Approve'))(document.querySelector('.card'))"
    )


async def _new_price_asked(client: Any, browser: Any, name: str, estimate: Any) -> AppHost:
    """Show ``estimate``'s card, wait until it reads expired, press "Get a new price" and wait for the new card;
    return the host, which recorded every call the view made."""
    async with AppHost(client).running() as host:
        view = await in_browser(AppView, browser, host.show(name, IMAGE, estimate))
        try:
            await in_browser(view.wait_for, "document.querySelector('.card .validity.expired')", 10)
            await in_browser(view.click, ".card .approve")
            await in_browser(view.wait_for, new_card(estimate.meta[CARD_KEY]), 15)
        finally:
            await in_browser(view.close)
    return host


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_get_a_new_price_never_spends_even_under_auto_approve(connect_app, controls, browser):
    """The review: "Get a new price" on an expired card sent the spending call with the card's quote; on a host
    without forms under KIE_AUTO_APPROVE_CREDITS=10, the server took the expired quote as no quote, auto-approved
    the request and created it. The button now only prices the request again (estimate_cost, free)."""
    async with connect_app(auto_approve_credits=10, quote_ttl_seconds=1) as client:
        estimate = await client.call_tool("estimate_cost", IMAGE)
        assert estimate.meta[CARD_KEY]["confirm"] == "quote"
        await anyio.sleep(2.2)  # expired for the server too
        host = await _new_price_asked(client, browser, "expired-auto", estimate)
    assert host.calls("generate_image") == [] and host.calls("estimate_cost") == [IMAGE]
    assert await controls.creates() == []


@pytest.mark.parametrize("mode", ["legacy"])
@pytest.mark.parametrize("confirm", ["form", "quote"])
async def test_in_a_browser_get_a_new_price_never_spends_when_the_browser_clock_is_ahead(
    connect_app, controls, browser, confirm
):
    """The review: with the browser's clock ahead of the server's (a remote server), the card read "Get a new
    price" on a quote the server still honoured, and the button sent it: approved, and created (auto-approved
    under the form's limit, or bought with the card's quote on a host without forms)."""
    elicitation = answering() if confirm == "form" else None
    async with connect_app(elicitation, auto_approve_credits=10 if confirm == "form" else 0) as client:
        estimate = await client.call_tool("estimate_cost", IMAGE)
        card = estimate.meta[CARD_KEY]
        assert card["confirm"] == confirm
        ahead = datetime.now(UTC) - timedelta(minutes=2)  # the card reads its quote as expired two minutes ago
        card["expires_at"] = ahead.strftime("%Y-%m-%dT%H:%M:%SZ")
        host = await _new_price_asked(client, browser, "clock-ahead", estimate)
    assert host.calls("generate_image") == [] and host.calls("estimate_cost") == [IMAGE]
    assert await controls.creates() == []


# -- a prompt longer than its box -------------------------------------------------------------------------------

PADDED = "A calm beach at sunset, soft light." + "\n" * 30 + "Also put a large Acme Corp logo across the sky."
LONG = "\n".join(f"Line {n}: the camera drifts a little further along the shore." for n in range(1, 31))
TAIL_SEEN = """(() => {
  const box = document.querySelector('.card blockquote'), text = box.firstChild;
  const at = text.textContent.indexOf(TAIL), range = document.createRange();
  range.setStart(text, at); range.setEnd(text, at + TAIL.length);
  const r = range.getBoundingClientRect(), b = box.getBoundingClientRect();
  return at >= 0 && r.top >= b.top && r.bottom <= b.bottom + 1;
})()"""


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_the_card_never_hides_the_end_of_the_prompt_it_sends(connect_app, browser):
    """The audit: a prompt padded with blank lines showed its harmless start in the card's box (9 lines high) and
    kept the rest out of sight, with nothing saying there was more. Runs of blank lines now show as one, and a box
    holding more than it shows offers "Show all (N lines, M characters)"."""
    async with connect_app() as client:
        padded = await client.call_tool("estimate_cost", {**IMAGE, "prompt": PADDED})
        long = await client.call_tool("estimate_cost", {**IMAGE, "prompt": LONG})
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("padded", IMAGE, padded))
            try:
                await in_browser(view.wait_for, "document.querySelector('.card blockquote')")
                padded_tail = await in_browser(view.evaluate, TAIL_SEEN.replace("TAIL", '"Acme Corp logo"'))
                padded_text = await in_browser(view.evaluate, "document.querySelector('.card .prompt-box').innerText")
            finally:
                await in_browser(view.close)
            view = await in_browser(AppView, browser, host.show("long", IMAGE, long))
            try:
                await in_browser(view.wait_for, "document.querySelector('.card blockquote')")
                last = TAIL_SEEN.replace("TAIL", '"Line 30:"')
                hidden_before = await in_browser(view.evaluate, last)
                await in_browser(view.click, ".card .show-all")
                offered = await in_browser(view.evaluate, "document.querySelector('.card .show-all').dataset.label")
                shown_after = await in_browser(view.evaluate, last)
                save_artifact("app-card-long-prompt.png", await in_browser(view.screenshot))
            finally:
                await in_browser(view.close)
    assert padded_tail is True, padded_text
    assert "blank lines are shown as one" in padded_text, padded_text
    assert hidden_before is False and shown_after is True
    assert offered == f"Show all (30 lines, {len(LONG):,} characters)", offered


SHOWN_ALL = "!document.querySelector('.card .show-all').hidden"  # "Show all" is offered
# About four lines on a card 720 px wide (its box holds six), many more at 200 px.
MIDDLING = "A serum bottle on marble in soft window light, a sprig of rosemary beside it. " * 4 + "Warm tones."


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_show_all_is_offered_for_a_card_drawn_hidden_or_made_narrower(connect_app, browser):
    """The audit: whether the prompt's box holds more than it shows was measured once, as the card was drawn. A card
    drawn while the view was hidden (a collapsed panel, a background tab) measured nothing and never offered "Show
    all" for a prompt of thirty lines; nor did a card whose view was made narrower later. It is measured again
    whenever the view's size changes."""
    async with connect_app() as client:
        long = await client.call_tool("estimate_cost", {**IMAGE, "prompt": LONG})
        middling = await client.call_tool("estimate_cost", {**IMAGE, "prompt": MIDDLING})
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("hidden", IMAGE, long) + "&hidden")
            try:
                await in_browser(view.wait_for, "document.querySelector('.card blockquote')")
                await in_browser(view.page.evaluate, "reveal()")
                await in_browser(view.wait_for, SHOWN_ALL, 5)
            finally:
                await in_browser(view.close)
            view = await in_browser(AppView, browser, host.show("narrowed", IMAGE, middling))
            try:
                await in_browser(view.wait_for, "document.querySelector('.card blockquote')")
                offered_wide = await in_browser(view.evaluate, SHOWN_ALL)
                await in_browser(view.page.evaluate, "document.querySelector('.frame').style.width = '200px'")
                await in_browser(view.wait_for, SHOWN_ALL, 5)
                await in_browser(view.click, ".card .show-all")
                seen_whole = await in_browser(view.evaluate, TAIL_SEEN.replace("TAIL", '"Warm tones."'))
            finally:
                await in_browser(view.close)
    assert offered_wide is False  # it all shows at 720 px: nothing to offer
    assert seen_whole is True


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_tall_picture_sizes_the_view_once_never_in_a_loop(connect_app, browser):
    """The audit: a portrait picture was capped at 70% of the view's own height (``70vh``), and the host sizes the
    view to what it holds, so each size it reported let the picture grow again: 18 notifications for one picture.
    The cap is now in pixels (from the host's most height), and the view settles at once."""
    call = {"prompt": "A tall poster of a lighthouse", "model": "nano-banana-2", "aspect_ratio": "9:16"}
    async with connect_app(elicitation=answering()) as client, AppHost(client).running() as host:
        made = await client.call_tool("generate_image", call)
        view = await in_browser(AppView, browser, host.show("tall", call, made))
        try:
            await in_browser(view.wait_for, "document.querySelector('.tile img')?.naturalHeight > 0")
            await anyio.sleep(2)  # what it would have reported by now, one frame after another
            drawn = await in_browser(view.evaluate, "document.querySelector('.tile img').clientHeight")
        finally:
            await in_browser(view.close)
    heights = [event["height"] for event in host.sent("ui/notifications/size-changed")]
    assert len(heights) <= 4, heights
    assert drawn == 720, drawn  # capped at 720 px (the host's most height, 6000 px, allows more)


# -- how the view reads: the system's theme, a narrow view, the keyboard's focus, a screen reader ---------------


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_host_naming_no_theme_gets_the_system_s_dark_view(connect_app, browser):
    """The audit: a host that names no theme, on a dark system, got a white card (the view declared itself light)."""
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", IMAGE)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("system-dark", IMAGE, estimate) + "&theme=none")
            try:
                await in_browser(view.wait_for, "document.querySelector('.card .approve')")
                dark = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
                await in_browser(view.browser.send, "Emulation.setEmulatedMedia", dark, view.frame)
                dark_bg = "getComputedStyle(document.body).backgroundColor === 'rgb(28, 28, 33)'"
                await in_browser(view.wait_for, dark_bg, 5)
                theme = await in_browser(view.evaluate, "document.documentElement.dataset.theme")
            finally:
                await in_browser(view.close)
    assert theme == "dark"


# What runs off the view to the right: its width past the view's, and the elements of the card reaching there.
RUNS_OFF = """(() => {
  const width = document.documentElement.clientWidth;
  const past = [...document.querySelectorAll('.card *')]
    .filter((e) => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible');
  return [document.documentElement.scrollWidth - width, past.map((e) => e.className || e.tagName)];
})()"""
SIGNED = "https://cdn.example.com/assets/" + "a1b2c3d4" * 40 + "/bottle.png?X-Amz-Signature=" + "f" * 200


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_nothing_runs_off_the_card_in_a_view_320_px_wide(connect_app, browser):
    """The audit: in a view 320 px wide, the card's lines with long words (the price's breakdown of a still-to-video
    request, a signed link) ran off its right edge, out of sight; every line now breaks inside the card."""
    request = {"prompt": "The bottle turns slowly", "model": "veo3_fast", "images": [SIGNED]}
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", request)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("narrow", request, estimate))
            try:
                await in_browser(view.page.evaluate, "document.querySelector('.frame').style.width = '320px'")
                await in_browser(view.wait_for, "document.querySelector('.card .approve')")
                await in_browser(view.wait_for, "document.documentElement.clientWidth <= 320")
                beyond, elements = await in_browser(view.evaluate, RUNS_OFF)
            finally:
                await in_browser(view.close)
    assert beyond <= 0 and elements == [], (beyond, elements)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_focused_result_picture_shows_its_whole_focus_ring(connect_app, browser):
    """The audit: the focus ring of a picture (reached with Tab) was drawn outside it, where its tile clips it."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        ring = await read_in_view(
            client, browser, "ring", IMAGE, made, "document.querySelector('.media img')",
            "(i => (i.focus(), [i.matches(':focus-visible'), getComputedStyle(i).outlineStyle,"
            " getComputedStyle(i).outlineOffset]))(document.querySelector('.media img'))",
        )  # fmt: skip
    assert ring == [True, "solid", "-2px"], ring


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_approve_and_decline_are_read_out_and_keep_the_focus_on_the_card(
    connect_app, controls, browser
):
    """The audit: what Approve and Decline came to was shown but not read out, and the focus was left nowhere (the
    pressed button was gone). Each outcome is said in the page's live region, and the focus stays on what replaced
    the button: the card, or the answer drawn in its place."""
    async with connect_app() as client:  # no forms: Approve spends the quote
        asked = {
            "decline": await client.call_tool("generate_image", IMAGE),
            "approve": await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear"}),
        }
        async with AppHost(client).running() as host:
            outcome = {}
            for button, result in asked.items():
                view = await in_browser(AppView, browser, host.show(button, IMAGE, result))
                try:
                    await in_browser(view.wait_for, f"document.querySelector('.card .{button}')")
                    await in_browser(view.click, f".card .{button}")
                    await in_browser(view.wait_for, "document.getElementById('announce').textContent")
                    outcome[button] = await in_browser(
                        view.evaluate,
                        "[document.getElementById('announce').textContent, document.activeElement.className]",
                    )
                finally:
                    await in_browser(view.close)
    assert outcome["decline"][0].startswith("Declined: nothing was spent"), outcome
    assert outcome["decline"][1] == "card", outcome
    assert outcome["approve"][0].startswith("Approve: "), outcome
    assert outcome["approve"][1] == "gallery", outcome


# -- a price KIE was seen to exceed ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_the_card_weighs_the_figure_the_caps_count_not_the_list_price(connect_app, browser):
    """The review: veo3_lite is listed at 30 and counted at 60 (KIE was seen charging that); the card promised "no
    further question" under a 50-credit auto-approve limit (a form was then asked) and its cap bar showed 30. Its
    headline and button then read "30 credits" while the form asked for "up to 60": they ask for the 60 now."""
    lite = {"model": "veo3_lite", "prompt": "A woman talks to her phone camera.", "aspect_ratio": "9:16"}
    async with connect_app(elicitation=answering(), auto_approve_credits=50, max_credits_per_day=100) as client:
        estimate = await client.call_tool("estimate_cost", lite)
        shown = await read_in_view(client, browser, "lite", lite, estimate, "document.querySelector('.card .approve')")
    assert estimate.structured_content["auto_approved"] is False
    assert "Approve up to 60 credits" in shown and "up to 60 credits\nabout $0.30" in shown, shown  # as the form asks
    assert "Approve 30 credits" not in shown, shown
    assert "this request 60" in shown and "40 left after this" in shown, shown
    assert "within your auto-approve limit" not in shown, shown


# -- a call cut off, a failed task, a damaged result, where a result was saved ------------------------------------

VIDEO = {"model": "veo3_fast", "prompt": "Waves rolling in at dusk", "wait_seconds": 30}  # 60 credits
CANCELLED = "document.querySelector('.notice')"


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_generation_cut_off_after_its_create_says_it_may_be_charged_and_offers_the_task_list(
    connect_app, controls, browser
):
    """The audit: the host cut off a generate_video call after KIE had created its task (list_tasks then showed it
    running, 60 credits quoted), and the view said only "The call was cancelled: user": the person thought nothing
    had happened and could pay twice. A call that makes something now says the task may have been made and
    charged, and offers the task list, named by the host or not; any other call is simply cancelled."""
    await controls.post("clock/speed", {"speed": 0})  # the video never ends: the call waits on it until cut off
    async with connect_app(elicitation=answering()) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "generate_video", VIDEO)
            with anyio.fail_after(10):
                while not await controls.creates():  # noqa: ASYNC110 - KIE's side, polled: KIE made the task
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)
            group.cancel_scope.cancel()  # the person pressed Stop
        listed = await client.call_tool("list_tasks", {})
        [task] = listed.structured_content["tasks"]
        said: dict[str, str] = {}
        async with AppHost(client).running() as host:
            for tool in ("generate_video", "", "check_task"):
                query = "&cancel=user" + (f"&tool={tool}" if tool else "")
                view = await in_browser(AppView, browser, host.show(f"cut-{tool}", VIDEO, listed) + query)
                try:
                    await in_browser(view.wait_for, CANCELLED)
                    said[tool] = await in_browser(view.text)
                    if tool == "generate_video":
                        await in_browser(view.click, ".check-list")
                        listed_tile = f"document.querySelector('.tile[data-task=\"{task['task_id']}\"]')"
                        await in_browser(view.wait_for, listed_tile)
                        said["listed"] = await in_browser(view.text)
                        save_artifact("app-call-cut-off.png", await in_browser(view.screenshot))
                finally:
                    await in_browser(view.close)
    assert task["state"] in {"queued", "running"} and task["credits_quoted"] == 60, task  # made, and charged for
    for tool in ("generate_video", ""):
        assert "The call was cancelled (user)." in said[tool], said[tool]
        assert "may have been made and charged" in said[tool] and "Check the task list" in said[tool], said[tool]
    assert said[""].count("generate_video") == 1, said[""]  # the host named no tool: the view says which it means
    assert said["check_task"].strip() == "The call was cancelled (user).", said["check_task"]
    assert task["task_id"] in said["listed"] and "quoted 60" in said["listed"], said["listed"]
    assert host.calls("list_tasks") == [{"limit": 10}] and len(await controls.creates()) == 1


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_failed_task_reads_not_charged_never_its_quote(connect_app, controls, browser):
    """The audit: a failed task's tile read "Credits: quoted 60", while list_tasks said "(refunded)" and
    check_credits had spent nothing. It now says what list_tasks says: not charged (refunded)."""
    await controls.fault("create", kind="task_fail", fail_code="500", fail_msg="Internal error")
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
        listed = await client.call_tool("list_tasks", {})
        credits = await client.call_tool("check_credits", {})
        tiles = {}
        for name, result in (("checked", checked), ("listed", listed)):
            tiles[name] = await read_in_view(
                client, browser, name, {}, result, "document.querySelector('.tile .body')",
                "document.querySelector('.tile .body').innerText",
            )  # fmt: skip
    assert checked.structured_content["task"]["state"] == "failed"
    said = text_of(listed)
    assert "(not counted: KIE refunds failed tasks" in said and "Spent today through kie-mcp: 0 credits." in text_of(
        credits
    )
    for name, tile in tiles.items():
        assert "Credits: not counted (KIE refunds failed tasks" in tile and "quoted" not in tile, (name, tile)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_failed_task_s_unreadable_charge_reads_as_list_tasks_says_it(
    connect_app, controls, browser
):
    """KIE reports 5000 for a failed 8-credit image: its 8 reserved stay counted for the day, and list_tasks says
    so, but its tile read "Credits: not charged (refunded)"."""
    await controls.fault("create", kind="task_fail", fail_msg="boom", credits_consumed=5000)
    image = {"prompt": "a red apple", "model": "nano-banana-2"}  # 8 credits
    async with connect_app(elicitation=answering(), auto_approve_credits=10) as client:
        made = await client.call_tool("generate_image", {**image, "wait_seconds": 5})
        task_id = made.structured_content["tasks"][0]["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 0})
        listed = await client.call_tool("list_tasks", {})
        tiles = {}
        for name, result in (("made", made), ("checked", checked), ("listed", listed)):
            tiles[name] = await read_in_view(
                client, browser, name, {}, result, "document.querySelector('.tile .body')",
                "document.querySelector('.tile .body').innerText",
            )  # fmt: skip
    said = "KIE's charge for this task could not be read; the 8 credits reserved stay counted as spent"
    assert f"({said})" in text_of(listed), text_of(listed)
    for name, tile in tiles.items():
        assert f"Credits: {said}" in tile and "refunded" not in tile, (name, tile)


DAMAGED = "document.querySelector('.tile .body .damaged')"


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_damaged_result_says_so_on_its_tile_and_offers_no_video_from_it(
    connect_app, controls, browser
):
    """The audit: a picture KIE stored cut short (the server keeps it and says so) showed as a plain success, with
    the offer "Make a video from this still" that pricing then refused; what the server said was the head's fourth
    line, under its three-line clamp, and the task list said nothing. The tile now says it, and offers no video."""
    await controls.fault("files", kind="damaged", after_bytes=3000, times=2)  # the retry gets no better copy
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        listed = await client.call_tool("list_tasks", {})
        read = "[document.querySelector('.tile .body').innerText, document.querySelectorAll('.tile .damaged').length]"
        tiles = {}
        for name, result in (("made", made), ("listed", listed)):
            tiles[name] = await read_in_view(client, browser, name, IMAGE, result, DAMAGED, read)
    [saved] = made.structured_content["saved_files"]
    assert saved["damaged"] and listed.structured_content["saved_files"][0]["damaged"] == saved["damaged"]
    for name, (tile, lines) in tiles.items():
        assert lines == 1, (name, tile)
        assert f"Saved, but it does not open as an image ({saved['damaged']})" in tile, (name, tile)
        assert "kie.ai/logs" in tile and "Make a video from this still" not in tile, (name, tile)


SAVED_PATH = """(() => {
  const path = document.querySelector('.tile .saved .path');
  const box = path.getClientRects()[0];  // its first line (a long path wraps)
  const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
  return {text: path.textContent, select: getComputedStyle(path).userSelect, seen: !!hit && path.contains(hit),
          head: document.querySelector('.gallery-head .message').textContent};
})()"""


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_each_tile_says_where_its_result_was_saved(connect_app, browser, sim):
    """The audit: the app never showed where a result was saved: "Saved on this computer" was past the head's
    three-line clamp, whose lines held a warning that the quoted price was old, noise once KIE's charge is known.
    Each file's tile now names its path in the workspace, selectable whole, and the head leaves that warning out
    once the charge is recorded."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    call = {**IMAGE, "session": "Spring Launch"}
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", call)
        task = made.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
        shown = {}
        async with AppHost(client).running() as host:
            for name, result in (("made", made), ("checked", checked)):
                view = await in_browser(AppView, browser, host.show(name, call, result))
                try:
                    await in_browser(view.wait_for, "document.querySelector('.tile .media img')")
                    await in_browser(view.box, ".tile .saved .path")  # drawn, the frame sized to it
                    shown[name] = await in_browser(view.evaluate, SAVED_PATH)
                    save_artifact(f"app-saved-where-{name}.png", await in_browser(view.screenshot))
                finally:
                    await in_browser(view.close)
    [path] = task["files"]
    assert path.startswith("outputs/") and "-spring-launch/" in path, path
    for name, seen in shown.items():
        assert seen["text"] == path and seen["select"] == "all" and seen["seen"] is True, (name, seen)
    assert task["credits_charged"] == 8
    message = made.structured_content["message"]
    assert shown["made"]["head"] == "\n".join(
        line for line in message.split("\n") if not line.startswith("Warning: this price is ")
    )
    assert "Warning: this price is " not in shown["made"]["head"], shown["made"]["head"]


async def test_a_generation_s_gallery_head_leaves_out_the_old_price_warning_once_kie_s_charge_is_in(connect_app, sim):
    """The head (three lines) of a generation's gallery: the warning that the quoted price is old is left out once
    KIE's charge for every task is recorded, and kept while a task runs; every other line stays, and the answer's
    own message (what the model reads) is unchanged."""
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
    async with connect_app(elicitation=answering()) as client:
        done = await client.call_tool("generate_image", IMAGE)
        running = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
    message = done.structured_content["message"]
    assert message in text_of(done)  # what the model reads keeps every line
    kept = [line for line in message.split("\n") if not line.startswith("Warning: this price is ")]
    assert done.structured_content["tasks"][0]["credits_charged"] == 8
    assert done.meta[GALLERY_KEY]["head"] == "\n".join(kept), done.meta[GALLERY_KEY]["head"]
    assert kept[0] == "Done: 1 image from Nano Banana 2." and kept[1].startswith("Cost: 8 credits charged")
    assert running.structured_content["tasks"][0]["state"] != "succeeded"
    assert running.meta[GALLERY_KEY]["head"] == running.structured_content["message"]


def test_the_head_leaves_out_the_old_price_warning_only_once_every_task_s_cost_is_known():
    """Whatever the catalogue's age today: the warning goes once each task has KIE's charge or failed (refunded);
    a task still running, or a create whose outcome is unknown (no task id, maybe charged), keeps it."""
    from kie_mcp.apps import head_text
    from kie_mcp.generation import OLD_PRICE_ASKED

    message = (
        f"Done: 2 images.\nCost: 16 credits.\nWarning: this price is from 2026-01-01 (300 days ago).\n{OLD_PRICE_ASKED}"
        "\n1. a"
    )
    without = "Done: 2 images.\nCost: 16 credits.\n1. a"

    def task(task_id: str | None, state: str, charged: float | None = None) -> TaskRecord:
        return TaskRecord(task_id=task_id, model="m", family="market", state=state, credits_charged=charged)

    assert head_text(message, [task("a", "succeeded", 8), task("b", "failed")]) == without
    assert head_text(message, [task("a", "succeeded", 8), task("b", "running")]) == message
    assert head_text(message, [task("a", "succeeded", 8), task(None, "unknown")]) == message
    assert head_text(message, [task("a", "succeeded")]) == message  # KIE's charge not known yet
    assert head_text(message, []) == message
