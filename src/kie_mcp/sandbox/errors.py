"""Errors the simulated KIE answers with, and the default wording for each code (kie-api.md §1.5-1.6)."""

from __future__ import annotations

DEFAULT_MESSAGES: dict[int, str] = {
    400: "Your prompt was flagged by Website as violating content policies",
    401: "You do not have access permissions",
    402: "The current credits are insufficient. Please top up.",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Upstream is currently experiencing service issues. No result has been returned for over 10 minutes.",
    409: "WAV record already exists",
    413: "The uploaded audio matches existing artwork",
    422: "Validation error",
    429: "Rate limit exceeded",
    430: "Call frequency too high",
    433: "Request Limit – Sub-key Usage Exceeds Limit",
    451: ("Failed to fetch the image. Kindly verify any access restrictions set by you or your service provider."),
    455: "Service unavailable: the system is under maintenance",
    500: "Internal Error, Please try again later",
    501: "Generation failed",
    505: "Feature disabled",
    531: "Generation failed due to an issue; your credits have been refunded",
    550: "Internal Error, Please try again later",
}

UPLOAD_AUTH_MESSAGE = "Authentication failed: Invalid API Key"
UNKNOWN_MODEL = "The page does not exist or is not published"
INSUFFICIENT_CREDITS = "The current credits are insufficient. Please top up."
RATE_LIMITED = "Rate limit exceeded"


def default_message(code: int) -> str:
    return DEFAULT_MESSAGES.get(code, "Error")


class KieError(Exception):
    """A business outcome KIE reports as ``{code, msg, data: null}``; handlers raise it, the app renders it."""

    def __init__(self, code: int, msg: str | None = None) -> None:
        self.code = code
        self.msg = msg if msg is not None else default_message(code)
        super().__init__(f"{code} {self.msg}")


LINK_EXPIRED = "Forbidden: the link has expired"

# What an expired result link answers in place of the file with HTTP 200, by ``SimConfig.expired_link_page``: the
# error messages object stores and their front ends send (an S3-style XML error among them), with their types.
EXPIRED_PAGES: dict[str, tuple[str, str]] = {
    "json": ('{"code": 403, "msg": "link expired", "data": null}', "application/json"),
    "text": ("Request has expired", "text/plain"),
    "xml": (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired'
        "</Message></Error>",
        "application/xml",
    ),
    "html": (
        "<html><head><title>403 Forbidden</title></head><body><h1>This link has expired</h1></body></html>",
        "text/html",
    ),
}


class FileError(Exception):
    """A result/upload file that cannot be served: 404 unknown or deleted, 403 link expired."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(f"{status} {text}")


class ConnectionDropped(Exception):
    """Raised inside the app to cut the connection; ``SandboxTransport`` turns it into ``RemoteProtocolError``."""
