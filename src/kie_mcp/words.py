"""How values and times read for people: one rendering for every error, quote, confirmation, record and sidecar.

Agents send JSON, so a value is shown as JSON shows it (``true``, not Python's ``True``; ``null``, not ``None``),
cut short so an error never echoes a megabyte back, and with what shows nothing or turns the text around it (a
right-to-left override in a file name) escaped as JSON writes it. Every timestamp anyone sees is ISO 8601 in UTC
with a ``Z``, to the second (``2026-12-02T20:38:03Z``); the journal may keep epoch seconds inside.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kie_mcp.redact import redact_secrets

SHOWN_LIMIT = 60  # characters of a value an error repeats back


def plain(value: Any, *, quoted: bool = True, limit: int = SHOWN_LIMIT) -> str:
    """``value`` as JSON writes it (text in double quotes unless ``quoted`` is False), at most ``limit`` characters.

    Numbers read as people write them (``5``, not ``5.0``); NaN and infinities, which JSON cannot carry, as
    ``NaN``, ``Infinity`` and ``-Infinity``. A text cut short says how long it is, in its own characters (not
    counting the quotes or escapes added to show it). The API key is redacted before the text is cut: cut first,
    a key's encoding (its base64) would be shown in part, too short a piece to be known for it. A character that
    would change how the text around it reads is shown escaped (``_unseen_escaped``), quoted or not."""
    text, whole = uncut_redacted(_render(value, quoted), limit)
    text = _unseen_escaped(text, keep="" if quoted else "\n\t")
    if whole and len(text) <= limit:
        return text
    length = len(value) if isinstance(value, str) else len(text)
    return f"{text[: cut_point(text, limit - 3)]}... ({length} characters)"


def shortened(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: cut short with "..." where it is longer, never inside a character
    as a reader sees it (see ``cut_point``), with the API key redacted before it is cut. Its characters are kept as
    they are: a record's prompt is data an agent may send again (a soft hyphen written ``\u00ad`` would reach a
    model as six letters); where it is shown in words, ``plain`` or ``unseen_escaped`` escapes what would mislead."""
    text, whole = uncut_redacted(text, limit)
    return text if whole and len(text) <= limit else text[: cut_point(text, limit - 3)] + "..."


def quoted_excerpt(text: str, limit: int) -> str:
    """``text`` quoted in a sentence a person reads (the confirmation's prompt), on one line: in double quotes, the
    closing one there also when it is cut (``"Close-up: the bottle..." (134 characters)``), and everything else
    ``plain`` escapes escaped, line breaks and tabs too (``\\n``: a host showing it as markdown would make a line of it
    a heading of its own). At most ``limit`` of its characters, cut where ``cut_point`` allows, before the escapes
    (never half of one), with the API key redacted first.

    Nothing in it can close the quote: a prompt that could would go on in kie-mcp's voice (``a cat". Cost correction:
    2 credits...``), read as the form's own words beside the true price. Its own straight quotes are shown as
    typographic ones (``says: “Try it.”``), so the only ``"`` in the excerpt are the two around it (not JSON's
    ``\\"``: a host showing the form as markdown takes that backslash away), and a character drawn as a straight
    double quote (``_QUOTE_LIKE``) is escaped as JSON writes it."""
    shown, whole = uncut_redacted(text, limit)
    shown = _inner_quotes(shown)
    if not (whole and len(shown) <= limit):
        return f'"{_shown_inside_quotes(shown[: cut_point(shown, limit - 3)])}..." ({len(text)} characters)'
    return f'"{_shown_inside_quotes(shown)}"'


# A straight double quote that opens a quotation: at the start, after a space or an opening bracket or dash.
_OPENING_QUOTE = re.compile(r'(?:^|(?<=[\s(\[{<\u2014\u2013-]))"')
# Characters drawn as a straight double quote (in a font of their own, or in the fallback font a host draws them in):
# the modifier letter double prime, double acute accent and double apostrophe, the Hebrew gershayim, the double
# high-reversed-9 quotation mark, the double and reversed double primes, the ditto mark and the fullwidth quotation
# mark. Written inside a quote, each would read as the quote closing. Escaped, a Hebrew prompt's gershayim reads
# ``\u05f4``: a person never misreading where the prompt ends matters more than its typography.
_QUOTE_LIKE = re.compile("[\u02ba\u02dd\u02ee\u05f4\u201f\u2033\u2036\u3003\uff02]")


