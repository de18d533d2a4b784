"""The one object that lets a create reach KIE.

The KIE client refuses to send any create without an ``Approval``, and only the spend gate
issues them (``_issue`` is private to the ``spend`` package). An approval covers one model and a
fixed number of creates; each create uses one, so a bug cannot spend more than was approved.
"""

from __future__ import annotations

import threading
from typing import Literal

ApprovedBy = Literal["quote", "auto", "elicitation"]

_GATE_TOKEN = object()


class ApprovalError(RuntimeError):
    """A create was attempted without a matching, unused approval. This is a bug, never user error."""


class Approval:
    def __init__(
        self,
        model_id: str,
        creates: int,
        approved_by: ApprovedBy,
        credits: float | None,
        *,
        reserved: float | None = None,
        _token: object,
    ):
        if _token is not _GATE_TOKEN:
            raise ApprovalError("Approvals are issued only by the spend gate.")
        self.model_id = model_id
        self.approved_by = approved_by
        self.credits = credits
        self.credits_each = None if credits is None or creates == 0 else round(credits / creates, 4)
        # What each create counts against the caps (its price, or a share of what an unknown price reserves): the
        # call log keeps it, so today's spend rebuilt from the log after a journal reset counts it too.
        self.reserved_each = None if reserved is None or creates == 0 else round(reserved / creates, 4)
        self._remaining = creates
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        return self._remaining

    def use_one(self, model_id: str) -> None:
        """Spend one create of this approval, or raise if none is left or the model differs."""
        with self._lock:
            if model_id != self.model_id:
                raise ApprovalError(f"approval covers {self.model_id!r}, not {model_id!r}")
            if self._remaining <= 0:
                raise ApprovalError("approval has no creates left")
            self._remaining -= 1


def _issue(
    model_id: str, creates: int, approved_by: ApprovedBy, credits: float | None, reserved: float | None = None
) -> Approval:
    return Approval(model_id, creates, approved_by, credits, reserved=reserved, _token=_GATE_TOKEN)
