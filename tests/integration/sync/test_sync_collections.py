"""Collections on the sandboxes: Microsoft solutions, customer contacts and the team, both ways.

Each test changes one side (or both) the way a seller or a Partner Center user would, runs the
reconcile, and reads both sandboxes back; the API-call counts of the reconcile that follows
show that a link with collections in sync still costs 2 reads and 0 writes.
"""

from __future__ import annotations

from typing import Any

from sync_world import SF_BASE, World

from cosell.sync.run.batch import sweep_page
from cosell.sync.run.reconcile import reconcile_key

NORTHWIND = {"BillingPostalCode": "98052", "BillingCountry": "US"}


async def delete(world: World, sobject: str, record_id: str) -> None:
    """The seller deletes a record in the Salesforce UI."""
    response = await world.sf_http.delete(f"{SF_BASE}/control/records/{sobject}/{record_id}")
    assert response.status_code == 204, response.text


async def add_solution(world: World, opp_id: str, solution_id: str) -> str:
    return await world.seller.create(
        "Microsoft_Solution__c",
        {
            "Opportunity__c": opp_id,
            "Name": f"Solution {solution_id}",
            "Solution_Id__c": solution_id,
            "Solution_Type__c": "Name",
        },
    )


async def add_contact_role(
    world: World, account_id: str, opp_id: str, first: str, email: str, *, primary: bool = True
) -> str:
    contact_id = await world.seller.create(
        "Contact",
        {"AccountId": account_id, "FirstName": first, "LastName": "Customer", "Email": email},
    )
    return await world.seller.create(
        "OpportunityContactRole",
        {"OpportunityId": opp_id, "ContactId": contact_id, "IsPrimary": primary},
    )


def rows(world: World, sobject: str, **where: Any) -> list[dict[str, Any]]:
    return [
        row
        for row in world.sf_sandbox.store.rows(sobject, include_deleted=False)
        if all(row.get(k) == v for k, v in where.items())
    ]


def solution_ids(referral: dict[str, Any]) -> list[str]:
    requirements = (referral.get("details") or {}).get("requirements") or {}
    return sorted(s["id"] for s in requirements.get("solutions") or [])


async def synced(world: World, key: str) -> None:
    outcome = await reconcile_key(world.ctx, key)
    assert outcome.result == "synced", outcome


async def assert_unchanged(world: World, opp_id: str, referral_id: str) -> None:
    """Both keys of the link plan nothing: 2 reads and 0 writes each."""
    for key in (world.opportunity_key(opp_id), world.referral_key(referral_id)):
        before = await world.calls()
        outcome = await reconcile_key(world.ctx, key)
        spent = await world.calls() - before
        assert outcome.result == "unchanged", outcome
        assert (spent.reads, spent.writes) == (2, 0)


async def partner_led_pair(world: World) -> tuple[str, str, str]:
    """A referral shared from Salesforce without asking Microsoft for help, with one contact,
    its collections agreed: (account id, opportunity id, referral id)."""
    account_id = await world.seller.create_account("Northwind")
    opp_id = await world.seller.create_opportunity(account_id, Name="Northwind - data")
    await add_contact_role(world, account_id, opp_id, "Ana", "ana@nw.example")
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "created", outcome
    referral_id = (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]
    world.tick()
    await assert_unchanged(world, opp_id, referral_id)  # the first reconcile agrees the base
    world.tick()
    return account_id, opp_id, referral_id


async def co_sell_pair(world: World) -> tuple[str, str, str]:
    """A referral shared with Microsoft (help asked, one solution, one contact), in sync."""
    account_id = await world.seller.create_account("Contoso")
    opp_id = await world.seller.create_opportunity(
        account_id, Name="Contoso - PoC", How_can_Microsoft_help__c="Proof of concept or demo"
    )
    await add_solution(world, opp_id, "SOL-POC")
    await add_contact_role(world, account_id, opp_id, "Ana", "ana@contoso.example")
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "created", outcome
    referral_id = (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]
    world.tick()
    await assert_unchanged(world, opp_id, referral_id)
    world.tick()
    return account_id, opp_id, referral_id


# -- Microsoft solutions ----------------------------------------------------------------------


