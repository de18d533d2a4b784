"""Resources as a host shows them: their descriptions as written for a reader, and a read of one that does not exist
answered with the code its protocol revision names. Through the SDK ``Client``, in both eras, against the simulator."""

from __future__ import annotations

import re

import pytest
from mcp import MCPError
from mcp.types import INTERNAL_ERROR

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
