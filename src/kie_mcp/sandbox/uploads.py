"""The upload host (kie-api.md §11.1): stream, URL and base64 uploads, served back under ``/files/uploads/``.

The sim never makes outbound calls: a URL upload copies bytes only from URLs the sim itself
served, and stores a small placeholder image for any other URL.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.datastructures import UploadFile
from starlette.responses import Response

from . import media
from .context import Ctx
from .errors import FileError, KieError
from .routes import SimRoute
from .state import StoredUpload

STREAM_PATH = "/api/file-stream-upload"
URL_PATH = "/api/file-url-upload"
BASE64_PATH = "/api/file-base64-upload"
UPLOADED = "File uploaded successfully"
BAD_BASE64 = "Base64 decoding failed: Invalid Base64 format"
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[^;,]*)*;base64,(?P<payload>.*)$", re.S)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def _upload_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip().strip("/"):
        raise KieError(400, "Missing required parameter: uploadPath")
    path = value.strip().strip("/")
    if ".." in path.split("/"):
        raise KieError(400, "uploadPath must not contain '..'")
    return path


def _file_name(value: Any, fallback: str) -> str:
    name = value if isinstance(value, str) and value.strip() else fallback
    name = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") else fallback


def _answer(ctx: Ctx, item: StoredUpload) -> Response:
    """The 2026 response shape, or the older quickstart shape when ``old_upload_shape`` is on."""
    url = f"{ctx.base_url}/files/uploads/{quote(item.path)}"
    name = item.path.rsplit("/", 1)[-1]
    if ctx.sim.config.old_upload_shape:
        data: dict[str, Any] = {
            "fileId": item.file_id,
            "fileName": name,
            "originalName": item.original_name,
            "fileSize": len(item.data),
            "mimeType": item.mime,
            "uploadPath": item.path.rsplit("/", 1)[0] if "/" in item.path else "",
            "fileUrl": url,
            "downloadUrl": url,
            "uploadTime": _iso(item.uploaded_at),
            "expiresAt": _iso(item.expires_at),
        }
    else:
        data = {
            "fileName": name,
            "filePath": item.path,
            "downloadUrl": url,
            "fileSize": len(item.data),
            "mimeType": item.mime,
            "uploadedAt": _iso(item.uploaded_at),
        }
    return ctx.ok(data, UPLOADED)


async def stream_upload(ctx: Ctx) -> Response:
    try:
        form = await ctx.request.form(max_part_size=16 * 1024 * 1024)
    except Exception as exc:  # malformed multipart: KIE answers 400
        raise KieError(400, f"Invalid multipart body: {exc}") from None
    try:
        upload = form.get("file")
        raw_path, raw_name = form.get("uploadPath"), form.get("fileName")
        ctx.record.body = {
            "uploadPath": raw_path if isinstance(raw_path, str) else None,
            "fileName": raw_name if isinstance(raw_name, str) else None,
            "file": {"filename": upload.filename, "size": upload.size} if isinstance(upload, UploadFile) else None,
        }
        path = _upload_path(raw_path)
        if not isinstance(upload, UploadFile):
            raise KieError(400, "Missing required parameter: file")
        data = await upload.read()
    finally:
        await form.close()
    original = upload.filename or "file"
    name = _file_name(raw_name, original)
    declared = upload.content_type if upload.content_type not in (None, "", "application/octet-stream") else None
    mime = declared or media.sniff_mime(data, name)
    return _answer(ctx, ctx.sim.store_upload(path, name, data, mime, original))


async def url_upload(ctx: Ctx) -> Response:
    body = await ctx.json_object()
    path = _upload_path(body.get("uploadPath"))
    file_url = body.get("fileUrl")
    if not isinstance(file_url, str) or not file_url.strip():
        raise KieError(400, "Missing required parameter: fileUrl")
    parts = urlsplit(file_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise KieError(400, "fileUrl must be an http or https URL")
    original = parts.path.rsplit("/", 1)[-1] or "file"
    source = ctx.sim.resolve_sim_url(file_url)
    data: bytes | None = None
    if source is not None:
        try:
            data, mime = ctx.sim.file_bytes(source, check_ttl=False)
        except FileError:
            data = None
    if data is None:
        data, mime = media.placeholder_png(original), "image/png"
    name = _file_name(body.get("fileName"), original)
    return _answer(ctx, ctx.sim.store_upload(path, name, data, mime, original))


async def base64_upload(ctx: Ctx) -> Response:
    body = await ctx.json_object()
    path = _upload_path(body.get("uploadPath"))
    raw = body.get("base64Data")
    if not isinstance(raw, str) or not raw.strip():
        raise KieError(400, "Missing required parameter: base64Data")
    declared = None
    payload = raw.strip()
    match = _DATA_URL.match(payload)
    if match:
        declared, payload = match.group("mime"), match.group("payload")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise KieError(400, BAD_BASE64) from None
    if not data:
        raise KieError(400, BAD_BASE64)
    mime = declared or media.sniff_mime(data, str(body.get("fileName") or ""))
    fallback = f"{uuid.uuid4().hex[:12]}.{media.extension_for(mime)}"
    name = _file_name(body.get("fileName"), fallback)
    return _answer(ctx, ctx.sim.store_upload(path, name, data, mime, name))


ROUTES = [
    SimRoute(STREAM_PATH, "POST", "upload", stream_upload),
    SimRoute(URL_PATH, "POST", "upload", url_upload),
    SimRoute(BASE64_PATH, "POST", "upload", base64_upload),
]
