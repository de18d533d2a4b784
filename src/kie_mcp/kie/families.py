"""The API families: where each creates and queries tasks, and how its answers read.

Each family is one small adapter. Adding a family means one more ``Family`` subclass here and
an entry in ``FAMILIES``; the client, the poller and the tools stay as they are.

A status word (or flag) outside a family's documented vocabulary ends nothing: its ``TaskStatus`` is not
``understood``, and the task stays unfinished, with KIE's word and message noted on it (``TaskRecord.apply``).
No family's documentation lists a cancelled, timed-out or expired state (checked 2026-12 against
docs.kie.ai/market/common/get-task-detail, veo3-api/get-veo-3-video-details, runway-api/get-ai-video-details,
runway-api/get-aleph-video-details, 4o-image-api/get-4-o-image-details, flux-kontext-api/get-image-details).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

from kie_mcp.words import made_of, plain

from .errors import LOGS_URL
from .status import (
    TaskState,
    TaskStatus,
    charge_of,
    collect_urls,
    int_or_none,
    links_in,
    number_or_none,
    parse_json_text,
    unreadable_json_text,
)
from .text import as_text, usable_task_id


class Family:
    name: ClassVar[str]
    create_path: ClassVar[str]
    create_method: ClassVar[str] = "POST"  # Veo's 1080p version is asked for with a GET
    status_path: ClassVar[str]
    # Messages meaning "KIE does not show this task (yet)": normal for a few seconds after create. Every family's
    # list holds KIE's 404 "Task not found" (documented for Market and Aleph; the other status endpoints list a 404
    # too, and the words mean nothing else there) beside the field-reported "... is null" and the words KIE answered
    # live for a task it does not know.
    not_visible_messages: ClassVar[tuple[str, ...]] = ()
    # True where KIE answers a status check of a task it does not know (or does not show yet) with success and no
    # record (``data`` null) rather than a refusal: the status call then raises ``NoTaskRecord`` as that answer
    # (not retried as an unreadable one), and ``is_not_visible`` takes its words, so it is waited for while the task
    # is young and said to be unknown to KIE after, as other families' "record is null".
    null_record_unknown: ClassVar[bool] = False
    # How a model of another family reached KIE through this one ("unified": Veo 3.1 on jobs/createTask); None for
    # a family's own endpoint. A follow-up's rules read it as the fact ``source.route``.
    route: ClassVar[str | None] = None

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        raise NotImplementedError

    def is_not_visible(self, message: str) -> bool:
        lowered = message.lower()
        if self.null_record_unknown and NO_TASK_RECORD in lowered:
            return True
        return any(text in lowered for text in self.not_visible_messages)

    def status_params(self, task_id: str) -> dict[str, Any]:
        """The query that asks KIE about ``task_id``."""
        return {"taskId": task_id}

    def status_from_error(self, task_id: str, message: str) -> TaskStatus | None:
        """A non-200 status answer that is no error in this family (Veo 1080p: KIE is still preparing it)."""
        return None

    def created_id(self, data: Any, body: dict[str, Any]) -> str | None:
        """The task id a successful create answer names. None when it names none, or names the very task a
        follow-up continues (KIE's own example answer of get-4k-video does): that is no new task, and following it
        would take the source's result for the new one and overwrite the source's record."""
        task_id = named_task_id(data)
        if task_id is None or _is_source(task_id, body):
            return None
        return task_id

    def unnamed(self, data: Any, body: dict[str, Any]) -> tuple[str, str | None]:
        """Why a successful create answer gave no task to follow, and what to do (None: the advice for any create
        whose outcome is unknown: do not submit it again, look at KIE's logs)."""
        task_id = named_task_id(data)
        if task_id is not None and _is_source(task_id, body):
            return (
                f"KIE said success but named the task this one continues ({task_id}), not a new task of its own, so "
                "the new task cannot be followed",
                None,
            )
        named = data.get("taskId") if isinstance(data, dict) else None
        if named is not None and named != "":
            return f"KIE said success but named no usable task id ({as_text(named, limit=60)})", None
        return "KIE said success but returned no task id", None

    def refused_but_exists(self, code: int | None, message: str, data: Any, body: dict[str, Any]) -> Existing | None:
        """A create answered with a non-200 code that still names the task it is about (None: a plain refusal)."""
        return None

    def refusal_step(self, code: int | None, message: str, body: dict[str, Any]) -> str | None:
        """What to do after a plain refusal of a create, when KIE's advice for ``code`` (written for a generation:
        "fix the field", "change the prompt") does not fit this endpoint; None keeps that advice."""
        return unknown_source_step(message, body)


# KIE's answer when it has no task of that id under the key ("record is null" and the like, in any family). Recorded
# live (justintanner/apicity tests/recordings/kie_2079838932): GPT-4o Image's and Flux Kontext's record-info answer
# 422 "The record does not exist" (2026-06-27), Veo's 422 "Record not found for taskId: <id>" (2026-07-03).
UNKNOWN_TASK_MESSAGES = (
    "record is null",
    "recordinfo is null",
    "recorddetail is null",
    "task not found",
    "record does not exist",
    "record not found",
)
# The words of kie-mcp's error for a status answer of "success" with no record (``NoTaskRecord``): in a family that
# answers so for a task it does not know (``Family.null_record_unknown``), they mean what "record is null" means.
NO_TASK_RECORD = "no task record"
# What a failure flag saying "created, but generation failed upstream" (Veo's, Flux Kontext's and Aleph's 3) means,
# when KIE gives no message beside it.
UPSTREAM_FAILED = "The task was created but generation failed upstream."


def unknown_source_step(message: str, body: dict[str, Any]) -> str | None:
    """A follow-up's create (it names the task it continues) refused because KIE has no such task: there is no
    field to fix. Say which task KIE does not know, and why that happens."""
    source = body.get("taskId") or (body.get("input") or {}).get("task_id")
    if not source or not any(text in message.lower() for text in UNKNOWN_TASK_MESSAGES):
        return None
    return (
        f"KIE does not know task {source} under the current API key: it was made with another account's key, or KIE "
        f"no longer keeps it (KIE keeps tasks for 14 days). Nothing was started or charged. {LOGS_URL} shows the "
        "tasks of the account whose key is set; continue a video from there, or make a new one."
    )


def clip_refused(
    code: int | None, message: str, body: dict[str, Any], codes: tuple[int, ...], advice: Callable[[Any], str]
) -> str | None:
    """A follow-up's plain refusal with one of ``codes`` (others, such as auth, credits, quota, limits and
    maintenance, keep KIE's own advice): a source KIE does not know, said as such; else ``advice`` for the clip
    (``taskId``), instead of "fix the field" there is no field to fix."""
    if code not in codes:
        return None
    if (unknown := unknown_source_step(message, body)) is not None:
        return unknown
    return advice(body.get("taskId"))


class Existing(NamedTuple):
    """A task a refused-looking create answer names: ``charged`` when this very request started it (and paid).
    ``result_urls``: the finished task's links, when the answer carries them and names no task to follow."""

    task_id: str
    charged: bool
    result_urls: tuple[str, ...] = ()


class MarketFamily(Family):
    """``/api/v1/jobs/*``: most models. ``resultJson`` and ``param`` arrive as JSON text."""

    name = "market"
    create_path = "/api/v1/jobs/createTask"
    status_path = "/api/v1/jobs/recordInfo"
    # Field reports: "recordInfo is null" for a few seconds after create; KIE's docs now answer an unknown task
    # with 404 "Task not found" (docs.kie.ai/market/common/get-task-detail, 2026-12).
    not_visible_messages = ("recordinfo is null", "task not found")
    # KIE's whole vocabulary (docs.kie.ai/market/common/get-task-detail, "Task States", 2026-12).
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
        state = self._STATES.get(raw.lower())
        result = parse_json_text(data.get("resultJson")) or {}
        urls: list[str] = []
        if isinstance(result, dict):
            urls = links_in(result, ("resultUrls", "images", "videos", "firstFrameUrl", "lastFrameUrl"))
            nested = result.get("data")
            if not urls and isinstance(nested, dict):  # Veo 3.1 at 1080p/4K: {"data": {"result_urls", "origin_urls"}}
                urls = links_in(nested, ("result_urls",))  # origin_urls is the upstream copy, never the result
        progress = number_or_none(data.get("progress"))
        credits, garbled = charge_of(data.get("creditsConsumed"))
        if credits is None:  # the older name; a charge readable under either is the one KIE reported
            credits, also = charge_of(data.get("consumeCredits"))
            garbled = credits is None and (garbled or also)
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state or TaskState.RUNNING,
            raw_state=raw,
            understood=state is not None,
            model=data.get("model"),
            progress=None if progress is None else min(max(progress / 100.0, 0.0), 1.0),
            result_urls=urls,
            results_unreadable=unreadable_json_text(data.get("resultJson")),
            fail_code=str(data["failCode"]) if data.get("failCode") not in (None, "") else None,
            fail_message=data.get("failMsg") or None,
            credits_charged=credits,
            charge_unreadable=garbled,
            created_at_ms=int_or_none(data.get("createTime")),
            completed_at_ms=int_or_none(data.get("completeTime")),
        )


class VeoUnifiedFamily(MarketFamily):
    """Veo 3.1 generations sent to the Market endpoint (``KIE_VEO_ROUTE=unified``): ``{"model": "veo-3-1", "input":
    {"model": <tier>, ...}}`` on ``jobs/createTask``, followed on ``jobs/recordInfo`` with the Market's vocabulary.
    ``resultJson`` holds ``resultUrls`` (720p) or ``data.result_urls`` (1080p, 4K). A family of its own so a task
    made this way is known as such: KIE documents its Veo follow-ups for it only on the unified endpoint, which
    kie-mcp does not use, so continue_video refuses it (``route``) rather than guess."""

    name = "veo-unified"
    route: ClassVar[str | None] = "unified"


class VeoFamily(Family):
    """``/api/v1/veo/*``: Veo 3.1. ``successFlag`` 0 running, 1 success, 2 failed, 3 upstream failed."""

    name = "veo"
    create_path = "/api/v1/veo/generate"
    status_path = "/api/v1/veo/record-info"
    # Live, an unknown task: 422 "Record not found for taskId: <id>" (UNKNOWN_TASK_MESSAGES, 2026-07-03).
    not_visible_messages = ("record is null", "recordinfo is null", "task not found", "record not found")
    hd_path = "/api/v1/veo/get-1080p-video"
    uhd_path = "/api/v1/veo/get-4k-video"
    extend_path = "/api/v1/veo/extend"
    extends: ClassVar[bool] = False  # an extension's record: its whole video (fullResultUrls) is a result too

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return {"model": model_id, **wire_input}

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        flag = data.get("successFlag")
        flag_int = _flag(flag)
        state = SUCCESS_FLAGS.get(flag_int) if flag_int is not None else None
        response = parse_json_text(data.get("response")) or {}
        param = parse_json_text(data.get("paramJson"))
        urls: list[str] = []
        if isinstance(response, dict):
            urls = _veo_links(response, extension=self.extends or _veo_model(param) == "veo/extend")
        message = data.get("errorMessage") or None
        if flag_int == 3 and not message:
            message = UPSTREAM_FAILED
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state or TaskState.RUNNING,
            raw_state=f"successFlag={flag}",
            understood=state is not None,
            model=_veo_model(param),
            result_urls=urls,
            results_unreadable=unreadable_json_text(data.get("response")),
            fail_code=str(data["errorCode"]) if data.get("errorCode") not in (None, "", 0) else None,
            fail_message=message if state in (TaskState.FAILED, None) else None,
        )


class RunwayFamily(Family):
    """``/api/v1/runway/*``: Runway video. ``state`` wait/queueing/generating/success/fail, one ``videoInfo``."""

    name = "runway"
    model_id = "runway-video"
    create_path = "/api/v1/runway/generate"
    status_path = "/api/v1/runway/record-detail"
    extend_path = "/api/v1/runway/extend"
    not_visible_messages = ("recorddetail is null", "record is null", "recordinfo is null", "task not found")
    # Live, record-detail answers a task it does not know with {"code": 200, "msg": "success", "data": null}
    # (justintanner/apicity kie/runway/record-detail-not-found, 2026-06-27).
    null_record_unknown = True
    # KIE's whole vocabulary (docs.kie.ai/runway-api/get-ai-video-details, "Status Descriptions", 2026-12: wait,
    # queueing, generating, success, fail), and the market API's spelling of queuing.
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
        state = self._STATES.get(raw.lower())
        info = parse_json_text(data.get("videoInfo")) or {}
        urls: list[str] = []
        if isinstance(info, dict):
            urls = collect_urls(info.get("videoUrl") or info.get("video_url"))
        message = data.get("failMsg") or None
        if state is TaskState.FAILED and not message:
            message = "Runway reported the generation failed."
        said = state in (TaskState.FAILED, None)  # KIE's code and message: a failure's, or beside an unknown word
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state or TaskState.RUNNING,
            raw_state=raw,
            understood=state is not None,
            model=self.model_id,
            result_urls=urls if state is TaskState.SUCCEEDED else [],
            results_unreadable=unreadable_json_text(data.get("videoInfo")),
            fail_code=_code_or_none(data.get("failCode")) if said else None,
            fail_message=message if said else None,
        )


