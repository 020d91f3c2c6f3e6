"""simple-salesforce 1.12.10, unchanged, against the Salesforce sandbox (spec §5).

simple-salesforce always builds `https://{domain}.salesforce.com/...` and `https://{instance}/...`
URLs. As the spec's §5.6 shows, a `requests.Session` with a transport adapter mounted on
`https://` reaches the sandbox anyway: `ToSandbox` rewrites every request's scheme and host to
the sandbox's loopback address and keeps the intended host in `X-Original-Host`. Nothing in
simple-salesforce is patched.

The sandbox is served by uvicorn on a free loopback port from a background thread, one server
for the module. Its socket is listening before the sandbox is built (so `instance_url` is the
real address) and before the server thread starts, so the first request can come at once.
The sandbox runs on a ManualClock that only tests move; tests touch the sandbox object
directly only between requests, when the server thread is idle. simple-salesforce dates its JWT
assertions by the machine's clock (exp = now + 3 minutes) while the sandbox checks them on its
own: the ManualClock starts in March 2026, before any real "now" these tests run at, and the
advances below add hours, not months, so those assertions are always in date.

For `SalesforceMoreThanOneRecord`, the org's schema gets one test-only field: a non-unique
external id on Opportunity (Salesforce allows `externalId` without `unique`; that is when an
upsert can match several records). Our own `Referral_Identifier__c` is unique, so it cannot.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from cosell.clock import ManualClock
from cosell_sandbox.salesforce.app import SalesforceSandbox, SandboxOptions
from cosell_sandbox.salesforce.orgschema import build_schema
from cosell_sandbox.salesforce.schema import FieldSchema
from cosell_sandbox.serving import listen, make_server

LEGACY_KEY = "Legacy_Deal_Key__c"  # the test-only non-unique external id (see the docstring)
VERSION = "59.0"  # simple-salesforce's DEFAULT_API_VERSION
# Salesforce's smallest query batch (Sforce-Query-Options: batchSize); pages hold 200 records.
BATCH = 200


class ToSandbox(HTTPAdapter):
    """Sends every https:// request to the sandbox over plain HTTP (spec §5.6)."""

    def __init__(self, netloc: str) -> None:
        super().__init__()
        self.netloc = netloc
        self.original_hosts: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        assert request.url is not None
        url = urlsplit(request.url)
        self.original_hosts.append(url.netloc)
        request.headers["X-Original-Host"] = url.netloc
        request.url = urlunsplit(("http", self.netloc, url.path, url.query, url.fragment))
        return super().send(request, **kwargs)


@dataclass
class Served:
    sandbox: SalesforceSandbox
    clock: ManualClock
    netloc: str

    @property
    def info(self) -> dict[str, Any]:
        return self.sandbox.info()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    schema = build_schema()
    opportunity = schema.sobject("Opportunity")
    assert opportunity is not None
    opportunity.add_field(
        FieldSchema(
            name=LEGACY_KEY,
            label="Legacy Deal Key",
            type="string",
            length=40,
            external_id=True,
            id_lookup=True,
            custom=True,
        )
    )
    listener = listen()
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    sandbox = SalesforceSandbox(
        base_url=listener.base_url,
        clock=clock,
        options=SandboxOptions(seed=5, key_dir=tmp_path_factory.mktemp("sf-keys")),
        schema=schema,
    )
    server = make_server(sandbox.app, listener)
    thread = threading.Thread(
        target=asyncio.run, args=(server.serve(sockets=[listener.sock]),), daemon=True
    )
    thread.start()
    try:
        yield Served(sandbox, clock, urlsplit(listener.base_url).netloc)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.sock.close()
        sandbox.close()
    assert not thread.is_alive(), "the sandbox server did not stop"


@pytest.fixture
def adapter(served: Served) -> ToSandbox:
    return ToSandbox(served.netloc)


