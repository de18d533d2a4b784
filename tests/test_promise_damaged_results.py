"""A result that is saved but cannot be used is never a clean success, each promise kept against the simulator
through the real MCP client in both protocol eras:

- an image KIE serves cut short (its length agreeing, so only decoding tells) is fetched once more, a download
  only, never a new task; a good second copy is what is kept, with nothing to say;
- still damaged, it is kept (it is paid for) and the answer and check_task say it does not open as an image, and
  where KIE shows the task;
- a video KIE serves cut short (no movie box yet, or its media data ending early: ffmpeg's "partial file") is the
  same: fetched once more, a good second copy kept with nothing to say; still cut short, kept and said in the
  answer and by check_task not to be a whole video; a whole video is fetched once and never called damaged, nor
  is one with a few bytes after its last box (trailing data a player never reads);
- a result of the wrong kind is named for what it is (a PDF is a PDF, not plain text).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from PIL import Image, PngImagePlugin

from kie_mcp.media.downloads import DownloadError, download
from kie_mcp.sandbox import media as sandbox_media

from .conftest import answering, eras_in_turn, text_of
from .test_followups import MARKET, requests_to

IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2", "wait_seconds": 30}
VIDEO = {"prompt": "waves rolling onto a beach at dusk", "model": "veo3_fast", "wait_seconds": 40}
VEO = "/api/v1/veo/generate"
# Where a sandbox clip is cut: inside its movie box (no moov whole), and inside its media data (ffmpeg opens it and
# says "partial file")
CUTS = [1500, 20000]


async def file_gets(controls) -> int:
    return sum(1 for r in (await controls.get("requests"))["requests"] if r["path"].startswith(("/files/", "/dl/")))


async def test_an_image_kie_serves_damaged_once_is_fetched_again_and_saved_whole(connect, controls, tmp_path):
    await controls.fault("files", kind="damaged")
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
    task = made.structured_content["tasks"][0]
    [saved] = task["files"]
    with Image.open(tmp_path / saved) as image:
        image.load()  # the second copy, whole
    assert "does not open as an image" not in text_of(made), text_of(made)
    assert len(await requests_to(controls, MARKET)) == 1  # a download again, never a task again


async def test_an_image_kie_stored_damaged_is_saved_and_said_not_to_open(connect, controls, tmp_path):
    """The audit: a 600-byte cut JPEG was saved and reported as a clean success, with no picture and no warning.
    The answer and check_task now say it does not open as an image, and where KIE shows the task."""
    await controls.fault("files", kind="damaged", times=2)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task = made.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    [saved] = task["files"]
    assert (tmp_path / saved).stat().st_size > 0  # kept: it is paid for
    text = text_of(made)
    assert task["state"] == "succeeded" and f"saved to {saved}, but it does not open as an image" in text, text
    assert "https://kie.ai/logs" in text, text
    text = text_of(checked)
    assert "saved, but it does not open as an image" in text and "https://kie.ai/logs" in text, text
    assert checked.structured_content["saved_files"][0]["damaged"], checked.structured_content["saved_files"]
    assert len(await requests_to(controls, MARKET)) == 1


@eras_in_turn("cut", CUTS)
async def test_a_video_kie_serves_cut_short_once_is_fetched_again_and_saved_whole(connect, controls, tmp_path, cut):
    await controls.fault("files", kind="damaged", after_bytes=cut)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", VIDEO)
    task = made.structured_content["tasks"][0]
    [saved] = task["files"]
    assert (tmp_path / saved).stat().st_size > cut  # the second copy, whole
    assert "not a whole video" not in text_of(made), text_of(made)
    assert await file_gets(controls) == 2
    assert len(await requests_to(controls, VEO)) == 1  # a download again, never a task again


@eras_in_turn("cut", CUTS)
async def test_a_video_kie_stored_cut_short_is_saved_and_said_not_to_be_whole(connect, controls, tmp_path, cut):
    """The audit: a Veo clip served cut short (its Content-Length agreeing) was saved and answered "Done" with no
    word of it, while an image in the same case was fetched again and said not to open. A video is judged by its
    boxes (a movie box, and none running past its end) as it is saved: fetched once more, then kept and said."""
    await controls.fault("files", kind="damaged", after_bytes=cut, times=-1)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", VIDEO)
        task = made.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    [saved] = task["files"]
    assert (tmp_path / saved).stat().st_size == cut  # kept: it is paid for
    text = text_of(made)
    assert task["state"] == "succeeded" and f"saved to {saved}, but it is not a whole video" in text, text
    assert "cut short" in text and "fetched it once more" in text and "https://kie.ai/logs" in text, text
    text = text_of(checked)
    assert "saved, but it is not a whole video" in text and "https://kie.ai/logs" in text, text
    assert checked.structured_content["saved_files"][0]["damaged"], checked.structured_content["saved_files"]
    assert await file_gets(controls) == 2
    assert len(await requests_to(controls, VEO)) == 1


async def test_a_result_kie_stored_damaged_says_so_in_its_sidecar_and_on_its_gallery_card(connect, controls, tmp_path):
    """The audit: a video kept cut short was said to be damaged only by the answers of the process that saved it:
    its sidecar said nothing of it, so the gallery (built from sidecars) showed it as a clean result, and so did
    every later look at it. The sidecar records why, and the card says so."""
    await controls.fault("files", kind="damaged", times=2)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", VIDEO)
    [saved] = made.structured_content["tasks"][0]["files"]
    folder = (tmp_path / saved).parent
    [sidecar] = folder.glob("*.json")
    [entry] = json.loads(sidecar.read_text())["files"]
    assert entry["damaged"].startswith("it is not a whole video (") and "cut short" in entry["damaged"], entry
    page = (folder / "index.html").read_text()
    assert "Damaged: it is not a whole video (" in page, page


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_whole_video_is_fetched_once_and_never_called_damaged(connect, controls, tmp_path):
    """The simulator's clips are real playable MP4s (a trailing free box pads them to their size): judged whole."""
    await controls.post("config", {"video_bytes": 4_000_000})
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", VIDEO)
        task = made.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    [saved] = task["files"]
    assert (tmp_path / saved).stat().st_size == 4_000_000
    for answer in (made, checked):
        assert "not a whole video" not in text_of(answer) and "stored it damaged" not in text_of(answer), text_of(
            answer
        )
    assert not any(file.get("damaged") for file in checked.structured_content["saved_files"])
    assert await file_gets(controls) == 1


