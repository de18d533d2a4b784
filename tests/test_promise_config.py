"""Promises about configuration that a user or a client can see: the key never comes back through a broken setting,
an empty variable never loosens a cap, a .env is read as the user wrote it, and no setting crashes the server.

What a client sees goes through the SDK ``Client`` in both protocol eras (``mode``); what a user sees when the
console script starts runs the installed ``kie-mcp`` over real stdio.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from PIL import Image

from kie_mcp.config import Settings, read_dotenv
from kie_mcp.media import addresses
from kie_mcp.redact import redact
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator
from kie_mcp.server import create_server

from .conftest import CREATE_PATHS, answering, eras_in_turn, one_era_each, served_over_tcp, text_of
from .test_promise_start import client_env


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """One era per test (``conftest.one_era_each``): these are the settings' own rules, not the protocol's."""
    return one_era_each(request)


def fresh_key() -> str:
    """A key no earlier test registered for redaction: only this process's handling of it can hide it."""
    return secrets.token_hex(16)


async def everything_a_client_sees(settings: Settings, transport: SandboxTransport, mode: str) -> str:
    """The instructions, a tool answer and the kie://tasks answers of a server with ``settings``, as one text."""
    server = create_server(replace(settings, base_url="http://api.kie.test"), transport=transport)
    seen: list[str] = []
    async with Client(server, mode=mode) as client:
        seen.append(client.instructions or "")
        for tool in ("check_credits", "list_tasks"):
            seen.append(text_of(await client.call_tool(tool, {})))
        for uri in ("kie://tasks", "kie://tasks/task-1"):
            with pytest.raises(MCPError) as refused:
                await client.read_resource(uri)
            seen.append(refused.value.error.message)
    return "\n".join(seen)


# -- the key never comes back through a configuration error ------------------------------------------------------


async def test_a_key_run_into_a_cap_by_a_missing_newline_never_reaches_the_client(transport, mode, tmp_path):
    """`echo KIE_API_KEY=... >> .env` after a last line without its newline: the key sits in a broken cap."""
    key = fresh_key()
    (tmp_path / ".env").write_text(f"KIE_MAX_CREDITS_PER_DAY=3000KIE_API_KEY={key}\n")
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path)
    seen = await everything_a_client_sees(settings, transport, mode)
    assert "KIE_MAX_CREDITS_PER_DAY" in seen  # the problem is still named, where to fix it too
    assert key not in seen
    assert key not in (settings.config_error or "")


async def test_a_key_pasted_into_a_cap_never_reaches_the_client(transport, mode, tmp_path):
    """The key set as KIE_API_KEY and also pasted into the wrong field (a cap) of the client's settings."""
    key = fresh_key()
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": key, "KIE_MAX_CREDITS_PER_CALL": key}
    settings = Settings.load(env, cwd=tmp_path)
    seen = await everything_a_client_sees(settings, transport, mode)
    assert "KIE_MAX_CREDITS_PER_CALL" in seen
    assert key not in seen


async def test_a_money_limit_written_minus_zero_is_zero_and_reads_0(transport, mode, tmp_path):
    """The audit: KIE_MAX_CREDITS_PER_CALL=-0 was taken (it is not below 0) and shown as "-0" in check_credits and
    the start-up log. It is 0, and reads 0."""
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY, "KIE_MAX_CREDITS_PER_CALL": "-0"}
    env |= {"KIE_AUTO_APPROVE_CREDITS": "-0.0", "KIE_MAX_CREDITS_PER_DAY": "-0"}
    settings = loaded(env, tmp_path)
    async with Client(create_server(settings, transport=transport), mode=mode) as client:
        credits = await client.call_tool("check_credits", {})
    said = text_of(credits)
    block = "(set in the client's env block)"
    assert f"Caps: 0 credits per call {block}, 0 per day {block}." in said, said
    assert not re.search(r"(?<![\w-])-0(?![\d.])", said + " ".join(settings.config_notes)), said
    for limit in ("max_credits_per_call", "max_credits_per_day", "auto_approve_credits"):
        assert str(getattr(settings, limit)) == "0.0", limit


async def test_a_workspace_path_holding_the_key_is_refused_and_never_shown(transport, mode, tmp_path):
    key = fresh_key()
    env = {"KIE_WORKSPACE": str(tmp_path / key), "KIE_API_KEY": key}
    settings = Settings.load(env, cwd=tmp_path)
    assert settings.config_error and "KIE_WORKSPACE" in settings.config_error
    assert settings.max_credits_per_day == 0 and settings.max_credits_per_call == 0
    seen = await everything_a_client_sees(settings, transport, mode)
    assert "KIE_WORKSPACE" in seen
    assert key not in seen


def test_a_registered_key_is_never_in_the_instructions(tmp_path):
    """Whatever the settings hold (a folder named after the key here), the instructions never show the key."""
    from kie_mcp.redact import register_secret
    from kie_mcp.server import _instructions

    key = fresh_key()
    register_secret(key)
    settings = Settings(api_key=None, workspace=tmp_path / key, config_error=f"KIE_MAX_CREDITS_PER_DAY={key} ...")
    assert key not in _instructions(settings)


# -- an empty variable is an absent variable -----------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_env_var_never_loosens_a_cap_set_in_dotenv(empty, tmp_path):
    """Cursor and VS Code expand an unset ${env:...} to "": that must not replace the .env's cap with the default."""
    (tmp_path / ".env").write_text("KIE_MAX_CREDITS_PER_CALL=50\nKIE_MAX_CREDITS_PER_DAY=100\n")
    env = {
        "KIE_WORKSPACE": str(tmp_path),
        "KIE_MAX_CREDITS_PER_CALL": empty,
        "KIE_MAX_CREDITS_PER_DAY": empty,
        "KIE_AUTO_APPROVE_CREDITS": empty,
    }
    settings = Settings.load(env, cwd=tmp_path)
    assert settings.config_error is None
    assert (settings.max_credits_per_call, settings.max_credits_per_day, settings.auto_approve_credits) == (50, 100, 0)


async def test_the_server_enforces_the_dotenv_caps_when_the_client_passes_them_empty(transport, mode, tmp_path):
    (tmp_path / ".env").write_text("KIE_MAX_CREDITS_PER_CALL=50\nKIE_MAX_CREDITS_PER_DAY=100\n")
    env = {
        "KIE_WORKSPACE": str(tmp_path),
        "KIE_API_KEY": SANDBOX_API_KEY,
        "KIE_MAX_CREDITS_PER_CALL": "",
        "KIE_MAX_CREDITS_PER_DAY": "",
    }
    settings = replace(Settings.load(env, cwd=tmp_path), base_url="http://api.kie.test", catalog_sync=False)
    async with Client(create_server(settings, transport=transport), mode=mode) as client:
        credits = (await client.call_tool("check_credits", {})).structured_content
    assert (credits["max_credits_per_call"], credits["max_credits_per_day"]) == (50, 100)


# -- a .env that names the workspace: the workspace's own .env is read too ----------------------------------------


def chosen_by_another_dotenv(tmp_path: Path, own: str) -> tuple[Path, Path]:
    """A project whose .env holds ``own``, chosen by KIE_WORKSPACE in the .env of the folder the server starts in
    (the per-user folder, or a folder holding MASTER_CONTEXT.md)."""
    start, project = tmp_path / "start", tmp_path / "project"
    start.mkdir()
    project.mkdir()
    (start / "MASTER_CONTEXT.md").write_text("# brand")
    (start / ".env").write_text(f"KIE_WORKSPACE={project}\n")
    (project / ".env").write_text(own)
    return start, project


async def test_caps_in_the_chosen_workspaces_own_dotenv_hold(transport, mode, tmp_path):
    """The audit: KIE_WORKSPACE set in one .env moved the server to a project whose own .env was never read: the
    caps written there (50 per call, 100 a day) became the defaults (600 and 3000) without a word."""
    start, project = chosen_by_another_dotenv(
        tmp_path, f"KIE_API_KEY={SANDBOX_API_KEY}\nKIE_MAX_CREDITS_PER_CALL=50\nKIE_MAX_CREDITS_PER_DAY=100\n"
    )
    loaded = Settings.load({}, cwd=start)
    assert loaded.config_error is None and loaded.workspace == project.resolve()
    settings = replace(loaded, base_url="http://api.kie.test", catalog_sync=False)
    async with Client(create_server(settings, transport=transport), mode=mode) as client:
        credits = await client.call_tool("check_credits", {})
    assert not credits.is_error, text_of(credits)  # the key in the project's .env is read, too
    assert (credits.structured_content["max_credits_per_call"], credits.structured_content["max_credits_per_day"]) == (
        50,
        100,
    )


def test_the_environment_still_wins_over_the_chosen_workspaces_dotenv(tmp_path):
    start, _ = chosen_by_another_dotenv(tmp_path, "KIE_MAX_CREDITS_PER_CALL=50\n")
    (start / ".env").write_text((start / ".env").read_text() + "KIE_MAX_CREDITS_PER_DAY=70\n")
    settings = Settings.load({"KIE_MAX_CREDITS_PER_CALL": "20"}, cwd=start)
    assert (settings.max_credits_per_call, settings.max_credits_per_day) == (20, 70)


def test_a_chosen_workspaces_dotenv_cannot_choose_another_workspace(tmp_path):
    """One hop only: a second KIE_WORKSPACE elsewhere is a named problem (nothing spent), never a silent chain."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    start, project = chosen_by_another_dotenv(tmp_path, f"KIE_WORKSPACE={elsewhere}\n")
    settings = Settings.load({}, cwd=start)
    assert settings.workspace == project.resolve()
    assert settings.config_error and "cannot choose another" in settings.config_error
    assert settings.max_credits_per_call == 0
    (project / ".env").write_text(f"KIE_WORKSPACE={project}\nKIE_MAX_CREDITS_PER_DAY=90\n")  # itself: fine
    settings = Settings.load({}, cwd=start)
    assert settings.config_error is None and settings.max_credits_per_day == 90


def test_a_relative_path_in_a_dotenv_is_read_from_that_dotenvs_folder(tmp_path, monkeypatch):
    """A .env beside the brand's folders says ``KIE_WORKSPACE=project``: that is the project next to the .env, not a
    folder of that name wherever the client started the server (a desktop client starts it in / or in its own
    folder, where the workspace became a stranger's folder or one that cannot be made). The same for
    KIE_ALLOWED_DIRS, and in the chosen workspace's own .env."""
    start = tmp_path / "start"
    (start / "project" / "shots").mkdir(parents=True)
    (start / "MASTER_CONTEXT.md").write_text("# brand")
    (start / ".env").write_text("KIE_WORKSPACE=project\nKIE_ALLOWED_DIRS=../assets\n")
    (start / "project" / ".env").write_text("KIE_WORKSPACE=.\nKIE_ALLOWED_DIRS=shots\n")
    elsewhere = tmp_path / "client"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the process's own folder is not where the .env is
    settings = Settings.load({}, cwd=start)
    assert settings.config_error is None, settings.config_error
    assert settings.workspace == (start / "project").resolve()
    assert settings.allowed_dirs == ((start / "project" / "shots").resolve(),)  # the project's own .env wins
    (start / "project" / ".env").write_text("")
    settings = Settings.load({}, cwd=start)
    assert settings.allowed_dirs == ((tmp_path / "assets").resolve(),)  # read from the .env that wrote it


def test_a_relative_path_in_the_environment_is_read_from_the_current_folder_and_said_so(tmp_path, monkeypatch):
    (tmp_path / "brand").mkdir()
    monkeypatch.chdir(tmp_path / "brand")  # the current folder as the server was given it (Settings.load's cwd) wins
    settings = Settings.load({"KIE_WORKSPACE": "ws", "KIE_ALLOWED_DIRS": "shots"}, cwd=tmp_path)
    assert settings.workspace == (tmp_path / "ws").resolve()
    assert settings.allowed_dirs == ((tmp_path / "shots").resolve(),)
    assert str(tmp_path) in settings.workspace_reason and "relative" in settings.workspace_reason
    (tmp_path / "ws").mkdir()
    absolute = Settings.load({"KIE_WORKSPACE": str(tmp_path / "ws")}, cwd=tmp_path)
    assert absolute.workspace_reason == "set by KIE_WORKSPACE"


@pytest.mark.parametrize(
    "key",
    [
        "\u201ckie_test_SECRET123456789\u201d",
        "sandbox-key-123\u200b",
        "kie test SECRET123456789",
        '"kie_test_SECRET123456789',  # a quote left unmatched
    ],
    ids=["curly-quotes", "zero-width-space", "inner-space", "straight-quote"],
)
async def test_a_key_with_a_character_no_key_has_is_named_and_never_shown(transport, mode, tmp_path, key):
    """The audit: a key in curly quotes (TextEdit) or with a zero-width space (copied from a page) made every call
    an "unexpected error, please report" (an HTTP header takes ASCII only). Now a named setting, nothing spent."""
    (tmp_path / ".env").write_text(f"KIE_API_KEY={key}\n", encoding="utf-8")
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path)
    assert settings.config_error and "KIE_API_KEY" in settings.config_error
    seen = await everything_a_client_sees(settings, transport, mode)
    assert "paste the key again as plain text" in seen and "unexpected" not in seen
    assert key.strip('\u201c\u201d\u200b"') not in seen


