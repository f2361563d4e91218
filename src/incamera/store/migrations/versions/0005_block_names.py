"""Blocks remember the removed person's display name (for the moderators' list).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: blocks made before this revision have no name.
    with op.batch_alter_table("meeting_blocks") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("meeting_blocks") as batch:
        batch.drop_column("name")
