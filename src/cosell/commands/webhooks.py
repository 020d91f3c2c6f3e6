"""`cosell webhooks register|show|test`: the tenant's Partner Center webhook registration.

Partner Center keeps one registration per partner tenant: one URL for every event it lists
(spec §4.1). `register` creates it (or, with `--overwrite`, replaces an existing one; without
it an existing registration is shown and left alone, exit 1), `show` prints it, `test` asks
Partner Center to send a signed `test-created` callback to the registered URL and prints the
delivery result.

Tokens: the Webhooks API takes tokens for `https://api.partnercenter.microsoft.com`, app-only
or App+User (spec §1.1), never the Referrals API's. `webhooks_tokens` picks, from the
`[partner_center]` settings: the client credentials grant (app-only) whenever a client secret
is configured (the password grant needs one too), else the refresh-token grant asking for the
Webhooks scope. `partner_center.route_to` (the sandbox) routes msal's Entra requests as
`cosell.sync.io.context` does.

Events: by default the four referral events (`referral-created`, `referral-updated`,
`related-referral-created`, `related-referral-updated`, what the co-sell connectors subscribe
to) plus `test-created`, without which Partner Center refuses to send a validation event, so
`cosell webhooks test` works right after `register`. `--events` replaces the list.

`test` polls the validation result a bounded number of times on the injected clock (the
sandbox answers within milliseconds, real Partner Center may take seconds): after 0.2, 0.5, 1,
then every 2 seconds, for at most `--timeout` seconds (30 by default). Partner Center allows 2
validation events per minute: its 429 is not retried in place (the client's `max_retry_after`
is 0 for this call) but reported with the seconds to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from cosell.commands import ConfigOption, quiet_client_logs

if TYPE_CHECKING:  # imported when a command runs, so that the CLI starts quickly
    from cosell.clock import Clock
    from cosell.config import Settings
    from cosell.partnercenter.auth import RefreshTokenStore, TokenProvider
    from cosell.partnercenter.client import RetryPolicy
    from cosell.partnercenter.webhooks import (
        Registration,
        ValidationResult,
        ValidationResultItem,
        WebhooksClient,
    )


REFERRAL_EVENTS: tuple[str, ...] = (
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
)
TEST_EVENT = "test-created"
DEFAULT_EVENTS: tuple[str, ...] = (*REFERRAL_EVENTS, TEST_EVENT)
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # the Webhooks API answers in well under 30 s
DEFAULT_TEST_TIMEOUT = 30.0  # seconds: Partner Center delivers a validation event within seconds
# Waits between polls of a validation result: quick at first (the sandbox, a fast receiver),
# then every 2 s so that a slow delivery costs a handful of calls, not dozens.
POLL_WAITS: tuple[float, ...] = (0.2, 0.5, 1.0)
POLL_WAIT_LATER = 2.0
_SUCCESS_CODES = frozenset({"ok", "created", "accepted", "no content"})

webhooks_app = typer.Typer(
    help="The Partner Center webhook registration: where Partner Center sends referral events.",
    no_args_is_help=True,
)

Echo = Callable[[str], None]


@webhooks_app.callback()
def _webhooks() -> None:
    """The Partner Center webhook registration: where Partner Center sends referral events."""


def webhooks_tokens(
    settings: Settings, *, clock: Clock, msal_http_client: Any = None
) -> TokenProvider:
    """The token provider for the Webhooks API that the `[partner_center]` settings allow.

    Args:
        settings: cosell's settings.
        clock: the clock of the token cache.
        msal_http_client: msal's `http_client` (a `RoutingHttpClient` for the sandbox).

    Raises:
        ConfigError: the tenant or client id is missing, or no grant can be used.
    """
    from cosell.config import ConfigError
    from cosell.partnercenter.auth import (
        WEBHOOKS_SCOPE,
        AppCredentials,
        ClientCredentialsProvider,
        FileRefreshTokenStore,
        InMemoryRefreshTokenStore,
        RefreshTokenProvider,
    )

    pc = settings.partner_center
    missing = [key for key in ("tenant_id", "client_id") if getattr(pc, key) is None]
    if missing:
        keys = ", ".join(f"partner_center.{key}" for key in missing)
        raise ConfigError(
            f"the Partner Center Webhooks API needs {keys}: set them in cosell.toml or as "
            "COSELL_PARTNER_CENTER__<KEY> environment variables"
        )
    secret = pc.client_secret.get_secret_value() if pc.client_secret else None
    credentials = AppCredentials(
        tenant_id=pc.tenant_id or "",
        client_id=pc.client_id or "",
        client_secret=secret,
        authority_host=pc.authority_host,
        http_client=msal_http_client,
    )
    if secret is not None:
        return ClientCredentialsProvider(credentials, scopes=(WEBHOOKS_SCOPE,), clock=clock)
    if pc.auth == "refresh_token" and (pc.refresh_token or pc.refresh_token_file):
        first = pc.refresh_token.get_secret_value() if pc.refresh_token else None
        store: RefreshTokenStore
        if pc.refresh_token_file is not None:
            store = FileRefreshTokenStore(pc.refresh_token_file)
            if store.load() is None and first:
                store.save(first)
        else:
            store = InMemoryRefreshTokenStore(first)
        return RefreshTokenProvider(credentials, store, scopes=(WEBHOOKS_SCOPE,), clock=clock)
    raise ConfigError(
        "the Partner Center Webhooks API needs partner_center.client_secret (app-only tokens; "
        "set COSELL_PARTNER_CENTER__CLIENT_SECRET) or, with auth = 'refresh_token', a "
        "partner_center.refresh_token or refresh_token_file"
    )


@contextlib.asynccontextmanager
async def webhooks_client(
    settings: Settings,
    *,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[WebhooksClient]:
    """A `WebhooksClient` for the settings; the HTTP clients it made are closed on exit.

    Args:
        settings: cosell's settings (`[partner_center]`).
        clock: the clock of tokens and retries (default: the system clock).
        http: the HTTP client (tests); None for a new one.
        retry: the retry policy (default: the client's).

    Raises:
        ConfigError: the settings lack what the Webhooks API needs.
    """
    from cosell.clock import SystemClock
    from cosell.partnercenter.auth import RoutingHttpClient
    from cosell.partnercenter.webhooks import WebhooksClient

    clock = clock or SystemClock()
    pc = settings.partner_center
    owned: list[httpx.AsyncClient | httpx.Client] = []
    try:
        msal_http: Any = None
        if pc.route_to:
            routed = httpx.Client(timeout=HTTP_TIMEOUT)
            owned.append(routed)
            msal_http = RoutingHttpClient(pc.route_to, routed)
        tokens = webhooks_tokens(settings, clock=clock, msal_http_client=msal_http)
        if http is None:
            http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
            owned.append(http)
        yield WebhooksClient(http, tokens, base_url=pc.webhooks_url, clock=clock, retry=retry)
    finally:
        for client in owned:
            if isinstance(client, httpx.AsyncClient):
                await client.aclose()
            else:
                client.close()


def describe_registration(registration: Registration) -> list[str]:
    """A registration as lines for people."""
    lines = [
        f"URL:     {registration.webhook_url or '(none)'}",
        f"Events:  {', '.join(registration.webhook_events) or '(none)'}",
    ]
    if registration.subscriber_id:
        lines.append(f"Subscriber id: {registration.subscriber_id}")
    if registration.signature_token_to_ms_signature_header:
        lines.append("Signature header: x-ms-signature")
    if registration.last_modified_timestamp:
        lines.append(f"Last modified: {registration.last_modified_timestamp.isoformat()}")
    return lines


def default_url(settings: Settings) -> str | None:
    """The URL to register when none is given: `[server] public_url`, if set."""
    return settings.server.public_url


def parse_events(values: Sequence[str] | None) -> tuple[str, ...]:
    """Event names from `--events` options (repeated, or comma-separated); the default if none."""
    if not values:
        return DEFAULT_EVENTS
    names = [name.strip() for value in values for name in value.split(",")]
    return tuple(dict.fromkeys(name for name in names if name))


async def run_register(
    settings: Settings,
    url: str | None,
    events: Sequence[str],
    *,
    overwrite: bool,
    echo: Echo,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
) -> int:
    """Register (or with `overwrite` replace) the webhook registration; the exit status.

    Args:
        settings: cosell's settings.
        url: the URL to register; None for `[server] public_url`.
        events: the events to register.
        overwrite: replace an existing registration.
        echo: where lines go.
        clock: the clock of tokens and retries.
        http: the HTTP client (tests).
    """
    from cosell.partnercenter.errors import RegistrationExistsError

    target = url or default_url(settings)
    if not target:
        echo(
            "Error: no URL to register: pass --url https://<your host>/webhooks/partner-center, "
            "or set [server] public_url in cosell.toml"
        )
        return 1
    if not target.startswith(("https://", "http://")):
        echo(f"Error: --url {target!r} is not an absolute https URL")
        return 1
    if not events:
        echo(f"Error: name at least one event with --events, e.g. {', '.join(REFERRAL_EVENTS)}")
        return 1
    async with webhooks_client(settings, clock=clock, http=http) as client:
        try:
            registration = await client.register(target, events, overwrite=overwrite)
        except RegistrationExistsError:
            echo("Error: a webhook registration already exists for this tenant:")
            existing = await client.show()
            for line in describe_registration(existing) if existing else []:
                echo(f"  {line}")
            echo(
                "Partner Center allows one registration per tenant; pass --overwrite to replace "
                "it (events sent to the old URL stop)."
            )
            return 1
    echo(("Replaced" if overwrite else "Registered") + " the webhook registration:")
    for line in describe_registration(registration):
        echo(f"  {line}")
    if TEST_EVENT in registration.webhook_events:
        echo("Check delivery with: cosell webhooks test")
    return 0


async def run_show(
    settings: Settings,
    *,
    echo: Echo,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
) -> int:
    """Print the webhook registration (or say there is none); the exit status (0)."""
    async with webhooks_client(settings, clock=clock, http=http) as client:
        registration = await client.show()
    if registration is None:
        echo(
            "No webhook registration for this tenant: Partner Center sends no events. Create "
            "one with: cosell webhooks register --url https://<your host>/webhooks/partner-center"
        )
        return 0
    echo("The webhook registration:")
    for line in describe_registration(registration):
        echo(f"  {line}")
    return 0


def delivered(item: ValidationResultItem) -> bool:
    """Whether one delivery attempt of a validation event reached a receiver that said 2xx."""
    code = (item.response_code or "").strip().lower()
    return not item.system_error and (code in _SUCCESS_CODES or code.startswith("2"))


async def run_test(
    settings: Settings,
    *,
    echo: Echo,
    wait_seconds: float = DEFAULT_TEST_TIMEOUT,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
) -> int:
    """Send a validation event, wait (bounded) for its result and print it; the exit status.

    Args:
        settings: cosell's settings.
        echo: where lines go.
        wait_seconds: the longest wait for the result.
        clock: what the polls wait on.
        http: the HTTP client (tests).

    Returns:
        0 when the receiver answered 2xx, 1 otherwise (refused, unreachable, throttled, no
        result in time).
    """
    from cosell.clock import SystemClock
    from cosell.partnercenter.client import RetryPolicy
    from cosell.partnercenter.errors import InvalidRequestError, ThrottledError

    clock = clock or SystemClock()
    no_wait = RetryPolicy(max_retry_after=0.0)  # a 429 goes to the user, not into a sleep
    async with webhooks_client(settings, clock=clock, http=http, retry=no_wait) as client:
        try:
            correlation_id = await client.send_validation_event()
        except ThrottledError as exc:
            wait = f"{exc.retry_after:.0f} seconds" if exc.retry_after else "a minute"
            echo(
                "Error: Partner Center allows 2 validation events per minute and refused this "
                f"one: try again in {wait}."
            )
            return 1
        except InvalidRequestError as exc:
            echo(f"Error: Partner Center refused the validation event: {exc.message}")
            echo(
                "The registration must exist and include test-created: cosell webhooks register "
                "--overwrite (the default events include it)."
            )
            return 1
        echo(f"Sent a validation event (correlation id {correlation_id}); waiting for its result")
        result = await _poll(client, correlation_id, clock=clock, wait_seconds=wait_seconds)
    if result is None or not result.results:
        echo(
            f"Error: no delivery result after {wait_seconds:.0f} seconds (correlation id "
            f"{correlation_id}). Partner Center may still be delivering: run cosell webhooks "
            "test again in a minute, and check that the URL is reachable from the internet."
        )
        return 1
    if result.callback_url:
        echo(f"Callback URL: {result.callback_url}")
    for n, item in enumerate(result.results, start=1):
        mark = "ok" if delivered(item) else "FAILED"
        text = f"  attempt {n}: responseCode {item.response_code or '(none)'} [{mark}]"
        if item.system_error:
            text += " (Partner Center could not reach the URL)"
        if item.date_time_utc:
            text += f" at {item.date_time_utc}"
        echo(text)
        if item.response_message and not delivered(item):
            echo(f"    {item.response_message[:300]}")
    if delivered(result.results[-1]):
        echo("The webhook endpoint received the validation event.")
        return 0
    echo(
        "Error: the webhook endpoint did not accept the validation event: check that "
        "`cosell serve` runs and is reachable at the registered URL."
    )
    return 1


async def _poll(
    client: WebhooksClient, correlation_id: str, *, clock: Clock, wait_seconds: float
) -> ValidationResult | None:
    started = clock.monotonic()
    attempt = 0
    result: ValidationResult | None = None
    while True:
        wait = POLL_WAITS[attempt] if attempt < len(POLL_WAITS) else POLL_WAIT_LATER
        left = wait_seconds - (clock.monotonic() - started)
        if left <= 0:
            return result
        await clock.sleep(min(wait, left))
        attempt += 1
        result = await client.validation_result(correlation_id)
        if result.results and (result.status or "").lower() != "queued":
            return result


def _settings(config: Path | None, echo: Echo) -> Settings | None:
    from cosell.config import ConfigError, Settings

    try:
        return Settings.load(config)
    except ConfigError as exc:
        echo(f"Error: {exc}")
        return None


def _run(work: Callable[[Settings], Coroutine[Any, Any, int]], config: Path | None) -> None:
    from cosell.config import ConfigError
    from cosell.partnercenter.errors import PartnerCenterError

    echo = typer.echo
    settings = _settings(config, echo)
    if settings is None:
        raise typer.Exit(code=1)
    try:
        with quiet_client_logs():
            status = asyncio.run(work(settings))
    except ConfigError as exc:
        echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    except PartnerCenterError as exc:
        echo(f"Error: the Partner Center Webhooks API: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    raise typer.Exit(code=status)


@webhooks_app.command("register")
def register(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="The https URL of cosell's webhook endpoint (default: server.public_url in cosell.toml).",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            help=(
                "Events to register, comma-separated or repeated (default: the four referral "
                "events and test-created)."
            ),
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the tenant's existing registration.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Register cosell's URL for Partner Center's referral events."""
    names = parse_events(events)
    _run(
        lambda s: run_register(s, url, names, overwrite=overwrite, echo=typer.echo),
        config,
    )


@webhooks_app.command("show")
def show(config: ConfigOption = None) -> None:
    """Show the tenant's webhook registration."""
    _run(lambda s: run_show(s, echo=typer.echo), config)


@webhooks_app.command("test")
def send_test_event(
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", help="The longest wait for the delivery result, in seconds.", min=1.0
        ),
    ] = DEFAULT_TEST_TIMEOUT,
    config: ConfigOption = None,
) -> None:
    """Ask Partner Center to send a validation event to the registered URL; print the result."""
    _run(lambda s: run_test(s, echo=typer.echo, wait_seconds=timeout), config)
