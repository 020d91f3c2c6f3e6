"""The store's tables (SQLAlchemy Core), the one description the migrations must match.

Every table has a `tenant` column (the connection's id, `default` when there is one) and every
query of `Store` filters on it; unique constraints include it, so two tenants may link the same
referral id without colliding.

```
links            one referral <-> one Salesforce record (and a parked link's retry schedule); unique (tenant, referral_id) and
                 (tenant, sobject, record_id) make linking idempotent (NULLs do not collide:
                 a link being created may lack either id)
snapshots        the base: canonical values both sides last agreed on, JSON, one row per link
audit            what happened to a link, newest first, the newest 500 kept per link
conflicts        fields both sides changed differently, both values and the winner
cursors          change cursors of the pollers, per name
inbox            webhook events, unique (tenant, source, event_id), pending until completed
create_intents   a create about to be called for a link, until its result is stored
leases           per-key leases: at most one reconcile of a key at a time, across processes
wakeups          keys to reconcile again at a given time
pauses           manual pauses: all sync ("*") or one deal (its link id), who and since when
held_keys        keys whose reconcile waits for a side (its circuit open) or for a pause
circuits         each side's circuit breaker: closed or open, the cause and the fix
```

Times are `UTCDateTime`: `timestamp with time zone` on PostgreSQL; on SQLite (which has no
time type) ISO text in UTC without an offset, so that text order is time order and the lease
query can compare times in SQL. Either way a value read back is timezone-aware UTC, and a
naive datetime is refused on the way in.

Constraint and index names follow `NAMING_CONVENTION`, so that the migrations and this module
name them the same way on both databases (the schema test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AUDIT_ENTRIES_KEPT = 500
"""Audit entries kept per link (and for the entries about no link).

A link that syncs for years accumulates an entry per change; without a bound a busy deal
grows its history without limit, slowing the dashboard and the database. 500 covers many
months of a busy deal; older history lives in the logs and Salesforce's field history.
"""

ID_LENGTH = 32  # a link id: 12 hex digits of milliseconds since the epoch + 20 random hex digits
TENANT_LENGTH = 100  # a connection name chosen by an admin
NAME_LENGTH = 255  # names, ids, event sources, cursor names: all short identifiers
DEFAULT_TENANT = "default"
VERSION_TABLE = (
    "cosell_alembic_version"  # not alembic_version: a shared database may hold another app's
)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both databases (see the module docstring)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC (without an offset on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"the store keeps timezone-aware datetimes only, got {value!r}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back as timezone-aware UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _tenant() -> sa.Column[Any]:
    return sa.Column("tenant", sa.String(TENANT_LENGTH), nullable=False)


links = sa.Table(
    "links",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    _tenant(),
    sa.Column("referral_id", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("engagement_id", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("sobject", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("record_id", sa.String(18), nullable=True),  # 18: the case-safe Salesforce id
    sa.Column("sync_status", sa.String(16), nullable=False),  # 16: fits Synced/Pending/Error
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_synced_at", UTCDateTime(), nullable=True),
    # A parked link's own retry schedule (migration 0003b): retries made since it was parked,
    # and when the next is due (NULL: it waits for a change).
    sa.Column("retries", sa.Integer(), nullable=False, server_default=sa.text("0")),
    sa.Column("retry_at", UTCDateTime(), nullable=True),
    # Incoming (Microsoft's referral came first) / Outgoing (shared from Salesforce); NULL when
    # unknown (linked as a pair, or created before revision 0004).
    sa.Column("direction", sa.String(16), nullable=True),
    sa.UniqueConstraint("tenant", "referral_id"),
    sa.UniqueConstraint("tenant", "sobject", "record_id"),
    sa.Index(None, "tenant", "sync_status"),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column(
        "link_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("links.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    _tenant(),
    sa.Column("field_values", sa.JSON(), nullable=False),
    sa.Column("saved_at", UTCDateTime(), nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    _tenant(),
    sa.Column(
        "link_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("links.id", ondelete="CASCADE"),
        nullable=True,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Index(None, "tenant", "link_id", "id"),
)

conflicts = sa.Table(
    "conflicts",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    _tenant(),
    sa.Column(
        "link_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("links.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("field", sa.String(NAME_LENGTH), nullable=False),
    # The three values as JSON documents: a JSON null is a value (unset), not a missing row.
    sa.Column("partner_center", sa.JSON(), nullable=True),
    sa.Column("salesforce", sa.JSON(), nullable=True),
    sa.Column("base", sa.JSON(), nullable=True),
    sa.Column("winner", sa.String(32), nullable=False),  # 32: fits partner_center / salesforce
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index(None, "tenant", "link_id", "id"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("tenant", sa.String(TENANT_LENGTH), primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    _tenant(),
    sa.Column("source", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("event_id", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("key", sa.String(NAME_LENGTH * 2), nullable=False),  # as leases.key
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("tenant", "source", "event_id"),
    sa.Index(None, "tenant", "completed_at", "id"),
)

create_intents = sa.Table(
    "create_intents",
    metadata,
    sa.Column(
        "link_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("links.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    _tenant(),
    sa.Column("side", sa.String(32), nullable=False),  # 32: fits partner_center / salesforce
    sa.Column("external_reference", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("tenant", sa.String(TENANT_LENGTH), primary_key=True),
    sa.Column("key", sa.String(NAME_LENGTH * 2), primary_key=True),  # prefix + object + id
    sa.Column("owner", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

wakeups = sa.Table(
    "wakeups",
    metadata,
    sa.Column("tenant", sa.String(TENANT_LENGTH), primary_key=True),
    sa.Column("key", sa.String(NAME_LENGTH * 2), primary_key=True),  # as leases.key
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Index(None, "tenant", "due_at"),
)

pauses = sa.Table(
    "pauses",
    metadata,
    sa.Column("tenant", sa.String(TENANT_LENGTH), primary_key=True),
    # "*" pauses all sync; a link id pauses that one deal.
    sa.Column("target", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("paused_by", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("since", UTCDateTime(), nullable=False),
)

held_keys = sa.Table(
    "held_keys",
    metadata,
    sa.Column("tenant", sa.String(TENANT_LENGTH), primary_key=True),
    sa.Column("key", sa.String(NAME_LENGTH * 2), primary_key=True),  # as leases.key
    # What the key waits for: a side (partner_center / salesforce) or "paused".
    sa.Column("side", sa.String(32), nullable=False),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Index(None, "tenant", "side"),
)

circuits = sa.Table(
    "circuits",
    metadata,
    sa.Column("tenant", sa.String(TENANT_LENGTH), primary_key=True),
    sa.Column("side", sa.String(32), primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),  # closed / open
    sa.Column("cause", sa.Text(), nullable=False),
    sa.Column("fix", sa.Text(), nullable=False),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("next_probe_at", UTCDateTime(), nullable=True),
)
