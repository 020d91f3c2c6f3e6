"""Fixtures of the service tests: a signing kit, a real store, the app over ASGITransport."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "partnercenter"))

from pc_fakes import CertificateKit, der
from server_kit import CERT_URL, RecordingEngine, Service, Signer

from cosell.clock import ManualClock
from cosell.config import ServerSettings
from cosell.partnercenter.webhooks import SignatureVerifier
from cosell.server.app import create_app
from cosell.server.metrics import Metrics
from cosell.server.readiness import Check, Readiness
from cosell.store import Store


@pytest.fixture(scope="session")
def kit() -> CertificateKit:
    return CertificateKit()


@pytest.fixture
def signer(kit: CertificateKit) -> Signer:
    return Signer(kit)


@pytest.fixture
def store(tmp_path: Path, kit: CertificateKit) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'cosell.db'}", clock=ManualClock(kit.now))
    yield opened
    opened.close()


@pytest.fixture
async def service(kit: CertificateKit, store: Store) -> AsyncIterator[Service]:
    clock = ManualClock(kit.now)

    def certificates(request: httpx.Request) -> httpx.Response:
        if str(request.url) == CERT_URL:
            return httpx.Response(200, content=der(kit.leaf))
        return httpx.Response(404)

    cert_http = httpx.AsyncClient(transport=httpx.MockTransport(certificates))
    verifier = SignatureVerifier(cert_http, trusted_roots=[kit.ca], clock=clock)
    probes: dict[str, int] = {}
    failing: set[str] = set()

    def check(name: str) -> Check:
        async def run() -> str:
            probes[name] = probes.get(name, 0) + 1
            if name in failing:
                raise RuntimeError(f"{name} is down")
            return f"{name} fine"

        return Check(name, run, ttl_seconds=0.0 if name == "database" else 60.0)

    readiness = Readiness([check("database"), check("salesforce_token")], clock=clock)
    engine = RecordingEngine(store)
    metrics = Metrics(store)
    app = create_app(
        settings=ServerSettings(),
        verifier=verifier,
        store=store,
        engine=engine,
        readiness=readiness,
        metrics=metrics,
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://cosell.test"
    )
    yield Service(app, client, store, engine, metrics, clock, probes, failing)
    await client.aclose()
    await cert_http.aclose()
