"""What this server knows about each task it created or was asked about."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from kie_mcp.journal import Journal
from kie_mcp.kie import KieError, TaskStatus

RecordState = Literal["queued", "running", "succeeded", "failed", "unknown"]


class TaskRecord(BaseModel):
    """One KIE task as the tools report it."""

    task_id: str | None = Field(description="KIE's task id; null only when the create's outcome is unknown.")
    model: str
    family: str
    kind: str | None = None
    state: RecordState
    progress: float | None = Field(default=None, description="0-1, reported or estimated from typical duration.")
    result_urls: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list, description="Saved copies, relative to the workspace.")
    credits_quoted: float | None = None
    credits_charged: float | None = None
    eta_seconds: int | None = Field(default=None, description="Rough seconds left, from the model's typical time.")
    error: str | None = None
    fail_code: str | None = None
    created_at: float = Field(default_factory=time.time)
    sandbox: bool = False

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "unknown")

    def apply(self, status: TaskStatus, typical: tuple[int, int] | None) -> None:
        """Take KIE's latest word on this task."""
        self.state = status.state.value
        self.result_urls = status.result_urls or self.result_urls
        if status.credits_charged is not None:
            self.credits_charged = status.credits_charged
        if status.state.value == "failed":
            code = f" (code {status.fail_code})" if status.fail_code else ""
            self.error = f"KIE reports the task failed{code}: {status.fail_message or 'no reason given'}."
            self.fail_code = status.fail_code
        self.progress = 1.0 if self.finished else status.progress
        elapsed = time.time() - self.created_at
        if not self.finished and typical:
            self.eta_seconds = max(int(typical[1] - elapsed), 1)
            if self.progress is None:
                self.progress = round(min(elapsed / typical[1], 0.95), 3)
        else:
            self.eta_seconds = None

    def note_error(self, err: KieError) -> None:
        self.error = err.describe()


class TaskBook:
    """Tasks by id, kept in the workspace journal: a restarted or second server knows every one of them."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def add(self, record: TaskRecord, **context: Any) -> None:
        """Save ``record`` (context: attempt_id, prompt, session); records without a task id are not tasks."""
        if record.task_id:
            self.journal.save_task(
                record.model_dump_json(),
                task_id=record.task_id,
                model=record.model,
                state=record.state,
                created=record.created_at,
                **context,
            )

    def get(self, task_id: str) -> TaskRecord | None:
        row = self.journal.task_row(task_id)
        return TaskRecord.model_validate_json(row["record"]) if row else None

    def find(self, **filters: Any) -> list[TaskRecord]:
        return [TaskRecord.model_validate_json(row["record"]) for row in self.journal.find_tasks(**filters)]
