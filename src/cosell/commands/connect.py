"""`cosell connect partner-center` and `cosell connect salesforce`: an admin signs in once.

Partner Center (the secure application model): a Referrals admin signs in with MFA, by a
device code (`--device-code`, for a server without a browser) or in a browser (authorization
code with PKCE on a loopback redirect; the browser is opened where there is one and the URL
printed either way). The access token must carry MFA (`amr` includes `mfa`, spec §9) and the
user must be able to read referrals (one call, `GET /referrals?$top=1`); only then is the
refresh token stored in the token file (`[partner_center] refresh_token_file`, default
`.cosell/partner-center-token.json`, mode 0600) with its record (grant, MFA, user, times), from
which cosell reads it and where it keeps each rotation. Each refusal says what to do: no MFA,
the app registration without the delegated permission, a user without the Referrals admin
role. Nothing is stored unless every check passed.

This module is imported when the CLI is built, so it imports the clients, msal and the
settings only inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cosell.commands import ConfigOption

if TYPE_CHECKING:
    import httpx

    from cosell.clock import Clock
    from cosell.config import Settings
    from cosell.partnercenter.errors import PartnerCenterError, SignInRefusedError
    from cosell.tokenstore import TokenRecord

connect_app = typer.Typer(
    help="Sign in as an admin (Partner Center, Salesforce) and store the refresh token cosell uses.",
    no_args_is_help=True,
)

DeviceCodeOption = Annotated[
    bool,
    typer.Option(
        "--device-code",
        help="Sign in with a code on another device (for a machine without a browser).",
    ),
]
NoBrowserOption = Annotated[
    bool,
    typer.Option("--no-browser", help="Print the sign-in URL instead of opening a browser."),
]
PortOption = Annotated[
    int,
    typer.Option("--port", help="Loopback port of the redirect (0: any free port).", min=0),
]
WaitOption = Annotated[
    int | None,
    typer.Option(
        "--wait",
        help="Seconds to wait for the sign-in before giving up (default: 900 for a device "
        "code, 300 in a browser).",
        min=10,
        max=3600,
    ),
]


class ConnectError(Exception):
    """The sign-in cannot be used; the message says what to do. Nothing was stored."""


class _StaticToken:
    """The sign-in's own access token, for the one Referrals API call that checks it."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        """Nothing to refresh: a refused token is the answer."""

    def refuse(self, error: PartnerCenterError) -> SignInRefusedError:
        """The refusal, raised with its cause (`connect_partner_center` reads it)."""
        from cosell.partnercenter.errors import SignInRefusedError

        refusal = SignInRefusedError(str(error), status=error.status, code=error.code)
        refusal.__cause__ = error
        return refusal


def _open_browser(url: str) -> bool:
    import webbrowser

    try:
        return webbrowser.open(url, new=1, autoraise=True)
    except webbrowser.Error:
        return False


