"""Interactive sign-in to Partner Center (the secure application model's consent), through msal.

`cosell connect partner-center` runs one of two flows and gets a refresh token for the
Referrals API that was minted by a user who signed in with multi-factor authentication:

- `sign_in_with_device_code`: for a server without a browser. msal asks Entra ID for a device
  code; the user opens the verification URL on any device and types the code. We poll the
  token endpoint every `interval` seconds (on the injected clock) until the user approves,
  declines, the code expires, or `wait_seconds` passes.
- `sign_in_with_browser`: the authorization code flow with PKCE (msal makes the verifier and
  challenge) on a loopback redirect (`LoopbackRedirect`): the browser is opened where there is
  one, the URL is printed either way, and the code that comes back is redeemed with msal,
  which checks `state`.

Both return a `SignInResult`: the tokens and what the access token says about the sign-in
(`amr` includes `mfa` after a multi-factor sign-in; Partner Center refuses App+User calls
without it, spec §9). The token's claims are read without checking its signature: it came
straight from the token endpoint over TLS, and the Referrals API call that follows checks it.

The device code flow exists only on msal's public client (Entra requires "Allow public client
flows" on the app registration); the browser flow uses the confidential client when a secret
is configured. msal is synchronous: each call runs in a worker thread.

Errors: `SignInError` (a `TerminalError`), its message saying what happened and what to do.
No message contains a token or secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio.to_thread
import httpx
import jwt
import msal

from cosell.clock import Clock
from cosell.loopback import LoopbackRedirect
from cosell.partnercenter.auth import REFERRALS_SCOPE, AppCredentials
from cosell.partnercenter.errors import PartnerCenterTransportError, TerminalError

Grant = Literal["device_code", "authorization_code"]
# A device code lives 15 minutes at Entra; waiting as long lets a user finish on a phone.
DEFAULT_DEVICE_TIMEOUT = 900.0
# A browser sign-in with MFA takes a minute or two; five minutes bounds a forgotten one.
DEFAULT_BROWSER_TIMEOUT = 300.0
_DEVICE_PENDING = ("authorization_pending", "slow_down")
# RFC 8628 §3.5: on slow_down, add five seconds to the polling interval.
_SLOW_DOWN_STEP = 5
_TOKEN_TIMEOUT = 30.0


class SignInError(TerminalError):
    """The interactive sign-in did not give a usable token; the message says what to do."""


@dataclass(frozen=True)
class SignInResult:
    """What an interactive sign-in gave.

    Attributes:
        grant: `device_code` or `authorization_code`.
        access_token: a Referrals API access token.
        refresh_token: the refresh token to store.
        mfa: the access token's `amr` includes `mfa`.
        user: who signed in (`upn`, `preferred_username` or `unique_name`), when known.
    """

    grant: Grant
    access_token: str
    refresh_token: str
    mfa: bool
    user: str | None

    def __repr__(self) -> str:
        return f"SignInResult(grant={self.grant!r}, mfa={self.mfa}, user={self.user!r})"


def _client(credentials: AppCredentials, *, public: bool) -> Any:
    kwargs: dict[str, Any] = {"authority": credentials.authority, "token_cache": msal.TokenCache()}
    if credentials.http_client is not None:
        kwargs["http_client"] = credentials.http_client
        kwargs["instance_discovery"] = False
    else:
        kwargs["timeout"] = _TOKEN_TIMEOUT
    try:
        if public or credentials.client_secret is None:
            return msal.PublicClientApplication(credentials.client_id, **kwargs)
        return msal.ConfidentialClientApplication(
            credentials.client_id, client_credential=credentials.client_secret, **kwargs
        )
    except ValueError as exc:
        raise SignInError(
            f"the authority {credentials.authority} could not be used ({exc}): check "
            "partner_center.tenant_id and authority_host"
        ) from exc


async def _in_thread(call: Callable[[], Any], credentials: AppCredentials) -> Any:
    try:
        return await anyio.to_thread.run_sync(call)
    except (httpx.TransportError, OSError) as exc:
        raise PartnerCenterTransportError(
            f"Entra ID at {credentials.authority_host} could not be reached "
            f"({type(exc).__name__}): check the network and try again"
        ) from exc


def _advice(result: Mapping[str, Any]) -> str:
    error = str(result.get("error") or "unknown_error")
    codes = result.get("error_codes") or []
    description = str(result.get("error_description") or "").strip().splitlines()
    first = description[0] if description else "no description"
    if 65001 in codes or result.get("suberror") == "consent_required":
        what = (
            "the app registration lacks the delegated Partner Center permission, or no admin "
            "consented to it: in Entra ID > App registrations > API permissions add 'Microsoft "
            "Partner Center' (user_impersonation) and 'Microsoft Partner' as delegated "
            "permissions, grant admin consent, then run cosell connect partner-center again"
        )
    elif error in ("invalid_client", "unauthorized_client"):
        what = (
            "the app registration refused this sign-in: check partner_center.client_id, the "
            "client secret, and that 'Allow public client flows' is on for the device code "
            "sign-in (Authentication > Advanced settings)"
        )
    elif error == "invalid_grant":
        what = "the sign-in could not be completed: run cosell connect partner-center again"
    else:
        what = "check partner_center.tenant_id and client_id, then run the sign-in again"
    return f"Entra ID refused the sign-in ({error}: {first}): {what}"


def result_of(grant: Grant, answer: Mapping[str, Any]) -> SignInResult:
    """A `SignInResult` from a successful token answer of msal.

    Raises:
        SignInError: the answer has no access token or no refresh token.
    """
    if "access_token" not in answer:
        raise SignInError(_advice(answer))
    refresh_token = answer.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise SignInError(
            "Entra ID returned no refresh token: the app registration must allow the "
            "offline_access scope (it does by default); run the sign-in again"
        )
    access_token = str(answer["access_token"])
    try:
        claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        claims = {}
    amr = claims.get("amr")
    user = claims.get("upn") or claims.get("preferred_username") or claims.get("unique_name")
    return SignInResult(
        grant=grant,
        access_token=access_token,
        refresh_token=refresh_token,
        mfa=isinstance(amr, list) and "mfa" in amr,
        user=str(user) if user else None,
    )


async def sign_in_with_device_code(
    credentials: AppCredentials,
    *,
    clock: Clock,
    show: Callable[[str], None],
    scopes: tuple[str, ...] = (REFERRALS_SCOPE,),
    wait_seconds: float = DEFAULT_DEVICE_TIMEOUT,
) -> SignInResult:
    """Sign in with a device code: show the code and URL, then wait for the user.

    Args:
        credentials: the app registration and tenant.
        clock: waits between polls and the `wait_seconds` read it.
        show: prints the instructions (the URL and the code) for the user.
        scopes: the scopes to ask for.
        wait_seconds: give up after this many seconds (the device code's own lifetime also ends it).

    Raises:
        SignInError: declined, expired, timed out, or refused; the message says what to do.
        PartnerCenterTransportError: Entra ID could not be reached.
    """
    # msal reads the authority's OpenID configuration when it is made: in the worker thread.
    app = await _in_thread(lambda: _client(credentials, public=True), credentials)
    flow: dict[str, Any] = await _in_thread(
        lambda: app.initiate_device_flow(scopes=list(scopes)), credentials
    )
    if "user_code" not in flow:
        raise SignInError(_advice(flow))
    show(str(flow.get("message") or f"Open {flow['verification_uri']} and enter the code."))
    interval = max(1, int(flow.get("interval") or 5))
    lifetime = float(flow.get("expires_in") or wait_seconds)
    deadline = clock.monotonic() + min(wait_seconds, lifetime)

    def poll() -> Mapping[str, Any]:
        # One token request per call: we own the waiting (on our clock), not msal.
        flow["latest_attempt_at"] = 0
        answer: Mapping[str, Any] = app.acquire_token_by_device_flow(
            flow, exit_condition=lambda _flow: True
        )
        return answer

    while True:
        answer = await _in_thread(poll, credentials)
        error = answer.get("error")
        if error is None or "access_token" in answer:
            return result_of("device_code", answer)
        if error == "authorization_declined":
            raise SignInError(
                "the sign-in was declined on the sign-in page: run cosell connect "
                "partner-center again and approve it"
            )
        if error in ("expired_token", "code_expired"):
            raise SignInError(
                "the device code expired before the sign-in was completed: run cosell connect "
                "partner-center --device-code again and enter the new code within "
                f"{int(lifetime // 60)} minutes"
            )
        if error not in _DEVICE_PENDING:
            raise SignInError(_advice(answer))
        if error == "slow_down":
            interval += _SLOW_DOWN_STEP
        if clock.monotonic() + interval > deadline:
            raise SignInError(
                f"no sign-in within {int(min(wait_seconds, lifetime))} seconds: run cosell connect "
                "partner-center --device-code again and enter the code it shows"
            )
        await clock.sleep(interval)


async def sign_in_with_browser(
    credentials: AppCredentials,
    *,
    open_url: Callable[[str], bool],
    show: Callable[[str], None],
    browser_url: Callable[[str], str] = lambda url: url,
    scopes: tuple[str, ...] = (REFERRALS_SCOPE,),
    port: int = 0,
    wait_seconds: float = DEFAULT_BROWSER_TIMEOUT,
) -> SignInResult:
    """Sign in in a browser: authorization code with PKCE, redirected to a loopback listener.

    Args:
        credentials: the app registration and tenant.
        open_url: opens the sign-in page in a browser; False when there is none.
        show: prints a line for the user (the URL is always printed).
        browser_url: maps the authorization URL msal built to the one to open (the sandbox's
            routing; identity in production).
        scopes: the scopes to ask for.
        port: the loopback port (0: any free port; Entra accepts any port on 127.0.0.1).
        wait_seconds: give up after this many seconds without a redirect.

    Raises:
        SignInError: denied, timed out, or refused; the message says what to do.
        PartnerCenterTransportError: Entra ID could not be reached.
    """
    app = await _in_thread(lambda: _client(credentials, public=False), credentials)
    async with LoopbackRedirect(port) as redirect:
        flow: dict[str, Any] = await _in_thread(
            lambda: app.initiate_auth_code_flow(
                list(scopes),
                redirect_uri=redirect.redirect_uri,
                prompt="select_account",
                response_mode="form_post",  # the code travels in a POST body, not in a URL
            ),
            credentials,
        )
        url = browser_url(str(flow["auth_uri"]))
        opened = open_url(url)
        if opened:
            show(f"A browser window is open to sign in. If it is not, open this URL:\n{url}")
        else:
            show(f"Open this URL in a browser on this machine to sign in:\n{url}")
        try:
            params = await redirect.wait(wait_seconds)
        except TimeoutError as exc:
            raise SignInError(
                f"no sign-in came back within {int(wait_seconds)} seconds: run cosell connect "
                "partner-center again (or use --device-code on a machine without a browser)"
            ) from exc
    if "error" in params:
        description = params.get("error_description", "").splitlines()
        raise SignInError(
            f"the sign-in was not completed ({params['error']}: "
            f"{description[0] if description else 'no description'}): run cosell connect "
            "partner-center again and accept the permissions"
        )
    try:
        answer: Mapping[str, Any] = await _in_thread(
            lambda: app.acquire_token_by_auth_code_flow(flow, params, scopes=list(scopes)),
            credentials,
        )
    except ValueError as exc:  # msal's check of `state` (and of a malformed redirect)
        raise SignInError(
            "the redirect did not belong to this sign-in (its state did not match): run cosell "
            "connect partner-center again"
        ) from exc
    return result_of("authorization_code", answer)


__all__ = [
    "DEFAULT_BROWSER_TIMEOUT",
    "DEFAULT_DEVICE_TIMEOUT",
    "SignInError",
    "SignInResult",
    "result_of",
    "sign_in_with_browser",
    "sign_in_with_device_code",
]
