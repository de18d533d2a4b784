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
    assert "holds a private key, which kie-mcp never serves" in said and "MIIE" not in said, said


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


KEYS = {  # each a private key as a file holds one (the review's forms): none is ever served
    "utf16le_no_bom.txt": PEM.encode("utf-16-le"),
    "utf16be_no_bom.txt": PEM.encode("utf-16-be"),
    "utf16_bom.txt": PEM.encode("utf-16"),
    "utf32_bom.txt": PEM.encode("utf-32"),
    "utf32be_no_bom.txt": PEM.encode("utf-32-be"),
    "pgp.asc": b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQVYBGE2x3sBDADJ1vXcxZz3Q0\n-----END PGP PRIVATE KEY",
    "ssh2.txt": b'---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: "rsa-key"\nP2/56wAAA+kAAAA3aWYtbW9k\n',
    "key.ppk": b"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: me\nPublic-Lines: 1\nAAAAC3Nza\n",
    "spaced.txt": b"-----BEGIN  RSA\tPRIVATE KEY-----\r\nMIIEowIBAAKCAQEA\r\n",
    "service.json": b'{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\n-----END PRIVATE KEY-----\\n"}',
}


async def test_a_private_key_in_any_armour_or_encoding_is_never_served_and_a_mention_of_one_is(connect, tmp_path):
    """The review: a UTF-16 key without a byte-order mark, a UTF-32 one (labelled UTF-16), PGP's, SSH2's and
    PuTTY's keys were served whole; a guide merely naming "-----BEGIN PRIVATE KEY-----" in a sentence was refused.
    A key is its opening line at the start of a line followed by its body (or its END line), in any encoding."""
    (tmp_path / "references").mkdir()
    for name, data in KEYS.items():
        (tmp_path / "references" / name).write_bytes(data)
    mention = "# TLS\n\nPut your key in a file that starts with `-----BEGIN PRIVATE KEY-----`; keep it out of git.\n"
    (tmp_path / "references" / "tls.md").write_text(mention)
    (tmp_path / "references" / "notes16.txt").write_bytes("just notes\n".encode("utf-32"))
    async with connect() as client:
        listed = {str(r.uri).rsplit("/", 1)[1]: r for r in await every_resource(client) if "references/" in str(r.uri)}
        for name in KEYS:
            with pytest.raises(MCPError) as refused:
                await client.read_resource(f"kie://workspace/references/{name}")
            assert "holds a private key, which kie-mcp never serves" in refused.value.error.message, name
        served = await client.read_resource("kie://workspace/references/tls.md")
        assert served.contents[0].text == mention
        notes = await client.read_resource("kie://workspace/references/notes16.txt")
    assert notes.contents[0].text == "just notes\n"
    assert listed["notes16.txt"].mime_type == "text/plain; charset=utf-32"


async def _saved_result(client, tmp_path) -> Path:
    quote = await client.call_tool("estimate_cost", {"model": "z-image", "prompt": "a fox"})
    made = await client.call_tool(
        "generate_image",
        {"model": "z-image", "prompt": "a fox", "quote_id": quote.structured_content["quote"]["quote_id"],
         "wait_seconds": 20},
    )  # fmt: skip
    return Path(made.structured_content["saved_files"][0]["absolute_path"])


async def test_a_saved_result_a_backup_hard_linked_is_still_served_and_taken_as_an_input(
    connect, tmp_path, tmp_path_factory
):
    """The review: once a backup (``cp -al``, rsnapshot, a dedup tool) linked a saved result, kie://outputs said
    "No saved result at outputs/..." and an edit of it was refused as a hard link. A result the journal records at
    that path and size is vouched for by the journal, not its link count; a linked file it does not record stays
    refused, saying it is a hard link, never that nothing is there."""
    backup = tmp_path_factory.mktemp("backup")
    async with connect() as client:
        saved = await _saved_result(client, tmp_path)
        sidecar = next(saved.parent.glob("*.json"))
        os.link(saved, backup / saved.name)
        os.link(sidecar, backup / sidecar.name)
        relative = saved.relative_to(tmp_path / "outputs").as_posix()
        served = await client.read_resource(f"kie://outputs/{relative}")
        edit = await client.call_tool(
            "estimate_cost", {"model": "seedream/4.5-edit", "prompt": "make it blue", "images": [str(saved)]}
        )
        with pytest.raises(MCPError) as refused:
            await client.read_resource(f"kie://outputs/{sidecar.relative_to(tmp_path / 'outputs').as_posix()}")
    assert served.contents[0].blob
    assert not edit.is_error, text_of(edit)
    said = refused.value.error.message
    assert "a hard link" in said and "No saved result" not in said, said


async def test_a_join_whose_temporary_name_cannot_be_removed_is_still_the_join(connect, tmp_path, monkeypatch):
    """The review: once the joined video had its name, a failure removing its temporary name made stitch_videos
    say the join failed while the video sat there without its sidecar. The video is the join; the temporary name
    is logged and left to the next start's sweep."""
    (tmp_path / "references").mkdir()
    shutil.copy(CLIP, tmp_path / "references" / "a.mp4")
    unlink = Path.unlink

    def failing(path: Path, missing_ok: bool = False) -> None:  # the OS refusing, not kie-mcp's code
        if path.name.startswith(".promo.mp4.part-"):  # the join's temporary name, once the join has its own
            raise PermissionError(1, "Operation not permitted", str(path))
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", failing)
    args = {"clips": ["references/a.mp4", "references/a.mp4"], "output_name": "promo.mp4", "wait_seconds": 45}
    async with connect() as client:
        joined = await client.call_tool("stitch_videos", args)
    said = text_of(joined)
    assert not joined.is_error and "promo.mp4" in said, said
    (made,) = (tmp_path / "outputs").rglob("promo.mp4")
    assert made.with_suffix(".json").exists() or any(made.parent.glob("promo*.json")), list(made.parent.iterdir())
