"""KIE's text made fit to keep: valid Unicode whatever JSON escapes KIE sent, text where text belongs.

JSON may carry a lone UTF-16 surrogate (``"\\ud83d"``, an emoji cut in half); ``json.loads`` accepts it, but no
UTF-8 writer does (the journal, the call log, a tool result), so such text would fail where it is saved, long after
it was read. Each lone surrogate becomes U+FFFD, the replacement character, where KIE's answers are read.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from kie_mcp.redact import REDACTED, redact
from kie_mcp.words import cut_point, plain, uncut_redacted

REPLACEMENT = "\ufffd"
# A pair that JSON escaped (``\ud83d\ude00``) is one character once read, so any surrogate left in a str is alone.
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD; ASCII (nearly all of KIE's text) costs one check."""
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def valid_value(value: Any) -> Any:
    """A copy of a JSON-like value with ``valid_text`` applied to every string in it, dict keys included."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_value(key): valid_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [valid_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(valid_value(item) for item in value)
    return value


def text_or_none(value: Any) -> str | None:
    """Text KIE sent, stripped; None for empty text and for anything else (a number or an object is no name, type
    or link)."""
    return value.strip() or None if isinstance(value, str) else None


MAX_TASK_ID = 200  # KIE's task ids are a few dozen characters


def usable_task_id(value: Any) -> str | None:
    """``value`` as a task id kie-mcp may record, follow and ask KIE about, or None: text (or a whole number, as a
    JSON answer may carry one) that, stripped, is not empty, at most ``MAX_TASK_ID`` characters, printable, without
    spaces, and holds no credential (``holds_credential``). The one rule for a task id, whoever gives it: a create
    answer of KIE's (a list, an object, ``true``, blanks or a line break there name no task: kie-mcp would record a
    task it can never look up) and an agent's argument (``check_task``, ``kie://tasks/{id}``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    task_id = value.strip()
    if not task_id or len(task_id) > MAX_TASK_ID or not task_id.isprintable() or holds_credential(task_id):
        return None
    return None if any(char.isspace() for char in task_id) else task_id


def task_id_problem(value: str) -> str | None:
    """Why ``value``, an id an agent gave, names no task kie-mcp may look up or ask KIE about (``usable_task_id``'s
    rule), in words that never repeat a credential it holds; None when it is a task id."""
    if usable_task_id(value) is not None:
        return None
    if len(value) <= MAX_TASK_ID and holds_credential(value):
        return (
            "The task id given holds a credential (an API key or a token), so it is no task id and is not repeated here"
        )
    return (  # valid_text: a lone surrogate (an embedding host's) is shown, never a codec error
        f"{plain(valid_text(value))} is not a task id (blank, over {MAX_TASK_ID} characters, with spaces or control "
        "characters, or holding a credential)"
    )


def holds_credential(text: str) -> bool:
    """Whether ``text`` holds a credential: one already redacted (KIE's answers are redacted where they are read),
    or one the redactor would take out (the API key, a bearer-shaped token an agent typed as a task id). Such an id
    is never put into a status URL: KIE's logs, and any proxy's, would keep it."""
    return REDACTED in text or redact(text) != text


def as_text(value: Any, *, limit: int) -> str:
    """``value`` as JSON writes it, redacted whole and only then cut to ``limit`` characters: cut first, a key
    crossing the cut would be shown in part, which redaction no longer recognises."""
    return plain(redact(plain(value, limit=sys.maxsize)), quoted=False, limit=limit)


TEXT_KEPT = 2000  # characters kept of a text KIE sent (``msg``, ``failMsg``, a status word): far more than KIE writes


def kept_text(value: Any, limit: int = TEXT_KEPT) -> str:
    """A text KIE sent (an answer's ``msg``, a task's ``failMsg``, a status word), as kie-mcp keeps and shows it:
    valid Unicode, redacted, and at most ``limit`` characters. A longer one keeps its start and says it was cut and
    how long it was ("... (4194304 characters)", as ``words.plain`` says it): KIE's text is repeated in every answer
    about its task, the journal, the call log and the log, so megabytes of it (garbage, or a hostile upstream) would
    be repeated too. Only what is kept is redacted (with enough after it, ``words.uncut_redacted``, so a key crossing
    the cut is found whole, counted after redaction, which shortens what it finds): a cut text is never searched
    whole. Anything but text is kept as its JSON text (``as_text``)."""
    if not isinstance(value, str):
        return as_text(value, limit=limit)
    # Only what can be shown is made valid and redacted, a key crossing the cut found whole (``uncut_redacted``)
    shown, whole = uncut_redacted(value, limit, lambda text: redact(valid_text(text)))
    if whole and len(shown) <= limit:
        return shown
    return f"{shown[: cut_point(shown, limit - 3)]}... ({len(value)} characters)"
