"""Secrets never leave the machine: one redaction point, proven against a KIE that echoes the key back.

The simulator's ``echo_auth`` faults play a hostile or buggy upstream that puts the request's real
``Authorization`` header into every kind of error. Whatever the agent, the logs or the workspace get must hold
``[redacted]`` where the echo was, and never the key.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from PIL import Image
from pydantic import SecretStr

from kie_mcp.kie import KieError, TaskStatus
from kie_mcp.redact import REDACTED, install_log_redaction, redact, redact_value, register_secret
from kie_mcp.sandbox import SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .conftest import Controls, answering, text_of

SECRET = "sk-live-ECHOED-SECRET-0123456789abcdef"
TAIL = SECRET[-12:]


@dataclass
class Echo:
    """One scenario's world: the client, the simulator's controls, and everything the agent was shown."""

    client: Client
    controls: Controls
    sim: Simulator
    shown: list[str] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        result = await self.client.call_tool(name, arguments)
        structured = result.structured_content or {}
        self.task_ids += [t["task_id"] for t in structured.get("tasks", []) if t.get("task_id")]
        if structured.get("task", {}).get("task_id"):
            self.task_ids.append(structured["task"]["task_id"])
        text = text_of(result) + "\n" + json.dumps(structured)
        self.shown.append(text)
        return text


@asynccontextmanager
async def echoing_kie(settings: Any, mode: str) -> AsyncIterator[Echo]:
    sim = Simulator(SimConfig(speed=1000.0), keys={SECRET: "default"})
    transport = SandboxTransport(sim)
    server = create_server(replace(settings, api_key=SecretStr(SECRET)), transport=transport)
    controls = Controls(transport)
    try:
        async with Client(server, mode=mode, elicitation_callback=answering()) as client:
            echo = Echo(client, controls, sim)
            yield echo
            # Resources are what the agent reads next: the task list and every task touched.
            for uri in ["kie://tasks", *[f"kie://tasks/{task_id}" for task_id in echo.task_ids]]:
                read = await client.read_resource(uri)
                echo.shown.append("\n".join(getattr(c, "text", "") for c in read.contents))
    finally:
        await controls.http.aclose()


def assert_no_secret_anywhere(echo: Echo, caplog: pytest.LogCaptureFixture, workspace: Path) -> None:
    """Not in tool results or resources, not in any log record at DEBUG, not in any file of the workspace."""
    for text in echo.shown:
        assert SECRET not in text and TAIL not in text
    logged = "\n".join(record.getMessage() for record in caplog.records) + "\n" + caplog.text
    assert SECRET not in logged and TAIL not in logged
    files = [path for path in workspace.rglob("*") if path.is_file()]
    assert any(path.name.startswith("journal.sqlite3") for path in files)
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data and TAIL.encode() not in data, path
    assert SECRET not in repr(echo.sim.requests)  # the simulator's own request log keeps no key either


def call_log_errors(workspace: Path) -> list[str]:
    lines = (workspace / "logs" / "kie-api.jsonl").read_text().splitlines()
    return [json.loads(line).get("error", "") for line in lines]


Scenario = Callable[[Echo], Awaitable[str]]


async def run_scenario(settings, mode, caplog, tmp_path, scenario: Scenario) -> tuple[Echo, str]:
    caplog.set_level(logging.DEBUG)
    async with echoing_kie(settings, mode) as echo:
        where = await scenario(echo)
    assert f"Authorization: Bearer {REDACTED}" in where  # the echo happened, and was redacted
    assert_no_secret_anywhere(echo, caplog, tmp_path)
    return echo, where


async def test_key_echoed_by_kie_in_a_create_error_never_reaches_the_agent(settings, mode, caplog, tmp_path):
    async def scenario(echo: Echo) -> str:
        await echo.controls.fault("create", kind="code", code=500, echo_auth=True)
        return await echo.call("generate_image", {"prompt": "an apple"})

    await run_scenario(settings, mode, caplog, tmp_path, scenario)
    assert any(REDACTED in error for error in call_log_errors(tmp_path))


async def test_key_echoed_by_kie_in_a_status_error_never_reaches_the_agent(settings, mode, caplog, tmp_path):
    async def scenario(echo: Echo) -> str:
        await echo.call("generate_image", {"prompt": "an apple", "wait_seconds": 0})
        assert echo.task_ids
        await echo.controls.fault("status", kind="code", code=401, echo_auth=True, times=-1)
        return await echo.call("check_task", {"task_id": echo.task_ids[0], "wait_seconds": 0})

    await run_scenario(settings, mode, caplog, tmp_path, scenario)
    assert any(REDACTED in error for error in call_log_errors(tmp_path))


async def test_key_echoed_by_kie_in_a_credits_error_never_reaches_the_agent(settings, mode, caplog, tmp_path):
    async def scenario(echo: Echo) -> str:
        await echo.controls.fault("credit", kind="code", code=500, echo_auth=True, times=-1)
        return await echo.call("check_credits", {})

    await run_scenario(settings, mode, caplog, tmp_path, scenario)
    assert any(REDACTED in error for error in call_log_errors(tmp_path))


async def test_key_echoed_by_kie_in_an_upload_error_never_reaches_the_agent(settings, mode, caplog, tmp_path):
    Image.new("RGB", (1200, 900), (200, 60, 40)).save(tmp_path / "photo.png")

    async def scenario(echo: Echo) -> str:
        await echo.controls.fault("upload", kind="code", code=500, echo_auth=True, times=-1)
        return await echo.call("upload_file", {"path": "photo.png"})

    await run_scenario(settings, mode, caplog, tmp_path, scenario)
    assert any(REDACTED in error for error in call_log_errors(tmp_path))


async def test_key_echoed_by_kie_in_a_download_url_error_never_reaches_the_agent(settings, mode, caplog, tmp_path):
    """An expired result link is re-minted through download-url; that call's error echoes the key."""

    async def scenario(echo: Echo) -> str:
        await echo.controls.fault("files", kind="code", code=403, times=-1)  # every result link has expired
        await echo.controls.fault("download-url", kind="code", code=500, echo_auth=True, times=-1)
        text = await echo.call("generate_image", {"prompt": "an apple"})
        assert any(r.path == "/api/v1/common/download-url" for r in echo.sim.requests)
        return text

    await run_scenario(settings, mode, caplog, tmp_path, scenario)
    assert any(REDACTED in error for error in call_log_errors(tmp_path))


