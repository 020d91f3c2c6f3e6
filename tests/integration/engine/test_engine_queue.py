"""The engine's queue on SQLite: coalescing, one reconcile per key at a time, retries, leases.

The reconcile is scripted (`engine_kit.ScriptedReconciler`) so each test controls exactly when a
reconcile starts, blocks, fails and ends; DBOS, its SQLite system database and the store are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_asyncio
from engine_kit import HookedClock, ScriptedReconciler, fixed_context

from cosell.partnercenter.errors import ServiceUnavailableError
from cosell.salesforce.errors import ServerUnavailableError
from cosell.store import Store
from cosell.store.types import SyncStatus
from cosell.sync.engine import workflows as engine_module
from cosell.sync.engine.backoff import BackoffPolicy
from cosell.sync.engine.config import EngineOptions
from cosell.sync.engine.core import Engine

pytestmark = pytest.mark.asyncio(loop_scope="module")

REFERRAL = "referral:7c0a8d4e-1f23-4b5c-9d6e-0a1b2c3d4e5f"
OPPORTUNITY = "salesforce:Opportunity:006000000000001AAA"


@pytest.fixture(scope="module")
def clock() -> HookedClock:
    return HookedClock()


@pytest.fixture(scope="module")
def reconciler() -> ScriptedReconciler:
    return ScriptedReconciler()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, clock: HookedClock
) -> Iterator[Store]:
    """The store (and so the system database) on each backend: the same tests run on both."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('engine') / 'cosell.db'}"
    else:
        url = request.getfixturevalue("engine_postgres_url")
    opened = Store.open(url, clock=clock)
    yield opened
    opened.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(
    store: Store, clock: HookedClock, reconciler: ScriptedReconciler
) -> AsyncIterator[Engine]:
    options = EngineOptions(
        queue_polling_seconds=0.02,
        poll_interval_seconds=3600,  # hourly and daily: the schedules exist but never fire here
        sweep_interval_seconds=86400,
        backoff=BackoffPolicy(max_attempts=3, base_delay=1.0, max_delay=30.0, rng=random.Random(1)),
    )
    ctx = SimpleNamespace(store=store, dry_run=False)
    running = Engine(
        None,
        store=store,
        context_factory=fixed_context(ctx),
        clock=clock,
        options=options,
        reconciler=reconciler,
    )
    await running.start(background=True)
    yield running
    await running.stop()


@pytest.fixture(autouse=True)
def _fresh(reconciler: ScriptedReconciler, clock: HookedClock) -> None:
    reconciler.reset()
    clock.sleeps.clear()


async def test_the_system_database_follows_the_store(engine: Engine, store: Store) -> None:
    url = engine.dbos_config()["system_database_url"]
    assert url is not None
    if store.url.get_backend_name() == "sqlite":
        beside = Path(store.url.database or "").with_name("cosell-dbos.sqlite")
        assert url == f"sqlite:///{beside}"
        assert await asyncio.to_thread(beside.exists)
        with contextlib.closing(sqlite3.connect(beside)) as db:  # one append per commit
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    else:
        assert url == store.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with store.engine.connect() as connection:
            schemas = connection.exec_driver_sql(
                "SELECT schema_name FROM information_schema.schemata"
            ).scalars()
            assert "dbos" in set(schemas)


async def test_a_burst_while_running_coalesces_into_one_more_run(
    engine: Engine, reconciler: ScriptedReconciler
) -> None:
    release = asyncio.Event()

    async def blocked(key: str) -> None:
        await release.wait()

    reconciler.hooks[REFERRAL] = blocked
    assert await engine.notify(REFERRAL) is True
    await reconciler.wait_for("start", REFERRAL)

    # The first run is reading: this burst must cause exactly one more run after it.
    enqueued = [await engine.notify(REFERRAL) for _ in range(5)]
    assert enqueued == [True, False, False, False, False]

    release.set()
    await reconciler.wait_for("end", REFERRAL)
    await reconciler.wait_for("start", REFERRAL)
    await reconciler.wait_for("end", REFERRAL)
    await _drained(engine)
    assert [c for c in reconciler.calls if c[0] == "key"] == [("key", (REFERRAL,))] * 2
    assert reconciler.max_active[REFERRAL] == 1


