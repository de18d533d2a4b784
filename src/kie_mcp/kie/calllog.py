"""``logs/kie-api.jsonl``: one line per KIE call, to trace cost and history later.

Each line has the time, endpoint, model, task id, outcome, credits quoted and charged, latency and any error
code and message. Request bodies are never written, so neither the key nor base64 payloads can end up here, and
every string value is redacted before it is written (an error message may echo the Authorization header).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kie_mcp.redact import redact, redact_value

log = logging.getLogger(__name__)


class CallLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._warned = False

    def write(self, **entry: Any) -> None:
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        line.update({k: redact_value(v) for k, v in entry.items() if v is not None})
        text = json.dumps(line, ensure_ascii=False, default=_text)
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(text + "\n")
            except OSError as err:  # a full disk or an unwritable workspace must not turn a paid answer into an error
                if not self._warned:
                    log.warning("cannot write the call log %s (%s); KIE calls go on without it", self.path, err)
                    self._warned = True


def _text(value: object) -> str:
    """What JSON cannot hold as it is, as redacted text."""
    return redact(str(value))
