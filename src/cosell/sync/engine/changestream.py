"""The Salesforce change source over Change Data Capture (`[salesforce] changes = "cdc"`).

One task per serving process subscribes to the change events of the objects cosell syncs
(the channel `/data/ChangeEvents`, or a custom channel) through the Pub/Sub API and turns
them into key notifications, as the Salesforce poller's pages do:

- `Opportunity` and `Lead` events notify the record's key when the record takes part in
  co-sell: it has a link, or the event sets `Sync_with_Partner_Center__c` or carries a
  `Referral_Identifier__c` (Leads only with lead sync);
- `OpportunityContactRole` and `Microsoft_Solution__c` events notify their opportunity's key
  (the parent id is in a CREATE's fields; otherwise one `queryAll` per batch finds it), when
  that opportunity is linked;
- events whose `changeOrigin` says `client=cosell` are our own writes echoing back: they are
  skipped without a call (the reconcile that wrote them already recorded the result).

**Position.** The replay id of the last handled batch is stored (cursor `cdc:<channel>`)
only after its keys are notified (`Engine.notify` enqueues durable workflows), so a crash
re-delivers the batch (harmless: reconciles are level-triggered) and never skips one. A
restart resumes after the stored id; the first start (no stored id) begins at `LATEST` and
runs one catch-up poll, which covers whatever changed before the stream was open.

**Never a lost change.** A gap event (`GAP_*`: Salesforce could not describe a change), an
overflow event (`GAP_OVERFLOW`: too many records in one transaction) and a stored replay id
that is no longer retained (72 hours) each cause a *catch-up poll*: the Salesforce poller
run once from its cursor (`pollers.poll_salesforce`), its keys notified, its cursor stored.
While the stream delivers in order with no gap, the poller's cursor is moved up to the
commit time of the last handled event, so that a catch-up reads only the last few seconds.

**Fallback.** While the stream is open the task keeps `cdc:stream` in the store marked live
until two poll intervals (and some slack) ahead; the engine's scheduled Salesforce poll skips its run while
that mark is fresh (`covers`). When the stream fails (dropped, refused, Salesforce down) the
mark says down with the reason, so the scheduled poll runs again at its interval, and the
task subscribes again with capped exponential backoff and jitter on the injected clock. The
mark is what `cosell status`, the console and `/metrics` show.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from cosell.clock import Clock
from cosell.salesforce.client import SalesforceClient
from cosell.salesforce.errors import RetriableError, SalesforceError, SessionExpiredError
from cosell.salesforce.pubsub.client import PubSubClient, Replay, ReplayIdInvalidError
from cosell.salesforce.pubsub.events import ChangeEvent
from cosell.store import Store
from cosell.store.types import Key, record_key
from cosell.sync.engine.streamstate import STATE_CURSOR, StreamState, stream_state
from cosell.sync.io import pollers
from cosell.sync.plan.leads import LEAD

log = structlog.get_logger(__name__)

DEFAULT_CHANNEL = "/data/ChangeEvents"
OPPORTUNITY = pollers.OPPORTUNITY
CHILD_PARENTS = {
    "OpportunityContactRole": "OpportunityId",
    "Microsoft_Solution__c": "Opportunity__c",
}
"""The child objects whose changes matter to their opportunity, and the field naming it."""
OBJECTS = (OPPORTUNITY, LEAD, *CHILD_PARENTS)
"""The objects whose change events cosell needs (`cosell check` verifies each one's topic)."""
MAX_BACKOFF_SECONDS = 300.0  # a refused or down stream is retried at least every 5 minutes
FIRST_BACKOFF_SECONDS = 1.0
LIVE_SLACK_SECONDS = 10.0  # see `_live_for`
MAX_CATCH_UP_POLLS = 20  # a catch-up reads at most 20 poll pages (200,000 rows) before moving on


class Notifier(Protocol):
    """What the change stream needs of the engine."""

    async def notify(self, key: str) -> bool:
        """Enqueue a reconcile of `key` unless one is waiting."""
        ...

    async def poll(self, side: str) -> pollers.PollResult:
        """Poll one side from its stored cursor."""
        ...


@dataclass(frozen=True)
class ChangeStreamOptions:
    """How the change stream runs.

    Attributes:
        channel: the topic: `/data/ChangeEvents` or a custom channel (`/data/Name__chn`).
        batch: events in flight (flow control).
        poll_interval: seconds between the scheduled polls; the live mark lasts two of them.
        overlap: the poller's overlap, kept when its cursor is moved up.
        lead_sync: Leads take part (lead sync is on).
        client_name: the `client=` cosell's writes carry in `Sforce-Call-Options`.
        start: where a first start begins: `latest` or `earliest`.
    """

    channel: str = DEFAULT_CHANNEL
    batch: int = 100
    poll_interval: float = 30.0
    overlap: float = pollers.DEFAULT_OVERLAP_SECONDS
    lead_sync: bool = False
    client_name: str = "cosell"
    start: str = "latest"


@dataclass
class StreamCounts:
    """What the stream did (tests, bench and metrics read these)."""

    events: int = 0
    own_writes: int = 0
    notified: int = 0
    catch_ups: int = 0
    subscribes: int = 0
    failures: int = 0
    keys: list[str] = field(default_factory=list)


class ChangeStream:
    """The CDC change source of one process (see the module docstring).

    Args:
        notifier: the engine (`notify`, `poll`).
        store: replay id, stream state and poll cursors.
        pubsub: the Pub/Sub API client.
        salesforce: the REST client (parent ids of child-object changes).
        clock: backoff waits and state times.
        options: channel, batch, intervals.
        rng: jitter of the backoff.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        store: Store,
        pubsub: PubSubClient,
        salesforce: SalesforceClient,
        clock: Clock,
        options: ChangeStreamOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._notifier = notifier
        self._store = store
        self._pubsub = pubsub
        self._salesforce = salesforce
        self._clock = clock
        self.options = options or ChangeStreamOptions()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.counts = StreamCounts()
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._live = False
        self.last_error: str | None = None

    @property
    def replay_cursor(self) -> str:
        """The store cursor holding the last handled replay id (hex)."""
        return f"cdc:{self.options.channel}"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Run the stream in the background until `stop()`."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="cosell-cdc")

    async def stop(self) -> None:
        """Stop the stream; the scheduled poller takes over at once."""
        for task in (self._task, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._heartbeat = None
        if self._live:
            self._set_state("down", error="cosell stopped the change stream")
            self._live = False

    async def run(self) -> None:
        """Subscribe, handle batches, resubscribe with backoff on failure; until cancelled."""
        failures = 0
        while True:
            try:
                await self._subscribe_once()
                failures = 0
            except ReplayIdInvalidError as exc:
                log.warning("cdc.replay_id_not_retained", error=str(exc))
                self._store.set_cursor(self.replay_cursor, "")
                self._went_down(f"the stored replay id is no longer retained: {exc}")
                continue  # at once: subscribe at LATEST and catch up by polling
            except SessionExpiredError as exc:
                failures += 1
                self._went_down(str(exc))
                with contextlib.suppress(SalesforceError):
                    await self._pubsub.refresh_token()  # a refused sign-in shows in its own health
            except SalesforceError as exc:
                failures += 1
                self._went_down(str(exc))
                if not isinstance(exc, RetriableError):
                    log.warning("cdc.refused", error=str(exc))
            except Exception as exc:  # a bug must not end the change source: log it, go on
                failures += 1
                log.exception("cdc.failed")
                self._went_down(
                    f"the change stream failed ({type(exc).__name__}: {exc}); see the log"
                )
            await self._clock.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        cap = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2.0 ** max(0, failures - 1))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    # -- one subscription -------------------------------------------------------------------

    async def _subscribe_once(self) -> None:
        stored = self._store.cursor(self.replay_cursor)
        catch_up = not stored
        if stored:
            replay = Replay.after(bytes.fromhex(stored))
        elif self.options.start == "earliest":
            replay, catch_up = Replay.earliest(), False
        else:
            replay = Replay.latest()
        subscription = await self._pubsub.subscribe(
            self.options.channel, replay, batch=self.options.batch
        )
        self.counts.subscribes += 1
        stream = aiter(subscription)
        first = asyncio.ensure_future(anext(stream))
        try:
            await asyncio.sleep(0)  # the first FetchRequest goes out before the catch-up reads
            if catch_up:
                await self.catch_up()
            self._went_live()
            batch = await first
            while True:
                await self._handle(batch.events, batch.latest_replay_id)
                subscription.processed(len(batch.events))
                batch = await anext(stream)
        finally:
            first.cancel()
            await subscription.close()

    async def _handle(self, events: Sequence[ChangeEvent], latest: bytes) -> None:
        self.counts.events += len(events)
        keys: list[Key] = []  # notified
        maybe: list[Key] = []  # notified only when linked (records cosell may not sync)
        gaps = False
        children: dict[str, list[str]] = {}
        for event in events:
            header = event.header
            if header.made_by(self.options.client_name):
                self.counts.own_writes += 1
                continue
            if header.is_gap:
                gaps = True
            entity = header.entity_name
            if entity in CHILD_PARENTS:
                parent = event.fields.get(CHILD_PARENTS[entity])
                if parent:
                    maybe.append(record_key(OPPORTUNITY, str(parent)))
                else:
                    children.setdefault(entity, []).extend(header.record_ids)
            elif entity == OPPORTUNITY or (entity == LEAD and self.options.lead_sync):
                found = [record_key(entity, record_id) for record_id in header.record_ids]
                (keys if self._takes_part(event) else maybe).extend(found)
        if children:
            maybe.extend(await self._parents(children))
        linked = set(self._store.links_for_keys(maybe)) if maybe else set()
        await self._notify(list(dict.fromkeys([*keys, *(k for k in maybe if k in linked)])))
        if gaps:
            await self.catch_up()
        replay_id = latest or (events[-1].replay_id if events else b"")
        if replay_id:
            self._store.set_cursor(self.replay_cursor, replay_id.hex())
        if events and not gaps:
            self._move_poll_cursors(max(e.header.commit_timestamp for e in events))

    @staticmethod
    def _takes_part(event: ChangeEvent) -> bool:
        """A gap, or an event that ticks the sync box or carries a referral id."""
        return (
            event.header.is_gap
            or bool(event.fields.get(pollers.SYNC_FLAG))
            or bool(event.fields.get(pollers.REFERRAL_IDENTIFIER))
        )

    async def _parents(self, children: dict[str, list[str]]) -> list[Key]:
        keys: list[Key] = []
        for entity, ids in children.items():
            field_name = CHILD_PARENTS[entity]
            quoted = ",".join(f"'{record_id}'" for record_id in ids if record_id.isalnum())
            if not quoted:
                continue
            soql = f"SELECT {field_name} FROM {entity} WHERE Id IN ({quoted})"  # noqa: S608 - ids checked alphanumeric
            async for row in self._salesforce.query_all(soql):
                if row.get(field_name):
                    keys.append(record_key(OPPORTUNITY, str(row[field_name])))
        return keys

    async def _notify(self, keys: Sequence[Key]) -> None:
        for key in keys:
            await self._notifier.notify(key)
            self.counts.notified += 1
            self.counts.keys.append(str(key))

    # -- catch-up ---------------------------------------------------------------------------

    def _sides(self) -> list[tuple[str, str]]:
        sides = [("salesforce", pollers.SALESFORCE_CURSOR)]
        if self.options.lead_sync:
            sides.append(("salesforce_lead", pollers.LEAD_CURSOR))
        return sides

    async def catch_up(self) -> int:
        """Run the Salesforce poller once from its cursor, notify, store the cursor.

        Returns:
            The keys notified.
        """
        self.counts.catch_ups += 1
        found = 0
        for side, cursor_name in self._sides():
            for _ in range(MAX_CATCH_UP_POLLS):
                result = await self._notifier.poll(side)
                await self._notify(result.keys)
                self._store.set_cursor(cursor_name, result.cursor.dump())
                found += len(result.keys)
                if not result.more:
                    break
        return found

    def _move_poll_cursors(self, commit_millis: int) -> None:
        if commit_millis <= 0:
            return
        committed = datetime.fromtimestamp(commit_millis / 1000, tz=UTC)
        for _, name in self._sides():
            cursor = pollers.Cursor.parse(self._store.cursor(name))
            if cursor.at is not None and cursor.at >= committed:
                continue
            horizon = committed - timedelta(seconds=self.options.overlap)
            moved = pollers.Cursor(
                at=committed, seen=frozenset(p for p in cursor.seen if p[1] >= horizon)
            )
            self._store.set_cursor(name, moved.dump())

    # -- health -----------------------------------------------------------------------------

    def _set_state(self, state: str, *, error: str | None = None) -> None:
        now = self._clock.now()
        until = now + self._live_for() if state == "live" else None
        self._store.set_cursor(
            STATE_CURSOR, StreamState(state=state, since=now, live_until=until, error=error).dump()
        )

    def _live_for(self) -> timedelta:
        # Two poll intervals, plus slack for a heartbeat that runs late on a busy machine: a
        # mark that lapses while the stream is fine costs a needless poll, nothing worse.
        return timedelta(seconds=2 * self.options.poll_interval + LIVE_SLACK_SECONDS)

    def _went_live(self) -> None:
        self._live = True
        self.last_error = None
        self._set_state("live")
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat(), name="cosell-cdc-heartbeat")

    def _went_down(self, error: str) -> None:
        self.counts.failures += 1
        self.last_error = error
        self._live = False
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self._set_state("down", error=error)
        log.warning("cdc.down", error=error)

    async def _beat(self) -> None:
        while self._live:
            await self._clock.sleep(self.options.poll_interval)
            if self._live:
                state = stream_state(self._store)
                since = state.since if state is not None else self._clock.now()
                now = self._clock.now()
                self._store.set_cursor(
                    STATE_CURSOR,
                    StreamState(
                        state="live",
                        since=since,
                        live_until=now + self._live_for(),
                    ).dump(),
                )


class Worker(Protocol):
    """The engine as the service's app starts and stops it."""

    async def start(self, *, background: bool = True) -> None:
        """Start the engine."""
        ...

    def inbox_recorded(self) -> None:
        """Webhook events were recorded."""
        ...

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Stop the engine."""
        ...


class WithChangeStream:
    """An engine whose start also starts the change stream (and whose stop stops it first)."""

    def __init__(self, engine: Worker, stream: ChangeStream, pubsub: PubSubClient) -> None:
        self._engine = engine
        self.stream = stream
        self._pubsub = pubsub

    async def start(self, *, background: bool = True) -> None:
        """Start the engine, then the stream (a worker only)."""
        await self._engine.start(background=background)
        if background:
            self.stream.start()

    def inbox_recorded(self) -> None:
        """Pass on to the engine."""
        self._engine.inbox_recorded()

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Stop the stream and close its channel, then the engine."""
        await self.stream.stop()
        await self._pubsub.close()
        await self._engine.stop(grace_seconds=grace_seconds)


def change_stream_for(
    engine: Notifier,
    *,
    store: Store,
    salesforce: SalesforceClient,
    clock: Clock,
    endpoint: str,
    tls: bool,
    options: ChangeStreamOptions,
) -> tuple[ChangeStream, PubSubClient]:
    """The change stream of `[salesforce] changes = "cdc"`, on the REST client's session."""
    pubsub = PubSubClient(endpoint, salesforce.session, tls=tls)
    stream = ChangeStream(
        engine, store=store, pubsub=pubsub, salesforce=salesforce, clock=clock, options=options
    )
    return stream, pubsub
