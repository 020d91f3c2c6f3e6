"""The sandbox's change log, shaped like Change Data Capture events (spec §4.1).

Every committed create, update, delete and undelete appends one event per record. All events of
one transaction (a single REST write, a whole sObject Collections call or a Composite request)
share a `transactionKey`, carry a `sequenceNumber` from 1 and the transaction's `commitNumber`.
Payloads follow CDC: a CREATE carries every non-null field, an UPDATE only the changed ones
(`changedFields`, with set-to-null fields also in `nulledFields`), a DELETE the header only;
`Id` is never in the payload (it is in `recordIds`).

Replay ids are opaque to readers: they increase, but with gaps (each commit reserves a block),
so a client cannot do arithmetic on them. Events older than the retention (72 hours, as the
event bus keeps them) are dropped as time passes on the sandbox clock; reading after a replay
id that has been dropped is an error the reader must handle by re-syncing, as with the real
Pub/Sub API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

RETENTION = timedelta(hours=72)  # CDC events stay on the event bus for 3 days (spec §4.1)
_COMMIT_GAP = 7  # replay ids skip ahead between commits so they cannot be read as counters


class ReplayIdExpiredError(ValueError):
    """The replay id given is older than the retention window."""


@dataclass(frozen=True)
class ChangeEvent:
    """One committed change to one record."""

    replay_id: int
    committed_at: datetime
    payload: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        """The event as the control API returns it."""
        return {"replayId": self.replay_id, "payload": self.payload}


@dataclass(frozen=True)
class PendingChange:
    """A change made inside a transaction, turned into an event when it commits."""

    entity_name: str
    record_id: str
    change_type: str  # CREATE, UPDATE, DELETE, UNDELETE
    changed_fields: tuple[str, ...]
    nulled_fields: tuple[str, ...]
    values: dict[str, Any]


class ChangeLog:
    """Committed changes in order, with 72-hour retention."""

    def __init__(self) -> None:
        self._events: list[ChangeEvent] = []
        self._last_replay_id = 0
        self._dropped_through = 0  # replay ids at or below this are gone
        self.commit_number = 0

    def append_commit(
        self,
        changes: list[PendingChange],
        *,
        committed_at: datetime,
        transaction_key: str,
        commit_user: str,
        change_origin: str,
        commit_millis: int,
    ) -> list[ChangeEvent]:
        """Append the events of one committed transaction and return them."""
        if not changes:
            return []
        self.commit_number += 1
        self._last_replay_id += _COMMIT_GAP
        events = []
        for sequence, change in enumerate(changes, start=1):
            self._last_replay_id += 1
            header = {
                "entityName": change.entity_name,
                "recordIds": [change.record_id],
                "changeType": change.change_type,
                "changeOrigin": change_origin,
                "transactionKey": transaction_key,
                "sequenceNumber": sequence,
                "commitTimestamp": commit_millis,
                "commitNumber": self.commit_number,
                "commitUser": commit_user,
                "changedFields": list(change.changed_fields),
                "nulledFields": list(change.nulled_fields),
                "diffFields": [],
            }
            payload: dict[str, Any] = {"ChangeEventHeader": header, **change.values}
            events.append(ChangeEvent(self._last_replay_id, committed_at, payload))
        self._events.extend(events)
        return events

    def append_gap(
        self,
        entity_name: str,
        change_type: str,
        record_ids: list[str],
        *,
        committed_at: datetime,
        commit_millis: int,
    ) -> ChangeEvent:
        """Append a gap event (GAP_CREATE ... GAP_UNDELETE, or GAP_OVERFLOW): a header only.

        Salesforce sends one when it could not describe a change (a gap) or when one
        transaction changed more records than it describes (an overflow, no record ids).
        """
        self.commit_number += 1
        self._last_replay_id += _COMMIT_GAP + 1
        header = {
            "entityName": entity_name,
            "recordIds": list(record_ids),
            "changeType": change_type,
            "changeOrigin": "",
            "transactionKey": f"gap-{self.commit_number:08x}",
            "sequenceNumber": 1,
            "commitTimestamp": commit_millis,
            "commitNumber": self.commit_number,
            "commitUser": "",
            "changedFields": [],
            "nulledFields": [],
            "diffFields": [],
        }
        event = ChangeEvent(self._last_replay_id, committed_at, {"ChangeEventHeader": header})
        self._events.append(event)
        return event

    def prune(self, now: datetime) -> None:
        """Drop events older than the retention window."""
        cutoff = now - RETENTION
        keep = 0
        while keep < len(self._events) and self._events[keep].committed_at < cutoff:
            keep += 1
        if keep:
            self._dropped_through = self._events[keep - 1].replay_id
            del self._events[:keep]

    def read(self, *, after: int | None, limit: int, now: datetime) -> list[ChangeEvent]:
        """Up to `limit` retained events with a replay id above `after` (all when None).

        Raises:
            ReplayIdExpiredError: events after `after` have already been dropped.
        """
        self.prune(now)
        if after is None:
            return self._events[:limit]
        if after < self._dropped_through:
            raise ReplayIdExpiredError(
                f"replay id {after} is older than the 72-hour retention of the change log; "
                "re-sync fully, then read from the latest replay id (omit `after` to start at "
                "the earliest retained event)"
            )
        return self.events_after(after)[:limit]

    def events_after(self, replay_id: int) -> list[ChangeEvent]:
        """Retained events above `replay_id`, without pruning (for persistence)."""
        lo, hi = 0, len(self._events)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._events[mid].replay_id <= replay_id:
                lo = mid + 1
            else:
                hi = mid
        return self._events[lo:]

    @property
    def latest_replay_id(self) -> int:
        """The highest replay id handed out (0 before the first change)."""
        return self._last_replay_id

    @property
    def dropped_through(self) -> int:
        """Replay ids at or below this have been dropped (retention, reset); 0 when none."""
        return self._dropped_through

    @property
    def earliest_replay_id(self) -> int | None:
        """The oldest retained event's replay id, or None when none is retained."""
        return self._events[0].replay_id if self._events else None

    def events(self) -> list[ChangeEvent]:
        """Every retained event (for persistence)."""
        return list(self._events)

    def snapshot(self) -> dict[str, int]:
        """Counters to persist alongside the events."""
        return {
            "last_replay_id": self._last_replay_id,
            "dropped_through": self._dropped_through,
            "commit_number": self.commit_number,
        }

    def restore(self, counters: dict[str, int], events: list[ChangeEvent]) -> None:
        """Continue from persisted counters and events."""
        self._last_replay_id = counters["last_replay_id"]
        self._dropped_through = counters["dropped_through"]
        self.commit_number = counters["commit_number"]
        self._events = sorted(events, key=lambda e: e.replay_id)

    def clear(self) -> None:
        """Forget every event (control API reset); replay ids keep increasing."""
        if self._events:
            self._dropped_through = self._events[-1].replay_id
        self._events = []
