"""The one owner of redaction: secrets never leave the process in text.

``redact(text)`` replaces with ``[redacted]`` every registered secret (the KIE key is registered when a
``KieClient`` is built) in any letter case, URL-encoded (as a query value, a path or a form writes it, or every
byte), HTML-escaped, its bytes in hex, or base64-encoded (alone, as HTTP Basic or Bearer credentials, or anywhere
inside a longer base64 text, also when wrapped over lines as MIME wraps it), written in look-alike letters NFKC makes
plain or with invisible format characters (Unicode's Cf) between its characters (found in a normalised copy, and
redacted where it stands in the text as given, nothing else changed), any run of 16 or more of its characters (the
key cut short, or with up to three dashes, spaces, line breaks, colons, dots, underscores, slashes or commas between
its characters: a UUID, hex in groups, a wrapped line), and anything shaped like a credential: ``Bearer <token>``,
``Authorization: <value>``, ``api_key=<value>`` / ``"apiKey": "<value>"`` and friends, JWTs, ``sk-...`` keys and the
password in ``scheme://user:password@host``. Ordinary words, URLs without credentials, task ids and a
placeholder where a value goes (``KIE_API_KEY=...``, ``api_key=<your key>``, ``--api-key=<not shown>``) are left
alone.

What cannot be redacted is judged by the same forms: ``holds_secret`` (a link KIE or kie-mcp fetches: half the key
in one link and half in another hand all of it over) and ``bytes_hold_secret`` (bytes served or uploaded as they
are, runs of the key's characters searched in one fast pass). ``key_shaped_parts`` finds what is shaped like KIE's
key (``KEY_SHAPE``) in text no secret is registered from yet (a refused command line), to register it first.

Logging is covered by a log-record factory (``install_log_redaction``): every record of every logger is
cleaned when it is created, before pytest's ``caplog``, a client's handler or stderr sees it. A filter on a
logger would miss records propagated from child loggers and a filter on one handler misses handlers added
later; the factory sees them all. ``RedactingFilter`` is kept on the stderr handler as a second layer, in
case other code replaces the record factory without chaining ours.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterable
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus, unquote

REDACTED = "[redacted]"
# Shorter "secrets" (test keys such as "k") cannot be replaced without mangling ordinary text.
MIN_SECRET_LENGTH = 8
# A run this long of a secret's characters is redacted wherever it was cut: a key cut by a character or two is
# guessed in a few tries, but 16 characters left out (16 hex digits: 2**64 tries) are not.
FRAGMENT = 16
# Between a secret's characters: a UUID's dashes, hex in groups (by spaces, colons, dots, underscores, slashes or
# commas), a broken line, as it is or as JSON escapes it (``\n``: how ``plain`` and a JSON log show a line break);
# up to three of them (", ", a key's own dash with a colon either side). A secret's own characters among these are
# its characters, never taken for something between.
_SEPARATORS = "-:._/,"
_GAP = r"[-:._/,]|\s"  # one character that may stand between two of a secret's (or a JSON escape, below)
_BETWEEN = rf"(?:{_GAP}|\\[nrt]){{0,3}}"
_GAP_CHAR = re.compile(_GAP)
_ESCAPED_BREAK = re.compile(r"\\[nrt]")  # a JSON-escaped line break or tab, between a secret's characters
_WRAPPED = r"(?:\r?\n|\\r\\n|\\n)?"  # between base64 characters: MIME's line breaks, as they are or JSON-escaped


class _Registry:
    """Process-wide: the registered secrets, their compiled pattern, whether the record factory is in place."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: set[_Form] = set()
        self.values: dict[str, None] = {}  # every secret registered, in order: what a child process registers too
        self.pattern: re.Pattern[str] | None = None
        self.runs: re.Pattern[str] | None = None  # a run of FRAGMENT or more characters any secret is made of
        self.letters = ""  # the characters of those runs, in either case (a separator only ever between them)
        # Each FRAGMENT-long piece of a secret (lower case): (the secret, where), by the separators the secret holds
        # (a dash in a secret is one of its characters, not something put between them).
        self.pieces: dict[frozenset[str], dict[str, tuple[str, int]]] = {}
        self.factory_installed = False


_registry = _Registry()

