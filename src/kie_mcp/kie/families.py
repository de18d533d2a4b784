"""The API families: where each creates and queries tasks, and how its answers read.

Each family is one small adapter. Adding a family means one more ``Family`` subclass here and
an entry in ``FAMILIES``; the client, the poller and the tools stay as they are.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .status import TaskState, TaskStatus, collect_urls, number_or_none, parse_json_text


class Family:
    name: ClassVar[str]
    create_path: ClassVar[str]
    status_path: ClassVar[str]
    # Messages meaning "KIE does not show this task (yet)": normal for a few seconds after create.
    not_visible_messages: ClassVar[tuple[str, ...]] = ()

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        raise NotImplementedError

    def is_not_visible(self, message: str) -> bool:
        lowered = message.lower()
        return any(text in lowered for text in self.not_visible_messages)


class MarketFamily(Family):
    """``/api/v1/jobs/*``: most models. ``resultJson`` and ``param`` arrive as JSON text."""

    name = "market"
    create_path = "/api/v1/jobs/createTask"
    status_path = "/api/v1/jobs/recordInfo"
    not_visible_messages = ("recordinfo is null",)
    _STATES: ClassVar[dict[str, TaskState]] = {
        "waiting": TaskState.QUEUED,
        "queuing": TaskState.QUEUED,
        "generating": TaskState.RUNNING,
        "success": TaskState.SUCCEEDED,
        "fail": TaskState.FAILED,
    }

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return {"model": model_id, "input": wire_input}

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        raw = str(data.get("state") or "")
        state = self._STATES.get(raw.lower(), TaskState.RUNNING)
        result = parse_json_text(data.get("resultJson")) or {}
        urls: list[str] = []
        if isinstance(result, dict):
            for key in ("resultUrls", "images", "videos", "firstFrameUrl", "lastFrameUrl"):
                urls += [u for u in collect_urls(result.get(key)) if u not in urls]
        progress = number_or_none(data.get("progress"))
        credits = number_or_none(data.get("creditsConsumed"))
        if credits is None:
            credits = number_or_none(data.get("consumeCredits"))
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state,
            raw_state=raw or "unknown",
            model=data.get("model"),
            progress=None if progress is None else min(max(progress / 100.0, 0.0), 1.0),
            result_urls=urls,
            fail_code=str(data["failCode"]) if data.get("failCode") not in (None, "") else None,
            fail_message=data.get("failMsg") or None,
            credits_charged=credits,
            created_at_ms=_int_or_none(data.get("createTime")),
            completed_at_ms=_int_or_none(data.get("completeTime")),
        )


class VeoFamily(Family):
    """``/api/v1/veo/*``: Veo 3.1. ``successFlag`` 0 running, 1 success, 2 failed, 3 upstream failed."""

    name = "veo"
    create_path = "/api/v1/veo/generate"
    status_path = "/api/v1/veo/record-info"
    not_visible_messages = ("record is null", "recordinfo is null")
    hd_path = "/api/v1/veo/get-1080p-video"
    uhd_path = "/api/v1/veo/get-4k-video"
    extend_path = "/api/v1/veo/extend"

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return {"model": model_id, **wire_input}

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        flag = data.get("successFlag")
        flag_int = int(flag) if isinstance(flag, int | str) and str(flag).isdigit() else None
        state = {0: TaskState.RUNNING, 1: TaskState.SUCCEEDED, 2: TaskState.FAILED, 3: TaskState.FAILED}.get(
            flag_int if flag_int is not None else -1, TaskState.RUNNING
        )
        response = parse_json_text(data.get("response")) or {}
        urls = collect_urls(response.get("resultUrls")) if isinstance(response, dict) else []
        message = data.get("errorMessage") or None
        if flag_int == 3 and not message:
            message = "The task was created but generation failed upstream."
        param = parse_json_text(data.get("paramJson"))
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state,
            raw_state=f"successFlag={flag}",
            model=param.get("model") if isinstance(param, dict) else None,
            result_urls=urls,
            fail_code=str(data["errorCode"]) if data.get("errorCode") not in (None, "", 0) else None,
            fail_message=message if state is TaskState.FAILED else None,
        )


def _int_or_none(value: Any) -> int | None:
    number = number_or_none(value)
    return None if number is None else int(number)


FAMILIES: dict[str, Family] = {family.name: family for family in (MarketFamily(), VeoFamily())}


def family_for_task_id(task_id: str) -> list[Family]:
    """The families to ask about a task we did not create, most likely first."""
    order = ["veo", "market"] if task_id.startswith("veo") else ["market", "veo"]
    return [FAMILIES[name] for name in order]
