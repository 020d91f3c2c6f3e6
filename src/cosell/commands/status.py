"""`cosell status`: how sync is doing, from the store (and one Salesforce call for API usage).

What it shows, and where each part comes from:

- **Deals**, each counted exactly once (`Store.deal_counts`): Paused (the deal is paused),
  else Error (parked), else Pending (its status is Pending, or a change of it waits for a side
  whose sync is paused or for all sync to resume), else Synced. The four add up to the links;
  `/metrics` (`cosell_links`) shows the same counts. The links never synced are shown apart
  (they are also counted in one of the four).
- **Sync health**: each side's circuit (closed: syncing; open: paused, with the cause, the fix
  and the next probe), the pauses in force (who, since when) and the oldest unsynced change.
- **Errors**: the links parked in Error, the most recently changed first, at most
  `ERRORS_SHOWN`, each with its keys, referral id and opportunity id (so a seller can find the
  deal) and the message the seller sees in `Partner_Center_Sync_Error__c`.
- **Lag**: how long ago each poller last stored its cursor (every scheduled poll stores it, so
  an old time means the pollers are not running) and the newest change it has seen; the oldest
  Pending link; the last reconcile that brought a link into agreement; the newest audit entry.
- **Last sweep**: the cursor named `LAST_SWEEP_CURSOR`, which the engine stores at the end of
  every periodic sweep (an ISO time in its value); before the first sweep status says so rather
  than guessing from other times.
- **Webhook inbox**: events received and not yet handled, and the oldest one's age.
- **Sign-in** per connection (`cosell.tokenhealth`, from the settings and token files): the
  grant, MFA, when the refresh token was last rotated and used, days before it expires of
  inactivity, and what to run when it cannot work or will stop soon.
- **API usage**: one `GET /limits/` call to Salesforce (`DailyApiRequests`: used of the org's
  24-hour allocation), made without retries and with a short timeout. When Salesforce cannot be
  reached (or the credentials are missing), everything else still prints and the usage line
  says why it could not be read. cosell does not count its Partner Center calls durably, so
  there is no Partner Center line.

The store is opened without migrating it (status only reads); an unmigrated store is an error
that says to run `cosell db upgrade`. `--json` prints the same facts as one JSON object.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cosell.commands import ConfigOption, quiet_client_logs

if TYPE_CHECKING:  # imported when a command runs, so that the CLI starts quickly
    from cosell.clock import Clock
    from cosell.config import Settings
    from cosell.salesforce.client import SalesforceClient
    from cosell.store import Circuit, DealCounts, Link, Pause, Store
    from cosell.store.store import StoreSummary
    from cosell.tokenhealth import TokenHealth


ERRORS_SHOWN = 20  # a screenful; the dashboard and `cosell audit` show the rest
USAGE_TIMEOUT_SECONDS = 10.0  # status must answer promptly when Salesforce is down


def _pollers() -> dict[str, str]:
    """The pollers' cursor names and what `status` calls them."""
    from cosell.sync.io import pollers

    return {
        pollers.PARTNER_CENTER_CURSOR: "Partner Center poller",
        pollers.SALESFORCE_CURSOR: "Salesforce poller",
        pollers.LEAD_CURSOR: "Salesforce Lead poller",
    }


@dataclass(frozen=True)
class ApiUsageReading:
    """One API's usage against its allocation, or why it could not be read.

    Attributes:
        api: which API, e.g. `salesforce`.
        used: requests made in the rolling 24 hours (the whole org's), when read.
        limit: the 24-hour allocation, when read.
        budget: cosell's own cap, when one is configured.
        error: why it could not be read, or None.
    """

    api: str
    used: int | None = None
    limit: int | None = None
    budget: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """Everything `cosell status` prints.

    Attributes:
        checked_at: when the report was made (ages are measured from it).
        summary: the store's counts and times.
        errors: the links in Error, most recently changed first (at most `ERRORS_SHOWN`).
        usage: the API usage readings.
        connections: each connection's sign-in and token health.
        deals: every link counted once (Synced, Pending, Error, Paused).
        circuits: each side's circuit as the engine last stored it (closed when absent).
        pauses: the pauses in force.
        next_retry_at: when the earliest scheduled retry of a parked link is due (None: none).
    """

    checked_at: datetime
    summary: StoreSummary
    errors: tuple[Link, ...]
    usage: tuple[ApiUsageReading, ...]
    deals: DealCounts
    circuits: dict[str, Circuit]
    pauses: tuple[Pause, ...]
    connections: tuple[TokenHealth, ...] = ()
    next_retry_at: datetime | None = None


