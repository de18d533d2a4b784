"""``completion/complete``: what a host suggests for a workflow's model and picture arguments and the model and task
resource templates.

Through the real MCP client in both protocol eras (``Client.complete``), and once over real stdio with the installed
console script. The audit's repro: every completion was answered "Method not found", so hosts that offer completion
(VS Code, MCP Inspector) suggested nothing, and a model id had to be typed exactly.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import INVALID_PARAMS, CompleteResult, PromptReference, Request, ResourceTemplateReference
from PIL import Image

from kie_mcp import completions
from kie_mcp.catalog import load_catalog
from kie_mcp.sandbox import SANDBOX_API_KEY

from .conftest import answering, audits, eras_in_turn, text_of
from .test_prompts import ARGUMENTS
from .test_task_views import journaled, task

MODEL = ResourceTemplateReference(uri="kie://models/{+model_id}")
TASK = ResourceTemplateReference(uri="kie://tasks/{task_id}")
PAGES = ResourceTemplateReference(uri="kie://outputs/{session}/index.html")
SHIPPED_PAGE = ResourceTemplateReference(uri="kie://shipped/prompting/{+path}")
OUTPUT = ResourceTemplateReference(uri="kie://outputs/{+path}")
PREVIEW = ResourceTemplateReference(uri="kie://previews/{+path}")
SHIPPED = Path(__file__).resolve().parent.parent / "prompting"  # the prompt library kie-mcp ships


async def _values(client: Client, ref: Any, name: str, value: str = "", **given: str) -> CompleteResult:
    return await client.complete(ref, {"name": name, "value": value}, given or None)


def _prompt(name: str) -> PromptReference:
    return PromptReference(name=name)


async def _renders(client: Client, workflow: str, arguments: dict[str, str]) -> bool:
    """Whether the workflow renders with ``arguments`` (False: refused as invalid params, naming the model)."""
    try:
        await client.get_prompt(workflow, arguments)
    except MCPError as err:
        if err.error.code != INVALID_PARAMS:
            raise
        return False
    return True


async def test_the_server_declares_completions_and_offers_veo_ids_for_veo(connect):
    """The audit: "completion/complete" answered "Method not found". Typing "veo" for a workflow's video model
    offers the Veo models, the workflow's default first."""
    async with connect() as client:
        declared = client.server_capabilities.completions
        veo = (await _values(client, _prompt("influencer_recreation"), "video_model", "veo")).completion
        nano = (await _values(client, _prompt("character_sheet"), "model", "NANO")).completion
    assert declared is not None
    assert veo.values == ["veo3_fast", "veo3", "veo3_lite"], veo.values
    assert veo.total == 3 and veo.has_more is False
    assert nano.values[0] == "nano-banana-2" and "nano-banana-pro" in nano.values  # any letter case
    assert "google/nano-banana-edit" not in nano.values  # needs an input image: the hero is made from words


MODEL_ARGUMENTS = [
    ("influencer_recreation", "video_model", "video"),
    ("product_showcase", "video_model", "video"),
    ("character_sheet", "model", "image"),
    ("ugc_video", "model", "video"),
    ("script_to_video", "model", "video"),
]


@eras_in_turn(("workflow", "argument", "kind"), MODEL_ARGUMENTS, [f"{w}-{a}" for w, a, _ in MODEL_ARGUMENTS])
async def test_a_workflows_model_completes_to_exactly_the_ids_the_workflow_takes(connect, workflow, argument, kind):
    """Every id offered renders the workflow, and every model of its kind not offered is refused by it: the same
    catalogue and the same rules. Follow-ups (veo/extend) and models whose calls the plan would have refused (an
    edit model for a portrait from words, a text-to-video model for a still's animation) are not offered."""
    async with connect() as client:
        offered = (await _values(client, _prompt(workflow), argument)).completion
        taken = set()
        for spec in load_catalog().offered():
            if spec.kind == kind and await _renders(client, workflow, {**ARGUMENTS[workflow], argument: spec.id}):
                taken.add(spec.id)
    assert set(offered.values) == taken, set(offered.values) ^ taken
    assert offered.total == len(offered.values) and offered.has_more is False
    assert offered.values[0] == ("nano-banana-2" if kind == "image" else "veo3_fast")  # the workflow's default first
    assert len(offered.values) == len(set(offered.values))


async def test_words_to_speak_given_with_the_workflow_leave_out_silent_video_models(connect):
    """The context the host sends (the arguments filled in already) is the workflow's: with a script, its video step
    speaks, so a silent model it would then refuse is not offered."""
    async with connect() as client:
        silent = (await _values(client, _prompt("influencer_recreation"), "video_model", "hailuo")).completion
        spoken = await _values(client, _prompt("influencer_recreation"), "video_model", "hailuo", script="Hi there.")
        with pytest.raises(MCPError, match="silent"):
            await client.get_prompt(
                "influencer_recreation",
                {**ARGUMENTS["influencer_recreation"], "script": "Hi there.", "video_model": silent.values[0]},
            )
    assert silent.values[0].startswith("hailuo/")  # then MiniMax H3, whose other names include "hailuo h3"
    assert spoken.completion.values == [] and spoken.completion.total == 0


async def test_a_word_of_the_title_finds_models_whose_id_starts_otherwise(connect):
    """Typing "seedance" finds bytedance/seedance-2 (its title is Seedance 2.0) after any id it starts; "kling"
    every Kling model; a template written without its operator ({model_id}) is the same template."""
    bare = ResourceTemplateReference(uri="kie://models/{model_id}")
    async with connect() as client:
        seedance = (await _values(client, MODEL, "model_id", "seedance")).completion
        kling = (await _values(client, bare, "model_id", "kling")).completion
        two_words = (await _values(client, _prompt("ugc_video"), "model", "kling 3")).completion
    catalog = load_catalog()
    assert "bytedance/seedance-2" in seedance.values
    assert all("Seedance" in catalog.get(model).title for model in seedance.values)
    assert set(kling.values) == {s.id for s in catalog.offered() if s.title.startswith("Kling")}
    assert kling.values[0] == "kling-3.0/video"  # the catalogue's order
    assert two_words.values and all(catalog.get(m).title.startswith("Kling 3.0") for m in two_words.values)


async def test_at_most_100_values_are_sent_and_total_and_has_more_say_how_many_there_are(connect):
    async with connect() as client:
        every = (await _values(client, MODEL, "model_id")).completion
        nothing = (await _values(client, MODEL, "model_id", "no-such-model")).completion
    offered = [spec.id for spec in load_catalog().offered()]  # follow-ups too: the resource documents them
    assert len(every.values) == 100 and every.values == offered[:100]
    assert every.total == len(offered) > 100 and every.has_more is True
    assert nothing.values == [] and nothing.total == 0 and nothing.has_more is False


