"""The pollers against both sandboxes: cursor, overlap, de-duplication, bounds, the right keys."""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
from sync_world import World

from cosell.store.types import record_key, referral_key
from cosell.sync.io import pollers
from cosell.sync.io.pollers import Cursor


async def _incoming(world: World, count: int) -> list[str]:
    ids = []
    for n in range(count):
        # A lead: one referral each (a co-sell also shows Microsoft's referral of the engagement).
        body = await world.microsoft.control(
            "POST", "/referrals/incoming", {"kind": "lead", "name": f"Contoso deal {n}"}
        )
        ids.append(body["id"])
        world.tick(1)
    return ids


async def test_partner_center_poll_finds_each_change_once(world: World) -> None:
    ids = await _incoming(world, 3)
    first = await pollers.poll_partner_center(world.ctx.partner_center, Cursor())
    assert first.keys == tuple(referral_key(i) for i in ids)
    assert first.api_calls == 1
    assert not first.more

    # Within the overlap the same changes are read again, but not handed out again.
    world.tick(1)
    again = await pollers.poll_partner_center(world.ctx.partner_center, first.cursor)
    assert again.keys == ()
    assert again.cursor.at == first.cursor.at

    # A later edit is handed out, once.
    world.tick(10)
    await world.microsoft.edit(ids[1], [{"op": "replace", "path": "/details/notes", "value": "x"}])
    edited = await pollers.poll_partner_center(world.ctx.partner_center, again.cursor)
    assert edited.keys == (referral_key(ids[1]),)
    assert edited.cursor.at is not None
    assert first.cursor.at is not None
    assert edited.cursor.at > first.cursor.at
    # The de-duplication set only keeps what is inside the overlap window.
    assert {item for item, _ in edited.cursor.seen} == {ids[1]}


async def test_partner_center_overlap_catches_a_late_commit(world: World) -> None:
    [late] = await _incoming(world, 1)
    stamp = (await world.microsoft.referral(late))["updatedDateTime"]
    found = await pollers.poll_partner_center(world.ctx.partner_center, Cursor())
    [(item, seen_at)] = found.cursor.seen
    assert item == late
    # A cursor already past the change (by less than the overlap) still finds it.
    ahead = Cursor(at=seen_at + timedelta(seconds=3))
    assert (await pollers.poll_partner_center(world.ctx.partner_center, ahead)).keys == (
        referral_key(late),
    )
    # Beyond the overlap it is (rightly) considered handled.
    far = Cursor(at=seen_at + timedelta(seconds=pollers.DEFAULT_OVERLAP_SECONDS + 1))
    assert (await pollers.poll_partner_center(world.ctx.partner_center, far)).keys == ()
    assert stamp


async def test_partner_center_poll_is_bounded_and_resumes(world: World) -> None:
    ids = await _incoming(world, 5)
    first = await pollers.poll_partner_center(
        world.ctx.partner_center, Cursor(), max_pages=2, page_size=2
    )
    assert first.more
    assert first.api_calls == 2
    assert first.keys == tuple(referral_key(i) for i in ids[:4])
    rest = await pollers.poll_partner_center(world.ctx.partner_center, first.cursor, page_size=2)
    assert rest.keys == (referral_key(ids[4]),)
    assert not rest.more


async def test_salesforce_poll_finds_co_sell_opportunities_once(world: World) -> None:
    account = await world.seller.create_account()
    shared = await world.seller.create_opportunity(account)
    await world.seller.create_opportunity(
        account, Name="Not for co-sell", Sync_with_Partner_Center__c=False
    )
    linked = await world.seller.create_opportunity(
        account,
        Name="Linked, box unticked",
        Sync_with_Partner_Center__c=False,
        Referral_Identifier__c="a-referral-id",
    )
    first = await pollers.poll_salesforce(world.ctx.salesforce, Cursor())
    assert set(first.keys) == {record_key("Opportunity", shared), record_key("Opportunity", linked)}
    assert first.api_calls == 1

    world.tick(2)
    assert (await pollers.poll_salesforce(world.ctx.salesforce, first.cursor)).keys == ()

    world.tick(10)
    await world.seller.edit("Opportunity", shared, {"Amount": 30000})
    edited = await pollers.poll_salesforce(world.ctx.salesforce, first.cursor)
    assert edited.keys == (record_key("Opportunity", shared),)


