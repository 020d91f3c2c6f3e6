"""Parked is not forever: the engine heals parked deals by itself, against both sandboxes.

One world and one engine for the module (DBOS is one per process), on the world's clock, so
that the engine's backoffs, the park's retry schedule and the store's "now" are one time
line. The engine is not a background worker: a test runs what the schedules would (the polls,
the due retries) and the reconciles they enqueue, in order, without waiting for real time.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from dbos import DBOS
from engine_kit import dry_run_factory, sandbox_world
from sync_world import SF_BASE, World

from cosell.refusal import RefusalGate
from cosell.salesforce.errors import SignInRefusedError
from cosell.store.types import Key, SyncStatus, record_key, referral_key
from cosell.sync.engine import workflows
from cosell.sync.engine.backoff import BackoffPolicy
from cosell.sync.engine.config import RECONCILE_QUEUE, EngineOptions
from cosell.sync.engine.core import Engine, cursor_name
from cosell.sync.plan.retry import MAX_RETRY_SECONDS
from cosell.sync.run.park import park_link

pytestmark = pytest.mark.asyncio(loop_scope="module")

POLL_SECONDS = 30  # the default poll interval: what the service's schedule would run at


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, engine_key_dir: Path
) -> AsyncIterator[World]:
    async with sandbox_world(tmp_path_factory.mktemp("engine-healing"), engine_key_dir) as built:
        yield built


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(world: World) -> AsyncIterator[Engine]:
    options = EngineOptions(
        queue_polling_seconds=0.02,
        backoff=BackoffPolicy(max_attempts=4, rng=random.Random(3)),
    )
    running = Engine(
        None,
        store=world.store,
        context_factory=dry_run_factory(world),
        clock=world.clock,
        options=options,
    )
    await running.start(background=False)
    yield running
    await running.stop()


async def _faults(world: World, **faults: float) -> None:
    response = await world.sf_http.put(f"{SF_BASE}/control/faults", json=faults)
    assert response.status_code == 200, response.text


async def _poll_salesforce(engine: Engine) -> dict[str, tuple[Key, ...]]:
    """The Salesforce poll workflow's polls, side by side: keys found per side (cursors saved)."""
    found: dict[str, tuple[Key, ...]] = {}
    for side in ["salesforce", *engine.related_sides()]:
        result = await engine.poll(side)
        engine.store.set_cursor(cursor_name(side), result.cursor.dump())
        found[side] = result.keys
        assert result.api_calls == 1, side  # one SOQL query per source per poll
    return found


async def _enqueued(key: str) -> bool:
    waiting = await DBOS.list_workflows_async(
        workflow_id_prefix=workflows.key_workflow_prefix(key),
        status=["ENQUEUED"],
        queue_name=RECONCILE_QUEUE,
        load_input=False,
        load_output=False,
    )
    return bool(waiting)


async def _add_solution(world: World, opp_id: str, solution_id: str) -> None:
    await world.seller.create(
        "Microsoft_Solution__c",
        {
            "Opportunity__c": opp_id,
            "Name": f"Solution {solution_id}",
            "Solution_Id__c": solution_id,
            "Solution_Type__c": "Name",
        },
    )


async def _add_contact(world: World, account_id: str, opp_id: str) -> None:
    contact_id = await world.seller.create(
        "Contact",
        {"AccountId": account_id, "FirstName": "Ana", "LastName": "Customer", "Email": "a@x.test"},
    )
    await world.seller.create(
        "OpportunityContactRole",
        {"OpportunityId": opp_id, "ContactId": contact_id, "IsPrimary": True},
    )


