"""The change log, the control API and injected faults, over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sf_sandbox_helpers import SF_BASE_URL, V, error_of, login, opportunity

from cosell.clock import ManualClock
from cosell_sandbox.salesforce.app import ApiFaults, SalesforceSandbox, SandboxOptions


async def changes(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/control/changes", params=params)
    assert response.status_code == 200, response.text
    events = response.json()["events"]
    assert isinstance(events, list)
    return events


def header(event: dict[str, Any]) -> dict[str, Any]:
    value = event["payload"]["ChangeEventHeader"]
    assert isinstance(value, dict)
    return value


async def test_change_events_follow_cdc(
    sf: httpx.AsyncClient, sf_client: httpx.AsyncClient, sandbox: SalesforceSandbox
) -> None:
    calls = {"Sforce-Call-Options": "client=cosell, defaultNamespace=x"}
    created = await sf.post(
        f"{V}/sobjects/Opportunity/",
        json={
            "Name": "Deal",
            "StageName": "Prospecting",
            "CloseDate": "2026-12-31",
            "NextStep": "x",
        },
        headers=calls,
    )
    opp = created.json()["id"]
    await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json={"NextStep": None, "Amount": 5})
    await sf.delete(f"{V}/sobjects/Opportunity/{opp}", headers=calls)
    events = await changes(sf_client)
    create, update, delete = events[-3:]
    assert create["replayId"] < update["replayId"] < delete["replayId"]
    h = header(create)
    assert h["entityName"] == "Opportunity"
    assert h["recordIds"] == [opp]
    assert h["changeType"] == "CREATE"
    assert h["changeOrigin"] == "com/salesforce/api/rest/59.0;client=cosell"
    assert h["commitUser"] == sandbox.integration_user_id
    assert create["payload"]["Name"] == "Deal"
    assert create["payload"]["Probability"] == 10.0
    assert "Id" not in create["payload"]
    assert "Amount" not in create["payload"]  # null fields are left out of a CREATE

    h = header(update)
    assert h["changeType"] == "UPDATE"
    assert h["changeOrigin"] == "com/salesforce/api/rest/59.0"
    assert set(h["changedFields"]) >= {"NextStep", "Amount", "LastModifiedDate"}
    assert "Name" not in h["changedFields"]
    assert h["nulledFields"] == ["NextStep"]
    assert update["payload"]["Amount"] == 5.0
    assert "NextStep" not in update["payload"]
    assert h["transactionKey"] != header(create)["transactionKey"]
    assert h["commitNumber"] > header(create)["commitNumber"]

    h = header(delete)
    assert h["changeType"] == "DELETE"
    assert h["changedFields"] == []
    assert set(delete["payload"]) == {"ChangeEventHeader"}


async def test_failed_writes_leave_no_events(
    sf: httpx.AsyncClient, sf_client: httpx.AsyncClient
) -> None:
    before = await changes(sf_client)
    await sf.post(f"{V}/sobjects/Opportunity/", json={"Name": "no stage"})
    assert await changes(sf_client) == before


async def test_reading_from_a_replay_id_and_retention(
    sf: httpx.AsyncClient, sf_client: httpx.AsyncClient, sf_clock: ManualClock
) -> None:
    first = await opportunity(sf, Name="first")
    all_events = await changes(sf_client)
    mark = all_events[-1]["replayId"]
    second = await opportunity(sf, Name="second")
    later = await changes(sf_client, after=mark)
    assert [header(e)["recordIds"] for e in later] == [[second]]
    assert await changes(sf_client, after=mark, limit=1) == later
    assert await changes(sf_client, after=mark, entity="account") == []
    assert await changes(sf_client, after=mark, entity="Account,opportunity") == later
    sf_clock.advance(73 * 3600)
    await sf_client.post(
        "/control/records/Opportunity",
        json={"Name": "x", "StageName": "Prospecting", "CloseDate": "2026-01-01"},
    )
    kept = await changes(sf_client)
    assert len(kept) == 1
    assert first not in header(kept[0])["recordIds"]
    expired = await sf_client.get("/control/changes", params={"after": mark})
    item = await error_of(expired, 400)
    assert item["errorCode"] == "REPLAY_ID_EXPIRED"
    assert "72-hour retention" in item["message"]
    bad = await sf_client.get("/control/changes", params={"after": "abc"})
    assert bad.status_code == 400


async def test_control_writes_as_the_seller(
    sf: httpx.AsyncClient, sf_client: httpx.AsyncClient, sandbox: SalesforceSandbox
) -> None:
    opp = await opportunity(sf)
    response = await sf_client.patch(
        f"/control/records/Opportunity/{opp}", json={"StageName": "Closed Won"}
    )
    assert response.status_code == 204
    row = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert row["LastModifiedById"] == sandbox.seller_user_id
    assert row["CreatedById"] == sandbox.integration_user_id
    assert row["IsWon"] is True
    h = header((await changes(sf_client))[-1])
    assert h["commitUser"] == sandbox.seller_user_id
    assert h["changeOrigin"] == ""

    created = await sf_client.post(
        "/control/records/Account", params={"client": "crm-ui"}, json={"Name": "Seller's"}
    )
    assert created.status_code == 201
    account = created.json()["id"]
    row = (await sf.get(f"{V}/sobjects/Account/{account}")).json()
    assert row["OwnerId"] == sandbox.seller_user_id
    h = header((await changes(sf_client))[-1])
    assert h["changeOrigin"].endswith(";client=crm-ui")

    invalid = await sf_client.post("/control/records/Account", json={"Nope": 1})
    assert (await error_of(invalid, 400))["errorCode"] == "INVALID_FIELD"
    as_bad = await sf_client.post(
        "/control/records/Account", params={"as": "bob"}, json={"Name": "x"}
    )
    assert as_bad.status_code == 400

    assert (await sf_client.delete(f"/control/records/Account/{account}")).status_code == 204
    read = (await sf_client.get(f"/control/records/Account/{account}")).json()
    assert read["IsDeleted"] is True
    undelete = await sf_client.post(f"/control/records/Account/{account}/undelete")
    assert undelete.status_code == 204
    assert (await sf.get(f"{V}/sobjects/Account/{account}")).status_code == 200
    assert header((await changes(sf_client))[-1])["changeType"] == "UNDELETE"
    users = (await sf_client.get("/control/users")).json()
    assert {u["id"] for u in users} == {sandbox.seller_user_id, sandbox.integration_user_id}


async def test_control_sessions_clock_info_stats_reset(
    sf: httpx.AsyncClient,
    sf_client: httpx.AsyncClient,
    sf_clock: ManualClock,
    sandbox: SalesforceSandbox,
) -> None:
    assert (await sf.get(f"{V}/limits/")).status_code == 200
    assert (await sf_client.post("/control/sessions/expire")).status_code == 204
    assert (await sf.get(f"{V}/limits/")).status_code == 401

    before = sf_clock.now()
    moved = await sf_client.post("/control/clock/advance", json={"seconds": 90})
    assert moved.status_code == 200
    assert (sf_clock.now() - before).total_seconds() == 90
    assert (await sf_client.post("/control/clock/advance", json={"seconds": -1})).status_code == 400

    info = (await sf_client.get("/control/info")).json()
    assert info == sandbox.info()
    assert info["control_api"] == f"{SF_BASE_URL}/control"
    assert info["org_id"].startswith("00D")
    assert (await sf_client.get("/control")).json()["routes"]

    stats = (await sf_client.get("/control/stats")).json()
    limits = [c for c in stats["calls"] if c["route"] == "/services/data/vXX.X/limits"]
    assert {(c["status"], c["count"]) for c in limits} == {(200, 1), (401, 1)}

    await sf_client.post("/control/records/Account", json={"Name": "x"})
    assert (await sf_client.post("/control/reset")).status_code == 204
    assert await changes(sf_client) == []
    assert sandbox.store.rows("Account", include_deleted=True) == []
    assert len(list(sandbox.store.rows("User", include_deleted=False))) == 2


async def test_faults_are_validated(sf_client: httpx.AsyncClient) -> None:
    assert (await sf_client.get("/control/faults")).json()["error_503_fraction"] == 0.0
    bad = await sf_client.put("/control/faults", json={"error_503_fraction": 2})
    assert bad.status_code == 400
    unknown = await sf_client.put("/control/faults", json={"chaos": 1})
    assert "unknown fault" in (await error_of(unknown, 400))["message"]
    ok = await sf_client.put("/control/faults", json={"latency_seconds": 0.1})
    assert ok.json()["latency_seconds"] == 0.1
    with pytest.raises(ValueError, match="between 0 and 1"):
        ApiFaults(lock_row_fraction=1.5).validate()


@pytest.mark.parametrize(
    ("fault", "method", "status", "code"),
    [
        ("error_503_fraction", "GET", 503, "SERVER_UNAVAILABLE"),
        ("request_limit_fraction", "GET", 403, "REQUEST_LIMIT_EXCEEDED"),
        ("lock_row_fraction", "PATCH", 400, "UNABLE_TO_LOCK_ROW"),
        ("expire_sessions_fraction", "GET", 401, "INVALID_SESSION_ID"),
    ],
)
async def test_each_fault(
    sf: httpx.AsyncClient,
    sf_client: httpx.AsyncClient,
    fault: str,
    method: str,
    status: int,
    code: str,
) -> None:
    opp = await opportunity(sf)
    await sf_client.put("/control/faults", json={fault: 1.0})
    response = await sf.request(method, f"{V}/sobjects/Opportunity/{opp}", json={"Amount": 1})
    assert (await error_of(response, status))["errorCode"] == code
    assert "Sforce-Limit-Info" in response.headers


async def test_lock_row_only_hits_writes(
    sf: httpx.AsyncClient, sf_client: httpx.AsyncClient
) -> None:
    opp = await opportunity(sf)
    await sf_client.put("/control/faults", json={"lock_row_fraction": 1.0})
    assert (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).status_code == 200
    assert (await sf.get("/services/data/")).status_code == 200  # faults only on versioned data


async def test_latency_waits_on_the_sandbox_clock(
    sf: httpx.AsyncClient, sf_client: httpx.AsyncClient, sf_clock: ManualClock
) -> None:
    await sf_client.put("/control/faults", json={"latency_seconds": 0.25})
    await sf.get(f"{V}/limits/")
    await sf.get(f"{V}/limits/")
    assert sf_clock.sleeps == [0.25, 0.25]


async def statuses(seed: int, key_dir: Path) -> list[int]:
    sandbox = SalesforceSandbox(
        base_url=SF_BASE_URL,
        clock=ManualClock(),
        options=SandboxOptions(
            seed=seed, key_dir=key_dir, faults=ApiFaults(error_503_fraction=0.5)
        ),
    )
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=SF_BASE_URL) as client:
        client.headers["Authorization"] = f"Bearer {await login(client, sandbox)}"
        return [(await client.get(f"{V}/limits/")).status_code for _ in range(20)]


async def test_faults_are_reproducible_with_a_seed(sf_key_dir: Path) -> None:
    first = await statuses(11, sf_key_dir)
    assert first == await statuses(11, sf_key_dir)
    assert set(first) == {200, 503}
    assert first != await statuses(12, sf_key_dir)


async def soql(sf: httpx.AsyncClient, query: str) -> list[dict[str, Any]]:
    response = await sf.get(f"{V}/query", params={"q": query})
    assert response.status_code == 200, response.text
    records = response.json()["records"]
    assert isinstance(records, list)
    return records


async def test_object_permissions_follow_view_all_records(
    sf: httpx.AsyncClient, sf_client: httpx.AsyncClient, sandbox: SalesforceSandbox
) -> None:
    user = sandbox.integration_user_id
    assigned = await soql(
        sf,
        "SELECT PermissionSetId, PermissionSet.Name, PermissionSet.IsOwnedByProfile "
        f"FROM PermissionSetAssignment WHERE AssigneeId = '{user}'",
    )
    names = {row["PermissionSet"]["Name"] for row in assigned}
    assert {"Cosell_Integration", "Cosell_Change_Events"} <= names
    assert any(row["PermissionSet"]["IsOwnedByProfile"] for row in assigned)  # the profile's
    ids = ", ".join(f"'{row['PermissionSetId']}'" for row in assigned)
    view_all = (
        "SELECT SobjectType FROM ObjectPermissions WHERE PermissionsViewAllRecords = true "
        f"AND ParentId IN ({ids}) ORDER BY SobjectType"
    )
    granted = [row["SobjectType"] for row in await soql(sf, view_all)]
    assert granted == ["Lead", "Microsoft_Solution__c", "Opportunity"]
    assert not await soql(
        sf, f"SELECT Id FROM PermissionSet WHERE PermissionsViewAllData = true AND Id IN ({ids})"
    )

    taken = await sf_client.put("/control/cdc", json={"view_all_records": {"Opportunity": False}})
    assert taken.status_code == 200, taken.text
    assert [row["SobjectType"] for row in await soql(sf, view_all)] == [
        "Lead",
        "Microsoft_Solution__c",
    ]
    await sf_client.put("/control/cdc", json={"permission": False})
    assert await soql(sf, view_all) == []
    # Setup objects are read-only over the API, as in Salesforce.
    refused = await sf.post(f"{V}/sobjects/ObjectPermissions/", json={"SobjectType": "Lead"})
    assert refused.status_code == 400, refused.text
