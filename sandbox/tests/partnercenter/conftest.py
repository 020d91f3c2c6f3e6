"""Fixtures for the Partner Center sandbox tests: a sandbox on a ManualClock and HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pcsandbox_helpers import BASE_URL, REFERRALS, referral_body, user_token

from cosell.clock import ManualClock
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxKeys, SandboxOptions


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def pc_keys() -> SandboxKeys:
    """Key material shared by every sandbox of the session (RSA key generation is slow)."""
    return SandboxKeys.generate(ManualClock())


@pytest.fixture
def options() -> SandboxOptions:
    return SandboxOptions(seed=7)


@pytest.fixture
async def sandbox(
    clock: ManualClock, options: SandboxOptions, pc_keys: SandboxKeys
) -> AsyncIterator[PartnerCenterSandbox]:
    sb = PartnerCenterSandbox(base_url=BASE_URL, clock=clock, options=options, keys=pc_keys)
    yield sb
    await sb.aclose()


@pytest.fixture
async def client(sandbox: PartnerCenterSandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        yield c


@pytest.fixture
async def api(client: httpx.AsyncClient, sandbox: PartnerCenterSandbox) -> httpx.AsyncClient:
    """`client` with a Referrals API bearer token for the sandbox's admin user."""
    client.headers["Authorization"] = f"Bearer {await user_token(client, sandbox)}"
    return client


@pytest.fixture
def create(api: httpx.AsyncClient) -> Callable[..., Any]:
    """POST a referral (defaults from `referral_body`) and return the created JSON."""

    async def _create(body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await api.post(REFERRALS, json=body or referral_body())
        assert response.status_code == 201, response.text
        return dict(response.json())

    return _create
