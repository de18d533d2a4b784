"""Pages of the journal's tasks, as ``list_tasks`` and ``kie://tasks`` show them: found by filter, cut at a limit
and continued by cursor (never a task skipped or repeated), with the creates whose outcome is unknown, in words.

One place for both, so the tool and the resource page, name unknown creates and tell unreadable rows alike.
"""

# No ``from __future__ import annotations``: pydantic would compile each field's annotation string on import.

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

from kie_mcp.catalog.pricing import credits_figure, credits_text
from kie_mcp.journal import Journal, read_cursor
from kie_mcp.redact import redact
from kie_mcp.spend.ledger import priced, readable_charge
from kie_mcp.words import made_of, plain, shortened, timestamp

from .records import PROMPT_SHOWN, Found, TaskBook, TaskRecord

LIST_LIMIT = 200  # the most tasks one list_tasks call shows
LIST_DEFAULT = 20  # ... and how many it shows unless asked: what an agent reads of it stays small (next_cursor: more)
RESOURCE_TASKS = 100  # the latest tasks kie://tasks shows
RESOURCE_UNKNOWN = 20  # the latest creates of unknown outcome either names (all are counted)
EARLIEST_YEAR = 1970  # "since" a day before any task: no filter


class BadDay(ValueError):
    """A ``since`` that is not a date: the agent is told the format, nothing is listed."""


