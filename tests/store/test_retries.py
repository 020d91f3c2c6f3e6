"""Parked links' retry schedule in the store: due on the injected clock, cleared by a sync."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cosell.clock import ManualClock
from cosell.store import Store, SyncStatus
from cosell.store.types import Record


def _parked(
    store: Store, clock: ManualClock, record_id: str, message: str, retry_in: float | None
) -> str:
    link = store.create_link(sobject="Opportunity", record_id=record_id)
    retry_at = None if retry_in is None else clock.now() + timedelta(seconds=retry_in)
    store.update_link(
        link.id, sync_status=SyncStatus.ERROR, last_error=message, retries=2, retry_at=retry_at
    )
    return link.id


def test_a_parked_link_is_due_at_its_retry_time(store: Store, clock: ManualClock) -> None:
    soon = _parked(store, clock, "0062I0000000001QAA", "Needs a solution", 30)
    later = _parked(store, clock, "0062I0000000002QAA", "Refused by a rule", 90)
    _parked(store, clock, "0062I0000000003QAA", "Deleted", None)  # waits for a change

    assert store.due_retries() == []
    assert store.next_retry_at() == clock.now() + timedelta(seconds=30)
    clock.advance(30)
    assert [link.id for link in store.due_retries()] == [soon]
    clock.advance(60)
    assert [link.id for link in store.due_retries()] == [soon, later]


def test_a_link_that_syncs_has_no_retry_left(store: Store, clock: ManualClock) -> None:
    link_id = _parked(store, clock, "0062I0000000001QAA", "Needs a solution", 0)
    synced = store.record(
        [Record(link_id, link={"sync_status": SyncStatus.SYNCED, "last_error": None})]
    )[0]
    assert (synced.retries, synced.retry_at) == (0, None)
    assert store.due_retries() == []
    assert store.next_retry_at() is None


def test_a_sign_in_that_works_again_makes_its_parked_links_due_now(
    store: Store, clock: ManualClock
) -> None:
    refused = _parked(
        store, clock, "0062I0000000001QAA", "gave up: Salesforce refuses the sign-in 50%", 3000
    )
    other = _parked(store, clock, "0062I0000000002QAA", "Needs a solution", 3000)

    changed = store.retry_parked(containing="refuses the sign-in 50%")  # % is text, not LIKE

    assert [link.id for link in changed] == [refused]
    assert [link.id for link in store.due_retries()] == [refused]
    assert store.get_link(other) is not None
    again = store.get_link(refused)
    assert again is not None
    assert (again.retries, again.retry_at) == (0, clock.now())


def test_retry_fields_are_checked(store: Store, clock: ManualClock) -> None:
    link = store.create_link(sobject="Opportunity", record_id="0062I0000000001QAA")
    with pytest.raises(ValueError, match="negative"):
        store.update_link(link.id, retries=-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.update_link(link.id, retry_at=clock.now().replace(tzinfo=None))
