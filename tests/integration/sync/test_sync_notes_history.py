"""Each change of the Partner Center notes is kept as a Note on the opportunity, exactly once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sync_world import World

from cosell.sync.plan.errors import FailpointError
from cosell.sync.plan.notes_history import HISTORY_MARKER
from cosell.sync.run.batch import reconcile_batch
from cosell.sync.run.reconcile import reconcile_key

KEPT = "Partner Center notes kept as a Note"


def _notes_on(world: World, opp_id: str) -> list[dict[str, Any]]:
    """The ContentNotes linked to the opportunity, oldest first."""
    store = world.sf_sandbox.store
    linked = {
        row["ContentDocumentId"]
        for row in store.rows("ContentDocumentLink", include_deleted=False)
        if row["LinkedEntityId"] == opp_id
    }
    return [row for row in store.rows("ContentNote", include_deleted=False) if row["Id"] in linked]


async def _edit_notes_in_partner_center(world: World, rid: str, text: str) -> None:
    await world.microsoft.edit(rid, [{"op": "replace", "path": "/details/notes", "value": text}])
    world.tick()


async def _nothing_more(world: World, opp_id: str, rid: str, notes: int) -> None:
    """Reconciling either key again writes nothing and adds no note."""
    for key in (world.referral_key(rid), world.opportunity_key(opp_id)):
        before = await world.calls()
        assert (await reconcile_key(world.ctx, key)).result == "unchanged"
        spent = await world.calls() - before
        assert (spent.reads, spent.writes) == (2, 0)
    assert len(_notes_on(world, opp_id)) == notes


async def test_a_partner_center_notes_change_is_kept_as_one_note(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    text = "Customer moved the go-live to June; wants a workshop first"
    await _edit_notes_in_partner_center(world, rid, text)
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "synced", outcome
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Description"] == text
    assert KEPT in str(opportunity["Audit__c"]).splitlines()[0]
    [note] = _notes_on(world, opp_id)
    assert note["Title"].startswith("Partner Center notes #")
    assert note["Title"].endswith(": Customer moved the go-live to June; wants a …")
    assert note["TextPreview"] == text
    await _nothing_more(world, opp_id, rid, notes=1)
    await _edit_notes_in_partner_center(world, rid, "Workshop booked for 3 June")
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    assert [n["TextPreview"] for n in _notes_on(world, opp_id)] == [
        text,
        "Workshop booked for 3 June",
    ]
    await _nothing_more(world, opp_id, rid, notes=2)


async def test_a_seller_description_change_is_not_kept_as_a_note(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"Description": "seller's new notes"})
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    assert (await world.microsoft.referral(rid))["details"]["notes"] == "seller's new notes"
    # The echo (Partner Center now holds the seller's text) is not a Partner Center change.
    await _nothing_more(world, opp_id, rid, notes=0)


async def test_a_losing_partner_center_version_is_kept_once(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.microsoft.edit(
        rid, [{"op": "replace", "path": "/details/notes", "value": "from Partner Center"}]
    )
    await world.seller.edit("Opportunity", opp_id, {"Description": "from the seller"})
    world.tick()
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "conflict", outcome  # the mapping's owner (Salesforce) wins
    assert (await world.microsoft.referral(rid))["details"]["notes"] == "from the seller"
    assert [n["TextPreview"] for n in _notes_on(world, opp_id)] == ["from Partner Center"]
    await _nothing_more(world, opp_id, rid, notes=1)


@pytest.mark.parametrize("failpoint", ["after-notes", "after-writes"])
async def test_a_crash_between_the_writes_keeps_exactly_one_note(
    world: World, failpoint: str
) -> None:
    opp_id, rid = await world.shared_pair()
    await _edit_notes_in_partner_center(world, rid, "changed in Partner Center")
    crashing = replace(world.ctx, failpoints={failpoint})
    with pytest.raises(FailpointError):
        await reconcile_key(crashing, world.referral_key(rid))
    assert len(_notes_on(world, opp_id)) == 1
    link = world.store.link_for_referral(rid)
    assert link is not None
    assert HISTORY_MARKER not in (world.store.snapshot(link.id) or {})  # the base was not saved
    world.tick()
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result in ("synced", "unchanged"), outcome
    assert (await world.seller.opportunity(opp_id))["Description"] == "changed in Partner Center"
    assert [n["TextPreview"] for n in _notes_on(world, opp_id)] == ["changed in Partner Center"]
    await _nothing_more(world, opp_id, rid, notes=1)


async def test_a_batch_keeps_partner_center_notes_changes_once(world: World) -> None:
    pairs = [await world.shared_pair(Name=f"Deal {n}") for n in range(3)]
    for n, (_opp_id, rid) in enumerate(pairs[:2]):
        await world.microsoft.edit(
            rid, [{"op": "replace", "path": "/details/notes", "value": f"notes {n}"}]
        )
    world.tick()
    keys = [world.referral_key(rid) for _, rid in pairs]
    outcomes = await reconcile_batch(world.ctx, keys)
    assert [o.result for o in outcomes] == ["synced", "synced", "unchanged"]
    for n, (opp_id, _rid) in enumerate(pairs):
        expected = [f"notes {n}"] if n < 2 else []
        assert [note["TextPreview"] for note in _notes_on(world, opp_id)] == expected
    before = await world.calls()
    assert {o.result for o in await reconcile_batch(world.ctx, keys)} == {"unchanged"}
    assert (await world.calls() - before).writes == 0


async def test_a_batch_that_crashed_after_the_notes_keeps_each_once(world: World) -> None:
    pairs = [await world.shared_pair(Name=f"Deal {n}") for n in range(2)]
    keys = [world.referral_key(rid) for _, rid in pairs]
    for n, (_opp_id, rid) in enumerate(pairs):
        await world.microsoft.edit(
            rid, [{"op": "replace", "path": "/details/notes", "value": f"first {n}"}]
        )
    world.tick()
    await reconcile_batch(world.ctx, keys)
    for n, (_opp_id, rid) in enumerate(pairs):
        await world.microsoft.edit(
            rid, [{"op": "replace", "path": "/details/notes", "value": f"second {n}"}]
        )
    world.tick()
    with pytest.raises(FailpointError):
        await reconcile_batch(replace(world.ctx, failpoints={"after-notes"}), keys)
    world.tick()
    assert [o.result for o in await reconcile_batch(world.ctx, keys)] == ["synced", "synced"]
    for n, (opp_id, _rid) in enumerate(pairs):
        assert [note["TextPreview"] for note in _notes_on(world, opp_id)] == [
            f"first {n}",
            f"second {n}",
        ]
        assert (await world.seller.opportunity(opp_id))["Description"] == f"second {n}"


async def test_a_dry_run_keeps_no_note(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await _edit_notes_in_partner_center(world, rid, "changed in Partner Center")
    outcome = await reconcile_key(replace(world.ctx, dry_run=True), world.referral_key(rid))
    assert outcome.dry_run
    assert _notes_on(world, opp_id) == []
