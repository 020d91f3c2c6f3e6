"""Alerts on changes of sync health, sent through apprise to the channels admins use.

```
AlertWatch.run()   every [alerts] check_seconds: read health (the console's judgement), the
                   deals in Error and both connections' token health, ask the policy what is
                   news, send it; a background task of `cosell serve`, never in a reconcile
AlertPolicy        pure (no clock, no I/O): what a new reading means, deduplicated
Alerter            one apprise channel per URL (generic webhook json://, Slack, Teams,
                   email mailto://), sent in a worker thread; a failing channel is logged once
```

What is sent (`AlertPolicy.observe`):

- **A change of health** (healthy → degraded → failing, and back): one alert per change, at
  once, with the reasons. The same state read again sends nothing. The first reading sends
  only when it is not healthy (a restart does not hide a failure, and a healthy start is not
  news).
- **A side's circuit breaker opening or closing** (a global failure of Partner Center or
  Salesforce: credentials, permission, mapping, outage): one alert per change, with the cause
  and the fix, or the recovery. The first reading sends only for an open circuit. When a
  change of health is announced in the same reading, the circuit's news is folded into it.
- **Deals newly in Error** and **a connection's token close to expiry or unusable** are
  gathered into one digest, sent at most every `[alerts] digest_minutes`. A deal is announced
  once while it stays in Error (again only after it has left Error and come back); a token's
  warning once until it clears. News that a change of health is announced with is folded
  into that alert instead.

Never one alert per failing reconcile: the policy sees readings, not reconciles. Every alert
links to the console. Delivery failures are logged once per channel (with the channel's
scheme, never its URL, which holds a secret) until it delivers again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

import structlog

from cosell.clock import Clock
from cosell.server.console.health import FAILING, HEALTHY, SIDE_NAMES, Health, judge
from cosell.store.console_queries import overview, search_links
from cosell.store.types import SyncStatus

if TYPE_CHECKING:
    from cosell.config import Settings
    from cosell.store import Circuit, Store
    from cosell.tokenhealth import TokenHealth

log = structlog.get_logger("cosell.alerts")

ERROR_DEALS_READ: Final = 200  # the newest deals in Error compared per reading (one page)
NAMES_SHOWN: Final = 10  # deals named in one alert; the rest are counted
INFO: Final = "info"
SUCCESS: Final = "success"
WARNING: Final = "warning"
FAILURE: Final = "failure"


@dataclass(frozen=True)
class Alert:
    """One message, to every channel.

    Attributes:
        kind: `health`, `digest` or `test`.
        title: the subject line.
        body: plain text, the console link included.
        level: `info`, `success`, `warning` or `failure` (apprise's notification types).
    """

    kind: str
    title: str
    body: str
    level: str


@dataclass(frozen=True)
class ErrorDeal:
    """A deal in Error, as an alert names it."""

    id: str
    name: str


@dataclass(frozen=True)
class Reading:
    """What health looked like at one moment."""

    health: Health
    error_deals: Sequence[ErrorDeal] = ()
    tokens: Sequence[TokenHealth] = ()
    circuits: Mapping[str, Circuit] = field(default_factory=dict)


@dataclass
class AlertPolicy:
    """Turns readings into alerts: one per change of health, the rest as a digest.

    Args:
        digest_every: the least time between two digests.
        console_url: the console's address, for links (None: no links).
    """

    digest_every: timedelta
    console_url: str | None = None
    state: str | None = None
    _announced: set[str] = field(default_factory=set)
    _token_news: dict[str, str] = field(default_factory=dict)
    _pending_deals: list[ErrorDeal] = field(default_factory=list)
    _pending_tokens: list[str] = field(default_factory=list)
    _last_digest: datetime | None = None
    _open: dict[str, Circuit] | None = None
    _circuit_news: list[str] = field(default_factory=list)

    def observe(self, reading: Reading, *, now: datetime) -> list[Alert]:
        """The alerts this reading calls for (often none)."""
        self._note_deals(reading.error_deals)
        self._note_tokens(reading.tokens)
        self._note_circuits(reading.circuits)
        alerts: list[Alert] = []
        previous, self.state = self.state, reading.health.state
        if previous != self.state and not (previous is None and self.state == HEALTHY):
            alerts.append(self._health_alert(previous, reading.health))
            self._pending_deals, self._pending_tokens = [], []
        elif self._circuit_news:
            alerts.append(self._circuit_alert())
        self._circuit_news = []
        due = self._last_digest is None or now - self._last_digest >= self.digest_every
        if due and (self._pending_deals or self._pending_tokens):
            alerts.append(self._digest())
            self._pending_deals, self._pending_tokens = [], []
            self._last_digest = now
        return alerts

    def _note_deals(self, deals: Sequence[ErrorDeal]) -> None:
        current = {deal.id for deal in deals}
        self._pending_deals = [d for d in self._pending_deals if d.id in current]
        for deal in deals:
            if deal.id not in self._announced:
                self._pending_deals.append(deal)
        # A deal that left Error is forgotten: coming back is news again.
        self._announced = current

    def _note_circuits(self, circuits: Mapping[str, Circuit]) -> None:
        now_open = {side: c for side, c in circuits.items() if c.is_open}
        before = self._open
        self._open = now_open
        for side, circuit in sorted(now_open.items()):
            if before is None or side not in before:
                name = SIDE_NAMES.get(side, side)
                self._circuit_news.append(
                    f"{name}'s circuit opened: its sync is paused. Cause: {circuit.cause}. "
                    f"Fix: {circuit.fix}"
                )
        for side in sorted(before or {}):
            if side not in now_open:
                name = SIDE_NAMES.get(side, side)
                self._circuit_news.append(
                    f"{name}'s circuit closed: its sync has resumed, and what waited is synced."
                )

    def _circuit_alert(self) -> Alert:
        opened = [news for news in self._circuit_news if "opened" in news]
        if opened:
            title, level = "cosell: a side's sync is paused by its circuit breaker", FAILURE
        else:
            title, level = "cosell: a side's sync resumed (circuit closed)", SUCCESS
        body = "\n".join(f"- {news}" for news in self._circuit_news)
        return Alert("circuit", title, body + self._link(), level)

    def _note_tokens(self, tokens: Sequence[TokenHealth]) -> None:
        for token in tokens:
            news = token.problem or token.warning
            if news is None:
                self._token_news.pop(token.side, None)
            elif self._token_news.get(token.side) != news:
                self._token_news[token.side] = news
                self._pending_tokens.append(f"{token.label}: {news}")

    def _link(self, path: str = "/") -> str:
        return f"\n\nConsole: {self.console_url}{path}" if self.console_url else ""

    def _news(self) -> str:
        lines: list[str] = [f"- {news}" for news in self._circuit_news]
        if self._pending_deals:
            lines.append(f"{len(self._pending_deals)} deal(s) newly in Error:")
            for deal in self._pending_deals[:NAMES_SHOWN]:
                where = f" — {self.console_url}/deals/{deal.id}" if self.console_url else ""
                lines.append(f"- {deal.name}{where}")
            if len(self._pending_deals) > NAMES_SHOWN:
                lines.append(f"- and {len(self._pending_deals) - NAMES_SHOWN} more")
        if self._pending_tokens:
            lines.append("Connections:")
            lines.extend(f"- {text}" for text in self._pending_tokens)
        return "\n".join(lines)

    def _health_alert(self, previous: str | None, health: Health) -> Alert:
        if health.state == HEALTHY:
            title = f"cosell sync recovered: healthy (was {previous})"
            body, level = "Every link is in sync or on its way.", SUCCESS
        else:
            was = f" (was {previous})" if previous else ""
            title = f"cosell sync is {health.state}{was}"
            body = "Why:\n" + "\n".join(f"- {reason}" for reason in health.reasons)
            level = FAILURE if health.state == FAILING else WARNING
        news = self._news()
        if news:
            body += "\n\n" + news
        return Alert("health", title, body + self._link(), level)

    def _digest(self) -> Alert:
        parts = []
        if self._pending_deals:
            parts.append(f"{len(self._pending_deals)} deal(s) newly in Error")
        if self._pending_tokens:
            parts.append("a connection needs attention")
        title = "cosell: " + " and ".join(parts)
        path = "/deals?status=Error" if self._pending_deals else "/"
        return Alert("digest", title, self._news() + self._link(path), WARNING)


class Alerter:
    """Sends alerts to apprise channels, one per URL, each in a worker thread.

    Args:
        urls: apprise URLs; a URL apprise does not understand is refused at construction.

    Raises:
        ValueError: a URL is not one apprise knows (the message names its scheme only).
    """

    def __init__(self, urls: Sequence[str]) -> None:
        import apprise

        self._channels: list[tuple[str, apprise.Apprise]] = []
        self._failing: set[int] = set()
        for url in urls:
            channel = apprise.Apprise()
            scheme = url.split("://", 1)[0]
            if not channel.add(url):
                raise ValueError(
                    f"apprise does not understand the alert URL `{scheme}://…`; check it "
                    "against apprise's list of services"
                )
            self._channels.append((scheme, channel))

    @property
    def channels(self) -> int:
        """How many channels alerts go to."""
        return len(self._channels)

    async def send(self, alert: Alert) -> int:
        """Send `alert` to every channel; returns how many delivered (failures are logged)."""
        # One worker thread, channels in turn: each has its own timeouts (apprise's), and
        # apprise's plugins are not all safe to run side by side.
        results = await asyncio.to_thread(
            lambda: [self._deliver(channel, alert) for _, channel in self._channels]
        )
        delivered = 0
        for index, ok in enumerate(results):
            scheme = self._channels[index][0]
            if ok:
                delivered += 1
                if index in self._failing:
                    self._failing.discard(index)
                    log.info("alerts.channel_recovered", channel=scheme, number=index + 1)
            elif index not in self._failing:
                self._failing.add(index)  # once, until it delivers again
                log.warning(
                    "alerts.delivery_failed",
                    channel=scheme,
                    number=index + 1,
                    alert=alert.title,
                    hint="check the URL and that the service is reachable; "
                    "`cosell alerts test` tries every channel",
                )
        return delivered

    @staticmethod
    def _deliver(channel: object, alert: Alert) -> bool:
        import apprise

        assert isinstance(channel, apprise.Apprise)
        try:
            result = channel.notify(
                title=alert.title, body=alert.body, notify_type=apprise.NotifyType(alert.level)
            )
        except Exception:  # a plugin's bug must not end the watch
            log.exception("alerts.channel_crashed")
            return False
        return bool(result)


def console_url(settings: Settings) -> str | None:
    """Where alerts link to: `[alerts] console_url`, else `[server] public_url`'s origin."""
    if settings.alerts.console_url:
        return settings.alerts.console_url
    public = settings.server.public_url
    if not public:
        return None
    scheme, rest = public.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}/console"


