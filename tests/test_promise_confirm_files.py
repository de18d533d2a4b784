"""Promises about the input files a spend sends to KIE's public file host, kept through the real MCP client against
the simulator, in both protocol eras:

- the estimate, the confirmation form and the confirmation to approve in the chat name each input file by its whole
  file name, however long its path: the folders are cut in the middle, never the name;
- the confirmation to approve in the chat (the only one a client without forms shows) names the settings and the
  input files it approves, as the estimate and the form do;
- a request the daily cap refuses uploads none of its input files: the credits are reserved before any file goes
  up, and given back when an upload fails or the server is killed while one goes up.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
from PIL import Image

from kie_mcp.journal import journal_path
from kie_mcp.spend.ledger import HELD

from .conftest import API, UPLOADS, answering, text_of

IMAGE = {"model": "nano-banana-2", "prompt": "a red apple on a wooden table"}  # 8 credits
APPROVED = "references/clients/acme-relaunch-2026/hero-shots/approved/" + "round-two/" * 12
NAMES = ("product-front.png", "passport-scan-private.png")


def picture(path: Path, colour: tuple[int, int, int] = (30, 90, 160)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (640, 480), colour).save(path)


def named_inputs(text: str) -> list[str]:
    """The input files a confirmation text names, as it shows them (in JSON's quotes)."""
    listed = re.search(r"input files?: (.*?)(?:\. |\.$)", text)
    assert listed, text
    return re.findall(r'"((?:[^"\\]|\\.)*)"', listed[1])


async def test_a_long_path_s_file_name_is_shown_whole_in_the_estimate_the_form_and_the_chat_confirmation(
    connect, controls, tmp_path
):
    """The audit: every input path was cut at 60 characters, its file name lost: two pictures in one deep folder
    (a product shot and a passport scan) read the same in the question that approves their upload, and an absolute
    path lost its name whatever it was. The name is now shown whole; the folders are cut in the middle."""
    for n, name in enumerate(NAMES):
        picture(tmp_path / APPROVED / name, (30 + 100 * n, 90, 160))
    absolute = str(tmp_path / APPROVED / NAMES[1])
    request = {**IMAGE, "images": [APPROVED + NAMES[0], APPROVED + NAMES[1], absolute]}
    seen: list[str] = []
    async with connect(elicitation=answering(action="decline", seen=seen)) as asking:
        estimate = await asking.call_tool("estimate_cost", request)
        await asking.call_tool("generate_image", request)
    async with connect() as without_forms:
        chat = await without_forms.call_tool("generate_image", request)
    assert chat.structured_content["status"] == "confirmation_required", text_of(chat)
    for text in (estimate.structured_content["message"], seen[0], chat.structured_content["message"]):
        shown = named_inputs(text)
        assert [item.rsplit("/", 1)[-1] for item in shown] == [*NAMES, NAMES[1]], text
        assert all(item.startswith("references/clients/") for item in shown[:2]), text
        assert shown[2].startswith(str(tmp_path)[:20]), text  # the absolute path's start, its end and its name
        assert all("\u2026" in item and len(item) <= 165 for item in shown), text  # cut in the folders
        assert all(item.endswith("/round-two/" + item.rsplit("/", 1)[-1]) for item in shown), text
    assert await controls.creates() == []


# A presigned S3 link's query: its credential holds slashes of its own, and its signature is unique to each link.
SIGNED = (
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/s3/aws4_request"
    "&X-Amz-Date=20261201T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature="
)
LINKS = (
    "https://acme-assets.s3.us-east-1.amazonaws.com/campaigns/spring/approved/hero-front.png" + SIGNED + "ab" * 32,
    "https://acme-private.s3.us-east-1.amazonaws.com/hr/passports/passport-scan-maria.png" + SIGNED + "cd" * 32,
    "https://cdn.acme.test/" + "2026/spring/" * 12 + "hero-front.png?v=" + "9" * 40,
)


async def test_a_long_link_keeps_its_host_and_file_name_and_is_cut_in_its_query_first(connect, controls):
    """The review: a link over 160 characters was cut at its last slash anywhere, query included, so it lost its
    host ("https…"), and a presigned link (slashes in its credential) showed only query noise: a hero shot in one
    bucket and a passport scan in another read the same in the question that approves sending them. A link now keeps
    its scheme and host whole and its file name whole; its query is cut first, to its start, then its folders."""
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", {**IMAGE, "images": list(LINKS)})
        chat = await client.call_tool("generate_image", {**IMAGE, "images": list(LINKS)})
    assert chat.structured_content["status"] == "confirmation_required", text_of(chat)
    for text in (estimate.structured_content["message"], chat.structured_content["message"]):
        signed_a, signed_b, deep = named_inputs(text)
        assert signed_a.startswith(
            "https://acme-assets.s3.us-east-1.amazonaws.com/campaigns/spring/approved/hero-front.png?X-Amz-"
        ), text
        assert signed_b.startswith(
            "https://acme-private.s3.us-east-1.amazonaws.com/hr/passports/passport-scan-maria.png?X-Amz-"
        ), text
        assert deep.startswith("https://cdn.acme.test/2026/spring/") and "/hero-front.png?v=999" in deep, text
        assert "\u2026" in deep.split("/hero-front.png")[0], text  # its folders cut in their middle
        for shown in (signed_a, signed_b, deep):
            assert shown.endswith("\u2026") and len(shown) <= 165, text  # the query cut to its start
    assert await controls.creates() == []


async def test_a_file_name_too_long_to_show_whole_is_cut_in_its_middle_and_keeps_its_extension(connect, tmp_path):
    name = "campaign-" + "hero-variant-" * 14 + "final.png"  # 200 characters
    picture(tmp_path / "references" / name)
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", {**IMAGE, "images": [f"references/{name}"]})
    [shown] = named_inputs(estimate.structured_content["message"])
    assert shown.startswith("references/campaign-hero-variant-") and shown.endswith("-final.png"), shown
    assert "\u2026" in shown and len(shown) <= 165, shown


async def test_the_chat_confirmation_names_the_settings_and_the_files_it_approves(connect, controls, tmp_path):
    """The audit: on a client without forms (Claude Desktop) the confirmation to approve in the chat is the only
    one, and it gave the cost and a quote_id but neither the settings nor the files to be published on KIE's file
    host. It now says them as the estimate and the form do."""
    picture(tmp_path / "references" / "serum-bottle.png")
    request = {**IMAGE, "images": ["references/serum-bottle.png", "https://example.com/look-1.png"]}
    async with connect() as client:
        estimate = await client.call_tool("estimate_cost", request)
        chat = await client.call_tool("generate_image", request)
    assert chat.structured_content["status"] == "confirmation_required", text_of(chat)
    settings = estimate.structured_content["message"].split("Settings: ", 1)[1].split(". quote_id=")[0]
    assert '2 input files: "references/serum-bottle.png"; "https://example.com/look-1.png"' in settings
    assert f"Settings: {settings}. " in chat.structured_content["message"], text_of(chat)
    assert chat.structured_content["message"].index("Settings: ") < chat.structured_content["message"].index(
        "The user must approve"
    )
    assert await controls.creates() == []


async def test_a_request_the_daily_cap_refuses_uploads_none_of_its_input_files(connect, controls, sim, tmp_path):
    """The audit: two approved calls raced for the last credits of the day; the loser's private file was uploaded to
    KIE's public file host, and then the cap refused it ("Nothing was spent"). The credits are now reserved before
    any file goes up, so the refused request has published nothing."""
    picture(tmp_path / "references" / "a.png", (10, 200, 10))
    picture(tmp_path / "references" / "private-b.png", (200, 0, 0))
    first = {**IMAGE, "prompt": "x", "images": ["references/a.png"]}
    second = {**IMAGE, "prompt": "y", "images": ["references/private-b.png"]}
    answers: dict[str, Any] = {}
    async with connect(max_credits_per_day=10) as client:
        quotes = [(await client.call_tool("estimate_cost", c)).structured_content["quote"] for c in (first, second)]

        async def run(name: str, call: dict[str, Any], quote: dict[str, Any]) -> None:
            answers[name] = await client.call_tool(
                "generate_image", {**call, "quote_id": quote["quote_id"], "wait_seconds": 0}
            )

        async with anyio.create_task_group() as group:
            group.start_soon(run, "a", first, quotes[0])
            group.start_soon(run, "private-b", second, quotes[1])
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    refused = [name for name, answer in answers.items() if answer.is_error]
    made = [name for name, answer in answers.items() if not answer.is_error]
    assert len(refused) == 1 and len(made) == 1, {name: text_of(answer) for name, answer in answers.items()}
    loser = text_of(answers[refused[0]])
    assert "of today's cap of 10" in loser and "Nothing was spent" in loser, loser
    uploaded = [path.rsplit("/", 1)[-1] for path in sim.uploads]
    assert len(uploaded) == 1 and uploaded[0].startswith(made[0] + "-"), uploaded  # the winner's file alone
    assert len(await controls.creates()) == 1 and spent == 8


async def test_an_upload_that_fails_gives_back_the_credits_reserved_for_it(connect, controls, sim, tmp_path):
    """Reserved before its input file went up, a request whose upload fails holds nothing of the daily cap: the same
    request, sent again, fits the cap it exactly fills."""
    picture(tmp_path / "references" / "face.png")
    request = {**IMAGE, "images": ["references/face.png"]}
    await controls.fault("upload", kind="code", code=400)
    async with connect(max_credits_per_day=8, auto_approve_credits=10) as client:
        failed = await client.call_tool("generate_image", request)
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
        again = await client.call_tool("generate_image", request)
    assert failed.is_error and "nothing was charged" in text_of(failed).lower(), text_of(failed)
    assert spent == 0
    assert again.structured_content["status"] == "completed", text_of(again)
    assert len(sim.uploads) == 1 and len(await controls.creates()) == 1


async def test_a_reservation_held_past_its_limit_is_made_again_and_a_refusal_names_the_files_already_uploaded(
    connect, controls, sim, tmp_path
):
    """A reservation held while the files go up is released once unrenewed past its lease (``HOLD_LEASE``: its
    process cannot be told alive, a process id reused). Should its call still be running, it reserves again once its
    files are up; a cap that then refuses says which files KIE's file host has, never only "nothing was spent"."""
    picture(tmp_path / "references" / "face.png")
    await controls.fault("upload", kind="slow", seconds=1.0)
    async with connect(max_credits_per_day=10, auto_approve_credits=10) as client:
        answers: list[Any] = []

        async def with_file() -> None:
            answers.append(await client.call_tool("generate_image", {**IMAGE, "images": ["references/face.png"]}))

        async with anyio.create_task_group() as group:
            group.start_soon(with_file)
            with anyio.fail_after(10):
                while not any("upload" in r.path for r in sim.requests):  # noqa: ASYNC110 - the simulator's log
                    await anyio.sleep(0.02)
            with sqlite3.connect(journal_path(tmp_path)) as journal:  # the hold made to look two hours old
                aged = journal.execute("UPDATE spend SET at = at - 7200 WHERE reason = ?", (HELD,)).rowcount
            meanwhile = await client.call_tool("generate_image", {**IMAGE, "prompt": "a pear", "wait_seconds": 0})
    assert aged == 1
    assert not meanwhile.is_error, text_of(meanwhile)
    [late] = answers
    assert late.is_error, text_of(late)
    assert "of today's cap of 10" in text_of(late), text_of(late)
    assert 'uploaded to KIE\'s file host before this refusal: "references/face.png"' in text_of(late), text_of(late)
    assert len(await controls.creates()) == 1


KILLED_WHILE_UPLOADING = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import anyio
    import httpx2
    from mcp import Client
    from pydantic import SecretStr

    from kie_mcp.config import Settings
    from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
    from kie_mcp.server import create_server

    API, UPLOADS, WORKSPACE = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    async def main():
        sim = Simulator(SimConfig(speed=1000.0))
        transport = SandboxTransport(sim)
        async with httpx2.AsyncClient(transport=transport, base_url=API) as controls:
            fault = {"endpoint": "upload", "fault": {"kind": "slow", "seconds": 30}, "times": 1}
            (await controls.post("/__sim/faults", json=fault)).raise_for_status()
        settings = Settings(
            api_key=SecretStr(SANDBOX_API_KEY), base_url=API, upload_base_url=UPLOADS, workspace=WORKSPACE,
            catalog_sync=False, auto_approve_credits=10,
        )
        call = {"model": "nano-banana-2", "prompt": "x", "images": ["references/face.png"]}
        async with Client(create_server(settings, transport=transport)) as client, anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "generate_image", call)
            while not any("upload" in r.path for r in sim.requests):
                await anyio.sleep(0.02)
            os.kill(os.getpid(), signal.SIGKILL)

    anyio.run(main)
    """
)


async def test_a_server_killed_while_its_input_file_uploads_holds_nothing_of_the_daily_cap(connect, controls, tmp_path):
    """A server killed while a request's input file went up (its credits reserved before, held for the upload)
    leaves that reservation behind, under its own process: the next look at the ledger releases it, so the day's
    cap is whole for the next request, and today's spend counts nothing for it."""
    picture(tmp_path / "references" / "face.png")
    killed = await anyio.run_process(
        [sys.executable, "-c", KILLED_WHILE_UPLOADING, API, UPLOADS, str(tmp_path)], check=False
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    with sqlite3.connect(journal_path(tmp_path)) as journal:
        left = journal.execute("SELECT delta FROM spend WHERE reason = ?", (HELD,)).fetchall()
    assert left == [(8.0,)]  # what the killed server left: its reservation, held while its file went up
    async with connect(max_credits_per_day=8, auto_approve_credits=10) as client:
        before = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
        made = await client.call_tool("generate_image", {**IMAGE, "images": ["references/face.png"]})
        after = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert before == 0
    assert made.structured_content["status"] == "completed", text_of(made)
    assert after == 8 and len(await controls.creates()) == 1
