"""Opening a database: URL rules, engine settings, and turning connection failures into advice.

URLs:

```
None                              sqlite:///./cosell.db (a file in the working directory)
sqlite:///relative/or/./path.db   a SQLite file (three slashes: relative; four: absolute)
sqlite://                         an in-memory SQLite database (one connection: single-threaded tests)
postgresql://... postgres://...   PostgreSQL through psycopg 3 (normalised to postgresql+psycopg)
postgresql+psycopg://...          the same, spelled out
```

SQLite is set up for several processes sharing one file: WAL (readers never block the
writer), `synchronous=NORMAL` (durable across process crashes, no fsync per commit),
`busy_timeout` (a writer waits for the lock instead of failing at once), foreign keys on. Python's sqlite3 module would otherwise start transactions itself, only before DML, so DDL
would run outside them and a read-then-write transaction could fail with SQLITE_BUSY when
another process writes in between (the busy handler cannot help a transaction that must upgrade
its read snapshot). So the driver's own transaction handling is switched off and the store
issues `BEGIN` itself, `BEGIN IMMEDIATE` for every transaction that writes: it takes the write
lock first and waits for it under `busy_timeout`.

PostgreSQL gets a connection pool sized for a worker process and `pool_pre_ping`, so that a
connection dropped by a server restart or a proxy's idle timeout is replaced instead of failing
the next verb.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from cosell.store.errors import StoreError, StoreUnavailableError

DEFAULT_URL = "sqlite:///./cosell.db"

SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another process's transaction
POSTGRES_POOL_SIZE = 5  # connections kept per process: a worker runs a few reconciles at once
POSTGRES_MAX_OVERFLOW = 10  # extra connections allowed in a burst, closed when returned
POSTGRES_POOL_RECYCLE_S = 1800  # replace connections older than this, before proxies drop them
POSTGRES_CONNECT_TIMEOUT_S = 10  # fail an unreachable server fast with a clear error

WRITE = "cosell_write"
"""Execution option: the transaction will write (SQLite: `BEGIN IMMEDIATE`)."""


def normalise_url(url: str | None) -> URL:
    """Parse a store URL, choosing the driver cosell ships with.

    Args:
        url: A database URL, or None for the default SQLite file.

    Returns:
        The parsed URL: `postgresql+psycopg` for any PostgreSQL spelling, `sqlite` as given.

    Raises:
        StoreError: When the URL cannot be parsed or names a database cosell does not support.
    """
    text = DEFAULT_URL if url is None else url.strip()
    try:
        parsed = make_url(text)
    except (exc.ArgumentError, ValueError) as error:  # ValueError: e.g. a port that is no number
        raise StoreError(
            f"the store URL {_mask(text)!r} is not a database URL: use sqlite:///./cosell.db "
            "or postgresql://user:password@host:5432/database"
        ) from error
    backend = parsed.get_backend_name()
    driver = parsed.drivername.partition("+")[2]
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise StoreError(
                f"the store URL uses the PostgreSQL driver {driver!r}, which cosell does not ship: "
                "write postgresql:// or postgresql+psycopg://"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise StoreError(
                f"the store URL uses the SQLite driver {driver!r}, which cosell does not ship: "
                "write sqlite:///path/to/cosell.db"
            )
        return parsed
    raise StoreError(
        f"the store URL {parsed.render_as_string(hide_password=True)!r} names a {backend!r} "
        "database; cosell stores its state in SQLite (sqlite:///./cosell.db) or PostgreSQL "
        "(postgresql://user:password@host:5432/database)"
    )


def describe(url: URL) -> str:
    """The URL with its password masked, for messages."""
    return url.render_as_string(hide_password=True)


def _mask(text: str) -> str:
    # An unparseable URL may still hold credentials before its last '@': hide all of them.
    if "@" not in text:
        return text
    scheme, sep, rest = text.partition("://")
    host = rest.rpartition("@")[2] if sep else text.rpartition("@")[2]
    return f"{scheme}://***@{host}" if sep else f"***@{host}"


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


json_serializer = functools.partial(json.dumps, default=_json_default, separators=(",", ":"))


def create_engine(url: URL) -> Engine:
    """An engine for a normalised store URL, set up as the module docstring says.

    Args:
        url: A URL returned by `normalise_url`.

    Returns:
        The engine; no connection has been made yet.
    """
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
        pool_recycle=POSTGRES_POOL_RECYCLE_S,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
        json_serializer=json_serializer,
    )


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        "json_serializer": json_serializer,
    }
    if in_memory:
        # One connection shared by every caller: each new connection would be a new, empty database.
        options["poolclass"] = StaticPool
    engine = sa.create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the store issues BEGIN itself (see above)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                enable_wal(cursor)
                # In WAL mode NORMAL survives any crash of the process (a killed worker loses no
                # commit); only an OS crash or power cut may undo the last commits. FULL would
                # fsync on every commit, several per reconcile.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        writes = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def enable_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database file in WAL mode, waiting for other processes doing the same.

    WAL mode is a property of the file, so once any connection has switched it, the others only
    read it. The switch needs an exclusive lock and SQLite answers "database is locked" at once,
    without its busy handler, while another connection holds one (several workers opening a new
    store together), so it is retried until the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        else:
            return


def unavailable(url: URL, error: exc.DBAPIError) -> StoreUnavailableError:
    """The error to raise when a connection to `url` failed, with advice for the database kind.

    Args:
        url: The store URL (shown with its password masked).
        error: What SQLAlchemy raised.

    Returns:
        A `StoreUnavailableError` saying what to check.
    """
    reason = _first_line(error)
    if "disk is full" in reason or "No space left" in reason:
        return StoreUnavailableError(
            f"the store {describe(url)!r} cannot write: {reason}. Free space on the disk that "
            "holds it (nothing was written; Partner Center retries its callbacks meanwhile)"
        )
    if url.get_backend_name() == "sqlite":
        return StoreUnavailableError(
            f"cannot open the SQLite store {describe(url)!r}: {reason}. Check that the directory "
            "exists and is writable, or choose another store URL ([store] url in cosell.toml)"
        )
    return StoreUnavailableError(
        f"cannot connect to the PostgreSQL store {describe(url)!r}: {reason}. Check that the "
        "server is running and reachable, that the database exists, and the user name and "
        "password in the store URL ([store] url in cosell.toml)"
    )


def refused(url: URL, error: exc.DBAPIError) -> StoreError:
    """The error to raise when the database refused a migration (not a connection failure).

    Args:
        url: The store URL (shown with its password masked).
        error: What SQLAlchemy raised, e.g. a ProgrammingError for a missing privilege.

    Returns:
        A `StoreError` saying what to check.
    """
    if isinstance(error, exc.OperationalError):
        return unavailable(url, error)
    reason = _first_line(error)
    return StoreError(
        f"the store {describe(url)!r} refused cosell's schema migration: {reason}. The user in "
        "the store URL needs permission to create tables in the database (or run "
        "`cosell db upgrade` once as a user who has it)"
    )


def _first_line(error: exc.DBAPIError) -> str:
    reason = str(error.orig) if error.orig is not None else str(error)
    return reason.strip().splitlines()[0] if reason.strip() else type(error).__name__
