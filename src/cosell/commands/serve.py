"""`cosell serve [--config FILE] [--host H] [--port P]`: the service, in one process.

One uvicorn server on one asyncio loop runs the app of `cosell.server.app` (webhook endpoint,
`/healthz`, `/readyz`, `/metrics`) and, in the app's lifespan, the DBOS engine as a worker:
queued reconciles, both pollers, the periodic sweep, and the webhook inbox's drainer (a drain at
start, then whenever callbacks are recorded).

Wiring (the only place that builds HTTP clients for the service): one `httpx.AsyncClient` per
API, each behind a transport that counts calls and errors into the metrics
(`cosell_api_calls_total{api}`); the `SyncContext` the engine uses is built once from them
(`build_context`); the signature verifier gets its own client (certificates are downloaded
without redirects). The trusted roots are certifi's unless `[server] trusted_ca_file` (PEM)
or `trusted_ca_url` (DER or PEM, the sandbox's CA, downloaded once at start) says otherwise.

Readiness checks: `database` (`Store.health`: the SQLite file still the one opened, a read, no
recent failed write; every probe), `partner_center_token` (the
Referrals API's token provider), `salesforce_token` (the Salesforce session), `token_health`
(every probe, no network: a sign-in without MFA or past its inactivity expiry is unready; one
warning is logged per side when fewer than 14 days are left; `cosell.tokenhealth`), and
`webhook_registration` (the tenant's registration lists the referral events and points at
`[server] public_url`) — the last three cached for a minute — and `sync` (every probe, no
network: fails while a side's circuit is open or all sync is paused, with the cause and the
fix; `Engine.check_health`).

Before it syncs anything the worker runs the preflight (`cosell.sync.io.preflight`: both
connections and the mapping against the org's describe). A side that fails stays paused (its
circuit open) and the service stays up, unready, probing it at every poll tick; nothing is
parked for it.

Alerts (`[alerts] urls`): a background task reads health every `check_seconds` and sends what
changed through apprise (`cosell.server.alerts`); it never runs inside a reconcile.

Startup prints one line of JSON to stdout, `{"url": ..., "webhook_url": ...}`, once the socket
listens (port 0 picks a free one), so scripts and tests know where it is. Logs go to stderr
(`[server] log_format`). SIGTERM or SIGINT stop it gracefully: the socket stops accepting,
requests in flight are answered, running reconciles get up to `--grace` seconds to finish,
then the engine stops (an interrupted reconcile is recovered at the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any, Final

import httpx
import structlog
import typer
import uvicorn

from cosell.commands import ConfigOption
from cosell.commands.webhooks import REFERRAL_EVENTS, webhooks_client
from cosell.server import DEFAULT_GRACE_SECONDS

if TYPE_CHECKING:  # imported when a command runs, so that the CLI starts quickly
    from cryptography import x509

    from cosell.clock import Clock
    from cosell.config import ServerSettings, Settings
    from cosell.partnercenter.auth import TokenProvider
    from cosell.server.connections import ConnectionLimits
    from cosell.server.metrics import Metrics
    from cosell.server.readiness import Check
    from cosell.store import Store
    from cosell.sync.engine import Engine
    from cosell.sync.io.context import SyncContext
    from cosell.tokenhealth import TokenHealthWatch


log = structlog.get_logger("cosell.serve")

HTTP_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)  # both APIs answer well within 30 s
CA_TIMEOUT: Final = httpx.Timeout(10.0)  # the CA download happens once, at start
MAX_CA_BYTES: Final = 256 * 1024  # a root bundle is a few KiB; more is not a certificate
QUEUE_DEPTH_LIMIT: Final = 100_000  # workflows counted per scrape; a deeper queue shows this


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts each request to one API (and its failures) into the metrics."""

    def __init__(self, api: str, metrics: Metrics, inner: httpx.AsyncBaseTransport) -> None:
        self._api = api
        self._metrics = metrics
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request and count it by its status (None when nothing came back)."""
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError:
            self._metrics.api_call(self._api, status=None)
            raise
        self._metrics.api_call(self._api, status=response.status_code)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


def load_trusted_roots(settings: Settings) -> list[x509.Certificate] | None:
    """The roots webhook certificates must chain to: the configured CA, or None (certifi).

    Raises:
        ConfigError: the CA file or URL cannot be read or holds no certificate.
    """
    from cosell.config import ConfigError

    server = settings.server
    if server.trusted_ca_file is not None:
        try:
            data = server.trusted_ca_file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"server.trusted_ca_file: cannot read {server.trusted_ca_file} "
                f"({exc.strerror or exc}); give a PEM file of root certificates"
            ) from exc
        return _certificates(data, f"server.trusted_ca_file {server.trusted_ca_file}")
    if server.trusted_ca_url is not None:
        try:
            response = httpx.get(server.trusted_ca_url, timeout=CA_TIMEOUT, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"server.trusted_ca_url: cannot download {server.trusted_ca_url} "
                f"({type(exc).__name__}); is the sandbox running?"
            ) from exc
        if response.status_code != 200 or len(response.content) > MAX_CA_BYTES:
            raise ConfigError(
                f"server.trusted_ca_url: {server.trusted_ca_url} answered "
                f"{response.status_code} with {len(response.content)} bytes, not a certificate"
            )
        return _certificates(response.content, f"server.trusted_ca_url {server.trusted_ca_url}")
    return None


def _certificates(data: bytes, what: str) -> list[x509.Certificate]:
    from cryptography import x509

    from cosell.config import ConfigError

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError(f"{what} holds no readable certificate (PEM or DER)") from exc


async def queue_depth() -> int:
    """Single-key reconciles enqueued and not yet started, across all workers."""
    from dbos import DBOS

    from cosell.sync.engine import RECONCILE_QUEUE

    waiting = await DBOS.list_workflows_async(
        status=["ENQUEUED"],
        queue_name=RECONCILE_QUEUE,
        limit=QUEUE_DEPTH_LIMIT,
        load_input=False,
        load_output=False,
    )
    return len(waiting)


def _referral_tokens(ctx: SyncContext) -> TokenProvider:
    # The Referrals client keeps its token provider on its requester; the readiness probe
    # must use that very provider (a second one would rotate the refresh token under it).
    tokens: TokenProvider = ctx.partner_center.tokens
    return tokens


def readiness_checks(
    settings: Settings,
    *,
    store: Store,
    ctx: SyncContext,
    pc_http: httpx.AsyncClient,
    clock: Clock,
    watch: TokenHealthWatch | None = None,
    engine: Engine | None = None,
) -> list[Check]:
    """The checks of `/readyz` (see the module docstring)."""
    from cosell.config import ConfigError
    from cosell.server.readiness import Check
    from cosell.tokenhealth import TokenHealthWatch

    public_url = settings.server.public_url
    health = watch or TokenHealthWatch(settings, clock=clock)

    async def database() -> str:
        return await asyncio.to_thread(store.health)

    async def partner_center_token() -> str:
        await _referral_tokens(ctx).token()
        return "Referrals API token obtained"

    async def salesforce_token() -> str:
        token = await ctx.salesforce.session.token()
        return f"token for {token.instance_url}"

    async def token_health_check() -> str:
        problems = [h.problem for h in health.check() if h.problem]
        if problems:
            raise ConfigError("; ".join(problems))
        return "sign-ins usable"

    async def webhook_registration() -> str:
        if public_url is None:
            raise ConfigError(
                "[server] public_url is not set: set it to the https URL Partner Center calls, "
                "then run `cosell webhooks register`"
            )
        async with webhooks_client(settings, clock=clock, http=pc_http) as client:
            registration = await client.show()
        if registration is None:
            raise ConfigError("no webhook registration: run `cosell webhooks register`")
        if (registration.webhook_url or "").rstrip("/") != public_url.rstrip("/"):
            raise ConfigError(
                f"the registration points at {registration.webhook_url!r}, not at "
                f"{public_url!r}: run `cosell webhooks register --overwrite`"
            )
        missing = [e for e in REFERRAL_EVENTS if e not in registration.webhook_events]
        if missing:
            raise ConfigError(
                f"the registration lacks {', '.join(missing)}: run "
                "`cosell webhooks register --overwrite`"
            )
        return f"registered for {public_url}"

    checks = [
        Check("database", database, ttl_seconds=0.0),
        Check("partner_center_token", partner_center_token),
        Check("salesforce_token", salesforce_token),
        Check("token_health", token_health_check, ttl_seconds=0.0),
        Check("webhook_registration", webhook_registration),
    ]
    if engine is not None:
        running = engine

        async def sync_health() -> str:
            return await asyncio.to_thread(running.check_health)

        checks.append(Check("sync", sync_health, ttl_seconds=0.0))
    return checks


def api_usage(metrics: Metrics, ctx: SyncContext) -> list[Any]:
    """Both sides' API usage for the console.

    Calls are counted at the transports; the Salesforce org's 24-hour usage is what it last
    reported (measured against `api_budget` when set).
    """
    from cosell.server.console.usage import ApiUsage

    def sample(name: str, **labels: str) -> int:
        return int(metrics.registry.get_sample_value(name, labels) or 0)

    reported = ctx.salesforce.usage
    return [
        ApiUsage(
            side="partner_center",
            label="Partner Center",
            calls=sample("cosell_api_calls_total", api="partner_center"),
            throttled=sample("cosell_api_errors_total", api="partner_center", kind="throttled"),
        ),
        ApiUsage(
            side="salesforce",
            label="Salesforce",
            calls=sample("cosell_api_calls_total", api="salesforce"),
            throttled=sample("cosell_api_errors_total", api="salesforce", kind="throttled"),
            used=reported.used if reported else None,
            limit=reported.limit if reported else None,
            budget=reported.budget if reported else None,
            observed_at=reported.observed_at if reported else None,
        ),
    ]


def console_sso(settings: Settings, *, http: httpx.AsyncClient, clock: Clock) -> Any:
    """The console's Entra sign-in (`[console]`), or None when `oidc_tenant` is not set.

    Raises:
        ConfigError: SSO is half set up (a tenant without a client id or secret).
    """
    from cosell.config import ConfigError
    from cosell.partnercenter.oidc import EntraApp, EntraSignIn
    from cosell.server.console.sso import SsoOptions

    console = settings.console
    if not console.oidc_tenant and not console.oidc_client_id:
        return None
    missing = [
        name
        for name, value in (
            ("oidc_tenant", console.oidc_tenant),
            ("oidc_client_id", console.oidc_client_id),
            ("oidc_client_secret", console.oidc_client_secret),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"console: sign-in with Microsoft needs {', '.join(missing)} too (or remove "
            "oidc_tenant and oidc_client_id to use console passwords only)"
        )
    assert console.oidc_tenant
    assert console.oidc_client_id
    assert console.oidc_client_secret
    app = EntraApp(
        authority=console.oidc_authority,
        tenant=console.oidc_tenant,
        client_id=console.oidc_client_id,
        client_secret=console.oidc_client_secret.get_secret_value(),
    )
    return SsoOptions(
        sign_in=EntraSignIn(app, http=http, clock=clock),
        operator_role=console.operator_role,
        viewer_role=console.viewer_role,
        operators=console.operators,
        viewers=console.viewers,
        redirect_url=console.oidc_redirect_url,
    )


def console_app(
    settings: Settings,
    *,
    store: Store,
    ctx: SyncContext,
    clock: Clock,
    engine: Engine,
    http: httpx.AsyncClient | None = None,
    metrics: Metrics | None = None,
) -> Any:
    """The operations console (`cosell.server.console`), wired to the engine's `notify`."""
    from cosell.server.console import ConsoleOptions, create_console
    from cosell.store.types import Key
    from cosell.sync.run.explain import explain
    from cosell.tokenhealth import token_health

    async def salesforce_base() -> str | None:
        try:
            token = await ctx.salesforce.session.token()
        except Exception as exc:  # noqa: BLE001 - a page shows no Salesforce link rather than fail
            log.warning("console.salesforce_url_unknown", error=type(exc).__name__)
            return None
        return str(token.instance_url)

    async def sync_now(keys: list[str]) -> bool:
        # `cosell sync KEY`'s path: the engine's run_keys, in the foreground.
        summary = await engine.run_keys(keys)
        return summary.ok

    public_url = settings.server.public_url or ""
    options = ConsoleOptions(
        users_file=settings.server.console_users_file,
        partner_center_ui_url=settings.partner_center.ui_url,
        salesforce_base=salesforce_base,
        secure_cookies=public_url.startswith("https://"),
        sso=console_sso(settings, http=http, clock=clock) if http is not None else None,
        api_usage=(lambda: api_usage(metrics, ctx)) if metrics is not None else None,
        token_health=lambda: token_health(settings, clock=clock),
        explain=lambda key: explain(ctx, Key(key)),
        sync_now=sync_now,
    )
    return create_console(store=store, clock=clock, options=options, notify=engine.notify)


