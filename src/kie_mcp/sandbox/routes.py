"""How a family declares its endpoints: path, method, fault/limit category and handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.responses import Response

if TYPE_CHECKING:
    from .context import Ctx

Handler = Callable[["Ctx"], Awaitable[Response]]


@dataclass(frozen=True)
class SimRoute:
    """One simulated KIE endpoint. ``category`` picks the faults that apply ("create", "status", ...)."""

    path: str
    method: str
    category: str
    handler: Handler
    auth: bool = True
