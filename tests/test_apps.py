"""Issue 12, parts 1-3: look, don't read. The results gallery and the approval card for MCP Apps hosts, the same
results as before for every other host, and previews large enough to judge a still.

Protocol tests drive the server through the SDK client, as a host that declares the MCP Apps extension and as one
that does not. Browser tests load the app in headless Chromium inside a minimal MCP Apps host (``app_host.html`` and
``app_host.py``) that relays the app's calls to the real server, and assert what a person sees; screenshots go to
``tests/artifacts/`` and the card's to ``docs/approval-card.png``. They skip when Chromium is not installed.
"""

from __future__ import annotations

import base64
import io
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import ElicitResult
from PIL import Image

from kie_mcp.apps import APP_URI, CARD_KEY, GALLERY_KEY
from kie_mcp.config import Settings
from kie_mcp.media.downloads import poster_path, thumbnail_path
from kie_mcp.media.stitch import StitchError, find_ffmpeg

from .app_host import AppHost, AppView
from .browser import save_artifact, spread
from .conftest import answering, every_resource, not_found_code, refusing_forms, text_of

IMAGE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits
VIDEO = {"prompt": "Waves rolling in at dusk, slow dolly forward", "model": "veo3_fast"}  # 60 credits
BOUND_TOOLS = {"estimate_cost", "generate_image", "generate_video", "check_task", "list_tasks"}
HOSTILE = "Neon sign <img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script> & more"
DOCS = Path(__file__).parent.parent / "docs"


def has_ffmpeg() -> bool:
    try:
        find_ffmpeg()
    except StitchError:
        return False
    return True


@pytest.fixture
def connect_app(connect: Callable[..., Any]) -> Callable[..., Any]:
    """``async with connect_app(**overrides) as client``: a client that declares the MCP Apps extension."""
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    return lambda elicitation=None, **overrides: connect(elicitation, extensions=[apps], **overrides)


def still(workspace: Path, name: str = "still.png") -> str:
    """A picture in the workspace's references/, as a generate call names it."""
    folder = workspace / "references"
    folder.mkdir(exist_ok=True)
    picture = Image.new("RGB", (320, 200), (30, 90, 160))
    for x in range(0, 320, 40):
        picture.paste((230, 180, 40), (x, 0, x + 20, 200))
    picture.save(folder / name)
    return f"references/{name}"


def card_of(result: Any) -> dict[str, Any]:
    assert result.meta and CARD_KEY in result.meta, text_of(result)
    return result.meta[CARD_KEY]


def ours(meta: dict[str, Any] | None) -> set[str]:
    """The _meta keys kie-mcp adds for the app."""
    return set(meta or {}) & {CARD_KEY, GALLERY_KEY}


# -- the extension, advertised and bound -------------------------------------------------------------------------


async def test_an_apps_host_finds_the_app_and_the_tools_that_show_it(connect_app):
    async with connect_app() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        resources = {str(r.uri): r for r in await every_resource(client)}
        read = await client.read_resource(APP_URI)
    bound = {name for name, tool in tools.items() if (tool.meta or {}).get("ui", {}).get("resourceUri") == APP_URI}
    assert bound >= BOUND_TOOLS  # (and continue_video, whose results are generations too)
    assert not bound & {"check_credits", "list_models", "upload_file", "stitch_videos"}  # no result to show
    assert resources[APP_URI].mime_type == APP_MIME_TYPE
    content = read.contents[0]
    assert content.mime_type == APP_MIME_TYPE
    assert content.text.lstrip().lower().startswith("<!doctype html>")
    assert content.meta["ui"]["csp"] == {}  # no origin declared: the host's restrictive default CSP applies
    assert "http://" not in content.text and "https://" not in content.text  # nothing from the network, no CDN


async def test_a_host_without_apps_gets_the_results_it_always_got(connect, connect_app, controls):
    async with connect(elicitation=answering()) as plain, connect_app(elicitation=answering()) as app:
        before = {
            "estimate": await plain.call_tool("estimate_cost", IMAGE),
            "image": await plain.call_tool("generate_image", IMAGE),
        }
        task_id = before["image"].structured_content["tasks"][0]["task_id"]
        before["check"] = await plain.call_tool("check_task", {"task_id": task_id})
        before["list"] = await plain.call_tool("list_tasks", {})
        with_app = {
            "estimate": await app.call_tool("estimate_cost", IMAGE),
            "image": await app.call_tool("generate_image", IMAGE),
            "check": await app.call_tool("check_task", {"task_id": task_id}),
            "list": await app.call_tool("list_tasks", {}),
        }
    async with connect() as no_forms:  # no forms either: the quote comes back to be approved in the chat
        asked = await no_forms.call_tool("generate_image", {**IMAGE, "prompt": "a green pear"})
    assert asked.structured_content["status"] == "confirmation_required"
    assert not ours(asked.meta)
    for name, result in before.items():
        assert not ours(result.meta), name  # nothing for an app the host cannot show
        # the same blocks, in the same order, as an apps host gets: text, then each saved file's link and preview
        assert [b.type for b in result.content] == [b.type for b in with_app[name].content], name
        assert set(result.structured_content) == set(with_app[name].structured_content), name
    assert [b.type for b in before["image"].content] == ["text", "resource_link", "image"]
    assert ours(with_app["estimate"].meta) == {CARD_KEY} and ours(with_app["list"].meta) == {GALLERY_KEY}
    assert len(await controls.creates()) == 2


# -- the approval card -----------------------------------------------------------------------------------------


async def test_the_card_shows_cost_caps_model_settings_and_input_pictures(connect_app, tmp_path):
    picture = still(tmp_path)
    request = {**VIDEO, "images": [picture], "aspect_ratio": "16:9"}
    async with connect_app(elicitation=answering(), max_credits_per_day=400) as client:
        await client.call_tool("generate_image", IMAGE)  # 8 credits spent today
        estimate = await client.call_tool("estimate_cost", request)
    card = card_of(estimate)
    quote = estimate.structured_content["quote"]
    assert card["tool"] == "generate_video" and card["arguments"] == request and card["holds_key"] is False
    assert (card["quote_id"], card["credits"], card["usd"]) == (quote["quote_id"], 60, quote["usd_total"])
    assert (card["spent_today"], card["max_credits_per_day"], card["max_credits_per_call"]) == (8, 400, 600)
    assert card["model"] == {"id": "veo3_fast", "title": "Veo 3.1 Fast", "kind": "video"}
    assert ["aspect_ratio", "16:9"] in card["settings"]
    assert card["prompt"].startswith(VIDEO["prompt"])
    # Named as the tool's arguments, as in the confirmation text: Kling's "sound" is set with audio.
    async with connect_app(elicitation=answering()) as client:
        kling = await client.call_tool("estimate_cost", {"model": "kling-3.0/video", "prompt": "waves", "audio": True})
    kling_card = card_of(kling)
    assert ["audio", True] in kling_card["settings"] and "sound" not in {name for name, _ in kling_card["settings"]}
    assert "audio=true" in text_of(kling)
    [shown] = card["inputs"]
    assert shown["name"] == "still.png" and shown["src"].startswith("data:image/")
    assert card["confirm"] == "form"  # this host shows the server's own confirmation form


async def test_the_card_names_every_input_its_approve_sends(connect_app, tmp_path):
    """Twelve pictures: the first eight drawn, the rest named (they used to be left off the card, though Approve
    sent them all)."""
    pictures = [still(tmp_path, f"p{n:02d}.png") for n in range(12)]
    request = {"model": "nano-banana-2", "prompt": "a collage", "images": pictures}
    async with connect_app(elicitation=answering()) as client:
        card = card_of(await client.call_tool("estimate_cost", request))
    assert [shown["name"] for shown in card["inputs"]] == [f"p{n:02d}.png" for n in range(12)]
    assert [("src" in shown) for shown in card["inputs"]] == [True] * 8 + [False] * 4
    assert card["arguments"]["images"] == pictures


async def test_a_card_over_a_cap_says_so(connect_app):
    async with connect_app(max_credits_per_call=50) as client:
        estimate = await client.call_tool("estimate_cost", VIDEO)
    card = card_of(estimate)
    assert card["cap_problem"] and "50" in card["cap_problem"]


@pytest.mark.parametrize(("action", "creates"), [("accept", 1), ("decline", 0)])
async def test_approve_on_a_host_with_forms_is_answered_by_the_server_s_own_question(
    connect_app, controls, action, creates
):
    """Approve makes the card's call without the quote: the unchanged gate then asks the person in the host's form,
    which the model cannot answer. Only that answer spends."""
    seen: list[str] = []
    async with connect_app(elicitation=answering(action=action, seen=seen)) as client:
        card = card_of(await client.call_tool("estimate_cost", IMAGE))
        assert "quote_id" not in card["arguments"]
        result = await client.call_tool(card["tool"], card["arguments"])  # what the Approve button sends
    assert len(seen) == 1 and "8 credits" in seen[0]
    assert len(await controls.creates()) == creates
    assert result.structured_content["status"] == ("completed" if creates else "declined")


async def test_approve_on_a_host_without_forms_spends_the_quote_once(connect_app, controls):
    """A host that cannot show forms approves in the chat with the quote_id, as before; the card's Approve passes
    that same quote, which the model holds anyway: one create, never a second."""
    async with connect_app() as client:
        asked = await client.call_tool("generate_image", IMAGE)
        card = card_of(asked)
        assert asked.structured_content["status"] == "confirmation_required" and card["confirm"] == "quote"
        approved = {**card["arguments"], "quote_id": card["quote_id"]}
        first = await client.call_tool(card["tool"], approved)
        again = await client.call_tool(card["tool"], approved)
    assert first.structured_content["status"] == "completed"
    assert again.structured_content["status"] == "confirmation_required"  # the quote was used up
    assert len(await controls.creates()) == 1


async def test_a_card_s_quote_cannot_buy_a_different_request(connect_app, controls):
    async with connect_app() as client:
        card = card_of(await client.call_tool("estimate_cost", IMAGE))
        widened = {**card["arguments"], "variations": 3, "quote_id": card["quote_id"]}
        result = await client.call_tool(card["tool"], widened)
    assert result.structured_content["status"] == "confirmation_required"
    assert await controls.creates() == []


def repaint(workspace: Path, name: str = "still.png") -> None:
    """The same picture file, drawn over with other colours (same size and format, so the same price)."""
    path = workspace / "references" / name
    picture = Image.open(path).convert("RGB")
    picture.paste((200, 30, 30), (0, 0, picture.width // 2, picture.height))
    picture.save(path)


@pytest.mark.parametrize("swapped", [False, True])
@pytest.mark.parametrize(("approval", "passed"), [("form", "quote_id"), ("any", "bind_quote_id")])
async def test_approve_on_a_host_with_forms_is_bound_to_the_pictures_the_card_showed(
    connect_app, controls, tmp_path, swapped, approval, passed
):
    """The audit: under the default KIE_APPROVAL=any, the card showed picture A, Approve sent no quote, and the form
    said only "1 input file(s)": a picture replaced after the card was drawn was sent. Approve now passes the card's
    quote (as bind_quote_id by default, as quote_id under KIE_APPROVAL=form), which there only binds: a replaced
    picture is refused before anyone is asked (the card comes back saying why), and the request as drawn still goes
    to the person's form, which alone approves it."""
    seen: list[str] = []
    request = {**VIDEO, "images": [still(tmp_path)]}
    async with connect_app(elicitation=answering(seen=seen), approval=approval) as client:
        card = card_of(await client.call_tool("estimate_cost", request))
        assert card["confirm"] == "form" and card["binds"] is True and card["why"] is None
        if swapped:
            repaint(tmp_path)
        result = await client.call_tool(card["tool"], {**card["arguments"], passed: card["quote_id"]})
    if swapped:
        assert result.structured_content["status"] == "confirmation_required", text_of(result)
        again = card_of(result)
        assert "different arguments" in again["why"] and again["quote_id"] != card["quote_id"]
        assert seen == [] and await controls.creates() == []
    else:
        assert result.structured_content["status"] == "submitted", text_of(result)
        assert len(seen) == 1 and len(await controls.creates()) == 1  # the card's quote approved nothing


async def test_a_continue_video_card_binds_its_approve_too(connect_app, controls):
    """continue_video's card binds as a generate card does: another request's quote is refused before anyone is
    asked; its own goes on to the person's form."""
    seen: list[str] = []
    async with connect_app(elicitation=answering(seen=seen)) as client:
        source = await finished_video(client)
        before, asked = len(await controls.creates()), len(seen)
        request = {"task_id": source, "operation": "hd"}
        card = card_of(await client.call_tool("estimate_cost", request))
        other = card_of(await client.call_tool("estimate_cost", IMAGE))["quote_id"]
        refused = await client.call_tool(card["tool"], {**card["arguments"], "bind_quote_id": other})
        assert refused.structured_content["status"] == "confirmation_required", text_of(refused)
        assert len(seen) == asked and len(await controls.creates()) == before
        made = await client.call_tool(card["tool"], {**card["arguments"], "bind_quote_id": card["quote_id"]})
    assert made.structured_content["status"] == "submitted", text_of(made)
    assert len(seen) == asked + 1  # the person's form, which alone approved it


async def test_a_bound_quote_never_approves_a_spend(connect, connect_app, controls):
    """bind_quote_id is the card's, and a model can send it too: it only ever narrows a call. On a host without
    forms it is no approval (a new quote comes back); passed with quote_id it is refused; under auto-approve it
    changes nothing."""
    async with connect() as no_forms:
        quote = (await no_forms.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        bound = await no_forms.call_tool("generate_image", {**IMAGE, "bind_quote_id": quote})
        both = await no_forms.call_tool("generate_image", {**IMAGE, "bind_quote_id": quote, "quote_id": quote})
    assert bound.structured_content["status"] == "confirmation_required", text_of(bound)
    assert both.is_error and "not both" in text_of(both), text_of(both)
    assert await controls.creates() == []
    seen: list[str] = []
    async with connect_app(elicitation=answering(seen=seen), auto_approve_credits=10) as client:
        card = card_of(await client.call_tool("estimate_cost", IMAGE))
        made = await client.call_tool(card["tool"], {**card["arguments"], "bind_quote_id": card["quote_id"]})
    assert made.structured_content["status"] == "completed" and seen == [], text_of(made)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("approval", ["any", "form"])
async def test_a_refused_bound_quote_is_said_to_only_bind_under_either_approval(connect_app, controls, approval):
    """The review: under KIE_APPROVAL=form a bind_quote_id call that did not match its quote was told that "a
    quote_id binds the call to the quoted request", naming an argument it never passed. It is told what
    bind_quote_id does, whatever the setting."""
    seen: list[str] = []
    async with connect_app(elicitation=answering(seen=seen), approval=approval) as client:
        other = card_of(await client.call_tool("estimate_cost", {**IMAGE, "prompt": "a green pear"}))["quote_id"]
        refused = await client.call_tool("generate_image", {**IMAGE, "bind_quote_id": other})
    assert refused.structured_content["status"] == "confirmation_required", text_of(refused)
    assert "bind_quote_id only binds" in text_of(refused) and "a quote_id binds" not in text_of(refused)
    assert seen == [] and await controls.creates() == []


async def test_the_gallery_data_names_each_task_s_prompt(connect_app):
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task_id = made.structured_content["tasks"][0]["task_id"]
        listed = await client.call_tool("list_tasks", {})
        checked = await client.call_tool("check_task", {"task_id": task_id})
    for result in (made, listed, checked):
        assert result.meta[GALLERY_KEY]["prompts"][task_id] == IMAGE["prompt"]


# -- previews the agent can judge (part 3) ---------------------------------------------------------------------


def big_jpeg(path: Path, size: tuple[int, int] = (2400, 1600)) -> None:
    picture = Image.new("RGB", size, (200, 40, 40))
    picture.paste((20, 20, 20), (size[0] // 3, size[1] // 3, size[0] // 2, size[1] // 2))
    picture.save(path, format="JPEG", quality=90)
    later = path.stat().st_mtime + 10  # newer than any preview kept before, whatever the clock's resolution
    os.utime(path, (later, later))


def image_blocks(result: Any) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b.data))) for b in result.content if b.type == "image"]


@pytest.mark.parametrize(("overrides", "side"), [({}, 768), ({"preview_px": 512}, 512)])
async def test_the_agent_sees_a_still_large_enough_to_check_it(connect, tmp_path, overrides, side):
    async with connect(elicitation=answering(), **overrides) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task = made.structured_content["tasks"][0]
        saved = tmp_path / task["files"][0]
        big_jpeg(saved)  # as a real 2400 x 1600 result would be
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    [preview] = image_blocks(checked)
    assert max(preview.size) == side and preview.size[0] / preview.size[1] == pytest.approx(1.5, abs=0.01)
    assert thumbnail_path(saved, "image/jpeg", side).is_file()  # kept beside the image, made once


async def test_a_jpeg_upscale_over_the_preview_pixels_still_gets_a_preview(connect, tmp_path):
    """The audit: an upscaler's 8200 x 8200 JPEG (67 million pixels) got no preview, refused from its header, so
    check_task answered with text and a link only (and the app read the whole file to show it). A JPEG is decoded
    at a reduced scale, here 1025 x 1025, and the limit now holds what is decoded: every client gets its preview."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task = made.structured_content["tasks"][0]
        big_jpeg(tmp_path / task["files"][0], (8200, 8200))
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    assert [b.type for b in checked.content] == ["text", "resource_link", "image"], text_of(checked)
    [preview] = image_blocks(checked)
    assert preview.size == (768, 768)


SEEDREAM_SIX = {
    "prompt": "six product shots",
    "model": "bytedance/seedream-v4-text-to-image",
    "options": {"max_images": 6},
    "variations": 2,
    "wait_seconds": 50,
}


async def test_one_answer_carries_at_most_eight_previews_and_every_file_s_link(connect):
    """The audit: Seedream's max_images 6 times 10 variations answered with 60 preview images (about 10 MB of base64
    in the model's context; clients take only so many pictures a request). The first eight files carry a preview;
    every file keeps its resource link, and the text says where the others' previews are."""
    async with connect(elicitation=answering(), max_credits_per_call=10_000, max_credits_per_day=10_000) as client:
        made = await client.call_tool("generate_image", SEEDREAM_SIX)
        files = made.structured_content["saved_files"]
        ninth = files[8]["resource_uri"].replace("kie://outputs/", "kie://previews/")
        read = await client.read_resource(ninth)
    assert len(files) == 12, text_of(made)
    assert [b.type for b in made.content] == ["text", *["resource_link", "image"] * 8, *["resource_link"] * 4]
    assert [str(b.uri) for b in made.content if b.type == "resource_link"] == [f["resource_uri"] for f in files]
    said = text_of(made)
    assert "first 8 of 12 saved files" in said and ninth in said, said
    session = files[0]["path"].split("/")[1]
    assert f"kie://outputs/{session}/index.html" in said, said
    assert read.contents[0].mime_type == "image/jpeg"  # where the text said it is


def test_the_preview_size_is_a_setting(tmp_path):
    assert Settings.load({"KIE_WORKSPACE": str(tmp_path)}).preview_px == 768
    assert Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_PREVIEW_PX": "1024"}).preview_px == 1024
    assert Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_PREVIEW_PX": "8"}).preview_px == 64
    broken = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_PREVIEW_PX": "big"})
    assert broken.config_error and "KIE_PREVIEW_PX" in broken.config_error


@pytest.mark.skipif(not has_ffmpeg(), reason="no ffmpeg: install the video extra (imageio-ffmpeg)")
async def test_a_video_result_carries_a_poster_frame_made_once(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 20})
        task = made.structured_content["tasks"][0]
        kept = poster_path(tmp_path / task["files"][0], 768)
        made_at = kept.stat().st_mtime_ns
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    assert [b.type for b in made.content] == ["text", "resource_link", "image"]
    [poster] = image_blocks(made)
    assert poster.format == "JPEG" and max(poster.size) <= 768
    assert max(Image.open(kept).convert("L").getextrema()) > 0  # a real frame, not black
    assert [b.type for b in checked.content] == ["text", "resource_link", "image"]
    assert kept.stat().st_mtime_ns == made_at  # read back, not made again


# -- in a real browser -----------------------------------------------------------------------------------------