@pytest.fixture
def http(adapter: ToSandbox) -> Iterator[requests.Session]:
    session = requests.Session()
    session.mount("https://", adapter)
    with session:
        yield session


@pytest.fixture
def sf(served: Served, http: requests.Session) -> Salesforce:
    """Logged in with SOAP username, password and security token (the most common setup)."""
    info = served.info
    return Salesforce(
        username=info["username"],
        password=info["password"],
        security_token=info["security_token"],
        session=http,
    )


def new_opportunity(name: str, **extra: Any) -> dict[str, Any]:
    return {"Name": name, "StageName": "Prospecting", "CloseDate": "2026-06-30", **extra}


# ----- logins -----------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["login", "test"])
def test_soap_login(
    served: Served, http: requests.Session, adapter: ToSandbox, domain: str
) -> None:
    info = served.info
    sf = Salesforce(
        username=info["username"],
        password=info["password"],
        security_token=info["security_token"],
        domain=domain,
        session=http,
    )
    assert sf.sf_instance == served.netloc
    assert sf.session_id.startswith(info["org_id"][:15] + "!")
    assert adapter.original_hosts == [f"{domain}.salesforce.com"]
    assert sf.restful("")["sobjects"].endswith("/sobjects")


def test_jwt_login_with_a_key_file_and_with_a_key_string(
    served: Served, http: requests.Session, adapter: ToSandbox
) -> None:
    info = served.info
    by_file = Salesforce(
        username=info["username"],
        consumer_key=info["consumer_key"],
        privatekey_file=info["private_key_path"],
        session=http,
    )
    by_string = Salesforce(
        username=info["username"],
        consumer_key=info["consumer_key"],
        privatekey=Path(info["private_key_path"]).read_text(),
        domain="test",
        session=http,
    )
    for sf in (by_file, by_string):
        assert sf.sf_instance == served.netloc
        assert sf.limits()["DailyApiRequests"]["Max"] > 0
    assert adapter.original_hosts[0] == "login.salesforce.com"


def test_jwt_login_for_an_unknown_user_fails_with_salesforces_message(
    served: Served, http: requests.Session
) -> None:
    info = served.info
    with (
        pytest.warns(UserWarning, match="authorize this\\s+application first"),
        pytest.raises(SalesforceAuthenticationFailed) as failed,
    ):
        Salesforce(
            username="nobody@cosell-sandbox.example",
            consumer_key=info["consumer_key"],
            privatekey_file=info["private_key_path"],
            session=http,
        )
    assert failed.value.code == "invalid_grant"
    assert failed.value.auth_message == "user hasn't approved this consumer"


def test_client_credentials_login(
    served: Served, http: requests.Session, adapter: ToSandbox
) -> None:
    info = served.info
    sf = Salesforce(
        consumer_key=info["consumer_key"],
        consumer_secret=info["consumer_secret"],
        domain="acme.my",
        session=http,
    )
    assert sf.sf_instance == served.netloc
    assert adapter.original_hosts == ["acme.my.salesforce.com"]
    me = sf.query(f"SELECT Id, Username FROM User WHERE Id = '{info['integration_user_id']}'")
    assert me["records"][0]["Username"] == info["username"]


def test_client_credentials_with_a_wrong_secret(served: Served, http: requests.Session) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as failed:
        Salesforce(
            consumer_key=served.info["consumer_key"],
            consumer_secret="0" * 64,
            domain="acme.my",
            session=http,
        )
    assert (failed.value.code, failed.value.auth_message) == (
        "invalid_client",
        "invalid client credentials",
    )


def test_oauth_username_password_login(served: Served, http: requests.Session) -> None:
    info = served.info
    sf = Salesforce(
        username=info["username"],
        password=info["password"] + info["security_token"],
        consumer_key=info["consumer_key"],
        consumer_secret=info["consumer_secret"],
        session=http,
    )
    assert sf.sf_instance == served.netloc
    assert sf.limits()["DailyApiRequests"]["Max"] > 0


