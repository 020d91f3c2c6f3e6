"""The four token grants, their errors, and the session's single shared refresh."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cosell.clock import ManualClock
from cosell.salesforce.auth import (
    ClientCredentialsFlow,
    JwtBearerFlow,
    PasswordFlow,
    RefreshTokenFlow,
    Session,
    Token,
)
from cosell.salesforce.errors import AuthenticationError, RetriableError

SECRETS = ("cs-secret", "pw-secret", "tok-secret", "rt-secret", "00Dxx!access-secret")


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _token_endpoint(
    seen: list[httpx.Request], answer: httpx.Response | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer or httpx.Response(
            200,
            json={
                "access_token": "00Dxx!access-secret",
                "instance_url": "https://acme.my.salesforce.com/",
                "id": "https://login.salesforce.com/id/00Dxx0000001gEREAY/005xx000001SvQeAAK",
                "issued_at": "1767603600000",
                "refresh_token": "rt-new",
                "scope": "api",
            },
        )

    return handle


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


async def test_jwt_bearer_flow_signs_the_documented_claims(key_pair: tuple[str, str]) -> None:
    private, public = key_pair
    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    seen: list[httpx.Request] = []
    flow = JwtBearerFlow(
        "ck", "int@acme.com", private, login_url="https://test.salesforce.com", clock=clock
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(_token_endpoint(seen))) as http:
        token = await flow.authenticate(http)
    assert str(seen[0].url) == "https://test.salesforce.com/services/oauth2/token"
    form = _form(seen[0])
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(
        form["assertion"],
        public,
        algorithms=["RS256"],
        audience="https://test.salesforce.com",
        options={"verify_exp": False},
    )
    assert claims["iss"] == "ck"
    assert claims["sub"] == "int@acme.com"
    assert claims["exp"] == int(datetime(2026, 1, 5, 9, 3, tzinfo=UTC).timestamp())
    assert token.instance_url == "https://acme.my.salesforce.com"
    assert token.issued_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert token.org_id == "00Dxx0000001gEREAY"
    assert token.user_id == "005xx000001SvQeAAK"


async def test_jwt_audience_override_and_bad_key() -> None:
    flow = JwtBearerFlow("ck", "u", "not a key", audience="https://acme.my.site.com")
    with pytest.raises(AuthenticationError, match="private key") as info:
        flow.assertion()
    assert "not a key" not in str(info.value)


async def test_client_credentials_basic_and_body() -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(_token_endpoint(seen))) as http:
        await ClientCredentialsFlow(
            "ck", "cs-secret", "https://acme.my.salesforce.com"
        ).authenticate(http)
        await ClientCredentialsFlow(
            "ck",
            "cs-secret",
            "https://acme.my.salesforce.com/services/oauth2/token",
            use_basic_auth=False,
        ).authenticate(http)
    basic, body = seen
    assert basic.headers["authorization"] == "Basic " + base64.b64encode(b"ck:cs-secret").decode()
    assert _form(basic) == {"grant_type": "client_credentials"}
    assert str(body.url) == "https://acme.my.salesforce.com/services/oauth2/token"
    assert "authorization" not in body.headers
    assert _form(body) == {
        "grant_type": "client_credentials",
        "client_id": "ck",
        "client_secret": "cs-secret",
    }


async def test_refresh_and_password_forms() -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(_token_endpoint(seen))) as http:
        token = await RefreshTokenFlow("ck", "cs-secret", "rt-secret").authenticate(http)
        await PasswordFlow(
            "ck",
            "cs-secret",
            "u@acme.com",
            "pw-secret",
            "tok-secret",
            token_url="https://test.salesforce.com",
        ).authenticate(http)
    assert _form(seen[0]) == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-secret",
        "client_id": "ck",
        "client_secret": "cs-secret",
    }
    assert str(seen[0].url) == "https://login.salesforce.com/services/oauth2/token"
    assert token.refresh_token == "rt-new"
    assert _form(seen[1])["password"] == "pw-secrettok-secret"
    assert _form(seen[1])["grant_type"] == "password"


@pytest.mark.parametrize(
    ("flow", "error", "description", "says"),
    [
        ("jwt", "invalid_grant", "user hasn't approved this consumer", "pre-authorized"),
        ("jwt", "invalid_grant", "invalid assertion", "certificate matches the private key"),
        ("password", "invalid_grant", "authentication failure", "security token"),
        ("refresh", "invalid_grant", "expired access/refresh token", "cosell connect salesforce"),
        ("cc", "invalid_client", "invalid client credentials", "consumer secret was rejected"),
        ("cc", "invalid_client_id", "client identifier invalid", "consumer key is not known"),
        ("cc", "invalid_grant", "no client credentials user enabled", "run-as user"),
        (
            "cc",
            "unsupported_grant_type",
            "grant type not supported",
            "enable the client credentials flow",
        ),
        ("password", "invalid_grant", "inactive user", "inactive"),
    ],
)
async def test_token_errors_say_what_to_check(
    key_pair: tuple[str, str], flow: str, error: str, description: str, says: str
) -> None:
    flows = {
        "jwt": JwtBearerFlow("ck", "u", key_pair[0]),
        "password": PasswordFlow("ck", "cs-secret", "u", "pw-secret", "tok-secret"),
        "refresh": RefreshTokenFlow("ck", "cs-secret", "rt-secret"),
        "cc": ClientCredentialsFlow("ck", "cs-secret", "https://acme.my.salesforce.com"),
    }
    answer = httpx.Response(400, json={"error": error, "error_description": description})
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_token_endpoint([], answer))
    ) as http:
        with pytest.raises(AuthenticationError) as info:
            await flows[flow].authenticate(http)
    message = str(info.value)
    assert says in message
    assert flows[flow].name in message
    assert description in message
    for secret in SECRETS:
        assert secret not in message


async def test_token_endpoint_outage_is_retriable_and_non_json_is_terminal() -> None:
    flow = ClientCredentialsFlow("ck", "cs-secret", "https://acme.my.salesforce.com")
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_token_endpoint([], httpx.Response(503, text="down")))
    ) as http:
        with pytest.raises(RetriableError):
            await flow.authenticate(http)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_token_endpoint([], httpx.Response(200, text="<html/>")))
    ) as http:
        with pytest.raises(AuthenticationError, match="HTTP 200"):
            await flow.authenticate(http)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(
            RetriableError, match=r"could not reach the token endpoint acme\.my\.salesforce\.com"
        ):
            await flow.authenticate(http)


def test_secrets_never_in_reprs(key_pair: tuple[str, str]) -> None:
    things = [
        JwtBearerFlow("ck", "u", key_pair[0]),
        ClientCredentialsFlow("ck", "cs-secret", "https://x"),
        RefreshTokenFlow("ck", "cs-secret", "rt-secret"),
        PasswordFlow("ck", "cs-secret", "u", "pw-secret", "tok-secret"),
        Token(
            "00Dxx!access-secret",
            "https://x",
            datetime(2026, 1, 5, tzinfo=UTC),
            refresh_token="rt-secret",
        ),
    ]
    for thing in things:
        text = repr(thing)
        for secret in (*SECRETS, "PRIVATE KEY"):
            assert secret not in text, (secret, text)


async def test_session_shares_one_refresh_between_concurrent_callers() -> None:
    calls = 0
    gate = asyncio.Event()

    class SlowFlow:
        name = "test flow"

        async def authenticate(self, http: httpx.AsyncClient) -> Token:
            nonlocal calls
            calls += 1
            await gate.wait()
            return Token(f"tok{calls}", "https://x", datetime(2026, 1, 5, tzinfo=UTC))

    async with httpx.AsyncClient() as http:
        session = Session(http, SlowFlow())
        gate.set()
        first = await session.token()
        gate.clear()
        waiting = [asyncio.create_task(session.refresh(first)) for _ in range(5)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*waiting)
    assert calls == 2
    assert {t.access_token for t in results} == {"tok2"}
    assert session.authentications == 2
    assert "tok2" not in repr(session)


async def test_refresh_token_rotation_is_kept_and_reported() -> None:
    seen: list[httpx.Request] = []
    rotated: list[str] = []
    flow = RefreshTokenFlow("ck", "cs-secret", "rt-secret", on_rotation=rotated.append)
    async with httpx.AsyncClient(transport=httpx.MockTransport(_token_endpoint(seen))) as http:
        await flow.authenticate(http)
        await flow.authenticate(http)
    assert rotated == ["rt-new"]
    assert [_form(r)["refresh_token"] for r in seen] == ["rt-secret", "rt-new"]
    assert "rt-new" not in repr(flow)


async def test_session_logs_without_secrets() -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(_token_endpoint(seen))) as http:
        session = Session(
            http, ClientCredentialsFlow("ck", "cs-secret", "https://acme.my.salesforce.com")
        )
        with structlog.testing.capture_logs() as logs:
            await session.token()
    assert logs == [
        {
            "event": "salesforce.authenticated",
            "log_level": "info",
            "flow": "client credentials flow",
            "instance_url": "https://acme.my.salesforce.com",
            "user_id": "005xx000001SvQeAAK",
        }
    ]
