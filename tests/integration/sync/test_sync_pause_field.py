"""A deal paused by hand shows Paused on its Salesforce record; the next reconcile after resume
writes its status back (`run.park.show_paused`, called by the engine for a held key)."""

from __future__ import annotations

from sync_world import World

from cosell.sync.run.park import show_paused
from cosell.sync.run.reconcile import reconcile_key

STATUS = "Partner_Center_Sync_Status__c"
ERROR = "Partner_Center_Sync_Error__c"


async def test_a_paused_deal_shows_paused_on_its_record_until_it_is_resumed(world: World) -> None:
    sent = await world.microsoft.send_co_sell()
    key = world.referral_key(sent["id"])
    assert (await reconcile_key(world.ctx, key)).result == "created"
    [row] = await world.opportunities_for(sent["id"])
    opp_id = str(row["Id"])
    link = world.store.link_for_referral(str(sent["id"]))
    assert link is not None
    world.tick()
    world.store.set_pause(link.id, paused=True, by="ada", reason="customer asked to wait")

    assert await show_paused(world.ctx, key) is True
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity[STATUS] == "Paused"
    assert opportunity[ERROR].startswith("Sync paused by ada since ")
    assert "customer asked to wait" in opportunity[ERROR]
    before = await world.calls()
    assert await show_paused(world.ctx, key) is False  # already shown: one read, no write
    assert (await world.calls() - before).salesforce_writes == 0

    world.store.set_pause(link.id, paused=False, by="ada")
    world.tick()
    assert await show_paused(world.ctx, key) is False  # not paused any more: nothing
    await reconcile_key(world.ctx, key)
    opportunity = await world.seller.opportunity(opp_id)
    assert (opportunity[STATUS], opportunity[ERROR]) == ("Synced", None)


async def test_nothing_is_written_while_all_sync_is_paused(world: World) -> None:
    sent = await world.microsoft.send_co_sell()
    key = world.referral_key(sent["id"])
    assert (await reconcile_key(world.ctx, key)).result == "created"
    link = world.store.link_for_referral(str(sent["id"]))
    assert link is not None
    world.store.set_pause(link.id, paused=True, by="ada")
    world.store.set_pause(None, paused=True, by="bob")
    before = await world.calls()
    assert await show_paused(world.ctx, key) is False
    assert (await world.calls() - before).salesforce_writes == 0