# -- the .env is read as written ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        'KIE_API_KEY="sandbox-key"  # my KIE key',
        "KIE_API_KEY='sandbox-key' # my KIE key",
        'KIE_API_KEY="sandbox-key"#note',
        'KIE_API_KEY="sandbox-key"',
        "KIE_API_KEY=sandbox-key # my KIE key",
    ],
)
def test_a_quoted_dotenv_value_with_a_comment_after_it_loses_its_quotes(tmp_path, line):
    """The audit: ``KEY="value"  # note`` kept its quotes (only a value ending in its quote was unquoted), so a right
    key failed every call as "missing or wrong" and a quoted KIE_WORKSPACE became a folder named '"' under the
    client's working folder."""
    (tmp_path / ".env").write_text(f'{line}\nKIE_MAX_CREDITS_PER_DAY="200"   # a day\n', encoding="utf-8")
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path)
    assert settings.config_error is None, settings.config_error
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sandbox-key"
    assert settings.max_credits_per_day == 200


def test_a_quoted_workspace_with_a_comment_is_the_folder_named(tmp_path):
    chosen = tmp_path / "my ws"
    chosen.mkdir()
    (tmp_path / ".env").write_text(f'KIE_WORKSPACE="{chosen}"   # the brand project\n', encoding="utf-8")
    assert read_dotenv(tmp_path / ".env") == {"KIE_WORKSPACE": str(chosen)}


def test_a_dotenv_saved_with_a_byte_order_mark_keeps_its_first_setting(tmp_path):
    """Notepad's "UTF-8 with BOM": the cap on the first line must not silently fall back to the default."""
    (tmp_path / ".env").write_bytes(
        "KIE_MAX_CREDITS_PER_DAY=100\r\nKIE_MAX_CREDITS_PER_CALL=50\r\n".encode("utf-8-sig")
    )
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path)
    assert settings.config_error is None
    assert (settings.max_credits_per_day, settings.max_credits_per_call) == (100, 50)


def test_a_misspelt_setting_in_dotenv_is_a_named_problem_not_a_silent_default(tmp_path):
    """KIE_MAX_CREDIT_PER_DAY (no S) would leave the daily cap at 3000 without a word; it stops spending instead."""
    (tmp_path / ".env").write_text("KIE_MAX_CREDIT_PER_DAY=100\nOTHER_TOOL=1\nKIE_SMOKE_ALLOW_SUBMIT=1\n")
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path)
    assert settings.config_error and "KIE_MAX_CREDIT_PER_DAY" in settings.config_error
    assert "KIE_MAX_CREDITS_PER_DAY" in settings.config_error  # the right name is offered
    assert "OTHER_TOOL" not in settings.config_error  # another program's setting is not kie-mcp's business
    assert "KIE_SMOKE" not in settings.config_error  # nor another KIE tool's (the seeds' smoke tests)
    assert (settings.max_credits_per_day, settings.max_credits_per_call) == (0, 0)


def test_settings_of_this_projects_other_tools_in_a_shared_dotenv_leave_kie_mcp_working(tmp_path):
    """The smoke tests' KIE_SMOKE_*, the live tests' KIE_LIVE_*, KIE_CACHE_DIR (read from the environment only) and
    other programs' names are not kie-mcp's to report; every other KIE_ name is (see the unknown names below)."""
    (tmp_path / ".env").write_text(
        "KIE_SMOKE_MODEL=x\nKIE_LIVE_TESTS=1\nKIE_LIVE_SPEND=1\nKIE_CACHE_DIR=/tmp/x\nKIE_UPDATE_DOCS=1\nOTHER_TOOL=1\n"
    )
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_SMOKE_ALLOW_SUBMIT": "1"}, cwd=tmp_path)
    assert settings.config_error is None, settings.config_error


# -- no setting crashes the server --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["KIE_ALLOWED_DIRS", "KIE_WORKSPACE"])
def test_a_nul_byte_in_a_path_setting_is_a_named_problem_not_a_crash(name, tmp_path):
    (tmp_path / ".env").write_text(f"{name}=/tmp/a\0b\n")
    (tmp_path / "MASTER_CONTEXT.md").write_text("# brand")
    settings = Settings.load({}, cwd=tmp_path)  # never raises
    assert settings.config_error and name in settings.config_error, settings.config_error
    assert (settings.max_credits_per_day, settings.max_credits_per_call) == (0, 0)


@pytest.mark.parametrize("level", ["BASIC_FORMAT", "_STYLES", "Logger", "loud", "5"])
def test_a_log_level_that_is_not_a_level_is_a_named_problem_not_a_crash(level, tmp_path):
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_LOG_LEVEL": level}, cwd=tmp_path)
    assert settings.config_error and "KIE_LOG_LEVEL" in settings.config_error
    assert settings.log_level == "INFO"


@pytest.mark.parametrize(("given", "level"), [("debug", "DEBUG"), (" Warning ", "WARNING"), ("warn", "WARNING")])
def test_the_standard_log_levels_are_read_in_any_case(given, level, tmp_path):
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_LOG_LEVEL": given}, cwd=tmp_path)
    assert settings.config_error is None and settings.log_level == level


def test_logging_set_up_with_a_name_that_is_not_a_level_uses_info():
    """Settings built in code may carry any text: logging is still set up, at INFO."""
    import logging

    from kie_mcp.cli import _configure_logging

    root = logging.getLogger("kie_mcp")
    handlers, propagate = root.handlers[:], root.propagate
    touched = ["kie_mcp", "httpx2", "httpcore2", "httpx", "httpcore", "mcp", "uvicorn"]  # it sets these levels
    levels = {name: logging.getLogger(name).level for name in touched}
    try:
        _configure_logging("BASIC_FORMAT")
        assert root.level == logging.INFO
    finally:
        root.handlers[:], root.propagate = handlers, propagate
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def console_script() -> str:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script, "the kie-mcp console script is not installed beside this Python"
    return script


@pytest.mark.stdio
@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("KIE_ALLOWED_DIRS=/tmp/a\0b", "KIE_ALLOWED_DIRS"),
        ("KIE_WORKSPACE=/tmp/a\0b", "KIE_WORKSPACE"),
        ("KIE_LOG_LEVEL=BASIC_FORMAT", "KIE_LOG_LEVEL"),
    ],
    ids=["nul-in-allowed-dirs", "nul-in-workspace", "log-level-not-a-level"],
)
async def test_a_broken_dotenv_setting_leaves_the_console_script_up_and_explained(line, named, tmp_path):
    """A broken setting never stops the server: it starts, lists its tools and every tool names the setting."""
    workspace = tmp_path / "project"
    workspace.mkdir()
    (workspace / "MASTER_CONTEXT.md").write_text("# brand")
    (workspace / ".env").write_text(line + "\n")
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}  # the per-user folder stays in the test
    params = StdioServerParameters(command=console_script(), env=env, cwd=workspace)
    async with Client(params, read_timeout_seconds=60) as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("check_credits", {})
    assert tools
    assert result.is_error and named in text_of(result) and "restart" in text_of(result), text_of(result)


@pytest.mark.stdio
async def test_the_console_script_never_shows_a_key_run_into_a_cap(tmp_path):
    key = fresh_key()
    (tmp_path / ".env").write_text(f"KIE_MAX_CREDITS_PER_DAY=3000KIE_API_KEY={key}\n")
    env = {"HOME": str(tmp_path), "KIE_WORKSPACE": str(tmp_path)}
    params = StdioServerParameters(command=console_script(), env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        instructions = client.instructions or ""
        result = await client.call_tool("check_credits", {})
        with pytest.raises(MCPError) as refused:
            await client.read_resource("kie://tasks")
    seen = json.dumps([instructions, text_of(result), refused.value.error.message])
    assert "KIE_MAX_CREDITS_PER_DAY" in seen
    assert key not in seen


def test_a_workspace_that_is_not_there_is_said_to_be_made_new(tmp_path):
    """A typo in KIE_WORKSPACE made the folder (and a fresh journal) without a word beyond the start-up line: the
    user's MASTER_CONTEXT.md and references/ silently missing. The reason now says it was made, empty."""
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path / "clinets" / "acme")}, cwd=tmp_path)
    assert "did not exist and is made now, empty" in settings.workspace_reason
    assert "fix KIE_WORKSPACE" in settings.workspace_reason


def test_a_bad_workspace_in_a_project_env_names_that_env(tmp_path, monkeypatch):
    """KIE_WORKSPACE in the project's .env names a file: the answer said to fix it in the per-user folder's .env,
    which does not exist; it now names the .env that set it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "MASTER_CONTEXT.md").write_text("# brand\n")
    (project / "notes.txt").write_text("not a folder\n")
    (project / ".env").write_text("KIE_WORKSPACE=notes.txt\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    settings = Settings.load({}, cwd=project)
    assert settings.config_error is not None
    assert f"In {project / '.env'}: KIE_WORKSPACE=" in settings.config_error, settings.config_error


def test_a_key_line_that_lost_its_line_break_is_a_broken_setting_that_never_shows_the_key(tmp_path):
    """``KIE_API_KEY=<key>KIE_MAX_CREDITS_PER_DAY=5`` on one line: the cap was never read (it stayed 3000) and
    the key was wrong for every call with no hint why. It is a configuration problem, and nothing can be spent."""
    key = secrets.token_hex(16)  # registered for redaction in this process: never a string other tests use
    (tmp_path / ".env").write_text(f"KIE_API_KEY={key}KIE_MAX_CREDITS_PER_DAY=5\n")
    (tmp_path / "MASTER_CONTEXT.md").write_text("# brand\n")
    settings = Settings.load({}, cwd=tmp_path)
    assert settings.config_problem is not None and "line break after the key is missing" in settings.config_problem
    assert key not in settings.config_problem
    assert settings.api_key is not None and settings.api_key.get_secret_value() == key  # what it swallowed is no key
    assert redact("raise KIE_MAX_CREDITS_PER_DAY") == "raise KIE_MAX_CREDITS_PER_DAY"  # nor redacted anywhere


def test_a_server_started_in_a_folder_deleted_since_still_starts(tmp_path, monkeypatch):
    """The folder a client started the server in was removed meanwhile: Path.cwd() raised, a traceback on start."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = Settings.load({})
    assert settings.config_error is None and settings.workspace is not None


