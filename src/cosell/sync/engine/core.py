"""The durable engine: reconciles as DBOS Transact workflows, one queue partitioned by key.

The reconcile (`cosell.sync.run.reconcile`) is plain async code that reads both sides, merges and
writes; this module decides *when* it runs, *where* (which worker), and makes it survive
crashes. Everything durable about scheduling lives in DBOS's system database (a SQLite file
next to the store by default, the store's own PostgreSQL database, schema `dbos`, when the
store is PostgreSQL); everything durable about sync lives in the store.

**Workflows.**

- `cosell.reconcile_key(key)`: one key, for notifications (webhooks, pollers). Enqueued on the
  queue `cosell-reconcile`, *partitioned by key* with `partition_concurrency=1`: DBOS starts at
  most one workflow of a partition at a time, across every worker sharing the system database.
- `cosell.reconcile_batch(keys)`: up to 200 keys, for sweeps and `cosell sync`;
  `run.batch.reconcile_batch` reads them with a few Partner Center list calls and one SOQL
  `IN` query, and writes with sObject collections.
- Scheduled, once per period across all workers (DBOS gives a scheduled run a deterministic
  workflow id per tick, so a tick fired by two workers runs once), on the queue
  `cosell-schedules`: `cosell.poll_partner_center` and `cosell.poll_salesforce` (see
  `pollers`: poll from the stored cursor, enqueue the keys, *then* store the cursor), and
  `cosell.sweep` (every referral page, the opportunities waiting for their referral, and the
  links parked in Error, as batch workflows on `cosell-batch`).
- **Wake-ups.** Some of Partner Center's rules are about time, not change: a win held until
  72 hours after creation, the expiry warning 48 hours before an on-hold referral expires
  (`deadlines.py`). The reconcile records when to look again (`Store.set_wakeup`); the Partner
  Center poll notifies the keys that are due on the injected clock and then clears them
  (`_run_wakeups`), and an incremental pass includes them, so the key is reconciled at that
  moment (within a poll interval) without any change happening. The same poll hands out the
  parked links whose own retry is due (`Store.due_retries`, `plan.retry`: backoff per link up
  to an hour), moving their schedule on as it does, and stores `service:poll` (the executor
  id) so that `cosell retry` can tell a running service from none.
- **Related records.** The Salesforce poll workflow also polls each child object of the
  mapping's collections (Microsoft solutions, contact roles, team members) and the accounts of
  co-sell opportunities, one query each (`pollers.poll_related`), and notifies the linked
  parent opportunities: a seller adding what a parked deal asks for re-syncs it within a poll.
- **Sign-in back.** While started, the engine listens to the sign-in refusal gates
  (`cosell.refusal.on_reopen`): when a side accepts cosell again, the deals its refusal parked
  have their retry made due now and, on a worker, are notified at once.

**Coalescing, level-triggered.** A notification only says "key K may be out of date"; the
reconcile reads the truth when it *starts*. So a notification is satisfied by any reconcile of
K that starts after it arrived. `notify(K)` therefore looks for a workflow of K that is still
`ENQUEUED` (waiting, not started: workflow ids are `cosell-reconcile:<key>:<suffix>`, found
by prefix): if there is one, that future run covers this notification and nothing is enqueued;
if there is none (no run, or the run is already `PENDING`, i.e. reading or writing), a new
workflow is enqueued, and the partition makes it wait until the running one has finished. A
burst of N notifications thus costs at most two runs (the running one and one queued), and a
notification that arrives *while* K is being reconciled always causes one more run afterwards.
DBOS's own deduplication ids are not used: DBOS refuses them on partitioned queues, and they
would be held until the workflow finishes, which would drop exactly that last notification.
Two workers notifying K at the same instant may both enqueue (check-then-enqueue is not
atomic); that costs one extra, harmless, reconcile and never loses one. (The prefix match is
case-insensitive on SQLite; keys stay distinct because referral ids are GUIDs and 18-character
Salesforce ids are case-safe.)

**Leases.** Batches do not run on the key partitions, so every reconcile (single or batch)
first takes the store's per-key lease (`store.claim(key, owner=<workflow id>)`, renewable by
the same owner, so a workflow recovered after a crash takes its own lease back) on the key *and
on the other key of its link* (a link is notified as `referral:<id>` by webhooks and as
`salesforce:Opportunity:<id>` by the Salesforce poller: both keys leased, all or none, keep
two reconciles of one link from running at once), and renews them every third of the TTL
while the reconcile runs (a throttled call may wait minutes in place). A key whose
lease is held elsewhere is not reconciled by this workflow: a single-key workflow waits and
tries again (bounded); a batch leaves the key out and notifies it, so it runs after the holder.

**Retries, and failures by scope.** Every exception out of a reconcile is sorted by
`plan.scope.scope_of`: a *transient* one (a timeout, a 503, a lock, 412s in a row) is
retried by the workflow with capped exponential backoff and full jitter, never less than the
server's `Retry-After` (`BackoffPolicy`), on the injected clock. After the last attempt the
side is probed once (`trip_unreachable`): when it does not answer its circuit opens; either way
the key is *held* (`Store.hold_keys`), not parked, and tried again at the next poll tick. A
*global* one (credentials or sign-in refused, a permission missing, the mapping does not fit
the org, throttling; `run.park` raises `SideFailureError` for those instead of parking) opens
that side's circuit at once (`breaker.Breaker`) and holds the key. While a side's circuit is
open, or all sync is paused (`Store.set_pause`), no reconcile calls anything: its keys are
held; the side is not polled (its cursor stays) and the sweep waits. Every poll tick first
`heal`s: it probes the open sides that are due (`io.preflight.check_side`, at most once per
`EngineOptions.probe_interval`), closes those that answer, and once nothing stops sync
notifies the held keys. A *per-deal* error that escapes the reconcile parks the key, and its
own retry schedule (`plan.retry`) tries it again, as does its next change or the sweep; any
other exception (a bug) is logged with its traceback, once, and parks the key (or the batch's
keys) at once, without retries and without a retry schedule: that key fails, everything else
keeps syncing. Steps return values, never raise, so nothing depends on pickling exceptions. A
worker started in the background runs the preflight (`run_preflight`: both connections and the
mapping against the org's describe) before it syncs anything; a side that fails starts paused.

**The webhook inbox.** The service answers a callback once its event is committed to the
store's inbox (nothing else on that path), then calls `inbox_recorded()`. A worker's background
drainer (started by `start(background=True)`, after a first `drain_inbox()` of what a crash or
a restart left) wakes on that, reads the pending events a page at a time, coalesces them per
key, enqueues one reconcile per key that has none waiting (as `notify` does), and marks the
page's rows done in one statement. A failed drain (system database unavailable) leaves the
rows pending and is retried after `INBOX_RETRY_SECONDS`. Two workers draining the same rows at
once may both enqueue a key: one extra, harmless reconcile.

**Passes** (`run_pass`, for `cosell sync`). Incremental: both pollers from their cursors plus
the parked links; full: every referral page, the opportunities waiting for their referral and
the parked links. Keys gather into batches of 200 across list pages and run as batch workflows
(leases included) from the calling task, up to `worker_batches` at once (one batch's API calls
overlap another's store writes), so a crashed pass is recovered at the next start like any
workflow. A full pass hands each batch the referrals its list pages returned
(`SyncContext.listed`, held in this process only: a batch recovered elsewhere reads them
again), so a referral is read once. A dry run runs the same reconciles with `ctx.dry_run` outside DBOS: no API write,
no store write, no workflow row.

**Recovery.** A worker that restarts with the same `executor_id` recovers the workflows it was
running (DBOS records the executor of each). A worker that never comes back leaves its running
workflows `PENDING`, which also holds their key partitions; the leases they held expire after
their TTL, so the scheduled sweep still reconciles those keys, and `dbos workflow resume` (or
restarting a worker under the dead one's id) releases the partitions.

**One engine per process.** DBOS is a process-wide singleton and its workflow functions are
module-level, so the running `Engine` is registered in this module while started; `start()`
refuses a second one. DBOS's logging goes through the standard `logging` tree (logger `dbos`,
at WARNING) with database passwords masked; OTLP export and Conductor stay off, so DBOS opens
no connection but its system database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, ScheduleInput, SetWorkflowID

from cosell import __version__
from cosell.clock import Clock
from cosell.config import Settings
from cosell.store.types import Key, KeyFormatError, SyncStatus, parse_key, referral_key
from cosell.sync.engine import streamstate, system_database, workflows
from cosell.sync.engine.breaker import Breaker
from cosell.sync.engine.config import (
    BATCH_QUEUE,
    INBOX_PAGE,
    INBOX_RETRY_SECONDS,
    LAST_SWEEP_CURSOR,
    RECONCILE_QUEUE,
    SCHEDULE_QUEUE,
    EngineError,
    EngineOptions,
    configure_dbos_logging,
    cron_for,
    system_database_url,
)
from cosell.sync.io import pollers
from cosell.sync.io.context import ApiCalls
from cosell.sync.io.links import link_of
from cosell.sync.io.preflight import check_side, preflight
from cosell.sync.plan import outcome as results
from cosell.sync.plan.holds import circuit_sentence, pause_sentence
from cosell.sync.plan.keys import KeyRef
from cosell.sync.plan.leads import LEAD
from cosell.sync.plan.limits import BATCH_SIZE
from cosell.sync.plan.outcome import Outcome
from cosell.sync.plan.scope import (
    GLOBAL,
    PARTNER_CENTER,
    PER_DEAL,
    SALESFORCE,
    SIDE_NAMES,
    SIDES,
    TRANSIENT,
    Scope,
    scope_of,
    unreachable,
)
from cosell.sync.run.park import park_link, retry_after_sign_in, show_paused

if TYPE_CHECKING:
    from cosell.partnercenter.models import Referral
    from cosell.store import Store
    from cosell.sync.io.context import SyncContext

log = logging.getLogger(__name__)


_LINK_PAGE: Final = 500  # parked links read per store query: small rows, few round trips
PAUSED: Final = "paused"  # what a key held for a manual pause waits for (`Store.hold_keys`)
_DRAIN_POLL_SECONDS: Final = 0.02  # how often `stop` looks whether DBOS's workflows ended


def _dbos_instance() -> Any:
    """The launched DBOS instance, or None (DBOS keeps it as a module global)."""
    from dbos import _dbos

    return getattr(_dbos, "_dbos_global_instance", None)


def _stop_launching() -> None:
    """Tell DBOS's scheduler and queue threads to start no more workflows.

    What its destroy does first: `Engine.stop` can then wait for the running ones before it.
    """
    instance = _dbos_instance()
    for event in getattr(instance, "background_thread_stop_events", ()):
        event.set()


async def _workflows_ended(deadline: float) -> None:
    """Wait until no workflow runs in this process, or the loop's clock passes `deadline`."""
    loop = asyncio.get_running_loop()
    while True:  # DBOS offers no event for it: look every few hundredths of a second
        if not _active_workflows() or loop.time() >= deadline:
            return
        await asyncio.sleep(_DRAIN_POLL_SECONDS)