def _inner_quotes(text: str) -> str:
    """``text`` with its straight double quotes as typographic ones, one for one: “ where a quotation opens, ”
    elsewhere."""
    if '"' not in text:
        return text
    return _OPENING_QUOTE.sub("\u201c", text).replace('"', "\u201d")


def _shown_inside_quotes(text: str) -> str:
    """``text`` as ``quoted_excerpt`` shows it between its quotes: ``_unseen_escaped``, and what is drawn as a straight
    double quote escaped too."""
    return _QUOTE_LIKE.sub(lambda match: f"\\u{ord(match.group(0)):04x}", _unseen_escaped(text))


def unseen_escaped(text: str) -> str:
    """``text`` as a person is shown it in a sentence: what shows nothing or turns the text around it escaped
    (``_unseen_escaped``), line breaks and tabs kept."""
    return _unseen_escaped(text, keep="\n\t")


_REDACTED_PAST = 1024  # characters past a cut searched for a key that starts before it: longer than any key's forms


def uncut_redacted(text: str, limit: int, redactor: Callable[[str], str] = redact_secrets) -> tuple[str, bool]:
    """``text`` with the API key redacted (``redactor``: ``redact_secrets``, or ``redact`` for bearer tokens too) in
    all that can be shown of it: its first ``limit`` characters and enough after them for every form of a key
    starting before the cut to be found whole; and whether that is all of it (else it is to be cut). A megabyte of
    text is never searched to show sixty characters of it.

    Redaction shortens what it finds (a 32-character key becomes ``[redacted]``), so the window grows until what is
    left of it after redaction still reaches ``_REDACTED_PAST`` past the cut: a text repeating the key, then writing
    it in a form cut at the window's end (its hex, unfound there), would otherwise show that piece."""
    window = limit + _REDACTED_PAST
    while True:
        if len(text) <= window:
            return redactor(text), True
        shown = redactor(text[:window])
        if len(shown) >= limit + _REDACTED_PAST:
            return shown, False
        window *= 2


# What shows nothing or changes how the text around it reads: controls (Unicode's Cc: the terminal's escape, C1's
# CSI), format characters (Cf: the bidirectional overrides, embeddings and isolates, zero width spaces, tag letters)
# and the line and paragraph separators (Zl, Zp), as Unicode 14 to 16 list them (a test holds this to the running
# Python's tables). Not the format characters text is written with, which stay as they are: the zero width joiner
# and non-joiner (an emoji such as 👩‍💻, Persian's می‌خواهم, Indic conjuncts), the signs Arabic, Syriac and Kaithi
# write before a number (U+0600 to U+0605, U+06DD, U+070F, U+0890, U+0891, U+08E2, U+110BD, U+110CD), which show,
# and the soft hyphen and the left-to-right, right-to-left and Arabic letter marks (U+00AD, U+200E, U+200F, U+061C),
# which text copied from the web or typed beside Hebrew and Arabic holds, and which move no letter.
_UNSEEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u180e\u200b\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\ufff9-\ufffb\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
_UNSEEN_KINDS = ("Cc", "Cf", "Zl", "Zp")
# A subdivision flag (🏴 England): a black flag, tag letters, a cancel tag, shown as it is. Tag letters anywhere
# else are invisible text (words hidden from a reader, not from a model).
_TAG_FLAG = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")


def _unseen_escaped(text: str, keep: str = "") -> str:
    """``text`` with every character that shows nothing or changes how the text around it reads (``_UNSEEN``),
    but those in ``keep``, written as JSON escapes it (``\\u202e``). A right-to-left override turns what follows
    it around: ``invoice\\u202egnp.exe`` shows as ``invoiceexe.png``. Right-to-left letters (Arabic, Hebrew) are
    letters, shown as they are."""
    if text.isprintable():  # the common case, at C speed (every character shows, or is a plain space)
        return text
    flags = [m.span() for m in _TAG_FLAG.finditer(text)] if "\U0001f3f4" in text else []
    starts = [start for start, _ in flags]  # in order, none overlapping: the one a match may be in, by bisection

    def in_flag(at: int) -> bool:
        index = bisect.bisect_right(starts, at) - 1
        return index >= 0 and at < flags[index][1]

    def escaped(match: re.Match[str]) -> str:
        ch = match.group(0)
        if ch in keep or unicodedata.category(ch) not in _UNSEEN_KINDS or in_flag(match.start()):
            return ch  # kept; or not (yet) assigned in this Python's Unicode
        return json.dumps(ch)[1:-1]

    return _UNSEEN.sub(escaped, text)


