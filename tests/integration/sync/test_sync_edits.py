"""Edits flow both ways through a linked pair; won and lost; conflicts; refusals; no echo writes."""

from __future__ import annotations

import dataclasses

from sync_world import World

from cosell.sync.run.reconcile import reconcile_key


async def test_seller_edits_flow_to_partner_center_in_three_calls(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.seller.edit(
        "Opportunity",
        opp_id,
        {
            "Name": "Fabrikam - Azure migration, phase 2",
            "Amount": 31500.5,
            "CurrencyIsoCode": "EUR",
            "CloseDate": "2026-08-15",
            "Description": "second notes",
        },
    )
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    spent = await world.calls() - before
    assert outcome.result == "synced", outcome
    assert set(outcome.to_partner_center) == {
        "name",
        "deal_value",
        "currency",
        "close_date",
        "notes",
    }
    referral = await world.microsoft.referral(rid)
    assert referral["name"] == "Fabrikam - Azure migration, phase 2"
    assert referral["details"]["dealValue"] == 31500.5
    assert referral["details"]["currency"] == "EUR"
    assert referral["details"]["closingDateTime"].startswith("2026-08-15")
    assert referral["details"]["notes"] == "second notes"
    assert (spent.reads, spent.writes) == (2, 1)  # read both sides, one PATCH
    assert outcome.api_calls == spent.total
    # The echo (Partner Center's webhook for our own write) writes nothing.
    before = await world.calls()
    echo = await reconcile_key(world.ctx, world.referral_key(rid))
    assert echo.result == "unchanged"
    assert (await world.calls() - before).writes == 0
    entries = world.store.audit(outcome.link_id or "")
    assert "Salesforce → Partner Center" in entries[0].message


async def test_partner_center_edits_flow_to_salesforce_in_three_calls(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.microsoft.edit(
        rid,
        [
            {"op": "replace", "path": "/name", "value": "Renamed in Partner Center"},
            {"op": "replace", "path": "/details/dealValue", "value": 99000},
            {"op": "replace", "path": "/details/currency", "value": "GBP"},
            {"op": "replace", "path": "/details/closingDateTime", "value": "2026-12-01T00:00:00Z"},
            {"op": "replace", "path": "/details/notes", "value": "notes from Partner Center"},
        ],
    )
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    spent = await world.calls() - before
    assert outcome.result == "synced", outcome
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Name"] == "Renamed in Partner Center"
    assert opportunity["Amount"] == 99000
    assert opportunity["CurrencyIsoCode"] == "GBP"
    assert opportunity["CloseDate"] == "2026-12-01"
    assert opportunity["Description"] == "notes from Partner Center"
    assert "Partner Center → Salesforce" in opportunity["Audit__c"].splitlines()[0]
    # Read both sides, one PATCH with the audit; the notes changed in Partner Center are also
    # kept as a Note (`notes_history`): one SOQL for the notes there, a ContentNote, its link.
    assert (spent.reads, spent.writes) == (2 + 1, 1 + 2)
    before = await world.calls()
    for _ in range(5):  # repeated notifications of either side
        assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "unchanged"
        assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "unchanged"
    assert (await world.calls() - before).writes == 0


async def test_won_and_lost_flow_from_salesforce(world: World) -> None:
    won_opp, won_rid = await world.shared_pair()
    lost_opp, lost_rid = await world.shared_pair(Name="Second deal")
    world.tick(72 * 3600)  # Partner Center takes Won 72 hours after creation
    await world.seller.edit("Opportunity", won_opp, {"StageName": "Closed Won"})
    await world.seller.edit("Opportunity", lost_opp, {"StageName": "Closed Lost"})
    assert (await reconcile_key(world.ctx, world.opportunity_key(won_opp))).result == "synced"
    assert (await reconcile_key(world.ctx, world.opportunity_key(lost_opp))).result == "synced"
    won = await world.microsoft.referral(won_rid)
    lost = await world.microsoft.referral(lost_rid)
    assert (won["status"], won["substatus"]) == ("Closed", "Won")
    assert (lost["status"], lost["substatus"]) == ("Closed", "Lost")
    assert lost["statusReason"]
    assert (await world.seller.opportunity(won_opp))["Partner_Center_Status__c"] == "Closed/Won"


async def test_won_and_lost_flow_from_partner_center(world: World) -> None:
    won_opp, won_rid = await world.shared_pair()
    lost_opp, lost_rid = await world.shared_pair(Name="Second deal")
    world.tick(72 * 3600)  # Partner Center takes Won 72 hours after creation
    await world.microsoft.edit(
        won_rid,
        [
            {"op": "replace", "path": "/status", "value": "Closed"},
            {"op": "replace", "path": "/substatus", "value": "Won"},
        ],
    )
    await world.microsoft.edit(
        lost_rid,
        [
            {"op": "replace", "path": "/status", "value": "Closed"},
            {"op": "replace", "path": "/substatus", "value": "Lost"},
            {"op": "replace", "path": "/statusReason", "value": "budget cut"},
        ],
    )
    world.tick()
    assert (await reconcile_key(world.ctx, world.referral_key(won_rid))).result == "synced"
    assert (await reconcile_key(world.ctx, world.referral_key(lost_rid))).result == "synced"
    won = await world.seller.opportunity(won_opp)
    lost = await world.seller.opportunity(lost_opp)
    assert won["StageName"] == "Closed Won"
    assert won["Partner_Center_Status__c"] == "Closed/Won"
    assert lost["StageName"] == "Closed Lost"
    assert lost["Partner_Center_Status__c"] == "Closed/Lost"


async def test_a_concurrent_edit_of_one_field_ends_as_the_owner_says(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    await world.microsoft.edit(
        rid, [{"op": "replace", "path": "/details/dealValue", "value": 40000}]
    )
    await world.seller.edit("Opportunity", opp_id, {"Amount": 45000})
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "conflict", outcome
    # The default mapping makes Salesforce the owner of the deal value.
    referral = await world.microsoft.referral(rid)
    opportunity = await world.seller.opportunity(opp_id)
    assert referral["details"]["dealValue"] == 45000
    assert opportunity["Amount"] == 45000
    [conflict] = world.store.conflicts(outcome.link_id)
    assert conflict.field == "deal_value"
    assert (conflict.partner_center, conflict.salesforce, conflict.base) == (
        "40000.00",
        "45000.00",
        "25000.00",
    )
    assert conflict.winner == "salesforce"
    assert "'40000.00' lost" in world.store.audit(outcome.link_id or "")[0].message
    assert "'40000.00' lost" in opportunity["Audit__c"]
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "unchanged"


async def test_a_concurrent_stage_edit_is_won_by_partner_center(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    world.tick(72 * 3600)  # Partner Center takes Won 72 hours after creation
    await world.microsoft.edit(
        rid,
        [
            {"op": "replace", "path": "/status", "value": "Closed"},
            {"op": "replace", "path": "/substatus", "value": "Won"},
        ],
    )
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Lost"})
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "conflict", outcome
    assert (await world.seller.opportunity(opp_id))["StageName"] == "Closed Won"
    [conflict] = world.store.conflicts(outcome.link_id)
    assert (conflict.field, conflict.winner) == ("stage", "partner_center")


async def test_an_edit_after_won_is_refused_and_parked_with_a_clear_error(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    world.tick(72 * 3600)  # Partner Center takes Won 72 hours after creation
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Won"})
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    world.tick()
    await world.seller.edit("Opportunity", opp_id, {"Amount": 1})
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "refused", outcome
    assert outcome.message is not None
    assert "Closed/Won" in outcome.message
    assert (await world.microsoft.referral(rid))["details"]["dealValue"] == 25000
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
    assert opportunity["Partner_Center_Sync_Error__c"] == outcome.message[:255]
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert link.sync_status == "Error"
    assert link.last_error == outcome.message
    # Parked: retried on the next notification or sweep, which writes nothing new.
    before = await world.calls()
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "refused"
    assert (await world.calls() - before).writes == 0
    # The seller puts the value back: the error clears.
    world.tick()
    await world.seller.edit("Opportunity", opp_id, {"Amount": 25000})
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None


async def test_a_dry_run_writes_nothing_anywhere(world: World) -> None:
    opp_id, rid = await world.shared_pair()
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    await world.seller.edit("Opportunity", opp_id, {"Amount": 50000})
    await world.microsoft.edit(rid, [{"op": "replace", "path": "/details/notes", "value": "x"}])
    account_id = await world.seller.create_account("Other")
    new_opp = await world.seller.create_opportunity(account_id, Name="Not yet shared")
    sent = await world.microsoft.send_co_sell()
    dry = dataclasses.replace(world.ctx, dry_run=True)
    base = world.store.snapshot(link.id)
    audit = world.store.audit(link.id)
    before = await world.calls()
    planned = await reconcile_key(dry, world.opportunity_key(opp_id))
    created = await reconcile_key(dry, world.opportunity_key(new_opp))
    incoming = await reconcile_key(dry, world.referral_key(sent["id"]))
    assert (await world.calls() - before).writes == 0
    assert planned.dry_run
    assert planned.to_partner_center == {"deal_value": "50000.00"}
    assert planned.to_salesforce == {"notes": "x"}
    assert (created.result, incoming.result) == ("created", "created")
    assert world.store.snapshot(link.id) == base
    assert world.store.audit(link.id) == audit
    assert world.store.link_for_record("Opportunity", new_opp) is None
    assert world.store.link_for_referral(sent["id"]) is None
    assert await world.opportunities_for(sent["id"]) == []


async def incoming_opportunity(world: World) -> tuple[str, str]:
    sent = await world.microsoft.send_co_sell()
    assert (await reconcile_key(world.ctx, world.referral_key(sent["id"]))).result == "created"
    [opportunity] = await world.opportunities_for(sent["id"])
    world.tick()
    return opportunity["Id"], sent["id"]


async def test_moving_out_of_the_on_hold_stage_accepts_the_referral(world: World) -> None:
    opp_id, rid = await incoming_opportunity(world)
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Qualification"})
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "synced", outcome
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Active", "Accepted")
    world.tick()
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "unchanged"
    assert (await world.seller.opportunity(opp_id))["Partner_Center_Status__c"] == "Active/Accepted"


async def test_closing_lost_while_on_hold_declines_the_referral(world: World) -> None:
    opp_id, rid = await incoming_opportunity(world)
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Lost"})
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "synced", outcome
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Closed", "Declined")
    assert referral["statusReason"]
    world.tick()
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "unchanged"
