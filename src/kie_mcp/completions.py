"""``completion/complete``: what a host suggests while the user fills in a workflow's arguments or a resource's URI.

- A workflow's model argument: the catalogue ids that workflow takes (``prompts.MODEL_ARGUMENTS`` judged by
  ``prompts.takes_model``, the rules its own check uses: the catalogue the tools use, KIE's live models among them,
  none KIE withdrew, none its calls would be refused with), given the other arguments the host sends along (words
  to speak make its video step speak them).
- A picture argument (``prompts.PICTURE_ARGUMENTS``): the pictures in the workspace's references/, by the relative
  path a call takes, as the folder's listing finds them (``references.ReferenceListing``: no dotfile, nothing a link
  leads out of the workspace), then those kie-mcp saved in outputs/' session folders, newest first
  (``media.saved.saved_pictures``: a character_sheet's hero, taken by later workflows by that path); only in the
  formats the models the workflow hands it to take (``prompts.picture_formats``: JPEG, PNG and WebP for Nano Banana).
- An aspect ratio argument (``prompts.RATIO_ARGUMENTS``: ugc_product_selfie's): the ratios the workflow takes, as its
  plan judges one (``prompts.ratios_taken``: one of its models KIE sells makes it), its default first.
- ``kie://models/{model_id}``: the ids that resource reads; ``kie://tasks/{task_id}``: the ids of this workspace's
  newest tasks (``Journal.recent_task_ids``, off the event loop); ``kie://outputs/{session}/index.html``: the names
  of the session folders of outputs/ with a gallery page that resource serves, newest first (``_session_pages``,
  in a worker thread, bounded); ``kie://shipped/prompting/{+path}``: the paths of the prompt-library pages kie-mcp
  ships (``library.shipped_pages``), matched as a picture's path is; ``kie://outputs/{+path}``: what that read serves
  in the one folder of outputs/ the typed path names, newest first (``_served_entries``, in a worker thread: one
  ``os.scandir``, never the whole tree); ``kie://previews/{+path}``: the same, folder by folder, but only the saved
  results that read makes a preview of (``_previewed_entries``: an image, a video with ffmpeg or a kept poster; those
  that may be sent judged by their first bytes too, ``_previewed``).
- Any other argument (a script, a description): no values.

Model ids match by their start, or by the start of a word of the model's title or other names ("veo" offers the Veo
models, "kling" the Kling ones): the id typed first, then ids it starts, then title words, and within each the
workflow's default first and then the catalogue's order. At most ``MOST`` values, with ``total`` and ``hasMore``
counting those not sent; none longer than ``LONGEST``, with characters a form cannot hold, or holding a credential.
An unknown prompt, template or argument is an invalid-parameters error naming it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import anyio
from mcp import MCPError
from mcp.types import INVALID_PARAMS, CompleteRequestParams, Completion, PromptReference

from kie_mcp.kept import KeptPerOffer
from kie_mcp.words import plain

if TYPE_CHECKING:
    from mcp.types import Prompt, ResourceTemplate

    from kie_mcp.catalog import Catalog
    from kie_mcp.catalog.spec import ModelSpec
    from kie_mcp.config import Settings
    from kie_mcp.journal import Journal
    from kie_mcp.media.sniff import Sniffed
    from kie_mcp.prompts import Fit
    from kie_mcp.references import Found
    from kie_mcp.runtime import Runtime

MOST = 100  # values in one answer: MCP's limit
LONGEST = 500  # characters of a value; a longer one (a deep path in references/) is not offered
SHOWN = 60  # characters of a name the request gave that an error repeats
NONE = Completion(values=[], total=0, has_more=False)

# A URI template's expressions (RFC 6570): ``{+model_id}`` and ``{model_id}`` name the same variable.
_EXPRESSION = re.compile(r"\{[+#./;?&]?([^}]*)\}")
MODELS = "kie://models/{model_id}"  # the templates completed (as ``_bare`` writes them), by their variable
TASKS = "kie://tasks/{task_id}"
SESSION_PAGES = "kie://outputs/{session}/index.html"
SHIPPED_PAGES = "kie://shipped/prompting/{path}"
SAVED_RESULTS = "kie://outputs/{path}"
SAVED_PREVIEWS = "kie://previews/{path}"


async def complete(
    params: CompleteRequestParams,
    prompts: Sequence[Prompt],
    templates: Sequence[ResourceTemplate],
    runtime: Callable[[], Awaitable[Runtime | None]],
    listings: Iterable[object],
) -> Completion:
    """The values for ``params`` (a prompt's argument or a template's variable, the text typed so far). ``runtime``:
    the connection's runtime, opened when a completion needs it (None: it could not be; the bundled catalogue then
    answers, as it does the workflow); ``listings``: the server's kept listings, references/ among them."""
    ref, name, typed = params.ref, params.argument.name, params.argument.value
    if isinstance(ref, PromptReference):
        given = dict(params.context.arguments or {}) if params.context is not None else {}
        return await _prompt_argument(ref.name, name, typed, given, prompts, runtime, listings)
    return await _template_variable(ref.uri, name, typed, templates, runtime)


