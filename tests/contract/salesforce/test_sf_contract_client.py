"""The Salesforce client against the Salesforce sandbox: every endpoint it uses, and its errors."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sf_harness import (
    BASE,
    control,
    edit_as_user,
    expire_sessions,
    flows,
    make_client,
    make_sandbox,
    schema_with_a_non_unique_external_id,
    set_faults,
)

from cosell.clock import ManualClock
from cosell.salesforce import errors as e
from cosell.salesforce.client import CompositeSubrequest, RetryPolicy, SalesforceClient
from cosell.salesforce.values import parse_datetime, soql_datetime, soql_in, soql_quote

OPPORTUNITY = {"Name": "Contoso migration", "StageName": "Prospecting", "CloseDate": "2026-06-30"}


def _opportunity(**fields: Any) -> dict[str, Any]:
    return {**OPPORTUNITY, **fields}


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flow", ["jwt", "client_credentials", "client_credentials_body", "refresh_token", "password"]
)
async def test_every_auth_flow_reaches_the_data_api(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock, flow: str
) -> None:
    client = make_client(http, flows(info, clock)[flow], clock)
    limits = await client.limits()
    assert limits["DailyApiRequests"]["Max"] > 0
    token = client.session.current
    assert token is not None
    assert token.instance_url == BASE
    assert token.org_id is not None
    assert token.org_id.startswith("00D")


@pytest.mark.parametrize(
    ("flow", "change", "says"),
    [
        ("client_credentials", {"consumer_secret": "wrong"}, "consumer secret was rejected"),
        ("client_credentials", {"consumer_key": "3MVG9unknown"}, "consumer key"),
        ("password", {"password": "wrong"}, "security token"),
        ("refresh_token", {"refresh_token": "5Aep861unknown"}, "run cosell connect salesforce"),
        ("jwt", {"username": "nobody@example.com"}, "JWT bearer flow"),
    ],
)
async def test_refused_credentials_are_terminal_and_say_what_to_check(
    http: httpx.AsyncClient,
    info: dict[str, str],
    clock: ManualClock,
    flow: str,
    change: dict[str, str],
    says: str,
) -> None:
    client = make_client(http, flows({**info, **change}, clock)[flow], clock)
    with pytest.raises(e.AuthenticationError, match=says) as raised:
        await client.limits()
    for secret in ("consumer_secret", "password", "security_token", "refresh_token"):
        assert info[secret] not in str(raised.value)


async def test_expired_sessions_are_refreshed_once(
    client: SalesforceClient, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    account = await client.create("Account", {"Name": "Contoso"})
    await expire_sessions(http)
    assert (await client.get("Account", account, ["Name"]))["Name"] == "Contoso"
    assert client.session.authentications == 2
    clock.advance(timedelta(hours=2, minutes=1).total_seconds())  # past the session lifetime
    await client.update("Account", account, {"Name": "Contoso Ltd"})
    assert client.session.authentications == 3


async def test_concurrent_callers_share_one_refresh_against_the_sandbox(
    client: SalesforceClient, http: httpx.AsyncClient
) -> None:
    account = await client.create("Account", {"Name": "Contoso"})
    await expire_sessions(http)
    rows = await asyncio.gather(*(client.get("Account", account, ["Name"]) for _ in range(6)))
    assert {r["Name"] for r in rows} == {"Contoso"}
    assert client.session.authentications == 2


# -- rows ---------------------------------------------------------------------------------------


async def test_crud_round_trip(client: SalesforceClient) -> None:
    account = await client.create("Account", {"Name": "Contoso"})
    opp = await client.create("Opportunity", _opportunity(AccountId=account, Amount=12000))
    assert opp.startswith("006")
    assert len(opp) == 18
    row = await client.get("Opportunity", opp)
    assert row["attributes"]["type"] == "Opportunity"
    assert row["Amount"] == 12000
    assert row["Probability"] == 10
    assert row["IsClosed"] is False
    created = parse_datetime(row["CreatedDate"])
    await client.update("Opportunity", opp, {"StageName": "Closed Won"})
    row = await client.get("Opportunity", opp, ["StageName", "IsWon", "IsClosed", "SystemModstamp"])
    assert (row["IsWon"], row["IsClosed"]) == (True, True)
    assert parse_datetime(row["SystemModstamp"]) > created
    await client.delete("Opportunity", opp)
    with pytest.raises((e.NotFoundError, e.EntityDeletedError)):
        await client.get("Opportunity", opp)
    with pytest.raises(e.EntityDeletedError):
        await client.delete("Opportunity", opp)
    with pytest.raises(e.EntityDeletedError):
        await client.update("Opportunity", opp, {"Name": "x"})


@pytest.mark.parametrize(
    ("fields", "code", "named"),
    [
        ({"Name": "no stage", "CloseDate": "2026-06-30"}, "REQUIRED_FIELD_MISSING", "StageName"),
        (_opportunity(IsWon=True), "INVALID_FIELD_FOR_INSERT_UPDATE", "IsWon"),
        (_opportunity(No_Such_Field__c=1), "INVALID_FIELD", None),
        (
            _opportunity(How_can_Microsoft_help__c="Free pizza"),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "How_can_Microsoft_help__c",
        ),
        (_opportunity(Name="x" * 121), "STRING_TOO_LONG", "Name"),
        (_opportunity(AccountId="001notanid"), "MALFORMED_ID", None),
    ],
)
async def test_validation_errors(
    client: SalesforceClient, fields: dict[str, Any], code: str, named: str | None
) -> None:
    with pytest.raises(e.ValidationError) as raised:
        await client.create("Opportunity", fields)
    assert raised.value.error_code == code
    assert raised.value.status == 400
    if named:
        assert named in raised.value.fields


async def test_missing_records_and_objects(client: SalesforceClient) -> None:
    with pytest.raises(e.NotFoundError):
        await client.get("Opportunity", "006000000000000AAA")
    with pytest.raises(e.NotFoundError):
        await client.create("NoSuchObject__c", {"Name": "x"})


async def test_duplicate_external_id_is_refused(client: SalesforceClient) -> None:
    await client.create("Opportunity", _opportunity(Referral_Identifier__c="R-1"))
    with pytest.raises(e.ValidationError) as raised:
        await client.create("Opportunity", _opportunity(Referral_Identifier__c="R-1"))
    assert raised.value.error_code == "DUPLICATE_VALUE"


async def test_upsert_creates_then_updates_and_reads_back(client: SalesforceClient) -> None:
    value = "R-1 a/b?c#d'e"  # characters that must be encoded as one path segment
    first = await client.upsert("Opportunity", "Referral_Identifier__c", value, _opportunity())
    second = await client.upsert("Opportunity", "Referral_Identifier__c", value, {"Amount": 5})
    assert first.created is True
    assert second.created is False
    assert second.id == first.id
    row = await client.get_by_external_id(
        "Opportunity", "Referral_Identifier__c", value, ["Amount", "Referral_Identifier__c"]
    )
    assert row["Amount"] == 5
    assert row["Referral_Identifier__c"] == value
    with pytest.raises(e.NotFoundError):
        await client.get_by_external_id("Opportunity", "Referral_Identifier__c", "R-none")
    with pytest.raises(e.NotFoundError):
        await client.upsert(
            "Opportunity", "Referral_Identifier__c", "R-none", _opportunity(), update_only=True
        )
    only = await client.upsert(
        "Opportunity", "Referral_Identifier__c", value, {"Amount": 6}, update_only=True
    )
    assert (only.id, only.created) == (first.id, False)


async def test_upsert_matching_several_records_is_300(clock: ManualClock, key_dir: Path) -> None:
    sandbox = make_sandbox(clock, key_dir, schema=schema_with_a_non_unique_external_id())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE
    ) as http:
        client = make_client(http, flows(dict(sandbox.info()), clock)["client_credentials"], clock)
        first = await client.create("Opportunity", _opportunity(Legacy_Id__c="L-1"))
        second = await client.create("Opportunity", _opportunity(Legacy_Id__c="L-1"))
        with pytest.raises(e.MultipleRecordsError) as raised:
            await client.upsert("Opportunity", "Legacy_Id__c", "L-1", {"Amount": 1})
        assert raised.value.status == 300
        assert sorted(u.rsplit("/", 1)[-1] for u in raised.value.urls) == sorted([first, second])
        with pytest.raises(e.MultipleRecordsError):
            await client.get_by_external_id("Opportunity", "Legacy_Id__c", "L-1")
        with pytest.raises(e.NotFoundError):
            await client.upsert("Opportunity", "No_Such_Ext__c", "L-1", {"Amount": 1})


async def test_daily_allocation_used_up_is_terminal(clock: ManualClock, key_dir: Path) -> None:
    sandbox = make_sandbox(clock, key_dir, daily_api_limit=3)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE
    ) as http:
        client = make_client(http, flows(dict(sandbox.info()), clock)["client_credentials"], clock)
        for _ in range(3):
            await client.create("Account", {"Name": "Contoso"})
        with pytest.raises(e.DailyLimitExceededError, match="daily API allocation"):
            await client.create("Account", {"Name": "Contoso"})
        assert clock.sleeps == []
        clock.advance(timedelta(hours=24, minutes=2).total_seconds())  # the window rolls on
        await client.create("Account", {"Name": "Contoso"})


async def test_conditional_update_conflicts_after_someone_else_edits(
    client: SalesforceClient, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    opp = await client.create("Opportunity", _opportunity())
    read = await client.get("Opportunity", opp, ["LastModifiedDate"])
    read_at = parse_datetime(read["LastModifiedDate"])
    clock.advance(5)
    await client.update("Opportunity", opp, {"Amount": 1}, if_unmodified_since=read_at)
    clock.advance(5)
    await edit_as_user(http, "Opportunity", opp, {"NextStep": "Call the CFO"})
    with pytest.raises(e.ConflictError) as raised:
        await client.update(
            "Opportunity", opp, {"Amount": 2}, if_unmodified_since=read_at + timedelta(seconds=5)
        )
    assert raised.value.status == 412
    assert (await client.get("Opportunity", opp, ["Amount"]))["Amount"] == 1


# -- queries --------------------------------------------------------------------------------------


async def test_query_pages_over_three_pages(client: SalesforceClient) -> None:
    results = await client.create_many(
        "Opportunity", [_opportunity(Name=f"Deal {i:03d}") for i in range(450)]
    )
    assert all(r.success for r in results)
    pages = [
        page
        async for page in client.query_pages(
            "SELECT Id, Name FROM Opportunity WHERE Name LIKE 'Deal %' ORDER BY Name",
            batch_size=200,
        )
    ]
    assert len(pages) >= 3
    assert pages[0].total_size == 450
    names = [r["Name"] for p in pages for r in p.records]
    assert names == [f"Deal {i:03d}" for i in range(450)]
    streamed = [r["Id"] async for r in client.query("SELECT Id FROM Opportunity", batch_size=200)]
    assert sorted(streamed) == sorted(r.id for r in results)


async def test_query_all_sees_deleted_rows_and_count(client: SalesforceClient) -> None:
    keep = await client.create("Opportunity", _opportunity(Name="Keep"))
    gone = await client.create("Opportunity", _opportunity(Name="Gone"))
    await client.delete("Opportunity", gone)
    live = [r["Id"] async for r in client.query("SELECT Id FROM Opportunity")]
    everything = {
        r["Id"]: r["IsDeleted"]
        async for r in client.query_all("SELECT Id, IsDeleted FROM Opportunity")
    }
    assert live == [keep]
    assert everything == {keep: False, gone: True}
    assert await client.count("SELECT COUNT() FROM Opportunity") == 1
    assert await client.count("SELECT COUNT() FROM Opportunity", include_deleted=True) == 2


async def test_quoted_values_query_exactly(client: SalesforceClient) -> None:
    tricky = 'O\'Brien \\ "Ltd" %_'
    await client.create("Account", {"Name": tricky})
    await client.create("Account", {"Name": "Other"})
    rows = [
        r async for r in client.query(f"SELECT Name FROM Account WHERE Name = {soql_quote(tricky)}")
    ]
    assert [r["Name"] for r in rows] == [tricky]
    rows = [
        r
        async for r in client.query(
            f"SELECT Name FROM Account WHERE Name IN {soql_in([tricky, 'x'])}"
        )
    ]
    assert len(rows) == 1


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FORM Opportunity", "MALFORMED_QUERY"),
        ("SELECT Id FROM NoSuchThing", "INVALID_TYPE"),
    ],
)
async def test_query_errors(client: SalesforceClient, soql: str, code: str) -> None:
    with pytest.raises(e.QueryError) as raised:
        [r async for r in client.query(soql)]
    assert raised.value.error_code == code


async def test_unknown_column_is_invalid_field(client: SalesforceClient) -> None:
    with pytest.raises(e.ValidationError) as raised:
        [r async for r in client.query("SELECT Nope__c FROM Opportunity")]
    assert raised.value.error_code == "INVALID_FIELD"


# -- collections and composite --------------------------------------------------------------


async def test_collections_without_all_or_none_save_the_valid_records(
    client: SalesforceClient,
) -> None:
    records = [
        _opportunity(Name="A"),
        {"Name": "no stage", "CloseDate": "2026-06-30"},
        _opportunity(Name="C"),
    ]
    results = await client.create_many("Opportunity", records)
    assert [r.success for r in results] == [True, False, True]
    assert results[1].id is None
    assert isinstance(results[1].errors[0], e.ValidationError)
    assert results[1].errors[0].error_code == "REQUIRED_FIELD_MISSING"
    assert await client.count("SELECT COUNT() FROM Opportunity") == 2


async def test_collections_with_all_or_none_roll_everything_back(client: SalesforceClient) -> None:
    records = [
        _opportunity(Name="A"),
        {"Name": "no stage", "CloseDate": "2026-06-30"},
        _opportunity(Name="C"),
    ]
    results = await client.create_many("Opportunity", records, all_or_none=True)
    assert [r.success for r in results] == [False, False, False]
    assert isinstance(results[0].errors[0], e.RolledBackError)
    assert results[0].errors[0].error_code == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert isinstance(results[1].errors[0], e.ValidationError)
    assert await client.count("SELECT COUNT() FROM Opportunity") == 0


async def test_collections_update_upsert_retrieve_delete(client: SalesforceClient) -> None:
    created = await client.create_many(
        "Opportunity", [_opportunity(Name=f"D{i}") for i in range(3)]
    )
    ids = [r.id for r in created if r.id]
    updated = await client.update_many(
        "Opportunity", [{"Id": i, "Amount": n} for n, i in enumerate(ids)]
    )
    assert all(r.success for r in updated)
    upserted = await client.upsert_many(
        "Opportunity",
        "Referral_Identifier__c",
        [_opportunity(Referral_Identifier__c="R-8"), _opportunity(Referral_Identifier__c="R-9")],
    )
    assert [r.created for r in upserted] == [True, True]
    again = await client.upsert_many(
        "Opportunity",
        "Referral_Identifier__c",
        [
            {"Referral_Identifier__c": "R-9", "Amount": 7},
            _opportunity(Referral_Identifier__c="R-10"),
        ],
    )
    assert [r.created for r in again] == [False, True]
    assert again[0].id == upserted[1].id
    rows = await client.retrieve_many(
        "Opportunity", [*ids, "006000000000000AAA"], ["Name", "Amount"]
    )
    assert [r["Amount"] if r else None for r in rows] == [0, 1, 2, None]
    deleted = await client.delete_many([*ids, "006000000000000AAA"])
    assert [r.success for r in deleted] == [True, True, True, False]
    assert isinstance(deleted[3].errors[0], e.TerminalError)  # the sandbox: INVALID_ID_FIELD
    assert await client.count("SELECT COUNT() FROM Opportunity") == 3


async def test_composite_with_a_reference(client: SalesforceClient) -> None:
    results = await client.composite(
        [
            CompositeSubrequest("POST", "sobjects/Account", "acct", {"Name": "Contoso"}),
            CompositeSubrequest(
                "POST", "sobjects/Opportunity", "opp", _opportunity(AccountId="@{acct.id}")
            ),
            CompositeSubrequest("GET", "sobjects/Opportunity/@{opp.id}?fields=AccountId", "read"),
        ],
        all_or_none=True,
    )
    assert [r.status for r in results] == [201, 201, 200]
    assert results[2].body["AccountId"] == results[0].body["id"]


async def test_composite_all_or_none_failure(client: SalesforceClient) -> None:
    results = await client.composite(
        [
            CompositeSubrequest("POST", "sobjects/Account", "acct", {"Name": "Contoso"}),
            CompositeSubrequest("POST", "sobjects/Opportunity", "bad", {"Name": "no stage"}),
        ],
        all_or_none=True,
    )
    assert not any(r.ok for r in results)
    assert isinstance(results[1].error, e.ValidationError)
    assert isinstance(results[0].error, e.RolledBackError)
    assert await client.count("SELECT COUNT() FROM Account") == 0


# -- describe, limits, replication ------------------------------------------------------------


async def test_describe_and_describe_global(client: SalesforceClient) -> None:
    opp = await client.describe("Opportunity")
    assert opp.key_prefix == "006"
    stage = opp.field("StageName")
    assert stage is not None
    assert stage.required_on_create
    assert "Closed Won" in stage.active_values
    ref = opp.field("Referral_Identifier__c")
    assert ref is not None
    assert ref.external_id
    assert ref.length == 100
    account = opp.field("AccountId")
    assert account is not None
    assert account.reference_to == ("Account",)
    assert account.relationship_name == "Account"
    assert "Referral_Identifier__c" in opp.external_id_fields
    await client.describe("opportunity")
    assert client.describe_cache.loads == 1
    everything = await client.describe_global()
    assert everything.find("Microsoft_Solution__c") is not None
    with pytest.raises(e.NotFoundError):
        await client.describe("NoSuchObject__c")


async def test_limits_and_usage_header(client: SalesforceClient) -> None:
    await client.create("Account", {"Name": "Contoso"})
    assert client.usage is not None
    used = client.usage.used
    assert used >= 1
    limits = await client.limits()
    assert client.usage.limit == limits["DailyApiRequests"]["Max"]
    assert client.usage.used >= used


async def test_api_budget_stops_calls(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock
) -> None:
    client = make_client(http, flows(info, clock)["client_credentials"], clock, api_budget=3)
    made = 0
    refused: e.ApiBudgetExceededError | None = None
    for _ in range(5):
        try:
            await client.create("Account", {"Name": "Contoso"})
        except e.ApiBudgetExceededError as exc:
            refused = exc
            break
        made += 1
    assert refused is not None
    assert "budget of 3" in str(refused)
    assert 1 <= made <= 3
    assert client.usage is not None
    assert client.usage.used >= 3
    await client.limits()  # never refused: it is how usage is re-read


async def test_versions_updated_and_deleted(client: SalesforceClient, clock: ManualClock) -> None:
    versions = [v["version"] for v in await client.versions()]
    assert "62.0" in versions
    start = clock.now()
    clock.advance(60)
    kept = await client.create("Opportunity", _opportunity(Name="kept"))
    gone = await client.create("Opportunity", _opportunity(Name="gone"))
    await client.delete("Opportunity", gone)
    clock.advance(120)
    updated = await client.get_updated("Opportunity", start, clock.now())
    assert kept in updated.ids
    deleted = await client.get_deleted("Opportunity", start, clock.now())
    assert [r.id for r in deleted.records] == [gone]
    with pytest.raises(e.ValidationError) as raised:
        await client.get_updated("Opportunity", clock.now(), start)
    assert raised.value.error_code == "INVALID_REPLICATION_DATE"


# -- faults and retries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", ["server_unavailable", "unable_to_lock_row", "request_limit_exceeded"]
)
async def test_retries_on_injected_faults(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock, fault: str
) -> None:
    client = make_client(
        http, flows(info, clock)["client_credentials"], clock, retry=RetryPolicy(max_attempts=30)
    )
    await client.limits()  # authenticate before faults start
    await set_faults(http, **{fault: 0.5})
    ids = [await client.create("Account", {"Name": f"A{i}"}) for i in range(10)]
    assert len(set(ids)) == 10
    assert clock.sleeps, "some calls should have been retried"
    await set_faults(http, **{fault: 0.0})
    assert await client.count("SELECT COUNT() FROM Account") == 10


async def test_every_fault_surfaces_typed_when_retries_run_out(
    http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock
) -> None:
    client = make_client(
        http, flows(info, clock)["client_credentials"], clock, retry=RetryPolicy(max_attempts=2)
    )
    await client.limits()
    await set_faults(http, server_unavailable=1.0)
    with pytest.raises(e.ServerUnavailableError):
        await client.create("Account", {"Name": "x"})
    await set_faults(http, server_unavailable=0.0, unable_to_lock_row=1.0)
    with pytest.raises(e.RowLockError):
        await client.create("Account", {"Name": "x"})
    await set_faults(http, unable_to_lock_row=0.0, request_limit_exceeded=1.0)
    # Injected below the daily maximum: Sforce-Limit-Info says it is not the daily allocation.
    with pytest.raises(e.ConcurrentLimitError):
        await client.create("Account", {"Name": "x"})


# -- our writes are recognisable; SOQL datetimes ------------------------------------------------


async def test_our_writes_carry_the_call_options_client(
    client: SalesforceClient, http: httpx.AsyncClient
) -> None:
    opp = await client.create("Opportunity", _opportunity())
    await client.update("Opportunity", opp, {"Amount": 3})
    await client.create_many("Account", [{"Name": "A"}, {"Name": "B"}])
    await client.composite(
        [CompositeSubrequest("PATCH", f"sobjects/Opportunity/{opp}", "u", {"Amount": 4})]
    )
    await edit_as_user(http, "Opportunity", opp, {"NextStep": "Call"})
    changes = (await control(http, "GET", "changes"))["events"]
    origins = [c["payload"]["ChangeEventHeader"]["changeOrigin"] for c in changes]
    assert len(origins) == 6
    assert all(o.endswith(";client=cosell") for o in origins[:5])
    assert origins[5] == ""


async def test_soql_datetime_literals_select_by_system_modstamp(
    client: SalesforceClient, clock: ManualClock
) -> None:
    old = await client.create("Opportunity", _opportunity(Name="old"))
    clock.advance(1)
    watermark = clock.now()
    clock.advance(1)
    new = await client.create("Opportunity", _opportunity(Name="new"))
    since = f"SELECT Id FROM Opportunity WHERE SystemModstamp > {soql_datetime(watermark)}"
    assert [r["Id"] async for r in client.query(since)] == [new]
    stamp = parse_datetime(
        (await client.get("Opportunity", old, ["SystemModstamp"]))["SystemModstamp"]
    )
    # Sub-seconds are dropped from the literal: the same-second row comes back too, never less.
    both = f"SELECT Id FROM Opportunity WHERE SystemModstamp >= {soql_datetime(stamp)} ORDER BY SystemModstamp, Id"
    assert [r["Id"] async for r in client.query(both)] == [old, new]


async def test_describe_reads_our_custom_metadata(client: SalesforceClient) -> None:
    opp = await client.describe("Opportunity")
    help_field = opp.field("how_can_microsoft_help__c")
    assert help_field is not None
    assert help_field.type == "picklist"
    assert help_field.custom
    assert len(help_field.active_values) == 6
    status = opp.field("Partner_Center_Sync_Status__c")
    assert status is not None
    assert set(status.active_values) >= {"Synced", "Pending", "Error"}
    solution = await client.describe("Microsoft_Solution__c")
    parent = solution.field("Opportunity__c")
    assert parent is not None
    assert parent.reference_to == ("Opportunity",)
    assert parent.relationship_name == "Opportunity__r"
    assert solution.custom
    lead = await client.describe("Lead")
    assert {"LastName", "Company"} <= {f.name for f in lead.fields if f.required_on_create}


async def test_composite_conditional_subrequest_conflicts(
    client: SalesforceClient, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    opp = await client.create("Opportunity", _opportunity())
    read_at = parse_datetime(
        (await client.get("Opportunity", opp, ["LastModifiedDate"]))["LastModifiedDate"]
    )
    clock.advance(5)
    await edit_as_user(http, "Opportunity", opp, {"NextStep": "Call"})
    stamp = format_datetime(read_at, usegmt=True)
    results = await client.composite(
        [
            CompositeSubrequest(
                "PATCH",
                f"sobjects/Opportunity/{opp}",
                "u",
                {"Amount": 9},
                {"If-Unmodified-Since": stamp},
            )
        ]
    )
    assert results[0].status == 412
    assert isinstance(results[0].error, e.ConflictError)
