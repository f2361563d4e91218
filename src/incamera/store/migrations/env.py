"""Alembic environment: runs migrations on the connection ``Database.upgrade`` passes in."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only ever run through Database.upgrade
    raise RuntimeError("incamera migrations run through incamera.store.Database.upgrade")

context.configure(
    connection=connection,
    # SQLite cannot ALTER most things: batch mode rebuilds tables when a migration needs it.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
