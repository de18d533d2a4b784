"""Leaner tool schemas: the same JSON Schemas the SDK builds, without the parts no client reads.

Every agent carries ``tools/list`` in its context on every turn, so its size is paid in tokens again and again.
The SDK publishes pydantic's schemas as they are: a ``title`` on every property (``"quote_id"`` gets
``"Quote Id"``) and nested models behind ``$ref``/``$defs``. ``compact`` drops the titles pydantic derived from
names and ``additionalProperties: true`` (what an object allows anyway), and inlines definitions used once (some
hosts resolve ``$ref`` poorly); what a value may be is untouched, with one exception below. In input schemas
``anyOf`` with ``null`` stays (several hosts hand them to model APIs that reject ``"type": [..., "null"]``), and a
bound pydantic writes as ``exclusiveMinimum``/``exclusiveMaximum`` (``gt=0``) is published as ``minimum``/
``maximum``: Gemini's function declarations (``parameters``, an OpenAPI subset) have no such field and refuse the
whole request over it (modelcontextprotocol/servers#1624, firebase/firebase-tools#9237), and the argument is still
checked against the strict bound. The bound is then said in words at the end of the argument's description ("More
than 0."), so an agent reading ``minimum: 0`` is not sent to try 0 and be refused. For the same reason
``additionalProperties`` is left out of input schemas whatever its value (HTTP 400 "Unknown name
additionalProperties", for stitch_videos' captions' ``false``): an argument object's unknown keys are still refused
by name, by its pydantic model. In output schemas, which clients use to check results, a nullable value becomes the
equivalent type list, which a validator checks in one step instead of trying two branches (on every call).
Validation of arguments does not use these schemas (the SDK validates them with the pydantic model), so only what
is advertised changes.
"""

from __future__ import annotations

import json
from typing import Any, get_args

