"""Creates both ways, idempotent: an incoming referral becomes an opportunity; an opportunity
with Sync ticked becomes a referral; a crash between the POST and the write-back ends with one."""

from __future__ import annotations

import pytest
from sync_world import World

from cosell.sync.plan.errors import FailpointError
from cosell.sync.run.reconcile import reconcile_key


async def test_a_microsoft_co_sell_referral_becomes_an_opportunity(world: World) -> None:
    sent = await world.microsoft.send_co_sell(
        name="Contoso - Data platform",
        customerProfile={
            "name": "Contoso Ltd",
            "address": {
                "addressLine1": "1 Microsoft Way",
                "city": "Redmond",
                "state": "WA",
                "postalCode": "98052",
                "country": "US",
            },
            "team": [{"firstName": "Dana", "lastName": "Reyes", "email": "dana@contoso.example"}],
        },
        details={"dealValue": 120000, "currency": "EUR", "closingDateTime": "2026-09-30T00:00:00Z"},
    )
    rid = sent["id"]
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "created", outcome
    [opportunity] = await world.opportunities_for(rid)
    assert opportunity["Name"] == "Contoso - Data platform"
    assert opportunity["Amount"] == 120000
    assert opportunity["CurrencyIsoCode"] == "EUR"
    assert opportunity["CloseDate"] == "2026-09-30"
    assert opportunity["StageName"] == "Prospecting"  # the mapping's on-hold stage
    assert opportunity["Sync_with_Partner_Center__c"] is True
    assert opportunity["Referral_Link__c"].endswith(rid)
    assert opportunity["Partner_Center_Status__c"] == "New/Pending"
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    account = await world.seller.read("Account", opportunity["AccountId"])
    assert account["Name"] == "Contoso Ltd"
    assert account["BillingPostalCode"] == "98052"
    roles = [
        r
        for r in world.sf_sandbox.store.rows("OpportunityContactRole", include_deleted=False)
        if r["OpportunityId"] == opportunity["Id"]
    ]
    assert len(roles) == 1
    assert roles[0]["IsPrimary"] is True
    contact = await world.seller.read("Contact", roles[0]["ContactId"])
    assert contact["Email"] == "dana@contoso.example"
    assert contact["AccountId"] == account["Id"]
    link = world.store.link_for_referral(rid)
    assert link is not None
    assert link.record_id == opportunity["Id"]
    # The next reconcile, and the echo from the Salesforce side, write nothing.
    before = await world.calls()
    again = await reconcile_key(world.ctx, world.referral_key(rid))
    echo = await reconcile_key(world.ctx, world.opportunity_key(opportunity["Id"]))
    spent = await world.calls() - before
    assert (again.result, echo.result) == ("unchanged", "unchanged"), (again, echo)
    assert spent.writes == 0
    assert spent.reads == 4


async def test_an_existing_account_is_matched_not_duplicated(world: World) -> None:
    account_id = await world.seller.create_account("Fabrikam")
    sent = await world.microsoft.send_co_sell(
        customerProfile={
            "name": "Fabrikam",
            "address": {"postalCode": "98052", "country": "US", "city": "Redmond"},
        }
    )
    outcome = await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    assert outcome.result == "created", outcome
    [opportunity] = await world.opportunities_for(sent["id"])
    assert opportunity["AccountId"] == account_id


