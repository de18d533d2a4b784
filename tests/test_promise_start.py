"""Promises about a start that went wrong somewhere a client cannot show: kie-mcp still answers, and says what.

- A workspace (or a setting) given in bytes that are not UTF-8 (a folder named in Latin-1 on an old disk) never stops
  the server from answering: the SDK's writer could not serialize the text Python makes of such bytes, so the
  ``initialize`` answer never left and the client waited, then the server died with a traceback. The path is shown
  with those bytes escaped.
- Arguments kie-mcp does not take (``--sandbx``, ``mcp``, ``--workspace /x``), written in a client's configuration,
  never make it exit with argparse's usage, which the client shows as "Connection closed": it serves, and every
  tool answers with the arguments to fix, nothing spent. ``stdio`` is another name for serving. In a terminal a
  person still gets the usage and exit code 2.
- ``check_credits`` with a key KIE refuses, no key, or KIE out of reach still reports what is known here: the
  workspace and why it was chosen, the caps and today's spend, with the balance marked unavailable and why. The
  instructions say why the workspace was chosen too (a typo in KIE_WORKSPACE makes a new, empty folder).

What a client sees goes through the SDK ``Client`` in both protocol eras; how the console script starts runs the
installed ``kie-mcp`` over real stdio.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from jsonschema.validators import validator_for
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCResponse
from pydantic import SecretStr

from kie_mcp import stdio
from kie_mcp.config import Settings
from kie_mcp.server import create_server

from .conftest import answering, free_port, text_of

LATIN_1_NAME = b"proj_\xe9t\xe9"  # "projete" with e-acute, in Latin-1: not UTF-8
LATIN_1_SHOWN = "proj_\\xe9t\\xe9"  # as kie-mcp shows it: each byte that is not UTF-8 escaped


def console_script() -> str:
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script, "the kie-mcp console script is not installed beside this Python"
    return script


def client_env(home: Path, **more: str) -> dict[str, str]:
    """A client's environment for the console script: a home of the test's own, the run's tool cache, UTF-8, and
    the run's PYTHONPATH (a run against another source tree starts that tree's server)."""
    home.mkdir(parents=True, exist_ok=True)
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    return {"HOME": str(home), "LANG": "C.UTF-8", "KIE_CACHE_DIR": os.environ["KIE_CACHE_DIR"], **path, **more}


def latin_1_folder(parent: Path) -> Path:
    """A folder named in Latin-1 bytes under ``parent`` (as Python names it: the bytes as lone surrogates)."""
    folder = Path(os.fsdecode(os.fsencode(parent) + b"/" + LATIN_1_NAME))
    folder.mkdir()
    return folder


# -- 1. a workspace named in bytes that are not UTF-8 --------------------------------------------------------------


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="file names in bytes are a POSIX matter")
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_workspace_named_in_latin_1_is_served_and_shown_with_its_bytes_escaped(mode, tmp_path):
    """The audit: started in a folder named in Latin-1 (holding MASTER_CONTEXT.md) on a UTF-8 system, the server
    never answered ``initialize`` and, once the client gave up, wrote a 57-line traceback and exited 1."""
    workspace = latin_1_folder(tmp_path)
    (workspace / "MASTER_CONTEXT.md").write_text("# brand")
    params = StdioServerParameters(
        command=console_script(), args=["--sandbox"], env=client_env(tmp_path / "home"), cwd=workspace
    )
    async with Client(params, mode=mode, read_timeout_seconds=20, elicitation_callback=answering()) as client:
        instructions = client.instructions or ""
        credits = await client.call_tool("check_credits", {})
        made = await client.call_tool("generate_image", {"prompt": "an apple"})
    shown = str(tmp_path / LATIN_1_SHOWN)
    assert f"{shown}/sandbox" in instructions and f"the workspace {shown}," in instructions, instructions
    assert not credits.is_error, text_of(credits)
    assert f"{shown}/sandbox" in text_of(credits) and credits.structured_content["workspace"] == f"{shown}/sandbox"
    assert "the current folder, which holds MASTER_CONTEXT.md" in text_of(credits)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert f"{shown}/sandbox/outputs/" in text_of(made)  # the saved file, named with the bytes escaped
    saved = list((workspace / "sandbox" / "outputs").rglob("nano-banana-2_*.jpg"))
    assert len(saved) == 1  # ... and saved in the folder itself


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="environment values in bytes are a POSIX matter")
async def test_settings_in_bytes_that_are_not_utf8_are_answered_not_a_hang(tmp_path):
    """The audit: ``KIE_WORKSPACE=b'/tmp/ws_\\xff\\xfe'`` (the instructions name the workspace) and
    ``KIE_MAX_CREDITS_PER_CALL=b'\\xff10'`` (whose problem repeats the value) hung the handshake the same way."""
    workspace = Path(os.fsdecode(os.fsencode(tmp_path) + b"/ws_\xff\xfe"))
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(workspace))
    params = StdioServerParameters(command=console_script(), args=["--sandbox"], env=env)
    async with Client(params, read_timeout_seconds=20) as client:
        credits = await client.call_tool("check_credits", {})
    assert not credits.is_error and f"{tmp_path}/ws_\\xff\\xfe" in text_of(credits), text_of(credits)
    assert await anyio.Path(workspace).is_dir()

    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path), KIE_MAX_CREDITS_PER_CALL=os.fsdecode(b"\xff10"))
    params = StdioServerParameters(command=console_script(), args=["--sandbox"], env=env)
    async with Client(params, read_timeout_seconds=20) as client:
        instructions = client.instructions or ""
        refused = await client.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "an apple"})
    said = '10" is not a number'  # the byte is not repeated as it is (config.py shows it as U+FFFD)
    assert said in instructions and refused.is_error and said in text_of(refused), text_of(refused)
    assert "KIE_MAX_CREDITS_PER_CALL=" in text_of(refused)


async def test_the_instructions_and_check_credits_show_a_latin_1_workspace_with_its_bytes_escaped(
    connect, mode, tmp_path
):
    """In the server itself, before any writer: never text with lone surrogates, which no UTF-8 writer takes."""
    workspace = latin_1_folder(tmp_path)
    async with connect(workspace=workspace, workspace_reason="set by KIE_WORKSPACE") as client:
        instructions = client.instructions or ""
        credits = await client.call_tool("check_credits", {})
    shown = str(tmp_path / LATIN_1_SHOWN)
    assert f"Workspace: {shown}, set by KIE_WORKSPACE." in instructions, ascii(instructions)
    assert credits.structured_content["workspace"] == shown, ascii(credits.structured_content["workspace"])
    assert f"Workspace: {shown} (journal, outputs/ and logs/), set by KIE_WORKSPACE." in text_of(credits), ascii(
        text_of(credits)
    )


def test_every_message_leaves_serialized_once_and_one_with_lone_surrogates_leaves_mended():
    """The wire's writer: a message is serialized where it is sent (the SDK's writer is handed that text), and one
    holding text with lone surrogates, under any file system encoding, is written with those bytes escaped."""
    plain = SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=1, result={"text": "ü"}))
    sent = stdio.written(plain)
    assert sent.message.model_dump_json(**stdio.AS_SENT) == plain.message.model_dump_json(**stdio.AS_SENT)
    assert sent.message.id == 1  # anything else asked of it is the message's own
    broken = SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=2, result={"path": os.fsdecode(b"/w/" + LATIN_1_NAME)}))
    written = stdio.written(broken).message.model_dump_json(**stdio.AS_SENT)
    assert '"path":"/w/proj_\\\\xe9t\\\\xe9"' in written, written


# -- 2. arguments kie-mcp does not take ----------------------------------------------------------------------------


@pytest.mark.stdio
@pytest.mark.parametrize(
    ("arguments", "mode"),
    [
        (["--sandbx"], "auto"),
        (["--sandbox=true"], "legacy"),
        (["mcp"], "auto"),
        (["--stdio"], "legacy"),
        (["--workspace", "/tmp/elsewhere"], "auto"),
    ],
)
async def test_arguments_a_client_passes_that_kie_mcp_does_not_take_are_answered_by_every_tool(
    arguments, mode, tmp_path
):
    """The audit: these exited with argparse's usage (exit 2) and the client showed only "Connection closed". Now
    the server starts, lists its tools, and every tool answers with the arguments to fix, in one line; nothing can
    be spent (the key is set, and it never reaches KIE)."""
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path), KIE_API_KEY="0123456789abcdef0123456789abcdef")
    params = StdioServerParameters(command=console_script(), args=arguments, env=env)
    async with Client(params, mode=mode, read_timeout_seconds=20) as client:
        tools = (await client.list_tools()).tools
        answers = [
            await client.call_tool("check_credits", {}),
            await client.call_tool("generate_image", {"prompt": "an apple"}),
        ]
    assert len(tools) == 10
    for answer in answers:
        text = text_of(answer)
        assert answer.is_error and "\n" not in text, text
        assert "kie-mcp was started with arguments it does not take" in text and arguments[0] in text, text
        assert 'Fix it in the "args" of this MCP server' in text and "nothing was spent" in text, text
    assert not (tmp_path / ".kie-mcp").exists()  # no journal opened, nothing recorded


@pytest.mark.stdio
async def test_a_secret_given_as_an_argument_is_never_repeated(tmp_path):
    """The review: the refusal repeated the arguments, hiding only values shaped like KIE's key, so a 19-character
    key, a base64 secret with slashes, or a short token after --token= came back to the agent and went to the log.
    Only option names and plain words are repeated; every other value reads <not shown>."""
    secrets = ["a1b2c3d4e5f6a7b8c9d", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "sk.0123456789abcdef0123", "hunter"]
    arguments = ["--api-key", secrets[0], "--aws-secret", secrets[1], "--key", secrets[2], "--password", secrets[3]]
    arguments += ["--token=shorty12", "--sandbox=true"]
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path))
    log = tmp_path / "stderr.log"
    with log.open("w") as errors:
        params = StdioServerParameters(command=console_script(), args=arguments, env=env)
        async with Client(stdio_client(params, errlog=errors), read_timeout_seconds=20) as client:
            answer = text_of(await client.call_tool("check_credits", {}))
            instructions = client.instructions or ""
    said = answer + instructions + log.read_text()
    assert "--api-key <not shown> --aws-secret <not shown> --key <not shown> --password <not shown>" in answer, answer
    assert "--token=<not shown> --sandbox=true" in answer, answer
    assert [secret for secret in [*secrets, "shorty12"] if secret in said] == []


@pytest.mark.stdio
async def test_a_secret_written_on_to_a_short_option_is_never_repeated_and_only_the_option_is_named(tmp_path):
    """The review: ``-kabcdefghijklmnop`` in a client's args came back in every tool's answer whole, as an option of
    that name ("-kabcdefghijklmnop is not an option"): argparse reads a short option's value written on to it, so it
    is ``-k`` and a secret. Only ``-k`` is named; the value reads <not shown>, and is redacted from every answer after
    (here the name of an unknown tool repeating it)."""
    secret = "abcdefghijklmnop"
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path))
    log = tmp_path / "stderr.log"
    with log.open("w") as errors:
        params = StdioServerParameters(command=console_script(), args=["-k" + secret], env=env)
        async with Client(stdio_client(params, errlog=errors), read_timeout_seconds=20) as client:
            answer = text_of(await client.call_tool("check_credits", {}))
            echoed = text_of(await client.call_tool("run-" + secret, {}))
            instructions = client.instructions or ""
    assert '"-k<not shown>". -k is not an option: set KIE_API_KEY instead.' in answer, answer
    assert echoed == "Unknown tool: run-[redacted]", echoed
    assert secret not in answer + echoed + instructions + log.read_text()


@pytest.mark.stdio
async def test_stdio_is_another_name_for_serving(tmp_path):
    """Many servers' snippets say ``stdio``; kie-mcp took it for an unknown command and exited."""
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path))
    async with Client(StdioServerParameters(command=console_script(), args=["stdio", "--sandbox"], env=env)) as client:
        credits = await client.call_tool("check_credits", {})
    assert not credits.is_error and credits.structured_content["sandbox"] is True, text_of(credits)


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is a POSIX matter")
@pytest.mark.parametrize("arguments", [["--sandbx"], ["mcp"], ["sim", "--port", "http"]])
def test_in_a_terminal_arguments_kie_mcp_does_not_take_still_get_the_usage_and_exit_2(arguments, tmp_path):
    """A person typing it gets argparse's answer at once, not a server waiting on stdin."""
    done = _typed(arguments, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("usage: kie-mcp") and "kie-mcp" in done.stderr.splitlines()[-1], done.stderr


def _typed(arguments: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script run with ``arguments`` as a person types it: stdin a terminal."""
    terminal, other_end = os.openpty()
    try:
        return subprocess.run(
            [console_script(), *arguments],
            check=False,
            stdin=other_end,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], **client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path / "ws"))},
        )
    finally:
        os.close(terminal)
        os.close(other_end)


WHERE_SETTINGS_GO = "Settings go in the environment or the workspace's .env file"
OPTIONS_NAMED = [
    (["--workspace", "/x"], "--workspace is not an option: set KIE_WORKSPACE instead."),
    (["--workspace=/x", "mcp"], "--workspace is not an option: set KIE_WORKSPACE instead."),
    (["--log-level", "DEBUG"], "--log-level is not an option: set KIE_LOG_LEVEL instead."),
    (["--port", "8080"], "--port is not an option."),
    (["--sandbox=true"], "--sandbox takes no value: write --sandbox alone."),
    (["serve", "--sandbox=1"], "--sandbox takes no value: write --sandbox alone."),
]


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is a POSIX matter")
@pytest.mark.parametrize(("arguments", "named"), OPTIONS_NAMED, ids=[" ".join(a) for a, _ in OPTIONS_NAMED])
def test_in_a_terminal_an_option_kie_mcp_does_not_take_is_named_with_the_setting_it_stands_for(
    arguments, named, tmp_path
):
    """The journey: ``kie-mcp --workspace /x`` said only "argument COMMAND: invalid choice: '/x' (choose from ...)",
    blaming the value, and ``kie-mcp --sandbox=true`` "argument --sandbox: ignored explicit argument 'true'", with no
    word of where settings go, which only "unrecognized arguments" (``--sandbx``) got. argparse's reason stands; the
    option is named, with its setting when it has one, and where settings go follows."""
    done = _typed(arguments, tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("usage: kie-mcp"), done.stderr
    reason = done.stderr.splitlines()[-1]
    assert f". {named} {WHERE_SETTINGS_GO}" in reason, reason


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["catalog", "--workspace", "/x"], "--workspace is not an option: set KIE_WORKSPACE instead."),
        (["demo", "--keep=yes"], "--keep takes no value: write --keep alone."),
    ],
)
def test_another_command_names_an_option_it_does_not_take_with_the_setting_it_stands_for(arguments, named, tmp_path):
    """The same for demo, sim and catalog, refused in a terminal or not: ``catalog --workspace /x`` said "argument
    ACTION: invalid choice: '/x'", ``demo --keep=yes`` "ignored explicit argument 'yes'", and nothing more."""
    done = _refused(arguments, tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("usage: kie-mcp"), done.stderr
    assert f". {named} {WHERE_SETTINGS_GO}" in done.stderr, done.stderr


@pytest.mark.stdio
async def test_every_tool_names_an_option_a_client_passes_with_the_setting_it_stands_for(tmp_path):
    """The journey: a client started with ``--log-level DEBUG --workspace /x`` got "arguments it does not take" and
    where settings go, naming KIE_WORKSPACE and KIE_API_KEY only; each option is named with its setting now."""
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path))
    arguments = ["--log-level", "DEBUG", "--workspace", "/x"]
    async with Client(StdioServerParameters(command=console_script(), args=arguments, env=env)) as client:
        answer = text_of(await client.call_tool("check_credits", {}))
    named = "--log-level is not an option: set KIE_LOG_LEVEL instead. --workspace is not an option: set KIE_WORKSPACE"
    assert f'"--log-level DEBUG --workspace <not shown>". {named} instead.' in answer, answer


KEY = "0123456789abcdef0123456789abcdef"  # shaped like KIE's key
# Other services' tokens, shaped as they publish them (no hex run a KIE key's length in them)
GROQ = "gsk_" + "Wq7Zt3Ry" * 6 + "Mn4P"  # gsk_ and 52 letters and digits
REPLICATE = "r8_" + "Vx2Kp9Ls" * 4 + "Hj5Qw"  # r8_ and 37
XAI = "xai-" + "Zr8Tq2Wn" * 10  # xai- and 80
BASE64_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # no key's shape: known only by its option's name
REFUSED_WITH_A_SECRET = [
    (["--api-key=" + KEY], KEY),
    (["--api-key", BASE64_SECRET], BASE64_SECRET),
    (["-e", "KIE_API_KEY=" + KEY], KEY),
    (["--password", "hunter2"], "hunter2"),
    ([KEY], KEY),
    (["--sa=" + KEY], KEY),
    (["catalog", "sync", "--key", KEY], KEY),
    (["catalog", "check", "--token=" + BASE64_SECRET], BASE64_SECRET),
    (["demo", "--token", KEY], KEY),
    (["sim", "--port", KEY], KEY),
    # The review: a key inside a larger argument, and a value of no secret's name or shape, that argparse repeated.
    (["demo", "--header", "Authorization: Bearer " + KEY], KEY),
    (["sim", "KIE_API_KEY: " + KEY], KEY),
    (["catalog", "sync", "--env", '{"KIE_API_KEY":"' + KEY + '"}'], KEY),
    (["demo", "-k", "short.pass"], "short.pass"),
    # The review: a short secret option with its value written on to it (argparse's -kVALUE) was taken for an option
    # of that name, named in full ("-kHunterPassword is not an option") and repeated by argparse's own words.
    (["-kHunterPassword"], "HunterPassword"),
    (["-kabcdefghijklmnop"], "abcdefghijklmnop"),
    (["demo", "-khunter.pass"], "hunter.pass"),
    (["demo", "Authorization:", "Bearer", "sk.live.abc"], "sk.live.abc"),
    # One shape of a key for the whole command line (redact.key_shaped_parts): inside a word of other characters too,
    # and in capitals.
    (["sim", "--port", "kie_" + KEY], KEY),
    (["demo", "--header", "x-kie-" + KEY.upper() + ".txt"], KEY.upper()),
    # Another service's token pasted where KIE's key goes: no KIE key's shape, known by its published prefix.
    (["demo", "ghp_" + "Ab1" * 12], "ghp_" + "Ab1" * 12),
    # The review: tokens of services no list here knows (Groq, Replicate, xAI) were printed whole by a refusal; any
    # run that could be a credential (20+ letters, digits, "_" and "-", letters and digits both) reads <not shown>.
    (["demo", GROQ], GROQ),
    (["sim", "--port", REPLICATE], REPLICATE),
    (["catalog", "check", XAI], XAI),
    (["demo", "--header", "x-groq:" + GROQ + ";"], GROQ),
]


@pytest.mark.stdio
@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is a POSIX matter")
@pytest.mark.parametrize("typed", [True, False], ids=["in-a-terminal", "piped"])
@pytest.mark.parametrize(
    ("arguments", "secret"), REFUSED_WITH_A_SECRET, ids=[" ".join(a)[:24] for a, _ in REFUSED_WITH_A_SECRET]
)
def test_a_refused_command_line_never_prints_a_secret_given_in_it(arguments, secret, typed, tmp_path):
    """The audit: typed in a terminal (and for demo, sim and catalog always), argparse's refusal repeated the values
    it refused, so ``kie-mcp --api-key=<key>``, ``kie-mcp -e KIE_API_KEY=<key>`` or ``kie-mcp catalog sync --key
    <key>`` printed the key, while the README promises a secret-named option's value reads <not shown>; so did a key
    inside a larger argument (``demo --header "Authorization: Bearer <key>"``) and any value it repeated that the
    arguments shown hide (``demo -k short.pass``). The installed console script, in a terminal or not, never prints
    it; in a terminal (or for another command) it still gives its usage and exit code 2, and says where settings
    go."""
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path / "ws"))
    terminal, other_end = os.openpty() if typed else (None, None)
    try:
        done = subprocess.run(
            [console_script(), *arguments],
            check=False,
            stdin=other_end if typed else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], **env},
        )
    finally:
        for fd in (terminal, other_end):
            if fd is not None:
                os.close(fd)
    said = done.stdout + done.stderr
    assert secret not in said and secret[:12] not in said, said
    if typed or arguments[0] in ("catalog", "demo", "sim"):  # a person: the usage, the arguments, the fix
        assert done.returncode == 2 and done.stderr.startswith("usage: kie-mcp"), said
        assert "<not shown>" in done.stderr or "[redacted]" in done.stderr, said  # named as hidden, or redacted
        assert "Settings go in the environment" in done.stderr, said
    else:  # a client's configuration: it serves, and says so in the log (and every tool answers with it)
        assert done.returncode == 0 and "kie-mcp was started with arguments it does not take" in said, said


