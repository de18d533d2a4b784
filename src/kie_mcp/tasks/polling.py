"""Following tasks to the end: bounded waits, backoff, and a progress report on every change."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio

from kie_mcp.kie import FAMILIES, KieClient, KieError

from .records import TaskRecord

log = logging.getLogger(__name__)

# Right after create, KIE may not show the task yet ("recordInfo is null"); that is not an error.
VISIBILITY_GRACE_SECONDS = 30.0

OnUpdate = Callable[[list[TaskRecord]], Awaitable[None]]
Typical = Callable[[str], tuple[int, int] | None]


async def refresh(kie: KieClient, typical: Typical, record: TaskRecord) -> None:
    """Ask KIE once about ``record`` and fold the answer in; network hiccups leave it as it was."""
    if record.task_id is None or record.finished:
        return
    family = FAMILIES[record.family]
    try:
        status = await kie.status(family, record.task_id)
    except KieError as err:
        young = time.time() - record.created_at < VISIBILITY_GRACE_SECONDS
        if young and family.is_not_visible(err.message):
            return
        if not err.retryable:
            record.note_error(err)
        log.info("status of %s: %s", record.task_id, err.message)
        return
    record.apply(status, typical(record.model))


async def follow(
    kie: KieClient,
    typical: Typical,
    records: list[TaskRecord],
    *,
    budget: float,
    min_interval: float,
    max_interval: float,
    on_update: OnUpdate,
) -> None:
    """Poll until every task has finished or ``budget`` seconds have passed (0: look once)."""
    deadline = time.monotonic() + budget
    interval = min_interval
    while True:
        async with anyio.create_task_group() as group:
            for record in records:
                group.start_soon(refresh, kie, typical, record)
        await on_update(records)
        left = deadline - time.monotonic()
        if all(r.finished for r in records) or left <= 0:
            return
        await anyio.sleep(min(interval, left))
        interval = min(interval * 1.5, max_interval)