_NOT_DONE = r"(?!\[redacted\])"  # never redact a redaction again: the result is stable
# A value ends where a quoted string, a query, a list or an object would, and at a backtick that closes a code span
# (one before a space, punctuation, another backtick or the end): markdown's `KIE_API_KEY=...` keeps the backtick
# that closes its span, and the text after it. A backtick inside a value (abc`def) is part of it.
_CLOSING_TICK = r"`(?=[\s\"'&,;:}\]`.)!?]|$)"
_VALUE = rf"(?:[^\s\"'&,;}}\]`]|(?!{_CLOSING_TICK})`)+"
# A placeholder a template or a guide writes where the value goes, never a credential: "..." (or "…") and "<your
# key>" ("<your" and letters, spaces, dashes or underscores), each whole up to where a value ends; and kie-mcp's own
# "<not shown>" for a value it hides (a refused ``--api-key=<not shown>``); each may end a sentence (a full stop, then a
# space or the end). Left as it is, where its redaction only told the reader a secret was there.
_PLACEHOLDER = rf"(?:\.{{3,}}|…+|<your[a-z _-]{{0,40}}>|<not shown>)(?=[\s\"'&,;}}\]]|\.(?:\s|$)|{_CLOSING_TICK}|$)"
_SCHEMES = r"(?:bearer|basic|token|digest|apikey)\s+"
_SENSITIVE_NAME = (
    r"(?:x-)?api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token|client[_-]?secret"
    r"|secret[_-]?key|private[_-]?key|password|passwd"
)
# name: value, name=value, "name": "value", `name`: `value`, name=``value`` (markdown's double backticks)
_SEPARATOR = r"[\"'`]?\s*[:=]\s*(?:[\"']|`{1,2})?"
_PATTERNS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    # Each with the words (in casefold()) one of which any text it matches holds: it runs only on such a text, as
    # scanning every text with each of them took about 0.2 ms a kilobyte, for every log line and journal write.
    # Authorization: Bearer xyz / "Authorization": "Basic xyz" / authorization=xyz (the whole value goes; its scheme,
    # Bearer or Basic, stays to say what it was)
    (
        re.compile(
            rf"(?i)(\b(?:proxy-)?authorization{_SEPARATOR})(?!(?:{_SCHEMES})?\[redacted\])"
            rf"(?:{_SCHEMES})?(?P<value>{_VALUE})"
        ),
        rf"\1{REDACTED}",
        ("authorization",),
    ),
    # api_key=xyz, KIE_API_KEY=xyz, "apiKey": "xyz", x-api-key: xyz, password=xyz, ... The name may follow a "_"
    # (KIE_ in KIE_API_KEY stays, as it would): matching the words before it too (a_b_c_api_key) made every "_" of a
    # long a_b_c_... run a start scanning to the run's end, seconds for a prompt of some kilobytes.
    (
        re.compile(
            rf"(?i)((?<![A-Za-z0-9])(?:{_SENSITIVE_NAME}){_SEPARATOR}){_NOT_DONE}(?!{_PLACEHOLDER})"
            rf"(?P<value>{_VALUE})"
        ),
        rf"\1{REDACTED}",
        ("key", "token", "secret", "passw"),  # each of _SENSITIVE_NAME holds one
    ),
    # scheme://user:password@host, found from its "://" (a scheme before it matched from every word of an a.b.c...
    # run scanned to the run's end: quadratic, 32 s for 100 KB)
    (re.compile(r"(://)(?P<value>[^/\s:@\"']*:[^/\s@\"']+)@"), rf"\1{REDACTED}@", ("://",)),
)
# "Bearer <token>" anywhere; a token is 8+ token characters with a digit, or 20+ of them, so that prose such
# as "the bearer of bad news" stays as it is.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)")
# JSON Web Tokens, keys in the common sk-/rk- form, and other services' tokens by their published prefixes (GitHub,
# Slack, Google API keys, Hugging Face), which a user may paste by mistake where KIE's key goes. Not an AWS access key
# id (AKIA...): it is no secret (its secret key is), and it stands in every S3 presigned link (X-Amz-Credential), an
# input link a request sends as given, which the approval card could not approve if it read [redacted].
# Each by its whole published shape, never a prefix and any word: a prompt's "xoxo-forever-and-always" or
# "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" is no token. Slack's: its digit groups required
# (bot xoxb-<digits>-<digits>-<alnum>, a legacy bot's one group; user and legacy xoxp-/xoxs-/xoxo- with three, an
# xoxa-2- workspace token; configuration tokens xoxe.xoxp-1-<alnum> and their xoxe-1- refresh tokens); GitHub's and
# Hugging Face's random letters in both cases (3 or more of each: a word in one case, or a name's capital, is none);
# a fine-grained GitHub token's 82 characters (80 or more); Google's AIza and 35.
_MIXED_CASE = r"(?=(?:[a-z0-9]*[A-Z]){3})(?=(?:[A-Z0-9]*[a-z]){3})"
_SLACK = (
    r"xox[abposr]-(?=[A-Za-z0-9-]*+(?!_))(?:\d-)?\d{6,}(?:-\d{6,})+-[A-Za-z0-9][A-Za-z0-9-]{7,}|xoxb-\d{8,14}-[A-Za-z0-9]{16,}"
    r"|xox[aer]-\d-[A-Za-z0-9]{20,}|xoxe\.xox[bp]-\d-[A-Za-z0-9]{40,}"
)
_GITHUB = rf"gh[pousr]_{_MIXED_CASE}[A-Za-z0-9]{{30,}}|github_pat_[A-Za-z0-9_]{{80,}}"
_GOOGLE = r"AIza[A-Za-z0-9_-]{35}"
_HUGGING_FACE = rf"hf_{_MIXED_CASE}[A-Za-z0-9]{{30,}}"
_SECRET_KEY = r"(?:sk|rk)[-_][A-Za-z0-9_-]{16,}"
_TOKEN_SHAPES = re.compile(
    rf"(?<![A-Za-z0-9_-]){_SECRET_KEY}|(?<![A-Za-z0-9_-])(?:{_GITHUB}|{_SLACK}|{_GOOGLE}|{_HUGGING_FACE})(?![A-Za-z0-9_-])"
)
# A JSON Web Token (eyJ<8+>.<8+>.<signature>), also glued after a word and a dash or underscore (session-eyJ...):
# looked for from where each run of token letters begins (without taking it up, so a run inside another's segments is
# looked at too), the token's start then found in the run. A pattern starting at every "eyJ" scanned to the run's end
# from each (quadratic: 6 s for 100 KB of "-eyJ"); from run starts, each segment is read by at most three.
_JWT_RUNS = re.compile(r"(?<![A-Za-z0-9_-])(?=([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{8,})\.([A-Za-z0-9_-]*))")
_JWT_START = re.compile(r"(?:^|[-_])eyJ")


