"""The initial schema: links, snapshots, audit, conflicts, cursors, inbox, create intents, leases.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24

Written against `cosell.store.tables` as it stood at this revision, with plain SQLAlchemy types
(a migration must not change when the application's Python types do): `DateTime(timezone=True)`
is what `UTCDateTime` stores.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_TENANT = 100
_NAME = 255
_KEY = 510
_ID = 32


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _link_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["link_id"], ["links.id"], name=op.f(f"fk_{table}_link_id_links"), ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create every table of the store."""
    op.create_table(
        "links",
        sa.Column("id", sa.String(_ID), nullable=False),
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("referral_id", sa.String(_NAME), nullable=True),
        sa.Column("engagement_id", sa.String(_NAME), nullable=True),
        sa.Column("sobject", sa.String(_NAME), nullable=False),
        sa.Column("record_id", sa.String(18), nullable=True),
        sa.Column("sync_status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("last_synced_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint("tenant", "referral_id", name=op.f("uq_links_tenant_referral_id")),
        sa.UniqueConstraint(
            "tenant", "sobject", "record_id", name=op.f("uq_links_tenant_sobject_record_id")
        ),
    )
    op.create_index(op.f("ix_links_tenant_sync_status"), "links", ["tenant", "sync_status"])

    op.create_table(
        "snapshots",
        sa.Column("link_id", sa.String(_ID), nullable=False),
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("field_values", sa.JSON(), nullable=False),
        _when("saved_at"),
        _link_fk("snapshots"),
        sa.PrimaryKeyConstraint("link_id", name=op.f("pk_snapshots")),
    )

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("link_id", sa.String(_ID), nullable=True),
        _when("at"),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        _link_fk("audit"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_tenant_link_id_id"), "audit", ["tenant", "link_id", "id"])

    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("link_id", sa.String(_ID), nullable=False),
        sa.Column("field", sa.String(_NAME), nullable=False),
        sa.Column("partner_center", sa.JSON(), nullable=True),
        sa.Column("salesforce", sa.JSON(), nullable=True),
        sa.Column("base", sa.JSON(), nullable=True),
        sa.Column("winner", sa.String(32), nullable=False),
        _when("at"),
        _link_fk("conflicts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
    )
    op.create_index(
        op.f("ix_conflicts_tenant_link_id_id"), "conflicts", ["tenant", "link_id", "id"]
    )

    op.create_table(
        "cursors",
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("tenant", "name", name=op.f("pk_cursors")),
    )

    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("source", sa.String(_NAME), nullable=False),
        sa.Column("event_id", sa.String(_NAME), nullable=False),
        sa.Column("key", sa.String(_KEY), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        _when("received_at"),
        _when("completed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint(
            "tenant", "source", "event_id", name=op.f("uq_inbox_tenant_source_event_id")
        ),
    )
    op.create_index(
        op.f("ix_inbox_tenant_completed_at_id"), "inbox", ["tenant", "completed_at", "id"]
    )

    op.create_table(
        "create_intents",
        sa.Column("link_id", sa.String(_ID), nullable=False),
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("side", sa.String(32), nullable=False),
        sa.Column("external_reference", sa.String(_NAME), nullable=False),
        _when("created_at"),
        _link_fk("create_intents"),
        sa.PrimaryKeyConstraint("link_id", name=op.f("pk_create_intents")),
    )

    op.create_table(
        "leases",
        sa.Column("tenant", sa.String(_TENANT), nullable=False),
        sa.Column("key", sa.String(_KEY), nullable=False),
        sa.Column("owner", sa.String(_NAME), nullable=False),
        _when("expires_at"),
        sa.PrimaryKeyConstraint("tenant", "key", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    """Drop every table of the store (its data with it)."""
    for table in (
        "leases",
        "create_intents",
        "inbox",
        "cursors",
        "conflicts",
        "audit",
        "snapshots",
        "links",
    ):
        op.drop_table(table)
