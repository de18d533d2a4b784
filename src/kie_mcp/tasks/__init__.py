"""Task records and following tasks to the end."""

from .polling import follow, refresh
from .records import TaskBook, TaskRecord

__all__ = ["TaskBook", "TaskRecord", "follow", "refresh"]
