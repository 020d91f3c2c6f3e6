"""Interactive sign-ins of the sandboxes' identity providers: device code and authorization code.

The Partner Center sandbox's Entra ID and the Salesforce sandbox's OAuth endpoints share this
state machine; the messages below are Entra's, and the Salesforce sandbox words them its way.

A real Entra ID shows a sign-in page to a person. The sandbox has no person, so the control
API plays the user: it lists the sign-ins waiting for one (`GET /control/identity/sign-ins`)
and approves (with or without MFA), denies or expires each (`POST
/control/identity/sign-ins/{id or user code}/approve|deny|expire`).

- Device code (RFC 8628, Entra's v1 and v2 `devicecode` endpoints): `POST
  /{tenant}/oauth2/v2.0/devicecode` with `client_id` and `scope` answers `device_code`,
  `user_code`, `verification_uri`, `expires_in`, `interval` and `message`; the client then
  polls the token endpoint with `grant_type=urn:ietf:params:oauth:grant-type:device_code`,
  getting `authorization_pending` until the user acts, then tokens, `authorization_declined`
  or `expired_token`.
- Authorization code with PKCE (RFC 7636): `GET /{tenant}/oauth2/v2.0/authorize` with
  `response_type=code`, `redirect_uri`, `state`, `code_challenge` and `code_challenge_method`
  records a sign-in and answers a page naming it; approving it answers what the browser would
  do next (`redirect`: GET `redirect_uri?code=…&state=…`, or with `response_mode=form_post` a
  POST of those fields as a form; on deny `error=access_denied`), which the caller (a test, or
  a person at a sandbox) then does. The code is redeemed once, with the
  matching `code_verifier` and the same `redirect_uri`.

Assumptions (not documented by Microsoft in the sources of `specs/partner-center-api.md`):
- The sandbox's app registration allows public client flows, so the device code and
  authorization code grants are accepted without a client secret; a refresh token they yield
  is then redeemable by the confidential client of the same app id (as the secure application
  model's tools do). The redirect URI must be a loopback URL (`http://localhost:<port>` or
  `http://127.0.0.1:<port>`, any port, as Entra allows for public clients).
- A device code lives 15 minutes (`expires_in` 900) with a polling `interval` of 5 seconds;
  an authorization code lives 10 minutes; both are single-use.
- Error codes: `authorization_pending` AADSTS70016, `authorization_declined` AADSTS70000,
  `expired_token` AADSTS70019, a code redeemed twice AADSTS54005, an expired code AADSTS70008,
  a PKCE mismatch AADSTS501481, a redirect URI mismatch AADSTS50011.
- Only `S256` is accepted as `code_challenge_method` (Entra also accepts `plain`; cosell never
  sends it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import string
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from cosell.clock import Clock

# Entra's device codes last 15 minutes and ask clients to poll every 5 seconds.
DEVICE_CODE_LIFETIME = timedelta(minutes=15)
DEVICE_CODE_INTERVAL = 5
# Entra's authorization codes are short-lived; 10 minutes is the figure its docs give.
AUTHORIZATION_CODE_LIFETIME = timedelta(minutes=10)
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_USER_CODE_ALPHABET = string.ascii_uppercase + string.digits
_CODE_ALPHABET = string.ascii_letters + string.digits + "-_"

SignInKind = Literal["device_code", "authorization_code"]
SignInState = Literal["pending", "approved", "denied", "expired", "redeemed"]


class TokenEndpointError(Exception):
    """An Entra-shaped error of the token (or device code) endpoint."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.code = code
        self.message = message


class SignInControlError(Exception):
    """A control request that names no sign-in, or one that cannot take the action."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class SignIn:
    """One interactive sign-in, from its start to its redemption.

    Attributes:
        id: the sign-in's id (the control API names it by this or by its user code).
        kind: `device_code` or `authorization_code`.
        client_id: the application that started it.
        scope: the scope asked for.
        expires_at: when the device code or the authorization request stops being usable.
        state: where it stands; `approved` until the client redeems it.
        mfa: the user signed in with multi-factor authentication (set on approval).
        user_code: the code the user types (device code flow).
        device_code: the secret the client polls with (device code flow).
        redirect_uri: where the browser is sent (authorization code flow).
        code_challenge: the PKCE challenge (authorization code flow).
        oauth_state: the client's `state`, sent back on the redirect.
        code: the authorization code, once approved.
        form_post: `response_mode=form_post`: the browser POSTs the answer as a form.
        nonce: the client's OpenID Connect `nonce`, echoed in the ID token.
        home_tenant: set when the user who approved belongs to another tenant (the ID token
            then names that tenant: `tid` and `iss`).
    """

    id: str
    kind: SignInKind
    client_id: str
    scope: str
    expires_at: datetime
    state: SignInState = "pending"
    mfa: bool = False
    user_code: str | None = None
    device_code: str | None = None
    redirect_uri: str | None = None
    code_challenge: str | None = None
    oauth_state: str | None = None
    code: str | None = None
    form_post: bool = False
    nonce: str | None = None
    home_tenant: str | None = None

    def public(self) -> dict[str, Any]:
        """What the control API shows (never the device code or the authorization code)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "client_id": self.client_id,
            "scope": self.scope,
            "state": self.state,
            "user_code": self.user_code,
            "redirect_uri": self.redirect_uri,
            "expires_at": self.expires_at.isoformat(),
            "mfa": self.mfa,
        }


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE code verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_loopback_redirect(uri: str) -> bool:
    """Whether `uri` is an `http` loopback URL, the only redirect the sandbox app allows."""
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname or "") in {"localhost", "127.0.0.1", "::1"}