async def test_models_kie_added_are_offered_and_ones_it_withdrew_are_not(connect, controls, transport, tmp_path):
    """The catalogue the workflow judges its model by: KIE's live list (a model it added, one it withdrew)."""
    from .test_live_catalog import EXTRA
    from .test_live_wiring import sync

    await controls.post("catalog/extra", EXTRA)  # a model KIE added: brand/new-image
    await controls.post("catalog/withdraw", {"model": "nano-banana-pro"})
    await sync(transport, controls, tmp_path)
    async with connect() as client:
        added = (await _values(client, _prompt("character_sheet"), "model", "brand")).completion
        nano = (await _values(client, _prompt("character_sheet"), "model", "nano")).completion
        documented = (await _values(client, MODEL, "model_id", "nano-banana-p")).completion
    assert added.values == ["brand/new-image"]
    assert "nano-banana-2" in nano.values and "nano-banana-pro" not in nano.values
    assert documented.values == []


async def test_a_picture_argument_completes_to_pictures_in_references_by_relative_path(connect, tmp_path):
    """Relative paths a call takes; never a dotfile, a dot-folder, a file that is not a picture, a link leading out
    of the workspace (or to a dotfile in it), or a file outside references/."""
    folder = tmp_path / "references"
    (folder / "products").mkdir(parents=True)
    (folder / "influencers").mkdir()
    (folder / ".private").mkdir()
    picture = Image.new("RGB", (32, 32), (200, 30, 30))
    picture.save(folder / "products" / "bottle.png")
    picture.save(folder / "influencers" / "Mia.jpg")
    picture.save(folder / ".hidden.png")
    picture.save(folder / ".private" / "face.png")
    picture.save(tmp_path / "outside-references.png")
    picture.save(tmp_path / ".secret.png")
    (folder / "notes.txt").write_text("lighting notes")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere.png"
    picture.save(elsewhere)
    (folder / "escape.png").symlink_to(elsewhere)
    (folder / "dotted.png").symlink_to(tmp_path / ".secret.png")
    (folder / "inside.png").symlink_to(folder / "products" / "bottle.png")  # a link inside: listed, as resources do
    try:
        async with connect() as client:
            every = (await _values(client, _prompt("influencer_recreation"), "reference_image")).completion
            bottle = (await _values(client, _prompt("product_showcase"), "product_image", "bot")).completion
            mia = (
                await _values(client, _prompt("influencer_recreation"), "reference_image", "references/in")
            ).completion
            scene = (await _values(client, _prompt("influencer_recreation"), "scene", "ref")).completion
    finally:
        elsewhere.unlink()
    assert every.values == ["references/influencers/Mia.jpg", "references/inside.png", "references/products/bottle.png"]
    assert every.total == 3 and every.has_more is False
    assert bottle.values == ["references/products/bottle.png"]
    assert mia.values == ["references/influencers/Mia.jpg", "references/inside.png"]  # the path's start, then a name
    assert scene.values == []
    assert not any(os.path.isabs(value) for value in every.values)


async def _saved_hero(client: Client) -> str:
    """A hero portrait made and saved in the session folder of "maya-sheet", as character_sheet makes it: its path."""
    made = await client.call_tool(
        "generate_image",
        {"model": "nano-banana-2", "prompt": "a hero portrait", "session": "maya-sheet", "wait_seconds": 30},
    )
    [hero] = made.structured_content["tasks"][0]["files"]
    return hero


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
async def test_a_picture_argument_also_offers_the_pictures_saved_in_session_folders_newest_first(connect, tmp_path):
    """The audit: character_sheet says its results stay in outputs/<date>-<session>/ and later workflows take them
    by those paths, yet ugc_product_selfie's creator_image suggested only files in references/. The pictures saved in
    session folders are offered too, after references/, newest first, by the path a call takes (estimate_cost takes
    it); never a kept preview (a dotfile), a sidecar, a link, or a folder a link puts in a session folder's place."""
    picture = Image.new("RGB", (64, 64), (30, 90, 160))
    (tmp_path / "references").mkdir()
    picture.save(tmp_path / "references" / "maya.png")
    old = tmp_path / "outputs" / "2020-01-01-old-sheet"
    old.mkdir(parents=True)
    picture.save(old / "nano-banana-2_old_1.png")
    os.utime(old / "nano-banana-2_old_1.png", (1_600_000_000, 1_600_000_000))
    (old / "nano-banana-2_old.json").write_text("{}")
    picture.save(old / ".nano-banana-2_old_1.png.thumb-512.jpg")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    picture.save(elsewhere / "private.png")
    (old / "linked_1.png").symlink_to(elsewhere / "private.png")
    (tmp_path / "outputs" / "2020-01-02-linked").symlink_to(elsewhere)
    selfie = _prompt("ugc_product_selfie")
    try:
        async with connect(elicitation=answering()) as client:
            hero = await _saved_hero(client)
            every = (await _values(client, selfie, "creator_image")).completion
            saved = (await _values(client, selfie, "creator_image", "outputs/")).completion
            named = (await _values(client, selfie, "product_image", "nano-banana-2_old")).completion
            folder = (await _values(client, selfie, "style_image", "outputs/2020")).completion
            taken = await client.call_tool(
                "estimate_cost", {"model": "nano-banana-2", "prompt": "the woman from image 1", "images": [hero]}
            )
    finally:
        shutil.rmtree(elsewhere)
    older = "outputs/2020-01-01-old-sheet/nano-banana-2_old_1.png"
    assert hero.startswith("outputs/") and hero.endswith(".jpg"), hero
    assert every.values == ["references/maya.png", hero, older] and every.total == 3, every
    assert saved.values == [hero, older] and named.values == [older] and folder.values == [older]
    assert not taken.is_error, text_of(taken)


PICTURE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF", "bmp": "BMP", "gif": "GIF"}