# -- an API key pasted into another setting: never shown, never used ----------------------------------------------


def everything_under(folder: Path) -> str:
    """Every path under ``folder`` and the text of every file there (the journal, logs/, outputs/), as one text;
    the .env files the test wrote are left out."""
    seen = []
    for path in sorted(folder.rglob("*")):
        seen.append(str(path))
        if path.is_file() and path.name != ".env":
            seen.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(seen)


PASTED_INTO = [
    "KIE_MAX_CREDITS_PER_DAY",
    "KIE_AUTO_APPROVE_CREDITS",
    "KIE_BASE_URL",
    "KIE_UPLOAD_BASE_URL",
    "KIE_DOWNLOAD",
    "KIE_APPROVAL",
    "KIE_CATALOG_SYNC",
    "KIE_LOG_LEVEL",
    "KIE_PREVIEW_PX",
    "KIE_DOWNLOAD_DEADLINE",
    "KIE_WORKSPACE",
    "KIE_ALLOWED_DIRS",
]


@eras_in_turn("name", PASTED_INTO)
async def test_a_key_pasted_into_another_setting_is_named_and_never_shown_even_with_kie_api_key_empty(
    name, transport, mode, tmp_path
):
    """The audit: with KIE_API_KEY empty, the key pasted into another setting was quoted in full by every tool answer
    (``KIE_MAX_CREDITS_PER_DAY="3f9a..." is not a number``); pasted into KIE_WORKSPACE, a folder named after it was
    made and every path shown carried it. Now it is a broken setting that says where the key belongs."""
    key = fresh_key()
    env = {"KIE_WORKSPACE": str(tmp_path / "project"), name: key}  # KIE_WORKSPACE itself when that is the one
    settings = Settings.load(env, cwd=tmp_path)
    seen = await everything_a_client_sees(settings, transport, mode)
    assert f"{name} holds what looks like an API key; put it in KIE_API_KEY" in seen, seen
    assert settings.max_credits_per_call == 0 and settings.max_credits_per_day == 0  # nothing can be spent
    assert key not in seen and key not in everything_under(tmp_path)
    assert key not in str(settings.workspace) and all(key not in str(folder) for folder in settings.allowed_dirs)


@eras_in_turn(
    ("name", "url"),
    [
        (name, url)
        for name in ("KIE_BASE_URL", "KIE_UPLOAD_BASE_URL")
        for url in ("http://api.kie.ai", "http://10.0.0.7:8790", "http://sim.lan:8790")
    ],
)
async def test_plain_http_to_another_machine_is_a_broken_setting_and_the_key_is_never_sent(
    name, url, transport, controls, mode, tmp_path
):
    """Every request carries the key in its Authorization header: over plain http to another machine it would cross
    the network unencrypted. Like any broken setting: named with the fix (https, or loopback for a local proxy or
    simulator), nothing sent, nothing spent."""
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": fresh_key(), name: url}
    settings = Settings.load(env, cwd=tmp_path)
    seen = await everything_a_client_sees(settings, transport, mode)
    assert f"{name}=" in seen and "is plain http to another machine" in seen, seen
    assert "unencrypted" in seen and "Use https" in seen and "http://127.0.0.1:<port>" in seen
    assert settings.max_credits_per_call == 0 and settings.max_credits_per_day == 0
    assert (await controls.get("requests"))["requests"] == []


@pytest.mark.parametrize("name", ["KIE_MAX_CREDITS_PER_DAY", "KIE_BASE_URL", "KIE_DOWNLOAD", "KIE_LOG_LEVEL"])
async def test_a_long_broken_value_is_repeated_only_by_its_start(name, transport, mode, tmp_path):
    """A key with something no key has after it (a full stop copied with it) is not shaped like a key: the problem
    repeats only the value's first characters and its length, never the whole key."""
    key = fresh_key()
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), name: f"{key}."}, cwd=tmp_path)
    seen = await everything_a_client_sees(settings, transport, mode)
    assert f"{name}=" in seen and "(33 characters)" in seen, seen
    assert key not in seen and key[:5] not in seen  # only its first 4 characters and its length


