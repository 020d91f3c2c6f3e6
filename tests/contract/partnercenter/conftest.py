"""Fixtures of the Partner Center contract tests; the harness is in `pc_contract_kit`."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
from pc_contract_kit import BASE, Callback, LoopBridgeTransport, PartnerCenter

from cosell.clock import ManualClock
from cosell.partnercenter.auth import (
    WEBHOOKS_SCOPE,
    AppCredentials,
    ClientCredentialsProvider,
    InMemoryRefreshTokenStore,
    RefreshTokenProvider,
    RoutingHttpClient,
)
from cosell.partnercenter.client import ReferralsClient, RetryPolicy
from cosell.partnercenter.webhooks import WebhooksClient
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxOptions


@pytest.fixture
async def pc() -> AsyncIterator[PartnerCenter]:
    clock = ManualClock()
    callbacks: list[Callback] = []

    def receive(request: httpx.Request) -> httpx.Response:
        callbacks.append(Callback(request.content, dict(request.headers)))
        return httpx.Response(200)

    hooks = httpx.AsyncClient(transport=httpx.MockTransport(receive))
    sandbox = PartnerCenterSandbox(
        base_url=BASE,
        clock=clock,
        options=SandboxOptions(seed=11, page_size=2, token_lifetime_seconds=3600),
        webhook_client=hooks,
    )
    info = sandbox.info()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=BASE)
    entra = httpx.Client(transport=LoopBridgeTransport(sandbox.app), base_url=BASE)
    credentials = AppCredentials(
        tenant_id=info["tenant_id"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        http_client=RoutingHttpClient(BASE, entra),
    )
    store = InMemoryRefreshTokenStore(info["refresh_token"])
    user_tokens = RefreshTokenProvider(credentials, store, clock=clock)
    app_tokens = ClientCredentialsProvider(credentials, scopes=(WEBHOOKS_SCOPE,), clock=clock)
    referrals = ReferralsClient(
        http,
        user_tokens,
        base_url=info["referrals_api"].removesuffix("/referrals"),
        clock=clock,
        retry=RetryPolicy(rng=random.Random(3)),
    )
    webhooks = WebhooksClient(
        http,
        app_tokens,
        base_url=info["webhooks_api"],
        clock=clock,
        retry=RetryPolicy(rng=random.Random(4)),
    )
    yield PartnerCenter(
        sandbox=sandbox,
        clock=clock,
        info=info,
        http=http,
        credentials=credentials,
        store=store,
        user_tokens=user_tokens,
        referrals=referrals,
        webhooks=webhooks,
        callbacks=callbacks,
    )
    await http.aclose()
    await hooks.aclose()
    entra.close()  # noqa: ASYNC212 - an in-process transport: closing does no I/O
