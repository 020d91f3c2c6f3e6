"""Failures: outages raise for the engine to retry; a vanished record parks; batches dry-run."""

from __future__ import annotations

import dataclasses

import pytest
from sync_world import World

from cosell.partnercenter.errors import RetriableError
from cosell.sync.run.batch import reconcile_batch
from cosell.sync.run.reconcile import reconcile_key


async def test_a_partner_center_outage_raises_for_the_engine_to_retry(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"Amount": 1234})
    await world.microsoft.control("PUT", "/faults", {"error_503_fraction": 1.0})
    link = world.store.link_for_referral(rid)
    assert link is not None
    with pytest.raises(RetriableError):
        await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert world.store.get_link(link.id) == link  # nothing parked: it is not the seller's to fix
    await world.microsoft.control("PUT", "/faults", {"error_503_fraction": 0.0})
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    assert (await world.microsoft.referral(rid))["details"]["dealValue"] == 1234


async def test_a_deleted_opportunity_parks_the_link_with_a_clear_error(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    response = await world.sf_http.delete(f"/control/records/Opportunity/{opp_id}?as=seller")
    assert response.status_code == 204
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "error"
    assert outcome.message is not None
    assert "recycle bin" in outcome.message
    link = world.store.link_for_referral(rid)
    assert link is not None
    assert (link.sync_status, link.last_error) == ("Error", outcome.message)
    before, entries = await world.calls(), world.store.audit(link.id)
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "error"
    assert (await world.calls() - before).writes == 0
    assert world.store.audit(link.id) == entries  # the same error is not logged again


async def test_a_dry_run_batch_writes_nothing(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"Amount": 4321})
    sent = await world.microsoft.send_co_sell()
    dry = dataclasses.replace(world.ctx, dry_run=True)
    link = world.store.link_for_referral(rid)
    assert link is not None
    base = world.store.snapshot(link.id)
    before = await world.calls()
    outcomes = await reconcile_batch(dry, [world.referral_key(rid), world.referral_key(sent["id"])])
    assert (await world.calls() - before).writes == 0
    assert [(o.result, o.dry_run) for o in outcomes] == [("synced", True), ("created", True)]
    assert outcomes[0].to_partner_center == {"deal_value": "4321.00"}
    assert world.store.snapshot(link.id) == base
    assert world.store.link_for_referral(sent["id"]) is None


@pytest.mark.parametrize("batch", [False, True], ids=["one key", "a batch"])
async def test_a_deal_value_salesforce_cannot_hold_parks_that_referral_and_says_why(
    world: World, batch: bool
) -> None:
    # 1e26 once raised decimal.InvalidOperation: no link, nothing in status, only a log line.
    huge = await world.microsoft.send_co_sell(name="Huge", details={"dealValue": 1e26})
    fine = await world.microsoft.send_co_sell(name="Fine")
    keys = [world.referral_key(huge["id"]), world.referral_key(fine["id"])]
    if batch:
        outcomes = await reconcile_batch(world.ctx, keys)
    else:
        outcomes = [await reconcile_key(world.ctx, key) for key in keys]
    assert [o.result for o in outcomes] == ["error", "created"]
    link = world.store.link_for_referral(huge["id"])
    assert link is not None
    assert link.sync_status == "Error"
    assert link.record_id is None
    assert link.last_error is not None
    assert "deal_value" in link.last_error
    assert "too large for Salesforce's currency field (precision 16, scale 2" in link.last_error
    assert [e.message for e in world.store.audit(link.id)] == [f"error: {link.last_error}"]
    again = await reconcile_key(world.ctx, keys[0])
    assert (again.result, again.message) == ("error", link.last_error)
    assert len(world.store.audit(link.id)) == 1  # the same error is not recorded again


async def test_a_linked_deal_whose_value_grows_beyond_salesforce_is_parked_with_the_field(
    world: World,
) -> None:
    _, rid = await world.shared_pair()
    await world.microsoft.edit(
        rid, [{"op": "replace", "path": "/details/dealValue", "value": 1e26}]
    )
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "error"
    link = world.store.link_for_referral(rid)
    assert link is not None
    assert link.sync_status == "Error"
    assert link.last_error is not None
    assert "deal_value" in link.last_error
    assert "too large for Salesforce's currency field" in link.last_error
