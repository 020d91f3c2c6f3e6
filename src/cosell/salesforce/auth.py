"""Getting and renewing a Salesforce access token.

Each `AuthFlow` is one OAuth 2.0 grant against the token endpoint (spec §1.2), a form-encoded
POST that answers `{"access_token", "instance_url", "id", "issued_at", ...}` or, on failure,
400 `{"error", "error_description"}`:

- `JwtBearerFlow`: an RS256 assertion `{iss: consumer key, sub: username, aud: login URL,
  exp: now + 3 min}` signed with the private key whose certificate is on the connected app. No
  secret travels; the app must be pre-authorized for the user. The recommended server flow.
- `ClientCredentialsFlow`: consumer key and secret; runs as the connected app's run-as user.
  Needs the org's My Domain token URL (`https://<domain>.my.salesforce.com/...`).
- `RefreshTokenFlow`: a refresh token obtained once by an interactive authorization.
- `PasswordFlow`: the legacy username-password grant. Blocked by default in orgs created since
  Summer '23; use it only where an admin has allowed it.

When the token endpoint refuses the flow (400: an expired or revoked refresh token, a JWT the
app no longer accepts), the `Session` raises `SignInRefusedError` and repeats it without
calling, one probe a minute or at once when the token file changed (`cosell.refusal`);
`RefreshTokenFlow.token_source` rereads the token file, so `cosell connect salesforce` is
picked up by a running service.

Salesforce tokens carry no lifetime (`expires_in` is absent), so a `Session` keeps the current
token until a data call answers 401 `INVALID_SESSION_ID`, then asks the flow for a new one.
Invariants: concurrent callers that see the same stale token share one refresh (an
`asyncio.Lock` and a comparison with the token they used); the client refreshes at most once per
call, so a second 401 surfaces as `SessionExpiredError` instead of looping; secrets (consumer
secret, password, security token, refresh token, private key, access token) never appear in a
repr, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import jwt
import structlog
from pydantic import BaseModel, ConfigDict

from cosell.clock import Clock, SystemClock
from cosell.refusal import RefusalGate
from cosell.salesforce.defaults import LOGIN_URL
from cosell.salesforce.errors import (
    AuthenticationError,
    SignInRefusedError,
    TransportError,
    error_from_response,
)

log = structlog.get_logger(__name__)

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 (a path, not a secret)
JWT_LIFETIME = timedelta(minutes=3)  # Salesforce accepts assertions that expire within 3 min.
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class Token:
    """An access token and where to use it.

    Attributes:
        access_token: The bearer token (never shown in the repr).
        instance_url: Scheme and host every data call goes to.
        issued_at: When Salesforce issued it (or when we received it, if it does not say).
        id_url: The identity URL, `.../id/<orgId>/<userId>`, if returned.
        refresh_token: A refresh token, when the grant returns one (never shown).
    """

    access_token: str = field(repr=False)
    instance_url: str
    issued_at: datetime
    id_url: str | None = None
    refresh_token: str | None = field(default=None, repr=False)

    @property
    def org_id(self) -> str | None:
        """The org id from `id_url`, if known."""
        parts = (self.id_url or "").rstrip("/").split("/")
        return parts[-2] if len(parts) >= 2 and self.id_url else None

    @property
    def user_id(self) -> str | None:
        """The integration user's id from `id_url`, if known."""
        parts = (self.id_url or "").rstrip("/").split("/")
        return parts[-1] if self.id_url else None


class AuthFlow(Protocol):
    """One way to obtain an access token."""

    @property
    def name(self) -> str:
        """A short human name of the flow, used in error messages."""
        ...

    async def authenticate(self, http: httpx.AsyncClient) -> Token:
        """Ask the token endpoint for a new access token.

        Args:
            http: The client to send the request with.

        Returns:
            The token.

        Raises:
            AuthenticationError: When the credentials are refused.
            RetriableError: When the endpoint is unreachable or unavailable.
        """
        ...


class _TokenResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: str
    instance_url: str
    id: str | None = None
    issued_at: str | None = None
    refresh_token: str | None = None


