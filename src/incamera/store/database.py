"""The database connection: engine set-up, migrations at start-up, a health probe.

Access is synchronous SQLAlchemy 2 Core; async callers run each call in a worker thread
(``anyio.to_thread.run_sync``). Why not SQLAlchemy's asyncio extension with aiosqlite: the
control plane does a handful of small writes per meeting (create, first join, last leave,
close), never a hot loop, so a thread hop costs nothing that matters; one synchronous code
path serves SQLite (stdlib ``sqlite3``) and PostgreSQL (``psycopg``) without a second,
async-only driver per backend; and Alembic runs synchronously anyway, so migrations and
queries share one engine.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or used; the message names the cause, not the URL."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers do not block the writer and vice versa; NORMAL sync is durable
        # across application crashes in WAL mode (a power cut may lose the last commits).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def migrations_location() -> str:
    """Filesystem path of the Alembic scripts shipped inside the package."""
    return str(resources.files("incamera.store") / "migrations")


def _alembic_config(connection: sa.Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", migrations_location())
    config.attributes["connection"] = connection
    return config


class Database:
    """One engine for the process. Thread-safe; every method is blocking."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        if self.backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(url)
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to the newest migration (idempotent); tests of a migration give
        an older ``revision``."""
        try:
            with self.engine.begin() as connection:
                command.upgrade(_alembic_config(connection), revision)
        except sa.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot migrate the database: {exc.orig}") from exc

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        with self.engine.connect() as connection:
            script = ScriptDirectory.from_config(_alembic_config(connection))
            return script.get_current_head()

    def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless a trivial query succeeds."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise DatabaseUnavailable(type(exc).__name__) from exc

    def journal_mode(self) -> str | None:
        """SQLite's journal mode ("wal"), or None on other backends."""
        if self.backend != "sqlite":
            return None
        with self.engine.connect() as connection:
            return str(connection.execute(sa.text("PRAGMA journal_mode")).scalar_one())

    def close(self) -> None:
        self.engine.dispose()
