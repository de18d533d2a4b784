"""The prompt library as resources (``kie://prompting/...``): the one owner of which copy of a page is served.

kie-mcp ships a library (``prompting/guide.md`` and ``prompting/prompt-library/*.md``: ``bundled.py``). A workspace
keeps its own, edited copy of any page at the same path under its own ``prompting/`` folder
(``prompting/guide.md``, ``prompting/prompt-library/veo-3-1.md``), and pages of its own beside them: the page served
at ``kie://prompting/<path>`` is the workspace's file when it has one that may be served, else kie-mcp's. The
workspace's files obey the rules its ``references/`` obey (``references.scan_folder`` lists them, ``WorkspaceFile``
serves them): never a file a link leads to outside the workspace (kie-mcp's page is served in its place), a dotfile,
or a path holding a credential; at most 50 MB, UTF-8 text, the key redacted. Only markdown pages (``.md``) are
listed, and at most ``MOST_OWN`` pages of the workspace's own beside kie-mcp's (the first page of resources/list holds
the whole library). Each page's description says which copy is served, and kie-mcp's own page stays readable at
``kie://shipped/prompting/<path>`` (``shipped_text``) whichever is; a workspace page in place of kie-mcp's is
titled by its own first heading and "(the workspace's copy)", never by kie-mcp's title. The listing is read again
before every first page of resources/list and before a read of a page whose copy changed (``PromptLibrary.outdated``),
so an edit, a new page or a removed one shows without a restart; and every read of a page kie-mcp ships judges the
workspace's copy again (``own_page``), serving kie-mcp's page whenever the workspace's may not be served. The workflows
(``prompts.py``) name pages by their ``kie://prompting/`` URI, so they read whichever copy is served. What the
library leaves out is logged under this module's logger (``kie_mcp.library``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import anyio
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources import Resource
from pydantic import Field

from kie_mcp.bundled import bundled_path
from kie_mcp.config import Settings
from kie_mcp.media.inputs import ChangedFile, open_judged, private_reason
from kie_mcp.redact import redact
from kie_mcp.references import (
    LIBRARY_PREFIX,
    Found,
    Judged,
    KeptScan,
    WorkspaceFile,
    judged_file,
    printable_path,
    quoted_path,
    scan_folder,
    warn_once,
)
from kie_mcp.words import plain

PREFIX = LIBRARY_PREFIX
SHIPPED_PREFIX = "kie://shipped/prompting/"
FOLDER = "prompting"
MOST_OWN = 200  # pages of the workspace's own (beside kie-mcp's): the first page of resources/list holds them all
HEADING_BYTES = 4096  # of a workspace page in place of kie-mcp's, read for its first heading (its title)
TITLE_MOST = 200  # characters of that heading a title shows
COPY = "(the workspace's copy)"  # what the title of a workspace page in place of kie-mcp's says it is

log = logging.getLogger(__name__)


@functools.cache
def shipped_pages() -> dict[str, Path]:
    """kie-mcp's pages by their path in the library (``guide.md``, ``prompt-library/veo-3-1.md``), sorted."""
    library = bundled_path(FOLDER)
    if library is None or not library.is_dir():
        return {}
    return {file.relative_to(library).as_posix(): file.resolve() for file in sorted(library.rglob("*.md"))}


def shipped_text(relative: str) -> str | None:
    """kie-mcp's own page at ``relative`` in the library, or None when it ships none there."""
    page = shipped_pages().get(relative)
    return page.read_text(encoding="utf-8") if page is not None else None


def title_of(file: Path) -> str:
    """A shipped page's title: its first heading, else its name."""
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return file.stem.replace("-", " ")


@dataclass(frozen=True)
class Page(Found):
    """A page of the workspace's prompting/ as the listing shows it. ``heading``: the first heading of a page in place
    of one of kie-mcp's (``heading_of``), its title; ``checkout``: the workspace's prompting/ is kie-mcp's own library
    (a workspace that is kie-mcp's checkout), so this page is one kie-mcp ships."""

    heading: str | None = None
    checkout: bool = False


def heading_of(path: Path, home: Path) -> str | None:
    """The first heading (``# ...``) in the first ``HEADING_BYTES`` of the workspace's page at ``path``, as a title
    shows it: redacted, and as it is when every character shows and it is at most ``TITLE_MOST`` long, else quoted and
    cut as JSON writes text (``words.plain``), so a heading of line breaks and instructions stays one quoted line.
    None when it has none there, or it cannot be read as a read would read it (its real path inside ``home``, not
    private, a regular file opened without waiting on a FIFO). Call it where a blocking look is fine."""
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(home) or private_reason(real, home, (home,)) is not None:
            return None
        with open_judged(real, one_name=True) as handle:  # a hard link's heading is another file's
            head = handle.read(HEADING_BYTES)
    except (OSError, RuntimeError, ChangedFile):
        return None
    for line in head.decode("utf-8", errors="replace").removeprefix("\ufeff").splitlines():
        if line.startswith("# ") and (heading := redact(line[2:].strip())):
            return heading if heading.isprintable() and len(heading) <= TITLE_MOST else plain(heading, limit=TITLE_MOST)
    return None


def _page_of(item: Found | None) -> str | None:
    """The library path of a workspace file found under prompting/ when it is a page that may be served there (a
    markdown file whose bytes are no picture or other media), else None."""
    if item is None or not item.relative.lower().endswith(".md") or not item.mime.startswith("text/"):
        return None
    return item.relative.removeprefix(FOLDER + "/")


def _is_the_shipped_folder(settings: Settings) -> bool:
    """Whether the workspace's prompting/ is kie-mcp's own library (a workspace that is kie-mcp's checkout): its
    pages are then the shipped ones, not copies of the workspace's."""
    library = bundled_path(FOLDER)
    folder = settings.context_folder / FOLDER
    try:
        return library is not None and folder.is_dir() and folder.resolve() == library.resolve()
    except (OSError, RuntimeError):
        return False


def own_page(settings: Settings, relative: str) -> Found | None:
    """The workspace's page at ``relative`` in the library (``prompting/<relative>``) when it has one that may be
    served, as the listing judges it; None otherwise. A few ``stat`` calls and the file's first bytes."""
    if _is_the_shipped_folder(settings):
        return None
    item = judged_file(settings, FOLDER, relative, log)
    return item if _page_of(item) == relative else None


def _own_pages(settings: Settings, judged: Judged) -> list[Page]:
    """The workspace's pages under prompting/ that may be served, sorted by path (in a worker thread), each in place
    of kie-mcp's with its first heading; in kie-mcp's own checkout, its pages marked as kie-mcp's (``checkout``)."""
    shipped = shipped_pages()
    if _is_the_shipped_folder(settings):  # its pages are kie-mcp's: listed as kie-mcp's, saying so
        return [
            Page(path, f"{FOLDER}/{relative}", "text/markdown", checkout=True) for relative, path in shipped.items()
        ]
    home = settings.context_folder.resolve()
    pages = []
    for item in scan_folder(settings, FOLDER, judged, log):
        relative = _page_of(item)
        if relative is not None:
            heading = heading_of(item.path, home) if relative in shipped else None
            pages.append(Page(item.path, item.relative, item.mime, heading))
    return pages


class _LibraryResource(WorkspaceFile, defer_build=True):
    """A page of the library at ``kie://prompting/<path>``: the workspace's ``prompting/<path>`` (``path``), judged
    again on every read as a reference is. ``shipped``: the path of kie-mcp's page there, if it ships one; then each
    read judges the workspace's copy again (``judge``: ``own_page``) and serves kie-mcp's page whenever the
    workspace's may not be served (not there, a link leading out of the workspace or to a FIFO, a picture), whatever
    the listing said when it was made, and names it in an error (a file that is not UTF-8, too large)."""

    shipped: str | None = None
    judge: Callable[[], Found | None] | None = Field(default=None, exclude=True)

    async def read(self) -> str | bytes:
        if self.shipped is not None and self.judge is not None and await anyio.to_thread.run_sync(self.judge) is None:
            return await self._shipped()
        try:
            return await super().read()
        except ResourceNotFoundError:
            if self.shipped is not None:
                return await self._shipped()  # removed since it was judged: kie-mcp's page, as when there is none
            raise
        except ResourceError as err:
            if self.shipped is None:
                raise
            raise ResourceError(f"{err} kie-mcp's own page stays readable at {SHIPPED_PREFIX}{self.shipped}.") from err

    async def _shipped(self) -> str:
        text = await anyio.to_thread.run_sync(shipped_text, self.shipped or "")
        if text is None:
            raise ResourceNotFoundError(f"kie-mcp ships no page {SHIPPED_PREFIX}{self.shipped}.")
        return text


