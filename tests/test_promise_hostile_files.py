"""Promise: files planted in the workspace never leak a file from elsewhere, nor hold up a call: a hard link is
never served or sent, a resource never serves a private key, and a FIFO, a device or a huge file where kie-mcp reads
a small file (``.env``, a join's claim) is refused in words at once (``kie_mcp/regular.py``, ``inputs.open_judged``)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters

import kie_mcp.sandbox

from .conftest import every_resource, text_of
from .test_promise_inputs_judged import release_fifo_readers_after

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="hard links and FIFOs as POSIX makes them")

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAfake0123456789\n-----END RSA PRIVATE KEY-----\n"
CLIP = Path(kie_mcp.sandbox.__file__).parent / "clips" / "16x9.mp4"


async def test_a_hard_link_in_references_is_never_listed_served_or_uploaded(connect, tmp_path, tmp_path_factory):
    """The audit: references/hard_key.txt hard-linked to a private key outside the workspace was listed and its
    whole PEM key served over resources/read; one linked to the workspace's .env served its other secrets raw. A
    file with other names on disk is judged on the opened file: left out of the listing, never read or uploaded."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "id_rsa").write_text(PEM)
    shutil.copy(CLIP, outside / "clip.mp4")
    (tmp_path / ".env").write_text("OTHER_SECRET=hunter2-s3cret-value\n")
    (tmp_path / "references").mkdir()
    os.link(outside / "id_rsa", tmp_path / "references" / "hard_key.txt")
    os.link(tmp_path / ".env", tmp_path / "references" / "hard_env.txt")
    os.link(outside / "clip.mp4", tmp_path / "references" / "clip.mp4")
    (tmp_path / "references" / "mine.txt").write_text("a note of my own")
    async with connect() as client:
        listed = {str(r.uri).rsplit("/", 1)[1] for r in await every_resource(client) if "references/" in str(r.uri)}
        assert "mine.txt" in listed
        assert not listed & {"hard_key.txt", "hard_env.txt", "clip.mp4"}, listed
        for name in ("hard_key.txt", "hard_env.txt"):
            with pytest.raises(MCPError) as refused:
                await client.read_resource(f"kie://workspace/references/{name}")
            said = refused.value.error.message
            assert "PRIVATE KEY" not in said and "hunter2" not in said, said
        upload = await client.call_tool("upload_file", {"path": "references/clip.mp4"})
    said = text_of(upload)
    assert upload.is_error, said
    assert "has other names on disk (a hard link), which kie-mcp never serves or sends" in said, said
    assert "Nothing was read or uploaded" in said, said


async def test_a_resource_holding_a_pem_private_key_is_never_served(connect, tmp_path):
    """A second layer under the checks by location: a key copied into references/ (one name, nothing linked) is
    never served; the redactor knows no PEM block, so it went out whole."""
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "deploy.txt").write_text("notes\n" + PEM)
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource("kie://workspace/references/deploy.txt")
    said = refused.value.error.message
    assert "holds a PEM private key block, which kie-mcp never serves" in said and "MIIE" not in said, said


async def test_a_fifo_planted_as_env_after_start_never_holds_check_credits(connect, tmp_path):
    """The audit: a FIFO put at <workspace>/.env after start-up held check_credits for good (the git-exposure check
    opened it in a worker thread no cancel stops). It is opened without waiting, is no file, and says nothing."""
    async with connect() as client:
        os.mkfifo(tmp_path / ".env")
        released: list[bool] = []
        async with anyio.create_task_group() as group:
            group.start_soon(release_fifo_readers_after, tmp_path / ".env", 10, released)
            answer = await client.call_tool("check_credits", {})
            group.cancel_scope.cancel()
    assert not released, "check_credits waited on the FIFO until the test opened it for writing"
    assert not answer.is_error and "Balance" in text_of(answer), text_of(answer)


async def test_a_huge_env_is_not_read_and_is_said_as_a_configuration_error(tmp_path):
    """The audit: a .env linked to /dev/zero was read without end at start-up. A .env is read to at most 1 MiB;
    a larger one (here 2 MiB of comments) is a configuration error that says so, and nothing is spent."""
    from kie_mcp.config import Settings

    (tmp_path / ".env").write_text("# filler\n" * (2 << 17))
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, tmp_path)
    assert settings.config_error is not None and "larger than 1 MiB" in settings.config_error, settings.config_error


@pytest.mark.stdio
async def test_a_fifo_as_the_workspace_env_never_stops_the_server_answering_initialize(tmp_path):
    """The audit: a FIFO at <workspace>/.env held the server in read_text before it answered initialize, over real
    stdio, for good. The .env is opened without waiting; a FIFO is a configuration error said in words."""
    os.mkfifo(tmp_path / ".env")
    env = {"KIE_WORKSPACE": str(tmp_path), "HOME": str(tmp_path / "home"), "PYTHONPATH": os.pathsep.join(sys.path)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "kie_mcp", "--sandbox"], env=env)
    with anyio.fail_after(60):
        async with Client(params, read_timeout_seconds=30) as client:
            answer = await client.call_tool("check_credits", {})
    assert "is a named pipe (FIFO), not a file" in text_of(answer), text_of(answer)


async def test_a_fifo_planted_as_a_joins_claim_never_holds_stitch_videos(connect, tmp_path):
    """The audit: a FIFO at outputs/<session>/.promo-2.mp4.joining (the claim of the next free name) held the
    second stitch_videos for good. A claim is opened without waiting; one that is no regular file is taken, never
    read, and the join takes the next name."""
    (tmp_path / "references").mkdir()
    shutil.copy(CLIP, tmp_path / "references" / "a.mp4")
    args = {"clips": ["references/a.mp4", "references/a.mp4"], "output_name": "promo.mp4", "wait_seconds": 45}
    async with connect() as client:
        first = await client.call_tool("stitch_videos", args)
        assert not first.is_error, text_of(first)
    (made,) = (tmp_path / "outputs").rglob("promo.mp4")
    claim = made.parent / ".promo-2.mp4.joining"
    os.mkfifo(claim)
    released: list[bool] = []
    # another server: the first one's kept join would answer with the first video
    async with connect() as client, anyio.create_task_group() as group:
        group.start_soon(release_fifo_readers_after, claim, 15, released)
        second = await client.call_tool("stitch_videos", args)
        group.cancel_scope.cancel()
    assert not released, "stitch_videos waited on the FIFO claim until the test opened it for writing"
    assert not second.is_error and "promo-3.mp4" in text_of(second), text_of(second)
