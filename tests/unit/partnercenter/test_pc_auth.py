import os
import stat
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs

import httpx
import pytest
from structlog.testing import capture_logs

from cosell.clock import ManualClock
from cosell.partnercenter.auth import (
    REFERRALS_SCOPE,
    WEBHOOKS_SCOPE,
    AppCredentials,
    ClientCredentialsProvider,
    FileRefreshTokenStore,
    InMemoryRefreshTokenStore,
    PasswordProvider,
    RefreshTokenProvider,
    RoutingHttpClient,
)
from cosell.partnercenter.errors import (
    AuthConfigurationError,
    PartnerCenterTransportError,
    SignInRefusedError,
)

TENANT = "contoso.onmicrosoft.example"
SECRET = "s3cr3t-client-value"


class FakeEntra:
    """Just enough of Entra ID for msal: discovery, user realm, the v2 token endpoint."""

    def __init__(self, lifetime: int = 3600) -> None:
        self.lifetime = lifetime
        self.token_requests: list[dict[str, str]] = []
        self.requests: list[httpx.Request] = []
        self.issued = 0
        self.rotate = True
        self.fail: dict[str, str] | None = None
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("no route")
        host = request.headers["x-original-host"]
        path = request.url.path.removeprefix("/entra")
        if path.endswith("/.well-known/openid-configuration"):
            base = f"https://{host}/{TENANT}"
            return httpx.Response(
                200,
                json={
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "issuer": f"{base}/v2.0",
                },
            )
        if path.startswith("/common/userrealm/"):
            return httpx.Response(200, json={"ver": "1.0", "account_type": "Managed"})
        if path.endswith("/oauth2/v2.0/token"):
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.token_requests.append(form)
            if self.fail:
                return httpx.Response(400, json=self.fail)
            self.issued += 1
            body = {
                "token_type": "Bearer",
                "access_token": f"at-{self.issued}",
                "expires_in": self.lifetime,
                "scope": form.get("scope", ""),
            }
            if form["grant_type"] != "client_credentials" and self.rotate:
                body["refresh_token"] = f"rt-{self.issued}"
            return httpx.Response(200, json=body)
        return httpx.Response(404)


def credentials(entra: FakeEntra, secret: str | None = SECRET) -> AppCredentials:
    http = httpx.Client(transport=httpx.MockTransport(entra))
    return AppCredentials(
        tenant_id=TENANT,
        client_id="11111111-2222-3333-4444-555555555555",
        client_secret=secret,
        http_client=RoutingHttpClient("http://sandbox.local/entra", http),
    )


async def test_refresh_token_grant_rotates_the_stored_token_and_caches_on_the_clock() -> None:
    entra = FakeEntra(lifetime=3600)
    store = InMemoryRefreshTokenStore("rt-initial")
    clock = ManualClock()
    provider = RefreshTokenProvider(credentials(entra), store, clock=clock)
    assert await provider.token() == "at-1"
    assert store.load() == "rt-1"  # replaced by the new one
    first = entra.token_requests[0]
    assert first["grant_type"] == "refresh_token"
    assert first["refresh_token"] == "rt-initial"
    assert REFERRALS_SCOPE in first["scope"].split()
    assert "offline_access" in first["scope"].split()
    assert first["client_secret"] == SECRET

    clock.advance(3600 - 300 - 1)  # still fresh: 5 minutes of margin
    assert await provider.token() == "at-1"
    assert len(entra.token_requests) == 1
    clock.advance(2)
    assert await provider.token() == "at-2"
    assert entra.token_requests[1]["refresh_token"] == "rt-1"  # the rotated token is used
    assert store.load() == "rt-2"


async def test_refresh_token_kept_when_none_is_returned() -> None:
    entra = FakeEntra()
    entra.rotate = False
    store = InMemoryRefreshTokenStore("rt-initial")
    provider = RefreshTokenProvider(credentials(entra), store, clock=ManualClock())
    await provider.token()
    assert store.load() == "rt-initial"


async def test_invalidate_forces_a_new_token() -> None:
    entra = FakeEntra()
    provider = RefreshTokenProvider(
        credentials(entra), InMemoryRefreshTokenStore("rt"), clock=ManualClock()
    )
    assert await provider.token() == "at-1"
    provider.invalidate()
    assert await provider.token() == "at-2"


async def test_short_lifetimes_use_half_the_lifetime_as_margin() -> None:
    entra = FakeEntra(lifetime=60)
    clock = ManualClock()
    provider = RefreshTokenProvider(
        credentials(entra), InMemoryRefreshTokenStore("rt"), clock=clock
    )
    await provider.token()
    clock.advance(29)
    assert await provider.token() == "at-1"
    clock.advance(2)
    assert await provider.token() == "at-2"


