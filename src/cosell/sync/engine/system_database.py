"""The engine's SQLite system database: DBOS's engine, with the store's WAL settings.

DBOS creates its own SQLAlchemy engine for a SQLite system database with the file's default
rollback journal and `synchronous=FULL`, and begins every transaction `IMMEDIATE` (writers, and
readers too, take the write lock). Each of the several commits of a reconcile workflow (enqueue,
dequeue, step results, outcome) then fsyncs the journal and the database while every other
thread of the worker waits for the lock: under a burst of webhooks most of a reconcile's
latency was that wait (profiled with py-spy, `bench/latency.py`).

So cosell hands DBOS an engine of its own (`system_database_engine`): the same pool and
per-connection settings as DBOS's (IMMEDIATE transactions, a 30 s busy timeout, foreign keys),
plus the store's: the file in WAL mode (`cosell.store.database.enable_wal`) and
`synchronous=NORMAL`, which in WAL mode survives any crash of the process (only an OS crash or
power cut may undo the last commits) and makes a commit an append to the WAL instead of
fsyncs. The engine that made it disposes of it (DBOS does not dispose of an engine it was
given). PostgreSQL system databases keep DBOS's own engine.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event

from cosell.store.database import SQLITE_BUSY_TIMEOUT_MS, enable_wal

POOL_SIZE: Final = 20  # DBOS's own pool for its system database
POOL_TIMEOUT_S: Final = 30


def sqlite_engine(url: str) -> sa.Engine:
    """An engine for DBOS's SQLite system database at `url` (see the module docstring).

    Args:
        url: a `sqlite:///<file>` URL (`engine.system_database_url`).

    Returns:
        The engine, not yet connected.
    """
    engine = sa.create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = "IMMEDIATE"  # as DBOS's: writers serialize
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            enable_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine
