"""The floor every benchmark compares with: a bare ``mcp`` SDK server with one trivial tool, run over stdio."""

FLOOR = '''\
from mcp.server import MCPServer

mcp = MCPServer("floor")


@mcp.tool()
def echo(text: str) -> str:
    """Say it back."""
    return text


if __name__ == "__main__":
    mcp.run("stdio")
'''

# The floor answering with a canned result: the bare SDK server returning, with no work, a CallToolResult read from
# the JSON file named on its command line (e.g. one real kie-mcp answer), so the cost of the answer's size can be
# told apart from the cost of the work behind it.
CANNED_FLOOR = '''\
import json
import sys

from mcp.server import MCPServer
from mcp.types import CallToolResult

ANSWER = CallToolResult.model_validate(json.loads(open(sys.argv[1], encoding="utf-8").read()))
mcp = MCPServer("floor-canned")


@mcp.tool()
def canned(model: str, prompt: str) -> CallToolResult:
    """Answer with the canned result."""
    return ANSWER


if __name__ == "__main__":
    mcp.run("stdio")
'''

# The canned floor with the real tool's output schema: the same answer, published under the schema kie-mcp lists for
# the tool (read from the same JSON file, key "output_schema"; the answer under "answer"), so the SDK client checks
# the structured answer against it as it does kie-mcp's. Its cost over CANNED_FLOOR is what any server answering
# with this schema pays; its cost under kie-mcp is kie-mcp's own work.
CANNED_SCHEMA_FLOOR = '''\
import json
import sys
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.types import CallToolResult

SAVED = json.loads(open(sys.argv[1], encoding="utf-8").read())
ANSWER = CallToolResult.model_validate(SAVED["answer"])
mcp = MCPServer("floor-canned-schema")


@mcp.tool()
def canned(model: str, prompt: str) -> Annotated[CallToolResult, dict[str, Any]]:
    """Answer with the canned result."""
    return ANSWER


# The SDK has no public hook for a hand-made output schema (kie-mcp sets its own the same way); the server still
# checks that the answer is an object, the least a structured answer costs.
mcp._tool_manager.get_tool("canned").fn_metadata.output_schema = SAVED["output_schema"]

if __name__ == "__main__":
    mcp.run("stdio")
'''
