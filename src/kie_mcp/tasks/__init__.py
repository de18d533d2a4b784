"""Task records, one look at a task, and the follower that follows every task to the end."""

from .follower import Checked, Follower
from .polling import VISIBILITY_GRACE_SECONDS, Look, refresh
from .records import TaskBook, TaskRecord

__all__ = ["VISIBILITY_GRACE_SECONDS", "Checked", "Follower", "Look", "TaskBook", "TaskRecord", "refresh"]