@pytest.mark.parametrize(
    ("workflow", "argument", "model"),
    [
        ("product_showcase", "product_image", "nano-banana-2"),
        ("influencer_recreation", "reference_image", "nano-banana-pro"),
        ("ugc_product_selfie", "creator_image", "nano-banana-2"),
    ],
)
async def test_a_picture_argument_offers_only_pictures_the_workflows_first_call_takes(
    connect, tmp_path, workflow, argument, model
):
    """The audit: a picture argument offered every picture in references/, a TIFF, BMP or GIF among them, and the
    workflow's first call (Nano Banana's still, Veo's first frame) refused each: "takes jpeg, png or webp only". Only
    the formats every model the picture goes to first takes are offered (by the catalogue's media limits), in
    references/ and among the saved results, and estimate_cost takes each as the workflow's first call names it."""
    picture = Image.new("RGB", (1200, 1200), (200, 120, 40))
    (tmp_path / "references").mkdir()
    for extension, fmt in PICTURE_FORMATS.items():
        picture.save(tmp_path / "references" / f"bottle.{extension}", fmt)
    saved = tmp_path / "outputs" / "2020-01-01-sheet"
    saved.mkdir(parents=True)
    picture.save(saved / "gpt-image-2-image-to-image_a_1.png")
    picture.save(saved / "gpt-image-2-image-to-image_b_1.tif", "TIFF")
    async with connect() as client:
        offered = (await _values(client, _prompt(workflow), argument)).completion
        refused = []
        for path in offered.values:
            asked = {"model": model, "prompt": "a person holds it", "images": [path], "aspect_ratio": "9:16"}
            if (answer := await client.call_tool("estimate_cost", asked)).is_error:
                refused.append(f"{path}: {text_of(answer)}")
    assert offered.values == [
        "references/bottle.jpg",
        "references/bottle.png",
        "references/bottle.webp",
        "outputs/2020-01-01-sheet/gpt-image-2-image-to-image_a_1.png",
    ], offered
    assert not refused, refused


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
async def test_a_picture_argument_offers_from_a_linked_outputs_folder_only_what_kie_mcp_saved_there(connect, tmp_path):
    """An outputs/ linked to a folder of the user's may hold their own photos, in a folder named by a date as a
    session's is: only the pictures kie-mcp saved there (its sidecars list them) are offered, as only they are
    served."""
    chosen = tmp_path.parent / f"{tmp_path.name}-results"
    (chosen / "2020-05-05-holiday").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(chosen / "2020-05-05-holiday" / "beach.jpg")
    (tmp_path / "outputs").symlink_to(chosen)
    try:
        async with connect(elicitation=answering()) as client:
            hero = await _saved_hero(client)
            offered = (await _values(client, _prompt("ugc_product_selfie"), "creator_image", "outputs/")).completion
    finally:
        shutil.rmtree(chosen)
    assert offered.values == [hero], offered


async def test_an_aspect_ratio_argument_completes_to_exactly_the_ratios_the_workflow_takes(connect):
    """The audit: ugc_product_selfie's aspect_ratio was offered nothing. It offers the ratios its models make (those
    KIE sells), its default 9:16 first; each renders the workflow, and a ratio not offered is refused by it."""
    selfie = _prompt("ugc_product_selfie")
    given = {"creator_image": "references/maya.png", "product_image": "references/bottle.png", "setting": "a car"}
    async with connect() as client:
        every = (await _values(client, selfie, "aspect_ratio")).completion
        nine = (await _values(client, selfie, "aspect_ratio", "9")).completion
        rendered = [await _renders(client, "ugc_product_selfie", {**given, "aspect_ratio": r}) for r in every.values]
        odd = await _renders(client, "ugc_product_selfie", {**given, "aspect_ratio": "7:3"})
    assert every.values[0] == "9:16" and {"4:5", "1:1", "16:9"} <= set(every.values), every.values
    assert "9:21" in every.values  # GPT Image 2's alone: the plan writes its call for that model only
    assert every.total == len(every.values) and every.has_more is False
    assert nine.values == ["9:16", "9:21"], nine.values
    assert all(rendered) and not odd


async def _saved_in(client: Client, session: str) -> str:
    """An image made in ``session``: the name of its session folder (its gallery page written by the save)."""
    made = await client.call_tool(
        "generate_image", {"model": "nano-banana-2", "prompt": "a pear", "session": session, "wait_seconds": 30}
    )
    [saved] = made.structured_content["tasks"][0]["files"]
    return saved.split("/")[1]


async def test_a_session_page_completes_to_the_session_folders_with_a_gallery_page(connect, tmp_path):
    """The audit: ``kie://outputs/{session}/index.html`` offered nothing, though a read by the session's name alone
    is not found (folders are named ``<date>-<session>``). Its ``session`` offers the session folders of outputs/
    whose page kie-mcp wrote, newest first, matched by the folder's name or the session's; each reads. Never a folder
    without such a page (the user's own page, none at all), one that is not a session folder, or a path."""
    outputs = tmp_path / "outputs"
    (outputs / "2020-01-01-mine").mkdir(parents=True)
    (outputs / "2020-01-01-mine" / "index.html").write_text("<html>my own page</html>")
    (outputs / "2020-01-02-empty").mkdir()
    (outputs / "holiday").mkdir()
    async with connect(elicitation=answering()) as client:
        serum = await _saved_in(client, "serum-showcase")
        older = await _saved_in(client, "sage-selfie")
        (outputs / older).rename(outputs / f"2021-03-04-{older[11:]}")
        older = f"2021-03-04-{older[11:]}"
        every = (await _values(client, PAGES, "session")).completion
        by_session = (await _values(client, PAGES, "session", "SERUM")).completion
        by_day = (await _values(client, PAGES, "session", "2021")).completion
        pages = [(await client.read_resource(f"kie://outputs/{name}/index.html")).contents[0] for name in every.values]
    assert every.values == [serum, older] and every.total == 2 and every.has_more is False, every
    assert by_session.values == [serum] and by_day.values == [older]
    assert all(page.mime_type == "text/html" and "kie-mcp" in page.text for page in pages)


async def test_a_session_page_never_completes_to_a_folder_whose_page_the_read_refuses(connect, tmp_path):
    """The review: a folder holding only a gallery page of kie-mcp's (``2033-01-01-.kie-mcp``, a copy; or a session
    whose results the user deleted) was offered, and its read refused it: the gallery removes the page of a session
    with no result left, and the read brings the gallery up to date first. Only folders with a result are offered,
    and each one offered reads."""
    outputs = tmp_path / "outputs"
    async with connect(elicitation=answering()) as client:
        kept = await _saved_in(client, "pear")
        emptied = await _saved_in(client, "plum")
        for saved in (outputs / emptied).iterdir():
            if saved.name != "index.html":
                saved.unlink()
        (outputs / "2033-01-01-.kie-mcp").mkdir()
        shutil.copy(outputs / kept / "index.html", outputs / "2033-01-01-.kie-mcp" / "index.html")
        offered = (await _values(client, PAGES, "session")).completion
        reads = [await _reads(client, f"kie://outputs/{name}/index.html") for name in offered.values]
    assert offered.values == [kept] and offered.total == 1, offered
    assert reads == [True]


