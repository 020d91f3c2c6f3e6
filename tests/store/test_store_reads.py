"""The store's read-only summaries (`summary`, `failed_links`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, timedelta

from cosell.clock import ManualClock
from cosell.store import Store, SyncStatus

OPP = "Opportunity"
REFERRALS = [f"2a1c5f0e-8d0b-4f4e-9b7a-5d1f3c2e7a1{n}" for n in range(5)]
OPP_IDS = [f"00600000000000{n}AAA" for n in range(1, 6)]


def test_an_empty_store_summarises_to_zeros(store: Store) -> None:
    summary = store.summary()
    assert summary.links_by_status == {"Synced": 0, "Pending": 0, "Error": 0}
    assert summary.never_synced == 0
    assert summary.oldest_pending_at is None
    assert summary.last_synced_at is None
    assert summary.newest_audit_at is None
    assert summary.inbox_pending == 0
    assert summary.oldest_event_at is None
    assert summary.cursors == ()
    assert store.failed_links() == []


def test_summary_counts_links_times_inbox_and_cursors(store: Store, clock: ManualClock) -> None:
    start = clock.now()
    links = [
        store.create_link(sobject=OPP, record_id=record, referral_id=referral)
        for record, referral in zip(OPP_IDS, REFERRALS, strict=True)
    ]
    clock.advance(10)
    store.update_link(links[0].id, sync_status=SyncStatus.SYNCED, last_synced_at=clock.now())
    clock.advance(10)
    synced_at = clock.now()
    store.update_link(links[1].id, sync_status=SyncStatus.SYNCED, last_synced_at=synced_at)
    store.update_link(links[2].id, sync_status=SyncStatus.ERROR, last_error="bad country")
    store.record_audit(links[2].id, "refused: bad country")
    store.record_event(source="partner_center", event_id="e1", key="referral:x", payload=b"{}")
    clock.advance(5)
    store.record_event(source="partner_center", event_id="e2", key="referral:y", payload=b"{}")
    store.record_event(source="partner_center", event_id="e3", key="referral:z", payload=b"{}")
    store.complete_event("e1")
    store.set_cursor("poll:partner_center", '{"at": null, "seen": []}')
    clock.advance(5)
    store.set_cursor("poll:salesforce:Opportunity", "x")

    summary = store.summary()
    assert summary.links_by_status == {"Synced": 2, "Pending": 2, "Error": 1}
    assert summary.never_synced == 3
    # links[3] and links[4] are Pending and unchanged since they were made.
    assert summary.oldest_pending_at == start
    assert summary.oldest_pending_at is not None
    assert summary.oldest_pending_at.tzinfo is UTC
    assert summary.last_synced_at == synced_at
    assert summary.newest_audit_at == synced_at
    assert summary.inbox_pending == 2
    assert summary.oldest_event_at == synced_at + timedelta(seconds=5)
    assert [(c.name, c.updated_at) for c in summary.cursors] == [
        ("poll:partner_center", synced_at + timedelta(seconds=5)),
        ("poll:salesforce:Opportunity", synced_at + timedelta(seconds=10)),
    ]
    assert summary.cursors[1].value == "x"


def test_summary_and_failures_see_only_their_tenant(
    database_url: str, store: Store, clock: ManualClock
) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_IDS[0], referral_id=REFERRALS[0])
    store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error="boom")
    store.set_cursor("poll:partner_center", "{}")
    with Store.open(database_url, clock=clock, tenant=f"{store.tenant}-other") as other:
        summary = other.summary()
        assert summary.links_by_status == {"Synced": 0, "Pending": 0, "Error": 0}
        assert summary.cursors == ()
        assert other.failed_links() == []


def test_failed_links_are_newest_first_and_bounded(store: Store, clock: ManualClock) -> None:
    links = [
        store.create_link(sobject=OPP, record_id=record, referral_id=referral)
        for record, referral in zip(OPP_IDS, REFERRALS, strict=True)
    ]
    for number, link in enumerate(links[:4]):
        clock.advance(1)
        store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error=f"error {number}")
    clock.advance(1)
    store.update_link(links[0].id, last_error="error 0, again")  # changed last: first
    failed = store.failed_links(limit=3)
    assert [link.last_error for link in failed] == ["error 0, again", "error 3", "error 2"]
    assert len(store.failed_links()) == 4