class RunwayExtendFamily(RunwayFamily):
    """``POST /api/v1/runway/extend``: a new Runway task continuing a finished one, followed on record-detail."""

    name = "runway-extend"
    create_path = RunwayFamily.extend_path


class VeoExtendFamily(VeoFamily):
    """``POST /api/v1/veo/extend``: a new Veo task continuing a finished one, followed on Veo's record-info. The
    body is the wire input itself (``taskId``, ``prompt``, ``model`` fast/quality/lite, ...)."""

    name = "veo-extend"
    create_path = VeoFamily.extend_path
    extends = True
    # KIE's refusals of the clip itself ("Videos upgraded to 1080P cannot be extended", "Only videos generated by Veo
    # can be extended"); any other (a flagged prompt) keeps KIE's own advice.
    clip_messages = ("cannot be extended", "can be extended", "upgraded to 1080p")

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return dict(wire_input)

    def refusal_step(self, code: int | None, message: str, body: dict[str, Any]) -> str | None:
        """A refused extension ("Videos upgraded to 1080P cannot be extended", "Only videos generated by Veo can be
        extended"): the clip cannot be extended, and there is no field to fix. Say so and what can be done."""
        if not any(text in message.lower() for text in self.clip_messages):  # a prompt KIE flagged: its own advice
            return unknown_source_step(message, body)
        return clip_refused(
            code,
            message,
            body,
            (400, 422),
            lambda source: (
                f"KIE will not extend task {source} (its answer above says why: a clip whose 1080p version was "
                "requested, by kie-mcp or elsewhere, or one no Veo 3.1 model made, cannot be extended). Nothing was "
                "started or charged. Extend another Veo clip of this scene, or make a new clip from its last frame "
                "with generate_video; operation=upscale still sharpens this one."
            ),
        )