def collect(store: Store, *, clock: Clock, usage: tuple[ApiUsageReading, ...] = ()) -> StatusReport:
    """Read the store's part of the status (no network).

    Args:
        store: the opened store.
        clock: what "now" is for the ages.
        usage: API usage readings made beforehand (`salesforce_usage`).

    Returns:
        The report.

    Raises:
        StoreError: the store cannot be read.
    """
    return StatusReport(
        checked_at=clock.now(),
        summary=store.summary(),
        errors=tuple(store.failed_links(limit=ERRORS_SHOWN)),
        usage=usage,
        deals=store.deal_counts(),
        circuits=store.circuits(),
        pauses=tuple(store.pauses()),
        next_retry_at=store.next_retry_at(),
    )


_SIDES = {"partner_center": "Partner Center", "salesforce": "Salesforce"}


def _health(report: StatusReport) -> dict[str, Any]:
    now = report.checked_at
    sides = {}
    for side in _SIDES:
        circuit = report.circuits.get(side)
        is_open = circuit is not None and circuit.is_open
        sides[side] = {
            "circuit": "open" if is_open else "closed",
            "cause": circuit.cause if is_open and circuit else None,
            "fix": circuit.fix if is_open and circuit else None,
            "since": _iso(circuit.since) if circuit else None,
            "next_probe_at": _iso(circuit.next_probe_at) if is_open and circuit else None,
        }
    pauses = [
        {
            "target": "all" if p.target is None else p.target,
            "by": p.by,
            "reason": p.reason,
            "since": _iso(p.since),
        }
        for p in report.pauses
    ]
    return {
        "sides": sides,
        "paused": any(p.target is None for p in report.pauses),
        "pauses": pauses,
        "oldest_unsynced_at": _iso(report.deals.oldest_unsynced_at),
        "oldest_unsynced_seconds": _ago(now, report.deals.oldest_unsynced_at),
    }


async def read_salesforce_usage(client: SalesforceClient) -> ApiUsageReading:
    """Salesforce's daily API usage from one `GET /limits/` call; an error reading if it fails.

    Args:
        client: the Salesforce client (its budget, if any, is reported with the usage).

    Returns:
        The reading; `error` says why when the call failed.
    """
    from cosell.salesforce.errors import SalesforceError

    try:
        await client.limits()
    except SalesforceError as error:
        return ApiUsageReading("salesforce", error=f"could not be read: {error}")
    usage = client.usage
    if usage is None:
        return ApiUsageReading(
            "salesforce", error="could not be read: the limits carried no DailyApiRequests"
        )
    return ApiUsageReading("salesforce", used=usage.used, limit=usage.limit, budget=usage.budget)


async def salesforce_usage(settings: Settings, *, clock: Clock) -> ApiUsageReading:
    """Read Salesforce's API usage with the configured credentials: one call, no retries.

    Args:
        settings: cosell's settings (`[salesforce]`).
        clock: the clock of the client and its token.

    Returns:
        The reading; `error` says why when the settings or Salesforce did not allow it.
    """
    from cosell.config import ConfigError
    from cosell.salesforce.client import RetryPolicy, SalesforceClient

    try:
        flow = settings.salesforce.auth_flow(clock=clock)
    except ConfigError as error:
        return ApiUsageReading("salesforce", error=f"could not be read: {error}")
    async with httpx.AsyncClient(timeout=USAGE_TIMEOUT_SECONDS) as http:
        client = SalesforceClient(
            http,
            flow,
            api_version=settings.salesforce.api_version,
            clock=clock,
            retry=RetryPolicy(max_attempts=1),
        )
        return await read_salesforce_usage(client)


def _ago(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 3)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _newest_seen(value: str) -> datetime | None:
    from cosell.sync.io import pollers

    try:
        return pollers.Cursor.parse(value).at
    except ValueError:
        return None


def _last_sweep(summary: StoreSummary) -> datetime | None:
    from cosell.sync.io import pollers

    for cursor in summary.cursors:
        if cursor.name == pollers.LAST_SWEEP_CURSOR:
            try:
                return datetime.fromisoformat(cursor.value)
            except ValueError:
                return cursor.updated_at
    return None


def _change_stream(summary: StoreSummary) -> dict[str, Any]:
    """How Salesforce changes arrive: the CDC stream's stored state, or polling only."""
    from cosell.sync.engine.streamstate import STATE_CURSOR, StreamState

    found = next((c for c in summary.cursors if c.name == STATE_CURSOR), None)
    state = StreamState.load(found.value) if found is not None else None
    if state is None:
        return {"source": "poll"}
    return {
        "source": "cdc" if state.state == "live" else "poll (CDC stream down)",
        "stream": state.state,
        "since": state.since.isoformat(),
        "error": state.error,
    }