async def in_browser(function: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking browser step in a worker thread, so the host's bridge keeps serving the app meanwhile."""
    return await anyio.to_thread.run_sync(function, *args)


PICTURES = """(async () => {
  const images = [...document.querySelectorAll('.media img, .inputs img')];
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  return images.map(i => {
    const canvas = document.createElement('canvas');
    canvas.width = i.naturalWidth; canvas.height = i.naturalHeight;
    const g = canvas.getContext('2d');
    if (!canvas.width) return {width: 0, height: 0, spread: 0};
    g.drawImage(i, 0, 0);
    const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0, squares = 0, n = 0;
    for (let p = 0; p < data.length; p += 16) {
      const v = (data[p] + data[p + 1] + data[p + 2]) / 3;
      sum += v; squares += v * v; n++;
    }
    const mean = sum / n;
    return {width: i.naturalWidth, height: i.naturalHeight, spread: Math.sqrt(squares / n - mean * mean),
            shown: i.getBoundingClientRect().width};
  });
})()"""

PLAYABLE = """(async () => {
  const video = document.querySelector('.media video');
  const deadline = Date.now() + 15000;
  const loading = () => (!video.src || video.readyState < 1) && !video.error;
  while (loading() && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
  video.muted = true;
  let played = null;
  try { await video.play(); played = true; } catch (err) { played = String(err); }
  while (video.currentTime < 0.2 && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
  video.pause();
  return {readyState: video.readyState, error: video.error && video.error.code, played, time: video.currentTime,
          duration: video.duration, poster: video.poster.slice(0, 16), src: video.src.slice(0, 16)};
})()"""


def assert_pictures_are_seen(view: AppView, count: int) -> None:
    pictures = view.evaluate(PICTURES)
    assert len(pictures) == count, pictures
    for picture in pictures:
        assert picture["width"] > 0 and picture["height"] > 0, pictures  # decoded, not a broken image
        assert picture["spread"] > 10, pictures  # a real picture, not a flat colour
        assert picture["shown"] >= 200, pictures  # at a useful size


@pytest.mark.parametrize("mode", ["legacy"])  # the gallery does not depend on the protocol era: one browser run
async def test_in_a_browser_the_gallery_shows_the_pictures_and_plays_the_video_as_it_finishes(
    connect_app, controls, browser
):
    async with connect_app(elicitation=answering()) as client:
        images_call = {**IMAGE, "variations": 2}
        images = await client.call_tool("generate_image", images_call)
        video_call = {**VIDEO, "wait_seconds": 0}
        video = await client.call_tool("generate_video", video_call)
        assert video.structured_content["tasks"][0]["state"] != "succeeded"  # still running when the call returned
        video_id = video.structured_content["tasks"][0]["task_id"]
        async with AppHost(client).running() as host:
            gallery = await in_browser(AppView, browser, host.show("images", images_call, images))
            try:
                await in_browser(gallery.wait_for, "document.querySelectorAll('.tile').length === 2")
                await in_browser(assert_pictures_are_seen, gallery, 2)
                shown = await in_browser(gallery.text)
                assert "nano-banana-2" in shown and IMAGE["prompt"] in shown and "quoted 8" in shown
                assert "Make a video from this still" in shown
                save_artifact("app-gallery-images.png", await in_browser(gallery.screenshot))
            finally:
                await in_browser(gallery.close)

            clip = await in_browser(AppView, browser, host.show("video", video_call, video))
            try:
                # the tile follows the task through the host (check_task) until the clip is there; play reads it
                await in_browser(clip.wait_for, "document.querySelector('.media .play')", 40)
                await in_browser(clip.click, ".media .play")
                await in_browser(clip.wait_for, "document.querySelector('.media video')")
                played = await in_browser(clip.evaluate, PLAYABLE)
                assert played["readyState"] >= 1 and played["error"] is None, played
                assert played["played"] is True and played["time"] > 0, played
                assert played["src"].startswith("data:video/mp4")  # through resources/read, as a data URL
                if has_ffmpeg():
                    assert played["poster"].startswith("data:image/jpeg")  # the poster frame from the result
                await in_browser(clip.wait_for, "document.querySelector('.state').textContent === 'succeeded'")
                save_artifact("app-gallery-video.png", await in_browser(clip.screenshot))
            finally:
                await in_browser(clip.close)
    assert {"task_id": video_id, "wait_seconds": 20} in host.calls("check_task")
    assert all(call["params"]["uri"].startswith("kie://outputs/") for call in host.relayed if "uri" in call["params"])
    assert len(await controls.creates()) == 3  # two images and a video: the gallery itself spent nothing


@pytest.mark.parametrize(("action", "creates"), [("accept", 1), ("decline", 0)])
async def test_in_a_browser_the_card_shows_the_cost_and_approve_reaches_the_gate(
    connect_app, controls, browser, tmp_path, mode, action, creates
):
    seen: list[str] = []
    picture = still(tmp_path)
    request = {**VIDEO, "images": [picture], "aspect_ratio": "16:9"}
    async with connect_app(elicitation=answering(action=action, seen=seen), max_credits_per_day=400) as client:
        if action == "accept":  # something spent today, for the bar
            await client.call_tool("generate_image", IMAGE)
        before = len(await controls.creates())
        estimate = await client.call_tool("estimate_cost", request)
        async with AppHost(client).running() as host:
            card = await in_browser(AppView, browser, host.show("card", request, estimate))
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .approve')")
                shown = await in_browser(card.text)
                assert "60 credits" in shown and "about $0.30" in shown and "Veo 3.1 Fast" in shown
                assert "spent today" in shown and "daily cap 400" in shown
                assert "aspect_ratio: 16:9" in shown and VIDEO["prompt"] in shown
                [input_picture] = await in_browser(card.evaluate, PICTURES)
                assert input_picture["width"] > 0 and input_picture["spread"] > 10  # the still, as a picture
                shot = await in_browser(card.screenshot)
                save_artifact(f"app-card-{mode}-{action}.png", shot)
                assert spread(shot) > 10
                card_png = DOCS / "approval-card.png"  # the README's picture: made when missing or asked for
                if (
                    action == "accept"
                    and mode == "auto"
                    and (os.environ.get("KIE_UPDATE_DOCS") or not card_png.exists())
                ):
                    DOCS.mkdir(exist_ok=True)
                    card_png.write_bytes(shot)
                await in_browser(card.click, ".card .approve")
                done = "document.querySelector('.gallery') || document.querySelector('.notice')"
                await in_browser(card.wait_for, done)
                after = await in_browser(card.text)
                save_artifact(f"app-card-{mode}-{action}-after.png", await in_browser(card.screenshot))
            finally:
                await in_browser(card.close)
    quote_id = card_of(estimate)["quote_id"]  # bound to the quoted request, never approving it:
    assert host.calls("generate_video") == [{**request, "bind_quote_id": quote_id}]
    assert len(seen) == (2 if action == "accept" else 1)  # ... and the server asked the person itself
    assert len(await controls.creates()) - before == creates
    assert ("1 result" in after) if creates else ("declined" in after.lower())


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_card_of_an_unknown_price_never_reads_as_a_ceiling(connect_app, browser):
    """The reservation of an unknown price read "Approve up to 600 credits", though KIE charges its own rate."""
    request = {
        "prompt": "a paper boat",
        "model": "bytedance/seedance-2",
        "options": {"reference_video_urls": ["https://example.com/ref.mp4"]},
    }
    async with connect_app() as client:
        shown, button = await card_shown(client, browser, "unknown", request)
    assert button == "Approve an unknown price"
    assert "500 credits are reserved against today's cap" in shown and "which may be more" in shown
    assert "up to 500" not in shown.lower()


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_card_under_a_cent_never_reads_as_zero_dollars(connect_app, browser):
    """z-image costs 0.8 credits: the card said "about $0.00", as if it were free."""
    async with connect_app() as client:
        shown, _ = await card_shown(client, browser, "card", {"prompt": "a paper boat", "model": "z-image"})
    assert "about $0.004" in shown and not re.search(r"\$0\.00(?!\d)", shown)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_the_card_asks_for_the_figure_the_caps_count_as_the_form_does(
    connect_app, controls, browser
):
    """KIE charged 30 for an 8-credit image (counted for a day): the form asked "Spend up to 30 credits (about
    $0.15)", while the card's headline and button read "8 credits" and "Approve 8 credits"."""
    await controls.post("prices", {"nano-banana-2": 30})
    await controls.post("config", {"report_credits_consumed": True})
    seen: list[str] = []
    async with connect_app(answering(seen=seen), auto_approve_credits=10, max_credits_per_call=50) as client:
        await client.call_tool("generate_image", {**IMAGE, "wait_seconds": 5})  # auto-approved at 8, charged 30
        request = {**IMAGE, "prompt": "a fig"}
        shown, button = await card_shown(client, browser, "counted", request)
        await client.call_tool("generate_image", {**request, "wait_seconds": 5})  # the form's question, to compare
    [question] = seen
    assert question.startswith("Spend up to 30 credits (about $0.15) "), question
    assert button == "Approve up to 30 credits", button
    assert "\nup to 30 credits\nabout $0.15\n" in shown, shown  # the headline
    assert "\n8 credits\n" not in shown, shown


async def card_shown(client: Any, browser: Any, name: str, request: dict[str, Any]) -> tuple[str, str]:
    """The approval card of ``request``'s estimate, in the browser: its text, and its approve button's."""
    estimate = await client.call_tool("estimate_cost", request)
    async with AppHost(client).running() as host:
        card = await in_browser(AppView, browser, host.show(name, request, estimate))
        try:
            await in_browser(card.wait_for, "document.querySelector('.card .approve')")
            shown = await in_browser(card.text)
            button = await in_browser(card.evaluate, "document.querySelector('.card .approve').textContent")
        finally:
            await in_browser(card.close)
    return shown, button


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_1080p_version_already_made_shows_it_with_no_approve(connect_app, controls, browser):
    """The audit (F1): the card of a 1080p version already made offered "Approve 5 credits", disabled near the daily
    cap, so the free result could not be reached through it. It says it is made and shows it; nothing is created."""
    async with connect_app(elicitation=answering(), auto_approve_credits=100, max_credits_per_day=66) as client:
        source = await finished_video(client)
        made = await client.call_tool("continue_video", {"task_id": source, "operation": "hd", "wait_seconds": 40})
        hd = made.structured_content["tasks"][0]["task_id"]
        before = len(await controls.creates())
        request = {"task_id": source, "operation": "hd"}
        estimate = await client.call_tool("estimate_cost", request)
        async with AppHost(client).running() as host:
            card = await in_browser(AppView, browser, host.show("made", request, estimate))
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .show-made')")
                shown = await in_browser(card.text)
                approve = await in_browser(card.evaluate, "document.querySelector('.card .approve') === null")
                await in_browser(card.click, ".card .show-made")
                await in_browser(card.wait_for, "document.querySelector('.gallery')")
                after = await in_browser(card.text)
            finally:
                await in_browser(card.close)
    assert card_of(estimate)["made"]["task_id"] == hd and "quote_id" not in card_of(estimate)
    assert approve is True and "already made" in shown.lower() and hd in shown and "Over a cap" not in shown, shown
    assert host.calls("check_task") == [{"task_id": hd, "wait_seconds": 0}] and hd in after
    assert len(await controls.creates()) == before


async def finished_video(client: Any) -> str:
    made = await client.call_tool("generate_video", VIDEO)
    task_id = made.structured_content["tasks"][0]["task_id"]
    done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    return task_id


@pytest.mark.parametrize("mode", ["legacy"])
@pytest.mark.parametrize("approval", ["any", "form"])
async def test_in_a_browser_a_picture_replaced_after_the_card_is_not_sent(
    connect_app, controls, browser, tmp_path, approval
):
    """The card drew a picture; it is replaced before Approve. Nothing is sent and nobody is asked to approve a
    request that would read the same; the card comes back saying why, and its Approve then asks the person. Under
    the default KIE_APPROVAL=any the replaced picture was sent once the form said yes (the audit)."""
    seen: list[str] = []
    request = {**VIDEO, "images": [still(tmp_path)]}
    async with connect_app(elicitation=answering(seen=seen), approval=approval) as client:
        estimate = await client.call_tool("estimate_cost", request)
        quote_id = card_of(estimate)["quote_id"]
        async with AppHost(client).running() as host:
            card = await in_browser(AppView, browser, host.show("bound", request, estimate))
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .approve')")
                shown = await in_browser(card.text)
                repaint(tmp_path)
                await in_browser(card.click, ".card .approve")
                await in_browser(card.wait_for, "document.querySelector('.card .why')")
                refused = await in_browser(card.text)
                save_artifact("app-card-bound-refused.png", await in_browser(card.screenshot))
                assert seen == [] and await controls.creates() == []
                await in_browser(card.click, ".card .approve")  # the card for the picture there now
                await in_browser(card.wait_for, "document.querySelector('.gallery')")
            finally:
                await in_browser(card.close)
    assert "if anything in it changed since this card was drawn" in shown
    assert "Not run:" in refused and "different arguments" in refused
    first, second = host.calls("generate_video")
    assert first == {**request, "bind_quote_id": quote_id}  # the card's quote, bound to the picture it drew
    assert second["bind_quote_id"] != quote_id and {k: v for k, v in second.items() if k != "bind_quote_id"} == request
    assert len(seen) == 1 and len(await controls.creates()) == 1  # the person was asked once, and said yes


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_the_card_says_when_approve_runs_at_once_under_auto_approve(connect_app, controls, browser):
    """Under KIE_AUTO_APPROVE_CREDITS the gate asks nothing more: the card must not promise a second question."""
    seen: list[str] = []
    async with connect_app(elicitation=answering(seen=seen), auto_approve_credits=100) as client:
        estimate = await client.call_tool("estimate_cost", VIDEO)
        async with AppHost(client).running() as host:
            card = await in_browser(AppView, browser, host.show("card", VIDEO, estimate))
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .approve')")
                shown = await in_browser(card.text)
                await in_browser(card.click, ".card .approve")
                await in_browser(
                    card.wait_for, "document.querySelector('.gallery') || document.querySelector('.notice')"
                )
            finally:
                await in_browser(card.close)
    assert "within your auto-approve limit" in shown and "own dialog" not in shown
    assert seen == [] and len(await controls.creates()) == 1  # run at once, as the card said


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_decline_voids_the_quote_before_telling_the_assistant(connect_app, controls, browser):
    """The audit: Decline told the assistant "I decline ... (quote q_...)" and left the quote live, so the assistant
    could still spend it for ten minutes after the person's no. Decline now voids it (decline_quote), the message
    carries no quote id, and the quote passed back is refused as declined."""
    async with connect_app() as client:
        asked = await client.call_tool("generate_image", IMAGE)  # a host without forms: the quote comes back
        quote_id = card_of(asked)["quote_id"]
        async with AppHost(client).running() as host:
            card = await in_browser(AppView, browser, host.show("decline", IMAGE, asked))
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .decline')")
                await in_browser(card.click, ".card .decline")
                await in_browser(card.wait_for, "document.body.innerText.includes('Nothing was spent')")
                [message] = await host.until_sent("ui/message")
                shown = await in_browser(card.text)
            finally:
                await in_browser(card.close)
        spent = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote_id})  # the assistant, all the same
    text = message["content"][0]["text"]
    assert message["role"] == "user" and "decline" in text and "void" in text, text
    assert not re.search(r"q_[0-9a-f]{16}", text), text
    assert host.calls("decline_quote") == [{"quote_id": quote_id}]
    assert "quote is void" in shown, shown
    assert host.calls("generate_image") == []
    assert spent.structured_content["status"] == "declined" and "declined by the user" in text_of(spent)
    assert await controls.creates() == []