def _veo_model(param: Any) -> str | None:
    """The model a Veo record's parameters name. A follow-up's body names the clip it continues (``taskId``): with a
    prompt it is an extend (its ``model`` is a tier: fast, quality, lite), without one the 4K request
    (``{taskId, index}``). A generation names its model, or (KIE's documented example) none."""
    if not isinstance(param, dict):
        return None
    model = param.get("model") if isinstance(param.get("model"), str) else None
    if param.get("taskId"):
        if param.get("prompt") and model in (None, "fast", "quality", "lite"):
            return "veo/extend"
        if model is None:
            return "veo/get-4k-video"
    return model


def _veo_links(response: dict[str, Any], *, extension: bool) -> list[str]:
    """A Veo record's result links. ``fullResultUrls`` is "Full video URLs after extended", yet KIE's schema marks it
    required and its example of a plain generation fills it beside a ``resultUrls`` of another link
    (docs.kie.ai/veo3-api/get-veo-3-video-details, OpenAPI, read 2026-12): taken for every record, it would save one
    clip twice. So an extension's whole video comes first, then its new part; any other task's result is its
    ``resultUrls`` (its ``fullResultUrls`` only when it has no other link)."""
    if extension:
        return links_in(response, ("fullResultUrls", "resultUrls"))
    return links_in(response, ("resultUrls",)) or links_in(response, ("fullResultUrls",))


def named_task_id(data: Any) -> str | None:
    """The task id an answer's ``data`` names, when it is one kie-mcp can use (``usable_task_id``); None when it
    names none, or something that is no task id (a list, an object, ``true``, blanks, a line break, a credential)."""
    return usable_task_id(data.get("taskId")) if isinstance(data, dict) else None


def _is_source(task_id: Any, body: dict[str, Any]) -> bool:
    source = body.get("taskId")  # the clip a follow-up continues; a first generation's body has none
    return source is not None and str(task_id) == str(source)


class Veo4kFamily(VeoFamily):
    """``POST /api/v1/veo/get-4k-video``: a 4K task of its own, followed on record-info. Asked again for the same
    clip, KIE answers 422 ("4k is processing ...", or with the result) naming the 4K task it already has: that
    request started nothing and was not charged."""

    name = "veo-4k"
    create_path = VeoFamily.uhd_path
    suffix = "-4k"  # a finished 4K KIE answered with its links but no task of its own: ``<source id>-4k``

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return dict(wire_input)

    # KIE's 422 to a repeated request for the same clip: its 4K version is being made ("4k is processing. It should
    # be ready in 5-10 minutes ..."), or is done ("The video has been generated successfully", as KIE's docs word it:
    # docs.kie.ai/veo3-api/get-veo-3-4k-video, "Error Responses", read 2026-12; "4k video already generated" is the
    # wording seen before). Read by how the message starts, never by words found anywhere in it: "The video has not
    # been generated successfully, 4K cannot be requested" holds the same words and says the opposite.
    processing_messages = ("4k is processing",)
    done_messages = ("the video has been generated successfully", "4k video already generated")

    def says_done(self, message: str) -> bool:
        return message.strip().lower().startswith(self.done_messages)

    def says_repeat(self, message: str) -> bool:
        return self.says_done(message) or message.strip().lower().startswith(self.processing_messages)

    def refused_but_exists(self, code: int | None, message: str, data: Any, body: dict[str, Any]) -> Existing | None:
        """The 4K task KIE's 422 names, or (a done 4K whose answer names none, or names the source clip) the 4K's
        links it carries, recorded as ``<source id>-4k``: nothing new was started or charged either way. Links
        are taken only beside KIE's own sentence for a done 4K; whether they are the source clip's own links (then
        they are no 4K) only the journal knows, and ``generation._submit`` checks that before recording them."""
        if code != 422:
            return None
        task_id = named_task_id(data)
        if task_id is not None and not _is_source(task_id, body):
            return Existing(task_id, charged=False)
        urls = links_in(data, ("resultUrls",)) if isinstance(data, dict) else []
        source = usable_task_id(body.get("taskId"))
        if urls and source and self.says_done(message):
            return Existing(f"{source}{self.suffix}", charged=False, result_urls=tuple(urls))
        return None

    def unnamed(self, data: Any, body: dict[str, Any]) -> tuple[str, str | None]:
        """A 4K request KIE took without naming its 4K task: it is made once per clip, and asked again KIE answers
        with that task (422, nothing new, not charged), so asking again is how to find it."""
        message, _ = super().unnamed(data, body)
        source = body.get("taskId")
        if not source:
            return message, None
        return message, (
            f"KIE probably started (and charged) the 4K version of task {source}. Find that 4K task at {LOGS_URL} and "
            "follow it with check_task(task_id=<its id>). KIE makes one 4K version per clip and answers a repeated "
            f"request with the one it has, so continue_video(task_id='{source}', operation='4k') in a few minutes "
            "also finds it: it is quoted and approved like any request, and the reservation is returned when KIE "
            "names its 4K task. If that answer again names no 4K task, do not ask a third time: use the logs."
        )

    def refusal_step(self, code: int | None, message: str, body: dict[str, Any]) -> str | None:
        """KIE's "4k is processing" (or "The video has been generated successfully") without a 4K task to follow:
        the 4K version exists, but there is no task id to follow. Say so, and where to find it, rather than "fix
        the field". Asking again helps only while it is being made: a done 4K is answered the same way again."""
        if code != 422 or not self.says_repeat(message):
            return unknown_source_step(message, body)
        source = body.get("taskId")
        done = self.says_done(message)
        again = (
            "Asking for it again gets the same answer."
            if done
            else f"Or call continue_video(task_id='{source}', operation='4k') again in a few minutes: when KIE names "
            "its 4K task, kie-mcp follows it and charges nothing."
        )
        return (
            f"A 4K version of task {source} {'has already been made' if done else 'is already being made'} (asked "
            "for earlier, by kie-mcp, another tool or on kie.ai), and KIE's answer did not say which task it is. This "
            "request started nothing, and nothing was charged. Find the 4K task with list_tasks (it shows "
            f"'({made_of('4k', str(source))})' when this workspace asked for it) or at {LOGS_URL}, then follow it with "
            f"check_task(task_id=<its id>). {again}"
        )


