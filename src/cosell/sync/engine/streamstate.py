"""The CDC change stream's health as stored, and whether it spares the Salesforce poll.

Kept apart from `changestream` (which loads gRPC and Avro) so that the engine's poll
schedule, `cosell status` and `/metrics` read it without loading either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cosell.store import Store

STATE_CURSOR = "cdc:stream"


@dataclass(frozen=True)
class StreamState:
    """The stream's health as stored (`cdc:stream`) and shown by status, console and metrics.

    Attributes:
        state: `live` (events arrive; the poller rests), `down` (the poller covers), or
            `starting`.
        since: when it entered this state.
        live_until: until when the scheduled Salesforce poll may skip its run.
        error: why it is down, in words that say what to do.
    """

    state: str
    since: datetime
    live_until: datetime | None = None
    error: str | None = None

    def dump(self) -> str:
        """As stored."""
        return json.dumps(
            {
                "state": self.state,
                "since": self.since.isoformat(),
                "live_until": self.live_until.isoformat() if self.live_until else None,
                "error": self.error,
            }
        )

    @classmethod
    def load(cls, text: str | None) -> StreamState | None:
        """The stored state, or None (never ran, or unreadable)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            until = data.get("live_until")
            return cls(
                state=str(data["state"]),
                since=datetime.fromisoformat(data["since"]),
                live_until=datetime.fromisoformat(until) if until else None,
                error=data.get("error"),
            )
        except (ValueError, KeyError, TypeError):
            return None


def stream_state(store: Store) -> StreamState | None:
    """The change stream's last stored state (None: CDC never ran here)."""
    return StreamState.load(store.cursor(STATE_CURSOR))


def covers(store: Store, now: datetime) -> bool:
    """Whether a live change stream makes the scheduled Salesforce poll unnecessary now."""
    state = stream_state(store)
    return bool(
        state is not None
        and state.state == "live"
        and state.live_until is not None
        and state.live_until > now
    )
