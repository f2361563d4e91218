"""Meeting rows: what outlives the process (id, title, creation and closing times).

Who is in a meeting right now is not stored: participants are live connections, held in
memory by the server. All methods are blocking (see ``database.py`` for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .database import Database
from .schema import meetings


@dataclass(frozen=True, slots=True)
class MeetingRecord:
    id: str
    title: str | None
    created_at: datetime
    closes_at: datetime | None  # None while somebody is in the meeting
    closed_at: datetime | None  # set once the meeting has closed
    e2ee: bool = True  # end-to-end encrypted (False only where the policy allowed it)
    access_policy: dict[str, Any] | None = None  # AccessPolicy.stored(); None: defaults
    moderator_key_hash: str | None = None  # SHA-256 hex of the moderator key
    owner_account_id: str | None = None  # the signed-in creator

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


def _record(row: sa.Row[Any]) -> MeetingRecord:
    return MeetingRecord(
        id=row.id,
        title=row.title,
        e2ee=row.e2ee,
        created_at=row.created_at,
        closes_at=row.closes_at,
        closed_at=row.closed_at,
        access_policy=row.access_policy,
        moderator_key_hash=row.moderator_key_hash,
        owner_account_id=row.owner_account_id,
    )


class MeetingStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._engine = database.engine

    def insert(self, record: MeetingRecord) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                meetings.insert().values(
                    id=record.id,
                    title=record.title,
                    e2ee=record.e2ee,
                    created_at=record.created_at,
                    closes_at=record.closes_at,
                    closed_at=record.closed_at,
                    access_policy=record.access_policy,
                    moderator_key_hash=record.moderator_key_hash,
                    owner_account_id=record.owner_account_id,
                )
            )

    def get(self, meeting_id: str) -> MeetingRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    meetings.c.id,
                    meetings.c.title,
                    meetings.c.e2ee,
                    meetings.c.created_at,
                    meetings.c.closes_at,
                    meetings.c.closed_at,
                    meetings.c.access_policy,
                    meetings.c.moderator_key_hash,
                    meetings.c.owner_account_id,
                ).where(meetings.c.id == meeting_id)
            ).one_or_none()
        return None if row is None else _record(row)

    def set_access_policy(self, meeting_id: str, policy: dict[str, Any]) -> None:
        """Store a meeting's changed access policy (``AccessPolicy.stored()``)."""
        with self._engine.begin() as connection:
            connection.execute(
                meetings.update().where(meetings.c.id == meeting_id).values(access_policy=policy)
            )

    def set_closes_at(self, meeting_id: str, closes_at: datetime | None) -> None:
        """Record a change of occupancy: None when the first person joined, a time when the
        last one left. Has no effect on a closed meeting."""
        with self._engine.begin() as connection:
            connection.execute(
                meetings.update()
                .where(meetings.c.id == meeting_id, meetings.c.closed_at.is_(None))
                .values(closes_at=closes_at)
            )

    def close_now(self, meeting_id: str, now: datetime) -> None:
        """Close one meeting at once (a moderator ended it); a closed one stays as it was."""
        with self._engine.begin() as connection:
            connection.execute(
                meetings.update()
                .where(meetings.c.id == meeting_id, meetings.c.closed_at.is_(None))
                .values(closed_at=now)
            )

    def close_due(self, now: datetime) -> list[str]:
        """Close every open meeting whose ``closes_at`` has passed; return their ids."""
        due = sa.and_(meetings.c.closed_at.is_(None), meetings.c.closes_at <= now)
        with self._engine.begin() as connection:
            ids = list(connection.execute(sa.select(meetings.c.id).where(due)).scalars())
            if ids:
                connection.execute(
                    meetings.update()
                    .where(meetings.c.id.in_(ids), meetings.c.closed_at.is_(None))
                    .values(closed_at=now)
                )
        return ids

    def release_occupied(self, closes_at: datetime) -> int:
        """After a restart nobody is connected: give every meeting that was occupied when
        the previous process stopped a closing time. Returns how many were changed."""
        with self._engine.begin() as connection:
            result = connection.execute(
                meetings.update()
                .where(meetings.c.closed_at.is_(None), meetings.c.closes_at.is_(None))
                .values(closes_at=closes_at)
            )
        return int(result.rowcount)
