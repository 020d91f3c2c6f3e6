"""The Salesforce sandbox as a customised org (org profiles): each hazard, over REST."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sf_sandbox_helpers import V, create, error_of, opportunity

from cosell.clock import ManualClock
from cosell_sandbox.salesforce.app import SalesforceSandbox
from cosell_sandbox.salesforce.orgprofile import (
    OrgProfile,
    OrgProfileError,
    apply_profile,
    load_profile,
    parse_profile,
)
from cosell_sandbox.salesforce.orgschema import build_schema

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "customised-org.yaml"


@pytest.fixture
async def org(sandbox: SalesforceSandbox, sf_client: httpx.AsyncClient) -> SalesforceSandbox:
    """The sandbox customised with the shipped example profile (through the control API)."""
    import yaml

    profile = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    response = await sf_client.put("/control/org-profile", json=profile)
    assert response.status_code == 204, response.text
    return sandbox


async def _deal(sf: httpx.AsyncClient, **fields: Any) -> str:
    return await opportunity(sf, Region__c="EMEA", **fields)


async def test_validation_rule_refuses_with_the_message_and_field(
    org: SalesforceSandbox, sf: httpx.AsyncClient
) -> None:
    deal = await _deal(sf)
    response = await sf.patch(f"{V}/sobjects/Opportunity/{deal}", json={"StageName": "Closed Won"})
    item = await error_of(response, 400)
    assert item == {
        "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "Enter an amount before committing the deal.",
        "fields": ["Amount"],
    }
    ok = await sf.patch(
        f"{V}/sobjects/Opportunity/{deal}",
        json={"StageName": "Closed Won", "Amount": 5000},
    )
    assert ok.status_code == 204, ok.text


async def test_priorvalue_rule_and_a_rule_without_a_field(
    org: SalesforceSandbox, sf: httpx.AsyncClient
) -> None:
    deal = await _deal(sf, StageName="Closed Lost")  # PRIORVALUE on create is the new value
    response = await sf.patch(f"{V}/sobjects/Opportunity/{deal}", json={"StageName": "Prospecting"})
    item = await error_of(response, 400)
    assert item["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert item["fields"] == []
    assert "cannot be reopened" in item["message"]


async def test_required_custom_field(org: SalesforceSandbox, sf: httpx.AsyncClient) -> None:
    response = await sf.post(
        f"{V}/sobjects/Opportunity/",
        json={"Name": "D", "StageName": "Prospecting", "CloseDate": "2026-12-31"},
    )
    item = await error_of(response, 400)
    assert item == {
        "errorCode": "REQUIRED_FIELD_MISSING",
        "message": "Required fields are missing: [Region__c]",
        "fields": ["Region__c"],
    }
    described = (await sf.get(f"{V}/sobjects/Opportunity/describe")).json()
    region = next(f for f in described["fields"] if f["name"] == "Region__c")
    assert region["nillable"] is False
    assert region["custom"] is True


async def test_duplicate_rule_blocks_with_the_matched_record(
    org: SalesforceSandbox, sf: httpx.AsyncClient
) -> None:
    first = await create(sf, "Account", {"Name": "Contoso", "BillingPostalCode": "98052"})
    response = await sf.post(
        f"{V}/sobjects/Account/", json={"Name": "CONTOSO ", "BillingPostalCode": "98052"}
    )
    item = await error_of(response, 400)
    assert item["errorCode"] == "DUPLICATES_DETECTED"
    assert item["message"] == "Use one of these records?"
    result = item["duplicateResult"]
    assert result["allowSave"] is False
    assert result["duplicateRule"] == "Standard_Account_Duplicate_Rule"
    (match,) = result["matchResults"]
    assert match["entityType"] == "Account"
    assert match["size"] == 1
    assert [r["record"]["Id"] for r in match["matchRecords"]] == [first]
    other = await create(sf, "Account", {"Name": "Contoso", "BillingPostalCode": "10001"})
    assert other != first  # another postal code is another company


async def test_alerting_duplicate_rule_saves_and_reports(
    org: SalesforceSandbox, sf: httpx.AsyncClient
) -> None:
    first = await create(sf, "Contact", {"LastName": "Ng", "Email": "ng@contoso.example"})
    body = {"LastName": "Ng", "Email": "NG@contoso.example"}
    refused = await sf.post(f"{V}/sobjects/Contact/", json=body)  # allowSave defaults to false
    item = await error_of(refused, 400)
    assert item["errorCode"] == "DUPLICATES_DETECTED"
    assert item["duplicateResult"]["allowSave"] is True
    response = await sf.post(
        f"{V}/sobjects/Contact/",
        json=body,
        headers={"Sforce-Duplicate-Rule-Header": "allowSave=true; includeRecordDetails=false"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    (alert,) = body["errors"]
    assert alert["errorCode"] == "DUPLICATES_DETECTED"
    assert alert["duplicateResult"]["allowSave"] is True
    ids = [r["record"]["Id"] for r in alert["duplicateResult"]["matchResults"][0]["matchRecords"]]
    assert ids == [first]


async def test_duplicate_in_collections_with_all_or_none(
    org: SalesforceSandbox, sf: httpx.AsyncClient
) -> None:
    first = await create(sf, "Lead", {"LastName": "Ng", "Company": "C", "Email": "a@b.example"})
    response = await sf.post(
        f"{V}/composite/sobjects",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Lead"}, "LastName": "X", "Company": "C"},
                {
                    "attributes": {"type": "Lead"},
                    "LastName": "Y",
                    "Company": "C",
                    "Email": "a@b.example",
                },
            ],
        },
    )
    assert response.status_code == 200
    first_result, second = response.json()
    assert first_result["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    error = second["errors"][0]
    assert error["statusCode"] == "DUPLICATES_DETECTED"
    assert error["duplicateResult"]["matchResults"][0]["matchRecords"][0]["record"]["Id"] == first
    count = await sf.get(f"{V}/query/", params={"q": "SELECT COUNT() FROM Lead"})
    assert count.json()["totalSize"] == 1


async def test_field_level_security(org: SalesforceSandbox, sf: httpx.AsyncClient) -> None:
    described = (await sf.get(f"{V}/sobjects/Opportunity/describe")).json()
    by_name = {f["name"]: f for f in described["fields"]}
    assert "Referral_Visibility__c" not in by_name
    assert by_name["Description"]["createable"] is False
    assert by_name["Description"]["updateable"] is False
    query = await sf.get(
        f"{V}/query/", params={"q": "SELECT Id, Referral_Visibility__c FROM Opportunity"}
    )
    assert (await error_of(query, 400))["errorCode"] == "INVALID_FIELD"
    hidden = await sf.post(
        f"{V}/sobjects/Opportunity/",
        json={
            "Name": "D",
            "StageName": "Prospecting",
            "CloseDate": "2026-12-31",
            "Region__c": "EMEA",
            "Referral_Visibility__c": "Visible",
        },
    )
    assert (await error_of(hidden, 400))["errorCode"] == "INVALID_FIELD"
    deal = await _deal(sf)
    locked = await sf.patch(f"{V}/sobjects/Opportunity/{deal}", json={"Description": "x"})
    item = await error_of(locked, 400)
    assert item["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert item["fields"] == ["Description"]


async def test_automation_rewrites_after_save_and_moves_the_stamps(
    org: SalesforceSandbox, sf: httpx.AsyncClient, sf_clock: ManualClock
) -> None:
    deal = await _deal(sf, NextStep="Send the proposal")
    before = (await sf.get(f"{V}/sobjects/Opportunity/{deal}")).json()
    assert before["NextStep"] == "Send the proposal"  # no stage change on create: rule silent
    sf_clock.advance(5)
    response = await sf.patch(
        f"{V}/sobjects/Opportunity/{deal}",
        json={"StageName": "Needs Analysis", "NextStep": "Book a demo"},
    )
    assert response.status_code == 204
    after = (await sf.get(f"{V}/sobjects/Opportunity/{deal}")).json()
    assert after["NextStep"] == "Follow up: Needs Analysis"
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    changes = (await sf.get("/control/changes", params={"entity": "Opportunity"})).json()
    headers = [e["payload"]["ChangeEventHeader"] for e in changes["events"]]
    assert [h["changeType"] for h in headers] == ["CREATE", "UPDATE", "UPDATE"]
    assert headers[1]["transactionKey"] == headers[2]["transactionKey"]  # one transaction
    assert "NextStep" in headers[2]["changedFields"]


def load_profile_text(directory: Path, text: str) -> OrgProfile:
    path = directory / "profile.yaml"
    path.write_text(text, encoding="utf-8")
    return load_profile(path)


def test_example_profile_loads_and_bad_profiles_say_what_to_fix(tmp_path: Path) -> None:
    profile = apply_profile(build_schema(), load_profile(EXAMPLE))
    assert {r.object for r in profile.duplicate_rules} == {"Account", "Contact", "Lead"}
    with pytest.raises(OrgProfileError, match="Opportunity has no field 'Nope'"):
        apply_profile(
            build_schema(),
            parse_profile(
                {
                    "validation_rules": [
                        {
                            "object": "Opportunity",
                            "name": "R",
                            "error_when": {"blank": "Nope"},
                            "message": "m",
                        }
                    ]
                }
            ),
        )
    with pytest.raises(OrgProfileError, match="unknown section"):
        parse_profile({"flows": []})
    with pytest.raises(OrgProfileError, match="placeholders"):
        apply_profile(
            build_schema(),
            parse_profile(
                {
                    "automation": [
                        {
                            "object": "Opportunity",
                            "name": "A",
                            "template": {"NextStep": "{Name.__class__}"},
                        }
                    ]
                }
            ),
        )
    with pytest.raises(OrgProfileError, match=r"is not a value of Opportunity\.Amount"):
        apply_profile(
            build_schema(),
            parse_profile(
                {"automation": [{"object": "Opportunity", "name": "A", "set": {"Amount": "lots"}}]}
            ),
        )
    dated = apply_profile(
        build_schema(),
        load_profile_text(
            tmp_path, "automation: [{object: Opportunity, name: A, set: {CloseDate: 2027-01-31}}]"
        ),
    )
    assert dated.automation[0].set == {"CloseDate": "2027-01-31"}
    bad = tmp_path / "p.yaml"
    bad.write_text("validation_rules: [", encoding="utf-8")
    with pytest.raises(OrgProfileError, match="not valid YAML"):
        load_profile(bad)


async def test_control_route_refuses_a_bad_profile_and_clears(
    org: SalesforceSandbox, sf_client: httpx.AsyncClient, sf: httpx.AsyncClient
) -> None:
    bad = await sf_client.put(
        "/control/org-profile", json={"duplicate_rules": [{"object": "Case"}]}
    )
    assert bad.status_code == 400
    assert "action must be" in bad.json()[0]["message"]
    clean = await sf_client.put("/control/org-profile", json={})
    assert clean.status_code == 204
    await opportunity(sf)  # Region__c no longer required


async def test_record_types_in_describe_picklists_and_writes(
    org: SalesforceSandbox, sf: httpx.AsyncClient
) -> None:
    described = (await sf.get(f"{V}/sobjects/Opportunity/describe")).json()
    infos = {i["developerName"]: i for i in described["recordTypeInfos"]}
    assert set(infos) == {"Partner_Deal", "Enterprise_Deal", "Master"}
    assert infos["Partner_Deal"]["defaultRecordTypeMapping"] is True
    assert infos["Enterprise_Deal"]["defaultRecordTypeMapping"] is False
    assert infos["Master"]["available"] is False
    partner = infos["Partner_Deal"]["recordTypeId"]
    enterprise = infos["Enterprise_Deal"]["recordTypeId"]
    assert partner.startswith("012")
    assert len(partner) == 18
    assert any(f["name"] == "RecordTypeId" for f in described["fields"])
    picklists = await sf.get(f"{V}/ui-api/object-info/Opportunity/picklist-values/{partner}")
    assert picklists.status_code == 200
    stage = picklists.json()["picklistFieldValues"]["StageName"]
    assert [v["value"] for v in stage["values"]] == [
        "Prospecting",
        "Needs Analysis",
        "Closed Won",
        "Closed Lost",
    ]
    assert stage["url"].endswith(f"/picklist-values/{partner}/StageName")
    unknown = await sf.get(f"{V}/ui-api/object-info/Opportunity/picklist-values/012000000000001")
    assert unknown.status_code == 404
    # A create without a record type gets the default one, whose sales process applies.
    deal = await _deal(sf)
    row = (await sf.get(f"{V}/sobjects/Opportunity/{deal}")).json()
    assert row["RecordTypeId"] == partner
    refused = await sf.patch(
        f"{V}/sobjects/Opportunity/{deal}", json={"StageName": "Proposal/Price Quote"}
    )
    item = await error_of(refused, 400)
    assert item == {
        "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "message": "Stage: bad value for restricted picklist field: Proposal/Price Quote",
        "fields": ["StageName"],
    }
    moved = await sf.patch(
        f"{V}/sobjects/Opportunity/{deal}",
        json={"StageName": "Proposal/Price Quote", "RecordTypeId": enterprise},
    )
    assert moved.status_code == 204, moved.text
    bad = await sf.patch(
        f"{V}/sobjects/Opportunity/{deal}", json={"RecordTypeId": "012000000000001"}
    )
    bad_item = await error_of(bad, 400)
    assert bad_item["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert bad_item["fields"] == ["RecordTypeId"]


async def test_composite_reports_the_rule_and_rolls_back_all_or_none(
    org: SalesforceSandbox, sf: httpx.AsyncClient
) -> None:
    deal = await _deal(sf)
    response = await sf.post(
        f"{V}/composite",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": f"{V}/sobjects/Opportunity/{deal}",
                    "referenceId": "ok",
                    "body": {"Amount": 10},
                },
                {
                    "method": "PATCH",
                    "url": f"{V}/sobjects/Opportunity/{deal}",
                    "referenceId": "refused",
                    "body": {"StageName": "Closed Won", "Amount": None},
                },
            ],
        },
    )
    assert response.status_code == 200
    first, second = response.json()["compositeResponse"]
    assert second["httpStatusCode"] == 400
    assert second["body"] == [
        {
            "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Enter an amount before committing the deal.",
            "fields": ["Amount"],
        }
    ]
    assert first["httpStatusCode"] == 400
    assert first["body"][0]["errorCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    row = (await sf.get(f"{V}/sobjects/Opportunity/{deal}")).json()
    assert row["Amount"] is None
