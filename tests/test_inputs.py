"""Local inputs: read only inside the allowed folders, checked against the model's limits, uploaded once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from .conftest import answering, eras_in_turn, every_resource, text_of

EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit"}


def _image(kind: str, size: tuple[int, int] = (64, 64)) -> bytes:
    """A real, small image: inputs are judged by their bytes, so the tests use real files."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, kind)
    return buffer.getvalue()


PNG = _image("PNG")


async def uploads(controls) -> list[dict]:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return [r for r in items if r["path"].startswith("/api/file-")]


@pytest.fixture
def outside(tmp_path_factory):
    folder = tmp_path_factory.mktemp("elsewhere")
    (folder / "secret.png").write_bytes(PNG)
    return folder


@pytest.mark.parametrize("how", ["traversal", "absolute", "file URI", "symlink"])
async def test_files_outside_the_workspace_are_refused_before_upload(connect, controls, tmp_path, outside, how):
    if how == "traversal":
        given = f"../{outside.name}/secret.png"
        (tmp_path.parent / outside.name).exists() or pytest.skip("temp folders are not siblings here")
    elif how == "absolute":
        given = str(outside / "secret.png")
    elif how == "file URI":
        given = (outside / "secret.png").as_uri()
    else:
        (tmp_path / "innocent.png").symlink_to(outside / "secret.png")
        given = "innocent.png"
    async with connect(elicitation=answering()) as client:
        generate = await client.call_tool("generate_image", {**EDIT, "images": [given]})
        upload = await client.call_tool("upload_file", {"path": given})
    for result in (generate, upload):
        assert result.is_error
        assert "outside the folders kie-mcp may read" in text_of(result) and "KIE_ALLOWED_DIRS" in text_of(result)
    assert await uploads(controls) == []
    assert await controls.creates() == []


async def test_a_file_uri_names_the_local_file_it_points_at(connect, controls, tmp_path):
    """Clients and file managers hand over ``file://`` URIs: one of a workspace file is that file (percent-escapes
    decoded; it was looked for as a file named "file:" in the workspace); one of another machine is refused."""
    (tmp_path / "my photos").mkdir()
    (tmp_path / "my photos" / "red apple.png").write_bytes(PNG)
    given = (tmp_path / "my photos" / "red apple.png").as_uri()
    async with connect(elicitation=answering()) as client:
        generated = await client.call_tool("generate_image", {**EDIT, "images": [given]})
        elsewhere = await client.call_tool("upload_file", {"path": "file://studio-mac/Users/me/apple.png"})
    assert generated.structured_content["status"] == "completed", text_of(generated)
    assert len(await uploads(controls)) == 1
    assert elsewhere.is_error and "a file on another machine ('studio-mac')" in text_of(elsewhere), text_of(elsewhere)


async def test_a_saved_results_resource_link_is_an_input_as_its_file(connect, controls, tmp_path, outside):
    """Results hand back ``kie://outputs/...`` resource links; passed as images they are the saved files (the
    still approved, used as the next beat's reference), never "neither a URL nor a file". The link stays inside
    outputs/: a way out of it is refused like any path leading outside."""
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {"prompt": "a red apple", "model": "nano-banana-2"})
        link = next(block.uri for block in made.content if block.type == "resource_link")
        edited = await client.call_tool("generate_image", {**EDIT, "images": [str(link)]})
        escaped = await client.call_tool("upload_file", {"path": f"kie://outputs/../../{outside.name}/secret.png"})
        rooted = await client.call_tool("upload_file", {"path": f"kie://outputs/{outside / 'secret.png'}"})
        (tmp_path / "references").mkdir()
        (tmp_path / "references" / "face.png").write_bytes(PNG)
        sideways = await client.call_tool("upload_file", {"path": "kie://outputs/%2e%2e/references/face.png"})
    assert str(link).startswith("kie://outputs/")
    assert edited.structured_content["status"] == "completed", text_of(edited)
    assert len(await uploads(controls)) == 1 and len(await controls.creates()) == 2
    for refused in (escaped, rooted, sideways):
        assert refused.is_error and "secret" not in str(refused.structured_content or ""), text_of(refused)
    assert "leads out of outputs/" in text_of(sideways)
    assert len(await uploads(controls)) == 1


