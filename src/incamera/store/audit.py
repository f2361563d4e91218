"""The security audit log (``audit_events``). Blocking methods.

Rows never hold secrets (no PINs, keys, tokens or passwords); ``source_ip`` is only filled
when the operator set ``audit.store_ip_addresses``. Old rows are purged after
``audit.retention_days`` by the server's sweeper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .database import Database
from .schema import audit_events

MAX_QUERY_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: datetime
    kind: str
    meeting_id: str | None = None
    actor: str | None = None
    subject: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    source_ip: str | None = None
    id: int | None = None  # set once stored

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "meeting_id": self.meeting_id,
            "actor": self.actor,
            "subject": self.subject,
            "details": self.details,
            "source_ip": self.source_ip,
        }


class AuditStore:
    def __init__(self, database: Database) -> None:
        self._engine = database.engine

    def insert_many(self, events: list[AuditEvent]) -> None:
        if not events:
            return
        with self._engine.begin() as connection:
            connection.execute(
                audit_events.insert(),
                [
                    {
                        "at": e.at,
                        "kind": e.kind,
                        "meeting_id": e.meeting_id,
                        "actor": e.actor,
                        "subject": e.subject,
                        "details": e.details,
                        "source_ip": e.source_ip,
                    }
                    for e in events
                ],
            )

    def query(
        self,
        *,
        kind: str | None = None,
        meeting_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Matching events, newest first (at most ``limit``, capped at 1000)."""
        statement = sa.select(audit_events)
        if kind is not None:
            statement = statement.where(audit_events.c.kind == kind)
        if meeting_id is not None:
            statement = statement.where(audit_events.c.meeting_id == meeting_id)
        if since is not None:
            statement = statement.where(audit_events.c.at >= since)
        statement = statement.order_by(audit_events.c.at.desc(), audit_events.c.id.desc()).limit(
            max(1, min(limit, MAX_QUERY_LIMIT))
        )
        with self._engine.connect() as connection:
            rows = connection.execute(statement).all()
        return [
            AuditEvent(
                id=row.id,
                at=row.at,
                kind=row.kind,
                meeting_id=row.meeting_id,
                actor=row.actor,
                subject=row.subject,
                details=row.details,
                source_ip=row.source_ip,
            )
            for row in rows
        ]

    def purge_before(self, cutoff: datetime) -> int:
        """Delete events older than ``cutoff``; returns how many."""
        with self._engine.begin() as connection:
            result = connection.execute(audit_events.delete().where(audit_events.c.at < cutoff))
        return int(result.rowcount)