class Veo1080pFamily(VeoFamily):
    """``GET /api/v1/veo/get-1080p-video?taskId=&index=``: no task of its own, the source's 1080p link. The first
    ask starts it (and is charged); until it is ready KIE answers non-200 codes ("1080P is processing ...",
    "record result data is blank" and its kin), which mean "ask again later". kie-mcp follows it as
    ``<source id>-1080p``, each look asking this endpoint again."""

    name = "veo-1080p"
    create_path = VeoFamily.hd_path
    create_method = "GET"
    status_path = VeoFamily.hd_path
    suffix = "-1080p"
    # KIE's "not ready yet" answers (docs.kie.ai get-veo-3-1080-p-video): 400 "1080P is processing ...", 422
    # "record result data is blank" / "... is empty" / "... not exist". Anything else is a refusal: nothing started.
    preparing_messages = ("processing", "record result data")

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return {"taskId": wire_input["taskId"], "index": wire_input.get("index", 0)}

    def created_id(self, data: Any, body: dict[str, Any]) -> str | None:
        return f"{body['taskId']}{self.suffix}"

    def refused_but_exists(self, code: int | None, message: str, data: Any, body: dict[str, Any]) -> Existing | None:
        return Existing(f"{body['taskId']}{self.suffix}", charged=True) if self.preparing(message) else None

    def refusal_step(self, code: int | None, message: str, body: dict[str, Any]) -> str | None:
        """Any other refusal of the first ask (not "processing", not "record result data ..."): KIE started
        nothing. Point at the clip, not at a prompt or a field the caller never gave."""
        return clip_refused(
            code,
            message,
            body,
            (400, 404, 422),
            lambda source: (
                f"KIE did not start the 1080p version of task {source}, so nothing was charged ({LOGS_URL} lists "
                f"every charge). Check the clip with check_task(task_id='{source}'): KIE makes a 1080p version only "
                "of a successful Veo 3.1 clip it still keeps (14 days). For a sharper copy of it anyway, use "
                "operation=upscale, which works on the saved file."
            ),
        )

    def preparing(self, message: str) -> bool:
        lowered = message.lower()
        return any(text in lowered for text in self.preparing_messages)

    def status_params(self, task_id: str) -> dict[str, Any]:
        return {"taskId": task_id.removesuffix(self.suffix), "index": 0}

    def status_from_error(self, task_id: str, message: str) -> TaskStatus | None:
        if not self.preparing(message):
            return None
        return TaskStatus(task_id=task_id, family=self.name, state=TaskState.RUNNING, raw_state=message[:80])

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        urls = collect_urls(data.get("resultUrl") or data.get("resultUrls"))
        state = TaskState.SUCCEEDED if urls else TaskState.RUNNING
        return TaskStatus(task_id=task_id, family=self.name, state=state, raw_state=state.value, result_urls=urls)


