"""The Salesforce sandbox's auth: OAuth token grants, SOAP login, sessions, keys, snapshots.

Every test talks HTTP to a small FastAPI app that mounts the identity router, installs the
sandbox's error handlers and has one data route (`/data`) that calls `authenticate`, through
httpx's in-process ASGI transport. Time is a ManualClock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import random
import shutil
import stat
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st

from cosell.clock import ManualClock
from cosell_sandbox.salesforce.errors import install_error_handlers
from cosell_sandbox.salesforce.identity import SalesforceIdentity, SfSession
from cosell_sandbox.salesforce.identity_keys import CERTIFICATE_FILE, PRIVATE_KEY_FILE
from cosell_sandbox.salesforce.soap_login import LoginRequest, SoapFaultError, parse_login_request

BASE = "http://sandbox.test:8765"
ORG = "00D5g000004XyZaEAK"
USER = "0055g00000AbCdEAAV"
USERNAME = "integration@cosell-sandbox.example"
TOKEN_URL = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SOAP_NS = "{urn:partner.soap.sforce.com}"


@pytest.fixture(scope="session")
def shared_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key pair for the whole run: RSA generation costs ~0.1 s, too much per test."""
    key_dir = tmp_path_factory.mktemp("shared-keys")
    SalesforceIdentity(
        ManualClock(),
        base_url=BASE,
        org_id=ORG,
        user_id=USER,
        username=USERNAME,
        rng=random.Random(0),
        key_dir=key_dir,
    )
    return key_dir


@pytest.fixture
def key_dir(shared_keys: Path, tmp_path: Path) -> Path:
    target = tmp_path / "keys"
    shutil.copytree(shared_keys, target)
    return target


