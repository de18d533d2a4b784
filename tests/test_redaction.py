"""Secrets never leave the machine: one redaction point, proven against a KIE that echoes the key back.

The simulator's ``echo_auth`` faults play a hostile or buggy upstream that puts the request's real
``Authorization`` header into every kind of error. Whatever the agent, the logs or the workspace get must hold
``[redacted]`` where the echo was, and never the key.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from mcp import Client
from PIL import Image
from pydantic import SecretStr

from kie_mcp import redact as redaction
from kie_mcp.catalog.live import LiveCatalog, LiveModel, cache_path
from kie_mcp.kie import KieClient, KieError, TaskStatus
from kie_mcp.kie.pacing import SlidingWindow
from kie_mcp.redact import REDACTED, SecretWatch, install_log_redaction, redact, redact_value, register_secret
from kie_mcp.sandbox import SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .conftest import API, UPLOADS, Controls, answering, text_of
from .test_kie_wire import CREDIT, RECORD, Rewriting

SECRET = "sk-live-ECHOED-SECRET-7f3e9b2c5a8d1046"
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
        await echo.controls.post("clock/speed", {"speed": 0})  # the task runs until asked: never saved before it
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


# -- a key KIE echoes in a successful answer: redacted where every answer is read --------------------------------

# Shaped as KIE's keys are (32 hex characters): nothing but being the key gets it redacted.
KIE_KEY = "3f9a0c1e5b7d2f4a6c8e0b1d3f5a7c9e"


@asynccontextmanager
async def kie_echoing_in_answers(
    settings: Any, mode: str, asked: list[str] | None = None
) -> AsyncIterator[tuple[Client, Rewriting, Controls]]:
    """The server with the key ``KIE_KEY``, talking to the simulator through ``Rewriting`` (answers to change);
    ``asked`` collects every confirmation question the client was shown."""
    sim = Simulator(SimConfig(speed=1000.0), keys={KIE_KEY: "default"})
    transport = Rewriting(SandboxTransport(sim))
    server = create_server(replace(settings, api_key=SecretStr(KIE_KEY)), transport=transport)
    controls = Controls(transport)
    try:
        async with Client(server, mode=mode, elicitation_callback=answering(seen=asked)) as client:
            yield client, transport, controls
    finally:
        await controls.http.aclose()


def holding_the_key(workspace: Path, key: str = KIE_KEY) -> list[str]:
    """Files of the workspace that hold the key, or its first 12 characters."""
    files = [path for path in workspace.rglob("*") if path.is_file()]
    return [str(path) for path in files if key[:12].encode() in path.read_bytes()]


async def test_a_key_kie_echoes_in_its_model_list_or_schema_is_never_cached_or_shown(settings, mode, tmp_path):
    """The live catalogue keeps KIE's model list and schemas in the workspace and shows them (list_models,
    kie://models...): an echoed key was written to catalog-live.json and shown to the agent."""
    schema = {
        "openapi": "3.1.0",
        "info": {"title": "echo", "description": f"Your key {KIE_KEY}"},
        "paths": {
            "/api/v1/jobs/createTask": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "model": {"type": "string"},
                                        "input": {
                                            "type": "object",
                                            "properties": {
                                                "prompt": {"type": "string", "description": f"key={KIE_KEY}"}
                                            },
                                            "required": ["prompt"],
                                        },
                                    },
                                }
                            }
                        }
                    }
                }
            }
        },
    }
    sim = Simulator(SimConfig(speed=1000.0), keys={KIE_KEY: "default"})
    transport = SandboxTransport(sim)
    controls = Controls(transport)
    await controls.post("config", {"catalog_limit_per_second": 0})
    await controls.post(
        "catalog/extra",
        {
            "model": "brand/echo-image",
            "title": f"Echo Image {KIE_KEY}",
            "taskType": ["Text to Image"],
            "description": f"Try it: curl -H 'X-Key: {KIE_KEY}' ...",
            "pricingDesc": f"4 credits per image ({KIE_KEY})",
            "openapi": schema,
        },
    )
    window = SlidingWindow(1000, 1.0)
    kie = KieClient(api_key=KIE_KEY, base_url=API, upload_base_url=UPLOADS, transport=transport, catalog_window=window)
    async with kie:
        live = await LiveCatalog().sync(kie)
    live.save(cache_path(tmp_path))
    server = create_server(replace(settings, api_key=SecretStr(KIE_KEY)), transport=transport)
    async with Client(server, mode=mode) as client:
        listed = await client.call_tool("list_models", {"query": "echo"})
        shown = [text_of(listed), json.dumps(listed.structured_content)]
        for uri in ("kie://models/brand/echo-image", "kie://models.json", "kie://models"):
            shown += [getattr(c, "text", "") for c in (await client.read_resource(uri)).contents]
    await controls.http.aclose()
    assert "brand/echo-image" in shown[0] and f"X-Key: {REDACTED}" in shown[0]  # the echo happened, redacted
    assert not [text for text in shown if KIE_KEY[:12] in text]
    assert holding_the_key(tmp_path) == []


