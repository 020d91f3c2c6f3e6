"""`cosell retry KEY…` / `cosell retry --all-errors`: retry parked deals now.

Each deal named (or every deal in Error) gets its park's backoff cleared and its retry made
due now, with an audit entry saying who asked (`$USER`, or `--by NAME`), in one store
transaction. That is the one durable path every retry takes (the console's retry button, the
sign-in coming back, the schedule): the running service's poll notifies the deals whose retry
is due, within one poll interval.

Then: when a `cosell serve` is running on this store (its scheduled poll ran within
`SERVICE_SEEN_POLLS` poll intervals), the command says so and ends: the service retries them.
When none is, it reconciles them itself, in the foreground, like `cosell sync KEY…`, and prints
the summary (exit status 1 if a deal still fails).

A key that names no deal in the store is an error (exit 2) before anything is changed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.console import Console

from cosell.commands import ConfigOption

if TYPE_CHECKING:  # imported when the command runs, so that the CLI starts quickly
    from cosell.config import Settings
    from cosell.store import Link, Store

SERVICE_SEEN_POLLS: Final = 3  # poll intervals without a poll before a service counts as gone
_MIN_SERVICE_WINDOW: Final = 90.0  # seconds: a slow poll (a throttled side) is not a dead one

ByOption = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="Who asks, for the audit trail (default: the login name, $USER).",
        show_default=False,
    ),
]
"""`--by NAME`: who is recorded in the audit as having asked."""

KeysArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help=(
            "Deals: referral:<id>, salesforce:Opportunity:<id>, salesforce:Lead:<id>, or just "
            "the referral id, the opportunity id or the Lead id."
        ),
        show_default=False,
    ),
]


class UnknownDealError(LookupError):
    """A key the user gave names no deal in the store."""


def who(by: str | None) -> str:
    """The name recorded in the audit: `--by`, else the login name."""
    import getpass

    if by and by.strip():
        return by.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown user"


def resolve(store: Store, texts: list[str]) -> list[tuple[str, Link]]:
    """The deals the user named, as (key, link), in the order given, each once.

    Raises:
        KeyFormatError: a text is not a key or an id (the message shows the accepted forms).
        UnknownDealError: a key names no deal in the store (every unknown one is listed).
    """
    from cosell.commands.audit import find_link
    from cosell.commands.plan import key_of

    found: dict[str, tuple[str, Link]] = {}
    unknown: list[str] = []
    for text in texts:
        key = key_of(text)
        link = find_link(store, key)
        if link is None:
            unknown.append(key)
        elif link.id not in found:
            found[link.id] = (key, link)
    if unknown:
        raise UnknownDealError(
            f"no deal in the store has the key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}: cosell has not synced it yet, or the id is mistyped (check "
            "it in Salesforce or Partner Center; `cosell status` lists the deals in Error)"
        )
    return list(found.values())


def parked_links(store: Store) -> list[Link]:
    """Every link in Error, a page at a time."""
    from cosell.store import SyncStatus

    links: list[Link] = []
    after: str | None = None
    while True:
        page = store.links(status=SyncStatus.ERROR, limit=500, after=after)
        links.extend(page)
        if len(page) < 500:
            return links
        after = page[-1].id


def service_seen(store: Store, settings: Settings, now: datetime) -> datetime | None:
    """When a running `cosell serve` last polled this store, if recently enough to count."""
    from cosell.sync.io.pollers import SERVICE_POLL_CURSOR

    window = max(SERVICE_SEEN_POLLS * settings.sync.poll_interval_seconds, _MIN_SERVICE_WINDOW)
    for cursor in store.summary().cursors:
        if cursor.name == SERVICE_POLL_CURSOR and now - cursor.updated_at <= timedelta(
            seconds=window
        ):
            return cursor.updated_at
    return None


def request_retries(
    store: Store, links: list[Link], *, by: str, action: str, now: datetime
) -> None:
    """Clear the parks' backoff, make their retry due now, audit who asked: one transaction."""
    from cosell.sync.plan.record import retry_requested_record

    store.record(
        [
            retry_requested_record(
                link,
                f"retry requested by {by} ({action})",
                now=now,
                details={"by": by, "action": action},
            )
            for link in links
        ]
    )


def retry(
    keys: KeysArgument = None,
    all_errors: Annotated[
        bool, typer.Option("--all-errors", help="Retry every deal in Error.")
    ] = False,
    by: ByOption = None,
    config: ConfigOption = None,
) -> None:
    """Retry parked deals now: through the running service, or here when none runs.

    Clears each deal's retry backoff and records who asked in its audit trail. A running
    `cosell serve` retries them at its next poll; without one, they are synced here and a
    summary is printed (exit 1 if a deal still fails).
    """
    from cosell.clock import SystemClock
    from cosell.config import ConfigError, Settings
    from cosell.store import KeyFormatError, Store, StoreError

    if bool(keys) == all_errors:
        typer.echo(
            "Error: name the deals to retry (KEY…), or pass --all-errors; not both", err=True
        )
        raise typer.Exit(code=2)
    console = Console()
    clock = SystemClock()
    requester = who(by)
    try:
        settings = Settings.load(config)
        store = Store.open(settings.store.url, clock=clock)
        try:
            chosen = [link for _, link in resolve(store, keys)] if keys else parked_links(store)
            for link in [link for link in chosen if link.sync_status.value != "Error"]:
                typer.echo(
                    f"{link.keys[0] if link.keys else link.id} is not parked "
                    f"({link.sync_status.value}): nothing to retry; `cosell sync KEY` syncs it now"
                )
            chosen = [link for link in chosen if link.sync_status.value == "Error"]
            if not chosen:
                typer.echo(
                    "No deal named is in Error: nothing to retry."
                    if keys
                    else "No deal is in Error: nothing to retry."
                )
                return
            action = "cosell retry --all-errors" if all_errors else "cosell retry"
            request_retries(store, chosen, by=requester, action=action, now=clock.now())
            seen = service_seen(store, settings, clock.now())
        finally:
            store.close()
    except (KeyFormatError, UnknownDealError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=2) from error
    except (ConfigError, StoreError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    if seen is not None:
        typer.echo(
            f"Queued {len(chosen)} deal(s) for a retry: the running `cosell serve` (last poll "
            f"{seen:%H:%M:%S} UTC) retries them within {settings.sync.poll_interval_seconds} s. "
            "`cosell status` and `cosell audit KEY` show how they end."
        )
        return
    typer.echo(
        f"No running `cosell serve` polled this store recently: retrying {len(chosen)} deal(s) here."
    )
    from cosell.commands.sync import run_keys_here

    run_keys_here(settings, [link.keys[0] for link in chosen if link.keys], console=console)


__all__ = ["retry", "who"]
