"""The Partner Center sandbox's Entra ID: token grants and errors, discovery, token checks, msal.

Tests talk HTTP to a small FastAPI app that mounts the identity router, installs the sandbox's
error handlers and has two probe routes calling `authenticate` the way the Referrals API
(App+User only) and the Webhooks API (app-only allowed) do. Time is a ManualClock.
"""

from __future__ import annotations

import base64
import json
import random
import re
import warnings
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import httpx
import jwt
import msal
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request

from cosell.clock import ManualClock
from cosell_sandbox.partnercenter.errors import install_error_handlers
from cosell_sandbox.partnercenter.identity import (
    ADMIN_USER,
    REFERRALS_AUDIENCE,
    TENANT_DOMAIN,
    WEBHOOKS_AUDIENCE,
    Identity,
)

with warnings.catch_warnings():
    # starlette asks for `httpx2` at import; the TestClient works with httpx all the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "http://pc.sandbox.test"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def identity(clock: ManualClock, signing_key: rsa.RSAPrivateKey) -> Identity:
    return Identity(clock, base_url=BASE, rng=random.Random(7), signing_key=signing_key)


def make_app(identity: Identity) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(identity.router)

    @app.get("/probe/referrals")
    async def referrals_probe(request: Request) -> dict[str, Any]:
        principal = identity.authenticate(request, audience=REFERRALS_AUDIENCE, user_required=True)
        return asdict(principal)

    @app.get("/probe/webhooks")
    async def webhooks_probe(request: Request) -> dict[str, Any]:
        principal = identity.authenticate(request, audience=WEBHOOKS_AUDIENCE, user_required=False)
        return asdict(principal)

    return app


@pytest.fixture
async def client(identity: Identity) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


def creds(identity: Identity) -> dict[str, str]:
    info = identity.info()
    return {"client_id": info["client_id"], "client_secret": info["client_secret"]}


async def token_v1(
    client: httpx.AsyncClient, identity: Identity, tenant: str | None = None, **form: str
) -> httpx.Response:
    path = f"/{tenant or identity.tenant_id}/oauth2/token"
    return await client.post(path, data={**creds(identity), **form})