async def _prompt_argument(
    prompt_name: str,
    name: str,
    typed: str,
    given: Mapping[str, str],
    prompts: Sequence[Prompt],
    runtime: Callable[[], Awaitable[Runtime | None]],
    listings: Iterable[object],
) -> Completion:
    from kie_mcp.prompts import MODEL_ARGUMENTS, PICTURE_ARGUMENTS, RATIO_ARGUMENTS

    prompt = next((p for p in prompts if p.name == prompt_name), None)
    if prompt is None:
        raise MCPError(
            code=INVALID_PARAMS, message=f"There is no prompt named {_shown(prompt_name)}; prompts/list names them."
        )
    declared = [argument.name for argument in prompt.arguments or ()]
    if name not in declared:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"Prompt {prompt_name} has no argument {_shown(name)}; its arguments are {', '.join(declared)}.",
        )
    if not _completable(typed):
        return NONE
    rule = MODEL_ARGUMENTS.get((prompt_name, name))
    if rule is not None:
        kind, fits = rule(given)
        catalog, rt = await _catalogue(runtime)
        return await anyio.to_thread.run_sync(_model_ids, catalog, rt, (kind, fits), typed)
    if (models := PICTURE_ARGUMENTS.get((prompt_name, name))) is not None:
        return await _picture_paths(typed, runtime, listings, await _formats(models))
    if (prompt_name, name) in RATIO_ARGUMENTS:
        catalog, rt = await _catalogue(runtime)
        return await anyio.to_thread.run_sync(_ratios, catalog, rt, (prompt_name, name), typed)
    return NONE  # free text: a scene, a script, a count


async def _template_variable(
    uri: str,
    name: str,
    typed: str,
    templates: Sequence[ResourceTemplate],
    runtime: Callable[[], Awaitable[Runtime | None]],
) -> Completion:
    template = next((t.uri_template for t in templates if _bare(t.uri_template) == _bare(uri)), None)
    if template is None:
        listed = ", ".join(t.uri_template for t in templates)
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"There is no resource template {_shown(uri)}; resources/templates/list names them ({listed}).",
        )
    variables = _variables(template)
    if name not in variables:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"The resource template {template} has no variable {_shown(name)}; its variables are "
            f"{', '.join(variables)}.",
        )
    if not _completable(typed):
        return NONE
    if _bare(template) == MODELS:
        catalog, rt = await _catalogue(runtime)
        return await anyio.to_thread.run_sync(_model_ids, catalog, rt, None, typed)
    if _bare(template) == TASKS:
        return await _task_ids(typed, runtime)
    if _bare(template) == SESSION_PAGES:
        return await _in_outputs(typed, runtime, _session_pages)
    if _bare(template) == SHIPPED_PAGES:
        return _shipped_paths(typed)
    if _bare(template) == SAVED_RESULTS:
        return await _in_outputs(typed, runtime, _served_entries, journaled=True)
    if _bare(template) == SAVED_PREVIEWS:
        return await _in_outputs(typed, runtime, _previewed_entries, journaled=True)
    return NONE


REFERENCES = {"ref/prompt": ("name", "the prompt's name"), "ref/resource": ("uri", "the resource template's URI")}


def check_reference(params: Any) -> None:
    """Refuse a request whose ``ref`` is of no type MCP completes, or lacks what its type names, as invalid params
    saying what it takes: the two reference types and what each names (a prompt's name, a template's URI), or the
    one field its own type lacks, never the fields of a type it is not. Anything else is left to the SDK's check."""
    ref = params.get("ref") if isinstance(params, Mapping) else None
    if not isinstance(ref, Mapping):
        return
    kind = ref.get("type")
    if kind not in REFERENCES:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f'completion/complete completes a prompt\'s argument (ref type "ref/prompt", with its name) or a '
            f'resource template\'s variable ("ref/resource", with its uri), not ref type {plain(kind, limit=SHOWN)}.',
        )
    field, what = REFERENCES[kind]
    if not isinstance(ref.get(field), str):
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"completion/complete: a {kind} reference needs {field}: {what}, as text (got "
            f"{plain(ref.get(field), limit=SHOWN) if field in ref else 'none'}).",
        )


