"""Salesforce changes through Change Data Capture: the change stream against the sandbox's
Pub/Sub API (gRPC, in process), the real clients, the store and the reconcile.

The notifier stands in for the engine: `notify` reconciles the key at once (the engine would
enqueue a durable workflow; the reconcile is the same), `poll` is the Salesforce poller from
its stored cursor (what the engine's `poll()` runs). Counting both shows which path carried
each change.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from sync_world import SF_BASE, World

from cosell.salesforce.pubsub.client import PubSubClient
from cosell.sync.engine import streamstate
from cosell.sync.engine.changestream import ChangeStream, ChangeStreamOptions
from cosell.sync.io import pollers
from cosell.sync.run.reconcile import reconcile_key

WAIT = 15.0  # seconds a condition may take on a loaded machine (a guard; nothing sleeps for it)


@dataclass
class Notifier:
    world: World
    notified: list[str] = field(default_factory=list)
    polls: int = 0
    outcomes: list[str] = field(default_factory=list)

    async def notify(self, key: str) -> bool:
        self.notified.append(key)
        outcome = await reconcile_key(self.world.ctx, key)  # type: ignore[arg-type]
        self.outcomes.append(outcome.result)
        return True

    async def poll(self, side: str) -> pollers.PollResult:
        self.polls += 1
        name = pollers.LEAD_CURSOR if side == "salesforce_lead" else pollers.SALESFORCE_CURSOR
        cursor = pollers.Cursor.parse(self.world.store.cursor(name))
        return await pollers.poll_salesforce(self.world.ctx.salesforce, cursor)


class StreamClock:
    """The world's time for the stream, with waits that do not move it.

    The stream's backoff and heartbeat waits are recorded and cut to a brief yield (the
    world's `ManualClock.sleep` would move everyone's time on by each wait: sessions and
    retention would run away while the test watches).
    """

    def __init__(self, world: World) -> None:
        self._world = world
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self._world.clock.now()

    def monotonic(self) -> float:
        return self._world.clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0.01)  # let the stream's I/O run; the world's time stays put


@dataclass
class Running:
    stream: ChangeStream
    notifier: Notifier
    pubsub: PubSubClient
    clock: StreamClock


@pytest.fixture
async def cdc(world: World) -> AsyncIterator[Running]:
    port = await world.sf_sandbox.pubsub.start(0)
    pubsub = PubSubClient(f"127.0.0.1:{port}", world.ctx.salesforce.session, tls=False)
    notifier = Notifier(world)
    clock = StreamClock(world)
    stream = ChangeStream(
        notifier,
        store=world.store,
        pubsub=pubsub,
        salesforce=world.ctx.salesforce,
        clock=clock,
        options=ChangeStreamOptions(poll_interval=30.0),
    )
    yield Running(stream, notifier, pubsub, clock)
    await stream.stop()
    await pubsub.close()
    await world.sf_sandbox.pubsub.stop()


async def until(condition: Callable[[], Any], what: str) -> None:
    """Wait for the stream's I/O (a real gRPC server in this process) to make `condition` true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    for _ in itertools.count():
        if await _value(condition()):
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # yield to the stream's task and the gRPC server