async def _reads(client: Client, uri: str) -> bool:
    try:
        return "kie-mcp" in (await client.read_resource(uri)).contents[0].text
    except MCPError:
        return False


async def test_a_shipped_prompt_page_completes_to_the_paths_of_the_pages_kie_mcp_ships(connect):
    """The review: ``kie://shipped/prompting/{+path}`` offered nothing, though it reads only the pages kie-mcp ships.
    Its path offers those pages' paths, matched by the start of the path or of its file name (``veo`` finds
    ``prompt-library/veo-3-1.md``), and each reads kie-mcp's page; nothing else is offered."""
    shipped = sorted(page.relative_to(SHIPPED).as_posix() for page in SHIPPED.rglob("*.md"))
    async with connect() as client:
        every = (await _values(client, SHIPPED_PAGE, "path")).completion
        veo = (await _values(client, SHIPPED_PAGE, "path", "veo")).completion
        kling = (await _values(client, SHIPPED_PAGE, "path", "prompt-library/K")).completion
        other = (await _values(client, SHIPPED_PAGE, "path", "../pyproject")).completion
        read = [
            (await client.read_resource(f"kie://shipped/prompting/{path}")).contents[0].text for path in every.values
        ]
    assert sorted(every.values) == shipped and every.total == len(shipped) and every.has_more is False, every
    assert veo.values == ["prompt-library/veo-3-1.md"] and kling.values == ["prompt-library/kling-3.md"]
    assert other.values == [] and other.total == 0
    assert read == [(SHIPPED / path).read_text(encoding="utf-8") for path in every.values]


async def _read_bytes(client: Client, path: str) -> bytes | str | None:
    """What ``kie://outputs/<path>`` serves (text or bytes), or None when the read refuses it."""
    try:
        served = (await client.read_resource(f"kie://outputs/{path}")).contents[0]
    except MCPError:
        return None
    return served.text if hasattr(served, "text") else base64.b64decode(served.blob)


def _dated(path: Path, when: float, data: bytes = b"\x00kie") -> Path:
    """A file at ``path`` holding ``data``, modified at ``when`` (seconds since the epoch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (when, when))
    return path


async def test_a_saved_result_completes_folder_by_folder_to_the_paths_its_read_serves(connect, tmp_path):
    """The audit: ``kie://outputs/{+path}`` offered nothing, so a host completing resource templates (MCP Inspector,
    VS Code) could not find a saved result. Its ``path`` offers what that read serves in the one folder the typed
    path names, newest first: in outputs/, its gallery pages and session folders (``<folder>/``, to go on from);
    in a session folder, its files and folders; matched by the start of the name (case folded). Each file offered
    reads, exactly as it is on disk."""
    outputs = tmp_path / "outputs"
    async with connect(elicitation=answering()) as client:
        folder = await _saved_in(client, "pear")
        made = sorted(entry.name for entry in (outputs / folder).iterdir() if not entry.name.startswith("."))
        for n, name in enumerate(made):  # oldest first as listed: the answer turns it round
            os.utime(outputs / folder / name, (1_700_000_000 + n, 1_700_000_000 + n))
        _dated(outputs / folder / "cuts" / "take-1.png", 1_600_000_000)
        os.utime(outputs / folder / "cuts", (1_600_000_000, 1_600_000_000))
        _dated(outputs / "holiday" / "beach.png", 1_800_000_000)  # no session folder: nothing in it is served
        _dated(outputs / "notes.txt", 1_800_000_000)  # nor a file of outputs/ other than a gallery page
        top = (await _values(client, OUTPUT, "path")).completion
        inside = (await _values(client, OUTPUT, "path", f"{folder}/")).completion
        image = (await _values(client, OUTPUT, "path", f"{folder}/NANO")).completion
        deeper = (await _values(client, OUTPUT, "path", f"{folder}/cuts/")).completion
        pages = (await _values(client, OUTPUT, "path", "index")).completion
        elsewhere = [
            (await _values(client, OUTPUT, "path", typed)).completion for typed in ("holiday/", "../", "/", "a//")
        ]
        files = [value for value in inside.values + deeper.values if not value.endswith("/")]
        reads = {value: await _read_bytes(client, value) for value in files}
    assert f"{folder}/" in top.values and "index.html" in top.values, top
    assert not {"holiday/", "notes.txt"} & set(top.values) and top.total == len(top.values), top
    assert inside.values == [f"{folder}/{name}" for name in reversed(made)] + [f"{folder}/cuts/"], inside
    assert inside.total == len(made) + 1 and inside.has_more is False
    assert len(image.values) == 2, image  # the picture and its sidecar
    assert all(value.startswith(f"{folder}/nano-banana-2_") for value in image.values), image
    assert deeper.values == [f"{folder}/cuts/take-1.png"] and pages.values == ["index.html"], (deeper, pages)
    assert all(answer.values == [] and answer.total == 0 for answer in elsewhere), elsewhere
    for value, served in reads.items():
        on_disk = (outputs / value).read_bytes()
        assert served == (on_disk.decode() if isinstance(served, str) else on_disk), value


async def test_every_saved_result_offered_reads_whatever_its_name_holds(connect, tmp_path):
    """The review: names holding ``%``, ``#`` or ``?`` were offered as they are (``pct%41.png``, ``hash#1.png``,
    ``q?x.png``), but the read of ``kie://outputs/<value>`` ends the path at ``?`` or ``#`` and percent-decodes it,
    so each of those values was refused. Each is offered percent-encoded as the read decodes it (in a folder so named
    too), and every value offered reads back that file's bytes."""
    names = ["a b.png", "hash#1.png", "q?x.png", "pct%41.png", "pct%2e%2e.png", "plus+.png", "ünï.png", "brace{x}.png"]
    here_of = {}
    async with connect(elicitation=answering()) as client:
        folder = await _saved_in(client, "pear")
        here = tmp_path / "outputs" / folder
        for n, name in enumerate(names):
            here_of[name] = _dated(here / name, 1_900_000_000 + n, b"\x00" + name.encode())
        _dated(here / "odd#%?" / "inner%3F.png", 1_800_000_000, b"\x00inner")
        offered = (await _values(client, OUTPUT, "path", f"{folder}/")).completion
        typed = (await _values(client, OUTPUT, "path", f"{folder}/pct%25")).completion
        [sub] = [value for value in offered.values if value.endswith("/")]
        inside = (await _values(client, OUTPUT, "path", sub)).completion
        reads = {value: await _read_bytes(client, value) for value in offered.values + inside.values}
    assert len(offered.values) == len(names) + 4, offered  # the picture, its sidecar, the page, the folder
    assert sub == f"{folder}/odd%23%25%3F/" and inside.values == [f"{sub}inner%253F.png"], (sub, inside)
    assert typed.values == [f"{folder}/pct%252e%252e.png", f"{folder}/pct%2541.png"], typed
    assert f"{folder}/hash%231.png" in offered.values and f"{folder}/q%3Fx.png" in offered.values, offered
    for name, path in here_of.items():
        assert [v for v in offered.values if reads[v] == path.read_bytes()] != [], name  # its own bytes, by name
    assert reads[inside.values[0]] == b"\x00inner"
    assert all(served is not None for value, served in reads.items() if not value.endswith("/")), reads


