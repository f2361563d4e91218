"""Sessions on a real SQLite database with an injected clock; CSRF tokens; the throttle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from incamera.identity import csrf
from incamera.identity.sessions import SessionPolicy, Sessions, hash_id
from incamera.identity.throttle import FailureThrottle, Throttled
from incamera.store import Database
from incamera.store.schema import sessions as sessions_table
from incamera.store.sessions import SessionStore

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'incamera.db'}")
    db.upgrade()
    yield db
    db.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sessions(database: Database, clock: Clock) -> Sessions:
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=8))
    return Sessions(SessionStore(database), policy, clock)


def test_ids_are_256_bit_random_and_stored_only_hashed(sessions: Sessions, database: Database):
    session = sessions.start()
    assert len(session.id) >= 43  # 32 bytes, base64url
    assert sessions.start().id != session.id
    with database.engine.connect() as connection:
        stored = list(connection.execute(sa.select(sessions_table.c.id_hash)).scalars())
    assert hash_id(session.id) in stored
    assert session.id not in stored


def test_idle_expiry(sessions: Sessions, clock: Clock):
    session = sessions.start()
    clock.now += timedelta(minutes=29)
    assert sessions.resume(session.id) is not None  # use restarts the idle timer
    clock.now += timedelta(minutes=29)
    assert sessions.resume(session.id) is not None
    clock.now += timedelta(minutes=30)
    assert sessions.resume(session.id) is None
    clock.now = T0
    assert sessions.resume(session.id) is None  # the expired row is gone


def test_absolute_expiry_however_active(sessions: Sessions, clock: Clock):
    session = sessions.start()
    for _ in range(15):
        clock.now += timedelta(minutes=29)
        assert sessions.resume(session.id) is not None
    clock.now = T0 + timedelta(hours=8)
    assert sessions.resume(session.id) is None


def test_logout_and_unknown_ids(sessions: Sessions):
    session = sessions.start()
    sessions.end(session)
    assert sessions.resume(session.id) is None
    assert sessions.resume("") is None
    assert sessions.resume("x" * 1000) is None


def test_purge_removes_only_expired_rows(sessions: Sessions, clock: Clock):
    old = sessions.start()
    clock.now += timedelta(minutes=40)
    new = sessions.start()  # starting one purges the expired
    assert sessions.purge_expired() == 0
    assert sessions.resume(new.id) is not None
    assert sessions.resume(old.id) is None


def test_csrf_token_is_per_session_and_checked():
    token = csrf.new_token()
    assert len(token) >= 43 and csrf.new_token() != token
    csrf.check(token, token)
    for presented in (None, "", token[:-1], token + "x", csrf.new_token()):
        with pytest.raises(csrf.CsrfRejected):
            csrf.check(token, presented)
    with pytest.raises(csrf.CsrfRejected):
        csrf.check(None, token)


def test_throttle_per_account_and_source():
    throttle = FailureThrottle(limit=3, window=600)
    for t in range(3):
        throttle.check("Alice", "10.0.0.1", float(t))
        throttle.failed("Alice", "10.0.0.1", float(t))
    with pytest.raises(Throttled) as refused:
        throttle.check("alice", "10.0.0.1", 10.0)
    assert refused.value.retry_after == 590
    assert "Try again in 10 minutes" in str(refused.value)
    throttle.check("alice", "10.0.0.2", 10.0)  # another source
    throttle.check("bob", "10.0.0.1", 10.0)  # another account
    throttle.check("alice", "10.0.0.1", 600.5)  # the first failure left the window
