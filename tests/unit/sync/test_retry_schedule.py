"""A parked deal's retry schedule (`cosell.sync.plan.retry`): pure, on given times."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cosell.store.types import Link, LinkId, SyncStatus
from cosell.sync.plan.record import parked_record
from cosell.sync.plan.retry import (
    FIRST_RETRY_SECONDS,
    JITTER,
    MAX_RETRY_SECONDS,
    describe_retry,
    in_words,
    retry_delay,
    schedule_after_notify,
    schedule_after_park,
    shown_message,
)

NOW = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)


def _link(**changes: object) -> Link:
    link = Link(
        id=LinkId("0193f0c0aa00" + "0" * 20),
        tenant="default",
        referral_id=None,
        engagement_id=None,
        sobject="Opportunity",
        record_id="0062I0000000001QAA",
        sync_status=SyncStatus.SYNCED,
        last_error=None,
        created_at=NOW,
        updated_at=NOW,
        last_synced_at=NOW,
    )
    return replace(link, **changes)  # type: ignore[arg-type]


def test_the_wait_doubles_from_the_first_retry_up_to_an_hour() -> None:
    waits = [retry_delay(n) for n in range(10)]
    assert waits[:4] == [30.0, 60.0, 120.0, 240.0]
    assert waits[-1] == MAX_RETRY_SECONDS
    assert all(b >= a for a, b in itertools.pairwise(waits))
    assert retry_delay(10_000) == MAX_RETRY_SECONDS  # no overflow for a deal parked for years


def test_the_jitter_is_per_link_bounded_and_stable() -> None:
    ids = [f"{n:032x}" for n in range(50)]
    waits = {retry_delay(0, link_id=i) for i in ids}
    assert len(waits) > 10  # deals parked together are spread out
    assert all(FIRST_RETRY_SECONDS <= w <= FIRST_RETRY_SECONDS * (1 + JITTER) for w in waits)
    assert retry_delay(3, link_id=ids[7]) == retry_delay(3, link_id=ids[7])
    assert retry_delay(99, link_id=ids[7]) <= MAX_RETRY_SECONDS * (1 + JITTER)


def test_a_first_park_schedules_the_first_retry() -> None:
    schedule = schedule_after_park(_link(), now=NOW, lasting=False)
    assert schedule.retries == 0
    assert schedule.retry_at == NOW + timedelta(seconds=retry_delay(0, link_id=_link().id))


def test_a_due_retry_that_fails_again_doubles_the_wait() -> None:
    due = NOW + timedelta(seconds=31)
    parked = _link(sync_status=SyncStatus.ERROR, last_error="x", retries=0, retry_at=due)
    later = due + timedelta(seconds=2)
    schedule = schedule_after_park(parked, now=later, lasting=False)
    assert schedule.retries == 1
    assert schedule.retry_at == later + timedelta(seconds=retry_delay(1, link_id=parked.id))


def test_a_change_before_the_retry_is_due_keeps_the_schedule() -> None:
    due = NOW + timedelta(minutes=8)
    parked = _link(sync_status=SyncStatus.ERROR, last_error="x", retries=4, retry_at=due)
    schedule = schedule_after_park(parked, now=NOW, lasting=False)
    assert (schedule.retries, schedule.retry_at) == (4, due)


def test_a_lasting_reason_schedules_no_retry() -> None:
    parked = _link(sync_status=SyncStatus.ERROR, last_error="x", retries=2, retry_at=NOW)
    schedule = schedule_after_park(parked, now=NOW, lasting=True)
    assert (schedule.retries, schedule.retry_at) == (0, None)


def test_a_link_that_waited_for_a_change_starts_its_backoff_over_when_the_reason_can_pass() -> None:
    parked = _link(sync_status=SyncStatus.ERROR, last_error="gone", retries=0, retry_at=None)
    schedule = schedule_after_park(parked, now=NOW, lasting=False)
    assert schedule.retries == 0
    assert schedule.retry_at is not None


def test_parking_again_before_the_retry_is_due_records_nothing() -> None:
    first = parked_record(_link(), "Needs a solution", now=NOW)
    assert first is not None
    assert first.link["retry_at"] is not None
    assert first.audit
    assert first.audit[0][0] == "error: Needs a solution"
    parked = _link(
        sync_status=SyncStatus.ERROR,
        last_error="Needs a solution",
        retries=first.link["retries"],
        retry_at=first.link["retry_at"],
    )
    assert parked_record(parked, "Needs a solution", now=NOW + timedelta(seconds=5)) is None
    # The due retry moves the schedule on, without a second audit entry for the same error.
    due = parked_record(parked, "Needs a solution", now=NOW + timedelta(seconds=40))
    assert due is not None
    assert due.audit == ()
    assert due.link["retries"] == 1


def test_the_record_shows_when_cosell_tries_again_within_the_field() -> None:
    at = datetime(2026, 12, 8, 0, 41, tzinfo=UTC)
    shown = shown_message("Needs a solution.", at, limit=255)
    assert shown == "Needs a solution. (cosell retries by itself at 00:41 UTC)"
    long = shown_message("x" * 300, at, limit=255)
    assert len(long) == 255
    assert long.endswith("(cosell retries by itself at 00:41 UTC)")
    assert shown_message("y" * 300, None, limit=255) == "y" * 255


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(-5, "due now"), (0, "due now"), (40, "in 40 s"), (240, "in 4 min"), (3900, "in 1 h 5 min")],
)
def test_waits_read_as_words(seconds: int, words: str) -> None:
    assert in_words(timedelta(seconds=seconds)) == words


def test_a_link_without_a_retry_waits_for_a_change() -> None:
    assert describe_retry(None, now=NOW) == "waits for a change"
    at = NOW + timedelta(minutes=4)
    assert describe_retry(at, now=NOW) == "in 4 min (at 00:04 UTC)"


def test_handing_out_a_due_retry_moves_the_schedule_on_so_a_park_then_keeps_it() -> None:
    due = NOW + timedelta(seconds=31)
    parked = _link(sync_status=SyncStatus.ERROR, last_error="x", retries=1, retry_at=due)
    later = due + timedelta(seconds=1)
    notified = schedule_after_notify(parked, now=later)
    assert notified.retries == 2
    assert notified.retry_at == later + timedelta(seconds=retry_delay(2, link_id=parked.id))
    # The retry's reconcile fails again: the park finds the next retry set and keeps it.
    moved = replace(parked, retries=notified.retries, retry_at=notified.retry_at)
    again = schedule_after_park(moved, now=later + timedelta(seconds=3), lasting=False)
    assert (again.retries, again.retry_at) == (notified.retries, notified.retry_at)
