"""Batches: a sweep page and a batch of keys share their reads and Salesforce writes.

The numbers asserted here are the cost model of DESIGN.md's backfill target: a page of linked
referrals with nothing to do costs one Partner Center list call and one SOQL query, whatever
its size; changes add one composite call per 25 Salesforce writes and one PATCH per changed
referral (Partner Center has no batch write).
"""

from __future__ import annotations

from sync_world import World

from cosell.store.types import Key
from cosell.sync.run.batch import reconcile_batch, sweep_page
from cosell.sync.run.reconcile import reconcile_key

REFERRALS = 30  # one sandbox list page; big enough that per-key costs would show


async def backfilled(world: World) -> list[str]:
    ids = [(await world.microsoft.send_co_sell(name=f"Deal {n}"))["id"] for n in range(REFERRALS)]
    before = await world.calls()
    outcomes, cursor = await sweep_page(world.ctx, cursor=None)
    spent = await world.calls() - before
    print(f"backfill creating opportunities: {spent} = {spent.total / REFERRALS:.2f} per referral")
    # 1 list page; accounts: 1 query + 1 create; 1 opportunity upsert; contacts: 1 query +
    # 1 create; 1 contact-role create; 1 query of the team members' users (Microsoft's seller
    # on each referral is none, so no team member is created). The same 8 calls would create 200.
    assert (spent.partner_center_reads, spent.salesforce_reads, spent.writes) == (1, 3, 4)
    assert cursor is None
    ours = {world.referral_key(i) for i in ids}
    assert sorted(o.result for o in outcomes if o.key in ours) == ["created"] * REFERRALS
    # The page also lists Microsoft's own referral of each co-sell engagement: seen as it was
    # when the opportunity was made from it, so the next sweep spends nothing on it.
    assert {o.result for o in outcomes if o.key not in ours} == {"unchanged"}
    world.tick()
    return ids


async def test_a_sweep_of_linked_referrals_costs_two_calls_per_page(world: World) -> None:
    await backfilled(world)
    before = await world.calls()
    outcomes, cursor = await sweep_page(world.ctx, cursor=None)
    spent = await world.calls() - before
    assert cursor is None
    assert sorted(o.result for o in outcomes) == ["unchanged"] * (2 * REFERRALS)
    assert (spent.partner_center_reads, spent.salesforce_reads, spent.writes) == (1, 1, 0)
    assert sum(o.api_calls for o in outcomes) == spent.total
    print(f"steady-state sweep: {spent.total / len(outcomes):.3f} API calls per referral listed")


async def test_a_batch_shares_reads_and_salesforce_writes(world: World) -> None:
    ids = await backfilled(world)
    keys: list[Key] = [world.referral_key(i) for i in ids]
    changed_in_pc = ids[:5]
    for rid in changed_in_pc:
        await world.microsoft.edit(
            rid, [{"op": "replace", "path": "/details/notes", "value": f"notes of {rid}"}]
        )
    opportunities = {rid: (await world.opportunities_for(rid))[0]["Id"] for rid in ids[5:8]}
    for opp_id in opportunities.values():  # accepted first: edits on hold wait for acceptance
        await world.seller.edit("Opportunity", opp_id, {"StageName": "Qualification"})
        world.tick()
        assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
        world.tick()
    for rid, opp_id in opportunities.items():
        await world.seller.edit("Opportunity", opp_id, {"Name": f"renamed {rid}"})
    account_id = await world.seller.create_account("Batch Co")
    new_opp = await world.seller.create_opportunity(account_id, Name="shared in the batch")
    world.tick()
    keys.append(world.opportunity_key(new_opp))
    keys.append(world.opportunity_key(next(iter(opportunities.values()))))  # the same link twice
    before = await world.calls()
    outcomes = await reconcile_batch(world.ctx, keys)
    spent = await world.calls() - before
    by_key = {o.key: o for o in outcomes}
    assert len(outcomes) == REFERRALS + 2
    for rid in changed_in_pc:
        assert by_key[world.referral_key(rid)].result == "synced"
        [opportunity] = await world.opportunities_for(rid)
        assert opportunity["Description"] == f"notes of {rid}"
    for rid in opportunities:
        assert by_key[world.referral_key(rid)].result == "synced"
        assert (await world.microsoft.referral(rid))["name"] == f"renamed {rid}"
    assert by_key[world.opportunity_key(new_opp)].result == "created"
    twin = by_key[world.opportunity_key(next(iter(opportunities.values())))]
    assert (twin.result, twin.api_calls) == ("synced", 0)  # reconciled once, with its referral
    unchanged = [o for o in outcomes if o.result == "unchanged"]
    assert len(unchanged) == REFERRALS - 8
    assert sum(o.api_calls for o in outcomes) == spent.total
    create = by_key[world.opportunity_key(new_opp)].api_calls
    # Shared: 1 list + 1 SOQL + 1 composite (5 opportunity updates); 3 PATCHes; + the create.
    # The 5 Partner Center notes changes are kept as Notes (`notes_history`): 1 SOQL for the
    # notes already linked (none, so no second query), 1 create of 5 ContentNotes, 1 of 5 links.
    assert spent.total - create == 6 + 3
    assert spent.salesforce_writes - 1 == 1 + 2  # the create's write-back, one composite, notes
    notes = list(world.sf_sandbox.store.rows("ContentNote", include_deleted=False))
    assert sorted(n["TextPreview"] for n in notes) == sorted(f"notes of {r}" for r in changed_in_pc)
    before = await world.calls()
    again = await reconcile_batch(world.ctx, keys)
    assert {o.result for o in again} == {"unchanged"}
    assert (await world.calls() - before).writes == 0