async def test_a_reference_files_resource_link_is_an_input_as_its_file(connect, controls, tmp_path, outside):
    """resources/list names the workspace's references as ``kie://workspace/references/...``: passed as images they
    were looked for as a folder named "kie:" ("looked in .../kie:/workspace/..."). They are the files; a way out of
    the workspace, or to a private file, is refused like any path."""
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "face.png").write_bytes(PNG)
    (tmp_path / ".env").write_text("KIE_API_KEY=not-for-upload\n")
    async with connect(elicitation=answering()) as client:
        listed = [str(r.uri) for r in await every_resource(client)]
        edited = await client.call_tool("generate_image", {**EDIT, "images": ["kie://workspace/references/face.png"]})
        escaped = await client.call_tool("upload_file", {"path": f"kie://workspace/../{outside.name}/secret.png"})
        private = await client.call_tool("upload_file", {"path": "kie://workspace/.env"})
    assert "kie://workspace/references/face.png" in listed
    assert edited.structured_content["status"] == "completed", text_of(edited)
    assert "leads out of the workspace" in text_of(escaped)
    assert private.is_error and "not-for-upload" not in text_of(private), text_of(private)
    assert len(await uploads(controls)) == 1


async def test_allowed_dirs_open_another_folder(connect, controls, outside):
    async with connect(elicitation=answering(), allowed_dirs=(outside.resolve(),)) as client:
        result = await client.call_tool("generate_image", {**EDIT, "images": [str(outside / "secret.png")]})
    assert result.structured_content["status"] == "completed", text_of(result)


async def test_model_limits_are_checked_before_upload(connect, controls, tmp_path):
    (tmp_path / "clip.gif").write_bytes(_image("GIF"))
    (tmp_path / "huge.png").write_bytes(PNG + b"\x00" * (11 * 1024 * 1024))  # a real PNG, padded past 10 MB
    async with connect(elicitation=answering()) as client:
        wrong_type = await client.call_tool("generate_image", {**EDIT, "images": ["clip.gif"]})
        too_big = await client.call_tool("generate_image", {**EDIT, "images": ["huge.png"]})
    assert wrong_type.is_error and ".gif" in text_of(wrong_type) and "jpeg" in text_of(wrong_type)
    assert too_big.is_error and "up to 10 MB" in text_of(too_big)
    assert await uploads(controls) == []


async def test_the_same_file_is_uploaded_once(connect, controls, tmp_path):
    (tmp_path / "ref.png").write_bytes(PNG)
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", {**EDIT, "images": ["ref.png"]})
        second = await client.call_tool("generate_image", {**EDIT, "prompt": "now green", "images": ["ref.png"]})
    assert first.structured_content["status"] == second.structured_content["status"] == "completed"
    assert len(await uploads(controls)) == 1
    assert "reused" in second.structured_content["message"]
    creates = await controls.creates()
    assert creates[0]["body"]["input"]["image_urls"] == creates[1]["body"]["input"]["image_urls"]


async def test_an_upload_is_reused_only_at_the_same_upload_host_and_for_two_hours(connect, controls, tmp_path):
    """The audit: the upload cache (48 h, keyed by content only) reused a link KIE had already deleted (users report
    24 h, even "a few hours", against the documented 3 days), and a link made by ``kie-mcp sim`` on 127.0.0.1 was
    sent to the real KIE once the workspace was pointed at it. An upload is reused for 2 hours, at its own host."""
    import time

    from kie_mcp.journal import Journal

    (tmp_path / "ref.png").write_bytes(PNG)
    async with connect(elicitation=answering()) as client:
        await client.call_tool("generate_image", {**EDIT, "images": ["ref.png"]})
    async with connect(elicitation=answering(), upload_base_url="http://uploads-elsewhere.kie.test") as client:
        elsewhere = await client.call_tool("generate_image", {**EDIT, "prompt": "green", "images": ["ref.png"]})
    journal = Journal.for_workspace(tmp_path)
    journal.execute("UPDATE uploads SET uploaded = ?", time.time() - 3 * 3600)  # every upload 3 hours old
    journal.close()
    async with connect(elicitation=answering()) as client:
        later = await client.call_tool("generate_image", {**EDIT, "prompt": "blue", "images": ["ref.png"]})
    assert "reused" not in elsewhere.structured_content["message"]
    assert "reused" not in later.structured_content["message"]
    assert len(await uploads(controls)) == 3


