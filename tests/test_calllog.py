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
IMAGE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}


def log_lines(workspace):
    return [json.loads(line) for line in (workspace / "logs" / "kie-api.jsonl").read_text().splitlines()]


async def test_one_line_per_call_and_never_the_key(settings, tmp_path):
    # The log line carries KIE's charge when KIE reports it: its Market records carry it here, as live they do not.
    sim = Simulator(SimConfig(speed=1000.0, report_credits_consumed=True), keys={SECRET: "default"})
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


async def test_estimate_uses_what_kie_really_charged(connect, controls, sim):
    sim.config.report_credits_consumed = True  # a KIE that reports its charge on the task (live Market records do not)
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


# -- today's spend read back from the log after a journal reset ------------------------------------------------


def corrupt_journal(workspace) -> None:
    """The journal, as a crash or a bad disk can leave it: the next start sets it aside and reads today's spend
    back from the call log."""
    folder = workspace / ".kie-mcp"
    folder.mkdir(exist_ok=True)
    (folder / "journal.sqlite3").write_bytes(b"this is not a database" * 100)


class FifoRescue:
    """A thread that, once ``after`` seconds have passed, opens the write end of the FIFO at ``path`` and closes it
    again, so that a reader left waiting on it gets an empty read and the test fails instead of hanging. ``fired``:
    whether it got that far."""

    def __init__(self, path, after: float) -> None:
        import threading

        self.path, self.after, self.fired = path, after, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import os

        if self._stop.wait(self.after):
            return
        self.fired = True
        while not self._stop.wait(0.05):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # nobody reads it (yet)
                continue
            os.close(fd)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
@pytest.mark.parametrize("name", ["kie-api.jsonl", "kie-api.1.jsonl"], ids=["the log", "the moved log"])
async def test_a_fifo_in_place_of_the_call_log_neither_holds_up_the_start_nor_reopens_the_daily_cap(
    connect, controls, tmp_path, caplog, name
):
    """The audit: after a journal reset, today's spend is read back from logs/kie-api.jsonl and kie-api.1.jsonl, and
    they were opened as they came: a FIFO put there (by hand, or by whoever can write the workspace) held the
    server's start for good. It is now opened as the log is written (no link followed, never waiting on a FIFO),
    and a log that cannot be read is not "nothing spent today": the daily cap is counted as spent, said on stderr and
    in the first answer, so the reset never reopens the cap."""
    import os

    corrupt_journal(tmp_path)
    (tmp_path / "logs").mkdir()
    os.mkfifo(tmp_path / "logs" / name)
    rescue = FifoRescue(tmp_path / "logs" / name, after=15.0)  # the old reader would have waited on it forever
    try:
        with caplog.at_level(logging.WARNING, logger="kie_mcp.recovery"):
            async with connect(elicitation=answering(), max_credits_per_day=100) as client:
                credits = await client.call_tool("check_credits", {})
                refused = await client.call_tool("generate_image", IMAGE)
            waited = rescue.fired
    finally:
        rescue.stop()
    assert not waited, "the server waited on the FIFO"
    assert credits.structured_content["spent_today"] == 100, text_of(credits)
    said = f"call log logs/kie-api.jsonl cannot be read ({name} is not a regular file (a named pipe (FIFO)))"
    assert said in text_of(credits), text_of(credits)
    assert refused.is_error and "cap" in text_of(refused), text_of(refused)
    assert await controls.creates() == []
    warnings = [r.getMessage() for r in caplog.records if "call log cannot be read" in r.getMessage()]
    assert warnings and "FIFO" in warnings[0], warnings


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks and FIFOs are POSIX")
@pytest.mark.parametrize("planted", ["a FIFO", "a folder", "a link to a log", "a linked logs folder"])
def test_a_call_log_that_is_not_kie_mcps_regular_file_is_unreadable_never_nothing_spent(
    tmp_path, tmp_path_factory, planted
):
    """What is not the log as kie-mcp writes it says nothing of today's spend: ``UnreadableLog``, never 0. No log at
    all is 0 (nothing was logged)."""
    import os
    from datetime import datetime

    from kie_mcp.kie.calllog import UnreadableLog, spent_on

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "kie-api.jsonl").write_text('{"time": "2026-01-01T00:00:00+00:00", "outcome": "created"}\n')
    logs = tmp_path / "logs"
    if planted == "a linked logs folder":
        logs.symlink_to(elsewhere, target_is_directory=True)
    else:
        logs.mkdir()
    path = logs / "kie-api.jsonl"
    if planted == "a FIFO":
        os.mkfifo(path)
    elif planted == "a folder":
        path.mkdir()
    elif planted == "a link to a log":
        path.symlink_to(elsewhere / "kie-api.jsonl")
    with pytest.raises(UnreadableLog):
        spent_on(path, datetime.now().date())
    assert spent_on(tmp_path / "nothing" / "kie-api.jsonl", datetime.now().date()) == 0
