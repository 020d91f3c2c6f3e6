"""Deal type changes from Salesforce on a shared deal (issue 14): the deal type, the help and
the sharing go to Partner Center together or not at all, the cross-field rules of a create
hold on updates too, and the deal type Partner Center ends up with reaches Salesforce in the
same sync (`cosell.sync.plan.deal_type`)."""

from __future__ import annotations

from typing import Any

from sync_world import World

from cosell.sync.run.reconcile import reconcile_key


async def _shared(world: World, *, solutions: bool = True, **fields: Any) -> tuple[str, str]:
    account_id = await world.seller.create_account("Northwind")
    opp_id = await world.seller.create_opportunity(
        account_id, **{"Name": "Northwind - Estate migration", **fields}
    )
    if solutions:
        await world.seller.create(
            "Microsoft_Solution__c",
            {"Opportunity__c": opp_id, "Name": "Azure", "Solution_Id__c": "SOL-AZ-01"},
        )
    contact_id = await world.seller.create(
        "Contact", {"AccountId": account_id, "LastName": "Silva", "Email": "ana@nw.example"}
    )
    await world.seller.create(
        "OpportunityContactRole",
        {"OpportunityId": opp_id, "ContactId": contact_id, "IsPrimary": True},
    )
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "created", outcome
    world.tick()
    return opp_id, (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]


async def _quiet(world: World, opp_id: str, rid: str) -> None:
    """Both keys again: nothing written."""
    world.tick()
    before = await world.calls()
    await reconcile_key(world.ctx, world.referral_key(rid))
    await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert (await world.calls() - before).writes == 0


async def test_co_sell_whose_help_cannot_be_sent_is_not_half_sent(world: World) -> None:
    opp_id, rid = await _shared(
        world, solutions=False, Deal_Type__c="Private", How_can_Microsoft_help__c=None
    )
    await world.seller.edit(
        "Opportunity",
        opp_id,
        {"Deal_Type__c": "Co-sell", "How_can_Microsoft_help__c": "Proof of concept or demo"},
    )
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert (await world.calls() - before).partner_center_writes == 0
    assert outcome.result == "refused", outcome
    referral = await world.microsoft.referral(rid)
    assert referral["consent"]["consentToShareReferralWithMicrosoftSellers"] is False  # not sent
    assert referral.get("inviteContext") is None
    opportunity = await world.seller.opportunity(opp_id)
    error = opportunity["Partner_Center_Sync_Error__c"]
    assert error.startswith("Sharing with Microsoft (How can Microsoft help) needs at least one")
    assert "The deal type change waits for it" in (outcome.message or "")
    assert opportunity["Deal_Type__c"] == "Co-sell"  # the seller's choice is not overwritten
    again = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert again.result == "refused"
    assert (await world.seller.opportunity(opp_id))["Deal_Type__c"] == "Co-sell"
    # The seller adds the solution: consent and help go together, and it is Co-sell.
    await world.seller.create(
        "Microsoft_Solution__c",
        {"Opportunity__c": opp_id, "Name": "Azure", "Solution_Id__c": "SOL-AZ-01"},
    )
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    referral = await world.microsoft.referral(rid)
    assert referral["consent"]["consentToShareReferralWithMicrosoftSellers"] is True
    assert referral["inviteContext"]["assistanceRequestCode"] == "ProofOfConceptOrDemo"
    assert (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Status__c"] == "Synced"
    await _quiet(world, opp_id, rid)


async def test_co_sell_without_help_is_refused_on_an_update_too(world: World) -> None:
    opp_id, rid = await _shared(world, Deal_Type__c="Partner-led", How_can_Microsoft_help__c=None)
    await world.seller.edit("Opportunity", opp_id, {"Deal_Type__c": "Co-sell"})
    world.tick()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "refused", outcome
    error = (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Error__c"]
    assert error.startswith("a Co-sell deal asks Microsoft for help: choose the help")
    referral = await world.microsoft.referral(rid)
    assert referral.get("inviteContext") is None
    # The seller picks the help: both go, the deal is Co-sell on both sides.
    await world.seller.edit(
        "Opportunity", opp_id, {"How_can_Microsoft_help__c": "Quotes or licensing"}
    )
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    referral = await world.microsoft.referral(rid)
    assert referral["inviteContext"]["assistanceRequestCode"] == "QuotesOrLicensing"
    await _quiet(world, opp_id, rid)


async def test_a_services_co_sell_update_keeps_its_three_fields(world: World) -> None:
    services = {
        "Partner_Role__c": "Deployment services",
        "Solution_Area__c": "Cloud and AI Platforms",
        "Solution_Play__c": "Migrate and Modernize Your Estate",
    }
    opp_id, rid = await _shared(
        world,
        Deal_Type__c="Co-sell",
        How_can_Microsoft_help__c="Proof of concept or demo",
        **services,
    )
    await world.seller.edit("Opportunity", opp_id, {"Solution_Play__c": None})
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "refused", outcome
    assert (await world.calls() - before).partner_center_writes == 0
    assert (
        "a services co-sell deal needs the partner role, the solution area and the solution play"
        in (outcome.message or "")
    )
    assert (await world.microsoft.referral(rid))["solutionPlay"] == "MigrateAndModernizeYourEstate"


async def test_the_visibility_of_a_private_deal_is_checked_on_an_update(world: World) -> None:
    opp_id, rid = await _shared(world, Deal_Type__c="Private", How_can_Microsoft_help__c=None)
    await world.seller.edit("Opportunity", opp_id, {"Referral_Visibility__c": True})
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "refused", outcome
    assert (await world.calls() - before).partner_center_writes == 0
    error = (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Error__c"]
    assert error.startswith("a Private deal is not shared with Microsoft sellers: untick")
    referral = await world.microsoft.referral(rid)
    assert referral["consent"]["consentToShareReferralWithMicrosoftSellers"] is False
    # Partner-led with the tick is consistent: sent.
    await world.seller.edit("Opportunity", opp_id, {"Deal_Type__c": "Partner-led"})
    world.tick()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    referral = await world.microsoft.referral(rid)
    assert referral["consent"]["consentToShareReferralWithMicrosoftSellers"] is True
    await _quiet(world, opp_id, rid)


async def test_help_asked_on_a_partner_led_deal_makes_it_co_sell_in_the_same_sync(
    world: World,
) -> None:
    opp_id, rid = await _shared(world, Deal_Type__c="Partner-led", How_can_Microsoft_help__c=None)
    await world.seller.edit(
        "Opportunity", opp_id, {"How_can_Microsoft_help__c": "Customer technical architecture"}
    )
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    spent = await world.calls() - before
    assert outcome.result == "synced", outcome
    referral = await world.microsoft.referral(rid)
    assert referral["inviteContext"]["assistanceRequestCode"] == "CustomerTechnicalArchitecture"
    assert (await world.seller.opportunity(opp_id))["Deal_Type__c"] == "Co-sell"  # this sync
    assert (spent.partner_center_writes, spent.salesforce_writes) == (1, 1)
    await _quiet(world, opp_id, rid)
