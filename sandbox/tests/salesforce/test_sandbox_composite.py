"""sObject Collections and Composite over HTTP, with allOrNone both ways."""

from __future__ import annotations

from typing import Any

import httpx
from sf_sandbox_helpers import V, error_of, opportunity

from cosell_sandbox.salesforce.app import SalesforceSandbox

ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


def opp(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "attributes": {"type": "Opportunity"},
        "Name": name,
        "StageName": "Prospecting",
        "CloseDate": "2026-12-31",
        **fields,
    }


async def count(sf: httpx.AsyncClient, type_: str = "Opportunity") -> int:
    body = (await sf.get(f"{V}/query/", params={"q": f"SELECT COUNT() FROM {type_}"})).json()
    total = body["totalSize"]
    assert isinstance(total, int)
    return total


async def test_collection_create_partial_success(sf: httpx.AsyncClient) -> None:
    response = await sf.post(
        f"{V}/composite/sobjects",
        json={"allOrNone": False, "records": [opp("A"), opp("B", StageName="Bogus"), opp("C")]},
    )
    assert response.status_code == 200
    results = response.json()
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[1]["errors"][0]["fields"] == ["StageName"]
    assert "errorCode" not in results[1]["errors"][0]
    assert results[0]["id"].startswith("006")
    assert await count(sf) == 2


async def test_collection_create_all_or_none_rolls_back(
    sf: httpx.AsyncClient, sandbox: SalesforceSandbox
) -> None:
    before = sandbox.change_log.latest_replay_id
    response = await sf.post(
        f"{V}/composite/sobjects",
        json={"allOrNone": True, "records": [opp("A"), opp("B", Name=None), opp("C")]},
    )
    assert response.status_code == 200
    results = response.json()
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == ROLLED_BACK
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2]["errors"][0]["statusCode"] == ROLLED_BACK
    assert await count(sf) == 0
    assert sandbox.change_log.latest_replay_id == before  # nothing committed


async def test_collection_writes_share_a_transaction_key(
    sf: httpx.AsyncClient, sf_client: httpx.AsyncClient
) -> None:
    response = await sf.post(f"{V}/composite/sobjects", json={"records": [opp("A"), opp("B")]})
    assert all(r["success"] for r in response.json())
    events = (await sf_client.get("/control/changes")).json()["events"]
    headers = [e["payload"]["ChangeEventHeader"] for e in events[-2:]]
    assert headers[0]["transactionKey"] == headers[1]["transactionKey"]
    assert [h["sequenceNumber"] for h in headers] == [1, 2]


async def test_collection_update_upsert_retrieve_delete(sf: httpx.AsyncClient) -> None:
    first = await opportunity(sf, Name="One")
    second = await opportunity(sf, Name="Two")
    update = await sf.patch(
        f"{V}/composite/sobjects",
        json={
            "records": [
                {"attributes": {"type": "Opportunity"}, "id": first, "Amount": 10},
                {"attributes": {"type": "Opportunity"}, "id": second, "Amount": "x"},
                {"attributes": {"type": "Opportunity"}, "Amount": 1},
            ]
        },
    )
    results = update.json()
    assert results[0] == {"id": first, "success": True, "errors": []}
    assert results[1]["errors"][0]["statusCode"] == "JSON_PARSER_ERROR"
    assert results[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"

    upsert = await sf.patch(
        f"{V}/composite/sobjects/Opportunity/Referral_Identifier__c",
        json={
            "allOrNone": False,
            "records": [
                opp("New", Referral_Identifier__c="r-1"),
                {
                    "attributes": {"type": "Opportunity"},
                    "Referral_Identifier__c": "r-1",
                    "Amount": 5,
                },
            ],
        },
    )
    results = upsert.json()
    assert results[0]["created"] is True
    assert results[1]["created"] is False
    assert results[0]["id"] == results[1]["id"]

    retrieved = await sf.get(
        f"{V}/composite/sobjects/Opportunity",
        params={"ids": f"{first},{results[0]['id']},006A0000006Vm9rIAC", "fields": "Id,Amount"},
    )
    records = retrieved.json()
    assert records[0]["Amount"] == 10.0
    assert records[1]["Amount"] == 5.0
    assert records[2] is None

    deleted = await sf.delete(
        f"{V}/composite/sobjects", params={"ids": f"{first},{second}", "allOrNone": "false"}
    )
    assert [r["success"] for r in deleted.json()] == [True, True]
    again = await sf.delete(
        f"{V}/composite/sobjects",
        params={"ids": f"{first},{results[0]['id']}", "allOrNone": "true"},
    )
    body = again.json()
    assert body[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert body[1]["errors"][0]["statusCode"] == ROLLED_BACK
    assert (await sf.get(f"{V}/sobjects/Opportunity/{results[0]['id']}")).status_code == 200


async def test_collection_limits(sf: httpx.AsyncClient) -> None:
    too_many = await sf.post(
        f"{V}/composite/sobjects", json={"records": [opp(str(i)) for i in range(201)]}
    )
    assert (await error_of(too_many, 400))["errorCode"] == "EXCEEDED_ID_LIMIT"
    malformed = await sf.post(f"{V}/composite/sobjects", json={"records": "nope"})
    assert (await error_of(malformed, 400))["errorCode"] == "JSON_PARSER_ERROR"
    old = await sf.patch(
        "/services/data/v45.0/composite/sobjects/Opportunity/Referral_Identifier__c",
        json={"records": []},
    )
    assert old.status_code == 404


async def test_composite_with_references(sf: httpx.AsyncClient) -> None:
    response = await sf.post(
        f"{V}/composite",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{V}/sobjects/Account",
                    "referenceId": "acct",
                    "body": {"Name": "Contoso"},
                },
                {
                    "method": "POST",
                    "url": f"{V}/sobjects/Opportunity",
                    "referenceId": "opp",
                    "body": {
                        "Name": "Deal",
                        "AccountId": "@{acct.id}",
                        "StageName": "Prospecting",
                        "CloseDate": "2026-12-31",
                    },
                },
                {
                    "method": "GET",
                    "url": f"{V}/query/?q=SELECT+Id,AccountId+FROM+Opportunity",
                    "referenceId": "q",
                },
                {
                    "method": "PATCH",
                    "url": f"{V}/sobjects/Opportunity/@{{q.records[0].Id}}",
                    "referenceId": "upd",
                    "body": {"Amount": 7},
                },
            ],
        },
    )
    assert response.status_code == 200
    answers = response.json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in answers] == [201, 201, 200, 204]
    assert [a["referenceId"] for a in answers] == ["acct", "opp", "q", "upd"]
    account = answers[0]["body"]["id"]
    assert answers[0]["httpHeaders"]["Location"] == f"{V}/sobjects/Account/{account}"
    assert answers[2]["body"]["records"][0]["AccountId"] == account
    assert answers[3]["body"] is None
    row = (await sf.get(f"{V}/sobjects/Opportunity/{answers[1]['body']['id']}")).json()
    assert row["Amount"] == 7.0


