"""Reference images too small for the models are upscaled before upload.

Many models reject or degrade small inputs. An image whose longest side is under 1024 px is resized with
Lanczos so its longest side is 1080 px, and sent as an RGB JPEG (quality 92). Everything else is sent as is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import anyio

from kie_mcp.kie import KieClient, UploadedFile

from .sniff import Sniffed, pillow

MIN_LONG_SIDE = 1024
TARGET_LONG_SIDE = 1080
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Prepared:
    content: bytes | None  # None: upload the file unchanged
    name: str
    note: str | None


def prepare_image(content: bytes, name: str, source: str) -> Prepared:
    """Upscale a small image (``content``, read from the file named ``source``); leave large images and
    non-images untouched."""
    from PIL import UnidentifiedImageError

    Image = pillow()  # Pillow, loaded with the first image, not at start-up
    try:
        with Image.open(io.BytesIO(content)) as image:
            width, height = image.size
            if max(width, height) >= MIN_LONG_SIDE:
                return Prepared(None, name, None)
            scale = TARGET_LONG_SIDE / max(width, height)
            size = (max(round(width * scale), 1), max(round(height * scale), 1))
            resized = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        # Pillow cannot decode it (a format it lacks, such as HEIC, or a huge picture): it is real media by its
        # bytes, checked before, so it is sent as it is.
        return Prepared(None, name, None)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=JPEG_QUALITY)
    jpeg_name = f"{Path(name).stem}.jpg"
    note = (
        f"{source} was {width}x{height} px; upscaled (Lanczos) to {size[0]}x{size[1]} px and sent as JPEG, "
        "because small inputs are often rejected or blurry."
    )
    return Prepared(buffer.getvalue(), jpeg_name, note)


async def upload_prepared(
    kie: KieClient, content: bytes, upload_path: str, name: str, source: str, media: Sniffed, *, prepare: bool = True
) -> tuple[UploadedFile, str | None]:
    """Upload ``content`` (the checked bytes of the file named ``source``) as ``name``, upscaled first when it is a
    small image (unless not to ``prepare``: the input of an upscaler, or a mask); returns the upload and what was
    done.

    ``media`` is what the bytes are (``media.sniff``), checked by the caller: it is sent as the upload's MIME type,
    whatever the file's name says.
    """
    if media.kind == "image" and prepare:
        prepared = await anyio.to_thread.run_sync(prepare_image, content, name, source)
        if prepared.content is not None:
            uploaded = await kie.upload_bytes(
                prepared.content, prepared.name, upload_path=upload_path, mime="image/jpeg"
            )
            return uploaded, prepared.note
    return await kie.upload_file(content, name, upload_path=upload_path, mime=media.mime), None