async def test_key_echoed_by_kie_in_a_failed_tasks_message_never_reaches_the_agent(settings, mode, caplog, tmp_path):
    async def scenario(echo: Echo) -> str:
        await echo.controls.fault("create", kind="task_fail", fail_msg="Upstream refused the request.", echo_auth=True)
        text = await echo.call("generate_image", {"prompt": "an apple"})
        assert '"state": "failed"' in text
        return text

    echo, _ = await run_scenario(settings, mode, caplog, tmp_path, scenario)
    task = json.loads(echo.shown[-1])  # kie://tasks/{id}, read last
    assert f"Authorization: Bearer {REDACTED}" in task["error"]


# -- the redaction point itself ---------------------------------------------------------------


def test_a_bearer_token_that_is_not_the_key_is_still_redacted():
    assert redact("upstream said: Bearer abc.DEF-123_x is invalid") == f"upstream said: Bearer {REDACTED} is invalid"
    assert redact("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: {REDACTED}"
    assert redact('{"Authorization": "Bearer zzz"}') == f'{{"Authorization": "{REDACTED}"}}'
    assert redact("retry with api_key=abc123&x=1") == f"retry with api_key={REDACTED}&x=1"
    assert redact('{"apiKey": "abc"} KIE_API_KEY=xyz') == f'{{"apiKey": "{REDACTED}"}} KIE_API_KEY={REDACTED}'
    assert redact("https://user:pa55@cdn.example/x.png") == f"https://{REDACTED}@cdn.example/x.png"
    assert redact("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl") == f"token {REDACTED}"


def test_ordinary_text_urls_and_task_ids_are_untouched():
    ordinary = [
        "the bearer of bad news; authorization required for this model",
        "Authentication failed: Invalid API Key",
        "Set KIE_API_KEY (create one at https://kie.ai/api-key) and restart the MCP server.",
        "https://tempfile.aiquickdraw.com/s/0123456789abcdef0123456789abcdef_0_1.png?x=1",
        "https://api.kie.ai/api/v1/jobs/recordInfo?taskId=0123456789abcdef0123456789abcdef",
        "http://127.0.0.1:8790/dl/9f0c2a1b3c4d5e6f7a8b9c0d/result.mp4",
        "task_kling-3.0-video_1712345678901 veo_task_abcdef0123456789 4o_0123456789abcdef0123",
        "google/nano-banana-edit, seedream/4.5-edit, bytedance/seedance-2-fast, sora-2-pro-storyboard",
        "KIE error 402 (credits): The current credits are insufficient. Please top up.",
    ]
    for text in ordinary:
        assert redact(text) == text


def test_the_registered_key_is_redacted_in_any_shape_and_redaction_is_stable():
    register_secret(SECRET)
    register_secret(SECRET)  # idempotent
    echoed = f"Internal Error Authorization: Bearer {SECRET} (key {SECRET}, in a URL ?k={SECRET})"
    once = redact(echoed)
    assert SECRET not in once and once.count(REDACTED) == 3
    assert redact(once) == once
    nested = redact_value({"msg": echoed, "items": [SECRET, ("x", SECRET)], "n": 3, "apiKey": "anything"})
    assert SECRET not in json.dumps(nested) and nested["n"] == 3 and nested["apiKey"] == REDACTED
    register_secret("k")  # too short to redact without mangling text: ignored
    assert redact("kie keeps uploads") == "kie keeps uploads"


def test_kie_errors_and_task_statuses_redact_what_kie_said():
    register_secret(SECRET)
    err = KieError(f"bad key Bearer {SECRET}", code=401, next_step=f"not {SECRET}")
    assert SECRET not in str(err) and SECRET not in json.dumps(err.as_dict())
    assert REDACTED in err.message and REDACTED in err.next_step
    status = TaskStatus(task_id="t1", family="market", state="failed", raw_state="fail", fail_message=SECRET)
    assert status.fail_message == REDACTED


def test_a_secret_logged_at_debug_never_reaches_a_log_handler(caplog):
    """The record factory cleans records before any handler (here pytest's caplog) sees them."""
    register_secret(SECRET)
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("kie_mcp.tests.redaction")
    log.debug("header %s", f"Bearer {SECRET}")
    logging.getLogger("httpx2").debug("Authorization: Bearer abcdef0123456789")
    try:
        raise RuntimeError(f"echoed {SECRET}")
    except RuntimeError:
        log.exception("failed with %d retries", 2)
    assert len(caplog.records) == 3
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert SECRET not in logged and TAIL not in logged and "abcdef0123456789" not in logged
    assert logged.count(REDACTED) >= 3
    assert "failed with 2 retries" in logged  # ordinary arguments are still applied


def test_the_stderr_handler_filter_redacts_records_made_elsewhere(tmp_path):
    register_secret(SECRET)
    with (tmp_path / "stderr.txt").open("w") as stream:
        handler = logging.StreamHandler(stream)
        install_log_redaction(handlers=False, extra=[handler])
        record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "key %s", (SECRET,), None)  # made by hand
        handler.handle(record)
    assert SECRET not in (tmp_path / "stderr.txt").read_text()
    assert REDACTED in (tmp_path / "stderr.txt").read_text()


