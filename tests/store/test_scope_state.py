"""Failures by scope in the store: pauses (audited), held keys, circuits, every deal counted once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cosell.clock import ManualClock
from cosell.store import Circuit, LinkNotFoundError, Store, SyncStatus


def test_pausing_all_sync_and_one_deal_is_kept_and_audited(store: Store) -> None:
    link = store.create_link(
        sobject="Opportunity", referral_id="r1", record_id="006000000000001AAA"
    )

    assert store.set_pause(None, paused=True, by="ada", reason="org migration")
    assert not store.set_pause(None, paused=True, by="bob")  # already paused: nothing recorded
    assert store.set_pause(link.id, paused=True, by="bob")

    pauses = store.pauses()
    assert [(p.target, p.by, p.reason) for p in pauses] == [
        (None, "ada", "org migration"),
        (link.id, "bob", None),
    ]
    assert [e.message for e in store.audit(None)] == ["all sync paused by ada: org migration"]
    assert [e.message for e in store.audit(link.id)] == ["sync of this deal paused by bob"]

    assert store.set_pause(None, paused=False, by="ada")
    assert not store.set_pause(None, paused=False, by="ada")
    assert [p.target for p in store.pauses()] == [link.id]
    assert store.audit(None)[0].message == "all sync resumed by ada"
    assert store.audit(None)[0].details == {"by": "ada", "paused": False}


def test_pausing_a_deal_that_is_not_linked_is_refused(store: Store) -> None:
    with pytest.raises(LinkNotFoundError):
        store.set_pause("0190000000000000000000nolink", paused=True, by="ada")
    assert store.pauses() == []


def test_held_keys_keep_their_first_time_until_released(store: Store, clock: ManualClock) -> None:
    first = clock.now()
    store.hold_keys(["referral:a", "referral:b"], side="partner_center")
    clock.advance(60)
    store.hold_keys(["referral:a"], side="salesforce")  # held again: the side changes, not since

    held = {h.key: (h.side, h.since) for h in store.held_keys()}
    assert held == {"referral:a": ("salesforce", first), "referral:b": ("partner_center", first)}
    assert [h.key for h in store.held_keys(side="partner_center")] == ["referral:b"]
    store.release_keys(["referral:a", "referral:b"])
    assert store.held_keys() == []


def test_a_circuit_is_stored_per_side(store: Store, clock: ManualClock) -> None:
    assert store.circuits() == {}
    opened = Circuit(
        side="salesforce",
        state="open",
        cause="Salesforce refuses cosell's sign-in",
        fix="run cosell connect salesforce",
        since=clock.now(),
        next_probe_at=clock.now() + timedelta(seconds=30),
    )
    store.set_circuit(opened)
    assert store.circuits() == {"salesforce": opened}
    closed = Circuit(side="salesforce", state="closed", cause="", fix="", since=clock.now())
    store.set_circuit(closed)
    assert not store.circuits()["salesforce"].is_open


def test_every_link_is_counted_once_and_the_counts_add_up(store: Store, clock: ManualClock) -> None:
    synced = store.create_link(
        sobject="Opportunity", referral_id="s", record_id="006000000000001AAA"
    )
    store.update_link(synced.id, sync_status=SyncStatus.SYNCED)
    waiting = store.create_link(
        sobject="Opportunity", referral_id="w", record_id="006000000000002AAA"
    )
    store.update_link(waiting.id, sync_status=SyncStatus.SYNCED)
    parked = store.create_link(
        sobject="Opportunity", referral_id="e", record_id="006000000000003AAA"
    )
    store.update_link(parked.id, sync_status=SyncStatus.ERROR, last_error="no solution")
    paused = store.create_link(
        sobject="Opportunity", referral_id="p", record_id="006000000000004AAA"
    )
    store.update_link(paused.id, sync_status=SyncStatus.ERROR, last_error="no contact")
    store.create_link(sobject="Opportunity", referral_id="n")  # being created: Pending
    store.set_pause(paused.id, paused=True, by="ada")
    clock.advance(10)
    # A change of a Synced link waits for a throttled side: Pending, not Synced.
    store.hold_keys([f"salesforce:Opportunity:{waiting.record_id}"], side="partner_center")

    counts = store.deal_counts()
    assert counts.as_dict() == {"Synced": 1, "Pending": 2, "Error": 1, "Paused": 1}
    assert counts.total == len(store.links(limit=100))
    assert counts.oldest_unsynced_at is not None