class AlephFamily(Family):
    """``/api/v1/aleph/*``: Runway Aleph video-to-video. ``successFlag`` 1 = success; 0 = running, or failed
    when ``errorCode``/``errorMessage`` is set (kie-api.md §9). KIE documents exactly that: "successFlag: 0 and no
    errorMessage" is processing, "successFlag: 0 and has errorMessage" failed (docs.kie.ai/runway-api/
    get-aleph-video-details, "Task Status Understanding", 2026-12), so a message beside 0 is a failure, whatever it
    says. Live, KIE answers a failure as Veo and Flux Kontext do: ``successFlag`` 3 with ``errorCode`` 500 (a number)
    and ``errorMessage`` "internal error, please try again later." (justintanner/apicity
    kie/aleph/generate-upstream-failure, 2026-08-18), so 3 is a failure too (``ALEPH_FLAGS``); any other flag, 2
    included, is no word of Aleph's."""

    name = "aleph"
    model_id = "runway-aleph"
    create_path = "/api/v1/aleph/generate"
    status_path = "/api/v1/aleph/record-info"
    # KIE's docs answer an unknown (or not yet visible) task with 404 "Task not found"
    # (docs.kie.ai/runway-api/get-aleph-video-details); live, record-info answers one with {"code": 200, "msg":
    # "success", "data": null} (justintanner/apicity kie/aleph/record-info-not-found, 2026-08-06).
    not_visible_messages = ("record is null", "recordinfo is null", "task not found")
    null_record_unknown = True

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return dict(wire_input)

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        flag = _flag(data.get("successFlag"))
        code = _code_or_none(data.get("errorCode"), ok=("0", "200"))
        message = data.get("errorMessage") or None
        state = ALEPH_FLAGS.get(flag) if flag is not None else None
        if state is TaskState.RUNNING and (code is not None or message):
            state = TaskState.FAILED  # 0 with an error: a failure, as KIE documents
        if flag == 3 and not message:
            message = UPSTREAM_FAILED
        response = parse_json_text(data.get("response")) or {}
        urls: list[str] = []
        if isinstance(response, dict) and state is TaskState.SUCCEEDED:
            urls = collect_urls(response.get("resultVideoUrl") or response.get("result_video_url"))
        said = message if state is None else None  # beside a flag that is no word of Aleph's
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state or TaskState.RUNNING,
            raw_state=f"successFlag={data.get('successFlag')}",
            understood=state is not None,
            model=self.model_id,
            result_urls=urls,
            results_unreadable=unreadable_json_text(data.get("response")),
            fail_code=code if state in (TaskState.FAILED, None) else None,
            fail_message=(message or "Aleph reported an error.") if state is TaskState.FAILED else said,
        )


class Gpt4oImageFamily(Family):
    """``/api/v1/gpt4o-image/*``: GPT-4o Image. ``status`` GENERATING/SUCCESS/CREATE_TASK_FAILED/GENERATE_FAILED
    beside ``successFlag`` 0/1/2; ``progress`` is a string "0.00".."1.00"; times are ms. The status word decides;
    without one, the flag. A word outside that vocabulary (docs.kie.ai/4o-image-api/get-4-o-image-details, "Status
    Descriptions", 2026-12) decides nothing, unless the flag says success: a result is never left unsaved."""

    name = "gpt4o"
    model_id = "gpt-4o-image"
    create_path = "/api/v1/gpt4o-image/generate"
    status_path = "/api/v1/gpt4o-image/record-info"
    download_path = "/api/v1/gpt4o-image/download-url"
    # Live, record-info answers an unknown task with 422 "The record does not exist" (UNKNOWN_TASK_MESSAGES).
    not_visible_messages = ("record is null", "recordinfo is null", "task not found", "record does not exist")
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
        by_flag = self._FLAGS.get(flag) if flag is not None else None
        state = self._STATUSES.get(status) if status else by_flag
        if state is None and by_flag is TaskState.SUCCEEDED:
            state = by_flag
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
        said = state in (TaskState.FAILED, None)  # KIE's code and message: a failure's, or beside an unknown word
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state or TaskState.RUNNING,
            raw_state=status or f"successFlag={data.get('successFlag')}",
            understood=state is not None,
            model=self.model_id,
            progress=None if progress is None else min(max(progress, 0.0), 1.0),
            result_urls=urls if state is TaskState.SUCCEEDED else [],
            results_unreadable=unreadable_json_text(data.get("response")),
            fail_code=_code_or_none(data.get("errorCode"), ok=("0", "200")) if said else None,
            fail_message=message if said else None,
            created_at_ms=int_or_none(data.get("createTime")),
            completed_at_ms=int_or_none(data.get("completeTime")),
        )


class FluxKontextFamily(Family):
    """``/api/v1/flux/kontext/*``: Flux Kontext pro/max. ``successFlag`` 0 running, 1 success, 2 failed,
    3 upstream failed (docs.kie.ai/flux-kontext-api/get-image-details, "Status Descriptions", 2026-12); the body
    names the model."""

    name = "flux"
    create_path = "/api/v1/flux/kontext/generate"
    status_path = "/api/v1/flux/kontext/record-info"
    # Live, record-info answers an unknown task with 422 "The record does not exist" (UNKNOWN_TASK_MESSAGES).
    not_visible_messages = ("record is null", "recordinfo is null", "task not found", "record does not exist")
    default_model = "flux-kontext-pro"

    def create_body(self, model_id: str, wire_input: dict[str, Any]) -> dict[str, Any]:
        return {"model": model_id, **wire_input}

    def parse_status(self, task_id: str, data: dict[str, Any]) -> TaskStatus:
        flag = _flag(data.get("successFlag"))
        state = SUCCESS_FLAGS.get(flag) if flag is not None else None
        response = parse_json_text(data.get("response")) or {}
        urls: list[str] = []
        if isinstance(response, dict) and state is TaskState.SUCCEEDED:
            # resultImageUrl is KIE's copy (kept 14 days); originImageUrl is the upstream one (valid 10 min).
            urls = collect_urls(response.get("resultImageUrl")) or collect_urls(response.get("originImageUrl"))
        message = data.get("errorMessage") or None
        if flag == 3 and not message:
            message = UPSTREAM_FAILED
        param = parse_json_text(data.get("paramJson"))
        model = param.get("model") if isinstance(param, dict) else None
        said = message if state is None else None  # beside a flag Flux Kontext does not document
        return TaskStatus(
            task_id=str(data.get("taskId") or task_id),
            family=self.name,
            state=state or TaskState.RUNNING,
            raw_state=f"successFlag={data.get('successFlag')}",
            understood=state is not None,
            model=model or self.default_model,
            result_urls=urls,
            results_unreadable=unreadable_json_text(data.get("response")),
            fail_code=_code_or_none(data.get("errorCode")) if state in (TaskState.FAILED, None) else None,
            fail_message=(message or "Flux Kontext reported a failure.") if state is TaskState.FAILED else said,
        )


