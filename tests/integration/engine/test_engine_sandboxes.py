"""The engine with the real reconcile against both sandboxes in process (SQLite, one worker).

One world and one engine for the module (DBOS is one per process); the tests run in order and
build on each other: a dry run first (nothing written), then the backfill, then notifications
and an incremental pass over it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from dbos import DBOS
from engine_kit import HookedClock, dry_run_factory, sandbox_world
from sync_world import World

from cosell.store.types import record_key, referral_key
from cosell.sync.engine import workflows as engine_module
from cosell.sync.engine.backoff import BackoffPolicy
from cosell.sync.engine.config import EngineOptions
from cosell.sync.engine.core import Engine
from cosell.sync.io import pollers

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, engine_key_dir: Path
) -> AsyncIterator[World]:
    async with sandbox_world(tmp_path_factory.mktemp("engine-sandboxes"), engine_key_dir) as built:
        yield built


@pytest.fixture(scope="module")
def backoff_clock() -> HookedClock:
    return HookedClock()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(world: World, backoff_clock: HookedClock) -> AsyncIterator[Engine]:
    options = EngineOptions(
        queue_polling_seconds=0.02,
        backoff=BackoffPolicy(max_attempts=4, rng=random.Random(7)),
    )
    running = Engine(
        None,
        store=world.store,
        context_factory=dry_run_factory(world),
        clock=backoff_clock,
        options=options,
    )
    await running.start(background=False)
    yield running
    await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def story(world: World) -> dict[str, str]:
    """Microsoft sends a co-sell referral; a seller shares an opportunity."""
    incoming = await world.microsoft.send_co_sell(name="Contoso - Azure landing zone")
    world.tick()
    account = await world.seller.create_account()
    opportunity = await world.seller.create_opportunity(account, Name="Fabrikam - data platform")
    world.tick()
    return {"referral": incoming["id"], "opportunity": opportunity}


async def test_a_dry_run_plans_and_writes_nothing(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    before = await world.calls()
    summary = await engine.run_pass(full=True, dry_run=True)
    after = await world.calls()
    assert (after - before).writes == 0
    assert after.reads > before.reads
    assert world.store.links() == []
    assert world.store.cursor(pollers.PARTNER_CENTER_CURSOR) is None
    assert summary.dry_run
    planned = {o.key: o for o in summary.outcomes}
    assert planned[referral_key(story["referral"])].result == "created"
    assert planned[record_key("Opportunity", story["opportunity"])].result == "created"
    assert planned[referral_key(story["referral"])].dry_run


async def test_full_pass_backfills_both_ways(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    seen: list[tuple[int, int | None]] = []
    summary = await engine.run_pass(
        full=True, progress=lambda done, total: seen.append((done, total))
    )
    assert summary.ok, summary.errors
    assert summary.count("created") == 2
    assert summary.api_calls > 0
    assert seen
    assert seen[-1][0] == summary.keys_seen
    assert len(await world.opportunities_for(story["referral"])) == 1
    shared = await world.seller.opportunity(story["opportunity"])
    assert shared["Referral_Identifier__c"]
    # Every lease was given back.
    assert all(world.store.lease_owner(o.key) is None for o in summary.outcomes)


async def test_a_pass_after_the_backfill_does_not_reconcile_what_it_created(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    shared = await world.seller.opportunity(story["opportunity"])
    created = {referral_key(story["referral"]), referral_key(shared["Referral_Identifier__c"])}
    world.tick(30)
    before = await world.calls()
    summary = await engine.run_pass()
    after = await world.calls()
    assert summary.ok, summary.errors
    # Both referrals' bases hold their stamps: neither is handed out, nothing is read for it.
    assert [o for o in summary.outcomes if o.key in created] == []
    assert (after - before).writes == 0


async def test_repeated_notifications_write_nothing(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    keys = [referral_key(story["referral"]), record_key("Opportunity", story["opportunity"])]
    before = await world.calls()
    for _ in range(3):
        for key in keys:
            outcome = await engine_module.reconcile_key_workflow(key)
            assert outcome.result == "unchanged", outcome
    after = await world.calls()
    assert (after - before).writes == 0


async def test_a_deal_paused_by_hand_is_held_and_its_record_says_paused_until_resumed(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    key = record_key("Opportunity", story["opportunity"])
    link = world.store.link_for_record("Opportunity", story["opportunity"])
    assert link is not None
    world.store.set_pause(link.id, paused=True, by="ada", reason="legal review")
    held = await engine.run_keys([key])  # the path of `cosell sync KEY`
    assert not held.ok
    shown = await world.seller.opportunity(story["opportunity"])
    assert shown["Partner_Center_Sync_Status__c"] == "Paused"
    assert "Sync paused by ada" in shown["Partner_Center_Sync_Error__c"]
    assert "legal review" in shown["Partner_Center_Sync_Error__c"]
    world.store.set_pause(link.id, paused=False, by="ada")
    world.tick(30)
    resumed = await engine.run_keys([key])
    assert resumed.ok, resumed.errors
    shown = await world.seller.opportunity(story["opportunity"])
    assert shown["Partner_Center_Sync_Status__c"] == "Synced"
    assert shown["Partner_Center_Sync_Error__c"] is None


async def test_an_incremental_pass_carries_an_edit(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    first = await engine.run_pass()  # sets the cursors (everything is in sync)
    assert first.ok, first.errors
    assert first.count("synced") == 0
    world.tick(30)
    await world.seller.edit("Opportunity", story["opportunity"], {"Amount": 31000})
    world.tick(30)
    summary = await engine.run_pass()
    assert summary.ok, summary.errors
    assert [(o.key, o.result) for o in summary.outcomes if o.result != "unchanged"] == [
        (record_key("Opportunity", story["opportunity"]), "synced")
    ]
    shared = await world.seller.opportunity(story["opportunity"])
    referral = await world.microsoft.referral(shared["Referral_Identifier__c"])
    assert float(referral["details"]["dealValue"]) == 31000


async def test_a_pass_does_not_reconcile_a_referral_change_a_webhook_already_carried(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    from cosell.sync.run.reconcile import reconcile_key

    settled = await engine.run_pass()
    assert settled.ok, settled.errors
    world.tick(30)
    change = [{"op": "replace", "path": "/details/dealValue", "value": 52000}]
    await world.microsoft.edit(story["referral"], change)
    # The webhook's reconcile, before the next poll.
    carried = await reconcile_key(world.ctx, referral_key(story["referral"]))
    assert carried.result == "synced", carried
    world.tick(30)
    summary = await engine.run_pass()
    assert summary.ok, summary.errors
    assert referral_key(story["referral"]) not in [o.key for o in summary.outcomes]
    [opportunity] = await world.opportunities_for(story["referral"])
    assert float(opportunity["Amount"]) == 52000


async def test_a_pass_does_not_reconcile_a_referral_for_our_own_partner_center_write(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    from cosell.sync.run.reconcile import reconcile_key

    settled = await engine.run_pass()
    assert settled.ok, settled.errors
    shared = await world.seller.opportunity(story["opportunity"])
    referral_id = shared["Referral_Identifier__c"]
    before_write = (await world.microsoft.referral(referral_id))["updatedDateTime"]
    world.tick(30)
    await world.seller.edit("Opportunity", story["opportunity"], {"Amount": 61000})
    # The Salesforce side's reconcile writes Partner Center, which moves `updatedDateTime`.
    carried = await reconcile_key(world.ctx, record_key("Opportunity", story["opportunity"]))
    assert carried.result == "synced", carried
    assert (await world.microsoft.referral(referral_id))["updatedDateTime"] != before_write
    world.tick(30)
    before = await world.calls()
    summary = await engine.run_pass()
    after = await world.calls()
    assert summary.ok, summary.errors
    # Our own write is not handed out again: no reconcile, no reads or writes for it.
    assert [o for o in summary.outcomes if o.key == referral_key(referral_id)] == []
    assert (after - before).partner_center_writes == 0
    referral = await world.microsoft.referral(referral_id)
    assert float(referral["details"]["dealValue"]) == 61000


async def test_a_503_is_retried_with_backoff(
    engine: Engine, world: World, story: dict[str, str], backoff_clock: HookedClock
) -> None:
    world.pc_sandbox.faults.error_503_fraction = 1.0
    world.pc_sandbox.faults.retry_after_seconds = 3.0

    def recover(seconds: float) -> None:
        world.pc_sandbox.faults.error_503_fraction = 0.0

    backoff_clock.on_sleep = recover
    backoff_clock.sleeps.clear()
    try:
        outcome = await engine_module.reconcile_key_workflow(referral_key(story["referral"]))
    finally:
        backoff_clock.on_sleep = None
        world.pc_sandbox.faults.error_503_fraction = 0.0
    assert outcome.result == "unchanged"
    assert len(backoff_clock.sleeps) == 1
    assert backoff_clock.sleeps[0] >= 3.0  # honours Retry-After


async def test_scheduled_pollers_enqueue_the_changed_keys_then_store_the_cursor(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    world.tick(30)
    await world.seller.edit("Opportunity", story["opportunity"], {"Description": "polled"})
    await world.microsoft.edit(
        story["referral"], [{"op": "replace", "path": "/details/notes", "value": "polled too"}]
    )
    world.tick(30)
    before_pc = world.store.cursor(pollers.PARTNER_CENTER_CURSOR)
    before_sf = world.store.cursor(pollers.SALESFORCE_CURSOR)
    now = world.clock.now()
    await engine_module.poll_partner_center_workflow(now, None)
    await engine_module.poll_salesforce_workflow(now, None)
    waiting = await _waiting(engine_module.RECONCILE_QUEUE)
    assert referral_key(story["referral"]) in waiting
    assert record_key("Opportunity", story["opportunity"]) in waiting
    assert world.store.cursor(pollers.PARTNER_CENTER_CURSOR) != before_pc
    assert world.store.cursor(pollers.SALESFORCE_CURSOR) != before_sf
    # Polling again finds nothing new, and a waiting key is not enqueued twice.
    await engine_module.poll_partner_center_workflow(now, None)
    await engine_module.poll_salesforce_workflow(now, None)
    assert await _waiting(engine_module.RECONCILE_QUEUE) == waiting
    await _cancel_waiting()


async def test_the_scheduled_sweep_enqueues_every_key_in_batches(
    engine: Engine, world: World, story: dict[str, str]
) -> None:
    await engine_module.sweep_workflow(world.clock.now(), None)
    batches = await DBOS.list_workflows_async(
        queue_name=engine_module.BATCH_QUEUE, status=["ENQUEUED"], load_input=True
    )
    swept = [key for batch in batches for key in batch.input["args"][0]]
    referrals = [r["id"] for r in await world.microsoft.referrals()]
    assert sorted(swept) == sorted(referral_key(r) for r in referrals)
    last_sweep = world.store.cursor(engine_module.LAST_SWEEP_CURSOR)  # for `cosell status`
    assert last_sweep is not None
    assert datetime.fromisoformat(last_sweep).tzinfo is not None
    await _cancel_waiting()


async def test_a_held_win_wakes_its_key_at_the_72nd_hour_through_the_poll(
    engine: Engine, world: World
) -> None:
    opp_id, rid = await world.shared_pair(Name="Won too soon")
    created = (await world.microsoft.referral(rid))["createdDateTime"]
    allowed = datetime.fromisoformat(created.replace("Z", "+00:00")) + timedelta(hours=72)
    world.tick(30)
    await engine_module.poll_partner_center_workflow(world.clock.now(), None)  # the create seen
    await _cancel_waiting()
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Won"})
    world.tick(30)
    held = await engine_module.reconcile_key_workflow(record_key("Opportunity", opp_id))
    assert held.result == "synced"  # only cosell's status fields: the win waits
    key = referral_key(rid)
    assert world.store.wakeup(key) == allowed
    await engine_module.poll_partner_center_workflow(world.clock.now(), None)
    assert key not in await _waiting(engine_module.RECONCILE_QUEUE)  # not due yet
    await _cancel_waiting()
    world.clock.advance((allowed - world.clock.now()).total_seconds())
    await engine_module.poll_partner_center_workflow(world.clock.now(), None)
    assert key in await _waiting(engine_module.RECONCILE_QUEUE)
    assert world.store.wakeup(key) is None  # handled: cleared
    await _cancel_waiting()
    woken = await engine_module.reconcile_key_workflow(key)  # what the queue runs
    assert woken.result == "synced"
    referral = await world.microsoft.referral(rid)
    assert (referral["status"], referral["substatus"]) == ("Closed", "Won")


async def _waiting(queue: str) -> dict[str, int]:
    found = await DBOS.list_workflows_async(
        queue_name=queue, status=["ENQUEUED"], load_input=True, load_output=False
    )
    keys: dict[str, int] = {}
    for workflow in found:
        key = workflow.input["args"][0]
        keys[key] = keys.get(key, 0) + 1
    return keys


async def _cancel_waiting() -> None:
    """This engine does not dequeue (`background=False`); clear what the test enqueued."""
    found = await DBOS.list_workflows_async(status=["ENQUEUED"], load_input=False)
    await DBOS.cancel_workflows_async([w.workflow_id for w in found])


async def test_a_full_pass_over_linked_referrals_costs_a_few_calls_per_hundred(
    engine: Engine, world: World
) -> None:
    for n in range(250):
        await world.microsoft.control(
            "POST", "/referrals/incoming", {"kind": "lead", "name": f"Backfill lead {n}"}
        )
    world.tick(30)
    backfill = await engine.run_pass(full=True)
    assert backfill.ok, backfill.errors[:3]
    assert backfill.count("created") == 250
    world.tick(30)
    before = await world.calls()
    steady = await engine.run_pass(full=True)
    spent = await world.calls() - before
    referrals = len(await world.microsoft.referrals())
    assert steady.ok
    assert spent.writes == 0
    assert spent.total == steady.api_calls
    assert spent.total / referrals <= 0.05, (spent, referrals)


async def test_with_lead_sync_a_pass_creates_leads_and_polls_their_changes(
    engine: Engine, world: World
) -> None:
    live = engine._context()  # the context the engine built at start, from `world.ctx`
    live.lead_sync = world.ctx.lead_sync = True
    try:
        settled = await engine.run_pass()  # sets the Lead poller's cursor
        assert settled.ok, settled.errors[:3]
        referral = await world.microsoft.control("POST", "/referrals/incoming", {"kind": "lead"})
        world.tick(30)
        created = await engine.run_pass()
        assert created.ok, created.errors[:3]
        assert (referral_key(referral["id"]), "created") in [
            (o.key, o.result) for o in created.outcomes
        ]
        (lead,) = await world.leads_for(referral["id"])
        world.tick(30)
        await world.seller.edit("Lead", lead["Id"], {"Status": "Working - Contacted"})
        world.tick(30)
        accepted = await engine.run_pass()
        assert accepted.ok, accepted.errors[:3]
        assert (record_key("Lead", lead["Id"]), "created") in [
            (o.key, o.result) for o in accepted.outcomes
        ]
        assert world.store.cursor(pollers.LEAD_CURSOR) is not None
        assert len(await world.opportunities_for(referral["id"])) == 1
    finally:
        live.lead_sync = world.ctx.lead_sync = False
