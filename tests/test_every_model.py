"""Every model in the catalogue, generically: adding a model is a data entry, and these tests cover it.

For each model: a minimal valid request (built from its own data) is priced, created through the MCP client
and completes in the simulator; an invalid request is rejected before anything is sent, naming the field.
Models KIE withdrew are refused through the MCP client before anything is sent, naming what to use instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from kie_mcp.catalog import InvalidRequest, ModelSpec, build_input, check_input, load_catalog, price_input
from kie_mcp.catalog.pricing import TYPICAL_CLIP_SECONDS, _allows, typical_prices
from kie_mcp.catalog.validate import when_matches

from .conftest import answering, eras_in_turn, text_of

CATALOG = load_catalog()
ALL = sorted(spec.id for spec in CATALOG)
OFFERED = sorted(spec.id for spec in CATALOG.offered())
# Follow-ups of a finished video go through continue_video: tests/test_followups.py round-trips each of them.
GENERATED = sorted(s.id for s in CATALOG.offered() if s.followup is None or s.followup.standalone)
WITHDRAWN = sorted(spec.id for spec in CATALOG if spec.withdrawn is not None)
SAMPLE_IMAGE = "https://example.com/input.png"
SAMPLE_VIDEO = "https://example.com/input.mp4"
SAMPLE_AUDIO = "https://example.com/input.mp3"


def sample_url(name: str) -> str:
    lowered = name.lower()
    if "video" in lowered:
        return SAMPLE_VIDEO
    if "audio" in lowered:
        return SAMPLE_AUDIO
    return SAMPLE_IMAGE


def minimal_arguments(spec: ModelSpec) -> dict[str, Any]:
    """The smallest tool arguments that satisfy the model's required fields, from its data alone."""
    arguments: dict[str, Any] = {"model": spec.id, "prompt": ""}
    options: dict[str, Any] = {}
    if spec.field_for_arg("prompt"):
        arguments["prompt"] = "a calm test scene"
    if spec.images and spec.images.min:
        arguments["images"] = [SAMPLE_IMAGE] * spec.images.min
    placed = set(spec.images.to) if spec.images and spec.images.min else set()
    for field in spec.fields.values():
        if not field.required or field.arg or field.name in placed or field.default is not None:
            continue
        if field.type == "urls":
            options[field.name] = [sample_url(field.name)] * max(field.min_items or 1, 1)
        elif field.type == "url":
            options[field.name] = sample_url(field.name)
        elif field.type == "enum":
            options[field.name] = field.values[0]
        elif field.type in ("integer", "number"):
            options[field.name] = field.min if field.min is not None else 1
        elif field.type == "boolean":
            options[field.name] = False
        elif field.type == "strings":
            options[field.name] = ["x"]
        elif field.type == "objects" and field.example is not None:
            options[field.name] = field.example
        elif field.type == "string":
            options[field.name] = "a calm test scene"
    if options:
        arguments["options"] = options
    return arguments


def invalid_arguments(spec: ModelSpec) -> tuple[dict[str, Any], str]:
    """A request that breaks the model's contract in one field, and the name the error gives it: the argument the
    user set it with (``resolution`` for Kling's ``mode``), or ``options.<field>``."""
    arguments = minimal_arguments(spec)
    enum = next((f for f in spec.fields.values() if f.type == "enum" and f.values), None)
    if enum is not None:
        key = enum.arg or enum.name
        if enum.arg == "duration":
            arguments[key] = 59  # within the tool schema (1-60), outside every model's enum
        elif enum.arg:
            arguments[key] = "not-a-valid-value"
        else:
            arguments.setdefault("options", {})[key] = "not-a-valid-value"
        return arguments, f"- {enum.arg or 'options.' + enum.name}: "
    prompt = spec.field_for_arg("prompt")
    if prompt is not None and prompt.max_length:
        arguments["prompt"] = "x" * (prompt.max_length + 1)
        return arguments, "- prompt: "
    arguments.setdefault("options", {})["no_such_field"] = 1
    return arguments, "- options.no_such_field: "


def _tool(spec: ModelSpec) -> str:
    return f"generate_{spec.kind}"