async def test_a_live_catalogue_cached_before_answers_were_redacted_is_redacted_when_read(settings, mode, tmp_path):
    """A cache written by an earlier kie-mcp (version 1) may hold a key KIE echoed: it is never shown."""
    register_secret(KIE_KEY)  # as the command line does at start-up
    echoed = LiveModel(model="brand/old-image", title="Old Image", task_types=["Text to Image"], description=KIE_KEY)
    LiveCatalog(version=1, models={echoed.model: echoed}, fetched_at="2026-12-01T00:00:00Z").save(cache_path(tmp_path))
    assert KIE_KEY in cache_path(tmp_path).read_text()
    assert LiveCatalog.load(cache_path(tmp_path)).models["brand/old-image"].description == REDACTED
    assert KIE_KEY not in cache_path(tmp_path).read_text()  # cleaned once and kept so, not cleaned on every start
    assert json.loads(cache_path(tmp_path).read_text())["version"] == 2
    async with kie_echoing_in_answers(settings, mode) as (client, _, _):
        listed = await client.call_tool("list_models", {"query": "old"})
        read = await client.read_resource("kie://models.json")
    assert KIE_KEY[:12] not in text_of(listed) + json.dumps(listed.structured_content) + read.contents[0].text


async def test_a_key_kie_echoes_in_an_upload_answer_is_never_shown_kept_or_sent_to_a_create(
    settings, mode, caplog, tmp_path
):
    """A file link holding the key is no link to use: the upload is refused, clearly, before anything is spent."""
    Image.new("RGB", (1200, 900), (200, 60, 40)).save(tmp_path / "photo.png")

    def echo(body: dict[str, Any]) -> dict[str, Any]:
        body["data"].update(
            downloadUrl=f"https://tempfile.redpandaai.co/kieai/{KIE_KEY}/kie-mcp/photo.png", fileName=KIE_KEY
        )
        return body

    caplog.set_level(logging.DEBUG)
    async with kie_echoing_in_answers(settings, mode) as (client, transport, controls):
        for path in ("/api/file-stream-upload", "/api/file-base64-upload", "/api/file-url-upload"):
            transport.rewrites[path] = echo
        uploaded = await client.call_tool("upload_file", {"path": "photo.png"})
        made = await client.call_tool("generate_image", {"prompt": "make it blue", "images": ["photo.png"]})
        creates = await controls.creates()
    shown = text_of(uploaded) + json.dumps(uploaded.structured_content) + text_of(made)
    assert uploaded.is_error and "holds a credential" in text_of(uploaded) and REDACTED in text_of(uploaded)
    assert made.is_error and "nothing was charged" in text_of(made) and creates == []
    assert "unexpected error" not in shown and KIE_KEY[:12] not in shown
    assert KIE_KEY[:12] not in caplog.text and holding_the_key(tmp_path) == []


async def test_a_key_kie_echoes_in_a_balance_is_redacted_before_the_answer_is_cut(settings, mode, tmp_path):
    """A balance that is not a number is shown, cut to 200 characters: cut first, the key's first 15 characters
    crossed the cut and were shown, no longer whole enough to be recognised as the key."""
    async with kie_echoing_in_answers(settings, mode) as (client, transport, _):
        transport.rewrites["/api/v1/chat/credit"] = lambda body: {**body, "data": "x" * 180 + " " + KIE_KEY}
        result = await client.call_tool("check_credits", {})
    assert result.is_error and "not a number" in text_of(result) and REDACTED in text_of(result)
    assert KIE_KEY[:8] not in text_of(result)
    assert holding_the_key(tmp_path, KIE_KEY[:8]) == []


def _key_repeated_then_in_hex(window: int = 3024, cut: int = 62) -> str:
    """A text repeating the key up to where a window of ``window`` characters ends ``cut`` characters into the key's
    hex: redacted, the repeats shrink, and the hex cut at the window's end (unfound there) would fall inside what is
    shown."""
    room = window - cut
    repeats = room // 33
    hexed = KIE_KEY.encode().hex()
    return (KIE_KEY + " ") * repeats + "x" * (room - 33 * repeats - 1) + " " + hexed + " tail" * 50


async def test_a_message_repeating_the_key_then_writing_it_in_hex_is_never_shown_in_part(settings, mode, tmp_path):
    """The final read: KIE's text is redacted only in what is kept of it (2000 characters and 1024 after), but
    redaction shortens each key to ``[redacted]``, so the hex form cut at the window's end came within what is
    shown: 31 of the key's 32 characters, in check_credits' answer and the call log. The window now grows until
    what is left of it after redaction still reaches past the cut."""
    echoed = _key_repeated_then_in_hex()
    async with kie_echoing_in_answers(settings, mode) as (client, transport, _):
        transport.rewrites["/api/v1/chat/credit"] = lambda body: {**body, "code": 500, "msg": echoed, "data": None}
        result = await client.call_tool("check_credits", {})
    shown = text_of(result) + json.dumps(result.structured_content)
    hexed = KIE_KEY.encode().hex()
    assert result.is_error and REDACTED in shown
    assert hexed[:16] not in shown and KIE_KEY[:8] not in shown
    assert holding_the_key(tmp_path, hexed[:16]) == [] and holding_the_key(tmp_path, KIE_KEY[:8]) == []


def test_a_value_repeated_back_never_shows_a_piece_of_the_key_past_its_redacted_repeats():
    """``words.plain`` (every error repeating a value) redacted the same window: the same text showed the hex."""
    from kie_mcp.words import plain

    register_secret(KIE_KEY)
    shown = plain(_key_repeated_then_in_hex(), quoted=False, limit=2000)
    assert KIE_KEY.encode().hex()[:16] not in shown and REDACTED in shown


# -- the redaction point itself ---------------------------------------------------------------