@dataclass
class Harness:
    clock: ManualClock
    identity: SalesforceIdentity
    client: httpx.AsyncClient

    @property
    def info(self) -> dict[str, str]:
        return self.identity.info()

    async def token(
        self, data: dict[str, str], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(TOKEN_URL, data=data, headers=headers)

    async def data_call(self, token: str, scheme: str = "Bearer") -> httpx.Response:
        return await self.client.get("/data", headers={"Authorization": f"{scheme} {token}"})

    def assertion(self, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "iss": self.info["consumer_key"],
            "sub": USERNAME,
            "aud": "https://login.salesforce.com",
            "exp": f"{(self.clock.now() + timedelta(minutes=3)).timestamp():.0f}",
        }
        key = overrides.pop("key", Path(self.info["private_key_path"]).read_bytes())
        algorithm = overrides.pop("algorithm", "RS256")
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm=algorithm)

    async def password_login(self) -> str:
        info = self.info
        response = await self.token(
            {
                "grant_type": "password",
                "client_id": info["consumer_key"],
                "client_secret": info["consumer_secret"],
                "username": info["username"],
                "password": info["password"] + info["security_token"],
            }
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def build_app(identity: SalesforceIdentity) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(identity.router)

    @app.get("/data")
    def data(request: Request) -> dict[str, str]:
        session: SfSession = identity.authenticate(request)
        return {"user": session.user_id, "org": session.org_id, "username": session.username}

    return app


def make_identity(
    clock: ManualClock, key_dir: Path, seed: int = 7, **kw: Any
) -> SalesforceIdentity:
    return SalesforceIdentity(
        clock,
        base_url=BASE,
        org_id=ORG,
        user_id=USER,
        username=USERNAME,
        rng=random.Random(seed),
        key_dir=key_dir,
        **kw,
    )


@pytest.fixture
async def sf(key_dir: Path) -> AsyncIterator[Harness]:
    clock = ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    identity = make_identity(clock, key_dir)
    transport = httpx.ASGITransport(app=build_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Harness(clock, identity, client)


def oauth_error(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 400, response.text
    body = response.json()
    return body["error"], body["error_description"]


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


# ----- token response ---------------------------------------------------------------------


async def test_password_grant_returns_the_documented_token_body(sf: Harness) -> None:
    info = sf.info
    response = await sf.token(
        {
            "grant_type": "password",
            "client_id": info["consumer_key"],
            "client_secret": info["consumer_secret"],
            "username": USERNAME,
            "password": info["password"] + info["security_token"],
        }
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    body = response.json()
    assert set(body) == {
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    assert body["access_token"].startswith(ORG[:15] + "!")
    assert body["instance_url"] == BASE
    assert body["id"] == f"{BASE}/id/{ORG}/{USER}"
    assert body["token_type"] == "Bearer"
    assert body["issued_at"] == str(int(sf.clock.now().timestamp() * 1000))
    expected = hmac.new(
        info["consumer_secret"].encode(),
        (body["id"] + body["issued_at"]).encode(),
        hashlib.sha256,
    ).digest()
    assert base64.b64decode(body["signature"]) == expected
    ok = await sf.data_call(body["access_token"])
    assert ok.json() == {"user": USER, "org": ORG, "username": USERNAME}


async def test_every_login_issues_a_different_token(sf: Harness) -> None:
    assert await sf.password_login() != await sf.password_login()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_id": "3MVG9unknown"}, ("invalid_client_id", "client identifier invalid")),
        ({"client_id": None}, ("invalid_client_id", "client identifier invalid")),
        ({"client_secret": "0" * 64}, ("invalid_client", "invalid client credentials")),
        ({"client_secret": None}, ("invalid_client", "invalid client credentials")),
        ({"password": "wrong"}, ("invalid_grant", "authentication failure")),
        ({"password": "no-token"}, ("invalid_grant", "authentication failure")),
        ({"username": "someone@else.example"}, ("invalid_grant", "authentication failure")),
    ],
)
async def test_password_grant_errors(
    sf: Harness, change: dict[str, str | None], expected: tuple[str, str]
) -> None:
    info = sf.info
    form: dict[str, str | None] = {
        "grant_type": "password",
        "client_id": info["consumer_key"],
        "client_secret": info["consumer_secret"],
        "username": USERNAME,
        "password": info["password"] + info["security_token"],
    }
    if change.get("password") == "no-token":
        change = {"password": info["password"]}
    form.update(change)
    response = await sf.token({k: v for k, v in form.items() if v is not None})
    assert oauth_error(response) == expected


async def test_client_credentials_in_the_body_and_as_basic_auth(sf: Harness) -> None:
    info = sf.info
    in_body = await sf.token(
        {
            "grant_type": "client_credentials",
            "client_id": info["consumer_key"],
            "client_secret": info["consumer_secret"],
        }
    )
    as_basic = await sf.token(
        {"grant_type": "client_credentials"},
        headers=basic(info["consumer_key"], info["consumer_secret"]),
    )
    for response in (in_body, as_basic):
        assert response.status_code == 200, response.text
        assert "refresh_token" not in response.json()
        assert (await sf.data_call(response.json()["access_token"])).json()["user"] == USER


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, ("invalid_client_id", "client identifier invalid")),
        (
            {"Authorization": "Basic !!!not-base64"},
            ("invalid_client_id", "client identifier invalid"),
        ),
        (basic("3MVG9other", "x"), ("invalid_client_id", "client identifier invalid")),
        ("wrong-secret", ("invalid_client", "invalid client credentials")),
        ("no-secret", ("invalid_client", "invalid client credentials")),
    ],
)
async def test_client_credentials_errors(
    sf: Harness, headers: dict[str, str] | str, expected: tuple[str, str]
) -> None:
    if headers == "wrong-secret":
        headers = basic(sf.info["consumer_key"], "F" * 64)
    elif headers == "no-secret":
        headers = {
            "Authorization": "Basic " + base64.b64encode(sf.info["consumer_key"].encode()).decode()
        }
    assert isinstance(headers, dict)
    response = await sf.token({"grant_type": "client_credentials"}, headers=headers)
    assert oauth_error(response) == expected


