"""The Partner Center sandbox as one FastAPI app: `PartnerCenterSandbox`.

Assembly, on one base URL:

- `identity.Identity`: the Entra ID token endpoints (`/{tenant}/oauth2/token`, v2.0) and the
  OpenID discovery documents; it checks the bearer token of every API call.
- `referrals.build_referrals_router`: the Referrals API over a `store.ReferralStore`.
- `webhooks.WebhookService`: the Webhooks API, the signing certificates, and the dispatch of the
  store's events (the store's `EventSink`).
- `control.build_control_router`: `/control/...`, the Microsoft seller, the clock, faults, stats.
- `faults.ApiMiddleware`: call statistics, request ids, injected faults.

Randomness: every part gets its own `random.Random`, seeded from `SandboxOptions.seed` and the
part's name, so a seed reproduces credentials, ids and faults, and one part's draws never shift
another's. Time: one injected `Clock` (an `OffsetClock` by default, which the control API can
advance). With `SandboxOptions.data_path` the state is loaded from and saved to SQLite
(`persistence.py`) after every request that may have changed it and at shutdown.

Key material (a token signing key, a CA and a signing certificate: three RSA keys) is made per
sandbox unless a `SandboxKeys` is passed; tests that build many sandboxes share one.

In-process use (tests): `httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), ...)`;
the lifespan does not run there, so tests call `await sandbox.webhooks.drain()` to deliver
callbacks. Served (`command.py`): the lifespan runs `webhooks.run()` and a once-a-second expiry
sweep, and saves at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from cosell.clock import Clock, OffsetClock
from cosell_sandbox.partnercenter.certs import DispatchCertificates
from cosell_sandbox.partnercenter.control import build_control_router
from cosell_sandbox.partnercenter.errors import install_error_handlers
from cosell_sandbox.partnercenter.events import WebhookFaults
from cosell_sandbox.partnercenter.faults import ApiFaults, ApiMiddleware, CallStats
from cosell_sandbox.partnercenter.formats import format_timestamp
from cosell_sandbox.partnercenter.identity import Identity
from cosell_sandbox.partnercenter.persistence import SandboxDatabase
from cosell_sandbox.partnercenter.referrals import MAX_PAGE_SIZE, build_referrals_router
from cosell_sandbox.partnercenter.store import (
    REFERRALS_PATH,
    Organization,
    OrganizationId,
    ReferralStore,
)
from cosell_sandbox.partnercenter.webhooks import WebhookService

PARTNER_NAME: Final = "Contoso Partner (sandbox)"
_READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
EXPIRY_SWEEP_SECONDS: Final = 1.0  # expiry events reach receivers within a second when served


@dataclass
class SandboxOptions:
    """How a Partner Center sandbox behaves.

    Attributes:
        seed: makes credentials, ids and injected faults reproducible; None for random.
        token_lifetime_seconds: lifetime of issued access tokens.
        page_size: referrals per list page when the client gives no `$top` (1..1000).
        data_path: SQLite file that keeps the state across restarts; None keeps it in memory.
        faults: Referrals/Webhooks API faults.
        webhook_faults: webhook delivery faults.
    """

    seed: int | None = None
    token_lifetime_seconds: float = 3600.0
    page_size: int = 100
    data_path: Path | None = None
    faults: ApiFaults = field(default_factory=ApiFaults)
    webhook_faults: WebhookFaults = field(default_factory=WebhookFaults)

    def validate(self) -> None:
        """Check the options.

        Raises:
            ValueError: an option is out of range; the message names it.
        """
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if self.token_lifetime_seconds <= 0:
            raise ValueError("token_lifetime_seconds must be above 0")
        self.faults.validate()
        for name in ("drop", "duplicate", "reorder"):
            if not 0.0 <= getattr(self.webhook_faults, name) <= 1.0:
                raise ValueError(f"webhook {name} must be between 0 and 1")
        if self.webhook_faults.delay_seconds < 0:
            raise ValueError("webhook delay_seconds must be at least 0")


@dataclass(frozen=True)
class SandboxKeys:
    """The sandbox's key material: the token signing key and the webhook certificates.

    Generating it takes a noticeable fraction of a second (three RSA keys); tests that build
    many sandboxes make one `SandboxKeys` and pass it to each.
    """

    token_signing_key: rsa.RSAPrivateKey
    certificates: DispatchCertificates

    @classmethod
    def generate(cls, clock: Clock) -> SandboxKeys:
        """New keys, with certificates valid around `clock.now()`."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key, DispatchCertificates.generate(clock))


