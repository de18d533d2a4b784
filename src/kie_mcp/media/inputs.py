"""Media inputs: URLs pass through; local files are checked before any spend and uploaded after approval."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kie_mcp.catalog import ModelSpec, Problem
from kie_mcp.journal import Journal
from kie_mcp.kie import KieClient

from .prepare import upload_prepared

_REMOTE = ("http://", "https://")


@dataclass(frozen=True)
class LocalFile:
    path: Path
    sha256: str

    @property
    def identity(self) -> str:
        """How a local file enters a quote: its content, so an edited file needs a new quote."""
        return f"file:{self.sha256}:{self.path.name}"


def is_remote(value: str) -> bool:
    return value.startswith(_REMOTE)


UPLOAD_REUSE_SECONDS = 48 * 3600  # KIE keeps uploads about 3 days: reuse one for 2, to be safe


class OutsideAllowedFolders(PermissionError):
    """A local file outside the workspace and KIE_ALLOWED_DIRS: never read, never uploaded."""


def local_path(value: str, workspace: Path) -> Path:
    """Where a local input lives: absolute, ``~``-relative, or relative to the workspace."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else workspace / path


def confined(value: str, workspace: Path, roots: tuple[Path, ...]) -> Path:
    """The real path of a local input, refused when it (or a symlink in it) leads outside the allowed folders."""
    real = local_path(value, workspace).resolve()
    if not any(real.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise OutsideAllowedFolders(
            f"{value!r} resolves to {real}, outside the folders kie-mcp may read ({allowed}). Nothing was read or "
            "uploaded. Move the file into the workspace, share its folder as an MCP root in the client, or add it "
            "to KIE_ALLOWED_DIRS."
        )
    return real


def _media_slots(spec: ModelSpec, wire: dict[str, Any]) -> Iterator[tuple[str, int | None, str]]:
    """Every (field, index, value) in ``wire`` that holds a URL or a file path."""
    for name, value in wire.items():
        field = spec.fields.get(name)
        if field is None or not field.is_media:
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield name, index, item
        elif isinstance(value, str):
            yield name, None, value


def find_local_files(
    spec: ModelSpec, wire: dict[str, Any], workspace: Path, roots: tuple[Path, ...] | None = None
) -> tuple[dict[str, LocalFile], list[Problem]]:
    """Map each non-URL media value to a readable file inside the allowed folders, within the model's limits."""
    found: dict[str, LocalFile] = {}
    problems: list[Problem] = []
    for name, index, value in _media_slots(spec, wire):
        if is_remote(value) or value in found:
            continue
        where = f"{name}[{index}]" if index is not None else name
        try:
            path = confined(value, workspace, roots or (workspace.resolve(),))
        except OutsideAllowedFolders as err:
            problems.append(Problem(where, str(err)))
            continue
        if not path.is_file():
            problems.append(
                Problem(where, f"{value!r} is neither an http(s) URL nor a readable file (looked in {path}).")
            )
            continue
        if (limit := _limit_problem(spec, name, path)) is not None:
            problems.append(Problem(where, limit))
            continue
        found[value] = LocalFile(path, _sha256(path))
    return found, problems


def _limit_problem(spec: ModelSpec, field: str, path: Path) -> str | None:
    """The model's documented format and size limits for images, checked before anything is uploaded."""
    images = spec.images
    if images is None or field not in images.to:
        return None
    size_mb = path.stat().st_size / 1024 / 1024
    if images.max_mb is not None and size_mb > images.max_mb:
        return f"{path.name} is {size_mb:.1f} MB; {spec.id} takes images up to {images.max_mb:g} MB."
    suffix = path.suffix.lower().lstrip(".")
    formats = {f.lower() for f in images.formats} | ({"jpg"} if "jpeg" in images.formats else set())
    if formats and suffix not in formats:
        return f"{path.name} is a .{suffix} file; {spec.id} takes {', '.join(sorted(images.formats))}."
    return None


def with_identities(spec: ModelSpec, wire: dict[str, Any], files: dict[str, LocalFile]) -> dict[str, Any]:
    """``wire`` with local paths replaced by content identities: the form a quote binds."""
    return _replace(spec, wire, {value: f.identity for value, f in files.items()})


async def upload_local_files(
    kie: KieClient, spec: ModelSpec, wire: dict[str, Any], files: dict[str, LocalFile], journal: Journal
) -> tuple[dict[str, Any], list[str]]:
    """Upload each local file once (small images upscaled first; a live earlier upload of the same content is
    reused); return the wire input pointing at the uploaded URLs and what was done."""
    urls: dict[str, str] = {}
    notes: list[str] = []
    for value, local in files.items():
        earlier = journal.live_upload(local.sha256, UPLOAD_REUSE_SECONDS)
        if earlier:
            urls[value] = earlier
            notes.append(f"{local.path.name} was already uploaded recently; reused {earlier}.")
            continue
        name = f"{local.path.stem}-{local.sha256[:10]}{local.path.suffix.lower()}"
        uploaded, note = await upload_prepared(kie, local.path, "kie-mcp/inputs", name)
        journal.remember_upload(local.sha256, uploaded.url)
        urls[value] = uploaded.url
        if note:
            notes.append(note)
    return _replace(spec, wire, urls), notes


def _replace(spec: ModelSpec, wire: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    out = dict(wire)
    for name, index, value in _media_slots(spec, wire):
        if value in mapping:
            if index is None:
                out[name] = mapping[value]
            else:
                out[name] = [mapping.get(v, v) if isinstance(v, str) else v for v in wire[name]]
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
