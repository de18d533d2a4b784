"""The call log (one line per KIE call, never the key or payloads) and prices learned from real charges."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace

import pytest
from mcp import Client
from PIL import Image
from pydantic import SecretStr

from kie_mcp.kie.calllog import CallLog
from kie_mcp.redact import REDACTED, register_secret
from kie_mcp.sandbox import SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .conftest import answering, text_of

SECRET = "sk-live-CALLLOG-SECRET-123456789"


def log_lines(workspace):
    return [json.loads(line) for line in (workspace / "logs" / "kie-api.jsonl").read_text().splitlines()]


async def test_one_line_per_call_and_never_the_key(settings, tmp_path):
    sim = Simulator(SimConfig(speed=1000.0), keys={SECRET: "default"})
    server = create_server(replace(settings, api_key=SecretStr(SECRET)), transport=SandboxTransport(sim))
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "small.png")
    async with Client(server, elicitation_callback=answering()) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "an apple", "model": "google/nano-banana-edit", "images": ["small.png"]}
        )
    task_id = result.structured_content["tasks"][0]["task_id"]
    lines = log_lines(tmp_path)
    kie_calls = [r for r in sim.requests if not r.path.startswith(("/__sim", "/files", "/dl"))]
    assert len(lines) == len(kie_calls)  # one line per KIE call, no more, no fewer
    create = next(line for line in lines if line["endpoint"] == "/api/v1/jobs/createTask")
    assert create["outcome"] == "created" and create["task_id"] == task_id
    assert create["model"] == "google/nano-banana-edit" and create["credits_quoted"] == 4
    assert create["latency_ms"] >= 0 and create["time"]
    polls = [line for line in lines if line["endpoint"] == "/api/v1/jobs/recordInfo"]
    assert polls and polls[-1]["state"] == "success" and polls[-1]["credits_charged"] == 4
    text = (tmp_path / "logs" / "kie-api.jsonl").read_text()
    assert SECRET not in text and "base64" not in text


async def test_failures_are_logged_with_code_and_message(connect, controls, tmp_path):
    await controls.fault("create", kind="code", code=402)
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", {"prompt": "x"})
    refused = [line for line in log_lines(tmp_path) if line.get("outcome") == "refused"]
    assert refused[0]["code"] == 402 and "insufficient" in refused[0]["error"]


async def test_estimate_uses_what_kie_really_charged(connect, controls):
    await controls.post("prices", {"nano-banana-2": 10})
    request = {"prompt": "an apple", "model": "nano-banana-2"}
    async with connect(elicitation=answering()) as client:
        before = (await client.call_tool("estimate_cost", request)).structured_content["quote"]
        await client.call_tool("generate_image", request)
        after = await client.call_tool("estimate_cost", {**request, "prompt": "a pear"})
        other = await client.call_tool("estimate_cost", {**request, "resolution": "2K"})
    assert before["credits_total"] == 8
    assert after.structured_content["quote"]["credits_total"] == 10
    assert "as KIE charged" in text_of(after) and "price table says 8" in text_of(after)
    assert after.structured_content["quote"]["price_source"].startswith("what KIE charged in this workspace")
    assert other.structured_content["quote"]["credits_total"] == 12  # other options: the table still applies


def test_every_string_value_is_redacted_before_it_is_written(tmp_path):
    register_secret(SECRET)
    log = CallLog(tmp_path / "kie-api.jsonl")
    echoed = f"Internal Error Authorization: Bearer {SECRET}"
    log.write(endpoint="/api/v1/chat/credit", error=echoed, seen=[SECRET, {"apiKey": "x"}], where=tmp_path / SECRET)
    text = (tmp_path / "kie-api.jsonl").read_text()
    line = json.loads(text)
    assert SECRET not in text and SECRET[-12:] not in text
    assert line["error"] == f"Internal Error Authorization: Bearer {REDACTED}"
    assert line["seen"] == [REDACTED, {"apiKey": REDACTED}] and line["where"].endswith(REDACTED)


HOSTILE = "$(touch /tmp/kie-mcp-pwned) `id`"  # a message from upstream that a shell would run if it read it


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
@pytest.mark.parametrize("link", ["the log file", "the logs folder"])
async def test_a_call_log_linked_outside_the_workspace_is_never_written_through(
    connect, controls, tmp_path, tmp_path_factory, caplog, link
):
    """logs/kie-api.jsonl (or logs/ itself) a symlink out of the workspace, as a cloned repository can carry one: a
    KIE call never appends its line (part of which upstream writes) to the file it leads to, such as ~/.bashrc. The
    calls still answer; the log line is skipped, with one warning on stderr."""
    home = tmp_path_factory.mktemp("home")
    bashrc = home / ".bashrc"
    bashrc.write_text("export PATH=$HOME/bin:$PATH\n")
    if link == "the log file":
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "kie-api.jsonl").symlink_to(bashrc)
    else:
        (tmp_path / "logs").symlink_to(home, target_is_directory=True)
        (home / "kie-api.jsonl").symlink_to(bashrc)  # the name the log is written under, leading on to ~/.bashrc
    await controls.fault("credit", kind="code", code=500, msg=HOSTILE)
    with caplog.at_level(logging.WARNING, logger="kie_mcp.kie.calllog"):
        async with connect() as client:
            refused = await client.call_tool("check_credits", {})
            answered = await client.call_tool("check_credits", {})
    assert bashrc.read_text() == "export PATH=$HOME/bin:$PATH\n"
    planted = [".bashrc", "kie-api.jsonl"] if link == "the logs folder" else [".bashrc"]
    assert sorted(p.name for p in home.iterdir()) == planted  # nothing new beside ~/.bashrc either
    assert refused.is_error and "500" in text_of(refused)  # the hostile answer reached the agent, not the shell file
    assert not answered.is_error and answered.structured_content["balance_credits"] > 0
    warnings = [r.getMessage() for r in caplog.records if "call log" in r.getMessage()]
    assert len(warnings) == 1 and "symbolic link" in warnings[0], warnings
