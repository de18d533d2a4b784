"""Per-request context shared by every simulated endpoint: envelope rendering, auth, task commit.

Family modules (market, veo, ...) only parse their bodies and build ``Task`` objects; charging,
create-level faults and the KIE envelope quirks live here so a new family stays small.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from kie_mcp.catalog import ModelSpec, Problem, load_catalog

from .errors import UNKNOWN_MODEL, UPLOAD_AUTH_MESSAGE, ConnectionDropped, KieError
from .faults import Fault, auth_echo
from .state import MediaFile, SimRequest, Simulator, Task

log = logging.getLogger(__name__)

IN_PROCESS_EXTENSION = "kie_sim.in_process"


def envelope(sim: Simulator, code: int, msg: str, data: Any, *, upload: bool = False) -> Response:
    """KIE's ``{code, msg, data}``; HTTP 200 for business errors unless ``strict_http``."""
    body: dict[str, Any] = {}
    if upload:
        body["success"] = code == 200
    body["code"] = code
    body["message" if sim.config.message_key else "msg"] = msg
    body["data"] = data
    status = 200 if code == 200 or not sim.config.strict_http else code
    return JSONResponse(body, status_code=status)


# KIE's meaning of 501: "Generation failed", "Check failMsg" in Market's recordInfo error table
# (docs.kie.ai/market/common/get-task-detail), "video generation task failed" and "image generation task failed" in
# Veo's and Flux Kontext's failure callbacks (docs.kie.ai/veo3-api/generate-veo-3-video-callbacks,
# .../flux-kontext-api/generate-or-edit-image-callbacks). The message a ``failed_record_code`` answer carries.
FAILED_RECORD_MSG = "Generation failed"


# KIE's answer, live, to a Runway or Aleph status check of a task it does not know: {"code": 200, "msg": "success",
# "data": null} (justintanner/apicity tests/recordings/kie_2079838932, runway/record-detail-not-found 2026-06-27,
# aleph/record-info-not-found 2026-08-06). Raised as a business outcome: the app renders it as that envelope.
def no_record() -> KieError:
    return KieError(200, "success")


def number(value: float) -> float | int:
    """Credits as KIE prints them: 100 rather than 100.0, fractions kept."""
    return int(value) if float(value).is_integer() else round(value, 4)


def stamp(seconds: float) -> str:
    """A product-API timestamp: "YYYY-MM-DD HH:MM:SS" in UTC (Veo, Flux, Runway)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def millis(seconds: float) -> int:
    """A Market, GPT-4o Image or Aleph timestamp: unix milliseconds."""
    return round(seconds * 1000)


def file_url(base: str, task: Task, name: str) -> str:
    return f"{base}/files/{task.id}/{name}"


def success_flag(task: Task, now: float) -> int:
    """0 running, 1 success, 2 failed, 3 created but failed upstream (Veo, Flux)."""
    if not task.is_done(now):
        return 0
    if task.outcome == "success":
        return 1
    return 3 if task.meta.get("upstream_fail") else 2


def error_code(task: Task) -> int:
    return int(task.fail_code) if task.fail_code.isdigit() else 500


def model_spec(model: Any, family: str, sim: Simulator | None = None) -> ModelSpec:
    """The catalogue entry a create names (or, for the Market, a model added through ``/__sim/catalog/extra``,
    read from its OpenAPI schema), or KIE's 422 "The page does not exist or is not published" for an unknown model,
    one of another family, or one withdrawn through ``/__sim/catalog/withdraw``, as KIE answers a model it no longer
    offers."""
    if sim is not None and model in sim.catalog.withdrawn:
        raise KieError(422, UNKNOWN_MODEL)
    spec = load_catalog().get(model) if isinstance(model, str) else None
    if spec is None and sim is not None and family == "market" and isinstance(model, str):
        spec = _extra_spec(sim, model)
    if spec is None or spec.family != family:
        raise KieError(422, UNKNOWN_MODEL)
    return spec


def _extra_spec(sim: Simulator, model: str) -> ModelSpec | None:
    from kie_mcp.catalog.live import kind_of
    from kie_mcp.catalog.openapi import spec_from_openapi

    listed = sim.catalog.extra.get(model)
    if not listed or not isinstance(listed.get("openapi"), dict):
        return None
    kind = kind_of(listed["taskType"])
    if kind is None:
        return None
    return spec_from_openapi(
        model,
        listed["openapi"],
        title=listed["title"],
        kind=kind,
        task_types=listed["taskType"],
        description=listed.get("description"),
        date="simulator",
    )


def describe_problems(model: str, problems: list[Problem]) -> str:
    details = "; ".join(f"{p.field}: {p.message}" for p in problems)
    return f"Invalid input for {model}: {details}"


class DropResponse(Response):
    """Cuts the connection instead of answering.

    In process, ``SandboxTransport`` turns the ``ConnectionDropped`` it raises into
    ``httpx2.RemoteProtocolError("Server disconnected without sending a response.")``. Under uvicorn
    it first sends response headers announcing a body, then raises: uvicorn logs the exception and
    closes the socket, so the client sees a connection closed mid-response (also a
    ``RemoteProtocolError`` for httpx clients) rather than an answer.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if IN_PROCESS_EXTENSION not in scope.get("extensions", {}):
            headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise ConnectionDropped("kie-sim fault: connection dropped")