@pytest.mark.stdio
@pytest.mark.parametrize(
    "setup",
    ["env-block-cap", "dotenv-example-filled-the-wrong-way"],
)
async def test_the_console_script_never_prints_a_key_pasted_into_another_setting(setup, tmp_path):
    """Over real stdio: not in any answer, not on stderr (the host's log), not in logs/ or any file the server
    wrote, not in the name of any folder it made. The second case is .env.example filled the obvious wrong way:
    KIE_API_KEY= left empty and the key pasted on the KIE_WORKSPACE= line below it."""
    key = fresh_key()
    project = tmp_path / "project"
    project.mkdir()
    (project / "MASTER_CONTEXT.md").write_text("# brand")
    env = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data")}
    if setup == "env-block-cap":
        env |= {"KIE_MAX_CREDITS_PER_DAY": key, "KIE_LOG_LEVEL": "DEBUG"}
        named = "KIE_MAX_CREDITS_PER_DAY"
    else:
        (project / ".env").write_text(f"KIE_API_KEY=\nKIE_WORKSPACE={key}\n")
        named = "KIE_WORKSPACE"
    params = StdioServerParameters(command=console_script(), env=env, cwd=project)
    with (tmp_path / "stderr.txt").open("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=60) as client:
            instructions = client.instructions or ""
            answers = [text_of(await client.call_tool(tool, {})) for tool in ("check_credits", "list_tasks")]
        errlog.seek(0)
        stderr = errlog.read()
    seen = json.dumps([instructions, *answers])
    assert f"{named} holds what looks like an API key; put it in KIE_API_KEY" in seen, seen
    assert named in stderr  # the host's log says it too ...
    assert key not in seen and key not in stderr  # ... and neither ever shows the key
    assert key not in everything_under(tmp_path)  # no folder named after it, no file holding it


# -- a workspace that cannot be looked into, a user without a home folder: the server still starts ----------------


def _uid_the_system_does_not_know() -> int:
    import pwd

    uid = 12345
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


@functools.cache
def as_a_user_the_system_does_not_know() -> tuple[str, ...] | None:
    """A command prefix running a program as a user with no entry in the system's user list, whose file access is
    checked (root's is not): ``unshare --user`` mapping this user to such a uid. None where that is not available."""
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        return None
    uid = _uid_the_system_does_not_know()
    prefix = (unshare, "--user", f"--map-user={uid}", f"--map-group={uid}")
    try:
        done = subprocess.run([*prefix, "true"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if done.returncode == 0 else None


def as_a_user_without_privilege() -> tuple[str, ...] | None:
    """A command prefix under which file permissions apply: none needed for a normal user; for root, a user
    namespace."""
    return () if os.geteuid() != 0 else as_a_user_the_system_does_not_know()


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("why", ["permission-denied", "name-too-long"])
async def test_a_workspace_that_cannot_be_looked_into_leaves_the_console_script_up_and_explained(why, tmp_path):
    """The audit: KIE_WORKSPACE inside a folder this user may not search (another user's home) crashed the server at
    start with a PermissionError traceback (the host saw only "Connection closed"), and `kie-mcp catalog check`
    with it. Now it is a broken setting naming KIE_WORKSPACE and why, like any other."""
    locked = tmp_path / "locked"
    if why == "permission-denied":
        prefix = as_a_user_without_privilege()
        if prefix is None:
            pytest.skip("root ignores file permissions, and no user namespace is available to drop that")
        (locked / "ws").mkdir(parents=True)
        workspace, said = locked / "ws", "Permission denied"
    else:
        prefix, workspace, said = (), tmp_path / ("a" * 300) / "ws", "File name too long"
    env = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data"), "KIE_WORKSPACE": str(workspace)}
    command = [*prefix, console_script()]
    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=tmp_path)
    locked.mkdir(exist_ok=True)
    locked.chmod(0)
    try:
        async with Client(params, read_timeout_seconds=60) as client:
            result = await client.call_tool("check_credits", {})
        check = await anyio.run_process(
            [*command, "catalog", "check", "--sandbox"], env={**env, "PATH": os.environ.get("PATH", "")}, check=False
        )
    finally:
        locked.chmod(0o755)
    answer = text_of(result)
    assert result.is_error and "KIE_WORKSPACE=" in answer and said in answer and "restart" in answer, answer
    said_by_check = check.stderr.decode()
    assert check.returncode == 2 and "Traceback" not in said_by_check, said_by_check
    assert "KIE_WORKSPACE=" in said_by_check and len(said_by_check.strip().splitlines()) == 1, said_by_check


@pytest.mark.stdio
async def test_a_user_without_a_home_folder_gets_a_working_server_or_one_that_says_why(tmp_path):
    """The audit: HOME unset and a user the system does not know (a container run with --user, a launcher that
    empties the environment) crashed every start with "Could not determine home directory", even with
    KIE_WORKSPACE set, and `kie-mcp demo` too. Now the home folder is needed only where it is used: with
    KIE_WORKSPACE the server works (no kept tool listing), without it every tool says to set HOME or
    KIE_WORKSPACE (the demo: ``test_demo_keep_keeps_the_workspace_and_says_where``)."""
    prefix = as_a_user_the_system_does_not_know()
    if prefix is None:
        pytest.skip("no user namespace to run as a user the system does not know")
    project = tmp_path / "project"
    project.mkdir()
    elsewhere = tmp_path / "elsewhere"  # no MASTER_CONTEXT.md: the per-user folder would be the workspace
    elsewhere.mkdir()
    no_home = [*prefix, "env", "-i", f"PATH={os.environ.get('PATH', '')}"]

    async def check_credits(*settings: str, cwd: Path) -> Any:
        command = [*no_home, *settings, console_script(), "--sandbox"]
        params = StdioServerParameters(command=command[0], args=command[1:], cwd=cwd)
        async with Client(params, read_timeout_seconds=60) as client:
            return await client.call_tool("check_credits", {})

    working = await check_credits(f"KIE_WORKSPACE={project}", cwd=elsewhere)
    assert not working.is_error and "[sandbox] Balance" in text_of(working), text_of(working)
    explained = await check_credits(cwd=elsewhere)
    assert explained.is_error and "HOME is not set" in text_of(explained) and "KIE_WORKSPACE" in text_of(explained)
    assert not list(elsewhere.iterdir())  # nothing made in the folder standing in for the workspace
    # `kie-mcp demo` without a home folder: test_entrypoints' --keep run is made so


# -- a broken setting's answer names where it was written, and only that ------------------------------------------


async def test_a_broken_setting_is_to_be_fixed_where_it_was_written_and_nowhere_else(
    transport, mode, tmp_path, monkeypatch
):
    """The audit: KIE_WORKSPACE=/ in the project's .env was said to be fixed "in the env block ... (or in
    ~/.local/share/kie-mcp/.env)", a file that plays no part (the workspace had fallen back to it); a bad
    KIE_WORKSPACE in the env block was said to be fixable in a .env, which never overrides the environment."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / "MASTER_CONTEXT.md").write_text("# brand\n")
    (project / ".env").write_text("KIE_WORKSPACE=/\n")
    from_dotenv = await everything_a_client_sees(Settings.load({}, cwd=project), transport, mode)
    assert f"Fix it in {project / '.env'}, then restart" in from_dotenv, from_dotenv
    assert "env block" not in from_dotenv and "kie-mcp/.env" not in from_dotenv  # nor the per-user folder's
    from_env = await everything_a_client_sees(Settings.load({"KIE_WORKSPACE": "/"}, cwd=tmp_path), transport, mode)
    assert (  # the env block, or the shell a client passes on: kie-mcp cannot tell which (the wording says both)
        "Fix it in the environment kie-mcp was started with (the env block of this MCP server in your client's "
        "configuration, or the shell the client was started from), then restart" in from_env
    )
    assert ".env" not in from_env, from_env
    (project / ".env").write_text("KIE_MAX_CREDITS_PER_DAY=lots\n")  # one from each: both named
    both = await everything_a_client_sees(Settings.load({"KIE_DOWNLOAD": "sometimes"}, cwd=project), transport, mode)
    assert f"Fix it in {project / '.env'} and in the environment kie-mcp was started with" in both, both


# -- a line written without its "=" is named, not skipped ---------------------------------------------------------


@pytest.mark.parametrize("separator", [": ", " ", ":"])
async def test_a_setting_written_yaml_style_is_named_and_never_said_to_be_unset(separator, transport, mode, tmp_path):
    """The audit: ``KIE_API_KEY: <key>`` in .env was skipped without a word and every tool said "KIE_API_KEY is not
    set ... set it in the .env file (<that same file>)". Now the line is a broken setting saying how to write it,
    without the key (nor a "[redacted]" where the advice should be)."""
    key = fresh_key()
    (tmp_path / ".env").write_text(f"KIE_API_KEY{separator}{key}\nKIE_MAX_CREDITS_PER_DAY: 100\n")
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path)
    seen = await everything_a_client_sees(settings, transport, mode)
    assert "has a line for KIE_API_KEY with a colon or a space after the name instead of =" in seen, seen
    assert "write it as KIE_API_KEY, then = and the value" in seen
    assert "has a line for KIE_MAX_CREDITS_PER_DAY" in seen
    assert "is not set" not in seen and key not in seen and "[redacted]" not in seen


# -- a path written with quotes around it is named, never made --------------------------------------------------


@pytest.mark.parametrize("name", ["KIE_WORKSPACE", "KIE_ALLOWED_DIRS"])
@pytest.mark.parametrize("quote", ['"', "'"])
async def test_a_path_setting_with_quotes_around_it_is_named_and_no_folder_is_made(
    name, quote, transport, mode, tmp_path
):
    """The audit: KIE_WORKSPACE given as ``"/tmp/x"`` with its quotes (a "Copy as path" value, an over-quoted JSON
    string) was read as a relative path and a folder tree named ``"`` was made in the current folder."""
    start, wanted = tmp_path / "start", tmp_path / "wanted"
    start.mkdir()
    wanted.mkdir()
    env = {"KIE_WORKSPACE": str(tmp_path / "project"), name: f"{quote}{wanted}{quote}"}
    settings = Settings.load(env, cwd=start)
    seen = await everything_a_client_sees(settings, transport, mode)
    assert f"{name}=" in seen and "has quotes around it" in seen, seen
    assert not list(start.iterdir())  # no folder named with a quote
    assert settings.max_credits_per_call == 0


# -- a workspace named beyond ASCII, under a file system encoding that is not UTF-8 -------------------------------


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="the C locale and PYTHONUTF8 are POSIX matters")
async def test_a_workspace_named_beyond_ascii_is_served_and_shown_when_utf8_mode_is_off(tmp_path):
    """The audit: PYTHONUTF8=0 with LC_ALL=C makes the file system encoding ASCII, so a workspace such as "ünï 📁"
    is text with lone surrogates, which JSON cannot carry: the initialize answer (its instructions name the
    workspace) failed in the SDK's writer and the server stopped with a traceback. Now it starts, and the folder
    is named as a file manager shows it."""
    workspace = tmp_path / "with space" / "ünï 📁"
    workspace.mkdir(parents=True)
    (workspace / "MASTER_CONTEXT.md").write_text("# brand")
    env = {"HOME": str(tmp_path / "home"), "PYTHONUTF8": "0", "LC_ALL": "C", "LANG": "C"}
    params = StdioServerParameters(command=console_script(), args=["--sandbox"], env=env, cwd=workspace)
    async with Client(params, read_timeout_seconds=60) as client:
        instructions = client.instructions or ""
        result = await client.call_tool("check_credits", {})
    assert str(workspace) in instructions, instructions
    assert not result.is_error and f"Sandbox area: {workspace / 'sandbox'}" in text_of(result), text_of(result)


@pytest.mark.parametrize(
    "folder",
    [
        "acme-campaign-2025-final",
        "summer_launch_2026_reels_v2",
        "Q4Campaign2026Reels",
        "ClientProjects2025SummerCampaignFinal",
    ],
)
def test_a_workspace_named_like_a_campaign_is_a_workspace_not_a_pasted_key(folder, tmp_path):
    """Folder names with words, dates and separators are what people name work folders: only a value shaped like
    KIE's keys (32 or more letters and digits, no separator) is taken for one pasted into a folder setting."""
    settings = Settings.load({"KIE_WORKSPACE": folder}, cwd=tmp_path)
    assert settings.config_error is None, settings.config_error
    assert settings.workspace == (tmp_path / folder).resolve()


@pytest.mark.parametrize("quotes", ["\u201c\u201d", "\u2018\u2019", "\u00ab\u00bb"])
def test_a_key_pasted_in_curly_quotes_into_a_folder_setting_is_taken_for_a_key(quotes, tmp_path):
    """The review: a key in the curly quotes a text editor types was not a key to the check, so it became a relative
    folder named after it, made and shown in every path the server reported."""
    key = fresh_key()
    settings = Settings.load({"KIE_WORKSPACE": f"{quotes[0]}{key}{quotes[1]}"}, cwd=tmp_path)
    assert settings.config_error and "KIE_WORKSPACE holds what looks like an API key" in settings.config_error
    assert key not in str(settings.workspace) and key not in everything_under(tmp_path)


def test_a_key_inside_an_endpoint_url_is_redacted_wherever_the_url_is_shown(tmp_path):
    """The review: KIE_BASE_URL=https://api.kie.ai/<key> (a key pasted after the URL, or a proxy that takes one in
    its path) was printed whole in the start-up line when KIE_API_KEY was unset. The URL still works; the key in it
    is a secret from then on."""
    from kie_mcp.redact import redact

    key = fresh_key()
    settings = Settings.load(
        {"KIE_WORKSPACE": str(tmp_path), "KIE_BASE_URL": f"https://api.kie.ai/{key}"}, cwd=tmp_path
    )
    assert settings.config_error is None and settings.base_url.endswith(key)
    assert key not in redact(f"kie-mcp starting ({settings.base_url})")


# -- a money limit: the lowest value written anywhere applies -------------------------------------------------------

BUNDLE_DEFAULTS = {  # what the Claude Desktop bundle passes when its settings were left alone (mcpb/manifest.json)
    "KIE_AUTO_APPROVE_CREDITS": "0",
    "KIE_MAX_CREDITS_PER_CALL": "600",
    "KIE_MAX_CREDITS_PER_DAY": "3000",
}
APPLE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}  # 8 credits


def loaded(env: dict[str, str], cwd: Path) -> Settings:
    """``Settings.load`` as the server starts with, pointed at the simulator."""
    return replace(Settings.load(env, cwd=cwd), base_url="http://api.kie.test", catalog_sync=False)


async def test_a_tighter_cap_in_the_dotenv_holds_against_the_defaults_the_bundle_always_passes(
    transport, controls, mode, tmp_path
):
    """The audit: the bundle passes its default caps in the environment, which won over the workspace's .env, so
    KIE_MAX_CREDITS_PER_CALL=5 there became 600 and an approved 8-credit image was created and charged. The lowest
    value written applies, and check_credits says which and where it was written."""
    (tmp_path / ".env").write_text("KIE_MAX_CREDITS_PER_CALL=5\nKIE_MAX_CREDITS_PER_DAY=20\n")
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY, **BUNDLE_DEFAULTS}
    server = create_server(loaded(env, tmp_path), transport=transport)
    async with Client(server, mode=mode, elicitation_callback=answering()) as client:
        credits = await client.call_tool("check_credits", {})
        made = await client.call_tool("generate_image", APPLE)
    caps = credits.structured_content
    assert (caps["max_credits_per_call"], caps["max_credits_per_day"]) == (5, 20), text_of(credits)
    said = text_of(credits)
    assert f"The cap per call in force is 5 credits, from {tmp_path / '.env'}" in said, said
    assert "600 in the client's env block" in said and "the lowest applies" in said
    assert made.is_error and await controls.creates() == [], text_of(made)


async def test_a_dotenv_that_sets_a_cap_twice_is_held_to_the_lower_line(transport, mode, tmp_path):
    """A cap raised on a line added at the end of the .env (the old line forgotten above it) took the last value
    without a word. The lower applies, as for a cap written in two places, and check_credits names both lines."""
    (tmp_path / ".env").write_text("KIE_MAX_CREDITS_PER_DAY=20\nKIE_LOG_LEVEL=INFO\nKIE_MAX_CREDITS_PER_DAY=3000\n")
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY}
    async with Client(create_server(loaded(env, tmp_path), transport=transport), mode=mode) as client:
        credits = await client.call_tool("check_credits", {})
    assert credits.structured_content["max_credits_per_day"] == 20, text_of(credits)
    assert f"20 and 3000 in {tmp_path / '.env'}" in text_of(credits), text_of(credits)


def test_a_looser_auto_approve_amount_never_wins_over_a_tighter_one(tmp_path):
    (tmp_path / ".env").write_text("KIE_AUTO_APPROVE_CREDITS=50\n")
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_AUTO_APPROVE_CREDITS": "10"}, cwd=tmp_path)
    assert settings.auto_approve_credits == 10
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_AUTO_APPROVE_CREDITS": "80"}, cwd=tmp_path)
    assert settings.auto_approve_credits == 50 and "auto-approve amount in force is 50" in settings.config_notes[0]