async def test_an_upload_kie_says_it_deletes_soon_is_not_reused_after_that(connect, controls, sim, tmp_path):
    """The audit: KIE's older upload answer says when the file goes (``expiresAt``), and the cache ignored it,
    reusing a link KIE had deleted in a paid create. Kept for 30 minutes by KIE's own answer, an upload is reused
    for 15 (never in its last quarter hour: a queued task fetches its input minutes after the create); kept for 10,
    never."""
    (tmp_path / "ref.png").write_bytes(PNG)
    await controls.post("config", {"old_upload_shape": True})
    sim.config.upload_ttl_seconds = 600.0  # by the simulator's clock, as KIE's answer states both times
    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", {**EDIT, "images": ["ref.png"]})
        second = await client.call_tool("generate_image", {**EDIT, "prompt": "now green", "images": ["ref.png"]})
        sim.config.upload_ttl_seconds = 1800.0
        (tmp_path / "other.png").write_bytes(_image("PNG", (80, 64)))
        third = await client.call_tool("generate_image", {**EDIT, "prompt": "red", "images": ["other.png"]})
        fourth = await client.call_tool("generate_image", {**EDIT, "prompt": "pink", "images": ["other.png"]})
    assert [r.structured_content["status"] for r in (first, second, third, fourth)] == ["completed"] * 4
    assert "reused" not in second.structured_content["message"]  # 10 minutes: within the margin, never reused
    assert "reused" in fourth.structured_content["message"]  # 30 minutes: reused in its first 15
    assert len(await uploads(controls)) == 3


@eras_in_turn(
    "link",
    [
        "http://10.0.0.7/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://printer/x.png",
        "https://files.example.com/a b.png",
        "https://files.example.com/" + "a" * 3000 + ".png",
    ],
    ids=["private", "metadata", "file", "javascript", "local-name", "space", "too-long"],
)
async def test_an_upload_answer_whose_link_kie_could_not_fetch_is_never_sent_to_a_paid_create(
    connect, controls, tmp_path, link
):
    """The audit: the link in an upload's answer went into the create as it was (a misconfigured or hostile
    KIE_UPLOAD_BASE_URL could point a paid task at this machine's network, or at file:), and into the upload cache
    for the next request. It is refused before anything is created or reserved, and never remembered."""
    (tmp_path / "ref.png").write_bytes(PNG)
    await controls.fault("upload", kind="link", url=link)
    async with connect(elicitation=answering()) as client:
        refused = await client.call_tool("generate_image", {**EDIT, "images": ["ref.png"]})
        again = await client.call_tool("generate_image", {**EDIT, "images": ["ref.png"]})
        uploaded = await client.call_tool("upload_file", {"path": "ref.png"})
        spent = await client.call_tool("check_credits", {})
    assert refused.is_error, text_of(refused)
    assert "upload" in text_of(refused) and "nothing was generated or charged" in text_of(refused)
    assert again.structured_content["status"] == "completed", text_of(again)  # uploaded anew, not the bad link
    assert len(await controls.creates()) == 1
    [create] = await controls.creates()
    assert create["body"]["input"]["image_urls"][0] != link
    assert not uploaded.is_error and link not in text_of(uploaded)
    assert spent.structured_content["spent_today"] == 4  # the one image; nothing reserved for the refused call


async def test_a_file_replaced_while_the_user_reads_the_confirmation_is_refused_though_its_upload_could_be_reused(
    connect, controls, tmp_path, mode
):
    """The review: with an upload of the approved bytes still fresh, a file replaced while the user read the form was
    not refused (the README promises it is); the earlier upload went out unsaid. Refused, nothing reserved or sent, in
    both eras (in the 2026-07-28 era the answer comes back on a new request, which sees the new bytes and refuses the
    yes given for the old ones)."""
    from mcp.types import ElicitResult

    (tmp_path / "ref.png").write_bytes(PNG)

    async def edited_meanwhile(context, params):
        (tmp_path / "ref.png").write_bytes(_image("PNG", (80, 64)))  # the user edits the picture
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(elicitation=answering()) as client:
        first = await client.call_tool("generate_image", {**EDIT, "images": ["ref.png"]})
    (tmp_path / "ref.png").write_bytes(PNG)  # the approved picture again: its upload is fresh
    async with connect(elicitation=edited_meanwhile) as client:
        second = await client.call_tool("generate_image", {**EDIT, "prompt": "green", "images": ["ref.png"]})
        spent = (await client.call_tool("check_credits", {})).structured_content["spent_today"]
    assert first.structured_content["status"] == "completed", text_of(first)
    assert second.is_error and "changed since it was priced" in text_of(second), text_of(second)
    assert "Refused by kie-mcp (input): " in text_of(second), text_of(second)  # not "KIE request failed"
    assert len(await controls.creates()) == 1 and spent == 4
    assert len(await uploads(controls)) == 1  # neither the earlier upload reused nor the edited picture sent


