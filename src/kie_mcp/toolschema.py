"""Leaner tool schemas: the same JSON Schemas the SDK builds, without the parts no client reads.

Every agent carries ``tools/list`` in its context on every turn, so its size is paid in tokens again and again.
The SDK publishes pydantic's schemas as they are: a ``title`` on every property (``"quote_id"`` gets
``"Quote Id"``) and nested models behind ``$ref``/``$defs``. ``compact`` drops the titles pydantic derived from
names and inlines definitions used once (some hosts resolve ``$ref`` poorly); what a value may be is untouched
(``anyOf`` with ``null`` stays: several hosts reject ``"type": [..., "null"]``). Validation does not use these
schemas (the SDK validates arguments with the pydantic model), so only what is advertised changes.
"""

from __future__ import annotations

from typing import Any

_DEFS = "#/$defs/"


def compact(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without derived titles, with single-use ``$defs`` inlined (recursive ones kept)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    uses: dict[str, int] = {}
    _count_refs(schema, uses)

    def walk(node: Any, inlining: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, inlining) for item in node]
        if not isinstance(node, dict):
            return node
        name = _ref_name(node)
        if name is not None and uses.get(name) == 1 and name in defs and name not in inlining:
            return walk(defs[name], (*inlining, name))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$defs":
                continue
            if key == "title" and isinstance(value, str):
                continue  # pydantic's "Quote Id" for quote_id, or a model's class name: no client reads it
            if key == "properties" and isinstance(value, dict):
                out[key] = {field: walk(sub, inlining) for field, sub in value.items()}  # keys are names
            else:
                out[key] = walk(value, inlining)
        return out

    result = walk(schema, ())
    kept = {name: walk(d, (name,)) for name, d in defs.items() if uses.get(name, 0) != 1 or _recursive(name, d)}
    if kept:
        result["$defs"] = kept
    return result


def _ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    if len(node) == 1 and isinstance(ref, str) and ref.startswith(_DEFS):
        return ref[len(_DEFS) :]
    return None


def _count_refs(node: Any, uses: dict[str, int]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS):
            uses[ref[len(_DEFS) :]] = uses.get(ref[len(_DEFS) :], 0) + 1
        for value in node.values():
            _count_refs(value, uses)
    elif isinstance(node, list):
        for value in node:
            _count_refs(value, uses)


def _recursive(name: str, definition: Any) -> bool:
    """Whether a definition refers to itself (it must then stay in ``$defs``)."""
    found: dict[str, int] = {}
    _count_refs(definition, found)
    return name in found
