"""The 2026 fields through sync: an opportunity's partner role, FY26 solution area and play and
marketplace intent reach the referral; a services co-sell deal missing one of them is parked
with what to fill, before any call; Partner Center's values flow back to Salesforce."""

from __future__ import annotations

from typing import Any

from sync_world import World

from cosell.sync.reconcile import reconcile_key

FY26_SF = {
    "Partner_Role__c": "Deployment services",
    "Solution_Area__c": "Cloud and AI Platforms",
    "Solution_Play__c": "Migrate and Modernize Your Estate",
    "Marketplace_Purchase_Intent__c": "Have not decided",
}


async def _co_sell_opportunity(world: World, **fields: Any) -> str:
    account_id = await world.seller.create_account("Northwind")
    opp_id = await world.seller.create_opportunity(
        account_id,
        Name="Northwind - Estate migration",
        How_can_Microsoft_help__c="Proof of concept or demo",
        **fields,
    )
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
    return opp_id


async def test_a_services_co_sell_opportunity_creates_a_referral_with_the_fy26_fields(
    world: World,
) -> None:
    opp_id = await _co_sell_opportunity(world, **FY26_SF)
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "created", outcome
    rid = (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]
    referral = await world.microsoft.referral(rid)
    assert (
        referral["partnerRole"],
        referral["solutionArea"],
        referral["solutionPlay"],
        referral["customerMarketplaceIntent"],
    ) == (
        "DeploymentServices",
        "CloudAndAIPlatforms",
        "MigrateAndModernizeYourEstate",
        "HaveNotDecided",
    )
    before = await world.calls()
    again = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    echo = await reconcile_key(world.ctx, world.referral_key(rid))
    assert (again.result, echo.result) == ("unchanged", "unchanged"), (again, echo)
    assert (await world.calls() - before).writes == 0


async def test_a_services_co_sell_deal_without_its_play_is_parked_before_any_call(
    world: World,
) -> None:
    partial = {k: v for k, v in FY26_SF.items() if k != "Solution_Play__c"}
    opp_id = await _co_sell_opportunity(world, **partial)
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "error", outcome
    assert (await world.calls() - before).partner_center_writes == 0
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
    assert opportunity["Partner_Center_Sync_Error__c"] == (
        "cannot create the Partner Center referral: a services co-sell deal needs the partner "
        "role, the solution area and the solution play: fill in the FY26 solution play; then "
        "save the opportunity again"
    )
    assert await world.microsoft.referrals() == []
    await world.seller.edit("Opportunity", opp_id, {"Solution_Play__c": "Unify Your Data Platform"})
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "created"


async def test_a_play_outside_its_area_is_parked_with_the_area_it_belongs_to(
    world: World,
) -> None:
    opp_id = await _co_sell_opportunity(world, **FY26_SF | {"Solution_Play__c": "Data Security"})
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "error", outcome
    assert outcome.message is not None
    assert (
        "the solution play DataSecurity belongs to the solution area Security, not "
        "CloudAndAIPlatforms" in outcome.message
    )


async def test_solution_fields_set_in_partner_center_reach_salesforce(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.microsoft.edit(
        rid,
        [
            {"op": "add", "path": "/solutionArea", "value": "Security"},
            {"op": "add", "path": "/solutionPlay", "value": "DataSecurity"},
            {"op": "add", "path": "/customerMarketplaceIntent", "value": "Yes"},
        ],
    )
    world.tick()
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "synced"
    opportunity = await world.seller.opportunity(opp_id)
    assert (
        opportunity["Solution_Area__c"],
        opportunity["Solution_Play__c"],
        opportunity["Marketplace_Purchase_Intent__c"],
    ) == ("Security", "Data Security", "Yes")
