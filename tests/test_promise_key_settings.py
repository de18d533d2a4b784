"""Promises about the key setting, through the SDK ``Client`` over the simulator: a key of another service, or the
example a guide writes, is a broken setting caught before anything is sent; a key KIE refuses is said with where it
came from (and the other key it shadows), never shown; a value pasted with its own name says "paste only the value";
a folder given as a ``file://`` URI is the folder it names.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from PIL import Image

from kie_mcp.config import ENV_BLOCK, Settings
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport
from kie_mcp.server import create_server

from .conftest import answering, eras_in_turn, one_era_each, text_of
from .test_promise_config import console_script
from .test_promise_start import client_env

ROOT = Path(__file__).resolve().parents[1]
APPLE = {"prompt": "a red apple on a wooden table", "model": "nano-banana-2"}
PASTED = secrets.token_hex(16)  # a key of this run's own: never one another test's text holds
MIXED = "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv"  # random-looking letters in both cases, as GitHub's and HF's tokens have


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """One era per test (``conftest.one_era_each``): these are the settings' own rules, not the protocol's."""
    return one_era_each(request)


def loaded(env: dict[str, str], cwd: Path) -> Settings:
    """``Settings.load`` as the server starts with, pointed at the simulator."""
    return replace(Settings.load(env, cwd=cwd), base_url="http://api.kie.test", catalog_sync=False)


async def answers(settings: Settings, transport: SandboxTransport, mode: str) -> tuple[list[object], str]:
    """check_credits, an estimate and a generation (the form accepted) of a server with ``settings``: the answers,
    and all their text with the instructions."""
    server = create_server(settings, transport=transport)
    async with Client(server, mode=mode, elicitation_callback=answering()) as client:
        results = [
            await client.call_tool("check_credits", {}),
            await client.call_tool("estimate_cost", APPLE),
            await client.call_tool("generate_image", APPLE),
        ]
        instructions = client.instructions or ""
    return results, "\n".join([instructions, *(text_of(result) for result in results)])


# -- another service's token where KIE's key goes --------------------------------------------------------------------

OTHER_SERVICES = [
    ("ghp_" + MIXED + "wx", "a GitHub token"),
    ("github_pat_" + "A1b2C3d4E5" * 8 + "xy", "a GitHub token"),
    ("xoxb-5550001234-" + MIXED[:24], "a Slack token"),  # no run of 16 shared with test_redaction's tokens
    ("AIza" + "Sy" + MIXED + "z", "a Google API key"),
    ("hf_" + MIXED + "xyz", "a Hugging Face token"),
    ("sk-proj-" + MIXED, "an OpenAI-style key"),
    ("sk_live_" + MIXED, "another service's secret key"),
]


@eras_in_turn(
    ("token", "service"),
    OTHER_SERVICES,
    ids=["github", "github-fine-grained", "slack", "google", "hugging-face", "openai", "stripe"],
)
async def test_another_services_token_as_the_key_is_a_broken_setting_and_never_sent(
    token, service, transport, controls, mode, tmp_path
):
    """The audit: a GitHub token pasted as KIE_API_KEY was sent to KIE as the Bearer token, handing another service's
    secret to a third party. It is named for what it looks like, and nothing at all reaches KIE with it (or at all)."""
    (tmp_path / ".env").write_text(f"KIE_API_KEY={token}\n")
    settings = loaded({"KIE_WORKSPACE": str(tmp_path)}, tmp_path)
    results, seen = await answers(settings, transport, mode)
    assert all(result.is_error for result in results), seen
    assert f"KIE_API_KEY looks like {service}" in seen and "not a KIE API key" in seen, seen
    assert "https://kie.ai/api-key" in seen and f"Fix it in {tmp_path / '.env'}" in seen, seen
    assert token not in seen and token[:12] not in seen
    assert (await controls.get("requests"))["requests"] == []  # nothing reached the simulator, with it or without
    # Only the positive shapes of other services' tokens are refused: KIE's keys, the simulator's and the tests'
    # keys, a proxy's own key, a word that only begins like a token, all load and are used.
    for key in keys_to_keep():
        kept = Settings.load({"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": key}, cwd=tmp_path)
        assert kept.config_error is None, (key, kept.config_error)
        assert kept.api_key is not None and kept.api_key.get_secret_value() == key


def keys_to_keep() -> tuple[str, ...]:
    """Keys that must load and be used: each made for this run (every key loaded is registered for redaction in this
    process, and a word registered so would be redacted from every later test's text)."""
    fresh = secrets.token_hex(16)
    return (
        fresh.upper()[:16] + fresh[16:],  # KIE's shape: 32 hex digits, in either case
        SANDBOX_API_KEY,
        "k",  # the tests' key
        f"kie_test_{fresh[:12].upper()}",
        f"sk-short-{fresh[:6]}",  # "sk-" and too short for an OpenAI-style key
        f"hf_{fresh}",  # one case only: no token
        f"xoxo-forever-{fresh[:8]}",  # Slack's prefix without its groups of digits
        f"ghp_{fresh}{fresh[:4]}",  # GitHub's prefix, one case only
        f"my-proxy-key-{fresh[:8]}",
    )


# -- the example a guide writes where the key goes ------------------------------------------------------------------


def readme_keys() -> list[str]:
    """Every value the README's snippets (its fenced blocks) write for KIE_API_KEY, and MASTER_CONTEXT.md's."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", readme, re.DOTALL))
    master = (ROOT / "MASTER_CONTEXT.md").read_text(encoding="utf-8")
    found = re.findall(r"KIE_API_KEY[\"']?\s*[:=]\s*[\"']?([^\"'\s,`]+)", blocks + "\n" + master)
    assert "your-key" in found and "..." in found, found
    return sorted(set(found))


EXAMPLES = [*readme_keys(), "your-kie-api-key", "YOUR_API_KEY", "<your key>", "<KIE_API_KEY>", "xxxx-xxxx-xxxx"]


@eras_in_turn("example", EXAMPLES)
async def test_the_example_a_guide_writes_for_the_key_is_an_unfilled_placeholder_never_sent(
    example, transport, controls, mode, tmp_path
):
    """The audit: the README's "your-key", pasted as it is, was sent to KIE as the key (and answered 401, "missing
    or wrong"). Each example a guide writes where the key goes (the README's snippets, KIE's docs' YOUR_API_KEY,
    "<your key>", "xxxx") is a placeholder nothing filled in: said so, nothing sent. What to do keeps the key out of
    project files, as the README says: the environment the client starts from, the workspace's .env (git-ignored)
    or the client's configuration in the user's profile; never "write the key itself" where the placeholder was,
    which was often .vscode/mcp.json."""
    env = {"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": example}
    results, seen = await answers(loaded(env, tmp_path), transport, mode)
    assert all(result.is_error for result in results), seen
    assert "KIE_API_KEY holds" in seen and "nothing filled in" in seen, seen
    assert "Export KIE_API_KEY in the environment the client is started from" in seen, seen
    assert "the workspace's .env (with .env in the workspace's .gitignore)" in seen, seen
    assert "in the client's configuration in your user profile" in seen and "Keep the key itself out of" in seen
    assert "Write the key itself in its place" not in seen
    assert (await controls.get("requests"))["requests"] == []


# -- a key KIE refuses: where it came from ------------------------------------------------------------------------


async def test_a_key_kie_refuses_is_said_with_where_it_came_from_and_the_key_it_shadows(transport, mode, tmp_path):
    """The audit: a 401 always said "missing or wrong. Set KIE_API_KEY", while the key in use came from the client's
    env block and shadowed a different (right) key in the workspace's .env the user kept editing. Every refusal of
    the key says where it came from, and that the other is not used; neither key, nor any part of one, is shown."""
    in_use, shadowed = secrets.token_hex(16), secrets.token_hex(16)
    (tmp_path / ".env").write_text(f"KIE_API_KEY={shadowed}\n")
    settings = loaded({"KIE_WORKSPACE": str(tmp_path), "KIE_API_KEY": in_use}, tmp_path)
    server = create_server(replace(settings, upload_base_url="http://upload.kie.test"), transport=transport)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "shot.png")
    async with Client(server, mode=mode, elicitation_callback=answering()) as client:
        results = [
            await client.call_tool("check_credits", {}),
            await client.call_tool("generate_image", APPLE),
            await client.call_tool("upload_file", {"path": "shot.png"}),
        ]
    for result in results:
        said = text_of(result)
        assert result.is_error and "401" in said, said
        assert f"The API key in use comes from {ENV_BLOCK}" in said, said
        assert f"the different KIE_API_KEY in {tmp_path / '.env'} is not used: the environment wins" in said, said
        assert in_use[:8] not in said and shadowed[:8] not in said, said


async def test_a_key_from_a_dotenv_that_kie_refuses_names_that_dotenv(transport, mode, tmp_path):
    key = secrets.token_hex(16)
    (tmp_path / ".env").write_text(f"KIE_API_KEY={key}\n")
    server = create_server(loaded({"KIE_WORKSPACE": str(tmp_path)}, tmp_path), transport=transport)
    async with Client(server, mode=mode) as client:
        said = text_of(await client.call_tool("check_credits", {}))
    assert f"The API key in use comes from {tmp_path / '.env'}. Put a valid key there" in said, said
    assert "not used" not in said and key[:8] not in said


def test_catalog_check_with_a_key_kie_refuses_says_where_it_came_from(transport, monkeypatch, capsys, tmp_path):
    from kie_mcp.cli import _catalog_check

    key = secrets.token_hex(16)
    monkeypatch.setenv("KIE_API_KEY", key)
    monkeypatch.setenv("KIE_WORKSPACE", str(tmp_path))
    assert _catalog_check(transport=transport) == 2
    err = capsys.readouterr().err
    assert "401" in err and f"The API key in use comes from {ENV_BLOCK}" in err, err
    assert key[:8] not in err


# -- a value pasted with its own name -----------------------------------------------------------------------------


@eras_in_turn(
    ("name", "value"),
    [
        ("KIE_API_KEY", "KIE_API_KEY=" + PASTED),
        ("KIE_WORKSPACE", "KIE_WORKSPACE=elsewhere"),
        ("KIE_MAX_CREDITS_PER_DAY", "KIE_MAX_CREDITS_PER_DAY=50"),
        ("KIE_DOWNLOAD", "KIE_DOWNLOAD=never"),
    ],
    ids=["key", "workspace", "cap", "download"],
)
async def test_a_value_pasted_with_its_own_name_says_paste_only_the_value(
    name, value, transport, controls, mode, tmp_path, monkeypatch
):
    """The audit: KIE_API_KEY=KIE_API_KEY=<key> in an env block (the whole line pasted into the value field) was said
    to be a missing line break in a .env; KIE_WORKSPACE=KIE_WORKSPACE=elsewhere made a folder named so. Each says to
    paste only the value, where it was written; the key is never shown and nothing is sent."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the per-user folder that stands in stays in the test
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    start = tmp_path / "start"
    start.mkdir()
    env = {"KIE_WORKSPACE": str(tmp_path / "project"), "KIE_API_KEY": SANDBOX_API_KEY, name: value}
    results, seen = await answers(loaded(env, start), transport, mode)
    assert all(result.is_error for result in results), seen
    assert f"The value of {name} starts with the name {name} and = again" in seen, seen
    assert "Paste only the" in seen and "line break" not in seen, seen
    assert PASTED[:8] not in seen
    assert not list(start.iterdir())  # no folder named "KIE_WORKSPACE=elsewhere"
    assert (await controls.get("requests"))["requests"] == []


