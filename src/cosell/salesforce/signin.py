"""Interactive sign-in to Salesforce, for `cosell connect salesforce`.

Two OAuth 2.0 flows against the login host (`https://login.salesforce.com` for production,
`https://test.salesforce.com` for sandbox orgs, or the org's My Domain URL); both end with a
refresh token that cosell stores (the `refresh_token` auth):

- `sign_in_web_server`: the web-server flow with PKCE (RFC 7636, S256). The browser goes to
  `/services/oauth2/authorize?response_type=code&client_id=&redirect_uri=&code_challenge=
  &state=`; Salesforce sends it back to our loopback listener (`LoopbackRedirect`) with
  `code` and `state`; the code is redeemed at `/services/oauth2/token` (`grant_type=
  authorization_code`, with `code_verifier`, and the consumer secret when one is configured).
- `sign_in_device`: the device flow. `POST /services/oauth2/token` with
  `response_type=device_code` answers a user code and a verification URL; we poll with
  `grant_type=device` every `interval` seconds (on the injected clock) while the answer is
  `authorization_pending`, bounded by `wait_seconds`.

The external client app (or connected app) must have "Enable Authorization Code and
Credentials Flow" or "Enable Device Flow", the callback URL `http://127.0.0.1` (any port
Salesforce matches as given: register the port you pass with `--port`), and the scopes `api`
and `refresh_token`.

Errors are `SignInError` (terminal) or the client's `TransportError`; no message carries a
token or a secret.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from cosell.clock import Clock
from cosell.loopback import LoopbackRedirect
from cosell.salesforce.auth import TOKEN_PATH, Token, request_token
from cosell.salesforce.errors import AuthenticationError, TerminalError, TransportError

Grant = Literal["web_server", "device"]
SCOPES = "api refresh_token"
# A browser sign-in takes a minute or two; five minutes bounds a forgotten one.
DEFAULT_BROWSER_WAIT = 300.0
# Salesforce's device codes last about ten minutes; waiting as long lets a user finish.
DEFAULT_DEVICE_WAIT = 600.0
_SLOW_DOWN_STEP = 5  # RFC 8628 §3.5


class SignInError(TerminalError):
    """The sign-in did not give a refresh token; the message says what to do."""


@dataclass(frozen=True)
class SalesforceSignIn:
    """What an interactive sign-in gave.

    Attributes:
        grant: `web_server` or `device`.
        token: the access token and where to use it.
        refresh_token: the refresh token to store (never shown).
    """

    grant: Grant
    token: Token
    refresh_token: str = field(repr=False)


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43..128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _result(grant: Grant, token: Token) -> SalesforceSignIn:
    if not token.refresh_token:
        raise SignInError(
            "Salesforce returned no refresh token: add the 'Perform requests at any time "
            "(refresh_token, offline_access)' scope to the app's OAuth settings, then sign in "
            "again"
        )
    return SalesforceSignIn(grant=grant, token=token, refresh_token=token.refresh_token)


def _token_url(login_url: str) -> str:
    return login_url.rstrip("/") + TOKEN_PATH


async def sign_in_web_server(
    http: httpx.AsyncClient,
    *,
    login_url: str,
    consumer_key: str,
    consumer_secret: str | None,
    clock: Clock,
    open_url: Callable[[str], bool],
    show: Callable[[str], None],
    port: int = 0,
    wait_seconds: float = DEFAULT_BROWSER_WAIT,
) -> SalesforceSignIn:
    """Sign in in a browser: the web-server flow with PKCE on a loopback redirect.

    Raises:
        SignInError: denied, timed out, a foreign redirect, or refused by the token endpoint.
        TransportError: the login host could not be reached.
    """
    verifier, challenge = _pkce_pair()
    state = secrets.token_urlsafe(24)
    async with LoopbackRedirect(port) as redirect:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": consumer_key,
                "redirect_uri": redirect.redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": state,
                "scope": SCOPES,
            }
        )
        url = f"{login_url.rstrip('/')}/services/oauth2/authorize?{query}"
        if open_url(url):
            show(f"A browser window is open to sign in. If it is not, open this URL:\n{url}")
        else:
            show(f"Open this URL in a browser on this machine to sign in:\n{url}")
        try:
            params = await redirect.wait(wait_seconds)
        except TimeoutError as exc:
            raise SignInError(
                f"no sign-in came back within {int(wait_seconds)} seconds: run cosell connect "
                "salesforce again (or use --device-code on a machine without a browser)"
            ) from exc
    if "error" in params:
        raise SignInError(
            f"the sign-in was not completed ({params['error']}: "
            f"{params.get('error_description', 'no description')}): run cosell connect "
            "salesforce again and allow access"
        )
    if not secrets.compare_digest(params.get("state", ""), state):
        raise SignInError(
            "the redirect did not belong to this sign-in (its state did not match): run cosell "
            "connect salesforce again"
        )
    form = {
        "grant_type": "authorization_code",
        "code": params.get("code", ""),
        "client_id": consumer_key,
        "redirect_uri": redirect.redirect_uri,
        "code_verifier": verifier,
    }
    if consumer_secret:
        form["client_secret"] = consumer_secret
    token = await _redeem(http, login_url, form, "web server flow", clock)
    return _result("web_server", token)


async def sign_in_device(
    http: httpx.AsyncClient,
    *,
    login_url: str,
    consumer_key: str,
    clock: Clock,
    show: Callable[[str], None],
    wait_seconds: float = DEFAULT_DEVICE_WAIT,
) -> SalesforceSignIn:
    """Sign in with the device flow: show the code and URL, then poll until the user acts.

    Raises:
        SignInError: denied, expired, timed out, or refused.
        TransportError: the login host could not be reached.
    """
    start = await _post(
        http,
        _token_url(login_url),
        {"response_type": "device_code", "client_id": consumer_key, "scope": SCOPES},
    )
    body = _json(start)
    if start.status_code != 200 or "device_code" not in body:
        raise SignInError(
            f"Salesforce refused to start the device flow ({_error_text(start, body)}): enable "
            "the device flow on the external client app and check salesforce.consumer_key and "
            "login_url"
        )
    show(
        f"To sign in, open {body.get('verification_uri')} on any device and enter the code "
        f"{body.get('user_code')}."
    )
    interval = max(1, int(body.get("interval") or 5))
    deadline = clock.monotonic() + wait_seconds
    form = {"grant_type": "device", "client_id": consumer_key, "code": str(body["device_code"])}
    while True:
        try:
            token = await request_token(
                http, _token_url(login_url), form, flow="device flow", clock=clock
            )
        except AuthenticationError as exc:
            error = exc.error_code or ""
            if error == "access_denied":
                raise SignInError(
                    "the sign-in was denied: run cosell connect salesforce --device-code again "
                    "and allow access"
                ) from exc
            if error not in ("authorization_pending", "slow_down"):
                raise SignInError(
                    f"the device sign-in failed ({exc}): if the code expired, run cosell "
                    "connect salesforce --device-code again and enter the new code"
                ) from exc
            if error == "slow_down":
                interval += _SLOW_DOWN_STEP
            if clock.monotonic() + interval > deadline:
                raise SignInError(
                    f"no sign-in within {int(wait_seconds)} seconds: run cosell connect "
                    "salesforce --device-code again and enter the code it shows"
                ) from exc
            await clock.sleep(interval)
            continue
        return _result("device", token)


async def signed_in_user(http: httpx.AsyncClient, sign_in: SalesforceSignIn) -> str:
    """The username the new token acts as (one call to the identity URL).

    Raises:
        SignInError: the identity URL refused the token or gave no username.
        TransportError: it could not be reached.
    """
    url = sign_in.token.id_url
    if not url:
        raise SignInError("Salesforce returned no identity URL with the token: sign in again")
    headers = {
        "Authorization": f"Bearer {sign_in.token.access_token}",
        "Accept": "application/json",
    }
    try:
        response = await http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise TransportError(
            f"could not reach {httpx.URL(url).host}: {type(exc).__name__}; check the network"
        ) from exc
    username = _json(response).get("username")
    if response.status_code != 200 or not isinstance(username, str):
        raise SignInError(
            f"the new token was refused by the identity URL (HTTP {response.status_code}): "
            "check that the app's scopes include api, then sign in again"
        )
    return username


async def _redeem(
    http: httpx.AsyncClient, login_url: str, form: dict[str, str], flow: str, clock: Clock
) -> Token:
    try:
        return await request_token(http, _token_url(login_url), form, flow=flow, clock=clock)
    except AuthenticationError as exc:
        raise SignInError(
            f"{exc}: check salesforce.consumer_key and consumer_secret, and that the app's "
            "callback URL is http://127.0.0.1 (with the port passed to --port), then sign in "
            "again"
        ) from exc


async def _post(http: httpx.AsyncClient, url: str, form: dict[str, str]) -> httpx.Response:
    try:
        return await http.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TransportError(
            f"could not reach {httpx.URL(url).host}: {type(exc).__name__}; check "
            "salesforce.login_url and the network"
        ) from exc


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(response: httpx.Response, body: dict[str, Any]) -> str:
    if "error" in body:
        return f"{body['error']}: {body.get('error_description', '')}".strip()
    return f"HTTP {response.status_code}"


__all__ = [
    "DEFAULT_BROWSER_WAIT",
    "DEFAULT_DEVICE_WAIT",
    "SalesforceSignIn",
    "SignInError",
    "sign_in_device",
    "sign_in_web_server",
    "signed_in_user",
]