async def token_v2(
    client: httpx.AsyncClient, identity: Identity, tenant: str | None = None, **form: str
) -> httpx.Response:
    path = f"/{tenant or identity.tenant_id}/oauth2/v2.0/token"
    return await client.post(path, data={**creds(identity), **form})


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def user_token(client: httpx.AsyncClient, identity: Identity, audience: str) -> str:
    response = await token_v1(
        client,
        identity,
        grant_type="refresh_token",
        refresh_token=identity.refresh_token,
        resource=audience,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def app_token(client: httpx.AsyncClient, identity: Identity, audience: str) -> str:
    response = await token_v2(
        client, identity, grant_type="client_credentials", scope=f"{audience}/.default"
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


# -- credentials ----------------------------------------------------------------------------


def test_credentials_are_reproducible_from_the_seed(signing_key: rsa.RSAPrivateKey) -> None:
    def make(seed: int) -> dict[str, str]:
        return Identity(
            ManualClock(), base_url=BASE, rng=random.Random(seed), signing_key=signing_key
        ).info()

    first, again, other = make(3), make(3), make(4)
    assert first == again
    assert first["client_secret"] != other["client_secret"]
    assert first["tenant_id"] != other["tenant_id"]
    assert first["username"] == ADMIN_USER
    assert first["token_endpoint_v1"] == f"{BASE}/{first['tenant_id']}/oauth2/token"
    assert first["token_endpoint_v2"] == f"{BASE}/{first['tenant_id']}/oauth2/v2.0/token"
    assert first["authority"] == f"{BASE}/{first['tenant_id']}"


def test_token_lifetime_must_be_positive(signing_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="positive"):
        Identity(
            ManualClock(),
            base_url=BASE,
            rng=random.Random(1),
            token_lifetime_seconds=0,
            signing_key=signing_key,
        )


# -- v1 grants ------------------------------------------------------------------------------


async def test_v1_refresh_token_grant_rotates_and_keeps_the_old_token_valid(
    client: httpx.AsyncClient, identity: Identity, clock: ManualClock
) -> None:
    first = await token_v1(
        client,
        identity,
        grant_type="refresh_token",
        refresh_token=identity.refresh_token,
        resource=REFERRALS_AUDIENCE,
    )
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == "3600"
    assert body["ext_expires_in"] == "3600"
    assert body["resource"] == REFERRALS_AUDIENCE
    assert body["scope"] == "user_impersonation"
    now = int(clock.now().timestamp())
    assert body["expires_on"] == str(now + 3600)
    assert body["not_before"] == str(now)
    assert first.headers["cache-control"].startswith("no-store")
    rotated = body["refresh_token"]
    assert rotated != identity.refresh_token

    claims = claims_of(body["access_token"])
    assert claims["aud"] == REFERRALS_AUDIENCE
    assert claims["iss"] == f"https://sts.windows.net/{identity.tenant_id}/"
    assert claims["tid"] == identity.tenant_id
    assert claims["appid"] == identity.client_id
    assert claims["upn"] == ADMIN_USER
    assert claims["scp"] == "user_impersonation"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["oid"]

    for refresh_token in (rotated, identity.refresh_token):
        again = await token_v1(
            client,
            identity,
            grant_type="refresh_token",
            refresh_token=refresh_token,
            resource=WEBHOOKS_AUDIENCE,
        )
        assert again.status_code == 200, again.text
        assert again.json()["resource"] == WEBHOOKS_AUDIENCE


async def test_v1_refresh_token_grant_defaults_to_the_tokens_resource(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    response = await token_v1(
        client, identity, grant_type="refresh_token", refresh_token=identity.refresh_token
    )
    assert response.status_code == 200
    assert response.json()["resource"] == REFERRALS_AUDIENCE


async def test_v1_password_grant_like_the_documented_request(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    info = identity.info()
    response = await token_v1(
        client,
        identity,
        tenant="common",
        grant_type="password",
        resource=REFERRALS_AUDIENCE,
        scope="openid",
        username=info["username"],
        password=info["password"],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resource"] == REFERRALS_AUDIENCE
    assert body["refresh_token"]
    id_claims = claims_of(body["id_token"])
    assert id_claims["aud"] == identity.client_id
    assert id_claims["upn"] == ADMIN_USER
    assert claims_of(body["access_token"])["upn"] == ADMIN_USER


async def test_v1_client_credentials_grant_is_app_only(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    response = await token_v1(
        client, identity, grant_type="client_credentials", resource=WEBHOOKS_AUDIENCE
    )
    assert response.status_code == 200
    body = response.json()
    assert "refresh_token" not in body
    assert "scope" not in body
    claims = claims_of(body["access_token"])
    assert claims["aud"] == WEBHOOKS_AUDIENCE
    assert claims["idtyp"] == "app"
    assert "upn" not in claims
    assert "scp" not in claims


async def test_client_secret_in_basic_auth_is_accepted(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    basic = base64.b64encode(f"{identity.client_id}:{identity.client_secret}".encode()).decode()
    response = await client.post(
        f"/{identity.tenant_id}/oauth2/token",
        data={"grant_type": "client_credentials", "resource": WEBHOOKS_AUDIENCE},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text


async def test_tenant_domain_and_user_aliases_are_accepted(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    for tenant in (TENANT_DOMAIN, "organizations", "common", identity.tenant_id.upper()):
        response = await token_v1(
            client,
            identity,
            tenant=tenant,
            grant_type="refresh_token",
            refresh_token=identity.refresh_token,
        )
        assert response.status_code == 200, (tenant, response.text)


# -- v2 grants ------------------------------------------------------------------------------


async def test_v2_refresh_token_grant(client: httpx.AsyncClient, identity: Identity) -> None:
    response = await token_v2(
        client,
        identity,
        grant_type="refresh_token",
        refresh_token=identity.refresh_token,
        scope=f"{REFERRALS_AUDIENCE}/.default offline_access openid profile",
        client_info="1",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 3600
    assert body["ext_expires_in"] == 3600
    assert body["scope"] == f"{REFERRALS_AUDIENCE}/user_impersonation"
    assert "resource" not in body
    assert body["refresh_token"] != identity.refresh_token
    id_claims = claims_of(body["id_token"])
    assert id_claims["iss"] == f"https://login.microsoftonline.com/{identity.tenant_id}/v2.0"
    assert id_claims["preferred_username"] == ADMIN_USER
    client_info = json.loads(base64.urlsafe_b64decode(body["client_info"] + "=="))
    assert client_info == {"uid": id_claims["oid"], "utid": identity.tenant_id}
    # v2 endpoint, v1-format access token (the resource decides the format).
    assert (
        claims_of(body["access_token"])["iss"] == f"https://sts.windows.net/{identity.tenant_id}/"
    )


async def test_v2_user_impersonation_scope_and_password_grant(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    info = identity.info()
    response = await token_v2(
        client,
        identity,
        tenant="organizations",
        grant_type="password",
        username=info["username"].upper(),
        password=info["password"],
        scope=f"{REFERRALS_AUDIENCE}/user_impersonation",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "id_token" not in body  # no openid scope asked for
    assert claims_of(body["access_token"])["aud"] == REFERRALS_AUDIENCE


async def test_v2_client_credentials_grant(client: httpx.AsyncClient, identity: Identity) -> None:
    response = await token_v2(
        client, identity, grant_type="client_credentials", scope=f"{WEBHOOKS_AUDIENCE}/.default"
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert claims_of(body["access_token"])["aud"] == WEBHOOKS_AUDIENCE


async def test_token_lifetime_is_configurable(
    clock: ManualClock, signing_key: rsa.RSAPrivateKey
) -> None:
    identity = Identity(
        clock,
        base_url=BASE,
        rng=random.Random(1),
        token_lifetime_seconds=600,
        signing_key=signing_key,
    )
    transport = httpx.ASGITransport(app=make_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        response = await token_v2(
            http, identity, grant_type="client_credentials", scope=f"{WEBHOOKS_AUDIENCE}/.default"
        )
        assert response.json()["expires_in"] == 600
        changed = await http.put("/control/identity/token-lifetime", json={"seconds": 120})
        assert changed.status_code == 200
        response = await token_v2(
            http, identity, grant_type="client_credentials", scope=f"{WEBHOOKS_AUDIENCE}/.default"
        )
        assert response.json()["expires_in"] == 120
        refused = await http.put("/control/identity/token-lifetime", json={"seconds": -5})
        assert refused.status_code == 400
        assert refused.json()["error"]["target"] == "seconds"


# -- token endpoint errors ------------------------------------------------------------------


def assert_entra_error(response: httpx.Response, status: int, error: str, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert body["trace_id"]
    assert body["correlation_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"])


@pytest.mark.parametrize(
    ("form", "status", "error", "code", "text"),
    [
        ({}, 400, "invalid_request", 900144, "'grant_type'"),
        (
            {"grant_type": "urn:ietf:params:oauth:grant-type:saml1_1-bearer"},
            400,
            "unsupported_grant_type",
            70003,
            "refresh_token",
        ),
        ({"grant_type": "refresh_token"}, 400, "invalid_request", 900144, "'refresh_token'"),
        (
            {"grant_type": "refresh_token", "refresh_token": "0.Anot-a-token"},
            400,
            "invalid_grant",
            70000,
            "invalid or malformed",
        ),
        ({"grant_type": "password", "password": "x"}, 400, "invalid_request", 900144, "'username'"),
        (
            {"grant_type": "password", "username": ADMIN_USER},
            400,
            "invalid_request",
            900144,
            "'password'",
        ),
        (
            {"grant_type": "password", "username": ADMIN_USER, "password": "wrong"},
            400,
            "invalid_grant",
            50126,
            "invalid username or password",
        ),
        (
            {"grant_type": "password", "username": "someone@else.example", "password": "x"},
            400,
            "invalid_grant",
            50126,
            "invalid username or password",
        ),
        ({"grant_type": "client_credentials"}, 400, "invalid_request", 900144, "'resource'"),
        (
            {"grant_type": "client_credentials", "resource": "https://graph.microsoft.com"},
            400,
            "invalid_resource",
            500011,
            "https://graph.microsoft.com",
        ),
    ],
)
async def test_v1_errors(
    client: httpx.AsyncClient,
    identity: Identity,
    form: dict[str, str],
    status: int,
    error: str,
    code: int,
    text: str,
) -> None:
    response = await token_v1(client, identity, **form)
    assert_entra_error(response, status, error, code)
    assert text in response.json()["error_description"]


@pytest.mark.parametrize(
    ("form", "error", "code", "text"),
    [
        ({"grant_type": "client_credentials"}, "invalid_request", 900144, "'scope'"),
        (
            {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"},
            "invalid_resource",
            500011,
            "https://graph.microsoft.com",
        ),
        (
            {
                "grant_type": "client_credentials",
                "scope": f"{WEBHOOKS_AUDIENCE}/user_impersonation",
            },
            "invalid_scope",
            1002012,
            "/.default",
        ),
        (
            {"grant_type": "client_credentials", "scope": f"{WEBHOOKS_AUDIENCE}/Read.All"},
            "invalid_scope",
            70011,
            "Read.All",
        ),
        (
            {
                "grant_type": "client_credentials",
                "scope": f"{WEBHOOKS_AUDIENCE}/.default {REFERRALS_AUDIENCE}/.default",
            },
            "invalid_scope",
            70011,
            "exactly one resource",
        ),
        ({"grant_type": "client_credentials", "scope": "openid"}, "invalid_scope", 70011, "openid"),
    ],
)
async def test_v2_scope_errors(
    client: httpx.AsyncClient,
    identity: Identity,
    form: dict[str, str],
    error: str,
    code: int,
    text: str,
) -> None:
    response = await token_v2(client, identity, **form)
    assert_entra_error(response, 400, error, code)
    assert text in response.json()["error_description"]


async def test_wrong_client_secret_is_invalid_client(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    response = await client.post(
        f"/{identity.tenant_id}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "resource": WEBHOOKS_AUDIENCE,
            "client_id": identity.client_id,
            "client_secret": "not-the-secret",
        },
    )
    assert_entra_error(response, 401, "invalid_client", 7000215)
    assert "not-the-secret" not in response.text


async def test_missing_secret_unknown_client_and_missing_client(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    path = f"/{identity.tenant_id}/oauth2/token"
    form = {"grant_type": "client_credentials", "resource": WEBHOOKS_AUDIENCE}
    no_secret = await client.post(path, data={**form, "client_id": identity.client_id})
    assert_entra_error(no_secret, 401, "invalid_client", 7000218)
    unknown = await client.post(
        path,
        data={**form, "client_id": "11111111-2222-4333-8444-555555555555", "client_secret": "x"},
    )
    assert_entra_error(unknown, 400, "unauthorized_client", 700016)
    missing = await client.post(path, data=form)
    assert_entra_error(missing, 400, "invalid_request", 900144)
    assert "'client_id'" in missing.json()["error_description"]


async def test_error_echoes_the_client_request_id(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    response = await client.post(
        f"/{identity.tenant_id}/oauth2/token",
        data={"grant_type": "nope"},
        headers={"client-request-id": "0b1e8b5a-0000-4000-8000-000000000001"},
    )
    assert response.json()["correlation_id"] == "0b1e8b5a-0000-4000-8000-000000000001"
    assert response.json()["timestamp"] == "2026-01-05 09:00:00Z"  # the sandbox clock


async def test_tenants(client: httpx.AsyncClient, identity: Identity) -> None:
    unknown = await token_v1(
        client,
        identity,
        tenant="fabrikam.onmicrosoft.com",
        grant_type="client_credentials",
        resource=WEBHOOKS_AUDIENCE,
    )
    assert_entra_error(unknown, 400, "invalid_request", 90002)
    assert identity.tenant_id in unknown.json()["error_description"]
    common = await token_v1(
        client,
        identity,
        tenant="common",
        grant_type="client_credentials",
        resource=WEBHOOKS_AUDIENCE,
    )
    assert_entra_error(common, 400, "invalid_request", 50059)


async def test_json_body_is_refused(client: httpx.AsyncClient, identity: Identity) -> None:
    response = await client.post(
        f"/{identity.tenant_id}/oauth2/token",
        json={"grant_type": "client_credentials", **creds(identity)},
    )
    assert_entra_error(response, 400, "invalid_request", 900144)
    assert "x-www-form-urlencoded" in response.json()["error_description"]


async def test_refresh_token_expires_after_90_days(
    client: httpx.AsyncClient, identity: Identity, clock: ManualClock
) -> None:
    clock.advance(89 * 86400)
    ok = await token_v1(
        client, identity, grant_type="refresh_token", refresh_token=identity.refresh_token
    )
    assert ok.status_code == 200
    fresh = ok.json()["refresh_token"]
    clock.advance(2 * 86400)
    expired = await token_v1(
        client, identity, grant_type="refresh_token", refresh_token=identity.refresh_token
    )
    assert_entra_error(expired, 400, "invalid_grant", 700082)
    # The token issued on day 89 lives 90 days from then.
    still = await token_v1(client, identity, grant_type="refresh_token", refresh_token=fresh)
    assert still.status_code == 200


async def test_revoked_refresh_tokens_and_new_consent(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    old = identity.refresh_token
    revoked = await client.post("/control/identity/revoke-refresh-tokens")
    assert revoked.json() == {"revoked": 1}
    response = await token_v1(client, identity, grant_type="refresh_token", refresh_token=old)
    assert_entra_error(response, 400, "invalid_grant", 50173)
    consent = await client.post("/control/identity/consent")
    new = consent.json()["refresh_token"]
    assert new != old
    assert identity.info()["refresh_token"] == new
    response = await token_v1(client, identity, grant_type="refresh_token", refresh_token=new)
    assert response.status_code == 200


# -- authenticate ---------------------------------------------------------------------------


async def test_user_token_is_accepted_by_the_referrals_api(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    token = await user_token(client, identity, REFERRALS_AUDIENCE)
    response = await client.get("/probe/referrals", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {
        "tenant_id": identity.tenant_id,
        "client_id": identity.client_id,
        "user": ADMIN_USER,
        "audience": REFERRALS_AUDIENCE,
    }


async def test_app_only_token_is_refused_by_referrals_but_fine_for_webhooks(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    referrals_app_token = await app_token(client, identity, REFERRALS_AUDIENCE)
    refused = await client.get("/probe/referrals", headers=bearer(referrals_app_token))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "accessDenied"
    assert "App+User" in error["message"]

    webhooks_app_token = await app_token(client, identity, WEBHOOKS_AUDIENCE)
    ok = await client.get("/probe/webhooks", headers=bearer(webhooks_app_token))
    assert ok.status_code == 200
    assert ok.json()["user"] is None


async def test_wrong_audience_is_refused_both_ways(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    webhooks_token = await user_token(client, identity, WEBHOOKS_AUDIENCE)
    referrals_token = await user_token(client, identity, REFERRALS_AUDIENCE)
    for path, token, expected in (
        ("/probe/referrals", webhooks_token, REFERRALS_AUDIENCE),
        ("/probe/webhooks", referrals_token, WEBHOOKS_AUDIENCE),
    ):
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "unauthenticated"
        assert f"accepts only tokens for '{expected}'" in error["message"]
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_token_expires_on_the_clock(
    client: httpx.AsyncClient, identity: Identity, clock: ManualClock
) -> None:
    token = await user_token(client, identity, REFERRALS_AUDIENCE)
    clock.advance(3599)
    assert (await client.get("/probe/referrals", headers=bearer(token))).status_code == 200
    clock.advance(1)
    response = await client.get("/probe/referrals", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]
    assert "expired" in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        ({}, "no Authorization header"),
        ({"Authorization": "Basic abc"}, "must be 'Bearer <access token>'"),
        ({"Authorization": "Bearer"}, "must be 'Bearer <access token>'"),
        ({"Authorization": "Bearer not.a.jwt"}, "invalid"),
    ],
)
async def test_missing_or_malformed_tokens(
    client: httpx.AsyncClient, headers: dict[str, str], text: str
) -> None:
    response = await client.get("/probe/webhooks", headers=headers)
    assert response.status_code == 401
    assert text in response.json()["error"]["message"]
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_token_signed_by_another_key_or_tenant_is_refused(
    client: httpx.AsyncClient, identity: Identity, clock: ManualClock
) -> None:
    genuine = claims_of(await user_token(client, identity, WEBHOOKS_AUDIENCE))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(genuine, other_key, algorithm="RS256")
    response = await client.get("/probe/webhooks", headers=bearer(forged))
    assert response.status_code == 401
    assert "Signature verification failed" in response.json()["error"]["message"]

    unsigned = jwt.encode(genuine, "", algorithm="none")
    response = await client.get("/probe/webhooks", headers=bearer(unsigned))
    assert response.status_code == 401

    # Signed by the sandbox key but claiming another issuer.
    other = Identity(clock, base_url=BASE, rng=random.Random(99), signing_key=identity._signing_key)
    transport = httpx.ASGITransport(app=make_app(other))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        foreign = await user_token(http, other, WEBHOOKS_AUDIENCE)
    response = await client.get("/probe/webhooks", headers=bearer(foreign))
    assert response.status_code == 401
    assert "not issued by this tenant" in response.json()["error"]["message"]


async def test_revoked_access_tokens_are_refused(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    token = await user_token(client, identity, REFERRALS_AUDIENCE)
    revoked = await client.post("/control/identity/revoke-access-tokens")
    assert revoked.json() == {"revoked": 1}
    response = await client.get("/probe/referrals", headers=bearer(token))
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    fresh = await user_token(client, identity, REFERRALS_AUDIENCE)
    assert (await client.get("/probe/referrals", headers=bearer(fresh))).status_code == 200


# -- discovery ------------------------------------------------------------------------------


async def test_v2_discovery_without_original_host_uses_the_base_url(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    tid = identity.tenant_id
    response = await client.get(f"/{tid}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["token_endpoint"] == f"{BASE}/{tid}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{BASE}/{tid}/oauth2/v2.0/authorize"
    assert doc["device_authorization_endpoint"] == f"{BASE}/{tid}/oauth2/v2.0/devicecode"
    assert doc["jwks_uri"] == f"{BASE}/{tid}/discovery/v2.0/keys"
    assert doc["issuer"] == f"https://login.microsoftonline.com/{tid}/v2.0"


async def test_discovery_with_original_host_names_that_host(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    original = {"X-Original-Host": "login.microsoftonline.com"}
    v2 = (
        await client.get("/common/v2.0/.well-known/openid-configuration", headers=original)
    ).json()
    assert v2["token_endpoint"] == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    assert v2["issuer"] == "https://login.microsoftonline.com/{tenantid}/v2.0"
    v1 = (
        await client.get(f"/{TENANT_DOMAIN}/.well-known/openid-configuration", headers=original)
    ).json()
    tid = identity.tenant_id
    assert v1["token_endpoint"] == f"https://login.microsoftonline.com/{tid}/oauth2/token"
    assert (
        v1["authorization_endpoint"] == f"https://login.microsoftonline.com/{tid}/oauth2/authorize"
    )
    assert v1["issuer"] == f"https://sts.windows.net/{tid}/"
    # A header that is not a host name is ignored.
    odd = {"X-Original-Host": "evil.example/path?x"}
    doc = (await client.get(f"/{tid}/v2.0/.well-known/openid-configuration", headers=odd)).json()
    assert doc["token_endpoint"].startswith(BASE)


async def test_discovery_of_an_unknown_tenant(client: httpx.AsyncClient) -> None:
    response = await client.get("/nonexistent-tenant/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_tenant"
    assert (await client.get("/nope/discovery/v2.0/keys")).status_code == 400


async def test_jwks_verifies_issued_tokens(client: httpx.AsyncClient, identity: Identity) -> None:
    token = await user_token(client, identity, REFERRALS_AUDIENCE)
    jwks = (await client.get(f"/{identity.tenant_id}/discovery/v2.0/keys")).json()
    assert jwks == (await client.get("/common/discovery/keys")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=REFERRALS_AUDIENCE,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["upn"] == ADMIN_USER


async def test_user_realm(client: httpx.AsyncClient) -> None:
    managed = (await client.get(f"/common/userrealm/{ADMIN_USER}?api-version=1.0")).json()
    assert managed["account_type"] == "Managed"
    unknown = (await client.get("/common/userrealm/a@b.example?api-version=1.0")).json()
    assert unknown["account_type"] == "Unknown"


# -- persistence ----------------------------------------------------------------------------


async def test_snapshot_and_restore_keep_credentials_tokens_and_key(
    client: httpx.AsyncClient, identity: Identity, clock: ManualClock
) -> None:
    access = await user_token(client, identity, REFERRALS_AUDIENCE)
    rotated = (
        await token_v1(
            client, identity, grant_type="refresh_token", refresh_token=identity.refresh_token
        )
    ).json()["refresh_token"]
    saved = json.loads(json.dumps(identity.snapshot()))

    restarted = Identity(clock, base_url=BASE, rng=random.Random(12345))
    assert restarted.info() != identity.info()
    restarted.restore(saved)
    assert restarted.info() == identity.info()
    transport = httpx.ASGITransport(app=make_app(restarted))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        assert (await http.get("/probe/referrals", headers=bearer(access))).status_code == 200
        again = await token_v1(http, restarted, grant_type="refresh_token", refresh_token=rotated)
        assert again.status_code == 200


# -- msal end to end ------------------------------------------------------------------------


class SandboxRouting:
    """msal's `http_client` contract, routing login.microsoftonline.com to the sandbox app."""

    def __init__(self, app: FastAPI) -> None:
        self.client = TestClient(app, base_url=BASE)
        self.urls: list[str] = []

    def _route(self, url: str, headers: dict[str, str] | None) -> tuple[str, dict[str, str]]:
        self.urls.append(url)
        original = httpx.URL(url)
        routed = original.copy_with(scheme="http", host="pc.sandbox.test", port=None)
        return str(routed), {**(headers or {}), "X-Original-Host": original.host}

    def post(
        self,
        url: str,
        params: dict[str, str] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        routed, all_headers = self._route(url, headers)
        response: httpx.Response = self.client.post(
            routed, params=params, data=data, headers=all_headers
        )
        return response

    def get(
        self,
        url: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        routed, all_headers = self._route(url, headers)
        response: httpx.Response = self.client.get(routed, params=params, headers=all_headers)
        return response

    def close(self) -> None:
        self.client.close()


def msal_app(identity: Identity, routing: SandboxRouting, secret: str | None = None) -> Any:
    return msal.ConfidentialClientApplication(
        identity.client_id,
        client_credential=secret or identity.client_secret,
        authority=f"https://login.microsoftonline.com/{identity.tenant_id}",
        instance_discovery=False,
        http_client=routing,
    )


def test_msal_acquires_tokens_with_every_grant(identity: Identity) -> None:
    routing = SandboxRouting(make_app(identity))
    app = msal_app(identity, routing)
    referrals = [f"{REFERRALS_AUDIENCE}/.default"]

    by_refresh = app.acquire_token_by_refresh_token(identity.refresh_token, scopes=referrals)
    assert "access_token" in by_refresh, by_refresh
    assert by_refresh["refresh_token"] != identity.refresh_token
    assert by_refresh["id_token_claims"]["preferred_username"] == ADMIN_USER
    assert claims_of(by_refresh["access_token"])["aud"] == REFERRALS_AUDIENCE

    # The rotated refresh token works in turn.
    again = app.acquire_token_by_refresh_token(by_refresh["refresh_token"], scopes=referrals)
    assert "access_token" in again, again

    for_client = app.acquire_token_for_client(scopes=[f"{WEBHOOKS_AUDIENCE}/.default"])
    assert "access_token" in for_client, for_client
    assert claims_of(for_client["access_token"])["aud"] == WEBHOOKS_AUDIENCE

    info = identity.info()
    by_password = app.acquire_token_by_username_password(
        info["username"], info["password"], scopes=referrals
    )
    assert "access_token" in by_password, by_password

    # The password grant has no second factor: its token carries no `mfa` and is refused.
    assert claims_of(by_password["access_token"])["amr"] == ["pwd"]
    probe = routing.client.get("/probe/referrals", headers=bearer(by_password["access_token"]))
    assert probe.status_code == 401
    assert probe.json()["error"]["code"] == "900421"

    # The consented refresh token was minted with MFA, and so is every token it yields.
    assert claims_of(by_refresh["access_token"])["amr"] == ["pwd", "mfa"]
    probe = routing.client.get("/probe/referrals", headers=bearer(again["access_token"]))
    assert probe.status_code == 200
    assert probe.json()["user"] == ADMIN_USER
    assert all(url.startswith("https://login.microsoftonline.com/") for url in routing.urls)
    routing.close()


def test_msal_reports_the_sandbox_errors(identity: Identity) -> None:
    routing = SandboxRouting(make_app(identity))
    wrong_secret = msal_app(identity, routing, secret="wrong-secret")
    result = wrong_secret.acquire_token_for_client(scopes=[f"{WEBHOOKS_AUDIENCE}/.default"])
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]

    app = msal_app(identity, routing)
    result = app.acquire_token_by_refresh_token(
        "0.Abogus", scopes=[f"{REFERRALS_AUDIENCE}/.default"]
    )
    assert result["error"] == "invalid_grant"
    routing.close()


async def test_control_identity_shows_the_credentials(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    shown = (await client.get("/control/identity")).json()
    assert shown == {**identity.info(), "token_lifetime_seconds": "3600.0"}


def test_msal_user_grants_through_the_organizations_authority(identity: Identity) -> None:
    routing = SandboxRouting(make_app(identity))
    app = msal.ConfidentialClientApplication(
        identity.client_id,
        client_credential=identity.client_secret,
        authority="https://login.microsoftonline.com/organizations",
        instance_discovery=False,
        http_client=routing,
    )
    info = identity.info()
    result = app.acquire_token_by_username_password(
        info["username"], info["password"], scopes=[f"{REFERRALS_AUDIENCE}/user_impersonation"]
    )
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["tid"] == identity.tenant_id
    assert any("/organizations/oauth2/v2.0/token" in url for url in routing.urls)
    routing.close()
