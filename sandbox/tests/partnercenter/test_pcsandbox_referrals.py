"""The Referrals API over HTTP: create, get, list (OData, paging), PATCH, errors and headers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pcsandbox_helpers import BASE_URL, REFERRALS, co_sell_body, referral_body, user_token

from cosell.clock import ManualClock
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxOptions

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
Create = Callable[..., Any]
# A well-formed token whose sort key is not one the service writes.
FORGED_TOKEN = "eyJmIjogbnVsbCwgIm8iOiBudWxsLCAicyI6IG51bGwsICJjIjogZmFsc2UsICJ0IjogMiwgImsiOiBbInNraXAiLCAieCJdfQ"


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "target", "innerError"}
    return dict(body["error"])


def events(sandbox: PartnerCenterSandbox, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(sandbox.webhooks, "emit", lambda name, rid: seen.append((name, rid)))
    return seen


async def patch(
    api: httpx.AsyncClient, referral_id: str, ops: list[dict[str, Any]], **headers: str
) -> httpx.Response:
    return await api.patch(f"{REFERRALS}/{referral_id}", json=ops, headers=headers)


def replace(path: str, value: Any) -> dict[str, Any]:
    return {"op": "replace", "path": path, "value": value}


# ---- create -----------------------------------------------------------------------------


async def test_create_stores_an_outgoing_active_accepted_referral(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = events(sandbox, monkeypatch)
    body = referral_body(status="New", substatus="Pending", direction="Incoming")
    body["somethingNew"] = {"kept": [1, 2]}
    response = await api.post(REFERRALS, json=body, headers={"client-request-id": "req-1"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["status"], created["substatus"], created["direction"]) == (
        "Active",
        "Accepted",
        "Outgoing",
    )
    assert GUID.match(created["id"])
    assert GUID.match(created["engagementId"])
    assert created["eTag"].startswith('"')
    assert created["eTag"].endswith('"')
    assert response.headers["ETag"] == created["eTag"]
    assert response.headers["Location"] == f"{BASE_URL}{REFERRALS}/{created['id']}"
    assert GUID.match(response.headers["request-id"])
    assert response.headers["client-request-id"] == "req-1"
    for field in ("createdDateTime", "updatedDateTime", "acceptedDateTime"):
        assert TIMESTAMP.match(created[field]), field
    assert created["createdDateTime"] == "2026-01-05T09:00:00.0000000Z"
    assert created["acceptedDateTime"] == created["createdDateTime"]
    assert created["externalReferenceId"] == "0065g00000XyZabAAB"
    assert created["somethingNew"] == {"kept": [1, 2]}
    assert created["organizationId"] == sandbox.identity.tenant_id
    assert created["organizationName"]
    assert created["links"]["self"]["uri"] == f"{BASE_URL}{REFERRALS}/{created['id']}"
    related = created["links"]["relatedReferrals"]["uri"]
    assert related == f"{BASE_URL}{REFERRALS}?$filter=engagementId%20eq%20{created['engagementId']}"
    assert seen == [("referral-created", created["id"])]


@pytest.mark.parametrize(
    ("path", "target"),
    [
        (("name",), "/name"),
        (("type",), "/type"),
        (("customerProfile",), "/customerProfile"),
        (("customerProfile", "name"), "/customerProfile/name"),
        (("customerProfile", "address"), "/customerProfile/address"),
        (("customerProfile", "address", "country"), "/customerProfile/address/country"),
        (("consent",), "/consent"),
        (("details",), "/details"),
        (("details", "dealValue"), "/details/dealValue"),
        (("details", "currency"), "/details/currency"),
        (("details", "closingDateTime"), "/details/closingDateTime"),
    ],
)
async def test_create_requires_each_field(
    api: httpx.AsyncClient, path: tuple[str, ...], target: str
) -> None:
    body = referral_body()
    parent: Any = body
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    response = await api.post(REFERRALS, json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalidRequest"
    assert error["target"] == target
    assert target in error["message"]


@pytest.mark.parametrize("country", ["USA", "us", "XX", "", 840])
async def test_create_refuses_a_country_that_is_not_iso2(
    api: httpx.AsyncClient, country: Any
) -> None:
    body = referral_body()
    body["customerProfile"]["address"]["country"] = country
    response = await api.post(REFERRALS, json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["target"] == "/customerProfile/address/country"
    assert "ISO 3166-1 alpha-2" in error["message"]


@pytest.mark.parametrize("currency", ["US$", "usd", "XYZ", "EURO", None])
async def test_create_refuses_a_currency_that_is_not_iso4217(
    api: httpx.AsyncClient, currency: Any
) -> None:
    body = referral_body()
    body["details"]["currency"] = currency
    response = await api.post(REFERRALS, json=body)
    assert response.status_code == 400
    assert error_of(response)["target"] == "/details/currency"
    assert "ISO 4217" in error_of(response)["message"]


@pytest.mark.parametrize("country", ["DE", "JP", "BR", "CH", "SG"])
async def test_create_accepts_real_countries_and_currencies(create: Create, country: str) -> None:
    body = referral_body()
    body["customerProfile"]["address"]["country"] = country
    body["details"]["currency"] = {"DE": "EUR", "JP": "JPY", "BR": "BRL", "CH": "CHF"}.get(
        country, "SGD"
    )
    created = await create(body)
    assert created["customerProfile"]["address"]["country"] == country


@pytest.mark.parametrize(
    ("mutate", "target", "message"),
    [
        (lambda b: b["details"].update(dealValue=-1), "/details/dealValue", "at least 0"),
        (lambda b: b["details"].update(dealValue="lots"), "/details/dealValue", "not a number"),
        (lambda b: b.update(type="Private"), "/type", "use one of Independent, Shared"),
        (lambda b: b.update(qualification="Hot"), "/qualification", "use one of"),
        (lambda b: b["details"].update(closingDateTime="soon"), "/details/closingDateTime", "ISO"),
        (lambda b: b.update(team=[{"email": "a@b.c"}] * 51), "/team", "at most 50"),
        (
            lambda b: b.update(inviteContext={"assistanceRequestCode": "PleaseHelp"}),
            "/inviteContext/assistanceRequestCode",
            "use one of",
        ),
        (
            lambda b: (
                b.update(inviteContext={"assistanceRequestCode": "QuotesOrLicensing"}),
                b["details"].update(requirements={"solutions": []}),
            ),
            "/details/requirements/solutions",
            "Solution ID is required",
        ),
        (
            lambda b: (
                b.update(inviteContext={"assistanceRequestCode": "QuotesOrLicensing"}),
                b["customerProfile"].update(team=[]),
            ),
            "/customerProfile/team",
            "customer contact",
        ),
        (lambda b: b.update(engagementId="nope"), "/engagementId", "does not exist"),
    ],
)
async def test_create_refuses_bad_values(
    api: httpx.AsyncClient, mutate: Callable[[dict[str, Any]], Any], target: str, message: str
) -> None:
    body = referral_body()
    mutate(body)
    response = await api.post(REFERRALS, json=body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["target"] == target
    assert message in error["message"]


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'"text"'])
async def test_create_refuses_a_body_that_is_not_a_referral_object(
    api: httpx.AsyncClient, content: bytes
) -> None:
    response = await api.post(
        REFERRALS, content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalidRequest"


async def test_a_lone_surrogate_is_refused_and_the_list_keeps_working(
    api: httpx.AsyncClient,
) -> None:
    # The sandbox once stored a referral named "\ud800" and answered 500 to every list after.
    content = json.dumps(referral_body(name="\ud800 deal")).encode()
    assert b"\\ud800" in content
    response = await api.post(
        REFERRALS, content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "unpaired UTF-16 surrogate" in error_of(response)["message"]
    listed = await api.get(REFERRALS)
    assert listed.status_code == 200


async def test_create_accepts_nulls_and_empty_enum_strings(create: Create) -> None:
    body = referral_body(qualification="", statusReason=None, inviteContext=None, target=None)
    body["customerProfile"]["size"] = ""
    created = await create(body)
    assert created["customerProfile"]["size"] == ""


async def test_create_joins_an_existing_engagement(create: Create) -> None:
    first = await create()
    second = await create(referral_body(engagementId=first["engagementId"]))
    assert second["engagementId"] == first["engagementId"]
    assert second["id"] != first["id"]


# ---- sharing with Microsoft -------------------------------------------------------------


@pytest.mark.parametrize(
    "share",
    [
        lambda b: b["consent"].update(consentToShareReferralWithMicrosoftSellers=True),
        lambda b: b.update(inviteContext={"assistanceRequestCode": "GeneralOrOther"}),
        lambda b: b.update(target=[{"type": "BusinessProfileLocation", "id": "msft"}]),
    ],
    ids=["consent", "help", "target-msft"],
)
async def test_a_referral_shared_with_microsoft_gets_a_microsoft_referral(
    api: httpx.AsyncClient,
    create: Create,
    sandbox: PartnerCenterSandbox,
    monkeypatch: pytest.MonkeyPatch,
    share: Callable[[dict[str, Any]], Any],
) -> None:
    seen = events(sandbox, monkeypatch)
    body = referral_body(type="Shared")
    share(body)
    mine = await create(body)
    response = await api.get(
        REFERRALS, params={"$filter": f"engagementId eq {mine['engagementId']}"}
    )
    assert response.status_code == 200
    referrals = {r["organizationId"]: r for r in response.json()["value"]}
    assert set(referrals) == {sandbox.identity.tenant_id, "msft"}
    microsoft = referrals["msft"]
    assert microsoft["organizationName"] == "Microsoft"
    assert (microsoft["status"], microsoft["substatus"]) == ("New", "Pending")
    assert microsoft["engagementId"] == mine["engagementId"]
    assert TIMESTAMP.match(microsoft["expirationDateTime"])
    assert seen == [("referral-created", mine["id"]), ("related-referral-created", microsoft["id"])]
    got = await api.get(f"{REFERRALS}/{microsoft['id']}")
    assert got.status_code == 200
    refused = await patch(api, microsoft["id"], [replace("/details/notes", "mine now")])
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "accessDenied"
    assert "read-only to you" in error_of(refused)["message"]


async def test_a_private_referral_has_no_microsoft_side(
    api: httpx.AsyncClient, create: Create
) -> None:
    mine = await create()
    response = await api.get(
        REFERRALS, params={"$filter": f"engagementId eq '{mine['engagementId']}'"}
    )
    assert [r["id"] for r in response.json()["value"]] == [mine["id"]]


async def test_sharing_later_by_patch_creates_the_microsoft_referral(
    api: httpx.AsyncClient, create: Create, sandbox: PartnerCenterSandbox
) -> None:
    mine = await create()
    response = await patch(
        api, mine["id"], [replace("/consent/consentToShareReferralWithMicrosoftSellers", True)]
    )
    assert response.status_code == 204
    engagement = sandbox.store.engagement(mine["engagementId"])
    assert [r["organizationId"] for r in engagement] == [sandbox.identity.tenant_id, "msft"]


# ---- get --------------------------------------------------------------------------------


async def test_get_by_id(api: httpx.AsyncClient, create: Create) -> None:
    created = await create()
    response = await api.get(f"{REFERRALS}/{created['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("@odata.context") == f"{BASE_URL}/v1.0/$metadata#Referrals/$entity"
    assert body == created
    assert response.headers["ETag"] == created["eTag"]


async def test_get_unknown_id_is_404_item_not_found(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{REFERRALS}/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "itemNotFound"
    assert "does not exist" in error["message"]
    assert GUID.match(response.headers["request-id"])


# ---- auth -------------------------------------------------------------------------------


async def test_no_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(REFERRALS)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


async def test_a_webhooks_token_is_refused(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    token = await user_token(client, sandbox, resource="https://api.partnercenter.microsoft.com")
    response = await client.get(REFERRALS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "audience" in error_of(response)["message"]


async def test_an_app_only_token_is_refused(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    info = sandbox.info()
    token = await client.post(
        f"/{info['tenant_id']}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "resource": "https://api.partner.microsoft.com",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
        },
    )
    assert token.status_code == 200, token.text
    response = await client.post(
        REFERRALS,
        json=referral_body(),
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert response.status_code == 403
    assert error_of(response)["code"] == "accessDenied"
    assert len(sandbox.store) == 0


async def test_an_expired_token_is_refused(api: httpx.AsyncClient, clock: ManualClock) -> None:
    assert (await api.get(REFERRALS)).status_code == 200
    clock.advance(3600)
    response = await api.get(REFERRALS)
    assert response.status_code == 401
    assert "expired" in error_of(response)["message"]


# ---- list -------------------------------------------------------------------------------


async def make_many(create: Create, clock: ManualClock, count: int) -> list[dict[str, Any]]:
    made = []
    for index in range(count):
        made.append(await create(referral_body(name=f"Deal {index}")))
        clock.advance(1)
    return made


async def test_paging_over_several_pages_with_next_link_and_count(
    api: httpx.AsyncClient, create: Create, clock: ManualClock
) -> None:
    made = await make_many(create, clock, 7)
    url: str | None = f"{REFERRALS}?$top=2&$count=true"
    pages = []
    while url is not None:
        response = await api.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["@odata.context"] == f"{BASE_URL}/v1.0/$metadata#Referrals"
        assert body["@odata.count"] == 7
        pages.append([r["name"] for r in body["value"]])
        url = body.get("@odata.nextLink")
        if url is not None:
            parts = urlsplit(url)
            assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
            assert parts.path == REFERRALS
            assert set(parse_qs(parts.query)) == {"$skiptoken"}
    assert pages == [
        ["Deal 0", "Deal 1"],
        ["Deal 2", "Deal 3"],
        ["Deal 4", "Deal 5"],
        ["Deal 6"],
    ]
    assert len(made) == 7


@pytest.mark.parametrize("options", [SandboxOptions(seed=7, page_size=3)])
async def test_default_page_size_is_configurable(
    api: httpx.AsyncClient, create: Create, clock: ManualClock
) -> None:
    await make_many(create, clock, 7)
    sizes = []
    url: str | None = REFERRALS
    while url:
        body = (await api.get(url)).json()
        sizes.append(len(body["value"]))
        assert "@odata.count" not in body
        url = body.get("@odata.nextLink")
    assert sizes == [3, 3, 1]


async def test_paging_neither_skips_nor_repeats_when_referrals_are_created_meanwhile(
    api: httpx.AsyncClient, create: Create, clock: ManualClock
) -> None:
    await make_many(create, clock, 4)
    first = (await api.get(REFERRALS, params={"$top": "2"})).json()
    await create(referral_body(name="Late deal"))
    second = (await api.get(first["@odata.nextLink"])).json()
    third = (await api.get(second["@odata.nextLink"])).json()
    names = [r["name"] for page in (first, second, third) for r in page["value"]]
    assert names == ["Deal 0", "Deal 1", "Deal 2", "Deal 3", "Late deal"]
    assert "@odata.nextLink" not in third


async def test_orderby_skip_select_and_filter_carry_across_pages(
    api: httpx.AsyncClient, create: Create, clock: ManualClock
) -> None:
    await make_many(create, clock, 6)
    params = {
        "$orderby": "createdDateTime desc",
        "$skip": "1",
        "$top": "2",
        "$select": "name,details/dealValue",
        "$filter": "startswith(name, 'Deal') and name ne 'Deal 2'",
    }
    body = (await api.get(REFERRALS, params=params)).json()
    assert body["value"] == [
        {"name": "Deal 4", "details": {"dealValue": 25000}},
        {"name": "Deal 3", "details": {"dealValue": 25000}},
    ]
    body = (await api.get(body["@odata.nextLink"])).json()
    assert [r["name"] for r in body["value"]] == ["Deal 1", "Deal 0"]
    assert "@odata.nextLink" not in body


async def test_orderby_updated_date_time(
    api: httpx.AsyncClient, create: Create, clock: ManualClock
) -> None:
    made = await make_many(create, clock, 3)
    assert (
        await patch(api, made[0]["id"], [replace("/details/notes", "touched")])
    ).status_code == 204
    body = (await api.get(REFERRALS, params={"$orderby": "updatedDateTime desc"})).json()
    assert [r["name"] for r in body["value"]] == ["Deal 0", "Deal 2", "Deal 1"]


async def test_filter_examples_from_the_documentation(
    api: httpx.AsyncClient, create: Create, sandbox: PartnerCenterSandbox
) -> None:
    await create()
    incoming = sandbox.store.create_incoming("co-sell")
    cases = {
        "status eq 'New' and qualification eq 'SalesQualified'": {incoming["id"]},
        "customerProfile/address/country eq 'US' and direction eq 'Incoming'": {incoming["id"]},
        "(type eq 'Shared' and direction eq 'Incoming')": {incoming["id"]},
        "(direction eq 'Incoming' and substatus eq 'Pending')": {incoming["id"]},
        "status eq 'Active' and direction eq 'Outgoing' and type eq 'Independent' and "
        "team/any(t:t/email eq 'sam@partner.example')": {
            r["id"] for r in sandbox.store.referrals() if r["name"].startswith("Contoso")
        },
    }
    for expression, expected in cases.items():
        response = await api.get(REFERRALS, params={"$filter": expression})
        assert response.status_code == 200, expression
        assert {r["id"] for r in response.json()["value"]} == expected, expression


@pytest.mark.parametrize(
    ("params", "target", "message"),
    [
        ({"$filter": "status eq"}, "$filter", "at position 9"),
        ({"$orderby": "name"}, "$orderby", "cannot order by 'name'"),
        ({"$top": "1001"}, "$top", "maximum of 1000"),
        ({"$top": "0"}, "$top", "at least 1"),
        ({"$skip": "-2"}, "$skip", "whole number"),
        ({"$count": "maybe"}, "$count", "true or false"),
        ({"$select": "a,,b"}, "$select", "not a property name"),
        ({"$skiptoken": "garbage!"}, "$skiptoken", "not one this service issued"),
        ({"$skiptoken": FORGED_TOKEN}, "$skiptoken", "does not match its query"),
    ],
)
async def test_bad_query_options_are_400(
    api: httpx.AsyncClient, params: dict[str, str], target: str, message: str
) -> None:
    response = await api.get(REFERRALS, params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalidRequest"
    assert error["target"] == target
    assert message in error["message"]


# ---- patch ------------------------------------------------------------------------------


async def test_patch_returns_204_with_a_new_etag(
    api: httpx.AsyncClient,
    create: Create,
    clock: ManualClock,
    sandbox: PartnerCenterSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await create()
    seen = events(sandbox, monkeypatch)
    clock.advance(60)
    response = await patch(
        api,
        created["id"],
        [replace("/details/dealValue", "10000"), replace("/details/notes", "new notes")],
        **{"If-Match": created["eTag"]},
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["ETag"] != created["eTag"]
    got = (await api.get(f"{REFERRALS}/{created['id']}")).json()
    assert got["details"]["dealValue"] == 10000
    assert got["details"]["notes"] == "new notes"
    assert got["eTag"] == response.headers["ETag"]
    assert got["updatedDateTime"] == "2026-01-05T09:01:00.0000000Z"
    assert got["createdDateTime"] == created["createdDateTime"]
    assert seen == [("referral-updated", created["id"])]


async def test_patch_with_prefer_return_representation_is_200_with_the_referral(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create()
    response = await patch(
        api,
        created["id"],
        [{"op": "add", "path": "/team/-", "value": {"email": "new@partner.example"}}],
        Prefer="return=representation",
    )
    assert response.status_code == 200
    body = response.json()
    assert [m["email"] for m in body["team"]] == ["sam@partner.example", "new@partner.example"]
    assert response.headers["ETag"] == body["eTag"]


async def test_patch_keeps_and_adds_unknown_fields(api: httpx.AsyncClient, create: Create) -> None:
    created = await create(referral_body(customField={"a": 1}))
    response = await patch(
        api,
        created["id"],
        [{"op": "add", "path": "/anotherField", "value": [1]}, replace("/customField/a", 2)],
        Prefer="return=representation",
    )
    assert response.status_code == 200
    assert response.json()["customField"] == {"a": 2}
    assert response.json()["anotherField"] == [1]


async def test_a_patch_that_changes_nothing_keeps_the_etag(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create()
    response = await patch(api, created["id"], [replace("/name", created["name"])])
    assert response.status_code == 204
    assert response.headers["ETag"] == created["eTag"]


@pytest.mark.parametrize(
    "transform",
    [
        lambda tag: tag,
        lambda tag: tag.strip('"'),
        lambda tag: f"W/{tag}",
        lambda tag: tag.replace('"', '\\"'),
        lambda tag: f" {tag} ",
        lambda tag: "*",
    ],
    ids=["verbatim", "unquoted", "weak", "escaped", "spaces", "star"],
)
async def test_if_match_is_compared_after_normalising_quotes(
    api: httpx.AsyncClient, create: Create, transform: Callable[[str], str]
) -> None:
    created = await create()
    response = await patch(
        api,
        created["id"],
        [replace("/name", "Renamed")],
        **{"If-Match": transform(created["eTag"])},
    )
    assert response.status_code == 204


async def test_stale_if_match_is_412_with_the_documented_body(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create()
    assert (await patch(api, created["id"], [replace("/name", "First")])).status_code == 204
    response = await patch(
        api, created["id"], [replace("/name", "Second")], **{"If-Match": created["eTag"]}
    )
    assert response.status_code == 412
    assert response.json() == {
        "error": {
            "code": "preconditionFailed",
            "message": "A precondition provided in the request (such as an if-match header) "
            "does not match the resource's current state.",
            "target": "ETag",
            "innerError": {
                "code": "99918",
                "message": "One of the specified pre-condition is not met. Etag value did not Match",
                "details": None,
            },
        }
    }
    assert (await api.get(f"{REFERRALS}/{created['id']}")).json()["name"] == "First"


@pytest.mark.parametrize(
    ("ops", "target", "message"),
    [
        ([{"op": "remove", "path": "/name"}], "/name", "supports only add and replace"),
        ([{"op": "move", "from": "/a", "path": "/name"}], "/name", "supports only add and replace"),
        ([{"op": "replace", "path": "/name"}], "/name", "has no 'value'"),
        ([{"op": "replace", "path": "name", "value": 1}], "name", "must start with '/'"),
        ([replace("/nothing/here", 1)], "/nothing/here", "/nothing does not exist"),
        ([replace("/team/5", {})], "/team/5", "out of range"),
        ([replace("/details/dealValue", "ten")], "/details/dealValue", "not a number"),
        ([replace("/details/currency", "usd")], "/details/currency", "ISO 4217"),
        ([replace("/status", "Open")], "/status", "status 'Open' is not valid"),
    ],
)
async def test_bad_patches_are_400_naming_the_path(
    api: httpx.AsyncClient, create: Create, ops: list[dict[str, Any]], target: str, message: str
) -> None:
    created = await create()
    response = await patch(api, created["id"], ops)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["target"] == target
    assert message in error["message"]
    assert (await api.get(f"{REFERRALS}/{created['id']}")).json()["eTag"] == created["eTag"]


@pytest.mark.parametrize("body", [{}, [], "x"])
async def test_a_patch_body_that_is_not_a_patch_document_is_400(
    api: httpx.AsyncClient, create: Create, body: Any
) -> None:
    created = await create()
    response = await api.patch(f"{REFERRALS}/{created['id']}", json=body)
    assert response.status_code == 400
    assert "JSON Patch document" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/id", "00000000-0000-4000-8000-000000000000"),
        ("/engagementId", "00000000-0000-4000-8000-000000000000"),
        ("/direction", "Incoming"),
        ("/createdDateTime", "2020-01-01T00:00:00.0000000Z"),
        ("/organizationId", "someone-else"),
        ("/organizationName", "Someone else"),
        ("/eTag", '"forged"'),
        ("/trackingInfo/microsoftMsxId", "7-ABC"),
        ("/customerProfile/name", "Another customer"),
        ("/customerProfile/address/country", "DE"),
        ("/customerProfile/address", {"country": "US"}),
        ("/customerProfile/ids", [{"profileType": "Duns", "id": "1"}]),
        ("/consent/consentToContact", False),
    ],
)
async def test_read_only_fields_are_400_with_the_path_as_target(
    api: httpx.AsyncClient, create: Create, path: str, value: Any
) -> None:
    created = await create()
    response = await patch(api, created["id"], [replace(path, value)])
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "invalidRequest"
    assert error["target"] == path
    assert "read-only" in error["message"]


async def test_replacing_a_parent_that_changes_a_read_only_child_is_refused(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create()
    profile = {**created["customerProfile"], "name": "Renamed customer"}
    response = await patch(api, created["id"], [replace("/customerProfile", profile)])
    assert response.status_code == 400
    assert error_of(response)["target"] == "/customerProfile"
    assert "/customerProfile/name is read-only" in error_of(response)["message"]
    same = {**created["customerProfile"], "size": "1to50employees"}
    assert (await patch(api, created["id"], [replace("/customerProfile", same)])).status_code == 204


async def test_help_requested_and_contacts_become_read_only_once_shared(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create(co_sell_body())
    for path, value in [
        ("/inviteContext/assistanceRequestCode", "GeneralOrOther"),
        ("/inviteContext/notes", "changed"),
        ("/customerProfile/team", []),
        ("/consent/consentToShareReferralWithMicrosoftSellers", False),
    ]:
        response = await patch(api, created["id"], [replace(path, value)])
        assert response.status_code == 400, path
        assert error_of(response)["target"] == path


async def later(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox, clock: ManualClock, seconds: float
) -> None:
    """Move the sandbox's clock on, with a fresh token for `api` (the old one expires)."""
    clock.advance(seconds)
    api.headers["Authorization"] = f"Bearer {await user_token(api, sandbox)}"