async def test_composite_all_or_none_rolls_back_earlier_writes(sf: httpx.AsyncClient) -> None:
    response = await sf.post(
        f"{V}/composite",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{V}/sobjects/Account",
                    "referenceId": "a",
                    "body": {"Name": "A"},
                },
                {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "b", "body": {}},
                {
                    "method": "POST",
                    "url": f"{V}/sobjects/Account",
                    "referenceId": "c",
                    "body": {"Name": "C"},
                },
            ],
        },
    )
    answers = response.json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in answers] == [400, 400, 400]
    assert answers[0]["body"][0]["errorCode"] == ROLLED_BACK
    assert answers[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert answers[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert await count(sf, "Account") == 0


async def test_composite_without_all_or_none_keeps_successes(sf: httpx.AsyncClient) -> None:
    response = await sf.post(
        f"{V}/composite",
        json={
            "compositeRequest": [
                {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "a", "body": {}},
                {
                    "method": "POST",
                    "url": f"{V}/sobjects/Contact",
                    "referenceId": "c",
                    "body": {"LastName": "Doe", "AccountId": "@{a.id}"},
                },
                {
                    "method": "POST",
                    "url": f"{V}/sobjects/Account",
                    "referenceId": "b",
                    "body": {"Name": "B"},
                },
            ],
        },
    )
    answers = response.json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in answers] == [400, 400, 201]
    assert answers[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert await count(sf, "Account") == 1


async def test_composite_request_errors(sf: httpx.AsyncClient) -> None:
    sub = {"method": "GET", "url": f"{V}/limits", "referenceId": "x"}
    too_many = [{**sub, "referenceId": f"r{i}"} for i in range(26)]
    for body, code in (
        ({"compositeRequest": too_many}, "INVALID_INPUT"),
        ({"compositeRequest": [sub, sub]}, "INVALID_INPUT"),
        ({"compositeRequest": [{**sub, "url": "/elsewhere"}]}, "INVALID_INPUT"),
        ({"nothing": True}, "JSON_PARSER_ERROR"),
    ):
        response = await sf.post(f"{V}/composite", json=body)
        assert (await error_of(response, 400))["errorCode"] == code


async def test_rolled_back_upsert_leaves_no_trace_in_the_external_id_index(
    sf: httpx.AsyncClient,
) -> None:
    response = await sf.patch(
        f"{V}/composite/sobjects/Opportunity/Referral_Identifier__c",
        json={
            "allOrNone": True,
            "records": [
                opp("New", Referral_Identifier__c="r-9"),
                opp("Bad", Referral_Identifier__c="r-10", CloseDate="soon"),
            ],
        },
    )
    assert [r["success"] for r in response.json()] == [False, False]
    missing = await sf.get(f"{V}/sobjects/Opportunity/Referral_Identifier__c/r-9")
    assert missing.status_code == 404
    again = await sf.patch(
        f"{V}/sobjects/Opportunity/Referral_Identifier__c/r-9",
        json={"Name": "New", "StageName": "Prospecting", "CloseDate": "2026-12-31"},
    )
    assert again.status_code == 201
