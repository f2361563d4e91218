"""Persistent state of the control plane: SQLite by default, PostgreSQL by configuration.

The media plane never imports this package.
"""

from .database import Database, DatabaseUnavailable
from .meetings import MeetingRecord, MeetingStore

__all__ = ["Database", "DatabaseUnavailable", "MeetingRecord", "MeetingStore"]
