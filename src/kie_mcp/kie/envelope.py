"""Reading KIE's ``{code, msg, data}`` envelope. Success means HTTP 2xx AND body ``code == 200``.

Every answer of KIE's is read here, so this is where its text is made safe to keep, once for every caller: ``data``
is redacted (KIE may echo the key into a model list, a schema, an upload's link or a task's message; a result link
that holds a credential must not be saved either) and its text made valid Unicode (``text.valid_value``); its
message (``msg``) is cut to ``text.TEXT_KEPT`` characters, as every error repeats it. A body
nested deeper than any answer of KIE's is unreadable, as a body that is not JSON is.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2

from kie_mcp.redact import redact_value

from .errors import Category, KieError, RedirectedError
from .text import kept_text, valid_value

# Far deeper than any answer of KIE's (a model's OpenAPI schema answer nests about 13 levels), far below Python's
# recursion limit: a deeper body would make ``json.loads`` or any later walk over it (redaction, the journal's JSON)
# raise RecursionError.
MAX_DEPTH = 100


def read_envelope(response: httpx2.Response, endpoint: str) -> Any:
    """Return ``data`` of a successful answer, or raise the ``KieError`` the answer describes."""
    status = response.status_code
    if 300 <= status < 400:  # whatever its body says: the answer is elsewhere, and is never fetched with the key
        raise redirected(response, endpoint)
    body = json_or_none(response)
    if not isinstance(body, dict):
        raise _non_json_error(response, endpoint)
    code = whole_code(body.get("code"))
    # KIE may echo the Authorization header into its message, or send megabytes of it: redacted, and cut
    message = kept_text(body.get("msg") or body.get("message") or "")
    if body.get("success") is False and code == 200:
        code = None  # the upload host's "success": false wins over a copied code
    if 200 <= status < 300 and code == 200:
        return clean(body.get("data"))
    effective = code if isinstance(code, int) and code != 200 else status
    if effective == 200:
        effective = 500
    if not message and not 200 <= status < 300:
        message = f"HTTP {status}"
    # No ``msg`` in an HTTP 2xx answer: the message stays empty, and the error reads as its code's own meaning and
    # advice ("KIE error 402 (credits). The KIE account has too few credits. ..."), never "HTTP 200".
    # ``data`` goes with the error, cleaned as a success's is: a status check reads a task's record in it (KIE may
    # answer a failed Market task with code 501 and its record, ``KieClient.status``).
    data = clean(body.get("data"))
    raise KieError(message, code=effective, http_status=status, endpoint=endpoint, data=data)


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,9}")  # a code; longer digit runs are no code


def whole_code(code: Any) -> Any:
    """``code`` as an int when it is a whole number however KIE sent it: ``200``, ``"200"`` (text, spaces around
    allowed), ``200.0``. Anything else is returned unchanged (and not taken for a code: the HTTP status stands in
    for it); a boolean is no code either (``True == 1`` in Python)."""
    if isinstance(code, bool):
        return None
    if isinstance(code, float) and code.is_integer() and abs(code) < 1e9:
        return int(code)
    if isinstance(code, str) and _WHOLE_NUMBER.fullmatch(code.strip()):
        return int(code.strip())
    return code


def clean(value: Any) -> Any:
    """A value read from KIE's JSON, redacted and valid Unicode. Also for JSON that KIE sends as text inside
    ``data``: its escapes (``\\u0033f9a...``, ``\\ud83d``) were not yet read when ``data`` was cleaned."""
    return redact_value(valid_value(value))


def json_or_none(response: httpx2.Response) -> Any:
    """The body as JSON, or None (``loads_or_none``)."""
    return loads_or_none(response.content)


def loads_or_none(content: str | bytes) -> Any:
    """``content`` read as JSON; None when it is not JSON, or nests deeper than ``MAX_DEPTH`` (``json.loads`` itself
    raises RecursionError on a few kilobytes of ``[[[[``: upstream garbage, never a crash)."""
    try:
        value = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return None if too_deep(value) else value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects nest more than ``limit`` levels; a loop, not recursion, so depth cannot break it."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def redirected(response: httpx2.Response, endpoint: str) -> RedirectedError:
    """An HTTP 3xx answer as the error it is: the configured address sends kie-mcp elsewhere. Where to (its
    ``Location``, read against the address asked) is named: scheme, host, port and any path before ``endpoint``,
    never its query (a redirect may carry a token there). It is offered as the address to set only when it leads to
    the same endpoint (the API moved, say from http to https); a redirect anywhere else (a status or login page) is
    no address of KIE's API."""
    target, moved = _redirect_target(response, endpoint)
    unset = "leave it unset for KIE's own address (or set it to where KIE's API answers), and restart the server."
    if target is None:
        then = f"KIE_BASE_URL (when set) does not point at KIE's API: {unset}"
    elif not moved:
        then = f"KIE_BASE_URL redirects elsewhere ({target}, not KIE's API): {unset}"
    else:
        from kie_mcp.config import key_sent_in_the_clear

        then = (
            f"KIE_BASE_URL redirects to {target}, which is plain http to another machine, where kie-mcp never sends "
            "the key: leave KIE_BASE_URL unset for KIE's own address (or set it to an https one), and restart the "
            "server."
            if key_sent_in_the_clear(target)
            else f"KIE_BASE_URL redirects to {target}; set it to that (or leave it unset for KIE's own address), and "
            "restart the server."
        )
    return RedirectedError(response.status_code, target, next_step=then, endpoint=endpoint)


def _redirect_target(response: httpx2.Response, endpoint: str) -> tuple[str | None, bool]:
    """The base address a redirect leads to (None when its ``Location`` is missing or no http(s) address), and
    whether it leads to the same ``endpoint`` there (a base address that moved)."""
    location = response.headers.get("location", "").strip()
    if not location:
        return None, False
    try:
        url = response.request.url.join(location)
    except (RuntimeError, httpx2.InvalidURL):  # no request (an answer built by hand), or no URL in it
        try:
            url = httpx2.URL(location)
        except httpx2.InvalidURL:
            return None, False
    if url.scheme not in ("http", "https") or not url.host:
        return None, False
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    moved = bool(endpoint) and url.path.endswith(endpoint)
    path = url.path.removesuffix(endpoint) if moved else ""
    return f"{url.scheme}://{host}{port}{path.rstrip('/')}", moved


# HTTP 4xx statuses that, on a page that is not KIE's JSON, say nothing about whether the request was acted on:
# a timeout (408), a conflict (409), "too early" (425), and 429 (retried as KIE's documented rate limit).
_NOT_A_REFUSAL = frozenset({408, 409, 425, 429})
# Cloudflare's "error code 1010" (a request refused for its browser signature), anywhere in its page.
_CLOUDFLARE_1010 = re.compile(rb"(?<![0-9])1010(?![0-9])")


def refused_before_api(status: int | None) -> bool:
    """Whether a non-JSON answer with this HTTP status means the request was refused before KIE's API acted on it
    (a proxy, VPN, firewall or CDN in between, or KIE_BASE_URL pointing elsewhere): HTTP 4xx except 408, 409, 425
    and 429. Such a page to a create means nothing was created."""
    return status is not None and 400 <= status < 500 and status not in _NOT_A_REFUSAL


def _non_json_error(response: httpx2.Response, endpoint: str) -> KieError:
    status = response.status_code
    # The whole body (already bounded by the client): the code can sit anywhere in a Cloudflare page.
    if status == 403 and _CLOUDFLARE_1010.search(response.content):
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
    if refused_before_api(status):  # a create turns this into a refusal (client._send_create)
        return KieError(
            f"HTTP {status} with a page that is not KIE's JSON: refused before KIE's API read the request (a proxy, "
            "VPN, firewall, or KIE_BASE_URL pointing elsewhere)",
            category=Category.PROTOCOL,
            retryable=True,
            next_step="Check for a proxy, VPN or firewall between this machine and KIE, and that KIE_BASE_URL (when "
            "set) points at KIE's API. Reads are safe to repeat; try again shortly.",
            http_status=status,
            endpoint=endpoint,
        )
    message = "a body that is not readable JSON" if 200 <= status < 300 else f"HTTP {status} with a non-JSON page"
    return KieError(
        f"KIE answered with {message} (often a proxy or gateway error)",
        category=Category.PROTOCOL,
        retryable=True,
        next_step="KIE's answer could not be read. Reads are safe to repeat; try again shortly.",
        http_status=status,
        endpoint=endpoint,
    )