# -- a KIE_ name kie-mcp does not read is never silently ignored ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("KIE_MAX_PER_CALL", "KIE_MAX_CREDITS_PER_CALL"),
        ("KIE_MAX_CREDITS_PER_REQUEST", "KIE_MAX_CREDITS_PER_CALL"),
        ("KIE_MAX_CREDITS", "KIE_MAX_CREDITS_PER_DAY"),
        ("KIE_MAX_DAILY_CREDITS", "KIE_MAX_CREDITS_PER_DAY"),
        ("KIE_DAILY_CAP", "KIE_MAX_CREDITS_PER_DAY"),
        ("KIE_CAP_PER_DAY", "KIE_MAX_CREDITS_PER_DAY"),
        ("KIE_DAILY_LIMIT", "KIE_MAX_CREDITS_PER_DAY"),
        ("KIE_MAX_SPEND_PER_DAY", "KIE_MAX_CREDITS_PER_DAY"),
        ("KIE_AUTO_APPROVE", "KIE_AUTO_APPROVE_CREDITS"),
        # the review: written with dashes, or without KIE_ (in the env block too); a quota, a ceiling
        ("KIE-MAX-CREDITS-PER-CALL", "KIE_MAX_CREDITS_PER_CALL"),
        ("MAX_CREDITS_PER_CALL", "KIE_MAX_CREDITS_PER_CALL"),
        ("KIE_DAY_QUOTA", "KIE_MAX_CREDITS_PER_DAY"),
        ("KIE_CALL_CEILING", "KIE_MAX_CREDITS_PER_CALL"),
    ],
)
@pytest.mark.parametrize("written_in", ["env-block", "dotenv"])
async def test_a_cap_under_a_name_kie_mcp_does_not_read_stops_spending_and_names_the_right_setting(
    name, meant, written_in, transport, controls, mode, tmp_path
):
    """The audit: KIE_MAX_PER_CALL=5 (and every other name too far from the real one to count as a typo) was ignored
    without a word and an 8-credit image was approved and charged under the default cap of 600. Now nothing can be
    spent until it is renamed, and every tool names the setting meant."""
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY}
    if written_in == "env-block":
        env[name] = "5"
    else:
        (tmp_path / ".env").write_text(f"{name}=5\n")
    server = create_server(loaded(env, tmp_path), transport=transport)
    async with Client(server, mode=mode, elicitation_callback=answering()) as client:  # approves what it is asked
        credits = await client.call_tool("check_credits", {})
        made = await client.call_tool("generate_image", APPLE)
    said = text_of(credits)
    assert credits.is_error and f'"{name}", which kie-mcp does not read' in said and meant in said, said
    assert made.is_error and await controls.creates() == []


@pytest.mark.parametrize(
    "name",
    [
        "KIE_OUTPUT_DIR",
        "KIE_API",
        "KIE_AI_DB_PATH",
        "KIE_RUN_LIVE_SMOKE",
        # the review: limits of other things, of another tool sharing the .env, set every cap to 0
        "KIE_MAX_RETRIES",
        "KIE_RATE_LIMIT",
        "KIE_UPLOAD_MAX_MB",
        "KIE_DAILY_REPORT",
    ],
)
async def test_any_other_kie_name_kie_mcp_does_not_read_is_said_and_breaks_nothing(name, transport, mode, tmp_path):
    """A KIE_ name that limits no money (another KIE tool's sharing the .env, such as KIE_AI_DB_PATH) is said where
    the settings are shown, so a user who believed it set something learns it did not; it stops nothing."""
    (tmp_path / ".env").write_text(f"{name}=1\n")
    settings = loaded({"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY}, tmp_path)
    async with Client(create_server(settings, transport=transport), mode=mode) as client:
        credits = await client.call_tool("check_credits", {})
    assert settings.config_error is None and settings.max_credits_per_call > 0
    assert not credits.is_error and f'"{name}", which kie-mcp does not read' in text_of(credits), text_of(credits)


async def test_a_name_kie_mcp_does_not_read_points_to_a_list_of_settings_that_is_there(transport, mode, tmp_path):
    """The audit: the answer said "every setting is listed in .env.example", a file an installed kie-mcp did not have.
    It names the README's Configuration section and the .env.example kie-mcp has, by a path that exists (the built
    wheel's copy is checked in test_wheel.py)."""
    (tmp_path / ".env").write_text("KIE_OUTPUT_DIR=1\n")
    settings = loaded({"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY}, tmp_path)
    async with Client(create_server(settings, transport=transport), mode=mode) as client:
        said = text_of(await client.call_tool("check_credits", {}))
    found = re.search(
        r"every setting is listed in the README's Configuration section \(https://\S+#configuration\)"
        r" and in (\S+?)\)",
        said,
    )
    assert found, said
    assert Path(found[1]).name == ".env.example" and await anyio.Path(found[1]).is_file(), said


# -- a placeholder nothing filled in is never a folder or a key ---------------------------------------------------


def example_value(name: str) -> str:
    """The value .env.example writes for ``name`` (commented out: uncommenting it is the mistake checked)."""
    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text(encoding="utf-8")
    found = re.search(rf"^# {name}=(.+)$", example, re.MULTILINE)
    assert found, f".env.example no longer writes {name}"
    return found[1]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KIE_WORKSPACE", example_value("KIE_WORKSPACE")),  # /path/to/your/workspace: made at / as root
        ("KIE_ALLOWED_DIRS", example_value("KIE_ALLOWED_DIRS")),
        ("KIE_WORKSPACE", "C:\\path\\to\\workspace"),
        ("KIE_WORKSPACE", "$HOME/proj"),
        ("KIE_WORKSPACE", "${user_config.workspace}"),
        ("KIE_WORKSPACE", "%APPDATA%\\kie"),
        ("KIE_ALLOWED_DIRS", "${HOME}/photos"),
        ("KIE_API_KEY", "${env:KIE_API_KEY}"),
        ("KIE_API_KEY", "${input:kie-api-key}"),
        ("KIE_API_KEY", "${KIE_API_KEY}"),
    ],
)
async def test_a_placeholder_the_client_did_not_fill_in_is_named_and_never_used(
    name, value, transport, controls, mode, tmp_path, monkeypatch
):
    """The audit: KIE_WORKSPACE="$HOME/proj" started from / made a folder named "$HOME"; a bundle host leaving
    ${user_config.workspace} as written put the workspace inside the bundle (lost at its update); a key written
    "${env:KIE_API_KEY}" was sent to KIE as the key; .env.example's KIE_WORKSPACE=/path/to/your/workspace, uncommented
    as it is, was made (as root: at the filesystem's root). Each is a broken setting naming the placeholder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the per-user folder that stands in stays in the test
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    start = tmp_path / "start"
    start.mkdir()
    env = {"KIE_WORKSPACE": str(tmp_path / "project"), "KIE_API_KEY": SANDBOX_API_KEY, name: value}
    async with Client(create_server(loaded(env, start), transport=transport), mode=mode) as client:
        credits = await client.call_tool("check_credits", {})
        listed = await client.call_tool("list_models", {})
    said = text_of(credits)
    assert credits.is_error and f"{name} holds" in said and "nothing filled in" in said, said
    assert listed.is_error  # every tool says so
    assert not list(start.iterdir())  # no folder named "$HOME" or "${user_config.workspace}"
    assert (await controls.get("requests"))["requests"] == []  # nothing at all reached KIE


# -- a KIE_ALLOWED_DIRS folder that is not there is said, where a user looks ------------------------------------


async def test_an_allowed_folder_that_is_not_there_is_named_with_the_separator_to_use(transport, mode, tmp_path):
    """The audit: KIE_ALLOWED_DIRS="/tmp/cfg,/var" (a comma) was one folder named "/tmp/cfg,/var", accepted without a
    word, and every file under either was refused later as outside the allowed folders."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "products").mkdir()
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY, "KIE_ALLOWED_DIRS": "photos,products"}
    async with Client(create_server(loaded(env, tmp_path), transport=transport), mode=mode) as client:
        credits = await client.call_tool("check_credits", {})
    said = text_of(credits)
    assert not credits.is_error, said
    assert 'names a folder that is not there: "photos,products"' in said, said  # as written: the user knows it
    assert f"Separate folders with {os.pathsep}" in said


# -- what the console script says as it starts ---------------------------------------------------------------------


@pytest.mark.stdio
async def test_the_start_up_log_says_which_cap_applies_and_which_allowed_folder_is_not_there(tmp_path):
    """The host's log (stderr) says what check_credits says: the cap in force and where it was written, when the
    places that set it disagree, and a KIE_ALLOWED_DIRS folder that is not there; the workspace's reason reads
    once, without parentheses inside parentheses."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text("KIE_MAX_CREDITS_PER_CALL=5\n")
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "KIE_WORKSPACE": str(project),
        "KIE_ALLOWED_DIRS": f"{tmp_path / 'a'},{tmp_path / 'b'}",
        **BUNDLE_DEFAULTS,
    }
    stderr = await console_stderr(env, cwd=tmp_path, args=["--sandbox"])
    assert f"The cap per call in force is 5 credits, from {project / '.env'}" in stderr, stderr
    assert "names a folder that is not there" in stderr and f"Separate folders with {os.pathsep}" in stderr
    per_user = await console_stderr({"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data")}, tmp_path)
    assert "(the per-user data folder; set KIE_WORKSPACE to choose another)" in per_user, per_user
    assert "))" not in per_user


async def console_stderr(env: dict[str, str], cwd: Path, args: list[str] | None = None) -> str:
    """What the console script writes to stderr (the host's log) while a client lists its tools."""
    params = StdioServerParameters(command=console_script(), args=args or [], env=env, cwd=cwd)
    with (cwd / "stderr.txt").open("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=60) as client:
            await client.list_tools()
        errlog.seek(0)
        return errlog.read()


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="environment bytes that are not UTF-8 are a POSIX matter")
@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("KIE_API_KEY", "kie-test-key-0123\udcff", "KIE_API_KEY holds bytes that are not UTF-8 text"),
        ("KIE_MAX_CREDITS_PER_CALL", "\udcff10", 'KIE_MAX_CREDITS_PER_CALL="\ufffd10" is not a number'),
        ("KIE_\udcffDAILY_CAP", "5", 'The environment has "KIE_\ufffdDAILY_CAP", which kie-mcp does not read'),
    ],
    ids=["key", "cap", "name"],
)
async def test_a_setting_that_is_not_utf8_text_is_named_and_answered(name, value, said, tmp_path):
    """The audit: a KIE_API_KEY holding bytes that are not UTF-8 failed as "could not read its settings
    (UnicodeEncodeError: ... '\\udcff' ...). Check KIE_WORKSPACE", blaming a setting that was fine and repeating the
    key's bytes. A cap (or a name) with such a byte was repeated into the instructions as it was, which no JSON
    answer can carry: the client never got an answer to initialize. Each is now named, as text."""
    env = {"HOME": str(tmp_path / "home"), "KIE_WORKSPACE": str(tmp_path), name: value}  # surrogates: the bytes
    params = StdioServerParameters(command=console_script(), args=["--sandbox"], env=env, cwd=tmp_path)
    async with Client(params, read_timeout_seconds=20) as client:
        result = await client.call_tool("check_credits", {})
    answer = text_of(result)
    # Under --sandbox the simulator's own key is used: a key that cannot be sent is named in a note, and stops nothing.
    assert said in answer and result.is_error is (name != "KIE_API_KEY"), answer
    assert "KIE_WORKSPACE" not in answer[answer.index(said) :].split("Fix it in")[0], answer  # blamed on no other
    assert "UnicodeEncodeError" not in answer
    assert "kie-test-key" not in answer


# -- a .env other than the one holding the key can neither loosen the approval nor send the key elsewhere ----------