_JOINERS = {"\u200d", "\u034f"}  # zero width joiner, combining grapheme joiner
_VIRAMA = 9  # the canonical combining class of a virama (Devanagari ्): it joins the letter after it to its own


def cut_point(text: str, at: int) -> int:
    """Where to cut ``text`` at or before ``at`` so that no character as a reader sees it is split: not before a
    combining mark (Hindi's vowel signs, Arabic's harakat, an accent typed on a Mac), a variation selector or a skin
    tone; not after a virama; not on either side of a zero width joiner (an emoji such as 👩‍💻); not between the two
    halves of a flag (🇯🇵). Text that is all one long cluster (a letter under 300 marks) is cut where asked: half
    of a cluster reads better than nothing."""
    at = max(0, min(at, len(text)))
    cut = at
    while 0 < cut < len(text) and _splits(text, cut) and cut > at - _LONGEST_CLUSTER:
        cut -= 1
    return cut if cut > at - _LONGEST_CLUSTER else at


_LONGEST_CLUSTER = 32  # more characters than any cluster people write (a family emoji is 11, a Hindi conjunct 6)


def _splits(text: str, at: int) -> bool:
    before, after = text[at - 1], text[at]
    if unicodedata.category(after) in ("Mn", "Mc", "Me") or after in _JOINERS or before in _JOINERS:
        return True
    if unicodedata.combining(before) == _VIRAMA or "\U0001f3fb" <= after <= "\U0001f3ff":  # a skin tone modifier
        return True
    if "\U000e0020" <= after <= "\U000e007f":  # the tag characters of a subdivision flag (🏴 England)
        return True
    return _regional(after) and _regional(before) and _regional_run(text, at) % 2 == 1


def _regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"  # the regional indicator letters two of which make a flag


def _regional_run(text: str, at: int) -> int:
    """How many regional indicators stand just before ``at``: an odd count ends inside a flag."""
    count = 0
    while at - count > 0 and _regional(text[at - count - 1]):
        count += 1
    return count


