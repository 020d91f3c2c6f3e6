"""A parked deal's own retry schedule: capped exponential backoff per link (pure).

A deal is parked (`run.park`) for one of two kinds of reason:

- one that **can go away** by itself or by an edit cosell may not see as a change of the
  opportunity: a Partner Center rule the deal breaks (a missing solution or contact, which are
  child records), a record Salesforce refuses (a validation rule an admin may relax), a
  give-up after an outage, a session or sign-in problem. Such a link gets a `retry_at`: the
  engine's poll notifies it when that time comes (`Store.due_retries`), and every retry that
  fails again doubles the wait, from `FIRST_RETRY_SECONDS` up to `MAX_RETRY_SECONDS`;
- one that **cannot go away** without a change of the record or of the mapping (a value the
  mapping cannot convert, a record deleted or no longer visible, a bug): `retry_at` is None,
  and the link waits for its next change (or the periodic sweep) as before.

Only a retry that was *due* moves the schedule on (the poll that hands it out moves it,
`schedule_after_notify`; a park past the due time too): a reconcile caused by a change (or by
the echo of cosell's own status write) that meets the same problem again leaves it as it is,
so edits never use up the backoff. Each link's waits are spread by up to `JITTER` of themselves,
derived from the link's id (deterministic: no clock, no random source), so the deals an
outage parked together are not all retried in the same poll.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cosell.store.types import Link, SyncStatus

FIRST_RETRY_SECONDS: Final = 30.0  # a few poll intervals: a blip is over, a storm is not fed
MAX_RETRY_SECONDS: Final = 3600.0  # the bound: a parked deal is tried at least hourly
JITTER: Final = 0.1  # a tenth of each wait, spread over the links


@dataclass(frozen=True)
class RetrySchedule:
    """A parked link's schedule after a park.

    Attributes:
        retries: scheduled retries made since the link was parked.
        retry_at: when the next is due; None when the link waits for a change.
    """

    retries: int
    retry_at: datetime | None


def retry_delay(retries: int, *, link_id: str = "") -> float:
    """Seconds from a park to the next retry, after `retries` scheduled retries failed.

    `FIRST_RETRY_SECONDS * 2**retries`, at most `MAX_RETRY_SECONDS`, plus up to `JITTER` of it
    chosen by the link's id.
    """
    ceiling = FIRST_RETRY_SECONDS * 2.0 ** min(max(retries, 0), 32)  # 2**32: far past the cap
    wait = min(ceiling, MAX_RETRY_SECONDS)
    spread = (zlib.crc32(link_id.encode()) % 1000) / 1000.0 if link_id else 0.0
    return wait * (1.0 + JITTER * spread)


def schedule_after_park(link: Link, *, now: datetime, lasting: bool) -> RetrySchedule:
    """The link's retry schedule once it is parked (again) at `now`.

    Args:
        link: the link as it was before this park.
        now: the time of the park.
        lasting: the reason cannot go away without a change: no scheduled retry.

    Returns:
        The schedule to store with the park.
    """
    if lasting:
        return RetrySchedule(0, None)
    parked = link.sync_status == SyncStatus.ERROR and link.retry_at is not None
    if parked and link.retry_at is not None and now < link.retry_at:
        return RetrySchedule(link.retries, link.retry_at)  # not a due retry: keep the schedule
    retries = link.retries + 1 if parked else 0
    return RetrySchedule(retries, now + timedelta(seconds=retry_delay(retries, link_id=link.id)))


def schedule_after_notify(link: Link, *, now: datetime) -> RetrySchedule:
    """The schedule of a parked link whose due retry the poll hands out now.

    The poll moves the schedule on as it notifies the key, whatever the reconcile then does:
    one that fails again finds the next retry already set (and keeps it), one that syncs clears
    it, and one that ends without touching the link (skipped, busy) cannot leave a retry due
    in the past to be handed out at every poll.
    """
    retries = link.retries + 1
    return RetrySchedule(retries, now + timedelta(seconds=retry_delay(retries, link_id=link.id)))


def describe_retry(retry_at: datetime | None, *, now: datetime) -> str:
    """How a parked link's next retry reads to a person: `in 4 min (at 00:41 UTC)`.

    Returns:
        `waits for a change` when no retry is scheduled.
    """
    if retry_at is None:
        return "waits for a change"
    return f"{in_words(retry_at - now)} (at {retry_at:%H:%M} UTC)"


def in_words(delta: timedelta) -> str:
    """A wait in words: `now`, `in 40 s`, `in 4 min`, `in 1 h 5 min`."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "due now"
    if seconds < 90:
        return f"in {seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"in {minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"in {hours} h {rest} min" if rest else f"in {hours} h"


def shown_message(message: str, retry_at: datetime | None, *, limit: int) -> str:
    """The parked message as the record shows it, with when cosell tries again by itself.

    Args:
        message: the parked message.
        retry_at: the next scheduled retry (None: the message alone).
        limit: the field's length: the message is shortened so that the time still fits.
    """
    if retry_at is None:
        return message[:limit]
    suffix = f" (cosell retries by itself at {retry_at:%H:%M} UTC)"
    if len(message) + len(suffix) > limit:
        message = message[: max(limit - len(suffix) - 1, 0)] + "…"
    return f"{message}{suffix}"