async def test_a_quote_declined_on_the_card_buys_nothing_after_the_no(connect_app, controls):
    """decline_quote voids the card's quote and every other unused quote of the same request (the assistant may hold
    the estimate's too); a quote passed back after that is refused saying it was declined. Declining twice says so
    again; an id never issued is refused in words."""
    async with connect_app() as client:  # a host without forms: a quote is the yes
        estimate = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        asked = await client.call_tool("generate_image", IMAGE)
        quote_id = card_of(asked)["quote_id"]
        assert quote_id != estimate
        declined = await client.call_tool("decline_quote", {"quote_id": quote_id})
        again = await client.call_tool("decline_quote", {"quote_id": quote_id})
        refused = [await client.call_tool("generate_image", {**IMAGE, "quote_id": q}) for q in (quote_id, estimate)]
        unknown = await client.call_tool("decline_quote", {"quote_id": "q_0123456789abcdef"})
        not_one = await client.call_tool("decline_quote", {"quote_id": "t_not-a-quote"})
        other = await client.call_tool("estimate_cost", {**IMAGE, "prompt": "a green pear"})  # another request
        other_id = other.structured_content["quote"]["quote_id"]
        made = await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear", "quote_id": other_id})
    assert declined.structured_content["declined"] is True and not declined.is_error
    assert "approves nothing" in text_of(declined) and "other quote of the same request" in text_of(declined)
    assert again.structured_content["declined"] is True and "already declined" in text_of(again)
    for answer in refused:
        assert answer.structured_content["status"] == "declined", text_of(answer)
        assert "declined by the user on the approval card" in text_of(answer)
        assert answer.structured_content.get("quote") is None  # no new quote to pass instead
    assert unknown.is_error and "unknown to this workspace" in text_of(unknown)
    assert not_one.is_error and "not a quote id" in text_of(not_one)
    assert made.structured_content["status"] == "completed"  # only the declined request's quotes were voided
    assert len(await controls.creates()) == 1


async def test_a_request_declined_on_the_card_is_not_auto_approved_meanwhile(connect_app, controls):
    """Under KIE_AUTO_APPROVE_CREDITS the same request sent without its quote, right after the person declined it,
    is not run unasked: a new quote comes back, saying why."""
    async with connect_app(auto_approve_credits=100) as client:
        estimate = await client.call_tool("estimate_cost", IMAGE)
        await client.call_tool("decline_quote", {"quote_id": card_of(estimate)["quote_id"]})
        again = await client.call_tool("generate_image", IMAGE)
        other = await client.call_tool("generate_image", {**IMAGE, "prompt": "a green pear"})
    assert again.structured_content["status"] == "confirmation_required", text_of(again)
    assert "declined this very request on the approval card" in text_of(again)
    assert other.structured_content["status"] == "completed"  # another request is auto-approved as before
    assert len(await controls.creates()) == 1


async def uploading(controls: Any) -> None:
    """Until the simulator has been sent an input file (a slow upload: the call has used its approval, and the
    journal has no create of it yet)."""
    with anyio.fail_after(20):
        while not any("upload" in r["path"].lower() for r in (await controls.get("requests"))["requests"]):  # noqa: ASYNC110
            await anyio.sleep(0.02)


