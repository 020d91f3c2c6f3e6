"""`cosell plan KEY`: what a sync of one opportunity or referral would do, written nowhere.

KEY is `referral:<referral id>` or `salesforce:Opportunity:<record id>` (a bare referral id or
opportunity id is accepted too: an id that looks like a Salesforce id is an opportunity).
cosell reads both sides with the configured credentials, compares every mapped field three
ways (Partner Center, Salesforce, the base both last agreed on) and prints the table and the
writes a reconcile would make. Nothing is written: not to Partner Center, not to Salesforce,
not to the store.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from cosell.commands import ConfigOption, DealKey, quiet_client_logs

if TYPE_CHECKING:  # imported when the command runs, so that the CLI starts quickly
    from cosell.config import Settings
    from cosell.mapping.types import Value
    from cosell.store.types import Key
    from cosell.sync.io.context import SyncContext
    from cosell.sync.run.explain import PlanReport

_SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
_LEAD_PREFIX = "00Q"  # the key prefix of every Lead id in every org
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def key_of(text: str) -> Key:
    """A key from what a user typed: a key, a referral id (GUID), an opportunity or a Lead id.

    A bare Salesforce id is an opportunity's, unless its prefix is a Lead's (`00Q`).

    Raises:
        KeyFormatError: none of those; the message shows the accepted forms.
    """
    from cosell.store import parse_key, record_key, referral_key
    from cosell.store.types import Key

    text = text.strip()
    if _GUID.match(text):
        return referral_key(text)
    if _SALESFORCE_ID.match(text):
        return record_key("Lead" if text.startswith(_LEAD_PREFIX) else "Opportunity", text)
    parse_key(text)
    return Key(text)


def _show(value: Value) -> str:
    if value is None:
        return "[dim]—[/dim]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def render(report: PlanReport, console: Console) -> None:
    """Print a plan report: the link, the three-way table, the writes, the outcome."""
    link = report.link
    if link is not None:
        console.print(
            f"[bold]{report.key}[/bold]: referral {link.referral_id or '—'} ↔ "
            f"{link.sobject} {link.record_id or '—'} (sync status {link.sync_status}"
            + (f": {link.last_error}" if link.last_error else "")
            + ")"
        )
    else:
        console.print(f"[bold]{report.key}[/bold]: not linked yet")
    if report.rows:
        table = Table(title="Three-way comparison" + ("" if report.has_base else " (no base yet)"))
        for column in ("Field", "Partner Center", "Salesforce", "Base", "Action"):
            table.add_column(column, overflow="fold")
        for row in report.rows:
            action = row.action
            if action.startswith(("write", "create")):
                action = f"[yellow]{action}[/yellow]"
            elif action.startswith(("conflict", "refused", "differs")):
                action = f"[red]{action}[/red]"
            table.add_row(
                row.field,
                _show(row.partner_center),
                _show(row.salesforce),
                _show(row.base),
                action,
            )
        console.print(table)
    if report.partner_center_operations:
        console.print("[bold]Partner Center[/bold] JSON Patch (If-Match: the eTag read):")
        console.print_json(json.dumps(list(report.partner_center_operations)))
    for role, fields in report.salesforce_updates.items():
        console.print(f"[bold]Salesforce[/bold] {role} update (If-Unmodified-Since):")
        console.print_json(json.dumps(dict(fields), default=str))
    outcome = report.outcome
    text = (outcome.message or "").removeprefix("dry run: ")
    console.print(f"Plan: [bold]{outcome.result}[/bold]" + (f" — {text}" if text else ""))
    console.print("[dim]Nothing was written (dry run).[/dim]")


async def print_plan(ctx: SyncContext, key: Key, console: Console) -> PlanReport:
    """Explain `key` on `ctx` and print it; the report."""
    from cosell.sync.run.explain import explain

    report = await explain(ctx, key)
    render(report, console)
    return report


def plan(
    key: DealKey,
    config: ConfigOption = None,
) -> None:
    """Show what a sync of one opportunity or referral would change, without writing anything."""
    from cosell.config import ConfigError, Settings
    from cosell.mapping import MappingError
    from cosell.partnercenter.errors import PartnerCenterError
    from cosell.salesforce.errors import SalesforceError
    from cosell.store import KeyFormatError, StoreError

    try:
        parsed = key_of(key)
    except KeyFormatError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=2) from error
    try:
        settings = Settings.load(config)
        with quiet_client_logs():
            asyncio.run(_run(settings, parsed))
    except (ConfigError, MappingError, StoreError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    except (PartnerCenterError, SalesforceError) as error:
        typer.echo(f"Error: reading both sides failed: {error}", err=True)
        raise typer.Exit(code=1) from error


async def _run(settings: Settings, key: Key) -> None:
    from cosell.clock import SystemClock
    from cosell.store import Store
    from cosell.sync.io.context import build_context

    clock = SystemClock()
    store = Store.open(settings.store.url, clock=clock, migrate=False)  # a plan writes nothing
    try:
        ctx = build_context(settings, store=store, clock=clock)
        try:
            await print_plan(ctx, key, Console())
        finally:
            await ctx.aclose()
    finally:
        store.close()