async def test_a_burst_before_the_run_starts_costs_one_run(
    engine: Engine, reconciler: ScriptedReconciler
) -> None:
    # Each notify that enqueues causes exactly one run; the others ride on a waiting run.
    # (How many enqueue depends on when the worker dequeues; far fewer than 20 must.)
    enqueued = [await engine.notify(OPPORTUNITY) for _ in range(20)].count(True)
    assert 1 <= enqueued <= 10
    for _ in range(enqueued):
        await reconciler.wait_for("end", OPPORTUNITY)
    await _drained(engine)
    assert reconciler.calls == [("key", (OPPORTUNITY,))] * enqueued
    assert reconciler.max_active[OPPORTUNITY] == 1


async def test_different_keys_run_side_by_side(
    engine: Engine, reconciler: ScriptedReconciler
) -> None:
    both_started = asyncio.Event()
    started: set[str] = set()

    async def meet(key: str) -> None:
        started.add(key)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 10)

    reconciler.hooks[REFERRAL] = meet
    reconciler.hooks[OPPORTUNITY] = meet
    await engine.notify(REFERRAL)
    await engine.notify(OPPORTUNITY)
    await asyncio.wait_for(both_started.wait(), 10)
    await _drained(engine)


async def test_retriable_errors_back_off_honouring_retry_after(
    engine: Engine, reconciler: ScriptedReconciler, clock: HookedClock
) -> None:
    failures = [ServiceUnavailableError("503 from Partner Center", retry_after=7.0)]
    failures.append(ServerUnavailableError("503 from Salesforce"))

    async def flaky(key: str) -> None:
        if failures:
            raise failures.pop(0)

    reconciler.hooks[REFERRAL] = flaky
    await engine.notify(REFERRAL)
    for _ in range(3):
        await reconciler.wait_for("end", REFERRAL)
    await _drained(engine)
    assert len(reconciler.calls) == 3
    first, second = clock.sleeps
    assert 7.0 <= first <= 30.0  # never sooner than Retry-After
    assert 0.0 <= second <= 2.0  # full jitter under base * 2**(2-1)


async def test_exhausted_retries_pause_the_side_and_hold_the_key_without_parking_it(
    engine: Engine, reconciler: ScriptedReconciler, store: Store, clock: HookedClock
) -> None:
    link = store.create_link(sobject="Opportunity", referral_id="held-referral")

    async def down(key: str) -> None:
        raise ServiceUnavailableError("503 from Partner Center")

    key = "referral:held-referral"
    reconciler.hooks[key] = down
    try:
        await engine.notify(key)
        for _ in range(3):  # max_attempts
            await reconciler.wait_for("end", key)
        await _drained(engine)
        held = store.get_link(link.id)
        assert held is not None
        assert held.sync_status == SyncStatus.PENDING  # the deal keeps its state
        assert held.last_error is None
        assert len(clock.sleeps) == 2
        assert [h.key for h in store.held_keys(side="partner_center")] == [key]
        circuit = store.circuits()["partner_center"]
        assert circuit.is_open
        assert "Partner Center is unreachable (503 from Partner Center)" in circuit.cause
        assert engine.blocked() is not None

        # While the side is paused nothing is called: another notification is held at once.
        reconciler.calls.clear()
        await engine.notify(key)
        await _drained(engine)
        assert reconciler.calls == []
    finally:
        reconciler.hooks.pop(key, None)
        engine.breaker.close("partner_center")  # as a passing probe does
    # Once the side is back the held key runs by itself (a poll tick's heal).
    assert await engine.heal() == 1
    await reconciler.wait_for("end", key)
    await _drained(engine)
    assert store.held_keys() == []
    assert not store.circuits()["partner_center"].is_open