# Veo's and Flux Kontext's ``successFlag`` (docs.kie.ai/veo3-api/get-veo-3-video-details and
# flux-kontext-api/get-image-details, "Status Descriptions", 2026-12): 0 generating, 1 success, 2 failed, 3 created
# but generation failed. No other flag is documented.
SUCCESS_FLAGS: dict[int, TaskState] = {
    0: TaskState.RUNNING,
    1: TaskState.SUCCEEDED,
    2: TaskState.FAILED,
    3: TaskState.FAILED,
}
# Aleph's (``AlephFamily``). KIE's docs define only 0 and 1: "successFlag: 1 = success, 0 = failed or in progress"
# (the OpenAPI's Status Descriptions), 0 with an errorMessage a failure (docs.kie.ai/runway-api/get-aleph-video-details,
# "Task Status Understanding", read 2026-12-06). 3 is what KIE answered live for a failure (justintanner/apicity
# kie/aleph/generate-upstream-failure, 2026-08-18). 2 is in neither, so it stays a word kie-mcp does not know (the
# task kept as it was, never failed or refunded on it), as it was before 3 was learnt; Veo's meaning of it is no
# evidence of Aleph's.
ALEPH_FLAGS: dict[int, TaskState] = {
    0: TaskState.RUNNING,
    1: TaskState.SUCCEEDED,
    3: TaskState.FAILED,
}


def _flag(value: Any) -> int | None:
    """A ``successFlag`` as an int, whether KIE sent 1, 1.0 (JSON has no integers apart: a serializer may write one
    so) or "1"; None for anything else. Text is read only when it is decimal digits that ``int`` takes: ``"²"``
    passes ``isdigit`` and then makes ``int`` raise, which would leave the whole answer unreadable and the task
    unfinished for good."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # NaN and infinities are no whole number
    if not isinstance(value, str) or not value.strip().isdecimal():
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _code_or_none(value: Any, ok: tuple[str, ...] = ("0",)) -> str | None:
    """An error code as text, or None when absent or one of the family's "no error" values."""
    if value in (None, "") or isinstance(value, bool):
        return None
    text = str(value).strip()
    return None if not text or text in ok else text


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        MarketFamily(),
        VeoFamily(),
        VeoUnifiedFamily(),
        RunwayFamily(),
        AlephFamily(),
        Gpt4oImageFamily(),
        FluxKontextFamily(),
        VeoExtendFamily(),
        Veo1080pFamily(),
        Veo4kFamily(),
        RunwayExtendFamily(),
    )
}