def _error_entry(link: Link, now: datetime) -> dict[str, Any]:
    return {
        "link_id": link.id,
        "keys": list(link.keys),
        "referral_id": link.referral_id,
        "sobject": link.sobject,
        "record_id": link.record_id,
        "error": link.last_error,
        "since": _iso(link.updated_at),
        "seconds_ago": _ago(now, link.updated_at),
        "retry_at": _iso(link.retry_at),
        "retries": link.retries,
    }


def report_json(report: StatusReport) -> dict[str, Any]:
    """The report as one JSON-ready object (the `--json` output)."""
    now = report.checked_at
    summary = report.summary
    counts = report.deals.as_dict()
    sweep = _last_sweep(summary)
    return {
        "checked_at": now.isoformat(),
        "links": {**counts, "total": report.deals.total},
        "never_synced": summary.never_synced,
        "health": _health(report),
        "next_retry_at": _iso(report.next_retry_at),
        "errors": [_error_entry(link, now) for link in report.errors],
        "errors_truncated": summary.links_by_status.get("Error", 0) > len(report.errors),
        "lag": {
            "pollers": [
                {
                    "cursor": cursor.name,
                    "stored_at": cursor.updated_at.isoformat(),
                    "seconds_since_stored": _ago(now, cursor.updated_at),
                    "newest_change_seen": _iso(_newest_seen(cursor.value)),
                }
                for cursor in summary.cursors
                if cursor.name in _pollers()
            ],
            "oldest_pending_at": _iso(summary.oldest_pending_at),
            "oldest_pending_seconds": _ago(now, summary.oldest_pending_at),
            "last_synced_at": _iso(summary.last_synced_at),
            "last_synced_seconds": _ago(now, summary.last_synced_at),
            "newest_audit_at": _iso(summary.newest_audit_at),
        },
        "last_sweep": {"at": _iso(sweep), "recorded": sweep is not None},
        "salesforce_changes": _change_stream(summary),
        "inbox": {
            "pending": summary.inbox_pending,
            "oldest_received_at": _iso(summary.oldest_event_at),
            "oldest_seconds": _ago(now, summary.oldest_event_at),
        },
        "api_usage": {
            reading.api: {
                "used": reading.used,
                "limit": reading.limit,
                "budget": reading.budget,
                "error": reading.error,
            }
            for reading in report.usage
        },
        "connections": {health.side: health.as_json() for health in report.connections},
    }


def _age(now: datetime, then: datetime | None, *, missing: str = "never") -> str:
    if then is None:
        return f"[dim]{missing}[/dim]"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:  # up to two minutes, seconds read best
        text = f"{seconds} s"
    elif seconds < 7200:  # up to two hours, minutes
        text = f"{seconds // 60} min"
    elif seconds < 172_800:  # up to two days, hours
        text = f"{seconds // 3600} h"
    else:
        text = f"{seconds // 86_400} d"
    return f"{text} ago ({then.strftime('%Y-%m-%d %H:%M:%S')} UTC)"


