"""A task found at KIE whose create's answer was lost: which create of unknown outcome made it, if one surely did.

A create whose answer never came (the connection dropped after KIE made and charged the task, a timeout, a server
killed mid-create) is of unknown outcome: counted against the daily cap, listed by ``list_tasks`` and
``check_credits``, and its answer tells the agent to find the task on https://kie.ai/logs and follow it with
``check_task``. A task found that way is this create's only when nothing else could have made it, as an agent can
name any task id of the account, and a wrong match would move money (settle one create's reservation against another
task's charge) and put a task in another session's folder. So the task is linked to a create only when exactly one
call's creates fit it (``judge``): of this workspace's journal, of the task's model, begun and given up around the
moment KIE says it made the task (or, when KIE gives no moment, the moment it was looked up), whose prompt is the one
KIE echoes of the request, when its answer echoes one; no other create of that model (of unknown outcome, or being
sent now) fitting as well. The variations of one call are one request: any of its creates of unknown outcome may
take the task, one task each. Anything less sure links nothing: the task is recorded on its own, as before, and the
answer names the creates it may be of.

Linked, the task takes its create's prompt, session (its results go to the session's folder), quote and reservation,
which KIE's charge replaces once (``generation.settle``, as for any task its create named), and the create is
created with that task, no longer of unknown outcome (``Journal.link_found_task``).
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from kie_mcp.journal import attempt_task_fields, log_match_seconds
from kie_mcp.kie.envelope import loads_or_none
from kie_mcp.redact import redact
from kie_mcp.words import timestamp

if TYPE_CHECKING:
    from kie_mcp.kie import TaskStatus
    from kie_mcp.runtime import Runtime
    from kie_mcp.tasks.records import TaskRecord

# How far KIE's clock and this machine's may disagree (seconds), and KIE may take to make a task after the create
# was given up here (an answer that timed out): a task KIE says it made this much before a create was begun, or after
# it was given up, is still weighed as that create's. KIE's times are its servers', this machine's its own.
CLOCK_SKEW = 60.0
KEPT_BY_KIE = 14 * 86400.0  # KIE keeps a task 14 days: no create older than that can be looked up at all
# What must be the same for creates to be one call's variations, interchangeable: the request, where its results go,
# and what it was quoted and reserved (one reservation, made at one moment).
ONE_CALL = (
    "digest",
    "quote_id",
    "approved_by",
    "prompt",
    "params",
    "session",
    "credits_quoted",
    "reserved",
    "reserved_on",
    "reserved_at",
    "kind",
    "parent_task_id",
    "operation",
)
UNREADABLE = object()  # an echo of the request that is there and cannot be read


class Verdict(NamedTuple):
    """What ``judge`` found: the create that made the task (``attempt``, when one surely did), else the creates it
    may be of (``maybe``, none when nothing fits) and why none was taken (``why``); ``when``: the moment the task
    was placed at, KIE's, or None when KIE gave none that can be compared (the lookup's then)."""

    attempt: sqlite3.Row | None
    maybe: list[sqlite3.Row]
    why: str
    when: float | None


def echoed_prompt(raw: dict[str, Any] | None) -> Any:
    """The prompt of the request KIE echoes in its status answer: the Market family's ``param`` (JSON text whose
    ``input``, JSON text too, holds it), ``paramJson`` (Veo, Runway Aleph, GPT-4o Image, Flux Kontext: the body as
    sent) or Runway's ``generateParam``; "" for a request with no prompt. None when the answer echoes no request,
    ``UNREADABLE`` when its echo cannot be read (not JSON, not an object)."""
    raw = raw or {}
    for name in ("param", "paramJson", "generateParam"):
        echo = raw.get(name)
        if echo is None:
            continue
        body = loads_or_none(echo) if isinstance(echo, str) else echo
        if not isinstance(body, dict):
            return UNREADABLE
        inner = body.get("input")
        inner = loads_or_none(inner) if isinstance(inner, str) else inner
        prompt = inner.get("prompt") if isinstance(inner, dict) and "prompt" in inner else body.get("prompt", "")
        return prompt if isinstance(prompt, str) else UNREADABLE
    return None


def _same_text(echoed: str, kept: str | None) -> bool:
    """Whether the prompt KIE echoes is the one the journal kept (redacted as it was kept; spaces as one)."""
    return " ".join(redact(echoed).split()) == " ".join((kept or "").split())


def _fits(attempt: sqlite3.Row, when: float) -> bool:
    """Whether a task made at ``when`` can be ``attempt``'s: from its beginning until it was given up (a create of a
    server that died: at most the longest a create takes), with ``CLOCK_SKEW`` on either side."""
    ended = min(max(attempt["updated"], attempt["created"]), attempt["created"] + log_match_seconds())
    return attempt["created"] - CLOCK_SKEW <= when <= ended + CLOCK_SKEW


def one_call(attempts: list[sqlite3.Row]) -> bool:
    """Whether ``attempts`` are the variations of one call (``ONE_CALL``): any of them may take its task."""
    first = attempts[0]
    return first["digest"] is not None and all(row[k] == first[k] for row in attempts for k in ONE_CALL)


def judge(rt: Runtime, model: str, status: TaskStatus, now: float) -> Verdict:
    """Which create of unknown outcome made the task KIE describes in ``status`` (of ``model``, as its record names
    it), if exactly one call's creates can have (see the module's words); the creates it may be of otherwise."""
    reported = status.created_at(now)
    if reported is not None and reported > now + CLOCK_SKEW:  # KIE's clock is not this one's: no moment to compare
        reported = None
    when = reported if reported is not None else now
    rows = rt.journal.unsettled_attempts(model, now - KEPT_BY_KIE, when + CLOCK_SKEW)
    echoed = echoed_prompt(status.raw)
    if echoed is not None and echoed is not UNREADABLE:
        rows = [row for row in rows if _same_text(echoed, row["prompt"])]
    fit = [row for row in rows if _fits(row, when)]
    unknown = [row for row in fit if row["state"] == "unknown"]
    if echoed is UNREADABLE:  # the request KIE echoes cannot be compared with any create's
        maybe = [row for row in rows if row["state"] == "unknown"]
        return Verdict(None, maybe, "its request as KIE echoes it cannot be read", reported)
    if unknown and len(unknown) == len(fit) and one_call(unknown):
        return Verdict(unknown[0], [], "", reported)
    if len(unknown) < len(fit):  # a create being sent may be the one that made it: its own answer says
        return Verdict(
            None, unknown, "a create of that model sent about then is still waiting for KIE's answer", reported
        )
    if fit:
        return Verdict(None, unknown, "creates of more than one call fit it", reported)
    if reported is None:  # no moment from KIE to place it: begun before it was looked up is all that is known
        late = [row for row in rows if row["state"] == "unknown" and row["created"] - CLOCK_SKEW <= now]
        return Verdict(None, late, "KIE's answer gives no time it was made to compare", reported)
    return Verdict(None, [], "", reported)


class TakenUp(NamedTuple):
    """What ``take_up`` did: the task's record as the journal now holds it, whether it was linked to its create, and
    what the answer says of it (None: nothing to say)."""

    record: TaskRecord
    linked: bool
    words: str | None


def take_up(rt: Runtime, record: TaskRecord, status: TaskStatus) -> TakenUp:
    """Record ``record`` (a task found at KIE that the journal does not know, ``followups.made_elsewhere``) in the
    journal: as the task of the create of unknown outcome that made it when ``judge`` finds one, with that create's
    prompt, session, quote and reservation, the create no longer of unknown outcome; else on its own, as it is.
    Journal reads and one transaction, then one write: safe to run again after another writer's lock refused it
    (``Journal.off_loop_when_locked``)."""
    assert record.task_id is not None
    now = time.time()
    verdict = judge(rt, record.model, status, now)
    attempt = verdict.attempt
    if attempt is not None:
        sent = timestamp(attempt["created"])

        def linked(row: sqlite3.Row) -> None:  # in the journal's transaction: a copy, the record kept as it is
            taken = record.model_copy(update=attempt_task_fields(row))  # until the transaction is committed
            taken.created_at = verdict.when if verdict.when is not None else row["created"]
            rt.tasks.add(taken, attempt_id=row["attempt_id"], prompt=row["prompt"], session=row["session"])
            made.append(taken)

        made: list[TaskRecord] = []

        note = (
            f"the answer to this create was lost ({attempt['error'] or 'no answer'}); its task {record.task_id} was "
            f"found at KIE at {timestamp(now)} and recorded as this create's"
        )
        if rt.journal.link_found_task(attempt["attempt_id"], record.task_id, linked, note):
            return TakenUp(
                made[0],
                True,
                f"This is the task of create {attempt['attempt_id']} ({attempt['model']}, sent at {sent}), whose "
                "answer from KIE was lost: it is recorded as that create's, with its prompt, session and reservation "
                "(KIE's charge replaces the reservation once), and that create is no longer counted as one of unknown "
                "outcome.",
            )
        # Not linked after all: another look (this server's or another's) recorded the task meanwhile, whose record
        # stands, or linked that create to another task, so this one is not its.
        kept = rt.tasks.get(record.task_id)
        if kept is not None:
            return TakenUp(kept, False, None)
        verdict = Verdict(None, [], "", verdict.when)
    rt.tasks.add(record)
    return TakenUp(record, False, _maybe_words(verdict))


def _maybe_words(verdict: Verdict) -> str | None:
    """What the answer says of a task no create was linked to, when some create of unknown outcome may have made
    it: which (at most three named), why none was taken, and that they stay counted."""
    if not verdict.maybe:
        return None
    named = ", ".join(f"{row['attempt_id']} (sent at {timestamp(row['created'])})" for row in verdict.maybe[-3:])
    more = f" and {len(verdict.maybe) - 3} more" if len(verdict.maybe) > 3 else ""
    why = f" ({verdict.why})" if verdict.why else ""
    return (
        f"This task may be the one of create {named}{more}, whose answer from KIE was lost; kie-mcp cannot tell"
        f"{why}, so it is recorded on its own and no create is settled by it: those creates stay listed as of "
        "unknown outcome and counted against the daily cap. https://kie.ai/logs shows which request made it."
    )
