"""The 2026 fields through sync: an opportunity's partner role, FY26 solution area and play and
marketplace intent reach the referral; a services co-sell deal missing one of them is parked
with what to fill, before any call; Partner Center's values flow back to Salesforce."""

from __future__ import annotations

from typing import Any

import pytest
from sync_world import World

from cosell.sync.run.reconcile import reconcile_key

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
        **{
            "Name": "Northwind - Estate migration",
            "How_can_Microsoft_help__c": "Proof of concept or demo",
            **fields,
        },
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
    # The message, then when cosell tries again by itself (the deal's own retry schedule).
    assert opportunity["Partner_Center_Sync_Error__c"] == (
        "cannot create the Partner Center referral: a services co-sell deal needs the partner "
        "role, the solution area and the solution play: fill in the FY26 solution play; then "
        "save the opportunity again (cosell retries by itself at 09:00 UTC)"
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


# -- the deal type (mapped by default) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("deal_type", "visible", "help_code", "shared", "assistance"),
    [
        ("Private", False, None, False, None),
        ("Partner-led", False, None, True, None),
        ("Co-sell", True, "Proof of concept or demo", True, "ProofOfConceptOrDemo"),
    ],
)
async def test_an_opportunity_of_each_deal_type_creates_the_matching_referral(
    world: World,
    deal_type: str,
    visible: bool,
    help_code: str | None,
    shared: bool,
    assistance: str | None,
) -> None:
    opp_id = await _co_sell_opportunity(
        world,
        Deal_Type__c=deal_type,
        Referral_Visibility__c=visible,
        How_can_Microsoft_help__c=help_code,
    )
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "created", outcome
    rid = (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]
    referral = await world.microsoft.referral(rid)
    assert referral["consent"]["consentToShareReferralWithMicrosoftSellers"] is shared
    assert (referral.get("inviteContext") or {}).get("assistanceRequestCode") == assistance
    before = await world.calls()
    again = await reconcile_key(world.ctx, world.referral_key(rid))
    assert again.result == "unchanged", again
    assert (await world.calls() - before).writes == 0


async def test_a_co_sell_deal_without_help_is_parked_with_what_to_fill(world: World) -> None:
    opp_id = await _co_sell_opportunity(
        world, Deal_Type__c="Co-sell", How_can_Microsoft_help__c=None
    )
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "error", outcome
    error = (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Error__c"]
    assert "a Co-sell deal asks Microsoft for help: choose the help in How can Microsoft" in error
    assert await world.microsoft.referrals() == []


async def test_a_partner_led_referral_turned_co_sell_in_partner_center_turns_co_sell_in_salesforce(
    world: World,
) -> None:
    opp_id = await _co_sell_opportunity(
        world, Deal_Type__c="Partner-led", How_can_Microsoft_help__c=None
    )
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "created"
    rid = (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]
    world.tick()
    await world.microsoft.edit(  # e.g. the customer consented to an incentive claim
        rid,
        [
            {
                "op": "add",
                "path": "/inviteContext",
                "value": {"assistanceRequestCode": "GeneralOrOther"},
            }
        ],
    )
    world.tick()
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "synced"
    assert (await world.seller.opportunity(opp_id))["Deal_Type__c"] == "Co-sell"
    # The seller turning it back is refused with a message, and nothing is sent.
    await world.seller.edit("Opportunity", opp_id, {"Deal_Type__c": "Partner-led"})
    world.tick()
    before = await world.calls()
    await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert (await world.calls() - before).partner_center_writes == 0
    error = (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Error__c"]
    assert error.startswith("a Co-sell referral stays Co-sell in Partner Center")