async def test_the_clients_mcp_roots_are_allowed_folders(settings, transport, controls, mode, outside):
    from mcp import Client
    from mcp.types import ListRootsResult, Root

    from kie_mcp.server import create_server

    async def shared_folders(context):
        return ListRootsResult(roots=[Root(uri=outside.resolve().as_uri(), name="shared")])

    server = create_server(settings, transport=transport)
    picture = str(outside / "secret.png")
    async with Client(
        server, mode=mode, elicitation_callback=answering(), list_roots_callback=shared_folders
    ) as with_roots:
        generated = await with_roots.call_tool("generate_image", {**EDIT, "images": [picture]})
        uploaded = await with_roots.call_tool("upload_file", {"path": picture})
    async with Client(
        create_server(settings, transport=transport), mode=mode, elicitation_callback=answering()
    ) as without:
        refused = await without.call_tool("generate_image", {**EDIT, "images": [picture]})
    assert generated.structured_content["status"] == "completed", text_of(generated)
    assert not uploaded.is_error, text_of(uploaded)
    assert refused.is_error and "MCP root" in text_of(refused)


@pytest.mark.parametrize("answer", ["an error", "no answer"])
async def test_a_client_whose_roots_list_fails_or_never_answers_still_gets_its_answers(
    settings, transport, controls, mode, tmp_path, answer
):
    """Some clients declare roots and then answer roots/list with an error, or never. Roots only widen where inputs
    may come from: a call naming no local file never asks, and one that does is answered from the workspace once the
    client failed or the deadline passed (handshake era; in the 2026-07-28 era the question rides on the retried
    request)."""
    from dataclasses import replace

    import anyio
    from mcp import Client
    from mcp.types import ErrorData

    from kie_mcp.server import create_server

    asked: list[str] = []

    async def broken_roots(context):
        asked.append("roots/list")
        if answer == "no answer":
            await anyio.sleep(3600)
        return ErrorData(code=-32601, message="Method not found")

    (tmp_path / "ref.png").write_bytes(PNG)
    server = create_server(replace(settings, roots_timeout_seconds=0.5), transport=transport)
    async with Client(server, mode=mode, elicitation_callback=answering(), list_roots_callback=broken_roots) as client:
        with anyio.fail_after(20):
            priced = await client.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "a red apple"})
            linked = await client.call_tool("estimate_cost", {**EDIT, "images": ["https://example.com/a.png"]})
            styled = await client.call_tool(
                "estimate_cost", {"model": "nano-banana-2", "prompt": "a fox", "options": {"output_format": "png"}}
            )
            assert asked == []  # nothing named a local file: the client was not asked
            if mode == "legacy":
                local = await client.call_tool("generate_image", {**EDIT, "images": ["ref.png"]})
                uploaded = await client.call_tool("upload_file", {"path": "ref.png"})
                assert local.structured_content["status"] == "completed", text_of(local)
                assert not uploaded.is_error, text_of(uploaded)
                assert asked == ["roots/list", "roots/list"]
    for result in (priced, linked, styled):
        assert not result.is_error and result.structured_content["quote"]["quote_id"], text_of(result)


@pytest.mark.parametrize("model", ["flux-kontext-pro", "flux-kontext-max"])
async def test_a_flux_kontext_edit_keeps_its_photos_shape_unless_asked(connect, controls, tmp_path, model):
    """KIE: an edit without aspectRatio keeps the input image's ratio; 16:9 is text-to-image's default. Sending 16:9
    with every edit cropped or padded each portrait or square photo."""
    (tmp_path / "portrait.png").write_bytes(_image("PNG", (48, 64)))
    async with connect(elicitation=answering()) as client:
        edit = await client.call_tool(
            "generate_image", {"prompt": "make it blue", "model": model, "images": ["portrait.png"]}
        )
        drawn = await client.call_tool("generate_image", {"prompt": "a blue fox", "model": model})
        asked = await client.call_tool(
            "generate_image",
            {"prompt": "make it red", "model": model, "images": ["portrait.png"], "aspect_ratio": "1:1"},
        )
    for result in (edit, drawn, asked):
        assert not result.is_error, text_of(result)
    bodies = [create["body"] for create in await controls.creates()]
    assert "aspectRatio" not in bodies[0] and bodies[0]["inputImage"].startswith("http")
    assert bodies[1]["aspectRatio"] == "16:9" and "inputImage" not in bodies[1]
    assert bodies[2]["aspectRatio"] == "1:1"
    assert "aspect_ratio=16:9" not in text_of(edit)