def render(report: StatusReport, console: Console) -> None:
    """Print the report as tables."""
    now = report.checked_at
    summary = report.summary
    deals = report.deals
    links = Table(title="Deals (each counted once)")
    for column in ("Synced", "Pending", "Error", "Paused", "Total"):
        links.add_column(column, justify="right")
    error_count = summary.links_by_status.get("Error", 0)
    links.add_row(
        str(deals.synced),
        str(deals.pending),
        f"[red]{deals.error}[/red]" if deals.error else "0",
        str(deals.paused),
        str(deals.total),
    )
    console.print(links)
    console.print(
        f"Never synced (counted above too): {summary.never_synced}. Oldest unsynced change: "
        + _age(now, deals.oldest_unsynced_at, missing="none")
    )
    for side, name in _SIDES.items():
        circuit = report.circuits.get(side)
        if circuit is not None and circuit.is_open:
            console.print(
                f"[red]{name}: sync paused[/red] (circuit open {_age(now, circuit.since)}): "
                f"{circuit.cause}. Fix: {circuit.fix or 'none needed'}; next probe "
                + (
                    circuit.next_probe_at.strftime("at %H:%M:%S UTC")
                    if circuit.next_probe_at is not None and circuit.next_probe_at > now
                    else "at the next poll"
                ),
                highlight=False,
            )
        else:
            console.print(f"{name}: syncing (circuit closed)", highlight=False)
    for pause in report.pauses:
        what = "All sync" if pause.target is None else f"Deal {pause.target}"
        console.print(
            f"[yellow]{what} paused by {pause.by}[/yellow] {_age(now, pause.since)}"
            + (f": {pause.reason}" if pause.reason else "")
            + " (cosell resume)",
            highlight=False,
        )
    if error_count:
        from cosell.sync.plan.retry import in_words

        retry = (
            f"next retry {in_words(report.next_retry_at - now)}"
            if report.next_retry_at is not None
            else "each waits for a change"
        )
        console.print(f"Error: {error_count} ({retry})", highlight=False)

    if report.errors:
        shown = len(report.errors)
        title = "Errors, most recent first" + (
            f" ({shown} of {error_count}):" if error_count > shown else ":"
        )
        console.print(f"[bold]{title}[/bold]")
        from cosell.sync.plan.retry import describe_retry

        for link in report.errors:
            # One line per deal, never folded, so the ids can be copied whole.
            console.print(
                f"  {link.updated_at.strftime('%Y-%m-%d %H:%M:%S')}  "
                f"referral {link.referral_id or '—'}  {link.sobject} {link.record_id or '—'}",
                soft_wrap=True,
                highlight=False,
            )
            console.print(f"    {link.last_error or ''}", markup=False, highlight=False)
            console.print(
                f"    retry: {describe_retry(link.retry_at, now=now)}",
                markup=False,
                highlight=False,
            )
    else:
        console.print("No links in Error.")

    lag = Table(title="Lag")
    lag.add_column("What")
    lag.add_column("When")
    cursors = {cursor.name: cursor for cursor in summary.cursors}
    for name, label in _pollers().items():
        cursor = cursors.get(name)
        if cursor is None:
            lag.add_row(f"{label}: last poll", "[dim]never[/dim]")
            continue
        lag.add_row(f"{label}: last poll", _age(now, cursor.updated_at))
        lag.add_row(
            f"{label}: newest change seen",
            _age(now, _newest_seen(cursor.value), missing="none yet"),
        )
    lag.add_row("Oldest Pending link", _age(now, summary.oldest_pending_at, missing="none Pending"))
    lag.add_row("Last link brought in sync", _age(now, summary.last_synced_at))
    lag.add_row("Newest audit entry", _age(now, summary.newest_audit_at))
    stream = _change_stream(summary)
    if "stream" in stream:
        since = datetime.fromisoformat(stream["since"])
        text = f"{stream['source']} since {_age(now, since)}"
        lag.add_row(
            "Salesforce changes", text + (f": {stream['error']}" if stream["error"] else "")
        )
    sweep = _last_sweep(summary)
    lag.add_row(
        "Last sweep",
        _age(now, sweep) if sweep is not None else "[dim]not recorded in the store[/dim]",
    )
    console.print(lag)

    inbox = f"Webhook inbox: {summary.inbox_pending} pending"
    if summary.oldest_event_at is not None:
        inbox += f", the oldest received {_age(now, summary.oldest_event_at)}"
    console.print(inbox)

    for health in report.connections:
        line = f"{health.label} sign-in: {health.summary()}"
        if health.problem:
            console.print(f"[red]{line}[/red]: {health.problem}", highlight=False)
        elif health.warning:
            console.print(f"{line}: [yellow]{health.warning}[/yellow]", highlight=False)
        else:
            console.print(line, highlight=False)

    for reading in report.usage:
        label = "Salesforce API usage" if reading.api == "salesforce" else f"{reading.api} usage"
        if reading.error is not None:
            console.print(f"{label}: [yellow]{reading.error}[/yellow]", markup=True)
            continue
        line = f"{label}: {reading.used} of {reading.limit} requests in the last 24 h"
        if reading.limit:
            line += f" ({100 * (reading.used or 0) / reading.limit:.1f}%)"
        if reading.budget is not None:
            line += f"; cosell's budget {reading.budget}"
        console.print(line)


def status(
    config: ConfigOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Show links by sync status, errors, lag, the webhook inbox and API usage."""
    from cosell.config import ConfigError, Settings
    from cosell.store import StoreError

    try:
        settings = Settings.load(config)
        with quiet_client_logs():
            report = asyncio.run(_run(settings))
    except (ConfigError, StoreError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    if json_output:
        typer.echo(json.dumps(report_json(report), indent=2))
    else:
        render(report, Console())


async def _run(settings: Settings) -> StatusReport:
    from cosell.clock import SystemClock
    from cosell.store import Store
    from cosell.tokenhealth import token_health

    clock = SystemClock()
    store = Store.open(settings.store.url, clock=clock, migrate=False)  # status only reads
    try:
        report = collect(store, clock=clock)  # the store first: it answers even when offline
    finally:
        store.close()
    return replace(
        report,
        usage=(await salesforce_usage(settings, clock=clock),),
        connections=token_health(settings, clock=clock),
    )
