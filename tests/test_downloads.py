"""Saving results: real downloads from the simulator over HTTP, with its expiry and file faults."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

from kie_mcp.kie import KieClient
from kie_mcp.media.downloads import (
    DownloadError,
    download,
    mime_to_ext,
    output_folder,
    result_name,
    sniff_mime,
    thumbnail,
    write_json_atomic,
)
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator

from .conftest import API, UPLOADS, Controls

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SimConfig(speed=0))  # a frozen clock: only sim.advance moves it


@pytest.fixture
async def kie(transport: SandboxTransport) -> AsyncIterator[KieClient]:
    async with KieClient(api_key=SANDBOX_API_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport) as c:
        yield c


async def finished(controls: Controls, sim: Simulator, model: str = "nano-banana-2", **fields: Any) -> list[str]:
    """Create a task over HTTP, let it finish, return its result URLs."""
    body = {"model": model, "input": {"prompt": "a red fox", **fields}}
    answer = (await controls.http.post("/api/v1/jobs/createTask", json=body, headers=AUTH)).json()
    assert answer["code"] == 200, answer
    sim.advance(1800)
    query = {"taskId": answer["data"]["taskId"]}
    data = (await controls.http.get("/api/v1/jobs/recordInfo", params=query, headers=AUTH)).json()["data"]
    assert data["state"] == "success", data
    return json.loads(data["resultJson"])["resultUrls"]


async def video_url(controls: Controls, sim: Simulator, size: int) -> str:
    await controls.post("config", {"video_bytes": size})
    return (await finished(controls, sim, "sora-2-text-to-video"))[0]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- good downloads ------------------------------------------------------------------------


async def test_image_is_saved_verified_and_renamed_to_its_real_type(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    [url] = await finished(controls, sim, output_format="jpg")
    folder = tmp_path / "outputs" / "day"  # created on demand
    saved = await download(kie.files, url, folder / "fox.png", expected="image")

    assert saved.path == folder / "fox.jpg"  # the bytes are a JPEG, whatever the name said
    assert saved.path.is_absolute()
    assert saved.mime == "image/jpeg"
    assert saved.url == saved.source_url == url
    assert saved.size == saved.path.stat().st_size
    assert saved.sha256 == sha256(saved.path)
    assert listing(folder) == ["fox.jpg"]

    thumb = thumbnail(saved.path, max_side=64)
    assert thumb is not None
    data, mime = thumb
    assert mime == "image/jpeg"
    assert max(Image.open(io.BytesIO(data)).size) <= 64


async def test_video_is_saved_and_an_identical_file_is_not_rewritten(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    url = await video_url(controls, sim, 3_000_000)
    dest = tmp_path / "clip.mp4"
    saved = await download(kie.files, url, dest, expected="video")
    assert (saved.path, saved.mime, saved.size) == (dest, "video/mp4", 3_000_000)
    assert saved.sha256 == sha256(dest)
    assert thumbnail(dest) is None  # not an image

    before = dest.stat()
    again = await download(kie.files, url, dest, expected="video")  # a resumed session fetches it again
    assert again == saved
    after = dest.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert listing(tmp_path) == ["clip.mp4"]


# -- expired links -------------------------------------------------------------------------


async def test_expired_result_link_is_reminted_through_download_url(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    [url] = await finished(controls, sim, output_format="png")
    sim.advance(sim.config.result_url_ttl_seconds + 1)

    with pytest.raises(DownloadError) as caught:
        await download(kie.files, url, tmp_path / "a.png")
    assert caught.value.expired and caught.value.status == 403
    assert "expired" in str(caught.value) and "14 days" in str(caught.value)
    assert listing(tmp_path) == []

    saved = await download(kie.files, url, tmp_path / "a.png", expected="image", remint=kie.download_url)
    assert saved.source_url == url
    assert "/dl/" in saved.url and saved.url != url
    assert saved.mime == "image/png"
    assert saved.sha256 == sha256(tmp_path / "a.png")
    assert listing(tmp_path) == ["a.png"]


async def test_a_refused_fresh_link_is_tried_once_and_explained(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    [url] = await finished(controls, sim)
    sim.advance(sim.config.result_url_ttl_seconds + 1)
    asked: list[str] = []

    async def gone(original: str) -> str:
        asked.append(original)
        return f"{API}/files/deleted-task/0.png"  # the file is gone: 404

    with pytest.raises(DownloadError) as caught:
        await download(kie.files, url, tmp_path / "a.png", remint=gone)
    assert asked == [url]
    assert caught.value.status == 404
    # Its age is not known here: a refusal that may pass, tried again, never "gone, generate it again (paid)".
    assert "was refused" in str(caught.value) and "tries again in the background" in str(caught.value)
    assert "probably gone" not in str(caught.value) and "charged" not in str(caught.value)
    assert listing(tmp_path) == []


# -- refused bodies: nothing is left ---------------------------------------------------------


@pytest.mark.parametrize("after_bytes", [None, 100_000])
async def test_truncated_body_leaves_nothing(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path, after_bytes: int | None
) -> None:
    url = await video_url(controls, sim, 1_000_000)
    fault = {} if after_bytes is None else {"after_bytes": after_bytes}
    await controls.fault("files", kind="truncate", **fault)
    dest = tmp_path / "clip.mp4"
    (tmp_path / "other.txt").write_text("kept")

    with pytest.raises(DownloadError) as caught:
        await download(kie.files, url, dest, expected="video")
    assert "truncated" in str(caught.value) and caught.value.retryable
    assert listing(tmp_path) == ["other.txt"]

    assert (await download(kie.files, url, dest)).size == 1_000_000  # the fault was used up: it works now


async def test_a_cut_connection_is_retryable_and_leaves_nothing(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    [url] = await finished(controls, sim)
    await controls.fault("files", kind="drop")
    with pytest.raises(DownloadError) as caught:
        await download(kie.files, url, tmp_path / "a.png")
    assert caught.value.retryable and "try again" in str(caught.value)
    assert listing(tmp_path) == []


async def test_wrong_types_and_error_pages_are_refused(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    url = await video_url(controls, sim, 500_000)
    with pytest.raises(DownloadError, match="Expected an image but the file is video/mp4"):
        await download(kie.files, url, tmp_path / "a.png", expected="image")

    await controls.fault("files", kind="html", status=200)  # a CDN page answered with 200
    with pytest.raises(DownloadError, match="web page"):
        await download(kie.files, url, tmp_path / "clip.mp4")

    await controls.fault("files", kind="html", status=502)
    with pytest.raises(DownloadError) as caught:
        await download(kie.files, url, tmp_path / "clip.mp4")
    assert caught.value.status == 502 and caught.value.retryable
    assert listing(tmp_path) == []


async def test_a_web_page_in_place_of_the_file_is_fetched_again_through_a_fresh_link(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    [url] = await finished(controls, sim, output_format="png")
    await controls.fault("files", kind="html", status=200)  # a CDN's "link expired" page, answered with 200
    saved = await download(kie.files, url, tmp_path / "a.png", expected="image", remint=kie.download_url)
    assert "/dl/" in saved.url and saved.source_url == url  # saved from the fresh link KIE gave
    assert saved.mime == "image/png" and listing(tmp_path) == ["a.png"]

    await controls.fault("files", kind="html", status=200, times=2)  # the fresh link serves the page too
    with pytest.raises(DownloadError) as caught:
        await download(kie.files, url, tmp_path / "b.png", expected="image", remint=kie.download_url)
    assert caught.value.retryable and caught.value.expired  # trying later may work; its message says what to do
    assert "web page" in str(caught.value) and "fresh link" in str(caught.value)
    assert listing(tmp_path) == ["a.png"]


async def test_a_video_tasks_first_result_must_be_a_video_and_only_later_ones_may_be_its_frames(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    from kie_mcp.media.results import _expected  # what save_results asks of the n-th link of a task

    [url] = await finished(controls, sim, output_format="png")  # a picture where a video task's video should be
    with pytest.raises(DownloadError, match="Expected a video but the file is image/png"):
        await download(kie.files, url, tmp_path / "clip.mp4", expected=_expected("video", 1))
    frame = await download(kie.files, url, tmp_path / "last-frame.png", expected=_expected("video", 2))
    assert frame.mime == "image/png" and listing(tmp_path) == ["last-frame.png"]


async def test_max_bytes_is_enforced(controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path) -> None:
    url = await video_url(controls, sim, 1_000_000)
    with pytest.raises(DownloadError, match="limit"):  # announced by Content-Length: refused before reading
        await download(kie.files, url, tmp_path / "clip.mp4", max_bytes=999_999)
    assert listing(tmp_path) == []

    # A server that announces no length is cut off while streaming (a bare HTTP fake, not our code mocked).
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"\x00\x00\x00\x18ftypisom" + bytes(65_536)

    def endless(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=chunks())

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(endless)) as client:
        with pytest.raises(DownloadError, match="limit"):
            await download(client, "http://cdn.test/x.mp4", tmp_path / "x.mp4", max_bytes=1_000_000)
    assert listing(tmp_path) == []


async def test_a_trickling_file_server_is_given_up_on_and_tried_again_later(tmp_path: Path, monkeypatch) -> None:
    """The audit: a file server sending a byte every two seconds never trips the read timeout, so the download held
    its slot (and the task's check_task) for as long as the trickle lasted. Less than TRICKLE_BYTES in
    TRICKLE_SECONDS now stops it, retryable (the follower tries again later), with nothing left behind."""
    from kie_mcp.media import downloads

    monkeypatch.setattr(downloads, "TRICKLE_SECONDS", 0.3)  # a minute, shortened (a bare HTTP fake trickles)

    async def trickle() -> AsyncIterator[bytes]:
        yield b"\x89PNG\r\n\x1a\n" + bytes(56)
        for _ in range(200):
            await anyio.sleep(0.02)
            yield b"\x00"

    def slow(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=trickle())

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(slow)) as client:
        with anyio.fail_after(3), pytest.raises(DownloadError, match="too slowly") as caught:
            await download(client, "http://cdn.test/x.png", tmp_path / "x.png")
    assert caught.value.retryable
    assert listing(tmp_path) == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://cdn.example/x.png"])
async def test_a_result_link_that_is_no_web_address_is_refused_for_good(tmp_path: Path, url: str) -> None:
    """The audit: a link (or a redirect) to file:// or ftp:// was "cut off ... usually temporary: try again", and
    the background tried it again seven times. Nothing local is ever read; it is now refused once, for good."""
    async with httpx2.AsyncClient() as client:  # fails before any connection: no network needed
        with pytest.raises(DownloadError, match="not a web address") as caught:
            await download(client, url, tmp_path / "x.png")
    assert caught.value.refused and not caught.value.retryable
    assert listing(tmp_path) == []


async def test_cancellation_mid_download_leaves_nothing(
    controls: Controls, sim: Simulator, kie: KieClient, tmp_path: Path
) -> None:
    url = await video_url(controls, sim, 8_000_000)
    await controls.fault("files", kind="stall", after_bytes=3_000_000, seconds=30)  # a slow CDN
    seen: list[str] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(download, kie.files, url, tmp_path / "clip.mp4")
            while not seen:  # wait until the download is really under way
                await anyio.sleep(0.01)
                seen = [name for name, size in sizes(tmp_path).items() if size >= 2_000_000]
            group.cancel_scope.cancel()
    assert seen[0].startswith(".clip.mp4.part-")
    assert listing(tmp_path) == []

    with anyio.move_on_after(0.2) as scope:  # the shape a caller uses: a deadline around the download
        await controls.fault("files", kind="stall", after_bytes=0, seconds=30)
        await download(kie.files, url, tmp_path / "clip.mp4")
    assert scope.cancelled_caught
    assert listing(tmp_path) == []


async def test_body_faults_apply_only_to_files(controls: Controls) -> None:
    bad = await controls.http.post("/__sim/faults", json={"endpoint": "create", "fault": {"kind": "truncate"}})
    assert bad.status_code == 400 and "result files" in bad.json()["error"]
    bad = await controls.http.post("/__sim/faults", json={"endpoint": "files", "fault": {"kind": "stall"}})
    assert bad.status_code == 400 and "seconds" in bad.json()["error"]


# -- names, sidecars, sniffing ----------------------------------------------------------------


def test_output_folder_is_deterministic_and_safe(tmp_path: Path) -> None:
    day = date(2026, 3, 9)
    assert output_folder(tmp_path, "Fox in the Snow!", day) == tmp_path / "outputs" / "2026-03-09-fox-in-the-snow"
    assert output_folder(tmp_path, "Café crème", day).name == "2026-03-09-cafe-creme"
    for hostile in ("../../etc", "", "   ", "🦊🌲", "..", "/abs/path", "a\\b\x00c", ".hidden", "CON"):
        folder = output_folder(tmp_path, hostile, day)
        assert folder.parent == tmp_path / "outputs", hostile
        assert folder.name.startswith("2026-03-09-") and len(folder.name) > len("2026-03-09-"), hostile
        assert "/" not in folder.name and "\\" not in folder.name and ".." not in folder.name
        assert folder == output_folder(tmp_path, hostile, day)
    assert re.fullmatch(r"2026-03-09-[0-9a-f]{8}", output_folder(tmp_path, "🦊", day).name)
    assert output_folder(tmp_path, "🦊", day) != output_folder(tmp_path, "🐻", day)
    assert output_folder(tmp_path, "Tokyo 東京", day) == output_folder(tmp_path, "tokyo  東京", day)  # as ASCII names
    assert output_folder(tmp_path, "../../etc", day).name == "2026-03-09-etc"
    long = output_folder(tmp_path, "a very long prompt about " * 10, day).name
    assert len(long) <= len("2026-03-09-") + 40 and not long.endswith("-")


def test_result_name_is_deterministic_and_safe() -> None:
    assert result_name("nano-banana-2", "abc123", 1, "png") == "nano-banana-2_abc123_1.png"
    assert result_name("google/imagen4-fast", "t1", 2, ".JPG") == "google-imagen4-fast_t1_2.jpg"
    assert result_name("kling-3.0/video", "veo_task_9", 1, "mp4") == "kling-3.0-video_veo_task_9_1.mp4"
    for model, task, ext in (("../../x", "../y", "../z"), ("", "", ""), ("🦊", "a/b\\c", "p/ng")):
        name = result_name(model, task, 1, ext)
        assert "/" not in name and "\\" not in name and ".." not in name and not name.startswith("."), name
        assert name == result_name(model, task, 1, ext)


def test_write_json_atomic_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "side" / "a.json"
    write_json_atomic(path, {"prompt": "renard 🦊", "at": date(2026, 1, 2)})
    write_json_atomic(path, {"n": 2})
    assert json.loads(path.read_text(encoding="utf-8")) == {"n": 2}
    assert os.listdir(path.parent) == ["a.json"]


def test_sniffing_knows_the_result_types() -> None:
    samples = {
        b"\x89PNG\r\n\x1a\n": "image/png",
        b"\xff\xd8\xff\xe0": "image/jpeg",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ": "image/webp",
        b"\x00\x00\x00\x18ftypisom": "video/mp4",
        b"\x00\x00\x00\x14ftypqt  ": "video/quicktime",
        b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm": "video/webm",
        b"ID3\x04\x00": "audio/mpeg",
        b"\xff\xfb\x90\x64": "audio/mpeg",
        b"RIFF\x00\x00\x00\x00WAVEfmt ": "audio/wav",
        b"  <!DOCTYPE html><html>": "text/html",
        b'{"code": 403}': "application/json",
        b"\x00\x01\x02\x03": "application/octet-stream",
    }
    for data, mime in samples.items():
        assert sniff_mime(data) == mime, data
    assert [mime_to_ext(m) for m in ("image/jpeg", "video/quicktime", "audio/mpeg", "x/unknown")] == [
        "jpg",
        "mov",
        "mp3",
        "bin",
    ]