async def test_won_then_every_write_is_refused(
    api: httpx.AsyncClient, create: Create, sandbox: PartnerCenterSandbox, clock: ManualClock
) -> None:
    created = await create()
    await later(api, sandbox, clock, 72 * 3600)
    won = [replace("/status", "Closed"), replace("/substatus", "Won")]
    response = await patch(api, created["id"], won, Prefer="return=representation")
    assert response.status_code == 200
    assert TIMESTAMP.match(response.json()["closedDateTime"])
    for ops in ([replace("/details/notes", "late")], won, [replace("/status", "Active")]):
        refused = await patch(api, created["id"], ops)
        assert refused.status_code == 400
        assert "Closed referrals are final" in error_of(refused)["message"]


async def test_a_plain_http_client_closes_a_fresh_referral_as_won(
    api: httpx.AsyncClient, create: Create, sandbox: PartnerCenterSandbox
) -> None:
    """The 72-hour wait is a deal-registration condition, not an API refusal (spec §9.6)."""
    created = await create()
    won = [replace("/status", "Closed"), replace("/substatus", "Won")]
    response = await patch(api, created["id"], won, Prefer="return=representation")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["substatus"]) == ("Closed", "Won")
    assert response.json()["closedDateTime"] == created["createdDateTime"]
    assert sandbox.store.get(created["id"])["substatus"] == "Won"