async def test_a_saved_result_is_never_completed_to_a_file_its_read_refuses(connect, controls, tmp_path, monkeypatch):
    """The review's list of what the read refuses, none of it offered: a dotfile (the kept previews), a link (out of
    outputs/, or to a folder elsewhere), a FIFO, a file larger than a resource is sent, one whose bytes hold the API
    key (kept as paid for, never served); in outputs/ itself, anything but a gallery page. What is offered reads."""
    from kie_mcp import references

    monkeypatch.setattr(references, "MAX_RESOURCE_BYTES", 100_000)
    outputs = tmp_path / "outputs"
    outside = _dated(tmp_path / "elsewhere" / "private.png", 1_600_000_000)
    await controls.fault("files", kind="tagged", text=f"made for {SANDBOX_API_KEY}")
    async with connect(elicitation=answering()) as client:
        folder = await _saved_in(client, "plum")
        keyed = next(name for name in os.listdir(outputs / folder) if name.endswith(".jpg"))
        here = outputs / folder
        fine = _dated(here / "fine.png", 1_900_000_000)
        _dated(here / ".hidden.png", 1_900_000_001)
        _dated(here / "large.png", 1_900_000_002, b"\x00" * 100_001)
        (here / "out.png").symlink_to(outside)
        (here / "in.png").symlink_to(fine)
        (here / "away").symlink_to(outside.parent, target_is_directory=True)
        os.mkfifo(here / "pipe.png")
        (outputs / ".kie-mcp").mkdir()
        _dated(outputs / "kie-mcp.json", 1_900_000_000)
        offered = (await _values(client, OUTPUT, "path", f"{folder}/")).completion
        top = (await _values(client, OUTPUT, "path")).completion
        through = (await _values(client, OUTPUT, "path", f"{folder}/away/")).completion
        refused = {
            name: await _read_bytes(client, f"{folder}/{name}")
            for name in (keyed, ".hidden.png", "large.png", "out.png", "away/private.png")
        }
        reads = [await _read_bytes(client, value) for value in offered.values]
    names = [value.removeprefix(f"{folder}/") for value in offered.values]
    assert names[0] == "fine.png" and keyed not in names, names
    assert not {".hidden.png", "large.png", "out.png", "in.png", "away/", "pipe.png"} & set(names), names
    assert offered.total == len(names) and all(served is not None for served in reads), offered
    assert not {".kie-mcp/", "kie-mcp.json"} & set(top.values) and f"{folder}/" in top.values, top
    assert through.values == [] and all(served is None for served in refused.values()), refused


async def test_a_saved_result_completion_sends_the_newest_100_and_counts_the_rest(connect, tmp_path):
    """A session folder of 130 results: the newest 100 are sent, ``total`` counts all 130 and ``hasMore`` is set; a
    prefix narrows them to those it starts, all sent. Each answer lists that one folder, never the others (a host
    asks on every key, and outputs/ may hold tens of thousands of results)."""
    folder = "2026-03-01-batch"
    for n in range(130):
        _dated(tmp_path / "outputs" / folder / f"shot-{n:03d}.png", 1_700_000_000 + n)
    _dated(tmp_path / "outputs" / "2026-03-02-other" / "shot-000.png", 1_800_000_000)
    listed: list[str] = []

    def watch(event: str, args: tuple) -> None:
        if event == "os.scandir" and sys._getframe(2).f_code.co_filename == completions.__file__:
            listed.append(os.fspath(args[0]))

    async with connect() as client:
        await _values(client, OUTPUT, "path", "2026")  # the runtime opened, its start-up done
        with audits(watch):
            every = (await _values(client, OUTPUT, "path", f"{folder}/")).completion
            narrowed = (await _values(client, OUTPUT, "path", f"{folder}/shot-12")).completion
    assert listed == [str(tmp_path / "outputs" / folder)] * 2, listed
    assert every.values == [f"{folder}/shot-{n:03d}.png" for n in range(129, 29, -1)], every.values[:3]
    assert every.total == 130 and every.has_more is True
    assert narrowed.values == [f"{folder}/shot-{n:03d}.png" for n in range(129, 119, -1)]
    assert narrowed.total == 10 and narrowed.has_more is False


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
@pytest.mark.parametrize(
    ("template", "kinds"), [(OUTPUT, {"jpg", "json", "html"}), (PREVIEW, {"jpg"})], ids=["file", "preview"]
)
async def test_a_saved_result_and_its_preview_complete_in_a_linked_outputs_folder_only_to_what_kie_mcp_saved_there(
    connect, tmp_path, template, kinds
):
    """An outputs/ linked to a folder of the user's serves (and previews) only what kie-mcp saved there (its sidecars
    list it): the user's own photo in a session folder is not offered; kie-mcp's result, its sidecar and its page
    are (for a preview, the result alone: a sidecar or a page has none), and each reads."""
    read = _read_bytes if template is OUTPUT else _preview_of
    chosen = tmp_path.parent / f"{tmp_path.name}-linked"
    chosen.mkdir()
    (tmp_path / "outputs").symlink_to(chosen)
    try:
        async with connect(elicitation=answering()) as client:
            folder = await _saved_in(client, "fig")
            _picture(chosen / folder / "my-own.png", 1_900_000_000)
            offered = (await _values(client, template, "path", f"{folder}/")).completion
            reads = [await read(client, value) for value in offered.values]
            own = await read(client, f"{folder}/my-own.png")
    finally:
        shutil.rmtree(chosen)
    names = {value.removeprefix(f"{folder}/").rsplit(".", 1)[-1] for value in offered.values}
    assert names == kinds and f"{folder}/my-own.png" not in offered.values, offered
    assert own is None and all(served is not None for served in reads)


