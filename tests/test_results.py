"""Results saved into the workspace: dated folder, deterministic names, sidecar, resource links, resumption."""

from __future__ import annotations

import hashlib
import json

import pytest
from mcp import MCPError

from .conftest import answering, dated, session_folder, text_of

IMAGE = {"prompt": "A red apple on a wooden table", "model": "nano-banana-2"}
VIDEO = {"prompt": "Waves at dusk", "model": "veo3_fast"}


def outputs(workspace):
    return sorted(p.relative_to(workspace).as_posix() for p in (workspace / "outputs").rglob("*") if p.is_file())


async def test_image_is_saved_with_sidecar_link_and_thumbnail(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {**IMAGE, "session": "Spring Launch"})
        task = result.structured_content["tasks"][0]
        link = next(block for block in result.content if block.type == "resource_link")
        read = await client.read_resource(link.uri)
    assert [dated(path) for path in task["files"]] == [
        f"outputs/TODAY-spring-launch/nano-banana-2_{task['task_id']}_1.jpg"
    ]
    folder = task["files"][0].rpartition("/")[0]
    saved = tmp_path / task["files"][0]
    assert saved.read_bytes()[:3] == b"\xff\xd8\xff"
    sidecar = json.loads((tmp_path / folder / f"nano-banana-2_{task['task_id']}.json").read_text())
    assert sidecar["prompt"] == IMAGE["prompt"] and sidecar["credits_quoted"] == 8
    assert sidecar["files"][0]["sha256"] == hashlib.sha256(saved.read_bytes()).hexdigest()
    assert sidecar["files"][0]["source_url"] == task["result_urls"][0]
    assert any(block.type == "image" for block in result.content)  # a thumbnail the agent can look at
    assert str(link.uri) == f"kie://outputs/{task['files'][0].removeprefix('outputs/')}"
    assert read.contents[0].blob
    assert not [p for p in outputs(tmp_path) if ".part" in p]


async def test_folder_slug_from_the_prompt_without_a_session(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", IMAGE)
    assert any(session_folder(tmp_path, "a-red-apple-on-a-wooden-table").iterdir())


async def test_download_never_keeps_links_only(connect, tmp_path):
    async with connect(elicitation=answering(), download=False) as client:
        result = await client.call_tool("generate_image", IMAGE)
    assert result.structured_content["tasks"][0]["files"] == []
    assert result.structured_content["tasks"][0]["result_urls"]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_video_is_saved_when_check_task_sees_it_finish(connect, tmp_path):
    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", VIDEO)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    files = done.structured_content["task"]["files"]
    assert files and files[0].endswith(".mp4")
    assert (tmp_path / files[0]).read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_video_and_the_frames_kie_sends_with_it_are_all_saved(connect, tmp_path):
    request = {
        "model": "bytedance/seedance-2",
        "prompt": "a cat walking along a garden fence",
        "options": {"return_last_frame": True},  # KIE adds lastFrameUrl (an image) to the video's results
    }
    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", {**request, "wait_seconds": 0})
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 20})
    task = done.structured_content["task"]
    assert len(task["result_urls"]) == 3, task  # the video, its first frame and its last frame
    assert sorted(name.rsplit(".", 1)[-1] for name in task["files"]) == ["mp4", "png", "png"], text_of(done)
    assert "Expected a video" not in text_of(done)
    frame = next(name for name in task["files"] if name.endswith(".png"))
    assert (tmp_path / frame).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pictures = [c for c in done.content if c.type == "image"]
    assert len(pictures) >= 2  # each frame has its own preview (a video poster too, where ffmpeg is installed)


async def test_expired_link_is_reminted(connect, controls, sim, tmp_path):
    await controls.post("config", {"result_url_ttl_seconds": 60})
    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", VIDEO)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        sim.advance(4000)  # done long ago: its result link has expired
        done = await client.call_tool("check_task", {"task_id": task_id})
    assert done.structured_content["task"]["files"], text_of(done)
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    assert any(r["path"] == "/api/v1/common/download-url" for r in items)