def test_salesforce_poll_soql_uses_the_overlap_and_orders_by_modstamp() -> None:
    cursor = Cursor.parse('{"at": "2026-01-05T09:00:10+00:00", "seen": []}')
    soql = pollers.salesforce_changes_soql(cursor.since(5.0), limit=100)
    assert "SystemModstamp > 2026-01-05T09:00:05Z" in soql
    assert "(Sync_with_Partner_Center__c = true OR Referral_Identifier__c != null)" in soql
    assert soql.endswith("ORDER BY SystemModstamp ASC LIMIT 100")
    assert pollers.partner_center_filter(cursor.since(5.0)) == (
        "updatedDateTime gt 2026-01-05T09:00:05.000000Z"
    )


def test_cursor_round_trips_and_refuses_garbage() -> None:
    cursor = Cursor().advance([("a", _at(1)), ("b", _at(9))], overlap=5.0)
    assert cursor.at == _at(9)
    assert {item for item, _ in cursor.seen} == {"b"}  # "a" is older than the overlap
    assert Cursor.parse(cursor.dump()) == cursor
    assert Cursor.parse(None) == Cursor()
    with pytest.raises(ValueError, match="delete it to poll everything again"):
        Cursor.parse("not json")


async def test_sweep_lists_every_referral_and_the_create_candidates(world: World) -> None:
    ids = await _incoming(world, 3)
    account = await world.seller.create_account()
    waiting = await world.seller.create_opportunity(account)
    pages = [page async for page in pollers.sweep_pages(world.ctx.partner_center, page_size=2)]
    assert [len(p.keys) for p in pages] == [2, 1]
    assert pages[0].count == 3
    assert [k for p in pages for k in p.keys] == [referral_key(i) for i in ids]
    candidates, calls = await pollers.salesforce_create_candidates(world.ctx.salesforce)
    assert candidates == (record_key("Opportunity", waiting),)
    assert calls == 1


def _at(second: int):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 1, 5, 9, 0, second, tzinfo=UTC)


async def test_partner_center_poll_skips_a_change_already_synced(world: World) -> None:
    from cosell.sync.run.reconcile import reconcile_key

    _, synced_id = await world.shared_pair()
    _, edited_id = await world.shared_pair()
    synced = functools.partial(pollers.synced_stamps, world.store)
    start = await pollers.poll_partner_center(world.ctx.partner_center, Cursor(), synced=synced)
    world.tick(10)
    for rid in (synced_id, edited_id):
        change = [{"op": "replace", "path": "/details/dealValue", "value": 41000}]
        await world.microsoft.edit(rid, change)
    # A webhook's reconcile carried one change before the tick: the base holds its stamp.
    assert (await reconcile_key(world.ctx, world.referral_key(synced_id))).result == "synced"
    found = await pollers.poll_partner_center(world.ctx.partner_center, start.cursor, synced=synced)
    assert found.keys == (referral_key(edited_id),)
    assert {item for item, _ in found.cursor.seen} == {synced_id, edited_id}

    # The partner edits the synced one again: a later stamp, handed out.
    world.tick(10)
    change = [{"op": "replace", "path": "/details/dealValue", "value": 42000}]
    await world.microsoft.edit(synced_id, change)
    again = await pollers.poll_partner_center(world.ctx.partner_center, found.cursor, synced=synced)
    assert again.keys == (referral_key(synced_id),)


async def test_partner_center_poll_skips_a_lead_referral_its_lead_just_carried(
    world: World,
) -> None:
    from cosell.sync.run.reconcile import reconcile_key

    synced = functools.partial(pollers.synced_stamps, world.store)
    start = await pollers.poll_partner_center(world.ctx.partner_center, Cursor(), synced=synced)
    world.tick(10)
    world.ctx.lead_sync = True
    referral = await world.microsoft.send_lead()
    key = world.referral_key(referral["id"])
    assert (await reconcile_key(world.ctx, key)).result == "created"
    # The Lead's create saved the referral's stamp: not handed out again.
    created = await pollers.poll_partner_center(
        world.ctx.partner_center, start.cursor, synced=synced
    )
    assert key not in created.keys
    world.tick(10)
    (lead,) = await world.leads_for(referral["id"])
    await world.seller.edit("Lead", lead["Id"], {"Description": "Call back on Monday"})
    outcome = await reconcile_key(world.ctx, world.lead_key(lead["Id"]))
    assert outcome.result == "synced", outcome
    # Our PATCH moved `updatedDateTime`; the base holds the stamp it returned.
    carried = await pollers.poll_partner_center(
        world.ctx.partner_center, created.cursor, synced=synced
    )
    assert key not in carried.keys
    assert referral["id"] in {item for item, _ in carried.cursor.seen}
