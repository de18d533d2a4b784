"""What tools/list advertises: the SDK's schemas, leaner (fewer tokens in every agent's context), same meaning."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema.validators import validator_for

from kie_mcp.toolschema import compact

from .conftest import answering, text_of


def test_derived_titles_go_and_single_use_definitions_are_inlined():
    schema = {
        "$defs": {
            "Quote": {
                "title": "Quote",
                "type": "object",
                "properties": {"title": {"title": "Title", "type": "string"}, "n": {"title": "N", "type": "integer"}},
            },
        },
        "title": "Result",
        "type": "object",
        "properties": {"quote": {"$ref": "#/$defs/Quote"}, "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    }
    assert compact(schema) == {
        "type": "object",
        "properties": {
            # a property called "title" is a name, not a title: it stays
            "quote": {"type": "object", "properties": {"title": {"type": "string"}, "n": {"type": "integer"}}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},  # hosts that reject type lists still work
        },
    }


def test_shared_and_recursive_definitions_stay_referenced():
    schema = {
        "$defs": {
            "Clip": {"type": "object", "properties": {"path": {"type": "string"}}},
            "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}},
        },
        "type": "object",
        "properties": {
            "first": {"$ref": "#/$defs/Clip"},
            "second": {"$ref": "#/$defs/Clip"},
            "tree": {"$ref": "#/$defs/Node"},
        },
    }
    out = compact(schema)
    assert out["properties"]["first"] == out["properties"]["second"] == {"$ref": "#/$defs/Clip"}
    assert out["properties"]["tree"] == {"$ref": "#/$defs/Node"}  # refers to itself: used twice
    assert set(out["$defs"]) == {"Clip", "Node"}  # every $ref left still resolves


NULLABLE_CASES = [
    # (a nullable value as pydantic writes it, values to check it with)
    ({"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}], "default": None}, [None, 0, 2.5, -1, "3"]),
    ({"anyOf": [{"type": "string"}, {"type": "null"}], "description": "why"}, [None, "", "x", 3, ["x"]]),
    ({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}, [None, [], ["a"], [1], "a"]),
    ({"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]}, [None, "a", "c", 1]),  # enum: stays
    ({"anyOf": [{"const": 3}, {"type": "null"}]}, [None, 3, 4]),  # no "type": stays
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, [None, 1, "1", 1.5]),  # no null: stays
    (  # keywords beside anyOf that interact with the branch's: stays
        {
            "anyOf": [{"type": "object", "additionalProperties": False}, {"type": "null"}],
            "properties": {"n": {"type": "integer"}},
        },
        [None, {}, {"n": 1}, {"m": 1}],
    ),
    (  # an object: its keywords apply only to objects
        {
            "anyOf": [
                {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
                {"type": "null"},
            ]
        },
        [None, {"n": 1}, {}, {"n": "1"}, 5],
    ),
]


@pytest.mark.parametrize(("nullable", "values"), NULLABLE_CASES)
def test_output_schemas_say_nullable_as_a_type_list_with_the_same_meaning(nullable, values):
    schema = {"type": "object", "properties": {"value": nullable}}
    published = compact(schema, output=True)
    value = published["properties"]["value"]
    branches = nullable["anyOf"]
    mergeable = (
        {"type": "null"} in branches
        and all(isinstance(b.get("type"), str) and "enum" not in b and "const" not in b for b in branches)
        and set(nullable) - {"anyOf"} <= {"description", "default"}
    )
    if mergeable:
        assert "anyOf" not in value and "null" in value["type"]  # one step for a validator
    else:
        assert value["anyOf"] == branches
    check = validator_for(schema)(schema)
    check_published = validator_for(published)(published)
    for item in values:
        assert check.is_valid({"value": item}) == check_published.is_valid({"value": item}), item
    inputs = {"type": "object", "properties": {"value": _open(nullable)}}
    assert compact(schema) == inputs  # inputs keep anyOf (without additionalProperties, which Gemini refuses)


def _open(node: Any) -> Any:
    """``node`` without its ``additionalProperties`` keywords, as input schemas are published."""
    if isinstance(node, dict):
        return {key: _open(value) for key, value in node.items() if key != "additionalProperties"}
    return [_open(value) for value in node] if isinstance(node, list) else node


async def test_tools_list_is_lean_and_still_describes_every_argument(connect):
    """Lean, and every argument of every tool has its description: the audit found list_tasks' limit with none (an
    agent could not tell it lists 50 unless asked, 200 at most)."""
    async with connect() as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        for schema in (tool.input_schema, tool.output_schema or {}):
            assert not _titles(schema), (tool.name, _titles(schema))
            assert all(ref.removeprefix("#/$defs/") in schema.get("$defs", {}) for ref in _refs(schema)), tool.name
        undescribed = [name for name, field in tool.input_schema["properties"].items() if not field.get("description")]
        assert undescribed == [], (tool.name, undescribed)
    listing = next(t for t in tools if t.name == "list_tasks").input_schema["properties"]["limit"]
    assert "20 by default" in listing["description"] and f"at most {listing['maximum']}" in listing["description"]
    estimate = next(t for t in tools if t.name == "estimate_cost")
    assert estimate.input_schema["properties"]["model"]["description"]
    assert estimate.input_schema["properties"]["model"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert estimate.output_schema["properties"]["balance_credits"]["type"] == ["number", "null"]
    quote = estimate.output_schema["properties"]["quote"]
    assert quote["properties"]["quote_id"]["type"] == "string"  # inlined, not behind a $ref


async def test_no_published_schema_says_additional_properties_true_and_options_still_take_any_field(connect, controls):
    """``additionalProperties: true`` says only what an object allows anyway, and hosts that hand schemas to Gemini's
    function declarations are refused the keyword (it was on generate's ``options``): it is not published, and
    ``options`` still takes any of the model's fields."""
    async with connect(elicitation=answering()) as client:
        tools = (await client.list_tools()).tools
        made = await client.call_tool(
            "generate_image", {"prompt": "an apple", "model": "nano-banana-2", "options": {"output_format": "png"}}
        )
    published = json.dumps([[tool.input_schema, tool.output_schema] for tool in tools])
    assert '"additionalProperties": true' not in published
    generate = next(t for t in tools if t.name == "generate_image")
    assert {"type": "object"} in generate.input_schema["properties"]["options"]["anyOf"]
    assert made.structured_content["status"] == "completed", text_of(made)
    assert (await controls.creates())[0]["body"]["input"]["output_format"] == "png"


def _keywords(node: object, keyword: str, path: str = "") -> list[str]:
    """Where ``keyword`` is a schema keyword in ``node`` (a property of that name is not one)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == keyword and not path.endswith(".properties"):
                found.append(f"{path}.{key}")
            found += _keywords(value, keyword, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _keywords(value, keyword, f"{path}.{index}")
    return found


async def test_no_input_schema_holds_additional_properties_and_a_captions_unknown_key_is_still_refused(connect):
    """Gemini's function declarations refuse ``additionalProperties`` whatever its value ("Unknown name
    additionalProperties", HTTP 400 for the whole request): stitch_videos published ``false`` on its captions, so a
    host handing MCP schemas to Gemini could use no tool at all. No input schema holds it; a caption's unknown key
    is still refused by name (its pydantic model)."""
    async with connect() as client:
        tools = (await client.list_tools()).tools
        styled = await client.call_tool(
            "stitch_videos", {"clips": ["a.mp4", "b.mp4"], "captions": [{"start": 0, "end": 1, "text": "hi", "x": 1}]}
        )
    held = {tool.name: _keywords(tool.input_schema, "additionalProperties") for tool in tools}
    assert not any(held.values()), held
    captions = next(t for t in tools if t.name == "stitch_videos").input_schema["properties"]["captions"]
    assert set(captions["anyOf"][0]["items"]["properties"]) == {"start", "end", "text"}
    assert styled.is_error and "captions[0].x" in text_of(styled), text_of(styled)
    assert compact({"type": "object", "additionalProperties": False}, output=True)["additionalProperties"] is False


async def test_no_input_schema_has_an_exclusive_bound_and_the_strict_bound_still_holds(connect, controls):
    """Gemini's function declarations have no ``exclusiveMinimum`` and refuse the whole request over it
    (modelcontextprotocol/servers#1624): ``max_credits`` (more than 0) and a caption's ``end`` are published with
    ``minimum``, and 0 is still refused by name, with nothing created. The description of each says the strict bound
    in words, so ``minimum: 0`` does not send an agent to try 0."""
    async with connect(elicitation=answering()) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        zero = await client.call_tool(
            "generate_image", {"prompt": "an apple", "model": "nano-banana-2", "max_credits": 0}
        )
    published = json.dumps([tool.input_schema for tool in tools.values()])
    assert "exclusiveMinimum" not in published and "exclusiveMaximum" not in published
    max_credits = tools["generate_image"].input_schema["properties"]["max_credits"]["anyOf"][0]
    assert max_credits == {"type": "number", "minimum": 0}
    end = tools["stitch_videos"].input_schema["properties"]["captions"]["anyOf"][0]["items"]["properties"]["end"]
    assert end["minimum"] == 0 and end["maximum"] == 86400
    assert end["description"].endswith(" More than 0."), end
    taking = [tool for tool in tools.values() if "max_credits" in tool.input_schema["properties"]]
    assert {tool.name for tool in taking} >= {"generate_image", "generate_video", "continue_video"}
    for tool in taking:
        said = tool.input_schema["properties"]["max_credits"]["description"]
        assert said.startswith("A refusal threshold") and said.endswith(" More than 0."), (tool.name, said)
    bounded = {tool.name + path: said for tool in tools.values() for path, said in _described_bounds(tool.input_schema)}
    assert len(bounded) == len(taking) + 1, bounded  # no other argument has a strict bound
    assert all(said.count("More than 0.") == 1 for said in bounded.values()), bounded
    assert zero.is_error and "max_credits: must be more than 0" in text_of(zero), text_of(zero)
    assert await controls.creates() == []
    compacted = compact({"type": "number", "exclusiveMinimum": 0, "minimum": 1})
    assert compacted == {"type": "number", "exclusiveMinimum": 0, "minimum": 1}  # a bound of its own stays as it is
    below = compact({"type": "object", "properties": {"x": {"type": "number", "exclusiveMaximum": 2.5}}})
    assert below["properties"]["x"] == {"type": "number", "maximum": 2.5, "description": "Less than 2.5."}
    assert compact({"type": "number", "exclusiveMaximum": 5}, output=True) == {"type": "number", "exclusiveMaximum": 5}


async def test_results_still_match_the_published_output_schema(connect):
    # The SDK client validates structured content against outputSchema: a schema that no longer matched the
    # result would make this call fail.
    async with connect() as client:
        result = await client.call_tool("estimate_cost", {"model": "nano-banana-2", "prompt": "an apple"})
        listed = await client.call_tool("list_models", {})
    assert not result.is_error and result.structured_content["quote"]["quote_id"]
    assert not listed.is_error


def _described_bounds(node: object, path: str = "") -> list[tuple[str, str]]:
    """Every property (by path) whose description says a strict bound ("More than", "Less than")."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    said = sub.get("description", "") if isinstance(sub, dict) else ""
                    if "More than" in said or "Less than" in said:
                        found.append((f"{path}.{name}", said))
                    found += _described_bounds(sub, f"{path}.{name}")
            else:
                found += _described_bounds(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _described_bounds(value, f"{path}.{index}")
    return found


async def test_no_tool_description_carries_the_indentation_of_its_source(connect):
    """A tool's description is its docstring: Python before 3.13 keeps the source's indentation in it, so an agent
    read "A\\n        1080p" (eight spaces after every line break, in every turn's context). It is published
    without it, and with its line breaks."""
    async with connect() as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.description and tool.description == tool.description.strip(), tool.name
        assert "\n " not in tool.description, (tool.name, tool.description[:300])
    assert "\n" in next(tool.description for tool in tools if tool.name == "continue_video")


def _titles(node: object) -> list[str]:
    """Every title of a schema node (property names, even "title", are not titles)."""
    if isinstance(node, list):
        return [t for item in node for t in _titles(item)]
    if not isinstance(node, dict):
        return []
    found = [node["title"]] if isinstance(node.get("title"), str) else []
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            found += [t for sub in value.values() for t in _titles(sub)]
        elif key != "title":
            found += _titles(value)
    return found


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []
