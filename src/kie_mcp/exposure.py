"""Whether the workspace's ``.env``, which holds the KIE key, or kie-mcp's own records in it are one ``git add`` away
from a commit.

Users keep the key in the workspace's ``.env`` (the README and MASTER_CONTEXT.md say so), and a workspace is often
a git repository. kie-mcp never writes the key anywhere, but a ``.env`` that git tracks, or that no ``.gitignore``
excludes, is published by the next ``git add . && git push``; so are ``.kie-mcp/`` (the journal: every prompt, quote
and task) and ``logs/`` (the call log of every KIE call), which kie-mcp writes into the workspace itself.
``check_credits`` (what an agent calls first) says so, with the fix. Asked of git itself (``check-ignore`` and
``ls-files`` know every ignore file and rule), only when there is something to commit and a repository around it,
so a call costs nothing otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from kie_mcp.regular import open_regular

_READ_AT_MOST = 64 * 1024  # a .env is a few lines; a huge file is read no further
_GIT_SECONDS = 5.0
# A line that sets the key to something (not a comment, not ``KIE_API_KEY=`` left empty as in .env.example); the
# first line may start with a byte-order mark (Notepad's "UTF-8 with BOM"), which the settings' reader skips too.
_KEY_SET = re.compile(
    rb"^(?:\xef\xbb\xbf)?[ \t]*(?:export[ \t]+)?KIE_API_KEY[ \t]*=[ \t]*['\"]?[^\s'\"#]", re.MULTILINE
)


def dotenv_exposure(folder: Path) -> str | None:
    """A warning when ``folder/.env`` holds KIE_API_KEY and git would commit it (tracked, or not ignored); None
    when it is safe, absent, holds no key, is in no repository, or git cannot tell (not installed, too slow).
    Runs git: call it in a worker thread."""
    dotenv = folder / ".env"
    try:  # never waits: a FIFO planted as .env held check_credits in a thread no cancel stops; one is None here
        with open_regular(dotenv) as handle:
            if not _KEY_SET.search(handle.read(_READ_AT_MOST)):
                return None
    except OSError:  # absent, unreadable, or not a regular file (``NotRegular``): nothing git would commit as a key
        return None
    if (found := _in_repository(folder)) is None:
        return None
    git, resolved = found
    tracked = _git(git, resolved, "ls-files", "--error-unmatch", "--", ".env")
    if tracked == 0:
        return (
            f"Warning: {dotenv} holds your KIE API key and is committed to git: anyone with the repository has the "
            "key. Remove it from git (git rm --cached .env), add .env to .gitignore, and make a new key on "
            "https://kie.ai/api-key."
        )
    if _git(git, resolved, "check-ignore", "-q", "--", ".env") == 1:
        return (
            f"Warning: {dotenv} holds your KIE API key and no .gitignore excludes it: the next 'git add .' would "
            "commit the key. Add a line '.env' to the repository's .gitignore."
        )
    return None


# What kie-mcp writes into the workspace that git must not take (``records_exposure``), with what each holds.
RECORDS = {".kie-mcp": "the journal: your prompts, quotes and tasks", "logs": "the log of every call to KIE"}


def records_exposure(folder: Path) -> str | None:
    """A warning when kie-mcp's records in the workspace ``folder`` (``RECORDS``: ``.kie-mcp/``, ``logs/``) are
    committed to git or would be by the next 'git add .' (untracked, and no .gitignore excludes them); None when
    they are safe, absent, in no repository, or git cannot tell. Runs git: call it in a worker thread."""
    present = [name for name in RECORDS if (folder / name).is_dir()]
    if not present:
        return None
    if (repository := _in_repository(folder)) is None:
        return None
    git, resolved = repository
    tracked = _within(_run(git, resolved, "ls-files", "--", *present), present)
    found = tracked or _within(
        _run(git, resolved, "ls-files", "--others", "--exclude-standard", "--directory", "--", *present), present
    )
    if not found:
        return None
    them, are = ("it", "is") if len(found) == 1 else ("them", "are")
    named = " and ".join(f"{folder / name}/" for name in found)
    held = "; ".join(f"{name}/ holds {RECORDS[name]}" for name in found)
    lines = " and ".join(f"a line '{name}/'" for name in found)
    if tracked:
        return (
            f"Warning: {named} {are} committed to git ({held}): anyone with the repository can read {them}. Remove "
            f"{them} from git (git rm -r --cached {' '.join(found)}) and add {lines} to the repository's .gitignore."
        )
    return (
        f"Warning: {named} {are} kie-mcp's records ({held}) and no .gitignore excludes {them}: the next 'git add .' "
        f"would commit {them}. Add {lines} to the repository's .gitignore."
    )


def _in_repository(folder: Path) -> tuple[str, Path] | None:
    """git and ``folder`` resolved, when ``folder`` is in a git repository and git is installed; else None."""
    resolved = folder.resolve()
    if not any((parent / ".git").exists() for parent in (resolved, *resolved.parents)):
        return None
    git = shutil.which("git")
    return None if git is None else (git, resolved)


def _within(listed: subprocess.CompletedProcess[bytes] | None, names: list[str]) -> list[str]:
    """Which of the folders ``names`` hold a path git ``listed`` (one a line), in their order; none when git failed."""
    if listed is None or listed.returncode != 0:
        return []
    paths = listed.stdout.decode("utf-8", "replace").splitlines()
    return [name for name in names if any(path == name or path.startswith(f"{name}/") for path in paths)]


def _git(git: str, folder: Path, *args: str) -> int | None:
    """git's exit code, or None when it could not run or took too long."""
    done = _run(git, folder, *args)
    return None if done is None else done.returncode


def _run(git: str, folder: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    """git run in ``folder``, or None when it could not run or took too long."""
    try:
        return subprocess.run(
            # A repository's own config could name a program git runs while reading its index (core.fsmonitor):
            # never run what a workspace's config names. Paths are listed as they are (core.quotePath off).
            [git, "-c", "core.fsmonitor=false", "-c", "core.quotePath=false", "-C", str(folder), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_GIT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
