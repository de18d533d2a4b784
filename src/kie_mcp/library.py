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
``kie://shipped/prompting/<path>`` (``shipped_text``) whichever is. The listing is read again before every first page
of resources/list and before a read of a page whose copy changed (``PromptLibrary.outdated``), so an edit, a new page
or a removed one shows without a restart. The workflows (``prompts.py``) name pages by their ``kie://prompting/``
URI, so they read whichever copy is served.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import quote, unquote

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources import FileResource, Resource

from kie_mcp.bundled import bundled_path
from kie_mcp.config import Settings
from kie_mcp.references import (
    LIBRARY_PREFIX,
    Found,
    KeptScan,
    WorkspaceFile,
    _Judged,
    _named,
    _quoted,
    _warn_once,
    judged_file,
    scan_folder,
)

PREFIX = LIBRARY_PREFIX
SHIPPED_PREFIX = "kie://shipped/prompting/"
FOLDER = "prompting"
MOST_OWN = 200  # pages of the workspace's own (beside kie-mcp's): the first page of resources/list holds them all


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
    item = judged_file(settings, FOLDER, relative)
    return item if _page_of(item) == relative else None


def _own_pages(settings: Settings, judged: _Judged) -> list[Found]:
    """The workspace's pages under prompting/ that may be served, sorted by path (in a worker thread)."""
    if _is_the_shipped_folder(settings):
        return []
    return [item for item in scan_folder(settings, FOLDER, judged) if _page_of(item) is not None]


class LibraryPage(WorkspaceFile, defer_build=True):
    """A page of the library served from the workspace's prompting/ folder, judged again on every read as a
    reference is; ``shipped``: kie-mcp's page of the same path, served when the workspace's is gone by the time it is
    read, and named in an error (a file that is not UTF-8, too large, a link swapped in since it was listed)."""

    shipped: str | None = None

    async def read(self) -> str | bytes:
        try:
            return await super().read()
        except ResourceNotFoundError:
            if self.shipped is not None and (text := shipped_text(self.shipped)) is not None:
                return text  # removed since it was listed: kie-mcp's page, as when there is none
            raise
        except ResourceError as err:
            if self.shipped is None:
                raise
            raise ResourceError(f"{err} kie-mcp's own page stays readable at {SHIPPED_PREFIX}{self.shipped}.") from err


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
            _warn_once(
                "too many pages",
                self._settings.context_folder / FOLDER,
                "prompting/ holds %d pages of the workspace's own; the first %d by path are listed and served",
                len(own),
                MOST_OWN,
            )
        pages += sorted(own.items())[:MOST_OWN]
        made = {key: self._made.get(key) or self._resource(*key) for key in pages}
        self._made = made
        return {str(resource.uri): resource for resource in made.values()}

    def _resource(self, relative: str, item: Found | None) -> Resource:
        shipped = shipped_pages().get(relative)
        where = _quoted(f"{FOLDER}/{relative}")
        if item is None:  # kie-mcp's page: the workspace has none there
            assert shipped is not None
            return FileResource(
                uri=PREFIX + relative,
                name=f"{FOLDER}/{relative}",
                title=title_of(shipped),
                description="Prompt-writing guidance (descriptive reference): kie-mcp's own page. A file "
                f"{where} in the workspace is served here in its place.",
                mime_type="text/markdown",
                path=shipped,
            )
        if shipped is not None:
            title = title_of(shipped)
            whose = (
                f"served from the workspace's {where}, in place of kie-mcp's own page, which stays readable at "
                f"{SHIPPED_PREFIX}{relative}."
            )
        else:
            title = _named(f"{FOLDER}/{relative}")
            whose = f"the workspace's own page {where} (kie-mcp ships none of that name)."
        return LibraryPage(
            uri=PREFIX + quote(relative, safe="/"),
            name=_named(f"{FOLDER}/{relative}"),
            title=title,
            description=f"Prompt-writing guidance (descriptive reference): {whose}",
            mime_type="text/markdown",
            path=item.path,
            home=self._home,
            shipped=relative if shipped is not None else None,
        )

    def outdated(self, uri: str, held: Resource | None) -> bool:
        """Whether a read of ``uri`` needs the folder read again first: a page not listed, or one whose copy changed
        (the workspace's page added, removed, or no longer one that may be served)."""
        if held is None:
            return True
        own = own_page(self._settings, unquote(uri[len(PREFIX) :]))
        return (own is not None) != isinstance(held, LibraryPage)