async def test_an_opportunity_with_sync_ticked_becomes_a_shared_referral(world: World) -> None:
    account_id = await world.seller.create_account("Northwind")
    opp_id = await world.seller.create_opportunity(
        account_id,
        Name="Northwind - Copilot rollout",
        How_can_Microsoft_help__c="Proof of concept or demo",
    )
    await world.seller.create(
        "Microsoft_Solution__c",
        {
            "Opportunity__c": opp_id,
            "Name": "Microsoft 365 Copilot",
            "Solution_Id__c": "SOL-COPILOT-01",
            "Solution_Type__c": "Name",
        },
    )
    contact_id = await world.seller.create(
        "Contact",
        {
            "AccountId": account_id,
            "FirstName": "Ana",
            "LastName": "Silva",
            "Email": "ana@nw.example",
        },
    )
    await world.seller.create(
        "OpportunityContactRole",
        {"OpportunityId": opp_id, "ContactId": contact_id, "IsPrimary": True},
    )
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "created", outcome
    opportunity = await world.seller.opportunity(opp_id)
    rid = opportunity["Referral_Identifier__c"]
    assert rid
    assert opportunity["Referral_Link__c"] == world.ctx.referral_link(rid)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Status__c"] == "Active/Accepted"
    assert "created referral" in opportunity["Audit__c"]
    referral = await world.microsoft.referral(rid)
    assert referral["externalReferenceId"] == opp_id
    assert referral["name"] == "Northwind - Copilot rollout"
    assert referral["type"] == "Shared"
    assert referral["consent"]["consentToShareReferralWithMicrosoftSellers"] is True
    assert referral["inviteContext"]["assistanceRequestCode"] == "ProofOfConceptOrDemo"
    assert referral["details"]["dealValue"] == 25000
    assert referral["customerProfile"]["name"] == "Northwind"
    assert referral["customerProfile"]["address"]["country"] == "US"
    assert referral["customerProfile"]["team"][0]["email"] == "ana@nw.example"
    assert referral["details"]["requirements"]["solutions"][0]["id"] == "SOL-COPILOT-01"
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert link.referral_id == rid
    assert world.store.create_intent(link.id) is None
    before = await world.calls()
    again = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    echo = await reconcile_key(world.ctx, world.referral_key(rid))
    spent = await world.calls() - before
    assert (again.result, echo.result) == ("unchanged", "unchanged"), (again, echo)
    assert spent.writes == 0


async def test_an_opportunity_without_sync_is_left_alone(world: World) -> None:
    account_id = await world.seller.create_account()
    opp_id = await world.seller.create_opportunity(account_id, Sync_with_Partner_Center__c=False)
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "skipped"
    assert (await world.calls() - before).writes == 0
    assert world.store.link_for_record("Opportunity", opp_id) is None
    assert await world.microsoft.referrals() == []


async def test_a_crash_after_the_referral_create_ends_with_exactly_one_referral(
    world: World,
) -> None:
    account_id = await world.seller.create_account()
    opp_id = await world.seller.create_opportunity(account_id)
    world.ctx.failpoints.add("after-referral-create")
    with pytest.raises(FailpointError):
        await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert len(await world.microsoft.referrals()) == 1
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Referral_Identifier__c"] is None  # the write-back never happened
    world.ctx.failpoints.clear()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "created", outcome
    [referral] = await world.microsoft.referrals()
    assert referral["externalReferenceId"] == opp_id
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Referral_Identifier__c"] == referral["id"]
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert link.referral_id == referral["id"]
    assert world.store.create_intent(link.id) is None
    # And again: still one.
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "unchanged"
    assert len(await world.microsoft.referrals()) == 1


async def test_a_crash_after_the_opportunity_upsert_ends_with_exactly_one_opportunity(
    world: World,
) -> None:
    sent = await world.microsoft.send_co_sell()
    world.ctx.failpoints.add("after-opportunity-upsert")
    with pytest.raises(FailpointError):
        await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    world.ctx.failpoints.clear()
    outcome = await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    assert outcome.result == "created", outcome
    assert len(await world.opportunities_for(sent["id"])) == 1
    accounts = world.sf_sandbox.store.rows("Account", include_deleted=False)
    assert len(list(accounts)) == 1


async def test_an_opportunity_missing_what_partner_center_requires_parks_a_clear_error(
    world: World,
) -> None:
    account_id = await world.seller.create(
        "Account", {"Name": "No Address Inc"}
    )  # no billing country: Partner Center requires an ISO-2 country
    opp_id = await world.seller.create_opportunity(account_id)
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "error"
    assert outcome.message is not None
    assert "country" in outcome.message
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
    assert "country" in opportunity["Partner_Center_Sync_Error__c"]
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert link.sync_status == "Error"
    assert await world.microsoft.referrals() == []
    # Retried on the next change: the same error again writes nothing.
    before = await world.calls()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "error"
    assert (await world.calls() - before).writes == 0
    # Fixed by the seller: the next reconcile creates the referral and clears the error.
    await world.seller.edit("Account", account_id, {"BillingCountry": "DE"})
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "created"
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None
