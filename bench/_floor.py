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
