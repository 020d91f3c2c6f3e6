"""A crash at any stage boundary of a reconcile leaves the store consistent (one record each).

The stages: read both sides -> decide -> write Partner Center -> write Salesforce -> record
(one store transaction). A failpoint at each boundary, then a restart (the reconcile run
again), must end with one link per referral, both sides equal, and nothing left to write.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sync_world import World

from cosell.store import Store
from cosell.sync.plan.errors import FailpointError
from cosell.sync.run.batch import reconcile_batch
from cosell.sync.run.reconcile import reconcile_key

BOUNDARIES = [
    "after-read",
    "after-partner-center-write",
    "after-writes",
    "before-record",
    "after-record",
]


async def _edit_both_sides(world: World, opp_id: str, rid: str, tag: str) -> None:
    """A Partner Center edit (to Salesforce) and a seller edit (to Partner Center)."""
    await world.microsoft.edit(rid, [{"op": "replace", "path": "/name", "value": f"Name {tag}"}])
    await world.seller.edit("Opportunity", opp_id, {"Description": f"notes {tag}"})
    world.tick()


async def _consistent(world: World, opp_id: str, rid: str, tag: str) -> None:
    """Both sides hold both edits, one link knows the pair, and nothing is left to write."""
    referral = await world.microsoft.referral(rid)
    opportunity = await world.seller.opportunity(opp_id)
    assert referral["name"] == opportunity["Name"] == f"Name {tag}"
    assert referral["details"]["notes"] == opportunity["Description"] == f"notes {tag}"
    assert [link.record_id for link in world.store.links() if link.referral_id == rid] == [opp_id]
    assert len(await world.opportunities_for(rid)) == 1
    for key in (world.referral_key(rid), world.opportunity_key(opp_id)):
        before = await world.calls()
        assert (await reconcile_key(world.ctx, key)).result == "unchanged"
        assert (await world.calls() - before).writes == 0


@pytest.mark.parametrize("failpoint", BOUNDARIES)
async def test_a_crash_at_a_stage_boundary_is_repaired_by_the_next_reconcile(
    world: World, failpoint: str
) -> None:
    opp_id, rid = await world.shared_pair()
    await _edit_both_sides(world, opp_id, rid, "crashed")
    link = world.store.link_for_referral(rid)
    assert link is not None
    base = world.store.snapshot(link.id)
    audit = len(world.store.audit(link.id))
    with pytest.raises(FailpointError):
        await reconcile_key(replace(world.ctx, failpoints={failpoint}), world.referral_key(rid))
    recorded = world.store.snapshot(link.id) != base
    assert recorded == (failpoint == "after-record")  # the record is all or nothing
    assert (len(world.store.audit(link.id)) > audit) == recorded
    world.tick()
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result in ("synced", "unchanged"), outcome
    await _consistent(world, opp_id, rid, "crashed")


async def test_a_failure_inside_the_record_stores_none_of_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    opp_id, rid = await world.shared_pair()
    await _edit_both_sides(world, opp_id, rid, "inside")
    link = world.store.link_for_referral(rid)
    assert link is not None
    base, audit = world.store.snapshot(link.id), world.store.audit(link.id)
    real = Store._record_audit

    def crash(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)  # written inside the transaction, then the crash
        raise RuntimeError("the process died inside the record")

    monkeypatch.setattr(Store, "_record_audit", crash)
    with pytest.raises(RuntimeError, match="inside the record"):
        await reconcile_key(world.ctx, world.referral_key(rid))
    monkeypatch.undo()
    assert world.store.snapshot(link.id) == base
    assert world.store.audit(link.id) == audit
    assert world.store.get_link(link.id) == link
    world.tick()
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result in (
        "synced",
        "unchanged",
    )
    await _consistent(world, opp_id, rid, "inside")


@pytest.mark.parametrize("failpoint", ["before-record", "after-record"])
async def test_a_batch_records_all_its_keys_at_once(world: World, failpoint: str) -> None:
    pairs = [await world.shared_pair(Name=f"Deal {n}") for n in range(3)]
    for opp_id, rid in pairs:
        await _edit_both_sides(world, opp_id, rid, f"batch {rid}")
    keys = [world.referral_key(rid) for _, rid in pairs]
    links = [world.store.link_for_referral(rid) for _, rid in pairs]
    bases = [world.store.snapshot(link.id) for link in links if link is not None]
    with pytest.raises(FailpointError):
        await reconcile_batch(replace(world.ctx, failpoints={failpoint}), keys)
    after = [world.store.snapshot(link.id) for link in links if link is not None]
    changed = [new != old for new, old in zip(after, bases, strict=True)]
    assert changed == [failpoint == "after-record"] * len(pairs)  # all of the batch, or none
    world.tick()
    outcomes = await reconcile_batch(world.ctx, keys)
    assert {o.result for o in outcomes} <= {"synced", "unchanged"}, outcomes
    for opp_id, rid in pairs:
        await _consistent(world, opp_id, rid, f"batch {rid}")


async def test_a_batch_records_in_one_store_transaction(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = [await world.shared_pair(Name=f"Deal {n}") for n in range(4)]
    for opp_id, rid in pairs:
        await _edit_both_sides(world, opp_id, rid, f"counted {rid}")
    recorded: list[int] = []
    real = Store.record

    def counting(self: Store, records: Any) -> Any:
        recorded.append(len(records))
        return real(self, records)

    monkeypatch.setattr(Store, "record", counting)
    outcomes = await reconcile_batch(world.ctx, [world.referral_key(rid) for _, rid in pairs])
    assert [o.result for o in outcomes] == ["synced"] * len(pairs)
    assert recorded == [len(pairs)]
