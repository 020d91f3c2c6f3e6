"""Access tokens for the Partner Center APIs, through msal.

Three grants, one interface (`TokenProvider`: `await token()`, `invalidate()`):

- `RefreshTokenProvider`, the secure application model (spec §1.1): an admin consents once
  with MFA, and the long-lived refresh token is kept in a `RefreshTokenStore`. Each
  exchange may return a new refresh token; it replaces the stored one at once, so a crash
  never leaves us holding only a superseded token. App+User: the Referrals API's only mode.
- `ClientCredentialsProvider`, app-only, for the Webhooks API.
- `PasswordProvider`, the legacy resource-owner password grant, for tenants without MFA.

Audiences differ (spec §1.1): the Referrals API takes tokens for
`https://api.partner.microsoft.com`, the Webhooks API for `https://api.partnercenter.microsoft.com`;
a token for one is refused by the other. msal adds `openid profile offline_access` itself.

Refusals: when the sign-in itself is refused (the refresh token expired or was revoked,
`invalid_grant`; or the API answers 900421 for a token without MFA and the client calls
`refuse`), the provider raises `SignInRefusedError` ("Partner Center sign-in expired: run
cosell connect partner-center") and keeps raising it without calling Entra ID, letting one
probe through a minute, or at once when the stored refresh token changed (`cosell connect`
wrote a new one): `cosell.refusal.RefusalGate`. So a refused side costs at most one failing
call a minute, however many reconciles ask.

Caching: a token is reused until `refresh_margin` seconds before it expires, measured on the
injected clock (msal's own cache reads the wall clock, so it is emptied before each
acquisition and plays no part). Concurrent callers share one acquisition. `invalidate()`
drops the cached token, for the client to call on a 401.

msal is synchronous: every call runs in a worker thread (`anyio.to_thread`), including the
first one, which reads the authority's OpenID configuration.

Reaching the sandbox: msal accepts only https authorities, so tests give it a
`RoutingHttpClient`, which sends each request to the sandbox instead and names the host
msal meant in `X-Original-Host`. In production no http_client is given.

Secrets (client secret, password, refresh and access tokens) never appear in a repr, a log
line or an error message: errors are built from the token endpoint's error code and
description only.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import anyio.to_thread
import httpx
import msal
import structlog

from cosell.clock import Clock, SystemClock
from cosell.partnercenter.defaults import DEFAULT_AUTHORITY_HOST
from cosell.partnercenter.errors import (
    AuthConfigurationError,
    MfaRequiredError,
    PartnerCenterError,
    PartnerCenterTransportError,
    SignInRefusedError,
)
from cosell.refusal import RefusalGate
from cosell.tokenstore import FileTokenStore, TokenFileError

log = structlog.get_logger(__name__)

REFERRALS_SCOPE = "https://api.partner.microsoft.com/.default"
WEBHOOKS_SCOPE = "https://api.partnercenter.microsoft.com/.default"
# Entra access tokens live 60-90 minutes; renewing five minutes early leaves room for clock
# skew and for a long paging run that started with a nearly expired token.
DEFAULT_REFRESH_MARGIN = 300.0
# Entra answers in well under a second; 30 s rides out a slow network without hanging a worker.
_TOKEN_TIMEOUT = 30.0


class TokenProvider(Protocol):
    """Gives a bearer token for one API."""

    async def token(self) -> str:
        """A valid access token, from the cache when it is still fresh."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token (the API refused it)."""
        ...

    def refuse(self, error: PartnerCenterError) -> SignInRefusedError:
        """The API refused the sign-in itself (900421, 401 with a fresh token): stop calling.

        Returns:
            The error to raise for this call and, without calling, for the next ones.
        """
        ...


class RefreshTokenStore(Protocol):
    """Where the long-lived refresh token lives between runs."""

    def load(self) -> str | None:
        """The stored refresh token, or None when there is none."""
        ...

    def save(self, refresh_token: str) -> None:
        """Replace the stored refresh token."""
        ...


class InMemoryRefreshTokenStore:
    """A refresh token held in memory (tests, and runs that get the token from elsewhere)."""

    def __init__(self, refresh_token: str | None = None) -> None:
        self._token = refresh_token

    def load(self) -> str | None:
        """The refresh token, or None."""
        return self._token

    def save(self, refresh_token: str) -> None:
        """Replace the refresh token."""
        self._token = refresh_token

    def __repr__(self) -> str:
        return f"InMemoryRefreshTokenStore(set={self._token is not None})"


