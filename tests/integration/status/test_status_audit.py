"""`cosell status` and `cosell audit` over real history: both sandboxes, real clients, a store.

The history: three deals shared from Salesforce (one stays in sync, one has a conflict on the
deal value, one is edited after it was won and is refused and parked in Error), a webhook
event waiting in the inbox, and both pollers' cursors stored as the engine stores them. The
commands run through typer's CliRunner on a `cosell.toml` that names the world's store and a
Salesforce that cannot be reached.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from rich.console import Console
from sync_world import World
from typer.testing import CliRunner

from cosell.cli import app
from cosell.clock import ManualClock
from cosell.commands.status import (
    ERRORS_SHOWN,
    collect,
    read_salesforce_usage,
    render,
    report_json,
)
from cosell.store import Store, SyncStatus
from cosell.store.schema import upgrade_database
from cosell.sync.engine import LAST_SWEEP_CURSOR
from cosell.sync.io import pollers
from cosell.sync.run.reconcile import reconcile_key


@dataclass
class History:
    in_sync: tuple[str, str]  # (opportunity id, referral id)
    conflict: tuple[str, str]
    refused: tuple[str, str]
    refusal: str


async def build_history(world: World) -> History:
    in_sync = await world.shared_pair()
    conflict = await world.shared_pair()
    opp_id, rid = conflict
    await world.microsoft.edit(
        rid, [{"op": "replace", "path": "/details/dealValue", "value": 40000}]
    )
    await world.seller.edit("Opportunity", opp_id, {"Amount": 45000})
    assert (await reconcile_key(world.ctx, world.referral_key(rid))).result == "conflict"
    world.tick()
    refused = await world.shared_pair()
    opp_id, rid = refused
    world.tick(72 * 3600)  # Partner Center takes Won 72 hours after creation
    await world.seller.edit("Opportunity", opp_id, {"StageName": "Closed Won"})
    assert (await reconcile_key(world.ctx, world.opportunity_key(opp_id))).result == "synced"
    world.tick()
    await world.seller.edit("Opportunity", opp_id, {"Amount": 1})
    outcome = await reconcile_key(world.ctx, world.opportunity_key(opp_id))
    assert outcome.result == "refused"
    assert outcome.message is not None
    world.store.record_event(
        source="partner_center",
        event_id="evt-1",
        key=str(world.referral_key(in_sync[1])),
        payload=b'{"EventName": "referral-updated"}',
    )
    # The pollers' cursors, stored as the engine stores them after a poll.
    found = await pollers.poll_partner_center(world.ctx.partner_center, pollers.Cursor())
    world.store.set_cursor(pollers.PARTNER_CENTER_CURSOR, found.cursor.dump())
    found = await pollers.poll_salesforce(world.ctx.salesforce, pollers.Cursor())
    world.store.set_cursor(pollers.SALESFORCE_CURSOR, found.cursor.dump())
    world.tick(60)
    return History(in_sync, conflict, refused, outcome.message)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def offline_config(tmp_path: Path, store_url: str) -> Path:
    """A cosell.toml naming `store_url` and a Salesforce that refuses connections."""
    dead = f"http://127.0.0.1:{closed_port()}"
    path = tmp_path / "offline.toml"
    path.write_text(
        f'[store]\nurl = "{store_url}"\n'
        "[salesforce]\n"
        'auth = "client_credentials"\n'
        'consumer_key = "key"\n'
        'consumer_secret = "not-a-real-secret"\n'
        f'login_url = "{dead}"\n'
    )
    return path


async def invoke(*args: str) -> Result:
    # The commands run their own event loop (asyncio.run): give them a thread without one.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def world_url(world: World) -> str:
    return world.store.url.render_as_string(hide_password=False)


# -- status ---------------------------------------------------------------------------------------


async def test_status_counts_links_lists_errors_and_reads_api_usage(world: World) -> None:
    history = await build_history(world)
    usage = await read_salesforce_usage(world.ctx.salesforce)
    report = collect(world.store, clock=world.clock, usage=(usage,))

    assert dict(report.summary.links_by_status) == {"Synced": 2, "Pending": 0, "Error": 1}
    [failed] = report.errors
    assert (failed.record_id, failed.referral_id) == history.refused
    assert failed.last_error == history.refusal
    assert "Closed/Won" in history.refusal
    assert usage.error is None
    assert usage.limit is not None
    assert usage.used is not None
    assert 0 < usage.used < usage.limit

    document = report_json(report)
    assert document["links"] == {"Synced": 2, "Pending": 0, "Error": 1, "Paused": 0, "total": 3}
    assert document["never_synced"] == 0
    assert document["health"]["paused"] is False
    assert {side["circuit"] for side in document["health"]["sides"].values()} == {"closed"}
    [error] = document["errors"]
    assert error["referral_id"] == history.refused[1]
    assert error["record_id"] == history.refused[0]
    assert f"salesforce:Opportunity:{history.refused[0]}" in error["keys"]
    assert error["error"] == history.refusal
    assert document["errors_truncated"] is False
    assert document["inbox"]["pending"] == 1
    assert document["inbox"]["oldest_seconds"] == pytest.approx(60.0)
    polled = {entry["cursor"]: entry for entry in document["lag"]["pollers"]}
    assert set(polled) == {pollers.PARTNER_CENTER_CURSOR, pollers.SALESFORCE_CURSOR}
    assert polled[pollers.PARTNER_CENTER_CURSOR]["seconds_since_stored"] == pytest.approx(60.0)
    assert polled[pollers.SALESFORCE_CURSOR]["newest_change_seen"] is not None
    assert document["lag"]["last_synced_seconds"] is not None
    assert document["last_sweep"] == {"at": None, "recorded": False}
    assert document["api_usage"]["salesforce"]["used"] == usage.used
    json.dumps(document)  # every value is JSON

    console = Console(record=True, width=200, file=io.StringIO())
    render(report, console)
    text = console.export_text()
    assert "Deals (each counted once)" in text
    assert history.refused[1] in text
    assert history.refusal[:40] in text
    assert "Partner Center poller: last poll" in text
    assert "60 s ago" in text
    assert "none Pending" in text
    assert "Last sweep" in text
    assert "not recorded in the store" in text
    assert "Webhook inbox: 1 pending" in text
    assert f"Salesforce API usage: {usage.used} of {usage.limit} requests" in text


async def test_status_shows_a_sweep_the_engine_recorded(world: World) -> None:
    swept_at = world.clock.now() - timedelta(minutes=5)
    world.store.set_cursor(LAST_SWEEP_CURSOR, swept_at.isoformat())
    report = collect(world.store, clock=world.clock)
    assert report_json(report)["last_sweep"] == {"at": swept_at.isoformat(), "recorded": True}
    console = Console(record=True, width=200, file=io.StringIO())
    render(report, console)
    assert "5 min ago" in console.export_text()


async def test_cosell_status_prints_the_store_when_salesforce_is_unreachable(
    world: World, tmp_path: Path
) -> None:
    history = await build_history(world)
    config = offline_config(tmp_path, world_url(world))

    result = await invoke("status", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["links"]["Synced"] == 2
    assert document["links"]["Error"] == 1
    assert document["errors"][0]["referral_id"] == history.refused[1]
    assert document["inbox"]["pending"] == 1
    salesforce = document["api_usage"]["salesforce"]
    assert salesforce["used"] is None
    assert salesforce["error"].startswith("could not be read")
    assert "not-a-real-secret" not in result.output

    result = await invoke("status", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "Deals (each counted once)" in result.stdout
    assert history.refused[1] in result.stdout
    assert "Salesforce API usage: could not be read" in result.stdout
    assert "not-a-real-secret" not in result.output


def test_cosell_status_says_what_credentials_are_missing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade_database(url)
    config = tmp_path / "cosell.toml"
    config.write_text(f'[store]\nurl = "{url}"\n[salesforce]\nauth = "client_credentials"\n')
    result = CliRunner().invoke(app, ["status", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["links"]["total"] == 0
    assert "salesforce.consumer_key" in document["api_usage"]["salesforce"]["error"]


@pytest.mark.parametrize("command", [["status"], ["audit", "0062I0000000001QAA"]])
def test_status_and_audit_ask_for_a_migrated_store(tmp_path: Path, command: list[str]) -> None:
    database = tmp_path / "s.db"
    config = tmp_path / "cosell.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{database}"\n')
    result = CliRunner().invoke(app, [*command, "--config", str(config)])
    assert result.exit_code == 1
    assert "cosell db upgrade" in result.output
    with sqlite3.connect(database) as connection:  # nothing was migrated
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


# -- audit ----------------------------------------------------------------------------------------


async def test_cosell_audit_shows_a_conflicted_deal(world: World, tmp_path: Path) -> None:
    history = await build_history(world)
    opp_id, rid = history.conflict
    config = offline_config(tmp_path, world_url(world))

    result = await invoke("audit", opp_id, "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["key"] == f"salesforce:Opportunity:{opp_id}"
    link = document["link"]
    assert (link["referral_id"], link["record_id"], link["sobject"]) == (rid, opp_id, "Opportunity")
    assert link["sync_status"] == "Synced"
    assert link["last_error"] is None
    [conflict] = document["conflicts"]
    assert conflict == {
        "at": conflict["at"],
        "field": "deal_value",
        "partner_center": "40000.00",
        "salesforce": "45000.00",
        "base": "25000.00",
        "winner": "salesforce",
    }
    entries = document["audit"]
    assert len(entries) >= 2  # the create, then the conflict
    times = [entry["at"] for entry in entries]
    assert times == sorted(times, reverse=True)
    assert "'40000.00' lost" in entries[0]["message"]
    assert isinstance(entries[0]["details"], dict)

    # The referral's key finds the same deal; --limit bounds the entries.
    result = await invoke("audit", f"referral:{rid}", "--limit", "1", "--config", str(config))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"referral {rid}" in text
    assert "Audit (newest first)" in text
    assert "lost" in text
    assert "Conflicts (newest first)" in text
    assert "deal_value" in text
    assert "45000.00" in text


async def test_cosell_audit_shows_the_error_of_a_refused_deal(world: World, tmp_path: Path) -> None:
    history = await build_history(world)
    config = offline_config(tmp_path, world_url(world))
    result = await invoke("audit", history.refused[1], "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "sync status Error" in result.stdout
    assert "last error: The referral is Closed/Won" in result.stdout
    assert "No conflicts." in result.stdout


async def test_cosell_audit_of_an_unknown_key_says_so(world: World, tmp_path: Path) -> None:
    await build_history(world)
    config = offline_config(tmp_path, world_url(world))
    unknown = "0062I0000000009QAA"
    result = await invoke("audit", unknown, "--config", str(config))
    assert result.exit_code == 1
    assert f"no deal in the store has the key salesforce:Opportunity:{unknown}" in result.output


def test_cosell_audit_refuses_a_malformed_key() -> None:
    result = CliRunner().invoke(app, ["audit", "not a key"])
    assert result.exit_code == 2
    assert "referral:<referral id>" in result.output


def test_status_shows_at_most_twenty_errors_and_says_how_many_there_are(tmp_path: Path) -> None:
    clock = ManualClock()
    with Store.open(f"sqlite:///{tmp_path / 's.db'}", clock=clock) as store:
        for number in range(ERRORS_SHOWN + 1):
            link = store.create_link(sobject="Opportunity", referral_id=f"referral-{number}")
            clock.advance(1)
            store.update_link(link.id, sync_status=SyncStatus.ERROR, last_error=f"error {number}")
        report = collect(store, clock=clock)
    document = report_json(report)
    assert len(document["errors"]) == ERRORS_SHOWN
    assert document["errors_truncated"] is True
    assert document["errors"][0]["error"] == f"error {ERRORS_SHOWN}"  # the newest first
    assert document["errors"][0]["record_id"] is None
    assert document["never_synced"] == ERRORS_SHOWN + 1
    console = Console(record=True, width=200, file=io.StringIO())
    render(report, console)
    text = console.export_text()
    assert f"Errors, most recent first ({ERRORS_SHOWN} of {ERRORS_SHOWN + 1}):" in text
    assert "referral referral-20  Opportunity —" in text
    assert "error 0\n" not in text  # the oldest is left out


async def test_status_and_audit_show_when_a_parked_deal_is_retried(
    world: World, tmp_path: Path
) -> None:
    from cosell.sync.run.park import park_link

    scheduled = world.store.create_link(sobject="Opportunity", record_id="0062I0000000007QAA")
    park_link(world.store, scheduled, "Needs a Microsoft Solution", now=world.clock.now())
    waiting = world.store.create_link(sobject="Opportunity", record_id="0062I0000000008QAA")
    park_link(
        world.store, waiting, "the mapping cannot convert it", now=world.clock.now(), lasting=True
    )
    world.tick(10)
    report = collect(world.store, clock=world.clock)
    parked = world.store.get_link(scheduled.id)
    assert parked is not None
    assert parked.retry_at is not None
    assert report.next_retry_at == parked.retry_at
    document = report_json(report)
    assert document["next_retry_at"] == parked.retry_at.isoformat()
    console = Console(record=True, width=200, file=io.StringIO())
    render(report, console)
    text = console.export_text()
    seconds = int((parked.retry_at - world.clock.now()).total_seconds())
    assert f"Error: 2 (next retry in {seconds} s)" in text
    assert "retry: waits for a change" in text
    assert f"retry: in {seconds} s (at {parked.retry_at:%H:%M} UTC)" in text

    config = offline_config(tmp_path, world_url(world))
    result = await invoke("audit", "0062I0000000007QAA", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert '"retry_at": "' + parked.retry_at.isoformat() in result.stdout
    shown = await invoke("audit", "0062I0000000007QAA", "--config", str(config))
    assert "next retry: " in shown.stdout  # on the system clock: when, after how many retries
    assert "after 0 scheduled retries" in shown.stdout
