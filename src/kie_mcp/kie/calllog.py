"""``logs/kie-api.jsonl``: one line per KIE call, to trace cost and history later.

Each line has the time, endpoint, model, task id, outcome, credits quoted and charged, latency and any error
code and message. Request bodies are never written, so neither the key nor base64 payloads can end up here.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class CallLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, **entry: Any) -> None:
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        line.update({k: v for k, v in entry.items() if v is not None})
        text = json.dumps(line, ensure_ascii=False, default=str)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(text + "\n")
