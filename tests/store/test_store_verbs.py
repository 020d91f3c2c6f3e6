"""Every verb of `Store`, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cosell.clock import ManualClock
from cosell.store import (
    AUDIT_ENTRIES_KEPT,
    LinkConflictError,
    LinkNotFoundError,
    Record,
    Store,
    StoreError,
    SyncStatus,
    record_key,
    referral_key,
)

OPP = "Opportunity"
OPP_ID = "006000000000001AAA"
OPP_ID_2 = "006000000000002AAA"
REFERRAL = "2a1c5f0e-8d0b-4f4e-9b7a-5d1f3c2e7a10"
REFERRAL_2 = "9f0e5a3c-1b2d-4c3e-8f7a-0a1b2c3d4e5f"


# -- links ------------------------------------------------------------------------------------


def test_create_link_and_find_it_both_ways(store: Store, clock: ManualClock) -> None:
    link = store.create_link(
        sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL, engagement_id="e1"
    )
    assert link.tenant == store.tenant
    assert (link.referral_id, link.engagement_id, link.sobject, link.record_id) == (
        REFERRAL,
        "e1",
        OPP,
        OPP_ID,
    )
    assert link.sync_status is SyncStatus.PENDING
    assert link.last_error is None
    assert link.created_at == link.updated_at == clock.now()
    assert link.created_at.tzinfo is UTC
    assert link.last_synced_at is None
    assert store.get_link(link.id) == link
    assert store.link_for_referral(REFERRAL) == link
    assert store.link_for_record(OPP, OPP_ID) == link
    assert link.keys == (referral_key(REFERRAL), record_key(OPP, OPP_ID))


def test_lookups_of_unknown_links_are_none(store: Store) -> None:
    assert store.get_link("0" * 32) is None
    assert store.link_for_referral(REFERRAL) is None
    assert store.link_for_record(OPP, OPP_ID) is None


def test_create_link_is_idempotent(store: Store, clock: ManualClock) -> None:
    first = store.create_link(sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL)
    clock.advance(5)
    assert store.create_link(sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL) == first
    assert store.create_link(sobject=OPP, record_id=OPP_ID) == first
    assert store.create_link(sobject=OPP, referral_id=REFERRAL) == first
    assert store.links() == [first]


def test_a_fifteen_character_record_id_is_the_same_record(store: Store) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID[:15], referral_id=REFERRAL)
    assert link.record_id == OPP_ID
    assert store.link_for_record(OPP, OPP_ID[:15]) == link
    assert store.create_link(sobject=OPP, record_id=OPP_ID) == link


def test_create_link_fills_in_the_missing_side(store: Store, clock: ManualClock) -> None:
    # An opportunity being shared: linked first, the referral id known after the POST.
    pending = store.create_link(sobject=OPP, record_id=OPP_ID)
    assert pending.referral_id is None
    clock.advance(1)
    done = store.create_link(sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL, engagement_id="e")
    assert done.id == pending.id
    assert (done.referral_id, done.engagement_id) == (REFERRAL, "e")
    assert done.updated_at == clock.now()
    # An incoming referral: linked first, the record id known after the upsert.
    incoming = store.create_link(sobject=OPP, referral_id=REFERRAL_2)
    assert incoming.record_id is None
    done = store.create_link(sobject=OPP, record_id=OPP_ID_2, referral_id=REFERRAL_2)
    assert done.id == incoming.id
    assert done.record_id == OPP_ID_2


def test_several_links_may_lack_the_same_side(store: Store) -> None:
    a = store.create_link(sobject=OPP, record_id=OPP_ID)
    b = store.create_link(sobject=OPP, record_id=OPP_ID_2)
    c = store.create_link(sobject=OPP, referral_id=REFERRAL)
    d = store.create_link(sobject=OPP, referral_id=REFERRAL_2)
    assert len({a.id, b.id, c.id, d.id}) == 4


def test_a_referral_linked_to_another_record_is_a_clear_error(store: Store) -> None:
    store.create_link(sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL)
    with pytest.raises(
        LinkConflictError, match=f"referral {REFERRAL} is already linked to {OPP} {OPP_ID}"
    ):
        store.create_link(sobject=OPP, record_id=OPP_ID_2, referral_id=REFERRAL)
    with pytest.raises(
        LinkConflictError, match=f"{OPP} {OPP_ID} is already linked to referral {REFERRAL}"
    ):
        store.create_link(sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL_2)
    with pytest.raises(LinkConflictError, match="already linked"):
        store.create_link(sobject="Lead", record_id=OPP_ID_2, referral_id=REFERRAL)
    assert len(store.links()) == 1


def test_a_referral_linked_to_another_object_is_a_clear_error(store: Store) -> None:
    store.create_link(sobject=OPP, referral_id=REFERRAL)
    with pytest.raises(
        LinkConflictError,
        match=f"referral {REFERRAL} is already linked to {OPP} \\(being created\\), not a new Lead",
    ):
        store.create_link(sobject="Lead", referral_id=REFERRAL)


def test_a_converted_lead_moves_its_link_to_the_opportunity(store: Store) -> None:
    link = store.create_link(sobject="Lead", record_id="00Q000000000001AAA", referral_id=REFERRAL)
    moved = store.update_link(link.id, sobject=OPP, record_id=OPP_ID)
    assert (moved.sobject, moved.record_id) == (OPP, OPP_ID)
    assert store.link_for_record("Lead", "00Q000000000001AAA") is None
    assert store.link_for_referral(REFERRAL) == moved
    with pytest.raises(ValueError, match="not a Salesforce object name"):
        store.update_link(link.id, sobject="")


def test_two_half_links_cannot_be_joined(store: Store) -> None:
    store.create_link(sobject=OPP, record_id=OPP_ID)
    store.create_link(sobject=OPP, referral_id=REFERRAL)
    with pytest.raises(LinkConflictError, match="cannot be linked to each other"):
        store.create_link(sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL)


def test_create_link_refuses_bad_arguments(store: Store) -> None:
    with pytest.raises(ValueError, match="record id, a referral id, or both"):
        store.create_link(sobject=OPP)
    with pytest.raises(ValueError, match="not a Salesforce object name"):
        store.create_link(sobject="Opp:ortunity", record_id=OPP_ID)
    with pytest.raises(ValueError, match="not a Salesforce record id"):
        store.create_link(sobject=OPP, record_id="006")


def test_create_links_makes_a_page_of_links_in_one_go(store: Store) -> None:
    before = store.create_link(sobject=OPP, referral_id=REFERRAL)
    made = store.create_links([(OPP, REFERRAL, "e1"), (OPP, REFERRAL_2, None)])
    assert [link.referral_id for link in made] == [REFERRAL, REFERRAL_2]
    assert made[0].id == before.id  # idempotent, as `create_link`
    assert made[0].engagement_id == "e1"  # the missing engagement id filled in
    assert made[1].sync_status is SyncStatus.PENDING
    assert store.link_for_referral(REFERRAL_2) == made[1]
    assert store.create_links([]) == []


def test_create_links_makes_none_when_one_conflicts(store: Store) -> None:
    store.create_link(sobject="Lead", referral_id=REFERRAL)
    with pytest.raises(LinkConflictError):
        store.create_links([(OPP, REFERRAL_2, None), (OPP, REFERRAL, None)])
    assert store.link_for_referral(REFERRAL_2) is None  # one transaction: nothing made


def test_update_link(store: Store, clock: ManualClock) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    clock.advance(60)
    synced_at = clock.now()
    updated = store.update_link(
        link.id,
        referral_id=REFERRAL,
        engagement_id="e1",
        sync_status="Synced",
        last_synced_at=synced_at,
    )
    assert updated.referral_id == REFERRAL
    assert updated.engagement_id == "e1"
    assert updated.sync_status is SyncStatus.SYNCED
    assert updated.last_synced_at == synced_at
    assert updated.updated_at == synced_at
    assert updated.created_at == link.created_at
    assert store.get_link(link.id) == updated
    errored = store.update_link(
        link.id, sync_status=SyncStatus.ERROR, last_error="Amount is required"
    )
    assert (errored.sync_status, errored.last_error) == (SyncStatus.ERROR, "Amount is required")
    assert errored.referral_id == REFERRAL  # untouched
    cleared = store.update_link(link.id, last_error=None, record_id=OPP_ID_2[:15])
    assert cleared.last_error is None
    assert cleared.record_id == OPP_ID_2
    assert store.link_for_record(OPP, OPP_ID) is None


def test_update_link_errors(store: Store) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    store.create_link(sobject=OPP, record_id=OPP_ID_2, referral_id=REFERRAL)
    with pytest.raises(
        LinkConflictError, match=f"referral {REFERRAL} already belongs to another link"
    ):
        store.update_link(link.id, referral_id=REFERRAL)
    with pytest.raises(LinkNotFoundError, match="there is no link"):
        store.update_link("0" * 32, sync_status="Synced")
    with pytest.raises(ValueError, match="not a sync status"):
        store.update_link(link.id, sync_status="Done")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.update_link(link.id, last_synced_at=datetime(2026, 1, 1))  # noqa: DTZ001
    assert store.get_link(link.id) == link


def test_links_pages_in_creation_order_and_filters_by_status(
    store: Store, clock: ManualClock
) -> None:
    created = []
    for n in range(5):
        clock.advance(1)
        created.append(store.create_link(sobject=OPP, referral_id=f"ref-{n}"))
    assert store.links() == created
    assert store.links(limit=2) == created[:2]
    assert store.links(limit=2, after=created[1].id) == created[2:4]
    assert store.links(after=created[-1].id) == []
    store.update_link(created[3].id, sync_status="Error", last_error="x")
    assert [link.id for link in store.links(status="Error")] == [created[3].id]
    assert len(store.links(status=SyncStatus.PENDING)) == 4


def test_tenants_do_not_see_each_other(database_url: str, clock: ManualClock, tenant: str) -> None:
    with (
        Store.open(database_url, clock=clock, tenant=tenant) as one,
        Store.open(database_url, clock=clock, tenant=tenant + "-other") as other,
    ):
        link = one.create_link(sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL)
        assert other.link_for_referral(REFERRAL) is None
        assert other.get_link(link.id) is None
        twin = other.create_link(sobject=OPP, record_id=OPP_ID, referral_id=REFERRAL)
        assert twin.id != link.id
        assert twin.tenant == tenant + "-other"
        one.set_cursor("pc", "a")
        assert other.cursor("pc") is None
        assert one.claim("k", owner="x", ttl_seconds=10)
        assert other.claim("k", owner="y", ttl_seconds=10)
        with pytest.raises(LinkNotFoundError):
            other.save_snapshot(link.id, {})


# -- snapshots --------------------------------------------------------------------------------


def test_snapshots_round_trip_json_values(store: Store) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    assert store.snapshot(link.id) is None
    values = {
        "name": "Contoso \u2013 Azure \U0001f680",
        "deal_value": "25000.00",
        "visibility": True,
        "notes": None,
    }
    store.save_snapshot(link.id, values)
    assert store.snapshot(link.id) == values
    store.save_snapshot(link.id, {"name": "Renamed"})
    assert store.snapshot(link.id) == {"name": "Renamed"}
    store.save_snapshot(link.id, {})
    assert store.snapshot(link.id) == {}


def test_save_snapshot_of_an_unknown_link(store: Store) -> None:
    with pytest.raises(LinkNotFoundError, match="there is no link"):
        store.save_snapshot("0" * 32, {"a": "b"})


# -- audit and conflicts -----------------------------------------------------------------------


def test_audit_is_newest_first_with_details(store: Store, clock: ManualClock) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    store.record_audit(
        link.id, "created", details={"calls": 2, "when": datetime(2026, 1, 1, tzinfo=UTC)}
    )
    clock.advance(1)
    store.record_audit(link.id, "synced")
    store.record_audit(None, "poller started")
    entries = store.audit(link.id)
    assert [entry.message for entry in entries] == ["synced", "created"]
    assert entries[0].at == clock.now()
    assert entries[1].at == clock.now() - timedelta(seconds=1)
    assert entries[1].details == {"calls": 2, "when": "2026-01-01T00:00:00+00:00"}
    assert entries[0].details == {}
    assert entries[0].link_id == link.id
    assert [entry.message for entry in store.audit(None)] == ["poller started"]
    assert [entry.message for entry in store.audit(link.id, limit=1)] == ["synced"]


def test_audit_keeps_the_newest_entries_per_link(store: Store) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    other = store.create_link(sobject=OPP, record_id=OPP_ID_2)
    store.record_audit(other.id, "other link")
    for n in range(AUDIT_ENTRIES_KEPT + 3):
        store.record_audit(link.id, f"entry {n}")
    kept = store.audit(link.id, limit=AUDIT_ENTRIES_KEPT + 10)
    assert len(kept) == AUDIT_ENTRIES_KEPT
    assert kept[0].message == f"entry {AUDIT_ENTRIES_KEPT + 2}"
    assert kept[-1].message == "entry 3"
    assert [entry.message for entry in store.audit(other.id)] == ["other link"]


def test_record_audit_of_an_unknown_link(store: Store) -> None:
    with pytest.raises(LinkNotFoundError):
        store.record_audit("0" * 32, "x")


def test_conflicts(store: Store, clock: ManualClock) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    other = store.create_link(sobject=OPP, record_id=OPP_ID_2)
    store.record_conflict(
        link.id,
        field="deal_value",
        partner_center="100.00",
        salesforce="200.00",
        base="50.00",
        winner="salesforce",
    )
    clock.advance(1)
    store.record_conflict(
        other.id,
        field="notes",
        partner_center=None,
        salesforce="x",
        base=None,
        winner="partner_center",
    )
    [first] = store.conflicts(link.id)
    assert (first.field, first.partner_center, first.salesforce, first.base, first.winner) == (
        "deal_value",
        "100.00",
        "200.00",
        "50.00",
        "salesforce",
    )
    assert first.link_id == link.id
    assert first.at == clock.now() - timedelta(seconds=1)
    everything = store.conflicts()
    assert [conflict.field for conflict in everything] == ["notes", "deal_value"]
    assert everything[0].partner_center is None
    assert everything[0].base is None
    assert store.conflicts(limit=1) == everything[:1]
    with pytest.raises(ValueError, match="winner"):
        store.record_conflict(
            link.id, field="f", partner_center="a", salesforce="b", base=None, winner="both"
        )
    with pytest.raises(LinkNotFoundError):
        store.record_conflict(
            "0" * 32, field="f", partner_center="a", salesforce="b", base=None, winner="salesforce"
        )


def test_conflict_values_keep_their_json_type(store: Store) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    store.record_conflict(
        link.id,
        field="visibility",
        partner_center=True,
        salesforce=False,
        base="false",
        winner="salesforce",
    )
    [conflict] = store.conflicts(link.id)
    assert conflict.partner_center is True
    assert conflict.salesforce is False
    assert conflict.base == "false"


# -- cursors ----------------------------------------------------------------------------------


def test_cursors_per_name(store: Store) -> None:
    assert store.cursor("partner_center") is None
    store.set_cursor("partner_center", "2026-01-05T09:00:00Z")
    store.set_cursor("salesforce:Opportunity", "2026-01-05T08:00:00Z")
    store.set_cursor("partner_center", "2026-01-05T10:00:00Z")
    assert store.cursor("partner_center") == "2026-01-05T10:00:00Z"
    assert store.cursor("salesforce:Opportunity") == "2026-01-05T08:00:00Z"


# -- inbox ------------------------------------------------------------------------------------


def test_record_event_is_idempotent_per_source(store: Store, clock: ManualClock) -> None:
    key = referral_key(REFERRAL)
    assert (
        store.record_event(source="partner_center", event_id="ev1", key=key, payload=b'{"a":1}')
        is True
    )
    assert (
        store.record_event(source="partner_center", event_id="ev1", key=key, payload=b'{"a":1}')
        is False
    )
    assert (
        store.record_event(source="salesforce", event_id="ev1", key=key, payload="text é") is True
    )
    clock.advance(1)
    assert (
        store.record_event(source="partner_center", event_id="ev2", key=key, payload=b"\x00\xff")
        is True
    )
    pending = store.pending_events()
    assert [(event.source, event.event_id) for event in pending] == [
        ("partner_center", "ev1"),
        ("salesforce", "ev1"),
        ("partner_center", "ev2"),
    ]
    assert pending[0].payload == b'{"a":1}'
    assert pending[1].payload == "text é".encode()
    assert pending[2].payload == b"\x00\xff"
    assert pending[0].key == key
    assert pending[2].received_at == clock.now()
    assert pending[0].completed_at is None
    assert store.pending_events(limit=1) == pending[:1]


def test_complete_event(store: Store) -> None:
    for source in ("partner_center", "salesforce"):
        store.record_event(source=source, event_id="ev1", key="k", payload=b"")
    store.record_event(source="partner_center", event_id="ev2", key="k", payload=b"")
    store.complete_event("ev1", source="salesforce")
    assert [(e.source, e.event_id) for e in store.pending_events()] == [
        ("partner_center", "ev1"),
        ("partner_center", "ev2"),
    ]
    store.complete_event("ev1")
    store.complete_event("ev1")  # no-op
    assert [e.event_id for e in store.pending_events()] == ["ev2"]
    # A completed event is still known: receiving it again is not new.
    assert (
        store.record_event(source="partner_center", event_id="ev1", key="k", payload=b"") is False
    )


def test_record_events_in_one_transaction_and_complete_them_by_row_id(store: Store) -> None:
    assert store.record_events(source="partner_center", events=[]) == []
    store.record_event(source="partner_center", event_id="ev0", key="referral:a", payload=b"")
    new = store.record_events(
        source="partner_center",
        events=[
            ("ev0", "referral:a", b""),  # recorded before
            ("ev1", "referral:a", b"{}"),
            ("ev2", "referral:b", "text"),
            ("ev1", "referral:a", b"{}"),  # twice in one batch
        ],
    )
    assert new == [False, True, True, False]
    pending = store.pending_events()
    assert [(e.event_id, e.payload) for e in pending] == [
        ("ev0", b""),
        ("ev1", b"{}"),
        ("ev2", b"text"),
    ]
    store.complete_events([])
    store.complete_events([pending[0].id, pending[2].id])
    store.complete_events([pending[0].id])  # already completed: left alone
    assert [e.event_id for e in store.pending_events()] == ["ev1"]


# -- create intents ---------------------------------------------------------------------------


def test_record_create_intents_records_them_all_or_none(store: Store) -> None:
    one = store.create_link(sobject=OPP, referral_id=REFERRAL)
    two = store.create_link(sobject=OPP, referral_id=REFERRAL_2)
    store.record_create_intents([(one.id, "salesforce", REFERRAL), (two.id, "salesforce", "x")])
    store.record_create_intents([(one.id, "salesforce", REFERRAL)])  # the same again: no-op
    assert [store.create_intent(i).external_reference for i in (one.id, two.id)] == [  # type: ignore[union-attr]
        REFERRAL,
        "x",
    ]
    store.resolve_create_intent(two.id)
    with pytest.raises(StoreError, match="already has an unresolved create intent"):
        store.record_create_intents([(two.id, "salesforce", "y"), (one.id, "salesforce", "z")])
    assert store.create_intent(two.id) is None  # the batch failed whole
    with pytest.raises(ValueError, match="side"):
        store.record_create_intents([(one.id, "elsewhere", "z")])
    store.record_create_intents([])


def test_create_intents(store: Store, clock: ManualClock) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    assert store.create_intent(link.id) is None
    store.record_create_intent(link.id, side="partner_center", external_reference=OPP_ID)
    clock.advance(1)
    store.record_create_intent(link.id, side="partner_center", external_reference=OPP_ID)  # no-op
    intent = store.create_intent(link.id)
    assert intent is not None
    assert (intent.link_id, intent.side, intent.external_reference) == (
        link.id,
        "partner_center",
        OPP_ID,
    )
    assert intent.created_at == clock.now() - timedelta(seconds=1)
    with pytest.raises(StoreError, match="already has an unresolved create intent"):
        store.record_create_intent(link.id, side="salesforce", external_reference=REFERRAL)
    store.resolve_create_intent(link.id)
    store.resolve_create_intent(link.id)  # no-op
    assert store.create_intent(link.id) is None
    store.record_create_intent(link.id, side="salesforce", external_reference=REFERRAL)
    assert store.create_intent(link.id) is not None


def test_create_intent_errors(store: Store) -> None:
    link = store.create_link(sobject=OPP, record_id=OPP_ID)
    with pytest.raises(ValueError, match="side"):
        store.record_create_intent(link.id, side="microsoft", external_reference="x")
    with pytest.raises(LinkNotFoundError):
        store.record_create_intent("0" * 32, side="salesforce", external_reference="x")


def test_times_are_stored_as_utc_from_any_aware_clock(database_url: str, tenant: str) -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=1))
    clock = ManualClock(datetime(2026, 1, 5, 10, 30, tzinfo=paris))
    with Store.open(database_url, clock=clock, tenant=tenant) as store:
        link = store.create_link(sobject=OPP, record_id=OPP_ID)
        assert link.created_at == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
        assert link.created_at.tzinfo is UTC
        # Lease expiry compares instants, whatever offset the clock reports in.
        assert store.claim("k", owner="a", ttl_seconds=60)
        clock.advance(59)
        assert not store.claim("k", owner="b", ttl_seconds=60)
        clock.advance(1)
        assert store.claim("k", owner="b", ttl_seconds=60)


def test_record_writes_a_batch_set_based_and_ends_as_row_by_row_would(
    store: Store, clock: ManualClock
) -> None:
    one = store.create_link(sobject=OPP, referral_id=REFERRAL)
    two = store.create_link(sobject=OPP, referral_id=REFERRAL_2)
    store.record_create_intents([(one.id, "salesforce", REFERRAL), (two.id, "salesforce", "x")])
    for n in range(AUDIT_ENTRIES_KEPT - 1):
        store.record_audit(one.id, f"old {n}")
    soon, later = clock.now() + timedelta(hours=1), clock.now() + timedelta(hours=2)
    linked = store.record(
        [
            Record(
                one.id,
                link={"sync_status": SyncStatus.SYNCED},
                snapshot={"Name": "first"},
                audit=(("a1", None), ("a2", {"n": 1})),
                wakeup=(referral_key(REFERRAL), soon),
                resolve_intent=True,
            ),
            Record(two.id, snapshot={"Name": "two"}, audit=(("b1", None),)),
            Record(  # the same link again in the batch: its last snapshot and wake-up win
                one.id,
                snapshot={"Name": "second"},
                audit=(("a3", None),),
                wakeup=(referral_key(REFERRAL), later),
            ),
        ]
    )
    assert [link.id for link in linked] == [one.id, two.id, one.id]
    assert linked[0].sync_status is SyncStatus.SYNCED
    assert store.snapshots([one.id, two.id]) == {
        one.id: {"Name": "second"},
        two.id: {"Name": "two"},
    }
    kept = store.audit(one.id, limit=AUDIT_ENTRIES_KEPT + 10)
    assert len(kept) == AUDIT_ENTRIES_KEPT  # trimmed once, to the newest
    assert [e.message for e in kept[:3]] == ["a3", "a2", "a1"]
    assert kept[1].details == {"n": 1}
    assert [e.message for e in store.audit(two.id)] == ["b1"]
    assert store.wakeup(referral_key(REFERRAL)) == later
    assert store.create_intent(one.id) is None  # resolved
    assert store.create_intent(two.id) is not None  # not asked to be


def test_record_of_a_missing_link_records_nothing(store: Store) -> None:
    one = store.create_link(sobject=OPP, referral_id=REFERRAL)
    with pytest.raises(LinkNotFoundError):
        store.record(
            [Record(one.id, snapshot={"Name": "x"}, audit=(("a", None),)), Record("0" * 32)]
        )
    assert store.snapshot(one.id) is None
    assert store.audit(one.id) == []
