"""Links' direction: Incoming (made for Microsoft's referral) or Outgoing (shared from Salesforce).

Revision ID: 0004
Revises: 0003b
Create Date: 2026-12-08

Existing links keep NULL (unknown): which side came first is not recorded elsewhere.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003b"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add links.direction."""
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("direction", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop links.direction."""
    with op.batch_alter_table("links") as batch:
        batch.drop_column("direction")