@asynccontextmanager
async def build_service(
    settings: Settings, *, clock: Clock, grace_seconds: float
) -> AsyncIterator[Any]:
    """Everything `cosell serve` runs, built and torn down in order; yields the ASGI app."""
    from cosell.partnercenter.webhooks import SignatureVerifier
    from cosell.server.app import create_app
    from cosell.server.metrics import Metrics, ObservedReconciler
    from cosell.server.readiness import Readiness
    from cosell.store import Store
    from cosell.sync.engine import Engine, EngineOptions
    from cosell.sync.io.context import build_context
    from cosell.sync.run.pipeline import PIPELINE
    from cosell.tokenhealth import TokenHealthWatch, token_health

    store = Store.open(settings.store.url, clock=clock)
    metrics = Metrics(store, token_health=lambda: token_health(settings, clock=clock))
    clients: list[httpx.AsyncClient] = []
    tasks: list[asyncio.Task[None]] = []
    ctx: SyncContext | None = None

    def counted(api: str) -> httpx.AsyncClient:
        transport = CountingTransport(api, metrics, httpx.AsyncHTTPTransport())
        client = httpx.AsyncClient(transport=transport, timeout=HTTP_TIMEOUT)
        clients.append(client)
        return client

    try:
        roots = load_trusted_roots(settings)
        pc_http, sf_http = counted("partner_center"), counted("salesforce")
        cert_http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        clients.append(cert_http)
        sign_in_http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)  # the console's Entra sign-in
        clients.append(sign_in_http)
        ctx = build_context(settings, store=store, clock=clock, pc_http=pc_http, sf_http=sf_http)
        observed = ObservedReconciler(PIPELINE, metrics, clock)

        shared = ctx

        @asynccontextmanager
        async def context_factory(dry_run: bool) -> AsyncIterator[SyncContext]:
            yield replace(shared, dry_run=dry_run or shared.dry_run)

        engine = Engine(
            settings,
            store=store,
            context_factory=context_factory,
            clock=clock,
            options=EngineOptions.from_settings(settings),
            reconciler=observed,
        )
        worker: Any = engine
        if settings.salesforce.changes == "cdc":
            worker = _with_change_stream(engine, settings, store=store, ctx=shared, clock=clock)
        verifier = SignatureVerifier(
            cert_http,
            allowed_certificate_urls=settings.server.allowed_certificate_urls,
            trusted_roots=roots,
            clock=clock,
        )
        watch = TokenHealthWatch(settings, clock=clock)
        readiness = Readiness(
            readiness_checks(
                settings,
                store=store,
                ctx=shared,
                pc_http=pc_http,
                clock=clock,
                watch=watch,
                engine=engine,
            ),
            clock=clock,
        )
        watcher = asyncio.create_task(_watch_token_health(watch, clock))
        tasks.append(watcher)
        alert_watch = build_alert_watch(settings, store=store, clock=clock)
        if alert_watch is not None:
            tasks.append(asyncio.create_task(alert_watch.run()))
        yield create_app(
            console=console_app(
                settings,
                store=store,
                ctx=shared,
                clock=clock,
                engine=engine,
                http=sign_in_http,
                metrics=metrics,
            ),
            settings=settings.server,
            verifier=verifier,
            store=store,
            engine=worker,
            readiness=readiness,
            metrics=metrics,
            queue_depth=queue_depth,
            on_change=lambda key, event: observed.change_seen(key, event.resource_change_utc_date),
            grace_seconds=grace_seconds,
        )
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in clients:
            await client.aclose()
        if ctx is not None:
            await ctx.aclose()  # msal's routed client, when the context made one
        store.close()


