"""Fixtures for the Salesforce client's unit tests: a scripted Salesforce over MockTransport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sf_fakes import FakeSalesforce, make_client

from cosell.clock import ManualClock
from cosell.salesforce.client import SalesforceClient


@pytest.fixture
def fake() -> FakeSalesforce:
    return FakeSalesforce()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def http(fake: FakeSalesforce) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, clock: ManualClock) -> SalesforceClient:
    return make_client(http, clock)