def _jwt_spans(text: str) -> list[tuple[int, int]]:
    """Where JSON Web Tokens stand in ``text`` (``_JWT_RUNS``)."""
    spans = []
    for match in _JWT_RUNS.finditer(text):
        head = match.group(1)
        if (start := _JWT_START.search(head)) is None:
            continue
        begin = start.end() - 3  # the token's "eyJ"
        if len(head) - begin >= 11:  # "eyJ" and 8 more
            spans.append((match.start(1) + begin, match.end(3)))
    return spans


# The same shapes, whole, by the service they are another's key of: a KIE_API_KEY shaped like one is refused before
# anything is sent with it (``config``), as sending it would hand that service's secret to KIE. KIE's own keys are
# 32 hex digits (``KEY_SHAPE``), which none of these prefixes (each with a letter no hex digit is) can begin.
_OTHER_SERVICES = tuple(
    (service, re.compile(shape))
    for service, shape in (
        ("a GitHub token", _GITHUB),
        ("a Slack token", _SLACK),
        ("a Google API key", _GOOGLE),
        ("a Hugging Face token", _HUGGING_FACE),
        ("an OpenAI-style key (sk-...: OpenAI, Anthropic and other AI services)", r"sk-[A-Za-z0-9_-]{16,}"),
        ("another service's secret key (Stripe's sk_... or rk_..., ElevenLabs' sk_...)", _SECRET_KEY),
    )
)
_TOKEN_STARTS = (
    "eyj",
    "sk-",
    "sk_",
    "rk-",
    "rk_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "aiza",
    "hf_",
)
# Any word one of the credential patterns needs, in casefold(): a text holding none is looked at by no pattern.
_ANY_WORD = re.compile(
    "|".join(re.escape(word) for word in sorted({w for *_, ws in _PATTERNS for w in ws} | {"bearer", *_TOKEN_STARTS}))
)
# KIE's API keys: 32 hex digits, letters and digits both (a run up to 256 long is read as one). The one shape of a key
# in text that holds no registered secret yet (a refused command line, a folder setting): a long run of another shape
# ("Marketing_Campaign_2025", "ClientProjects2025SummerCampaignFinal") is a name, which, registered as a secret, would
# be redacted from everything said after. Other credentials are known by their shapes above, or by their names.
KEY_SHAPE = re.compile(r"(?=[0-9A-Fa-f]*[0-9])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{32,256}")
_HEX_RUN = re.compile(r"[0-9A-Fa-f]+")


def other_service(value: str) -> str | None:
    """Which other service's key or token ``value`` is, whole, by its published shape (``_OTHER_SERVICES``), in
    words ("a GitHub token"); None for anything else, a KIE key, an unusual test key or a word included."""
    return next((service for service, shape in _OTHER_SERVICES if shape.fullmatch(value)), None)


