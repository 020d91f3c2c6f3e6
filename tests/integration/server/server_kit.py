"""Helpers of the service tests: signed callbacks, a recording engine, the app under test."""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "partnercenter"))

from pc_fakes import CertificateKit, sign
from starlette.applications import Starlette

from cosell.clock import ManualClock
from cosell.server.metrics import Metrics
from cosell.store import Store

CERT_URL = (
    "https://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer"
)
REFERRAL_ID = "2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11"
WEBHOOK = "/webhooks/partner-center"


def event_body(
    event: str = "referral-updated", referral_id: str = REFERRAL_ID, **extra: str
) -> bytes:
    return json.dumps(
        {
            "EventName": event,
            "ResourceUri": f"https://api.partnercenter.microsoft.com/engagements/v1/referrals/{referral_id}",
            "ResourceName": "referral",
            "AuditUri": None,
            "ResourceChangeUtcDate": "2026-01-05T08:59:58+00:00",
            **extra,
        }
    ).encode()


@dataclass
class Signer:
    kit: CertificateKit

    def headers(self, body: bytes, *, signed: bytes | None = None) -> dict[str, str]:
        signature = sign(self.kit.leaf_key, body if signed is None else signed)
        return {
            "Authorization": "Signature " + base64.b64encode(signature).decode(),
            "X-MS-Certificate-Url": CERT_URL,
            "X-MS-Signature-Algorithm": "rsa-sha256",
            "Content-Type": "application/json",
        }


@dataclass
class RecordingEngine:
    """Stands in for the DBOS engine at the app's boundary: records what it is told."""

    store: Store
    woken: int = 0
    pending_when_woken: list[list[str]] = field(default_factory=list)
    started: list[bool] = field(default_factory=list)
    stopped: list[float] = field(default_factory=list)

    async def start(self, *, background: bool = True) -> None:
        self.started.append(background)

    def inbox_recorded(self) -> None:
        # What the drainer would find when it wakes: the event must already be committed.
        self.woken += 1
        self.pending_when_woken.append([e.key for e in self.store.pending_events()])

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        self.stopped.append(grace_seconds)


@dataclass
class Service:
    app: Starlette
    client: httpx.AsyncClient
    store: Store
    engine: RecordingEngine
    metrics: Metrics
    clock: ManualClock
    probes: dict[str, int]
    failing: set[str]

    def inbox_rows(self) -> int:
        import sqlalchemy as sa

        from cosell.store import tables as t

        with self.store.engine.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(t.inbox)).scalar_one()
            )
