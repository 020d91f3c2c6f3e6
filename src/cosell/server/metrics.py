"""Prometheus metrics of one service instance, and the reconciler that feeds them.

Each `Metrics` owns its own `CollectorRegistry` (two apps in one process, as in tests, never
share counters). Counters are incremented where the outcome is known:

- `cosell_notifications_received_total{source,event}` / `..._rejected_total{reason}`: by the
  webhook endpoint (a rejected callback is counted once, by the reason it was refused);
- `cosell_reconciles_total{result}` and `cosell_sync_lag_seconds`: by `ObservedReconciler`,
  which wraps the reconcile functions the engine calls (`cosell.sync.run.reconcile`), so every
  key reconciled in this process, single or batch, is counted by its outcome. The lag is the
  time from a change's timestamp (`ResourceChangeUtcDate` of the webhook that announced it)
  to the end of the reconcile that carried it; changes found by the pollers have no reliable
  timestamp of their own and are not measured;
- `cosell_automation_adopted_total`: by `ObservedReconciler` too, the fields the org's
  after-save automation rewrote after cosell's write and cosell adopted without writing back
  (a customised org's Flows; a steady rise is normal, a burst says a Flow fights the mapping);
- `cosell_api_calls_total{api}` / `cosell_api_errors_total{api,kind}`: by whoever sends the
  HTTP requests (`cosell serve` counts at the clients' transports).

Gauges are read from the store when Prometheus scrapes (`StoreCollector`): links by status,
each counted once as `cosell status` counts them (`Store.deal_counts`), each side's circuit
(`cosell_circuit_open`), a pause of all sync (`cosell_sync_paused`), conflicts recorded, inbox
events pending, `cosell_salesforce_change_stream_up` (with `[salesforce] changes = "cdc"`: 1
while the stream is live); `cosell_queue_depth` (reconciles waiting to
start) is set by the `/metrics` handler just before rendering, from an async source.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cosell.clock import Clock
from cosell.store import tables as t
from cosell.store.types import Key
from cosell.sync.engine.streamstate import stream_state
from cosell.sync.plan import outcome as results

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from cosell.store import Store
    from cosell.sync.engine import Reconciler
    from cosell.sync.io.context import SyncContext
    from cosell.sync.plan.outcome import Outcome
    from cosell.tokenhealth import TokenHealth

log = structlog.get_logger("cosell.reconcile")

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
# From a quarter second (a webhook carried at once) to ten minutes (a poll or a backoff).
LAG_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_CARRIED: Final = frozenset({results.SYNCED, results.CREATED, results.CONFLICT, results.UNCHANGED})
_PENDING_CHANGES: Final = 10_000  # change timestamps kept for lag; a flood must not grow memory


class Metrics:
    """The service's metrics, in a registry of their own.

    Args:
        store: read at scrape time for the gauges; None leaves them out.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        token_health: Callable[[], Sequence[TokenHealth]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        if token_health is not None:
            registry.register(TokenHealthCollector(token_health))
        self.notifications_received = Counter(
            "cosell_notifications_received",
            "Webhook callbacks accepted (signature verified), by event name.",
            ["source", "event"],
            registry=registry,
        )
        self.notifications_rejected = Counter(
            "cosell_notifications_rejected",
            "Webhook callbacks refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.reconciles = Counter(
            "cosell_reconciles", "Keys reconciled, by result.", ["result"], registry=registry
        )
        self.automation_adopted = Counter(
            "cosell_automation_adopted",
            "Fields the org's after-save automation rewrote after cosell's write, adopted.",
            registry=registry,
        )
        self.api_calls = Counter(
            "cosell_api_calls", "HTTP requests sent, by API.", ["api"], registry=registry
        )
        self.api_errors = Counter(
            "cosell_api_errors",
            "HTTP requests that failed (status >= 400, or no answer), by API and kind.",
            ["api", "kind"],
            registry=registry,
        )
        self.sync_lag = Histogram(
            "cosell_sync_lag_seconds",
            "Seconds from a change's timestamp to the end of the reconcile that carried it.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "cosell_queue_depth", "Reconciles enqueued and not yet started.", registry=registry
        )
        for result in results.RESULTS:
            self.reconciles.labels(result=result)
        for api in ("partner_center", "salesforce"):
            self.api_calls.labels(api=api)
        if store is not None:
            registry.register(StoreCollector(store))

    def api_call(self, api: str, *, status: int | None) -> None:
        """Count one HTTP request to `api`; `status` None means no answer (a transport error)."""
        self.api_calls.labels(api=api).inc()
        if status is None:
            self.api_errors.labels(api=api, kind="transport").inc()
        elif status == 429:
            self.api_errors.labels(api=api, kind="throttled").inc()
        elif status >= 500:
            self.api_errors.labels(api=api, kind="server").inc()
        elif status >= 400:
            self.api_errors.labels(api=api, kind="client").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class TokenHealthCollector(Collector):
    """Gauges of each connection's sign-in, read from the token files at scrape time."""

    def __init__(self, read: Callable[[], Sequence[TokenHealth]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        """Days left, MFA, last rotation and use, and whether the sign-in can work, per side."""
        families = {
            "ok": GaugeMetricFamily(
                "cosell_token_ok",
                "1 when the connection's sign-in can work (no MFA problem, not expired).",
                labels=["side"],
            ),
            "days": GaugeMetricFamily(
                "cosell_token_days_left",
                "Days before the refresh token expires of inactivity (sides with a window).",
                labels=["side"],
            ),
            "mfa": GaugeMetricFamily(
                "cosell_token_mfa",
                "1 when the sign-in used MFA, 0 when it did not (sides where it is known).",
                labels=["side"],
            ),
            "rotated": GaugeMetricFamily(
                "cosell_token_rotated_timestamp_seconds",
                "When the stored refresh token last changed (Unix time).",
                labels=["side"],
            ),
            "used": GaugeMetricFamily(
                "cosell_token_used_timestamp_seconds",
                "When the stored refresh token was last redeemed (Unix time).",
                labels=["side"],
            ),
        }
        for health in self._read():
            side = [health.side]
            families["ok"].add_metric(side, 0.0 if health.problem else 1.0)
            if health.days_left is not None:
                families["days"].add_metric(side, health.days_left)
            if health.mfa is not None:
                families["mfa"].add_metric(side, 1.0 if health.mfa else 0.0)
            if health.rotated_at is not None:
                families["rotated"].add_metric(side, health.rotated_at.timestamp())
            if health.used_at is not None:
                families["used"].add_metric(side, health.used_at.timestamp())
        yield from families.values()


class StoreCollector(Collector):
    """Gauges read from the store at scrape time (`Store.summary`, and a count of conflicts)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        """Deals by status (each once), each side's circuit, pauses, conflicts, inbox events."""
        links = GaugeMetricFamily(
            "cosell_links",
            "Links between referrals and records, each counted once: Synced, Pending (a change "
            "waiting, also on a paused side), Error, Paused (as `cosell status`).",
            labels=["status"],
        )
        summary = self._store.summary()
        counts = self._store.deal_counts().as_dict()
        pending = summary.inbox_pending
        circuits = self._store.circuits()
        pauses = self._store.pauses()
        circuit = GaugeMetricFamily(
            "cosell_circuit_open",
            "1 when a side's sync is paused by its circuit breaker (a global failure).",
            labels=["side"],
        )
        for side in ("partner_center", "salesforce"):
            state = circuits.get(side)
            circuit.add_metric([side], 1 if state is not None and state.is_open else 0)
        yield circuit
        yield GaugeMetricFamily(
            "cosell_sync_paused",
            "1 when all sync is paused by hand (cosell pause).",
            value=1 if any(p.target is None for p in pauses) else 0,
        )
        with self._store.engine.connect() as connection:
            conflicts = connection.execute(
                sa.select(sa.func.count())
                .select_from(t.conflicts)
                .where(t.conflicts.c.tenant == self._store.tenant)
            ).scalar_one()
        for status, count in sorted(counts.items()):
            links.add_metric([status], count)
        yield links
        yield GaugeMetricFamily(
            "cosell_conflicts", "Conflicts recorded (both sides changed a field).", value=conflicts
        )
        yield GaugeMetricFamily(
            "cosell_inbox_pending", "Webhook events recorded and not yet enqueued.", value=pending
        )
        stream = stream_state(self._store)
        if stream is not None:  # `[salesforce] changes = "cdc"` ran here
            yield GaugeMetricFamily(
                "cosell_salesforce_change_stream_up",
                "1 while Salesforce changes arrive over CDC, 0 while the poller covers for it.",
                value=1 if stream.state == "live" else 0,
            )


class ObservedReconciler:
    """The engine's reconciler, counted and logged: one log event per reconcile outcome.

    Args:
        inner: the reconcile functions (`cosell.sync.run.reconcile`).
        metrics: where outcomes and lag are counted.
        clock: what the lag is measured on.
    """

    def __init__(self, inner: Reconciler, metrics: Metrics, clock: Clock) -> None:
        self._inner = inner
        self._metrics = metrics
        self._clock = clock
        self._changes: dict[str, datetime] = {}

    def change_seen(self, key: str, changed_at: datetime | None) -> None:
        """Remember when a change of `key` happened (from its webhook), for the lag."""
        if changed_at is None:
            return
        if key not in self._changes and len(self._changes) >= _PENDING_CHANGES:
            self._changes.pop(next(iter(self._changes)))
        earliest = self._changes.get(key)
        if earliest is None or changed_at < earliest:
            self._changes[key] = changed_at

    async def reconcile_key(self, ctx: SyncContext, key: Key, /) -> Outcome:
        """Reconcile one key, then count and log its outcome."""
        started = time.perf_counter()
        outcome = await self._inner.reconcile_key(ctx, key)
        self._observe([outcome], time.perf_counter() - started)
        return outcome

    async def reconcile_batch(self, ctx: SyncContext, keys: Sequence[Key], /) -> list[Outcome]:
        """Reconcile a batch, then count and log each outcome."""
        started = time.perf_counter()
        outcomes = await self._inner.reconcile_batch(ctx, keys)
        self._observe(outcomes, time.perf_counter() - started)
        return outcomes

    def _observe(self, outcomes: Sequence[Outcome], seconds: float) -> None:
        now = self._clock.now()
        for item in outcomes:
            self._metrics.reconciles.labels(result=item.result).inc()
            if item.adopted:
                self._metrics.automation_adopted.inc(item.adopted)
            lag: float | None = None
            changed_at = self._changes.pop(item.key, None) if item.result in _CARRIED else None
            if changed_at is not None:
                lag = max(0.0, (now - changed_at).total_seconds())
                self._metrics.sync_lag.observe(lag)
            level = log.warning if item.result == results.ERROR else log.info
            level(
                "reconcile",
                key=item.key,
                link_id=item.link_id,
                result=item.result,
                message=item.message,
                api_calls=item.api_calls,
                to_salesforce=sorted(item.to_salesforce),
                to_partner_center=sorted(item.to_partner_center),
                lag_seconds=None if lag is None else round(lag, 3),
                duration_ms=round(seconds * 1000, 1),
            )
