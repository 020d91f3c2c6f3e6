"""Persistence across a restart, a single-currency org, and the `cosell sandbox salesforce` CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from sf_sandbox_helpers import SF_BASE_URL, V, create, error_of, login, opportunity
from typer.testing import CliRunner

from cosell.cli import app as cli_app
from cosell.clock import ManualClock
from cosell_sandbox.salesforce import command
from cosell_sandbox.salesforce.app import SalesforceSandbox, SandboxOptions


def client_for(sandbox: SalesforceSandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=SF_BASE_URL)


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "sf.db"
    first = SalesforceSandbox(
        base_url=SF_BASE_URL, clock=ManualClock(), options=SandboxOptions(data_path=data)
    )
    async with client_for(first) as sf:
        token = await login(sf, first)
        sf.headers["Authorization"] = f"Bearer {token}"
        kept = await opportunity(sf, Referral_Identifier__c="ref-1", Amount=10)
        gone = await opportunity(sf)
        await sf.delete(f"{V}/sobjects/Opportunity/{gone}")
        stamp = (await sf.get(f"{V}/sobjects/Opportunity/{kept}")).json()["SystemModstamp"]
        replay = (await sf.get("/control/changes")).json()["latestReplayId"]
    info = first.info()
    first.close()

    second = SalesforceSandbox(
        base_url=SF_BASE_URL, clock=ManualClock(), options=SandboxOptions(data_path=data)
    )
    assert second.info() == info
    async with client_for(second) as sf:
        sf.headers["Authorization"] = f"Bearer {token}"  # the old session still works
        row = (await sf.get(f"{V}/sobjects/Opportunity/Referral_Identifier__c/ref-1")).json()
        assert row["Id"] == kept
        assert row["Amount"] == 10.0
        item = await error_of(await sf.get(f"{V}/sobjects/Opportunity/{gone}"), 404)
        assert item["errorCode"] == "ENTITY_IS_DELETED"
        duplicate = await sf.post(
            f"{V}/sobjects/Opportunity/",
            json={
                "Name": "x",
                "StageName": "Prospecting",
                "CloseDate": "2026-01-01",
                "Referral_Identifier__c": "ref-1",
            },
        )
        assert (await error_of(duplicate, 400))["errorCode"] == "DUPLICATE_VALUE"
        newer = await opportunity(sf)
        assert newer not in (kept, gone)
        assert (await sf.get(f"{V}/sobjects/Opportunity/{newer}")).json()["SystemModstamp"] > stamp
        events = (await sf.get("/control/changes")).json()["events"]
        assert events[-1]["replayId"] > replay
        assert len([e for e in events if e["replayId"] <= replay]) == 3
        q = await sf.get(f"{V}/queryAll/", params={"q": "SELECT Id FROM Opportunity"})
        assert q.json()["totalSize"] == 3
    second.close()


async def test_a_corrupt_data_file_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "bad.db"
    data.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="delete it or pass another --data"):
        SalesforceSandbox(base_url=SF_BASE_URL, options=SandboxOptions(data_path=data))


async def test_single_currency_org_has_no_currency_field(
    sf_clock: ManualClock, sf_key_dir: Path
) -> None:
    sandbox = SalesforceSandbox(
        base_url=SF_BASE_URL,
        clock=sf_clock,
        options=SandboxOptions(seed=1, key_dir=sf_key_dir, multi_currency=False),
    )
    async with client_for(sandbox) as sf:
        sf.headers["Authorization"] = f"Bearer {await login(sf, sandbox)}"
        response = await sf.post(
            f"{V}/sobjects/Opportunity/",
            json={
                "Name": "x",
                "StageName": "Prospecting",
                "CloseDate": "2026-01-01",
                "CurrencyIsoCode": "EUR",
            },
        )
        assert (await error_of(response, 400))["errorCode"] == "INVALID_FIELD"
        account = await create(sf, "Account", {"Name": "A"})
        assert "CurrencyIsoCode" not in (await sf.get(f"{V}/sobjects/Account/{account}")).json()


async def test_multi_currency_validates_the_code(sf: httpx.AsyncClient) -> None:
    response = await sf.post(f"{V}/sobjects/Account/", json={"Name": "A", "CurrencyIsoCode": "XXX"})
    assert (await error_of(response, 400))["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    account = await create(sf, "Account", {"Name": "A", "CurrencyIsoCode": "EUR"})
    assert (await sf.get(f"{V}/sobjects/Account/{account}")).json()["CurrencyIsoCode"] == "EUR"


runner = CliRunner()
EXAMPLE_PROFILE = str(Path(__file__).resolve().parents[2] / "examples" / "customised-org.yaml")


def test_cli_prints_one_json_line_and_serves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(command, "run_forever", lambda apps, **_: served.append(apps))
    result = runner.invoke(
        cli_app,
        [
            "sandbox",
            "salesforce",
            "--port",
            "0",
            "--json",
            "--seed",
            "5",
            "--data",
            str(tmp_path / "s.db"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert info["sandbox"] == "salesforce"
    assert info["instance_url"].startswith("http://127.0.0.1:")
    assert info["control_api"] == info["base_url"] + "/control"
    assert Path(info["private_key_path"]).exists()
    assert len(served) == 1
    ((_app, listener),) = served[0]
    assert listener.base_url == info["base_url"]
    listener.sock.close()


def test_cli_refuses_a_taken_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "run_forever", lambda apps, **_: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(cli_app, ["sandbox", "salesforce", "--port", str(port)])
    assert result.exit_code == 2
    assert "pick another --port" in result.output


def test_cli_refuses_bad_fault_fractions() -> None:
    result = runner.invoke(cli_app, ["sandbox", "salesforce", "--error-503", "1.5"])
    assert result.exit_code == 2
    assert "between 0 and 1" in result.output


def test_cli_without_json_adds_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    served: list[Any] = []
    monkeypatch.setattr(command, "run_forever", lambda apps, **_: served.append(apps))
    data = str(tmp_path / "s.db")
    result = runner.invoke(
        cli_app, ["sandbox", "salesforce", "--port", "0", "--single-currency", "--data", data]
    )
    assert result.exit_code == 0, result.output
    first, *hint = result.stdout.strip().splitlines()
    assert json.loads(first)["sandbox"] == "salesforce"
    assert any("Control API" in line for line in hint)
    for apps in served:
        for _, listener in apps:
            listener.sock.close()


def test_close_removes_a_temporary_key_directory() -> None:
    from pathlib import Path

    from cosell_sandbox.salesforce.app import SalesforceSandbox

    sandbox = SalesforceSandbox(base_url="http://sf.sandbox.test")
    key_dir = Path(sandbox.info()["private_key_path"]).parent
    assert key_dir.is_dir()
    sandbox.close()
    assert not key_dir.exists()


async def test_cli_serves_a_customised_org(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Any] = []
    monkeypatch.setattr(command, "run_forever", lambda apps, **_: served.append(apps))
    result = runner.invoke(
        cli_app,
        ["sandbox", "salesforce", "--port", "0", "--json", "--org-profile", EXAMPLE_PROFILE],
    )
    assert result.exit_code == 0, result.output
    ((app, listener),) = served[0]
    listener.sock.close()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sf.test") as client:
        response = await client.post(
            "/control/records/Opportunity",
            json={"Name": "D", "StageName": "Prospecting", "CloseDate": "2026-12-31"},
        )
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_cli_refuses_a_bad_org_profile(tmp_path: Path) -> None:
    profile = tmp_path / "org.yaml"
    profile.write_text("required_fields: [{object: Opportunity, field: Region}]\n", "utf-8")
    result = runner.invoke(
        cli_app, ["sandbox", "salesforce", "--port", "0", "--org-profile", str(profile)]
    )
    assert result.exit_code == 2
    assert "custom field names end in __c" in result.output
    missing = runner.invoke(
        cli_app, ["sandbox", "salesforce", "--org-profile", str(tmp_path / "none.yaml")]
    )
    assert missing.exit_code == 2
    assert "cannot read the org profile" in missing.output
