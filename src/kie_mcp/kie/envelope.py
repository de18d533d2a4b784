"""Reading KIE's ``{code, msg, data}`` envelope. Success means HTTP 2xx AND body ``code == 200``."""

from __future__ import annotations

import json
from typing import Any

import httpx2

from kie_mcp.redact import redact

from .errors import Category, KieError


def read_envelope(response: httpx2.Response, endpoint: str) -> Any:
    """Return ``data`` of a successful answer, or raise the ``KieError`` the answer describes."""
    body = _json_or_none(response)
    status = response.status_code
    if not isinstance(body, dict):
        raise _non_json_error(response, endpoint)
    code = body.get("code")
    message = redact(str(body.get("msg") or body.get("message") or ""))  # KIE may echo the Authorization header
    if body.get("success") is False and code == 200:
        code = None  # the upload host's "success": false wins over a copied code
    if 200 <= status < 300 and code == 200:
        return body.get("data")
    effective = code if isinstance(code, int) and code != 200 else status
    if effective == 200:
        effective = 500
    raise KieError(message or f"HTTP {status}", code=effective, http_status=status, endpoint=endpoint)


def _json_or_none(response: httpx2.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _non_json_error(response: httpx2.Response, endpoint: str) -> KieError:
    status = response.status_code
    snippet = response.content[:120].decode("utf-8", "replace").strip()
    if status == 403 and "1010" in snippet:
        return KieError(
            "blocked by KIE's firewall (error code 1010)",
            category=Category.BLOCKED,
            retryable=False,
            next_step="KIE's firewall refused the request before it reached the API; nothing was created. "
            "Check for a VPN or proxy changing the request, then try again.",
            http_status=status,
            endpoint=endpoint,
        )
    if status == 429:
        return KieError("rate limit exceeded", code=429, http_status=status, endpoint=endpoint)
    message = "a body that is not valid JSON" if 200 <= status < 300 else f"HTTP {status} with a non-JSON page"
    return KieError(
        f"KIE answered with {message} (often a proxy or gateway error)",
        category=Category.PROTOCOL,
        retryable=True,
        next_step="KIE's answer could not be read. Reads are safe to repeat; try again shortly.",
        http_status=status,
        endpoint=endpoint,
    )