async def connect_partner_center(
    settings: Settings,
    *,
    device_code: bool,
    clock: Clock,
    echo: Callable[[str], None],
    open_url: Callable[[str], bool],
    http: httpx.AsyncClient | None = None,
    msal_http_client: Any = None,
    port: int = 0,
    wait_seconds: float | None = None,
) -> TokenRecord:
    """Sign in to Partner Center, check the token, and store the refresh token.

    Args:
        settings: cosell's settings (`[partner_center]` tenant, client, token file).
        device_code: use the device code flow instead of the browser.
        clock: the device code polling and the stored times read it.
        echo: prints a line for the user.
        open_url: opens a URL in a browser; False when there is none.
        http: the client for the Referrals API call (default: a new one).
        msal_http_client: msal's http client (default: routed to `route_to` when set).
        port: the loopback port for the browser flow.
        wait_seconds: how long to wait for the user (default: the flow's own).

    Returns:
        The stored token's record.

    Raises:
        ConnectError: a check failed; nothing was stored.
        PartnerCenterError: the sign-in failed (its message says what to do).
    """
    import httpx

    from cosell.partnercenter.auth import AppCredentials, FileRefreshTokenStore, RoutingHttpClient
    from cosell.partnercenter.client import ReferralsClient
    from cosell.partnercenter.errors import (
        AccessDeniedError,
        AuthenticationError,
        MfaRequiredError,
        SignInRefusedError,
    )
    from cosell.partnercenter.signin import (
        DEFAULT_BROWSER_TIMEOUT,
        DEFAULT_DEVICE_TIMEOUT,
        sign_in_with_browser,
        sign_in_with_device_code,
    )

    pc = settings.partner_center
    unset = [key for key in ("tenant_id", "client_id") if getattr(pc, key) is None]
    if unset:
        keys = ", ".join(f"partner_center.{key}" for key in unset)
        raise ConnectError(
            f"{keys} not set: register an app in Entra ID (README, 'Connect your accounts') "
            "and put its tenant and client id in cosell.toml"
        )
    routed: httpx.Client | None = None
    owned: httpx.AsyncClient | None = None
    browser_url: Callable[[str], str] = lambda url: url  # noqa: E731
    if msal_http_client is None and pc.route_to:
        routed = httpx.Client(timeout=30.0)
        msal_http_client = RoutingHttpClient(pc.route_to, routed)
    if isinstance(msal_http_client, RoutingHttpClient):
        browser_url = msal_http_client.route_url
    if http is None:
        http = owned = httpx.AsyncClient(timeout=30.0)
    credentials = AppCredentials(
        tenant_id=pc.tenant_id or "",
        client_id=pc.client_id or "",
        client_secret=pc.client_secret.get_secret_value() if pc.client_secret else None,
        authority_host=pc.authority_host,
        http_client=msal_http_client,
    )
    try:
        if device_code:
            result = await sign_in_with_device_code(
                credentials,
                clock=clock,
                show=echo,
                wait_seconds=wait_seconds or DEFAULT_DEVICE_TIMEOUT,
            )
        else:
            result = await sign_in_with_browser(
                credentials,
                open_url=open_url,
                show=echo,
                browser_url=browser_url,
                port=port,
                wait_seconds=wait_seconds or DEFAULT_BROWSER_TIMEOUT,
            )
        who = result.user or "the user"
        no_mfa = (
            f"{who} signed in without multi-factor authentication, and Partner Center refuses "
            "App+User calls made with such a token (error 900421): require MFA for this user "
            "(Entra ID > Security > Conditional Access, or per-user MFA), then run cosell "
            "connect partner-center again. Nothing was stored."
        )
        if not result.mfa:
            raise ConnectError(no_mfa)
        client = ReferralsClient(
            http, _StaticToken(result.access_token), base_url=pc.api_base_url, clock=clock
        )
        try:
            await client.list_page(top=1)
        except SignInRefusedError as exc:
            if isinstance(exc.__cause__, MfaRequiredError):
                raise ConnectError(no_mfa) from exc
            raise ConnectError(
                f"the Referrals API refused the new token ({exc.__cause__ or exc}). Nothing was "
                "stored."
            ) from exc
        except AccessDeniedError as exc:
            raise ConnectError(
                f"{who} cannot read referrals: in Partner Center, Account settings > User "
                "management, give this user the Referrals admin role, then run cosell connect "
                "partner-center again. Nothing was stored."
            ) from exc
        except AuthenticationError as exc:
            raise ConnectError(
                f"the Referrals API refused the new token ({exc}). Nothing was stored."
            ) from exc
        store = FileRefreshTokenStore(pc.token_file, clock=clock)
        record = store.connect(
            result.refresh_token, grant=result.grant, mfa=result.mfa, user=result.user
        )
        echo(
            f"Signed in to Partner Center as {who} with MFA ({result.grant.replace('_', ' ')}); "
            f"the Referrals API answers. The refresh token is stored in {pc.token_file} "
            "(mode 0600); cosell renews it on every use."
        )
        return record
    finally:
        if routed is not None:
            routed.close()
        if owned is not None:
            await owned.aclose()


