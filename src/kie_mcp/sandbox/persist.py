"""The sandbox simulator's memory across restarts: its tasks, uploads, download links, balances and clock on disk.

``kie-mcp --sandbox`` keeps its journal, outputs and ledger in the sandbox area, so its simulated KIE must keep what
it made there too, or a host's restart would make every earlier task unknown ("record is null"): no extend, no
follow-up, no stitch chain, and a task running at exit never finished. ``Simulator(..., state_path=...)`` loads the
state file when it starts and writes it after every API request that changed something (and, while a task runs, every
few seconds, so its clock is not set back far by a hard stop), and when its transport closes.

What is kept: every task with what its answers and files are made of (request body, timing, outcome, result file
list, family facts), so its status answers, result files (``/files/``: generated from the task, nothing stored) and
follow-ups work as before; uploads (their bytes in ``simulator-uploads/``, one file per content); download-url links;
each account's balance; the virtual clock, which stands still while the server is down (a task running at exit goes
on from where it was). Never kept: bearer keys (a task's key is found again from its account), request logs,
scripted faults, rate-limit windows, recorded callbacks, settings.

Bounded: a finished task is dropped 14 days after it was first saved (KIE keeps tasks 14 days), and only the newest
``MAX_TASKS`` are kept; expired uploads and long-dead links go. Robust: the file is written atomically (temporary file,
then ``os.replace``); a missing file is a fresh start, and an unreadable one (corrupt, or written by a newer kie-mcp)
is moved aside with one warning and the simulator starts fresh. Saving never fails a request: a write that fails is
logged once and tried again at the next change.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import math
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kie_mcp.redact import redact, redact_value
from kie_mcp.regular import open_regular

if TYPE_CHECKING:
    from .state import Simulator, StoredUpload, Task

log = logging.getLogger(__name__)

FORMAT = 1
STATE_FILE = "simulator.json"
UPLOADS_DIR = "simulator-uploads"
KEEP_SECONDS = 14 * 86400.0  # real seconds a finished task is kept after it was first saved (KIE: 14 days)
MAX_TASKS = 2000
MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # uploads kept, newest first, up to this much in all
RUNNING_SAVE_SECONDS = 5.0  # while a task runs, the clock is saved this often (real seconds), so a kill costs little
_BLOB_NAME = re.compile(r"^[0-9a-f]{64}$")
_CALLBACK_MODULE = "kie_mcp.sandbox."


class UnreadableState(ValueError):
    """The state file exists but cannot be used: corrupt, of another shape, or of a newer format."""


def state_path(workspace: Path) -> Path:
    """Where the sandbox simulator of the sandbox area ``workspace`` keeps its state (beside the journal)."""
    return workspace / ".kie-mcp" / STATE_FILE


def _callback_ref(fn: Any) -> str | None:
    module, name = getattr(fn, "__module__", ""), getattr(fn, "__qualname__", "")
    return f"{module}:{name}" if module.startswith(_CALLBACK_MODULE) and name and "<" not in name else None


def _callback_from(ref: Any) -> Any:
    """The family's callback-body builder a saved task names: only a ``*callback_body`` function of one of the
    simulator's own modules."""
    if not isinstance(ref, str) or not ref.startswith(_CALLBACK_MODULE) or ":" not in ref:
        return None
    module, _, name = ref.partition(":")
    if not name.endswith("callback_body") or not name.isidentifier():
        return None
    try:
        fn = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    return fn if callable(fn) else None


