"""The command line, ``python -m``, and one real stdio session with the installed console script."""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from kie_mcp import __version__, stdio
from kie_mcp.cli import main
from kie_mcp.cliargs import build_parser
from kie_mcp.config import sandbox_area

from .conftest import answering, every_resource
from .test_promise_config import as_a_user_the_system_does_not_know


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert __version__ in capsys.readouterr().out
    help_text = build_parser().format_help()
    for word in ("--sandbox", "demo", "sim"):
        assert word in help_text


def test_help_names_the_configuration_docs_by_the_projects_address_and_every_default():
    """The audit: ``kie-mcp --help`` said "see the README", which an installed kie-mcp does not have beside it, and
    ``sim --help`` did not say --balance's default. The epilog gives the README's address under the project's own
    URL (pyproject's [project.urls]), whole on one line at any width; each sim option says its default."""
    import tomllib

    urls = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["urls"]
    env = {**os.environ, "COLUMNS": "50"}  # narrow: argparse wrapped the address at its dash
    said = subprocess.run(
        [sys.executable, "-m", "kie_mcp", "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    [address] = re.findall(r"https://\S+#configuration", said)
    assert address.startswith(urls["Homepage"] + "#"), said
    sim = build_parser()._subparsers._group_actions[0].choices["sim"]  # type: ignore[union-attr]
    for action in sim._actions:
        if isinstance(action.default, int | float) and not isinstance(action.default, bool):  # port, speed, balance
            assert f"(default {action.default:g})" in (action.help or ""), (action.dest, action.help)


@pytest.mark.parametrize("command", [["catalog", "sync"], ["catalog", "check"]])
def test_bad_configuration_stops_a_command_with_one_line_not_a_traceback(command, monkeypatch, capsys):
    """Commands stop on a broken setting; the server itself starts and explains it (tests/test_first_hour.py)."""
    monkeypatch.setenv("KIE_MAX_CREDITS_PER_CALL", "a lot")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "KIE_MAX_CREDITS_PER_CALL" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("port", ["99999", "-1", "65536", "http"])
def test_sim_refuses_a_port_that_is_not_one_with_one_line_not_a_traceback(port, capsys):
    with pytest.raises(SystemExit) as done:
        main(["sim", "--port", port])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "--port" in err and "Traceback" not in err
    assert "from 0 to 65535" in err or "whole number" in err


def test_sim_on_port_0_names_the_port_it_listens_on(tmp_path):
    """``--port 0`` (any free port) printed http://127.0.0.1:0, an address nothing could use. And the address
    takes connections the moment it is printed: a script that connects at once was refused while the simulator
    was still being built (the port was bound, not yet listening)."""
    import re
    import shutil
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import httpx2

    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script is not None
    process = subprocess.Popen([script, "sim", "--port", "0"], stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert found and found.group(1) != "0", first
        socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=10).close()  # at once: never refused
        answer = httpx2.get(f"{found.group(0)}/__sim/state", timeout=10)
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=10)  # waits, and closes the pipe


def test_sim_on_a_port_in_use_says_so_in_one_line(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["sim", "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [["--sandbox", "catalog", "check"], ["catalog", "check", "--sandbox"], ["catalog", "--sandbox", "check"]],
)
def test_catalog_check_honours_sandbox_as_sync_does(monkeypatch, capsys, tmp_path, argv):
    """``--sandbox catalog check`` compares with the simulator: no key needed and the real KIE is never contacted.
    ``--sandbox`` after the command, or between ``catalog`` and its action, reads the same (each was "unrecognized
    arguments")."""
    monkeypatch.delenv("KIE_API_KEY", raising=False)
    monkeypatch.setenv("KIE_BASE_URL", "http://127.0.0.1:9")  # the real KIE, were it contacted: unreachable
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    assert main(argv) == 0  # the simulator serves the catalogue: no drift (withdrawn models were "gone from KIE")
    out, err = capsys.readouterr()
    assert "KIE_API_KEY" not in err and "cannot reach" not in err, err
    assert "No drift" in out, out


@pytest.mark.parametrize("action", ["check", "sync"])
def test_catalog_without_a_key_says_where_to_set_it_and_that_sandbox_needs_none(action, monkeypatch, capsys, tmp_path):
    """The audit: `kie-mcp catalog check` with no key printed only "needs KIE_API_KEY", not where it goes nor that
    the simulator needs none."""
    monkeypatch.delenv("KIE_API_KEY", raising=False)
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    assert main(["catalog", action]) == 2
    err = capsys.readouterr().err
    assert f"kie-mcp catalog {action} needs KIE_API_KEY" in err, err
    assert "export KIE_API_KEY=<your key>" in err and f"workspace's .env ({tmp_path / '.env'})" in err, err
    assert f"kie-mcp catalog {action} --sandbox" in err, err


def test_catalog_sync_names_each_model_asked_for_that_it_could_not_fetch(monkeypatch, capsys, tmp_path):
    """``--model ID`` of a model KIE does not list, or of a product API model, printed "schemas fetched: 0 ...
    errors: none": nothing said it was skipped."""
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    argv = ["--sandbox", "catalog", "sync", "--model", "nope-model", "--model", "veo3_fast", "--model", "nano-banana-2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--model nope-model: skipped (not in KIE's model list)" in out, out
    assert "--model veo3_fast: skipped (served by KIE's veo API" in out, out
    assert "--model nano-banana-2" not in out  # fetched


@pytest.mark.parametrize("argv", [["--sandbox", "sim"], ["--sandbox", "demo"]])
def test_sandbox_before_a_command_it_does_not_apply_to_is_refused_not_ignored(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"--sandbox does not apply to {argv[1]}" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["demo", "sim"])
def test_sandbox_after_a_command_it_does_not_apply_to_is_refused_in_the_same_words_under_its_usage(command, capsys):
    """The audit: `kie-mcp demo --sandbox` got the top-level usage and "unrecognized arguments: --sandbox", while
    `kie-mcp --sandbox demo` said why."""
    with pytest.raises(SystemExit) as done:
        main([command, "--sandbox"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and f"usage: kie-mcp {command} " in err, err
    assert f"--sandbox does not apply to {command}: it runs offline" in err and "unrecognized" not in err, err


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["demo", "--x"], "usage: kie-mcp demo [-h] [--keep]\n"),
        (
            ["sim", "--port", "8790", "--x"],
            "usage: kie-mcp sim [-h] [--port PORT] [--speed SPEED] [--balance BALANCE]\n",
        ),
        (["catalog", "sync", "--x"], "usage: kie-mcp catalog sync [-h] [--sandbox] [--model ID]\n"),
        (["catalog", "--x", "check"], "usage: kie-mcp catalog [-h] [--sandbox] ACTION ...\n"),
    ],
)
def test_an_argument_a_command_does_not_take_is_refused_under_that_command_s_usage(argv, usage, capsys):
    """The audit: `kie-mcp demo --x` printed the top-level usage ("kie-mcp [-h] [--version] [--sandbox] COMMAND
    ..."), which names none of demo's options, where the README promised its usage; a bad value (`sim --port 80a`)
    already got the command's."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith(usage), err
    assert "error: unrecognized arguments: --x. Settings go in the environment" in err, err


@pytest.mark.parametrize("command", ["serve", "stdio"])
def test_each_name_of_serving_shows_its_own_usage(command, capsys):
    """The audit: `kie-mcp stdio --help` printed "usage: kie-mcp serve"."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert out.startswith(f"usage: kie-mcp {command} ") and "serve MCP over stdio" in out, out
    assert build_parser().parse_args([command, "--sandbox"]).sandbox is True


def test_the_catalog_commands_describe_their_own_sandbox(capsys):
    for command in ("check", "sync"):
        with pytest.raises(SystemExit):
            main(["catalog", command, "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        assert "the built-in KIE simulator instead of KIE" in shown and "serve against" not in shown


@pytest.mark.parametrize(
    ("argv", "sandbox"),
    [(["serve", "--sandbox"], True), (["--sandbox", "serve"], True), (["serve"], False), ([], False)],
)
def test_sandbox_may_follow_the_command(argv, sandbox):
    assert build_parser().parse_args(argv).sandbox is sandbox


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shells close descriptors with >&-")
@pytest.mark.parametrize(
    ("redirect", "said"),
    [(">&-", "stdout is closed"), ("<&-", "stdin is closed"), ("<&- >&-", "stdin and stdout are closed")],
)
def test_a_server_started_without_its_stdin_or_stdout_says_so_in_one_line(redirect, said, tmp_path):
    """The audit: started with stdout closed, the server printed an exception group traceback ending in
    "'NoneType' object has no attribute 'buffer'"; with stdin closed, "writing to the client failed ([Errno 22]
    Invalid argument)", of a descriptor it had reused. Nothing can be served: one line, exit code 1."""
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script
    done = subprocess.run(
        ["sh", "-c", f'exec "$0" --sandbox {redirect}', script],
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KIE_WORKSPACE": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 1 and done.stderr == (
        f"kie-mcp: {said}: kie-mcp must be started by an MCP client over pipes.\n"
    ), done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a descriptor opened for writing only, as stdin")
def test_a_wire_that_fails_to_be_read_is_said_to_have_failed_reading_not_writing(tmp_path):
    """A stdin that cannot be read (here: opened for writing only) ended with "writing to the client failed"; the
    line names the side that failed."""
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script
    write_only = os.open(tmp_path / "written", os.O_WRONLY | os.O_CREAT)
    try:
        done = subprocess.run(
            [script, "--sandbox"],
            stdin=write_only,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KIE_WORKSPACE": str(tmp_path)},
            check=False,
        )
    finally:
        os.close(write_only)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("kie-mcp: reading from the client failed ("), done.stderr
    assert "Traceback" not in done.stderr


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
        resources = await every_resource(client)
    data = result.structured_content
    assert data["status"] == "completed"
    assert data["sandbox"] is True
    assert "SANDBOX" in data["message"]
    assert any(str(r.uri) == "kie://models" for r in resources)


@pytest.mark.parametrize(
    ("line", "mended"),
    [
        (r'{"p": "apple \ud83d"}', r'{"p": "apple \ufffd"}'),  # a high half alone
        (r'{"p": "\udc00 x"}', r'{"p": "\ufffd x"}'),  # a low half alone
        (r'{"p": "\uD83D\uDE00"}', r'{"p": "\uD83D\uDE00"}'),  # a pair stays
        (r'{"p": "\ud83d\ud83d\ude00"}', r'{"p": "\ufffd\ud83d\ude00"}'),  # a lone half before a pair
        (r'{"p": "\\ud83d"}', r'{"p": "\\ud83d"}'),  # an escaped backslash, then text: no escape at all
        (r'{"p": "\\\ud83d"}', r'{"p": "\\\ufffd"}'),  # an escaped backslash, then a lone half
        (r'{"p": "\u00e9 \n"}', r'{"p": "\u00e9 \n"}'),  # other escapes stay
    ],
)
def test_lone_surrogate_escapes_are_mended_and_nothing_else(line, mended):
    def request(params: str) -> str:  # a message's params (JSON that is no message is answered as such)
        return '{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": ' + params + "}"

    assert stdio.mend_line(request(line)) == request(mended)
    json.loads(stdio.mend_line(request(line)))


def _sandbox_server_over_pipes(workspace: Path) -> subprocess.Popen[bytes]:
    """The installed ``kie-mcp --sandbox`` on ``workspace``, its stdin and stdout pipes this test writes and reads
    raw lines on."""
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script
    env = {**os.environ, "KIE_WORKSPACE": str(workspace)}
    server = subprocess.Popen(
        [script, "--sandbox"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert server.stdin is not None and server.stdout is not None
    return server


def test_a_leading_byte_order_mark_is_taken_off_and_nothing_else():
    assert stdio.mend_line('\ufeff{"id": 1}\n') == '{"id": 1}\n'
    inside = '{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"p": "\ufeff inside"}}'
    assert stdio.mend_line(inside) == inside  # text in a string stays


@pytest.mark.stdio
def test_a_host_writing_utf8_with_a_byte_order_mark_is_answered_over_stdio(tmp_path):
    """A host that writes "UTF-8 with BOM" (.NET's ``Encoding.UTF8``) starts its first line with a byte-order
    mark; the SDK's transport dropped that line, the ``initialize``, so the host never connected."""
    server = _sandbox_server_over_pipes(tmp_path)
    try:
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        first = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
        server.stdin.write(b"\xef\xbb\xbf" + json.dumps(first).encode() + b"\n")
        server.stdin.flush()
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready, "the initialize after a byte-order mark was not answered"
        answer = json.loads(server.stdout.readline())
        assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"]
    finally:
        server.stdin.close()
        exited = server.wait(timeout=30)
        server.stdout.close()
    assert exited == 0


@pytest.mark.stdio
def test_a_line_with_a_lone_surrogate_escape_is_answered_not_dropped_over_stdio(tmp_path):
    """JSON may escape half of an emoji alone (``\\ud83d``); the SDK's transport drops such a line unanswered, so
    the host would wait for ever. kie-mcp mends it first: the call is answered, and the server goes on. While it
    serves, fd 0 is the null device (a child such as ffmpeg never reads the protocol)."""
    server = _sandbox_server_over_pipes(tmp_path)

    def ask(message: dict) -> dict:
        server.stdin.write(json.dumps(message).encode() + b"\n")  # ensure_ascii: "\ud83d" goes as an escape
        server.stdin.flush()
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready, f"no answer to {message['method']}"
        return json.loads(server.stdout.readline())

    def call(number: int, tool: str, arguments: dict) -> dict:
        request = {"name": tool, "arguments": arguments}
        return ask({"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": request})["result"]

    try:
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        ask({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
        server.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        cut = "a red apple \ud83d"  # an emoji cut in half
        quote = call(2, "estimate_cost", {"model": "nano-banana-2", "prompt": cut})
        assert quote["isError"] is False and quote["structuredContent"]["quote"]["credits_total"] == 8
        refused = call(3, "check_credits", {"note": "\udc00 alone"})
        assert refused["isError"] is True and "does not take note" in refused["content"][0]["text"]
        paired = call(4, "check_credits", {"note": "\\ud83d is text, \ud83d\ude00 a pair"})  # untouched
        assert paired["isError"] is True
        if sys.platform == "linux":
            assert os.readlink(f"/proc/{server.pid}/fd/0") == os.devnull
    finally:
        server.stdin.close()
        exited = server.wait(timeout=30)
        server.stdout.close()
    assert exited == 0  # stdin closed: a clean exit


@pytest.mark.stdio
def test_a_handshake_era_host_is_told_it_can_subscribe_and_subscribes_over_stdio(tmp_path):
    """The audit: a host speaking 2025-11-25 (most of them) was told ``resources.subscribe: false`` and its
    resources/subscribe was "Method not found". Over the installed console script it is told true, a task resource
    is subscribed to, and another resource refused in words."""
    server = _sandbox_server_over_pipes(tmp_path)

    def ask(message: dict) -> dict:
        server.stdin.write(json.dumps(message).encode() + b"\n")
        server.stdin.flush()
        ready, _, _ = select.select([server.stdout], [], [], 30)
        assert ready, f"no answer to {message['method']}"
        return json.loads(server.stdout.readline())

    try:
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        started = ask({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
        server.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        subscribe = {"jsonrpc": "2.0", "method": "resources/subscribe"}
        subscribed = ask({**subscribe, "id": 2, "params": {"uri": "kie://tasks"}})
        refused = ask({**subscribe, "id": 3, "params": {"uri": "kie://outputs/index.html"}})
    finally:
        server.stdin.close()
        exited = server.wait(timeout=30)
        server.stdout.close()
    assert started["result"]["capabilities"]["resources"]["subscribe"] is True
    assert subscribed == {"jsonrpc": "2.0", "id": 2, "result": {}}
    assert refused["error"]["code"] == -32602 and "cannot be subscribed to" in refused["error"]["message"]
    assert exited == 0


def _demo(
    tmp_path: Path,
    *args: str,
    env_extra: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
    temp_name: str = "tmp",
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``kie-mcp demo`` with its temporary folder (``temp_name``) inside ``tmp_path``; return the run and that
    folder. With a ``prefix`` (a user the system does not know), with no HOME at all."""
    temp = tmp_path / temp_name
    temp.mkdir()
    home = {} if prefix else {"HOME": str(tmp_path)}
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}  # another tree: its demo
    env = {"PATH": str(Path(sys.executable).parent), **home, "TMPDIR": str(temp), **path, **(env_extra or {})}
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "kie_mcp", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, temp


@pytest.mark.stdio
def test_demo_runs_offline_ends_with_next_steps_and_leaves_no_clutter(tmp_path):
    """The README's first command: the whole tour, a real subprocess server over stdio, no key; it ends with what
    to do next and leaves nothing behind. Run here without ffmpeg (kie-mcp's video extra hidden): stitching is
    skipped with the fix and the tour still succeeds (one run for all of it: each takes seconds; the stitch itself
    is checked in the ``--keep`` run)."""
    cache = tmp_path / "my-cache"
    hidden = tmp_path / "hide"
    (hidden / "imageio_ffmpeg").mkdir(parents=True)
    (hidden / "imageio_ffmpeg" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    assert shutil.which("ffmpeg", path=str(Path(sys.executable).parent)) is None  # the demo's PATH has none
    done, temp = _demo(tmp_path, env_extra={"KIE_CACHE_DIR": str(cache), "PYTHONPATH": str(hidden)})
    out = done.stdout
    assert "[confirmation form] Spend 8 credits" in out
    assert "status=completed" in out
    assert "generate_video with the approved quote -> status=submitted" in out
    assert "succeeded. Results: http" in out
    assert "HTTP Request" not in out + done.stderr  # library chatter stays out of the transcript
    assert list(cache.glob("*.json"))  # the server's kept tool listing went where KIE_CACHE_DIR says ...
    assert not (tmp_path / ".cache").exists()  # ... not to the default folder under HOME
    assert "stitch_videos skipped: no ffmpeg here: kie-mcp's video extra" in out
    assert "uv tool install '/path/to/kie-mcp[video]'" in out  # a command that works before PyPI
    steps = out[out.index("== Next steps") :]
    # How to see the files, by the command this kie-mcp is started with: a bare `kie-mcp` is on no shell's PATH
    # after `uv run kie-mcp demo` in a fresh checkout.
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert f"run `{script} demo --keep`" in steps, steps
    assert '"Use it from your MCP client"' in steps and "claude mcp add kie" in steps  # how to add it to a client
    assert steps.count('-e KIE_WORKSPACE="$PWD"') == 2, steps  # the project is the workspace: its files are read
    assert "uvx kie-mcp" not in steps  # not on PyPI yet: the demo names a command that works today
    assert "https://kie.ai" in steps and "KIE_API_KEY" in steps  # how to switch to a real key
    assert not list(temp.glob("kie-mcp-demo-*"))
    # Piped (as here), the progress bar's redraws wrote carriage returns into the output, and the first estimate
    # said "KIE live price list of <today>" or "KIE price list of <date>" by which came first, the tour or a
    # background sync from the simulator: only the bar's finished line is written, and the price source is the
    # bundled KIE price list, the same every run.
    assert "\r" not in out
    [bar] = [line for line in out.splitlines() if re.match(r"  \[[#.]{30}\]", line)]
    assert bar.startswith("  [" + "#" * 30 + "] 100%"), bar
    assert re.search(r"Price source: KIE price list of \d{4}-\d{2}-\d{2}\.", out), out
    assert "live price list" not in out and "simulator's price list" not in out


def test_the_demo_run_by_uvx_names_the_uvx_command_not_a_path_in_uv_s_cache(monkeypatch):
    """Run as `uvx --from /path/to/kie-mcp kie-mcp demo`, the tour's Python lives in uv's cache (archive-v0/<hash>):
    a client told to start that path runs the old code after a pull and fails once uv prunes its cache. The next
    steps name the same uvx command, with where kie-mcp was installed from (here: this checkout)."""
    from kie_mcp import demo

    monkeypatch.setattr(sys, "prefix", "/home/me/.cache/uv/archive-v0/7HT-LNfxDZLmNhQt")
    command = demo._client_command()
    assert "archive-v0" not in command
    assert command.endswith(f"--from {Path(__file__).resolve().parents[1]} kie-mcp"), command
    assert command.split()[0].endswith("uvx")
    monkeypatch.setattr(sys, "prefix", str(Path(sys.executable).parents[1]))  # an ordinary environment
    assert demo._client_command() == demo.server_command()[0]


@pytest.mark.stdio
def test_demo_keep_keeps_the_workspace_and_says_where(tmp_path):
    """With ffmpeg (a dev dependency) the tour joins its two clips; --keep keeps the files and says where. Run as a
    user the system does not know, with HOME unset, where the system allows it: the audit found every start, the
    demo's too, crashed there with "Could not determine home directory" (``test_promise_config`` checks the
    server's side). Its temporary folder's name has a space: the command it gives to open the files printed the
    path unquoted (``xdg-open /tmp/Mon Projet/...`` opens two things that are not there)."""
    done, temp = _demo(tmp_path, "--keep", prefix=as_a_user_the_system_does_not_know() or (), temp_name="Mon Projet")
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "stitch_videos joins the two clips into one -> outputs/" in done.stdout
    assert "16.0 s, joined losslessly by stream copy" in done.stdout  # two 8 s sandbox Veo clips of one format
    kept = list(temp.glob("kie-mcp-demo-*"))
    assert len(kept) == 1
    workspace = kept[0].resolve()
    assert f"The files are kept in {workspace}" in done.stdout
    gallery = next(line for line in done.stdout.splitlines() if "Gallery page" in line).rsplit(": ", 1)[1]
    assert Path(gallery).is_file() and Path(gallery).name == "index.html"
    assert Path(gallery).resolve().is_relative_to(workspace)
    if sys.platform != "win32":  # the command to open them, pasted into a shell, names the gallery as one argument
        opening = next(line for line in done.stdout.splitlines() if "Open them: " in line).split("Open them: ")[1]
        assert shlex.split(opening)[1:] == [gallery], opening
    videos = sorted(p.name for p in workspace.rglob("outputs/**/*.mp4"))
    assert len(videos) == 3 and "stitched-2-clips.mp4" in videos
    assert list(workspace.rglob("outputs/**/*.jpg"))


@pytest.mark.stdio
def test_the_demo_keeps_its_reel_in_one_session_and_passes_its_spoken_lines_as_script(tmp_path):
    """The audit: the tour taught what the server warns against. Its image and two clips had no session (three
    prompt-named folders, the join in a fourth) and each clip's spoken line was written inside the prompt, not in
    ``script``, so Veo was sent enableTranslation=true. One session ("demo reel") holds everything the tour saves,
    and each line goes in ``script``: kie-mcp speaks it as dialogue and sends enableTranslation=false."""
    done, temp = _demo(tmp_path, "--keep")
    out = done.stdout
    [workspace] = list(temp.glob("kie-mcp-demo-*"))
    area = sandbox_area(workspace.resolve())  # where the sandboxed server saves
    outputs = area / "outputs"
    folders = sorted(path.name for path in outputs.iterdir() if path.is_dir())
    assert len(folders) == 1 and re.fullmatch(r"\d{4}-\d{2}-\d{2}-demo-reel", folders[0]), folders
    sidecars = [json.loads(path.read_text()) for path in (outputs / folders[0]).glob("*.json")]
    clips = [sidecar for sidecar in sidecars if sidecar.get("model") == "veo3_fast"]
    assert len(clips) == 2 and all(sidecar["session"] == "demo reel" for sidecar in clips), sidecars
    sent = [json.loads(clip["parameters"]) for clip in clips]
    assert all(wire["enableTranslation"] is False for wire in sent), sent
    spoken = sorted(wire["prompt"].split("The speaker says: ", 1)[1] for wire in sent)  # kie-mcp's dialogue line
    assert spoken == ["Cold brew, made slow. (no subtitles)", "Try it cold. (no subtitles)"], sent
    assert "enableTranslation=true" not in out and 'Spoken: "Try it cold."' in out
    assert f"Result files saved in {area}:" in out
    saved = [line.strip() for line in out.splitlines() if line.startswith("  outputs/")]
    assert saved and all(line.startswith(f"outputs/{folders[0]}/") or line == "outputs/index.html" for line in saved)


def test_a_demo_whose_server_dies_ends_with_one_line_and_no_leftover(tmp_path, monkeypatch, capsys):
    """The sandboxed server dying half-way (or failing to start) ended the tour with an exception group traceback
    and exit 1; it now says what happened in one line, and the temporary workspace is still removed."""
    from kie_mcp import demo

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(demo, "server_command", lambda: (sys.executable, ["-c", "import sys; sys.exit(3)"]))
    assert demo.run_demo() == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "demo: the sandboxed server stopped unexpectedly" in err, err
    assert "TaskGroup" not in err and "sub-exception" not in err, err  # the reason itself, not its wrapping
    assert not list(tmp_path.glob("kie-mcp-demo-*"))


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="a folder named with a $ is a POSIX matter")
def test_a_demo_step_the_server_refuses_ends_the_tour_with_its_words_in_one_line(tmp_path):
    """The audit: with its temporary folder full, the server answered a step with an error and `kie-mcp demo` printed
    a 65-line exception-group traceback (a SystemExit raised inside the client's task group). Here the server
    refuses every step for a real reason, a temporary folder whose name holds a placeholder ($NOTSET), which the
    demo's workspace inherits: the tour ends with the step and the server's words on one line, exit 1, and its
    temporary workspace is removed."""
    temp = tmp_path / "t$NOTSET"
    temp.mkdir()
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "TMPDIR": str(temp), **path}
    done = subprocess.run(
        [sys.executable, "-m", "kie_mcp", "demo"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr, done.stderr[-3000:]
    [said] = [line for line in done.stderr.splitlines() if line.startswith("demo:")]
    assert said.startswith("demo: check_credits failed: ") and "$NOTSET" in said, done.stderr
    assert "stopped unexpectedly" not in done.stderr  # the server answered: it is not said to have died
    assert not list(temp.glob("kie-mcp-demo-*"))


def test_a_demo_without_a_temporary_folder_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """The audit: with /tmp read-only or full (no temporary folder anywhere), `kie-mcp demo` ended in a traceback."""
    from kie_mcp import demo

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "not-there"))  # where the tour's workspace is made
    assert demo.run_demo() == 1
    err = capsys.readouterr().err
    assert err.startswith("demo: cannot create a temporary workspace (") and err.count("\n") == 1, err
    assert "set TMPDIR" in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_demo_stopped_by_sigterm_removes_its_workspace(tmp_path):
    """Closing the terminal (SIGHUP) or stopping the demo (SIGTERM) left its temporary workspace behind: only Ctrl-C
    reached the clean-up."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "TMPDIR": str(temp)}
    process = subprocess.Popen(
        [sys.executable, "-m", "kie_mcp", "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the tour has begun: its workspace exists
        assert list(temp.glob("kie-mcp-demo-*"))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and b"Traceback" not in err, err
    assert not list(temp.glob("kie-mcp-demo-*"))


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and /dev/full")
@pytest.mark.parametrize("output", ["closed-pipe", "full-disk"])
def test_a_demo_whose_own_output_fails_never_blames_the_server(tmp_path, output):
    """The audit: `kie-mcp demo | head` (or a full disk behind its output) said "the sandboxed server stopped
    unexpectedly ([Errno 32] Broken pipe) ... report it". The tour's own output failing ends it quietly when the
    reader closed the pipe (exit 141, as `yes | head`), in one line on a full disk; the server is not blamed and
    the temporary workspace is still removed."""
    if output == "full-disk" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "TMPDIR": str(temp)}
    with open("/dev/full", "wb") if output == "full-disk" else open(os.devnull, "wb") as full:
        process = subprocess.Popen(
            [sys.executable, "-m", "kie_mcp", "demo"],
            stdout=full if output == "full-disk" else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            if process.stdout is not None:
                process.stdout.readline()  # the tour has begun: `head -1` read its line and went away
                process.stdout.close()
            _, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    said = err.decode()
    assert "stopped unexpectedly" not in said and "report it" not in said and "Traceback" not in said, said
    if output == "closed-pipe":
        assert process.returncode == 141 and said == "", said
    else:
        assert process.returncode == 1 and said.strip() == (
            "demo: cannot write the tour's output (No space left on device); stopped."
        ), said
    assert not list(temp.glob("kie-mcp-demo-*"))
