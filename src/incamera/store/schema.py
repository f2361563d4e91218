"""The tables, as SQLAlchemy Core objects for queries.

The schema itself is created and changed only by the Alembic migrations in ``migrations/``;
``tests/server/test_store.py`` checks that the migrations' result equals these definitions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend.

    SQLite has no time zone type: values are stored as UTC without offset and given their
    ``tzinfo`` back when read. Naive datetimes are refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


meetings = sa.Table(
    "meetings",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("title", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # When the meeting closes if nobody joins; NULL while somebody is in it.
    sa.Column("closes_at", UTCDateTime(), nullable=True, index=True),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
)
