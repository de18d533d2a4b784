"""Build the Claude Desktop bundle, ``dist/kie-mcp-<version>.mcpb``, with one command:

    uv run python mcpb/build.py

It stages ``mcpb/manifest.json``, ``mcpb/icon.png`` and the project's sources (``pyproject.toml``, ``uv.lock``,
``src/``, the prompt library, the templates) into a clean folder, then validates and packs it with the official
MCPB CLI (``@anthropic-ai/mcpb`` from npm, pinned below and installed once into a cache folder; needs Node.js).

Nothing is vendored: the manifest's ``uv`` server type (manifest v0.4) makes the host run ``uv run`` in the
unpacked bundle, which fetches Python and the locked dependencies on first start. What we relied on:
https://github.com/modelcontextprotocol/mcpb (MANIFEST.md, schemas/mcpb-manifest-v0.4.schema.json, and
``getMcpConfigForManifest`` in src/shared/config.ts, which substitutes ``${__dirname}`` and ``${user_config.*}``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

MCPB_PACKAGE = "@anthropic-ai/mcpb"
MCPB_VERSION = "2.1.2"  # the CLI that validates and packs; the same library Claude Desktop loads bundles with

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MANIFEST = HERE / "manifest.json"

# What `uv run` needs to build and run the project inside the bundle, relative to the repository root.
# Tests, benchmarks, .env files and caches stay out.
BUNDLED_FILES = ("pyproject.toml", "uv.lock", "README.md", "LICENSE", "MASTER_CONTEXT.md")
BUNDLED_FOLDERS = ("src/kie_mcp", "prompting", "references")
FROM_MCPB_FOLDER = ("manifest.json", "icon.png")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".env", ".env.*", ".DS_Store")


class BuildError(RuntimeError):
    """The bundle cannot be built; the message says why and what to do."""


def project_version() -> str:
    """The version in pyproject.toml, which the manifest must carry too."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["version"]


def bundle_name() -> str:
    return f"kie-mcp-{project_version()}.mcpb"


def stage(dest: Path) -> Path:
    """Copy what the bundle holds into ``dest`` (created, must not exist) and return it."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    if manifest["version"] != project_version():
        raise BuildError(
            f"mcpb/manifest.json has version {manifest['version']} but pyproject.toml has {project_version()}; "
            "make them equal."
        )
    dest.mkdir(parents=True)
    for name in FROM_MCPB_FOLDER:
        shutil.copy2(HERE / name, dest / name)
    for name in BUNDLED_FILES:
        shutil.copy2(ROOT / name, dest / name)
    for name in BUNDLED_FOLDERS:
        shutil.copytree(ROOT / name, dest / name, ignore=SKIPPED)
    return dest


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kie-mcp"


def mcpb_package() -> Path:
    """The installed ``@anthropic-ai/mcpb`` package folder, installing the pinned version once if needed."""
    prefix = _cache_root() / f"mcpb-{MCPB_VERSION}"
    package = prefix / "node_modules" / "@anthropic-ai" / "mcpb"
    if (package / "package.json").is_file():
        return package
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BuildError("Node.js (node and npm) is needed to validate and pack the bundle: https://nodejs.org")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"mcpb-{MCPB_VERSION}-", dir=prefix.parent))
    command = [npm, "install", "--prefix", str(scratch), "--no-save", "--no-package-lock", "--no-audit", "--no-fund"]
    done = subprocess.run(
        [*command, "--loglevel=error", f"{MCPB_PACKAGE}@{MCPB_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise BuildError(f"npm could not install {MCPB_PACKAGE}@{MCPB_VERSION}:\n{done.stderr.strip()}")
    if prefix.exists() and not (package / "package.json").is_file():  # left broken by an older tool: replace it
        shutil.rmtree(prefix, ignore_errors=True)
    try:
        scratch.rename(prefix)  # atomic: a half-finished install is never seen as the cache
    except OSError:  # another build installed it meanwhile
        shutil.rmtree(scratch, ignore_errors=True)
    return package


def mcpb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the MCPB CLI; a non-zero exit raises BuildError with its output."""
    node = shutil.which("node")
    if node is None:
        raise BuildError("Node.js is needed to validate and pack the bundle: https://nodejs.org")
    cli = mcpb_package() / "dist" / "cli" / "cli.js"
    done = subprocess.run([node, str(cli), *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False)
    if done.returncode != 0:
        raise BuildError(f"mcpb {' '.join(args)} failed:\n{done.stdout}{done.stderr}".rstrip())
    return done


def build(out_dir: Path) -> Path:
    """Stage, validate and pack the bundle into ``out_dir``; return the .mcpb file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = out_dir.resolve() / bundle_name()
    with tempfile.TemporaryDirectory(prefix="kie-mcp-bundle-") as scratch:
        staged = stage(Path(scratch) / "kie-mcp")
        mcpb("validate", str(staged / "manifest.json"))
        mcpb("pack", str(staged), str(bundle))
    return bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the kie-mcp bundle for Claude Desktop (.mcpb).")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist", help="where to write it (default: dist/)")
    args = parser.parse_args(argv)
    try:
        bundle = build(args.out_dir)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
