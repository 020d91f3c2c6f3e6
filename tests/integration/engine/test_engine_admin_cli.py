"""`cosell sync KEY…` and `cosell retry` as an admin runs them: subprocesses, served sandboxes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from served_kit import api_writes, seller_creates, settings_toml, shared_opportunity

from cosell.clock import SystemClock
from cosell.store import Store
from cosell.store.types import SyncStatus
from cosell.sync.io.pollers import SERVICE_POLL_CURSOR

CLI_TIMEOUT = 60  # seconds: a few keys take a few
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture(scope="module")
def settings_file(sandboxes: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cosell-admin")
    path = directory / "cosell.toml"
    path.write_text(settings_toml(sandboxes, f"sqlite:///{directory / 'cosell.db'}"))
    return path


def _cosell(*args: str, user: str = "carol") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosell.cli", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "USER": user},
    )


def _store(settings_file: Path) -> Store:
    return Store.open(f"sqlite:///{settings_file.with_name('cosell.db')}", clock=SystemClock())


def _co_sell_without_solution(sf: dict[str, Any], name: str) -> tuple[str, str]:
    """An opportunity asking Microsoft for help, without the solution and contact it needs."""
    account = seller_creates(
        sf,
        "Account",
        {
            "Name": f"{name} Inc",
            "BillingStreet": "1 Main St",
            "BillingCity": "Redmond",
            "BillingPostalCode": "98052",
            "BillingState": "WA",
            "BillingCountry": "US",
        },
    )
    opportunity = seller_creates(
        sf,
        "Opportunity",
        {
            "Name": name,
            "AccountId": account,
            "StageName": "Qualification",
            "CloseDate": "2026-06-30",
            "Amount": 25000,
            "CurrencyIsoCode": "USD",
            "Sync_with_Partner_Center__c": True,
            "How_can_Microsoft_help__c": "Proof of concept or demo",
        },
    )
    return account, opportunity


def _fix(sf: dict[str, Any], account: str, opportunity: str) -> None:
    """What the parked message asks for: a Microsoft Solution and a primary contact role."""
    seller_creates(
        sf,
        "Microsoft_Solution__c",
        {
            "Opportunity__c": opportunity,
            "Name": "Azure PoC",
            "Solution_Id__c": "SOL-POC",
            "Solution_Type__c": "Name",
        },
    )
    contact = seller_creates(
        sf,
        "Contact",
        {"AccountId": account, "FirstName": "Ana", "LastName": "Customer", "Email": "a@x.test"},
    )
    seller_creates(
        sf, "OpportunityContactRole", {"OpportunityId": opportunity, "ContactId": contact}
    )


def test_sync_key_syncs_the_deals_named_and_audits_who_asked(
    sandboxes: dict[str, Any], settings_file: Path
) -> None:
    opportunity = shared_opportunity(sandboxes["salesforce"], "Litware - SAP on Azure")
    writes = api_writes(sandboxes)
    planned = _cosell("sync", opportunity, "--dry-run", "--config", str(settings_file))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"salesforce:Opportunity:{opportunity}  created" in planned.stdout
    assert api_writes(sandboxes) == writes
    result = _cosell("sync", opportunity, "--config", str(settings_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Created" in result.stdout
    again = _cosell(
        "sync",
        f"salesforce:Opportunity:{opportunity}",
        "--by",
        "alice",
        "--config",
        str(settings_file),
    )
    assert again.returncode == 0, again.stdout + again.stderr
    store = _store(settings_file)
    try:
        link = store.link_for_record("Opportunity", opportunity)
        assert link is not None
        assert link.sync_status == SyncStatus.SYNCED
        entries = store.audit(link.id)
    finally:
        store.close()
    assert entries[0].message == "sync requested by alice (cosell sync)"
    assert entries[0].details == {"by": "alice", "action": "cosell sync"}
    # A deal that is not parked has nothing to retry: the command says what to run instead.
    synced = _cosell("retry", opportunity, "--config", str(settings_file))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert (
        "is not parked (Synced): nothing to retry; `cosell sync KEY` syncs it now" in synced.stdout
    )
    assert "No deal named is in Error" in synced.stdout


def test_sync_and_retry_refuse_what_is_not_a_deal(settings_file: Path) -> None:
    bad = _cosell("sync", "not-a-key", "--config", str(settings_file))
    assert bad.returncode == 2
    assert "not-a-key" in bad.stderr
    unknown = _cosell(
        "retry", "6b0f4f47-1c5e-4a43-9a55-0d0d6f0d9a11", "--config", str(settings_file)
    )
    assert unknown.returncode == 2
    assert "no deal in the store has the key referral:6b0f4f47" in unknown.stderr
    neither = _cosell("retry", "--config", str(settings_file))
    assert neither.returncode == 2
    assert "--all-errors" in neither.stderr


def test_retry_without_a_service_syncs_the_parked_deals_here(
    sandboxes: dict[str, Any], settings_file: Path
) -> None:
    account, opportunity = _co_sell_without_solution(sandboxes["salesforce"], "Contoso - PoC")
    parked = _cosell("sync", opportunity, "--config", str(settings_file))
    assert parked.returncode == 1
    assert "at least one Microsoft Solution" in parked.stdout
    _fix(sandboxes["salesforce"], account, opportunity)
    result = _cosell("retry", "--all-errors", "--config", str(settings_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No running `cosell serve` polled this store recently" in result.stdout
    assert "Created" in result.stdout
    store = _store(settings_file)
    try:
        link = store.link_for_record("Opportunity", opportunity)
        assert link is not None
        assert (link.sync_status, link.retry_at) == (SyncStatus.SYNCED, None)
        messages = [entry.message for entry in store.audit(link.id)]
    finally:
        store.close()
    assert "retry requested by carol (cosell retry --all-errors)" in messages  # $USER


def test_retry_with_a_running_service_queues_through_the_store(
    sandboxes: dict[str, Any], settings_file: Path
) -> None:
    _, opportunity = _co_sell_without_solution(sandboxes["salesforce"], "Fabrikam - PoC")
    parked = _cosell("sync", opportunity, "--config", str(settings_file))
    assert parked.returncode == 1
    store = _store(settings_file)
    try:
        before = store.link_for_record("Opportunity", opportunity)
        assert before is not None
        assert before.retry_at is not None
        store.set_cursor(SERVICE_POLL_CURSOR, "local")  # a `cosell serve` polled just now
    finally:
        store.close()
    writes = api_writes(sandboxes)
    result = _cosell("retry", opportunity, "--by", "dave", "--config", str(settings_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Queued 1 deal(s) for a retry: the running `cosell serve`" in result.stdout
    assert api_writes(sandboxes) == writes  # the service does it, not the command
    store = _store(settings_file)
    try:
        link = store.link_for_record("Opportunity", opportunity)
        assert link is not None
        assert link.retry_at is not None
        assert link.retry_at <= SystemClock().now()  # due: the service's next poll takes it
        assert link.retries == 0
        assert link.id in {due.id for due in store.due_retries()}
        assert store.audit(link.id)[0].message == "retry requested by dave (cosell retry)"
    finally:
        store.close()


def test_pause_and_resume_of_a_deal_without_a_service_write_its_record_here(
    sandboxes: dict[str, Any], tmp_path: Path
) -> None:
    settings = tmp_path / "cosell.toml"
    settings.write_text(settings_toml(sandboxes, f"sqlite:///{tmp_path / 'cosell.db'}"))
    opportunity = shared_opportunity(sandboxes["salesforce"], "Northwind - pause by hand")
    key = f"salesforce:Opportunity:{opportunity}"
    created = _cosell("sync", opportunity, "--config", str(settings))
    assert created.returncode == 0, created.stdout + created.stderr

    paused = _cosell(
        "pause", key, "--by", "dave", "--reason", "legal review", "--config", str(settings)
    )
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert "No running `cosell serve` polled this store recently: writing Paused here" in (
        paused.stdout
    )
    record = _record(sandboxes, opportunity)
    assert record["Partner_Center_Sync_Status__c"] == "Paused"  # at once, with no change
    assert record["Partner_Center_Sync_Error__c"].startswith("Sync paused by dave")

    # `cosell sync KEY` on a paused deal: held, and says why and what to do; not a failure.
    held = _cosell("sync", opportunity, "--config", str(settings))
    assert held.returncode == 0, held.stdout + held.stderr
    assert "1 key(s) held, not failed" in held.stdout
    assert "held: this deal's sync is paused by dave since " in held.stdout
    assert "(legal review)" in held.stdout
    assert "cosell resume KEY" in held.stdout

    resumed = _cosell("resume", key, "--by", "dave", "--config", str(settings))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "writing its sync status here" in resumed.stdout
    record = _record(sandboxes, opportunity)
    assert (record["Partner_Center_Sync_Status__c"], record["Partner_Center_Sync_Error__c"]) == (
        "Synced",
        None,
    )


def _record(sandboxes: dict[str, Any], opportunity: str) -> dict[str, Any]:
    import httpx

    response = httpx.get(
        f"{sandboxes['salesforce']['base_url']}/control/records/Opportunity/{opportunity}",
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
