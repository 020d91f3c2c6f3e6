"""The status on the record: Partner_Center_Status__c and the sync status and error fields.

`Partner_Center_Status__c` follows the referral's status/substatus; the sync status is Pending
while a create waits for a retry, Error with a message while something is for the seller to
fix, and Synced with the message cleared once it is fixed.
"""

from __future__ import annotations

from typing import Any

import pytest
from sync_world import World

from cosell.partnercenter.errors import RetriableError
from cosell.sync.plan.retry import shown_message
from cosell.sync.run.creates import WAITING
from cosell.sync.run.reconcile import reconcile_key

STATUS = "Partner_Center_Sync_Status__c"
ERROR = "Partner_Center_Sync_Error__c"


def _shown(opportunity: dict[str, Any]) -> tuple[Any, Any, Any]:
    return opportunity["Partner_Center_Status__c"], opportunity[STATUS], opportunity[ERROR]


async def test_a_create_waiting_for_partner_center_shows_pending(world: World) -> None:
    account_id = await world.seller.create_account()
    opp_id = await world.seller.create_opportunity(account_id)
    await world.microsoft.control("PUT", "/faults", {"error_503_fraction": 1.0})
    with pytest.raises(RetriableError):
        await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    opportunity = await world.seller.opportunity(opp_id)
    assert (opportunity[STATUS], opportunity[ERROR]) == ("Pending", WAITING)
    world.tick()
    before = await world.calls()
    with pytest.raises(RetriableError):  # the engine's next attempt: already shown, no write
        await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert (await world.calls() - before).salesforce_writes == 0
    await world.microsoft.control("PUT", "/faults", {"error_503_fraction": 0.0})
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "created"
    opportunity = await world.seller.opportunity(opp_id)
    assert _shown(opportunity) == ("Active/Accepted", "Synced", None)
    [referral] = [r for r in await world.microsoft.referrals() if r["name"] == opportunity["Name"]]
    assert referral["id"] == opportunity["Referral_Identifier__c"]  # exactly one was created


async def test_partner_center_status_follows_the_referral(world: World) -> None:
    sent = await world.microsoft.send_co_sell()
    assert (await reconcile_key(world.ctx, world.referral_key(sent["id"]))).result == "created"
    [row] = await world.opportunities_for(sent["id"])
    opp_id, rid = str(row["Id"]), str(sent["id"])
    assert _shown(await world.seller.opportunity(opp_id)) == ("New/Pending", "Synced", None)
    world.tick()
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Qualification"})
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    assert _shown(await world.seller.opportunity(opp_id)) == ("Active/Accepted", "Synced", None)
    world.tick(72 * 3600)  # Partner Center takes Won 72 hours after creation
    await world.microsoft.edit(
        rid,
        [
            {"op": "replace", "path": "/status", "value": "Closed"},
            {"op": "replace", "path": "/substatus", "value": "Won"},
        ],
    )
    world.tick()
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "synced"
    opportunity = await world.seller.opportunity(opp_id)
    assert _shown(opportunity) == ("Closed/Won", "Synced", None)
    assert opportunity["StageName"] == "Closed Won"


async def test_an_error_shows_until_fixed_then_clears(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"Amount": -5})
    world.tick()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "error", outcome
    assert outcome.message is not None
    opportunity = await world.seller.opportunity(opp_id)
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert (link.sync_status, link.last_error) == ("Error", outcome.message)
    # The message, and when cosell tries again by itself (a refusal the seller may fix).
    assert link.retry_at is not None
    shown = shown_message(outcome.message, link.retry_at, limit=255)
    assert _shown(opportunity) == ("Active/Accepted", "Error", shown)
    assert len(shown) == 255
    assert shown.endswith(f"(cosell retries by itself at {link.retry_at:%H:%M} UTC)")
    await world.seller.edit("Opportunity", opp_id, {"Amount": 30000})
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    assert _shown(await world.seller.opportunity(opp_id)) == ("Active/Accepted", "Synced", None)
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert (link.sync_status, link.last_error) == ("Synced", None)
    assert (await world.microsoft.referral(rid))["details"]["dealValue"] == 30000