# A lone surrogate that stands for no byte: not one of the U+DC80-U+DCFF Python's ``surrogateescape`` keeps bytes in.
_SURROGATE_OF_NO_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def readable_text(text: str) -> str:
    """``text`` as people can read it and JSON (UTF-8) can carry it. A name the file system gave in bytes that are not
    its encoding's (a folder named in Latin-1, ``proj_\\xe9t\\xe9``, on a UTF-8 system; any name beyond ASCII under
    the C locale with UTF-8 mode off) is text with lone surrogates in it (Python's ``surrogateescape``), which no
    UTF-8 writer takes: those bytes are read as UTF-8 (as a file manager shows the name), and a byte that is not UTF-8
    is written ``\\xe9``; any other lone surrogate becomes U+FFFD. Text without surrogates comes back as it is."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = _SURROGATE_OF_NO_BYTE.sub("\ufffd", text).encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def path_text(path: Any) -> str:
    """A path as a message names it: ``readable_text`` of it, so a folder named in bytes that are not UTF-8 is shown
    with those bytes escaped, never a text no answer can carry."""
    return readable_text(str(path))


# What a follow-up (continue_video) makes of the task it continues, by its operation (``followups.OPERATIONS``):
# one wording wherever a follow-up is named (list_tasks, the gallery, KIE's answers about one).
MADE_AS = {"extend": "extension", "hd": "1080p version", "4k": "4K version", "upscale": "upscaled copy"}


def made_of(operation: str | None, task_id: str) -> str:
    """What a follow-up is, e.g. ``1080p version of task 3f2a…``; ``follow-up of task …`` for an operation this
    version does not know (a newer one's journal)."""
    return f"{MADE_AS.get(operation or '', 'follow-up')} of task {task_id}"


LISTED_MOST = 40  # values a message names before "and N more" (a live enum of 20,000 read as 300 KB)


def listed(values: Any, *, quoted: bool = False) -> str:
    """Allowed values for a message: ``std, pro, 4K``; the first ``LISTED_MOST`` of more, and how many more."""
    values = list(values)
    shown = ", ".join(plain(v, quoted=quoted) for v in values[:LISTED_MOST])
    return shown if len(values) <= LISTED_MOST else f"{shown} and {len(values) - LISTED_MOST} more"


def timestamp(moment: float | datetime | None = None) -> str:
    """ISO 8601 UTC with a ``Z``, to the second: ``moment`` as epoch seconds or a datetime (naive means UTC), or
    now."""
    if moment is None:
        moment = datetime.now(UTC)
    elif not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_text(seconds: float) -> str:
    """A span of time as people say it, rounded down: ``45 s``, ``12 min``, ``3 h``, ``2 days``."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * (2 if unit == "days" else 1):
            return f"{int(seconds // size)} {unit}"
    return f"{max(int(seconds), 0)} s"


def span_words(seconds: float) -> str:
    """A setting's span of time in words, as exact as it was set: ``10 minutes``, ``1 minute``, ``1.5 minutes``; under
    a minute in seconds (``30 seconds``, ``0.3 seconds``), never ``0.005 minutes``."""
    value, unit = (seconds / 60, "minute") if seconds >= 60 else (seconds, "second")
    value = round(value, 2) or round(value, 6)  # a sliver of a second is not said as 0
    return f"{value:g} {unit}{'' if value == 1 else 's'}"


def parse_timestamp(text: str | None) -> datetime | None:
    """A timestamp written by ``timestamp`` (or any ISO 8601 text; without a zone it is read as UTC), else None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def argument_problems(errors: list[Any]) -> list[str]:
    """Pydantic's errors for a tool's arguments (``ValidationError.errors()``), one line each in the tool's own
    words: ``variations: must be at most 10 (got 99)``, ``prompt: required``. Values read as JSON, never as Python."""
    lines = []
    for error in errors:
        where = _where(error.get("loc", ()))
        lines.append(f"{where}: {_problem(error)}" if where else _problem(error))
    return list(dict.fromkeys(lines))  # a union's members may repeat one problem


def _where(loc: Any) -> str:
    """``("captions", 0, "start")`` as ``captions[0].start``; a union member's type name is left out."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and not _TYPE_STEP.match(part):
            text += f".{part}" if text else part
    return text


_TYPE_STEP = re.compile(r"^(?:str|int|float|bool|none|list\[.*\]|dict\[.*\]|literal\[.*\]|function-.*|tagged-union.*)$")
_BOUNDS = {
    "less_than_equal": ("le", "at most"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "greater_than": ("gt", "more than"),
}
_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "string": "text",
    "bool": "true or false",
    "list": "a list",
    "dict": "an object",
    "model": "an object",
    "model_attributes": "an object",
}


def _problem(error: dict[str, Any]) -> str:
    kind, context = str(error.get("type", "")), error.get("ctx") or {}
    got = f" (got {plain(error['input'])})" if "input" in error and kind != "missing" else ""
    if kind == "missing":
        return "required"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {plain(context.get(key))}{got}"
    if kind == "finite_number":
        return f"must be a finite number (not NaN or Infinity){got}"
    if kind in ("string_too_long", "too_long"):
        if kind.startswith("string"):
            return f"must be at most {context.get('max_length')} characters long"
        return f"must have at most {context.get('max_length')} items"
    if kind in ("string_too_short", "too_short"):
        if kind.startswith("string"):
            return f"must be at least {context.get('min_length')} characters long"
        return f"must have at least {context.get('min_length')} items"
    if kind == "int_from_float":  # pydantic: "got a number with a fractional part"
        return f"must be a whole number{got}"
    if kind == "literal_error":
        expected = str(context.get("expected", "")).replace("'", '"')
        return f"must be one of {expected}{got}"
    stem = kind.removesuffix("_type").removesuffix("_parsing")
    if stem in _KINDS and kind != stem:
        return f"must be {_KINDS[stem]}{got}"
    return f"{str(error.get('msg', 'not allowed')).rstrip('.')}{got}"


def _render(value: Any, quoted: bool) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if quoted else value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    except (RecursionError, ValueError):  # too deep, or a container holding itself
        return f"a too deeply nested {'list' if isinstance(value, list | tuple) else type(value).__name__}"