async def test_lost_needs_no_wait(api: httpx.AsyncClient, create: Create) -> None:
    created = await create()
    lost = [replace("/status", "Closed"), replace("/substatus", "Lost")]
    assert (await patch(api, created["id"], lost)).status_code == 204


@pytest.mark.parametrize("value", [0, "0", 0.0])
async def test_a_deal_value_cannot_be_changed_to_zero(
    api: httpx.AsyncClient, create: Create, value: Any
) -> None:
    created = await create()
    response = await patch(api, created["id"], [replace("/details/dealValue", value)])
    assert response.status_code == 400
    assert error_of(response)["target"] == "/details/dealValue"
    assert "cannot be changed to zero" in error_of(response)["message"]
    assert (await patch(api, created["id"], [replace("/details/dealValue", 1)])).status_code == 204


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ([replace("/status", "New"), replace("/substatus", "Pending")], "cannot go from"),
        ([replace("/status", "Closed"), replace("/substatus", "Expired")], "Expired is set by"),
        (
            [replace("/status", "Closed"), replace("/substatus", "Declined")],
            "only a new incoming referral can be declined",
        ),
        ([replace("/substatus", "Won")], "not valid with status 'Active'"),
    ],
)
async def test_illegal_transitions_of_an_outgoing_referral(
    api: httpx.AsyncClient, create: Create, ops: list[dict[str, Any]], message: str
) -> None:
    created = await create()
    response = await patch(api, created["id"], ops)
    assert response.status_code == 400
    assert message in error_of(response)["message"]


