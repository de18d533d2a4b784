"""The Claude Desktop bundle: validated and packed by the real MCPB CLI, and it starts the way the host starts it.

``mcpb/build.py`` is the one documented build command. These tests run it, validate the manifest with the
official ``mcpb validate``, unpack the result with ``mcpb unpack``, ask the MCPB library's own
``getMcpConfigForManifest`` (what the host uses to substitute ``${__dirname}`` and ``${user_config.*}``) for the
command line, and run that command over real stdio: with the ``uv`` server type that is ``uv run`` in the
unpacked bundle, creating its environment from ``uv.lock`` on first start. uv runs offline from its cache.
Needs Node.js (the CLI is installed once from npm into ~/.cache/kie-mcp); skips without it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from mcp import Client, StdioServerParameters
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from .conftest import every_resource

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "mcpb" / "manifest.json"

HOST_CONFIG = """
import { readFileSync } from "node:fs";
const [library, bundleDir, userConfig, homeDir] = process.argv.slice(1);
const { getMcpConfigForManifest } = await import(library);
const manifest = JSON.parse(readFileSync(`${bundleDir}/manifest.json`, "utf8"));
const config = await getMcpConfigForManifest({
  manifest,
  extensionPath: bundleDir,
  systemDirs: { HOME: homeDir, DESKTOP: homeDir, DOCUMENTS: homeDir, DOWNLOADS: homeDir },
  userConfig: JSON.parse(userConfig),
  pathSeparator: "/",
});
console.log(JSON.stringify(config ?? null));
"""


def load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kie_mcp_bundle_build", ROOT / "mcpb" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js (node and npm) is not installed, so the MCPB CLI cannot validate or pack the bundle")
    return load_build_script()


@pytest.fixture(scope="module")
def bundle(build, tmp_path_factory) -> Path:
    """The .mcpb file, built by the same function as `uv run python mcpb/build.py`."""
    path = build.build(tmp_path_factory.mktemp("dist"))
    assert path.name == f"kie-mcp-{build.project_version()}.mcpb"
    return path


def host_config(build: ModuleType, bundle_dir: Path, user_config: dict, home: Path) -> dict:
    """The mcp_config the host computes for this bundle and these settings."""
    library = (build.mcpb_package() / "dist" / "index.js").as_uri()
    script = ["node", "--input-type=module", "-e", HOST_CONFIG]
    done = subprocess.run(
        [*script, library, str(bundle_dir), json.dumps(user_config), str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_official_validator_accepts_the_manifest_and_rejects_a_broken_one(build, tmp_path):
    """Proves the validation is real: the same CLI refuses a server type the spec does not have."""
    assert "validation passes" in build.mcpb("validate", str(MANIFEST)).stdout
    broken = json.loads(MANIFEST.read_text(encoding="utf-8"))
    broken["server"]["type"] = "uvx"
    (tmp_path / "manifest.json").write_text(json.dumps(broken), encoding="utf-8")
    shutil.copy(ROOT / "mcpb" / "icon.png", tmp_path / "icon.png")
    with pytest.raises(build.BuildError, match="validate"):
        build.mcpb("validate", str(tmp_path / "manifest.json"))


def test_bundle_holds_what_uv_run_needs_and_no_tests_caches_or_env_files(bundle):
    names = set(zipfile.ZipFile(bundle).namelist())
    needed = {
        "manifest.json",
        "icon.png",
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "MASTER_CONTEXT.md",
        "references/README.md",
        "prompting/guide.md",
        "src/kie_mcp/cli.py",
        "src/kie_mcp/catalog/data/veo.toml",
    }
    assert needed <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/", ".venv/", "mcpb/")) or "__pycache__" in n]
    assert not [n for n in names if Path(n).name.startswith(".env")]
    with zipfile.ZipFile(bundle) as archive:
        assert archive.read("uv.lock") == (ROOT / "uv.lock").read_bytes()  # installs exactly the locked versions


SETTINGS = {  # what a user enters in Claude Desktop when installing the bundle (the workspace is added below)
    "kie_api_key": "kie-test-dummy-key",
    "auto_approve_credits": 5,
    "max_credits_per_call": 150,
    "max_credits_per_day": 900,
}


@pytest.fixture
def installed(build, bundle, tmp_path) -> tuple[Path, Path, dict]:
    """The bundle unpacked as the host installs it, a workspace, and the mcp_config the host computes for them."""
    unpacked, workspace = tmp_path / "extension", tmp_path / "my workspace"
    build.mcpb("unpack", str(bundle), str(unpacked))
    config = host_config(build, unpacked, {**SETTINGS, "workspace": str(workspace)}, tmp_path / "home")
    assert config is not None, "the host found a required setting missing"
    return unpacked, workspace, config


@pytest.mark.stdio
async def test_installed_bundle_starts_as_the_host_launches_it_and_serves_its_settings(installed, tmp_path):
    unpacked, workspace, config = installed
    assert str(unpacked) in config["args"] and "kie-mcp" in config["args"]
    assert "${" not in json.dumps(config)  # every placeholder substituted
    assert config["env"]["KIE_API_KEY"] == SETTINGS["kie_api_key"]

    # With the `uv` server type the host runs its own uv with these args; here the test's uv, from its cache.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    env = {**config["env"], "UV_OFFLINE": "1", "UV_PYTHON": sys.executable}
    if "UV_CACHE_DIR" in os.environ:
        env["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
    # --sandbox: the simulator instead of KIE, so the dummy key is never sent anywhere.
    params = StdioServerParameters(command=uv, args=[*config["args"], "--sandbox"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=120) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        credits = (await client.call_tool("check_credits", {})).structured_content
        resources = {str(resource.uri) for resource in await every_resource(client)}

    # A client without MCP Apps (this one) is listed exactly the manifest's tools (see the test below for why the
    # app-only ones are not in it).
    assert tools == {tool["name"] for tool in json.loads(MANIFEST.read_text(encoding="utf-8"))["tools"]}
    caps = (credits["auto_approve_credits"], credits["max_credits_per_call"], credits["max_credits_per_day"])
    assert caps == (5, 150, 900)
    assert "kie://prompting/guide.md" in resources  # the prompt library came along
    assert list(workspace.rglob("journal.sqlite3"))  # the workspace chosen at install is the one used
    assert (unpacked / ".venv").is_dir()  # uv made the environment inside the bundle, as on first start


async def test_the_manifest_lists_the_tools_a_client_without_apps_gets_and_leaves_app_only_ones_out(connect):
    """The manifest's ``tools`` say what the model can do with kie-mcp (Claude Desktop shows them before install):
    exactly the tools a client without MCP Apps is listed. The tools only kie-mcp's app calls (``decline_quote``, the
    approval card's Decline) are left out on purpose: Claude Desktop declares MCP Apps and is listed them too, but
    they are marked ``visibility: ["app"]``, so the host keeps them from the model; they are not the model's."""
    manifest = {tool["name"] for tool in json.loads(MANIFEST.read_text(encoding="utf-8"))["tools"]}
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with connect() as plain, connect(extensions=[apps]) as with_apps:
        without = {tool.name for tool in (await plain.list_tools()).tools}
        listed = {tool.name: tool for tool in (await with_apps.list_tools()).tools}
    app_only = {name for name, tool in listed.items() if (tool.meta or {}).get("ui", {}).get("visibility") == ["app"]}
    assert manifest == without
    assert app_only and app_only == set(listed) - without  # decline_quote: listed only to an Apps client
    assert manifest.isdisjoint(app_only)