async def test_two_different_files_with_one_name_get_two_urls(connect, controls, tmp_path):
    """KIE overwrites a file uploaded again under the same name: two photos both called photo.png used to get one
    URL, which then showed the second photo, to every task given the first."""
    for folder, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (1200, 900), colour).save(tmp_path / folder / "photo.png")
    async with connect() as client:
        first = await client.call_tool("upload_file", {"path": "a/photo.png"})
        second = await client.call_tool("upload_file", {"path": "b/photo.png"})
        again = await client.call_tool("upload_file", {"path": "a/photo.png"})
    urls = [r.structured_content["url"] for r in (first, second, again)]
    assert urls[0] != urls[1] and urls[2] == urls[0], urls
    shown = await controls.http.get(urls[0])
    assert Image.open(io.BytesIO(shown.content)).getpixel((0, 0)) == (200, 30, 30)  # still the first photo
    assert "photo" in first.structured_content["file_name"]


def test_a_file_named_with_the_key_is_uploaded_under_a_name_without_it():
    """The audit: a local file whose name held the key was uploaded under that name, so KIE's public link would hold
    it; the upload was refused for it every time, with advice blaming KIE. The stem is left out instead."""
    from kie_mcp.media.inputs import upload_name
    from kie_mcp.media.sniff import Sniffed
    from kie_mcp.redact import register_secret

    key = "kie-9f2c4e6a8b0d1357ace2"
    register_secret(key)
    png = Sniffed(kind="image", mime="image/png", format="png", label="PNG image", extensions=("png",))
    assert upload_name(Path(f"/w/shot-{key}.png"), png, "-7d5b079823") == "input-7d5b079823.png"
    assert upload_name(Path("/w/bottle.PNG"), png, "-7d5b079823") == "bottle-7d5b079823.png"


async def sent_images(controls) -> dict[str, tuple[str, tuple[int, int]]]:
    """The pictures the creates named, as KIE would fetch them: field -> (format, size)."""
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    found = {}
    for request in items:
        if request["path"].endswith("createTask"):
            for field, value in request["body"]["input"].items():
                for link in value if isinstance(value, list) else [value]:
                    if isinstance(link, str) and link.startswith("http://upload."):
                        picture = Image.open(io.BytesIO((await controls.http.get(link)).content))
                        found[field] = (picture.format, picture.size)
    return found


async def test_an_upscalers_input_and_a_mask_are_sent_as_they_are(connect, controls, tmp_path):
    """The audit: every image under 1024 px was upscaled to 1080 px and sent as JPEG, an upscaler's input too (KIE
    bills Topaz by output size: 2x of an 800 px picture is 1600 px, 2K, but of the upscaled one 2160 px, 4K, at
    twice the price) and an inpainting mask (two grey levels became dozens). Both go as they are now; a small photo
    for an edit is still upscaled."""
    folder = tmp_path / "references"
    folder.mkdir()
    (folder / "small.png").write_bytes(_image("PNG", (800, 600)))
    (folder / "mask.png").write_bytes(_image("PNG", (800, 600)))
    async with connect(elicitation=answering()) as client:
        upscaled = await client.call_tool(
            "generate_image",
            {"model": "topaz/image-upscale", "images": ["references/small.png"], "options": {"upscale_factor": "2"}},
        )
        assert upscaled.structured_content["status"] == "completed", text_of(upscaled)
        upscaler = await sent_images(controls)
        await controls.http.delete("/__sim/requests")
        edited = await client.call_tool(
            "generate_image",
            {
                "model": "ideogram/v3-edit",
                "prompt": "a red balloon",
                "images": ["references/small.png", "references/mask.png"],
            },
        )
        assert edited.structured_content["status"] == "completed", text_of(edited)
        edit = await sent_images(controls)
    assert list(upscaler.values()) == [("PNG", (800, 600))]
    assert edit["mask_url"] == ("PNG", (800, 600))
    assert [v for k, v in edit.items() if k != "mask_url"] == [("JPEG", (1080, 810))]  # the photo: upscaled


