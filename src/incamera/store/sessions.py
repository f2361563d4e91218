"""Session rows. The cookie value never reaches the database: rows are keyed by its SHA-256,
so a leaked database (or backup) does not let anyone take over a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .database import Database
from .schema import sessions


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: str
    account_id: str | None
    auth_method: str | None
    csrf_token: str
    data: dict[str, Any]
    created_at: datetime
    last_seen_at: datetime


class SessionStore:
    def __init__(self, database: Database) -> None:
        self._engine = database.engine

    def insert(self, record: SessionRecord) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sessions.insert().values(
                    id_hash=record.id_hash,
                    account_id=record.account_id,
                    auth_method=record.auth_method,
                    csrf_token=record.csrf_token,
                    data=record.data,
                    created_at=record.created_at,
                    last_seen_at=record.last_seen_at,
                )
            )

    def get(self, id_hash: str) -> SessionRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(sessions).where(sessions.c.id_hash == id_hash)
            ).one_or_none()
        if row is None:
            return None
        return SessionRecord(
            id_hash=row.id_hash,
            account_id=row.account_id,
            auth_method=row.auth_method,
            csrf_token=row.csrf_token,
            data=dict(row.data or {}),
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
        )

    def touch(self, id_hash: str, now: datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sessions.update().where(sessions.c.id_hash == id_hash).values(last_seen_at=now)
            )

    def set_data(self, id_hash: str, data: dict[str, Any]) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sessions.update().where(sessions.c.id_hash == id_hash).values(data=data)
            )

    def delete(self, id_hash: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(sessions.delete().where(sessions.c.id_hash == id_hash))

    def delete_for_account(self, account_id: str) -> int:
        with self._engine.begin() as connection:
            result = connection.execute(
                sessions.delete().where(sessions.c.account_id == account_id)
            )
        return int(result.rowcount)

    def delete_expired(self, idle_before: datetime, created_before: datetime) -> int:
        with self._engine.begin() as connection:
            result = connection.execute(
                sessions.delete().where(
                    sa.or_(
                        sessions.c.last_seen_at < idle_before,
                        sessions.c.created_at < created_before,
                    )
                )
            )
        return int(result.rowcount)
