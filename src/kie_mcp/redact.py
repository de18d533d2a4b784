"""The one owner of redaction: secrets never leave the process in text.

``redact(text)`` replaces with ``[redacted]`` every registered secret (the KIE key is registered when a
``KieClient`` is built) and anything shaped like a credential: ``Bearer <token>``, ``Authorization: <value>``,
``api_key=<value>`` / ``"apiKey": "<value>"`` and friends, JWTs, ``sk-...`` keys and the password in
``scheme://user:password@host``. Ordinary words, URLs without credentials and task ids are left alone.

Logging is covered by a log-record factory (``install_log_redaction``): every record of every logger is
cleaned when it is created, before pytest's ``caplog``, a client's handler or stderr sees it. A filter on a
logger would miss records propagated from child loggers and a filter on one handler misses handlers added
later; the factory sees them all. ``RedactingFilter`` is kept on the stderr handler as a second layer, in
case other code replaces the record factory without chaining ours.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

REDACTED = "[redacted]"
# Shorter "secrets" (test keys such as "k") cannot be replaced without mangling ordinary text.
MIN_SECRET_LENGTH = 8


class _Registry:
    """Process-wide: the registered secrets, their compiled pattern, whether the record factory is in place."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: set[str] = set()
        self.pattern: re.Pattern[str] | None = None
        self.factory_installed = False


_registry = _Registry()

_NOT_DONE = r"(?!\[redacted\])"  # never redact a redaction again: the result is stable
_VALUE = r"[^\s\"'&,;}\]]+"
_SCHEMES = r"(?:bearer|basic|token|digest|apikey)\s+"
_SENSITIVE_NAME = (
    r"(?:x-)?api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token|client[_-]?secret"
    r"|secret[_-]?key|private[_-]?key|password|passwd"
)
_SEPARATOR = r"[\"']?\s*[:=]\s*[\"']?"  # name: value, name=value, "name": "value"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xyz / "Authorization": "Basic xyz" / authorization=xyz (the whole value goes)
    (
        re.compile(
            rf"(?i)(\b(?:proxy-)?authorization{_SEPARATOR})(?!(?:{_SCHEMES})?\[redacted\])(?:{_SCHEMES})?{_VALUE}"
        ),
        rf"\1{REDACTED}",
    ),
    # api_key=xyz, KIE_API_KEY=xyz, "apiKey": "xyz", x-api-key: xyz, password=xyz, ...
    (
        re.compile(rf"(?i)((?<![A-Za-z0-9])(?:[A-Za-z0-9]+_)*(?:{_SENSITIVE_NAME}){_SEPARATOR}){_NOT_DONE}{_VALUE}"),
        rf"\1{REDACTED}",
    ),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@\"']+:[^/\s@\"']+@"), rf"\1{REDACTED}@"),
)
# "Bearer <token>" anywhere; a token is 8+ token characters with a digit, or 20+ of them, so that prose such
# as "the bearer of bad news" stays as it is.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)")
# JSON Web Tokens, and keys in the common sk-/rk- form.
_TOKEN_SHAPES = re.compile(
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|(?<![A-Za-z0-9_-])(?:sk|rk)[-_][A-Za-z0-9_-]{16,}"
)


def register_secret(value: str | None) -> None:
    """Redact ``value`` (and its URL-encoded form) from now on, process-wide. Idempotent.

    Also installs the log-record factory, so a process that holds a key never logs it.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    install_log_redaction(handlers=False)
    variants = {value, quote(value, safe="")}
    with _registry.lock:
        if variants <= _registry.secrets:
            return
        _registry.secrets.update(variants)
        ordered = sorted(_registry.secrets, key=len, reverse=True)  # longest first: a secret containing another
        _registry.pattern = re.compile("|".join(re.escape(s) for s in ordered))


def _bearer(match: re.Match[str]) -> str:
    token = match.group(3)
    if len(token) >= 20 or any(c.isdigit() for c in token):
        return f"{match.group(1)}{match.group(2)}{REDACTED}"
    return match.group(0)


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped value replaced by ``[redacted]``."""
    if not text:
        return text
    pattern = _registry.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    text = _BEARER.sub(_bearer, text)
    return _TOKEN_SHAPES.sub(REDACTED, text)


_SENSITIVE_KEY = re.compile(r"(?i)^(?:[A-Za-z0-9]+[_-])*(?:proxy-)?(?:authorization|" + _SENSITIVE_NAME + r")$")


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings) with every string redacted; the value of
    a key named like a credential (``authorization``, ``apiKey``, ``password``, ...) is replaced whole."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        cleaned: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and _SENSITIVE_KEY.match(key) and isinstance(item, str) and item:
                cleaned[redact(key)] = REDACTED
            else:
                cleaned[redact(key) if isinstance(key, str) else key] = redact_value(item)
        return cleaned
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_value(item) for item in value)
    return value


# -- logging -------------------------------------------------------------------------------

_exception_formatter = logging.Formatter()


def scrub_record(record: logging.LogRecord) -> None:
    """Clean a record in place: its final message (args applied), its exception text and stack."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format: leave it to the handler, which reports it as logging always does
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    elif record.exc_info and record.exc_info[0] is not None:
        text = _exception_formatter.formatException(record.exc_info)
        clean = redact(text)
        if clean != text:
            record.exc_text = clean  # formatters use exc_text when it is set
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """Redacts a record before a handler formats it; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


_FILTER = RedactingFilter()


def install_log_redaction(*, handlers: bool = True, extra: Iterable[logging.Handler] = ()) -> None:
    """Clean every log record when it is created (process-wide, idempotent), and add ``RedactingFilter`` to
    the ``extra`` handlers and, with ``handlers``, to the root and ``kie_mcp`` loggers' current handlers."""
    with _registry.lock:
        if not _registry.factory_installed:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                scrub_record(record)
                return record

            logging.setLogRecordFactory(factory)
            _registry.factory_installed = True
    targets = [*logging.getLogger().handlers, *logging.getLogger("kie_mcp").handlers] if handlers else []
    for handler in [*targets, *extra]:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(_FILTER)