@eras_in_turn("tail", [1, 4])
async def test_a_whole_video_with_bytes_after_it_is_fetched_once_and_never_called_damaged(
    connect, controls, tmp_path, tail
):
    """A playable clip with a few bytes after its last box (zeros a file host appended): a player never reads them,
    so it is whole, fetched once, and no paid regeneration is suggested."""
    await controls.post("config", {"video_bytes": 300_000})
    await controls.fault("files", kind="padded", bytes=300_000 + tail)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", VIDEO)
        task = made.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    [saved] = task["files"]
    assert (tmp_path / saved).stat().st_size == 300_000 + tail
    for answer in (made, checked):
        assert "not a whole video" not in text_of(answer) and "cut short" not in text_of(answer), text_of(answer)
    assert not any(file.get("damaged") for file in checked.structured_content["saved_files"])
    assert await file_gets(controls) == 1


async def test_a_pdf_where_an_image_was_expected_is_named_a_pdf_not_plain_text(tmp_path):
    """The audit: a PDF result was refused as "the file is text/plain". A bare HTTP fake serves it (not our code
    mocked): the refusal says it is a PDF document, and nothing is saved."""

    async def body() -> AsyncIterator[bytes]:
        yield b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

    def pdf(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body())

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(pdf)) as client:
        with pytest.raises(DownloadError, match=r"the file is a PDF document \(application/pdf\); nothing was saved"):
            await download(client, "http://cdn.test/0.png", tmp_path / "result.png", expected="image")
    assert list(tmp_path.iterdir()) == []


def _past_pillows_pixel_guard() -> bytes:
    """A whole PNG of 16000 x 12000 pixels (what a 4x Topaz upscale of a 4000 x 3000 photo makes): past the 179
    million pixels Pillow opens at all, yet small (one bit a pixel)."""
    out = io.BytesIO()
    Image.new("1", (16000, 12000), 1).save(out, format="PNG")
    return out.getvalue()


def _past_pillows_text_guard() -> bytes:
    """A whole PNG carrying 1.1 MB of zipped XMP text: past the metadata Pillow reads."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>" + "x" * (1100 * 1024) + "</x:xmpmeta>", zip=True)
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 30, 30)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


@pytest.mark.parametrize("served", [_past_pillows_pixel_guard, _past_pillows_text_guard], ids=["pixels", "text"])
async def test_a_whole_image_past_pillows_own_guards_is_never_called_damaged(
    connect, controls, tmp_path, monkeypatch, served
):
    """The review: Pillow's guards (more pixels than it opens; a text chunk larger than it reads) were taken for
    damage: a valid upscale was fetched twice and said not to open, inviting a paid remake. Such an image is not
    judged. (The simulated KIE serves the image: its media maker swapped, not kie-mcp's code.)"""
    data = served()
    monkeypatch.setattr(sandbox_media, "image_bytes", lambda *args, **kwargs: data)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", IMAGE)
        task = made.structured_content["tasks"][0]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    assert task["state"] == "succeeded", text_of(made)
    for answer in (made, checked):
        assert "does not open as an image" not in text_of(answer), text_of(answer)
    assert not any(file.get("damaged") for file in checked.structured_content["saved_files"])
    fetched = [
        r for r in (await controls.get("requests"))["requests"] if r["method"] == "GET" and "/files/" in r["path"]
    ]
    assert len(fetched) == 1, fetched  # fetched once, not again as if damaged