def per_user_and_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_user: str, project: str) -> Path:
    """The audit's layout: the per-user .env (under HOME) chooses the project with KIE_WORKSPACE, and the project's
    own .env (a cloned one, or one an agent wrote) is read over it. Returns the folder to start in (no
    MASTER_CONTEXT.md there, so the per-user folder's .env is the one read first)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    user = tmp_path / "home" / ".local" / "share" / "kie-mcp"
    user.mkdir(parents=True)
    (tmp_path / "proj").mkdir()
    (user / ".env").write_text(f"KIE_WORKSPACE={tmp_path / 'proj'}\n{per_user}")
    (tmp_path / "proj" / ".env").write_text(project)
    (tmp_path / "start").mkdir()
    return tmp_path / "start"


@pytest.mark.parametrize(
    ("env", "per_user", "project"),
    [
        ({}, "KIE_APPROVAL=form\n", "KIE_APPROVAL=any\n"),  # the audit's repro
        ({}, "KIE_APPROVAL=any\n", "KIE_APPROVAL=form\n"),
        ({"KIE_APPROVAL": "any"}, "", "KIE_APPROVAL=Form\n"),  # the env block never loosens it either
        ({"KIE_APPROVAL": "form"}, "KIE_APPROVAL=any\n", "KIE_APPROVAL=any\n"),
        ({}, "", "KIE_APPROVAL=form\nKIE_APPROVAL=any\n"),  # an old line forgotten above a new one
    ],
    ids=["project-any", "per-user-any", "env-any", "env-form", "twice"],
)
def test_the_strictest_approval_written_anywhere_applies_and_is_said_with_where(
    env, per_user, project, tmp_path, monkeypatch
):
    """The audit: KIE_APPROVAL=form in the per-user .env was undone by KIE_APPROVAL=any in the project's .env that
    it chose, without a word. As for a money limit, the strictest value written applies, and the notes (the start-up
    log and check_credits) say which, from where, and where each value was written."""
    start = per_user_and_project(tmp_path, monkeypatch, f"KIE_API_KEY={SANDBOX_API_KEY}\n{per_user}", project)
    settings = Settings.load(env, cwd=start)
    assert settings.config_error is None, settings.config_error
    assert settings.workspace == (tmp_path / "proj").resolve()
    assert settings.approval == "form"
    said = [note for note in settings.config_notes if "KIE_APPROVAL" in note]
    assert len(said) == 1 and said[0].startswith("The approval in force is KIE_APPROVAL=form, from "), said
    assert "is set to different values (" in said[0] and "any in " in said[0], said  # each with where
    assert "the strictest applies" in said[0]


def test_one_approval_written_in_many_places_needs_no_note_and_a_broken_one_anywhere_is_named_there(
    tmp_path, monkeypatch
):
    start = per_user_and_project(tmp_path, monkeypatch, "KIE_APPROVAL=any\n", "KIE_APPROVAL=any\n")
    settings = Settings.load({"KIE_APPROVAL": "any"}, cwd=start)
    assert settings.approval == "any" and not settings.config_notes, settings.config_notes
    (tmp_path / "proj" / ".env").write_text("KIE_APPROVAL=sometimes\n")  # hidden by the env block's value before
    settings = Settings.load({"KIE_APPROVAL": "any"}, cwd=start)
    assert settings.config_error and 'KIE_APPROVAL="sometimes" must be' in settings.config_error
    assert settings.config_fix_in == (str(tmp_path / "proj" / ".env"),)
    assert settings.max_credits_per_call == 0 and settings.approval == "form"


ATTACKER = "https://kie-proxy.attacker.example"


def test_an_endpoint_in_the_chosen_workspaces_dotenv_never_sends_the_per_user_key_there(tmp_path, monkeypatch):
    """The audit: the project's .env said KIE_BASE_URL (and KIE_UPLOAD_BASE_URL) = an attacker's host, and the key
    from the per-user .env that chose the project was sent there. An endpoint counts only where the key comes from;
    one written elsewhere is ignored, and the notes say which, where, why, and where requests go instead."""
    start = per_user_and_project(
        tmp_path,
        monkeypatch,
        f"KIE_API_KEY={SANDBOX_API_KEY}\n",
        f"KIE_BASE_URL={ATTACKER}\nKIE_UPLOAD_BASE_URL={ATTACKER}/upload\n",
    )
    settings = Settings.load({}, cwd=start)
    assert settings.config_error is None, settings.config_error
    assert (settings.base_url, settings.upload_base_url) == ("https://api.kie.ai", "https://kieai.redpandaai.co")
    per_user_env = tmp_path / "home" / ".local" / "share" / "kie-mcp" / ".env"
    for name, default in (
        ("KIE_BASE_URL", "https://api.kie.ai"),
        ("KIE_UPLOAD_BASE_URL", "https://kieai.redpandaai.co"),
    ):
        said = next(note for note in settings.config_notes if note.startswith(f"{name} ("))
        assert f'"{ATTACKER}' in said and f"in {tmp_path / 'proj' / '.env'}) is ignored" in said, said
        assert f"the API key comes from {per_user_env}" in said, said
        assert f'{name} in force: "{default}" (the default)' in said, said
    # Written beside the key (a simulator or a proxy the user chose), an endpoint holds over the project's.
    per_user_env.write_text(per_user_env.read_text() + "KIE_BASE_URL=http://127.0.0.1:8790\n")
    settings = Settings.load({}, cwd=start)
    assert settings.base_url == "http://127.0.0.1:8790"
    assert any(
        f'KIE_BASE_URL in force: "http://127.0.0.1:8790" (from {per_user_env})' in n for n in settings.config_notes
    )


def test_an_endpoint_in_a_dotenv_never_sends_a_key_from_the_env_block_elsewhere(tmp_path):
    """The key in the client's env block (as the Claude Desktop bundle passes it) and a workspace .env naming another
    host: the .env's endpoint is ignored. The env block's own endpoint is taken, as always."""
    (tmp_path / ".env").write_text(f"KIE_BASE_URL={ATTACKER}\n")
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY}
    settings = Settings.load(env, cwd=tmp_path)
    assert settings.base_url == "https://api.kie.ai" and settings.config_error is None
    assert any("the API key comes from the client's env block" in note for note in settings.config_notes)
    settings = Settings.load({**env, "KIE_BASE_URL": "http://127.0.0.1:8790"}, cwd=tmp_path)
    assert settings.base_url == "http://127.0.0.1:8790"
    # Ignored, a broken endpoint breaks nothing (it is never used); a key pasted into it is never shown.
    pasted = fresh_key()
    (tmp_path / ".env").write_text(f"KIE_BASE_URL=ftp://{pasted}\nKIE_UPLOAD_BASE_URL={pasted}\n")
    settings = Settings.load(env, cwd=tmp_path)
    assert settings.config_error is None and settings.max_credits_per_call > 0
    notes = " ".join(settings.config_notes)
    assert "KIE_UPLOAD_BASE_URL (" in notes and pasted not in notes and pasted[:8] not in notes, notes


def test_an_endpoint_written_beside_the_key_is_taken_without_a_note(tmp_path, monkeypatch):
    """A simulator or a local proxy set up in one .env with the key (or in the env block with it) works as before;
    so does one in the chosen project's .env when that .env holds the only key written anywhere."""
    (tmp_path / ".env").write_text(f"KIE_API_KEY={SANDBOX_API_KEY}\nKIE_BASE_URL=http://127.0.0.1:8790\n")
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path)
    assert settings.base_url == "http://127.0.0.1:8790" and not settings.config_notes
    start = per_user_and_project(
        tmp_path / "b",
        monkeypatch,
        "KIE_UPLOAD_BASE_URL=http://127.0.0.1:9/\n",
        f"KIE_API_KEY={SANDBOX_API_KEY}\nKIE_BASE_URL=http://127.0.0.1:8790\n",
    )
    settings = Settings.load({}, cwd=start)
    assert settings.api_key.get_secret_value() == SANDBOX_API_KEY and settings.base_url == "http://127.0.0.1:8790"
    said = " ".join(settings.config_notes)  # the per-user .env's upload host would get the project's key: ignored
    assert settings.upload_base_url == "https://kieai.redpandaai.co" and "KIE_UPLOAD_BASE_URL (" in said, said
    assert f"the API key comes from {tmp_path / 'b' / 'proj' / '.env'}" in said
    assert "The API key in use" not in said, said  # no other key was written: nothing was swapped


@pytest.mark.parametrize("same", [False, True], ids=["its-own-key", "the-users-key-copied"])
def test_a_chosen_workspaces_dotenv_that_brings_its_own_key_is_said_to_and_never_brings_its_hosts(
    same, tmp_path, monkeypatch
):
    """The review: the per-user .env holds the user's key and chooses a cloned project; the project's .env holds a
    key of its own and points both endpoints at its own host. Its key wins (as any setting of it does), but the
    notes say which key is in use, from where, and that another is written in the per-user .env, showing neither;
    and its endpoints are ignored (else every prompt and every local file uploaded went to that host), with why.
    The same when the project's .env holds the user's key itself (an agent copied it there)."""
    user_key, project_key = fresh_key(), fresh_key()
    project_key = user_key if same else project_key
    start = per_user_and_project(
        tmp_path,
        monkeypatch,
        f"KIE_API_KEY={user_key}\nKIE_BASE_URL=http://127.0.0.1:8790\n",
        f"KIE_API_KEY={project_key}\nKIE_BASE_URL={ATTACKER}\nKIE_UPLOAD_BASE_URL={ATTACKER}/upload\n",
    )
    per_user_env = tmp_path / "home" / ".local" / "share" / "kie-mcp" / ".env"
    project_env = tmp_path / "proj" / ".env"
    settings = Settings.load({}, cwd=start)
    assert settings.config_error is None, settings.config_error
    assert settings.api_key.get_secret_value() == project_key
    # Beside neither key: the per-user .env's simulator would get the project's key, the project's host its files.
    assert (settings.base_url, settings.upload_base_url) == ("https://api.kie.ai", "https://kieai.redpandaai.co")
    notes = settings.config_notes
    said = next(note for note in notes if note.startswith("The API key in use is the one in "))
    assert said.startswith(f"The API key in use is the one in {project_env}, the .env of the workspace that "), said
    assert f"not the KIE_API_KEY also written in {per_user_env} (neither is shown)" in said, said
    assert "taken only from the client's env block" in said, said
    assert user_key[:8] not in " ".join(notes) and project_key[:8] not in " ".join(notes), notes
    base = next(note for note in notes if note.startswith("KIE_BASE_URL ("))
    assert f'"{ATTACKER}" in {project_env}' in base and f'"http://127.0.0.1:8790" in {per_user_env}' in base, base
    assert f"the API key in use comes from {project_env}" in base and f"is written in {per_user_env}" in base, base
    assert 'KIE_BASE_URL in force: "https://api.kie.ai" (the default)' in base, base
    assert "set it in the client's env block" in base, base
    upload = next(note for note in notes if note.startswith("KIE_UPLOAD_BASE_URL ("))
    assert f'"{ATTACKER}..." in {project_env}) is ignored' in upload, upload  # its path left out when shown
    # The client's env block still chooses where requests go.
    settings = Settings.load({"KIE_UPLOAD_BASE_URL": "http://127.0.0.1:8791"}, cwd=start)
    assert (settings.base_url, settings.upload_base_url) == ("https://api.kie.ai", "http://127.0.0.1:8791")
    assert any(
        'KIE_UPLOAD_BASE_URL in force: "http://127.0.0.1:8791" (from the client\'s env block)' in note
        for note in settings.config_notes
    ), settings.config_notes


