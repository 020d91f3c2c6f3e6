"""Accepting and declining Microsoft's referrals from Salesforce, through the stage table.

An incoming referral (New/Pending) lands in the mapping's on-hold stage; moving the
opportunity to an active stage accepts it (Active/Accepted); closing it lost while on hold
declines it (Closed/Declined) with a `statusReason`: the opportunity's own loss reason when the
mapping names one (`stages.reason_field`) and it is filled, else `stages.declined_reason`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sync_world import World

from cosell.mapping import parse_mapping
from cosell.mapping.loader import default_mapping_text
from cosell.sync.run.reconcile import reconcile_key

ON_HOLD = "Needs Analysis"  # not the default's: the configured stage is the one used

# The default mapping with its own on-hold stage, and its documented loss-reason field and
# reason_field uncommented. The sandbox org has no Loss_Reason__c (Salesforce has no standard
# loss-reason field), so the standard NextStep text field stands in for the org's own field.
_DEFAULT = default_mapping_text()
_HEAD, _, _REST = _DEFAULT.partition("  # The org's own loss reason")
_EXAMPLE, _LEAD_MARK, _LEAD = _REST.partition("\n# Lead sync")  # the lead section follows
MAPPING = (
    _HEAD.replace("  on_hold_stage: Prospecting\n", f"  on_hold_stage: {ON_HOLD}\n").replace(
        "  # reason_field: loss_reason\n", "  reason_field: loss_reason\n"
    )
    + "\n".join(line.replace("  # ", "  ", 1) for line in _EXAMPLE.splitlines()[1:]).replace(
        "Opportunity.Loss_Reason__c", "Opportunity.NextStep"
    )
    + "\n"
    + _LEAD_MARK
    + _LEAD
)
assert "reason_field: loss_reason" in MAPPING
assert "salesforce: Opportunity.NextStep" in MAPPING


def _configured(world: World) -> World:
    """The world syncing with `MAPPING`."""
    ctx = replace(world.ctx, mapping=parse_mapping(MAPPING, "accept-decline.yaml"))
    return replace(world, ctx=ctx)


async def _incoming(world: World) -> tuple[str, str]:
    """Microsoft's co-sell referral, arrived as an opportunity: (opportunity id, referral id)."""
    sent = await world.microsoft.send_co_sell()
    outcome = await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    assert outcome.result == "created", outcome
    [opportunity] = await world.opportunities_for(sent["id"])
    world.tick()
    return str(opportunity["Id"]), str(sent["id"])


async def _settled(world: World, opp_id: str, rid: str) -> dict[str, Any]:
    """Reconcile both keys again: nothing to write. The opportunity as stored."""
    world.tick()
    for key in (world.referral_key(rid), world.opportunity_key(opp_id)):
        before = await world.calls()
        assert (await reconcile_key(world.ctx, key)).result == "unchanged"
        assert (await world.calls() - before).writes == 0
    return await world.seller.opportunity(opp_id)


async def test_an_incoming_referral_lands_in_the_configured_on_hold_stage(world: World) -> None:
    world = _configured(world)
    opp_id, rid = await _incoming(world)
    opportunity = await _settled(world, opp_id, rid)
    assert opportunity["StageName"] == ON_HOLD
    assert opportunity["Partner_Center_Status__c"] == "New/Pending"
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("New", "Pending")


async def test_moving_to_an_active_stage_accepts_the_referral(world: World) -> None:
    world = _configured(world)
    opp_id, rid = await _incoming(world)
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Prospecting"})
    world.tick()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "synced", outcome
    assert outcome.to_partner_center == {"stage": "Active/Accepted"}
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Active", "Accepted")
    opportunity = await _settled(world, opp_id, rid)
    assert opportunity["StageName"] == "Prospecting"  # the seller's stage is kept
    assert opportunity["Partner_Center_Status__c"] == "Active/Accepted"
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"


async def test_closing_lost_on_hold_declines_with_the_default_reason(world: World) -> None:
    world = _configured(world)
    opp_id, rid = await _incoming(world)
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Lost"})
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Closed", "Declined")
    assert referral["statusReason"] == "Declined in Salesforce"
    opportunity = await _settled(world, opp_id, rid)
    assert opportunity["StageName"] == "Closed Lost"
    assert opportunity["Partner_Center_Status__c"] == "Closed/Declined"


async def test_closing_lost_on_hold_declines_with_the_opportunitys_loss_reason(
    world: World,
) -> None:
    world = _configured(world)
    opp_id, rid = await _incoming(world)
    await world.seller.edit(
        "Opportunity", opp_id, {"StageName": "Closed Lost", "NextStep": "No budget this year"}
    )
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Closed", "Declined")
    assert referral["statusReason"] == "No budget this year"
    opportunity = await _settled(world, opp_id, rid)
    assert opportunity["Partner_Center_Status__c"] == "Closed/Declined"