def _bare(uri: str) -> str:
    """A URI template with its expressions' operators left out: ``{+model_id}`` as ``{model_id}``."""
    end = uri.rfind("}") + 1  # past it no "{" is closed: each would scan to the end again (quadratic)
    return _EXPRESSION.sub(lambda found: "{" + found.group(1) + "}", uri[:end]) + uri[end:]


def _variables(template: str) -> list[str]:
    """The variables of a URI template, in order (an expression may name several, each with a modifier)."""
    names = [part for found in _EXPRESSION.finditer(template) for part in found.group(1).split(",")]
    return [re.sub(r"(\*|:\d+)$", "", part.strip()) for part in names]


def _shown(text: str) -> str:
    """A name the request gave, as an error repeats it: quoted, bounded, the key redacted (``words.plain``)."""
    return plain(text, limit=SHOWN)


def _completable(typed: str) -> bool:
    """Whether values may start with ``typed``: none is longer than ``LONGEST``, and none holds a lone surrogate."""
    if len(typed) > LONGEST:
        return False
    try:
        typed.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _offered(value: str) -> bool:
    """Whether ``value`` may be a suggestion: not too long, nothing a form field cannot hold (a line break, a control
    character), no credential (the API key, a bearer token: kept out, never shown redacted)."""
    from kie_mcp.kie.text import holds_credential

    return len(value) <= LONGEST and value.isprintable() and not holds_credential(value)


def _answer(values: Sequence[str], total: int | None = None) -> Completion:
    """At most ``MOST`` of ``values`` (best first) that may be offered, and how many there are: all of ``values``
    that may, or ``total`` when ``values`` are the first of that many (less those of them left out here)."""
    shown = [value for value in values if _offered(value)]
    count = len(shown) if total is None else max(total - (len(values) - len(shown)), len(shown))
    sent = shown[:MOST]
    return Completion(values=sent, total=count, has_more=count > len(sent))


# -- models --------------------------------------------------------------------------------------------------------


async def _catalogue(runtime: Callable[[], Awaitable[Runtime | None]]) -> tuple[Catalog, Runtime | None]:
    """The catalogue a workflow judges its model by (``prompts._checked_model``): the runtime's, else the bundled one.
    Its first parse (about a second) runs in a worker thread."""
    from kie_mcp.catalog import load_catalog
    from kie_mcp.catalog.registry import loaded

    if not loaded():
        await anyio.to_thread.run_sync(load_catalog)
    rt = await runtime()
    return (rt.catalog if rt is not None else load_catalog()), rt


# What each rule takes (models, aspect ratios), by catalogue, live list and rule (``KeptPerOffer``): judging every
# model once costs tens of milliseconds, and a host asks again on every key the user types. A catalogue sync replaces
# both objects, so it is judged again.
_TAKEN: KeptPerOffer[tuple[Any, ...]] = KeptPerOffer(64)  # five workflows' arguments, with and without words to speak


def _kept(catalog: Catalog, rt: Runtime | None, rule: Any, judge: Callable[[], Iterable[Any]]) -> tuple[Any, ...]:
    """What ``judge`` finds for ``rule`` by ``catalog`` and ``rt``'s live list, judged once per pair (``_TAKEN``)."""
    return _TAKEN.get(catalog, rt.live if rt is not None else None, rule, lambda: tuple(judge()))


def _taken(catalog: Catalog, rt: Runtime | None, rule: tuple[str, Fit] | None) -> tuple[ModelSpec, ...]:
    """The models ``rule`` (a workflow's kind and ``Fit``) takes, in catalogue order; with no rule, every model
    ``kie://models/{model_id}`` reads (any KIE still sells: ``generation.resolve_model`` with followups)."""
    from kie_mcp.catalog.live import still_sold
    from kie_mcp.prompts import takes_model

    if rule is None:
        return _kept(catalog, rt, rule, lambda: still_sold(catalog, rt.live if rt is not None else None))
    return _kept(catalog, rt, rule, lambda: (s for s in catalog.offered() if takes_model(s, *rule, rt)))