async def test_a_solution_added_in_salesforce_reaches_partner_center(world: World) -> None:
    _, opp_id, rid = await partner_led_pair(world)
    await add_solution(world, opp_id, "SOL-A")
    world.tick()
    before = await world.calls()
    await synced(world, world.opportunity_key(opp_id))
    spent = await world.calls() - before
    assert spent.partner_center_writes == 1  # the solutions ride in the one JSON Patch
    referral = await world.microsoft.referral(rid)
    [solution] = referral["details"]["requirements"]["solutions"]
    assert {k: v for k, v in solution.items() if v is not None} == {
        "id": "SOL-A",
        "name": "Solution SOL-A",
        "type": "Name",
    }
    await assert_unchanged(world, opp_id, rid)


async def test_a_solution_removed_in_partner_center_is_removed_from_salesforce(
    world: World,
) -> None:
    _, opp_id, rid = await partner_led_pair(world)
    await add_solution(world, opp_id, "SOL-A")
    await add_solution(world, opp_id, "SOL-B")
    world.tick()
    await synced(world, world.opportunity_key(opp_id))
    world.tick()
    await world.microsoft.edit(
        rid,
        [
            {
                "op": "replace",
                "path": "/details/requirements/solutions",
                "value": [{"id": "SOL-B", "name": "Solution SOL-B", "type": "Name"}],
            }
        ],
    )
    before = await world.calls()
    await synced(world, world.referral_key(rid))
    spent = await world.calls() - before
    assert spent.salesforce_writes == 1  # the delete, in one composite call
    assert [r["Solution_Id__c"] for r in rows(world, "Microsoft_Solution__c")] == ["SOL-B"]
    await assert_unchanged(world, opp_id, rid)


async def test_solutions_added_on_both_sides_at_once_are_all_kept_once(world: World) -> None:
    _, opp_id, rid = await partner_led_pair(world)
    await add_solution(world, opp_id, "SOL-SF")
    await world.microsoft.edit(
        rid,
        [
            {
                "op": "add",
                "path": "/details/requirements",
                "value": {
                    "solutions": [{"id": "SOL-PC", "name": "From Partner Center", "type": "Name"}]
                },
            }
        ],
    )
    world.tick()
    await synced(world, world.opportunity_key(opp_id))
    assert solution_ids(await world.microsoft.referral(rid)) == ["SOL-PC", "SOL-SF"]
    in_salesforce = rows(world, "Microsoft_Solution__c", Opportunity__c=opp_id)
    assert sorted(r["Solution_Id__c"] for r in in_salesforce) == ["SOL-PC", "SOL-SF"]
    [from_pc] = [r for r in in_salesforce if r["Solution_Id__c"] == "SOL-PC"]
    assert from_pc["Name"] == "From Partner Center"
    await assert_unchanged(world, opp_id, rid)


async def test_a_sweep_brings_a_partner_center_solution_to_salesforce(world: World) -> None:
    _, opp_id, rid = await partner_led_pair(world)
    await world.microsoft.edit(
        rid,
        [
            {
                "op": "add",
                "path": "/details/requirements",
                "value": {"solutions": [{"id": "SOL-SWEPT", "type": "Name"}]},
            }
        ],
    )
    world.tick()
    outcomes, _ = await sweep_page(world.ctx, cursor=None)
    [outcome] = [o for o in outcomes if o.key == world.referral_key(rid)]
    assert outcome.result == "synced", outcome
    [row] = rows(world, "Microsoft_Solution__c", Opportunity__c=opp_id)
    assert (row["Solution_Id__c"], row["Name"]) == ("SOL-SWEPT", "SOL-SWEPT")
    await assert_unchanged(world, opp_id, rid)


# -- refusals before any call -------------------------------------------------------------------


async def test_sharing_with_microsoft_without_a_solution_is_refused_before_the_create(
    world: World,
) -> None:
    account_id = await world.seller.create_account("Fabrikam")
    opp_id = await world.seller.create_opportunity(
        account_id, How_can_Microsoft_help__c="General or other"
    )
    await add_contact_role(world, account_id, opp_id, "Ana", "ana@fabrikam.example")
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    spent = await world.calls() - before
    assert outcome.result == "error", outcome
    assert spent.partner_center_reads + spent.partner_center_writes == 0  # no call at all
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
    error = opportunity["Partner_Center_Sync_Error__c"]
    assert "at least one Microsoft Solution" in error
    assert "customer contact" not in error
    assert await world.microsoft.referrals() == []
    await add_solution(world, opp_id, "SOL-FIX")  # what the message says to do
    world.tick()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "created", outcome
    [referral] = [
        r for r in await world.microsoft.referrals() if r["externalReferenceId"] == opp_id
    ]
    assert referral["inviteContext"]["assistanceRequestCode"] == "GeneralOrOther"