async def _preview_of(client: Client, path: str) -> bytes | None:
    """The picture ``kie://previews/<path>`` serves (a JPEG or PNG), or None when the read refuses it."""
    try:
        served = (await client.read_resource(f"kie://previews/{path}")).contents[0]
    except MCPError:
        return None
    return base64.b64decode(served.blob) if served.mime_type in ("image/jpeg", "image/png") else None


def _picture(path: Path, when: float) -> Path:
    """A real PNG at ``path`` (one a preview is made of; noise, so some kilobytes), modified at ``when``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", (32, 24), os.urandom(32 * 24 * 3)).save(path, format="PNG")
    os.utime(path, (when, when))
    return path


async def _saved_video_in(client: Client, folder: str) -> str:
    """A video made in the session of ``folder`` (by its name after the date): the saved file's name."""
    made = await client.call_tool(
        "generate_video",
        {"model": "veo3_fast", "prompt": "waves at dusk", "session": folder[11:], "wait_seconds": 30},
    )
    [saved] = [f for f in made.structured_content["tasks"][0]["files"] if f.endswith(".mp4")]
    assert saved.split("/")[1] == folder, saved
    return saved.rsplit("/", 1)[-1]


async def test_a_saved_results_preview_completes_folder_by_folder_to_exactly_the_previews_its_read_serves(
    connect, tmp_path
):
    """``kie://previews/{+path}`` offered nothing, though a host completing resource templates (MCP Inspector,
    VS Code) completes ``kie://outputs/{+path}``. Its ``path`` offers, folder by folder and newest first, the saved
    results that read makes a preview of: in outputs/ its session folders (no gallery page: no preview), in a session
    folder its pictures, videos and folders, never a sidecar or page (the read refuses them: no preview), a dotfile
    (a kept preview), a link, or anything in a folder that is no session folder. Every value offered reads a
    picture; a name holding ``#`` is offered percent-encoded, and reads."""
    outputs = tmp_path / "outputs"
    async with connect(elicitation=answering()) as client:
        folder = await _saved_in(client, "pear")
        video = await _saved_video_in(client, folder)
        here = outputs / folder
        image = next(name for name in os.listdir(here) if name.endswith(".jpg") and name[:1] != ".")
        os.utime(here / image, (1_700_000_000, 1_700_000_000))
        os.utime(here / video, (1_700_000_001, 1_700_000_001))
        _picture(here / "hash#1.png", 1_700_000_002)
        _picture(here / ".hidden.png", 1_900_000_000)
        (here / "in.png").symlink_to(here / "hash#1.png")
        _picture(here / "cuts" / "take-1.png", 1_600_000_000)
        _dated(here / "cuts" / "notes.txt", 1_600_000_001)
        os.utime(here / "cuts", (1_600_000_000, 1_600_000_000))
        _picture(outputs / "holiday" / "beach.png", 1_800_000_000)  # no session folder: nothing in it is served
        (outputs / ".kie-mcp").mkdir()
        top = (await _values(client, PREVIEW, "path")).completion
        inside = (await _values(client, PREVIEW, "path", f"{folder}/")).completion
        typed = (await _values(client, PREVIEW, "path", f"{folder}/HASH")).completion
        deeper = (await _values(client, PREVIEW, "path", f"{folder}/cuts/")).completion
        elsewhere = [
            (await _values(client, PREVIEW, "path", typed)).completion
            for typed in ("holiday/", ".kie-mcp/", f"{folder}/.hidden.png/", "../", "/", "a//")
        ]
        files = [value for value in inside.values + deeper.values if not value.endswith("/")]
        reads = {value: await _preview_of(client, value) for value in files}
        refused = {name: await _preview_of(client, f"{folder}/{name}") for name in ("index.html", "cuts/notes.txt")}
    assert top.values == [f"{folder}/"] and top.total == 1 and top.has_more is False, top
    assert inside.values == [f"{folder}/{name}" for name in ("hash%231.png", video, image)] + [f"{folder}/cuts/"]
    assert inside.total == 4 and inside.has_more is False, inside
    assert typed.values == [f"{folder}/hash%231.png"] and deeper.values == [f"{folder}/cuts/take-1.png"]
    assert all(answer.values == [] and answer.total == 0 for answer in elsewhere), elsewhere
    assert all(served is not None for served in reads.values()), reads  # what is offered is served
    assert all(served is None for served in refused.values()), refused  # and what the read refuses is not offered


async def test_a_video_is_offered_for_its_preview_only_while_a_poster_can_be_served(connect, tmp_path, monkeypatch):
    """The read serves a video's poster kept beside it, or one ffmpeg makes: without ffmpeg, a video whose poster is
    kept (made as it was saved) is offered and reads, a copy without one is not (its read says it has no preview);
    with ffmpeg a copy without one is offered, and reads (ffmpeg makes its poster)."""
    from kie_mcp.media import stitch

    found = stitch.find_ffmpeg

    def no_ffmpeg() -> str:
        raise stitch.StitchError("no ffmpeg here")

    async with connect(elicitation=answering()) as client:
        folder = await _saved_in(client, "waves")
        video = await _saved_video_in(client, folder)
        here = tmp_path / "outputs" / folder
        shutil.copy(here / video, here / "copy.mp4")  # no poster kept for it
        monkeypatch.setattr(stitch, "find_ffmpeg", no_ffmpeg)
        without = (await _values(client, PREVIEW, "path", f"{folder}/")).completion
        unserved = await _preview_of(client, f"{folder}/copy.mp4")
        kept = [await _preview_of(client, value) for value in without.values]
        monkeypatch.setattr(stitch, "find_ffmpeg", found)
        shutil.copy(here / video, here / "copy2.mp4")
        withit = (await _values(client, PREVIEW, "path", f"{folder}/copy2")).completion
        made = [await _preview_of(client, value) for value in withit.values]
    names = [value.removeprefix(f"{folder}/") for value in without.values]
    assert video in names and "copy.mp4" not in names, names
    assert unserved is None and all(served is not None for served in kept), names
    assert withit.values == [f"{folder}/copy2.mp4"] and made[0] is not None, withit


