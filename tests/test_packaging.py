"""What publishing and installing rely on tells the truth.

The versions in pyproject.toml, server.json, the bundle manifest and the changelog agree; the MCP registry entry
names the server the README's ``mcp-name`` marker names and only settings the server really reads, with their
real defaults; ``.env.example`` documents every setting with its real default and configures no key when
copied; and the install path the README leads with (``uv tool install`` of a checkout, or ``uvx --from`` it)
gives a ``kie-mcp`` command that starts and serves over stdio.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from kie_mcp import __version__, config
from kie_mcp.config import Settings, read_dotenv

ROOT = Path(__file__).resolve().parent.parent
REGISTRY_SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
HOME = "https://github.com/kie-mcp/kie-mcp"
NOT_DEFAULTS = {"KIE_API_KEY", "KIE_WORKSPACE", "KIE_ALLOWED_DIRS"}  # examples or secrets, not default values


def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def server_json() -> dict:
    return json.loads((ROOT / "server.json").read_text(encoding="utf-8"))


def manifest() -> dict:
    return json.loads((ROOT / "mcpb" / "manifest.json").read_text(encoding="utf-8"))


def settings_read_from(env: dict[str, str], workspace: Path) -> Settings:
    """Settings from exactly ``env`` (no process environment), in a workspace without a .env file."""
    return Settings.from_env({"KIE_WORKSPACE": str(workspace), **env}, cwd=workspace)


def variables_named_in_config() -> set[str]:
    """Every KIE_ name config.py quotes, but those it names only to leave alone or to recognise (this project's other
    tools', other KIE tools' prefixes)."""
    named = set(re.findall(r'"(KIE_[A-Z_]+)"', Path(config.__file__).read_text(encoding="utf-8")))
    return named - {*config.OTHER_TOOLS_SETTINGS, *config.OTHER_TOOLS_PREFIXES, *config.OTHER_KIE_TOOLS}


def uv_offline_first(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run uv from its cache (UV_OFFLINE=1); only when the cache lacks something, let it fetch from the index."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")

    def run(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [uv, *args], env={**env, **extra}, capture_output=True, text=True, timeout=300, check=False
        )

    done = run({"UV_OFFLINE": "1"})
    if done.returncode != 0 and "network was disabled" in done.stderr:
        done = run({"UV_OFFLINE": "0"})
    assert done.returncode == 0, f"uv {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done


# --- versions and project metadata -------------------------------------------------------------------------


def test_a_checkout_run_with_uvx_is_rebuilt_when_any_file_the_wheel_ships_changes():
    """``uvx --from <checkout>`` reuses its build while uv's cache keys are unchanged: a file the wheel carries that
    no key watches (references/README.md was one) stayed stale after a pull."""
    keys = [entry["file"] for entry in pyproject()["tool"]["uv"]["cache-keys"]]
    watched = {Path(found) for key in keys for found in glob.glob(key, root_dir=ROOT, recursive=True)}
    wheel = pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]
    shipped = ["src", *wheel.get("force-include", {})]  # the package, and what is copied into it
    files = [
        found.relative_to(ROOT)
        for path in shipped
        for found in ([ROOT / path] if (ROOT / path).is_file() else (ROOT / path).rglob("*"))
        if found.is_file() and "__pycache__" not in found.parts and not found.name.startswith(".")
    ]
    unwatched = sorted(str(path) for path in files if path not in watched)
    assert files and not unwatched, unwatched


def test_every_published_version_is_the_package_version():
    version = pyproject()["project"]["version"]
    registry = server_json()
    assert version == __version__
    assert registry["version"] == version
    assert [package["version"] for package in registry["packages"]] == [version]
    assert manifest()["version"] == version
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_project_urls_lead_to_the_source_issues_docs_and_changelog():
    urls = pyproject()["project"]["urls"]
    assert urls["Source"] == HOME
    assert urls["Issues"] == f"{HOME}/issues"
    assert urls["Documentation"].startswith(HOME)
    assert urls["Changelog"] == f"{HOME}/blob/main/CHANGELOG.md"
    assert (ROOT / "CHANGELOG.md").is_file()
    assert server_json()["repository"] == {"url": HOME, "source": "github"}
    assert manifest()["repository"]["url"] == HOME


def test_classifiers_name_every_supported_python_and_what_the_project_is():
    project = pyproject()["project"]
    floor = int(re.fullmatch(r">=3\.(\d+)", project["requires-python"]).group(1))
    classifiers = set(project["classifiers"])
    for minor in range(floor, 15):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    for prefix in ("Development Status :: ", "Intended Audience :: ", "Topic :: "):
        assert any(c.startswith(prefix) for c in classifiers), prefix
    assert not any(c.startswith("License :: ") for c in classifiers)  # the SPDX `license` field says it


def test_sdist_ships_the_publishing_files():
    included = set(pyproject()["tool"]["hatch"]["build"]["targets"]["sdist"]["include"])
    publishing = {"CHANGELOG.md", "LICENSE", ".env.example", "server.json", "mcpb", "uv.lock"}  # mcpb packs uv.lock
    assert publishing <= included


# --- the MCP registry entry --------------------------------------------------------------------------------


def test_server_json_has_what_the_registry_requires():
    registry = server_json()
    assert registry["$schema"] == REGISTRY_SCHEMA
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", registry["name"])
    assert 1 <= len(registry["description"]) <= 100
    assert 1 <= len(registry["title"]) <= 100
    [package] = registry["packages"]
    assert package["registryType"] == "pypi"
    assert package["registryBaseUrl"] == "https://pypi.org"  # the only PyPI the official registry accepts
    assert package["identifier"] == pyproject()["project"]["name"]
    assert package["transport"] == {"type": "stdio"}
    for variable in package["environmentVariables"]:
        assert variable["name"] and variable["description"]
        assert variable.get("format", "string") in {"string", "number", "boolean", "filepath"}
    secrets = {v["name"] for v in package["environmentVariables"] if v.get("isSecret")}
    assert secrets == {"KIE_API_KEY"}


def test_registry_name_is_the_one_the_readme_marker_claims():
    """The registry checks a PyPI package's README (its PyPI description) for this exact marker."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    markers = re.findall(r"<!--\s*mcp-name:\s*(\S+)\s*-->", readme)
    assert markers == [server_json()["name"]] == ["io.github.kie-mcp/kie-mcp"]


