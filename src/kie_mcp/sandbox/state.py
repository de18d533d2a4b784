"""The simulator's world: a virtual clock, accounts and their credits, tasks, files, limits and logs.

Task state is never stored as "current state": each task keeps its creation time, its planned
duration and its outcome, and every read derives the state from the virtual clock. Side effects
of finishing (refunds, callbacks) are applied lazily, in completion order, by ``settle``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import random
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from kie_mcp.catalog import ModelSpec, load_catalog, price_input

from . import media
from .config import DEFAULT_ACCOUNT, SANDBOX_API_KEY, SimConfig
from .errors import INSUFFICIENT_CREDITS, LINK_EXPIRED, RATE_LIMITED, FileError, KieError
from .faults import Fault, FaultQueue

if TYPE_CHECKING:
    from .persist import SimStore

log = logging.getLogger(__name__)

Outcome = Literal["success", "fail"]
TERMINAL = ("success", "fail")
UPLOAD_PREFIX = "/files/uploads/"
LINK_MEMORY_SECONDS = 86400.0
MAX_LOGGED_REQUESTS = 100_000  # a long sandbox session must not grow without bound
# Task ids per family in the shapes KIE gives them (``kie_mcp.kie.families.ID_SHAPES`` names the sources), so the
# lookup of an id the journal does not know meets the shapes it orders the families by: Runway and Aleph a UUID,
# GPT-4o Image and Market images 32 hex digits (as live), Flux Kontext ``task_flux_<hex>`` and Veo
# ``veo_task_<hex>`` (their docs' shapes: no live Flux id was seen, and live Veo ids are 32 hex, as the Market's),
# Market videos ``task_<model>_<ms>`` (the Market docs' shape; live, 32 hex too).
TASK_ID_PREFIXES = {"veo": "veo_task_", "flux": "task_flux_"}
UUID_FAMILIES = frozenset({"runway", "aleph"})
# A task's ``meta`` key: the charge its failed Market record reports as ``creditsConsumed`` (a ``task_fail`` fault's
# or ``force_task``'s ``credits_consumed``), any JSON value, as a KIE reporting garbage would.
REPORTED_CHARGE = "reported_charge"


# -- records ---------------------------------------------------------------------------------


@dataclass
class SimRequest:
    """One request as received; the bearer key itself is never kept, base64 payloads are elided."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    has_auth: bool
    host: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body": self.body,
            "has_auth": self.has_auth,
            "host": self.host,
            "at": self.at,
        }


@dataclass
class MediaFile:
    """One result file of a task. ``ready_at`` is set for files that appear later (Veo 1080p). ``seconds`` and
    ``sound`` are set for a video its task's own request does not describe (a follow-up's: an extension's whole
    video, an upgrade of its source), None for one that plays as its request asked (``video_shape``)."""

    kind: Literal["image", "video"]
    fmt: str
    aspect: str | None = None
    ready_at: float | None = None
    seconds: float | None = None
    sound: bool | None = None

    @property
    def mime(self) -> str:
        return "video/mp4" if self.kind == "video" else media.IMAGE_MIME.get(self.fmt, "image/png")


@dataclass
class Account:
    name: str
    balance: float