@pytest.mark.parametrize("refused", [False, True], ids=["kie-would-take-it", "kie-would-refuse-it"])
async def test_a_quote_declined_while_its_call_uploads_sends_no_create_and_never_spends(
    connect_app, controls, tmp_path, refused
):
    """The reviews: the agent passed the card's quote and its call was still uploading its input when the person
    pressed Decline; decline_quote answered "already used ... nothing was declined", and the call went on to send its
    create and spend (or, had KIE refused it, gave the quote back unused, and the same quote_id spent). Now the call
    sends no create after the no, its quote stays declined, the other quote of the request is void at once, and
    the request is not auto-approved for ten minutes from the Decline."""
    request = {**IMAGE, "images": [still(tmp_path)]}
    async with connect_app() as client:  # a host without forms: a quote is the yes
        card_quote, other = [
            (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"] for _ in "ab"
        ]
        await controls.fault("upload", kind="slow", seconds=2.0)
        if refused:
            await controls.fault("create", kind="code", code=402)
        answers: dict[str, Any] = {}

        async def first() -> None:
            answers["first"] = await client.call_tool("generate_image", {**request, "quote_id": card_quote})

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await uploading(controls)
            declined = await client.call_tool("decline_quote", {"quote_id": card_quote})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
        again = [await client.call_tool("generate_image", {**request, "quote_id": q}) for q in (card_quote, other)]
    async with connect_app(auto_approve_credits=100) as client:  # the same request, no quote, under auto-approve
        unquoted = await client.call_tool("generate_image", request)
    assert answers["first"].structured_content["status"] == "failed", text_of(answers["first"])
    assert "declined this spend on the approval card before its create was sent" in text_of(answers["first"])
    assert spent == 0
    for answer in again:
        assert answer.structured_content["status"] == "declined", text_of(answer)
        assert "declined by the user on the approval card" in text_of(answer)
    assert declined.structured_content["declined"] is True, text_of(declined)
    assert "sends no create now" in text_of(declined) and "other quote of the same request is declined" in text_of(
        declined
    )
    assert unquoted.structured_content["status"] == "confirmation_required", text_of(unquoted)
    assert "declined this very request on the approval card" in text_of(unquoted)
    assert await controls.creates() == []  # nothing reached KIE after the no


async def test_a_second_decline_of_a_quote_in_use_leaves_the_quote_asked_for_since(connect_app, controls, tmp_path):
    """The review: a second Decline of a quote still in use (a double click, a host retrying decline_quote) voided
    the new quote the person asked for since, blocking the spend they approved after."""
    request = {**IMAGE, "images": [still(tmp_path)]}
    async with connect_app() as client:
        first_quote = (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"]
        await controls.fault("upload", kind="slow", seconds=2.0)
        async with anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "generate_image", {**request, "quote_id": first_quote})
            await uploading(controls)
            await client.call_tool("decline_quote", {"quote_id": first_quote})
            later = (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"]
            twice = await client.call_tool("decline_quote", {"quote_id": first_quote})
        made = await client.call_tool("generate_image", {**request, "quote_id": later})
    assert twice.structured_content["declined"] is True and "already declined" in text_of(twice), text_of(twice)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert len(await controls.creates()) == 1  # the later quote's, approved after the no


def test_a_decline_while_a_create_of_the_quote_is_on_its_way_stops_the_rest_and_is_never_given_back(tmp_path):
    """The final read: a Decline that came while a create of the quote was being sent answered "already used" and
    kept nothing: the variations still waiting for their turn were sent, and should KIE refuse that create, the quote
    was given back and approved its request again. The no now stops the rest and is never undone."""
    from kie_mcp.catalog.pricing import ItemPrice
    from kie_mcp.journal import Journal
    from kie_mcp.spend.quotes import QuoteBook

    journal = Journal(tmp_path / "journal.sqlite3")
    quotes = QuoteBook(journal)
    price = ItemPrice.model_construct(credits=10.0, known=True, breakdown="10 credits", source_date=None)
    quote = quotes.issue("nano-banana-2", "d1", price, 2)
    quotes.consume(quote.quote_id, "d1")
    attempt = journal.begin_attempt(
        model="nano-banana-2", family="market", approved_by="quote", quote_id=quote.quote_id, prompt="p",
        params={}, credits_quoted=10.0, session=None,
    )  # fmt: skip
    declined, said = quotes.decline(quote.quote_id)
    assert declined is False and "already used" in said and "sends no further create" in said, said
    assert quotes.declined_before_create(quote.quote_id)  # the second variation is not sent
    journal.finish_attempt(attempt, "refused", error="KIE refused it")
    quotes.give_back(quote.quote_id)
    refusal = quotes.refusal(quote.quote_id, "d1")
    assert refusal is not None and refusal.why == "declined", refusal
    assert quotes.declined_lately("d1") is not None  # nor is the request auto-approved meanwhile


async def declined_while_uploading(client: Any, controls: Any, call: dict[str, Any], card: str) -> tuple[Any, Any]:
    """The answers of the generate call ``call`` and of the approval card's Decline of quote ``card``, pressed while
    that call's input file goes up (a slow upload: its approval is used, and no create of it is in the journal)."""
    await controls.fault("upload", kind="slow", seconds=2.0)
    answers: dict[str, Any] = {}

    async def run() -> None:
        answers["call"] = await client.call_tool("generate_image", call)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await uploading(controls)
        declined = await client.call_tool("decline_quote", {"quote_id": card})
    return answers["call"], declined


async def test_an_auto_approved_call_of_a_request_declined_on_the_card_while_it_uploads_sends_no_create(
    connect_app, controls, tmp_path
):
    """The final read: a Decline on the card of a request that a call was running auto-approved (no quote_id, under
    KIE_AUTO_APPROVE_CREDITS) said "Nothing was spent", and that call went on to create. It sends no create now."""
    request = {**IMAGE, "images": [still(tmp_path)]}
    async with connect_app(auto_approve_credits=100) as client:
        card_quote = (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"]
        made, declined = await declined_while_uploading(client, controls, request, card_quote)
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert declined.structured_content["declined"] is True, text_of(declined)
    assert made.structured_content["status"] == "failed", text_of(made)
    assert "declined this spend on the approval card before its create was sent" in text_of(made)
    assert spent == 0 and await controls.creates() == []


@pytest.mark.parametrize("approved_by", ["another quote", "the form"])
async def test_a_decline_on_the_card_stops_the_call_of_its_request_whatever_approved_it(
    connect_app, controls, tmp_path, approved_by
):
    """The spend audit: a call of the card's request approved otherwise than by the card's quote (the agent's own
    estimate quote, or the confirmation form's yes after the card's Approve) was uploading its input when the person
    pressed Decline; decline_quote answered "Nothing was spent" and the call went on to create and spend. The no is the
    request's: that call sends no create, the answer is true, and its quote is declined for good."""
    request = {**IMAGE, "images": [still(tmp_path)]}
    forms = approved_by == "the form"
    async with connect_app(elicitation=answering() if forms else None) as client:
        if forms:  # the card's Approve binds its quote, and the person says yes in the form
            card = (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"]
            call = {**request, "bind_quote_id": card}
        else:  # the agent holds its own estimate's quote; the card shows another
            agents = (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"]
            card = card_of(await client.call_tool("generate_image", request))["quote_id"]
            call = {**request, "quote_id": agents}
        made, declined = await declined_while_uploading(client, controls, call, card)
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
        again = None if forms else await client.call_tool("generate_image", call)
    assert made.structured_content["status"] == "failed", text_of(made)
    assert "declined this spend on the approval card before its create was sent" in text_of(made)
    assert declined.structured_content["declined"] is True, text_of(declined)
    assert "sends no create now" in text_of(declined) and "Nothing was spent" in text_of(declined)
    assert spent == 0 and await controls.creates() == []
    if again is not None:  # the agent's quote, given back unspent, stays declined
        assert again.structured_content["status"] == "declined", text_of(again)


@pytest.mark.parametrize("ran_by", ["auto-approval", "another quote"])
async def test_a_decline_after_a_call_of_its_request_ran_says_it_may_have_run(connect_app, controls, ran_by):
    """The spend audit: the card's quote unused, the same request run meanwhile by another approval (auto-approved, or
    the agent's own estimate quote), and Decline answered "Nothing was spent" while that call had created and spent.
    It now answers declined: false, saying a call of the request ran, and still voids every quote of it."""
    async with connect_app(auto_approve_credits=100 if ran_by == "auto-approval" else 0) as client:
        agents = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        card = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        made = await client.call_tool(
            "generate_image", IMAGE if ran_by == "auto-approval" else {**IMAGE, "quote_id": agents}
        )
        declined = await client.call_tool("decline_quote", {"quote_id": card})
        again = await client.call_tool("generate_image", {**IMAGE, "quote_id": card})
    assert made.structured_content["status"] == "completed", text_of(made)
    assert declined.structured_content["declined"] is False, text_of(declined)
    assert "Nothing was spent" not in text_of(declined) and "may have been charged" in text_of(declined)
    assert "a call of this request" in text_of(declined) and "no call of it sends a further create" in text_of(declined)
    assert again.structured_content["status"] == "declined", text_of(again)
    assert len(await controls.creates()) == 1


@pytest.mark.parametrize("names", ["bind_quote_id", "another request's quote"])
async def test_a_request_declined_on_the_card_is_not_auto_approved_through_a_quote_that_does_not_approve_it(
    connect_app, controls, tmp_path, names
):
    """The spend audit: under KIE_AUTO_APPROVE_CREDITS, a call naming a quote that does not approve it (a fresh one
    as bind_quote_id, which only binds; one priced for another request) was auto-approved right after the person
    declined the request on the card, and uploaded their file. It is answered confirmation_required, saying why, with
    nothing uploaded or created."""
    request = {**IMAGE, "images": [still(tmp_path)]}
    async with connect_app(auto_approve_credits=100) as client:
        card = (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"]
        await client.call_tool("decline_quote", {"quote_id": card})
        if names == "bind_quote_id":
            fresh = (await client.call_tool("estimate_cost", request)).structured_content["quote"]["quote_id"]
            call = {**request, "bind_quote_id": fresh}
        else:
            other = {**IMAGE, "prompt": "a green pear"}
            call = {
                **request,
                "quote_id": (await client.call_tool("estimate_cost", other)).structured_content["quote"]["quote_id"],
            }
        answer = await client.call_tool("generate_image", call)
    uploads = [r for r in (await controls.get("requests"))["requests"] if "upload" in r["path"].lower()]
    assert answer.structured_content["status"] == "confirmation_required", text_of(answer)
    assert "declined this very request on the approval card" in text_of(answer)
    assert uploads == [] and await controls.creates() == []


async def test_a_decline_while_a_create_waits_to_be_sent_again_after_a_429_stops_it_unsent(connect_app, controls):
    """The spend audit: KIE refused the quote's create with 429 (not created, not charged), and while it waited to be
    sent again the person pressed Decline; the resend went out all the same, and was created and charged. It is not
    sent now: the create settles as refused, nothing is spent, and the quote is declined."""
    async with connect_app(rate_limit_backoff=2.0) as client:  # a host without forms: a quote is the yes
        quote = (await client.call_tool("estimate_cost", IMAGE)).structured_content["quote"]["quote_id"]
        await controls.fault("create", kind="code", code=429)
        answers: dict[str, Any] = {}

        async def run() -> None:
            answers["call"] = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})

        async with anyio.create_task_group() as group:
            group.start_soon(run)
            with anyio.fail_after(10):
                while not await controls.creates():  # noqa: ASYNC110 - the simulator's log: the 429'd create
                    await anyio.sleep(0.02)
            await client.call_tool("decline_quote", {"quote_id": quote})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
        again = await client.call_tool("generate_image", {**IMAGE, "quote_id": quote})
    assert answers["call"].structured_content["status"] == "failed", text_of(answers["call"])
    assert "declined this spend on the approval card before its create was sent" in text_of(answers["call"])
    assert len(await controls.creates()) == 1  # the one KIE refused with 429; never sent again
    assert spent == 0
    assert again.structured_content["status"] == "declined", text_of(again)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_decline_of_a_quote_already_used_still_tells_the_assistant(
    connect_app, controls, browser, tmp_path
):
    """A Decline that comes after the quote's call sent its create cannot void it (decline_quote answers declined:
    false), and the card said only "already used": the assistant never heard the person's no. It is told now, with no
    quote id, and the card offers the task list."""
    request = {**IMAGE, "images": [still(tmp_path)]}
    async with connect_app() as client:
        asked = await client.call_tool("generate_image", request)
        quote_id = card_of(asked)["quote_id"]
        async with AppHost(client).running() as host:
            card = await in_browser(AppView, browser, host.show("in-use", request, asked))
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .decline')")
                made = await client.call_tool("generate_image", {**request, "quote_id": quote_id})  # the agent, first
                await in_browser(card.click, ".card .decline")
                [message] = await host.until_sent("ui/message")
                await in_browser(card.wait_for, "document.body.innerText.includes('Check the task list')")
                shown = await in_browser(card.text)
            finally:
                await in_browser(card.close)
    text = message["content"][0]["text"]
    assert made.structured_content["status"] == "completed", text_of(made)
    assert message["role"] == "user" and "I decline this spend" in text and "do not run" in text, text
    assert not re.search(r"q_[0-9a-f]{16}", text), text
    assert "already used" in shown and "The assistant was told you declined." in shown, shown
    assert len(await controls.creates()) == 1  # the agent's, before the no


async def test_decline_quote_is_only_for_the_app_and_never_approves(connect, connect_app, controls):
    """The card's Decline is a tool only the app calls: listed with ``visibility: ["app"]`` (the host keeps it from
    the model) and only to a client that declared MCP Apps; any other client is neither shown it nor served, and
    its quote still approves its request. It never approves or spends anything itself."""
    async with connect_app() as app, connect() as plain:
        listed = {tool.name: tool for tool in (await app.list_tools()).tools}
        plain_names = [tool.name for tool in (await plain.list_tools()).tools]
        asked = await plain.call_tool("generate_image", IMAGE)
        quote_id = asked.structured_content["quote"]["quote_id"]
        refused = await plain.call_tool("decline_quote", {"quote_id": quote_id})
        made = await plain.call_tool("generate_image", {**IMAGE, "quote_id": quote_id})
    tool = listed["decline_quote"]
    assert tool.meta["ui"] == {"visibility": ["app"]}
    assert tool.annotations.read_only_hint is False and tool.annotations.idempotent_hint is True
    assert "decline_quote" not in plain_names
    assert refused.is_error and "nothing was declined" in text_of(refused)
    assert made.structured_content["status"] == "completed"
    assert len(await controls.creates()) == 1


def price_a_video_of_the_still(view: AppView, prompt: str) -> None:
    """On a gallery's still: "Make a video from this still", the clip's ``prompt``, "Show the price", until its card
    shows (blocking: call it through ``in_browser``)."""
    view.wait_for("document.querySelector('.actions .btn:nth-child(2)')")
    view.click(".actions .btn:nth-child(2)")
    view.type_into(".follow-up textarea", prompt)
    view.click(".follow-up .price")
    view.wait_for("document.querySelector('.nested .card .approve')")


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_still_becomes_a_video_through_the_quote_and_its_approval(connect_app, controls, browser):
    """On a host without forms: the still's "Make a video" prices the clip (estimate_cost), the card shows it, and
    Approve spends that quote once."""
    async with connect_app() as client:
        asked = await client.call_tool("generate_image", IMAGE)
        approved = {**IMAGE, "quote_id": asked.structured_content["quote"]["quote_id"]}
        made = await client.call_tool("generate_image", approved)
        saved = made.structured_content["tasks"][0]["files"][0]
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("still", approved, made))
            try:
                await in_browser(price_a_video_of_the_still, view, "The apple rolls slowly off the table")
                shown = await in_browser(view.text)
                assert "60 credits" in shown
                await in_browser(view.click, ".nested .card .approve")
                await in_browser(view.wait_for, "document.querySelector('.nested .gallery')")
                save_artifact("app-still-to-video.png", await in_browser(view.screenshot))
            finally:
                await in_browser(view.close)
    [estimate] = host.calls("estimate_cost")
    assert estimate == {"model": "veo3_fast", "prompt": "The apple rolls slowly off the table", "images": [saved]}
    [generate] = host.calls("generate_video")
    assert generate["images"] == [saved] and generate["quote_id"].startswith("q_")
    video_creates = [c for c in await controls.creates() if c["path"] == "/api/v1/veo/generate"]
    assert len(video_creates) == 1


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_still_s_video_form_edited_after_pricing_takes_the_old_price_away(
    connect_app, controls, browser
):
    """The audit: the form was edited after "Show the price", and the card below kept the old prompt's Approve,
    which bought the request the form no longer showed. Any edit now replaces the card with "Changed: show the
    price again"; the price shown again is for what the form says."""
    async with connect_app() as client:  # no forms: the card's Approve is the yes
        asked = await client.call_tool("generate_image", IMAGE)
        approved = {**IMAGE, "quote_id": asked.structured_content["quote"]["quote_id"]}
        made = await client.call_tool("generate_image", approved)
        before = len(await controls.creates())
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("still-edited", approved, made))
            try:
                await in_browser(price_a_video_of_the_still, view, "The apple rolls slowly off the table")
                await in_browser(view.type_into, ".follow-up textarea", " and a hand bites it")
                await in_browser(view.wait_for, "!document.querySelector('.nested .card')")
                said = await in_browser(view.evaluate, "document.querySelector('.follow-up .nested').innerText")
                await in_browser(view.click, ".follow-up .price")
                await in_browser(view.wait_for, "document.querySelector('.nested .card blockquote')")
                repriced = await in_browser(
                    view.evaluate, "document.querySelector('.nested .card blockquote').textContent"
                )
            finally:
                await in_browser(view.close)
    assert said == "Changed: show the price again.", said
    assert repriced == "The apple rolls slowly off the table and a hand bites it"
    assert len(await controls.creates()) == before and not host.calls("generate_video")


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_still_s_video_form_edited_while_approve_is_asked_leaves_no_approve_for_the_old_prompt(
    connect_app, controls, browser
):
    """The audit: the form was edited while Approve's confirmation dialog was open (the edit was ignored, as that
    call was on its way); the dialog was dismissed and the card that came back offered a live Approve for the old
    prompt. An edit is now always counted, and a card answered after it reads "Changed: show the price again"."""
    view: list[AppView] = []
    questions: list[str] = []

    async def elicit(context: Any, params: Any) -> ElicitResult:
        questions.append(params.message)
        if view and "veo3_fast" in params.message:  # the clip's question: the person edits the form, then dismisses
            await in_browser(view[0].type_into, ".follow-up textarea", " and a hand bites it")
            return ElicitResult(action="cancel")
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect_app(elicitation=elicit) as client, AppHost(client).running() as host:
        made = await client.call_tool("generate_image", IMAGE)
        shown = await in_browser(AppView, browser, host.show("still-asked", IMAGE, made))
        try:
            await in_browser(price_a_video_of_the_still, shown, "The apple rolls slowly off the table")
            view.append(shown)
            await in_browser(shown.click, ".nested .card .approve")
            await in_browser(shown.wait_for, "document.querySelector('.nested .changed')", 30)
            said = await in_browser(shown.evaluate, "document.querySelector('.follow-up .nested').innerText")
            cards = await in_browser(shown.evaluate, "document.querySelectorAll('.nested .card').length")
        finally:
            view.clear()
            await in_browser(shown.close)
    assert len(questions) == 2, questions  # the still's, then the clip's (dismissed)
    assert said == "Changed: show the price again.", said
    assert cards == 0
    assert not [c for c in await controls.creates() if c["path"] == "/api/v1/veo/generate"]  # no clip was made


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_hostile_prompt_is_only_text(connect_app, browser):
    async with connect_app(elicitation=answering()) as client:
        call = {**IMAGE, "prompt": HOSTILE}
        made = await client.call_tool("generate_image", call)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("hostile", call, made))
            try:
                await in_browser(view.wait_for, "document.querySelector('.prompt')")
                prompt = await in_browser(view.evaluate, "document.querySelector('.prompt').textContent")
                title = await in_browser(view.evaluate, "document.title")
                planted = await in_browser(
                    view.evaluate, "document.querySelectorAll('img[src=\"x\"], .tile script').length"
                )
            finally:
                await in_browser(view.close)
    assert prompt == HOSTILE  # shown as the words it is
    assert title == "kie-mcp" and planted == 0  # nothing in it became markup or ran


async def test_in_a_browser_only_web_links_the_server_marked_are_ever_opened(connect_app, browser):
    """A result whose links are not http(s) (a hostile upstream's javascript: or file:), or that a browser reads
    otherwise than the server judged them (a backslash is read as "/": ``http://127.0.0.1\\.example.com/`` opens
    127.0.0.1; whitespace), gets no button for them, and the app never asks the host to open one, even when an
    answer marks one as openable."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task = made.structured_content["tasks"][0]
        task["files"], task["result_urls"] = [], [
            "javascript:alert(1)//", "file:///etc/passwd", "http://127.0.0.1\\.example.com/admin?reset=1",
            "https://cdn.kie/a b", "https://cdn.kie/a\nb", "https://cdn.kie/x",
        ]  # fmt: skip
        made.meta[GALLERY_KEY]["links"] = {
            task["task_id"]: [{"url": url, "host": "cdn.kie"} for url in task["result_urls"]]
        }
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("links", IMAGE, made))
            try:
                await in_browser(view.wait_for, "document.querySelector('.placeholder button')")
                buttons = await in_browser(view.evaluate, "document.querySelectorAll('.placeholder button').length")
                await in_browser(view.click, ".placeholder button")
                [opened] = await host.until_sent("ui/open-link")
            finally:
                await in_browser(view.close)
    assert buttons == 1 and opened["url"] == "https://cdn.kie/x"


# -- a long list: previews first, the full file when asked for ------------------------------------------------


def reads(host: AppHost) -> list[str]:
    """The URI of every resources/read the view made through the host, in order."""
    return [r["params"]["uri"] for r in host.relayed if r.get("method") == "resources/read"]


def redraw(path: Path, size: tuple[int, int]) -> None:
    """A saved result drawn again at ``size``, in its own format, newer than any preview kept of it."""
    picture = Image.new("RGB", size, (200, 40, 40))
    picture.paste((20, 20, 20), (size[0] // 3, size[1] // 3, size[0] // 2, size[1] // 2))
    picture.save(path)
    later = path.stat().st_mtime + 10
    os.utime(path, (later, later))


VIDEO_STATE = """(() => {
  const video = document.querySelector('.media video');
  return video && {src: video.src.slice(0, 16), poster: video.poster.slice(0, 16), paused: video.paused,
                   time: video.currentTime, error: video.error && video.error.code};
})()"""


@pytest.mark.parametrize("mode", ["legacy"])  # the gallery does not depend on the protocol era: one browser run
async def test_in_a_browser_a_task_list_reads_only_previews_until_a_file_is_asked_for(connect_app, browser, tmp_path):
    """list_tasks carries no inline previews (up to 200 tasks): each tile used to read its whole saved file through
    the host (hundreds of MB for real 4K stills and clips). Now each reads the small kept preview (an image's
    thumbnail, a video's poster frame); the full image when it is clicked, the video when its play is clicked."""
    async with connect_app(elicitation=answering()) as client:
        images = await client.call_tool("generate_image", {**IMAGE, "variations": 3})
        video = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 20})
        stills = [path for task in images.structured_content["tasks"] for path in task["files"]]
        [clip] = video.structured_content["tasks"][0]["files"]
        assert len(stills) == 3 and video.structured_content["tasks"][0]["state"] == "succeeded"
        redraw(tmp_path / stills[0], (3000, 2000))  # as large as a real result: its preview is made again on read
        listed = await client.call_tool("list_tasks", {})
        assert "image" not in [b.type for b in listed.content]  # nothing inline: what the app reads is all it shows
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("list", {}, listed))
            try:
                await in_browser(view.wait_for, "document.querySelectorAll('.tile').length === 4")
                pictures = "[...document.querySelectorAll('.media > img')]"
                await in_browser(
                    view.wait_for, f"{pictures}.length === 3 && {pictures}.every(i => i.complete && i.src)"
                )
                if has_ffmpeg():  # the poster frame on the play button
                    await in_browser(view.wait_for, "document.querySelector('.media .play img')")
                shown = await in_browser(view.evaluate, PICTURES)
                await anyio.sleep(0.5)  # anything else the view would read has had its time
                before = reads(host)
                save_artifact("app-gallery-list.png", await in_browser(view.screenshot))
                big = f".tile[data-task='{images.structured_content['tasks'][0]['task_id']}'] .media img"
                await in_browser(view.click, big)  # widen it: the full picture
                await in_browser(view.wait_for, f"document.querySelector({big!r}).dataset.full === 'yes'")
                widened = await in_browser(
                    view.evaluate,
                    f"(i => i.decode().then(() => i.naturalWidth))(document.querySelector({big!r}))",
                )
                assert await in_browser(view.evaluate, "document.querySelector('.media video')") is None
                await in_browser(view.click, ".media .play")  # play the clip: only now is it read
                await in_browser(view.wait_for, "document.querySelector('.media video')?.src.startsWith('data:video/')")
                await in_browser(
                    view.wait_for, "(v => v && !v.paused && v.currentTime > 0)(document.querySelector('.media video'))"
                )
                played = await in_browser(view.evaluate, VIDEO_STATE)
            finally:
                await in_browser(view.close)
    outputs = [f"outputs/{uri.removeprefix('kie://previews/')}" for uri in before]
    assert before and all(uri.startswith("kie://previews/") for uri in before), before  # never a full file
    assert sorted(outputs) == sorted([*stills, clip]), before  # one each (a video's poster tried even without ffmpeg)
    assert all(max(p["width"], p["height"]) <= 768 and p["spread"] > 10 for p in shown), shown  # real pictures
    assert widened == 3000  # the full picture, once asked for
    after = reads(host)[len(before) :]
    assert after == [
        f"kie://outputs/{stills[0].removeprefix('outputs/')}",
        f"kie://outputs/{clip.removeprefix('outputs/')}",
    ]
    assert played["error"] is None and played["time"] > 0, played
    if has_ffmpeg():
        assert played["poster"].startswith("data:image/jpeg")  # the poster it was started from


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_videos_whose_result_carries_poster_frames_are_read_only_when_played(connect_app, browser):
    """The audit: a generate_video result with its poster frames inline (variations 3) read all three full videos
    through the host as data URLs, unasked. Each is now its poster frame on a play button, as in a task list."""
    if not has_ffmpeg():
        pytest.skip("poster frames are made with ffmpeg")
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {**VIDEO, "variations": 3, "wait_seconds": 30})
        clips = [path for task in made.structured_content["tasks"] for path in task["files"]]
        assert len(clips) == 3 and "image" in [b.type for b in made.content], text_of(made)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("posters", VIDEO, made))
            try:
                await in_browser(view.wait_for, "document.querySelectorAll('.media .play img').length === 3")
                await anyio.sleep(1.5)  # anything the view would read unasked has had its time
                unasked = reads(host)
                videos = await in_browser(view.evaluate, "document.querySelectorAll('.media video').length")
                await in_browser(view.click, ".media .play")
                await in_browser(view.wait_for, "document.querySelector('.media video')?.src.startsWith('data:video/')")
                played = reads(host)[len(unasked) :]
            finally:
                await in_browser(view.close)
    assert unasked == [] and videos == 0, unasked  # the posters came with the result: nothing read
    assert len(played) == 1 and played[0].startswith("kie://outputs/") and played[0].endswith(".mp4"), played


