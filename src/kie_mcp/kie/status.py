"""One task status for every KIE family: each family's vocabulary maps onto ``TaskState``."""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

import json
import math
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from kie_mcp.redact import redact_value

from .envelope import too_deep
from .text import TEXT_KEPT, as_text, kept_text, valid_value


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)


EARLIEST_TASK = 1_672_531_200.0  # 2023-01-01 UTC: a creation time before it is garbage, not a task's age
TEXT_LIMIT = TEXT_KEPT  # characters kept of a text KIE sent (``text.kept_text``), or of a number or object there
# The most result links read from one status answer: more than any model makes in one task (12 images, or a clip with
# its first and last frames), far fewer than a garbage answer can name (20,000 links fit in the 16 MiB an answer may
# be, and each would be shown on every view of the task and saved as a file).
MOST_LINKS = 24
# Fields that hold text; KIE sends numbers or objects in some (``failMsg: {"code": ..}``), which are kept as text.
_TEXT_FIELDS = frozenset({"task_id", "family", "raw_state", "fail_code", "fail_message"})
# Text fields KIE fills (its status word, failure code and message, the model it names): cut to ``TEXT_LIMIT``. A task
# id is the one asked about, and a family kie-mcp's own.
_KIES_TEXT = frozenset({"raw_state", "fail_code", "fail_message", "model"})


class TaskStatus(BaseModel, defer_build=True):
    """A task as KIE last described it, in family-neutral terms."""

    task_id: str
    family: str
    state: TaskState
    raw_state: str = Field(description="The family's own status word or flag, for reference (empty: none sent).")
    understood: bool = Field(
        default=True,
        description="False when ``raw_state`` is outside the family's documented vocabulary: ``state`` then only says "
        "the task is not known to have ended, and ``fail_code``/``fail_message`` carry what KIE said beside it.",
    )
    model: str | None = None
    progress: float | None = Field(default=None, description="0-1 when KIE reports it.")
    result_urls: list[str] = Field(default_factory=list, description=f"At most {MOST_LINKS}, in KIE's order.")
    links_sent: int | None = Field(default=None, description="How many result links KIE named, when more than kept.")
    results_unreadable: bool = Field(
        default=False,
        description="KIE sent its result field (resultJson, response, videoInfo) as text that is not JSON, or nests "
        "too deep to read: a result kie-mcp could not read, not the absence of one.",
    )
    fail_code: str | None = None
    fail_message: str | None = None
    credits_charged: float | None = None
    charge_unreadable: bool = Field(
        default=False,
        description="KIE reported a charge (creditsConsumed) that is no finite number: 'NaN', '1e400', text. Not the "
        "absence of one: the task's reservation stays counted as spent (``ledger.readable_charge``).",
    )
    created_at_ms: int | None = None
    completed_at_ms: int | None = None
    raw: dict[str, Any] | None = Field(default=None, description="KIE's answer as it came (redacted).")

    def created_at(self, now: float) -> float | None:
        """When KIE says the task was created, in epoch seconds: None when it does not say in milliseconds (Market,
        GPT-4o Image; other families send zone-less text), or says what no task can be (before 2023, or later than
        an hour from ``now``)."""
        if self.created_at_ms is None:
            return None
        seconds = self.created_at_ms / 1000
        return seconds if EARLIEST_TASK <= seconds <= now + 3600 else None

    @model_validator(mode="before")
    @classmethod
    def _few_links(cls, data: Any) -> Any:
        """The first ``MOST_LINKS`` result links of a longer list, and how many there were: cut before anything else
        reads them (each is redacted, and every link kept is shown on every view of the task and saved as a file)."""
        links = data.get("result_urls") if isinstance(data, dict) else None
        if not isinstance(links, list) or len(links) <= MOST_LINKS:
            return data
        return {**data, "result_urls": links[:MOST_LINKS], "links_sent": len(links)}

    @field_validator("*", mode="before")
    @classmethod
    def _redacted(cls, value: Any, info: ValidationInfo) -> Any:
        """Every family's answer is read into this model, so every text from KIE (``failMsg``, ``errorMessage``,
        state words, URLs) is redacted here, once, whichever family it came from, and made valid Unicode (a lone
        surrogate would fail the journal's write, leaving the task unrecorded). A number or object where text
        belongs is kept as its JSON text, and a model that is not text names none: a status that cannot be built
        would be a look that never succeeds, even after KIE charged. KIE's text (its status word, failure code and
        message, model) is cut to ``TEXT_LIMIT`` characters (``kept_text``: a cut one says so): every answer about
        the task, its journal record, the call log and the log repeat it, and a garbage answer may hold megabytes."""
        if isinstance(value, str) and info.field_name in _KIES_TEXT:
            return kept_text(value, TEXT_LIMIT)
        value = redact_value(valid_value(value))
        if value is None or isinstance(value, str):
            return value
        if info.field_name == "model":
            return None
        if info.field_name in _TEXT_FIELDS:
            return as_text(value, limit=TEXT_LIMIT)
        return value


def unreadable_json_text(value: Any) -> bool:
    """Whether ``value`` is text KIE meant as JSON that cannot be read (``parse_json_text`` keeps it as text)."""
    return isinstance(value, str) and bool(value.strip()) and parse_json_text(value) is value


def parse_json_text(value: Any) -> Any:
    """KIE sends some objects as JSON text (``resultJson``, ``param``); accept either form. Text that does not read
    as JSON, or nests too deeply to walk (a few KB of ``[[[[`` raise RecursionError), stays text."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return value
        return value if too_deep(parsed) else parsed
    return value


def result_link(value: Any) -> str | None:
    """``value`` as a result link: text that, stripped of the spaces and line breaks around it, starts with an
    http(s) scheme in any letter case (``HTTPS://``, as RFC 3986 allows), that scheme written in lower case (every
    later check compares it so); None for anything else (``javascript:``, ``file:``, a relative path). KIE's links
    have been seen with a line break after them: taken as they came, such a link was no link ("KIE sent no result
    link"), or a link no request could be made with, retried for ever."""
    if not isinstance(value, str):
        return None
    link = value.strip()
    scheme, sep, rest = link.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    return f"{scheme.lower()}://{rest}"


def collect_urls(value: Any) -> list[str]:
    """URLs (``result_link``) from a string, a list of strings, or items shaped ``{url}`` / ``{resultUrl}``."""
    value = parse_json_text(value)
    if isinstance(value, str):
        link = result_link(value)
        return [link] if link is not None else []
    if isinstance(value, dict):  # its link is held to the same rule: http(s) only, never javascript: or file:
        for key in ("url", "resultUrl", "result_url"):
            if isinstance(value.get(key), str):
                return collect_urls(value[key])
        return []
    if isinstance(value, list):
        return [url for item in value for url in collect_urls(item)]
    return []


def links_in(value: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """The links under ``keys`` of ``value`` (``collect_urls``), in order, each once: kept in a dict, so a garbage
    answer naming thousands is one pass, not every link compared with every other."""
    return list(dict.fromkeys(url for key in keys for url in collect_urls(value.get(key))))


def number_or_none(value: Any) -> float | None:
    """A number KIE sent (or its text); None for anything else, ``NaN`` and infinities included (JSON's ``1e400``
    reads as infinity) and whole numbers too large for a float (JSON's ``10**400`` reads as an int, and ``float``
    raises on it): no charge, progress or time is ever infinite, and garbage in one field must not make the whole
    answer unreadable."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def charge_of(value: Any) -> tuple[float | None, bool]:
    """The charge KIE reported in ``value`` (``number_or_none``), and whether it reported one that cannot be read: a
    value sent (not None or empty) that is no finite number (``"NaN"``, ``"1e400"``, JSON's 1e400 read as infinity,
    text). Never the same as no charge: a failed task reporting none was refunded, one reporting garbage may not be."""
    number = number_or_none(value)
    return number, number is None and value not in (None, "")


def int_or_none(value: Any) -> int | None:
    """``number_or_none`` as a whole number (counts, millisecond times)."""
    number = number_or_none(value)
    return None if number is None else int(number)