@dataclass
class Task:
    """A generation task of any family. Family-specific facts live in ``meta``."""

    id: str
    family: str
    model: str
    kind: str
    account: str
    key: str
    body: dict[str, Any]
    created_at: float
    duration: float
    base_url: str
    callback_url: str | None = None
    charged: float = 0.0
    outcome: Outcome = "success"
    fail_code: str = ""
    fail_msg: str = ""
    forced_at: float | None = None
    files: dict[str, MediaFile] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    callback: Callable[[Simulator, Task], dict[str, Any]] | None = None
    polls: int = 0
    settled: bool = False
    refunded: bool = False

    @property
    def end_at(self) -> float:
        if self.forced_at is not None:
            return self.forced_at
        # Failures come back sooner than successes (field note F-3).
        return self.created_at + (self.duration if self.outcome == "success" else self.duration * 0.5)

    def is_done(self, now: float) -> bool:
        return now >= self.end_at

    def state(self, now: float) -> str:
        """Market vocabulary: waiting -> queuing -> generating -> success | fail."""
        if self.is_done(now):
            return self.outcome
        span = self.end_at - self.created_at
        elapsed = now - self.created_at
        if elapsed < 0.1 * span:
            return "waiting"
        if elapsed < 0.25 * span:
            return "queuing"
        return "generating"

    def last_change(self, now: float) -> float:
        """When the derived state last changed (for ``updateTime``)."""
        if self.is_done(now):
            return self.end_at
        span = self.end_at - self.created_at
        elapsed = now - self.created_at
        for mark in (0.25, 0.1):
            if elapsed >= mark * span:
                return self.created_at + mark * span
        return self.created_at

    def progress(self, now: float) -> int:
        if self.is_done(now):
            return 100 if self.outcome == "success" else max(0, min(99, self._fraction(now)))
        return max(0, min(99, self._fraction(now)))

    def _fraction(self, now: float) -> int:
        span = max(self.end_at - self.created_at, 1e-9)
        return int(100 * (now - self.created_at) / span)

    @property
    def credits_consumed(self) -> float:
        return 0.0 if self.refunded else self.charged

    def file_ready_at(self, name: str) -> float | None:
        """When ``name`` became downloadable, or None if it is not (yet) a file of this task."""
        item = self.files.get(name)
        if item is None or self.outcome != "success":
            return None
        return item.ready_at if item.ready_at is not None else self.end_at

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "taskId": self.id,
            "family": self.family,
            "variant": self.meta.get("variant", "generate"),
            "model": self.model,
            "account": self.account,
            "state": self.state(now),
            "createdAt": self.created_at,
            "endAt": self.end_at,
            "charged": self.charged,
            "creditsConsumed": self.credits_consumed,
            "callBackUrl": self.callback_url,
            "failCode": self.fail_code,
            "failMsg": self.fail_msg.replace(self.key, _mask(self.key)) if self.key else self.fail_msg,
        }


@dataclass
class StoredUpload:
    path: str
    data: bytes
    mime: str
    original_name: str
    file_id: str
    uploaded_at: float
    expires_at: float


@dataclass
class Link:
    """A download-url link: ``target`` is a ``/files/...`` path, or None for a minted link to nothing."""

    token: str
    target: str | None
    expires_at: float


@dataclass
class LiveCatalogState:
    """What the simulated model catalogue changed from the bundled data (``/__sim/catalog/*``; served by models.py).

    Kept across ``reset`` like price overrides. ``feed_prices`` maps a price-feed ``modelDescription`` to new credits
    (None: the row is gone); ``success_rates`` a model to a percentage (None: no monitoring data); ``extra`` holds
    live models the bundled catalogue lacks (their list row and OpenAPI document); ``schema_changes`` what KIE's
    live schema of a bundled model changed from its data (``{"properties": {field: keys}, "required": [...]}``).
    """

    withdrawn: set[str] = field(default_factory=set)
    dropped_schemas: set[str] = field(default_factory=set)
    schema_changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> what KIE changed in its input
    feed_prices: dict[str, float | None] = field(default_factory=dict)
    success_rates: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    feed_region_blocked: bool = False
    # KIE moved (``/__sim/catalog/moved``): the feed's records under other field names, and the model list served in
    # pages of ``models_page_size`` (``pageNum`` asks for one), none past the first ``models_served`` rows; the feed
    # cut to its first ``feed_served`` records (``total`` and ``pages`` saying only those).
    feed_renamed: bool = False
    models_page_size: int | None = None
    models_served: int | None = None
    feed_served: int | None = None
    # How a paged list writes its ``total``: "number" (as KIE documents it), "text" ("143"), "float" (143.0),
    # "negative" (-1) or "missing".
    models_total: str = "number"


@dataclass(frozen=True)
class Blob:
    """What a file URL serves: small files as bytes, videos as a shipped clip (played ``seconds`` long) streamed
    padded to ``size``."""

    mime: str
    size: int
    data: bytes | None = None
    clip: str | None = None
    seconds: float | None = None


def _task_wire(task: Task) -> dict[str, Any]:
    """The model fields of a create: the Market's ``input``, every other family's body itself."""
    inner = task.body.get("input")
    return inner if isinstance(inner, dict) else task.body


