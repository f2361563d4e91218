"""The store on a real SQLite file and, where installed, a real PostgreSQL: migrations, WAL,
schema agreement, meeting rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from incamera.store import Database, DatabaseUnavailable, MeetingRecord, MeetingStore
from incamera.store.schema import metadata

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database without any table yet: a SQLite file, or a fresh database on a local
    PostgreSQL (for tests of a single migration)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'incamera.db'}")
        yield db
        db.close()
        return
    server_url = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    db = Database(server_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield db
    finally:
        db.close()
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()


@pytest.fixture
def database(empty_database: Database) -> Database:
    """A migrated database: a SQLite file, or a fresh database on a local PostgreSQL."""
    empty_database.upgrade()
    return empty_database


def record(meeting_id: str, closes_at: datetime | None, title: str | None = None) -> MeetingRecord:
    return MeetingRecord(meeting_id, title, T0, closes_at, None)


def test_upgrade_is_idempotent_and_sqlite_uses_wal(tmp_path: Path, database: Database):
    if database.backend == "sqlite":
        assert (tmp_path / "nested" / "dir" / "incamera.db").is_file()
        assert database.journal_mode() == "wal"
    else:
        assert database.journal_mode() is None
    latest = max(
        path.name.split("_", 1)[0]
        for path in (Path(__file__).parents[2] / "src/incamera/store/migrations/versions").glob(
            "[0-9]*_*.py"
        )
    )
    assert database.current_revision() == database.head_revision() == latest
    database.upgrade()
    assert database.current_revision() == latest


def test_the_e2ee_flag_is_stored(database: Database):
    store = MeetingStore(database)
    store.insert(MeetingRecord("e" * 22, None, T0, None, None, e2ee=False))
    store.insert(record("f" * 22, None))
    assert store.get("e" * 22).e2ee is False  # type: ignore[union-attr]
    assert store.get("f" * 22).e2ee is True  # type: ignore[union-attr]


def test_migrations_produce_exactly_the_declared_schema(database: Database):
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_meeting_rows_round_trip_with_utc_times(database: Database):
    store = MeetingStore(database)
    store.insert(record("a" * 22, T0 + timedelta(days=1), title="Planning"))
    loaded = store.get("a" * 22)
    assert loaded == record("a" * 22, T0 + timedelta(days=1), title="Planning")
    assert loaded is not None and loaded.created_at.tzinfo is UTC
    assert store.get("b" * 22) is None


def test_naive_datetimes_are_refused(database: Database):
    store = MeetingStore(database)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store.insert(MeetingRecord("c" * 22, None, datetime(2030, 1, 1), None, None))


def test_close_due_closes_only_what_is_due(database: Database):
    store = MeetingStore(database)
    store.insert(record("due", T0 + timedelta(minutes=5)))
    store.insert(record("later", T0 + timedelta(minutes=50)))
    store.insert(record("occupied", None))
    assert store.close_due(T0 + timedelta(minutes=5)) == ["due"]
    assert store.close_due(T0 + timedelta(minutes=6)) == []  # already closed
    closed = store.get("due")
    assert closed is not None and closed.is_closed
    assert closed.closed_at == T0 + timedelta(minutes=5)
    # A closed meeting's closing time no longer changes.
    store.set_closes_at("due", None)
    assert store.get("due") == closed


def test_release_occupied_after_a_restart(database: Database):
    store = MeetingStore(database)
    store.insert(record("occupied", None))
    store.insert(record("empty", T0 + timedelta(days=1)))
    assert store.release_occupied(T0 + timedelta(minutes=5)) == 1
    occupied = store.get("occupied")
    assert occupied is not None and occupied.closes_at == T0 + timedelta(minutes=5)
    empty = store.get("empty")
    assert empty is not None and empty.closes_at == T0 + timedelta(days=1)


def test_ping_reports_an_unreachable_database(tmp_path: Path):
    (tmp_path / "db").mkdir()
    broken = Database(f"sqlite:///{tmp_path / 'db'}")  # a directory, not a database file
    with pytest.raises(DatabaseUnavailable):
        broken.ping()
    with pytest.raises(DatabaseUnavailable, match="cannot migrate"):
        broken.upgrade()