async def test_refresh_token_grant_gives_no_new_refresh_token(sf: Harness) -> None:
    info = sf.info
    in_body = await sf.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": info["refresh_token"],
            "client_id": info["consumer_key"],
            "client_secret": info["consumer_secret"],
        }
    )
    as_basic = await sf.token(
        {"grant_type": "refresh_token", "refresh_token": info["refresh_token"]},
        headers=basic(info["consumer_key"], info["consumer_secret"]),
    )
    for response in (in_body, as_basic):
        assert response.status_code == 200, response.text
        assert "refresh_token" not in response.json()
        assert (await sf.data_call(response.json()["access_token"])).status_code == 200


async def test_refresh_token_grant_errors(sf: Harness) -> None:
    info = sf.info
    client = {"client_id": info["consumer_key"], "client_secret": info["consumer_secret"]}
    unknown = await sf.token({"grant_type": "refresh_token", "refresh_token": "5Aep861x", **client})
    assert oauth_error(unknown) == ("invalid_grant", "expired access/refresh token")
    missing = await sf.token({"grant_type": "refresh_token", **client})
    assert oauth_error(missing)[0] == "invalid_request"
    assert "refresh_token is required" in oauth_error(missing)[1]
    bad_secret = await sf.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": info["refresh_token"],
            "client_id": info["consumer_key"],
            "client_secret": "nope",
        }
    )
    assert oauth_error(bad_secret) == ("invalid_client", "invalid client credentials")


@pytest.mark.parametrize(
    "grant",
    [
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
    ],
)
async def test_unsupported_grant_type(sf: Harness, grant: str) -> None:
    response = await sf.token({"grant_type": grant})
    assert oauth_error(response) == ("unsupported_grant_type", "grant type not supported")


async def test_missing_grant_type(sf: Harness) -> None:
    response = await sf.client.post(TOKEN_URL)
    assert oauth_error(response) == ("unsupported_grant_type", "grant type not supported")


async def test_token_request_must_be_form_encoded(sf: Harness) -> None:
    response = await sf.client.post(TOKEN_URL, json={"grant_type": "client_credentials"})
    error, description = oauth_error(response)
    assert error == "invalid_request"
    assert "application/x-www-form-urlencoded" in description