def test_soap_login_with_a_wrong_password(served: Served, http: requests.Session) -> None:
    info = served.info
    with pytest.raises(SalesforceAuthenticationFailed) as failed:
        Salesforce(
            username=info["username"],
            password="not-the-password",
            security_token=info["security_token"],
            session=http,
        )
    assert failed.value.code == "INVALID_LOGIN"
    assert failed.value.auth_message == (
        "Invalid username, password, security token; or user locked out."
    )


# ----- sObject calls ----------------------------------------------------------------------


def test_opportunity_create_get_update_delete(sf: Salesforce) -> None:
    created = sf.Opportunity.create(new_opportunity("Contoso - 50 seats", Amount=12500))
    assert created["success"] is True
    assert created["errors"] == []
    record_id = created["id"]
    assert record_id.startswith("006")
    assert len(record_id) == 18

    record = sf.Opportunity.get(record_id)
    assert record["attributes"]["type"] == "Opportunity"
    assert record["Id"] == record_id
    assert record["Name"] == "Contoso - 50 seats"
    assert record["Amount"] == 12500
    assert record["IsClosed"] is False

    assert sf.Opportunity.update(record_id, {"StageName": "Closed Won"}) == 204
    updated = sf.Opportunity.get(record_id)
    assert updated["StageName"] == "Closed Won"
    assert updated["IsWon"] is True
    assert updated["Probability"] == 100

    assert sf.Opportunity.delete(record_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Opportunity.get(record_id)
    assert gone.value.status == 404
    assert gone.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_opportunity_get_with_a_field_list(sf: Salesforce) -> None:
    record_id = sf.Opportunity.create(new_opportunity("Fabrikam"))["id"]
    record = sf.Opportunity.get(record_id, params={"fields": "Id,Name"})
    assert set(record) == {"attributes", "Id", "Name"}


def test_opportunity_upsert_creates_then_updates(sf: Salesforce) -> None:
    path = "Referral_Identifier__c/ref-upsert-001"
    assert sf.Opportunity.upsert(path, new_opportunity("Northwind referral")) == 201
    assert sf.Opportunity.upsert(path, {"Amount": 990}) == 200
    record = sf.Opportunity.get_by_custom_id("Referral_Identifier__c", "ref-upsert-001")
    assert (record["Name"], record["Amount"]) == ("Northwind referral", 990)
    raw = sf.Opportunity.upsert(path, {"Amount": 991}, raw_response=True)
    assert raw.json()["created"] is False
    assert raw.json()["id"] == record["Id"]


def test_custom_id_with_a_space_in_the_path(sf: Salesforce) -> None:
    # upsert sends the space as %20; get_by_custom_id sends it as "+" (quote_plus), spec §5.3.
    assert (
        sf.Opportunity.upsert("Referral_Identifier__c/ref with space", new_opportunity("Sp")) == 201
    )
    record = sf.Opportunity.get_by_custom_id("Referral_Identifier__c", "ref with space")
    assert record["Referral_Identifier__c"] == "ref with space"


def test_conditional_update_that_fails_is_a_general_error(sf: Salesforce) -> None:
    record_id = sf.Opportunity.create(new_opportunity("Conditional"))["id"]
    with pytest.raises(SalesforceGeneralError) as failed:
        sf.Opportunity.update(
            record_id,
            {"Amount": 1},
            headers={"If-Unmodified-Since": "Mon, 02 Mar 2020 08:00:00 GMT"},
        )
    assert failed.value.status == 412
    assert sf.Opportunity.get(record_id)["Amount"] is None


def test_updated_and_deleted_windows(
    served: Served, http: requests.Session, sf: Salesforce
) -> None:
    start = served.clock.now()
    changed = sf.Opportunity.create(new_opportunity("Changed"))["id"]
    removed = sf.Opportunity.create(new_opportunity("Removed"))["id"]
    sf.Opportunity.delete(removed)
    # getUpdated and getDeleted cover whole minutes up to now: let two minutes pass.
    control(served, http, "clock/advance", seconds=120)
    end = served.clock.now()
    assert changed in sf.Opportunity.updated(start, end)["ids"]
    deleted = sf.Opportunity.deleted(start, end)["deletedRecords"]
    assert removed in [item["id"] for item in deleted]


def test_describe_global_and_opportunity(sf: Salesforce) -> None:
    names = {item["name"] for item in sf.describe()["sobjects"]}
    assert {"Opportunity", "Account", "Lead", "Microsoft_Solution__c"} <= names
    fields = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    stage = fields["StageName"]
    assert stage["type"] == "picklist"
    assert stage["restrictedPicklist"] is True
    assert "Prospecting" in [p["value"] for p in stage["picklistValues"]]
    assert fields["Referral_Identifier__c"]["externalId"] is True
    assert fields["Referral_Identifier__c"]["unique"] is True
    assert sf.Opportunity.metadata()["objectDescribe"]["keyPrefix"] == "006"


def test_limits_and_api_usage(sf: Salesforce) -> None:
    limits = sf.limits()
    daily = limits["DailyApiRequests"]
    assert daily["Max"] == 15000
    assert 0 <= daily["Remaining"] < daily["Max"]
    used, total = sf.api_usage["api-usage"]
    assert total == 15000
    assert used == daily["Max"] - daily["Remaining"]
    opportunity = sf.Opportunity  # each attribute access builds a new SFType with its own usage
    opportunity.create(new_opportunity("Usage"))
    assert opportunity.api_usage["api-usage"].used == used + 1


def test_composite_sobjects_through_restful(sf: Salesforce) -> None:
    results = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Opportunity"}, **new_opportunity("Batch A")},
                {"attributes": {"type": "Opportunity"}, **new_opportunity("Batch B")},
                {"attributes": {"type": "Opportunity"}, "Name": "No stage"},
            ],
        },
    )
    assert [r["success"] for r in results] == [True, True, False]
    assert results[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    fetched = sf.restful(
        "composite/sobjects/Opportunity",
        params={"ids": f"{results[0]['id']},{results[1]['id']}", "fields": "Name"},
    )
    assert [r["Name"] for r in fetched] == ["Batch A", "Batch B"]


def test_query_and_query_all_across_pages(sf: Salesforce) -> None:
    total = 2 * BATCH + 50  # three pages at the smallest batch size
    marker = "Paging"
    for start in range(0, total, BATCH):
        records = [
            {"attributes": {"type": "Opportunity"}, **new_opportunity(f"{marker} {i:04d}")}
            for i in range(start, min(start + BATCH, total))
        ]
        results = sf.restful(
            "composite/sobjects", method="POST", json={"allOrNone": True, "records": records}
        )
        assert all(r["success"] for r in results)

    soql = f"SELECT Id, Name FROM Opportunity WHERE Name LIKE '{marker} %' ORDER BY Name"
    options = {"Sforce-Query-Options": f"batchSize={BATCH}"}
    first = sf.query(soql, headers=options)
    assert first["totalSize"] == total
    assert first["done"] is False
    assert len(first["records"]) == BATCH
    assert first["nextRecordsUrl"].startswith(f"/services/data/v{VERSION}/query/")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=options)
    assert second["records"][0]["Name"] == f"{marker} {BATCH:04d}"

    everything = sf.query_all(soql, headers=options)
    assert everything["totalSize"] == total
    assert [r["Name"] for r in everything["records"]] == [f"{marker} {i:04d}" for i in range(total)]

    sf.Opportunity.delete(everything["records"][0]["Id"])
    live = sf.query_all(soql, headers=options)
    with_deleted = sf.query_all(soql, include_deleted=True, headers=options)
    assert (live["totalSize"], with_deleted["totalSize"]) == (total - 1, total)