def _build(spec: ModelSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    keys = ("prompt", "images", "aspect_ratio", "resolution", "duration", "audio", "options")
    return build_input(spec, **{k: v for k, v in arguments.items() if k in keys})


def billed_by_input_length(spec: ModelSpec, wire: dict[str, Any]) -> bool:
    """Priced per second of an input file (audio, reference video) whose length the request does not state."""
    table = spec.price
    if table is None or table.unit != "second":
        return False
    rate = next((rate for rate in table.rates if when_matches(rate.when, wire)), None)
    return table.seconds_field not in spec.fields or bool(rate and rate.input_seconds)


@pytest.mark.parametrize("model_id", ALL)
def test_minimal_request_is_valid_and_priced(model_id):
    spec = CATALOG.get(model_id)
    wire = _build(spec, minimal_arguments(spec))
    assert check_input(spec, wire) == []
    price = price_input(spec, wire)
    if spec.price is None:  # no price on file anywhere: quoted unknown, so a person must approve it
        assert not price.known
        return
    assert spec.source_of(spec.price.source).date
    facts = {k: v for k, v in spec.price.rates[0].when.items() if k.startswith("source.")}
    if facts:  # priced by the source clip (a follow-up): unknown until the source is known, never guessed
        assert not price.known
        price = price_input(spec, {**wire, **facts})
    if billed_by_input_length(spec, wire):
        assert not price.known  # quoted as unknown with its rate: a person approves it, never auto
        assert "credits per second of" in price.breakdown
    else:
        assert price.known, f"{model_id}: {price.breakdown}"
        # 0 only where KIE's own price text says the model is free (Grok Image 2.0's segment map): anything else
        # at 0 is a broken price list, which the gate would take as unknown
        free = all(r.credits == 0 for r in spec.price.rates) and "free" in spec.source_of(spec.price.source).ref
        assert price.credits > 0 or free, f"{model_id}: {price.breakdown}"


@pytest.mark.parametrize("model_id", OFFERED)
def test_typical_prices_are_the_price_of_a_default_request(model_id):
    """list_models' typical output (one image, and a default request's images when it makes several; a 5 s and an
    8 s clip) is what the minimal request for that many outputs or that length is priced at, and shown exactly when
    that price is known."""
    spec = CATALOG.get(model_id)
    length = spec.field_for_arg("duration")
    count = spec.price.count_field if spec.price else None
    expected = []
    if spec.kind == "image" or length is None:
        requests = [("1 image" if spec.kind == "image" else "1 clip", None, 1)]
        if count and count in spec.fields and spec.fields[count].default not in (None, 1, "1"):
            many = int(float(spec.fields[count].default))
            requests.append((f"{many} images", None, many))  # unasked, it makes that many (Wan 2.7: 4)
    else:
        seconds = [s for s in TYPICAL_CLIP_SECONDS if _allows(length, s)] or [int(float(length.default))]
        requests = [(f"{s} s clip", s, 1) for s in seconds]
    for output, seconds, outputs in requests:
        arguments = minimal_arguments(spec)
        if seconds is not None:
            arguments["duration"] = seconds
        if count and count in spec.fields and spec.fields[count].arg is None:
            arguments.setdefault("options", {})[count] = outputs
        price = price_input(spec, _build(spec, arguments))
        if price.known:
            expected.append((output, price.credits, round(price.credits * 0.005, 4)))
    assert [(t.output, t.credits, t.usd) for t in typical_prices(spec)] == expected


@pytest.mark.parametrize("model_id", ALL)
def test_invalid_request_names_the_field(model_id):
    spec = CATALOG.get(model_id)
    arguments, field = invalid_arguments(spec)
    with pytest.raises(InvalidRequest) as caught:
        _build(spec, arguments)
    assert field in str(caught.value)


@pytest.mark.parametrize("model_id", ALL)
def test_every_fact_has_a_source(model_id):
    spec = CATALOG.get(model_id)
    assert spec.good_for and spec.capabilities
    for field in spec.fields.values():
        assert spec.source_of(field.source).kind in ("documented", "observed", "inferred")
    for rule in spec.rules:
        assert spec.source_of(rule.source)


@eras_in_turn("model_id", GENERATED)
async def test_round_trip_through_the_server_and_simulator(connect, controls, model_id):
    spec = CATALOG.get(model_id)
    async with connect(elicitation=answering(), max_credits_per_call=10_000, max_credits_per_day=100_000) as client:
        arguments, sources = minimal_arguments(spec), 0
        if (source := _source_model(spec)) is not None:  # a task of the model's own kind to work on (KIE checks it)
            made = await client.call_tool(_tool(source), minimal_arguments(source))
            arguments["options"]["task_id"], sources = made.structured_content["tasks"][0]["task_id"], 1
        created = await client.call_tool(_tool(spec), arguments)
        assert not created.is_error, text_of(created)
        task_id = created.structured_content["tasks"][0]["task_id"]
        assert task_id, text_of(created)
        done = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 10})
        bad_arguments, field = invalid_arguments(spec)
        rejected = await client.call_tool(_tool(spec), bad_arguments)
    assert done.structured_content["task"]["state"] == "succeeded", text_of(done)
    assert done.structured_content["task"]["result_urls"]
    assert rejected.is_error and field in text_of(rejected)
    assert len(await controls.creates()) == 1 + sources  # the invalid one never reached KIE


def _source_model(spec: ModelSpec) -> ModelSpec | None:
    """For a model that works on a task of its maker's (a required ``task_id``: Grok Image 2.0's segment edit), the
    first of that maker's models that needs none, whose task it is given; None for any other model."""
    needs = spec.fields.get("task_id")
    if needs is None or not needs.required:
        return None
    maker = spec.id.split("/")[0]
    return next(
        s
        for s in (CATALOG.get(m) for m in GENERATED)
        if s.id.split("/")[0] == maker and s.id != spec.id and "task_id" not in s.fields
    )


@pytest.mark.parametrize("model_id", WITHDRAWN)
async def test_withdrawn_model_is_refused_with_its_alternatives(connect, controls, model_id):
    spec = CATALOG.get(model_id)
    alternatives = spec.withdrawn.alternatives
    assert all(a in OFFERED for a in alternatives), alternatives  # every suggestion is a model KIE sells
    async with connect(elicitation=answering(), max_credits_per_call=10_000, max_credits_per_day=100_000) as client:
        created = await client.call_tool(_tool(spec), minimal_arguments(spec))
        estimate = await client.call_tool("estimate_cost", minimal_arguments(spec))
        listed = await client.call_tool("list_models", {})
    for result in (created, estimate):
        text = text_of(result)
        assert result.is_error, text
        assert "no longer offered" in text and "nothing was sent" in text, text
        assert all(alternative in text for alternative in alternatives), text
    assert model_id not in text_of(listed)
    assert await controls.creates() == []
