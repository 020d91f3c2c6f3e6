"""Durable state: links, base snapshots, audit, conflicts, cursors, the webhook inbox.

```
types.py     Key (referral:<id> / salesforce:<SObject>:<id>) and its helpers; the frozen rows
errors.py    StoreError and what each subclass asks the caller to do
tables.py    the SQLAlchemy tables (every row carries a tenant)
database.py  URLs, engines (SQLite WAL / PostgreSQL pool), connection errors as advice
schema.py    Alembic migrations, run in code (on open, and by `cosell db upgrade`)
store.py     Store: one named, atomic verb per state change
```

Open one with `Store.open(url, clock=...)`: None means `sqlite:///./cosell.db`;
`postgresql://...` for several workers. Its verbs, each one transaction:

```
links        link_for_referral, link_for_record, get_link, create_link (idempotent),
             update_link, links (pages in creation order)
base         snapshot, save_snapshot
history      record_audit, audit (newest first, bounded), record_conflict, conflicts
pollers      cursor, set_cursor
inbox        record_event (idempotent, says whether new), record_events (several, one
             transaction), pending_events, complete_event, complete_events (by row id)
creates      record_create_intent, create_intent, resolve_create_intent
leases       claim (atomic across processes), release, lease_owner
scope        set_pause, pauses, hold_keys, held_keys, release_keys, set_circuit, circuits,
             deal_counts (every link counted once: Synced, Pending, Error, Paused)
```
"""

from cosell.store.errors import (
    LinkConflictError,
    LinkNotFoundError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from cosell.store.store import UNSET, Circuit, DealCounts, HeldKey, Pause, Store
from cosell.store.tables import AUDIT_ENTRIES_KEPT, DEFAULT_TENANT
from cosell.store.types import (
    AuditEntry,
    ConflictRecord,
    CreateIntent,
    InboxEvent,
    JsonScalar,
    Key,
    KeyFormatError,
    Link,
    LinkId,
    NewConflict,
    Record,
    SyncStatus,
    canonical_record_id,
    parse_key,
    record_key,
    referral_key,
)

__all__ = [
    "AUDIT_ENTRIES_KEPT",
    "DEFAULT_TENANT",
    "UNSET",
    "AuditEntry",
    "Circuit",
    "ConflictRecord",
    "CreateIntent",
    "DealCounts",
    "HeldKey",
    "InboxEvent",
    "JsonScalar",
    "Key",
    "KeyFormatError",
    "Link",
    "LinkConflictError",
    "LinkId",
    "LinkNotFoundError",
    "NewConflict",
    "Pause",
    "Record",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "SyncStatus",
    "canonical_record_id",
    "parse_key",
    "record_key",
    "referral_key",
]