def test_the_readme_links_work_where_pypi_shows_it():
    """The README is the package's PyPI description, where a relative link or picture (``docs/gallery.png``,
    ``.env.example``) leads nowhere: every link is absolute, to the repository the project names, and names a file
    the repository holds."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    source = pyproject()["project"]["urls"]["Source"].removeprefix("https://github.com/")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert targets and not [t for t in targets if not re.match(r"(https?|mailto):|#", t)], targets
    for target in targets:
        for prefix in (f"https://github.com/{source}/blob/main/", f"https://raw.githubusercontent.com/{source}/main/"):
            if target.startswith(prefix):
                assert (ROOT / target.removeprefix(prefix)).is_file(), target


def test_registry_variables_are_settings_the_server_reads_with_their_real_defaults(tmp_path):
    """Each variable the registry lists changes the settings when set, and its stated default changes nothing."""
    baseline = settings_read_from({}, tmp_path)
    samples = {"number": "7", "filepath": str(tmp_path / "elsewhere"), "string": "kie-test-sample"}
    [package] = server_json()["packages"]
    for variable in package["environmentVariables"]:
        name, sample = variable["name"], samples[variable.get("format", "string")]
        assert settings_read_from({name: sample}, tmp_path) != baseline, f"{name} is not read by Settings.from_env"
        if "default" in variable:
            assert settings_read_from({name: variable["default"]}, tmp_path) == baseline, name


# --- .env.example ------------------------------------------------------------------------------------------


def env_example_lines() -> dict[str, str]:
    """Every ``NAME=value`` in .env.example, commented out or not."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return dict(re.findall(r"^#? ?(KIE_[A-Z_]+)=(.*)$", text, flags=re.MULTILINE))


def test_env_example_documents_every_setting_the_server_reads():
    assert set(env_example_lines()) == variables_named_in_config()


def test_env_example_defaults_are_the_real_defaults(tmp_path):
    baseline = settings_read_from({}, tmp_path)
    for name, value in env_example_lines().items():
        if name not in NOT_DEFAULTS:
            assert settings_read_from({name: value}, tmp_path) == baseline, f"{name}={value} is not the default"


def test_env_example_copied_to_env_configures_no_key(tmp_path):
    """Copying the example as it is must give a keyless server, not a placeholder sent to KIE as a key."""
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    assert read_dotenv(tmp_path / ".env") == {"KIE_API_KEY": ""}
    assert not Settings.from_env({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path).has_key


# --- the bundle manifest's settings ------------------------------------------------------------------------


def test_bundle_settings_reach_real_variables_and_default_to_the_real_defaults(tmp_path):
    """An optional setting without a default would reach the server as a literal ``${user_config.x}``."""
    data = manifest()
    options, env = data["user_config"], data["server"]["mcp_config"]["env"]
    assert options["kie_api_key"]["sensitive"] is True
    assert options["kie_api_key"]["required"] is True
    assert options["workspace"]["type"] == "directory"
    assert options["workspace"]["required"] is True
    baseline = settings_read_from({}, tmp_path)
    used = set()
    for variable, template in env.items():
        key = re.fullmatch(r"\$\{user_config\.(\w+)\}", template).group(1)
        used.add(key)
        option = options[key]
        assert option.get("required") or "default" in option, f"{key} is optional without a default"
        if "default" in option:
            assert settings_read_from({variable: str(option["default"])}, tmp_path) == baseline, variable
    assert used == set(options)
    assert set(env) <= variables_named_in_config()


# --- installing from a checkout ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tool_installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """`uv tool install /path/to/checkout` into a private tool folder; its kie-mcp script and uv's environment."""
    tools = tmp_path_factory.mktemp("uv-tools")
    env = {
        **os.environ,
        "UV_TOOL_DIR": str(tools / "tools"),
        "UV_TOOL_BIN_DIR": str(tools / "bin"),
        "UV_PYTHON": sys.executable,
    }
    uv_offline_first(["tool", "install", str(ROOT)], env)
    script = tools / "bin" / ("kie-mcp.exe" if os.name == "nt" else "kie-mcp")
    assert script.exists()
    return script, env


def test_uv_tool_install_and_uvx_from_the_checkout_run_kie_mcp(tool_installed):
    """The README's paths for every client before PyPI: the installed command, and `uvx --from` the checkout."""
    script, env = tool_installed
    installed = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert installed.stdout.strip() == f"kie-mcp {__version__}"
    uvx = uv_offline_first(["tool", "run", "--from", str(ROOT), "kie-mcp", "--version"], env)  # uvx is `uv tool run`
    assert uvx.stdout.strip() == f"kie-mcp {__version__}"


@pytest.mark.stdio
async def test_tool_installed_kie_mcp_serves_over_stdio(tool_installed, tmp_path):
    """A client config with "command": "kie-mcp": the installed script starts and lists the tools."""
    script, _ = tool_installed
    params = StdioServerParameters(
        command=str(script), args=["--sandbox"], env={"KIE_WORKSPACE": str(tmp_path)}, cwd=str(tmp_path)
    )
    async with Client(params, read_timeout_seconds=60) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"estimate_cost", "generate_image", "generate_video"} <= tools