def _has_sound(task: Task) -> bool:
    """Whether a video of ``task`` has a sound track: models with the "audio" capability do, unless their sound
    switch (``sound``, ``generate_audio``, ``audio``) is off in the request (or by default)."""
    spec = load_catalog().get(task.model)
    if spec is None or "audio" not in spec.capabilities:
        return False
    switch = spec.field_for_arg("audio")
    return switch is None or _task_wire(task).get(switch.name, switch.default) is True


def _clip_seconds(task: Task) -> float | None:
    """How long a video of ``task`` plays: the request's duration, or its model's default; None (the shipped
    clip's 2 s) when the model sets the length itself or the value is no length."""
    spec = load_catalog().get(task.model)
    length = spec.field_for_arg("duration") if spec is not None else None
    if length is None:
        return None
    try:
        seconds = float(_task_wire(task).get(length.name, length.default))
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def whole_video(task: Task) -> str:
    """The name of ``task``'s whole video: a Veo extension's ``full-0.mp4`` (the source and the new part), else its
    first video."""
    return "full-0.mp4" if "full-0.mp4" in task.files else "0.mp4"


def video_shape(task: Task, name: str | None = None) -> tuple[float | None, bool]:
    """How long ``task``'s video ``name`` (by default its whole video) plays and whether it has sound: what the file
    was made with (a follow-up's), else what the task's request asked. A length of None is the shipped clip's."""
    item = task.files.get(name or whole_video(task))
    seconds = item.seconds if item is not None and item.seconds is not None else _clip_seconds(task)
    sound = item.sound if item is not None and item.sound is not None else _has_sound(task)
    return seconds, sound


# -- the simulator ---------------------------------------------------------------------------


def _mask(key: str) -> str:
    """Bearer keys never leave the simulator whole, not even in its own state dump."""
    return f"{key[:4]}..." if len(key) > 4 else "..."


