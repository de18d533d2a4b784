"""The command line, ``python -m``, and one real stdio session with the installed console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from kie_mcp import __version__
from kie_mcp.cli import build_parser, main

from .conftest import answering


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert __version__ in capsys.readouterr().out
    help_text = build_parser().format_help()
    for word in ("--sandbox", "demo", "sim"):
        assert word in help_text


def test_bad_configuration_is_one_line_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("KIE_MAX_CREDITS_PER_CALL", "a lot")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "KIE_MAX_CREDITS_PER_CALL" in err and "Traceback" not in err


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "kie_mcp", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"kie-mcp {__version__}"


@pytest.mark.stdio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_installed_console_script_over_stdio(mode, tmp_path):
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script, "the kie-mcp console script is not installed beside this Python"
    params = StdioServerParameters(command=script, args=["--sandbox"], env={"KIE_WORKSPACE": str(tmp_path)})
    progress: list[float] = []

    async def on_progress(value, total, message):
        progress.append(value)

    async with Client(params, mode=mode, elicitation_callback=answering(), read_timeout_seconds=60) as client:
        assert client.server_info.version == __version__
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "generate_image" in tools
        result = await client.call_tool("generate_image", {"prompt": "an apple"}, progress_callback=on_progress)
        resources = (await client.list_resources()).resources
    data = result.structured_content
    assert data["status"] == "completed"
    assert data["sandbox"] is True
    assert "SANDBOX" in data["message"]
    assert any(str(r.uri) == "kie://models" for r in resources)


@pytest.mark.stdio
def test_demo_runs_offline_and_exits_zero(tmp_path):
    """The README's first command: the whole tour, a real subprocess server over stdio, no key."""
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "kie_mcp", "demo"], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[confirmation form] Spend 8 credits" in out
    assert "status=completed" in out
    assert "generate_video with the approved quote -> status=submitted" in out
    assert "succeeded. Results: http" in out
    assert "HTTP Request" not in out + done.stderr  # library chatter stays out of the transcript
