"""Invitation and block rows (``invitations``, ``meeting_blocks``). Blocking methods.

Invitation tokens are stored only as their SHA-256 digest; a block names an account id or,
for a guest, the random id of their browser's ``incamera_guest`` cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from .database import Database
from .schema import invitations, meeting_blocks

BlockKind = Literal["account", "guest"]


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    token_hash: str
    meeting_id: str
    role: str  # "participant" | "moderator"
    name: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Blocks:
    account_ids: frozenset[str]
    guest_ids: frozenset[str]


class AccessStore:
    def __init__(self, database: Database) -> None:
        self._engine = database.engine

    def add_invitation(self, record: InvitationRecord) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                invitations.insert().values(
                    token_hash=record.token_hash,
                    meeting_id=record.meeting_id,
                    role=record.role,
                    name=record.name,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                )
            )

    def find_invitation(self, meeting_id: str, token_hash: str) -> InvitationRecord | None:
        """The invitation with this digest for this meeting (expired ones too)."""
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(invitations).where(
                    invitations.c.token_hash == token_hash,
                    invitations.c.meeting_id == meeting_id,
                )
            ).one_or_none()
        if row is None:
            return None
        return InvitationRecord(
            token_hash=row.token_hash,
            meeting_id=row.meeting_id,
            role=row.role,
            name=row.name,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    def purge_expired_invitations(self, now: datetime) -> int:
        with self._engine.begin() as connection:
            result = connection.execute(invitations.delete().where(invitations.c.expires_at <= now))
        return int(result.rowcount)

    def block(self, meeting_id: str, kind: BlockKind, subject: str, now: datetime) -> None:
        """Keep ``subject`` out of the meeting (idempotent)."""
        with self._engine.begin() as connection:
            exists = connection.execute(
                sa.select(meeting_blocks.c.subject).where(
                    meeting_blocks.c.meeting_id == meeting_id,
                    meeting_blocks.c.kind == kind,
                    meeting_blocks.c.subject == subject,
                )
            ).first()
            if exists is None:
                connection.execute(
                    meeting_blocks.insert().values(
                        meeting_id=meeting_id, kind=kind, subject=subject, created_at=now
                    )
                )

    def blocks(self, meeting_id: str) -> Blocks:
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(meeting_blocks.c.kind, meeting_blocks.c.subject).where(
                    meeting_blocks.c.meeting_id == meeting_id
                )
            ).all()
        return Blocks(
            account_ids=frozenset(r.subject for r in rows if r.kind == "account"),
            guest_ids=frozenset(r.subject for r in rows if r.kind == "guest"),
        )
