"""`cosell pause [KEY…]` / `cosell resume [KEY…]`: stop and restart sync, all of it or one deal.

Without a KEY the whole sync pauses: `cosell serve` writes nothing to either side, polls
nothing, and every change that arrives meanwhile waits as Pending (its key is *held* in the
store); `/readyz` answers unready with who paused it; `cosell status` shows it. With KEYs
(`referral:<id>`, `salesforce:Opportunity:<id>`, or a link id from `cosell status --json`)
only those deals pause: shown as Paused, never written, their changes held; the service
writes Paused (who, since when, why) in the record's Partner Center Sync Status when it meets
the deal's key, and the first reconcile after the resume writes the status back. Both reach
the record promptly, by the engine path the console's Pause this deal takes: with a running
`cosell serve` (its poll seen, as `cosell retry` checks) the deal's key gets a wake-up due
now, which its next poll notifies; with none, the command meets the key with an engine of its
own, as `cosell sync KEY` does.

`cosell resume` lifts the pause; the running service notifies the held keys at its next poll
tick, so every change made during the pause is synced with no other command. Each pause and
resume is recorded in the audit (of the deal, or of no deal for all sync) with who did it:
`--by`, else `$USER`.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer

from cosell.commands import ConfigOption

if TYPE_CHECKING:
    from datetime import datetime

    from cosell.config import Settings
    from cosell.store import Store

KeysArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Deals to pause or resume (referral:<id>, salesforce:Opportunity:<id> or a link "
        "id); none for all sync.",
        show_default=False,
    ),
]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who does it, for the audit (default: $USER)."),
]


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no $USER and no password entry (a bare container)
        return "unknown"


def resolve_link(store: Store, text: str) -> str:
    """The link id a KEY (or a link id) names.

    Raises:
        typer.BadParameter: no link has that key or id; the message says how to find one.
    """
    from cosell.store import KeyFormatError
    from cosell.sync.io.links import link_of
    from cosell.sync.plan.keys import KeyRef

    try:
        link = link_of(store, KeyRef.parse(text))
    except KeyFormatError:
        link = store.get_link(text)
    if link is None:
        raise typer.BadParameter(
            f"no deal is linked for {text!r}; give referral:<id>, salesforce:Opportunity:<id> "
            "or a link id (cosell status --json lists the links in Error)"
        )
    return str(link.id)


def _set(
    keys: list[str] | None,
    *,
    paused: bool,
    by: str | None,
    reason: str | None,
    config: ConfigOption,
) -> None:
    from cosell.clock import SystemClock
    from cosell.config import ConfigError, Settings
    from cosell.store import Store, StoreError

    who = _who(by)
    verb = "paused" if paused else "resumed"
    clock = SystemClock()
    to_show: list[str] = []  # the keys of the deals whose record is to say so
    try:
        settings = Settings.load(config)
        with Store.open(settings.store.url, clock=clock) as store:
            targets: list[str | None] = (
                [resolve_link(store, key) for key in keys] if keys else [None]
            )
            for target, shown in zip(targets, keys or ["all sync"], strict=True):
                changed = store.set_pause(target, paused=paused, by=who, reason=reason)
                what = "all sync" if target is None else f"deal {shown} (link {target})"
                if changed:
                    typer.echo(f"{what}: {verb} by {who}")
                else:
                    typer.echo(f"{what}: already {verb}, nothing changed")
                link = store.get_link(target) if changed and target is not None else None
                if link is not None and link.keys:
                    to_show.append(link.keys[0])
            seen = _hand_to_service(store, settings, to_show, now=clock.now())
    except (ConfigError, StoreError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    if to_show:
        _show_on_records(settings, to_show, seen=seen, paused=paused)
    if paused:
        typer.echo(
            "Changes made meanwhile wait as Pending; `cosell resume` syncs them (cosell status "
            "shows what waits)."
        )
    else:
        typer.echo("A running `cosell serve` syncs what waited at its next poll.")


def _hand_to_service(
    store: Store, settings: Settings, keys: list[str], *, now: datetime
) -> datetime | None:
    """Give the deals' keys to a running `cosell serve`: a wake-up due now for each.

    Its next Partner Center poll notifies them, and the engine meets each key as it does when
    the console's Pause notifies it: held for the pause, Paused written on the record
    (`run.park.show_paused`); after a resume, reconciled and its status written back.

    Returns:
        When the service last polled; None when none runs (nothing is handed over).
    """
    from cosell.commands.retry import service_seen

    seen = service_seen(store, settings, now) if keys else None
    if seen is not None:
        for key in keys:  # due at the service's last poll: on its clock, due at its next one
            store.set_wakeup(key, seen)
    return seen


def _show_on_records(
    settings: Settings, keys: list[str], *, seen: datetime | None, paused: bool
) -> None:
    """Say where the records are written: by the running service, or here, now."""
    shown = "Paused" if paused else "its sync status"
    if seen is not None:
        typer.echo(
            f"The running `cosell serve` (last poll {seen:%H:%M:%S} UTC) writes {shown} on the "
            f"record within {settings.sync.poll_interval_seconds} s."
        )
        return
    from rich.console import Console

    from cosell.commands.sync import reconcile_here

    typer.echo(f"No running `cosell serve` polled this store recently: writing {shown} here.")
    try:
        summary = reconcile_here(settings, keys, console=Console())
    except typer.Exit:  # the error is printed; the pause or resume itself is stored
        typer.echo(
            f"The {'pause' if paused else 'resume'} stands; the record says so at the deal's "
            "next change, or when `cosell serve` runs."
        )
        return
    for outcome in summary.outcomes:
        typer.echo(
            f"  {outcome.key}: {outcome.result}"
            + (f" ({outcome.message})" if outcome.message and outcome.result != "held" else "")
        )


def pause(
    keys: KeysArgument = None,
    by: ByOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, shown in status and /readyz.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Pause sync: all of it, or the deals named (recorded in the audit; cosell resume undoes it)."""
    _set(keys, paused=True, by=by, reason=reason, config=config)


def resume(keys: KeysArgument = None, by: ByOption = None, config: ConfigOption = None) -> None:
    """Resume sync paused by cosell pause: all of it, or the deals named (recorded in the audit)."""
    _set(keys, paused=False, by=by, reason=None, config=config)