def register_secret(value: str | None) -> None:
    """Redact ``value`` from now on, process-wide, in any letter case, URL-encoded, and base64-encoded (see
    ``_encoded_forms``), and any run of ``FRAGMENT`` or more of its characters in any letter case, with or without
    a dash, a space or a line break between them (``_piece_spans``). Idempotent.

    Also installs the log-record factory, so a process that holds a key never logs it.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    install_log_redaction(handlers=False)
    with _registry.lock:
        _registry.values.setdefault(value)
    # Any case: an upstream may echo the key upper-cased (KIE's keys are hex: the case carries no meaning).
    # Exact case: base64, where the case is the content (a case-folded match would only match more, never less).
    variants = {_Form(form, True) for form in _typed_forms(value)}
    variants |= {_Form(form, False) for form in _encoded_forms(value) if len(form) >= MIN_SECRET_LENGTH}
    variants |= {_Form(form, False, True) for form in _wrapped_forms(value) if len(form) >= MIN_SECRET_LENGTH}
    with _registry.lock:
        if variants <= _registry.secrets:
            return
        _registry.secrets.update(variants)
        _registry.pattern = re.compile(_alternation(_registry.secrets))
        folded = value.lower()
        pieces = _registry.pieces.setdefault(frozenset(folded) & frozenset(_SEPARATORS), {})
        for start in range(len(folded) - FRAGMENT + 1):
            pieces.setdefault(folded[start : start + FRAGMENT], (folded, start))
        every = [piece for kept in _registry.pieces.values() for piece in kept]
        if every:  # a separator only ever between them (in _BETWEEN): as a letter too, a row of them backtracked
            letters = "".join(sorted({ch for piece in every for ch in piece + piece.upper()} - set(_SEPARATORS)))
            made_of = f"[{re.escape(letters)}]"  # re.escape: "]", "^" and "\\" are literal in the set too
            _registry.letters = letters
            _registry.runs = re.compile(f"{made_of}(?:{_BETWEEN}{made_of}){{{FRAGMENT - 1},}}")


def key_shaped_parts(texts: Iterable[str]) -> list[str]:
    """Every run of hex digits in ``texts`` shaped like KIE's key (``KEY_SHAPE``), each once: a whole text, or inside
    a longer one (``Authorization: Bearer <key>``, ``kie_<key>``, ``{"KIE_API_KEY":"<key>"}``). What a caller
    registers (``register_secret``) before it repeats any of ``texts``, which no registered secret covers yet."""
    runs = (run for text in texts for run in _HEX_RUN.findall(text))
    return list(dict.fromkeys(run for run in runs if KEY_SHAPE.fullmatch(run)))


def holds_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret: anything ``redact_secrets`` would redact of it (any form, a run of
    ``FRAGMENT`` or more of its characters, the key in dashed groups, written in look-alike or invisible characters),
    in ``text`` as it is or percent-decoded once (as the host a link goes to reads ``%2D`` between two halves); not
    merely something shaped like a credential. What cannot be redacted (a link KIE or kie-mcp fetches, a file served
    as it is) is checked with this: two links, each with half the key, hand over all of it."""
    if _registry.pattern is None:
        return False
    forms = {text, unquote(text)} if "%" in text else {text}
    return any(_secret_spans(seen) for form in forms for seen in {form, _unmasked(form) or form})


SCAN_CHUNK = 1 << 16  # bytes searched between two chances for other threads to run (about a millisecond)
_SCAN_OVERLAP = 4096  # bytes each chunk repeats of the one before: longer than any form of a secret


def bytes_hold_secret(content: bytes) -> bool:
    """Whether bytes served as they are (they cannot be redacted) hold a registered secret: read as single bytes, and
    as UTF-16 either way round (every other byte, from either start: a key's ASCII characters in UTF-16 LE or BE at
    either alignment); a run of ``FRAGMENT`` or more of its characters (the key in dashed groups, or cut in two) too.
    Searched as bytes, a chunk at a time, the GIL let go between chunks: a 50 MB video read as text three times took
    seconds and held up every other request of the server while it was read."""
    pattern = _registry.pattern
    if pattern is None:
        return False
    try:
        found, loose = _bytes_pattern(pattern), _bytes_runs(pattern)
    except UnicodeEncodeError:  # a secret beyond Latin-1 (never a KIE key): read as text, as slowly as that is
        return any(holds_secret(content.decode(codec, "ignore")) for codec in ("latin-1", "utf-16-le", "utf-16-be"))
    for number, view in enumerate((content, content[0::2], content[1::2])):
        for start in range(0, max(len(view), 1), SCAN_CHUNK):
            begin, end = max(start - _SCAN_OVERLAP, 0), start + SCAN_CHUNK
            if found.search(view, begin, end) is not None:
                return True
            if number == 0 and loose is not None and _runs_hold_piece(content[begin:end], loose):
                return True  # runs as single bytes or UTF-16 alike, in one pass over the bytes as they are
            time.sleep(0)  # let the event loop's thread run: a long file is read in a worker thread
    return False


class _LooseRuns(NamedTuple):
    """How bytes are searched fast for a run of a secret's characters (``_Registry.runs``): first whether a piece of
    a secret stands in their letters alone (``_may_hold_piece``: nearly always not), and only where one may, for the
    runs themselves, each then read as text is (``_runs_hold_piece``)."""

    others: bytes  # every byte that is none of the secrets' characters, dropped
    lower: bytes  # a table: each byte in lower case, as ``_lower`` has it (one character for one)
    escapes: tuple[bytes, ...]  # JSON's ``\\n`` (and r, t): dropped first where a letter is one of "\\nrt"
    pieces: tuple[bytes, ...]  # each piece of a secret (``_Registry.pieces``), lower case, without the separators
    anchors: tuple[bytes, ...]  # a few parts of those pieces, one in every piece: looked for first
    # A table: 1 for a byte a run may hold (one of the secrets' characters, something that may stand between them,
    # or a zero byte: UTF-16's other half of an ASCII character), 0 for any other. ``FRAGMENT`` ones in a row are
    # found by a plain search, many times faster than a pattern.
    marks: bytes