# -- a folder given as a file:// URI ------------------------------------------------------------------------------


async def test_a_workspace_and_allowed_folders_given_as_file_uris_are_the_folders_they_name(
    transport, mode, tmp_path, monkeypatch
):
    """The audit: KIE_WORKSPACE=file:///path (as a file manager copies a folder, and as kie-mcp's own answers link
    one) made a folder named "file:" in the current folder. A file:// URI names its folder, escapes decoded; in
    KIE_ALLOWED_DIRS too, where its colon separates nothing."""
    start = tmp_path / "start"
    start.mkdir()
    monkeypatch.chdir(start)
    project, photos = tmp_path / "My Project", tmp_path / "photos"
    project.mkdir()
    photos.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(photos / "shot.png")
    env = {
        "KIE_WORKSPACE": project.as_uri(),
        "KIE_ALLOWED_DIRS": f"{photos.as_uri()}:file://localhost{tmp_path / 'none'}",
        "KIE_API_KEY": SANDBOX_API_KEY,
    }
    settings = replace(loaded(env, start), upload_base_url="http://upload.kie.test")
    assert settings.config_error is None, settings.config_error
    async with Client(create_server(settings, transport=transport), mode=mode) as client:
        credits = await client.call_tool("check_credits", {})
        uploaded = await client.call_tool("upload_file", {"path": str(photos / "shot.png")})
    assert f"Workspace: {project} (journal, outputs/ and logs/), set by KIE_WORKSPACE" in text_of(credits)
    assert not uploaded.is_error, text_of(uploaded)
    assert not list(start.iterdir())  # no folder named "file:"