async def test_exhausted_retries_of_a_deal_s_own_race_park_it(
    engine: Engine, reconciler: ScriptedReconciler, store: Store, clock: HookedClock
) -> None:
    from cosell.sync.plan.errors import ConcurrentEditsError

    link = store.create_link(sobject="Opportunity", referral_id="parked-referral")

    async def racing(key: str) -> None:
        raise ConcurrentEditsError("the record changed while cosell wrote it")

    key = "referral:parked-referral"
    reconciler.hooks[key] = racing
    await engine.notify(key)
    for _ in range(3):  # max_attempts
        await reconciler.wait_for("end", key)
    await _drained(engine)
    parked = store.get_link(link.id)
    assert parked is not None
    assert parked.sync_status == SyncStatus.ERROR
    assert parked.last_error is not None
    assert "gave up after 3 attempts" in parked.last_error
    assert engine.blocked() is None  # a deal's problem pauses nothing


async def test_a_key_leased_elsewhere_waits_for_the_lease(
    engine: Engine, reconciler: ScriptedReconciler, store: Store, clock: HookedClock
) -> None:
    key = "referral:leased-elsewhere"
    assert store.claim(key, owner="another-worker", ttl_seconds=60)

    def release_after_two_tries(seconds: float) -> None:
        if len(clock.sleeps) == 2:
            store.release(key, owner="another-worker")

    clock.on_sleep = release_after_two_tries
    try:
        await engine.notify(key)
        await reconciler.wait_for("end", key)
        await _drained(engine)
    finally:
        clock.on_sleep = None
    assert reconciler.calls == [("key", (key,))]
    assert clock.sleeps[:2] == [engine.options.backoff.busy_delay] * 2


async def test_a_link_is_reconciled_by_one_workflow_whichever_key_was_notified(
    engine: Engine, reconciler: ScriptedReconciler, store: Store, clock: HookedClock
) -> None:
    # A webhook notifies the referral's key, the Salesforce poller the opportunity's: while
    # one reconcile of the link holds the opportunity's key, the referral's waits for it.
    referral, record = "linked-both-ways", "006000000000077AAA"
    link = store.create_link(sobject="Opportunity", referral_id=referral, record_id=record)
    by_webhook, by_poller = link.keys
    assert store.claim(by_poller, owner="the-poller-s-reconcile", ttl_seconds=60)

    def release_after_two_tries(seconds: float) -> None:
        if len(clock.sleeps) == 2:
            store.release(by_poller, owner="the-poller-s-reconcile")

    clock.on_sleep = release_after_two_tries
    try:
        await engine.notify(by_webhook)
        await reconciler.wait_for("end", by_webhook)
        await _drained(engine)
    finally:
        clock.on_sleep = None
    assert reconciler.calls == [("key", (by_webhook,))]
    assert clock.sleeps[:2] == [engine.options.backoff.busy_delay] * 2
    assert store.lease_owner(by_webhook) is None
    assert store.lease_owner(by_poller) is None


async def test_a_batch_leaves_a_key_whose_link_is_leased_to_a_later_run(
    engine: Engine, reconciler: ScriptedReconciler, store: Store
) -> None:
    link = store.create_link(
        sobject="Opportunity", referral_id="batch-linked", record_id="006000000000078AAA"
    )
    by_webhook, by_poller = link.keys
    assert store.claim(by_poller, owner="another-worker", ttl_seconds=60)
    outcomes = await engine_module.reconcile_batch_workflow([by_webhook])
    assert [(o.key, o.result) for o in outcomes] == [(by_webhook, "skipped")]
    assert reconciler.calls == []
    assert store.lease_owner(by_webhook) is None  # not kept while the other key was held
    store.release(by_poller, owner="another-worker")
    await reconciler.wait_for("end", by_webhook)
    await _drained(engine)


async def test_a_batch_leaves_leased_keys_to_a_later_run(
    engine: Engine, reconciler: ScriptedReconciler, store: Store
) -> None:
    held = "referral:held-by-someone"
    free = "referral:free-for-the-batch"
    assert store.claim(held, owner="another-worker", ttl_seconds=60)
    outcomes = await engine_module.reconcile_batch_workflow([held, free])
    assert [(o.key, o.result) for o in outcomes] == [(free, "unchanged"), (held, "skipped")]
    assert reconciler.calls == [("batch", (free,))]
    # The held key was queued; it runs once the holder lets go.
    store.release(held, owner="another-worker")
    await reconciler.wait_for("end", held)
    await _drained(engine)
    assert store.lease_owner(free) is None


async def test_notify_refuses_a_malformed_key(engine: Engine) -> None:
    from cosell.store.types import KeyFormatError

    with pytest.raises(KeyFormatError, match="not a cosell key"):
        await engine.notify("opportunity 006")


async def _drained(engine: Engine) -> None:
    """Wait until no reconcile workflow is queued or running."""
    from dbos import DBOS

    for _ in range(500):
        waiting = await DBOS.list_workflows_async(
            status=["ENQUEUED", "PENDING"],
            queue_name=engine_module.RECONCILE_QUEUE,
            load_input=False,
            load_output=False,
        )
        if not waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"reconciles still queued: {[w.workflow_id for w in waiting]}")


async def test_an_unexpected_error_parks_the_key_without_retrying(
    engine: Engine, reconciler: ScriptedReconciler, store: Store, clock: HookedClock
) -> None:
    link = store.create_link(sobject="Opportunity", referral_id="buggy-referral")
    key = "referral:buggy-referral"

    async def bug(key: str) -> None:
        raise RuntimeError("a bug in the reconcile")

    reconciler.hooks[key] = bug
    outcome = await engine_module.reconcile_key_workflow(key)
    assert outcome.result == "error"
    assert outcome.message is not None
    assert "unexpected RuntimeError: a bug in the reconcile" in outcome.message
    parked = store.get_link(link.id)
    assert parked is not None
    assert parked.sync_status == SyncStatus.ERROR
    assert reconciler.calls == [("key", (key,))]
    assert clock.sleeps == []
    assert store.lease_owner(key) is None


async def test_a_batch_whose_side_keeps_failing_is_held_after_its_attempts_not_parked(
    engine: Engine, reconciler: ScriptedReconciler, store: Store, clock: HookedClock
) -> None:
    link = store.create_link(sobject="Opportunity", referral_id="batch-down")
    key = "referral:batch-down"

    async def down(key: str) -> None:
        raise ServerUnavailableError("503 from Salesforce", retry_after=2.0)

    reconciler.hooks[key] = down
    try:
        outcomes = await engine_module.reconcile_batch_workflow([key])
        assert [(o.key, o.result) for o in outcomes] == [(key, "held")]
        assert len(reconciler.calls) == 3  # max_attempts
        assert len(clock.sleeps) == 2
        assert all(s >= 2.0 for s in clock.sleeps)
        held = store.get_link(link.id)
        assert held is not None
        assert held.sync_status == SyncStatus.PENDING
        assert [h.key for h in store.held_keys(side="salesforce")] == [key]
        assert store.deal_counts().pending >= 1
    finally:
        reconciler.hooks.pop(key, None)
        engine.breaker.close("salesforce")
        store.release_keys([key])


async def test_a_worker_applies_the_poller_and_sweep_schedules(engine: Engine) -> None:
    from dbos import DBOS

    schedules = {
        s["schedule_name"]: (s["workflow_name"], s["schedule"], s["queue_name"])
        for s in await DBOS.list_schedules_async()
    }
    assert schedules == {
        "cosell-poll-partner-center": (
            "cosell.poll_partner_center",
            "0 0 */1 * * *",
            engine_module.SCHEDULE_QUEUE,
        ),
        "cosell-poll-salesforce": (
            "cosell.poll_salesforce",
            "0 0 */1 * * *",
            engine_module.SCHEDULE_QUEUE,
        ),
        "cosell-sweep": ("cosell.sweep", "0 0 */24 * * *", engine_module.SCHEDULE_QUEUE),
    }


async def test_a_long_reconcile_keeps_its_lease(
    engine: Engine, reconciler: ScriptedReconciler, store: Store, clock: HookedClock
) -> None:
    key = "referral:slow-to-reconcile"
    ttl = 0.3  # renewed every 0.1 s of loop time
    renewed = asyncio.Event()

    async def slow(key: str) -> None:
        # 0.6 s on both clocks: twice the TTL, so only renewals keep the intruder out.
        for _ in range(60):
            if store.claim(key, owner="intruder", ttl_seconds=ttl):
                raise AssertionError("the lease was taken while the reconcile ran")
            clock.advance(0.01)
            await asyncio.sleep(0.01)
        renewed.set()

    reconciler.hooks[key] = slow
    original = engine.options
    engine._options = replace(original, lease_seconds=ttl)
    try:
        outcome = await engine_module.reconcile_key_workflow(key)
    finally:
        engine._options = original
    assert renewed.is_set()
    assert outcome.result == "unchanged"
    assert store.lease_owner(key) is None  # released at the end


async def test_the_inbox_is_drained_into_notifications(
    engine: Engine, reconciler: ScriptedReconciler, store: Store
) -> None:
    key = "referral:from-a-webhook"
    for event_id in ("evt-1", "evt-2"):  # two events about one key
        assert store.record_event(source="partner_center", event_id=event_id, key=key, payload="{}")
    assert store.record_event(source="partner_center", event_id="evt-3", key="junk", payload="")
    assert await engine.drain_inbox() == 3
    assert store.pending_events() == []
    await reconciler.wait_for("end", key)
    await _drained(engine)
    assert 1 <= len(reconciler.calls) <= 2
    assert await engine.drain_inbox() == 0


async def _inbox_empty(store: Store) -> None:
    """Wait until the background drainer has completed every inbox event."""
    for _ in range(500):
        if not store.pending_events():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"inbox events still pending: {store.pending_events()}")


async def test_recorded_webhook_events_are_drained_in_the_background_one_reconcile_per_key(
    engine: Engine, reconciler: ScriptedReconciler, store: Store
) -> None:
    keys = [f"referral:background-{n}" for n in range(3)]
    for n in range(9):  # three events about each key, recorded as the endpoint does
        assert store.record_event(
            source="partner-center", event_id=f"bg-{n}", key=keys[n % 3], payload="{}"
        )
    engine.inbox_recorded()
    engine.inbox_recorded()  # woken twice before it runs: one drain
    await _inbox_empty(store)
    await _drained(engine)
    assert sorted(keys for kind, keys in reconciler.calls if kind == "key") == [(k,) for k in keys]


async def test_a_failed_drain_leaves_the_events_pending_and_is_retried(
    engine: Engine,
    reconciler: ScriptedReconciler,
    store: Store,
    clock: HookedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "referral:drained-after-a-failure"
    real = engine_module._enqueue_keys
    failures: list[list[str]] = []

    async def once_unavailable(keys: list[str], suffix: str) -> list[str]:
        if not failures:
            failures.append(list(keys))
            assert [e.key for e in store.pending_events()] == [key]  # still pending
            raise RuntimeError("system database unavailable")
        return await real(keys, suffix)

    monkeypatch.setattr(engine_module, "_enqueue_keys", once_unavailable)
    store.record_event(source="partner-center", event_id="retried-1", key=key, payload="{}")
    engine.inbox_recorded()
    await _inbox_empty(store)
    await _drained(engine)
    assert failures == [[key]]
    assert engine_module.INBOX_RETRY_SECONDS in clock.sleeps
    assert reconciler.calls == [("key", (key,))]


async def test_a_worker_bounds_how_many_keys_it_reconciles_at_once(
    engine: Engine, reconciler: ScriptedReconciler
) -> None:
    bound = engine.options.worker_reconciles
    release = asyncio.Event()

    async def blocked(key: str) -> None:
        await release.wait()

    keys = [f"referral:burst-{n}" for n in range(bound + 4)]
    for key in keys:
        reconciler.hooks[key] = blocked
        await engine.notify(key)
    for _ in range(bound):
        assert (await reconciler.next_event())[0] == "start"
    # Give the queue a few polls (20 ms each) to start more than it may; it must not.
    with pytest.raises(TimeoutError):
        await reconciler.next_event(within=0.2)
    release.set()
    ended = 0
    while ended < len(keys):
        kind, _ = await reconciler.next_event()
        ended += kind == "end"
    await _drained(engine)
    assert reconciler.max_running == bound
