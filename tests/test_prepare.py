"""Small reference images are upscaled to 1080 px (Lanczos, RGB JPEG) before upload; the result says so."""

from __future__ import annotations

import io

from PIL import Image

from kie_mcp.media.prepare import prepare_image

from .conftest import answering, text_of


def picture(path, size, mode="RGBA"):
    Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)).save(path)
    return path


def test_small_image_is_upscaled_to_1080_rgb_jpeg(tmp_path):
    prepared = prepare_image(picture(tmp_path / "logo.png", (640, 480)).read_bytes(), "logo-abc.png", "logo.png")
    assert prepared.name == "logo-abc.jpg"
    with Image.open(io.BytesIO(prepared.content)) as image:
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        assert image.size == (1080, 810)
    assert "640x480" in prepared.note and "1080x810" in prepared.note


def test_boundary_1023_upscaled_1024_untouched(tmp_path):
    small = prepare_image(picture(tmp_path / "a.png", (1023, 300), "RGB").read_bytes(), "a.png", "a.png")
    assert small.content is not None
    big = prepare_image(picture(tmp_path / "b.png", (300, 1024), "RGB").read_bytes(), "b.png", "b.png")
    assert big.content is None and big.note is None


def test_non_images_are_sent_as_they_are(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    assert prepare_image(clip.read_bytes(), "clip.mp4", "clip.mp4").content is None


async def test_small_local_image_is_upscaled_before_upload(connect, controls, transport, tmp_path):
    picture(tmp_path / "product.png", (500, 500))
    async with connect(elicitation=answering()) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "make it blue", "model": "google/nano-banana-edit", "images": ["product.png"]}
        )
        uploaded = await client.call_tool("upload_file", {"path": "product.png"})
    assert result.structured_content["status"] == "completed", text_of(result)
    assert "upscaled" in result.structured_content["message"] and "1080x1080" in result.structured_content["message"]
    assert "upscaled" in uploaded.structured_content["message"]
    sent_url = (await controls.creates())[0]["body"]["input"]["image_urls"][0]
    assert sent_url.endswith(".jpg")
    stored = await controls.http.get(sent_url)
    with Image.open(io.BytesIO(stored.content)) as image:
        assert image.size == (1080, 1080) and image.format == "JPEG"
