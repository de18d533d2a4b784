"""One look at a task: ask KIE once, fold the answer into the record, and say how it went.

Only the follower (``follower.py``) calls this: it decides when to look, and backs off on what ``refresh``
reports (a 429, a network error, a refusal). A redirect (HTTP 3xx, never followed) is a failure, not a refusal: a
front between here and KIE may send one for minutes, and the task is followed through it, never dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

from kie_mcp.kie import FAMILIES, Category, KieClient, KieError
from kie_mcp.kie.errors import RedirectedError
from kie_mcp.kie.text import kept_text

from .records import TaskRecord

log = logging.getLogger(__name__)

# Right after create, KIE may not show the task yet ("recordInfo is null"); that is not an error. Later the same
# answer means KIE does not know the task under this key (another account's key, or older than KIE keeps tasks):
# the record says so (``TaskRecord.note_unknown``), and is neither failed nor refunded on it. Runway and Aleph
# (``Family.null_record_unknown``) answer an unknown task with success and no record at all, an answer that can also
# come for a moment about a task KIE has: there the grace runs from the follower's first look (``first_look``, 1.2x
# the model's typical time, so a video's first look is never within 30 s of its create), and once KIE has answered
# about the task (``TaskRecord.answered``) that answer is a failed look, asked again with backoff, never "unknown".
VISIBILITY_GRACE_SECONDS = 30.0

Typical = Callable[[str], tuple[int, int] | None]
Links = Callable[[str], int]  # how many result links a task of a model keeps (``records.links_kept``)


class Look(Enum):
    """How one look at a task went."""

    SKIPPED = "skipped"  # nothing asked: no task id, or already finished
    SEEN = "seen"  # KIE answered; the record has its answer
    NOT_VISIBLE = "not visible"  # a young task KIE does not show yet (not an error)
    RATE_LIMITED = "rate limited"  # KIE answered 429: nothing learnt, slow down
    FAILED = "failed"  # a network hiccup, server error, unreadable answer or unknown status word: try again later
    REFUSED = "refused"  # KIE refused to say (a task it does not know, bad key, ...): noted on the record


async def refresh(
    kie: KieClient, typical: Typical, record: TaskRecord, links: Links | None = None, *, first_look: float = 0.0
) -> tuple[Look, bool]:
    """Ask KIE once about ``record`` and fold the answer in. Returns how it went, and whether KIE reported the
    task's progress itself (otherwise the record's progress is an estimate from the model's typical time). A status
    word outside the family's vocabulary is noted on the record and reported as ``FAILED``: the task is looked at
    again, backing off, and nothing about it changes until KIE says something kie-mcp can read. ``first_look``: the
    task's age (real seconds) at the follower's first look at it, which a family answering an unknown task with no
    record at all (Runway, Aleph) adds to the visibility grace (``VISIBILITY_GRACE_SECONDS``)."""
    if record.task_id is None or record.finished:
        return Look.SKIPPED, False
    family = FAMILIES[record.family]
    try:
        status = await kie.status(family, record.task_id)
    except KieError as err:
        not_visible = family.is_not_visible(err.message)
        grace = VISIBILITY_GRACE_SECONDS + (first_look if family.null_record_unknown else 0.0)
        if not_visible and time.time() - record.created_at < grace:
            return Look.NOT_VISIBLE, False
        log.info("status of %s: %s", record.task_id, kept_text(err.message, 300))  # at every look: kept short
        if not_visible and family.null_record_unknown and record.answered:  # KIE has it: no record, for now
            record.note_failure(err)
            return Look.FAILED, False  # looked at again, backing off; never a refusal counted towards leaving it
        if not_visible and not err.retryable:  # past the grace: KIE has no such task (another key, or too old)
            record.note_unknown(err)
            return Look.REFUSED, False
        if err.code == 429:
            return Look.RATE_LIMITED, False
        if isinstance(err, RedirectedError):  # a front between here and KIE, for now: the task is not refused, and
            record.note_failure(err)  # is asked about again (backing off), never dropped; a create or a balance
            return Look.FAILED, False  # check still takes a redirect as the setting's to fix (not retried)
        if err.retryable:
            if err.category is Category.PROTOCOL:  # an answer that could not be read: the task does not move, say why
                record.note_error(err)
            else:  # maintenance, a server error, a network failure or timeout: say so too, and keep asking
                record.note_failure(err)
            return Look.FAILED, False  # looked at again later, backing off while it lasts
        record.note_error(err)
        return Look.REFUSED, False
    if links is None:
        record.apply(status, typical(record.model))
    else:
        record.apply(status, typical(record.model), links(record.model))
    if not status.understood:
        return Look.FAILED, False
    return Look.SEEN, status.progress is not None