@dataclass
class Ctx:
    """What a handler needs: the simulator, the request, who is calling, and a queued create fault."""

    sim: Simulator
    request: Request
    category: str
    record: SimRequest
    key: str = ""
    account: str = ""
    pending_fault: Fault | None = None
    drop_after: bool = False
    _json: Any = None

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")

    @property
    def upload(self) -> bool:
        return self.category == "upload"

    def authenticate(self) -> None:
        header = self.request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        account = self.sim.account_for_key(key.strip()) if scheme.lower() == "bearer" else None
        if account is None:
            raise KieError(401, UPLOAD_AUTH_MESSAGE if self.upload else None)
        self.key, self.account = key.strip(), account

    async def json_object(self) -> dict[str, Any]:
        """The JSON body as an object, or a 400/422 error the way KIE words them."""
        if self._json is None:
            raw = await self.request.body()
            try:
                self._json = json.loads(raw) if raw else {}
            except ValueError:
                raise KieError(400, "Invalid JSON body") from None
        if not isinstance(self._json, dict):
            raise KieError(422, "The request body must be a JSON object")
        return self._json

    def query(self, name: str) -> str:
        return self.request.query_params.get(name, "").strip()

    def ok(self, data: Any, msg: str = "success") -> Response:
        return envelope(self.sim, 200, msg, data, upload=self.upload)

    def task_record(self, data: dict[str, Any], *, failed: bool) -> Response:
        """A status answer: code 200 and the task's record, or (a failed task, ``SimConfig.failed_record_code`` set)
        that code with the record, as KIE's failure callbacks are shaped."""
        code = self.sim.config.failed_record_code
        if code is not None and failed:
            return envelope(self.sim, code, FAILED_RECORD_MSG, data)
        return self.ok(data)

    def error(self, err: KieError) -> Response:
        return envelope(self.sim, err.code, err.msg, None, upload=self.upload)

    def commit_task(self, task: Task, price: float) -> Task:
        """Charge, apply a queued create fault, store. Nothing is charged if the charge is refused."""
        self.sim.charge(self.account, self.key, price)
        task.charged = price
        fault = self.pending_fault
        if fault is not None:
            self.sim.faults.consume(fault)
            self.pending_fault = None
            if fault.kind == "task_fail":
                self.sim.apply_task_fail(task, fault)
                if fault.params.get("echo_auth"):
                    task.fail_msg += auth_echo(self.request.headers.get("authorization"))
            elif fault.kind == "drop_after_create":
                self.drop_after = True
            log.info("fault %s applied to new task %s", fault.kind, task.id)
        self.sim.add_task(task)
        return task

    def new_task(
        self,
        *,
        family: str,
        model: str,
        kind: str,
        body: dict[str, Any],
        seconds: tuple[float, float],
        callback_url: str | None,
        files: dict[str, MediaFile] | None = None,
        meta: dict[str, Any] | None = None,
        callback: Callable[[Simulator, Task], dict[str, Any]] | None = None,
    ) -> Task:
        """A new task of this request's account; its run time is drawn from ``seconds`` on the virtual clock."""
        sim = self.sim
        task_id = sim.new_task_id(family, model, kind)
        return Task(
            id=task_id,
            family=family,
            model=model,
            kind=kind,
            account=self.account,
            key=self.key,
            body=body,
            created_at=sim.now(),
            duration=sim.duration_for(task_id, float(seconds[0]), float(seconds[1])),
            base_url=self.base_url,
            callback_url=callback_url or None,
            files=files or {},
            meta=meta or {},
            callback=callback,
        )

    def polled_task(
        self, family: str, not_found: str | None, *, expires: bool = False, expired: str | None = None
    ) -> Task:
        """The task a status read names (``taskId``), counted against the poll limit. KIE answers 400 for a
        missing id, and 422 ``not_found`` for an unknown, foreign or not-yet-visible task; ``not_found`` None:
        success with no record (``data`` null), as Runway's and Aleph's status endpoints answer live
        (``no_record``). A record past its retention answers as an unknown one (``expires``), or 422 ``expired``."""
        task_id = self.query("taskId")
        if not task_id:
            raise KieError(400, "taskId parameter is required")
        self.sim.admit_poll(self.key)
        task = self.sim.get_task(task_id, family=family)
        unknown = no_record() if not_found is None else KieError(422, not_found)
        if task is None or task.account != self.account or not self.poll_visible(task):
            raise unknown
        if self.sim.now() - task.created_at > self.sim.config.record_retention_seconds:
            if expired is not None:
                raise KieError(422, expired)
            if expires:
                raise unknown
        return task

    def poll_visible(self, task: Task) -> bool:
        """Count a status read; False while the task is still inside its visibility lag."""
        task.polls += 1
        return task.polls > self.sim.config.visibility_lag_polls
