"""Sync in a customised org: the Salesforce sandbox with `sandbox/examples/customised-org.yaml`.

The org refuses what a clean org accepts (issue 16). Each test meets one hazard with the
mapping `cosell check` asks for in that org (`fitted_mapping`), or with that mapping broken one
way, and asserts what the admin would want: the deal parked with the field, the org's message
and the fix, nothing else affected; an org-wide field problem raised once as
`OrgFieldAccessError` instead of parking deals; a duplicate linked instead of failing; the
mapping's record type on creates; the org's automation adopted without a second write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sync_world import World, build_world

from cosell.commands.status import collect, report_json
from cosell.mapping.loader import default_mapping_text, parse_mapping
from cosell.sync.plan.errors import GlobalSyncError, OrgFieldAccessError
from cosell.sync.plan.retry import shown_message
from cosell.sync.plan.sides import SYNC_ERROR_LENGTH
from cosell.sync.run.batch import reconcile_batch
from cosell.sync.run.reconcile import reconcile_key
from cosell_sandbox.salesforce.orgprofile import load_profile, record_type_id

EXAMPLES = Path(__file__).resolve().parents[3] / "sandbox" / "examples"
EXAMPLE = EXAMPLES / "customised-org.yaml"
MAPPING = EXAMPLES / "customised-org-mapping.yaml"


def fitted_text(*, remove_visibility: bool = True) -> str:
    """The mapping shipped for the example org (`cosell check`'s fixes), as text.

    `remove_visibility=False`: with the default mapping's visibility field put back.
    """
    text = MAPPING.read_text(encoding="utf-8")
    if remove_visibility:
        return text
    default = default_mapping_text()
    lines = default.splitlines()
    index = next(i for i, line in enumerate(lines) if "Opportunity.Referral_Visibility__c" in line)
    start = max(i for i in range(index) if lines[i].startswith("  - name:"))
    end = next(i for i in range(index, len(lines)) if lines[i].startswith("  - name:"))
    field = "\n".join(lines[start:end]) + "\n"
    return text.replace("\n  - name: deal_type\n", "\n" + field + "  - name: deal_type\n", 1)


def test_the_shipped_mapping_is_the_default_with_the_fixes_check_asks_for() -> None:
    text = default_mapping_text()
    fixed = (
        text.replace("salesforce: Opportunity.Description", "salesforce: Opportunity.NextStep")
        .replace("  active_stage: Qualification", "  active_stage: Needs Analysis")
        .replace(
            "\nfields:\n",
            "\nrecord_type: Partner_Deal\ndefaults:\n  Opportunity.Region__c: EMEA\nfields:\n",
            1,
        )
    )
    shipped = fitted_text(remove_visibility=False)
    assert shipped.split("version: 1", 1)[1] == fixed.split("version: 1", 1)[1]


def remapped(world: World, text: str) -> World:
    """The world syncing with the mapping `text`."""
    return replace(world, ctx=replace(world.ctx, mapping=parse_mapping(text, "<test mapping>")))


@pytest.fixture
async def org(tmp_path: Path, sf_key_dir: Path) -> AsyncIterator[World]:
    async with build_world(
        tmp_path,
        sf_key_dir,
        org_profile=load_profile(EXAMPLE),
        mapping=parse_mapping(fitted_text(), "<fitted mapping>"),
    ) as built:
        yield built


async def incoming(world: World, **overrides: Any) -> tuple[str, str]:
    """Microsoft's co-sell referral, arrived as an opportunity: (opportunity id, referral id)."""
    sent = await world.microsoft.send_co_sell(**overrides)
    outcome = await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    assert outcome.result == "created", outcome
    [opportunity] = await world.opportunities_for(sent["id"])
    world.tick()
    return str(opportunity["Id"]), str(sent["id"])


async def pc_status(world: World, rid: str, status: str, substatus: str) -> None:
    """The partner's user moves the referral in Partner Center."""
    await world.microsoft.edit(
        rid,
        [
            {"op": "replace", "path": "/status", "value": status},
            {"op": "replace", "path": "/substatus", "value": substatus},
        ],
    )
    world.tick()


async def test_creates_use_the_mapping_record_type_resolved_once(org: World) -> None:
    world = remapped(
        org, fitted_text().replace("record_type: Partner_Deal", "record_type: Enterprise_Deal")
    )
    first, _ = await incoming(world)
    second, _ = await incoming(world)
    enterprise = record_type_id("Opportunity", "Enterprise_Deal")
    for opp_id in (first, second):
        assert (await world.seller.opportunity(opp_id))["RecordTypeId"] == enterprise
    stats = (await world.sf_http.get("http://sf.sandbox.test/control/stats")).json()
    describes = sum(c["count"] for c in stats["calls"] if c["route"].endswith("/describe"))
    assert describes == 1  # describe's recordTypeInfos read once for both creates


async def test_an_unknown_record_type_is_the_connection_problem(org: World) -> None:
    world = remapped(
        org, fitted_text().replace("record_type: Partner_Deal", "record_type: Partner")
    )
    sent = await world.microsoft.send_co_sell()
    with pytest.raises(GlobalSyncError) as raised:
        await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    assert raised.value.side == "salesforce"
    assert "'Partner' is not an Opportunity record type" in str(raised.value)
    assert "Partner_Deal" in str(raised.value)
    assert await world.opportunities_for(sent["id"]) == []
    assert world.store.link_for_referral(sent["id"]) is None  # nothing half-made


async def test_a_stage_outside_the_sales_process_parks_that_deal_with_the_allowed_stages(
    org: World,
) -> None:
    # The default active stage, Qualification, is not in Partner Deal's sales process.
    world = remapped(
        org,
        fitted_text().replace("  active_stage: Needs Analysis", "  active_stage: Qualification"),
    )
    opp_id, rid = await incoming(world)
    other_opp, other_rid = await incoming(world)
    await pc_status(world, rid, "Active", "Accepted")
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "error", outcome
    message = outcome.message or ""
    assert "Opportunity.StageName does not accept the value cosell wrote" in message
    assert "bad value for restricted picklist field: Qualification" in message
    assert (
        "Opportunity.StageName of record type Partner_Deal allows: Prospecting, Needs Analysis, "
        "Closed Won, Closed Lost" in message
    )
    assert "Map the value to an allowed one" in message
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["StageName"] == "Prospecting"
    assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
    link = world.store.get_link(outcome.link_id or "")
    assert link is not None
    assert link.last_error == message
    # The org's rule may be changed by its admin: retried by itself, the time on the record.
    assert link.retry_at is not None
    shown = shown_message(message, link.retry_at, limit=SYNC_ERROR_LENGTH)
    assert opportunity["Partner_Center_Sync_Error__c"] == shown
    # Nothing else is affected: the other deal's edit still syncs.
    await world.microsoft.edit(
        other_rid, [{"op": "replace", "path": "/details/dealValue", "value": 777}]
    )
    world.tick()
    assert (await reconcile_key(world.ctx, world.referral_key(other_rid))).result == "synced"
    assert (await world.seller.opportunity(other_opp))["Amount"] == 777


async def test_a_validation_rule_parks_that_deal_with_its_field_and_message(org: World) -> None:
    opp_id, rid = await incoming(org)
    other_opp, other_rid = await incoming(org)
    await pc_status(org, rid, "Active", "Accepted")
    assert (await reconcile_key(org.ctx, org.referral_key(rid))).result == "synced"
    # The seller clears the amount: Partner Center needs a deal value, so it is not sent.
    await org.seller.edit("Opportunity", opp_id, {"Amount": None})
    org.tick()
    assert (await reconcile_key(org.ctx, org.opportunity_key(opp_id))).result == "refused"
    # Won in Partner Center: the org's Amount_Before_Commit rule refuses Closed Won without one.
    org.tick(72 * 3600)
    await pc_status(org, rid, "Closed", "Won")
    outcome = await reconcile_key(org.ctx, org.referral_key(rid))
    assert outcome.result == "error", outcome
    message = outcome.message or ""
    assert "a validation rule of the org refused the Opportunity on Opportunity.Amount" in message
    assert '"Enter an amount before committing the deal."' in message
    assert "exempt cosell's integration user" in message
    opportunity = await org.seller.opportunity(opp_id)
    assert opportunity["StageName"] == "Needs Analysis"
    assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
    assert message in org.store.audit(outcome.link_id or "")[0].message
    # `cosell status` lists it, alone, with the org's message.
    report = report_json(collect(org.store, clock=org.clock))
    assert [(e["record_id"], e["error"]) for e in report["errors"]] == [(opp_id, message)]
    # Meeting it again tries the write once (the rule may pass now) and rewrites no status;
    # the other deal keeps syncing.
    before = await org.calls()
    assert (await reconcile_key(org.ctx, org.referral_key(rid))).result == "error"
    assert (await org.calls() - before).salesforce_writes == 1
    await pc_status(org, other_rid, "Active", "Accepted")
    assert (await reconcile_key(org.ctx, org.referral_key(other_rid))).result == "synced"
    assert (await org.seller.opportunity(other_opp))["StageName"] == "Needs Analysis"


async def test_a_required_field_parks_the_create_with_a_defaults_entry(org: World) -> None:
    opp_id, _ = await incoming(org)  # the fitted mapping fills Region__c
    world = remapped(org, fitted_text().replace("defaults:\n  Opportunity.Region__c: EMEA\n", ""))
    sent = await world.microsoft.send_co_sell()
    outcome = await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    assert outcome.result == "error", outcome
    message = outcome.message or ""
    assert "the org requires Opportunity.Region__c on Opportunity" in message
    assert "Required fields are missing: [Region__c]" in message
    assert "`defaults: {Opportunity.Region__c: <value>}`" in message
    assert await world.opportunities_for(sent["id"]) == []
    assert world.store.get_link(outcome.link_id or "") is not None
    assert (await world.seller.opportunity(opp_id))["Region__c"] == "EMEA"


async def test_a_read_only_field_is_the_connection_problem_not_the_deal(org: World) -> None:
    opp_id, rid = await incoming(org)
    # Notes mapped to Description, which the org makes read-only for the integration user.
    world = remapped(
        org,
        fitted_text().replace(
            "salesforce: Opportunity.NextStep", "salesforce: Opportunity.Description"
        ),
    )
    await world.microsoft.edit(
        rid, [{"op": "replace", "path": "/details/notes", "value": "new notes"}]
    )
    world.tick()
    with pytest.raises(OrgFieldAccessError) as raised:
        await reconcile_key(world.ctx, world.referral_key(rid))
    error = raised.value
    assert (error.side, error.sobject, error.fields, error.hidden) == (
        "salesforce",
        "Opportunity",
        ("Description",),
        False,
    )
    assert "Opportunity.Description is read-only for cosell's integration user" in str(error)
    assert "direction: to_partner_center" in str(error)
    # A create meets it too, and raises the same instead of parking the new deal.
    sent = await world.microsoft.send_co_sell()
    with pytest.raises(OrgFieldAccessError):
        await reconcile_key(world.ctx, world.referral_key(sent["id"]))
    # No deal shows an error for the connection's problem.
    assert (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Status__c"] == "Synced"
    assert [lk.last_error for lk in world.store.links() if lk.last_error] == []


async def test_a_hidden_field_is_the_connection_problem_not_the_deal(org: World) -> None:
    opp_id, _rid = await incoming(org)
    world = remapped(org, fitted_text(remove_visibility=False))  # maps the hidden field
    with pytest.raises(OrgFieldAccessError) as raised:
        await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert raised.value.hidden
    assert raised.value.fields == ("Referral_Visibility__c",)
    assert "hides Opportunity.Referral_Visibility__c" in str(raised.value)
    assert (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Status__c"] == "Synced"
    # A batch (a sweep, a backfill) reads every deal with one query: the same, once.
    second, _ = await incoming(org)
    keys = [world.opportunity_key(opp_id), world.opportunity_key(second)]
    with pytest.raises(OrgFieldAccessError):
        await reconcile_batch(world.ctx, keys)
    assert [lk.last_error for lk in world.store.links() if lk.last_error] == []


async def test_a_duplicate_rule_links_the_existing_account_and_contact(org: World) -> None:
    # The org holds the customer under another spelling of the country (cosell's own match is
    # on Name + postal code + country, so it would create one), and the customer contact under
    # another account: the org's duplicate rules match both.
    account_id = await org.seller.create_account("Tailspin Toys", BillingCountry="USA")
    contact_id = await org.seller.create(
        "Contact", {"LastName": "Customer", "Email": "ana@tailspin.example"}
    )
    profile = {
        "name": "Tailspin Toys",
        "address": {
            "addressLine1": "1 Main St",
            "city": "Redmond",
            "state": "WA",
            "postalCode": "98052",
            "country": "US",
        },
        "team": [{"firstName": "Ana", "lastName": "Customer", "email": "ana@tailspin.example"}],
    }
    sent = await org.microsoft.send_co_sell(customerProfile=profile)
    outcome = await reconcile_key(org.ctx, org.referral_key(sent["id"]))
    assert outcome.result == "created", outcome
    [opportunity] = await org.opportunities_for(sent["id"])
    assert opportunity["AccountId"] == account_id
    roles = [
        r
        for r in org.sf_sandbox.store.rows("OpportunityContactRole", include_deleted=False)
        if r["OpportunityId"] == opportunity["Id"]
    ]
    assert [r["ContactId"] for r in roles] == [contact_id]
    accounts = [
        a
        for a in org.sf_sandbox.store.rows("Account", include_deleted=False)
        if a["Name"] == "Tailspin Toys"
    ]
    assert len(accounts) == 1  # no duplicate made
    said = org.store.audit(outcome.link_id or "")[0].message
    assert f"linked the existing account {account_id}" in said
    assert "Standard_Account_Duplicate_Rule" in said
    assert f"contact {contact_id}" in said
    assert "Standard_Contact_Duplicate_Rule" in said
    assert "linked the existing account" in opportunity["Audit__c"]


async def test_automation_rewriting_a_written_field_is_adopted_without_a_second_write(
    org: World,
) -> None:
    # The org's Next_Step_From_Stage Flow rewrites NextStep (the notes here) whenever the stage
    # changes; each stage cosell writes is followed by the org's rewrite.
    opp_id, rid = await incoming(org)
    written: list[int] = []
    steps = (
        ("Active", "Accepted", "Needs Analysis", "sent to Partner Center: notes"),
        ("Closed", "Won", "Closed Won", "kept as agreed: notes"),  # a won referral takes no edit
    )
    for status, substatus, stage, adopted in steps:
        if substatus == "Won":
            org.tick(72 * 3600)
        await pc_status(org, rid, status, substatus)
        before = await org.calls()
        assert (await reconcile_key(org.ctx, org.referral_key(rid))).result == "synced"
        org.tick()
        # The echo of cosell's write (a change event of the opportunity) adopts the rewrite.
        adoption = await reconcile_key(org.ctx, org.opportunity_key(opp_id))
        org.tick()
        for key in (org.referral_key(rid), org.opportunity_key(opp_id)):  # and it settles
            settled = await reconcile_key(org.ctx, key)
            assert settled.result == "unchanged", settled
        spent = await org.calls() - before
        written.append(spent.salesforce_writes)
        opportunity = await org.seller.opportunity(opp_id)
        assert opportunity["StageName"] == stage
        assert opportunity["NextStep"] == f"Follow up: {stage}"
        assert adoption.adopted == 1  # counted (the service's cosell_automation_adopted_total)
        entry = org.store.audit(adoption.link_id or "")[0].message
        assert "Salesforce automation rewrote 1 field(s) after cosell's write" in entry
        assert adopted in entry
        notes = (await org.microsoft.referral(rid))["details"]["notes"]
        if substatus == "Won":  # kept: no error for the seller, nothing sent
            assert notes == "Follow up: Needs Analysis"
            assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
            assert spent.partner_center_writes == 0
        else:  # notes flow both ways: Partner Center gets the org's value, its one write
            assert notes == f"Follow up: {stage}"
            assert spent.partner_center_writes == 1
    assert written == [1, 1]  # one Salesforce write per change, not two


async def test_automation_on_a_one_way_field_is_kept_as_agreed(org: World) -> None:
    # Notes flowing only to Salesforce: the org's rewrite stays, nothing is written anywhere,
    # and the next Partner Center change of the notes is written once, with no conflict.
    text = fitted_text()
    notes = text.index("salesforce: Opportunity.NextStep")
    text = text[:notes] + text[notes:].replace("direction: both", "direction: to_salesforce", 1)
    world = remapped(org, text)
    opp_id, rid = await incoming(world)
    await pc_status(world, rid, "Active", "Accepted")
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "synced"
    world.tick()
    before = await world.calls()
    adoption = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert adoption.result == "unchanged"
    assert (await world.calls() - before).writes == 0
    for key in (world.referral_key(rid), world.opportunity_key(opp_id)):  # it stays agreed
        assert (await reconcile_key(world.ctx, key)).result == "unchanged"
    assert (await world.calls() - before).writes == 0
    entry = world.store.audit(adoption.link_id or "")[0].message
    assert "kept as agreed: notes" in entry
    assert (await world.microsoft.referral(rid))["details"]["notes"] != "Follow up: Needs Analysis"
    await world.microsoft.edit(
        rid, [{"op": "replace", "path": "/details/notes", "value": "call the CFO"}]
    )
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result == "synced", outcome
    assert (await world.calls() - before).salesforce_writes >= 1
    assert (await world.seller.opportunity(opp_id))["NextStep"] == "call the CFO"
    assert world.store.conflicts(outcome.link_id) == []


async def test_a_duplicate_rule_links_the_existing_lead(org: World) -> None:
    org.ctx.lead_sync = True
    referral = await org.microsoft.send_lead()
    email = referral["customerProfile"]["team"][0]["email"]
    lead_id = await org.seller.create(
        "Lead", {"LastName": "Known", "Company": "Known Co", "Email": email}
    )
    other = await org.seller.create(
        "Lead", {"LastName": "Other", "Company": "Other Co", "Email": "someone@else.example"}
    )
    outcome = await reconcile_key(org.ctx, org.referral_key(referral["id"]))
    assert outcome.result == "created", outcome
    assert f"linked the existing Lead {lead_id}" in (outcome.message or "")
    assert "Standard_Lead_Duplicate_Rule" in (outcome.message or "")
    assert [row["Id"] for row in await org.leads_for(referral["id"])] == [lead_id]
    link = org.store.link_for_referral(referral["id"])
    assert link is not None
    assert (link.sobject, link.record_id) == ("Lead", lead_id)
    lead = await org.seller.read("Lead", lead_id)
    assert lead["Partner_Center_Sync_Status__c"] == "Synced"
    assert lead["LastName"] == "Known"  # the seller's values stay until the next reconcile
    assert (await org.seller.read("Lead", other))["Referral_Identifier__c"] is None
    org.tick()
    again = await reconcile_key(org.ctx, org.referral_key(referral["id"]))
    assert again.result in ("synced", "unchanged"), again