async def test_a_file_uri_of_another_machine_is_a_broken_setting_and_makes_no_folder(
    transport, mode, tmp_path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the per-user folder that stands in stays in the test
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    start = tmp_path / "start"
    start.mkdir()
    env = {"KIE_WORKSPACE": "file://nas.local/share/proj", "KIE_API_KEY": SANDBOX_API_KEY}
    settings = loaded(env, start)
    async with Client(create_server(settings, transport=transport), mode=mode) as client:
        said = text_of(await client.call_tool("check_credits", {}))
    assert 'names a folder on another machine ("nas.local")' in said, said
    assert not list(start.iterdir())


@pytest.mark.parametrize("uri", ["file://", "file:///", "file://localhost", "FILE://localhost/"])
async def test_a_file_uri_naming_no_folder_is_a_broken_setting_not_the_current_folder(
    transport, mode, tmp_path, monkeypatch, uri
):
    """The review: KIE_WORKSPACE=file:// (or file://localhost) read as an empty path, so the workspace silently became
    the folder the server was started in. It names no folder: a broken setting, said by every tool."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    start = tmp_path / "start"
    start.mkdir()
    settings = loaded({"KIE_WORKSPACE": uri, "KIE_API_KEY": SANDBOX_API_KEY}, start)
    async with Client(create_server(settings, transport=transport), mode=mode) as client:
        said = text_of(await client.call_tool("check_credits", {}))
    assert "names no folder" in said, said
    assert not list(start.iterdir())


# -- under --sandbox, a key that could not be sent stops nothing ---------------------------------------------------


@pytest.mark.stdio
async def test_the_snippets_example_key_under_sandbox_leaves_the_sandbox_working_and_says_so(tmp_path):
    """The README says to add --sandbox to a snippet to try everything first; the snippet's "your-key" (or another
    service's token, or an unfilled ${env:KIE_API_KEY}) is never sent by the sandbox, which has its own key: the
    sandbox works (as it did before such a key was refused), and check_credits says what the key would do without
    --sandbox."""
    project = tmp_path / "project"
    project.mkdir()
    env = client_env(tmp_path / "home", KIE_WORKSPACE=str(project), KIE_API_KEY="your-key")
    params = StdioServerParameters(command=console_script(), args=["--sandbox"], env=env, cwd=tmp_path)
    async with Client(params, read_timeout_seconds=60) as client:
        credits = await client.call_tool("check_credits", {})
    said = text_of(credits)
    assert not credits.is_error and "[sandbox] Balance" in said, said
    assert "KIE_API_KEY (in the client's env block) is not used under --sandbox" in said, said
    assert 'KIE_API_KEY holds "your-key", the example a guide writes' in said, said
