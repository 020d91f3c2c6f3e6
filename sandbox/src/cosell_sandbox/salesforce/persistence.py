"""Keeping the sandbox's state in SQLite across restarts (`--data FILE`).

Three tables: `records` (one row per record and table, the row as JSON, its deletion time and
blob fields), `changes` (the retained change log) and `meta` (JSON values: id counters, the
change log's counters, the last timestamp handed out, the identity's snapshot, so tokens issued
before a restart still work after it).

Writes are incremental: each committed transaction saves the rows it touched (or removes rows
a rollback made disappear), the events it appended and the counters, in one SQLite transaction,
so the file is always a consistent picture of some commit. The connection runs in WAL mode.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from cosell_sandbox.salesforce.changelog import ChangeEvent
from cosell_sandbox.salesforce.values import format_datetime, parse_datetime

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    tbl TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    deleted_at TEXT,
    blobs TEXT,
    PRIMARY KEY (tbl, id)
);
CREATE TABLE IF NOT EXISTS changes (
    replay_id INTEGER PRIMARY KEY,
    committed_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

RowState = tuple[str, str, dict[str, Any] | None, datetime | None, dict[str, str] | None]


class SqliteState:
    """The sandbox's durable state in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a crash
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def is_empty(self) -> bool:
        """Whether nothing has been saved yet (a new sandbox)."""
        row = self._db.execute("SELECT COUNT(*) FROM meta").fetchone()
        return int(row[0]) == 0

    def meta(self) -> dict[str, Any]:
        """Every saved meta value."""
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def records(self) -> Iterable[RowState]:
        """Every saved record: (table, id, row, deleted_at, blobs)."""
        for tbl, rid, data, deleted_at, blobs in self._db.execute(
            "SELECT tbl, id, data, deleted_at, blobs FROM records"
        ):
            yield (
                tbl,
                rid,
                json.loads(data),
                parse_datetime(deleted_at) if deleted_at else None,
                json.loads(blobs) if blobs else None,
            )

    def changes(self) -> list[ChangeEvent]:
        """Every saved change event, in replay order."""
        return [
            ChangeEvent(replay_id, parse_datetime(at), json.loads(payload))
            for replay_id, at, payload in self._db.execute(
                "SELECT replay_id, committed_at, payload FROM changes ORDER BY replay_id"
            )
        ]

    def save(
        self,
        *,
        rows: Iterable[RowState],
        events: Iterable[ChangeEvent],
        meta: dict[str, Any],
        dropped_through: int | None = None,
    ) -> None:
        """Save one commit's rows (None: remove), events and meta values atomically."""
        db = self._db
        db.execute("BEGIN")
        try:
            for tbl, rid, row, deleted_at, blobs in rows:
                if row is None:
                    db.execute("DELETE FROM records WHERE tbl = ? AND id = ?", (tbl, rid))
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO records (tbl, id, data, deleted_at, blobs) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        tbl,
                        rid,
                        json.dumps(row),
                        format_datetime(deleted_at) if deleted_at else None,
                        json.dumps(blobs) if blobs else None,
                    ),
                )
            db.executemany(
                "INSERT OR REPLACE INTO changes (replay_id, committed_at, payload) "
                "VALUES (?, ?, ?)",
                [
                    (e.replay_id, format_datetime(e.committed_at), json.dumps(e.payload))
                    for e in events
                ],
            )
            if dropped_through is not None:
                db.execute("DELETE FROM changes WHERE replay_id <= ?", (dropped_through,))
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in meta.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def wipe(self) -> None:
        """Remove every record and event (control API reset); meta is rewritten by the caller."""
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM records")
        self._db.execute("DELETE FROM changes")
        self._db.execute("COMMIT")