def _ratios(catalog: Catalog, rt: Runtime | None, argument: tuple[str, str], typed: str) -> Completion:
    """The aspect ratios a workflow's ratio argument takes (``prompts.ratios_taken``, judged by the catalogue the
    workflow plans with: ``rt``'s, or the bundled one) that start with ``typed``, the argument's default first."""
    from kie_mcp.prompts import ratios_taken
    from kie_mcp.runtime import SERVING

    def judge() -> list[str]:
        token = SERVING.set(rt)  # the workflow's catalogue: KIE's live list, none it withdrew
        try:
            return ratios_taken(*argument)
        finally:
            SERVING.reset(token)

    wanted = typed.strip().casefold()
    return _answer([ratio for ratio in _kept(catalog, rt, ("ratio", argument), judge) if ratio.startswith(wanted)])


def _words(text: str) -> str:
    """``text`` as words are matched: folded case, and separators (``-_./()``, spaces) as one space."""
    return re.sub(r"[\s_\-./()]+", " ", text.casefold()).strip()


def _model_ids(catalog: Catalog, rt: Runtime | None, rule: tuple[str, Fit] | None, typed: str) -> Completion:
    """The ids of the models ``rule`` takes that match ``typed``, best first (see the module's words)."""
    models = _taken(catalog, rt, rule)
    wanted, words = typed.strip().casefold(), _words(typed)
    first = rule[1].default if rule is not None else None
    ranked = []
    for order, spec in enumerate(models):
        folded = spec.id.casefold()
        if not wanted or folded.startswith(wanted):
            rank = 0 if folded == wanted else 1
        elif words and any(f" {_words(name)}".find(f" {words}") >= 0 for name in (spec.id, spec.title, *spec.aliases)):
            rank = 2
        else:
            continue
        ranked.append((rank, spec.id != first, order, spec.id))
    return _answer([found[-1] for found in sorted(ranked)])


# -- pictures and tasks --------------------------------------------------------------------------------------------


async def _formats(models: tuple[str, ...]) -> tuple[Sniffed, ...]:
    """The picture formats ``models`` all take (``prompts.picture_formats``), by the bundled catalogue's media limits
    (its first parse in a worker thread): no runtime is opened to suggest a file in references/."""
    from kie_mcp.catalog import load_catalog
    from kie_mcp.catalog.registry import loaded
    from kie_mcp.prompts import picture_formats

    if not loaded():
        await anyio.to_thread.run_sync(load_catalog)
    return picture_formats(models, load_catalog())


async def _picture_paths(
    typed: str,
    runtime: Callable[[], Awaitable[Runtime | None]],
    listings: Iterable[object],
    formats: Sequence[Sniffed],
) -> Completion:
    """A picture argument's values: the pictures in ``formats`` in references/ (``_pictures``), and those kie-mcp
    saved in the session folders of outputs/, newest first (``media.saved.saved_pictures``, bounded), each by its path
    relative to the workspace; those whose path starts with ``typed`` first, then those with a folder or file name
    that does. A character_sheet's hero stays in its session folder, and later workflows take it by that path."""
    from kie_mcp.media.saved import OUTPUTS, saved_pictures
    from kie_mcp.references import ReferenceListing

    listing = next((kept for kept in listings if isinstance(kept, ReferenceListing)), None)
    try:
        files = await listing.files() if listing is not None else []
    except OSError:  # the folder could not be read: none of it to suggest, as a listing would show none
        files = []
    wanted = typed.strip().casefold()
    place = f"{OUTPUTS}/"
    rt = await runtime() if "/" not in wanted or wanted.startswith(place) or place.startswith(wanted) else None
    saved, unread = [], False
    if rt is not None:  # else what was typed names no saved file (references/...), or there is no workspace to read
        inside = wanted.removeprefix(place) if wanted.startswith(place) else ""
        folders = inside.split("/", 1)[0] if inside else ""  # a session folder typed: only those of its name read
        named = {extension for media in formats for extension in media.extensions}  # a saved result's real type

        def fits(path: str) -> bool:
            return path.rsplit(".", 1)[-1].lower() in named and _rank(path, wanted) is not None

        saved, unread = await anyio.to_thread.run_sync(
            lambda: saved_pictures(rt.settings.workspace, fits, folders=folders)
        )
    answer = _pictures(files, wanted, formats, saved)
    return Completion(values=answer.values, total=None, has_more=True) if unread else answer


def _shipped_paths(typed: str) -> Completion:
    """The paths of the prompt-library pages kie-mcp ships (``library.shipped_pages``: ``guide.md``,
    ``prompt-library/veo-3-1.md``), each a path ``kie://shipped/prompting/{+path}`` reads: those starting with
    ``typed``, then those with a file name that does (``_rank``: ``veo`` finds ``prompt-library/veo-3-1.md``), in the
    library's order within each."""
    from kie_mcp.library import shipped_pages

    wanted = typed.strip().casefold()
    ranked = [
        (rank, order, path) for order, path in enumerate(shipped_pages()) if (rank := _rank(path, wanted)) is not None
    ]
    return _answer([path for *_, path in sorted(ranked)])


def _rank(path: str, wanted: str) -> int | None:
    """0 when the path (relative to the workspace) starts with ``wanted``, 1 when a folder or file name in it (below
    its first folder) does, else None."""
    folded = path.casefold()
    if folded.startswith(wanted):
        return 0
    return 1 if any(part.startswith(wanted) for part in folded.split("/")[1:]) else None


def _pictures(files: Sequence[Found], wanted: str, formats: Sequence[Sniffed], saved: Sequence[str] = ()) -> Completion:
    """The pictures in ``formats`` of ``files`` (references/, by their bytes' type, or their name's; sorted by path)
    and the ``saved`` ones (outputs/, newest first) that ``wanted`` matches (``_rank``): the paths starting with it,
    then those it names a folder or file of; in each, references/ first."""
    pictures = {media.mime for media in formats}
    paths = [item.relative for item in files if item.mime in pictures]
    ranked = []
    for order, path in enumerate([*paths, *saved]):
        rank = _rank(path, wanted)
        if rank is not None:
            ranked.append((rank, order, path))
    return _answer([path for *_, path in sorted(ranked)])


async def _in_outputs(
    typed: str,
    runtime: Callable[[], Awaitable[Runtime | None]],
    look: Callable[..., tuple[list[str], bool]],
    *,
    journaled: bool = False,
) -> Completion:
    """What ``look`` finds in the workspace's outputs/ for ``typed`` (``_session_pages``: the session folders whose
    gallery page ``kie://outputs/{session}/index.html`` serves; ``_served_entries``: the paths
    ``kie://outputs/{+path}`` reads; ``_previewed_entries``: those ``kie://previews/{+path}`` reads), by the
    runtime's settings (its workspace, its preview size; ``journaled``: and its journal, which tells the saved files
    that held the API key), in a worker thread; past its bound, ``hasMore`` with no total."""
    rt = await runtime()
    if rt is None:
        return NONE  # no workspace to read
    if journaled:
        look = functools.partial(look, journal=rt.journal)
    found, unread = await anyio.to_thread.run_sync(look, rt.settings, typed.strip())
    answer = _answer(found)
    return Completion(values=answer.values, total=None, has_more=True) if unread else answer


def _session_pages(settings: Settings, typed: str) -> tuple[list[str], bool]:
    """The names of the session folders of the workspace's outputs/ (``<date>-<session>``, real folders, never a link
    or a hidden one, named as the session page's read takes them: ``gallery._session_folder_name``) with a gallery
    page kie-mcp wrote (``saved.is_own_page``: ``index.html``, or ``kie-mcp-gallery.html`` beside a page of the user's
    own) and a result the gallery shows (``_shows_results``), as the session page's read serves them: those whose
    name starts with ``typed``, then those whose session (the name after its date) does, newest day first in each; and
    whether any were left unread. The folder names, never a path. Bounded, as a host asks again on every key: the
    pages of at most ``SESSIONS_READ`` folders are looked at, and no more once ``MOST`` are found."""
    from kie_mcp.media.gallery import _session_folder_name
    from kie_mcp.media.saved import OUTPUTS, OWN_INDEX, PAGE, SESSION_FOLDER, SESSIONS_READ, is_own_page, refusal

    outputs = settings.workspace / OUTPUTS
    if refusal(outputs) is not None:  # a link to / or the home folder: no page is read through it
        return [], False
    try:
        with os.scandir(outputs) as listing:
            folders = [
                (entry.name, found.group(1), found.group(2))
                for entry in listing
                if (found := SESSION_FOLDER.match(entry.name)) is not None and entry.is_dir(follow_symlinks=False)
            ]
    except OSError:  # no outputs/ yet, or none to read
        return [], False
    wanted = typed.casefold()
    ranked = []
    for name, day, session in folders:
        if not _session_folder_name(name) or not _offered(name):  # never served, or never offered
            continue
        if name.casefold().startswith(wanted):
            ranked.append((0, _newest_first(day), name))
        elif session.casefold().startswith(wanted):
            ranked.append((1, _newest_first(day), name))
    ranked.sort()
    linked = outputs.is_symlink()
    found: list[str] = []
    for looked, (*_, name) in enumerate(ranked):
        if len(found) > MOST or looked >= SESSIONS_READ:
            return found, True
        folder = outputs / name
        if any(is_own_page(folder / page) for page in (PAGE, OWN_INDEX)) and _shows_results(folder, linked):
            found.append(name)
    return found, False