def _number(value: Any, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UnreadableState(f"not a finite number: {value!r}")
    return float(value)


def _text(value: Any, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise UnreadableState(f"not text: {value!r}")
    return value


def _flag(value: Any, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise UnreadableState(f"not true or false: {value!r}")
    return value


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnreadableState(f"not an object: {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise UnreadableState(f"not a list: {type(value).__name__}")
    return value


class SimStore:
    """Loads a simulator's state from ``path`` and writes it back when it changed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.blobs = self.path.parent / UPLOADS_DIR
        self._kept_since: dict[str, float] = {}  # task id -> real time it was first saved (for the 14 days)
        self._blob_of: dict[str, str] = {}  # upload file_id -> sha256 of its bytes
        self._saved_content: str | None = None
        self._saved_clock: float | None = None
        self._saved_mark: tuple[Any, ...] | None = None
        self._saved_at = 0.0  # time.monotonic() of the last write
        self._write_failed = False
        self._disabled = False  # a file that exists but cannot be read is never written over

    # -- loading ---------------------------------------------------------------------------------------------

    def load(self, sim: Simulator) -> None:
        """Fill the fresh ``sim`` from the file. Missing: nothing to do. Unreadable: moved aside, one warning."""
        try:
            with open_regular(self.path) as handle:  # a FIFO in its place is unreadable, never waited on
                raw = handle.read()
        except FileNotFoundError:
            return
        except OSError as err:
            self._disabled = True
            log.warning(
                "The sandbox could not read its saved simulator state %s (%s), so it starts afresh and keeps this "
                "run's simulated tasks in memory only: tasks of earlier sandbox runs cannot be checked or continued, "
                "and the simulated balance is back to %s credits.",
                self.path,
                err,
                _credits(sim.config.starting_balance),
            )
            return
        try:
            self._restore(sim, raw)
        except Exception as err:  # whatever is wrong with the file, the sandbox starts
            sim._init_state()  # nothing half loaded
            self._kept_since.clear()
            self._blob_of.clear()
            kept = self._move_aside()
            where = f"it was moved aside to {kept}" if kept else "it will be replaced"
            log.warning(
                "The sandbox's saved simulator state %s could not be used (%s); %s and the sandbox starts afresh: "
                "tasks of earlier sandbox runs cannot be checked or continued, and the simulated balance is back to "
                "%s credits.",
                self.path,
                err,
                where,
                _credits(sim.config.starting_balance),
            )
            return
        self._prune(sim)
        log.info(
            "sandbox simulator state loaded from %s: %d task(s), %d upload(s)",
            self.path,
            len(sim.tasks),
            len(sim.uploads),
        )

    def _move_aside(self) -> Path | None:
        kept = self.path.with_name(f"{self.path.name}.unreadable-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
        try:
            self.path.replace(kept)
        except OSError:
            return None
        return kept

    def _restore(self, sim: Simulator, raw: bytes) -> None:
        from .state import Link, StoredUpload

        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UnreadableState(f"not JSON: {err}") from None
        doc = _object(doc)
        version = doc.get("format")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT:
            raise UnreadableState(f"format {version} is newer than this kie-mcp reads ({FORMAT})")
        if version != FORMAT:
            raise UnreadableState(f"unknown format {version!r}")
        clock = _number(doc["clock"])
        for name, balance in _object(doc.get("accounts", {})).items():
            sim._account(_text(name)).balance = _number(balance)
        key_of: dict[str, str] = {}
        for key, account in sim.keys.items():
            key_of.setdefault(account, key)
        for item in _list(doc.get("tasks", [])):
            task = self._task_from(_object(item), sim, key_of)
            sim.tasks[task.id] = task
            clock = max(clock, task.created_at)
        for entry in _list(doc.get("uploads", [])):
            item = _object(entry)
            sha = _text(item["sha256"])
            data = self._read_blob(sha)
            if data is None:
                log.debug("sandbox upload %s: its saved bytes are gone; left out", item.get("path"))
                continue
            upload = StoredUpload(
                path=_text(item["path"]),
                data=data,
                mime=_text(item["mime"]),
                original_name=_text(item["original_name"]),
                file_id=_text(item["file_id"]),
                uploaded_at=_number(item["uploaded_at"]),
                expires_at=_number(item["expires_at"]),
            )
            sim.uploads[upload.path] = upload
            self._blob_of[upload.file_id] = sha
        for entry in _list(doc.get("links", [])):
            item = _object(entry)
            link = Link(
                token=_text(item["token"]),
                target=_text(item.get("target"), optional=True),
                expires_at=_number(item["expires_at"]),
            )
            sim.links[link.token] = link
        # The clock goes on from where it stood: the time the server was down did not pass for the simulator.
        sim._anchor_virtual = clock
        sim._anchor_real = time.monotonic()
        sim._anchor_speed = sim.config.speed

    def _task_from(self, item: dict[str, Any], sim: Simulator, key_of: dict[str, str]) -> Task:
        from .state import MediaFile, Task

        files = {}
        for name, entry in _object(item.get("files", {})).items():
            spec = _object(entry)
            kind = _text(spec["kind"])
            if kind not in ("image", "video"):
                raise UnreadableState(f"unknown file kind {kind!r}")
            files[_text(name)] = MediaFile(
                kind=kind,  # type: ignore[arg-type]
                fmt=_text(spec["fmt"]),
                aspect=_text(spec.get("aspect"), optional=True),
                ready_at=_number(spec.get("ready_at"), optional=True),
                seconds=_number(spec.get("seconds"), optional=True),
                sound=_flag(spec.get("sound"), optional=True),
            )
        outcome = _text(item["outcome"])
        if outcome not in ("success", "fail"):
            raise UnreadableState(f"unknown outcome {outcome!r}")
        account = _text(item["account"])
        task = Task(
            id=_text(item["id"]),
            family=_text(item["family"]),
            model=_text(item["model"]),
            kind=_text(item["kind"]),
            account=account,
            key=key_of.get(account, ""),
            body=_object(item["body"]),
            created_at=_number(item["created_at"]),
            duration=_number(item["duration"]),
            base_url=_text(item["base_url"]),
            callback_url=_text(item.get("callback_url"), optional=True),
            charged=_number(item.get("charged", 0.0)),
            outcome=outcome,  # type: ignore[arg-type]
            fail_code=_text(item.get("fail_code", "")),
            fail_msg=_text(item.get("fail_msg", "")),
            forced_at=_number(item.get("forced_at"), optional=True),
            files=files,
            meta=_object(item.get("meta", {})),
            callback=_callback_from(item.get("callback")),
            polls=sim.config.visibility_lag_polls,  # it was seen before: visible at once
            settled=bool(item.get("settled", False)),
            refunded=bool(item.get("refunded", False)),
        )
        self._kept_since[task.id] = _number(item.get("kept_since", time.time()))
        return task

    def _read_blob(self, sha: str) -> bytes | None:
        if not _BLOB_NAME.match(sha):
            return None
        try:
            with open_regular(self.blobs / sha) as handle:
                data = handle.read()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha else None

    # -- saving ----------------------------------------------------------------------------------------------

    def save(self, sim: Simulator, *, force: bool = False) -> None:
        """Write the state if it changed (or, while a task runs, if the last write is a few seconds old).

        ``force`` (the transport closing): write whenever the content or the clock differs from the file. Cheap
        when nothing changed: a count of what changes is compared first, the content is built only when needed.
        """
        if self._disabled:
            return
        now = sim.now()
        mark = self._mark(sim)
        refresh = force  # the content may be unchanged, but the clock is worth writing
        if not force and mark == self._saved_mark:
            if time.monotonic() - self._saved_at < RUNNING_SAVE_SECONDS:
                return
            if not any(not task.is_done(now) for task in sim.tasks.values()):
                return
            refresh = True
        self._prune(sim)
        content, blobs = self._content(sim)
        if content == self._saved_content and (not refresh or now == self._saved_clock):
            self._saved_mark = mark
            return
        try:
            self._write(now, content, blobs)
        except (OSError, TypeError, ValueError) as err:
            if not self._write_failed:
                log.warning(
                    "The sandbox could not save its simulator state to %s (%s): tasks made now may be unknown to "
                    "the sandbox after a restart. It tries again at the next change.",
                    self.path,
                    err,
                )
            self._write_failed = True
            self._saved_mark = mark  # tried again at the next change, not at every request
            self._saved_at = time.monotonic()
            return
        self._write_failed = False
        self._saved_content, self._saved_clock, self._saved_mark = content, now, mark
        self._saved_at = time.monotonic()

    @staticmethod
    def _mark(sim: Simulator) -> tuple[Any, ...]:
        """What changes when the state does: task count, settled and refunded counts, files and facts per task,
        balances, uploads and links. Cheap enough for every request; ``_content`` decides for real."""
        settled = refunded = files = facts = 0
        for task in sim.tasks.values():
            settled += task.settled
            refunded += task.refunded
            files += len(task.files)
            facts += len(task.meta)
        balances = tuple(sorted((name, acct.balance) for name, acct in sim.accounts.items()))
        return (len(sim.tasks), settled, refunded, files, facts, balances, len(sim.uploads), len(sim.links))

    def _prune(self, sim: Simulator) -> None:
        """Drop what KIE would have dropped: finished tasks first saved over 14 days ago, then the oldest
        finished tasks beyond ``MAX_TASKS``; expired uploads; links long past their end."""
        from .state import LINK_MEMORY_SECONDS

        now, wall = sim.now(), time.time()
        done = [task for task in sim.tasks.values() if task.is_done(now)]
        old = {task.id for task in done if wall - self._kept_since.get(task.id, wall) > KEEP_SECONDS}
        over = len(sim.tasks) - len(old) - MAX_TASKS
        if over > 0:
            rest = sorted((task for task in done if task.id not in old), key=lambda task: task.created_at)
            old.update(task.id for task in rest[:over])
        for task_id in old:
            del sim.tasks[task_id]
            self._kept_since.pop(task_id, None)
        for path in [p for p, item in sim.uploads.items() if now >= item.expires_at]:
            del sim.uploads[path]
        for token in [t for t, link in sim.links.items() if now >= link.expires_at + LINK_MEMORY_SECONDS]:
            del sim.links[token]

    def _content(self, sim: Simulator) -> tuple[str, dict[str, bytes]]:
        """The state as JSON text, without the clock (so that an unchanged state compares equal), and the bytes
        of the uploads it names by their sha256."""
        wall = time.time()
        tasks = []
        for task in sorted(sim.tasks.values(), key=lambda task: task.created_at):
            item = self._task_doc(task, sim, self._kept_since.setdefault(task.id, wall))
            try:
                tasks.append(_json(item))
            except (TypeError, ValueError) as err:  # a fact that is not JSON: that task is not kept
                log.debug("sandbox task %s cannot be saved: %s", task.id, err)
        uploads, blobs, total = [], {}, 0
        for upload in sorted(sim.uploads.values(), key=lambda item: item.uploaded_at, reverse=True):
            total += len(upload.data)
            if total > MAX_UPLOAD_BYTES:
                break
            item = self._upload_doc(upload)
            uploads.append(item)
            blobs[item["sha256"]] = upload.data
        links = [
            {"token": link.token, "target": link.target, "expires_at": link.expires_at} for link in sim.links.values()
        ]
        accounts = {name: acct.balance for name, acct in sim.accounts.items()}
        doc = _json({"format": FORMAT, "accounts": accounts, "uploads": uploads, "links": links})
        return f'{doc[:-1]},"tasks":[{",".join(tasks)}]}}', blobs

    @staticmethod
    def _task_doc(task: Task, sim: Simulator, kept_since: float) -> dict[str, Any]:
        fail_msg = task.fail_msg
        for key in {*sim.keys, task.key}:  # bearer keys are never written, not even inside a message
            if key:
                fail_msg = fail_msg.replace(key, f"{key[:4]}...")
        return {
            "id": task.id,
            "family": task.family,
            "model": task.model,
            "kind": task.kind,
            "account": task.account,
            "body": redact_value(task.body),  # a key pasted into a prompt or an option is never written here
            "created_at": task.created_at,
            "duration": task.duration,
            "base_url": task.base_url,
            "callback_url": redact(task.callback_url) if task.callback_url else task.callback_url,
            "charged": task.charged,
            "outcome": task.outcome,
            "fail_code": task.fail_code,
            "fail_msg": redact(fail_msg),
            "forced_at": task.forced_at,
            "files": {
                name: {
                    "kind": item.kind,
                    "fmt": item.fmt,
                    "aspect": item.aspect,
                    "ready_at": item.ready_at,
                    "seconds": item.seconds,
                    "sound": item.sound,
                }
                for name, item in task.files.items()
            },
            "meta": task.meta,
            "callback": _callback_ref(task.callback) if task.callback is not None else None,
            "settled": task.settled,
            "refunded": task.refunded,
            "kept_since": kept_since,
        }

    def _upload_doc(self, upload: StoredUpload) -> dict[str, Any]:
        sha = self._blob_of.get(upload.file_id)
        if sha is None:
            sha = self._blob_of[upload.file_id] = hashlib.sha256(upload.data).hexdigest()
        return {
            "path": upload.path,
            "sha256": sha,
            "mime": upload.mime,
            "original_name": upload.original_name,
            "file_id": upload.file_id,
            "uploaded_at": upload.uploaded_at,
            "expires_at": upload.expires_at,
        }

    def _write(self, now: float, content: str, wanted: dict[str, bytes]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if wanted:
            self.blobs.mkdir(exist_ok=True)
        for sha, data in wanted.items():
            if not (self.blobs / sha).is_file():
                _atomic_write(self.blobs / sha, data)
        # The clock goes in front of the content, which is kept as built (compared as text on the next save).
        head = _json({"clock": now, "saved_at": time.time()})
        _atomic_write(self.path, (head[:-1] + "," + content[1:]).encode())
        if self.blobs.is_dir():
            for blob in self.blobs.iterdir():
                if _BLOB_NAME.match(blob.name) and blob.name not in wanted:
                    with contextlib.suppress(OSError):
                        blob.unlink()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _atomic_write(path: Path, data: bytes) -> None:
    """Readers (the next start) see the old state or the new one, never half of one; not fsynced: a sandbox."""
    from kie_mcp.media.downloads import write_bytes_atomic

    write_bytes_atomic(path, data, durable=False)


def _credits(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:g}"