FOLDER_NAME = "ClientProjects2025SummerCampaignFinal"  # letters and digits, 37 long: a name, as config.py knows
TYPOS = [
    (["sim", "--port", "80a"], "argument --port: '80a' is not a whole number"),
    (["sim", "--speed", "0.5.1"], "argument --speed: '0.5.1' is not a number"),
    (["sim", "--balance", "1,000"], "argument --balance: '1,000' is not a number"),
    (["sim", "--port", "8080", "extra/path.txt"], "unrecognized arguments: extra/path.txt"),
    (["sim", "--port", "Marketing_Campaign"], "argument --port: 'Marketing_Campaign' is not a whole number"),
    # --keep one dash short: a typo named as it was typed, never "-k<not shown>" and advice to set KIE_API_KEY
    (["demo", "-keep"], "unrecognized arguments: -keep"),
    (["demo", "-kee"], "unrecognized arguments: -kee"),
]


def _refused(arguments: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script run with ``arguments`` and no terminal, as a refusal: what it said, its code."""
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path / "ws"))
    return subprocess.run(
        [console_script(), *arguments],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], **env},
    )


@pytest.mark.parametrize(("arguments", "reason"), TYPOS, ids=[" ".join(a) for a, _ in TYPOS])
def test_a_typo_on_the_command_line_is_refused_with_argparses_reason(arguments, reason, tmp_path):
    """The review: every refused value that was not a plain word (``80a``, ``0.5.1``, ``1,000``, a path) was hidden,
    so ``kie-mcp sim --port 80a`` said only "arguments it cannot use: sim --port <not shown>". Only what could be a
    secret is hidden now (the cases above and below); an ordinary typo gets argparse's own reason."""
    done = _refused(arguments, tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("usage: kie-mcp"), done.stderr
    assert reason in done.stderr and "<not shown>" not in done.stderr, done.stderr


MAY_BE_CREDENTIALS = [
    (["sim", "--port", "Marketing_Campaign_2025"], "argument --port: '<not shown>' is not a whole number"),
    (["demo", FOLDER_NAME], "unrecognized arguments: <not shown>"),
    (["sim", "--port", GROQ], "argument --port: '<not shown>' is not a whole number"),
    (["catalog", "sync", "extra", XAI], "unrecognized arguments: extra <not shown>"),
]


@pytest.mark.parametrize(
    ("arguments", "reason"), MAY_BE_CREDENTIALS, ids=[" ".join(a)[:32] for a, _ in MAY_BE_CREDENTIALS]
)
def test_a_refusal_hides_every_run_that_could_be_a_credential_in_argparses_own_words(arguments, reason, tmp_path):
    """The review: a refusal printed other services' tokens whole (``kie-mcp demo gsk_...``: Groq; ``r8_...``:
    Replicate; ``xai-...``), where before it printed <not shown>: only KIE's key shape and the prefixes redact knows
    were hidden. A refusal exits at once, so hiding a name costs only its echo, and echoing a token leaks it into a
    terminal's scrollback or a CI log: every run of 20 or more letters, digits, "_" and "-" holding letters and
    digits both reads <not shown>, a long name such as ``Marketing_Campaign_2025`` too, in argparse's own words (its
    reason kept), with where settings go. A server that goes on serving keeps such a name readable (below)."""
    done = _refused(arguments, tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("usage: kie-mcp"), done.stderr
    assert reason + ". Settings go in the environment" in done.stderr, done.stderr
    assert arguments[-1] not in done.stderr and arguments[-1][:12] not in done.stderr, done.stderr


@pytest.mark.stdio
async def test_arguments_a_server_refuses_hide_no_ordinary_word_from_its_answers(tmp_path):
    """The review: a client started with arguments kie-mcp does not take registered every run of 20 or more letters
    and digits in them as a secret for the whole process, so ``--campaign Marketing_Campaign_2025`` had that name
    redacted from everything the server said after, the workspace named after it too. Only secret-named values and
    runs shaped like KIE's key are secrets: the workspace is named, the key given as an argument still is not."""
    workspace = tmp_path / "Marketing_Campaign_2025"
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(workspace))
    arguments = ["--campaign", "Marketing_Campaign_2025", "--config", "0123456789abcdef0123456789abcdef"]
    params = StdioServerParameters(command=console_script(), args=arguments, env=env)
    async with Client(params, read_timeout_seconds=20) as client:
        said = text_of(await client.call_tool("check_credits", {})) + (client.instructions or "")
    assert "kie-mcp was started with arguments it does not take" in said, said
    assert str(workspace) in said and "0123456789abcdef0123456789abcdef" not in said, said


@pytest.mark.stdio
async def test_a_key_inside_a_longer_argument_a_server_refuses_is_redacted_from_its_answers(tmp_path):
    """The unification: a server that goes on serving took as a secret only an argument's run of letters, digits,
    "_" and "-" that was KIE's key whole, so the key in ``--config kie_<key>`` was not one, and an answer naming it
    (an unknown tool's name here) repeated it. The key is found inside the word, as a refusal in a terminal finds it,
    and redacted from every answer after."""
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(tmp_path / "ws"))
    params = StdioServerParameters(command=console_script(), args=["--config", "kie_" + KEY], env=env)
    async with Client(params, read_timeout_seconds=20) as client:
        said = text_of(await client.call_tool("run-" + KEY, {}))
    assert said == "Unknown tool: run-[redacted]", said


# -- 3. check_credits and the instructions without KIE's answer ----------------------------------------------------


async def credits_and_schema(client: Client) -> tuple[Any, dict[str, Any]]:
    """check_credits' answer and its published output schema."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    return await client.call_tool("check_credits", {}), tools["check_credits"].output_schema or {}


def assert_local_facts(answer: Any, schema: dict[str, Any], workspace: Path, reason: str) -> None:
    """What check_credits says without the balance: the workspace and why, caps, today's spend; valid data."""
    text, data = text_of(answer), answer.structured_content
    assert answer.is_error and text.startswith("Balance unavailable: "), text
    assert f"Workspace: {workspace} (journal, outputs/ and logs/), {reason}" in text, text
    assert "Caps: 600 credits per call, 3000 per day." in text and "Spent today through kie-mcp: 0 credits." in text, (
        text
    )
    assert data["balance_credits"] is None and data["balance_problem"] and data["workspace"] == str(workspace)
    assert data["workspace_reason"] == reason and data["max_credits_per_call"] == 600 and data["spent_today"] == 0
    validator_for(schema)(schema).validate(data)


async def test_check_credits_with_a_key_kie_refuses_still_names_the_workspace_caps_and_spend(connect, mode, tmp_path):
    """The audit: a wrong key (401) made check_credits a bare error, with no workspace, caps or today's spend,
    while the README's troubleshooting says check_credits names the workspace."""
    reason = "the per-user data folder (set KIE_WORKSPACE to choose another)"
    async with connect(api_key=SecretStr("your-key"), workspace_reason=reason) as client:
        answer, schema = await credits_and_schema(client)
    assert_local_facts(answer, schema, tmp_path, reason)
    assert "401" in answer.structured_content["balance_problem"] and "KIE_API_KEY" in text_of(answer)


async def test_check_credits_with_kie_out_of_reach_still_names_the_workspace_caps_and_spend(settings, mode, tmp_path):
    """Nothing listens where KIE_BASE_URL points (the network down, a proxy gone)."""
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = replace(settings, base_url=closed, upload_base_url=closed, workspace_reason="set by KIE_WORKSPACE")
    async with Client(create_server(unreachable), mode=mode) as client:
        answer, schema = await credits_and_schema(client)
    assert_local_facts(answer, schema, tmp_path, "set by KIE_WORKSPACE")
    assert "network" in answer.structured_content["balance_problem"]


async def test_check_credits_without_a_key_still_names_the_workspace_caps_and_spend(connect, mode, tmp_path):
    async with connect(api_key=None, workspace_reason="set by KIE_WORKSPACE") as client:
        answer, schema = await credits_and_schema(client)
    assert_local_facts(answer, schema, tmp_path, "set by KIE_WORKSPACE")
    assert "KIE_API_KEY is not set" in answer.structured_content["balance_problem"]


async def test_the_instructions_say_a_workspace_named_by_a_typo_was_made_now_and_empty(
    settings, transport, mode, tmp_path
):
    """The audit: KIE_WORKSPACE=myproj2 (relative, and not there) made a new, empty folder; only the start-up line on
    stderr said so, which no agent reads. The instructions and check_credits say why that workspace, too."""
    start = tmp_path / "start"
    start.mkdir()
    loaded = Settings.load({"KIE_WORKSPACE": "myproj2"}, cwd=start)
    assert loaded.config_error is None
    ours = replace(settings, workspace=loaded.workspace, workspace_reason=loaded.workspace_reason)
    async with Client(create_server(ours, transport=transport), mode=mode) as client:
        instructions = client.instructions or ""
        credits = await client.call_tool("check_credits", {})
    said = f"Workspace: {start / 'myproj2'}, set by KIE_WORKSPACE, a relative path read from {start}; it did not exist"
    assert said in instructions and "if that is a typo, fix KIE_WORKSPACE" in instructions, instructions
    assert not credits.is_error and "it did not exist and is made now, empty" in text_of(credits), text_of(credits)