async def test_the_receiver_accepts_an_incoming_referral(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox, clock: ManualClock
) -> None:
    incoming = sandbox.store.create_incoming("lead")
    clock.advance(5)
    response = await patch(
        api,
        incoming["id"],
        [replace("/status", "Active"), replace("/substatus", "Accepted")],
        Prefer="return=representation",
    )
    assert response.status_code == 200
    assert response.json()["acceptedDateTime"] == "2026-01-05T09:00:05.0000000Z"


async def test_declining_an_incoming_referral_needs_a_reason(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    incoming = sandbox.store.create_incoming("co-sell")
    decline = [replace("/status", "Closed"), replace("/substatus", "Declined")]
    response = await patch(api, incoming["id"], decline)
    assert response.status_code == 400
    assert error_of(response)["target"] == "/statusReason"
    response = await patch(api, incoming["id"], [*decline, replace("/statusReason", "No budget")])
    assert response.status_code == 204
    assert sandbox.store.get(incoming["id"])["substatus"] == "Declined"


async def test_an_incoming_referral_cannot_be_won_before_it_is_accepted(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    incoming = sandbox.store.create_incoming("lead")
    response = await patch(
        api, incoming["id"], [replace("/status", "Closed"), replace("/substatus", "Won")]
    )
    assert response.status_code == 400
    assert "accept it first" in error_of(response)["message"]


async def test_patch_of_an_unknown_referral_is_404(api: httpx.AsyncClient) -> None:
    response = await patch(api, "00000000-0000-4000-8000-000000000000", [replace("/name", "x")])
    assert response.status_code == 404


# ---- legacy PUT -------------------------------------------------------------------------


async def test_put_replaces_the_whole_referral(api: httpx.AsyncClient, create: Create) -> None:
    created = await create(referral_body(customField=1))
    body = {k: v for k, v in created.items() if k != "customField"}
    body["details"] = {**created["details"], "dealValue": "40000", "notes": "replaced"}
    response = await api.put(
        f"{REFERRALS}/{created['id']}", json=body, headers={"If-Match": created["eTag"]}
    )
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced["details"]["dealValue"] == 40000
    assert replaced["details"]["notes"] == "replaced"
    assert "customField" not in replaced
    assert replaced["eTag"] == response.headers["ETag"] != created["eTag"]
    assert replaced["id"] == created["id"]


async def test_put_keeps_system_fields_it_leaves_out(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create()
    body = {k: v for k, v in created.items() if k not in ("links", "createdDateTime", "eTag")}
    response = await api.put(
        f"{REFERRALS}/{created['id']}", json=body, headers={"If-Match": created["eTag"]}
    )
    assert response.status_code == 200
    assert response.json()["links"] == created["links"]
    assert response.json()["createdDateTime"] == created["createdDateTime"]
    assert response.json()["eTag"] == created["eTag"]  # nothing changed


@pytest.mark.parametrize(
    ("headers", "change", "status", "target"),
    [
        ({}, {}, 400, "If-Match"),
        ({"If-Match": '"stale"'}, {}, 412, "ETag"),
        (
            None,
            {"customerProfile": {"name": "Other", "address": {"country": "US"}}},
            400,
            "/customerProfile/name",
        ),
        (None, {"direction": "Incoming"}, 400, "/direction"),
        (None, {"status": "New", "substatus": "Pending"}, 400, "/status"),
    ],
)
async def test_put_refusals(
    api: httpx.AsyncClient,
    create: Create,
    headers: dict[str, str] | None,
    change: dict[str, Any],
    status: int,
    target: str,
) -> None:
    created = await create()
    response = await api.put(
        f"{REFERRALS}/{created['id']}",
        json={**created, **change},
        headers=headers if headers is not None else {"If-Match": created["eTag"]},
    )
    assert response.status_code == status, response.text
    assert error_of(response)["target"] == target


# ---- the 2026 fields: partner role, solution area and play, marketplace intent ------------

FY26 = {
    "partnerRole": "DeploymentServices",
    "solutionArea": "CloudAndAIPlatforms",
    "solutionPlay": "MigrateAndModernizeYourEstate",
    "customerMarketplaceIntent": "HaveNotDecided",
}


def services_co_sell_body(**overrides: Any) -> dict[str, Any]:
    body = co_sell_body(**overrides)
    body["details"]["requirements"]["services"] = [{"id": "DeploymentOrMigration"}]
    return body


async def test_the_2026_fields_are_stored_and_read_back(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create(services_co_sell_body(**FY26))
    assert {k: created[k] for k in FY26} == FY26
    read = (await api.get(f"{REFERRALS}/{created['id']}")).json()
    assert {k: read[k] for k in FY26} == FY26


async def test_unknown_taxonomy_values_round_trip(api: httpx.AsyncClient, create: Create) -> None:
    newer = {
        "partnerRole": ["SolutionDesign", "FutureRole"],
        "solutionArea": "AreaOfFY27",
        "solutionPlay": "PlayOfFY27",
        "customerMarketplaceIntent": "Maybe",
    }
    created = await create(services_co_sell_body(**newer))
    read = (await api.get(f"{REFERRALS}/{created['id']}")).json()
    assert {k: read[k] for k in newer} == newer


@pytest.mark.parametrize("missing", ["partnerRole", "solutionArea", "solutionPlay"])
async def test_a_services_co_sell_referral_without_its_fields_is_refused(
    api: httpx.AsyncClient, missing: str
) -> None:
    body = services_co_sell_body(**{k: v for k, v in FY26.items() if k != missing})
    response = await api.post(REFERRALS, json=body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalidRequest"
    assert error_of(response)["target"] == f"/{missing}"
    assert "required for a services co-sell referral" in error_of(response)["message"]


async def test_the_fields_are_accepted_under_additional_requirements_too(
    create: Create,
) -> None:
    body = services_co_sell_body()
    body["details"]["requirements"]["additionalRequirements"] = {
        k: v for k, v in FY26.items() if k != "customerMarketplaceIntent"
    }
    created = await create(body)
    extra = created["details"]["requirements"]["additionalRequirements"]
    assert extra["solutionPlay"] == "MigrateAndModernizeYourEstate"
    assert "solutionPlay" not in created  # stored as sent


async def test_partner_led_and_solution_co_sell_referrals_need_none_of_them(
    create: Create,
) -> None:
    partner_led = referral_body()
    partner_led["consent"]["consentToShareReferralWithMicrosoftSellers"] = True
    assert (await create(partner_led))["consent"]["consentToShareReferralWithMicrosoftSellers"]
    assert (await create(co_sell_body()))["inviteContext"]["assistanceRequestCode"]


async def test_a_patch_sets_the_fields_and_one_naming_services_needs_them(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create(co_sell_body())
    services = replace("/details/requirements/services", [{"id": "ManagedServices"}])
    refused = await patch(api, created["id"], [services])
    assert refused.status_code == 400
    assert error_of(refused)["target"] == "/partnerRole"
    ops = [services, *({"op": "add", "path": f"/{k}", "value": v} for k, v in FY26.items())]
    response = await patch(api, created["id"], ops, Prefer="return=representation")
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in FY26} == FY26


@pytest.mark.parametrize("value", [7, {"id": "x"}, [1]])
async def test_a_field_of_the_wrong_shape_is_refused(api: httpx.AsyncClient, value: Any) -> None:
    response = await api.post(REFERRALS, json=referral_body(solutionArea=value))
    assert response.status_code == 400
    assert error_of(response)["target"] == "/solutionArea"