def read_health(
    store: Store, *, now: datetime, tokens: Callable[[], Sequence[TokenHealth]] | None
) -> Reading:
    """One reading: the console's health judgement, the newest deals in Error, the tokens."""
    figures = overview(store, now=now)
    errors = search_links(store, status=SyncStatus.ERROR, limit=ERROR_DEALS_READ)
    deals = [
        ErrorDeal(row.id, row.name or row.referral_id or row.record_id or row.id)
        for row in errors.rows
    ]
    return Reading(
        judge(figures, now=now), deals, tokens() if tokens else (), circuits=figures.circuits
    )


class AlertWatch:
    """The background task of `cosell serve` that reads health and sends alerts.

    Args:
        store: where health is read from.
        alerter: the channels.
        policy: what is news.
        clock: the time readings are taken at and the wait between them.
        every_seconds: the wait between readings.
        tokens: both connections' token health (None: not read).
    """

    def __init__(
        self,
        store: Store,
        alerter: Alerter,
        policy: AlertPolicy,
        *,
        clock: Clock,
        every_seconds: float,
        tokens: Callable[[], Sequence[TokenHealth]] | None = None,
    ) -> None:
        self.store = store
        self.alerter = alerter
        self.policy = policy
        self.clock = clock
        self.every = every_seconds
        self.tokens = tokens
        self._unreadable = False

    async def check(self) -> list[Alert]:
        """Take one reading and send what it calls for; returns the alerts sent."""
        now = self.clock.now()
        try:
            reading = await asyncio.to_thread(read_health, self.store, now=now, tokens=self.tokens)
        except Exception as exc:  # noqa: BLE001 - the watch outlives a store that is down
            if not self._unreadable:
                self._unreadable = True
                log.warning("alerts.health_unreadable", error=f"{type(exc).__name__}: {exc}")
            return []
        self._unreadable = False
        alerts = self.policy.observe(reading, now=now)
        for alert in alerts:
            log.info("alerts.sending", kind=alert.kind, title=alert.title)
            await self.alerter.send(alert)
        return alerts

    async def run(self) -> None:
        """Check, then wait `every_seconds`, until cancelled."""
        while True:
            await self.check()
            await self.clock.sleep(self.every)


def build_watch(settings: Settings, *, store: Store, clock: Clock) -> AlertWatch | None:
    """The watch `[alerts]` asks for, or None when it names no URL.

    Raises:
        ValueError: a URL apprise does not understand.
    """
    if not settings.alerts.urls:
        return None
    from cosell.tokenhealth import token_health

    alerter = Alerter([url.get_secret_value() for url in settings.alerts.urls])
    policy = AlertPolicy(
        digest_every=timedelta(minutes=settings.alerts.digest_minutes),
        console_url=console_url(settings),
    )
    return AlertWatch(
        store,
        alerter,
        policy,
        clock=clock,
        every_seconds=float(settings.alerts.check_seconds),
        tokens=lambda: token_health(settings, clock=clock),
    )


__all__ = [
    "Alert",
    "AlertPolicy",
    "AlertWatch",
    "Alerter",
    "ErrorDeal",
    "Reading",
    "build_watch",
    "console_url",
    "read_health",
]
