"""`cosell sync [KEY…] [--full] [--dry-run] [--config FILE]`: reconcile in the foreground.

With keys (`cosell sync KEY…`), only those deals are reconciled, now, whatever their state
(parked ones included), each with an audit entry saying who asked (`$USER`, or `--by NAME`); a
key is what `cosell audit` accepts, and one that is not a key or an id is an error (exit 2).
A key that names no deal yet is reconciled too: an opportunity ticked for sync gets its
referral created, an unknown id ends as `skipped` with the reason.

Without `--full` the pass reconciles what changed since the last pass (both pollers' cursors)
plus the links parked in Error; with `--full` it reconciles every referral, page by page, and
every opportunity waiting for its referral (a backfill). A rich progress bar follows the keys;
a summary table ends the run: keys seen, unchanged, synced, created, conflicts, refused,
errors, skipped, held, API calls. The exit status is 0 when no key ended in error or held,
else 1 with each error listed (key and message).

Before anything is synced both connections and the mapping are checked against the org's
describe (the preflight): when a side fails (a refused secret or sign-in, a permission, a field
the mapping names that the org lacks, a side that does not answer) the pass stops with the
reason and exit status 1, and nothing in the store changes, so a bad config never parks the
links of a running service that shares the store. A side that fails during the pass is the
connection's problem too: its keys are held (Pending), not parked in Error.

`--dry-run` reads both sides and prints, per key, what the pass would write where; it writes
nothing: no API write, no store row (the store's schema is created if missing, nothing more),
and no engine state (DBOS is not even started).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cosell.commands import ConfigOption, quiet_client_logs
from cosell.commands.retry import ByOption, KeysArgument

if TYPE_CHECKING:  # imported when the command runs, so that the CLI starts quickly
    from cosell.config import Settings
    from cosell.sync.engine import Summary
    from cosell.sync.plan.outcome import Outcome


def _user_errors() -> tuple[type[Exception], ...]:
    """What a bad setting or an unreachable side raises: reported in one line, exit status 1."""
    from cosell.config import ConfigError
    from cosell.mapping import MappingError
    from cosell.partnercenter.errors import PartnerCenterError
    from cosell.salesforce.errors import SalesforceError
    from cosell.store import StoreError
    from cosell.sync.engine import EngineError

    return (ConfigError, StoreError, MappingError, EngineError, PartnerCenterError, SalesforceError)


_HELD_SHOWN: Final = 20  # held keys listed with why; a paused full pass holds them all
_ROWS = (
    ("unchanged", "Unchanged"),
    ("synced", "Synced"),
    ("created", "Created"),
    ("conflict", "Conflicts"),
    ("refused", "Refused"),
    ("error", "Errors"),
    ("skipped", "Skipped"),
    ("held", "Held (wait for a side or a pause)"),
)


def sync(
    keys: KeysArgument = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Reconcile everything (a backfill), not only what changed."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would be written; write nothing anywhere."),
    ] = False,
    by: ByOption = None,
    config: ConfigOption = None,
) -> None:
    """Run one sync pass in the foreground, or sync the deals named now; print a summary.

    Without KEY: what changed since the last pass plus every deal in Error (`--full`: every
    referral and every opportunity waiting for its referral). With KEY…: those deals only,
    each recorded in its audit trail with who asked. Exit status 1 if a deal failed.
    """
    from cosell.config import Settings

    console = Console()
    if keys:
        if full:
            typer.echo(
                "Error: --full syncs everything; leave it out to sync the deals named", err=True
            )
            raise typer.Exit(code=2)
        _sync_keys(keys, dry_run=dry_run, by=by, config=config, console=console)
        return
    try:
        settings = Settings.load(config)
        with quiet_client_logs():
            summary = asyncio.run(
                run_sync(
                    settings, full=full, dry_run=dry_run or settings.sync.dry_run, console=console
                )
            )
    except _user_errors() as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    render(summary, console)
    raise typer.Exit(code=1 if summary.errors else 0)  # a held key waits: not a failure


async def run_sync(settings: Settings, *, full: bool, dry_run: bool, console: Console) -> Summary:
    """Open the store, run one pass with a progress bar, close everything.

    Args:
        settings: cosell's settings.
        full: reconcile everything.
        dry_run: write nothing.
        console: where the progress bar goes.

    Returns:
        The pass's summary.
    """
    from cosell.clock import SystemClock
    from cosell.store import Store
    from cosell.sync.engine import Engine, EngineOptions, settings_context_factory

    clock = SystemClock()
    store = Store.open(settings.store.url, clock=clock)
    try:
        options = EngineOptions.from_settings(settings)
        # A pass is its own executor: it recovers its own interrupted batches at its next run,
        # never the workflows a `cosell serve` on this host is running.
        options = replace(options, executor_id=f"{options.executor_id}-sync")
        engine = Engine(
            settings,
            store=store,
            context_factory=settings_context_factory(settings, store=store, clock=clock),
            clock=clock,
            options=options,
        )
        if not dry_run:
            await engine.start(background=False)
        try:
            columns = (
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=True) as bar:
                label = "Planning" if dry_run else "Syncing"
                task = bar.add_task(label, total=None)

                def advance(done: int, total: int | None) -> None:
                    bar.update(task, completed=done, total=total)

                return await engine.run_pass(full=full, dry_run=dry_run, progress=advance)
        finally:
            if not dry_run:
                await engine.stop()
    finally:
        store.close()


def _sync_keys(
    texts: list[str], *, dry_run: bool, by: str | None, config: Path | None, console: Console
) -> None:
    """`cosell sync KEY…`: check the keys, audit who asked, reconcile them here."""
    from cosell.clock import SystemClock
    from cosell.commands.audit import find_link
    from cosell.commands.plan import key_of
    from cosell.commands.retry import who
    from cosell.config import ConfigError, Settings
    from cosell.store import KeyFormatError, Store, StoreError

    try:
        keys = list(dict.fromkeys(key_of(text) for text in texts))
    except KeyFormatError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=2) from error
    requester = who(by)
    try:
        settings = Settings.load(config)
        if not (dry_run or settings.sync.dry_run):
            store = Store.open(settings.store.url, clock=SystemClock())
            try:
                for key in keys:
                    link = find_link(store, key)
                    if link is not None:
                        store.record_audit(
                            link.id,
                            f"sync requested by {requester} (cosell sync)",
                            details={"by": requester, "action": "cosell sync"},
                        )
            finally:
                store.close()
    except (ConfigError, StoreError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    run_keys_here(settings, keys, console=console, dry_run=dry_run or settings.sync.dry_run)


def run_keys_here(
    settings: Settings, keys: Sequence[str], *, console: Console, dry_run: bool = False
) -> None:
    """Reconcile `keys` in this process (an engine of its own), print the summary, exit."""
    summary = reconcile_here(settings, keys, console=console, dry_run=dry_run)
    render(summary, console)
    raise typer.Exit(code=1 if summary.errors else 0)  # a held key waits: not a failure


def reconcile_here(
    settings: Settings, keys: Sequence[str], *, console: Console, dry_run: bool = False
) -> Summary:
    """Reconcile `keys` in this process (an engine of its own) and return the summary.

    Raises:
        typer.Exit: a user error (configuration, credentials, store), printed first.
    """
    try:
        with quiet_client_logs():
            return asyncio.run(_run_keys(settings, keys, dry_run=dry_run, console=console))
    except _user_errors() as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error


async def _run_keys(
    settings: Settings, keys: Sequence[str], *, dry_run: bool, console: Console
) -> Summary:
    from cosell.clock import SystemClock
    from cosell.store import Store
    from cosell.sync.engine import Engine, EngineOptions, settings_context_factory

    clock = SystemClock()
    store = Store.open(settings.store.url, clock=clock)
    try:
        options = EngineOptions.from_settings(settings)
        options = replace(options, executor_id=f"{options.executor_id}-sync")  # as a pass
        engine = Engine(
            settings,
            store=store,
            context_factory=settings_context_factory(settings, store=store, clock=clock),
            clock=clock,
            options=options,
        )
        if not dry_run:
            await engine.start(background=False)
        try:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("Planning" if dry_run else "Syncing", total=len(keys))

                def advance(done: int, total: int | None) -> None:
                    bar.update(task, completed=done, total=total)

                return await engine.run_keys(keys, dry_run=dry_run, progress=advance)
        finally:
            if not dry_run:
                await engine.stop()
    finally:
        store.close()


def plan_lines(outcome: Outcome) -> list[str]:
    """A dry run's plan for one key: a header line, then one line per value to write.

    Returns:
        No lines when the key would not change.
    """
    changes = bool(outcome.to_salesforce or outcome.to_partner_center)
    if not changes and outcome.result not in ("created", "conflict", "refused", "error"):
        return []
    header = f"{outcome.key}  {outcome.result}"
    if outcome.message:
        header += f"  ({outcome.message})"
    lines = [header]
    for side, values in (
        ("to Salesforce", outcome.to_salesforce),
        ("to Partner Center", outcome.to_partner_center),
    ):
        for n, (name, value) in enumerate(values.items()):
            label = side if n == 0 else ""
            lines.append(f"    {label:<18} {name} = {value!r}")
    return lines


def render(summary: Summary, console: Console) -> None:
    """Print a pass's plans (dry run), its summary table and its errors."""
    if summary.dry_run:
        plans = [lines for o in summary.outcomes if (lines := plan_lines(o))]
        console.print(
            f"[bold]Dry run[/bold]: nothing was written. {len(plans)} key(s) would change:"
        )
        for lines in plans:
            for line in lines:
                console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    title = "Dry run (planned)" if summary.dry_run else "Sync pass"
    table = Table(title=title, show_header=False)
    table.add_column("What")
    table.add_column("Keys", justify="right")
    table.add_row("Keys seen", str(summary.keys_seen))
    for result, label in _ROWS:
        table.add_row(label, str(summary.count(result)))
    table.add_row("API calls", str(summary.api_calls))
    console.print(table)
    if summary.errors:
        console.print(f"[bold red]{len(summary.errors)} key(s) failed:[/bold red]")
        for key, message in summary.errors:
            console.print(f"  {key}: {message}", markup=False, highlight=False)
    held = [o for o in summary.outcomes if o.result == "held"]
    if held:
        console.print(
            f"[bold yellow]{len(held)} key(s) held, not failed[/bold yellow] (nothing was written "
            "for them; they sync by themselves once sync resumes):"
        )
        for outcome in held[:_HELD_SHOWN]:
            console.print(
                f"  {outcome.key}: held: {outcome.message}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        if len(held) > _HELD_SHOWN:
            console.print(f"  and {len(held) - _HELD_SHOWN} more (cosell status shows them)")