def _stable_fraction(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


class Simulator:
    """An in-memory KIE: drive it through ``create_app`` over HTTP, inspect and steer it from Python.

    With ``state_path`` (``kie-mcp --sandbox``: ``persist.state_path`` of its sandbox area) it also keeps its tasks,
    uploads, links, balances and clock in that file across restarts (persist.py); without, it starts empty.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        keys: dict[str, str] | None = None,
        state_path: Path | str | None = None,
        rate_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config if config is not None else SimConfig()
        # The clock KIE's rate limits are counted on (``admit_create``): real seconds, whatever ``config.speed``.
        self.rate_clock = rate_clock
        self.keys: dict[str, str] = dict(keys) if keys else {SANDBOX_API_KEY: DEFAULT_ACCOUNT}
        self.key_caps: dict[str, float] = {}
        self.price_overrides: dict[str, float] = {}
        self.catalog = LiveCatalogState()
        self._init_state()
        self.store: SimStore | None = None
        if state_path is not None:
            from .persist import SimStore

            self.store = SimStore(Path(state_path))
            self.store.load(self)

    def persist(self, *, force: bool = False) -> None:
        """Save the state to ``state_path`` if it changed (no-op without one); never raises.

        The app calls it after every API request, the transport with ``force`` when it closes."""
        if self.store is None:
            return
        try:
            self.store.save(self, force=force)
        except Exception:  # a bug in saving must never fail the request that was answered
            log.exception("the sandbox simulator could not save its state")

    def _init_state(self) -> None:
        self._anchor_real = time.monotonic()
        self._anchor_virtual = time.time()
        self._anchor_speed = self.config.speed
        self.accounts: dict[str, Account] = {}
        self.key_spent: dict[str, float] = {}
        self.tasks: dict[str, Task] = {}
        self.uploads: dict[str, StoredUpload] = {}
        self.links: dict[str, Link] = {}
        self.faults = FaultQueue()
        self.requests: list[SimRequest] = []
        self.callbacks: list[dict[str, Any]] = []
        self._create_log: dict[str, deque[float]] = {}
        self._poll_log: dict[str, deque[float]] = {}
        self._catalog_log: dict[str, deque[float]] = {}
        self._rng = random.Random(self.config.seed) if self.config.seed is not None else None
        for account in set(self.keys.values()) | {DEFAULT_ACCOUNT}:
            self._account(account)

    def reset(self) -> None:
        """Forget every task, file, fault, log and balance (the requests a hold fault holds go on); keep config,
        keys, caps and prices."""
        self.faults.release()
        self._init_state()

    # -- clock -----------------------------------------------------------------------------

    def now(self) -> float:
        """Virtual unix seconds: real time scaled by ``config.speed``, plus every ``advance``."""
        real = time.monotonic()
        speed = self.config.speed
        if speed != self._anchor_speed:  # speed changed since the last read: rebase at this moment
            self._anchor_virtual += (real - self._anchor_real) * self._anchor_speed
            self._anchor_real = real
            self._anchor_speed = speed
        return self._anchor_virtual + (real - self._anchor_real) * speed

    def advance(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"the virtual clock only moves forward by a finite number of seconds, not {seconds!r}")
        self.now()
        self._anchor_virtual += seconds

    def set_speed(self, speed: float) -> None:
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0 (0 freezes the clock), not {speed!r}")
        self.now()
        self.config.speed = speed
        self.now()

    # -- accounts and credits --------------------------------------------------------------

    def _account(self, name: str) -> Account:
        if name not in self.accounts:
            self.accounts[name] = Account(name, float(self.config.starting_balance))
        return self.accounts[name]

    def balance(self, account: str = DEFAULT_ACCOUNT) -> float:
        self.settle_all()
        return self._account(account).balance

    def set_balance(self, credits: float, account: str = DEFAULT_ACCOUNT) -> None:
        if not math.isfinite(credits):
            raise ValueError(f"a balance is a finite number of credits, not {credits!r}")
        self.settle_all()
        self._account(account).balance = float(credits)

    def add_key(self, key: str, account: str = DEFAULT_ACCOUNT, cap: float | None = None) -> None:
        """Add a bearer key for ``account``; ``cap`` limits the credits that key may spend (else 433)."""
        self.keys[key] = account
        self._account(account)
        if cap is None:
            self.key_caps.pop(key, None)
        else:
            self.key_caps[key] = float(cap)

    def account_for_key(self, key: str) -> str | None:
        return self.keys.get(key)

    def price(self, spec: ModelSpec, wire: Mapping[str, Any]) -> float:
        """Credits for one task: an override, else the catalogue, else ``unknown_price_credits``."""
        if spec.id in self.price_overrides:
            return self.price_overrides[spec.id]
        try:
            quoted = price_input(spec, wire, self.measured(spec, wire))
        except (KeyError, TypeError, ValueError):
            quoted = None
        if quoted is None or not quoted.known or quoted.credits is None:
            return float(self.config.unknown_price_credits)
        return float(quoted.credits)

    def measured(self, spec: ModelSpec, wire: Mapping[str, Any]) -> dict[str, float] | None:
        """``{input label: seconds}`` for a rate billed per second of an input clip (``pricing.input_to_measure``),
        as KIE measures it: the clips this simulator holds (uploaded, or a task's result), summed, read from their
        bytes. None where no rate bills by an input; ``{}`` where a clip cannot be read here (another host's link):
        the price stays unknown (``unknown_price_credits``)."""
        from kie_mcp.catalog.pricing import input_to_measure
        from kie_mcp.media.duration import bytes_seconds, input_field

        label = input_to_measure(spec, wire)
        if label is None:
            return None
        name = input_field(spec, label)
        value = wire.get(name) if name is not None else None
        seconds = 0.0
        for url in value if isinstance(value, list) else [value]:
            path = self.resolve_sim_url(url) if isinstance(url, str) else None
            if path is None:
                return {}
            try:
                data, _ = self.file_bytes(path, check_ttl=False)
            except FileError:
                return {}
            if (length := bytes_seconds(data)) is None:
                return {}
            seconds += length
        return {label: seconds} if seconds > 0 else {}

    def charge(self, account: str, key: str, credits: float) -> None:
        """Debit now (KIE charges at submission), or refuse with 433 (key cap) / 402 (balance)."""
        self.settle_all()
        cap = self.key_caps.get(key)
        if cap is not None and self.key_spent.get(key, 0.0) + credits > cap + 1e-9:
            raise KieError(433)
        acct = self._account(account)
        if acct.balance + 1e-9 < credits:
            raise KieError(402, INSUFFICIENT_CREDITS)
        acct.balance -= credits
        self.key_spent[key] = self.key_spent.get(key, 0.0) + credits

    def _refund(self, task: Task) -> None:
        self._account(task.account).balance += task.charged
        self.key_spent[task.key] = self.key_spent.get(task.key, 0.0) - task.charged
        task.refunded = True

    # -- limits ----------------------------------------------------------------------------

    def admit_create(self, account: str) -> None:
        """KIE's create window per account, counted on ARRIVAL, then the running-task cap; both refuse with 429.

        Handlers call this as soon as a create's body is read, so a create is stamped with its arrival time,
        before it is validated or charged (an invalid create arrived too, and counts). A create is refused when
        ``create_limit`` creates already arrived in the span ``(now - window, now]``, so any ``create_limit + 1``
        counted arrivals span at least ``create_window_seconds``. A refused create is not counted (KIE: refused,
        not queued, not charged).

        The rate windows (this one, ``admit_poll``'s and ``admit_catalog``'s) run on ``rate_clock``, real seconds by
        default, never on the simulated clock that moves tasks along: KIE's limits are real seconds, and on a clock
        running ``speed`` times faster (x30 for ``kie-mcp sim`` and ``--sandbox``) a 10 s window would last a third of
        a second, and creates KIE refuses would pass. A test that moves the simulated clock
        by hand and wants the windows to move with it sets ``sim.rate_clock = sim.now``.
        """
        now = self.rate_clock()
        limit = self.config.create_limit
        window = self._create_log.setdefault(account, deque())
        while window and window[0] <= now - self.config.create_window_seconds:
            window.popleft()
        if limit > 0 and len(window) >= limit:
            raise KieError(429, RATE_LIMITED)
        cap = self.config.max_running_tasks
        if cap > 0 and self.running_count(account) >= cap:
            raise KieError(429, f"{RATE_LIMITED}: too many running tasks (limit {cap})")
        window.append(now)

    def admit_poll(self, key: str) -> None:
        """Status reads per key, counted on arrival like creates: at most ``poll_limit_per_second`` in the span
        ``(now - 1, now]`` of ``rate_clock`` seconds; over it, 429 and not counted."""
        self._admit(self._poll_log, key, self.config.poll_limit_per_second)

    def admit_catalog(self, account: str) -> None:
        """The model-catalogue lookups' shared budget per account (1/s by default, on ``rate_clock``); over it: 429,
        not counted."""
        self._admit(self._catalog_log, account, self.config.catalog_limit_per_second)

    def _admit(self, logs: dict[str, deque[float]], who: str, limit: int) -> None:
        """One request of ``who`` against ``limit`` per second of ``rate_clock``; over it, 429 and not counted."""
        now = self.rate_clock()
        window = logs.setdefault(who, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if limit > 0 and len(window) >= limit:
            raise KieError(429, RATE_LIMITED)
        window.append(now)

    def running_count(self, account: str) -> int:
        now = self.now()
        return sum(1 for t in self.tasks.values() if t.account == account and not t.is_done(now))

    # -- tasks -----------------------------------------------------------------------------

    def new_task_id(self, family: str, model: str, kind: str) -> str:
        """Ids in KIE's shapes (``TASK_ID_PREFIXES``): a UUID (Runway, Aleph), ``<prefix><hex>`` (Veo, Flux Kontext),
        32 hex (images: Market and GPT-4o Image), ``task_<slug>_<ms>`` (Market videos)."""
        bits = self._rng.getrandbits(128) if self._rng else uuid.uuid4().int
        hex32 = f"{bits:032x}"
        if family in UUID_FAMILIES:
            candidate = str(uuid.UUID(int=bits, version=4))
        elif family in TASK_ID_PREFIXES:
            candidate = f"{TASK_ID_PREFIXES[family]}{hex32[:20]}"
        elif kind == "image":
            candidate = hex32
        else:
            slug = re.sub(r"[^A-Za-z0-9.]+", "-", model).strip("-")
            ms = int(self.now() * 1000)
            candidate = f"task_{slug}_{ms}"
            while candidate in self.tasks:
                ms += 1
                candidate = f"task_{slug}_{ms}"
        return candidate

    @staticmethod
    def duration_for(task_id: str, low: float, high: float) -> float:
        """Deterministic per task id, spread over [low, high] virtual seconds."""
        return low + (high - low) * _stable_fraction(task_id)

    def add_task(self, task: Task) -> None:
        self.tasks[task.id] = task
        log.debug("task %s (%s %s) created, ends at +%.0fs", task.id, task.family, task.model, task.duration)

    def get_task(self, task_id: str, family: str | None = None) -> Task | None:
        task = self.tasks.get(task_id)
        if task is None or (family is not None and task.family != family):
            return None
        self.settle(task)
        return task

    def settle(self, task: Task, now: float | None = None) -> None:
        """Apply what finishing means (refund on failure, callback record) once the clock says it is done. ``now``:
        the instant an answer describes, so that a record read as failed at ``now`` is also refunded at ``now``."""
        if task.settled or not task.is_done(self.now() if now is None else now):
            return
        task.settled = True
        if task.outcome == "fail" and self.config.refund_on_fail and task.charged > 0:
            self._refund(task)
        if task.callback_url and task.callback is not None:
            self._record_callback(task)

    def settle_all(self) -> None:
        now = self.now()
        due = sorted((t for t in self.tasks.values() if not t.settled and t.is_done(now)), key=lambda t: t.end_at)
        for task in due:
            self.settle(task)

    def force_task(self, task_id: str, state: str, fail_code: str = "500", fail_msg: str = "", **reported: Any) -> Task:
        """Finish a running task now with the given outcome (test control); ``credits_consumed`` in ``reported``:
        the charge a failed one's record reports (``REPORTED_CHARGE``)."""
        task = self.tasks.get(task_id)
        if task is None:
            raise KeyError(task_id)
        self.settle(task)
        if task.settled:
            raise ValueError(f"task {task_id} already finished ({task.outcome})")
        if state not in TERMINAL:
            raise ValueError("state must be success or fail")
        task.outcome = "success" if state == "success" else "fail"
        if task.outcome == "fail":
            task.fail_code = str(fail_code)
            task.fail_msg = fail_msg or "Internal server error"
            if "credits_consumed" in reported:
                task.meta[REPORTED_CHARGE] = reported["credits_consumed"]
        else:  # forcing success overrides a scripted task_fail
            task.fail_code = task.fail_msg = ""
            task.meta.pop("upstream_fail", None)
            task.meta.pop(REPORTED_CHARGE, None)
        task.forced_at = self.now()
        self.settle(task)
        return task

    def apply_task_fail(self, task: Task, fault: Fault) -> None:
        task.outcome = "fail"
        task.fail_code = str(fault.params.get("fail_code", "500"))
        task.fail_msg = str(fault.params.get("fail_msg", "Internal server error"))
        task.meta["upstream_fail"] = bool(fault.params.get("upstream", False))
        if "credits_consumed" in fault.params:  # the charge its failed record reports (``faults``' docstring)
            task.meta[REPORTED_CHARGE] = fault.params["credits_consumed"]

    # -- callbacks -------------------------------------------------------------------------

    def _record_callback(self, task: Task) -> None:
        """Keep the callback KIE would send for ``task`` (``/__sim/callbacks``); nothing is sent: the simulator makes
        no outbound calls. ``at`` is the simulated time it was recorded; ``sent_at`` and the signature's
        ``X-Webhook-Timestamp`` are real unix seconds, as a receiver checks a signature's age against its own clock."""
        assert task.callback is not None
        assert task.callback_url is not None
        body = task.callback(self, task)
        headers = {"Content-Type": "application/json"}
        key = self.config.webhook_hmac_key
        sent_at = time.time()
        if key:
            stamp = str(int(sent_at))
            digest = hmac.new(key.encode(), f"{task.id}.{stamp}".encode(), hashlib.sha256).digest()
            headers["X-Webhook-Timestamp"] = stamp
            headers["X-Webhook-Signature"] = base64.b64encode(digest).decode()
        self.callbacks.append(
            {
                "url": task.callback_url,
                "taskId": task.id,
                "at": self.now(),
                "sent_at": sent_at,
                "headers": headers,
                "body": body,
            }
        )

    # -- files -----------------------------------------------------------------------------

    def store_upload(self, upload_path: str, file_name: str, data: bytes, mime: str, original: str) -> StoredUpload:
        """Keep an uploaded file under ``uploadPath/fileName``; the same name overwrites."""
        now = self.now()
        for stale in [p for p, item in self.uploads.items() if now >= item.expires_at]:
            del self.uploads[stale]  # expired uploads are gone for good; free their memory
        path = f"{upload_path}/{file_name}" if upload_path else file_name
        item = StoredUpload(
            path=path,
            data=data,
            mime=mime,
            original_name=original,
            file_id=uuid.uuid4().hex,
            uploaded_at=now,
            expires_at=now + self.config.upload_ttl_seconds,
        )
        self.uploads[path] = item
        return item

    def lookup_file(self, path: str, *, check_ttl: bool = True) -> Blob:
        """What the decoded ``/files/...`` path serves; ``FileError`` 404 (unknown, deleted) or 403 (expired)."""
        now = self.now()
        if path.startswith(UPLOAD_PREFIX):
            item = self.uploads.get(path[len(UPLOAD_PREFIX) :])
            if item is None or now >= item.expires_at:
                raise FileError(404, "Not Found")
            return Blob(mime=item.mime, size=len(item.data), data=item.data)
        parts = path.removeprefix("/files/").split("/")
        if len(parts) != 2:
            raise FileError(404, "Not Found")
        task_id, name = parts
        task = self.get_task(task_id)
        ready = task.file_ready_at(name) if task is not None else None
        if task is None or ready is None or now < ready:
            raise FileError(404, "Not Found")
        if check_ttl and now >= ready + self.config.result_url_ttl_seconds:
            raise FileError(403, LINK_EXPIRED)
        item = task.files[name]
        if item.kind == "video":
            seconds, sound = video_shape(task, name)
            clip = media.clip_for(item.aspect, sound)
            size = media.video_size(clip, self.config.video_bytes, seconds)
            return Blob(mime=item.mime, size=size, clip=clip, seconds=seconds)
        caption = media.prompt_label(_task_wire(task).get("prompt"))
        data = media.image_bytes(f"{task.id}/{name}", item.fmt, media.image_size(item.aspect), caption)
        return Blob(mime=item.mime, size=len(data), data=data)

    def file_bytes(self, path: str, *, check_ttl: bool = True) -> tuple[bytes, str]:
        blob = self.lookup_file(path, check_ttl=check_ttl)
        if blob.data is not None:
            return blob.data, blob.mime
        return media.video_bytes(blob.clip or "", blob.size, blob.seconds), blob.mime

    def resolve_sim_url(self, url: str) -> str | None:
        """The decoded ``/files/...`` path behind a URL this sim issued (any host), or None."""
        path = unquote(urlsplit(url).path)
        if path.startswith("/dl/"):
            link = self.links.get(path.split("/")[2] if path.count("/") >= 2 else "")
            return link.target if link is not None else None
        if not path.startswith("/files/"):
            return None
        try:
            self.lookup_file(path, check_ttl=False)
        except FileError:
            return None
        return path

    def mint_link(self, target: str | None) -> Link:
        now = self.now()
        for stale in [t for t, link in self.links.items() if now >= link.expires_at + LINK_MEMORY_SECONDS]:
            del self.links[stale]  # long-dead links may turn from 403 into 404, as CDN keys get purged
        token = secrets.token_hex(12)
        link = Link(token=token, target=target, expires_at=now + self.config.download_url_ttl_seconds)
        self.links[token] = link
        return link

    # -- inspection ------------------------------------------------------------------------

    def log_request(self, record: SimRequest) -> None:
        if len(self.requests) >= MAX_LOGGED_REQUESTS:
            del self.requests[: MAX_LOGGED_REQUESTS // 2]
        self.requests.append(record)

    def snapshot(self) -> dict[str, Any]:
        self.settle_all()
        now = self.now()
        by_state: dict[str, int] = {}
        for task in self.tasks.values():
            state = task.state(now)
            by_state[state] = by_state.get(state, 0) + 1
        return {
            "now": now,
            "speed": self.config.speed,
            "balances": {name: acct.balance for name, acct in self.accounts.items()},
            "keySpent": {_mask(k): v for k, v in self.key_spent.items()},
            "tasks": {"total": len(self.tasks), "byState": by_state},
            "uploads": len(self.uploads),
            "faults": [f.to_dict() for f in self.faults.items],
            "requests": len(self.requests),
            "callbacks": len(self.callbacks),
            "config": self.config.model_dump(),
        }
