"""Notifications through the queue, end to end: a worker (background engine) and both sandboxes.

Repeating a notification any number of times writes nothing more, and a burst after an edit
carries the edit with one write, in at most two reconciles.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
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

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, engine_key_dir: Path
) -> AsyncIterator[World]:
    async with sandbox_world(tmp_path_factory.mktemp("engine-notify"), engine_key_dir) as built:
        yield built


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(world: World) -> AsyncIterator[Engine]:
    options = EngineOptions(
        queue_polling_seconds=0.02,
        poll_interval_seconds=3600,  # the test notifies; the schedules stay out of the way
        sweep_interval_seconds=86400,
        backoff=BackoffPolicy(rng=random.Random(3)),
    )
    running = Engine(
        None,
        store=world.store,
        context_factory=dry_run_factory(world),
        clock=HookedClock(),
        options=options,
    )
    await running.start(background=True)
    yield running
    await running.stop()


async def _drained() -> int:
    """Wait until no reconcile is queued or running; the number of reconciles that succeeded."""
    for _ in range(500):
        busy = await DBOS.list_workflows_async(
            status=["ENQUEUED", "PENDING"],
            queue_name=engine_module.RECONCILE_QUEUE,
            load_input=False,
            load_output=False,
        )
        if not busy:
            done = await DBOS.list_workflows_async(
                status=["SUCCESS"],
                queue_name=engine_module.RECONCILE_QUEUE,
                load_input=False,
                load_output=False,
            )
            return len(done)
        await asyncio.sleep(0.02)
    raise AssertionError("reconciles still queued after 10 s")


async def test_notifications_create_then_repeat_without_writing(
    engine: Engine, world: World
) -> None:
    account = await world.seller.create_account()
    opportunity = await world.seller.create_opportunity(account)
    world.tick()
    await engine.notify(record_key("Opportunity", opportunity))
    ran = await _drained()
    link = world.store.link_for_record("Opportunity", opportunity)
    assert link is not None
    assert link.referral_id is not None

    world.tick()
    before = await world.calls()
    keys = [record_key("Opportunity", opportunity), referral_key(link.referral_id)]
    for _ in range(10):
        for key in keys:
            await engine.notify(key)
    now_ran = await _drained()
    spent = await world.calls() - before
    assert spent.writes == 0
    assert 2 <= now_ran - ran < 20  # coalesced: fewer runs than the 20 notifications


async def test_a_burst_after_an_edit_carries_it_once(engine: Engine, world: World) -> None:
    [link] = world.store.links()
    assert link.record_id is not None
    assert link.referral_id is not None
    ran = await _drained()
    world.tick(30)
    await world.seller.edit("Opportunity", link.record_id, {"Amount": 42000})
    world.tick(30)
    before = await world.calls()
    for _ in range(5):
        await engine.notify(record_key("Opportunity", link.record_id))
    runs = await _drained() - ran
    spent = await world.calls() - before
    referral = await world.microsoft.referral(link.referral_id)
    assert float(referral["details"]["dealValue"]) == 42000
    assert spent.partner_center_writes == 1
    # Usually one or two runs; a notification that lands while a run is under way must cause
    # one more (level-triggered), so on a loaded machine the count depends on timing. The exact
    # coalescing rules are pinned down with a held reconcile in test_engine_queue.py.
    assert 1 <= runs < 5