# What each family's task ids look like, as far as KIE's docs and recorded live answers tell (read 2026-12-07 from
# stored copies; nothing checked against the live service):
# - Market (jobs/createTask): live, 32 lowercase hex digits (justintanner/apicity tests/recordings/kie_2079838932:
#   595 recordInfo calls of 44 tasks, image and video models alike, recorded 2026-03 to 2026-05); KIE's docs print
#   ``task_<provider>_<13-digit ms>`` (docs.kie.ai/market/*, "task_wan_1765186743319" and kin, as mirrored
#   2026-06-11 in hassanvfx/kie-api-python docs/kie-ai/raw/market) and ``task_12345678``
#   (market/common/get-task-detail).
# - Veo: live, 32 hex too (apicity veo-generate_3632956851 recording.har: veo/generate answered
#   "5f7d4e0f1db5110a8ec06bac53fe16d7" on 2026-03-28 and "9e9a071c779cf8842d269d0d3991d34e" on 2026-04-02, and
#   jobs/recordInfo said 422 "recordInfo is null" of it: the Market's endpoint does not know a Veo task); the docs'
#   ``veo_task_abcdef123456`` / ``veo_task_example123`` (veo3-api/*) are placeholders, no live id has that prefix.
# - GPT-4o Image: a captured answer in KIE's own 4o quickstart (docs.kie.ai/cn/4o-image-api/quickstart, mirrored in
#   hassanvfx/kie-api-python) names "d231a99a9a9f1dd8f895be1b97be8065", 32 hex, with ``"callBackUrl":"playground"``;
#   the English quickstart's ``task_4o_abc123`` and get-4-o-image-details' ``task12345`` are placeholders.
# - Flux Kontext: no live id seen; the docs print ``task_flux_abc123`` (flux-kontext-api/quickstart) and
#   ``task12345``. As 4o's placeholders proved to stand for 32 hex, a 32-hex id may be Flux's too.
# - Runway and Aleph: a UUID, the same one in both families' docs (runway-api/get-ai-video-details and
#   get-aleph-video-details: "ee603959-debb-48d1-98c4-a6d1c717eba6"); a third-party Runway test script keeps a
#   UUID as "the task ID from the last generation" (veyron123/vheer-ai-clone server/test-status.js).
# No shape is certain to be one family's alone (32 hex is three families' at least, and KIE never documented its
# ids' format), so a shape only puts the families that use it first: every family is still asked, in turn, until one
# knows the id (``KieClient.find_task``). Each entry: the shape, and the families it points to, most likely first.
_HEX32 = r"[0-9a-fA-F]{32}"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
ID_SHAPES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"veo_task_\w+"), ("veo",)),  # the docs' Veo placeholder
    (re.compile(r"task_4o_\w+"), ("gpt4o",)),  # the docs' 4o placeholder
    (re.compile(r"task_flux_\w+"), ("flux",)),  # the docs' Flux Kontext placeholder (Market's Flux 2 is task_flux-2_)
    (re.compile(r"task_[\w.-]+_\d{10,}"), ("market",)),  # the docs' Market ids: task_<provider>_<ms>
    (re.compile(_UUID), ("runway", "aleph")),
    (re.compile(_HEX32), ("market", "veo", "gpt4o", "flux")),  # Flux: unseen live, placed before the UUID families
)
_DEFAULT_ORDER = ("market", "veo", "runway", "aleph", "gpt4o", "flux")
# Follow-up families (continue_video) are never asked about an id nobody recorded: extend and 4K tasks answer on
# their base family's endpoint, and asking get-1080p-video about a finished Veo clip would start a charged upgrade.
FOLLOWUP_FAMILIES = frozenset({"veo-extend", "veo-1080p", "veo-4k", "runway-extend"})


def family_for_task_id(task_id: str, seen: Mapping[str, int] | None = None) -> list[Family]:
    """The families to ask about a task we did not create, most likely first: every one of ``_DEFAULT_ORDER``, once.
    Those whose ids have the id's shape (``ID_SHAPES``) come first; within that group and after it, the families
    the workspace's journal holds the most tasks of (``seen``: tasks by the family recorded, follow-ups and routed
    families counted as the family whose endpoint they answer on, ``lookup_family``) before the others, ties in
    the shape's order, then ``_DEFAULT_ORDER``."""
    shaped = next((names for pattern, names in ID_SHAPES if pattern.fullmatch(task_id)), ())
    counts: dict[str, int] = {}
    for name, count in (seen or {}).items():
        if (asked := lookup_family(name)) is not None:
            counts[asked] = counts.get(asked, 0) + count

    def rank(name: str) -> tuple[int, int, int]:
        place = shaped.index(name) if name in shaped else _DEFAULT_ORDER.index(name)
        return (name not in shaped, -counts.get(name, 0), place)

    return [FAMILIES[name] for name in sorted(_DEFAULT_ORDER, key=rank)]


def lookup_family(name: str) -> str | None:
    """The family of ``_DEFAULT_ORDER`` whose status endpoint answers for a task of family ``name`` (Veo's
    extensions and upgrades Veo's, Veo 3.1 on the unified route the Market's), or None for a name kie-mcp does not
    know (a record an older or newer kie-mcp wrote)."""
    family = FAMILIES.get(name)
    if family is None:
        return None
    return next((asked for asked in _DEFAULT_ORDER if FAMILIES[asked].status_path == family.status_path), None)


# An id given to look up that no KIE task can have, whatever its family: every id KIE's docs and recorded answers
# show (above) is letters, digits, ``-`` and ``_``. ``.`` is let through too (a model slug in a Market id may hold
# one). A link, a path, a query, quotes or JSON around an id, or non-ASCII letters are refused before anything is
# asked: each family would be asked about it in turn, for nothing. ``usable_task_id`` has refused blank, over-long,
# spaced, unprintable and credential-holding ids already.
_KIE_ID_CHARS = re.compile(r"[A-Za-z0-9_.-]+")


def not_a_kie_id(task_id: str) -> str | None:
    """Why ``task_id`` (a usable id, ``usable_task_id``, the journal does not know) cannot be a KIE task id, in words
    that never repeat a credential (it holds none); None when it may be one."""
    if _KIE_ID_CHARS.fullmatch(task_id):
        return None
    shown = plain(task_id, limit=120)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", task_id) or task_id.lower().startswith("www."):
        return f"{shown} is a link, not a task id"
    odd = sorted({char for char in task_id if not _KIE_ID_CHARS.fullmatch(char)})
    listed = ", ".join(plain(char) for char in odd[:5]) + (" and more" if len(odd) > 5 else "")
    return (
        f"{shown} cannot be a KIE task id: KIE's ids are letters, digits, '-' and '_' (32 hex digits, a UUID, "
        f"veo_task_...), and this one has {listed}"
    )