def test_a_bearer_token_that_is_not_the_key_is_still_redacted():
    assert redact("upstream said: Bearer abc.DEF-123_x is invalid") == f"upstream said: Bearer {REDACTED} is invalid"
    assert redact("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: Basic {REDACTED}"
    assert redact('{"Authorization": "Bearer zzz"}') == f'{{"Authorization": "Bearer {REDACTED}"}}'
    assert redact("retry with api_key=abc123&x=1") == f"retry with api_key={REDACTED}&x=1"
    assert redact('{"apiKey": "abc"} KIE_API_KEY=xyz') == f'{{"apiKey": "{REDACTED}"}} KIE_API_KEY={REDACTED}'
    assert redact("https://user:pa55@cdn.example/x.png") == f"https://{REDACTED}@cdn.example/x.png"
    assert redact("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl") == f"token {REDACTED}"


def test_another_credential_holding_a_piece_of_the_key_is_redacted_whole():
    """A token that holds 16 of the key's characters goes whole, not cut around the piece with its ends left to
    read; and a key hidden by an invisible character inside a Bearer token goes with it, its tail included."""
    key = "5f0c2d9e8a7b6c4d3e2f1a0b9c8d7e6f"
    register_secret(key)
    github = "ghp_" + "AbCdEfGhIjKlMnOp" + key[:16] + "QrStUvWxYzAbCdEf12"
    assert redact(f"token {github} refused") == f"token {REDACTED} refused"
    assert redact(f"sent Bearer abcD{key}zzzz twice") == f"sent Bearer {REDACTED} twice"
    disguised = key[:20] + "\u200b" + key[20:]
    assert redact(f"Authorization: Bearer {disguised} ok") == f"Authorization: Bearer {REDACTED} ok"
    assert redact(f"api_key={key}tail&x=1") == f"api_key={REDACTED}&x=1"


@pytest.mark.parametrize(
    "credential",
    [
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
        "ghp_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEf1234",
        "Bearer zq81xy0w99",
        "password=hunter2x",
    ],
)
def test_a_credential_right_after_the_key_is_redacted_too(credential):
    """Found in the text as given, a credential glued to the key's last character once lost its pattern's boundary
    ("no token character before it") and stayed: the key's place counts as a boundary, as [redacted] did."""
    key = "5f0c2d9e8a7b6c4d3e2f1a0b9c8d7e6f"
    register_secret(key)
    shown = redact(f"a poster reading {key}{credential} ok")
    assert key[:16] not in shown and credential.split("=")[-1].split()[-1][-8:] not in shown, shown


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


def test_a_text_of_megabytes_is_redacted_apart_exactly_as_any_other_text():
    """The audit: a 20 MB text reference was redacted on the event loop, and in a worker thread CPython's ``re``
    still held every other thread for a whole pass (1-2 s over 10 MB). Such a text is redacted in a child process
    (``redact_apart``), which registers the same secrets: what it answers is what ``redact`` answers, to the
    character, the key in each of its shapes, other credentials, and text that is not ASCII (a lone surrogate
    too) kept as they are."""
    from kie_mcp.redact import APART, redact_apart

    register_secret(SECRET)
    filler = base64.b64encode(bytes(range(256)) * (APART // 256)).decode()
    text = (
        f"api_key={SECRET} {SECRET[:20]} Bearer abcdefghijklmnop123 {SECRET.upper()} "
        f"{base64.b64encode(SECRET.encode()).decode()} https://user:pass@example.com café ｛\ud83d\n"
        + filler
        + f"\n{quote(SECRET)} eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln done"
    )
    assert len(text) > APART
    apart = redact_apart(text)
    assert apart == redact(text)
    assert SECRET[:16] not in apart and apart.endswith(f"{REDACTED} {REDACTED} done") and "café ｛\ud83d" in apart


def test_kie_errors_and_task_statuses_redact_what_kie_said():
    register_secret(SECRET)
    err = KieError(f"bad key Bearer {SECRET}", code=401, next_step=f"not {SECRET}")
    assert SECRET not in str(err) and SECRET not in json.dumps(err.as_dict())
    assert REDACTED in err.message and REDACTED in err.next_step
    status = TaskStatus(task_id="t1", family="market", state="failed", raw_state="fail", fail_message=SECRET)
    assert status.fail_message == REDACTED


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("`KIE_API_KEY=...` (add `.env`)", "`KIE_API_KEY=...` (add `.env`)"),  # a template's placeholder, whole
        ("api_key=<your key>", "api_key=<your key>"),
        ("`api_key=abc123secret`.", "`api_key=[redacted]`."),  # the closing backtick kept
        ("`password`: `hunter2x`", "`password`: `[redacted]`"),
        # the review: markdown's double backticks, a backtick inside a value, "..." before a value
        ("api_key=``s3cr3tP4ssw0rd`` ok", "api_key=``[redacted]`` ok"),
        ("password=ab`cdefghijkl", "password=[redacted]"),
        ("api_key=...`realsecret", "api_key=[redacted]"),
        ("password=...abc", "password=[redacted]"),
        # kie-mcp's own placeholder for a value it hides, also where a sentence ends (a refused --api-key=<key>)
        ("demo --api-key=<not shown>. Settings go", "demo --api-key=<not shown>. Settings go"),
        ("api_key=<your key>.", "api_key=<your key>."),
        ("api_key=<not shown>.abc", "api_key=[redacted] shown>.abc"),
    ],
)
def test_a_credential_s_value_ends_where_markdown_closes_it_and_no_sooner(text, shown):
    assert redact(text) == shown


def test_a_credential_pattern_is_skipped_only_for_a_text_it_cannot_match():
    """Each credential pattern runs only on a text holding one of its words (a text without them costs a few
    microseconds, not 0.2 ms a kilobyte): skipping changes nothing, in any letter case the patterns' (?i) takes,
    the Kelvin sign, the long s and the dotless i included."""
    words = {word for *_, needs in redaction._PATTERNS for word in needs} | {"bearer", *redaction._TOKEN_STARTS}
    letters = "".join(sorted({ch for word in words for ch in word}))
    everything = "".join(chr(point) for point in range(sys.maxunicode + 1) if not 0xD800 <= point < 0xE000)
    for ch in set(re.findall(f"(?i)[{re.escape(letters)}]", everything)):
        for letter in letters:
            if re.fullmatch(f"(?i){re.escape(letter)}", ch):  # what (?i) takes for the letter, casefold() makes it
                assert letter in redaction._folded(ch), (ch, letter)
    texts = [
        "Authorization: Bearer abcdefgh12345678",
        '{"authorization": "Basic dXNlcjpwYXNz"} and proxy-authorization=xyz',
        "AUTHORıZATION: Basic abc123",
        "Authorİzation: Basic dXNlcjpwYXNzd29yZA and İD_TOKEN=abc",  # the dotted capital I: casefold() adds a dot
        "authorization: [redacted]",
        "KIE_API_KEY=abc123 apiKey: xyz client_secret: s id_token=t",
        "x-api-\u212aey: q",
        "paſſword=hunter2",
        "BEARER\u212a zzzzzzzzzzzzzzzzzzzzzzzz",
        "ſecret_key=abc",
        "https://user:pa55@example.com/x and ftp://anon@host/ and http://example.com/a",
        "the bearer of bad news; BEARER  token1234567; bearer xyzxyzxyzxyzxyzxyzxyzxyz",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig sk-abcdefghijklmnop1234 rk_ABCDEFGHIJKLMNOPQRS",
        "A fox at dawn, 35mm, f/1.8; a prompt with no credential in it at all, and task 0123456789abcdef.",
        "ſk-abcdefghijklmnopqrst and \u212aEY=1 and eYj0eXAiOiJKV1QiLCJhbGciOi.eyJpc3MiOiJqb2UiLA0K.x",
    ]
    for text in texts:
        assert redaction._credential_spans(text) == redaction._credential_spans(text, every=True), text


@pytest.mark.parametrize(
    "text",
    [
        "the token of " + "a_" * 100_000,  # every "_" of the run was a start of api_key=... scanning to its end
        "Use KIE_API_KEY from env. Files: " + "_".join(f"take_{n}" for n in range(20_000)),
        " " + "-eyJ" * 50_000,  # every "-eyJ" a start of a JSON Web Token scanning to the run's end
        "see http:// " + "a." * 100_000,  # every word of the run a start of a scheme scanning to its end
    ],
)
def test_a_long_prompt_near_a_credential_word_never_stalls_the_server(text):
    """The audit: redaction (every log record, journal write and answer about the task, on the event loop) took
    quadratic time on a run of underscored words near "key"/"token" (a 4 KB prompt 0.7 s, 100 KB 288 s, and every
    later list_tasks or check_task paid it again), of "-eyJ", or of a.b.c... words in a text holding "://": a 200 KB
    text now takes milliseconds. Bounded by the stall it guards against (minutes), not by a speed."""
    register_secret(SECRET)
    started = time.perf_counter()
    assert redact(text) == text
    assert time.perf_counter() - started < 10


_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghij"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a_b_c_api_key=s3cr3tvalue ok", f"a_b_c_api_key={REDACTED} ok"),
        ("KIE_API_KEY=s3cr3tvalue", f"KIE_API_KEY={REDACTED}"),
        ("my_client_secret: s3cr3tvalue", f"my_client_secret: {REDACTED}"),
        ("x -eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghij y", f"x -{REDACTED} y"),
        ("Authorİzation: Basic dXNlcjpwYXNzd29yZA", f"Authorİzation: Basic {REDACTED}"),
        ("a.b.c.https://user:pa55w0rd@example.com/x", f"a.b.c.https://{REDACTED}@example.com/x"),
        ("-git+ssh://me:pa55w0rd@host", f"-git+ssh://{REDACTED}@host"),
        # a token glued after a word and a dash (the review: the linear pattern of the morning missed these)
        ("session-" + _JWT, f"session-{REDACTED}"),
        ("x-" + _JWT + " y", f"x-{REDACTED} y"),
        ("--" + _JWT, f"--{REDACTED}"),
        ("abc.defghijkl." + _JWT, f"abc.defghijkl.{REDACTED}"),
        ("redis://:hunter2pass@cache:6379/0", f"redis://{REDACTED}@cache:6379/0"),  # Redis's link: no user name
    ],
)
def test_a_credential_after_words_joined_by_underscores_or_a_dash_is_still_redacted(text, shown):
    assert redact(text) == shown


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


