"""The operations console's reads of the store: named queries, each one bounded.

```
overview(store, now)              counts and times for the overview (one transaction)
search_links(store, ...)          one page of links with their deal and customer names
stages(store)                     the stages links' bases hold (the deals filter's choices)
deal(store, link_id)              one link with its base, audit trail and conflicts
activity(store, now)              synced changes and errors per hour (24 h) and per day (7 days)
```

Every query filters on the store's tenant, like `Store`'s own. They are synchronous (SQLAlchemy
Core); the console runs them in a worker thread. A page of links costs one statement (the
page, with LIMIT/OFFSET, carries its count in a window function: one scan of the
matching links).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import exc

from cosell.store import tables as t
from cosell.store.database import unavailable
from cosell.store.store import (
    CIRCUIT_SIDES,
    Circuit,
    CursorState,
    DealCounts,
    Pause,
    Store,
    deal_bucket,
    link_is_held,
)
from cosell.store.types import AuditEntry, ConflictRecord, JsonScalar, LinkId, SyncStatus

ERROR_PREFIX: Final = "error: "  # how reconciles word an audit entry about a failure
MAX_PAGE_SIZE: Final = 200
MAX_QUERY_LENGTH: Final = 200
HELD: Final = "Held"  # the deals filter's "Pending, held by an open circuit"
STATES: Final = ("Synced", "Pending", HELD, "Error", "Paused")  # the deals filter's choices


@dataclass(frozen=True)
class Overview:
    """What the overview page shows (times UTC, None when there is none).

    Attributes:
        links_by_status: links per sync status, zeros included.
        total_links: every link.
        errors_24h: audit entries about failures in the 24 hours before `now`.
        oldest_pending_at: the last change of the Pending link that changed longest ago.
        last_synced_at: the newest time a reconcile brought a link into agreement.
        inbox_pending: webhook events received and not yet handled.
        oldest_event_at: when the oldest of those arrived.
        cursors: every stored cursor (the pollers' positions and when they last ran).
        deals: every link counted once (`Store.deal_counts`: what `cosell status` and
            `/metrics` count); `links_by_status` is these counts by name.
        circuits: each side's circuit as the engine stored it (absent: closed).
        pauses: the pauses in force (all sync first).
    """

    links_by_status: dict[str, int]
    total_links: int
    errors_24h: int
    oldest_pending_at: datetime | None
    last_synced_at: datetime | None
    inbox_pending: int
    oldest_event_at: datetime | None
    cursors: tuple[CursorState, ...]
    deals: DealCounts | None = None
    circuits: dict[str, Circuit] = field(default_factory=dict)
    pauses: tuple[Pause, ...] = ()

    @property
    def all_paused(self) -> Pause | None:
        """The pause of all sync in force, or None."""
        return next((p for p in self.pauses if p.target is None), None)


@dataclass(frozen=True)
class LinkRow:
    """One line of the deals list."""

    id: LinkId
    name: str | None
    customer: str | None
    referral_id: str | None
    sobject: str
    record_id: str | None
    sync_status: str
    last_error: str | None
    updated_at: datetime
    last_synced_at: datetime | None
    direction: str | None = None
    stage: str | None = None
    state: str = ""
    held: bool = False
    retries: int = 0
    retry_at: datetime | None = None

    @property
    def shown_state(self) -> str:
        """What the deal's badge says: its place in the counts (else its sync status)."""
        return self.state or self.sync_status


@dataclass(frozen=True)
class LinkPage:
    """A page of the deals list and how many links match in all."""

    rows: list[LinkRow]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class Deal:
    """Everything the page of one deal shows from the store."""

    link: LinkRow
    engagement_id: str | None
    created_at: datetime
    base: dict[str, JsonScalar] | None
    base_saved_at: datetime | None
    audit: list[AuditEntry]
    conflicts: list[ConflictRecord]
    pause: Pause | None = None


def _run(store: Store, read: Any) -> Any:
    try:
        with store.engine.begin() as connection:
            return read(connection)
    except exc.OperationalError as error:
        raise unavailable(store.url, error) from error


def overview(store: Store, *, now: datetime) -> Overview:
    """The overview's figures, read in one transaction besides `Store.summary`'s."""
    summary = store.summary()
    since = now - timedelta(hours=24)

    def read(connection: sa.Connection) -> int:
        count = connection.execute(
            sa.select(sa.func.count()).where(
                t.audit.c.tenant == store.tenant,
                t.audit.c.at >= since,
                t.audit.c.message.like(f"{ERROR_PREFIX}%"),
            )
        ).scalar()
        return int(count or 0)

    deals = store.deal_counts()
    return Overview(
        links_by_status=deals.as_dict(),
        total_links=deals.total,
        errors_24h=_run(store, read),
        oldest_pending_at=summary.oldest_pending_at,
        last_synced_at=summary.last_synced_at,
        inbox_pending=summary.inbox_pending,
        oldest_event_at=summary.oldest_event_at,
        cursors=summary.cursors,
        deals=deals,
        circuits=store.circuits(),
        pauses=tuple(store.pauses()),
    )


@dataclass(frozen=True)
class Bucket:
    """One bar of an activity chart: what happened in [start, start + width)."""

    start: datetime
    synced: int
    errors: int


@dataclass(frozen=True)
class Activity:
    """Synced changes and errors from the audit: per hour for 24 h, per day for 7 days."""

    hours: list[Bucket]
    days: list[Bucket]


def activity(store: Store, *, now: datetime) -> Activity:
    """Synced changes and errors over time, counted in one scan of the last 7 days' audit.

    A synced change is an audit entry of a reconcile that wrote (it carries `api_calls` in its
    details and is not an error); an error is an entry worded `error: …`. Hours end at the
    hour after `now` (the last bar is the hour in progress); days end at the end of today (UTC).
    """
    audit = t.audit.c
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    tomorrow = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    hours = [next_hour - timedelta(hours=24 - i) for i in range(24)]
    days = [tomorrow - timedelta(days=7 - i) for i in range(7)]
    is_error = audit.message.like(f"{ERROR_PREFIX}%")
    is_synced = sa.and_(sa.not_(is_error), audit.details["api_calls"].as_string().is_not(None))

    def counts(starts: list[datetime], width: timedelta) -> list[sa.ColumnElement[Any]]:
        columns: list[sa.ColumnElement[Any]] = []
        for start in starts:
            within = sa.and_(audit.at >= start, audit.at < start + width)
            for kind in (is_synced, is_error):
                columns.append(sa.func.sum(sa.case((sa.and_(within, kind), 1), else_=0)))
        return columns

    query = sa.select(*counts(hours, timedelta(hours=1)), *counts(days, timedelta(days=1))).where(
        audit.tenant == store.tenant, audit.at >= min(hours[0], days[0])
    )

    def read(connection: sa.Connection) -> Any:
        return connection.execute(query).one()

    row = [int(v or 0) for v in _run(store, read)]
    hourly = [Bucket(start, row[2 * i], row[2 * i + 1]) for i, start in enumerate(hours)]
    offset = 2 * len(hours)
    daily = [
        Bucket(start, row[offset + 2 * i], row[offset + 2 * i + 1]) for i, start in enumerate(days)
    ]
    return Activity(hours=hourly, days=daily)


def _name_columns() -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    values = t.snapshots.c.field_values
    return values["name"].as_string().label("name"), values["customer_name"].as_string().label(
        "customer"
    )


def _stage() -> sa.ColumnElement[Any]:
    stage: sa.ColumnElement[Any] = t.snapshots.c.field_values["stage"].as_string()
    return stage


MAX_STAGES: Final = 100  # a stage table has a dozen; more are listed no further


def stages(store: Store) -> list[str]:
    """The distinct stages (Partner Center status/substatus) the links' bases hold, sorted."""
    stage = _stage()
    query = (
        sa.select(stage)
        .where(t.snapshots.c.tenant == store.tenant, stage.is_not(None))
        .distinct()
        .order_by(stage)
        .limit(MAX_STAGES)
    )

    def read(connection: sa.Connection) -> list[str]:
        return [str(value) for value in connection.execute(query).scalars()]

    result: list[str] = _run(store, read)
    return result


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _row(row: Any) -> LinkRow:
    return LinkRow(
        id=LinkId(row.id),
        name=row.name,
        customer=row.customer,
        referral_id=row.referral_id,
        sobject=row.sobject,
        record_id=row.record_id,
        sync_status=row.sync_status,
        last_error=row.last_error,
        updated_at=row.updated_at,
        last_synced_at=row.last_synced_at,
        direction=row.direction,
        stage=row.stage,
        state=row.state,
        held=bool(row.held),
        retries=int(row.retries or 0),
        retry_at=row.retry_at,
    )


def search_links(
    store: Store,
    *,
    query: str = "",
    status: SyncStatus | str | None = None,
    direction: str | None = None,
    stage: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> LinkPage:
    """One page of links, the most recently changed first.

    Args:
        store: the store.
        query: matched (case-insensitive, anywhere) against the deal name, the customer, the
            referral id, the Salesforce record id, the engagement id and the link id; a sync
            status's name matches the links in that status.
        status: only links in this place of the counts (`Store.deal_counts`: Synced,
            Pending, Error, Paused), or `Held` (Pending, held by a side's open circuit).
        direction: only links of this direction (`Incoming`, `Outgoing`; `unknown`: neither).
        stage: only links whose base holds this stage (Partner Center status/substatus).
        offset: links skipped (the page's start).
        limit: at most this many (capped at `MAX_PAGE_SIZE`).

    Returns:
        The page and the number of links matching in all.
    """
    links = t.links.c
    name, customer = _name_columns()
    where: list[sa.ColumnElement[bool]] = [links.tenant == store.tenant]
    state = deal_bucket(store.tenant)
    held = link_is_held(store.tenant, sides=CIRCUIT_SIDES)
    wanted = status.value if isinstance(status, SyncStatus) else status
    if wanted == HELD:
        where.extend([state == "Pending", held])
    elif wanted:
        where.append(state == wanted)
    if direction == "unknown":
        where.append(links.direction.is_(None))
    elif direction:
        where.append(links.direction == direction)
    if stage:
        where.append(_stage() == stage)
    text = query.strip()[:MAX_QUERY_LENGTH]
    if text:
        pattern = _like(text)
        matches: list[sa.ColumnElement[bool]] = [
            sa.func.lower(column).like(pattern, escape="\\")
            for column in (
                t.snapshots.c.field_values["name"].as_string(),
                t.snapshots.c.field_values["customer_name"].as_string(),
                links.referral_id,
                links.record_id,
                links.engagement_id,
                links.id,
            )
        ]
        named = [name for name in STATES if name.lower() == text.lower() and name != HELD]
        if named:
            matches.append(state == named[0])
        where.append(sa.or_(*matches))
    joined = t.links.outerjoin(t.snapshots, t.snapshots.c.link_id == links.id)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    offset = max(0, offset)
    page = (
        sa.select(
            links.id,
            name,
            customer,
            links.referral_id,
            links.sobject,
            links.record_id,
            links.sync_status,
            links.last_error,
            links.updated_at,
            links.last_synced_at,
            links.direction,
            _stage().label("stage"),
            state.label("state"),
            held.label("held"),
            links.retries,
            links.retry_at,
            sa.func.count().over().label("total"),
        )
        .select_from(joined)
        .where(*where)
        .order_by(links.updated_at.desc(), links.id.desc())
        .limit(limit)
        .offset(offset)
    )
    counted = sa.select(sa.func.count()).select_from(joined).where(*where)

    def read(connection: sa.Connection) -> LinkPage:
        found = connection.execute(page).all()
        rows = [_row(row) for row in found]
        # One scan for the page and its count (a window); past the end, count apart.
        total = int(found[0].total) if found else int(connection.execute(counted).scalar() or 0)
        return LinkPage(rows=rows, total=total, offset=offset, limit=limit)

    result: LinkPage = _run(store, read)
    return result


def deal(
    store: Store, link_id: str, *, audit_limit: int = 100, conflict_limit: int = 50
) -> Deal | None:
    """One link with its base values, its newest audit entries and conflicts; None if unknown."""
    links = t.links.c
    name, customer = _name_columns()
    query = (
        sa.select(
            links.id,
            name,
            customer,
            links.referral_id,
            links.engagement_id,
            links.sobject,
            links.record_id,
            links.sync_status,
            links.last_error,
            links.created_at,
            links.updated_at,
            links.last_synced_at,
            links.direction,
            _stage().label("stage"),
            deal_bucket(store.tenant).label("state"),
            link_is_held(store.tenant, sides=CIRCUIT_SIDES).label("held"),
            links.retries,
            links.retry_at,
            t.snapshots.c.field_values,
            t.snapshots.c.saved_at,
        )
        .select_from(t.links.outerjoin(t.snapshots, t.snapshots.c.link_id == links.id))
        .where(links.tenant == store.tenant, links.id == link_id)
    )

    def read(connection: sa.Connection) -> Any:
        return connection.execute(query).first()

    row = _run(store, read)
    if row is None:
        return None
    return Deal(
        link=_row(row),
        engagement_id=row.engagement_id,
        created_at=row.created_at,
        base=None if row.field_values is None else dict(row.field_values),
        base_saved_at=row.saved_at,
        audit=store.audit(link_id, limit=audit_limit),
        conflicts=store.conflicts(link_id, limit=conflict_limit),
        pause=next((p for p in store.pauses() if p.target == link_id), None),
    )


__all__ = [
    "HELD",
    "STATES",
    "Activity",
    "Bucket",
    "Deal",
    "LinkPage",
    "LinkRow",
    "Overview",
    "activity",
    "deal",
    "overview",
    "search_links",
    "stages",
]
