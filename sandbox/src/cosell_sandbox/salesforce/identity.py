"""Who may call the Salesforce sandbox: OAuth token endpoint, SOAP login, sessions (spec §1).

The sandbox emulates one org with one integration user and one connected app. Its credentials
(password, security token, consumer key and secret, a refresh token) are drawn from the seeded
`rng` at construction, so a seed reproduces them; its JWT key pair lives in `key_dir` and is
reused across restarts (`identity_keys`).

Logging in - by the JWT bearer, client credentials, refresh token or username-password grants
of `POST /services/oauth2/token`, or by the SOAP partner `login()` at
`POST /services/Soap/u/{version}` - issues an opaque access token `00D<org15>!<random>`. Every
token has a fixed lifetime on the injected clock (`session_lifetime_seconds`, Salesforce's
default two hours). `authenticate` resolves the `Authorization: Bearer|OAuth <token>` header of
a data call to its `SfSession` or raises the 401 `INVALID_SESSION_ID` error; a token is invalid
once it expires, is revoked (`POST /services/oauth2/revoke`), or `expire_sessions()` (the
control API's hook) has run. Revoking a refresh token also revokes the access tokens it minted.

Token-endpoint failures are HTTP 400 `{"error", "error_description"}` with the descriptions
Salesforce uses (spec §1.4): `invalid_client_id` for an unknown consumer key, `invalid_client`
for a wrong secret, `invalid_grant` for bad user credentials or a bad assertion,
`unsupported_grant_type` for anything else. SOAP failures are `soapenv:Fault`s (`soap_login`).

Interactive sign-ins (for `cosell connect salesforce`), with the control API playing the user
(`GET /control/identity/sign-ins`, `POST /control/identity/sign-ins/{id or user code}/approve|
deny|expire`), through the state machine the Partner Center sandbox uses (`sandbox/signins.py`):
- the web-server flow with PKCE: `GET /services/oauth2/authorize?response_type=code&client_id=
  &redirect_uri=&code_challenge=&state=` (a loopback redirect), then `grant_type=
  authorization_code` with `code`, `redirect_uri` and `code_verifier`;
- the device flow: `POST /services/oauth2/token` with `response_type=device_code&client_id=`
  answers `device_code`, `user_code`, `verification_uri` and `interval`; polling with
  `grant_type=device&client_id=&code=<device_code>` answers `authorization_pending` until the
  user acts.
Both answer a new refresh token (revocable with `/services/oauth2/revoke`). `PUT
/control/identity/certificate` (a PEM certificate) replaces the connected app's certificate, as
an admin uploading the one `cosell salesforce keys` made; JWT assertions are then checked
against it.

Assumptions (Salesforce documents the flows, not every error): the device flow's errors are
`authorization_pending` ("authorization pending"), `access_denied` ("end-user denied
authorization") and `invalid_grant` ("expired authorization code") once the code expired; a
device code lives 10 minutes and an authorization code 15; `code_challenge_method` is S256
when absent (Salesforce accepts only S256); the consumer secret is checked when sent and not
required with PKCE.

Invariants: the session table is guarded by one lock (data routes may call `authenticate` from
worker threads); secrets are never logged; `snapshot()` returns plain JSON values, and
`restore(snapshot())` gives an identity that accepts exactly the same tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import random
import secrets
import string
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cosell.clock import Clock
from cosell_sandbox.salesforce import errors
from cosell_sandbox.salesforce.identity_keys import JwtKeyPair, load_or_create_key_pair
from cosell_sandbox.salesforce.rest import MAX_VERSION, MIN_VERSION, supported_versions
from cosell_sandbox.salesforce.soap_login import (
    XML_CONTENT_TYPE,
    LoginResult,
    SoapFaultError,
    invalid_login,
    login_response,
    parse_login_request,
)
from cosell_sandbox.signins import (
    SignInControlError,
    SignIns,
    TokenEndpointError,
    is_loopback_redirect,
)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
STANDARD_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
SCOPE = "api"
# Device codes and authorization codes: short-lived and single-use (assumed lifetimes).
_DEVICE_CODE_LIFETIME = timedelta(minutes=10)
_AUTHORIZATION_CODE_LIFETIME = timedelta(minutes=15)
_DEVICE_INTERVAL = 5
_EXPIRED_CODE = ("invalid_grant", "expired authorization code")
# The shared sign-in state machine's outcomes, in Salesforce's words.
_SALESFORCE_ERRORS = {
    "authorization_pending": ("authorization_pending", "authorization pending"),
    "authorization_declined": ("access_denied", "end-user denied authorization"),
    "expired_token": _EXPIRED_CODE,
}

_ALNUM = string.ascii_letters + string.digits
# Password: 16 characters is comfortably above Salesforce's default 8-character minimum.
_PASSWORD_LENGTH = 16
# Security tokens Salesforce emails are 24-25 characters; 24 here.
_SECURITY_TOKEN_LENGTH = 24
# Consumer keys are "3MVG9" followed by 80 characters of letters, digits, dots and underscores.
_CONSUMER_KEY_TAIL = 80
# Consumer secrets of current connected apps are 64 uppercase hex digits.
_CONSUMER_SECRET_HEX = 64
# Refresh tokens start with "5Aep861" and run to 87 characters in total.
_REFRESH_TOKEN_TAIL = 80
# The random part of an access token; real ones carry about 96 characters after the "!".
_ACCESS_TOKEN_RANDOM = 96


@dataclass(frozen=True)
class SfSession:
    """The caller of a data request, as its access token says."""

    token: str
    user_id: str
    org_id: str
    username: str


@dataclass(frozen=True)
class _Issued:
    session: SfSession
    expires_at: datetime
    refresh_token: str | None  # the refresh token this access token came from, if any


@dataclass(frozen=True)
class _Credentials:
    password: str
    security_token: str
    consumer_key: str
    consumer_secret: str
    refresh_token: str


class _OAuthError(Exception):
    """A token-endpoint failure: HTTP 400 `{"error", "error_description"}`."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=400,
            media_type=errors.JSON_UTF8,
        )


