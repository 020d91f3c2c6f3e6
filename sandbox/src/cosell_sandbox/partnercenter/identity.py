"""The sandbox's Microsoft Entra ID: token endpoints, OpenID discovery, and token checks.

Partner Center is reached with Entra ID access tokens (spec §1.1). This module plays Entra ID
for one sandbox tenant with one confidential client application and one Referrals admin user:

- Token endpoints, v1 `POST /{tenant}/oauth2/token` (`resource=`) and v2
  `POST /{tenant}/oauth2/v2.0/token` (`scope=<resource>/.default` or `/user_impersonation`,
  with `openid profile offline_access` tolerated), for three grants: `refresh_token` (the secure
  application model), `client_credentials` (app-only) and `password` (legacy ROPC). Responses
  and errors have Entra's shapes (`expires_in` is a string on v1 and an int on v2; errors carry
  `AADSTS` codes, `trace_id`, `correlation_id`). The tenant in the path is the sandbox tenant
  (by id or domain), or `common` / `organizations` for the user grants.
- OpenID discovery documents (v1 and v2), the JWKS, and the user-realm lookup msal makes before
  a password grant. msal only accepts an https authority, so a cosell client points msal at
  `https://login.microsoftonline.com/{tenant}` and routes its requests here, adding the header
  `X-Original-Host: login.microsoftonline.com`; discovery documents then name URLs on that host
  (msal requires the token endpoint it reads to be https). Without the header they name the
  sandbox's own base URL.
- Interactive sign-ins (`signins.py`): the v2 device code endpoint and the authorize endpoint
  (authorization code with PKCE, loopback redirect), with the control API playing the user
  (`/control/identity/sign-ins/...`: approve with or without MFA, deny, expire). The
  `device_code` and `authorization_code` grants redeem them at the token endpoints.
- OpenID Connect sign-in of a web app (the cosell console): `scope=openid profile email`
  with no resource is accepted (the access token is then for Microsoft Graph, as Entra does);
  the ID token carries the user's app roles (`roles`, set by `PUT /control/identity/user`
  `{"app_roles": [...]}`). The authorize page offers the user's part to a browser as well:
  buttons that approve the sign-in (as the tenant's user, or as a user of another tenant, whose
  ID token names that tenant) and send the browser on to the redirect URI.
- `Identity.authenticate` checks a request's bearer token on every call: RS256 signature with
  the sandbox signing key, issuer, `nbf`/`exp` on the injected clock, revocation, audience, and
  (for the Referrals API, App+User only) that a user is present. A user token whose `amr`
  lacks `mfa` is refused with 401 and code `900421` on either API (spec §9).
- The control API can take the user's Referrals role away (`PUT /control/identity/user`
  `{"referrals_role": "none"}`: the Referrals API answers 403 `accessDenied`) and the app's
  delegated permission (`PUT /control/identity/app` `{"delegated_permission": false}`: user
  grants fail with `invalid_grant` AADSTS65001, as when no admin consented).

Assumptions (spec §9 gives the code, not the body): the 900421 refusal has Partner Center's
error shape, `{"error": {"code": "900421", "message": "AADSTS900421: ...", "target":
"authorization"}}`, with `WWW-Authenticate: Bearer error="invalid_token"`. The password grant
issues tokens with `amr: ["pwd"]` (no interactive second factor); the initial refresh token
(`info()["refresh_token"]`, as after the secure application model's consent) and everything
it yields carry `amr: ["pwd", "mfa"]`; a refresh token keeps the MFA state of the sign-in
that started its chain. Sign-ins in progress are not persisted by `snapshot`.

Invariants:
- Access tokens are v1-format JWTs (`iss https://sts.windows.net/{tenant}/`) whatever endpoint
  issued them, with `aud` the canonical resource URL; user tokens carry `upn` and
  `scp=user_impersonation`, app-only tokens carry neither (`idtyp=app`).
- Refresh tokens rotate: every use issues a new one; the used one stays valid until its own
  expiry (90 days after issue, Entra's default inactivity lifetime, on the sandbox clock), or
  until `POST /control/identity/revoke-refresh-tokens` revokes every one (as a password reset
  does).
- Credentials (tenant id, client id, secret, user, password, the initial refresh token) are drawn
  from the seeded `rng`, so a seed reproduces them; the RSA signing key comes from the OS and is
  kept across restarts by `snapshot`/`restore`.
- Token handlers run on whatever thread the server gives them (msal calls from its own thread),
  so shared state is guarded by a `threading.Lock`, never by asyncio primitives.
"""

from __future__ import annotations

import base64
import hmac
import json
import random
import re
import string
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from html import escape as html_escape
from typing import Any, Literal
from urllib.parse import parse_qsl, quote

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cosell.clock import Clock
from cosell_sandbox.partnercenter.errors import PartnerCenterSandboxError
from cosell_sandbox.signins import (
    DEVICE_CODE_GRANT,
    DEVICE_CODE_INTERVAL,
    DEVICE_CODE_LIFETIME,
    SignIn,
    SignInControlError,
    SignIns,
    TokenEndpointError,
    is_loopback_redirect,
)

REFERRALS_AUDIENCE = "https://api.partner.microsoft.com"
GRAPH_AUDIENCE = "https://graph.microsoft.com"  # what Entra issues for `openid profile` alone
OTHER_TENANT_ID = "72f988bf-0000-4000-8000-0000000000aa"  # a stranger's tenant, for refusals
WEBHOOKS_AUDIENCE = "https://api.partnercenter.microsoft.com"
KNOWN_AUDIENCES = (REFERRALS_AUDIENCE, WEBHOOKS_AUDIENCE)