class SignIns:
    """The pending and finished interactive sign-ins of the sandbox tenant.

    Args:
        clock: the sandbox clock (code lifetimes read it).
        rng: seeded randomness for ids and codes.
    """

    def __init__(self, clock: Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._by_id: dict[str, SignIn] = {}

    # -- starting -------------------------------------------------------------------------------

    def start_device(
        self, client_id: str, scope: str, *, lifetime: timedelta = DEVICE_CODE_LIFETIME
    ) -> SignIn:
        """Record a device code sign-in."""
        with self._lock:
            user_code = self._text(9, _USER_CODE_ALPHABET)
            sign_in = SignIn(
                id=self._text(12, string.ascii_lowercase + string.digits),
                kind="device_code",
                client_id=client_id,
                scope=scope,
                expires_at=self._clock.now() + lifetime,
                user_code=user_code,
                device_code="DAQABAAEAAAD" + self._text(120, _CODE_ALPHABET),
            )
            self._by_id[sign_in.id] = sign_in
            return sign_in

    def start_authorization(
        self,
        client_id: str,
        scope: str,
        *,
        redirect_uri: str,
        code_challenge: str,
        oauth_state: str | None,
        form_post: bool = False,
        nonce: str | None = None,
        lifetime: timedelta = AUTHORIZATION_CODE_LIFETIME,
    ) -> SignIn:
        """Record an authorization code sign-in (the browser reached the authorize page)."""
        with self._lock:
            sign_in = SignIn(
                id=self._text(12, string.ascii_lowercase + string.digits),
                kind="authorization_code",
                client_id=client_id,
                scope=scope,
                expires_at=self._clock.now() + lifetime,
                redirect_uri=redirect_uri,
                code_challenge=code_challenge,
                oauth_state=oauth_state,
                form_post=form_post,
                nonce=nonce,
            )
            self._by_id[sign_in.id] = sign_in
            return sign_in

    # -- the user's part (the control API) ------------------------------------------------------

    def listing(self) -> list[dict[str, Any]]:
        """Every sign-in, oldest first, as the control API shows them."""
        with self._lock:
            self._expire_due()
            return [s.public() for s in self._by_id.values()]

    def approve(self, ref: str, *, mfa: bool, home_tenant: str | None = None) -> SignIn:
        """The user signs in (with MFA or not) and consents; returns the updated sign-in.

        `home_tenant` plays a user of another tenant (a guest, or a multi-tenant app's user).
        """
        with self._lock:
            sign_in = self._pending(ref)
            code = (
                "1.AQ" + self._text(160, _CODE_ALPHABET)
                if sign_in.kind == "authorization_code"
                else None
            )
            updated = replace(
                sign_in, state="approved", mfa=mfa, code=code, home_tenant=home_tenant
            )
            if code is not None:
                # The code's own ten minutes start when it is issued.
                updated = replace(
                    updated, expires_at=self._clock.now() + AUTHORIZATION_CODE_LIFETIME
                )
            self._by_id[sign_in.id] = updated
            return updated

    def deny(self, ref: str) -> SignIn:
        """The user declines the sign-in."""
        with self._lock:
            sign_in = replace(self._pending(ref), state="denied")
            self._by_id[sign_in.id] = sign_in
            return sign_in

    def expire(self, ref: str) -> SignIn:
        """The sign-in's code runs out before the user acts (or before it is redeemed)."""
        with self._lock:
            sign_in = self._find(ref)
            if sign_in.state not in ("pending", "approved"):
                raise SignInControlError(
                    409, f"sign-in {sign_in.id} is {sign_in.state}; only a live one can expire"
                )
            expired = replace(sign_in, state="expired", expires_at=self._clock.now())
            self._by_id[sign_in.id] = expired
            return expired

    @staticmethod
    def redirect(sign_in: SignIn) -> dict[str, Any]:
        """What the browser does after an approval or a denial.

        `{"method": "GET", "url": <redirect_uri?params>}`, or with `response_mode=form_post`
        `{"method": "POST", "url": <redirect_uri>, "form": {params}}`.
        """
        assert sign_in.redirect_uri is not None
        params = SignIns._redirect_params(sign_in)
        if sign_in.form_post:
            return {"method": "POST", "url": sign_in.redirect_uri, "form": params}
        separator = "&" if "?" in sign_in.redirect_uri else "?"
        return {"method": "GET", "url": f"{sign_in.redirect_uri}{separator}{urlencode(params)}"}

    @staticmethod
    def _redirect_params(sign_in: SignIn) -> dict[str, str]:
        params: dict[str, str] = {}
        if sign_in.state == "approved" and sign_in.code is not None:
            params["code"] = sign_in.code
        else:
            params["error"] = "access_denied"
            params["error_description"] = "AADSTS65004: User declined to consent to access the app."
        if sign_in.oauth_state is not None:
            params["state"] = sign_in.oauth_state
        params["session_state"] = sign_in.id
        return params

    # -- the client's part (the token endpoint) -------------------------------------------------

    def redeem_device_code(self, device_code: str, client_id: str) -> SignIn:
        """The sign-in a device code grant redeems; raises the pending/declined/expired errors."""
        with self._lock:
            self._expire_due()
            sign_in = next(
                (
                    s
                    for s in self._by_id.values()
                    if s.device_code is not None
                    and hmac.compare_digest(s.device_code.encode(), device_code.encode())
                ),
                None,
            )
            if sign_in is None or sign_in.client_id != client_id:
                raise TokenEndpointError(
                    400,
                    "invalid_grant",
                    70000,
                    "The provided value for the input parameter 'device_code' is not valid.",
                )
            if sign_in.state == "pending":
                raise TokenEndpointError(
                    400,
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                )
            if sign_in.state == "denied":
                raise TokenEndpointError(
                    400,
                    "authorization_declined",
                    70000,
                    "The user declined the sign-in request.",
                )
            if sign_in.state == "expired":
                raise TokenEndpointError(
                    400,
                    "expired_token",
                    70019,
                    "Verification code expired. Start a new sign-in.",
                )
            if sign_in.state == "redeemed":
                raise TokenEndpointError(
                    400,
                    "invalid_grant",
                    54005,
                    "The device code was already redeemed. Start a new sign-in.",
                )
            redeemed = replace(sign_in, state="redeemed")
            self._by_id[sign_in.id] = redeemed
            return redeemed

    def redeem_code(
        self, code: str, *, client_id: str, redirect_uri: str | None, verifier: str | None
    ) -> SignIn:
        """The sign-in an authorization code grant redeems, after the PKCE and redirect checks."""
        with self._lock:
            self._expire_due()
            sign_in = next(
                (
                    s
                    for s in self._by_id.values()
                    if s.code is not None and hmac.compare_digest(s.code.encode(), code.encode())
                ),
                None,
            )
            if sign_in is None or sign_in.client_id != client_id:
                raise TokenEndpointError(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid (the authorization code "
                    "is unknown).",
                )
            if sign_in.state == "redeemed":
                raise TokenEndpointError(
                    400,
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new "
                    "valid code or use an existing refresh token.",
                )
            if sign_in.state == "expired":
                raise TokenEndpointError(
                    400,
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to "
                    "inactivity. Send a new interactive authorization request for this user "
                    "and resource.",
                )
            if redirect_uri != sign_in.redirect_uri:
                raise TokenEndpointError(
                    400,
                    "invalid_grant",
                    50011,
                    "The redirect URI specified in the request does not match the redirect "
                    "URI of the authorization request.",
                )
            if not verifier or not hmac.compare_digest(
                pkce_challenge(verifier).encode(), (sign_in.code_challenge or "").encode()
            ):
                raise TokenEndpointError(
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
            redeemed = replace(sign_in, state="redeemed")
            self._by_id[sign_in.id] = redeemed
            return redeemed

    # -- helpers --------------------------------------------------------------------------------

    def _text(self, length: int, alphabet: str) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(length))

    def _expire_due(self) -> None:
        now = self._clock.now()
        for key, sign_in in list(self._by_id.items()):
            if sign_in.state in ("pending", "approved") and sign_in.expires_at <= now:
                self._by_id[key] = replace(sign_in, state="expired")

    def _find(self, ref: str) -> SignIn:
        self._expire_due()
        sign_in = self._by_id.get(ref) or next(
            (
                s
                for s in self._by_id.values()
                if s.user_code is not None and s.user_code.upper() == ref.upper()
            ),
            None,
        )
        if sign_in is None:
            raise SignInControlError(
                404, f"no sign-in {ref!r}: GET /control/identity/sign-ins lists them"
            )
        return sign_in

    def _pending(self, ref: str) -> SignIn:
        sign_in = self._find(ref)
        if sign_in.state != "pending":
            raise SignInControlError(
                409, f"sign-in {sign_in.id} is {sign_in.state}, not waiting for the user"
            )
        return sign_in


__all__ = [
    "DEVICE_CODE_GRANT",
    "DEVICE_CODE_INTERVAL",
    "DEVICE_CODE_LIFETIME",
    "SignIn",
    "SignInControlError",
    "SignIns",
    "TokenEndpointError",
    "is_loopback_redirect",
    "pkce_challenge",
]
