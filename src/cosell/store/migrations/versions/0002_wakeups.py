"""Wake-ups: keys to reconcile again at a given time (a held win, an expiry warning).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Written with plain SQLAlchemy types, as 0001: `DateTime(timezone=True)` is what `UTCDateTime`
stores.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TENANT = 100
_KEY = 510


def upgrade() -> None:
    """Create the wakeups table."""
    op.create_table(
        "wakeups",
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("key", sa.String(_KEY), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "key", name=op.f("pk_wakeups")),
    )
    op.create_index(op.f("ix_wakeups_tenant_due_at"), "wakeups", ["tenant", "due_at"])


def downgrade() -> None:
    """Drop the wakeups table."""
    op.drop_table("wakeups")
