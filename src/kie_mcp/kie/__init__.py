"""KIE's HTTP API: the client, the envelope and errors, the families, uploads."""

from .client import KieClient, UploadedFile
from .errors import CODES, Category, KieError, NotSentError, OutcomeUnknownError, RefusedHereError
from .families import FAMILIES, Family
from .status import TaskState, TaskStatus

__all__ = [
    "CODES",
    "FAMILIES",
    "Category",
    "Family",
    "KieClient",
    "KieError",
    "NotSentError",
    "OutcomeUnknownError",
    "RefusedHereError",
    "TaskState",
    "TaskStatus",
    "UploadedFile",
]
