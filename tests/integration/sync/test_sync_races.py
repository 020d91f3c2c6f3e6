"""Writes that lose a race: 412 on either side means re-read, re-merge, write again (bounded)."""

from __future__ import annotations

from typing import Any

import pytest
from sync_world import World

from cosell.sync.plan.errors import ConcurrentEditsError
from cosell.sync.plan.limits import MAX_ATTEMPTS
from cosell.sync.run.reconcile import reconcile_key


async def test_a_seller_edit_between_read_and_write_is_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    opp_id, rid = await world.shared_pair()
    await world.microsoft.edit(rid, [{"op": "replace", "path": "/details/notes", "value": "pc"}])
    salesforce = world.ctx.salesforce
    real_update = salesforce.update
    raced: list[bool] = []

    async def update_after_a_seller_edit(*args: Any, **kwargs: Any) -> None:
        if not raced:
            raced.append(True)
            world.tick()  # the seller saves one second-or-more after our read
            await world.seller.edit("Opportunity", opp_id, {"Amount": 77000})
        await real_update(*args, **kwargs)

    monkeypatch.setattr(salesforce, "update", update_after_a_seller_edit)
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    spent = await world.calls() - before
    assert outcome.result == "synced", outcome
    assert raced
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Description"] == "pc"
    assert opportunity["Amount"] == 77000  # the seller's edit was not overwritten...
    assert (await world.microsoft.referral(rid))["details"]["dealValue"] == 77000  # ...and flowed
    # The refused write (412), then the one after re-merging; before the first, the notes
    # changed in Partner Center were kept as a Note (a ContentNote and its link), which the
    # second attempt finds and does not write again.
    assert spent.salesforce_writes == 2 + 2
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "unchanged"


async def test_a_partner_center_edit_between_read_and_write_is_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    opp_id, rid = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"Name": "renamed by the seller"})
    partner_center = world.ctx.partner_center
    real_patch = partner_center.patch
    raced: list[bool] = []

    async def patch_after_a_partner_center_edit(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            await world.microsoft.edit(
                rid, [{"op": "replace", "path": "/details/notes", "value": "edited in PC"}]
            )
        return await real_patch(*args, **kwargs)

    monkeypatch.setattr(partner_center, "patch", patch_after_a_partner_center_edit)
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "synced", outcome
    referral = await world.microsoft.referral(rid)
    assert referral["name"] == "renamed by the seller"
    assert referral["details"]["notes"] == "edited in PC"
    assert (await world.seller.opportunity(opp_id))["Description"] == "edited in PC"


async def test_a_record_that_never_stops_changing_is_retried_later(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    opp_id, rid = await world.shared_pair()
    salesforce = world.ctx.salesforce
    real_update = salesforce.update
    amounts = iter(range(50000, 60000, 100))

    async def update_after_a_seller_edit(*args: Any, **kwargs: Any) -> None:
        world.tick()
        await world.seller.edit("Opportunity", opp_id, {"Description": str(next(amounts))})
        world.tick()
        await world.microsoft.edit(
            rid, [{"op": "replace", "path": "/details/notes", "value": str(next(amounts))}]
        )
        await real_update(*args, **kwargs)

    await world.microsoft.edit(rid, [{"op": "replace", "path": "/name", "value": "pc name"}])
    monkeypatch.setattr(salesforce, "update", update_after_a_seller_edit)
    with pytest.raises(ConcurrentEditsError, match=f"{MAX_ATTEMPTS} times"):
        await reconcile_key(world.ctx, world.referral_key(rid))