def test_stderr_of_the_server_process_never_shows_the_key_at_any_log_level(tmp_path):
    """``kie-mcp`` in its own process, KIE_LOG_LEVEL=DEBUG: the key is logged on purpose, by kie_mcp's loggers and
    a library's, with and without a traceback; stderr shows ``[redacted]`` instead."""
    script = f"""
import logging, kie_mcp.server
SECRET = {SECRET!r}

class Server:
    async def run_stdio_async(self):
        logging.getLogger("kie_mcp.kie.client").debug("sent Authorization: Bearer %s", SECRET)
        logging.getLogger("httpx2").warning("echo %s", SECRET)
        logging.getLogger("kie_mcp.tasks").info("api_key=%s", "not-the-key-but-a-value")
        try:
            raise RuntimeError("KIE said " + SECRET)
        except RuntimeError:
            logging.getLogger("kie_mcp").exception("failed")

kie_mcp.server.create_server = lambda settings: Server()
from kie_mcp.cli import main
raise SystemExit(main([]))
"""
    env = {"KIE_API_KEY": SECRET, "KIE_LOG_LEVEL": "DEBUG", "KIE_WORKSPACE": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "sent Authorization: Bearer [redacted]" in err and "echo [redacted]" in err
    assert "api_key=[redacted]" in err and "RuntimeError: KIE said [redacted]" in err
    assert SECRET not in err and TAIL not in err and "not-the-key-but-a-value" not in err