async def test_rejected_refresh_token_says_to_consent_again_without_leaking_it() -> None:
    entra = FakeEntra()
    entra.fail = {
        "error": "invalid_grant",
        "error_description": "AADSTS70008: The refresh token has expired.\r\nTrace ID: x",
    }
    provider = RefreshTokenProvider(
        credentials(entra), InMemoryRefreshTokenStore("rt-very-secret"), clock=ManualClock()
    )
    with pytest.raises(SignInRefusedError) as caught:
        await provider.token()
    assert str(caught.value) == "Partner Center sign-in expired: run cosell connect partner-center"
    message = str(caught.value.__cause__)
    assert "invalid_grant" in message
    assert "cosell connect partner-center" in message
    assert "AADSTS70008" in message
    assert "rt-very-secret" not in message
    assert SECRET not in message
    assert "Trace ID" not in message


async def test_missing_refresh_token_is_a_configuration_error() -> None:
    provider = RefreshTokenProvider(
        credentials(FakeEntra()), InMemoryRefreshTokenStore(None), clock=ManualClock()
    )
    with pytest.raises(
        AuthConfigurationError, match=r"not connected.*cosell connect partner-center"
    ):
        await provider.token()


async def test_a_refused_sign_in_is_repeated_without_calling_and_probed_once_a_minute() -> None:
    entra = FakeEntra()
    entra.fail = {"error": "invalid_grant", "error_description": "AADSTS50173: revoked."}
    clock = ManualClock()
    store = InMemoryRefreshTokenStore("rt-revoked")
    provider = RefreshTokenProvider(credentials(entra), store, clock=clock)
    for _ in range(50):  # a burst of reconciles
        with pytest.raises(SignInRefusedError, match="sign-in expired"):
            await provider.token()
    assert len(entra.token_requests) == 1

    clock.advance(59)
    with pytest.raises(SignInRefusedError):
        await provider.token()
    assert len(entra.token_requests) == 1
    clock.advance(1)  # a minute on: one probe, still refused
    for _ in range(5):
        with pytest.raises(SignInRefusedError):
            await provider.token()
    # The probe reaches msal, which may answer it from its own throttle cache (it repeats an
    # invalid_grant for the same refresh token for a while, on the wall clock).
    assert len(entra.token_requests) in (1, 2)

    # An admin runs cosell connect: the new token is tried at once, and works.
    entra.fail = None
    store.save("rt-new")
    assert await provider.token() == "at-1"
    assert entra.token_requests[-1]["refresh_token"] == "rt-new"


async def test_client_credentials_for_the_webhooks_api_cached_on_our_clock() -> None:
    entra = FakeEntra(lifetime=3600)
    clock = ManualClock()
    provider = ClientCredentialsProvider(credentials(entra), clock=clock)
    assert await provider.token() == "at-1"
    assert await provider.token() == "at-1"
    form = entra.token_requests[0]
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == WEBHOOKS_SCOPE
    clock.advance(3600)
    # msal's own cache (wall clock) would still hand out at-1; ours has expired it.
    assert await provider.token() == "at-2"
    assert len(entra.token_requests) == 2


async def test_client_credentials_rejected_secret() -> None:
    entra = FakeEntra()
    entra.fail = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.",
    }
    provider = ClientCredentialsProvider(credentials(entra), clock=ManualClock())
    with pytest.raises(
        AuthConfigurationError, match="client id or client secret was rejected"
    ) as caught:
        await provider.token()
    assert SECRET not in str(caught.value)


def test_client_credentials_and_password_need_a_secret() -> None:
    with pytest.raises(ValueError, match="client secret"):
        ClientCredentialsProvider(credentials(FakeEntra(), secret=None))
    with pytest.raises(ValueError, match="client secret"):
        PasswordProvider(credentials(FakeEntra(), secret=None), "u", "p")


async def test_password_grant() -> None:
    entra = FakeEntra()
    provider = PasswordProvider(
        credentials(entra), "admin@contoso.example", "hunter2-pw", clock=ManualClock()
    )
    assert await provider.token() == "at-1"
    form = entra.token_requests[0]
    assert form["grant_type"] == "password"
    assert form["username"] == "admin@contoso.example"
    assert form["password"] == "hunter2-pw"
    assert REFERRALS_SCOPE in form["scope"].split()
    assert "hunter2-pw" not in repr(provider)