def _active_workflows() -> bool:
    """Whether a workflow runs in this process (until it has recorded its outcome)."""
    active = getattr(_dbos_instance(), "_active_workflows_set", None)
    return bool(active is not None and active.activeList())


class SyncPausedError(EngineError):
    """Sync is paused: a side's circuit is open, or an admin paused all sync (`/readyz`)."""


class PreflightError(EngineError):
    """A side failed the preflight: nothing was synced (`cosell sync` exits with it)."""

    def __init__(self, failures: Sequence[Scope]) -> None:
        super().__init__(
            "nothing was synced: "
            + "; ".join(f"{SIDE_NAMES.get(f.side or '', f.side)}: {f.message()}" for f in failures)
        )
        self.failures = tuple(failures)


Progress = Callable[[int, int | None], None]
"""Called after each batch of a pass with (keys done, keys expected or None when unknown)."""

ContextFactory = Callable[[bool], AbstractAsyncContextManager["SyncContext"]]
"""Opens a `SyncContext` (its clients) for the engine: called with `dry_run`, closed on exit."""


class Reconciler(Protocol):
    """The reconcile functions as the engine calls them (the module `cosell.sync.run.reconcile`)."""

    async def reconcile_key(self, ctx: SyncContext, key: Key, /) -> Outcome:
        """Reconcile one key."""
        ...

    async def reconcile_batch(self, ctx: SyncContext, keys: Sequence[Key], /) -> list[Outcome]:
        """Reconcile up to 200 keys with shared reads and collection writes."""
        ...


@dataclass(frozen=True)
class Summary:
    """What a pass did.

    Attributes:
        keys_seen: keys reconciled (or planned, in a dry run).
        counts: outcomes by result (`cosell.sync.plan.outcome.RESULTS`).
        api_calls: API calls made, reads of the pollers and sweeps included.
        errors: (key, message) of every key that ended in error.
        outcomes: every outcome, in order (the CLI prints a dry run's plans from them); the
            values written are kept in a dry run only.
        dry_run: nothing was written.
    """

    keys_seen: int
    counts: dict[str, int]
    api_calls: int
    errors: tuple[tuple[str, str], ...]
    outcomes: tuple[Outcome, ...]
    dry_run: bool

    def count(self, result: str) -> int:
        """How many keys ended with `result`."""
        return self.counts.get(result, 0)

    @property
    def ok(self) -> bool:
        """No key ended in error, and none waits for a side or a pause."""
        return not self.errors and not self.count(results.HELD)


@dataclass
class _Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    extra_calls: int = 0

    def add(self, outcomes: Iterable[Outcome]) -> None:
        # A write pass keeps each outcome without its values (they are in the audit): a
        # backfill of 50,000 referrals would otherwise hold every value it wrote until it ends.
        self.outcomes.extend(
            o if o.dry_run else replace(o, to_salesforce={}, to_partner_center={}) for o in outcomes
        )

    def summary(self, *, dry_run: bool) -> Summary:
        counts = dict.fromkeys(results.RESULTS, 0)
        for item in self.outcomes:
            counts[item.result] = counts.get(item.result, 0) + 1
        return Summary(
            keys_seen=len(self.outcomes),
            counts=counts,
            api_calls=self.extra_calls + sum(o.api_calls for o in self.outcomes),
            errors=tuple(
                (o.key, o.message or "failed") for o in self.outcomes if o.result == results.ERROR
            ),
            outcomes=tuple(self.outcomes),
            dry_run=dry_run,
        )


# -- configuration helpers ----------------------------------------------------------------------


# -- the running engine (DBOS is one per process) ----------------------------------------------


# -- steps and workflows -------------------------------------------------------------------------


# -- the engine ----------------------------------------------------------------------------------


