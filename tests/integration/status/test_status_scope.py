"""`cosell status` with a side paused by its circuit and sync paused by hand: counts and health."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rich.console import Console

from cosell.clock import ManualClock
from cosell.commands.status import collect, render, report_json
from cosell.store import Circuit, Store, SyncStatus


def test_status_shows_each_side_s_circuit_the_pauses_and_counts_each_deal_once(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with Store.open(f"sqlite:///{tmp_path / 'cosell.db'}", clock=clock) as store:
        for n in range(4):
            link = store.create_link(
                sobject="Opportunity", referral_id=f"r{n}", record_id=f"00600000000000{n}AAA"
            )
            store.update_link(link.id, sync_status=SyncStatus.SYNCED)
        store.set_circuit(
            Circuit(
                side="partner_center",
                state="open",
                cause="Partner Center is throttling cosell (throttled: 429)",
                fix="sync resumes by itself when Partner Center accepts calls again",
                since=clock.now(),
                next_probe_at=clock.now() + timedelta(seconds=30),
            )
        )
        store.hold_keys(["salesforce:Opportunity:006000000000001AAA"], side="partner_center")
        store.set_pause(link.id, paused=True, by="ada")
        clock.advance(90)
        report = collect(store, clock=clock)

    document = report_json(report)
    assert document["links"] == {"Synced": 2, "Pending": 1, "Error": 0, "Paused": 1, "total": 4}
    health = document["health"]
    assert health["sides"]["partner_center"]["circuit"] == "open"
    assert "throttling" in health["sides"]["partner_center"]["cause"]
    assert health["sides"]["salesforce"]["circuit"] == "closed"
    assert health["pauses"][0]["by"] == "ada"
    assert health["paused"] is False  # one deal, not all sync
    assert health["oldest_unsynced_seconds"] == 90.0

    console = Console(record=True, width=200)
    render(report, console)
    text = console.export_text()
    assert "Partner Center: sync paused (circuit open 90 s ago" in text
    assert "Fix: sync resumes by itself" in text
    assert "Salesforce: syncing (circuit closed)" in text
    assert f"Deal {link.id} paused by ada" in text
    assert "Oldest unsynced change: 90 s ago" in text