def _bad_client_id() -> _OAuthError:
    return _OAuthError("invalid_client_id", "client identifier invalid")


def _bad_client_secret() -> _OAuthError:
    return _OAuthError("invalid_client", "invalid client credentials")


def _invalid_assertion() -> _OAuthError:
    return _OAuthError("invalid_grant", "invalid assertion")


class SalesforceIdentity:
    """The sandbox org's users, connected app and sessions, and the routes that log in.

    Args:
        clock: expiry of sessions and JWT assertions is read from it.
        base_url: the sandbox's own URL (`instance_url`, SOAP `serverUrl`, identity URLs).
        org_id: the org's 18-character id (`00D…`).
        user_id: the integration user's 18-character id (`005…`).
        username: the integration user's username.
        rng: the seeded generator the credentials are drawn from.
        key_dir: where the JWT private key and certificate are kept (created if missing).
        session_lifetime_seconds: how long an access token stays valid.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        base_url: str,
        org_id: str,
        user_id: str,
        username: str,
        rng: random.Random,
        key_dir: Path,
        session_lifetime_seconds: float = 7200.0,
    ) -> None:
        if not org_id.startswith("00D") or len(org_id) not in (15, 18):
            raise ValueError(
                f"org_id must be a 15- or 18-character id starting 00D, not {org_id!r}"
            )
        if not user_id.startswith("005") or len(user_id) not in (15, 18):
            raise ValueError(
                f"user_id must be a 15- or 18-character id starting 005, not {user_id!r}"
            )
        if session_lifetime_seconds <= 0:
            raise ValueError("session_lifetime_seconds must be positive")
        self._clock = clock
        self._base_url = base_url.rstrip("/")
        self._org_id = org_id
        self._user_id = user_id
        self._username = username
        self._lifetime = timedelta(seconds=session_lifetime_seconds)
        self._credentials = _Credentials(
            password="".join(rng.choice(_ALNUM) for _ in range(_PASSWORD_LENGTH)),
            security_token="".join(rng.choice(_ALNUM) for _ in range(_SECURITY_TOKEN_LENGTH)),
            consumer_key="3MVG9"
            + "".join(rng.choice(_ALNUM + "._") for _ in range(_CONSUMER_KEY_TAIL)),
            consumer_secret="".join(
                rng.choice("0123456789ABCDEF") for _ in range(_CONSUMER_SECRET_HEX)
            ),
            refresh_token="5Aep861"
            + "".join(rng.choice(_ALNUM + ".") for _ in range(_REFRESH_TOKEN_TAIL)),
        )
        self._keys: JwtKeyPair = load_or_create_key_pair(key_dir, now=clock.now())
        # An uploaded certificate's key (`PUT /control/identity/certificate`) replaces it.
        self._jwt_public_key: rsa.RSAPublicKey | None = None
        self._lock = threading.Lock()
        self._sessions: dict[str, _Issued] = {}
        self._refresh_tokens: set[str] = {self._credentials.refresh_token}
        self.sign_ins = SignIns(clock, rng)
        self.router = APIRouter()
        self.router.add_api_route("/services/oauth2/authorize", self._authorize, methods=["GET"])
        self.router.add_api_route(
            "/control/identity/sign-ins", self._control_sign_ins, methods=["GET"]
        )
        self.router.add_api_route(
            "/control/identity/sign-ins/{ref}/{action}", self._control_sign_in, methods=["POST"]
        )
        self.router.add_api_route(
            "/control/identity/certificate", self._control_certificate, methods=["PUT"]
        )
        self.router.add_api_route("/services/oauth2/token", self._token, methods=["POST"])
        self.router.add_api_route("/services/oauth2/revoke", self._revoke, methods=["POST"])
        self.router.add_api_route("/services/Soap/u/{version}", self._soap_login, methods=["POST"])
        self.router.add_api_route("/id/{org_id}/{user_id}", self._identity, methods=["GET"])

    # ----- public API -------------------------------------------------------------------------

    def authenticate(self, request: Request) -> SfSession:
        """The session a data request runs as.

        Reads `Authorization: Bearer <token>` (or the older `OAuth <token>`).

        Raises:
            SalesforceSandboxError: 401 `INVALID_SESSION_ID` when the header is missing or the
                token is unknown, expired or revoked.
        """
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "oauth") or not token:
            raise errors.session_invalid()
        return self.session_for(token)

    def session_for(self, token: str) -> SfSession:
        """The live session of an access token (a SOAP `SessionHeader`'s sessionId too).

        Raises:
            SalesforceSandboxError: 401 `INVALID_SESSION_ID` when the token is unknown,
                expired or revoked.
        """
        now = self._clock.now()
        with self._lock:
            issued = self._sessions.get(token)
            if issued is None:
                raise errors.session_invalid()
            if issued.expires_at <= now:
                del self._sessions[token]
                raise errors.session_invalid()
            return issued.session

    def expire_sessions(self) -> None:
        """Invalidate every access token issued so far (refresh tokens stay valid)."""
        with self._lock:
            self._sessions.clear()

    def info(self) -> dict[str, str]:
        """Working credentials and URLs, for the sandbox's start-up line and the control API."""
        creds = self._credentials
        return {
            "username": self._username,
            "password": creds.password,
            "security_token": creds.security_token,
            "consumer_key": creds.consumer_key,
            "consumer_secret": creds.consumer_secret,
            "private_key_path": str(self._keys.private_key_path),
            "certificate_path": str(self._keys.certificate_path),
            "login_url": self._base_url,
            "token_url": f"{self._base_url}/services/oauth2/token",
            "refresh_token": creds.refresh_token,
        }

    def snapshot(self) -> dict[str, Any]:
        """The credentials, valid refresh tokens and live sessions, as JSON values."""
        now = self._clock.now()
        creds = self._credentials
        with self._lock:
            sessions = [
                {
                    "token": issued.session.token,
                    "expires_at": issued.expires_at.isoformat(),
                    "refresh_token": issued.refresh_token,
                }
                for issued in self._sessions.values()
                if issued.expires_at > now
            ]
            refresh_tokens = sorted(self._refresh_tokens)
        return {
            "credentials": {
                "password": creds.password,
                "security_token": creds.security_token,
                "consumer_key": creds.consumer_key,
                "consumer_secret": creds.consumer_secret,
                "refresh_token": creds.refresh_token,
            },
            "refresh_tokens": refresh_tokens,
            "sessions": sessions,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace credentials, refresh tokens and sessions with those of a `snapshot()`.

        Raises:
            ValueError: `data` is not a snapshot of this class; nothing is changed then.
        """
        try:
            credentials, refresh_tokens, sessions = self._parse_snapshot(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a Salesforce identity snapshot: {exc!r}") from exc
        with self._lock:
            self._credentials = credentials
            self._refresh_tokens = refresh_tokens
            self._sessions = sessions

    def _parse_snapshot(
        self, data: dict[str, Any]
    ) -> tuple[_Credentials, set[str], dict[str, _Issued]]:
        raw = data["credentials"]
        credentials = _Credentials(
            **{name: _text(raw[name], name) for name in _Credentials.__dataclass_fields__}
        )
        refresh_tokens = {_text(t, "refresh_tokens[]") for t in data["refresh_tokens"]}
        sessions: dict[str, _Issued] = {}
        for item in data["sessions"]:
            token = _text(item["token"], "sessions[].token")
            expires_at = datetime.fromisoformat(_text(item["expires_at"], "expires_at"))
            if expires_at.tzinfo is None:
                raise ValueError("sessions[].expires_at has no timezone")
            parent = item["refresh_token"]
            sessions[token] = _Issued(
                session=self._session(token),
                expires_at=expires_at,
                refresh_token=None if parent is None else _text(parent, "refresh_token"),
            )
        return credentials, refresh_tokens, sessions

    # ----- issuing --------------------------------------------------------------------------

    def _session(self, token: str) -> SfSession:
        return SfSession(
            token=token, user_id=self._user_id, org_id=self._org_id, username=self._username
        )

    def _issue(self, *, refresh_token: str | None = None) -> tuple[SfSession, datetime]:
        now = self._clock.now()
        random_part = "".join(secrets.choice(_ALNUM + ".") for _ in range(_ACCESS_TOKEN_RANDOM))
        token = f"{self._org_id[:15]}!AQ{random_part}"
        session = self._session(token)
        with self._lock:
            # Drop what has expired so the table does not grow with every login.
            for stale in [t for t, i in self._sessions.items() if i.expires_at <= now]:
                del self._sessions[stale]
            self._sessions[token] = _Issued(session, now + self._lifetime, refresh_token)
        return session, now

    def _token_body(self, session: SfSession, issued_at: datetime) -> dict[str, str]:
        # No grant here returns a refresh token: JWT and client credentials never do, the
        # refresh grant does not rotate, and the password grant does not hand one out.
        identity_url = f"{self._base_url}/id/{self._org_id}/{self._user_id}"
        issued_ms = str(int(issued_at.timestamp() * 1000))
        digest = hmac.new(
            self._credentials.consumer_secret.encode(),
            (identity_url + issued_ms).encode(),
            hashlib.sha256,
        ).digest()
        return {
            "access_token": session.token,
            "signature": base64.b64encode(digest).decode(),
            "scope": SCOPE,
            "instance_url": self._base_url,
            "id": identity_url,
            "token_type": "Bearer",
            "issued_at": issued_ms,
        }

    # ----- OAuth 2.0 token endpoint -------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        try:
            form = _form(request.headers.get("content-type", ""), await request.body())
            if form.get("response_type") == "device_code" and "grant_type" not in form:
                return JSONResponse(self._start_device(form), media_type=errors.JSON_UTF8)
            session, issued_at = self._grant(form, request)
        except _OAuthError as exc:
            return exc.response()
        body = self._token_body(session, issued_at)
        if form.get("grant_type") in ("authorization_code", "device"):
            body["refresh_token"] = self._new_refresh_token()
        return JSONResponse(
            body,
            media_type=errors.JSON_UTF8,
            headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"},
        )

    def _grant(self, form: dict[str, str], request: Request) -> tuple[SfSession, datetime]:
        grant = form.get("grant_type", "")
        if grant == JWT_BEARER:
            self._jwt_bearer(form, request)
            return self._issue()
        if grant == "client_credentials":
            self._check_client(form, request)
            return self._issue()
        if grant == "refresh_token":
            return self._issue(refresh_token=self._check_refresh(form, request))
        if grant == "password":
            self._check_password_grant(form, request)
            return self._issue()
        if grant in ("authorization_code", "device"):
            self._redeem_sign_in(grant, form, request)
            return self._issue()
        raise _OAuthError("unsupported_grant_type", "grant type not supported")

    # ----- interactive sign-ins ----------------------------------------------------------------

    def _check_public_client(self, form: dict[str, str], request: Request) -> str:
        """The consumer key; a secret, when sent, must match (PKCE needs none)."""
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if client_id is None:
            client_id, secret = _basic_credentials(request)
        if client_id is None or not hmac.compare_digest(
            client_id.encode(), self._credentials.consumer_key.encode()
        ):
            raise _bad_client_id()
        if secret is not None and not hmac.compare_digest(
            secret.encode(), self._credentials.consumer_secret.encode()
        ):
            raise _bad_client_secret()
        return client_id

    def _start_device(self, form: dict[str, str]) -> dict[str, Any]:
        client_id = form.get("client_id") or ""
        if not hmac.compare_digest(client_id.encode(), self._credentials.consumer_key.encode()):
            raise _bad_client_id()
        sign_in = self.sign_ins.start_device(
            client_id, form.get("scope") or "api refresh_token", lifetime=_DEVICE_CODE_LIFETIME
        )
        return {
            "device_code": sign_in.device_code,
            "user_code": sign_in.user_code,
            "verification_uri": f"{self._base_url}/setup/connect",
            "interval": _DEVICE_INTERVAL,
        }

    def _redeem_sign_in(self, grant: str, form: dict[str, str], request: Request) -> None:
        client_id = self._check_public_client(form, request)
        code = form.get("code")
        if not code:
            raise _OAuthError("invalid_request", "code is required for this grant type")
        try:
            if grant == "device":
                self.sign_ins.redeem_device_code(code, client_id)
            else:
                self.sign_ins.redeem_code(
                    code,
                    client_id=client_id,
                    redirect_uri=form.get("redirect_uri"),
                    verifier=form.get("code_verifier"),
                )
        except TokenEndpointError as exc:
            raise _OAuthError(*_SALESFORCE_ERRORS.get(exc.error, _EXPIRED_CODE)) from exc

    def _new_refresh_token(self) -> str:
        token = "5Aep861" + "".join(
            secrets.choice(_ALNUM + ".") for _ in range(_REFRESH_TOKEN_TAIL)
        )
        with self._lock:
            self._refresh_tokens.add(token)
        return token

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        problem = None
        if params.get("response_type") != "code":
            problem = "unsupported_response_type: the sandbox supports response_type=code"
        elif not hmac.compare_digest(
            params.get("client_id", "").encode(), self._credentials.consumer_key.encode()
        ):
            problem = "invalid_client_id: client identifier invalid"
        elif not is_loopback_redirect(params.get("redirect_uri", "")):
            problem = "redirect_uri_mismatch: use a loopback callback URL (http://127.0.0.1:port)"
        elif not params.get("code_challenge") or params.get(
            "code_challenge_method", "S256"
        ) not in ("S256",):
            problem = "invalid_request: send code_challenge (S256) for PKCE"
        if problem is not None:
            return JSONResponse(
                {"error": problem.partition(":")[0], "error_description": problem},
                status_code=400,
                media_type=errors.JSON_UTF8,
            )
        sign_in = self.sign_ins.start_authorization(
            params["client_id"],
            params.get("scope") or "api refresh_token",
            redirect_uri=params["redirect_uri"],
            code_challenge=params["code_challenge"],
            oauth_state=params.get("state"),
            lifetime=_AUTHORIZATION_CODE_LIFETIME,
        )
        return HTMLResponse(
            "<!doctype html><title>Login | Salesforce sandbox</title>"
            f"<p>Sign-in <code>{sign_in.id}</code> waits for the user: POST "
            f"/control/identity/sign-ins/{sign_in.id}/approve (or deny, or expire).</p>",
            headers={"X-Sandbox-Sign-In": sign_in.id},
        )

    async def _control_sign_ins(self) -> dict[str, Any]:
        return {"value": self.sign_ins.listing()}

    async def _control_sign_in(self, ref: str, action: str) -> Response:
        try:
            if action == "approve":
                sign_in = self.sign_ins.approve(ref, mfa=True)
            elif action == "deny":
                sign_in = self.sign_ins.deny(ref)
            elif action == "expire":
                sign_in = self.sign_ins.expire(ref)
            else:
                return JSONResponse(
                    {"error": "the actions are approve, deny and expire"}, status_code=404
                )
        except SignInControlError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        answer = sign_in.public()
        if sign_in.kind == "authorization_code" and action != "expire":
            answer["redirect"] = self.sign_ins.redirect(sign_in)
        return JSONResponse(answer)

    async def _control_certificate(self, request: Request) -> Response:
        try:
            certificate = x509.load_pem_x509_certificate(await request.body())
        except ValueError:
            return JSONResponse(
                {"error": "send a PEM certificate (the one cosell salesforce keys wrote)"},
                status_code=400,
            )
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return JSONResponse({"error": "the certificate's key must be RSA"}, status_code=400)
        self._jwt_public_key = key
        return JSONResponse({"subject": certificate.subject.rfc4514_string()})

    def _check_client(self, form: dict[str, str], request: Request) -> None:
        # The connected app requires its secret for every grant that names the client
        # ("Require Secret for Refresh Token Flow" on, as it is by default).
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        if client_id is None:
            client_id, client_secret = _basic_credentials(request)
        if client_id is None or not hmac.compare_digest(
            client_id.encode(), self._credentials.consumer_key.encode()
        ):
            raise _bad_client_id()
        if client_secret is None or not hmac.compare_digest(
            client_secret.encode(), self._credentials.consumer_secret.encode()
        ):
            raise _bad_client_secret()

    def _check_refresh(self, form: dict[str, str], request: Request) -> str:
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise _OAuthError("invalid_request", "refresh_token is required for this grant type")
        self._check_client(form, request)
        with self._lock:
            known = refresh_token in self._refresh_tokens
        if not known:
            raise _OAuthError("invalid_grant", "expired access/refresh token")
        return refresh_token

    def _check_password_grant(self, form: dict[str, str], request: Request) -> None:
        self._check_client(form, request)
        if not self._password_ok(form.get("username", ""), form.get("password", "")):
            raise _OAuthError("invalid_grant", "authentication failure")

    def _password_ok(self, username: str, password: str) -> bool:
        expected = self._credentials.password + self._credentials.security_token
        return username.lower() == self._username.lower() and hmac.compare_digest(
            password.encode(), expected.encode()
        )

    def _jwt_bearer(self, form: dict[str, str], request: Request) -> None:
        assertion = form.get("assertion")
        if not assertion:
            raise _OAuthError("invalid_request", "assertion is required for the JWT bearer grant")
        try:
            claims = jwt.decode(
                assertion,
                self._jwt_public_key or self._keys.public_key,
                algorithms=["RS256"],
                # exp and nbf are checked below on the sandbox clock, not the machine's.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            raise _invalid_assertion() from exc
        iss, sub, aud = claims.get("iss"), claims.get("sub"), claims.get("aud")
        if not isinstance(iss, str) or not hmac.compare_digest(
            iss.encode(), self._credentials.consumer_key.encode()
        ):
            raise _bad_client_id()
        audiences = aud if isinstance(aud, list) else [aud]
        if not any(a in self._audiences(request) for a in audiences if isinstance(a, str)):
            raise _OAuthError("invalid_grant", "audience is invalid")
        now = self._clock.now().timestamp()
        exp = _numeric_date(claims.get("exp"))
        if exp is None:
            raise _invalid_assertion()
        if exp <= now:
            raise _OAuthError("invalid_grant", "expired authorization code")
        nbf = _numeric_date(claims.get("nbf"))
        if "nbf" in claims and (nbf is None or nbf > now):
            raise _invalid_assertion()
        if not isinstance(sub, str) or sub.lower() != self._username.lower():
            raise _OAuthError("invalid_grant", "user hasn't approved this consumer")

    def _audiences(self, request: Request) -> set[str]:
        accepted = {*STANDARD_AUDIENCES, self._base_url}
        original_host = request.headers.get("x-original-host")
        if original_host:
            accepted.add(f"https://{original_host}")
        return accepted

    # ----- revoke, SOAP login, identity -----------------------------------------------------

    async def _revoke(self, request: Request) -> Response:
        try:
            form = _form(request.headers.get("content-type", ""), await request.body())
        except _OAuthError as exc:
            return exc.response()
        token = form.get("token", "")
        with self._lock:
            if token in self._sessions:
                del self._sessions[token]
                return Response(status_code=200)
            if token in self._refresh_tokens:
                self._refresh_tokens.discard(token)
                for child in [t for t, i in self._sessions.items() if i.refresh_token == token]:
                    del self._sessions[child]
                return Response(status_code=200)
        return _OAuthError("unsupported_token_type", "this token type is not supported").response()

    async def _soap_login(self, version: str, request: Request) -> Response:
        return await self.soap_login(version, await request.body())

    async def soap_login(self, version: str, body: bytes) -> Response:
        """Answer a SOAP `login()` envelope: a `loginResponse`, or a fault (HTTP 500)."""
        try:
            check_soap_version(version)
            login = parse_login_request(body)
            if not self._password_ok(login.username, login.password):
                raise invalid_login()
        except SoapFaultError as fault:
            return Response(fault.xml(), status_code=500, media_type=XML_CONTENT_TYPE)
        session, _ = self._issue()
        result = LoginResult(
            base_url=self._base_url,
            version=version,
            org_id=self._org_id,
            user_id=self._user_id,
            username=self._username,
            session_id=session.token,
            session_seconds_valid=int(self._lifetime.total_seconds()),
        )
        return Response(login_response(result), status_code=200, media_type=XML_CONTENT_TYPE)

    async def _identity(self, org_id: str, user_id: str, request: Request) -> Response:
        session = self.authenticate(request)
        if not (_same_id(org_id, session.org_id) and _same_id(user_id, session.user_id)):
            raise errors.SalesforceSandboxError(
                404, "NOT_FOUND", "The requested resource does not exist"
            )
        base = self._base_url
        org, user = session.org_id, session.user_id
        return JSONResponse(
            {
                "id": f"{base}/id/{org}/{user}",
                "asserted_user": True,
                "user_id": user,
                "organization_id": org,
                "username": session.username,
                "nick_name": session.username.split("@", 1)[0],
                "display_name": "Integration User",
                "email": session.username,
                "email_verified": True,
                "active": True,
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_US",
                "utcOffset": 0,
                "urls": {
                    "enterprise": f"{base}/services/Soap/c/{{version}}/{org[:15]}",
                    "metadata": f"{base}/services/Soap/m/{{version}}/{org[:15]}",
                    "partner": f"{base}/services/Soap/u/{{version}}/{org[:15]}",
                    "rest": f"{base}/services/data/v{{version}}/",
                    "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
                    "search": f"{base}/services/data/v{{version}}/search/",
                    "query": f"{base}/services/data/v{{version}}/query/",
                    "recent": f"{base}/services/data/v{{version}}/recent/",
                    "profile": f"{base}/{user}",
                },
                "is_app_installed": True,
            },
            media_type=errors.JSON_UTF8,
        )


def check_soap_version(version: str) -> None:
    """Refuse a SOAP URL's API version the sandbox does not serve (`UNSUPPORTED_API_VERSION`)."""
    # SOAP login is served for the same versions as the REST API.
    if version not in supported_versions():
        raise SoapFaultError(
            f"Invalid Api version specified on URL: {version!r}; this sandbox serves "
            f"{MIN_VERSION}.0 to {MAX_VERSION}.0",
            exception_code="UNSUPPORTED_API_VERSION",
        )


def _form(content_type: str, body: bytes) -> dict[str, str]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if body and media_type != "application/x-www-form-urlencoded":
        raise _OAuthError(
            "invalid_request",
            f"send the parameters as application/x-www-form-urlencoded, not {media_type or 'an untyped body'}",
        )
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise _OAuthError("invalid_request", "the request body is not UTF-8") from exc
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise _OAuthError("invalid_request", f"parameter {repeated[0]} is repeated")
    return {name: values[0] for name, values in parsed.items()}


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, colon, client_secret = decoded.partition(":")
    return client_id, (client_secret if colon else None)


def _numeric_date(value: object) -> float | None:
    """A JWT NumericDate; simple-salesforce sends it as a numeric string (spec §1.6)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _same_id(given: str, own: str) -> bool:
    return given == own or (len(given) == 15 and given == own[:15])


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value