def test_a_workspace_dotenv_holding_the_only_key_keeps_its_endpoints_and_needs_no_note(tmp_path, monkeypatch):
    """Only a key written elsewhere too makes a workspace's endpoints suspect: the per-user .env that chose the
    project without a key (and no key in the env block) leaves the project's .env's key and hosts in force."""
    start = per_user_and_project(
        tmp_path, monkeypatch, "", f"KIE_API_KEY={fresh_key()}\nKIE_BASE_URL=http://127.0.0.1:8790\n"
    )
    settings = Settings.load({}, cwd=start)
    assert settings.base_url == "http://127.0.0.1:8790" and not settings.config_notes, settings.config_notes
    # A key in the env block wins over the project's: then the project's endpoint is ignored, as before.
    settings = Settings.load({"KIE_API_KEY": fresh_key()}, cwd=start)
    assert settings.base_url == "https://api.kie.ai"
    assert any("the API key comes from the client's env block" in note for note in settings.config_notes)
    assert not any(note.startswith("The API key in use") for note in settings.config_notes)


@asynccontextmanager
async def another_host() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A stand-in for an attacker's host, on loopback: yields its address and what each connection to it sent (it
    answers nothing and hangs up)."""
    heard: list[bytes] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                heard.append(await stream.receive(65536))
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                heard.append(b"")

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}", heard
        group.cancel_scope.cancel()


async def test_a_cloned_projects_dotenv_neither_approves_by_quote_id_nor_reaches_another_host(
    mode, tmp_path, monkeypatch
):
    """The audit's repro through the SDK client, over real TCP: the per-user .env holds the key, KIE_APPROVAL=form,
    the endpoints (a simulator) and KIE_WORKSPACE; the project's .env says KIE_APPROVAL=any and points both
    endpoints at another host. check_credits names the approval in force and the endpoints ignored; a quote_id the
    agent passes does not approve (the form is asked, and declined); the upload goes to the simulator; nothing at
    all reaches the other host."""
    monkeypatch.setattr(addresses, "_TRUSTED", set())
    sim = Simulator(SimConfig(speed=1000.0))
    async with served_over_tcp(sim) as kie, another_host() as (attacker, heard):
        start = per_user_and_project(
            tmp_path,
            monkeypatch,
            f"KIE_API_KEY={SANDBOX_API_KEY}\nKIE_APPROVAL=form\nKIE_BASE_URL={kie}\nKIE_UPLOAD_BASE_URL={kie}\n",
            f"KIE_APPROVAL=any\nKIE_BASE_URL={attacker}\nKIE_UPLOAD_BASE_URL={attacker}\n",
        )
        Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "proj" / "shot.png")
        settings = replace(Settings.load({}, cwd=start), catalog_sync=False, http_timeout=5.0)
        server = create_server(settings)  # no transport: real TCP, to whatever the settings name
        async with Client(server, mode=mode, elicitation_callback=answering(action="decline")) as client:
            credits = await client.call_tool("check_credits", {})
            quote = await client.call_tool("estimate_cost", APPLE)
            made = await client.call_tool(
                "generate_image", {**APPLE, "quote_id": quote.structured_content["quote"]["quote_id"]}
            )
            uploaded = await client.call_tool("upload_file", {"path": "shot.png"})
    said = text_of(credits)
    assert not credits.is_error and credits.structured_content["balance_credits"] is not None, said
    assert "The approval in force is KIE_APPROVAL=form" in said and "only in the form (KIE_APPROVAL=form)" in said
    assert f'KIE_BASE_URL ("{attacker}" in {tmp_path / "proj" / ".env"}) is ignored' in said, said
    assert f'KIE_UPLOAD_BASE_URL ("{attacker}"' in said and f'in force: "{kie}"' in said, said
    assert made.structured_content["status"] == "declined", text_of(made)
    assert not [r for r in sim.requests if r.path in CREATE_PATHS]
    assert not uploaded.is_error and uploaded.structured_content["url"].startswith(kie), text_of(uploaded)
    assert heard == []


@pytest.mark.stdio
async def test_the_start_up_log_names_the_approval_in_force_and_an_endpoint_ignored(tmp_path):
    """The host's log (stderr) says what check_credits says: the approval in force when the places that set it
    disagree, and an endpoint written in a .env the key does not come from, ignored."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(f"KIE_APPROVAL=any\nKIE_BASE_URL={ATTACKER}\n")
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "KIE_WORKSPACE": str(project),
        "KIE_API_KEY": SANDBOX_API_KEY,
        "KIE_APPROVAL": "form",
        "KIE_CATALOG_SYNC": "off",
        "KIE_UPLOAD_BASE_URL": "http://127.0.0.1:9",  # nothing is sent to the real KIE (listing tools sends nothing)
    }
    stderr = await console_stderr(env, cwd=tmp_path)
    assert "The approval in force is KIE_APPROVAL=form, from the client's env block" in stderr, stderr
    assert f'KIE_BASE_URL ("{ATTACKER}" in {project / ".env"}) is ignored' in stderr, stderr


async def test_under_sandbox_check_credits_names_no_host_or_key_that_is_not_used(mode, tmp_path, monkeypatch):
    """The review: under --sandbox check_credits said "KIE_BASE_URL in force: https://api.kie.ai (the default)"
    while every request went to the simulator, and would name the workspace's key as the key in use. Under
    --sandbox the notes on which key is used and where it is sent are left out; the others stay."""
    (tmp_path / "MASTER_CONTEXT.md").touch()
    (tmp_path / ".env").write_text(f"KIE_BASE_URL={ATTACKER}\nKIE_APPROVAL=any\n")
    in_env_block = {"KIE_API_KEY": fresh_key(), "KIE_WORKSPACE": str(tmp_path), "KIE_APPROVAL": "form"}
    start = per_user_and_project(
        tmp_path / "b", monkeypatch, f"KIE_API_KEY={fresh_key()}\n", f"KIE_API_KEY={fresh_key()}\n"
    )
    # An endpoint ignored (the key in the env block); the key of the workspace chosen in use over the per-user one.
    for env, cwd, note in ((in_env_block, tmp_path, " is ignored: "), ({}, start, "The API key in use")):
        settings = Settings.load(env, cwd=cwd)
        assert any(note in said for said in settings.config_notes), settings.config_notes
        async with Client(create_server(settings.for_sandbox()), mode=mode) as client:
            credits = await client.call_tool("check_credits", {})
        said = text_of(credits)
        assert not credits.is_error and "SANDBOX: simulated account." in said, said
        for untrue in ('in force: "https://api.kie.ai"', " is ignored: ", "The API key in use", "KIE_BASE_URL"):
            assert untrue not in said, said
        if env:  # a note that holds in the sandbox too stays
            assert "The approval in force is KIE_APPROVAL=form, from the client's env block" in said, said


# -- another KIE tool's settings beside kie-mcp's own stop nothing; a misspelt limit still does -------------------


async def test_another_kie_tools_key_and_host_beside_kie_mcps_own_are_said_and_stop_nothing(mode, tmp_path):
    """The audit: a .env shared with another KIE.ai tool (KIE_AI_API_KEY is the common name), or its variable
    exported in the shell a client passes on, stopped every tool, under --sandbox too, with "did you mean
    KIE_API_KEY?" while KIE_API_KEY was set and worked. A near miss of a setting that limits no spending is said
    (check_credits, the start-up log) and stops nothing."""
    (tmp_path / ".env").write_text(
        "# my web app\nKIE_AI_API_KEY=0123456789abcdef0123456789abcdef\nKIE_AI_BASE_URL=https://api.kie.ai\n"
        f"# kie-mcp\nKIE_API_KEY={fresh_key()}\n"
    )
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIEAI_API_KEY": "x"}, cwd=tmp_path)
    assert settings.config_error is None, settings.config_error
    async with Client(create_server(settings.for_sandbox()), mode=mode) as client:
        credits = await client.call_tool("check_credits", {})
        models = await client.call_tool("list_models", {"kind": "image"})
    said = text_of(credits)
    assert not credits.is_error and not models.is_error, said
    for name, place in (("KIE_AI_API_KEY", f"{tmp_path / '.env'} sets"), ("KIEAI_API_KEY", "The environment has")):
        assert f'{place} "{name}", which kie-mcp does not read: it changes nothing here' in said, said
    assert "If it was meant for kie-mcp, the name is KIE_API_KEY" in said
    assert "If it was meant for kie-mcp, the name is KIE_BASE_URL" in said


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        ("KIE_WORKSPCE", True),
        ("KIE_DOWNLAOD", True),
        ("KIE_UPLOAD_BASE_URI", True),
        ("KIE_MAX_CREDITS_PER_CAL", True),
        ("KIE_AUTO_APPROVE_CREDIT", True),
        ("KIE_APROVAL", True),
        ("KIE_AI_API_KEY", False),
        ("KIEAI_API_KEY", False),
        ("KIE_AI_BASE_URL", False),
        ("KIE_AI_MAX_CREDITS_PER_CALL", True),
    ],
)
def test_a_misspelt_setting_is_a_broken_setting_and_another_kie_tool_s_only_a_note(name, broken, tmp_path):
    """A misspelt setting leaves a cap at its looser default, quote approvals on, or the server in another workspace
    (the review: KIE_WORKSPCE had become a note, and the brand's workspace went unseen): a broken setting. Another
    KIE tool's KIE_AI_API_KEY, KIEAI_API_KEY or KIE_AI_BASE_URL is said and stops nothing, unless it reads as a
    money limit."""
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), name: "1"}, cwd=tmp_path)
    if broken:
        assert settings.config_error and "did you mean" in settings.config_error
    else:
        assert settings.config_error is None, settings.config_error
        assert any(f'"{name}", which kie-mcp does not read' in note for note in settings.config_notes)
    if name.startswith(("KIE_MAX", "KIE_AUTO", "KIE_AI_MAX")):
        assert settings.max_credits_per_call == 0


# -- a workspace that cannot be made, and a Windows path elsewhere, are named at start ------------------------------


def test_a_workspace_that_cannot_be_made_is_a_broken_setting_never_said_to_be_made(tmp_path):
    """The audit: KIE_WORKSPACE=/proc/x started with "it did not exist and is made now", then every tool failed
    on a journal that could not be opened. A folder that cannot be made is named as such where the settings are."""
    (tmp_path / "notes.txt").write_text("a file\n")
    cases = [str(tmp_path / "notes.txt" / "project")]
    if Path("/proc/self").exists():  # Linux: a file system of no folders, where even root cannot make one
        cases.append("/proc/kie-mcp-workspace")
    for value in cases:
        settings = Settings.load({"KIE_WORKSPACE": value, "HOME": str(tmp_path / "home")}, cwd=tmp_path)
        assert settings.config_error and "is not there, and it cannot be made" in settings.config_error, value
        assert "is made now" not in settings.workspace_reason
        assert not Path(value).exists()


@pytest.mark.skipif(os.sep != "/", reason="a Windows path is a path on Windows")
@eras_in_turn("name", ["KIE_WORKSPACE", "KIE_ALLOWED_DIRS"])
async def test_a_windows_path_on_this_system_is_a_broken_setting_and_no_folder_is_made(name, mode, transport, tmp_path):
    """The audit: KIE_WORKSPACE=C:\\Users\\x on Linux or macOS was a relative folder of that name, and
    KIE_ALLOWED_DIRS=C:\\Users\\x\\Pictures was split at its colon into "C" and "\\Users\\x\\Pictures"."""
    start = tmp_path / "start"
    start.mkdir()
    env = {"KIE_WORKSPACE": str(tmp_path / "project"), name: "C:\\Users\\x\\Pictures"}
    seen = await everything_a_client_sees(Settings.load(env, cwd=start), transport, mode)
    assert f"{name}=C:\\Users\\x\\Pictures is a Windows path on this system" in seen, seen
    assert not list(start.iterdir())