async def test_a_saved_results_preview_is_never_offered_for_what_its_read_refuses_but_is_for_a_result_too_large_to_send(
    connect, controls, tmp_path, monkeypatch
):
    """The refusals of ``kie://outputs/`` hold for previews: a FIFO, a link to a folder elsewhere, a result this
    server saw hold the API key are not offered. A result larger than a resource is sent is: the read sends its small
    preview, not the file. In an outputs/ linked to a folder of the user's, only what kie-mcp saved there."""
    from kie_mcp import references

    monkeypatch.setattr(references, "MAX_RESOURCE_BYTES", 1_000)
    outputs = tmp_path / "outputs"
    await controls.fault("files", kind="tagged", text=f"made for {SANDBOX_API_KEY}")
    async with connect(elicitation=answering()) as client:
        folder = await _saved_in(client, "plum")
        keyed = next(name for name in os.listdir(outputs / folder) if name.endswith(".jpg") and name[:1] != ".")
        await controls.http.delete("/__sim/faults")
        here = outputs / folder
        large = _picture(here / "large.png", 1_900_000_000)
        (here / "away").symlink_to(tmp_path, target_is_directory=True)
        os.mkfifo(here / "pipe.png")
        offered = (await _values(client, PREVIEW, "path", f"{folder}/")).completion
        reads = {value: await _preview_of(client, value) for value in offered.values}
        full = await _read_bytes(client, f"{folder}/large.png")
    names = [value.removeprefix(f"{folder}/") for value in offered.values]
    assert names == ["large.png"] and keyed not in names, (names, keyed)
    assert large.stat().st_size > 1_000 and full is None  # too large to send itself
    assert all(served is not None for served in reads.values()), reads


async def test_a_saved_results_preview_completion_sends_the_newest_100_and_lists_one_folder(connect, tmp_path):
    """A session folder of 130 pictures: the newest 100 are sent, ``total`` counts all 130 and ``hasMore`` is set;
    only that folder is listed (``os.scandir``), in a worker thread, never outputs/' whole tree."""
    folder = "2026-03-01-batch"
    for n in range(130):
        _picture(tmp_path / "outputs" / folder / f"shot-{n:03d}.png", 1_700_000_000 + n)
    _picture(tmp_path / "outputs" / "2026-03-02-other" / "shot-000.png", 1_800_000_000)
    listed: list[tuple[str, bool]] = []

    def watch(event: str, args: tuple) -> None:
        if event == "os.scandir" and sys._getframe(2).f_code.co_filename == completions.__file__:
            listed.append((os.fspath(args[0]), threading.current_thread() is threading.main_thread()))

    async with connect() as client:
        await _values(client, PREVIEW, "path", "2026")  # the runtime opened, its start-up done
        with audits(watch):
            every = (await _values(client, PREVIEW, "path", f"{folder}/")).completion
    assert listed == [(str(tmp_path / "outputs" / folder), False)], listed
    assert every.values == [f"{folder}/shot-{n:03d}.png" for n in range(129, 29, -1)], every.values[:3]
    assert every.total == 130 and every.has_more is True


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (its pixels are not there)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    )


async def test_a_saved_results_preview_is_never_offered_for_a_file_whose_bytes_the_read_makes_no_preview_of(
    connect, tmp_path, ffmpeg
):
    """Offered by its name alone, a file whose bytes are no preview the read makes was suggested, and its read said
    "No preview": a ``.mp4`` holding only an ``ftyp`` box and zeros (no movie box: ffmpeg opens nothing), a ``.png``
    holding text, a ``.png`` whose header claims 30000 x 30000 pixels (past Pillow's limit) or 9000 x 9000 (past the
    pixels a preview decodes). Each value that may be sent is judged by its first bytes, as the read judges them: those
    are not offered, and a real picture and a real video beside them are, and read."""
    async with connect(elicitation=answering()) as client:
        folder = await _saved_in(client, "junk")
        video = await _saved_video_in(client, folder)
        here = tmp_path / "outputs" / folder
        for name in os.listdir(here):
            if name[:1] != "." and not name.endswith(".mp4"):
                os.remove(here / name)  # the saved picture, the sidecar and the page: only the video stays
        _picture(here / "good.png", 1_700_000_000)
        _dated(here / "clip.mp4", 1_700_000_001, b"\0\0\0\x18ftypmp42" + b"\0" * 100)
        _dated(here / "notimg.png", 1_700_000_002, b"hello, not a picture")
        _dated(here / "huge.png", 1_700_000_003, _png_claiming(30_000, 30_000))
        _dated(here / "large.png", 1_700_000_004, _png_claiming(9_000, 9_000))
        offered = (await _values(client, PREVIEW, "path", f"{folder}/")).completion
        reads = {value: await _preview_of(client, value) for value in offered.values}
        refused = {n: await _preview_of(client, f"{folder}/{n}") for n in ("clip.mp4", "notimg.png", "huge.png")}
        refused["large.png"] = await _preview_of(client, f"{folder}/large.png")
    names = sorted(value.removeprefix(f"{folder}/") for value in offered.values)
    assert names == sorted(["good.png", video]), names
    assert offered.total == 2 and offered.has_more is False, offered
    assert all(served is not None for served in reads.values()), reads
    assert all(served is None for served in refused.values()), refused  # the read makes no preview of them


@pytest.mark.parametrize(("template", "linked"), [(PREVIEW, False), (OUTPUT, True)], ids=["preview", "linked-file"])
async def test_a_completion_judges_at_most_101_files_of_a_folder_of_thousands_that_give_no_value(
    connect, tmp_path, monkeypatch, template, linked
):
    """The bound counted the values found, not the files judged: without ffmpeg, a session folder of videos with no
    poster kept had every video's kept poster looked for (20,000 videos: 4.4 s a key) and answered no value and no
    more; in an outputs/ linked to a folder of the user's, every file's sidecars were read, for a preview and for the
    file itself. At most 101 files are judged: past them ``hasMore`` is set, with no ``total``, and the oldest are
    never looked at."""
    from kie_mcp.media import stitch

    def no_ffmpeg() -> str:
        raise stitch.StitchError("no ffmpeg here")

    monkeypatch.setattr(stitch, "find_ffmpeg", no_ffmpeg)
    folder = "2026-03-01-batch"
    outputs = tmp_path / "outputs"
    if linked:
        (tmp_path / "chosen").mkdir()
        outputs.symlink_to(tmp_path / "chosen", target_is_directory=True)
    for n in range(150):  # videos without a poster; in a linked outputs/, the user's own (no sidecar lists them)
        _dated(outputs / folder / f"clip-{n:03d}.mp4", 1_700_000_000 + n)
    looked: list[str] = []

    def watch(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str | Path) and "clip-000" in os.fspath(args[0]):
            looked.append(os.fspath(args[0]))

    async with connect() as client:
        await _values(client, template, "path", "2026")  # the runtime opened, its start-up done
        with audits(watch):
            answer = (await _values(client, template, "path", f"{folder}/")).completion
    assert answer.values == [] and answer.has_more is True and answer.total is None, answer
    assert looked == [], looked  # the oldest never judged