TENANT_DOMAIN = "contoso-partner.onmicrosoft.com"
ADMIN_USER = f"admin@{TENANT_DOMAIN}"
ADMIN_DISPLAY_NAME = "Referrals Admin"

# Entra's default: a refresh token unused for 90 days expires.
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
# The error code Partner Center answers (HTTP 401) for an App+User token issued without MFA.
MFA_REQUIRED_CODE = "900421"
# Entra's v2 scope suffixes a client may ask for; `.default` means "everything consented".
_RESOURCE_SCOPE_SUFFIXES = ("/.default", "/user_impersonation")
# Scopes of OpenID Connect that ride along with a resource scope and grant nothing on it.
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_USER_TENANT_ALIASES = frozenset({"common", "organizations"})
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")
_SECRET_ALPHABET = string.ascii_letters + string.digits + "_.~-"
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


@dataclass(frozen=True)
class Principal:
    """Who a verified access token speaks for.

    Attributes:
        tenant_id: the token's tenant (`tid`).
        client_id: the application that acquired it (`appid`).
        user: the user principal name, or None for an app-only token.
        audience: the resource the token is for (`aud`).
    """

    tenant_id: str
    client_id: str
    user: str | None
    audience: str


@dataclass(frozen=True)
class _User:
    upn: str
    password: str
    object_id: str
    display_name: str


@dataclass(frozen=True)
class _RefreshGrant:
    user_upn: str
    client_id: str
    audience: str
    expires_at: datetime
    revoked: bool = False
    mfa: bool = True


_TokenError = TokenEndpointError
_GRANTS = (
    "refresh_token",
    "client_credentials",
    "password",
    "authorization_code",
    DEVICE_CODE_GRANT,
)


def _missing(name: str) -> _TokenError:
    return _TokenError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _canonical_audience(value: str) -> str | None:
    trimmed = value.strip().rstrip("/")
    for audience in KNOWN_AUDIENCES:
        if trimmed.lower() == audience:
            return audience
    return None