class PartnerCenterSandbox:
    """A local emulator of Partner Center's Referrals API, Webhooks API and token endpoint.

    Args:
        base_url: where the app is reachable (`http://127.0.0.1:8610`); written into links.
        clock: the sandbox clock; an `OffsetClock` when omitted.
        options: behaviour; defaults when omitted.
        webhook_client: sends webhook callbacks (tests route it in process).
        keys: reuse key material (see `SandboxKeys`); new keys when omitted.

    Raises:
        ValueError: invalid options.
        persistence.SandboxDataError: the data file cannot be used.
    """

    def __init__(
        self,
        *,
        base_url: str,
        clock: Clock | None = None,
        options: SandboxOptions | None = None,
        webhook_client: httpx.AsyncClient | None = None,
        keys: SandboxKeys | None = None,
    ) -> None:
        options = options or SandboxOptions()
        options.validate()
        self.base_url = base_url.rstrip("/")
        self.clock: Clock = clock or OffsetClock()
        self.options = options
        self.faults: ApiFaults = options.faults
        self.stats = CallStats()
        self._advanced_seconds = 0.0
        self._database = SandboxDatabase(options.data_path) if options.data_path else None
        stored = self._database.load() if self._database else None
        # A restarted seeded sandbox must not draw the ids, eTags and tokens it drew before.
        self._generation = stored.fingerprint() if stored is not None else ""
        self.identity = Identity(
            self.clock,
            base_url=self.base_url,
            rng=self._rng("identity"),
            token_lifetime_seconds=options.token_lifetime_seconds,
            signing_key=keys.token_signing_key if keys else None,
        )
        self.webhooks = WebhookService(
            self.clock,
            base_url=self.base_url,
            identity=self.identity,
            rng=self._rng("webhooks"),
            http_client=webhook_client,
            faults=options.webhook_faults,
            certificates=keys.certificates if keys else None,
        )
        if stored is not None:
            if stored.identity is not None:
                self.identity.restore(stored.identity)
            if stored.webhooks is not None:
                self.webhooks.restore(stored.webhooks)
            if stored.clock_advanced_seconds > 0:
                self.advance_clock(stored.clock_advanced_seconds, expire=False)
        self.store = ReferralStore(
            self.clock,
            rng=self._rng("referrals"),
            partner=Organization(OrganizationId(self.identity.tenant_id), PARTNER_NAME),
            sink=self.webhooks,
            base_url=self.base_url,
        )
        if stored is not None:
            self.store.restore(stored.referrals)
        self.app = self._build_app()

    # ---- the control surface (also used by control.py) ----------------------------------

    def info(self) -> dict[str, Any]:
        """The startup JSON: base URLs and working credentials."""
        identity = self.identity.info()
        webhooks = self.webhooks.info()
        return {
            "sandbox": "partner-center",
            "base_url": self.base_url,
            "referrals_api": f"{self.base_url}{REFERRALS_PATH}",
            "webhooks_api": webhooks["webhooks_api"],
            "token_endpoint": identity["token_endpoint_v1"],
            "token_endpoint_v2": identity["token_endpoint_v2"],
            "authority": identity["authority"],
            "certificate_url": webhooks["certificate_url"],
            "ca_certificate_url": webhooks["ca_certificate_url"],
            "control_api": f"{self.base_url}/control",
            "tenant_id": identity["tenant_id"],
            "client_id": identity["client_id"],
            "client_secret": identity["client_secret"],
            "refresh_token": identity["refresh_token"],
            "username": identity["username"],
            "password": identity["password"],
        }

    def advance_clock(self, seconds: float, *, expire: bool = True) -> None:
        """Move the sandbox clock forward by `seconds`, then expire overdue referrals.

        Raises:
            ValueError: `seconds` is negative, or the clock cannot be advanced.
        """
        if seconds < 0:
            raise ValueError("time does not go backwards")
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise ValueError(
                f"the sandbox clock ({type(self.clock).__name__}) cannot be advanced; build the "
                "sandbox with an OffsetClock or a ManualClock"
            )
        advance(seconds)
        self._advanced_seconds += seconds
        if expire:
            self.store.expire_due()

    def clock_status(self) -> dict[str, Any]:
        """The sandbox time and how far the control API has advanced it."""
        return {
            "now": format_timestamp(self.clock.now()),
            "advanced_seconds": self._advanced_seconds,
        }

    def reset(self) -> None:
        """Forget every referral, zero the call statistics, turn API faults off."""
        self.store.clear()
        self.stats.reset()
        for name, value in ApiFaults().to_json().items():
            setattr(self.faults, name, value)

    def save(self, *, referrals_only: bool = False) -> None:
        """Write pending changes to the data file (no-op without `--data`).

        Args:
            referrals_only: write the changed referrals but not the identity and webhook
                snapshots (after a Referrals API call, which changes neither credentials nor
                registration).
        """
        if self._database is None:
            return
        cleared, referrals = self.store.take_changes()
        self._database.save(
            cleared=cleared,
            referrals=referrals,
            identity=None if referrals_only else self.identity.snapshot(),
            webhooks=None if referrals_only else self.webhooks.snapshot(),
            clock_advanced_seconds=self._advanced_seconds,
        )

    async def aclose(self) -> None:
        """Save, then release the data file and the webhook client."""
        self.save()
        if self._database is not None:
            self._database.close()
            self._database = None
        await self.webhooks.aclose()

    async def _expire_forever(self) -> None:
        # Referrals also expire lazily on every API call; this sweep makes the referral-updated
        # event of an expiry reach webhook receivers even while nobody calls the API. It polls
        # in real time (not on the sandbox clock: a ManualClock's sleep would move time).
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            self.store.expire_due()
            if self.store.has_changes():
                self.save(referrals_only=True)

    # ---- assembly -----------------------------------------------------------------------

    def _rng(self, part: str) -> random.Random:
        seed = self.options.seed
        if seed is None:
            return random.Random()  # noqa: S311 - test data, not secrets
        return random.Random(f"{seed}:{part}:{self._generation}")  # noqa: S311 - test data, not secrets

    def _build_app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            tasks = [
                asyncio.create_task(self.webhooks.run()),
                asyncio.create_task(self._expire_forever()),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await self.aclose()

        app = FastAPI(
            title="Partner Center sandbox",
            lifespan=lifespan,
            openapi_url=None,
            docs_url=None,
            redoc_url=None,
        )
        install_error_handlers(app)
        routers = [
            self.identity.router,
            self.webhooks.router,
            build_referrals_router(
                self.store,
                self.identity,
                base_url=self.base_url,
                page_size=self.options.page_size,
            ),
            build_control_router(self),
        ]
        for router in routers:
            app.include_router(router)
        routes = [route for router in routers for route in router.routes]
        app.add_middleware(_SaveMiddleware, sandbox=self)
        app.add_middleware(
            ApiMiddleware,
            faults=lambda: self.faults,
            clock=self.clock,
            rng=self._rng("faults"),
            stats=self.stats,
            route_of=lambda scope: _route_template(routes, scope),
        )
        return app


def _route_template(routes: list[BaseRoute], scope: Scope) -> str | None:
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None)
    return None


class _SaveMiddleware:
    """Saves the sandbox after each request that may have changed its state."""

    def __init__(self, app: ASGIApp, *, sandbox: PartnerCenterSandbox) -> None:
        self.app = app
        self._sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection, then save if it may have changed something."""
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and (
                scope["method"] not in _READ_METHODS or self._sandbox.store.has_changes()
            ):
                self._sandbox.save(referrals_only=scope["path"].startswith(REFERRALS_PATH))