def _hint(flow: str, error: str, description: str) -> str:
    text = description.lower()
    if "approved this consumer" in text:
        return (
            "the integration user hasn't approved this connected app: set its OAuth policy to "
            "'Admin approved users are pre-authorized' and add the user's profile or permission "
            "set to it"
        )
    if "inactive user" in text:
        return "the integration user is inactive: activate it or configure another user"
    if "expired" in text and "refresh" in flow:
        return (
            "the refresh token was revoked or expired (Salesforce keeps at most 5 per user and "
            "app): run `cosell connect salesforce` to store a new one"
        )
    if "not supported on this domain" in text or "my domain" in text:
        return "use the org's My Domain token URL, https://<domain>.my.salesforce.com"
    if error == "invalid_client_id":
        return (
            "the consumer key is not known to this org: check [salesforce] consumer_key (the "
            "connected app's Consumer Key) and login_url (production or sandbox)"
        )
    if error == "invalid_client":
        return (
            "the consumer secret was rejected: check [salesforce] consumer_secret (the "
            "connected app's Consumer Secret; it changes when someone regenerates it)"
        )
    if error == "unsupported_grant_type":
        return f"enable the {flow} on the connected app (or use another flow)"
    if error == "invalid_grant" and "password" in flow:
        return (
            "check the username, the password and the security token (appended to the "
            "password); the username-password flow is blocked by default in orgs created since "
            "Summer '23: allow it in OAuth and OpenID Connect Settings or use the JWT flow"
        )
    if error == "invalid_grant" and "JWT" in flow:
        return (
            "check the username, the login URL (audience: login, test or the community URL) "
            "and that the connected app's certificate matches the private key"
        )
    if error == "invalid_grant" and "client credentials" in flow:
        return "set a run-as user for the client credentials flow on the connected app"
    return "check the connected app and the integration user's credentials"