async def test_repeated_parameter_is_rejected(sf: Harness) -> None:
    response = await sf.client.post(
        TOKEN_URL,
        content=b"grant_type=password&grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert oauth_error(response) == ("invalid_request", "parameter grant_type is repeated")


async def test_token_endpoint_only_accepts_post(sf: Harness) -> None:
    response = await sf.client.get(TOKEN_URL)
    assert response.status_code == 405
    assert response.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


# ----- JWT bearer -------------------------------------------------------------------------


async def test_jwt_bearer_with_numeric_string_exp(sf: Harness) -> None:
    assertion = sf.assertion()
    assert isinstance(jwt.decode(assertion, options={"verify_signature": False})["exp"], str)
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": assertion})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    assert body["instance_url"] == BASE
    assert (await sf.data_call(body["access_token"])).json()["username"] == USERNAME


@pytest.mark.parametrize(
    ("aud", "original_host"),
    [
        ("https://login.salesforce.com", None),
        ("https://test.salesforce.com", None),
        (BASE, None),
        (["https://elsewhere.example", "https://test.salesforce.com"], None),
        ("https://acme.my.salesforce.com", "acme.my.salesforce.com"),
    ],
)
async def test_jwt_accepted_audiences(
    sf: Harness, aud: str | list[str], original_host: str | None
) -> None:
    headers = {"X-Original-Host": original_host} if original_host else None
    response = await sf.token(
        {
            "grant_type": JWT_GRANT,
            "assertion": sf.assertion(aud=aud, exp=int(sf.clock.now().timestamp()) + 60),
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text


async def test_jwt_wrong_audience(sf: Harness) -> None:
    for aud in ("https://acme.my.salesforce.com", None, 42):
        response = await sf.token({"grant_type": JWT_GRANT, "assertion": sf.assertion(aud=aud)})
        assert oauth_error(response) == ("invalid_grant", "audience is invalid")


async def test_jwt_signed_by_another_key(sf: Harness) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": sf.assertion(key=pem)})
    assert oauth_error(response) == ("invalid_grant", "invalid assertion")


async def test_jwt_hs256_with_the_consumer_secret_is_refused(sf: Harness) -> None:
    assertion = sf.assertion(key=sf.info["consumer_secret"], algorithm="HS256")
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": assertion})
    assert oauth_error(response) == ("invalid_grant", "invalid assertion")


@pytest.mark.parametrize("assertion", ["not-a-jwt", "a.b.c"])
async def test_jwt_garbage_assertion(sf: Harness, assertion: str) -> None:
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": assertion})
    assert oauth_error(response) == ("invalid_grant", "invalid assertion")


async def test_jwt_missing_assertion(sf: Harness) -> None:
    response = await sf.token({"grant_type": JWT_GRANT})
    assert oauth_error(response)[0] == "invalid_request"


async def test_jwt_wrong_issuer(sf: Harness) -> None:
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": sf.assertion(iss="3MVG9nope")})
    assert oauth_error(response) == ("invalid_client_id", "client identifier invalid")


async def test_jwt_unknown_subject(sf: Harness) -> None:
    response = await sf.token(
        {"grant_type": JWT_GRANT, "assertion": sf.assertion(sub="stranger@example.com")}
    )
    assert oauth_error(response) == ("invalid_grant", "user hasn't approved this consumer")


async def test_jwt_exp_is_checked_on_the_injected_clock(sf: Harness) -> None:
    assertion = sf.assertion()  # exp = clock + 3 minutes, long before the machine's time
    sf.clock.advance(179)
    assert (await sf.token({"grant_type": JWT_GRANT, "assertion": assertion})).status_code == 200
    sf.clock.advance(1)
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": assertion})
    assert oauth_error(response) == ("invalid_grant", "expired authorization code")


@pytest.mark.parametrize("exp", [None, "soon", "nan", True])
async def test_jwt_missing_or_non_numeric_exp(sf: Harness, exp: object) -> None:
    claims_exp = exp
    assertion = sf.assertion(exp=claims_exp)
    if exp is None:
        assert "exp" not in jwt.decode(assertion, options={"verify_signature": False})
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": assertion})
    assert oauth_error(response) == ("invalid_grant", "invalid assertion")


async def test_jwt_not_before_in_the_future(sf: Harness) -> None:
    later = int(sf.clock.now().timestamp()) + 60
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": sf.assertion(nbf=later)})
    assert oauth_error(response) == ("invalid_grant", "invalid assertion")
    sf.clock.advance(60)
    response = await sf.token({"grant_type": JWT_GRANT, "assertion": sf.assertion(nbf=later)})
    assert response.status_code == 200


# ----- sessions ---------------------------------------------------------------------------


async def test_session_expires_on_the_clock(sf: Harness) -> None:
    token = await sf.password_login()
    sf.clock.advance(7199)
    assert (await sf.data_call(token)).status_code == 200
    sf.clock.advance(1)
    response = await sf.data_call(token)
    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert response.headers["www-authenticate"] == "Token"
    assert response.headers["content-type"] == "application/json;charset=UTF-8"


async def test_session_lifetime_is_configurable(key_dir: Path) -> None:
    clock = ManualClock()
    identity = make_identity(clock, key_dir, session_lifetime_seconds=60)
    transport = httpx.ASGITransport(app=build_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        harness = Harness(clock, identity, client)
        token = await harness.password_login()
        clock.advance(59)
        assert (await harness.data_call(token)).status_code == 200
        clock.advance(1)
        assert (await harness.data_call(token)).status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer unknown-token", "Basic abc", "Bearer 00D5g000004XyZa!AQforged"],
)
async def test_missing_or_unknown_token_is_401(sf: Harness, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await sf.client.get("/data", headers=headers)
    assert response.status_code == 401
    assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert response.headers["www-authenticate"] == "Token"


async def test_oauth_scheme_is_accepted_too(sf: Harness) -> None:
    token = await sf.password_login()
    assert (await sf.data_call(token, scheme="OAuth")).status_code == 200
    assert (await sf.data_call(token, scheme="bearer")).status_code == 200


async def test_expire_sessions_invalidates_every_token_but_not_refresh(sf: Harness) -> None:
    first, second = await sf.password_login(), await sf.password_login()
    sf.identity.expire_sessions()
    for token in (first, second):
        assert (await sf.data_call(token)).status_code == 401
    info = sf.info
    response = await sf.token(
        {"grant_type": "refresh_token", "refresh_token": info["refresh_token"]},
        headers=basic(info["consumer_key"], info["consumer_secret"]),
    )
    assert (await sf.data_call(response.json()["access_token"])).status_code == 200


# ----- revoke -----------------------------------------------------------------------------


async def test_revoke_an_access_token(sf: Harness) -> None:
    token, other = await sf.password_login(), await sf.password_login()
    response = await sf.client.post("/services/oauth2/revoke", data={"token": token})
    assert response.status_code == 200
    assert (await sf.data_call(token)).status_code == 401
    assert (await sf.data_call(other)).status_code == 200


async def test_revoke_a_refresh_token_revokes_what_it_minted(sf: Harness) -> None:
    info = sf.info
    grant = {"grant_type": "refresh_token", "refresh_token": info["refresh_token"]}
    auth = basic(info["consumer_key"], info["consumer_secret"])
    minted = (await sf.token(grant, headers=auth)).json()["access_token"]
    unrelated = await sf.password_login()
    revoked = await sf.client.post("/services/oauth2/revoke", data={"token": info["refresh_token"]})
    assert revoked.status_code == 200
    assert (await sf.data_call(minted)).status_code == 401
    assert (await sf.data_call(unrelated)).status_code == 200
    again = await sf.token(grant, headers=auth)
    assert oauth_error(again) == ("invalid_grant", "expired access/refresh token")


async def test_revoke_an_unknown_token(sf: Harness) -> None:
    response = await sf.client.post("/services/oauth2/revoke", data={"token": "nope"})
    assert oauth_error(response) == ("unsupported_token_type", "this token type is not supported")


# ----- identity URL -----------------------------------------------------------------------


async def test_identity_document(sf: Harness) -> None:
    token = await sf.password_login()
    headers = {"Authorization": f"Bearer {token}"}
    response = await sf.client.get(f"/id/{ORG}/{USER}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == f"{BASE}/id/{ORG}/{USER}"
    assert (body["user_id"], body["organization_id"], body["username"]) == (USER, ORG, USERNAME)
    assert body["urls"]["rest"] == f"{BASE}/services/data/v{{version}}/"
    assert (await sf.client.get(f"/id/{ORG[:15]}/{USER[:15]}", headers=headers)).status_code == 200
    other = await sf.client.get(f"/id/{ORG}/005000000000000AAA", headers=headers)
    assert other.status_code == 404
    assert other.json()[0]["errorCode"] == "NOT_FOUND"
    assert (await sf.client.get(f"/id/{ORG}/{USER}")).status_code == 401


# ----- SOAP login -------------------------------------------------------------------------

ENV_ENVELOPE = """<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope
        xmlns:xsd="http://www.w3.org/2001/XMLSchema"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"
        xmlns:urn="urn:partner.soap.sforce.com">
    <env:Header>
        <urn:CallOptions>
            <urn:client>simple-salesforce</urn:client>
            <urn:defaultNamespace>sf</urn:defaultNamespace>
        </urn:CallOptions>
    </env:Header>
    <env:Body>
        <n1:login xmlns:n1="urn:partner.soap.sforce.com">
            <n1:username>{username}</n1:username>
            <n1:password>{password}</n1:password>
        </n1:login>
    </env:Body>
</env:Envelope>"""

SOAPENV_ENVELOPE = """<?xml version="1.0" encoding="utf-8" ?>
<soapenv:Envelope
        xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
        xmlns:urn="urn:partner.soap.sforce.com">
    <soapenv:Header/>
    <soapenv:Body>
        <urn:login>
            <urn:username>{username}</urn:username>
            <urn:password>{password}</urn:password>
        </urn:login>
    </soapenv:Body>
</soapenv:Envelope>"""

SOAP_HEADERS = {"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"}


async def soap(sf: Harness, body: str, version: str = "59.0") -> httpx.Response:
    return await sf.client.post(
        f"/services/Soap/u/{version}", content=body.encode(), headers=SOAP_HEADERS
    )


def fault_of(response: httpx.Response) -> tuple[str, str | None, str | None]:
    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    fault = root.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault is not None
    sf_ns = "{urn:fault.partner.soap.sforce.com}"
    return (
        fault.findtext("faultcode") or "",
        fault.findtext(f"detail/*/{sf_ns}exceptionCode"),
        fault.findtext(f"detail/*/{sf_ns}exceptionMessage"),
    )


@pytest.mark.parametrize("template", [ENV_ENVELOPE, SOAPENV_ENVELOPE])
async def test_soap_login_success_and_element_order(sf: Harness, template: str) -> None:
    info = sf.info
    response = await soap(
        sf, template.format(username=USERNAME, password=info["password"] + info["security_token"])
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    result = root.find(f".//{SOAP_NS}loginResponse/{SOAP_NS}result")
    assert result is not None
    assert [child.tag.removeprefix(SOAP_NS) for child in result] == [
        "metadataServerUrl",
        "passwordExpired",
        "sandbox",
        "serverUrl",
        "sessionId",
        "userId",
        "userInfo",
    ]
    assert result.findtext(f"{SOAP_NS}serverUrl") == f"{BASE}/services/Soap/u/59.0/{ORG[:15]}"
    assert result.findtext(f"{SOAP_NS}userId") == USER
    user_info = result.find(f"{SOAP_NS}userInfo")
    assert user_info is not None
    assert user_info.findtext(f"{SOAP_NS}organizationId") == ORG
    assert user_info.findtext(f"{SOAP_NS}userName") == USERNAME
    assert user_info.findtext(f"{SOAP_NS}sessionSecondsValid") == "7200"
    session_id = result.findtext(f"{SOAP_NS}sessionId")
    assert session_id is not None
    assert session_id.startswith(ORG[:15] + "!")
    assert (await sf.data_call(session_id)).status_code == 200


async def test_soap_login_unescapes_the_password(sf: Harness) -> None:
    info = sf.info
    secret = info["password"] + info["security_token"]
    escaped = f"&#{ord(secret[0])};" + secret[1:]
    response = await soap(sf, ENV_ENVELOPE.format(username=USERNAME, password=escaped))
    assert response.status_code == 200


@pytest.mark.parametrize("which", ["password only", "wrong password", "wrong user"])
async def test_soap_login_bad_credentials_fault(sf: Harness, which: str) -> None:
    info = sf.info
    username, password = USERNAME, info["password"] + info["security_token"]
    if which == "password only":
        password = info["password"]
    elif which == "wrong password":
        password = "x" + password
    else:
        username = "other@example.com"
    response = await soap(sf, ENV_ENVELOPE.format(username=username, password=password))
    assert fault_of(response) == (
        "sf:INVALID_LOGIN",
        "INVALID_LOGIN",
        "Invalid username, password, security token; or user locked out.",
    )
    # simple-salesforce looks these up by their literal prefixed tag names.
    assert b"<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in response.content


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ("not xml at all", "not well-formed"),
        (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
            "DOCTYPE and entity",
        ),
        ("<Envelope/>", "Expected a SOAP 1.1 Envelope"),
        (
            '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>',
            "no Body with an operation",
        ),
        (
            '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
            '<u:logout xmlns:u="urn:partner.soap.sforce.com"/></e:Body></e:Envelope>',
            "implements login() and convertLead()",
        ),
        (
            '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
            '<u:login xmlns:u="urn:partner.soap.sforce.com"><u:username>a</u:username></u:login>'
            "</e:Body></e:Envelope>",
            "needs both a username and a password",
        ),
    ],
)
async def test_soap_malformed_requests_fault(sf: Harness, body: str, message_part: str) -> None:
    response = await soap(sf, body)
    faultcode, code, _ = fault_of(response)
    assert faultcode == "soapenv:Client"
    assert code is None
    root = ET.fromstring(response.content)
    assert message_part in (root.findtext(".//faultstring") or "")


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        (
            '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'.encode(
                "utf-16"
            ),
            "not UTF-8",
        ),
        (b'<?xml version="1.0" encoding="bogus"?><Envelope/>', "Expected a SOAP 1.1"),
        (b"<a>\xff</a>", "not UTF-8"),
    ],
)
def test_soap_request_encodings(body: bytes, message_part: str) -> None:
    with pytest.raises(SoapFaultError, match=message_part):
        parse_login_request(body)


def parse_or_fault(body: bytes) -> LoginRequest | SoapFaultError:
    try:
        return parse_login_request(body)
    except SoapFaultError as fault:
        return fault


@given(st.binary(max_size=300))
def test_soap_parser_answers_any_bytes_with_a_request_or_a_fault(body: bytes) -> None:
    outcome = parse_or_fault(body)
    if isinstance(outcome, SoapFaultError):
        assert outcome.exception_code is None
        ET.fromstring(outcome.xml())  # the fault itself is always well-formed


_XML_TEXT = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="\ufffe\uffff"
    ),
    min_size=1,
    max_size=40,
)