# ----- exception mapping ------------------------------------------------------------------


def test_bad_picklist_value_is_a_malformed_request(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.Opportunity.create(new_opportunity("Bad stage", StageName="Maybe Someday"))
    assert bad.value.status == 400
    assert bad.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert bad.value.content[0]["fields"] == ["StageName"]


def test_unknown_record_is_resource_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Opportunity.get("006000000000000AAA")
    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Opportunity.get_by_custom_id("Referral_Identifier__c", "no-such-referral")


def test_duplicated_external_id_is_more_than_one_record(sf: Salesforce) -> None:
    ids = [
        sf.Opportunity.create(new_opportunity(f"Twin {n}", **{LEGACY_KEY: "LEG-42"}))["id"]
        for n in (1, 2)
    ]
    with pytest.raises(SalesforceMoreThanOneRecord) as several:
        sf.Opportunity.upsert(f"{LEGACY_KEY}/LEG-42", {"Amount": 1})
    assert several.value.status == 300
    assert sorted(url.rsplit("/", 1)[-1] for url in several.value.content) == sorted(ids)


def log_in(served: Served, http: requests.Session, mode: str) -> Salesforce:
    info = served.info
    if mode == "soap":
        return Salesforce(
            username=info["username"],
            password=info["password"],
            security_token=info["security_token"],
            session=http,
        )
    if mode == "jwt":
        return Salesforce(
            username=info["username"],
            consumer_key=info["consumer_key"],
            privatekey_file=info["private_key_path"],
            session=http,
        )
    assert mode == "client_credentials"
    return Salesforce(
        consumer_key=info["consumer_key"],
        consumer_secret=info["consumer_secret"],
        domain="acme.my",
        session=http,
    )


def control(served: Served, http: requests.Session, path: str, **body: Any) -> None:
    """A call to the sandbox's control API (plain http://, so not through the adapter)."""
    response = http.post(f"http://{served.netloc}/control/{path}", json=body or None)
    assert response.status_code in (200, 204), response.text


@pytest.mark.parametrize("mode", ["soap", "jwt", "client_credentials"])
def test_expired_session_leads_to_a_relogin(
    served: Served, http: requests.Session, adapter: ToSandbox, mode: str
) -> None:
    sf = log_in(served, http, mode)
    login_host = adapter.original_hosts[0]
    first_session = sf.session_id

    # The session times out on the sandbox clock: SFType's retry path logs in again.
    control(served, http, "clock/advance", seconds=served.sandbox.options.session_lifetime_seconds)
    created = sf.Opportunity.create(new_opportunity(f"After expiry ({mode})"))
    assert created["success"] is True
    assert sf.session_id != first_session
    second_session = sf.session_id

    # Every token is revoked by the control API: Salesforce._call_salesforce logs in again.
    control(served, http, "sessions/expire")
    found = sf.query(f"SELECT Name FROM Opportunity WHERE Id = '{created['id']}'")
    assert found["records"][0]["Name"] == f"After expiry ({mode})"
    assert sf.session_id not in (first_session, second_session)
    assert adapter.original_hosts.count(login_host) == 3  # the first login and two re-logins


def test_expired_session_in_direct_mode_raises(served: Served, http: requests.Session) -> None:
    info = served.info
    login = Salesforce(
        consumer_key=info["consumer_key"],
        consumer_secret=info["consumer_secret"],
        domain="acme.my",
        session=http,
    )
    direct = Salesforce(
        instance_url=info["instance_url"], session_id=login.session_id, session=http
    )
    assert direct.Opportunity.describe()["name"] == "Opportunity"
    served.sandbox.identity.expire_sessions()
    with pytest.raises(SalesforceExpiredSession) as expired:
        direct.Opportunity.describe()
    assert expired.value.status == 401
    assert expired.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