class Identity:
    """The sandbox tenant's Entra ID: issues and checks tokens.

    Args:
        clock: the sandbox clock; token lifetimes and expiry read it.
        base_url: the sandbox's base URL, e.g. `http://127.0.0.1:8610`.
        rng: seeded randomness for credentials and token ids.
        token_lifetime_seconds: lifetime of issued access tokens.
        signing_key: the RSA key that signs tokens; generated when omitted.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        base_url: str,
        rng: random.Random,
        token_lifetime_seconds: float = 3600.0,
        signing_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        if token_lifetime_seconds <= 0:
            raise ValueError("token_lifetime_seconds must be positive")
        self._clock = clock
        self._base_url = base_url.rstrip("/")
        self._rng = rng
        self._lock = threading.Lock()
        self._token_lifetime = token_lifetime_seconds
        self.tenant_id = self._guid()
        self.client_id = self._guid()
        self._app_object_id = self._guid()
        self.client_secret = (
            self._random_text(3, string.ascii_letters + string.digits)
            + "8Q~"
            + self._random_text(34, _SECRET_ALPHABET)
        )
        self._user = _User(
            upn=ADMIN_USER,
            password=self._random_text(12, string.ascii_letters + string.digits) + "!7a",
            object_id=self._guid(),
            display_name=ADMIN_DISPLAY_NAME,
        )
        self._use_signing_key(
            signing_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        self._refresh_grants: dict[str, _RefreshGrant] = {}
        self.sign_ins = SignIns(clock, rng)
        # What the control API can take away: the user's Referrals role, the app's permission.
        self.referrals_role: Literal["admin", "none"] = "admin"
        self.delegated_permission = True
        # The user's app roles on the signing-in app (the `roles` claim of its ID tokens).
        self.app_roles: tuple[str, ...] = ()
        # Live access tokens by `uti`, with their expiry, so "revoke all" can name them.
        self._issued: dict[str, int] = {}
        self._revoked: dict[str, int] = {}
        self.refresh_token = self._new_refresh_token(self._user.upn, REFERRALS_AUDIENCE)
        self.router = self._build_router()

    # -- public API ---------------------------------------------------------------------------

    @property
    def token_lifetime_seconds(self) -> float:
        """Lifetime of access tokens issued from now on."""
        return self._token_lifetime

    def info(self) -> dict[str, str]:
        """The working credentials and URLs a client needs."""
        base = self._base_url
        tenant = self.tenant_id
        return {
            "tenant_id": tenant,
            "tenant_domain": TENANT_DOMAIN,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "username": self._user.upn,
            "password": self._user.password,
            "refresh_token": self.refresh_token,
            "authority": f"{base}/{tenant}",
            "token_endpoint_v1": f"{base}/{tenant}/oauth2/token",
            "token_endpoint_v2": f"{base}/{tenant}/oauth2/v2.0/token",
            "openid_configuration": f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
            "referrals_audience": REFERRALS_AUDIENCE,
            "webhooks_audience": WEBHOOKS_AUDIENCE,
        }

    def authenticate(self, request: Request, *, audience: str, user_required: bool) -> Principal:
        """Check the request's bearer token for `audience`.

        Args:
            request: the incoming request.
            audience: the resource the called API is (`REFERRALS_AUDIENCE`, `WEBHOOKS_AUDIENCE`).
            user_required: refuse app-only tokens (the Referrals API is App+User only).

        Returns:
            The principal the token speaks for.

        Raises:
            PartnerCenterSandboxError: 401 `unauthenticated` for a missing, malformed, badly
                signed, expired, revoked or wrong-audience token; 403 `accessDenied` for an
                app-only token where a user is required.
        """
        header = request.headers.get("authorization")
        if not header:
            raise self._unauthenticated(
                f"The request has no Authorization header; send 'Authorization: Bearer "
                f"<access token>' with a token acquired for {audience}."
            )
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self._unauthenticated(
                "The Authorization header must be 'Bearer <access token>'; "
                f"acquire a token for {audience} from the token endpoint."
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise self._unauthenticated(
                f"The access token is invalid ({exc}); acquire a new token for {audience}."
            ) from exc
        if claims.get("iss") != f"https://sts.windows.net/{self.tenant_id}/":
            raise self._unauthenticated(
                f"The access token was not issued by this tenant ({self.tenant_id}); "
                "acquire a token from this sandbox's token endpoint."
            )
        now = self._clock.now().timestamp()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int) or not isinstance(nbf, int):
            raise self._unauthenticated("The access token has no exp/nbf claims.")
        if now >= exp:
            raise self._unauthenticated(
                "The access token has expired; acquire a new one (for example with the "
                "refresh token) and retry."
            )
        if now < nbf:
            raise self._unauthenticated("The access token is not valid yet (nbf).")
        with self._lock:
            revoked = claims.get("uti") in self._revoked
        if revoked:
            raise self._unauthenticated(
                "The access token has been revoked; acquire a new one and retry."
            )
        token_audience = claims.get("aud")
        if token_audience != audience:
            raise self._unauthenticated(
                f"The access token's audience is '{token_audience}', but this API accepts only "
                f"tokens for '{audience}'; acquire a token with resource={audience} (v1) or "
                f"scope={audience}/.default (v2)."
            )
        user = claims.get("upn")
        if isinstance(user, str):
            amr = claims.get("amr")
            if not isinstance(amr, list) or "mfa" not in amr:
                raise self._mfa_required()
            if audience == REFERRALS_AUDIENCE and self.referrals_role != "admin":
                raise PartnerCenterSandboxError(
                    403,
                    "accessDenied",
                    f"The user {user} has no Referrals role in this Partner Center account; a "
                    "global admin assigns Referrals admin in Account settings > User management.",
                )
        if user_required and not isinstance(user, str):
            raise PartnerCenterSandboxError(
                403,
                "accessDenied",
                "The Referrals API supports App+User access only; acquire the token for a "
                "Referrals admin user (refresh-token or password grant).",
            )
        return Principal(
            tenant_id=str(claims.get("tid")),
            client_id=str(claims.get("appid")),
            user=user if isinstance(user, str) else None,
            audience=audience,
        )

    def snapshot(self) -> dict[str, Any]:
        """The identity's state as JSON-able data, for `--data` persistence."""
        with self._lock:
            return {
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "app_object_id": self._app_object_id,
                "client_secret": self.client_secret,
                "user": {
                    "upn": self._user.upn,
                    "password": self._user.password,
                    "object_id": self._user.object_id,
                    "display_name": self._user.display_name,
                },
                "refresh_token": self.refresh_token,
                "token_lifetime_seconds": self._token_lifetime,
                "signing_key_pem": self._signing_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode("ascii"),
                "refresh_grants": {
                    token: {
                        "user_upn": g.user_upn,
                        "client_id": g.client_id,
                        "audience": g.audience,
                        "expires_at": g.expires_at.isoformat(),
                        "revoked": g.revoked,
                        "mfa": g.mfa,
                    }
                    for token, g in self._refresh_grants.items()
                },
                "issued": dict(self._issued),
                "revoked": dict(self._revoked),
                "referrals_role": self.referrals_role,
                "delegated_permission": self.delegated_permission,
            }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the identity's state with a `snapshot`."""
        key = serialization.load_pem_private_key(data["signing_key_pem"].encode("ascii"), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the saved signing key is not an RSA key")
        user = data["user"]
        with self._lock:
            self.tenant_id = data["tenant_id"]
            self.client_id = data["client_id"]
            self._app_object_id = data["app_object_id"]
            self.client_secret = data["client_secret"]
            self._user = _User(
                upn=user["upn"],
                password=user["password"],
                object_id=user["object_id"],
                display_name=user["display_name"],
            )
            self.refresh_token = data["refresh_token"]
            self._token_lifetime = float(data["token_lifetime_seconds"])
            self._use_signing_key(key)
            self._refresh_grants = {
                token: _RefreshGrant(
                    user_upn=g["user_upn"],
                    client_id=g["client_id"],
                    audience=g["audience"],
                    expires_at=datetime.fromisoformat(g["expires_at"]),
                    revoked=bool(g["revoked"]),
                    mfa=bool(g.get("mfa", True)),
                )
                for token, g in data["refresh_grants"].items()
            }
            self._issued = {k: int(v) for k, v in data["issued"].items()}
            self._revoked = {k: int(v) for k, v in data["revoked"].items()}
            self.referrals_role = "none" if data.get("referrals_role") == "none" else "admin"
            self.delegated_permission = bool(data.get("delegated_permission", True))

    def revoke_access_tokens(self) -> int:
        """Make every access token issued so far invalid; returns how many were live."""
        with self._lock:
            self._prune()
            count = len(self._issued)
            self._revoked.update(self._issued)
            self._issued.clear()
            return count

    def revoke_refresh_tokens(self) -> int:
        """Make every refresh token issued so far invalid; returns how many were live."""
        with self._lock:
            now = self._clock.now()
            live = [
                t for t, g in self._refresh_grants.items() if not g.revoked and g.expires_at > now
            ]
            for token in live:
                self._refresh_grants[token] = replace(self._refresh_grants[token], revoked=True)
            return len(live)

    def consent(self) -> str:
        """Issue a fresh refresh token for the admin user (as after a new consent); returns it."""
        token = self._new_refresh_token(self._user.upn, REFERRALS_AUDIENCE)
        with self._lock:
            self.refresh_token = token
        return token

    def set_token_lifetime(self, seconds: float) -> None:
        """Set the lifetime of access tokens issued from now on."""
        if seconds <= 0:
            raise ValueError("the token lifetime must be a positive number of seconds")
        with self._lock:
            self._token_lifetime = seconds

    # -- randomness -----------------------------------------------------------------------------

    def _guid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _random_text(self, length: int, alphabet: str) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(length))

    # -- issuing ------------------------------------------------------------------------------

    def _prune(self) -> None:
        now = self._clock.now().timestamp()
        for table in (self._issued, self._revoked):
            for uti in [u for u, exp in table.items() if exp <= now]:
                del table[uti]

    def _new_refresh_token(
        self, upn: str, audience: str, client_id: str | None = None, *, mfa: bool = True
    ) -> str:
        with self._lock:
            now = self._clock.now()
            token = "0.A" + self._random_text(180, _TOKEN_ALPHABET)
            for stale in [t for t, g in self._refresh_grants.items() if g.expires_at <= now]:
                del self._refresh_grants[stale]
            self._refresh_grants[token] = _RefreshGrant(
                user_upn=upn,
                client_id=client_id or self.client_id,
                audience=audience,
                expires_at=now + REFRESH_TOKEN_LIFETIME,
                mfa=mfa,
            )
            return token

    def _access_token(
        self, audience: str, user: _User | None, *, mfa: bool = False
    ) -> tuple[str, int, int]:
        """Sign an access token; returns it with its iat and exp."""
        with self._lock:
            self._prune()
            iat = int(self._clock.now().timestamp())
            exp = iat + int(self._token_lifetime)
            uti = self._random_text(22, _TOKEN_ALPHABET)
            self._issued[uti] = exp
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "appid": self.client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{self.tenant_id}/",
            "tid": self.tenant_id,
            "uti": uti,
            "ver": "1.0",
        }
        if user is None:
            claims.update(oid=self._app_object_id, sub=self._app_object_id, idtyp="app")
        else:
            claims.update(
                oid=user.object_id,
                sub=user.object_id,
                upn=user.upn,
                unique_name=user.upn,
                name=user.display_name,
                scp="user_impersonation",
                amr=["pwd", "mfa"] if mfa else ["pwd"],
                idtyp="user",
            )
        return self._sign(claims), iat, exp

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"kid": self._kid})

    def _use_signing_key(self, key: rsa.RSAPrivateKey) -> None:
        self._signing_key = key
        self._public_key = key.public_key()
        der = self._public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - a key id (x5t-style thumbprint), not security
        digest.update(der)
        self._kid = _b64url(digest.finalize())

    def _id_token(
        self,
        user: _User,
        *,
        v2: bool,
        iat: int,
        exp: int,
        nonce: str | None = None,
        home_tenant: str | None = None,
    ) -> str:
        tenant = home_tenant or self.tenant_id
        issuer = (
            f"https://login.microsoftonline.com/{tenant}/v2.0"
            if v2
            else f"https://sts.windows.net/{tenant}/"
        )
        claims = {
            "aud": self.client_id,
            "iss": issuer,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "name": user.display_name,
            "oid": user.object_id,
            "preferred_username": user.upn,
            "sub": user.object_id,
            "tid": tenant,
            "ver": "2.0" if v2 else "1.0",
        }
        if self.app_roles:
            claims["roles"] = list(self.app_roles)
        if not v2:
            claims["upn"] = user.upn
            claims["unique_name"] = user.upn
        if nonce is not None:
            claims["nonce"] = nonce
        return self._sign(claims)

    # -- the token endpoint -------------------------------------------------------------------

    def _check_tenant(self, tenant: str, *, user_grant: bool) -> None:
        lowered = tenant.lower()
        if lowered in (self.tenant_id.lower(), TENANT_DOMAIN):
            return
        if lowered in _USER_TENANT_ALIASES:
            if user_grant:
                return
            raise _TokenError(
                400,
                "invalid_request",
                50059,
                "No tenant-identifying information found in either the request or implied by "
                f"any provided credentials. Use the tenant id ({self.tenant_id}) in the token "
                f"endpoint for this grant, not '{tenant}'.",
            )
        raise _TokenError(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
            f"and are signing into the correct cloud. This sandbox's tenant is {self.tenant_id}.",
        )

    def _check_client(
        self, form: dict[str, str], authorization: str | None, *, public: bool = False
    ) -> None:
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
            except (ValueError, UnicodeDecodeError) as exc:
                raise _TokenError(
                    401, "invalid_client", 7000215, "The Basic authorization header is malformed."
                ) from exc
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = client_id or basic_id
            client_secret = client_secret or basic_secret
        if not client_id:
            raise _missing("client_id")
        if client_id != self.client_id:
            raise _TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. Use the client id this sandbox printed on start.",
            )
        if not client_secret and public:
            return
        if not client_secret:
            raise _TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if not hmac.compare_digest(client_secret.encode(), self.client_secret.encode()):
            raise _TokenError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.client_id}'.",
            )

    def _audience_v1(self, form: dict[str, str], default: str | None) -> str:
        resource = form.get("resource")
        if not resource:
            if default is not None:
                return default
            raise _missing("resource")
        audience = _canonical_audience(resource)
        if audience is None:
            raise _TokenError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. Use {REFERRALS_AUDIENCE} (Referrals API) or "
                f"{WEBHOOKS_AUDIENCE} (Webhooks API).",
            )
        return audience

    def _audience_v2(self, form: dict[str, str], *, app_only: bool) -> tuple[str, bool]:
        """The resource of a v2 `scope`, and whether `openid` was asked for."""
        scope = form.get("scope")
        if not scope:
            raise _missing("scope")
        items = scope.split()
        resource_scopes = [s for s in items if s.lower() not in _OIDC_SCOPES]
        openid = any(s.lower() == "openid" for s in items)
        if openid and not resource_scopes and not app_only:
            return GRAPH_AUDIENCE, True  # a web app's sign-in: Entra adds Graph's User.Read
        if len(resource_scopes) != 1:
            raise _TokenError(
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid: '{scope}'. "
                f"Ask for exactly one resource, e.g. '{REFERRALS_AUDIENCE}/.default'.",
            )
        requested = resource_scopes[0]
        suffix = next((s for s in _RESOURCE_SCOPE_SUFFIXES if requested.lower().endswith(s)), None)
        if suffix is None:
            raise _TokenError(
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid: '{requested}'. "
                f"Use '<resource>/.default' or '<resource>/user_impersonation', e.g. "
                f"'{REFERRALS_AUDIENCE}/.default'.",
            )
        if app_only and suffix != "/.default":
            raise _TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {requested} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = requested[: -len(suffix)]
        audience = _canonical_audience(resource)
        if audience is None:
            raise _TokenError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. Use {REFERRALS_AUDIENCE}/.default (Referrals API) or "
                f"{WEBHOOKS_AUDIENCE}/.default (Webhooks API).",
            )
        return audience, openid

    def _redeem_refresh_token(self, form: dict[str, str]) -> _RefreshGrant:
        token = form.get("refresh_token")
        if not token:
            raise _missing("refresh_token")
        with self._lock:
            grant = self._refresh_grants.get(token)
        if grant is None or grant.client_id != self.client_id:
            raise _TokenError(
                400,
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed. Use the refresh token this sandbox "
                "printed on start, or the newest one it issued.",
            )
        if grant.revoked:
            raise _TokenError(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is "
                "needed. The user might have changed or reset their password. Get a new refresh "
                "token (POST /control/identity/consent on the sandbox).",
            )
        if grant.expires_at <= self._clock.now():
            raise _TokenError(
                400,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was issued on "
                f"{(grant.expires_at - REFRESH_TOKEN_LIFETIME).isoformat()} and was inactive "
                "for 90.00:00:00. Get a new refresh token (POST /control/identity/consent).",
            )
        return grant

    def _redeem_sign_in(self, grant_type: str, form: dict[str, str]) -> SignIn:
        client_id = form.get("client_id", "")
        if grant_type == DEVICE_CODE_GRANT:
            device_code = form.get("device_code") or form.get("code")
            if not device_code:
                raise _missing("device_code")
            return self.sign_ins.redeem_device_code(device_code, client_id)
        code = form.get("code")
        if not code:
            raise _missing("code")
        return self.sign_ins.redeem_code(
            code,
            client_id=client_id,
            redirect_uri=form.get("redirect_uri"),
            verifier=form.get("code_verifier"),
        )

    def _start_device(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        self._check_tenant(tenant, user_grant=True)
        self._check_client(form, None, public=True)
        scope = form.get("scope")
        if not scope:
            raise _missing("scope")
        self._audience_v2(form, app_only=False)
        sign_in = self.sign_ins.start_device(form["client_id"], scope)
        assert sign_in.user_code is not None
        uri = f"{self._base_url}/devicelogin"
        seconds = int(DEVICE_CODE_LIFETIME.total_seconds())
        return {
            "user_code": sign_in.user_code,
            "device_code": sign_in.device_code,
            "verification_uri": uri,
            "expires_in": seconds,
            "interval": DEVICE_CODE_INTERVAL,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the "
            f"code {sign_in.user_code} to authenticate.",
        }

    def _start_authorization(self, tenant: str, params: dict[str, str]) -> SignIn:
        self._check_tenant(tenant, user_grant=True)
        self._check_client(params, None, public=True)
        if params.get("response_type") != "code":
            raise _TokenError(
                400,
                "unsupported_response_type",
                700054,
                "The sandbox's authorize endpoint supports response_type=code only.",
            )
        redirect_uri = params.get("redirect_uri", "")
        if not is_loopback_redirect(redirect_uri):
            raise _TokenError(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                "redirect URIs configured for the application: use a loopback URL "
                "(http://localhost:<port>).",
            )
        challenge = params.get("code_challenge")
        if not challenge or params.get("code_challenge_method") != "S256":
            raise _TokenError(
                400,
                "invalid_request",
                501491,
                "Invalid size of Code_Challenge parameter, or a code_challenge_method other "
                "than S256: send PKCE (code_challenge with code_challenge_method=S256).",
            )
        if params.get("response_mode", "query") not in ("query", "form_post"):
            raise _TokenError(
                400,
                "invalid_request",
                900144,
                "The sandbox's authorize endpoint supports response_mode=query or form_post.",
            )
        scope = params.get("scope")
        if not scope:
            raise _missing("scope")
        self._audience_v2(params, app_only=False)
        return self.sign_ins.start_authorization(
            params["client_id"],
            scope,
            redirect_uri=redirect_uri,
            code_challenge=challenge,
            oauth_state=params.get("state"),
            form_post=params.get("response_mode") == "form_post",
            nonce=params.get("nonce"),
        )

    def _check_password(self, form: dict[str, str]) -> _User:
        username = form.get("username")
        if not username:
            raise _missing("username")
        password = form.get("password")
        if not password:
            raise _missing("password")
        password_ok = hmac.compare_digest(password.encode(), self._user.password.encode())
        if username.lower() != self._user.upn or not password_ok:
            raise _TokenError(
                400,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        return self._user

    def _issue(
        self, tenant: str, form: dict[str, str], headers: Any, *, v2: bool
    ) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _missing("grant_type")
        if grant_type not in _GRANTS:
            raise _TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'. This sandbox "
                f"supports {', '.join(_GRANTS)}.",
            )
        interactive = grant_type in (DEVICE_CODE_GRANT, "authorization_code")
        self._check_tenant(tenant, user_grant=grant_type != "client_credentials")
        self._check_client(form, headers.get("authorization"), public=interactive)
        user: _User | None
        mfa = False
        nonce: str | None = None
        home_tenant: str | None = None
        default_audience: str | None = None
        if grant_type == "refresh_token":
            grant = self._redeem_refresh_token(form)
            default_audience = grant.audience
            user = self._user
            mfa = grant.mfa
        elif grant_type == "password":
            # ROPC has no interactive step, so no second factor: its tokens never carry `mfa`.
            user = self._check_password(form)
        elif interactive:
            sign_in = self._redeem_sign_in(grant_type, form)
            user = self._user
            mfa = sign_in.mfa
            nonce = sign_in.nonce
            home_tenant = sign_in.home_tenant
            # msal sends no scope when it redeems a device code: the sign-in's scope stands.
            form = {**form, "scope": form.get("scope") or sign_in.scope}
        else:
            user = None
        if interactive or v2:
            audience, openid = self._audience_v2(form, app_only=user is None)
        else:
            audience = self._audience_v1(form, default_audience)
            openid = "openid" in form.get("scope", "").split()
        if user is not None and not self.delegated_permission:
            raise _TokenError(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{self.client_id}'. Send an interactive authorization request for this user "
                f"and resource (the app registration lacks the delegated permission for "
                f"{audience}).",
            )
        access_token, iat, exp = self._access_token(audience, user, mfa=mfa)
        lifetime = exp - iat
        body: dict[str, Any] = {"token_type": "Bearer"}
        if v2:
            if user is not None:
                body["scope"] = f"{audience}/user_impersonation"
            body["expires_in"] = lifetime
            body["ext_expires_in"] = lifetime
        else:
            if user is not None:
                body["scope"] = "user_impersonation"
            body.update(
                expires_in=str(lifetime),
                ext_expires_in=str(lifetime),
                expires_on=str(exp),
                not_before=str(iat),
                resource=audience,
            )
        body["access_token"] = access_token
        if user is not None:
            body["refresh_token"] = self._new_refresh_token(user.upn, audience, mfa=mfa)
            if openid:
                body["id_token"] = self._id_token(
                    user, v2=v2, iat=iat, exp=exp, nonce=nonce, home_tenant=home_tenant
                )
            if form.get("client_info") == "1":
                body["client_info"] = _b64url(
                    json.dumps({"uid": user.object_id, "utid": self.tenant_id}).encode()
                )
        return body

    def _token_error_response(self, exc: _TokenError, headers: Any) -> JSONResponse:
        with self._lock:
            trace_id = self._guid()
            fallback_correlation = self._guid()
        correlation_id = headers.get("client-request-id") or fallback_correlation
        timestamp = self._clock.now().strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{exc.code}: {exc.message} Trace ID: {trace_id} Correlation ID: "
            f"{correlation_id} Timestamp: {timestamp}"
        )
        return JSONResponse(
            {
                "error": exc.error,
                "error_description": description,
                "error_codes": [exc.code],
                "timestamp": timestamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}",
            },
            status_code=exc.status,
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    @staticmethod
    def _parse_form(content_type: str, raw: bytes) -> dict[str, str]:
        if content_type != "application/x-www-form-urlencoded":
            raise _TokenError(
                400,
                "invalid_request",
                900144,
                "The request body must be application/x-www-form-urlencoded and contain the "
                "following parameter: 'grant_type'.",
            )
        return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))

    async def _token(self, request: Request, tenant: str, *, v2: bool) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await request.body()
        try:
            form = self._parse_form(content_type, raw)
            body = self._issue(tenant, form, request.headers, v2=v2)
        except _TokenError as exc:
            return self._token_error_response(exc, request.headers)
        return JSONResponse(
            body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        )

    # -- discovery ------------------------------------------------------------------------------

    def _origin(self, request: Request) -> str:
        original = request.headers.get("x-original-host")
        if original and _HOST_RE.match(original):
            return f"https://{original}"
        return self._base_url

    def _discovery_tenant(self, tenant: str) -> str | None:
        """The tenant segment to put in discovery URLs, or None for an unknown tenant."""
        lowered = tenant.lower()
        if lowered in _USER_TENANT_ALIASES:
            return lowered
        if lowered in (self.tenant_id.lower(), TENANT_DOMAIN):
            return self.tenant_id
        return None

    def _unknown_tenant(self, tenant: str) -> JSONResponse:
        return self._token_error_response(
            _TokenError(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                f"and are signing into the correct cloud. This sandbox's tenant is "
                f"{self.tenant_id}.",
            ),
            {},
        )

    def _openid_configuration(self, request: Request, tenant: str, *, v2: bool) -> Response:
        segment = self._discovery_tenant(tenant)
        if segment is None:
            return self._unknown_tenant(tenant)
        origin = self._origin(request)
        root = f"{origin}/{quote(segment)}"
        issuer_tenant = "{tenantid}" if segment in _USER_TENANT_ALIASES else self.tenant_id
        common = {
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "request_uri_parameter_supported": False,
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
        if v2:
            document: dict[str, Any] = {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "issuer": f"https://login.microsoftonline.com/{issuer_tenant}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "kerberos_endpoint": f"{root}/kerberos",
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "nbf",
                    "name",
                    "oid",
                    "tid",
                    "preferred_username",
                    "ver",
                ],
                **common,
            }
        else:
            document = {
                "token_endpoint": f"{root}/oauth2/token",
                "jwks_uri": f"{origin}/common/discovery/keys",
                "issuer": f"https://sts.windows.net/{issuer_tenant}/",
                "authorization_endpoint": f"{root}/oauth2/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/devicecode",
                "end_session_endpoint": f"{root}/oauth2/logout",
                "userinfo_endpoint": f"{root}/openid/userinfo",
                "kerberos_endpoint": f"{root}/kerberos",
                "microsoft_multi_refresh_token": True,
                "check_session_iframe": f"{root}/oauth2/checksession",
                "scopes_supported": ["openid"],
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "nbf",
                    "name",
                    "oid",
                    "tid",
                    "upn",
                    "unique_name",
                    "ver",
                ],
                **common,
            }
        return JSONResponse(document)

    def _jwks(self) -> dict[str, Any]:
        numbers = self._public_key.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        kid = self._kid
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": kid,
                    "x5t": kid,
                    "n": _b64url(n),
                    "e": _b64url(e),
                    "issuer": f"https://login.microsoftonline.com/{self.tenant_id}/v2.0",
                }
            ]
        }

    def _user_realm(self, username: str) -> dict[str, Any]:
        domain = username.rpartition("@")[2].lower()
        known = domain == TENANT_DOMAIN
        return {
            "ver": "1.0",
            "account_type": "Managed" if known else "Unknown",
            "domain_name": domain,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }

    # -- errors ---------------------------------------------------------------------------------

    @staticmethod
    def _mfa_required() -> PartnerCenterSandboxError:
        message = (
            "AADSTS900421: Multi-factor authentication is required for App+User calls to the "
            "Partner Center APIs, and this access token was issued without it. Sign in again "
            "with MFA (the secure application model's consent) and use the new refresh token."
        )
        return PartnerCenterSandboxError(
            401,
            MFA_REQUIRED_CODE,
            message,
            target="authorization",
            headers={
                "WWW-Authenticate": 'Bearer error="invalid_token", error_description="'
                'AADSTS900421: multi-factor authentication is required"'
            },
        )

    @staticmethod
    def _control_error(exc: SignInControlError) -> PartnerCenterSandboxError:
        code = "itemNotFound" if exc.status == 404 else "invalidRequest"
        return PartnerCenterSandboxError(exc.status, code, exc.message)

    @staticmethod
    def _unauthenticated(message: str) -> PartnerCenterSandboxError:
        escaped = message.replace("\\", "\\\\").replace('"', "'")
        return PartnerCenterSandboxError(
            401,
            "unauthenticated",
            message,
            headers={
                "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{escaped}"'
            },
        )

    # -- routes ---------------------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter()

        @router.post("/{tenant}/oauth2/token", include_in_schema=False)
        async def token_v1(request: Request, tenant: str) -> Response:
            return await self._token(request, tenant, v2=False)

        @router.post("/{tenant}/oauth2/v2.0/token", include_in_schema=False)
        async def token_v2(request: Request, tenant: str) -> Response:
            return await self._token(request, tenant, v2=True)

        @router.get("/{tenant}/v2.0/.well-known/openid-configuration", include_in_schema=False)
        async def openid_v2(request: Request, tenant: str) -> Response:
            return self._openid_configuration(request, tenant, v2=True)

        @router.get("/{tenant}/.well-known/openid-configuration", include_in_schema=False)
        async def openid_v1(request: Request, tenant: str) -> Response:
            return self._openid_configuration(request, tenant, v2=False)

        @router.get("/{tenant}/discovery/keys", include_in_schema=False)
        @router.get("/{tenant}/discovery/v2.0/keys", include_in_schema=False)
        async def jwks(tenant: str) -> Response:
            if self._discovery_tenant(tenant) is None:
                return self._unknown_tenant(tenant)
            return JSONResponse(self._jwks())

        @router.post("/{tenant}/oauth2/v2.0/devicecode", include_in_schema=False)
        async def device_code(request: Request, tenant: str) -> Response:
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            try:
                form = self._parse_form(content_type, await request.body())
                body = self._start_device(tenant, form)
            except _TokenError as exc:
                return self._token_error_response(exc, request.headers)
            return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache"})

        @router.get("/{tenant}/oauth2/v2.0/authorize", include_in_schema=False)
        async def authorize(request: Request, tenant: str) -> Response:
            try:
                sign_in = self._start_authorization(tenant, dict(request.query_params))
            except _TokenError as exc:
                return self._token_error_response(exc, request.headers)
            action = f"/{quote(tenant)}/oauth2/v2.0/authorize/{sign_in.id}"
            page = (
                "<!doctype html><title>Sign in - sandbox</title><h1>Sign in to your account</h1>"
                f"<p>Sandbox sign-in <code>{sign_in.id}</code> is waiting for the user. Approve "
                f"it with <code>POST /control/identity/sign-ins/{sign_in.id}/approve</code> "
                "(or deny, or expire it); the answer names the URL the browser goes to next. "
                "Or act as the user here:</p>"
                f'<form method="post" action="{action}">'
                f'<button type="submit" name="as" value="user" id="sandbox-approve">Sign in as '
                f"{html_escape(self._user.upn)}</button> "
                '<button type="submit" name="as" value="other-tenant" id="sandbox-other-tenant">'
                "Sign in as a user of another tenant</button> "
                '<button type="submit" name="as" value="deny" id="sandbox-deny">Cancel</button>'
                "</form>"
            )
            return HTMLResponse(page, headers={"X-Sandbox-Sign-In": sign_in.id})

        @router.post("/{tenant}/oauth2/v2.0/authorize/{ref}", include_in_schema=False)
        async def authorize_answer(request: Request, tenant: str, ref: str) -> Response:
            choice = dict(parse_qsl((await request.body()).decode("utf-8", "replace"))).get("as")
            try:
                if choice == "deny":
                    sign_in = self.sign_ins.deny(ref)
                elif choice in ("user", "other-tenant"):
                    other = OTHER_TENANT_ID if choice == "other-tenant" else None
                    sign_in = self.sign_ins.approve(ref, mfa=True, home_tenant=other)
                else:
                    raise PartnerCenterSandboxError(
                        400, "invalidRequest", "Send as=user, as=other-tenant or as=deny."
                    )
            except SignInControlError as exc:
                raise self._control_error(exc) from exc
            answer = self.sign_ins.redirect(sign_in)
            if answer["method"] == "GET":
                return Response(status_code=303, headers={"Location": answer["url"]})
            fields = "".join(
                f'<input type="hidden" name="{html_escape(k)}" value="{html_escape(v)}">'
                for k, v in answer["form"].items()
            )
            return HTMLResponse(
                f'<!doctype html><form method="post" action="{html_escape(answer["url"])}">'
                f'{fields}<button type="submit">Continue</button></form>'
            )

        @router.get("/devicelogin", include_in_schema=False)
        async def device_login() -> Response:
            return HTMLResponse(
                "<!doctype html><title>Enter code - sandbox</title><h1>Enter code</h1><p>In "
                "the sandbox, the control API plays the user: <code>POST "
                "/control/identity/sign-ins/&lt;user code&gt;/approve</code>.</p>"
            )

        @router.get("/common/userrealm/{username}", include_in_schema=False)
        async def user_realm(username: str) -> dict[str, Any]:
            return self._user_realm(username)

        @router.get("/control/identity")
        async def control_info() -> dict[str, Any]:
            return {**self.info(), "token_lifetime_seconds": str(self._token_lifetime)}

        @router.post("/control/identity/revoke-access-tokens")
        async def control_revoke_access() -> dict[str, int]:
            return {"revoked": self.revoke_access_tokens()}

        @router.post("/control/identity/revoke-refresh-tokens")
        async def control_revoke_refresh() -> dict[str, int]:
            return {"revoked": self.revoke_refresh_tokens()}

        @router.post("/control/identity/consent")
        async def control_consent() -> dict[str, str]:
            return {"refresh_token": self.consent()}

        @router.get("/control/identity/sign-ins")
        async def control_sign_ins() -> dict[str, Any]:
            return {"value": self.sign_ins.listing()}

        @router.post("/control/identity/sign-ins/{ref}/{action}")
        async def control_sign_in(ref: str, action: str, request: Request) -> dict[str, Any]:
            try:
                payload = json.loads(await request.body() or b"{}")
            except ValueError:
                payload = None
            if not isinstance(payload, dict) or not isinstance(payload.get("mfa", True), bool):
                raise PartnerCenterSandboxError(
                    400, "invalidRequest", 'Send {} or {"mfa": true|false}.', target="mfa"
                )
            try:
                if action == "approve":
                    other = payload.get("home_tenant")
                    sign_in = self.sign_ins.approve(
                        ref,
                        mfa=payload.get("mfa", True),
                        home_tenant=other if isinstance(other, str) and other else None,
                    )
                elif action == "deny":
                    sign_in = self.sign_ins.deny(ref)
                elif action == "expire":
                    sign_in = self.sign_ins.expire(ref)
                else:
                    raise PartnerCenterSandboxError(
                        404, "itemNotFound", "The actions are approve, deny and expire."
                    )
            except SignInControlError as exc:
                raise self._control_error(exc) from exc
            answer = sign_in.public()
            if sign_in.kind == "authorization_code" and action != "expire":
                answer["redirect"] = self.sign_ins.redirect(sign_in)
            return answer

        @router.put("/control/identity/user")
        async def control_user(request: Request) -> dict[str, Any]:
            payload = await _json_object(request)
            roles = payload.get("app_roles")
            if roles is not None:
                if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                    raise PartnerCenterSandboxError(
                        400,
                        "invalidRequest",
                        'Send {"app_roles": ["Console.Operator", ...]}.',
                        target="app_roles",
                    )
                self.app_roles = tuple(roles)
                if "referrals_role" not in payload:
                    return {"referrals_role": self.referrals_role, "app_roles": roles}
            role = payload.get("referrals_role")
            if role not in ("admin", "none"):
                raise PartnerCenterSandboxError(
                    400,
                    "invalidRequest",
                    'Send {"referrals_role": "admin" | "none"}.',
                    target="referrals_role",
                )
            self.referrals_role = role
            return {"referrals_role": role}

        @router.put("/control/identity/app")
        async def control_app(request: Request) -> dict[str, Any]:
            payload = await _json_object(request)
            granted = payload.get("delegated_permission")
            if not isinstance(granted, bool):
                raise PartnerCenterSandboxError(
                    400,
                    "invalidRequest",
                    'Send {"delegated_permission": true | false}.',
                    target="delegated_permission",
                )
            self.delegated_permission = granted
            return {"delegated_permission": granted}

        @router.put("/control/identity/token-lifetime")
        async def control_token_lifetime(request: Request) -> Response:
            try:
                payload = json.loads(await request.body() or b"null")
                seconds = float(payload["seconds"])
                self.set_token_lifetime(seconds)
            except (ValueError, TypeError, KeyError) as exc:
                raise PartnerCenterSandboxError(
                    400,
                    "invalidRequest",
                    'Send {"seconds": <positive number>} to set the access token lifetime.',
                    target="seconds",
                ) from exc
            return JSONResponse({"seconds": seconds})

        return router


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        payload = json.loads(await request.body() or b"{}")
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise PartnerCenterSandboxError(400, "invalidRequest", "Send a JSON object.")
    return payload