async def test_a_local_file_named_with_the_key_is_generated_from_under_another_name(transport, tmp_path):
    """The review: generate_image refused a local file whose name held the key ("take the key out of the link");
    only upload_file renamed it. A name is no link: it is uploaded under a name without the key, and used."""
    from dataclasses import replace

    from mcp import Client

    from kie_mcp.config import Settings
    from kie_mcp.sandbox.state import DEFAULT_ACCOUNT
    from kie_mcp.server import create_server

    key = "kie9f2c4e6a8b0d1357ace24680"
    (tmp_path / ".env").write_text(f"KIE_API_KEY={key}\n")
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / f"shot-{key}.png").write_bytes(_image("PNG", (1200, 1200)))
    settings = Settings.load({"KIE_WORKSPACE": str(tmp_path)}, cwd=tmp_path)
    settings = replace(settings, base_url="http://api.kie.test", upload_base_url="http://upload.kie.test")
    transport.sim.keys[key] = DEFAULT_ACCOUNT  # the simulator accepts this key
    async with Client(create_server(replace(settings, catalog_sync=False), transport=transport)) as client:
        made = await client.call_tool(
            "generate_image",
            {"model": "google/nano-banana-edit", "prompt": "on ice", "images": [f"references/shot-{key}.png"],
             "wait_seconds": 20},
            )  # fmt: skip
    assert not made.is_error and made.structured_content["status"] in ("completed", "confirmation_required"), text_of(
        made
    )
    assert key not in text_of(made)


async def test_a_local_path_with_spaces_or_a_line_break_around_it_is_the_file_it_names(connect, controls, tmp_path):
    """The audit: "  references/r0.png  " (and a path copied with its newline) was "neither an http(s) URL nor a
    readable file", while a link with the same around it was tidied. A path is judged without what a copied line
    brings around it, unless a file is there under the very name written (one whose name ends in a space)."""
    references = tmp_path / "references"
    references.mkdir()
    (references / "r0.png").write_bytes(_image("PNG", (1100, 1100)))
    spaced = references / "spaced.png "  # a real name ending in a space: taken as written
    spaced.write_bytes(_image("JPEG", (1100, 1100)))
    (references / "spaced.png").write_bytes(_image("PNG", (1200, 1200)))
    around = ["  references/r0.png  ", "references/r0.png\n", "\u200breferences/r0.png\r\n"]
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool("estimate_cost", {**EDIT, "images": around})
        made = await client.call_tool("generate_image", {**EDIT, "images": ["  references/r0.png\n"]})
        named = await client.call_tool("generate_image", {**EDIT, "images": ["references/spaced.png "]})
    assert not quoted.is_error, text_of(quoted)
    assert made.structured_content["status"] == "completed", text_of(made)
    assert not named.is_error and named.structured_content["status"] == "completed", text_of(named)
    sent = [link for create in await controls.creates() for link in create["body"]["input"]["image_urls"]]
    fetched = [(await controls.http.get(link)).content for link in sent]
    assert fetched == [(references / "r0.png").read_bytes(), spaced.read_bytes()]


SHARE_PAGES = {
    "https://drive.google.com/file/d/1AbCdEf_-9/view?usp=sharing": (
        "https://drive.google.com/uc?export=download&id=1AbCdEf_-9"
    ),
    "https://drive.google.com/open?id=1AbCdEf_-9": "https://drive.google.com/uc?export=download&id=1AbCdEf_-9",
    "https://www.dropbox.com/s/abc123/photo.jpg?dl=0": "https://www.dropbox.com/s/abc123/photo.jpg?dl=1",
    "https://www.dropbox.com/scl/fi/abc123/photo.jpg?rlkey=xyz&dl=0": (
        "https://www.dropbox.com/scl/fi/abc123/photo.jpg?rlkey=xyz&dl=1"
    ),
}


async def test_a_share_page_link_is_refused_before_anything_is_spent_naming_its_direct_download_link(connect, controls):
    """The audit: a Google Drive ".../file/d/<id>/view?usp=sharing" link and a Dropbox "?dl=0" link are web pages
    about a picture, not the picture; generate_image sent both to a paid create. Each is refused before anyone is
    asked or anything is created, naming the link that serves the file; those direct links are taken."""
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        for page, direct in SHARE_PAGES.items():
            for tool in ("estimate_cost", "generate_image"):
                result = await client.call_tool(tool, {**EDIT, "images": [page]})
                assert result.is_error and "images[0]" in text_of(result), text_of(result)
                assert "not the file itself" in text_of(result) and direct in text_of(result), text_of(result)
        assert asked == [] and await controls.creates() == []
        for direct in dict.fromkeys(SHARE_PAGES.values()):
            quoted = await client.call_tool("estimate_cost", {**EDIT, "images": [direct]})
            assert not quoted.is_error, text_of(quoted)
