"""Failures by scope: manual pauses, keys held for a side, and each side's circuit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Written with plain SQLAlchemy types, as 0001: `DateTime(timezone=True)` is what `UTCDateTime`
stores.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_TENANT = 100
_NAME = 255
_KEY = 510
_SIDE = 32


def upgrade() -> None:
    """Create the pauses, held_keys and circuits tables."""
    op.create_table(
        "pauses",
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("target", sa.String(_NAME), nullable=False),
        sa.Column("paused_by", sa.String(_NAME), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "target", name=op.f("pk_pauses")),
    )
    op.create_table(
        "held_keys",
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("key", sa.String(_KEY), nullable=False),
        sa.Column("side", sa.String(_SIDE), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "key", name=op.f("pk_held_keys")),
    )
    op.create_index(op.f("ix_held_keys_tenant_side"), "held_keys", ["tenant", "side"])
    op.create_table(
        "circuits",
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("side", sa.String(_SIDE), nullable=False),
        sa.Column("state", sa.String(_SIDE), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("fix", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "side", name=op.f("pk_circuits")),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("circuits")
    op.drop_table("held_keys")
    op.drop_table("pauses")
