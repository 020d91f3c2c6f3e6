"""`Store`: the sync engine's durable state, one named verb per state change.

Mechanism. Every public method is one database transaction (a read verb reads one consistent
snapshot; a write verb commits or changes nothing). Every row carries the store's `tenant` and
every query filters on it. Times come from the injected `Clock`, never from the database or the
machine, so tests move time by hand and lease expiry is decided by the same clock that the
caller's backoff and schedules use.

Idempotency rests on unique constraints, not on read-then-write, so that it holds across
processes:

- `create_link` inserts with ON CONFLICT DO NOTHING, then reads what is there: the same
  arguments give the same link, and a referral or record already tied to something else is a
  `LinkConflictError` saying which.
- `record_event` inserts with ON CONFLICT DO NOTHING on (tenant, source, event_id) and reports
  whether a row was inserted.
- `claim` is one statement: INSERT ... ON CONFLICT (tenant, key) DO UPDATE ... WHERE the lease
  has expired or is already the caller's. The database decides atomically; exactly one of two
  competing owners gets a row back. Both SQLite and PostgreSQL implement this upsert.

Whether a statement inserted or updated a row is read from its RETURNING clause, never from the
driver's rowcount (psycopg reports -1 for these statements through SQLAlchemy). RETURNING needs
SQLite 3.35 or newer (2021; Python 3.11's builds bundle newer ones).

Invariants: a referral id and a (sobject, record id) each belong to at most one link per
tenant; record ids are stored in their 18-character form; at most `AUDIT_ENTRIES_KEPT` audit
entries are kept per link; a lease has one owner at a time.

The store is watched, so that it never writes into the void. A SQLite file is identified by
its device and inode when the store opens; every write transaction first checks that the
path still names that file, and refuses with `StoreUnavailableError` when it was deleted or
replaced (an open connection would go on writing to the unlinked file, lost at the next
start). A write that fails for the database's sake (a full disk, a lost connection) is
remembered for `WRITE_FAILURE_SECONDS`, and `health()` (what `/readyz` runs) reports it
together with the file check and a read.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import URL, Engine

from cosell.clock import Clock
from cosell.store import schema
from cosell.store import tables as t
from cosell.store.database import (
    WRITE,
    create_engine,
    json_serializer,
    normalise_url,
    refused,
    unavailable,
)
from cosell.store.errors import (
    LinkConflictError,
    LinkNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from cosell.store.tables import AUDIT_ENTRIES_KEPT, DEFAULT_TENANT
from cosell.store.types import (
    INCOMING,
    OUTGOING,
    AuditEntry,
    ConflictRecord,
    CreateIntent,
    InboxEvent,
    JsonScalar,
    Key,
    Link,
    LinkId,
    NewConflict,
    Record,
    SyncStatus,
    canonical_record_id,
    check_sobject,
    parse_key,
)


class _Unset:
    """The type of `UNSET`: "leave this column as it is" in `update_link`."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

SIDES = ("partner_center", "salesforce")


def _insert(dialect: str, table: sa.Table) -> Any:
    # The dialect's own INSERT construct: the portable one has no ON CONFLICT.
    # Imported here: loading a dialect package costs ~0.1 s, and a store uses only one.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def _direction(referral_id: str | None, record_id: str | None) -> str | None:
    # A link is made for the side that exists first: a referral alone is Microsoft's (or a
    # lead) coming in; a record alone is an opportunity being shared. Both: a pair, unknown.
    if referral_id is not None and record_id is None:
        return INCOMING
    if record_id is not None and referral_id is None:
        return OUTGOING
    return None


def _link(row: sa.Row[Any]) -> Link:
    return Link(
        id=LinkId(row.id),
        tenant=row.tenant,
        referral_id=row.referral_id,
        engagement_id=row.engagement_id,
        sobject=row.sobject,
        record_id=row.record_id,
        sync_status=SyncStatus(row.sync_status),
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_synced_at=row.last_synced_at,
        retries=int(row.retries or 0),
        retry_at=row.retry_at,
        direction=row.direction,
    )


# A failed write marks the store unready this long, unless a write succeeds first: long
# enough for a load balancer to see it, short enough to recover without a restart.
WRITE_FAILURE_SECONDS: Final = 60.0


def _sqlite_file(url: URL) -> str | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = url.database or ""
    return None if database.startswith("file:") else os.path.abspath(database)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_dev, status.st_ino)