async def test_adding_the_solution_and_contact_a_parked_deal_asks_for_syncs_it_within_a_poll(
    engine: Engine, world: World
) -> None:
    account_id = await world.seller.create_account("Contoso")
    opp_id = await world.seller.create_opportunity(
        account_id, Name="Contoso - PoC", How_can_Microsoft_help__c="Proof of concept or demo"
    )
    key = record_key("Opportunity", opp_id)
    parked = await workflows.reconcile_key_workflow(key)
    assert parked.result == "error", parked
    assert parked.message is not None
    assert "at least one Microsoft Solution" in parked.message
    assert "a customer contact" in parked.message
    await _poll_salesforce(engine)  # the service's polls since: every cursor is current
    world.tick(5)

    # The seller does what the message says, and nothing else: only child records change.
    await _add_solution(world, opp_id, "SOL-POC")
    await _add_contact(world, account_id, opp_id)
    world.tick(2)
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert link.retry_at is not None
    assert link.retry_at > world.clock.now()  # not the schedule: the change heals it
    # The scheduled Salesforce poll, as the service runs it: one query per source.
    found = {side: await engine.run_poll(side) for side in ["salesforce", *engine.related_sides()]}
    assert found["salesforce"] == 0  # the opportunity's own stamp did not move
    assert found["salesforce_related:Microsoft_Solution__c"] == 1
    assert found["salesforce_related:OpportunityContactRole"] == 1
    assert await _enqueued(key)  # one reconcile waits for the deal

    synced = await workflows.reconcile_key_workflow(key)
    assert synced.result == "created", synced
    referral_id = (await world.seller.opportunity(opp_id))["Referral_Identifier__c"]
    referral = await world.microsoft.referral(referral_id)
    assert referral["inviteContext"]["assistanceRequestCode"] == "ProofOfConceptOrDemo"
    link = world.store.link_for_record("Opportunity", opp_id)
    assert link is not None
    assert (link.sync_status, link.retry_at, link.retries) == (SyncStatus.SYNCED, None, 0)


async def test_an_account_edit_notifies_its_co_sell_opportunities(
    engine: Engine, world: World
) -> None:
    await _poll_salesforce(engine)
    account_id = await world.seller.create_account("Northwind")
    opp_id = await world.seller.create_opportunity(account_id, Name="Northwind - data")
    other = await world.seller.create_opportunity(
        account_id, Name="Northwind - not shared", Sync_with_Partner_Center__c=False
    )
    await _poll_salesforce(engine)
    world.tick(10)
    await world.seller.edit("Account", account_id, {"BillingCountry": "NO"})
    found = await _poll_salesforce(engine)
    assert found["salesforce_related:Account"] == (record_key("Opportunity", opp_id),)
    assert record_key("Opportunity", other) not in found["salesforce_related:Account"]


