"""kie-mcp: an MCP server for KIE.ai that never spends a credit the user did not approve."""

# Written out, not read from the installed metadata (that lookup costs every start a few milliseconds); a release
# bumps it with pyproject.toml, server.json and mcpb/manifest.json (tests/test_packaging.py checks they agree).
__version__ = "0.1.0"

__all__ = ["__version__"]
