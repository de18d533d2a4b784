"""Where saved results live, and which files there are saved results.

Results go to the workspace's ``outputs/`` folder, which may be a symbolic link to a folder of the user's choosing
(another disk). A link to ``/``, to the workspace or a folder holding it, or to the home folder or one holding it is
no folder of results but a way to every file (a cloned repository can carry one): nothing is saved, served or read
through it, and a request that would save there is refused before anything is spent.

What ``kie://outputs/`` serves, and what an input may name inside a linked ``outputs/``, is what kie-mcp saves
there: files in session folders (``<day>-<session>/``) and the gallery pages at the top.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from pathlib import Path, PurePath

OUTPUTS = "outputs"
SESSION_FOLDER = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+)$")  # the name output_folder gives: its day, its slug
_PAGE = re.compile(r"^index(-(\d{4}-\d{2}|undated))?\.html$")  # the gallery's index and month pages (gallery.py)


def refusal(outputs: Path) -> str | None:
    """Why the ``outputs`` folder (``<workspace>/outputs``) is not used, or None: it is a link leading to ``/``, to
    the workspace or a folder holding it, or to the home folder or one holding it."""
    try:
        if not outputs.is_symlink():
            return None
        target = outputs.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of links: creating or reading the folder says so itself
        return None
    held = [outputs.parent.resolve()]
    with contextlib.suppress(OSError, RuntimeError, KeyError):  # no home folder known: the other checks stand
        held.append(Path.home().resolve())
    if target != Path(target.anchor) and not any(folder.is_relative_to(target) for folder in held):
        return None
    what = (
        "the top of the file system"
        if target == Path(target.anchor)
        else "the workspace itself"
        if held[0] == target
        else "a folder holding the workspace"
        if held[0].is_relative_to(target)
        else "a folder holding your home folder"
    )
    return (
        f"outputs/ in the workspace is a symbolic link to {target}, {what}: kie-mcp saves, serves and reads no "
        "results through such a link (a cloned repository can carry one). Remove the link, or point it at a folder "
        "of its own (on another disk is fine)."
    )


class OutputsRefused(OSError):
    """The workspace's ``outputs/`` is a link ``refusal`` names: nothing is saved there."""


def check(outputs: Path, then: str = "") -> None:
    """Raise ``OutputsRefused`` (its text ``refusal``'s, then ``then``) when ``outputs`` may not be used."""
    if (reason := refusal(outputs)) is not None:
        raise OutputsRefused(f"{reason}{then}")


def is_saved(relative: PurePath) -> bool:
    """Whether a path inside ``outputs/`` (relative to it) is where kie-mcp saves: a file in a session folder."""
    return len(relative.parts) >= 2 and SESSION_FOLDER.match(relative.parts[0]) is not None


def is_served(relative: PurePath) -> bool:
    """Whether a path inside ``outputs/`` is one ``kie://outputs/`` serves: a saved file or a gallery page."""
    return is_saved(relative) or (len(relative.parts) == 1 and _PAGE.match(relative.parts[0]) is not None)


def linked_homes(workspaces: Iterable[Path]) -> list[Path]:
    """The real folders of the ``outputs/`` links among ``workspaces`` that are used (``refusal`` is None)."""
    found = []
    for workspace in workspaces:
        outputs = Path(workspace) / OUTPUTS
        try:
            if outputs.is_symlink() and refusal(outputs) is None and outputs.is_dir():
                found.append(outputs.resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    return found