class UnknownCreate(BaseModel):
    """A create KIE gave no clear answer to: it may have made (and charged) a task whose id kie-mcp never got."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    attempt_id: str = Field(description="kie-mcp's id of the create, not a KIE task id (check_task explains it).")
    model: str
    created: str = Field(description="When it was sent (ISO 8601, UTC): look for it on https://kie.ai/logs.")
    prompt: str | None = Field(None, description=f"Its prompt, first {PROMPT_SHOWN} characters (secrets redacted).")
    session: str | None = None
    error: str | None = Field(None, description="Why its outcome is unknown.")


@dataclass(frozen=True)
class Listing:
    """One page of tasks and what ``list_tasks`` says of it (before the server's notices and the gallery)."""

    records: list[TaskRecord]
    total: int
    next_cursor: str | None
    unknown_total: int
    unknown: list[UnknownCreate]
    message: str


def parse_day(text: str | None) -> datetime | None:
    """``since`` as a day (None: no filter), or ``BadDay``."""
    if not text:
        return None
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d")
    except ValueError:
        raise BadDay(f"since={text!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-21.") from None
    return day if day.year > EARLIEST_YEAR else None  # every task is later (and a year 1 has no timestamp)


async def list_page(
    book: TaskBook, journal: Journal, filters: dict[str, Any], *, limit: int, cursor: str | None
) -> Listing:
    """The tasks matching ``filters`` (state, model id, since, text, session), newest first, from ``cursor`` on. A
    text or session search compares every row: it runs in a worker thread, on a connection of its own
    (``find_tasks``)."""
    find: Callable[[], Found] = functools.partial(book.find, limit=limit, **filters)
    if cursor:
        find = functools.partial(find, older_than=read_cursor(cursor, filters))
    scans = filters.get("text") or filters.get("session")
    search = await anyio.to_thread.run_sync(find) if scans else find()
    next_cursor = journal.cursor_after(_page(search), filters) if search.cut else None
    unknown_total = journal.count_attempts("unknown")
    unknown = unknown_creates(journal) if unknown_total else []
    found = search.records
    lines = [
        f"- {t.task_id} {t.model} {t.state}{_link_text(t)}{labels_text(t, ' [', ']')}"
        + (" (KIE does not know it under the current API key; check_task says more)" if t.unknown_to_kie else "")
        + (" (KIE gave a status kie-mcp does not know; check_task says more)" if t.unknown_word else "")
        + _cost_text(t)
        + (f": {', '.join(shown)}" if (shown := [*t.openable_links(), *t.refused_words()]) else "")
        for t in found
    ]
    model_id = filters.get("model")
    of = f" of {model_id}" if model_id else ""
    older = " older than the previous page" if cursor else ""
    message = f"{len(found)} task(s){of}{older}"
    if next_cursor:
        more = "raise limit to see more at once (at most 200), or " if limit < LIST_LIMIT else ""
        message = (
            f"{search.total} task(s){of} match{older}; showing {len(found)} of {search.total}; {more}list the "
            f"older ones with {_next_call(filters, next_cursor)}"
        )
    message += ":\n" + "\n".join(lines) if lines else "."
    if not found and not cursor and (filters.get("text") or filters.get("session")):
        message += (
            " text= finds words of a task's prompt and session= words of its session's name (the label a generate "
            "call was given), or with a session folder's name (outputs/2026-04-20-ugc-batch) the tasks saved in it; "
            "since= and model= narrow by day and model."
        )
    if search.unreadable:  # rows a newer kie-mcp wrote (or a hand edit): named, never a failed listing
        message += f"\n{search.unreadable_note}"
    if unknown_total:
        message += "\n" + unknown_creates_text(unknown_total) + _unknown_creates_lines(unknown, unknown_total)
    return Listing(found, search.total, next_cursor, unknown_total, unknown, message)


def latest_tasks(journal: Journal, workspace: Path | None = None) -> dict[str, Any]:
    """``kie://tasks``: the latest ``RESOURCE_TASKS`` tasks and the creates of unknown outcome, as JSON data, under
    list_tasks' names: ``unknown_creates`` how many there are, ``unknown_create_list`` the latest of them."""
    search = TaskBook(journal, workspace).find(limit=RESOURCE_TASKS)
    next_cursor = journal.cursor_after(_page(search), {}) if search.cut else None
    unknown_total = journal.count_attempts("unknown")
    unknown = unknown_creates(journal) if unknown_total else []  # newest first
    body: dict[str, Any] = {
        "tasks": [t.model_dump(mode="json") for t in search.records],
        "total": search.total,
        "unknown_creates": unknown_total,  # named as list_tasks and check_credits name them: the count, then the list
        "unknown_create_list": [a.model_dump(mode="json") for a in unknown],
    }
    if next_cursor:
        body["next_cursor"] = next_cursor
        body["total_note"] = (
            f"The latest {RESOURCE_TASKS} of {search.total} tasks; list_tasks(cursor=next_cursor) lists the older "
            "ones, a page at a time (again with its own next_cursor), and list_tasks finds any by state, model, "
            "since, text or session."
        )
    if search.unreadable:  # rows a newer kie-mcp wrote (or a hand edit): named, never a failed read
        body["unreadable_tasks"] = search.unreadable
        body["unreadable_tasks_note"] = search.unreadable_note
    if unknown_total:
        body["unknown_creates_note"] = unknown_creates_text(unknown_total)
    return body


def labels_text(record: TaskRecord, opening: str = "; ", closing: str = "") -> str:
    """What tells a task from its neighbours: its prompt (as the record shows it: shortened, redacted), session and
    output folder, e.g. ' [prompt "a fox at dawn"; session "scene-1"; folder outputs/2026-12-03-scene-1]'."""
    parts = [f"prompt {plain(record.prompt, limit=PROMPT_SHOWN + 20)}"] if record.prompt else []
    if record.session:
        parts.append(f"session {plain(record.session, limit=80)}")
    if record.folder:
        parts.append(f"folder {record.folder}")
    return f"{opening}{'; '.join(parts)}{closing}" if parts else ""


def unknown_creates_text(count: int) -> str:
    return (
        f"{count} create(s) got no clear answer from KIE (or were being sent when the server stopped) and may have "
        "been created and charged: each is counted against the daily cap of the day it was sent. Check "
        "https://kie.ai/logs before trying them again."
    )


def unknown_creates(journal: Journal) -> list[UnknownCreate]:
    """The latest creates of unknown outcome (at most ``RESOURCE_UNKNOWN``), newest first, told apart by model, time,
    prompt (shortened; kept redacted) and session."""
    return [
        UnknownCreate(
            attempt_id=row["attempt_id"],
            model=row["model"],
            created=timestamp(row["created"]),
            prompt=shortened(redact(" ".join(row["prompt"].split())), PROMPT_SHOWN) if row["prompt"] else None,
            session=row["session"],
            error=row["error"],
        )
        for row in journal.latest_attempts("unknown", RESOURCE_UNKNOWN)
    ]


def _unknown_creates_lines(unknown: list[UnknownCreate], total: int) -> str:
    """One line per create of unknown outcome, to find it on KIE's logs by model and time."""
    lines = []
    for create in unknown:
        labels = [f"prompt {plain(create.prompt, limit=PROMPT_SHOWN + 20)}"] if create.prompt else []
        labels += [f"session {plain(create.session, limit=80)}"] if create.session else []
        shown = f" [{'; '.join(labels)}]" if labels else ""
        lines.append(f"\n- {create.attempt_id}: {create.model}, sent {create.created}{shown}")
    which = f"The latest {len(unknown)} of them:" if total > len(unknown) else "They are:"
    return f" {which}{''.join(lines)}\ncheck_task with an attempt id (a_...) says what is known of it."


def _page(search: Found) -> list[str]:
    """The task ids of a page of ``TaskBook.find`` (its unreadable rows too): the next page starts after them."""
    return [*(t.task_id for t in search.records), *search.unreadable]


def _next_call(filters: dict[str, Any], cursor: str) -> str:
    """The list_tasks call that lists the next page: the same filters, and the cursor."""
    given = {
        name: value.date().isoformat() if isinstance(value, datetime) else value for name, value in filters.items()
    }
    named = [f"{name}={plain(value, limit=80)}" for name, value in given.items() if value]
    named.append(f'cursor="{cursor}"')  # whole: base64url, nothing to escape
    return f"list_tasks({', '.join(named)})"


def _cost_text(record: TaskRecord) -> str:
    """What a task cost, as a listing shows it: KIE's charge when it said (one measured from the balance, said so),
    nothing for a failed task (refunded), else the quote it was made under and, when the caps count more (KIE was
    seen charging more), that figure. A charge KIE reported that cannot be what it charged, said so
    (``unread_charge``): a failed task's is not refunded."""
    if unread := unread_charge(record):
        return f" ({unread})"
    charged = priced(record.credits_charged)
    if charged is not None:
        return f" ({credits_text(charged)} {'measured from the balance' if record.charge_measured else 'charged'})"
    if record.state == "failed":
        return " (not counted: KIE refunds failed tasks, as its docs say)"
    quoted, counted = record.credits_quoted, priced(record.credits_reserved)
    if quoted is not None and counted is not None and counted > quoted:
        return f" ({credits_text(quoted)} quoted; {credits_figure(counted)} counted)"
    return f" ({credits_text(quoted)} quoted)" if quoted is not None else ""


def unread_charge(record: TaskRecord) -> str | None:
    """What a task cost when KIE reported a charge for it that cannot be what it charged (``readable_charge``, as
    ``generation.unreadable`` finds it once settled), as list_tasks and the gallery's tiles say it, after check_task:
    "KIE's charge for this task could not be read; the 8 credits reserved stay counted as spent" (a failed task's
    reservation is not given back). None for any other task, and for a task nothing was reserved or quoted for here
    (made elsewhere, looked at here): kie-mcp does not know its cost, and check_task says nothing of it either
    (``surface._task_cost``, ``surface._failed_cost``)."""
    from kie_mcp import generation as gen  # here: generation imports this module (through spend.account)

    reserved = record.credits_reserved if record.credits_reserved is not None else record.credits_quoted
    if not reserved:
        return None
    reported = record.credits_charged
    read = None if reported is None else readable_charge(reported, reserved, failed=record.state == "failed")
    if not gen.unreadable(record) and (reported is None or read is not None):
        return None
    kept = f"; the {credits_text(reserved)} reserved stay counted as spent" if reserved else ""
    return f"{gen.UNREADABLE_CHARGE}{kept}"


def _link_text(record: TaskRecord) -> str:
    """How a listing shows a chain: " (1080p version of task <id>)" for a follow-up (``words.made_of``), nothing
    otherwise."""
    return f" ({made_of(record.operation, record.parent_task_id)})" if record.parent_task_id else ""
