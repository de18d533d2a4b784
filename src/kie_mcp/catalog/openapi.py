"""Reading KIE's per-model OpenAPI documents: the input schema, checks against it, and a ``ModelSpec`` built from it.

What KIE serves (kie-models agent skill, supercode.sh/en/skills/kie.ai/kie-models, read 2026-12-02; the shape of
KIE's published documents, e.g. docs.kie.ai market pages "Seedream5.0 Pro - Text to Image", mirrored 2026):

- ``GET /api/v1/models/{model}/schema`` answers ``{model, openapi}``; ``openapi`` is a whole OpenAPI 3.x document
  for that one model, inlined as an object, or ``null`` when KIE has not synced it yet.
- The call is ``paths["/api/v1/jobs/createTask"].post``; its JSON body is ``{model, callBackUrl, input}`` and
  ``input`` is an object whose ``properties`` carry every field (type, enum, default, minimum/maximum,
  maxLength, items, ...) and whose ``required`` lists the required ones.
- ``input`` may be a ``oneOf`` of alternative shapes, each with its own ``required``: satisfy exactly one branch and
  do not mix fields across branches.
- ``$ref`` pointers are not inlined. They are local (``#/components/...``), their segments are percent-encoded
  (``#/components/schemas/response%20not%20with%20recordId``) and some keys end in a space (``Error ``): decode each
  segment, never trim it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import unquote

from kie_mcp.words import listed, plain

from .pricing import LIVE_ONLY
from .spec import DEFAULT_PROMPT_MAX_LENGTH, FieldSpec, ImagesSpec, ModelSpec, PriceSpec, Source
from .validate import Problem

log = logging.getLogger(__name__)

JOBS_PATH = "/api/v1/jobs/createTask"
MAX_REF_DEPTH = 32
# Tool arguments a live field can be filled from, by KIE's usual field names.
_ARG_NAMES: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt",),
    "aspect_ratio": ("aspect_ratio",),
    "resolution": ("resolution",),
    "duration": ("duration",),
    "audio": ("sound", "generate_audio", "enable_audio", "audio", "with_audio"),
}
_IMAGE_FIELDS = ("image_urls", "input_urls", "image_input", "image_url", "input_image", "image", "first_frame_url")


class SchemaError(ValueError):
    """An OpenAPI document kie-mcp cannot read (a ``$ref`` that points nowhere, a cycle)."""


# -- references ----------------------------------------------------------------------------------


def pointer(document: Mapping[str, Any], ref: str) -> Any:
    """The node a local ``$ref`` names. Segments are percent-decoded then JSON-pointer-unescaped, never trimmed."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise SchemaError(f"only local references are supported, not {ref!r}")
    node: Any = document
    for raw in ref[1:].split("/")[1:] if ref != "#" else []:
        key = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise SchemaError(f"the reference {ref!r} points nowhere")
    return node


def resolve(document: Mapping[str, Any], node: Any) -> Any:
    """``node`` with its ``$ref`` chain followed; keys beside a ``$ref`` (allowed in 3.1) override the target's."""
    extra: dict[str, Any] = {}
    for _ in range(MAX_REF_DEPTH):
        if not isinstance(node, Mapping) or "$ref" not in node:
            return {**node, **extra} if extra and isinstance(node, Mapping) else node
        extra = {**{k: v for k, v in node.items() if k != "$ref"}, **extra}
        node = pointer(document, node["$ref"])
    raise SchemaError("a $ref chain is too long (a cycle?)")