@given(username=_XML_TEXT.map(str.strip).filter(bool), password=_XML_TEXT)
def test_soap_parser_reads_back_escaped_credentials(username: str, password: str) -> None:
    body = ENV_ENVELOPE.format(username=html.escape(username), password=html.escape(password))
    request = parse_login_request(body.encode())
    assert (request.username, request.password) == (username, password)


@pytest.mark.parametrize("version", ["30.0", "67.0", "v59.0", "59", "latest"])
async def test_soap_unsupported_version(sf: Harness, version: str) -> None:
    info = sf.info
    body = ENV_ENVELOPE.format(
        username=USERNAME, password=info["password"] + info["security_token"]
    )
    faultcode, code, message = fault_of(await soap(sf, body, version=version))
    assert (faultcode, code) == ("sf:UNSUPPORTED_API_VERSION", "UNSUPPORTED_API_VERSION")
    assert message is not None
    assert "31.0 to 66.0" in message


# ----- credentials and keys ---------------------------------------------------------------


def test_credentials_are_deterministic_from_the_seed(key_dir: Path) -> None:
    clock = ManualClock()
    first = make_identity(clock, key_dir, seed=3).info()
    again = make_identity(clock, key_dir, seed=3).info()
    other = make_identity(clock, key_dir, seed=4).info()
    assert first == again
    for name in ("password", "security_token", "consumer_key", "consumer_secret", "refresh_token"):
        assert first[name] != other[name]
    assert first["consumer_key"].startswith("3MVG9")
    assert len(first["consumer_key"]) == 85
    assert len(first["consumer_secret"]) == 64
    assert first["refresh_token"].startswith("5Aep861")
    assert first["login_url"] == BASE
    assert first["token_url"] == f"{BASE}/services/oauth2/token"
    assert first["username"] == USERNAME


def test_new_key_pair_is_written_with_private_permissions(tmp_path: Path) -> None:
    identity = make_identity(ManualClock(), tmp_path / "fresh" / "keys")
    info = identity.info()
    key_path, cert_path = Path(info["private_key_path"]), Path(info["certificate_path"])
    assert key_path.name == PRIVATE_KEY_FILE
    assert cert_path.name == CERTIFICATE_FILE
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in key_path.read_bytes()
    assert b"BEGIN CERTIFICATE" in cert_path.read_bytes()
    assert not [p for p in key_path.parent.iterdir() if p.name.endswith(".tmp")]


async def test_keys_are_reused_across_restarts(sf: Harness, key_dir: Path) -> None:
    key_before = (key_dir / PRIVATE_KEY_FILE).read_bytes()
    cert_before = (key_dir / CERTIFICATE_FILE).read_bytes()
    assertion = sf.assertion()
    restarted = make_identity(sf.clock, key_dir)
    assert (key_dir / PRIVATE_KEY_FILE).read_bytes() == key_before
    assert (key_dir / CERTIFICATE_FILE).read_bytes() == cert_before
    transport = httpx.ASGITransport(app=build_app(restarted))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        response = await client.post(
            TOKEN_URL, data={"grant_type": JWT_GRANT, "assertion": assertion}
        )
    assert response.status_code == 200, response.text