def build_alert_watch(settings: Settings, *, store: Store, clock: Clock) -> Any:
    """The `[alerts]` watch (`cosell.server.alerts`), or None when no alert URL is set.

    Raises:
        ConfigError: an alert URL apprise does not understand.
    """
    from cosell.config import ConfigError
    from cosell.server.alerts import build_watch

    try:
        watch = build_watch(settings, store=store, clock=clock)
    except ValueError as exc:
        raise ConfigError(f"alerts.urls: {exc}") from exc
    if watch is not None:
        log.info("alerts.on", channels=watch.alerter.channels)
    return watch


def _with_change_stream(
    engine: Any, settings: Settings, *, store: Any, ctx: SyncContext, clock: Clock
) -> Any:
    """The engine, with the CDC change stream started and stopped along with it."""
    from cosell.sync.engine.changestream import (
        ChangeStreamOptions,
        WithChangeStream,
        change_stream_for,
    )

    stream, pubsub = change_stream_for(
        engine,
        store=store,
        salesforce=ctx.salesforce,
        clock=clock,
        endpoint=settings.salesforce.pubsub_endpoint,
        tls=settings.salesforce.pubsub_tls,
        options=ChangeStreamOptions(
            channel=settings.salesforce.channel,
            poll_interval=float(settings.sync.poll_interval_seconds),
            lead_sync=ctx.lead_sync,
        ),
    )
    return WithChangeStream(engine, stream, pubsub)