class Store:
    """The durable state of the sync engine for one tenant (see the module docstring).

    Make one with `Store.open`; share it between threads (the engine pools connections); close
    it when done. Several processes may open the same database at once.
    """

    def __init__(self, engine: Engine, *, clock: Clock, tenant: str = DEFAULT_TENANT) -> None:
        if not tenant or len(tenant) > 100:  # 100: the tenant column's length
            raise ValueError("a tenant is a name of 1 to 100 characters, e.g. default")
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})  # made once: each call copies
        self._clock = clock
        self._tenant = tenant
        self._dialect = engine.dialect.name
        self._file = _sqlite_file(engine.url)
        self._file_identity = None if self._file is None else _identity(self._file)
        self._write_failure: tuple[str, float] | None = None  # (why, when on the monotonic clock)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        clock: Clock,
        tenant: str = DEFAULT_TENANT,
        migrate: bool = True,
    ) -> Store:
        """Open (and by default migrate) the store at `url`.

        Args:
            url: `sqlite:///path.db`, `postgresql://...` or `postgresql+psycopg://...`; None for
                `sqlite:///./cosell.db` in the working directory.
            clock: Where every stored time comes from.
            tenant: The connection whose rows this store reads and writes.
            migrate: Bring the schema to this cosell's revision first; when False the schema
                must already be there.

        Returns:
            An open store; call `close` when done.

        Raises:
            StoreError: A bad URL, an unreachable database (`StoreUnavailableError`), or a schema
                this cosell cannot use (`SchemaVersionError`); the message says what to do.
        """
        parsed = normalise_url(url)
        engine = create_engine(parsed)
        try:
            if migrate:
                schema.upgrade(engine)
            else:
                schema.check(engine)
        except exc.DBAPIError as error:
            engine.dispose()
            raise refused(parsed, error) from error
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, clock=clock, tenant=tenant)

    @property
    def tenant(self) -> str:
        """The tenant this store reads and writes."""
        return self._tenant

    @property
    def url(self) -> URL:
        """The database URL (render with `hide_password=True` before showing it)."""
        return self._engine.url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for callers that share the database (the engine's DBOS)."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except exc.OperationalError as error:
            raise unavailable(self._engine.url, error) from error

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        self.check_file()
        try:
            with self._writer.begin() as connection:
                yield connection
        except exc.OperationalError as error:
            failure = unavailable(self._engine.url, error)
            self._write_failure = (str(failure), self._clock.monotonic())
            raise failure from error
        self._write_failure = None

    def check_file(self) -> None:
        """Refuse when the SQLite file was deleted or replaced since the store opened it.

        Raises:
            StoreUnavailableError: the path no longer names the file the store has open.
        """
        if self._file is None or self._file_identity is None:
            return
        now = _identity(self._file)
        if now == self._file_identity:
            return
        what = "deleted" if now is None else "replaced by another file"
        raise StoreUnavailableError(
            f"the SQLite store {str(self._file)!r} was {what} while cosell had it open: "
            "nothing more is written to it. Restore the file (from a backup) and restart cosell"
        )

    def check_writable(self) -> None:
        """Write a row and roll it back: proves the database takes writes (`cosell check`).

        Raises:
            StoreUnavailableError: the file was deleted or replaced, or the write failed
                (a read-only file or folder, a full disk, a user without write permission).
        """
        self.check_file()
        try:
            with self._writer.connect() as connection:
                transaction = connection.begin()
                try:
                    connection.execute(
                        sa.insert(t.cursors).values(
                            tenant=self._tenant,
                            name="cosell check: write probe",
                            value="",
                            updated_at=self._now(),
                        )
                    )
                finally:
                    transaction.rollback()
        except exc.OperationalError as error:
            raise unavailable(self._engine.url, error) from error

    def health(self) -> str:
        """Check that the store can be read and written now (for `/readyz` and `cosell check`).

        Returns:
            A short detail, e.g. `sqlite reachable and writable`.

        Raises:
            StoreUnavailableError: the file was deleted or replaced, the database cannot be
                read, or a write failed in the last `WRITE_FAILURE_SECONDS` (a full disk).
        """
        self.check_file()
        with self._read() as connection:
            connection.execute(sa.select(t.cursors.c.name).limit(1)).all()
        failure = self._write_failure
        if failure is not None:
            why, when = failure
            ago = self._clock.monotonic() - when
            if ago < WRITE_FAILURE_SECONDS:
                raise StoreUnavailableError(f"the last write failed {ago:.0f} s ago: {why}")
        return f"{self._dialect} reachable and writable"

    def _now(self) -> datetime:
        return self._clock.now()

    def _new_link_id(self) -> LinkId:
        milliseconds = int(self._now().timestamp() * 1000)
        return LinkId(f"{milliseconds:012x}{secrets.token_hex(10)}")

    # -- links --------------------------------------------------------------------------------

    def _select_link(self) -> sa.Select[Any]:
        return sa.select(t.links).where(t.links.c.tenant == self._tenant)

    def _one_link(self, connection: sa.Connection, *where: sa.ColumnElement[bool]) -> Link | None:
        row = connection.execute(self._select_link().where(*where)).first()
        return None if row is None else _link(row)

    def link_for_referral(self, referral_id: str) -> Link | None:
        """The link of a Partner Center referral, or None when it has none."""
        with self._read() as connection:
            return self._one_link(connection, t.links.c.referral_id == referral_id)

    def link_for_record(self, sobject: str, record_id: str) -> Link | None:
        """The link of a Salesforce record (15- or 18-character id), or None when it has none.

        Raises:
            KeyFormatError: When `record_id` is not a Salesforce id (a `ValueError`).
        """
        record_id = canonical_record_id(record_id)
        with self._read() as connection:
            return self._one_link(
                connection, t.links.c.sobject == sobject, t.links.c.record_id == record_id
            )

    def link_for_engagement(self, engagement_id: str, sobject: str) -> Link | None:
        """The complete link (referral and record known) of `sobject` in a Partner Center engagement.

        Microsoft's side of a co-sell shares our referral's engagement id: this finds our link
        without asking Partner Center. A link whose engagement id was never recorded is not
        found (the caller lists the engagement instead).

        Args:
            engagement_id: the engagement id.
            sobject: the Salesforce object of the link, e.g. `Opportunity`.

        Returns:
            The link, or None.
        """
        with self._read() as connection:
            return self._one_link(
                connection,
                t.links.c.engagement_id == engagement_id,
                t.links.c.sobject == sobject,
                t.links.c.referral_id.is_not(None),
                t.links.c.record_id.is_not(None),
            )

    def links_for_keys(self, keys: Sequence[str]) -> dict[str, Link]:
        """The links of many keys in one read (a batch's keys): key -> link, keys without none.

        Raises:
            KeyFormatError: When a key is neither form (a `ValueError`).
        """
        referrals: dict[str, str] = {}
        records: dict[tuple[str, str], str] = {}
        for key in keys:
            parts = parse_key(key)
            if parts[0] == "referral":
                referrals[parts[1]] = key
            else:
                records[(parts[1], parts[2])] = key
        found: dict[str, Link] = {}
        with self._read() as connection:
            if referrals:
                query = self._select_link().where(t.links.c.referral_id.in_(list(referrals)))
                for row in connection.execute(query):
                    link = _link(row)
                    found[referrals[str(link.referral_id)]] = link
            if records:
                ids = sorted({record_id for _, record_id in records})
                query = self._select_link().where(t.links.c.record_id.in_(ids))
                for row in connection.execute(query):
                    link = _link(row)
                    named = records.get((link.sobject, str(link.record_id)))
                    if named is not None:
                        found[named] = link
        return found

    def snapshots(self, link_ids: Sequence[str]) -> dict[str, dict[str, JsonScalar]]:
        """The base snapshots of many links in one read: link id -> values (none: no base)."""
        if not link_ids:
            return {}
        with self._read() as connection:
            rows = connection.execute(
                sa.select(t.snapshots.c.link_id, t.snapshots.c.field_values).where(
                    t.snapshots.c.tenant == self._tenant,
                    t.snapshots.c.link_id.in_(list(link_ids)),
                )
            )
            return {str(row.link_id): dict(row.field_values) for row in rows}

    def intent_link_ids(self, link_ids: Sequence[str]) -> set[str]:
        """Which of these links have an unresolved create intent (one read)."""
        if not link_ids:
            return set()
        with self._read() as connection:
            rows = connection.execute(
                sa.select(t.create_intents.c.link_id).where(
                    t.create_intents.c.tenant == self._tenant,
                    t.create_intents.c.link_id.in_(list(link_ids)),
                )
            )
            return {str(row.link_id) for row in rows}

    def get_link(self, link_id: str) -> Link | None:
        """The link with this id, or None."""
        with self._read() as connection:
            return self._one_link(connection, t.links.c.id == link_id)

    def create_link(
        self,
        *,
        sobject: str,
        record_id: str | None = None,
        referral_id: str | None = None,
        engagement_id: str | None = None,
    ) -> Link:
        """Tie a referral and a Salesforce record together; idempotent.

        Calling it again with the same arguments returns the same link. When a link already
        holds one of the two ids and lacks the other (a create under way), the missing id (and
        the engagement id, when missing) is filled in. New links start `Pending`.

        Args:
            sobject: The Salesforce object, e.g. `Opportunity`.
            record_id: The Salesforce record id (15 or 18 characters), when known.
            referral_id: The Partner Center referral id, when known.
            engagement_id: The Partner Center engagement id, when known.

        Returns:
            The link.

        Raises:
            ValueError: When neither `record_id` nor `referral_id` is given.
            LinkConflictError: When the referral or the record is already linked to something
                else; the message names both.
        """
        if record_id is None and referral_id is None:
            raise ValueError("a link needs a record id, a referral id, or both")
        check_sobject(sobject)
        now = self._now()
        with self._write() as connection:
            return self._create_link(
                connection,
                now,
                sobject=sobject,
                record_id=record_id,
                referral_id=referral_id,
                engagement_id=engagement_id,
            )

    def create_links(self, links: Sequence[tuple[str, str, str | None]]) -> list[Link]:
        """`create_link` for many referrals at once, in one transaction (a backfill's page).

        Args:
            links: (sobject, referral id, engagement id or None) of each link to make.

        Returns:
            The links, in the order given.

        Raises:
            LinkConflictError: as `create_link`; then none of them is made.
        """
        for sobject, _, _ in links:
            check_sobject(sobject)
        if not links:
            return []
        now = self._now()
        with self._write() as connection:
            return [
                self._create_link(
                    connection,
                    now,
                    sobject=sobject,
                    record_id=None,
                    referral_id=referral_id,
                    engagement_id=engagement_id,
                )
                for sobject, referral_id, engagement_id in links
            ]

    def _create_link(
        self,
        connection: sa.Connection,
        now: datetime,
        *,
        sobject: str,
        record_id: str | None,
        referral_id: str | None,
        engagement_id: str | None,
    ) -> Link:
        if record_id is not None:
            record_id = canonical_record_id(record_id)
        statement = (
            _insert(self._dialect, t.links)
            .values(
                id=self._new_link_id(),
                tenant=self._tenant,
                referral_id=referral_id,
                engagement_id=engagement_id,
                sobject=sobject,
                record_id=record_id,
                sync_status=SyncStatus.PENDING.value,
                last_error=None,
                created_at=now,
                updated_at=now,
                last_synced_at=None,
                direction=_direction(referral_id, record_id),
            )
            .on_conflict_do_nothing()
            .returning(t.links.c.id)
        )
        inserted = connection.execute(statement).first() is not None
        by_referral = (
            None
            if referral_id is None
            else self._one_link(connection, t.links.c.referral_id == referral_id)
        )
        by_record = (
            None
            if record_id is None
            else self._one_link(
                connection, t.links.c.sobject == sobject, t.links.c.record_id == record_id
            )
        )
        link = by_referral or by_record
        assert link is not None, "the insert or its conflict left a row"
        if inserted:
            return link
        if by_referral is not None and by_record is not None and by_referral.id != by_record.id:
            raise LinkConflictError(
                f"referral {referral_id} is linked to {_describe(by_referral)} and "
                f"{sobject} {record_id} to {_describe(by_record)}: they cannot be linked to "
                "each other until one of those links is removed"
            )
        self._check_same(link, sobject=sobject, record_id=record_id, referral_id=referral_id)
        fill: dict[str, Any] = {}
        if referral_id is not None and link.referral_id is None:
            fill["referral_id"] = referral_id
        if record_id is not None and link.record_id is None:
            fill["record_id"] = record_id
        if engagement_id is not None and link.engagement_id is None:
            fill["engagement_id"] = engagement_id
        if not fill:
            return link
        fill["updated_at"] = now
        return self._update(connection, link.id, fill)

    @staticmethod
    def _check_same(
        link: Link, *, sobject: str, record_id: str | None, referral_id: str | None
    ) -> None:
        if referral_id is not None and link.referral_id not in (None, referral_id):
            raise LinkConflictError(
                f"{sobject} {record_id} is already linked to referral {link.referral_id}, "
                f"not {referral_id}: one record syncs with one referral"
            )
        if link.sobject != sobject or link.record_id not in (None, record_id or link.record_id):
            linked = f"{link.sobject} {link.record_id or '(being created)'}"
            wanted = f"{sobject} {record_id}" if record_id else f"a new {sobject}"
            raise LinkConflictError(
                f"referral {referral_id} is already linked to {linked}, not {wanted}: "
                "one referral syncs with one record"
            )

    def _update(self, connection: sa.Connection, link_id: str, values: dict[str, Any]) -> Link:
        try:
            row = connection.execute(
                t.links.update()
                .where(t.links.c.tenant == self._tenant, t.links.c.id == link_id)
                .values(**values)
                .returning(*t.links.c)
            ).first()
        except exc.IntegrityError as error:
            raise LinkConflictError(
                f"cannot change link {link_id}: {_taken(values)} already belongs to another link"
            ) from error
        if row is None:
            raise LinkNotFoundError(f"there is no link {link_id} in tenant {self._tenant!r}")
        return _link(row)

    def update_link(
        self,
        link_id: str,
        *,
        referral_id: str | _Unset | None = UNSET,
        engagement_id: str | _Unset | None = UNSET,
        record_id: str | _Unset | None = UNSET,
        sobject: str | _Unset = UNSET,
        sync_status: SyncStatus | str | _Unset = UNSET,
        last_error: str | _Unset | None = UNSET,
        last_synced_at: datetime | _Unset | None = UNSET,
        retries: int | _Unset = UNSET,
        retry_at: datetime | _Unset | None = UNSET,
    ) -> Link:
        """Change some columns of a link; the ones not passed keep their values.

        Args:
            link_id: The link.
            referral_id: The Partner Center referral id (after a create).
            engagement_id: The Partner Center engagement id.
            record_id: The Salesforce record id, 15 or 18 characters (after a create).
            sobject: The Salesforce object (a lead converted to an opportunity: with `record_id`).
            sync_status: `Synced`, `Pending` or `Error`.
            last_error: Why the last reconcile failed; None clears it.
            last_synced_at: When both sides last agreed (timezone-aware).
            retries: Scheduled retries made since the link was parked.
            retry_at: When a parked link is retried next (None: it waits for a change). A
                status other than Error clears both (a link that is not parked has no retry).

        Returns:
            The link as it is now.

        Raises:
            LinkNotFoundError: When there is no such link.
            LinkConflictError: When the new referral or record id belongs to another link.
            ValueError: For an unknown sync status, a malformed object name or record id, or a
                naive `last_synced_at`.
        """
        values = self._link_values(
            referral_id=referral_id,
            engagement_id=engagement_id,
            record_id=record_id,
            sobject=sobject,
            sync_status=sync_status,
            last_error=last_error,
            last_synced_at=last_synced_at,
            retries=retries,
            retry_at=retry_at,
        )
        with self._write() as connection:
            return self._update(connection, link_id, values)

    def _link_values(
        self,
        *,
        referral_id: str | _Unset | None = UNSET,
        engagement_id: str | _Unset | None = UNSET,
        record_id: str | _Unset | None = UNSET,
        sobject: str | _Unset = UNSET,
        sync_status: SyncStatus | str | _Unset = UNSET,
        last_error: str | _Unset | None = UNSET,
        last_synced_at: datetime | _Unset | None = UNSET,
        retries: int | _Unset = UNSET,
        retry_at: datetime | _Unset | None = UNSET,
    ) -> dict[str, Any]:
        """The checked column values of `update_link`'s arguments (see there)."""
        values: dict[str, Any] = {}
        if not isinstance(referral_id, _Unset):
            values["referral_id"] = referral_id
        if not isinstance(engagement_id, _Unset):
            values["engagement_id"] = engagement_id
        if not isinstance(record_id, _Unset):
            values["record_id"] = None if record_id is None else canonical_record_id(record_id)
        if not isinstance(sobject, _Unset):
            values["sobject"] = check_sobject(sobject)
        if not isinstance(sync_status, _Unset):
            try:
                values["sync_status"] = SyncStatus(sync_status).value
            except ValueError:
                raise ValueError(
                    f"{sync_status!r} is not a sync status: use Synced, Pending or Error"
                ) from None
        if not isinstance(last_error, _Unset):
            values["last_error"] = last_error
        if not isinstance(last_synced_at, _Unset):
            if last_synced_at is not None and last_synced_at.utcoffset() is None:
                raise ValueError(f"last_synced_at must be timezone-aware, got {last_synced_at!r}")
            values["last_synced_at"] = last_synced_at
        if values.get("sync_status", SyncStatus.ERROR.value) != SyncStatus.ERROR.value:
            values["retries"], values["retry_at"] = 0, None  # not parked: nothing to retry
        if not isinstance(retries, _Unset):
            if retries < 0:
                raise ValueError(f"retries cannot be negative, got {retries}")
            values["retries"] = retries
        if not isinstance(retry_at, _Unset):
            if retry_at is not None and retry_at.utcoffset() is None:
                raise ValueError(f"retry_at must be timezone-aware, got {retry_at!r}")
            values["retry_at"] = retry_at
        values["updated_at"] = self._now()
        return values

    def links(
        self,
        *,
        status: SyncStatus | str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Link]:
        """Links in creation order, a page at a time.

        Args:
            status: Only links with this sync status.
            limit: At most this many.
            after: Only links after this link id (the last id of the previous page).

        Returns:
            The links.
        """
        query = self._select_link().order_by(t.links.c.id)
        if status is not None:
            query = query.where(t.links.c.sync_status == SyncStatus(status).value)
        if after is not None:
            query = query.where(t.links.c.id > after)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as connection:
            return [_link(row) for row in connection.execute(query)]

    # -- base snapshots -------------------------------------------------------------------------

    def snapshot(self, link_id: str) -> dict[str, JsonScalar] | None:
        """The values both sides last agreed on, or None before the first reconcile."""
        with self._read() as connection:
            values = connection.execute(
                sa.select(t.snapshots.c.field_values).where(
                    t.snapshots.c.tenant == self._tenant, t.snapshots.c.link_id == link_id
                )
            ).scalar()
        return None if values is None else dict(values)

    def save_snapshot(self, link_id: str, values: Mapping[str, JsonScalar]) -> None:
        """Replace the base of a link with `values`.

        Raises:
            LinkNotFoundError: When there is no such link.
            TypeError: When a value is something JSON cannot represent.
        """
        with self._write() as connection:
            self._require_link(connection, link_id)
            self._save_snapshot(connection, link_id, values)

    def _save_snapshot(
        self, connection: sa.Connection, link_id: str, values: Mapping[str, JsonScalar]
    ) -> None:
        document = _json_document(values, what="a snapshot")
        now = self._now()
        statement = _insert(self._dialect, t.snapshots).values(
            link_id=link_id, tenant=self._tenant, field_values=document, saved_at=now
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[t.snapshots.c.link_id],
                set_={"field_values": document, "saved_at": now},
            )
        )

    def _require_link(self, connection: sa.Connection, link_id: str) -> None:
        exists = connection.execute(
            sa.select(t.links.c.id).where(t.links.c.tenant == self._tenant, t.links.c.id == link_id)
        ).first()
        if exists is None:
            raise LinkNotFoundError(f"there is no link {link_id} in tenant {self._tenant!r}")

    # -- audit and conflicts --------------------------------------------------------------------

    def record_audit(
        self, link_id: str | None, message: str, *, details: Mapping[str, Any] | None = None
    ) -> None:
        """Add an entry to a link's audit trail (None: an entry about no particular link).

        Only the newest `AUDIT_ENTRIES_KEPT` entries of a link are kept.

        Args:
            link_id: The link, or None.
            message: What happened, for a human.
            details: JSON-serialisable facts (datetimes and decimals become strings); never secrets.

        Raises:
            LinkNotFoundError: When there is no such link.
            TypeError: When `details` holds something JSON cannot represent.
        """
        with self._write() as connection:
            if link_id is not None:
                self._require_link(connection, link_id)
            self._record_audit(connection, link_id, [(message, details)])

    def _record_audit(
        self,
        connection: sa.Connection,
        link_id: str | None,
        entries: Sequence[tuple[str, Mapping[str, Any] | None]],
        *,
        more: Sequence[tuple[str, Sequence[tuple[str, Mapping[str, Any] | None]]]] = (),
    ) -> None:
        """Add audit entries (`link_id`'s, then each of `more`'s) in one insert; trim each link.

        Each link keeps its newest `AUDIT_ENTRIES_KEPT` entries.
        """
        at = self._now()
        rows = [
            {
                "tenant": self._tenant,
                "link_id": owner,
                "at": at,
                "message": message,
                "details": _json_document(details or {}, what="audit details"),
            }
            for owner, some in ((link_id, entries), *more)
            for message, details in some
        ]
        if not rows:
            return
        connection.execute(t.audit.insert(), rows)
        owners: list[str | None] = list(
            dict.fromkeys(o for o, some in ((link_id, entries), *more) if some)
        )
        if None in owners:
            self._trim_audit(connection, None)
        linked = [owner for owner in owners if owner is not None]
        if linked:
            self._trim_audit(connection, linked)

    def _trim_audit(self, connection: sa.Connection, link_ids: Sequence[str] | None) -> None:
        """Keep the newest `AUDIT_ENTRIES_KEPT` entries of each link (None: of no link)."""
        newer = t.audit.alias("newer")
        which: sa.ColumnElement[bool]
        same_link: sa.ColumnElement[bool]
        if link_ids is None:
            which = t.audit.c.link_id.is_(None)
            same_link = newer.c.link_id.is_(None)
        else:
            which = t.audit.c.link_id.in_(link_ids)
            same_link = newer.c.link_id == t.audit.c.link_id
        oldest_kept = (
            sa.select(newer.c.id)
            .where(newer.c.tenant == self._tenant, same_link)
            .order_by(newer.c.id.desc())
            .offset(AUDIT_ENTRIES_KEPT - 1)
            .limit(1)
            .scalar_subquery()
        )
        connection.execute(
            t.audit.delete().where(
                t.audit.c.tenant == self._tenant, which, t.audit.c.id < oldest_kept
            )
        )

    def audit(self, link_id: str | None, *, limit: int = 50) -> list[AuditEntry]:
        """A link's audit trail, newest first (None: the entries about no particular link)."""
        query = (
            sa.select(t.audit)
            .where(
                t.audit.c.tenant == self._tenant,
                t.audit.c.link_id.is_(None) if link_id is None else t.audit.c.link_id == link_id,
            )
            .order_by(t.audit.c.id.desc())
            .limit(limit)
        )
        with self._read() as connection:
            return [
                AuditEntry(
                    id=row.id,
                    tenant=row.tenant,
                    link_id=None if row.link_id is None else LinkId(row.link_id),
                    at=row.at,
                    message=row.message,
                    details=row.details,
                )
                for row in connection.execute(query)
            ]

    def record_conflict(
        self,
        link_id: str,
        *,
        field: str,
        partner_center: JsonScalar,
        salesforce: JsonScalar,
        base: JsonScalar,
        winner: str,
    ) -> None:
        """Record that both sides changed `field` differently, and which side won.

        Raises:
            LinkNotFoundError: When there is no such link.
            ValueError: When `winner` is not `partner_center` or `salesforce`.
        """
        conflict = NewConflict(field, partner_center, salesforce, base, str(winner))
        with self._write() as connection:
            self._require_link(connection, link_id)
            self._record_conflicts(connection, link_id, [conflict])

    def _record_conflicts(
        self, connection: sa.Connection, link_id: str, conflicts: Sequence[NewConflict]
    ) -> None:
        for conflict in conflicts:
            if conflict.winner not in SIDES:
                raise ValueError(
                    f"the winner of a conflict is one of {SIDES}, not {conflict.winner!r}"
                )
        if not conflicts:
            return
        at = self._now()
        connection.execute(
            t.conflicts.insert(),
            [
                {
                    "tenant": self._tenant,
                    "link_id": link_id,
                    "field": c.field,
                    "partner_center": c.partner_center,
                    "salesforce": c.salesforce,
                    "base": c.base,
                    "winner": c.winner,
                    "at": at,
                }
                for c in conflicts
            ],
        )

    def conflicts(
        self, link_id: str | None = None, *, limit: int | None = None
    ) -> list[ConflictRecord]:
        """Recorded conflicts, newest first: one link's, or every link's when None."""
        query = sa.select(t.conflicts).where(t.conflicts.c.tenant == self._tenant)
        if link_id is not None:
            query = query.where(t.conflicts.c.link_id == link_id)
        query = query.order_by(t.conflicts.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._read() as connection:
            return [
                ConflictRecord(
                    id=row.id,
                    tenant=row.tenant,
                    link_id=LinkId(row.link_id),
                    field=row.field,
                    partner_center=row.partner_center,
                    salesforce=row.salesforce,
                    base=row.base,
                    winner=row.winner,
                    at=row.at,
                )
                for row in connection.execute(query)
            ]

    # -- change cursors -------------------------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        """The value of a poller's cursor, or None before the first `set_cursor`."""
        with self._read() as connection:
            value: str | None = connection.execute(
                sa.select(t.cursors.c.value).where(
                    t.cursors.c.tenant == self._tenant, t.cursors.c.name == name
                )
            ).scalar()
        return value

    def set_cursor(self, name: str, value: str) -> None:
        """Set a poller's cursor."""
        now = self._now()
        with self._write() as connection:
            statement = _insert(self._dialect, t.cursors).values(
                tenant=self._tenant, name=name, value=value, updated_at=now
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[t.cursors.c.tenant, t.cursors.c.name],
                    set_={"value": value, "updated_at": now},
                )
            )

    # -- webhook inbox --------------------------------------------------------------------------

    def record_event(self, *, source: str, event_id: str, key: str, payload: bytes | str) -> bool:
        """Keep a received event until it has been handled; idempotent on (source, event_id).

        Args:
            source: Who sent it, e.g. `partner_center`.
            event_id: The sender's id for the event.
            key: The key it says may be out of date.
            payload: The body as received (text is stored as UTF-8).

        Returns:
            True when the event is new, False when it had been recorded before.
        """
        body = payload.encode() if isinstance(payload, str) else bytes(payload)
        with self._write() as connection:
            result = connection.execute(
                _insert(self._dialect, t.inbox)
                .values(
                    tenant=self._tenant,
                    source=source,
                    event_id=event_id,
                    key=key,
                    payload=body,
                    received_at=self._now(),
                    completed_at=None,
                )
                .on_conflict_do_nothing()
                .returning(t.inbox.c.id)
            )
            return result.first() is not None

    def record_events(
        self, *, source: str, events: Sequence[tuple[str, str, bytes | str]]
    ) -> list[bool]:
        """`record_event` for several events in one transaction (the webhook's group commit).

        Two statements whatever the number of events: one reads which ids are already there,
        one inserts the rest (ON CONFLICT DO NOTHING, so a concurrent insert of the same event
        is harmless). On SQLite the transaction holds the write lock throughout, so "new" is
        exact; on PostgreSQL an event recorded by another process at the same instant may be
        reported new by both (it is recorded once).

        Args:
            source: Who sent them, e.g. `partner-center`.
            events: (event id, key, payload) of each event, in arrival order.

        Returns:
            For each event in order, True when it is new, False when it had been recorded
            before (earlier in the same batch included).
        """
        if not events:
            return []
        now = self._now()
        with self._write() as connection:
            known = set(
                connection.execute(
                    sa.select(t.inbox.c.event_id).where(
                        t.inbox.c.tenant == self._tenant,
                        t.inbox.c.source == source,
                        t.inbox.c.event_id.in_({event_id for event_id, _, _ in events}),
                    )
                ).scalars()
            )
            new: list[bool] = []
            rows: list[dict[str, Any]] = []
            for event_id, key, payload in events:
                new.append(event_id not in known)
                if event_id in known:
                    continue
                known.add(event_id)
                body = payload.encode() if isinstance(payload, str) else bytes(payload)
                rows.append(
                    {
                        "tenant": self._tenant,
                        "source": source,
                        "event_id": event_id,
                        "key": key,
                        "payload": body,
                        "received_at": now,
                        "completed_at": None,
                    }
                )
            if rows:
                connection.execute(_insert(self._dialect, t.inbox).on_conflict_do_nothing(), rows)
            return new

    def pending_events(self, limit: int = 100) -> list[InboxEvent]:
        """Events not yet completed, oldest first."""
        query = (
            sa.select(t.inbox)
            .where(t.inbox.c.tenant == self._tenant, t.inbox.c.completed_at.is_(None))
            .order_by(t.inbox.c.id)
            .limit(limit)
        )
        with self._read() as connection:
            return [
                InboxEvent(
                    id=row.id,
                    tenant=row.tenant,
                    source=row.source,
                    event_id=row.event_id,
                    key=Key(row.key),
                    payload=bytes(row.payload),
                    received_at=row.received_at,
                    completed_at=row.completed_at,
                )
                for row in connection.execute(query)
            ]

    def complete_event(self, event_id: str, *, source: str | None = None) -> None:
        """Mark an event handled; a no-op when it already is.

        Args:
            event_id: The sender's id for the event.
            source: Its sender, when several sources could use the same id.
        """
        where = [
            t.inbox.c.tenant == self._tenant,
            t.inbox.c.event_id == event_id,
            t.inbox.c.completed_at.is_(None),
        ]
        if source is not None:
            where.append(t.inbox.c.source == source)
        with self._write() as connection:
            connection.execute(t.inbox.update().where(*where).values(completed_at=self._now()))

    def complete_events(self, ids: Sequence[int]) -> None:
        """Mark the events with these inbox row ids (`InboxEvent.id`) handled, in one statement.

        Args:
            ids: Row ids from `pending_events`; ids already completed are left alone.
        """
        if not ids:
            return
        with self._write() as connection:
            connection.execute(
                t.inbox.update()
                .where(
                    t.inbox.c.tenant == self._tenant,
                    t.inbox.c.id.in_(list(ids)),
                    t.inbox.c.completed_at.is_(None),
                )
                .values(completed_at=self._now())
            )

    # -- create intents -------------------------------------------------------------------------

    def record_create_intent(self, link_id: str, *, side: str, external_reference: str) -> None:
        """Record, before calling a create, that one is about to be made for this link.

        Recording the same intent again is a no-op.

        Args:
            link_id: The link the created object will belong to.
            side: `partner_center` or `salesforce`.
            external_reference: What finds the created object again.

        Raises:
            LinkNotFoundError: When there is no such link.
            StoreError: When a different intent is already recorded for the link.
            ValueError: For an unknown side.
        """
        self.record_create_intents([(link_id, side, external_reference)])

    def record_create_intents(self, intents: Sequence[tuple[str, str, str]]) -> None:
        """`record_create_intent` for many links in one transaction (a batch of creates).

        Args:
            intents: (link id, side, external reference) of each.

        Raises:
            LinkNotFoundError, StoreError, ValueError: as `record_create_intent`; then none
                of them is recorded.
        """
        for _, side, _ in intents:
            if side not in SIDES:
                raise ValueError(f"a create intent's side is one of {SIDES}, not {side!r}")
        if not intents:
            return
        with self._write() as connection:
            for link_id, side, external_reference in intents:
                self._record_create_intent(connection, link_id, side, external_reference)

    def _record_create_intent(
        self, connection: sa.Connection, link_id: str, side: str, external_reference: str
    ) -> None:
        self._require_link(connection, link_id)
        connection.execute(
            _insert(self._dialect, t.create_intents)
            .values(
                link_id=link_id,
                tenant=self._tenant,
                side=side,
                external_reference=external_reference,
                created_at=self._now(),
            )
            .on_conflict_do_nothing()
        )
        existing = self._intent(connection, link_id)
        assert existing is not None
        if (existing.side, existing.external_reference) != (side, external_reference):
            raise StoreError(
                f"link {link_id} already has an unresolved create intent on {existing.side} "
                f"(reference {existing.external_reference}): recover or resolve it before "
                "recording another"
            )

    def _intent(self, connection: sa.Connection, link_id: str) -> CreateIntent | None:
        row = connection.execute(
            sa.select(t.create_intents).where(
                t.create_intents.c.tenant == self._tenant, t.create_intents.c.link_id == link_id
            )
        ).first()
        if row is None:
            return None
        return CreateIntent(
            link_id=LinkId(row.link_id),
            tenant=row.tenant,
            side=row.side,
            external_reference=row.external_reference,
            created_at=row.created_at,
        )

    def create_intent(self, link_id: str) -> CreateIntent | None:
        """The unresolved create intent of a link, or None."""
        with self._read() as connection:
            return self._intent(connection, link_id)

    def resolve_create_intent(self, link_id: str) -> None:
        """Forget a link's create intent once the create's result is stored; idempotent."""
        with self._write() as connection:
            self._resolve_create_intent(connection, link_id)

    def _resolve_create_intent(self, connection: sa.Connection, link_id: str) -> None:
        connection.execute(
            t.create_intents.delete().where(
                t.create_intents.c.tenant == self._tenant, t.create_intents.c.link_id == link_id
            )
        )

    # -- per-key leases -------------------------------------------------------------------------

    def claim(self, key: str, *, owner: str, ttl_seconds: float) -> bool:
        """Take (or renew) the lease on `key` for `ttl_seconds`, atomically across processes.

        Succeeds when nobody holds the lease, when `owner` already holds it (the lease is then
        extended), or when the holder's lease has expired on the store's clock.

        Args:
            key: The key to lease.
            owner: Who takes it: unique per worker and task, e.g. `<host>:<pid>:<workflow id>`.
            ttl_seconds: How long the lease lasts unless renewed or released (> 0).

        Returns:
            True when `owner` holds the lease now.
        """
        if ttl_seconds <= 0:
            raise ValueError("a lease lasts a positive number of seconds")
        now = self._now()
        expires_at = now + timedelta(seconds=ttl_seconds)
        with self._write() as connection:
            statement = _insert(self._dialect, t.leases).values(
                tenant=self._tenant, key=key, owner=owner, expires_at=expires_at
            )
            result = connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[t.leases.c.tenant, t.leases.c.key],
                    set_={"owner": owner, "expires_at": expires_at},
                    where=sa.or_(t.leases.c.expires_at <= now, t.leases.c.owner == owner),
                ).returning(t.leases.c.owner)
            )
            return result.first() is not None

    def release(self, key: str, *, owner: str) -> None:
        """Give up a lease; a no-op when `owner` does not hold it (it expired and was taken)."""
        with self._write() as connection:
            connection.execute(
                t.leases.delete().where(
                    t.leases.c.tenant == self._tenant,
                    t.leases.c.key == key,
                    t.leases.c.owner == owner,
                )
            )

    def lease_owner(self, key: str) -> str | None:
        """Who holds a live lease on `key` now, or None."""
        with self._read() as connection:
            owner: str | None = connection.execute(
                sa.select(t.leases.c.owner).where(
                    t.leases.c.tenant == self._tenant,
                    t.leases.c.key == key,
                    t.leases.c.expires_at > self._now(),
                )
            ).scalar()
        return owner

    # -- wake-ups: keys to reconcile again at a given time ---------------------------------------

    def set_wakeup(self, key: str, due_at: datetime) -> None:
        """Ask for `key` to be reconciled again at `due_at` (replaces its earlier wake-up).

        A reconcile that must come back to a key without any change happening (a win held
        until 72 hours after creation, an expiry warning) records one; the engine's pollers
        notify the keys that are due (`due_wakeups`) and clear them.

        Args:
            key: the key to reconcile again.
            due_at: when (timezone-aware, on the store's clock).
        """
        with self._write() as connection:
            self._set_wakeup(connection, key, due_at)

    def _set_wakeup(self, connection: sa.Connection, key: str, due_at: datetime) -> None:
        statement = _insert(self._dialect, t.wakeups).values(
            tenant=self._tenant, key=key, due_at=due_at
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[t.wakeups.c.tenant, t.wakeups.c.key],
                set_={"due_at": due_at},
            )
        )

    def _locked_link(self, connection: sa.Connection, link_id: str) -> Link:
        row = connection.execute(
            self._select_link().where(t.links.c.tenant == self._tenant, t.links.c.id == link_id)
        ).first()
        if row is None:
            raise LinkNotFoundError(f"there is no link {link_id} in tenant {self._tenant!r}")
        return _link(row)

    # -- recording what reconciles did: one transaction ------------------------------------------

    def record(self, records: Sequence[Record]) -> list[Link]:
        """Record what reconciles did, all in one transaction: all of it is stored, or none.

        Per record, in this order: the link's columns, the base snapshot, the conflicts, the
        audit entries, the wake-up and the create intent forgotten. A batch of reconciles records all its links at once.

        Args:
            records: one per link.

        Returns:
            The links as they are after it, in the order of `records`.

        Raises:
            LinkNotFoundError: When a link does not exist (nothing is recorded).
            LinkConflictError: When a new referral or record id belongs to another link.
            ValueError, TypeError: A value is malformed or not JSON (nothing is recorded).
        """
        if not records:
            return []
        changes = [self._link_values(**record.link) if record.link else None for record in records]
        now = self._now()
        # Set-based after the links: one statement per table for the whole batch, not one per
        # record (a backfill page records 100-200 links). A link recorded twice ends as it did
        # row by row: its last snapshot and wake-up, every audit entry in order.
        snapshots: dict[str, Any] = {}
        audits: list[tuple[str, Sequence[tuple[str, Mapping[str, Any] | None]]]] = []
        wakeups: dict[str, datetime] = {}
        resolved: list[str] = []
        for record in records:
            if record.snapshot is not None:
                snapshots[record.link_id] = _json_document(record.snapshot, what="a snapshot")
            if record.audit:
                audits.append((record.link_id, record.audit))
            if record.wakeup is not None:
                key, due_at = record.wakeup
                wakeups.pop(key, None)
                wakeups[key] = due_at
            if record.resolve_intent:
                resolved.append(record.link_id)
        with self._write() as connection:
            links = []
            for record, values in zip(records, changes, strict=True):
                if values is not None:
                    links.append(self._update(connection, record.link_id, values))
                else:
                    links.append(self._locked_link(connection, record.link_id))
                self._record_conflicts(connection, record.link_id, record.conflicts)
            if snapshots:
                statement = _insert(self._dialect, t.snapshots)
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[t.snapshots.c.link_id],
                        set_={
                            "field_values": statement.excluded.field_values,
                            "saved_at": statement.excluded.saved_at,
                        },
                    ),
                    [
                        {
                            "link_id": link_id,
                            "tenant": self._tenant,
                            "field_values": document,
                            "saved_at": now,
                        }
                        for link_id, document in snapshots.items()
                    ],
                )
            if audits:
                (first, entries), *more = audits
                self._record_audit(connection, first, entries, more=more)
            if wakeups:
                statement = _insert(self._dialect, t.wakeups)
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[t.wakeups.c.tenant, t.wakeups.c.key],
                        set_={"due_at": statement.excluded.due_at},
                    ),
                    [
                        {"tenant": self._tenant, "key": key, "due_at": due_at}
                        for key, due_at in wakeups.items()
                    ],
                )
            if resolved:
                connection.execute(
                    t.create_intents.delete().where(
                        t.create_intents.c.tenant == self._tenant,
                        t.create_intents.c.link_id.in_(resolved),
                    )
                )
            return links

    def due_wakeups(self, *, limit: int = 500) -> list[tuple[str, datetime]]:
        """The wake-ups due on the store's clock, earliest first: (key, due at) each."""
        with self._read() as connection:
            rows = connection.execute(
                sa.select(t.wakeups.c.key, t.wakeups.c.due_at)
                .where(t.wakeups.c.tenant == self._tenant, t.wakeups.c.due_at <= self._now())
                .order_by(t.wakeups.c.due_at, t.wakeups.c.key)
                .limit(limit)
            )
            return [(str(row.key), row.due_at) for row in rows]

    def wakeup(self, key: str) -> datetime | None:
        """When `key` is to be reconciled again, or None."""
        with self._read() as connection:
            due: datetime | None = connection.execute(
                sa.select(t.wakeups.c.due_at).where(
                    t.wakeups.c.tenant == self._tenant, t.wakeups.c.key == key
                )
            ).scalar()
        return due

    def clear_wakeups(self, done: list[tuple[str, datetime]]) -> None:
        """Forget wake-ups that were handled, as `due_wakeups` gave them.

        A key whose wake-up was set again meanwhile (another due time) keeps the new one.
        """
        if not done:
            return
        with self._write() as connection:
            for key, due_at in done:
                connection.execute(
                    t.wakeups.delete().where(
                        t.wakeups.c.tenant == self._tenant,
                        t.wakeups.c.key == key,
                        t.wakeups.c.due_at == due_at,
                    )
                )

    # -- read-only summaries (cosell status) ---------------------------------------------------

    # -- failures by scope: pauses, held keys, circuits ----------------------------------------

    def set_pause(
        self, target: str | None, *, paused: bool, by: str, reason: str | None = None
    ) -> bool:
        """Pause or resume all sync (`target` None) or one deal (its link id), with an audit entry.

        Args:
            target: a link id, or None for all sync.
            paused: pause (True) or resume (False).
            by: who did it (recorded in the audit).
            reason: why, shown beside the pause (optional).

        Returns:
            True when something changed (pausing what was paused, or resuming what was not,
            changes nothing and records nothing).

        Raises:
            LinkNotFoundError: `target` names no link.
        """
        name = ALL_SYNC if target is None else target
        what = "all sync" if target is None else "sync of this deal"
        with self._write() as connection:
            if target is not None:
                self._require_link(connection, target)
            mine = sa.and_(t.pauses.c.tenant == self._tenant, t.pauses.c.target == name)
            exists = connection.execute(sa.select(t.pauses.c.target).where(mine)).first()
            if paused == (exists is not None):
                return False
            if paused:
                connection.execute(
                    t.pauses.insert().values(
                        tenant=self._tenant,
                        target=name,
                        paused_by=by,
                        reason=reason,
                        since=self._now(),
                    )
                )
                message = f"{what} paused by {by}" + (f": {reason}" if reason else "")
            else:
                connection.execute(t.pauses.delete().where(mine))
                message = f"{what} resumed by {by}"
            self._record_audit(connection, target, [(message, {"by": by, "paused": paused})])
        return True

    def pauses(self) -> list[Pause]:
        """Every pause in force, all sync (`target` None) first, then deals by time."""
        with self._read() as connection:
            rows = connection.execute(
                sa.select(t.pauses)
                .where(t.pauses.c.tenant == self._tenant)
                .order_by(t.pauses.c.since, t.pauses.c.target)
            ).all()
        found = [
            Pause(
                target=None if row.target == ALL_SYNC else LinkId(row.target),
                by=row.paused_by,
                reason=row.reason,
                since=row.since,
            )
            for row in rows
        ]
        return sorted(found, key=lambda p: p.target is not None)

    def hold_keys(self, keys: Sequence[str], *, side: str) -> None:
        """Remember that `keys` wait for `side` (a side's circuit, or "paused"); kept if held.

        A held key keeps the time it was first held (the oldest unsynced change).
        """
        if not keys:
            return
        now = self._now()
        with self._write() as connection:
            statement = _insert(self._dialect, t.held_keys)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[t.held_keys.c.tenant, t.held_keys.c.key],
                    set_={"side": statement.excluded.side},
                ),
                [
                    {"tenant": self._tenant, "key": key, "side": side, "since": now}
                    for key in dict.fromkeys(keys)
                ],
            )

    def held_keys(self, *, side: str | None = None, limit: int = 10_000) -> list[HeldKey]:
        """The keys waiting (for `side`, or for anything), oldest first."""
        query = sa.select(t.held_keys).where(t.held_keys.c.tenant == self._tenant)
        if side is not None:
            query = query.where(t.held_keys.c.side == side)
        query = query.order_by(t.held_keys.c.since, t.held_keys.c.key).limit(limit)
        with self._read() as connection:
            return [
                HeldKey(key=row.key, side=row.side, since=row.since)
                for row in connection.execute(query)
            ]

    def release_keys(self, keys: Sequence[str]) -> None:
        """Forget that `keys` were held (they were notified, or reconciled)."""
        if not keys:
            return
        with self._write() as connection:
            for start in range(0, len(keys), 500):  # bound the IN list
                connection.execute(
                    t.held_keys.delete().where(
                        t.held_keys.c.tenant == self._tenant,
                        t.held_keys.c.key.in_(list(keys[start : start + 500])),
                    )
                )

    def set_circuit(self, circuit: Circuit) -> None:
        """Store a side's circuit (what `cosell status` and `/readyz` show)."""
        values = {
            "state": circuit.state,
            "cause": circuit.cause,
            "fix": circuit.fix,
            "since": circuit.since,
            "next_probe_at": circuit.next_probe_at,
        }
        with self._write() as connection:
            statement = _insert(self._dialect, t.circuits).values(
                tenant=self._tenant, side=circuit.side, **values
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[t.circuits.c.tenant, t.circuits.c.side], set_=values
                )
            )

    def circuits(self) -> dict[str, Circuit]:
        """Each side's stored circuit, by side (a side never stored has no entry: closed)."""
        with self._read() as connection:
            rows = connection.execute(
                sa.select(t.circuits).where(t.circuits.c.tenant == self._tenant)
            ).all()
        return {
            row.side: Circuit(
                side=row.side,
                state=row.state,
                cause=row.cause,
                fix=row.fix,
                since=row.since,
                next_probe_at=row.next_probe_at,
            )
            for row in rows
        }

    def deal_counts(self) -> DealCounts:
        """Every link counted once: Paused, else Error, else Pending, else Synced.

        A link is Paused when its deal is paused; Error when parked; Pending when its status
        is Pending or one of its keys is held (waiting for a side whose circuit is open, or
        for all sync to resume); Synced otherwise. The four add up to the number of links.
        """
        links = t.links.c
        mine = links.tenant == self._tenant
        bucket = deal_bucket(self._tenant).label("bucket")
        with self._read() as connection:
            rows = connection.execute(
                sa.select(bucket, sa.func.count()).where(mine).group_by(bucket)
            ).all()
            oldest_held = connection.execute(
                sa.select(sa.func.min(t.held_keys.c.since)).where(
                    t.held_keys.c.tenant == self._tenant
                )
            ).scalar()
            oldest_pending = connection.execute(
                sa.select(sa.func.min(links.updated_at)).where(
                    mine, links.sync_status == SyncStatus.PENDING.value
                )
            ).scalar()
        counts = {str(name): int(count) for name, count in rows}
        oldest = [at for at in (oldest_held, oldest_pending) if at is not None]
        return DealCounts(
            synced=counts.get("Synced", 0),
            pending=counts.get("Pending", 0),
            error=counts.get("Error", 0),
            paused=counts.get("Paused", 0),
            oldest_unsynced_at=min(oldest) if oldest else None,
        )

    def summary(self) -> StoreSummary:
        """Counts and times that say how sync is doing, read in one transaction.

        Returns:
            Links by sync status, the links never synced, the oldest Pending link's last change,
            the newest sync and audit times, the pending webhook events, and every cursor.
        """
        links = t.links.c
        mine = links.tenant == self._tenant
        with self._read() as connection:
            by_status = {
                str(status): int(count)
                for status, count in connection.execute(
                    sa.select(links.sync_status, sa.func.count())
                    .where(mine)
                    .group_by(links.sync_status)
                )
            }
            # MIN and MAX keep their column's type, so these times come back aware UTC.
            never_synced, oldest_pending, last_synced = connection.execute(
                sa.select(
                    sa.func.count().filter(links.last_synced_at.is_(None)),
                    sa.func.min(links.updated_at).filter(
                        links.sync_status == SyncStatus.PENDING.value
                    ),
                    sa.func.max(links.last_synced_at),
                ).where(mine)
            ).one()
            newest_audit = connection.execute(
                sa.select(sa.func.max(t.audit.c.at)).where(t.audit.c.tenant == self._tenant)
            ).scalar()
            inbox_pending, oldest_event = connection.execute(
                sa.select(sa.func.count(), sa.func.min(t.inbox.c.received_at)).where(
                    t.inbox.c.tenant == self._tenant, t.inbox.c.completed_at.is_(None)
                )
            ).one()
            cursors = tuple(
                CursorState(name=row.name, value=row.value, updated_at=row.updated_at)
                for row in connection.execute(
                    sa.select(t.cursors)
                    .where(t.cursors.c.tenant == self._tenant)
                    .order_by(t.cursors.c.name)
                )
            )
        return StoreSummary(
            links_by_status={status.value: by_status.get(status.value, 0) for status in SyncStatus},
            never_synced=int(never_synced or 0),
            oldest_pending_at=oldest_pending,
            last_synced_at=last_synced,
            newest_audit_at=newest_audit,
            inbox_pending=int(inbox_pending or 0),
            oldest_event_at=oldest_event,
            cursors=cursors,
        )

    # -- parked links' retries ------------------------------------------------------------------

    def due_retries(self, *, limit: int = 500) -> list[Link]:
        """The parked links whose scheduled retry is due on the store's clock, earliest first.

        The engine's poll notifies their keys (`Engine._run_wakeups`); the retry's reconcile
        moves `retry_at` on (`sync.plan.retry`) or clears it when the link syncs.
        """
        links = t.links.c
        query = (
            self._select_link()
            .where(
                links.tenant == self._tenant,
                links.sync_status == SyncStatus.ERROR.value,
                links.retry_at <= self._now(),
            )
            .order_by(links.retry_at, links.id)
            .limit(limit)
        )
        with self._read() as connection:
            return [_link(row) for row in connection.execute(query)]

    def retry_parked(self, *, containing: str, limit: int = 10_000) -> list[Link]:
        """Make the retry of the parked links whose message contains `containing` due now.

        For a cause that went away for all of them at once (the side's sign-in works again):
        their backoff starts over and the next poll notifies them.

        Args:
            containing: text of the parked message (the refusal's own message).
            limit: the most links changed (a bound on one statement's work).

        Returns:
            The links changed.
        """
        links = t.links.c
        now = self._now()
        with self._write() as connection:
            ids = [
                row.id
                for row in connection.execute(
                    sa.select(links.id)
                    .where(
                        links.tenant == self._tenant,
                        links.sync_status == SyncStatus.ERROR.value,
                        links.last_error.contains(containing, autoescape=True),
                    )
                    .order_by(links.id)
                    .limit(limit)
                )
            ]
            return [
                self._update(connection, link_id, {"retries": 0, "retry_at": now})
                for link_id in ids
            ]

    def next_retry_at(self) -> datetime | None:
        """When the earliest scheduled retry of a parked link is due, or None."""
        links = t.links.c
        with self._read() as connection:
            due: datetime | None = connection.execute(
                sa.select(sa.func.min(links.retry_at)).where(
                    links.tenant == self._tenant, links.sync_status == SyncStatus.ERROR.value
                )
            ).scalar()
        return due

    def failed_links(self, *, limit: int = 20) -> list[Link]:
        """The links in Error, the most recently changed first.

        Args:
            limit: At most this many (a status page shows a bounded list).
        """
        query = (
            self._select_link()
            .where(t.links.c.sync_status == SyncStatus.ERROR.value)
            .order_by(t.links.c.updated_at.desc(), t.links.c.id.desc())
            .limit(limit)
        )
        with self._read() as connection:
            return [_link(row) for row in connection.execute(query)]


