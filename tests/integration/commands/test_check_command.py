"""`cosell check` against both sandboxes served on loopback: all green, then broken one way at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from commands_kit import Served, write_settings
from typer.testing import CliRunner

from cosell.cli import app
from cosell.mapping.loader import default_mapping_text

runner = CliRunner()
SKIP = "\u2013"  # the en dash that marks a check not run


def _check(config: Path, *, migrate: bool = True) -> tuple[int, list[str]]:
    """Run `cosell check`; by default on a migrated store (the store's own test says no)."""
    if migrate:
        upgraded = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
        assert upgraded.exit_code == 0, upgraded.output
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert "token_acquired" not in result.output  # the clients' sign-in logs stay out of it
    lines = [line for line in result.output.splitlines() if line[:1] in ("✓", "✗", SKIP)]
    return result.exit_code, lines


def _marked(lines: list[str], mark: str, area: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{mark} {area}:")]


@pytest.fixture
def registered(served: Served, receiver: str) -> str:
    """The webhook registered at the receiver's URL with the default events."""
    served.delete_registration()
    result = runner.invoke(
        app, ["webhooks", "register", "--url", receiver, "--config", str(served.config)]
    )
    assert result.exit_code == 0, result.output
    return receiver


def _settings(served: Served, public_url: str | None, **changes: dict[str, Any]) -> dict[str, Any]:
    data = served.settings_data()
    if public_url:
        data.setdefault("server", {})["public_url"] = public_url
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    return data


def test_all_green_against_the_sandboxes(served: Served, registered: str, tmp_path: Path) -> None:
    config = write_settings(tmp_path / "cosell.toml", _settings(served, registered))
    status, lines = _check(config)
    assert status == 0, "\n".join(lines)
    assert not [line for line in lines if line.startswith("✗")]
    for area in ("Settings", "Store", "Partner Center", "Salesforce", "Mapping", "Webhooks"):
        assert _marked(lines, "✓", area), f"{area}: {lines}"
    (store,) = _marked(lines, "✓", "Store")
    assert "reachable, migrated and writable" in store
    assert any("Referrals API answers" in line for line in lines)
    assert any("daily API requests left" in line for line in lines)
    assert any("schema:" in line and "Microsoft_Solution__c" in line for line in lines)
    # Token health: each connection's grant (the sandbox settings give the Partner Center
    # refresh token directly, so nothing is known of its sign-in) and Salesforce's JWT.
    assert [line.split(": ", 1)[1] for line in _marked(lines, "✓", "Sign-in")] == [
        "Partner Center: refresh_token",
        "Salesforce: jwt",
    ]
    # The Salesforce sandbox answers PermissionSetAssignment (PermissionSet.Name).
    (permission,) = _marked(lines, "✓", "Permission set")
    assert "Cosell_Integration is assigned to" in permission


def test_a_bad_secret_fails_partner_center_and_the_rest_still_runs(
    served: Served, registered: str, tmp_path: Path
) -> None:
    data = _settings(served, registered, partner_center={"client_secret": "not-the-secret-42"})
    config = write_settings(tmp_path / "cosell.toml", data)
    status, lines = _check(config)
    assert status == 1
    (failure,) = _marked(lines, "✗", "Partner Center")
    assert "client secret was rejected" in failure
    assert "client_secret" in failure.split(" — ")[1]  # what to do
    assert "not-the-secret-42" not in "\n".join(lines)
    assert len(_marked(lines, "✓", "Salesforce")) == 3  # sign-in, limits, schema
    assert _marked(lines, "✓", "Mapping")
    assert _marked(lines, "✗", "Webhooks")  # the Webhooks API takes the same app secret


def test_app_only_tokens_for_referrals_are_refused_with_the_fix(
    served: Served, registered: str, tmp_path: Path
) -> None:
    data = _settings(served, registered, partner_center={"auth": "client_credentials"})
    status, lines = _check(write_settings(tmp_path / "cosell.toml", data))
    assert status == 1
    assert _marked(lines, "✓", "Partner Center")  # the token itself is granted
    (refused,) = _marked(lines, "✗", "Partner Center")
    assert "App+User tokens only" in refused
    assert "auth = 'refresh_token'" in refused
    assert _marked(lines, "✓", "Webhooks")


def test_a_mapping_with_a_missing_field(served: Served, registered: str, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    text = default_mapping_text()
    assert "Opportunity.Microsoft_CRM_Identifier__c" in text
    mapping.write_text(
        text.replace("Opportunity.Microsoft_CRM_Identifier__c", "Opportunity.MSX_Id__c"),
        encoding="utf-8",
    )
    data = _settings(served, registered, sync={"mapping_file": str(mapping)})
    status, lines = _check(write_settings(tmp_path / "cosell.toml", data))
    assert status == 1
    (schema,) = _marked(lines, "✗", "Salesforce")
    assert "field Opportunity.MSX_Id__c missing" in schema
    assert "cosell salesforce metadata --out" in schema
    assert "sf project deploy start" in schema
    (problems,) = _marked(lines, "✗", "Mapping")
    assert "mapping.yaml" in problems
    assert _marked(lines, "✓", "Partner Center")
    assert _marked(lines, "✓", "Webhooks")


def test_no_webhook_registration(served: Served, receiver: str, tmp_path: Path) -> None:
    served.delete_registration()
    config = write_settings(tmp_path / "cosell.toml", _settings(served, receiver))
    status, lines = _check(config)
    assert status == 1
    (webhooks,) = _marked(lines, "✗", "Webhooks")
    assert "no webhook registration" in webhooks
    assert f"cosell webhooks register --url {receiver}" in webhooks
    assert [line for line in lines if line.startswith("✗")] == [webhooks]


def test_a_registration_elsewhere_or_without_the_events(served: Served, tmp_path: Path) -> None:
    served.delete_registration()
    runner.invoke(
        app,
        [
            "webhooks",
            "register",
            "--url",
            "https://old.example.com/hooks",
            "--events",
            "referral-created",
            "--config",
            str(served.config),
        ],
    )
    public = "https://cosell.example.com/webhooks/partner-center"
    config = write_settings(tmp_path / "cosell.toml", _settings(served, public))
    status, lines = _check(config)
    assert status == 1
    failures = _marked(lines, "✗", "Webhooks")
    assert any("lacks referral-updated" in line for line in failures)
    assert any("not at [server] public_url" in line and "--overwrite" in line for line in failures)


def test_change_events_enabled_for_each_object_and_the_stream_opens(
    served: Served, registered: str, tmp_path: Path
) -> None:
    config = write_settings(tmp_path / "cosell.toml", _settings(served, registered))
    status, lines = _check(config)
    assert status == 0, "\n".join(lines)
    enabled, view_all, opens = _marked(lines, "✓", "Change events")
    assert "Opportunity, OpportunityContactRole, Microsoft_Solution__c" in enabled
    assert "may receive the events of Opportunity, Microsoft_Solution__c" in view_all
    assert "by its permission sets" in view_all  # the SOQL on ObjectPermissions answered
    (contact_roles,) = _marked(lines, SKIP, "Change events")
    assert "OpportunityContactRole not checked" in contact_roles
    assert "/data/ChangeEvents opens" in opens


def test_a_user_without_view_all_records_is_told_to_assign_cosell_change_events(
    served: Served, registered: str, tmp_path: Path
) -> None:
    # The stream still opens (Salesforce filters /data/ChangeEvents on delivery): the danger
    # is a live-looking stream that never carries an Opportunity change.
    cdc = f"{served.sf['control_api']}/cdc"
    denied = {"Opportunity": False, "Microsoft_Solution__c": False}
    httpx.put(cdc, json={"view_all_records": denied}, timeout=10).raise_for_status()
    try:
        config = write_settings(tmp_path / "cosell.toml", _settings(served, registered))
        result = runner.invoke(app, ["check", "--config", str(config)])
    finally:
        granted = dict.fromkeys(denied, True)
        httpx.put(cdc, json={"view_all_records": granted}, timeout=10).raise_for_status()
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line[:1] in ("✓", "✗", SKIP)]
    (failed,) = _marked(lines, "✗", "Change events")
    assert "lacks View All Records on Opportunity, Microsoft_Solution__c" in failed
    assert "by its permission sets" in failed  # ObjectPermissions follows the sandbox setting
    assert "OpportunityContactRole" not in failed
    flat = " ".join(result.output.split())
    assert "assign the Cosell_Change_Events permission set to the integration user" in flat
    assert any("/data/ChangeEvents opens" in line for line in _marked(lines, "✓", "Change events"))


def test_an_object_without_cdc_is_named_with_the_fix(
    served: Served, registered: str, tmp_path: Path
) -> None:
    cdc = f"{served.sf['control_api']}/cdc"
    httpx.put(cdc, json={"entities": ["Opportunity", "Lead"]}, timeout=10).raise_for_status()
    try:
        config = write_settings(tmp_path / "cosell.toml", _settings(served, registered))
        status, lines = _check(config)
    finally:
        everything = ["Opportunity", "Lead", "OpportunityContactRole", "Microsoft_Solution__c"]
        httpx.put(cdc, json={"entities": everything}, timeout=10).raise_for_status()
    assert status == 1
    failed = _marked(lines, "✗", "Change events")
    assert [line.split(":", 2)[1].strip() for line in failed] == [
        "OpportunityContactRole",
        "Microsoft_Solution__c",
    ]
    assert "Setup > Integrations > Change Data Capture" in "\n".join(lines)


def test_settings_that_do_not_load_skip_everything_else(tmp_path: Path) -> None:
    config = tmp_path / "cosell.toml"
    config.write_text('[salesforce]\nauth = "magic"\n', encoding="utf-8")
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 1
    assert "✗ Settings: invalid settings:" in result.output
    assert "salesforce.auth: must be one of" in result.output
    skipped = [line for line in result.output.splitlines() if line.startswith(SKIP)]
    assert len(skipped) == 7
    assert all("the settings do not load" in line for line in skipped)


def test_a_fresh_init_lists_the_keys_to_fill(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", "--dir", str(tmp_path)]).exit_code == 0
    status, lines = _check(tmp_path / "cosell.toml")
    assert status == 1
    assert _marked(lines, "✓", "Settings")
    missing = "\n".join(_marked(lines, "✗", "Settings"))
    assert "partner_center.tenant_id, partner_center.client_id" in missing
    assert "salesforce.consumer_key, salesforce.username, salesforce.private_key_file" in missing
    assert "COSELL_PARTNER_CENTER__TENANT_ID" in missing
    for area in ("Partner Center", "Salesforce", "Permission set", "Mapping", "Webhooks"):
        assert _marked(lines, SKIP, area), area
    assert len([line for line in lines if line.startswith("✗")]) == 2


def test_lead_sync_adds_the_lead_fields_to_the_schema_check(
    served: Served, registered: str, tmp_path: Path
) -> None:
    data = _settings(served, registered, sync={"lead_sync": True})
    status, lines = _check(write_settings(tmp_path / "cosell.toml", data))
    assert status == 0, "\n".join(lines)
    (schema,) = [line for line in _marked(lines, "✓", "Salesforce") if "schema:" in line]
    assert "Lead, Microsoft_Solution__c, Opportunity" in schema


def test_the_store_must_exist_be_migrated_and_take_writes(tmp_path: Path) -> None:
    config = tmp_path / "cosell.toml"
    config.write_text('[store]\nurl = "sqlite:///./cosell.db"\n', encoding="utf-8")
    _, lines = _check(config, migrate=False)
    (missing,) = _marked(lines, "✗", "Store")
    assert f"no SQLite store at {tmp_path / 'cosell.db'}" in missing
    assert "cosell db upgrade" in missing
    assert not (tmp_path / "cosell.db").exists()  # reported, not created
    (tmp_path / "cosell.db").write_bytes(b"")  # a file, but not a migrated store
    _, lines = _check(config, migrate=False)
    (unmigrated,) = _marked(lines, "✗", "Store")
    assert "cosell db upgrade" in unmigrated
    assert runner.invoke(app, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    _, lines = _check(config, migrate=False)
    assert _marked(lines, "✓", "Store")
    (tmp_path / "cosell.db").chmod(0o444)
    try:
        _, lines = _check(config, migrate=False)
    finally:
        (tmp_path / "cosell.db").chmod(0o644)
    if os.geteuid() != 0:  # root writes to a read-only file anyway
        (readonly,) = _marked(lines, "✗", "Store")
        assert "readonly" in readonly


def test_without_a_settings_file_check_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["check"])
    lines = [line for line in result.output.splitlines() if line[:1] in ("✓", "✗", SKIP)]
    assert not _marked(lines, "✓", "Settings")
    (said,) = _marked(lines, SKIP, "Settings")
    assert "no settings file: ./cosell.toml does not exist" in said
    assert "cosell init" in said


def test_a_bad_salesforce_consumer_secret_is_reported_as_one(
    served: Served, registered: str, tmp_path: Path
) -> None:
    changes = {"auth": "password", "consumer_secret": "not-the-secret-43"}
    config = write_settings(
        tmp_path / "cosell.toml", _settings(served, registered, salesforce=changes)
    )
    status, lines = _check(config)
    assert status == 1
    (failure,) = _marked(lines, "✗", "Salesforce")
    assert "consumer secret was rejected" in failure
    assert "consumer_secret" in failure
    assert "not-the-secret-43" not in "\n".join(lines)
    assert _marked(lines, "✓", "Partner Center")


@pytest.fixture
def customised_org(served: Served) -> Iterator[Path]:
    """The served Salesforce sandbox customised with the shipped example profile (then clean)."""
    import yaml

    example = Path(__file__).resolve().parents[3] / "sandbox" / "examples" / "customised-org.yaml"
    profile = yaml.safe_load(example.read_text(encoding="utf-8"))
    control = served.sf["control_api"]
    response = httpx.put(f"{control}/org-profile", json=profile, timeout=10)
    assert response.status_code == 204, response.text
    try:
        yield example
    finally:
        cleared = httpx.put(f"{control}/org-profile", json={}, timeout=10)
        assert cleared.status_code == 204, cleared.text


def test_a_customised_org_lists_each_hazard_with_the_fix(
    served: Served, registered: str, customised_org: Path, tmp_path: Path
) -> None:
    config = write_settings(tmp_path / "cosell.toml", _settings(served, registered))
    status, lines = _check(config)
    assert status == 1
    (hidden,) = _marked(lines, "✗", "Salesforce")
    assert "Opportunity.Referral_Visibility__c missing (or hidden" in hidden
    assert "field-level security" in hidden
    (mapping,) = _marked(lines, "✗", "Mapping")
    assert "5 problem(s)" in mapping
    output = runner.invoke(app, ["check", "--config", str(config)]).output
    text = " ".join(output.split())  # the problems are on the lines after the mark
    assert "Opportunity.Description is not createable by cosell's user" in text
    assert "Opportunity.Description is not updateable" in text
    assert "use direction: to_partner_center, or grant edit access" in text
    assert "Opportunity has no field 'Referral_Visibility__c'" in text
    assert "field-level security of cosell's user" in text
    assert "Opportunity.Region__c is required" in text
    assert "`defaults: {Opportunity.Region__c: <value>}`" in text
    assert "stage 'Qualification' is not in the sales process of record type Partner_Deal" in text
    assert "(Enterprise_Deal allows it)" in text
    assert _marked(lines, "✓", "Partner Center")


def test_mapping_check_against_a_customised_org_and_the_fixes(
    served: Served, customised_org: Path, tmp_path: Path
) -> None:
    text = default_mapping_text()
    fixed = (
        text.replace("salesforce: Opportunity.Description", "salesforce: Opportunity.NextStep")
        .replace("  active_stage: Qualification", "  active_stage: Needs Analysis")
        .replace(
            "\nfields:\n",
            "\nrecord_type: Partner_Deal\ndefaults:\n  Opportunity.Region__c: EMEA\nfields:\n",
            1,
        )
    )
    assert fixed.count("Opportunity.NextStep") == 1
    lines = fixed.splitlines()
    index = next(i for i, line in enumerate(lines) if "Opportunity.Referral_Visibility__c" in line)
    start = max(i for i in range(index) if lines[i].startswith("  - name:"))
    end = next(i for i in range(index, len(lines)) if lines[i].startswith("  - name:"))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("\n".join(lines[:start] + lines[end:]) + "\n", encoding="utf-8")
    result = runner.invoke(
        app, ["mapping", "check", "--mapping", str(mapping), "--config", str(served.config)]
    )
    assert result.exit_code == 0, result.output
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        mapping.read_text(encoding="utf-8").replace(
            "record_type: Partner_Deal", "record_type: Partner"
        ),
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["mapping", "check", "--mapping", str(wrong), "--config", str(served.config)]
    )
    assert result.exit_code == 1
    assert "no record type 'Partner'" in result.output
    assert "did you mean Partner_Deal" in result.output


async def test_an_org_that_hides_its_permission_sets_is_judged_by_its_channels() -> None:
    # No SOQL answer (here: no Salesforce session): the single-object channels that refused the
    # subscription (PERMISSION_DENIED, as Salesforce checks those at subscription) decide.
    from cosell.commands.check import Checklist, _Clients

    objects = ["Opportunity", "Lead", "OpportunityContactRole", "Microsoft_Solution__c"]
    checker = Checklist(None)
    await checker._view_all_records(_Clients(), objects, ["Lead", "OpportunityContactRole"])
    marks = [(line.mark, line.text) for line in checker.lines]
    assert marks[0][0] == "fail"
    assert "lacks View All Records on Lead (by its single-object channels)" in marks[0][1]
    assert "Cosell_Change_Events" in str(checker.lines[0].fix)
    assert marks[1][0] == "skip"
    assert "OpportunityContactRole not checked" in marks[1][1]

    granted = Checklist(None)
    await granted._view_all_records(_Clients(), objects, [])
    (line,) = granted.lines
    assert line.mark == "pass"
    assert "Opportunity, Lead, OpportunityContactRole, Microsoft_Solution__c" in line.text
