"""The console's judgement of sync health, and advice for a link's last error.

Health is `healthy`, `degraded` or `failing`, with every reason that made it so:

```
failing    a side's circuit is open (its cause and fix are the reason); a quarter or more
           of the links (at least 5) in Error; a webhook event pending for over 30 min (the
           inbox drainer is stuck); a change unsynced for over 2 h (unless all sync is paused)
degraded   all sync paused by hand (`cosell pause`: by whom, since when, why); any link in
           Error; a webhook event pending for over 5 min; a change unsynced (pending, or held
           by a circuit or a pause) for over 15 min; 5 or more errors in the last 24 h; the
           Salesforce change stream (CDC) down
healthy    none of these
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from cosell.store.console_queries import Overview
from cosell.sync.engine.streamstate import STATE_CURSOR, StreamState

HEALTHY: Final = "healthy"
DEGRADED: Final = "degraded"
FAILING: Final = "failing"
SIDE_NAMES: Final = {"partner_center": "Partner Center", "salesforce": "Salesforce"}


@dataclass(frozen=True)
class Health:
    """The verdict and its reasons (none when healthy)."""

    state: str
    reasons: list[str] = field(default_factory=list)


def _age(now: datetime, then: datetime | None) -> timedelta | None:
    return None if then is None else now - then


def _minutes(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def judge(overview: Overview, *, now: datetime) -> Health:
    """Health from the overview's figures (see the module docstring)."""
    failing: list[str] = []
    degraded: list[str] = []
    for side, circuit in sorted(overview.circuits.items()):
        if circuit.is_open:
            failing.append(
                f"{SIDE_NAMES.get(side, side)} is paused by its circuit breaker since "
                f"{circuit.since:%Y-%m-%d %H:%M} UTC: {circuit.cause} — {circuit.fix}"
            )
    paused = overview.all_paused
    if paused is not None:
        why = f": {paused.reason}" if paused.reason else ""
        degraded.append(
            f"all sync paused by {paused.by} since {paused.since:%Y-%m-%d %H:%M} UTC{why} "
            "(`cosell resume` or the console resumes it)"
        )
    errors = overview.links_by_status.get("Error", 0)
    if errors:
        share = errors / max(overview.total_links, 1)
        message = f"{errors} of {overview.total_links} links are in Error"
        (failing if errors >= 5 and share >= 0.25 else degraded).append(message)
    event_age = _age(now, overview.oldest_event_at)
    if event_age is not None:
        message = f"a webhook event has waited {_minutes(event_age)} to be handled"
        if event_age > timedelta(minutes=30):
            failing.append(message)
        elif event_age > timedelta(minutes=5):
            degraded.append(message)
    oldest = overview.deals.oldest_unsynced_at if overview.deals else overview.oldest_pending_at
    pending_age = _age(now, oldest)
    if pending_age is not None:
        message = f"a change has been pending for {_minutes(pending_age)}"
        if pending_age > timedelta(hours=2) and paused is None:
            failing.append(message)
        elif pending_age > timedelta(minutes=15):  # while paused by hand, waiting is expected
            degraded.append(message)
    stream = next((c for c in overview.cursors if c.name == STATE_CURSOR), None)
    state = StreamState.load(stream.value) if stream is not None else None
    if state is not None and state.state == "down":
        degraded.append(
            f"Salesforce change events (CDC) are down, the poller covers meanwhile: {state.error}"
        )
    if overview.errors_24h >= 5:
        degraded.append(f"{overview.errors_24h} reconcile errors in the last 24 h")
    if failing:
        return Health(FAILING, failing + degraded)
    if degraded:
        return Health(DEGRADED, degraded)
    return Health(HEALTHY)


_ADVICE: Final = (
    (
        ("invalid_grant", "token", "401", "unauthorized", "expired"),
        "A connection's credentials were refused. Run `cosell check` to see which side, "
        "renew the credential (or run `cosell connect` again), then retry.",
    ),
    (
        ("403", "forbidden", "insufficient_access", "permission"),
        "cosell's user may not do this. Give the integration user the cosell permission set "
        "in Salesforce (or the referral role in Partner Center), then retry.",
    ),
    (
        ("field_custom_validation", "validation", "required_field", "invalid_field", "400"),
        "One side refused the values. Correct the record (the message names the field) or "
        "the mapping (`cosell mapping check`), then retry.",
    ),
    (
        ("404", "not found", "entity_is_deleted", "deleted"),
        "The record or referral no longer exists on one side. Restore it, or leave the link "
        "in Error: retrying will not help until it is back.",
    ),
    (
        ("429", "rate", "limit", "timeout", "timed out", "503", "502", "unavailable"),
        "The API was busy or unreachable. This usually clears by itself; retry once the "
        "service answers again.",
    ),
)
DEFAULT_ADVICE: Final = (
    "Read the message above and the audit trail below; fix the cause on the side it names, "
    "then retry. `cosell plan` with this deal's key shows what the next reconcile would write."
)


def advice(last_error: str | None) -> str | None:
    """What an admin should do about a link's last error (None when there is no error)."""
    if not last_error:
        return None
    text = last_error.lower()
    for needles, what in _ADVICE:
        if any(needle in text for needle in needles):
            return what
    return DEFAULT_ADVICE