async def test_missing_certificate_is_reissued_for_the_existing_key(
    sf: Harness, key_dir: Path
) -> None:
    key_before = (key_dir / PRIVATE_KEY_FILE).read_bytes()
    (key_dir / CERTIFICATE_FILE).unlink()
    assertion = sf.assertion()
    restarted = make_identity(sf.clock, key_dir)
    assert (key_dir / PRIVATE_KEY_FILE).read_bytes() == key_before
    assert (key_dir / CERTIFICATE_FILE).exists()
    transport = httpx.ASGITransport(app=build_app(restarted))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        response = await client.post(
            TOKEN_URL, data={"grant_type": JWT_GRANT, "assertion": assertion}
        )
    assert response.status_code == 200, response.text


def test_unreadable_private_key_is_an_error_not_replaced(key_dir: Path) -> None:
    (key_dir / PRIVATE_KEY_FILE).write_text("garbage")
    with pytest.raises(ValueError, match="is not an unencrypted PEM private key"):
        make_identity(ManualClock(), key_dir)
    assert (key_dir / PRIVATE_KEY_FILE).read_text() == "garbage"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"org_id": "001000000000001AAA"}, "org_id"),
        ({"user_id": "005"}, "user_id"),
        ({"session_lifetime_seconds": 0}, "session_lifetime_seconds"),
    ],
)
def test_constructor_validates_its_arguments(
    key_dir: Path, kw: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "base_url": BASE,
        "org_id": ORG,
        "user_id": USER,
        "username": USERNAME,
        "rng": random.Random(1),
        "key_dir": key_dir,
    }
    args.update(kw)
    with pytest.raises(ValueError, match=message):
        SalesforceIdentity(ManualClock(), **args)