# -- the key in another letter case or in base64: redacted all the same ---------------------------------------------
# An upstream may echo the key upper-cased, or base64-encoded: alone, as HTTP Basic or Bearer credentials, or inside
# a longer base64 text (a request dump, a token), where its encoding depends on its offset modulo 3.

MIXED_CASE = "".join(ch.upper() if i % 2 else ch for i, ch in enumerate(KIE_KEY))


def _b64(data: bytes, *, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode("ascii")


def key_in_every_form() -> dict[str, str]:
    """Every form of ``KIE_KEY`` an upstream may echo, by name."""
    key = KIE_KEY.encode()
    forms = {
        "upper case": KIE_KEY.upper(),
        "mixed case": MIXED_CASE,
        "base64": _b64(key),
        "base64 unpadded": _b64(key).rstrip("="),
        "base64url": _b64(key, urlsafe=True).rstrip("="),
        "upper case in a URL": f"https://api.kie.ai/x?key={quote(KIE_KEY.upper())}&n=1",
        "HTTP Basic, no user": "Basic " + _b64(b":" + key),
        "HTTP Basic, key as user": "Basic " + _b64(key + b":"),
        "HTTP Basic, a user": "Basic " + _b64(b"kie-user:" + key),
        "Bearer in base64": _b64(b"Bearer " + key),
        "Bearer in base64url": _b64(b"Bearer " + key, urlsafe=True),
    }
    for lead in range(3):  # inside a longer base64 text, at each offset modulo 3, in both alphabets
        blob = b"\xfb\xff\xbf" * 4 + bytes(range(200, 200 + lead)) + key + b"\xff\xfe\xfd" * 4
        forms[f"inside base64, offset {lead}"] = _b64(blob)
        forms[f"inside base64url, offset {lead}"] = _b64(blob, urlsafe=True).rstrip("=")
        # MIME wraps base64 every 76 characters (57 bytes): the key's encoding here runs across the break
        wrapped = base64.encodebytes(b'{"error": "unauthorized", "token": "' + bytes(8 + lead) + key + b'"}').decode()
        assert _b64(bytes(lead) + key)[4:40] not in wrapped  # the key's characters are broken over two lines
        forms[f"inside base64 wrapped over lines, offset {lead}"] = wrapped.strip()
    groups = [KIE_KEY[:8], KIE_KEY[8:12], KIE_KEY[12:16], KIE_KEY[16:20], KIE_KEY[20:]]
    forms |= {
        "cut short by one": KIE_KEY[:-1],
        "its first character cut": KIE_KEY[1:],
        "as a UUID": "-".join(groups),
        "as an upper-case UUID": "-".join(groups).upper(),
        "in groups of four": " ".join(KIE_KEY[at : at + 4] for at in range(0, len(KIE_KEY), 4)),
        "broken over two lines": f"{KIE_KEY[:16]}\n{KIE_KEY[16:]}",
    }
    return forms


def _key_parts() -> list[str]:
    """What only the key makes in each of its forms: its characters (compared in lower case) and, for each offset
    modulo 3 in a base64 text and each alphabet, the 36 encoded characters that depend on the key alone."""
    key = KIE_KEY.encode()
    parts = [KIE_KEY]
    for lead in range(3):
        parts += [_b64(bytes(lead) + key)[4:40], _b64(bytes(lead) + key, urlsafe=True)[4:40]]
    return parts


def key_leaks(text: str) -> list[str]:
    """The 16-character runs of the key's forms found in ``text`` (empty when none of it is there), also with the
    dashes, spaces and line breaks (as they are or JSON-escaped) that may stand between their characters."""
    found = []
    for seen in (text, re.sub(r"\\[rn]|[-\s]", "", text)):
        lowered = seen.lower()
        for part in _key_parts():
            for start in range(len(part) - 15):
                run = part[start : start + 16]
                if ((run in lowered) if part == KIE_KEY else (run in seen)) and run not in found:
                    found.append(run)
    return found


def test_the_key_in_any_case_or_base64_form_is_redacted():
    register_secret(KIE_KEY)
    for name, form in key_in_every_form().items():
        assert key_leaks(form), name  # the checker finds the key in each form, else these tests would prove nothing
        said = f"upstream said: bad key {form} (retry)"
        clean = redact(said)
        assert key_leaks(clean) == [], (name, clean)
        assert clean.startswith("upstream said: bad key ") and clean.endswith(" (retry)") and REDACTED in clean
        assert redact(clean) == clean  # stable
    assert redact(_b64(KIE_KEY.encode())) == REDACTED  # a whole encoding goes whole, padding too
    assert redact("Basic " + _b64(b":" + KIE_KEY.encode())) == f"Basic {REDACTED}"
    assert redact(MIXED_CASE) == REDACTED


def test_ordinary_text_is_not_redacted_by_the_keys_many_forms():
    """Hex colours, other keys' and pictures' base64, ids and prose stay as they are: only the key's own forms,
    long enough never to occur by chance, are redacted."""
    register_secret(KIE_KEY)
    register_secret(SECRET)
    random = __import__("random").Random(7)
    other_key = f"{random.getrandbits(128):032x}"
    picture = _b64(bytes(random.getrandbits(8) for _ in range(30_000)))
    ordinary = [
        "A poster in #3F9A0C and #3f9a0c1e, accents #FFFFFF and #5b7d2f; a fox at dawn, 35mm, f/1.8.",
        f"key fragment {KIE_KEY[:12]} and {KIE_KEY[-12:].upper()} is not the key",  # parts of it are not it
        f"another account's key {other_key} / {other_key.upper()} / {_b64(other_key.encode())}",
        f"data:image/png;base64,{picture}",
        f"data:image/png;base64,{_b64(bytes(range(256)) * 40, urlsafe=True)}",
        "Basic dXNlcjpwYXNzd29yZA== is how one writes user:password",
        "M2Y5YTBj is the start of a base64 text, and so is TTJZNVlU",
        "task_3f9a0c1e5b7d2f4 0123456789ABCDEF0123456789abcdef nano-banana-2",  # 15 of its characters
        f"request {other_key[:8]}-{other_key[8:12]}-{other_key[12:16]}-{other_key[16:20]}-{other_key[20:]}",
        " ".join(other_key[at : at + 4] for at in range(0, 32, 4)),
        base64.encodebytes(bytes(random.getrandbits(8) for _ in range(3_000))).decode(),  # wrapped, not the key
    ]
    for text in ordinary:
        assert redact(text) == text, text


def leaks_in_workspace(workspace: Path) -> dict[str, list[str]]:
    """Every file of the workspace whose name or bytes hold a form of the key (the journal, its WAL, the call log,
    sidecars, gallery pages, previews), with what was found."""
    found: dict[str, list[str]] = {}
    for path in workspace.rglob("*"):
        name = path.relative_to(workspace).as_posix()
        leaks = key_leaks(name) + (key_leaks(path.read_bytes().decode("latin-1")) if path.is_file() else [])
        if leaks:
            found[name] = leaks
    return found


async def test_the_key_kie_echoes_in_another_case_or_in_base64_never_reaches_an_answer_a_log_or_a_file(
    settings, mode, caplog, tmp_path
):
    """A task's failMsg and a balance error echo the key upper-cased, mixed-case and base64-encoded in every way:
    redacted in the tool answers, the task resources, every log record, the call log, the journal and every file."""
    echoed = " | ".join(key_in_every_form().values())

    def failed(body: dict[str, Any]) -> dict[str, Any]:
        body["data"].update(state="fail", failCode="401", failMsg=f"Invalid key {echoed}", resultJson="")
        return body

    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    async with kie_echoing_in_answers(settings, mode) as (client, transport, _):
        transport.rewrites[RECORD] = failed
        made = await client.call_tool("generate_image", {"prompt": "an apple"})
        [task] = made.structured_content["tasks"]
        listed = await client.call_tool("list_tasks", {})
        transport.rewrites[CREDIT] = lambda body: {"code": 401, "msg": f"bad key {echoed}"}
        credits = await client.call_tool("check_credits", {})
        for result in (made, listed, credits):
            shown.append(text_of(result) + "\n" + json.dumps(result.structured_content))
        for uri in ("kie://tasks", f"kie://tasks/{task['task_id']}"):
            shown += [getattr(c, "text", "") for c in (await client.read_resource(uri)).contents]
    assert task["state"] == "failed" and f"Invalid key {REDACTED} | {REDACTED}" in task["error"], task
    assert credits.is_error and f"bad key {REDACTED}" in text_of(credits), text_of(credits)
    assert [key_leaks(text) for text in shown] == [[]] * len(shown)
    logged = [record.getMessage() for record in caplog.records]
    assert any(REDACTED in line for line in logged)  # the echo was logged, redacted
    assert key_leaks("\n".join(logged) + caplog.text) == []
    assert any(REDACTED in error for error in call_log_errors(tmp_path))
    assert (tmp_path / ".kie-mcp" / "journal.sqlite3").is_file()
    assert leaks_in_workspace(tmp_path) == {}


class FileHostEchoingTheKey(httpx2.AsyncBaseTransport):
    """The host a result link points at (not KIE's API) refuses every download with an error whose reason phrase
    holds the key, as a hostile or broken upstream may; everything else reaches the simulator."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.startswith("/files/"):
            phrase = f"Bad token {KIE_KEY}".encode()
            return httpx2.Response(500, content=b"oops", extensions={"reason_phrase": phrase})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_key_the_file_host_echoes_in_its_reason_phrase_never_reaches_an_answer(
    settings, mode, caplog, tmp_path
):
    """A result that cannot be saved is named in generate_image's and check_task's answers with the file host's
    own words (HTTP 500 and its reason phrase): the key in them is shown as [redacted], never as it is."""
    caplog.set_level(logging.DEBUG)
    async with kie_echoing_in_answers(settings, mode) as (client, transport, _):
        transport.inner = FileHostEchoingTheKey(transport.inner)
        made = await client.call_tool("generate_image", {"prompt": "an apple"})
        [task] = made.structured_content["tasks"]
        checked = await client.call_tool("check_task", {"task_id": task["task_id"]})
    shown = [text_of(result) + "\n" + json.dumps(result.structured_content) for result in (made, checked)]
    assert all(f"HTTP 500 Bad token {REDACTED}" in text for text in shown), shown
    assert [key_leaks(text) for text in shown] == [[], []]
    assert key_leaks("\n".join(record.getMessage() for record in caplog.records) + caplog.text) == []
    assert leaks_in_workspace(tmp_path) == {}


def test_a_key_typed_in_full_width_letters_never_names_a_folder():
    """A session name is made ASCII for its folder: the key typed in full-width letters became the plain key there."""
    from datetime import date

    from kie_mcp.media.downloads import output_folder

    key = "9c1e5b7d2f4a6c8e0b1d3f5a7c9e3f0a"
    register_secret(key)
    wide = "".join(chr(ord(c) + 0xFEE0) for c in key)  # U+FF10... : what an IME or a copy from a PDF may give
    folder = output_folder(Path("/w"), f"s {wide}", date(2026, 12, 4)).name
    assert key not in folder.lower() and "redacted" in folder, folder
    assert output_folder(Path("/w"), "Summer Sale", date(2026, 12, 4)).name == "2026-12-04-summer-sale"


def test_a_key_pasted_into_a_caption_is_never_written_or_burned_in(tmp_path):
    """Captions are written to the files ffmpeg burns into the joined video: the key pasted into one is redacted
    there, so it never ends up in a file kie-mcp makes."""
    from kie_mcp.media.stitch import Caption, write_srt

    key = "5b7d2f4a6c8e0b1d3f5a7c9e3f0a9c1e"
    register_secret(key)
    srt = tmp_path / "captions.srt"
    write_srt([Caption(0.0, 2.0, f"Use the key {key.upper()} today"), Caption(2.0, 3.0, "Cold brew, made slow")], srt)
    written = srt.read_text(encoding="utf-8")
    assert key not in written.lower() and REDACTED in written
    assert "Cold brew, made slow" in written


@pytest.mark.parametrize(
    "encode",
    [
        lambda key: key.encode(),
        lambda key: key.upper().encode(),
        lambda key: key.encode("utf-16-le"),
        lambda key: b"\x01" + key.encode("utf-16-be"),  # UTF-16 at an odd offset
        lambda key: base64.b64encode(b"Bearer " + key.encode()),
        lambda key: "-".join(key[at : at + 8] for at in range(0, 32, 8)).encode(),
        lambda key: key[9:25].encode(),
        lambda key: ":".join(key[at : at + 2] for at in range(0, 32, 2)).upper().encode(),
        lambda key: b"\x01" + "-".join(key[at : at + 4] for at in range(0, 32, 4)).encode("utf-16-le"),
    ],
    ids=[
        "plain",
        "upper",
        "utf16-le",
        "utf16-be-odd",
        "base64-bearer",
        "dashed",
        "sixteen",
        "hex-pairs",
        "utf16-dashed",
    ],
)
@pytest.mark.parametrize("offset", [0, redaction.SCAN_CHUNK - 9, 3 * redaction.SCAN_CHUNK + 5])
def test_bytes_served_as_they_are_are_refused_wherever_the_key_sits_in_them(encode, offset):
    """A file served as it is (a video, a picture) is searched a chunk at a time, so that a long one does not hold up
    the server: the key is found across a chunk's edge, deep in the file, in any of the forms it may be written in."""
    key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    register_secret(key)
    blob = encode(key)
    content = bytes(offset) + blob + bytes(4 * redaction.SCAN_CHUNK)
    assert redaction.bytes_hold_secret(content)
    assert not redaction.bytes_hold_secret(bytes(offset) + blob[: len(blob) // 3] + bytes(redaction.SCAN_CHUNK))


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        (f"https://collector.example/p/{KIE_KEY[:16]}.png", True),
        (f"https://collector.example/q/{KIE_KEY[16:]}.png", True),
        ("https://collector.example/" + "-".join(KIE_KEY[at : at + 8] for at in range(0, 32, 8)), True),
        (f"https://collector.example/{KIE_KEY[:16]}%2D{KIE_KEY[16:]}", True),  # the host reads a dash
        ("https://collector.example/" + "\u200b".join(KIE_KEY[:16]), True),  # invisible characters between
        ("https://collector.example/" + KIE_KEY[:16].translate({ord(c): ord(c) + 0xFEE0 for c in KIE_KEY}), True),
        (f"https://collector.example/{KIE_KEY[:15]}.png", False),  # 15: a guess away from nothing
        ("https://img.example/c704a3ce-9690-44e2-a4e7-373ff3d69f2e.png", False),  # hex, not the key's
        ("https://img.example/0123456789abcdef0123456789abcdef/face.png", False),
    ],
    ids=["first-half", "second-half", "dashed", "percent-dash", "zero-width", "fullwidth", "fifteen", "uuid", "hash"],
)
def test_a_text_holds_the_key_wherever_the_redactor_would_take_it_out(text, holds):
    """What cannot be redacted (an input link KIE fetches) is judged by ``holds_secret``: it looked for the key
    whole, so each half of it, or the key in dashed groups, passed (two links hand over all of it)."""
    register_secret(KIE_KEY)
    assert redaction.holds_secret(text) is holds
    if holds and "%" not in text:
        assert redaction.redact_secrets(text) != text  # the same judgement as the redactor's


def test_bytes_are_searched_for_the_pieces_of_every_key_registered():
    """A second key of hex digits has the letters of the first: its pieces are looked for too (the search kept for
    the first key's letters was once taken for both)."""
    first, second = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b", "4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
    register_secret(first)
    assert redaction.bytes_hold_secret(b"\x01" * 100 + first[8:24].encode())
    register_secret(second)
    assert redaction.bytes_hold_secret(b"\x01" * 100 + "-".join(second[at : at + 8] for at in (0, 8)).encode())


@pytest.mark.parametrize("where", ["start", "end", "across two pieces at the start"])
def test_a_download_is_searched_for_the_key_where_files_keep_their_metadata(where):
    """A saved result is searched for the key as it streams, where pictures and videos keep their metadata: the
    first megabytes (EXIF, XMP, a JPEG comment, an MP4 whose tags come first) and the last (PNG text after the
    pixels, an MP4 whose tags come last). The review: searching every byte made a 300 MB video seven times slower
    to save; the middle of a large file is its pixels or frames."""
    register_secret(KIE_KEY)
    size, piece = 12 << 20, 1 << 20
    stream = bytearray(b"\x01" * size)
    at = {"start": 100, "end": size - 200, "across two pieces at the start": piece - 10}[where]
    stream[at : at + len(KIE_KEY)] = KIE_KEY.encode()
    watch = SecretWatch()
    for start in range(0, size, piece):
        watch.feed(bytes(stream[start : start + piece]))
    watch.finish()
    assert watch.found
    clean = SecretWatch()
    for _ in range(0, size, piece):
        clean.feed(b"\x01" * piece)
    clean.finish()
    assert not clean.found


@pytest.mark.parametrize(
    "token",
    [
        "ghp_" + "Ab1" * 12,
        "github_pat_11ABCDEFG0ab12CDEFG0xy_" + "Zq7Wr2Tn5" * 6 + "Mk4Pl",
        "xoxb-1234567890-abcdefghijABCDEF",
        "AIza" + "SyA-1234567890abcdefghijklmnopqrstu",
        "hf_" + "aBcDeFgHiJ" * 3 + "kL",
    ],
    ids=["github", "github-fine-grained", "slack", "google-api-key", "hugging-face"],
)
def test_another_services_token_pasted_where_the_key_goes_is_redacted_by_its_published_prefix(token):
    """A user pasting the wrong token (a GitHub or Slack one where KIE's key goes) must not see it repeated in a
    refusal or a log: these have no KIE key's shape, so only their published prefixes tell them."""
    assert redact(f"unrecognized arguments: {token}. Settings go") == f"unrecognized arguments: {REDACTED}. Settings go"
    assert redact(f"key={token}") != f"key={token}"


async def test_a_prompts_word_shaped_like_a_slack_prefix_is_quoted_asked_and_saved_as_written(connect, tmp_path):
    """The review: "xoxo-forever-and-always" in a prompt was taken for a Slack token, so the confirmation read 'a
    pink neon sign that reads [redacted] above a bar' and the result was saved in a folder named ...-reads-redacted.
    A prompt's words come back as written, and the folder is named after them."""
    prompt = "a pink neon sign that reads xoxo-forever-and-always above a bar"
    asked: list[str] = []
    async with connect(answering(seen=asked)) as client:
        estimate = await client.call_tool("estimate_cost", {"prompt": prompt, "model": "nano-banana-2"})
        made = await client.call_tool(
            "generate_image", {"prompt": prompt, "model": "nano-banana-2", "wait_seconds": 20}
        )
    assert made.structured_content["status"] == "completed", text_of(made)
    assert REDACTED not in text_of(estimate) + text_of(made), text_of(estimate) + text_of(made)
    assert f'Prompt: "{prompt}"' in asked[0] and REDACTED not in asked[0], asked[0]
    [folder] = [path.name for path in (tmp_path / "outputs").iterdir() if path.is_dir()]
    assert folder.endswith("-reads-xoxo") and "redacted" not in folder, folder


@pytest.mark.parametrize(
    "token",
    [
        "xoxb-781236542736-2364535789652-GkwFDQoHqzXDVsC6GzqYUypD",
        "xoxb-263594206564-FGqddMF8t08v8N7Oq4i57vs1",
        "xoxp-41684372915-1320496754-45609968301-e708ba56e1517a99f6b5fb07349476ef",
        "xoxs-4829527689-4829527691-4814341714-d0346ec616",
        "xoxa-2-511111111-31111111111-3111111111111-e039d02840a0b9379c",
        "xoxe.xoxp-1-" + "Mi0yLTM0MTQwNDE0MDE3Ni0zNjU5NDY0Njg4MTct" * 4,
        "xoxe-1-" + "My0xLTMxNzcwMjQ0MTcxMy01MTU4MTUyNjkxNzE0" * 4,
    ],
    ids=["bot", "legacy-bot", "user", "legacy", "workspace", "configuration", "refresh"],
)
def test_every_published_shape_of_a_slack_token_is_redacted(token):
    """Slack's tokens by their published shapes, each with its digit groups (the review: a pattern of the prefix and
    any ten letters took ordinary words for them)."""
    assert redact(f"token {token}, then") == f"token {REDACTED}, then"


@pytest.mark.parametrize(
    "text",
    [
        "An Asian market at dusk, AKIA in neon",
        "hf_ alone, ghp_short, xoxo-hugs",
        "THE ASIAN SUMMIT 2026 POSTER",
        # The review: a prompt's word shaped like a Slack prefix was redacted (the confirmation showed [redacted], the
        # result's folder was named ...-redacted). Words after each prefix, as a prompt or a poster may write them.
        "a pink neon sign that reads xoxo-forever-and-always above a bar",
        "xoxo-2024-love, XOXO-GOSSIP-GIRL-FOREVER, xoxo-20241231-valentines, xoxb-my-bot-token-goes-here",
        "xoxa-2-love-letters-forever, xoxp-placeholder-for-the-user-token, xoxe.xoxp-1-initial",
        "a banner reading ASIAPACIFICMARKETSXY and AKIAPACIFICMARKETS in gold",
        "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 and 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",
        "ghp_ghostwrittenpoemaboutautumnleaves, gho_Ghostwrittenpoemaboutautumnleaves, AIzawaSanInTheRainAtNight",
        "github_pat_tokens_are_long_and_secret_so_keep_them_safe",
    ],
)
def test_words_that_begin_like_a_token_are_left_as_they_are(text):
    assert redact(text) == text


def test_an_s3_presigned_links_access_key_id_is_left_as_given():
    """An AWS access key id is no secret (its secret key is), and every S3 presigned link carries one in
    ``X-Amz-Credential``: an input link sent as given, which the approval card could not approve if it read
    [redacted] (the card offers no Approve for text shown redacted)."""
    link = (
        "https://bucket.s3.amazonaws.com/shot.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261206%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=3600"
    )
    assert redact(link) == link