async def test_a_75_second_salesforce_outage_holds_the_deal_and_heals_without_a_command(
    engine: Engine, world: World
) -> None:
    opp_id, referral_id = await world.shared_pair()
    key = referral_key(referral_id)
    await world.microsoft.edit(
        referral_id, [{"op": "replace", "path": "/details/notes", "value": "from Microsoft"}]
    )
    outage_ends = world.clock.now() + timedelta(seconds=75)
    await _faults(world, error_503_fraction=1.0)
    held = await workflows.reconcile_key_workflow(key)
    # An outage is the side's problem, not the deal's (`plan.scope`): the deal waits, unparked.
    assert held.result == "held", held
    link = world.store.link_for_referral(referral_id)
    assert link is not None
    assert link.sync_status != SyncStatus.ERROR
    assert link.retry_at is None
    assert engine.store.circuits()["salesforce"].is_open

    # The service's polls, every 30 s, each probing the open side; no command, no edit.
    healed_at = None
    for _ in range(int(MAX_RETRY_SECONDS // POLL_SECONDS)):
        world.tick(POLL_SECONDS)
        if world.clock.now() >= outage_ends:
            await _faults(world, error_503_fraction=0.0)
        if await engine.heal():  # the probe passed: the held key is notified
            outcome = await workflows.reconcile_key_workflow(key)  # what the queue then runs
            assert outcome.result != "held", outcome
            healed_at = world.clock.now()
            break
        assert engine.store.held_keys()  # the deal still waits, in its state
    assert healed_at is not None
    assert healed_at - outage_ends <= timedelta(minutes=1)  # was: the hourly sweep
    assert (await world.seller.opportunity(opp_id))["Description"] == "from Microsoft"
    assert not engine.store.circuits()["salesforce"].is_open
    assert engine.store.held_keys() == []
    link = world.store.link_for_referral(referral_id)
    assert link is not None
    assert link.sync_status == SyncStatus.SYNCED
    assert (link.retries, link.retry_at) == (0, None)


async def test_expiring_sessions_are_retried_not_parked_as_a_bug(
    engine: Engine, world: World
) -> None:
    opp_id, referral_id = await world.shared_pair()
    await world.seller.edit("Opportunity", opp_id, {"Amount": 31000})
    world.tick()
    await _faults(world, expire_sessions_fraction=1.0)  # every session ends, even a new one
    try:
        outcome = await workflows.reconcile_key_workflow(record_key("Opportunity", opp_id))
    finally:
        await _faults(world, expire_sessions_fraction=0.0)
    # Every session refused, even a new one: the sign-in's problem, not the deal's. The deal
    # waits unparked while Salesforce's circuit is open (was: "unexpected SessionExpiredError").
    assert outcome.result == "held", outcome
    assert outcome.message is not None
    assert "unexpected" not in outcome.message
    link = world.store.link_for_referral(referral_id)
    assert link is not None
    assert link.sync_status != SyncStatus.ERROR
    world.tick(POLL_SECONDS * 2)
    assert await engine.heal() == 1  # the next probe signs in: the held deal is notified
    assert not engine.store.circuits()["salesforce"].is_open
    # Sessions expiring now and then (a third of the calls) never park a deal.
    await _faults(world, expire_sessions_fraction=0.3)
    try:
        result = await workflows.reconcile_key_workflow(record_key("Opportunity", opp_id))
        assert result.result == "synced", result
    finally:
        await _faults(world, expire_sessions_fraction=0.0)
    assert (await world.microsoft.referral(referral_id))["details"]["dealValue"] == 31000


async def test_a_sign_in_that_works_again_retries_the_deals_its_refusal_parked(
    engine: Engine, world: World
) -> None:
    _opp_id, referral_id = await world.shared_pair()
    refusal = SignInRefusedError(
        "Salesforce refuses cosell's sign-in (invalid_grant: expired access/refresh token): "
        "run `cosell connect salesforce`"
    )
    link = world.store.link_for_referral(referral_id)
    assert link is not None
    parked = park_link(world.store, link, str(refusal), now=world.clock.now())
    world.tick(3)
    parked = park_link(world.store, parked, str(refusal), now=world.clock.now())
    assert parked.retry_at is not None
    assert parked.retry_at > world.clock.now()  # backing off while the gate is shut
    gate = RefusalGate(world.clock)
    gate.refuse(refusal)
    gate.clear()  # a probe succeeded, or a new token was stored and used
    again = world.store.get_link(parked.id)
    assert again is not None
    assert again.retry_at == world.clock.now()  # due at once, backoff started over
    assert again.retries == 0
    due = await workflows.due_retries_step()
    assert referral_key(referral_id) in due
    outcome = await workflows.reconcile_key_workflow(referral_key(referral_id))
    assert outcome.result in ("unchanged", "synced"), outcome
    healed = world.store.get_link(parked.id)
    assert healed is not None
    assert healed.sync_status == SyncStatus.SYNCED


async def test_a_refusal_waits_for_the_sellers_change_without_a_stale_retry(
    engine: Engine, world: World
) -> None:
    opp_id, referral_id = await world.shared_pair()
    link = world.store.link_for_referral(referral_id)
    assert link is not None
    # Parked earlier for a reason that could go away, its retry due now.
    park_link(world.store, link, "gave up after 4 attempts: 503", now=world.clock.now())
    world.tick(int(MAX_RETRY_SECONDS))
    await world.seller.edit(
        "Opportunity", opp_id, {"How_can_Microsoft_help__c": "Proof of concept or demo"}
    )
    world.tick()
    due = await workflows.due_retries_step()
    assert referral_key(referral_id) in due
    outcome = await workflows.reconcile_key_workflow(referral_key(referral_id))
    assert outcome.result == "refused", outcome  # a solution and a contact are missing
    refused = world.store.get_link(link.id)
    assert refused is not None
    assert refused.sync_status == SyncStatus.ERROR
    assert (refused.retries, refused.retry_at) == (0, None)  # it waits for the seller
    assert await workflows.due_retries_step() == []