async def test_a_truncated_download_leaves_no_file_and_resumes_later(connect, controls, tmp_path):
    await controls.fault("files", kind="truncate")
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", IMAGE)
        task = first.structured_content["tasks"][0]
        assert task["state"] == "succeeded" and task["files"] == []
        assert "truncated" in text_of(first).lower() or "cut off" in text_of(first).lower()
        assert outputs(tmp_path) == []  # no final-looking file, no temp file
        again = await client.call_tool("check_task", {"task_id": task["task_id"]})
    assert again.structured_content["task"]["files"]


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_second_server_finishes_the_first_ones_downloads(connect, tmp_path):
    async with connect(elicitation=answering()) as first:
        submitted = await first.call_tool("generate_video", VIDEO)
    task_id = submitted.structured_content["tasks"][0]["task_id"]
    assert outputs(tmp_path) == []
    async with connect() as second:
        done = await second.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
    assert done.structured_content["task"]["files"]
    assert len([p for p in outputs(tmp_path) if p.endswith(".mp4")]) == 1


@pytest.mark.parametrize("path", ["../.kie-mcp/journal.sqlite3", "..%2F..%2Fetc%2Fpasswd", "nothing-here.png"])
async def test_output_resources_stay_inside_outputs(connect, path):
    async with connect() as client:
        with pytest.raises(MCPError):
            await client.read_resource(f"kie://outputs/{path}")


async def test_a_fresh_link_kie_refuses_for_good_is_not_called_worth_retrying(connect, controls, sim):
    """KIE's download-url answers 422 for a link it will never renew (one not from its own services); "try again in
    a minute" sent the user round a loop that cannot end."""
    await controls.post("config", {"result_url_ttl_seconds": 60})
    refusal = "Only generated file URLs from kie.ai services are supported"
    await controls.fault("download-url", kind="code", code=422, msg=refusal, times=-1)
    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", VIDEO)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        sim.advance(4000)  # done long ago: its result link has expired
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
    said = text_of(done)
    assert not done.structured_content["task"]["files"]
    assert refusal in said and "kie.ai/logs" in said, said
    for wrong in ("Try again in a minute", "Fix the field", "still work for a while"):
        assert wrong not in said, said


async def test_a_fresh_link_refused_for_the_key_keeps_kies_advice(connect, controls, sim):
    """A download-url refused for a reason the user can fix (here the key) is not 'will not renew': the link renews
    once that is fixed, so KIE's own advice stays."""
    await controls.post("config", {"result_url_ttl_seconds": 60})
    await controls.fault("download-url", kind="code", code=401, msg="Unauthorized", times=-1)
    async with connect(elicitation=answering()) as client:
        submitted = await client.call_tool("generate_video", VIDEO)
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        sim.advance(4000)
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 5})
    said = text_of(done)
    assert "KIE_API_KEY" in said and "will not renew" not in said, said


async def test_a_result_that_could_not_be_saved_is_said_by_the_look_that_found_it_done(connect, controls, sim):
    """check_task with wait_seconds=0 (its default) looks once; when that look finds the task done and its result
    cannot be saved, the answer said only "succeeded", with no file and no word why."""
    await controls.post("config", {"result_url_ttl_seconds": 60})
    refusal = "Only generated file URLs from kie.ai services are supported"
    await controls.fault("download-url", kind="code", code=422, msg=refusal, times=-1)
    # Real-time looks (a first look a minute after create): only this call's own look sees the task end.
    async with connect(elicitation=answering(), poll_min_interval=2.0, poll_max_interval=5.0) as client:
        submitted = await client.call_tool("generate_video", {**VIDEO, "wait_seconds": 0})
        task_id = submitted.structured_content["tasks"][0]["task_id"]
        sim.advance(4000)
        done = await client.call_tool("check_task", {"task_id": task_id})
    assert done.structured_content["task"]["state"] == "succeeded" and not done.structured_content["task"]["files"]
    assert refusal in text_of(done), text_of(done)


@pytest.mark.parametrize("mode", ["auto"])  # the follower, the disk and the wire, not the era: once
async def test_a_saved_video_says_how_long_it_is(connect, tmp_path):
    """Caption times and joins add up the clips' real lengths (a model may make a clip shorter or longer than
    asked): every saved video says its length, measured from the file, in the structured answer and the text."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_video", {"prompt": "waves", "model": "veo3_fast", "wait_seconds": 30})
        image = await client.call_tool("generate_image", IMAGE)
    [video] = made.structured_content["saved_files"]
    assert video["duration_seconds"] and video["duration_seconds"] > 0.5
    assert f", {video['duration_seconds']:g} s" in text_of(made)
    assert image.structured_content["saved_files"][0]["duration_seconds"] is None