def _merged(document: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``allOf`` folded into one object schema (properties and required united)."""
    out = dict(resolve(document, schema))
    parts = out.pop("allOf", None)
    if not isinstance(parts, list):
        return out
    properties = dict(out.get("properties") or {})
    required = list(out.get("required") or [])
    for part in parts:
        piece = _merged(document, part) if isinstance(part, Mapping) else {}
        properties.update(piece.get("properties") or {})
        required += [r for r in piece.get("required") or [] if r not in required]
        for key, value in piece.items():
            if key not in ("properties", "required"):
                out.setdefault(key, value)
    out["properties"], out["required"] = properties, required
    return out


# -- where the input is ------------------------------------------------------------------------


def request_schema(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON body schema of the model's create call (``/api/v1/jobs/createTask`` first, else the first POST)."""
    paths = document.get("paths")
    if not isinstance(paths, Mapping):
        return None
    ordered = [JOBS_PATH, *(p for p in paths if p != JOBS_PATH)] if JOBS_PATH in paths else list(paths)
    for path in ordered:
        operation = resolve(document, (resolve(document, paths[path]) or {}).get("post"))
        if not isinstance(operation, Mapping):
            continue
        body = resolve(document, operation.get("requestBody"))
        content = body.get("content") if isinstance(body, Mapping) else None
        media = content.get("application/json") if isinstance(content, Mapping) else None
        schema = resolve(document, media.get("schema")) if isinstance(media, Mapping) else None
        if isinstance(schema, Mapping):
            return _merged(document, schema)
    return None


def create_path(document: Mapping[str, Any]) -> str | None:
    """The path the document says to POST to (a Market model: ``/api/v1/jobs/createTask``)."""
    paths = document.get("paths")
    if not isinstance(paths, Mapping):
        return None
    if JOBS_PATH in paths:
        return JOBS_PATH
    return next((p for p, item in paths.items() if isinstance(item, Mapping) and "post" in item), None)


def input_schema(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema of the body's ``input`` object (Market models), with ``allOf`` folded in."""
    body = request_schema(document)
    if body is None:
        return None
    properties = resolve(document, body.get("properties")) or {}
    target = properties.get("input") if isinstance(properties, Mapping) else None
    if target is None:
        return None
    resolved = resolve(document, target)
    return _merged(document, resolved) if isinstance(resolved, Mapping) else None


def branches(document: Mapping[str, Any], schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The alternative input shapes: one per ``oneOf``/``anyOf`` branch (each merged with the shared part)."""
    options = schema.get("oneOf") or schema.get("anyOf")
    if not isinstance(options, list) or not options:
        return [dict(schema)]
    shared = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
    out = []
    for option in options:
        piece = _merged(document, option) if isinstance(option, Mapping) else {}
        properties = {**(resolve(document, shared.get("properties")) or {}), **(piece.get("properties") or {})}
        required = list(shared.get("required") or [])
        required += [r for r in piece.get("required") or [] if r not in required]
        out.append({**shared, **piece, "properties": properties, "required": required})
    return out


def properties_of(document: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    raw = resolve(document, schema.get("properties")) or {}
    out: dict[str, dict[str, Any]] = {}
    for name, prop in raw.items() if isinstance(raw, Mapping) else []:
        resolved = resolve(document, prop)
        if isinstance(resolved, Mapping):
            out[str(name)] = _merged(document, resolved)
    return out


# -- checking a wire input -----------------------------------------------------------------------


def check(
    document: Mapping[str, Any],
    wire: Mapping[str, Any],
    *,
    label: str = "KIE's live schema",
    known: Collection[str] | None = None,
) -> list[Problem]:
    """Every way ``wire`` breaks the document's input contract: enums, required, minimum/maximum, length, items.

    Types are not judged (KIE's documents are loose about "5" vs 5; the bundled data already checks types). With
    ``oneOf`` the input must fit one branch, using only that branch's fields; the closest branch's problems are
    returned when none fits. ``known``: the fields kie-mcp's data has for the model; a required field outside them
    is one kie-mcp cannot send, and its problem says so rather than "Set it".
    """
    try:
        problems = _check(document, wire, label)
    except Exception as err:  # an unreadable live document never blocks a request the bundled data allows
        log.info("cannot use a live schema (%s: %s)", type(err).__name__, err)
        return []
    if known is None:
        return problems
    return [
        Problem(p.field, _unsendable(p.field, label)) if p.message == _required(label) and p.field not in known else p
        for p in problems
    ]


def _required(label: str) -> str:
    return f"is required by {label}; kie-mcp's data did not require it. Set it."


def _unsendable(name: str, label: str) -> str:
    return (
        f"is required by {label}, but kie-mcp's data has no field {plain(name)} for this model, so kie-mcp cannot "
        "send it yet and KIE would refuse the request without it. Use another model (list_models) until kie-mcp's "
        "data is updated."
    )


def field_of(document: Mapping[str, Any], name: str) -> tuple[dict[str, Any] | None, bool]:
    """The live schema's property ``name`` of the input (the first input shape that has it) and whether every
    shape requires it; (None, False) when no shape has it or the document cannot be read."""
    try:
        schema = input_schema(document)
        if schema is None:
            return None, False
        shapes = branches(document, schema)
        found = next((p[name] for p in (properties_of(document, s) for s in shapes) if name in p), None)
        required = bool(shapes) and all(name in (s.get("required") or []) for s in shapes)
        return found, required
    except Exception as err:  # an unreadable document says nothing of the field
        log.info("cannot read a live schema (%s: %s)", type(err).__name__, err)
        return None, False


def allowed_values(document: Mapping[str, Any], prop: Mapping[str, Any]) -> list[Any] | None:
    """The values a live property allows (``enum``, or a 3.1 ``anyOf`` of enums); None when it lists none."""
    return _enum(document, prop)


def _check(document: Mapping[str, Any], wire: Mapping[str, Any], label: str) -> list[Problem]:
    schema = input_schema(document)
    if schema is None:
        return []
    options = branches(document, schema)
    results = [_check_branch(document, option, wire, label) for option in options]
    if len(results) == 1:
        return results[0]
    known = set().union(*(set(properties_of(document, o)) for o in options))
    for option, problems in zip(options, results, strict=True):
        own = set(properties_of(document, option))
        mixed = sorted(name for name in wire if name in known and name not in own)
        if not problems and not mixed:
            return []
    best = min(range(len(options)), key=lambda i: len(results[i]) + _mixed_count(document, options[i], wire, known))
    own = set(properties_of(document, options[best]))
    mixed = sorted(name for name in wire if name in known and name not in own)
    extra = [
        Problem(name, f"belongs to another of the {len(options)} input shapes {label} allows; do not mix them.")
        for name in mixed
    ]
    return results[best] + extra


def _mixed_count(document: Mapping[str, Any], option: Mapping[str, Any], wire: Mapping[str, Any], known: set) -> int:
    own = set(properties_of(document, option))
    return sum(1 for name in wire if name in known and name not in own)


def _check_branch(
    document: Mapping[str, Any], schema: Mapping[str, Any], wire: Mapping[str, Any], label: str
) -> list[Problem]:
    problems: list[Problem] = []
    props = properties_of(document, schema)
    for name, value in wire.items():
        prop = props.get(name)
        if prop is None:
            if schema.get("additionalProperties") is False and props:
                problems.append(Problem(name, f"{label} has no field {plain(name)}; KIE would refuse it."))
            continue
        message = _check_value(document, prop, value, label)
        if message:
            problems.append(Problem(name, message))
    for name in schema.get("required") or []:
        if not isinstance(name, str) or not _absent(wire.get(name)):
            continue
        prop = props.get(name) or {}
        if "default" in prop:
            continue  # KIE fills it
        problems.append(Problem(name, _required(label)))
    return problems


def _check_value(document: Mapping[str, Any], prop: Mapping[str, Any], value: Any, label: str) -> str | None:
    allowed = _enum(document, prop)
    if allowed is not None and not isinstance(value, list) and not _member(value, allowed):
        return f"{plain(value)} is not allowed by {label}; allowed: {listed(allowed)}."
    if isinstance(value, str):
        longest, shortest = _number(prop.get("maxLength")), _number(prop.get("minLength"))
        if longest is not None and len(value) > longest:
            return f"is {len(value)} characters long; {label} allows at most {_fmt(longest)}. Shorten it."
        if shortest is not None and len(value) < shortest:
            return f"is {len(value)} characters long; {label} needs at least {_fmt(shortest)}."
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_number(prop, float(value), label)
    if isinstance(value, list):
        most, least = _number(prop.get("maxItems")), _number(prop.get("minItems"))
        if most is not None and len(value) > most:
            return f"has {len(value)} item(s); {label} allows at most {_fmt(most)}."
        if least is not None and len(value) < least:
            return f"has {len(value)} item(s); {label} needs at least {_fmt(least)}."
        items = resolve(document, prop.get("items"))
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                inner = _check_value(document, _merged(document, items), item, label)
                if inner:
                    return f"item {index}: {inner}"
    return None


def _check_number(prop: Mapping[str, Any], value: float, label: str) -> str | None:
    low, high = _number(prop.get("minimum")), _number(prop.get("maximum"))
    ex_low, ex_high = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
    if ex_low is True:  # OpenAPI 3.0: a flag on minimum
        ex_low, low = low, None
    if ex_high is True:
        ex_high, high = high, None
    ex_low, ex_high = _number(ex_low), _number(ex_high)
    if low is not None and value < low:
        return f"{_fmt(value)} is below the minimum {_fmt(low)} of {label}."
    if high is not None and value > high:
        return f"{_fmt(value)} is above the maximum {_fmt(high)} of {label}."
    if ex_low is not None and value <= ex_low:
        return f"{_fmt(value)} must be greater than {_fmt(ex_low)} ({label})."
    if ex_high is not None and value >= ex_high:
        return f"{_fmt(value)} must be less than {_fmt(ex_high)} ({label})."
    return None


def _enum(document: Mapping[str, Any], prop: Mapping[str, Any]) -> list[Any] | None:
    """The allowed values, also through a 3.1 ``anyOf``/``oneOf`` of enums (a ``null`` branch adds nothing)."""
    if isinstance(prop.get("enum"), list):
        return [v for v in prop["enum"] if v is not None]
    options = prop.get("anyOf") or prop.get("oneOf")
    if not isinstance(options, list):
        return None
    values: list[Any] = []
    for option in options:
        branch = resolve(document, option)
        if not isinstance(branch, Mapping):
            return None
        if branch.get("type") == "null":
            continue
        if not isinstance(branch.get("enum"), list):
            return None  # one branch takes any value
        values += [v for v in branch["enum"] if v is not None]
    return values or None


def same_value(a: Any, b: Any) -> bool:
    """Whether two values are the same as KIE reads them ("5" is not 5, 5 is 5.0, true is "true")."""
    return _same(a, b)


def _member(value: Any, allowed: list[Any]) -> bool:
    return any(_same(value, option) for option in allowed)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return str(a) == str(b)


def _number(value: Any) -> float | None:
    """A bound or default the document states as a finite number; None for anything else (a 400-digit integer, which
    no float holds, included: it would otherwise void every other bound of the document)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _absent(value: Any) -> bool:
    return value is None or value in ("", [])


# -- a ModelSpec from a live document -------------------------------------------------------------


def spec_from_openapi(
    model_id: str,
    document: Mapping[str, Any],
    *,
    title: str,
    kind: str,
    task_types: list[str],
    description: str | None,
    date: str,
    price: PriceSpec | None = None,
    price_source: Source | None = None,
) -> ModelSpec | None:
    """A ``ModelSpec`` (family "market") for a model the bundled catalogue lacks, from KIE's live schema.

    Fields come from the ``input`` properties (type, enum, default, limits, required); a field kie-mcp cannot
    represent (a nested object) is left out, so it cannot be sent. ``price`` is the exact price when the caller
    could parse one, else None (the price is then unknown). None when the document has no Market input.
    """
    try:
        return _spec(model_id, document, title, kind, task_types, description, date, price, price_source)
    except Exception as err:  # a document kie-mcp cannot read offers no model; it never breaks a listing
        log.info("cannot build a model from the live schema of %s (%s: %s)", model_id, type(err).__name__, err)
        return None


def _spec(
    model_id: str,
    document: Mapping[str, Any],
    title: str,
    kind: str,
    task_types: list[str],
    description: str | None,
    date: str,
    price: PriceSpec | None,
    price_source: Source | None,
) -> ModelSpec | None:
    if kind not in ("image", "video") or create_path(document) != JOBS_PATH:
        return None
    try:
        schema = input_schema(document)
        if schema is None:
            return None
        options = branches(document, schema)
        properties: dict[str, dict[str, Any]] = {}
        for option in options:
            for name, prop in properties_of(document, option).items():
                properties.setdefault(name, prop)
        # A field is required only when every alternative shape requires it.
        required = set.intersection(*(set(o.get("required") or []) for o in options)) if options else set()
        fields: dict[str, FieldSpec] = {}
        for name, prop in properties.items():
            built = _field(document, name, prop, required=name in required)
            if built is not None:
                fields[name] = built
    except SchemaError:
        return None
    if not fields:
        return None
    sources = {
        "live": Source(
            kind="documented", ref=f"KIE live schema of {date} (GET /api/v1/models/{model_id}/schema)", date=date
        ),
        "live-typical": Source(kind="inferred", ref="kie-mcp default run time for a live-only model", date=date),
    }
    if price is not None:
        sources[LIVE_ONLY] = price_source or Source(kind="documented", ref=f"KIE live price of {date}", date=date)
        price = price.model_copy(update={"source": LIVE_ONLY})
    capabilities = sorted({_slug(t) for t in task_types if t}) or [f"text-to-{kind}"]
    return ModelSpec(
        id=model_id,
        title=title or model_id,
        family="market",
        kind=kind,  # type: ignore[arg-type]
        capabilities=capabilities,
        good_for=(description or title or model_id).strip()[:300],
        typical_seconds=(10, 120) if kind == "image" else (60, 600),
        images=_images(fields),
        fields=fields,
        price=price,
        source="live",
        sources=sources if price is not None else {k: v for k, v in sources.items() if k != LIVE_ONLY},
    )


def _field(document: Mapping[str, Any], name: str, prop: Mapping[str, Any], *, required: bool) -> FieldSpec | None:
    kind = _kind(document, name, prop)
    if kind is None:
        return None
    data: dict[str, Any] = {"name": name, "type": kind, "required": required, "source": "live"}
    arg = next((a for a, names in _ARG_NAMES.items() if name in names), None)
    if arg == "audio" and kind != "boolean":
        arg = None
    if arg == "duration" and kind not in ("integer", "number", "enum"):
        arg = None
    data["arg"] = arg
    if kind == "enum":
        data["values"] = _enum(document, prop)
    default = prop.get("default")
    if isinstance(default, str | int | float | bool) and (kind != "enum" or _member(default, data["values"])):
        data["default"] = default
    bounded = prop if kind != "integers" else resolve(document, prop.get("items")) or {}  # a list's: each item's
    for key, target in (("minimum", "min"), ("maximum", "max")):
        if _number(bounded.get(key)) is not None and kind in ("integer", "number", "integers"):
            data[target] = _number(bounded[key])
    if kind in ("string", "url") and _number(prop.get("maxLength")) is not None:
        data["max_length"] = int(prop["maxLength"])
    if arg == "prompt" and data.get("max_length") is None:
        data["max_length"], data["max_length_default"] = DEFAULT_PROMPT_MAX_LENGTH, True
    if kind in ("urls", "strings", "integers", "objects"):
        for key, target in (("minItems", "min_items"), ("maxItems", "max_items")):
            if _number(prop.get(key)) is not None:
                data[target] = int(prop[key])
    description = prop.get("description")
    if isinstance(description, str) and description.strip():
        data["note"] = " ".join(description.split())[:300]
    examples = prop.get("examples")
    if isinstance(examples, list) and examples:
        data["example"] = examples[0]
    elif "example" in prop:
        data["example"] = prop["example"]
    return FieldSpec(**data)


def _kind(document: Mapping[str, Any], name: str, prop: Mapping[str, Any]) -> str | None:
    values = _enum(document, prop)
    if values and all(isinstance(v, str | int | float | bool) for v in values):
        return "enum"
    kind = _json_type(prop)
    if kind == "string":
        looks_url = prop.get("format") in ("uri", "url") or name.endswith(("_url", "url"))
        return "url" if looks_url else "string"
    if kind in ("integer", "number", "boolean"):
        return kind
    if kind == "array":
        items = resolve(document, prop.get("items")) or {}
        item_type = _json_type(items) if isinstance(items, Mapping) else None
        if item_type == "object":
            return "objects"
        if item_type == "integer":
            return "integers"
        if item_type in ("string", None):
            uri = isinstance(items, Mapping) and items.get("format") in ("uri", "url")
            return "urls" if uri or "url" in name or "image" in name or "video" in name else "strings"
    return None


def _json_type(prop: Mapping[str, Any]) -> str | None:
    kind = prop.get("type")
    if isinstance(kind, list):  # 3.1: ["string", "null"]
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind is None:
        options = prop.get("anyOf") or prop.get("oneOf")
        if isinstance(options, list):
            kinds = {o.get("type") for o in options if isinstance(o, Mapping)} - {"null", None}
            kind = next(iter(kinds)) if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


def _images(fields: Mapping[str, FieldSpec]) -> ImagesSpec | None:
    for name in _IMAGE_FIELDS:
        target = fields.get(name)
        if target is None or target.type not in ("url", "urls"):
            continue
        if target.type == "url":
            return ImagesSpec(to=[name], min=1 if target.required else 0, max=1, source="live")
        low = max(target.min_items or 0, 1 if target.required else 0)
        # No maxItems in the document: KIE's schema sets no bound, so neither does kie-mcp beyond a sane ceiling.
        high = target.max_items if target.max_items is not None else 16
        return ImagesSpec(to=[name], min=low, max=max(high, low), source="live")
    return None


def _slug(task_type: str) -> str:
    return "-".join(task_type.strip().lower().replace("_", " ").split())