# ----- snapshot / restore -----------------------------------------------------------------


async def test_snapshot_restore_keeps_credentials_tokens_and_revocations(
    sf: Harness, key_dir: Path
) -> None:
    token = await sf.password_login()
    expired_soon = await sf.password_login()
    await sf.client.post("/services/oauth2/revoke", data={"token": sf.info["refresh_token"]})
    saved = json.loads(json.dumps(sf.identity.snapshot()))

    restored = make_identity(sf.clock, key_dir, seed=99)  # another seed: other credentials
    assert restored.info()["password"] != sf.info["password"]
    restored.restore(saved)
    assert restored.info() == sf.info
    transport = httpx.ASGITransport(app=build_app(restored))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        harness = Harness(sf.clock, restored, client)
        assert (await harness.data_call(token)).status_code == 200
        assert (await harness.data_call(expired_soon)).status_code == 200
        refresh = await harness.token(
            {"grant_type": "refresh_token", "refresh_token": sf.info["refresh_token"]},
            headers=basic(sf.info["consumer_key"], sf.info["consumer_secret"]),
        )
        assert oauth_error(refresh) == ("invalid_grant", "expired access/refresh token")
        sf.clock.advance(7200)
        assert (await harness.data_call(token)).status_code == 401
    assert restored.snapshot()["sessions"] == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.pop("credentials"),
        lambda s: s["credentials"].pop("consumer_key"),
        lambda s: s["sessions"].append({"token": 1, "expires_at": "x", "refresh_token": None}),
        lambda s: s["sessions"].append(
            {"token": "t", "expires_at": "2026-01-01T00:00:00", "refresh_token": None}
        ),
        lambda s: s.update(refresh_tokens=[None]),
    ],
)
async def test_restore_rejects_a_damaged_snapshot(sf: Harness, damage: Any) -> None:
    token = await sf.password_login()
    saved = sf.identity.snapshot()
    damage(saved)
    with pytest.raises(ValueError, match="not a Salesforce identity snapshot"):
        sf.identity.restore(saved)
    assert (await sf.data_call(token)).status_code == 200
