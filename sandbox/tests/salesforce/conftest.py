"""Fixtures for the Salesforce sandbox: a sandbox on a ManualClock, and HTTP clients to it.

Reusable by any test of the Salesforce side:

- `sf_clock`: the ManualClock the sandbox runs on (advance it to expire things);
- `sf_key_dir`: one JWT key pair per test session (generating RSA keys is slow);
- `sandbox`: a fresh `SalesforceSandbox` (seeded, multi-currency) at `SF_BASE_URL`;
- `sf_client`: an `httpx.AsyncClient` to it, no credentials (control API, login routes);
- `sf_token`: an access token of the integration user (OAuth username-password grant);
- `sf`: an `httpx.AsyncClient` that sends that token on every call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sf_sandbox_helpers import SF_BASE_URL, login

from cosell.clock import ManualClock
from cosell_sandbox.salesforce.app import SalesforceSandbox, SandboxOptions


@pytest.fixture(scope="session")
def sf_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sf-keys")


@pytest.fixture
def sf_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sf_options(sf_key_dir: Path) -> SandboxOptions:
    return SandboxOptions(seed=7, key_dir=sf_key_dir)


@pytest.fixture
def sandbox(sf_clock: ManualClock, sf_options: SandboxOptions) -> SalesforceSandbox:
    return SalesforceSandbox(base_url=SF_BASE_URL, clock=sf_clock, options=sf_options)


@pytest.fixture
async def sf_client(sandbox: SalesforceSandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=SF_BASE_URL) as client:
        yield client


@pytest.fixture
async def sf_token(sf_client: httpx.AsyncClient, sandbox: SalesforceSandbox) -> str:
    return await login(sf_client, sandbox)


@pytest.fixture
async def sf(sandbox: SalesforceSandbox, sf_token: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url=SF_BASE_URL,
        headers={"Authorization": f"Bearer {sf_token}"},
    ) as client:
        yield client