def heavy_metadata_png(path: Path) -> None:
    """A picture whose compressed text chunk inflates past what Pillow reads (1 MB): the server makes no preview of
    it (as of one over the pixels a preview decodes), and a browser shows it."""
    from PIL import PngImagePlugin

    picture = Image.new("RGB", (320, 200), (30, 90, 160))
    for x in range(0, 320, 40):
        picture.paste((230, 180, 40), (x, 0, x + 20, 200))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", " " * 2_000_000, zip=True)
    picture.save(path, format="PNG", pnginfo=info)
    later = path.stat().st_mtime + 10  # newer than the preview kept of what was saved there
    os.utime(path, (later, later))


@pytest.mark.parametrize("mode", ["legacy"])  # the gallery does not depend on the protocol era: one browser run
async def test_in_a_browser_a_picture_without_a_preview_is_read_only_when_clicked(connect_app, browser, tmp_path):
    """The audit: a picture the server makes no preview of (an upscale over its pixel limit) was read whole through
    the host as soon as its tile showed, unasked and outside the four-at-a-time limit of the previews' reads (an
    8200 x 8200 JPEG: a 2 MB data URL and 270 MB decoded a tile). It now says "No preview; click to load the full
    file", and only that click reads it."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "variations": 2})
        stills = [path for task in made.structured_content["tasks"] for path in task["files"]]
        for path in stills:
            heavy_metadata_png(tmp_path / path)
        listed = await client.call_tool("list_tasks", {})
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("no-preview", {}, listed))
            try:
                offers = "document.querySelectorAll('.media button.load-full')"
                settled = "document.querySelectorAll('.media button.load-full, .media > img[src]').length === 2"
                await in_browser(view.wait_for, settled)
                await anyio.sleep(1.5)  # anything the view would read unasked has had its time
                unasked = reads(host)
                assert all(uri.startswith("kie://previews/") for uri in unasked), unasked  # no full file
                shown = await in_browser(view.text)
                save_artifact("app-gallery-no-preview.png", await in_browser(view.screenshot))
                await in_browser(view.click, ".media button.load-full")
                loaded = "document.querySelector('.media > img[data-full=\"yes\"]')"
                await in_browser(view.wait_for, f"{loaded} && {offers}.length === 1")
                width = await in_browser(view.evaluate, f"(i => i.decode().then(() => i.naturalWidth))({loaded})")
                clicked = reads(host)[len(unasked) :]
            finally:
                await in_browser(view.close)
    assert sorted(unasked) == sorted(f"kie://previews/{p.removeprefix('outputs/')}" for p in stills), unasked
    assert shown.count("No preview; click to load the full file") == 2, shown
    assert len(clicked) == 1 and clicked[0] in [f"kie://outputs/{p.removeprefix('outputs/')}" for p in stills]
    assert width == 320  # the picture itself, once asked for


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_right_to_left_prompt_reads_right_to_left(connect_app, browser, tmp_path):
    """The audit: a Hebrew prompt was laid out left to right on the tile and the card (its full stop at the wrong
    end); so was an input's name. Each takes its direction from its own text. (An input's caption names it as the
    call wrote it: here a file in the workspace's root, its Hebrew name alone; under a Latin folder the path reads
    left to right, as the path it is.)"""
    prompt = "צילום מוצר של בקבוק סרום על צפחה רטובה, תאורה רכה 4K!"
    picture = "בקבוק.png"
    (tmp_path / still(tmp_path, picture)).rename(tmp_path / picture)
    direction = "(s => getComputedStyle(document.querySelector(s)).direction)"
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**IMAGE, "prompt": prompt})
        priced = await client.call_tool("estimate_cost", {**IMAGE, "prompt": prompt, "images": [picture]})
        async with AppHost(client).running() as host:
            seen: dict[str, str] = {}
            for name, result, selectors in (
                ("made", made, [".tile .prompt"]),
                ("card", priced, [".card blockquote", ".inputs figcaption"]),
            ):
                view = await in_browser(AppView, browser, host.show(name, {}, result))
                try:
                    await in_browser(view.wait_for, f"document.querySelector({selectors[-1]!r})")
                    for selector in selectors:
                        seen[selector] = await in_browser(view.evaluate, f"{direction}({selector!r})")
                    save_artifact(f"app-rtl-{name}.png", await in_browser(view.screenshot))
                finally:
                    await in_browser(view.close)
    assert seen == {".tile .prompt": "rtl", ".card blockquote": "rtl", ".inputs figcaption": "rtl"}, seen


async def test_the_preview_resource_refuses_what_the_outputs_resource_refuses(
    connect, mode, tmp_path_factory, tmp_path
):
    """kie://previews/<path> serves the kept preview of what kie://outputs/<path> serves, judged the same way:
    nothing outside outputs/, no dotfile (the kept previews themselves are dotfiles: served only as previews), no
    link leading out; and "not found" when there is no preview to make."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    Image.new("RGB", (900, 600), (200, 30, 30)).save(elsewhere / "secret.png")
    (tmp_path / ".env").write_text("KIE_API_KEY=sk-live-not-for-you\n")
    folder = tmp_path / "outputs" / "2026-01-01-demo"
    folder.mkdir(parents=True)
    big_jpeg(folder / "result.jpg")
    Image.new("RGB", (900, 600), (20, 120, 200)).save(folder / ".partial.png")
    (folder / "escape.png").symlink_to(elsewhere / "secret.png")
    (folder / "env.png").symlink_to(tmp_path / ".env")
    (folder / "result.json").write_text('{"task_id": "t1"}\n')
    kept = thumbnail_path(folder / "result.jpg", "image/jpeg", 768)
    refused = [
        "2026-01-01-demo/escape.png",
        "2026-01-01-demo/env.png",
        "2026-01-01-demo/.partial.png",
        f"2026-01-01-demo/{kept.name}",  # a kept preview is never a saved result, through either resource
        "2026-01-01-demo/missing.png",
        "../.env",
        "%2e%2e/.env",
        "2026-01-01-demo/../../.env",
        "../../" + str(elsewhere.relative_to(elsewhere.anchor)) + "/secret.png",
    ]
    async with connect() as client:
        served = await client.read_resource("kie://previews/2026-01-01-demo/result.jpg")
        again = await client.read_resource("kie://previews/2026-01-01-demo/result.jpg")
        for path in refused:
            for scheme in ("outputs", "previews"):
                with pytest.raises(MCPError) as caught:
                    await client.read_resource(f"kie://{scheme}/{path}")
                assert caught.value.code == not_found_code(mode), (scheme, path, caught.value)
                assert "sk-live" not in str(caught.value)
        with pytest.raises(MCPError, match="No preview") as caught:  # served as a file, but not a picture
            await client.read_resource("kie://previews/2026-01-01-demo/result.json")
        assert caught.value.code == not_found_code(mode)
    [content] = served.contents
    picture = Image.open(io.BytesIO(base64.b64decode(content.blob)))
    assert content.mime_type == "image/jpeg" and picture.size == (768, 512)  # KIE_PREVIEW_PX, not the 2400 px file
    assert again.contents[0].blob == content.blob and kept.is_file()  # made once, kept beside the result


