"""kie-mcp: an MCP server for KIE.ai that never spends a credit the user did not approve."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kie-mcp")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