class Engine:
    """The sync engine of one process: DBOS launched, queues and schedules registered.

    Args:
        settings: cosell's settings (`[sync]` intervals); may be None when `options` is given.
        store: the opened store (leases, cursors, parked links).
        context_factory: opens the `SyncContext` the reconciles use (called with `dry_run`).
        clock: what backoff waits on.
        options: overrides `EngineOptions.from_settings(settings)`.
        reconciler: the reconcile functions; W1's `cosell.sync.run.reconcile` by default.
    """

    def __init__(
        self,
        settings: Settings | None,
        *,
        store: Store,
        context_factory: ContextFactory,
        clock: Clock,
        options: EngineOptions | None = None,
        reconciler: Reconciler | None = None,
    ) -> None:
        if options is None:
            if settings is None:
                raise EngineError("an Engine needs settings or options")
            options = EngineOptions.from_settings(settings)
        self._options = options
        self._store = store
        self._factory = context_factory
        self._clock = clock
        self._reconciler = reconciler if reconciler is not None else _default_reconciler()
        self._ctx: SyncContext | None = None
        self._ctx_manager: AbstractAsyncContextManager[SyncContext] | None = None
        self._system_engine: sa.Engine | None = None
        self._started = False
        self._background = False
        self._running = 0  # reconcile and batch workflows running in this process
        self._stopping = False  # `stop` began: scheduled polls and sweeps do nothing
        # Referrals a foreground pass listed, by key, until their batch ran (not durable: a
        # batch recovered elsewhere reads them again).
        self._listed: dict[Key, Referral] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._inbox_wakeup = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._breaker = Breaker(store, clock, probe_seconds=options.probe_interval)
        self._heal_lock = asyncio.Lock()
        # Held keys `heal` notified: their holds stay (counted Pending) until they have run.
        self._healing: set[str] = set()
        self._unlisten: Callable[[], None] | None = None
        self._notifying: set[asyncio.Task[None]] = set()

    @property
    def options(self) -> EngineOptions:
        """The options in force."""
        return self._options

    def _context(self) -> SyncContext:
        if self._ctx is None:
            raise EngineError("the engine is not started")
        return self._ctx

    # -- the Runtime the workflows run on (`workflows.Runtime`) --------------------------------

    @property
    def store(self) -> Store:
        """The store (leases, cursors, wake-ups, parked links)."""
        return self._store

    @property
    def clock(self) -> Clock:
        """What backoffs wait on."""
        return self._clock

    def context(self) -> SyncContext:
        """The open sync context.

        Raises:
            EngineError: the engine is not started.
        """
        return self._context()

    async def attempt_key(self, key: Key, owner: str) -> workflows.Attempt:
        """One attempt at one key under its lease (a step of `workflows.reconcile_key_workflow`)."""
        return await self._attempt_key(self._context(), key, owner)

    async def attempt_batch(self, keys: Sequence[Key], owner: str) -> workflows.Attempt:
        """One attempt at a batch under its leases (a step of `workflows.reconcile_batch_workflow`)."""
        return await self._attempt_batch(self._with_listed(self._context(), keys), keys, owner)

    async def poll(self, side: str) -> pollers.PollResult | None:
        """Poll one side from its stored cursor.

        Returns:
            What the poll found, or None when the side failed (its circuit is now open; the
            cursor stays where it was, so nothing is missed when it comes back).

        Raises:
            Exception: a bug (not an error of a side).
        """
        try:
            return await self._poll(side, self._context())
        except Exception as exc:
            if self.side_failed(exc):
                return None
            raise

    # -- failures by scope (`plan.scope`, `breaker`) ------------------------------------------

    @property
    def breaker(self) -> Breaker:
        """Both sides' circuits."""
        return self._breaker

    def side_failed(self, error: BaseException) -> bool:
        """Open the circuit of the side `error` is about (a poll, a sweep page, a probe).

        A transient error here has already been retried by the client, so the side is
        unreachable for now. Returns False for an error of no side (a bug: raise it).
        """
        scope = scope_of(error)
        if scope.side is None or scope.kind not in (GLOBAL, TRANSIENT):
            return False
        if scope.kind == TRANSIENT:
            scope = unreachable(scope.side, scope.cause)
        self._breaker.trip(scope)
        return True

    async def trip_unreachable(self, side: str, message: str) -> bool:
        """A key kept failing transiently on `side` through every retry: is the side down?

        Unless its circuit is open already, the side is probed once (`check_side`): when the
        probe fails the side is unreachable and its circuit opens; when it passes the side is
        healthy and the failure is this deal's passing trouble (a row lock, a slow record):
        nothing opens. Either way the caller holds the key, so it is tried again at the next
        poll tick, never parked.

        Returns:
            True when the side's circuit is open.
        """
        if self._breaker.is_open(side):
            return True
        try:
            await check_side(self._context(), side)
        except Exception as exc:  # noqa: BLE001 - a failed probe is the side's answer
            scope = scope_of(exc)
            self._breaker.trip(scope if scope.is_global else unreachable(side, message))
            return True
        log.info("%s answers; a deal's transient failure is retried at the next poll", side)
        return False

    def hold(self, keys: Sequence[Key], side: str) -> None:
        """Keep the keys waiting for `side` (or `PAUSED`) instead of parking them."""
        self._store.hold_keys(list(keys), side=side)

    def release(self, keys: Sequence[Key]) -> None:
        """Let go of the holds of keys that ran (`heal` notified them, not held again)."""
        self._store.release_keys(list(keys))
        self._healing.difference_update(keys)

    async def _let_go(self, outcomes: Sequence[Outcome]) -> None:
        # A key `heal` notified keeps its hold (counted Pending by `cosell status`) until it
        # has run: released once it ends otherwise than held again or left to another worker.
        ran = [
            o.key
            for o in outcomes
            if o.key in self._healing and o.result not in (results.HELD, results.SKIPPED)
        ]
        if ran:
            await workflows.release_step(ran)

    def blocked(self) -> tuple[str, str] | None:
        """What stops all sync now: (what it waits for, why), or None.

        A side whose circuit is open stops every reconcile (each reads both sides); a pause
        of all sync stops them too.
        """
        for circuit in self._breaker.open_circuits():
            return circuit.side, circuit_sentence(circuit.side, circuit.cause, circuit.fix)
        for pause in self._store.pauses():
            if pause.target is None:
                return PAUSED, pause_sentence(pause)
        return None

    def health_problems(self) -> list[str]:
        """Why sync is paused, one sentence each (empty when both sides sync): for `/readyz`."""
        problems = [
            f"{SIDE_NAMES[c.side]} sync is paused: {c.cause}" + (f"; fix: {c.fix}" if c.fix else "")
            for c in self._breaker.open_circuits()
        ]
        problems += [
            f"all sync is paused by {p.by}"
            + (f" ({p.reason})" if p.reason else "")
            + "; run cosell resume"
            for p in self._store.pauses()
            if p.target is None
        ]
        return problems

    def check_health(self) -> str:
        """`/readyz`'s sync check: passes when both sides sync and nothing is paused.

        Raises:
            SyncPausedError: a side's circuit is open or all sync is paused; the message says
                why and what to do.
        """
        problems = self.health_problems()
        if problems:
            raise SyncPausedError("; ".join(problems))
        deals = sum(1 for p in self._store.pauses() if p.target is not None)
        if deals:  # one deal paused is not the service's problem, but say so
            return f"both sides syncing; {deals} deal(s) paused by hand (cosell status lists them)"
        return "both sides syncing"

    def _held(self, keys: Sequence[Key]) -> tuple[str, str, list[Key]] | None:
        """The keys that must wait now: (what for, why, keys), or None when none must."""
        stop = self.blocked()
        if stop is not None:
            return stop[0], stop[1], list(keys)
        paused = {p.target: p for p in self._store.pauses() if p.target is not None}
        if not paused:
            return None
        waiting = []
        why = ""
        for key in keys:
            try:
                link = link_of(self._store, KeyRef.parse(key))
            except KeyFormatError:
                continue
            if link is not None and link.id in paused:
                waiting.append(key)
                why = why or pause_sentence(paused[link.id])
        if not waiting:
            return None
        return PAUSED, why, waiting

    def _classified(
        self, error: Exception, keys: Sequence[Key], *, persist: bool
    ) -> workflows.Attempt:
        """The attempt an exception out of a reconcile makes, by its scope (`plan.scope`).

        Called in an `except` block (a bug's traceback is logged from there, once).
        """
        scope = scope_of(error)
        if scope.kind == GLOBAL:
            if persist:
                self._breaker.trip(scope)
            return workflows.Attempt(
                "held", side=scope.side, message=scope.message(), held=tuple(keys)
            )
        if scope.kind == TRANSIENT:
            return workflows.Attempt(
                "retry", retry_after=scope.retry_after, message=str(error), side=scope.side
            )
        if scope.kind == PER_DEAL:
            log.warning("reconcile of %s refused: %s", ", ".join(keys[:3]), error)
            return workflows.Attempt("failed", message=str(error))
        # A bug, or an error the reconcile should have parked: these keys fail, the others
        # keep syncing, and the traceback is in the log once.
        log.exception("reconcile of %d key(s) (%s) failed unexpectedly", len(keys), keys[0])
        return workflows.Attempt("failed", message=workflows.unexpected(error))

    async def run_preflight(self) -> list[Scope]:
        """Check both connections and the mapping (`io.preflight`); open the failing sides.

        Returns:
            The failures (empty when both sides pass; a passing side's circuit is closed).
        """
        failures = await preflight(self._context(), fresh=True)
        failed = {f.side for f in failures}
        for failure in failures:
            self._breaker.trip(failure)
        for side in SIDES:
            if side not in failed:
                self._breaker.close(side)
        return failures

    async def heal(self) -> int:
        """Probe the open sides that are due; once nothing stops sync, notify the held keys.

        A notified key keeps its hold (counted Pending) until it has run (`_let_go`).

        Called by every poll tick (and by tests): at most one probe per side per
        `EngineOptions.probe_interval`, never before a throttling side's `Retry-After`.

        Returns:
            How many held keys were notified.
        """
        async with self._heal_lock:
            ctx = self._context()
            # Another process (a `cosell sync`, another worker) may have opened a side: adopt
            # the circuits as stored, so that this worker probes them and closes them too.
            await asyncio.to_thread(self._breaker.load)
            for side in SIDES:
                if not self._breaker.due(side):
                    continue
                try:
                    await check_side(ctx, side, fresh=True)
                except Exception as exc:  # noqa: BLE001 - a failed probe keeps the side open
                    scope = scope_of(exc)
                    if scope.kind != GLOBAL:
                        scope = unreachable(side, scope.cause)
                    self._breaker.probe_failed(scope)
                else:
                    self._breaker.close(side)
            if await asyncio.to_thread(self.blocked) is not None:
                return 0
            held = await asyncio.to_thread(self._store.held_keys)
            pauses = await asyncio.to_thread(self._store.pauses)
            paused = {str(p.target) for p in pauses if p.target is not None}
            keys = [
                Key(h.key)
                for h in held
                if not (h.side == PAUSED and self._deal_paused(Key(h.key), paused))
            ]
            if not keys:
                return 0
            if DBOS.workflow_id is not None:
                await self._notify_from_workflow(keys)
            else:
                await workflows._enqueue_keys(
                    await workflows._unqueued_keys(keys), uuid.uuid4().hex
                )
            self._healing.update(keys)  # released by `_let_go` once each has run
            log.info("sync resumed: %d waiting key(s) notified", len(keys))
            return len(keys)

    def _deal_paused(self, key: Key, paused: set[str]) -> bool:
        try:
            link = link_of(self._store, KeyRef.parse(key))
        except KeyFormatError:
            return False
        return link is not None and link.id in paused

    # -- lifecycle --------------------------------------------------------------------------

    def dbos_config(self) -> DBOSConfig:
        """The DBOS configuration this engine launches with (no telemetry, no Conductor)."""
        url = self._options.system_database_url or system_database_url(self._store.url)
        return {
            "name": "cosell",
            "system_database_url": url,
            "application_version": __version__,
            "executor_id": self._options.executor_id,
            "log_level": "WARNING",
            "enable_otlp": False,
            # A worker wakes for notifications on SQLite by polling; a tenth of a second keeps
            # a webhook's reconcile prompt without measurable load.
            "notification_listener_polling_interval_sec": 0.1,
            "scheduler_polling_interval_sec": 5.0,  # schedules change only when we apply them
        }

    def _launch_config(self) -> DBOSConfig:
        # A SQLite system database gets cosell's engine (`system_database`), kept to dispose.
        config = self.dbos_config()
        url = config.get("system_database_url") or ""
        if url.startswith("sqlite"):
            self._system_engine = system_database.sqlite_engine(url)
            config["system_database_engine"] = self._system_engine
        return config

    async def start(self, *, background: bool = True) -> None:
        """Open the context, launch DBOS, register the queues (and the schedules).

        Call it on the event loop that is to run the workflows (the service's loop): DBOS
        adopts the loop running at launch, and the context's HTTP clients belong to it.

        Args:
            background: run as a worker: dequeue reconciles and batches, and apply the poller
                and sweep schedules. False (`cosell sync`): only what `run_pass` needs.

        Raises:
            EngineError: another engine is started in this process.
        """
        workflows.bind(self)
        configure_dbos_logging()
        self._breaker.load()
        manager = self._factory(False)
        self._ctx = await manager.__aenter__()
        self._ctx_manager = manager
        try:
            DBOS(config=self._launch_config())
            if not background:
                DBOS.listen_queues([])
            DBOS.launch()
            polling = self._options.queue_polling_seconds
            await DBOS.register_queue_async(
                RECONCILE_QUEUE,
                partition_concurrency=1,
                worker_concurrency=self._options.worker_reconciles,
                polling_interval_sec=polling,
                on_conflict="always_update",
            )
            await DBOS.register_queue_async(
                BATCH_QUEUE,
                worker_concurrency=self._options.worker_batches,
                polling_interval_sec=polling,
                on_conflict="always_update",
            )
            await DBOS.register_queue_async(
                SCHEDULE_QUEUE, polling_interval_sec=polling, on_conflict="always_update"
            )
            if background:
                await DBOS.apply_schedules_async(self._schedules())
        except BaseException:
            await self._teardown()
            raise
        self._started = True
        self._stopping = False
        self._background = background
        if background and self._options.preflight:
            # A failing side stays paused (its circuit open, probed at every poll tick);
            # the service stays up, unready, and syncs nothing that needs it.
            await self.run_preflight()
        from cosell import refusal

        self._unlisten = refusal.on_reopen(self._sign_in_restored)
        if background:
            await self.drain_inbox()  # events recorded before a crash or a restart
            self._drainer = asyncio.create_task(self._drain_forever(), name="cosell-inbox")

    def _schedules(self) -> list[ScheduleInput]:
        poll = cron_for(self._options.poll_interval_seconds, "poll_interval_seconds")
        sweep = cron_for(self._options.sweep_interval_seconds, "sweep_interval_seconds")
        return [
            {
                "schedule_name": "cosell-poll-partner-center",
                "workflow_fn": workflows.poll_partner_center_workflow,
                "schedule": poll,
                "queue_name": SCHEDULE_QUEUE,
            },
            {
                "schedule_name": "cosell-poll-salesforce",
                "workflow_fn": workflows.poll_salesforce_workflow,
                "schedule": poll,
                "queue_name": SCHEDULE_QUEUE,
            },
            {
                "schedule_name": "cosell-sweep",
                "workflow_fn": workflows.sweep_workflow,
                "schedule": sweep,
                "queue_name": SCHEDULE_QUEUE,
            },
        ]

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Let running reconciles finish (up to `grace_seconds`), shut DBOS down, close.

        Args:
            grace_seconds: how long running reconciles may take to finish; any still running
                then is recovered at the next start (by a worker with the same executor id).
        """
        self._stopping = True
        deadline = asyncio.get_running_loop().time() + grace_seconds
        _stop_launching()  # the scheduler and the queues start no workflow from now on
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace_seconds)
        # A workflow on this loop still records its outcome through DBOS's executor: DBOS is
        # destroyed once none is active, so nothing is submitted to that executor after it shut.
        await _workflows_ended(deadline)
        await self._teardown()

    def _sign_in_restored(self, ended: Exception) -> None:
        """A side signs in again: the deals its refusal parked are retried at once.

        Their retry is made due in the store (so the next poll notifies them even if this
        process stops), and a worker on its event loop notifies them now.
        """
        links = retry_after_sign_in(self._store, ended)
        keys = [link.keys[0] for link in links if link.keys]
        if not keys or not self._background:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called off the loop (a token refresh in a thread): the next poll does it
        task = loop.create_task(self._notify_keys(keys))
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def _notify_keys(self, keys: Sequence[str]) -> None:
        try:
            fresh = await workflows._unqueued_keys(keys)
            await workflows._enqueue_keys(fresh, uuid.uuid4().hex)
        except Exception:
            log.exception("notifying the deals a sign-in refusal parked failed; the poll will")

    async def _teardown(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for task in list(self._notifying):  # each enqueues through DBOS: not after it is gone
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._drainer is not None:
            drainer, self._drainer = self._drainer, None
            drainer.cancel()  # pending events stay in the inbox: the next start drains them
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
        # DBOS joins its threads, which may be waiting on this event loop: never block it.
        await asyncio.to_thread(DBOS.destroy)
        if self._system_engine is not None:
            self._system_engine.dispose()
            self._system_engine = None
        if self._ctx_manager is not None:
            manager, self._ctx_manager = self._ctx_manager, None
            await manager.__aexit__(None, None, None)
        self._ctx = None
        self._started = False
        workflows.unbind(self)

    # -- notifications ----------------------------------------------------------------------

    async def notify(self, key: str) -> bool:
        """Say that `key` may be out of date: enqueue its reconcile unless one is waiting.

        Idempotent and cheap (two system-database statements, no remote call).

        Args:
            key: `referral:<id>` or `salesforce:<SObject>:<id>`.

        Returns:
            True when a reconcile was enqueued, False when a waiting one already covers it.

        Raises:
            KeyFormatError: `key` is not a cosell key.
        """
        parse_key(key)
        self._require_started()
        fresh = await workflows._unqueued_keys([key])
        if not fresh:
            return False
        await workflows._enqueue_keys(fresh, uuid.uuid4().hex)
        return True

    def inbox_recorded(self) -> None:
        """Say that webhook events were committed to the inbox: the drainer runs soon.

        Cheap and synchronous (it sets an event); the webhook endpoint calls it after each
        recorded callback, and many calls before the drainer wakes cost one drain.
        """
        self._inbox_wakeup.set()

    async def drain_inbox(self, *, page: int = INBOX_PAGE) -> int:
        """Turn every pending webhook event in the store's inbox into a reconcile, then complete it.

        Events are read a page at a time; a page's keys are coalesced (one notification per
        distinct key: one query for the waiting reconciles of up to 100 keys, one durable enqueue
        per key with none waiting), and the page's rows are completed in one statement once
        those enqueues are done. So a crash in between notifies them again: harmless, the
        reconcile is level-triggered. Store reads and writes run in a worker thread, off the
        event loop that answers webhooks. `start` drains the inbox of a worker; afterwards the
        background drainer calls it whenever `inbox_recorded` wakes it.

        Args:
            page: events read per store query.

        Returns:
            How many events were drained.
        """
        self._require_started()
        drained = 0
        while events := await asyncio.to_thread(self._store.pending_events, page):
            keys: list[str] = []
            for event in events:
                try:
                    parse_key(event.key)
                except KeyFormatError as exc:
                    # Nothing can reconcile it; say so instead of blocking the inbox behind it.
                    log.warning(
                        "inbox event %s of %s dropped: %s", event.event_id, event.source, exc
                    )
                else:
                    keys.append(event.key)
            fresh = await workflows._unqueued_keys(keys)
            await workflows._enqueue_keys(fresh, uuid.uuid4().hex)
            await asyncio.to_thread(self._store.complete_events, [e.id for e in events])
            drained += len(events)
        return drained

    async def _drain_forever(self) -> None:
        """The background drainer of a worker: drain whenever woken; retry after a failure."""
        while True:
            await self._inbox_wakeup.wait()
            self._inbox_wakeup.clear()
            try:
                await self.drain_inbox()
            except Exception:
                log.exception(
                    "draining the webhook inbox failed; the events stay pending, retrying in "
                    "%.0f s",
                    INBOX_RETRY_SECONDS,
                )
                await self._clock.sleep(INBOX_RETRY_SECONDS)
                self._inbox_wakeup.set()

    async def _notify_from_workflow(self, keys: Sequence[str], *, attempt: int = 0) -> int:
        # The child ids derive from this workflow's id (deterministic when it is recovered)
        # and the attempt, so a later attempt notifying the same key enqueues a new run.
        fresh = await workflows.unqueued_keys_step(list(keys))
        await workflows._enqueue_keys(fresh, f"{DBOS.workflow_id or uuid.uuid4().hex}-{attempt}")
        return len(fresh)

    def _require_started(self) -> None:
        if not self._started:
            raise EngineError("start the engine first (await engine.start())")

    # -- one key ----------------------------------------------------------------------------

    async def _attempt_key(
        self, ctx: SyncContext, key: Key, owner: str | None
    ) -> workflows.Attempt:
        waiting = await asyncio.to_thread(self._held, [key])
        if waiting is not None:  # nothing is called while a side or the deal is paused
            side, message, _ = waiting
            await self._show_paused(ctx, side, [key])
            return workflows.Attempt("held", side=side, message=message, held=(key,))
        ttl = self._options.lease_seconds
        leased: list[Key] = []
        if owner is not None:
            # Store calls run off the event loop: the webhook endpoint shares it.
            taken = await asyncio.to_thread(self._claim_link, key, owner, ttl)
            if taken is None:
                return workflows.Attempt("busy", busy=(key,))
            leased = taken
        try:
            async with self._renewing(leased, owner, ttl):
                outcome = await self._reconciler.reconcile_key(ctx, key)
        except Exception as exc:  # noqa: BLE001 - sorted by scope; a bug's traceback is logged
            return self._classified(exc, [key], persist=owner is not None)
        finally:
            if owner is not None:
                await asyncio.to_thread(self._release, leased, owner)
        return workflows.Attempt("done", outcomes=(outcome,))

    async def _show_paused(self, ctx: SyncContext, side: str, held: Sequence[Key]) -> None:
        """Keys held for their deal's pause show it on their record (`run.park.show_paused`)."""
        if side != PAUSED:
            return
        for key in held:
            await show_paused(ctx, key)

    def _claim_link(self, key: Key, owner: str, ttl: float) -> list[Key] | None:
        """Lease `key` and the other key of its link, if it has one; the keys leased.

        A link is reachable from both sides (Partner Center's webhook notifies
        `referral:<id>`, the Salesforce poller `salesforce:Opportunity:<id>`). Leasing only
        the notified key let two reconciles of one link run at once, and the later one could
        write back the value the earlier one had just replaced (a lost update, found by
        `bench/latency.py`). So a reconcile leases every key of the link, all or none.

        Returns:
            The keys now leased to `owner`, or None (nothing kept) when another holds one.
        """
        keys = [key, *(other for other in self._linked_keys(key) if other != key)]
        taken: list[Key] = []
        for each in keys:
            if not self._store.claim(each, owner=owner, ttl_seconds=ttl):
                for held in taken:
                    self._store.release(held, owner=owner)
                return None
            taken.append(each)
        return taken

    def _claim_links(
        self, keys: Sequence[Key], owner: str, ttl: float
    ) -> tuple[list[Key], list[Key], list[Key]]:
        """`_claim_link` for each key of a batch: (keys claimed, keys leased, keys busy)."""
        claimed: list[Key] = []
        leased: list[Key] = []
        busy: list[Key] = []
        for key in keys:
            taken = self._claim_link(key, owner, ttl)
            if taken is None:
                busy.append(key)
            else:
                claimed.append(key)
                leased.extend(taken)
        return claimed, leased, busy

    def _release(self, keys: Sequence[Key], owner: str) -> None:
        for key in keys:
            self._store.release(key, owner=owner)

    def _renew(self, keys: Sequence[Key], owner: str, ttl: float) -> list[Key]:
        """Renew the leases; the keys whose lease was lost."""
        return [k for k in keys if not self._store.claim(k, owner=owner, ttl_seconds=ttl)]

    def _linked_keys(self, key: Key) -> tuple[Key, ...]:
        """The keys of the link `key` resolves to (none when it has no link yet)."""
        link = link_of(self._store, KeyRef.parse(key))
        return () if link is None else link.keys

    @asynccontextmanager
    async def _renewing(
        self, keys: Sequence[Key], owner: str | None, ttl: float
    ) -> AsyncIterator[None]:
        """Keep the leases on `keys` while the body runs (a reconcile may outlast its TTL).

        Renewed every third of the TTL on the event loop's timer (the holder is alive as long
        as its loop runs); the leases themselves expire on the store's clock.
        """
        if not keys or owner is None:
            yield
            return

        async def renew() -> None:
            while True:
                await asyncio.sleep(ttl / 3)
                lost = await asyncio.to_thread(self._renew, keys, owner, ttl)
                if lost:
                    log.warning("lost the lease on %s while reconciling it", ", ".join(lost))

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        self._running += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def run_key(self, key: str, *, owner: str) -> Outcome:
        """The body of `reconcile_key_workflow`: attempts with backoff, then park."""
        with self._busy():
            outcome = await self._run_key_attempts(key, owner=owner)
            await self._let_go([outcome])
            return outcome

    async def _run_key_attempts(self, key: str, *, owner: str) -> Outcome:
        policy = self._options.backoff
        failures = 0
        busy = 0
        while True:
            attempt = await workflows.reconcile_key_step(key, owner)
            if attempt.kind == "done":
                return attempt.outcomes[0]
            if attempt.kind == "held":
                await workflows.hold_step([key], attempt.side or PAUSED)
                return workflows.held_outcome(key, attempt.message)
            if attempt.kind == "failed":
                message = f"{attempt.message}; retried at the next change or sweep"
                await workflows.park_step([key], message, lasting=True)
                return workflows.error_outcome(key, message)
            if attempt.kind == "busy":
                busy += 1
                if busy >= policy.busy_attempts:
                    message = "another worker kept this key busy; it will be retried by the sweep"
                    return workflows.error_outcome(key, message)
                await workflows.backoff_step(policy.busy_delay)
                continue
            failures += 1
            if failures >= policy.max_attempts:
                if attempt.side is not None:
                    # Still failing after every retry: the side's problem (it is paused) or a
                    # passing one of this deal on a healthy side; held either way, not parked.
                    await workflows.trip_step(attempt.side, attempt.message or "no answer")
                    await workflows.hold_step([key], attempt.side)
                    return workflows.held_outcome(key, attempt.message)
                message = (
                    f"gave up after {failures} attempts: {attempt.message}; retried by itself "
                    "with backoff, and at the next change"
                )
                await workflows.park_step([key], message)
                return workflows.error_outcome(key, message)
            delay = policy.delay(failures, attempt.retry_after)
            log.info(
                "reconcile of %s failed (%s); retry %d in %.1f s",
                key,
                attempt.message,
                failures,
                delay,
            )
            await workflows.backoff_step(delay)

    def park(self, key: Key, message: str, *, lasting: bool = False) -> None:
        """Park the key's link in Error with the message (the last of its attempts failed).

        Args:
            key: the key.
            message: why.
            lasting: a bug: no scheduled retry (it is tried again when the deal changes).
        """
        link = link_of(self._store, KeyRef.parse(key))
        if link is not None:
            park_link(self._store, link, message[:255], now=self._clock.now(), lasting=lasting)

    def parked_keys(self) -> list[Key]:
        """The keys of the links parked in Error (for the sweep)."""
        keys: list[Key] = []
        after: str | None = None
        while True:
            page = self._store.links(status=SyncStatus.ERROR, limit=_LINK_PAGE, after=after)
            keys.extend(link.keys[0] for link in page if link.keys)
            if len(page) < _LINK_PAGE:
                return keys
            after = page[-1].id

    # -- batches ----------------------------------------------------------------------------

    async def _attempt_batch(
        self, ctx: SyncContext, keys: Sequence[Key], owner: str | None
    ) -> workflows.Attempt:
        waiting = await asyncio.to_thread(self._held, keys)
        held: list[Key] = []
        side: str | None = None
        message: str | None = None
        if waiting is not None:
            side, message, held = waiting
            await self._show_paused(ctx, side, held)
            if len(held) == len(keys):  # nothing is called while a side is paused
                return workflows.Attempt("held", side=side, message=message, held=tuple(held))
            keys = [k for k in keys if k not in held]
        claimed: list[Key] = []
        leased: list[Key] = []
        busy: list[Key] = []
        ttl = self._options.batch_lease_seconds
        if owner is None:
            claimed = list(keys)
        else:
            claimed, leased, busy = await asyncio.to_thread(self._claim_links, keys, owner, ttl)
        try:
            async with self._renewing(leased, owner, ttl):
                outcomes = await self._reconciler.reconcile_batch(ctx, claimed) if claimed else []
        except Exception as exc:  # noqa: BLE001 - sorted by scope; a bug's traceback is logged
            attempt = self._classified(exc, claimed, persist=owner is not None)
            return replace(attempt, busy=tuple(busy), held=(*attempt.held, *held))
        finally:
            if owner is not None:
                await asyncio.to_thread(self._release, leased, owner)
        return workflows.Attempt(
            "done",
            outcomes=tuple(outcomes),
            busy=tuple(busy),
            side=side,
            message=message,
            held=tuple(held),
        )

    async def run_batch(self, keys: Sequence[str], *, owner: str) -> list[Outcome]:
        """The body of `reconcile_batch_workflow`: attempts with backoff, held keys notified."""
        with self._busy():
            outcomes = await self._run_batch_attempts(keys, owner=owner)
            await self._let_go(outcomes)
            return outcomes

    async def _run_batch_attempts(self, keys: Sequence[str], *, owner: str) -> list[Outcome]:
        policy = self._options.backoff
        failures = 0
        while True:
            attempt = await workflows.reconcile_batch_step(list(keys), owner)
            if attempt.busy:
                await self._notify_from_workflow(attempt.busy, attempt=failures)
            waiting = [workflows.held_outcome(k, attempt.message) for k in attempt.held]
            if attempt.held:
                await workflows.hold_step(list(attempt.held), attempt.side or PAUSED)
            if attempt.kind in ("done", "held"):
                return (
                    list(attempt.outcomes)
                    + waiting
                    + [workflows.busy_outcome(k) for k in attempt.busy]
                )
            failures += 1
            if attempt.kind == "retry" and failures >= policy.max_attempts and attempt.side:
                # Still failing after every retry: the side's problem (it is paused) or a
                # passing one of these deals on a healthy side; held either way, not parked.
                await workflows.trip_step(attempt.side, attempt.message or "no answer")
                left = [k for k in keys if k not in attempt.busy and k not in attempt.held]
                await workflows.hold_step(left, attempt.side)
                return (
                    [workflows.held_outcome(k, attempt.message) for k in left]
                    + waiting
                    + [workflows.busy_outcome(k) for k in attempt.busy]
                )
            if attempt.kind == "failed" or failures >= policy.max_attempts:
                lasting = attempt.kind == "failed"  # a bug: tried again when the deal changes
                message = (
                    f"{attempt.message}; retried at the next change or sweep"
                    if lasting
                    else f"gave up after {failures} attempts: {attempt.message}; retried by "
                    "itself with backoff, and at the next change"
                )
                failed = [k for k in keys if k not in attempt.busy and k not in attempt.held]
                await workflows.park_step(failed, message, lasting=lasting)
                return (
                    [workflows.error_outcome(k, message) for k in failed]
                    + waiting
                    + [workflows.busy_outcome(k) for k in attempt.busy]
                )
            await workflows.backoff_step(policy.delay(failures, attempt.retry_after))

    # -- pollers and sweeps -----------------------------------------------------------------

    async def _poll(self, side: str, ctx: SyncContext) -> pollers.PollResult:
        overlap = self._options.overlap_seconds
        if side == "partner_center":
            cursor = pollers.Cursor.parse(self._store.cursor(pollers.PARTNER_CENTER_CURSOR))
            return await pollers.poll_partner_center(
                ctx.partner_center,
                cursor,
                overlap=overlap,
                synced=functools.partial(pollers.synced_stamps, self._store),
            )
        if side.startswith(RELATED_SIDE):
            source = side.removeprefix(RELATED_SIDE)
            cursor = pollers.Cursor.parse(self._store.cursor(pollers.related_cursor(source)))
            return await pollers.poll_related(
                ctx.salesforce,
                cursor,
                source=source,
                collections=ctx.mapping.collections,
                linked=functools.partial(pollers.linked_keys, self._store),
                overlap=overlap,
            )
        name, sobject = (
            (pollers.LEAD_CURSOR, LEAD)
            if side == "salesforce_lead"
            else (pollers.SALESFORCE_CURSOR, pollers.OPPORTUNITY)
        )
        cursor = pollers.Cursor.parse(self._store.cursor(name))
        return await pollers.poll_salesforce(
            ctx.salesforce, cursor, overlap=overlap, sobject=sobject
        )

    async def run_poll(self, side: str) -> int:
        """The body of the poll workflows: heal, enqueue what changed, then store the cursor.

        While the polled side's circuit is open it is not polled and its cursor stays: the
        first poll after it is back finds every change made meanwhile. The other side is
        polled as usual: what it finds is held (Pending, shown in `cosell status`) until the
        failing side is back or sync resumes, then notified by `heal`. A Salesforce poll is
        also skipped while a live CDC stream covers that side (`streamstate`).
        """
        if self._stopping:  # launched as the engine stops: the next start polls
            return 0
        await self.heal()
        if self._breaker.is_open(PARTNER_CENTER if side == "partner_center" else SALESFORCE):
            return 0
        if side != "partner_center" and streamstate.covers(self._store, self._clock.now()):
            return 0
        found = await workflows.poll_step(side)
        if found is None:
            return 0
        await self._notify_from_workflow(found.keys)
        if side == "partner_center":
            await self._run_wakeups()
            # That a service is running, and which worker polled (`cosell retry` reads it).
            await workflows.save_cursor_step(pollers.SERVICE_POLL_CURSOR, self._options.executor_id)
        await workflows.save_cursor_step(cursor_name(side), found.cursor.dump())
        return len(found.keys)

    def related_sides(self) -> list[str]:
        """The poll sides of the related change sources (child objects, the account)."""
        collections = self._context().mapping.collections
        return [f"{RELATED_SIDE}{name}" for name in pollers.related_sources(collections)]

    async def _run_wakeups(self) -> int:
        """Notify the keys whose wake-up is due (a held win, an expiry warning), then clear them.

        The parked links whose scheduled retry is due (`Store.due_retries`) are notified too;
        their reconcile moves the schedule on, or clears it when the deal syncs.

        Returns:
            How many keys were due.
        """
        due = await workflows.due_wakeups_step()
        retries = await workflows.due_retries_step()
        if due or retries:
            await self._notify_from_workflow([*(key for key, _ in due), *retries])
        if due:
            await workflows.clear_wakeups_step(due)
        return len(due) + len(retries)

    async def run_sweep(self) -> int:
        """The body of `sweep_workflow`: every referral page as batch workflows."""
        if self._stopping:  # launched as the engine stops: the next sweep does it
            return 0
        if await asyncio.to_thread(self.blocked) is not None:
            return 0  # a paused side: the sweep would only hold every key
        queue = await DBOS.retrieve_queue_async(BATCH_QUEUE)
        if queue is None:
            raise EngineError(f"the queue {BATCH_QUEUE} is not registered; start the engine")
        parent = DBOS.workflow_id or uuid.uuid4().hex
        batches = 0
        seen: set[str] = set()
        pending: list[str] = []

        async def submit(keys: Sequence[str], *, flush: bool = False) -> None:
            # Full batches of 200 across pages, as in a pass (one SOQL IN per batch).
            nonlocal batches
            fresh = [k for k in dict.fromkeys(keys) if k not in seen]
            seen.update(fresh)
            pending.extend(fresh)
            while len(pending) >= BATCH_SIZE or (flush and pending):
                chunk = pending[:BATCH_SIZE]
                del pending[:BATCH_SIZE]
                with SetWorkflowID(f"cosell-batch:{parent}:{batches}"):
                    await queue.enqueue_async(workflows.reconcile_batch_workflow, chunk)
                batches += 1

        next_link: str | None = None
        for _ in range(pollers.MAX_SWEEP_PAGES):
            keys, next_link = await workflows.sweep_page_step(next_link)
            await submit(keys)
            if next_link is None:
                break
        candidates, parked = await workflows.sweep_extras_step()
        await submit([*candidates, *parked], flush=True)
        # When the last sweep ran, for `cosell status` (the cursor named there).
        await workflows.save_cursor_step(LAST_SWEEP_CURSOR, self._clock.now().isoformat())
        return len(seen)

    # -- a foreground pass ------------------------------------------------------------------

    async def run_pass(
        self, *, full: bool = False, dry_run: bool = False, progress: Progress | None = None
    ) -> Summary:
        """Reconcile once, in the foreground (`cosell sync`).

        Incremental (default): the keys both pollers find since their cursors, plus the links
        parked in Error; the cursors advance when every batch ran. Full: every referral, page
        by page, the opportunities waiting for their referral, and the parked links; cursors
        are left alone.

        Args:
            full: reconcile everything, not only what changed.
            dry_run: read and plan; write nothing (no API write, no store write, no workflow).
            progress: called after each batch with (keys done, keys expected or None).

        Both connections and the mapping are checked first (`io.preflight`): when a side
        fails, nothing is synced and nothing in the store changes (`PreflightError`).

        Returns:
            The summary.

        Raises:
            PreflightError: a side failed the preflight; the message says why and what to do.
            EngineError: a write pass on an engine that is not started.
        """
        calls = ApiCalls()
        if dry_run:
            async with self._factory(True) as ctx:
                if failures := await preflight(ctx, calls):
                    raise PreflightError(failures)
                return await self._pass(
                    ctx, full=full, dry_run=True, progress=progress, extra_calls=calls.total
                )
        self._require_started()
        if failures := await preflight(self._context(), calls):
            raise PreflightError(failures)
        return await self._pass(
            self._context(), full=full, dry_run=False, progress=progress, extra_calls=calls.total
        )

    async def _pass(
        self,
        ctx: SyncContext,
        *,
        full: bool,
        dry_run: bool,
        progress: Progress | None,
        extra_calls: int = 0,
    ) -> Summary:
        tally = _Tally(extra_calls=extra_calls)
        done: set[str] = set()
        pending: list[Key] = []
        running: list[tuple[list[Key], asyncio.Task[list[Outcome]]]] = []
        failed = False
        total: int | None = None

        async def batch(chunk: list[Key]) -> list[Outcome]:
            if dry_run:
                return await self._dry_batch(self._with_listed(ctx, chunk), chunk)
            return await workflows.reconcile_batch_workflow(list(chunk))

        async def finish_oldest() -> None:
            # Oldest first, so the outcomes keep the order of the keys.
            nonlocal failed
            chunk, task = running.pop(0)
            try:
                outcomes = await task
            finally:
                for key in chunk:
                    self._listed.pop(key, None)
            failed = failed or any(o.result == results.ERROR for o in outcomes)
            tally.add(outcomes)
            if progress is not None:
                progress(len(tally.outcomes), total)

        async def reconcile(keys: Iterable[Key], *, flush: bool = False) -> None:
            # Keys gather into full batches: one SOQL IN query and one sObject collection
            # serve 200 keys. Up to `worker_batches` batches run at once, so one batch's API
            # calls overlap another's store writes.
            fresh = [k for k in dict.fromkeys(keys) if k not in done]
            done.update(fresh)
            pending.extend(fresh)
            while len(pending) >= BATCH_SIZE or (flush and pending):
                chunk = pending[:BATCH_SIZE]
                del pending[:BATCH_SIZE]
                running.append((chunk, asyncio.create_task(batch(chunk))))
                while len(running) >= max(1, self._options.worker_batches):
                    await finish_oldest()
            while flush and running:
                await finish_oldest()

        try:
            if full:
                candidates, calls = await pollers.salesforce_create_candidates(ctx.salesforce)
                tally.extra_calls += calls
                others = list(dict.fromkeys([*candidates, *self.parked_keys()]))
                async for page in pollers.sweep_pages(ctx.partner_center):
                    tally.extra_calls += 1
                    if page.count is not None:
                        total = page.count + len(others)
                    await reconcile(self._listed_keys(page))
                await reconcile(others, flush=True)
            else:
                pc = await self._poll("partner_center", ctx)
                sf = await self._poll("salesforce", ctx)
                lead = await self._poll("salesforce_lead", ctx) if ctx.lead_sync else None
                related = {
                    side: await self._poll(side, ctx)
                    for side in (
                        f"{RELATED_SIDE}{name}"
                        for name in pollers.related_sources(ctx.mapping.collections)
                    )
                }
                tally.extra_calls += pc.api_calls + sf.api_calls + (lead.api_calls if lead else 0)
                tally.extra_calls += sum(found.api_calls for found in related.values())
                lead_keys = [
                    *(lead.keys if lead else ()),
                    *(key for found in related.values() for key in found.keys),
                ]
                due = self._store.due_wakeups()
                woken = [Key(key) for key, _ in due]
                held = [Key(h.key) for h in self._store.held_keys()]
                keys = list(
                    dict.fromkeys(
                        [*pc.keys, *sf.keys, *lead_keys, *self.parked_keys(), *woken, *held]
                    )
                )
                total = len(keys)
                if progress is not None:
                    progress(0, total)
                await reconcile(keys, flush=True)
                if not dry_run and not failed:
                    self._store.set_cursor(pollers.PARTNER_CENTER_CURSOR, pc.cursor.dump())
                    self._store.set_cursor(pollers.SALESFORCE_CURSOR, sf.cursor.dump())
                    if lead is not None:
                        self._store.set_cursor(pollers.LEAD_CURSOR, lead.cursor.dump())
                    for side, found in related.items():
                        self._store.set_cursor(cursor_name(side), found.cursor.dump())
                    self._store.clear_wakeups(due)
                    # The held keys ran; those that must still wait were held again.
                    self._store.release_keys(
                        [k for k in held if k not in self._still_held(tally.outcomes)]
                    )
        finally:
            for _, task in running:
                task.cancel()
            await asyncio.gather(*(task for _, task in running), return_exceptions=True)
            self._listed.clear()
        return tally.summary(dry_run=dry_run)

    @staticmethod
    def _still_held(outcomes: Iterable[Outcome]) -> set[str]:
        return {o.key for o in outcomes if o.result == results.HELD}

    async def run_keys(
        self, keys: Sequence[str], *, dry_run: bool = False, progress: Progress | None = None
    ) -> Summary:
        """Reconcile these keys now, in the foreground (`cosell sync KEY…`, `cosell retry`).

        Batch workflows of up to 200 keys, under their leases (a key a running `cosell serve`
        holds is reconciled after it), as a pass runs them; cursors are left alone.

        Args:
            keys: the keys, each reconciled once.
            dry_run: read and plan; write nothing.
            progress: called after each batch with (keys done, keys in all).

        Returns:
            The summary.

        Raises:
            EngineError: a write run on an engine that is not started.
        """
        unique = [Key(k) for k in dict.fromkeys(keys)]
        tally = _Tally()

        async def run(ctx: SyncContext | None) -> Summary:
            for start in range(0, len(unique), BATCH_SIZE):
                chunk = unique[start : start + BATCH_SIZE]
                if ctx is not None:
                    tally.add(await self._dry_batch(ctx, chunk))
                else:
                    tally.add(await workflows.reconcile_batch_workflow(list(chunk)))
                if progress is not None:
                    progress(len(tally.outcomes), len(unique))
            return tally.summary(dry_run=dry_run)

        if dry_run:
            async with self._factory(True) as ctx:
                return await run(ctx)
        self._require_started()
        return await run(None)

    def _listed_keys(self, page: pollers.SweepPage) -> list[Key]:
        """The keys of a pass's list page; their referrals kept for their batch to use."""
        keys: list[Key] = []
        for referral in page.referrals:
            key = referral_key(str(referral.id))
            self._listed[key] = referral
            keys.append(key)
        return keys

    def _with_listed(self, ctx: SyncContext, keys: Sequence[Key]) -> SyncContext:
        """`ctx` with the referrals this process's pass listed for `keys` (see `SyncContext`)."""
        listed = {str(r.id): r for k in keys if (r := self._listed.get(k)) is not None}
        return replace(ctx, listed=listed) if listed else ctx

    async def _dry_batch(self, ctx: SyncContext, keys: Sequence[Key]) -> list[Outcome]:
        policy = self._options.backoff
        for failures in range(1, policy.max_attempts + 1):
            attempt = await self._attempt_batch(ctx, keys, owner=None)
            waiting = [workflows.held_outcome(k, attempt.message) for k in attempt.held]
            if attempt.kind in ("done", "held"):
                return list(attempt.outcomes) + waiting
            if attempt.kind == "failed":
                break
            if failures < policy.max_attempts:
                await self._clock.sleep(policy.delay(failures, attempt.retry_after))
        else:
            attempt = replace(
                attempt, message=f"gave up after {policy.max_attempts} attempts: {attempt.message}"
            )
        return [workflows.error_outcome(k, attempt.message or "failed") for k in keys]


