"""A task found at KIE whose create's answer was lost: which create of unknown outcome made it, if one surely did.

A create whose answer never came (the connection dropped after KIE made and charged the task, a timeout, a server
killed mid-create) is of unknown outcome: counted against the daily cap, listed by ``list_tasks`` and
``check_credits``, and its answer tells the agent to find the task on https://kie.ai/logs and follow it with
``check_task``. A task found that way is this create's only when that is certain, as an agent can name any task id
of the account, and a wrong match would move money (settle one create's reservation against another task's charge)
and put a task in another session's folder. So the task is linked to a create only when (``judge``) KIE places it at
a precise moment (a ``createTime`` in milliseconds: the Market and GPT-4o Image families; Veo, Runway, Aleph and
Flux Kontext give zone-less text, and never link) and echoes its request readably (``echoed_request``), and exactly
one call's creates fit it: of this workspace's journal, of the task's model, begun and given up around that moment,
that sent exactly the request KIE echoes (``_same_request``: every field sent echoed with the same value, no field of
the request echoed that it did not send); no other create of that model (of unknown outcome, or being sent now)
fitting as well. The variations of one call are one request: each task found takes the first of its creates still of
unknown outcome, one task each, chosen in the journal's transaction. Anything less sure links nothing: the task is
recorded on its own, as before (never over a record another look wrote meanwhile), and the answer names the creates
it may be of.

Linked, the task takes its create's prompt, session (its results go to the session's folder), quote and reservation,
which KIE's charge replaces once (``generation.settle``, as for any task its create named), and the create is
created with that task, no longer of unknown outcome (``Journal.link_found_task``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from kie_mcp.journal import attempt_task_fields, log_match_seconds
from kie_mcp.kie.envelope import loads_or_none
from kie_mcp.redact import redact_value
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
    "sent_params",
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
# What KIE keeps beside a flat request's fields (``_request_field``): the only names a flat echo may hold that the
# create did not send. ``callBackUrl``: a create body's own beside the model's fields in every family's create docs
# (kie-api.md §2.1, §3-§6; the example ``param`` of docs.kie.ai/market/common/get-task-detail holds it);
# ``progressCallBackUrl``: the Market's, beside ``callBackUrl`` (kie-api.md §2.1); ``model``: the body's own in the
# Market, Veo and Flux Kontext, compared with the create's model apart (``Echo.model``). KIE's own examples of a flat
# echo (docs.kie.ai/4o-image-api/get-4-o-image-details: ``paramJson`` ``{"prompt", "size", "isEnhance"}``) hold
# the create body's fields and nothing else.
KEPT_BESIDE = frozenset({"callBackUrl", "progressCallBackUrl", "model"})


class Verdict(NamedTuple):
    """What ``judge`` found: the create that made the task (``attempt``, when one surely did), else the creates it
    may be of (``maybe``, none when nothing fits) and why none was taken (``why``); ``when``: the moment the task
    was placed at, KIE's, or None when KIE gave none that can be compared (the lookup's then)."""

    attempt: sqlite3.Row | None
    maybe: list[sqlite3.Row]
    why: str
    when: float | None


class Echo(NamedTuple):
    """The request KIE echoes in a status answer (``echoed_request``): the model it names (None when it names none),
    its fields, and whether they came as the body's own ``input`` object (the Market's ``{model, callBackUrl, input}``,
    where each of them is a field of the request) rather than beside what else the body holds (a flat ``paramJson``
    or ``generateParam``, where ``model`` or ``callBackUrl`` may sit next to the fields)."""

    model: str | None
    fields: dict[str, Any]
    nested: bool


def echoed_request(raw: dict[str, Any] | None) -> Any:
    """The request KIE echoes in its status answer, as an ``Echo``: the Market family's ``param`` (JSON text whose
    ``input``, JSON text too, holds the fields), ``paramJson`` (Veo, Runway Aleph, GPT-4o Image, Flux Kontext: the
    body as sent) or Runway's ``generateParam``. None when the answer echoes no request (or an empty one: null),
    ``UNREADABLE`` when its echo cannot be read (not JSON, not an object, an ``input`` that is not one)."""
    raw = raw or {}
    for name in ("param", "paramJson", "generateParam"):
        echo = raw.get(name)
        if echo is None:
            continue
        body = loads_or_none(echo) if isinstance(echo, str) else echo
        if not isinstance(body, dict):
            return UNREADABLE
        inner = body.get("input", body)
        inner = loads_or_none(inner) if isinstance(inner, str) else inner
        model = body.get("model")
        if not isinstance(inner, dict) or not isinstance(model, str | None):
            return UNREADABLE
        return Echo(model, inner, inner is not body)
    return None


def _canonical(value: Any) -> str:
    """``value`` as the journal keeps it (redacted), in one JSON spelling: equal values, equal text."""
    return json.dumps(redact_value(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _same_request(echoed: Echo, attempt: sqlite3.Row) -> bool:
    """Whether the request KIE echoes is the very one ``attempt`` sent: the model it names (when it names one) is the
    attempt's, every field the attempt sent (``attempts.sent_params``: its input fields as sent, each local file as
    the link it was uploaded as, kept redacted; ``attempts.params`` when that is NULL: sent as given) is echoed with
    the same value (compared redacted, as canonical JSON), and no field the attempt did not send is echoed
    (``_request_field``): a request with one more field (an image to edit, a mask, a seed) is another request,
    whoever made it. An attempt an older kie-mcp journaled has no ``sent_params`` and kept a local file's path in its
    ``params`` instead of its link: its request is never the one echoed."""
    model, fields, _ = echoed
    if model is not None and model != attempt["model"]:
        return False
    journaled = attempt["sent_params"] if attempt["sent_params"] is not None else attempt["params"]
    sent = loads_or_none(journaled) if isinstance(journaled, str) else None
    if not isinstance(sent, dict):
        return False
    if not all(name in fields and _canonical(fields[name]) == _canonical(value) for name, value in sent.items()):
        return False
    return not any(_request_field(name, echoed) for name in fields if name not in sent)


def _request_field(name: str, echoed: Echo) -> bool:
    """Whether ``name``, echoed though the create did not send it, is a field of the request echoed (so that request is
    another one) rather than what KIE keeps beside a request. KIE echoes the create's body as sent and adds none of the
    model's fields, nor their defaults: kie-api.md §2.2 ("param: the original create body re-serialised");
    docs.kie.ai/market/common/get-task-detail, whose example ``param`` is a create body, ``{model, callBackUrl,
    input}``; 31 live Market tasks of 23 models whose ``param`` holds exactly the ``input`` fields their create sent,
    none more (justintanner/apicity tests/recordings/kie_2079838932, recorded 2026-04-10..30). So a field the create did
    not send was sent by whoever made that task, even with the value kie-mcp would have sent by default
    (``apply_defaults`` already sends each default the model's spec has): another request. Any name inside a Market
    body's ``input`` is such a field (KIE's createTask keeps ``model`` and ``callBackUrl`` outside it); beside a flat
    body's fields, every name but the few KIE keeps beside a request (``KEPT_BESIDE``) is, whether or not kie-mcp's
    catalogue lists it: GPT-4o Image's ``fileUrl``, ``maskUrl`` and ``nVariants`` (KIE's docs name them, the
    catalogue does not take them) make another request as surely as ``filesUrl`` does."""
    return echoed.nested or name not in KEPT_BESIDE


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
    it), if exactly one call's creates can have (see the module's words); the creates it may be of otherwise.
    Only a task KIE places at a precise moment (``TaskStatus.created_at``: milliseconds, as the Market and GPT-4o
    Image families give) and whose request KIE echoes readably can be linked at all."""
    reported = status.created_at(now)
    if reported is not None and reported > now + CLOCK_SKEW:  # KIE's clock is not this one's: no moment to compare
        reported = None
    when = reported if reported is not None else now
    rows = rt.journal.unsettled_attempts(model, now - KEPT_BY_KIE, when + CLOCK_SKEW)
    echoed = echoed_request(status.raw)
    if echoed is not None and echoed is not UNREADABLE:
        rows = [row for row in rows if _same_request(echoed, row)]
    if reported is None:  # no precise moment from KIE to place it: begun before it was looked up is all that is known
        late = [row for row in rows if row["state"] == "unknown" and row["created"] - CLOCK_SKEW <= now]
        return Verdict(None, late, "KIE's answer gives no precise time it was made to compare", reported)
    fit = [row for row in rows if _fits(row, reported)]
    unknown = [row for row in fit if row["state"] == "unknown"]
    if echoed is UNREADABLE:  # the request KIE echoes cannot be compared with any create's
        return Verdict(None, unknown, "its request as KIE echoes it cannot be read", reported)
    if echoed is None:  # no request echoed: nothing says it is the one a create sent
        return Verdict(None, unknown, "KIE's answer echoes no request to compare", reported)
    if unknown and len(unknown) == len(fit) and one_call(unknown):
        return Verdict(unknown[0], unknown, "", reported)
    if len(unknown) < len(fit):  # a create being sent may be the one that made it: its own answer says
        return Verdict(
            None, unknown, "a create of that model sent about then is still waiting for KIE's answer", reported
        )
    if fit:
        return Verdict(None, unknown, "creates of more than one call fit it", reported)
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
    prompt, session, quote and reservation, the create no longer of unknown outcome; else on its own, as it is,
    unless the journal holds the task by then (another look linked or recorded it meanwhile: that record stands).
    Journal reads and transactions: safe to run again after another writer's lock refused it
    (``Journal.off_loop_when_locked``)."""
    assert record.task_id is not None
    now = time.time()
    verdict = judge(rt, record.model, status, now)
    if verdict.attempt is not None:
        made: list[TaskRecord] = []

        def linked(row: sqlite3.Row) -> None:  # in the journal's transaction: a copy, the record kept as it is
            taken = record.model_copy(update=attempt_task_fields(row))  # until the transaction is committed
            taken.created_at = verdict.when if verdict.when is not None else row["created"]
            rt.tasks.add(taken, attempt_id=row["attempt_id"], prompt=row["prompt"], session=row["session"])
            made.append(taken)

        def note(row: sqlite3.Row) -> str:
            return (
                f"the answer to this create was lost ({row['error'] or 'no answer'}); its task {record.task_id} was "
                f"found at KIE at {timestamp(now)} and recorded as this create's"
            )

        # Any create of the call still of unknown outcome takes it (another look may have linked the first to its
        # own task meanwhile): the journal picks, in its transaction.
        candidates = [row["attempt_id"] for row in verdict.maybe]
        attempt = rt.journal.link_found_task(candidates, record.task_id, linked, note)
        if attempt is not None:
            sent = timestamp(attempt["created"])
            return TakenUp(
                made[0],
                True,
                f"This is the task of create {attempt['attempt_id']} ({attempt['model']}, sent at {sent}), whose "
                "answer from KIE was lost: it is recorded as that create's, with its prompt, session and reservation "
                "(KIE's charge replaces the reservation once), and that create is no longer counted as one of unknown "
                "outcome.",
            )
        # Not linked after all: another look (this server's or another's) recorded the task meanwhile, whose record
        # stands, or linked that call's creates to other tasks, so this one is none of theirs.
        verdict = Verdict(None, [], "", verdict.when)
    kept = rt.tasks.add_if_new(record)  # another look's record, linked or not, is never overwritten by a bare one
    if kept is not record:
        return TakenUp(kept, False, None)
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
