"""`--data FILE`: the sandbox's state in SQLite, so that it survives a restart.

What is kept: every referral (one row each, in creation order; engagements are the referrals'
`engagementId`s, so they need no table of their own), the identity's snapshot (tenant,
credentials, refresh tokens, signing key), the webhook service's snapshot (registration, queue)
and how far the sandbox clock was advanced through the control API.

When it is written: `SandboxDatabase.save` is one transaction holding the referrals changed
since the last save (or "delete all" after a reset) and, when given, the two snapshots. The
sandbox calls it after every HTTP request that may have changed something (any method but
GET/HEAD, or a GET that expired referrals): after a Referrals API call with the changed
referrals only (the snapshots hold keys and a delivery log, too big to rewrite on every call of
a 10,000-referral backfill), after any other call with the snapshots too, and at shutdown with
everything. A crash loses at most the request in flight and the webhook deliveries queued since
the last full save.

The file is created on first use; a file that is not a sandbox database is refused with an
error that names it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS referrals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


class SandboxDataError(Exception):
    """The `--data` file cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class StoredState:
    """Everything read back from a data file."""

    referrals: list[dict[str, Any]]
    identity: dict[str, Any] | None
    webhooks: dict[str, Any] | None
    clock_advanced_seconds: float = 0.0

    def fingerprint(self) -> str:
        """A short digest of the stored state: it changes whenever the state does."""
        digest = hashlib.sha256()
        for referral in self.referrals:
            digest.update(f"{referral.get('id')}{referral.get('eTag')}".encode())
        digest.update(json.dumps([self.identity, self.webhooks], sort_keys=True).encode())
        return digest.hexdigest()[:16]  # 64 bits: enough to tell restarts apart


class SandboxDatabase:
    """One SQLite data file of a Partner Center sandbox."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One sandbox, one event loop: the connection is only used from that loop's thread,
            # but uvicorn may build the app in another thread than the one that serves it.
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif row[0] != str(SCHEMA_VERSION):
                raise SandboxDataError(
                    f"{path} was written by another version of the sandbox (schema {row[0]}, "
                    f"expected {SCHEMA_VERSION}); use a new --data file"
                )
        except sqlite3.DatabaseError as exc:
            raise SandboxDataError(
                f"cannot use {path} as the sandbox's --data file ({exc}); pass a new file name "
                "or a file this sandbox wrote"
            ) from exc
        except OSError as exc:
            raise SandboxDataError(f"cannot create {path}: {exc.strerror}") from exc

    def load(self) -> StoredState | None:
        """The stored state, or None when the file is new."""
        referrals = [
            json.loads(body)
            for (body,) in self._db.execute("SELECT body FROM referrals ORDER BY seq")
        ]
        state = {name: json.loads(body) for name, body in self._db.execute("SELECT * FROM state")}
        if not referrals and not state:
            return None
        return StoredState(
            referrals=referrals,
            identity=state.get("identity"),
            webhooks=state.get("webhooks"),
            clock_advanced_seconds=float(state.get("clock", {}).get("advanced_seconds", 0.0)),
        )

    def save(
        self,
        *,
        cleared: bool,
        referrals: list[dict[str, Any]],
        identity: dict[str, Any] | None,
        webhooks: dict[str, Any] | None,
        clock_advanced_seconds: float,
    ) -> None:
        """Write changed referrals and the snapshots in one transaction.

        Args:
            cleared: every stored referral is deleted first (after a reset).
            referrals: referrals created or changed since the last save.
            identity: the identity's snapshot; None keeps the stored one.
            webhooks: the webhook service's snapshot; None keeps the stored one.
            clock_advanced_seconds: total seconds the clock was advanced by the control API.
        """
        db = self._db
        db.execute("BEGIN")
        try:
            if cleared:
                db.execute("DELETE FROM referrals")
            db.executemany(
                "INSERT INTO referrals (id, body) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                [(r["id"], json.dumps(r, separators=(",", ":"))) for r in referrals],
            )
            state = [("clock", json.dumps({"advanced_seconds": clock_advanced_seconds}))]
            if identity is not None:
                state.append(("identity", json.dumps(identity)))
            if webhooks is not None:
                state.append(("webhooks", json.dumps(webhooks)))
            db.executemany(
                "INSERT INTO state (name, body) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                state,
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close the file."""
        self._db.close()