async def _watch_token_health(watch: TokenHealthWatch, clock: Clock) -> None:
    """Read the token health at start and every hour, so its warning is logged unprobed."""
    from cosell.tokenhealth import TokenHealthWatch

    while True:
        try:
            watch.check()
        except Exception as exc:  # noqa: BLE001 - a watch must outlive a bad token file
            log.warning("token.health_unreadable", error=f"{type(exc).__name__}: {exc}")
        await clock.sleep(TokenHealthWatch.PERIOD_SECONDS)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0 picks a free one).

    Raises:
        OSError: the address is taken or not ours; the message says which and what to do.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno,
            f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or set "
            "[server] port",
        ) from exc
    sock.listen(2048)  # the kernel's accept backlog: bursts of callbacks wait here
    sock.setblocking(False)
    return sock


async def run_server(
    settings: Settings, *, sock: socket.socket, grace_seconds: float, clock: Clock | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (see the module docstring).

    Args:
        settings: cosell's settings.
        sock: the listening socket.
        grace_seconds: how long in-flight requests and running reconciles may take to finish.
        clock: the clock of tokens, certificates and the engine.
    """
    from cosell.clock import SystemClock
    from cosell.server.connections import guarded_protocol
    from cosell.sync.engine import EngineError

    async with build_service(
        settings, clock=clock or SystemClock(), grace_seconds=grace_seconds
    ) as app:
        config = uvicorn.Config(
            app,
            loop="asyncio",  # DBOS adopts the running asyncio loop
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(grace_seconds) or 1,
            server_header=False,
            http=guarded_protocol(connection_limits(settings.server)),
        )
        host, port = sock.getsockname()[:2]
        base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        server = _AnnouncingServer(config, base, settings.server.webhook_path)
        await server.serve(sockets=[sock])
        if not server.started:
            error = getattr(app.state, "startup_error", None)
            if isinstance(error, Exception):
                raise error
            raise EngineError("the service did not start; the log above says why")


def connection_limits(server: ServerSettings) -> ConnectionLimits:
    """The slow-client deadlines and the per-client cap of `[server]`."""
    from cosell.server.connections import ConnectionLimits

    return ConnectionLimits(
        header_timeout_seconds=server.header_timeout_seconds,
        body_timeout_seconds=server.body_timeout_seconds,
        max_connections_per_client=server.max_connections_per_client,
    )


class _AnnouncingServer(uvicorn.Server):
    """Prints the startup line once the lifespan has run and the socket serves."""

    def __init__(self, config: uvicorn.Config, base: str, webhook_path: str) -> None:
        super().__init__(config)
        self._line = json.dumps({"url": base, "webhook_url": f"{base}{webhook_path}"})

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a captured SIGTERM/SIGINT once it has shut down, which would end
        # the process by the signal after a clean stop; a graceful stop exits 0 instead.
        with super().capture_signals():
            try:
                yield
            finally:
                if self._captured_signals:
                    log.info(
                        "serve.stopped", signal=signal.Signals(self._captured_signals[-1]).name
                    )
                self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:
            # uvicorn exits the process when the lifespan fails; `run_server` reports why.
            self.should_exit = True
            return
        if not self.should_exit:
            sys.stdout.write(self._line + "\n")
            sys.stdout.flush()


def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (default: server.host in cosell.toml)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            help="Port to listen on; 0 picks a free one (default: server.port in cosell.toml).",
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option("--grace", help="Seconds running work may take to finish on SIGTERM."),
    ] = DEFAULT_GRACE_SECONDS,
) -> None:
    """Run the service: webhook endpoint, reconcile workers, pollers, sweeps, health, metrics."""
    from cosell.config import ConfigError, Settings
    from cosell.mapping import MappingError
    from cosell.partnercenter.errors import PartnerCenterError
    from cosell.salesforce.errors import SalesforceError
    from cosell.server.logs import configure_logging
    from cosell.store import StoreError
    from cosell.sync.engine import EngineError

    try:
        settings = Settings.load(config)
    except ConfigError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    try:
        sock = bind(host or settings.server.host, settings.server.port if port is None else port)
    except OSError as error:
        typer.echo(f"Error: {error.strerror or error}", err=True)
        raise typer.Exit(code=1) from error
    configure_logging(settings.server.log_format)
    try:
        asyncio.run(run_server(settings, sock=sock, grace_seconds=grace))
    except (
        ConfigError,
        StoreError,
        MappingError,
        EngineError,
        OSError,
        ValueError,
        PartnerCenterError,
        SalesforceError,
    ) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    finally:
        sock.close()


__all__: Sequence[str] = ("CountingTransport", "bind", "load_trusted_roots", "run_server", "serve")
