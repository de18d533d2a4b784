"""Media inputs: URLs pass through; local files are checked before any spend and uploaded after approval."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kie_mcp.catalog import ModelSpec, Problem
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


def local_path(value: str, workspace: Path) -> Path:
    """Where a local input lives: absolute, ``~``-relative, or relative to the workspace."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else workspace / path


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
    spec: ModelSpec, wire: dict[str, Any], workspace: Path
) -> tuple[dict[str, LocalFile], list[Problem]]:
    """Map each non-URL media value to a readable file, or report it missing."""
    found: dict[str, LocalFile] = {}
    problems: list[Problem] = []
    for name, index, value in _media_slots(spec, wire):
        if is_remote(value) or value in found:
            continue
        where = f"{name}[{index}]" if index is not None else name
        path = local_path(value, workspace)
        if not path.is_file():
            problems.append(
                Problem(where, f"{value!r} is neither an http(s) URL nor a readable file (looked in {path}).")
            )
            continue
        found[value] = LocalFile(path.resolve(), _sha256(path))
    return found, problems


def with_identities(spec: ModelSpec, wire: dict[str, Any], files: dict[str, LocalFile]) -> dict[str, Any]:
    """``wire`` with local paths replaced by content identities: the form a quote binds."""
    return _replace(spec, wire, {value: f.identity for value, f in files.items()})


async def upload_local_files(
    kie: KieClient, spec: ModelSpec, wire: dict[str, Any], files: dict[str, LocalFile]
) -> tuple[dict[str, Any], list[str]]:
    """Upload each local file once (small images upscaled first); return the wire input and what was done."""
    urls: dict[str, str] = {}
    notes: list[str] = []
    for value, local in files.items():
        name = f"{local.path.stem}-{local.sha256[:10]}{local.path.suffix.lower()}"
        uploaded, note = await upload_prepared(kie, local.path, "kie-mcp/inputs", name)
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