@pytest.mark.skipif(os.sep != "/", reason="a Windows path is a path on Windows")
@pytest.mark.parametrize("value", ["/tmp:D:\\photos", "/tmp,D:/photos"])
def test_a_windows_path_later_in_the_allowed_folders_is_a_broken_setting_never_split(value, tmp_path):
    """The review: "/tmp:D:\\photos" allowed /tmp, ./D and ./\\photos; "/tmp,D:/photos" allowed /photos."""
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_ALLOWED_DIRS": value}, cwd=tmp_path)
    assert settings.config_error and "is a Windows path on this system" in settings.config_error
    assert settings.allowed_dirs == ()


# -- KIE_CACHE_DIR is checked as the workspace is ------------------------------------------------------------------


@pytest.mark.stdio
async def test_a_cache_folder_setting_that_is_no_full_path_makes_nothing_in_the_clients_folder_and_is_said(tmp_path):
    """The audit: KIE_CACHE_DIR with quotes around it, a placeholder nothing filled in or a relative path made
    folders of those names (the kept listing, pacing/ and its secret) in the folder the client started kie-mcp in.
    It is not used: the default cache folder serves, said in one start-up line; no tool stops over it."""
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    env = {"HOME": str(home), "KIE_WORKSPACE": str(tmp_path / "ws"), "KIE_CACHE_DIR": '"/tmp/kc"'}
    stderr = await console_stderr(env, cwd=project, args=["--sandbox"])
    assert 'KIE_CACHE_DIR="\\"/tmp/kc\\"" has quotes around it' in stderr, stderr
    assert f"the default cache folder ({home / '.cache' / 'kie-mcp'}) is used instead" in stderr, stderr
    assert [path.name for path in project.iterdir()] == ["stderr.txt"]  # console_stderr's own; nothing named '"'
    assert list((home / ".cache" / "kie-mcp").glob("tools-*.json"))  # the listing kept where the default is


# -- a .env other than the one holding the key cannot raise a money limit above its default -----------------------

RAISES = {"KIE_AUTO_APPROVE_CREDITS": "600", "KIE_MAX_CREDITS_PER_CALL": "5000", "KIE_MAX_CREDITS_PER_DAY": "100000"}
DEFAULT_LIMITS = {"KIE_AUTO_APPROVE_CREDITS": 0, "KIE_MAX_CREDITS_PER_CALL": 600, "KIE_MAX_CREDITS_PER_DAY": 3000}


def limits(settings: Settings) -> dict[str, float]:
    return {
        "KIE_AUTO_APPROVE_CREDITS": settings.auto_approve_credits,
        "KIE_MAX_CREDITS_PER_CALL": settings.max_credits_per_call,
        "KIE_MAX_CREDITS_PER_DAY": settings.max_credits_per_day,
    }


def held_to(auto: float, per_call: float, per_day: float) -> dict[str, float]:
    return dict(zip(RAISES, (auto, per_call, per_day), strict=True))


def ignored_note(settings: Settings) -> str:
    said = [note for note in settings.config_notes if ": ignored. A money limit is raised above its default" in note]
    assert len(said) == 1, settings.config_notes
    return said[0]


@pytest.mark.parametrize("name", list(RAISES))
@pytest.mark.parametrize("layout", ["cloned-project", "chosen-by-the-per-user-env"])
def test_a_dotenv_the_key_is_not_in_cannot_raise_a_money_limit_and_is_named(name, layout, tmp_path, monkeypatch):
    """The audit: the README's client snippets put only the key in the env block, so the caps are the defaults; a
    workspace .env (a cloned project's, or one an agent wrote) saying KIE_MAX_CREDITS_PER_CALL=5000 raised them, as
    "the lowest value written" never counted the default. A raise counts only where the key in use comes from; one
    written elsewhere is ignored, and the notes (check_credits, the start-up log) name the file, the setting, the
    value and where to set it for real."""
    line = f"{name}={RAISES[name]}\n"
    if layout == "cloned-project":  # the key in the env block, the server started in the clone
        start = tmp_path / "clone"
        start.mkdir()
        (start / "MASTER_CONTEXT.md").write_text("# brand")
        (start / ".env").write_text(line)
        env, project_env = {"KIE_API_KEY": SANDBOX_API_KEY}, start / ".env"
    else:  # the key in the per-user .env, which chose the project whose own .env raises the limit
        start = per_user_and_project(tmp_path, monkeypatch, f"KIE_API_KEY={SANDBOX_API_KEY}\n", line)
        env, project_env = {}, tmp_path / "proj" / ".env"
    settings = Settings.load(env, cwd=start)
    assert settings.config_error is None, settings.config_error
    assert limits(settings) == DEFAULT_LIMITS, limits(settings)
    said = ignored_note(settings)
    assert said.startswith(f"{name}={RAISES[name]} in {project_env}: ignored."), said
    assert "(the default)" in said and "in the env block of this MCP server in your client's configuration" in said
    if layout == "chosen-by-the-per-user-env":  # the key's own .env may raise it too, and is named
        per_user_env = tmp_path / "home" / ".local" / "share" / "kie-mcp" / ".env"
        assert f"or in {per_user_env} beside the key" in said, said


def test_the_env_blocks_raise_is_honoured_and_a_dotenvs_higher_one_is_not(tmp_path):
    """A raise in the client's env block counts (the key is set there); the workspace .env's higher one is ignored,
    and its auto-approve amount, which the env block leaves at 0, with it."""
    (tmp_path / ".env").write_text("KIE_MAX_CREDITS_PER_CALL=5000\nKIE_AUTO_APPROVE_CREDITS=600\n")
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY}
    settings = Settings.load({**env, "KIE_MAX_CREDITS_PER_CALL": "1000", "KIE_MAX_CREDITS_PER_DAY": "9000"}, tmp_path)
    assert limits(settings) == held_to(0, 1000, 9000), limits(settings)
    said = ignored_note(settings)
    assert "cap per call 1000 credits (from the client's env block)" in said, said
    assert "auto-approve amount 0 credits (the default)" in said, said
    # The same raises, all in the env block: all honoured, nothing said.
    settings = Settings.load({**env, **RAISES}, cwd=tmp_path)
    assert limits(settings) == {name: float(value) for name, value in RAISES.items()}, limits(settings)


def test_the_dotenv_beside_the_key_may_raise_the_money_limits(tmp_path, monkeypatch):
    """The .env that holds the key in use is the user's own configuration: its raises count, without a note; the
    project's .env it chose may not raise what it left at its default."""
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / ".env").write_text(
        f"KIE_API_KEY={SANDBOX_API_KEY}\n" + "".join(f"{n}={v}\n" for n, v in RAISES.items())
    )
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path / "one")}, cwd=tmp_path)
    assert limits(settings) == {name: float(value) for name, value in RAISES.items()}, limits(settings)
    assert not settings.config_notes, settings.config_notes
    start = per_user_and_project(
        tmp_path / "two",
        monkeypatch,
        f"KIE_API_KEY={SANDBOX_API_KEY}\nKIE_MAX_CREDITS_PER_CALL=1000\nKIE_MAX_CREDITS_PER_DAY=10000\n",
        "KIE_AUTO_APPROVE_CREDITS=600\nKIE_MAX_CREDITS_PER_DAY=20000\n",
    )
    settings = Settings.load({}, cwd=start)
    assert limits(settings) == held_to(0, 1000, 10000), limits(settings)
    said = ignored_note(settings)
    project_env = tmp_path / "two" / "proj" / ".env"
    assert f"KIE_AUTO_APPROVE_CREDITS=600 and KIE_MAX_CREDITS_PER_DAY=20000 in {project_env}: ignored." in said, said


def test_a_dotenv_the_key_is_not_in_still_lowers_a_money_limit(tmp_path):
    """Strictest still wins: a lower value from any .env applies (also one under a raise the env block made, and
    one above the default that is under it), while a raise beside it in the same .env is ignored."""
    (tmp_path / ".env").write_text(
        "KIE_MAX_CREDITS_PER_CALL=5\nKIE_MAX_CREDITS_PER_DAY=5000\nKIE_AUTO_APPROVE_CREDITS=600\n"
    )
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": SANDBOX_API_KEY, "KIE_MAX_CREDITS_PER_DAY": "8000"}
    settings = Settings.load(env, cwd=tmp_path)
    assert limits(settings) == held_to(0, 5, 5000), limits(settings)
    assert ignored_note(settings).startswith(f"KIE_AUTO_APPROVE_CREDITS=600 in {tmp_path / '.env'}: ignored.")


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX console script")
async def test_a_cloned_projects_dotenv_cannot_auto_approve_a_spend_the_form_must_approve(
    simulator_process, mode, tmp_path
):
    """The audit's t14 over real stdio: the client's env block holds the key and KIE_APPROVAL=form; the cloned
    project the server starts in has a .env raising the auto-approve amount to 600 and both caps. A Veo 3 clip (250
    credits) was auto-approved, with no form, and sent to KIE. Now the form is asked (and declined), nothing is
    created, and check_credits and the start-up log (one WARNING line) name what was ignored."""
    clone = tmp_path / "cloned-project"
    clone.mkdir()
    (clone / "MASTER_CONTEXT.md").write_text("# brand")
    (clone / ".env").write_text("".join(f"{name}={value}\n" for name, value in RAISES.items()))
    env = client_env(
        tmp_path / "home",
        KIE_API_KEY="sandbox-key",
        KIE_BASE_URL=simulator_process,
        KIE_UPLOAD_BASE_URL=simulator_process,
        KIE_CATALOG_SYNC="off",
        KIE_APPROVAL="form",
    )
    asked: list[str] = []
    params = StdioServerParameters(command=console_script(), args=[], env=env, cwd=clone)
    with (tmp_path / "stderr.txt").open("w+") as errlog:
        async with Client(
            stdio_client(params, errlog=errlog),
            mode=mode,
            read_timeout_seconds=60,
            elicitation_callback=answering(action="decline", seen=asked),
        ) as client:
            credits = await client.call_tool("check_credits", {})
            made = await client.call_tool(
                "generate_video", {"model": "veo3", "prompt": "a red apple rolls off a table", "wait_seconds": 0}
            )
        errlog.seek(0)
        stderr = errlog.read()
    async with httpx2.AsyncClient(base_url=simulator_process) as sim:
        requests = (await sim.get("/__sim/requests")).json()
    creates = [
        r for r in (requests if isinstance(requests, list) else requests["requests"]) if r["path"] in CREATE_PATHS
    ]
    assert len(asked) == 1 and made.structured_content["status"] == "declined", (asked, text_of(made))
    assert creates == [], creates
    caps = credits.structured_content
    assert (caps["max_credits_per_call"], caps["max_credits_per_day"]) == (600, 3000), text_of(credits)
    named = "KIE_AUTO_APPROVE_CREDITS=600 and KIE_MAX_CREDITS_PER_CALL=5000 and KIE_MAX_CREDITS_PER_DAY=100000 in "
    assert named + f"{clone / '.env'}: ignored." in text_of(credits), text_of(credits)
    warned = [line for line in stderr.splitlines() if named in line]
    assert len(warned) == 1 and "WARNING" in warned[0], stderr
    assert "in the env block of this MCP server in your client's configuration" in warned[0], warned