@functools.lru_cache(maxsize=4)
def _bytes_runs(pattern: re.Pattern[str]) -> _LooseRuns | None:
    """The fast search in bytes for what ``_Registry.runs`` finds in text, for the secrets registered when the
    pattern of their forms was ``pattern`` (it changes with each secret; the runs pattern may not, as another key of
    hex digits has the same letters); None when there is none. ``UnicodeEncodeError`` for a secret beyond Latin-1."""
    with _registry.lock:  # what register_secret is changing is read once it is done
        if _registry.runs is None:
            return None
        letters = set(_registry.letters.encode("latin-1"))
        every = [piece for kept in _registry.pieces.values() for piece in kept]
    pieces = list(dict.fromkeys(piece.translate(_NO_SEPARATORS).encode("latin-1") for piece in every))
    anchors: list[bytes] = []
    for piece in pieces:  # in their secret's order: a piece's last 8 characters are in the 8 pieces after it too
        if not any(anchor in piece for anchor in anchors):
            anchors.append(piece[-FRAGMENT // 2 :])
    kept = letters | {byte for byte in range(256) if _GAP_CHAR.fullmatch(chr(byte))} | set(b"\\nrt") | {0}
    return _LooseRuns(
        others=bytes(sorted(set(range(256)) - letters)),
        lower=bytes(ord(low) if ord(low := _lower(chr(byte))) < 256 else byte for byte in range(256)),
        escapes=tuple(b"\\" + bytes([ch]) for ch in b"nrt") if letters & set(b"\\nrt") else (),
        pieces=tuple(pieces),
        anchors=tuple(anchors),
        marks=bytes(int(byte in kept) for byte in range(256)),
    )


_NO_SEPARATORS = str.maketrans("", "", _SEPARATORS)
_A_RUN = b"\x01" * FRAGMENT  # what ``_LooseRuns.marks`` makes of ``FRAGMENT`` bytes a run may hold


def _may_hold_piece(raw: bytes, loose: _LooseRuns) -> bool:
    """Whether a piece of a secret stands in ``raw``'s letters alone, lower case, everything else dropped: a run
    holding a piece (read as single bytes, or as UTF-16 of ASCII) has it there too. Cheap (a few milliseconds a
    megabyte), and rarely so by chance: a hash or a hex blob made of a key's characters has no 16 of them in its
    order."""
    for escape in loose.escapes:
        raw = raw.replace(escape, b"")
    letters = raw.translate(loose.lower, loose.others)
    return any(anchor in letters for anchor in loose.anchors) and any(piece in letters for piece in loose.pieces)


def _runs_hold_piece(window: bytes, loose: _LooseRuns) -> bool:
    """Whether a run in ``window`` holds a piece of a secret, as ``_piece_spans`` finds one in text: each run read as
    single bytes, and as UTF-16 either way round when a zero byte is among them."""
    if not _may_hold_piece(window, loose):
        return False
    marked = window.translate(loose.marks)
    at = marked.find(_A_RUN)
    while at >= 0:
        end = marked.find(0, at)
        end = len(marked) if end < 0 else end
        found = window[at:end]
        if _may_hold_piece(found, loose) and (runs := _registry.runs) is not None:
            views = (found, found[0::2], found[1::2]) if b"\x00" in found else (found,)
            if any(_piece_spans(match.group(0)) for view in views for match in runs.finditer(view.decode("latin-1"))):
                return True
        at = marked.find(_A_RUN, end)
    return False


class SecretWatch:
    """``bytes_hold_secret`` over a stream, one piece at a time (a download as it is written): where a file keeps its
    metadata, its first ``head`` bytes and its last ``tail`` bytes (a picture's comment, EXIF, XMP or text chunks;
    a video's tags, at the start or the end of an MP4), searched with the end of the piece before, so a secret split
    between two pieces is found. The middle of a large file is its pixels or frames: searching all of it (15 to 20
    MB/s) made a 300 MB result seven times slower to save. ``found`` once any held one; ``finish`` searches the tail
    once the stream has ended."""

    def __init__(self, head: int = 4 << 20, tail: int = 2 << 20) -> None:
        self.found = False
        self._head, self._keep = head, tail + 2 * _SCAN_OVERLAP  # even: UTF-16's two alignments both stay whole
        self._seen = 0
        self._tail = bytearray()  # the end of what was searched, or (past the head) the last bytes not yet searched

    def feed(self, piece: bytes | bytearray) -> None:
        if self.found or not piece:
            return
        past_head = self._seen >= self._head
        self._seen += len(piece)
        self._tail += piece
        if past_head:  # only kept: the tail is searched at the end
            del self._tail[: -self._keep]
            return
        self.found = bytes_hold_secret(self._tail)
        del self._tail[: -2 * _SCAN_OVERLAP]

    def finish(self) -> None:
        """Search what is kept of the end of a stream that ran past the head."""
        if not self.found and self._seen > self._head and self._tail:
            self.found = bytes_hold_secret(self._tail)
        self._tail = bytearray()


@functools.lru_cache(maxsize=4)
def _bytes_pattern(pattern: re.Pattern[str]) -> re.Pattern[bytes]:
    """The registered secrets' pattern, to search bytes (each byte a character, as Latin-1 reads them)."""
    return re.compile(pattern.pattern.encode("latin-1"), pattern.flags & ~re.UNICODE)


def secrets_version() -> object:
    """Changes whenever a secret is registered: what was redacted before it may show that secret, so anything kept
    across calls (the gallery's scanned folders) is made again."""
    return _registry.pattern


def _typed_forms(value: str) -> set[str]:
    """The forms of ``value`` matched in any letter case: as it is; URL-encoded as a path keeps ``/``, as a query
    value encodes it, and as a form writes a space (``+``); every byte percent-encoded (``%30%31...``, hex in any
    case); HTML-escaped; and its bytes in hex (``3031...``). For a key of letters and digits most are the key."""
    raw = value.encode("utf-8")
    return {
        value,
        quote(value, safe=""),
        quote(value, safe="/"),
        quote_plus(value),
        quote_plus(value, safe="/"),
        "".join(f"%{byte:02X}" for byte in raw),
        html.escape(value),
        html.escape(value, quote=False),
        raw.hex(),
    }


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
    forms |= _wrapped_forms(value)
    return forms | {form.translate(_URLSAFE) for form in forms}  # base64url: - and _ for + and /


def _wrapped_forms(value: str) -> set[str]:
    """The key inside a longer base64 text, at offset 0, 1 or 2 modulo 3: only the characters whose 6 bits all
    come from the key. A long text may be wrapped over lines (MIME breaks a line every 76 characters), so these
    are matched with a line break allowed anywhere between their characters (``_WRAPPED``)."""
    raw, forms = value.encode("utf-8"), set()
    for lead in range(3):
        encoded = base64.b64encode(bytes(lead) + raw).decode("ascii")
        first = -(-lead * 8 // 6)  # the first character with no bit of what comes before
        end = (lead + len(raw)) * 8 // 6  # past the last character with no bit of what comes after
        forms.add(encoded[first:end])
    return forms


_URLSAFE = str.maketrans("+/", "-_")

_Trie = dict[str, "_Trie"]


class _Form(NamedTuple):
    """One form of a secret as matched: its text, whether in any letter case (not base64, where the case is the
    content), and whether a line break may stand anywhere between its characters (base64 a MIME text wraps)."""

    text: str
    any_case: bool
    wrapped: bool = False


def _alternation(forms: Iterable[_Form]) -> str:
    """One pattern for every ``(text, any_case)`` form, written as a trie (``(?:M2Y5(?:YTBj...|...)``): a regex
    alternation of literals tries each of them at every position of the text, the trie only the few that start
    with the text's next characters, so redaction costs about as much with twenty forms of a key as with two. At a
    position the longest form wins (a secret containing another is taken whole)."""
    root: _Trie = {}
    for text, folded, wrapped in sorted(forms, key=lambda form: len(form.text), reverse=True):  # longest first
        node = root
        for depth, ch in enumerate(text):
            node = node.setdefault((_WRAPPED if wrapped and depth else "") + _char(ch, folded), {})
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


def _piece_spans(run: str) -> list[tuple[int, int]]:
    """Where in ``run`` (a run of a secret's characters) the stretches of ``FRAGMENT`` or more of them that are a piece
    of a secret stand (in order, any letter case, whatever stands between them), none overlapping; the rest of the run
    (a task id, a hash made of the same letters) is no secret."""
    spans: list[tuple[int, int]] = []
    for kept, pieces in list(_registry.pieces.items()):
        if pieces:
            spans += _cut(run, pieces, kept)
    return _merged(spans)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` in order, those that touch or overlap made one."""
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def _cut(run: str, pieces: dict[str, tuple[str, int]], kept: frozenset[str]) -> list[tuple[int, int]]:
    """Where in ``run`` the stretches of ``pieces`` (of secrets holding the separators ``kept``) stand."""
    between = set(_SEPARATORS) - kept
    # A broken line as JSON shows it (``\n``): both of the escape's characters stand between.
    escaped = {at for m in _ESCAPED_BREAK.finditer(run) for at in range(*m.span())} if "\\" in run else set()
    if run.isascii():  # a task id, a hash, a word after it: the common case, looked at without the mapping below
        plain_run = _ESCAPED_BREAK.sub("", run) if escaped else run
        folded = "".join(plain_run.lower().split()).translate({ord(ch): None for ch in between})
        if not _holds_a_piece(folded, pieces):
            return []
    letters = [(at, _lower(ch)) for at, ch in enumerate(run) if not (ch.isspace() or ch in between or at in escaped)]
    folded = "".join(ch for _, ch in letters)
    if not _holds_a_piece(folded, pieces):
        return []
    cuts: list[tuple[int, int]] = []
    at = 0
    while at <= len(folded) - FRAGMENT:
        found = pieces.get(folded[at : at + FRAGMENT])
        if found is None:
            at += 1
            continue
        secret, start = found
        end = at + FRAGMENT
        while end < len(folded) and start + end - at < len(secret) and folded[end] == secret[start + end - at]:
            end += 1  # the piece goes on as the secret does
        cuts.append((letters[at][0], letters[end - 1][0] + 1))
        at = end
    return cuts


def _holds_a_piece(folded: str, pieces: dict[str, tuple[str, int]]) -> bool:
    """Whether ``folded`` holds one of ``pieces`` (each ``FRAGMENT`` long): each piece looked for in it where they
    are fewer than the places one could start (a long run: a hex blob in a file's metadata), else each place."""
    places = len(folded) - FRAGMENT + 1
    if places > len(pieces):
        return any(piece in folded for piece in pieces)
    return any(folded[at : at + FRAGMENT] in pieces for at in range(places))


def _lower(ch: str) -> str:
    """``ch`` in lower case, one character for one (a few letters lower to two, which would shift the cuts)."""
    lowered = ch.lower()
    return lowered if len(lowered) == 1 else ch


def _bearer(match: re.Match[str]) -> str:
    token = match.group(3)
    if len(token) >= 20 or any(c.isdigit() for c in token):
        return f"{match.group(1)}{match.group(2)}{REDACTED}"
    return match.group(0)


def _folded(text: str) -> str:
    """``text`` as the credential patterns' (?i) sees it: casefold() also folds the Kelvin sign and the long s,
    and the dotless i is the one letter (?i) takes for "i" that casefold() keeps; the dotted capital I (which (?i)
    also takes for "i") folds to "i" and a combining dot, read here as "i"."""
    return text.casefold().replace("ı", "i").replace("i\u0307", "i")


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped value replaced by ``[redacted]``.

    Both are found in the text as given and the places merged before anything is replaced: a secret replaced first
    cut a credential around it in two (a GitHub token holding 16 of the key's characters), which its pattern then no
    longer matched, and the token's ends stayed; a credential replaced first could leave part of a disguised key."""
    if not text:
        return text
    secrets = _registered_spans(text)
    spans = secrets + _credential_spans(text)
    if secrets:  # and with the secrets taken out: a credential right after the key ends where the key does
        spans += _credential_spans(_masked(text, secrets))
    return _replaced(text, spans)


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each of ``spans`` filled with NUL characters, its length and every other place kept: a
    pattern's boundary (``\b``, "no token character before") sees one there, as it saw ``[redacted]``, and a run
    of a secret's characters stops there."""
    kept = list(text)
    for begin, end in spans:
        kept[begin:end] = "\0" * (end - begin)
    return "".join(kept)


def _credential_spans(text: str, *, every: bool = False) -> list[tuple[int, int]]:
    """Where in ``text`` credential-shaped values stand. Each pattern runs only on a text holding one of its words
    (as the patterns' (?i) reads them), unless ``every``: scanning every text with each took about 0.2 ms a
    kilobyte, for every log line and journal write."""
    folded = _folded(text)
    if not every and not _ANY_WORD.search(folded):
        return []  # the common case (a status, an id, a prompt), told by one search
    spans: list[tuple[int, int]] = []
    for regex, _, words in _PATTERNS:
        if every or any(word in folded for word in words):
            spans += [match.span("value") for match in regex.finditer(text)]
    if every or "bearer" in folded:
        spans += [match.span(3) for match in _BEARER.finditer(text) if _bearer(match) != match.group(0)]
    if every or any(start in folded for start in _TOKEN_STARTS):
        spans += [match.span() for match in _TOKEN_SHAPES.finditer(text)] + _jwt_spans(text)
    return spans


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each of ``spans`` (merged where they touch) replaced by ``[redacted]``."""
    if not spans:
        return text
    kept: list[str] = []
    at = 0
    for begin, end in _merged(spans):
        kept += [text[at:begin], REDACTED]
        at = end
    kept.append(text[at:])
    return "".join(kept)


# Characters from which a text is redacted in a process of its own (``redact_apart``): CPython's ``re`` holds the GIL
# for the whole of a pass, and one pass over 10 MB of text took 1-2 s, in which no other thread ran.
APART = 1 << 20
APART_SECONDS = 300  # at most, for a child redacting the largest text served (50 MB: about 40 s on a busy machine)


def redact_apart(text: str) -> str:
    """``redact(text)``, for a text of megabytes (a 20 MB SVG holding a photo as base64, served as a reference) worked
    out in a child process (``_redact_child``), so that the server's event loop and other threads run meanwhile: in a
    worker thread of this process they did not, for seconds at a time. The child gets the secrets registered here on
    its stdin, never on its command line or in its environment. A shorter text, or one whose child could not run or
    failed, is redacted here. Blocks while the child works: call it in a worker thread."""
    if len(text) < APART or not sys.executable:
        return redact(text)
    with _registry.lock:
        secrets = list(_registry.values)
    given = json.dumps(secrets).encode("ascii") + b"\n" + text.encode("utf-8", "surrogatepass")
    path = os.pathsep.join(entry or os.curdir for entry in sys.path)  # this very kie_mcp, however it was found
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from kie_mcp.redact import _redact_child; _redact_child()"],
            input=given,
            capture_output=True,
            timeout=APART_SECONDS,
            check=False,
            env={**os.environ, "PYTHONPATH": path},
        )
    except (OSError, subprocess.SubprocessError):
        return redact(text)
    if done.returncode != 0:
        return redact(text)
    return done.stdout.decode("utf-8", "surrogatepass")


def _redact_child() -> None:
    """``redact_apart``'s child: the secrets (a JSON list, one line) and then the text on stdin; the text redacted, as
    this process redacts it once they are registered in the same order, on stdout."""
    head, _, text = sys.stdin.buffer.read().partition(b"\n")
    for secret in json.loads(head):
        register_secret(secret)
    sys.stdout.buffer.write(redact(text.decode("utf-8", "surrogatepass")).encode("utf-8", "surrogatepass"))


def redact_secrets(text: str) -> str:
    """``text`` with every registered secret (in any of its forms, or a run of its characters) replaced, and nothing
    else: for the user's own content handed back to be used, where a signed link's ``access_token=...`` or a
    prompt's "password: ..." must come back as given (a workflow's plan)."""
    if not text:
        return text
    return _replaced(text, _registered_spans(text))


def _registered_spans(text: str) -> list[tuple[int, int]]:
    """Where in ``text`` as given registered secrets stand: in any of their forms or a run of their characters
    (``_secret_spans``), and written in look-alike characters (fullwidth ``０１２``, what NFKC makes plain) or with
    invisible format characters between their characters (a zero width space, a soft hyphen: Unicode's Cf). Those
    are searched for in the text as NFKC makes it with those characters dropped, and each found is mapped back to
    the characters it came from: no other character is touched (a Japanese prompt keeps its fullwidth
    punctuation)."""
    if _registry.pattern is None and _registry.runs is None:
        return []
    spans = _secret_spans(text)
    seen = _unmasked(text) if _registry.pattern is not None else None
    if seen is None or not _secret_spans(seen):
        return spans
    hidden = _hidden(text)
    shown: list[str] = []
    came_from: list[int] = []  # for each character of ``shown``, the one of ``text`` it was made from
    for at, ch in enumerate(text):
        if ch in hidden:
            continue
        made = ch if ch.isascii() else unicodedata.normalize("NFKC", ch)
        shown.append(made)
        came_from += [at] * len(made)
    spans += [(came_from[begin], came_from[end - 1] + 1) for begin, end in _secret_spans("".join(shown))]
    return spans


def _unmasked(text: str) -> str | None:
    """``text`` as NFKC makes it with the invisible characters dropped (what a disguised secret is found in), or
    None when that is ``text`` itself."""
    if text.isascii():
        return None
    hidden = _hidden(text)
    if not hidden and unicodedata.is_normalized("NFKC", text):
        return None
    return unicodedata.normalize("NFKC", "".join(ch for ch in text if ch not in hidden))


def _hidden(text: str) -> set[str]:
    """The invisible characters ``text`` holds (``_invisible``)."""
    return {ch for ch in set(text) if not ch.isascii() and _invisible(ch)}


# Default-ignorable characters beside Unicode's format ones (Cf): a combining grapheme joiner, Hangul fillers,
# Mongolian and other variation selectors. None shows, so any of them between a key's characters hides nothing.
_IGNORABLE = re.compile("[\u034f\u115f\u1160\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]")


def _invisible(ch: str) -> bool:
    """Whether ``ch`` shows nothing where it stands (a format character, or another default-ignorable one)."""
    return unicodedata.category(ch) == "Cf" or _IGNORABLE.match(ch) is not None


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where in ``text`` registered secrets stand (any form, or a run of their characters), merged, in order."""
    pattern, runs = _registry.pattern, _registry.runs
    spans = [match.span() for match in pattern.finditer(text)] if pattern is not None else []
    looked = _masked(text, spans) if spans and runs is not None else text  # a whole form found is no run to cut
    for match in runs.finditer(looked) if runs is not None else ():
        spans += [(match.start() + begin, match.start() + end) for begin, end in _piece_spans(match.group(0))]
    return _merged(spans)


_SENSITIVE_KEY = re.compile(r"(?i)^(?:[A-Za-z0-9]+[_-])*(?:proxy-)?(?:authorization|" + _SENSITIVE_NAME + r")$")


def redact_value(value: Any, *, secrets_only: bool = False) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings) with every string redacted; the value of
    a key named like a credential (``authorization``, ``apiKey``, ``password``, ...) is replaced whole. With
    ``secrets_only``, only the registered secrets go (``redact_secrets``), and keys are not judged by their name."""
    if isinstance(value, str):
        return redact_secrets(value) if secrets_only else redact(value)
    if isinstance(value, dict):
        cleaned: dict[Any, Any] = {}
        for key, item in value.items():
            named = not secrets_only and isinstance(key, str) and _SENSITIVE_KEY.match(key)
            if named and isinstance(item, str) and item:
                cleaned[redact(key)] = REDACTED
            else:
                name = redact_value(key, secrets_only=secrets_only) if isinstance(key, str) else key
                cleaned[name] = redact_value(item, secrets_only=secrets_only)
        return cleaned
    if isinstance(value, list):
        return [redact_value(item, secrets_only=secrets_only) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_value(item, secrets_only=secrets_only) for item in value)
    return value


def hides_credentials(value: Any) -> bool:
    """Whether ``redact_value`` hides more of ``value`` than the registered secrets: text shaped like a credential
    (a token, a password), which a request sends as written (only the key is taken out of one), though every answer
    shows it as ``[redacted]``."""
    return redact_value(value) != redact_value(value, secrets_only=True)


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
