"""Account rows: local accounts, their links to OpenID Connect identities, and one-time
password reset tokens. All methods are blocking (see ``database.py`` for why)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .database import Database
from .schema import accounts, meeting_blocks, oidc_links, password_resets


class UsernameTaken(ValueError):
    """Another account already has this username."""


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    username: str | None
    display_name: str
    password_hash: str | None
    must_change_password: bool
    totp_secret: bytes | None
    totp_last_step: int | None
    is_admin: bool
    created_at: datetime
    disabled_at: datetime | None

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def has_totp(self) -> bool:
        return self.totp_secret is not None


def _record(row: Any) -> AccountRecord:
    return AccountRecord(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        password_hash=row.password_hash,
        must_change_password=bool(row.must_change_password),
        totp_secret=None if row.totp_secret is None else bytes(row.totp_secret),
        totp_last_step=row.totp_last_step,
        is_admin=bool(row.is_admin),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


class AccountStore:
    def __init__(self, database: Database) -> None:
        self._engine = database.engine

    def insert(self, record: AccountRecord) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(accounts.insert().values(**_values(record)))
        except sa.exc.IntegrityError as exc:
            raise UsernameTaken(f"the username {record.username!r} is taken") from exc

    def get(self, account_id: str) -> AccountRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(accounts).where(accounts.c.id == account_id)
            ).one_or_none()
        return None if row is None else _record(row)

    def by_username(self, username: str) -> AccountRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(accounts).where(accounts.c.username == username)
            ).one_or_none()
        return None if row is None else _record(row)

    def update(self, account_id: str, **values: Any) -> None:
        allowed = {
            "display_name",
            "password_hash",
            "must_change_password",
            "totp_secret",
            "totp_last_step",
            "is_admin",
            "disabled_at",
        }
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        with self._engine.begin() as connection:
            connection.execute(accounts.update().where(accounts.c.id == account_id).values(values))

    def all(self) -> list[AccountRecord]:
        """Every account, oldest first."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(accounts).order_by(accounts.c.created_at, accounts.c.id)
            ).all()
        return [_record(row) for row in rows]

    def delete(self, account_id: str) -> bool:
        """Erase an account: its sessions, single sign-on links and reset tokens go with it
        (foreign keys cascade), meetings it owned lose their owner, and blocks naming it
        are removed (they hold the person's name). False if there was no such account."""
        with self._engine.begin() as connection:
            connection.execute(
                meeting_blocks.delete().where(
                    meeting_blocks.c.kind == "account", meeting_blocks.c.subject == account_id
                )
            )
            result = connection.execute(accounts.delete().where(accounts.c.id == account_id))
        return int(result.rowcount) == 1

    def totp_secrets(self) -> list[tuple[str, bytes]]:
        """(account id, stored TOTP secret) of every account with a second factor."""
        column = accounts.c.totp_secret
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(accounts.c.id, column).where(column.is_not(None))
            ).all()
        return [(row.id, bytes(row.totp_secret)) for row in rows]

    def use_totp_step(self, account_id: str, step: int) -> bool:
        """Record ``step`` as the last used TOTP step unless an equal or later one was used
        already (atomic: two concurrent uses of one code cannot both succeed)."""
        column = accounts.c.totp_last_step
        with self._engine.begin() as connection:
            result = connection.execute(
                accounts.update()
                .where(accounts.c.id == account_id, sa.or_(column.is_(None), column < step))
                .values(totp_last_step=step)
            )
        return int(result.rowcount) == 1

    # --- OpenID Connect links --------------------------------------------------------------

    def by_oidc(self, issuer: str, subject: str) -> AccountRecord | None:
        query = (
            sa.select(accounts)
            .join(oidc_links, oidc_links.c.account_id == accounts.c.id)
            .where(oidc_links.c.issuer == issuer, oidc_links.c.subject == subject)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).one_or_none()
        return None if row is None else _record(row)

    def insert_with_oidc_link(
        self, record: AccountRecord, issuer: str, subject: str, now: datetime
    ) -> AccountRecord:
        """Create ``record`` linked to (issuer, subject) in one transaction. If a concurrent
        first sign-in created the link first, return that account instead."""
        try:
            with self._engine.begin() as connection:
                connection.execute(accounts.insert().values(**_values(record)))
                connection.execute(
                    oidc_links.insert().values(
                        issuer=issuer, subject=subject, account_id=record.id, created_at=now
                    )
                )
        except sa.exc.IntegrityError:
            existing = self.by_oidc(issuer, subject)
            if existing is None:
                raise
            return existing
        return record

    # --- password reset tokens -------------------------------------------------------------

    def insert_reset(self, token_hash: str, account_id: str, expires_at: datetime) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                password_resets.delete().where(password_resets.c.account_id == account_id)
            )
            connection.execute(
                password_resets.insert().values(
                    token_hash=token_hash, account_id=account_id, expires_at=expires_at
                )
            )

    def take_reset(self, token_hash: str, now: datetime) -> str | None:
        """Consume a reset token: the account id if it exists and has not expired, else None.
        The token is deleted either way (one use only)."""
        with self._engine.begin() as connection:
            row = connection.execute(
                sa.select(password_resets.c.account_id, password_resets.c.expires_at).where(
                    password_resets.c.token_hash == token_hash
                )
            ).one_or_none()
            if row is None:
                return None
            deleted = connection.execute(
                password_resets.delete().where(password_resets.c.token_hash == token_hash)
            )
            if int(deleted.rowcount) != 1 or row.expires_at <= now:
                return None
            return str(row.account_id)


def _values(record: AccountRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "username": record.username,
        "display_name": record.display_name,
        "password_hash": record.password_hash,
        "must_change_password": record.must_change_password,
        "totp_secret": record.totp_secret,
        "totp_last_step": record.totp_last_step,
        "is_admin": record.is_admin,
        "created_at": record.created_at,
        "disabled_at": record.disabled_at,
    }