def _shows_results(folder: Path, linked: bool) -> bool:
    """Whether the gallery shows a result of the session folder ``folder`` (its scan's items:
    ``gallery._scan_folder``). A build removes kie-mcp's page of a folder whose results are all gone, and the read of
    that page runs one first: offered, it would be refused. In an outputs/ of kie-mcp's own (not ``linked`` to a
    folder of the user's) a regular file of a result's type is one, and the first found is enough; in a linked one,
    only a file a sidecar names, as the scan takes it."""
    from kie_mcp.media.gallery import THUMBNAIL_SIDE, _media_kind, _scan_folder

    if linked:
        return bool(_scan_folder(folder, THUMBNAIL_SIDE).items)
    try:
        with os.scandir(folder) as listing:
            return any(
                entry.name[:1] != "." and _media_kind(entry.name) is not None and entry.is_file(follow_symlinks=False)
                for entry in listing
            )
    except OSError:  # gone, or unreadable: the gallery shows nothing of it
        return False


def _served_entries(settings: Settings, typed: str, journal: Journal | None = None) -> tuple[list[str], bool]:
    """What ``kie://outputs/{+path}`` serves in the folder of the workspace's outputs/ that ``typed`` names (all of
    it up to its last ``/``: ``2026-03-01-shoot/`` lists that session folder, nothing else; no ``/``: outputs/
    itself), whose name starts with the rest (case folded), newest first (by modification time); and whether any were
    left unjudged. Listed once with ``os.scandir`` (``_listed_entries``): a host asks again on every key, and a large
    outputs/ is never walked. Each is judged by the read's own rule (``surface.saved_result``): a regular file, never
    a link, a dotfile or one in a dot-folder (the kept previews, a download in progress), served where it is
    (``saved.is_served``: a file in a session folder, a gallery page of outputs/), not larger than a resource is sent
    (``MAX_RESOURCE_BYTES``), not one that held the API key as it was saved (``downloads.key_held``: its bytes are
    never served), as this process saw it or as ``journal``'s rows of the folder say (``Journal.key_held_in``: one
    query for the folder), and in an outputs/ linked to a folder of the user's only what kie-mcp saved there
    (``saved.lends``: sidecars read, so there at most ``MOST`` + 1 are judged, the rest left unjudged). A folder that
    may hold such files (a session folder, a folder in one; a real folder, never a link or a hidden one) is offered by
    its path and a ``/``, to be completed further. An outputs/ ``saved.refusal`` names is not read."""
    from kie_mcp.references import MAX_RESOURCE_BYTES

    def fits(_path: Path, size: int) -> bool:
        return size <= MAX_RESOURCE_BYTES

    return _listed_entries(settings.workspace, typed, fits, costly=False, journal=journal)


def _previewed_entries(settings: Settings, typed: str, journal: Journal | None = None) -> tuple[list[str], bool]:
    """What ``kie://previews/{+path}`` serves in the folder ``typed`` names, as ``_served_entries`` finds it (the same
    folder by folder listing, the same refusals: ``surface.saved_result`` judges both reads), but only the saved
    results that read makes a preview of, by the rule of its ``downloads.preview_of``: an image or a video by its name
    (``downloads.kind_of_file``), a video only while ffmpeg is found (``stitch.find_ffmpeg``) or a poster is kept for
    it as it is now (``downloads.cached_poster``, of the ``KIE_PREVIEW_PX`` the read serves). No size limit: the read
    sends a small preview of a result too large to send itself. Each value that may be sent (and the one more that
    says there are more) is also judged by its first bytes, as the read judges them (``_previewed``): a kept preview,
    or a picture Pillow opens within the read's pixel limit, or a video with a picture track. A picture is not
    decoded (a host asks on every key): one whose pixels are damaged past its header is offered, and its read says it
    has no preview; so is a video whose frames ffmpeg cannot decode. Without ffmpeg each video's kept poster is
    read, so at most ``MOST`` + 1 files are judged, the rest left unjudged; with it, the files past the values sent
    are counted by their names. Folders (session folders, folders in one) are offered with a ``/``, as
    ``_served_entries`` offers them."""
    from kie_mcp.media.downloads import cached_poster, kind_of_file
    from kie_mcp.media.stitch import StitchError, find_ffmpeg

    try:
        ffmpeg = bool(find_ffmpeg())
    except StitchError:  # none found, or a stale IMAGEIO_FFMPEG_EXE: only a kept poster is served
        ffmpeg = False
    side = settings.preview_px

    def previewed(path: Path, _size: int) -> bool:
        kind = kind_of_file(path)
        if kind == "video":
            return ffmpeg or cached_poster(path, side) is not None
        return kind == "image"

    return _listed_entries(
        settings.workspace,
        typed,
        previewed,
        costly=not ffmpeg,
        journal=journal,
        served=functools.partial(_previewed, side=side, ffmpeg=ffmpeg),
    )


