"""Fixtures: the Salesforce sandbox in process over httpx.ASGITransport, and a client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sf_harness import BASE, flows, make_client, make_sandbox

from cosell.clock import ManualClock
from cosell.salesforce.client import SalesforceClient


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One JWT key pair for the whole run: making one per test costs a fifth of a second."""
    return tmp_path_factory.mktemp("sf-keys")


@pytest.fixture
def sandbox(clock: ManualClock, key_dir: Path) -> Any:
    return make_sandbox(clock, key_dir)


@pytest.fixture
def info(sandbox: Any) -> dict[str, str]:
    return dict(sandbox.info())


@pytest.fixture
async def http(sandbox: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, info: dict[str, str], clock: ManualClock) -> SalesforceClient:
    return make_client(http, flows(info, clock)["client_credentials"], clock)