async def connect_salesforce(
    settings: Settings,
    *,
    device_code: bool,
    clock: Clock,
    echo: Callable[[str], None],
    open_url: Callable[[str], bool],
    http: httpx.AsyncClient | None = None,
    port: int = 0,
    wait_seconds: float | None = None,
) -> TokenRecord:
    """Sign in to Salesforce (web-server flow with PKCE, or the device flow); store the token.

    The login host is `[salesforce] login_url`: `https://login.salesforce.com`,
    `https://test.salesforce.com` for a sandbox org, or the org's My Domain URL.

    Returns:
        The stored token's record.

    Raises:
        ConnectError: the settings lack the consumer key.
        SalesforceError: the sign-in failed (its message says what to do).
    """
    import httpx

    from cosell.salesforce.signin import (
        DEFAULT_BROWSER_WAIT,
        DEFAULT_DEVICE_WAIT,
        sign_in_device,
        sign_in_web_server,
        signed_in_user,
    )
    from cosell.tokenstore import FileTokenStore

    sf = settings.salesforce
    if sf.consumer_key is None:
        raise ConnectError(
            "salesforce.consumer_key not set: create an external client app with OAuth "
            "(README, 'Connect your accounts') and put its consumer key in cosell.toml"
        )
    owned: httpx.AsyncClient | None = None
    if http is None:
        http = owned = httpx.AsyncClient(timeout=30.0)
    secret = sf.consumer_secret.get_secret_value() if sf.consumer_secret else None
    try:
        if device_code:
            result = await sign_in_device(
                http,
                login_url=sf.login_url,
                consumer_key=sf.consumer_key,
                clock=clock,
                show=echo,
                wait_seconds=wait_seconds or DEFAULT_DEVICE_WAIT,
            )
        else:
            result = await sign_in_web_server(
                http,
                login_url=sf.login_url,
                consumer_key=sf.consumer_key,
                consumer_secret=secret,
                clock=clock,
                open_url=open_url,
                show=echo,
                port=port,
                wait_seconds=wait_seconds or DEFAULT_BROWSER_WAIT,
            )
        user = await signed_in_user(http, result)
        store = FileTokenStore(sf.token_file, clock=clock)
        record = store.connect(result.refresh_token, grant=result.grant, mfa=None, user=user)
        flow = "device flow" if result.grant == "device" else "web-server flow"
        echo(
            f"Signed in to Salesforce at {result.token.instance_url} as {user} ({flow}). The "
            f"refresh token is stored in {sf.token_file} (mode 0600)."
        )
        if sf.auth != "refresh_token":
            echo(
                "cosell signs in with auth = "
                f'{sf.auth!r}; set [salesforce] auth = "refresh_token" to use this token.'
            )
        return record
    finally:
        if owned is not None:
            await owned.aclose()


@connect_app.command("salesforce")
def salesforce(
    config: ConfigOption = None,
    device_code: DeviceCodeOption = False,
    no_browser: NoBrowserOption = False,
    port: PortOption = 0,
    wait: WaitOption = None,
) -> None:
    """Sign in to Salesforce (login_url: production, test.salesforce.com or My Domain) and store the refresh token."""
    from cosell.salesforce.errors import SalesforceError

    _sign_in(connect_salesforce, SalesforceError, config, device_code, no_browser, port, wait)


@connect_app.command("partner-center")
def partner_center(
    config: ConfigOption = None,
    device_code: DeviceCodeOption = False,
    no_browser: NoBrowserOption = False,
    port: PortOption = 0,
    wait: WaitOption = None,
) -> None:
    """Sign in to Partner Center as a Referrals admin (with MFA) and store the refresh token."""
    from cosell.partnercenter.errors import PartnerCenterError

    _sign_in(
        connect_partner_center, PartnerCenterError, config, device_code, no_browser, port, wait
    )


def _sign_in(
    connect: Callable[..., Coroutine[Any, Any, TokenRecord]],
    side_error: type[Exception],
    config: Path | None,
    device_code: bool,
    no_browser: bool,
    port: int,
    wait: float | None,
) -> None:
    """Run one side's sign-in as a command: errors a user can cause exit 1 with the message."""
    import asyncio

    from cosell.clock import SystemClock
    from cosell.commands import quiet_client_logs
    from cosell.config import ConfigError, Settings

    try:
        settings = Settings.load(config)
        with quiet_client_logs():
            asyncio.run(
                connect(
                    settings,
                    device_code=device_code,
                    clock=SystemClock(),
                    echo=typer.echo,
                    open_url=(lambda _url: False) if no_browser else _open_browser,
                    port=port,
                    wait_seconds=wait,
                )
            )
    except (ConfigError, ConnectError, side_error) as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


__all__ = ["ConnectError", "connect_app", "connect_partner_center", "connect_salesforce"]