class FileRefreshTokenStore(FileTokenStore):
    """A refresh token in a file readable only by its owner (mode 0600), with its record.

    The file format, the atomic writes and the record (grant, MFA, when rotated and used)
    are `cosell.tokenstore.FileTokenStore`'s; a file that others can read is refused with an
    `AuthConfigurationError` rather than used.
    """

    def load(self) -> str | None:
        """The stored refresh token, or None when the file does not exist or is empty.

        Raises:
            AuthConfigurationError: the file is readable or writable by group or others.
        """
        try:
            return super().load()
        except TokenFileError as exc:
            raise AuthConfigurationError(str(exc)) from exc


class RoutedResponse:
    """An httpx response in the shape msal's http_client contract expects."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.text = response.text
        self.headers: Mapping[str, str] = response.headers

    def raise_for_status(self) -> None:
        """Raise for a 4xx/5xx status, as `requests` would."""
        self._response.raise_for_status()


class RoutingHttpClient:
    """An msal `http_client` that sends every request to another base URL (the sandbox).

    The scheme and host of each URL msal builds (`https://login.microsoftonline.com/...`) are
    replaced with `route_to`'s, any path prefix of `route_to` is put in front of the path,
    and the original host goes in `X-Original-Host`, from which the sandbox builds the URLs
    of its OpenID discovery documents. Only for tests and the sandbox.
    """

    def __init__(self, route_to: str, client: httpx.Client) -> None:
        parts = urlsplit(route_to)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"route_to must be an absolute http(s) URL, got {route_to!r}")
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._client = client

    def _route(self, url: str, headers: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
        parts = urlsplit(url)
        routed = urlunsplit(
            (self._scheme, self._netloc, self._prefix + parts.path, parts.query, "")
        )
        out = dict(headers or {})
        out["X-Original-Host"] = parts.netloc
        return routed, out

    def route_url(self, url: str) -> str:
        """`url` as it is sent: to the routed base URL (a browser opens the sandbox's page)."""
        return self._route(url, None)[0]

    def post(
        self,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> RoutedResponse:
        """POST as msal asks, to the routed URL."""
        routed, out = self._route(url, headers)
        if isinstance(data, str | bytes):  # a raw body (WS-Trust), not a form
            return RoutedResponse(
                self._client.post(routed, params=params, content=data, headers=out)
            )
        return RoutedResponse(self._client.post(routed, params=params, data=data, headers=out))

    def get(
        self,
        url: str,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> RoutedResponse:
        """GET as msal asks, from the routed URL."""
        routed, out = self._route(url, headers)
        return RoutedResponse(self._client.get(routed, params=params, headers=out))

    def close(self) -> None:
        """Nothing to close: the underlying client belongs to the caller."""


@dataclass(frozen=True)
class AppCredentials:
    """The app registration and the tenant to authenticate against.

    Attributes:
        tenant_id: the partner's Entra tenant (GUID or domain).
        client_id: the app registration's id.
        client_secret: the app's secret; None for a public client (refresh-token grant only).
        authority_host: the Entra host; the sovereign clouds use other hosts.
        http_client: an msal http_client (a `RoutingHttpClient` for the sandbox); None in production.
    """

    tenant_id: str
    client_id: str
    client_secret: str | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    http_client: Any = None

    def __repr__(self) -> str:
        secret = "set" if self.client_secret else "none"
        return (
            f"AppCredentials(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, "
            f"client_secret=<{secret}>, authority_host={self.authority_host!r})"
        )

    @property
    def authority(self) -> str:
        """The authority URL msal is given."""
        return f"https://{self.authority_host}/{self.tenant_id}"


_ADVICE = {
    "invalid_client": "the client id or client secret was rejected: check them in the app registration (secrets expire)",
    "unauthorized_client": "the app is not allowed to use this grant: check the app registration's platform and API permissions",
    "invalid_scope": "the scope was refused: check the app's API permissions for Partner Center",
    "consent_required": "an administrator must consent to the app's Partner Center permissions",
    "interaction_required": "the user must sign in interactively (MFA or conditional access): run the consent flow again",
    "invalid_request": "the token request was malformed: check the tenant id and the configured credentials",
}


class _MsalTokenProvider(ABC):
    """Cache, locking and error mapping shared by the three grants."""

    _grant = "token"
    # Token endpoint error codes that mean the sign-in itself is refused (so calls stop until
    # an admin signs in again), as opposed to settings to fix; only the refresh token has them.
    _refused_codes: frozenset[str] = frozenset()

    def __init__(
        self,
        credentials: AppCredentials,
        *,
        scopes: tuple[str, ...],
        clock: Clock | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self._credentials = credentials
        self._scopes = list(scopes)
        self._clock = clock or SystemClock()
        self._margin = refresh_margin
        self._app: Any = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._gate = RefusalGate(self._clock, fingerprint=self._fingerprint)
        self.acquisitions = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._credentials!r}, scopes={self._scopes!r})"

    async def token(self) -> str:
        """A valid access token; acquired when none is cached or it is about to expire.

        Raises:
            SignInRefusedError: the sign-in is refused (repeated without a call while it lasts,
                see `cosell.refusal`).
            AuthConfigurationError: the credentials were refused; the message says what to fix.
            PartnerCenterTransportError: the token endpoint could not be reached.
        """
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if self._fresh():
                assert self._token is not None
                return self._token
            self._gate.check()
            try:
                result = await anyio.to_thread.run_sync(self._acquire_blocking)
                token = self._accept(result)
            except AuthConfigurationError as exc:
                if exc.code in self._refused_codes:
                    raise self._refused(exc) from exc
                raise
            self._gate.clear()
            return token

    def invalidate(self) -> None:
        """Drop the cached access token."""
        self._token = None
        self._expires_at = 0.0

    def refuse(self, error: PartnerCenterError) -> SignInRefusedError:
        """The API refused the sign-in: drop the token and repeat the refusal (see `token`)."""
        self.invalidate()
        return self._refused(error)

    def _refused(self, error: PartnerCenterError) -> SignInRefusedError:
        if isinstance(error, SignInRefusedError):
            refusal = error
        else:
            if isinstance(error, MfaRequiredError):
                what = "sign-in has no MFA, which Partner Center requires (900421)"
            elif error.code == "no_refresh_token":
                what = "is not connected (no refresh token is stored)"
            else:
                what = "sign-in expired"
            refusal = SignInRefusedError(
                f"Partner Center {what}: run cosell connect partner-center",
                status=error.status,
                code=error.code,
            )
        # A warning when the sign-in starts being refused; a probe refused again is info.
        again = self._gate.refused is not None
        (log.info if again else log.warning)(
            "partnercenter.sign_in_refused", grant=self._grant, code=error.code
        )
        self._gate.refuse(refusal)
        return refusal

    def _fingerprint(self) -> object:
        """What identifies the credentials: a change lets a refused sign-in be tried at once."""
        return None

    def _fresh(self) -> bool:
        return self._token is not None and self._clock.monotonic() < self._expires_at

    def _accept(self, result: Mapping[str, Any]) -> str:
        if "access_token" not in result:
            raise self._error(result)
        token = str(result["access_token"])
        lifetime = _seconds(result.get("expires_in"))
        margin = min(self._margin, lifetime / 2)
        self._token = token
        self._expires_at = self._clock.monotonic() + lifetime - margin
        self.acquisitions += 1
        log.info("partnercenter.token_acquired", grant=self._grant, expires_in=lifetime)
        return token

    def _error(self, result: Mapping[str, Any]) -> AuthConfigurationError:
        code = str(result.get("error") or "unknown_error")
        description = str(result.get("error_description") or "").strip().splitlines()
        first = description[0] if description else "no description"
        advice = self._advice(code)
        return AuthConfigurationError(
            f"the {self._grant} was rejected ({code}: {first}): {advice}", code=code
        )

    def _advice(self, code: str) -> str:
        return _ADVICE.get(code, "check the tenant id, client id and secret")

    def _app_blocking(self) -> Any:
        if self._app is None:
            creds = self._credentials
            kwargs: dict[str, Any] = {
                "authority": creds.authority,
                "token_cache": msal.TokenCache(),
            }
            if creds.http_client is not None:
                kwargs["http_client"] = creds.http_client
                kwargs["instance_discovery"] = False
            else:
                kwargs["timeout"] = _TOKEN_TIMEOUT
            try:
                if creds.client_secret is not None:
                    self._app = msal.ConfidentialClientApplication(
                        creds.client_id, client_credential=creds.client_secret, **kwargs
                    )
                else:
                    self._app = msal.PublicClientApplication(creds.client_id, **kwargs)
            except ValueError as exc:
                raise AuthConfigurationError(
                    f"the authority {creds.authority} could not be used ({exc}): check the tenant id "
                    "and the authority host"
                ) from exc
        return self._app

    def _acquire_blocking(self) -> Mapping[str, Any]:
        try:
            app = self._app_blocking()
            cache = app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(item)
            result: Mapping[str, Any] = self._call(app)
        except (httpx.TransportError, OSError) as exc:  # msal's own `requests` errors are OSErrors
            raise PartnerCenterTransportError(
                f"the token endpoint at {self._credentials.authority_host} could not be reached "
                f"({type(exc).__name__}): check the network and try again"
            ) from exc
        return result

    @abstractmethod
    def _call(self, app: Any) -> Mapping[str, Any]:
        """Run this grant's msal call (in a worker thread)."""


class RefreshTokenProvider(_MsalTokenProvider):
    """App+User tokens from a stored refresh token (secure application model).

    When Entra returns a new refresh token, it replaces the stored one before the access
    token is handed out.
    """

    _grant = "refresh token"
    _refused_codes = frozenset({"invalid_grant", "interaction_required", "no_refresh_token"})

    def __init__(
        self,
        credentials: AppCredentials,
        store: RefreshTokenStore,
        *,
        scopes: tuple[str, ...] = (REFERRALS_SCOPE,),
        clock: Clock | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        super().__init__(credentials, scopes=scopes, clock=clock, refresh_margin=refresh_margin)
        self._store = store

    def _advice(self, code: str) -> str:
        if code == "invalid_grant":
            return (
                "the stored refresh token is expired, revoked or for another app: run "
                "`cosell connect partner-center` (an admin signs in with MFA) to store a new one"
            )
        return super()._advice(code)

    def _fingerprint(self) -> object:
        token = self._store.load()
        return None if token is None else hash(token)

    def _call(self, app: Any) -> Mapping[str, Any]:
        refresh_token = self._store.load()
        if not refresh_token:
            raise AuthConfigurationError(
                "no refresh token is stored: run `cosell connect partner-center` once to store one",
                code="no_refresh_token",
            )
        result: Mapping[str, Any] = app.acquire_token_by_refresh_token(refresh_token, self._scopes)
        new = result.get("refresh_token")
        if "access_token" in result and isinstance(new, str) and new and new != refresh_token:
            self._store.save(new)
            log.info("partnercenter.refresh_token_rotated", store=type(self._store).__name__)
        return result


class ClientCredentialsProvider(_MsalTokenProvider):
    """App-only tokens (client id + secret), for the Webhooks API."""

    _grant = "client credentials grant"

    def __init__(
        self,
        credentials: AppCredentials,
        *,
        scopes: tuple[str, ...] = (WEBHOOKS_SCOPE,),
        clock: Clock | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        if credentials.client_secret is None:
            raise ValueError("the client credentials grant needs a client secret")
        super().__init__(credentials, scopes=scopes, clock=clock, refresh_margin=refresh_margin)

    def _call(self, app: Any) -> Mapping[str, Any]:
        result: Mapping[str, Any] = app.acquire_token_for_client(self._scopes)
        return result


class PasswordProvider(_MsalTokenProvider):
    """App+User tokens from a username and password (legacy ROPC; fails where MFA is enforced)."""

    _grant = "username/password sign-in"

    def __init__(
        self,
        credentials: AppCredentials,
        username: str,
        password: str,
        *,
        scopes: tuple[str, ...] = (REFERRALS_SCOPE,),
        clock: Clock | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        if credentials.client_secret is None:
            raise ValueError("the password grant needs a client secret (a confidential app)")
        super().__init__(credentials, scopes=scopes, clock=clock, refresh_margin=refresh_margin)
        self._username = username
        self._password = password

    def __repr__(self) -> str:
        return f"PasswordProvider({self._credentials!r}, username={self._username!r})"

    def _advice(self, code: str) -> str:
        if code == "invalid_grant":
            return (
                "the username or password was refused, or the account requires MFA: check them, "
                "or switch to the refresh-token (secure application model) sign-in"
            )
        return super()._advice(code)

    def _call(self, app: Any) -> Mapping[str, Any]:
        result: Mapping[str, Any] = app.acquire_token_by_username_password(
            self._username, self._password, self._scopes
        )
        return result


def _seconds(value: object) -> float:
    try:
        seconds = float(str(value))
    except ValueError:
        return 0.0
    return seconds if seconds > 0 else 0.0
