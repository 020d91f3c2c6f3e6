"""Lead sync on the sandboxes: lead referrals as Leads, converted into opportunities on acceptance."""

from __future__ import annotations

from typing import Any

import pytest
from sync_world import World

from cosell.salesforce.soap import LeadConvert
from cosell.store.types import SyncStatus
from cosell.sync.io.pollers import Cursor, poll_salesforce
from cosell.sync.plan.errors import FailpointError
from cosell.sync.run.reconcile import reconcile_key

ACCEPT = [
    {"op": "replace", "path": "/status", "value": "Active"},
    {"op": "replace", "path": "/substatus", "value": "Accepted"},
]


async def _lead_referral(world: World, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """Lead sync on, Microsoft sends a lead, cosell reconciles it: (referral id, the Lead row)."""
    world.ctx.lead_sync = True
    referral = await world.microsoft.send_lead(**overrides)
    outcome = await reconcile_key(world.ctx, world.referral_key(referral["id"]))
    assert outcome.result == "created", outcome
    (lead,) = await world.leads_for(referral["id"])
    world.tick()
    return referral["id"], lead


async def _converted(world: World, referral_id: str, lead_id: str) -> dict[str, Any]:
    """Assert the Lead is converted into one opportunity linked to the referral; that opportunity."""
    lead = await world.seller.read("Lead", lead_id)
    assert lead["IsConverted"] is True
    assert lead["Status"] == "Closed - Converted"
    assert lead["Referral_Identifier__c"] == referral_id  # the Lead still points at the deal
    (opportunity,) = await world.opportunities_for(referral_id)
    assert lead["ConvertedOpportunityId"] == opportunity["Id"]
    assert opportunity["AccountId"] == lead["ConvertedAccountId"]
    link = world.store.link_for_referral(referral_id)
    assert link is not None
    assert (link.sobject, link.record_id) == ("Opportunity", opportunity["Id"])
    assert link.sync_status == SyncStatus.SYNCED
    assert world.store.link_for_record("Lead", lead_id) is None
    return opportunity


async def test_a_lead_referral_becomes_a_lead_with_lead_sync_on(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    referral = await world.microsoft.referral(referral_id)
    contact = referral["customerProfile"]["team"][0]
    address = referral["customerProfile"]["address"]
    assert lead["Company"] == referral["customerProfile"]["name"]
    assert (lead["FirstName"], lead["LastName"]) == (contact["firstName"], contact["lastName"])
    assert (lead["Email"], lead["Phone"]) == (contact["email"], contact["phoneNumber"])
    assert (lead["Street"], lead["City"], lead["State"]) == ("1 Microsoft Way", "Redmond", "WA")
    assert (lead["PostalCode"], lead["Country"]) == (address["postalCode"], "US")
    assert lead["Description"] == referral["details"]["notes"]
    assert lead["Status"] == "Open - Not Contacted"
    assert lead["Partner_Center_Status__c"] == "New/Pending"
    assert lead["Partner_Center_Sync_Status__c"] == "Synced"
    assert lead["Referral_Link__c"].endswith(referral_id)
    assert "created the Lead" in lead["Audit__c"]
    assert await world.opportunities_for(referral_id) == []
    link = world.store.link_for_referral(referral_id)
    assert link is not None
    assert (link.sobject, link.record_id) == ("Lead", lead["Id"])
    again = await reconcile_key(world.ctx, world.referral_key(referral_id))
    assert again.result == "unchanged", again


async def test_with_lead_sync_off_a_lead_referral_becomes_an_opportunity(world: World) -> None:
    referral = await world.microsoft.send_lead()
    outcome = await reconcile_key(world.ctx, world.referral_key(referral["id"]))
    assert outcome.result == "created", outcome
    assert len(await world.opportunities_for(referral["id"])) == 1
    assert await world.leads_for(referral["id"]) == []


async def test_co_sell_referrals_stay_opportunities_with_lead_sync_on(world: World) -> None:
    world.ctx.lead_sync = True
    referral = await world.microsoft.send_co_sell()
    outcome = await reconcile_key(world.ctx, world.referral_key(referral["id"]))
    assert outcome.result == "created", outcome
    assert len(await world.opportunities_for(referral["id"])) == 1
    assert await world.leads_for(referral["id"]) == []


async def test_accepted_in_partner_center_converts_the_lead(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    await world.microsoft.edit(referral_id, ACCEPT)
    outcome = await reconcile_key(world.ctx, world.referral_key(referral_id))
    assert outcome.result == "created", outcome
    assert "converted Lead" in (outcome.message or "")
    opportunity = await _converted(world, referral_id, lead["Id"])
    referral = await world.microsoft.referral(referral_id)
    assert opportunity["Name"] == referral["name"]
    assert opportunity["StageName"] == "Qualification"  # the mapping's active stage
    assert opportunity["Amount"] == float(referral["details"]["dealValue"])
    assert opportunity["Partner_Center_Status__c"] == "Active/Accepted"
    assert opportunity["Referral_Link__c"].endswith(referral_id)
    roles = await world.query(
        "SELECT Contact.Email FROM OpportunityContactRole "
        f"WHERE OpportunityId = '{opportunity['Id']}'"
    )
    assert [r["Contact"]["Email"] for r in roles] == [lead["Email"]]
    world.tick()
    settled = await reconcile_key(world.ctx, world.opportunity_key(opportunity["Id"]))
    assert settled.result == "unchanged", settled


async def test_conversion_reuses_the_customers_account_and_contact(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    account_id = await world.seller.create_account(lead["Company"], BillingPostalCode="98052")
    contact_id = await world.seller.create(
        "Contact", {"LastName": "Customer", "Email": lead["Email"], "AccountId": account_id}
    )
    await world.microsoft.edit(referral_id, ACCEPT)
    await reconcile_key(world.ctx, world.referral_key(referral_id))
    converted = await world.seller.read("Lead", lead["Id"])
    assert (converted["ConvertedAccountId"], converted["ConvertedContactId"]) == (
        account_id,
        contact_id,
    )


async def test_a_seller_accepts_from_the_lead_status(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    await world.seller.edit("Lead", lead["Id"], {"Status": "Working - Contacted"})
    outcome = await reconcile_key(world.ctx, world.lead_key(lead["Id"]))
    assert outcome.result == "created", outcome
    referral = await world.microsoft.referral(referral_id)
    assert (referral["status"], referral["substatus"]) == ("Active", "Accepted")
    await _converted(world, referral_id, lead["Id"])
    audit = [e.message for e in world.store.audit(outcome.link_id)]
    assert any("accepted the referral from the Lead" in m for m in audit)
    later = await reconcile_key(world.ctx, world.lead_key(lead["Id"]))
    assert later.result == "skipped"
    assert "converted into opportunity" in (later.message or "")


async def test_a_seller_declines_from_the_lead_status(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    await world.seller.edit("Lead", lead["Id"], {"Status": "Closed - Not Converted"})
    outcome = await reconcile_key(world.ctx, world.lead_key(lead["Id"]))
    assert outcome.result == "synced", outcome
    referral = await world.microsoft.referral(referral_id)
    assert (referral["status"], referral["substatus"]) == ("Closed", "Declined")
    assert referral["statusReason"] == "Declined in Salesforce"
    closed = await world.seller.read("Lead", lead["Id"])
    assert closed["Status"] == "Closed - Not Converted"
    assert closed["IsConverted"] is False
    assert closed["Partner_Center_Status__c"] == "Closed/Declined"
    assert await world.opportunities_for(referral_id) == []
    world.tick()
    again = await reconcile_key(world.ctx, world.referral_key(referral_id))
    assert again.result == "unchanged", again


async def test_declined_in_partner_center_closes_the_lead(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    await world.microsoft.edit(
        referral_id,
        [
            {"op": "replace", "path": "/status", "value": "Closed"},
            {"op": "replace", "path": "/substatus", "value": "Declined"},
            {"op": "add", "path": "/statusReason", "value": "Not a fit"},
        ],
    )
    outcome = await reconcile_key(world.ctx, world.referral_key(referral_id))
    assert outcome.result == "synced", outcome
    closed = await world.seller.read("Lead", lead["Id"])
    assert closed["Status"] == "Closed - Not Converted"
    assert closed["Partner_Center_Status__c"] == "Closed/Declined"


async def test_a_sellers_edit_of_the_lead_reaches_the_referral(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    await world.seller.edit("Lead", lead["Id"], {"Description": "Call back on Monday"})
    outcome = await reconcile_key(world.ctx, world.lead_key(lead["Id"]))
    assert outcome.result == "synced", outcome
    referral = await world.microsoft.referral(referral_id)
    assert referral["details"]["notes"] == "Call back on Monday"
    world.tick()
    await world.microsoft.edit(
        referral_id, [{"op": "replace", "path": "/details/notes", "value": "Budget approved"}]
    )
    back = await reconcile_key(world.ctx, world.referral_key(referral_id))
    assert back.result == "synced", back
    assert (await world.seller.read("Lead", lead["Id"]))["Description"] == "Budget approved"
    world.tick()
    idle = await reconcile_key(world.ctx, world.lead_key(lead["Id"]))
    assert idle.result == "unchanged", idle


async def test_the_lead_poller_sees_a_sellers_edit(world: World) -> None:
    _, lead = await _lead_referral(world)
    first = await poll_salesforce(world.ctx.salesforce, Cursor(), sobject="Lead")
    assert first.keys == (world.lead_key(lead["Id"]),)
    world.tick()
    await world.seller.edit("Lead", lead["Id"], {"Description": "edited"})
    second = await poll_salesforce(world.ctx.salesforce, first.cursor, sobject="Lead")
    assert second.keys == (world.lead_key(lead["Id"]),)


@pytest.mark.parametrize("failpoint", ["after-lead-convert", "after-lead-upsert"])
async def test_a_crash_in_between_still_ends_with_one_record(world: World, failpoint: str) -> None:
    world.ctx.lead_sync = True
    world.ctx.failpoints.add(failpoint)
    referral = await world.microsoft.send_lead()
    referral_id = referral["id"]
    key = world.referral_key(referral_id)
    if failpoint == "after-lead-convert":
        world.ctx.failpoints.clear()
        await reconcile_key(world.ctx, key)
        world.ctx.failpoints.add(failpoint)
        await world.microsoft.edit(referral_id, ACCEPT)
    with pytest.raises(FailpointError):
        await reconcile_key(world.ctx, key)
    world.ctx.failpoints.clear()
    outcome = await reconcile_key(world.ctx, key)
    assert outcome.result == "created", outcome
    (lead,) = await world.leads_for(referral_id)
    if failpoint == "after-lead-convert":
        await _converted(world, referral_id, lead["Id"])
        accounts = await world.query("SELECT Id FROM Account")
        assert len(accounts) == 1
    else:
        assert await world.opportunities_for(referral_id) == []
    world.tick()
    settled = await reconcile_key(world.ctx, key)
    assert settled.result == "unchanged", settled


async def test_a_lead_converted_by_hand_accepts_the_referral(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    await world.ctx.salesforce.convert_lead(LeadConvert(lead["Id"], "Closed - Converted"))
    outcome = await reconcile_key(world.ctx, world.lead_key(lead["Id"]))
    assert outcome.result == "created", outcome
    referral = await world.microsoft.referral(referral_id)
    assert (referral["status"], referral["substatus"]) == ("Active", "Accepted")
    opportunity = await _converted(world, referral_id, lead["Id"])
    assert opportunity["StageName"] == "Qualification"


async def test_a_refused_conversion_is_parked_with_what_to_do(world: World) -> None:
    referral_id, lead = await _lead_referral(world)
    world.ctx.mapping = world.ctx.mapping.model_copy(
        update={
            "lead": world.ctx.mapping.lead.model_copy(  # type: ignore[union-attr]
                update={
                    "statuses": world.ctx.mapping.lead.statuses.model_copy(  # type: ignore[union-attr]
                        update={
                            "converted": "Working - Contacted",
                            "accepted": "Open - Not Contacted",
                        }
                    )
                }
            )
        }
    )
    await world.microsoft.edit(referral_id, ACCEPT)
    outcome = await reconcile_key(world.ctx, world.referral_key(referral_id))
    assert outcome.result == "error", outcome
    assert "cannot convert Lead" in (outcome.message or "")
    assert "converted status" in (outcome.message or "")
    parked = await world.seller.read("Lead", lead["Id"])
    assert parked["Partner_Center_Sync_Status__c"] == "Error"
    assert "invalid convertedStatus" in parked["Partner_Center_Sync_Error__c"]
    assert await world.opportunities_for(referral_id) == []