_DEFS = "#/$defs/"
_EXCLUSIVE = {"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}  # published in input schemas as these
_EXCLUSIVE_WORDS = {"exclusiveMinimum": "More than", "exclusiveMaximum": "Less than"}  # ... and said so in words


# Keywords that constrain only values of their own type (or only annotate): a branch made of these and a "type"
# means the same inside a type list with "null". "enum" and "const" are not among them (they would refuse null).
_TYPE_SPECIFIC = frozenset(
    {
        "type", "description", "default", "examples", "format", "pattern", "minLength", "maxLength", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "items", "prefixItems", "minItems",
        "maxItems", "uniqueItems", "properties", "additionalProperties", "required", "minProperties",
        "maxProperties",
    }
)  # fmt: skip


_ANNOTATIONS = frozenset({"description", "default", "examples", "title"})


def compact(schema: dict[str, Any], *, output: bool = False) -> dict[str, Any]:
    """``schema`` without derived titles, with single-use ``$defs`` inlined (recursive ones kept); with ``output``
    (a tool's output schema), nullable values as type lists, else exclusive bounds as inclusive ones, each said in
    words in the description of the property it bounds (``_said``)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    uses: dict[str, int] = {}
    _count_refs(schema, uses)

    def walk(node: Any, inlining: tuple[str, ...], bounds: list[str] | None = None) -> Any:
        """``node`` compacted; ``bounds`` collects the words for each exclusive bound made inclusive in it, for the
        description of the property it is part of (None: it is part of none, and its own description says them)."""
        if isinstance(node, list):
            return [walk(item, inlining, bounds) for item in node]
        if not isinstance(node, dict):
            return node
        name = _ref_name(node)
        if name is not None and uses.get(name) == 1 and name in defs and name not in inlining:
            return walk(defs[name], (*inlining, name), bounds)
        own: list[str] = [] if bounds is None else bounds
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$defs":
                continue
            if key == "title" and isinstance(value, str):
                continue  # pydantic's "Quote Id" for quote_id, or a model's class name: no client reads it
            if key == "additionalProperties" and (value is True or not output):
                continue  # true: what an object allows anyway; in input schemas any value (Gemini refuses the word)
            if key in _EXCLUSIVE and not output and isinstance(value, int | float) and _EXCLUSIVE[key] not in node:
                out[_EXCLUSIVE[key]] = value  # Gemini's parameters refuse the keyword; the argument is checked exactly
                own.append(f"{_EXCLUSIVE_WORDS[key]} {_number(value)}.")
                continue
            if key == "properties" and isinstance(value, dict):
                out[key] = {field: property_(sub, inlining) for field, sub in value.items()}  # keys are names
            else:
                out[key] = walk(value, inlining, own)
        if bounds is None:
            out = _said(out, own)
        return _as_type_list(out) if output else out  # after its branches are inlined

    def property_(node: Any, inlining: tuple[str, ...]) -> Any:
        bounds: list[str] = []
        return _said(walk(node, inlining, bounds), bounds)

    result = walk(schema, ())
    kept = {name: walk(d, (name,)) for name, d in defs.items() if uses.get(name, 0) != 1 or _recursive(name, d)}
    if kept:
        result["$defs"] = kept
    return result


def _said(node: Any, bounds: list[str]) -> Any:
    """``node`` (a property's schema) with ``bounds``, the exclusive bounds published as inclusive ones in it, said at
    the end of its description: ``minimum: 0`` alone would send an agent to try 0, which is refused."""
    if not bounds or not isinstance(node, dict):
        return node
    described = node.get("description")
    words = " ".join(bounds)
    return {**node, "description": f"{described} {words}" if isinstance(described, str) and described else words}


def _number(value: float) -> str:
    """A bound as people write it: ``0`` for 0 and 0.0, ``0.5`` for 0.5."""
    return str(int(value)) if float(value).is_integer() else repr(value)


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


def _as_type_list(node: dict[str, Any]) -> dict[str, Any]:
    """``{"anyOf": [{"type": T, ...}, {"type": "null"}], ...}`` as ``{"type": [T, "null"], ...}`` when that means
    the same: the other branch is one plain type with type-specific keywords, and the node has only annotations
    beside its ``anyOf`` (a ``properties`` beside a branch's ``additionalProperties`` would change its meaning)."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    other = branches[0] if branches[1] == {"type": "null"} else branches[1]
    if (
        not isinstance(other, dict)
        or not isinstance(other.get("type"), str)
        or other["type"] == "null"
        or not set(other) <= _TYPE_SPECIFIC
        or not set(node) - {"anyOf"} <= _ANNOTATIONS  # anything else beside anyOf could interact with the branch
    ):
        return node
    merged = {key: value for key, value in node.items() if key != "anyOf"}
    return {**merged, **other, "type": [other["type"], "null"]}


class FreeText:
    """Marks a tool argument that is the user's own text (``Annotated[str | None, FREE_TEXT, Field(...)]``): its
    string reaches the tool as it was sent. The SDK decodes a string argument typed anything but ``str`` as JSON
    first (clients send lists as JSON text), so the prompt ``{"scene": "a cat", "camera": "dolly in"}`` became a
    dict and was refused as "must be text", and ``null`` became no prompt at all."""


FREE_TEXT = FreeText()


class BlankMeansUnset:
    """Marks an optional tool argument whose blank string ("", or only whitespace and invisible format characters:
    ``_blank``) means it was left out: its default (``Annotated[str | None, BLANK_MEANS_UNSET, Field(...)]``). Some
    hosts fill every unused optional with "" (Cursor is reported to), and ``model: ""`` was refused as an unknown
    model, ``aspect_ratio: ""`` as a value the model does not allow. Never on a prompt or a required argument: a blank
    one of those is refused, naming it."""


BLANK_MEANS_UNSET = BlankMeansUnset()


def keep_free_text(metadata: Any) -> None:
    """Make the SDK's argument pre-parsing (``FuncMetadata.pre_parse_json``, which has no per-field switch) leave the
    ``FREE_TEXT`` arguments' strings as they were sent.

    It is replaced by the same rule worked out once per tool: a string sent for an argument not typed ``str`` (nor
    free text) is read as JSON when that gives a list, an object or null (a boolean is an int to the SDK's
    check, so it stays the text sent, as there), and is kept as sent otherwise. Null (sent, or a string read so)
    for an optional argument that does not take null itself means its default (it is left out): LLM hosts fill
    every unused optional with null, and ``variations: null`` was refused as "must be a whole number". A blank string
    for a ``BLANK_MEANS_UNSET`` argument is left out the same way (some hosts fill unused optionals with "").
    The SDK's own looks up every field of the tool on every call and has ``json.loads`` fail (raising) on a plain
    string such as a model id: about 10 us a call for estimate_cost's 17 arguments, this about 1 us."""
    fields = metadata.arg_model.model_fields
    free = {name for name, info in fields.items() if any(isinstance(m, FreeText) for m in info.metadata)}
    decoded = {name for name, info in fields.items() if info.annotation is not str and name not in free}
    decoded |= {fields[name].alias for name in decoded if fields[name].alias and fields[name].alias not in free}
    defaulted = {name for name, info in fields.items() if not info.is_required() and not _takes_null(info.annotation)}
    defaulted |= {fields[name].alias for name in defaulted if fields[name].alias}
    blank = {
        name
        for name, info in fields.items()
        if not info.is_required() and any(isinstance(m, BlankMeansUnset) for m in info.metadata)
    }
    blank |= {fields[name].alias for name in blank if fields[name].alias}

    def pre_parse_json(data: dict[str, Any]) -> dict[str, Any]:
        parsed = dict(data)
        for key, value in data.items():
            if key in decoded and isinstance(value, str) and _may_hold_structure(value):
                try:
                    found = json.loads(value)
                except (ValueError, RecursionError):  # not JSON after all: validation takes or refuses the string
                    continue
                if not isinstance(found, str | int | float):  # a number or a quoted string stays the text sent
                    parsed[key] = found
            # An LLM host fills unused optionals with null (the default), and some with "" (left out, too).
            if (parsed[key] is None and key in defaulted) or (key in blank and _blank(value)):
                del parsed[key]
        return parsed

    object.__setattr__(metadata, "pre_parse_json", pre_parse_json)  # a pydantic model: set past its field checks


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing by every renderer. Not all
# of them are format characters (Cf: the variation selectors, the Hangul fillers U+115F, U+1160, U+3164 are letters
# or marks), and not every format character is one (ARABIC END OF AYAH U+06DD and the other prepended marks are
# drawn). And BRAILLE PATTERN BLANK U+2800, a cell with no dots: no such character, but drawn as nothing all the same.
_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip


def is_blank(text: str) -> bool:
    """Whether ``text`` says nothing: "", or only whitespace (NBSP and U+3000 too, as ``str.isspace`` has them) and
    characters drawn as nothing (``_IGNORABLE``: a zero width space, a byte order mark, the word joiner, a soft
    hyphen, direction marks, a variation selector or a Hangul filler alone), which ``str.strip`` keeps: ``model:
    "\u200b"`` was refused as an unknown model while ``model: "\u00a0"`` took the default, and a prompt of one was
    sent to KIE and charged. A prompt is blank by this rule too (``validate``, ``generation``, ``followups``)."""
    return all(char.isspace() or any(low <= ord(char) <= high for low, high in _IGNORABLE) for char in text)


def _blank(value: Any) -> bool:
    """Whether ``value`` is a blank string (``is_blank``)."""
    return isinstance(value, str) and is_blank(value)


def _takes_null(annotation: Any) -> bool:
    """Whether an argument typed ``annotation`` takes null itself (``X | None``, ``Any``): null is then its value,
    not "the default"."""
    return annotation is Any or annotation is None or type(None) in get_args(annotation)


_JSON_SPACE = " \t\n\r"


def _may_hold_structure(text: str) -> bool:
    """Whether ``text`` may be JSON for a list, an object, a boolean or null (what pre-parsing takes): no other text
    is, so no other string is handed to ``json.loads`` (which would raise on a plain word)."""
    bare = text.strip(_JSON_SPACE)
    return bare[:1] in ("[", "{") or bare in ("true", "false", "null")