class LibraryPage(_LibraryResource, defer_build=True):
    """A page listed as the workspace's: its copy of one of kie-mcp's pages, or a page of its own."""


class ShippedPage(_LibraryResource, defer_build=True):
    """A page listed as kie-mcp's: the workspace has none there that may be served (or its prompting/ is kie-mcp's
    own library)."""


class PromptLibrary(KeptScan):
    """The ``kie://prompting/...`` resources of one server: kie-mcp's pages, each from the workspace's prompting/
    folder when it holds that page, and the workspace's own pages beside them."""

    prefix = PREFIX

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._made: dict[tuple[str, Found | None], Resource] = {}

    @property
    def first_page(self) -> tuple[str, ...]:
        """Every page: the whole library is listed on the first page of resources/list."""
        return tuple(self._read)

    def _scan(self) -> list[Found]:
        return _own_pages(self._settings, self._judged)

    def resources(self, found: list[Found]) -> dict[str, Resource]:
        """Every page by URI: kie-mcp's in its order, each the workspace's where it has that page, then the
        workspace's own pages (``MOST_OWN`` at most)."""
        own = {page: item for item in found if (page := _page_of(item)) is not None}
        pages = [(relative, own.pop(relative, None)) for relative in shipped_pages()]
        if len(own) > MOST_OWN:
            warn_once(
                "too many pages",
                self._settings.context_folder / FOLDER,
                "prompting/ holds %d pages of the workspace's own; the first %d by path are listed and served",
                len(own),
                MOST_OWN,
                speaker=log,
            )
        pages += sorted(own.items())[:MOST_OWN]
        made = {key: self._made.get(key) or self._resource(*key) for key in pages}
        self._made = made
        return {str(resource.uri): resource for resource in made.values()}

    def _resource(self, relative: str, item: Found | None) -> Resource:
        shipped = shipped_pages().get(relative)
        where = quoted_path(f"{FOLDER}/{relative}")
        judge = functools.partial(own_page, self._settings, relative)
        if item is None or (isinstance(item, Page) and item.checkout):  # listed as kie-mcp's page
            assert shipped is not None
            if item is None:  # the workspace has none there
                whose = f"kie-mcp's own page. A file {where} in the workspace is served here in its place."
            else:
                whose = (
                    f"kie-mcp's own page, which is the workspace's {where}: the workspace's prompting/ folder is the "
                    "library kie-mcp ships (as in kie-mcp's own checkout), so that file is the one served here."
                )
            return ShippedPage(
                uri=PREFIX + relative,
                name=f"{FOLDER}/{relative}",
                title=title_of(shipped),
                description=f"Prompt-writing guidance (descriptive reference): {whose}",
                mime_type="text/markdown",
                path=(self._settings.context_folder / FOLDER / relative).absolute(),
                home=self._home,
                shipped=relative,
                judge=judge,
            )
        if shipped is not None:
            heading = item.heading if isinstance(item, Page) else None
            title = f"{heading or printable_path(f'{FOLDER}/{relative}')} {COPY}"
            whose = (
                f"served from the workspace's {where}, in place of kie-mcp's own page, which stays readable at "
                f"{SHIPPED_PREFIX}{relative}."
            )
        else:
            title = printable_path(f"{FOLDER}/{relative}")
            whose = f"the workspace's own page {where} (kie-mcp ships none of that name)."
        return LibraryPage(
            uri=PREFIX + quote(relative, safe="/"),
            name=printable_path(f"{FOLDER}/{relative}"),
            title=title,
            description=f"Prompt-writing guidance (descriptive reference): {whose}",
            mime_type="text/markdown",
            path=item.path,
            home=self._home,
            shipped=relative if shipped is not None else None,
            judge=judge if shipped is not None else None,
        )

    def outdated(self, uri: str, held: Resource | None) -> bool:
        """Whether a read of ``uri`` needs the folder read again first: a page not listed, or one whose copy changed
        (the workspace's page added, removed, or no longer one that may be served)."""
        if held is None:
            return True
        own = own_page(self._settings, unquote(uri[len(PREFIX) :]))
        return (own is not None) != isinstance(held, LibraryPage)
