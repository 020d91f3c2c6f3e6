"""Retries: a parked link's own retry schedule (how many retries so far, when the next is due).

Revision ID: 0003b
Revises: 0003
Create Date: 2026-12-08

A link parked for a reason that can go away (a refusal Partner Center or Salesforce may stop
making once the record is fixed, a give-up after an outage, a session or sign-in problem) is
retried with a per-link backoff up to an hour: `retries` counts the scheduled retries made
since it was parked, `retry_at` is when the next one is due (NULL: it waits for a change).
Written with plain SQLAlchemy types, as 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003b"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add links.retries and links.retry_at."""
    with op.batch_alter_table("links") as batch:
        batch.add_column(
            sa.Column("retries", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop links.retries and links.retry_at."""
    with op.batch_alter_table("links") as batch:
        batch.drop_column("retry_at")
        batch.drop_column("retries")