@pytest.mark.skipif(os.name == "nt", reason="FIFOs")
async def test_a_preview_resource_is_never_held_up_by_a_fifo_in_place_of_a_kept_preview(connect, tmp_path):
    """A FIFO planted where the kept preview goes (dated like the result, as a kept preview is) is no kept preview:
    never waited on; the preview is made again in its place."""
    folder = tmp_path / "outputs" / "2026-01-01-demo"
    folder.mkdir(parents=True)
    big_jpeg(folder / "result.jpg")
    kept = thumbnail_path(folder / "result.jpg", "image/jpeg", 768)
    os.mkfifo(kept)
    stamp = (folder / "result.jpg").stat().st_mtime_ns
    os.utime(kept, ns=(stamp, stamp))
    waited: list[bool] = []

    def release() -> None:  # a reader stuck on the FIFO is let go after a while, so a failure fails, never hangs
        if stat.S_ISFIFO(os.lstat(kept).st_mode):
            waited.append(True)
            os.close(os.open(kept, os.O_WRONLY | os.O_NONBLOCK))

    watchdog = threading.Timer(5.0, release)
    watchdog.start()
    try:
        async with connect() as client:
            served = await client.read_resource("kie://previews/2026-01-01-demo/result.jpg")
    finally:
        watchdog.cancel()
    assert not waited  # the FIFO was never read from
    assert served.contents[0].mime_type == "image/jpeg" and kept.is_file()  # a real kept preview took its place


async def test_a_video_without_a_poster_has_no_preview_and_says_so(connect, mode, tmp_path, monkeypatch):
    """No ffmpeg: a video gets no poster frame, and its preview resource answers "not found", as a missing file."""
    from kie_mcp.media import stitch

    def no_ffmpeg() -> str:
        raise StitchError("no ffmpeg here")

    monkeypatch.setattr(stitch, "find_ffmpeg", no_ffmpeg)
    folder = tmp_path / "outputs" / "2026-01-01-demo"
    folder.mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64)
    async with connect() as client:
        with pytest.raises(MCPError, match="No preview") as caught:
            await client.read_resource("kie://previews/2026-01-01-demo/clip.mp4")
        full = await client.read_resource("kie://outputs/2026-01-01-demo/clip.mp4")  # the file itself is served
    assert caught.value.code == not_found_code(mode)
    assert full.contents[0].mime_type == "video/mp4"


async def test_the_card_and_the_form_show_every_structured_setting_approve_sends(connect_app):
    """Kling 3.0 multi-shot: each shot's prompt is paid for and sent; the card showed only ``multi_shots: true`` and
    the form not even that, though the request's own prompt is empty."""
    shots = [{"prompt": "a fox runs through snow", "duration": 3}, {"prompt": "it stops at a river", "duration": 2}]
    request = {"model": "kling-3.0/video", "prompt": "", "options": {"multi_shots": True, "multi_prompt": shots}}
    seen: list[str] = []
    async with connect_app(elicitation=answering(action="decline", seen=seen)) as client:
        card = card_of(await client.call_tool("estimate_cost", request))
        await client.call_tool("generate_video", request)
    shown = dict(card["settings"])
    assert "a fox runs through snow" in shown["multi_prompt"] and "it stops at a river" in shown["multi_prompt"]
    assert "multi_prompt=" in seen[0] and "a fox runs through snow" in seen[0], seen