ALL_SYNC: Final = "*"  # the pauses row that pauses all sync
CIRCUIT_SIDES: Final = ("partner_center", "salesforce")  # held_keys.side of an open circuit


def link_is_paused(tenant: str) -> sa.ColumnElement[bool]:
    """True for a link (of `t.links`) whose deal is paused by hand."""
    paused = sa.select(t.pauses.c.target).where(t.pauses.c.tenant == tenant)
    return t.links.c.id.in_(paused)


def link_is_held(tenant: str, *, sides: Sequence[str] | None = None) -> sa.ColumnElement[bool]:
    """True for a link one of whose keys is held (for one of `sides`, or for anything)."""
    links = t.links.c
    held = sa.select(t.held_keys.c.key).where(t.held_keys.c.tenant == tenant)
    if sides is not None:
        held = held.where(t.held_keys.c.side.in_(list(sides)))
    referral = sa.literal("referral:") + links.referral_id
    record = sa.literal("salesforce:") + links.sobject + sa.literal(":") + links.record_id
    return sa.or_(referral.in_(held), record.in_(held))


def deal_bucket(tenant: str) -> sa.ColumnElement[str]:
    """A link's place in `Store.deal_counts`: Paused, else Error, else Pending, else Synced.

    The one definition `cosell status`, `/metrics` and the console's overview and deal
    filter count by.
    """
    links = t.links.c
    return sa.case(
        (link_is_paused(tenant), "Paused"),
        (links.sync_status == SyncStatus.ERROR.value, "Error"),
        (
            sa.or_(links.sync_status == SyncStatus.PENDING.value, link_is_held(tenant)),
            "Pending",
        ),
        else_="Synced",
    )


