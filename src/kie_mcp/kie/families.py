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


class RunwayFamily(Family):
    """``/api/v1/runway/*``: Runway video. ``state`` wait/queueing/generating/success/fail, one ``videoInfo``."""

    name = "runway"
    model_id = "runway-video"
    create_path = "/api/v1/runway/generate"
    status_path = "/api/v1/runway/record-detail"
    extend_path = "/api/v1/runway/extend"
    not_visible_messages = ("recorddetail is null", "record is null", "recordinfo is null")
    _STATES: ClassVar[dict[str, TaskState]] = {
        "wait": TaskState.QUEUED,
        "queueing": TaskState.QUEUED,
        "queuing": TaskState.QUEUED,
        "generating": TaskState.RUNNING,
        "success": TaskState.SUCCEEDED,
        "fail": TaskState.FAILED,
    }

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        # KIE's docs mark callBackUrl required; kie-mcp polls, so it sends an empty one (as KIE's examples do).
        return {**wire_input, "callBackUrl": ""}

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        raw = str(data.get("state") or "")
        state = self._STATES.get(raw.lower(), TaskState.RUNNING)
        info = parse_json_text(data.get("videoInfo")) or {}
        urls: list[str] = []
        if isinstance(info, dict):
            urls = collect_urls(info.get("videoUrl") or info.get("video_url"))
        message = data.get("failMsg") or None
        if state is TaskState.FAILED and not message:
            message = "Runway reported the generation failed."
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state,
            raw_state=raw or "unknown",
            model=self.model_id,
            result_urls=urls if state is TaskState.SUCCEEDED else [],
            fail_code=_code_or_none(data.get("failCode")) if state is TaskState.FAILED else None,
            fail_message=message if state is TaskState.FAILED else None,
        )


class AlephFamily(Family):
    """``/api/v1/aleph/*``: Runway Aleph video-to-video. ``successFlag`` 1 = success; 0 = running, or failed
    when ``errorCode``/``errorMessage`` is set (kie-api.md §9)."""

    name = "aleph"
    model_id = "runway-aleph"
    create_path = "/api/v1/aleph/generate"
    status_path = "/api/v1/aleph/record-info"
    not_visible_messages = ("record is null", "recordinfo is null")

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return dict(wire_input)

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        flag = _flag(data.get("successFlag"))
        code = _code_or_none(data.get("errorCode"), ok=("0", "200"))
        message = data.get("errorMessage") or None
        if flag == 1:
            state = TaskState.SUCCEEDED
        elif code is not None or message:
            state = TaskState.FAILED
        else:
            state = TaskState.RUNNING
        response = parse_json_text(data.get("response")) or {}
        urls: list[str] = []
        if isinstance(response, dict) and state is TaskState.SUCCEEDED:
            urls = collect_urls(response.get("resultVideoUrl") or response.get("result_video_url"))
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state,
            raw_state=f"successFlag={data.get('successFlag')}",
            model=self.model_id,
            result_urls=urls,
            fail_code=code if state is TaskState.FAILED else None,
            fail_message=(message or "Aleph reported an error.") if state is TaskState.FAILED else None,
        )


class Gpt4oImageFamily(Family):
    """``/api/v1/gpt4o-image/*``: GPT-4o Image. ``status`` GENERATING/SUCCESS/CREATE_TASK_FAILED/GENERATE_FAILED
    beside ``successFlag`` 0/1/2; ``progress`` is a string "0.00".."1.00"; times are ms."""

    name = "gpt4o"
    model_id = "gpt-4o-image"
    create_path = "/api/v1/gpt4o-image/generate"
    status_path = "/api/v1/gpt4o-image/record-info"
    download_path = "/api/v1/gpt4o-image/download-url"
    not_visible_messages = ("record is null", "recordinfo is null")
    _STATUSES: ClassVar[dict[str, TaskState]] = {
        "GENERATING": TaskState.RUNNING,
        "SUCCESS": TaskState.SUCCEEDED,
        "CREATE_TASK_FAILED": TaskState.FAILED,
        "GENERATE_FAILED": TaskState.FAILED,
    }
    _FLAGS: ClassVar[dict[int, TaskState]] = {0: TaskState.RUNNING, 1: TaskState.SUCCEEDED, 2: TaskState.FAILED}

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return dict(wire_input)

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        status = str(data.get("status") or "").upper()
        flag = _flag(data.get("successFlag"))
        state = self._STATUSES.get(status) or self._FLAGS.get(flag if flag is not None else -1, TaskState.RUNNING)
        response = parse_json_text(data.get("response")) or {}
        urls: list[str] = []
        if isinstance(response, dict):  # docs disagree on the key: resultUrls (OpenAPI) vs result_urls (example)
            urls = collect_urls(response.get("resultUrls")) or collect_urls(response.get("result_urls"))
        progress = number_or_none(data.get("progress"))
        if progress is not None and progress > 1.0:
            progress /= 100.0  # tolerate a percentage
        message = data.get("errorMessage") or None
        if state is TaskState.FAILED and not message:
            message = f"GPT-4o Image reported {status or 'a failure'}."
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state,
            raw_state=status or f"successFlag={data.get('successFlag')}",
            model=self.model_id,
            progress=None if progress is None else min(max(progress, 0.0), 1.0),
            result_urls=urls if state is TaskState.SUCCEEDED else [],
            fail_code=_code_or_none(data.get("errorCode"), ok=("0", "200")) if state is TaskState.FAILED else None,
            fail_message=message if state is TaskState.FAILED else None,
            created_at_ms=_int_or_none(data.get("createTime")),
            completed_at_ms=_int_or_none(data.get("completeTime")),
        )