async def test_password_rejected_mentions_mfa() -> None:
    entra = FakeEntra()
    entra.fail = {"error": "invalid_grant", "error_description": "AADSTS50076: MFA required"}
    provider = PasswordProvider(
        credentials(entra), "admin@contoso.example", "hunter2-pw", clock=ManualClock()
    )
    with pytest.raises(AuthConfigurationError, match="MFA") as caught:
        await provider.token()
    assert "hunter2-pw" not in str(caught.value)


async def test_unreachable_token_endpoint_is_retriable() -> None:
    entra = FakeEntra()
    entra.down = True
    provider = ClientCredentialsProvider(credentials(entra), clock=ManualClock())
    with pytest.raises(PartnerCenterTransportError, match="could not be reached"):
        await provider.token()


def test_routing_http_client_rewrites_host_and_names_the_original() -> None:
    entra = FakeEntra()
    routing = RoutingHttpClient(
        "http://sandbox.local/entra", httpx.Client(transport=httpx.MockTransport(entra))
    )
    response = routing.get(
        f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    assert response.status_code == 200
    request = entra.requests[0]
    assert (
        str(request.url)
        == f"http://sandbox.local/entra/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    assert request.headers["x-original-host"] == "login.microsoftonline.com"
    assert response.headers["content-type"] == "application/json"
    raw = routing.post(
        "https://login.microsoftonline.com/raw",
        data="<soap/>",
        headers={"Content-Type": "text/xml"},
    )
    assert raw.status_code == 404
    assert entra.requests[-1].content == b"<soap/>"
    missing = routing.get("https://login.microsoftonline.com/nothing")
    with pytest.raises(httpx.HTTPStatusError):
        missing.raise_for_status()
    with pytest.raises(ValueError, match="absolute"):
        RoutingHttpClient("sandbox.local", httpx.Client())


def test_reprs_hide_secrets() -> None:
    creds = credentials(FakeEntra())
    assert SECRET not in repr(creds)
    assert "rt-secret" not in repr(InMemoryRefreshTokenStore("rt-secret"))
    provider = RefreshTokenProvider(creds, InMemoryRefreshTokenStore("rt-secret"))
    assert SECRET not in repr(provider)
    assert "rt-secret" not in repr(provider)


def test_file_store_writes_0600_atomically_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "state" / "refresh-token"
    store = FileRefreshTokenStore(path)
    assert store.load() is None
    store.save("rt-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.load() == "rt-1"
    store.save("rt-2")
    assert store.load() == "rt-2"
    assert sorted(p.name for p in path.parent.iterdir()) == ["refresh-token"]  # no temp files left


def test_file_store_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "refresh-token"
    path.write_text("rt-1")
    os.chmod(path, 0o644)
    with pytest.raises(AuthConfigurationError, match="chmod 600"):
        FileRefreshTokenStore(path).load()


async def test_file_store_with_the_provider(tmp_path: Path) -> None:
    path = tmp_path / "refresh-token"
    store = FileRefreshTokenStore(path)
    store.save("rt-initial")
    provider = RefreshTokenProvider(credentials(FakeEntra()), store, clock=ManualClock())
    await provider.token()
    assert store.load() == "rt-1"
    assert store.record().rotated_at is not None


async def test_logs_name_events_but_never_secrets() -> None:
    entra = FakeEntra()
    with capture_logs() as logs:
        provider = RefreshTokenProvider(
            credentials(entra), InMemoryRefreshTokenStore("rt-initial"), clock=ManualClock()
        )
        token = await provider.token()
    events = [entry["event"] for entry in logs]
    assert "partnercenter.token_acquired" in events
    assert "partnercenter.refresh_token_rotated" in events
    text = repr(logs)
    for secret in (token, "rt-initial", "rt-1", SECRET):
        assert secret not in text


class _RecordingApp:
    """Stands in for msal's application to see how production constructs it."""

    made: ClassVar[list[dict[str, object]]] = []

    def __init__(self, client_id: str, **kwargs: object) -> None:
        self.made.append({"client_id": client_id, **kwargs})
        self.token_cache = kwargs["token_cache"]

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, object]:
        raise ConnectionError("requests could not connect")  # requests' errors are OSErrors


async def test_production_msal_has_a_timeout_and_network_errors_are_retriable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import msal

    monkeypatch.setattr(msal, "ConfidentialClientApplication", _RecordingApp)
    creds = AppCredentials(tenant_id=TENANT, client_id="app", client_secret=SECRET)
    provider = ClientCredentialsProvider(creds, clock=ManualClock())
    with pytest.raises(PartnerCenterTransportError, match="could not be reached"):
        await provider.token()
    made = _RecordingApp.made[-1]
    assert made["authority"] == f"https://login.microsoftonline.com/{TENANT}"
    assert made["timeout"] == 30.0
    assert "http_client" not in made
    assert "instance_discovery" not in made
