"""`cosell audit KEY`: the history of one deal, from the store.

KEY is what `cosell plan` accepts (`referral:<id>`, `salesforce:Opportunity:<id>`, or a bare
referral id or opportunity id; `cosell.commands.plan.key_of` reads it). The key is resolved to
its link (a referral key by its referral id, a record key by object and record id), and the
command prints the link (both ids, sync status, last error, a parked link's next retry), its audit entries newest first
(time, message, details) and the conflicts recorded for it (field, Partner Center's value,
Salesforce's value, the base, the winner).

Nothing is written and no API is called: the store is opened without migrating it, and an
unmigrated store is an error that says to run `cosell db upgrade`. A key with no link (the deal
was never synced, or the id is mistyped) exits 1 with a message that says so. `--json` prints
the same as one JSON object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cosell.commands import ConfigOption, DealKey

if TYPE_CHECKING:  # imported when the command runs, so that the CLI starts quickly
    from cosell.store import AuditEntry, ConflictRecord, Key, Link, Store

DEFAULT_LIMIT = 50  # audit entries shown unless --limit says otherwise (the store keeps more)


class UnknownKeyError(LookupError):
    """A key that resolves to no link in the store."""


@dataclass(frozen=True)
class DealHistory:
    """One link's history.

    Attributes:
        key: the key asked for.
        link: the link it resolved to.
        entries: audit entries, newest first.
        conflicts: recorded conflicts, newest first.
    """

    key: Key
    link: Link
    entries: tuple[AuditEntry, ...]
    conflicts: tuple[ConflictRecord, ...]


def find_link(store: Store, key: Key) -> Link | None:
    """The link a key resolves to, or None."""
    from cosell.store import parse_key

    parts = parse_key(key)
    if parts[0] == "referral":
        return store.link_for_referral(parts[1])
    return store.link_for_record(parts[1], parts[2])


def history(store: Store, key: Key, *, limit: int = DEFAULT_LIMIT) -> DealHistory:
    """Read the history of the deal `key` names.

    Args:
        store: the opened store.
        key: a parsed key (`key_of`).
        limit: at most this many audit entries and conflicts.

    Returns:
        The link, its audit entries and its conflicts, newest first.

    Raises:
        UnknownKeyError: no link has this key.
        StoreError: the store cannot be read.
    """
    link = find_link(store, key)
    if link is None:
        raise UnknownKeyError(
            f"no deal in the store has the key {key}: cosell has not synced it yet, or the id "
            "is mistyped (check it in Salesforce or Partner Center; `cosell plan KEY` shows "
            "what a sync would do)"
        )
    return DealHistory(
        key=key,
        link=link,
        entries=tuple(store.audit(link.id, limit=limit)),
        conflicts=tuple(store.conflicts(link.id, limit=limit)),
    )


def history_json(found: DealHistory) -> dict[str, Any]:
    """The history as one JSON-ready object (the `--json` output)."""
    link = found.link
    return {
        "key": found.key,
        "link": {
            "id": link.id,
            "keys": list(link.keys),
            "referral_id": link.referral_id,
            "engagement_id": link.engagement_id,
            "sobject": link.sobject,
            "record_id": link.record_id,
            "sync_status": link.sync_status.value,
            "last_error": link.last_error,
            "created_at": link.created_at.isoformat(),
            "updated_at": link.updated_at.isoformat(),
            "last_synced_at": None
            if link.last_synced_at is None
            else link.last_synced_at.isoformat(),
            "retries": link.retries,
            "retry_at": None if link.retry_at is None else link.retry_at.isoformat(),
        },
        "audit": [
            {"at": entry.at.isoformat(), "message": entry.message, "details": dict(entry.details)}
            for entry in found.entries
        ],
        "conflicts": [
            {
                "at": conflict.at.isoformat(),
                "field": conflict.field,
                "partner_center": conflict.partner_center,
                "salesforce": conflict.salesforce,
                "base": conflict.base,
                "winner": conflict.winner,
            }
            for conflict in found.conflicts
        ],
    }


def _time(entry: AuditEntry | ConflictRecord) -> str:
    return entry.at.strftime("%Y-%m-%d %H:%M:%S")


def _value(value: str | bool | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def render(found: DealHistory, console: Console, *, now: datetime | None = None) -> None:
    """Print the history: the link (with a parked link's next retry), the audit, the conflicts."""
    link = found.link
    status = link.sync_status.value
    if status == "Error":
        status = f"[red]{status}[/red]"
    # One fact per line, never folded, so the ids can be copied whole.
    console.print(f"[bold]{found.key}[/bold]", soft_wrap=True, highlight=False)
    console.print(f"  referral {link.referral_id or '—'}", soft_wrap=True, highlight=False)
    console.print(f"  {link.sobject} {link.record_id or '—'}", soft_wrap=True, highlight=False)
    console.print(f"  sync status {status}", highlight=False)
    if link.last_error:
        console.print(f"  last error: {link.last_error}", markup=False, highlight=False)
    if link.sync_status.value == "Error" and now is not None:
        from cosell.sync.plan.retry import describe_retry

        retry = describe_retry(link.retry_at, now=now)
        if link.retry_at is not None:
            retry = (
                f"{retry}, after {link.retries} scheduled retr{'y' if link.retries == 1 else 'ies'}"
            )
        console.print(f"  next retry: {retry}", markup=False, highlight=False)
    if found.entries:
        audit = Table(title="Audit (newest first)")
        for column in ("Time (UTC)", "Message", "Details"):
            audit.add_column(column, overflow="fold")
        for entry in found.entries:
            details = json.dumps(dict(entry.details), default=str) if entry.details else ""
            audit.add_row(_time(entry), entry.message, details)
        console.print(audit)
    else:
        console.print("No audit entries.")
    if found.conflicts:
        conflicts = Table(title="Conflicts (newest first)")
        for column in ("Time (UTC)", "Field", "Partner Center", "Salesforce", "Base", "Winner"):
            conflicts.add_column(column, overflow="fold")
        for conflict in found.conflicts:
            conflicts.add_row(
                _time(conflict),
                conflict.field,
                _value(conflict.partner_center),
                _value(conflict.salesforce),
                _value(conflict.base),
                "Partner Center" if conflict.winner == "partner_center" else "Salesforce",
            )
        console.print(conflicts)
    else:
        console.print("No conflicts.")


def audit(
    key: DealKey,
    config: ConfigOption = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=1, help="Show at most this many audit entries and conflicts."),
    ] = DEFAULT_LIMIT,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Show the history of one deal: its link, audit trail and conflicts."""
    from cosell.clock import SystemClock
    from cosell.commands.plan import key_of
    from cosell.config import ConfigError, Settings
    from cosell.store import KeyFormatError, Store, StoreError

    try:
        parsed = key_of(key)
    except KeyFormatError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=2) from error
    try:
        settings = Settings.load(config)
        store = Store.open(settings.store.url, clock=SystemClock(), migrate=False)  # reads only
        try:
            found = history(store, parsed, limit=limit)
        finally:
            store.close()
    except (ConfigError, StoreError, UnknownKeyError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    if json_output:
        typer.echo(json.dumps(history_json(found), indent=2, default=str))
    else:
        render(found, Console(), now=SystemClock().now())
