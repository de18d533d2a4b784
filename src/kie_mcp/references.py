"""The workspace's ``references/`` folder as MCP resources, kept current.

A creator drops product shots and logos into ``references/`` while the agent works. The listing is read again
before every ``resources/list``, and before a read of a reference the listing does not hold (or of its README), so
a file added after the client first listed is listed and readable, a deleted one is no longer listed, and a
``references/README.md`` of the workspace's own replaces kie-mcp's guide as soon as it exists. A change found
this way is also announced (``ResourcesListChanged`` on the server's subscription bus: 2026-07-28 clients that
listen re-list).

A file is listed under its path percent-encoded (``kie://workspace/references/my%20photo.png``, a valid URI that
clients which normalise URIs ask for as listed); a read of the same path written plainly finds it too. Its MIME
type is read from its bytes when they are an image, video or audio format (a ``.jpg`` that holds a PNG is listed
as ``image/png``), else from its name. What is served is judged again on every read (``read_inside``), and text is
redacted: a key pasted into a note is never shown back.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import anyio
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.resources import FileResource, FunctionResource, Resource

from kie_mcp.bundled import bundled_path
from kie_mcp.config import Settings
from kie_mcp.media.downloads import SNIFF_BYTES, sniff_mime
from kie_mcp.media.inputs import RefusedInput, private_reason, read_inside
from kie_mcp.redact import redact

PREFIX = "kie://workspace/references/"
GUIDE_URI = PREFIX + "README.md"
MAX_RESOURCE_BYTES = 50 * 1024 * 1024
_MEDIA = ("image/", "video/", "audio/")


def canonical_uri(uri: str) -> str:
    """A workspace file's URI as listed (its path percent-encoded), however the client wrote the path."""
    if not uri.startswith(PREFIX):
        return uri
    return PREFIX + quote(unquote(uri[len(PREFIX) :]), safe="/")


@dataclass(frozen=True)
class Found:
    """A reference file that may be listed: its path, its path relative to the workspace, and its MIME type."""

    path: Path
    relative: str
    mime: str


def scan(settings: Settings) -> list[Found]:
    """Every file under ``references/`` that may be served, sorted (run it in a worker thread). Symlinks are judged
    by their target: never listed when it leaves the workspace or is private (a dotfile, a dot-folder, logs/);
    dotfiles and dot-folders under references/ are skipped too."""
    folder = settings.context_folder / "references"  # in the sandbox, the real workspace's
    if not folder.is_dir():
        return []
    home = settings.context_folder.resolve()
    found = []
    for file in sorted(folder.rglob("*")):
        try:
            real = file.resolve(strict=True)
            usable = real.is_file() and real.is_relative_to(home)
        except (OSError, RuntimeError):
            usable = False
        hidden = any(part.startswith(".") for part in file.relative_to(folder).parts)
        if not usable or hidden or private_reason(real, home, (home,)) is not None:
            continue
        found.append(Found(file.absolute(), file.relative_to(settings.context_folder).as_posix(), _mime_of(real)))
    return found


def _mime_of(path: Path) -> str:
    """The type its bytes say when they are media, else the one its name says."""
    try:
        with open(path, "rb") as handle:
            sniffed = sniff_mime(handle.read(SNIFF_BYTES))
    except OSError:
        sniffed = ""
    if sniffed.startswith(_MEDIA):
        return sniffed
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class WorkspaceFile(FileResource, defer_build=True):
    """A file of the workspace listed as a resource, judged again on every read (``read_inside``): the file listed
    may since have been swapped for a link to ``.env`` or outside the workspace, a FIFO or a device. Text is
    redacted; media bytes carry the type they are now."""

    home: Path

    async def read(self) -> str | bytes:
        try:
            content = await anyio.to_thread.run_sync(read_inside, self.path, self.home, MAX_RESOURCE_BYTES)
            if self.encoding is not None:
                return redact(content.decode(self.encoding))
        except RefusedInput as err:
            raise ResourceError(f"{err} Nothing was read.") from err
        except UnicodeDecodeError as err:
            problem = f"{self.name} is not text in {self.encoding} (byte {err.start}); save it as UTF-8."
            raise ResourceError(problem) from err
        except OSError as err:
            raise ResourceError(f"{self.name} could not be read ({err.strerror or type(err).__name__}).") from err
        sniffed = sniff_mime(content[:SNIFF_BYTES])
        if sniffed.startswith(_MEDIA):  # replaced by another format since it was listed
            self.mime_type = sniffed
        return content


class ReferenceListing:
    """Builds the ``kie://workspace/references/...`` resources of one server from what the folder holds now."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._home = settings.context_folder.resolve()

    def resources(self, found: list[Found]) -> dict[str, Resource]:
        """The resources for ``found``, by URI; kie-mcp's guide at README.md unless the workspace has its own."""
        sandbox = self._settings.sandbox
        listed: dict[str, Resource] = {}
        for item in found:
            # In the sandbox, relative paths are read from the sandbox area: name the file by its absolute path.
            given = str(item.path) if sandbox else item.relative
            uri = "kie://workspace/" + quote(item.relative, safe="/")
            listed[uri] = WorkspaceFile(
                uri=uri,
                name=item.relative,
                title=item.relative,
                description=f"Workspace reference file; pass '{given}' in images to use it as a model input.",
                mime_type=item.mime,
                path=item.path,
                home=self._home,
            )
        shipped = bundled_path("references/README.md")
        if GUIDE_URI not in listed and shipped is not None and shipped.is_file():
            listed[GUIDE_URI] = self._guide(shipped)
        return listed

    def _guide(self, shipped: Path) -> Resource:
        own = self._settings.context_folder / "references" / "README.md"

        def references_guide() -> str:
            """What goes in the workspace's references/ folder and how its files reach the models (kie-mcp's guide,
            until the workspace has a references/README.md of its own)."""
            return (
                f"<!-- No references/README.md in the workspace yet ({own}). This is kie-mcp's guide to the "
                f"folder; save a copy there to keep notes of your own. -->\n\n{shipped.read_text(encoding='utf-8')}"
            )

        return FunctionResource.from_function(
            references_guide,
            uri=GUIDE_URI,
            name="references/README.md",
            title="references/README.md",
            mime_type="text/markdown",
        )

    def now(self) -> dict[str, Resource]:
        """The resources as the folder is now (on the event loop: the first listing, at registration)."""
        return self.resources(scan(self._settings))

    async def current(self) -> dict[str, Resource]:
        """The same, the folder read in a worker thread."""
        return self.resources(await anyio.to_thread.run_sync(scan, self._settings))


def same_resources(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two listings name the same files, at the same types and descriptions."""

    def key(resource: Any) -> tuple[Any, ...]:
        return (type(resource), resource.mime_type, resource.description, getattr(resource, "path", None))

    return old.keys() == new.keys() and all(key(old[uri]) == key(new[uri]) for uri in new)