def _previewed(path: Path, *, side: int, ffmpeg: bool) -> bool:
    """Whether the read of ``kie://previews/`` serves a preview of the saved result ``path`` (an image or a video by
    its name), judged by its head, never decoded (``downloads.preview_of``'s own steps, on the one file it opens,
    ``downloads.opened_source``): the preview kept beside it for this very file (``cached_thumbnail``,
    ``cached_poster``), else, for a picture, bytes of an image type (``sniff_mime``) that Pillow opens within the
    pixels a preview decodes (``_too_many_pixels`` of its ``_drafted`` size, as ``scaled_copy`` judges it), and, for
    a video while ffmpeg is found, bytes of a video type (an MP4 or MOV with a picture track: ``duration.tracks``, its
    box headers only). Reads a few kilobytes: a worker thread, and a bounded number of files."""
    from kie_mcp.media.downloads import (
        BOXED,
        SNIFF_BYTES,
        _drafted,
        _in_real_folder,
        _too_many_pixels,
        cached_poster,
        cached_thumbnail,
        kind_of,
        kind_of_file,
        opened_source,
        sniff_mime,
    )
    from kie_mcp.media.duration import tracks
    from kie_mcp.media.sniff import pillow

    named = kind_of_file(path)
    kept = cached_poster if named == "video" else cached_thumbnail
    if kept(path, side) is not None:
        return True  # the read serves the kept one, whatever the file's bytes
    if named == "video" and not ffmpeg:
        return False
    try:
        with opened_source(_in_real_folder(path)) as source:
            head = source.read(SNIFF_BYTES)
            mime = sniff_mime(head)
            if kind_of(mime) != named:
                return False
            source.seek(0)
            if named == "video":
                found = tracks(source, os.fstat(source.fileno()).st_size) if mime in BOXED else None
                return mime not in BOXED or (found is not None and found.video)
            with pillow().open(source) as image:  # its header only: nothing is decoded
                return not _too_many_pixels(image, size=_drafted(image, side))
    except Exception:  # a link or a FIFO in its place, unreadable, a header Pillow refuses: the read has no preview
        return False