RELATED_SIDE: Final = "salesforce_related:"
"""The poll side of a related change source: `salesforce_related:<object>` (`pollers.poll_related`)."""


def cursor_name(side: str) -> str:
    """The stored cursor of a poll side."""
    if side.startswith(RELATED_SIDE):
        return pollers.related_cursor(side.removeprefix(RELATED_SIDE))
    return {
        "partner_center": pollers.PARTNER_CENTER_CURSOR,
        "salesforce_lead": pollers.LEAD_CURSOR,
    }.get(side, pollers.SALESFORCE_CURSOR)


def settings_context_factory(settings: Settings, *, store: Store, clock: Clock) -> ContextFactory:
    """The context factory of a real deployment: clients built from settings, closed on exit.

    Args:
        settings: cosell's settings (credentials, URLs, mapping file).
        store: the opened store.
        clock: the clock of clients and tokens.

    Returns:
        A factory opening a `SyncContext` (dry run when asked, or when the settings say so).
    """

    @asynccontextmanager
    async def open_context(dry_run: bool) -> AsyncIterator[SyncContext]:
        from cosell.sync.io.context import build_context

        ctx = build_context(settings, store=store, clock=clock)
        try:
            yield replace(ctx, dry_run=dry_run or ctx.dry_run)
        finally:
            await ctx.aclose()

    return open_context


def _default_reconciler() -> Reconciler:
    from cosell.sync.run.pipeline import PIPELINE

    return PIPELINE