async def test_a_co_sell_share_without_a_customer_contact_is_refused_before_the_create(
    world: World,
) -> None:
    account_id = await world.seller.create_account("Fabrikam")
    opp_id = await world.seller.create_opportunity(
        account_id, How_can_Microsoft_help__c="General or other"
    )
    await add_solution(world, opp_id, "SOL-1")
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "error", outcome
    error = (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Error__c"]
    assert "a customer contact (a Contact Role on the opportunity" in error
    assert await world.microsoft.referrals() == []


async def test_asking_for_help_on_an_existing_referral_needs_a_solution_and_a_contact(
    world: World,
) -> None:
    opp_id, rid = await world.shared_pair()  # private: no help, no solution, no contact
    await world.seller.edit(
        "Opportunity", opp_id, {"How_can_Microsoft_help__c": "Proof of concept or demo"}
    )
    world.tick()
    before = await world.calls()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    spent = await world.calls() - before
    assert outcome.result == "refused", outcome
    assert spent.partner_center_writes == 0
    referral = await world.microsoft.referral(rid)
    assert (referral.get("inviteContext") or {}).get("assistanceRequestCode") in (None, "Unknown")
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Error"
    error = opportunity["Partner_Center_Sync_Error__c"]
    assert "at least one Microsoft Solution" in error
    assert "a customer contact" in error
    # The seller adds both, as the message says: the referral is shared with Microsoft.
    await add_solution(world, opp_id, "SOL-POC")
    account_id = opportunity["AccountId"]
    await add_contact_role(world, account_id, opp_id, "Ana", "ana@fabrikam.example")
    world.tick()
    await synced(world, world.opportunity_key(opp_id))
    referral = await world.microsoft.referral(rid)
    assert referral["inviteContext"]["assistanceRequestCode"] == "ProofOfConceptOrDemo"
    assert solution_ids(referral) == ["SOL-POC"]
    assert [m["email"] for m in referral["customerProfile"]["team"]] == ["ana@fabrikam.example"]
    opportunity = await world.seller.opportunity(opp_id)
    assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    assert opportunity["Partner_Center_Sync_Error__c"] is None
    # The help made the referral Co-sell in Partner Center: its deal type reached Salesforce
    # in the same sync, and both sides are quiet.
    assert opportunity["Deal_Type__c"] == "Co-sell"
    await assert_unchanged(world, opp_id, rid)


async def test_removing_the_last_solution_of_a_co_sell_referral_is_refused(world: World) -> None:
    _, opp_id, rid = await co_sell_pair(world)
    [row] = rows(world, "Microsoft_Solution__c", Opportunity__c=opp_id)
    await delete(world, "Microsoft_Solution__c", row["Id"])
    world.tick()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "refused", outcome
    assert solution_ids(await world.microsoft.referral(rid)) == ["SOL-POC"]
    error = (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Error__c"]
    assert "needs at least one Microsoft Solution; the removal of SOL-POC was not sent" in error
    before = await world.calls()
    again = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert (await world.calls() - before).writes == 0  # the same refusal writes nothing again
    assert again.result == "refused"


async def test_the_contacts_of_a_referral_shared_with_microsoft_are_read_only(
    world: World,
) -> None:
    account_id, opp_id, rid = await co_sell_pair(world)
    await add_contact_role(world, account_id, opp_id, "Bo", "bo@contoso.example", primary=False)
    world.tick()
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "refused", outcome
    referral = await world.microsoft.referral(rid)
    assert [m["email"] for m in referral["customerProfile"]["team"]] == ["ana@contoso.example"]
    error = (await world.seller.opportunity(opp_id))["Partner_Center_Sync_Error__c"]
    assert "does not allow changing the customer contact once the referral is shared" in error


# -- customer contacts --------------------------------------------------------------------------


async def test_a_contact_changed_in_salesforce_replaces_it_in_partner_center(
    world: World,
) -> None:
    account_id, opp_id, rid = await partner_led_pair(world)
    [role] = rows(world, "OpportunityContactRole", OpportunityId=opp_id)
    await delete(world, "OpportunityContactRole", role["Id"])
    await add_contact_role(world, account_id, opp_id, "Bo", "bo@nw.example")
    world.tick()
    await synced(world, world.opportunity_key(opp_id))
    team = (await world.microsoft.referral(rid))["customerProfile"]["team"]
    assert [(m["firstName"], m["email"]) for m in team] == [("Bo", "bo@nw.example")]
    await assert_unchanged(world, opp_id, rid)


async def test_a_contact_changed_in_partner_center_replaces_it_in_salesforce(
    world: World,
) -> None:
    account_id, opp_id, rid = await partner_led_pair(world)
    carla = {"firstName": "Carla", "lastName": "Diaz", "email": "carla@nw.example"}
    await world.microsoft.edit(
        rid, [{"op": "replace", "path": "/customerProfile/team", "value": [carla]}]
    )
    before = await world.calls()
    await synced(world, world.referral_key(rid))
    spent = await world.calls() - before
    # 2 reads + 1 contact lookup; 1 composite: the old role's delete, Carla, her role.
    assert (spent.salesforce_reads, spent.salesforce_writes) == (2, 1)
    [role] = rows(world, "OpportunityContactRole", OpportunityId=opp_id)
    assert role["IsPrimary"] is True
    contact = await world.seller.read("Contact", role["ContactId"])
    assert (contact["FirstName"], contact["LastName"], contact["Email"]) == (
        "Carla",
        "Diaz",
        "carla@nw.example",
    )
    assert contact["AccountId"] == account_id
    await assert_unchanged(world, opp_id, rid)


# -- the team -------------------------------------------------------------------------------------


async def test_a_team_member_added_in_salesforce_joins_the_referral_team(world: World) -> None:
    _, opp_id, rid = await partner_led_pair(world)
    await world.seller.create(
        "OpportunityTeamMember",
        {
            "OpportunityId": opp_id,
            "UserId": world.sf_sandbox.seller_user_id,
            "OpportunityAccessLevel": "Edit",
        },
    )
    world.tick()
    await synced(world, world.opportunity_key(opp_id))
    team = (await world.microsoft.referral(rid))["team"]
    assert [(m["firstName"], m["lastName"], m["email"]) for m in team] == [
        ("Sam", "Seller", "seller@cosell-sandbox.example")
    ]
    await assert_unchanged(world, opp_id, rid)


async def test_a_team_member_added_in_partner_center_joins_the_opportunity_team(
    world: World,
) -> None:
    _, opp_id, rid = await partner_led_pair(world)
    sam = {"firstName": "Sam", "lastName": "Seller", "email": "Seller@Cosell-Sandbox.example"}
    await world.microsoft.edit(rid, [{"op": "add", "path": "/team", "value": [sam]}])
    await synced(world, world.referral_key(rid))
    [member] = rows(world, "OpportunityTeamMember", OpportunityId=opp_id)
    assert member["UserId"] == world.sf_sandbox.seller_user_id
    await assert_unchanged(world, opp_id, rid)


async def test_a_team_member_who_is_no_salesforce_user_is_reported_not_failed(
    world: World,
) -> None:
    _, opp_id, rid = await partner_led_pair(world)
    stranger = {"firstName": "Lee", "lastName": "Partner", "email": "lee@partner.example"}
    await world.microsoft.edit(rid, [{"op": "add", "path": "/team", "value": [stranger]}])
    outcome = await reconcile_key(world.ctx, world.referral_key(rid))
    assert outcome.result != "error", outcome
    assert outcome.message is not None
    assert "Lee Partner <lee@partner.example>" in outcome.message
    assert "is not an active Salesforce user" in outcome.message
    assert rows(world, "OpportunityTeamMember", OpportunityId=opp_id) == []
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert link.sync_status == "Synced"
    assert any("not an active Salesforce user" in e.message for e in world.store.audit(link.id))
    assert (
        "lee@partner.example> from Partner Center is not an active Salesforce user"
        in ((await world.seller.opportunity(opp_id))["Audit__c"])
    )
    # Remembered: not looked up again, and not removed from Partner Center.
    await assert_unchanged(world, opp_id, rid)
    assert [m["email"] for m in (await world.microsoft.referral(rid))["team"]] == [
        "lee@partner.example"
    ]
