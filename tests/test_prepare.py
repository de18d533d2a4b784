"""What is sent for a local image: it must decode; a small one is upscaled to 1080 px first (JPEG when opaque, PNG
keeping its transparency, 16-bit grey scaled to 8 bits, turned upright), under a name of its own; the quote says so.
One that cannot be upscaled (floating-point or 32-bit pixels) is sent, and judged, at its own size.

The simulator's upload host keeps what it was sent: each test fetches the link a create was given and looks at the
pixels KIE would see.
"""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path
from typing import Any

import pytest
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from PIL import Image, ImageStat

from kie_mcp.apps import CARD_KEY
from kie_mcp.media.prepare import prepare_image

from .conftest import answering, text_of
from .test_alpha import _chunk

EDIT = {"prompt": "make it blue", "model": "google/nano-banana-edit"}  # images upscaled when small
UPSCALE = {"model": "topaz/image-upscale", "options": {"upscale_factor": "2"}}  # images sent as they are
UPLOAD_PATHS = {"/api/file-stream-upload", "/api/file-base64-upload", "/api/file-url-upload"}


def picture(path, size, mode="RGBA"):
    Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)).save(path)
    return path


def logo(path: Path, size: int = 512) -> Path:
    """A small logo: a yellow square on a transparent background (whose hidden colour is a loud magenta)."""
    image = Image.new("RGBA", (size, size), (255, 0, 255, 0))
    image.paste((255, 200, 0, 255), (size // 4, size // 4, size * 3 // 4, size * 3 // 4))
    image.save(path)
    return path


def grey_16_bit(path: Path) -> Path:
    """A 500x500 16-bit grey PNG: a ramp from black to almost white (mean about half of 65535)."""
    image = Image.new("I;16", (500, 500))
    image.putdata([(i % 500) * 131 for i in range(500 * 500)])
    image.save(path)
    return path


async def sent_pictures(controls) -> list[tuple[str, Image.Image]]:
    """Each image link the creates named (in order), and the picture KIE would fetch from it."""
    found = []
    for create in await controls.creates():
        for value in create["body"]["input"].values():
            for link in value if isinstance(value, list) else [value]:
                if isinstance(link, str) and link.startswith("http://upload."):
                    fetched = await controls.http.get(link)
                    image = Image.open(io.BytesIO(fetched.content))
                    image.load()
                    found.append((link, image))
    return found


async def kie_traffic(controls) -> list[str]:
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    return [r["path"] for r in items if r["path"] in UPLOAD_PATHS or r["path"].endswith(("createTask", "generate"))]


def card_picture(result) -> Image.Image:
    [shown] = result.meta[CARD_KEY]["inputs"]
    return Image.open(io.BytesIO(base64.b64decode(shown["src"].split(",", 1)[1])))


def test_small_image_is_upscaled_to_1080_rgb_jpeg(tmp_path):
    path = picture(tmp_path / "photo.png", (640, 480), "RGB")
    prepared = prepare_image(io.BytesIO(path.read_bytes()), "photo.png")
    with Image.open(io.BytesIO(prepared.content)) as image:
        assert image.format == "JPEG" and prepared.media.mime == "image/jpeg"
        assert image.mode == "RGB"
        assert image.size == (1080, 810)
    assert "640x480" in prepared.note and "1080x810" in prepared.note


def test_boundary_1023_upscaled_1024_untouched(tmp_path):
    small = prepare_image(io.BytesIO(picture(tmp_path / "a.png", (1023, 300), "RGB").read_bytes()), "a.png")
    assert small.content is not None
    big = prepare_image(io.BytesIO(picture(tmp_path / "b.png", (300, 1024), "RGB").read_bytes()), "b.png")
    assert big.content is None and big.note is None


def test_non_images_are_sent_as_they_are(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    assert prepare_image(io.BytesIO(clip.read_bytes()), "clip.mp4").content is None


async def test_small_local_image_is_upscaled_before_upload(connect, controls, tmp_path):
    picture(tmp_path / "product.png", (500, 500), "RGB")
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {**EDIT, "images": ["product.png"]})
    assert result.structured_content["status"] == "completed", text_of(result)
    message = result.structured_content["message"]
    assert "upscaled" in message and "1080x1080" in message
    assert message.count("upscaled (Lanczos)") == 1  # said once: the quote's note, not again after the upload
    [(link, image)] = await sent_pictures(controls)
    assert link.endswith(".jpg") and image.size == (1080, 1080) and image.format == "JPEG"


# -- 1: each form sent has its own name and its own remembered upload ----------------------------------------------


@pytest.mark.parametrize("name", ["photo.jpg", "logo.png"])
async def test_a_photo_sent_as_it_is_and_upscaled_is_two_uploads_each_showing_what_was_approved(
    connect, controls, tmp_path, name
):
    """The audit: a small photo.jpg sent as it is (to an upscaler) and upscaled (to an edit) were both uploaded as
    photo-<hash>.jpg, so the second upload replaced the first on KIE's file host, and the upscaler's remembered link
    then served the upscaled picture: a paid task got an input other than the one approved. Each form now has a name
    (and a remembered upload) of its own bytes; a transparent PNG, now upscaled as a PNG, too."""
    path = tmp_path / name
    if name.endswith(".jpg"):
        Image.new("RGB", (400, 300), (10, 120, 200)).save(path, "JPEG")
    else:
        logo(path, 400)
    with Image.open(path) as original:
        small, large = original.size, (1080, 810) if name.endswith(".jpg") else (1080, 1080)
        pixels = original.convert("RGBA").tobytes()
    async with connect(elicitation=answering()) as client:
        as_is = await client.call_tool("generate_image", {**UPSCALE, "images": [name]})
        upscaled = await client.call_tool("generate_image", {**EDIT, "images": [name]})
        again = await client.call_tool("generate_image", {**UPSCALE, "images": [name]})  # the remembered upload
    for result in (as_is, upscaled, again):
        assert result.structured_content["status"] == "completed", text_of(result)
    assert "reused" in text_of(again)
    sent = await sent_pictures(controls)
    assert [image.size for _, image in sent] == [small, large, small]
    assert sent[0][0] == sent[2][0] != sent[1][0]
    assert sent[2][1].convert("RGBA").tobytes() == pixels  # the file itself


# -- 2: what is upscaled is the picture the user sees ------------------------------------------------------------


async def test_a_small_transparent_logo_is_upscaled_as_a_png_keeping_its_transparency(connect, controls, tmp_path):
    """The audit: a small transparent logo was upscaled into an RGB JPEG: its background turned black (or the
    hidden colour of its transparent pixels showed). It goes up as a 1080 px PNG, transparent where it was, and the
    confirmation the user approves says so."""
    logo(tmp_path / "logo.png")
    asked: list[str] = []
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with connect(answering(seen=asked), extensions=[apps]) as client:
        estimate = await client.call_tool("estimate_cost", {**EDIT, "images": ["logo.png"]})
        result = await client.call_tool("generate_image", {**EDIT, "images": ["logo.png"]})
    assert result.structured_content["status"] == "completed", text_of(result)
    said = "upscaled (Lanczos) to 1080x1080 px before upload and sent as PNG, keeping its transparency"
    assert said in text_of(estimate) and said in asked[0], (text_of(estimate), asked)
    assert any(said in note for note in estimate.meta[CARD_KEY]["notes"])  # the approval card says it too
    assert card_picture(estimate).convert("RGBA").getpixel((5, 5))[3] == 0  # and shows it transparent
    [(link, image)] = await sent_pictures(controls)
    assert link.endswith(".png") and image.format == "PNG" and image.size == (1080, 1080)
    rgba = image.convert("RGBA")
    assert rgba.getpixel((5, 5))[3] == 0  # the background: still transparent, never black or magenta
    assert rgba.getpixel((540, 540)) == (255, 200, 0, 255)  # the square: as it was


async def test_a_16_bit_grey_image_is_upscaled_to_its_own_greys_and_the_card_shows_them(connect, controls, tmp_path):
    """The audit: a small 16-bit grey PNG was clipped to 8 bits on the way to JPEG, every pixel past 255 of 65535
    white: the model got a white square. It is scaled to 8 bits, and the approval card's picture shows those greys
    too (it showed white as well)."""
    grey_16_bit(tmp_path / "scan.png")
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with connect(answering(), extensions=[apps]) as client:
        estimate = await client.call_tool("estimate_cost", {**EDIT, "images": ["scan.png"]})
        result = await client.call_tool("generate_image", {**EDIT, "images": ["scan.png"]})
    assert result.structured_content["status"] == "completed", text_of(result)
    [(_, image)] = await sent_pictures(controls)
    sent_mean = ImageStat.Stat(image.convert("L")).mean[0]
    shown_mean = ImageStat.Stat(card_picture(estimate).convert("L")).mean[0]
    assert 110 < sent_mean < 145 and 110 < shown_mean < 145, (sent_mean, shown_mean)  # half grey, not white


async def test_a_small_photo_is_upscaled_upright_as_the_card_shows_it(connect, controls, tmp_path):
    """A small JPEG stored sideways with an EXIF orientation (as cameras write them) is shown upright by every
    viewer and by the approval card; its upscaled copy kept the sideways pixels and dropped the tag, so the model got
    it on its side. It is sent upright, as shown."""
    image = Image.new("RGB", (400, 300), (10, 120, 200))
    image.paste((250, 250, 250), (0, 0, 400, 30))  # a white band along the stored top
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    image.save(tmp_path / "phone.jpg", "JPEG", exif=exif.tobytes())
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool("generate_image", {**EDIT, "images": ["phone.jpg"]})
    assert result.structured_content["status"] == "completed", text_of(result)
    [(_, sent)] = await sent_pictures(controls)
    assert sent.size == (810, 1080)  # upright: portrait
    assert min(sent.getpixel((800, 540))) > 200  # the band is on the right once turned, as viewers show it


def sideways_photo_with_a_malformed_exif_tag(path: Path) -> Path:
    """A small JPEG stored sideways (EXIF orientation 6), a white band along its stored top, whose EXIF holds one tag
    not of its declared type: the camera's make (text) under ResolutionUnit's number (a fuzzed file's damage).
    Pillow reads it; writing that EXIF again (``ImageOps.exif_transpose``) raises ``struct.error``."""
    image = Image.new("RGB", (400, 300), (10, 120, 200))
    image.paste((250, 250, 250), (0, 0, 400, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    exif[0x010F] = "Canon"  # the make, text
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    data = buffer.getvalue()
    entry = data.index(b"\x01\x0f\x00\x02")  # big-endian IFD entry: tag 0x010F, type ASCII
    path.write_bytes(data[:entry] + b"\x01\x28" + data[entry + 2 :])  # now tag 0x0128, a number, holding text
    return path


async def test_a_small_photo_with_a_malformed_exif_tag_is_priced_and_sent_upright_never_an_unexpected_error(
    connect, controls, tmp_path
):
    """The audit (a fuzzed photo): a small JPEG with an EXIF orientation and one malformed tag failed estimate_cost
    and generate_image as "kie-mcp hit an unexpected error (error: required argument is not an integer) ... Please
    report this": turning it upright wrote its EXIF again, which Pillow could not. Only its orientation is read now:
    it is priced, upscaled upright and sent, as any photo."""
    sideways_photo_with_a_malformed_exif_tag(tmp_path / "camera.jpg")
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool("estimate_cost", {**EDIT, "images": ["camera.jpg"]})
        made = await client.call_tool("generate_image", {**EDIT, "images": ["camera.jpg"]})
    for result in (quoted, made):
        assert not result.is_error and "unexpected error" not in text_of(result), text_of(result)
    assert "camera.jpg (300x400 px) is upscaled (Lanczos) to 810x1080 px" in text_of(quoted), text_of(quoted)
    assert made.structured_content["status"] == "completed", text_of(made)
    [(_, sent)] = await sent_pictures(controls)
    assert sent.size == (810, 1080)  # upright: portrait
    assert min(sent.getpixel((800, 540))) > 200  # the band is on the right once turned, as viewers show it


async def test_upload_file_sends_a_small_image_exactly_as_it_is(connect, controls, sim, tmp_path):
    """upload_file upscaled every small image to JPEG without saying so in its description: a mask or an upscaler's
    input uploaded with it (the links it makes go anywhere) was wrecked. It sends the file's own bytes now."""
    path = logo(tmp_path / "logo.png")
    async with connect() as client:
        uploaded = await client.call_tool("upload_file", {"path": "logo.png"})
        listed = await client.list_tools()
    assert not uploaded.is_error, text_of(uploaded)
    assert "upscaled" not in uploaded.structured_content["message"]
    stored = await controls.http.get(uploaded.structured_content["url"])
    assert stored.content == path.read_bytes()
    [tool] = [tool for tool in listed.tools if tool.name == "upload_file"]
    assert "not upscaled" in tool.description


# -- 3: an image must decode ---------------------------------------------------------------------------------------


def _cut_jpeg(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.effect_noise((600, 400), 40).convert("RGB").save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


@pytest.mark.parametrize("name", ["liar.png", "cut.jpg"])
@pytest.mark.parametrize("tool", ["estimate_cost", "generate_image", "upload_file"])
async def test_an_image_that_does_not_decode_is_refused_before_it_is_priced_or_sent(
    connect, controls, tmp_path, name, tool
):
    """The audit: only the first bytes were checked, so a PNG signature followed by text (here, a key) was uploaded,
    and a picture Pillow could not decode (cut short) went to a paid create unchanged. Both are refused before any
    price or upload, saying what to do."""
    if name == "liar.png":
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"KIE_API_KEY=topsecret\n" * 100)
    else:
        _cut_jpeg(tmp_path / name)
    async with connect(elicitation=answering()) as client:
        arguments = {"path": name} if tool == "upload_file" else {**EDIT, "images": [name]}
        result = await client.call_tool(tool, arguments)
    text = text_of(result)
    assert result.is_error, text
    assert f"{name} starts like a" in text and "does not decode" in text, text
    assert "save it again" in text and "Nothing was uploaded" in text, text
    assert "quote_id" not in text  # refused, not priced
    assert await kie_traffic(controls) == []


# 38 bytes: a lossless WebP of one colour that declares 13000 x 13000 pixels (169 megapixels, under Pillow's own bomb
# bound). Decoding it took 2.7 GB and 4.5 s at every estimate; three at once, 7.8 GB.
HUGE_WEBP = bytes.fromhex("524946461e000000574542505650384c110000002fc7f2b10c07508f22d7a3ff8188e87f0000")

# A server in a process of its own, for its peak memory: its workspace (argv 1) holds a small picture.
_IN_A_SERVER = """
import anyio, json, resource, sys
from pathlib import Path
from mcp import Client
from pydantic import SecretStr
from PIL import Image
from kie_mcp.config import Settings
from kie_mcp.sandbox import SANDBOX_API_KEY, SandboxTransport, SimConfig, Simulator, media
from kie_mcp.server import create_server

workspace = Path(sys.argv[1])
Image.new("RGB", (1200, 1200), "tan").save(workspace / "small.png")
# The follower's schedule shortened as conftest's ``settings`` has it: a generation ends in moments, not seconds.
settings = Settings(api_key=SecretStr(SANDBOX_API_KEY), base_url="http://api.kie.test", auto_approve_credits=100,
                    upload_base_url="http://upload.kie.test", workspace=workspace, catalog_sync=False,
                    poll_min_interval=0.01, poll_max_interval=0.05)
edit = {"model": "google/nano-banana-edit", "prompt": "make it blue"}

def peak():
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return used / 2**20 if sys.platform == "darwin" else used / 2**10  # MiB
"""

_BOMB_SCRIPT = (
    _IN_A_SERVER
    + """
for name in ("huge.webp", "huge1.webp", "huge2.webp"):
    (workspace / name).write_bytes(bytes.fromhex(sys.argv[2]))

async def main():
    transport = SandboxTransport(Simulator(SimConfig(speed=1000.0)))
    async with Client(create_server(settings, transport=transport), mode="legacy") as client:
        await client.call_tool("estimate_cost", {**edit, "images": ["small.png"]})  # Pillow and the rest loaded
        before, answers = peak(), []
        async def estimate(name):
            answers.append(await client.call_tool("estimate_cost", {**edit, "images": [name]}))
        async with anyio.create_task_group() as group:
            for name in ("huge.webp", "huge1.webp", "huge2.webp"):
                group.start_soon(estimate, name)
        answers.append(await client.call_tool("upload_file", {"path": "huge.webp"}))
        print(json.dumps({"grew_mib": peak() - before, "errors": [a.is_error for a in answers],
                          "texts": ["".join(getattr(c, "text", "") for c in a.content)[:300] for a in answers]}))

anyio.run(main)
"""
)


def _server_report(script: str, *arguments: str) -> dict[str, Any]:
    """What ``script`` (``_IN_A_SERVER`` and its calls) printed last, as JSON, run in a Python of its own."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script, *arguments], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_few_bytes_declaring_a_huge_picture_are_never_decoded(tmp_path):
    """The audit: pictures over 16 megapixels were said not to be decoded at every estimate, but only a PNG skipped
    the decode, so 38 bytes of WebP declaring 13000 x 13000 pixels made the server take 2.7 GB (three at once, 7.8
    GB). Three estimates at once and an upload of it are answered (its header is all that is checked), and the
    server's peak memory grows by far less than one such decode (a 169-megapixel RGB picture: 483 MiB)."""
    report = _server_report(_BOMB_SCRIPT, str(tmp_path), HUGE_WEBP.hex())
    assert report["errors"] == [False, False, False, False], report["texts"]
    assert report["grew_mib"] < 200, report


def _progressive_jpeg(side: int) -> bytes:
    """A progressive grey JPEG of 16 x 16 pixels whose header then declares ``side`` x ``side``: 283 bytes that libjpeg
    decodes whole (the rest of the picture flat), holding every coefficient of the declared picture while it does
    (13000 x 13000: 330 MB for its one grey band; a 2 MB colour photo of that size took 1 GB)."""
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 90).save(buffer, "JPEG", progressive=True, quality=50)
    data = bytearray(buffer.getvalue())
    frame = data.find(b"\xff\xc2")  # the progressive frame's header: length, precision, height, width
    data[frame + 5 : frame + 9] = struct.pack(">HH", side, side)
    return bytes(data)


_PROGRESSIVE_SCRIPT = (
    _IN_A_SERVER
    + """
crafted, where = bytes.fromhex(sys.argv[2]), sys.argv[3]
(workspace / "huge.jpg").write_bytes(crafted)

async def main():
    transport = SandboxTransport(Simulator(SimConfig(speed=1000.0)))
    async with Client(create_server(settings, transport=transport), mode="legacy") as client:
        warm = await client.call_tool("generate_image", {**edit, "images": ["small.png"], "wait_seconds": 30})
        await client.call_tool("check_task", {"task_id": warm.structured_content["tasks"][0]["task_id"]})
        before = peak()
        if where == "input":
            answer = await client.call_tool("estimate_cost", {**edit, "images": ["huge.jpg"]})
        else:  # KIE's result is the crafted JPEG: checked to decode as it is saved, then previewed
            media.image_bytes = lambda *args, **kwargs: crafted
            again = {**edit, "prompt": "make it green"}  # not the warm-up's request, made a moment ago (asked again)
            made = await client.call_tool("generate_image", {**again, "images": ["small.png"], "wait_seconds": 30})
            answer = await client.call_tool("check_task", {"task_id": made.structured_content["tasks"][0]["task_id"]})
        print(json.dumps({"grew_mib": peak() - before, "error": answer.is_error,
                          "text": "".join(getattr(c, "text", "") for c in answer.content)[:600]}))

anyio.run(main)
"""
)


@pytest.mark.parametrize("where", ["input", "result"])
def test_a_progressive_jpeg_is_judged_at_its_full_size_before_any_decode(tmp_path, where):
    """The review: a JPEG was decoded at an eighth of its size (to check an input, to check a saved result and make
    its preview), taken to cost an eighth of the memory, so a 13000 x 13000 one was decoded; a progressive JPEG
    holds every coefficient of its whole picture whatever the scale, and a 2 MB one took 1 GB (the follower saves up
    to 8 results at once). It is judged at its full size, as before: past the pixels a check or a preview decodes,
    only its header is read. The server's peak memory grows by far less than that decode (330 MiB here)."""
    report = _server_report(_PROGRESSIVE_SCRIPT, str(tmp_path), _progressive_jpeg(13000).hex(), where)
    assert not report["error"], report["text"]
    assert report["grew_mib"] < 100, report


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # kie-mcp silences it (sniff.pillow)
def test_a_tiff_or_bmp_too_large_to_decode_still_has_its_structure_checked():
    """Past 16 megapixels nothing is decoded; a TIFF's strips and a BMP's rows are still held to the file's length,
    so one cut short is refused, as its decode would have refused it, and a whole one is taken."""
    from kie_mcp.media.prepare import DECODE_MAX_PIXELS, undecodable
    from kie_mcp.media.sniff import sniff

    for kind in ("TIFF", "BMP"):
        buffer = io.BytesIO()
        Image.new("L", (5000, 4000), 90).save(buffer, kind)
        whole = buffer.getvalue()
        assert DECODE_MAX_PIXELS < 5000 * 4000
        assert undecodable(io.BytesIO(whole), sniff(whole)) is None, kind
        why = undecodable(io.BytesIO(whole[: len(whole) // 2]), sniff(whole))
        assert why is not None and "ends before the picture does" in why, (kind, why)
    assert undecodable(io.BytesIO(HUGE_WEBP), sniff(HUGE_WEBP)) is None  # its header is all there is to check


async def test_a_heic_photo_pillow_cannot_read_is_still_uploaded_as_it_is(connect, controls, tmp_path):
    """HEIC is real media by its bytes that this Pillow has no decoder for: it cannot be checked, and is sent as it
    is (as before), not refused as undecodable."""
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(256)
    (tmp_path / "photo.heic").write_bytes(heic)
    async with connect() as client:
        uploaded = await client.call_tool("upload_file", {"path": "photo.heic"})
    assert not uploaded.is_error, text_of(uploaded)
    assert (await controls.http.get(uploaded.structured_content["url"])).content == heic


def _jpeg_without_its_end(path: Path) -> Path:
    """A whole photo whose file lacks only its end marker (some cameras and tools write none): viewers open it."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((1200, 900)).convert("RGB").save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[:-2])
    return path


def _png_with_a_damaged_text_chunk(path: Path) -> Path:
    """A PNG whose text chunk (ancillary: viewers skip it) has a wrong checksum; its picture is whole."""
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (20, 120, 200)).save(buffer, "PNG")
    data = buffer.getvalue()
    text = b"Comment\x00shot on a phone"
    chunk = len(text).to_bytes(4, "big") + b"tEXt" + text + b"\x00\x00\x00\x00"  # checksum 0: wrong
    end = data.index(b"IDAT") - 4  # before the picture data
    path.write_bytes(data[:end] + chunk + data[end:])
    return path


@pytest.mark.parametrize("name", ["no-end.jpg", "damaged-text.png"])
async def test_an_image_every_viewer_opens_is_taken_though_its_file_is_not_by_the_book(
    connect, controls, tmp_path, name
):
    """The review: a JPEG lacking only its end marker and a PNG with a damaged text chunk were refused as "cut short"
    and "not a PNG", though viewers (and KIE) open them. They are taken, priced and sent as they are."""
    path = (_jpeg_without_its_end if name.endswith(".jpg") else _png_with_a_damaged_text_chunk)(tmp_path / name)
    async with connect(elicitation=answering()) as client:
        made = await client.call_tool("generate_image", {**EDIT, "images": [name]})
    assert made.structured_content["status"] == "completed", text_of(made)
    [create] = await controls.creates()
    [link] = create["body"]["input"]["image_urls"]
    assert (await controls.http.get(link)).content == path.read_bytes()


async def test_a_small_image_named_several_ways_is_said_to_be_upscaled_once(connect, controls, tmp_path):
    """The review: one small picture given as name, ./name and its full path said "upscaled" three times, in the quote,
    the form and the answer. Said once, uploaded once."""
    picture(tmp_path / "small.png", (400, 300), mode="RGB")
    names = ["small.png", "./small.png", str(tmp_path / "small.png")]
    asked: list[str] = []
    async with connect(elicitation=answering(seen=asked)) as client:
        quoted = await client.call_tool("estimate_cost", {**EDIT, "images": names})
        made = await client.call_tool("generate_image", {**EDIT, "images": names})
    for text in (text_of(quoted), text_of(made), *asked):
        assert text.count("is upscaled (Lanczos)") <= 1, text
    assert text_of(quoted).count("is upscaled (Lanczos)") == 1
    assert [path for path in await kie_traffic(controls) if path in UPLOAD_PATHS] == ["/api/file-stream-upload"]


async def test_a_small_jpeg_lacking_its_end_marker_is_sent_upscaled_as_it_was_judged(connect, controls, tmp_path):
    """The review: a small JPEG lacking only its end marker, newly taken, was judged by its upscaled size (a model's
    smallest side) but sent small, as the upscale could not open it: an input below the model's minimum, paid for. It
    is upscaled from its picture as viewers show it, and the quote says so."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((250, 250)).convert("RGB").save(buffer, "JPEG")
    (tmp_path / "small.jpg").write_bytes(buffer.getvalue()[:-2])
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool("estimate_cost", {**EDIT, "images": ["small.jpg"]})
        made = await client.call_tool("generate_image", {**EDIT, "images": ["small.jpg"]})
    assert "is upscaled (Lanczos) to 1080x1080" in text_of(quoted), text_of(quoted)
    assert made.structured_content["status"] == "completed", text_of(made)
    [(_, sent)] = await sent_pictures(controls)
    assert sent.size == (1080, 1080)


@pytest.mark.parametrize("mode", ["auto"])  # a 16-megapixel decode: once (the era is test_protocol's)
async def test_a_large_tiff_cut_short_is_refused_though_above_the_full_decode_size(connect, controls, tmp_path, mode):
    """The review: above 16 megapixels only a picture's structure is checked, and Pillow checks none for TIFF (or
    BMP): one cut in half was priced. Those formats are decoded whatever their size."""
    buffer = io.BytesIO()
    Image.new("L", (4100, 4000), 90).save(buffer, "TIFF")
    (tmp_path / "scan.tif").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    reference = {"model": "bytedance/seedance-2", "prompt": "a calm scene", "duration": 5}
    reference["options"] = {"reference_image_urls": ["scan.tif"]}
    async with connect() as client:
        quoted = await client.call_tool("estimate_cost", reference)
    assert quoted.is_error and "does not decode" in text_of(quoted), text_of(quoted)


SEEDANCE = {"model": "bytedance/seedance-2", "prompt": "a calm scene", "duration": 5}  # references: 300 px a side


@pytest.mark.parametrize(
    ("pixels", "value", "why"), [("F", 0.5, "floating-point pixels"), ("I", 100_000, "pixel values past 16 bits")]
)
async def test_a_small_picture_that_cannot_be_upscaled_is_judged_at_the_size_it_is_sent(
    connect, controls, tmp_path, pixels, value, why
):
    """The audit: a small picture with floating-point or 32-bit pixels (which have no faithful 8-bit form, so it is
    sent as it is) was judged by the size it would have once upscaled: a 250 px one passed a field of at least 300 px
    and was paid for, sent at 250 px. It is judged at the size it is sent, refused saying why it is not upscaled;
    one large enough is quoted as sent as it is, and sent so."""
    Image.new(pixels, (250, 250), value).save(tmp_path / "small.tif")
    Image.new(pixels, (400, 400), value).save(tmp_path / "fits.tif")
    small = {**SEEDANCE, "options": {"reference_image_urls": ["small.tif"]}}
    fits = {**SEEDANCE, "options": {"reference_image_urls": ["fits.tif"]}}
    async with connect(elicitation=answering()) as client:
        quoted = await client.call_tool("estimate_cost", small)
        refused = await client.call_tool("generate_video", small)
        made = await client.call_tool("generate_video", fits)
    for result in (quoted, refused):
        text = text_of(result)
        assert result.is_error and f"small.tif is 250x250 px, sent as it is (not upscaled: it has {why}" in text, text
        assert "takes pictures at least 300 px a side" in text and "save this one as an 8-bit PNG or JPEG" in text
    assert not made.is_error and f"fits.tif (400x400 px) is sent as it is, not upscaled: it has {why}" in text_of(made)
    [(link, image)] = await sent_pictures(controls)
    assert link.endswith(".tif") and image.size == (400, 400) and image.mode == pixels


# -- 5: a field that takes no transparency gets its pictures flattened onto white --------------------------------

WAN = {"prompt": "the logo spins slowly", "model": "wan/3-0-video"}  # frames: "PNG (no transparency)"


def cutout(path: Path, size: tuple[int, int] = (1280, 720), alpha: int = 0) -> Path:
    """A blue card on a background of ``alpha`` (0: transparent, its hidden colour a loud magenta)."""
    image = Image.new("RGBA", size, (255, 0, 255, alpha))
    image.paste((20, 20, 200, 255), (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
    image.save(path)
    return path


async def test_a_transparent_picture_is_flattened_onto_white_for_a_field_that_takes_no_transparency(
    connect, controls, tmp_path
):
    """The audit: KIE documents Wan 3.0's frames as "PNG (no transparency)", and a transparent logo was upscaled and
    sent as a PNG keeping its transparency, a 160-credit create and all. A picture with transparent pixels is
    flattened onto white before it goes up, small (upscaled too) or large (converted only for this), and the quote,
    the question and the answer say so before anything is spent. Only used transparency is: an RGBA picture all of
    whose pixels are opaque goes up byte for byte."""
    logo(tmp_path / "logo.png")
    cutout(tmp_path / "cutout.png")
    opaque = cutout(tmp_path / "opaque.png", alpha=255)
    frames = {**WAN, "images": ["logo.png", "cutout.png"]}
    asked: list[str] = []
    async with connect(answering(seen=asked)) as client:
        estimate = await client.call_tool("estimate_cost", frames)
        result = await client.call_tool("generate_video", {**frames, "wait_seconds": 0})
        as_it_is = await client.call_tool("generate_video", {**WAN, "images": ["opaque.png"], "wait_seconds": 0})
    assert not result.is_error, text_of(result)
    assert not as_it_is.is_error and "flattened" not in text_of(as_it_is), text_of(as_it_is)
    small = (
        "logo.png (512x512 px) is upscaled (Lanczos) to 1080x1080 px before upload and sent as JPEG, because small "
        "inputs are often rejected or blurry; its transparent pixels are flattened onto white, because "
        "wan/3-0-video's first_frame_url takes no transparency."
    )
    large = (
        "cutout.png (1280x720 px) is sent as JPEG without transparency: its transparent pixels are flattened onto "
        "white, because wan/3-0-video's last_frame_url takes no transparency."
    )
    for said in (text_of(estimate), asked[0], text_of(result)):
        assert small in said and large in said, said
    assert "keeping its transparency" not in text_of(estimate)
    [(first, logo_sent), (last, cutout_sent), (kept, _)] = await sent_pictures(controls)
    assert kept.endswith(".png") and (await controls.http.get(kept)).content == opaque.read_bytes()
    assert first.endswith(".jpg") and logo_sent.format == "JPEG" and logo_sent.size == (1080, 1080)
    assert last.endswith(".jpg") and cutout_sent.format == "JPEG" and cutout_sent.size == (1280, 720)
    for image, middle in ((logo_sent, (255, 200, 0)), (cutout_sent, (20, 20, 200))):
        assert image.mode == "RGB"  # no alpha channel at all
        assert all(abs(a - b) <= 3 for a, b in zip(image.getpixel((5, 5)), (255, 255, 255), strict=True))  # white
        centre = image.getpixel((image.size[0] // 2, image.size[1] // 2))
        assert all(abs(a - b) <= 3 for a, b in zip(centre, middle, strict=True)), centre  # the picture as it was


async def test_a_large_picture_with_an_alpha_channel_is_read_exactly_a_strip_at_a_time_or_said_to_be_unchecked(
    connect, controls, tmp_path
):
    """The review: a 5000x4000 RGBA export, every pixel opaque (what many editors write), was refused for Wan 3.0's
    frames: past the 16 megapixels kie-mcp decodes, its alpha channel cannot be read whole (Pillow decodes all of a
    PNG to read it). Then it was sent byte for byte with a note that its transparency was not checked. A PNG's alpha
    is now read exactly, a strip at a time: all opaque, it is sent byte for byte and nothing is said; with one
    transparent pixel (the last), which kie-mcp cannot flatten without decoding it whole, it is refused before it is
    priced, saying how to flatten it. A WebP that large is still sent as it is (not read so), the quote, the question
    and the answer saying its transparency was not checked."""
    poster = Image.new("RGBA", (5000, 4000), (10, 120, 10, 255))
    poster.save(tmp_path / "poster.png", compress_level=1)
    poster.putpixel((4999, 3999), (10, 120, 10, 0))
    poster.save(tmp_path / "cutout.png", compress_level=1)
    poster.save(tmp_path / "cutout.webp", lossless=True)
    asked: list[str] = []
    async with connect(answering(seen=asked)) as client:
        estimate = await client.call_tool("estimate_cost", {**WAN, "images": ["poster.png"]})
        made = await client.call_tool("generate_video", {**WAN, "images": ["poster.png"], "wait_seconds": 0})
        refused = [
            await client.call_tool(tool, {**WAN, "images": ["cutout.png"]})
            for tool in ("estimate_cost", "generate_video")
        ]
        webp = await client.call_tool("estimate_cost", {**WAN, "images": ["cutout.webp"]})
        webp_made = await client.call_tool("generate_video", {**WAN, "images": ["cutout.webp"], "wait_seconds": 0})
    assert not estimate.is_error and not made.is_error, text_of(estimate) + text_of(made)
    for text in (text_of(estimate), asked[0], text_of(made)):
        assert "poster.png (" not in text and "alpha channel" not in text and "flattened" not in text, text
    for answer in refused:
        text = text_of(answer)
        refusal = "cutout.png has transparent pixels, and at 5000x4000 px, more than 16 megapixels, kie-mcp does not "
        assert answer.is_error and refusal + "decode it whole to flatten them onto white" in text, text
        assert "takes pictures without transparency" in text and "save it as JPEG" in text, text
    said = (
        "cutout.webp (5000x4000 px) is sent as it is: it has an alpha channel, and at more than 16 megapixels kie-mcp "
        "does not decode it to see whether any pixel is transparent. wan/3-0-video's first_frame_url takes no "
        "transparency, so KIE may refuse it if some pixel is"
    )
    for text in (text_of(webp), asked[-1], text_of(webp_made)):
        assert said in text, text
    [(png, _), (webp_link, _)] = await sent_pictures(controls)  # the refused picture was never sent
    assert png.endswith(".png") and (await controls.http.get(png)).content == (tmp_path / "poster.png").read_bytes()
    assert (await controls.http.get(webp_link)).content == (tmp_path / "cutout.webp").read_bytes()


async def test_a_large_transparent_png_with_a_header_spliced_in_after_its_image_data_is_still_refused(
    connect, controls, tmp_path
):
    """The review: a 5000x4000 RGBA picture, transparent but for its top-left pixel, with a 1x1 IHDR chunk spliced
    in after its image data (Pillow, as any decoder, reads the first header and ignores it) was judged by that 1x1
    header: its one pixel opaque, the picture was priced and sent for Wan 3.0's frames, which take no transparency,
    nothing said. The header believed is the first chunk, and the size Pillow read: it is refused before it is
    priced, as the same picture without the spliced chunk is, and nothing is uploaded."""
    picture = Image.new("RGBA", (5000, 4000), (0, 0, 0, 0))
    picture.putpixel((0, 0), (9, 9, 9, 255))
    picture.save(tmp_path / "plain.png", compress_level=1)
    data = (tmp_path / "plain.png").read_bytes()
    end = data.rindex(b"IEND") - 4
    tiny = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    (tmp_path / "spliced.png").write_bytes(data[:end] + _chunk(b"IHDR", tiny) + data[end:])
    async with connect(answering()) as client:
        answers = [
            await client.call_tool(tool, {**WAN, "images": [name]})
            for name in ("plain.png", "spliced.png")
            for tool in ("estimate_cost", "generate_video")
        ]
    for answer, name in zip(answers, ("plain.png", "plain.png", "spliced.png", "spliced.png"), strict=True):
        text = text_of(answer)
        assert answer.is_error and f"{name} has transparent pixels, and at 5000x4000 px" in text, text
    assert await kie_traffic(controls) == []


def animation(path: Path, size: tuple[int, int], fmt: str = "WEBP") -> Path:
    """A three-frame animated sticker as Pillow writes one: a card whose colour changes frame by frame (its first
    frame blue), on a transparent background whose hidden colour is a loud magenta. One opaque corner pixel keeps
    every frame the whole canvas (else the WebP encoder crops the frames and drops the alpha channel)."""
    frames = []
    for colour in ((20, 20, 200, 255), (200, 20, 20, 255), (20, 200, 20, 255)):
        frame = Image.new("RGBA", size, (255, 0, 255, 0))
        frame.paste(colour, (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
        frame.putpixel((0, 0), (1, 2, 3, 255))
        frames.append(frame)
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


async def test_an_animated_picture_flattened_for_a_field_that_takes_no_transparency_is_said_to_be_its_first_frame(
    connect, controls, tmp_path
):
    """The review: an animated WebP (or PNG) given to Wan 3.0's frames, which take no transparency, was flattened
    onto white and sent as a JPEG: its first frame only, and nothing said so. The quote, the question and the answer
    name the flattening and that only the first frame is sent, as a still picture; what KIE is given is that frame."""
    animation(tmp_path / "sticker.webp", (1280, 720))
    animation(tmp_path / "sticker.png", (1280, 720), "PNG")
    frames = {**WAN, "images": ["sticker.webp", "sticker.png"]}
    asked: list[str] = []
    async with connect(answering(seen=asked)) as client:
        estimate = await client.call_tool("estimate_cost", frames)
        made = await client.call_tool("generate_video", {**frames, "wait_seconds": 0})
    assert not estimate.is_error and not made.is_error, text_of(estimate) + text_of(made)
    still = "It is animated (3 frames): only its first frame is sent, as a still picture."
    said = [
        f"{name} (1280x720 px) is sent as JPEG without transparency: its transparent pixels are flattened onto white, "
        f"because wan/3-0-video's {field} takes no transparency. {still}"
        for name, field in (("sticker.webp", "first_frame_url"), ("sticker.png", "last_frame_url"))
    ]
    for text in (text_of(estimate), asked[0], text_of(made)):
        assert all(line in text for line in said), text
    for link, sent in await sent_pictures(controls):
        assert link.endswith(".jpg") and sent.format == "JPEG" and sent.mode == "RGB", link
        assert getattr(sent, "n_frames", 1) == 1 and sent.size == (1280, 720)
        assert all(abs(a - b) <= 3 for a, b in zip(sent.getpixel((5, 5)), (255, 255, 255), strict=True))  # white
        centre = sent.getpixel((640, 360))
        assert all(abs(a - b) <= 6 for a, b in zip(centre, (20, 20, 200), strict=True)), centre  # the first frame


async def test_an_animated_picture_goes_as_it_is_to_a_field_that_takes_transparency_and_upscaled_says_its_first_frame(
    connect, controls, tmp_path
):
    """What KIE documents of an edit's images (JPEG, PNG, WEBP) says nothing of animation, so an animated WebP large
    enough is sent byte for byte, nothing said; a small one is upscaled like any small picture, which makes a still
    of its first frame: the quote and the answer say so."""
    animation(tmp_path / "large.webp", (1280, 720))
    animation(tmp_path / "small.webp", (400, 300))
    asked: list[str] = []
    async with connect(answering(seen=asked)) as client:
        large = await client.call_tool("estimate_cost", {**EDIT, "images": ["large.webp"]})
        sent_large = await client.call_tool("generate_image", {**EDIT, "images": ["large.webp"], "wait_seconds": 0})
        small = await client.call_tool("estimate_cost", {**EDIT, "images": ["small.webp"]})
        sent_small = await client.call_tool("generate_image", {**EDIT, "images": ["small.webp"], "wait_seconds": 0})
    for answer in (large, sent_large, small, sent_small):
        assert not answer.is_error, text_of(answer)
    for answer in (large, sent_large):
        assert "animated" not in text_of(answer) and "large.webp (" not in text_of(answer), text_of(answer)
    said = (
        "small.webp (400x300 px) is upscaled (Lanczos) to 1080x810 px before upload and sent as PNG, keeping its "
        "transparency, because small inputs are often rejected or blurry. It is animated (3 frames): only its first "
        "frame is sent, as a still picture."
    )
    assert said in text_of(small) and said in text_of(sent_small), text_of(small) + text_of(sent_small)
    [(as_is, _), (upscaled, picture)] = await sent_pictures(controls)
    assert (await controls.http.get(as_is)).content == (tmp_path / "large.webp").read_bytes()
    assert upscaled.endswith(".png") and getattr(picture, "n_frames", 1) == 1 and picture.size == (1080, 810)