def _listed_entries(
    workspace: Path,
    typed: str,
    fits: Callable[[Path, int], bool],
    *,
    costly: bool,
    journal: Journal | None,
    served: Callable[[Path], bool] | None = None,
) -> tuple[list[str], bool]:
    """The entries of the folder of ``workspace``'s outputs/ that ``typed`` names (``_served_entries`` says how) that
    ``kie://outputs/{+path}`` serves and that ``fits`` takes (by the file's path and size), newest first, as the
    paths a read takes (``as_read``); and whether any were left unjudged. ``fits`` is asked only of files past the
    read's own checks (a regular file served where it is, none that held the key: seen so, or so in ``journal``),
    before the sidecars of an outputs/ linked elsewhere are read; ``served`` (it reads the file) only of those that
    may be sent, while fewer than ``MOST`` + 1 values are found: the files past them are counted without it. Each file
    a costly check reads (a ``costly`` ``fits``, those sidecars, ``served``) is judged, and no more than ``MOST`` + 1
    files are: past them the rest is left unjudged, whatever those judged gave (a folder of 20,000 videos, none with a
    kept poster, is never read whole)."""
    import stat
    from pathlib import PurePosixPath

    from kie_mcp.media.downloads import key_held
    from kie_mcp.media.saved import OUTPUTS, SESSION_FOLDER, _lent, is_served, refusal

    outputs = workspace / OUTPUTS
    folder, _, start = typed.rpartition("/")
    parts = unquote(folder).split("/") if folder else []  # the folders named, as the read decodes them
    if typed.startswith("/") or any(part in ("", "..") or part.startswith(".") for part in parts):
        return [], False  # no folder kie://outputs/ serves from: ``/etc/``, a dot-folder, ``a//b``, ``../``
    if refusal(outputs) is not None:
        return [], False
    if parts and SESSION_FOLDER.match(parts[0]) is None:
        return [], False  # nothing is served below a folder of outputs/ that is no session folder
    here = outputs.joinpath(*parts)
    wanted = start.casefold()
    try:
        for depth in range(1, len(parts) + 1):  # every folder named a real one: a link is never listed through
            if not stat.S_ISDIR(os.lstat(outputs.joinpath(*parts[:depth])).st_mode):
                return [], False
        home = outputs.resolve() if outputs.is_symlink() else None
        with os.scandir(here) as listing:
            named = [e for e in listing if e.name[:1] != "." and as_read(e.name).casefold().startswith(wanted)]
        entries = []
        for entry in named:
            with contextlib.suppress(OSError):  # removed meanwhile
                entries.append((entry, entry.stat(follow_symlinks=False)))
    except (OSError, RuntimeError, ValueError):  # no outputs/ yet, or none to read
        return [], False
    entries.sort(key=lambda found: (-found[1].st_mtime_ns, found[0].name))
    held = _key_held_in(journal, PurePosixPath(OUTPUTS, *parts)) if parts else {}
    prefix = f"{folder}/" if folder else ""
    bounded = costly or home is not None
    found: list[str] = []
    judged = 0  # files a costly check read
    for entry, facts in entries:
        relative = PurePosixPath(*parts, entry.name)
        if stat.S_ISDIR(facts.st_mode):
            if is_served(relative / "file"):  # a session folder, or one in it
                found.append(f"{prefix}{as_read(entry.name)}/")
            continue
        if not stat.S_ISREG(facts.st_mode) or not is_served(relative):
            continue
        if key_held(here / entry.name, held.get(PurePosixPath(OUTPUTS, relative).as_posix())):
            continue
        checked = served is not None and len(found) <= MOST  # it may be sent: judged by its bytes too
        if bounded or checked:
            if judged > MOST or len(found) > MOST:  # each judged by reading: no more than one answer takes
                return found, True
            judged += 1
        if not fits(here / entry.name, facts.st_size):
            continue
        if home is not None and not _lent(home, home.joinpath(*relative.parts)):
            continue
        if checked and served is not None and not served(here / entry.name):
            continue
        found.append(f"{prefix}{as_read(entry.name)}")
    return found, False


def _key_held_in(journal: Journal | None, folder: PurePath) -> dict[str, int]:
    """``Journal.key_held_in`` of ``folder`` (relative to the workspace): none when there is no journal to ask (not
    open: another program holds it, a damaged one), the read scanning the bytes of what is offered all the same."""
    from kie_mcp.journal import JOURNAL_ERRORS

    if journal is None:
        return {}
    try:
        return journal.key_held_in(f"{folder.as_posix()}/")
    except JOURNAL_ERRORS:
        return {}


def as_read(name: str) -> str:
    """``name`` as a ``kie://outputs/`` path names it, so the read finds it: the SDK's template match ends the path at
    a ``?`` or ``#`` and percent-decodes it (``UriTemplate.match``), so those and ``%`` itself are percent-encoded
    (``pct%41.png`` is offered as ``pct%2541.png``, which reads as the file); every other character is sent as it is,
    as it reads back unchanged."""
    return name.replace("%", "%25").replace("?", "%3F").replace("#", "%23")


def _newest_first(day: str) -> tuple[int, ...]:
    """A sort key putting the later ``YYYY-MM-DD`` first."""
    return tuple(-int(part) for part in day.split("-"))


async def _task_ids(typed: str, runtime: Callable[[], Awaitable[Runtime | None]]) -> Completion:
    """The newest task ids of the workspace's journal that start with ``typed`` (ids are case-sensitive): ids the
    task resource reads (``kie.text.usable_task_id``), never a quote's or a create attempt's."""
    from kie_mcp.journal import ATTEMPT_ID, Journal
    from kie_mcp.kie.text import MAX_TASK_ID, usable_task_id
    from kie_mcp.spend.quotes import QUOTE_ID

    rt = await runtime()
    if rt is None or rt.settings.config_problem is not None or not isinstance(rt.journal, Journal):
        return NONE  # the resource would not read a task either; the tools say why
    try:
        ids, total = await anyio.to_thread.run_sync(rt.journal.recent_task_ids, typed.strip(), MOST + 1, MAX_TASK_ID)
    except sqlite3.Error:  # a journal another program holds, or damaged: nothing to suggest now
        return NONE
    usable = [i for i in ids if usable_task_id(i) == i and not (QUOTE_ID.fullmatch(i) or ATTEMPT_ID.fullmatch(i))]
    return _answer(usable, total - (len(ids) - len(usable)))
