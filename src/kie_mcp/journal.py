"""The task journal: one SQLite file per workspace that outlives the server process.

Everything a tool reports is written here first: quotes, each create attempt (before the request is sent),
task ids as soon as KIE returns them, status changes, results, credits and downloaded files. A restarted or
second server on the same workspace reads the same file. Writes that decide money (using a quote, reserving
spend under a cap) run in ``BEGIN IMMEDIATE`` transactions, so two processes cannot both win.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS quotes (
    quote_id TEXT PRIMARY KEY, model TEXT NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL,
    expires REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY AUTOINCREMENT, day TEXT NOT NULL, delta REAL NOT NULL, reason TEXT NOT NULL,
    ref TEXT, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS spend_day ON spend(day);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id TEXT PRIMARY KEY, model TEXT NOT NULL, family TEXT NOT NULL, approved_by TEXT, quote_id TEXT,
    prompt TEXT, params TEXT, options_key TEXT, credits_quoted REAL, state TEXT NOT NULL, task_id TEXT, error TEXT,
    session TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, attempt_id TEXT, model TEXT NOT NULL, state TEXT NOT NULL, prompt TEXT,
    session TEXT, record TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks(created);
CREATE TABLE IF NOT EXISTS uploads (
    sha256 TEXT PRIMARY KEY, url TEXT NOT NULL, uploaded REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    task_id TEXT NOT NULL, idx INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    mime TEXT NOT NULL, source_url TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (task_id, idx));
"""


class Journal:
    """A thread-safe handle on the workspace journal."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)

    @classmethod
    def for_workspace(cls, workspace: Path) -> Journal:
        return cls(workspace / ".kie-mcp" / "journal.sqlite3")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction, across threads and processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def execute(self, sql: str, *args: Any) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # -- spend ---------------------------------------------------------------------------------

    def spent_on(self, day: date) -> float:
        rows = self.query("SELECT COALESCE(SUM(delta), 0) AS total FROM spend WHERE day = ?", day.isoformat())
        return max(float(rows[0]["total"]), 0.0)

    def total_spent(self) -> float:
        return max(float(self.query("SELECT COALESCE(SUM(delta), 0) AS total FROM spend")[0]["total"]), 0.0)

    @staticmethod
    def add_spend(db: sqlite3.Connection, day: date, delta: float, reason: str, ref: str | None) -> None:
        db.execute(
            "INSERT INTO spend (day, delta, reason, ref, at) VALUES (?, ?, ?, ?, ?)",
            (day.isoformat(), delta, reason, ref, time.time()),
        )

    # -- create attempts -----------------------------------------------------------------------

    def begin_attempt(
        self,
        *,
        model: str,
        family: str,
        approved_by: str,
        quote_id: str | None,
        prompt: str,
        params: dict[str, Any],
        credits_quoted: float | None,
        session: str | None,
        options_key: str | None = None,
    ) -> str:
        """Written before the create is sent: a crash after this line still leaves a trace of the spend."""
        attempt_id = "a_" + uuid.uuid4().hex[:16]
        now = time.time()
        self.execute(
            "INSERT INTO attempts (attempt_id, model, family, approved_by, quote_id, prompt, params, options_key,"
            " credits_quoted, state, session, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'sending', ?, ?, ?)",
            attempt_id,
            model,
            family,
            approved_by,
            quote_id,
            prompt,
            json.dumps(params, ensure_ascii=False),
            options_key,
            credits_quoted,
            session,
            now,
            now,
        )
        return attempt_id

    def finish_attempt(self, attempt_id: str, state: str, task_id: str | None = None, error: str | None = None) -> None:
        """``state``: created (KIE returned a task id), refused (KIE said no) or unknown (no answer)."""
        self.execute(
            "UPDATE attempts SET state = ?, task_id = ?, error = ?, updated = ? WHERE attempt_id = ?",
            state,
            task_id,
            error,
            time.time(),
            attempt_id,
        )

    def attempts(self, state: str | None = None) -> list[sqlite3.Row]:
        if state is None:
            return self.query("SELECT * FROM attempts ORDER BY created")
        return self.query("SELECT * FROM attempts WHERE state = ? ORDER BY created", state)

    # -- tasks -----------------------------------------------------------------------------------

    def save_task(self, record_json: str, *, task_id: str, model: str, state: str, **extra: Any) -> None:
        now = time.time()
        self.execute(
            "INSERT INTO tasks (task_id, attempt_id, model, state, prompt, session, record, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET state = excluded.state,"
            " record = excluded.record, updated = excluded.updated,"
            " prompt = COALESCE(excluded.prompt, tasks.prompt), session = COALESCE(excluded.session, tasks.session),"
            " attempt_id = COALESCE(excluded.attempt_id, tasks.attempt_id)",
            task_id,
            extra.get("attempt_id"),
            model,
            state,
            extra.get("prompt"),
            extra.get("session"),
            record_json,
            extra.get("created", now),
            now,
        )

    def task_row(self, task_id: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM tasks WHERE task_id = ?", task_id)
        return rows[0] if rows else None

    def find_tasks(
        self,
        *,
        state: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        text: str | None = None,
        limit: int = 50,
    ) -> list[sqlite3.Row]:
        clauses, args = [], []
        if state:
            clauses.append("state = ?")
            args.append(state)
        if model:
            clauses.append("model = ?")
            args.append(model)
        if since:
            clauses.append("created >= ?")
            args.append(since.timestamp())
        if text:
            clauses.append("LOWER(COALESCE(prompt, '')) LIKE ?")
            args.append(f"%{text.lower()}%")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.query(f"SELECT * FROM tasks {where} ORDER BY created DESC LIMIT ?", *args, limit)

    def charged_before(self, model: str, options_key: str, limit: int = 5) -> list[tuple[float, float]]:
        """(credits charged, when) of recent finished tasks with this model and these options, newest first."""
        rows = self.query(
            "SELECT t.record, t.updated FROM tasks t JOIN attempts a ON t.attempt_id = a.attempt_id"
            " WHERE a.model = ? AND a.options_key = ? AND t.state = 'succeeded' ORDER BY t.updated DESC LIMIT ?",
            model,
            options_key,
            limit,
        )
        found = []
        for row in rows:
            charged = json.loads(row["record"]).get("credits_charged")
            if charged is not None:
                found.append((float(charged), float(row["updated"])))
        return found

    # -- files ---------------------------------------------------------------------------------

    def add_file(self, task_id: str, index: int, path: str, sha256: str, size: int, mime: str, source_url: str) -> None:
        self.execute(
            "INSERT OR REPLACE INTO files (task_id, idx, path, sha256, size, mime, source_url, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            task_id,
            index,
            path,
            sha256,
            size,
            mime,
            source_url,
            time.time(),
        )

    def remember_upload(self, sha256: str, url: str) -> None:
        self.execute(
            "INSERT OR REPLACE INTO uploads (sha256, url, uploaded) VALUES (?, ?, ?)", sha256, url, time.time()
        )

    def live_upload(self, sha256: str, max_age_seconds: float) -> str | None:
        """The URL of an earlier upload of the same content, while KIE still keeps it."""
        rows = self.query(
            "SELECT url FROM uploads WHERE sha256 = ? AND uploaded > ?", sha256, time.time() - max_age_seconds
        )
        return rows[0]["url"] if rows else None

    def files_for(self, task_id: str) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM files WHERE task_id = ? ORDER BY idx", task_id)
