"""The tables, as SQLAlchemy Core objects for queries.

The schema itself is created and changed only by the Alembic migrations in ``migrations/``;
``tests/server/test_store.py`` checks that the migrations' result equals these definitions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend.

    SQLite has no time zone type: values are stored as UTC without offset and given their
    ``tzinfo`` back when read. Naive datetimes are refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


meetings = sa.Table(
    "meetings",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("title", sa.String(200), nullable=True),
    # False only for meetings an administrator policy allowed without end-to-end encryption.
    sa.Column("e2ee", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # When the meeting closes if nobody joins; NULL while somebody is in it.
    sa.Column("closes_at", UTCDateTime(), nullable=True, index=True),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    # Access policy (incamera.rooms.access.AccessPolicy.stored(); NULL: the defaults).
    sa.Column("access_policy", sa.JSON(), nullable=True),
    sa.Column("moderator_key_hash", sa.String(64), nullable=True),  # SHA-256 hex of the key
    # The signed-in creator: joining signed in makes them a moderator.
    sa.Column(
        "owner_account_id",
        sa.String(32),
        sa.ForeignKey("accounts.id", ondelete="SET NULL", name="fk_meetings_owner_account_id"),
        nullable=True,
    ),
)


# --- identity: accounts, single sign-on links, password resets, sessions -----------------

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # The sign-in name of a local account; NULL for accounts created by single sign-on.
    sa.Column("username", sa.String(100), nullable=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=True),  # argon2id, PHC string
    sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("totp_secret", sa.LargeBinary(64), nullable=True),
    sa.Column("totp_last_step", sa.BigInteger(), nullable=True),  # replay protection
    sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("username", name="uq_accounts_username"),
)

oidc_links = sa.Table(
    "oidc_links",
    metadata,
    sa.Column("issuer", sa.String(255), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),  # the id token's "sub"
    sa.Column(
        "account_id",
        sa.String(32),
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

password_resets = sa.Table(
    "password_resets",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256 hex of the token
    sa.Column(
        "account_id",
        sa.String(32),
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # SHA-256 hex of the cookie value
    sa.Column(
        "account_id",
        sa.String(32),
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=True,  # NULL: not signed in (yet), e.g. between password and TOTP
        index=True,
    ),
    sa.Column("auth_method", sa.String(20), nullable=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),  # sign-in in progress (TOTP step, OIDC)
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False, index=True),
)


# --- access: invitations, blocks, the audit log -------------------------------------------

invitations = sa.Table(
    "invitations",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256 hex of the token
    sa.Column(
        "meeting_id",
        sa.String(64),
        sa.ForeignKey("meetings.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("role", sa.String(20), nullable=False),  # "participant" | "moderator"
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
)

meeting_blocks = sa.Table(
    "meeting_blocks",
    metadata,
    sa.Column(
        "meeting_id",
        sa.String(64),
        sa.ForeignKey("meetings.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("kind", sa.String(10), primary_key=True),  # "account" | "guest"
    sa.Column("subject", sa.String(64), primary_key=True),  # account id or guest cookie id
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # The removed person's display name at the time (NULL for blocks made before 0005).
    sa.Column("name", sa.String(200), nullable=True),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False, index=True),
    # No foreign key: the log outlives what it talks about.
    sa.Column("meeting_id", sa.String(64), nullable=True, index=True),
    sa.Column("actor", sa.String(64), nullable=True),  # participant/account id or "system"
    sa.Column("subject", sa.String(64), nullable=True),
    sa.Column("details", sa.JSON(), nullable=False),  # never secrets
    sa.Column("source_ip", sa.String(45), nullable=True),  # only with audit.store_ip_addresses
)