async def _value(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


async def control(world: World, method: str, path: str, body: Any = None) -> Any:
    response = await world.sf_http.request(method, f"{SF_BASE}/control/{path}", json=body)
    response.raise_for_status()
    return response.json() if response.content else None


async def live(world: World, running: Running) -> None:
    running.stream.start()
    await until(lambda: streamstate.covers(world.store, world.clock.now()), "the stream live")
    await until(lambda: world.sf_sandbox.pubsub.subscribes > 0, "the subscription")


async def deal_value(world: World, referral_id: str) -> Any:
    return (await world.microsoft.referral(referral_id))["details"]["dealValue"]


async def test_a_seller_edit_reaches_partner_center_without_a_poll(
    world: World, cdc: Running
) -> None:
    opportunity_id, referral_id = await world.shared_pair()
    await live(world, cdc)
    polls = cdc.notifier.polls  # the first start's catch-up poll
    before = len(cdc.notifier.notified)
    await world.seller.edit("Opportunity", opportunity_id, {"Amount": 77000})
    await until(
        lambda: _equals(deal_value(world, referral_id), 77000), "the deal value in Partner Center"
    )
    assert cdc.notifier.polls == polls
    assert cdc.notifier.notified[-1] == str(world.opportunity_key(opportunity_id))
    # Microsoft's change reaches Salesforce through cosell's write (as a webhook would bring
    # it); that write echoes as a change event that costs nothing: no notification follows.
    await world.microsoft.edit(
        referral_id, [{"op": "replace", "path": "/details/dealValue", "value": 88000}]
    )
    await reconcile_key(world.ctx, world.referral_key(referral_id))
    assert (await world.seller.opportunity(opportunity_id))["Amount"] == 88000
    await until(lambda: cdc.stream.counts.own_writes >= 1, "our own write's event")
    assert cdc.notifier.notified[before:] == [str(world.opportunity_key(opportunity_id))]
    # The replay id is stored once the key was notified.
    assert world.store.cursor(cdc.stream.replay_cursor)


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_an_edit_of_an_opportunity_cosell_does_not_sync_costs_nothing(
    world: World, cdc: Running
) -> None:
    await live(world, cdc)
    account = await world.seller.create_account()
    opportunity_id = await world.seller.create_opportunity(
        account, Sync_with_Partner_Center__c=False
    )
    await world.seller.edit("Opportunity", opportunity_id, {"Amount": 5})
    await until(lambda: cdc.stream.counts.events >= 2, "the two events")
    assert str(world.opportunity_key(opportunity_id)) not in cdc.notifier.notified


async def test_a_gap_causes_a_catch_up_that_finds_the_missed_edit(
    world: World, cdc: Running
) -> None:
    opportunity_id, referral_id = await world.shared_pair()
    await live(world, cdc)
    # The org stops describing Opportunity changes for a while: an edit made then is not sent.
    await control(world, "PUT", "cdc", {"entities": ["Lead"]})
    await world.seller.edit("Opportunity", opportunity_id, {"Amount": 12345})
    await control(world, "PUT", "cdc", {"entities": ["Opportunity", "Lead"]})
    catch_ups = cdc.stream.counts.catch_ups
    await control(world, "POST", "cdc/gap", {"entity": "Opportunity", "changeType": "GAP_OVERFLOW"})
    await until(lambda: _equals(deal_value(world, referral_id), 12345), "the missed edit synced")
    # The gap's keys may be notified before its catch-up poll has finished: wait for it too.
    await until(lambda: cdc.stream.counts.catch_ups == catch_ups + 1, "the gap's catch-up")


async def test_a_replay_id_past_retention_catches_up_by_polling(world: World, cdc: Running) -> None:
    opportunity_id, referral_id = await world.shared_pair()
    await live(world, cdc)
    await world.seller.edit("Opportunity", opportunity_id, {"Amount": 1000})
    await until(lambda: _equals(deal_value(world, referral_id), 1000), "the first edit synced")
    await cdc.stream.stop()  # cosell is down for four days
    stored = world.store.cursor(cdc.stream.replay_cursor)
    world.tick(4 * 24 * 3600)
    await world.seller.edit("Opportunity", opportunity_id, {"Amount": 2000})
    world.tick(1)
    await world.seller.edit("Opportunity", opportunity_id, {"Name": "Renamed"})
    catch_ups = cdc.stream.counts.catch_ups
    cdc.stream.start()
    await until(lambda: _equals(deal_value(world, referral_id), 2000), "the edit made while down")
    assert cdc.stream.counts.catch_ups > catch_ups
    assert world.store.cursor(cdc.stream.replay_cursor) != stored


async def test_a_stream_outage_falls_back_to_polling_and_returns(
    world: World, cdc: Running
) -> None:
    opportunity_id, referral_id = await world.shared_pair()
    await live(world, cdc)
    await control(world, "PUT", "cdc", {"down": True})
    await until(lambda: not streamstate.covers(world.store, world.clock.now()), "the poller's turn")
    state = streamstate.stream_state(world.store)
    assert state is not None
    assert state.state == "down"
    assert state.error
    # While it is down the scheduled poll runs (the engine's schedule, run here by hand).
    await world.seller.edit("Opportunity", opportunity_id, {"Amount": 3100})
    polled = await cdc.notifier.poll("salesforce")
    for key in polled.keys:
        await cdc.notifier.notify(key)
    world.store.set_cursor(pollers.SALESFORCE_CURSOR, polled.cursor.dump())
    assert await deal_value(world, referral_id) == 3100
    # The service comes back; the stream resubscribes after its backoff and takes over.
    await control(world, "PUT", "cdc", {"down": False})
    await until(lambda: streamstate.covers(world.store, world.clock.now()), "the stream back")
    backoffs = [s for s in cdc.clock.sleeps if s != 30.0]  # 30 s: the heartbeat's
    assert backoffs
    assert all(0.5 <= s <= 300 for s in backoffs)  # capped, jittered, never zero
    polls = cdc.notifier.polls
    await world.seller.edit("Opportunity", opportunity_id, {"Amount": 3200})
    await until(lambda: _equals(deal_value(world, referral_id), 3200), "the edit after it")
    assert cdc.notifier.polls == polls
    # Counted: every seller edit reached Partner Center; the last value is Salesforce's.
    assert (await world.seller.opportunity(opportunity_id))["Amount"] == 3200