async def test_other_workflow_arguments_get_no_values(connect):
    async with connect() as client:
        answers = [
            (await _values(client, _prompt(workflow), argument, "a")).completion
            for workflow, argument in [
                ("ugc_video", "script"),
                ("ugc_video", "product"),
                ("character_sheet", "description"),
                ("character_sheet", "angles"),
                ("animated_ad", "style"),
            ]
        ]
    assert all(answer.values == [] and answer.total == 0 for answer in answers)


async def test_task_ids_complete_to_this_workspaces_newest_tasks_never_a_quote_id(connect, tmp_path):
    """The newest first, at most 100 of them, the rest counted; a prefix narrows them (ids are case-sensitive); a
    quote id (an agent's easy mix-up) is never offered."""
    journaled(tmp_path, *[(task(f"task{n:03d}", "nano-banana-2", age=1000.0 - n), None, None) for n in range(120)])
    journaled(tmp_path, (task("veo-abc", "veo3_fast", age=5000.0), None, None))
    async with connect() as client:
        quote = await client.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "an apple"})
        quote_id = quote.structured_content["quote"]["quote_id"]
        every = (await _values(client, TASK, "task_id")).completion
        narrowed = (await _values(client, TASK, "task_id", "task11")).completion
        veo = (await _values(client, TASK, "task_id", "veo")).completion
        upper = (await _values(client, TASK, "task_id", "TASK")).completion
        quotes = (await _values(client, TASK, "task_id", "q_")).completion
    assert every.values == [f"task{n:03d}" for n in range(119, 19, -1)]
    assert every.total == 121 and every.has_more is True
    assert narrowed.values == [f"task{n:03d}" for n in range(119, 109, -1)] and narrowed.total == 10
    assert narrowed.has_more is False
    assert veo.values == ["veo-abc"] and upper.values == []
    assert quotes.values == [] and quote_id not in every.values


async def test_no_value_holds_the_api_key(connect, tmp_path):
    """A task id or a picture's name holding the key (a hand edit, an odd file name) is never offered, not even
    redacted: a value is something to send back."""
    journaled(tmp_path, (task(f"id{SANDBOX_API_KEY}", "nano-banana-2"), None, None))
    journaled(tmp_path, (task("id-plain", "nano-banana-2"), None, None))
    (tmp_path / "references").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "references" / f"{SANDBOX_API_KEY}.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "references" / "plain.png")
    async with connect() as client:
        tasks = (await _values(client, TASK, "task_id", "id")).completion  # opens the runtime: the key is known
        pictures = (await _values(client, _prompt("influencer_recreation"), "reference_image")).completion
    assert tasks.values == ["id-plain"] and tasks.total == 1
    assert pictures.values == ["references/plain.png"] and pictures.total == 1
    assert SANDBOX_API_KEY not in repr(tasks) + repr(pictures)


class CompleteAsSent(Request[dict[str, Any], Literal["completion/complete"]]):
    """A completion request as a client may write it, not as the SDK's types allow."""

    method: Literal["completion/complete"] = "completion/complete"


@pytest.mark.parametrize(
    ("params", "said"),
    [
        (
            {"ref": {"type": "ref/prompt", "name": "no_such"}, "argument": {"name": "model", "value": ""}},
            'There is no prompt named "no_such"; prompts/list names them.',
        ),
        (
            {"ref": {"type": "ref/prompt", "name": "character_sheet"}, "argument": {"name": "modle", "value": ""}},
            'Prompt character_sheet has no argument "modle"; its arguments are description, angles, model.',
        ),
        (
            {"ref": {"type": "ref/resource", "uri": "kie://nothing/{x}"}, "argument": {"name": "x", "value": ""}},
            'There is no resource template "kie://nothing/{x}"; resources/templates/list names them',
        ),
        (
            {"ref": {"type": "ref/resource", "uri": "kie://tasks/{task_id}"}, "argument": {"name": "id", "value": ""}},
            'The resource template kie://tasks/{task_id} has no variable "id"; its variables are task_id.',
        ),
        (
            {"ref": {"type": "ref/tool", "name": "generate_image"}, "argument": {"name": "model", "value": ""}},
            'or a resource template\'s variable ("ref/resource", with its uri), not ref type "ref/tool".',
        ),
        (
            {"ref": {"type": "ref/prompt"}, "argument": {"name": "model", "value": ""}},
            "a ref/prompt reference needs name: the prompt's name, as text (got none).",
        ),
        (
            {"ref": {"type": "ref/prompt", "name": "x" * 100_000}, "argument": {"name": "model", "value": ""}},
            "(100000 characters); prompts/list names them.",
        ),
    ],
    ids=["unknown-prompt", "unknown-argument", "unknown-template", "unknown-variable", "tool-ref", "no-name", "long"],
)
async def test_a_bad_completion_request_is_refused_saying_what_is_wrong(connect, params, said):
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.session.send_request(CompleteAsSent(params=params), CompleteResult)
    message = refused.value.error.message
    assert refused.value.error.code == INVALID_PARAMS
    assert said in message and len(message) < 400 and "Traceback" not in message, message


async def test_a_value_longer_than_any_suggestion_gets_none(connect):
    async with connect() as client:
        long = (await _values(client, _prompt("character_sheet"), "model", "n" * 100_000)).completion
        tasks = (await _values(client, TASK, "task_id", "t" * 100_000)).completion
    assert long.values == [] == tasks.values


@pytest.mark.stdio
async def test_completions_are_declared_and_answered_over_stdio(tmp_path):
    """The installed console script, as a host starts it: the handshake declares completions, and one answers."""
    script = shutil.which("kie-mcp", path=str(Path(sys.executable).parent))
    assert script, "the kie-mcp console script is not installed beside this Python"
    env = {"KIE_WORKSPACE": str(tmp_path)}
    if "PYTHONPATH" in os.environ:  # the code this run tests, wherever it takes it from
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    params = StdioServerParameters(command=script, args=["--sandbox"], env=env)
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        declared = client.server_capabilities.completions
        veo = (await _values(client, _prompt("ugc_video"), "model", "veo")).completion
    assert declared is not None
    assert veo.values == ["veo3_fast", "veo3", "veo3_lite"]
