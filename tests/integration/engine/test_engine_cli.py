"""`cosell sync` as a user runs it: a subprocess, settings in cosell.toml, sandboxes on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from served_kit import api_writes, incoming_lead, shared_opportunity
from typer.testing import CliRunner

from cosell.cli import app
from cosell.clock import SystemClock
from cosell.store import Store
from cosell.store.types import record_key, referral_key

CLI_TIMEOUT = 60  # seconds: a pass over a handful of keys takes a few
SRC = Path(__file__).resolve().parents[3] / "src"


def _toml(values: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, keys in values.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in keys.items())
        lines.append("")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def settings_file(sandboxes: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cosell.toml for the served sandboxes, with a SQLite store beside it."""
    pc, sf = sandboxes["partner_center"], sandboxes["salesforce"]
    directory = tmp_path_factory.mktemp("cosell-cli")
    path = directory / "cosell.toml"
    path.write_text(
        _toml(
            {
                "partner_center": {
                    "auth": "refresh_token",
                    "tenant_id": pc["tenant_id"],
                    "client_id": pc["client_id"],
                    "client_secret": pc["client_secret"],
                    "refresh_token": pc["refresh_token"],
                    "referrals_url": pc["referrals_api"],
                    "webhooks_url": pc["webhooks_api"],
                    "route_to": pc["base_url"],
                },
                "salesforce": {
                    "auth": "client_credentials",
                    "consumer_key": sf["consumer_key"],
                    "consumer_secret": sf["consumer_secret"],
                    "login_url": sf["login_url"],
                    "token_url": sf["token_url"],
                },
                "store": {"url": f"sqlite:///{directory / 'cosell.db'}"},
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def story(sandboxes: dict[str, Any]) -> dict[str, str]:
    """Microsoft sends a lead; a seller shares an opportunity."""
    return {
        "lead": incoming_lead(sandboxes["partner_center"], "Northwind - Teams rollout"),
        "opportunity": shared_opportunity(sandboxes["salesforce"], "Litware - SAP on Azure"),
    }


def _cosell(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosell.cli", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC)},
    )


def _store(settings_file: Path) -> Store:
    return Store.open(f"sqlite:///{settings_file.with_name('cosell.db')}", clock=SystemClock())


def test_dry_run_prints_the_plan_and_writes_nothing(
    sandboxes: dict[str, Any], settings_file: Path, story: dict[str, str]
) -> None:
    before = api_writes(sandboxes)
    result = _cosell("sync", "--full", "--dry-run", "--config", str(settings_file))
    assert result.returncode == 0, result.stderr
    assert api_writes(sandboxes) == before
    assert "Dry run: nothing was written" in result.stdout
    assert f"{referral_key(story['lead'])}  created" in result.stdout
    assert f"{record_key('Opportunity', story['opportunity'])}  created" in result.stdout
    assert "Keys seen" in result.stdout
    assert "token_acquired" not in result.stdout  # the clients' sign-in logs stay out of it
    store = _store(settings_file)
    try:
        assert store.links() == []
    finally:
        store.close()
    # No engine state either: the system database was never created.
    assert not settings_file.with_name("cosell-dbos.sqlite").exists()


def test_full_backfills_then_an_incremental_pass_has_nothing_to_do(
    sandboxes: dict[str, Any], settings_file: Path, story: dict[str, str]
) -> None:
    result = _cosell("sync", "--full", "--config", str(settings_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Created" in result.stdout
    assert "token_acquired" not in result.stdout
    store = _store(settings_file)
    try:
        lead = store.link_for_referral(story["lead"])
        assert lead is not None
        assert lead.record_id is not None
        shared = store.link_for_record("Opportunity", story["opportunity"])
        assert shared is not None
        assert shared.referral_id is not None
    finally:
        store.close()

    before = api_writes(sandboxes)
    again = _cosell("sync", "--config", str(settings_file))
    assert again.returncode == 0, again.stdout + again.stderr
    assert api_writes(sandboxes) == before  # everything already agrees: zero writes


def test_bad_settings_exit_1_with_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sync", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1
    assert "no such settings file" in result.output


def _links_state(settings_file: Path) -> list[tuple[Any, ...]]:
    store = _store(settings_file)
    try:
        return [
            (link.id, link.sync_status, link.last_error, link.updated_at, len(store.audit(link.id)))
            for link in store.links(limit=1000)
        ] + [("cursors", tuple((c.name, c.value) for c in store.summary().cursors))]
    finally:
        store.close()


@pytest.mark.parametrize("broken", ["client_secret", "mapping"])
def test_a_sync_with_a_bad_config_changes_no_link(
    sandboxes: dict[str, Any],
    settings_file: Path,
    story: dict[str, str],
    tmp_path: Path,
    broken: str,
) -> None:
    # Links exist (the backfill above, or this one), and there is work to do: a new lead.
    first = _cosell("sync", "--full", "--config", str(settings_file))
    assert first.returncode == 0, first.stdout + first.stderr
    incoming_lead(sandboxes["partner_center"], f"Contoso - {broken}")
    before = _links_state(settings_file)
    writes = api_writes(sandboxes)
    text = settings_file.read_text()
    if broken == "client_secret":
        text = text.replace(sandboxes["partner_center"]["client_secret"], "not-the-secret")
        expected = "Partner Center refuses cosell's credentials"
    else:
        import cosell.mapping

        default = Path(cosell.mapping.__file__).with_name("default-mapping.yaml")
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(
            default.read_text().replace("Opportunity.Description", "Opportunity.Partner_Notes__c")
        )
        text += f'\n[sync]\nmapping_file = "{mapping}"\n'
        expected = "the mapping does not fit the Salesforce org"
    bad = tmp_path / "cosell.toml"
    bad.write_text(text)

    result = _cosell("sync", "--config", str(bad))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing was synced" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert _links_state(settings_file) == before  # no link, audit entry or cursor changed
    assert api_writes(sandboxes) == writes
