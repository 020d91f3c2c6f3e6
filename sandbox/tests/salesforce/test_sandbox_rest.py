"""The sandbox's sObject REST resources over HTTP: CRUD, validation, upsert, ids, stages."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from sf_sandbox_helpers import SF_BASE_URL as SF
from sf_sandbox_helpers import V, create, error_of, login, opportunity

from cosell.clock import ManualClock
from cosell_sandbox.salesforce.app import SalesforceSandbox, SandboxOptions
from cosell_sandbox.salesforce.ids import checksum, looks_like_id, to_18
from cosell_sandbox.salesforce.orgschema import build_schema
from cosell_sandbox.salesforce.schema import FieldSchema

# ----------------------------------------------------------------------------- ids


def test_checksum_matches_salesforce_example() -> None:
    assert checksum("001A0000006Vm9r") == "IAC"
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_18_character_ids_are_repaired_case_insensitively() -> None:
    assert to_18("001a0000006vm9riac") == "001A0000006Vm9rIAC"
    with pytest.raises(ValueError, match="malformed id"):
        to_18("001A0000006Vm9rZZZ")
    with pytest.raises(ValueError, match="15 or 18"):
        to_18("001A")


async def test_created_ids_have_prefix_and_checksum(sf: httpx.AsyncClient) -> None:
    account = await create(sf, "Account", {"Name": "Contoso"})
    opp = await opportunity(sf, AccountId=account)
    lead = await create(sf, "Lead", {"LastName": "Doe", "Company": "Fabrikam"})
    for value, prefix in ((account, "001"), (opp, "006"), (lead, "00Q")):
        assert looks_like_id(value)
        assert len(value) == 18
        assert value.startswith(prefix)
        assert value[15:] == checksum(value[:15])


async def test_fifteen_character_ids_are_accepted(sf: httpx.AsyncClient) -> None:
    account = await create(sf, "Account", {"Name": "Contoso"})
    response = await sf.get(f"{V}/sobjects/Account/{account[:15]}")
    assert response.status_code == 200
    assert response.json()["Id"] == account
    opp = await opportunity(sf, AccountId=account[:15])
    assert (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()["AccountId"] == account


# ----------------------------------------------------------------------------- CRUD


async def test_create_get_update_delete(sf: httpx.AsyncClient, sandbox: SalesforceSandbox) -> None:
    response = await sf.post(f"{V}/sobjects/Account/", json={"Name": "Contoso"})
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "success": True, "errors": []}
    assert response.headers["Location"] == f"{V}/sobjects/Account/{body['id']}"
    account = body["id"]

    row = (await sf.get(f"{V}/sobjects/Account/{account}")).json()
    assert row["attributes"] == {"type": "Account", "url": f"{V}/sobjects/Account/{account}"}
    assert row["Name"] == "Contoso"
    assert row["Website"] is None  # unset fields come back as null
    assert row["OwnerId"] == sandbox.integration_user_id
    assert row["CreatedById"] == sandbox.integration_user_id
    assert row["CurrencyIsoCode"] == "USD"

    picked = (await sf.get(f"{V}/sobjects/Account/{account}", params={"fields": "name,Id"})).json()
    assert list(picked) == ["attributes", "Name", "Id"]  # canonical names, in the order asked

    response = await sf.patch(f"{V}/sobjects/Account/{account}", json={"Website": "contoso.com"})
    assert response.status_code == 204
    assert response.content == b""
    row = (await sf.get(f"{V}/sobjects/Account/{account}")).json()
    assert row["Website"] == "contoso.com"

    response = await sf.delete(f"{V}/sobjects/Account/{account}")
    assert response.status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        response = await sf.request(method, f"{V}/sobjects/Account/{account}", json={"Name": "x"})
        item = await error_of(response, 404)
        assert item["errorCode"] == "ENTITY_IS_DELETED"


async def test_not_found_and_malformed_ids(sf: httpx.AsyncClient) -> None:
    missing = to_18("001" + "2I" + "0000000000009"[:10])
    item = await error_of(await sf.get(f"{V}/sobjects/Account/{missing}"), 404)
    assert item["errorCode"] == "NOT_FOUND"
    item = await error_of(await sf.get(f"{V}/sobjects/Account/001A0000006Vm9rZZZ"), 400)
    assert item["errorCode"] == "MALFORMED_ID"
    item = await error_of(await sf.get(f"{V}/sobjects/Account/001A0000006Vm9rIAC"), 404)
    assert item["errorCode"] == "NOT_FOUND"
    opp_id = to_18("006A0000006Vm9r")
    item = await error_of(await sf.get(f"{V}/sobjects/Account/{opp_id}"), 400)
    assert item["errorCode"] == "MALFORMED_ID"
    item = await error_of(await sf.get(f"{V}/sobjects/Account/nonsense"), 404)
    assert "Provided external ID field does not exist" in item["message"]


async def test_unknown_sobject_and_unknown_version(sf: httpx.AsyncClient) -> None:
    item = await error_of(await sf.get(f"{V}/sobjects/Widget__c/describe"), 404)
    assert item["errorCode"] == "NOT_FOUND"
    item = await error_of(await sf.get("/services/data/v30.0/sobjects"), 404)
    assert item["errorCode"] == "NOT_FOUND"
    assert (await sf.get("/services/data/v67.0/")).status_code == 404
    assert (await sf.get("/services/data/v31.0/")).status_code == 200
    assert (await sf.get("/services/data/v66.0/")).status_code == 200


async def test_versions_list_needs_no_auth(sf_client: httpx.AsyncClient) -> None:
    for path in ("/services/data/", "/services/data"):
        response = await sf_client.get(path)
        assert response.status_code == 200
        versions = response.json()
        assert versions[0]["version"] == "31.0"
        assert versions[-1]["version"] == "66.0"
        v59 = next(v for v in versions if v["version"] == "59.0")
        assert v59 == {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}


async def test_data_calls_need_a_valid_session(
    sf_client: httpx.AsyncClient, sf: httpx.AsyncClient, sandbox: SalesforceSandbox
) -> None:
    response = await sf_client.get(f"{V}/sobjects")
    item = await error_of(response, 401)
    assert item["errorCode"] == "INVALID_SESSION_ID"
    assert response.headers["WWW-Authenticate"] == "Token"
    assert (await sf.get(f"{V}/limits/")).status_code == 200
    sandbox.identity.expire_sessions()
    item = await error_of(await sf.get(f"{V}/limits/"), 401)
    assert item["errorCode"] == "INVALID_SESSION_ID"


async def test_resources_describe_and_routing_slashes(sf: httpx.AsyncClient) -> None:
    resources = (await sf.get(f"{V}/")).json()
    assert resources["sobjects"] == f"{V}/sobjects"
    assert resources["query"] == f"{V}/query"
    described = await sf.get(f"{V}/sobjects")  # simple-salesforce: no trailing slash
    assert described.status_code == 200
    names = {o["name"] for o in described.json()["sobjects"]}
    assert {"Account", "Opportunity", "Microsoft_Solution__c", "ContentNote"} <= names
    basic = await sf.get(f"{V}/sobjects/Opportunity/")
    assert basic.status_code == 200
    assert basic.json()["objectDescribe"]["name"] == "Opportunity"
    describe = await sf.get(f"{V}/sobjects/opportunity/describe")
    assert describe.status_code == 200
    assert describe.json()["name"] == "Opportunity"
    since = described.headers["Last-Modified"]
    response = await sf.get(f"{V}/sobjects", headers={"If-Modified-Since": since})
    assert response.status_code == 304
    assert response.content == b""


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "code", "fields"),
    [
        ({"Name": "Deal"}, "REQUIRED_FIELD_MISSING", ["StageName", "CloseDate"]),
        ({"Bogus__c": 1}, "INVALID_FIELD", ["Bogus__c"]),
        ({"IsWon": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsWon"]),
        ({"StageName": "Dreaming"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["StageName"]),
        ({"Name": "x" * 121}, "STRING_TOO_LONG", ["Name"]),
        ({"AccountId": "001xyz"}, "MALFORMED_ID", ["AccountId"]),
        ({"CloseDate": "2026-13-45"}, "JSON_PARSER_ERROR", None),
        ({"Amount": "lots"}, "JSON_PARSER_ERROR", None),
        ({"IsPrivate": "maybe"}, "JSON_PARSER_ERROR", None),
        ({"Id": "006A0000006Vm9rIAC"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Id"]),
    ],
)
async def test_create_validation(
    sf: httpx.AsyncClient, body: dict[str, Any], code: str, fields: list[str] | None
) -> None:
    full = {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}
    if code == "REQUIRED_FIELD_MISSING":
        full = {}
    item = await error_of(await sf.post(f"{V}/sobjects/Opportunity/", json={**full, **body}), 400)
    assert item["errorCode"] == code
    if fields is not None:
        assert item["fields"] == fields
    if code == "REQUIRED_FIELD_MISSING":
        assert item["message"] == "Required fields are missing: [StageName, CloseDate]"
    if code == "INVALID_FIELD":
        assert item["message"] == "No such column 'Bogus__c' on sobject of type Opportunity"
    if code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST":
        assert item["message"] == "Stage: bad value for restricted picklist field: Dreaming"


async def test_reference_targets_must_exist_and_have_the_right_type(
    sf: httpx.AsyncClient,
) -> None:
    lead = await create(sf, "Lead", {"LastName": "Doe", "Company": "Fabrikam"})
    item = await error_of(
        await sf.post(
            f"{V}/sobjects/Opportunity/",
            json={
                "Name": "D",
                "StageName": "Prospecting",
                "CloseDate": "2026-01-01",
                "AccountId": lead,
            },
        ),
        400,
    )
    assert item["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    ghost = to_18("0012I00000000ZZ")
    item = await error_of(
        await sf.post(
            f"{V}/sobjects/Opportunity/",
            json={
                "Name": "D",
                "StageName": "Prospecting",
                "CloseDate": "2026-01-01",
                "AccountId": ghost,
            },
        ),
        400,
    )
    assert item["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


async def test_update_validation(sf: httpx.AsyncClient) -> None:
    opp = await opportunity(sf)
    cases = [
        ({"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Name": None}, "REQUIRED_FIELD_MISSING"),
        ({"nope": 1}, "INVALID_FIELD"),
    ]
    for body, code in cases:
        item = await error_of(await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json=body), 400)
        assert item["errorCode"] == code
    item = await error_of(
        await sf.patch(
            f"{V}/sobjects/Opportunity/{opp}",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        ),
        400,
    )
    assert item["errorCode"] == "JSON_PARSER_ERROR"
    # create-only field: OpportunityContactRole.OpportunityId cannot be updated
    contact = await create(sf, "Contact", {"LastName": "Doe"})
    role = await create(sf, "OpportunityContactRole", {"OpportunityId": opp, "ContactId": contact})
    other = await opportunity(sf)
    item = await error_of(
        await sf.patch(
            f"{V}/sobjects/OpportunityContactRole/{role}", json={"OpportunityId": other}
        ),
        400,
    )
    assert item["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


async def test_names_are_case_insensitive_in_and_canonical_out(sf: httpx.AsyncClient) -> None:
    opp = await create(
        sf,
        "opportunity",
        {"name": "Deal", "STAGENAME": "Qualification", "closedate": "2026-06-30", "amount": 5},
    )
    row = (await sf.get(f"{V}/sobjects/OPPORTUNITY/{opp}")).json()
    assert row["attributes"]["type"] == "Opportunity"
    assert row["StageName"] == "Qualification"
    assert row["Amount"] == 5.0


async def test_duplicate_unique_values_are_refused(
    sf: httpx.AsyncClient, sandbox: SalesforceSandbox
) -> None:
    await opportunity(sf, Referral_Identifier__c="ref-1")
    item = await error_of(
        await sf.post(
            f"{V}/sobjects/Opportunity/",
            json={
                "Name": "D",
                "StageName": "Prospecting",
                "CloseDate": "2026-01-01",
                "Referral_Identifier__c": "REF-1",
            },
        ),
        400,
    )
    assert item["errorCode"] == "DUPLICATE_VALUE"
    opp = await opportunity(sf)
    body = {
        "OpportunityId": opp,
        "UserId": sandbox.seller_user_id,
        "TeamMemberRole": "Sales Rep",
        "OpportunityAccessLevel": "Edit",
    }
    await create(sf, "OpportunityTeamMember", body)
    item = await error_of(await sf.post(f"{V}/sobjects/OpportunityTeamMember/", json=body), 400)
    assert item["errorCode"] == "DUPLICATE_VALUE"


# ----------------------------------------------------------------------------- system fields


async def test_timestamps_strictly_increase_within_one_clock_tick(
    sf: httpx.AsyncClient, sf_clock: ManualClock
) -> None:
    opp = await opportunity(sf)
    stamps = [(await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()["SystemModstamp"]]
    for amount in range(5):
        await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json={"Amount": amount})
        row = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()
        stamps.append(row["SystemModstamp"])
        assert row["LastModifiedDate"] == row["SystemModstamp"]
    assert stamps == sorted(set(stamps))
    assert all(
        s.endswith("+0000") and len(s) == len("2026-01-05T09:00:00.000+0000") for s in stamps
    )
    sf_clock.advance(60)
    await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json={"Amount": 9})
    row = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert row["SystemModstamp"].startswith("2026-01-05T09:01:00.")
    assert row["CreatedDate"] == stamps[0]


@pytest.mark.parametrize(
    ("stage", "probability", "closed", "won", "forecast"),
    [
        ("Prospecting", 10.0, False, False, "Pipeline"),
        ("Negotiation/Review", 90.0, False, False, "Pipeline"),
        ("Closed Won", 100.0, True, True, "Closed"),
        ("Closed Lost", 0.0, True, False, "Omitted"),
    ],
)
async def test_stage_rules(
    sf: httpx.AsyncClient, stage: str, probability: float, closed: bool, won: bool, forecast: str
) -> None:
    opp = await opportunity(sf, StageName=stage, Amount=1000)
    row = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert (row["Probability"], row["IsClosed"], row["IsWon"], row["ForecastCategoryName"]) == (
        probability,
        closed,
        won,
        forecast,
    )
    assert row["ExpectedRevenue"] == 1000 * probability / 100


async def test_stage_change_resets_probability_unless_given(sf: httpx.AsyncClient) -> None:
    opp = await opportunity(sf, Probability=33)
    row = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert row["Probability"] == 33.0
    await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json={"StageName": "Closed Won"})
    row = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert (row["Probability"], row["IsWon"], row["ForecastCategory"]) == (100.0, True, "Closed")
    await sf.patch(
        f"{V}/sobjects/Opportunity/{opp}", json={"StageName": "Qualification", "Probability": 42}
    )
    row = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert (row["Probability"], row["IsClosed"]) == (42.0, False)


async def test_empty_string_is_stored_as_null(sf: httpx.AsyncClient) -> None:
    opp = await opportunity(sf, NextStep="call")
    await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json={"NextStep": ""})
    assert (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()["NextStep"] is None


# ----------------------------------------------------------------------------- upsert


async def test_upsert_created_updated_and_several_matches(sf: httpx.AsyncClient) -> None:
    url = f"{V}/sobjects/Opportunity/Referral_Identifier__c/ref-42"
    body = {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}
    created = await sf.patch(url, json=body)
    assert created.status_code == 201
    opp = created.json()["id"]
    assert created.json() == {"id": opp, "success": True, "errors": [], "created": True}
    updated = await sf.patch(url, json={"Amount": 10})
    assert updated.status_code == 200
    assert updated.json() == {"id": opp, "success": True, "errors": [], "created": False}
    old = await sf.patch(
        "/services/data/v45.0/sobjects/Opportunity/Referral_Identifier__c/ref-42",
        json={"Amount": 11},
    )
    assert old.status_code == 204
    got = await sf.get(url)
    assert got.status_code == 200
    assert got.json()["Id"] == opp
    assert got.json()["Amount"] == 11.0

    item = await error_of(await sf.patch(url, json={"Referral_Identifier__c": "x"}), 400)
    assert item["errorCode"] == "INVALID_FIELD"

    missing = await sf.patch(
        f"{V}/sobjects/Opportunity/Referral_Identifier__c/ref-none",
        params={"updateOnly": "true"},
        json={"Amount": 1},
    )
    assert (await error_of(missing, 404))["errorCode"] == "NOT_FOUND"

    item = await error_of(await sf.patch(f"{V}/sobjects/Opportunity/Nope__c/1", json={}), 404)
    assert "Provided external ID field does not exist" in item["message"]


async def test_upsert_value_with_plus_means_space(sf: httpx.AsyncClient) -> None:
    url = f"{V}/sobjects/Opportunity/Referral_Identifier__c/ref%2042"
    body = {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}
    assert (await sf.patch(url, json=body)).status_code == 201
    got = await sf.get(f"{V}/sobjects/Opportunity/Referral_Identifier__c/ref+42")
    assert got.status_code == 200
    assert got.json()["Referral_Identifier__c"] == "ref 42"
    plus = await sf.patch(f"{V}/sobjects/Opportunity/Referral_Identifier__c/a%2Bb", json=body)
    assert plus.status_code == 201
    assert (await sf.get(f"{V}/sobjects/Opportunity/{plus.json()['id']}")).json()[
        "Referral_Identifier__c"
    ] == "a+b"


async def test_upsert_on_several_matches_answers_300(
    sf_clock: ManualClock, sf_key_dir: Path
) -> None:
    # A non-unique external id (not in our metadata, but legal in an org) can match several.
    schema = build_schema()
    lead = schema.sobject("Lead")
    assert lead is not None
    lead.add_field(
        FieldSchema(
            "Legacy_Key__c", "Legacy Key", "string", length=20, external_id=True, custom=True
        )
    )
    sandbox = SalesforceSandbox(
        base_url=SF,
        clock=sf_clock,
        options=SandboxOptions(seed=1, key_dir=sf_key_dir),
        schema=schema,
    )
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=SF) as client:
        client.headers["Authorization"] = f"Bearer {await login(client, sandbox)}"
        body = {"LastName": "A", "Company": "C", "Legacy_Key__c": "dup"}
        first = await create(client, "Lead", body)
        second = await create(client, "Lead", body)
        response = await client.patch(
            f"{V}/sobjects/Lead/Legacy_Key__c/dup", json={"LastName": "Z"}
        )
        assert response.status_code == 300
        assert response.json() == [f"{V}/sobjects/Lead/{first}", f"{V}/sobjects/Lead/{second}"]
        assert (await client.get(f"{V}/sobjects/Lead/Legacy_Key__c/dup")).status_code == 300
        one = await client.patch(
            f"{V}/sobjects/Lead/Legacy_Key__c/solo", json={"LastName": "Z", "Company": "C"}
        )
        assert one.status_code == 201


# ----------------------------------------------------------------------------- notes


async def test_content_note_content_and_document(sf: httpx.AsyncClient) -> None:
    opp = await opportunity(sf)
    html = "<p>Call <b>Contoso</b> &amp; Microsoft</p>"
    note = await create(
        sf, "ContentNote", {"Title": "Kickoff", "Content": base64.b64encode(html.encode()).decode()}
    )
    assert note.startswith("069")
    row = (await sf.get(f"{V}/sobjects/ContentNote/{note}")).json()
    assert row["TextPreview"] == "Call Contoso & Microsoft"
    assert row["Content"] == f"{V}/sobjects/ContentNote/{note}/Content"
    assert row["FileType"] == "SNOTE"
    raw = await sf.get(f"{V}/sobjects/ContentNote/{note}/Content")
    assert raw.status_code == 200
    assert raw.content == html.encode()
    link = await create(
        sf,
        "ContentDocumentLink",
        {"ContentDocumentId": note, "LinkedEntityId": opp, "ShareType": "V"},
    )
    assert link.startswith("06A")
    item = await error_of(
        await sf.post(f"{V}/sobjects/ContentNote/", json={"Title": "x", "Content": "@@@"}), 400
    )
    assert item["errorCode"] == "JSON_PARSER_ERROR"


async def test_delete_cascades_to_master_detail_children(sf: httpx.AsyncClient) -> None:
    opp = await opportunity(sf)
    solution = await create(sf, "Microsoft_Solution__c", {"Name": "Azure", "Opportunity__c": opp})
    assert (await sf.delete(f"{V}/sobjects/Opportunity/{opp}")).status_code == 204
    item = await error_of(await sf.get(f"{V}/sobjects/Microsoft_Solution__c/{solution}"), 404)
    assert item["errorCode"] == "ENTITY_IS_DELETED"


# ----------------------------------------------------------------------------- conditional


async def test_if_unmodified_since_on_opportunity(
    sf: httpx.AsyncClient, sf_clock: ManualClock
) -> None:
    opp = await opportunity(sf)
    read = await sf.get(f"{V}/sobjects/Opportunity/{opp}")
    last_modified = read.headers["Last-Modified"]
    ok = await sf.patch(
        f"{V}/sobjects/Opportunity/{opp}",
        json={"Amount": 1},
        headers={"If-Unmodified-Since": last_modified},
    )
    assert ok.status_code == 204
    sf_clock.advance(5)
    await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json={"Amount": 2})
    stale = await sf.patch(
        f"{V}/sobjects/Opportunity/{opp}",
        json={"Amount": 3},
        headers={"If-Unmodified-Since": last_modified},
    )
    item = await error_of(stale, 412)
    assert item["errorCode"] == "PRECONDITION_FAILED"
    assert (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()["Amount"] == 2.0
    bad = await sf.patch(
        f"{V}/sobjects/Opportunity/{opp}",
        json={"Amount": 3},
        headers={"If-Unmodified-Since": "yesterday"},
    )
    assert (await error_of(bad, 400))["errorCode"] == "MALFORMED_HEADER"
    # not on DELETE: the header is ignored
    gone = await sf.delete(
        f"{V}/sobjects/Opportunity/{opp}", headers={"If-Unmodified-Since": last_modified}
    )
    assert gone.status_code == 204


async def test_if_modified_since_on_get(sf: httpx.AsyncClient, sf_clock: ManualClock) -> None:
    opp = await opportunity(sf)
    stamp = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).headers["Last-Modified"]
    sf_clock.advance(2)
    same = await sf.get(f"{V}/sobjects/Opportunity/{opp}", headers={"If-Modified-Since": stamp})
    assert same.status_code == 304
    await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json={"Amount": 2})
    changed = await sf.get(f"{V}/sobjects/Opportunity/{opp}", headers={"If-Modified-Since": stamp})
    assert changed.status_code == 200


async def test_etag_on_account(sf: httpx.AsyncClient) -> None:
    account = await create(sf, "Account", {"Name": "Contoso"})
    read = await sf.get(f"{V}/sobjects/Account/{account}")
    tag = read.headers["ETag"]
    assert tag.startswith('"')
    assert tag.endswith('--gzip"')
    not_modified = await sf.get(f"{V}/sobjects/Account/{account}", headers={"If-None-Match": tag})
    assert not_modified.status_code == 304
    ok = await sf.patch(
        f"{V}/sobjects/Account/{account}", json={"Phone": "1"}, headers={"If-Match": tag}
    )
    assert ok.status_code == 204
    stale = await sf.patch(
        f"{V}/sobjects/Account/{account}", json={"Phone": "2"}, headers={"If-Match": tag}
    )
    assert (await error_of(stale, 412))["errorCode"] == "PRECONDITION_FAILED"
    new_tag = (await sf.get(f"{V}/sobjects/Account/{account}")).headers["ETag"]
    assert new_tag != tag
    malformed = await sf.patch(
        f"{V}/sobjects/Account/{account}", json={"Phone": "2"}, headers={"If-Match": "nope"}
    )
    assert (await error_of(malformed, 400))["errorCode"] == "MALFORMED_HEADER"
    none_match = await sf.patch(
        f"{V}/sobjects/Account/{account}", json={"Phone": "3"}, headers={"If-None-Match": new_tag}
    )
    assert none_match.status_code == 412


async def test_wrong_method_and_unknown_resource(sf: httpx.AsyncClient) -> None:
    item = await error_of(await sf.put(f"{V}/sobjects/Account/", json={}), 405)
    assert item["errorCode"] == "METHOD_NOT_ALLOWED"
    item = await error_of(await sf.get(f"{V}/nothing-here"), 404)
    assert item["errorCode"] == "NOT_FOUND"
    item = await error_of(await sf.post(f"{V}/limits/"), 405)
    assert item["errorCode"] == "METHOD_NOT_ALLOWED"


async def test_smaller_routes(sf: httpx.AsyncClient) -> None:
    created = await sf.post(
        f"{V}/sobjects/Lead/Id", json={"LastName": "Doe", "FirstName": "Jo", "Company": "F"}
    )
    assert created.status_code == 201
    lead = (await sf.get(f"{V}/sobjects/Lead/{created.json()['id']}")).json()
    assert lead["Name"] == "Jo Doe"
    assert lead["Status"] == "Open - Not Contacted"
    latest = await sf.get("/services/data/latest/limits/")
    assert latest.status_code == 200
    await opportunity(sf, Referral_Identifier__c="del-me")
    by_ext = f"{V}/sobjects/Opportunity/Referral_Identifier__c/del-me"
    assert (await sf.delete(by_ext)).status_code == 204
    assert (await sf.get(by_ext)).status_code == 404
    account = await create(sf, "Account", {"Name": "A"})
    retrieved = await sf.post(
        f"{V}/composite/sobjects/Account", json={"ids": [account], "fields": ["Name"]}
    )
    assert retrieved.json() == [
        {"attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{account}"}, "Name": "A"}
    ]


@pytest.mark.parametrize(
    ("field", "given", "stored"),
    [
        ("CloseDate", "2026-03-04T23:30:00-02:00", "2026-03-05"),
        ("LastStageChangeDate", None, None),
        ("Amount", "12.345", 12.35),
        ("TotalOpportunityQuantity", 3, 3.0),
        ("IsPrivate", "true", True),
        ("Name", 42, "42"),
    ],
)
async def test_values_are_converted_to_their_wire_form(
    sf: httpx.AsyncClient, field: str, given: Any, stored: Any
) -> None:
    if given is None:  # read-only datetime fields stay unset
        opp = await opportunity(sf)
    else:
        opp = await opportunity(sf, **{field: given})
    assert (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()[field] == stored


async def test_bad_dates_are_refused(sf: httpx.AsyncClient) -> None:
    for value in ("2026-12-31junk", "31/12/2026", 20261231):
        response = await sf.post(
            f"{V}/sobjects/Opportunity/",
            json={"Name": "D", "StageName": "Prospecting", "CloseDate": value},
        )
        assert (await error_of(response, 400))["errorCode"] == "JSON_PARSER_ERROR"


async def test_stage_change_date_and_note_edits(sf: httpx.AsyncClient) -> None:
    opp = await opportunity(sf)
    assert (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()["LastStageChangeDate"] is None
    await sf.patch(f"{V}/sobjects/Opportunity/{opp}", json={"StageName": "Qualification"})
    row = (await sf.get(f"{V}/sobjects/Opportunity/{opp}")).json()
    assert row["LastStageChangeDate"] == row["LastModifiedDate"]
    note = await create(
        sf, "ContentNote", {"Title": "t", "Content": base64.b64encode(b"first").decode()}
    )
    await sf.patch(
        f"{V}/sobjects/ContentNote/{note}", json={"Content": base64.b64encode(b"second").decode()}
    )
    row = (await sf.get(f"{V}/sobjects/ContentNote/{note}")).json()
    assert row["TextPreview"] == "second"
    assert row["ContentSize"] == len(b"second")
    assert (await sf.get(f"{V}/sobjects/ContentNote/{note}/Content")).content == b"second"