@dataclass(frozen=True)
class Pause:
    """A pause in force: all sync (`target` None) or one deal (its link id)."""

    target: LinkId | None
    by: str
    reason: str | None
    since: datetime


@dataclass(frozen=True)
class HeldKey:
    """A key whose reconcile waits: for a side (its circuit is open) or for a pause."""

    key: str
    side: str
    since: datetime


@dataclass(frozen=True)
class Circuit:
    """A side's circuit breaker as stored: `closed` (syncing) or `open` (paused for `cause`).

    Attributes:
        side: `partner_center` or `salesforce`.
        state: `closed` or `open`.
        cause: what is wrong (empty when closed).
        fix: what to do about it (empty when closed).
        since: when it entered this state.
        next_probe_at: when the next probe may run (open only).
    """

    side: str
    state: str
    cause: str
    fix: str
    since: datetime
    next_probe_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """The side's sync is paused."""
        return self.state == "open"


@dataclass(frozen=True)
class DealCounts:
    """Every link counted once (`Store.deal_counts`); the four add up to the links."""

    synced: int
    pending: int
    error: int
    paused: int
    oldest_unsynced_at: datetime | None

    @property
    def total(self) -> int:
        """The number of links."""
        return self.synced + self.pending + self.error + self.paused

    def as_dict(self) -> dict[str, int]:
        """The counts by name (Synced, Pending, Error, Paused)."""
        return {
            "Synced": self.synced,
            "Pending": self.pending,
            "Error": self.error,
            "Paused": self.paused,
        }