async def test_one_customer_in_a_batch_gets_one_account_and_one_contact(world: World) -> None:
    existing = await world.seller.create_account(
        "Tailspin", BillingPostalCode="10115", BillingCountry="DE"
    )
    profile = {
        "name": "Tailspin",
        "address": {"postalCode": "10115", "country": "DE", "city": "Berlin"},
        "team": [{"firstName": "Jo", "lastName": "Weber", "email": "jo@tailspin.example"}],
    }
    ids = [
        (await world.microsoft.send_co_sell(name=f"Tailspin {n}", customerProfile=profile))["id"]
        for n in range(3)
    ]
    other = (
        await world.microsoft.send_co_sell(
            name="Other", customerProfile={**profile, "name": "Other"}
        )
    )["id"]
    outcomes = await reconcile_batch(world.ctx, [world.referral_key(i) for i in [*ids, other]])
    assert [o.result for o in outcomes] == ["created"] * 4
    opportunities = [(await world.opportunities_for(i))[0] for i in ids]
    assert {o["AccountId"] for o in opportunities} == {existing}
    accounts = list(world.sf_sandbox.store.rows("Account", include_deleted=False))
    assert len(accounts) == 2  # Tailspin (matched) and Other (created)
    contacts = list(world.sf_sandbox.store.rows("Contact", include_deleted=False))
    assert len(contacts) == 2  # one per account
    roles = list(world.sf_sandbox.store.rows("OpportunityContactRole", include_deleted=False))
    assert len(roles) == 4


async def test_opportunities_shared_in_a_batch_cost_one_post_each(world: World) -> None:
    account_id = await world.seller.create_account("Contoso")
    opp_ids = [
        await world.seller.create_opportunity(account_id, Name=f"Shared {n}") for n in range(5)
    ]
    unticked = await world.seller.create_opportunity(
        account_id, Name="not shared", Sync_with_Partner_Center__c=False
    )
    keys = [world.opportunity_key(i) for i in [*opp_ids, unticked]]
    before = await world.calls()
    outcomes = await reconcile_batch(world.ctx, keys)
    spent = await world.calls() - before
    assert [o.result for o in outcomes] == ["created"] * 5 + ["skipped"]
    assert sum(o.api_calls for o in outcomes) == spent.total
    # 1 SOQL for all, 5 POSTs, 1 collections update writing back all five.
    assert (spent.salesforce_reads, spent.partner_center_writes, spent.salesforce_writes) == (
        1,
        5,
        1,
    )
    referrals = await world.microsoft.referrals()
    assert sorted(r["externalReferenceId"] for r in referrals) == sorted(opp_ids)
    for opp_id in opp_ids:
        opportunity = await world.seller.opportunity(opp_id)
        assert opportunity["Referral_Identifier__c"] in {r["id"] for r in referrals}
        assert opportunity["Partner_Center_Sync_Status__c"] == "Synced"
    again = await reconcile_batch(world.ctx, keys)
    assert [o.result for o in again] == ["unchanged"] * 5 + ["skipped"]
