"""The one owner of redaction: secrets never leave the process in text.

``redact(text)`` replaces with ``[redacted]`` every registered secret (the KIE key is registered when a
``KieClient`` is built) in any letter case, URL-encoded or base64-encoded (alone, as HTTP Basic or Bearer
credentials, or anywhere inside a longer base64 text), and anything shaped like a credential: ``Bearer <token>``,
``Authorization: <value>``, ``api_key=<value>`` / ``"apiKey": "<value>"`` and friends, JWTs, ``sk-...`` keys and the
password in ``scheme://user:password@host``. Ordinary words, URLs without credentials and task ids are left alone.

Logging is covered by a log-record factory (``install_log_redaction``): every record of every logger is
cleaned when it is created, before pytest's ``caplog``, a client's handler or stderr sees it. A filter on a
logger would miss records propagated from child loggers and a filter on one handler misses handlers added
later; the factory sees them all. ``RedactingFilter`` is kept on the stderr handler as a second layer, in
case other code replaces the record factory without chaining ours.
"""

from __future__ import annotations

import base64
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
    """Redact ``value`` from now on, process-wide, in any letter case, URL-encoded, and base64-encoded (see
    ``_encoded_forms``). Idempotent.

    Also installs the log-record factory, so a process that holds a key never logs it.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    install_log_redaction(handlers=False)
    # Any case: an upstream may echo the key upper-cased (KIE's keys are hex: the case carries no meaning).
    # Exact case: base64, where the case is the content (a case-folded match would only match more, never less).
    variants = {(form, True) for form in (value, quote(value, safe=""))}
    variants |= {(form, False) for form in _encoded_forms(value) if len(form) >= MIN_SECRET_LENGTH}
    with _registry.lock:
        if variants <= _registry.secrets:
            return
        _registry.secrets.update(variants)
        _registry.pattern = re.compile(_alternation(_registry.secrets))


def secrets_version() -> object:
    """Changes whenever a secret is registered: what was redacted before it may show that secret, so anything kept
    across calls (the gallery's scanned folders) is made again."""
    return _registry.pattern


def _encoded_forms(value: str) -> set[str]:
    """The base64 forms of ``value`` an upstream may echo: the key encoded alone, as HTTP Basic credentials (``:key``,
    ``key:``) and as ``Bearer key``, in the standard and URL-safe alphabets, with and without padding; and, for
    the key inside any longer base64 text, the part of its encoding that depends on the key alone.

    Base64 writes 3 bytes as 4 characters, so text around the key changes the characters at its edges, and the key
    encodes three ways depending on its offset modulo 3. For each offset only the characters whose 6 bits all come
    from the key are kept (0-3 characters fewer at each end): found wherever the key sits in a longer blob. Each
    is about 4/3 as long as the key (10 characters or more for the shortest secret registered, 8 characters): long
    enough never to match anything else by chance.
    """
    raw = value.encode("utf-8")
    forms: set[str] = set()
    for whole in (raw, b":" + raw, raw + b":", b"Bearer " + raw):
        encoded = base64.b64encode(whole).decode("ascii")
        forms |= {encoded, encoded.rstrip("=")}
    for lead in range(3):  # the key at offset 0, 1 or 2 modulo 3 of a longer blob
        encoded = base64.b64encode(bytes(lead) + raw).decode("ascii")
        first = -(-lead * 8 // 6)  # the first character with no bit of what comes before
        end = (lead + len(raw)) * 8 // 6  # past the last character with no bit of what comes after
        forms.add(encoded[first:end])
    return forms | {form.translate(_URLSAFE) for form in forms}  # base64url: - and _ for + and /


_URLSAFE = str.maketrans("+/", "-_")

_Trie = dict[str, "_Trie"]


def _alternation(forms: Iterable[tuple[str, bool]]) -> str:
    """One pattern for every ``(text, any_case)`` form, written as a trie (``(?:M2Y5(?:YTBj...|...)``): a regex
    alternation of literals tries each of them at every position of the text, the trie only the few that start
    with the text's next characters, so redaction costs about as much with twenty forms of a key as with two. At a
    position the longest form wins (a secret containing another is taken whole)."""
    root: _Trie = {}
    for text, folded in sorted(forms, key=lambda form: len(form[0]), reverse=True):  # longest first: tried first
        node = root
        for ch in text:
            node = node.setdefault(_char(ch, folded), {})
        node[""] = {}  # a form ends here
    return _branches(root)


def _char(ch: str, folded: bool) -> str:
    if folded and ch.lower() != ch.upper():
        return f"[{re.escape(ch.lower())}{re.escape(ch.upper())}]"
    return re.escape(ch)


def _branches(node: _Trie) -> str:
    run = []
    while len(node) == 1 and "" not in node:  # a stretch no form branches off: written as it is
        ch, node = next(iter(node.items()))
        run.append(ch)
    ways = [ch + _branches(rest) for ch, rest in node.items() if ch]
    tail = ways[0] if len(ways) == 1 else f"(?:{'|'.join(ways)})" if ways else ""
    if tail and "" in node:  # a form ends here and longer ones go on: greedy, the longer is tried first
        tail = f"(?:{tail})?"
    return "".join(run) + tail


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