@dataclass(frozen=True)
class CursorState:
    """One stored cursor (a poller's position, or any named mark an engine keeps).

    Attributes:
        name: the cursor's name, e.g. `poll:partner_center`.
        value: what was stored, as stored.
        updated_at: when it was last set (every poll sets it, moved or not).
    """

    name: str
    value: str
    updated_at: datetime


@dataclass(frozen=True)
class StoreSummary:
    """What `Store.summary` read (see there); times are UTC, None when there is none.

    Attributes:
        links_by_status: links per sync status (`Synced`, `Pending`, `Error`, zeros included).
        never_synced: links that have never been brought into agreement.
        oldest_pending_at: the last change of the Pending link that changed longest ago.
        last_synced_at: the newest time a reconcile brought a link into agreement.
        newest_audit_at: the newest audit entry's time.
        inbox_pending: webhook events received and not yet handled.
        oldest_event_at: when the oldest of those arrived.
        cursors: every stored cursor, by name.
    """

    links_by_status: Mapping[str, int]
    never_synced: int
    oldest_pending_at: datetime | None
    last_synced_at: datetime | None
    newest_audit_at: datetime | None
    inbox_pending: int
    oldest_event_at: datetime | None
    cursors: tuple[CursorState, ...]


def _describe(link: Link) -> str:
    parts = []
    if link.referral_id is not None:
        parts.append(f"referral {link.referral_id}")
    if link.record_id is not None:
        parts.append(f"{link.sobject} {link.record_id}")
    return f"link {link.id} ({' and '.join(parts)})"


def _taken(values: Mapping[str, Any]) -> str:
    if values.get("referral_id") is not None:
        return f"referral {values['referral_id']}"
    if values.get("record_id") is not None:
        return f"record {values['record_id']}"
    return "the new id"


def _json_document(values: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    # Serialised once here, so that what is stored is exactly what will be read back
    # (datetimes and decimals as strings) and a value JSON cannot hold fails before the write.
    try:
        document: dict[str, Any] = json.loads(json_serializer(dict(values)))
    except TypeError as error:
        raise TypeError(f"{what} must be JSON: {error}") from None
    return document