async def request_token(
    http: httpx.AsyncClient,
    token_url: str,
    form: dict[str, str],
    *,
    flow: str,
    clock: Clock,
    auth: tuple[str, str] | None = None,
) -> Token:
    """POST a grant to the token endpoint and read the token or the error.

    Args:
        http: The client to send with.
        token_url: The full token endpoint URL.
        form: The form fields of the grant.
        flow: The flow's name, for error messages.
        clock: Used when the response has no `issued_at`.
        auth: HTTP Basic credentials (client id, secret), if sent that way.

    Returns:
        The token.

    Raises:
        AuthenticationError: The endpoint refused the grant; the message says what to check.
        RetriableError: The endpoint was unreachable or answered 5xx.
    """
    headers = {"Accept": "application/json"}
    if auth is not None:
        pair = f"{auth[0]}:{auth[1]}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    try:
        response = await http.post(token_url, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise TransportError(
            f"{flow}: could not reach the token endpoint {_host(token_url)}: {type(exc).__name__}"
        ) from exc
    if response.status_code >= 500:
        raise error_from_response(response)
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
        description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
        what = f"{error}: {description}" if error else f"HTTP {response.status_code}"
        raise AuthenticationError(
            f"{flow}: the token endpoint {_host(token_url)} refused the request ({what})",
            status=response.status_code,
            error_code=error or None,
            hint=_hint(flow, error, description),
        )
    parsed = _TokenResponse.model_validate(body)
    issued_at = clock.now()
    if parsed.issued_at and parsed.issued_at.isdigit():
        issued_at = datetime.fromtimestamp(int(parsed.issued_at) / 1000, tz=UTC)
    return Token(
        access_token=parsed.access_token,
        instance_url=parsed.instance_url.rstrip("/"),
        issued_at=issued_at,
        id_url=parsed.id,
        refresh_token=parsed.refresh_token,
    )


def _host(url: str) -> str:
    return httpx.URL(url).host or url


def _token_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(TOKEN_PATH) else base + TOKEN_PATH


@dataclass(frozen=True)
class JwtBearerFlow:
    """OAuth 2.0 JWT bearer grant: an assertion signed with the connected app's private key.

    Args:
        consumer_key: The connected app's consumer key (the assertion's `iss`).
        username: The integration user (`sub`).
        private_key_pem: The PEM private key whose certificate is on the connected app.
        login_url: Where the token endpoint is (`https://login.salesforce.com`, or
            `https://test.salesforce.com` for sandboxes, or My Domain).
        audience: The assertion's `aud`; defaults to `login_url`.
        clock: Time source for `exp`.
    """

    consumer_key: str
    username: str
    private_key_pem: str | bytes = field(repr=False)
    login_url: str = LOGIN_URL
    audience: str | None = None
    clock: Clock = field(default_factory=SystemClock, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The flow's name."""
        return "JWT bearer flow"

    def assertion(self) -> str:
        """The signed assertion (RS256) for the current time.

        Raises:
            AuthenticationError: When the private key cannot be read.
        """
        claims = {
            "iss": self.consumer_key,
            "sub": self.username,
            "aud": (self.audience or self.login_url).rstrip("/"),
            "exp": int((self.clock.now() + JWT_LIFETIME).timestamp()),
        }
        try:
            return jwt.encode(claims, self.private_key_pem, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthenticationError(
                f"{self.name}: the private key could not be used to sign ({type(exc).__name__})",
                hint="give the PEM-encoded RSA private key that matches the connected app's "
                "certificate",
            ) from exc

    async def authenticate(self, http: httpx.AsyncClient) -> Token:
        """Exchange a fresh assertion for an access token."""
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()}
        return await request_token(
            http, _token_url(self.login_url), form, flow=self.name, clock=self.clock
        )


@dataclass(frozen=True)
class ClientCredentialsFlow:
    """OAuth 2.0 client credentials grant; runs as the connected app's run-as user.

    Args:
        consumer_key: The connected app's consumer key.
        consumer_secret: Its secret (never shown in the repr).
        token_url: The My Domain URL or token endpoint, e.g. `https://acme.my.salesforce.com`.
        use_basic_auth: Send the key and secret as HTTP Basic (else in the form body).
        clock: Time source for `issued_at` when absent.
    """

    consumer_key: str
    consumer_secret: str = field(repr=False)
    token_url: str
    use_basic_auth: bool = True
    clock: Clock = field(default_factory=SystemClock, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The flow's name."""
        return "client credentials flow"

    async def authenticate(self, http: httpx.AsyncClient) -> Token:
        """Exchange the key and secret for an access token."""
        form = {"grant_type": "client_credentials"}
        auth = None
        if self.use_basic_auth:
            auth = (self.consumer_key, self.consumer_secret)
        else:
            form |= {"client_id": self.consumer_key, "client_secret": self.consumer_secret}
        return await request_token(
            http, _token_url(self.token_url), form, flow=self.name, clock=self.clock, auth=auth
        )


@dataclass
class RefreshTokenFlow:
    """OAuth 2.0 refresh token grant.

    When the connected app rotates refresh tokens, a grant answers a new one and the old one
    stops working: the flow then keeps the new one and hands it to `on_rotation`, so the caller
    can store it (a restart with the old token would fail).

    Args:
        consumer_key: The connected app's consumer key.
        consumer_secret: Its secret (never shown).
        refresh_token: The refresh token from an earlier authorization (never shown).
        token_url: The login or My Domain URL, or the token endpoint itself.
        clock: Time source for `issued_at` when absent.
        on_rotation: Called with the new refresh token when Salesforce rotates it.
        token_source: Read before each grant (the token file): a token stored meanwhile by
            `cosell connect salesforce` is used without a restart.
    """

    consumer_key: str
    consumer_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_url: str = LOGIN_URL
    clock: Clock = field(default_factory=SystemClock, repr=False, compare=False)
    on_rotation: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    token_source: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The flow's name."""
        return "refresh token flow"

    async def authenticate(self, http: httpx.AsyncClient) -> Token:
        """Exchange the refresh token for an access token (keeping a rotated refresh token)."""
        stored = self.token_source() if self.token_source is not None else None
        if stored:
            self.refresh_token = stored
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token,
            "client_id": self.consumer_key,
            "client_secret": self.consumer_secret,
        }
        token = await request_token(
            http, _token_url(self.token_url), form, flow=self.name, clock=self.clock
        )
        if token.refresh_token and token.refresh_token != self.refresh_token:
            self.refresh_token = token.refresh_token
            if self.on_rotation is not None:
                self.on_rotation(token.refresh_token)
        return token


@dataclass(frozen=True)
class PasswordFlow:
    """The legacy OAuth 2.0 username-password grant.

    Blocked by default in orgs created since Summer '23 (an admin must allow it in OAuth and
    OpenID Connect Settings); prefer `JwtBearerFlow` or `ClientCredentialsFlow`.

    Args:
        consumer_key: The connected app's consumer key.
        consumer_secret: Its secret (never shown).
        username: The integration user.
        password: The user's password (never shown).
        security_token: The user's security token, appended to the password (never shown).
        token_url: The login or My Domain URL, or the token endpoint itself.
        clock: Time source for `issued_at` when absent.
    """

    consumer_key: str
    consumer_secret: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    security_token: str = field(default="", repr=False)
    token_url: str = LOGIN_URL
    clock: Clock = field(default_factory=SystemClock, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The flow's name."""
        return "username-password flow"

    async def authenticate(self, http: httpx.AsyncClient) -> Token:
        """Exchange the user's credentials for an access token."""
        form = {
            "grant_type": "password",
            "client_id": self.consumer_key,
            "client_secret": self.consumer_secret,
            "username": self.username,
            "password": self.password + self.security_token,
        }
        return await request_token(
            http, _token_url(self.token_url), form, flow=self.name, clock=self.clock
        )


@dataclass
class StaticTokenFlow:
    """An access token obtained elsewhere (e.g. `sf org display`), used until it expires.

    It cannot be renewed: once Salesforce rejects it, the client raises `AuthenticationError`
    asking for credentials of a flow that can.

    Args:
        access_token: The session id / access token (never shown).
        instance_url: The org's instance URL.
        clock: Time source for `issued_at`.
    """

    access_token: str = field(repr=False)
    instance_url: str
    clock: Clock = field(default_factory=SystemClock, repr=False, compare=False)
    _handed_out: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The flow's name."""
        return "static access token"

    async def authenticate(self, http: httpx.AsyncClient) -> Token:
        """The token, the first time; an error once it has been rejected."""
        if self._handed_out:
            raise AuthenticationError(
                f"{self.name}: Salesforce rejected the access token and it cannot be renewed",
                hint="configure the JWT bearer, client credentials or refresh token flow instead",
            )
        self._handed_out = True
        return Token(self.access_token, self.instance_url.rstrip("/"), self.clock.now())


class Session:
    """The current token of one `AuthFlow`, obtained lazily and renewed on demand.

    `token()` returns the current token, authenticating first if there is none. `refresh(stale)`
    replaces `stale` with a new token; when several callers got 401 with the same stale token,
    the first one authenticates and the others receive its result.
    """

    def __init__(
        self, http: httpx.AsyncClient, flow: AuthFlow, *, clock: Clock | None = None
    ) -> None:
        self._http = http
        self._flow = flow
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        source: Callable[[], str | None] | None = getattr(flow, "token_source", None)
        self._gate = RefusalGate(
            clock or getattr(flow, "clock", None) or SystemClock(),
            fingerprint=None if source is None else (lambda: hash(source())),
        )
        self.authentications = 0
        """How many times this session asked the token endpoint (for tests and metrics)."""

    @property
    def flow(self) -> AuthFlow:
        """The flow this session authenticates with."""
        return self._flow

    @property
    def current(self) -> Token | None:
        """The token in use, if any (without authenticating)."""
        return self._token

    async def token(self) -> Token:
        """The current token, authenticating first if there is none."""
        token = self._token
        if token is not None:
            return token
        async with self._lock:
            if self._token is None:
                self._token = await self._authenticate()
            return self._token

    async def refresh(self, stale: Token | None) -> Token:
        """A token other than `stale`, authenticating only if no one else has already.

        Args:
            stale: The token a data call was refused with.

        Returns:
            The new current token.
        """
        async with self._lock:
            if self._token is None or self._token is stale:
                self._token = await self._authenticate()
            return self._token

    def invalidate(self) -> None:
        """Forget the current token; the next call authenticates again."""
        self._token = None

    async def _authenticate(self) -> Token:
        self._gate.check()
        self.authentications += 1
        try:
            token = await self._flow.authenticate(self._http)
        except AuthenticationError as exc:
            if exc.status is None or not 400 <= exc.status < 500:
                raise
            refusal = SignInRefusedError(self._refusal_text(exc))
            # A warning when the sign-in starts being refused; a probe refused again is info.
            again = self._gate.refused is not None
            (log.info if again else log.warning)(
                "salesforce.sign_in_refused", flow=self._flow.name, code=exc.error_code
            )
            self._gate.refuse(refusal)
            raise refusal from exc
        self._gate.clear()
        log.info(
            "salesforce.authenticated",
            flow=self._flow.name,
            instance_url=token.instance_url,
            user_id=token.user_id,
        )
        return token

    def _refusal_text(self, exc: AuthenticationError) -> str:
        if "refresh" in self._flow.name and exc.error_code == "invalid_grant":
            return "Salesforce sign-in expired: run cosell connect salesforce"
        return f"Salesforce refused cosell's sign-in: {exc}"

    def __repr__(self) -> str:
        return f"Session(flow={self._flow!r}, token={self._token!r})"
