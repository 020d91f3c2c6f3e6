"""Single sign-on with Microsoft Entra ID (OpenID Connect, authorization code + PKCE).

The operations console is the relying party; Entra ID (the same identity platform that signs
cosell in to Partner Center) is the provider. One sign-in:

```
start(redirect_uri)        -> the authorize URL, and a Pending (state, nonce, PKCE verifier)
                              the console keeps in a signed, short-lived cookie
finish(code, pending, ...) -> POST the code (+ verifier, + client secret) to the token
                              endpoint; verify the ID token: RS256 signature against the
                              tenant's JWKS, audience = the client id, not expired (on the
                              injected clock), the nonce, then the tenant (`tid` and `iss`)
                              -> an EntraUser (tenant, object id, user name, name, app roles)
```

Discovery (`{authority}/{tenant}/v2.0/.well-known/openid-configuration`) and the JWKS are read
once and kept; an unknown `kid` re-reads the JWKS once (Entra rotates its keys).

Errors: `EntraSignInError` (the sign-in failed: the message says why and what to do);
its subclass `OtherTenantError` when the user signed in with an account of another tenant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import jwt

from cosell.clock import Clock

SCOPE: Final = "openid profile email"
CLOCK_SKEW_SECONDS: Final = 300  # Entra's clocks and ours may differ by a few minutes
MAX_DOCUMENT_BYTES: Final = 256 * 1024  # discovery, JWKS and token answers are a few KiB


class EntraSignInError(Exception):
    """A sign-in with Entra ID failed; the message says why and what to do."""


class OtherTenantError(EntraSignInError):
    """The user signed in with an account of a tenant other than the allowed one."""

    def __init__(self, tenant: str, allowed: str) -> None:
        super().__init__(
            f"You signed in with an account of the tenant {tenant}; this console accepts "
            f"accounts of the tenant {allowed} only. Sign out of Microsoft and sign in with "
            "your work account of that tenant."
        )
        self.tenant = tenant
        self.allowed = allowed


@dataclass(frozen=True)
class Pending:
    """What a started sign-in must be finished with (kept by the browser, signed)."""

    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class EntraUser:
    """Who signed in, as the verified ID token says."""

    tenant: str
    object_id: str
    username: str
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class EntraApp:
    """The console's app registration.

    Attributes:
        authority: `https://login.microsoftonline.com` (or the sandbox's base URL).
        tenant: the only tenant whose users may sign in.
        client_id: the application (client) id.
        client_secret: its secret.
    """

    authority: str
    tenant: str
    client_id: str
    client_secret: str


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class EntraSignIn:
    """Signs users in with Entra ID for one app registration and one tenant.

    Args:
        app: the app registration.
        http: the client requests go through (discovery, JWKS, token endpoint).
        clock: what "now" is when the ID token's times are checked.
    """

    def __init__(self, app: EntraApp, *, http: httpx.AsyncClient, clock: Clock) -> None:
        self.app = app
        self._http = http
        self._clock = clock
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str, Any] = {}

    async def _get(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise EntraSignInError(
                f"Entra ID could not be reached for its {what} ({type(exc).__name__}); try "
                "again in a minute, or check [console] oidc_authority"
            ) from exc
        return self._document(response, what)

    @staticmethod
    def _document(response: httpx.Response, what: str) -> dict[str, Any]:
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise EntraSignInError(f"Entra ID's {what} is too large to be one")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise EntraSignInError(
                f"Entra ID answered {response.status_code} without a JSON {what}; check "
                "[console] oidc_authority and oidc_tenant"
            )
        if response.status_code != 200:
            description = str(body.get("error_description") or body.get("error") or "")
            raise EntraSignInError(
                f"Entra ID refused ({response.status_code}): {description.splitlines()[0][:300]}"
                if description
                else f"Entra ID answered {response.status_code} for its {what}"
            )
        return body

    async def discovery(self) -> dict[str, Any]:
        """The tenant's OpenID configuration (read once)."""
        if self._discovery is None:
            url = f"{self.app.authority}/{self.app.tenant}/v2.0/.well-known/openid-configuration"
            document = await self._get(url, "OpenID configuration")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "issuer"):
                if not isinstance(document.get(key), str):
                    raise EntraSignInError(f"Entra ID's OpenID configuration lacks {key}")
            self._discovery = document
        return self._discovery

    async def start(self, redirect_uri: str) -> tuple[str, Pending]:
        """The URL to send the browser to, and what `finish` will need."""
        document = await self.discovery()
        pending = Pending(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
        )
        query = urlencode(
            {
                "client_id": self.app.client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "response_mode": "query",
                "scope": SCOPE,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": _challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{document['authorization_endpoint']}?{query}", pending

    async def finish(self, code: str, pending: Pending, *, redirect_uri: str) -> EntraUser:
        """Redeem the code and verify the ID token.

        Raises:
            OtherTenantError: the account belongs to another tenant.
            EntraSignInError: anything else failed (the message says what).
        """
        document = await self.discovery()
        try:
            response = await self._http.post(
                document["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "client_id": self.app.client_id,
                    "client_secret": self.app.client_secret,
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": pending.verifier,
                    "scope": SCOPE,
                },
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            raise EntraSignInError(
                f"Entra ID's token endpoint could not be reached ({type(exc).__name__}); "
                "sign in again"
            ) from exc
        answer = self._document(response, "token answer")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise EntraSignInError("Entra ID sent no ID token; sign in again")
        return await self.verify(id_token, nonce=pending.nonce)

    async def _key(self, kid: str) -> Any:
        if kid not in self._keys:
            document = await self.discovery()
            jwks = await self._get(document["jwks_uri"], "signing keys")
            try:
                keyset = jwt.PyJWKSet.from_dict(jwks)
            except jwt.PyJWTError as exc:
                raise EntraSignInError("Entra ID's signing keys cannot be read") from exc
            self._keys = {key.key_id: key.key for key in keyset.keys if key.key_id}
        if kid not in self._keys:
            raise EntraSignInError("the ID token is signed with a key Entra ID does not list")
        return self._keys[kid]

    async def verify(self, id_token: str, *, nonce: str) -> EntraUser:
        """The user an ID token names, once every check passed (see the module docstring).

        Raises:
            OtherTenantError: the token is for an account of another tenant.
            EntraSignInError: the token is forged, expired, for another app or replayed.
        """
        try:
            header = jwt.get_unverified_header(id_token)
            claims = jwt.decode(
                id_token,
                await self._key(str(header.get("kid", ""))),
                algorithms=["RS256"],
                audience=self.app.client_id,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise EntraSignInError(
                f"the ID token was refused ({exc}); sign in again, and check [console] "
                "oidc_client_id"
            ) from exc
        now = self._clock.now().timestamp()
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires + CLOCK_SKEW_SECONDS < now:
            raise EntraSignInError("the ID token has expired; sign in again")
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise EntraSignInError("the ID token answers another sign-in; sign in again")
        tenant = str(claims.get("tid", ""))
        if tenant.lower() != self.app.tenant.lower():
            raise OtherTenantError(tenant or "(none)", self.app.tenant)
        issuer = str((await self.discovery())["issuer"]).replace("{tenantid}", tenant)
        if claims.get("iss") != issuer:
            raise OtherTenantError(str(claims.get("iss")), self.app.tenant)
        roles = claims.get("roles", [])
        return EntraUser(
            tenant=tenant,
            object_id=str(claims.get("oid", claims.get("sub", ""))),
            username=str(claims.get("preferred_username") or claims.get("upn") or ""),
            name=str(claims.get("name") or ""),
            roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
        )


def encode_pending(pending: Pending, extra: dict[str, str]) -> str:
    """A Pending and extra fields as compact JSON (the console signs it into a cookie)."""
    return json.dumps(
        {"s": pending.state, "n": pending.nonce, "v": pending.verifier, **extra},
        separators=(",", ":"),
    )


def decode_pending(text: str) -> tuple[Pending, dict[str, str]] | None:
    """`encode_pending`'s inverse; None when it is not one."""
    try:
        data = json.loads(text)
        pending = Pending(
            state=str(data.pop("s")), nonce=str(data.pop("n")), verifier=str(data.pop("v"))
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return pending, {str(k): str(v) for k, v in data.items()}


__all__ = [
    "EntraApp",
    "EntraSignIn",
    "EntraSignInError",
    "EntraUser",
    "OtherTenantError",
    "Pending",
    "decode_pending",
    "encode_pending",
]