class FluxKontextFamily(Family):
    """``/api/v1/flux/kontext/*``: Flux Kontext pro/max. ``successFlag`` 0 running, 1 success, 2 failed,
    3 upstream failed; the body names the model."""

    name = "flux"
    create_path = "/api/v1/flux/kontext/generate"
    status_path = "/api/v1/flux/kontext/record-info"
    not_visible_messages = ("record is null", "recordinfo is null")
    default_model = "flux-kontext-pro"

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return {"model": model_id, **wire_input}

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        flag = _flag(data.get("successFlag"))
        state = {0: TaskState.RUNNING, 1: TaskState.SUCCEEDED, 2: TaskState.FAILED, 3: TaskState.FAILED}.get(
            flag if flag is not None else -1, TaskState.RUNNING
        )
        response = parse_json_text(data.get("response")) or {}
        urls: list[str] = []
        if isinstance(response, dict) and state is TaskState.SUCCEEDED:
            # resultImageUrl is KIE's copy (kept 14 days); originImageUrl is the upstream one (valid 10 min).
            urls = collect_urls(response.get("resultImageUrl")) or collect_urls(response.get("originImageUrl"))
        message = data.get("errorMessage") or None
        if flag == 3 and not message:
            message = "The task was created but generation failed upstream."
        param = parse_json_text(data.get("paramJson"))
        model = param.get("model") if isinstance(param, dict) else None
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state,
            raw_state=f"successFlag={data.get('successFlag')}",
            model=model or self.default_model,
            result_urls=urls,
            fail_code=_code_or_none(data.get("errorCode")) if state is TaskState.FAILED else None,
            fail_message=(message or "Flux Kontext reported a failure.") if state is TaskState.FAILED else None,
        )


def _flag(value: Any) -> int | None:
    """A ``successFlag`` as an int, whether KIE sent 1 or "1"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _code_or_none(value: Any, ok: tuple[str, ...] = ("0",)) -> str | None:
    """An error code as text, or None when absent or one of the family's "no error" values."""
    if value in (None, "") or isinstance(value, bool):
        return None
    text = str(value).strip()
    return None if not text or text in ok else text


def _int_or_none(value: Any) -> int | None:
    number = number_or_none(value)
    return None if number is None else int(number)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        MarketFamily(),
        VeoFamily(),
        RunwayFamily(),
        AlephFamily(),
        Gpt4oImageFamily(),
        FluxKontextFamily(),
    )
}

# Id prefixes seen from KIE (``veo_task_...``) or issued by the simulator. Real ids are mostly opaque
# (32-hex, UUIDs), so a prefix only puts its family first; every family is still asked in turn.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("veo", "veo"),
    ("runway_", "runway"),
    ("aleph_", "aleph"),
    ("4o_", "gpt4o"),
    ("flux_", "flux"),
)
_DEFAULT_ORDER = ("market", "veo", "runway", "aleph", "gpt4o", "flux")


def family_for_task_id(task_id: str) -> list[Family]:
    """The families to ask about a task we did not create, most likely first."""
    first = next((name for prefix, name in _PREFIXES if task_id.startswith(prefix)), None)
    order = [first] if first else []
    order += [name for name in _DEFAULT_ORDER if name != first]
    return [FAMILIES[name] for name in order]
