"""Invitation and block rows (``invitations``, ``meeting_blocks``). Blocking methods.

Invitation tokens are stored only as their SHA-256 digest; a block names an account id or,
for a guest, the random id of their browser's ``incamera_guest`` cookie, and keeps the
removed person's display name for the moderators' list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from .database import Database
from .schema import invitations, meeting_blocks

BlockKind = Literal["account", "guest"]
NAME_MAX = 200  # meeting_blocks.name


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    token_hash: str
    meeting_id: str
    role: str  # "participant" | "moderator"
    name: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class BlockRecord:
    kind: BlockKind
    subject: str  # account id, or the guest's browser id (a secret: never shown)
    name: str | None  # display name when removed; None for blocks older than migration 0005
    created_at: datetime


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
        return None if row is None else _invitation(row)

    def list_invitations(self, meeting_id: str, now: datetime) -> list[InvitationRecord]:
        """The meeting's invitations that have not expired at ``now``, newest first."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(invitations)
                .where(invitations.c.meeting_id == meeting_id, invitations.c.expires_at > now)
                .order_by(invitations.c.created_at.desc(), invitations.c.token_hash)
            ).all()
        return [_invitation(row) for row in rows]

    def revoke_invitation(self, meeting_id: str, token_hash: str) -> bool:
        """Delete the invitation with this digest; False if the meeting has none such."""
        with self._engine.begin() as connection:
            result = connection.execute(
                invitations.delete().where(
                    invitations.c.meeting_id == meeting_id,
                    invitations.c.token_hash == token_hash,
                )
            )
        return int(result.rowcount) > 0

    def purge_expired_invitations(self, now: datetime) -> int:
        with self._engine.begin() as connection:
            result = connection.execute(invitations.delete().where(invitations.c.expires_at <= now))
        return int(result.rowcount)

    def block(
        self,
        meeting_id: str,
        kind: BlockKind,
        subject: str,
        now: datetime,
        name: str | None = None,
    ) -> None:
        """Keep ``subject`` (called ``name`` when removed) out of the meeting (idempotent:
        blocking again keeps the first block as it is)."""
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
                        meeting_id=meeting_id,
                        kind=kind,
                        subject=subject,
                        created_at=now,
                        name=name[:NAME_MAX] if name else None,
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

    def list_blocks(self, meeting_id: str) -> list[BlockRecord]:
        """Everyone blocked from the meeting, newest first."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(meeting_blocks)
                .where(meeting_blocks.c.meeting_id == meeting_id)
                .order_by(
                    meeting_blocks.c.created_at.desc(),
                    meeting_blocks.c.kind,
                    meeting_blocks.c.subject,
                )
            ).all()
        return [
            BlockRecord(
                kind=row.kind, subject=row.subject, name=row.name, created_at=row.created_at
            )
            for row in rows
        ]

    def unblock(self, meeting_id: str, kind: BlockKind, subject: str) -> bool:
        """Lift a block; False if there was none."""
        with self._engine.begin() as connection:
            result = connection.execute(
                meeting_blocks.delete().where(
                    meeting_blocks.c.meeting_id == meeting_id,
                    meeting_blocks.c.kind == kind,
                    meeting_blocks.c.subject == subject,
                )
            )
        return int(result.rowcount) > 0


def _invitation(row: sa.Row[Any]) -> InvitationRecord:
    return InvitationRecord(
        token_hash=row.token_hash,
        meeting_id=row.meeting_id,
        role=row.role,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )
