"""`cosell mapping check` against the Salesforce sandbox in process (httpx.ASGITransport)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cosell.clock import ManualClock
from cosell.commands.mapping import mapping_app, run_check
from cosell.mapping.loader import default_mapping_path, default_mapping_text

sys.path.insert(0, str(Path(__file__).parents[2] / "contract" / "salesforce"))
from sf_harness import BASE, make_sandbox


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sf-keys")  # one JWT key pair for the module


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock, key_dir: Path) -> Any:
    return make_sandbox(clock, key_dir)


@pytest.fixture
async def http(sandbox: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of `path` that holds `text`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def write_settings(tmp_path: Path, info: dict[str, Any], **overrides: str) -> Path:
    salesforce = {
        "auth": "jwt",
        "consumer_key": info["consumer_key"],
        "username": info["username"],
        "private_key_file": info["private_key_path"],
        "login_url": info["login_url"],
        "api_version": info["api_version"],
    } | overrides
    lines = ["[salesforce]", *(f'{key} = "{value}"' for key, value in salesforce.items())]
    path = tmp_path / "cosell.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def run(
    tmp_path: Path,
    sandbox: Any,
    http: httpx.AsyncClient,
    clock: ManualClock,
    mapping: Path | None = None,
    **overrides: str,
) -> tuple[int, list[str]]:
    lines: list[str] = []
    config = write_settings(tmp_path, sandbox.info(), **overrides)
    status = await run_check(mapping, config, echo=lines.append, http=http, clock=clock)
    return status, lines


async def test_the_default_mapping_checks_clean_against_the_sandbox_org(
    tmp_path: Path, sandbox: Any, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    status, lines = await run(tmp_path, sandbox, http, clock)
    assert status == 0
    assert lines == [
        f"OK: {default_mapping_path()}: 20 fields fit the org at http://sf.sandbox.test "
        "(Account, Microsoft_Solution__c, Opportunity, OpportunityContactRole, "
        "OpportunityTeamMember) and the Partner Center referral model"
    ]


async def test_a_mapping_that_does_not_fit_the_org_prints_every_problem(
    tmp_path: Path, sandbox: Any, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        default_mapping_text()
        .replace("on_hold_stage: Prospecting", "on_hold_stage: On Hold")
        .replace("Opportunity.Description", "Opportunity.Notes__c"),
        encoding="utf-8",
    )
    status, lines = await run(tmp_path, sandbox, http, clock, mapping)
    assert status == 1
    notes, on_hold = line_of(mapping, "Notes__c"), line_of(mapping, "on_hold_stage: On Hold")
    assert lines[0].startswith(f"{mapping}:{notes}:17: Opportunity has no field 'Notes__c'")
    assert lines[1].startswith(f"{mapping}:{on_hold}:18: 'On Hold' is not an active picklist")
    assert lines[2] == f"2 problems in {mapping} against http://sf.sandbox.test"


async def test_a_broken_mapping_file_is_reported_before_any_call(
    tmp_path: Path, sandbox: Any, clock: ManualClock
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(default_mapping_text().replace("owner: salesforce", "owner: me", 1))
    failing = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    status, lines = await run(tmp_path, sandbox, failing, clock, mapping)
    assert status == 1
    assert lines == [
        f"{mapping}:{line_of(mapping, 'owner: me')}:12: fields[0].owner: Input should be "
        "'partner_center' or 'salesforce'",
        "1 problem in the mapping file; nothing was checked against the org",
    ]


async def test_the_settings_mapping_file_is_used_when_no_mapping_is_given(
    tmp_path: Path, sandbox: Any, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    mapping = tmp_path / "custom.yaml"
    mapping.write_text(default_mapping_text(), encoding="utf-8")
    config = write_settings(tmp_path, sandbox.info())
    config.write_text(config.read_text() + '[sync]\nmapping_file = "custom.yaml"\n')
    lines: list[str] = []
    status = await run_check(None, config, echo=lines.append, http=http, clock=clock)
    assert status == 0
    assert lines[0].startswith(f"OK: {mapping}: 20 fields")


async def test_refused_credentials_are_reported(
    tmp_path: Path, sandbox: Any, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    status, lines = await run(tmp_path, sandbox, http, clock, consumer_key="not-the-key")
    assert status == 1
    assert len(lines) == 1
    assert lines[0].startswith("Error: cannot read the org's schema from Salesforce: ")
    assert sandbox.info()["consumer_secret"] not in lines[0]


async def test_missing_credentials_are_named(
    tmp_path: Path, sandbox: Any, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    status, lines = await run(tmp_path, sandbox, http, clock, auth="client_credentials")
    assert status == 1
    assert lines == [
        "Error: [salesforce] auth = 'client_credentials' needs salesforce.consumer_secret: set "
        "them in cosell.toml or as COSELL_SALESFORCE__<KEY> environment variables"
    ]


def test_the_cli_command_reports_mapping_problems_and_exits_1(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("version: 2\n", encoding="utf-8")
    config = tmp_path / "cosell.toml"
    config.write_text("", encoding="utf-8")
    result = CliRunner().invoke(
        mapping_app, ["check", "--mapping", str(mapping), "--config", str(config)]
    )
    assert result.exit_code == 1
    assert f"{mapping}:1:10: version: Input should be 1" in result.output
    assert f"{mapping}:1:1: stages: required, but missing" in result.output


def test_the_cli_command_reports_bad_settings(tmp_path: Path) -> None:
    result = CliRunner().invoke(mapping_app, ["check", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1
    assert "missing.toml: no such settings file" in result.output


async def test_with_lead_sync_the_lead_section_is_checked_too(
    tmp_path: Path, sandbox: Any, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    config = write_settings(tmp_path, sandbox.info())
    config.write_text(config.read_text(encoding="utf-8") + "[sync]\nlead_sync = true\n", "utf-8")
    lines: list[str] = []
    status = await run_check(None, config, echo=lines.append, http=http, clock=clock)
    assert status == 0, lines
    assert lines == [
        f"OK: {default_mapping_path()}: 20 fields and 12 lead fields fit the org at "
        "http://sf.sandbox.test (Account, Lead, Microsoft_Solution__c, Opportunity, "
        "OpportunityContactRole, OpportunityTeamMember) and the Partner Center referral model"
    ]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        default_mapping_text().replace("accepted: Working - Contacted", "accepted: Accepted"),
        encoding="utf-8",
    )
    lines.clear()
    status = await run_check(mapping, config, echo=lines.append, http=http, clock=clock)
    assert status == 1
    assert f"{mapping}:{line_of(mapping, 'accepted: Accepted')}:" in lines[0]
    assert "'Accepted' is not an active picklist value of Lead.Status" in lines[0]


async def test_the_deal_type_and_fy26_picklists_are_checked_against_the_org(
    tmp_path: Path, sandbox: Any, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        default_mapping_text()
        .replace("Co-sell: Co-sell", "Co-sell: Co-selling")
        .replace("Security: Security", "Security: Modern Security"),
        encoding="utf-8",
    )
    status, lines = await run(tmp_path, sandbox, http, clock, mapping=mapping)
    assert status == 1
    problems = "\n".join(lines)
    assert "Co-selling" in problems
    assert "Modern Security" in problems
