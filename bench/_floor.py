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
