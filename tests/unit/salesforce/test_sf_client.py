"""The REST client against a scripted Salesforce: headers, retries, refresh, paging, batching."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from sf_fakes import API, INSTANCE, FakeSalesforce, body, make_client, sf_error

from cosell.clock import ManualClock
from cosell.salesforce import errors as e
from cosell.salesforce.client import (
    CompositeSubrequest,
    RetryPolicy,
    SalesforceClient,
)


def _created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"id": "006xx0000000001AAA", "success": True, "errors": []})


async def test_create_get_update_delete_and_call_options(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on("POST", "sobjects/Opportunity/", _created)
    fake.on(
        "GET",
        "sobjects/Opportunity/006xx0000000001AAA",
        httpx.Response(200, json={"Id": "006xx0000000001AAA", "Name": "Deal"}),
    )
    fake.on("PATCH", "sobjects/Opportunity/006xx0000000001AAA", httpx.Response(204))
    fake.on("DELETE", "sobjects/Opportunity/006xx0000000001AAA", httpx.Response(204))

    record_id = await client.create("Opportunity", {"Name": "Deal"})
    assert record_id == "006xx0000000001AAA"
    assert (await client.get("Opportunity", record_id, ["Id", "Name"]))["Name"] == "Deal"
    await client.update("Opportunity", record_id, {"Name": "Deal 2"})
    await client.delete("Opportunity", record_id)

    create, get, update, delete = fake.data_requests()
    assert body(create) == {"Name": "Deal"}
    assert get.url.params["fields"] == "Id,Name"
    assert body(update) == {"Name": "Deal 2"}
    for write in (create, update, delete):
        assert write.headers["sforce-call-options"] == "client=cosell"
    assert "sforce-call-options" not in get.headers
    assert all(
        r.headers["authorization"] == "Bearer 00Dxx!tok1" for r in (create, get, update, delete)
    )
    assert str(create.url) == INSTANCE + API + "sobjects/Opportunity/"


async def test_conditional_update_sends_if_unmodified_since_and_maps_412(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on("PATCH", "sobjects/Opportunity/006A", sf_error(412, "PRECONDITION_FAILED", "changed"))
    read_at = datetime(
        2026, 1, 5, 10, 0, 7, 500000, tzinfo=__import__("datetime").timezone(timedelta(hours=1))
    )
    with pytest.raises(e.ConflictError, match="re-read"):
        await client.update("Opportunity", "006A", {"Amount": 5}, if_unmodified_since=read_at)
    (request,) = fake.data_requests()
    assert request.headers["if-unmodified-since"] == "Mon, 05 Jan 2026 09:00:07 GMT"
    with pytest.raises(ValueError, match="timezone-aware"):
        await client.update("Opportunity", "006A", {}, if_unmodified_since=datetime(2026, 1, 5))  # noqa: DTZ001


async def test_names_and_ids_cannot_escape_their_path_segment(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    with pytest.raises(ValueError, match="API name"):
        await client.get("Opportunity/../../limits", "006A")
    # A record id is letters and digits: `.` once named the object's own URL (its describe).
    for bad in ("x/../y", ".", "..", "/", "%2F", "", "006A 1", "\ud800"):
        with pytest.raises(ValueError, match="not a Salesforce record id"):
            await client.get("Opportunity", bad)
        with pytest.raises(ValueError, match="not a Salesforce record id"):
            await client.update("Opportunity", bad, {"Amount": 1})
        with pytest.raises(ValueError, match="not a Salesforce record id"):
            await client.delete("Opportunity", bad)
    for bad in (".", ".."):
        with pytest.raises(ValueError, match="would name another URL"):
            await client.get_by_external_id("Opportunity", "Referral_Identifier__c", bad)
    with pytest.raises(ValueError, match="unpaired surrogate"):
        await client.upsert("Opportunity", "Referral_Identifier__c", "\ud800", {"Name": "x"})
    assert fake.data_requests() == []


async def test_upsert_created_updated_and_300(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    path = "sobjects/Opportunity/Referral_Identifier__c/a%20b%2Fc%3Fd%23e"
    fake.on(
        "PATCH",
        path,
        httpx.Response(201, json={"id": "006A", "success": True, "errors": [], "created": True}),
        httpx.Response(200, json={"id": "006A", "success": True, "errors": [], "created": False}),
        httpx.Response(
            300,
            json=[
                "/services/data/v62.0/sobjects/Opportunity/006A",
                "/services/data/v62.0/sobjects/Opportunity/006B",
            ],
        ),
    )
    first = await client.upsert("Opportunity", "Referral_Identifier__c", "a b/c?d#e", {"Name": "x"})
    second = await client.upsert(
        "Opportunity", "Referral_Identifier__c", "a b/c?d#e", {"Name": "x"}
    )
    assert (first.id, first.created) == ("006A", True)
    assert (second.id, second.created) == ("006A", False)
    with pytest.raises(e.MultipleRecordsError) as info:
        await client.upsert("Opportunity", "Referral_Identifier__c", "a b/c?d#e", {"Name": "x"})
    assert len(info.value.urls) == 2
    assert fake.data_requests()[0].url.raw_path.decode().endswith(path)
    with pytest.raises(ValueError, match="external id goes in the URL"):
        await client.upsert(
            "Opportunity", "Referral_Identifier__c", "v", {"referral_identifier__c": "v"}
        )


async def test_get_by_external_id(fake: FakeSalesforce, client: SalesforceClient) -> None:
    fake.on(
        "GET",
        "sobjects/Opportunity/Referral_Identifier__c/R-1",
        httpx.Response(200, json={"Id": "006A"}),
    )
    record = await client.get_by_external_id("Opportunity", "Referral_Identifier__c", "R-1", ["Id"])
    assert record == {"Id": "006A"}


async def test_retry_schedule_on_the_clock(
    fake: FakeSalesforce, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = make_client(
        http,
        clock,
        retry=RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=3.0, random=random.Random(3)),
    )
    fake.on(
        "GET",
        "sobjects/Account/001A",
        sf_error(503, "SERVER_UNAVAILABLE"),
        sf_error(400, "UNABLE_TO_LOCK_ROW"),
        sf_error(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
        httpx.Response(200, json={"Id": "001A"}),
    )
    with structlog.testing.capture_logs() as logs:
        assert await client.get("Account", "001A") == {"Id": "001A"}
    expected = random.Random(3)
    assert clock.sleeps == [
        expected.uniform(0, 1.0),
        expected.uniform(0, 2.0),
        expected.uniform(0, 3.0),
    ]
    assert [entry["error_code"] for entry in logs if entry["event"] == "salesforce.retry"] == [
        "SERVER_UNAVAILABLE",
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
    ]


async def test_retries_are_bounded_and_honour_retry_after(
    fake: FakeSalesforce, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = make_client(http, clock, retry=RetryPolicy(max_attempts=3, random=random.Random(1)))
    fake.on("GET", "limits/", sf_error(503, "SERVER_UNAVAILABLE", **{"Retry-After": "20"}))
    with pytest.raises(e.ServerUnavailableError):
        await client.limits()
    assert clock.sleeps == [20.0, 20.0]
    assert len(fake.data_requests()) == 3


async def test_terminal_and_conflict_errors_are_not_retried(
    fake: FakeSalesforce, client: SalesforceClient, clock: ManualClock
) -> None:
    fake.on(
        "POST",
        "sobjects/Opportunity/",
        sf_error(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]"),
    )
    with pytest.raises(e.ValidationError, match="Required fields"):
        await client.create("Opportunity", {})
    assert clock.sleeps == []


async def test_500_and_broken_connections_are_retried_only_when_idempotent(
    fake: FakeSalesforce, client: SalesforceClient, clock: ManualClock
) -> None:
    fake.on("POST", "sobjects/Opportunity/", sf_error(500, "UNKNOWN_EXCEPTION"))
    with pytest.raises(e.PlatformError):
        await client.create("Opportunity", {"Name": "x"})
    assert len(fake.data_requests()) == 1
    fake.on(
        "PATCH",
        "sobjects/Opportunity/006A",
        sf_error(500, "UNKNOWN_EXCEPTION"),
        httpx.Response(204),
    )
    await client.update("Opportunity", "006A", {"Name": "x"})
    assert len(clock.sleeps) == 1

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    fake.on("POST", "composite", broken)
    with pytest.raises(e.TransportError, match="POST composite failed: ReadTimeout"):
        await client.composite([CompositeSubrequest("GET", "limits/", "l")])
    assert len(clock.sleeps) == 1

    attempts = 0

    def refused_then_ok(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ConnectError("refused", request=request)
        return _created(request)

    fake.on("POST", "sobjects/Lead/", refused_then_ok)
    assert await client.create("Lead", {"LastName": "x", "Company": "y"}) == "006xx0000000001AAA"
    assert len(clock.sleeps) == 2


async def test_refresh_on_401_exactly_once_and_keeps_headers(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on("PATCH", "sobjects/Opportunity/006A", httpx.Response(204))
    await client.update("Opportunity", "006A", {"Name": "a"})
    fake.expire_tokens()
    await client.update(
        "Opportunity", "006A", {"Name": "b"}, if_unmodified_since=datetime(2026, 1, 5, tzinfo=UTC)
    )
    assert fake.tokens_issued == 2
    _, refused, retried = fake.data_requests()
    assert refused.headers["authorization"] == "Bearer 00Dxx!tok1"
    assert retried.headers["authorization"] == "Bearer 00Dxx!tok2"
    assert retried.headers["if-unmodified-since"] == refused.headers["if-unmodified-since"]
    assert retried.headers["sforce-call-options"] == "client=cosell"


async def test_a_second_401_surfaces_instead_of_looping(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on(
        "GET",
        "sobjects/Account/001A",
        sf_error(401, "INVALID_SESSION_ID", "This session is not valid for use with the REST API"),
    )
    with pytest.raises(e.SessionExpiredError, match="not valid for use with the REST API"):
        await client.get("Account", "001A")
    assert fake.tokens_issued == 2
    assert len(fake.data_requests()) == 2


async def test_concurrent_callers_share_one_refresh(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on("GET", "sobjects/Account/001A", httpx.Response(200, json={"Id": "001A"}))
    await client.get("Account", "001A")
    fake.expire_tokens()
    results = await asyncio.gather(*(client.get("Account", "001A") for _ in range(8)))
    assert all(r == {"Id": "001A"} for r in results)
    assert fake.tokens_issued == 2


def _page(ids: range, next_url: str | None, total: int) -> httpx.Response:
    payload: dict[str, Any] = {
        "totalSize": total,
        "done": next_url is None,
        "records": [{"attributes": {"type": "Opportunity"}, "Id": f"006{i:015d}"} for i in ids],
    }
    if next_url:
        payload["nextRecordsUrl"] = next_url
    return httpx.Response(200, json=payload)


async def test_query_follows_next_records_url(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on("GET", "query/", _page(range(200), "/services/data/v62.0/query/01gxx-200", 450))
    fake.on(
        "GET",
        "query/01gxx-200",
        _page(range(200, 400), "/services/data/v62.0/query/01gxx-400", 450),
    )
    fake.on("GET", "query/01gxx-400", _page(range(400, 450), None, 450))
    records = [r async for r in client.query("SELECT Id FROM Opportunity", batch_size=200)]
    assert len(records) == 450
    assert records[-1]["Id"] == f"006{449:015d}"
    first, second, third = fake.data_requests()
    assert first.url.params["q"] == "SELECT Id FROM Opportunity"
    assert all(r.headers["sforce-query-options"] == "batchSize=200" for r in (first, second, third))
    assert "q" not in second.url.params
    with pytest.raises(ValueError, match="between 200 and 2000"):
        [r async for r in client.query("SELECT Id FROM Opportunity", batch_size=5)]


async def test_query_all_and_count(fake: FakeSalesforce, client: SalesforceClient) -> None:
    fake.on("GET", "queryAll/", _page(range(2), None, 2))
    fake.on(
        "GET", "query/", httpx.Response(200, json={"totalSize": 42, "done": True, "records": []})
    )
    assert (
        len(
            [r async for r in client.query_all("SELECT Id FROM Opportunity WHERE IsDeleted = true")]
        )
        == 2
    )
    assert await client.count("SELECT COUNT() FROM Opportunity") == 42


async def test_query_pages_are_capped(
    fake: FakeSalesforce, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = make_client(http, clock, max_pages=2)
    fake.on("GET", "query/", _page(range(1), "/services/data/v62.0/query/01gxx-1", 99))
    fake.on("GET", "query/01gxx-1", _page(range(1), "/services/data/v62.0/query/01gxx-1", 99))
    with pytest.raises(e.QueryError, match="more than 2 pages"):
        [r async for r in client.query("SELECT Id FROM Opportunity")]
    assert len(fake.data_requests()) == 2


async def test_query_never_sends_the_token_to_another_host(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on(
        "GET",
        "query/",
        _page(range(1), "https://evil.example.com/services/data/v62.0/query/01g-1", 2),
    )
    with pytest.raises(e.UnexpectedResponseError, match="another host"):
        [r async for r in client.query("SELECT Id FROM Opportunity")]
    assert all(r.url.host == "acme.my.salesforce.com" for r in fake.requests)


async def test_query_error_is_typed(fake: FakeSalesforce, client: SalesforceClient) -> None:
    fake.on("GET", "query/", sf_error(400, "MALFORMED_QUERY", "unexpected token: FORM"))
    with pytest.raises(e.QueryError, match="unexpected token"):
        [r async for r in client.query("SELECT Id FORM Opportunity")]


def _save_all(request: httpx.Request) -> httpx.Response:
    records = body(request)["records"]
    return httpx.Response(
        200,
        json=[
            {"id": f"006{r['Name']:0>15}", "success": True, "errors": []}
            if r["Name"] != "bad"
            else {
                "success": False,
                "errors": [
                    {
                        "statusCode": "REQUIRED_FIELD_MISSING",
                        "message": "Required fields are missing: [StageName]",
                        "fields": ["StageName"],
                    }
                ],
            }
            for r in records
        ],
    )


async def test_collections_chunk_by_200_and_keep_order(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on("POST", "composite/sobjects", _save_all)
    records = [{"Name": str(i)} for i in range(450)]
    results = await client.create_many("Opportunity", records)
    calls = fake.data_requests()
    assert [len(body(c)["records"]) for c in calls] == [200, 200, 50]
    assert all(body(c)["records"][0]["attributes"] == {"type": "Opportunity"} for c in calls)
    assert all(c.headers["sforce-call-options"] == "client=cosell" for c in calls)
    assert [r.id for r in results] == [f"006{i:0>15}" for i in range(450)]


async def test_collections_all_or_none_halts_later_chunks(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    def rolled_back(request: httpx.Request) -> httpx.Response:
        records = body(request)["records"]
        assert body(request)["allOrNone"] is True
        rollback = {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": "Record rolled back",
        }
        return httpx.Response(
            200,
            json=[
                {
                    "success": False,
                    "errors": [
                        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "m"}
                        if r["Name"] == "bad"
                        else rollback
                    ],
                }
                for r in records
            ],
        )

    fake.on("POST", "composite/sobjects", rolled_back)
    records = [{"Name": "ok"}] * 150 + [{"Name": "bad"}] + [{"Name": "ok"}] * 100
    results = await client.create_many("Opportunity", records, all_or_none=True)
    assert len(fake.data_requests()) == 1
    assert len(results) == 251
    assert isinstance(results[150].errors[0], e.ValidationError)
    assert isinstance(results[0].errors[0], e.RolledBackError)
    assert results[250].errors[0].error_code == "PROCESSING_HALTED"
    assert not any(r.success for r in results)


async def test_collections_partial_success_without_all_or_none(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on("POST", "composite/sobjects", _save_all)
    results = await client.create_many(
        "Opportunity", [{"Name": "1"}, {"Name": "bad"}, {"Name": "3"}]
    )
    assert [r.success for r in results] == [True, False, True]
    assert results[1].errors[0].fields == ("StageName",)
    assert body(fake.data_requests()[0])["allOrNone"] is False


async def test_update_upsert_delete_retrieve_many(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    def ok(request: httpx.Request) -> httpx.Response:
        saved = {"id": "006A", "success": True, "errors": [], "created": True}
        return httpx.Response(200, json=[saved] * len(body(request)["records"]))

    fake.on("PATCH", "composite/sobjects", ok)
    fake.on("PATCH", "composite/sobjects/Opportunity/Referral_Identifier__c", ok)
    fake.on(
        "DELETE",
        "composite/sobjects",
        lambda r: httpx.Response(
            200,
            json=[{"id": i, "success": True, "errors": []} for i in r.url.params["ids"].split(",")],
        ),
    )
    fake.on(
        "GET",
        "composite/sobjects/Opportunity",
        lambda r: httpx.Response(
            200,
            json=[None if i == "006gone" else {"Id": i} for i in r.url.params["ids"].split(",")],
        ),
    )

    await client.update_many("Opportunity", [{"Id": "006A", "Name": "x"}])
    assert body(fake.data_requests()[-1])["records"] == [
        {"attributes": {"type": "Opportunity"}, "id": "006A", "Name": "x"}
    ]
    upserted = await client.upsert_many(
        "Opportunity", "Referral_Identifier__c", [{"Referral_Identifier__c": "R1", "Name": "x"}]
    )
    assert upserted[0].created is True
    deleted = await client.delete_many([f"006{i}" for i in range(201)], all_or_none=True)
    assert len(deleted) == 201
    assert fake.data_requests()[-1].url.params["allOrNone"] == "true"
    rows = await client.retrieve_many("Opportunity", ["006A"] * 2500 + ["006gone"], ["Id", "Name"])
    assert len(rows) == 2501
    assert rows[-1] is None
    gets = [r for r in fake.data_requests() if r.method == "GET"]
    assert [len(r.url.params["ids"].split(",")) for r in gets] == [2000, 501]
    assert gets[0].url.params["fields"] == "Id,Name"
    with pytest.raises(ValueError, match="needs an Id"):
        await client.update_many("Opportunity", [{"Name": "x"}])
    with pytest.raises(ValueError, match="needs Referral_Identifier__c"):
        await client.upsert_many("Opportunity", "Referral_Identifier__c", [{"Name": "x"}])


async def test_composite_builds_the_request_and_reads_results(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        sent = body(request)
        assert sent["allOrNone"] is True
        assert sent["compositeRequest"][0] == {
            "method": "POST",
            "url": "/services/data/v62.0/sobjects/Account",
            "referenceId": "acct",
            "body": {"Name": "Contoso"},
        }
        assert sent["compositeRequest"][1]["httpHeaders"] == {"If-Unmodified-Since": "x"}
        return httpx.Response(
            200,
            json={
                "compositeResponse": [
                    {
                        "body": {"id": "001A", "success": True, "errors": []},
                        "httpHeaders": {"Location": "/x"},
                        "httpStatusCode": 201,
                        "referenceId": "acct",
                    },
                    {
                        "body": [{"errorCode": "PROCESSING_HALTED", "message": "halted"}],
                        "httpHeaders": {},
                        "httpStatusCode": 400,
                        "referenceId": "opp",
                    },
                ]
            },
        )

    fake.on("POST", "composite", answer)
    results = await client.composite(
        [
            CompositeSubrequest("post", "sobjects/Account", "acct", {"Name": "Contoso"}),
            CompositeSubrequest(
                "PATCH",
                "/services/data/v62.0/sobjects/Opportunity/006A",
                "opp",
                {"AccountId": "@{acct.id}"},
                {"If-Unmodified-Since": "x"},
            ),
        ],
        all_or_none=True,
    )
    assert results[0].ok
    assert results[0].error is None
    assert results[0].body["id"] == "001A"
    assert isinstance(results[1].error, e.RolledBackError)
    assert fake.data_requests()[0].headers["sforce-call-options"] == "client=cosell"


async def test_composite_refuses_more_than_25(client: SalesforceClient) -> None:
    subs = [CompositeSubrequest("GET", "limits/", f"r{i}") for i in range(26)]
    with pytest.raises(ValueError, match="at most 25 subrequests, got 26"):
        await client.composite(subs)


async def test_usage_is_tracked_and_warned_once(
    fake: FakeSalesforce, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = make_client(http, clock, api_budget=100)
    fake.on("GET", "sobjects/Account/001A", httpx.Response(200, json={}))
    fake.limit_info = "api-usage=50/15000; per-app-api-usage=17/250(appName=cosell)"
    await client.get("Account", "001A")
    assert client.usage is not None
    assert (client.usage.used, client.usage.limit, client.usage.budget, client.usage.remaining) == (
        50,
        15000,
        100,
        14950,
    )
    assert client.usage.observed_at == clock.now()
    fake.limit_info = "api-usage=85/15000"
    with structlog.testing.capture_logs() as logs:
        await client.get("Account", "001A")
        await client.get("Account", "001A")
    assert [entry["event"] for entry in logs] == ["salesforce.api_usage_high"]


async def test_budget_refuses_calls_then_probes_again(
    fake: FakeSalesforce, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = make_client(http, clock, api_budget=100)
    fake.on("GET", "sobjects/Account/001A", httpx.Response(200, json={}))
    fake.limit_info = "api-usage=100/15000"
    await client.get("Account", "001A")
    with pytest.raises(e.ApiBudgetExceededError, match="100 of its 15000 API requests") as info:
        await client.get("Account", "001A")
    assert "api_budget" in str(info.value)
    assert len(fake.data_requests()) == 1
    fake.on(
        "GET",
        "limits/",
        httpx.Response(200, json={"DailyApiRequests": {"Max": 15000, "Remaining": 14950}}),
    )
    await client.limits()  # never refused: it is how usage is re-read
    assert client.usage is not None
    assert client.usage.used == 50
    fake.limit_info = "api-usage=120/15000"
    await client.get("Account", "001A")
    with pytest.raises(e.ApiBudgetExceededError):
        await client.get("Account", "001A")
    clock.advance(301)
    await client.get("Account", "001A")  # a probe after BUDGET_RECHECK


async def test_describe_is_cached_on_the_clock(
    fake: FakeSalesforce, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = make_client(http, clock, describe_ttl=timedelta(minutes=10))
    describe = {
        "name": "Opportunity",
        "keyPrefix": "006",
        "createable": True,
        "urls": {"x": "y"},
        "someNewKey": 1,
        "fields": [
            {
                "name": "StageName",
                "type": "picklist",
                "length": 255,
                "nillable": False,
                "createable": True,
                "updateable": True,
                "defaultedOnCreate": False,
                "restrictedPicklist": True,
                "referenceTo": [],
                "relationshipName": None,
                "picklistValues": [
                    {
                        "active": True,
                        "defaultValue": False,
                        "label": "Prospecting",
                        "validFor": None,
                        "value": "Prospecting",
                    },
                    {"active": False, "defaultValue": False, "label": "Old", "value": "Old"},
                ],
            },
            {
                "name": "AccountId",
                "type": "reference",
                "nillable": True,
                "createable": True,
                "updateable": True,
                "referenceTo": ["Account"],
                "relationshipName": "Account",
                "length": None,
            },
            {
                "name": "Referral_Identifier__c",
                "type": "string",
                "length": 100,
                "externalId": True,
                "unique": True,
                "custom": True,
                "createable": True,
            },
        ],
    }
    fake.on("GET", "sobjects/Opportunity/describe", httpx.Response(200, json=describe))
    first = await client.describe("Opportunity")
    await client.describe("opportunity")
    assert client.describe_cache.loads == 1
    stage = first.field("stagename")
    assert stage is not None
    assert stage.required_on_create
    assert stage.active_values == ("Prospecting",)
    account = first.field("AccountId")
    assert account is not None
    assert account.reference_to == ("Account",)
    assert account.relationship_name == "Account"
    assert account.length == 0
    assert first.external_id_fields == ("Referral_Identifier__c",)
    clock.advance(600)
    await client.describe("Opportunity")
    assert client.describe_cache.loads == 2
    client.describe_cache.invalidate("OPPORTUNITY")
    await client.describe("Opportunity")
    assert client.describe_cache.loads == 3
    assert "sforce-call-options" not in fake.data_requests()[0].headers


async def test_describe_global_limits_versions_updated_deleted(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    fake.on(
        "GET",
        "sobjects",
        httpx.Response(
            200,
            json={
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [{"name": "Account", "keyPrefix": "001", "queryable": True}],
            },
        ),
    )
    fake.on(
        "GET",
        "/services/data/",
        httpx.Response(
            200, json=[{"version": "62.0", "url": "/services/data/v62.0", "label": "Winter '25"}]
        ),
    )
    fake.on(
        "GET",
        "sobjects/Opportunity/updated/",
        httpx.Response(
            200, json={"ids": ["006A"], "latestDateCovered": "2026-01-05T09:00:00.000+0000"}
        ),
    )
    fake.on(
        "GET",
        "sobjects/Opportunity/deleted/",
        httpx.Response(
            200,
            json={
                "deletedRecords": [{"id": "006B", "deletedDate": "2026-01-05T08:00:00.000+0000"}],
                "earliestDateAvailable": "2026-01-01T00:00:00.000+0000",
                "latestDateCovered": "2026-01-05T09:00:00.000+0000",
            },
        ),
    )
    everything = await client.describe_global()
    assert everything.max_batch_size == 200
    found = everything.find("account")
    assert found is not None
    assert found.key_prefix == "001"
    assert (await client.versions())[0]["version"] == "62.0"
    start, end = datetime(2026, 1, 5, 8, tzinfo=UTC), datetime(2026, 1, 5, 9, tzinfo=UTC)
    updated = await client.get_updated("Opportunity", start, end)
    assert updated.ids == ("006A",)
    assert updated.latest_date_covered == end
    deleted = await client.get_deleted("Opportunity", start, end)
    assert deleted.records[0].id == "006B"
    assert deleted.records[0].deleted_date == start
    request = fake.data_requests()[-1]
    assert request.url.params["start"] == "2026-01-05T08:00:00+00:00"
    assert b"%2B00%3A00" in request.url.query


def test_constructor_checks(http: httpx.AsyncClient, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match=r"46\.0 or later"):
        make_client(http, clock, api_version="45.0")
    with pytest.raises(ValueError, match="look like"):
        make_client(http, clock, api_version="latest")
    assert make_client(http, clock, api_version="v59.0").base_path == "/services/data/v59.0/"
    with pytest.raises(ValueError, match="call_options_client"):
        make_client(http, clock, call_options_client="cosell, defaultNamespace=x")
    with pytest.raises(ValueError, match="api_budget"):
        make_client(http, clock, api_budget=0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_custom_call_options_client(
    fake: FakeSalesforce, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = make_client(http, clock, call_options_client="cosell-test")
    fake.on("DELETE", "sobjects/Account/001A", httpx.Response(204))
    await client.delete("Account", "001A")
    assert fake.data_requests()[0].headers["sforce-call-options"] == "client=cosell-test"


async def test_token_endpoint_outage_is_retried_before_the_call(
    fake: FakeSalesforce, clock: ManualClock
) -> None:
    outage = [httpx.Response(503, json=[{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}])]

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token") and outage:
            return outage.pop()
        return fake(request)

    fake.on("GET", "sobjects/Account/001A", httpx.Response(200, json={"Id": "001A"}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(flaky)) as http:
        client = make_client(http, clock)
        assert await client.get("Account", "001A") == {"Id": "001A"}
    assert len(clock.sleeps) == 1
    assert fake.tokens_issued == 1


async def test_static_token_is_used_until_rejected(
    fake: FakeSalesforce, clock: ManualClock
) -> None:
    from cosell.salesforce.auth import StaticTokenFlow

    fake.valid_tokens.add("00Dxx!given-secret")
    fake.on("GET", "sobjects/Account/001A", httpx.Response(200, json={"Id": "001A"}))
    flow = StaticTokenFlow("00Dxx!given-secret", INSTANCE + "/", clock=clock)
    assert "given-secret" not in repr(flow)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as http:
        client = SalesforceClient(http, flow, clock=clock)
        assert await client.get("Account", "001A") == {"Id": "001A"}
        fake.expire_tokens()
        with pytest.raises(e.AuthenticationError, match="cannot be renewed"):
            await client.get("Account", "001A")
    assert fake.tokens_issued == 0


async def test_upsert_update_only(fake: FakeSalesforce, client: SalesforceClient) -> None:
    fake.on("PATCH", "sobjects/Opportunity/Referral_Identifier__c/R-1", sf_error(404, "NOT_FOUND"))
    with pytest.raises(e.NotFoundError):
        await client.upsert(
            "Opportunity", "Referral_Identifier__c", "R-1", {"Amount": 1}, update_only=True
        )
    assert fake.data_requests()[0].url.params["updateOnly"] == "true"


def _lock_then_save(locked_names: set[str], calls: list[list[str]]) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        names = [r["Name"] for r in body(request)["records"]]
        calls.append(names)
        lock = {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}
        out = []
        for name in names:
            if name in locked_names:
                locked_names.discard(name)
                out.append({"success": False, "errors": [lock]})
            else:
                out.append({"id": f"006{name:0>15}", "success": True, "errors": []})
        return httpx.Response(200, json=out)

    return answer


async def test_items_locked_alone_are_resent(
    fake: FakeSalesforce, client: SalesforceClient, clock: ManualClock
) -> None:
    calls: list[list[str]] = []
    fake.on("POST", "composite/sobjects", _lock_then_save({"2", "4"}, calls))
    results = await client.create_many("Opportunity", [{"Name": str(i)} for i in range(5)])
    assert calls == [["0", "1", "2", "3", "4"], ["2", "4"]]
    assert [r.id for r in results] == [f"006{i:0>15}" for i in range(5)]
    assert all(r.success for r in results)
    assert len(clock.sleeps) == 1


async def test_locked_items_give_up_after_the_retry_budget(
    fake: FakeSalesforce, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    client = make_client(http, clock, retry=RetryPolicy(max_attempts=2, random=random.Random(1)))
    calls: list[list[str]] = []
    always_locked = {"1"}

    def answer(request: httpx.Request) -> httpx.Response:
        always_locked.add("1")
        return _lock_then_save(always_locked, calls)(request)

    fake.on("POST", "composite/sobjects", answer)
    results = await client.create_many("Opportunity", [{"Name": "0"}, {"Name": "1"}])
    assert calls == [["0", "1"], ["1"]]
    assert results[0].success
    assert not results[1].success
    assert isinstance(results[1].errors[0], e.RowLockError)


async def test_all_or_none_chunk_with_only_transient_failures_is_resent_whole(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    calls: list[list[str]] = []
    locked = {"1"}

    def answer(request: httpx.Request) -> httpx.Response:
        names = [r["Name"] for r in body(request)["records"]]
        calls.append(names)
        if locked & set(names):
            locked.clear()
            rollback = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "rolled back"}
            lock = {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}
            return httpx.Response(
                200,
                json=[
                    {"success": False, "errors": [lock if n == "1" else rollback]} for n in names
                ],
            )
        return httpx.Response(
            200, json=[{"id": f"006{n:0>15}", "success": True, "errors": []} for n in names]
        )

    fake.on("POST", "composite/sobjects", answer)
    results = await client.create_many(
        "Opportunity", [{"Name": "0"}, {"Name": "1"}], all_or_none=True
    )
    assert calls == [["0", "1"], ["0", "1"]]
    assert all(r.success for r in results)


async def test_delete_many_resends_locked_ids(
    fake: FakeSalesforce, client: SalesforceClient
) -> None:
    seen: list[str] = []
    locked = {"006B"}

    def answer(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["ids"].split(",")
        seen.append(request.url.params["ids"])
        out = []
        for i in ids:
            if i in locked:
                locked.discard(i)
                out.append(
                    {
                        "id": i,
                        "success": False,
                        "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}],
                    }
                )
            else:
                out.append({"id": i, "success": True, "errors": []})
        return httpx.Response(200, json=out)

    fake.on("DELETE", "composite/sobjects", answer)
    results = await client.delete_many(["006A", "006B", "006C"])
    assert seen == ["006A,006B,006C", "006B"]
    assert [r.success for r in results] == [True, True, True]
