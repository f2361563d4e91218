"""Server-side sessions: a random 256-bit id in a cookie, only its SHA-256 stored.

A session expires after ``idle`` without use and, in any case, ``absolute`` after it began.
Signing in always starts a NEW session (the pre-sign-in one is ended), so an id planted
before sign-in is worthless afterwards (session fixation). The clock is injected.

Sessions also exist before sign-in: they hold the CSRF token of the sign-in form, the
account waiting for its TOTP code, and an OpenID Connect flow's state, nonce and PKCE verifier.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from incamera.store.sessions import SessionRecord, SessionStore

from . import csrf

ID_BYTES = 32  # 256 bits


def hash_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(hours=8)
    absolute: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Session:
    """One live session, as loaded for one request. ``id`` is the cookie value."""

    id: str
    record: SessionRecord

    @property
    def account_id(self) -> str | None:
        return self.record.account_id

    @property
    def auth_method(self) -> str | None:
        return self.record.auth_method

    @property
    def csrf_token(self) -> str:
        return self.record.csrf_token

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.record.data)


class Sessions:
    """Start, resume and end sessions. Blocking (database); run in a worker thread."""

    def __init__(
        self,
        store: SessionStore,
        policy: SessionPolicy = SessionPolicy(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock

    def start(
        self,
        account_id: str | None = None,
        auth_method: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Session:
        now = self.clock()
        self.purge_expired()
        session_id = secrets.token_urlsafe(ID_BYTES)
        record = SessionRecord(
            id_hash=hash_id(session_id),
            account_id=account_id,
            auth_method=auth_method,
            csrf_token=csrf.new_token(),
            data=dict(data or {}),
            created_at=now,
            last_seen_at=now,
        )
        self.store.insert(record)
        return Session(session_id, record)

    def expired(self, record: SessionRecord, now: datetime) -> bool:
        return (
            now - record.last_seen_at >= self.policy.idle
            or now - record.created_at >= self.policy.absolute
        )

    def resume(self, session_id: str | None) -> Session | None:
        """The live session for a cookie value, its idle timer restarted; None when the
        value is unknown or the session has expired (an expired row is deleted)."""
        if not session_id or len(session_id) > 100:
            return None
        id_hash = hash_id(session_id)
        record = self.store.get(id_hash)
        if record is None:
            return None
        now = self.clock()
        if self.expired(record, now):
            self.store.delete(id_hash)
            return None
        # Write the idle timer at most once a minute: most requests then only read.
        if now - record.last_seen_at >= timedelta(minutes=1):
            self.store.touch(id_hash, now)
            record = replace(record, last_seen_at=now)
        return Session(session_id, record)

    def set_data(self, session: Session, data: dict[str, Any]) -> Session:
        self.store.set_data(session.record.id_hash, data)
        return Session(session.id, replace(session.record, data=dict(data)))

    def end(self, session: Session | str) -> None:
        session_id = session.id if isinstance(session, Session) else session
        self.store.delete(hash_id(session_id))

    def end_all_for(self, account_id: str) -> int:
        return self.store.delete_for_account(account_id)

    def purge_expired(self) -> int:
        now = self.clock()
        return self.store.delete_expired(now - self.policy.idle, now - self.policy.absolute)
