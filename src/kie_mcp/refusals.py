"""A ``resources/read`` refused for what it asked, told apart from one of a resource that is not there.

Raised by the resources of ``surface.py`` and answered by ``server.py``; it lives below both so neither imports the
other for it.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ResourceNotFoundError


class ResourceRefused(ResourceNotFoundError):
    """A read refused for what it asked or for the workspace's setup, not for a resource that is not there: a task
    URI whose id is no task id (malformed, holding a credential, a quote id), a model name meaning several models,
    outputs/ a link to the workspace. Answered invalid params (-32602) in every era, as the SDK answers the
    ``ResourceNotFoundError`` it is, never "Resource not found" (``server._not_found_code``): a client may take that
    for "gone" and drop the URI, with the words saying what to fix."""
