"""Whether the workspace's ``.env``, which holds the KIE key, is one ``git add`` away from a commit.

Users keep the key in the workspace's ``.env`` (the README and MASTER_CONTEXT.md say so), and a workspace is often
a git repository. kie-mcp never writes the key anywhere, but a ``.env`` that git tracks, or that no ``.gitignore``
excludes, is published by the next ``git add . && git push``. ``check_credits`` (what an agent calls first) says so,
with the fix. Asked of git itself (``check-ignore`` knows every ignore file and rule), only when there is a
``.env`` with the key and a repository around it, so a call costs nothing otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

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
    try:
        with dotenv.open("rb") as handle:
            if not _KEY_SET.search(handle.read(_READ_AT_MOST)):
                return None
    except OSError:
        return None
    resolved = folder.resolve()
    if not any((parent / ".git").exists() for parent in (resolved, *resolved.parents)):
        return None
    git = shutil.which("git")
    if git is None:
        return None
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


def _git(git: str, folder: Path, *args: str) -> int | None:
    """git's exit code, or None when it could not run or took too long."""
    try:
        done = subprocess.run(
            # A repository's own config could name a program git runs while reading its index (core.fsmonitor):
            # never run what a workspace's config names.
            [git, "-c", "core.fsmonitor=false", "-C", str(folder), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_GIT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode
