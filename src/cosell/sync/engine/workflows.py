"""The DBOS steps and workflows of cosell, over one explicit `Runtime` (the started `Engine`).

DBOS is one per process and registers its workflows and steps as module-level functions, so
they cannot be methods of an `Engine`; instead the started engine binds itself here (`bind`)
as a `Runtime`, and every step calls only that protocol's public methods: no step reaches
into the engine's private state. `_enqueue_keys` and `_unqueued_keys` are the coalescing
primitives (see `core.py`'s "Coalescing").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from dbos import DBOS, SetEnqueueOptions, SetWorkflowID

from cosell.store.types import Key, Link, Record
from cosell.sync.engine.config import BATCH_QUEUE as BATCH_QUEUE
from cosell.sync.engine.config import INBOX_RETRY_SECONDS as INBOX_RETRY_SECONDS
from cosell.sync.engine.config import KEY_WORKFLOW_PREFIX, RECONCILE_QUEUE, EngineError
from cosell.sync.engine.config import LAST_SWEEP_CURSOR as LAST_SWEEP_CURSOR
from cosell.sync.engine.config import SCHEDULE_QUEUE as SCHEDULE_QUEUE
from cosell.sync.io import pollers
from cosell.sync.plan import outcome as results
from cosell.sync.plan.outcome import Outcome
from cosell.sync.plan.retry import schedule_after_notify

if TYPE_CHECKING:
    from cosell.clock import Clock
    from cosell.store import Store
    from cosell.sync.io.context import SyncContext

_PREFIX_QUERY: Final = 100  # keys whose waiting reconciles are looked up in one query


class Runtime(Protocol):
    """What the steps and workflows need of the started engine (`core.Engine`)."""

    @property
    def store(self) -> Store:
        """The store (cursors, wake-ups)."""
        ...

    @property
    def clock(self) -> Clock:
        """What backoffs wait on."""
        ...

    def context(self) -> SyncContext:
        """The open sync context."""
        ...

    async def attempt_key(self, key: Key, owner: str) -> Attempt:
        """One attempt at one key under its lease."""
        ...

    async def attempt_batch(self, keys: Sequence[Key], owner: str) -> Attempt:
        """One attempt at a batch under its leases."""
        ...

    def park(self, key: Key, message: str, *, lasting: bool = False) -> None:
        """Park the key's link in Error with the message (`lasting`: no scheduled retry)."""
        ...

    def parked_keys(self) -> list[Key]:
        """The keys of the links parked in Error."""
        ...

    async def poll(self, side: str) -> pollers.PollResult | None:
        """Poll one side from its cursor (None: the side failed, its circuit is open)."""
        ...

    def hold(self, keys: Sequence[Key], side: str) -> None:
        """Keep the keys waiting for `side` (or "paused") instead of parking them."""
        ...

    def side_failed(self, error: BaseException) -> bool:
        """Open the side's circuit for `error` when it is a side's; False for a bug."""
        ...

    def release(self, keys: Sequence[Key]) -> None:
        """Let go of the holds of keys that ran (`Engine.heal` notified them, still held)."""
        ...

    async def trip_unreachable(self, side: str, message: str) -> bool:
        """Probe a side a key kept failing on; open its circuit when it is down."""
        ...

    async def run_key(self, key: str, *, owner: str) -> Outcome:
        """The body of `reconcile_key_workflow`."""
        ...

    async def run_batch(self, keys: Sequence[str], *, owner: str) -> list[Outcome]:
        """The body of `reconcile_batch_workflow`."""
        ...

    async def run_poll(self, side: str) -> int:
        """The body of the poll workflows."""
        ...

    async def run_sweep(self) -> int:
        """The body of `sweep_workflow`."""
        ...

    def related_sides(self) -> list[str]:
        """The poll sides of the related change sources (child objects, the account)."""
        ...


class _Binding:
    """The one runtime of this process (DBOS is one per process)."""

    runtime: Runtime | None = None


def bind(runtime: Runtime) -> None:
    """Make `runtime` the one the workflows of this process run on.

    Raises:
        EngineError: another runtime is bound.
    """
    if _Binding.runtime is not None:
        raise EngineError("an engine is already started in this process (DBOS is one per process)")
    _Binding.runtime = runtime


def unbind(runtime: Runtime) -> None:
    """Release the binding, if `runtime` holds it."""
    if _Binding.runtime is runtime:
        _Binding.runtime = None


def _runtime() -> Runtime:
    if _Binding.runtime is None:
        raise EngineError("a cosell workflow ran while no Engine is started in this process")
    return _Binding.runtime


def key_workflow_prefix(key: str) -> str:
    """The workflow-id prefix of a key's reconciles (`cosell-reconcile:<key>:`)."""
    return f"{KEY_WORKFLOW_PREFIX}{key}:"


@dataclass(frozen=True)
class Attempt:
    """What one step did.

    `done` (outcomes), `retry` (a transient error), `busy` (leases held elsewhere), `held`
    (a side's circuit is open or sync is paused: the keys wait, nothing is parked) or
    `failed` (a deal's own error, or a bug: the keys are parked, not retried in place).
    `held` keys may come with `done` too (the deals of a batch that are paused).
    """

    kind: str
    outcomes: tuple[Outcome, ...] = ()
    busy: tuple[Key, ...] = ()
    retry_after: float | None = None
    message: str | None = None
    side: str | None = None  # the side a transient error or a hold is about
    held: tuple[Key, ...] = ()


def error_outcome(key: str, message: str) -> Outcome:
    """An `error` outcome of a key this engine gave up on."""
    return Outcome(key=key, link_id=None, result=results.ERROR, message=message)


def held_outcome(key: str, message: str | None) -> Outcome:
    """A `held` outcome: the key waits for a side to come back or for sync to resume."""
    return Outcome(
        key=key,
        link_id=None,
        result=results.HELD,
        message=message or "waiting; synced by itself when sync resumes",
    )


def busy_outcome(key: str) -> Outcome:
    """A `skipped` outcome of a key leased by another worker (it runs after it)."""
    return Outcome(
        key=key,
        link_id=None,
        result=results.SKIPPED,
        message="being reconciled by another worker; queued to run after it",
    )


def unexpected(exc: BaseException) -> str:
    """The message parked for an unexpected error (a bug)."""
    return f"unexpected {type(exc).__name__}: {exc}"


@DBOS.step(name="cosell.reconcile_key_step")
async def reconcile_key_step(key: str, owner: str) -> Attempt:
    """One attempt at one key (see `Runtime.attempt_key`)."""
    return await _runtime().attempt_key(Key(key), owner)


@DBOS.step(name="cosell.reconcile_batch_step")
async def reconcile_batch_step(keys: list[str], owner: str) -> Attempt:
    """One attempt at a batch (see `Runtime.attempt_batch`)."""
    return await _runtime().attempt_batch([Key(k) for k in keys], owner)


@DBOS.step(name="cosell.park_step")
async def park_step(keys: list[str], message: str, lasting: bool = False) -> None:
    """Park the keys' links in Error with the message (`lasting`: no scheduled retry)."""
    for key in keys:
        _runtime().park(Key(key), message, lasting=lasting)


@DBOS.step(name="cosell.hold_step")
async def hold_step(keys: list[str], side: str) -> None:
    """Keep the keys waiting for `side` (a side's circuit, or "paused")."""
    _runtime().hold([Key(k) for k in keys], side)


@DBOS.step(name="cosell.release_step")
async def release_step(keys: list[str]) -> None:
    """Let go of the holds of keys that ran and were not held again."""
    _runtime().release([Key(k) for k in keys])


@DBOS.step(name="cosell.trip_step")
async def trip_step(side: str, message: str) -> bool:
    """Probe a side a key kept failing on; open its circuit when it is down (True)."""
    return await _runtime().trip_unreachable(side, message)


@DBOS.step(name="cosell.backoff_step")
async def backoff_step(seconds: float) -> None:
    """Wait `seconds` on the engine's clock."""
    # A step, so that a workflow recovered after a crash does not wait its past backoffs again.
    await _runtime().clock.sleep(seconds)


@DBOS.step(name="cosell.unqueued_keys_step")
async def unqueued_keys_step(keys: list[str]) -> list[str]:
    """The keys with no reconcile waiting to start."""
    return await _unqueued_keys(keys)


@DBOS.step(name="cosell.poll_step")
async def poll_step(side: str) -> pollers.PollResult | None:
    """Poll one side from its stored cursor (None: the side failed; its circuit is open)."""
    return await _runtime().poll(side)


@DBOS.step(name="cosell.save_cursor_step")
async def save_cursor_step(name: str, value: str) -> None:
    """Store a poll cursor."""
    _runtime().store.set_cursor(name, value)


@DBOS.step(name="cosell.due_wakeups_step")
async def due_wakeups_step() -> list[tuple[str, str]]:
    """The wake-ups due now, as (key, ISO time)."""
    return [(key, due.isoformat()) for key, due in _runtime().store.due_wakeups()]


@DBOS.step(name="cosell.due_retries_step")
async def due_retries_step() -> list[str]:
    """The keys of the parked links whose scheduled retry is due now; their schedule moves on."""
    store = _runtime().store
    due = store.due_retries()
    if due:
        now = _runtime().clock.now()
        store.record([_moved_on(link, now) for link in due])
    return [link.keys[0] for link in due if link.keys]


def _moved_on(link: Link, now: datetime) -> Record:
    schedule = schedule_after_notify(link, now=now)
    return Record(link.id, link={"retries": schedule.retries, "retry_at": schedule.retry_at})


@DBOS.step(name="cosell.clear_wakeups_step")
async def clear_wakeups_step(done: list[tuple[str, str]]) -> None:
    """Clear the wake-ups that were notified."""
    _runtime().store.clear_wakeups([(key, datetime.fromisoformat(due)) for key, due in done])


@DBOS.step(name="cosell.sweep_page_step")
async def sweep_page_step(next_link: str | None) -> tuple[list[str], str | None]:
    """One page of the sweep's referral keys, and the next page's link (none when it failed)."""
    try:
        page = await pollers.list_sweep_page(
            _runtime().context().partner_center, next_link=next_link
        )
    except Exception as exc:
        if _runtime().side_failed(exc):
            return [], None  # the side's circuit is open; the next sweep runs it all again
        raise
    return list(page.keys), page.next_link


@DBOS.step(name="cosell.sweep_extras_step")
async def sweep_extras_step() -> tuple[list[str], list[str]]:
    """The opportunities waiting for their referral, and the parked keys."""
    runtime = _runtime()
    try:
        candidates, _ = await pollers.salesforce_create_candidates(runtime.context().salesforce)
    except Exception as exc:
        if runtime.side_failed(exc):
            return [], list(runtime.parked_keys())
        raise
    return list(candidates), list(runtime.parked_keys())


@DBOS.workflow(name="cosell.reconcile_key")
async def reconcile_key_workflow(key: str) -> Outcome:
    """Reconcile one key, retrying with backoff (see the module docstring)."""
    return await _runtime().run_key(key, owner=DBOS.workflow_id or key)


@DBOS.workflow(name="cosell.reconcile_batch")
async def reconcile_batch_workflow(keys: list[str]) -> list[Outcome]:
    """Reconcile up to 200 keys under their leases; held keys are notified instead."""
    return await _runtime().run_batch(keys, owner=DBOS.workflow_id or "batch")


@DBOS.workflow(name="cosell.poll_partner_center")
async def poll_partner_center_workflow(scheduled_at: datetime, context: Any) -> None:
    """Scheduled: enqueue the referrals changed since the cursor, then store the cursor."""
    await _runtime().run_poll("partner_center")


@DBOS.workflow(name="cosell.poll_salesforce")
async def poll_salesforce_workflow(scheduled_at: datetime, context: Any) -> None:
    """Scheduled: enqueue the opportunities (and Leads) changed since the cursors, then store them.

    The opportunities whose child rows or account changed are polled here too, one source at
    a time (`pollers.poll_related`).
    """
    await _runtime().run_poll("salesforce")
    if _runtime().context().lead_sync:
        await _runtime().run_poll("salesforce_lead")
    for side in _runtime().related_sides():  # child rows and the account: one query each
        await _runtime().run_poll(side)


@DBOS.workflow(name="cosell.sweep")
async def sweep_workflow(scheduled_at: datetime, context: Any) -> None:
    """Scheduled: the periodic full reconciliation, as batch workflows of one page each."""
    await _runtime().run_sweep()


async def _unqueued_keys(keys: Iterable[str]) -> list[str]:
    """The keys that have no reconcile waiting to start (see "Coalescing").

    One system-database query per `_PREFIX_QUERY` keys (their workflow-id prefixes OR-ed), not
    one per key: a drained inbox page of many keys costs a few queries.
    """
    unique = list(dict.fromkeys(keys))
    fresh: list[str] = []
    for start in range(0, len(unique), _PREFIX_QUERY):
        chunk = unique[start : start + _PREFIX_QUERY]
        waiting = await DBOS.list_workflows_async(
            workflow_id_prefix=[key_workflow_prefix(key) for key in chunk],
            status=["ENQUEUED"],
            queue_name=RECONCILE_QUEUE,
            load_input=False,
            load_output=False,
        )
        ids = [w.workflow_id for w in waiting]
        # LIKE's `_` matches any character: keep only exact prefix matches.
        fresh.extend(
            key for key in chunk if not any(i.startswith(key_workflow_prefix(key)) for i in ids)
        )
    return fresh


async def _enqueue_keys(keys: Sequence[str], suffix: str) -> list[str]:
    queue = await DBOS.retrieve_queue_async(RECONCILE_QUEUE)
    if queue is None:
        raise EngineError(f"the queue {RECONCILE_QUEUE} is not registered; start the engine")
    ids: list[str] = []
    for key in keys:
        workflow_id = f"{key_workflow_prefix(key)}{suffix}"
        with SetEnqueueOptions(queue_partition_key=key), SetWorkflowID(workflow_id):
            handle = await queue.enqueue_async(reconcile_key_workflow, key)
        ids.append(handle.workflow_id)
    return ids