async def test_no_part_of_a_card_holds_the_key_pasted_into_a_prompt(connect_app, controls):
    """The form, the answer and the gallery show ``[redacted]``; the card's prompt (kept by hosts in ``_meta``)
    showed the key in full, and then (the audit) the arguments Approve sends still held it, the one place in the
    answer that did. They are redacted too, so the card no longer holds the request it priced: it says so
    (``holds_key``: no Approve), and Approve's call sent all the same is refused by the quote's binding, free."""
    from kie_mcp.sandbox import SANDBOX_API_KEY

    request = {**IMAGE, "prompt": f"A red apple, key {SANDBOX_API_KEY}"}
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", request)
        card = card_of(estimate)
        sent = await client.call_tool(card["tool"], {**card["arguments"], "quote_id": card["quote_id"]})
        plain = card_of(await client.call_tool("estimate_cost", IMAGE))
    wire = str(estimate.model_dump(mode="json", by_alias=True))
    assert SANDBOX_API_KEY not in wire and "[redacted]" in card["prompt"], card["prompt"]
    assert card["arguments"] == {**request, "prompt": "A red apple, key [redacted]"} and card["holds_key"] is True
    assert sent.structured_content["status"] == "confirmation_required", text_of(sent)
    assert await controls.creates() == []
    assert plain["arguments"] == IMAGE and plain["holds_key"] is False  # any other request: sent as given


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_the_key_pasted_into_a_prompt_is_shown_by_neither_the_card_nor_the_working_view(
    connect_app, controls, browser
):
    """The card of a request that held the key offers no Approve and says why; the "Working on it" view showed the
    raw prompt from the call's input (the host's own copy, which nothing redacts): it now shows no part of it."""
    from kie_mcp.sandbox import SANDBOX_API_KEY

    from .test_app_edges import read_in_view

    request = {**IMAGE, "prompt": f"A red apple, key {SANDBOX_API_KEY}"}
    html = "document.documentElement.outerHTML"
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", request)
        card = await read_in_view(
            client, browser, "key-card", request, estimate, "document.querySelector('.card .approve')",
            "({disabled: document.querySelector('.card .approve').disabled, text: document.body.innerText, "
            f"html: {html}}})",
        )  # fmt: skip
        # shown once the call's input has come (before it, the view waits for kie-mcp): the input, never the result
        working = await read_in_view(
            client, browser, "key-working", request, estimate, "document.body.innerText.includes('Working on it')",
            html, "&noresult",
        )  # fmt: skip
    assert card["disabled"] is True and "holds your KIE API key" in card["text"], card["text"]
    assert SANDBOX_API_KEY not in card["html"] and SANDBOX_API_KEY not in working
    assert await controls.creates() == []


async def test_a_card_after_the_client_refused_its_form_approves_with_its_quote(connect_app, controls, mode):
    """A client that declares forms but refuses kie-mcp's: the card came back still saying "form", so every Approve
    asked for a form the client refused again, for ever. It now sends its quote, which approves once; under
    KIE_APPROVAL=form, where only the form approves, the card says it cannot."""
    if mode != "legacy":
        pytest.skip("in the 2026-07-28 era the form travels with the answer; the client fails its own call")
    async with connect_app(elicitation=refusing_forms) as client:
        card = card_of(await client.call_tool("generate_image", IMAGE))
        assert card["form_refused"] is True and card["confirm"] == "quote" and card["binds"] is False
        made = await client.call_tool(card["tool"], {**card["arguments"], "quote_id": card["quote_id"]})
    assert made.structured_content["status"] == "completed", text_of(made)
    async with connect_app(elicitation=refusing_forms, approval="form") as client:
        answer = await client.call_tool("generate_image", IMAGE)
        bound = card_of(answer)
    assert bound["form_refused"] is True and bound["form_only"] is True
    # and the agent is not sent round in a loop: a quote_id cannot approve here, and the answer says what can
    assert "call generate_image again" not in text_of(answer) and "KIE_APPROVAL=any" in text_of(answer), text_of(answer)
    assert len(await controls.creates()) == 1


async def test_a_request_made_before_says_so_when_it_is_asked_again(connect_app, controls):
    """An approval card shown again later (a reloaded conversation) asks the same question word for word, and a yes
    made the same request again. The quote, the form and the card now name what it already made."""
    seen: list[str] = []
    async with connect_app(elicitation=answering(seen=seen)) as client:
        first = await client.call_tool("generate_image", IMAGE)
        task_id = first.structured_content["tasks"][0]["task_id"]
        card = card_of(await client.call_tool("estimate_cost", IMAGE))
        again = await client.call_tool("generate_image", IMAGE)
    assert task_id not in seen[0]
    assert "already made" not in text_of(again)  # the answer of the call that made it again does not say "approving"
    assert "already made at" in seen[1] and task_id in seen[1], seen[1]
    assert any(task_id in note for note in card["notes"]), card["notes"]
    assert len(await controls.creates()) == 2  # the person said yes again: made again, as asked


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_decline_says_when_the_assistant_could_not_be_told(connect_app, controls, browser):
    """A host that takes neither ``ui/message`` nor ``ui/update-model-context``: the card said "The assistant was
    told you declined" all the same. It now says to tell the assistant in the chat; nothing is spent either way."""
    async with connect_app() as client:
        asked = await client.call_tool("generate_image", IMAGE)
        async with AppHost(client).running() as host:
            url = host.show("untold", IMAGE, asked) + "&refuse=ui/message,ui/update-model-context"
            card = await in_browser(AppView, browser, url)
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .decline')")
                await in_browser(card.click, ".card .decline")
                await in_browser(card.wait_for, "document.body.innerText.includes('Nothing was spent')")
                shown = await in_browser(card.text)
            finally:
                await in_browser(card.close)
    assert "say in the chat that you declined" in shown and "was told" not in shown, shown
    assert await controls.creates() == []


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_card_whose_form_the_client_refused_cannot_loop(connect_app, controls, browser):
    """KIE_APPROVAL=form on a client that declares forms but refuses kie-mcp's: every Approve asked for the form
    again and came back with the same card. Only that form approves there, so the card says so and Approve is off."""
    async with connect_app(elicitation=refusing_forms, approval="form") as client:
        asked = await client.call_tool("generate_image", IMAGE)
        async with AppHost(client).running() as host:
            card = await in_browser(AppView, browser, host.show("refused", IMAGE, asked))
            try:
                await in_browser(card.wait_for, "document.querySelector('.card .approve')")
                disabled = await in_browser(card.evaluate, "document.querySelector('.card .approve').disabled")
                shown = await in_browser(card.text)
            finally:
                await in_browser(card.close)
    assert disabled is True
    assert "did not show kie-mcp's confirmation dialog" in shown and "KIE_APPROVAL=any" in shown, shown
    assert await controls.creates() == []


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_unfinished_tasks_are_followed_a_few_at_a_time(connect_app, controls, browser):
    """A list of twelve running tasks: the view followed each with its own waiting check_task, all at once (two
    hundred for ``limit=200``), as the previews were not. It now follows four at a time; every tile still shows."""
    async with connect_app(elicitation=answering(), auto_approve_credits=200) as client:
        await controls.post("clock/speed", {"speed": 0})  # KIE never finishes them while the view is open
        made = await client.call_tool("generate_image", {**IMAGE, "variations": 6, "wait_seconds": 0})
        again = await client.call_tool(
            "generate_image", {**IMAGE, "prompt": "a green pear", "variations": 6, "wait_seconds": 0}
        )
        assert {made.structured_content["status"], again.structured_content["status"]} == {"submitted"}
        listed = await client.call_tool("list_tasks", {})
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("running", {}, listed))
            try:
                await in_browser(view.wait_for, "document.querySelectorAll('.tile').length === 12")
                with anyio.fail_after(20):  # the host page counts the check_task calls waiting (app_host.html)
                    while await in_browser(view.page.evaluate, "window.checksAtOnce") < 4:  # noqa: ASYNC110
                        await anyio.sleep(0.1)
                await anyio.sleep(1.5)  # the rest would have been sent by now
                most = await in_browser(view.page.evaluate, "window.checksAtOnce")
                await controls.post("clock/speed", {"speed": 1000})  # they end: the waiting calls come back
            finally:
                await in_browser(view.close)
    assert most == 4, most


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_result_sent_again_keeps_its_running_task_current(connect_app, controls, browser):
    """The audit: the host sent the same tool result again into the live view (it redraws it) while a task was
    followed; the new tile was never followed, as the task was taken for followed already (by the old tile, no
    longer shown), and it read "queued" for ever. The tile drawn again now takes the following over."""
    call = {**VIDEO, "wait_seconds": 0}
    async with connect_app(elicitation=answering()) as client:
        await controls.post("clock/speed", {"speed": 0})  # the clip runs until the view has been drawn again
        made = await client.call_tool("generate_video", call)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("again", call, made))
            try:
                await host.until_sent("tools/call")  # the first tile follows the task
                again = "toView({jsonrpc: '2.0', method: 'ui/notifications/tool-result', params: session.toolResult})"
                await in_browser(view.page.evaluate, again + ", true")
                shown = "document.querySelector('.tile .state').textContent"
                await in_browser(view.wait_for, f"{shown} === 'queued'")
                await controls.post("clock/speed", {"speed": 1000})  # it ends
                await in_browser(view.wait_for, f"{shown} === 'succeeded'", 40)
            finally:
                await in_browser(view.close)


@pytest.mark.parametrize("mode", ["legacy"])
async def test_in_a_browser_a_picture_widens_from_the_keyboard(connect_app, browser):
    """A click shows the full picture; so do Tab and Enter (the picture could not be reached without a mouse)."""
    async with connect_app(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        async with AppHost(client).running() as host:
            view = await in_browser(AppView, browser, host.show("keys", IMAGE, made))
            try:
                await in_browser(view.wait_for, "document.querySelector('.media img')")
                focusable = await in_browser(view.evaluate, "document.querySelector('.media img').tabIndex")
                await in_browser(
                    view.evaluate,
                    "document.querySelector('.media img').dispatchEvent("
                    "new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}))",
                )
                await in_browser(view.wait_for, "document.querySelector('.tile.wide')")
            finally:
                await in_browser(view.close)
    assert focusable == 0


async def test_a_card_never_decodes_a_larger_picture_than_its_estimate_does(connect_app, tmp_path):
    """The review: the estimate reads only the header of a picture over 16 megapixels (a 38-byte WebP declaring
    13000 x 13000 took 2.7 GB to decode), but the card's preview of it still decoded up to 64 megapixels at full
    size, every time a card was drawn. A picture decoded at full size (not JPEG) over that is named, not drawn; a
    JPEG, decoded at an eighth of its size, is drawn."""
    from PIL import Image

    big = Image.new("RGB", (5000, 4000), (200, 120, 40))  # 20 megapixels
    big.save(tmp_path / "wide.png")
    big.save(tmp_path / "wide.jpg", quality=60)
    request = {"model": "nano-banana-2", "prompt": "the same, at dusk", "images": ["wide.png", "wide.jpg"]}
    async with connect_app() as client:
        estimate = await client.call_tool("estimate_cost", request)
    assert not estimate.is_error, text_of(estimate)
    png, jpeg = card_of(estimate)["inputs"]
    assert png["name"] == "wide.png" and "src" not in png
    assert jpeg["name"] == "wide.jpg" and jpeg["src"].startswith("data:image/")
