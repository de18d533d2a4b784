"""Resources as a host shows them: their descriptions as written for a reader, a read of one that does not exist
answered with the code its protocol revision names, and a read refused for its input or the workspace's setup answered
invalid params in every era. Through the SDK ``Client``, in both eras, against the simulator."""

from __future__ import annotations

import os
import re

import pytest
from mcp import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS

from kie_mcp.sandbox import SANDBOX_API_KEY

from .conftest import ERAS, every_resource, not_found_code

# The resources and templates whose docstrings ran over more than one line (a host showed "...or a video's\n
# poster frame" with the source's indentation): each must be listed, so the check below cannot pass on an empty list.
MULTI_LINE = {"models", "gallery", "tasks", "references/README.md", "output-preview", "task", "shipped-prompt-page"}


async def test_every_resource_and_template_description_reads_without_the_sources_indentation(connect):
    """The audit (TypeScript SDK client): seven descriptions carried Python's docstring indentation ("a video's\\n
    poster frame", 12 spaces in the references guide's), shown as written by hosts. Every one is cleaned as a
    tool's is."""
    async with connect() as client:
        resources = await every_resource(client)
        templates = (await client.list_resource_templates()).resource_templates
    described = {item.name: item.description or "" for item in (*resources, *templates)}
    assert described.keys() >= MULTI_LINE, MULTI_LINE - described.keys()
    assert all("\n" in described[name] for name in MULTI_LINE - {"output-preview"}), described  # lines kept
    indented = {name: text for name, text in described.items() if re.search(r"(^|\n)[ \t]", text)}
    assert indented == {}, indented
    assert all(text == text.strip() for text in described.values()), described


MISSING = {
    "an unknown task": ("kie://tasks/nope-not-a-task", "KIE knows no task"),
    "an unknown model": ("kie://models/no-such-model", "no-such-model"),
    "a saved result that is not there": ("kie://outputs/2026-01-01-x/missing.png", "No saved result at"),
    "a URI no resource serves": ("kie://nothing-here", "Unknown resource"),
    "a page kie-mcp does not ship": ("kie://shipped/prompting/nope.md", "kie-mcp ships no prompt-library page"),
    # A dotfile of outputs/ (there on disk) names nothing served, as a missing file does: the answer never tells them
    # apart, so it says nothing of what the folder holds.
    "a dotfile in outputs/": ("kie://outputs/2026-01-01-x/.hidden.png", "No saved result at"),
}


@pytest.mark.parametrize(("uri", "said"), list(MISSING.values()), ids=list(MISSING))
async def test_a_resource_that_does_not_exist_is_not_found_under_the_code_its_revision_names(
    connect, mode, tmp_path, uri, said
):
    """The audit: a read of a resource that does not exist was answered -32602 (invalid params) in every era; MCP
    2025-06-18 and 2025-11-25 name -32002 "Resource not found" for it. A handshake-era client gets -32002; a
    2026-07-28 one keeps -32602, which its revision requires (SEP-2164). The words and the URI in ``data`` stay, and
    only "not found" changed: a resource that is there but cannot be served (a MASTER_CONTEXT.md that is not UTF-8)
    stays an internal error."""
    (tmp_path / "MASTER_CONTEXT.md").write_bytes(b"caf\xe9\n")
    (tmp_path / "outputs" / "2026-01-01-x").mkdir(parents=True)
    (tmp_path / "outputs" / "2026-01-01-x" / ".hidden.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource(uri)
        with pytest.raises(MCPError) as unreadable:
            await client.read_resource("kie://workspace/MASTER_CONTEXT.md")
    error = refused.value.error
    assert error.code == not_found_code(mode), ERAS[mode]
    assert said in error.message, error.message
    assert error.data == {"uri": uri}
    assert unreadable.value.error.code == INTERNAL_ERROR and "is not UTF-8" in unreadable.value.error.message


REFUSED = {
    "a task id with a space": ("kie://tasks/a b", "is not a task id"),
    "a task id holding the API key": (f"kie://tasks/{SANDBOX_API_KEY}", "holds a credential"),
    "a quote id read as a task": ("kie://tasks/q_0123456789abcdef", "is a quote id"),
    "a model name meaning several models": ("kie://models/text-to-video", "means several models"),
}


@pytest.mark.parametrize(("uri", "said"), list(REFUSED.values()), ids=list(REFUSED))
async def test_a_read_refused_for_its_input_is_invalid_params_in_every_era_never_not_found(
    connect, controls, mode, uri, said
):
    """The review of the "not found" code: every refusal raised as a not-found became -32002 "Resource not found" in
    the handshake era, though nothing is missing: the URI holds no usable task id, or a name several models answer
    to. A client treating -32002 as "gone, drop it" hid what to fix. It stays invalid params (-32602) in both eras,
    in its words, and nothing is asked of KIE."""
    async with connect() as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource(uri)
    error = refused.value.error
    assert error.code == INVALID_PARAMS, (ERAS[mode], error)
    assert said in error.message, error.message
    assert SANDBOX_API_KEY not in error.message + str(error.data)
    requests = await controls.get("requests")
    items = requests if isinstance(requests, list) else requests["requests"]
    assert not [r for r in items if "record" in r["path"] or "Details" in r["path"]], items


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
async def test_outputs_linked_to_the_workspace_is_refused_under_one_code_whichever_outputs_uri_is_read(
    connect, mode, tmp_path
):
    """The review of the "not found" code: with outputs/ a link to the workspace itself, a saved result's and a
    preview's read said "Remove the link" as -32002 "Resource not found" in the handshake era, and the gallery's as
    an internal error (-32603): three codes for one setup to fix. Every outputs read is invalid params, in both eras,
    saying what to do."""
    outputs = tmp_path / "outputs"
    if outputs.is_dir() and not outputs.is_symlink():
        outputs.rmdir()
    os.symlink(tmp_path, outputs)
    uris = [
        "kie://outputs/a.png",
        "kie://previews/a.png",
        "kie://outputs/index.html",
        "kie://outputs/2026-01-01-x/index.html",
    ]
    answered = {}
    async with connect() as client:
        for uri in uris:
            with pytest.raises(MCPError) as refused:
                await client.read_resource(uri)
            answered[uri] = refused.value.error
    assert {uri: error.code for uri, error in answered.items()} == dict.fromkeys(uris, INVALID_PARAMS), ERAS[mode]
    assert all("the workspace itself" in error.message for error in answered.values()), answered
    assert all("Remove the link" in error.message for error in answered.values()), answered
    assert all(error.data == {"uri": uri} for uri, error in answered.items()), answered
