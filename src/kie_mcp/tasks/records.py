"""What this server knows about each task it created or was asked about."""

from __future__ import annotations

import threading
import time
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr

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
    credits_quoted: float | None = None
    credits_charged: float | None = None
    eta_seconds: int | None = Field(default=None, description="Rough seconds left, from the model's typical time.")
    error: str | None = None
    fail_code: str | None = None
    created_at: float = Field(default_factory=time.time)
    sandbox: bool = False
    _settled: bool = PrivateAttr(default=False)

    @property
    def settled(self) -> bool:
        """Whether today's spend already reflects this task's final charge."""
        return self._settled

    @settled.setter
    def settled(self, value: bool) -> None:
        self._settled = value

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
    """Tasks by id, in memory for the life of the server process."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: TaskRecord) -> None:
        if record.task_id:
            with self._lock:
                self._tasks[record.task_id] = record

    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            return self._tasks.get(task_id)

    def all(self) -> list[TaskRecord]:
        with self._lock:
            return list(self._tasks.values())
